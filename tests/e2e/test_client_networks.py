"""Client networks as a reachability boundary, on a server without `--open-network`: VPCs created
with `aws ec2` (boto3), clients bound to distinct loopback source addresses inside and outside
their CIDR blocks, a service reached only through the service network its VPC is associated
with, security groups on the association (changed while a connection stays open), two VPCs with
the same CIDR told apart by their associations' own ingress addresses, PROXY protocol v2 from a
trusted and an untrusted sender, `SourceVpc` in an auth policy, the headers the target sees, and
the API's checks that `vpcIdentifier` and security groups name real ones."""

import http.client
import json
import socket
import subprocess

import pytest
from botocore.exceptions import ClientError

from backends import (INGRESS, Caller, ServiceBuilder, forward, free_port, ip_target_group,
                      wait_until_applied)
from conftest import error_code, fields, unique

pytest_plugins = ["backends"]

OPEN_NETWORK = False
# The trusted PROXY protocol sender (a node agent's address).
SENDER = "127.0.0.77"
# A dual-stack data plane: listeners on ::1 as well as the ingress address.
SERVER_ARGS = ("--proxy-protocol-from", SENDER, "--ingress-address", "::1")
# A PROXY v2 TLV type carrying the client's VPC (trellis_proxy::SOURCE_VPC_TLV).
SOURCE_VPC_TLV = 0xE6


def service_requests(server, service_id):
    """The service's `trellis_lattice_service_requests_total`, all status classes."""
    import urllib.request
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("trellis_lattice_service_requests_total{") and f'service="{service_id}"' in line)


def refused(caller, path="/"):
    """Whether the connection is closed before any response (no VPC admits the client)."""
    try:
        caller.request(path)
    except (ConnectionError, OSError, http.client.HTTPException):  # closed, reset, empty reply
        caller.close()
        return True
    return False


class World:
    """Two service networks, a service in each, and a client VPC associated with the first."""

    def __init__(self, server, lattice, backend):
        self.server, self.lattice, self.backend = server, lattice, backend
        self.ec2 = server.client("ec2")
        self.port = free_port()
        self.one = ServiceBuilder(lattice)
        self.two = ServiceBuilder(lattice)
        for s in (self.one, self.two):
            tg = ip_target_group(lattice, targets=[backend], health_check={"enabled": False})
            s.listener("HTTP", self.port, forward((tg, 1)))
        self.vpc = self.ec2.create_vpc(CidrBlock="127.0.1.0/24")["Vpc"]["VpcId"]
        self.assoc = lattice.create_service_network_vpc_association(
            serviceNetworkIdentifier=self.one.sn["id"], vpcIdentifier=self.vpc)
        wait_until_applied(server)

    def caller(self, service, source, **kw):
        return Caller(service.dns_name, self.port, source=source, **kw)


@pytest.fixture(scope="module")
def world(dp_server, dp_lattice, start_backend):
    return World(dp_server, dp_lattice, start_backend("clientnets"))


def test_only_clients_of_an_associated_vpc_reach_its_network(world):
    inside = world.caller(world.one, "127.0.1.5")
    r = inside.request("/")
    assert r.status == 200 and r.backend == "clientnets"
    # What the target sees: the client's VPC and the network it came through.
    seen = r.json()["headers"]
    assert seen["x-amzn-source-vpc"] == world.vpc
    assert seen["x-amzn-lattice-network"] == f"SourceVpcArn=arn:aws:ec2:us-west-2:111122223333:vpc/{world.vpc}"
    assert f"ServiceNetworkArn={world.one.sn['arn']}" in seen["x-amzn-lattice-target"]
    # A service of another network does not exist for this client, and counts nothing.
    assert world.caller(world.two, "127.0.1.5").request("/").status == 404
    assert service_requests(world.server, world.two.svc["id"]) == 0
    # Clients outside every VPC, and a VPC with no association, get no connection at all.
    assert refused(world.caller(world.one, "127.0.2.5"))
    assert refused(world.caller(world.one, "127.0.0.1"))
    lonely = world.ec2.create_vpc(CidrBlock="127.0.3.0/24")["Vpc"]["VpcId"]
    wait_until_applied(world.server)
    assert refused(world.caller(world.one, "127.0.3.3"))
    # Associated, it reaches its own network's service only.
    world.lattice.create_service_network_vpc_association(serviceNetworkIdentifier=world.two.sn["id"],
                                                         vpcIdentifier=lonely)
    wait_until_applied(world.server)
    assert world.caller(world.two, "127.0.3.3").request("/").status == 200
    assert world.caller(world.one, "127.0.3.3").request("/").status == 404


