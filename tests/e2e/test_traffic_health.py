"""Active health checks and balancing, end to end: a target group with Lattice's shortest check
interval (5 s) and thresholds of 2 over two testbackends.

- A backend whose `/health` answers 503 is reported UNHEALTHY by ListTargets within
  interval x threshold and gets no more traffic; answering 200 again brings it back HEALTHY and into
  rotation.
- A backend process that is killed is bypassed at once: the request that fails to connect to it is
  retried on the other target, so no request fails; checks then mark it UNHEALTHY, and a restart on
  the same port brings it back.

Deadlines are bounded polls of ListTargets. Each allows one interval more than
interval x threshold, because a change made just after a check is first seen by the next one."""

from types import SimpleNamespace

import pytest

from backends import INGRESS, Caller, forwarding_service, ip_target_group, poll, target_statuses

INTERVAL_S = 5
HEALTHY_THRESHOLD = 2
UNHEALTHY_THRESHOLD = 2
CHECK = {"enabled": True, "protocol": "HTTP", "protocolVersion": "HTTP1", "path": "/health",
         "healthCheckIntervalSeconds": INTERVAL_S, "healthCheckTimeoutSeconds": 2,
         "healthyThresholdCount": HEALTHY_THRESHOLD, "unhealthyThresholdCount": UNHEALTHY_THRESHOLD,
         "matcher": {"httpCode": "200-299"}}
# A new target is HEALTHY after its first passing check; a change of state takes `threshold`
# consecutive checks. One interval of slack for the phase of the first check, one for a loaded machine.
FIRST_HEALTHY_S = INTERVAL_S * 2 + 5
TO_UNHEALTHY_S = INTERVAL_S * (UNHEALTHY_THRESHOLD + 1) + 5
TO_HEALTHY_S = INTERVAL_S * (HEALTHY_THRESHOLD + 1) + 5


def make_group(server, lattice, start_backend, prefix):
    one, two = start_backend(f"{prefix}-1"), start_backend(f"{prefix}-2")
    tg = ip_target_group(lattice, health_check=CHECK, targets=[one, two])
    svc, port = forwarding_service(server, lattice, tg)
    group = SimpleNamespace(tg=tg, one=one, two=two, caller=Caller(svc.dns_name, port))
    wait_status(lattice, group, one, "HEALTHY", FIRST_HEALTHY_S)
    wait_status(lattice, group, two, "HEALTHY", FIRST_HEALTHY_S)
    return group


def status_of(lattice, group, backend):
    return target_statuses(lattice, group.tg).get((INGRESS, backend.port))


def wait_status(lattice, group, backend, status, timeout):
    return poll(f"{backend.name} {status}",
                lambda: (s := status_of(lattice, group, backend)) and s[0] == status and s, timeout)


def backends_seen(group, n=40):
    seen = []
    for i in range(n):
        r = group.caller.request(f"/req/{i}")
        assert r.status == 200, (r.status, r.body)
        seen.append(r.backend)
    return seen


def test_unhealthy_target_leaves_rotation_and_comes_back(dp_server, dp_lattice, start_backend):
    g = make_group(dp_server, dp_lattice, start_backend, "flip")
    # Round robin over two healthy targets.
    assert set(backends_seen(g)) == {"flip-1", "flip-2"}

    g.one.set_health(503)
    status, reason = wait_status(dp_lattice, g, g.one, "UNHEALTHY", TO_UNHEALTHY_S)
    assert reason == "HealthCheckFailed"
    assert set(backends_seen(g)) == {"flip-2"}
    assert status_of(dp_lattice, g, g.two)[0] == "HEALTHY"

    g.one.set_health(200)
    wait_status(dp_lattice, g, g.one, "HEALTHY", TO_HEALTHY_S)
    seen = backends_seen(g)
    assert seen.count("flip-1") >= 10 and seen.count("flip-2") >= 10, seen


def test_all_unhealthy_fails_open(dp_server, dp_lattice, start_backend):
    g = make_group(dp_server, dp_lattice, start_backend, "open")
    g.one.set_health(500)
    g.two.set_health(500)
    wait_status(dp_lattice, g, g.one, "UNHEALTHY", TO_UNHEALTHY_S)
    wait_status(dp_lattice, g, g.two, "UNHEALTHY", TO_UNHEALTHY_S)
    # With no healthy target Lattice routes to all of them.
    assert set(backends_seen(g)) == {"open-1", "open-2"}
    g.one.set_health(200)
    g.two.set_health(200)


def test_killed_target_is_retried_elsewhere_then_marked_unhealthy(dp_server, dp_lattice, start_backend):
    g = make_group(dp_server, dp_lattice, start_backend, "kill")
    assert set(backends_seen(g)) == {"kill-1", "kill-2"}

    g.one.kill()
    # Before any check notices, round robin still picks the dead target for every other request:
    # each of those fails to connect and is retried on the live one. No request may fail.
    assert set(backends_seen(g, 60)) == {"kill-2"}
    wait_status(dp_lattice, g, g.one, "UNHEALTHY", TO_UNHEALTHY_S)
    assert set(backends_seen(g)) == {"kill-2"}

    g.one.start()  # same port
    wait_status(dp_lattice, g, g.one, "HEALTHY", TO_HEALTHY_S)
    assert set(backends_seen(g)) == {"kill-1", "kill-2"}


@pytest.mark.parametrize("check,expected", [
    ({"enabled": False}, "UNAVAILABLE"),
])
def test_status_without_checks(dp_server, dp_lattice, start_backend, check, expected):
    b = start_backend("unchecked")
    tg = ip_target_group(dp_lattice, health_check=check, targets=[b])
    svc, port = forwarding_service(dp_server, dp_lattice, tg)
    assert target_statuses(dp_lattice, tg)[(INGRESS, b.port)][0] == expected
    assert Caller(svc.dns_name, port).request("/").backend == "unchecked"
