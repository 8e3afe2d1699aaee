//! Verifies AWS's published SigV4A test-suite vectors (awslabs/aws-c-auth,
//! `tests/aws-signing-test-suite/v4a/`, copied into `fixtures/v4a/`; see the README there).
//!
//! For every case the test checks that:
//! * the public key derived from the case's credentials is the one in `public-key.json`;
//! * the signed request (`header-signed-request.txt`, `query-signed-request.txt`) verifies at the
//!   case's signing time, and so does the same request carrying the suite's other signature
//!   (`header-signature.txt`, `query-signature.txt`): ECDSA signatures are randomized, so the
//!   suite's signatures are verified, never recomputed and compared;
//! * with a wrong (but well-formed) signature, the canonical request and string to sign the
//!   verifier reports equal the suite's `header-canonical-request.txt` /
//!   `header-string-to-sign.txt` (and, for the presigned form, `query-canonical-request.txt` up
//!   to its payload-hash line; see `query_canonical_requests_match`).
//!
//! A verified ECDSA signature already proves that the verifier rebuilt the suite's string to sign
//! byte for byte; the comparisons make a failure readable.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::parse_request;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use trellis_sigv4::{SigV4Error, Verified, VerifyOptions, derive_sigv4a_public_key, verify};

/// Cases whose requests cannot be handed to a server as printed: obs-folded header lines cannot
/// be an `http::HeaderValue`, and a raw space cannot be in a request target.
const UNREPRESENTABLE: &[&str] = &[
    "get-header-value-multiline",
    "get-space-normalized",
    "get-space-unnormalized",
];

const MISMATCH: &str = "InvalidSignatureException";
const INCOMPLETE: &str = "IncompleteSignatureException";

/// Where Trellis deliberately answers differently from the suite: (case, form, AWS error code).
const DEPARTURES: &[(&str, &str, &str)] = &[
    // `normalize: false` cases are signed over the path as sent (S3's rule); Trellis, like AWS's
    // other services, normalises the path, so these signatures cannot match.
    ("get-relative-relative-unnormalized", "header", MISMATCH),
    ("get-relative-relative-unnormalized", "query", MISMATCH),
    ("get-relative-unnormalized", "header", MISMATCH),
    ("get-relative-unnormalized", "query", MISMATCH),
    ("get-slash-dot-slash-unnormalized", "header", MISMATCH),
    ("get-slash-dot-slash-unnormalized", "query", MISMATCH),
    ("get-slash-pointless-dot-unnormalized", "header", MISMATCH),
    ("get-slash-pointless-dot-unnormalized", "query", MISMATCH),
    ("get-slash-unnormalized", "header", MISMATCH),
    ("get-slash-unnormalized", "query", MISMATCH),
    ("get-slashes-unnormalized", "header", MISMATCH),
    ("get-slashes-unnormalized", "query", MISMATCH),
    // The session token was added after signing (`omit_session_token`), which Trellis refuses
    // for SigV4 too (tests/fixtures/aws_suite_vectors.rs): as an unsigned header it could be
    // swapped for another session's, and in a presigned query every parameter is signed.
    ("post-sts-header-after", "header", INCOMPLETE),
    ("post-sts-header-after", "query", MISMATCH),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v4a")
}

/// One case directory, with the files this test reads.
struct Case {
    name: String,
    dir: PathBuf,
    context: serde_json::Value,
}

impl Case {
    fn read(&self, file: &str) -> Option<String> {
        fs::read_to_string(self.dir.join(file)).ok()
    }

    fn access_key_id(&self) -> &str {
        self.context["credentials"]["access_key_id"]
            .as_str()
            .unwrap()
    }

    fn secret(&self) -> &str {
        self.context["credentials"]["secret_access_key"]
            .as_str()
            .unwrap()
    }

    fn region(&self) -> &str {
        self.context["region"].as_str().unwrap()
    }

    fn service(&self) -> &str {
        self.context["service"].as_str().unwrap()
    }

