//! The one normal form of a request path: rules match it, auth policies name it, the access log
//! records it and the target receives it, so no two components can read a path differently.
//!
//! [`normalize`] applies, in one pass over the path (never the query string, which is kept as
//! sent):
//!
//! * **Percent-encoding (RFC 3986 §6.2.2.1–2):** an encoded *unreserved* character (`A`–`Z`,
//!   `a`–`z`, `0`–`9`, `-`, `.`, `_`, `~`) is decoded (`/%61dmin` is `/admin`, `%2e` is `.`);
//!   every other encoded byte stays encoded with upper-case hex (`%c3` becomes `%C3`). A raw
//!   byte that is not allowed in a path (a space, `"`, `{`, any non-ASCII byte…) is encoded, so
//!   `/café` and `/caf%C3%A9` are one path.
//! * **Dot segments (RFC 3986 §5.2.4):** `.` and `..` segments are removed, after decoding (so
//!   `%2e%2e` is `..`); `..` above the root stays at the root.
//! * **Empty segments:** consecutive slashes are merged (`//admin` is `/admin`), as nginx's
//!   `merge_slashes` does; a trailing slash is kept (`/a/` is not `/a`).
//! * **Rejected, as ambiguous** (the caller answers 400): a `%` not followed by two hex digits;
//!   an encoded slash or backslash (`%2F`, `%5C`) and a raw backslash, which some targets treat
//!   as a separator and others do not; an encoded NUL (`%00`); a raw control character; a
//!   segment that is a dot segment followed by `;` parameters (`..;x`, `.%3Bx`), which Java
//!   servlet containers read as `..`; a path that does not start with `/` (except `*`, the
//!   `OPTIONS` asterisk form, returned as is).
//! * The empty path is `/` (RFC 9110 §4.2.3).
//!
//! The function is pure and allocation-light: a path that is already in normal form (the
//! common case) is returned borrowed after one scan; only a path that changes is copied.

use std::borrow::Cow;
use std::fmt;

/// Why a path was refused: each is a path that different HTTP implementations would read
/// differently, so no single normal form can be trusted for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/` (and is not `*`).
    NotAbsolute,
    /// A `%` not followed by two hexadecimal digits.
    InvalidPercentEncoding,
    /// `%2F`, `%5C` or a raw `\`: a separator for some targets, data for others.
    EncodedSeparator,
    /// `%00`, which C-based targets read as the end of the path.
    EncodedNul,
    /// A raw control character (bytes 0x00–0x1F and 0x7F).
    ControlCharacter,
    /// A dot segment carrying `;` parameters (`..;x`), a traversal for servlet containers.
    DotSegmentParameters,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the path does not start with '/'",
            PathError::InvalidPercentEncoding => "a '%' is not followed by two hex digits",
            PathError::EncodedSeparator => "the path contains an encoded '/' or a '\\'",
            PathError::EncodedNul => "the path contains an encoded NUL",
            PathError::ControlCharacter => "the path contains a control character",
            PathError::DotSegmentParameters => "a dot segment carries ';' parameters",
        })
    }
}

impl std::error::Error for PathError {}

/// The normal form of `path` (without its query string), or why it is refused. See the module
/// documentation for the rules. Idempotent: `normalize(normalize(p)) == normalize(p)`.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if path.is_empty() {
        return Ok(Cow::Borrowed("/"));
    }
    if path == "*" {
        return Ok(Cow::Borrowed(path));
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    rewrite(path.as_bytes()).map(Cow::Owned)
}

/// How a raw path byte is treated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Kept as is (`pchar` other than `%`, and `/`).
    Keep,
    /// Percent-encoded in the normal form.
    Encode,
    /// The start of a percent-encoded byte.
    Percent,
    /// Refused: a control character or a backslash.
    Refuse,
}

