"""Security probes that held (issue 9): SigV4 on the API against an attacker who holds a signed
request but not the secret. The signer is botocore's own (`SigV4Auth`, `SigV4QueryAuth`); the
clock is shifted by replacing the signer's clock, not by hand-writing signatures.

- Clock skew: a signature more than 15 minutes from the server's clock, either way, is refused.
- Presigned URLs: refused after `X-Amz-Expires`, even while still inside the skew window.
- Tampering: a request signed once and then changed in any signed part (method, path, query, a
  signed header, the body) is refused with `InvalidSignatureException`, and has no effect.

test_auth.py covers the ordinary signers (curl, boto3, a presigned URL) and the malformed cases;
this module covers what an attacker would change. SigV4 does not depend on the store, so one
SQLite-backed server is enough.
"""

import datetime
import http.client
import json
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from conftest import ACCESS_KEY, REGION, SECRET_KEY, Server, running, sigv4_headers, unique

CREDENTIALS = botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY)


@pytest.fixture(scope="module")
def api():
    yield from running(Server("sqlite"))


@pytest.fixture
def clock(monkeypatch):
    """Shifts botocore's signing clock: `clock(minutes=-16)`."""
    real = botocore.auth.get_current_datetime

    def shift(**delta):
        monkeypatch.setattr(botocore.auth, "get_current_datetime",
                            lambda remove_tzinfo=True: real(remove_tzinfo) + datetime.timedelta(**delta))

    return shift


def sign(server, method, path, body=b"", headers=None):
    """A request signed by botocore's SigV4 signer: (method, path with query, headers, body)."""
    signed = sigv4_headers(server, method, path, body, headers=headers,
                           content_type="application/json" if body else None)
    return method, path, signed, body


def presign(server, path, expires):
    req = botocore.awsrequest.AWSRequest(method="GET", url=server.endpoint + path)
    botocore.auth.SigV4QueryAuth(CREDENTIALS, "vpc-lattice", REGION, expires=expires).add_auth(req)
    return req.url


