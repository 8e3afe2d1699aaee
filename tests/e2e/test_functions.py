"""The Lambda API of the function host with real clients (boto3 and the AWS CLI): function,
version and alias lifecycles, Invoke with its headers and errors, the SigV4 service name,
pagination, and persistence across a restart — on SQLite and PostgreSQL."""

import base64
import hashlib
import json
import os
import subprocess
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import BIN, error_code, signed, unique
from functions_support import (NODE_APP, PY_APP, ROLE, create_python, function_arn, invoke, lambda_cli,
                               log_result, py_zip, write_temp, zip_bytes)


def status_of(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_create_get_list_delete(server, lam):
    name = unique("life")
    package = py_zip()
    created = create_python(lam, name, Description="first", Environment={"Variables": {"APP_MODE": "test"}})
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["FunctionName"] == name
    assert created["FunctionArn"] == function_arn(name)
    assert created["Runtime"] == "python3.12"
    assert created["Handler"] == "app.handler"
    assert created["Role"] == ROLE
    assert created["Timeout"] == 3 and created["MemorySize"] == 128
    assert created["Version"] == "$LATEST"
    assert created["State"] == "Active" and created["LastUpdateStatus"] == "Successful"
    assert created["PackageType"] == "Zip"
    assert created["CodeSize"] == len(package)
    assert created["CodeSha256"] == base64.b64encode(hashlib.sha256(package).digest()).decode()
    assert created["Environment"] == {"Variables": {"APP_MODE": "test"}}
    assert created["Description"] == "first"
    assert created["RevisionId"]

    # By name, partial ARN and full ARN alike.
    for ref in (name, f"111122223333:function:{name}", function_arn(name)):
        got = lam.get_function(FunctionName=ref)
        assert got["Configuration"]["FunctionArn"] == function_arn(name)
        assert got["Configuration"]["RevisionId"] == created["RevisionId"]
    # Code.Location downloads the package, like Lambda's presigned link.
    location = lam.get_function(FunctionName=name)["Code"]["Location"]
    with urllib.request.urlopen(location, timeout=10) as r:
        assert r.read() == package
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(location.replace("Signature=", "Signature=0"), timeout=10)
    assert e.value.code == 403

    conf = lam.get_function_configuration(FunctionName=name)
    assert conf["CodeSha256"] == created["CodeSha256"]
    names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert name in names

    deleted = lam.delete_function(FunctionName=name)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName=name)
    assert error_code(e) == "ResourceNotFoundException"
    assert status_of(e) == 404
    assert e.value.response["Error"]["Message"] == f"Function not found: {function_arn(name)}"
    with pytest.raises(ClientError) as e:
        lam.delete_function(FunctionName=name)
    assert error_code(e) == "ResourceNotFoundException"


@pytest.mark.parametrize("overrides,code", [
    ({"Runtime": "java21"}, "InvalidParameterValueException"),
    ({"Runtime": None}, "InvalidParameterValueException"),
    ({"Handler": None}, "InvalidParameterValueException"),
    ({"Timeout": 901}, "InvalidParameterValueException"),
    ({"Timeout": 0}, "ValidationException"),
    ({"MemorySize": 64}, "ValidationException"),
    ({"MemorySize": 20000}, "InvalidParameterValueException"),
    ({"Role": "not-a-role"}, "ValidationException"),
    ({"Role": None}, "ValidationException"),
    ({"Code": {"ZipFile": b"this is not a zip"}}, "InvalidParameterValueException"),
    ({"Code": {"S3Bucket": "bucket", "S3Key": "key.zip"}}, "InvalidParameterValueException"),
    ({"PackageType": "Image", "Code": {"ImageUri": "x"}}, "InvalidParameterValueException"),
    ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, "InvalidParameterValueException"),
    ({"Description": "d" * 257}, "ValidationException"),
    ({"FunctionName": "has spaces"}, "ValidationException"),
    ({"FunctionName": "arn:aws:lambda:us-west-2:111122223333:function:x:qualified"}, "ValidationException"),
])
def test_create_is_validated(lam, overrides, code):
    params = dict(FunctionName=unique("bad"), Runtime="python3.12", Role=ROLE, Handler="app.handler",
                  Code={"ZipFile": py_zip()})
    for k, v in overrides.items():
        if v is None:
            params.pop(k)
        else:
            params[k] = v
    with pytest.raises(ClientError) as e:
        lam.create_function(**params)
    assert error_code(e) == code, e.value.response
    assert status_of(e) == 400


