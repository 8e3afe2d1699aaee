"""Shared pieces of the security probe tests (test_security_probes_*.py): a data-plane server with
one HTTP service in front of a testbackend, raw-socket helpers, and the server's resident memory.

The data-plane probes attack the HTTP parsers and the DNS parser, which do not touch the store, so
they run against one SQLite-backed server (`probe_env`) instead of once per store backend.
"""

import json
import socket
import time
from types import SimpleNamespace

import pytest

from backends import INGRESS, Backend, DataPlaneServer, forwarding_service, ip_target_group
from conftest import parse_head

# Every socket in the probes has this timeout, so that no probe can hang a test run.
SOCKET_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def probe_env():
    """A data-plane server (SQLite) with one HTTP service on a free port whose only target is a
    testbackend speaking HTTP/1.1, so that a request smuggled through Trellis would reach a
    separate HTTP parser and be counted there."""
    server = DataPlaneServer("sqlite").start()
    backend = Backend("probe").start()
    try:
        lattice = server.client()
        tg = ip_target_group(lattice, health_check={"enabled": False}, targets=[backend])
        svc, port = forwarding_service(server, lattice, tg)
        yield SimpleNamespace(server=server, backend=backend, lattice=lattice, port=port, name=svc.dns_name,
                              svc=svc)
    finally:
        backend.stop()
        server.cleanup()


def backend_requests(env):
    """How many requests the testbackend has served (its own counter, not Trellis's)."""
    return env.backend.stats()["requests"]


def rss_kib(server):
    """The server process's resident set size in KiB (VmRSS of /proc/PID/status)."""
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS line")


