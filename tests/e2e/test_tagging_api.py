"""The Resource Groups Tagging API (`resourcegroupstaggingapi`, awsJson1_1, signed for `tagging`)
against a real server, through the AWS CLI and boto3: GetResources by tag and by resource type over
every taggable Lattice resource, its pagination (boto3's paginator and the CLI's), GetTagKeys,
GetTagValues, TagResources and UntagResources with FailedResourcesMap, the tags shared with
Lattice's own TagResource, validation errors as InvalidParameterException, and the SigV4 gate
resolving `X-Amz-Target: ResourceGroupsTaggingAPI_20170126.*` to the signing name `tagging`."""

import json
import subprocess
import urllib.error
import urllib.request

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, ACCOUNT, REGION, SECRET_KEY, error_code, new_vpc, unique
from test_readme import run_readme_block

FIXED_404 = {"fixedResponse": {"statusCode": 404}}
TARGET_PREFIX = "ResourceGroupsTaggingAPI_20170126"
# Every test's resources carry `suite: RUN`, so that queries see only this module's world even
# when other tests share the server.
RUN = unique("run")


def tagging_cli(server, *args, check=True):
    """Runs `aws resourcegroupstaggingapi ARGS --endpoint-url …` and returns the parsed JSON output."""
    cmd = ["aws", "resourcegroupstaggingapi", *args, "--endpoint-url", server.endpoint, "--output", "json"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=server.cli_env(), timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}")
    if p.returncode != 0:
        return p
    return json.loads(p.stdout) if p.stdout.strip() else {}


@pytest.fixture(scope="module")
def tagging(server):
    """A boto3 `resourcegroupstaggingapi` client (no client-side validation, no retries)."""
    return server.client("resourcegroupstaggingapi")


def tags_of(lattice, arn):
    return lattice.list_tags_for_resource(resourceArn=arn)["tags"]


def as_dict(tag_list):
    return {t["Key"]: t["Value"] for t in tag_list}


# The world every read test queries: one resource of each taggable kind, with these tags (besides
# `suite`). Nothing modifies it.
WORLD_TAGS = {
    "servicenetwork": {"env": "prod"},
    "service": {"env": "prod", "tier": "gold"},
    "listener": {"env": "prod"},
    "rule": {"env": "dev", "tier": "gold"},
    "targetgroup": {"env": "prod", "tier": ""},
    "servicenetworkserviceassociation": {"env": "dev"},
    "servicenetworkvpcassociation": {},
    "accesslogsubscription": {},
}
KINDS = set(WORLD_TAGS)


