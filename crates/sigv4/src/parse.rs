//! Parsing of the signature material: the `Authorization` header, the presigned query parameters,
//! the credential scope and the request timestamp.
//!
//! Error messages reproduce the wording AWS services use for the same mistakes, because clients
//! and people search for those exact strings.

use http::HeaderMap;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::SigV4Error;
use crate::canonical::{QueryParam, lossy};

/// SigV4's algorithm name.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// SigV4A's algorithm name.
pub(crate) const ALGORITHM_V4A: &str = crate::key::SIGV4A_ALGORITHM;
/// The terminator every SigV4 credential scope ends with.
const TERMINATOR: &str = "aws4_request";
/// The longest lifetime AWS allows for a presigned request (seven days).
const MAX_EXPIRES_SECONDS: u64 = 604_800;

pub(crate) const X_AMZ_ALGORITHM: &str = "X-Amz-Algorithm";
pub(crate) const X_AMZ_CREDENTIAL: &str = "X-Amz-Credential";
pub(crate) const X_AMZ_DATE: &str = "X-Amz-Date";
pub(crate) const X_AMZ_EXPIRES: &str = "X-Amz-Expires";
pub(crate) const X_AMZ_SIGNED_HEADERS: &str = "X-Amz-SignedHeaders";
pub(crate) const X_AMZ_SIGNATURE: &str = "X-Amz-Signature";
pub(crate) const X_AMZ_SECURITY_TOKEN: &str = "X-Amz-Security-Token";
pub(crate) const X_AMZ_REGION_SET: &str = "X-Amz-Region-Set";

/// The two signing algorithms the verifier implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// SigV4, `AWS4-HMAC-SHA256`: an HMAC under a key derived from the secret and the scope.
    V4,
    /// SigV4A, `AWS4-ECDSA-P256-SHA256`: an ECDSA P-256 signature under a key pair derived from
    /// the secret and the access key id; the regions are in `X-Amz-Region-Set`, not the scope.
    V4a,
}

impl Algorithm {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            ALGORITHM => Some(Self::V4),
            ALGORITHM_V4A => Some(Self::V4a),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::V4 => ALGORITHM,
            Self::V4a => ALGORITHM_V4A,
        }
    }
}

/// Signature material extracted from either form, before any cryptography.
#[derive(Debug)]
pub(crate) struct Material {
    pub(crate) algorithm: Algorithm,
    pub(crate) credential: Credential,
    /// Lower-cased signed header names, in the order the client listed them.
    pub(crate) signed_headers: SignedHeaders,
    pub(crate) signature: String,
    pub(crate) request_time: OffsetDateTime,
    /// `X-Amz-Expires` of a presigned request, if given.
    pub(crate) expires_seconds: Option<u64>,
    pub(crate) presigned: bool,
    /// The security token from the query string (presigned form only).
    pub(crate) query_security_token: Option<String>,
    /// SigV4A's `X-Amz-Region-Set` query parameter (presigned form only; the header form's is
    /// read with the other headers).
    pub(crate) query_region_set: Option<String>,
}

/// The parsed `Credential` value: `AKID/YYYYMMDD/region/service/aws4_request` for SigV4,
/// `AKID/YYYYMMDD/service/aws4_request` for SigV4A.
#[derive(Debug)]
pub(crate) struct Credential {
    pub(crate) access_key_id: String,
    pub(crate) date: String,
    /// `None` for SigV4A, whose scope has no region.
    pub(crate) region: Option<String>,
    pub(crate) service: String,
    pub(crate) terminator: String,
}

impl Credential {
    /// `YYYYMMDD/region/service/aws4_request` (SigV4) or `YYYYMMDD/service/aws4_request`
    /// (SigV4A), as it appears in the string to sign.
    #[cfg(test)]
    pub(crate) fn scope(&self) -> String {
        let mut out = String::new();
        self.write_scope(&mut out);
        out
    }

    /// [`Credential::scope`] appended to `out`.
    pub(crate) fn write_scope(&self, out: &mut String) {
        out.push_str(&self.date);
        if let Some(region) = &self.region {
            out.push('/');
            out.push_str(region);
        }
        for part in [&self.service, &self.terminator] {
            out.push('/');
            out.push_str(part);
        }
    }
}

/// Whether the query string carries presigned-request parameters.
pub(crate) fn has_presign_params(params: &[QueryParam]) -> bool {
    params.iter().any(|p| {
        [X_AMZ_ALGORITHM, X_AMZ_CREDENTIAL, X_AMZ_SIGNATURE]
            .iter()
            .any(|name| p.key == name.as_bytes())
    })
}

