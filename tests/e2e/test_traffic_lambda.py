"""LAMBDA target groups end to end (reference §5.5): a Python and a Node.js function, deployed with
boto3's `lambda` client, behind one service whose rules send `/py1`, `/py2`, `/node1` and `/node2`
to LAMBDA target groups of event structure V1 and V2. The functions echo the event they received;
curl calls the service through its listener, and the tests check the event fields each function
saw (method, path, headers incl. repeated ones and cookies, query strings incl. repeated keys and
encoded values, text and base64 bodies, V2's request context), the response mapping (status,
headers, multi-value headers, base64 bodies), the failure statuses (function error and malformed
output 502, timeout 504), and ListTargets' status for function targets (UNAVAILABLE)."""

import base64
import json
import os
import subprocess
import tempfile
import time
from types import SimpleNamespace

import pytest

from backends import INGRESS, ServiceBuilder, fixed, free_port, path_prefix, target_statuses, wait_until_applied
from conftest import unique
from functions_support import ROLE, function_arn, zip_bytes

# Both functions answer by the last segment of the request path: `error` fails, `malformed`
# returns something that is not a response, `sleep` outlives the 1 s timeout, `binary` returns
# 256 bytes base64-encoded; anything else echoes the event in a JSON body.
PY_ECHO = """
import base64, json, time

def handler(event, context):
    path = event.get("raw_path") or event.get("path") or "/"
    action = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    if action == "error":
        raise ValueError("asked to fail")
    if action == "malformed":
        return "not a response"
    if action == "sleep":
        time.sleep(3)
    if action == "binary":
        return {"statusCode": 200, "isBase64Encoded": True,
                "headers": {"content-type": "application/octet-stream"},
                "body": base64.b64encode(bytes(range(256))).decode()}
    return {
        "statusCode": 200,
        "statusDescription": "200 OK",
        "headers": {"content-type": "application/json", "x-runtime": "python"},
        "multiValueHeaders": {"x-multi": ["one", "two"]},
        "body": json.dumps({"event": event, "function": context.invoked_function_arn}),
        "isBase64Encoded": False,
    }
"""

NODE_ECHO = """
exports.handler = async (event, context) => {
  const path = event.raw_path || event.path || "/";
  const action = path.split("?")[0].replace(/\\/+$/, "").split("/").pop();
  if (action === "error") { throw new RangeError("node was asked to fail"); }
  if (action === "malformed") { return { statusCode: "two hundred" }; }
  if (action === "binary") {
    return { statusCode: 200, isBase64Encoded: true,
             headers: { "content-type": "application/octet-stream" },
             body: Buffer.from([...Array(256).keys()]).toString("base64") };
  }
  return {
    statusCode: 200,
    statusDescription: "200 OK",
    headers: { "content-type": "application/json", "x-runtime": "node" },
    multiValueHeaders: { "x-multi": ["one", "two"] },
    body: JSON.stringify({ event, function: context.invokedFunctionArn }),
    isBase64Encoded: false,
  };
};
"""

# (route prefix, runtime, event structure version)
ROUTES = [("/py1", "python", "V1"), ("/py2", "python", "V2"), ("/node1", "node", "V1"), ("/node2", "node", "V2")]


@pytest.fixture(scope="module")
def env(dp_server, dp_lattice):
    lam = dp_server.client("lambda")
    lattice = dp_lattice
    py = unique("echo-py")
    lam.create_function(FunctionName=py, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Timeout=1, Code={"ZipFile": zip_bytes({"app.py": PY_ECHO})})
    node = unique("echo-node")
    lam.create_function(FunctionName=node, Runtime="nodejs20.x", Role=ROLE, Handler="index.handler",
                        Timeout=10, Code={"ZipFile": zip_bytes({"index.js": NODE_ECHO})})
    # The Node.js function is registered through an alias, as the Lattice guide recommends.
    version = lam.publish_version(FunctionName=node)["Version"]
    lam.create_alias(FunctionName=node, Name="live", FunctionVersion=version)
    functions = {"python": function_arn(py), "node": function_arn(node, "live")}

    svc = ServiceBuilder(lattice)
    port = free_port()
    listener = svc.listener("HTTP", port, fixed(404))
    groups = {}
    for priority, (prefix, runtime, version) in enumerate(ROUTES, start=1):
        tg = lattice.create_target_group(name=unique(f"lambda-{version.lower()}"), type="LAMBDA",
                                         config={"lambdaEventStructureVersion": version})
        lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": functions[runtime]}])
        svc.rule(listener, priority, path_prefix(prefix), {"forward": {"targetGroups": [
            {"targetGroupIdentifier": tg["id"], "weight": 1}]}})
        groups[prefix] = tg
    wait_until_applied(dp_server)
    return SimpleNamespace(svc=svc, port=port, groups=groups, functions=functions, lattice=lattice)


