"""Terraform against Trellis: the hashicorp/aws provider, pointed at the server, applies, plans
(no changes), updates in place, plans again (no changes) and destroys a configuration with every
`aws_vpclattice_*` resource and data source Trellis serves, plus `aws_lambda_function`,
`aws_iam_role`, `aws_iam_role_policy`, `aws_iam_policy` (updated as a new version), the
role and group policy attachments, `aws_iam_user`, `aws_iam_group` and
`aws_iam_user_group_membership`.

Terraform (`terraform` on PATH) and a filesystem mirror of the provider (`/opt/tf-plugins`, or
`$TRELLIS_TF_PLUGINS`) must be installed; the tests fail, never skip, when they are not. Nothing is
downloaded: the CLI configuration installs the provider from the mirror only.

Covered (the provider version in the mirror has 14 resource and 5 data-source types):
- resources: aws_vpclattice_service_network, aws_vpclattice_service, aws_vpclattice_target_group
  (IP over HTTP, IP over TCP, LAMBDA), aws_vpclattice_target_group_attachment (IP and Lambda
  targets), aws_vpclattice_listener (HTTP and TLS_PASSTHROUGH), aws_vpclattice_listener_rule
  (path match without a method, header match with a method), aws_vpclattice_auth_policy,
  aws_vpclattice_resource_policy, aws_vpclattice_access_log_subscription (on a network and a
  service), aws_vpclattice_service_network_service_association,
  aws_vpclattice_service_network_vpc_association, aws_lambda_function, aws_iam_role (with tags),
  aws_iam_role_policy, aws_iam_policy, aws_iam_role_policy_attachment (customer- and
  AWS-managed), aws_iam_user (with tags), aws_iam_group, aws_iam_group_policy_attachment and
  aws_iam_user_group_membership;
- data sources: aws_vpclattice_service_network, aws_vpclattice_service (by id and by name),
  aws_vpclattice_listener, aws_vpclattice_auth_policy, aws_vpclattice_resource_policy.

Not served, so not covered: aws_vpclattice_resource_gateway, aws_vpclattice_resource_configuration
and aws_vpclattice_service_network_resource_association. They are Lattice's TCP "resources"
(resource gateways in a VPC's subnets fronting databases and other non-HTTP endpoints, Dec 2024);
Trellis implements services, not resources, and answers those operations as unknown.

Two provider behaviours shape the configuration (they are the provider's, not Trellis's):
aws_vpclattice_listener_rule never sends a changed `priority` to UpdateRule, so the update changes
a rule's match instead; and an access log subscription's destination change is a replacement.
The provider validates its credentials and learns the account with STS GetCallerIdentity (no
`skip_*` settings but the metadata and region checks); knowing the account is what lets data
sources read their tags, which are asserted.
"""

import io
import json
import os
import shutil
import subprocess
import tempfile
import zipfile

import pytest
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, ACCOUNT, REGION, SECRET_KEY, error_code, new_vpc, tags_of, unique

PLUGINS = os.environ.get("TRELLIS_TF_PLUGINS", "/opt/tf-plugins")
ROLE = f"arn:aws:iam::{ACCOUNT}:role/tf-lambda"
# Every terraform command is bounded; a hang fails the test instead of the suite.
COMMAND_TIMEOUT_S = 300