def connect(port, timeout=SOCKET_TIMEOUT_S):
    s = socket.create_connection((INGRESS, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def _recv_until(sock, done, timeout):
    """Receives until `done(data)` holds, the peer closes (or resets) the connection, or `timeout`
    passes. Returns (bytes, closed)."""
    deadline = time.monotonic() + timeout
    data = b""
    while not done(data):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return data, False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def read_until_closed(sock, limit=1 << 20, timeout=SOCKET_TIMEOUT_S):
    """Everything the peer sends until it closes the connection (or `timeout` passes with the
    connection still open, which the caller sees as `closed=False`). Returns (bytes, closed)."""
    return _recv_until(sock, lambda data: len(data) >= limit, timeout)


def parse_responses(data):
    """Splits a byte stream of HTTP/1.1 responses into [(status, headers, body)]. Bodies are
    framed by Content-Length or chunked encoding; a truncated tail is returned as is."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            out.append((None, {}, data))
            break
        status, headers = parse_head(head)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0] or b"0", 16)
                if size == 0:
                    rest = rest.partition(b"\r\n")[2]
                    break
                body += rest[:size]
                rest = rest[size + 2:]
        else:
            n = int(headers.get("content-length", "0"))
            body, rest = rest[:n], rest[n:]
        out.append((status, headers, body))
        data = rest
    return out


def echo_of(response):
    """The testbackend's JSON echo in a parsed response, or None for a response Trellis made."""
    status, headers, body = response
    if headers.get("x-backend") is None:
        return None
    return json.loads(body)


def normal_request(env, marker):
    """A plain GET on a fresh connection; returns the backend's echo. The marker in the query
    proves the response belongs to this request (not to one smuggled earlier into a pooled
    upstream connection)."""
    with connect(env.port) as s:
        s.sendall(f"GET /normal?m={marker} HTTP/1.1\r\nHost: {env.name}\r\nConnection: close\r\n\r\n".encode())
        data, closed = read_until_closed(s)
    responses = parse_responses(data)
    assert closed and len(responses) == 1, data[:500]
    echo = echo_of(responses[0])
    assert responses[0][0] == 200 and echo is not None, responses[0]
    assert (echo["path"], echo["query"]) == ("/normal", f"m={marker}"), echo
    return echo


def read_responses(sock, want, timeout=SOCKET_TIMEOUT_S):
    """Reads until `want` complete HTTP/1.1 responses have arrived, the peer closed, or `timeout`
    passed. Returns (raw bytes, closed)."""
    return _recv_until(sock, lambda data: _framed(data) and len(parse_responses(data)) >= want, timeout)


def _framed(data):
    """Whether `data` ends exactly at the end of its last response (its body fully arrived)."""
    try:
        rebuilt = 0
        rest = data
        while rest:
            head, sep, rest = rest.partition(b"\r\n\r\n")
            if not sep:
                return False
            lines = head.decode("latin-1").split("\r\n")
            headers = {l.partition(":")[0].strip().lower(): l.partition(":")[2].strip() for l in lines[1:]}
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size_line, sep, rest = rest.partition(b"\r\n")
                    if not sep:
                        return False
                    size = int(size_line.split(b";")[0], 16)
                    if size == 0:
                        if not rest.startswith(b"\r\n"):
                            return False
                        rest = rest[2:]
                        break
                    if len(rest) < size + 2:
                        return False
                    rest = rest[size + 2:]
            else:
                n = int(headers.get("content-length", "0"))
                if len(rest) < n:
                    return False
                rest = rest[n:]
            rebuilt += 1
        return rebuilt > 0
    except ValueError:
        return False


class H2:
    """A client HTTP/2 connection (h2c with prior knowledge) over a raw socket, driven by the
    python `h2` state machine with outbound validation off, so that it sends what an attacker
    would (connection-specific headers, CR/LF in values, lying content-length)."""

    def __init__(self, port, timeout=SOCKET_TIMEOUT_S):
        import h2.config
        import h2.connection
        self.sock = connect(port, timeout)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False,
                                        normalize_outbound_headers=False, validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        # Room for whole response bodies without window updates from the test.
        self.conn.local_settings.initial_window_size = 1 << 24
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 24)
        self.closed = False
        self.goaway = None
        self.streams = {}  # stream id -> {"status", "headers", "data", "reset", "ended"}
        self.flush()

    def flush(self):
        out = self.conn.data_to_send()
        if out and not self.closed:
            try:
                self.sock.sendall(out)
            except (BrokenPipeError, ConnectionResetError):
                self._write_failed()

    def send_raw(self, data):
        """Bytes straight onto the socket (frames the h2 state machine would not send)."""
        if self.closed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self._write_failed()
            return False
        except socket.timeout:
            # The server stopped reading (back-pressure); the connection may still be open.
            return False

    def _write_failed(self):
        """The server closed: read what it sent before closing (a GOAWAY names its reason)."""
        self._read(0.5)
        self.closed = True

    def request(self, headers, body=None, end_stream=True):
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = {"status": None, "headers": {}, "data": b"", "reset": None, "ended": False}
        self.conn.send_headers(sid, headers, end_stream=body is None and end_stream)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=end_stream)
        self.flush()
        return sid

    def pump(self, timeout):
        """Reads what the server sent within `timeout` seconds (one recv). False once closed."""
        if self.closed:
            return False
        return self._read(timeout)

    def _read(self, timeout):
        import h2.events
        import h2.exceptions
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return True
        except (ConnectionResetError, OSError):
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.closed = True
            return False
        for ev in events:
            st = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived) and st is not None:
                st["headers"] = {k.decode(): v.decode() for k, v in ev.headers}
                st["status"] = int(st["headers"][":status"])
            elif isinstance(ev, h2.events.DataReceived) and st is not None:
                st["data"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded) and st is not None:
                st["ended"] = True
            elif isinstance(ev, h2.events.StreamReset) and st is not None:
                st["reset"] = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev.error_code
        self.flush()
        return True

    def wait(self, sid, timeout=SOCKET_TIMEOUT_S):
        """Waits until stream `sid` ended or was reset, or the connection ended; its record."""
        deadline = time.monotonic() + timeout
        st = self.streams[sid]
        while not (st["ended"] or st["reset"] is not None or self.goaway is not None or self.closed):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"stream {sid} neither answered nor reset in {timeout}s: {st}")
            self.pump(remaining)
        return st

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def h2_get(env, path="/", extra=(), method=b"GET"):
    """The request headers of an HTTP/2 request to the probe service."""
    return [(b":method", method), (b":scheme", b"http"), (b":path", path.encode() if isinstance(path, str) else path),
            (b":authority", env.name.encode()), *extra]
