"""Security probes that held (issue 9): HTTP/2 against the data plane (h2c with prior knowledge on
an HTTP listener, raw sockets driven by the python `h2` state machine, and raw frames where `h2`
would refuse to send them).

- Desync: requests that are malformed in HTTP/2 (connection-specific fields, CR/LF in a field, a
  content-length that disagrees with the DATA frames) are refused as stream errors, and the
  HTTP/1.1 target behind Trellis never sees a request the client did not send.
- Header limits over HTTP/2 (Lattice's 100 fields and 60 KiB → 400; far beyond → the stream or
  connection is refused).
- Floods (rapid reset, CONTINUATION, an HPACK bomb, SETTINGS and PING): the server resets the
  streams or closes the connection, keeps answering other clients, and its resident memory stays
  bounded. The memory bound is generous (64 MiB over the level before the flood) yet far below
  what an unbounded server reaches: each flood would cost hundreds of MiB if buffered.
"""

import struct
import uuid

import pytest

from probes_support import H2, backend_requests, h2_get, normal_request, probe_env, rss_kib

__all__ = ["probe_env"]

RSS_GROWTH_LIMIT_KIB = 64 * 1024

# HTTP/2 error codes (RFC 9113 §7).
PROTOCOL_ERROR = 0x1
ENHANCE_YOUR_CALM = 0xB


def frame(ftype, flags, sid, payload):
    """One raw HTTP/2 frame (RFC 9113 §4.1)."""
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, CONTINUATION = 0x1, 0x2, 0x3, 0x4, 0x6, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4


