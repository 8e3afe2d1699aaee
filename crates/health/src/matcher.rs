//! The health-check success matcher: `matcher.httpCode` (`"200"`, `"200,202"`, `"200-299"`, or
//! a comma-separated mix) parsed once into code ranges.

use std::fmt;
use std::ops::RangeInclusive;

use trellis_model::resources::target_group::DEFAULT_MATCHER;

/// The HTTP status codes a health check accepts as a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    ranges: Vec<RangeInclusive<u16>>,
}

/// Why a `matcher.httpCode` value was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatcherError {
    pub value: String,
}

impl fmt::Display for MatcherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid health-check matcher {:?}: expected comma-separated codes or low-high ranges within 200-499",
            self.value
        )
    }
}

impl std::error::Error for MatcherError {}

impl Matcher {
    /// Parses `matcher.httpCode` with the model's rules: comma-separated three-digit codes or
    /// ascending `low-high` ranges, every code within 200–499. An empty value is the default
    /// (`"200"`), as the API stores it.
    pub fn parse(s: &str) -> Result<Matcher, MatcherError> {
        let s = if s.is_empty() { DEFAULT_MATCHER } else { s };
        let err = || MatcherError {
            value: s.to_owned(),
        };
        let code = |p: &str| -> Result<u16, MatcherError> {
            if p.len() != 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            let n: u16 = p.parse().map_err(|_| err())?;
            if (200..=499).contains(&n) {
                Ok(n)
            } else {
                Err(err())
            }
        };
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let range = match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (code(lo)?, code(hi)?);
                    if lo > hi {
                        return Err(err());
                    }
                    lo..=hi
                }
                None => {
                    let c = code(part)?;
                    c..=c
                }
            };
            ranges.push(range);
        }
        Ok(Matcher { ranges })
    }

    /// Parses `s`, falling back to the default (`"200"`) for a value the model would not have
    /// stored; the store validates matchers, so this only guards against a damaged document.
    pub fn parse_or_default(s: &str) -> Matcher {
        Matcher::parse(s).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "using the default health-check matcher \"200\"");
            Matcher::default()
        })
    }

    /// Whether `status` counts as a passed check.
    pub fn matches(&self, status: u16) -> bool {
        self.ranges.iter().any(|r| r.contains(&status))
    }
}

impl Default for Matcher {
    fn default() -> Matcher {
        Matcher {
            ranges: vec![200..=200],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (matcher, Some((codes that pass, codes that fail)) or None when it must not parse)
    #[test]
    fn matcher_table() {
        type Case = (&'static str, Option<(&'static [u16], &'static [u16])>);
        let cases: &[Case] = &[
            ("200", Some((&[200], &[201, 199, 204, 302, 500]))),
            ("", Some((&[200], &[201, 204]))),
            ("200,202", Some((&[200, 202], &[201, 203, 204]))),
            (
                "200-299",
                Some((&[200, 204, 250, 299], &[199, 300, 302, 404])),
            ),
            ("200-200", Some((&[200], &[201]))),
            ("200-299,302", Some((&[200, 299, 302], &[300, 301, 303]))),
            (
                "404,200-202",
                Some((&[404, 200, 201, 202], &[203, 403, 405])),
            ),
            ("499", Some((&[499], &[498, 500]))),
            ("200,200", Some((&[200], &[201]))),
            ("500", None),
            ("199", None),
            ("20", None),
            ("2000", None),
            ("2xx", None),
            ("200,", None),
            (",200", None),
            ("-200", None),
            ("200-", None),
            ("300-200", None),
            ("200--300", None),
            ("200-299-300", None),
            (" 200", None),
            ("+200", None),
        ];
        for &(input, want) in cases {
            let got = Matcher::parse(input);
            match want {
                None => assert!(got.is_err(), "{input:?} parsed as {got:?}"),
                Some((pass, fail)) => {
                    let m = got.unwrap_or_else(|e| panic!("{input:?}: {e}"));
                    for &c in pass {
                        assert!(m.matches(c), "{input:?} should accept {c}");
                    }
                    for &c in fail {
                        assert!(!m.matches(c), "{input:?} should reject {c}");
                    }
                }
            }
            // The model's validator and this parser agree on every non-empty value.
            if !input.is_empty() {
                assert_eq!(
                    Matcher::parse(input).is_ok(),
                    trellis_model::resources::target_group::is_http_code_matcher(input),
                    "{input:?}"
                );
            }
        }
    }

    #[test]
    fn a_damaged_matcher_falls_back_to_200() {
        let m = Matcher::parse_or_default("nonsense");
        assert_eq!(m, Matcher::default());
        assert!(m.matches(200) && !m.matches(204));
    }
}
