//! The validated, compiled form of a policy document.

use serde_json::{Map, Value};

use crate::PolicyKind;
use crate::condition::Block;
use crate::glob::Elem;
use crate::template::Template;

/// A parsed and validated policy, ready to evaluate. Cheap to share: it is immutable, `Send` and
/// `Sync`, and evaluation never allocates for policies without variables (beyond the Sid of the
/// deciding statement).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) kind: PolicyKind,
    pub(crate) version: Option<Version>,
    pub(crate) id: Option<String>,
    pub(crate) statements: Vec<Statement>,
    /// The document exactly as given, for `to_json`.
    pub(crate) document: Value,
}

/// The policy language version (`Version` element).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `2012-10-17`: the current language; policy variables are substituted.
    V2012_10_17,
    /// `2008-10-17`: the original language; `${…}` is literal text. Also what Lattice assumes (and
    /// stores) when `Version` is missing.
    V2008_10_17,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2012_10_17 => "2012-10-17",
            Version::V2008_10_17 => "2008-10-17",
        }
    }
}

/// A statement's `Effect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Negatable<PrincipalPattern>,
    pub action: Negatable<Vec<Elem>>,
    /// `None` when the statement has neither `Resource` nor `NotResource` (resource policies only):
    /// it then applies to whatever resource the policy is attached to.
    pub resource: Option<Negatable<Template>>,
    pub conditions: Vec<Block>,
}

/// A list from `X` or `NotX`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Negatable<T> {
    pub negated: bool,
    pub items: Vec<T>,
}

/// One entry of `Principal` / `NotPrincipal`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PrincipalPattern {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers included.
    Everyone,
    /// A bare account ID or `arn:…:iam::ACCOUNT:root`: every principal of that account.
    Account(String),
    /// A user/role/session ARN, matched as a case-sensitive wildcard pattern.
    Arn { text: String, pattern: Vec<Elem> },
    /// `{"Service": "…"}`: an AWS service principal. Lattice requests never come from one, so this
    /// never matches; it is kept so such policies validate and round-trip.
    Service(String),
}

impl Policy {
    /// Whether the document mentions a condition key starting with `prefix` (ASCII case
    /// ignored), in a condition or a policy variable: lets a caller skip computing keys no
    /// policy can look at (the API reads a resource's tags only for `aws:ResourceTag/`).
    pub fn mentions(&self, prefix: &str) -> bool {
        fn walk(v: &Value, prefix: &str) -> bool {
            let hit = |s: &str| {
                s.as_bytes()
                    .windows(prefix.len())
                    .any(|w| w.eq_ignore_ascii_case(prefix.as_bytes()))
            };
            match v {
                Value::String(s) => hit(s),
                Value::Array(items) => items.iter().any(|i| walk(i, prefix)),
                Value::Object(map) => map.iter().any(|(k, v)| hit(k) || walk(v, prefix)),
                _ => false,
            }
        }
        !prefix.is_empty() && walk(&self.document, prefix)
    }

    /// The kind this policy was validated as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The `Version` element, `None` when the document has none (Lattice then behaves as 2008-10-17).
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The optional `Id` element.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The number of statements.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    /// The document exactly as it was given (key order preserved).
    pub fn to_json(&self) -> Value {
        self.document.clone()
    }

    /// The document as Lattice stores and returns it (§7.1, observed): `Version` defaults to
    /// `2008-10-17`, a single `Statement` object becomes an array, and statement keys are ordered
    /// Sid, Effect, Principal, Action, Resource, Condition. Values are untouched.
    pub fn to_normalized_json(&self) -> Value {
        const TOP: &[&str] = &["Version", "Id", "Statement"];
        const STATEMENT: &[&str] = &[
            "Sid",
            "Effect",
            "Principal",
            "NotPrincipal",
            "Action",
            "NotAction",
            "Resource",
            "NotResource",
            "Condition",
        ];
        let Value::Object(doc) = &self.document else {
            return self.document.clone();
        };
        let mut out = Map::new();
        out.insert(
            "Version".into(),
            Value::String(
                self.version
                    .unwrap_or(Version::V2008_10_17)
                    .as_str()
                    .to_owned(),
            ),
        );
        for key in &TOP[1..] {
            let Some(value) = doc.get(*key) else { continue };
            let value = if *key == "Statement" {
                let list = match value {
                    Value::Array(items) => items.clone(),
                    single => vec![single.clone()],
                };
                Value::Array(
                    list.iter()
                        .map(|s| reorder(s, STATEMENT))
                        .collect::<Vec<_>>(),
                )
            } else {
                value.clone()
            };
            out.insert((*key).to_owned(), value);
        }
        Value::Object(out)
    }
}

/// Copies an object with `order` keys first (in that order), then any others as they were.
fn reorder(value: &Value, order: &[&str]) -> Value {
    let Value::Object(map) = value else {
        return value.clone();
    };
    let mut out = Map::new();
    for key in order {
        if let Some(v) = map.get(*key) {
            out.insert((*key).to_owned(), v.clone());
        }
    }
    for (k, v) in map {
        if !out.contains_key(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}
