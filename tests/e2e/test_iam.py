"""IAM users, their access keys and inline policies, STS GetCallerIdentity, and identity-based
authorization of every API call, end to end: the AWS CLI (as root) manages users, boto3 clients
and the CLI built from the created users' keys call Lattice, Lambda, Tagging, IAM and STS.

A change to identities takes effect once the server's identity index has the write's revision
(`identity` in `/_trellis/revision`); the tests wait on that, never on a clock."""

import json
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from conftest import (ACCOUNT, REGION, STARTUP_TIMEOUT_S, Server, error_code, poll, running, unique)
from test_readme import run_readme_block

READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["vpc-lattice:Get*", "vpc-lattice:List*"], "Resource": "*"}],
}


def iam_cli(server, *args, check=True):
    return server.cli(*args, service="iam", check=check)


def wait_identity(server, timeout=STARTUP_TIMEOUT_S):
    """Returns once the identity index has every committed revision (a bounded poll of
    `/_trellis/revision`)."""
    deadline = time.monotonic() + timeout
    while True:
        rev = server.revision()
        if rev["identity"] >= rev["store"]:
            return rev
        if time.monotonic() > deadline:
            raise AssertionError(f"identity index behind the store after {timeout}s: {rev}")
        time.sleep(0.01)


def new_user(server, policy=None, path=None):
    """A user with one access key (and `policy` as its inline policy `p`), created with the CLI.
    Returns (user, key)."""
    name = unique("user")
    args = ["create-user", "--user-name", name] + (["--path", path] if path else [])
    user = iam_cli(server, *args)["User"]
    key = iam_cli(server, "create-access-key", "--user-name", name)["AccessKey"]
    if policy is not None:
        iam_cli(server, "put-user-policy", "--user-name", name, "--policy-name", "p",
                "--policy-document", json.dumps(policy))
    return user, key


def as_user(server, key, service="vpc-lattice"):
    return server.client(service, access_key=key["AccessKeyId"], secret_key=key["SecretAccessKey"])


