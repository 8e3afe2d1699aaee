//! What listeners and rules share, so that neither module needs the other (nor
//! `target_groups`): the action a listener's default action or a rule carries as a request sends
//! it and its validation, the wire form of a stored action, resolving the target groups a forward
//! names (existence, listener compatibility, one service per target group, the per-service quota),
//! which services use a target group, the rule record, and loading the service and listener a path
//! names.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use trellis_model::arn::Resolved;
use trellis_model::resources::listener::{
    Listener, ListenerProtocol, check_action_for_listener, check_target_group_for_listener,
};
use trellis_model::resources::rule::{
    DEFAULT_WEIGHT, Rule, RuleAction, TARGET_GROUPS_PER_SERVICE, WeightedTargetGroup,
};
use trellis_model::resources::target_group::TargetGroup;
use trellis_model::{Checks, Context, ResourceKind};
use trellis_store::{Record, Tx};

use crate::error::{ApiError, ApiResult};
use crate::wire::{NewRecord, doc, load, load_child_doc};

// ---------------------------------------------------------------------------------------------
// The request shape of an action and its validation.

/// A `RuleAction` union as a request sends it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleActionInput {
    pub forward: Option<ForwardInput>,
    pub fixed_response: Option<FixedResponseInput>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForwardInput {
    pub target_groups: Option<Vec<WeightedTargetGroupInput>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedTargetGroupInput {
    pub target_group_identifier: Option<String>,
    pub weight: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FixedResponseInput {
    pub status_code: Option<i64>,
}

/// Records that a union at `path` has zero or several members set.
pub(crate) fn union_error(c: &mut Checks, path: &str, members: &[&str]) {
    c.fail(
        path,
        format!("Value at '{path}' failed to satisfy constraint: Member must have exactly one of [{}] set", members.join(", ")),
    );
}

/// The one member of a union, or a field error when zero or several are set.
pub(crate) fn one_member<'a, T>(
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

// ---------------------------------------------------------------------------------------------
// The response shape of an action.

/// A [`RuleAction`] as the API answers with it: a forward names its target groups by ID under
/// `targetGroupIdentifier` (the stored document calls the member `targetGroupId`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum RuleActionOutput {
    Forward {
        target_groups: Vec<WeightedTargetGroupOutput>,
    },
    FixedResponse {
        status_code: u16,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedTargetGroupOutput {
    pub target_group_identifier: String,
    pub weight: u16,
}

impl From<&RuleAction> for RuleActionOutput {
    fn from(action: &RuleAction) -> RuleActionOutput {
        match action {
            RuleAction::Forward { target_groups } => RuleActionOutput::Forward {
                target_groups: target_groups
                    .iter()
                    .map(|t| WeightedTargetGroupOutput {
                        target_group_identifier: t.target_group_id.clone(),
                        weight: t.weight,
                    })
                    .collect(),
            },
            RuleAction::FixedResponse { status_code } => RuleActionOutput::FixedResponse {
                status_code: *status_code,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checking an action against the store.

/// Resolves the target groups of a validated `action` for a listener of `protocol` in
/// `service_id`: each identifier becomes the target group's ID, and each group must exist, suit
/// the listener's protocol, and not serve another service. `field` is the action's wire path.
pub(crate) async fn resolve_action(
    tx: &mut Tx,
    ctx: &Context,
    protocol: ListenerProtocol,
    service_id: &str,
    field: &str,
    action: &mut RuleAction,
) -> ApiResult<()> {
    check_action_for_listener(protocol, action)
        .map_err(|m| ApiError::validation_field(field, m))?;
    for (i, wtg) in action.target_groups_mut().iter_mut().enumerate() {
        let identifier = wtg.target_group_id.clone();
        let Resolved::Id(id) = ctx.resolve(ResourceKind::TargetGroup, &identifier) else {
            return Err(ApiError::not_found(ResourceKind::TargetGroup, &identifier));
        };
        let rec = tx
            .get(ResourceKind::TargetGroup.store_kind(), &id)
            .await?
            .ok_or_else(|| ApiError::not_found(ResourceKind::TargetGroup, &identifier))?;
        let tg: TargetGroup = doc(&rec)?;
        check_target_group_for_listener(protocol, &tg).map_err(|m| {
            ApiError::validation_field(
                &format!("{field}.forward.targetGroups[{i}].targetGroupIdentifier"),
                m,
            )
        })?;
        let users = services_using(tx, &id).await?;
        if let Some(other) = users.iter().find(|s| s.as_str() != service_id) {
            return Err(ApiError::conflict(
                ResourceKind::TargetGroup,
                &id,
                format!(
                    "Target group {id} is already used by service {other}; a target group can serve only one service"
                ),
            ));
        }
        wtg.target_group_id = id;
    }
    Ok(())
}

/// The services whose listeners or rules forward to target group `tg_id`, from the listener
/// and rule records whose `refs` name it.
pub(crate) async fn services_using(tx: &mut Tx, tg_id: &str) -> ApiResult<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for l in tx
        .list_referencing(ResourceKind::Listener.store_kind(), tg_id)
        .await?
    {
        if let Some(p) = l.parent {
            out.insert(p);
        }
    }
    for r in tx
        .list_referencing(ResourceKind::Rule.store_kind(), tg_id)
        .await?
    {
        let rule: Rule = doc(&r)?;
        out.insert(rule.service_id);
    }
    Ok(out)
}

/// The distinct target groups that the listeners and rules of `service_id` forward to, leaving
/// out the records in `exclude` (the ones a request is about to replace).
pub(crate) async fn service_target_groups(
    tx: &mut Tx,
    service_id: &str,
    exclude: &[&str],
) -> ApiResult<BTreeSet<String>> {
    let mut set = BTreeSet::new();
    for l in tx
        .list(ResourceKind::Listener.store_kind(), Some(service_id))
        .await?
    {
        if !exclude.contains(&l.id.as_str()) {
            set.extend(l.refs.iter().cloned());
        }
        for r in tx
            .list(ResourceKind::Rule.store_kind(), Some(&l.id))
            .await?
        {
            if !exclude.contains(&r.id.as_str()) {
                set.extend(r.refs.iter().cloned());
            }
        }
    }
    Ok(set)
}

/// ServiceQuotaExceeded when `set` holds more target groups than one service may use.
pub(crate) fn check_target_group_quota(service_id: &str, set: &BTreeSet<String>) -> ApiResult<()> {
    if set.len() > TARGET_GROUPS_PER_SERVICE {
        return Err(ApiError::quota(
            ResourceKind::TargetGroup,
            Some(service_id),
            "target-groups-per-service",
            "target groups per service",
            TARGET_GROUPS_PER_SERVICE as u64,
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Records and paths.

/// Builds a rule record (refs = the action's target groups); listeners write their default
/// rule with it.
pub(crate) fn rule_record(rule: &Rule) -> ApiResult<Record> {
    NewRecord {
        kind: ResourceKind::Rule,
        id: &rule.id,
        parent: Some(&rule.listener_id),
        name: Some(&rule.name),
        arn: Some(&rule.arn),
        refs: rule.action.target_group_ids(),
    }
    .with_body(rule)
}

/// Loads the service a path names (`serviceIdentifier`, ID or ARN).
pub(crate) async fn load_service(tx: &mut Tx, ctx: &Context, ident: &str) -> ApiResult<Record> {
    load(tx, ctx, ResourceKind::Service, "serviceIdentifier", ident).await
}

/// Loads the listener a path names; a listener of another service does not exist here.
pub(crate) async fn load_listener(
    tx: &mut Tx,
    ctx: &Context,
    service_id: &str,
    ident: &str,
) -> ApiResult<(Record, Listener)> {
    load_child_doc(
        tx,
        ctx,
        ResourceKind::Listener,
        "listenerIdentifier",
        ident,
        service_id,
    )
    .await
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

    /// The API answers with an action's target groups under `targetGroupIdentifier`, and that
    /// shape parses and validates back to the same action.
    #[test]
    fn output_shape_round_trips() {
        let (action, _) = check_action(
            json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG, "weight": 7}, {"targetGroupIdentifier": TG2, "weight": 0}]}}),
        );
        let action = action.unwrap();
        let shown = serde_json::to_value(RuleActionOutput::from(&action)).unwrap();
        assert_eq!(
            shown,
            json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG, "weight": 7}, {"targetGroupIdentifier": TG2, "weight": 0}]}})
        );
        assert_eq!(check_action(shown), (Some(action), vec![]));
        let fixed = RuleAction::FixedResponse { status_code: 404 };
        let shown = serde_json::to_value(RuleActionOutput::from(&fixed)).unwrap();
        assert_eq!(shown, json!({"fixedResponse": {"statusCode": 404}}));
        assert_eq!(check_action(shown), (Some(fixed), vec![]));
    }
}
