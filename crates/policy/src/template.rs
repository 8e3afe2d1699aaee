//! Policy text that may contain IAM policy variables (`${aws:PrincipalTag/team}`), compiled once.
//!
//! IAM substitutes variables only in `2012-10-17` documents, in `Resource`/`NotResource` and in the
//! values of string and ARN condition operators. Substituted text is literal (a `*` inside a tag value
//! is not a wildcard), and `${*}`, `${?}`, `${$}` are escapes for the literal characters. A variable
//! may carry a default: `${aws:PrincipalTag/team, 'none'}`. A variable whose key is absent (or
//! multi-valued) and has no default makes the whole value match nothing.

use std::borrow::Cow;

use crate::context::{KeyValues, RequestContext};
use crate::glob::{self, Elem};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Template {
    /// No variables: the pattern is compiled up front so the hot path does not allocate.
    Static {
        text: String,
        pattern: Vec<Elem>,
    },
    Dynamic(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    /// Policy text: `*` and `?` are wildcards in `*Like`/resource matching.
    Text(String),
    /// Text from an escape such as `${*}`: always literal.
    Literal(char),
    Var {
        key: String,
        default: Option<String>,
    },
}

impl Template {
    /// Compiles `text`; variables are recognised only when `variables` is set (Version 2012-10-17).
    pub(crate) fn new(text: &str, variables: bool) -> Template {
        let pieces = if variables {
            split_variables(text)
        } else {
            Vec::new()
        };
        if pieces.iter().all(|p| matches!(p, Piece::Text(_))) {
            Template::Static {
                text: text.to_owned(),
                pattern: glob::compile(text),
            }
        } else {
            Template::Dynamic(pieces)
        }
    }

    /// The value with variables substituted, for exact comparisons. `None` if a variable is unresolved.
    pub(crate) fn text<'a>(&'a self, ctx: &RequestContext) -> Option<Cow<'a, str>> {
        match self {
            Template::Static { text, .. } => Some(Cow::Borrowed(text)),
            Template::Dynamic(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Literal(c) => out.push(*c),
                        Piece::Var { key, default } => out.push_str(&resolve(ctx, key, default)?),
                    }
                }
                Some(Cow::Owned(out))
            }
        }
    }

    /// The value as a wildcard pattern. `None` if a variable is unresolved.
    pub(crate) fn pattern<'a>(&'a self, ctx: &RequestContext) -> Option<Cow<'a, [Elem]>> {
        match self {
            Template::Static { pattern, .. } => Some(Cow::Borrowed(pattern)),
            Template::Dynamic(pieces) => {
                let mut out = Vec::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => glob::push_wild(&mut out, t),
                        Piece::Literal(c) => out.push(Elem::Char(*c)),
                        Piece::Var { key, default } => {
                            glob::push_literal(&mut out, &resolve(ctx, key, default)?)
                        }
                    }
                }
                Some(Cow::Owned(out))
            }
        }
    }
}

fn resolve<'a>(
    ctx: &RequestContext,
    key: &str,
    default: &'a Option<String>,
) -> Option<Cow<'a, str>> {
    // Multi-valued keys cannot be substituted (IAM says so); treat them like absent ones.
    match ctx.get(key).as_ref().and_then(KeyValues::single) {
        Some(single) => Some(Cow::Owned(single.to_owned())),
        None => default.as_deref().map(Cow::Borrowed),
    }
}

/// Splits text into pieces. Anything that does not look like a well-formed variable stays text, the
/// way IAM leaves unrecognised `${…}` sequences alone.
fn split_variables(text: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let Some(piece) = variable(&after[..end]) else {
            plain.push_str(&rest[..start + 2]);
            rest = after;
            continue;
        };
        plain.push_str(&rest[..start]);
        if !plain.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut plain)));
        }
        pieces.push(piece);
        rest = &after[end + 1..];
    }
    plain.push_str(rest);
    if !plain.is_empty() {
        pieces.push(Piece::Text(plain));
    }
    pieces
}

/// Parses the inside of `${…}`.
fn variable(inner: &str) -> Option<Piece> {
    match inner {
        "*" => return Some(Piece::Literal('*')),
        "?" => return Some(Piece::Literal('?')),
        "$" => return Some(Piece::Literal('$')),
        _ => {}
    }
    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => {
            let default = default.trim();
            let default = default.strip_prefix('\'')?.strip_suffix('\'')?;
            (key.trim(), Some(default.to_owned()))
        }
        None => (inner.trim(), None),
    };
    // Every IAM condition key is `prefix:name`; requiring the colon keeps `${foo}` literal.
    let (prefix, name) = key.split_once(':')?;
    if prefix.is_empty() || name.is_empty() || key.contains(char::is_whitespace) {
        return None;
    }
    Some(Piece::Var {
        key: key.to_owned(),
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Principal;
    use crate::glob::matches;

    fn ctx() -> RequestContext<'static> {
        RequestContext::new(
            Principal::iam("arn:aws:iam::111122223333:user/alice"),
            "a:b",
            "r",
        )
        .with_key("aws:PrincipalTag/team", "pay*")
    }

    #[test]
    fn substitution() {
        let cases: &[(&str, bool, Option<&str>)] = &[
            ("plain", true, Some("plain")),
            ("svc/${aws:PrincipalTag/team}/x", true, Some("svc/pay*/x")),
            (
                "${aws:PrincipalTag/team}",
                false,
                Some("${aws:PrincipalTag/team}"),
            ),
            ("${aws:PrincipalTag/missing}", true, None),
            ("${aws:PrincipalTag/missing, 'none'}", true, Some("none")),
            ("${aws:PrincipalTag/missing,'none'}", true, Some("none")),
            ("a${*}b${?}c${$}", true, Some("a*b?c$")),
            ("${foo}", true, Some("${foo}")),
            ("${unterminated", true, Some("${unterminated")),
            ("${aws:username", true, Some("${aws:username")),
            (
                "${bad}${aws:PrincipalAccount}",
                true,
                Some("${bad}111122223333"),
            ),
        ];
        for &(text, vars, want) in cases {
            let t = Template::new(text, vars);
            assert_eq!(t.text(&ctx()).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn substituted_text_is_literal() {
        let t = Template::new("svc/${aws:PrincipalTag/team}/*", true);
        let p = t.pattern(&ctx()).unwrap();
        assert!(matches(&p, "svc/pay*/anything", false));
        assert!(!matches(&p, "svc/payroll/anything", false));
        let escaped = Template::new("a${*}", true);
        let p = escaped.pattern(&ctx()).unwrap();
        assert!(matches(&p, "a*", false));
        assert!(!matches(&p, "ab", false));
    }
}
