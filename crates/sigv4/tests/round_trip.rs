//! Round trips against the real `aws-sigv4` signer: varied requests must verify, and every kind
//! of tampering must be rejected with the exact AWS error code.

mod common;

use std::time::Duration;

use common::{AKID, Body, REGION, SERVICE, Spec, TOKEN, expect_code, now, sign_request, verify};
use trellis_sigv4::SigV4Error;

const BASE: &str = "https://vpc-lattice.us-west-2.amazonaws.com";

fn url(path_and_query: &str) -> String {
    format!("{BASE}{path_and_query}")
}

/// Requests that must verify, with a name for the failure message.
fn accepted_cases() -> Vec<(&'static str, Spec)> {
    let json = br#"{"name":"my-service","authType":"AWS_IAM","tags":{"team":"a b&c"}}"#;
    vec![
        ("plain GET", Spec::get(&url("/services"))),
        (
            "query with special characters",
            Spec::get(&url(
                "/services?maxResults=10&nextToken=abc%2Fdef%3D%3D&q=a%20b&plus=a+b&amp=%26%3D%2B\
                 &unicode=%E2%9C%93&tilde=~x&star=%2A&empty=&flag&Upper=1&lower=2&dup=2&dup=1",
            )),
        ),
        (
            "percent-encoded path segments (double encoding)",
            Spec::get(&url(
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-west-2%3A111122223333%3Afunction%3Af/invocations",
            )),
        ),
        (
            "encoded space and unicode in the path",
            Spec::get(&url("/example%20space/%E1%88%B4/")),
        ),
        (
            "dot segments and duplicate slashes",
            Spec::get(&url("/a/./b/../c//d/")),
        ),
        (
            "sub-delimiters left raw in the path",
            Spec::get(&url("/listeners/@x=1;y,z!$'()*")),
        ),
        (
            "several signed headers, repeated and padded",
            Spec::get(&url("/servicenetworks"))
                .header("x-custom", "  first   value ")
                .header("x-custom", "second")
                .header("content-type", "application/json")
                .header("x-amz-target", "Lattice.ListServiceNetworks"),
        ),
        (
            "session token",
            Spec {
                token: Some(TOKEN),
                ..Spec::get(&url("/services"))
            },
        ),
        (
            "JSON body, hashed",
            Spec::post(&url("/services"), json).header("content-type", "application/json"),
        ),
        (
            "JSON body with a signed x-amz-content-sha256 digest",
            Spec {
                content_sha_header: true,
                ..Spec::post(&url("/services"), json)
            },
        ),
        (
            "UNSIGNED-PAYLOAD in a signed x-amz-content-sha256 header (what Lattice requires)",
            Spec {
                content_sha_header: true,
                body_mode: Body::Unsigned,
                ..Spec::post(&url("/services"), json)
            },
        ),
        (
            "presigned URL",
            Spec {
                presign: Some(Duration::from_secs(300)),
                body_mode: Body::Unsigned,
                ..Spec::get(&url("/services?maxResults=5"))
            },
        ),
        (
            "presigned URL over an empty body hash, with a session token",
            Spec {
                presign: Some(Duration::from_secs(900)),
                token: Some(TOKEN),
                ..Spec::get(&url("/services/svc-0123456789abcdef0"))
            },
        ),
        (
            "presigned URL alongside an application's own Authorization header",
            Spec {
                presign: Some(Duration::from_secs(60)),
                ..Spec::get(&url("/orders")).header("authorization", "Bearer app-token")
            },
        ),
        (
            "HTTP/2: host from :authority",
            Spec {
                http2: true,
                ..Spec::get(&url("/services"))
            },
        ),
        (
            "non-default port",
            Spec::get("http://localhost:9460/services?x=1"),
        ),
        (
            "signed 14 minutes ago",
            Spec {
                time: now() - time::Duration::minutes(14),
                ..Spec::get(&url("/services"))
            },
        ),
        (
            "signed 14 minutes in the future",
            Spec {
                time: now() + time::Duration::minutes(14),
                ..Spec::get(&url("/services"))
            },
        ),
        (
            "presigned 6 days ago for 7 days",
            Spec {
                presign: Some(Duration::from_secs(604_800)),
                time: now() - time::Duration::days(6),
                ..Spec::get(&url("/services"))
            },
        ),
    ]
}

