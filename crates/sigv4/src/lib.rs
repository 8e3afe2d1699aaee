//! AWS Signature Version 4 (and 4A) request verification: pure, synchronous, no I/O.
//!
//! This crate owns the server side of SigV4 and SigV4A for Trellis: given the head of a request as received,
//! the SHA-256 of its body and a way to look up secret keys, it decides whether the request was
//! signed by the holder of the access key it names, and says who that is. Both the control-plane
//! API (the SigV4 gate in front of every operation) and the data-plane proxy (services whose auth
//! type is `AWS_IAM`) call it.
//!
//! Supported:
//! * the `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
//!   header form, with the time in the `X-Amz-Date` header (or query parameter, or `Date`
//!   header), and an optional
//!   `X-Amz-Security-Token` (opaque here, but it must be signed when sent as a header);
//! * the presigned query form (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`,
//!   `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`), with expiry enforced;
//! * `x-amz-content-sha256`: when present and signed its value (`UNSIGNED-PAYLOAD` or a digest)
//!   is the payload hash of the canonical request, and a digest must equal the body's digest;
//! * SigV4A (`AWS4-ECDSA-P256-SHA256`), the multi-region variant VPC Lattice accepts for
//!   `vpc-lattice-svcs`, in both forms: the credential scope is `AKID/date/service/aws4_request`,
//!   the regions travel in `X-Amz-Region-Set` (a header that must be signed, or a query parameter
//!   of a presigned URL), and `Signature` is a hex-encoded DER ECDSA P-256 signature of the
//!   string to sign. The verifier derives the key pair from the secret as AWS's signers do (see
//!   [`derive_sigv4a_public_key`]) and checks the signature with the public half. The region set
//!   (comma-separated, `*` wildcards; rules in [`region_set_matches`]) must include
//!   [`VerifyOptions::region`] when that is given, and is reported in [`Verified::region_set`].
//!
//! Canonicalisation follows AWS's rules for non-S3 services (the `canonical` module documents
//! them): double-encoded, normalised paths; decoded-and-re-encoded sorted queries; trimmed header
//! values. Signatures are compared in constant time.
//!
//! Canonicalisation is the same for both algorithms.
//!
//! Not supported (yet): chunked payload signing (`STREAMING-*` payload hashes, including
//! SigV4A's), and S3's unnormalised, single-encoded path rules. Other `AWS4-*` algorithms are
//! reported as [`SigV4Error::UnsupportedAlgorithm`].
//!
//! Verification can run in two steps, so that a server need not read a body before it knows the
//! request is plausibly signed: [`precheck`] checks everything the head alone decides (form, time,
//! scope, signed `host`, known access key) and [`Prechecked::finish`] compares the signature once
//! the body's digest is known. [`verify`] is the two in one call.
//!
//! The key-derivation cache is optional: [`verify`] derives the signing key on every call, and
//! [`verify_with_cache`] consults a shared [`KeyCache`] first. Both give identical results. The
//! cache matters most for SigV4A, whose public key costs a P-256 scalar multiplication to derive.

mod canonical;
mod error;
mod key;
mod parse;
mod region_set;
mod verify;

use std::collections::HashMap;

pub use error::SigV4Error;
pub use key::{KeyCache, derive_signing_key, derive_sigv4a_public_key};
pub use region_set::matches as region_set_matches;
pub use verify::Prechecked;

/// The clock skew AWS tolerates between a request's signing time and the server's clock.
pub const DEFAULT_MAX_SKEW: time::Duration = time::Duration::minutes(15);

/// The payload-hash value a client sends to say the body is not covered by the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Where the verifier finds the secret key for an access key id.
///
/// Implemented for closures `Fn(&str) -> Option<String>` and for `HashMap<String, String>`
/// (access key id → secret), which covers tests and simple setups.
pub trait SecretLookup {
    /// The secret access key for `access_key_id`, or `None` if the key is unknown (or disabled).
    fn secret_access_key(&self, access_key_id: &str) -> Option<String>;
}

impl<F> SecretLookup for F
where
    F: Fn(&str) -> Option<String>,
{
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        self(access_key_id)
    }
}

impl SecretLookup for HashMap<String, String> {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        self.get(access_key_id).cloned()
    }
}

