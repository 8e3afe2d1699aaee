"""Protocols towards targets: target groups of protocol HTTP or HTTPS and protocolVersion HTTP1 or
HTTP2, each in front of a testbackend that speaks only that (HTTP/1.1, h2c, TLS with ALPN), reached
from an HTTPS listener by curl over HTTP/2 and HTTP/1.1: the target sees the protocol of its target
group whatever the client spoke (Trellis converts HTTP/1.1 and HTTP/2 both ways; HTTPS targets'
self-signed certificates are not verified, as in Lattice)."""

import json
from types import SimpleNamespace

import pytest

from backends import INGRESS, ServiceBuilder, curl, fixed, forward, free_port, ip_target_group, path_prefix, wait_until_applied

# (path prefix, target group protocol, protocolVersion, backend --protocol, what the target sees)
UPSTREAMS = [
    ("/h1", "HTTP", "HTTP1", "http1", "HTTP/1.1"),
    ("/h2c", "HTTP", "HTTP2", "h2c", "HTTP/2"),
    ("/tls-h1", "HTTPS", "HTTP1", "https", "HTTP/1.1"),
    ("/tls-h2", "HTTPS", "HTTP2", "https", "HTTP/2"),
]


@pytest.fixture(scope="module")
def upstreams(dp_server, dp_lattice, start_backend):
    lattice = dp_lattice
    svc = ServiceBuilder(lattice)
    https_port, http_port = free_port(), free_port()
    https = svc.listener("HTTPS", https_port, fixed(404))
    http = svc.listener("HTTP", http_port, fixed(404))
    for i, (prefix, protocol, version, backend_protocol, _) in enumerate(UPSTREAMS):
        backend = start_backend(f"up{prefix.replace('/', '-')}", protocol=backend_protocol)
        tg = ip_target_group(lattice, protocol=protocol, protocol_version=version,
                             port=443 if protocol == "HTTPS" else 80, targets=[backend])
        for listener in (https, http):
            svc.rule(listener, 10 + i, path_prefix(prefix + "/"), forward((tg, 1)))
    wait_until_applied(dp_server)
    return SimpleNamespace(name=svc.dns_name, https_port=https_port, http_port=http_port)


CASES = [(u, client) for u in UPSTREAMS for client in ("--http2", "--http1.1")]


@pytest.mark.parametrize("upstream,client", CASES, ids=[f"{u[0]} {c}" for u, c in CASES])
def test_https_listener_to_each_upstream(dp_server, upstreams, upstream, client):
    prefix, _, _, _, seen = upstream
    url = f"https://{upstreams.name}:{upstreams.https_port}{prefix}/x"
    status, _, body = curl(url, client, "--cacert", dp_server.ca_path, "-d", "a" * 5000,
                           resolve=f"{upstreams.name}:{upstreams.https_port}:{INGRESS}")
    assert status == 200, body
    doc = json.loads(body)
    assert doc["protocol"] == seen
    assert doc["method"] == "POST"
    assert doc["bodyLength"] == 5000


@pytest.mark.parametrize("upstream", UPSTREAMS, ids=[u[0] for u in UPSTREAMS])
def test_http_listener_to_each_upstream(upstreams, upstream):
    prefix, _, _, _, seen = upstream
    url = f"http://{upstreams.name}:{upstreams.http_port}{prefix}/big?bytes=300000"
    status, _, body = curl(url, "--http2-prior-knowledge",
                           resolve=f"{upstreams.name}:{upstreams.http_port}:{INGRESS}")
    assert status == 200
    assert len(body) == 300000