# The configuration: `var.stage` is "v1" for the first apply and "v2" for the in-place update;
# every resource that can be updated in place changes something (tags at least) between them.
MAIN_TF = r'''
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

variable "endpoint" { type = string }
variable "vpc" { type = string }
variable "stage" { type = string }

provider "aws" {
  region                      = "%(region)s"
  access_key                  = "%(access_key)s"
  secret_key                  = "%(secret_key)s"
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {
    vpclattice = var.endpoint
    lambda     = var.endpoint
    sts        = var.endpoint
    iam        = var.endpoint
  }
}

locals {
  tags = { owner = "tf", stage = var.stage }
  v1   = var.stage == "v1"
}

resource "aws_vpclattice_service_network" "sn" {
  name      = "tf-sn"
  auth_type = "AWS_IAM"
  tags      = local.tags
}

resource "aws_vpclattice_service" "svc" {
  name      = "tf-svc"
  auth_type = "AWS_IAM"
  tags      = local.tags
}

resource "aws_vpclattice_service" "tls" {
  name               = "tf-tls"
  custom_domain_name = "tls.example.internal"
  tags               = local.tags
}

resource "aws_vpclattice_target_group" "ip" {
  name = "tf-ip"
  type = "IP"
  config {
    port           = 80
    protocol       = "HTTP"
    vpc_identifier = var.vpc
    health_check {
      enabled                       = true
      health_check_interval_seconds = local.v1 ? 10 : 20
      path                          = "/health-${var.stage}"
      matcher { value = local.v1 ? "200" : "200-299" }
    }
  }
  tags = local.tags
}

# A TCP group: health checks off at first, then turned on without naming the protocol, so the
# provider sends back the protocol the group reported.
resource "aws_vpclattice_target_group" "tcp" {
  name = "tf-tcp"
  type = "IP"
  config {
    port           = 9000
    protocol       = "TCP"
    vpc_identifier = var.vpc
    health_check {
      enabled = !local.v1
      path    = "/ready"
    }
  }
  tags = local.tags
}

resource "aws_vpclattice_target_group" "fn" {
  name = "tf-fn"
  type = "LAMBDA"
  config {
    lambda_event_structure_version = "V2"
  }
  tags = local.tags
}

resource "aws_vpclattice_target_group_attachment" "ip" {
  target_group_identifier = aws_vpclattice_target_group.ip.id
  target {
    id   = "10.0.0.10"
    port = 8080
  }
}

resource "aws_vpclattice_target_group_attachment" "tcp" {
  target_group_identifier = aws_vpclattice_target_group.tcp.id
  target {
    id = "10.0.0.11"
  }
}

# An IAM role with an inline policy, beside the Lattice resources: tags and the policy change in
# place between stages.
resource "aws_iam_role" "app" {
  name = "tf-app"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { AWS = "%(account)s" }, Action = "sts:AssumeRole" }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy" "app" {
  name = "read"
  role = aws_iam_role.app.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = local.v1 ? "vpc-lattice:Get*" : "vpc-lattice:List*", Resource = aws_vpclattice_service.svc.arn }]
  })
}

# A customer-managed policy (the update is a new default version), attached to the role, to a
# group and so to a user in that group; AWS's VPCLatticeReadOnlyAccess attached to the role too.
resource "aws_iam_policy" "read" {
  name        = "tf-read"
  path        = "/tf/"
  description = "Lattice reads"
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = local.v1 ? ["vpc-lattice:Get*"] : ["vpc-lattice:Get*", "vpc-lattice:List*"], Resource = "*" }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "read" {
  role       = aws_iam_role.app.name
  policy_arn = aws_iam_policy.read.arn
}

resource "aws_iam_role_policy_attachment" "aws_read" {
  role       = aws_iam_role.app.name
  policy_arn = "arn:aws:iam::aws:policy/VPCLatticeReadOnlyAccess"
}

resource "aws_iam_user" "dev" {
  name = "tf-dev"
  path = "/tf/"
  tags = local.tags
}

resource "aws_iam_group" "devs" {
  name = "tf-devs"
  path = "/tf/"
}

resource "aws_iam_group_policy_attachment" "read" {
  group      = aws_iam_group.devs.name
  policy_arn = aws_iam_policy.read.arn
}

resource "aws_iam_user_group_membership" "dev" {
  user   = aws_iam_user.dev.name
  groups = [aws_iam_group.devs.name]
}

resource "aws_lambda_function" "fn" {
  function_name    = "tf-fn"
  role             = "%(role)s"
  runtime          = "python3.12"
  handler          = "index.handler"
  filename         = "${path.module}/fn.zip"
  source_code_hash = filebase64sha256("${path.module}/fn.zip")
  timeout          = local.v1 ? 5 : 7
  environment {
    variables = { STAGE = var.stage }
  }
  tags = local.tags
}

resource "aws_vpclattice_target_group_attachment" "fn" {
  target_group_identifier = aws_vpclattice_target_group.fn.id
  target {
    id = aws_lambda_function.fn.arn
  }
}

resource "aws_vpclattice_listener" "http" {
  name               = "tf-http"
  protocol           = "HTTP"
  port               = 80
  service_identifier = aws_vpclattice_service.svc.id
  default_action {
    forward {
      target_groups {
        target_group_identifier = aws_vpclattice_target_group.ip.id
        weight                  = local.v1 ? 80 : 60
      }
      target_groups {
        target_group_identifier = aws_vpclattice_target_group.fn.id
        weight                  = 20
      }
    }
  }
  tags = local.tags
}

resource "aws_vpclattice_listener" "tls" {
  name               = "tf-tls"
  protocol           = "TLS_PASSTHROUGH"
  port               = 443
  service_identifier = aws_vpclattice_service.tls.id
  default_action {
    forward {
      target_groups {
        target_group_identifier = aws_vpclattice_target_group.tcp.id
      }
    }
  }
  tags = local.tags
}

# No method: the provider sends "method": "".
resource "aws_vpclattice_listener_rule" "path" {
  name                = "tf-path"
  service_identifier  = aws_vpclattice_service.svc.id
  listener_identifier = aws_vpclattice_listener.http.listener_id
  priority            = 10
  match {
    http_match {
      path_match {
        case_sensitive = true
        match { prefix = "/fn-${var.stage}" }
      }
    }
  }
  action {
    forward {
      target_groups {
        target_group_identifier = aws_vpclattice_target_group.fn.id
      }
    }
  }
  tags = local.tags
}

resource "aws_vpclattice_listener_rule" "header" {
  name                = "tf-header"
  service_identifier  = aws_vpclattice_service.svc.id
  listener_identifier = aws_vpclattice_listener.http.listener_id
  priority            = 20
  match {
    http_match {
      method = "POST"
      header_matches {
        name = "x-stage"
        match { exact = var.stage }
      }
    }
  }
  action {
    fixed_response { status_code = local.v1 ? 404 : 500 }
  }
  tags = local.tags
}

resource "aws_vpclattice_service_network_service_association" "sa" {
  service_identifier         = aws_vpclattice_service.svc.id
  service_network_identifier = aws_vpclattice_service_network.sn.id
  tags                       = local.tags
}

resource "aws_vpclattice_service_network_vpc_association" "va" {
  vpc_identifier             = var.vpc
  service_network_identifier = aws_vpclattice_service_network.sn.id
  tags                       = local.tags
}

resource "aws_vpclattice_access_log_subscription" "sn" {
  resource_identifier = aws_vpclattice_service_network.sn.id
  destination_arn     = "arn:aws:logs:%(region)s:%(account)s:log-group:/tf/lattice"
  tags                = local.tags
}

resource "aws_vpclattice_access_log_subscription" "svc" {
  resource_identifier = aws_vpclattice_service.svc.id
  destination_arn     = "arn:aws:s3:::tf-access-logs"
  tags                = local.tags
}

resource "aws_vpclattice_auth_policy" "svc" {
  resource_identifier = aws_vpclattice_service.svc.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = "*"
      Action    = "vpc-lattice-svcs:Invoke"
      Resource  = "*"
      Condition = { StringEquals = { "vpc-lattice-svcs:RequestHeader/x-stage" = var.stage } }
    }]
  })
}

resource "aws_vpclattice_resource_policy" "sn" {
  resource_arn = aws_vpclattice_service_network.sn.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "share-${var.stage}"
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::444455556666:root" }
      Action    = ["vpc-lattice:CreateServiceNetworkVpcAssociation", "vpc-lattice:GetServiceNetwork"]
      Resource  = aws_vpclattice_service_network.sn.arn
    }]
  })
}

data "aws_vpclattice_service_network" "sn" {
  service_network_identifier = aws_vpclattice_service_network.sn.id
  # Read once the network has its associations, which it counts.
  depends_on = [
    aws_vpclattice_service_network_service_association.sa,
    aws_vpclattice_service_network_vpc_association.va,
  ]
}

data "aws_vpclattice_service" "by_id" {
  service_identifier = aws_vpclattice_service.svc.id
}

data "aws_vpclattice_service" "by_name" {
  name = aws_vpclattice_service.tls.name
}

data "aws_vpclattice_listener" "http" {
  service_identifier  = aws_vpclattice_service.svc.id
  listener_identifier = aws_vpclattice_listener.http.listener_id
}

data "aws_vpclattice_auth_policy" "svc" {
  resource_identifier = aws_vpclattice_auth_policy.svc.resource_identifier
}

data "aws_vpclattice_resource_policy" "sn" {
  resource_arn = aws_vpclattice_resource_policy.sn.resource_arn
}
''' % {"region": REGION, "account": ACCOUNT, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
       "role": ROLE}

