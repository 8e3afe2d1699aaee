"""AWS_IAM on the data plane, end to end (reference §6.2, §6.3, §7): requests to services signed
by real signers — botocore's SigV4Auth, `curl --aws-sigv4`, the AWS CRT's SigV4A, and gRPC
metadata signed with botocore — with credentials from IAM users and STS sessions, authorized by
the caller's identity policies, the service network's auth policy and the service's.

The worked example of the README ("only the role `rates-reader` may `GET /rates`") is the first
test. Changes are waited for on observable state: the applied revision for auth policies, the
identity revision for IAM changes; never a clock."""

import datetime
import json
import subprocess
import unittest.mock
from types import SimpleNamespace

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import grpc
import pytest

from backends import INGRESS, Caller, ServiceBuilder, forward, free_port, ip_target_group, wait_until_applied
from conftest import ACCESS_KEY, ACCOUNT, REGION, SECRET_KEY
from test_iam import iam_cli, new_user, wait_identity
from test_sts import new_role, trust

SIGNING_NAME = "vpc-lattice-svcs"
INVOKE_ANY = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]}
AUTHENTICATED_ONLY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
    "Condition": {"StringNotEqualsIgnoreCase": {"aws:PrincipalType": "anonymous"}}}]}
# The launch post's "Allow authenticated and unauthenticated access" template.
EVERYONE = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]}


def http_service(lattice, start_backend, backend_name, **auth):
    """A service (in a fresh network; `auth`: ServiceBuilder's `auth_type`, `network_auth_type`)
    whose HTTP listener on a free port forwards to a fresh backend: (ServiceBuilder, port, group)."""
    backend = start_backend(backend_name)
    tg = ip_target_group(lattice, health_check={"enabled": False}, targets=[backend])
    svc = ServiceBuilder(lattice, **auth)
    port = free_port()
    svc.listener("HTTP", port, forward((tg, 1)))
    return svc, port, tg


def put_policy(lattice, resource, policy):
    lattice.put_auth_policy(resourceIdentifier=resource, policy=json.dumps(policy))


def creds_of(key):
    return {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"],
            **({"SessionToken": key["SessionToken"]} if "SessionToken" in key else {})}


def sign(creds, method, url, headers=None, unsigned_payload=True, body=None):
    """The headers botocore's SigV4 signer gives a request for `vpc-lattice-svcs`."""
    hdrs = dict(headers or {})
    if unsigned_payload:
        hdrs["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
    req = botocore.awsrequest.AWSRequest(method=method, url=url, headers=hdrs, data=body)
    c = botocore.credentials.Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds.get("SessionToken"))
    botocore.auth.SigV4Auth(c, SIGNING_NAME, REGION).add_auth(req)
    return dict(req.headers.items())


def call(svc, port, path="/rates", method="GET", creds=None, headers=None, **sign_kw):
    """One request to the service's generated name; signed with `creds` unless None."""
    hdrs = dict(headers or {})
    if creds is not None:
        hdrs.update(sign(creds, method, f"http://{svc.dns_name}:{port}{path}", headers, **sign_kw))
        # The signed Host carries the port; send exactly it.
        hdrs["Host"] = f"{svc.dns_name}:{port}"
    caller = Caller(svc.dns_name, port)
    try:
        return caller.request(path, method=method, headers=hdrs, body=sign_kw.get("body"))
    finally:
        caller.close()


def denied(resource, who="anonymous", layer="service"):
    return (f"AccessDeniedException: User: {who} is not authorized to perform: vpc-lattice-svcs:Invoke on "
            f"resource: {resource} because no {layer}-based policy allows the vpc-lattice-svcs:Invoke action")


def session_of(server, role, session="s1", tags=()):
    sts = server.client("sts")
    extra = {"Tags": [{"Key": k, "Value": v} for k, v in tags]} if tags else {}
    return sts.assume_role(RoleArn=role["Arn"], RoleSessionName=session, **extra)["Credentials"]


