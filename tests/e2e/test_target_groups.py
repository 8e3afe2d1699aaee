"""Target groups and targets through boto3 and the AWS CLI: create/get/list/update/delete shapes
and status codes, per-type configuration and health-check defaults, validation (fieldList names),
name conflicts, idempotency, list filters and pagination, serviceArns, the in-use delete
conflict, Register/DeregisterTargets per-item results, ListTargets filters and statuses, and the
per-group and per-region quotas."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, VPC, Server, new_vpc, vpc_of, error_code, list_by_hand, members, status, target_group, unique

FN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:handler"
ALB = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:loadbalancer/app/internal/50dc6c495c0c9188"
DEFAULT_HC = {
    "enabled": True, "protocol": "HTTP", "protocolVersion": "HTTP1", "path": "/",
    "healthCheckIntervalSeconds": 30, "healthCheckTimeoutSeconds": 5, "healthyThresholdCount": 5,
    "unhealthyThresholdCount": 2, "matcher": {"httpCode": "200"},
}


def use(lattice, tg):
    """Makes a fresh service forward to `tg`; returns (service, listener)."""
    svc = lattice.create_service(name=unique("s"))
    listener = lattice.create_listener(serviceIdentifier=svc["id"], name="web", protocol="HTTP",
                                       defaultAction={"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"]}]}})
    return svc, listener


def targets(lattice, tg, **kw):
    return lattice.list_targets(targetGroupIdentifier=tg["id"], **kw)["items"]


def test_create_get_update_delete(lattice):
    name = unique("grp")
    created = lattice.create_target_group(name=name, type="IP", config={"protocol": "HTTP", "vpcIdentifier": vpc_of(lattice)},
                                          tags={"team": "web"})
    assert status(created) == 201
    assert members(created) == {"id", "arn", "name", "type", "config", "status"}
    tid = created["id"]
    assert tid.startswith("tg-") and len(tid) == 20
    assert created["arn"] == f"arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:targetgroup/{tid}"
    assert created["status"] == "ACTIVE" and created["type"] == "IP"
    assert created["config"] == {"port": 80, "protocol": "HTTP", "protocolVersion": "HTTP1", "ipAddressType": "IPV4",
                                 "vpcIdentifier": vpc_of(lattice), "healthCheck": DEFAULT_HC}

    got = lattice.get_target_group(targetGroupIdentifier=created["arn"])
    assert members(got) == {"id", "arn", "name", "type", "config", "status", "createdAt", "lastUpdatedAt", "serviceArns"}
    assert got["config"] == created["config"] and got["serviceArns"] == []

    updated = lattice.update_target_group(targetGroupIdentifier=tid, healthCheck={"path": "/ready", "healthyThresholdCount": 3})
    assert status(updated) == 200
    assert members(updated) == {"id", "arn", "name", "type", "config", "status"}
    assert updated["config"]["healthCheck"] == {**DEFAULT_HC, "path": "/ready", "healthyThresholdCount": 3}
    # Partial merge keeps earlier changes; 0 resets a member to its default.
    again = lattice.update_target_group(targetGroupIdentifier=tid, healthCheck={"healthyThresholdCount": 0, "enabled": False, "port": 8081})
    assert again["config"]["healthCheck"] == {**DEFAULT_HC, "path": "/ready", "enabled": False, "port": 8081}
    got = lattice.get_target_group(targetGroupIdentifier=tid)
    assert got["config"]["healthCheck"] == again["config"]["healthCheck"] and got["lastUpdatedAt"] >= got["createdAt"]

    deleted = lattice.delete_target_group(targetGroupIdentifier=tid)
    assert status(deleted) == 200
    assert members(deleted) == {"id", "arn", "status"}
    assert deleted["status"] == "DELETE_IN_PROGRESS" and deleted["id"] == tid
    with pytest.raises(ClientError) as e:
        lattice.get_target_group(targetGroupIdentifier=tid)
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["resourceType"] == "TARGET_GROUP" and e.value.response["resourceId"] == tid
    # The name is free again.
    lattice.create_target_group(name=name, type="LAMBDA")


def test_configuration_per_type(lattice):
    lam = lattice.create_target_group(name=unique("grp"), type="LAMBDA")
    assert lam["config"] == {"lambdaEventStructureVersion": "V1"}
    lam2 = lattice.create_target_group(name=unique("grp"), type="LAMBDA", config={"lambdaEventStructureVersion": "V2"})
    assert lam2["config"] == {"lambdaEventStructureVersion": "V2"}

    alb = lattice.create_target_group(name=unique("grp"), type="ALB", config={"protocol": "HTTPS", "vpcIdentifier": vpc_of(lattice)})
    assert alb["config"] == {"port": 443, "protocol": "HTTPS", "protocolVersion": "HTTP1", "vpcIdentifier": vpc_of(lattice)}

    inst = lattice.create_target_group(name=unique("grp"), type="INSTANCE",
                                       config={"protocol": "HTTPS", "port": 8443, "vpcIdentifier": vpc_of(lattice), "protocolVersion": "HTTP2"})
    assert "ipAddressType" not in inst["config"] and inst["config"]["port"] == 8443
    # Health checks are off by default for HTTP2/GRPC/TCP and check with the group's protocol.
    assert inst["config"]["healthCheck"] == {**DEFAULT_HC, "enabled": False, "protocol": "HTTPS"}
    grpc = target_group(lattice, protocolVersion="GRPC", ipAddressType="IPV6")
    assert grpc["config"]["healthCheck"]["enabled"] is False and grpc["config"]["ipAddressType"] == "IPV6"

    tcp = target_group(lattice, protocol="TCP", port=5432)
    assert "protocolVersion" not in tcp["config"]
    # ...but HTTP, the documented default, for a TCP group: TCP is no health-check protocol, and a
    # reported value must be accepted back (the Terraform provider sends it with every change).
    assert tcp["config"]["healthCheck"]["enabled"] is False and tcp["config"]["healthCheck"]["protocol"] == "HTTP"
    # Enabling checks on a TCP group needs an HTTP(S) check protocol.
    with pytest.raises(ClientError) as e:
        lattice.update_target_group(targetGroupIdentifier=tcp["id"], healthCheck={"enabled": True})
    assert error_code(e) == "ValidationException"
    assert [f["name"] for f in e.value.response["fieldList"]] == ["healthCheck.protocol"]
    on = lattice.update_target_group(targetGroupIdentifier=tcp["id"], healthCheck={"enabled": True, "protocol": "HTTP", "path": "/hc"})
    assert on["config"]["healthCheck"]["enabled"] is True and on["config"]["healthCheck"]["protocol"] == "HTTP"

    custom = target_group(lattice, healthCheck={"healthCheckIntervalSeconds": 0, "healthCheckTimeoutSeconds": 10,
                                                "matcher": {"httpCode": "200-299"}, "protocolVersion": "HTTP2"})
    assert custom["config"]["healthCheck"] == {**DEFAULT_HC, "healthCheckTimeoutSeconds": 10,
                                               "matcher": {"httpCode": "200-299"}, "protocolVersion": "HTTP2"}

    # Only IP, INSTANCE and TCP groups' health checks can be updated: LAMBDA and ALB have none.
    for tg in (lam, alb):
        with pytest.raises(ClientError) as e:
            lattice.update_target_group(targetGroupIdentifier=tg["id"], healthCheck={"enabled": True})
        assert error_code(e) == "ValidationException"


BAD_CREATES = [
    ({"name": "ab"}, ["name"]),
    ({"name": "tg-abc"}, ["name"]),
    ({"name": "x" * 129}, ["name"]),
    ({"name": None}, ["name"]),
    ({"type": "FUNCTION"}, ["type"]),
    ({"type": None}, ["type"]),
    ({"config": None}, ["config"]),
    ({"config": {"vpcIdentifier": VPC}}, ["config.protocol"]),
    ({"config": {"protocol": "HTTP"}}, ["config.vpcIdentifier"]),
    ({"config": {"protocol": "HTTP", "vpcIdentifier": "vpc-12"}}, ["config.vpcIdentifier"]),
    ({"config": {"protocol": "UDP", "vpcIdentifier": VPC}}, ["config.protocol"]),
    ({"config": {"protocol": "HTTP", "port": 0, "vpcIdentifier": VPC}}, ["config.port"]),
    ({"config": {"protocol": "TCP", "vpcIdentifier": VPC}}, ["config.port"]),
    ({"config": {"protocol": "TCP", "port": 1, "protocolVersion": "GRPC", "vpcIdentifier": VPC}}, ["config.protocolVersion"]),
    ({"config": {"protocol": "HTTP", "ipAddressType": "IPV7", "vpcIdentifier": VPC}}, ["config.ipAddressType"]),
    ({"config": {"protocol": "HTTP", "vpcIdentifier": VPC, "lambdaEventStructureVersion": "V2"}}, ["config.lambdaEventStructureVersion"]),
    ({"config": {"protocol": "HTTP", "vpcIdentifier": VPC, "healthCheck": {"healthCheckIntervalSeconds": 4}}}, ["config.healthCheck.healthCheckIntervalSeconds"]),
    ({"config": {"protocol": "HTTP", "vpcIdentifier": VPC, "healthCheck": {"healthCheckTimeoutSeconds": 121}}}, ["config.healthCheck.healthCheckTimeoutSeconds"]),
    ({"config": {"protocol": "HTTP", "vpcIdentifier": VPC, "healthCheck": {"healthyThresholdCount": 11}}}, ["config.healthCheck.healthyThresholdCount"]),
    ({"config": {"protocol": "HTTP", "vpcIdentifier": VPC, "healthCheck": {"unhealthyThresholdCount": 1}}}, ["config.healthCheck.unhealthyThresholdCount"]),
    ({"config": {"protocol": "HTTP", "vpcIdentifier": VPC, "healthCheck": {"path": "nope"}}}, ["config.healthCheck.path"]),
    ({"config": {"protocol": "HTTP", "vpcIdentifier": VPC, "healthCheck": {"port": 65536}}}, ["config.healthCheck.port"]),
    ({"config": {"protocol": "HTTP", "vpcIdentifier": VPC, "healthCheck": {"matcher": {"httpCode": "600"}}}}, ["config.healthCheck.matcher.httpCode"]),
    ({"config": {"protocol": "HTTP", "vpcIdentifier": VPC, "healthCheck": {"matcher": {}}}}, ["config.healthCheck.matcher"]),
    ({"config": {"protocol": "HTTP", "vpcIdentifier": VPC, "healthCheck": {"protocolVersion": "GRPC"}}}, ["config.healthCheck.protocolVersion"]),
    ({"type": "LAMBDA", "config": {"port": 80}}, ["config.port"]),
    ({"type": "LAMBDA", "config": {"lambdaEventStructureVersion": "V3"}}, ["config.lambdaEventStructureVersion"]),
    ({"type": "ALB", "config": {"protocol": "HTTP", "vpcIdentifier": VPC, "healthCheck": {}}}, ["config.healthCheck"]),
    ({"type": "INSTANCE", "config": {"protocol": "HTTP", "vpcIdentifier": VPC, "ipAddressType": "IPV4"}}, ["config.ipAddressType"]),
    ({"tags": {"k" * 129: "v"}}, ["tags." + "k" * 129]),
]


@pytest.mark.parametrize("override,fields", BAD_CREATES)
def test_create_validation(unchecked, override, fields):
    req = {"name": unique("grp"), "type": "IP", "config": {"protocol": "HTTP", "vpcIdentifier": VPC}, **override}
    req = {k: v for k, v in req.items() if v is not None}
    with pytest.raises(ClientError) as e:
        unchecked.create_target_group(**req)
    assert error_code(e) == "ValidationException"
    assert e.value.response["reason"] == "fieldValidationFailed"
    assert [f["name"] for f in e.value.response["fieldList"]] == fields


def test_update_validation_and_not_found(lattice, unchecked):
    tg = target_group(lattice)
    for hc, field in [({"healthCheckIntervalSeconds": 301}, "healthCheck.healthCheckIntervalSeconds"),
                      ({"protocol": "FTP"}, "healthCheck.protocol"), ({"matcher": {"httpCode": "abc"}}, "healthCheck.matcher.httpCode")]:
        with pytest.raises(ClientError) as e:
            unchecked.update_target_group(targetGroupIdentifier=tg["id"], healthCheck=hc)
        assert error_code(e) == "ValidationException"
        assert [f["name"] for f in e.value.response["fieldList"]] == [field]
    with pytest.raises(ClientError) as e:
        unchecked.update_target_group(targetGroupIdentifier=tg["id"])
    assert error_code(e) == "ValidationException"
    assert lattice.get_target_group(targetGroupIdentifier=tg["id"])["config"]["healthCheck"] == DEFAULT_HC
    with pytest.raises(ClientError) as e:
        lattice.update_target_group(targetGroupIdentifier="tg-0000000000000000a", healthCheck={"enabled": False})
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        unchecked.get_target_group(targetGroupIdentifier="tg-short")
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        lattice.delete_target_group(targetGroupIdentifier=f"arn:aws:vpc-lattice:{REGION}:999999999999:targetgroup/{tg['id']}")
    assert error_code(e) == "ResourceNotFoundException"


def test_duplicate_name_and_idempotency(lattice):
    name = unique("grp")
    first = lattice.create_target_group(name=name, type="LAMBDA")
    with pytest.raises(ClientError) as e:
        lattice.create_target_group(name=name, type="LAMBDA")
    assert error_code(e) == "ConflictException" and e.value.response["resourceId"] == first["id"]
    token = unique("tok")
    a = lattice.create_target_group(name=unique("grp") + "x", type="LAMBDA", clientToken=token)
    b = lattice.create_target_group(name=a["name"], type="LAMBDA", clientToken=token)
    assert a["id"] == b["id"] and status(b) == 201
    with pytest.raises(ClientError) as e:
        lattice.create_target_group(name=a["name"], type="LAMBDA", config={"lambdaEventStructureVersion": "V2"}, clientToken=token)
    assert error_code(e) == "ConflictException"


def test_list_filters_pagination_and_service_arns(lattice, unchecked):
    vpc = new_vpc(lattice)
    mine = [lattice.create_target_group(name=unique("grp"), type="IP", config={"protocol": "HTTP", "vpcIdentifier": vpc})["id"]
            for _ in range(3)]
    inst = lattice.create_target_group(name=unique("grp"), type="INSTANCE", config={"protocol": "HTTP", "vpcIdentifier": vpc})["id"]
    svc, _ = use(lattice, {"id": mine[0]})

    seen = list_by_hand(lattice.list_target_groups, 10, vpcIdentifier=vpc, maxResults=2)
    assert [i["id"] for i in seen] == mine + [inst]
    first = seen[0]
    assert set(first) == {"id", "arn", "name", "type", "createdAt", "lastUpdatedAt", "status", "serviceArns",
                          "port", "protocol", "ipAddressType", "vpcIdentifier"}
    assert first["serviceArns"] == [svc["arn"]] and seen[1]["serviceArns"] == []
    assert "ipAddressType" not in seen[3]

    only_instances = lattice.list_target_groups(vpcIdentifier=vpc, targetGroupType="INSTANCE")["items"]
    assert [i["id"] for i in only_instances] == [inst]
    lambdas = [i for p in lattice.get_paginator("list_target_groups").paginate(targetGroupType="LAMBDA") for i in p["items"]]
    assert lambdas and all(i["type"] == "LAMBDA" and "lambdaEventStructureVersion" in i for i in lambdas)
    for kw, field in [({"vpcIdentifier": "vpc-x"}, "vpcIdentifier"), ({"targetGroupType": "NOPE"}, "targetGroupType"),
                      ({"maxResults": 0}, "maxResults")]:
        with pytest.raises(ClientError) as e:
            unchecked.list_target_groups(**kw)
        assert error_code(e) == "ValidationException"
        assert [f["name"] for f in e.value.response["fieldList"]] == [field]


def test_delete_in_use_conflicts(lattice):
    tg = target_group(lattice)
    lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "10.0.0.1"}])
    svc, listener = use(lattice, tg)
    with pytest.raises(ClientError) as e:
        lattice.delete_target_group(targetGroupIdentifier=tg["id"])
    assert error_code(e) == "ConflictException" and e.value.response["resourceType"] == "TARGET_GROUP"
    assert svc["id"] in e.value.response["Error"]["Message"]
    # Referenced from a rule only: still in use.
    lattice.update_listener(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"],
                            defaultAction={"fixedResponse": {"statusCode": 404}})
    rule = lattice.create_rule(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], name="r1x", priority=1,
                               match={"httpMatch": {"method": "GET"}},
                               action={"forward": {"targetGroups": [{"targetGroupIdentifier": tg["arn"]}]}})
    with pytest.raises(ClientError) as e:
        lattice.delete_target_group(targetGroupIdentifier=tg["id"])
    assert error_code(e) == "ConflictException"
    lattice.delete_rule(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], ruleIdentifier=rule["id"])
    assert lattice.delete_target_group(targetGroupIdentifier=tg["arn"])["status"] == "DELETE_IN_PROGRESS"
    with pytest.raises(ClientError) as e:
        lattice.list_targets(targetGroupIdentifier=tg["id"])
    assert error_code(e) == "ResourceNotFoundException"


def test_register_and_deregister_ip_targets(lattice):
    tg = target_group(lattice)
    resp = lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[
        {"id": "10.0.0.1"}, {"id": "10.0.0.2", "port": 8080}, {"id": "fd00::1"}, {"id": "i-0123456789abcdef0"},
    ])
    assert status(resp) == 200
    assert resp["successful"] == [{"id": "10.0.0.1", "port": 80}, {"id": "10.0.0.2", "port": 8080}]
    assert [(f["id"], f["failureCode"]) for f in resp["unsuccessful"]] == [
        ("fd00::1", "ValidationException"), ("i-0123456789abcdef0", "ValidationException")]
    assert all("IPv4" in f["failureMessage"] for f in resp["unsuccessful"])
    # Registering again is not an error and changes nothing.
    again = lattice.register_targets(targetGroupIdentifier=tg["arn"], targets=[{"id": "10.0.0.1", "port": 80}])
    assert again["successful"] == [{"id": "10.0.0.1", "port": 80}] and again["unsuccessful"] == []
    # The same address on another port is another target.
    lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "10.0.0.1", "port": 9090}])
    listed = targets(lattice, tg)
    assert [(t["id"], t["port"]) for t in listed] == [("10.0.0.1", 80), ("10.0.0.2", 8080), ("10.0.0.1", 9090)]
    # Nobody forwards to the group yet.
    assert {t["status"] for t in listed} == {"UNUSED"} and all("reasonCode" not in t for t in listed)

    out = lattice.deregister_targets(targetGroupIdentifier=tg["id"], targets=[
        {"id": "10.0.0.1"}, {"id": "10.0.0.2"}, {"id": "10.9.9.9", "port": 80}])
    assert out["successful"] == [{"id": "10.0.0.1", "port": 80}]
    assert [(f["id"], f.get("port"), f["failureCode"]) for f in out["unsuccessful"]] == [
        ("10.0.0.2", 80, "ResourceNotFoundException"), ("10.9.9.9", 80, "ResourceNotFoundException")]
    assert [(t["id"], t["port"]) for t in targets(lattice, tg)] == [("10.0.0.2", 8080), ("10.0.0.1", 9090)]


def test_target_status_follows_configuration(lattice):
    tg = target_group(lattice)
    lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "127.0.0.1", "port": 8080}])
    assert targets(lattice, tg)[0]["status"] == "UNUSED"
    use(lattice, tg)
    assert targets(lattice, tg) == [{"id": "127.0.0.1", "port": 8080, "status": "INITIAL"}]
    lattice.update_target_group(targetGroupIdentifier=tg["id"], healthCheck={"enabled": False})
    assert targets(lattice, tg)[0]["status"] == "UNAVAILABLE"

    fn = lattice.create_target_group(name=unique("grp"), type="LAMBDA")
    lattice.register_targets(targetGroupIdentifier=fn["id"], targets=[{"id": FN}])
    use(lattice, fn)
    assert targets(lattice, fn) == [{"id": FN, "status": "UNAVAILABLE"}]


def test_single_target_types(lattice):
    fn = lattice.create_target_group(name=unique("grp"), type="LAMBDA")
    other_fn = FN + "-two"
    resp = lattice.register_targets(targetGroupIdentifier=fn["id"], targets=[
        {"id": FN}, {"id": other_fn}, {"id": FN, "port": 80}, {"id": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:far"}, {"id": "handler"}])
    assert resp["successful"] == [{"id": FN}]
    assert [(f["id"], f["failureCode"]) for f in resp["unsuccessful"]] == [
        (other_fn, "ConflictException"), (FN, "ValidationException"),
        (f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:far", "ValidationException"), ("handler", "ValidationException")]
    # After deregistering, another function may take its place.
    assert lattice.deregister_targets(targetGroupIdentifier=fn["id"], targets=[{"id": FN}])["successful"] == [{"id": FN}]
    assert lattice.register_targets(targetGroupIdentifier=fn["id"], targets=[{"id": other_fn}])["successful"] == [{"id": other_fn}]

    alb = lattice.create_target_group(name=unique("grp"), type="ALB", config={"protocol": "HTTP", "vpcIdentifier": vpc_of(lattice)})
    resp = lattice.register_targets(targetGroupIdentifier=alb["id"], targets=[{"id": ALB}, {"id": ALB + "0"}, {"id": FN}])
    assert resp["successful"] == [{"id": ALB, "port": 80}]
    assert [f["failureCode"] for f in resp["unsuccessful"]] == ["ConflictException", "ValidationException"]

    # INSTANCE targets are instance IDs of instances that exist (test_traffic_instances.py
    # registers real ones): malformed and unknown IDs are refused alike.
    inst = lattice.create_target_group(name=unique("grp"), type="INSTANCE", config={"protocol": "HTTP", "port": 8080, "vpcIdentifier": vpc_of(lattice)})
    resp = lattice.register_targets(targetGroupIdentifier=inst["id"], targets=[
        {"id": "i-0123456789abcdef0"}, {"id": "i-01234567"}, {"id": "i-xyz"}, {"id": "10.0.0.1"}])
    assert resp["successful"] == []
    assert [f["id"] for f in resp["unsuccessful"]] == ["i-0123456789abcdef0", "i-01234567", "i-xyz", "10.0.0.1"]
    assert all(f["failureCode"] == "ValidationException" for f in resp["unsuccessful"])
    assert "does not exist" in resp["unsuccessful"][0]["failureMessage"]


def test_list_targets_filter_and_pagination(lattice, unchecked):
    tg = target_group(lattice)
    addrs = [f"10.1.0.{i}" for i in range(1, 8)]
    lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": a} for a in addrs] + [{"id": "10.1.0.1", "port": 81}])
    seen = [(t["id"], t["port"]) for t in list_by_hand(lattice.list_targets, 10, targetGroupIdentifier=tg["id"],
                                                        maxResults=3)]
    assert seen == [(a, 80) for a in addrs] + [("10.1.0.1", 81)]
    # A filter without a port matches every port of that id.
    assert [(t["id"], t["port"]) for t in targets(lattice, tg, targets=[{"id": "10.1.0.1"}])] == [("10.1.0.1", 80), ("10.1.0.1", 81)]
    assert [(t["id"], t["port"]) for t in targets(lattice, tg, targets=[{"id": "10.1.0.1", "port": 81}, {"id": "10.1.0.3"}])] == [
        ("10.1.0.3", 80), ("10.1.0.1", 81)]
    assert targets(lattice, tg, targets=[{"id": "10.200.0.1"}]) == []
    with pytest.raises(ClientError) as e:
        unchecked.list_targets(targetGroupIdentifier=tg["id"], targets=[{"id": f"10.2.0.{i}"} for i in range(21)])
    assert error_code(e) == "ValidationException"
    assert [f["name"] for f in e.value.response["fieldList"]] == ["targets"]


def test_register_validation(lattice, unchecked):
    tg = target_group(lattice)
    cases = [
        ({}, ["targets"]),
        ({"targets": []}, ["targets"]),
        ({"targets": [{"id": f"10.3.0.{i % 250}", "port": 1000 + i} for i in range(101)]}, ["targets"]),
        ({"targets": [{"port": 80}]}, ["targets[0].id"]),
        ({"targets": [{"id": "10.0.0.1", "port": 0}]}, ["targets[0].port"]),
        ({"targets": [{"id": "x" * 201}]}, ["targets[0].id"]),
    ]
    for call in (unchecked.register_targets, unchecked.deregister_targets):
        for body, fields in cases:
            with pytest.raises(ClientError) as e:
                call(targetGroupIdentifier=tg["id"], **body)
            assert error_code(e) == "ValidationException", body
            assert [f["name"] for f in e.value.response["fieldList"]] == fields, body
    assert targets(lattice, tg) == []
    with pytest.raises(ClientError) as e:
        lattice.register_targets(targetGroupIdentifier="tg-0000000000000000a", targets=[{"id": "10.0.0.1"}])
    assert error_code(e) == "ResourceNotFoundException"


def test_targets_per_group_quota(lattice):
    tg = target_group(lattice)
    for batch in range(10):
        resp = lattice.register_targets(targetGroupIdentifier=tg["id"],
                                        targets=[{"id": f"10.4.{batch}.{i}"} for i in range(100)])
        assert len(resp["successful"]) == 100
    with pytest.raises(ClientError) as e:
        lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "10.5.0.1"}, {"id": "10.4.0.0"}])
    assert error_code(e) == "ServiceQuotaExceededException" and status(e.value.response) == 402
    assert e.value.response["quotaCode"] == "targets-per-target-group"
    # Re-registering existing targets adds nothing and so is still allowed.
    assert lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "10.4.0.0"}])["successful"] == [
        {"id": "10.4.0.0", "port": 80}]
    assert len(targets(lattice, tg, targets=[{"id": "10.5.0.1"}])) == 0


def test_target_groups_per_region_quota(server):
    """500 target groups per region; run on a server of its own so other tests keep their room."""
    own = Server(server.backend).start()
    try:
        client = own.client()
        for i in range(500):
            client.create_target_group(name=f"q-{i}", type="LAMBDA")
        with pytest.raises(ClientError) as e:
            client.create_target_group(name="q-last", type="LAMBDA")
        assert error_code(e) == "ServiceQuotaExceededException" and e.value.response["quotaCode"] == "target-groups-per-region"
        client.delete_target_group(targetGroupIdentifier=client.list_target_groups(maxResults=1)["items"][0]["id"])
        client.create_target_group(name="q-last", type="LAMBDA")
    finally:
        own.cleanup()


def test_cli_target_groups(server):
    name = unique("grp")
    out = server.cli("create-target-group", "--name", name, "--type", "IP",
                     "--config", json.dumps({"protocol": "HTTPS", "vpcIdentifier": vpc_of(server.client()), "healthCheck": {"path": "/hc"}}))
    assert out["config"]["port"] == 443 and out["config"]["healthCheck"]["path"] == "/hc"
    reg = server.cli("register-targets", "--target-group-identifier", out["id"], "--targets", "id=10.0.0.5,port=8443")
    assert reg["successful"] == [{"id": "10.0.0.5", "port": 8443}]
    listed = server.cli("list-targets", "--target-group-identifier", out["arn"])
    assert listed["items"] == [{"id": "10.0.0.5", "port": 8443, "status": "UNUSED"}]
    deleted = server.cli("delete-target-group", "--target-group-identifier", out["id"])
    assert deleted["status"] == "DELETE_IN_PROGRESS"