@pytest.fixture(scope="module")
def world(lattice):
    """kind → ARN of the module's resources, and an untagged target group under `untagged`."""
    t = {k: {"suite": RUN, **v} for k, v in WORLD_TAGS.items()}
    made = {}
    sn = lattice.create_service_network(name=unique("tw"), tags=t["servicenetwork"])
    svc = lattice.create_service(name=unique("tw"), tags=t["service"])
    listener = lattice.create_listener(serviceIdentifier=svc["id"], name=unique("tw"), protocol="HTTP", port=80,
                                       defaultAction=FIXED_404, tags=t["listener"])
    rule = lattice.create_rule(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"], name=unique("tw"),
                               priority=10, match={"httpMatch": {"pathMatch": {"match": {"prefix": "/x"}}}},
                               action=FIXED_404, tags=t["rule"])
    tg = lattice.create_target_group(name=unique("tw"), type="LAMBDA", tags=t["targetgroup"])
    untagged = lattice.create_target_group(name=unique("tw"), type="LAMBDA")
    snsa = lattice.create_service_network_service_association(
        serviceNetworkIdentifier=sn["id"], serviceIdentifier=svc["id"], tags=t["servicenetworkserviceassociation"])
    snva = lattice.create_service_network_vpc_association(
        serviceNetworkIdentifier=sn["id"], vpcIdentifier=new_vpc(lattice),
        tags=t["servicenetworkvpcassociation"])
    als = lattice.create_access_log_subscription(
        resourceIdentifier=sn["id"], destinationArn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/trellis/{RUN}",
        tags=t["accesslogsubscription"])
    made = {
        "servicenetwork": sn["arn"], "service": svc["arn"], "listener": listener["arn"], "rule": rule["arn"],
        "targetgroup": tg["arn"], "servicenetworkserviceassociation": snsa["arn"],
        "servicenetworkvpcassociation": snva["arn"], "accesslogsubscription": als["arn"],
        "untagged": untagged["arn"],
    }
    yield made
    for call, kw in [
        (lattice.delete_access_log_subscription, {"accessLogSubscriptionIdentifier": als["id"]}),
        (lattice.delete_service_network_vpc_association, {"serviceNetworkVpcAssociationIdentifier": snva["id"]}),
        (lattice.delete_service_network_service_association,
         {"serviceNetworkServiceAssociationIdentifier": snsa["id"]}),
        (lattice.delete_rule, {"serviceIdentifier": svc["id"], "listenerIdentifier": listener["id"],
                               "ruleIdentifier": rule["id"]}),
        (lattice.delete_listener, {"serviceIdentifier": svc["id"], "listenerIdentifier": listener["id"]}),
        (lattice.delete_service, {"serviceIdentifier": svc["id"]}),
        (lattice.delete_target_group, {"targetGroupIdentifier": tg["id"]}),
        (lattice.delete_target_group, {"targetGroupIdentifier": untagged["id"]}),
        (lattice.delete_service_network, {"serviceNetworkIdentifier": sn["id"]}),
    ]:
        try:
            call(**kw)
        except ClientError:
            pass


def all_pages(tagging, **kw):
    """Every ResourceTagMapping GetResources returns, through boto3's paginator."""
    out = []
    for page in tagging.get_paginator("get_resources").paginate(**kw):
        out.extend(page["ResourceTagMappingList"])
    return out


# (id, extra tag filters, resource type filters, kinds expected). Every query also filters on
# `suite: RUN`.
FILTER_CASES = [
    ("everything", [], [], KINDS),
    ("vpc-lattice", [], ["vpc-lattice"], KINDS),
    *[(f"type-{k}", [], [f"vpc-lattice:{k}"], {k}) for k in sorted(KINDS)],
    ("two-types", [], ["vpc-lattice:service", "vpc-lattice:rule"], {"service", "rule"}),
    ("another-service", [], ["ec2:instance"], set()),
    ("lattice-type-not-stored", [], ["vpc-lattice:resourcegateway"], set()),
    ("env-prod", [{"Key": "env", "Values": ["prod"]}], [],
     {"servicenetwork", "service", "listener", "targetgroup"}),
    ("env-prod-or-dev", [{"Key": "env", "Values": ["prod", "dev"]}], [],
     {"servicenetwork", "service", "listener", "targetgroup", "rule", "servicenetworkserviceassociation"}),
    ("key-only-any-value", [{"Key": "tier"}], [], {"service", "rule", "targetgroup"}),
    ("key-with-empty-values", [{"Key": "tier", "Values": []}], [], {"service", "rule", "targetgroup"}),
    ("empty-value", [{"Key": "tier", "Values": [""]}], [], {"targetgroup"}),
    ("and-across-filters", [{"Key": "env", "Values": ["prod"]}, {"Key": "tier", "Values": ["gold"]}], [],
     {"service"}),
    ("tags-and-type", [{"Key": "tier"}], ["vpc-lattice:rule"], {"rule"}),
    ("no-match", [{"Key": "env", "Values": ["staging"]}], [], set()),
    ("case-sensitive-key", [{"Key": "ENV"}], [], set()),
]


@pytest.mark.parametrize("tag_filters,type_filters,want", [c[1:] for c in FILTER_CASES],
                         ids=[c[0] for c in FILTER_CASES])
