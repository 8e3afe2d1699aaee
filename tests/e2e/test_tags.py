"""Tagging through boto3 and the AWS CLI: TagResource / UntagResource / ListTagsForResource on every
taggable resource (service networks, services, listeners, rules, target groups, associations,
access-log subscriptions), tags given at create time, merge semantics, validation, limits and
unknown ARNs."""

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, FIXED_404, REGION, delete_service_network, error_code, tags_of, unique

@pytest.fixture
def sn(lattice):
    created = lattice.create_service_network(name=unique("tag"), tags={"team": "platform", "env": "test"})
    yield created
    delete_service_network(lattice, created["id"])


def test_create_time_tags_are_listed(lattice, sn):
    assert tags_of(lattice, sn["arn"]) == {"team": "platform", "env": "test"}


def test_tag_merges_and_untag_removes_several_keys(lattice, sn):
    resp = lattice.tag_resource(resourceArn=sn["arn"], tags={"env": "prod", "owner": "alice", "cost": "42"})
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert tags_of(lattice, sn["arn"]) == {"team": "platform", "env": "prod", "owner": "alice", "cost": "42"}

    resp = lattice.untag_resource(resourceArn=sn["arn"], tagKeys=["env", "cost", "not-there"])
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert tags_of(lattice, sn["arn"]) == {"team": "platform", "owner": "alice"}

    # No keys: nothing to do.
    lattice.untag_resource(resourceArn=sn["arn"], tagKeys=[])
    assert tags_of(lattice, sn["arn"]) == {"team": "platform", "owner": "alice"}
    # An empty value and keys with the documented special characters are fine.
    lattice.tag_resource(resourceArn=sn["arn"], tags={"a b_c.d:e/f=g+h-i@j": "", "k": "v w"})
    assert tags_of(lattice, sn["arn"])["a b_c.d:e/f=g+h-i@j"] == ""


def test_tagging_does_not_touch_last_updated_at(lattice, sn):
    before = lattice.get_service_network(serviceNetworkIdentifier=sn["id"])
    lattice.tag_resource(resourceArn=sn["arn"], tags={"x": "1"})
    lattice.untag_resource(resourceArn=sn["arn"], tagKeys=["team"])
    after = lattice.get_service_network(serviceNetworkIdentifier=sn["id"])
    assert after["lastUpdatedAt"] == before["lastUpdatedAt"]
    assert after["authType"] == before["authType"] and after["name"] == before["name"]


def test_cli_tag_untag_list(server, sn):
    server.cli("tag-resource", "--resource-arn", sn["arn"], "--tags", "stage=beta,tier=gold")
    assert server.cli("list-tags-for-resource", "--resource-arn", sn["arn"])["tags"] == {
        "team": "platform", "env": "test", "stage": "beta", "tier": "gold",
    }
    server.cli("untag-resource", "--resource-arn", sn["arn"], "--tag-keys", "stage", "team")
    assert server.cli("list-tags-for-resource", "--resource-arn", sn["arn"])["tags"] == {"env": "test", "tier": "gold"}
    failed = server.cli("list-tags-for-resource", "--resource-arn", sn["arn"][:-3] + "fff", check=False)
    assert failed.returncode != 0 and "ResourceNotFoundException" in failed.stderr


def test_unknown_arns_are_not_found(lattice):
    base = f"arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:"
    cases = [
        (base + "servicenetwork/sn-00000000000000000", "SERVICE_NETWORK"),
        (base + "service/svc-00000000000000000", "SERVICE"),
        (base + "service/svc-00000000000000000/listener/listener-00000000000000000", "LISTENER"),
        (base + "targetgroup/tg-00000000000000000", "TARGET_GROUP"),
        (f"arn:aws:vpc-lattice:eu-west-1:{ACCOUNT}:servicenetwork/sn-00000000000000000", "SERVICE_NETWORK"),
        (base + "resourceconfiguration/rcfg-00000000000000000", "RESOURCE_CONFIGURATION"),
    ]
    for arn, resource_type in cases:
        for call, kw in ((lattice.list_tags_for_resource, {}),
                         (lattice.tag_resource, {"tags": {"a": "b"}}),
                         (lattice.untag_resource, {"tagKeys": ["a"]})):
            with pytest.raises(ClientError) as e:
                call(resourceArn=arn, **kw)
            assert error_code(e) == "ResourceNotFoundException", (arn, call)
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
            assert e.value.response["resourceId"] == arn
            assert e.value.response["resourceType"] == resource_type


