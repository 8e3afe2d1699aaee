"""The launch post's service, end to end: configured with the AWS CLI (HTTP and HTTPS listeners, a
default action forwarding 20/10 to two target groups, rules priority 10 `/to-instance` and 20
`/to-function`, associated with a service network), its generated name resolved through Trellis's
DNS (dig and dnspython), and called with curl over HTTP/1.1, h2c with prior knowledge and HTTPS
(HTTP/2 and HTTP/1.1) trusting the Trellis CA. Then the weighted split (statistically) and a table
of rule matches: path, method and header conditions, priorities and fixed responses.

The two target groups are IP target groups of testbackends named `instance` and `function` (the
post's instance and Lambda targets; function targets arrive with the functions issue)."""

import json
import subprocess
from collections import Counter
from types import SimpleNamespace

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

from backends import (INGRESS, Caller, vpc_of, curl, dig, fixed, forward, free_port, path_prefix, wait_until_applied)
from conftest import BIN, binomial_bounds, unique


@pytest.fixture(scope="module")
def launch(dp_server, dp_lattice, start_backend):
    """The launch post's setup, step by step with the AWS CLI."""
    cli = dp_server.cli
    instance, function = start_backend("instance"), start_backend("function")
    sn = cli("create-service-network", "--name", unique("launch-sn"))
    svc = cli("create-service", "--name", unique("launch"))
    tgs = {}
    for backend in (instance, function):
        config = {"protocol": "HTTP", "port": 80, "protocolVersion": "HTTP1", "vpcIdentifier": vpc_of(dp_server.client())}
        tg = cli("create-target-group", "--name", unique(backend.name), "--type", "IP",
                 "--config", json.dumps(config))
        cli("register-targets", "--target-group-identifier", tg["id"], "--targets", json.dumps([backend.target()]))
        tgs[backend.name] = tg
    tg_a, tg_b = tgs["instance"], tgs["function"]
    http_port, https_port = free_port(), free_port()
    listeners = {}
    for protocol, port in (("HTTP", http_port), ("HTTPS", https_port)):
        listener = cli("create-listener", "--service-identifier", svc["id"], "--name", protocol.lower(),
                       "--protocol", protocol, "--port", str(port),
                       "--default-action", json.dumps(forward((tg_a, 20), (tg_b, 10))))
        for priority, path, tg in ((10, "/to-instance", tg_a), (20, "/to-function", tg_b)):
            cli("create-rule", "--service-identifier", svc["id"], "--listener-identifier", listener["id"],
                "--name", path.strip("/"), "--priority", str(priority),
                "--match", json.dumps(path_prefix(path)), "--action", json.dumps(forward((tg, 100))))
        listeners[protocol] = listener
    cli("create-service-network-service-association", "--service-network-identifier", sn["id"],
        "--service-identifier", svc["id"])

    # More rules on the HTTP listener, for the match table below.
    lattice = dp_lattice
    ids = {"serviceIdentifier": svc["id"], "listenerIdentifier": listeners["HTTP"]["id"]}
    extra = [
        (30, {"httpMatch": {"method": "PATCH"}}, forward((tg_b, 1))),
        (40, {"httpMatch": {"headerMatches": [{"name": "x-canary", "match": {"exact": "yes"}}]}}, forward((tg_b, 1))),
        (50, {"httpMatch": {"method": "GET", "pathMatch": {"match": {"exact": "/combo"}},
                            "headerMatches": [{"name": "x-env", "match": {"prefix": "Blue"}, "caseSensitive": True},
                                              {"name": "user-agent", "match": {"contains": "mobile"}}]}},
         forward((tg_a, 1))),
        (60, {"httpMatch": {"pathMatch": {"match": {"exact": "/gone"}}}}, fixed(404)),
        (70, {"httpMatch": {"pathMatch": {"match": {"prefix": "/Broken"}, "caseSensitive": True}}}, fixed(500)),
    ]
    for priority, match, action in extra:
        lattice.create_rule(**ids, name=f"extra-{priority}", priority=priority, match=match, action=action)
    wait_until_applied(dp_server)
    svc = lattice.get_service(serviceIdentifier=svc["id"])
    return SimpleNamespace(svc=svc, sn=sn, name=svc["dnsEntry"]["domainName"], http_port=http_port,
                           https_port=https_port, tg_a=tg_a, tg_b=tg_b, instance=instance, function=function)


