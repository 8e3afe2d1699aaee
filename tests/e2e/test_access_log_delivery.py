"""Access logs delivered (issue 13, items 1–2; reference §8): `aws logs create-log-group`, an
access-log subscription of a service and one of its service network to Trellis-hosted log groups,
known traffic (HTTP/1.1, HTTP/2, a fixed 404, a denied request), then `aws logs filter-log-events`
with JSON filter patterns returns exactly the expected records, checked field by field; the
network's group receives the requests of every service in it; deleting a subscription stops
delivery; the CloudWatch Logs API's own shapes and errors (log groups, streams, PutLogEvents,
GetLogEvents, retention); and the `--access-log-file` JSON-lines sink.

Every wait is a bounded poll of observable state (the applied revision, the events a query
returns, the lines a file holds), never a sleep."""

import json
import os
import tempfile
import time
from types import SimpleNamespace

import urllib.request

import pytest
from botocore.exceptions import ClientError
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from backends import INGRESS, Caller, ServiceBuilder, curl, fixed, forward, free_port, ip_target_group, \
    path_prefix, wait_until_applied
from conftest import ACCOUNT, REGION, error_code, unique

ACCESS_LOG_FILE = os.path.join(tempfile.mkdtemp(prefix="trellis-access-log-"), "access.jsonl")
# Retention rounds every second, so that the retention test sees expired events go.
SERVER_ARGS = ["--access-log-file", ACCESS_LOG_FILE, "--log-retention-interval", "1"]
WAIT_S = 30

# Every member of Lattice's service access-log record (reference §8.2), in its order.
RECORD_FIELDS = [
    "startTime", "serviceNetworkArn", "serviceArn", "targetGroupArn", "listenerId", "listenerType",
    "sourceVpcId", "sourceVpcArn", "destinationVpcId", "sourceIpPort", "targetIpPort", "hostHeader",
    "serverNameIndication", "sslCipher", "tlsVersion", "requestMethod", "requestPath", "protocol",
    "userAgent", "responseCode", "grpcResponseCode", "bytesReceived", "bytesSent", "duration",
    "requestToTargetDuration", "responseFromTargetDuration", "requestId", "resolvedUser",
    "authDeniedReason", "failureReason", "callerPrincipal", "callerPrincipalOrgID", "callerPrincipalTags",
    "callerX509SubjectCN", "callerX509IssuerOU", "callerX509SANNameCN", "callerX509SANDNS", "callerX509SANURI",
]


def group_arn(name):
    return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"


