"""Function isolation, end to end: hostile functions deployed with boto3 against a real server try
to read the server's secrets, take over another function, outlive their timeout, exhaust the
machine's processes or memory, and deploy packages that escape their tree. Every attempt must
fail; each test fails on a server that runs functions unconfined as its own user.
"""

import hashlib
import io
import json
import os
import stat
import threading
import zipfile

import pytest
from botocore.exceptions import ClientError

from conftest import SECRET_KEY, Server, backends, error_code, poll, running, unique
from functions_support import ROLE, create_python, invoke, zip_bytes

PIDS_MAX = 64


@pytest.fixture(scope="module", params=backends())
def srv(request):
    """A server with a small per-sandbox process limit, so the fork bomb ends quickly."""
    yield from running(Server(request.param, ["--function-pids-max", str(PIDS_MAX)]))


@pytest.fixture(scope="module")
def lam(srv):
    return srv.client("lambda")


def code_root(server):
    """The default --function-code-dir of a server run as root."""
    digest = hashlib.sha256(os.path.realpath(server.data_dir).encode()).hexdigest()[:16]
    return os.path.join("/var/lib/trellis-code", digest)


# Tries each attack named in the event and reports, per attempt, "denied: <error>" or what it got.
HOSTILE = r'''
import json, os, socket, urllib.request

def attempt(fn):
    try:
        got = fn()
        return "ALLOWED: " + repr(got)[:200]
    except Exception as e:
        return "denied: " + type(e).__name__ + ": " + str(e)[:200]

def read(path):
    with open(path, "rb") as f:
        return f.read(200)

def write(path):
    with open(path, "w") as f:
        f.write("pwned")
    return path

def raw_http(addr, request):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    try:
        s.sendall(request.encode())
        data = s.recv(200)
        if not data:
            raise ConnectionError("closed without an answer")
        return data
    finally:
        s.close()

def handler(event, context):
    out = {}
    pid = event.get("server_pid")
    if pid:
        out["server environ"] = attempt(lambda: read(f"/proc/{pid}/environ"))
        out["server mem"] = attempt(lambda: read(f"/proc/{pid}/cmdline"))
    out["processes"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    for path in event.get("read", []):
        out["read " + path] = attempt(lambda: read(path))
    for path in event.get("list", []):
        out["list " + path] = attempt(lambda: os.listdir(path))
    for path in event.get("write", []):
        out["write " + path] = attempt(lambda: write(path))
    for addr in event.get("runtime_apis", []):
        out["post " + addr] = attempt(lambda: raw_http(addr,
            "POST /2018-06-01/runtime/invocation/x/response HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 2\r\nConnection: close\r\n\r\n{}"))
        out["get " + addr] = attempt(lambda: raw_http(addr,
            "GET /2018-06-01/runtime/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    out["runtime_api"] = os.environ["AWS_LAMBDA_RUNTIME_API"]
    out["task_root"] = os.environ["LAMBDA_TASK_ROOT"]
    out["uid"] = os.getuid()
    return out
'''


def hostile(lam, **kw):
    name = unique("hostile")
    create_python(lam, name, source=HOSTILE, Timeout=30, **kw)
    return name


def assert_all_denied(doc):
    allowed = {k: v for k, v in doc.items() if isinstance(v, str) and v.startswith("ALLOWED")}
    assert not allowed, json.dumps(allowed, indent=1)


def test_a_function_cannot_see_the_server_its_data_dir_or_other_processes(srv, lam):
    name = hostile(lam)
    data = srv.data_dir
    secret_files = [os.path.join(data, f) for f in ("trellis.db", "secret.key", "ca.pem", "credentials")]
    # They exist on the host (so the attempt means something), except credentials: this server
    # takes them from the environment.
    assert os.path.exists(os.path.join(data, "secret.key"))
    resp, doc = invoke(lam, name, {
        "server_pid": srv.proc.pid,
        "read": secret_files + ["/etc/shadow"],
        "list": [data, "/var/lib/trellis-code"],
    })
    assert "FunctionError" not in resp, doc
    assert_all_denied(doc)
    # Its own PID namespace: the runtime and bwrap's init, nothing of the host.
    assert srv.proc.pid not in doc["processes"]
    assert len(doc["processes"]) <= 4, doc["processes"]
    assert doc["uid"] != 0 and doc["uid"] != os.getuid()


