"""AWS_IAM on the data plane with the principals' effective policies: a user with no policy of its
own invokes a service through its group's attached `VPCLatticeServicesInvokeAccess`, a new
default version of a customer-managed policy denies it, a role invokes through an attached
policy, and a user's tags reach the target as its principal tags. Changes are waited for on the
identity revision and the applied revision, never a clock."""

import json

from backends import ServiceBuilder, forward, free_port, ip_target_group, wait_until_applied
from conftest import ACCOUNT, unique
from test_dataplane_auth import AUTHENTICATED_ONLY, call, creds_of, denied, map_header, put_policy, session_of
from test_iam import iam_cli, wait_identity
from test_sts import delete_role, new_role, trust

INVOKE_ACCESS = "arn:aws:iam::aws:policy/VPCLatticeServicesInvokeAccess"


def test_groups_and_managed_policies_authorize_data_plane_calls(dp_server, dp_lattice, start_backend):
    lattice = dp_lattice
    backend = start_backend("iam-groups")
    tg = ip_target_group(lattice, health_check={"enabled": False}, targets=[backend])
    svc = ServiceBuilder(lattice, auth_type="AWS_IAM", network_auth_type="AWS_IAM")
    port = free_port()
    svc.listener("HTTP", port, forward((tg, 1)))
    put_policy(lattice, svc.sn["id"], AUTHENTICATED_ONLY)
    put_policy(lattice, svc.svc["id"], AUTHENTICATED_ONLY)
    arn = svc.svc["arn"]

    name = unique("dp-user")
    user = iam_cli(dp_server, "create-user", "--user-name", name, "--tags", "Key=team,Value=payments")["User"]
    key = creds_of(iam_cli(dp_server, "create-access-key", "--user-name", name)["AccessKey"])
    group = unique("dp-group")
    iam_cli(dp_server, "create-group", "--group-name", group)
    iam_cli(dp_server, "attach-group-policy", "--group-name", group, "--policy-arn", INVOKE_ACCESS)
    wait_identity(dp_server)
    wait_until_applied(dp_server)

    def status():
        wait_identity(dp_server)
        r = call(svc, port, "/rates", creds=key)
        return r.status, r

    # No policy of its own, not in the group yet: the identity layer refuses.
    code, r = status()
    assert (code, r.body.decode()) == (403, denied(f"{arn}/rates", user["Arn"], "identity"))
    # In the group: allowed through the group's AWS-managed policy; its tags reach the target.
    iam_cli(dp_server, "add-user-to-group", "--group-name", group, "--user-name", name)
    code, r = status()
    assert code == 200, r.body
    tags = map_header(r.json()["headers"]["x-amzn-lattice-identity-tags"])
    assert tags["principal"] == user["Arn"] and tags["team"] == "payments"

    # A customer-managed policy attached to the user whose new default version denies /rates.
    policy = iam_cli(dp_server, "create-policy", "--policy-name", unique("dp-pol"), "--policy-document",
                     json.dumps({"Version": "2012-10-17", "Statement": [
                         {"Effect": "Allow", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]}))["Policy"]
    iam_cli(dp_server, "attach-user-policy", "--user-name", name, "--policy-arn", policy["Arn"])
    assert status()[0] == 200
    iam_cli(dp_server, "create-policy-version", "--policy-arn", policy["Arn"], "--set-as-default",
            "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Deny", "Action": "vpc-lattice-svcs:Invoke", "Resource": f"{arn}/rates"}]}))
    code, r = status()
    assert (code, r.body.decode()) == (403, (
        f"AccessDeniedException: User: {user['Arn']} is not authorized to perform: vpc-lattice-svcs:Invoke on "
        f"resource: {arn}/rates with an explicit deny in an identity-based policy"))
    assert call(svc, port, "/other", creds=key).status == 200
    iam_cli(dp_server, "set-default-policy-version", "--policy-arn", policy["Arn"], "--version-id", "v1")
    assert status()[0] == 200
    # Out of the group, with v1 still attached: allowed; detached too: refused.
    iam_cli(dp_server, "remove-user-from-group", "--group-name", group, "--user-name", name)
    assert status()[0] == 200
    iam_cli(dp_server, "detach-user-policy", "--user-name", name, "--policy-arn", policy["Arn"])
    assert status()[0] == 403

    # A role session, through the role's attached policy only.
    role = new_role(dp_server, trust(ACCOUNT))
    iam_cli(dp_server, "attach-role-policy", "--role-name", role["RoleName"], "--policy-arn", INVOKE_ACCESS)
    wait_identity(dp_server)
    session = session_of(dp_server, role)
    assert call(svc, port, "/rates", creds=session).status == 200
    iam_cli(dp_server, "detach-role-policy", "--role-name", role["RoleName"], "--policy-arn", INVOKE_ACCESS)
    wait_identity(dp_server)
    assert call(svc, port, "/rates", creds=session).status == 403

    delete_role(dp_server, role)
    iam_cli(dp_server, "delete-policy-version", "--policy-arn", policy["Arn"], "--version-id", "v2")
    iam_cli(dp_server, "delete-policy", "--policy-arn", policy["Arn"])
    iam_cli(dp_server, "detach-group-policy", "--group-name", group, "--policy-arn", INVOKE_ACCESS)
    iam_cli(dp_server, "delete-group", "--group-name", group)
