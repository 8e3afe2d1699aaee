"""Connection-level attacks on the data plane of a real `trellis serve`, as a hostile client would
make them (issue 9, defects 4 and 9):

- slowloris: sockets that send nothing, one byte, half a request head, a head trickled byte by
  byte, or half a TLS ClientHello are closed by the handshake deadline or the header-read timeout
  (short values set by flags), not held until the idle timeout or forever;
- descriptor exhaustion: with the server's open-file limit lowered to 512 and no cap flags at all,
  700 slow sockets are not allowed to take every descriptor: the connections over the default
  cap are closed at once and the API's `/_trellis/health` still answers 200;
- the per-source cap: once one client address holds its allowance, its next connection is closed
  at once while a well-behaved client from another address (127.0.0.2; all of 127/8 is loopback)
  is still served;
- request bodies the client breaks (an invalid chunk size, a body shorter than its Content-Length)
  answer 400, not 502.
"""

import resource
import select
import socket
import time

import pytest

from backends import INGRESS, DataPlaneServer, forwarding_service, ip_target_group
from conftest import backends as store_backends

# Well above every deadline configured below, so that a slow machine does not fail the tests, and
# far below "never".
MARGIN_S = 10


class LimitedServer(DataPlaneServer):
    """`trellis serve` with extra flags, optionally under a lowered open-file limit (soft and hard,
    through util-linux `prlimit`, which execs the server in place)."""

    def __init__(self, backend, extra_args=(), nofile=None):
        super().__init__(backend, extra_args)
        self.nofile = nofile

    def args(self):
        wrapper = ["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--"] if self.nofile else []
        return wrapper + super().args()


@pytest.fixture(scope="module", params=store_backends())
def make_server(request):
    """A factory of servers (each with its own flags) for the module's store backend."""
    started = []

    def make(*flags, nofile=None):
        s = LimitedServer(request.param, flags, nofile).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.cleanup()


@pytest.fixture(scope="module")
def backend(start_backend):
    return start_backend("conn")


def serve_service(server, backend, tls=False):
    """A service forwarding to `backend` on a fresh port (HTTP, or HTTPS with `tls`); returns
    (dns name, port) once the data plane serves it."""
    lattice = server.client()
    tg = ip_target_group(lattice, health_check={"enabled": False}, targets=[backend])
    svc, port = forwarding_service(server, lattice, tg, "HTTPS" if tls else "HTTP")
    return svc.dns_name, port


def connect(port, source=INGRESS):
    """A TCP connection to the ingress port from `source` (any 127/8 address)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(10)
    s.connect((INGRESS, port))
    s.setblocking(False)
    return s


def is_closed(s):
    """Whether the server has closed `s` (EOF or reset); discards whatever it sent."""
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def wait_closed(socks, timeout):
    """Waits (bounded by `timeout` seconds) for each socket in `socks` {name: socket} to be closed by
    the server; returns {name: seconds after the call when it was seen closed} for those that were."""
    start = time.monotonic()
    closed = {}
    while len(closed) < len(socks):
        left = start + timeout - time.monotonic()
        if left <= 0:
            break
        waiting = {s: name for name, s in socks.items() if name not in closed}
        readable, _, _ = select.select(list(waiting), [], [], min(left, 0.5))
        for s in readable:
            if is_closed(s):
                closed[waiting[s]] = time.monotonic() - start
    return closed


def request_bytes(name, path="/"):
    return f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()


def exchange(port, data, source=INGRESS, half_close=False, timeout=30):
    """Sends `data` on a new connection from `source` and returns everything the server sends back
    until it closes. `half_close` shuts down the sending side after `data`."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(timeout)
    try:
        s.connect((INGRESS, port))
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_of(raw):
    line = raw.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith("HTTP/") else None


