"""Configuration changes under a bounded concurrent load: 4 client threads, each on one keep-alive
connection, send at least 300 requests each (and keep going until the last change is applied) while
the main thread makes 20 changes through the API — default-action weights, rule actions, matches and
priorities, a rule created and deleted, a target registered and later deregistered — waiting for
each to be applied. No request may fail: every one gets a 200 from some target."""

import threading
from collections import Counter

from backends import Caller, ServiceBuilder, forward, free_port, ip_target_group, path_prefix, wait_until_applied

THREADS = 4
MIN_REQUESTS = 300
CHANGES = 20


def test_changes_under_load_fail_no_request(dp_server, dp_lattice, start_backend):
    lattice = dp_lattice
    a, b, c = start_backend("load-a"), start_backend("load-b"), start_backend("load-c")
    tg_a = ip_target_group(lattice, health_check={"enabled": False}, targets=[a])
    tg_b = ip_target_group(lattice, health_check={"enabled": False}, targets=[b])
    svc = ServiceBuilder(lattice)
    port = free_port()
    listener = svc.listener("HTTP", port, forward((tg_a, 1), (tg_b, 1)))
    api_rule = svc.rule(listener, 10, path_prefix("/api"), forward((tg_a, 1)))
    ids = {"serviceIdentifier": svc.svc["id"], "listenerIdentifier": listener["id"]}
    wait_until_applied(dp_server)

    done = threading.Event()
    started = threading.Barrier(THREADS + 1, timeout=60)
    failures, served = [], Counter()
    lock = threading.Lock()

    def load(n):
        caller = Caller(svc.dns_name, port)
        count = 0
        try:
            while count < MIN_REQUESTS or not done.is_set():
                path = "/api/x" if count % 2 else f"/page/{n}"
                try:
                    r = caller.request(path)
                    outcome = r.backend if r.status == 200 else f"status {r.status}: {r.body[:200]!r}"
                except Exception as e:  # noqa: BLE001 - every failure is counted, none retried
                    outcome = f"error {type(e).__name__}: {e}"
                with lock:
                    if outcome and outcome.startswith(("status", "error")):
                        failures.append(outcome)
                    else:
                        served[outcome] += 1
                count += 1
                if count == 1:
                    started.wait()
        finally:
            caller.close()

    threads = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(THREADS)]
    for t in threads:
        t.start()
    started.wait()

    extra_rule = None
    for i in range(CHANGES):
        step = i % 5
        if step == 0:
            lattice.update_listener(**ids, defaultAction=forward((tg_a, 1 + i), (tg_b, 20 - i)))
        elif step == 1:
            lattice.update_rule(**ids, ruleIdentifier=api_rule["id"],
                                action=forward((tg_b, 1)) if i % 2 else forward((tg_a, 3), (tg_b, 1)))
        elif step == 2:
            lattice.update_rule(**ids, ruleIdentifier=api_rule["id"], match=path_prefix("/api" if i % 2 else "/ap"),
                                priority=10 + i)
        elif step == 3:
            if extra_rule is None:
                extra_rule = svc.rule(listener, 5, path_prefix("/page/0"), forward((tg_b, 1)))
            else:
                lattice.delete_rule(**ids, ruleIdentifier=extra_rule["id"])
                extra_rule = None
        else:
            if i == 4:
                lattice.register_targets(targetGroupIdentifier=tg_a["id"], targets=[c.target()])
            elif i == 14:
                lattice.deregister_targets(targetGroupIdentifier=tg_a["id"], targets=[c.target()])
            else:
                lattice.update_listener(**ids, defaultAction=forward((tg_a, 0), (tg_b, 1)))
        wait_until_applied(dp_server)
    done.set()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a load thread did not finish"

    assert failures == [], f"{len(failures)} failed requests, first: {failures[:5]}"
    assert sum(served.values()) >= THREADS * MIN_REQUESTS
    assert set(served) <= {"load-a", "load-b", "load-c"}

    # The last configuration is in force: the default action sends everything to load-b.
    lattice.update_listener(**ids, defaultAction=forward((tg_a, 0), (tg_b, 1)))
    wait_until_applied(dp_server)
    caller = Caller(svc.dns_name, port)
    assert {caller.request(f"/page/final{i}").backend for i in range(20)} == {"load-b"}
    caller.close()
