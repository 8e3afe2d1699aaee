"""Member accounts, with the AWS CLI and boto3: the management account's root creates an account
through Organizations, the operator takes its root credentials once with `trellis accounts
credentials`, and the two accounts then live side by side on one server — same names, separate
resources, ARNs and DNS names of their own — until a role assumption crosses between them.

Each module gets its own server (accounts cannot be removed, so they would outlive other modules'
organizations)."""

import configparser
import json
import subprocess

import botocore.config
import boto3
import pytest
from botocore.exceptions import ClientError

from backends import INGRESS, Caller, ServiceBuilder, dig, fixed, free_port
from conftest import ACCOUNT, BIN, REGION, error_code, unique, wait_until_applied
from functions_support import ROLE, invoke, zip_bytes
from test_iam import wait_identity

pytest_plugins = ["backends"]


def org_cli(server, *args, check=True):
    return server.cli(*args, service="organizations", check=check)


def take_credentials(server, account_id):
    """`trellis accounts credentials ID` against the server's store: the completed process."""
    cmd = [BIN, "accounts", "credentials", account_id, "--data-dir", server.data_dir]
    if server.store:
        cmd += ["--store", server.store]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def client(server, creds, service="vpc-lattice"):
    return boto3.client(
        service, endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
        config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False))


@pytest.fixture(scope="module")
def member(dp_server):
    """(account ID, root credentials) of a member account created with the CLI."""
    org_cli(dp_server, "create-organization", "--feature-set", "ALL")
    status = org_cli(dp_server, "create-account", "--email", "team-a@example.com",
                     "--account-name", "team-a")["CreateAccountStatus"]
    assert status["State"] == "SUCCEEDED", status
    assert status["Id"].startswith("car-")
    account = status["AccountId"]
    assert len(account) == 12 and account.isdigit() and account != ACCOUNT
    described = org_cli(dp_server, "describe-create-account-status",
                        "--create-account-request-id", status["Id"])["CreateAccountStatus"]
    assert described["State"] == "SUCCEEDED" and described["AccountId"] == account
    p = take_credentials(dp_server, account)
    assert p.returncode == 0, p.stderr
    profile = configparser.ConfigParser()
    profile.read_string(p.stdout)
    section = profile[f"account-{account}"]
    creds = {"AccessKeyId": section["aws_access_key_id"], "SecretAccessKey": section["aws_secret_access_key"]}
    wait_identity(dp_server)
    return account, creds


def test_organization_lists_the_member(dp_server, member):
    account, _ = member
    accounts = org_cli(dp_server, "list-accounts")["Accounts"]
    assert [a["Id"] for a in accounts] == [ACCOUNT, account]
    mine = org_cli(dp_server, "describe-account", "--account-id", account)["Account"]
    assert mine["Email"] == "team-a@example.com" and mine["Name"] == "team-a"
    assert mine["JoinedMethod"] == "CREATED" and mine["Status"] == "ACTIVE"
    org_id = org_cli(dp_server, "describe-organization")["Organization"]["Id"]
    assert mine["Arn"] == f"arn:aws:organizations::{ACCOUNT}:account/{org_id}/{account}"
    # Paged one at a time, the CLI follows NextToken by itself; by hand, two pages.
    orgs = dp_server.client("organizations")
    first = orgs.list_accounts(MaxResults=1)
    assert [a["Id"] for a in first["Accounts"]] == [ACCOUNT] and "NextToken" in first
    second = orgs.list_accounts(MaxResults=1, NextToken=first["NextToken"])
    assert [a["Id"] for a in second["Accounts"]] == [account] and "NextToken" not in second
    # The same e-mail again: the request is accepted and fails, as in AWS.
    again = org_cli(dp_server, "create-account", "--email", "TEAM-A@example.com",
                    "--account-name", "again")["CreateAccountStatus"]
    assert again["State"] == "FAILED" and again["FailureReason"] == "EMAIL_ALREADY_EXISTS"
    assert "AccountId" not in again
    with pytest.raises(ClientError) as e:
        orgs.describe_create_account_status(CreateAccountRequestId="car-00000000")
    assert error_code(e) == "CreateAccountStatusNotFoundException"
    with pytest.raises(ClientError) as e:
        orgs.create_account(Email="not-an-email", AccountName="x")
    assert error_code(e) == "InvalidInputException"
    # An organization with members cannot be deleted.
    with pytest.raises(ClientError) as e:
        orgs.delete_organization()
    assert error_code(e) == "OrganizationNotEmptyException"


def test_root_credentials_are_handed_out_once(dp_server, member):
    account, _ = member
    p = take_credentials(dp_server, account)
    assert p.returncode != 0 and "already handed out" in p.stderr, p.stderr
    p = take_credentials(dp_server, "999999999999")
    assert p.returncode != 0 and "no member account" in p.stderr, p.stderr


