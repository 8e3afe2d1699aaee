"""The AWS Organizations subset, with the AWS CLI and boto3: the account creates its organization
(and is its management account and only member), reads it, and deletes it; the organization is
the source of `aws:PrincipalOrgID` in identity policies on API calls and in trust policies.
(On the data plane: test_dataplane_auth.py.)"""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT, error_code
from test_iam import as_user, new_user, wait_identity
from test_sts import client, new_role, root_creds


def org_cli(server, *args, check=True):
    return server.cli(*args, service="organizations", check=check)


def test_create_describe_list_delete(server):
    orgs = server.client("organizations")
    with pytest.raises(ClientError) as e:
        orgs.describe_organization()
    assert error_code(e) == "AWSOrganizationsNotInUseException"
    org = org_cli(server, "create-organization", "--feature-set", "ALL")["Organization"]
    try:
        assert org["Id"].startswith("o-") and len(org["Id"]) == 12
        assert org["Arn"] == f"arn:aws:organizations::{ACCOUNT}:organization/{org['Id']}"
        assert org["MasterAccountId"] == ACCOUNT and org["FeatureSet"] == "ALL"
        assert org_cli(server, "describe-organization")["Organization"]["Id"] == org["Id"]
        with pytest.raises(ClientError) as e:
            orgs.create_organization(FeatureSet="ALL")
        assert error_code(e) == "AlreadyInOrganizationException"
        roots = org_cli(server, "list-roots")["Roots"]
        assert len(roots) == 1 and roots[0]["Id"].startswith("r-") and roots[0]["Name"] == "Root"
        accounts = org_cli(server, "list-accounts")["Accounts"]
        assert [a["Id"] for a in accounts] == [ACCOUNT]
        assert accounts[0]["Status"] == "ACTIVE" and accounts[0]["Arn"].endswith(f"/{org['Id']}/{ACCOUNT}")
        assert org_cli(server, "describe-account", "--account-id", ACCOUNT)["Account"]["Id"] == ACCOUNT
        with pytest.raises(ClientError) as e:
            orgs.describe_account(AccountId="444455556666")
        assert error_code(e) == "AccountNotFoundException"
        with pytest.raises(ClientError) as e:
            orgs.describe_account(AccountId="12")
        assert error_code(e) == "InvalidInputException"
        with pytest.raises(ClientError) as e:
            orgs.create_organization(FeatureSet="SOME")
        assert error_code(e) in ("InvalidInputException", "AlreadyInOrganizationException")
    finally:
        org_cli(server, "delete-organization")
    with pytest.raises(ClientError) as e:
        orgs.list_accounts()
    assert error_code(e) == "AWSOrganizationsNotInUseException"


def test_principal_org_id_in_identity_and_trust_policies(server):
    """A user allowed to list services only within the organization, and a role only the
    organization's principals may assume: both refused before the organization exists."""
    user, key = new_user(server, {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["vpc-lattice:ListServices", "sts:AssumeRole"], "Resource": "*",
        "Condition": {"StringLike": {"aws:PrincipalOrgID": "o-*"}}}]})
    role = new_role(server, {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole",
        "Condition": {"StringLike": {"aws:PrincipalOrgID": "o-*"}}}]})
    wait_identity(server)
    lattice = as_user(server, key)
    with pytest.raises(ClientError) as e:
        lattice.list_services()
    assert error_code(e) == "AccessDeniedException"
    sts = client(server, {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]}, "sts")
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=role["Arn"], RoleSessionName="s1")
    assert error_code(e) == "AccessDenied"
    org_cli(server, "create-organization")
    try:
        wait_identity(server)
        lattice.list_services()
        assert sts.assume_role(RoleArn=role["Arn"], RoleSessionName="s1")["Credentials"]["AccessKeyId"].startswith("ASIA")
    finally:
        org_cli(server, "delete-organization")


def test_organizations_calls_are_authorized(server):
    user, key = new_user(server)
    wait_identity(server)
    orgs = as_user(server, key, "organizations")
    with pytest.raises(ClientError) as e:
        orgs.describe_organization()
    assert error_code(e) == "AccessDeniedException"
    assert "organizations:DescribeOrganization" in e.value.response["Error"]["Message"]