def call(env, path, *args, h2=False):
    """curl through the listener, naming the service: (status, [(header, value)], body bytes)."""
    name = env.svc.dns_name
    with tempfile.TemporaryDirectory() as d:
        head, body = os.path.join(d, "head"), os.path.join(d, "body")
        cmd = ["curl", "-sS", "--max-time", "30", "--resolve", f"{name}:{env.port}:{INGRESS}",
               "-D", head, "-o", body, "-w", "%{http_code}",
               "--http2-prior-knowledge" if h2 else "--http1.1", *args, f"http://{name}:{env.port}{path}"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=40)
        assert p.returncode == 0, f"{' '.join(cmd)} failed: {p.stderr}"
        lines = open(head, encoding="latin-1").read().splitlines()
        headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if ":" in line]
        return int(p.stdout), [(k.lower(), v) for k, v in headers], open(body, "rb").read()


def values(headers, name):
    return [v for k, v in headers if k == name]


@pytest.mark.parametrize("prefix,runtime,version", ROUTES, ids=[r[0].strip("/") for r in ROUTES])
def test_get_event_and_response(env, prefix, runtime, version):
    path = f"{prefix}/echo?a=1&b=x%20y&a=2&flag"
    before_us = int(time.time() * 1e6)
    status, headers, body = call(env, path, "-H", "X-Multi-In: one", "-H", "X-Multi-In: two",
                                 "-H", "Cookie: c1=1", "-H", "Cookie: c2=2", "-H", "User-Agent: e2e-curl")
    after_us = int(time.time() * 1e6)

    # The response mapping: status, single and multi-value headers, a computed Content-Length.
    assert status == 200, body
    assert values(headers, "content-type") == ["application/json"]
    assert values(headers, "x-runtime") == [runtime]
    assert values(headers, "x-multi") == ["one", "two"]
    assert values(headers, "content-length") == [str(len(body))]
    assert len(values(headers, "x-amzn-requestid")) == 1
    doc = json.loads(body)
    assert doc["function"] == env.functions[runtime]
    event = doc["event"]
    host = f"{env.svc.dns_name}:{env.port}"
    request_id = values(headers, "x-amzn-requestid")[0]

    if version == "V1":
        assert set(event) == {"raw_path", "method", "headers", "query_string_parameters", "body",
                              "is_base64_encoded"}
        assert event["raw_path"] == path
        assert event["method"] == "GET"
        hdrs = event["headers"]
        assert hdrs["host"] == host
        assert hdrs["x-multi-in"] == "one, two"
        assert hdrs["cookie"] == "c1=1; c2=2"
        assert hdrs["user-agent"] == "e2e-curl"
        assert hdrs["x-forwarded-for"] == INGRESS
        assert hdrs["x-amzn-requestid"] == request_id
        assert event["query_string_parameters"] == {"a": "2", "b": "x y", "flag": ""}
        assert (event["body"], event["is_base64_encoded"]) == ("", False)
    else:
        assert set(event) == {"version", "path", "method", "headers", "queryStringParameters", "body",
                              "isBase64Encoded", "requestContext"}
        assert event["version"] == "2.0"
        assert event["path"] == path
        assert event["method"] == "GET"
        hdrs = event["headers"]
        assert hdrs["host"] == [host]
        assert hdrs["x-multi-in"] == ["one", "two"]
        assert hdrs["cookie"] == ["c1=1; c2=2"]
        assert hdrs["x-forwarded-for"] == [INGRESS]
        assert event["queryStringParameters"] == {"a": ["1", "2"], "b": ["x y"], "flag": [""]}
        assert (event["body"], event["isBase64Encoded"]) == ("", False)
        ctx = event["requestContext"]
        assert ctx["serviceArn"] == env.svc.svc["arn"]
        assert ctx["serviceNetworkArn"] == env.svc.sn["arn"]
        assert ctx["targetGroupArn"] == env.groups[prefix]["arn"]
        assert ctx["region"] == "us-west-2"
        assert ctx["identity"] == {}
        assert before_us - 1_000_000 <= int(ctx["timeEpoch"]) <= after_us
    # Headers Trellis sends only to IP targets.
    for absent in ("x-forwarded-port", "x-forwarded-proto", "x-amzn-lattice-target", "x-amzn-lattice-network"):
        assert absent not in hdrs