def test_member_root_is_its_own_account(dp_server, member):
    account, creds = member
    who = client(dp_server, creds, "sts").get_caller_identity()
    assert who["Account"] == account and who["Arn"] == f"arn:aws:iam::{account}:root"
    # It sees its organization but may not manage it.
    orgs = client(dp_server, creds, "organizations")
    assert orgs.describe_organization()["Organization"]["MasterAccountId"] == ACCOUNT
    for call in (lambda: orgs.list_accounts(),
                 lambda: orgs.create_account(Email="b@example.com", AccountName="b"),
                 lambda: orgs.describe_account(AccountId=ACCOUNT)):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "AccessDeniedException"


def test_accounts_do_not_see_each_other(dp_server, dp_lattice, member):
    account, creds = member
    theirs = client(dp_server, creds)
    name = unique("billing")
    mine_svc = dp_lattice.create_service(name=name)
    their_svc = theirs.create_service(name=name)
    assert their_svc["arn"] == f"arn:aws:vpc-lattice:{REGION}:{account}:service/{their_svc['id']}"
    assert mine_svc["arn"].split(":")[4] == ACCOUNT
    assert their_svc["dnsEntry"]["domainName"] != mine_svc["dnsEntry"]["domainName"]
    # Each lists only its own; neither reaches the other's by ID or ARN.
    assert name in {s["name"] for s in dp_lattice.list_services()["items"]}
    assert [s["id"] for s in theirs.list_services()["items"] if s["name"] == name] == [their_svc["id"]]
    assert mine_svc["id"] not in {s["id"] for s in theirs.list_services()["items"]}
    for ident in (their_svc["id"], their_svc["arn"]):
        with pytest.raises(ClientError) as e:
            dp_lattice.get_service(serviceIdentifier=ident)
        assert error_code(e) == "ResourceNotFoundException"
        with pytest.raises(ClientError) as e:
            dp_lattice.delete_service(serviceIdentifier=ident)
        assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        theirs.tag_resource(resourceArn=mine_svc["arn"], tags={"k": "v"})
    assert error_code(e) == "ResourceNotFoundException"
    # The Tagging API lists each account's resources only.
    tagged = client(dp_server, creds, "resourcegroupstaggingapi").get_resources()["ResourceTagMappingList"]
    assert all(r["ResourceARN"].split(":")[4] == account for r in tagged)
    # IAM names are per account too.
    user = unique("alice")
    dp_server.cli("create-user", "--user-name", user, service="iam")
    theirs_iam = client(dp_server, creds, "iam")
    created = theirs_iam.create_user(UserName=user)["User"]
    assert created["Arn"] == f"arn:aws:iam::{account}:user/{user}"
    assert user not in {u["UserName"] for u in dp_server.client("iam").list_users()["Users"]
                        if u["Arn"].split(":")[4] != ACCOUNT}
    # Client networks too: a VPC is its account's.
    vpc = dp_server.client("ec2").create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    their_ec2 = client(dp_server, creds, "ec2")
    assert vpc not in {v["VpcId"] for v in their_ec2.describe_vpcs()["Vpcs"]}
    with pytest.raises(ClientError) as e:
        their_ec2.delete_vpc(VpcId=vpc)
    assert error_code(e) == "InvalidVpcID.NotFound"
    dp_server.client("ec2").delete_vpc(VpcId=vpc)
    theirs.delete_service(serviceIdentifier=their_svc["id"])
    dp_lattice.delete_service(serviceIdentifier=mine_svc["id"])