const fn class(b: u8) -> Class {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => Class::Keep,
        // unreserved, sub-delims, ':' and '@' (RFC 3986 pchar), and the separator
        b'-' | b'.' | b'_' | b'~' => Class::Keep,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' => Class::Keep,
        b':' | b'@' | b'/' => Class::Keep,
        b'%' => Class::Percent,
        b'\\' | 0x00..=0x1f | 0x7f => Class::Refuse,
        _ => Class::Encode,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Whether `path` (starting with `/`) is already in normal form: no empty or dot segment
/// before the end, no ambiguous segment, every byte allowed raw, every escape upper-case and
/// necessary.
fn is_normal(path: &[u8]) -> bool {
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        match class(b) {
            Class::Keep if b == b'/' => {
                let segment = segment_at(path, i + 1);
                // An empty segment is allowed only as the last (a trailing slash).
                if segment.is_empty() && i + 1 < path.len() {
                    return false;
                }
                if segment.first() == Some(&b'.') && is_dot_like(segment) {
                    return false;
                }
            }
            Class::Keep => {}
            Class::Percent => {
                let (Some(&hi), Some(&lo)) = (path.get(i + 1), path.get(i + 2)) else {
                    return false;
                };
                if !(hi.is_ascii_digit() || (b'A'..=b'F').contains(&hi))
                    || !(lo.is_ascii_digit() || (b'A'..=b'F').contains(&lo))
                {
                    return false;
                }
                let byte = (hex_value(hi).unwrap_or(0) << 4) | hex_value(lo).unwrap_or(0);
                if is_unreserved(byte) || matches!(byte, b'/' | b'\\' | 0) {
                    return false;
                }
                i += 2;
            }
            Class::Encode | Class::Refuse => return false,
        }
        i += 1;
    }
    true
}

/// The raw bytes from `start` up to the next `/` or the end.
fn segment_at(path: &[u8], start: usize) -> &[u8] {
    let rest = &path[start.min(path.len())..];
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    &rest[..end]
}

/// Whether a raw segment starting with `.` is a dot segment, or one with `;` parameters (raw or
/// `%3B`). Other escapes that could hide a dot (`%2E`, lower-case hex) make the path non-normal
/// on their own.
fn is_dot_like(segment: &[u8]) -> bool {
    let rest = segment.strip_prefix(b".").unwrap_or(segment);
    let rest = rest.strip_prefix(b".").unwrap_or(rest);
    rest.is_empty() || rest.starts_with(b";") || rest.starts_with(b"%3B")
}

/// The normal form of a path that is not already normal.
fn rewrite(path: &[u8]) -> Result<String, PathError> {
    let mut out: Vec<u8> = Vec::with_capacity(path.len() + 8);
    // The current segment in normal form (decoded where decoding is allowed).
    let mut segment: Vec<u8> = Vec::with_capacity(64);
    // Skip the leading '/'; every segment is then terminated by '/' or the end.
    let mut i = 1;
    loop {
        segment.clear();
        while i < path.len() && path[i] != b'/' {
            let b = path[i];
            match class(b) {
                Class::Keep => segment.push(b),
                Class::Encode => push_encoded(&mut segment, b),
                Class::Refuse if b == b'\\' => return Err(PathError::EncodedSeparator),
                Class::Refuse => return Err(PathError::ControlCharacter),
                Class::Percent => {
                    let hi = path.get(i + 1).copied().and_then(hex_value);
                    let lo = path.get(i + 2).copied().and_then(hex_value);
                    let (Some(hi), Some(lo)) = (hi, lo) else {
                        return Err(PathError::InvalidPercentEncoding);
                    };
                    let byte = (hi << 4) | lo;
                    match byte {
                        b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                        0 => return Err(PathError::EncodedNul),
                        _ if is_unreserved(byte) => segment.push(byte),
                        _ => push_encoded(&mut segment, byte),
                    }
                    i += 2;
                }
            }
            i += 1;
        }
        let last = i >= path.len();
        match segment.as_slice() {
            b"." => {}
            b".." => {
                // Drop the last output segment with its '/'; at the root there is none.
                let keep = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(keep);
            }
            // Empty segments merge into their neighbours (`//`).
            b"" => {}
            s if has_dot_parameters(s) => return Err(PathError::DotSegmentParameters),
            s => {
                out.push(b'/');
                out.extend_from_slice(s);
            }
        }
        if last {
            // A path ending in a separator or a dot segment names a directory: `/a/` and
            // `/a/b/..` both end in '/'.
            if segment.is_empty() || segment == b"." || segment == b".." {
                out.push(b'/');
            }
            break;
        }
        i += 1;
    }
    if out.is_empty() {
        out.push(b'/');
    }
    // Every byte pushed is ASCII: raw bytes are kept only when `Keep` (ASCII), all others are
    // written as `%XX`.
    Ok(String::from_utf8(out).unwrap_or_else(|_| "/".to_owned()))
}

fn push_encoded(out: &mut Vec<u8>, byte: u8) {
    out.extend_from_slice(&[
        b'%',
        HEX[usize::from(byte >> 4)],
        HEX[usize::from(byte & 0xf)],
    ]);
}

