"""Service-network associations through boto3 and the AWS CLI: SN–service and SN–VPC create/get/
list/update/delete shapes and status codes, list filters (by SN, by service/VPC, both, neither),
validation, conflicts (one association per SN+service, one SN per VPC, custom domains unique
within an SN), quotas (500 per SN), idempotency, pagination, and the DeleteServiceNetwork /
DeleteService preconditions they create."""

from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, delete_service_network, error_code, fields, members, new_vpc, status, unique

SNSA_CREATE = {"id", "status", "arn", "createdBy", "dnsEntry"}
SNSA_GET = {"id", "status", "arn", "createdBy", "createdAt", "serviceId", "serviceName", "serviceArn",
            "serviceNetworkId", "serviceNetworkName", "serviceNetworkArn", "dnsEntry"}
SNVA_CREATE = {"id", "status", "arn", "createdBy", "securityGroupIds", "privateDnsEnabled", "dnsOptions"}
SNVA_GET = {"id", "status", "arn", "createdBy", "createdAt", "lastUpdatedAt", "serviceNetworkId",
            "serviceNetworkName", "serviceNetworkArn", "vpcId", "securityGroupIds", "privateDnsEnabled", "dnsOptions"}
SNVA_SUMMARY = SNVA_GET - {"securityGroupIds"}


def vpc_id(lattice=None):
    """A fresh VPC of `lattice`'s account (`aws ec2 create-vpc`); without a client, a well-formed
    ID of no VPC (for lookups that find nothing)."""
    if lattice is not None:
        return new_vpc(lattice)
    import uuid
    return "vpc-" + uuid.uuid4().hex[:17]


def security_groups(lattice, vpc, n):
    """`n` fresh security groups of `vpc` (`aws ec2 create-security-group`)."""
    creds = lattice._request_signer._credentials.get_frozen_credentials()
    ec2 = boto3.client("ec2", endpoint_url=lattice.meta.endpoint_url, region_name=REGION,
                       aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                       aws_session_token=creds.token)
    return [ec2.create_security_group(GroupName=unique("group"), Description="test", VpcId=vpc)["GroupId"]
            for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# Service network ↔ service
# ---------------------------------------------------------------------------------------------

def test_service_association_lifecycle(lattice, sn, svc):
    created = lattice.create_service_network_service_association(
        serviceIdentifier=svc["arn"], serviceNetworkIdentifier=sn["arn"], tags={"k": "v"})
    assert status(created) == 200
    assert members(created) == SNSA_CREATE
    aid = created["id"]
    assert aid.startswith("snsa-") and len(aid) == 22
    assert created["arn"] == f"arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:servicenetworkserviceassociation/{aid}"
    assert created["status"] == "ACTIVE" and created["createdBy"] == ACCOUNT
    assert created["dnsEntry"] == svc["dnsEntry"]

    for ident in (aid, created["arn"]):
        got = lattice.get_service_network_service_association(serviceNetworkServiceAssociationIdentifier=ident)
        assert members(got) == SNSA_GET
        assert (got["serviceId"], got["serviceName"], got["serviceArn"]) == (svc["id"], svc["name"], svc["arn"])
        assert (got["serviceNetworkId"], got["serviceNetworkName"], got["serviceNetworkArn"]) == \
            (sn["id"], sn["name"], sn["arn"])
        assert got["dnsEntry"] == svc["dnsEntry"] and got["status"] == "ACTIVE"
    assert lattice.list_tags_for_resource(resourceArn=created["arn"])["tags"] == {"k": "v"}

    net = lattice.get_service_network(serviceNetworkIdentifier=sn["id"])
    assert net["numberOfAssociatedServices"] == 1
    # The network cannot go while the association exists.
    with pytest.raises(ClientError) as e:
        lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])
    assert error_code(e) == "ConflictException"

    deleted = lattice.delete_service_network_service_association(serviceNetworkServiceAssociationIdentifier=created["arn"])
    assert status(deleted) == 200 and members(deleted) == {"id", "status", "arn"}
    assert deleted["status"] == "DELETE_IN_PROGRESS" and deleted["id"] == aid
    with pytest.raises(ClientError) as e:
        lattice.get_service_network_service_association(serviceNetworkServiceAssociationIdentifier=aid)
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["resourceType"] == "SERVICE_NETWORK_SERVICE_ASSOCIATION"
    with pytest.raises(ClientError) as e:
        lattice.delete_service_network_service_association(serviceNetworkServiceAssociationIdentifier=aid)
    assert error_code(e) == "ResourceNotFoundException"
    assert lattice.get_service_network(serviceNetworkIdentifier=sn["id"])["numberOfAssociatedServices"] == 0


