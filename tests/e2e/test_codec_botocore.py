"""The protocol codecs (crates/wire/src/codec) against botocore's own serializers and parsers.

For every operation of a representative botocore model per protocol (awsQuery: iam, sts;
ec2Query: ec2; awsJson1_1: resourcegroupstaggingapi, logs; awsJson1_0: dynamodb; restJson1:
vpc-lattice, lambda) this generates a sample from the model's shapes — structures with every
member, lists of two, maps of two entries, every scalar type, recursion cut off — and checks:

- outputs: the Rust codec writes the sample (`crates/wire/examples/codec_probe.rs`), botocore's
  parser for the protocol reads the response back into exactly the sample;
- errors: every modelled error of the service, written by the codec, parses to its code,
  message and request ID (and, through the error's own shape, to its other members);
- requests: botocore's serializer writes the sample as a client would send it, the Rust codec
  decodes it (routed on the URI template for REST), and the document equals the sample once
  scalars are read as the shape's types (query protocols carry every scalar as a string).

What the codecs do not cover is named in SKIPPED_* below, operation by operation; the test fails
if anything else is skipped, so the list cannot grow silently.

The probe is `$TRELLIS_CODEC_PROBE` or `target/debug/examples/codec_probe` (built here with
cargo when the variable is not set; `scripts/test` has built it already).
"""

import base64
import datetime
import json
import os
import subprocess
import urllib.parse

import botocore.session
import pytest
from botocore import parsers, serialize
from botocore.awsrequest import AWSRequest, HeadersDict, prepare_request_dict
from botocore.model import ServiceModel
from botocore.utils import parse_timestamp
from dateutil.tz import tzutc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBE_TIMEOUT_S = 300

SERVICES = ["iam", "sts", "ec2", "resourcegroupstaggingapi", "logs", "dynamodb", "vpc-lattice", "lambda"]

# Text that needs escaping in XML, JSON, forms, URIs and query strings.
STRING = "v<&>'\"\t é%+ =?#\r\n"
TIMESTAMP = datetime.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=tzutc())
BLOB = b"\x00\xffbin\n"
MAX_DEPTH = 7

# What the codecs do not cover, operation by operation, with the reason the test computes.
PAYLOAD = "restJson1 payload binding (the body is one member's blob or structure, not the members)"
EVENT_STREAM = "event stream output (binary event framing, not a document)"
URI_QUERY = "a literal query in the URI template (the table routes on the path only)"
SKIPPED_OUTPUTS = {
    ("logs", "GetLogObject"): EVENT_STREAM,
    ("logs", "StartLiveTail"): EVENT_STREAM,
    ("lambda", "Invoke"): PAYLOAD,
    ("lambda", "InvokeWithResponseStream"): PAYLOAD,
}
SKIPPED_REQUESTS = {
    ("lambda", "GetLayerVersionByArn"): URI_QUERY,
    ("lambda", "ListProvisionedConcurrencyConfigs"): URI_QUERY,
    ("lambda", "Invoke"): PAYLOAD,
    ("lambda", "InvokeAsync"): PAYLOAD,
    ("lambda", "InvokeWithResponseStream"): PAYLOAD,
    ("lambda", "SendDurableExecutionCallbackFailure"): PAYLOAD,
    ("lambda", "SendDurableExecutionCallbackSuccess"): PAYLOAD,
    ("lambda", "StopDurableExecution"): PAYLOAD,
}


def _load(name):
    loader = botocore.session.get_session().get_component("data_loader")
    return ServiceModel(loader.load_service_model(name, "service-2"), name)


MODELS = {}


def model(name):
    if name not in MODELS:
        MODELS[name] = _load(name)
    return MODELS[name]


@pytest.fixture(scope="module")
def probe():
    path = os.environ.get("TRELLIS_CODEC_PROBE")
    if not path:
        subprocess.run(["cargo", "build", "-q", "-p", "trellis-wire", "--example", "codec_probe"],
                       cwd=ROOT, check=True, timeout=1800)
        path = os.path.join(ROOT, "target", "debug", "examples", "codec_probe")

    def run(cases):
        text = "".join(json.dumps(c) + "\n" for c in cases)
        out = subprocess.run([path], input=text.encode(), capture_output=True, timeout=PROBE_TIMEOUT_S)
        assert out.returncode == 0, out.stderr.decode()[:1500]
        answers = [json.loads(line) for line in out.stdout.decode().splitlines()]
        assert len(answers) == len(cases), out.stderr.decode()[-2000:]
        return answers

    return run


# ---------------------------------------------------------------------------------------------
# Samples from shapes.


class Skip(Exception):
    pass


