//! Canonicalisation: the canonical URI, query string and header values of a SigV4 canonical request.
//!
//! Everything here follows the rules AWS applies to non-S3 services, as implemented by the
//! reference signers (aws-sigv4, the CRT) that clients actually use:
//!
//! * the path is taken exactly as received (still percent-encoded), dot segments and empty
//!   segments are removed, and the result is percent-encoded *again* ("double encoding"), so a
//!   `%3D` on the wire is `%253D` in the canonical URI;
//! * query parameters are decoded (with `+` meaning space, as form decoding does), re-encoded
//!   with only RFC 3986 unreserved characters left bare, and sorted by encoded key, then value;
//! * header values are trimmed of surrounding spaces, runs of spaces collapse to one, and the
//!   values of a repeated header are joined with `,` in the order received.
//!
//! Work is done on bytes rather than `str` because header values and decoded query components
//! need not be UTF-8, and the signature is defined over bytes.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

/// Bytes left unencoded in a canonical query component: RFC 3986 unreserved characters.
const QUERY_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Bytes left unencoded in the canonical URI: unreserved characters plus the segment separator.
const PATH: &AsciiSet = &QUERY_COMPONENT.remove(b'/');

/// One decoded query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryParam {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

/// The canonical URI for a raw (as received, percent-encoded) request path.
/// Borrowed when the path needs neither normalising nor encoding (`/static`).
pub(crate) fn canonical_uri(raw_path: &str) -> Cow<'_, str> {
    match normalize_path(raw_path) {
        Cow::Borrowed(path) => Cow::from(percent_encode(path.as_bytes(), PATH)),
        Cow::Owned(path) => Cow::Owned(percent_encode(path.as_bytes(), PATH).to_string()),
    }
}

/// Removes dot segments and empty segments (RFC 3986 section 5.2.4, plus the `//` collapsing AWS
/// does), keeping a trailing slash when the input ends in one.
fn normalize_path(path: &str) -> Cow<'_, str> {
    if path.is_empty() {
        return Cow::Borrowed("/");
    }
    let needs_work = !path.starts_with('/') || path.contains("//") || path.contains('.');
    if !needs_work {
        return Cow::Borrowed(path);
    }

    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    // "/a/b/", "/a/b/." and "/a/b/.." all denote a directory, so the slash survives.
    let ends_as_directory = ["/", "/.", "/.."].iter().any(|s| path.ends_with(s));
    if out.is_empty() || ends_as_directory {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Splits and decodes a raw query string. Empty pieces (`a=1&&b=2`) are dropped and a piece
/// without `=` is a key with an empty value, as form decoding does.
pub(crate) fn parse_query(raw: Option<&str>) -> Vec<QueryParam> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    raw.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            QueryParam {
                key: form_decode(key.as_bytes()),
                value: form_decode(value.as_bytes()),
            }
        })
        .collect()
}

/// Percent-decodes one query component, treating `+` as a space. Malformed escapes (`%zz`, a
/// trailing `%`) are kept literally, so they come out as `%25..` after re-encoding, which is what
/// the reference signers produce for them.
fn form_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = input.get(i + 1).copied().and_then(hex_value);
                let lo = input.get(i + 2).copied().and_then(hex_value);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push((hi << 4) | lo);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The canonical query string. `exclude_key` drops one parameter by decoded name: a presigned
