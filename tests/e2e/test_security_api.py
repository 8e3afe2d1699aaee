"""The API listener under attack, as a hostile client would mount it (issue 9, defects 3 and 4):
unsigned uploads of large bodies, bodies over their operation's cap, and slow or silent sockets
(slowloris) in numbers beyond the descriptor limit. Raw sockets do the attacking; boto3 checks
that signed calls with bodies keep working meanwhile.

The server runs with short API timeouts, a small connection cap and a hard open-file limit of
256, so that what took ~21,000 sockets in the red-team run takes a few hundred here.
"""

import base64
import contextlib
import os
import socket
import sys
import threading
import time

import pytest

from conftest import Server, backends, parse_head, running, sigv4_headers, unique
from functions_support import ROLE, PY_APP, zip_bytes

HEADER_READ_TIMEOUT_S = 2
MAX_CONNECTIONS = 64
FD_LIMIT = 256
# Generous: the server closes slow sockets after the header-read timeout; this only bounds the wait.
CLOSE_MARGIN_S = 8
MIB = 1 << 20

# The caps of the SigV4 gate (crates/api/src/auth.rs).
LATTICE_CAP = MIB
INVOKE_CAP = 6_291_456
CODE_CAP = 70_167_211


class TightServer(Server):
    """A server with short API timeouts and a small connection cap, started with an open-file
    limit of FD_LIMIT / 2 (soft) and FD_LIMIT (hard): a few hundred sockets would exhaust it if
    the API did not bound its connections."""

    def args(self):
        limit = (f"import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT // 2}, {FD_LIMIT})); "
                 "os.execv(sys.argv[1], sys.argv[1:])")
        return [sys.executable, "-c", limit] + super().args() + [
            "--api-header-read-timeout", str(HEADER_READ_TIMEOUT_S),
            "--api-idle-timeout", "5",
            "--api-body-read-timeout", "5",
            "--api-max-connections", str(MAX_CONNECTIONS),
        ]


@pytest.fixture(scope="module", params=backends())
def server(request):
    yield from running(TightServer(request.param))


def status_file(server):
    with open(f"/proc/{server.proc.pid}/status") as f:
        return dict(line.split(":", 1) for line in f if ":" in line)


def kib(value):
    return int(value.split()[0])


def read_response(sock, timeout=5):
    """Reads one response head from `sock`; returns (status, {lower-case header: value})."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data!r}")
        data += chunk
    return parse_head(data.split(b"\r\n\r\n", 1)[0])


def wait_closed(sock, timeout):
    """Seconds until the server closes `sock` (EOF or reset), failing after `timeout`."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            if time.monotonic() - start > timeout:
                break
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        raise AssertionError(f"the server kept the connection open for {timeout}s")
    return time.monotonic() - start


def raw_head(method, path, host, headers):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def signed_head(server, method, path, service, body):
    """The head of a request correctly signed (botocore's SigV4) over `body`."""
    headers = sigv4_headers(server, method, path, body, service)
    headers["Content-Length"] = str(len(body))
    host, port = server.api_address()
    return raw_head(method, path, f"{host}:{port}", headers)


@contextlib.contextmanager
def slow_sockets(server, count, payload=b"P"):
    """`count` connections that each sent `payload` and then fell silent."""
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection(server.api_address(), timeout=5)
            s.sendall(payload)
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def test_the_server_raises_its_soft_descriptor_limit_to_the_hard_one(server):
    with open(f"/proc/{server.proc.pid}/limits") as f:
        line = next(l for l in f if l.startswith("Max open files"))
    assert line.split()[3:5] == [str(FD_LIMIT), str(FD_LIMIT)], line


