"""IAM roles, STS AssumeRole and GetSessionToken, and the temporary credentials they grant, end
to end: the AWS CLI manages roles and assumes them, boto3 clients built from the temporary
credentials call Lattice and STS and are authorized with the role's policies only.

Sessions are never waited out: a role's deletion takes effect once the identity index has the
write's revision (`/_trellis/revision`), which the tests wait on, never on a clock."""

import base64
import datetime
import json
import subprocess

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, Server, error_code, running, unique
from test_iam import READ_ONLY, denied, iam_cli, new_user, wait_identity


def trust(principal, actions=("sts:AssumeRole",), condition=None):
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": list(actions)}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def new_role(server, trust_policy, policy=None, **extra):
    """A role created with the CLI (and `policy` as its inline policy `p`). Returns its `Role`."""
    name = unique("app")
    args = ["create-role", "--role-name", name, "--assume-role-policy-document", json.dumps(trust_policy)]
    for k, v in extra.items():
        args += [f"--{k}", str(v)]
    role = iam_cli(server, *args)["Role"]
    if policy is not None:
        iam_cli(server, "put-role-policy", "--role-name", name, "--policy-name", "p",
                "--policy-document", json.dumps(policy))
    return role


def cli_as(server, creds, service, *args):
    """The AWS CLI with `creds` (an access key, or temporary credentials with a session token);
    returns the completed process."""
    env = server.cli_env()
    env.update(AWS_ACCESS_KEY_ID=creds["AccessKeyId"], AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"])
    if "SessionToken" in creds:
        env["AWS_SESSION_TOKEN"] = creds["SessionToken"]
    cmd = ["aws", service, *args, "--endpoint-url", server.endpoint, "--output", "json"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def assume(server, creds, role_arn, session="s1", *extra):
    """`aws sts assume-role` as `creds`; returns the parsed answer (or the failed process)."""
    p = cli_as(server, creds, "sts", "assume-role", "--role-arn", role_arn, "--role-session-name", session, *extra)
    return json.loads(p.stdout) if p.returncode == 0 else p


def client(server, creds, service="vpc-lattice"):
    return boto3.client(
        service, endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
        config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False))


def root_creds():
    from conftest import ACCESS_KEY, SECRET_KEY
    return {"AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET_KEY}


def session_arn(role, session="s1"):
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role['RoleName']}/{session}"


def remaining_seconds(expiration):
    when = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    return (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()


def delete_role(server, role):
    name = role["RoleName"]
    for p in iam_cli(server, "list-role-policies", "--role-name", name)["PolicyNames"]:
        iam_cli(server, "delete-role-policy", "--role-name", name, "--policy-name", p)
    iam_cli(server, "delete-role", "--role-name", name)


def test_cli_manages_roles(server):
    user, _ = new_user(server)
    role = new_role(server, trust(user["Arn"]), path="/team/", description="rates reader",
                    **{"max-session-duration": 7200})
    name = role["RoleName"]
    assert role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/team/{name}"
    assert role["RoleId"].startswith("AROA") and len(role["RoleId"]) == 21
    assert role["MaxSessionDuration"] == 7200 and role["Path"] == "/team/"
    got = iam_cli(server, "get-role", "--role-name", name.upper())["Role"]
    assert got["Arn"] == role["Arn"] and got["Description"] == "rates reader"
    # The CLI decodes the URL-encoded document back into JSON.
    assert got["AssumeRolePolicyDocument"] == trust(user["Arn"])
    assert name in [r["RoleName"] for r in iam_cli(server, "list-roles", "--path-prefix", "/team/")["Roles"]]
    iam_cli(server, "put-role-policy", "--role-name", name, "--policy-name", "read",
            "--policy-document", json.dumps(READ_ONLY))
    assert iam_cli(server, "list-role-policies", "--role-name", name)["PolicyNames"] == ["read"]
    assert iam_cli(server, "get-role-policy", "--role-name", name,
                   "--policy-name", "read")["PolicyDocument"] == READ_ONLY
    iam_cli(server, "tag-role", "--role-name", name, "--tags", "Key=team,Value=rates", "Key=env,Value=prod")
    iam_cli(server, "untag-role", "--role-name", name, "--tag-keys", "env")
    assert iam_cli(server, "list-role-tags", "--role-name", name)["Tags"] == [{"Key": "team", "Value": "rates"}]
    iam_cli(server, "update-assume-role-policy", "--role-name", name,
            "--policy-document", json.dumps(trust(ACCOUNT)))
    assert iam_cli(server, "get-role", "--role-name", name)["Role"]["AssumeRolePolicyDocument"] == trust(ACCOUNT)
    iam = server.client("iam")
    with pytest.raises(ClientError) as e:
        iam.delete_role(RoleName=name)
    assert error_code(e) == "DeleteConflict"
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=name.lower(), AssumeRolePolicyDocument=json.dumps(trust(ACCOUNT)))
    assert error_code(e) == "EntityAlreadyExists"
    # No managed policies or instance profiles exist, so none is attached to an existing role.
    assert iam_cli(server, "list-attached-role-policies", "--role-name", name)["AttachedPolicies"] == []
    assert iam_cli(server, "list-instance-profiles-for-role", "--role-name", name)["InstanceProfiles"] == []
    iam.delete_role_policy(RoleName=name, PolicyName="read")
    iam.delete_role(RoleName=name)
    for call in (iam.get_role, iam.list_attached_role_policies, iam.list_instance_profiles_for_role):
        with pytest.raises(ClientError) as e:
            call(RoleName=name)
        assert error_code(e) == "NoSuchEntity", call


def test_trust_policies_and_limits_are_validated(server):
    iam = server.client("iam")
    bad = [
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]},
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT},
                                                 "Action": "sts:AssumeRole", "Resource": "*"}]},
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT},
                                                 "Action": "vpc-lattice:*"}]},
    ]
    for doc in bad:
        with pytest.raises(ClientError) as e:
            iam.create_role(RoleName=unique("bad"), AssumeRolePolicyDocument=json.dumps(doc))
        assert error_code(e) == "MalformedPolicyDocument", doc
    for duration in (3599, 43201):
        with pytest.raises(ClientError) as e:
            iam.create_role(RoleName=unique("bad"), AssumeRolePolicyDocument=json.dumps(trust(ACCOUNT)),
                            MaxSessionDuration=duration)
        assert error_code(e) == "ValidationError"
    big = trust(ACCOUNT, condition={"StringEquals": {"sts:ExternalId": ["x" * 100] * 30}})
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=unique("bad"), AssumeRolePolicyDocument=json.dumps(big))
    assert error_code(e) == "LimitExceeded"


