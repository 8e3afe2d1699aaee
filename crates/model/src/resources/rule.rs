//! Listener rules: the typed match and action every rule carries (and every listener's default
//! action), their validation (reference §4.1), and the stored rule document.
//!
//! Request input arrives as the `*Input` types, which mirror the request members with every
//! member optional, so that validation can report each problem as a field error with its wire
//! path (`action.forward.targetGroups[1].weight`). Validation produces the typed [`RuleAction`] /
//! [`RuleMatch`]: unions become enums with exactly one variant, defaults are filled in, and the
//! data plane can compile them without re-checking anything.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::Tags;
use crate::{Checks, Timestamp};

/// Non-default rules per listener (reference §11.1; the default rule does not count).
pub const RULES_PER_LISTENER: u64 = 10;
/// Distinct target groups the listeners and rules of one service may forward to (§11.1).
pub const TARGET_GROUPS_PER_SERVICE: usize = 10;
/// The weight of the single target group of a forward action that gives none.
pub const DEFAULT_WEIGHT: u16 = 100;
/// The name of every listener's default rule.
pub const DEFAULT_RULE_NAME: &str = "default";

/// What a rule does with a matching request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum RuleAction {
    /// Weighted split over 1–10 target groups.
    Forward {
        target_groups: Vec<WeightedTargetGroup>,
    },
    /// A fixed HTTP response; only 404 and 500 are supported.
    FixedResponse { status_code: u16 },
}

/// One target group of a forward action. Stored with the target group's ID; validation leaves
/// the identifier as the client gave it (ID or ARN) and the API resolves it before storing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedTargetGroup {
    pub target_group_id: String,
    /// 0–999; traffic is split in proportion to the weights, 0 sends none.
    pub weight: u16,
}

impl RuleAction {
    /// The target groups this action forwards to, in order (the record's `refs`).
    pub fn target_group_ids(&self) -> Vec<String> {
        match self {
            RuleAction::Forward { target_groups } => target_groups
                .iter()
                .map(|t| t.target_group_id.clone())
                .collect(),
            RuleAction::FixedResponse { .. } => Vec::new(),
        }
    }

    pub fn target_groups_mut(&mut self) -> &mut [WeightedTargetGroup] {
        match self {
            RuleAction::Forward { target_groups } => target_groups,
            RuleAction::FixedResponse { .. } => &mut [],
        }
    }
}

/// The conditions of a rule (a union with one member today).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleMatch {
    HttpMatch(HttpMatch),
}

