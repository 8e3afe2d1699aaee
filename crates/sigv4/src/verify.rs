//! The verification procedure: pick the signature form, check time and scope, rebuild the
//! canonical request and compare signatures.
//!
//! The order of checks is deliberate: cheap structural checks first (so malformed requests never
//! cost a key lookup), then the secret lookup, and only then any HMAC or ECDSA work.
//!
//! SigV4 and SigV4A share everything but three steps: the credential scope (SigV4A's has no
//! region; the signed `X-Amz-Region-Set` replaces it), the key (an HMAC key derived from the
//! scope, or an ECDSA P-256 public key derived from the access key), and the final comparison
//! (HMAC equality, or ECDSA verification of the DER signature over the string to sign).

use http::header::AUTHORIZATION;
use std::borrow::Cow;

use http::{HeaderName, HeaderValue};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::canonical::{self, QueryParam, Sink};
use crate::key::{KeyCache, derive_signing_key, derive_sigv4a_verifying_key, hmac_sha256};
use crate::parse::{self, Algorithm, Material, SignedHeaders};
use crate::region_set;
use crate::{SecretLookup, SigV4Error, UNSIGNED_PAYLOAD, Verified, VerifyOptions};

const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
const X_AMZ_REGION_SET: &str = "x-amz-region-set";
const REDACTED: &[u8] = b"** REDACTED **";
// The same names as header-map keys: a lookup by `&str` parses the name every time.
static CONTENT_SHA256: HeaderName = HeaderName::from_static(X_AMZ_CONTENT_SHA256);
static SECURITY_TOKEN: HeaderName = HeaderName::from_static(X_AMZ_SECURITY_TOKEN);

pub(crate) fn verify(
    req: &http::request::Parts,
    payload_sha256_hex: &str,
    lookup: &dyn SecretLookup,
    opts: &VerifyOptions<'_>,
    cache: Option<&KeyCache>,
) -> Result<Verified, SigV4Error> {
    precheck(req, lookup, opts)?.finish(req, payload_sha256_hex, cache)
}

/// A request whose signature material passed every check that does not need the body: it parses,
/// its time is within the skew (or its presigned lifetime), its credential scope names the right
/// service and region (for SigV4A: its signed region set is well-formed and includes the
/// region), `host` (and any session token header) is signed, and its access key is known. Only the signature comparison, which covers the body's digest, is left.
///
/// Holding one proves nothing about who sent the request; it only says the request is worth
/// reading the body of.
pub struct Prechecked {
    material: Material,
    query: Vec<QueryParam>,
    header_token: Option<HeaderToken>,
    /// SigV4A's region set: the raw value and its entries.
    region_set: Option<(String, Vec<String>)>,
    /// The region reported in [`Verified::region`] when it is not the credential scope's.
    region: Option<String>,
    /// The request time as `X-Amz-Date` spells it.
    amz_date: String,
    secret: String,
}

/// A session token sent as a header. Real tokens are ASCII: such a value is kept as the header
/// value itself (a reference count, not a copy of its kilobyte). Any other is kept as its lossy
/// UTF-8 conversion, which is what the token then is everywhere else.
enum HeaderToken {
    Utf8(HeaderValue),
    Lossy(String),
}

impl HeaderToken {
    fn new(value: &HeaderValue) -> Self {
        if std::str::from_utf8(value.as_bytes()).is_ok() {
            HeaderToken::Utf8(value.clone())
        } else {
            HeaderToken::Lossy(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Checked when it was kept.
            HeaderToken::Utf8(value) => std::str::from_utf8(value.as_bytes()).unwrap_or_default(),
            HeaderToken::Lossy(token) => token,
        }
    }
}

impl std::fmt::Debug for Prechecked {
    // By hand, so that the secret key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prechecked")
            .field("access_key_id", &self.material.credential.access_key_id)
            .field("algorithm", &self.material.algorithm.name())
            .field("presigned", &self.material.presigned)
            .finish_non_exhaustive()
    }
}

