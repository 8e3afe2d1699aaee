"""Access-log subscriptions through boto3 and the AWS CLI: create/get/list/update/delete shapes and
status codes on service networks and services, destination rules (log group, S3 bucket or
Firehose stream; one subscription per destination type per resource), serviceNetworkLogType,
validation, not-found, idempotency, pagination, and the cascades that remove subscriptions with
their service network or service. Delivery is test_access_log_delivery.py's."""

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, error_code, fields, members, status, unique

LOG_GROUP = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/vpclattice/trellis"
BUCKET = "arn:aws:s3:::trellis-access-logs"
STREAM = f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/trellis-logs"
CREATE_MEMBERS = {"id", "arn", "resourceId", "resourceArn", "destinationArn"}
GET_MEMBERS = CREATE_MEMBERS | {"createdAt", "lastUpdatedAt"}


def test_service_network_subscription_lifecycle(lattice, sn):
    created = lattice.create_access_log_subscription(resourceIdentifier=sn["arn"], destinationArn=LOG_GROUP,
                                                     tags={"k": "v"})
    assert status(created) == 201
    assert members(created) == CREATE_MEMBERS | {"serviceNetworkLogType"}
    aid = created["id"]
    assert aid.startswith("als-") and len(aid) == 21
    assert created["arn"] == f"arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:accesslogsubscription/{aid}"
    assert (created["resourceId"], created["resourceArn"]) == (sn["id"], sn["arn"])
    assert created["destinationArn"] == LOG_GROUP and created["serviceNetworkLogType"] == "SERVICE"

    for ident in (aid, created["arn"]):
        got = lattice.get_access_log_subscription(accessLogSubscriptionIdentifier=ident)
        assert members(got) == GET_MEMBERS | {"serviceNetworkLogType"}
        assert got["createdAt"] == got["lastUpdatedAt"]
    assert lattice.list_tags_for_resource(resourceArn=created["arn"])["tags"] == {"k": "v"}

    updated = lattice.update_access_log_subscription(accessLogSubscriptionIdentifier=aid, destinationArn=BUCKET)
    assert status(updated) == 200 and members(updated) == CREATE_MEMBERS
    assert updated["destinationArn"] == BUCKET
    got = lattice.get_access_log_subscription(accessLogSubscriptionIdentifier=aid)
    assert got["destinationArn"] == BUCKET and got["lastUpdatedAt"] > got["createdAt"]

    deleted = lattice.delete_access_log_subscription(accessLogSubscriptionIdentifier=created["arn"])
    assert status(deleted) == 204 and members(deleted) == set()
    for call in (lambda: lattice.get_access_log_subscription(accessLogSubscriptionIdentifier=aid),
                 lambda: lattice.update_access_log_subscription(accessLogSubscriptionIdentifier=aid, destinationArn=BUCKET),
                 lambda: lattice.delete_access_log_subscription(accessLogSubscriptionIdentifier=aid)):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "ResourceNotFoundException" and status(e.value.response) == 404
        assert e.value.response["resourceType"] == "ACCESS_LOG_SUBSCRIPTION"


def test_service_subscription_has_no_log_type(lattice, unchecked, svc):
    created = lattice.create_access_log_subscription(resourceIdentifier=svc["id"], destinationArn=STREAM)
    assert members(created) == CREATE_MEMBERS
    assert (created["resourceId"], created["resourceArn"]) == (svc["id"], svc["arn"])
    assert "serviceNetworkLogType" not in lattice.get_access_log_subscription(accessLogSubscriptionIdentifier=created["id"])
    with pytest.raises(ClientError) as e:
        unchecked.create_access_log_subscription(resourceIdentifier=svc["id"], destinationArn=BUCKET,
                                                 serviceNetworkLogType="SERVICE")
    assert error_code(e) == "ValidationException" and fields(e) == ["serviceNetworkLogType"]


