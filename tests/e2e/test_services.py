"""Services through boto3 and the AWS CLI: create/get/list/update/delete shapes and status codes,
the generated DNS entry, validation (fieldList names), conflicts, idempotency, pagination, the
2,000-service quota, DeleteService's association precondition and its cascade (access-log
subscriptions, policies, listeners and rules), and persistence across a restart."""

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, error_code, fields, list_by_hand, members, signed, status, stored_count, unique, vpc_of

PARTITION_LABEL = hashlib.sha256(ACCOUNT.encode()).hexdigest()[:7]
CERT = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0a1b2c3d-1111-2222-3333-444455556666"
CREATE_MEMBERS = {"id", "arn", "name", "status", "authType", "dnsEntry"}
GET_MEMBERS = CREATE_MEMBERS | {"createdAt", "lastUpdatedAt"}
SUMMARY_MEMBERS = {"id", "name", "arn", "createdAt", "lastUpdatedAt", "dnsEntry", "status"}


def test_create_get_list_update_delete(lattice):
    name = unique("web")
    created = lattice.create_service(name=name, tags={"team": "payments"})
    assert status(created) == 201
    assert members(created) == CREATE_MEMBERS
    sid = created["id"]
    assert re.fullmatch(r"svc-[0-9a-f]{17}", sid)
    assert created["arn"] == f"arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/{sid}"
    assert created["name"] == name and created["status"] == "ACTIVE" and created["authType"] == "NONE"
    dns = created["dnsEntry"]
    assert dns["domainName"] == f"{name}-{sid[4:]}.{PARTITION_LABEL}.vpc-lattice-svcs.{REGION}.on.aws"
    assert re.fullmatch(r"Z[0-9A-Z]{20}", dns["hostedZoneId"])

    got = lattice.get_service(serviceIdentifier=created["arn"])
    assert members(got) == GET_MEMBERS  # no failureCode/failureMessage, no custom domain
    assert got["dnsEntry"] == dns and got["createdAt"] == got["lastUpdatedAt"]

    listed = [i for i in lattice.list_services()["items"] if i["id"] == sid]
    assert len(listed) == 1 and set(listed[0]) == SUMMARY_MEMBERS
    assert listed[0]["dnsEntry"] == dns and listed[0]["status"] == "ACTIVE"

    updated = lattice.update_service(serviceIdentifier=sid, authType="AWS_IAM", certificateArn=CERT)
    assert status(updated) == 200
    assert members(updated) == {"id", "arn", "name", "authType", "certificateArn"}
    assert updated["authType"] == "AWS_IAM" and updated["certificateArn"] == CERT
    got = lattice.get_service(serviceIdentifier=sid)
    assert got["authType"] == "AWS_IAM" and got["certificateArn"] == CERT
    assert got["lastUpdatedAt"] > got["createdAt"]
    assert lattice.list_tags_for_resource(resourceArn=created["arn"])["tags"] == {"team": "payments"}

    deleted = lattice.delete_service(serviceIdentifier=created["arn"])
    assert status(deleted) == 200
    assert members(deleted) == {"id", "arn", "name", "status"}
    assert deleted["status"] == "DELETE_IN_PROGRESS" and deleted["id"] == sid and deleted["name"] == name
    with pytest.raises(ClientError) as e:
        lattice.get_service(serviceIdentifier=sid)
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["resourceType"] == "SERVICE" and e.value.response["resourceId"] == sid
    assert all(i["id"] != sid for i in lattice.list_services()["items"])
    # The name is free again.
    again = lattice.create_service(name=name)
    assert again["id"] != sid
    lattice.delete_service(serviceIdentifier=again["id"])


