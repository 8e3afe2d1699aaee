"""IAM groups, customer-managed policies with versions, the built-in AWS-managed policies, user
tags, and what they grant, end to end: the AWS CLI (as root) manages them, boto3 clients built from
the users' keys (and a role's session) call Lattice and are allowed or refused by their effective
policies — inline, their groups', and every attached managed policy's default version.

A change takes effect once the server's identity index has the write's revision (`identity` in
`/_trellis/revision`); the tests wait on that, never on a clock."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, error_code, unique
from test_iam import READ_ONLY, as_user, denied, iam_cli, new_user, refused, user_cli, wait_identity
from test_sts import client, delete_role, new_role, root_creds, trust

AWS_READ_ONLY = "arn:aws:iam::aws:policy/VPCLatticeReadOnlyAccess"
AWS_MANAGED = ["AdministratorAccess", "ReadOnlyAccess", "VPCLatticeFullAccess",
               "VPCLatticeReadOnlyAccess", "VPCLatticeServicesInvokeAccess"]


def doc(effect, *actions):
    return {"Version": "2012-10-17", "Statement": [{"Effect": effect, "Action": list(actions), "Resource": "*"}]}


def fails(p, code, fragment=""):
    """A failed CLI process with IAM error `code` (and `fragment` in its message)."""
    assert p.returncode != 0 and f"({code})" in p.stderr and fragment in p.stderr, p.stderr


def new_group(server, path=None):
    name = unique("grp")
    return iam_cli(server, "create-group", "--group-name", name, *(["--path", path] if path else []))["Group"]


def new_policy(server, document, path=None):
    name = unique("pol")
    args = ["create-policy", "--policy-name", name, "--policy-document", json.dumps(document)]
    return iam_cli(server, *args, *(["--path", path] if path else []))["Policy"]


def delete_user(server, user, key=None):
    name = user["UserName"]
    if key:
        iam_cli(server, "delete-access-key", "--user-name", name, "--access-key-id", key["AccessKeyId"])
    iam_cli(server, "delete-user", "--user-name", name)


def test_cli_manages_groups_and_their_members(server):
    group = new_group(server, "/eng/")
    name = group["GroupName"]
    assert group["Arn"] == f"arn:aws:iam::{ACCOUNT}:group/eng/{name}"
    assert group["GroupId"].startswith("AGPA") and len(group["GroupId"]) == 21 and group["Path"] == "/eng/"
    fails(iam_cli(server, "create-group", "--group-name", name.upper(), check=False), "EntityAlreadyExists")
    assert name in [g["GroupName"] for g in iam_cli(server, "list-groups", "--path-prefix", "/eng/")["Groups"]]
    assert name not in [g["GroupName"] for g in iam_cli(server, "list-groups", "--path-prefix", "/ops/")["Groups"]]

    users = [iam_cli(server, "create-user", "--user-name", unique("member"))["User"] for _ in range(3)]
    for u in users:
        iam_cli(server, "add-user-to-group", "--group-name", name, "--user-name", u["UserName"])
    # Adding again changes nothing.
    iam_cli(server, "add-user-to-group", "--group-name", name, "--user-name", users[0]["UserName"])
    got = iam_cli(server, "get-group", "--group-name", name)
    assert got["Group"] == group
    assert sorted(u["UserName"] for u in got["Users"]) == sorted(u["UserName"] for u in users)
    # GetGroup pages its users.
    iam = server.client("iam")
    page = iam.get_group(GroupName=name, MaxItems=2)
    assert len(page["Users"]) == 2 and page["IsTruncated"]
    rest = iam.get_group(GroupName=name, Marker=page["Marker"])
    assert len(rest["Users"]) == 1 and not rest["IsTruncated"]
    assert [g["GroupName"] for g in iam_cli(server, "list-groups-for-user", "--user-name", users[0]["UserName"])["Groups"]] == [name]

    # A user in a group cannot be deleted; a group with members cannot either.
    fails(iam_cli(server, "delete-user", "--user-name", users[0]["UserName"], check=False),
          "DeleteConflict", "must remove user from all groups first")
    fails(iam_cli(server, "delete-group", "--group-name", name, check=False), "DeleteConflict",
          "must remove users from group first")
    for u in users:
        iam_cli(server, "remove-user-from-group", "--group-name", name, "--user-name", u["UserName"])
    fails(iam_cli(server, "remove-user-from-group", "--group-name", name, "--user-name", users[0]["UserName"],
                  check=False), "NoSuchEntity")

    # Inline policies of the group.
    iam_cli(server, "put-group-policy", "--group-name", name, "--policy-name", "read",
            "--policy-document", json.dumps(READ_ONLY))
    got = iam_cli(server, "get-group-policy", "--group-name", name, "--policy-name", "read")
    assert got == {"GroupName": name, "PolicyName": "read", "PolicyDocument": READ_ONLY}
    assert iam_cli(server, "list-group-policies", "--group-name", name)["PolicyNames"] == ["read"]
    fails(iam_cli(server, "put-group-policy", "--group-name", name, "--policy-name", "bad",
                  "--policy-document", "{", check=False), "MalformedPolicyDocument")
    fails(iam_cli(server, "get-group-policy", "--group-name", name, "--policy-name", "nope", check=False),
          "NoSuchEntity")
    fails(iam_cli(server, "delete-group", "--group-name", name, check=False), "DeleteConflict",
          "must delete policies first")
    iam_cli(server, "delete-group-policy", "--group-name", name, "--policy-name", "read")
    iam_cli(server, "attach-group-policy", "--group-name", name, "--policy-arn", AWS_READ_ONLY)
    fails(iam_cli(server, "delete-group", "--group-name", name, check=False), "DeleteConflict",
          "must detach all policies first")
    iam_cli(server, "detach-group-policy", "--group-name", name, "--policy-arn", AWS_READ_ONLY)

    # Renamed, it keeps its ID; then it is gone.
    new_name = unique("renamed")
    iam_cli(server, "update-group", "--group-name", name, "--new-group-name", new_name, "--new-path", "/ops/")
    renamed = iam_cli(server, "get-group", "--group-name", new_name)["Group"]
    assert renamed["GroupId"] == group["GroupId"] and renamed["Arn"] == f"arn:aws:iam::{ACCOUNT}:group/ops/{new_name}"
    fails(iam_cli(server, "get-group", "--group-name", name, check=False), "NoSuchEntity")
    iam_cli(server, "delete-group", "--group-name", new_name)
    fails(iam_cli(server, "get-group", "--group-name", new_name, check=False), "NoSuchEntity")
    for u in users:
        iam_cli(server, "delete-user", "--user-name", u["UserName"])


def test_cli_manages_policies_and_versions(server):
    v1 = doc("Allow", "vpc-lattice:Get*", "vpc-lattice:List*")
    policy = new_policy(server, v1, "/team/")
    name, arn = policy["PolicyName"], policy["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:policy/team/{name}"
    assert policy["PolicyId"].startswith("ANPA") and len(policy["PolicyId"]) == 21
    assert (policy["DefaultVersionId"], policy["AttachmentCount"], policy["IsAttachable"]) == ("v1", 0, True)
    fails(iam_cli(server, "create-policy", "--policy-name", name.upper(), "--policy-document", json.dumps(v1),
                  check=False), "EntityAlreadyExists")
    fails(iam_cli(server, "create-policy", "--policy-name", unique("bad"), "--policy-document",
                  json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:*"}]}),
                  check=False), "MalformedPolicyDocument")
    assert iam_cli(server, "get-policy", "--policy-arn", arn)["Policy"]["PolicyId"] == policy["PolicyId"]
    # Tags: given at creation, changed with TagPolicy and UntagPolicy.
    iam_cli(server, "tag-policy", "--policy-arn", arn, "--tags", "Key=team,Value=red", "Key=env,Value=dev")
    iam_cli(server, "tag-policy", "--policy-arn", arn, "--tags", "Key=TEAM,Value=blue")
    iam_cli(server, "untag-policy", "--policy-arn", arn, "--tag-keys", "env")
    assert iam_cli(server, "list-policy-tags", "--policy-arn", arn)["Tags"] == [{"Key": "TEAM", "Value": "blue"}]
    assert iam_cli(server, "get-policy", "--policy-arn", arn)["Policy"]["Tags"] == [{"Key": "TEAM", "Value": "blue"}]
    # The document comes back URL-encoded, as IAM's; the CLI decodes it.
    version = iam_cli(server, "get-policy-version", "--policy-arn", arn, "--version-id", "v1")["PolicyVersion"]
    assert version["Document"] == v1 and version["IsDefaultVersion"] is True

    v2 = doc("Allow", "vpc-lattice:*")
    created = iam_cli(server, "create-policy-version", "--policy-arn", arn, "--policy-document", json.dumps(v2),
                      "--set-as-default")["PolicyVersion"]
    assert (created["VersionId"], created["IsDefaultVersion"]) == ("v2", True)
    assert iam_cli(server, "get-policy", "--policy-arn", arn)["Policy"]["DefaultVersionId"] == "v2"
    for _ in range(3):
        iam_cli(server, "create-policy-version", "--policy-arn", arn, "--policy-document", json.dumps(v1))
    versions = iam_cli(server, "list-policy-versions", "--policy-arn", arn)["Versions"]
    assert [(v["VersionId"], v["IsDefaultVersion"]) for v in versions] == [
        ("v5", False), ("v4", False), ("v3", False), ("v2", True), ("v1", False)]
    fails(iam_cli(server, "create-policy-version", "--policy-arn", arn, "--policy-document", json.dumps(v1),
                  check=False), "LimitExceeded", "up to 5 versions")
    fails(iam_cli(server, "delete-policy-version", "--policy-arn", arn, "--version-id", "v2", check=False),
          "DeleteConflict", "default version")
    fails(iam_cli(server, "get-policy-version", "--policy-arn", arn, "--version-id", "v9", check=False),
          "NoSuchEntity")
    iam_cli(server, "set-default-policy-version", "--policy-arn", arn, "--version-id", "v1")
    iam_cli(server, "delete-policy-version", "--policy-arn", arn, "--version-id", "v5")
    # Version IDs are never reused.
    assert iam_cli(server, "create-policy-version", "--policy-arn", arn, "--policy-document",
                   json.dumps(v1))["PolicyVersion"]["VersionId"] == "v6"

    # Attachments: to a user, a group and a role; counted and listed both ways.
    user = iam_cli(server, "create-user", "--user-name", unique("holder"))["User"]
    group = new_group(server)
    role = new_role(server, trust(ACCOUNT))
    for verb, flag, entity in (("user", "--user-name", user["UserName"]),
                               ("group", "--group-name", group["GroupName"]),
                               ("role", "--role-name", role["RoleName"])):
        iam_cli(server, f"attach-{verb}-policy", flag, entity, "--policy-arn", arn)
        iam_cli(server, f"attach-{verb}-policy", flag, entity, "--policy-arn", AWS_READ_ONLY)
        attached = iam_cli(server, f"list-attached-{verb}-policies", flag, entity)["AttachedPolicies"]
        assert sorted((a["PolicyName"], a["PolicyArn"]) for a in attached) == sorted(
            [(name, arn), ("VPCLatticeReadOnlyAccess", AWS_READ_ONLY)])
        only_team = iam_cli(server, f"list-attached-{verb}-policies", flag, entity, "--path-prefix", "/team/")
        assert [a["PolicyArn"] for a in only_team["AttachedPolicies"]] == [arn]
    assert iam_cli(server, "get-policy", "--policy-arn", arn)["Policy"]["AttachmentCount"] == 3
    entities = iam_cli(server, "list-entities-for-policy", "--policy-arn", arn)
    assert [u["UserName"] for u in entities["PolicyUsers"]] == [user["UserName"]]
    assert [g["GroupName"] for g in entities["PolicyGroups"]] == [group["GroupName"]]
    assert [r["RoleName"] for r in entities["PolicyRoles"]] == [role["RoleName"]]
    only_roles = iam_cli(server, "list-entities-for-policy", "--policy-arn", arn, "--entity-filter", "Role")
    assert (only_roles["PolicyUsers"], only_roles["PolicyGroups"]) == ([], [])
    # ListPolicies: scope, path, only attached.
    local = iam_cli(server, "list-policies", "--scope", "Local", "--path-prefix", "/team/")["Policies"]
    assert [(p["Arn"], p["AttachmentCount"]) for p in local if p["Arn"] == arn] == [(arn, 3)]
    attached_aws = iam_cli(server, "list-policies", "--scope", "AWS", "--only-attached")["Policies"]
    assert "VPCLatticeReadOnlyAccess" in [p["PolicyName"] for p in attached_aws]
    assert all(p["Arn"].startswith("arn:aws:iam::aws:policy/") for p in attached_aws)

    fails(iam_cli(server, "delete-policy", "--policy-arn", arn, check=False), "DeleteConflict",
          "attached to entities")
    fails(iam_cli(server, "delete-user", "--user-name", user["UserName"], check=False), "DeleteConflict",
          "must detach all policies first")
    fails(iam_cli(server, "delete-role", "--role-name", role["RoleName"], check=False), "DeleteConflict",
          "must detach all policies first")
    for verb, flag, entity in (("user", "--user-name", user["UserName"]),
                               ("group", "--group-name", group["GroupName"]),
                               ("role", "--role-name", role["RoleName"])):
        for p in (arn, AWS_READ_ONLY):
            iam_cli(server, f"detach-{verb}-policy", flag, entity, "--policy-arn", p)
    fails(iam_cli(server, "detach-user-policy", "--user-name", user["UserName"], "--policy-arn", arn, check=False),
          "NoSuchEntity")
    fails(iam_cli(server, "delete-policy", "--policy-arn", arn, check=False), "DeleteConflict",
          "more than one version")
    for v in iam_cli(server, "list-policy-versions", "--policy-arn", arn)["Versions"]:
        if not v["IsDefaultVersion"]:
            iam_cli(server, "delete-policy-version", "--policy-arn", arn, "--version-id", v["VersionId"])
    iam_cli(server, "delete-policy", "--policy-arn", arn)
    fails(iam_cli(server, "get-policy", "--policy-arn", arn, check=False), "NoSuchEntity")
    iam_cli(server, "delete-group", "--group-name", group["GroupName"])
    delete_role(server, role)
    delete_user(server, user)


def test_attaching_what_does_not_exist(server):
    iam = server.client("iam")
    user, key = new_user(server)
    missing = f"arn:aws:iam::{ACCOUNT}:policy/{unique('missing')}"
    cases = [
        (lambda: iam.attach_user_policy(UserName=user["UserName"], PolicyArn=missing), "NoSuchEntity"),
        (lambda: iam.attach_user_policy(UserName=user["UserName"], PolicyArn="arn:aws:iam::aws:policy/NoSuchPolicy"),
         "NoSuchEntity"),
        (lambda: iam.attach_user_policy(UserName=unique("nobody"), PolicyArn=AWS_READ_ONLY), "NoSuchEntity"),
        (lambda: iam.attach_group_policy(GroupName=unique("nogroup"), PolicyArn=AWS_READ_ONLY), "NoSuchEntity"),
        (lambda: iam.attach_role_policy(RoleName=unique("norole"), PolicyArn=AWS_READ_ONLY), "NoSuchEntity"),
        (lambda: iam.attach_user_policy(UserName=user["UserName"], PolicyArn=f"arn:aws:iam::{ACCOUNT}:role/x"),
         "InvalidInput"),
        (lambda: iam.get_policy(PolicyArn=missing), "NoSuchEntity"),
        (lambda: iam.get_group(GroupName=unique("nogroup")), "NoSuchEntity"),
        (lambda: iam.add_user_to_group(GroupName=unique("nogroup"), UserName=user["UserName"]), "NoSuchEntity"),
        (lambda: iam.create_policy_version(PolicyArn=missing, PolicyDocument=json.dumps(READ_ONLY)), "NoSuchEntity"),
    ]
    for call, code in cases:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == code
    assert iam.list_attached_user_policies(UserName=user["UserName"])["AttachedPolicies"] == []
    delete_user(server, user, key)


def test_aws_managed_policies_are_built_in(server):
    iam = server.client("iam")
    listed = {p["PolicyName"]: p for p in iam.list_policies(Scope="AWS")["Policies"]}
    assert sorted(listed) == AWS_MANAGED
    for name in AWS_MANAGED:
        arn = f"arn:aws:iam::aws:policy/{name}"
        policy = iam.get_policy(PolicyArn=arn)["Policy"]
        assert (policy["Arn"], policy["Path"], policy["PolicyId"]) == (arn, "/", listed[name]["PolicyId"])
        version = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
        assert version["IsDefaultVersion"]
        # botocore decodes IAM's URL-encoded documents.
        assert version["Document"]["Version"] == "2012-10-17" and version["Document"]["Statement"]
        assert iam.list_policy_tags(PolicyArn=arn)["Tags"] == []
        # Not this account's to change.
        for call in (lambda: iam.delete_policy(PolicyArn=arn),
                     lambda: iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "k", "Value": "v"}]),
                     lambda: iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(READ_ONLY)),
                     lambda: iam.set_default_policy_version(PolicyArn=arn, VersionId="v1"),
                     lambda: iam.delete_policy_version(PolicyArn=arn, VersionId="v1")):
            with pytest.raises(ClientError) as e:
                call()
            assert refused(e)[0::2] == ("AccessDenied", 403)
    invoke = iam.get_policy_version(PolicyArn="arn:aws:iam::aws:policy/VPCLatticeServicesInvokeAccess",
                                    VersionId="v1")["PolicyVersion"]["Document"]
    assert invoke["Statement"][0]["Action"] == ["vpc-lattice-svcs:Invoke"]
    local = iam.list_policies(Scope="Local")["Policies"]
    assert not any(p["Arn"].startswith("arn:aws:iam::aws:") for p in local)


def test_a_user_is_authorized_by_its_groups_and_managed_policies(server, lattice, svc):
    user, key = new_user(server)
    client_ = as_user(server, key)
    group = new_group(server)
    gname = group["GroupName"]

    def allowed():
        wait_identity(server)
        try:
            client_.list_services()
            return True
        except ClientError as e:
            assert e.response["Error"]["Code"] == "AccessDeniedException"
            return False

    assert not allowed()
    # 1. An inline policy of a group the user is in.
    iam_cli(server, "put-group-policy", "--group-name", gname, "--policy-name", "read",
            "--policy-document", json.dumps(READ_ONLY))
    assert not allowed()  # not a member yet
    iam_cli(server, "add-user-to-group", "--group-name", gname, "--user-name", user["UserName"])
    assert allowed()
    with pytest.raises(ClientError) as e:
        client_.create_service(name=unique("denied"))
    assert refused(e) == ("AccessDeniedException", denied(user["Arn"], "vpc-lattice:CreateService", "*"), 403)
    iam_cli(server, "delete-group-policy", "--group-name", gname, "--policy-name", "read")
    assert not allowed()

    # 2. A customer-managed policy attached to the group, then a new default version that denies.
    policy = new_policy(server, doc("Allow", "vpc-lattice:Get*", "vpc-lattice:List*"))
    arn = policy["Arn"]
    iam_cli(server, "attach-group-policy", "--group-name", gname, "--policy-arn", arn)
    assert allowed()
    assert client_.get_service(serviceIdentifier=svc["id"])["id"] == svc["id"]
    iam_cli(server, "create-policy-version", "--policy-arn", arn, "--set-as-default",
            "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "vpc-lattice:Get*", "Resource": "*"},
                {"Effect": "Deny", "Action": "vpc-lattice:ListServices", "Resource": "*"}]}))
    wait_identity(server)
    with pytest.raises(ClientError) as e:
        client_.list_services()
    assert refused(e) == ("AccessDeniedException",
                          f"User: {user['Arn']} is not authorized to perform: vpc-lattice:ListServices on "
                          f"resource: * with an explicit deny in an identity-based policy", 403)
    assert client_.get_service(serviceIdentifier=svc["id"])["id"] == svc["id"]
    # Back to v1: allowed again. Out of the group: refused.
    iam_cli(server, "set-default-policy-version", "--policy-arn", arn, "--version-id", "v1")
    assert allowed()
    iam_cli(server, "remove-user-from-group", "--group-name", gname, "--user-name", user["UserName"])
    assert not allowed()

    # 3. AWS's VPCLatticeReadOnlyAccess attached to the user itself.
    iam_cli(server, "attach-user-policy", "--user-name", user["UserName"], "--policy-arn", AWS_READ_ONLY)
    assert allowed()
    with pytest.raises(ClientError) as e:
        client_.create_service(name=unique("denied"))
    assert refused(e) == ("AccessDeniedException", denied(user["Arn"], "vpc-lattice:CreateService", "*"), 403)
    # The CLI with the user's keys, too.
    p = user_cli(server, key, "vpc-lattice", "create-service", "--name", unique("cli"))
    assert p.returncode != 0 and "AccessDeniedException" in p.stderr, p.stderr
    iam_cli(server, "detach-user-policy", "--user-name", user["UserName"], "--policy-arn", AWS_READ_ONLY)
    assert not allowed()

    iam_cli(server, "detach-group-policy", "--group-name", gname, "--policy-arn", arn)
    iam_cli(server, "delete-policy-version", "--policy-arn", arn, "--version-id", "v2")
    iam_cli(server, "delete-policy", "--policy-arn", arn)
    iam_cli(server, "delete-group", "--group-name", gname)
    delete_user(server, user, key)


def test_a_role_is_authorized_by_its_attached_policies(server, svc):
    role = new_role(server, trust(ACCOUNT))
    iam_cli(server, "attach-role-policy", "--role-name", role["RoleName"], "--policy-arn", AWS_READ_ONLY)
    creds = client(server, root_creds(), "sts").assume_role(RoleArn=role["Arn"], RoleSessionName="s1")["Credentials"]
    session = client(server, creds)
    assert svc["id"] in [s["id"] for s in session.list_services()["items"]]
    with pytest.raises(ClientError) as e:
        session.create_service(name=unique("denied"))
    assert error_code(e) == "AccessDeniedException"
    # Detached, the session (authorized with the role's policies as they are now) is refused.
    iam_cli(server, "detach-role-policy", "--role-name", role["RoleName"], "--policy-arn", AWS_READ_ONLY)
    wait_identity(server)
    with pytest.raises(ClientError) as e:
        session.list_services()
    assert error_code(e) == "AccessDeniedException"
    delete_role(server, role)


def test_user_tags_are_principal_tags(server):
    name = unique("tagged")
    created = iam_cli(server, "create-user", "--user-name", name, "--tags", "Key=team,Value=blue")["User"]
    assert created["Tags"] == [{"Key": "team", "Value": "blue"}]
    key = iam_cli(server, "create-access-key", "--user-name", name)["AccessKey"]
    iam_cli(server, "put-user-policy", "--user-name", name, "--policy-name", "p", "--policy-document", json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "vpc-lattice:ListServices", "Resource": "*",
                       "Condition": {"StringEquals": {"aws:PrincipalTag/team": "red"}}}]}))
    client_ = as_user(server, key)
    with pytest.raises(ClientError) as e:
        client_.list_services()
    assert error_code(e) == "AccessDeniedException"
    # TagUser replaces a value (keys regardless of case).
    iam_cli(server, "tag-user", "--user-name", name, "--tags", "Key=TEAM,Value=red", "Key=env,Value=dev")
    assert sorted((t["Key"], t["Value"]) for t in iam_cli(server, "list-user-tags", "--user-name", name)["Tags"]) == [
        ("TEAM", "red"), ("env", "dev")]
    assert len(iam_cli(server, "get-user", "--user-name", name)["User"]["Tags"]) == 2
    wait_identity(server)
    client_.list_services()
    iam_cli(server, "untag-user", "--user-name", name, "--tag-keys", "team")
    assert [t["Key"] for t in iam_cli(server, "list-user-tags", "--user-name", name)["Tags"]] == ["env"]
    wait_identity(server)
    with pytest.raises(ClientError) as e:
        client_.list_services()
    assert error_code(e) == "AccessDeniedException"
    fails(iam_cli(server, "list-user-tags", "--user-name", unique("nobody"), check=False), "NoSuchEntity")
    iam_cli(server, "delete-user-policy", "--user-name", name, "--policy-name", "p")
    delete_user(server, {"UserName": name}, key)


def test_a_user_may_manage_groups_and_policies_its_policy_allows(server):
    user, key = new_user(server, {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": [
            f"arn:aws:iam::{ACCOUNT}:group/ops/*", f"arn:aws:iam::{ACCOUNT}:policy/ops/*"]}],
    })
    iam = as_user(server, key, "iam")
    gname, pname = unique("g"), unique("p")
    iam.create_group(GroupName=gname, Path="/ops/")
    created = iam.create_policy(PolicyName=pname, Path="/ops/", PolicyDocument=json.dumps(READ_ONLY))["Policy"]
    iam.attach_group_policy(GroupName=gname, PolicyArn=created["Arn"])
    with pytest.raises(ClientError) as e:
        iam.create_group(GroupName=unique("g"))
    assert refused(e)[0::2] == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        iam.list_policies()
    assert refused(e)[0::2] == ("AccessDenied", 403)
    iam.detach_group_policy(GroupName=gname, PolicyArn=created["Arn"])
    iam.delete_policy(PolicyArn=created["Arn"])
    iam.delete_group(GroupName=gname)


def test_readme_groups_section_runs_as_written(server, tmp_path):
    """The README's "Groups and managed policies" example, only the endpoint and the credentials
    file pointed at this server: carol reads through her group, is refused CreateService, then
    creates a service once her policy's v2 is the default."""
    from test_readme import run_readme_block

    p = run_readme_block(server, "iam-groups", tmp_path)
    carol = f"arn:aws:iam::{ACCOUNT}:user/carol"
    assert '"items"' in p.stdout
    assert ("An error occurred (AccessDeniedException) when calling the CreateService operation: "
            + denied(carol, "vpc-lattice:CreateService", "*")) in p.stderr
    assert "v2\tTrue" in p.stdout and "v1\tFalse" in p.stdout
    iam = server.client("iam")
    policy = f"arn:aws:iam::{ACCOUNT}:policy/service-creator"
    assert [t["Key"] for t in iam.list_user_tags(UserName="carol")["Tags"]] == ["team"]
    for k in iam.list_access_keys(UserName="carol")["AccessKeyMetadata"]:
        iam.delete_access_key(UserName="carol", AccessKeyId=k["AccessKeyId"])
    iam.remove_user_from_group(GroupName="lattice-readers", UserName="carol")
    iam.detach_user_policy(UserName="carol", PolicyArn=policy)
    iam.detach_group_policy(GroupName="lattice-readers", PolicyArn=AWS_READ_ONLY)
    iam.delete_policy_version(PolicyArn=policy, VersionId="v1")
    iam.delete_policy(PolicyArn=policy)
    iam.delete_group(GroupName="lattice-readers")
    iam.delete_user(UserName="carol")


