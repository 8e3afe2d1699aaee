"""One trust root for the cluster: the CA and the code-link key live in the store, sealed with the
operator's secret key, and every node of one store uses them.

- Two nodes on one PostgreSQL database, with different ingress addresses (127.0.0.1, 127.0.0.2)
  and the same `--secret-key-file`: `trellis ca` prints the same certificate for both, each
  node's `ca.pem` is that certificate, an HTTPS listener reached through each node verifies
  against that one CA file, and a Lambda `Code.Location` link issued by node 1 downloads from
  node 2.
- A third node given another `--secret-key-file` refuses to start with a one-line error naming
  the flag.
- `trellis ca rotate` / `retire-previous`: a bundle of the new and the old CA until retired.
- SQLite: a data dir holding a CA from before (ca.pem, ca-key.pem, no store) keeps that CA.

The multi-node tests run only where PostgreSQL tests run (`TRELLIS_TEST_POSTGRES_URL`); the
migration test on SQLite.
"""

import os
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request

import pytest

from backends import Caller, ServiceBuilder, free_port
from conftest import BIN, Server, backends, wait_until_applied
from functions_support import create_python, py_zip

POSTGRES_ONLY = [b for b in backends() if b == "postgres"]
SQLITE_ONLY = [b for b in backends() if b == "sqlite"]


class Node(Server):
    """`trellis serve` on a given store with its own ingress address and secret key file."""

    def __init__(self, backend, ingress, key_file, store=None):
        super().__init__(backend, ["--ingress-address", ingress, "--secret-key-file", key_file])
        if store:
            self.store = store
        self.ingress = ingress


def key_file(tmp, name):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(path, 0o600)
    return path