/// HTTP conditions, ANDed; at least one is present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatch {
    /// Exact, case-sensitive method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_match: Option<PathMatch>,
    /// 0–5 header conditions (0 only when another condition is present).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub header_matches: Vec<HeaderMatch>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathMatch {
    #[serde(rename = "match")]
    pub path: PathMatchType,
    /// Defaults to false.
    pub case_sensitive: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PathMatchType {
    Exact(String),
    Prefix(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Compared case-insensitively, as HTTP header names are.
    pub name: String,
    #[serde(rename = "match")]
    pub value: HeaderMatchType,
    /// Whether the value comparison is case-sensitive; defaults to false.
    pub case_sensitive: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HeaderMatchType {
    Exact(String),
    Prefix(String),
    Contains(String),
}

/// The stored rule document (record kind `rule`, parent = the listener's id). Every listener has
/// exactly one default rule (`is_default`, named [`DEFAULT_RULE_NAME`], no priority, no match)
/// whose action mirrors the listener's `defaultAction`; it is evaluated after all others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub id: String,
    /// Unique per listener; immutable.
    pub name: String,
    pub arn: String,
    pub service_id: String,
    pub listener_id: String,
    pub is_default: bool,
    /// 1–2000, unique per listener; `None` for the default rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// `None` for the default rule.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub rule_match: Option<RuleMatch>,
    pub action: RuleAction,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
    #[serde(default)]
    pub tags: Tags,
}

// ---------------------------------------------------------------------------------------------
// Request input and its validation.

/// A `RuleAction` union as a request sends it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleActionInput {
    pub forward: Option<ForwardInput>,
    pub fixed_response: Option<FixedResponseInput>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardInput {
    pub target_groups: Option<Vec<WeightedTargetGroupInput>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedTargetGroupInput {
    pub target_group_identifier: Option<String>,
    pub weight: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FixedResponseInput {
    pub status_code: Option<i64>,
}

/// A `RuleMatch` union as a request sends it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleMatchInput {
    pub http_match: Option<HttpMatchInput>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchInput {
    pub method: Option<String>,
    pub path_match: Option<PathMatchInput>,
    pub header_matches: Option<Vec<HeaderMatchInput>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathMatchInput {
    #[serde(rename = "match")]
    pub path: Option<PathMatchTypeInput>,
    pub case_sensitive: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathMatchTypeInput {
    pub exact: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatchInput {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub value: Option<HeaderMatchTypeInput>,
    pub case_sensitive: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatchTypeInput {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub contains: Option<String>,
}

/// A rule name: 3–63, the resource-name pattern, not starting with `rule-`.
pub fn check_rule_name(c: &mut Checks, field: &str, v: &str) -> bool {
    c.resource_name(field, v, 3, 63, Some("rule-"))
}

/// A rule priority: 1–2000.
pub fn check_priority(c: &mut Checks, field: &str, v: i64) -> Option<u16> {
    c.range(field, v, 1, 2000).then_some(v as u16)
}

/// Records that a union at `path` has zero or several members set.
fn union_error(c: &mut Checks, path: &str, members: &[&str]) {
    c.fail(
        path,
        format!("Value at '{path}' failed to satisfy constraint: Member must have exactly one of [{}] set", members.join(", ")),
    );
}

/// The one member of a union, or a field error when zero or several are set.
fn one_member<'a, T>(
    c: &mut Checks,
    path: &str,
    members: &[(&'a str, Option<T>)],
) -> Option<(&'a str, T)>
where
    T: Clone,
{
    let set: Vec<(&str, T)> = members
        .iter()
        .filter_map(|(n, v)| v.clone().map(|v| (*n, v)))
        .collect();
    if set.len() == 1 {
        set.into_iter().next()
    } else {
        union_error(
            c,
            path,
            &members.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        );
        None
    }
}

/// The model's `TargetGroupIdentifier` pattern.
pub const TARGET_GROUP_IDENTIFIER_PATTERN: &str = r"((tg-[0-9a-z]{17})|(arn:[a-z0-9\-]+:vpc-lattice:[a-zA-Z0-9\-]+:\d{12}:targetgroup/tg-[0-9a-z]{17}))";
static TARGET_GROUP_IDENTIFIER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{TARGET_GROUP_IDENTIFIER_PATTERN}$")).unwrap());

/// The target-group ID an identifier names (the whole value, or the ARN's last segment).
/// Only meaningful for values that satisfy the identifier pattern.
fn identifier_id(identifier: &str) -> &str {
    identifier.rsplit('/').next().unwrap_or(identifier)
}

/// Whether `s` is an RFC 9110 token (`tchar`s): what HTTP methods and header names are made of.
pub fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub const PATH_MATCH_PATTERN: &str = "/[a-zA-Z0-9@:%_+.~#?&/=-]*";

impl RuleActionInput {
    /// Validates the action at `path` (`action`, `defaultAction`, `rules[2].action`).
    pub fn check(&self, c: &mut Checks, path: &str) -> Option<RuleAction> {
        let (member, ()) = one_member(
            c,
            path,
            &[
                ("forward", self.forward.as_ref().map(|_| ())),
                ("fixedResponse", self.fixed_response.as_ref().map(|_| ())),
            ],
        )?;
        if member == "forward" {
            self.forward
                .as_ref()
                .and_then(|f| f.check(c, &format!("{path}.forward")))
        } else {
            self.fixed_response
                .as_ref()
                .and_then(|f| f.check(c, &format!("{path}.fixedResponse")))
        }
    }
}

impl ForwardInput {
    fn check(&self, c: &mut Checks, path: &str) -> Option<RuleAction> {
        let list_path = format!("{path}.targetGroups");
        let Some(items) = &self.target_groups else {
            c.missing(&list_path);
            return None;
        };
        if !c.count(&list_path, items.len(), 1, 10) {
            return None;
        }
        let mut ok = true;
        let mut out = Vec::with_capacity(items.len());
        let mut seen: Vec<&str> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{list_path}[{i}]");
            let id_path = format!("{p}.targetGroupIdentifier");
            let identifier = match &item.target_group_identifier {
                None => {
                    c.missing(&id_path);
                    ok = false;
                    None
                }
                Some(v) => {
                    if c.length(&id_path, v, 17, 2048)
                        && c.pattern(
                            &id_path,
                            v,
                            TARGET_GROUP_IDENTIFIER.is_match(v),
                            TARGET_GROUP_IDENTIFIER_PATTERN,
                        )
                    {
                        if seen.contains(&identifier_id(v)) {
                            c.fail(
                                &id_path,
                                format!("Target group {v} appears more than once in {list_path}"),
                            );
                            ok = false;
                        }
                        seen.push(identifier_id(v));
                        Some(v.clone())
                    } else {
                        ok = false;
                        None
                    }
                }
            };
            let weight = match item.weight {
                Some(w) if c.range(&format!("{p}.weight"), w, 0, 999) => Some(w as u16),
                Some(_) => {
                    ok = false;
                    None
                }
                // A lone target group gets all traffic; with several, a missing weight would
                // make the split ambiguous.
                None if items.len() == 1 => Some(DEFAULT_WEIGHT),
                None => {
                    c.fail(
                        format!("{p}.weight"),
                        "A weight is required when forwarding to more than one target group",
                    );
                    ok = false;
                    None
                }
            };
            if let (Some(id), Some(weight)) = (identifier, weight) {
                out.push(WeightedTargetGroup {
                    target_group_id: id,
                    weight,
                });
            }
        }
        ok.then_some(RuleAction::Forward { target_groups: out })
    }
}

impl FixedResponseInput {
    fn check(&self, c: &mut Checks, path: &str) -> Option<RuleAction> {
        let field = format!("{path}.statusCode");
        let Some(code) = self.status_code else {
            c.missing(&field);
            return None;
        };
        if !c.range(&field, code, 100, 599) {
            return None;
        }
        // Lattice models any 1xx–5xx code but serves only these two (reference §4.1).
        if code != 404 && code != 500 {
            c.fail(&field, format!("Value '{code}' at '{field}' is not supported: fixed responses support only the status codes 404 and 500"));
            return None;
        }
        Some(RuleAction::FixedResponse {
            status_code: code as u16,
        })
    }
}

impl RuleMatchInput {
    /// Validates the match at `path` (`match`, `rules[0].match`).
    pub fn check(&self, c: &mut Checks, path: &str) -> Option<RuleMatch> {
        let (_, http) = one_member(c, path, &[("httpMatch", self.http_match.as_ref())])?;
        http.check(c, &format!("{path}.httpMatch"))
            .map(RuleMatch::HttpMatch)
    }
}

impl HttpMatchInput {
    fn check(&self, c: &mut Checks, path: &str) -> Option<HttpMatch> {
        let mut ok = true;
        // The model allows 0–16 characters, and an empty method is how clients say "any method":
        // the Terraform provider always sends `"method": ""` for a rule without one. It is the
        // same as no method condition, and is stored (and answered) as absent.
        let method = self.method.as_deref().filter(|m| !m.is_empty());
        if method.is_none() && self.path_match.is_none() && self.header_matches.is_none() {
            c.fail(path, format!("Value at '{path}' must specify at least one condition: method, pathMatch or headerMatches"));
            return None;
        }
        if let Some(m) = method {
            let field = format!("{path}.method");
            // A non-token method could never match a request, so Trellis rejects it instead of
            // storing a dead rule.
            ok &= c.length(&field, m, 0, 16)
                && c.pattern(
                    &field,
                    m,
                    is_http_token(m),
                    "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}",
                );
        }
        let path_match = match &self.path_match {
            None => None,
            Some(pm) => {
                let r = pm.check(c, &format!("{path}.pathMatch"));
                ok &= r.is_some();
                r
            }
        };
        let mut header_matches = Vec::new();
        if let Some(list) = &self.header_matches {
            let list_path = format!("{path}.headerMatches");
            if c.count(&list_path, list.len(), 1, 5) {
                for (i, h) in list.iter().enumerate() {
                    match h.check(c, &format!("{list_path}[{i}]")) {
                        Some(h) => header_matches.push(h),
                        None => ok = false,
                    }
                }
            } else {
                ok = false;
            }
        }
        ok.then(|| HttpMatch {
            method: method.map(str::to_string),
            path_match,
            header_matches,
        })
    }
}

impl PathMatchInput {
    fn check(&self, c: &mut Checks, path: &str) -> Option<PathMatch> {
        let match_path = format!("{path}.match");
        let Some(m) = &self.path else {
            c.missing(&match_path);
            return None;
        };
        let (member, value) = one_member(
            c,
            &match_path,
            &[
                ("exact", m.exact.as_deref()),
                ("prefix", m.prefix.as_deref()),
            ],
        )?;
        let field = format!("{match_path}.{member}");
        if !(c.length(&field, value, 1, 200)
            && c.pattern(
                &field,
                value,
                super::target_group::is_lattice_path(value),
                PATH_MATCH_PATTERN,
            ))
        {
            return None;
        }
        let value = value.to_string();
        Some(PathMatch {
            path: if member == "exact" {
                PathMatchType::Exact(value)
            } else {
                PathMatchType::Prefix(value)
            },
            case_sensitive: self.case_sensitive.unwrap_or(false),
        })
    }
}

impl HeaderMatchInput {
    fn check(&self, c: &mut Checks, path: &str) -> Option<HeaderMatch> {
        let name_path = format!("{path}.name");
        let name = match &self.name {
            None => {
                c.missing(&name_path);
                None
            }
            // The model allows 1–100 characters; the name must also be a valid HTTP header name
            // for the data plane to compare it with anything.
            Some(n) => (c.length(&name_path, n, 1, 100)
                && c.pattern(
                    &name_path,
                    n,
                    is_http_token(n),
                    "[!#$%&'*+.^_`|~0-9A-Za-z-]+",
                ))
            .then(|| n.clone()),
        };
        let match_path = format!("{path}.match");
        let value = match &self.value {
            None => {
                c.missing(&match_path);
                None
            }
            Some(m) => one_member(
                c,
                &match_path,
                &[
                    ("exact", m.exact.as_deref()),
                    ("prefix", m.prefix.as_deref()),
                    ("contains", m.contains.as_deref()),
                ],
            )
            .and_then(|(member, v)| {
                c.length(&format!("{match_path}.{member}"), v, 1, 200)
                    .then(|| match member {
                        "exact" => HeaderMatchType::Exact(v.to_string()),
                        "prefix" => HeaderMatchType::Prefix(v.to_string()),
                        _ => HeaderMatchType::Contains(v.to_string()),
                    })
            }),
        };
        Some(HeaderMatch {
            name: name?,
            value: value?,
            case_sensitive: self.case_sensitive.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn fields(c: Checks) -> Vec<String> {
        match c.finish() {
            Ok(()) => vec![],
            Err(e) => e.fields.into_iter().map(|f| f.name).collect(),
        }
    }

    fn check_action(v: Value) -> (Option<RuleAction>, Vec<String>) {
        let input: RuleActionInput = serde_json::from_value(v).unwrap();
        let mut c = Checks::new();
        let out = input.check(&mut c, "action");
        (out, fields(c))
    }

    fn check_match(v: Value) -> (Option<RuleMatch>, Vec<String>) {
        let input: RuleMatchInput = serde_json::from_value(v).unwrap();
        let mut c = Checks::new();
        let out = input.check(&mut c, "match");
        (out, fields(c))
    }

    const TG: &str = "tg-0123456789abcdef0";
    const TG2: &str = "tg-0123456789abcdef1";

    /// (action JSON, expected failing fields)
    #[test]
    fn action_validation_table() {
        let arn = format!("arn:aws:vpc-lattice:us-west-2:111122223333:targetgroup/{TG}");
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG}]}}),
                vec![],
            ),
            (
                json!({"forward": {"targetGroups": [{"targetGroupIdentifier": arn}]}}),
                vec![],
            ),
            (json!({"fixedResponse": {"statusCode": 404}}), vec![]),
            (json!({"fixedResponse": {"statusCode": 500}}), vec![]),
            (json!({}), vec!["action"]),
            (
                json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG}]}, "fixedResponse": {"statusCode": 404}}),
                vec!["action"],
            ),
            (json!({"forward": {}}), vec!["action.forward.targetGroups"]),
            (
                json!({"forward": {"targetGroups": []}}),
                vec!["action.forward.targetGroups"],
            ),
            (
                json!({"forward": {"targetGroups": (0..11).map(|i| json!({"targetGroupIdentifier": format!("tg-0123456789abcde{i:02}"), "weight": 1})).collect::<Vec<_>>()}}),
                vec!["action.forward.targetGroups"],
            ),
            (
                json!({"forward": {"targetGroups": [{}]}}),
                vec!["action.forward.targetGroups[0].targetGroupIdentifier"],
            ),
            (
                json!({"forward": {"targetGroups": [{"targetGroupIdentifier": "tg-123"}]}}),
                vec!["action.forward.targetGroups[0].targetGroupIdentifier"],
            ),
            (
                json!({"forward": {"targetGroups": [{"targetGroupIdentifier": "svc-0123456789abcdef0"}]}}),
                vec!["action.forward.targetGroups[0].targetGroupIdentifier"],
            ),
            (
                json!({"forward": {"targetGroups": [{"targetGroupIdentifier": "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0"}]}}),
                vec!["action.forward.targetGroups[0].targetGroupIdentifier"],
            ),
            (
                json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG, "weight": -1}]}}),
                vec!["action.forward.targetGroups[0].weight"],
            ),
            (
                json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG, "weight": 1000}]}}),
                vec!["action.forward.targetGroups[0].weight"],
            ),
            (
                json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG, "weight": 0}]}}),
                vec![],
            ),
            (
                json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG, "weight": 1}, {"targetGroupIdentifier": TG2}]}}),
                vec!["action.forward.targetGroups[1].weight"],
            ),
            (
                json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG, "weight": 1}, {"targetGroupIdentifier": arn, "weight": 2}]}}),
                vec!["action.forward.targetGroups[1].targetGroupIdentifier"],
            ),
            (
                json!({"fixedResponse": {}}),
                vec!["action.fixedResponse.statusCode"],
            ),
            (
                json!({"fixedResponse": {"statusCode": 99}}),
                vec!["action.fixedResponse.statusCode"],
            ),
            (
                json!({"fixedResponse": {"statusCode": 600}}),
                vec!["action.fixedResponse.statusCode"],
            ),
            (
                json!({"fixedResponse": {"statusCode": 200}}),
                vec!["action.fixedResponse.statusCode"],
            ),
            (
                json!({"fixedResponse": {"statusCode": 503}}),
                vec!["action.fixedResponse.statusCode"],
            ),
        ];
        for (v, want) in cases {
            let (out, got) = check_action(v.clone());
            assert_eq!(got, want, "{v}");
            assert_eq!(out.is_some(), want.is_empty(), "{v}");
        }
    }

    #[test]
    fn single_target_group_weight_defaults_to_100() {
        let (out, _) =
            check_action(json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG}]}}));
        assert_eq!(
            out,
            Some(RuleAction::Forward {
                target_groups: vec![WeightedTargetGroup {
                    target_group_id: TG.into(),
                    weight: 100
                }]
            })
        );
        let (out, _) = check_action(
            json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG, "weight": 7}, {"targetGroupIdentifier": TG2, "weight": 0}]}}),
        );
        assert_eq!(
            out.unwrap().target_group_ids(),
            vec![TG.to_string(), TG2.to_string()]
        );
    }

    /// (match JSON, expected failing fields)
    #[test]
    fn match_validation_table() {
        let long = format!("/{}", "a".repeat(200));
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"httpMatch": {"method": "GET"}}), vec![]),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"prefix": "/api"}}}}),
                vec![],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"exact": "/a/b?c=d&e=f#x"}, "caseSensitive": true}}}),
                vec![],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x-env", "match": {"contains": "blue"}}]}}),
                vec![],
            ),
            (json!({}), vec!["match"]),
            (json!({"httpMatch": {}}), vec!["match.httpMatch"]),
            (
                json!({"httpMatch": {"method": "GETTINGTOOLONGXXX"}}),
                vec!["match.httpMatch.method"],
            ),
            // An empty method is no method condition (what the Terraform provider sends)...
            (
                json!({"httpMatch": {"method": "", "pathMatch": {"match": {"prefix": "/api"}}}}),
                vec![],
            ),
            // ...so on its own it leaves the match without any condition.
            (
                json!({"httpMatch": {"method": ""}}),
                vec!["match.httpMatch"],
            ),
            (
                json!({"httpMatch": {"method": "GE T"}}),
                vec!["match.httpMatch.method"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {}}}),
                vec!["match.httpMatch.pathMatch.match"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {}}}}),
                vec!["match.httpMatch.pathMatch.match"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"exact": "/a", "prefix": "/a"}}}}),
                vec!["match.httpMatch.pathMatch.match"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"exact": ""}}}}),
                vec!["match.httpMatch.pathMatch.match.exact"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"prefix": "api"}}}}),
                vec!["match.httpMatch.pathMatch.match.prefix"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"prefix": "/a b"}}}}),
                vec!["match.httpMatch.pathMatch.match.prefix"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"prefix": "/*"}}}}),
                vec!["match.httpMatch.pathMatch.match.prefix"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"prefix": long}}}}),
                vec!["match.httpMatch.pathMatch.match.prefix"],
            ),
            (
                json!({"httpMatch": {"headerMatches": []}}),
                vec!["match.httpMatch.headerMatches"],
            ),
            (
                json!({"httpMatch": {"headerMatches": (0..6).map(|i| json!({"name": format!("h{i}"), "match": {"exact": "v"}})).collect::<Vec<_>>()}}),
                vec!["match.httpMatch.headerMatches"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"match": {"exact": "v"}}]}}),
                vec!["match.httpMatch.headerMatches[0].name"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "", "match": {"exact": "v"}}]}}),
                vec!["match.httpMatch.headerMatches[0].name"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "h".repeat(101), "match": {"exact": "v"}}]}}),
                vec!["match.httpMatch.headerMatches[0].name"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "h".repeat(100), "match": {"exact": "v"}}]}}),
                vec![],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "bad name", "match": {"exact": "v"}}]}}),
                vec!["match.httpMatch.headerMatches[0].name"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x"}]}}),
                vec!["match.httpMatch.headerMatches[0].match"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x", "match": {}}]}}),
                vec!["match.httpMatch.headerMatches[0].match"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x", "match": {"exact": "a", "contains": "b"}}]}}),
                vec!["match.httpMatch.headerMatches[0].match"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x", "match": {"prefix": ""}}]}}),
                vec!["match.httpMatch.headerMatches[0].match.prefix"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x", "match": {"contains": "v".repeat(201)}}]}}),
                vec!["match.httpMatch.headerMatches[0].match.contains"],
            ),
            (
                json!({"httpMatch": {"method": "GE T", "pathMatch": {"match": {}}, "headerMatches": [{"name": "ok", "match": {"exact": "v"}}, {}]}}),
                vec![
                    "match.httpMatch.method",
                    "match.httpMatch.pathMatch.match",
                    "match.httpMatch.headerMatches[1].name",
                    "match.httpMatch.headerMatches[1].match",
                ],
            ),
        ];
        for (v, want) in cases {
            let (out, got) = check_match(v.clone());
            assert_eq!(got, want, "{v}");
            assert_eq!(out.is_some(), want.is_empty(), "{v}");
        }
    }

    /// The Terraform provider sends `"method": ""` for a rule without a method: it is stored as
    /// no method condition, so reads answer without `method` (and match every method).
    #[test]
    fn empty_method_is_no_method_condition() {
        let (out, errors) = check_match(
            json!({"httpMatch": {"method": "", "pathMatch": {"match": {"prefix": "/fn"}}, "headerMatches": null}}),
        );
        assert_eq!(errors, Vec::<String>::new());
        let RuleMatch::HttpMatch(m) = out.unwrap();
        assert_eq!(m.method, None);
    }

    #[test]
    fn match_defaults_case_insensitive() {
        let (out, _) = check_match(
            json!({"httpMatch": {"method": "POST", "pathMatch": {"match": {"prefix": "/api"}}, "headerMatches": [{"name": "x-a", "match": {"exact": "1"}}]}}),
        );
        let RuleMatch::HttpMatch(m) = out.unwrap();
        assert_eq!(m.method.as_deref(), Some("POST"));
        assert_eq!(
            m.path_match,
            Some(PathMatch {
                path: PathMatchType::Prefix("/api".into()),
                case_sensitive: false
            })
        );
        assert_eq!(
            m.header_matches,
            vec![HeaderMatch {
                name: "x-a".into(),
                value: HeaderMatchType::Exact("1".into()),
                case_sensitive: false
            }]
        );
    }

    #[test]
    fn name_and_priority_table() {
        for (name, ok) in [
            ("abc", true),
            ("rule-one", false),
            ("ab", false),
            ("a".repeat(63).as_str(), true),
            ("a".repeat(64).as_str(), false),
            ("Abc", false),
            ("a--b", false),
        ] {
            let mut c = Checks::new();
            assert_eq!(check_rule_name(&mut c, "name", name), ok, "{name}");
        }
        for (p, ok) in [
            (0, false),
            (1, true),
            (2000, true),
            (2001, false),
            (-5, false),
        ] {
            let mut c = Checks::new();
            assert_eq!(check_priority(&mut c, "priority", p).is_some(), ok, "{p}");
        }
    }

    #[test]
    fn stored_form_round_trips() {
        let rule = Rule {
            id: "rule-0123456789abcdef0".into(),
            name: "r1".into(),
            arn: "arn".into(),
            service_id: "svc-0123456789abcdef0".into(),
            listener_id: "listener-0123456789abcdef0".into(),
            is_default: false,
            priority: Some(3),
            rule_match: Some(RuleMatch::HttpMatch(HttpMatch {
                method: Some("GET".into()),
                path_match: None,
                header_matches: vec![],
            })),
            action: RuleAction::Forward {
                target_groups: vec![WeightedTargetGroup {
                    target_group_id: TG.into(),
                    weight: 5,
                }],
            },
            created_at: Timestamp::from_unix_millis(0),
            last_updated_at: Timestamp::from_unix_millis(0),
            tags: Tags::new(),
        };
        let v = serde_json::to_value(&rule).unwrap();
        assert_eq!(
            v["action"],
            json!({"forward": {"targetGroups": [{"targetGroupId": TG, "weight": 5}]}})
        );
        assert_eq!(v["match"], json!({"httpMatch": {"method": "GET"}}));
        assert_eq!(serde_json::from_value::<Rule>(v).unwrap(), rule);
        let fixed = serde_json::to_value(RuleAction::FixedResponse { status_code: 404 }).unwrap();
        assert_eq!(fixed, json!({"fixedResponse": {"statusCode": 404}}));
    }
}