def test_one_subscription_per_destination_type(lattice, sn, svc):
    first = lattice.create_access_log_subscription(resourceIdentifier=sn["id"], destinationArn=BUCKET)
    with pytest.raises(ClientError) as e:
        lattice.create_access_log_subscription(resourceIdentifier=sn["id"], destinationArn="arn:aws:s3:::another-bucket")
    assert error_code(e) == "ConflictException" and e.value.response["resourceId"] == first["id"]
    # Other destination types, the other log type, and other resources are independent.
    logs = lattice.create_access_log_subscription(resourceIdentifier=sn["id"], destinationArn=LOG_GROUP)
    stream = lattice.create_access_log_subscription(resourceIdentifier=sn["id"], destinationArn=STREAM)
    resource_logs = lattice.create_access_log_subscription(resourceIdentifier=sn["id"], destinationArn=BUCKET,
                                                           serviceNetworkLogType="RESOURCE")
    assert resource_logs["serviceNetworkLogType"] == "RESOURCE"
    on_service = lattice.create_access_log_subscription(resourceIdentifier=svc["id"], destinationArn=BUCKET)
    # Update may not move a subscription onto a type the resource already uses …
    with pytest.raises(ClientError) as e:
        lattice.update_access_log_subscription(accessLogSubscriptionIdentifier=logs["id"], destinationArn=BUCKET)
    assert error_code(e) == "ConflictException" and e.value.response["resourceId"] == first["id"]
    # … but may change the destination within its own type.
    moved = lattice.update_access_log_subscription(accessLogSubscriptionIdentifier=first["id"],
                                                   destinationArn="arn:aws:s3:::another-bucket/prefix")
    assert moved["destinationArn"] == "arn:aws:s3:::another-bucket/prefix"
    listed = [i["id"] for i in lattice.list_access_log_subscriptions(resourceIdentifier=sn["arn"])["items"]]
    assert listed == [first["id"], logs["id"], stream["id"], resource_logs["id"]]
    assert [i["id"] for i in lattice.list_access_log_subscriptions(resourceIdentifier=svc["id"])["items"]] == [on_service["id"]]
    for sub in (first, logs, stream, resource_logs, on_service):
        lattice.delete_access_log_subscription(accessLogSubscriptionIdentifier=sub["id"])


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({}, ["resourceIdentifier", "destinationArn"]),
        ({"resourceIdentifier": "sn-short"}, ["resourceIdentifier"]),
        ({"resourceIdentifier": "tg-0123456789abcdef0"}, ["resourceIdentifier"]),
        ({"resourceIdentifier": "sn-0123456789abcdef0" + "x" * 190}, ["resourceIdentifier"]),
        ({"destinationArn": "arn:aws:s3:::b"}, ["destinationArn"]),
        ({"destinationArn": "arn:aws:s3:::" + "b" * 2040}, ["destinationArn"]),
        ({"destinationArn": "s3://trellis-access-logs"}, ["destinationArn"]),
        ({"destinationArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:queue-name"}, ["destinationArn"]),
        ({"destinationArn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-stream:x"}, ["destinationArn"]),
        ({"serviceNetworkLogType": "ALL"}, ["serviceNetworkLogType"]),
        ({"tags": {"aws:k": "v"}}, ["tags.aws:k"]),
    ],
)
def test_create_validation(unchecked, kwargs, expected):
    body = {"resourceIdentifier": "sn-00000000000000000", "destinationArn": BUCKET} if kwargs else {}
    body.update(kwargs)
    with pytest.raises(ClientError) as e:
        unchecked.create_access_log_subscription(**body)
    assert error_code(e) == "ValidationException" and fields(e) == expected


def test_unknown_and_unsupported_resources(lattice, unchecked):
    for ident, rtype in [("sn-00000000000000000", "SERVICE_NETWORK"), ("svc-00000000000000000", "SERVICE"),
                         (f"arn:aws:vpc-lattice:{REGION}:444455556666:service/svc-00000000000000000", "SERVICE")]:
        with pytest.raises(ClientError) as e:
            lattice.create_access_log_subscription(resourceIdentifier=ident, destinationArn=BUCKET)
        assert error_code(e) == "ResourceNotFoundException" and e.value.response["resourceType"] == rtype
        # List models no ResourceNotFoundException: an unknown resource has no subscriptions.
        assert lattice.list_access_log_subscriptions(resourceIdentifier=ident)["items"] == []
    with pytest.raises(ClientError) as e:
        lattice.create_access_log_subscription(resourceIdentifier="rcfg-0123456789abcdef0", destinationArn=BUCKET)
    assert error_code(e) == "ValidationException" and "resource configurations" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        unchecked.list_access_log_subscriptions()
    assert error_code(e) == "ValidationException" and fields(e) == ["resourceIdentifier"]
    with pytest.raises(ClientError) as e:
        unchecked.get_access_log_subscription(accessLogSubscriptionIdentifier="als-bad")
    assert error_code(e) == "ValidationException" and fields(e) == ["accessLogSubscriptionIdentifier"]