pub(crate) fn precheck(
    req: &http::request::Parts,
    lookup: &dyn SecretLookup,
    opts: &VerifyOptions<'_>,
) -> Result<Prechecked, SigV4Error> {
    let query = canonical::parse_query(req.uri.query());
    let material = extract_material(req, &query)?;

    check_time(&material, opts)?;
    let amz_date = check_scope(&material, opts)?;

    if !material.signed_headers.contains("host") {
        return Err(SigV4Error::incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let header_token = req.headers.get(&SECURITY_TOKEN).map(HeaderToken::new);
    // An unsigned token could be swapped for another session's token without breaking the
    // signature, so a token sent as a header must be covered by it.
    if header_token.is_some() && !is_signed(&material, X_AMZ_SECURITY_TOKEN) {
        return Err(SigV4Error::incomplete(
            "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let region_set = check_region_set(req, &material, opts)?;
    check_declared_payload_hash(req, &material)?;
    let region = match (&material.credential.region, &region_set, opts.region) {
        // SigV4: the scope's, read when a Verified is built.
        (Some(_), _, _) => None,
        // SigV4A: the region the set was matched against, or the set itself if there was none.
        (None, _, Some(expected)) => Some(expected.to_owned()),
        (None, Some((raw, _)), None) => Some(raw.clone()),
        // Not reached: `check_region_set` returns a set for every SigV4A request.
        (None, None, None) => Some(String::new()),
    };

    let secret = lookup
        .secret_access_key(&material.credential.access_key_id)
        .ok_or_else(|| SigV4Error::UnrecognizedClient {
            access_key_id: material.credential.access_key_id.clone(),
        })?;
    Ok(Prechecked {
        material,
        query,
        header_token,
        region_set,
        region,
        amz_date,
        secret,
    })
}

impl Prechecked {
    /// The access key id the request claims to be signed with.
    pub fn access_key_id(&self) -> &str {
        &self.material.credential.access_key_id
    }

    /// The session token the request carries (`X-Amz-Security-Token`, as a signed header or a
    /// presigned query parameter), if any. Like the access key, it is only a claim until
    /// [`Prechecked::finish`] succeeds.
    pub fn security_token(&self) -> Option<&str> {
        match &self.header_token {
            Some(token) => Some(token.as_str()),
            None => self.material.query_security_token.as_deref(),
        }
    }

    /// Completes verification with the body's digest. `req` must be the head the precheck saw.
    pub fn finish(
        self,
        req: &http::request::Parts,
        payload_sha256_hex: &str,
        cache: Option<&KeyCache>,
    ) -> Result<Verified, SigV4Error> {
        self.compare(req, payload_sha256_hex, cache)?;
        let Prechecked {
            material,
            header_token,
            region_set,
            region,
            ..
        } = self;
        let region = region.or(material.credential.region).unwrap_or_default();
        Ok(Verified {
            access_key_id: material.credential.access_key_id,
            region,
            service: material.credential.service,
            signed_headers: material.signed_headers.to_vec(),
            presigned: material.presigned,
            security_token: header_token
                .map(|t| t.as_str().to_owned())
                .or(material.query_security_token),
            request_time: material.request_time,
            region_set: region_set.map(|(_, entries)| entries),
        })
    }

    /// [`Prechecked::finish`] for a caller that needs only the outcome: the same checks and the
    /// same errors, without building a [`Verified`] (the data plane's auth stage, which already
    /// knows who the access key belongs to).
    pub fn check(
        self,
        req: &http::request::Parts,
        payload_sha256_hex: &str,
        cache: Option<&KeyCache>,
    ) -> Result<(), SigV4Error> {
        self.compare(req, payload_sha256_hex, cache)
    }

    /// The signature comparison itself.
    fn compare(
        &self,
        req: &http::request::Parts,
        payload_sha256_hex: &str,
        cache: Option<&KeyCache>,
    ) -> Result<(), SigV4Error> {
        let Prechecked {
            material,
            query,
            amz_date,
            secret,
            ..
        } = self;
        let payload_sha256_hex = if payload_sha256_hex.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(payload_sha256_hex.to_ascii_lowercase())
        } else {
            Cow::Borrowed(payload_sha256_hex)
        };
        let payload_hashes = payload_hash_candidates(req, material, &payload_sha256_hex)?;
        let credential = &material.credential;
        let checker = match &credential.region {
            Some(scope_region) => Checker::Hmac {
                key: match cache {
                    Some(cache) => cache.signing_key(
                        secret,
                        &credential.date,
                        scope_region,
                        &credential.service,
                    ),
                    None => derive_signing_key(
                        secret,
                        &credential.date,
                        scope_region,
                        &credential.service,
                    ),
                },
                provided: material.signature.as_str(),
            },
            None => {
                let key = match cache {
                    Some(cache) => cache.sigv4a_key(&credential.access_key_id, secret),
                    None => derive_sigv4a_verifying_key(&credential.access_key_id, secret),
                };
                // A signature that is not hex-encoded DER cannot match; it is reported as a
                // mismatch, as a SigV4 signature of the wrong shape is.
                let signature = hex::decode(&material.signature)
                    .ok()
                    .and_then(|der| p256::ecdsa::Signature::from_der(&der).ok());
                Checker::Ecdsa(key.zip(signature))
            }
        };

        let signature_param = parse::X_AMZ_SIGNATURE.as_bytes();
        let exclude = material.presigned.then_some(signature_param);
        let pieces = Pieces {
            method: req.method.as_str(),
            uri: canonical::canonical_uri(req.uri.path()),
            query: canonical::canonical_query(query, exclude),
            signed_headers: &material.signed_headers,
        };
        let algorithm = material.algorithm;

        for payload_hash in payload_hashes.iter().flatten() {
            // Hashed as it is produced: the canonical request (over a kilobyte with a session
            // token) is never assembled on the way to a match.
            let mut hasher = Sha256::new();
            pieces.canonical_request(
                &pieces.query,
                |out| canonical_headers(req, &material.signed_headers, false, out),
                payload_hash,
                &mut hasher,
            );
            let string_to_sign =
                string_to_sign(algorithm, amz_date, credential, &hasher.finalize().into());
            if checker.accepts(&string_to_sign) {
                return Ok(());
            }
        }

        // Report the first candidate (the one a well-behaved client meant) for debugging, with the
        // session token redacted: it is a bearer credential and logs are not the place for it.
        let payload_hash = payload_hashes[0].as_deref().unwrap_or_default();
        let creq = pieces.assemble(
            &pieces.query,
            |out| canonical_headers(req, &material.signed_headers, false, out),
            payload_hash,
        );
        let string_to_sign = string_to_sign(
            algorithm,
            amz_date,
            credential,
            &Sha256::digest(&creq).into(),
        );
        let redacted_query = canonical::canonical_query(&redact_query(query), exclude);
        let redacted = pieces.assemble(
            &redacted_query,
            |out| canonical_headers(req, &material.signed_headers, true, out),
            payload_hash,
        );
        Err(SigV4Error::SignatureDoesNotMatch {
            canonical_request: String::from_utf8_lossy(&redacted).into_owned(),
            string_to_sign,
        })
    }
}

/// How the final comparison is made.
enum Checker<'a> {
    /// SigV4: the HMAC of the string to sign under the derived key, hex-encoded, must equal the
    /// provided signature (lower-cased).
    Hmac { key: [u8; 32], provided: &'a str },
    /// SigV4A: the provided DER signature must verify under the derived public key. `None` when
    /// the signature does not parse (or, never in practice, the key could not be derived).
    Ecdsa(Option<(p256::ecdsa::VerifyingKey, p256::ecdsa::Signature)>),
}

impl Checker<'_> {
    fn accepts(&self, string_to_sign: &str) -> bool {
        match self {
            Self::Hmac { key, provided } => {
                // Compared ignoring the case of the provided hex digits, and in constant time, so
                // response timing reveals nothing about how much of a forged signature was right.
                let provided = provided.as_bytes();
                if provided.len() != 64 {
                    return false;
                }
                let mut lower = [0u8; 64];
                for (l, p) in lower.iter_mut().zip(provided) {
                    *l = p.to_ascii_lowercase();
                }
                let computed = hex32(&hmac_sha256(key, string_to_sign.as_bytes()));
                bool::from(computed.ct_eq(&lower))
            }
            // ECDSA signs the SHA-256 of the string to sign. Verification handles only public
            // values, so there is no timing concern here.
            Self::Ecdsa(Some((key, signature))) => key
                .verify_prehash(&Sha256::digest(string_to_sign.as_bytes()), signature)
                .is_ok(),
            Self::Ecdsa(None) => false,
        }
    }
}

/// Chooses the signature form and parses its material.
fn extract_material(
    req: &http::request::Parts,
    query: &[QueryParam],
) -> Result<Material, SigV4Error> {
    let authorization: Vec<&HeaderValue> = req.headers.get_all(AUTHORIZATION).iter().collect();
    if parse::has_presign_params(query) {
        // A non-SigV4 Authorization header (an application's own bearer token, say) may travel
        // alongside a presigned URL: that is how clients sign for VPC Lattice while keeping their
        // Authorization header. Two SigV4 signatures on one request are ambiguous, though.
        if authorization
            .iter()
            .any(|v| v.as_bytes().starts_with(b"AWS4-"))
        {
            return Err(SigV4Error::incomplete(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the \
                 Authorization header should be specified.",
            ));
        }
        return parse::from_query(query);
    }
    match authorization.as_slice() {
        [] => Err(SigV4Error::MissingAuthenticationToken),
        [value] => parse::from_authorization_header(value.as_bytes(), &req.headers, query),
        _ => Err(SigV4Error::incomplete(
            "Only one Authorization header is allowed.",
        )),
    }
}

fn check_time(material: &Material, opts: &VerifyOptions<'_>) -> Result<(), SigV4Error> {
    let fmt = parse::format_amz_date;
    let requested = material.request_time;
    let now = opts.now;
    let skew = opts.max_skew;
    if requested > now + skew {
        return Err(SigV4Error::SignatureNotYetCurrent {
            message: format!(
                "Signature not yet current: {} is still later than {} ({} + {})",
                fmt(requested),
                fmt(now + skew),
                fmt(now),
                describe(skew),
            ),
        });
    }
    // A presigned URL lives for X-Amz-Expires after its signing time; any other request lives for
    // the skew window. Either way the message has AWS's shape.
    let lifetime = match material.expires_seconds {
        Some(seconds) => time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX)),
        None => skew,
    };
    if requested < now - lifetime {
        return Err(SigV4Error::SignatureExpired {
            message: format!(
                "Signature expired: {} is now earlier than {} ({} - {})",
                fmt(requested),
                fmt(now - lifetime),
                fmt(now),
                describe(lifetime),
            ),
        });
    }
    Ok(())
}

/// `15 min.` for whole minutes (AWS's wording), `90 sec.` otherwise.
fn describe(d: time::Duration) -> String {
    if d.whole_seconds() % 60 == 0 {
        format!("{} min.", d.whole_minutes())
    } else {
        format!("{} sec.", d.whole_seconds())
    }
}

/// Checks the credential scope against the request time and this endpoint; returns the time as
/// `X-Amz-Date` spells it (the string to sign needs it too).
fn check_scope(material: &Material, opts: &VerifyOptions<'_>) -> Result<String, SigV4Error> {
    let credential = &material.credential;
    parse::check_terminator(credential)?;
    let amz_date = parse::format_amz_date(material.request_time);
    if credential.date != amz_date[..8] {
        return Err(SigV4Error::scope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
             HTTP: '{}' != '{}', from '{}'.",
            credential.date,
            &amz_date[..8],
            amz_date
        )));
    }
    if credential.service != opts.service {
        return Err(SigV4Error::scope(format!(
            "Credential should be scoped to correct service: '{}'.",
            opts.service
        )));
    }
    // SigV4A scopes have no region: the region set stands in for it (`check_region_set`).
    let Some(region) = &credential.region else {
        return Ok(amz_date);
    };
    let region_ok = match opts.region {
        Some(expected) => region == expected,
        None => !region.is_empty(),
    };
    if !region_ok {
        return Err(SigV4Error::scope(format!(
            "Credential should be scoped to a valid region, not '{region}'."
        )));
    }
    Ok(amz_date)
}