def test_get_resources_filters(tagging, lattice, world, tag_filters, type_filters, want):
    kw = {"TagFilters": [{"Key": "suite", "Values": [RUN]}, *tag_filters]}
    if type_filters:
        kw["ResourceTypeFilters"] = type_filters
    got = all_pages(tagging, **kw)
    assert {m["ResourceARN"] for m in got} == {world[k] for k in want}
    assert len(got) == len(want)
    # Each mapping carries all of the resource's tags, the ones Lattice lists.
    for m in got:
        assert as_dict(m["Tags"]) == tags_of(lattice, m["ResourceARN"])
        assert "ComplianceDetails" not in m


def test_untagged_resources_are_listed_only_by_arn(tagging, world):
    by_type = all_pages(tagging, ResourceTypeFilters=["vpc-lattice:targetgroup"])
    arns = {m["ResourceARN"] for m in by_type}
    assert world["targetgroup"] in arns and world["untagged"] not in arns
    missing = world["service"].rsplit("/", 1)[0] + "/svc-00000000000000000"
    resp = tagging.get_resources(ResourceARNList=[world["untagged"], missing, world["service"]])
    assert resp["PaginationToken"] == ""
    assert [(m["ResourceARN"], as_dict(m["Tags"])) for m in resp["ResourceTagMappingList"]] == [
        (world["untagged"], {}),
        (world["service"], {"suite": RUN, **WORLD_TAGS["service"]}),
    ]


def test_cli_get_resources_by_tag_and_type(server, world):
    # The command as a user types it: every result is a Lattice service tagged env=prod.
    out = tagging_cli(server, "get-resources", "--tag-filters", "Key=env,Values=prod",
                      "--resource-type-filters", "vpc-lattice:service")
    found = out["ResourceTagMappingList"]
    assert world["service"] in {m["ResourceARN"] for m in found}
    for m in found:
        assert ":service/svc-" in m["ResourceARN"] and "/listener/" not in m["ResourceARN"]
        assert as_dict(m["Tags"])["env"] == "prod"
    # Narrowed to this module's world, exactly the one service.
    out = tagging_cli(server, "get-resources", "--tag-filters", "Key=env,Values=prod", f"Key=suite,Values={RUN}",
                      "--resource-type-filters", "vpc-lattice:service")
    assert [m["ResourceARN"] for m in out["ResourceTagMappingList"]] == [world["service"]]


def test_cli_get_tag_keys_and_values(server, lattice, world):
    key = f"probe-{RUN}"
    lattice.tag_resource(resourceArn=world["servicenetwork"], tags={key: "b"})
    lattice.tag_resource(resourceArn=world["targetgroup"], tags={key: "a"})
    try:
        keys = tagging_cli(server, "get-tag-keys")["TagKeys"]
        assert {key, "suite", "env", "tier"} <= set(keys)
        assert keys == sorted(keys) and len(keys) == len(set(keys))
        assert tagging_cli(server, "get-tag-values", "--key", key)["TagValues"] == ["a", "b"]
        assert {"", "gold"} <= set(tagging_cli(server, "get-tag-values", "--key", "tier")["TagValues"])
        assert tagging_cli(server, "get-tag-values", "--key", f"absent-{RUN}")["TagValues"] == []
    finally:
        lattice.untag_resource(resourceArn=world["servicenetwork"], tagKeys=[key])
        lattice.untag_resource(resourceArn=world["targetgroup"], tagKeys=[key])
    assert key not in tagging_cli(server, "get-tag-keys")["TagKeys"]


@pytest.fixture
def networks(lattice):
    """Three fresh service networks tagged `suite: RUN`; deleted afterwards."""
    made = [lattice.create_service_network(name=unique("tt"), tags={"suite": RUN}) for _ in range(3)]
    yield [sn["arn"] for sn in made]
    for sn in made:
        try:
            lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])
        except ClientError:
            pass


