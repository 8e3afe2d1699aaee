//! Differential SigV4: requests built from the fuzz input are signed by AWS's own signer
//! (`aws-sigv4`, as the SDKs and the AWS CLI sign) with a fixed key pair, and Trellis's verifier
//! must accept every one of them and report the signer's identity.
//!
//! The generator covers what clients send: any method, paths with percent-encoded bytes, raw
//! sub-delimiters, dot segments and empty segments; queries with repeated keys, empty values,
//! `+` and encoded bytes; repeated and padded headers; bodies hashed, unsigned or declared in
//! `x-amz-content-sha256`; session tokens; presigned URLs; HTTP/1.1 `Host` or HTTP/2
//! `:authority`; signing times up to 14 minutes either side of the server's clock.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_smithy_runtime_api::client::identity::Identity;
use libfuzzer_sys::fuzz_target;
use sha2::Digest;
use trellis_sigv4::{VerifyOptions, verify};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqw+session/token==";
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PURGE",
];
const HEADER_NAMES: &[&str] = &[
    "content-type",
    "x-custom",
    "X-Custom",
    "x-amz-target",
    "accept",
    "user-agent",
    "x-forwarded-for",
    "x-a",
];

#[derive(Arbitrary, Debug)]
enum Segment {
    /// Text, percent-encoded where a path cannot carry it raw. SDKs sign strings, so the
    /// percent-encoded bytes are UTF-8 (aws-sigv4 decodes other bytes to U+FFFD, Trellis keeps
    /// them; docs/fuzzing.md).
    Text(String),
    Dot,
    DotDot,
    Empty,
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    segments: Vec<Segment>,
    trailing_slash: bool,
    query: Option<Vec<(String, Option<String>)>>,
    headers: Vec<(u8, Vec<u8>)>,
    body: Vec<u8>,
    unsigned_payload: bool,
    content_sha_header: bool,
    token: bool,
    presign: Option<u32>,
    http2: bool,
    /// Seconds between the signing time and the server's clock, folded into ±14 minutes.
    skew: i16,
}

/// Percent-encodes everything but RFC 3986's unreserved characters and the sub-delimiters a
/// path or query may carry raw (`extra`).
fn encode(text: &str, extra: &[u8]) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || extra.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn url(input: &Input) -> String {
    let mut path = String::new();
    for segment in &input.segments {
        path.push('/');
        match segment {
            Segment::Text(bytes) => path.push_str(&encode(bytes, b"!$'()*,;=:@")),
            Segment::Dot => path.push('.'),
            Segment::DotDot => path.push_str(".."),
            Segment::Empty => {}
        }
    }
    if path.is_empty() || input.trailing_slash {
        path.push('/');
    }
    if let Some(query) = &input.query {
        path.push('?');
        let pairs: Vec<String> = query
            .iter()
            // `X-Amz-*` parameters are the presigned form's; an application's own would be
            // refused next to an Authorization header (AWS's "only one auth mechanism").
            .filter(|(k, _)| !k.to_ascii_lowercase().starts_with("x-amz-"))
            .map(|(k, v)| {
                let k = encode(k, b"!$'()*,;:@/?+");
                match v {
                    Some(v) => format!("{k}={}", encode(v, b"!$'()*,;:@/?+=")),
                    None => k,
                }
            })
            .collect();
        path.push_str(&pairs.join("&"));
    }
    format!("https://vpc-lattice.us-west-2.amazonaws.com{path}")
}

fuzz_target!(|input: Input| {
    let now = time::macros::datetime!(2025-03-14 15:09:26 UTC);
    let signed_at = now + time::Duration::seconds(i64::from(input.skew) % 840);
    let method = METHODS[usize::from(input.method) % METHODS.len()];
    let url = url(&input);
    // Printable ASCII values (what an SDK can put in a header); the signer and the verifier
    // both trim and collapse spaces.
    let headers: Vec<(&str, String)> = input
        .headers
        .iter()
        .take(8)
        .map(|(n, v)| {
            let value: String = v.iter().map(|b| char::from(0x20 + b % 0x5f)).collect();
            (HEADER_NAMES[usize::from(*n) % HEADER_NAMES.len()], value)
        })
        .collect();

    let identity: Identity = Credentials::new(
        AKID,
        SECRET,
        input.token.then(|| TOKEN.to_owned()),
        None,
        "fuzz",
    )
    .into();
    let mut settings = SigningSettings::default();
    if input.content_sha_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    if let Some(expires) = input.presign {
        settings.signature_location = SignatureLocation::QueryParams;
        // 900 s to a week (604,800 s), the longest presigned lifetime AWS (and the verifier)
        // accepts; the modulus is one more than the span so that both ends are reachable.
        settings.expires_in = Some(Duration::from_secs(900 + u64::from(expires % 603_901)));
    }
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-west-2")
        .name("vpc-lattice")
        .time(SystemTime::from(signed_at))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    // Only a signed `x-amz-content-sha256` (or a presigned URL) tells the server the payload is
    // unsigned; without it the server must assume the body's hash.
    let unsigned = input.unsigned_payload && (input.content_sha_header || input.presign.is_some());
    let body = if unsigned {
        SignableBody::UnsignedPayload
    } else {
        SignableBody::Bytes(&input.body)
    };
    let Ok(signable) = SignableRequest::new(
        method,
        url.as_str(),
        headers.iter().map(|(k, v)| (*k, v.as_str())),
        body,
    ) else {
        return;
    };
    // The signer refuses some inputs (a URL it cannot parse); nothing to verify then.
    let Ok(output) = sign(signable, &params) else {
        return;
    };
    let (instructions, _signature) = output.into_parts();

    let mut request = http::Request::builder().method(method).uri(&url);
    for (name, value) in &headers {
        request = request.header(*name, value);
    }
    let Ok(mut request) = request.body(()) else {
        return;
    };
    instructions.apply_to_request_http1x(&mut request);
    let (mut parts, ()) = request.into_parts();
    if !input.http2 {
        // HTTP/1.1: an origin-form target and a Host header.
        let authority = parts.uri.authority().unwrap().as_str().to_owned();
        let origin = parts.uri.path_and_query().unwrap().as_str().to_owned();
        parts.uri = origin.parse().unwrap();
        parts
            .headers
            .insert(http::header::HOST, authority.parse().unwrap());
    }

    let payload = hex::encode(sha2::Sha256::digest(&input.body));
    let lookup = HashMap::from([(AKID.to_owned(), SECRET.to_owned())]);
    let opts = VerifyOptions {
        region: Some("us-west-2"),
        ..VerifyOptions::new("vpc-lattice", now)
    };
    match verify(&parts, &payload, &lookup, &opts) {
        Ok(v) => {
            assert_eq!(v.access_key_id, AKID);
            assert_eq!(v.presigned, input.presign.is_some());
            assert_eq!(v.security_token.is_some(), input.token);
            assert_eq!(v.request_time, signed_at);
        }
        Err(e) => panic!("a request signed by aws-sigv4 was rejected: {e:?}\n{parts:?}"),
    }
});