def test_an_assumed_role_is_authorized_with_the_roles_policy_only(server, lattice, svc):
    # The user may do anything in Lattice; the role it assumes may only read.
    user, key = new_user(server, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "vpc-lattice:*", "Resource": "*"}]})
    role = new_role(server, trust(user["Arn"]), READ_ONLY)
    out = assume(server, key, role["Arn"], "s1", "--duration-seconds", "900")
    creds = out["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert len(creds["SecretAccessKey"]) == 40 and creds["SessionToken"]
    assert 880 <= remaining_seconds(creds["Expiration"]) <= 901
    assert out["AssumedRoleUser"] == {"AssumedRoleId": f"{role['RoleId']}:s1", "Arn": session_arn(role)}
    who = client(server, creds, "sts").get_caller_identity()
    assert (who["Arn"], who["UserId"], who["Account"]) == (session_arn(role), f"{role['RoleId']}:s1", ACCOUNT)
    session = client(server, creds)
    assert session.get_service(serviceIdentifier=svc["id"])["id"] == svc["id"]
    with pytest.raises(ClientError) as e:
        session.create_service(name=unique("denied"))
    assert error_code(e) == "AccessDeniedException"
    assert e.value.response["Error"]["Message"] == denied(session_arn(role), "vpc-lattice:CreateService", "*")
    # The CLI, with the same credentials, is refused in AWS's words too.
    p = cli_as(server, creds, "vpc-lattice", "create-service", "--name", unique("denied"))
    assert p.returncode != 0
    assert denied(session_arn(role), "vpc-lattice:CreateService", "*") in p.stderr
    # A role session may assume a role that trusts its role, for at most an hour (role chaining).
    chained = new_role(server, trust(role["Arn"]), READ_ONLY, **{"max-session-duration": 7200})
    with pytest.raises(ClientError) as e:
        client(server, creds, "sts").assume_role(RoleArn=chained["Arn"], RoleSessionName="c1",
                                                 DurationSeconds=3601)
    assert error_code(e) == "ValidationError"
    hop = client(server, creds, "sts").assume_role(RoleArn=chained["Arn"], RoleSessionName="c1")
    assert hop["AssumedRoleUser"]["Arn"] == session_arn(chained, "c1")
    # The user's own keys still do what the user may.
    lattice_user = client(server, key)
    created = lattice_user.create_service(name=unique("mine"))
    lattice.delete_service(serviceIdentifier=created["id"])
    # DurationSeconds is bounded by 900 and the role's MaxSessionDuration.
    # (boto3 without client-side validation: the CLI refuses 899 itself.)
    for duration in (899, 3601):
        with pytest.raises(ClientError) as e:
            client(server, key, "sts").assume_role(RoleArn=role["Arn"], RoleSessionName="s2",
                                                   DurationSeconds=duration)
        assert error_code(e) == "ValidationError", duration
    for bad_name in ("x", "bad name", "y" * 65):
        with pytest.raises(ClientError) as e:
            client(server, key, "sts").assume_role(RoleArn=role["Arn"], RoleSessionName=bad_name)
        assert error_code(e) == "ValidationError", bad_name


def test_trusting_the_account_needs_the_callers_identity_policy_too(server):
    role = new_role(server, trust(ACCOUNT), READ_ONLY)
    _, nobody = new_user(server)
    p = assume(server, nobody, role["Arn"])
    assert "AccessDenied" in p.stderr
    _, allowed = new_user(server, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role["Arn"]}]})
    assert assume(server, allowed, role["Arn"])["AssumedRoleUser"]["Arn"] == session_arn(role)
    # Root is the account: its identity always allows.
    assert assume(server, root_creds(), role["Arn"])["AssumedRoleUser"]["Arn"] == session_arn(role)
    # A role that trusts another account is assumed by nobody here, root included.
    foreign = new_role(server, trust("999999999999"), READ_ONLY)
    for creds in (allowed, root_creds()):
        p = assume(server, creds, foreign["Arn"])
        assert "AccessDenied" in p.stderr
    # An unknown role, or another account's role, is refused in the same words.
    for arn in (f"arn:aws:iam::{ACCOUNT}:role/no-such-role", "arn:aws:iam::999999999999:role/x"):
        with pytest.raises(ClientError) as e:
            client(server, root_creds(), "sts").assume_role(RoleArn=arn, RoleSessionName="s1")
        assert error_code(e) == "AccessDenied"
        assert e.value.response["Error"]["Message"] == (
            f"User: arn:aws:iam::{ACCOUNT}:root is not authorized to perform: sts:AssumeRole on resource: {arn}")