@pytest.mark.parametrize("prefix,runtime,version", ROUTES, ids=[r[0].strip("/") for r in ROUTES])
def test_request_bodies_text_and_base64(env, prefix, runtime, version):
    body_key, b64_key = ("body", "is_base64_encoded") if version == "V1" else ("body", "isBase64Encoded")
    # JSON is text.
    status, _, body = call(env, f"{prefix}/echo", "-X", "POST", "-H", "Content-Type: application/json",
                           "--data-binary", '{"order": 7, "note": "caf\u00e9"}')
    assert status == 200, body
    event = json.loads(body)["event"]
    assert event["method"] == "POST"
    assert (event[body_key], event[b64_key]) == ('{"order": 7, "note": "caf\u00e9"}', False)
    # Bytes are base64, whatever they are.
    payload = bytes(range(256)) * 4
    with tempfile.NamedTemporaryFile() as f:
        f.write(payload)
        f.flush()
        status, _, body = call(env, f"{prefix}/echo", "-X", "PUT", "-H", "Content-Type: application/octet-stream",
                               "--data-binary", f"@{f.name}")
    assert status == 200, body
    event = json.loads(body)["event"]
    assert event[b64_key] is True
    assert base64.b64decode(event[body_key]) == payload


@pytest.mark.parametrize("prefix,runtime,version", ROUTES, ids=[r[0].strip("/") for r in ROUTES])
def test_base64_response_body_reaches_the_client_as_bytes(env, prefix, runtime, version):
    status, headers, body = call(env, f"{prefix}/binary")
    assert status == 200
    assert body == bytes(range(256))
    assert values(headers, "content-type") == ["application/octet-stream"]
    assert values(headers, "content-length") == ["256"]


def test_http2_client_gets_host_from_authority(env):
    status, headers, body = call(env, "/py2/echo?x=1", "-H", "Cookie: a=1", h2=True)
    assert status == 200, body
    event = json.loads(body)["event"]
    assert event["headers"]["host"] == [f"{env.svc.dns_name}:{env.port}"]
    assert event["headers"]["cookie"] == ["a=1"]
    assert values(headers, "x-multi") == ["one", "two"]


FAILURES = [
    # (path, status)
    ("/py1/error", 502),
    ("/py2/error", 502),
    ("/node1/error", 502),
    ("/node2/error", 502),
    ("/py1/malformed", 502),
    ("/node2/malformed", 502),
    ("/py2/sleep", 504),
]


@pytest.mark.parametrize("path,expected", FAILURES, ids=[f[0] for f in FAILURES])
def test_failures_map_to_statuses(env, path, expected):
    status, headers, body = call(env, path)
    assert status == expected, body
    assert values(headers, "content-type") == ["text/plain; charset=utf-8"]
    assert len(values(headers, "x-amzn-requestid")) == 1


def test_function_keeps_working_after_errors(env):
    for prefix in ("/py1", "/node2"):
        status, _, body = call(env, f"{prefix}/error")
        assert status == 502
        status, _, body = call(env, f"{prefix}/again")
        assert status == 200, body


def test_list_targets_reports_function_targets_unavailable(env):
    """Function targets have no health checks: ListTargets reports them UNAVAILABLE (checks do not
    apply), with no reason code."""
    for prefix, runtime, _ in ROUTES:
        statuses = target_statuses(env.lattice, env.groups[prefix])
        assert statuses == {(env.functions[runtime], None): ("UNAVAILABLE", None)}, prefix