def test_custom_domain_and_certificate(lattice, unchecked, server):
    name = unique("dom")
    created = lattice.create_service(name=name, customDomainName=f"{name}.example.com", certificateArn=CERT,
                                     authType="AWS_IAM")
    assert members(created) == CREATE_MEMBERS | {"customDomainName", "certificateArn"}
    assert created["customDomainName"] == f"{name}.example.com"
    assert created["authType"] == "AWS_IAM"
    summary = next(i for i in lattice.list_services(maxResults=100)["items"] if i["id"] == created["id"])
    assert summary["customDomainName"] == f"{name}.example.com"

    # An empty certificateArn clears the certificate; the domain stays.
    cleared = lattice.update_service(serviceIdentifier=created["id"], certificateArn="")
    assert "certificateArn" not in cleared and cleared["customDomainName"] == f"{name}.example.com"
    assert "certificateArn" not in lattice.get_service(serviceIdentifier=created["id"])

    # The custom domain cannot change: UpdateService has no such member, a raw request is refused.
    code, _, body = signed(server, "PATCH", f"/services/{created['id']}",
                           json.dumps({"customDomainName": "other.example.com"}).encode())
    body = json.loads(body or b"{}")
    assert code == 400 and [f["name"] for f in body["fieldList"]] == ["customDomainName"]
    assert lattice.get_service(serviceIdentifier=created["id"])["customDomainName"] == f"{name}.example.com"
    # Repeating the same domain is harmless.
    code, _, body = signed(server, "PATCH", f"/services/{created['id']}",
                           json.dumps({"customDomainName": f"{name}.example.com"}).encode())
    body = json.loads(body or b"{}")
    assert code == 200 and body["customDomainName"] == f"{name}.example.com"
    lattice.delete_service(serviceIdentifier=created["id"])


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({}, ["name"]),
        ({"name": "ab"}, ["name"]),
        ({"name": "a" * 41}, ["name"]),
        ({"name": "svc-reserved"}, ["name"]),
        ({"name": "Upper"}, ["name"]),
        ({"name": "-lead"}, ["name"]),
        ({"name": "trail-"}, ["name"]),
        ({"name": "dou--ble"}, ["name"]),
        ({"name": "okname", "customDomainName": "ab"}, ["customDomainName"]),
        ({"name": "okname", "customDomainName": "x" * 256}, ["customDomainName"]),
        ({"name": "okname", "customDomainName": "not a domain"}, ["customDomainName"]),
        ({"name": "okname", "certificateArn": "arn:aws:acm:us-west-2:111122223333:cert/x"}, ["certificateArn"]),
        ({"name": "okname", "certificateArn": CERT + "x" * 2048}, ["certificateArn"]),
        ({"name": "okname", "authType": "IAM"}, ["authType"]),
        ({"name": "okname", "tags": {"aws:reserved": "x"}}, ["tags.aws:reserved"]),
        ({"name": "x", "authType": "bad", "certificateArn": "bad"}, ["name", "certificateArn", "authType"]),
    ],
)
def test_create_validation(unchecked, kwargs, expected):
    with pytest.raises(ClientError) as e:
        unchecked.create_service(**kwargs)
    assert error_code(e) == "ValidationException"
    assert e.value.response["reason"] == "fieldValidationFailed"
    assert fields(e) == expected


def test_update_validation_and_not_found(lattice, unchecked):
    svc = lattice.create_service(name=unique("upd"))
    for kwargs, expected in [({"authType": "nope"}, ["authType"]), ({"certificateArn": "arn:x"}, ["certificateArn"])]:
        with pytest.raises(ClientError) as e:
            unchecked.update_service(serviceIdentifier=svc["id"], **kwargs)
        assert error_code(e) == "ValidationException" and fields(e) == expected
    # An empty update is a no-op that still answers with the service.
    assert lattice.update_service(serviceIdentifier=svc["id"])["authType"] == "NONE"
    missing = "svc-00000000000000000"
    for call in (lambda: lattice.get_service(serviceIdentifier=missing),
                 lambda: lattice.update_service(serviceIdentifier=missing, authType="NONE"),
                 lambda: lattice.delete_service(serviceIdentifier=missing),
                 lambda: lattice.get_service(serviceIdentifier=f"arn:aws:vpc-lattice:{REGION}:444455556666:service/{svc['id']}")):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "ResourceNotFoundException"
        assert status(e.value.response) == 404 and e.value.response["resourceType"] == "SERVICE"
    for bad in ("svc-123", "sn-0123456789abcdef0"):
        with pytest.raises(ClientError) as e:
            unchecked.get_service(serviceIdentifier=bad)
        assert error_code(e) == "ValidationException" and fields(e) == ["serviceIdentifier"]
    lattice.delete_service(serviceIdentifier=svc["id"])


