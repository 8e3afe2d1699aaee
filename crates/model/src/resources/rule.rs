//! Listener rules: the typed match and action every rule carries (and every listener's default
//! action), and the stored rule document (reference §4.1).
//!
//! These are what a rule *is*, already checked: unions are enums with exactly one variant and
//! defaults are filled in, so the data plane compiles them without re-checking anything. The
//! request shapes and their validation live in the API crate (`trellis_api::actions`,
//! `trellis_api::rules::input`), which produces these types.

use serde::{Deserialize, Serialize};

use super::Tags;
use crate::Timestamp;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TG: &str = "tg-0123456789abcdef0";

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