def hpack_int(value, prefix_bits, first=0):
    """An HPACK integer (RFC 7541 §5.1) with `first`'s high bits set in the first octet."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value, indexing=False):
    """A literal field with a new name, without (0x00) or with (0x40) incremental indexing."""
    first = 0x40 if indexing else 0x00
    return (bytes([first]) + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value)


def request_block(env, path=b"/"):
    """The HPACK block of a GET to the probe service, literal fields only (no dynamic table)."""
    return (b"\x82\x86" + hpack_literal(b":path", path) + hpack_literal(b":authority", env.name.encode()))


def check_still_serving(env, before_rss):
    """The server answers a normal request on another connection, and its memory stayed bounded."""
    normal_request(env, uuid.uuid4().hex)
    assert env.server.proc.poll() is None, env.server.log()
    grown = rss_kib(env.server) - before_rss
    assert grown < RSS_GROWTH_LIMIT_KIB, f"RSS grew by {grown} KiB"


# ---------------------------------------------------------------------------------------------
# Desync: malformed HTTP/2 requests never become HTTP/1.1 requests the client did not send.

MALFORMED = [
    # (id, extra request fields, method, path). Each is malformed per RFC 9113 §8.2 / §8.3.
    ("transfer-encoding", [(b"transfer-encoding", b"chunked")], b"POST", b"/probe"),
    ("connection", [(b"connection", b"keep-alive")], b"GET", b"/probe"),
    ("keep-alive", [(b"keep-alive", b"timeout=5")], b"GET", b"/probe"),
    ("proxy-connection", [(b"proxy-connection", b"keep-alive")], b"GET", b"/probe"),
    ("upgrade", [(b"upgrade", b"websocket")], b"GET", b"/probe"),
    ("te other than trailers", [(b"te", b"gzip")], b"GET", b"/probe"),
    ("CRLF in a value", [(b"x-probe", b"a\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")], b"GET", b"/probe"),
    ("LF in a value", [(b"x-probe", b"a\nTransfer-Encoding: chunked")], b"GET", b"/probe"),
    ("CRLF in the path", [], b"GET", b"/probe HTTP/1.1\r\nHost: x\r\n\r\nGET /smuggled"),
    ("space in the method", [], b"GET /smuggled HTTP/1.1\r\nX:", b"/probe"),
    ("uppercase field name", [(b"X-Probe", b"a")], b"GET", b"/probe"),
    ("colon in a field name", [(b"x:probe", b"a")], b"GET", b"/probe"),
]


@pytest.mark.parametrize("extra,method,path", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_h2_request_is_a_stream_error(probe_env, extra, method, path):
    env = probe_env
    before = backend_requests(env)
    c = H2(env.port)
    try:
        sid = c.request(h2_get(env, path, extra, method=method), body=b"" if method == b"POST" else None)
        st = c.wait(sid)
    finally:
        c.close()
    # A stream error (RST_STREAM PROTOCOL_ERROR: the connection-specific fields), a connection
    # error (GOAWAY PROTOCOL_ERROR: CR, LF, uppercase or a colon where HPACK output must not have
    # them), or a 400 (RFC 9113 §8.1.1 lets an intermediary answer one): never the target.
    refused = PROTOCOL_ERROR in (st["reset"], c.goaway) or st["status"] == 400
    assert refused, st
    assert st["headers"].get("x-backend") is None, st
    assert backend_requests(env) == before
    normal_request(env, uuid.uuid4().hex)
    assert backend_requests(env) == before + 1


SMUGGLE_BODY = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
LENGTH_CASES = [
    # (id, declared content-length, DATA bytes): a body longer, or shorter, than declared.
    ("content-length 0, body a request", b"0", SMUGGLE_BODY),
    ("content-length short", b"5", SMUGGLE_BODY),
    ("content-length long", b"1000", SMUGGLE_BODY),
]


@pytest.mark.parametrize("declared,body", [c[1:] for c in LENGTH_CASES], ids=[c[0] for c in LENGTH_CASES])
def test_content_length_disagreeing_with_data(probe_env, declared, body):
    env = probe_env
    before = backend_requests(env)
    c = H2(env.port)
    try:
        sid = c.request(h2_get(env, "/probe", [(b"content-length", declared)], method=b"POST"), body=body)
        st = c.wait(sid)
    finally:
        c.close()
    # The stream fails: reset, or an error status. Never a 2xx, which would mean a body that
    # disagrees with its length was accepted.
    assert PROTOCOL_ERROR in (st["reset"], c.goaway) or (st["status"] or 0) >= 400, st
    # At most the request itself reached the target (its head may be forwarded before the body
    # fails); never the request hidden in the body.
    after = backend_requests(env)
    assert after - before <= 1
    echo = normal_request(env, uuid.uuid4().hex)
    assert echo["path"] == "/normal"
    assert backend_requests(env) == after + 1


def test_well_formed_h2_request_reaches_the_target(probe_env):
    """The control: the same client, well-formed, gets the target's answer, so the refusals above
    are the server's doing and not the client's."""
    env = probe_env
    c = H2(env.port)
    try:
        sid = c.request(h2_get(env, "/probe", [(b"content-length", b"3")], method=b"POST"), body=b"abc")
        st = c.wait(sid)
    finally:
        c.close()
    assert st["status"] == 200 and st["headers"]["x-backend"] == "probe", st
    assert b'"bodyLength":3' in st["data"]


# ---------------------------------------------------------------------------------------------
# Header limits over HTTP/2 (the HTTP/1.1 cases are in test_traffic_headers.py).

H2_LIMIT_CASES = [
    # (id, extra fields, expected): 4 pseudo-fields are not header fields.
    ("100 fields", [(f"x-h{i}".encode(), b"v") for i in range(100)], 200),
    ("101 fields", [(f"x-h{i}".encode(), b"v") for i in range(101)], 400),
    ("50 KB", [(f"x-big{i}".encode(), b"b" * 10_000) for i in range(5)], 200),
    ("70 KB in one field", [(b"x-big", b"b" * 70_000)], 400),
    ("70 KB in 7 fields", [(f"x-big{i}".encode(), b"b" * 10_000) for i in range(7)], 400),
    ("1 MB", [(f"x-big{i}".encode(), b"b" * 10_000) for i in range(100)], "refused"),
]


@pytest.mark.parametrize("extra,expected", [c[1:] for c in H2_LIMIT_CASES], ids=[c[0] for c in H2_LIMIT_CASES])
def test_h2_header_limits(probe_env, extra, expected):
    env = probe_env
    before = backend_requests(env)
    c = H2(env.port)
    try:
        sid = c.request(h2_get(env, "/limits", extra))
        st = c.wait(sid, timeout=30)
    finally:
        c.close()
    if expected == "refused":
        # Far beyond the limits: the server's header list limit refuses it before the pipeline
        # (431, a stream reset or the connection closed).
        assert st["status"] in (None, 400, 431) and st["headers"].get("x-backend") is None, st
        assert st["status"] is not None or st["reset"] is not None or c.goaway is not None or c.closed
    else:
        assert st["status"] == expected, st
        assert (st["headers"].get("x-backend") == "probe") == (expected == 200), st
    assert backend_requests(env) - before == (1 if expected == 200 else 0)


# ---------------------------------------------------------------------------------------------
# Floods.

def test_rapid_reset(probe_env):
    """CVE-2023-44487: streams opened and cancelled at once, up to 20,000 of them, on one
    connection. The server ends the connection (hyper's h2 answers GOAWAY ENHANCE_YOUR_CALM once
    too many streams were reset before it accepted them) long before the 20,000, and the
    cancelled streams do not become work at the target."""
    env = probe_env
    before_rss, before = rss_kib(env.server), backend_requests(env)
    c = H2(env.port)
    sent = 0
    try:
        headers = h2_get(env, "/reset")
        for _ in range(5000):
            if c.closed or c.goaway is not None:
                break
            block = b""
            for _ in range(100):
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, headers, end_stream=True)
                c.conn.reset_stream(sid, error_code=0x8)  # CANCEL
                sent += 1
            c.flush()
            c.pump(0.001)
            if sent >= 20_000:
                break
    finally:
        c.close()
    reached = backend_requests(env) - before
    check_still_serving(env, before_rss)
    assert c.goaway in (ENHANCE_YOUR_CALM, None) and (c.closed or c.goaway is not None), \
        f"{sent} streams reset; GOAWAY {c.goaway}, closed {c.closed}"
    assert sent < 20_000
    # Cancelled streams must not have become target requests: the cancel races the forward, so
    # a few may, but a server that forwards every cancelled stream is the attack.
    assert reached < sent // 2, (reached, sent, c.goaway)


def test_continuation_flood(probe_env):
    """A HEADERS frame without END_HEADERS followed by endless CONTINUATION frames (the 2024
    CONTINUATION flood): the server must stop reading the block at its header list limit and
    close, not buffer it. 64 MiB is offered in 16 KiB frames."""
    env = probe_env
    before_rss, before = rss_kib(env.server), backend_requests(env)
    c = H2(env.port)
    filler = hpack_literal(b"x-f", b"v" * 100) * 150  # ~16 KB of valid, non-indexed fields
    frames_sent = 0
    try:
        c.send_raw(frame(HEADERS, 0, 1, request_block(env)))
        for _ in range(4096):
            if not c.send_raw(frame(CONTINUATION, 0, 1, filler)):
                break
            frames_sent += 1
            if frames_sent % 16 == 0 and not c.pump(0.001):
                break
            if c.goaway is not None:
                break
        # Drain whatever is left: the server must end the connection, not wait for more.
        for _ in range(100):
            if c.closed or c.goaway is not None:
                break
            c.pump(0.1)
    finally:
        c.close()
    assert c.closed or c.goaway is not None, "the server kept reading CONTINUATION frames"
    assert frames_sent < 4096, "all 64 MiB of CONTINUATION frames were accepted"
    assert backend_requests(env) == before
    check_still_serving(env, before_rss)


def test_hpack_bomb(probe_env):
    """One 4 KB field stored in the HPACK dynamic table, then referenced by one-byte indexes many
    thousands of times, on several streams: each block decodes to ~64 MB. The header list limit
    must stop the decoding, not the process's memory."""
    env = probe_env
    before_rss, before = rss_kib(env.server), backend_requests(env)
    c = H2(env.port)
    refused = 0
    try:
        big = hpack_literal(b"x-bomb", b"b" * 4000, indexing=True)  # 4,038 bytes in the table
        refs = b"\xbe" * 16_000  # index 62: the newest dynamic table entry
        for n in range(10):
            sid = 1 + 2 * n
            block = request_block(env, b"/bomb") + (big if n == 0 else b"") + refs
            first, rest = block[:16_000], block[16_000:]
            ok = c.send_raw(frame(HEADERS, END_STREAM, sid, first))
            while ok and rest:
                piece, rest = rest[:16_000], rest[16_000:]
                ok = c.send_raw(frame(CONTINUATION, 0 if rest else END_HEADERS, sid, piece))
            if not ok:
                break
            c.pump(0.05)
        for _ in range(100):
            if c.closed or c.goaway is not None:
                break
            c.pump(0.1)
        refused = sum(1 for s in c.streams.values() if s["status"] in (400, 431) or s["reset"] is not None)
    finally:
        c.close()
    # No bomb reached the target; each was refused, or the connection was.
    assert backend_requests(env) == before
    assert c.closed or c.goaway is not None or refused > 0
    check_still_serving(env, before_rss)


