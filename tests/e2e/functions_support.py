"""Helpers for the function host's end-to-end tests: deployment packages zipped in the test,
handler sources, and the AWS CLI's `lambda` commands against a server."""

import base64
import io
import json
import os
import sys
import tempfile
import zipfile

from conftest import ACCOUNT, REGION, unique

ROLE = f"arn:aws:iam::{ACCOUNT}:role/lambda-role"


def function_arn(name, qualifier=None):
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def zip_bytes(files, executable=()):
    """A deployment package: {path: text or bytes}; paths in `executable` get mode 0755."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, content in files.items():
            info = zipfile.ZipInfo(path)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if path in executable else 0o644
            info.external_attr = (0o100000 | mode) << 16
            z.writestr(info, content)
    return buf.getvalue()


# A Python handler that reports who ran it; `sleep`, `fail` and `print` in the event steer it.
# `pid` is the pid inside the sandbox's PID namespace (the same in every sandbox); `instance`
# tells runtime processes apart.
PY_APP = """
import os, time
VERSION = "v1"
INSTANCE = os.urandom(8).hex()
def handler(event, context):
    if event.get("print"):
        print(event["print"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {
        "version": VERSION,
        "pid": os.getpid(),
        "instance": INSTANCE,
        "event": event,
        "env": {k: v for k, v in os.environ.items() if k.startswith("APP_")},
        "function_version": context.function_version,
        "invoked_arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
    }
"""

NODE_APP = """
exports.handler = async (event, context) => {
  console.log("node handling", JSON.stringify(event));
  if (event.fail) { throw new RangeError("node was asked to fail"); }
  return { runtime: "node", pid: process.pid, event, version: context.functionVersion };
};
"""


def py_zip(source=PY_APP):
    return zip_bytes({"app.py": source})


def create_python(lam, name=None, source=PY_APP, **kw):
    name = name or unique("fn")
    params = dict(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                  Code={"ZipFile": py_zip(source)})
    params.update(kw)
    return lam.create_function(**params)


def invoke(lam, name, payload=None, **kw):
    """Invokes and returns (response, decoded payload or None)."""
    if payload is not None:
        kw["Payload"] = json.dumps(payload).encode()
    resp = lam.invoke(FunctionName=name, **kw)
    body = resp["Payload"].read()
    return resp, (json.loads(body) if body else None)


def log_result(resp):
    return base64.b64decode(resp["ResponseMetadata"]["HTTPHeaders"].get("x-amz-log-result", "")).decode(
        errors="replace")


def lambda_cli(server, *args, check=True):
    """Runs `aws lambda ARGS --endpoint-url …`; returns parsed JSON output or the process."""
    return server.cli(*args, check=check, service="lambda", timeout=120)


def write_temp(data, suffix):
    fd, path = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def awslambdaric_bootstrap():
    """A `provided` bootstrap that runs the unmodified awslambdaric from PyPI with the Python the
    tests run on (where requirements.txt installed it)."""
    return f'#!/bin/sh\nexec "{sys.executable}" -m awslambdaric "$_HANDLER"\n'


# The Runtime API loop from the Lambda documentation's custom runtime tutorial, in sh and curl.
CURL_BOOTSTRAP = r"""#!/bin/sh
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
while true; do
  HEADERS="$(mktemp)"
  EVENT="$(curl -sS -LD "$HEADERS" "$API/invocation/next")"
  REQUEST_ID="$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)"
  echo "curl runtime got request $REQUEST_ID"
  RESPONSE="{\"echo\": $EVENT, \"shell\": true, \"handler\": \"$_HANDLER\", \"pid\": $$}"
  curl -sS -X POST "$API/invocation/$REQUEST_ID/response" -d "$RESPONSE" >/dev/null
  rm -f "$HEADERS"
done
"""