def test_external_id_and_session_tags(server, svc):
    user, key = new_user(server)
    by_tag = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "vpc-lattice:GetService", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalTag/team": "rates"}}}]}
    role = new_role(server, trust(user["Arn"], condition={"StringEquals": {"sts:ExternalId": "ext-123"}}), by_tag)
    assert "AccessDenied" in assume(server, key, role["Arn"]).stderr
    assert "AccessDenied" in assume(server, key, role["Arn"], "s1", "--external-id", "other-id").stderr
    untagged = assume(server, key, role["Arn"], "s1", "--external-id", "ext-123")["Credentials"]
    with pytest.raises(ClientError) as e:
        client(server, untagged).get_service(serviceIdentifier=svc["id"])
    assert error_code(e) == "AccessDeniedException"
    # Session tags need sts:TagSession in the trust policy.
    p = assume(server, key, role["Arn"], "s1", "--external-id", "ext-123", "--tags", "Key=team,Value=rates")
    assert "AccessDenied" in p.stderr and "sts:TagSession" in p.stderr
    iam_cli(server, "update-assume-role-policy", "--role-name", role["RoleName"], "--policy-document",
            json.dumps(trust(user["Arn"], ("sts:AssumeRole", "sts:TagSession"),
                             {"StringEquals": {"sts:ExternalId": "ext-123"}})))
    tagged = assume(server, key, role["Arn"], "s1", "--external-id", "ext-123",
                    "--tags", "Key=team,Value=rates")["Credentials"]
    assert client(server, tagged).get_service(serviceIdentifier=svc["id"])["id"] == svc["id"]
    other = assume(server, key, role["Arn"], "s1", "--external-id", "ext-123",
                   "--tags", "Key=team,Value=billing")["Credentials"]
    with pytest.raises(ClientError) as e:
        client(server, other).get_service(serviceIdentifier=svc["id"])
    assert error_code(e) == "AccessDeniedException"
    # A role tag is a principal tag of its sessions too.
    iam_cli(server, "tag-role", "--role-name", role["RoleName"], "--tags", "Key=team,Value=rates")
    wait_identity(server)
    assert client(server, untagged).get_service(serviceIdentifier=svc["id"])["id"] == svc["id"]