def test_service_association_conflicts_and_not_found(lattice, sn, svc):
    first = lattice.create_service_network_service_association(serviceIdentifier=svc["id"], serviceNetworkIdentifier=sn["id"])
    with pytest.raises(ClientError) as e:
        lattice.create_service_network_service_association(serviceIdentifier=svc["arn"], serviceNetworkIdentifier=sn["id"])
    assert error_code(e) == "ConflictException" and e.value.response["resourceId"] == first["id"]
    # The same service may join another network.
    other = lattice.create_service_network(name=unique("asn2"))
    second = lattice.create_service_network_service_association(serviceIdentifier=svc["id"], serviceNetworkIdentifier=other["id"])
    assert second["id"] != first["id"]
    for kwargs, rtype in [
        ({"serviceIdentifier": "svc-00000000000000000", "serviceNetworkIdentifier": sn["id"]}, "SERVICE"),
        ({"serviceIdentifier": svc["id"], "serviceNetworkIdentifier": "sn-00000000000000000"}, "SERVICE_NETWORK"),
        ({"serviceIdentifier": svc["id"],
          "serviceNetworkIdentifier": f"arn:aws:vpc-lattice:{REGION}:444455556666:servicenetwork/{sn['id']}"}, "SERVICE_NETWORK"),
    ]:
        with pytest.raises(ClientError) as e:
            lattice.create_service_network_service_association(**kwargs)
        assert error_code(e) == "ResourceNotFoundException" and e.value.response["resourceType"] == rtype
    delete_service_network(lattice, other["id"])


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({}, ["serviceIdentifier", "serviceNetworkIdentifier"]),
        ({"serviceIdentifier": "svc-1", "serviceNetworkIdentifier": "sn-00000000000000000"}, ["serviceIdentifier"]),
        ({"serviceIdentifier": "sn-00000000000000000", "serviceNetworkIdentifier": "svc-00000000000000000"},
         ["serviceIdentifier", "serviceNetworkIdentifier"]),
        ({"serviceIdentifier": "svc-00000000000000000", "serviceNetworkIdentifier": "sn-00000000000000000",
          "tags": {"aws:x": "y"}}, ["tags.aws:x"]),
    ],
)
def test_service_association_validation(unchecked, kwargs, expected):
    with pytest.raises(ClientError) as e:
        unchecked.create_service_network_service_association(**kwargs)
    assert error_code(e) == "ValidationException" and fields(e) == expected


def test_custom_domain_unique_within_a_network(lattice, sn):
    domain = unique("cd") + ".example.com"
    a = lattice.create_service(name=unique("cda"), customDomainName=domain)
    b = lattice.create_service(name=unique("cdb"), customDomainName=domain.upper())
    assoc = lattice.create_service_network_service_association(serviceIdentifier=a["id"], serviceNetworkIdentifier=sn["id"])
    assert assoc["customDomainName"] == domain and members(assoc) == SNSA_CREATE | {"customDomainName"}
    got = lattice.get_service_network_service_association(serviceNetworkServiceAssociationIdentifier=assoc["id"])
    assert got["customDomainName"] == domain
    with pytest.raises(ClientError) as e:
        lattice.create_service_network_service_association(serviceIdentifier=b["id"], serviceNetworkIdentifier=sn["id"])
    assert error_code(e) == "ConflictException" and domain in e.value.response["Error"]["Message"]
    other = lattice.create_service_network(name=unique("cdn"))
    ok = lattice.create_service_network_service_association(serviceIdentifier=b["id"], serviceNetworkIdentifier=other["id"])
    assert ok["status"] == "ACTIVE"
    delete_service_network(lattice, other["id"])
    delete_service_network(lattice, sn["id"])
    for s in (a, b):
        lattice.delete_service(serviceIdentifier=s["id"])


