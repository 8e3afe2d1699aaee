"""Listener rules through boto3 and the AWS CLI: create/get/list/update/delete shapes and status
codes, the read-only default rule, match/action validation (fieldList names), priority and name
conflicts, the 10-rule and 10-target-groups-per-service quotas, TLS_PASSTHROUGH listeners without
rules, BatchUpdateRule (priority swaps, per-item failures and their codes), evaluation-order
listing with pagination, idempotency and ID-or-ARN paths."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import FIXED_404, error_code, forward, list_by_hand, members, status, target_group, unique

FIXED_500 = {"fixedResponse": {"statusCode": 500}}
GET_MATCH = {"httpMatch": {"method": "GET"}}


class Listener:
    """A fresh service with one HTTP listener whose default action is a fixed 404."""

    def __init__(self, lattice, default_action=FIXED_404):
        self.lattice = lattice
        self.svc = lattice.create_service(name=unique("s"))
        self.listener = lattice.create_listener(serviceIdentifier=self.svc["id"], name="web", protocol="HTTP",
                                                defaultAction=default_action)
        self.ids = {"serviceIdentifier": self.svc["id"], "listenerIdentifier": self.listener["id"]}

    def rule(self, priority, name=None, match=GET_MATCH, action=FIXED_500, **kw):
        return self.lattice.create_rule(**self.ids, name=name or f"rule{priority}", priority=priority, match=match,
                                        action=action, **kw)

    def get(self, rule_id):
        return self.lattice.get_rule(**self.ids, ruleIdentifier=rule_id)

    def listed(self):
        return self.lattice.list_rules(**self.ids)["items"]

    def default_rule(self):
        return [r for r in self.listed() if r["isDefault"]][0]


def test_create_get_list_update_delete(lattice):
    l = Listener(lattice)
    tg = target_group(lattice)
    match = {"httpMatch": {"method": "POST", "pathMatch": {"match": {"prefix": "/api"}, "caseSensitive": True},
                           "headerMatches": [{"name": "x-env", "match": {"exact": "blue"}}]}}
    created = l.rule(10, name="api", match=match, action=forward(tg), tags={"k": "v"})
    assert status(created) == 201
    assert members(created) == {"arn", "id", "name", "match", "priority", "action"}
    rid = created["id"]
    assert rid.startswith("rule-") and len(rid) == 22
    assert created["arn"] == f"{l.listener['arn']}/rule/{rid}"
    assert created["priority"] == 10
    # caseSensitive defaults to false and is returned.
    assert created["match"]["httpMatch"]["headerMatches"] == [{"name": "x-env", "match": {"exact": "blue"}, "caseSensitive": False}]
    assert created["match"]["httpMatch"]["pathMatch"] == {"match": {"prefix": "/api"}, "caseSensitive": True}
    assert created["action"] == {"forward": {"targetGroups": [{"targetGroupIdentifier": tg["id"], "weight": 100}]}}

    got = lattice.get_rule(serviceIdentifier=l.svc["arn"], listenerIdentifier=l.listener["arn"], ruleIdentifier=created["arn"])
    assert members(got) == {"arn", "id", "name", "isDefault", "match", "priority", "action", "createdAt", "lastUpdatedAt"}
    assert got["isDefault"] is False and got["match"] == created["match"]
    assert lattice.get_target_group(targetGroupIdentifier=tg["id"])["serviceArns"] == [l.svc["arn"]]

    updated = lattice.update_rule(**l.ids, ruleIdentifier=rid, priority=20, match=GET_MATCH, action=FIXED_500)
    assert status(updated) == 200
    assert members(updated) == {"arn", "id", "name", "isDefault", "match", "priority", "action"}
    assert (updated["priority"], updated["match"], updated["action"], updated["isDefault"]) == (20, GET_MATCH, FIXED_500, False)
    # Members not given are kept.
    again = lattice.update_rule(**l.ids, ruleIdentifier=rid, priority=21)
    assert again["match"] == GET_MATCH and again["action"] == FIXED_500
    got = l.get(rid)
    assert got["priority"] == 21 and got["lastUpdatedAt"] >= got["createdAt"]
    assert lattice.get_target_group(targetGroupIdentifier=tg["id"])["serviceArns"] == []

    deleted = lattice.delete_rule(**l.ids, ruleIdentifier=rid)
    assert status(deleted) == 204
    with pytest.raises(ClientError) as e:
        l.get(rid)
    assert error_code(e) == "ResourceNotFoundException" and e.value.response["resourceType"] == "RULE"
    with pytest.raises(ClientError) as e:
        lattice.delete_rule(**l.ids, ruleIdentifier=rid)
    assert error_code(e) == "ResourceNotFoundException"


def test_default_rule_is_read_only(lattice, unchecked):
    l = Listener(lattice)
    default = l.default_rule()
    got = l.get(default["id"])
    assert got["isDefault"] is True and got["name"] == "default"
    assert "priority" not in got and "match" not in got
    assert got["action"] == FIXED_404
    with pytest.raises(ClientError) as e:
        lattice.update_rule(**l.ids, ruleIdentifier=default["id"], priority=5)
    assert error_code(e) == "ValidationException" and "UpdateListener" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        lattice.delete_rule(**l.ids, ruleIdentifier=default["id"])
    assert error_code(e) == "ValidationException"
    assert l.get(default["id"])["action"] == FIXED_404
    # The name "default" is taken by the default rule.
    with pytest.raises(ClientError) as e:
        l.rule(1, name="default")
    assert error_code(e) == "ConflictException"


BAD_RULES = [
    ({"name": "ab"}, ["name"]),
    ({"name": "rule-x"}, ["name"]),
    ({"name": None}, ["name"]),
    ({"priority": 0}, ["priority"]),
    ({"priority": 2001}, ["priority"]),
    ({"priority": None}, ["priority"]),
    ({"match": None}, ["match"]),
    ({"match": {}}, ["match"]),
    ({"match": {"httpMatch": {}}}, ["match.httpMatch"]),
    ({"match": {"httpMatch": {"method": "X" * 17}}}, ["match.httpMatch.method"]),
    ({"match": {"httpMatch": {"pathMatch": {"match": {}}}}}, ["match.httpMatch.pathMatch.match"]),
    ({"match": {"httpMatch": {"pathMatch": {"match": {"exact": "/a", "prefix": "/a"}}}}}, ["match.httpMatch.pathMatch.match"]),
    ({"match": {"httpMatch": {"pathMatch": {"match": {"prefix": "no-slash"}}}}}, ["match.httpMatch.pathMatch.match.prefix"]),
    ({"match": {"httpMatch": {"pathMatch": {"match": {"exact": "/" + "a" * 200}}}}}, ["match.httpMatch.pathMatch.match.exact"]),
    ({"match": {"httpMatch": {"headerMatches": []}}}, ["match.httpMatch.headerMatches"]),
    ({"match": {"httpMatch": {"headerMatches": [{"name": f"h{i}", "match": {"exact": "v"}} for i in range(6)]}}}, ["match.httpMatch.headerMatches"]),
    ({"match": {"httpMatch": {"headerMatches": [{"name": "", "match": {"exact": "v"}}]}}}, ["match.httpMatch.headerMatches[0].name"]),
    ({"match": {"httpMatch": {"headerMatches": [{"name": "h" * 101, "match": {"exact": "v"}}]}}}, ["match.httpMatch.headerMatches[0].name"]),
    ({"match": {"httpMatch": {"headerMatches": [{"name": "x", "match": {}}]}}}, ["match.httpMatch.headerMatches[0].match"]),
    ({"match": {"httpMatch": {"headerMatches": [{"name": "x", "match": {"contains": "v" * 201}}]}}}, ["match.httpMatch.headerMatches[0].match.contains"]),
    ({"action": None}, ["action"]),
    ({"action": {}}, ["action"]),
    ({"action": {"fixedResponse": {"statusCode": 404}, "forward": {"targetGroups": []}}}, ["action"]),
    ({"action": {"fixedResponse": {"statusCode": 503}}}, ["action.fixedResponse.statusCode"]),
    ({"action": {"forward": {"targetGroups": [{"weight": 1}]}}}, ["action.forward.targetGroups[0].targetGroupIdentifier"]),
]


@pytest.mark.parametrize("override,fields", BAD_RULES)
def test_create_validation(lattice, unchecked, override, fields):
    l = Listener(lattice)
    req = {**l.ids, "name": "good", "priority": 1, "match": GET_MATCH, "action": FIXED_500, **override}
    req = {k: v for k, v in req.items() if v is not None}
    with pytest.raises(ClientError) as e:
        unchecked.create_rule(**req)
    assert error_code(e) == "ValidationException"
    assert [f["name"] for f in e.value.response["fieldList"]] == fields
    assert len(l.listed()) == 1


def test_conflicts_and_not_found(lattice):
    l = Listener(lattice)
    first = l.rule(5, name="five")
    with pytest.raises(ClientError) as e:
        l.rule(5, name="other")
    assert error_code(e) == "ConflictException" and e.value.response["resourceId"] == first["id"]
    with pytest.raises(ClientError) as e:
        l.rule(6, name="five")
    assert error_code(e) == "ConflictException"
    second = l.rule(6, name="six")
    with pytest.raises(ClientError) as e:
        lattice.update_rule(**l.ids, ruleIdentifier=second["id"], priority=5)
    assert error_code(e) == "ConflictException"
    # Updating to its own priority is not a conflict.
    assert lattice.update_rule(**l.ids, ruleIdentifier=second["id"], priority=6)["priority"] == 6
    with pytest.raises(ClientError) as e:
        l.rule(7, action=forward({"id": "tg-0000000000000000a"}))
    assert error_code(e) == "ResourceNotFoundException" and e.value.response["resourceType"] == "TARGET_GROUP"
    # A rule is only found under its own listener.
    other = Listener(lattice)
    with pytest.raises(ClientError) as e:
        other.get(first["id"])
    assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lattice.create_rule(serviceIdentifier=other.svc["id"], listenerIdentifier=l.listener["id"], name="x1x",
                            priority=1, match=GET_MATCH, action=FIXED_500)
    assert error_code(e) == "ResourceNotFoundException" and e.value.response["resourceType"] == "LISTENER"
    # Target groups serve one service: rules of another service cannot forward to them.
    tg = target_group(lattice)
    l.rule(8, action=forward(tg))
    with pytest.raises(ClientError) as e:
        other.rule(1, action=forward(tg))
    assert error_code(e) == "ConflictException" and e.value.response["resourceType"] == "TARGET_GROUP"


def test_rules_per_listener_quota(lattice):
    l = Listener(lattice)
    for p in range(1, 11):
        l.rule(p)
    with pytest.raises(ClientError) as e:
        l.rule(11)
    assert error_code(e) == "ServiceQuotaExceededException" and status(e.value.response) == 402
    assert e.value.response["quotaCode"] == "rules-per-listener"
    assert len(l.listed()) == 11  # ten rules and the default rule


def test_target_groups_per_service_quota(lattice):
    tgs = [target_group(lattice) for _ in range(11)]
    l = Listener(lattice, default_action=forward(*tgs[:10], weights=[1] * 10))
    # Reusing a target group the service already uses is fine.
    l.rule(1, action=forward(tgs[0]))
    with pytest.raises(ClientError) as e:
        l.rule(2, action=forward(tgs[10]))
    assert error_code(e) == "ServiceQuotaExceededException" and e.value.response["quotaCode"] == "target-groups-per-service"
    # Freeing one in the default action makes room.
    lattice.update_listener(**l.ids, defaultAction=forward(*tgs[:9], weights=[1] * 9))
    l.rule(2, action=forward(tgs[10]))


def test_tls_passthrough_listeners_take_no_rules(lattice):
    svc = lattice.create_service(name=unique("s"), customDomainName=f"{unique('tls')}.example.com")
    tcp = target_group(lattice, protocol="TCP", port=8443)
    tls = lattice.create_listener(serviceIdentifier=svc["id"], name="tls", protocol="TLS_PASSTHROUGH",
                                  defaultAction=forward(tcp))
    with pytest.raises(ClientError) as e:
        lattice.create_rule(serviceIdentifier=svc["id"], listenerIdentifier=tls["id"], name="r1x", priority=1,
                            match=GET_MATCH, action=forward(tcp))
    assert error_code(e) == "ValidationException" and "TLS_PASSTHROUGH" in e.value.response["Error"]["Message"]
    rules = lattice.list_rules(serviceIdentifier=svc["id"], listenerIdentifier=tls["id"])["items"]
    assert [r["isDefault"] for r in rules] == [True]


def test_list_in_evaluation_order_with_pagination(lattice):
    l = Listener(lattice)
    for p in (30, 10, 50, 20, 40):
        l.rule(p)
    seen = list_by_hand(lattice.list_rules, 10, **l.ids, maxResults=2)
    assert [r.get("priority") for r in seen] == [10, 20, 30, 40, 50, None]
    assert [r["isDefault"] for r in seen] == [False] * 5 + [True]
    assert set(seen[0]) == {"arn", "id", "name", "isDefault", "priority", "createdAt", "lastUpdatedAt"}


def test_batch_update_swaps_priorities(lattice):
    l = Listener(lattice)
    a, b = l.rule(1, name="alpha"), l.rule(2, name="beta")
    resp = lattice.batch_update_rule(**l.ids, rules=[
        {"ruleIdentifier": a["id"], "priority": 2},
        {"ruleIdentifier": b["arn"], "priority": 1, "action": FIXED_404},
    ])
    assert status(resp) == 200
    assert resp["unsuccessful"] == []
    assert sorted((r["id"], r["priority"]) for r in resp["successful"]) == sorted([(a["id"], 2), (b["id"], 1)])
    assert set(resp["successful"][0]) == {"arn", "id", "name", "isDefault", "match", "priority", "action"}
    assert l.get(a["id"])["priority"] == 2
    got_b = l.get(b["id"])
    assert got_b["priority"] == 1 and got_b["action"] == FIXED_404


def test_batch_update_partial_failure(lattice):
    l = Listener(lattice)
    a, b, c = l.rule(1, name="alpha"), l.rule(2, name="beta"), l.rule(3, name="gamma")
    default = l.default_rule()
    missing = "rule-0000000000000000a"
    resp = lattice.batch_update_rule(**l.ids, rules=[
        {"ruleIdentifier": a["id"], "priority": 10, "match": {"httpMatch": {"method": "PUT"}}},  # applied
        {"ruleIdentifier": missing, "priority": 11},                                             # not found
        {"ruleIdentifier": default["id"], "action": FIXED_500},                                  # default rule
        {"ruleIdentifier": b["id"], "priority": 3},                                              # collides with gamma
        {"ruleIdentifier": c["id"], "action": forward({"id": "tg-0000000000000000b"})},          # unknown target group
        {"ruleIdentifier": a["id"], "priority": 12},                                             # repeated rule
    ])
    assert [r["id"] for r in resp["successful"]] == [a["id"]]
    assert resp["successful"][0]["priority"] == 10 and resp["successful"][0]["match"] == {"httpMatch": {"method": "PUT"}}
    failures = {(f["ruleIdentifier"], f["failureCode"]) for f in resp["unsuccessful"]}
    assert failures == {
        (missing, "ResourceNotFoundException"),
        (default["id"], "ValidationException"),
        (b["id"], "ConflictException"),
        (c["id"], "ResourceNotFoundException"),
        (a["id"], "ValidationException"),
    }
    assert all(f["failureMessage"] for f in resp["unsuccessful"])
    # The failed items left their rules alone; the good one was applied.
    assert l.get(a["id"])["priority"] == 10
    assert l.get(b["id"])["priority"] == 2
    assert l.get(c["id"])["action"] == FIXED_500
    assert l.get(default["id"])["action"] == FIXED_404


def test_batch_update_cascading_priority_failure(lattice):
    """alpha takes beta's priority while beta's own change fails: beta keeps 2, so alpha fails too."""
    l = Listener(lattice)
    a, b = l.rule(1, name="alpha"), l.rule(2, name="beta")
    resp = lattice.batch_update_rule(**l.ids, rules=[
        {"ruleIdentifier": a["id"], "priority": 2},
        {"ruleIdentifier": b["id"], "priority": 1, "action": forward({"id": "tg-0000000000000000c"})},
    ])
    assert resp["successful"] == []
    assert {(f["ruleIdentifier"], f["failureCode"]) for f in resp["unsuccessful"]} == {
        (a["id"], "ConflictException"), (b["id"], "ResourceNotFoundException")}
    assert (l.get(a["id"])["priority"], l.get(b["id"])["priority"]) == (1, 2)


def test_batch_update_validation(lattice, unchecked):
    l = Listener(lattice)
    a = l.rule(1)
    cases = [
        ({"rules": []}, ["rules"]),
        ({"rules": [{"ruleIdentifier": a["id"]}] * 11}, ["rules"]),
        ({}, ["rules"]),
        ({"rules": [{"priority": 3}]}, ["rules[0].ruleIdentifier"]),
        ({"rules": [{"ruleIdentifier": "not-a-rule-identifier"}]}, ["rules[0].ruleIdentifier"]),
        ({"rules": [{"ruleIdentifier": a["id"], "priority": 0}]}, ["rules[0].priority"]),
        ({"rules": [{"ruleIdentifier": a["id"], "match": {}}]}, ["rules[0].match"]),
        ({"rules": [{"ruleIdentifier": a["id"], "action": {"fixedResponse": {"statusCode": 302}}}]}, ["rules[0].action.fixedResponse.statusCode"]),
    ]
    for body, fields in cases:
        with pytest.raises(ClientError) as e:
            unchecked.batch_update_rule(**l.ids, **body)
        assert error_code(e) == "ValidationException", body
        assert [f["name"] for f in e.value.response["fieldList"]] == fields, body
    assert l.get(a["id"])["priority"] == 1


def test_update_validation(lattice, unchecked):
    l = Listener(lattice)
    a = l.rule(1)
    for body, fields in [({"priority": 2001}, ["priority"]), ({"match": {"httpMatch": {}}}, ["match.httpMatch"]),
                         ({"action": {}}, ["action"])]:
        with pytest.raises(ClientError) as e:
            unchecked.update_rule(**l.ids, ruleIdentifier=a["id"], **body)
        assert error_code(e) == "ValidationException"
        assert [f["name"] for f in e.value.response["fieldList"]] == fields


def test_client_token_idempotency(lattice):
    l = Listener(lattice)
    token = unique("tok")
    a = l.rule(1, name="one", clientToken=token)
    b = l.rule(1, name="one", clientToken=token)
    assert status(b) == 201 and a["id"] == b["id"]
    with pytest.raises(ClientError) as e:
        l.rule(2, name="one", clientToken=token)
    assert error_code(e) == "ConflictException"
    assert len(l.listed()) == 2


def test_cli_rules(server, lattice):
    l = Listener(lattice)
    match = {"httpMatch": {"pathMatch": {"match": {"exact": "/health"}}}}
    out = server.cli("create-rule", "--service-identifier", l.svc["id"], "--listener-identifier", l.listener["id"],
                     "--name", "cli-rule", "--priority", "7", "--match", json.dumps(match),
                     "--action", json.dumps(FIXED_500))
    assert out["priority"] == 7 and out["match"]["httpMatch"]["pathMatch"]["match"] == {"exact": "/health"}
    batch = server.cli("batch-update-rule", "--service-identifier", l.svc["id"], "--listener-identifier", l.listener["id"],
                       "--rules", json.dumps([{"ruleIdentifier": out["id"], "priority": 8}]))
    assert batch["successful"][0]["priority"] == 8 and batch["unsuccessful"] == []
