"""Condition keys on API calls (reference §7.4): `vpc-lattice:AuthType`,
`vpc-lattice:TargetGroupArns`, `aws:RequestTag/…`, `aws:TagKeys` and `aws:ResourceTag/…` scope
what an IAM user may change, evaluated by the one authorizer in front of every operation."""

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, target_group, unique
from test_iam import as_user, new_user, wait_identity


def allow(actions, condition=None, resource="*"):
    statement = {"Effect": "Allow", "Action": actions, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def denied(fn):
    with pytest.raises(ClientError) as e:
        fn()
    assert error_code(e) == "AccessDeniedException", e.value.response
    return e.value.response["Error"]["Message"]


def test_auth_type_scopes_service_creation(server, lattice):
    _, key = new_user(server, allow(["vpc-lattice:CreateService", "vpc-lattice:CreateServiceNetwork"],
                                    {"StringEquals": {"vpc-lattice:AuthType": "AWS_IAM"}}))
    wait_identity(server)
    user = as_user(server, key)
    svc = user.create_service(name=unique("iam"), authType="AWS_IAM")
    assert svc["authType"] == "AWS_IAM"
    assert "vpc-lattice:CreateService" in denied(lambda: user.create_service(name=unique("open"), authType="NONE"))
    # Without the member the key is absent, and StringEquals does not hold.
    denied(lambda: user.create_service(name=unique("open")))
    denied(lambda: user.create_service_network(name=unique("open"), authType="NONE"))
    user.create_service_network(name=unique("iam"), authType="AWS_IAM")


def test_request_tags_and_tag_keys(server, lattice):
    svc = lattice.create_service(name=unique("tagme"))
    _, key = new_user(server, allow(["vpc-lattice:TagResource"], {
        "StringEquals": {"aws:RequestTag/team": "payments"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}))
    wait_identity(server)
    user = as_user(server, key)
    user.tag_resource(resourceArn=svc["arn"], tags={"team": "payments"})
    denied(lambda: user.tag_resource(resourceArn=svc["arn"], tags={"team": "other"}))
    denied(lambda: user.tag_resource(resourceArn=svc["arn"], tags={"team": "payments", "env": "prod"}))
    assert lattice.list_tags_for_resource(resourceArn=svc["arn"])["tags"] == {"team": "payments"}


def test_resource_tags_scope_existing_resources(server, lattice):
    mine = lattice.create_service(name=unique("mine"), tags={"team": "payments"})
    theirs = lattice.create_service(name=unique("theirs"), tags={"team": "search"})
    _, key = new_user(server, allow(["vpc-lattice:GetService", "vpc-lattice:UpdateService"],
                                    {"StringEquals": {"aws:ResourceTag/team": "payments"}}))
    wait_identity(server)
    user = as_user(server, key)
    assert user.get_service(serviceIdentifier=mine["id"])["id"] == mine["id"]
    user.update_service(serviceIdentifier=mine["arn"], authType="AWS_IAM")
    message = denied(lambda: user.get_service(serviceIdentifier=theirs["id"]))
    assert theirs["arn"] in message
    denied(lambda: user.update_service(serviceIdentifier=theirs["id"], authType="AWS_IAM"))
    # Retagging the service moves it out of the user's reach.
    lattice.tag_resource(resourceArn=mine["arn"], tags={"team": "search"})
    denied(lambda: user.get_service(serviceIdentifier=mine["id"]))


def test_target_group_arns_scope_listeners(server, lattice):
    svc = lattice.create_service(name=unique("lsn"))
    ok, other = target_group(lattice), target_group(lattice)
    _, key = new_user(server, allow(["vpc-lattice:CreateListener"], {
        "ForAllValues:ArnEquals": {"vpc-lattice:TargetGroupArns": [ok["arn"]]}}))
    wait_identity(server)
    user = as_user(server, key)

    ports = iter(range(8001, 8010))

    def listener(*tgs):
        return user.create_listener(serviceIdentifier=svc["id"], name=unique("l"), protocol="HTTP",
                                    port=next(ports),
                                    defaultAction={"forward": {"targetGroups": [
                                        {"targetGroupIdentifier": t["id"]} for t in tgs]}})

    assert listener(ok)["arn"]
    denied(lambda: listener(other))
    denied(lambda: listener(ok, other))
