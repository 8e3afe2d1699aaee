"""The EC2 subset, with the AWS CLI and boto3: VPCs with their CIDR blocks, subnets, security
groups and their ingress rules, tags and filters, the Lattice managed prefix list, EC2's error
codes, and accounts (a member account sees only its own client networks)."""

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, REGION, error_code, unique


def ec2_cli(server, *args, check=True):
    return server.cli(*args, service="ec2", check=check)


@pytest.fixture(scope="module")
def ec2(server):
    return server.client("ec2")


def test_vpc_lifecycle_with_the_cli(server, ec2):
    name = unique("net")
    vpc = ec2_cli(server, "create-vpc", "--cidr-block", "10.20.0.0/16", "--tag-specifications",
                  f"ResourceType=vpc,Tags=[{{Key=Name,Value={name}}}]")["Vpc"]
    vpc_id = vpc["VpcId"]
    assert vpc_id.startswith("vpc-") and len(vpc_id) == 21
    assert vpc["CidrBlock"] == "10.20.0.0/16" and vpc["OwnerId"] == ACCOUNT and vpc["State"] == "available"
    assert vpc["Tags"] == [{"Key": "Name", "Value": name}]
    # A second block, then the filters that find it.
    assoc = ec2_cli(server, "associate-vpc-cidr-block", "--vpc-id", vpc_id, "--cidr-block", "10.21.0.0/16")
    assert assoc["CidrBlockAssociation"]["CidrBlock"] == "10.21.0.0/16"
    found = ec2_cli(server, "describe-vpcs", "--filters", f"Name=tag:Name,Values={name}")["Vpcs"]
    assert [v["VpcId"] for v in found] == [vpc_id]
    assert {a["CidrBlock"] for a in found[0]["CidrBlockAssociationSet"]} == {"10.20.0.0/16", "10.21.0.0/16"}
    by_cidr = ec2.describe_vpcs(Filters=[{"Name": "cidr-block-association.cidr-block", "Values": ["10.21.*"]}])["Vpcs"]
    assert vpc_id in [v["VpcId"] for v in by_cidr]
    # Every VPC has its default security group.
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    assert [g["GroupName"] for g in groups] == ["default"]
    default = groups[0]
    assert default["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == default["GroupId"]
    assert default["IpPermissionsEgress"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    ec2_cli(server, "delete-vpc", "--vpc-id", vpc_id)
    with pytest.raises(ClientError) as e:
        ec2.describe_vpcs(VpcIds=[vpc_id])
    assert error_code(e) == "InvalidVpcID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.describe_security_groups(GroupIds=[default["GroupId"]])
    assert error_code(e) == "InvalidGroup.NotFound"


@pytest.mark.parametrize("call,code", [
    (lambda ec2: ec2.create_vpc(CidrBlock="10.0.0.0/8"), "InvalidVpc.Range"),
    (lambda ec2: ec2.create_vpc(CidrBlock="10.0.0.1/16"), "InvalidParameterValue"),
    (lambda ec2: ec2.create_vpc(CidrBlock="banana"), "InvalidParameterValue"),
    (lambda ec2: ec2.create_vpc(), "MissingParameter"),
    (lambda ec2: ec2.delete_vpc(VpcId="vpc-00000000000000000"), "InvalidVpcID.NotFound"),
    (lambda ec2: ec2.create_subnet(VpcId="vpc-00000000000000000", CidrBlock="10.0.0.0/24"), "InvalidVpcID.NotFound"),
    (lambda ec2: ec2.describe_vpcs(Filters=[{"Name": "flavour", "Values": ["x"]}]), "InvalidParameterValue"),
    (lambda ec2: ec2.describe_vpcs(MaxResults=2), "InvalidParameterValue"),
    (lambda ec2: ec2.describe_vpcs(NextToken="forged"), "InvalidPaginationToken"),
    (lambda ec2: ec2.create_tags(Resources=["igw-0123"], Tags=[{"Key": "k", "Value": "v"}]), "InvalidID"),
    (lambda ec2: ec2.describe_managed_prefix_lists(PrefixListIds=["pl-00000000"]), "InvalidPrefixListID.NotFound"),
], ids=["vpc-too-big", "vpc-host-bits", "vpc-not-cidr", "vpc-no-cidr", "delete-unknown", "subnet-unknown-vpc",
        "unknown-filter", "max-results-small", "forged-token", "tag-unknown-type", "unknown-prefix-list"])
def test_errors_use_ec2_codes(ec2, call, code):
    with pytest.raises(ClientError) as e:
        call(ec2)
    assert error_code(e) == code


def test_subnets_stay_inside_their_vpc(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    try:
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24",
                                   TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "tier", "Value": "app"}]}])["Subnet"]
        assert subnet["SubnetId"].startswith("subnet-") and subnet["VpcId"] == vpc
        assert subnet["AvailableIpAddressCount"] == 251 and subnet["AvailabilityZone"] == f"{REGION}a"
        for cidr, code in [("10.31.0.0/24", "InvalidSubnet.Range"), ("10.30.1.128/25", "InvalidSubnet.Conflict"),
                           ("10.30.0.0/29", "InvalidSubnet.Range")]:
            with pytest.raises(ClientError) as e:
                ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)
            assert error_code(e) == code, cidr
        assert [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "tag:tier", "Values": ["app"]}])["Subnets"]] == [subnet["SubnetId"]]
        # A VPC with a subnet cannot go.
        with pytest.raises(ClientError) as e:
            ec2.delete_vpc(VpcId=vpc)
        assert error_code(e) == "DependencyViolation"
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        with pytest.raises(ClientError) as e:
            ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        assert error_code(e) == "InvalidSubnetID.NotFound"
    finally:
        ec2.delete_vpc(VpcId=vpc)


