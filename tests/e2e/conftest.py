"""Shared fixtures for the end-to-end tests: a real `trellis serve` process on ephemeral ports,
and real AWS clients (boto3 and the AWS CLI) pointed at it.

The server binary is `$TRELLIS_BIN` or `target/debug/trellis` (built by `scripts/test`). Every test
module gets its own server and data dir for each store backend: SQLite always, PostgreSQL when
`TRELLIS_TEST_POSTGRES_URL` is set (`scripts/with-postgres` sets it; in CI it must be set, so the
PostgreSQL runs are never silently skipped).

Helpers used by more than one module live here too, one copy each: fixtures (`server`, `lattice`,
`unchecked`, `lam`, `sn`, `svc`) are found by pytest; plain functions and constants are imported by
name (`from conftest import members, status, unique`). The data plane's fixtures and helpers
(testbackends, `DataPlaneServer`, `Caller`, `curl`, `dig`) are in backends.py, the function host's in
functions_support.py, the security probes' in probes_support.py.
"""

import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import pytest
from botocore.exceptions import ClientError

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
# A well-formed VPC ID that names no VPC: for requests refused before the VPC is looked up
# (validation tables). Requests that must succeed name a real VPC: `vpc_of(client)`.
VPC = "vpc-0123456789abcdef0"
# The test VPC of each (endpoint, access key): see `vpc_of`. A server clears its endpoint's
# entries when it starts, so a port reused by a later server never finds a stale VPC.
_VPCS = {}


def new_vpc(client, cidr="10.0.0.0/16"):
    """A fresh VPC (`aws ec2 create-vpc`) in the account of boto3 `client`'s credentials, on its
    server: Lattice's `vpcIdentifier` members must name a VPC of the caller's account."""
    creds = client._request_signer._credentials.get_frozen_credentials()
    ec2 = boto3.client("ec2", endpoint_url=client.meta.endpoint_url, region_name=REGION,
                       aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                       aws_session_token=creds.token,
                       config=botocore.config.Config(retries={"max_attempts": 1}))
    return ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]


def vpc_of(client):
    """The shared test VPC (10.0.0.0/16, associated with nothing, so it admits no test client) of
    `client`'s server and account, created on first use."""
    creds = client._request_signer._credentials.get_frozen_credentials()
    key = (client.meta.endpoint_url, creds.access_key)
    if key not in _VPCS:
        _VPCS[key] = new_vpc(client)
    return _VPCS[key]
FIXED_404 = {"fixedResponse": {"statusCode": 404}}


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


# `trellis_wire::table::UNDECLARED_ERROR`, the line the server logs when an operation answers with
# an error it does not declare.
UNDECLARED_ERROR = "an operation raised an error it does not declare"


class Server:
    """One `trellis serve` process, with `extra_args` after the common flags and `env` over the
    test's own environment. `restart()` and `kill9()` keep the data dir and store."""

    def __init__(self, backend, extra_args=(), env=None, open_network=True):
        self.backend = backend
        self.extra_args = list(extra_args)
        # Development mode (`--open-network`) unless a test is about client networks: the other
        # suites' clients are in no VPC.
        self.open_network = open_network
        self.env = dict(env or {})
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
        if self.open_network:
            a.append("--open-network")
        return a + self.extra_args

    def start(self):
        addr_file = os.path.join(self.data_dir, "api-address")
        if os.path.exists(addr_file):
            os.remove(addr_file)
        env = dict(os.environ, TRELLIS_ROOT_ACCESS_KEY_ID=ACCESS_KEY, TRELLIS_ROOT_SECRET_ACCESS_KEY=SECRET_KEY,
                   **self.env)
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
                    for key in [k for k in _VPCS if k[0] == self.endpoint]:
                        del _VPCS[key]
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

    def health(self):
        """(status, parsed body) of `/_trellis/health`, 503 included."""
        try:
            with urllib.request.urlopen(self.endpoint + "/_trellis/health", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def revision(self):
        return json.loads(self.admin("/_trellis/revision")[1])

    def api_address(self):
        """(host, port) of the API listener, for tests that speak raw sockets to it."""
        host, _, port = self.endpoint.removeprefix("http://").rpartition(":")
        return host, int(port)

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

    def cli(self, *args, check=True, service="vpc-lattice", timeout=60):
        """Runs `aws SERVICE ARGS --endpoint-url …` and returns the parsed JSON output (or, with
        `check=False`, the failed process)."""
        cmd = ["aws", service, *args, "--endpoint-url", self.endpoint, "--output", "json"]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.cli_env(), timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}")
        if p.returncode != 0:
            return p
        return json.loads(p.stdout) if p.stdout.strip() else {}

    def cleanup(self):
        """Stops the server and removes its data. Fails if any operation answered with an error
        its table entry does not declare (the server logs `UNDECLARED_ERROR` for each): clients'
        SDKs know only an operation's modelled errors."""
        self.stop()
        try:
            undeclared = [l for l in open(self.log_path, errors="replace") if UNDECLARED_ERROR in l]
        except OSError:
            undeclared = []
        shutil.rmtree(self.data_dir, ignore_errors=True)
        assert not undeclared, "operations raised errors they do not declare:\n" + "".join(undeclared[:20])


