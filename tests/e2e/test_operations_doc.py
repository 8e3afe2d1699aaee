"""The operation table is the one list of what Trellis serves: docs/api.md must list exactly the
operations the running server's table holds (`GET /_trellis/operations`), and every operation it
lists must be routed — none answers the unknown-operation error.

After adding an operation, regenerate the list with
`TRELLIS_UPDATE_DOCS=1 python3 -m pytest -q test_operations_doc.py`."""

import os
import re
import urllib.request

import botocore.exceptions
import botocore.loaders
import pytest

from conftest import ROOT

DOC = os.path.join(ROOT, "docs", "api.md")
BEGIN = "<!-- operations:begin (generated from the operation table) -->\n"
END = "<!-- operations:end -->\n"


def served(server):
    with urllib.request.urlopen(server.endpoint + "/_trellis/operations", timeout=5) as r:
        assert r.headers["content-type"].startswith("text/markdown")
        return r.read().decode()


def test_docs_list_the_table(server):
    listing = served(server)
    with open(DOC) as f:
        text = f.read()
    assert BEGIN in text and END in text, "docs/api.md lost its generated section's markers"
    before, rest = text.split(BEGIN, 1)
    documented, after = rest.split(END, 1)
    if os.environ.get("TRELLIS_UPDATE_DOCS") == "1":
        with open(DOC, "w") as f:
            f.write(before + BEGIN + listing + END + after)
        documented = listing
    assert documented == listing, (
        "docs/api.md does not list what the server serves; regenerate it with "
        "TRELLIS_UPDATE_DOCS=1 (see this module's docstring)")


def test_the_table_matches_the_models(server):
    """Every listed REST operation has the model's method and URI (a greedy label is written
    `{name+}` where Trellis accepts an unencoded `/`), every JSON/query operation exists in its
    service's model, and every operation declares exactly the errors its model lists (the server
    logs any other it answers with, and `Server.cleanup` fails the suite on that line)."""
    loader = botocore.loaders.Loader()
    models = {}
    service = None
    rows = 0
    for line in served(server).splitlines():
        m = re.match(r"^### .* \(`([0-9-]+)`, ([a-z0-9-]+), signing name `([a-z0-9-]+)`\)$", line)
        if m:
            service = {"vpc-lattice": "vpc-lattice", "lambda": "lambda", "tagging": "resourcegroupstaggingapi",
                       "iam": "iam", "sts": "sts", "organizations": "organizations", "ec2": "ec2", "logs": "logs"}[m.group(3)]
            models.setdefault(service, loader.load_service_model(service, "service-2"))
            assert models[service]["metadata"]["apiVersion"] == m.group(1)
            continue
        # An operation whose model lists no errors shows `—`.
        m = re.match(r"^\| (\w+) \| `(.*)` \| ([\w, ]+|—) \|$", line)
        if not m:
            assert not line.startswith("| ") or line.startswith("| Operation "), line
            continue
        rows += 1
        name, binding, errors = m.groups()
        op = models[service]["operations"].get(name)
        assert op is not None, f"{service} has no operation {name}"
        modelled = sorted(e["shape"] for e in op.get("errors", []))
        declared = [] if errors == "—" else errors.split(", ")
        assert sorted(declared) == modelled, (name, errors, modelled)
        if binding.startswith("Action="):
            assert binding == f"Action={name}"
        elif binding.startswith("X-Amz-Target: "):
            prefix = models[service]["metadata"]["targetPrefix"]
            assert binding == f"X-Amz-Target: {prefix}.{name}"
        else:
            method, uri = binding.split(" ", 1)
            assert method == op["http"]["method"], name
            assert uri.replace("+}", "}") == op["http"]["requestUri"], name
    assert rows >= 60


# (client service, method, kwargs, error code, message must contain)
UNKNOWN = [
    ("vpc-lattice", "create_resource_gateway", {"name": "rg-x", "vpcIdentifier": "vpc-1"},
     "ValidationException", "Trellis does not implement the operation POST /resourcegateways"),
    ("vpc-lattice", "list_domain_verifications", {}, "ValidationException",
     "Trellis does not implement the operation GET /domainverifications"),
    ("lambda", "get_function_url_config", {"FunctionName": "f"}, "InvalidParameterValueException",
     "Trellis does not implement the Lambda operation GET /2021-10-31/functions/f/url"),
    ("lambda", "list_layers", {}, "InvalidParameterValueException",
     "Trellis does not implement the Lambda operation GET /2018-10-31/layers"),
]


def test_unknown_operations_are_answered_in_each_service_vocabulary(server):
    for service, method, kwargs, code, needle in UNKNOWN:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            getattr(server.client(service), method)(**kwargs)
        err = e.value.response
        assert err["Error"]["Code"] == code, (method, err)
        assert needle in err["Error"]["Message"], (method, err)
        # Every answer, error or not, carries a request ID.
        assert len(err["ResponseMetadata"]["RequestId"]) == 36, err


def test_metrics_name_operations_from_the_table(server):
    lattice = server.client()
    lattice.list_services()
    server.client("lambda").list_functions()
    try:
        lattice.create_resource_gateway(name="rg-y", vpcIdentifier="vpc-1")
    except botocore.exceptions.ClientError:
        pass
    _, metrics = server.admin("/metrics")
    for label in ['operation="ListServices",code="200"', 'operation="ListFunctions",code="200"',
                  'operation="Unknown",code="400"']:
        assert f"trellis_api_requests_total{{{label}}}" in metrics, label
