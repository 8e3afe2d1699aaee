"""Listeners through boto3 and the AWS CLI: create/get/list/update/delete shapes and status codes,
default ports, the default rule that mirrors defaultAction, action validation (fieldList names),
target-group resolution and compatibility (TCP/TLS_PASSTHROUGH/LAMBDA, one service per target
group), name/port conflicts, the 2-listener quota, idempotency, pagination and ID-or-ARN paths."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import FIXED_404, REGION, error_code, forward, list_by_hand, members, status, target_group, unique

CREATE_MEMBERS = {"arn", "id", "name", "protocol", "port", "serviceArn", "serviceId", "defaultAction"}


def service(lattice, **kw):
    return lattice.create_service(name=unique("s"), **kw)


def test_create_get_list_update_delete(lattice):
    svc = service(lattice)
    tg = target_group(lattice)
    created = lattice.create_listener(serviceIdentifier=svc["id"], name="http-80", protocol="HTTP",
                                      defaultAction=forward(tg), tags={"team": "web"})
    assert status(created) == 201
    assert members(created) == CREATE_MEMBERS
    lid = created["id"]
    assert lid.startswith("listener-") and len(lid) == 26
    assert created["arn"] == f"{svc['arn']}/listener/{lid}"
    assert created["port"] == 80 and created["protocol"] == "HTTP"
    assert created["serviceId"] == svc["id"] and created["serviceArn"] == svc["arn"]
    # A single target group without a weight gets weight 100.
    assert created["defaultAction"] == {"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"], "weight": 100}]}}

    got = lattice.get_listener(serviceIdentifier=svc["arn"], listenerIdentifier=created["arn"])
    assert members(got) == CREATE_MEMBERS | {"createdAt", "lastUpdatedAt"}
    assert got["defaultAction"] == created["defaultAction"]
    assert got["createdAt"] == got["lastUpdatedAt"]

    listed = lattice.list_listeners(serviceIdentifier=svc["id"])["items"]
    assert [(i["id"], i["name"], i["protocol"], i["port"]) for i in listed] == [(lid, "http-80", "HTTP", 80)]
    assert set(listed[0]) == {"arn", "id", "name", "protocol", "port", "createdAt", "lastUpdatedAt"}

    # The default rule mirrors the default action, and follows UpdateListener.
    rules = lattice.list_rules(serviceIdentifier=svc["id"], listenerIdentifier=lid)["items"]
    assert len(rules) == 1 and rules[0]["isDefault"] is True and rules[0]["name"] == "default"
    assert "priority" not in rules[0]
    default_rule = lattice.get_rule(serviceIdentifier=svc["id"], listenerIdentifier=lid, ruleIdentifier=rules[0]["id"])
    assert default_rule["action"] == created["defaultAction"]

    updated = lattice.update_listener(serviceIdentifier=svc["id"], listenerIdentifier=lid, defaultAction=FIXED_404)
    assert status(updated) == 200
    assert members(updated) == CREATE_MEMBERS
    assert updated["defaultAction"] == FIXED_404
    got = lattice.get_listener(serviceIdentifier=svc["id"], listenerIdentifier=lid)
    assert got["defaultAction"] == FIXED_404 and got["lastUpdatedAt"] >= got["createdAt"]
    default_rule = lattice.get_rule(serviceIdentifier=svc["id"], listenerIdentifier=lid, ruleIdentifier=rules[0]["id"])
    assert default_rule["action"] == FIXED_404
    # Nothing forwards to the target group any more (listener and default rule both changed).
    assert lattice.get_target_group(targetGroupIdentifier=tg["id"])["serviceArns"] == []
    lattice.delete_target_group(targetGroupIdentifier=tg["id"])

    deleted = lattice.delete_listener(serviceIdentifier=svc["id"], listenerIdentifier=lid)
    assert status(deleted) == 204
    with pytest.raises(ClientError) as e:
        lattice.get_listener(serviceIdentifier=svc["id"], listenerIdentifier=lid)
    assert error_code(e) == "ResourceNotFoundException"
    assert e.value.response["resourceType"] == "LISTENER" and e.value.response["resourceId"] == lid
    # Its rules went with it.
    with pytest.raises(ClientError) as e:
        lattice.get_rule(serviceIdentifier=svc["id"], listenerIdentifier=lid, ruleIdentifier=rules[0]["id"])
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lattice.delete_listener(serviceIdentifier=svc["id"], listenerIdentifier=lid)
    assert error_code(e) == "ResourceNotFoundException"


def test_default_ports_and_weights(lattice):
    svc = service(lattice)
    a, b = target_group(lattice), target_group(lattice, protocol="HTTPS")
    https = lattice.create_listener(serviceIdentifier=svc["id"], name="https", protocol="HTTPS",
                                    defaultAction=forward(a, b, weights=[10, 0]))
    assert https["port"] == 443
    assert https["defaultAction"]["forward"]["targetGroups"] == [
        {"targetGroupIdentifier": a["id"], "weight": 10}, {"targetGroupIdentifier": b["id"], "weight": 0}]
    explicit = lattice.create_listener(serviceIdentifier=svc["id"], name="custom", protocol="HTTP", port=8080,
                                       defaultAction=forward(f"arn:aws:vpc-lattice:{REGION}:111122223333:targetgroup/{a['id']}"))
    assert explicit["port"] == 8080
    # An ARN identifier is stored and returned as the ID.
    assert explicit["defaultAction"]["forward"]["targetGroups"][0]["targetGroupIdentifier"] == a["id"]
    tg_arns = lattice.get_target_group(targetGroupIdentifier=a["id"])["serviceArns"]
    assert tg_arns == [svc["arn"]]


def test_tls_passthrough_rules(lattice):
    tcp = target_group(lattice, protocol="TCP", port=8443)
    http = target_group(lattice)
    fn = target_group(lattice, type="LAMBDA")
    plain = service(lattice)
    with pytest.raises(ClientError) as e:
        lattice.create_listener(serviceIdentifier=plain["id"], name="tls", protocol="TLS_PASSTHROUGH", defaultAction=forward(tcp))
    assert error_code(e) == "ValidationException" and "customDomainName" in e.value.response["Error"]["Message"]

    svc = service(lattice, customDomainName=f"{unique('app')}.example.com")
    for action, why in [(forward(http), "TCP"), (forward(fn), "LAMBDA"), (FIXED_404, "fixed")]:
        with pytest.raises(ClientError) as e:
            lattice.create_listener(serviceIdentifier=svc["id"], name="tls", protocol="TLS_PASSTHROUGH", defaultAction=action)
        assert error_code(e) == "ValidationException", why
        assert why in e.value.response["Error"]["Message"]
    tls = lattice.create_listener(serviceIdentifier=svc["id"], name="tls", protocol="TLS_PASSTHROUGH", defaultAction=forward(tcp))
    assert tls["port"] == 443 and tls["protocol"] == "TLS_PASSTHROUGH"

    # TCP target groups only behind TLS_PASSTHROUGH.
    other = service(lattice)
    tcp2 = target_group(lattice, protocol="TCP", port=9000)
    with pytest.raises(ClientError) as e:
        lattice.create_listener(serviceIdentifier=other["id"], name="http", protocol="HTTP", defaultAction=forward(tcp2))
    assert error_code(e) == "ValidationException"
    assert e.value.response["fieldList"][0]["name"] == "defaultAction.forward.targetGroups[0].targetGroupIdentifier"
    # ... and UpdateListener applies the same rules.
    with pytest.raises(ClientError) as e:
        lattice.update_listener(serviceIdentifier=svc["id"], listenerIdentifier=tls["id"], defaultAction=forward(http))
    assert error_code(e) == "ValidationException"
    # Lambda target groups are fine behind HTTP listeners.
    ok = lattice.create_listener(serviceIdentifier=other["id"], name="http", protocol="HTTP", defaultAction=forward(fn))
    assert ok["defaultAction"]["forward"]["targetGroups"][0]["targetGroupIdentifier"] == fn["id"]


BAD_CREATES = [
    ({"name": "ab"}, ["name"]),
    ({"name": "listener-one"}, ["name"]),
    ({"name": "Upper"}, ["name"]),
    ({"name": "a--b"}, ["name"]),
    ({"name": None}, ["name"]),
    ({"protocol": "TLS"}, ["protocol"]),
    ({"protocol": None}, ["protocol"]),
    ({"port": 0}, ["port"]),
    ({"port": 65536}, ["port"]),
    ({"defaultAction": None}, ["defaultAction"]),
    ({"defaultAction": {}}, ["defaultAction"]),
    ({"defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": "TG"}]}, "fixedResponse": {"statusCode": 404}}}, ["defaultAction"]),
    ({"defaultAction": {"fixedResponse": {"statusCode": 200}}}, ["defaultAction.fixedResponse.statusCode"]),
    ({"defaultAction": {"fixedResponse": {"statusCode": 600}}}, ["defaultAction.fixedResponse.statusCode"]),
    ({"defaultAction": {"fixedResponse": {}}}, ["defaultAction.fixedResponse.statusCode"]),
    ({"defaultAction": {"forward": {"targetGroups": []}}}, ["defaultAction.forward.targetGroups"]),
    ({"defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": "TG", "weight": 1000}]}}}, ["defaultAction.forward.targetGroups[0].weight"]),
    ({"defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": "tg-nope"}]}}}, ["defaultAction.forward.targetGroups[0].targetGroupIdentifier"]),
    ({"defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": "TG", "weight": 1}, {"targetGroupIdentifier": "tg-0123456789abcdef0"}]}}},
     ["defaultAction.forward.targetGroups[1].weight"]),
    ({"defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": f"tg-0123456789abcde{i:02}", "weight": 1} for i in range(11)]}}},
     ["defaultAction.forward.targetGroups"]),
    ({"tags": {"aws:x": "y"}}, ["tags.aws:x"]),
    ({"clientToken": ""}, ["clientToken"]),
]


@pytest.mark.parametrize("override,fields", BAD_CREATES)
def test_create_validation(lattice, unchecked, override, fields):
    svc = service(lattice)
    tg = target_group(lattice)
    req = {"serviceIdentifier": svc["id"], "name": "web", "protocol": "HTTP", "defaultAction": forward(tg)}
    req.update(json.loads(json.dumps(override).replace('"TG"', json.dumps(tg["id"]))))
    req = {k: v for k, v in req.items() if v is not None}
    with pytest.raises(ClientError) as e:
        unchecked.create_listener(**req)
    assert error_code(e) == "ValidationException"
    assert e.value.response["reason"] == "fieldValidationFailed"
    assert [f["name"] for f in e.value.response["fieldList"]] == fields
    # Nothing was created.
    assert lattice.list_listeners(serviceIdentifier=svc["id"])["items"] == []


def test_update_validation(lattice, unchecked):
    svc = service(lattice)
    l = lattice.create_listener(serviceIdentifier=svc["id"], name="web", protocol="HTTP", defaultAction=FIXED_404)
    for body, field in [({}, "defaultAction"), ({"defaultAction": {}}, "defaultAction"),
                        ({"defaultAction": {"fixedResponse": {"statusCode": 301}}}, "defaultAction.fixedResponse.statusCode")]:
        with pytest.raises(ClientError) as e:
            unchecked.update_listener(serviceIdentifier=svc["id"], listenerIdentifier=l["id"], **body)
        assert error_code(e) == "ValidationException"
        assert [f["name"] for f in e.value.response["fieldList"]] == [field]
    assert lattice.get_listener(serviceIdentifier=svc["id"], listenerIdentifier=l["id"])["defaultAction"] == FIXED_404


def test_not_found_and_malformed_identifiers(lattice, unchecked):
    svc = service(lattice)
    missing_svc = "svc-0000000000000000a"
    with pytest.raises(ClientError) as e:
        lattice.create_listener(serviceIdentifier=missing_svc, name="web", protocol="HTTP", defaultAction=FIXED_404)
    assert error_code(e) == "ResourceNotFoundException" and e.value.response["resourceType"] == "SERVICE"
    with pytest.raises(ClientError) as e:
        unchecked.list_listeners(serviceIdentifier="not-a-service")
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        lattice.create_listener(serviceIdentifier=svc["id"], name="web", protocol="HTTP",
                                defaultAction=forward("tg-0000000000000000a"))
    assert error_code(e) == "ResourceNotFoundException" and e.value.response["resourceType"] == "TARGET_GROUP"
    # A target-group ARN of another account names nothing here.
    foreign = "arn:aws:vpc-lattice:us-west-2:999999999999:targetgroup/tg-0000000000000000a"
    with pytest.raises(ClientError) as e:
        lattice.create_listener(serviceIdentifier=svc["id"], name="web", protocol="HTTP", defaultAction=forward(foreign))
    assert error_code(e) == "ResourceNotFoundException"
    # A listener is only found under its own service.
    l = lattice.create_listener(serviceIdentifier=svc["id"], name="web", protocol="HTTP", defaultAction=FIXED_404)
    other = service(lattice)
    for call in (lattice.get_listener, lattice.delete_listener):
        with pytest.raises(ClientError) as e:
            call(serviceIdentifier=other["id"], listenerIdentifier=l["id"])
        assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lattice.update_listener(serviceIdentifier=other["id"], listenerIdentifier=l["id"], defaultAction=FIXED_404)
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        unchecked.get_listener(serviceIdentifier=svc["id"], listenerIdentifier="listener-bad")
    assert error_code(e) == "ValidationException"


def test_name_port_conflicts_and_quota(lattice):
    svc = service(lattice)
    first = lattice.create_listener(serviceIdentifier=svc["id"], name="web", protocol="HTTP", defaultAction=FIXED_404)
    with pytest.raises(ClientError) as e:
        lattice.create_listener(serviceIdentifier=svc["id"], name="web", protocol="HTTPS", defaultAction=FIXED_404)
    assert error_code(e) == "ConflictException" and e.value.response["resourceId"] == first["id"]
    with pytest.raises(ClientError) as e:
        lattice.create_listener(serviceIdentifier=svc["id"], name="web2", protocol="HTTPS", port=80, defaultAction=FIXED_404)
    assert error_code(e) == "ConflictException"
    # The same name and port are fine in another service.
    other = service(lattice)
    lattice.create_listener(serviceIdentifier=other["id"], name="web", protocol="HTTP", defaultAction=FIXED_404)

    lattice.create_listener(serviceIdentifier=svc["id"], name="web2", protocol="HTTPS", defaultAction=FIXED_404)
    with pytest.raises(ClientError) as e:
        lattice.create_listener(serviceIdentifier=svc["id"], name="web3", protocol="HTTP", port=8080, defaultAction=FIXED_404)
    assert error_code(e) == "ServiceQuotaExceededException"
    assert status(e.value.response) == 402
    assert e.value.response["quotaCode"] == "listeners-per-service" and e.value.response["serviceCode"] == "vpc-lattice"
    # Deleting one frees a slot.
    lattice.delete_listener(serviceIdentifier=svc["id"], listenerIdentifier=first["id"])
    lattice.create_listener(serviceIdentifier=svc["id"], name="web3", protocol="HTTP", port=8080, defaultAction=FIXED_404)


def test_target_group_serves_one_service(lattice):
    tg = target_group(lattice)
    a, b = service(lattice), service(lattice)
    lattice.create_listener(serviceIdentifier=a["id"], name="web", protocol="HTTP", defaultAction=forward(tg))
    # A second listener of the same service may use it too.
    lattice.create_listener(serviceIdentifier=a["id"], name="alt", protocol="HTTP", port=81, defaultAction=forward(tg))
    with pytest.raises(ClientError) as e:
        lattice.create_listener(serviceIdentifier=b["id"], name="web", protocol="HTTP", defaultAction=forward(tg))
    assert error_code(e) == "ConflictException"
    assert e.value.response["resourceType"] == "TARGET_GROUP" and e.value.response["resourceId"] == tg["id"]
    lb = lattice.create_listener(serviceIdentifier=b["id"], name="web", protocol="HTTP", defaultAction=FIXED_404)
    with pytest.raises(ClientError) as e:
        lattice.update_listener(serviceIdentifier=b["id"], listenerIdentifier=lb["id"], defaultAction=forward(tg))
    assert error_code(e) == "ConflictException"
    assert lattice.get_target_group(targetGroupIdentifier=tg["id"])["serviceArns"] == [a["arn"]]


def test_client_token_idempotency(lattice):
    svc = service(lattice)
    token = unique("tok")
    a = lattice.create_listener(serviceIdentifier=svc["id"], name="web", protocol="HTTP", defaultAction=FIXED_404, clientToken=token)
    b = lattice.create_listener(serviceIdentifier=svc["arn"], name="web", protocol="HTTP", defaultAction=FIXED_404, clientToken=token)
    assert status(b) == 201 and a["id"] == b["id"]
    assert len(lattice.list_listeners(serviceIdentifier=svc["id"])["items"]) == 1
    with pytest.raises(ClientError) as e:
        lattice.create_listener(serviceIdentifier=svc["id"], name="web", protocol="HTTP", port=81, defaultAction=FIXED_404, clientToken=token)
    assert error_code(e) == "ConflictException"


def test_pagination(lattice):
    svc = service(lattice)
    ids = {lattice.create_listener(serviceIdentifier=svc["id"], name=f"l{i}x", protocol="HTTP", port=80 + i,
                                   defaultAction=FIXED_404)["id"] for i in range(2)}
    seen = [i["id"] for i in list_by_hand(lattice.list_listeners, 5, serviceIdentifier=svc["id"], maxResults=1)]
    assert sorted(seen) == sorted(ids)
    paginator = lattice.get_paginator("list_listeners")
    assert {i["id"] for p in paginator.paginate(serviceIdentifier=svc["id"], PaginationConfig={"PageSize": 1}) for i in p["items"]} == ids


def test_cli_create_listener(server, lattice):
    svc = service(lattice)
    tg = target_group(lattice)
    action = {"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"], "weight": 5}]}}
    out = server.cli("create-listener", "--service-identifier", svc["id"], "--name", "cli-web",
                     "--protocol", "HTTP", "--port", "8080", "--default-action", json.dumps(action))
    assert out["port"] == 8080 and out["defaultAction"] == action
    got = server.cli("get-listener", "--service-identifier", svc["arn"], "--listener-identifier", out["arn"])
    assert got["id"] == out["id"] and "createdAt" in got
    bad = server.cli("create-listener", "--service-identifier", svc["id"], "--name", "cli-web2", "--protocol", "HTTP",
                     "--port", "8081", "--default-action", json.dumps({"fixedResponse": {"statusCode": 418}}), check=False)
    assert bad.returncode != 0 and "ValidationException" in bad.stderr