def running(server):
    """A module fixture's body: starts `server`, yields it, cleans it up (`yield from running(…)`)."""
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module", params=backends())
def server(request):
    yield from running(Server(request.param, open_network=getattr(request.module, "OPEN_NETWORK", True)))


@pytest.fixture(scope="module")
def lattice(server):
    """A boto3 `vpc-lattice` client for the module's server."""
    return server.client()


@pytest.fixture(scope="module")
def unchecked(server):
    """A second `vpc-lattice` client, named for the tests that send what botocore would refuse
    (missing members, short strings) so that the server's own validation is what answers. Every
    `Server.client()` has client-side validation off; the name says why a test uses it."""
    return server.client()


@pytest.fixture(scope="module")
def lam(server):
    """A boto3 `lambda` client for the module's server."""
    return server.client("lambda")


@pytest.fixture
def sn(lattice):
    """A fresh service network, removed (with its associations) after the test."""
    created = lattice.create_service_network(name=unique("network"))
    yield created
    delete_service_network(lattice, created["id"])


@pytest.fixture
def svc(lattice):
    """A fresh service, removed (with its associations) after the test."""
    created = lattice.create_service(name=unique("service"))
    yield created
    delete_service(lattice, created["id"])


def poll(what, fn, timeout, interval=0.1):
    """Calls `fn` until it returns a truthy value (returned) or `timeout` seconds pass: a bounded wait
    on observed state (target health, a process appearing) that no revision tracks."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}")
        time.sleep(interval)


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


def wait_until_applied(server):
    """Returns once the data plane has applied every change committed so far: the store's current
    revision (a bounded poll of `/_trellis/revision`, never a sleep)."""
    return wait_applied(server, server.revision()["store"])


def unique(prefix="t"):
    """A fresh resource name (names are unique per account)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_code(excinfo):
    """The AWS error code of a botocore ClientError."""
    return excinfo.value.response["Error"]["Code"]


def fields(excinfo):
    """The `fieldList` names of a ValidationException (botocore ClientError)."""
    return [f["name"] for f in excinfo.value.response.get("fieldList", [])]


def members(resp):
    """The top-level members of a boto3 response, without botocore's ResponseMetadata."""
    return set(resp) - {"ResponseMetadata"}


def status(resp):
    """The HTTP status code of a boto3 response."""
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def list_by_hand(list_call, max_pages, **kwargs):
    """Every item of a list operation, fetched a page at a time by following nextToken by hand
    (not with botocore's paginator), each page holding at most `maxResults` items; at most
    `max_pages` pages, so that a token that never runs out cannot loop forever."""
    seen = []
    for _ in range(max_pages):
        page = list_call(**kwargs)
        assert len(page["items"]) <= kwargs["maxResults"]
        seen += page["items"]
        if "nextToken" not in page:
            break
        kwargs["nextToken"] = page["nextToken"]
    return seen


def tags_of(lattice, arn):
    """ListTagsForResource's tags (the call itself answering 200)."""
    resp = lattice.list_tags_for_resource(resourceArn=arn)
    assert status(resp) == 200
    return resp["tags"]


