"""A service with a custom domain name (reference §2.7): served over HTTPS under that name with a
certificate for the name itself, issued by the Trellis CA, and under its generated name as well;
resolved by Trellis's DNS. A client that trusts only the CA proves the certificate's name."""

import ssl
import socket

from backends import INGRESS, Caller, forward, free_port, ip_target_group, unique, wait_until_applied, dig


def test_https_to_a_custom_domain_uses_a_certificate_for_that_name(dp_server, dp_lattice, start_backend):
    lattice = dp_lattice
    backend = start_backend("custom")
    tg = ip_target_group(lattice, health_check={"enabled": False}, targets=[backend])
    domain = f"{unique('parking')}.example.com"
    svc = lattice.create_service(name=unique("custom"), customDomainName=domain)
    sn = lattice.create_service_network(name=unique("network"))
    lattice.create_service_network_service_association(serviceNetworkIdentifier=sn["id"], serviceIdentifier=svc["id"])
    port = free_port()
    lattice.create_listener(serviceIdentifier=svc["id"], name=unique("lsn"), protocol="HTTPS", port=port,
                            defaultAction=forward((tg, 1)))
    wait_until_applied(dp_server)

    # Trellis's DNS answers the custom domain with the ingress address.
    assert dig(dp_server, domain) == [INGRESS]

    for name in (domain, svc["dnsEntry"]["domainName"]):
        # The handshake verifies the certificate against the CA and the name (check_hostname).
        ctx = ssl.create_default_context(cafile=dp_server.ca_path)
        with socket.create_connection((INGRESS, port), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                sans = [v for k, v in tls.getpeercert()["subjectAltName"] if k == "DNS"]
                assert name in sans, (name, sans)
        caller = Caller(name, port, tls=True, ca=dp_server.ca_path)
        try:
            r = caller.request("/hello")
        finally:
            caller.close()
        assert r.status == 200, r.body
        assert r.json()["path"] == "/hello"
        assert r.headers["x-backend"] == "custom"
