//! Condition operators: parsing operator names and values, and evaluating a condition block.
//!
//! Semantics follow the IAM reference ("Condition operators", "Single-valued vs. multivalued context
//! keys"):
//!
//! - operators in one `Condition` block are ANDed, keys within an operator are ANDed, and the policy
//!   values listed for one key are ORed;
//! - a key that is absent from the request (or has no values) makes a positive operator false and a
//!   negated one (`StringNotEquals`, `NotIpAddress`, …) true, unless the operator ends in `IfExists`,
//!   which makes it true either way;
//! - without a set qualifier a negated operator is the plain negation of its positive form, so with a
//!   multi-valued key it is true only when *no* request value matches;
//! - `ForAnyValue:` is true when at least one request value satisfies the operator (false for an absent
//!   key); `ForAllValues:` is true when every request value does (true for an absent key — the
//!   well-known trap that makes `ForAllValues` + `Allow` dangerous);
//! - `Null` tests presence: `"true"` matches an absent key, `"false"` a present one.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde_json::Value;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

use crate::context::RequestContext;
use crate::glob::{self, Elem, eq_ignore_case};
use crate::template::Template;

/// `ForAnyValue:` / `ForAllValues:` qualifier on an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetQualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// Whether `request OP policy` holds.
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

/// The comparison an operator performs, with negation factored out: `StringNotLike` is
/// `StringLike` negated, `ArnEquals` and `ArnLike` are the same comparison in IAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    IpAddress,
    Arn,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operator {
    pub qualifier: SetQualifier,
    pub comparison: Comparison,
    pub negated: bool,
    pub if_exists: bool,
}

/// Base operator names (lower-cased for lookup) → (comparison, negated).
const OPERATORS: &[(&str, Comparison, bool)] = &[
    ("stringequals", Comparison::StringEquals, false),
    ("stringnotequals", Comparison::StringEquals, true),
    (
        "stringequalsignorecase",
        Comparison::StringEqualsIgnoreCase,
        false,
    ),
    (
        "stringnotequalsignorecase",
        Comparison::StringEqualsIgnoreCase,
        true,
    ),
    ("stringlike", Comparison::StringLike, false),
    ("stringnotlike", Comparison::StringLike, true),
    ("numericequals", Comparison::Numeric(Cmp::Eq), false),
    ("numericnotequals", Comparison::Numeric(Cmp::Eq), true),
    ("numericlessthan", Comparison::Numeric(Cmp::Lt), false),
    ("numericlessthanequals", Comparison::Numeric(Cmp::Le), false),
    ("numericgreaterthan", Comparison::Numeric(Cmp::Gt), false),
    (
        "numericgreaterthanequals",
        Comparison::Numeric(Cmp::Ge),
        false,
    ),
    ("dateequals", Comparison::Date(Cmp::Eq), false),
    ("datenotequals", Comparison::Date(Cmp::Eq), true),
    ("datelessthan", Comparison::Date(Cmp::Lt), false),
    ("datelessthanequals", Comparison::Date(Cmp::Le), false),
    ("dategreaterthan", Comparison::Date(Cmp::Gt), false),
    ("dategreaterthanequals", Comparison::Date(Cmp::Ge), false),
    ("bool", Comparison::Bool, false),
    ("binaryequals", Comparison::Binary, false),
    ("ipaddress", Comparison::IpAddress, false),
    ("notipaddress", Comparison::IpAddress, true),
    ("arnequals", Comparison::Arn, false),
    ("arnlike", Comparison::Arn, false),
    ("arnnotequals", Comparison::Arn, true),
    ("arnnotlike", Comparison::Arn, true),
    ("null", Comparison::Null, false),
];

/// Strips an ASCII prefix case-insensitively.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let split = s.len().checked_sub(suffix.len())?;
    let tail = s.get(split..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..split])
}