def test_a_function_cannot_write_its_own_or_another_functions_code(srv, lam):
    victim = unique("victim")
    create_python(lam, victim, Timeout=30)
    sha = lam.get_function(FunctionName=victim)["Configuration"]["CodeSha256"]
    _, before = invoke(lam, victim, {})
    sha_hex = __import__("base64").b64decode(sha).hex()
    victim_dirs = [os.path.join(code_root(srv), sha_hex), os.path.join(srv.data_dir, "functions", sha_hex)]
    assert any(os.path.isdir(d) for d in victim_dirs), "the victim's code is unpacked on the host"

    attacker = hostile(lam)
    _, doc = invoke(lam, attacker, {
        "write": ["/var/task/app.py", "/var/task/new.py", "/var/runtime/trellis_bootstrap.py"]
        + [os.path.join(d, "app.py") for d in victim_dirs],
    })
    assert_all_denied(doc)
    assert doc["task_root"] == "/var/task"
    _, after = invoke(lam, victim, {})
    assert after["version"] == before["version"] == "v1"


def test_tampered_code_on_the_host_is_unpacked_again_before_a_version_starts(srv, lam):
    name = unique("tamper")
    create_python(lam, name, Timeout=30)
    sha_hex = __import__("base64").b64decode(
        lam.get_function(FunctionName=name)["Configuration"]["CodeSha256"]).hex()
    _, first = invoke(lam, name, {})
    assert first["version"] == "v1"
    app = os.path.join(code_root(srv), sha_hex, "app.py")
    # Root on the host (this test) rewrites the unpacked code, as a hostile function did when
    # code lived writable in the data dir.
    os.chmod(os.path.dirname(app), 0o755)
    os.chmod(app, 0o644)
    with open(app, "a") as f:
        f.write('\nVERSION = "tampered"\n')
    # A configuration change starts new processes of the function: its code is checked first.
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"APP_X": "1"}})
    _, after = invoke(lam, name, {})
    assert after["env"] == {"APP_X": "1"}
    assert after["version"] == "v1", "the tampered tree was replaced from the stored package"
    with open(app) as f:
        assert "tampered" not in f.read()


def test_tampered_code_is_never_started_by_a_new_process(srv, lam):
    name = unique("tamper2")
    create_python(lam, name, Timeout=2)
    sha_hex = __import__("base64").b64decode(
        lam.get_function(FunctionName=name)["Configuration"]["CodeSha256"]).hex()
    _, first = invoke(lam, name, {})
    app = os.path.join(code_root(srv), sha_hex, "app.py")
    os.chmod(os.path.dirname(app), 0o755)
    os.chmod(app, 0o644)
    with open(app, "a") as f:
        f.write('\nVERSION = "tampered"\n')
    # The warm process times out and is killed: the next invocation starts a new process, with
    # the same configuration, from code that is checked first.
    resp, doc = invoke(lam, name, {"sleep": 5})
    assert doc["errorType"] == "Sandbox.Timedout", doc
    resp, after = invoke(lam, name, {})
    assert "FunctionError" not in resp, after
    assert after["version"] == "v1" and after["instance"] != first["instance"]
    with open(app) as f:
        assert "tampered" not in f.read()


def test_a_function_cannot_use_another_sandboxs_runtime_api(srv, lam):
    victim = hostile(lam)
    _, victim_doc = invoke(lam, victim, {})
    victim_api = victim_doc["runtime_api"]
    attacker = hostile(lam)
    _, doc = invoke(lam, attacker, {"runtime_apis": [victim_api]})
    assert_all_denied(doc)
    assert doc["uid"] != victim_doc["uid"], "each sandbox runs as its own uid"
    # The victim's own runtime still works through it.
    resp, again = invoke(lam, victim, {})
    assert "FunctionError" not in resp and again["runtime_api"] == victim_api


def host_processes_with(marker):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


ESCAPER = '''
import subprocess, sys, time
def handler(event, context):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", event["marker"]],
                     start_new_session=True)
    time.sleep(60)
'''


def test_a_setsid_child_does_not_outlive_a_timed_out_invocation(srv, lam):
    name = unique("escape")
    create_python(lam, name, source=ESCAPER, Timeout=3)
    marker = "trellis-escape-" + os.urandom(6).hex()
    result = {}
    t = threading.Thread(target=lambda: result.update(out=invoke(lam, name, {"marker": marker})))
    t.start()
    poll("the function's setsid child to start", lambda: host_processes_with(marker), 20, interval=0.05)
    t.join(timeout=60)
    assert not t.is_alive()
    resp, doc = result["out"]
    assert resp["FunctionError"] == "Unhandled" and doc["errorType"] == "Sandbox.Timedout", doc
    poll("the setsid child to be killed", lambda: not host_processes_with(marker), 10, interval=0.05)


