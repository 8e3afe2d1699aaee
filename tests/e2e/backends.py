"""Helpers and fixtures for the data-plane ("traffic") end-to-end tests.

- `Backend`: one `trellis-testbackend` process (`$TRELLIS_TESTBACKEND_BIN` or
  `target/debug/trellis-testbackend`, built by `scripts/test`'s `cargo build --workspace`): started on
  an ephemeral port, its address read from the `listening on ADDR` line it prints first, stopped or
  killed, restarted on the same port, and steered through its `/_control/*` endpoints.
- `DataPlaneServer`: `trellis serve` (conftest's `Server`) with a module's extra flags
  (`--deregistration-delay`), its DNS port and its CA file.
- `wait_until_applied`: waits until the data plane has applied the store's current revision; every
  test calls it after each configuration change instead of sleeping.
- `Caller`: a keep-alive HTTP/1.1 client that connects to the ingress address but names the service
  in Host / SNI, as a client that resolved the generated name would.
- `curl`, `dig`: the real command-line clients.
- `ServiceBuilder`: creates services, listeners, target groups, rules and associations with boto3.

Fixtures (registered through `pytest_plugins` in conftest.py): `start_backend` (a factory whose processes
are stopped after the test module), `dp_server` (a module's data-plane server per store backend) and
`dp_lattice` (a boto3 client for it).
"""

import http.client
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import urllib.request

import pytest

# VPC, forward, poll and wait_until_applied are shared with the control-plane tests; the data-plane
# modules import them from here with the rest.
from conftest import (ROOT, VPC, Server, new_vpc, vpc_of, backends as store_backends, forward, poll, running,  # noqa: F401
                      unique, wait_until_applied)

TESTBACKEND_BIN = os.environ.get(
    "TRELLIS_TESTBACKEND_BIN", os.path.join(ROOT, "target", "debug", "trellis-testbackend"))
INGRESS = "127.0.0.1"
BACKEND_START_TIMEOUT_S = 10


def free_port():
    """A TCP port that is free right now on the ingress address: listener ports in Lattice are chosen
    by the user, so the tests choose free ones."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((INGRESS, 0))
        return s.getsockname()[1]


class Backend:
    """One trellis-testbackend process."""

    def __init__(self, name, protocol="auto", grpc=False, host=INGRESS):
        self.name = name
        self.protocol = protocol
        self.grpc = grpc
        self.host = host  # an IPv6 address for an IPv6 target
        self.port = 0
        self.proc = None

    def start(self):
        listen = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        cmd = [TESTBACKEND_BIN, "--listen", listen, "--name", self.name,
               "--protocol", self.protocol, "--exit-with-stdin"]
        if self.grpc:
            cmd.append("--grpc")
        # stdin stays open for the process's life: if pytest dies, the backend sees EOF and exits.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], BACKEND_START_TIMEOUT_S)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line.startswith("listening on "):
            self.proc.kill()
            err = self.proc.stderr.read().decode(errors="replace")
            raise RuntimeError(f"{' '.join(cmd)} did not start: {line!r} {err}")
        self.port = int(line.rsplit(":", 1)[1])
        return self

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.alive:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        if self.proc:
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                f.close()

    def kill(self):
        """Dies at once, without closing connections gracefully."""
        self.stop(signal.SIGKILL)

    def restart(self):
        """Starts again on the same port."""
        self.stop()
        return self.start()

    def target(self):
        """The Lattice target that points at this backend."""
        return {"id": self.host, "port": self.port}

    def control(self, method, path):
        host = f"[{self.host}]" if ":" in self.host else self.host
        req = urllib.request.Request(f"http://{host}:{self.port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def set_health(self, status):
        """What `GET /health` answers from now on."""
        return self.control("POST", f"/_control/health?status={status}")

    def release(self, key):
        """Lets `/slow-stream?wait=KEY` responses continue."""
        return self.control("POST", f"/_control/release?key={key}")

    def stats(self):
        return self.control("GET", "/_control/stats")


@pytest.fixture(scope="module")
def start_backend():
    """A factory: `start_backend("A")` starts a backend that is stopped when the module ends."""
    started = []

    def start(name, protocol="auto", grpc=False, host=INGRESS):
        b = Backend(name, protocol, grpc, host).start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


class DataPlaneServer(Server):
    """`trellis serve` with the module's extra flags (`SERVER_ARGS`, e.g. `--deregistration-delay`)."""

    def args(self):
        return super().args() + ["--ingress-address", INGRESS]

    @property
    def dns_port(self):
        host, port = self.dns_address()
        return port

    @property
    def ca_path(self):
        return os.path.join(self.data_dir, "ca.pem")


@pytest.fixture(scope="module", params=store_backends())
def dp_server(request):
    yield from running(DataPlaneServer(request.param, getattr(request.module, "SERVER_ARGS", ()),
                                       open_network=getattr(request.module, "OPEN_NETWORK", True)))


@pytest.fixture(scope="module")
def dp_lattice(dp_server):
    return dp_server.client()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def backend(self):
        """The backend that answered, or None for a response Trellis made itself."""
        return self.headers.get("x-backend")

    def json(self):
        return json.loads(self.body)


