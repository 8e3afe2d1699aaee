"""`GET /metrics` after known traffic (issue 13, item 3; reference §9; docs/telemetry.md): the data
plane's per-service and per-target-group series under Lattice's names, with exact counts read
through a real OpenMetrics parser: 2xx from a backend, 404 fixed responses, 502 from a target that
refuses connections, 503 from a group with no targets, 504 from a target that never answers; `RequestTime` histogram counts equal to the
request counts; target health per target; the applied-revision lag and snapshot build time."""

import socket
import ssl
import time
import urllib.request
from types import SimpleNamespace

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from backends import INGRESS, Caller, ServiceBuilder, dig, fixed, forward, free_port, ip_target_group, \
    path_prefix, wait_until_applied

OK, FIXED, DEAD, EMPTY, SLOW = 5, 3, 2, 4, 1
# A target that sends no response head within the idle timeout gets 504 (RequestTimeoutCount).
SERVER_ARGS = ["--idle-timeout", "2"]


@pytest.fixture(scope="module")
def env(dp_server, dp_lattice, start_backend):
    lattice = dp_lattice
    backend = start_backend("metrics")
    no_checks = {"enabled": False}
    tg_ok = ip_target_group(lattice, health_check=no_checks, targets=[backend])
    tg_dead = ip_target_group(lattice, health_check=no_checks)
    # A target nothing listens on: every connection is refused (502, a connection error).
    lattice.register_targets(targetGroupIdentifier=tg_dead["id"], targets=[{"id": INGRESS, "port": free_port()}])
    tg_empty = ip_target_group(lattice, health_check=no_checks)
    # A target that accepts connections (the kernel's backlog) and never answers.
    silent = socket.socket()
    silent.bind((INGRESS, 0))
    silent.listen(16)
    tg_slow = ip_target_group(lattice, health_check=no_checks)
    lattice.register_targets(targetGroupIdentifier=tg_slow["id"],
                             targets=[{"id": INGRESS, "port": silent.getsockname()[1]}])
    svc = ServiceBuilder(lattice)
    port = free_port()
    listener = svc.listener("HTTP", port, forward((tg_ok, 1)))
    svc.rule(listener, 10, path_prefix("/fixed"), fixed(404))
    svc.rule(listener, 20, path_prefix("/dead"), forward((tg_dead, 1)))
    svc.rule(listener, 30, path_prefix("/empty"), forward((tg_empty, 1)))
    svc.rule(listener, 40, path_prefix("/slow"), forward((tg_slow, 1)))
    # A second service that receives no traffic: its series must not pick up the first's.
    quiet = ServiceBuilder(lattice)
    tg_quiet = ip_target_group(lattice, health_check=no_checks, targets=[backend])
    quiet.listener("HTTP", port, forward((tg_quiet, 1)))
    # A separate service with an HTTPS listener, for the client TLS handshake counts.
    tls_svc = ServiceBuilder(lattice)
    tls_port = free_port()
    tls_svc.listener("HTTPS", tls_port, fixed(404))
    wait_until_applied(dp_server)

    statuses = []
    for path, n in (("/", OK), ("/fixed/x", FIXED), ("/dead", DEAD), ("/empty", EMPTY), ("/slow", SLOW)):
        for _ in range(n):
            caller = Caller(svc.dns_name, port)
            try:
                statuses.append((path, caller.request(path).status))
            finally:
                caller.close()
    # A request for no known service counts on no service.
    caller = Caller("unknown.example.com", port)
    try:
        statuses.append(("unknown", caller.request("/").status))
    finally:
        caller.close()
    return SimpleNamespace(server=dp_server, svc=svc, tls_svc=tls_svc, tls_port=tls_port, silent=silent, tg_slow=tg_slow, quiet=quiet, tg_ok=tg_ok, tg_dead=tg_dead,
                           tg_empty=tg_empty, backend=backend, statuses=statuses)