def test_create_conflicts_on_an_existing_name(lam):
    name = unique("dup")
    create_python(lam, name)
    with pytest.raises(ClientError) as e:
        create_python(lam, name)
    assert error_code(e) == "ResourceConflictException"
    assert status_of(e) == 409
    assert name in e.value.response["Error"]["Message"]


def test_invoke_python_and_node_with_log_tail(lam):
    py = unique("py")
    create_python(lam, py, Environment={"Variables": {"APP_COLOR": "green"}}, MemorySize=256)
    resp, doc = invoke(lam, py, {"print": "hello from the handler", "n": 1}, LogType="Tail")
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    assert resp["ExecutedVersion"] == "$LATEST"
    assert doc["event"] == {"print": "hello from the handler", "n": 1}
    assert doc["env"] == {"APP_COLOR": "green"}
    assert doc["function_version"] == "$LATEST"
    assert doc["invoked_arn"] == function_arn(py)
    assert doc["memory"] == "256"
    tail = log_result(resp)
    assert "hello from the handler" in tail
    assert "START RequestId:" in tail and "END RequestId:" in tail and "REPORT RequestId:" in tail
    assert "Memory Size: 256 MB" in tail
    # Without LogType there is no log header.
    resp, _ = invoke(lam, py, {})
    assert "LogResult" not in resp

    node = unique("node")
    lam.create_function(FunctionName=node, Runtime="nodejs20.x", Role=ROLE, Handler="index.handler",
                        Code={"ZipFile": zip_bytes({"index.js": NODE_APP})})
    resp, doc = invoke(lam, node, {"from": "test"}, LogType="Tail")
    assert doc["runtime"] == "node" and doc["event"] == {"from": "test"}
    assert 'node handling {"from":"test"}' in log_result(resp)


def test_function_errors_are_unhandled(lam):
    py = unique("pyerr")
    create_python(lam, py)
    resp, doc = invoke(lam, py, {"fail": True})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert doc["errorType"] == "ValueError"
    assert doc["errorMessage"] == "asked to fail"
    assert isinstance(doc["stackTrace"], list) and doc["stackTrace"]

    node = unique("nodeerr")
    lam.create_function(FunctionName=node, Runtime="nodejs22.x", Role=ROLE, Handler="index.handler",
                        Code={"ZipFile": zip_bytes({"index.js": NODE_APP})})
    resp, doc = invoke(lam, node, {"fail": True})
    assert resp["FunctionError"] == "Unhandled"
    assert doc["errorType"] == "RangeError"
    assert doc["errorMessage"] == "node was asked to fail"
    assert isinstance(doc["trace"], list)


def test_invoke_types_and_request_errors(lam):
    name = unique("inv")
    create_python(lam, name)
    dry = lam.invoke(FunctionName=name, InvocationType="DryRun")
    assert dry["StatusCode"] == 204
    event = lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"async": true}')
    assert event["StatusCode"] == 202
    assert event["Payload"].read() == b""

    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=unique("missing"))
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b"{not json")
    assert error_code(e) == "InvalidRequestContentException"
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=json.dumps({"x": "y" * (6 * 1024 * 1024)}).encode())
    assert error_code(e) == "RequestTooLargeException"
    assert status_of(e) == 413
    assert "6291456 bytes" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Qualifier="9")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=f"{name}:1", Qualifier="2")
    assert error_code(e) == "InvalidParameterValueException"