def test_duplicate_name_is_conflict(lattice):
    name = unique("dup")
    first = lattice.create_service(name=name)
    with pytest.raises(ClientError) as e:
        lattice.create_service(name=name)
    assert error_code(e) == "ConflictException" and status(e.value.response) == 409
    assert e.value.response["resourceType"] == "SERVICE" and e.value.response["resourceId"] == first["id"]
    lattice.delete_service(serviceIdentifier=first["id"])


def test_client_token_idempotency(lattice):
    name = unique("idem")
    a = lattice.create_service(name=name, clientToken="tok-" + name)
    b = lattice.create_service(name=name, clientToken="tok-" + name)
    assert a["id"] == b["id"] and status(b) == 201
    assert len([i for i in lattice.list_services()["items"] if i["name"] == name]) == 1
    with pytest.raises(ClientError) as e:
        lattice.create_service(name=name, authType="AWS_IAM", clientToken="tok-" + name)
    assert error_code(e) == "ConflictException"
    lattice.delete_service(serviceIdentifier=a["id"])


def test_pagination_visits_every_service_once(lattice, unchecked):
    ids = {lattice.create_service(name=unique("pg"))["id"] for _ in range(7)}
    seen = [i["id"] for i in list_by_hand(lattice.list_services, 1000, maxResults=3)]
    assert ids <= set(seen) and len(seen) == len(set(seen))
    paginated = [i["id"] for p in lattice.get_paginator("list_services").paginate(PaginationConfig={"PageSize": 2})
                 for i in p["items"]]
    assert paginated == seen
    for bad in ({"maxResults": 0}, {"maxResults": 101}, {"nextToken": "not-a-token"}):
        with pytest.raises(ClientError) as e:
            unchecked.list_services(**bad)
        assert error_code(e) == "ValidationException"
    for i in ids:
        lattice.delete_service(serviceIdentifier=i)


def test_delete_refused_while_associated(lattice):
    svc = lattice.create_service(name=unique("assoc"))
    sn = lattice.create_service_network(name=unique("assoc"))
    a = lattice.create_service_network_service_association(serviceIdentifier=svc["id"], serviceNetworkIdentifier=sn["id"])
    with pytest.raises(ClientError) as e:
        lattice.delete_service(serviceIdentifier=svc["id"])
    assert error_code(e) == "ConflictException" and status(e.value.response) == 409
    assert sn["id"] in e.value.response["Error"]["Message"]
    assert lattice.get_service(serviceIdentifier=svc["id"])["status"] == "ACTIVE"
    lattice.delete_service_network_service_association(serviceNetworkServiceAssociationIdentifier=a["id"])
    assert lattice.delete_service(serviceIdentifier=svc["id"])["status"] == "DELETE_IN_PROGRESS"
    lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])


