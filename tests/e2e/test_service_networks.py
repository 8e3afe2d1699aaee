"""Service networks through boto3: create/get/list/update/delete, validation, idempotency,
pagination, quotas-free error paths and persistence across restarts."""

import pytest
from botocore.exceptions import ClientError

from conftest import error_code, list_by_hand, unique


def test_create_get_update_delete(lattice):
    name = unique("sn")
    created = lattice.create_service_network(name=name, tags={"team": "platform"})
    assert created["name"] == name
    assert created["id"].startswith("sn-") and len(created["id"]) == 20
    assert created["arn"] == f"arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/{created['id']}"
    assert created["authType"] == "NONE"
    assert created["sharingConfig"] == {"enabled": False}

    got = lattice.get_service_network(serviceNetworkIdentifier=created["arn"])
    assert got["id"] == created["id"]
    assert got["numberOfAssociatedServices"] == 0 and got["numberOfAssociatedVPCs"] == 0
    assert got["createdAt"] <= got["lastUpdatedAt"]

    updated = lattice.update_service_network(serviceNetworkIdentifier=created["id"], authType="AWS_IAM")
    assert updated["authType"] == "AWS_IAM"
    assert lattice.get_service_network(serviceNetworkIdentifier=created["id"])["authType"] == "AWS_IAM"

    resp = lattice.delete_service_network(serviceNetworkIdentifier=created["id"])
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        lattice.get_service_network(serviceNetworkIdentifier=created["id"])
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["resourceId"] if "resourceId" in e.value.response else True


@pytest.mark.parametrize(
    "name,field",
    [("ab", "name"), ("-abc", "name"), ("abc-", "name"), ("a--b", "name"), ("Upper", "name"), ("x" * 64, "name")],
)
def test_bad_names_are_validation_errors(lattice, name, field):
    with pytest.raises(ClientError) as e:
        lattice.create_service_network(name=name)
    assert error_code(e) == "ValidationException"
    assert e.value.response["Error"]["Message"]
    assert [f["name"] for f in e.value.response["fieldList"]] == [field]
    assert e.value.response["reason"] == "fieldValidationFailed"


def test_duplicate_name_is_conflict(lattice):
    name = unique("sn")
    first = lattice.create_service_network(name=name)
    with pytest.raises(ClientError) as e:
        lattice.create_service_network(name=name)
    assert error_code(e) == "ConflictException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    lattice.delete_service_network(serviceNetworkIdentifier=first["id"])


def test_client_token_idempotency(lattice):
    name = unique("sn")
    a = lattice.create_service_network(name=name, clientToken="tok-" + name)
    b = lattice.create_service_network(name=name, clientToken="tok-" + name)
    assert a["id"] == b["id"]
    with pytest.raises(ClientError) as e:
        lattice.create_service_network(name=name, authType="AWS_IAM", clientToken="tok-" + name)
    assert error_code(e) == "ConflictException"
    lattice.delete_service_network(serviceNetworkIdentifier=a["id"])


def test_pagination_visits_every_network_once(lattice):
    ids = {lattice.create_service_network(name=unique("pg"))["id"] for _ in range(7)}
    seen = [i["id"] for i in list_by_hand(lattice.list_service_networks, 20, maxResults=3)]
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))
    paginated = [i["id"] for p in lattice.get_paginator("list_service_networks").paginate(PaginationConfig={"PageSize": 2}) for i in p["items"]]
    assert paginated == seen
    for i in ids:
        lattice.delete_service_network(serviceNetworkIdentifier=i)


def test_bad_max_results_and_identifiers(lattice):
    with pytest.raises(ClientError) as e:
        lattice.list_service_networks(maxResults=101)
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        lattice.get_service_network(serviceNetworkIdentifier="sn-00000000000000000")
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_unsigned_and_badly_signed_requests_are_refused(server):
    bad = server.client(secret_key="wrong-secret")
    with pytest.raises(ClientError) as e:
        bad.list_service_networks()
    assert error_code(e) == "InvalidSignatureException"
    unknown = server.client(access_key="AKIAUNKNOWNUNKNOWN00")
    with pytest.raises(ClientError) as e:
        unknown.list_service_networks()
    assert error_code(e) == "UnrecognizedClientException"
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.endpoint + "/servicenetworks", timeout=5)
    assert e.value.code == 403


def test_unimplemented_operation_is_an_aws_error(lattice):
    with pytest.raises(ClientError) as e:
        lattice.list_resource_gateways()
    assert error_code(e) == "ValidationException"
    assert "not" in e.value.response["Error"]["Message"]


def test_state_survives_restart_and_kill9(server, lattice):
    name = unique("keep")
    sn = lattice.create_service_network(name=name)
    rev_before = server.revision()["store"]
    server.restart()
    client = server.client()
    assert client.get_service_network(serviceNetworkIdentifier=sn["id"])["name"] == name
    name2 = unique("kill")
    sn2 = client.create_service_network(name=name2)
    server.kill9()
    server.start()
    client = server.client()
    assert client.get_service_network(serviceNetworkIdentifier=sn2["id"])["name"] == name2
    assert server.revision()["store"] > rev_before
    for i in (sn["id"], sn2["id"]):
        client.delete_service_network(serviceNetworkIdentifier=i)