def test_get_session_token_is_the_user(server, svc):
    user, key = new_user(server, READ_ONLY)
    creds = json.loads(cli_as(server, key, "sts", "get-session-token", "--duration-seconds", "900").stdout)["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert 880 <= remaining_seconds(creds["Expiration"]) <= 901
    default = json.loads(cli_as(server, key, "sts", "get-session-token").stdout)["Credentials"]
    assert 43_180 <= remaining_seconds(default["Expiration"]) <= 43_201
    assert client(server, creds, "sts").get_caller_identity()["Arn"] == user["Arn"]
    session = client(server, creds)
    assert session.get_service(serviceIdentifier=svc["id"])["id"] == svc["id"]
    with pytest.raises(ClientError) as e:
        session.create_service(name=unique("denied"))
    assert e.value.response["Error"]["Message"] == denied(user["Arn"], "vpc-lattice:CreateService", "*")
    # Session credentials cannot mint more.
    with pytest.raises(ClientError) as e:
        client(server, creds, "sts").get_session_token()
    assert error_code(e) == "AccessDenied"
    for duration in (899, 129_601):
        with pytest.raises(ClientError) as e:
            client(server, key, "sts").get_session_token(DurationSeconds=duration)
        assert error_code(e) == "ValidationError"


def tampered(token):
    """The token with one character of its MAC changed."""
    last = token[-2]
    return token[:-2] + ("A" if last != "A" else "B") + token[-1]


def test_tampered_missing_and_borrowed_tokens_are_refused(server):
    user, key = new_user(server)
    role = new_role(server, trust(user["Arn"]), READ_ONLY)
    a = assume(server, key, role["Arn"], "sa")["Credentials"]
    b = assume(server, key, role["Arn"], "sb")["Credentials"]
    client(server, a).list_services()
    body = a["SessionToken"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["session_name"] = "admin"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    forged = a["SessionToken"].replace(body, forged_body)
    cases = {
        "tampered": dict(a, SessionToken=tampered(a["SessionToken"])),
        "claims changed": dict(a, SessionToken=forged),
        "another session's token": dict(a, SessionToken=b["SessionToken"]),
        "no token": {"AccessKeyId": a["AccessKeyId"], "SecretAccessKey": a["SecretAccessKey"]},
        "wrong secret": dict(a, SecretAccessKey=b["SecretAccessKey"]),
        "long-term key with a token": dict(key, SessionToken=a["SessionToken"]),
    }
    for case, creds in cases.items():
        with pytest.raises(ClientError) as e:
            client(server, creds).list_services()
        expected = "InvalidSignatureException" if case == "wrong secret" else "UnrecognizedClientException"
        assert error_code(e) == expected, case
        with pytest.raises(ClientError) as e:
            client(server, creds, "sts").get_caller_identity()
        # (Trellis answers a signature mismatch with InvalidSignatureException for every service.)
        expected = "InvalidSignatureException" if case == "wrong secret" else "InvalidClientTokenId"
        assert error_code(e) == expected, case


def test_a_deleted_roles_sessions_stop_at_the_next_revision(server):
    user, key = new_user(server)
    role = new_role(server, trust(user["Arn"]), READ_ONLY)
    creds = assume(server, key, role["Arn"])["Credentials"]
    client(server, creds).list_services()
    delete_role(server, role)
    wait_identity(server)
    with pytest.raises(ClientError) as e:
        client(server, creds).list_services()
    assert error_code(e) == "UnrecognizedClientException"
    # A role created again under the same name is another role: the old sessions are not its.
    iam_cli(server, "create-role", "--role-name", role["RoleName"],
            "--assume-role-policy-document", json.dumps(trust(user["Arn"])))
    iam_cli(server, "put-role-policy", "--role-name", role["RoleName"], "--policy-name", "p",
            "--policy-document", json.dumps(READ_ONLY))
    wait_identity(server)
    with pytest.raises(ClientError) as e:
        client(server, creds).list_services()
    assert error_code(e) == "UnrecognizedClientException"
    with pytest.raises(ClientError) as e:
        client(server, creds, "sts").get_caller_identity()
    assert error_code(e) == "InvalidClientTokenId"


def test_sessions_survive_a_restart(server):
    own = running(Server(server.backend))
    s = next(own)
    try:
        user, key = new_user(s)
        role = new_role(s, trust(user["Arn"]), READ_ONLY)
        creds = assume(s, key, role["Arn"])["Credentials"]
        user_session = json.loads(cli_as(s, key, "sts", "get-session-token").stdout)["Credentials"]
        s.restart()
        assert client(s, creds, "sts").get_caller_identity()["Arn"] == session_arn(role)
        client(s, creds).list_services()
        assert client(s, user_session, "sts").get_caller_identity()["Arn"] == user["Arn"]
    finally:
        own.close()


def test_readme_roles_section_runs_as_written(server, tmp_path):
    """The README's roles example, only the endpoint and the credentials file pointed at this
    server: `app` may not GetService itself, its `rates-reader` session may, and nothing else."""
    from test_readme import run_readme_block
    p = run_readme_block(server, "roles", tmp_path)
    session = f"arn:aws:sts::{ACCOUNT}:assumed-role/rates-reader/s1"
    assert session in p.stdout
    assert ("An error occurred (AccessDeniedException) when calling the GetService operation: User: "
            f"arn:aws:iam::{ACCOUNT}:user/app is not authorized to perform: vpc-lattice:GetService") in p.stderr
    assert ("An error occurred (AccessDeniedException) when calling the ListServices operation: "
            + denied(session, "vpc-lattice:ListServices", "*")) in p.stderr
    assert p.stdout.count('"name": "rates"') == 1
    iam = server.client("iam")
    for k in iam.list_access_keys(UserName="app")["AccessKeyMetadata"]:
        iam.delete_access_key(UserName="app", AccessKeyId=k["AccessKeyId"])
    iam.delete_user(UserName="app")
    iam.delete_role_policy(RoleName="rates-reader", PolicyName="get-service")
    iam.delete_role(RoleName="rates-reader")
    lattice = server.client()
    for svc in lattice.list_services()["items"]:
        if svc["name"] == "rates":
            lattice.delete_service(serviceIdentifier=svc["id"])


def test_a_presigned_url_carries_the_session_token(server):
    import urllib.error
    import urllib.request
    user, key = new_user(server)
    role = new_role(server, trust(user["Arn"]), READ_ONLY)
    creds = assume(server, key, role["Arn"])["Credentials"]
    url = client(server, creds).generate_presigned_url("list_services", ExpiresIn=60)
    assert "X-Amz-Security-Token=" in url
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200 and "items" in json.loads(r.read())
    bad = url.replace("X-Amz-Security-Token=", "X-Amz-Security-Token=x")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad, timeout=10)
    assert e.value.code == 403
    assert e.value.headers["x-amzn-ErrorType"].startswith("UnrecognizedClientException")