def resolve(server, name):
    """The generated name's address, asked of Trellis's DNS with dnspython."""
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [INGRESS]
    r.port = server.dns_port
    r.lifetime = 10
    return [a.address for a in r.resolve(name, "A")]


def query(server, name, rtype="A", tcp=False):
    q = dns.message.make_query(name, rtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, INGRESS, port=server.dns_port, timeout=10)


def test_dns_answers_the_generated_name(dp_server, launch):
    assert dig(dp_server, launch.name) == [INGRESS]
    assert dig(dp_server, launch.name, tcp=True) == [INGRESS]
    assert resolve(dp_server, launch.name) == [INGRESS]
    for tcp in (False, True):
        answer = query(dp_server, launch.name, tcp=tcp)
        assert answer.rcode() == dns.rcode.NOERROR
        assert answer.flags & dns.flags.AA
        assert [rr.address for rrset in answer.answer for rr in rrset] == [INGRESS]
    # A name in the same zone that no service has; a name outside every zone.
    zone = launch.name.split(".", 1)[1]
    assert query(dp_server, f"nothing-0123456789abcdef0.{zone}").rcode() == dns.rcode.NXDOMAIN
    assert query(dp_server, "example.com").rcode() == dns.rcode.REFUSED


def test_trellis_ca_prints_the_certificate_authority(dp_server):
    p = subprocess.run([BIN, "ca", "--data-dir", dp_server.data_dir], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == open(dp_server.ca_path).read().strip()
    assert p.stdout.startswith("-----BEGIN CERTIFICATE-----")


CURL_CASES = [
    # (scheme, curl flags, HTTP version curl reports)
    ("http", ["--http1.1"], "1.1"),
    ("http", ["--http2-prior-knowledge"], "2"),
    ("https", ["--http2"], "2"),
    ("https", ["--http1.1"], "1.1"),
]


@pytest.mark.parametrize("scheme,flags,version", CURL_CASES, ids=[" ".join([c[0], *c[1]]) for c in CURL_CASES])
def test_curl_through_the_generated_name(dp_server, launch, scheme, flags, version):
    address = resolve(dp_server, launch.name)[0]
    port = launch.http_port if scheme == "http" else launch.https_port
    tls = ["--cacert", dp_server.ca_path] if scheme == "https" else []
    for path, backend in (("/to-instance", "instance"), ("/to-function/x?y=1", "function")):
        status, got_version, body = curl(f"{scheme}://{launch.name}:{port}{path}", *flags, *tls,
                                         resolve=f"{launch.name}:{port}:{address}")
        assert (status, got_version) == (200, version), body
        doc = json.loads(body)
        assert doc["backend"] == backend
        assert doc["path"] == path.split("?")[0]
        # The target group speaks HTTP/1.1 whatever the client spoke.
        assert doc["protocol"] == "HTTP/1.1"
        # The Host header reaches the target unchanged, port included.
        assert doc["authority"] == f"{launch.name}:{port}"
        assert doc["headers"]["x-forwarded-proto"] == scheme


def test_default_action_splits_20_to_10(launch):
    """~600 requests to the default rule; `instance` (weight 20 of 30) must get a count within 5
    standard deviations of 600 x 2/3 (false alarm rate ~6e-7). The split is drawn at random per
    request inside Trellis, so no seed can be fixed from outside the process."""
    n = 600
    caller = Caller(launch.name, launch.http_port)
    counts = Counter(caller.request(f"/split/{i}").backend for i in range(n))
    caller.close()
    assert set(counts) == {"instance", "function"}, counts
    low, high = binomial_bounds(n, 2 / 3)
    assert low <= counts["instance"] <= high, counts


def test_default_action_splits_over_https_too(dp_server, launch):
    n = 300
    caller = Caller(launch.name, launch.https_port, tls=True, ca=dp_server.ca_path)
    counts = Counter(caller.request("/").backend for _ in range(n))
    caller.close()
    low, high = binomial_bounds(n, 2 / 3)
    assert low <= counts["instance"] <= high, counts


A, B, SPLIT = "instance", "function", "split"
RULE_CASES = [
    # (method, path, headers, expected: a backend, SPLIT for the default rule, or a fixed status)
    ("GET", "/to-instance", {}, A),
    ("GET", "/to-instance/deeper?x=1", {}, A),
    ("GET", "/TO-INSTANCE", {}, A),  # path matches are case-insensitive by default
    ("GET", "/to-instanceship", {}, A),  # a plain string prefix, not a path segment
    ("POST", "/to-function", {}, B),
    ("DELETE", "/to-function/1", {}, B),
    ("GET", "/to-instance", {"x-canary": "yes"}, A),  # priority 10 wins over 40
    ("GET", "/x/to-instance", {}, SPLIT),
    ("PATCH", "/anything", {}, B),
    ("patch", "/anything", {}, SPLIT),  # methods match exactly, case-sensitively
    ("PATCH", "/Broken", {}, B),  # priority 30 wins over 70
    ("GET", "/x", {"x-canary": "yes"}, B),
    ("GET", "/x", {"X-Canary": "YES"}, B),  # header names and (by default) values are case-insensitive
    ("GET", "/x", {"x-canary": "yes please"}, SPLIT),  # exact means exact
    ("GET", "/combo", {"x-env": "Blue-7", "user-agent": "my-mobile-app"}, A),
    ("GET", "/combo", {"x-env": "blue-7", "user-agent": "my-mobile-app"}, SPLIT),  # caseSensitive
    ("GET", "/combo", {"x-env": "Blue-7"}, SPLIT),  # every condition must hold
    ("POST", "/combo", {"x-env": "Blue-7", "user-agent": "mobile"}, SPLIT),
    ("GET", "/gone", {}, 404),
    ("POST", "/GONE", {}, 404),
    ("GET", "/gone/more", {}, SPLIT),  # exact path
    ("GET", "/Broken/x", {}, 500),
    ("GET", "/broken/x", {}, SPLIT),  # caseSensitive prefix
]


@pytest.mark.parametrize("method,path,headers,expected", RULE_CASES,
                         ids=[f"{m} {p} {h}" for m, p, h, _ in RULE_CASES])
def test_rule_matches(launch, method, path, headers, expected):
    caller = Caller(launch.name, launch.http_port)
    # The default rule splits at random: 40 requests see both backends except with probability
    # (2/3)^40 + (1/3)^40 < 1e-7. A rule's forward must be the same every time.
    n = 40 if expected == SPLIT else 10
    responses = [caller.request(path, method=method, headers=headers) for _ in range(n)]
    caller.close()
    if isinstance(expected, int):
        assert {r.status for r in responses} == {expected}
        # Fixed responses come from Trellis, not from a target.
        assert {r.backend for r in responses} == {None}
        return
    assert {r.status for r in responses} == {200}
    seen = {r.backend for r in responses}
    assert seen == ({A, B} if expected == SPLIT else {expected})
    doc = responses[0].json()
    assert doc["method"] == method
    assert doc["path"] == path.split("?")[0]


def test_https_listener_has_its_own_rules(dp_server, launch):
    caller = Caller(launch.name, launch.https_port, tls=True, ca=dp_server.ca_path)
    try:
        assert {caller.request("/to-instance/a").backend for _ in range(10)} == {A}
        assert {caller.request("/to-function/b").backend for _ in range(10)} == {B}
        # The HTTP listener's extra rules do not apply here.
        assert caller.request("/gone").status == 200
        doc = caller.request("/to-instance").json()
        assert doc["headers"]["x-forwarded-proto"] == "https"
        assert doc["headers"]["x-forwarded-port"] == str(launch.https_port)
    finally:
        caller.close()
