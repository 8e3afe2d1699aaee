"""Auth policies and resource policies through boto3 and the AWS CLI: put/get/replace/delete,
state following the resource's authType, policy-language validation, identifier rules, and the
cascade that removes a resource's policies when the resource is deleted."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, stored_count, unique

ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}],
}
AUTHENTICATED_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:*", "Resource": "*",
        "Condition": {"StringNotEqualsIgnoreCase": {"aws:PrincipalType": "anonymous"}},
    }],
}


def sharing_policy(arn):
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
            "Action": ["vpc-lattice:CreateServiceNetworkVpcAssociation", "vpc-lattice:GetServiceNetwork"],
            "Resource": arn,
        }],
    }


def test_auth_policy_put_get_replace_delete(lattice, sn):
    put = lattice.put_auth_policy(resourceIdentifier=sn["id"], policy=json.dumps(ALLOW_ALL))
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert json.loads(put["policy"]) == ALLOW_ALL
    assert put["state"] == "Inactive"

    got = lattice.get_auth_policy(resourceIdentifier=sn["arn"])
    assert json.loads(got["policy"]) == ALLOW_ALL
    assert got["state"] == "Inactive"
    assert got["createdAt"] == got["lastUpdatedAt"]

    replaced = lattice.put_auth_policy(resourceIdentifier=sn["arn"], policy=json.dumps(AUTHENTICATED_ONLY))
    assert json.loads(replaced["policy"]) == AUTHENTICATED_ONLY
    again = lattice.get_auth_policy(resourceIdentifier=sn["id"])
    assert json.loads(again["policy"]) == AUTHENTICATED_ONLY
    assert again["createdAt"] == got["createdAt"]
    assert again["lastUpdatedAt"] >= got["lastUpdatedAt"]

    deleted = lattice.delete_auth_policy(resourceIdentifier=sn["id"])
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        lattice.get_auth_policy(resourceIdentifier=sn["id"])
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        lattice.delete_auth_policy(resourceIdentifier=sn["id"])
    assert error_code(e) == "ResourceNotFoundException"


def test_state_follows_the_service_network_auth_type(lattice, sn):
    lattice.put_auth_policy(resourceIdentifier=sn["id"], policy=json.dumps(ALLOW_ALL))
    lattice.update_service_network(serviceNetworkIdentifier=sn["id"], authType="AWS_IAM")
    assert lattice.get_auth_policy(resourceIdentifier=sn["id"])["state"] == "Active"
    assert lattice.put_auth_policy(resourceIdentifier=sn["id"], policy=json.dumps(ALLOW_ALL))["state"] == "Active"
    lattice.update_service_network(serviceNetworkIdentifier=sn["id"], authType="NONE")
    got = lattice.get_auth_policy(resourceIdentifier=sn["id"])
    assert got["state"] == "Inactive"
    # The policy is kept while inactive.
    assert json.loads(got["policy"]) == ALLOW_ALL


def test_created_with_aws_iam_is_active_and_delete_is_allowed(lattice):
    created = lattice.create_service_network(name=unique("iam"), authType="AWS_IAM")
    assert lattice.put_auth_policy(resourceIdentifier=created["id"], policy=json.dumps(ALLOW_ALL))["state"] == "Active"
    # Decision: deleting while authType is AWS_IAM succeeds (every request is then denied).
    assert lattice.delete_auth_policy(resourceIdentifier=created["id"])["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        lattice.get_auth_policy(resourceIdentifier=created["id"])
    assert error_code(e) == "ResourceNotFoundException"
    assert lattice.get_service_network(serviceNetworkIdentifier=created["id"])["authType"] == "AWS_IAM"
    lattice.delete_service_network(serviceNetworkIdentifier=created["id"])


def test_cli_put_with_pretty_printed_file(server, sn, tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(AUTHENTICATED_ONLY, indent=4))
    out = server.cli("put-auth-policy", "--resource-identifier", sn["arn"], "--policy", f"file://{path}")
    assert json.loads(out["policy"]) == AUTHENTICATED_ONLY
    assert out["state"] == "Inactive"
    got = server.cli("get-auth-policy", "--resource-identifier", sn["id"])
    assert got["policy"] == path.read_text()
    server.cli("delete-auth-policy", "--resource-identifier", sn["id"])
    failed = server.cli("get-auth-policy", "--resource-identifier", sn["id"], check=False)
    assert failed.returncode != 0 and "ResourceNotFoundException" in failed.stderr


def _statement(**members):
    return json.dumps({"Version": "2012-10-17", "Statement": [members]})


@pytest.mark.parametrize(
    "policy,fragment",
    [
        ('{"Version": "2012-10-17", "Statement": [', "not valid JSON"),
        (_statement(Principal="*", Action="vpc-lattice-svcs:Invoke", Resource="*"), "Statement[0].Effect"),
        (_statement(Effect="Allow", Principal="*", Action="s3:GetObject", Resource="*"), "s3:GetObject"),
        (_statement(Effect="Maybe", Principal="*", Action="vpc-lattice-svcs:Invoke", Resource="*"), "Statement[0].Effect"),
        ("x" * 36_865, "less than or equal to 36864"),
        (json.dumps(ALLOW_ALL) + " " * 10_240, "10 KB"),
        ("", "greater than or equal to 1"),
    ],
    ids=["bad-json", "missing-effect", "bad-action-prefix", "bad-effect", "too-long", "over-10kb-quota", "empty"],
)
def test_malformed_auth_policies_are_validation_errors(lattice, sn, policy, fragment):
    with pytest.raises(ClientError) as e:
        lattice.put_auth_policy(resourceIdentifier=sn["id"], policy=policy)
    assert error_code(e) == "ValidationException"
    resp = e.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert resp["reason"] == "fieldValidationFailed"
    assert resp["fieldList"] and all(f["name"] == "policy" for f in resp["fieldList"])
    assert any(fragment in f["message"] for f in resp["fieldList"]), resp["fieldList"]
    assert fragment in resp["Error"]["Message"]
    # Nothing was stored.
    with pytest.raises(ClientError) as e:
        lattice.get_auth_policy(resourceIdentifier=sn["id"])
    assert error_code(e) == "ResourceNotFoundException"


def test_every_policy_problem_is_reported(lattice, sn):
    policy = json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"},
            {"Effect": "Allow", "Principal": "*", "Action": "ec2:RunInstances", "Resource": "*"},
        ],
    })
    with pytest.raises(ClientError) as e:
        lattice.put_auth_policy(resourceIdentifier=sn["id"], policy=policy)
    messages = [f["message"] for f in e.value.response["fieldList"]]
    assert any("Statement[0]" in m for m in messages), messages
    assert any("Statement[1]" in m and "ec2:RunInstances" in m for m in messages), messages


def test_auth_policy_identifier_errors(lattice):
    missing = "sn-0000000000000000a"
    with pytest.raises(ClientError) as e:
        lattice.put_auth_policy(resourceIdentifier=missing, policy=json.dumps(ALLOW_ALL))
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["resourceType"] == "SERVICE_NETWORK"
    assert e.value.response["resourceId"] == missing
    for call in (lattice.get_auth_policy, lattice.delete_auth_policy):
        with pytest.raises(ClientError) as e:
            call(resourceIdentifier="svc-0000000000000000a")
        assert error_code(e) == "ResourceNotFoundException"
        assert e.value.response["resourceType"] == "SERVICE"
    # Another region's ARN names nothing here.
    with pytest.raises(ClientError) as e:
        lattice.get_auth_policy(resourceIdentifier=f"arn:aws:vpc-lattice:eu-west-1:111122223333:servicenetwork/{missing}")
    assert error_code(e) == "ResourceNotFoundException"

    for bad in ("tg-0123456789abcdef0", "not-an-identifier-at-all", "sn-0123456789ABCDEF0"):
        with pytest.raises(ClientError) as e:
            lattice.get_auth_policy(resourceIdentifier=bad)
        assert error_code(e) == "ValidationException", bad
        assert [f["name"] for f in e.value.response["fieldList"]] == ["resourceIdentifier"]

    for rcfg in ("rcfg-0123456789abcdef0", "arn:aws:vpc-lattice:us-west-2:111122223333:resourceconfiguration/rcfg-0123456789abcdef0"):
        with pytest.raises(ClientError) as e:
            lattice.put_auth_policy(resourceIdentifier=rcfg, policy=json.dumps(ALLOW_ALL))
        assert error_code(e) == "ValidationException"
        assert "resource configuration" in e.value.response["Error"]["Message"]
        assert [f["name"] for f in e.value.response["fieldList"]] == ["resourceIdentifier"]


def test_identifier_and_policy_errors_are_reported_together(lattice):
    with pytest.raises(ClientError) as e:
        lattice.put_auth_policy(resourceIdentifier="tg-0123456789abcdef0", policy="{")
    assert sorted(f["name"] for f in e.value.response["fieldList"]) == ["policy", "resourceIdentifier"]


def test_resource_policy_put_get_replace_delete(lattice, server, sn):
    put = lattice.put_resource_policy(resourceArn=sn["arn"], policy=json.dumps(sharing_policy(sn["arn"])))
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert set(put) == {"ResponseMetadata"}
    assert json.loads(lattice.get_resource_policy(resourceArn=sn["arn"])["policy"]) == sharing_policy(sn["arn"])

    narrower = sharing_policy(sn["arn"])
    narrower["Statement"][0]["Action"] = "vpc-lattice:GetServiceNetwork"
    lattice.put_resource_policy(resourceArn=sn["arn"], policy=json.dumps(narrower))
    assert json.loads(lattice.get_resource_policy(resourceArn=sn["arn"])["policy"]) == narrower
    # The CLI addresses it the same way.
    assert json.loads(server.cli("get-resource-policy", "--resource-arn", sn["arn"])["policy"]) == narrower

    # Resource and auth policies are separate documents.
    with pytest.raises(ClientError) as e:
        lattice.get_auth_policy(resourceIdentifier=sn["id"])
    assert error_code(e) == "ResourceNotFoundException"

    assert lattice.delete_resource_policy(resourceArn=sn["arn"])["ResponseMetadata"]["HTTPStatusCode"] == 204
    for call in (lattice.get_resource_policy, lattice.delete_resource_policy):
        with pytest.raises(ClientError) as e:
            call(resourceArn=sn["arn"])
        assert error_code(e) == "ResourceNotFoundException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize(
    "policy,fragment",
    [
        ("   ", "\\S"),
        ("x" * 10_001, "less than or equal to 10000"),
        ("[1, 2]", "JSON object"),
        (_statement(Principal="*", Action="vpc-lattice:GetServiceNetwork"), "Statement[0].Effect"),
    ],
    ids=["whitespace", "too-long", "not-an-object", "missing-effect"],
)
def test_malformed_resource_policies_are_validation_errors(lattice, sn, policy, fragment):
    with pytest.raises(ClientError) as e:
        lattice.put_resource_policy(resourceArn=sn["arn"], policy=policy)
    assert error_code(e) == "ValidationException"
    fields = e.value.response["fieldList"]
    assert fields and all(f["name"] == "policy" for f in fields)
    assert any(fragment in f["message"] for f in fields), fields


def test_resource_policy_arn_rules(lattice, sn):
    policy = json.dumps(sharing_policy(sn["arn"]))
    # A bare ID is not an ARN.
    with pytest.raises(ClientError) as e:
        lattice.put_resource_policy(resourceArn=sn["id"], policy=policy)
    assert error_code(e) == "ValidationException"
    assert [f["name"] for f in e.value.response["fieldList"]] == ["resourceArn"]
    # Target groups cannot carry resource policies.
    with pytest.raises(ClientError) as e:
        lattice.get_resource_policy(resourceArn="arn:aws:vpc-lattice:us-west-2:111122223333:targetgroup/tg-0123456789abcdef0")
    assert error_code(e) == "ValidationException"
    # Resource configurations are not supported.
    with pytest.raises(ClientError) as e:
        lattice.put_resource_policy(
            resourceArn="arn:aws:vpc-lattice:us-west-2:111122223333:resourceconfiguration/rcfg-0123456789abcdef0",
            policy=policy,
        )
    assert error_code(e) == "ValidationException"
    assert "resource configuration" in e.value.response["Error"]["Message"]
    # A well-formed ARN of nothing.
    gone = "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-0000000000000000b"
    with pytest.raises(ClientError) as e:
        lattice.put_resource_policy(resourceArn=gone, policy=policy)
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["resourceType"] == "SERVICE_NETWORK"


def test_deleting_a_service_network_removes_its_policies(server, lattice):
    created = lattice.create_service_network(name=unique("casc"))
    lattice.put_auth_policy(resourceIdentifier=created["id"], policy=json.dumps(ALLOW_ALL))
    lattice.put_resource_policy(resourceArn=created["arn"], policy=json.dumps(sharing_policy(created["arn"])))
    assert stored_count(server, "auth-policy", id=created["id"]) == 1
    assert stored_count(server, "resource-policy", id=created["id"]) == 1
    lattice.delete_service_network(serviceNetworkIdentifier=created["id"])
    assert stored_count(server, "auth-policy", id=created["id"]) == 0
    assert stored_count(server, "resource-policy", id=created["id"]) == 0
    with pytest.raises(ClientError) as e:
        lattice.get_auth_policy(resourceIdentifier=created["id"])
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["resourceType"] == "SERVICE_NETWORK"
    # A new network (even with the same name) starts without policies.
    fresh = lattice.create_service_network(name=created["name"])
    for call, kw in ((lattice.get_auth_policy, {"resourceIdentifier": fresh["id"]}),
                     (lattice.get_resource_policy, {"resourceArn": fresh["arn"]})):
        with pytest.raises(ClientError) as e:
            call(**kw)
        assert error_code(e) == "ResourceNotFoundException"
    lattice.delete_service_network(serviceNetworkIdentifier=fresh["id"])


def test_service_auth_policy_state_and_cascade(server, lattice):
    svc = lattice.create_service(name=unique("psvc"))
    put = lattice.put_auth_policy(resourceIdentifier=svc["arn"], policy=json.dumps(ALLOW_ALL))
    assert put["state"] == "Inactive"
    lattice.update_service(serviceIdentifier=svc["id"], authType="AWS_IAM")
    assert lattice.get_auth_policy(resourceIdentifier=svc["id"])["state"] == "Active"
    lattice.put_resource_policy(resourceArn=svc["arn"], policy=json.dumps(sharing_policy(svc["arn"])))
    assert json.loads(lattice.get_resource_policy(resourceArn=svc["arn"])["policy"]) == sharing_policy(svc["arn"])
    lattice.delete_service(serviceIdentifier=svc["id"])
    assert stored_count(server, "auth-policy", id=svc["id"]) == 0
    assert stored_count(server, "resource-policy", id=svc["id"]) == 0
    with pytest.raises(ClientError) as e:
        lattice.get_auth_policy(resourceIdentifier=svc["id"])
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["resourceType"] == "SERVICE"


def test_policies_survive_restart(server, lattice):
    created = lattice.create_service_network(name=unique("keep"), authType="AWS_IAM")
    lattice.put_auth_policy(resourceIdentifier=created["id"], policy=json.dumps(AUTHENTICATED_ONLY))
    lattice.put_resource_policy(resourceArn=created["arn"], policy=json.dumps(sharing_policy(created["arn"])))
    before = lattice.get_auth_policy(resourceIdentifier=created["id"])
    server.restart()
    client = server.client()
    after = client.get_auth_policy(resourceIdentifier=created["id"])
    assert after == {**before, "ResponseMetadata": after["ResponseMetadata"]}
    assert after["state"] == "Active"
    assert json.loads(client.get_resource_policy(resourceArn=created["arn"])["policy"]) == sharing_policy(created["arn"])
    client.delete_service_network(serviceNetworkIdentifier=created["id"])