/// SigV4A only: the region set must be present, covered by the signature (a header must be
/// signed; a query parameter always is), well-formed, and include `opts.region` if one is
/// required. Returns the raw value and its entries.
fn check_region_set(
    req: &http::request::Parts,
    material: &Material,
    opts: &VerifyOptions<'_>,
) -> Result<Option<(String, Vec<String>)>, SigV4Error> {
    if material.algorithm != Algorithm::V4a {
        return Ok(None);
    }
    let raw = if material.presigned {
        material.query_region_set.clone().ok_or_else(|| {
            SigV4Error::incomplete(
                "AWS query-string parameters must include 'X-Amz-Region-Set' for \
                 AWS4-ECDSA-P256-SHA256. Re-examine the query-string parameters.",
            )
        })?
    } else {
        if req.headers.get(X_AMZ_REGION_SET).is_none() {
            return Err(SigV4Error::incomplete(
                "Authorization header requires existence of a 'X-Amz-Region-Set' header for \
                 AWS4-ECDSA-P256-SHA256.",
            ));
        }
        // Otherwise the region set could be widened (to `*`, say) without breaking the
        // signature.
        if !is_signed(material, X_AMZ_REGION_SET) {
            return Err(SigV4Error::incomplete(
                "'X-Amz-Region-Set' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        // The value the signature covers: every occurrence, trimmed and joined with ','.
        let mut value = Vec::new();
        header_value(req, X_AMZ_REGION_SET, &mut value);
        String::from_utf8_lossy(&value).into_owned()
    };
    let entries = region_set::parse(&raw)?;
    if let Some(expected) = opts.region
        && !region_set::matches(&entries, expected)
    {
        return Err(SigV4Error::RegionSetMismatch {
            region_set: raw,
            region: expected.to_owned(),
        });
    }
    Ok(Some((raw, entries)))
}

fn is_signed(material: &Material, name: &str) -> bool {
    material.signed_headers.contains(name)
}

/// A signed `x-amz-content-sha256` must be `UNSIGNED-PAYLOAD` or a digest; this needs no body.
fn check_declared_payload_hash(
    req: &http::request::Parts,
    material: &Material,
) -> Result<(), SigV4Error> {
    if !is_signed(material, X_AMZ_CONTENT_SHA256) {
        return Ok(());
    }
    let Some(declared) = req.headers.get(&CONTENT_SHA256) else {
        return Ok(());
    };
    let declared = canonical::lossy(declared.as_bytes());
    let declared = declared.trim();
    if declared != UNSIGNED_PAYLOAD && !is_sha256_hex(declared) {
        return Err(SigV4Error::incomplete(format!(
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a SHA-256 hex digest, got '{declared}'."
        )));
    }
    Ok(())
}

/// The payload hashes a legitimate signer may have used, most likely first (one or two; the
/// second slot is `None` when there is one).
fn payload_hash_candidates<'a>(
    req: &'a http::request::Parts,
    material: &Material,
    payload_sha256_hex: &'a str,
) -> Result<[Option<Cow<'a, str>>; 2], SigV4Error> {
    let declared = req
        .headers
        .get(&CONTENT_SHA256)
        .map(|v| match canonical::lossy(v.as_bytes()) {
            Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
            Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
        });
    if let Some(declared) = declared {
        // A declared digest that differs from the body means the body changed in flight; say so
        // instead of reporting a vaguer signature mismatch.
        if is_sha256_hex(&declared) && !declared.eq_ignore_ascii_case(payload_sha256_hex) {
            return Err(SigV4Error::ContentSha256Mismatch {
                provided: declared.into_owned(),
                computed: payload_sha256_hex.to_owned(),
            });
        }
        if is_signed(material, X_AMZ_CONTENT_SHA256) {
            // Its syntax was checked by the precheck.
            return Ok([Some(declared), None]);
        }
    }
    if material.presigned {
        // Presigned URLs are signed before any body exists. S3-style signers use
        // UNSIGNED-PAYLOAD; generic ones (aws-sigv4, the CRT) hash the body they were given,
        // usually empty. Both leave everything but the body authenticated, so accept either.
        Ok([
            Some(Cow::Borrowed(UNSIGNED_PAYLOAD)),
            Some(Cow::Borrowed(payload_sha256_hex)),
        ])
    } else {
        Ok([Some(Cow::Borrowed(payload_sha256_hex)), None])
    }
}

fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The canonical request minus its headers and payload hash, which may vary between candidates
/// (and are redacted in error messages).
struct Pieces<'a> {
    method: &'a str,
    uri: Cow<'a, str>,
    query: String,
    signed_headers: &'a SignedHeaders,
}

impl Pieces<'_> {
    /// Writes the canonical request to `out`, the canonical header block by `headers`.
    fn canonical_request<S: Sink>(
        &self,
        query: &str,
        headers: impl FnOnce(&mut S),
        payload_hash: &str,
        out: &mut S,
    ) {
        for line in [
            self.method.as_bytes(),
            self.uri.as_bytes(),
            query.as_bytes(),
        ] {
            out.put(line);
            out.put(b"\n");
        }
        // Each canonical header line ends in '\n', so a blank line separates the block from the
        // signed-header list, as the spec requires.
        headers(out);
        out.put(b"\n");
        out.put(self.signed_headers.joined().as_bytes());
        out.put(b"\n");
        out.put(payload_hash.as_bytes());
    }

    /// The canonical request as bytes (error messages).
    fn assemble(
        &self,
        query: &str,
        headers: impl FnOnce(&mut Vec<u8>),
        payload_hash: &str,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        self.canonical_request(query, headers, payload_hash, &mut out);
        out
    }
}