def sample(shape, stack=(), depth=0):
    """A value of `shape` as botocore's parsers return and its serializers take it."""
    t = shape.type_name
    if t == "structure":
        if shape.is_document_type:
            raise Skip
        if shape.name in stack or depth > MAX_DEPTH:
            raise Skip
        out = {}
        for name, m in shape.members.items():
            if m.serialization.get("eventstream") or m.type_name == "structure" and m.is_document_type:
                continue
            try:
                out[name] = sample(m, stack + (shape.name,), depth + 1)
            except Skip:
                continue
            if getattr(shape, "is_tagged_union", False):
                break
        return out
    if t == "list":
        return [sample(shape.member, stack, depth + 1) for _ in range(2)]
    if t == "map":
        keys = (shape.key.enum or [])[:2] or ["k1", "k2"]
        return {k: sample(shape.value, stack, depth + 1) for k in keys}
    if t == "string":
        return shape.enum[0] if shape.enum else STRING
    if t in ("integer", "short", "byte"):
        return 42
    if t == "long":
        return 2**40 + 1
    if t in ("float", "double"):
        return 1.5
    if t == "boolean":
        return True
    if t == "timestamp":
        return TIMESTAMP
    if t == "blob":
        return BLOB
    raise AssertionError(f"shape type {t}")


def body_members(shape):
    """The members carried in the body (restJson1 binds others to the URI, headers, status)."""
    return {n: m for n, m in shape.members.items() if not m.serialization.get("location")}


def output_wire_name(protocol, name, m):
    if protocol in ("query", "ec2") and m.type_name == "list" and m.serialization.get("flattened"):
        raise AssertionError("flattened XML lists are not written")
    return m.serialization.get("name", name)


def to_wire(protocol, shape, value, top=False):
    """The sample as the probe's output document: wire member names, maps and timestamps marked."""
    t = shape.type_name
    if t == "structure":
        members = body_members(shape) if top and protocol == "rest-json" else shape.members
        return {output_wire_name(protocol, n, members[n]): to_wire(protocol, members[n], v)
                for n, v in value.items() if n in members}
    if t == "list":
        return [to_wire(protocol, shape.member, v) for v in value]
    if t == "map":
        return {"$map": [[k, to_wire(protocol, shape.value, v)] for k, v in value.items()]}
    if t == "timestamp":
        return {"$ts": value.timestamp()}
    if t == "blob":
        return base64.b64encode(value).decode()
    return value


def plain_json(shape, value):
    """The sample as a plain JSON value (an error's members: no markers)."""
    t = shape.type_name
    if t == "structure":
        return {shape.members[n].serialization.get("name", n): plain_json(shape.members[n], v)
                for n, v in value.items()}
    if t == "list":
        return [plain_json(shape.member, v) for v in value]
    if t == "map":
        return {k: plain_json(shape.value, v) for k, v in value.items()}
    if t == "timestamp":
        return value.timestamp()
    if t == "blob":
        return base64.b64encode(value).decode()
    return value


def service_case(m):
    return {k: v for k, v in m.metadata.items() if isinstance(v, str)}


def http_of(op):
    return {"method": op.http.get("method", "POST"), "requestUri": op.http.get("requestUri", "/"),
            "responseCode": op.http.get("responseCode", 200)}


def parse(protocol, resp, shape):
    response = {"status_code": resp["status"], "headers": HeadersDict(resp["headers"]),
                "body": resp["body"].encode()}
    return parsers.create_parser(protocol).parse(response, shape)


# ---------------------------------------------------------------------------------------------
# Outputs.


@pytest.mark.parametrize("name", SERVICES)
def test_outputs_parse_with_botocore(probe, name):
    m = model(name)
    protocol = m.protocol
    cases, expected, skipped = [], [], {}
    for op_name in m.operation_names:
        op = m.operation_model(op_name)
        shape = op.output_shape
        if shape is not None and shape.serialization.get("payload"):
            skipped[(name, op_name)] = PAYLOAD
            continue
        if shape is not None and any(mm.serialization.get("eventstream") for mm in shape.members.values()):
            skipped[(name, op_name)] = EVENT_STREAM
            continue
        value = sample(shape) if shape is not None else {}
        if protocol == "rest-json" and shape is not None:
            value = {k: v for k, v in value.items() if k in body_members(shape)}
            # The modelled success status, which the codec answers with.
            value.update({k: op.http.get("responseCode", 200) for k, mm in shape.members.items()
                          if mm.serialization.get("location") == "statusCode"})
        rid = f"req-{op_name}"
        cases.append({"kind": "output", "service": service_case(m), "operation": op_name,
                      "http": http_of(op), "request_id": rid,
                      "output": to_wire(protocol, shape, value, top=True) if shape is not None else {}})
        expected.append((op, value, rid))
    answers = probe(cases)
    failures = []
    for (op, value, rid), resp in zip(expected, answers):
        try:
            status = op.http.get("responseCode", 200)
            assert resp["status"] == status, f"status {resp['status']}: {resp['body'][:300]}"
            parsed = parse(protocol, resp, op.output_shape)
            meta = parsed.pop("ResponseMetadata", {})
            assert meta.get("RequestId") == rid, f"request ID {meta}"
            assert parsed == value, f"parsed {parsed!r:.600}\n want {value!r:.600}"
        except Exception as e:  # noqa: BLE001 - every failure is collected and reported below
            failures.append(f"{op.name}: {e}\n  body: {resp.get('body', '')[:400]}")
    assert not failures, f"{len(failures)} of {len(cases)} operations:\n" + "\n".join(failures[:15])
    print(f"{name}: {len(cases)} outputs checked; skipped: {sorted(op for _, op in skipped)}")
    assert skipped == {k: v for k, v in SKIPPED_OUTPUTS.items() if k[0] == name}
    assert len(cases) + len(skipped) == len(m.operation_names)