/// Parses an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
/// header (or its `AWS4-ECDSA-P256-SHA256` twin), taking the request time from `X-Amz-Date` (or `Date`).
///
/// AWS looks for the time in the `X-Amz-Date` header, then an `X-Amz-Date` query parameter (the
/// Query APIs' GET style), then the `Date` header.
pub(crate) fn from_authorization_header(
    value: &[u8],
    headers: &HeaderMap,
    query: &[QueryParam],
) -> Result<Material, SigV4Error> {
    let value = lossy(value);
    let value = value.trim();
    let (scheme, rest) = value
        .split_once([' ', '\t'])
        .map_or((value, ""), |(s, r)| (s, r.trim()));

    // Any future AWS4 variant is recognisably "AWS signing" and gets a precise error; other
    // schemes (Basic, Bearer, SigV2's "AWS AKID:sig") are answered as AWS does, by listing
    // everything a SigV4 header lacks.
    let algorithm = Algorithm::from_name(scheme);
    if algorithm.is_none() && scheme.starts_with("AWS4-") {
        return Err(SigV4Error::UnsupportedAlgorithm {
            algorithm: scheme.to_owned(),
        });
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    if algorithm.is_some() {
        // AWS separates parameters by commas and/or whitespace; splitting on both is what turns
        // a stray space inside a value into its "missing equal-sign" error.
        for part in split_params(rest) {
            let Some((name, param)) = part.split_once('=') else {
                return Err(SigV4Error::incomplete(format!(
                    "'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{value}'."
                )));
            };
            let slot = match name {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                // AWS ignores unknown parameters; so do we.
                _ => continue,
            };
            if slot.is_some() {
                return Err(SigV4Error::incomplete(format!(
                    "Authorization header has a duplicate '{name}' parameter. Authorization={value}"
                )));
            }
            *slot = Some(param);
        }
    }

    static AMZ_DATE: http::HeaderName = http::HeaderName::from_static("x-amz-date");
    let date_header = first_header(headers, &AMZ_DATE)
        .or_else(|| {
            query
                .iter()
                .find(|p| p.key == X_AMZ_DATE.as_bytes())
                .map(|p| lossy(&p.value).into_owned())
        })
        .map(|v| (v, true))
        .or_else(|| first_header(headers, &http::header::DATE).map(|v| (v, false)));

    let mut missing = String::new();
    if credential.is_none() {
        missing.push_str("Authorization header requires 'Credential' parameter. ");
    }
    if signature.is_none() {
        missing.push_str("Authorization header requires 'Signature' parameter. ");
    }
    if signed_headers.is_none() {
        missing.push_str("Authorization header requires 'SignedHeaders' parameter. ");
    }
    if date_header.is_none() {
        missing.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    let (
        Some(algorithm),
        Some(credential),
        Some(signature),
        Some(signed_headers),
        Some((date, is_amz_date)),
    ) = (
        algorithm,
        credential,
        signature,
        signed_headers,
        date_header,
    )
    else {
        return Err(SigV4Error::incomplete(format!(
            "{missing}Authorization={value}"
        )));
    };

    let request_time = if is_amz_date {
        parse_amz_date(&date)
    } else {
        // The Date header is normally an HTTP date, but AWS also accepts the ISO 8601 basic
        // form there.
        parse_http_date(&date).or_else(|| parse_amz_date(&date))
    }
    .ok_or_else(|| bad_date(&date))?;

    Ok(Material {
        algorithm,
        credential: parse_credential(credential, algorithm)?,
        signed_headers: parse_signed_headers(signed_headers)?,
        signature: signature.to_owned(),
        request_time,
        expires_seconds: None,
        presigned: false,
        query_security_token: None,
        query_region_set: None,
    })
}

/// Parses the presigned-URL form from the decoded query parameters.
pub(crate) fn from_query(params: &[QueryParam]) -> Result<Material, SigV4Error> {
    let get = |name: &str| -> Result<Option<String>, SigV4Error> {
        let mut values = params.iter().filter(|p| p.key == name.as_bytes());
        let first = values.next();
        if values.next().is_some() {
            return Err(SigV4Error::incomplete(format!(
                "AWS query-string parameter '{name}' must appear only once. Re-examine the query-string parameters."
            )));
        }
        Ok(first.map(|p| lossy(&p.value).into_owned()))
    };
    let algorithm = get(X_AMZ_ALGORITHM)?;
    let credential = get(X_AMZ_CREDENTIAL)?;
    let signature = get(X_AMZ_SIGNATURE)?;
    let date = get(X_AMZ_DATE)?;
    let signed_headers = get(X_AMZ_SIGNED_HEADERS)?;
    let expires = get(X_AMZ_EXPIRES)?;
    let security_token = get(X_AMZ_SECURITY_TOKEN)?;
    let region_set = get(X_AMZ_REGION_SET)?;

    let (Some(algorithm), Some(credential), Some(signature), Some(date), Some(signed_headers)) =
        (algorithm, credential, signature, date, signed_headers)
    else {
        return Err(SigV4Error::incomplete(
            "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', \
             'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders'. Re-examine the query-string \
             parameters.",
        ));
    };
    let Some(algorithm) = Algorithm::from_name(&algorithm) else {
        return Err(SigV4Error::UnsupportedAlgorithm { algorithm });
    };
    let request_time = parse_amz_date(&date).ok_or_else(|| bad_date(&date))?;
    let expires_seconds = match expires {
        None => None,
        Some(raw) => {
            let seconds = raw
                .parse::<u64>()
                .ok()
                .filter(|_| raw.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    SigV4Error::incomplete(format!(
                        "X-Amz-Expires should be a number of seconds, got '{raw}'."
                    ))
                })?;
            if seconds > MAX_EXPIRES_SECONDS {
                return Err(SigV4Error::incomplete(format!(
                    "X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES_SECONDS}"
                )));
            }
            Some(seconds)
        }
    };

    Ok(Material {
        algorithm,
        credential: parse_credential(&credential, algorithm)?,
        signed_headers: parse_signed_headers(&signed_headers)?,
        signature,
        request_time,
        expires_seconds,
        presigned: true,
        query_security_token: security_token,
        query_region_set: region_set,
    })
}

/// The non-empty pieces of `text` between commas, spaces and tabs. By bytes: the separators are
/// ASCII, so every cut is on a character boundary, and this is several times faster than
/// `str::split` with a set of characters.
fn split_params(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut bytes = text.bytes().enumerate();
    std::iter::from_fn(move || {
        loop {
            match bytes.next() {
                Some((i, b',' | b' ' | b'\t')) => {
                    let part = &text[start..i];
                    start = i + 1;
                    if !part.is_empty() {
                        return Some(part);
                    }
                }
                Some(_) => {}
                None => {
                    let part = &text[start..];
                    start = text.len();
                    return (!part.is_empty()).then_some(part);
                }
            }
        }
    })
}

fn parse_credential(raw: &str, algorithm: Algorithm) -> Result<Credential, SigV4Error> {
    let parts: Vec<&str> = raw.split('/').collect();
    let (access_key_id, date, region, service, terminator) = match (algorithm, parts.as_slice()) {
        (Algorithm::V4, [access_key_id, date, region, service, terminator]) => {
            (access_key_id, date, Some(region), service, terminator)
        }
        (Algorithm::V4a, [access_key_id, date, service, terminator]) => {
            (access_key_id, date, None, service, terminator)
        }
        (Algorithm::V4, _) => {
            return Err(SigV4Error::incomplete(format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{raw}'"
            )));
        }
        (Algorithm::V4a, _) => {
            return Err(SigV4Error::incomplete(format!(
                "Credential must have exactly 4 slash-delimited elements, e.g. keyid/date/service/term, got '{raw}'"
            )));
        }
    };
    Ok(Credential {
        access_key_id: (*access_key_id).to_owned(),
        date: (*date).to_owned(),
        region: region.map(|r| (*r).to_owned()),
        service: (*service).to_owned(),
        terminator: (*terminator).to_owned(),
    })
}