impl Operator {
    /// Parses `ForAllValues:StringLikeIfExists` and friends. Names are matched case-insensitively,
    /// which is more forgiving than IAM's documentation but never changes meaning.
    pub(crate) fn parse(name: &str) -> Result<Operator, String> {
        let (qualifier, rest) = if let Some(rest) = strip_prefix_ci(name, "ForAnyValue:") {
            (SetQualifier::ForAnyValue, rest)
        } else if let Some(rest) = strip_prefix_ci(name, "ForAllValues:") {
            (SetQualifier::ForAllValues, rest)
        } else {
            (SetQualifier::None, name)
        };
        let (base, if_exists) = match strip_suffix_ci(rest, "IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let lower = base.to_ascii_lowercase();
        let Some(&(_, comparison, negated)) = OPERATORS.iter().find(|(n, _, _)| *n == lower) else {
            return Err(format!("unknown condition operator \"{name}\""));
        };
        if comparison == Comparison::Null {
            // `Null` is itself an existence test, so neither qualifier nor IfExists has a meaning.
            if if_exists {
                return Err("Null cannot be combined with IfExists".into());
            }
            if qualifier != SetQualifier::None {
                return Err("Null cannot be combined with ForAnyValue/ForAllValues".into());
            }
        }
        Ok(Operator {
            qualifier,
            comparison,
            negated,
            if_exists,
        })
    }
}

/// The compiled policy values for one condition key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    Strings(Vec<Template>),
    Numbers(Vec<f64>),
    /// Unix time in nanoseconds.
    Dates(Vec<i128>),
    /// `Bool` values, and `Null` values (`true` = must be absent).
    Bools(Vec<bool>),
    Binary(Vec<String>),
    Nets(Vec<IpNet>),
}

/// One `key: values` entry inside an operator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub values: Values,
}

/// One operator with its entries: `"StringEquals": {"k1": …, "k2": …}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Block {
    pub operator: Operator,
    pub entries: Vec<Entry>,
}