def test_slowloris_sockets_are_closed_by_the_configured_deadlines(make_server, backend):
    handshake_s, header_s = 2, 3
    server = make_server("--handshake-timeout", str(handshake_s), "--header-read-timeout", str(header_s),
                         "--idle-timeout", "600")
    name, port = serve_service(server, backend)
    tls_name, tls_port = serve_service(server, backend, tls=True)

    socks, deadline_of = {}, {}
    # (case, port, bytes sent, the deadline that must close it)
    cases = [
        ("silent", port, b"", handshake_s),
        ("one byte", port, b"G", header_s),
        ("half a head", port, f"GET / HTTP/1.1\r\nHost: {name}\r\n".encode(), header_s),
        ("half an HTTP/2 preface", port, b"PRI * HTTP/2.0\r\n", header_s),
        # A TLS record header announcing a 512-byte ClientHello, and its first bytes only.
        ("half a ClientHello", tls_port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", handshake_s),
    ]
    start = time.monotonic()
    for case, p, data, deadline in cases:
        s = connect(p)
        if data:
            s.send(data)
        socks[case] = s
        deadline_of[case] = deadline
    # A head that keeps trickling in, one byte every 0.3 s: progress does not extend the deadline.
    trickle = connect(port)
    trickled = f"GET / HTTP/1.1\r\nHost: {name}\r\nX-Slow: {'a' * 200}".encode()
    trickle_start = time.monotonic()
    trickle_closed = None
    try:
        for byte in trickled:
            if is_closed(trickle):
                trickle_closed = time.monotonic() - trickle_start
                break
            try:
                trickle.send(bytes([byte]))
            except OSError:
                trickle_closed = time.monotonic() - trickle_start
                break
            if time.monotonic() - trickle_start > header_s + MARGIN_S:
                break
            time.sleep(0.3)
        assert trickle_closed is not None, "a trickled head was never cut off"
        assert header_s - 0.3 <= trickle_closed <= header_s + MARGIN_S, trickle_closed

        elapsed_before = time.monotonic() - start
        closed = wait_closed(socks, max(handshake_s, header_s) + MARGIN_S)
        for case, deadline in deadline_of.items():
            assert case in closed, f"{case}: still open after {deadline + MARGIN_S}s"
            # Closed by its own deadline, not earlier (seen at most `elapsed_before` late).
            seen = closed[case] + elapsed_before
            assert seen >= deadline - 0.3, f"{case}: closed after {seen:.2f}s, before {deadline}s"
            assert seen <= deadline + MARGIN_S, f"{case}: closed after {seen:.2f}s"
    finally:
        trickle.close()
        for s in socks.values():
            s.close()

    # A well-behaved client is served as before.
    assert status_of(exchange(port, request_bytes(name, "/ok"))) == 200


def test_health_answers_while_a_listener_is_saturated(make_server, backend):
    # No cap flags: the default cap, sized from the open-file limit, is what protects the server.
    # At 512 descriptors it admits 128 client connections and leaves the rest to the API, DNS,
    # the store and upstream connections.
    server = make_server(nofile=512)
    name, port = serve_service(server, backend)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 700
    if soft < want + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, want + 200), hard))
    socks = {}
    try:
        for i in range(want):
            # Spread over source addresses, so that the per-source cap plays no part.
            s = connect(port, source=f"127.0.1.{i % 200 + 1}")
            s.send(b"G")
            socks[i] = s
        # The API and its health endpoint still answer while the listener is saturated (before,
        # the slow sockets took every descriptor and the API could not accept).
        status, body = server.admin("/_trellis/health")
        assert status == 200, body
        assert server.client().list_services()["ResponseMetadata"]["HTTPStatusCode"] == 200
        # The connections over the cap were closed at once, well before any deadline (10 s).
        closed = wait_closed(socks, 5)
        assert len(closed) >= want - 128 - 10, f"only {len(closed)} of {want} slow sockets were closed at once"
        assert len(closed) < want, "the admitted slow sockets were closed too"
    finally:
        for s in socks.values():
            s.close()
    # Once the slow sockets are gone, the data plane serves again.
    deadline = time.monotonic() + 30
    while True:
        try:
            if status_of(exchange(port, request_bytes(name, "/after"), timeout=5)) == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the data plane did not serve after the slow sockets closed"
        time.sleep(0.1)


def test_per_source_cap_keeps_other_sources_served(make_server, backend):
    cap = 5
    # Long deadlines: only the cap can close a connection quickly here.
    server = make_server("--max-connections-per-source", str(cap), "--handshake-timeout", "60",
                         "--header-read-timeout", "60")
    name, port = serve_service(server, backend)
    held = {i: connect(port) for i in range(cap)}
    try:
        for s in held.values():
            s.send(b"G")
        over = connect(port)
        try:
            over.send(request_bytes(name))
        except OSError:
            pass  # already closed
        closed = wait_closed({"over the cap": over}, 5)
        assert "over the cap" in closed, "the connection over the per-source cap was not closed at once"
        assert wait_closed(held, 0.5) == {}, "connections within the cap were closed"
        # Another client address is served while 127.0.0.1 is at its cap.
        reply = exchange(port, request_bytes(name, "/other"), source="127.0.0.2")
        assert status_of(reply) == 200, reply[:200]
        # The API is unaffected.
        assert server.admin("/_trellis/health")[0] == 200
    finally:
        for s in held.values():
            s.close()


@pytest.fixture(scope="module")
def plain(make_server, backend):
    """A server with default flags and a service forwarding to the echo backend."""
    server = make_server()
    return serve_service(server, backend)


@pytest.mark.parametrize("case,framing,body", [
    ("bad chunk size", "Transfer-Encoding: chunked", b"zz\r\n"),
    ("negative chunk size", "Transfer-Encoding: chunked", b"5\r\nhello\r\n-1\r\n"),
    ("chunk size overflow", "Transfer-Encoding: chunked", b"fffffffffffffffff0\r\n"),
    ("body shorter than its content-length", "Content-Length: 100", b"only ten b"),
])
def test_malformed_request_bodies_are_400(plain, case, framing, body):
    name, port = plain
    # The echo backend reads the whole body before answering, so the body's failure is what ends
    # the request; the client half-closes so that it can still read the answer.
    head = f"POST /echo HTTP/1.1\r\nHost: {name}\r\n{framing}\r\n\r\n".encode()
    reply = exchange(port, head + body, half_close=True)
    assert status_of(reply) == 400, f"{case}: {reply[:300]!r}"