CLI_CONFIG = '''
provider_installation {
  filesystem_mirror {
    path = "%s"
  }
}
plugin_cache_dir = "%s"
'''


def fn_zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return {'statusCode': 200, 'body': 'tf'}\n")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tf_home():
    """The machine's Terraform and provider mirror, checked loudly, and a plugin cache shared by
    the module's tests (each test still has its own working and data directory)."""
    terraform = shutil.which("terraform")
    mirror = os.path.join(PLUGINS, "registry.terraform.io", "hashicorp", "aws")
    if terraform is None or not os.path.isdir(mirror):
        pytest.fail(f"Terraform tests need `terraform` on PATH (found: {terraform}) and the hashicorp/aws "
                    f"provider mirror at {mirror} (exists: {os.path.isdir(mirror)}); the machine image has both",
                    pytrace=False)
    home = tempfile.mkdtemp(prefix="trellis-tf-")
    cache = os.path.join(home, "plugin-cache")
    os.makedirs(cache)
    cli_config = os.path.join(home, "cli.tfrc")
    with open(cli_config, "w") as f:
        f.write(CLI_CONFIG % (PLUGINS, cache))
    yield {"terraform": terraform, "cli_config": cli_config}
    shutil.rmtree(home, ignore_errors=True)


class Workspace:
    """One Terraform working directory with its own data dir and state, pointed at a server."""

    def __init__(self, tf_home, server):
        self.dir = tempfile.mkdtemp(prefix="trellis-tf-ws-")
        self.server = server
        self.terraform = tf_home["terraform"]
        self.env = dict(os.environ, TF_CLI_CONFIG_FILE=tf_home["cli_config"], TF_IN_AUTOMATION="1",
                        TF_DATA_DIR=os.path.join(self.dir, ".terraform"), TF_VAR_endpoint=server.endpoint,
                        TF_VAR_vpc=new_vpc(server.client()),
                        CHECKPOINT_DISABLE="1")
        for k in ("TF_LOG", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            self.env.pop(k, None)
        with open(os.path.join(self.dir, "main.tf"), "w") as f:
            f.write(MAIN_TF)
        with open(os.path.join(self.dir, "fn.zip"), "wb") as f:
            f.write(fn_zip())

    def run(self, *args, ok=(0,)):
        p = subprocess.run([self.terraform, *args], cwd=self.dir, env=self.env, capture_output=True,
                           text=True, timeout=COMMAND_TIMEOUT_S)
        if p.returncode not in ok:
            raise AssertionError(f"terraform {' '.join(args)} exited {p.returncode}:\n{p.stdout[-6000:]}\n"
                                 f"{p.stderr[-6000:]}\nserver log:\n{self.server.log()}")
        return p

    def init(self):
        self.run("init", "-input=false", "-no-color")

    def apply(self, stage):
        self.run("apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=4", f"-var=stage={stage}")

    def assert_no_changes(self, stage):
        # -detailed-exitcode: 0 = no changes, 2 = changes (reported with the plan), 1 = error.
        p = self.run("plan", "-detailed-exitcode", "-input=false", "-no-color", "-parallelism=4",
                     f"-var=stage={stage}", ok=(0, 2))
        assert p.returncode == 0, f"plan after apply ({stage}) wants changes:\n{p.stdout[-8000:]}"

    def destroy(self, stage):
        self.run("destroy", "-auto-approve", "-input=false", "-no-color", "-parallelism=4", f"-var=stage={stage}")

    def state(self):
        """{address: attributes} of every resource and data source in the state."""
        with open(os.path.join(self.dir, "terraform.tfstate")) as f:
            doc = json.load(f)
        out = {}
        for r in doc["resources"]:
            prefix = "data." if r["mode"] == "data" else ""
            out[f"{prefix}{r['type']}.{r['name']}"] = r["instances"][0]["attributes"]
        return out

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def check_stage(server, ws, stage):
    """What the server holds after applying `stage`, read with boto3 (not through Terraform)."""
    lattice, lam = server.client(), server.client("lambda")
    st = ws.state()
    v1 = stage == "v1"
    want_tags = {"owner": "tf", "stage": stage}

    svc = lattice.get_service(serviceIdentifier=st["aws_vpclattice_service.svc"]["id"])
    assert svc["authType"] == "AWS_IAM" and tags_of(lattice, svc["arn"]) == want_tags
    sn = st["aws_vpclattice_service_network.sn"]
    assert tags_of(lattice, sn["arn"]) == want_tags

    rule = st["aws_vpclattice_listener_rule.path"]
    got = lattice.get_rule(serviceIdentifier=svc["id"], listenerIdentifier=rule["listener_identifier"],
                           ruleIdentifier=rule["rule_id"])
    # The provider sent "method": "" for this rule: no method condition is stored.
    assert "method" not in got["match"]["httpMatch"], got["match"]
    assert got["match"]["httpMatch"]["pathMatch"] == {"match": {"prefix": f"/fn-{stage}"}, "caseSensitive": True}
    header = st["aws_vpclattice_listener_rule.header"]
    got = lattice.get_rule(serviceIdentifier=svc["id"], listenerIdentifier=header["listener_identifier"],
                           ruleIdentifier=header["rule_id"])
    assert got["match"]["httpMatch"]["method"] == "POST"
    assert got["action"] == {"fixedResponse": {"statusCode": 404 if v1 else 500}}

    tcp = lattice.get_target_group(targetGroupIdentifier=st["aws_vpclattice_target_group.tcp"]["id"])
    hc = tcp["config"]["healthCheck"]
    assert (hc["enabled"], hc["protocol"], hc["path"]) == (not v1, "HTTP", "/ready"), hc
    ip = lattice.get_target_group(targetGroupIdentifier=st["aws_vpclattice_target_group.ip"]["id"])
    assert ip["config"]["healthCheck"]["path"] == f"/health-{stage}"
    assert ip["config"]["healthCheck"]["healthCheckIntervalSeconds"] == (10 if v1 else 20)
    listener = lattice.get_listener(serviceIdentifier=svc["id"], listenerIdentifier=st["aws_vpclattice_listener.http"]["listener_id"])
    weights = sorted(t["weight"] for t in listener["defaultAction"]["forward"]["targetGroups"])
    assert weights == sorted([80 if v1 else 60, 20])

    iam = server.client("iam")
    role = iam.get_role(RoleName="tf-app")["Role"]
    assert {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName="tf-app")["Tags"]} == want_tags
    assert st["aws_iam_role.app"]["arn"] == role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/tf-app"
    doc = iam.get_role_policy(RoleName="tf-app", PolicyName="read")["PolicyDocument"]
    assert doc["Statement"][0]["Action"] == ("vpc-lattice:Get*" if v1 else "vpc-lattice:List*")
    assert doc["Statement"][0]["Resource"] == svc["arn"]
    # The managed policy: its update is version v2, the default.
    policy_arn = f"arn:aws:iam::{ACCOUNT}:policy/tf/tf-read"
    assert st["aws_iam_policy.read"]["arn"] == policy_arn
    policy = iam.get_policy(PolicyArn=policy_arn)["Policy"]
    assert (policy["DefaultVersionId"], policy["AttachmentCount"]) == ("v1" if v1 else "v2", 2)
    doc = iam.get_policy_version(PolicyArn=policy_arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"]
    assert doc["Statement"][0]["Action"] == (["vpc-lattice:Get*"] if v1 else ["vpc-lattice:Get*", "vpc-lattice:List*"])
    attached = iam.list_attached_role_policies(RoleName="tf-app")["AttachedPolicies"]
    assert sorted(a["PolicyArn"] for a in attached) == sorted(
        [policy_arn, "arn:aws:iam::aws:policy/VPCLatticeReadOnlyAccess"])
    assert [g["GroupName"] for g in iam.list_groups_for_user(UserName="tf-dev")["Groups"]] == ["tf-devs"]
    assert [a["PolicyArn"] for a in iam.list_attached_group_policies(GroupName="tf-devs")["AttachedPolicies"]] == [policy_arn]
    assert {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName="tf-dev")["Tags"]} == want_tags
    assert {t["Key"]: t["Value"] for t in iam.list_policy_tags(PolicyArn=policy_arn)["Tags"]} == want_tags

    fn = lam.get_function(FunctionName="tf-fn")
    assert fn["Configuration"]["Timeout"] == (5 if v1 else 7)
    assert fn["Configuration"]["Environment"]["Variables"] == {"STAGE": stage}
    assert fn["Tags"] == want_tags
    fn_targets = lattice.list_targets(targetGroupIdentifier=st["aws_vpclattice_target_group.fn"]["id"])["items"]
    assert [t["id"] for t in fn_targets] == [fn["Configuration"]["FunctionArn"]]

    # The data sources read what the resources made.
    assert st["data.aws_vpclattice_service.by_name"]["id"] == st["aws_vpclattice_service.tls"]["id"]
    assert st["data.aws_vpclattice_service.by_id"]["arn"] == svc["arn"]
    assert st["data.aws_vpclattice_service_network.sn"]["number_of_associated_services"] == 1
    assert st["data.aws_vpclattice_service_network.sn"]["number_of_associated_vpcs"] == 1
    assert st["data.aws_vpclattice_listener.http"]["tags"] == want_tags
    assert st["data.aws_vpclattice_service.by_name"]["tags"] == want_tags
    assert st["data.aws_vpclattice_service.by_id"]["tags"] == want_tags
    assert st["data.aws_vpclattice_service_network.sn"]["tags"] == want_tags
    assert json.loads(st["data.aws_vpclattice_auth_policy.svc"]["policy"])["Statement"][0]["Condition"] == \
        {"StringEquals": {"vpc-lattice-svcs:RequestHeader/x-stage": stage}}
    assert json.loads(st["data.aws_vpclattice_resource_policy.sn"]["policy"])["Statement"][0]["Sid"] == f"share-{stage}"


