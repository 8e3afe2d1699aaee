"""Security probes that held (issue 9): HTTP/1.1 request smuggling against the data plane, over raw
sockets, as an attacker would send it.

Each case is an ambiguous or malformed request followed, on the same connection, by a complete
second request to `/smuggled`. Trellis must either refuse the request (400, or close without a
response) or read it one way and close the connection, and in every case the testbackend behind it
(a separate HTTP parser) must see exactly the requests whose responses the client received: no
`/smuggled` request ever reaches it, and a normal request on a fresh connection afterwards gets its
own response (a request smuggled into a pooled upstream connection would answer it instead)."""

import uuid

import pytest

from probes_support import (backend_requests, connect, echo_of, normal_request, parse_responses, probe_env,
                            read_responses)

# Re-exported so pytest finds the module-scoped fixture here.
__all__ = ["probe_env"]

SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: {host}\r\n\r\n"
# TE.CL: a chunked body whose single chunk is a whole request; a parser that trusted the
# Content-Length of 4 would read the chunk-size line as the body and the chunk as the next request.
INNER = "GET /smuggled HTTP/1.1\r\nHost: {host}\r\nContent-Length: 15\r\n\r\nx=1"
TE_CL_BODY = "{inner_len:x}\r\n" + INNER + "\r\n0\r\n\r\n"