def test_security_groups_filter_clients_and_apply_to_open_connections(world):
    vpc = world.ec2.create_vpc(CidrBlock="127.0.4.0/24")["Vpc"]["VpcId"]
    sg = world.ec2.create_security_group(GroupName=unique("clients"), Description="clients", VpcId=vpc)["GroupId"]
    world.ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": world.port, "ToPort": world.port,
        "IpRanges": [{"CidrIp": "127.0.4.0/25"}]}])
    world.lattice.create_service_network_vpc_association(serviceNetworkIdentifier=world.one.sn["id"],
                                                         vpcIdentifier=vpc, securityGroupIds=[sg])
    wait_until_applied(world.server)
    low, high = world.caller(world.one, "127.0.4.10"), world.caller(world.one, "127.0.4.200")
    assert low.request("/").status == 200
    assert refused(high)
    # Another port is not in the rule.
    other = ServiceBuilder(world.lattice, associate=False)
    world.lattice.create_service_network_service_association(serviceNetworkIdentifier=world.one.sn["id"],
                                                             serviceIdentifier=other.svc["id"])
    other_port = free_port()
    other.listener("HTTP", other_port, {"fixedResponse": {"statusCode": 404}})
    wait_until_applied(world.server)
    assert refused(Caller(other.dns_name, other_port, source="127.0.4.10"))

    # Widened: the high client enters at the next revision.
    world.ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": world.port, "ToPort": world.port,
        "IpRanges": [{"CidrIp": "127.0.4.128/25"}]}])
    wait_until_applied(world.server)
    assert high.request("/").status == 200
    # Narrowed: the low client's open keep-alive connection is refused its next request.
    world.ec2.revoke_security_group_ingress(GroupId=sg, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": world.port, "ToPort": world.port,
        "IpRanges": [{"CidrIp": "127.0.4.0/25"}]}])
    wait_until_applied(world.server)
    r = low.request("/")
    assert r.status == 403 and b"security groups" in r.body
    low.close()
    assert refused(low)
    assert high.request("/").status == 200