def send(server, method, path, headers, body=b""):
    """Sends exactly this request (http.client adds only Host, Accept-Encoding and Content-Length,
    none of them signed by botocore) and returns (status, x-amzn-ErrorType or None, JSON body)."""
    conn = http.client.HTTPConnection(*server.api_address(), timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        r = conn.getresponse()
        data = r.read()
        return r.status, r.getheader("x-amzn-ErrorType"), json.loads(data) if data else {}
    finally:
        conn.close()


def assert_refused(result, code="InvalidSignatureException", text=None):
    status, error_type, doc = result
    assert (status, error_type) == (403, code), result
    if text:
        assert text in doc.get("message", doc.get("Message", "")), doc


# --- clock skew --------------------------------------------------------------------------------

@pytest.mark.parametrize("minutes,accepted,text", [
    (-14, True, None),
    (14, True, None),
    (-16, False, "Signature expired"),
    (16, False, "Signature not yet current"),
    (-24 * 60, False, "Signature expired"),
    (365 * 24 * 60, False, "Signature not yet current"),
])
def test_clock_skew(api, clock, minutes, accepted, text):
    clock(minutes=minutes)
    result = send(api, *sign(api, "GET", "/servicenetworks"))
    if accepted:
        assert result[0] == 200, result
    else:
        assert_refused(result, text=text)


# --- presigned URL expiry ----------------------------------------------------------------------

@pytest.mark.parametrize("signed_minutes_ago,expires,accepted", [
    # Signed 10 minutes ago: within the 15-minute skew, so only X-Amz-Expires decides.
    (10, 3600, True),
    (10, 60, False),
    (10, 599, False),
    (0, 60, True),
])
def test_presigned_url_expiry(api, clock, signed_minutes_ago, expires, accepted):
    clock(minutes=-signed_minutes_ago)
    url = presign(api, "/servicenetworks", expires)
    parts = urllib.parse.urlsplit(url)
    result = send(api, "GET", f"{parts.path}?{parts.query}", {})
    if accepted:
        assert result[0] == 200, result
    else:
        assert_refused(result, text="Signature expired")


def test_presigned_url_query_tampering(api):
    url = presign(api, "/servicenetworks", 300)
    parts = urllib.parse.urlsplit(url)
    assert send(api, "GET", f"{parts.path}?{parts.query}", {})[0] == 200
    for tampered in (parts.query + "&maxResults=1", parts.query.replace("X-Amz-Expires=300", "X-Amz-Expires=3000")):
        assert_refused(send(api, "GET", f"{parts.path}?{tampered}", {}))


# --- tampering with a signed request -----------------------------------------------------------

@pytest.fixture(scope="module")
def networks(api):
    """Two service networks: the tampered requests aim at them."""
    c = api.client()
    return [c.create_service_network(name=unique("sigv4"))["id"] for _ in range(2)]


def tamper_cases(api, networks):
    a, b = networks
    get_a = sign(api, "GET", f"/servicenetworks/{a}")
    create = sign(api, "POST", "/servicenetworks", json.dumps({"name": "sigv4-signed-aaaa"}).encode())
    listed = sign(api, "GET", "/servicenetworks?maxResults=1")
    with_header = sign(api, "GET", "/servicenetworks", headers={"X-Probe": "signed"})

    def change(req, method=None, path=None, headers=None, drop=(), body=None):
        m, p, h, bd = req
        h = {k: v for k, v in h.items() if k.lower() not in drop}
        h.update(headers or {})
        return (method or m, path or p, h, bd if body is None else body)

    return {
        # A read turned into a delete of the same resource.
        "method": change(get_a, method="DELETE"),
        # A read of one resource aimed at another.
        "path": change(get_a, path=f"/servicenetworks/{b}"),
        "path case": change(get_a, path=f"/ServiceNetworks/{a}"),
        "query value": change(listed, path="/servicenetworks?maxResults=2"),
        "query added": change(listed, path="/servicenetworks?maxResults=1&nextToken=x"),
        "query dropped": change(listed, path="/servicenetworks"),
        "signed header changed": change(with_header, headers={"X-Probe": "changed"}),
        "signed header dropped": change(with_header, drop=("x-probe",)),
        "x-amz-date changed": change(with_header, headers={"X-Amz-Date": "20200101T000000Z"}),
        # The same length, another name: the body hash no longer matches.
        "body": change(create, body=json.dumps({"name": "sigv4-signed-bbbb"}).encode()),
        "body extended": change(create, body=json.dumps({"name": "sigv4-signed-aaaa", "authType": "AWS_IAM"}).encode()),
    }


TAMPERED = ["method", "path", "path case", "query value", "query added", "query dropped", "signed header changed",
            "signed header dropped", "x-amz-date changed", "body", "body extended"]


@pytest.mark.parametrize("case", TAMPERED)
def test_tampered_request_is_refused_and_has_no_effect(api, networks, case):
    cases = tamper_cases(api, networks)
    result = send(api, *cases[case])
    if case == "x-amz-date changed":
        # Years off: refused for the time before the signature is compared, as AWS does.
        assert_refused(result)
    else:
        assert_refused(result, text="signature we calculated does not match")
    c = api.client()
    # Nothing happened: both networks exist, nothing was created from a tampered body.
    for i in networks:
        assert c.get_service_network(serviceNetworkIdentifier=i)["id"] == i
    names = {n["name"] for n in c.list_service_networks()["items"]}
    assert "sigv4-signed-bbbb" not in names


def test_untampered_requests_are_accepted(api, networks):
    """The control: each signed request above, sent as signed, succeeds (so the refusals are the
    tampering's doing)."""
    a, _ = networks
    assert send(api, *sign(api, "GET", f"/servicenetworks/{a}"))[0] == 200
    assert send(api, *sign(api, "GET", "/servicenetworks?maxResults=1"))[0] == 200
    assert send(api, *sign(api, "GET", "/servicenetworks", headers={"X-Probe": "signed"}))[0] == 200
    name = unique("sigv4-ok")
    status, _, doc = send(api, *sign(api, "POST", "/servicenetworks", json.dumps({"name": name}).encode()))
    assert status == 201 and doc["name"] == name, doc


def test_replay_to_another_service_is_refused(api):
    """A request signed for the Lambda API's scope (same host, same credentials) is refused on a
    Lattice path: the service is part of what is signed. (Another region: test_auth.py.)"""
    headers = sigv4_headers(api, "GET", "/servicenetworks", service="lambda", content_type=None)
    assert_refused(send(api, "GET", "/servicenetworks", headers))