def test_service_association_list_filters(lattice, unchecked):
    sn1 = lattice.create_service_network(name=unique("lf"))
    sn2 = lattice.create_service_network(name=unique("lf"))
    s1 = lattice.create_service(name=unique("lfs"))
    s2 = lattice.create_service(name=unique("lfs"))
    pairs = {}
    for n in (sn1, sn2):
        for s in (s1, s2):
            pairs[(n["id"], s["id"])] = lattice.create_service_network_service_association(
                serviceIdentifier=s["id"], serviceNetworkIdentifier=n["id"])["id"]

    def ids(**kw):
        return [i["id"] for p in lattice.get_paginator("list_service_network_service_associations").paginate(**kw)
                for i in p["items"]]

    assert ids(serviceNetworkIdentifier=sn1["id"]) == [pairs[(sn1["id"], s1["id"])], pairs[(sn1["id"], s2["id"])]]
    assert ids(serviceIdentifier=s2["arn"]) == [pairs[(sn1["id"], s2["id"])], pairs[(sn2["id"], s2["id"])]]
    assert ids(serviceNetworkIdentifier=sn2["arn"], serviceIdentifier=s1["id"]) == [pairs[(sn2["id"], s1["id"])]]
    item = lattice.list_service_network_service_associations(serviceNetworkIdentifier=sn1["id"])["items"][0]
    assert set(item) == SNSA_GET
    # Unknown but well-formed filters: an empty list (List models no ResourceNotFoundException).
    assert ids(serviceNetworkIdentifier="sn-00000000000000000") == []
    assert ids(serviceIdentifier=f"arn:aws:vpc-lattice:{REGION}:444455556666:service/{s1['id']}") == []
    page = lattice.list_service_network_service_associations(serviceNetworkIdentifier=sn1["id"], maxResults=1)
    assert len(page["items"]) == 1 and page["nextToken"]
    rest = lattice.list_service_network_service_associations(serviceNetworkIdentifier=sn1["id"], nextToken=page["nextToken"])
    assert [i["id"] for i in rest["items"]] == [pairs[(sn1["id"], s2["id"])]] and "nextToken" not in rest

    with pytest.raises(ClientError) as e:
        lattice.list_service_network_service_associations()
    assert error_code(e) == "ValidationException" and e.value.response["reason"] == "other"
    with pytest.raises(ClientError) as e:
        unchecked.list_service_network_service_associations(serviceIdentifier="svc-bad")
    assert error_code(e) == "ValidationException" and fields(e) == ["serviceIdentifier"]
    with pytest.raises(ClientError) as e:
        unchecked.list_service_network_service_associations(serviceNetworkIdentifier=sn1["id"], maxResults=0)
    assert error_code(e) == "ValidationException"

    # A service in a network cannot be deleted.
    with pytest.raises(ClientError) as e:
        lattice.delete_service(serviceIdentifier=s1["id"])
    assert error_code(e) == "ConflictException"
    for n in (sn1, sn2):
        delete_service_network(lattice, n["id"])
    for s in (s1, s2):
        lattice.delete_service(serviceIdentifier=s["id"])


def test_service_association_idempotency(lattice, sn, svc):
    tok = unique("tok")
    a = lattice.create_service_network_service_association(serviceIdentifier=svc["id"], serviceNetworkIdentifier=sn["id"],
                                                           clientToken=tok)
    b = lattice.create_service_network_service_association(serviceIdentifier=svc["id"], serviceNetworkIdentifier=sn["id"],
                                                           clientToken=tok)
    assert a["id"] == b["id"]
    with pytest.raises(ClientError) as e:
        lattice.create_service_network_service_association(serviceIdentifier=svc["id"], serviceNetworkIdentifier=sn["id"],
                                                           clientToken=tok, tags={"x": "y"})
    assert error_code(e) == "ConflictException"


def test_service_association_quota_of_500(lattice, sn):
    services = []
    with ThreadPoolExecutor(8) as pool:
        services = list(pool.map(lambda _: lattice.create_service(name=unique("sq"))["id"], range(501)))
        list(pool.map(lambda s: lattice.create_service_network_service_association(
            serviceIdentifier=s, serviceNetworkIdentifier=sn["id"]), services[:500]))
    assert lattice.get_service_network(serviceNetworkIdentifier=sn["id"])["numberOfAssociatedServices"] == 500
    with pytest.raises(ClientError) as e:
        lattice.create_service_network_service_association(serviceIdentifier=services[500], serviceNetworkIdentifier=sn["id"])
    assert error_code(e) == "ServiceQuotaExceededException" and status(e.value.response) == 402
    assert e.value.response["resourceId"] == sn["id"]
    delete_service_network(lattice, sn["id"])
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda s: lattice.delete_service(serviceIdentifier=s), services))


