//! Lattice's LAMBDA targets, response side: a function's result → the HTTP response
//! (`trellis_lambda_event::lattice::{parse_response, response}`).
//!
//! Every input is used twice: as a raw result payload (and as a function's error document), and
//! as the description of a well-formed result that must round-trip. Invariants beyond "no panic":
//! * a function error never becomes a response;
//! * a well-formed result keeps its status, its body (text or base64) byte for byte, and each
//!   header's values in order, except the hop-by-hop fields and `Content-Length` it drops; a name
//!   in both header maps takes the `multiValueHeaders` values.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, json};
use trellis_lambda_event::InvokeOutcome;
use trellis_lambda_event::lattice::{parse_response, response};

const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "trailer",
    "content-length",
];

#[derive(Arbitrary, Debug)]
struct Result {
    status: u16,
    body: Vec<u8>,
    base64: bool,
    headers: BTreeMap<Vec<u8>, Vec<u8>>,
    multi: BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
    description: Option<String>,
}

/// A lower-case token (a valid header name) from arbitrary bytes; `None` when empty.
fn name(bytes: &[u8]) -> Option<String> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_!#$%&'*+.^`|~";
    let name: String = bytes
        .iter()
        .map(|b| CHARS[usize::from(*b) % CHARS.len()] as char)
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Visible ASCII and spaces: any such string is a valid `HeaderValue`.
fn value(bytes: &[u8]) -> String {
    let v: String = bytes.iter().map(|b| char::from(0x20 + b % 0x5f)).collect();
    v
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_response(data);
    let outcome = InvokeOutcome {
        status: 200,
        payload: Bytes::copy_from_slice(data),
        function_error: Some("Unhandled".to_string()),
        log_tail: None,
        executed_version: None,
    };
    assert!(
        response(Ok(outcome)).is_err(),
        "a function error became a response"
    );

    let Ok(result) = Result::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let status = 200 + result.status % 400;
    let body = if result.base64 {
        base64::engine::general_purpose::STANDARD.encode(&result.body)
    } else {
        String::from_utf8_lossy(&result.body).into_owned()
    };
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut multi = Map::new();
    for (n, values) in result.multi.iter().take(8) {
        let Some(n) = name(n).filter(|n| !multi.contains_key(n)) else {
            continue;
        };
        let values: Vec<String> = values.iter().take(4).map(|v| value(v)).collect();
        expected
            .entry(n.clone())
            .or_default()
            .extend(values.iter().cloned());
        multi.insert(n, json!(values));
    }
    let mut single = Map::new();
    for (n, v) in result.headers.iter().take(8) {
        let Some(n) = name(n).filter(|n| !single.contains_key(n)) else {
            continue;
        };
        let v = value(v);
        // multiValueHeaders wins for a name it gives values; an empty list leaves the name to
        // `headers` (the values decide, as parse_response reads them).
        if expected.get(&n).is_none_or(Vec::is_empty) {
            expected.entry(n.clone()).or_default().push(v.clone());
        }
        single.insert(n, json!(v));
    }
    let mut doc = json!({
        "statusCode": status,
        "body": body,
        "isBase64Encoded": result.base64,
        "headers": single,
        "multiValueHeaders": multi,
    });
    if let Some(description) = &result.description {
        doc["statusDescription"] = json!(description);
    }
    let payload = serde_json::to_vec(&doc).unwrap();
    let response = parse_response(&payload).unwrap_or_else(|e| panic!("{doc} was rejected: {e}"));
    assert_eq!(response.status().as_u16(), status);
    let want_body = if result.base64 {
        result.body.clone()
    } else {
        body.into_bytes()
    };
    assert_eq!(response.body().as_ref(), want_body.as_slice());
    for (n, values) in &expected {
        let got: Vec<&[u8]> = response
            .headers()
            .get_all(n.as_str())
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        if DROPPED.contains(&n.as_str()) {
            assert!(got.is_empty(), "{n} was kept");
        } else {
            let want: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
            assert_eq!(got, want, "{n}");
        }
    }
    assert_eq!(
        response.headers().keys_len(),
        expected
            .iter()
            .filter(|(n, values)| !values.is_empty() && !DROPPED.contains(&n.as_str()))
            .count()
    );
});