def map_header(value):
    return dict(part.strip().split("=", 1) for part in value.split(";") if part.strip())


@pytest.fixture(scope="module")
def env(dp_server, dp_lattice, start_backend):
    """The README's worked example: a service network that admits authenticated callers only, a
    service that lets the role `rates-reader` (and nobody else) `GET /rates`."""
    lattice = dp_lattice
    svc, port, tg = http_service(lattice, start_backend, "auth", auth_type="AWS_IAM", network_auth_type="AWS_IAM")
    reader = new_role(dp_server, trust(ACCOUNT), INVOKE_ANY)
    put_policy(lattice, svc.sn["id"], AUTHENTICATED_ONLY)
    put_policy(lattice, svc.svc["id"], {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": reader["Arn"]}, "Action": "vpc-lattice-svcs:Invoke",
        "Resource": f"{svc.svc['arn']}/rates",
        "Condition": {"StringEquals": {"vpc-lattice-svcs:RequestMethod": "GET"}}}]})
    # A user allowed to invoke anything by its own policy, but named by no auth policy.
    outsider, outsider_key = new_user(dp_server, INVOKE_ANY)
    wait_identity(dp_server)
    wait_until_applied(dp_server)
    return SimpleNamespace(lattice=lattice, svc=svc, port=port, tg=tg, reader=reader,
                           session=session_of(dp_server, reader), outsider=outsider, outsider_key=outsider_key)


def test_only_the_named_role_may_get_rates(env):
    svc, arn = env.svc, env.svc.svc["arn"]
    r = call(svc, env.port, creds=env.session)
    assert r.status == 200, r.body
    got = r.json()["headers"]
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{env.reader['RoleName']}/s1"
    assert map_header(got["x-amzn-lattice-identity"]) == {
        "Principal": session_arn, "SessionName": "s1", "Type": "AWS_IAM"}
    assert map_header(got["x-amzn-lattice-identity-tags"])["principal"] == session_arn
    # The signature reaches the target untouched.
    assert got["authorization"].startswith("AWS4-HMAC-SHA256 ")

    # Another method or path: the service policy allows neither.
    r = call(svc, env.port, method="POST", creds=env.session)
    assert (r.status, r.body.decode()) == (403, denied(f"{arn}/rates", session_arn))
    r = call(svc, env.port, path="/admin", creds=env.session)
    assert (r.status, r.body.decode()) == (403, denied(f"{arn}/admin", session_arn))
    # A signed caller the service policy does not name.
    r = call(svc, env.port, creds=creds_of(env.outsider_key))
    assert (r.status, r.body.decode()) == (403, denied(f"{arn}/rates", env.outsider["Arn"]))
    # Anonymous: the network admits authenticated callers only.
    r = call(svc, env.port)
    assert (r.status, r.body.decode()) == (403, denied(f"{arn}/rates", layer="network"))
    assert r.backend is None


def test_identity_headers_cannot_be_spoofed(env):
    spoofed = {"x-amzn-lattice-identity": "Principal=arn:aws:iam::999999999999:root",
               "x-amzn-lattice-identity-tags": "principal=spoofed"}
    r = call(env.svc, env.port, creds=env.session, headers=spoofed)
    assert r.status == 200
    got = r.json()["headers"]
    assert "999999999999" not in got["x-amzn-lattice-identity"]
    assert "spoofed" not in got["x-amzn-lattice-identity-tags"]


@pytest.fixture(scope="module")
def open_svc(dp_server, dp_lattice, start_backend):
    """An AWS_IAM service whose policy allows everyone, signed or not."""
    lattice = dp_lattice
    svc, port, tg = http_service(lattice, start_backend, "auth-open", auth_type="AWS_IAM")
    put_policy(lattice, svc.svc["id"], EVERYONE)
    wait_until_applied(dp_server)
    return svc, port


