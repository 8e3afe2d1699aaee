//! The two-step verification a server uses to refuse requests before reading their bodies:
//! `precheck` must reject everything the head alone condemns, and `precheck` + `finish` must
//! agree with `verify` on every request.

mod common;

use std::time::Duration;

use common::{AKID, Spec, expect_code, keys, now, options, sha256_hex, sign_request, verify};

const BASE: &str = "https://vpc-lattice.us-west-2.amazonaws.com";

fn two_step(
    received: &common::Received,
) -> Result<trellis_sigv4::Verified, trellis_sigv4::SigV4Error> {
    trellis_sigv4::precheck(&received.parts, &keys(), &options())?.finish(
        &received.parts,
        &sha256_hex(&received.body),
        None,
    )
}

#[test]
fn head_only_failures_are_found_without_the_body() {
    let body = b"{\"name\":\"x\"}";
    let post = || Spec::post(&format!("{BASE}/services"), body);
    // (name, the request as received, the AWS error code)
    let cases = vec![
        (
            "unsigned",
            {
                let mut r = sign_request(&post());
                r.parts.headers.remove(http::header::AUTHORIZATION);
                r
            },
            "MissingAuthenticationTokenException",
        ),
        (
            "unknown access key",
            sign_request(&Spec {
                access_key_id: "AKIDNOBODY",
                ..post()
            }),
            "UnrecognizedClientException",
        ),
        (
            "expired",
            sign_request(&Spec {
                time: now() - Duration::from_secs(3600),
                ..post()
            }),
            "InvalidSignatureException",
        ),
        (
            "wrong service",
            sign_request(&Spec {
                service: "lambda",
                ..post()
            }),
            "InvalidSignatureException",
        ),
        (
            "wrong region",
            sign_request(&Spec {
                region: "eu-west-1",
                ..post()
            }),
            "InvalidSignatureException",
        ),
        (
            "host not signed",
            sign_request(&Spec {
                also_excluded: vec!["host"],
                ..post()
            }),
            "IncompleteSignatureException",
        ),
    ];
    for (name, received, code) in cases {
        let e = trellis_sigv4::precheck(&received.parts, &keys(), &options()).expect_err(name);
        assert_eq!(e.aws_code(), code, "{name}: {e}");
        // verify() says the same, whatever the body.
        expect_code(verify(&received), code);
    }
}

#[test]
fn finishing_agrees_with_verify() {
    let good = sign_request(&Spec::post(&format!("{BASE}/services"), b"{\"a\":1}"));
    let verified = two_step(&good).expect("a correctly signed request verifies in two steps");
    assert_eq!(verified, verify(&good).unwrap());
    assert_eq!(verified.access_key_id, AKID);

    // A changed body passes the precheck (it cannot see the body) and fails when finished.
    let mut tampered = sign_request(&Spec::post(&format!("{BASE}/services"), b"{\"a\":1}"));
    tampered.body = b"{\"a\":2}".to_vec();
    assert!(trellis_sigv4::precheck(&tampered.parts, &keys(), &options()).is_ok());
    expect_code(two_step(&tampered), "InvalidSignatureException");
    expect_code(verify(&tampered), "InvalidSignatureException");
}
