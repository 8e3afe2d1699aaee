"""The launch walkthrough, reproducible: `examples/launch-walkthrough/run.sh` run as the README tells a
new user to run it, against a data-plane server (only the endpoint, DNS address, data dir, ports and
credentials overridden through the script's environment). It starts the post's Flask app, deploys the
post's Node.js function with `aws lambda create-function`, builds the service (HTTPS listener, 20/10
default action, rules 10 `/to-instance` and 20 `/to-function`, a service network), calls it through
the generated name resolved by Trellis's DNS, and checks the split against binomial bounds itself
(`--check`). The tests check its exit status, what it printed, and that it left nothing behind —
also across a `--keep` run, a second run beside it and `--cleanup`."""

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from backends import free_port
from conftest import ROOT, binomial_bounds

SCRIPT = os.path.join(ROOT, "examples", "launch-walkthrough", "run.sh")
# The walkthrough's server is `cargo run --release -- serve`: no development mode.
OPEN_NETWORK = False
PREFIX = "walkthrough-"


def run_walkthrough(server, cwd, *args, **settings):
    """Runs run.sh ARGS with the server's endpoint, DNS, data dir and credentials; `settings` are
    further environment overrides (LISTENER_PORT, APP_PORT, REQUESTS, …)."""
    host, port = server.dns_address()
    env = server.cli_env()
    env.update(TRELLIS_ENDPOINT=server.endpoint, TRELLIS_DNS=f"{host}:{port}", TRELLIS_DATA_DIR=server.data_dir,
               PYTHON=sys.executable)
    env.update({k: str(v) for k, v in settings.items()})
    p = subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=280)
    return p


def explain(p):
    return f"exit {p.returncode}\n--- stdout\n{p.stdout[-6000:]}\n--- stderr\n{p.stderr[-3000:]}"


def split(out):
    """(instance, function) counts and percentages from the split table run.sh prints."""
    rows = dict(re.findall(r"^  (instance|function|errors) +(\d+) +[\d.]+%$", out, re.M))
    pcts = dict(re.findall(r"^  (instance|function) +\d+ +([\d.]+)%$", out, re.M))
    return rows, pcts


def leftovers(server):
    lattice, lam = server.client(), server.client("lambda")
    names = [s["name"] for s in lattice.list_services()["items"]]
    names += [t["name"] for t in lattice.list_target_groups()["items"]]
    names += [n["name"] for n in lattice.list_service_networks()["items"]]
    names += [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    names += [t["Value"] for v in server.client("ec2").describe_vpcs()["Vpcs"] for t in v.get("Tags", [])
              if t["Key"] == "Name"]
    return [n for n in names if n.startswith(PREFIX)]


def test_walkthrough_runs_and_splits_two_to_one(dp_server, tmp_path):
    n = 300
    p = run_walkthrough(dp_server, tmp_path, "--check", LISTENER_PORT=free_port(), APP_PORT=free_port(),
                        REQUESTS=n)
    assert p.returncode == 0, explain(p)
    out = p.stdout

    # The split: every call answered by one of the two sides, about two thirds by the instance.
    rows, pcts = split(out)
    assert set(rows) == {"instance", "function"}, explain(p)
    instance, function = int(rows["instance"]), int(rows["function"])
    assert instance + function == n
    low, high = binomial_bounds(n, 2 / 3)
    assert low <= instance <= high, out
    assert float(pcts["instance"]) == pytest.approx(100 * instance / n, abs=0.05)
    assert re.search(r"^check: \d+ from the instance is within \[160, 240\] .*: OK$", out, re.M), out

    # The rule paths, always from the right side, with the post's answers.
    assert '/to-instance  -> Hello from the instance at path "to-instance"   (20 of 20 from the instance)' in out
    assert '/to-function  -> "Hello from the function"   (20 of 20 from the function)' in out

    # The walkthrough's steps as the post has them, through the AWS CLI and Trellis's DNS.
    for shown in ("$ aws lambda create-function", "--runtime nodejs20.x", "--type IP", "--type LAMBDA",
                  "--protocol HTTPS", '"weight": 20', '"weight": 10', "--priority 10", "--priority 20",
                  "$ aws vpc-lattice create-service-network-service-association",
                  "$ aws ec2 create-vpc", "$ aws vpc-lattice create-service-network-vpc-association",
                  "$ dig -b 127.", "--interface 127.", "--cacert " + dp_server.ca_path):
        assert shown in out, shown
    assert re.search(r"^instance target 127\.0\.0\.1:\d+: HEALTHY; function target: UNAVAILABLE$", out, re.M), out
    assert out.rstrip().endswith("stopped the Flask app")

    # It deleted what it created.
    assert leftovers(dp_server) == []


def test_keep_rerun_and_cleanup(dp_server, tmp_path):
    """`--keep` leaves the service and the app running; a second run beside it (same listener port,
    other names) reuses the app and passes; `--cleanup` removes the kept resources."""
    ports = dict(LISTENER_PORT=free_port(), APP_PORT=free_port(), REQUESTS=30, RULE_REQUESTS=3)
    kept_app = kept_dir = None
    try:
        first = run_walkthrough(dp_server, tmp_path, "--keep", **ports)
        m = re.search(r"\(log (/\S+)/flask\.log\): stop it with kill (\d+)$", first.stdout, re.M)
        if m:
            kept_dir, kept_app = m.group(1), int(m.group(2))
        assert first.returncode == 0, explain(first)
        assert kept_app, first.stdout
        kept = leftovers(dp_server)
        assert len(kept) == 6, kept  # service, two target groups, network, function, VPC

        second = run_walkthrough(dp_server, tmp_path, **ports)
        assert second.returncode == 0, explain(second)
        assert "already running (left by an earlier --keep run): reusing it" in second.stdout
        assert sorted(leftovers(dp_server)) == sorted(kept)

        cleanup = run_walkthrough(dp_server, tmp_path, "--cleanup")
        assert cleanup.returncode == 0, explain(cleanup)
        assert leftovers(dp_server) == []
    finally:
        if kept_app:
            try:
                os.kill(kept_app, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if kept_dir:
            shutil.rmtree(kept_dir, ignore_errors=True)


def test_explains_a_server_that_is_not_running(dp_server, tmp_path):
    p = run_walkthrough(dp_server, tmp_path, TRELLIS_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    assert p.returncode == 1
    assert "Trellis does not answer at http://127.0.0.1:" in p.stderr
    assert "cargo run --release -- serve" in p.stderr