def test_overlapping_vpcs_are_told_apart_by_their_own_ingress_addresses(world):
    vpcs = [world.ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"] for _ in range(2)]
    for vpc, service, address in zip(vpcs, (world.one, world.two), ("127.0.0.11", "127.0.0.12")):
        world.lattice.create_service_network_vpc_association(
            serviceNetworkIdentifier=service.sn["id"], vpcIdentifier=vpc,
            tags={"trellis:ingress-address": address})
    wait_until_applied(world.server)
    first = Caller(world.one.dns_name, world.port, address="127.0.0.11")
    r = first.request("/")
    assert r.status == 200 and r.json()["headers"]["x-amzn-source-vpc"] == vpcs[0]
    assert Caller(world.two.dns_name, world.port, address="127.0.0.11").request("/").status == 404
    second = Caller(world.two.dns_name, world.port, address="127.0.0.12").request("/")
    assert second.status == 200 and second.json()["headers"]["x-amzn-source-vpc"] == vpcs[1]
    # The shared ingress address still serves the first VPC's clients (127.0.1.0/24 is more
    # specific than the /16s, which only their own addresses take).
    assert world.caller(world.one, "127.0.1.9").request("/").json()["headers"]["x-amzn-source-vpc"] == world.vpc
    # The tag must be an address.
    with pytest.raises(ClientError) as e:
        world.lattice.create_service_network_vpc_association(
            serviceNetworkIdentifier=world.one.sn["id"], vpcIdentifier=world.ec2.create_vpc(
                CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"], tags={"trellis:ingress-address": "nowhere"})
    assert error_code(e) == "ValidationException" and fields(e) == ["tags"]


def proxy_v2(client, dest, vpc=None):
    """A PROXY protocol v2 header (PROXY command, TCP over IPv4) with an optional source-VPC TLV."""
    src_ip, src_port = client
    dst_ip, dst_port = dest
    body = socket.inet_aton(src_ip) + socket.inet_aton(dst_ip) + src_port.to_bytes(2, "big") + dst_port.to_bytes(2, "big")
    if vpc:
        body += bytes([SOURCE_VPC_TLV]) + len(vpc).to_bytes(2, "big") + vpc.encode()
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + len(body).to_bytes(2, "big") + body


def raw_request(source, port, host, preamble=b""):
    """Sends `preamble` and one HTTP/1.1 request from `source`; the response bytes (b"" if closed)."""
    with socket.create_connection((INGRESS, port), timeout=10, source_address=(source, 0)) as s:
        s.sendall(preamble + f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def test_proxy_protocol_from_a_trusted_sender(world):
    name, port = world.one.dns_name, world.port
    # The sender relays a client of the VPC: admitted as that client.
    out = raw_request(SENDER, port, name, proxy_v2(("127.0.1.42", 40000), (INGRESS, port)))
    assert out.startswith(b"HTTP/1.1 200")
    body = out.split(b"\r\n\r\n", 1)[1]
    echoed = json.loads(body[body.index(b"{"):body.rindex(b"}") + 1])
    assert echoed["headers"]["x-forwarded-for"] == "127.0.1.42"
    assert echoed["headers"]["x-amzn-source-vpc"] == world.vpc
    # The sender may name the VPC outright (a client address outside its CIDR).
    out = raw_request(SENDER, port, name, proxy_v2(("10.7.7.7", 40000), (INGRESS, port), vpc=world.vpc))
    assert out.startswith(b"HTTP/1.1 200")
    # A relayed client in no VPC is refused; so is the sender without a header.
    assert raw_request(SENDER, port, name, proxy_v2(("10.7.7.7", 40000), (INGRESS, port))) == b""
    assert raw_request(SENDER, port, name) == b""
    # Anyone else's header is not read: it is not HTTP.
    out = raw_request("127.0.1.5", port, name, proxy_v2(("127.0.1.42", 40000), (INGRESS, port)))
    assert out.startswith(b"HTTP/1.1 400")


def test_source_vpc_in_an_auth_policy(world):
    guarded = ServiceBuilder(world.lattice, auth_type="AWS_IAM", associate=False)
    world.lattice.create_service_network_service_association(serviceNetworkIdentifier=world.one.sn["id"],
                                                             serviceIdentifier=guarded.svc["id"])
    port = free_port()
    tg = ip_target_group(world.lattice, targets=[world.backend], health_check={"enabled": False})
    guarded.listener("HTTP", port, forward((tg, 1)))
    world.lattice.put_auth_policy(resourceIdentifier=guarded.svc["id"], policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
            "Condition": {"StringEquals": {"vpc-lattice-svcs:SourceVpc": world.vpc,
                                           "vpc-lattice-svcs:SourceVpcOwnerAccount": "111122223333"}}}]}))
    other = world.ec2.create_vpc(CidrBlock="127.0.5.0/24")["Vpc"]["VpcId"]
    world.lattice.create_service_network_vpc_association(serviceNetworkIdentifier=world.one.sn["id"],
                                                         vpcIdentifier=other)
    wait_until_applied(world.server)
    assert Caller(guarded.dns_name, port, source="127.0.1.7").request("/").status == 200
    denied = Caller(guarded.dns_name, port, source="127.0.5.7").request("/")
    assert denied.status == 403 and b"anonymous" in denied.body