def test_lists_page_and_inputs_are_validated(server):
    iam = server.client("iam")
    path = f"/{unique('page')}/"
    groups = sorted(new_group(server, path)["GroupName"] for _ in range(3))
    policies = sorted(new_policy(server, READ_ONLY, path)["PolicyName"] for _ in range(3))
    user = iam_cli(server, "create-user", "--user-name", unique("pager"))["User"]["UserName"]
    for p in policies:
        iam.attach_user_policy(UserName=user, PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy{path}{p}")
    iam.attach_user_policy(UserName=user, PolicyArn=AWS_READ_ONLY)

    def pages(call, key, **kw):
        """Every page of a list call, by hand: its items per page."""
        out, marker = [], None
        while True:
            page = call(**kw, MaxItems=2, **({"Marker": marker} if marker else {}))
            out.append(page[key])
            if not page["IsTruncated"]:
                return out
            marker = page["Marker"]

    got = pages(iam.list_groups, "Groups", PathPrefix=path)
    assert [len(p) for p in got] == [2, 1]
    assert [g["GroupName"] for p in got for g in p] == groups
    got = pages(iam.list_policies, "Policies", Scope="Local", PathPrefix=path)
    assert [p["PolicyName"] for page in got for p in page] == policies
    got = pages(iam.list_attached_user_policies, "AttachedPolicies", UserName=user)
    assert [len(p) for p in got] == [2, 2]
    assert sorted(a["PolicyName"] for p in got for a in p) == sorted(policies + ["VPCLatticeReadOnlyAccess"])
    # The CLI follows the markers by itself.
    listed = iam_cli(server, "list-policies", "--scope", "Local", "--path-prefix", path, "--page-size", "1")
    assert [p["PolicyName"] for p in listed["Policies"]] == policies

    cases = [
        (lambda: iam.create_group(GroupName="not a name"), "ValidationError"),
        (lambda: iam.create_group(GroupName=unique("g"), Path="no-slashes"), "ValidationError"),
        (lambda: iam.get_policy_version(PolicyArn=AWS_READ_ONLY, VersionId="1"), "ValidationError"),
        (lambda: iam.list_policies(Scope="Mine"), "ValidationError"),
        (lambda: iam.list_groups(MaxItems=0), "ValidationError"),
        (lambda: iam.create_policy(PolicyName=unique("p"), PolicyDocument=json.dumps(READ_ONLY) + " " * 6144),
         "LimitExceeded"),
        (lambda: iam.tag_user(UserName=user, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)]),
         "LimitExceeded"),
    ]
    for call, code in cases:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == code
    for p in policies:
        arn = f"arn:aws:iam::{ACCOUNT}:policy{path}{p}"
        iam.detach_user_policy(UserName=user, PolicyArn=arn)
        iam.delete_policy(PolicyArn=arn)
    iam.detach_user_policy(UserName=user, PolicyArn=AWS_READ_ONLY)
    iam.delete_user(UserName=user)
    for g in groups:
        iam.delete_group(GroupName=g)