/// `name:value\n` for every signed header, in the order the client listed them.
fn canonical_headers(
    req: &http::request::Parts,
    signed: &SignedHeaders,
    redact: bool,
    out: &mut impl Sink,
) {
    for name in signed.iter() {
        out.put(name.as_bytes());
        out.put(b":");
        if redact && name == X_AMZ_SECURITY_TOKEN {
            out.put(REDACTED);
        } else {
            header_value(req, name, out);
        }
        out.put(b"\n");
    }
}

/// The canonical value of one header: every occurrence trimmed, joined with ','.
///
/// A signed header that is absent contributes an empty value; the signature then fails unless
/// the client signed it empty too, which is the honest outcome.
fn header_value(req: &http::request::Parts, name: &str, out: &mut impl Sink) {
    let mut values = req.headers.get_all(name).iter().peekable();
    if values.peek().is_none() && name == "host" {
        // HTTP/2 carries the host in :authority, which lands in the URI, not in a Host header.
        if let Some(a) = req.uri.authority() {
            out.put(a.as_str().as_bytes());
        }
        return;
    }
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.put(b",");
        }
        canonical::trim_all_into(value.as_bytes(), out);
    }
}

/// A digest in lower-case hex, on the stack.
fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    out
}

fn redact_query(query: &[QueryParam]) -> Vec<QueryParam> {
    query
        .iter()
        .map(|p| {
            if p.key == parse::X_AMZ_SECURITY_TOKEN.as_bytes() {
                QueryParam {
                    key: p.key.clone(),
                    value: REDACTED.to_vec(),
                }
            } else {
                p.clone()
            }
        })
        .collect()
}

fn string_to_sign(
    algorithm: Algorithm,
    amz_date: &str,
    credential: &parse::Credential,
    canonical_request_digest: &[u8; 32],
) -> String {
    let algorithm = algorithm.name();
    let mut out = String::with_capacity(algorithm.len() + amz_date.len() + 128);
    for part in [algorithm, amz_date] {
        out.push_str(part);
        out.push('\n');
    }
    credential.write_scope(&mut out);
    out.push('\n');
    let digest = hex32(canonical_request_digest);
    out.push_str(std::str::from_utf8(&digest).unwrap_or_default());
    out
}