def test_lattice_members_name_real_vpcs_and_groups(world):
    lattice, ec2 = world.lattice, world.ec2
    with pytest.raises(ClientError) as e:
        lattice.create_target_group(name=unique("grp"), type="IP",
                                    config={"protocol": "HTTP", "vpcIdentifier": "vpc-0123456789abcdef0"})
    assert error_code(e) == "ValidationException" and fields(e) == ["config.vpcIdentifier"]
    with pytest.raises(ClientError) as e:
        lattice.create_service_network_vpc_association(serviceNetworkIdentifier=world.one.sn["id"],
                                                       vpcIdentifier="vpc-0123456789abcdef0")
    assert error_code(e) == "ValidationException" and fields(e) == ["vpcIdentifier"]
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    foreign = ec2.create_security_group(GroupName=unique("g"), Description="d", VpcId=world.vpc)["GroupId"]
    with pytest.raises(ClientError) as e:
        lattice.create_service_network_vpc_association(serviceNetworkIdentifier=world.one.sn["id"],
                                                       vpcIdentifier=vpc, securityGroupIds=[foreign])
    assert error_code(e) == "ValidationException" and fields(e) == ["securityGroupIds[0]"]
    # A VPC with an association cannot be deleted before it.
    with pytest.raises(ClientError) as e:
        ec2.delete_vpc(VpcId=world.vpc)
    assert error_code(e) == "DependencyViolation"
    # Nothing was stored by the refused calls.
    listed = lattice.list_service_network_vpc_associations(vpcIdentifier=vpc)["items"]
    assert listed == []


def dig_from(server, source, name):
    """`dig -b SOURCE` against Trellis's DNS: the A answers for `name` (empty for NXDOMAIN)."""
    host, port = server.dns_address()
    p = subprocess.run(["dig", "-b", source, f"@{host}", "-p", str(port), name, "A", "+short", "+time=5",
                        "+tries=1"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return [line for line in p.stdout.splitlines() if line]


def test_dns_answers_each_client_network_its_own_names(world):
    one, two = world.one.dns_name, world.two.dns_name
    # The VPC's clients resolve their network's service, with the ingress address; not the other.
    assert dig_from(world.server, "127.0.1.5", one) == [INGRESS]
    assert dig_from(world.server, "127.0.1.5", two) == []
    # A client in no associated VPC resolves nothing.
    assert dig_from(world.server, "127.0.2.5", one) == []
    # An association with its own ingress address answers with it.
    vpc = world.ec2.create_vpc(CidrBlock="127.0.6.0/24")["Vpc"]["VpcId"]
    world.lattice.create_service_network_vpc_association(
        serviceNetworkIdentifier=world.one.sn["id"], vpcIdentifier=vpc, tags={"trellis:ingress-address": "127.0.0.13"})
    wait_until_applied(world.server)
    assert dig_from(world.server, "127.0.6.5", one) == ["127.0.0.13"]
    r = Caller(one, world.port, source="127.0.6.5", address="127.0.0.13").request("/")
    assert r.status == 200 and r.json()["headers"]["x-amzn-source-vpc"] == vpc


def test_custom_domain_names_follow_private_dns(world):
    custom = f"{unique('api')}.example.com"
    svc = ServiceBuilder(world.lattice, associate=False, custom_domain_name=custom)
    tg = ip_target_group(world.lattice, targets=[world.backend], health_check={"enabled": False})
    svc.listener("HTTP", world.port, forward((tg, 1)))
    sn = world.lattice.create_service_network(name=unique("dns"))
    world.lattice.create_service_network_service_association(serviceNetworkIdentifier=sn["id"],
                                                             serviceIdentifier=svc.svc["id"])
    on, off, only = (world.ec2.create_vpc(CidrBlock=c)["Vpc"]["VpcId"]
                     for c in ("127.0.11.0/24", "127.0.12.0/24", "127.0.13.0/24"))
    world.lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn["id"], vpcIdentifier=on)
    # A VPC is in one network, so the other two VPCs join two more networks that hold the service:
    # each association's private DNS settings decide what its VPC's clients resolve.
    sn_off = world.lattice.create_service_network(name=unique("dns"))
    sn_only = world.lattice.create_service_network(name=unique("dns"))
    for other in (sn_off, sn_only):
        world.lattice.create_service_network_service_association(serviceNetworkIdentifier=other["id"],
                                                                 serviceIdentifier=svc.svc["id"])
    world.lattice.create_service_network_vpc_association(serviceNetworkIdentifier=sn_off["id"], vpcIdentifier=off,
                                                         privateDnsEnabled=False)
    world.lattice.create_service_network_vpc_association(
        serviceNetworkIdentifier=sn_only["id"], vpcIdentifier=only, privateDnsEnabled=True,
        dnsOptions={"privateDnsPreference": "SPECIFIED_DOMAINS_ONLY", "privateDnsSpecifiedDomains": ["*.example.org"]})
    wait_until_applied(world.server)
    assert dig_from(world.server, "127.0.11.5", custom) == [INGRESS]
    assert dig_from(world.server, "127.0.12.5", custom) == []
    assert dig_from(world.server, "127.0.13.5", custom) == []
    # The generated name resolves in all three.
    for source in ("127.0.11.5", "127.0.12.5", "127.0.13.5"):
        assert dig_from(world.server, source, svc.dns_name) == [INGRESS]


def test_security_group_changes_under_load(world):
    """While one client calls without pause, another client's rule is added and revoked, again
    and again: the steady client never fails, and the other is admitted exactly while its rule
    is applied (every request between two applied revisions is checked against the rule then in
    force)."""
    import threading

    vpc = world.ec2.create_vpc(CidrBlock="127.0.14.0/24")["Vpc"]["VpcId"]
    sg = world.ec2.create_security_group(GroupName=unique("load"), Description="load", VpcId=vpc)["GroupId"]
    steady_rule = [{"IpProtocol": "tcp", "FromPort": world.port, "ToPort": world.port,
                    "IpRanges": [{"CidrIp": "127.0.14.10/32"}]}]
    flip_rule = [{"IpProtocol": "tcp", "FromPort": world.port, "ToPort": world.port,
                  "IpRanges": [{"CidrIp": "127.0.14.20/32"}]}]
    world.ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=steady_rule)
    world.lattice.create_service_network_vpc_association(serviceNetworkIdentifier=world.one.sn["id"],
                                                         vpcIdentifier=vpc, securityGroupIds=[sg])
    wait_until_applied(world.server)

    stop, failures, served = threading.Event(), [], [0]

    def steady():
        caller = world.caller(world.one, "127.0.14.10")
        while not stop.is_set():
            try:
                r = caller.request("/")
                if r.status != 200:
                    failures.append(r.status)
                served[0] += 1
            except Exception as e:  # noqa: BLE001 - any failure of an admitted client counts
                failures.append(repr(e))
                caller.close()

    thread = threading.Thread(target=steady)
    thread.start()
    try:
        flipper = world.caller(world.one, "127.0.14.20")
        for _ in range(5):
            world.ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=flip_rule)
            wait_until_applied(world.server)
            assert flipper.request("/").status == 200
            world.ec2.revoke_security_group_ingress(GroupId=sg, IpPermissions=flip_rule)
            wait_until_applied(world.server)
            # An open connection is refused its next request; a new one gets no connection.
            assert flipper.request("/").status == 403
            flipper.close()
            assert refused(flipper)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert failures == [] and served[0] > 0, (failures[:5], served[0])