def scrape(server):
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["content-type"].startswith("application/openmetrics-text")
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families, family, sample, **labels):
    """The one sample `sample` of `family` whose labels include `labels` (0 when absent)."""
    found = [s.value for s in families[family].samples
             if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, (family, sample, labels, found)
    return found[0] if found else 0


def test_traffic_had_the_expected_statuses(env):
    expected = [("/", 200)] * OK + [("/fixed/x", 404)] * FIXED + [("/dead", 502)] * DEAD + \
        [("/empty", 503)] * EMPTY + [("/slow", 504)] * SLOW + [("unknown", 404)]
    assert env.statuses == expected


def test_service_counts_by_status_class(env):
    m = scrape(env.server)
    svc = env.svc.svc["id"]
    fam, total = "trellis_lattice_service_requests", "trellis_lattice_service_requests_total"
    assert value(m, fam, total, service=svc, code="2XX") == OK
    assert value(m, fam, total, service=svc, code="3XX") == 0
    assert value(m, fam, total, service=svc, code="4XX") == FIXED
    assert value(m, fam, total, service=svc, code="5XX") == DEAD + EMPTY + SLOW
    # TotalRequestCount is the sum over the classes.
    assert sum(s.value for s in m[fam].samples if s.labels["service"] == svc) == OK + FIXED + DEAD + EMPTY + SLOW
    # The quiet service and the unknown name counted nothing.
    assert all(s.labels["service"] == svc for s in m[fam].samples)
    assert value(m, "trellis_lattice_service_request_timeouts", "trellis_lattice_service_request_timeouts_total",
                 service=svc) == SLOW


def test_service_request_time_histogram(env):
    m = scrape(env.server)
    svc = env.svc.svc["id"]
    fam = "trellis_lattice_service_request_time_milliseconds"
    n = OK + FIXED + DEAD + EMPTY + SLOW
    assert value(m, fam, fam + "_count", service=svc) == n
    assert value(m, fam, fam + "_bucket", service=svc, le="+Inf") == n
    assert value(m, fam, fam + "_sum", service=svc) > 0
    # Buckets are cumulative.
    buckets = sorted((float(s.labels["le"]), s.value) for s in m[fam].samples
                     if s.name == fam + "_bucket" and s.labels["service"] == svc)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)


def test_target_group_counts(env):
    m = scrape(env.server)
    fam, total = "trellis_lattice_target_group_requests", "trellis_lattice_target_group_requests_total"
    time = "trellis_lattice_target_group_request_time_milliseconds"
    for tg, code, n in ((env.tg_ok, "2XX", OK), (env.tg_dead, "5XX", DEAD), (env.tg_empty, "5XX", EMPTY),
                        (env.tg_slow, "5XX", SLOW)):
        tg_id = tg["id"]
        assert value(m, fam, total, target_group=tg_id, code=code) == n, tg["name"]
        assert sum(s.value for s in m[fam].samples if s.labels["target_group"] == tg_id) == n
        assert value(m, time, time + "_count", target_group=tg_id) == n
        assert value(m, "trellis_lattice_target_group_active_requests",
                     "trellis_lattice_target_group_active_requests", target_group=tg_id) == 0
    # Fixed responses reach no target group.
    assert {s.labels["target_group"] for s in m[fam].samples} == {env.tg_ok["id"], env.tg_dead["id"],
                                                                  env.tg_empty["id"], env.tg_slow["id"]}