@pytest.mark.parametrize("case", ["signed payload", "wrong secret", "unknown key", "wrong service",
                                  "wrong region", "stale", "bad token", "not sigv4"])
def test_bad_signatures_are_refused_even_where_anonymous_would_pass(open_svc, case):
    svc, port = open_svc
    root = {"AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET_KEY}
    url = f"http://{svc.dns_name}:{port}/x"
    # Anonymous callers are allowed.
    assert call(svc, port, "/x").status == 200
    expected = {
        "signed payload": "InvalidSignatureException: Signed payloads are not supported",
        "wrong secret": "InvalidSignatureException: The request signature we calculated does not match",
        "unknown key": "UnrecognizedClientException: The security token included in the request is invalid.",
        "wrong service": "InvalidSignatureException: Credential should be scoped to correct service",
        "wrong region": "InvalidSignatureException: Credential should be scoped to a valid region",
        "stale": "InvalidSignatureException: Signature expired",
        "bad token": "UnrecognizedClientException: The security token included in the request is invalid.",
        "not sigv4": "IncompleteSignatureException",
    }[case]
    if case == "signed payload":
        hdrs = sign(root, "GET", url, unsigned_payload=False)
    elif case == "wrong secret":
        hdrs = sign({**root, "SecretAccessKey": "x" * 40}, "GET", url)
    elif case == "unknown key":
        hdrs = sign({"AccessKeyId": "AKIAUNKNOWNKEY000000", "SecretAccessKey": "x" * 40}, "GET", url)
    elif case in ("wrong service", "wrong region"):
        req = botocore.awsrequest.AWSRequest(method="GET", url=url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        service, region = ("vpc-lattice", REGION) if case == "wrong service" else (SIGNING_NAME, "eu-west-1")
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(ACCESS_KEY, SECRET_KEY), service, region).add_auth(req)
        hdrs = dict(req.headers.items())
    elif case == "stale":
        # botocore signs with its clock; an hour-old clock makes a stale signature.
        hour_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
        with unittest.mock.patch("botocore.auth.get_current_datetime", lambda *a, **k: hour_ago):
            hdrs = sign(root, "GET", url)
    elif case == "bad token":
        hdrs = sign({"AccessKeyId": "ASIAFORGEDFORGED0000", "SecretAccessKey": "x" * 40, "SessionToken": "forged"},
                    "GET", url)
    else:
        hdrs = {"Authorization": "Bearer abc"}
    hdrs["Host"] = f"{svc.dns_name}:{port}"
    r = Caller(svc.dns_name, port).request("/x", headers=hdrs)
    assert r.status == 403 and r.backend is None, (r.status, r.body)
    assert r.body.decode().startswith(expected), r.body


def test_curl_signs_over_http1_and_http2(dp_server, env):
    """`curl --aws-sigv4` with temporary credentials, over HTTP/1.1 and HTTP/2 (TLS, ALPN)."""
    tls_port = free_port()
    env.svc.listener("HTTPS", tls_port, forward((env.tg, 1)))
    wait_until_applied(dp_server)
    s = env.session
    for port, scheme, version in ((env.port, "http", "--http1.1"), (tls_port, "https", "--http2")):
        cmd = ["curl", "-sS", "--max-time", "30", version, "-w", "\n%{http_code} %{http_version}",
               "--resolve", f"{env.svc.dns_name}:{port}:{INGRESS}", "--cacert", dp_server.ca_path,
               "--aws-sigv4", f"aws:amz:{REGION}:{SIGNING_NAME}", "--user", f"{s['AccessKeyId']}:{s['SecretAccessKey']}",
               "-H", f"x-amz-security-token: {s['SessionToken']}", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
               f"{scheme}://{env.svc.dns_name}:{port}/rates"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=40)
        assert p.returncode == 0, p.stderr
        body, _, last = p.stdout.rpartition("\n")
        status, http_version = last.split()
        assert status == "200", body
        assert http_version == ("1.1" if version == "--http1.1" else "2")
        assert "assumed-role" in json.loads(body)["headers"]["x-amzn-lattice-identity"]
    # Without the session token, the session's key is not recognised.
    cmd = ["curl", "-sS", "--max-time", "30", "--resolve", f"{env.svc.dns_name}:{env.port}:{INGRESS}",
           "--aws-sigv4", f"aws:amz:{REGION}:{SIGNING_NAME}", "--user", f"{s['AccessKeyId']}:{s['SecretAccessKey']}",
           "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", f"http://{env.svc.dns_name}:{env.port}/rates"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=40)
    assert p.stdout.startswith("UnrecognizedClientException"), p.stdout


def test_sigv4a_signed_by_the_aws_crt(env):
    """SigV4A (ECDSA P-256 over a region set) as the AWS CRT signs it."""
    from awscrt import auth, http as crt_http

    s = env.session
    creds = auth.AwsCredentialsProvider.new_static(s["AccessKeyId"], s["SecretAccessKey"], s["SessionToken"])
    host = f"{env.svc.dns_name}:{env.port}"
    for region_set in ("*", REGION, f"eu-west-1,{REGION}"):
        req = crt_http.HttpRequest("GET", "/rates", crt_http.HttpHeaders([("host", host)]))
        config = auth.AwsSigningConfig(
            algorithm=auth.AwsSigningAlgorithm.V4_ASYMMETRIC, signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
            credentials_provider=creds, region=region_set, service=SIGNING_NAME,
            signed_body_value=auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD,
            signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256)
        auth.aws_sign_request(req, config).result(timeout=10)
        hdrs = {k: v for k, v in req.headers if k.lower() != "host"}
        hdrs["Host"] = host
        assert hdrs["Authorization"].startswith("AWS4-ECDSA-P256-SHA256 ")
        r = Caller(env.svc.dns_name, env.port).request("/rates", headers=hdrs)
        assert r.status == 200, (region_set, r.body)
        assert "assumed-role" in r.json()["headers"]["x-amzn-lattice-identity"]
    # A region set without this region does not cover it.
    req = crt_http.HttpRequest("GET", "/rates", crt_http.HttpHeaders([("host", host)]))
    config = auth.AwsSigningConfig(
        algorithm=auth.AwsSigningAlgorithm.V4_ASYMMETRIC, signature_type=auth.AwsSignatureType.HTTP_REQUEST_HEADERS,
        credentials_provider=creds, region="eu-west-1", service=SIGNING_NAME,
        signed_body_value=auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD,
        signed_body_header_type=auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256)
    auth.aws_sign_request(req, config).result(timeout=10)
    hdrs = {k: v for k, v in req.headers if k.lower() != "host"}
    hdrs["Host"] = host
    r = Caller(env.svc.dns_name, env.port).request("/rates", headers=hdrs)
    assert r.status == 403 and r.body.decode().startswith("InvalidSignatureException: The region set"), r.body


def test_grpc_methods_are_the_resource(dp_server, dp_lattice, start_backend):
    """gRPC: the resource is `<service ARN>/<package.Service>/<Method>`; the client signs a POST to
    `https://<authority>/<package.Service>/<Method>` and sends the signature as metadata."""
    lattice = dp_lattice
    backend = start_backend("auth-grpc", protocol="h2c", grpc=True)
    tg = ip_target_group(lattice, protocol="HTTP", protocol_version="GRPC", targets=[backend])
    svc = ServiceBuilder(lattice, auth_type="AWS_IAM")
    port = free_port()
    svc.listener("HTTPS", port, forward((tg, 1)))
    role = new_role(dp_server, trust(ACCOUNT), INVOKE_ANY)
    put_policy(lattice, svc.svc["id"], {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": role["Arn"]}, "Action": "vpc-lattice-svcs:Invoke",
        "Resource": f"{svc.svc['arn']}/test.Echo/Unary"}]})
    wait_identity(dp_server)
    wait_until_applied(dp_server)
    session = session_of(dp_server, role)
    creds = grpc.ssl_channel_credentials(root_certificates=open(dp_server.ca_path, "rb").read())
    options = [("grpc.ssl_target_name_override", svc.dns_name), ("grpc.default_authority", svc.dns_name)]
    with grpc.secure_channel(f"{INGRESS}:{port}", creds, options=options) as ch:
        def metadata(method):
            hdrs = sign(session, "POST", f"https://{svc.dns_name}/test.Echo/{method}")
            return tuple((k.lower(), v) for k, v in hdrs.items() if k.lower() != "host")

        reply = ch.unary_unary("/test.Echo/Unary")(b"hi", metadata=metadata("Unary"), timeout=30)
        assert reply == b"hi"
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_stream("/test.Echo/ServerStream")(b"x", metadata=metadata("ServerStream"), timeout=30).next()
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary("/test.Echo/Unary")(b"hi", timeout=30)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_explicit_deny_wins_and_names_its_layer(dp_server, dp_lattice, start_backend):
    lattice = dp_lattice
    svc, port, tg = http_service(lattice, start_backend, "auth-deny", auth_type="AWS_IAM", network_auth_type="AWS_IAM")
    put_policy(lattice, svc.svc["id"], EVERYONE)
    put_policy(lattice, svc.sn["id"], {"Version": "2012-10-17", "Statement": [
        EVERYONE["Statement"][0],
        {"Effect": "Deny", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*/admin*"}]})
    # A user whose own policy denies /reports.
    user, key = new_user(dp_server, {"Version": "2012-10-17", "Statement": [
        INVOKE_ANY["Statement"][0],
        {"Effect": "Deny", "Action": "vpc-lattice-svcs:Invoke", "Resource": "arn:aws:vpc-lattice:*:*:service/*/reports"}]})
    no_policy_user, no_policy_key = new_user(dp_server)
    wait_identity(dp_server)
    wait_until_applied(dp_server)
    arn = svc.svc["arn"]
    assert call(svc, port, "/rates").status == 200
    assert call(svc, port, "/rates", creds=creds_of(key)).status == 200
    r = call(svc, port, "/admin/x")
    assert r.status == 403
    assert r.body.decode() == (
        f"AccessDeniedException: User: anonymous is not authorized to perform: vpc-lattice-svcs:Invoke on resource: "
        f"{arn}/admin/x with an explicit deny in a network-based policy")
    r = call(svc, port, "/reports", creds=creds_of(key))
    assert r.body.decode() == (
        f"AccessDeniedException: User: {user['Arn']} is not authorized to perform: vpc-lattice-svcs:Invoke on "
        f"resource: {arn}/reports with an explicit deny in an identity-based policy")
    # Signed callers need an identity policy that allows the call, even where the auth policies
    # allow everyone: Lattice requires both.
    r = call(svc, port, "/rates", creds=creds_of(no_policy_key))
    assert (r.status, r.body.decode()) == (403, denied(f"{arn}/rates", no_policy_user["Arn"], "identity"))


def test_condition_keys(dp_server, dp_lattice, start_backend):
    """The request's condition keys (reference §7.4), each in a policy that depends on it."""
    lattice = dp_lattice
    svc, port, tg = http_service(lattice, start_backend, "auth-keys", auth_type="AWS_IAM")
    lattice.tag_resource(resourceArn=svc.svc["arn"], tags={"env": "prod"})
    role = new_role(dp_server, trust(ACCOUNT, actions=("sts:AssumeRole", "sts:TagSession")), INVOKE_ANY)
    arn = svc.svc["arn"]

    def allow(path, condition, principal="*"):
        return {"Effect": "Allow", "Principal": principal, "Action": "vpc-lattice-svcs:Invoke",
                "Resource": f"{arn}{path}", "Condition": condition}

    put_policy(lattice, svc.svc["id"], {"Version": "2012-10-17", "Statement": [
        allow("/header", {"StringEquals": {"vpc-lattice-svcs:RequestHeader/x-team": "rates"}}),
        allow("/query", {"ForAnyValue:StringEquals": {"vpc-lattice-svcs:RequestQueryString/q": "b"}}),
        allow("/port", {"NumericEquals": {"vpc-lattice-svcs:Port": str(port)}}),
        allow("/ip", {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}),
        allow("/tls", {"Bool": {"aws:SecureTransport": "true"}}),
        allow("/resource-tag", {"StringEquals": {"aws:ResourceTag/env": "prod"}}),
        allow("/service", {"ArnEquals": {"vpc-lattice-svcs:ServiceArn": arn,
                                         "vpc-lattice-svcs:ServiceNetworkArn": svc.sn["arn"]}}),
        allow("/principal-tag", {"StringEquals": {"aws:PrincipalTag/team": "rates"}}),
        allow("/principal-arn", {"ArnLike": {"aws:PrincipalArn": role["Arn"]},
                                 "StringEquals": {"aws:PrincipalAccount": ACCOUNT}}),
        # A client in no VPC (this server is in development mode) has no SourceVpc: a policy that needs
        # it matches nobody (test_client_networks.py has the VPC that matches).
        allow("/vpc", {"StringEquals": {"vpc-lattice-svcs:SourceVpc": "vpc-0123456789abcdef0"}}),
    ]})
    wait_identity(dp_server)
    wait_until_applied(dp_server)
    tagged = session_of(dp_server, role, "tagged", tags=[("team", "rates")])
    untagged = session_of(dp_server, role, "plain")
    cases = [
        ("/header", {"x-team": "rates"}, None, 200),
        ("/header", {"x-team": "other"}, None, 403),
        ("/header", {}, None, 403),
        ("/query?q=a&q=b", {}, None, 200),
        ("/query?q=a", {}, None, 403),
        ("/port", {}, None, 200),
        ("/ip", {}, None, 200),
        ("/tls", {}, None, 403),
        ("/resource-tag", {}, None, 200),
        ("/service", {}, None, 200),
        ("/principal-tag", {}, tagged, 200),
        ("/principal-tag", {}, untagged, 403),
        ("/principal-tag", {}, None, 403),
        ("/principal-arn", {}, untagged, 200),
        ("/principal-arn", {}, None, 403),
        ("/vpc", {}, None, 403),
    ]
    for path, headers, creds, status in cases:
        r = call(svc, port, path, creds=creds, headers=headers)
        assert r.status == status, (path, headers, creds is not None, r.body)


def test_changes_apply_at_the_next_revision(dp_server, env):
    """An auth policy change applies at the next applied revision; a deactivated key, a deleted
    role and a changed identity policy at the identity index's next revision."""
    lattice, svc = env.lattice, env.svc
    user, key = new_user(dp_server, INVOKE_ANY)
    role = new_role(dp_server, trust(ACCOUNT), INVOKE_ANY)
    wait_identity(dp_server)
    session = session_of(dp_server, role)
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": [user["Arn"], role["Arn"], env.reader["Arn"]]},
        "Action": "vpc-lattice-svcs:Invoke", "Resource": f"{svc.svc['arn']}/rates"}]}
    put_policy(lattice, svc.svc["id"], policy)
    wait_until_applied(dp_server)
    assert call(svc, env.port, creds=creds_of(key)).status == 200
    assert call(svc, env.port, creds=session).status == 200

    # The user's identity policy stops allowing the call.
    iam_cli(dp_server, "put-user-policy", "--user-name", user["UserName"], "--policy-name", "p",
            "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "vpc-lattice-svcs:Invoke", "Resource": "arn:aws:vpc-lattice:*:*:service/*/other"}]}))
    wait_identity(dp_server)
    r = call(svc, env.port, creds=creds_of(key))
    assert r.status == 403 and "no identity-based policy" in r.body.decode()
    # The key is deactivated.
    iam_cli(dp_server, "update-access-key", "--user-name", user["UserName"], "--access-key-id", key["AccessKeyId"],
            "--status", "Inactive")
    wait_identity(dp_server)
    r = call(svc, env.port, creds=creds_of(key))
    assert r.status == 403 and r.body.decode().startswith("UnrecognizedClientException")
    # The role is deleted: its sessions stop.
    iam_cli(dp_server, "delete-role-policy", "--role-name", role["RoleName"], "--policy-name", "p")
    iam_cli(dp_server, "delete-role", "--role-name", role["RoleName"])
    wait_identity(dp_server)
    r = call(svc, env.port, creds=session)
    assert r.status == 403 and r.body.decode().startswith("UnrecognizedClientException")
    # The auth policy goes back to naming the reader only.
    put_policy(lattice, svc.svc["id"], {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": env.reader["Arn"]}, "Action": "vpc-lattice-svcs:Invoke",
        "Resource": f"{svc.svc['arn']}/rates",
        "Condition": {"StringEquals": {"vpc-lattice-svcs:RequestMethod": "GET"}}}]})
    wait_until_applied(dp_server)
    assert call(svc, env.port, creds=env.session).status == 200


def test_auth_type_none_examines_nothing(dp_server, dp_lattice, start_backend):
    """With NONE on the service and its network, a signature is neither checked nor turned into
    an identity: the request and its Authorization field reach the target as sent."""
    lattice = dp_lattice
    svc, port, tg = http_service(lattice, start_backend, "auth-none")
    wait_until_applied(dp_server)
    r = call(svc, port, "/x", headers={"Authorization": "Bearer app-token",
                                       "x-amzn-lattice-identity": "Principal=spoofed"})
    assert r.status == 200
    got = r.json()["headers"]
    assert got["authorization"] == "Bearer app-token"
    assert "x-amzn-lattice-identity" not in got


def test_organization_is_the_principals_org(dp_server, dp_lattice, start_backend):
    """`aws organizations create-organization` gives every principal of the account
    `aws:PrincipalOrgID` / `aws:PrincipalOrgPaths`: the launch post's "only my organization"
    network policy denies everyone before the organization exists and admits the account's
    callers after; the target sees the organization in the identity headers."""
    lattice = dp_lattice
    svc, port, tg = http_service(lattice, start_backend, "auth-org", network_auth_type="AWS_IAM")
    user, key = new_user(dp_server, INVOKE_ANY)
    wait_identity(dp_server)
    assert dp_server.cli("describe-organization", service="organizations", check=False).returncode != 0
    org = dp_server.cli("create-organization", "--feature-set", "ALL", service="organizations")["Organization"]
    try:
        wait_identity(dp_server)
        root = dp_server.cli("list-roots", service="organizations")["Roots"][0]
        put_policy(lattice, svc.sn["id"], {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalOrgID": org["Id"]},
                          "ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": f"{org['Id']}/{root['Id']}/*"}}}]})
        wait_until_applied(dp_server)
        r = call(svc, port, "/x", creds=creds_of(key))
        assert r.status == 200, r.body
        identity = map_header(r.json()["headers"]["x-amzn-lattice-identity"])
        assert identity["PrincipalOrgID"] == org["Id"]
        assert identity["PrincipalOrgPath"] == f"{org['Id']}/{root['Id']}/"
        assert call(svc, port, "/x").status == 403
    finally:
        dp_server.cli("delete-organization", service="organizations")
    # Without the organization, nobody is a member any more.
    wait_identity(dp_server)
    r = call(svc, port, "/x", creds=creds_of(key))
    assert r.status == 403 and "no network-based policy" in r.body.decode()