def test_ipv6_clients_and_targets(world, start_backend):
    """An IPv6 target behind an IPv4 client, an IPv6 client in a VPC's IPv6 block, and DNS answering
    both families."""
    v6 = start_backend("v6-target", host="::1")
    svc = ServiceBuilder(world.lattice, associate=False)
    world.lattice.create_service_network_service_association(serviceNetworkIdentifier=world.one.sn["id"],
                                                             serviceIdentifier=svc.svc["id"])
    tg = world.lattice.create_target_group(name=unique("v6"), type="IP", config={
        "port": 80, "protocol": "HTTP", "ipAddressType": "IPV6", "vpcIdentifier": world.vpc,
        "healthCheck": {"enabled": False}})
    world.lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[v6.target()])
    port = free_port()
    svc.listener("HTTP", port, forward((tg, 1)))
    vpc = world.ec2.create_vpc(CidrBlock="127.0.21.0/24")["Vpc"]["VpcId"]
    world.ec2.associate_vpc_cidr_block(VpcId=vpc, Ipv6CidrBlock="::/64")
    world.lattice.create_service_network_vpc_association(serviceNetworkIdentifier=world.one.sn["id"],
                                                         vpcIdentifier=vpc)
    wait_until_applied(world.server)

    # IPv4 client → IPv6 target.
    r = Caller(svc.dns_name, port, source="127.0.21.5").request("/")
    assert r.status == 200 and r.backend == "v6-target"
    assert r.json()["headers"]["x-forwarded-for"] == "127.0.21.5"
    # IPv6 client (::1, in the VPC's ::/64) on the IPv6 ingress address.
    r = Caller(svc.dns_name, port, address="::1").request("/")
    assert r.status == 200 and r.backend == "v6-target"
    assert r.json()["headers"]["x-forwarded-for"] == "::1"
    assert r.json()["headers"]["x-amzn-source-vpc"] == vpc
    # DNS answers both families to the VPC's clients.
    host, dns_port = world.server.dns_address()
    for rtype, want in (("A", INGRESS), ("AAAA", "::1")):
        p = subprocess.run(["dig", "-b", "127.0.21.5", f"@{host}", "-p", str(dns_port), svc.dns_name, rtype, "+short"],
                           capture_output=True, text=True, timeout=30)
        assert p.stdout.split() == [want], (rtype, p.stdout)


