//! Parsing and validation: JSON text → [`Policy`], or every problem found as a [`Diagnostic`].
//!
//! The validator walks the whole document even after the first error so that a client gets the
//! complete list in one round trip. Each check records its finding and carries on with whatever it
//! could still understand; the compiled policy is only returned when no finding was recorded.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::PolicyKind;
use crate::condition::{Block, Entry, Operator, compile_values};
use crate::diagnostic::Diagnostic;
use crate::glob::{self, Elem};
use crate::policy::{Effect, Negatable, Policy, PrincipalPattern, Statement, Version};
use crate::template::Template;

const TOP_LEVEL_KEYS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_KEYS: &[&str] = &[
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

/// The data-plane action prefix, the only one an auth policy may grant or deny.
const AUTH_SERVICE_PREFIX: &str = "vpc-lattice-svcs";

/// Parses and validates a policy document of the given kind.
///
/// On failure the error lists every problem found, in document order (length problems first). The
/// length limit is counted in characters: 1..=36,864 for auth policies and 1..=10,000 for resource
/// policies.
pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, Vec<Diagnostic>> {
    if text.trim().is_empty() {
        return Err(vec![Diagnostic::new("", "policy must not be empty")]);
    }
    let mut diagnostics = Vec::new();
    let chars = text.chars().count();
    if chars > kind.max_chars() {
        let what = match kind {
            PolicyKind::Auth => "an auth policy",
            PolicyKind::Resource => "a resource policy",
            PolicyKind::Identity => "an identity-based policy",
        };
        diagnostics.push(Diagnostic::new(
            "",
            format!(
                "policy is {chars} characters long; {what} may be at most {} characters",
                kind.max_chars()
            ),
        ));
    }
    let document: Value = match serde_json::from_str(text) {
        Ok(document) => document,
        Err(e) => {
            diagnostics.push(Diagnostic::new(
                "",
                format!("policy is not valid JSON: {e}"),
            ));
            return Err(diagnostics);
        }
    };
    let mut parser = Parser {
        kind,
        diagnostics,
        variables: false,
        sids: HashMap::new(),
    };
    let (version, id, statements) = parser.document(&document);
    if parser.diagnostics.is_empty() {
        Ok(Policy {
            kind,
            version,
            id,
            statements,
            document,
        })
    } else {
        Err(parser.diagnostics)
    }
}

struct Parser {
    kind: PolicyKind,
    diagnostics: Vec<Diagnostic>,
    /// Whether `${…}` policy variables are substituted (Version 2012-10-17 only).
    variables: bool,
    /// Sid → path of the statement that used it first.
    sids: HashMap<String, String>,
}

/// Joins a path and a key: `"" + "Version"` → `Version`, `Statement[0]` + `Effect` →
/// `Statement[0].Effect`.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Parser {
    fn report(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(path, message));
    }

    fn document(&mut self, document: &Value) -> (Option<Version>, Option<String>, Vec<Statement>) {
        let Value::Object(map) = document else {
            self.report("", "policy must be a JSON object");
            return (None, None, Vec::new());
        };
        for key in map.keys() {
            if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
                self.report(
                    key.clone(),
                    "unknown key; a policy may only contain Version, Id and Statement",
                );
            }
        }
        // Version first, whatever the key order: it decides whether variables are substituted.
        let version = match map.get("Version") {
            None => None,
            Some(Value::String(v)) if v == "2012-10-17" => Some(Version::V2012_10_17),
            Some(Value::String(v)) if v == "2008-10-17" => Some(Version::V2008_10_17),
            Some(_) => {
                self.report("Version", "must be \"2012-10-17\" or \"2008-10-17\"");
                None
            }
        };
        self.variables = version == Some(Version::V2012_10_17);
        let id = match map.get("Id") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => {
                self.report("Id", "must be a string");
                None
            }
        };
        let mut statements = Vec::new();
        match map.get("Statement") {
            None => self.report("Statement", "is required"),
            Some(Value::Array(items)) if items.is_empty() => {
                self.report("Statement", "must contain at least one statement")
            }
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    if let Some(s) = self.statement(&format!("Statement[{index}]"), item) {
                        statements.push(s);
                    }
                }
            }
            Some(single @ Value::Object(_)) => {
                if let Some(s) = self.statement("Statement", single) {
                    statements.push(s);
                }
            }
            Some(_) => self.report("Statement", "must be an object or an array of objects"),
        }
        (version, id, statements)
    }

    fn statement(&mut self, path: &str, value: &Value) -> Option<Statement> {
        let Value::Object(map) = value else {
            self.report(path, "must be an object");
            return None;
        };
        let before = self.diagnostics.len();
        for key in map.keys() {
            if !STATEMENT_KEYS.contains(&key.as_str()) {
                self.report(join(path, key), "unknown key in statement");
            }
        }

        let sid = match map.get("Sid") {
            None => None,
            Some(Value::String(sid)) => {
                let sid_path = join(path, "Sid");
                if let Some(first) = self.sids.get(sid) {
                    let message = format!("duplicate Sid \"{sid}\" (also used by {first})");
                    self.report(sid_path, message);
                } else {
                    self.sids.insert(sid.clone(), path.to_owned());
                }
                Some(sid.clone())
            }
            Some(_) => {
                self.report(join(path, "Sid"), "must be a string");
                None
            }
        };

        let effect = match map.get("Effect") {
            None => {
                self.report(join(path, "Effect"), "is required");
                None
            }
            Some(Value::String(e)) if e == "Allow" => Some(Effect::Allow),
            Some(Value::String(e)) if e == "Deny" => Some(Effect::Deny),
            Some(_) => {
                self.report(join(path, "Effect"), "must be \"Allow\" or \"Deny\"");
                None
            }
        };

        // A resource-based policy must say whom it is about; an identity-based one is about the
        // identity it is attached to, and IAM refuses a principal in it.
        let principal = if self.kind == PolicyKind::Identity {
            for key in ["Principal", "NotPrincipal"] {
                if map.contains_key(key) {
                    self.report(
                        join(path, key),
                        format!("{key} is not allowed in an identity-based policy"),
                    );
                }
            }
            Some(Negatable {
                negated: false,
                items: vec![PrincipalPattern::Everyone],
            })
        } else {
            self.either(path, map, "Principal", "NotPrincipal", true)
                .map(|(negated, p, v)| Negatable {
                    negated,
                    items: self.principals(&p, v),
                })
        };

        let action = self
            .either(path, map, "Action", "NotAction", true)
            .map(|(negated, p, v)| Negatable {
                negated,
                items: self.actions(&p, v),
            });

        // Lattice rejects auth policy statements without a resource, and IAM identity-based
        // statements need one too; a RAM resource policy statement without one applies to the
        // resource it is attached to.
        let resource_required = matches!(self.kind, PolicyKind::Auth | PolicyKind::Identity);
        let resource = self
            .either(path, map, "Resource", "NotResource", resource_required)
            .map(|(negated, p, v)| Negatable {
                negated,
                items: self.resources(&p, v),
            });

        let conditions = match map.get("Condition") {
            None => Vec::new(),
            Some(v) => self.conditions(&join(path, "Condition"), v),
        };

        if self.diagnostics.len() > before {
            return None;
        }
        Some(Statement {
            sid,
            effect: effect?,
            principal: principal?,
            action: action?,
            resource,
            conditions,
        })
    }

    /// Finds exactly one of `key` / `not_key`. Returns `(negated, path, value)`.
    fn either<'v>(
        &mut self,
        path: &str,
        map: &'v Map<String, Value>,
        key: &str,
        not_key: &str,
        required: bool,
    ) -> Option<(bool, String, &'v Value)> {
        match (map.get(key), map.get(not_key)) {
            (Some(v), None) => Some((false, join(path, key), v)),
            (None, Some(v)) => Some((true, join(path, not_key), v)),
            (Some(_), Some(_)) => {
                self.report(
                    join(path, not_key),
                    format!("cannot be combined with {key}"),
                );
                None
            }
            (None, None) => {
                if required {
                    self.report(join(path, key), format!("{key} or {not_key} is required"));
                }
                None
            }
        }
    }

    /// A string or a non-empty array of strings, as `(path, item)` pairs.
    fn strings<'v>(&mut self, path: &str, value: &'v Value) -> Vec<(String, &'v str)> {
        match value {
            Value::String(s) => vec![(path.to_owned(), s.as_str())],
            Value::Array(items) if items.is_empty() => {
                self.report(path, "must not be an empty array");
                Vec::new()
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    match item {
                        Value::String(s) => out.push((item_path, s.as_str())),
                        _ => self.report(item_path, "must be a string"),
                    }
                }
                out
            }
            _ => {
                self.report(path, "must be a string or an array of strings");
                Vec::new()
            }
        }
    }

    fn actions(&mut self, path: &str, value: &Value) -> Vec<Vec<Elem>> {
        let mut out = Vec::new();
        for (item_path, action) in self.strings(path, value) {
            if let Some(pattern) = self.action(&item_path, action) {
                out.push(pattern);
            }
        }
        out
    }

    fn action(&mut self, path: &str, action: &str) -> Option<Vec<Elem>> {
        if action == "*" {
            return Some(glob::compile(action));
        }
        let well_formed = action.split_once(':').filter(|(prefix, name)| {
            !prefix.is_empty()
                && !name.is_empty()
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '*' | '?'))
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '?'))
        });
        let Some((prefix, _)) = well_formed else {
            self.report(
                path,
                format!("\"{action}\" is not a valid action; expected \"service:Action\" or \"*\""),
            );
            return None;
        };
        // A wildcard prefix is fine as long as it can mean the Lattice data-plane service.
        if self.kind == PolicyKind::Auth
            && !glob::matches(&glob::compile(prefix), AUTH_SERVICE_PREFIX, true)
        {
            self.report(
                path,
                format!(
                    "\"{action}\" is not supported in an auth policy; actions must be \
                     \"{AUTH_SERVICE_PREFIX}:*\" actions"
                ),
            );
            return None;
        }
        Some(glob::compile(action))
    }

    fn resources(&mut self, path: &str, value: &Value) -> Vec<Template> {
        let mut out = Vec::new();
        for (item_path, resource) in self.strings(path, value) {
            // Auth policies also take Lattice's ARN-less forms (`*/rates`, `*/*`): a pattern
            // over the whole resource ARN that starts with a wildcard.
            let wildcard_form = self.kind == PolicyKind::Auth && resource.starts_with('*');
            if resource == "*" || resource.starts_with("arn:") || wildcard_form {
                out.push(Template::new(resource, self.variables));
            } else {
                self.report(
                    item_path,
                    format!("\"{resource}\" is not a valid resource; expected \"*\" or an ARN"),
                );
            }
        }
        out
    }

    fn principals(&mut self, path: &str, value: &Value) -> Vec<PrincipalPattern> {
        match value {
            Value::String(s) if s == "*" => vec![PrincipalPattern::Everyone],
            Value::Object(map) if map.is_empty() => {
                self.report(path, "must name at least one principal");
                Vec::new()
            }
            Value::Object(map) => {
                let mut out = Vec::new();
                for (kind, list) in map {
                    let kind_path = join(path, kind);
                    match kind.as_str() {
                        "AWS" => {
                            for (item_path, p) in self.strings(&kind_path, list) {
                                if let Some(p) = self.aws_principal(&item_path, p) {
                                    out.push(p);
                                }
                            }
                        }
                        "Service" => {
                            for (item_path, p) in self.strings(&kind_path, list) {
                                if p.is_empty() {
                                    self.report(item_path, "must not be empty");
                                } else {
                                    out.push(PrincipalPattern::Service(p.to_owned()));
                                }
                            }
                        }
                        _ => self.report(
                            kind_path,
                            "unsupported principal type; expected \"AWS\" or \"Service\"",
                        ),
                    }
                }
                out
            }
            _ => {
                self.report(
                    path,
                    "must be \"*\" or an object such as {\"AWS\": \"arn:aws:iam::111122223333:root\"}",
                );
                Vec::new()
            }
        }
    }

    fn aws_principal(&mut self, path: &str, p: &str) -> Option<PrincipalPattern> {
        if p == "*" {
            return Some(PrincipalPattern::Everyone);
        }
        if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
            return Some(PrincipalPattern::Account(p.to_owned()));
        }
        let parts: Vec<&str> = p.splitn(6, ':').collect();
        if parts.len() == 6 && parts[0] == "arn" && !parts[5].is_empty() {
            if parts[2] == "iam" && parts[5] == "root" {
                return Some(PrincipalPattern::Account(parts[4].to_owned()));
            }
            return Some(PrincipalPattern::Arn {
                text: p.to_owned(),
                pattern: glob::compile(p),
            });
        }
        self.report(
            path,
            format!(
                "\"{p}\" is not a valid principal; expected \"*\", a 12-digit account ID or an ARN"
            ),
        );
        None
    }

    fn conditions(&mut self, path: &str, value: &Value) -> Vec<Block> {
        let Value::Object(operators) = value else {
            self.report(
                path,
                "must be an object mapping condition operators to {\"key\": values}",
            );
            return Vec::new();
        };
        let mut blocks = Vec::new();
        for (name, body) in operators {
            let op_path = join(path, name);
            let operator = match Operator::parse(name) {
                Ok(op) => Some(op),
                Err(message) => {
                    self.report(op_path.clone(), message);
                    None
                }
            };
            let Value::Object(entries) = body else {
                self.report(
                    op_path,
                    "must be an object mapping condition keys to values",
                );
                continue;
            };
            let mut compiled = Vec::with_capacity(entries.len());
            for (key, values) in entries {
                let key_path = join(&op_path, key);
                let well_formed = key
                    .split_once(':')
                    .is_some_and(|(prefix, name)| !prefix.is_empty() && !name.is_empty());
                if !well_formed {
                    self.report(
                        key_path.clone(),
                        format!("\"{key}\" is not a condition key; expected \"prefix:name\""),
                    );
                }
                // Without a known operator the values cannot be type-checked; the operator error
                // already explains the problem.
                let Some(operator) = operator else { continue };
                match compile_values(operator, values, self.variables) {
                    Ok(values) => compiled.push(Entry {
                        key: key.clone(),
                        values,
                    }),
                    Err(errors) => {
                        for (index, message) in errors {
                            let at = match index {
                                Some(i) => format!("{key_path}[{i}]"),
                                None => key_path.clone(),
                            };
                            self.report(at, message);
                        }
                    }
                }
            }
            if let Some(operator) = operator {
                blocks.push(Block {
                    operator,
                    entries: compiled,
                });
            }
        }
        blocks
    }
}
