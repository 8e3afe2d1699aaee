"""`trellis serve` as a user meets it: flags and their errors, generated credentials, the admin
endpoints, and clean shutdown on signals."""

import configparser
import json
import os
import signal
import socket
import subprocess
import tempfile

import pytest

from conftest import BIN, Server, unique


def run_serve(*args, env=None, timeout=20):
    return subprocess.run([BIN, "serve", *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--api-listen", "not-an-address"], "--api-listen"),
        (["--ingress-address", "300.1.1.1"], "--ingress-address"),
        (["--account-id", "12345"], "--account-id"),
        (["--region", "US WEST"], "--region"),
        (["--store", "mysql://x"], "--store"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_bad_flags_fail_fast_without_binding(args, needle):
    # The API port is held by us: a server that bound before validating would fail differently.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        d = tempfile.mkdtemp()
        p = run_serve("--data-dir", d, "--api-listen", f"127.0.0.1:{port}", *args)
    assert p.returncode != 0
    assert needle in p.stderr, p.stderr
    assert "API listening" not in p.stderr


def test_unusable_data_dir_is_one_line_error():
    with tempfile.NamedTemporaryFile() as f:
        p = run_serve("--data-dir", os.path.join(f.name, "sub"), "--api-listen", "127.0.0.1:0")
    assert p.returncode == 1
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("trellis: cannot use data dir"), p.stderr


def test_port_in_use_is_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = run_serve("--data-dir", tempfile.mkdtemp(), "--api-listen", f"127.0.0.1:{port}")
    assert p.returncode == 1
    assert f"cannot listen on --api-listen 127.0.0.1:{port}" in p.stderr


def test_generated_credentials_work_with_the_aws_cli():
    data_dir = tempfile.mkdtemp()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_ROOT_")}
    proc = subprocess.Popen([BIN, "serve", "--data-dir", data_dir, "--api-listen", "127.0.0.1:0",
                             "--dns-listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stderr.readline() + proc.stderr.readline() + proc.stderr.readline()
        cred_file = os.path.join(data_dir, "credentials")
        cfg = configparser.ConfigParser()
        cfg.read(cred_file)
        key = cfg["default"]["aws_access_key_id"]
        assert key in first, "generated credentials are printed once at first start"
        assert oct(os.stat(cred_file).st_mode & 0o777) == "0o600"
        while not os.path.exists(os.path.join(data_dir, "api-address")):
            assert proc.poll() is None
            proc.stderr.readline()
        endpoint = "http://" + open(os.path.join(data_dir, "api-address")).read().strip()
        cli_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        cli_env.update(AWS_SHARED_CREDENTIALS_FILE=cred_file, AWS_DEFAULT_REGION="us-west-2", AWS_PAGER="")
        out = subprocess.run(["aws", "vpc-lattice", "list-service-networks", "--endpoint-url", endpoint],
                             capture_output=True, text=True, env=cli_env, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["items"] == []
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    # Second start reuses the file and prints no secret.
    proc = subprocess.Popen([BIN, "serve", "--data-dir", data_dir, "--api-listen", "127.0.0.1:0",
                             "--dns-listen", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        said = ""
        while "API listening" not in line:
            assert "aws_secret_access_key" not in line
            said += line
            line = proc.stderr.readline()
            assert line, "server exited early"
        # Every start says where the credentials are.
        assert f"root credentials in {cred_file}" in said, said
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_admin_endpoints(server, lattice):
    # /_trellis/health is traffic readiness (the store has its own endpoint: test_store_outage.py).
    status, body = server.admin("/_trellis/health")
    assert status == 200 and json.loads(body)["ready"] is True
    status, body = server.admin("/_trellis/health/store")
    assert status == 200 and json.loads(body)["store"] is True
    before = server.revision()
    assert set(before) >= {"store", "applied"}
    sn = lattice.create_service_network(name=unique("rev"))
    after = server.revision()
    assert after["store"] == before["store"] + 1
    lattice.delete_service_network(serviceNetworkIdentifier=sn["id"])
    status, metrics = server.admin("/metrics")
    assert status == 200
    assert 'trellis_api_requests_total{operation="CreateServiceNetwork",code="201"}' in metrics
    assert "trellis_store_revision " in metrics


def test_a_log_that_is_not_a_terminal_has_no_colour_codes(server):
    """The server's stderr is a file here: its lines are plain text, readable by grep and log
    shippers (colour only on a terminal)."""
    log = open(server.log_path, errors="replace").read()
    assert "INFO" in log, log[-2000:]
    assert "\x1b[" not in log, log[-2000:]


def test_json_log_has_a_line_per_api_request():
    """`--log-format json`: every line one JSON object; each API call one `api request` line
    with its operation, principal, status, duration and the request ID the client got."""
    server = Server("sqlite", ["--log-format", "json"]).start()
    try:
        lattice = server.client()
        resp = lattice.list_services()
        request_id = resp["ResponseMetadata"]["RequestId"]
        with pytest.raises(Exception):
            lattice.get_service(serviceIdentifier="svc-00000000000000000")
        server.stop()
        lines = [l for l in open(server.log_path, errors="replace").read().splitlines() if l.startswith("{")]
        events = [json.loads(l) for l in lines]
        assert events and all("level" in e and "timestamp" in e for e in events)
        calls = [e for e in events if e.get("message") == "api request"]
        listed = [e for e in calls if e["request_id"] == request_id]
        assert len(listed) == 1, calls
        assert listed[0]["operation"] == "ListServices" and listed[0]["status"] == 200
        assert listed[0]["principal"] == "arn:aws:iam::111122223333:root"
        assert isinstance(listed[0]["duration_ms"], float)
        assert [(e["operation"], e["status"]) for e in calls if e["operation"] == "GetService"] == [("GetService", 404)]
        assert any("root credentials from the environment" in l for l in open(server.log_path).read().splitlines())
    finally:
        server.cleanup()


def test_sigterm_shuts_down_cleanly():
    s = Server("sqlite").start()
    try:
        assert s.stop(signal.SIGTERM) == 0
    finally:
        s.cleanup()


def test_a_config_file_mirrors_the_flags_and_flags_override_it(tmp_path):
    """`trellis serve --config FILE`: the file's keys are the flags without dashes; a flag on the
    command line wins; the shipped example (packaging/trellis.toml) is a valid file."""
    from conftest import ROOT

    data_dir = tmp_path / "data"
    conf = tmp_path / "trellis.toml"
    conf.write_text(f'''
data-dir = "{data_dir}"
api-listen = "127.0.0.1:0"
dns-listen = "127.0.0.1:0"
region = "eu-west-1"
account-id = "444455556666"
ingress-address = ["127.0.0.1"]
open-network = true
''')
    server = Server("sqlite", extra_args=["--config", str(conf), "--region", "us-east-1"])
    # The file gives the data dir: the Server's own --data-dir must not be passed.
    server.data_dir = str(data_dir)
    server.args = lambda: [BIN, "serve", "--config", str(conf), "--region", "us-east-1"]
    os.makedirs(data_dir, exist_ok=True)
    server.start()
    try:
        # The account comes from the file, the region from the flag that overrides the file's.
        import boto3
        import botocore.config
        from conftest import ACCESS_KEY, SECRET_KEY
        client = boto3.client("vpc-lattice", endpoint_url=server.endpoint, region_name="us-east-1",
                              aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                              config=botocore.config.Config(retries={"max_attempts": 1}))
        arn = client.create_service_network(name=unique("cfg"))["arn"]
        assert arn.startswith("arn:aws:vpc-lattice:us-east-1:444455556666:servicenetwork/sn-"), arn
    finally:
        server.cleanup()

    for text, needle in [("nope = 1\n", '"nope" is not a flag of trellis serve'),
                         ('open-network = "yes"\n', '"open-network" must be true or false'),
                         ('idle-timeout = "abc"\n', "--idle-timeout"),
                         ("not toml = = 1\n", "not TOML")]:
        conf.write_text(text)
        p = run_serve("--config", str(conf), "--data-dir", str(tmp_path / "x"), "--api-listen", "127.0.0.1:0")
        assert p.returncode != 0 and needle in p.stderr, (text, p.stderr)

    # The shipped example starts (its paths and ports overridden by flags).
    example = os.path.join(ROOT, "packaging", "trellis.toml")
    proc = subprocess.Popen([BIN, "serve", "--config", example, "--data-dir", str(tmp_path / "ex"),
                             "--api-listen", "127.0.0.1:0", "--dns-listen", "127.0.0.1:0", "--log-format", "text"],
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        while "API listening" not in line:
            assert line, "the example configuration did not start"
            line = proc.stderr.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_the_systemd_unit_runs_the_configured_server():
    """packaging/trellis.service parses as a unit and starts `trellis serve --config` with the
    path the README installs the example configuration to, whose data dir is the unit's state
    directory."""
    from conftest import ROOT

    unit = open(os.path.join(ROOT, "packaging", "trellis.service")).read()
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(unit)
    assert parser.sections() == ["Unit", "Service", "Install"]
    assert parser["Service"]["ExecStart"] == "/usr/local/bin/trellis serve --config /etc/trellis/trellis.toml"
    assert parser["Service"]["StateDirectory"] == "trellis"
    assert "/var/lib/trellis" in open(os.path.join(ROOT, "packaging", "trellis.toml")).read()