ECHO = """
import json

def handler(event, context):
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
"""


def test_lambda_targets_see_the_client_network(world):
    from functions_support import ROLE, function_arn, zip_bytes

    lam = world.server.client("lambda")
    name = unique("netecho")
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Timeout=10, Code={"ZipFile": zip_bytes({"app.py": ECHO})})
    svc = ServiceBuilder(world.lattice, associate=False)
    world.lattice.create_service_network_service_association(serviceNetworkIdentifier=world.one.sn["id"],
                                                             serviceIdentifier=svc.svc["id"])
    # The service is in both networks; the request arrives through the client's (the first).
    world.lattice.create_service_network_service_association(serviceNetworkIdentifier=world.two.sn["id"],
                                                             serviceIdentifier=svc.svc["id"])
    tg = world.lattice.create_target_group(name=unique("netecho"), type="LAMBDA",
                                           config={"lambdaEventStructureVersion": "V2"})
    world.lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": function_arn(name)}])
    port = free_port()
    svc.listener("HTTP", port, forward((tg, 1)))
    wait_until_applied(world.server)
    r = Caller(svc.dns_name, port, source="127.0.1.5").request("/who")
    assert r.status == 200, r.body
    event = r.json()
    context = event["requestContext"]
    assert context["identity"]["sourceVpcArn"] == f"arn:aws:ec2:us-west-2:111122223333:vpc/{world.vpc}"
    assert context["serviceNetworkArn"] == world.one.sn["arn"]
    assert event["headers"]["x-amzn-source-vpc"] == [world.vpc]   # V2: every header is a list


def test_security_group_references_admit_the_instances_in_a_group(world):
    """A rule whose source is a security group admits the addresses of the running instances in
    that group (registered with run-instances), and no one else; a stopped instance's address no
    longer."""
    ec2 = world.ec2
    vpc = ec2.create_vpc(CidrBlock="127.0.30.0/24")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.30.0/24")["Subnet"]["SubnetId"]
    peers = ec2.create_security_group(GroupName=unique("peers"), Description="callers", VpcId=vpc)["GroupId"]
    entry = ec2.create_security_group(GroupName=unique("entry"), Description="entry", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=entry, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": world.port, "ToPort": world.port,
        "UserIdGroupPairs": [{"GroupId": peers}]}])
    instance = ec2.run_instances(MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress="127.0.30.40",
                                 SecurityGroupIds=[peers])["Instances"][0]["InstanceId"]
    world.lattice.create_service_network_vpc_association(serviceNetworkIdentifier=world.one.sn["id"],
                                                         vpcIdentifier=vpc, securityGroupIds=[entry])
    wait_until_applied(world.server)
    assert world.caller(world.one, "127.0.30.40").request("/").status == 200
    assert refused(world.caller(world.one, "127.0.30.41"))
    ec2.stop_instances(InstanceIds=[instance])
    wait_until_applied(world.server)
    assert refused(world.caller(world.one, "127.0.30.40"))