def test_connection_errors(env):
    m = scrape(env.server)
    fam = "trellis_lattice_target_group_connection_errors"
    # A refused connection per request (one target: no retry elsewhere); a group with no targets
    # never connects.
    assert value(m, fam, fam + "_total", target_group=env.tg_dead["id"]) == DEAD
    assert value(m, fam, fam + "_total", target_group=env.tg_ok["id"]) == 0
    assert value(m, fam, fam + "_total", target_group=env.tg_empty["id"]) == 0
    # The silent target was connected to (one HTTP/1.1 connection); only its response timed out.
    assert value(m, fam, fam + "_total", target_group=env.tg_slow["id"]) == 0
    # Connections opened to targets: HTTP/1.1 to the backend (pooled, so at least one and at most
    # one per request), none where the connect failed or nothing was connected to.
    conns, conns_total = "trellis_lattice_target_group_connections", "trellis_lattice_target_group_connections_total"
    assert 1 <= value(m, conns, conns_total, target_group=env.tg_ok["id"], protocol="HTTP1") <= OK
    assert value(m, conns, conns_total, target_group=env.tg_ok["id"], protocol="HTTP2") == 0
    assert value(m, conns, conns_total, target_group=env.tg_slow["id"], protocol="HTTP1") == SLOW
    for tg in (env.tg_dead, env.tg_empty):
        assert sum(s.value for s in m[conns].samples if s.labels["target_group"] == tg["id"]) == 0
    timeouts = "trellis_lattice_target_group_connection_timeouts"
    assert value(m, timeouts, timeouts + "_total", target_group=env.tg_dead["id"]) == 0


def test_target_health_per_target(env):
    m = scrape(env.server)
    fam = "trellis_lattice_target_health"
    ok = [s for s in m[fam].samples if s.labels["target_group"] == env.tg_ok["id"]]
    # Health checks are off: the target is UNAVAILABLE, ListTargets' status.
    assert [(s.labels["target"], s.labels["state"], s.value) for s in ok] == [
        (f"{INGRESS}:{env.backend.port}", "UNAVAILABLE", 1)]
    assert not [s for s in m[fam].samples if s.labels["target_group"] == env.tg_empty["id"]]


def test_control_plane_series(env):
    wait_until_applied(env.server)
    m = scrape(env.server)
    assert value(m, "trellis_applied_revision_lag", "trellis_applied_revision_lag") == 0
    fam = "trellis_snapshot_build_seconds"
    assert value(m, fam, fam + "_count") >= 1


def wait_for(read, expected, timeout=10):
    """Polls `read()` until it returns `expected` (bounded); returns the last value read. For
    counts the server updates after the client has seen the outcome (a handshake the client
    aborted)."""
    deadline = time.monotonic() + timeout
    while True:
        got = read()
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_client_tls_handshakes(env):
    fam = "trellis_lattice_tls_handshakes"
    errors = "trellis_lattice_tls_connection_errors"
    before = scrape(env.server)
    ok0 = value(before, fam, fam + "_total")
    err0 = value(before, errors, errors + "_total")
    for _ in range(2):
        caller = Caller(env.tls_svc.dns_name, env.tls_port, tls=True, ca=env.server.ca_path)
        try:
            assert caller.request("/").status == 404
        finally:
            caller.close()
    # A client that does not trust Trellis's CA aborts the handshake.
    ctx = ssl.create_default_context()
    with socket.create_connection((INGRESS, env.tls_port), timeout=10) as sock:
        with pytest.raises(ssl.SSLError):
            ctx.wrap_socket(sock, server_hostname=env.tls_svc.dns_name)
    after = scrape(env.server)
    assert value(after, fam, fam + "_total") == ok0 + 2
    got = wait_for(lambda: value(scrape(env.server), errors, errors + "_total"), err0 + 1)
    assert got == err0 + 1
    # The TLS service's fixed responses count on it.
    svc = env.tls_svc.svc["id"]
    assert value(after, "trellis_lattice_service_requests", "trellis_lattice_service_requests_total",
                 service=svc, code="4XX") == 2


def test_dns_queries(env):
    fam = "trellis_dns_queries"

    def counts():
        m = scrape(env.server)
        return {rcode: value(m, fam, fam + "_total", rcode=rcode) for rcode in ("NOERROR", "NXDOMAIN", "REFUSED")}

    before = counts()
    assert dig(env.server, env.svc.dns_name) == [INGRESS]
    assert dig(env.server, env.svc.dns_name) == [INGRESS]
    # A name in no zone Trellis serves.
    dig(env.server, "example.com")
    after = counts()
    assert after["NOERROR"] - before["NOERROR"] == 2
    assert after["REFUSED"] - before["REFUSED"] == 1
    assert after["NXDOMAIN"] == before["NXDOMAIN"]
