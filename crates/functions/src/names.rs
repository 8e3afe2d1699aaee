//! Function names, ARNs and qualifiers: parsing every form a `FunctionName` member accepts (a
//! name, a partial ARN, a full ARN, each optionally qualified) and formatting function ARNs.
//!
//! The accepted forms follow the pattern of botocore's `NamespacedFunctionName`:
//! `(arn:aws[a-zA-Z-]*:lambda:)?(REGION:)?(ACCOUNT:)?(function:)?NAME(:QUALIFIER)?`.

use std::fmt;

use trellis_model::Context;

/// The longest function name Lambda accepts (the rest of the 140/256 characters of the member
/// are for the ARN prefix and the qualifier).
pub const MAX_NAME_LEN: usize = 64;
/// The longest qualifier (version or alias name).
pub const MAX_QUALIFIER_LEN: usize = 128;
/// The longest `FunctionName` member (the `NamespacedFunctionName` shape).
pub const MAX_FUNCTION_NAME_MEMBER: usize = 256;
/// The unpublished version every function has.
pub const LATEST: &str = "$LATEST";

/// A parsed `FunctionName` member: the function's name and whatever else the caller spelled out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: String,
    pub partition: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    /// A version number, `$LATEST` or an alias name.
    pub qualifier: Option<String>,
}

/// Why a `FunctionName`, qualifier or alias name was refused: the member and the constraint, in
/// the words of AWS's model validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameError {
    pub member: &'static str,
    pub value: String,
    pub constraint: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "1 validation error detected: Value '{}' at '{}' failed to satisfy constraint: {}",
            self.value, self.member, self.constraint
        )
    }
}

const NAME_PATTERN: &str = "Member must satisfy regular expression pattern: \
     (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?\
     (function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

fn name_error(value: &str, constraint: &str) -> NameError {
    NameError {
        member: "functionName",
        value: value.to_string(),
        constraint: constraint.to_string(),
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// A bare function name: 1–64 of `[a-zA-Z0-9-_]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.chars().all(is_name_char)
}

/// A qualifier: `$LATEST`, or 1–128 of `[a-zA-Z0-9-_]` (a version number or an alias name).
pub fn valid_qualifier(q: &str) -> bool {
    q == LATEST || (!q.is_empty() && q.len() <= MAX_QUALIFIER_LEN && q.chars().all(is_name_char))
}

/// A published version number (`1`, `2`, …), as opposed to `$LATEST` or an alias.
pub fn version_number(q: &str) -> Option<u64> {
    if q.is_empty() || !q.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    q.parse().ok().filter(|n| *n > 0)
}

/// An alias name: 1–128 of `[a-zA-Z0-9-_]`, not all digits (that would read as a version).
pub fn check_alias_name(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_QUALIFIER_LEN
        && name.chars().all(is_name_char)
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(NameError {
            member: "name",
            value: name.to_string(),
            constraint: "Member must satisfy regular expression pattern: \
                         (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
                .to_string(),
        })
    }
}