def test_functions_belong_to_their_account(dp_server, member):
    """Both accounts create a function with the same name; each invokes its own, lists only its
    own, and a member's LAMBDA target group serves traffic from the member's function."""
    account, creds = member
    name = unique("fn")
    code = {"ZipFile": zip_bytes({"app.py": WHO})}
    mine = dp_server.client("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
        Environment={"Variables": {"OWNER": "management"}}, Code=code)
    theirs_lam = client(dp_server, creds, "lambda")
    theirs = theirs_lam.create_function(
        FunctionName=name, Runtime="python3.12", Role=f"arn:aws:iam::{account}:role/fn", Handler="app.handler",
        Environment={"Variables": {"OWNER": "member"}}, Code=code)
    assert mine["FunctionArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    assert theirs["FunctionArn"] == f"arn:aws:lambda:{REGION}:{account}:function:{name}"
    _, out = invoke(theirs_lam, name, {})
    assert out == {"owner": "member", "arn": theirs["FunctionArn"]}
    _, out = invoke(dp_server.client("lambda"), name, {})
    assert out == {"owner": "management", "arn": mine["FunctionArn"]}
    # Neither reaches the other's by ARN.
    with pytest.raises(ClientError) as e:
        theirs_lam.get_function(FunctionName=mine["FunctionArn"])
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        theirs_lam.invoke(FunctionName=mine["FunctionArn"], Payload=b"{}")
    assert error_code(e) == "ResourceNotFoundException"
    assert [f["FunctionName"] for f in theirs_lam.list_functions()["Functions"]] == [name]
    # Each account's function logs to its own file: `trellis logs function NAME [--account ID]`.
    logs = {}
    for who, extra in (("management", []), ("member", ["--account", account])):
        p = subprocess.run([BIN, "logs", "function", name, "--data-dir", dp_server.data_dir, *extra],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        logs[who] = p.stdout
    assert logs["management"].count("START RequestId") == 1, logs
    assert logs["member"].count("START RequestId") == 1, logs
    # A LAMBDA target group of the member may name the member's function, not the management's.
    lattice = client(dp_server, creds)
    tg = lattice.create_target_group(name=unique("fns"), type="LAMBDA")
    refused = lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": mine["FunctionArn"]}])
    assert [f["id"] for f in refused["unsuccessful"]] == [mine["FunctionArn"]]
    lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": theirs["FunctionArn"]}])
    svc = ServiceBuilder(lattice)
    port = free_port()
    svc.listener("HTTP", port, {"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"], "weight": 1}]}})
    wait_until_applied(dp_server)
    resp = Caller(svc.dns_name, port).request("/")
    assert resp.status == 200 and resp.json()["owner"] == "member", resp.body


WHO = """
import json, os
def handler(event, context):
    body = {"owner": os.environ["OWNER"], "arn": context.invoked_function_arn}
    if "requestContext" in event or "httpMethod" in event or "method" in event:
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
    return body
"""


def test_custom_domain_names_are_not_shared_across_accounts(dp_server, dp_lattice, member):
    """The data plane answers and certifies a custom domain name for one service: another account
    cannot take a name in use (nor shadow it), while the owner's account may reuse it."""
    _, creds = member
    domain = f"{unique('api')}.corp.example"
    mine = dp_lattice.create_service(name=unique("named"), customDomainName=domain)
    theirs = client(dp_server, creds)
    for wanted in (domain, domain.upper(), domain + "."):
        with pytest.raises(ClientError) as e:
            theirs.create_service(name=unique("squat"), customDomainName=wanted)
        assert error_code(e) == "ConflictException", wanted
    own = theirs.create_service(name=unique("named"), customDomainName=f"{unique('api')}.team.example")
    again = dp_lattice.create_service(name=unique("again"), customDomainName=domain)
    for lattice, svc in ((dp_lattice, mine), (dp_lattice, again), (theirs, own)):
        lattice.delete_service(serviceIdentifier=svc["id"])
    # Once the name is free again, another account may have it.
    taken = theirs.create_service(name=unique("named"), customDomainName=domain)
    theirs.delete_service(serviceIdentifier=taken["id"])


def test_access_logs_stay_in_their_account(dp_server, dp_lattice, member):
    """Both accounts have a log group called /svc-logs; the member's service logs into the
    member's group, never into the management account's group of the same name."""
    import time

    account, creds = member
    name = unique("/svc-logs")
    dp_server.client("logs").create_log_group(logGroupName=name)
    their_logs = client(dp_server, creds, "logs")
    their_logs.create_log_group(logGroupName=name)
    groups = their_logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert [g["arn"] for g in groups] == [f"arn:aws:logs:{REGION}:{account}:log-group:{name}:*"]
    theirs = client(dp_server, creds)
    svc = ServiceBuilder(theirs)
    port = free_port()
    svc.listener("HTTP", port, fixed(404))
    # A subscription to the management account's group is not a destination for the member.
    theirs.create_access_log_subscription(
        resourceIdentifier=svc.svc["id"],
        destinationArn=f"arn:aws:logs:{REGION}:{account}:log-group:{name}")
    theirs.create_access_log_subscription(
        resourceIdentifier=svc.sn["id"],
        destinationArn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}")
    wait_until_applied(dp_server)
    assert Caller(svc.dns_name, port).request("/member-only").status == 404
    deadline = time.monotonic() + 30
    while not their_logs.filter_log_events(logGroupName=name)["events"]:
        assert time.monotonic() < deadline, "the member's record never arrived"
        time.sleep(0.1)
    records = [json.loads(e["message"]) for e in their_logs.filter_log_events(logGroupName=name)["events"]]
    assert [r["requestPath"] for r in records] == ["/member-only"]
    assert records[0]["serviceArn"].split(":")[4] == account
    assert dp_server.client("logs").filter_log_events(logGroupName=name)["events"] == []


