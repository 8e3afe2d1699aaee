//! SigV4 verification over arbitrary requests: the Authorization header and presigned-query
//! parsers, the canonicaliser and the verify round, with a fixed key pair and clock.
//!
//! The input is a request as AWS's test suite prints it (`METHOD TARGET HTTP/1.1`, then
//! `Name:value` lines, a blank line and the body), so the corpus can hold real signed requests
//! that verify, and mutations start from there. Invariants beyond "no panic":
//! * `verify` and `verify_with_cache` agree on every input (the crate documents it), and a second
//!   cached verification (a cache hit) agrees too;
//! * a verified request names the fixed key and signs `host`;
//! * a verified request no longer verifies with another method (the method is always signed).
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use sha2::Digest;
use trellis_sigv4::{KeyCache, VerifyOptions, verify, verify_with_cache};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Method, target, headers and body of the suite's text form; `None` when `http` cannot carry
/// the request (the server would never see it either).
fn parse(text: &str) -> Option<(http::request::Parts, Vec<u8>)> {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let mut words = lines.next()?.split(' ');
    let (method, target) = (words.next()?, words.next()?);
    let mut builder = http::Request::builder().method(method).uri(target);
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        builder = builder.header(name, value.trim_matches([' ', '\t']));
    }
    let (parts, ()) = builder.body(()).ok()?.into_parts();
    Some((parts, body.as_bytes().to_vec()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((mut parts, body)) = parse(text) else {
        return;
    };
    let payload = hex::encode(sha2::Sha256::digest(&body));
    let lookup = HashMap::from([(AKID.to_owned(), SECRET.to_owned())]);
    // The suite's signing time: its vectors verify unmodified.
    let now = time::macros::datetime!(2015-08-30 12:36:00 UTC);
    let opts = VerifyOptions::new("service", now);

    let plain = verify(&parts, &payload, &lookup, &opts);
    let cache = KeyCache::new(4);
    let cached = verify_with_cache(&parts, &payload, &lookup, &opts, &cache);
    let hit = verify_with_cache(&parts, &payload, &lookup, &opts, &cache);
    assert_eq!(format!("{plain:?}"), format!("{cached:?}"));
    assert_eq!(format!("{plain:?}"), format!("{hit:?}"));

    if let Ok(verified) = plain {
        assert_eq!(verified.access_key_id, AKID);
        assert!(verified.signed_headers.iter().any(|h| h == "host"));
        let other = if parts.method == http::Method::PATCH {
            http::Method::PUT
        } else {
            http::Method::PATCH
        };
        parts.method = other;
        assert!(
            verify(&parts, &payload, &lookup, &opts).is_err(),
            "a verified signature survived a change of method"
        );
    }
});
