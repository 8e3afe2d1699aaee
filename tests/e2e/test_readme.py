"""Runs the README's AWS CLI quickstart exactly as written (only the endpoint and the credentials
file point at this test's server) and checks what it printed and left behind."""

import os
import re
import subprocess

from conftest import ACCESS_KEY, ROOT, SECRET_KEY

# The README's server is `cargo run --release -- serve`: no development mode.
OPEN_NETWORK = False


def readme_block(marker):
    """The bash code of the README section between `<!-- MARKER:begin -->` and `…:end -->`."""
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text.split(f"<!-- {marker}:begin -->", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert blocks, f"README section {marker} has no bash block"
    return "\n".join(blocks)


def quickstart():
    return readme_block("quickstart")


def run_readme_block(server, marker, tmp_path, timeout=300):
    """Runs README section `marker` as written, only its endpoint (`http://127.0.0.1:9460`) and
    credentials file (`./trellis-data/credentials`) pointed at `server`, with no `AWS_*` variable
    of the test's environment; fails unless it exits 0. Returns the completed process."""
    script = readme_block(marker)
    assert "http://127.0.0.1:9460" in script and "./trellis-data/credentials" in script
    cred = tmp_path / "credentials"
    cred.write_text(f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    script = script.replace("http://127.0.0.1:9460", server.endpoint).replace("./trellis-data/credentials", str(cred))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # -x echoes each command so a failure shows which line broke.
    p = subprocess.run(["bash", "-euxo", "pipefail", "-c", script], capture_output=True, text=True,
                       env=env, timeout=timeout, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-4000:]
    return p


def run_dataplane_block(server, marker, tmp_path, fixed_ports):
    """Runs README section `marker` that calls services through the data plane, as written: only
    the server's addresses (API, DNS), the credentials file, the CA file and the section's fixed
    `fixed_ports` (each replaced by a free one) point at this test's. Returns the process."""
    from backends import free_port

    script = readme_block(marker)
    cred = tmp_path / "credentials"
    cred.write_text(f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    dns_host, dns_port = server.dns_address()
    script = (script.replace("http://127.0.0.1:9460", server.endpoint)
              .replace("./trellis-data/credentials", str(cred))
              .replace("./trellis-data/ca.pem", os.path.join(server.data_dir, "ca.pem"))
              .replace("@127.0.0.1 -p 9453", f"@{dns_host} -p {dns_port}"))
    for old in fixed_ports:
        script = re.sub(rf"\b{old}\b", str(free_port()), script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    p = subprocess.run(["bash", "-euxo", "pipefail", "-c", script], capture_output=True, text=True,
                       env=env, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-4000:]
    return p


def test_readme_quickstart_runs_as_written(server, lattice, tmp_path):
    out = run_readme_block(server, "quickstart", tmp_path, timeout=600).stdout
    assert "vpc-lattice-svcs.us-west-2.on.aws" in out          # the service's generated DNS name
    assert "parking" in out and "ACTIVE" in out                 # list-services table
    assert "to-instance" in out and "to-function" in out        # list-rules table
    assert "\n5\n" in out                                       # update-rule printed the new priority
    # Everything the quickstart created it also deleted.
    assert lattice.list_services()["items"] == [] or all(s["name"] != "parking" for s in lattice.list_services()["items"])
    assert all(sn["name"] != "launch-network" for sn in lattice.list_service_networks()["items"])


def test_readme_calling_a_service_runs_as_written(dp_server, tmp_path):
    """The "Calling a service" section: a real target behind HTTP and HTTPS listeners, reached by
    its generated name through Trellis's DNS with curl over HTTP/1.1, HTTP/2 and TLS. Only the
    server's addresses, the credentials file and the fixed ports are pointed at this test's."""
    p = run_dataplane_block(dp_server, "calling", tmp_path, ("9001", "8080", "8443"))
    lines = p.stdout.splitlines()
    assert "1.1 200" in lines, p.stdout        # HTTP/1.1 through the HTTP listener
    assert lines.count("2 200") == 2, p.stdout  # h2c prior knowledge, and TLS with ALPN h2
    assert any(l.startswith("127.0.0.1\t") for l in lines), p.stdout  # list-targets row


def test_readme_iam_auth_runs_as_written(dp_server, tmp_path):
    """The "Protecting a service with IAM auth" section: only the role may GET /rates; a POST by
    it, the user itself and an anonymous caller get Lattice's 403s. Only the server's addresses,
    the credentials file and the fixed ports are pointed at this test's."""
    p = run_dataplane_block(dp_server, "iamauth", tmp_path, ("9002", "8081"))
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    assert '{"usd": 1.08}' in lines, p.stdout
    refusals = [l for l in lines if l.startswith("AccessDeniedException")]
    assert len(refusals) == 3, p.stdout
    role = "User: arn:aws:sts::111122223333:assumed-role/rates-client/s1 "
    assert role in refusals[0] and "no service-based policy" in refusals[0]
    assert "User: arn:aws:iam::111122223333:user/app " in refusals[1] and "no service-based policy" in refusals[1]
    assert "User: anonymous " in refusals[2] and "no network-based policy" in refusals[2]


def test_readme_accounts_runs_as_written(dp_server, tmp_path):
    """The "Accounts for teams" section: a member account created with the CLI, its root
    credentials taken once into a profile, a service of its own the management account does not
    list, and the management account inside it through OrganizationAccountAccessRole. Only the
    server's addresses, data dir (and store) and the credentials file are pointed at this test's;
    `cargo run --release -q --` is the binary under test."""
    from conftest import BIN

    data_dir = f"--data-dir {dp_server.data_dir}" + (f" --store {dp_server.store}" if dp_server.store else "")
    script = readme_block("accounts")
    assert "cargo run --release -q --" in script and "--data-dir ./trellis-data" in script
    cred = tmp_path / "credentials"
    cred.write_text(f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    script = (script.replace("http://127.0.0.1:9460", dp_server.endpoint)
              .replace("./trellis-data/credentials", str(cred))
              .replace("cargo run --release -q --", BIN)
              .replace("--data-dir ./trellis-data", data_dir))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    p = subprocess.run(["bash", "-euxo", "pipefail", "-c", script], capture_output=True, text=True,
                       env=env, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-4000:]
    lines = p.stdout.splitlines()
    members = [l.split("\t") for l in lines if l.endswith("\tpayments")]
    assert len(members) == 1, p.stdout
    account = members[0][0]
    assert f"arn:aws:iam::{account}:root" in lines, p.stdout
    assert any(l.startswith(f"arn:aws:vpc-lattice:us-west-2:{account}:service/svc-") for l in lines), p.stdout
    assert "0" in lines, p.stdout  # the management account lists none of the member's services
    assert f"arn:aws:sts::{account}:assumed-role/OrganizationAccountAccessRole/ops" in lines, p.stdout
    assert "[payments]" in cred.read_text()


def test_readme_instances_runs_as_written(server, tmp_path):
    """The EC2 block of "What is implemented": a VPC and subnet, a host registered with
    run-instances, an INSTANCE target group naming it (UNUSED: no service forwards to it)."""
    out = run_readme_block(server, "instances", tmp_path).stdout
    rows = [l.split("\t") for l in out.splitlines() if l.startswith("i-")]
    assert len(rows) == 1 and rows[0][1:] == ["8080", "UNUSED"], out


def test_readme_access_logs_run_as_written(dp_server, tmp_path):
    """The "Watching traffic: access logs" section: a log group, a service's subscription to it,
    two requests, and filter-log-events printing the 404's record. Only the server's addresses,
    the credentials file and the fixed ports are pointed at this test's."""
    import json

    p = run_dataplane_block(dp_server, "accesslogs", tmp_path, ("9003", "8082"))
    assert p.stdout.splitlines()[:2] == ["200", "404"], p.stdout
    record = json.loads(p.stdout.split("\n", 2)[2])
    assert record["responseCode"] == 404 and record["requestPath"] == "/gone/away"
    assert record["serviceArn"].startswith("arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-")


def test_readme_client_networks_runs_as_written(dp_server, tmp_path):
    """The "Client networks: who may connect" section: a VPC with a security group on its
    association; curl from an admitted address gets 200, from an address outside the rule and
    from one in no VPC gets no connection (000)."""
    p = run_dataplane_block(dp_server, "clientnets", tmp_path, ("9004", "8083"))
    lines = p.stdout.splitlines()
    assert "127.0.8.10 200" in lines, p.stdout
    assert "127.0.8.200 000" in lines, p.stdout
    assert "127.0.9.1 000" in lines, p.stdout