FORK_BOMB = '''
import os, time
def handler(event, context):
    children, error = 0, None
    while children < 500:
        try:
            pid = os.fork()
        except OSError as e:
            error = type(e).__name__
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
    return {"children": children, "error": error}
'''


def test_a_fork_bomb_stops_at_the_process_limit(srv, lam):
    name = unique("forks")
    create_python(lam, name, source=FORK_BOMB, Timeout=30)
    resp, doc = invoke(lam, name, {})
    assert "FunctionError" not in resp, doc
    assert doc["error"] == "BlockingIOError", doc
    assert doc["children"] < PIDS_MAX, doc
    assert srv.admin("/_trellis/health")[0] == 200
    # Other functions still run.
    other = unique("after")
    create_python(lam, other, Timeout=30)
    resp, _ = invoke(lam, other, {})
    assert "FunctionError" not in resp


HOG = '''
def handler(event, context):
    blocks = []
    for _ in range(event["mib"]):
        blocks.append(b"x" * (1024 * 1024))
    return {"allocated_mib": len(blocks)}
'''


def test_memory_beyond_memorysize_is_killed_and_reported(srv, lam):
    name = unique("hog")
    create_python(lam, name, source=HOG, Timeout=30, MemorySize=128)
    resp, doc = invoke(lam, name, {"mib": 400})
    assert resp.get("FunctionError") == "Unhandled", doc
    assert doc["errorType"] == "Runtime.OutOfMemory", doc
    # Within the limit it runs, in a fresh sandbox.
    resp, doc = invoke(lam, name, {"mib": 16})
    assert "FunctionError" not in resp and doc["allocated_mib"] == 16, doc


def test_the_data_dir_is_private_and_the_server_environment_holds_no_secret(srv):
    mode = stat.S_IMODE(os.stat(srv.data_dir).st_mode)
    assert mode == 0o700, oct(mode)
    files = ["secret.key", "ca.pem", "api-address"]
    if srv.backend == "sqlite":
        files.append("trellis.db")
    for f in files:
        m = stat.S_IMODE(os.stat(os.path.join(srv.data_dir, f)).st_mode)
        assert m & 0o077 == 0, f"{f} is {oct(m)}"
    with open(f"/proc/{srv.proc.pid}/environ", "rb") as f:
        environ = f.read()
    assert b"TRELLIS_ROOT_SECRET_ACCESS_KEY" not in environ
    assert SECRET_KEY.encode() not in environ
    # The credentials still work (this client signs with them).
    assert srv.client("lambda").list_functions()["ResponseMetadata"]["HTTPStatusCode"] == 200