# (id, the request with {host}, outcome, body length the target must see for "one-and-close").
# Outcomes:
#   "reject": 400 or closed without a response, and nothing reaches the target;
#   "one-and-close": Transfer-Encoding wins over Content-Length (RFC 9112 §6.3), the request is
#       answered once and the connection closed, so the bytes after its chunked body are never read;
#   "lenient": the parser may accept the framing (RFC 9112 §2.2 allows a bare LF as a line end);
#       then the request's body ends where the client framed it, so the request after it is an
#       ordinary pipelined one and is answered as such, in order, by Trellis and the target alike.
CASES = [
    ("CL.TE", "POST /probe HTTP/1.1\r\nHost: {host}\r\nContent-Length: {cl_te_len}\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, "one-and-close", "0"),
    ("TE.CL", "POST /probe HTTP/1.1\r\nHost: {host}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     + TE_CL_BODY, "one-and-close", "inner"),
    ("TE.CL, TE first", "POST /probe HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
     + TE_CL_BODY, "one-and-close", "inner"),
    ("two different Content-Length", "POST /probe HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n"
     "Content-Length: {smuggled_len}\r\n\r\n" + SMUGGLED, "reject", None),
    ("Content-Length list", "POST /probe HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0, {smuggled_len}\r\n\r\n"
     + SMUGGLED, "reject", None),
    ("Content-Length with a sign", "POST /probe HTTP/1.1\r\nHost: {host}\r\nContent-Length: +0\r\n\r\n" + SMUGGLED,
     "reject", None),
    ("TE chunked, identity", "POST /probe HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked, identity\r\n"
     "Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED, "reject", None),
    ("TE chunked then identity line", "POST /probe HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED, "reject", None),
    ("TE xchunked", "POST /probe HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n"
     "0\r\n\r\n" + SMUGGLED, "reject", None),
    ("TE on HTTP/1.0", "POST /probe HTTP/1.0\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
     + SMUGGLED, "reject", None),
    ("obs-fold hides TE", "POST /probe HTTP/1.1\r\nHost: {host}\r\nX-Probe: a\r\n Transfer-Encoding: chunked\r\n"
     "Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED, "reject", None),
    ("space before colon", "POST /probe HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding : chunked\r\n"
     "Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED, "reject", None),
    ("tab before colon", "POST /probe HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding\t: chunked\r\n"
     "Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED, "reject", None),
    ("bare CR in a header", "POST /probe HTTP/1.1\r\nHost: {host}\r\nX-Probe: a\rTransfer-Encoding: chunked\r\n"
     "Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED, "reject", None),
    ("NUL in a header", "POST /probe HTTP/1.1\r\nHost: {host}\r\nX-Probe: a\x00b\r\nContent-Length: 0\r\n\r\n"
     + SMUGGLED, "reject", None),
    # A bare LF is a line end to this parser, so the hidden Transfer-Encoding is seen and wins.
    ("bare LF hides TE", "POST /probe HTTP/1.1\r\nHost: {host}\r\nX-Probe: a\nTransfer-Encoding: chunked\r\n"
     "Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED, "one-and-close", "0"),
    ("bare LF line ends", "POST /probe HTTP/1.1\nHost: {host}\nContent-Length: 0\n\n" + SMUGGLED, "lenient", 0),
    # The chunked decoder insists on CRLF. DEFECT (issue 9, defect 9, "malformed chunk sizes answer
    # 502 instead of 400"): the body error is answered 502 Bad Gateway; nothing reaches the target,
    # so nothing is smuggled, but the status must be 400. Fails until that fix is merged.
    ("bare LF in chunk framing", "POST /probe HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
     "3\nabc\n0\n\n" + SMUGGLED, "reject", None),
]


def render(template, host):
    smuggled = SMUGGLED.format(host=host)
    inner = INNER.format(host=host)
    return template.format(host=host, smuggled_len=len(smuggled), cl_te_len=len("0\r\n\r\n" + smuggled),
                           inner_len=len(inner)).encode("latin-1"), len(inner)


@pytest.mark.parametrize("template,outcome,body", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_smuggling_probe(probe_env, template, outcome, body):
    env = probe_env
    payload, inner_len = render(template, env.name)
    before = backend_requests(env)
    with connect(env.port) as s:
        s.sendall(payload)
        data, closed = read_responses(s, 1)
        if not closed:
            # The connection is still open: a sentinel that asks to close lets every response the
            # server would give (a smuggled one included) arrive, without waiting on a timer.
            s.sendall(f"GET /sentinel HTTP/1.1\r\nHost: {env.name}\r\nConnection: close\r\n\r\n".encode())
            more, closed = read_responses(s, 99)
            data += more
    assert closed, f"connection neither answered fully nor closed: {data[:300]!r}"
    responses = parse_responses(data)
    echoes = [e for e in map(echo_of, responses) if e is not None]
    paths = [e["path"] for e in echoes]
    if outcome != "lenient":
        assert "/smuggled" not in paths, responses
    # The backend saw exactly the requests whose answers the client got, nothing hidden.
    assert backend_requests(env) - before == len(echoes), (paths, responses)
    first = responses[0] if responses else None
    if outcome == "reject":
        assert first is None or (first[0] == 400 and echo_of(first) is None), first
        assert "/probe" not in paths
    elif outcome == "one-and-close":
        # Answered by the target with the chunked reading, then closed: no sentinel was sent.
        assert first is not None and first[0] == 200, first
        assert paths == ["/probe"], paths
        assert echoes[0]["bodyLength"] == (inner_len if body == "inner" else 0), echoes[0]
        # What reached the target is framed one way only.
        assert not {"transfer-encoding", "content-length"} <= set(echoes[0]["headers"]), echoes[0]
    elif first is not None and first[0] == 400:
        assert paths == [], paths
    else:
        assert first is None or first[0] == 200, first
        assert paths == ["/probe", "/smuggled", "/sentinel"], paths
        assert echoes[0]["bodyLength"] == body, echoes[0]
    normal_request(env, uuid.uuid4().hex)
    assert backend_requests(env) - before == len(echoes) + 1


def test_pipelined_requests_are_each_answered_once(probe_env):
    """The control: three well-formed pipelined requests are three backend requests, in order,
    so the probes above would notice a smuggled one."""
    env = probe_env
    before = backend_requests(env)
    body = "a=1"
    with connect(env.port) as s:
        s.sendall((f"GET /p1 HTTP/1.1\r\nHost: {env.name}\r\n\r\n"
                   f"POST /p2 HTTP/1.1\r\nHost: {env.name}\r\nContent-Length: {len(body)}\r\n\r\n{body}"
                   f"GET /p3 HTTP/1.1\r\nHost: {env.name}\r\nConnection: close\r\n\r\n").encode())
        data, closed = read_responses(s, 99)
    assert closed
    echoes = [echo_of(r) for r in parse_responses(data)]
    assert [(e["method"], e["path"], e["bodyLength"]) for e in echoes] == [
        ("GET", "/p1", 0), ("POST", "/p2", 3), ("GET", "/p3", 0)]
    assert backend_requests(env) - before == 3
