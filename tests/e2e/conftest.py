"""Shared fixtures for the end-to-end tests: a real `trellis serve` process on ephemeral ports,
and real AWS clients (boto3 and the AWS CLI) pointed at it.

The server binary is `$TRELLIS_BIN` or `target/debug/trellis` (built by `scripts/test`). Every test
module gets its own server and data dir for each store backend: SQLite always, PostgreSQL when
`TRELLIS_TEST_POSTGRES_URL` is set (`scripts/with-postgres` sets it; in CI it must be set, so the
PostgreSQL runs are never silently skipped).
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid

import boto3
import botocore.config
import pytest

# The data-plane tests' fixtures (testbackend processes, a server with a known DNS port) live in
# backends.py.
pytest_plugins = ["backends"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TRELLIS_BIN", os.path.join(ROOT, "target", "debug", "trellis"))
ACCESS_KEY = "AKIATRELLISTESTKEY01"
SECRET_KEY = "trellis/test/secret/key/0123456789abcdefgh"
REGION = "us-west-2"
ACCOUNT = "111122223333"
STARTUP_TIMEOUT_S = 30


def backends():
    out = ["sqlite"]
    if os.environ.get("TRELLIS_TEST_POSTGRES_URL"):
        out.append("postgres")
    elif os.environ.get("CI"):
        raise RuntimeError("TRELLIS_TEST_POSTGRES_URL must be set in CI (run under scripts/with-postgres)")
    return out


def _fresh_postgres_url():
    """Creates a uniquely named database on the test server and returns its URL."""
    base = os.environ["TRELLIS_TEST_POSTGRES_URL"]
    name = "e2e_" + uuid.uuid4().hex[:12]
    admin = base.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["psql", admin, "-v", "ON_ERROR_STOP=1", "-qc", f"CREATE DATABASE {name}"], check=True)
    return base.rsplit("/", 1)[0] + "/" + name


class Server:
    """One `trellis serve` process. `restart()` and `kill9()` keep the data dir and store."""

    def __init__(self, backend):
        self.backend = backend
        self.data_dir = tempfile.mkdtemp(prefix="trellis-e2e-")
        self.store = _fresh_postgres_url() if backend == "postgres" else None
        self.proc = None
        self.endpoint = None
        self.log_path = os.path.join(self.data_dir, "server.log")

    def args(self):
        a = [BIN, "serve", "--data-dir", self.data_dir, "--api-listen", "127.0.0.1:0",
             "--dns-listen", "127.0.0.1:0", "--region", REGION, "--account-id", ACCOUNT]
        if self.store:
            a += ["--store", self.store]
        return a

    def start(self):
        addr_file = os.path.join(self.data_dir, "api-address")
        if os.path.exists(addr_file):
            os.remove(addr_file)
        env = dict(os.environ, TRELLIS_ROOT_ACCESS_KEY_ID=ACCESS_KEY, TRELLIS_ROOT_SECRET_ACCESS_KEY=SECRET_KEY)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"trellis exited with {self.proc.returncode}:\n{self.log()}")
            if os.path.exists(addr_file):
                addr = open(addr_file).read().strip()
                if addr:
                    self.endpoint = f"http://{addr}"
                    try:
                        with urllib.request.urlopen(self.endpoint + "/_trellis/health", timeout=2) as r:
                            if r.status == 200:
                                return self
                    except OSError:
                        pass
            time.sleep(0.05)
        raise RuntimeError(f"trellis did not become healthy in {STARTUP_TIMEOUT_S}s:\n{self.log()}")

    def log(self):
        try:
            return open(self.log_path, errors="replace").read()[-4000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        return self.proc.returncode if self.proc else None

    def restart(self):
        self.stop()
        return self.start()

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def admin(self, path):
        with urllib.request.urlopen(self.endpoint + path, timeout=5) as r:
            return r.status, r.read().decode()

    def revision(self):
        return json.loads(self.admin("/_trellis/revision")[1])

    def dns_address(self):
        """(host, port) of the DNS server: DATA_DIR/dns-address, written before api-address, so a
        server started with `--dns-listen 127.0.0.1:0` can be queried."""
        host, _, port = open(os.path.join(self.data_dir, "dns-address")).read().strip().rpartition(":")
        return host.strip("[]"), int(port)

    def client(self, service="vpc-lattice", **kw):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=kw.get("access_key", ACCESS_KEY),
            aws_secret_access_key=kw.get("secret_key", SECRET_KEY),
            # Client-side parameter validation is off so that the server's own validation is what the
            # tests exercise; retries are off so that errors surface once.
            config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False),
        )

    def cli_env(self):
        """Environment for running the AWS CLI against this server."""
        env = dict(os.environ)
        env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION=REGION,
                   AWS_PAGER="", AWS_MAX_ATTEMPTS="1")
        env.pop("AWS_PROFILE", None)
        return env

    def cli(self, *args, check=True):
        """Runs `aws vpc-lattice ARGS --endpoint-url …` and returns the parsed JSON output."""
        cmd = ["aws", "vpc-lattice", *args, "--endpoint-url", self.endpoint, "--output", "json"]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.cli_env(), timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}")
        if p.returncode != 0:
            return p
        return json.loads(p.stdout) if p.stdout.strip() else {}

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="module", params=backends())
def server(request):
    s = Server(request.param).start()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def lattice(server):
    """A boto3 `vpc-lattice` client for the module's server."""
    return server.client()


def wait_applied(server, revision, timeout=STARTUP_TIMEOUT_S):
    """Returns the `/_trellis/revision` answer once the data plane has applied `revision` (a bounded
    poll of the admin endpoint: no test sleeps for a fixed time hoping a change has landed)."""
    deadline = time.monotonic() + timeout
    while True:
        rev = server.revision()
        if rev["applied"] >= revision:
            return rev
        if time.monotonic() > deadline:
            raise AssertionError(f"revision {revision} not applied in {timeout}s: {rev}\n{server.log()}")
        time.sleep(0.01)


def unique(prefix="t"):
    """A fresh resource name (names are unique per account)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_code(excinfo):
    """The AWS error code of a botocore ClientError."""
    return excinfo.value.response["Error"]["Code"]