def test_a_client_in_its_own_network_namespace(world):
    """A client in another network namespace, reaching Trellis over a veth pair as a host on a
    real network would: its VPC's association has the host end's address as its own ingress
    address; an address of the namespace outside the VPC's CIDR is refused."""
    tag = unique("n")[-6:]
    ns, host_if, ns_if = f"trellis-{tag}", f"tvh{tag}", f"tvn{tag}"
    octet = 100 + int(tag, 16) % 100
    net = f"10.{octet}.7"

    def sh(*cmd):
        p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, f"{' '.join(cmd)}: {p.stderr}"
        return p.stdout

    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", ns)
        sh("ip", "addr", "add", f"{net}.1/24", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        for address in (f"{net}.2/24", f"{net}.20/24"):
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", address, "dev", ns_if)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

        vpc = world.ec2.create_vpc(CidrBlock=f"{net}.0/28")["Vpc"]["VpcId"]
        world.lattice.create_service_network_vpc_association(
            serviceNetworkIdentifier=world.one.sn["id"], vpcIdentifier=vpc,
            tags={"trellis:ingress-address": f"{net}.1"})
        wait_until_applied(world.server)

        def curl_from(source):
            p = subprocess.run(["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                "--max-time", "10", "--interface", source,
                                "--resolve", f"{world.one.dns_name}:{world.port}:{net}.1",
                                f"http://{world.one.dns_name}:{world.port}/"],
                               capture_output=True, text=True, timeout=30)
            return p.stdout

        assert curl_from(f"{net}.2") == "200"
        assert curl_from(f"{net}.20") == "000"   # outside the VPC's /28: the connection is closed
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_an_association_advertises_other_addresses(world):
    """Behind a load balancer (or with several nodes), DNS answers a VPC's clients the addresses
    its association advertises (tag `trellis:advertised-address`), of both families."""
    vpc = world.ec2.create_vpc(CidrBlock="127.0.40.0/24")["Vpc"]["VpcId"]
    world.lattice.create_service_network_vpc_association(
        serviceNetworkIdentifier=world.one.sn["id"], vpcIdentifier=vpc,
        tags={"trellis:advertised-address": "10.1.2.3,10.1.2.4,fd00::7"})
    wait_until_applied(world.server)
    assert sorted(dig_from(world.server, "127.0.40.5", world.one.dns_name)) == ["10.1.2.3", "10.1.2.4"]
    host, port = world.server.dns_address()
    p = subprocess.run(["dig", "-b", "127.0.40.5", f"@{host}", "-p", str(port), world.one.dns_name, "AAAA", "+short"],
                       capture_output=True, text=True, timeout=30)
    assert p.stdout.split() == ["fd00::7"]
    # Other VPCs keep theirs.
    assert dig_from(world.server, "127.0.1.5", world.one.dns_name) == [INGRESS]
    with pytest.raises(ClientError) as e:
        world.lattice.create_service_network_vpc_association(
            serviceNetworkIdentifier=world.one.sn["id"],
            vpcIdentifier=world.ec2.create_vpc(CidrBlock="10.11.0.0/16")["Vpc"]["VpcId"],
            tags={"trellis:advertised-address": "10.1.2.3,lb.example"})
    assert error_code(e) == "ValidationException" and fields(e) == ["tags"]


def metric(server, name, **labels):
    """The value of one sample of `/metrics` (0 when absent)."""
    import urllib.request
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as r:
        text = r.read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == (f"{name}{{{want}}}" if labels else name):
            return float(value)
    return 0.0


def test_refused_connections_are_counted(world):
    before = metric(world.server, "trellis_client_connections_refused_total", reason="client_network")
    for source in ("127.0.2.7", "127.0.2.8", "127.0.2.9"):
        assert refused(world.caller(world.one, source))
    after = metric(world.server, "trellis_client_connections_refused_total", reason="client_network")
    assert after == before + 3
    # An admitted keep-alive connection is counted as open while it is.
    caller = world.caller(world.one, "127.0.1.5")
    assert caller.request("/").status == 200
    assert metric(world.server, "trellis_client_connections") >= 1
    caller.close()