def test_update_validation(lattice, unchecked, sn):
    sub = lattice.create_access_log_subscription(resourceIdentifier=sn["id"], destinationArn=BUCKET)
    for kwargs in ({}, {"destinationArn": "arn:aws:iam::111122223333:role/logs"}, {"destinationArn": "short"}):
        with pytest.raises(ClientError) as e:
            unchecked.update_access_log_subscription(accessLogSubscriptionIdentifier=sub["id"], **kwargs)
        assert error_code(e) == "ValidationException" and fields(e) == ["destinationArn"]
    assert lattice.get_access_log_subscription(accessLogSubscriptionIdentifier=sub["id"])["destinationArn"] == BUCKET
    lattice.delete_access_log_subscription(accessLogSubscriptionIdentifier=sub["id"])


def test_idempotency(lattice, sn):
    tok = unique("tok")
    a = lattice.create_access_log_subscription(resourceIdentifier=sn["id"], destinationArn=BUCKET, clientToken=tok)
    b = lattice.create_access_log_subscription(resourceIdentifier=sn["id"], destinationArn=BUCKET, clientToken=tok)
    assert a["id"] == b["id"] and status(b) == 201
    with pytest.raises(ClientError) as e:
        lattice.create_access_log_subscription(resourceIdentifier=sn["id"], destinationArn=LOG_GROUP, clientToken=tok)
    assert error_code(e) == "ConflictException"
    lattice.delete_access_log_subscription(accessLogSubscriptionIdentifier=a["id"])


def test_pagination(lattice, unchecked, svc):
    # Three destination types × one service: three subscriptions to page through one at a time.
    subs = [lattice.create_access_log_subscription(resourceIdentifier=svc["id"], destinationArn=d)["id"]
            for d in (LOG_GROUP, BUCKET, STREAM)]
    pages = list(lattice.get_paginator("list_access_log_subscriptions").paginate(
        resourceIdentifier=svc["id"], PaginationConfig={"PageSize": 1}))
    assert [i["id"] for p in pages for i in p["items"]] == subs
    assert all(len(p["items"]) == 1 for p in pages if p["items"])
    item = pages[0]["items"][0]
    assert set(item) == GET_MEMBERS
    with pytest.raises(ClientError) as e:
        unchecked.list_access_log_subscriptions(resourceIdentifier=svc["id"], maxResults=101)
    assert error_code(e) == "ValidationException"


def test_deleting_the_resource_removes_its_subscriptions(lattice):
    sn = lattice.create_service_network(name=unique("alsc"))
    svc = lattice.create_service(name=unique("alsc"))
    subs = [lattice.create_access_log_subscription(resourceIdentifier=r, destinationArn=LOG_GROUP)["id"]
            for r in (sn["id"], svc["id"])]
    lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])
    with pytest.raises(ClientError) as e:
        lattice.get_access_log_subscription(accessLogSubscriptionIdentifier=subs[0])
    assert error_code(e) == "ResourceNotFoundException"
    assert lattice.get_access_log_subscription(accessLogSubscriptionIdentifier=subs[1])["resourceId"] == svc["id"]
    lattice.delete_service(serviceIdentifier=svc["id"])
    with pytest.raises(ClientError) as e:
        lattice.get_access_log_subscription(accessLogSubscriptionIdentifier=subs[1])
    assert error_code(e) == "ResourceNotFoundException"
    # A new resource with the same name starts with none.
    fresh = lattice.create_service(name=svc["name"])
    assert lattice.list_access_log_subscriptions(resourceIdentifier=fresh["id"])["items"] == []
    lattice.delete_service(serviceIdentifier=fresh["id"])


def test_cli_access_logs(server, sn):
    created = server.cli("create-access-log-subscription", "--resource-identifier", sn["id"],
                         "--destination-arn", STREAM, "--service-network-log-type", "RESOURCE")
    assert created["serviceNetworkLogType"] == "RESOURCE" and created["destinationArn"] == STREAM
    listed = server.cli("list-access-log-subscriptions", "--resource-identifier", sn["arn"])
    assert [i["id"] for i in listed["items"]] == [created["id"]]
    updated = server.cli("update-access-log-subscription", "--access-log-subscription-identifier", created["id"],
                         "--destination-arn", f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/other")
    assert updated["destinationArn"].endswith("/other")
    bad = server.cli("create-access-log-subscription", "--resource-identifier", sn["id"],
                     "--destination-arn", "arn:aws:sns:us-west-2:111122223333:topic", check=False)
    assert bad.returncode != 0 and "ValidationException" in bad.stderr
    assert server.cli("delete-access-log-subscription", "--access-log-subscription-identifier", created["arn"]) == {}