    fn options(&self) -> VerifyOptions<'_> {
        let now = OffsetDateTime::parse(self.context["timestamp"].as_str().unwrap(), &Rfc3339)
            .expect("context timestamp");
        VerifyOptions {
            service: self.service(),
            region: Some(self.region()),
            now,
            max_skew: trellis_sigv4::DEFAULT_MAX_SKEW,
        }
    }

    fn lookup(&self) -> HashMap<String, String> {
        HashMap::from([(self.access_key_id().to_owned(), self.secret().to_owned())])
    }

    fn verify(&self, request: &str) -> Result<Verified, SigV4Error> {
        let (parts, body) = parse_request(request);
        verify(&parts, &sha256_hex(&body), &self.lookup(), &self.options())
    }

    fn departure(&self, form: &str) -> Option<&'static str> {
        DEPARTURES
            .iter()
            .find(|(name, f, _)| *name == self.name && *f == form)
            .map(|(_, _, code)| *code)
    }
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = fs::read_dir(fixtures())
        .expect("fixtures/v4a")
        .map(|entry| entry.unwrap().path())
        .filter(|dir| dir.is_dir())
        .map(|dir| {
            let context = fs::read_to_string(dir.join("context.json")).expect("context.json");
            Case {
                name: dir.file_name().unwrap().to_string_lossy().into_owned(),
                context: serde_json::from_str(&context).expect("context.json is JSON"),
                dir,
            }
        })
        .filter(|case| !UNREPRESENTABLE.contains(&case.name.as_str()))
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

fn sha256_hex(body: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(body))
}

/// The request with the value after `marker` (up to the next `,`, `&`, space or newline)
/// replaced by `signature`.
fn with_signature(request: &str, marker: &str, signature: &str) -> String {
    let start = request.find(marker).expect("signature marker") + marker.len();
    let end = request[start..]
        .find([',', '&', ' ', '\n'])
        .map_or(request.len(), |i| start + i);
    let mut out = request.to_owned();
    out.replace_range(start..end, signature.trim());
    out
}

/// The two places a case signs: (form, signed request file, standalone signature file, marker).
const FORMS: &[(&str, &str, &str, &str)] = &[
    (
        "header",
        "header-signed-request.txt",
        "header-signature.txt",
        "Signature=",
    ),
    (
        "query",
        "query-signed-request.txt",
        "query-signature.txt",
        "X-Amz-Signature=",
    ),
];

#[test]
fn derived_public_keys_match_the_suite() {
    let mut checked = 0;
    for case in cases() {
        let Some(json) = case.read("public-key.json") else {
            continue;
        };
        let expected: serde_json::Value = serde_json::from_str(&json).unwrap();
        let key = derive_sigv4a_public_key(case.access_key_id(), case.secret()).unwrap();
        assert_eq!(key[0], 0x04, "{}", case.name);
        assert_eq!(
            hex::encode(&key[1..33]),
            expected["X"].as_str().unwrap().to_ascii_lowercase(),
            "{}: X",
            case.name
        );
        assert_eq!(
            hex::encode(&key[33..]),
            expected["Y"].as_str().unwrap().to_ascii_lowercase(),
            "{}: Y",
            case.name
        );
        checked += 1;
    }
    assert!(checked >= 35, "only {checked} public keys checked");
}