/// Checks the scope parts that do not depend on the endpoint's configuration.
pub(crate) fn check_terminator(credential: &Credential) -> Result<(), SigV4Error> {
    if credential.terminator != TERMINATOR {
        return Err(SigV4Error::scope(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'.",
            credential.terminator
        )));
    }
    Ok(())
}

/// The signed header names, lower-cased, in the order the client listed them: kept as one
/// `;`-separated string (the form the canonical request wants), not one allocation per name.
#[derive(Debug)]
pub(crate) struct SignedHeaders(String);

impl SignedHeaders {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(';')
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.iter().any(|h| h == name)
    }

    /// `name;name;…`, as in the canonical request.
    pub(crate) fn joined(&self) -> &str {
        &self.0
    }

    pub(crate) fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

fn parse_signed_headers(raw: &str) -> Result<SignedHeaders, SigV4Error> {
    let mut names = String::with_capacity(raw.len());
    for (i, name) in raw.split(';').enumerate() {
        let name = name.trim();
        if name.is_empty() {
            return Err(SigV4Error::incomplete(format!(
                "SignedHeaders must be a non-empty, semicolon-separated list of header names, got '{raw}'."
            )));
        }
        if i > 0 {
            names.push(';');
        }
        names.push_str(&name.to_ascii_lowercase());
    }
    Ok(SignedHeaders(names))
}