def user_cli(server, key, service, *args):
    """The AWS CLI with the user's keys; returns the completed process."""
    env = server.cli_env()
    env.update(AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    cmd = ["aws", service, *args, "--endpoint-url", server.endpoint, "--output", "json"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def denied(user_arn, action, resource):
    return (f"User: {user_arn} is not authorized to perform: {action} on resource: {resource} "
            f"because no identity-based policy allows the {action} action")


def refused(excinfo):
    err = excinfo.value.response
    return err["Error"]["Code"], err["Error"]["Message"], err["ResponseMetadata"]["HTTPStatusCode"]


def test_cli_manages_users_keys_and_policies(server):
    name = unique("alice")
    user = iam_cli(server, "create-user", "--user-name", name, "--path", "/team/")["User"]
    assert user["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/team/{name}"
    assert user["UserId"].startswith("AIDA") and len(user["UserId"]) == 21
    assert user["Path"] == "/team/" and user["UserName"] == name
    # Names are unique regardless of case, as in IAM.
    p = iam_cli(server, "create-user", "--user-name", name.upper(), check=False)
    assert p.returncode != 0 and "EntityAlreadyExists" in p.stderr, p.stderr

    key = iam_cli(server, "create-access-key", "--user-name", name)["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["AccessKeyId"]) == 20
    assert len(key["SecretAccessKey"]) == 40 and key["Status"] == "Active"
    # Nothing but CreateAccessKey shows the secret, and the server never logs it.
    listed = iam_cli(server, "list-access-keys", "--user-name", name)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]
    assert "SecretAccessKey" not in json.dumps(listed)
    got = iam_cli(server, "get-user", "--user-name", name)["User"]
    assert got == user

    iam_cli(server, "put-user-policy", "--user-name", name, "--policy-name", "read-only",
            "--policy-document", json.dumps(READ_ONLY))
    # IAM returns the document URL-encoded; the CLI decodes it.
    doc = iam_cli(server, "get-user-policy", "--user-name", name, "--policy-name", "read-only")
    assert doc["PolicyDocument"] == READ_ONLY and doc["UserName"] == name
    assert iam_cli(server, "list-user-policies", "--user-name", name)["PolicyNames"] == ["read-only"]
    users = iam_cli(server, "list-users", "--path-prefix", "/team/")["Users"]
    assert name in [u["UserName"] for u in users]

    root = server.cli("get-caller-identity", service="sts")
    assert root == {"UserId": ACCOUNT, "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:root"}
    p = user_cli(server, key, "sts", "get-caller-identity")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"UserId": user["UserId"], "Account": ACCOUNT, "Arn": user["Arn"]}
    log = open(server.log_path, errors="replace").read()
    assert key["SecretAccessKey"] not in log


def test_a_read_only_user_reads_and_is_refused_writes(server, lattice, svc):
    user, key = new_user(server, READ_ONLY)
    client = as_user(server, key)
    assert svc["id"] in [s["id"] for s in client.list_services()["items"]]
    assert client.get_service(serviceIdentifier=svc["id"])["arn"] == svc["arn"]
    with pytest.raises(ClientError) as e:
        client.create_service(name=unique("denied"))
    assert refused(e) == ("AccessDeniedException",
                          denied(user["Arn"], "vpc-lattice:CreateService", "*"), 403)
    with pytest.raises(ClientError) as e:
        client.delete_service(serviceIdentifier=svc["id"])
    assert refused(e) == ("AccessDeniedException",
                          denied(user["Arn"], "vpc-lattice:DeleteService", svc["arn"]), 403)
    # Nothing was written on its behalf.
    assert lattice.get_service(serviceIdentifier=svc["id"])["status"] == "ACTIVE"
    # The CLI with the user's keys, as the README shows.
    p = user_cli(server, key, "vpc-lattice", "list-services")
    assert p.returncode == 0, p.stderr
    p = user_cli(server, key, "vpc-lattice", "create-service", "--name", unique("cli"))
    assert p.returncode != 0 and "AccessDeniedException" in p.stderr, p.stderr


def test_a_user_without_policy_can_only_ask_who_it_is(server):
    user, key = new_user(server)
    assert as_user(server, key, "sts").get_caller_identity()["Arn"] == user["Arn"]
    cases = [
        ("vpc-lattice", lambda c: c.list_services(), "AccessDeniedException", "vpc-lattice:ListServices"),
        ("lambda", lambda c: c.list_functions(), "AccessDeniedException", "lambda:ListFunctions"),
        ("resourcegroupstaggingapi", lambda c: c.get_resources(), "AccessDeniedException", "tag:GetResources"),
        ("iam", lambda c: c.list_users(), "AccessDenied", "iam:ListUsers"),
    ]
    for service, call, code, action in cases:
        with pytest.raises(ClientError) as e:
            call(as_user(server, key, service))
        assert refused(e) == (code, denied(user["Arn"], action, "*"), 403), service
    # Its own user is a resource it is refused too.
    with pytest.raises(ClientError) as e:
        as_user(server, key, "iam").get_user()
    assert refused(e) == ("AccessDenied", denied(user["Arn"], "iam:GetUser", user["Arn"]), 403)


def test_an_explicit_deny_beats_an_allow(server, lattice, svc):
    other = lattice.create_service(name=unique("other"))
    try:
        user, key = new_user(server, {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "vpc-lattice:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "vpc-lattice:GetService", "Resource": svc["arn"]},
            ],
        })
        client = as_user(server, key)
        assert client.get_service(serviceIdentifier=other["id"])["id"] == other["id"]
        for identifier in (svc["id"], svc["arn"]):
            with pytest.raises(ClientError) as e:
                client.get_service(serviceIdentifier=identifier)
            assert refused(e) == (
                "AccessDeniedException",
                f"User: {user['Arn']} is not authorized to perform: vpc-lattice:GetService on resource: "
                f"{svc['arn']} with an explicit deny in an identity-based policy", 403)
    finally:
        lattice.delete_service(serviceIdentifier=other["id"])


def test_policy_changes_take_effect_at_the_next_revision(server, svc):
    user, key = new_user(server)
    client = as_user(server, key)
    with pytest.raises(ClientError) as e:
        client.get_service(serviceIdentifier=svc["id"])
    assert error_code(e) == "AccessDeniedException"
    iam_cli(server, "put-user-policy", "--user-name", user["UserName"], "--policy-name", "p",
            "--policy-document", json.dumps(READ_ONLY))
    wait_identity(server)
    assert client.get_service(serviceIdentifier=svc["id"])["id"] == svc["id"]
    iam_cli(server, "delete-user-policy", "--user-name", user["UserName"], "--policy-name", "p")
    wait_identity(server)
    with pytest.raises(ClientError) as e:
        client.get_service(serviceIdentifier=svc["id"])
    assert error_code(e) == "AccessDeniedException"


def test_a_deactivated_key_is_refused_and_a_reactivated_one_accepted(server):
    user, key = new_user(server, READ_ONLY)
    client, sts = as_user(server, key), as_user(server, key, "sts")
    client.list_services()
    iam_cli(server, "update-access-key", "--user-name", user["UserName"], "--access-key-id",
            key["AccessKeyId"], "--status", "Inactive")
    wait_identity(server)
    with pytest.raises(ClientError) as e:
        client.list_services()
    assert refused(e)[0::2] == ("UnrecognizedClientException", 403)
    # The query services answer in their own vocabulary.
    with pytest.raises(ClientError) as e:
        sts.get_caller_identity()
    assert refused(e) == ("InvalidClientTokenId", "The security token included in the request is invalid.", 403)
    listed = iam_cli(server, "list-access-keys", "--user-name", user["UserName"])["AccessKeyMetadata"]
    assert [k["Status"] for k in listed] == ["Inactive"]
    iam_cli(server, "update-access-key", "--user-name", user["UserName"], "--access-key-id",
            key["AccessKeyId"], "--status", "Active")
    wait_identity(server)
    assert sts.get_caller_identity()["Arn"] == user["Arn"]


def test_delete_user_conflicts_until_keys_and_policies_are_gone(server):
    user, key = new_user(server, READ_ONLY)
    name = user["UserName"]
    client = as_user(server, key)
    client.list_services()
    # Keys first, then policies, as IAM words it.
    for message in ("must delete access keys first", "must delete policies first"):
        p = iam_cli(server, "delete-user", "--user-name", name, check=False)
        assert p.returncode != 0 and "DeleteConflict" in p.stderr and message in p.stderr, p.stderr
        if "access keys" in message:
            iam_cli(server, "delete-access-key", "--user-name", name, "--access-key-id", key["AccessKeyId"])
    iam_cli(server, "delete-user-policy", "--user-name", name, "--policy-name", "p")
    iam_cli(server, "delete-user", "--user-name", name)
    wait_identity(server)
    with pytest.raises(ClientError) as e:
        client.list_services()
    assert error_code(e) == "UnrecognizedClientException"
    p = iam_cli(server, "get-user", "--user-name", name, check=False)
    assert p.returncode != 0 and "NoSuchEntity" in p.stderr, p.stderr


def test_a_deleted_users_key_is_refused(server):
    user, key = new_user(server, READ_ONLY)
    sts = as_user(server, key, "sts")
    assert sts.get_caller_identity()["UserId"] == user["UserId"]
    iam = server.client("iam")
    iam.delete_access_key(UserName=user["UserName"], AccessKeyId=key["AccessKeyId"])
    iam.delete_user_policy(UserName=user["UserName"], PolicyName="p")
    iam.delete_user(UserName=user["UserName"])
    wait_identity(server)
    with pytest.raises(ClientError) as e:
        sts.get_caller_identity()
    assert error_code(e) == "InvalidClientTokenId"
    # A user of the same name later is a different user: the old key stays refused.
    iam.create_user(UserName=user["UserName"])
    wait_identity(server)
    with pytest.raises(ClientError) as e:
        sts.get_caller_identity()
    assert error_code(e) == "InvalidClientTokenId"
    iam.delete_user(UserName=user["UserName"])


def test_policies_and_limits_are_validated(server):
    iam = server.client("iam")
    name = unique("v")
    iam.create_user(UserName=name)
    cases = [
        ("{", "MalformedPolicyDocument"),
        (json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "iam:*", "Resource": "*"}]}), "MalformedPolicyDocument"),
        (json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*"}]}),
         "MalformedPolicyDocument"),
        (json.dumps(READ_ONLY) + " " * 6144, "LimitExceeded"),
    ]
    for document, code in cases:
        with pytest.raises(ClientError) as e:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=document)
        assert error_code(e) == code, document[:80]
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == []
    # Two keys per user.
    keys = [iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"] for _ in range(2)]
    with pytest.raises(ClientError) as e:
        iam.create_access_key(UserName=name)
    assert error_code(e) == "LimitExceeded"
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName=unique("nobody"))
    assert error_code(e) == "NoSuchEntity"
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName="not a name")
    assert error_code(e) == "ValidationError"
    for k in keys:
        iam.delete_access_key(UserName=name, AccessKeyId=k)
    iam.delete_user(UserName=name)