def trellis_ca(*args):
    p = subprocess.run([BIN, "ca", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def fixed_https_service(node, lattice):
    """A service with an HTTPS listener answering 404 itself: (dns name, port), once applied."""
    svc = ServiceBuilder(lattice)
    port = free_port()
    svc.listener("HTTPS", port, {"fixedResponse": {"statusCode": 404}})
    wait_until_applied(node)
    return svc.dns_name, port


@pytest.fixture(scope="module", params=POSTGRES_ONLY)
def nodes(request):
    tmp = tempfile.mkdtemp(prefix="trellis-cluster-ca-")
    shared = key_file(tmp, "shared.key")
    one = Node(request.param, "127.0.0.1", shared)
    two = Node(request.param, "127.0.0.2", shared, store=one.store)
    try:
        # Started at once, so the two first starts race to create the CA.
        failures = []

        def start(node):
            try:
                node.start()
            except Exception as e:  # reported below, in the test's thread
                failures.append(e)

        threads = [threading.Thread(target=start, args=(n,)) for n in (one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failures, failures
        yield one, two, tmp
    finally:
        for node in (one, two):
            node.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def test_every_node_prints_and_serves_the_same_ca(nodes):
    one, two, _ = nodes
    printed = [trellis_ca("--data-dir", n.data_dir, "--store", n.store) for n in (one, two)]
    assert printed[0].startswith("-----BEGIN CERTIFICATE-----"), printed[0]
    assert printed[0] == printed[1], "both nodes print one CA"
    for node in (one, two):
        with open(os.path.join(node.data_dir, "ca.pem")) as f:
            assert f.read() == printed[0], "DATA_DIR/ca.pem is the shared CA"
        assert not os.path.exists(os.path.join(node.data_dir, "ca-key.pem")), "no per-node CA key"
    # One CA file verifies HTTPS through either node (created through node 1, served by both).
    ca_file = os.path.join(nodes[2], "cluster-ca.pem")
    with open(ca_file, "w") as f:
        f.write(printed[0])
    name, port = fixed_https_service(one, one.client())
    wait_until_applied(two)
    for node in (one, two):
        caller = Caller(name, port, tls=True, ca=ca_file, address=node.ingress)
        try:
            assert caller.request("/").status == 404
        finally:
            caller.close()
    # And with curl.
    for node in (one, two):
        p = subprocess.run(["curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}",
                            "--cacert", ca_file, "--resolve", f"{name}:{port}:{node.ingress}",
                            f"https://{name}:{port}/"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and p.stdout == "404", p.stderr


def test_a_code_link_from_one_node_downloads_from_the_other(nodes):
    one, two, _ = nodes
    name = create_python(one.client("lambda"))["FunctionName"]
    location = one.client("lambda").get_function(FunctionName=name)["Code"]["Location"]
    parts = urllib.parse.urlsplit(location)
    assert parts.netloc == urllib.parse.urlsplit(one.endpoint).netloc, location
    on_two = parts._replace(netloc=urllib.parse.urlsplit(two.endpoint).netloc).geturl()
    with urllib.request.urlopen(on_two, timeout=10) as r:
        assert r.read() == py_zip()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(on_two.replace("Signature=", "Signature=0"), timeout=10)
    assert e.value.code == 403


def test_a_node_with_another_secret_key_refuses_to_start(nodes):
    one, _, tmp = nodes
    other = Node("sqlite", "127.0.0.1", key_file(tmp, "other.key"), store=one.store)
    other.backend = "postgres"
    p = subprocess.run(other.args(), capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, TRELLIS_ROOT_ACCESS_KEY_ID="AKIDEXAMPLECA",
                                TRELLIS_ROOT_SECRET_ACCESS_KEY="secret-for-the-refused-node"))
    try:
        assert p.returncode != 0
        errors = [line for line in p.stderr.splitlines() if "cannot be decrypted" in line]
        assert len(errors) == 1 and "--secret-key-file" in errors[0], p.stderr
    finally:
        shutil.rmtree(other.data_dir, ignore_errors=True)


def test_rotation_keeps_the_previous_ca_trusted_until_retired(nodes):
    one, two, tmp = nodes
    before = trellis_ca("--data-dir", one.data_dir, "--store", one.store)
    # Rotating needs the key: without it (no --secret-key-file, no DATA_DIR/secret.key) it fails
    # and creates no key file.
    p = subprocess.run([BIN, "ca", "rotate", "--data-dir", one.data_dir, "--store", one.store],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "secret-key-file" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(one.data_dir, "secret.key"))
    bundle = trellis_ca("rotate", "--data-dir", one.data_dir, "--store", one.store,
                        "--secret-key-file", os.path.join(tmp, "shared.key"))
    assert bundle.endswith(before) and bundle != before, "the new CA first, then the previous one"
    assert trellis_ca("--data-dir", two.data_dir, "--store", two.store) == bundle
    # Node 2 restarted: its ca.pem is the bundle, and it issues from the new CA, which the bundle holds.
    two.stop()
    two.start()
    with open(os.path.join(two.data_dir, "ca.pem")) as f:
        assert f.read() == bundle
    new_only = bundle[:len(bundle) - len(before)]
    ca_file = os.path.join(nodes[2], "new-ca.pem")
    with open(ca_file, "w") as f:
        f.write(new_only)
    name, port = fixed_https_service(two, two.client())
    caller = Caller(name, port, tls=True, ca=ca_file, address=two.ingress)
    try:
        assert caller.request("/").status == 404
    finally:
        caller.close()
    assert trellis_ca("retire-previous", "--data-dir", one.data_dir, "--store", one.store) == new_only
    assert trellis_ca("--data-dir", one.data_dir, "--store", one.store) == new_only


@pytest.mark.parametrize("backend", SQLITE_ONLY)
def test_a_data_dir_ca_from_before_is_kept(backend):
    # A data dir as an earlier version left it: ca.pem and ca-key.pem, no store, no secret key.
    server = Server(backend)
    old = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-nodes", "-keyout", os.path.join(server.data_dir, "ca-key.pem"),
                          "-out", os.path.join(server.data_dir, "ca.pem"), "-days", "30",
                          "-subj", "/CN=Old Trellis CA", "-addext", "basicConstraints=critical,CA:TRUE",
                          "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"],
                         capture_output=True, text=True, timeout=60)
    assert old.returncode == 0, old.stderr
    with open(os.path.join(server.data_dir, "ca.pem")) as f:
        old_pem = f.read()
    server.start()
    try:
        assert trellis_ca("--data-dir", server.data_dir) == old_pem, "the CA clients trust is kept"
        with open(os.path.join(server.data_dir, "ca.pem")) as f:
            assert f.read() == old_pem
        # The old unencrypted key is no longer read, and the operator is told so.
        assert "ca-key.pem" in server.log() and "no longer used" in server.log()
        key = os.path.join(server.data_dir, "secret.key")
        assert os.stat(key).st_mode & 0o777 == 0o600
        name, port = fixed_https_service(server, server.client())
        caller = Caller(name, port, tls=True, ca=os.path.join(server.data_dir, "ca.pem"))
        try:
            assert caller.request("/").status == 404
        finally:
            caller.close()
    finally:
        server.cleanup()