def test_delete_cascades_access_logs_and_policies(server, lattice):
    svc = lattice.create_service(name=unique("casc"), authType="AWS_IAM")
    logs = lattice.create_access_log_subscription(
        resourceIdentifier=svc["id"], destinationArn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/lattice/{svc['name']}")
    s3 = lattice.create_access_log_subscription(resourceIdentifier=svc["arn"], destinationArn="arn:aws:s3:::trellis-logs")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                      "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]}
    lattice.put_auth_policy(resourceIdentifier=svc["id"], policy=json.dumps(policy))
    assert stored_count(server, "access-log-subscription", parent=svc["id"]) == 2
    assert stored_count(server, "auth-policy", parent=svc["id"]) == 1
    lattice.delete_service(serviceIdentifier=svc["id"])
    for sub in (logs, s3):
        with pytest.raises(ClientError) as e:
            lattice.get_access_log_subscription(accessLogSubscriptionIdentifier=sub["id"])
        assert error_code(e) == "ResourceNotFoundException"
    assert stored_count(server, "access-log-subscription", parent=svc["id"]) == 0
    assert stored_count(server, "auth-policy", parent=svc["id"]) == 0


def test_delete_cascades_listeners_and_rules(server, lattice):
    svc = lattice.create_service(name=unique("lst"))
    fixed = {"fixedResponse": {"statusCode": 404}}
    tg = lattice.create_target_group(name=unique("lsttg"), type="IP",
                                     config={"port": 80, "protocol": "HTTP", "vpcIdentifier": vpc_of(lattice)})
    forward = {"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"]}]}}
    listeners = [lattice.create_listener(serviceIdentifier=svc["id"], name=f"http-{port}", protocol="HTTP", port=port,
                                         defaultAction=fixed) for port in (80, 8080)]
    lattice.create_rule(serviceIdentifier=svc["id"], listenerIdentifier=listeners[0]["id"], name="r-one", priority=1,
                        match={"httpMatch": {"pathMatch": {"match": {"prefix": "/a"}}}}, action=forward)
    assert stored_count(server, "listener", parent=svc["id"]) == 2
    assert sum(stored_count(server, "rule", parent=l["id"]) for l in listeners) >= 1
    # While the rule forwards to it, the target group cannot be deleted …
    with pytest.raises(ClientError) as e:
        lattice.delete_target_group(targetGroupIdentifier=tg["id"])
    assert error_code(e) == "ConflictException"
    lattice.delete_service(serviceIdentifier=svc["id"])
    assert stored_count(server, "listener", parent=svc["id"]) == 0
    assert sum(stored_count(server, "rule", parent=l["id"]) for l in listeners) == 0
    for l in listeners:
        with pytest.raises(ClientError) as e:
            lattice.get_listener(serviceIdentifier=svc["id"], listenerIdentifier=l["id"])
        assert error_code(e) == "ResourceNotFoundException"
    # … and once the service (with its rules) is gone, nothing references it any more.
    assert lattice.delete_target_group(targetGroupIdentifier=tg["id"])["status"] == "DELETE_IN_PROGRESS"


def test_cli_create_get_update_delete(server):
    name = unique("cli")
    created = server.cli("create-service", "--name", name, "--auth-type", "AWS_IAM", "--tags", "env=test")
    assert created["name"] == name and created["status"] == "ACTIVE" and created["authType"] == "AWS_IAM"
    assert created["dnsEntry"]["domainName"].startswith(f"{name}-{created['id'][4:]}.")
    got = server.cli("get-service", "--service-identifier", created["arn"])
    assert got["id"] == created["id"] and "createdAt" in got
    updated = server.cli("update-service", "--service-identifier", created["id"], "--auth-type", "NONE")
    assert updated["authType"] == "NONE"
    listed = server.cli("list-services")
    assert created["id"] in [i["id"] for i in listed["items"]]
    failed = server.cli("create-service", "--name", "svc-nope", check=False)
    assert failed.returncode != 0 and "ValidationException" in failed.stderr
    deleted = server.cli("delete-service", "--service-identifier", created["id"])
    assert deleted["status"] == "DELETE_IN_PROGRESS"


def test_state_survives_restart(server):
    client = server.client()
    svc = client.create_service(name=unique("keep"), customDomainName="keep.example.com")
    server.restart()
    client = server.client()
    got = client.get_service(serviceIdentifier=svc["id"])
    assert got["dnsEntry"] == svc["dnsEntry"] and got["customDomainName"] == "keep.example.com"
    client.delete_service(serviceIdentifier=svc["id"])


def test_quota_of_2000_services(server):
    client = server.client()
    existing = sum(len(p["items"]) for p in client.get_paginator("list_services").paginate())
    names = [unique("quota") for _ in range(2000 - existing)]
    with ThreadPoolExecutor(8) as pool:
        # boto3 clients are thread-safe; parallel calls only overlap HTTP, the store serializes.
        created = list(pool.map(lambda n: client.create_service(name=n)["id"], names))
    assert len(created) == 2000 - existing
    with pytest.raises(ClientError) as e:
        client.create_service(name=unique("over"))
    assert error_code(e) == "ServiceQuotaExceededException"
    assert status(e.value.response) == 402
    assert e.value.response["serviceCode"] == "vpc-lattice" and e.value.response["quotaCode"]
    assert e.value.response["resourceType"] == "SERVICE"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: client.delete_service(serviceIdentifier=i), created))
    assert client.create_service(name=unique("after"))["status"] == "ACTIVE"