def test_a_user_may_manage_what_its_policy_allows(server):
    # Users under /ops/ may be managed by the operator user; others may not.
    user, key = new_user(server, {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": f"arn:aws:iam::{ACCOUNT}:user/ops/*"}],
    })
    iam = as_user(server, key, "iam")
    ops_name, other = unique("ops"), unique("other")
    created = iam.create_user(UserName=ops_name, Path="/ops/")["User"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/ops/{ops_name}"
    assert iam.get_user(UserName=ops_name)["User"]["UserId"] == created["UserId"]
    with pytest.raises(ClientError) as e:
        iam.create_user(UserName=other)
    assert refused(e) == ("AccessDenied", denied(user["Arn"], "iam:CreateUser",
                                                 f"arn:aws:iam::{ACCOUNT}:user/{other}"), 403)
    iam.delete_user(UserName=ops_name)


def test_last_use_is_recorded(server):
    user, key = new_user(server, READ_ONLY)
    iam = server.client("iam")
    never = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])
    assert never["UserName"] == user["UserName"]
    assert never["AccessKeyLastUsed"]["ServiceName"] == "N/A"
    as_user(server, key).list_services()

    def recorded():
        wait_identity(server)
        last = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"])["AccessKeyLastUsed"]
        return last if last["ServiceName"] != "N/A" else None

    # Written off the request path: a bounded poll of what GetAccessKeyLastUsed reports.
    last = poll("the key's last use to be recorded", recorded, STARTUP_TIMEOUT_S)
    assert last["ServiceName"] == "vpc-lattice" and last["Region"] == REGION
    # At most one write per key per minute: more calls do not move the revision.
    before = server.revision()["store"]
    for _ in range(5):
        as_user(server, key).list_services()
    assert server.revision()["store"] == before


def test_identities_survive_a_restart(server):
    # A server of its own: a restart moves the API to a new port, which the module's clients
    # would not follow.
    own = running(Server(server.backend))
    s = next(own)
    try:
        svc = s.client().create_service(name=unique("kept"))
        user, key = new_user(s, READ_ONLY)
        inactive_user, inactive = new_user(s, READ_ONLY)
        iam_cli(s, "update-access-key", "--user-name", inactive_user["UserName"],
                "--access-key-id", inactive["AccessKeyId"], "--status", "Inactive")
        s.restart()
        client = as_user(s, key)
        assert client.get_service(serviceIdentifier=svc["id"])["id"] == svc["id"]
        with pytest.raises(ClientError) as e:
            client.create_service(name=unique("denied"))
        assert error_code(e) == "AccessDeniedException"
        with pytest.raises(ClientError) as e:
            as_user(s, inactive).list_services()
        assert error_code(e) == "UnrecognizedClientException"
        assert iam_cli(s, "get-user", "--user-name", user["UserName"])["User"]["Arn"] == user["Arn"]
    finally:
        own.close()


def test_readme_iam_section_runs_as_written(server, tmp_path):
    """The README's "IAM users and policies" example, only the endpoint and the credentials file
    pointed at this server: the reader may list services and is refused CreateService."""
    p = run_readme_block(server, "iam", tmp_path)
    assert f"arn:aws:iam::{ACCOUNT}:user/reader" in p.stdout
    assert '"items"' in p.stdout
    assert ("An error occurred (AccessDeniedException) when calling the CreateService operation: "
            + denied(f"arn:aws:iam::{ACCOUNT}:user/reader", "vpc-lattice:CreateService", "*")) in p.stderr
    iam = server.client("iam")
    for k in iam.list_access_keys(UserName="reader")["AccessKeyMetadata"]:
        iam.delete_access_key(UserName="reader", AccessKeyId=k["AccessKeyId"])
    iam.delete_user_policy(UserName="reader", PolicyName="read-only")
    iam.delete_user(UserName="reader")


def test_a_listener_arn_cannot_borrow_another_services_permission(server, lattice, svc):
    """What is authorized is what the handler acts on: a listener ARN that spells a service the
    user may touch, sent under the path of one it may not, is judged under the path's service."""
    allowed = lattice.create_service(name=unique("allowed"))
    try:
        listener = lattice.create_listener(serviceIdentifier=svc["id"], name="web", protocol="HTTP", port=80,
                                           defaultAction={"fixedResponse": {"statusCode": 404}})
        user, key = new_user(server, {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "vpc-lattice:*", "Resource": f"{allowed['arn']}*"}],
        })
        client = as_user(server, key)
        borrowed = f"{allowed['arn']}/listener/{listener['id']}"
        with pytest.raises(ClientError) as e:
            client.get_listener(serviceIdentifier=svc["id"], listenerIdentifier=borrowed)
        assert refused(e) == ("AccessDeniedException",
                              denied(user["Arn"], "vpc-lattice:GetListener", listener["arn"]), 403)
        lattice.delete_listener(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"])
    finally:
        lattice.delete_service(serviceIdentifier=allowed["id"])