@pytest.mark.parametrize("kind", ["SETTINGS", "PING"])
def test_control_frame_flood(probe_env, kind):
    """2,000,000 SETTINGS (each needing an ACK) or PING frames (each needing a PONG) sent without
    reading a byte of the answers: the server must stop reading (back-pressure) or close, not
    queue two million answers (tens of MiB). Sending stops at the first write that blocks for the
    socket timeout."""
    env = probe_env
    before_rss = rss_kib(env.server)
    c = H2(env.port, timeout=2)
    if kind == "SETTINGS":
        one = frame(SETTINGS, 0, 0, struct.pack(">HI", 0x3, 100))  # MAX_CONCURRENT_STREAMS
    else:
        one = frame(PING, 0, 0, b"12345678")
    batch = one * 10_000
    sent = 0
    try:
        for _ in range(200):
            if not c.send_raw(batch):
                break
            sent += 10_000
        mid_rss = rss_kib(env.server)
        check_still_serving(env, before_rss)
    finally:
        c.close()
    # It stopped reading (our write blocked) or closed: it did not read two million frames while
    # their answers had nowhere to go.
    assert sent < 2_000_000 or c.closed, sent
    assert mid_rss - before_rss < RSS_GROWTH_LIMIT_KIB, (sent, mid_rss - before_rss)
    check_still_serving(env, before_rss)
