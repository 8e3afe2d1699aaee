// Trellis's runtime loop for Node.js handlers: loads `file.export` from `_HANDLER` in
// LAMBDA_TASK_ROOT (CommonJS .js/.cjs or ES module .mjs), then fetches events from the Lambda
// Runtime API, calls the handler with (event, context) — async or callback style — and posts the
// result, or the error as {errorType, errorMessage, trace} the way Lambda's Node.js runtimes do.
//
// Embedded in the trellis binary and written to CODE_DIR/_runtime/ (seen as /var/runtime in a sandbox) at start. Node's
// standard library only.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [HOST, PORT] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
const TASK_ROOT = process.env.LAMBDA_TASK_ROOT || process.cwd();
const PREFIX = "/2018-06-01/runtime";
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(method, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: HOST, port: PORT, method, path: PREFIX + urlPath, agent, headers },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function postJson(urlPath, document, errorType) {
  const headers = { "Content-Type": "application/json" };
  if (errorType) headers["Lambda-Runtime-Function-Error-Type"] = errorType;
  return request("POST", urlPath, JSON.stringify(document), headers);
}

function errorDocument(err) {
  if (err instanceof Error) {
    return {
      errorType: err.name || "Error",
      errorMessage: err.message,
      trace: String(err.stack || "").split("\n"),
    };
  }
  return { errorType: "string", errorMessage: String(err), trace: [] };
}

class InitError extends Error {
  constructor(name, message) {
    super(message);
    this.name = name;
  }
}

async function loadHandler() {
  const spec = process.env._HANDLER || "";
  const dot = spec.lastIndexOf(".");
  if (dot <= 0 || dot === spec.length - 1) {
    throw new InitError("Runtime.MalformedHandlerName", `Bad handler ${spec}`);
  }
  const modulePath = spec.slice(0, dot);
  const exportPath = spec.slice(dot + 1);
  const base = path.resolve(TASK_ROOT, modulePath);
  const file = [".js", ".mjs", ".cjs"].map((ext) => base + ext).find((f) => fs.existsSync(f));
  if (!file) {
    throw new InitError("Runtime.ImportModuleError", `Error: Cannot find module '${modulePath}'`);
  }
  let mod;
  try {
    mod = await import(pathToFileURL(file).href);
  } catch (err) {
    if (err instanceof SyntaxError) {
      throw new InitError("Runtime.UserCodeSyntaxError", `${err.name}: ${err.message}`);
    }
    throw err;
  }
  let handler = mod;
  for (const part of exportPath.split(".")) {
    handler = handler?.[part] ?? handler?.default?.[part];
  }
  if (typeof handler !== "function") {
    throw new InitError("Runtime.HandlerNotFound", `${spec} is undefined or not exported`);
  }
  return handler;
}

// Lambda's Node.js runtimes prefix console output with the time, the request id and the level.
let currentRequestId = undefined;
for (const [method, level] of [["log", "INFO"], ["info", "INFO"], ["warn", "WARN"], ["error", "ERROR"], ["debug", "DEBUG"]]) {
  const original = console[method].bind(console);
  console[method] = (...args) => original(`${new Date().toISOString()}\t${currentRequestId ?? "undefined"}\t${level}\t`, ...args);
}

function invokeHandler(handler, event, context) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (err, result) => {
      if (settled) return;
      settled = true;
      if (err !== undefined && err !== null) reject(err);
      else resolve(result);
    };
    context.done = callback;
    context.succeed = (result) => callback(null, result);
    context.fail = (err) => callback(err ?? new Error("handled"));
    try {
      const returned = handler(event, context, callback);
      if (returned && typeof returned.then === "function") {
        returned.then((r) => callback(null, r), (e) => callback(e ?? new Error("rejected")));
      } else if (handler.length < 3) {
        callback(null, returned);
      }
    } catch (err) {
      callback(err);
    }
  });
}

async function main() {
  let handler;
  try {
    handler = await loadHandler();
  } catch (err) {
    const doc = errorDocument(err);
    console.error(`${doc.errorType}: ${doc.errorMessage}`);
    await postJson("/init/error", doc, doc.errorType);
    process.exit(1);
  }
  for (;;) {
    const next = await request("GET", "/invocation/next");
    if (next.status !== 200) {
      console.error(`Runtime API /next answered ${next.status}`);
      process.exit(1);
    }
    const requestId = next.headers["lambda-runtime-aws-request-id"];
    const deadline = Number(next.headers["lambda-runtime-deadline-ms"] || 0);
    if (next.headers["lambda-runtime-trace-id"]) process.env._X_AMZN_TRACE_ID = next.headers["lambda-runtime-trace-id"];
    currentRequestId = requestId;
    let clientContext;
    if (next.headers["lambda-runtime-client-context"]) {
      try { clientContext = JSON.parse(next.headers["lambda-runtime-client-context"]); } catch { /* left undefined */ }
    }
    const context = {
      awsRequestId: requestId,
      invokedFunctionArn: next.headers["lambda-runtime-invoked-function-arn"],
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
      clientContext,
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    };
    let result;
    try {
      const event = next.body.length ? JSON.parse(next.body.toString("utf8")) : {};
      result = await invokeHandler(handler, event, context);
    } catch (err) {
      const doc = errorDocument(err);
      console.error(`Invoke Error \t${JSON.stringify(doc)}`);
      await postJson(`/invocation/${requestId}/error`, doc, doc.errorType);
      continue;
    }
    let payload;
    try {
      payload = JSON.stringify(result === undefined ? null : result);
    } catch (err) {
      const doc = { errorType: "Runtime.MarshalError", errorMessage: `Unable to stringify response body: ${err.message}`, trace: [] };
      await postJson(`/invocation/${requestId}/error`, doc, doc.errorType);
      continue;
    }
    await request("POST", `/invocation/${requestId}/response`, payload, { "Content-Type": "application/json" });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
