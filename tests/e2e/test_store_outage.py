"""A PostgreSQL store that misbehaves: bounded waits, fast 503s, health that means something.

- A node stopped (SIGSTOP) while it holds the writer lock blocks another node's writes only until
  its session's `idle_in_transaction_session_timeout`; meanwhile the other node's writes fail
  fast with 503 `ServiceUnavailableException` (its `lock_timeout`), and afterwards they succeed.
- PostgreSQL stopped while traffic flows through a listener: requests keep succeeding, API calls
  answer 503 `ServiceUnavailableException` (boto3 and the AWS CLI, each with a bounded client
  timeout that proves they do not hang), `/_trellis/health` and `/ready` stay 200 while
  `/_trellis/health/store` is 503; PostgreSQL restarted, writes resume.
- `trellis status` against a running server, by `--api` and by `--data-dir`, and against none.

The outage tests stop and restart a database server, so they run on a private PostgreSQL cluster
of this module's own (started like `scripts/with-postgres` does), never on the shared one. They
run only where PostgreSQL tests run (`TRELLIS_TEST_POSTGRES_URL` set, required in CI); `trellis
status` runs on every backend. No assertion measures wall-clock time: client timeouts bound each
call so that a hang fails the test instead of stalling it.
"""

import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
import uuid

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from backends import Caller, DataPlaneServer, ServiceBuilder, forward, free_port, ip_target_group
from conftest import ACCESS_KEY, BIN, REGION, SECRET_KEY, backends, poll, running, unique, wait_until_applied

POSTGRES_ONLY = [b for b in backends() if b == "postgres"]

# A client that gives up long after any bound Trellis sets (lock and acquire timeouts of a few
# seconds) but long before a hang could pass for an answer; one attempt (`max_attempts` would
# count retries only), so that a 503 surfaces and nothing is retried behind the test's back.
BOUNDED = botocore.config.Config(connect_timeout=5, read_timeout=30, retries={"total_max_attempts": 1},
                                 parameter_validation=False)


def _bindir():
    for d in [os.path.dirname(os.path.realpath(shutil.which("pg_ctl") or ""))] + sorted(
            glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if d and os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return d
    raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl); see scripts/with-postgres")