/// request's `X-Amz-Signature` is not part of what was signed.
pub(crate) fn canonical_query(params: &[QueryParam], exclude_key: Option<&[u8]>) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .filter(|p| Some(p.key.as_slice()) != exclude_key)
        .map(|p| {
            (
                percent_encode(&p.key, QUERY_COMPONENT).to_string(),
                percent_encode(&p.value, QUERY_COMPONENT).to_string(),
            )
        })
        .collect();
    // Sorting the encoded forms (not the decoded ones) is what the spec asks for; the two orders
    // differ for keys containing characters that encode to `%XX`.
    encoded.sort();
    let mut out = String::new();
    for (i, (key, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Trims surrounding spaces and collapses runs of spaces into one. Only the space character is
/// touched: the reference signers leave tabs and other whitespace alone, and a verifier must
/// agree with them byte for byte.
#[cfg(test)]
pub(crate) fn trim_all(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    trim_all_into(value, &mut out);
    out
}

/// `bytes` as text, replacing invalid UTF-8 as [`String::from_utf8_lossy`] does. Valid input (all
/// of it in practice) is checked by `str::from_utf8`, which is several times faster on ASCII than
/// the lossy decoder's byte-by-byte walk.
pub(crate) fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Where canonical bytes go: a buffer (error messages, SigV4A's region set) or straight into the
/// SHA-256 of the canonical request, which then never exists as one string.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for sha2::Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        sha2::Digest::update(self, bytes);
    }
}

/// [`trim_all`] appended to `out` (the verifier streams the canonical headers into one sink).
/// A value without leading, trailing or repeated spaces — nearly every value — is written whole.
pub(crate) fn trim_all_into(value: &[u8], out: &mut impl Sink) {
    let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |i| i + 1);
    let mut value = &value[start..end];
    // `contains` on bytes is a memchr: the usual value (a kilobyte of session token, say) has no
    // space left and is written at once.
    if !value.contains(&b' ') {
        out.put(value);
        return;
    }
    // Each run of spaces is written as one space: write up to and including a run's first
    // space, then skip the rest of it.
    while let Some(i) = value.windows(2).position(|w| w == b"  ") {
        out.put(&value[..=i]);
        let rest = &value[i + 1..];
        let skip = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
        value = &rest[skip..];
    }
    out.put(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_normalisation() {
        let cases = [
            ("", "/"),
            ("/", "/"),
            ("/foo", "/foo"),
            ("/foo/", "/foo/"),
            ("//", "/"),
            ("//example//", "/example/"),
            ("/./", "/"),
            ("/foo/.", "/foo/"),
            ("/foo/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/example/..", "/"),
            ("/../foo", "/foo"),
            ("/a/./b/../c", "/a/c"),
            ("foo", "/foo"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a..b/c", "/a..b/c"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_path(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn uri_is_double_encoded() {
        assert_eq!(
            canonical_uri("/test/@connections/JBDvjfGEIAMCERw%3D"),
            "/test/%40connections/JBDvjfGEIAMCERw%253D"
        );
        assert_eq!(canonical_uri("/ሴ"), "/%E1%88%B4");
        assert_eq!(canonical_uri("/a%20b/-._~"), "/a%2520b/-._~");
    }

    #[test]
    fn query_decoding_and_encoding() {
        let params = parse_query(Some("b=2&a=1&&c&d=x+y%2Bz&e=%zz&f=%4"));
        assert_eq!(
            canonical_query(&params, None),
            "a=1&b=2&c=&d=x%20y%2Bz&e=%25zz&f=%254"
        );
        // Sort is by encoded key: "%2A" (for '*') sorts before "A".
        let params = parse_query(Some("A=1&*=2&a=3"));
        assert_eq!(canonical_query(&params, None), "%2A=2&A=1&a=3");
        let params = parse_query(Some("X-Amz-Signature=abc&x=1"));
        assert_eq!(
            canonical_query(&params, Some(b"X-Amz-Signature".as_slice())),
            "x=1"
        );
        // Same key: ordered by value.
        let params = parse_query(Some("k=b&k=a"));
        assert_eq!(canonical_query(&params, None), "k=a&k=b");
    }

    #[test]
    fn header_value_trimming() {
        assert_eq!(trim_all(b"  a   b  c "), b"a b c");
        assert_eq!(trim_all(b"   "), b"");
        assert_eq!(trim_all(b"a\t\tb"), b"a\t\tb");
        assert_eq!(trim_all(b"x"), b"x");
    }
}