def wait_for(fetch, done, what):
    """Polls `fetch()` until `done(result)` (bounded); returns the last result."""
    deadline = time.monotonic() + WAIT_S
    while True:
        got = fetch()
        if done(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {got!r}")
        time.sleep(0.1)


def filter_events(server, group, pattern=""):
    """`aws logs filter-log-events` (the CLI follows nextToken itself): the events' records."""
    out = server.cli("filter-log-events", "--log-group-name", group, "--filter-pattern", pattern, service="logs")
    return [json.loads(e["message"]) for e in out["events"]]


@pytest.fixture(scope="module")
def env(dp_server, dp_lattice, start_backend):
    lattice = dp_lattice
    # One file for the module, whose server runs once per store backend: each run starts it
    # empty (the server appends; the previous backend's server has stopped).
    open(ACCESS_LOG_FILE, "w").close()
    backend = start_backend("logs")
    tg = ip_target_group(lattice, health_check={"enabled": False}, targets=[backend])
    svc = ServiceBuilder(lattice)
    port = free_port()
    listener = svc.listener("HTTP", port, forward((tg, 1)))
    svc.rule(listener, 10, path_prefix("/fixed"), fixed(404))
    # A second service in the same network, AWS_IAM with no auth policy: everything is denied.
    denied = ServiceBuilder(lattice, auth_type="AWS_IAM", associate=False)
    lattice.create_service_network_service_association(serviceNetworkIdentifier=svc.sn["id"],
                                                       serviceIdentifier=denied.svc["id"])
    denied_listener = denied.listener("HTTP", port, fixed(404))

    svc_group, net_group = unique("/trellis/svc"), unique("/trellis/net")
    for g in (svc_group, net_group):
        dp_server.cli("create-log-group", "--log-group-name", g, service="logs")
    svc_sub = dp_server.cli("create-access-log-subscription", "--resource-identifier", svc.svc["id"],
                            "--destination-arn", group_arn(svc_group))
    net_sub = dp_server.cli("create-access-log-subscription", "--resource-identifier", svc.sn["arn"],
                            "--destination-arn", group_arn(net_group))
    wait_until_applied(dp_server)

    caller = Caller(svc.dns_name, port)
    responses = {}
    try:
        for path in ("/ok", "/fixed/one"):
            responses[path] = caller.request(path, headers={"User-Agent": "trellis-e2e/1"})
    finally:
        caller.close()
    status, version, _ = curl(f"http://{svc.dns_name}:{port}/fixed/h2", "--http2-prior-knowledge",
                              "-A", "trellis-e2e/2", resolve=f"{svc.dns_name}:{port}:{INGRESS}")
    assert (status, version) == (404, "2")
    d = Caller(denied.dns_name, port)
    try:
        responses["denied"] = d.request("/secret", headers={"User-Agent": "trellis-e2e/3"})
    finally:
        d.close()
    assert responses["/ok"].status == 200 and responses["/fixed/one"].status == 404
    assert responses["denied"].status == 403
    return SimpleNamespace(server=dp_server, lattice=lattice, svc=svc, denied=denied, tg=tg, backend=backend,
                           port=port, listener=listener, denied_listener=denied_listener, svc_group=svc_group,
                           net_group=net_group, svc_sub=svc_sub, net_sub=net_sub, responses=responses)


def test_filter_pattern_returns_exactly_the_404s_field_by_field(env):
    records = wait_for(lambda: filter_events(env.server, env.svc_group, "{ $.responseCode = 404 }"),
                       lambda r: len(r) >= 2, "the two 404 records")
    assert len(records) == 2
    by_path = {r["requestPath"]: r for r in records}
    assert set(by_path) == {"/fixed/one", "/fixed/h2"}
    for path, protocol, agent in (("/fixed/one", "HTTP/1.1", "trellis-e2e/1"), ("/fixed/h2", "HTTP/2", "trellis-e2e/2")):
        r = by_path[path]
        assert list(r) == RECORD_FIELDS
        assert r["serviceArn"] == env.svc.svc["arn"]
        assert r["serviceNetworkArn"] == env.svc.sn["arn"]
        assert (r["listenerId"], r["listenerType"]) == (env.listener["id"], "HTTP")
        assert r["hostHeader"].split(":")[0] == env.svc.dns_name
        assert (r["requestMethod"], r["protocol"], r["userAgent"]) == ("GET", protocol, agent)
        assert r["responseCode"] == 404
        assert r["sourceIpPort"].startswith(f"{INGRESS}:")
        # A fixed response never reaches a target group.
        assert (r["targetGroupArn"], r["targetIpPort"]) == ("-", "-")
        assert (r["requestToTargetDuration"], r["responseFromTargetDuration"]) == (0, 0)
        assert r["failureReason"] == r["authDeniedReason"] == r["resolvedUser"] == "-"
        assert r["serverNameIndication"] == r["sslCipher"] == r["tlsVersion"] == "-"
        assert r["sourceVpcId"] == r["sourceVpcArn"] == r["destinationVpcId"] == "-"
        assert isinstance(r["duration"], int) and r["duration"] >= 0
        # Head and body bytes: a GET without a body, a 404 with an empty one.
        assert isinstance(r["bytesReceived"], int) and r["bytesReceived"] > len(path)
        assert isinstance(r["bytesSent"], int) and r["bytesSent"] > len("HTTP/1.1 404 Not Found")
        assert len(r["startTime"]) == 20 and r["startTime"].endswith("Z")
        assert r["requestId"] != "-"
    assert by_path["/fixed/one"]["requestId"] == env.responses["/fixed/one"].headers["x-amzn-requestid"]


def test_forwarded_request_names_its_target(env):
    [r] = wait_for(lambda: filter_events(env.server, env.svc_group, '{ $.requestPath = "/ok" }'),
                   lambda r: len(r) >= 1, "the forwarded record")
    assert r["responseCode"] == 200
    assert r["targetGroupArn"] == env.tg["arn"]
    assert r["targetIpPort"] == f"{env.backend.target()['id']}:{env.backend.target()['port']}"
    assert r["requestId"] == env.responses["/ok"].headers["x-amzn-requestid"]
    assert r["bytesSent"] > len(env.responses["/ok"].body)
    assert isinstance(r["responseFromTargetDuration"], int)
    # A GET has no body to time towards the target.
    assert r["requestToTargetDuration"] == "-"


@pytest.mark.parametrize("pattern, paths", [
    ("", {"/ok", "/fixed/one", "/fixed/h2"}),
    ("{ $.responseCode >= 200 && $.responseCode < 300 }", {"/ok"}),
    ('{ $.protocol = "HTTP/2" }', {"/fixed/h2"}),
    ('{ $.requestPath = "/fixed*" && $.protocol = "HTTP/1.1" }', {"/fixed/one"}),
    ('{ $.responseCode = 200 || $.userAgent = "*/2" }', {"/ok", "/fixed/h2"}),
    ("fixed", {"/fixed/one", "/fixed/h2"}),
    ("{ $.responseCode = 503 }", set()),
])
def test_filter_patterns(env, pattern, paths):
    wait_for(lambda: filter_events(env.server, env.svc_group), lambda r: len(r) >= 3, "the service's records")
    assert {r["requestPath"] for r in filter_events(env.server, env.svc_group, pattern)} == paths


def test_network_subscription_receives_every_service_in_it(env):
    records = wait_for(lambda: filter_events(env.server, env.net_group), lambda r: len(r) >= 4,
                       "the network's records")
    assert len(records) == 4
    assert {r["serviceNetworkArn"] for r in records} == {env.svc.sn["arn"]}
    [denied] = [r for r in records if r["serviceArn"] == env.denied.svc["arn"]]
    assert (denied["responseCode"], denied["requestPath"]) == (403, "/secret")
    assert denied["failureReason"] == "ClientAccessDenied"
    assert denied["authDeniedReason"] == "Service"
    assert denied["resolvedUser"] == "Anonymous"
    assert (denied["targetIpPort"], denied["requestToTargetDuration"]) == ("-", 0)
    # The service's own group does not get the other service's requests.
    assert all(r["serviceArn"] == env.svc.svc["arn"] for r in filter_events(env.server, env.svc_group))
    # Streams are named after the subscribed resource.
    streams = env.server.cli("describe-log-streams", "--log-group-name", env.net_group, service="logs")
    assert [s["logStreamName"] for s in streams["logStreams"]] == [env.svc.sn["id"]]


def file_lines():
    try:
        with open(ACCESS_LOG_FILE) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def delivery_metrics(server):
    """{(sample name, destination): value} of the trellis_access_log_* series."""
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("trellis_access_log_"):
            for s in family.samples:
                out[(s.name, s.labels.get("destination"))] = s.value
    return out


def test_access_log_file_gets_every_request(env):
    records = wait_for(file_lines, lambda r: len(r) >= 4, "four lines in the access-log file")
    assert len(records) == 4
    assert all(list(r) == RECORD_FIELDS for r in records)
    assert sorted(r["requestPath"] for r in records) == ["/fixed/h2", "/fixed/one", "/ok", "/secret"]


def test_delivery_metrics_count_what_was_written(env):
    wait_for(file_lines, lambda r: len(r) >= 4, "the file sink's lines")
    # The counters and the file agree once the file's queue is empty; nothing was dropped.
    m = wait_for(lambda: delivery_metrics(env.server),
                 lambda m: m.get(("trellis_access_log_delivered_total", "file")) == len(file_lines())
                 and m.get(("trellis_access_log_queued", "file")) == 0, "the file sink's counters")
    assert m[("trellis_access_log_accepted_total", "file")] == m[("trellis_access_log_delivered_total", "file")]
    assert m.get(("trellis_access_log_delivered_total", "log-group"), 0) >= 7
    for kind in ("file", "log-group"):
        assert m.get(("trellis_access_log_dropped_total", kind), 0) == 0
        assert m.get(("trellis_access_log_failed_total", kind), 0) == 0


def test_retention_deletes_expired_events(env):
    logs = env.server.client("logs")
    name = unique("/trellis/retention")
    logs.create_log_group(logGroupName=name)
    logs.create_log_stream(logGroupName=name, logStreamName="s")
    now = int(time.time() * 1000)
    ten_days = 10 * 86_400_000
    logs.put_log_events(logGroupName=name, logStreamName="s",
                        logEvents=[{"timestamp": now - ten_days, "message": "old"}, {"timestamp": now, "message": "new"}])
    assert [e["message"] for e in logs.filter_log_events(logGroupName=name)["events"]] == ["old", "new"]
    logs.put_retention_policy(logGroupName=name, retentionInDays=7)
    wait_for(lambda: [e["message"] for e in logs.filter_log_events(logGroupName=name)["events"]],
             lambda m: m == ["new"], "the expired event to go")
    logs.delete_log_group(logGroupName=name)


def test_deleting_the_subscription_stops_delivery(env):
    server = env.server
    group = unique("/trellis/stop")
    server.cli("create-log-group", "--log-group-name", group, service="logs")
    sub = server.cli("create-access-log-subscription", "--resource-identifier", env.denied.svc["id"],
                     "--destination-arn", group_arn(group) + ":*")
    wait_until_applied(server)
    c = Caller(env.denied.dns_name, env.port)
    try:
        assert c.request("/before").status == 403
        wait_for(lambda: filter_events(server, group), lambda r: len(r) == 1, "the record before deletion")
        server.cli("delete-access-log-subscription", "--access-log-subscription-identifier", sub["id"])
        wait_until_applied(server)
        assert c.request("/after").status == 403
    finally:
        c.close()
    # The network's group got /after, so the pipeline has handled it, and every log-group queue
    # is empty; the deleted subscription's group did not get it.
    wait_for(lambda: filter_events(server, env.net_group, '{ $.requestPath = "/after" }'), lambda r: len(r) == 1,
             "the network's record of /after")
    wait_for(lambda: delivery_metrics(server), lambda m: m.get(("trellis_access_log_queued", "log-group")) == 0
             and m[("trellis_access_log_accepted_total", "log-group")]
             == m[("trellis_access_log_delivered_total", "log-group")], "empty log-group queues")
    assert [r["requestPath"] for r in filter_events(server, group)] == ["/before"]
    server.client("logs").delete_log_group(logGroupName=group)


def test_log_group_lifecycle_and_errors(env):
    logs = env.server.client("logs")
    name = unique("/trellis/api")
    logs.create_log_group(logGroupName=name)
    with pytest.raises(ClientError) as e:
        logs.create_log_group(logGroupName=name)
    assert error_code(e) == "ResourceAlreadyExistsException"
    [g] = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    assert g["logGroupName"] == name and g["arn"] == group_arn(name) + ":*"
    assert g["logGroupArn"] == group_arn(name) and "retentionInDays" not in g
    for ids in ([name], [group_arn(name)], [group_arn(name) + ":*", unique("/absent")]):
        assert [g["logGroupName"] for g in logs.describe_log_groups(logGroupIdentifiers=ids)["logGroups"]] == [name]
    logs.put_retention_policy(logGroupName=name, retentionInDays=7)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["retentionInDays"] == 7
    with pytest.raises(ClientError) as e:
        logs.put_retention_policy(logGroupName=name, retentionInDays=8)
    assert error_code(e) == "InvalidParameterException"
    logs.delete_retention_policy(logGroupName=name)
    assert "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]

    logs.create_log_stream(logGroupName=name, logStreamName="app")
    with pytest.raises(ClientError) as e:
        logs.create_log_stream(logGroupName=name, logStreamName="app")
    assert error_code(e) == "ResourceAlreadyExistsException"
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=name, logStreamName="app",
                        logEvents=[{"timestamp": now + i, "message": f"line {i}"} for i in range(5)])
    got = logs.get_log_events(logGroupName=name, logStreamName="app", startFromHead=True, limit=3)
    assert [e["message"] for e in got["events"]] == ["line 0", "line 1", "line 2"]
    more = logs.get_log_events(logGroupName=name, logStreamName="app", nextToken=got["nextForwardToken"])
    assert [e["message"] for e in more["events"]] == ["line 3", "line 4"]
    newest = logs.get_log_events(logGroupName=name, logStreamName="app", limit=2)
    assert [e["message"] for e in newest["events"]] == ["line 3", "line 4"]
    page = logs.filter_log_events(logGroupName=name, limit=2)
    rest = logs.filter_log_events(logGroupName=name, nextToken=page["nextToken"])
    assert [e["message"] for e in page["events"] + rest["events"]] == [f"line {i}" for i in range(5)]
    assert "nextToken" not in rest
    assert [e["message"] for e in logs.filter_log_events(logGroupName=name, filterPattern="?3 ?4")["events"]] == \
        ["line 3", "line 4"]
    # startTime and endTime: FilterLogEvents includes both ends, GetLogEvents excludes endTime.
    assert [e["message"] for e in logs.filter_log_events(logGroupName=name, startTime=now + 1,
                                                         endTime=now + 3)["events"]] == ["line 1", "line 2", "line 3"]
    assert [e["message"] for e in logs.get_log_events(logGroupName=name, logStreamName="app", startTime=now + 1,
                                                      endTime=now + 3, startFromHead=True)["events"]] == \
        ["line 1", "line 2"]

    for call, code in (
        (lambda: logs.put_log_events(logGroupName=name, logStreamName="nope",
                                     logEvents=[{"timestamp": now, "message": "x"}]), "ResourceNotFoundException"),
        (lambda: logs.filter_log_events(logGroupName=unique("/missing")), "ResourceNotFoundException"),
        (lambda: logs.filter_log_events(logGroupName=name, filterPattern="{ $.a = "), "InvalidParameterException"),
        (lambda: logs.filter_log_events(logGroupName=name, filterPattern="x" * 1025), "InvalidParameterException"),
        (lambda: logs.filter_log_events(logGroupName=name, limit=10001), "InvalidParameterException"),
        (lambda: logs.describe_log_groups(limit=51), "InvalidParameterException"),
        (lambda: logs.create_log_group(logGroupName="bad name!"), "InvalidParameterException"),
        (lambda: logs.delete_log_group(logGroupName=unique("/missing")), "ResourceNotFoundException"),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == code

    logs.delete_log_group(logGroupName=name)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] == []
    # A group created again under the name starts empty.
    logs.create_log_group(logGroupName=name)
    assert logs.filter_log_events(logGroupName=name)["events"] == []
    logs.delete_log_group(logGroupName=name)