# ---------------------------------------------------------------------------------------------
# Service network ↔ VPC
# ---------------------------------------------------------------------------------------------

def test_vpc_association_lifecycle(lattice, sn):
    vpc = vpc_id(lattice)
    groups = security_groups(lattice, vpc, 3)
    created = lattice.create_service_network_vpc_association(
        serviceNetworkIdentifier=sn["arn"], vpcIdentifier=vpc, securityGroupIds=groups[:2], tags={"k": "v"})
    assert status(created) == 200 and members(created) == SNVA_CREATE
    aid = created["id"]
    assert aid.startswith("snva-") and len(aid) == 22
    assert created["arn"] == f"arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:servicenetworkvpcassociation/{aid}"
    assert created["status"] == "ACTIVE" and created["createdBy"] == ACCOUNT
    assert created["securityGroupIds"] == groups[:2]
    assert created["privateDnsEnabled"] is True
    assert created["dnsOptions"] == {"privateDnsPreference": "VERIFIED_DOMAINS_ONLY"}

    got = lattice.get_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=created["arn"])
    assert members(got) == SNVA_GET and got["vpcId"] == vpc
    assert (got["serviceNetworkId"], got["serviceNetworkName"], got["serviceNetworkArn"]) == (sn["id"], sn["name"], sn["arn"])
    assert lattice.get_service_network(serviceNetworkIdentifier=sn["id"])["numberOfAssociatedVPCs"] == 1

    updated = lattice.update_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=aid,
                                                             securityGroupIds=groups[2:])
    assert status(updated) == 200 and members(updated) == {"id", "arn", "status", "createdBy", "securityGroupIds"}
    assert updated["securityGroupIds"] == groups[2:]
    after = lattice.get_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=aid)
    assert after["securityGroupIds"] == groups[2:] and after["lastUpdatedAt"] > after["createdAt"]

    with pytest.raises(ClientError) as e:
        lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])
    assert error_code(e) == "ConflictException"

    deleted = lattice.delete_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=aid)
    assert status(deleted) == 200 and members(deleted) == {"id", "status", "arn"}
    assert deleted["status"] == "DELETE_IN_PROGRESS"
    with pytest.raises(ClientError) as e:
        lattice.get_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=aid)
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["resourceType"] == "SERVICE_NETWORK_VPC_ASSOCIATION"
    for call in (lambda: lattice.update_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=aid,
                                                                        securityGroupIds=["sg-0123abcd"]),
                 lambda: lattice.delete_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=aid)):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "ResourceNotFoundException"
    # The VPC is free to join again.
    again = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc)
    assert again["securityGroupIds"] == []


def test_vpc_dns_options(lattice, sn):
    off = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc_id(lattice),
                                                         privateDnsEnabled=False)
    assert off["privateDnsEnabled"] is False and "dnsOptions" not in off
    opts = {"privateDnsPreference": "SPECIFIED_DOMAINS_ONLY", "privateDnsSpecifiedDomains": ["*.example.com", "api.corp"]}
    on = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc_id(lattice),
                                                        privateDnsEnabled=True, dnsOptions=opts)
    assert on["dnsOptions"] == opts
    assert lattice.get_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=on["id"])["dnsOptions"] == opts
    summary = [i for i in lattice.list_service_network_vpc_associations(serviceNetworkIdentifier=sn["id"])["items"]
               if i["id"] == on["id"]][0]
    assert set(summary) == SNVA_SUMMARY and summary["dnsOptions"] == opts


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({"vpcIdentifier": None}, ["vpcIdentifier"]),
        ({"vpcIdentifier": "vpc-123"}, ["vpcIdentifier"]),
        ({"vpcIdentifier": "vpc-0123ABCD"}, ["vpcIdentifier"]),
        ({"vpcIdentifier": "vpc-0123456789abcdef"}, ["vpcIdentifier"]),
        ({"serviceNetworkIdentifier": None}, ["serviceNetworkIdentifier"]),
        ({"serviceNetworkIdentifier": "sn-1"}, ["serviceNetworkIdentifier"]),
        ({"securityGroupIds": [f"sg-0000000{i}" for i in range(6)]}, ["securityGroupIds"]),
        ({"securityGroupIds": ["sg-1"]}, ["securityGroupIds[0]"]),
        ({"securityGroupIds": ["sg-0123abcd", "sg-0123abcd"]}, ["securityGroupIds[1]"]),
        ({"dnsOptions": {"privateDnsPreference": "SOMETIMES"}}, ["dnsOptions.privateDnsPreference"]),
        ({"privateDnsEnabled": False, "dnsOptions": {"privateDnsPreference": "ALL_DOMAINS"}}, ["dnsOptions"]),
        ({"dnsOptions": {"privateDnsPreference": "ALL_DOMAINS", "privateDnsSpecifiedDomains": ["a.com"]}},
         ["dnsOptions.privateDnsSpecifiedDomains"]),
        ({"dnsOptions": {"privateDnsPreference": "SPECIFIED_DOMAINS_ONLY"}}, ["dnsOptions.privateDnsSpecifiedDomains"]),
        ({"dnsOptions": {"privateDnsPreference": "VERIFIED_DOMAINS_AND_SPECIFIED_DOMAINS",
                         "privateDnsSpecifiedDomains": ["a.com"] * 11}}, ["dnsOptions.privateDnsSpecifiedDomains"]),
        ({"dnsOptions": {"privateDnsPreference": "SPECIFIED_DOMAINS_ONLY", "privateDnsSpecifiedDomains": ["x" * 256]}},
         ["dnsOptions.privateDnsSpecifiedDomains[0]"]),
        ({"tags": {"aws:k": "v"}}, ["tags.aws:k"]),
    ],
)
def test_vpc_association_validation(unchecked, kwargs, expected):
    body = {"serviceNetworkIdentifier": "sn-00000000000000000", "vpcIdentifier": "vpc-0123abcd"}
    body.update(kwargs)
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(ClientError) as e:
        unchecked.create_service_network_vpc_association(**body)
    assert error_code(e) == "ValidationException" and fields(e) == expected


