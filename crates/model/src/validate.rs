//! The validation vocabulary: field errors collected by [`Checks`], reported together as one
//! [`ValidationError`] (the API turns it into a `ValidationException` with a `fieldList`).
//!
//! Messages follow the wording AWS services use for model constraints ("Value 'x' at 'name'
//! failed to satisfy constraint: Member must …") so that users recognise them.

use std::fmt;

/// One field that failed validation. `name` is the wire member path (`config.port`,
/// `targets[0].id`), `message` says which constraint failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub name: String,
    pub message: String,
}

/// Why a request was rejected, with every failing field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    pub message: String,
    /// `fieldValidationFailed` (per-field checks), `cannotParse` (malformed body) or `other`.
    pub reason: &'static str,
    pub fields: Vec<FieldError>,
}

impl ValidationError {
    /// A rule about the request as a whole rather than one field (`reason: other`).
    pub fn other(message: impl Into<String>) -> ValidationError {
        ValidationError {
            message: message.into(),
            reason: "other",
            fields: Vec::new(),
        }
    }

    /// A single failing field whose message is free text.
    pub fn field(name: impl Into<String>, message: impl Into<String>) -> ValidationError {
        let mut c = Checks::new();
        c.fail(name, message);
        c.finish().unwrap_err()
    }

