"""Runtime processes of the function host, seen from outside: concurrent invocations in
separate processes and warm reuse, the timeout, crashes and failures during init, a
`provided.al2023` bootstrap written in sh and curl, the unmodified `awslambdaric` from PyPI
against the Runtime API, and `--function-concurrency`."""

import threading

import pytest

from conftest import Server, backends, running, unique
from functions_support import (CURL_BOOTSTRAP, ROLE, awslambdaric_bootstrap, create_python, invoke,
                               log_result, zip_bytes)


def concurrently(n, call):
    """Runs `call(i)` in n threads at once and returns the results in order."""
    results = [None] * n
    errors = []
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait(timeout=30)
            results[i] = call(i)
        except Exception as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def test_concurrent_invocations_start_more_processes(server):
    lam = server.client("lambda")
    name = unique("conc")
    create_python(lam, name, Timeout=30)
    # Each thread needs its own client (botocore clients are not shared across threads here
    # for clarity; they are thread-safe, but each has a small connection pool).
    clients = [server.client("lambda") for _ in range(4)]
    results = concurrently(4, lambda i: invoke(clients[i], name, {"sleep": 2, "i": i})[1])
    pids = {r["instance"] for r in results}
    assert len(pids) == 4, f"four concurrent invocations ran in {pids}"
    # Afterwards the processes are warm: sequential invocations reuse them.
    again = {invoke(lam, name, {})[1]["instance"] for _ in range(3)}
    assert again <= pids
    assert len(again) == 1


def test_timeout_is_enforced(lam):
    name = unique("slow")
    create_python(lam, name, Timeout=1)
    resp, doc = invoke(lam, name, {"sleep": 5, "print": "going to sleep"}, LogType="Tail")
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert doc["errorType"] == "Sandbox.Timedout"
    assert doc["errorMessage"].startswith("RequestId: ")
    assert doc["errorMessage"].endswith("Error: Task timed out after 1.00 seconds")
    tail = log_result(resp)
    assert "going to sleep" in tail
    assert "Task timed out after 1.00 seconds" in tail and "Status: timeout" in tail
    # The killed process is replaced by a fresh one.
    resp, doc = invoke(lam, name, {})
    assert "FunctionError" not in resp and doc["version"] == "v1"


def test_crash_during_init(lam):
    exits = unique("exits")
    create_python(lam, exits, source="import os\nprint('crashing now', flush=True)\nos._exit(7)\n")
    resp, doc = invoke(lam, exits, {}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert doc["errorType"] == "Runtime.ExitError"
    assert doc["errorMessage"].endswith("Error: Runtime exited with error: exit status 7")
    assert "crashing now" in log_result(resp)

    raises = unique("raises")
    create_python(lam, raises, source="raise KeyError('SETTING')\n")
    resp, doc = invoke(lam, raises, {})
    assert resp["FunctionError"] == "Unhandled"
    assert doc["errorType"] == "KeyError"

    missing = unique("nomodule")
    create_python(lam, missing, Handler="nothere.handler")
    resp, doc = invoke(lam, missing, {})
    assert resp["FunctionError"] == "Unhandled"
    assert doc["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'nothere'" in doc["errorMessage"]

    node = unique("nodebroken")
    lam.create_function(FunctionName=node, Runtime="nodejs20.x", Role=ROLE, Handler="index.handler",
                        Code={"ZipFile": zip_bytes({"index.js": "exports.other = () => 1;\n"})})
    resp, doc = invoke(lam, node, {})
    assert resp["FunctionError"] == "Unhandled"
    assert doc["errorType"] == "Runtime.HandlerNotFound"


def test_provided_al2023_bootstrap_in_shell_and_curl(lam):
    name = unique("curl")
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE, Handler="function.handler",
                        Code={"ZipFile": zip_bytes({"bootstrap": CURL_BOOTSTRAP}, executable=("bootstrap",))})
    pids = set()
    for i in range(3):
        resp, doc = invoke(lam, name, {"i": i}, LogType="Tail")
        assert "FunctionError" not in resp, doc
        assert doc["echo"] == {"i": i} and doc["shell"] is True and doc["handler"] == "function.handler"
        assert "curl runtime got request" in log_result(resp)
        pids.add(doc["pid"])
    assert len(pids) == 1, "the shell loop serves every invocation from one warm process"


AWSLAMBDARIC_APP = """
import json
def handler(event, context):
    if event.get("fail"):
        raise ValueError("ric was asked to fail")
    print("ric handling", json.dumps(event))
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "remaining_positive": context.get_remaining_time_in_millis() > 0,
        "function": context.function_name,
    }
"""


def test_unmodified_awslambdaric_works_against_the_runtime_api(lam):
    name = unique("ric")
    package = zip_bytes({"bootstrap": awslambdaric_bootstrap(), "app.py": AWSLAMBDARIC_APP},
                        executable=("bootstrap",))
    lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=ROLE, Handler="app.handler",
                        Timeout=30, Code={"ZipFile": package})
    resp, doc = invoke(lam, name, {"hello": "ric"}, LogType="Tail")
    assert "FunctionError" not in resp, doc
    assert doc["event"] == {"hello": "ric"}
    assert doc["function"] == name
    assert doc["arn"].endswith(f":function:{name}")
    assert doc["remaining_positive"] is True
    assert doc["request_id"]
    assert "ric handling" in log_result(resp)
    # Its error document reaches the caller as Lambda's would.
    resp, doc = invoke(lam, name, {"fail": True})
    assert resp["FunctionError"] == "Unhandled"
    assert doc["errorType"] == "ValueError"
    assert doc["errorMessage"] == "ric was asked to fail"
    assert isinstance(doc["stackTrace"], list)
    # And the process keeps serving.
    _, doc = invoke(lam, name, {"n": 2})
    assert doc["event"] == {"n": 2}

    # An import failure goes through /init/error.
    broken = unique("ricbroken")
    lam.create_function(FunctionName=broken, Runtime="provided.al2023", Role=ROLE, Handler="missing.handler",
                        Timeout=30, Code={"ZipFile": package})
    resp, doc = invoke(lam, broken, {})
    assert resp["FunctionError"] == "Unhandled"
    assert doc["errorType"] == "Runtime.ImportModuleError"


@pytest.fixture(scope="module")
def narrow():
    """A server that runs one invocation per function at a time."""
    yield from running(Server(backends()[0], ["--function-concurrency", "1"]))


def test_function_concurrency_flag_limits_processes(narrow):
    lam = narrow.client("lambda")
    name = unique("one")
    create_python(lam, name, Timeout=30)
    clients = [narrow.client("lambda") for _ in range(3)]
    results = concurrently(3, lambda i: invoke(clients[i], name, {"sleep": 0.5})[1])
    # One slot: the invocations queue and run one after another in the same process.
    assert len({r["instance"] for r in results}) == 1