def raw_zip(entries):
    """A zip of (name, content, unix mode) entries; names are written as given."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            z.writestr(info, content)
    return buf.getvalue()


def lying_size(entries, size):
    """A zip whose first entry declares `size` bytes uncompressed (local and central headers)."""
    data = bytearray(raw_zip(entries))
    assert data[:4] == b"PK\x03\x04"
    data[22:26] = size.to_bytes(4, "little")
    central = data.find(b"PK\x01\x02")
    data[central + 24:central + 28] = size.to_bytes(4, "little")
    return bytes(data)


APP = b"def handler(e, c):\n    return 1\n"
BAD_PACKAGES = [
    ("traversal", raw_zip([("app.py", APP, 0o100644), ("../../escape.py", b"x", 0o100644)])),
    ("absolute", raw_zip([("app.py", APP, 0o100644), ("/etc/cron.d/evil", b"x", 0o100644)])),
    ("symlink out", raw_zip([("app.py", APP, 0o100644), ("data", b"../../../../etc", 0o120777)])),
    ("absolute symlink", raw_zip([("app.py", APP, 0o100644), ("data", b"/etc/shadow", 0o120777)])),
    ("size too small", lying_size([("app.py", APP, 0o100644)], 3)),
    ("size too large", lying_size([("app.py", APP, 0o100644)], 9000)),
]


@pytest.mark.parametrize("what,package", BAD_PACKAGES, ids=[c[0] for c in BAD_PACKAGES])
def test_packages_that_escape_or_lie_are_refused(srv, lam, what, package):
    name = unique("zip")
    with pytest.raises(ClientError) as e:
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                            Code={"ZipFile": package})
    assert error_code(e) == "InvalidParameterValueException", what
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        lam.get_function(FunctionName=name)
    assert error_code(e) == "ResourceNotFoundException"
    # UpdateFunctionCode refuses it too and the function keeps its code.
    good = unique("zipok")
    create_python(lam, good, Timeout=30)
    sha = lam.get_function(FunctionName=good)["Configuration"]["CodeSha256"]
    with pytest.raises(ClientError) as e:
        lam.update_function_code(FunctionName=good, ZipFile=package)
    assert error_code(e) == "InvalidParameterValueException", what
    assert lam.get_function(FunctionName=good)["Configuration"]["CodeSha256"] == sha
    resp, _ = invoke(lam, good, {})
    assert "FunctionError" not in resp


def test_a_well_formed_package_with_an_inward_symlink_is_accepted(srv, lam):
    name = unique("linkok")
    package = zip_bytes({"lib/real.py": "def handler(e, c):\n    return {'ok': True}\n"})
    buf = io.BytesIO(package)
    with zipfile.ZipFile(buf, "a") as z:
        info = zipfile.ZipInfo("app.py")
        info.external_attr = 0o120777 << 16
        z.writestr(info, "lib/real.py")
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=ROLE, Handler="app.handler",
                        Code={"ZipFile": buf.getvalue()})
    resp, doc = invoke(lam, name, {})
    assert "FunctionError" not in resp and doc == {"ok": True}, doc


HANG = '''
import subprocess, sys, time
def handler(event, context):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", event["marker"]],
                     start_new_session=True)
    time.sleep(120)
'''


def test_killing_the_server_kills_every_process_of_its_sandboxes():
    s = Server(backends()[0]).start()
    try:
        lam = s.client("lambda")
        name = unique("orphan")
        create_python(lam, name, source=HANG, Timeout=300)
        marker = "trellis-orphan-" + os.urandom(6).hex()
        t = threading.Thread(target=lambda: lam.invoke(FunctionName=name, InvocationType="Event",
                                                       Payload=json.dumps({"marker": marker})))
        t.start()
        t.join(timeout=30)
        poll("the function's setsid child to start", lambda: host_processes_with(marker), 20, interval=0.05)
        s.kill9()
        poll("the setsid child to die with the server", lambda: not host_processes_with(marker), 10, interval=0.05)
    finally:
        s.cleanup()


class NoBwrapServer(Server):
    """A root server whose PATH lacks bwrap: it starts, says so, and refuses to run functions."""

    def __init__(self, backend, tmp):
        super().__init__(backend, env={"PATH": tmp})
        for tool in ("python3", "node", "setpriv", "sh"):
            found = next((os.path.join(d, tool) for d in os.environ["PATH"].split(":")
                          if os.path.exists(os.path.join(d, tool))), None)
            if found and not os.path.exists(os.path.join(tmp, tool)):
                os.symlink(found, os.path.join(tmp, tool))


def test_without_bwrap_the_server_starts_says_so_and_refuses_functions(tmp_path):
    s = NoBwrapServer(backends()[0], str(tmp_path)).start()
    try:
        assert "cannot isolate functions on this host (missing: bwrap" in s.log()
        lam = s.client("lambda")
        name = unique("refused")
        create_python(lam, name, Timeout=30)
        with pytest.raises(ClientError) as e:
            lam.invoke(FunctionName=name, Payload=b"{}")
        assert error_code(e) == "InvalidRuntimeException"
        assert "--function-isolation none" in str(e.value)
    finally:
        s.cleanup()


class NobodyServer(Server):
    """A server run as an ordinary user (nobody), functions unconfined (it cannot sandbox)."""

    def __init__(self, backend):
        super().__init__(backend)
        os.chown(self.data_dir, 65534, 65534)
        self.code_dir = self.data_dir + "-code"

    def args(self):
        return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + super().args() + [
            "--function-isolation", "none", "--function-code-dir", self.code_dir]

    def cleanup(self):
        super().cleanup()
        __import__("shutil").rmtree(self.code_dir, ignore_errors=True)


def test_a_server_run_by_an_ordinary_user_is_not_dumpable_and_warns_without_isolation():
    s = NobodyServer(backends()[0]).start()
    try:
        pid = s.proc.pid
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert uids[0] == "65534", uids
        # A dumpable process's /proc/<pid>/environ belongs to its user; a non-dumpable one's to
        # root, so other processes of the same user cannot read it.
        assert os.stat(f"/proc/{pid}/environ").st_uid == 0
        assert "--function-isolation none" in s.log() and "WARNING" in s.log()
        assert stat.S_IMODE(os.stat(s.data_dir).st_mode) == 0o700
        # Functions still run (unconfined, as the developer asked).
        lam = s.client("lambda")
        name = unique("dev")
        create_python(lam, name, Timeout=30)
        resp, doc = invoke(lam, name, {})
        assert "FunctionError" not in resp and doc["version"] == "v1", doc
    finally:
        s.cleanup()