def test_cli_tag_and_untag_resources_share_tags_with_lattice(server, lattice, networks):
    a, b, _ = networks
    out = tagging_cli(server, "tag-resources", "--resource-arn-list", a, b, "--tags", "stage=beta,owner=ops")
    assert out["FailedResourcesMap"] == {}
    for arn in (a, b):
        assert tags_of(lattice, arn) == {"suite": RUN, "stage": "beta", "owner": "ops"}
    # Lattice's TagResource is visible here.
    lattice.tag_resource(resourceArn=b, tags={"via": "lattice"})
    out = tagging_cli(server, "get-resources", "--tag-filters", "Key=via,Values=lattice", f"Key=suite,Values={RUN}")
    assert [m["ResourceARN"] for m in out["ResourceTagMappingList"]] == [b]
    out = tagging_cli(server, "untag-resources", "--resource-arn-list", a, b, "--tag-keys", "stage", "absent")
    assert out["FailedResourcesMap"] == {}
    assert tags_of(lattice, a) == {"suite": RUN, "owner": "ops"}
    assert tags_of(lattice, b) == {"suite": RUN, "owner": "ops", "via": "lattice"}


def test_each_tag_write_is_one_revision(server, tagging, networks):
    before = server.revision()["store"]
    resp = tagging.tag_resources(ResourceARNList=networks, Tags={"batch": "1", "more": "2"})
    assert resp["FailedResourcesMap"] == {}
    assert server.revision()["store"] == before + 1
    tagging.untag_resources(ResourceARNList=networks, TagKeys=["batch", "more"])
    assert server.revision()["store"] == before + 2
    # A call that changes nothing commits nothing.
    tagging.untag_resources(ResourceARNList=networks, TagKeys=["batch"])
    assert server.revision()["store"] == before + 2


def test_failed_resources_map(tagging, lattice, networks):
    good = networks[0]
    missing = good.rsplit("/", 1)[0] + "/sn-00000000000000000"
    foreign = missing.replace(f":{REGION}:", ":eu-west-1:")
    elsewhere = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"
    arns = [good, missing, foreign, elsewhere]
    want = {missing: 404, foreign: 400, elsewhere: 400}
    for call, kw in ((tagging.tag_resources, {"Tags": {"x": "1"}}), (tagging.untag_resources, {"TagKeys": ["x"]})):
        resp = call(ResourceARNList=arns, **kw)
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
        failed = resp["FailedResourcesMap"]
        assert {arn: f["StatusCode"] for arn, f in failed.items()} == want, call
        for f in failed.values():
            assert f["ErrorCode"] == "InvalidParameterException" and f["ErrorMessage"]
    # The good ARN was tagged and untagged despite the others.
    assert tags_of(lattice, good) == {"suite": RUN}


def test_the_50_tag_limit_is_lattices(tagging, lattice, networks):
    arn, other, _ = networks
    lattice.tag_resource(resourceArn=arn, tags={f"k{i}": "v" for i in range(48)})  # 49 with `suite`
    resp = tagging.tag_resources(ResourceARNList=[arn, other], Tags={"n1": "v", "n2": "v"})
    failure = resp["FailedResourcesMap"][arn]
    assert (failure["ErrorCode"], failure["StatusCode"]) == ("InvalidParameterException", 400)
    assert "50" in failure["ErrorMessage"]
    assert list(resp["FailedResourcesMap"]) == [arn]
    assert len(tags_of(lattice, arn)) == 49 and tags_of(lattice, other)["n2"] == "v"
    assert tagging.tag_resources(ResourceARNList=[arn], Tags={"n1": "v"})["FailedResourcesMap"] == {}
    assert len(tags_of(lattice, arn)) == 50


@pytest.fixture(scope="module")
def pages_world(lattice):
    """Seven service networks with 30 tags each (`page: RUN` and 29 others)."""
    made = [lattice.create_service_network(name=unique("tp"),
                                           tags={"page": RUN, **{f"t{i}": str(i) for i in range(29)}})
            for _ in range(7)]
    yield sorted(sn["arn"] for sn in made)
    for sn in made:
        try:
            lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])
        except ClientError:
            pass


