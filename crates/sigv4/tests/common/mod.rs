//! Shared helpers for the integration tests: sign requests with the real `aws-sigv4` signer and
//! hand them to the verifier the way an HTTP server would.

#![allow(dead_code)] // Each test crate uses a different subset.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SessionTokenMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, sign,
};
use aws_smithy_runtime_api::client::identity::Identity;
use sha2::Digest;
use time::OffsetDateTime;
use trellis_sigv4::{SigV4Error, Verified, VerifyOptions};

pub const AKID: &str = "AKIDEXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const SERVICE: &str = "vpc-lattice";
pub const REGION: &str = "us-west-2";
pub const TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqw+session/token==";

/// The server's clock in these tests.
pub fn now() -> OffsetDateTime {
    time::macros::datetime!(2025-03-14 15:09:26 UTC)
}

pub fn sha256_hex(body: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(body))
}

/// How the client signs the body.
#[derive(Clone, Copy, Debug)]
pub enum Body {
    /// Hash the bytes (the default for non-S3 clients).
    Hashed,
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
}

/// Everything about one signing operation; start from [`Spec::get`] or [`Spec::post`] and adjust.
#[derive(Clone, Debug)]
pub struct Spec {
    pub method: &'static str,
    /// Full URL the client signs; its authority becomes the Host header the server sees.
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub body_mode: Body,
    /// Send the body digest in a signed `x-amz-content-sha256` header.
    pub content_sha_header: bool,
    pub access_key_id: &'static str,
    pub secret: &'static str,
    pub token: Option<&'static str>,
    /// Leave the security token out of the signature (some legacy signers do this).
    pub token_unsigned: bool,
    pub region: &'static str,
    pub service: &'static str,
    pub time: OffsetDateTime,
    /// Presign for this long instead of using the Authorization header.
    pub presign: Option<Duration>,
    /// Headers the signer must not sign, on top of aws-sigv4's defaults.
    pub also_excluded: Vec<&'static str>,
    /// Simulate HTTP/2: the host travels as `:authority` (in the URI), with no Host header.
    pub http2: bool,
    /// Sign with SigV4A; `region` is then the region set (`X-Amz-Region-Set`).
    pub sigv4a: bool,
}

impl Spec {
    pub fn get(url: &str) -> Self {
        Self {
            method: "GET",
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            body_mode: Body::Hashed,
            content_sha_header: false,
            access_key_id: AKID,
            secret: SECRET,
            token: None,
            token_unsigned: false,
            region: REGION,
            service: SERVICE,
            time: now(),
            presign: None,
            also_excluded: Vec::new(),
            http2: false,
            sigv4a: false,
        }
    }

    pub fn post(url: &str, body: &[u8]) -> Self {
        Self {
            method: "POST",
            body: body.to_vec(),
            ..Self::get(url)
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A request as the server receives it: the head and the body bytes.
#[derive(Debug)]
pub struct Received {
    pub parts: http::request::Parts,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.parts
            .headers
            .insert(name, http::HeaderValue::from_str(value).unwrap());
        self
    }

    pub fn uri(mut self, uri: &str) -> Self {
        self.parts.uri = uri.parse().unwrap();
        self
    }
}

/// Signs `spec` with aws-sigv4 and returns what a server would receive.
pub fn sign_request(spec: &Spec) -> Received {
    let identity: Identity = Credentials::new(
        spec.access_key_id,
        spec.secret,
        spec.token.map(str::to_owned),
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    if spec.content_sha_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    if spec.token_unsigned {
        settings.session_token_mode = SessionTokenMode::Exclude;
    }
    if let Some(expires) = spec.presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
    }
    if let Some(excluded) = settings.excluded_headers.as_mut() {
        excluded.extend(spec.also_excluded.iter().map(|h| (*h).into()));
    }
    let params = if spec.sigv4a {
        aws_sigv4::sign::v4a::SigningParams::builder()
            .identity(&identity)
            .region_set(spec.region)
            .name(spec.service)
            .time(SystemTime::from(spec.time))
            .settings(settings)
            .build()
            .unwrap()
            .into()
    } else {
        aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(spec.region)
            .name(spec.service)
            .time(SystemTime::from(spec.time))
            .settings(settings)
            .build()
            .unwrap()
            .into()
    };

    let signable_body = match spec.body_mode {
        Body::Hashed => SignableBody::Bytes(&spec.body),
        Body::Unsigned => SignableBody::UnsignedPayload,
    };
    let signable = SignableRequest::new(
        spec.method,
        spec.url.as_str(),
        spec.headers.iter().map(|(k, v)| (*k, v.as_str())),
        signable_body,
    )
    .unwrap();
    let (instructions, _signature) = sign(signable, &params).unwrap().into_parts();

    let mut request = http::Request::builder().method(spec.method).uri(&spec.url);
    for (name, value) in &spec.headers {
        request = request.header(*name, value);
    }
    let mut request = request.body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);

    // What the server sees: origin-form target plus a Host header for HTTP/1.1, or the
    // absolute URI (authority = :authority) and no Host header for HTTP/2.
    let (mut parts, ()) = request.into_parts();
    if !spec.http2 {
        let authority = parts.uri.authority().unwrap().as_str().to_owned();
        let origin_form = parts.uri.path_and_query().unwrap().as_str().to_owned();
        parts.uri = origin_form.parse().unwrap();
        parts
            .headers
            .insert(http::header::HOST, authority.parse().unwrap());
    }
    Received {
        parts,
        body: spec.body.clone(),
    }
}

/// The default key store: AKIDEXAMPLE and a second user.
pub fn keys() -> HashMap<String, String> {
    HashMap::from([
        (AKID.to_owned(), SECRET.to_owned()),
        (
            "AKIDOTHER".to_owned(),
            "otherSecretKeyotherSecretKey".to_owned(),
        ),
    ])
}

pub fn options() -> VerifyOptions<'static> {
    VerifyOptions {
        service: SERVICE,
        region: Some(REGION),
        now: now(),
        max_skew: trellis_sigv4::DEFAULT_MAX_SKEW,
    }
}

pub fn verify(received: &Received) -> Result<Verified, SigV4Error> {
    trellis_sigv4::verify(
        &received.parts,
        &sha256_hex(&received.body),
        &keys(),
        &options(),
    )
}

/// Asserts the exact AWS error code (and returns the error for further checks).
#[track_caller]
pub fn expect_code(result: Result<Verified, SigV4Error>, code: &str) -> SigV4Error {
    match result {
        Ok(verified) => panic!("expected {code}, but the request verified: {verified:?}"),
        Err(e) => {
            assert_eq!(e.aws_code(), code, "wrong error: {e:?} ({e})");
            e
        }
    }
}

/// Parses the suite's request text the way an HTTP server would hand it over: request line,
/// `Name:value` header lines (optional whitespace around the value dropped, as hyper does), a
/// blank line, then the body.
pub fn parse_request(text: &str) -> (http::request::Parts, Vec<u8>) {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().expect("request line");
    // Strict, so a request target the suite printed with a raw space cannot be half-read.
    let words: Vec<&str> = request_line.split(' ').collect();
    let (method, target) = match words.as_slice() {
        [method, target] => (*method, *target),
        [method, target, version] if version.starts_with("HTTP/") => (*method, *target),
        _ => panic!("malformed request line {request_line:?}"),
    };
    let mut builder = http::Request::builder().method(method).uri(target);
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').expect("header line");
        builder = builder.header(name, value.trim_matches([' ', '\t']));
    }
    let (parts, ()) = builder.body(()).expect("valid request").into_parts();
    (parts, body.as_bytes().to_vec())
}