def test_update_code_and_configuration(lam):
    name = unique("upd")
    created = create_python(lam, name)
    _, doc = invoke(lam, name, {})
    assert doc["version"] == "v1"

    updated = lam.update_function_code(FunctionName=name, ZipFile=py_zip(PY_APP.replace('"v1"', '"v2"')))
    assert updated["CodeSha256"] != created["CodeSha256"]
    assert updated["RevisionId"] != created["RevisionId"]
    _, doc = invoke(lam, name, {})
    assert doc["version"] == "v2"

    conf = lam.update_function_configuration(FunctionName=name, Timeout=30, MemorySize=512,
                                             Environment={"Variables": {"APP_STAGE": "two"}},
                                             Description="updated")
    assert (conf["Timeout"], conf["MemorySize"], conf["Description"]) == (30, 512, "updated")
    _, doc = invoke(lam, name, {})
    assert doc["env"] == {"APP_STAGE": "two"} and doc["memory"] == "512"

    with pytest.raises(ClientError) as e:
        lam.update_function_configuration(FunctionName=name, Timeout=5, RevisionId=created["RevisionId"])
    assert error_code(e) == "PreconditionFailedException"
    assert status_of(e) == 412
    ok = lam.update_function_configuration(FunctionName=name, Timeout=5, RevisionId=conf["RevisionId"])
    assert ok["Timeout"] == 5
    with pytest.raises(ClientError) as e:
        lam.update_function_code(FunctionName=name, ZipFile=b"garbage")
    assert error_code(e) == "InvalidParameterValueException"
    with pytest.raises(ClientError) as e:
        lam.update_function_configuration(FunctionName=unique("nope"), Timeout=5)
    assert error_code(e) == "ResourceNotFoundException"


def test_versions_and_aliases(lam):
    name = unique("ver")
    created = create_python(lam, name, Publish=True)
    assert created["Version"] == "1"
    assert created["FunctionArn"] == function_arn(name, "1")
    # Nothing changed since version 1: publishing again returns it.
    assert lam.publish_version(FunctionName=name)["Version"] == "1"

    lam.update_function_code(FunctionName=name, ZipFile=py_zip(PY_APP.replace('"v1"', '"v2"')))
    v2 = lam.publish_version(FunctionName=name, Description="second")
    assert v2["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert v2["Version"] == "2" and v2["Description"] == "second"
    with pytest.raises(ClientError) as e:
        lam.publish_version(FunctionName=name, CodeSha256="AAAA")
    assert error_code(e) == "InvalidParameterValueException"
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]]
    assert versions == ["$LATEST", "1", "2"]

    # Versions are immutable snapshots: $LATEST moves on, 1 and 2 stay.
    lam.update_function_code(FunctionName=name, ZipFile=py_zip(PY_APP.replace('"v1"', '"v3"')))
    resp, doc = invoke(lam, name, {}, Qualifier="1")
    assert doc["version"] == "v1" and resp["ExecutedVersion"] == "1"
    assert doc["function_version"] == "1"
    _, doc = invoke(lam, f"{name}:2", {})
    assert doc["version"] == "v2"
    resp, doc = invoke(lam, name, {})
    assert doc["version"] == "v3" and resp["ExecutedVersion"] == "$LATEST"
    assert lam.get_function(FunctionName=name, Qualifier="1")["Configuration"]["Version"] == "1"

    alias = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="prod")
    assert alias["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert alias["AliasArn"] == function_arn(name, "live")
    resp, doc = invoke(lam, name, {}, Qualifier="live")
    assert doc["version"] == "v1" and resp["ExecutedVersion"] == "1"
    assert doc["invoked_arn"] == function_arn(name, "live")
    _, doc = invoke(lam, function_arn(name, "live"), {})
    assert doc["version"] == "v1"
    with pytest.raises(ClientError) as e:
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2")
    assert error_code(e) == "ResourceConflictException"
    with pytest.raises(ClientError) as e:
        lam.create_alias(FunctionName=name, Name="broken", FunctionVersion="7")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lam.create_alias(FunctionName=name, Name="123", FunctionVersion="1")
    assert error_code(e) == "ValidationException"

    got = lam.get_alias(FunctionName=name, Name="live")
    assert (got["FunctionVersion"], got["Description"]) == ("1", "prod")
    with pytest.raises(ClientError) as e:
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RevisionId="stale")
    assert error_code(e) == "PreconditionFailedException"
    moved = lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RevisionId=got["RevisionId"])
    assert moved["FunctionVersion"] == "2"
    _, doc = invoke(lam, name, {}, Qualifier="live")
    assert doc["version"] == "v2"
    lam.create_alias(FunctionName=name, Name="edge", FunctionVersion="$LATEST")
    listed = lam.list_aliases(FunctionName=name)["Aliases"]
    assert [(a["Name"], a["FunctionVersion"]) for a in listed] == [("live", "2"), ("edge", "$LATEST")]
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name, FunctionVersion="2")["Aliases"]] == ["live"]

    # A version an alias uses cannot be deleted; others can.
    with pytest.raises(ClientError) as e:
        lam.delete_function(FunctionName=name, Qualifier="2")
    assert error_code(e) == "ResourceConflictException"
    assert "live" in e.value.response["Error"]["Message"]
    assert lam.delete_function(FunctionName=name, Qualifier="1")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        invoke(lam, name, {}, Qualifier="1")
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lam.delete_function(FunctionName=name, Qualifier="$LATEST")
    assert error_code(e) == "InvalidParameterValueException"

    assert lam.delete_alias(FunctionName=name, Name="live")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        lam.get_alias(FunctionName=name, Name="live")
    assert error_code(e) == "ResourceNotFoundException"
    # Version numbers are never reused.
    lam.update_function_code(FunctionName=name, ZipFile=py_zip(PY_APP.replace('"v1"', '"v4"')))
    assert lam.publish_version(FunctionName=name)["Version"] == "3"
    # Deleting the function takes its versions and aliases with it.
    lam.delete_function(FunctionName=name)
    with pytest.raises(ClientError) as e:
        lam.get_alias(FunctionName=name, Name="edge")
    assert error_code(e) == "ResourceNotFoundException"


