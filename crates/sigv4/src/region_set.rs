//! SigV4A region sets: the `X-Amz-Region-Set` value that takes the place of the credential
//! scope's region.
//!
//! A region set is a comma-separated list of region patterns (`us-east-1`, `us-east-1,eu-west-1`,
//! `us-*`, `*`). The rules Trellis applies (recorded in docs/decisions.md):
//!
//! * entries are separated by `,`, and spaces around an entry are ignored;
//! * an entry is non-empty and made of ASCII letters, digits, `-` and `*`; anything else (an empty
//!   entry, a stray character) makes the whole set malformed, which is an
//!   `IncompleteSignatureException` rather than a silent mismatch;
//! * `*` matches any run of characters, including none, so `*` matches every region and
//!   `us-*` matches `us-east-1` but not `eu-west-1`;
//! * comparison ignores ASCII case (region names are lower case, but nothing is gained by
//!   refusing `US-EAST-1`);
//! * a set matches a region when any of its entries does.

use crate::SigV4Error;

/// Splits and validates a region set, returning its entries (trimmed, as sent).
pub(crate) fn parse(raw: &str) -> Result<Vec<String>, SigV4Error> {
    let entries: Vec<String> = raw
        .split(',')
        .map(|entry| entry.trim_matches(' ').to_owned())
        .collect();
    let valid = |entry: &String| {
        !entry.is_empty()
            && entry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
    };
    if entries.iter().all(valid) {
        Ok(entries)
    } else {
        Err(SigV4Error::incomplete(format!(
            "X-Amz-Region-Set must be a comma-separated list of regions, each of letters, digits, \
             '-' and '*', got '{raw}'."
        )))
    }
}

/// Whether a SigV4A region set (its entries, as in [`crate::Verified::region_set`]) includes
/// `region`: whether any entry matches it, where `*` matches any run of characters (including
/// none) and letters compare ignoring ASCII case. So `*` matches every region, `us-*` matches
/// `us-east-1` but not `eu-west-1`, and `us-east-1,eu-*` matches `eu-west-1`.
pub fn matches(region_set: &[String], region: &str) -> bool {
    region_set
        .iter()
        .any(|pattern| glob_matches(pattern.as_bytes(), region.as_bytes()))
}

/// `*`-only glob matching, ASCII case-insensitive. The classic backtracking-to-the-last-star
/// walk: linear in practice, `O(pattern * text)` at worst, which for region names is nothing.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it is currently assumed to run up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p].eq_ignore_ascii_case(&text[t]) {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            // Let the last star swallow one more character and retry from there.
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(raw: &str) -> Vec<String> {
        parse(raw).unwrap()
    }

    #[test]
    fn parsing() {
        assert_eq!(set("us-east-1"), ["us-east-1"]);
        assert_eq!(set("us-east-1, eu-west-1"), ["us-east-1", "eu-west-1"]);
        assert_eq!(set("*"), ["*"]);
        for bad in [
            "",
            " ",
            "us-east-1,",
            ",us-east-1",
            "us-east-1,,eu-west-1",
            "us_east_1",
            "a?",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.aws_code(), "IncompleteSignatureException", "{bad:?}");
        }
    }

    #[test]
    fn matching() {
        let yes = [
            ("us-east-1", "us-east-1"),
            ("*", "us-east-1"),
            ("us-*", "us-east-1"),
            ("us-*-1", "us-east-1"),
            ("*-1", "us-east-1"),
            ("us-east-1*", "us-east-1"),
            ("u*s*t*1", "us-east-1"),
            ("**", "x"),
            ("eu-west-1,us-east-1", "us-east-1"),
            ("US-EAST-1", "us-east-1"),
        ];
        for (raw, region) in yes {
            assert!(matches(&set(raw), region), "{raw} should match {region}");
        }
        let no = [
            ("us-east-1", "us-east-2"),
            ("us-east", "us-east-1"),
            ("us-east-1", "us-east"),
            ("eu-*", "us-east-1"),
            ("us-*-2", "us-east-1"),
            ("*-2", "us-east-1"),
            ("eu-west-1,ap-*", "us-east-1"),
        ];
        for (raw, region) in no {
            assert!(
                !matches(&set(raw), region),
                "{raw} should not match {region}"
            );
        }
        assert!(!matches(&[], "us-east-1"));
    }
}