def test_deleted_resource_has_no_tags(lattice):
    created = lattice.create_service_network(name=unique("gone"), tags={"a": "1"})
    lattice.delete_service_network(serviceNetworkIdentifier=created["id"])
    with pytest.raises(ClientError) as e:
        lattice.list_tags_for_resource(resourceArn=created["arn"])
    assert error_code(e) == "ResourceNotFoundException"


@pytest.mark.parametrize(
    "arn",
    [
        "sn-0123456789abcdef0",
        "arn:aws:s3:::bucket",
        "arn:aws:vpc-lattice:us-west-2:1234:servicenetwork/sn-0123456789abcdef0",
        "arn:aws:vpc-lattice:us-west-2:111122223333:/servicenetwork",
        "arn:aws:vpc-lattice:us-west-2:111122223333:" + "x" * 1200,
    ],
    ids=["bare-id", "other-service", "short-account", "leading-slash", "too-long"],
)
def test_malformed_arns_are_validation_errors(lattice, arn):
    with pytest.raises(ClientError) as e:
        lattice.list_tags_for_resource(resourceArn=arn)
    assert error_code(e) == "ValidationException"
    assert [f["name"] for f in e.value.response["fieldList"]] == ["resourceArn"]


@pytest.mark.parametrize(
    "tags,field",
    [
        ({"aws:reserved": "x"}, "tags.aws:reserved"),
        ({"AWS:Reserved": "x"}, "tags.AWS:Reserved"),
        ({"k" * 129: "x"}, "tags." + "k" * 129),
        ({"long": "v" * 257}, "tags.long"),
    ],
    ids=["aws-prefix", "aws-prefix-upper", "long-key", "long-value"],
)
def test_bad_tags_are_validation_errors(lattice, sn, tags, field):
    with pytest.raises(ClientError) as e:
        lattice.tag_resource(resourceArn=sn["arn"], tags=tags)
    assert error_code(e) == "ValidationException"
    assert [f["name"] for f in e.value.response["fieldList"]] == [field]
    assert tags_of(lattice, sn["arn"]) == {"team": "platform", "env": "test"}


def test_bad_untag_keys_are_validation_errors(lattice, sn):
    with pytest.raises(ClientError) as e:
        lattice.untag_resource(resourceArn=sn["arn"], tagKeys=["k" * 129])
    assert error_code(e) == "ValidationException"
    assert [f["name"] for f in e.value.response["fieldList"]] == ["tagKeys"]
    with pytest.raises(ClientError) as e:
        lattice.untag_resource(resourceArn=sn["arn"], tagKeys=[f"k{i}" for i in range(201)])
    assert error_code(e) == "ValidationException"
    assert tags_of(lattice, sn["arn"]) == {"team": "platform", "env": "test"}


def test_at_most_50_tags_per_resource(lattice, sn):
    lattice.tag_resource(resourceArn=sn["arn"], tags={f"k{i}": "v" for i in range(48)})
    assert len(tags_of(lattice, sn["arn"])) == 50
    with pytest.raises(ClientError) as e:
        lattice.tag_resource(resourceArn=sn["arn"], tags={"one-too-many": "v"})
    assert error_code(e) == "ValidationException"
    assert [f["name"] for f in e.value.response["fieldList"]] == ["tags"]
    assert "50" in e.value.response["Error"]["Message"]
    # Overwriting existing keys at the limit is fine.
    lattice.tag_resource(resourceArn=sn["arn"], tags={"k0": "changed", "team": "infra"})
    tags = tags_of(lattice, sn["arn"])
    assert len(tags) == 50 and tags["k0"] == "changed" and tags["team"] == "infra"
    # More than the model's 200 in one request is a validation error on the map itself.
    with pytest.raises(ClientError) as e:
        lattice.tag_resource(resourceArn=sn["arn"], tags={f"n{i}": "v" for i in range(201)})
    assert error_code(e) == "ValidationException"