def target_group(lattice, type="IP", protocol="HTTP", port=None, **config):
    """A fresh target group: LAMBDA (no config), or IP/INSTANCE/ALB with `protocol`, the test VPC,
    `port` when given and any other `config` members."""
    if type == "LAMBDA":
        return lattice.create_target_group(name=unique("grp"), type="LAMBDA")
    cfg = {"protocol": protocol, "vpcIdentifier": vpc_of(lattice), **config}
    if port:
        cfg["port"] = port
    return lattice.create_target_group(name=unique("grp"), type=type, config=cfg)


def forward(*tgs, weights=None):
    """A forward action. Target groups (dicts or IDs) with optional `weights` in the same order,
    left out when not given (`forward(a, b, weights=[10, 0])`), or (target group, weight) pairs
    (`forward((tg, 20), (tg2, 10))`)."""
    items = []
    for i, tg in enumerate(tgs):
        weight = weights[i] if weights else None
        if isinstance(tg, tuple):
            tg, weight = tg
        item = {"targetGroupIdentifier": tg["id"] if isinstance(tg, dict) else tg}
        if weight is not None:
            item["weight"] = weight
        items.append(item)
    return {"forward": {"targetGroups": items}}


def delete_service_network(lattice, sn_id):
    """Best-effort teardown: the network's service and VPC associations, then the network."""
    try:
        for p in lattice.get_paginator("list_service_network_service_associations").paginate(
                serviceNetworkIdentifier=sn_id):
            for a in p["items"]:
                lattice.delete_service_network_service_association(serviceNetworkServiceAssociationIdentifier=a["id"])
        for p in lattice.get_paginator("list_service_network_vpc_associations").paginate(
                serviceNetworkIdentifier=sn_id):
            for a in p["items"]:
                lattice.delete_service_network_vpc_association(serviceNetworkVpcAssociationIdentifier=a["id"])
        lattice.delete_service_network(serviceNetworkIdentifier=sn_id)
    except ClientError:
        pass


def delete_service(lattice, svc_id):
    """Best-effort teardown: the service's associations, then the service."""
    try:
        for a in lattice.list_service_network_service_associations(serviceIdentifier=svc_id)["items"]:
            lattice.delete_service_network_service_association(serviceNetworkServiceAssociationIdentifier=a["id"])
        lattice.delete_service(serviceIdentifier=svc_id)
    except ClientError:
        pass


def store_query(server, sql):
    """The single value `sql` selects from the server's store itself (SQLite file or PostgreSQL):
    for what the API can no longer show, such as the children a cascade removed."""
    if server.store:
        out = subprocess.run(["psql", server.store, "-tAc", sql], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())
    db = sqlite3.connect(os.path.join(server.data_dir, "trellis.db"))
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def stored_count(server, kind, *, id=None, parent=None):
    """How many store records of `kind` have this `id` or this `parent`."""
    column, value = ("id", id) if id is not None else ("parent", parent)
    return store_query(server, "SELECT count(*) FROM records WHERE kind = '%s' AND %s = '%s'" % (kind, column, value))


def sigv4_headers(server, method, path, body=b"", service="vpc-lattice", headers=None,
                  content_type="application/json"):
    """The headers botocore's SigV4 signer gives a request to `server` with the root credentials
    (for tests that send bytes no SDK would, or tamper with them after signing)."""
    req = botocore.awsrequest.AWSRequest(method=method, url=server.endpoint + path, data=body,
                                         headers=dict(headers or {}))
    if content_type:
        req.headers["Content-Type"] = content_type
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), service, REGION).add_auth(req)
    return dict(req.headers.items())


def signed(server, method, path, body=b"", service="vpc-lattice"):
    """Sends a SigV4-signed request (urllib); returns (status, headers, body bytes), errors included."""
    r = urllib.request.Request(server.endpoint + path, data=body or None, method=method,
                               headers=sigv4_headers(server, method, path, body, service))
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def parse_head(head):
    """(status, {lower-case name: value}) of an HTTP/1.1 response head (bytes, without the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def binomial_bounds(n, p, sigmas=5):
    """The count of successes in `n` draws of probability `p` lies within these bounds but for a
    false alarm rate of ~6e-7 (5 sigmas): for checking a weighted split without a flaky threshold."""
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return mean - sigmas * sd, mean + sigmas * sd