def test_quotas_on_groups_and_attachments(server):
    iam = server.client("iam")
    user = iam_cli(server, "create-user", "--user-name", unique("quota"))["User"]["UserName"]
    groups = [new_group(server)["GroupName"] for _ in range(11)]
    for g in groups[:10]:
        iam.add_user_to_group(GroupName=g, UserName=user)
    with pytest.raises(ClientError) as e:
        iam.add_user_to_group(GroupName=groups[10], UserName=user)
    assert error_code(e) == "LimitExceeded"
    arns = [f"arn:aws:iam::aws:policy/{n}" for n in AWS_MANAGED]
    arns += [new_policy(server, READ_ONLY)["Arn"] for _ in range(6)]
    for arn in arns[:10]:
        iam.attach_user_policy(UserName=user, PolicyArn=arn)
    with pytest.raises(ClientError) as e:
        iam.attach_user_policy(UserName=user, PolicyArn=arns[10])
    assert error_code(e) == "LimitExceeded"
    for arn in arns[:10]:
        iam.detach_user_policy(UserName=user, PolicyArn=arn)
    for arn in arns[5:]:
        iam.delete_policy(PolicyArn=arn)
    for g in groups[:10]:
        iam.remove_user_from_group(GroupName=g, UserName=user)
    for g in groups:
        iam.delete_group(GroupName=g)
    iam.delete_user(UserName=user)