def test_one_service_network_per_vpc(lattice, sn):
    vpc = vpc_id(lattice)
    first = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc)
    other = lattice.create_service_network(name=unique("onevpc"))
    for target in (sn["id"], other["id"]):
        with pytest.raises(ClientError) as e:
            lattice.create_service_network_vpc_association(serviceNetworkIdentifier=target, vpcIdentifier=vpc)
        assert error_code(e) == "ConflictException" and e.value.response["resourceId"] == first["id"]
    with pytest.raises(ClientError) as e:
        lattice.create_service_network_vpc_association(serviceNetworkIdentifier="sn-00000000000000000", vpcIdentifier=vpc_id(None))
    assert error_code(e) == "ResourceNotFoundException" and e.value.response["resourceType"] == "SERVICE_NETWORK"
    lattice.delete_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=first["id"])
    moved = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=other["id"], vpcIdentifier=vpc)
    assert moved["status"] == "ACTIVE"
    delete_service_network(lattice, other["id"])


def test_vpc_update_validation(lattice, unchecked, sn):
    vpc = vpc_id(lattice)
    g = security_groups(lattice, vpc, 6)
    elsewhere = security_groups(lattice, vpc_id(lattice), 1)[0]
    a = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc,
                                                       securityGroupIds=[g[0]])
    for kwargs, expected in [
        ({}, ["securityGroupIds"]),
        ({"securityGroupIds": []}, ["securityGroupIds"]),  # cannot go back to zero
        ({"securityGroupIds": [f"sg-1111111{i}" for i in range(6)]}, ["securityGroupIds"]),
        ({"securityGroupIds": [g[0], "nope"]}, ["securityGroupIds[1]"]),
        # Groups must exist, in the association's VPC.
        ({"securityGroupIds": [g[0], "sg-0123abcd"]}, ["securityGroupIds[1]"]),
        ({"securityGroupIds": [elsewhere]}, ["securityGroupIds[0]"]),
    ]:
        with pytest.raises(ClientError) as e:
            unchecked.update_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=a["id"], **kwargs)
        assert error_code(e) == "ValidationException" and fields(e) == expected
    assert lattice.get_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=a["id"])[
        "securityGroupIds"] == [g[0]]
    five = g[1:]
    assert lattice.update_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=a["arn"],
                                                          securityGroupIds=five)["securityGroupIds"] == five
    with pytest.raises(ClientError) as e:
        unchecked.get_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier="snva-bad")
    assert error_code(e) == "ValidationException"