def test_security_group_rules(server, ec2):
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    clients = ec2.create_security_group(GroupName="clients", Description="callers", VpcId=vpc)["GroupId"]
    web = ec2_cli(server, "create-security-group", "--group-name", "web", "--description", "web tier",
                  "--vpc-id", vpc)["GroupId"]
    with pytest.raises(ClientError) as e:
        ec2.create_security_group(GroupName="web", Description="again", VpcId=vpc)
    assert error_code(e) == "InvalidGroup.Duplicate"
    lattice = ec2.describe_managed_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{REGION}.vpc-lattice"]}])["PrefixLists"]
    assert len(lattice) == 1 and lattice[0]["PrefixListId"].startswith("pl-")
    # The CLI's short form, then the structured form with all three kinds of source.
    ec2_cli(server, "authorize-security-group-ingress", "--group-id", web, "--protocol", "tcp", "--port", "443",
            "--cidr", "10.40.0.0/24")
    rules = ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8100,
         "UserIdGroupPairs": [{"GroupId": clients, "Description": "from clients"}],
         "PrefixListIds": [{"PrefixListId": lattice[0]["PrefixListId"]}]},
    ])["SecurityGroupRules"]
    assert len(rules) == 2 and all(r["SecurityGroupRuleId"].startswith("sgr-") for r in rules)
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(GroupId=web, IpProtocol="tcp", FromPort=443, ToPort=443,
                                             CidrIp="10.40.0.0/24")
    assert error_code(e) == "InvalidPermission.Duplicate"
    with pytest.raises(ClientError) as e:
        ec2.authorize_security_group_ingress(GroupId=web, IpProtocol="tcp", FromPort=9, ToPort=1, CidrIp="10.0.0.0/8")
    assert error_code(e) == "InvalidParameterValue"
    group = ec2.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]
    perms = {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort")): p for p in group["IpPermissions"]}
    assert perms[("tcp", 443, 443)]["IpRanges"] == [{"CidrIp": "10.40.0.0/24"}]
    assert perms[("tcp", 8000, 8100)]["UserIdGroupPairs"][0]["GroupId"] == clients
    assert perms[("tcp", 8000, 8100)]["PrefixListIds"][0]["PrefixListId"] == lattice[0]["PrefixListId"]
    found = ec2.describe_security_groups(Filters=[{"Name": "ip-permission.group-id", "Values": [clients]}])["SecurityGroups"]
    assert [g["GroupId"] for g in found] == [web]
    # A group another group's rule names cannot be deleted; revoking the rule frees it.
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=clients)
    assert error_code(e) == "DependencyViolation"
    ec2.revoke_security_group_ingress(GroupId=web, SecurityGroupRuleIds=[rules[0]["SecurityGroupRuleId"]])
    ec2.revoke_security_group_ingress(GroupId=web, IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp="10.40.0.0/24")
    with pytest.raises(ClientError) as e:
        ec2.revoke_security_group_ingress(GroupId=web, IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp="10.40.0.0/24")
    assert error_code(e) == "InvalidPermission.NotFound"
    left = ec2.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]["IpPermissions"]
    assert [p.get("PrefixListIds") for p in left] == [[{"PrefixListId": lattice[0]["PrefixListId"]}]]
    ec2.delete_security_group(GroupId=clients)
    default = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                    {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=default["GroupId"])
    assert error_code(e) == "CannotDelete"
    with pytest.raises(ClientError) as e:
        ec2.delete_vpc(VpcId=vpc)
    assert error_code(e) == "DependencyViolation"
    ec2.delete_security_group(GroupId=web)
    ec2.delete_vpc(VpcId=vpc)