def test_tail_follow_polling_sees_new_requests(env):
    """What `aws logs tail --follow` does (AWS CLI v2's tail.py): FilterLogEvents with
    `startTime` and `interleaved`, repeated, de-duplicated by eventId."""
    logs = env.server.client("logs")
    start = int(time.time() * 1000) - 1000
    seen = {}

    def poll():
        kw = {"logGroupName": env.svc_group, "startTime": start, "interleaved": True}
        while True:
            out = logs.filter_log_events(**kw)
            for e in out["events"]:
                seen[e["eventId"]] = json.loads(e["message"])
            if "nextToken" not in out:
                return {r["requestPath"] for r in seen.values()}
            kw["nextToken"] = out["nextToken"]

    c = Caller(env.svc.dns_name, env.port)
    try:
        assert c.request("/fixed/tail").status == 404
    finally:
        c.close()
    wait_for(poll, lambda paths: "/fixed/tail" in paths, "the tailed request")


def test_https_request_records_sni_cipher_and_version(env):
    server, lattice = env.server, env.lattice
    svc = ServiceBuilder(lattice)
    tls_port = free_port()
    svc.listener("HTTPS", tls_port, fixed(404))
    group = unique("/trellis/tls")
    server.cli("create-log-group", "--log-group-name", group, service="logs")
    server.cli("create-access-log-subscription", "--resource-identifier", svc.svc["arn"],
               "--destination-arn", group_arn(group))
    wait_until_applied(server)
    for args, tls_version in ((["--tlsv1.3"], "TLSv1.3"), (["--tlsv1.2", "--tls-max", "1.2"], "TLSv1.2")):
        status, _, _ = curl(f"https://{svc.dns_name}:{tls_port}/tls/{tls_version}", "--http1.1", "--cacert",
                            server.ca_path, *args, resolve=f"{svc.dns_name}:{tls_port}:{INGRESS}")
        assert status == 404
    records = wait_for(lambda: filter_events(server, group), lambda r: len(r) == 2, "the two TLS records")
    by_version = {r["tlsVersion"]: r for r in records}
    assert set(by_version) == {"TLSv1.3", "TLSv1.2"}
    for version, r in by_version.items():
        assert r["requestPath"] == f"/tls/{version}"
        assert r["serverNameIndication"] == svc.dns_name
        assert (r["listenerType"], r["responseCode"]) == ("HTTPS", 404)
    assert by_version["TLSv1.3"]["sslCipher"].startswith("TLS_")
    assert by_version["TLSv1.2"]["sslCipher"].startswith("ECDHE-")


