"""SigV4 on the API with real signers: botocore (header and presigned query forms) and
`curl --aws-sigv4`; and AWS's error codes for each kind of bad signature."""

import subprocess
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY, REGION, SECRET_KEY, error_code


def curl(server, *extra, key=ACCESS_KEY, secret=SECRET_KEY, path="/servicenetworks"):
    p = subprocess.run(
        ["curl", "-sS", "-o", "/dev/stdout", "-w", "\n%{http_code}", "--aws-sigv4", f"aws:amz:{REGION}:vpc-lattice",
         "--user", f"{key}:{secret}", *extra, server.endpoint + path],
        capture_output=True, text=True, timeout=30)
    body, _, code = p.stdout.rpartition("\n")
    return int(code), body


def test_curl_aws_sigv4_is_accepted(server):
    code, body = curl(server)
    assert code == 200, body
    assert '"items"' in body


def test_curl_with_body_is_accepted(server):
    code, body = curl(server, "-X", "POST", "-H", "content-type: application/json",
                      "--data", '{"name":"curl-made-network"}')
    assert code == 201, body
    assert "curl-made-network" in body


def test_curl_with_wrong_secret_is_invalid_signature(server):
    code, body = curl(server, secret="nope")
    assert code == 403
    assert "signature" in body.lower()


def test_presigned_url_from_botocore(lattice):
    url = lattice.generate_presigned_url("list_service_networks", ExpiresIn=300)
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
    tampered = url.replace("X-Amz-Expires=300", "X-Amz-Expires=301")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(tampered, timeout=10)
    assert e.value.code == 403


def test_missing_signature(server):
    req = urllib.request.Request(server.endpoint + "/services")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403
    assert e.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_incomplete_authorization_header(server):
    req = urllib.request.Request(server.endpoint + "/services",
                                 headers={"Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20200101"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code in (400, 403)
    assert e.value.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"


def test_wrong_region_scope(server):
    import boto3
    c = boto3.client("vpc-lattice", endpoint_url=server.endpoint, region_name="eu-west-1",
                     aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    with pytest.raises(ClientError) as e:
        c.list_service_networks()
    assert error_code(e) == "InvalidSignatureException"
