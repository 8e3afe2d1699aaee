"""Trellis's DNS as a machine's resolver (`--dns-upstream`): names Trellis owns answered from its
zone (authoritative), every other name relayed to an upstream resolver — here a small one built
with dnspython on UDP and TCP — including NXDOMAIN, a reply too large for UDP (asked again over
TCP), and SERVFAIL when no upstream answers. Queried with dig."""

import socketserver
import subprocess
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from backends import free_port
from conftest import Server, backends, running

ZONE = "vpc-lattice-svcs.us-west-2.on.aws"


def reply(wire, tcp):
    """The upstream's answer: `upstream.example` A 192.0.2.7; `big.example` 60 A records, truncated
    over UDP; anything else NXDOMAIN."""
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    name = query.question[0].name.to_text()
    if name == "upstream.example.":
        response.answer.append(dns.rrset.from_text(name, 30, "IN", "A", "192.0.2.7"))
    elif name == "big.example.":
        if tcp:
            response.answer.append(dns.rrset.from_text(name, 30, "IN", "A",
                                                       *[f"198.51.100.{i}" for i in range(1, 61)]))
        else:
            response.flags |= dns.flags.TC
    else:
        response.set_rcode(dns.rcode.NXDOMAIN)
    return response.to_wire()


class Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(reply(data, tcp=False), self.client_address)


class Tcp(socketserver.BaseRequestHandler):
    def handle(self):
        length = int.from_bytes(self.request.recv(2), "big")
        data = b""
        while len(data) < length:
            data += self.request.recv(length - len(data))
        out = reply(data, tcp=True)
        self.request.sendall(len(out).to_bytes(2, "big") + out)


@pytest.fixture(scope="module")
def upstream():
    port = free_port()
    udp = socketserver.ThreadingUDPServer(("127.0.0.1", port), Udp)
    tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), Tcp)
    for s in (udp, tcp):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{port}"
    for s in (udp, tcp):
        s.shutdown()
        s.server_close()


@pytest.fixture(scope="module", params=backends())
def resolver(request, upstream):
    # A closed port first: the server moves on to the next upstream when one does not answer.
    dead = f"127.0.0.1:{free_port()}"
    yield from running(Server(request.param, extra_args=["--dns-upstream", dead, "--dns-upstream", upstream]))


def dig(server, name, rtype="A"):
    host, port = server.dns_address()
    p = subprocess.run(["dig", f"@{host}", "-p", str(port), name, rtype, "+time=10", "+tries=1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def status(out):
    return out.split("status: ", 1)[1].split(",", 1)[0]


def flags(out):
    return out.split("flags: ", 1)[1].split(";", 1)[0].split()


def test_names_trellis_does_not_own_are_forwarded(resolver):
    out = dig(resolver, "upstream.example")
    assert status(out) == "NOERROR" and "192.0.2.7" in out
    assert "aa" not in flags(out) and "ra" in flags(out)
    out = dig(resolver, "nothing.example")
    assert status(out) == "NXDOMAIN"
    # Too large for UDP: the upstream truncates, Trellis asks again over TCP and relays all 60.
    out = dig(resolver, "big.example")
    assert status(out) == "NOERROR" and out.count("198.51.100.") >= 60


def test_own_names_stay_authoritative(resolver):
    # The account's zone: the apex of its services' generated names.
    name = resolver.client().create_service(name="zoned")["dnsEntry"]["domainName"]
    apex = name.split(".", 1)[1]
    assert apex.endswith(ZONE)
    out = dig(resolver, apex, "SOA")
    assert status(out) == "NOERROR" and "aa" in flags(out)
    out = dig(resolver, f"nothing.{apex}")
    assert status(out) == "NXDOMAIN" and "aa" in flags(out)


def test_no_upstream_answering_is_servfail():
    gen = running(Server("sqlite", extra_args=["--dns-upstream", f"127.0.0.1:{free_port()}"]))
    server = next(gen)
    try:
        assert status(dig(server, "upstream.example")) == "SERVFAIL"
    finally:
        gen.close()


def test_without_upstreams_other_names_are_refused():
    gen = running(Server("sqlite"))
    server = next(gen)
    try:
        assert status(dig(server, "upstream.example")) == "REFUSED"
    finally:
        gen.close()


def test_bad_upstream_flag_is_refused():
    from conftest import BIN
    p = subprocess.run([BIN, "serve", "--dns-upstream", "not-an-address"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and "not an IP address" in p.stderr


def test_readme_dnsmasq_split_dns(resolver, tmp_path):
    """The README's dnsmasq line, as written (only Trellis's DNS port is this server's): dnsmasq
    sends the generated names to Trellis and answers the rest itself."""
    import os
    import re
    from conftest import ROOT

    text = open(os.path.join(ROOT, "README.md")).read()
    block = text.split("<!-- dnsmasq:begin -->", 1)[1].split("<!-- dnsmasq:end -->", 1)[0]
    conf = re.findall(r"```conf\n(.*?)```", block, re.S)[0]
    host, port = resolver.dns_address()
    conf = conf.replace("127.0.0.1#9453", f"{host}#{port}")
    lattice = resolver.client()
    sn = lattice.create_service_network(name="split")
    svc = lattice.create_service(name="split")
    lattice.create_service_network_service_association(serviceNetworkIdentifier=sn["id"],
                                                       serviceIdentifier=svc["id"])
    from conftest import wait_until_applied
    wait_until_applied(resolver)
    path = tmp_path / "dnsmasq.conf"
    path.write_text(conf + "address=/local.test/203.0.113.9\n")
    stub_port = free_port()
    stub = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=" + str(path),
                             "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={stub_port}",
                             "--pid-file=" + str(tmp_path / "pid"), "--user=" + os.environ.get("USER", "root")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def ask(name):
            p = subprocess.run(["dig", "@127.0.0.1", "-p", str(stub_port), name, "A", "+short", "+time=5",
                                "+tries=3"], capture_output=True, text=True, timeout=60)
            return p.stdout.split()

        assert ask(svc["dnsEntry"]["domainName"]) == ["127.0.0.1"]   # from Trellis, through dnsmasq
        assert ask("local.test") == ["203.0.113.9"]                  # dnsmasq's own
    finally:
        stub.terminate()
        stub.wait(timeout=10)


def test_advertised_addresses_replace_the_ingress_address():
    """`--advertise-address`: what DNS answers for every service name (a load balancer's address,
    or every node's), instead of the ingress address the listeners are bound on."""
    from conftest import wait_until_applied

    gen = running(Server("sqlite", extra_args=["--advertise-address", "192.0.2.10,192.0.2.11"]))
    server = next(gen)
    try:
        lattice = server.client()
        sn = lattice.create_service_network(name="lb-net")
        svc = lattice.create_service(name="behind-lb")
        lattice.create_service_network_service_association(serviceNetworkIdentifier=sn["id"],
                                                           serviceIdentifier=svc["id"])
        wait_until_applied(server)
        host, port = server.dns_address()
        p = subprocess.run(["dig", f"@{host}", "-p", str(port), svc["dnsEntry"]["domainName"], "A", "+short"],
                           capture_output=True, text=True, timeout=30)
        assert sorted(p.stdout.split()) == ["192.0.2.10", "192.0.2.11"]
    finally:
        gen.close()