/// Converts a JSON scalar to the string IAM compares; `None` for null, objects and arrays.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Compiles the values of one key for `operator`. Errors are `(index within the array, message)`,
/// index `None` when the value was not an array.
pub(crate) fn compile_values(
    operator: Operator,
    value: &Value,
    variables: bool,
) -> Result<Values, Vec<(Option<usize>, String)>> {
    let items: Vec<(Option<usize>, &Value)> = match value {
        Value::Array(items) if items.is_empty() => {
            return Err(vec![(None, "must list at least one value".into())]);
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (Some(i), v))
            .collect(),
        other => vec![(None, other)],
    };
    let mut errors = Vec::new();
    let mut texts = Vec::with_capacity(items.len());
    for (index, item) in &items {
        match scalar_text(item) {
            Some(text) => texts.push(text),
            None => errors.push((*index, "must be a string, number or boolean".into())),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Parse every value with `parse_one`, collecting all failures.
    fn each<T>(
        items: &[(Option<usize>, &Value)],
        texts: &[String],
        parse_one: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, Vec<(Option<usize>, String)>> {
        let mut out = Vec::with_capacity(texts.len());
        let mut errors = Vec::new();
        for ((index, _), text) in items.iter().zip(texts) {
            match parse_one(text) {
                Ok(v) => out.push(v),
                Err(e) => errors.push((*index, e)),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
    match operator.comparison {
        Comparison::StringEquals
        | Comparison::StringEqualsIgnoreCase
        | Comparison::StringLike
        | Comparison::Arn => Ok(Values::Strings(
            texts.iter().map(|t| Template::new(t, variables)).collect(),
        )),
        Comparison::Numeric(_) => each(&items, &texts, |t| {
            parse_number(t).ok_or_else(|| format!("\"{t}\" is not a number"))
        })
        .map(Values::Numbers),
        Comparison::Date(_) => each(&items, &texts, |t| {
            parse_date(t).ok_or_else(|| format!("\"{t}\" is not an ISO 8601 date or epoch time"))
        })
        .map(Values::Dates),
        Comparison::Bool | Comparison::Null => each(&items, &texts, |t| {
            parse_bool(t).ok_or_else(|| format!("\"{t}\" is not \"true\" or \"false\""))
        })
        .map(Values::Bools),
        Comparison::Binary => Ok(Values::Binary(texts)),
        Comparison::IpAddress => each(&items, &texts, |t| {
            parse_net(t).ok_or_else(|| format!("\"{t}\" is not an IP address or CIDR block"))
        })
        .map(Values::Nets),
    }
}

fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    // Rust's float parser also accepts `inf` and `NaN`, which IAM does not.
    if !text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    IpNet::from_str(text)
        .ok()
        .or_else(|| IpAddr::from_str(text).ok().map(IpNet::from))
}

/// Parses the date forms IAM accepts: ISO 8601 (`2024-01-31T12:00:00Z`, with or without seconds,
/// fraction or offset; a bare `2024-01-31` means midnight UTC) and epoch seconds. Returns Unix time in
/// nanoseconds so comparisons are exact.
pub(crate) fn parse_date(text: &str) -> Option<i128> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = text.parse().ok()?;
        return OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .map(OffsetDateTime::unix_timestamp_nanos);
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(t.unix_timestamp_nanos());
    }
    // Without an offset IAM assumes UTC.
    if let Ok(t) = PrimitiveDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(t.assume_utc().unix_timestamp_nanos());
    }
    if let Ok(d) = Date::parse(text, &Iso8601::DEFAULT) {
        return Some(
            PrimitiveDateTime::new(d, Time::MIDNIGHT)
                .assume_utc()
                .unix_timestamp_nanos(),
        );
    }
    None
}

/// ARN comparison as IAM does it for `ArnEquals`/`ArnLike`: the six colon-separated components are
/// matched one by one, so a `*` in one field cannot swallow a `:` and shift the fields after it. A
/// pattern that is not an ARN at all (typically a bare `*`) is matched against the whole string; a
/// truncated ARN pattern matches nothing.
fn arn_matches(pattern: &[Elem], value: &str) -> bool {
    let pattern_parts: Vec<&[Elem]> = pattern.splitn(6, |e| *e == Elem::Char(':')).collect();
    if pattern_parts.len() < 6 {
        let is_arn = pattern.starts_with(&[Elem::Char('a'), Elem::Char('r'), Elem::Char('n')])
            && pattern.get(3) == Some(&Elem::Char(':'));
        return !is_arn && glob::matches(pattern, value, false);
    }
    let value_parts: Vec<&str> = value.splitn(6, ':').collect();
    value_parts.len() == 6
        && pattern_parts
            .iter()
            .zip(&value_parts)
            .all(|(p, v)| glob::matches(p, v, false))
}

impl Block {
    /// Whether every entry of this operator holds for the request.
    pub(crate) fn holds(&self, ctx: &RequestContext) -> bool {
        self.entries.iter().all(|e| self.entry_holds(e, ctx))
    }

    fn entry_holds(&self, entry: &Entry, ctx: &RequestContext) -> bool {
        let op = self.operator;
        let request = ctx.get(&entry.key);
        if op.comparison == Comparison::Null {
            let absent = request.is_none();
            return match &entry.values {
                Values::Bools(wanted) => wanted.contains(&absent),
                _ => false,
            };
        }
        let Some(request) = request else {
            return match op.qualifier {
                _ if op.if_exists => true,
                SetQualifier::ForAllValues => true,
                SetQualifier::ForAnyValue => false,
                SetQualifier::None => op.negated,
            };
        };
        // The operator applied to one request value, negation included.
        let single = |v: &str| self.positive(&entry.values, v, ctx) != op.negated;
        match op.qualifier {
            SetQualifier::ForAnyValue => request.iter().any(single),
            SetQualifier::ForAllValues => request.iter().all(single),
            SetQualifier::None => {
                let any_positive = request.iter().any(|v| self.positive(&entry.values, v, ctx));
                any_positive != op.negated
            }
        }
    }

    /// Whether one request value matches any of the policy values under the positive form of the
    /// operator. Request values that do not parse as the operator's type match nothing.
    fn positive(&self, values: &Values, request: &str, ctx: &RequestContext) -> bool {
        match (self.operator.comparison, values) {
            (Comparison::StringEquals, Values::Strings(ts)) => {
                ts.iter().any(|t| t.text(ctx).is_some_and(|p| p == request))
            }
            (Comparison::StringEqualsIgnoreCase, Values::Strings(ts)) => ts
                .iter()
                .any(|t| t.text(ctx).is_some_and(|p| eq_ignore_case(&p, request))),
            (Comparison::StringLike, Values::Strings(ts)) => ts.iter().any(|t| {
                t.pattern(ctx)
                    .is_some_and(|p| glob::matches(&p, request, false))
            }),
            (Comparison::Arn, Values::Strings(ts)) => ts
                .iter()
                .any(|t| t.pattern(ctx).is_some_and(|p| arn_matches(&p, request))),
            (Comparison::Numeric(cmp), Values::Numbers(ns)) => {
                parse_number(request).is_some_and(|r| ns.iter().any(|n| cmp.holds(r, *n)))
            }
            (Comparison::Date(cmp), Values::Dates(ds)) => {
                parse_date(request).is_some_and(|r| ds.iter().any(|d| cmp.holds(r, *d)))
            }
            (Comparison::Bool, Values::Bools(bs)) => {
                parse_bool(request).is_some_and(|r| bs.contains(&r))
            }
            (Comparison::Binary, Values::Binary(bs)) => bs.iter().any(|b| b == request),
            (Comparison::IpAddress, Values::Nets(nets)) => IpAddr::from_str(request.trim())
                .is_ok_and(|addr| nets.iter().any(|n| n.contains(&addr))),
            // compile_values pairs every comparison with its value type; anything else is unreachable
            // and failing closed is the safe answer.
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names() {
        let ok = [
            "StringEquals",
            "stringequals",
            "ForAnyValue:StringLike",
            "ForAllValues:StringNotEqualsIfExists",
            "BoolIfExists",
            "NumericLessThanEquals",
            "DateGreaterThan",
            "NotIpAddress",
            "ArnNotLike",
            "Null",
        ];
        for name in ok {
            assert!(Operator::parse(name).is_ok(), "{name}");
        }
        let bad = [
            "StringEqual",
            "NullIfExists",
            "ForAnyValue:Null",
            "ForSomeValues:StringEquals",
            "IfExists",
            "",
        ];
        for name in bad {
            assert!(Operator::parse(name).is_err(), "{name}");
        }
        let op = Operator::parse("ForAllValues:StringNotLikeIfExists").unwrap();
        assert_eq!(op.qualifier, SetQualifier::ForAllValues);
        assert_eq!(op.comparison, Comparison::StringLike);
        assert!(op.negated && op.if_exists);
    }

    #[test]
    fn dates() {
        let midnight = 1_704_067_200_i128 * 1_000_000_000; // 2024-01-01T00:00:00Z
        let cases: &[(&str, Option<i128>)] = &[
            ("2024-01-01", Some(midnight)),
            ("2024-01-01T00:00:00Z", Some(midnight)),
            ("2024-01-01T00:00Z", Some(midnight)),
            ("2024-01-01T00:00:00", Some(midnight)),
            ("2024-01-01T01:00:00+01:00", Some(midnight)),
            ("2024-01-01T00:00:00.5Z", Some(midnight + 500_000_000)),
            ("1704067200", Some(midnight)),
            ("yesterday", None),
            ("", None),
        ];
        for &(text, want) in cases {
            assert_eq!(parse_date(text), want, "{text}");
        }
    }

    #[test]
    fn numbers_and_nets() {
        assert_eq!(parse_number("80"), Some(80.0));
        assert_eq!(parse_number("-1.5e2"), Some(-150.0));
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("eighty"), None);
        assert!(parse_net("10.0.0.0/8").is_some());
        assert!(parse_net("10.1.2.3").is_some());
        assert!(parse_net("2001:db8::/32").is_some());
        assert!(parse_net("10.0.0.0/33").is_none());
    }

    #[test]
    fn arn_components() {
        let p = |s: &str| glob::compile(s);
        assert!(arn_matches(
            &p("arn:aws:vpc-lattice:*:111122223333:servicenetwork/*"),
            "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-0123"
        ));
        // A `*` cannot absorb a `:` and shift the components after it.
        assert!(!arn_matches(
            &p("arn:aws:vpc-lattice:*:*:servicenetwork/*"),
            "arn:aws:vpc-lattice:us-west-2:111122223333:extra:servicenetwork/sn-0123"
        ));
        assert!(glob::matches(
            &p("arn:aws:vpc-lattice:*:*:servicenetwork/*"),
            "arn:aws:vpc-lattice:us-west-2:111122223333:extra:servicenetwork/sn-0123",
            false
        ));
        assert!(!arn_matches(
            &p("arn:aws:vpc-lattice:*3333:servicenetwork/*"),
            "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-0123"
        ));
        assert!(arn_matches(&p("*"), "arn:aws:iam::111122223333:root"));
        assert!(!arn_matches(
            &p("arn:aws:iam::111122223333:root"),
            "not-an-arn"
        ));
        assert!(arn_matches(
            &p("arn:aws:s3:::bucket/key:with:colons"),
            "arn:aws:s3:::bucket/key:with:colons"
        ));
    }
}