def _stable_port():
    """A free port outside the kernel's ephemeral range: the cluster is restarted on the same port,
    and in between any outgoing connection (the nodes reconnecting) could be given an ephemeral
    port as its local port and keep PostgreSQL from binding it again."""
    low, _ = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    for _ in range(100):
        port = random.randrange(10000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port below the ephemeral range")


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a fixed free port, which a test may stop and start again."""

    def __init__(self):
        self.bindir = _bindir()
        self.tmp = tempfile.mkdtemp(prefix="trellis-outage-pg-")
        self.data = os.path.join(self.tmp, "data")
        self.sock = os.path.join(self.tmp, "sock")
        os.makedirs(self.sock)
        self.log = os.path.join(self.tmp, "server.log")
        self.port = _stable_port()
        # PostgreSQL refuses to run as root.
        self.run_as = []
        if os.getuid() == 0:
            user = "postgres" if subprocess.run(["id", "postgres"], capture_output=True).returncode == 0 else "nobody"
            for path in (self.tmp, self.sock):
                shutil.chown(path, user)
            self.run_as = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", user, "--"]
        self._pg(["initdb", "-D", self.data, "-U", "trellis", "--auth=trust", "--encoding=UTF8", "--locale=C",
                  "--no-sync"])

    def _pg(self, argv):
        argv = self.run_as + [os.path.join(self.bindir, argv[0])] + argv[1:]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            log = open(self.log, errors="replace").read()[-2000:] if os.path.exists(self.log) else ""
            raise RuntimeError(f"{' '.join(argv)} failed: {p.stdout}{p.stderr}\n{log}")

    def start(self):
        self._pg(["pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock} -c fsync=off "
                  f"-c synchronous_commit=off -c max_connections=200", "start"])

    def stop(self):
        """Fast shutdown: every session is ended, as when the database host goes down."""
        self._pg(["pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop"])

    def url(self, db="postgres"):
        return f"postgres://trellis@127.0.0.1:{self.port}/{db}"

    def psql(self, sql, db="postgres"):
        p = subprocess.run(["psql", self.url(db), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {p.stderr}")
        return p.stdout.strip()

    def fresh_db(self):
        name = "outage_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name}")
        return name

    def destroy(self):
        try:
            self._pg(["pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
        except RuntimeError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module", params=POSTGRES_ONLY)
def pg(request):
    cluster = PrivatePostgres()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


# Every node of one store needs the same key for the store's sealed secrets (the cluster CA):
# one key file for every node of this module, as an operator gives every node the same one.
SECRET_KEY_FILE = os.path.join(tempfile.mkdtemp(prefix="trellis-outage-key-"), "secret.key")
with open(SECRET_KEY_FILE, "w") as _f:
    _f.write(os.urandom(32).hex() + "\n")
os.chmod(SECRET_KEY_FILE, 0o600)


class Node(DataPlaneServer):
    """`trellis serve` on a given PostgreSQL database (several nodes may share one)."""

    def __init__(self, store_url, extra_args=()):
        # Constructed as "sqlite" only so that `Server` does not create a database on the shared
        # test server; the node's store is `store_url` on the private cluster.
        super().__init__("sqlite", [*extra_args, "--secret-key-file", SECRET_KEY_FILE])
        self.backend = "postgres"
        self.store = store_url


def get(server, path, timeout=20):
    """(status, parsed JSON body) of an admin endpoint, 503 included."""
    try:
        with urllib.request.urlopen(server.endpoint + path, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def unavailable(call):
    """Runs a boto3 call that must fail with 503 ServiceUnavailableException; returns the error."""
    with pytest.raises(ClientError) as info:
        call()
    err = info.value.response
    assert err["Error"]["Code"] == "ServiceUnavailableException", err
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 503, err
    return err


def status_cmd(*args):
    return subprocess.run([BIN, "status", *args], capture_output=True, text=True, timeout=60)


# ------------------------------------------------------------------------------------------------
# (a) A stopped node holding the writer lock


def test_a_stopped_node_holding_the_writer_lock_delays_other_nodes_writes_only_until_its_session_ends(pg):
    db = pg.fresh_db()
    url = pg.url(db)
    # A waits as long as it takes for the lock and loses its session after 12 idle seconds in a
    # transaction (ample time for B's one blocked attempt below); B gives up on the lock after
    # 1 second.
    a = Node(url, ["--db-lock-timeout", "120", "--db-idle-in-transaction-timeout", "12"])
    b = Node(url, ["--db-lock-timeout", "1"])
    for node in (a, b):
        node.start()
    holder = None
    try:
        # A's client waits long enough for A to be stopped and resumed.
        a_lattice = _client(a, BOUNDED.merge(botocore.config.Config(read_timeout=120)))
        b_lattice = _client(b, BOUNDED)
        assert b_lattice.create_service(name=unique("before"))["status"] == "ACTIVE"

        # 1. A psql session takes the writer lock (the `meta` row every write updates first) and
        #    keeps its transaction open.
        env = dict(os.environ, PGAPPNAME="outage-holder")
        holder = subprocess.Popen(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        holder.stdin.write("BEGIN;\nSELECT revision FROM meta WHERE id = 1 FOR UPDATE;\n")
        holder.stdin.flush()
        poll("the psql session to hold the writer lock", lambda: pg.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'outage-holder' "
            "AND state = 'idle in transaction'", db) == "1", timeout=30)

        # 2. A starts a write, which waits for that lock inside its write transaction.
        a_name = unique("from-a")
        a_result = {}

        def a_write():
            try:
                a_result["ok"] = a_lattice.create_service(name=a_name)
            except ClientError as e:
                a_result["error"] = e.response
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                a_result["exception"] = e

        writer = threading.Thread(target=a_write)
        writer.start()
        waiting_pid = poll("A's write to wait for the writer lock", lambda: pg.psql(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'UPDATE meta SET revision%'", db), timeout=30)

        # 3. A is stopped; then the psql session lets go, so A's transaction now holds the lock
        #    while A cannot run: exactly a node frozen in the middle of a write.
        a.proc.send_signal(signal.SIGSTOP)
        holder.stdin.write("ROLLBACK;\n")
        holder.stdin.close()
        holder.wait(timeout=30)
        holder = None
        poll("A's stopped session to hold the writer lock", lambda: pg.psql(
            f"SELECT state FROM pg_stat_activity WHERE pid = {waiting_pid}", db) == "idle in transaction",
            timeout=30)

        # 4. B's write does not hang behind it: 503 within B's lock timeout (the client would
        #    give up after 30 s).
        err = unavailable(lambda: b_lattice.create_service(name=unique("blocked")))
        assert "retry" in err["Error"]["Message"].lower(), err

        # 5. PostgreSQL ends A's idle session (A's idle-in-transaction timeout): B's writes go
        #    through again without anyone touching A.
        made = poll("B's write to succeed once A's session is gone", lambda: _try_create(b_lattice), timeout=120)
        assert made["status"] == "ACTIVE"
        assert pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {waiting_pid}", db) == "0"

        # 6. A resumes: its interrupted write is answered 503 (nothing was committed), and its
        #    next write works.
        a.proc.send_signal(signal.SIGCONT)
        writer.join(timeout=120)
        assert not writer.is_alive(), "A's interrupted write never returned"
        assert "error" in a_result, a_result
        assert a_result["error"]["Error"]["Code"] == "ServiceUnavailableException", a_result
        assert a_result["error"]["ResponseMetadata"]["HTTPStatusCode"] == 503, a_result
        names = {s["name"] for s in b_lattice.list_services()["items"]}
        assert a_name not in names, "the interrupted write must not have been applied"
        assert a_lattice.create_service(name=unique("after"))["status"] == "ACTIVE"
    finally:
        if holder is not None:
            holder.kill()
        if a.proc is not None and a.proc.poll() is None:
            a.proc.send_signal(signal.SIGCONT)
        for node in (a, b):
            node.cleanup()


def _client(server, cfg, service="vpc-lattice"):
    return boto3.client(service, endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, config=cfg)


def _try_create(lattice):
    try:
        return lattice.create_service(name=unique("resumed"))
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ServiceUnavailableException", e.response
        return None


# ------------------------------------------------------------------------------------------------
# (b) PostgreSQL stopped while traffic flows


def test_a_database_outage_stops_writes_fast_but_not_traffic(pg, start_backend):
    node = Node(pg.url(pg.fresh_db()))
    node.start()
    try:
        lattice = _client(node, BOUNDED)
        iam = _client(node, BOUNDED, "iam")
        backend = start_backend("A")
        tg = ip_target_group(lattice, targets=[backend])
        svc = ServiceBuilder(lattice)
        port = free_port()
        svc.listener("HTTP", port, forward((tg, 1)))
        wait_until_applied(node)
        caller = Caller(svc.dns_name, port, timeout=10)
        assert caller.request("/").status == 200

        pg.stop()
        try:
            # Traffic is served from the last snapshot, on the open connection and on new ones.
            for i in range(20):
                assert caller.request(f"/during-outage/{i}").status == 200
                if i % 5 == 0:
                    caller.close()
            # The API answers at once that it cannot, in each protocol's shape.
            unavailable(lambda: lattice.create_service(name=unique("outage")))
            unavailable(lambda: lattice.list_services())
            unavailable(lambda: iam.create_user(UserName=unique("user")))
            p = node.cli("list-services", "--cli-read-timeout", "30", "--cli-connect-timeout", "5", check=False)
            assert p.returncode != 0 and "ServiceUnavailableException" in p.stderr, p.stderr
            # Health: traffic readiness stays up (a load balancer keeps the node), the store is down.
            assert get(node, "/_trellis/health")[0] == 200
            assert get(node, "/_trellis/health/ready")[0] == 200
            assert get(node, "/_trellis/health/live") == (200, {"live": True})
            code, body = get(node, "/_trellis/health/store")
            assert code == 503 and body["store"] is False and body["backend"] == "postgres", body
            out = status_cmd("--api", node.endpoint)
            assert out.returncode == 0, out.stdout + out.stderr
            assert "ready: up (200)" in out.stdout and "store: down (503)" in out.stdout, out.stdout
            assert caller.request("/still-serving").status == 200
        finally:
            pg.start()

        # Writes resume once the database is back (observed, not waited for by the clock).
        made = poll("writes to resume", lambda: _try_create(lattice), timeout=60)
        assert made["status"] == "ACTIVE"
        code, body = get(node, "/_trellis/health/store")
        assert code == 200 and body["store"] is True and body["revision"] >= 1, body
        wait_until_applied(node)
        assert caller.request("/after").status == 200
    finally:
        node.cleanup()


# ------------------------------------------------------------------------------------------------
# (c) trellis status


@pytest.fixture(scope="module", params=backends())
def status_server(request):
    yield from running(DataPlaneServer(request.param))


def test_status_prints_liveness_readiness_and_the_store(status_server):
    for args in (["--api", status_server.endpoint], ["--data-dir", status_server.data_dir]):
        out = status_cmd(*args)
        assert out.returncode == 0, out.stdout + out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == f"server: {status_server.endpoint}", lines
        assert lines[1] == 'live: up (200) {"live":true}', lines
        assert lines[2].startswith("ready: up (200) "), lines
        ready = json.loads(lines[2].split(" ", 3)[3])
        assert ready["ready"] is True and ready["failedPorts"] == [], ready
        assert lines[3].startswith("store: up (200) "), lines
        store = json.loads(lines[3].split(" ", 3)[3])
        assert store["store"] is True and store["backend"] == status_server.backend, store


def test_status_of_no_server_fails():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        out = status_cmd("--api", f"http://127.0.0.1:{port}")
    assert out.returncode != 0
    assert "live: down (no answer" in out.stdout and "ready: down" in out.stdout, out.stdout
    assert "not ready" in out.stderr, out.stderr