# ---------------------------------------------------------------------------------------------
# Errors.


def error_shapes(m):
    seen = {}
    for op_name in m.operation_names:
        for s in m.operation_model(op_name).error_shapes:
            seen.setdefault(s.name, s)
    return list(seen.values())


@pytest.mark.parametrize("name", SERVICES)
def test_errors_parse_with_botocore(probe, name):
    m = model(name)
    protocol = m.protocol
    # EC2 models no errors; an unmodelled one stands in for every service.
    shapes = error_shapes(m) + [None]
    some_op = m.operation_model(m.operation_names[0])
    cases, expected = [], []
    for s in shapes:
        if s is None:
            code, status, message_member, members, shape_members = "InternalFailure", 500, "message", {}, {}
        else:
            code = s.error_code
            status = s.metadata.get("error", {}).get("httpStatusCode", 400)
            message_member = "Message" if "Message" in s.members else "message"
            shape_members = {n: sm for n, sm in s.members.items()
                             if n not in ("message", "Message") and not sm.serialization.get("location")
                             and not (protocol in ("query", "ec2") and sm.type_name in ("map", "timestamp", "blob"))}
            members = {}
            for n, sm in shape_members.items():
                try:
                    members[n] = sample(sm, (s.name,), 1)
                except Skip:
                    continue
        message = f"{code}: it's <bad> & \"wrong\""
        rid = f"req-{code}"
        wire_members = {shape_members[n].serialization.get("name", n): plain_json(shape_members[n], v)
                        for n, v in members.items()}
        cases.append({"kind": "error", "service": service_case(m), "operation": some_op.name,
                      "http": http_of(some_op), "request_id": rid,
                      "error": {"code": code, "status": status, "message": message,
                                "message_member": message_member, "members": wire_members}})
        expected.append((s, code, status, message, message_member, members, rid))
    answers = probe(cases)
    failures = []
    for (s, code, status, message, message_member, members, rid), resp in zip(expected, answers):
        try:
            assert resp["status"] == status, f"status {resp['status']}"
            parsed = parse(protocol, resp, some_op.output_shape)
            assert parsed["Error"]["Code"] == code, parsed
            assert parsed["Error"]["Message"] == message, parsed
            assert parsed["ResponseMetadata"]["RequestId"] == rid, parsed
            if protocol == "query":
                assert parsed["Error"]["Type"] == ("Receiver" if status >= 500 else "Sender"), parsed
            if s is not None:
                # What the client's modelled exception carries (botocore parses the body again
                # with the error's shape).
                modeled = parse(protocol, resp, s)
                want = dict(members)
                if message_member in s.members and (protocol not in ("query", "ec2") or message_member == "Message"):
                    want[message_member] = message
                got = {k: v for k, v in modeled.items() if k in s.members}
                assert got == want, f"modelled {got!r:.500}\n want {want!r:.500}"
        except Exception as e:  # noqa: BLE001 - collected and reported below
            failures.append(f"{code}: {e}\n  body: {resp.get('body', '')[:400]}")
    assert not failures, f"{len(failures)} of {len(cases)} errors:\n" + "\n".join(failures[:15])


# ---------------------------------------------------------------------------------------------
# Requests.


def input_wire_name(protocol, name, m):
    ser = m.serialization
    if protocol == "ec2":
        if "queryName" in ser:
            return ser["queryName"]
        if "name" in ser:
            return ser["name"][0].upper() + ser["name"][1:]
        return name
    return ser.get("name", name)


def nothing_on_the_wire(v):
    """A structure of empty structures: the query serializers write no parameter for it."""
    return isinstance(v, dict) and all(nothing_on_the_wire(x) for x in v.values())