def test_vpc_association_list_filters(lattice, unchecked):
    sn1 = lattice.create_service_network(name=unique("vl"))
    sn2 = lattice.create_service_network(name=unique("vl"))
    vpcs = [vpc_id(lattice) for _ in range(3)]
    a = [lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn1["id"], vpcIdentifier=v)["id"]
         for v in vpcs[:2]]
    b = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn2["id"], vpcIdentifier=vpcs[2])["id"]

    def ids(**kw):
        return [i["id"] for p in lattice.get_paginator("list_service_network_vpc_associations").paginate(
            PaginationConfig={"PageSize": 1}, **kw) for i in p["items"]]

    assert ids(serviceNetworkIdentifier=sn1["arn"]) == a
    assert ids(vpcIdentifier=vpcs[2]) == [b]
    assert ids(serviceNetworkIdentifier=sn1["id"], vpcIdentifier=vpcs[1]) == [a[1]]
    assert ids(serviceNetworkIdentifier=sn2["id"], vpcIdentifier=vpcs[1]) == []
    assert ids(vpcIdentifier=vpc_id(None)) == []
    with pytest.raises(ClientError) as e:
        lattice.list_service_network_vpc_associations()
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        unchecked.list_service_network_vpc_associations(vpcIdentifier="vpc-XYZ")
    assert error_code(e) == "ValidationException" and fields(e) == ["vpcIdentifier"]
    for n in (sn1, sn2):
        delete_service_network(lattice, n["id"])


def test_vpc_association_idempotency(lattice, sn):
    tok, vpc = unique("tok"), vpc_id(lattice)
    a = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc, clientToken=tok)
    b = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc, clientToken=tok)
    assert a["id"] == b["id"]
    with pytest.raises(ClientError) as e:
        lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc_id(lattice),
                                                       clientToken=tok)
    assert error_code(e) == "ConflictException"


def test_vpc_association_quota_of_500(lattice, sn):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: lattice.create_service_network_vpc_association(
            serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc_id(lattice)), range(500)))
    assert lattice.get_service_network(serviceNetworkIdentifier=sn["id"])["numberOfAssociatedVPCs"] == 500
    with pytest.raises(ClientError) as e:
        lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc_id(lattice))
    assert error_code(e) == "ServiceQuotaExceededException" and status(e.value.response) == 402
    assert e.value.response["resourceType"] == "SERVICE_NETWORK_VPC_ASSOCIATION"


def test_cli_associations(server, lattice, sn, svc):
    vpc = vpc_id(lattice)
    g = security_groups(lattice, vpc, 3)
    created = server.cli("create-service-network-vpc-association", "--service-network-identifier", sn["id"],
                         "--vpc-identifier", vpc, "--security-group-ids", g[0])
    assert created["status"] == "ACTIVE" and created["securityGroupIds"] == [g[0]]
    listed = server.cli("list-service-network-vpc-associations", "--vpc-identifier", vpc)
    assert [i["id"] for i in listed["items"]] == [created["id"]]
    updated = server.cli("update-service-network-vpc-association", "--service-network-vpc-association-identifier",
                         created["id"], "--security-group-ids", g[1], g[2])
    assert updated["securityGroupIds"] == [g[1], g[2]]
    snsa = server.cli("create-service-network-service-association", "--service-identifier", svc["id"],
                      "--service-network-identifier", sn["arn"])
    assert snsa["dnsEntry"] == svc["dnsEntry"]
    got = server.cli("get-service-network-service-association", "--service-network-service-association-identifier",
                     snsa["arn"])
    assert got["serviceName"] == svc["name"]
    assert server.cli("delete-service-network-service-association",
                      "--service-network-service-association-identifier", snsa["id"])["status"] == "DELETE_IN_PROGRESS"
    assert server.cli("delete-service-network-vpc-association",
                      "--service-network-vpc-association-identifier", created["id"])["status"] == "DELETE_IN_PROGRESS"


def test_associations_survive_restart(server, lattice):
    sn = lattice.create_service_network(name=unique("keep"))
    svc = lattice.create_service(name=unique("keep"))
    snsa = lattice.create_service_network_service_association(serviceIdentifier=svc["id"], serviceNetworkIdentifier=sn["id"])
    snva = lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=vpc_id(lattice))
    server.restart()
    client = server.client()
    assert client.get_service_network_service_association(
        serviceNetworkServiceAssociationIdentifier=snsa["id"])["serviceId"] == svc["id"]
    assert client.get_service_network_vpc_association(
        serviceNetworkVpcAssociationIdentifier=snva["id"])["serviceNetworkId"] == sn["id"]
    delete_service_network(client, sn["id"])
    client.delete_service(serviceIdentifier=svc["id"])