def test_policy_and_user_tags_are_resource_tags(server):
    """Tags on customer-managed policies and users are `aws:ResourceTag/…` of calls about them."""
    red = new_policy(server, READ_ONLY)["Arn"]
    iam_cli(server, "tag-policy", "--policy-arn", red, "--tags", "Key=team,Value=red")
    plain = new_policy(server, READ_ONLY)["Arn"]
    tagged_user = iam_cli(server, "create-user", "--user-name", unique("red"), "--tags", "Key=team,Value=red")["User"]
    user, key = new_user(server, {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["iam:GetPolicy", "iam:GetUser"], "Resource": "*",
                       "Condition": {"StringEquals": {"aws:ResourceTag/team": "red"}}}],
    })
    iam = as_user(server, key, "iam")
    assert iam.get_policy(PolicyArn=red)["Policy"]["Arn"] == red
    assert iam.get_user(UserName=tagged_user["UserName"])["User"]["Arn"] == tagged_user["Arn"]
    with pytest.raises(ClientError) as e:
        iam.get_policy(PolicyArn=plain)
    assert refused(e)[0::2] == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName=user["UserName"])
    assert refused(e)[0::2] == ("AccessDenied", 403)
    root = server.client("iam")
    for arn in (red, plain):
        root.delete_policy(PolicyArn=arn)
    root.delete_user(UserName=tagged_user["UserName"])


def test_attaching_can_be_delegated_per_policy(server):
    """`iam:PolicyARN` lets an administrator attach some managed policies only."""
    admin, key = new_user(server, {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["iam:AttachUserPolicy", "iam:DetachUserPolicy"],
                       "Resource": "*", "Condition": {"ArnEquals": {"iam:PolicyARN": AWS_READ_ONLY}}}],
    })
    target = iam_cli(server, "create-user", "--user-name", unique("target"))["User"]["UserName"]
    iam = as_user(server, key, "iam")
    iam.attach_user_policy(UserName=target, PolicyArn=AWS_READ_ONLY)
    with pytest.raises(ClientError) as e:
        iam.attach_user_policy(UserName=target, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    assert refused(e)[0::2] == ("AccessDenied", 403)
    iam.detach_user_policy(UserName=target, PolicyArn=AWS_READ_ONLY)
    iam_cli(server, "delete-user", "--user-name", target)
