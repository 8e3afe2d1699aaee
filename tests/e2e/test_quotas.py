"""`trellis serve --quota CODE=N`: the adjustable account quotas (what Service Quotas raises for
Lattice) are enforced at the configured value, through the real API and clients."""

import pytest
from botocore.exceptions import ClientError

from conftest import Server, backends, error_code, running, unique, vpc_of


QUOTAS = ["services-per-region=3", "service-associations-per-service-network=2",
          "target-groups-per-region=2", "service-networks-per-region=1"]


@pytest.fixture(scope="module", params=backends())
def client(request):
    for s in running(Server(request.param, [a for q in QUOTAS for a in ("--quota", q)])):
        yield s.client()


def quota_error(excinfo, code, resource_type):
    r = excinfo.value.response
    assert error_code(excinfo) == "ServiceQuotaExceededException"
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 402
    assert r["quotaCode"] == code
    assert r["resourceType"] == resource_type


def test_lowered_quotas_are_enforced_at_their_value(client):
    sn = client.create_service_network(name=unique("sn"))["id"]
    with pytest.raises(ClientError) as e:
        client.create_service_network(name=unique("sn"))
    quota_error(e, "service-networks-per-region", "SERVICE_NETWORK")

    services = [client.create_service(name=unique("web"))["id"] for _ in range(3)]
    with pytest.raises(ClientError) as e:
        client.create_service(name=unique("web"))
    quota_error(e, "services-per-region", "SERVICE")

    for svc in services[:2]:
        client.create_service_network_service_association(
            serviceNetworkIdentifier=sn, serviceIdentifier=svc)
    with pytest.raises(ClientError) as e:
        client.create_service_network_service_association(
            serviceNetworkIdentifier=sn, serviceIdentifier=services[2])
    quota_error(e, "service-associations-per-service-network", "SERVICE_NETWORK_SERVICE_ASSOCIATION")

    for _ in range(2):
        client.create_target_group(name=unique("grp"), type="IP", config={
            "port": 80, "protocol": "HTTP", "vpcIdentifier": vpc_of(client)})
    with pytest.raises(ClientError) as e:
        client.create_target_group(name=unique("grp"), type="IP", config={
            "port": 80, "protocol": "HTTP", "vpcIdentifier": vpc_of(client)})
    quota_error(e, "target-groups-per-region", "TARGET_GROUP")

    # Deleting frees quota: the limit counts what exists, not what was ever created.
    client.delete_service(serviceIdentifier=services[2])
    assert client.create_service(name=unique("web"))["status"] == "ACTIVE"
