"""Deregistration draining, end to end: a slow request is in flight on a target when the target is
deregistered. ListTargets shows it DRAINING, new requests go to the other target, the slow request
completes, and after the deregistration delay (shortened with `--deregistration-delay`) the target
is gone from ListTargets.

The slow request is held by the backend itself (`/slow-stream?wait=KEY` sends one chunk, then waits
for `POST /_control/release?key=KEY`), so the test decides when it ends instead of timing it.
Health checks are disabled on the group: real-world reports say Lattice kept sending traffic to
draining targets in exactly that case (reference §12)."""

import http.client
import uuid

from backends import INGRESS, Caller, forwarding_service, ip_target_group, poll, target_statuses, wait_until_applied

DELAY_S = 5
SERVER_ARGS = ["--deregistration-delay", str(DELAY_S)]


def test_deregistered_target_drains(dp_server, dp_lattice, start_backend):
    lattice = dp_lattice
    one, two = start_backend("drain-1"), start_backend("drain-2")
    by_name = {one.name: one, two.name: two}
    tg = ip_target_group(lattice, health_check={"enabled": False}, targets=[one, two])
    svc, port = forwarding_service(dp_server, lattice, tg)

    key = uuid.uuid4().hex
    slow = http.client.HTTPConnection(INGRESS, port, timeout=60)
    slow.request("GET", f"/slow-stream?chunks=3&interval_ms=1&wait={key}", headers={"Host": svc.dns_name})
    resp = slow.getresponse()
    assert resp.status == 200
    assert resp.readline() == b"chunk 0\n"  # the request has reached its target and is held there
    busy = by_name[resp.getheader("x-backend")]
    idle = two if busy is one else one

    lattice.deregister_targets(targetGroupIdentifier=tg["id"], targets=[busy.target()])
    wait_until_applied(dp_server)
    statuses = target_statuses(lattice, tg)
    assert statuses.get((INGRESS, busy.port), (None,))[0] == "DRAINING", \
        f"ListTargets must list a deregistered target as DRAINING for the delay: {statuses}"
    assert statuses[(INGRESS, idle.port)][0] == "UNAVAILABLE", statuses

    caller = Caller(svc.dns_name, port)
    assert {caller.request(f"/after/{i}").backend for i in range(20)} == {idle.name}

    busy.release(key)
    assert resp.read() == b"chunk 1\nchunk 2\n"
    slow.close()

    # Gone once the delay is over (bounded poll: the delay plus slack for a loaded machine).
    poll("the drained target to disappear",
         lambda: (INGRESS, busy.port) not in target_statuses(lattice, tg), DELAY_S + 15)
    assert {caller.request("/later").backend for _ in range(10)} == {idle.name}
    caller.close()