def diff(protocol, shape, want, got, path, out):
    """Records where the decoded document `got` differs from the sample `want` (scalars read as
    the shape's types)."""
    t = shape.type_name
    try:
        if t == "structure":
            if not isinstance(got, dict):
                out.append(f"{path}: {got!r:.100} is not a structure")
                return
            seen = set()
            for n, v in want.items():
                key = input_wire_name(protocol, n, shape.members[n])
                seen.add(key)
                if key not in got:
                    if nothing_on_the_wire(v) and protocol in ("query", "ec2"):
                        continue  # an empty structure sends no parameter at all
                    out.append(f"{path}.{key}: missing")
                    continue
                diff(protocol, shape.members[n], v, got[key], f"{path}.{key}", out)
            extra = set(got) - seen
            if extra:
                out.append(f"{path}: unexpected members {sorted(extra)}")
        elif t == "list":
            if not isinstance(got, list) or len(got) != len(want):
                out.append(f"{path}: {got!r:.100} is not a list of {len(want)}")
                return
            for i, (w, g) in enumerate(zip(want, got)):
                diff(protocol, shape.member, w, g, f"{path}[{i}]", out)
        elif t == "map":
            if not isinstance(got, dict) or set(got) != set(want):
                out.append(f"{path}: {got!r:.100} is not a map with keys {sorted(want)}")
                return
            for k, v in want.items():
                diff(protocol, shape.value, v, got[k], f"{path}{{{k}}}", out)
        elif t == "timestamp":
            if abs((parse_timestamp(got) - want).total_seconds()) >= 1:
                out.append(f"{path}: timestamp {got!r}")
        elif t == "blob":
            if base64.b64decode(got) != want:
                out.append(f"{path}: blob {got!r}")
        elif t == "boolean":
            if got not in (want, str(want).lower()):
                out.append(f"{path}: boolean {got!r}")
        elif t in ("integer", "long", "short", "byte"):
            if isinstance(got, bool) or int(got) != want:
                out.append(f"{path}: integer {got!r}")
        elif t in ("float", "double"):
            if float(got) != want:
                out.append(f"{path}: number {got!r}")
        elif got != want:
            out.append(f"{path}: {got!r} != {want!r}")
    except (TypeError, ValueError) as e:
        out.append(f"{path}: {got!r:.100}: {e}")


@pytest.mark.parametrize("name", SERVICES)
def test_requests_from_botocore_decode(probe, name):
    m = model(name)
    protocol = m.protocol
    serializer = serialize.create_serializer(protocol, include_validation=False)
    cases, expected, skipped = [], [], {}
    for op_name in m.operation_names:
        op = m.operation_model(op_name)
        shape = op.input_shape
        params = sample(shape) if shape is not None else {}
        if protocol == "rest-json" and shape is not None:
            if shape.serialization.get("payload"):
                skipped[(name, op_name)] = PAYLOAD
                continue
            if "?" in op.http.get("requestUri", ""):
                skipped[(name, op_name)] = URI_QUERY
                continue
            # Header bindings are read by handlers from `Call::headers`, not by the codec.
            params = {k: v for k, v in params.items()
                      if shape.members[k].serialization.get("location") not in ("header", "headers")}
        req = serializer.serialize_to_request(params, op)
        prepare_request_dict(req, endpoint_url="https://trellis.test")
        prepared = AWSRequest(method=req["method"], url=req["url"], data=req["body"],
                              headers=req["headers"]).prepare()
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode()
        url = urllib.parse.urlsplit(prepared.url)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        cases.append({"kind": "request", "service": service_case(m), "operation": op_name,
                      "http": http_of(op), "method": prepared.method, "path": path,
                      "headers": {k: v for k, v in prepared.headers.items() if k.lower() == "content-type"},
                      "body_b64": base64.b64encode(body).decode()})
        expected.append((op, params))
    answers = probe(cases)
    failures = []
    for (op, params), got in zip(expected, answers):
        if "input" not in got:
            failures.append(f"{op.name}: {got}")
            continue
        out = []
        if op.input_shape is not None:
            diff(protocol, op.input_shape, params, got["input"], "", out)
        elif got["input"] != {}:
            out.append(f"members without an input shape: {got['input']}")
        if out:
            failures.append(f"{op.name}: " + "; ".join(out[:5]))
    assert not failures, f"{len(failures)} of {len(cases)} operations:\n" + "\n".join(failures[:15])
    print(f"{name}: {len(cases)} requests checked; skipped: {sorted(op for _, op in skipped)}")
    assert skipped == {k: v for k, v in SKIPPED_REQUESTS.items() if k[0] == name}
    assert len(cases) + len(skipped) == len(m.operation_names)