class Caller:
    """A keep-alive HTTP/1.1 client for one service name: connects to the ingress address and port,
    sends `Host: NAME` (HTTP) or SNI NAME (HTTPS, trusting `ca`). Not thread-safe; one per thread."""

    def __init__(self, name, port, tls=False, ca=None, timeout=30, source=None, address=INGRESS):
        self.name = name
        self.port = port
        # The client's own address (a loopback address inside or outside a test VPC) and the
        # ingress address it connects to (an association's own one).
        self.source = (source, 0) if source else None
        self.address = address
        self.tls = tls
        self.ca = ca
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.ca)
            ctx.set_alpn_protocols(["http/1.1"])
            name = self.name

            class Pinned(http.client.HTTPSConnection):
                def connect(self):
                    sock = socket.create_connection((address, self.port), self.timeout, source)
                    self.sock = ctx.wrap_socket(sock, server_hostname=name)

            address, source = self.address, self.source
            return Pinned(self.name, self.port, timeout=self.timeout, context=ctx)
        return http.client.HTTPConnection(self.address, self.port, timeout=self.timeout,
                                          source_address=self.source)

    def request(self, path, method="GET", headers=None, body=None):
        if self.conn is None:
            self.conn = self._connect()
        hdrs = {"Host": self.name}
        hdrs.update(headers or {})
        try:
            self.conn.request(method, path, body=body, headers=hdrs)
            r = self.conn.getresponse()
            data = r.read()
        except Exception:
            self.close()
            raise
        resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        if r.will_close:
            self.close()
        return resp

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def curl(url, *args, resolve=None, timeout=30):
    """Runs curl and returns (status, http_version, body). `resolve` is `name:port:address`, passed
    to `--resolve` so that curl connects there while using the name for Host and SNI."""
    cmd = ["curl", "-sS", "--max-time", str(timeout), "-w", "\n%{http_code} %{http_version}"]
    if resolve:
        cmd += ["--resolve", resolve]
    cmd += [*args, url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5)
    assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}"
    body, _, last = p.stdout.rpartition("\n")
    status, version = last.split()
    return int(status), version, body


def dig(server, name, rtype="A", tcp=False):
    """`dig @127.0.0.1 -p DNSPORT NAME TYPE +short` against Trellis's DNS; the answer lines."""
    host, port = server.dns_address()
    cmd = ["dig", f"@{host}", "-p", str(port), name, rtype, "+short", "+time=5", "+tries=1"]
    if tcp:
        cmd.append("+tcp")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"{' '.join(cmd)} failed: {p.stdout} {p.stderr}"
    return [line for line in p.stdout.splitlines() if line]


def ip_target_group(lattice, name=None, protocol="HTTP", protocol_version="HTTP1", health_check=None, port=80,
                    targets=()):
    """A fresh IP target group with `targets` (Backends) registered."""
    cfg = {"protocol": protocol, "protocolVersion": protocol_version, "port": port, "vpcIdentifier": vpc_of(lattice)}
    if health_check is not None:
        cfg["healthCheck"] = health_check
    tg = lattice.create_target_group(name=name or unique("group"), type="IP", config=cfg)
    if targets:
        lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[b.target() for b in targets])
    return tg


def fixed(status):
    return {"fixedResponse": {"statusCode": status}}


def path_prefix(prefix, case_sensitive=None):
    m = {"match": {"prefix": prefix}}
    if case_sensitive is not None:
        m["caseSensitive"] = case_sensitive
    return {"httpMatch": {"pathMatch": m}}


def target_statuses(lattice, tg):
    """{(id, port): (status, reasonCode)} of a target group's targets, as ListTargets reports them."""
    items = lattice.list_targets(targetGroupIdentifier=tg["id"])["items"]
    return {(t["id"], t.get("port")): (t.get("status"), t.get("reasonCode")) for t in items}


def forwarding_service(server, lattice, tg, protocol="HTTP"):
    """A fresh service (associated with a fresh service network) whose one listener, on a free port,
    forwards everything to `tg`: (ServiceBuilder, port), once the data plane has applied it."""
    svc = ServiceBuilder(lattice)
    port = free_port()
    svc.listener(protocol, port, forward((tg, 1)))
    wait_until_applied(server)
    return svc, port


class ServiceBuilder:
    """A service associated with a fresh service network, with the listeners it is given."""

    def __init__(self, lattice, auth_type="NONE", network_auth_type="NONE", associate=True, name=None,
                 custom_domain_name=None):
        self.lattice = lattice
        extra = {"customDomainName": custom_domain_name} if custom_domain_name else {}
        self.svc = lattice.create_service(name=name or unique("service"), authType=auth_type, **extra)
        self.dns_name = self.svc["dnsEntry"]["domainName"]
        self.sn = None
        if associate:
            self.sn = lattice.create_service_network(name=unique("network"), authType=network_auth_type)
            lattice.create_service_network_service_association(
                serviceNetworkIdentifier=self.sn["id"], serviceIdentifier=self.svc["id"])

    def listener(self, protocol, port, default_action):
        return self.lattice.create_listener(serviceIdentifier=self.svc["id"], name=unique("lsn"), protocol=protocol,
                                            port=port, defaultAction=default_action)

    def rule(self, listener, priority, match, action):
        return self.lattice.create_rule(serviceIdentifier=self.svc["id"], listenerIdentifier=listener["id"],
                                        name=unique("match"), priority=priority, match=match, action=action)