def test_iam_users_are_authorized_per_log_group(env):
    """`logs:*` actions on `arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*`, as IAM names them."""
    from test_iam import as_user, denied, new_user, refused, wait_identity

    server = env.server
    allowed = unique("/team-a/app")
    other = unique("/team-b/app")
    for g in (allowed, other):
        server.cli("create-log-group", "--log-group-name", g, service="logs")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["logs:FilterLogEvents", "logs:DescribeLogStreams"],
         "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/team-a/*"},
        {"Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"},
    ]}
    user, key = new_user(server, policy)
    wait_identity(server)
    logs = as_user(server, key, "logs")
    assert logs.filter_log_events(logGroupName=allowed)["events"] == []
    assert logs.describe_log_streams(logGroupIdentifier=group_arn(allowed))["logStreams"] == []
    assert {g["logGroupName"] for g in logs.describe_log_groups(logGroupNamePrefix="/team-")["logGroups"]} >= \
        {allowed, other}
    for call, action, group in (
        (lambda: logs.filter_log_events(logGroupName=other), "logs:FilterLogEvents", other),
        (lambda: logs.put_retention_policy(logGroupName=allowed, retentionInDays=1), "logs:PutRetentionPolicy",
         allowed),
        (lambda: logs.delete_log_group(logGroupName=allowed), "logs:DeleteLogGroup", allowed),
    ):
        with pytest.raises(ClientError) as e:
            call()
        code, message, http_status = refused(e)
        assert (code, http_status) == ("AccessDeniedException", 403)
        assert message == denied(user["Arn"], action, f"{group_arn(group)}:*")
    for g in (allowed, other):
        server.cli("delete-log-group", "--log-group-name", g, service="logs")