/// Whether a normalised segment is `.` or `..` followed by `;` parameters (raw or as `%3B`).
fn has_dot_parameters(segment: &[u8]) -> bool {
    let rest = segment.strip_prefix(b".").unwrap_or(segment);
    if rest.len() == segment.len() {
        return false;
    }
    let rest = rest.strip_prefix(b".").unwrap_or(rest);
    rest.starts_with(b";") || rest.starts_with(b"%3B")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (input, expected normal form or error, why)
    type Case = (&'static str, Result<&'static str, PathError>, &'static str);

    const CASES: &[Case] = &[
        ("/", Ok("/"), "root"),
        ("", Ok("/"), "empty path is the root"),
        ("*", Ok("*"), "OPTIONS asterisk form"),
        ("/admin/x", Ok("/admin/x"), "already normal"),
        ("/a/", Ok("/a/"), "trailing slash kept"),
        ("/a/b/c.txt", Ok("/a/b/c.txt"), "dots inside a name"),
        (
            "/.well-known/x",
            Ok("/.well-known/x"),
            "leading dot in a name",
        ),
        ("/..foo/x", Ok("/..foo/x"), "two dots in a name"),
        ("/a;b=c/d", Ok("/a;b=c/d"), "parameters on a plain segment"),
        ("/a/./b/../c", Ok("/a/c"), "RFC 3986 example"),
        ("/./admin/x", Ok("/admin/x"), "leading dot segment"),
        ("//admin/x", Ok("/admin/x"), "double slash"),
        ("/a//b///c", Ok("/a/b/c"), "runs of slashes"),
        ("/a//", Ok("/a/"), "trailing double slash"),
        ("/x/../admin/x", Ok("/admin/x"), "dot-dot"),
        ("/../admin", Ok("/admin"), "dot-dot above the root"),
        ("/../../..", Ok("/"), "only dot-dots"),
        ("/a/..", Ok("/"), "trailing dot-dot"),
        ("/a/b/..", Ok("/a/"), "trailing dot-dot keeps the directory"),
        ("/a/.", Ok("/a/"), "trailing dot"),
        ("/.", Ok("/"), "lone dot"),
        ("/..", Ok("/"), "lone dot-dot"),
        ("/%61dmin/x", Ok("/admin/x"), "encoded unreserved letter"),
        ("/%41DMIN", Ok("/ADMIN"), "encoded upper-case letter"),
        ("/%2e%2e/admin/x", Ok("/admin/x"), "encoded dot-dot"),
        (
            "/%2E%2E/admin/x",
            Ok("/admin/x"),
            "encoded dot-dot, upper-case hex",
        ),
        ("/.%2e/admin", Ok("/admin"), "half-encoded dot-dot"),
        ("/x/%2e/admin", Ok("/x/admin"), "encoded dot"),
        ("/%7euser/%2D%5F", Ok("/~user/-_"), "other unreserved"),
        ("/a%20b", Ok("/a%20b"), "encoded space stays"),
        (
            "/a%3bb",
            Ok("/a%3Bb"),
            "reserved stays encoded, hex upper-cased",
        ),
        ("/a%3Fb", Ok("/a%3Fb"), "encoded '?' stays"),
        ("/%25", Ok("/%25"), "encoded '%' stays"),
        (
            "/%252e%252e/x",
            Ok("/%252e%252e/x"),
            "double encoding is not decoded twice",
        ),
        ("/caf%c3%a9", Ok("/caf%C3%A9"), "lower-case hex upper-cased"),
        ("/café", Ok("/caf%C3%A9"), "non-ASCII bytes encoded"),
        ("/a b", Ok("/a%20b"), "raw space encoded"),
        ("/{x}", Ok("/%7Bx%7D"), "raw braces encoded"),
        (
            "/.%2fadmin/x",
            Err(PathError::EncodedSeparator),
            "encoded slash",
        ),
        (
            "/a%2Fb",
            Err(PathError::EncodedSeparator),
            "encoded slash, upper",
        ),
        (
            "/a%2fb",
            Err(PathError::EncodedSeparator),
            "encoded slash, lower",
        ),
        (
            "/a%5cb",
            Err(PathError::EncodedSeparator),
            "encoded backslash",
        ),
        (
            "/a\\..\\admin",
            Err(PathError::EncodedSeparator),
            "raw backslash",
        ),
        ("/a%00.txt", Err(PathError::EncodedNul), "encoded NUL"),
        ("/a\u{1}b", Err(PathError::ControlCharacter), "raw control"),
        ("/a%zz", Err(PathError::InvalidPercentEncoding), "not hex"),
        (
            "/a%",
            Err(PathError::InvalidPercentEncoding),
            "lone percent",
        ),
        (
            "/a%4",
            Err(PathError::InvalidPercentEncoding),
            "one hex digit",
        ),
        (
            "/a%g1",
            Err(PathError::InvalidPercentEncoding),
            "bad first digit",
        ),
        (
            "/x/..;/admin",
            Err(PathError::DotSegmentParameters),
            "servlet traversal",
        ),
        (
            "/x/.;a/admin",
            Err(PathError::DotSegmentParameters),
            "dot with parameters",
        ),
        (
            "/x/..%3b/admin",
            Err(PathError::DotSegmentParameters),
            "encoded ';'",
        ),
        (
            "/x/%2e%2e;/admin",
            Err(PathError::DotSegmentParameters),
            "encoded dots, ';'",
        ),
        ("admin", Err(PathError::NotAbsolute), "relative"),
        ("http://x/", Err(PathError::NotAbsolute), "not a path"),
    ];

    fn check(input: &str, expected: Result<&str, PathError>, why: &str) {
        let got = normalize(input);
        assert_eq!(got.as_deref().map_err(|e| *e), expected, "{why}: {input:?}");
        if let Ok(out) = got {
            assert_properties(input, &out);
        }
    }

    /// What every normal form satisfies, whatever the input.
    fn assert_properties(input: &str, out: &str) {
        let again = normalize(out).unwrap_or_else(|e| panic!("{input:?} → {out:?} → {e}"));
        assert_eq!(again, out, "not idempotent for {input:?}");
        assert!(
            matches!(again, Cow::Borrowed(_)),
            "a normal form must take the fast path: {out:?}"
        );
        if out == "*" {
            return;
        }
        assert!(out.starts_with('/'), "{input:?} → {out:?}");
        // The fast path's verdict agrees with the rewrite: a normal path rewrites to itself.
        assert_eq!(rewrite(out.as_bytes()).as_deref(), Ok(out), "{input:?}");
        assert!(out.is_ascii(), "{input:?} → {out:?}");
        let segments: Vec<&str> = out[1..].split('/').collect();
        for (n, segment) in segments.iter().enumerate() {
            assert!(
                *segment != "." && *segment != "..",
                "dot segment in {out:?} (from {input:?})"
            );
            assert!(
                !segment.is_empty() || n == segments.len() - 1,
                "empty segment in {out:?} (from {input:?})"
            );
        }
        assert!(!out.contains("/./") && !out.contains("/../"));
    }

    #[test]
    fn normalize_table() {
        for (input, expected, why) in CASES {
            check(input, *expected, why);
        }
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for path in ["/", "/admin/x", "/a/", "/caf%C3%A9", "/.well-known/a", "*"] {
            assert!(matches!(normalize(path), Ok(Cow::Borrowed(_))), "{path}");
        }
    }

    #[test]
    fn very_long_paths() {
        let long = "/a".repeat(50_000);
        assert!(matches!(normalize(&long), Ok(Cow::Borrowed(_))));
        let dots = format!("{}/admin", "/x/..".repeat(50_000));
        check(&dots, Ok("/admin"), "many dot-dots");
        let slashes = format!("{}admin", "/".repeat(100_000));
        check(&slashes, Ok("/admin"), "many slashes");
        let encoded = "/%61".repeat(30_000);
        assert_eq!(normalize(&encoded).unwrap(), "/a".repeat(30_000));
    }

    /// Every short path over an alphabet of the troublesome pieces: properties hold, and a
    /// path that normalises never smuggles `/admin` past a prefix check of the normal form
    /// through a decoding the normal form does not show.
    #[test]
    fn properties_over_generated_paths() {
        const PIECES: &[&str] = &[
            "/", ".", "..", "%2e", "%2E", "%2f", "%5c", "%61", "%", "a", "admin", ";", "%3b", "~",
            "é", " ", "%zz", "%C3%a9", "\\", "%00", "%25",
        ];
        let mut stack: Vec<(String, u8)> = vec![("/".to_owned(), 0)];
        let mut checked = 0usize;
        while let Some((path, depth)) = stack.pop() {
            if let Ok(out) = normalize(&path) {
                assert_properties(&path, &out);
                // Decoding every unreserved escape of the output changes nothing: the normal
                // form already is what a decoding target would see.
                assert!(
                    !out.contains("%2E") && !out.contains("%61"),
                    "{path:?} → {out:?}"
                );
            }
            checked += 1;
            if depth < 4 {
                for piece in PIECES {
                    stack.push((format!("{path}{piece}"), depth + 1));
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }
}
