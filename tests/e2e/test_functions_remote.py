"""Remote functions: `trellis serve --lambda-endpoint URL` sends invocations of functions it does
not host to a Lambda-Invoke-compatible endpoint, SigV4-signed for `lambda` with the AWS_*
credentials of its environment. The remote here is a second Trellis, which verifies the
signature like AWS Lambda would."""

import os
import subprocess
import tempfile

import pytest
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, BIN, SECRET_KEY, Server, backends, error_code, unique
from functions_support import create_python, function_arn, invoke


class EdgeServer(Server):
    """A server whose unknown functions go to `remote`, signing with the test credentials."""

    def __init__(self, backend, remote, credentials=(ACCESS_KEY, SECRET_KEY)):
        key, secret = credentials
        super().__init__(backend, ["--lambda-endpoint", remote],
                         env={"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret})


@pytest.fixture(scope="module")
def pair():
    backend = backends()[-1]
    far = Server(backend).start()
    near = EdgeServer(backend, far.endpoint).start()
    yield near, far
    near.cleanup()
    far.cleanup()


def test_unknown_functions_are_invoked_remotely(pair):
    near, far = pair
    near_lam, far_lam = near.client("lambda"), far.client("lambda")
    name = unique("far")
    create_python(far_lam, name, Publish=True)
    far_lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    # By name, by ARN with an alias, with the log tail: all answered by the far server.
    resp, doc = invoke(near_lam, name, {"print": "ran far away"}, LogType="Tail")
    assert resp["StatusCode"] == 200 and doc["event"] == {"print": "ran far away"}
    assert resp["ExecutedVersion"] == "$LATEST"
    assert "ran far away" in open(os.path.join(far.data_dir, "logs", "functions", f"{name}.log")).read()
    assert not os.path.exists(os.path.join(near.data_dir, "logs", "functions", f"{name}.log"))
    resp, doc = invoke(near_lam, function_arn(name, "live"), {"n": 1})
    assert resp["ExecutedVersion"] == "1" and doc["function_version"] == "1"
    resp, doc = invoke(near_lam, name, {"fail": True}, Qualifier="live")
    assert resp["FunctionError"] == "Unhandled" and doc["errorType"] == "ValueError"

    # The remote's errors come back as the remote sent them.
    with pytest.raises(ClientError) as e:
        invoke(near_lam, unique("nowhere"), {})
    assert error_code(e) == "ResourceNotFoundException"

    # A function the near server has runs there, even if the far one has the same name.
    create_python(near_lam, name, source="def handler(e, c):\n    return 'near'\n")
    assert invoke(near_lam, name, {})[1] == "near"
    assert invoke(far_lam, name, {})[1]["version"] == "v1"


def test_member_accounts_never_invoke_remotely(pair):
    """The remote is called with the operator's credentials: a member account's invocations of
    functions it does not have stop at the near server, by name or by another account's ARN."""
    import configparser

    import boto3
    import botocore.config

    near, far = pair
    name = unique("far")
    create_python(far.client("lambda"), name)
    orgs = near.client("organizations")
    orgs.create_organization(FeatureSet="ALL")
    account = orgs.create_account(Email=f"{unique('m')}@example.com", AccountName="m")["CreateAccountStatus"]["AccountId"]
    p = subprocess.run([BIN, "accounts", "credentials", account, "--data-dir", near.data_dir]
                       + (["--store", near.store] if near.store else []),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    profile = configparser.ConfigParser()
    profile.read_string(p.stdout)
    creds = profile[f"account-{account}"]
    member = boto3.client("lambda", endpoint_url=near.endpoint, region_name="us-west-2",
                          aws_access_key_id=creds["aws_access_key_id"],
                          aws_secret_access_key=creds["aws_secret_access_key"],
                          config=botocore.config.Config(retries={"max_attempts": 1}))
    for target in (name, function_arn(name)):
        with pytest.raises(ClientError) as e:
            member.invoke(FunctionName=target, Payload=b"{}")
        assert error_code(e) == "ResourceNotFoundException", target
    assert not os.path.exists(os.path.join(far.data_dir, "logs", "functions", f"{name}.log"))
    # The management account still reaches it.
    resp, _ = invoke(near.client("lambda"), name, {})
    assert resp["StatusCode"] == 200


def test_wrong_credentials_surface_the_remote_refusal():
    far = Server(backends()[0]).start()
    near = EdgeServer(backends()[0], far.endpoint, credentials=("AKIAWRONGWRONGWRONG0", "wrong")).start()
    try:
        with pytest.raises(ClientError) as e:
            invoke(near.client("lambda"), unique("any"), {})
        assert error_code(e) == "UnrecognizedClientException"
    finally:
        near.cleanup()
        far.cleanup()


@pytest.mark.parametrize("flags,env,needle", [
    (["--lambda-endpoint", "http://127.0.0.1:1"], {}, "AWS_ACCESS_KEY_ID"),
    (["--lambda-endpoint", "ftp://example"], {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
     "--lambda-endpoint"),
    (["--function-concurrency", "0"], {}, "--function-concurrency"),
])
def test_function_flags_are_checked_before_serving(flags, env, needle):
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update(env)
    d = tempfile.mkdtemp()
    p = subprocess.run([BIN, "serve", "--data-dir", d, "--api-listen", "127.0.0.1:0",
                        "--dns-listen", "127.0.0.1:0", *flags],
                       capture_output=True, text=True, timeout=30, env=base)
    assert p.returncode != 0
    assert needle in p.stderr, p.stderr
    assert "API listening" not in p.stderr