def test_management_assumes_the_access_role(dp_server, member):
    """CreateAccount's OrganizationAccountAccessRole: the management account may assume it (a
    cross-account role assumption) and then acts in the member account."""
    account, creds = member
    role_arn = f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
    assumed = dp_server.cli("assume-role", "--role-arn", role_arn, "--role-session-name", "ops", service="sts")
    session = assumed["Credentials"]
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{account}:assumed-role/OrganizationAccountAccessRole/ops"
    who = client(dp_server, session, "sts").get_caller_identity()
    assert who["Account"] == account
    svc = client(dp_server, session).create_service(name=unique("ops"))
    assert svc["arn"].split(":")[4] == account
    assert svc["id"] in {s["id"] for s in client(dp_server, creds).list_services()["items"]}
    # The trust policy names the management account alone: the member's own root may not
    # assume the role, although it is in its account.
    with pytest.raises(ClientError) as e:
        client(dp_server, creds, "sts").assume_role(RoleArn=role_arn, RoleSessionName="probe")
    assert error_code(e) == "AccessDenied"
    # A management user needs its own permission to cross over.
    iam = dp_server.client("iam")
    name = unique("ops")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    wait_identity(dp_server)
    user = {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}
    with pytest.raises(ClientError) as e:
        client(dp_server, user, "sts").assume_role(RoleArn=role_arn, RoleSessionName="probe")
    assert error_code(e) == "AccessDenied"
    iam.put_user_policy(UserName=name, PolicyName="cross", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]}))
    wait_identity(dp_server)
    got = client(dp_server, user, "sts").assume_role(RoleArn=role_arn, RoleSessionName="probe")
    assert got["AssumedRoleUser"]["Arn"].split(":")[4] == account
    # A role of the management account that trusts only its own account stays closed to the member.
    own = iam.create_role(RoleName=unique("local"), AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "sts:AssumeRole"}]}))["Role"]
    wait_identity(dp_server)
    with pytest.raises(ClientError) as e:
        client(dp_server, creds, "sts").assume_role(RoleArn=own["Arn"], RoleSessionName="probe")
    assert error_code(e) == "AccessDenied"
    client(dp_server, session).delete_service(serviceIdentifier=svc["id"])


def test_member_services_serve_traffic_under_their_own_names(dp_server, member):
    account, creds = member
    theirs = client(dp_server, creds)
    svc = ServiceBuilder(theirs)
    port = free_port()
    svc.listener("HTTP", port, fixed(404))
    wait_until_applied(dp_server)
    # The name lives under the member account's own zone, which Trellis's DNS answers too.
    assert svc.dns_name.split(".", 1)[1] != dp_lattice_zone(dp_server)
    assert dig(dp_server, svc.dns_name) == [INGRESS]
    assert Caller(svc.dns_name, port).request("/").status == 404


def dp_lattice_zone(server):
    """The management account's generated-name zone, from a service it creates."""
    lattice = server.client()
    svc = lattice.create_service(name=unique("zone"))
    lattice.delete_service(serviceIdentifier=svc["id"])
    return svc["dnsEntry"]["domainName"].split(".", 1)[1]


def test_records_from_before_accounts_belong_to_the_management_account(dp_server, dp_lattice, member):
    """A store written before accounts existed holds records of no account; the server gives them
    to the management account when it starts (and leaves the organization's records alone)."""
    _, creds = member
    svc = dp_lattice.create_service(name=unique("legacy"))
    unowned = f"UPDATE records SET account = '' WHERE id = '{svc['id']}'"
    if dp_server.store:
        subprocess.run(["psql", dp_server.store, "-qc", unowned], check=True)
    else:
        import sqlite3
        db = sqlite3.connect(f"{dp_server.data_dir}/trellis.db")
        with db:
            db.execute(unowned)
        db.close()
    dp_server.restart()
    owner = "SELECT account FROM records WHERE id = '%s'"
    assert str(store_value(dp_server, owner % svc["id"])) == ACCOUNT
    assert store_value(dp_server, "SELECT count(*) FROM records WHERE kind = 'organization' AND account = ''") == 1
    lattice = dp_server.client()  # the restarted server listens on a new port
    assert lattice.get_service(serviceIdentifier=svc["id"])["id"] == svc["id"]
    with pytest.raises(ClientError) as e:
        client(dp_server, creds).get_service(serviceIdentifier=svc["id"])
    assert error_code(e) == "ResourceNotFoundException"
    lattice.delete_service(serviceIdentifier=svc["id"])


def store_value(server, sql):
    """One value from the store (text or number, as the engine returns it)."""
    if server.store:
        out = subprocess.run(["psql", server.store, "-tAc", sql], capture_output=True, text=True, check=True)
        value = out.stdout.strip()
        return int(value) if value.isdigit() and len(value) < 12 else value
    import sqlite3
    db = sqlite3.connect(f"{server.data_dir}/trellis.db")
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()