@pytest.mark.timeout(1200)
def test_terraform_applies_updates_and_destroys_every_served_resource(server, tf_home):
    ws = Workspace(tf_home, server)
    try:
        ws.init()
        ws.apply("v1")
        check_stage(server, ws, "v1")
        ws.assert_no_changes("v1")
        ws.apply("v2")
        check_stage(server, ws, "v2")
        ws.assert_no_changes("v2")
        ws.destroy("v2")
        lattice, lam = server.client(), server.client("lambda")
        assert lattice.list_services()["items"] == []
        assert lattice.list_service_networks()["items"] == []
        assert lattice.list_target_groups()["items"] == []
        assert "tf-fn" not in [f["FunctionName"] for f in lam.list_functions()["Functions"]]
        iam = server.client("iam")
        assert iam.list_roles()["Roles"] == []
        assert iam.list_users(PathPrefix="/tf/")["Users"] == []
        assert iam.list_groups()["Groups"] == []
        assert iam.list_policies(Scope="Local")["Policies"] == []
        assert ws.state() == {}
    finally:
        ws.cleanup()


def test_lambda_operations_terraform_reads(server):
    """The Lambda operations aws_lambda_function uses beyond the function API: its code-signing
    configuration (none in Trellis) and tags, on paths under other API versions than 2015-03-31,
    which must be signed for `lambda` (they were taken for VPC Lattice paths)."""
    lam = server.client("lambda")
    name = unique("tf")
    arn = lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="index.handler",
                              Code={"ZipFile": fn_zip()}, Tags={"a": "1"})["FunctionArn"]
    csc = lam.get_function_code_signing_config(FunctionName=name)
    assert (csc["CodeSigningConfigArn"], csc["FunctionName"]) == ("", name)
    lam.tag_resource(Resource=arn, Tags={"b": "2", "a": "3"})
    assert lam.list_tags(Resource=arn)["Tags"] == {"a": "3", "b": "2"}
    lam.untag_resource(Resource=arn, TagKeys=["a", "missing"])
    assert lam.list_tags(Resource=arn)["Tags"] == {"b": "2"}
    assert lam.get_function(FunctionName=name)["Tags"] == {"b": "2"}
    for call in (lambda: lam.get_function_code_signing_config(FunctionName="nope"),
                 lambda: lam.list_tags(Resource=arn.replace(name, "nope"))):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as e:
        lam.tag_resource(Resource=arn, Tags={"aws:x": "1"})
    assert error_code(e) == "InvalidParameterValueException"
    # An operation Trellis does not implement, on another API version's path, is answered by the
    # Lambda API (signed for `lambda`), not refused as a request for VPC Lattice.
    with pytest.raises(ClientError) as e:
        lam.get_function_concurrency(FunctionName=name)
    assert error_code(e) == "InvalidParameterValueException"
    assert "does not implement" in e.value.response["Error"]["Message"]
    lam.delete_function(FunctionName=name)