def test_concurrent_unsigned_uploads_do_not_grow_the_server(server):
    """20 unsigned 66 MB uploads at once: the old gate buffered each body before checking the
    signature (21 → 1,312 MiB). Now each gets its 403 from the head and its connection is closed,
    so the server's peak RSS stays far below what 20 bodies would need."""
    host, port = server.api_address()
    head = raw_head("POST", "/2015-03-31/functions", f"{host}:{port}",
                    {"Content-Type": "application/json", "Content-Length": "66000000"})
    chunk = os.urandom(MIB)
    results = [None] * 20

    def upload(i):
        s = socket.create_connection((host, port), timeout=10)
        sent = 0
        try:
            s.sendall(head)
            while sent < 66_000_000:
                s.sendall(chunk)
                sent += len(chunk)
            results[i] = ("sent everything", sent)
        except (ConnectionResetError, BrokenPipeError):
            # The server answered and closed: the rest of the body has nowhere to go.
            results[i] = ("closed", sent)
        except OSError as e:
            results[i] = ("failed", sent, repr(e))
        finally:
            s.close()

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    peak = kib(status_file(server)["VmHWM"])
    assert peak < 200 * 1024, f"peak RSS {peak} KiB"
    assert all(r is not None and r[0] == "closed" for r in results), results
    assert server.health()[0] == 200


@pytest.mark.parametrize("path", ["/2015-03-31/functions", "/services"])
def test_unsigned_upload_is_answered_before_its_body(server, path):
    host, port = server.api_address()
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(raw_head("POST", path, f"{host}:{port}",
                           {"Content-Type": "application/json", "Content-Length": "66000000"}))
        status, headers = read_response(s)
        assert status == 403
        assert headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
        # The unread body makes the connection useless; the server says so and closes it.
        assert headers.get("connection") == "close"
        wait_closed(s, CLOSE_MARGIN_S)


# (operation, method, path, signing name, body length, status, error code)
OVER_CAP = [
    ("CreateService", "POST", "/services", "vpc-lattice", LATTICE_CAP + 1, 400, "ValidationException"),
    ("Invoke", "POST", "/2015-03-31/functions/f/invocations", "lambda", INVOKE_CAP + 1, 413,
     "RequestTooLargeException"),
    ("CreateFunction", "POST", "/2015-03-31/functions", "lambda", CODE_CAP + 1, 413,
     "RequestEntityTooLargeException"),
]


@pytest.mark.parametrize("op,method,path,service,length,status,code", OVER_CAP, ids=[c[0] for c in OVER_CAP])
def test_signed_body_over_its_cap_is_answered_before_its_body(server, op, method, path, service, length, status,
                                                              code):
    head = signed_head(server, method, path, service, b"x" * length)
    with socket.create_connection(server.api_address(), timeout=5) as s:
        s.sendall(head)
        got, headers = read_response(s)
        assert (got, headers["x-amzn-errortype"]) == (status, code), op


def test_slow_sockets_are_closed_after_the_header_read_timeout(server):
    # (what the client sends before falling silent)
    for payload in [b"P", b"GET /_trellis/health HTTP/1.1\r\nHost: x", b""]:
        with slow_sockets(server, 1, payload) as [s]:
            took = wait_closed(s, HEADER_READ_TIMEOUT_S + CLOSE_MARGIN_S)
            assert took < HEADER_READ_TIMEOUT_S + CLOSE_MARGIN_S, payload


def test_health_answers_with_more_slow_sockets_than_descriptors(server):
    """More silent sockets than the server has descriptors: the old API accepted until it ran
    out and then answered nothing. The connection cap makes each newcomer replace the oldest
    silent one, so health keeps answering; every silent socket is closed in the end."""
    with slow_sockets(server, FD_LIMIT + 144) as socks:
        assert server.health()[0] == 200
        open_fds = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
        assert open_fds < FD_LIMIT - 64, open_fds
        for s in socks:
            wait_closed(s, HEADER_READ_TIMEOUT_S + CLOSE_MARGIN_S)
    assert server.health()[0] == 200


def test_signed_calls_with_bodies_work_while_slow_sockets_wait(server):
    lattice = server.client()
    lam = server.client("lambda")
    with slow_sockets(server, FD_LIMIT + 144):
        name = unique("sec")
        created = lattice.create_service(name=name, tags={"k": "v" * 256})
        assert created["name"] == name
        # A multi-MiB deployment package: 3 MiB of incompressible data next to the handler.
        package = zip_bytes({"app.py": PY_APP, "blob.bin": os.urandom(3 * MIB)})
        assert len(base64.b64encode(package)) > 4 * MIB
        fn = unique("secfn")
        lam.create_function(FunctionName=fn, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": package})
        got = lam.get_function(FunctionName=fn)
        assert got["Configuration"]["CodeSize"] == len(package)
    assert server.health()[0] == 200