def test_grpc_calls_record_their_grpc_status(env, start_backend):
    import grpc

    server, lattice = env.server, env.lattice
    backend = start_backend("logs-grpc", protocol="h2c", grpc=True)
    tg = ip_target_group(lattice, protocol="HTTP", protocol_version="GRPC", health_check={"enabled": False},
                         targets=[backend])
    svc = ServiceBuilder(lattice)
    port = free_port()
    svc.listener("HTTPS", port, forward((tg, 1)))
    group = unique("/trellis/grpc")
    server.cli("create-log-group", "--log-group-name", group, service="logs")
    server.cli("create-access-log-subscription", "--resource-identifier", svc.svc["id"],
               "--destination-arn", group_arn(group))
    wait_until_applied(server)
    creds = grpc.ssl_channel_credentials(root_certificates=open(server.ca_path, "rb").read())
    options = [("grpc.ssl_target_name_override", svc.dns_name), ("grpc.default_authority", svc.dns_name)]
    with grpc.secure_channel(f"{INGRESS}:{port}", creds, options=options) as ch:
        assert ch.unary_unary("/test.Echo/Unary")(b"hi", timeout=20) == b"hi"
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary("/test.Echo/Fail")(b"x", metadata=(("x-grpc-status", "5"),), timeout=20)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    records = wait_for(lambda: filter_events(server, group), lambda r: len(r) == 2, "the two gRPC records")
    assert {(r["requestPath"], r["responseCode"], r["grpcResponseCode"], r["protocol"]) for r in records} == {
        ("/test.Echo/Unary", 200, 0, "HTTP/2"), ("/test.Echo/Fail", 200, 5, "HTTP/2")}
    [failed] = filter_events(server, group, "{ $.grpcResponseCode = 5 }")
    assert failed["requestPath"] == "/test.Echo/Fail"
    assert failed["targetGroupArn"] == tg["arn"]