fn is_region(s: &str) -> bool {
    // [a-z]{2}((-gov)|(-iso[a-z]?))?-[a-z]+-\d
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() < 3 || parts.len() > 4 {
        return false;
    }
    let lower = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    let last = parts[parts.len() - 1];
    parts[0].len() == 2
        && lower(parts[0])
        && parts[1..parts.len() - 1].iter().all(|p| lower(p))
        && last.len() == 1
        && last.bytes().all(|b| b.is_ascii_digit())
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_partition(s: &str) -> bool {
    s.starts_with("aws") && s.chars().all(|c| c.is_ascii_alphabetic() || c == '-')
}

/// Parses a `FunctionName` member. `allow_qualifier` is false for the members whose shape
/// (`FunctionName` rather than `NamespacedFunctionName`) is only ever unqualified in practice —
/// CreateFunction, the alias operations — where a qualifier is refused.
pub fn parse_function_name(input: &str, allow_qualifier: bool) -> Result<FunctionRef, NameError> {
    if input.is_empty() {
        return Err(name_error(
            input,
            "Member must have length greater than or equal to 1",
        ));
    }
    if input.len() > MAX_FUNCTION_NAME_MEMBER {
        return Err(name_error(
            input,
            "Member must have length less than or equal to 256",
        ));
    }
    let tokens: Vec<&str> = input.split(':').collect();
    let mut out = FunctionRef {
        name: String::new(),
        partition: None,
        region: None,
        account: None,
        qualifier: None,
    };
    let rest: &[&str] = if tokens[0] == "arn" {
        // arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
        if tokens.len() < 7
            || !is_partition(tokens[1])
            || tokens[2] != "lambda"
            || !is_region(tokens[3])
            || !is_account(tokens[4])
            || tokens[5] != "function"
        {
            return Err(name_error(input, NAME_PATTERN));
        }
        out.partition = Some(tokens[1].to_string());
        out.region = Some(tokens[3].to_string());
        out.account = Some(tokens[4].to_string());
        &tokens[6..]
    } else {
        let mut rest = &tokens[..];
        if rest.len() >= 3 && is_region(rest[0]) && is_account(rest[1]) {
            out.region = Some(rest[0].to_string());
            rest = &rest[1..];
        }
        if rest.len() >= 3 && is_account(rest[0]) && rest[1] == "function" {
            out.account = Some(rest[0].to_string());
            rest = &rest[1..];
        }
        if rest.len() >= 2 && rest[0] == "function" {
            rest = &rest[1..];
        }
        rest
    };
    match rest {
        [name] => out.name = (*name).to_string(),
        [name, qualifier] => {
            out.name = (*name).to_string();
            out.qualifier = Some((*qualifier).to_string());
        }
        _ => return Err(name_error(input, NAME_PATTERN)),
    }
    if !valid_name(&out.name) {
        return Err(name_error(input, NAME_PATTERN));
    }
    if let Some(q) = &out.qualifier {
        if !valid_qualifier(q) {
            return Err(name_error(input, NAME_PATTERN));
        }
        if !allow_qualifier {
            return Err(name_error(input, NAME_PATTERN));
        }
    }
    Ok(out)
}

/// Checks a `Qualifier` query member.
pub fn check_qualifier(q: &str) -> Result<(), NameError> {
    if valid_qualifier(q) {
        Ok(())
    } else {
        Err(NameError {
            member: "qualifier",
            value: q.to_string(),
            constraint: "Member must satisfy regular expression pattern: \
                         (|[a-zA-Z0-9$_-]+)"
                .to_string(),
        })
    }
}

impl FunctionRef {
    /// Whether the reference can name a function of this Trellis (its account, region and
    /// partition, where given, are ours).
    pub fn is_local(&self, ctx: &Context) -> bool {
        self.partition.as_deref().is_none_or(|p| p == ctx.partition)
            && self.region.as_deref().is_none_or(|r| r == ctx.region)
            && self.account.as_deref().is_none_or(|a| a == ctx.account_id)
    }

    /// Combines the qualifier in the name with a separate `Qualifier` member: they must agree
    /// when both are given.
    pub fn with_qualifier(mut self, qualifier: Option<&str>) -> Result<FunctionRef, String> {
        match (&self.qualifier, qualifier) {
            (Some(a), Some(b)) if a != b => Err(
                "The derived qualifier from the function name does not match the specified qualifier."
                    .to_string(),
            ),
            (None, Some(b)) => {
                self.qualifier = Some(b.to_string());
                Ok(self)
            }
            _ => Ok(self),
        }
    }

    /// The function's ARN in the partition, region and account the reference names (ours where
    /// it does not say), with its qualifier.
    pub fn arn(&self, ctx: &Context) -> String {
        let base = format!(
            "arn:{}:lambda:{}:{}:function:{}",
            self.partition.as_deref().unwrap_or(&ctx.partition),
            self.region.as_deref().unwrap_or(&ctx.region),
            self.account.as_deref().unwrap_or(&ctx.account_id),
            self.name
        );
        match &self.qualifier {
            Some(q) => format!("{base}:{q}"),
            None => base,
        }
    }
}

/// The unqualified ARN of a local function.
pub fn function_arn(ctx: &Context, name: &str) -> String {
    format!(
        "arn:{}:lambda:{}:{}:function:{name}",
        ctx.partition, ctx.region, ctx.account_id
    )
}

/// The ARN of a local function's version or alias.
pub fn qualified_arn(ctx: &Context, name: &str, qualifier: &str) -> String {
    format!("{}:{qualifier}", function_arn(ctx, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            partition: "aws".into(),
            region: "us-west-2".into(),
            account_id: "111122223333".into(),
        }
    }

    /// (input, allow qualifier) → Some((name, region, account, qualifier)) or None for an error.
    #[allow(clippy::type_complexity)]
    const CASES: &[(
        &str,
        bool,
        Option<(&str, Option<&str>, Option<&str>, Option<&str>)>,
    )] = &[
        ("my-function", true, Some(("my-function", None, None, None))),
        (
            "my_function-2",
            false,
            Some(("my_function-2", None, None, None)),
        ),
        (
            "my-function:1",
            true,
            Some(("my-function", None, None, Some("1"))),
        ),
        (
            "my-function:$LATEST",
            true,
            Some(("my-function", None, None, Some("$LATEST"))),
        ),
        (
            "my-function:live",
            true,
            Some(("my-function", None, None, Some("live"))),
        ),
        ("my-function:live", false, None),
        (
            "123456789012:function:my-function",
            true,
            Some(("my-function", None, Some("123456789012"), None)),
        ),
        (
            "123456789012:function:my-function:7",
            true,
            Some(("my-function", None, Some("123456789012"), Some("7"))),
        ),
        (
            "us-east-1:123456789012:function:f",
            true,
            Some(("f", Some("us-east-1"), Some("123456789012"), None)),
        ),
        ("function:f", true, Some(("f", None, None, None))),
        ("function", true, Some(("function", None, None, None))),
        (
            "arn:aws:lambda:us-west-2:111122223333:function:f",
            true,
            Some(("f", Some("us-west-2"), Some("111122223333"), None)),
        ),
        (
            "arn:aws:lambda:us-west-2:111122223333:function:f:prod",
            true,
            Some(("f", Some("us-west-2"), Some("111122223333"), Some("prod"))),
        ),
        (
            "arn:aws-us-gov:lambda:us-gov-west-1:111122223333:function:f",
            true,
            Some(("f", Some("us-gov-west-1"), Some("111122223333"), None)),
        ),
        (
            "arn:aws:lambda:us-west-2:111122223333:function:f:prod",
            false,
            None,
        ),
        ("arn:aws:s3:us-west-2:111122223333:function:f", true, None),
        ("arn:aws:lambda:us-west-2:1111:function:f", true, None),
        ("arn:aws:lambda:us-west-2:111122223333:layer:f", true, None),
        (
            "arn:aws:lambda:us-west-2:111122223333:function:f:1:2",
            true,
            None,
        ),
        ("", true, None),
        ("has space", true, None),
        ("dots.are.not.allowed", true, None),
        ("f:", true, None),
        ("f:bad qualifier", true, None),
        ("a:b:c", true, None),
    ];

    #[test]
    fn parses_every_form() {
        for (input, allow, expected) in CASES {
            let got = parse_function_name(input, *allow);
            match (expected, &got) {
                (Some((name, region, account, qualifier)), Ok(r)) => {
                    assert_eq!(r.name, *name, "{input}");
                    assert_eq!(r.region.as_deref(), *region, "{input}");
                    assert_eq!(r.account.as_deref(), *account, "{input}");
                    assert_eq!(r.qualifier.as_deref(), *qualifier, "{input}");
                }
                (None, Err(e)) => {
                    assert_eq!(e.member, "functionName", "{input}");
                    assert!(e.to_string().contains("failed to satisfy constraint"));
                }
                _ => panic!("{input} (allow qualifier {allow}): got {got:?}"),
            }
        }
    }

    #[test]
    fn long_names_are_refused() {
        assert!(parse_function_name(&"a".repeat(64), true).is_ok());
        assert!(parse_function_name(&"a".repeat(65), true).is_err());
        assert!(parse_function_name(&"a".repeat(300), true).is_err());
        assert!(parse_function_name(&format!("f:{}", "q".repeat(128)), true).is_ok());
        assert!(parse_function_name(&format!("f:{}", "q".repeat(129)), true).is_err());
    }

    #[test]
    fn locality_and_arns() {
        let c = ctx();
        let local = parse_function_name("arn:aws:lambda:us-west-2:111122223333:function:f:3", true)
            .unwrap();
        assert!(local.is_local(&c));
        assert_eq!(
            local.arn(&c),
            "arn:aws:lambda:us-west-2:111122223333:function:f:3"
        );
        let bare = parse_function_name("f", true).unwrap();
        assert!(bare.is_local(&c));
        assert_eq!(
            bare.arn(&c),
            "arn:aws:lambda:us-west-2:111122223333:function:f"
        );
        let other_region =
            parse_function_name("arn:aws:lambda:eu-west-1:111122223333:function:f", true).unwrap();
        assert!(!other_region.is_local(&c));
        assert_eq!(
            other_region.arn(&c),
            "arn:aws:lambda:eu-west-1:111122223333:function:f"
        );
        let other_account = parse_function_name("999999999999:function:f", true).unwrap();
        assert!(!other_account.is_local(&c));
        assert_eq!(
            function_arn(&c, "g"),
            "arn:aws:lambda:us-west-2:111122223333:function:g"
        );
        assert_eq!(
            qualified_arn(&c, "g", "live"),
            "arn:aws:lambda:us-west-2:111122223333:function:g:live"
        );
    }

    #[test]
    fn qualifiers_combine() {
        let r = parse_function_name("f:1", true).unwrap();
        assert_eq!(
            r.clone()
                .with_qualifier(Some("1"))
                .unwrap()
                .qualifier
                .as_deref(),
            Some("1")
        );
        assert!(r.clone().with_qualifier(Some("2")).is_err());
        assert_eq!(
            r.with_qualifier(None).unwrap().qualifier.as_deref(),
            Some("1")
        );
        let r = parse_function_name("f", true).unwrap();
        assert_eq!(
            r.with_qualifier(Some("live")).unwrap().qualifier.as_deref(),
            Some("live")
        );
    }

    #[test]
    fn qualifier_and_alias_tables() {
        for (q, ok) in [
            ("$LATEST", true),
            ("1", true),
            ("live", true),
            ("my_alias-2", true),
            ("", false),
            ("$latest", false),
            ("a.b", false),
        ] {
            assert_eq!(check_qualifier(q).is_ok(), ok, "{q}");
        }
        for (a, ok) in [
            ("live", true),
            ("v1", true),
            ("1", false),
            ("123", false),
            ("", false),
            ("has space", false),
            ("$LATEST", false),
        ] {
            assert_eq!(check_alias_name(a).is_ok(), ok, "{a}");
        }
        for (v, n) in [
            ("1", Some(1)),
            ("42", Some(42)),
            ("0", None),
            ("$LATEST", None),
            ("x", None),
        ] {
            assert_eq!(version_number(v), n, "{v}");
        }
    }
}