# (id, paginate() keyword arguments, page sizes expected)
PAGE_CASES = [
    ("resources-per-page-2", {"PaginationConfig": {"PageSize": 2}}, [2, 2, 2, 1]),
    ("resources-per-page-5", {"PaginationConfig": {"PageSize": 5}}, [5, 2]),
    ("resources-per-page-7", {"PaginationConfig": {"PageSize": 7}}, [7]),
    # 30 tags each: three fit in 100, the fourth would not.
    ("tags-per-page-100", {"TagsPerPage": 100}, [3, 3, 1]),
    ("both-limits", {"TagsPerPage": 100, "PaginationConfig": {"PageSize": 2}}, [2, 2, 2, 1]),
    ("default-page", {}, [7]),
]


@pytest.mark.parametrize("kw,sizes", [c[1:] for c in PAGE_CASES], ids=[c[0] for c in PAGE_CASES])
def test_paginator_walks_every_page(tagging, pages_world, kw, sizes):
    pages = list(tagging.get_paginator("get_resources").paginate(TagFilters=[{"Key": "page", "Values": [RUN]}], **kw))
    assert [len(p["ResourceTagMappingList"]) for p in pages] == sizes
    arns = [m["ResourceARN"] for p in pages for m in p["ResourceTagMappingList"]]
    assert arns == pages_world  # every resource once, in ARN order
    assert all(p["PaginationToken"] for p in pages[:-1])
    assert pages[-1]["PaginationToken"] == ""


def test_cli_get_resources_follows_pages(server, pages_world):
    out = tagging_cli(server, "get-resources", "--tag-filters", f"Key=page,Values={RUN}", "--page-size", "2")
    assert [m["ResourceARN"] for m in out["ResourceTagMappingList"]] == pages_world


ARN = f"arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/svc-00000000000000000"

# (id, operation, parameters, members the message must name)
VALIDATION_CASES = [
    ("per-page-0", "get_resources", {"ResourcesPerPage": 0}, ["ResourcesPerPage"]),
    ("per-page-101", "get_resources", {"ResourcesPerPage": 101}, ["ResourcesPerPage"]),
    ("tags-per-page-99", "get_resources", {"TagsPerPage": 99}, ["TagsPerPage"]),
    ("every-member", "get_resources", {"ResourcesPerPage": 0, "TagsPerPage": 501, "TagFilters": [{"Values": ["x"]}]},
     ["ResourcesPerPage", "TagsPerPage", "TagFilters[0].Key"]),
    ("arns-and-tag-filters", "get_resources", {"ResourceARNList": [ARN], "TagFilters": [{"Key": "k"}]},
     ["TagFilters"]),
    ("arns-and-type-filters", "get_resources", {"ResourceARNList": [ARN], "ResourceTypeFilters": ["vpc-lattice"]},
     ["ResourceTypeFilters"]),
    ("arns-and-page-size", "get_resources", {"ResourceARNList": [ARN], "ResourcesPerPage": 5}, ["ResourcesPerPage"]),
    ("compliance-details", "get_resources", {"IncludeComplianceDetails": True}, ["IncludeComplianceDetails"]),
    ("unknown-lattice-type", "get_resources", {"ResourceTypeFilters": ["vpc-lattice:bogus"]},
     ["ResourceTypeFilters[0]"]),
    ("garbage-token", "get_resources", {"PaginationToken": "garbage"}, ["PaginationToken"]),
    ("too-many-values", "get_resources", {"TagFilters": [{"Key": "k", "Values": ["v"] * 21}]},
     ["TagFilters[0].Values"]),
    ("values-without-key", "get_tag_values", {}, ["Key"]),
    ("tag-nothing", "tag_resources", {"ResourceARNList": [], "Tags": {}}, ["ResourceARNList", "Tags"]),
    ("tag-21-arns", "tag_resources", {"ResourceARNList": [ARN] * 21, "Tags": {"k": "v"}}, ["ResourceARNList"]),
    ("tag-bad-arn-and-key", "tag_resources", {"ResourceARNList": ["not-an-arn"], "Tags": {"aws:x": "v"}},
     ["ResourceARNList[0]", "Tags.aws:x"]),
    ("tag-51", "tag_resources", {"ResourceARNList": [ARN], "Tags": {f"k{i}": "v" for i in range(51)}}, ["Tags"]),
    ("untag-no-keys", "untag_resources", {"ResourceARNList": [ARN], "TagKeys": []}, ["TagKeys"]),
    ("untag-long-key", "untag_resources", {"ResourceARNList": [ARN], "TagKeys": ["k" * 129]}, ["TagKeys[0]"]),
]


