"""Security probes that held (issue 9): Trellis's DNS server against malformed messages over UDP
and TCP (truncated headers, lying section counts, compression-pointer loops, oversized and
malformed names, stray responses, random bytes). The server must not crash or stall: after each
probe, a well-formed query on the same socket is answered with the service's address, and the
process is still running at the end. Replies to malformed messages, when there are any, are
well-formed DNS error responses.

DNS parsing does not depend on the store, so one SQLite-backed server is enough.
"""

import random
import socket
import struct

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from backends import INGRESS
from probes_support import SOCKET_TIMEOUT_S, probe_env

__all__ = ["probe_env"]


def header(qid=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


def qname(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\x00"


QTAIL = struct.pack(">HH", 1, 1)  # type A, class IN

# (id, message bytes). Each is malformed or hostile; none may crash the server.
PROBES = [
    ("empty", b""),
    ("one byte", b"\x12"),
    ("truncated header", header()[:11]),
    ("header only, one question claimed", header()),
    ("all counts 65535", header(qd=65535, an=65535, ns=65535, ar=65535) + qname("a.example") + QTAIL),
    ("pointer to itself", header() + b"\xc0\x0c" + QTAIL),
    ("two pointers in a loop", header() + b"\x01a\xc0\x0e" + b"\xc0\x0c" + QTAIL),
    ("pointer past the end", header() + b"\xc0\xff" + QTAIL),
    ("forward pointer chain", header() + b"\xc0\x0e\xc0\x10\xc0\x12\xc0\x0c" + QTAIL),
    ("label type 01", header() + b"\x40abc\x00" + QTAIL),
    ("label type 10", header() + b"\x80abc\x00" + QTAIL),
    ("label longer than the message", header() + b"\x3faaaa"),
    ("name without its root label", header() + b"\x01a\x01b"),
    ("name over 255 octets", header() + (b"\x3f" + b"a" * 63) * 5 + b"\x00" + QTAIL),
    ("name of 127 labels via pointers", header() + b"\x01a" * 127 + b"\x00" + QTAIL),
    ("question without type", header() + qname("a.example")),
    ("two questions", header(qd=2) + (qname("a.example") + QTAIL) * 2),
    ("a response, not a query", header(flags=0x8180) + qname("a.example") + QTAIL),
    ("opcode UPDATE", header(flags=0x2800) + qname("a.example") + QTAIL),
    ("EDNS version 7", header(ar=1) + qname("a.example") + QTAIL + b"\x00\x00\x29\x10\x00\x00\x07\x00\x00\x00\x00"),
    ("OPT with a lying rdlength", header(ar=1) + qname("a.example") + QTAIL + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\xff\xff"),
    ("answer with a lying rdlength", header(an=1) + qname("a.example") + QTAIL + b"\xc0\x0c\x00\x01\x00\x01"
     + b"\x00\x00\x00\x3c\xff\xff\x7f\x00"),
    ("AXFR", header() + qname("a.example") + struct.pack(">HH", 252, 1)),
    ("class ANY", header() + qname("a.example") + struct.pack(">HH", 1, 255)),
]

RNG = random.Random(9)
GARBAGE = [bytes(RNG.getrandbits(8) for _ in range(RNG.randrange(0, 600))) for _ in range(150)]
# Garbage behind a plausible query header, so that the parser goes past the header.
GARBAGE += [header(qid=i) + bytes(RNG.getrandbits(8) for _ in range(RNG.randrange(0, 300))) for i in range(150)]


def good_query(env, qid):
    q = dns.message.make_query(env.name, dns.rdatatype.A)
    q.id = qid
    return q


def assert_good_answer(env, wire, qid):
    r = dns.message.from_wire(wire)
    assert r.id == qid and r.rcode() == dns.rcode.NOERROR, r
    addrs = [rd.address for rrset in r.answer for rd in rrset]
    assert addrs == [INGRESS], r


def assert_error_reply(wire):
    """A reply to a malformed message: a DNS response, with an error code (or, for the oddities
    that do parse, an authoritative negative answer)."""
    assert len(wire) >= 12, wire
    flags = struct.unpack(">H", wire[2:4])[0]
    assert flags & 0x8000, "a reply must be a response"
    assert flags & 0x000F in (dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NXDOMAIN, dns.rcode.NOTIMP,
                              dns.rcode.REFUSED, dns.rcode.NOERROR), wire[:12]


def udp_probe(env, payload, qid):
    """Sends `payload`, then a good query with id `qid`, on one UDP socket; returns the other
    datagrams that arrived before the good answer."""
    host, port = env.server.dns_address()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(SOCKET_TIMEOUT_S)
        s.sendto(payload, (host, port))
        s.sendto(good_query(env, qid).to_wire(), (host, port))
        others = []
        for _ in range(10):
            wire, _ = s.recvfrom(65535)
            if len(wire) >= 2 and struct.unpack(">H", wire[:2])[0] == qid and wire[3] & 0x0F == 0 and len(wire) > 12:
                assert_good_answer(env, wire, qid)
                return others
            others.append(wire)
        raise AssertionError(f"no answer to the good query; got {others!r}")


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        try:
            chunk = s.recv(n - len(data))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def tcp_probe(env, payload, qid):
    """Sends `payload` length-prefixed, then a good query, on one TCP connection; returns the
    replies that came before the good answer, or None if the server closed the connection (then
    a new connection must still be served)."""
    host, port = env.server.dns_address()
    with socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S) as s:
        good = good_query(env, qid).to_wire()
        s.sendall(struct.pack(">H", len(payload)) + payload + struct.pack(">H", len(good)) + good)
        others = []
        for _ in range(10):
            size = recv_exact(s, 2)
            if size is None:
                return None
            wire = recv_exact(s, struct.unpack(">H", size)[0])
            if wire is None:
                return None
            if struct.unpack(">H", wire[:2])[0] == qid and wire[3] & 0x0F == 0 and len(wire) > 12:
                assert_good_answer(env, wire, qid)
                return others
            others.append(wire)
        raise AssertionError(f"no answer to the good query; got {others!r}")


def assert_served(env):
    """A fresh dnspython query, over UDP and over TCP, gets the service's address."""
    host, port = env.server.dns_address()
    for query in (dns.query.udp, dns.query.tcp):
        r = query(good_query(env, 4242), host, port=port, timeout=SOCKET_TIMEOUT_S)
        assert_good_answer(env, r.to_wire(), 4242)
    assert env.server.proc.poll() is None, env.server.log()


@pytest.mark.parametrize("payload", [p[1] for p in PROBES], ids=[p[0] for p in PROBES])
def test_malformed_message(probe_env, payload):
    env = probe_env
    for reply in udp_probe(env, payload, 0x7001):
        assert_error_reply(reply)
    replies = tcp_probe(env, payload, 0x7002)
    for reply in replies or []:
        assert_error_reply(reply)
    assert_served(env)


def test_stray_response_is_not_answered(probe_env):
    """A response sent to the server is dropped, not answered (answering responses lets two
    servers be set to bounce packets at each other forever)."""
    env = probe_env
    stray = header(qid=0x5151, flags=0x8180) + qname("a.example") + QTAIL
    others = udp_probe(env, stray, 0x7003)
    assert not any(w[:2] == b"\x51\x51" for w in others), others


def test_random_garbage(probe_env):
    """300 seeded random datagrams, half behind a plausible header, ten at a time, each batch
    followed by a good query that must be answered. (Batches, not one burst: a burst of hundreds
    of datagrams overflows the socket's receive buffer and the kernel drops the good query too,
    which says nothing about the server.)"""
    env = probe_env
    host, port = env.server.dns_address()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(0, len(GARBAGE), 10):
            for g in GARBAGE[i:i + 10]:
                s.sendto(g, (host, port))
            for reply in udp_probe(env, b"", 0x7100 + i):
                assert_error_reply(reply)
            # The replies to the garbage that have arrived by now: DNS error responses.
            s.setblocking(False)
            while True:
                try:
                    assert_error_reply(s.recv(65535))
                except BlockingIOError:
                    break
            s.setblocking(True)
    assert_served(env)


@pytest.mark.parametrize("what", ["zero length", "length beyond data then close", "half a length prefix",
                                  "64 KiB of garbage"])
def test_tcp_framing_abuse(probe_env, what):
    """Broken TCP framing: the connection is dropped or ignored, and other clients are served."""
    env = probe_env
    host, port = env.server.dns_address()
    with socket.create_connection((host, port), timeout=SOCKET_TIMEOUT_S) as s:
        if what == "zero length":
            s.sendall(b"\x00\x00")
        elif what == "length beyond data then close":
            s.sendall(b"\xff\xff" + header())
        elif what == "half a length prefix":
            s.sendall(b"\x00")
        else:
            s.sendall(b"\xff\xff" + bytes(RNG.getrandbits(8) for _ in range(65535)))
        s.shutdown(socket.SHUT_WR)
        # The server answers with a FORMERR or closes; either way it ends the connection once
        # ours is half-closed.
        for _ in range(100):
            try:
                if not s.recv(65536):
                    break
            except ConnectionResetError:
                break
        else:
            raise AssertionError("the server kept a half-closed, malformed connection open")
    assert_served(env)