#[test]
fn suite_signatures_verify() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases() {
        for &(form, request_file, signature_file, marker) in FORMS {
            let Some(request) = case.read(request_file) else {
                continue;
            };
            let signature = case.read(signature_file).expect("signature file");
            let requests = [
                ("as signed", request.clone()),
                (signature_file, with_signature(&request, marker, &signature)),
            ];
            for (variant, request) in requests {
                checked += 1;
                let what = format!("{} ({form}, {variant})", case.name);
                match (case.departure(form), case.verify(&request)) {
                    (None, Ok(verified)) => {
                        let ok = verified.access_key_id == case.access_key_id()
                            && verified.region == case.region()
                            && verified.service == case.service()
                            && verified.presigned == (form == "query")
                            && verified.region_set.as_deref()
                                == Some(&[case.region().to_owned()][..])
                            && verified.covers_region(case.region())
                            && !verified.covers_region("eu-west-1");
                        if !ok {
                            failures.push(format!("{what}: unexpected identity {verified:?}"));
                        }
                    }
                    (None, Err(e)) => failures.push(format!("{what}: rejected: {e:?}")),
                    (Some(code), Err(e)) if e.aws_code() == code => {}
                    (Some(code), outcome) => {
                        failures.push(format!("{what}: expected {code}, got {outcome:?}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Guards against the fixture set silently shrinking (35 cases, two forms, two signatures).
    assert!(checked >= 140, "only {checked} signed requests checked");
}

/// The verifier redacts session tokens in the canonical request it reports; do the same to the
/// suite's expectation.
fn redact_token(canonical: &str) -> String {
    canonical
        .lines()
        .map(|line| {
            if line.starts_with("x-amz-security-token:") {
                "x-amz-security-token:** REDACTED **".to_owned()
            } else if line.contains("X-Amz-Security-Token=") {
                let start = line.find("X-Amz-Security-Token=").unwrap() + 21;
                let end = line[start..].find('&').map_or(line.len(), |i| start + i);
                format!(
                    "{}%2A%2A%20REDACTED%20%2A%2A{}",
                    &line[..start],
                    &line[end..]
                )
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The mismatch a request with a wrong but well-formed signature produces: the verifier's
/// canonical request and string to sign. The signature is the suite's with the last hex digit of
/// `s` changed, so it is still DER with in-range scalars, just not a signature of this string.
fn mismatch(case: &Case, request: &str, marker: &str) -> Result<(String, String), String> {
    let start = request.find(marker).expect("signature marker") + marker.len();
    let end = request[start..]
        .find([',', '&', ' ', '\n'])
        .map_or(request.len(), |i| start + i);
    let mut wrong = request[start..end].to_owned();
    let last = wrong.pop().expect("a signature");
    wrong.push(if last == '0' { '1' } else { '0' });
    match case.verify(&with_signature(request, marker, &wrong)) {
        Err(SigV4Error::SignatureDoesNotMatch {
            canonical_request,
            string_to_sign,
        }) => Ok((canonical_request, string_to_sign)),
        other => Err(format!("{}: expected a mismatch, got {other:?}", case.name)),
    }
}

#[test]
fn header_canonical_requests_match() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases() {
        let (Some(request), Some(creq), Some(sts)) = (
            case.read("header-signed-request.txt"),
            case.read("header-canonical-request.txt"),
            case.read("header-string-to-sign.txt"),
        ) else {
            continue;
        };
        if case.departure("header").is_some() {
            continue;
        }
        checked += 1;
        match mismatch(&case, &request, "Signature=") {
            Ok((canonical_request, string_to_sign)) => {
                let expected = redact_token(creq.trim_end_matches('\n'));
                if canonical_request != expected {
                    failures.push(format!(
                        "{}: canonical request\n--- expected\n{expected}\n--- actual\n{canonical_request}",
                        case.name
                    ));
                }
                if string_to_sign != sts.trim_end_matches('\n') {
                    failures.push(format!(
                        "{}: string to sign\n--- expected\n{sts}\n--- actual\n{string_to_sign}",
                        case.name
                    ));
                }
            }
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 28, "only {checked} canonical requests checked");
}

/// For a presigned request with no declared payload hash the verifier accepts both
/// `UNSIGNED-PAYLOAD` and the body's digest, and reports a mismatch against the first; the suite
/// signs the body's digest. So the reported canonical request is compared up to its last line.
#[test]
fn query_canonical_requests_match() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases() {
        let (Some(request), Some(creq)) = (
            case.read("query-signed-request.txt"),
            case.read("query-canonical-request.txt"),
        ) else {
            continue;
        };
        if case.departure("query").is_some() {
            continue;
        }
        checked += 1;
        let without_payload_hash = |creq: &str| {
            let creq = creq.trim_end_matches('\n');
            creq[..creq.rfind('\n').unwrap()].to_owned()
        };
        match mismatch(&case, &request, "X-Amz-Signature=") {
            Ok((canonical_request, string_to_sign)) => {
                let expected = redact_token(&without_payload_hash(&creq));
                let actual = without_payload_hash(&canonical_request);
                if actual != expected {
                    failures.push(format!(
                        "{}: canonical request\n--- expected\n{expected}\n--- actual\n{actual}",
                        case.name
                    ));
                }
                let expected_scope = format!("/{}/aws4_request\n", case.service());
                if !string_to_sign.starts_with("AWS4-ECDSA-P256-SHA256\n20150830T123600Z\n")
                    || !string_to_sign.contains(&expected_scope)
                {
                    failures.push(format!("{}: string to sign {string_to_sign}", case.name));
                }
            }
            Err(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 28, "only {checked} canonical requests checked");
}