def check_tagging(lattice, arn, create_tags):
    """The common tagging round trip on one resource: create-time tags, merge, untag."""
    assert tags_of(lattice, arn) == create_tags, arn
    lattice.tag_resource(resourceArn=arn, tags={"extra": "1", "more": "2"})
    assert tags_of(lattice, arn) == {**create_tags, "extra": "1", "more": "2"}, arn
    lattice.untag_resource(resourceArn=arn, tagKeys=[*create_tags, "more"])
    assert tags_of(lattice, arn) == {"extra": "1"}, arn


def assert_gone(lattice, arn):
    with pytest.raises(ClientError) as e:
        lattice.list_tags_for_resource(resourceArn=arn)
    assert error_code(e) == "ResourceNotFoundException", arn


def test_tags_on_a_service(lattice):
    svc = lattice.create_service(name=unique("tsvc"), tags={"kind": "service"})
    check_tagging(lattice, svc["arn"], {"kind": "service"})
    # Service tags are not service-network tags.
    other = lattice.create_service_network(name=unique("tsn"))
    assert tags_of(lattice, other["arn"]) == {}
    lattice.delete_service_network(serviceNetworkIdentifier=other["id"])
    lattice.delete_service(serviceIdentifier=svc["id"])
    assert_gone(lattice, svc["arn"])


def test_tags_on_a_listener_and_rule(lattice):
    svc = lattice.create_service(name=unique("tsvc"))
    try:
        listener = lattice.create_listener(
            serviceIdentifier=svc["id"], name=unique("tl"), protocol="HTTP", port=80,
            defaultAction=FIXED_404, tags={"kind": "listener"},
        )
        rule = lattice.create_rule(
            serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], name=unique("tr"),
            priority=10, match={"httpMatch": {"pathMatch": {"match": {"prefix": "/api"}}}}, action=FIXED_404,
            tags={"kind": "rule"},
        )
        check_tagging(lattice, listener["arn"], {"kind": "listener"})
        check_tagging(lattice, rule["arn"], {"kind": "rule"})
        # Each resource has its own tags.
        lattice.tag_resource(resourceArn=rule["arn"], tags={"only": "rule"})
        assert "only" not in tags_of(lattice, listener["arn"])
        assert tags_of(lattice, svc["arn"]) == {}
        lattice.delete_rule(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], ruleIdentifier=rule["id"])
        assert_gone(lattice, rule["arn"])
        lattice.delete_listener(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"])
        assert_gone(lattice, listener["arn"])
    finally:
        lattice.delete_service(serviceIdentifier=svc["id"])


def test_tags_on_a_target_group(lattice):
    tg = lattice.create_target_group(name=unique("ttg"), type="LAMBDA", tags={"kind": "tg"})
    check_tagging(lattice, tg["arn"], {"kind": "tg"})
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])
    assert_gone(lattice, tg["arn"])


def test_tags_on_associations_and_access_log_subscriptions(lattice, sn):
    svc = lattice.create_service(name=unique("tsvc"))
    try:
        snsa = lattice.create_service_network_service_association(
            serviceNetworkIdentifier=sn["id"], serviceIdentifier=svc["id"], tags={"kind": "snsa"},
        )
        check_tagging(lattice, snsa["arn"], {"kind": "snsa"})
        als = lattice.create_access_log_subscription(
            resourceIdentifier=sn["id"],
            destinationArn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/trellis/tags", tags={"kind": "als"},
        )
        check_tagging(lattice, als["arn"], {"kind": "als"})
        lattice.delete_access_log_subscription(accessLogSubscriptionIdentifier=als["id"])
        lattice.delete_service_network_service_association(serviceNetworkServiceAssociationIdentifier=snsa["id"])
        assert_gone(lattice, snsa["arn"])
        assert_gone(lattice, als["arn"])
    finally:
        lattice.delete_service(serviceIdentifier=svc["id"])


def test_tags_survive_restart(server, lattice):
    created = lattice.create_service_network(name=unique("keep"))
    lattice.tag_resource(resourceArn=created["arn"], tags={"durable": "yes"})
    server.restart()
    client = server.client()
    assert tags_of(client, created["arn"]) == {"durable": "yes"}
    client.delete_service_network(serviceNetworkIdentifier=created["id"])