def test_weighted_alias_routes_to_both_versions(lam):
    name = unique("weights")
    create_python(lam, name, Publish=True)
    lam.update_function_code(FunctionName=name, ZipFile=py_zip(PY_APP.replace('"v1"', '"v2"')))
    lam.publish_version(FunctionName=name)
    alias = lam.create_alias(FunctionName=name, Name="canary", FunctionVersion="1",
                             RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    assert alias["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.5}}
    seen = {invoke(lam, name, {}, Qualifier="canary")[1]["version"] for _ in range(40)}
    # 40 fair coin flips all landing on one side: probability 2**-39.
    assert seen == {"v1", "v2"}


def test_list_functions_paginates(lam):
    prefix = unique("page")
    names = [f"{prefix}-{i}" for i in range(5)]
    for n in names:
        create_python(lam, n)
    seen, marker, pages = [], None, 0
    while True:
        kw = {"MaxItems": 2}
        if marker:
            kw["Marker"] = marker
        page = lam.list_functions(**kw)
        pages += 1
        assert len(page["Functions"]) <= 2
        seen += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert [n for n in seen if n.startswith(prefix)] == names
    assert pages >= 3
    # The paginator botocore generates from the model agrees.
    all_names = [f["FunctionName"] for p in lam.get_paginator("list_functions").paginate(
        PaginationConfig={"PageSize": 2}) for f in p["Functions"]]
    assert all_names == seen


def test_sigv4_service_name_follows_the_path(server):
    status, _, _ = signed(server, "GET", "/2015-03-31/functions", service="lambda")
    assert status == 200
    status, headers, _ = signed(server, "GET", "/2015-03-31/functions", service="vpc-lattice")
    assert status == 403
    assert headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")
    status, headers, _ = signed(server, "GET", "/servicenetworks", service="lambda")
    assert status == 403
    assert headers["x-amzn-ErrorType"].startswith("InvalidSignatureException")
    status, _, _ = signed(server, "GET", "/servicenetworks", service="vpc-lattice")
    assert status == 200


BAD_BODIES = [
    ("POST", "/2015-03-31/functions", b"{not json"),
    ("POST", "/2015-03-31/functions", b"[1, 2]"),
    ("POST", "/2015-03-31/functions", b'{"FunctionName": "f", "Timeout": "soon"}'),
    ("PUT", "/2015-03-31/functions/{name}/configuration", b'{"MemorySize": {"a": 1}}'),
    ("POST", "/2015-03-31/functions/{name}/aliases", b'{"Name": ["x"]}'),
]


@pytest.mark.parametrize("method,path,body", BAD_BODIES)
def test_bodies_that_are_not_the_input_document(server, lam, method, path, body):
    """A body that is not JSON, not an object, or has a member of the wrong type is
    InvalidRequestContentException (400), as Lambda answers, and changes nothing."""
    name = unique("body")
    create_python(lam, name)
    before = lam.get_function_configuration(FunctionName=name)["RevisionId"]
    status, headers, raw = signed(server, method, path.format(name=name), body, service="lambda")
    assert status == 400, raw
    assert headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert json.loads(raw)["message"]
    assert lam.get_function_configuration(FunctionName=name)["RevisionId"] == before
    assert lam.list_aliases(FunctionName=name)["Aliases"] == []


def test_sigv4_unsigned_lambda_requests_are_refused(server):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.endpoint + "/2015-03-31/functions", timeout=10)
    assert e.value.code == 403
    assert e.value.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationTokenException")


def test_aws_cli_lifecycle(server):
    name = unique("cli")
    path = write_temp(py_zip(), ".zip")
    created = lambda_cli(server, "create-function", "--function-name", name, "--runtime", "python3.12",
                         "--handler", "app.handler", "--role", ROLE, "--zip-file", f"fileb://{path}",
                         "--timeout", "10", "--environment", "Variables={APP_FROM=cli}")
    assert created["FunctionName"] == name and created["Timeout"] == 10
    out = write_temp(b"", ".json")
    # AWS CLI v1 sends --payload as it is (v2 would need --cli-binary-format raw-in-base64-out).
    meta = lambda_cli(server, "invoke", "--function-name", name, "--payload", '{"print": "via the CLI"}',
                      "--log-type", "Tail", out)
    assert meta["StatusCode"] == 200
    assert "via the CLI" in base64.b64decode(meta["LogResult"]).decode()
    doc = json.load(open(out))
    assert doc["env"] == {"APP_FROM": "cli"} and doc["event"] == {"print": "via the CLI"}
    got = lambda_cli(server, "get-function", "--function-name", name)
    assert got["Configuration"]["Timeout"] == 10
    listed = lambda_cli(server, "list-functions")
    assert name in [f["FunctionName"] for f in listed["Functions"]]
    v = lambda_cli(server, "publish-version", "--function-name", name)
    assert v["Version"] == "1"
    a = lambda_cli(server, "create-alias", "--function-name", name, "--name", "prod", "--function-version", "1")
    assert a["FunctionVersion"] == "1"
    lambda_cli(server, "wait", "function-active", "--function-name", name)
    lambda_cli(server, "delete-function", "--function-name", name)
    failed = lambda_cli(server, "get-function", "--function-name", name, check=False)
    assert failed.returncode != 0 and "ResourceNotFoundException" in failed.stderr


def test_functions_survive_a_restart_and_logs_are_readable(server, lam):
    name = unique("durable")
    create_python(lam, name, Publish=True)
    lam.create_alias(FunctionName=name, Name="stable", FunctionVersion="1")
    _, before = invoke(lam, name, {"print": "before the restart"})
    server.restart()
    lam = server.client("lambda")
    assert lam.get_alias(FunctionName=name, Name="stable")["FunctionVersion"] == "1"
    resp, after = invoke(lam, name, {"print": "after the restart"}, Qualifier="stable")
    assert after["version"] == "v1" and resp["ExecutedVersion"] == "1"
    assert after["instance"] != before["instance"], "a new server runs new processes"

    # The per-function log, through the CLI and at its documented path.
    log_path = os.path.join(server.data_dir, "logs", "functions", f"{name}.log")
    text = open(log_path).read()
    assert "before the restart" in text and "after the restart" in text
    p = subprocess.run([BIN, "logs", "function", name, "--data-dir", server.data_dir],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "before the restart" in p.stdout and "after the restart" in p.stdout
    assert p.stdout.count("REPORT RequestId:") == 2
    p = subprocess.run([BIN, "logs", "function", unique("never"), "--data-dir", server.data_dir],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "no log" in p.stderr