def test_tags_and_pages(server, ec2):
    marker = unique("batch")
    vpcs = [ec2.create_vpc(CidrBlock=f"10.{50 + i}.0.0/16")["Vpc"]["VpcId"] for i in range(7)]
    try:
        ec2_cli(server, "create-tags", "--resources", *vpcs, "--tags", f"Key=batch,Value={marker}", "Key=env,Value=dev")
        ec2.delete_tags(Resources=[vpcs[0]], Tags=[{"Key": "env"}])
        ec2.delete_tags(Resources=[vpcs[1]], Tags=[{"Key": "env", "Value": "prod"}])  # value differs: kept
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": vpcs[:2]}])["Tags"]
        assert sorted((t["ResourceId"], t["Key"]) for t in tags) == sorted(
            [(vpcs[0], "batch"), (vpcs[1], "batch"), (vpcs[1], "env")])
        assert all(t["ResourceType"] == "vpc" for t in tags)
        # Pages of five: the CLI follows NextToken itself; by hand, two pages.
        mine = [{"Name": "tag:batch", "Values": [marker]}]
        first = ec2.describe_vpcs(Filters=mine, MaxResults=5)
        second = ec2.describe_vpcs(Filters=mine, MaxResults=5, NextToken=first["NextToken"])
        assert [v["VpcId"] for v in first["Vpcs"] + second["Vpcs"]] == vpcs and "NextToken" not in second
        listed = ec2_cli(server, "describe-vpcs", "--filters", f"Name=tag:batch,Values={marker}", "--page-size", "5")
        assert [v["VpcId"] for v in listed["Vpcs"]] == vpcs
        with pytest.raises(ClientError) as e:
            ec2.describe_vpcs(VpcIds=vpcs[:1], MaxResults=5)
        assert error_code(e) == "InvalidParameterCombination"
    finally:
        for v in vpcs:
            ec2.delete_vpc(VpcId=v)


def test_a_limited_user_is_refused_with_unauthorized_operation(server, ec2):
    from test_iam import as_user, new_user, wait_identity
    _, key = new_user(server, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}]})
    wait_identity(server)
    user = as_user(server, key, "ec2")
    user.describe_vpcs()
    with pytest.raises(ClientError) as e:
        user.create_vpc(CidrBlock="10.60.0.0/16")
    assert error_code(e) == "UnauthorizedOperation"
    assert "not authorized to perform: ec2:CreateVpc" in e.value.response["Error"]["Message"]