def test_a_group_created_after_the_subscription_receives_from_then_on(env):
    """Subscribing to a log group that does not exist is accepted (docs/decisions.md); records
    are delivered once the group exists."""
    server = env.server
    group = unique("/trellis/later")
    sub = server.cli("create-access-log-subscription", "--resource-identifier", env.denied.svc["id"],
                     "--destination-arn", group_arn(group))
    wait_until_applied(server)
    c = Caller(env.denied.dns_name, env.port)
    try:
        assert c.request("/no-group-yet").status == 403
        # Handled: the network's group has it; every log-group queue is empty.
        wait_for(lambda: filter_events(server, env.net_group, '{ $.requestPath = "/no-group-yet" }'),
                 lambda r: len(r) == 1, "the network's record")
        server.cli("create-log-group", "--log-group-name", group, service="logs")
        wait_until_applied(server)
        assert c.request("/group-exists").status == 403
    finally:
        c.close()
    records = wait_for(lambda: filter_events(server, group), lambda r: len(r) >= 1, "the record after creation")
    assert [r["requestPath"] for r in records] == ["/group-exists"]
    server.cli("delete-access-log-subscription", "--access-log-subscription-identifier", sub["id"])
    server.cli("delete-log-group", "--log-group-name", group, service="logs")


def test_updating_the_destination_moves_delivery(env):
    server = env.server
    first, second = unique("/trellis/first"), unique("/trellis/second")
    for g in (first, second):
        server.cli("create-log-group", "--log-group-name", g, service="logs")
    sub = server.cli("create-access-log-subscription", "--resource-identifier", env.denied.svc["id"],
                     "--destination-arn", group_arn(first))
    wait_until_applied(server)
    c = Caller(env.denied.dns_name, env.port)
    try:
        assert c.request("/to-first").status == 403
        wait_for(lambda: filter_events(server, first), lambda r: len(r) == 1, "the first group's record")
        server.cli("update-access-log-subscription", "--access-log-subscription-identifier", sub["id"],
                   "--destination-arn", group_arn(second))
        wait_until_applied(server)
        assert c.request("/to-second").status == 403
    finally:
        c.close()
    wait_for(lambda: filter_events(server, second), lambda r: len(r) == 1, "the second group's record")
    wait_for(lambda: delivery_metrics(server), lambda m: m.get(("trellis_access_log_queued", "log-group")) == 0
             and m[("trellis_access_log_accepted_total", "log-group")]
             == m[("trellis_access_log_delivered_total", "log-group")], "empty log-group queues")
    assert [r["requestPath"] for r in filter_events(server, first)] == ["/to-first"]
    assert [r["requestPath"] for r in filter_events(server, second)] == ["/to-second"]
    server.cli("delete-access-log-subscription", "--access-log-subscription-identifier", sub["id"])
    for g in (first, second):
        server.cli("delete-log-group", "--log-group-name", g, service="logs")