#[test]
fn signed_requests_verify() {
    let mut failures = Vec::new();
    for (name, spec) in accepted_cases() {
        let received = sign_request(&spec);
        match verify(&received) {
            Ok(v) => {
                let presigned = spec.presign.is_some();
                let identity_ok = v.access_key_id == AKID
                    && v.region == REGION
                    && v.service == SERVICE
                    && v.presigned == presigned
                    && v.security_token.as_deref() == spec.token
                    && v.request_time == spec.time
                    && v.signed_headers.iter().any(|h| h == "host");
                if !identity_ok {
                    failures.push(format!("{name}: wrong identity {v:?}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn signed_headers_are_reported_in_order() {
    let received = sign_request(
        &Spec::get(&url("/services"))
            .header("x-custom", "a")
            .header("content-type", "application/json"),
    );
    let verified = verify(&received).unwrap();
    assert_eq!(
        verified.signed_headers,
        ["content-type", "host", "x-amz-date", "x-custom"]
    );
}

#[test]
fn unsigned_headers_may_change() {
    // aws-sigv4 never signs user-agent (proxies rewrite it), so changing it must not matter.
    let received = sign_request(&Spec::get(&url("/services")).header("user-agent", "sdk/1"))
        .header("user-agent", "proxy/2");
    verify(&received).unwrap();
}

#[test]
fn unsigned_payload_does_not_cover_the_body() {
    let spec = Spec {
        content_sha_header: true,
        body_mode: Body::Unsigned,
        ..Spec::post(&url("/services"), b"{}")
    };
    let mut received = sign_request(&spec);
    received.body = b"{\"different\":true}".to_vec();
    verify(&received).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Tampering.

const INVALID_SIGNATURE: &str = "InvalidSignatureException";
const MISMATCH_MESSAGE: &str = "The request signature we calculated does not match the signature \
    you provided. Check your AWS Secret Access Key and signing method. Consult the service \
    documentation for details.";

fn expect_mismatch(received: &common::Received) {
    let e = expect_code(verify(received), INVALID_SIGNATURE);
    assert!(
        matches!(e, SigV4Error::SignatureDoesNotMatch { .. }),
        "{e:?}"
    );
    assert_eq!(e.to_string(), MISMATCH_MESSAGE);
    assert_eq!(e.http_status(), 403);
}

#[test]
fn tampered_body_is_rejected() {
    let mut received = sign_request(&Spec::post(&url("/services"), br#"{"name":"a"}"#));
    received.body = br#"{"name":"b"}"#.to_vec();
    expect_mismatch(&received);
}

#[test]
fn tampered_body_with_digest_header_is_a_digest_mismatch() {
    let spec = Spec {
        content_sha_header: true,
        ..Spec::post(&url("/services"), br#"{"name":"a"}"#)
    };
    let mut received = sign_request(&spec);
    received.body = br#"{"name":"b"}"#.to_vec();
    let e = expect_code(verify(&received), "XAmzContentSHA256Mismatch");
    assert_eq!(e.http_status(), 400);
}

#[test]
fn tampered_signed_header_is_rejected() {
    let received =
        sign_request(&Spec::get(&url("/services")).header("x-custom", "a")).header("x-custom", "b");
    expect_mismatch(&received);
}

#[test]
fn removed_signed_header_is_rejected() {
    let mut received = sign_request(&Spec::get(&url("/services")).header("x-custom", "a"));
    received.parts.headers.remove("x-custom");
    expect_mismatch(&received);
}

#[test]
fn tampered_host_is_rejected() {
    let received = sign_request(&Spec::get(&url("/services"))).header("host", "evil.example.com");
    expect_mismatch(&received);
}

#[test]
fn tampered_path_is_rejected() {
    for path in ["/services/x", "/Services", "/services/", "/services%2F"] {
        let received = sign_request(&Spec::get(&url("/services"))).uri(path);
        expect_mismatch(&received);
    }
}

#[test]
fn tampered_query_is_rejected() {
    for query in [
        "/services?maxResults=11",
        "/services?maxResults=10&extra=1",
        "/services",
        "/services?maxresults=10",
    ] {
        let received = sign_request(&Spec::get(&url("/services?maxResults=10"))).uri(query);
        expect_mismatch(&received);
    }
}

#[test]
fn tampered_presigned_query_is_rejected() {
    let spec = Spec {
        presign: Some(Duration::from_secs(300)),
        ..Spec::get(&url("/services?maxResults=10"))
    };
    let received = sign_request(&spec);
    let tampered = received
        .parts
        .uri
        .to_string()
        .replace("maxResults=10", "maxResults=99");
    expect_mismatch(&received.uri(&tampered));

    // Stretching the lifetime is tampering too.
    let received = sign_request(&spec);
    let tampered = received
        .parts
        .uri
        .to_string()
        .replace("X-Amz-Expires=300", "X-Amz-Expires=3000");
    expect_mismatch(&received.uri(&tampered));
}

#[test]
fn tampered_method_is_rejected() {
    let mut received = sign_request(&Spec::get(&url("/services")));
    received.parts.method = http::Method::DELETE;
    expect_mismatch(&received);
}

#[test]
fn tampered_security_token_is_rejected() {
    let spec = Spec {
        token: Some(TOKEN),
        ..Spec::get(&url("/services"))
    };
    let received = sign_request(&spec).header("x-amz-security-token", "another-session");
    expect_mismatch(&received);
}

#[test]
fn wrong_secret_is_rejected() {
    let spec = Spec {
        secret: "not-the-secret-on-file",
        ..Spec::get(&url("/services"))
    };
    expect_mismatch(&sign_request(&spec));
}

#[test]
fn unknown_access_key_is_rejected() {
    let spec = Spec {
        access_key_id: "AKIDUNKNOWN",
        ..Spec::get(&url("/services"))
    };
    let e = expect_code(verify(&sign_request(&spec)), "UnrecognizedClientException");
    assert_eq!(
        e.to_string(),
        "The security token included in the request is invalid."
    );
    assert_eq!(e.http_status(), 403);
}

#[test]
fn expired_request_is_rejected() {
    let spec = Spec {
        time: now() - time::Duration::minutes(16),
        ..Spec::get(&url("/services"))
    };
    let e = expect_code(verify(&sign_request(&spec)), INVALID_SIGNATURE);
    // now() is 20250314T150926Z; the request was signed 16 minutes earlier.
    assert_eq!(
        e.to_string(),
        "Signature expired: 20250314T145326Z is now earlier than 20250314T145426Z \
         (20250314T150926Z - 15 min.)"
    );
}

#[test]
fn future_request_is_rejected() {
    let spec = Spec {
        time: now() + time::Duration::minutes(16),
        ..Spec::get(&url("/services"))
    };
    let e = expect_code(verify(&sign_request(&spec)), INVALID_SIGNATURE);
    assert_eq!(
        e.to_string(),
        "Signature not yet current: 20250314T152526Z is still later than 20250314T152426Z \
         (20250314T150926Z + 15 min.)"
    );
}

#[test]
fn expired_presigned_url_is_rejected() {
    let spec = Spec {
        presign: Some(Duration::from_secs(300)),
        time: now() - time::Duration::seconds(301),
        ..Spec::get(&url("/services"))
    };
    let e = expect_code(verify(&sign_request(&spec)), INVALID_SIGNATURE);
    assert!(matches!(e, SigV4Error::SignatureExpired { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "Signature expired: 20250314T150425Z is now earlier than 20250314T150426Z \
         (20250314T150926Z - 5 min.)"
    );

    // One second younger and it is still valid: the bound is inclusive.
    let spec = Spec {
        time: now() - time::Duration::seconds(300),
        ..spec
    };
    verify(&sign_request(&spec)).unwrap();
}

#[test]
fn presigned_url_lifetime_is_capped_at_a_week() {
    let spec = Spec {
        presign: Some(Duration::from_secs(604_801)),
        ..Spec::get(&url("/services"))
    };
    let e = expect_code(verify(&sign_request(&spec)), "IncompleteSignatureException");
    assert_eq!(
        e.to_string(),
        "X-Amz-Expires must be less than a week (in seconds) that is 604800"
    );
}

#[test]
fn wrong_service_is_rejected() {
    let spec = Spec {
        service: "execute-api",
        ..Spec::get(&url("/services"))
    };
    let e = expect_code(verify(&sign_request(&spec)), INVALID_SIGNATURE);
    assert_eq!(
        e.to_string(),
        "Credential should be scoped to correct service: 'vpc-lattice'."
    );
}

#[test]
fn wrong_region_is_rejected() {
    let spec = Spec {
        region: "eu-west-1",
        ..Spec::get(&url("/services"))
    };
    let e = expect_code(verify(&sign_request(&spec)), INVALID_SIGNATURE);
    assert_eq!(
        e.to_string(),
        "Credential should be scoped to a valid region, not 'eu-west-1'."
    );
}

#[test]
fn any_region_is_accepted_when_none_is_configured() {
    let spec = Spec {
        region: "eu-west-1",
        ..Spec::get(&url("/services"))
    };
    let received = sign_request(&spec);
    let options = trellis_sigv4::VerifyOptions {
        region: None,
        ..common::options()
    };
    let verified = trellis_sigv4::verify(
        &received.parts,
        &common::sha256_hex(&received.body),
        &common::keys(),
        &options,
    )
    .unwrap();
    assert_eq!(verified.region, "eu-west-1");
}

#[test]
fn credential_date_must_match_request_date() {
    // Signed just before midnight; the date header is then moved past midnight (still within
    // the skew), so the scope's date no longer matches.
    let signed_at = time::macros::datetime!(2025-03-14 23:59:50 UTC);
    let spec = Spec {
        time: signed_at,
        ..Spec::get(&url("/services"))
    };
    let received = sign_request(&spec).header("x-amz-date", "20250315T000005Z");
    let options = trellis_sigv4::VerifyOptions {
        now: signed_at,
        ..common::options()
    };
    let e = trellis_sigv4::verify(
        &received.parts,
        &common::sha256_hex(&[]),
        &common::keys(),
        &options,
    )
    .unwrap_err();
    assert_eq!(e.aws_code(), INVALID_SIGNATURE);
    assert_eq!(
        e.to_string(),
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
         HTTP: '20250314' != '20250315', from '20250315T000005Z'."
    );
}

#[test]
fn missing_authentication_is_reported() {
    let received = common::Received {
        parts: http::Request::get("/services")
            .header("host", "vpc-lattice.us-west-2.amazonaws.com")
            .body(())
            .unwrap()
            .into_parts()
            .0,
        body: Vec::new(),
    };
    let e = expect_code(verify(&received), "MissingAuthenticationTokenException");
    assert_eq!(e.to_string(), "Missing Authentication Token");
    assert_eq!(e.http_status(), 403);
}

#[test]
fn foreign_authorization_scheme_is_incomplete() {
    let received = sign_request(&Spec::get(&url("/services")))
        .header("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig");
    let e = expect_code(verify(&received), "IncompleteSignatureException");
    // x-amz-date is present, so only the three parameters are reported missing.
    assert_eq!(
        e.to_string(),
        "Authorization header requires 'Credential' parameter. Authorization header requires \
         'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. \
         Authorization=Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"
    );
}

#[test]
fn malformed_authorization_parameters_are_incomplete() {
    let received = sign_request(&Spec::get(&url("/services")));
    let original = received.parts.headers["authorization"]
        .to_str()
        .unwrap()
        .to_owned();

    // A space inside the credential (a classic copy-paste accident).
    let broken = original.replace("Credential=AKIDEXAMPLE/", "Credential=AKIDEXAMPLE /");
    let e = expect_code(
        verify(&sign_request(&Spec::get(&url("/services"))).header("authorization", &broken)),
        "IncompleteSignatureException",
    );
    assert_eq!(
        e.to_string(),
        format!(
            "'/{}/{REGION}/{SERVICE}/aws4_request' not a valid key=value pair (missing \
             equal-sign) in Authorization header: '{broken}'.",
            &common::now().date().to_string().replace('-', "")
        )
    );

    // A missing date header is reported alongside nothing else.
    let mut received = sign_request(&Spec::get(&url("/services")));
    received.parts.headers.remove("x-amz-date");
    let e = expect_code(verify(&received), "IncompleteSignatureException");
    assert!(
        e.to_string().starts_with(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        ),
        "{e}"
    );

    // A malformed date.
    let received =
        sign_request(&Spec::get(&url("/services"))).header("x-amz-date", "2025-03-14T15:09:26Z");
    let e = expect_code(verify(&received), "IncompleteSignatureException");
    assert!(
        e.to_string()
            .starts_with("Date must be in ISO-8601 'basic format'"),
        "{e}"
    );

    // A credential with four elements.
    let broken = original.replace("/vpc-lattice/", "/");
    let e = expect_code(
        verify(&sign_request(&Spec::get(&url("/services"))).header("authorization", &broken)),
        "IncompleteSignatureException",
    );
    assert!(
        e.to_string().contains("exactly 5 slash-delimited elements"),
        "{e}"
    );
}

#[test]
fn host_must_be_signed() {
    let spec = Spec {
        also_excluded: vec!["host"],
        ..Spec::get(&url("/services"))
    };
    let e = expect_code(verify(&sign_request(&spec)), "IncompleteSignatureException");
    assert_eq!(
        e.to_string(),
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
    );
}

#[test]
fn security_token_header_must_be_signed() {
    let spec = Spec {
        token: Some(TOKEN),
        token_unsigned: true,
        ..Spec::get(&url("/services"))
    };
    let received = sign_request(&spec);
    assert!(received.parts.headers.contains_key("x-amz-security-token"));
    expect_code(verify(&received), "IncompleteSignatureException");
}

#[test]
fn other_aws4_algorithms_are_reported_as_unsupported() {
    // SigV4A is supported (tests/sigv4a.rs); any other AWS4 variant gets a precise error.
    let received = sign_request(&Spec::get(&url("/services"))).header(
        "authorization",
        "AWS4-HMAC-SHA512 Credential=AKIDEXAMPLE/20250314/us-west-2/vpc-lattice/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature=3045",
    );
    let e = expect_code(verify(&received), "IncompleteSignatureException");
    assert!(
        matches!(&e, SigV4Error::UnsupportedAlgorithm { algorithm } if algorithm == "AWS4-HMAC-SHA512"),
        "{e:?}"
    );
}

#[test]
fn two_signatures_are_ambiguous() {
    let header_signed = sign_request(&Spec::get(&url("/services")));
    let authorization = header_signed.parts.headers["authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    let spec = Spec {
        presign: Some(Duration::from_secs(300)),
        ..Spec::get(&url("/services"))
    };
    let received = sign_request(&spec).header("authorization", &authorization);
    expect_code(verify(&received), "IncompleteSignatureException");
}

#[test]
fn incomplete_presigned_parameters_are_reported() {
    let spec = Spec {
        presign: Some(Duration::from_secs(300)),
        ..Spec::get(&url("/services"))
    };
    let received = sign_request(&spec);
    let uri = received.parts.uri.to_string();
    let start = uri.find("X-Amz-SignedHeaders=").unwrap();
    let end = uri[start..].find('&').map_or(uri.len(), |i| start + i + 1);
    let stripped = format!("{}{}", &uri[..start], &uri[end..]);
    let e = expect_code(
        verify(&received.uri(stripped.trim_end_matches('&'))),
        "IncompleteSignatureException",
    );
    assert!(
        e.to_string()
            .starts_with("AWS query-string parameters must include 'X-Amz-Algorithm'"),
        "{e}"
    );
}

#[test]
fn corrupted_signatures_are_mismatches_not_panics() {
    let received = sign_request(&Spec::get(&url("/services")));
    let original = received.parts.headers["authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    let (prefix, _) = original.split_once("Signature=").unwrap();
    for signature in ["", "00", "zz", &"a".repeat(64), &"A".repeat(200)] {
        let value = format!("{prefix}Signature={signature}");
        let received = sign_request(&Spec::get(&url("/services"))).header("authorization", &value);
        let result = verify(&received);
        assert!(result.is_err(), "signature {signature:?} verified");
    }
    // Hex case is not significant.
    let upper = original.replace(
        original.split_once("Signature=").unwrap().1,
        &original.split_once("Signature=").unwrap().1.to_uppercase(),
    );
    verify(&sign_request(&Spec::get(&url("/services"))).header("authorization", &upper)).unwrap();
}
