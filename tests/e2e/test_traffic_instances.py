"""INSTANCE target groups: a host registered as an EC2 instance with `aws ec2 run-instances`
(which launches nothing: it names an existing host's address in a subnet), its instance ID as a
target, traffic to its address, and a stopped or terminated instance taken out of rotation and
reported UNAVAILABLE (`InstanceNotRunning`) — all at the next applied revision."""

import pytest
from botocore.exceptions import ClientError

from backends import INGRESS, Caller, ServiceBuilder, forward, free_port, target_statuses, wait_until_applied
from conftest import error_code, unique

pytest_plugins = ["backends"]


@pytest.fixture(scope="module")
def network(dp_server):
    """A VPC and subnet holding the ingress address, where the test backends run."""
    ec2 = dp_server.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.0.0/24")["Subnet"]["SubnetId"]
    return ec2, vpc, subnet


def register_host(server, subnet, address, name):
    """`aws ec2 run-instances` for an existing host: its instance."""
    out = server.cli("run-instances", "--subnet-id", subnet, "--private-ip-address", address,
                     "--tag-specifications", f"ResourceType=instance,Tags=[{{Key=Name,Value={name}}}]",
                     service="ec2")
    return out["Instances"][0]


def test_instance_targets_serve_and_leave_rotation(dp_server, dp_lattice, network, start_backend):
    ec2, vpc, subnet = network
    one, two = start_backend("inst-1"), start_backend("inst-2")
    first = register_host(dp_server, subnet, "127.0.0.1", "web-1")
    assert first["InstanceId"].startswith("i-") and first["State"]["Name"] == "running"
    assert first["PrivateIpAddress"] == "127.0.0.1" and first["VpcId"] == vpc
    # The same address cannot be registered twice in one VPC; another loopback address can.
    with pytest.raises(ClientError) as e:
        ec2.run_instances(MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress="127.0.0.1")
    assert error_code(e) == "InvalidIPAddress.InUse"
    second = register_host(dp_server, subnet, "127.0.0.2", "web-2")
    found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["web-*"]}])["Reservations"]
    assert {r["Instances"][0]["InstanceId"] for r in found} == {first["InstanceId"], second["InstanceId"]}

    tg = dp_lattice.create_target_group(name=unique("hosts"), type="INSTANCE", config={
        "port": 80, "protocol": "HTTP", "vpcIdentifier": vpc,
        "healthCheck": {"enabled": False}})
    # Each instance with the port its backend listens on; an unknown instance is refused.
    resp = dp_lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[
        {"id": first["InstanceId"], "port": one.port}, {"id": "i-0123456789abcdef0", "port": 80}])
    assert [f["id"] for f in resp["unsuccessful"]] == ["i-0123456789abcdef0"]
    svc = ServiceBuilder(dp_lattice)
    port = free_port()
    svc.listener("HTTP", port, forward((tg, 1)))
    wait_until_applied(dp_server)
    caller = Caller(svc.dns_name, port)
    assert {caller.request("/").backend for _ in range(4)} == {"inst-1"}

    # The second host listens on 127.0.0.1 too (the backends bind the ingress address), so the
    # instance at 127.0.0.2 has no server: register the first instance again with the second
    # backend's port instead.
    dp_lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": first["InstanceId"], "port": two.port}])
    wait_until_applied(dp_server)
    assert {caller.request("/").backend for _ in range(8)} == {"inst-1", "inst-2"}

    # Stopped: no traffic, UNAVAILABLE with a reason; started again: back.
    ec2.stop_instances(InstanceIds=[first["InstanceId"]])
    wait_until_applied(dp_server)
    statuses = target_statuses(dp_lattice, tg)
    assert set(statuses.values()) == {("UNAVAILABLE", "InstanceNotRunning")}, statuses
    assert caller.request("/").status == 503
    ec2.start_instances(InstanceIds=[first["InstanceId"]])
    wait_until_applied(dp_server)
    assert {caller.request("/").backend for _ in range(8)} == {"inst-1", "inst-2"}

    # Terminated: for good (it cannot be started or registered again).
    changes = ec2.terminate_instances(InstanceIds=[first["InstanceId"]])["TerminatingInstances"]
    assert changes[0]["CurrentState"]["Name"] == "terminated" and changes[0]["PreviousState"]["Name"] == "running"
    wait_until_applied(dp_server)
    assert set(target_statuses(dp_lattice, tg).values()) == {("UNAVAILABLE", "InstanceNotRunning")}
    assert caller.request("/").status == 503
    with pytest.raises(ClientError) as e:
        ec2.start_instances(InstanceIds=[first["InstanceId"]])
    assert error_code(e) == "IncorrectInstanceState"
    refused = dp_lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": first["InstanceId"], "port": 81}])
    assert [f["id"] for f in refused["unsuccessful"]] == [first["InstanceId"]]
    caller.close()


def test_run_instances_registers_hosts_only(network):
    ec2, _, subnet = network
    for kwargs, code in [
        ({"SubnetId": subnet}, "MissingParameter"),
        ({"PrivateIpAddress": "127.0.0.9"}, "MissingParameter"),
        ({"SubnetId": subnet, "PrivateIpAddress": "10.9.9.9"}, "InvalidParameterValue"),
        ({"SubnetId": "subnet-00000000000000000", "PrivateIpAddress": "127.0.0.9"}, "InvalidSubnetID.NotFound"),
        ({"SubnetId": subnet, "PrivateIpAddress": "127.0.0.9", "MaxCount": 2}, "InvalidParameterValue"),
    ]:
        with pytest.raises(ClientError) as e:
            ec2.run_instances(**{"MinCount": 1, "MaxCount": 1, **kwargs})
        assert error_code(e) == code, kwargs
    with pytest.raises(ClientError) as e:
        ec2.describe_instances(InstanceIds=["i-00000000000000000"])
    assert error_code(e) == "InvalidInstanceID.NotFound"


def test_instances_in_another_vpc_are_refused(dp_server, dp_lattice, network):
    ec2, vpc, subnet = network
    other_vpc = ec2.create_vpc(CidrBlock="127.1.0.0/16")["Vpc"]["VpcId"]
    other_subnet = ec2.create_subnet(VpcId=other_vpc, CidrBlock="127.1.0.0/24")["Subnet"]["SubnetId"]
    elsewhere = register_host(dp_server, other_subnet, "127.1.0.5", "elsewhere")
    tg = dp_lattice.create_target_group(name=unique("hosts"), type="INSTANCE", config={
        "port": 80, "protocol": "HTTP", "vpcIdentifier": vpc})
    resp = dp_lattice.register_targets(targetGroupIdentifier=tg["id"], targets=[{"id": elsewhere["InstanceId"]}])
    assert [f["id"] for f in resp["unsuccessful"]] == [elsewhere["InstanceId"]]
    assert "not in the target group's VPC" in resp["unsuccessful"][0]["failureMessage"]
    assert INGRESS == "127.0.0.1"
