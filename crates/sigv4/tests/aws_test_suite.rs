//! Verifies AWS's published SigV4 test-suite vectors, in both the header and the presigned form.
//!
//! The vectors live in `fixtures/aws_suite_vectors.rs` (with their provenance). For every vector
//! this test checks that the signed request verifies at the vector's signing time, and, for the
//! header form, that a corrupted signature is rejected with exactly the canonical request and
//! string to sign the suite publishes, which pins the canonicalisation itself rather than only
//! the final HMAC.

use std::collections::HashMap;

use time::PrimitiveDateTime;
use trellis_sigv4::{SigV4Error, VerifyOptions, verify};

mod common;
#[path = "fixtures/aws_suite_vectors.rs"]
mod vectors;

use common::parse_request;

/// Signing parameters of a vector (the suite's `context.json`).
pub(crate) struct Context {
    pub(crate) time: &'static str,
    pub(crate) region: &'static str,
    pub(crate) service: &'static str,
    pub(crate) access_key_id: &'static str,
    pub(crate) secret: &'static str,
}

pub(crate) const DEFAULT_CONTEXT: Context = Context {
    time: "20150830T123600Z",
    region: "us-east-1",
    service: "service",
    access_key_id: "AKIDEXAMPLE",
    secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

/// One suite vector. `*_expect` is `None` when the request must verify, or the AWS error code
/// Trellis must answer with where it deliberately departs from the vector (see the fixture).
pub(crate) struct Vector {
    pub(crate) name: &'static str,
    pub(crate) context: Context,
    pub(crate) header_request: &'static str,
    pub(crate) header_canonical_request: Option<&'static str>,
    pub(crate) header_string_to_sign: Option<&'static str>,
    pub(crate) query_request: Option<&'static str>,
    pub(crate) header_expect: Option<&'static str>,
    pub(crate) query_expect: Option<&'static str>,
}

fn sha256_hex(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(body))
}

fn options(context: &Context) -> VerifyOptions<'static> {
    let now = PrimitiveDateTime::parse(
        context.time,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .expect("vector time")
    .assume_utc();
    VerifyOptions {
        service: context.service,
        region: Some(context.region),
        now,
        max_skew: trellis_sigv4::DEFAULT_MAX_SKEW,
    }
}

fn lookup(context: &Context) -> HashMap<String, String> {
    HashMap::from([(context.access_key_id.to_owned(), context.secret.to_owned())])
}

/// Runs one form of one vector; returns a description of the problem, if any.
fn check(
    vector: &Vector,
    form: &str,
    request: &str,
    expect: Option<&str>,
    presigned: bool,
) -> Option<String> {
    let (parts, body) = parse_request(request);
    let result = verify(
        &parts,
        &sha256_hex(&body),
        &lookup(&vector.context),
        &options(&vector.context),
    );
    match (expect, result) {
        (None, Ok(verified)) => {
            let ok = verified.access_key_id == vector.context.access_key_id
                && verified.region == vector.context.region
                && verified.service == vector.context.service
                && verified.presigned == presigned
                && verified.signed_headers.iter().any(|h| h == "host");
            (!ok).then(|| format!("{} ({form}): unexpected identity {verified:?}", vector.name))
        }
        (None, Err(e)) => Some(format!("{} ({form}): rejected: {e:?}", vector.name)),
        (Some(code), Err(e)) if e.aws_code() == code => None,
        (Some(code), outcome) => Some(format!(
            "{} ({form}): expected {code}, got {outcome:?}",
            vector.name
        )),
    }
}

#[test]
fn suite_vectors_verify() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for vector in vectors::VECTORS {
        checked += 1;
        failures.extend(check(
            vector,
            "header",
            vector.header_request,
            vector.header_expect,
            false,
        ));
        if let Some(query_request) = vector.query_request {
            checked += 1;
            failures.extend(check(
                vector,
                "query",
                query_request,
                vector.query_expect,
                true,
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Guards against the table silently shrinking.
    assert!(checked >= 70, "only {checked} vector forms checked");
}

/// Replaces the last hex digit of the `Signature=` in an Authorization header line.
fn corrupt_signature(request: &str) -> String {
    let start = request.find("Signature=").expect("header form") + "Signature=".len();
    let end = start + 64;
    let mut out = request.to_owned();
    let last = &request[end - 1..end];
    out.replace_range(end - 1..end, if last == "0" { "1" } else { "0" });
    out
}

/// The verifier redacts session tokens in the canonical request it reports; do the same to the
/// suite's expectation.
fn redact_token(canonical: &str) -> String {
    canonical
        .lines()
        .map(|line| {
            if line.starts_with("x-amz-security-token:") {
                "x-amz-security-token:** REDACTED **".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn suite_canonical_requests_match() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for vector in vectors::VECTORS {
        let (Some(expected_creq), Some(expected_sts)) = (
            vector.header_canonical_request,
            vector.header_string_to_sign,
        ) else {
            continue;
        };
        checked += 1;
        let (parts, body) = parse_request(&corrupt_signature(vector.header_request));
        let result = verify(
            &parts,
            &sha256_hex(&body),
            &lookup(&vector.context),
            &options(&vector.context),
        );
        match result {
            Err(SigV4Error::SignatureDoesNotMatch {
                canonical_request,
                string_to_sign,
            }) => {
                if canonical_request != redact_token(expected_creq.trim_end_matches('\n')) {
                    failures.push(format!(
                        "{}: canonical request\n--- expected\n{expected_creq}\n--- actual\n{canonical_request}",
                        vector.name
                    ));
                }
                if string_to_sign != expected_sts.trim_end_matches('\n') {
                    failures.push(format!(
                        "{}: string to sign\n--- expected\n{expected_sts}\n--- actual\n{string_to_sign}",
                        vector.name
                    ));
                }
            }
            other => failures.push(format!(
                "{}: expected a mismatch, got {other:?}",
                vector.name
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 25, "only {checked} canonical requests checked");
}