/// What the verifier checks besides the signature itself.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// The signing name the credential scope must carry, e.g. `"vpc-lattice"`.
    pub service: &'a str,
    /// If `Some`, the credential scope's region must equal it (SigV4), or the request's region
    /// set must include it (SigV4A, see [`region_set_matches`]); if `None`, any region or region
    /// set is accepted (and reported in [`Verified::region`] and [`Verified::region_set`]).
    pub region: Option<&'a str>,
    /// The server's current time.
    pub now: time::OffsetDateTime,
    /// How far the request time may be from `now`, either way ([`DEFAULT_MAX_SKEW`] in AWS).
    pub max_skew: time::Duration,
}

impl<'a> VerifyOptions<'a> {
    /// Options for `service` at time `now`, any region, with AWS's 15-minute skew.
    pub fn new(service: &'a str, now: time::OffsetDateTime) -> Self {
        Self {
            service,
            region: None,
            now,
            max_skew: DEFAULT_MAX_SKEW,
        }
    }
}

/// The identity and scope of a request whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id that signed the request.
    pub access_key_id: String,
    /// The credential scope's region (SigV4). For SigV4A, whose scope has no region: the region
    /// the region set was matched against ([`VerifyOptions::region`]) or, when none was
    /// required, the `X-Amz-Region-Set` value as sent.
    pub region: String,
    /// The credential scope's service.
    pub service: String,
    /// The lower-cased names of the headers covered by the signature, as the client listed them.
    pub signed_headers: Vec<String>,
    /// Whether the signature came from the query string (presigned URL) rather than a header.
    pub presigned: bool,
    /// The session token (`X-Amz-Security-Token`, header or query), if the request carried one.
    /// It is covered by the signature; validating it against issued sessions is the caller's job.
    pub security_token: Option<String>,
    /// The signing time the client claimed (`X-Amz-Date` / `Date`).
    pub request_time: time::OffsetDateTime,
    /// `Some` for a SigV4A request: the entries of its signed `X-Amz-Region-Set` (spaces around
    /// entries removed), which may contain `*` wildcards. `None` for SigV4.
    pub region_set: Option<Vec<String>>,
}

impl Verified {
    /// Whether the request was signed for `region`: the credential scope's region equals it
    /// (SigV4), or the region set includes it (SigV4A). Callers that verify without
    /// [`VerifyOptions::region`] use this to check the region afterwards.
    pub fn covers_region(&self, region: &str) -> bool {
        match &self.region_set {
            Some(set) => region_set::matches(set, region),
            None => self.region == region,
        }
    }
}

/// Verifies the SigV4 signature of a request, deriving the signing key afresh.
///
/// * `req`: method, the URI exactly as received (raw path including its percent-encoding, raw
///   query) and the headers. For HTTP/2, `host` is taken from the URI authority when there is no
///   `Host` header.
/// * `payload_sha256_hex`: the lowercase hex SHA-256 of the body as received.
///
/// Returns who signed the request, or the reason it is rejected (see [`SigV4Error::aws_code`]).
pub fn verify(
    req: &http::request::Parts,
    payload_sha256_hex: &str,
    lookup: &dyn SecretLookup,
    opts: &VerifyOptions<'_>,
) -> Result<Verified, SigV4Error> {
    verify::verify(req, payload_sha256_hex, lookup, opts, None)
}

/// Same as [`verify`], but takes the signing key from `cache` when it holds it (and stores it
/// there otherwise). The outcome is identical to [`verify`]'s for every input.
pub fn verify_with_cache(
    req: &http::request::Parts,
    payload_sha256_hex: &str,
    lookup: &dyn SecretLookup,
    opts: &VerifyOptions<'_>,
    cache: &KeyCache,
) -> Result<Verified, SigV4Error> {
    verify::verify(req, payload_sha256_hex, lookup, opts, Some(cache))
}

/// The first half of [`verify`]: every check that needs only the request head, including the
/// secret-key lookup. An `Err` here is exactly what [`verify`] returns for the same head, whatever
/// the body; an `Ok` is finished with [`Prechecked::finish`] and the body's digest.
pub fn precheck(
    req: &http::request::Parts,
    lookup: &dyn SecretLookup,
    opts: &VerifyOptions<'_>,
) -> Result<Prechecked, SigV4Error> {
    verify::precheck(req, lookup, opts)
}