@pytest.mark.parametrize("op,params,members", [c[1:] for c in VALIDATION_CASES],
                         ids=[c[0] for c in VALIDATION_CASES])
def test_validation_errors_are_invalid_parameter(tagging, op, params, members):
    with pytest.raises(ClientError) as e:
        getattr(tagging, op)(**params)
    assert error_code(e) == "InvalidParameterException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = e.value.response["Error"]["Message"]
    n = len(members)
    assert message.startswith(f"{n} validation error{'s' if n > 1 else ''} detected"), message
    for m in members:
        assert f"'{m}'" in message, (m, message)


def raw_call(server, target, body, signing_name):
    """A POST / with `X-Amz-Target: target`, signed by botocore for `signing_name`: (status,
    content type, parsed body)."""
    req = AWSRequest(method="POST", url=server.endpoint + "/", data=json.dumps(body).encode(),
                     headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), signing_name, REGION).add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], json.loads(e.read())


# (id, operation, signing name, status, __type expected or None for success)
SIGNING_CASES = [
    ("signed-for-tagging", "GetTagKeys", "tagging", 200, None),
    ("signed-for-vpc-lattice", "GetTagKeys", "vpc-lattice", 403, "InvalidSignatureException"),
    ("signed-for-lambda", "TagResources", "lambda", 403, "InvalidSignatureException"),
    ("unknown-operation", "GetComplianceSummary", "tagging", 400, "InvalidParameterException"),
    ("unknown-operation-wrong-scope", "GetComplianceSummary", "vpc-lattice", 403, "InvalidSignatureException"),
]


@pytest.mark.parametrize("op,signing_name,status,code", [c[1:] for c in SIGNING_CASES],
                         ids=[c[0] for c in SIGNING_CASES])
def test_the_gate_resolves_the_target_to_tagging(server, op, signing_name, status, code):
    got_status, content_type, body = raw_call(server, f"{TARGET_PREFIX}.{op}", {}, signing_name)
    assert got_status == status, body
    assert content_type == "application/x-amz-json-1.1"
    if code is None:
        assert "__type" not in body and "TagKeys" in body
    else:
        assert body["__type"] == code
        message = body.get("Message", body.get("message"))
        assert message
        if code == "InvalidParameterException":
            assert op in message and "GetResources" in message


def test_unknown_operation_through_boto3(tagging):
    # A real client's operation that Trellis does not serve: botocore parses the awsJson error.
    with pytest.raises(ClientError) as e:
        tagging.get_compliance_summary()
    assert error_code(e) == "InvalidParameterException"
    assert "GetComplianceSummary" in e.value.response["Error"]["Message"]


def json_documents(text):
    """The JSON documents printed one after another in `text`."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return out
        doc, i = decoder.raw_decode(text, i)
        out.append(doc)


def test_readme_tagging_example_runs_as_written(server, lattice, tmp_path):
    p = run_readme_block(server, "tagging", tmp_path)
    billing = [s for s in lattice.list_services()["items"] if s["name"] == "billing"]
    assert len(billing) == 1
    try:
        assert tags_of(lattice, billing[0]["arn"]) == {"env": "prod", "team": "payments"}
        # The commands printed TagResources' answer, then GetResources' with the service in it.
        printed = json_documents(p.stdout)
        assert printed[0] == {"FailedResourcesMap": {}}
        assert billing[0]["arn"] in {m["ResourceARN"] for m in printed[-1]["ResourceTagMappingList"]}
    finally:
        lattice.delete_service(serviceIdentifier=billing[0]["id"])