    pub fn cannot_parse(message: impl Into<String>) -> ValidationError {
        ValidationError {
            message: message.into(),
            reason: "cannotParse",
            fields: Vec::new(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Collects field errors; [`Checks::finish`] turns them into one error.
#[derive(Debug, Default)]
pub struct Checks {
    errors: Vec<FieldError>,
}

fn quote(value: &str) -> String {
    // Long values are shortened so one bad 36 KB policy doesn't produce a 36 KB message.
    let shown: String = value.chars().take(100).collect();
    if shown.len() < value.len() {
        format!("'{shown}…'")
    } else {
        format!("'{shown}'")
    }
}

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    /// Records a failure with a free-form message.
    pub fn fail(&mut self, name: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            name: name.into(),
            message: message.into(),
        });
    }

    fn constraint(&mut self, name: &str, value: &str, constraint: &str) {
        self.fail(
            name,
            format!(
                "Value {} at '{name}' failed to satisfy constraint: {constraint}",
                quote(value)
            ),
        );
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// A required member is absent.
    pub fn missing(&mut self, name: &str) {
        self.fail(
            name,
            format!("Value null at '{name}' failed to satisfy constraint: Member must not be null"),
        );
    }

    /// Length in characters within `min..=max`. Returns whether it passed.
    pub fn length(&mut self, name: &str, value: &str, min: usize, max: usize) -> bool {
        let n = value.chars().count();
        if n < min {
            self.constraint(
                name,
                value,
                &format!("Member must have length greater than or equal to {min}"),
            );
            false
        } else if n > max {
            self.constraint(
                name,
                value,
                &format!("Member must have length less than or equal to {max}"),
            );
            false
        } else {
            true
        }
    }

    /// An integer within `min..=max`.
    pub fn range(&mut self, name: &str, value: i64, min: i64, max: i64) -> bool {
        if value < min {
            self.constraint(
                name,
                &value.to_string(),
                &format!("Member must have value greater than or equal to {min}"),
            );
            false
        } else if value > max {
            self.constraint(
                name,
                &value.to_string(),
                &format!("Member must have value less than or equal to {max}"),
            );
            false
        } else {
            true
        }
    }

    /// One of the enum's values.
    pub fn one_of(&mut self, name: &str, value: &str, allowed: &[&str]) -> bool {
        if allowed.contains(&value) {
            true
        } else {
            self.constraint(
                name,
                value,
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            );
            false
        }
    }

    /// A predicate standing for a model regex; `pattern` is the regex as the model writes it.
    pub fn pattern(&mut self, name: &str, value: &str, ok: bool, pattern: &str) -> bool {
        if !ok {
            self.constraint(
                name,
                value,
                &format!("Member must satisfy regular expression pattern: {pattern}"),
            );
        }
        ok
    }

    /// A list's length within `min..=max`.
    pub fn count(&mut self, name: &str, n: usize, min: usize, max: usize) -> bool {
        if n < min {
            self.fail(
                name,
                format!("Member must have length greater than or equal to {min}"),
            );
            false
        } else if n > max {
            self.fail(
                name,
                format!("Member must have length less than or equal to {max}"),
            );
            false
        } else {
            true
        }
    }

    pub fn finish(self) -> Result<(), ValidationError> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let n = self.errors.len();
        let message = format!(
            "{n} validation error{} detected: {}",
            if n == 1 { "" } else { "s" },
            self.errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        Err(ValidationError {
            message,
            reason: "fieldValidationFailed",
            fields: self.errors,
        })
    }
}

/// The Lattice resource-name rule: `[a-z0-9-]+`, not starting or ending with `-`, no `--`
/// (the model writes it with look-arounds, which is why it is code and not a regex here).
pub fn is_resource_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

pub const NAME_PATTERN: &str = "(?![-])(?!.*[-]$)(?!.*[-]{2})[a-z0-9-]+";

impl Checks {
    /// A resource name: length, the name pattern, and an optional reserved prefix
    /// (`svc-`, `listener-`, `rule-`, `tg-`) that would make it look like an ID.
    pub fn resource_name(
        &mut self,
        name: &str,
        value: &str,
        min: usize,
        max: usize,
        reserved_prefix: Option<&str>,
    ) -> bool {
        if !self.length(name, value, min, max) {
            return false;
        }
        if !self.pattern(name, value, is_resource_name(value), NAME_PATTERN) {
            return false;
        }
        if let Some(p) = reserved_prefix
            && value.starts_with(p)
        {
            self.fail(name, format!("Value {} at '{name}' failed to satisfy constraint: Member must not start with '{p}'", quote(value)));
            return false;
        }
        true
    }

    /// A `clientToken`: 1–64 characters with at least one printable ASCII character.
    pub fn client_token(&mut self, value: &str) -> bool {
        self.length("clientToken", value, 1, 64)
            && self.pattern(
                "clientToken",
                value,
                value.bytes().any(|b| (b'!'..=b'~').contains(&b)),
                ".*[!-~]+.*",
            )
    }

    /// Tags: at most 200 (the model's bound), key 1–128 and not `aws:`, value 0–256.
    pub fn tags<'a>(
        &mut self,
        name: &str,
        tags: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> bool {
        let before = self.errors.len();
        let mut n = 0;
        for (k, v) in tags {
            n += 1;
            let field = format!("{name}.{k}");
            self.length(&field, k, 1, 128);
            self.length(&field, v, 0, 256);
            if k.to_ascii_lowercase().starts_with("aws:") {
                self.fail(field, "Tag keys must not begin with 'aws:'");
            }
        }
        self.count(name, n, 0, 200);
        self.errors.len() == before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_name_table() {
        let cases = [
            ("my-service", true),
            ("abc", true),
            ("a1-b2-c3", true),
            ("-abc", false),
            ("abc-", false),
            ("a--b", false),
            ("ABC", false),
            ("a_b", false),
            ("", false),
        ];
        for (s, want) in cases {
            assert_eq!(is_resource_name(s), want, "{s}");
        }
    }

    #[test]
    fn checks_collect_every_failure() {
        let mut c = Checks::new();
        c.resource_name("name", "svc-x", 3, 40, Some("svc-"));
        c.range("port", 0, 1, 65535);
        c.one_of("protocol", "FTP", &["HTTP", "HTTPS"]);
        c.missing("defaultAction");
        let err = c.finish().unwrap_err();
        assert_eq!(err.reason, "fieldValidationFailed");
        let names: Vec<_> = err.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["name", "port", "protocol", "defaultAction"]);
        assert!(
            err.message.starts_with("4 validation errors detected: "),
            "{}",
            err.message
        );
        assert!(err.fields[1].message.contains("greater than or equal to 1"));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let mut c = Checks::new();
        assert!(c.length("k", "ééé", 3, 3));
        assert!(c.finish().is_ok());
    }

    #[test]
    fn tags_reject_aws_prefix_and_long_keys() {
        let mut tags = std::collections::BTreeMap::new();
        tags.insert("aws:x".to_string(), "v".to_string());
        tags.insert("k".repeat(129), "v".to_string());
        let mut c = Checks::new();
        assert!(!c.tags("tags", &tags));
        assert_eq!(c.finish().unwrap_err().fields.len(), 2);
    }
}
