"""The data plane's configuration path as a user meets it: the applied revision catching up with the
store after API writes, `trellis ca`, DNS answers that follow service-network associations, and
listener ports that cannot be bound showing up in `/_trellis/health`."""

import socket
import subprocess
import tempfile
import time

from backends import dig as dig_short
from conftest import BIN, unique, vpc_of, wait_applied, wait_until_applied

def dig(server, name, rtype="A"):
    """(status, answers): the response code dig reports and the answer records' data."""
    host, port = server.dns_address()
    cmd = ["dig", f"@{host}", "-p", str(port), name, rtype, "+time=5", "+tries=1", "+noall", "+comments",
           "+answer"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, f"{' '.join(cmd)} failed: {p.stdout} {p.stderr}"
    status = next(line.split("status: ")[1].split(",")[0] for line in p.stdout.splitlines() if "status: " in line)
    answers = [line.split()[-1] for line in p.stdout.splitlines() if line and not line.startswith(";")]
    return status, answers


def test_applied_revision_catches_up_after_every_write(server, lattice):
    first = wait_until_applied(server)
    assert first["applied"] == first["store"]
    sn = lattice.create_service_network(name=unique("net"))
    svc = lattice.create_service(name=unique("web"))
    tg = lattice.create_target_group(name=unique("pool"), type="IP",
                                     config={"port": 8080, "protocol": "HTTP", "vpcIdentifier": vpc_of(lattice)})
    steps = [
        lambda: lattice.create_service_network_service_association(
            serviceNetworkIdentifier=sn["id"], serviceIdentifier=svc["id"]),
        lambda: lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "127.0.0.1", "port": 9}]),
        lambda: lattice.deregister_targets(targetGroupIdentifier=tg["id"], targets=[{"id": "127.0.0.1", "port": 9}]),
        lambda: lattice.update_service(serviceIdentifier=svc["id"], authType="AWS_IAM"),
    ]
    for step in steps:
        step()
        revision = server.revision()["store"]
        assert wait_applied(server, revision)["applied"] >= revision
    # Nothing else writes: the applied revision is exactly the store's.
    rev = server.revision()
    assert rev["applied"] == rev["store"]
    status, body = server.health()
    assert status == 200 and body["dataPlane"] is True and body["failedPorts"] == [], body


def test_trellis_ca_prints_a_certificate_openssl_parses(server):
    p = subprocess.run([BIN, "ca", "--data-dir", server.data_dir], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("-----BEGIN CERTIFICATE-----"), p.stdout
    # The server created the CA at start; `trellis ca` prints that one, not a new one.
    with open(f"{server.data_dir}/ca.pem") as f:
        assert p.stdout == f.read()
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=p.stdout, capture_output=True,
                             text=True, timeout=30)
    assert subject.returncode == 0, subject.stderr
    assert "Trellis Local CA" in subject.stdout


def test_trellis_ca_creates_the_ca_in_a_fresh_data_dir():
    d = tempfile.mkdtemp()
    first = subprocess.run([BIN, "ca", "--data-dir", d], capture_output=True, text=True, timeout=30)
    again = subprocess.run([BIN, "ca", "--data-dir", d], capture_output=True, text=True, timeout=30)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert first.stdout == again.stdout and "BEGIN CERTIFICATE" in first.stdout


def test_dns_follows_service_network_associations(server, lattice):
    domain = f"{unique('api')}.example.com"
    sn = lattice.create_service_network(name=unique("net"))
    svc = lattice.create_service(name=unique("web"), customDomainName=domain)
    name = svc["dnsEntry"]["domainName"]
    wait_until_applied(server)
    # Not in any service network: not served, so not answered.
    assert dig(server, name) == ("NXDOMAIN", [])

    assoc = lattice.create_service_network_service_association(
        serviceNetworkIdentifier=sn["id"], serviceIdentifier=svc["id"])
    wait_until_applied(server)
    assert dig_short(server, name) == ["127.0.0.1"]
    assert dig_short(server, name.upper() + ".") == ["127.0.0.1"]
    assert dig(server, domain) == ("NOERROR", ["127.0.0.1"])

    lattice.delete_service_network_service_association(serviceNetworkServiceAssociationIdentifier=assoc["id"])
    wait_until_applied(server)
    assert dig(server, name) == ("NXDOMAIN", [])
    # A custom domain is outside Trellis's zone: once unserved, it is not ours to answer at all.
    assert dig(server, domain)[0] == "REFUSED"


def test_a_listener_port_that_cannot_be_bound_is_reported_by_health(server, lattice):
    sn = lattice.create_service_network(name=unique("net"))
    svc = lattice.create_service(name=unique("web"))
    lattice.create_service_network_service_association(serviceNetworkIdentifier=sn["id"], serviceIdentifier=svc["id"])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        listener = lattice.create_listener(
            serviceIdentifier=svc["id"], name=unique("lsn"), protocol="HTTP", port=port,
            defaultAction={"fixedResponse": {"statusCode": 404}})
        wait_until_applied(server)
        status, body = server.health()
        assert status == 503, body
        assert [f["port"] for f in body["failedPorts"]] == [port], body
        assert body["failedPorts"][0]["error"], body

    # The port is free now: a retry binds it (with backoff: 1 s, 2 s, … while it stays taken),
    # and the failure was logged once, with its cause, however many attempts failed.
    deadline = time.monotonic() + 60
    while server.health()[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    status, body = server.health()
    assert status == 200 and body["failedPorts"] == [], body
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    failures = [line for line in server.log().splitlines()
                if "cannot bind listener port" in line and str(port) in line]
    assert len(failures) == 1 and "in use" in failures[0].lower(), failures

    lattice.delete_listener(serviceIdentifier=svc["id"], listenerIdentifier=listener["id"])
    wait_until_applied(server)
    status, body = server.health()
    assert status == 200 and body["failedPorts"] == [], body