fn first_header(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| lossy(v.as_bytes()).trim().to_owned())
}

fn bad_date(raw: &str) -> SigV4Error {
    SigV4Error::incomplete(format!(
        "Date must be in ISO-8601 'basic format'. Got '{raw}'. See http://en.wikipedia.org/wiki/ISO_8601"
    ))
}

/// Parses `YYYYMMDD'T'HHMMSS'Z'`, the only timestamp form SigV4 allows in `X-Amz-Date`.
pub(crate) fn parse_amz_date(raw: &str) -> Option<OffsetDateTime> {
    let b = raw.as_bytes();
    // ASCII first: the fields below are sliced by byte offset, and an offset inside a multi-byte
    // character would panic (found by fuzzing: `20150Č0T123600Z` is 16 bytes).
    if b.len() != 16 || !raw.is_ascii() || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = &raw[range];
        digits
            .bytes()
            .all(|d| d.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten()
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let day = u8::try_from(num(6..8)?).ok()?;
    let hour = u8::try_from(num(9..11)?).ok()?;
    let minute = u8::try_from(num(11..13)?).ok()?;
    let second = u8::try_from(num(13..15)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Parses an IMF-fixdate HTTP date (`Sun, 30 Aug 2015 12:36:00 GMT`).
fn parse_http_date(raw: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    PrimitiveDateTime::parse(raw, format)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// Formats a time as `YYYYMMDD'T'HHMMSS'Z'` (UTC). By hand: it runs twice per request, and
/// `format!` with widths costs several times more.
pub(crate) fn format_amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        // Not a time any request can verify at; kept readable for the error message.
        return format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            year,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
    }
    let mut out = String::with_capacity(16);
    let mut digits = |n: u32, width: u32| {
        for i in (0..width).rev() {
            out.push(char::from(b'0' + ((n / 10u32.pow(i)) % 10) as u8));
        }
    };
    digits(year.unsigned_abs(), 4);
    digits(u32::from(u8::from(t.month())), 2);
    digits(u32::from(t.day()), 2);
    out.push('T');
    let mut digits = |n: u8| {
        out.push(char::from(b'0' + n / 10));
        out.push(char::from(b'0' + n % 10));
    };
    digits(t.hour());
    digits(t.minute());
    digits(t.second());
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_split_on_commas_and_whitespace() {
        let parts: Vec<&str> = split_params(" a=1,b=2 ,\tc=3,,d ").collect();
        assert_eq!(parts, ["a=1", "b=2", "c=3", "d"]);
        assert_eq!(split_params("").count(), 0);
        assert_eq!(split_params(", \t").count(), 0);
        assert_eq!(split_params("é=ü,x").collect::<Vec<_>>(), ["é=ü", "x"]);
    }

    #[test]
    fn amz_dates() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(format_amz_date(t), "20150830T123600Z");
        for bad in [
            "20150830T123600",
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
            "20150830T253600Z",
            "2015083+T123600Z",
            "",
            // 16 bytes with a multi-byte character across a field boundary.
            "20150\u{10c}0T123600Z",
            "2015\u{10c}830T123600Z",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT").unwrap();
        assert_eq!(format_amz_date(t), "20150830T123600Z");
        assert!(parse_http_date("Sun, 30 Aug 2015 12:36:00 +0000").is_none());
    }

    #[test]
    fn missing_header_parameters_are_all_named() {
        let err = from_authorization_header(b"Bearer abc", &HeaderMap::new(), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Authorization header requires 'Credential' parameter. Authorization header requires \
             'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. \
             Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. \
             Authorization=Bearer abc"
        );
    }

    #[test]
    fn credential_needs_five_parts() {
        let err = parse_credential("AKID/20150830/us-east-1/service", Algorithm::V4).unwrap_err();
        assert_eq!(err.aws_code(), "IncompleteSignatureException");
        assert!(err.to_string().contains("exactly 5 slash-delimited"));
    }

    #[test]
    fn sigv4a_credential_has_no_region() {
        let credential = parse_credential("AKID/20150830/service/aws4_request", Algorithm::V4a)
            .expect("four parts");
        assert_eq!(credential.region, None);
        assert_eq!(credential.scope(), "20150830/service/aws4_request");
        // A SigV4 scope (with a region) is not a SigV4A scope.
        let err = parse_credential(
            "AKID/20150830/us-east-1/service/aws4_request",
            Algorithm::V4a,
        )
        .unwrap_err();
        assert_eq!(err.aws_code(), "IncompleteSignatureException");
        assert!(err.to_string().contains("exactly 4 slash-delimited"));
    }
}
