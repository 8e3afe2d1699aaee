//! Listener rules: CreateRule, GetRule, ListRules, UpdateRule, DeleteRule, BatchUpdateRule.
//!
//! Every listener has a default rule (created and kept in sync by the listener operations); it is
//! readable here but only UpdateListener changes it and only DeleteListener removes it. What
//! rules share with listeners (actions, their target groups, loading the service and listener a
//! path names) is in [`crate::actions`]; the request shape of a match is in [`input`].

pub mod input;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use trellis_model::arn::Resolved;
use trellis_model::resources::Tags;
use trellis_model::resources::listener::{Listener, ListenerProtocol};
use trellis_model::resources::rule::{RULES_PER_LISTENER, Rule, RuleAction, RuleMatch};
use trellis_model::{Checks, Context, ResourceKind, Timestamp, ValidationError};
use trellis_store::{Record, Tx};
use trellis_wire::Call;

use self::input::{RuleMatchInput, check_priority, check_rule_name};
use crate::AppState;
use crate::actions::{
    RuleActionInput, RuleActionOutput, check_target_group_quota, load_listener, load_service,
    resolve_action, rule_record, service_target_groups,
};
use crate::error::{ApiError, ApiResult, failure_of};
use crate::wire::{Idempotency, ListOutput, Page, doc, load_child_doc, set_doc};

const KIND: ResourceKind = ResourceKind::Rule;

// ---------------------------------------------------------------------------------------------
// Inputs.

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRuleInput {
    // The path labels are the idempotency scope (by ID), not part of the remembered request.
    #[serde(skip_serializing)]
    service_identifier: String,
    #[serde(skip_serializing)]
    listener_identifier: String,
    name: Option<String>,
    #[serde(rename = "match")]
    rule_match: Option<RuleMatchInput>,
    priority: Option<i64>,
    action: Option<RuleActionInput>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

/// A checked CreateRule (the action's target groups not yet resolved).
struct NewRule {
    name: String,
    rule_match: RuleMatch,
    priority: u16,
    action: RuleAction,
}

impl CreateRuleInput {
    fn validate(&self) -> Result<NewRule, ValidationError> {
        let mut c = Checks::new();
        match &self.name {
            Some(n) => {
                check_rule_name(&mut c, "name", n);
            }
            None => c.missing("name"),
        }
        let rule_match = match &self.rule_match {
            Some(m) => m.check(&mut c, "match"),
            None => {
                c.missing("match");
                None
            }
        };
        let priority = match self.priority {
            Some(p) => check_priority(&mut c, "priority", p),
            None => {
                c.missing("priority");
                None
            }
        };
        let action = match &self.action {
            Some(a) => a.check(&mut c, "action"),
            None => {
                c.missing("action");
                None
            }
        };
        c.tags("tags", &self.tags);
        if let Some(t) = &self.client_token {
            c.client_token(t);
        }
        c.finish()?;
        match (rule_match, priority, action) {
            (Some(rule_match), Some(priority), Some(action)) => Ok(NewRule {
                name: self.name.clone().unwrap_or_default(),
                rule_match,
                priority,
                action,
            }),
            // Every check that leaves a member unset also records a failure, so `finish` has
            // already returned; this names the members should that ever stop holding.
            _ => Err(ValidationError::other(
                "match, priority and action must all be valid",
            )),
        }
    }
}

/// The input of the operations that name one rule and nothing else.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleIdentifierInput {
    service_identifier: String,
    listener_identifier: String,
    rule_identifier: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRulesInput {
    service_identifier: String,
    listener_identifier: String,
    max_results: Option<String>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRuleInput {
    service_identifier: String,
    listener_identifier: String,
    rule_identifier: String,
    #[serde(rename = "match")]
    rule_match: Option<RuleMatchInput>,
    priority: Option<i64>,
    action: Option<RuleActionInput>,
}

impl UpdateRuleInput {
    fn validate(&self) -> Result<Change, ValidationError> {
        let mut c = Checks::new();
        let change = check_change(
            &mut c,
            "",
            self.rule_match.as_ref(),
            self.priority,
            self.action.as_ref(),
        );
        c.finish()?;
        Ok(change)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchUpdateRuleInput {
    service_identifier: String,
    listener_identifier: String,
    rules: Option<Vec<RuleUpdateInput>>,
}

/// One item of a BatchUpdateRule.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleUpdateInput {
    rule_identifier: Option<String>,
    #[serde(rename = "match")]
    rule_match: Option<RuleMatchInput>,
    priority: Option<i64>,
    action: Option<RuleActionInput>,
}

impl BatchUpdateRuleInput {
    /// The items as (rule identifier, checked change), in order.
    fn validate(&self, ctx: &Context) -> Result<Vec<(String, Change)>, ValidationError> {
        let mut c = Checks::new();
        let mut items = Vec::new();
        match &self.rules {
            None => c.missing("rules"),
            Some(list) => {
                if c.count("rules", list.len(), 1, 10) {
                    for (i, item) in list.iter().enumerate() {
                        let field = format!("rules[{i}].ruleIdentifier");
                        match &item.rule_identifier {
                            None => c.missing(&field),
                            Some(v) => {
                                if c.length(&field, v, 20, 2048)
                                    && ctx.resolve(KIND, v) == Resolved::Malformed
                                {
                                    c.fail(
                                        &field,
                                        format!("Value '{v}' at '{field}' failed to satisfy constraint: Member must be a rule ID or ARN"),
                                    );
                                }
                            }
                        }
                        let change = check_change(
                            &mut c,
                            &format!("rules[{i}]."),
                            item.rule_match.as_ref(),
                            item.priority,
                            item.action.as_ref(),
                        );
                        items.push((item.rule_identifier.clone().unwrap_or_default(), change));
                    }
                }
            }
        }
        c.finish()?;
        Ok(items)
    }
}

/// A validated change to one rule (UpdateRule, or one item of BatchUpdateRule).
#[derive(Default)]
struct Change {
    rule_match: Option<RuleMatch>,
    priority: Option<u16>,
    action: Option<RuleAction>,
}

fn check_change(
    c: &mut Checks,
    prefix: &str,
    m: Option<&RuleMatchInput>,
    p: Option<i64>,
    a: Option<&RuleActionInput>,
) -> Change {
    Change {
        rule_match: m.and_then(|m| m.check(c, &format!("{prefix}match"))),
        priority: p.and_then(|p| check_priority(c, &format!("{prefix}priority"), p)),
        action: a.and_then(|a| a.check(c, &format!("{prefix}action"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Outputs. A stored match is already in its wire shape (`RuleMatch` serialises as the API
// writes it; `match_output_shape` pins that), so outputs carry it as is.

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRuleOutput {
    arn: String,
    id: String,
    name: String,
    #[serde(rename = "match")]
    rule_match: RuleMatch,
    priority: u16,
    action: RuleActionOutput,
}

/// UpdateRule's output, and each item BatchUpdateRule reports as successful.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleOutput {
    arn: String,
    id: String,
    name: String,
    is_default: bool,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    rule_match: Option<RuleMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u16>,
    action: RuleActionOutput,
}

impl From<&Rule> for RuleOutput {
    fn from(r: &Rule) -> RuleOutput {
        RuleOutput {
            arn: r.arn.clone(),
            id: r.id.clone(),
            name: r.name.clone(),
            is_default: r.is_default,
            rule_match: r.rule_match.clone(),
            priority: r.priority,
            action: RuleActionOutput::from(&r.action),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetRuleOutput {
    arn: String,
    id: String,
    name: String,
    is_default: bool,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    rule_match: Option<RuleMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u16>,
    action: RuleActionOutput,
    created_at: Timestamp,
    last_updated_at: Timestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSummary {
    arn: String,
    id: String,
    name: String,
    is_default: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u16>,
    created_at: Timestamp,
    last_updated_at: Timestamp,
}

/// DeleteRule answers 204 with no members.
#[derive(Debug, Serialize)]
pub struct DeleteRuleOutput {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchUpdateRuleOutput {
    successful: Vec<RuleOutput>,
    unsuccessful: Vec<RuleUpdateFailure>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleUpdateFailure {
    rule_identifier: String,
    failure_code: String,
    failure_message: String,
}

// ---------------------------------------------------------------------------------------------
// Handlers.

pub(crate) async fn create(
    s: AppState,
    input: CreateRuleInput,
    _: Call,
) -> ApiResult<CreateRuleOutput> {
    let NewRule {
        name,
        rule_match,
        priority,
        mut action,
    } = input.validate()?;

    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &input.service_identifier).await?;
    let (lrec, l) = load_listener(&mut tx, &s.ctx, &svc.id, &input.listener_identifier).await?;
    let idem = Idempotency::new(
        "CreateRule",
        &lrec.id,
        input.client_token.as_deref(),
        &serde_json::to_value(&input).map_err(|e| ApiError::Internal(e.to_string()))?,
    )?;
    if let Some(out) = idem.replay_output(&mut tx, KIND).await? {
        return Ok(out);
    }
    if l.protocol == ListenerProtocol::TlsPassthrough {
        return Err(ApiError::validation_other(format!(
            "Listener {} is a TLS_PASSTHROUGH listener; TLS_PASSTHROUGH listeners have only their default rule",
            l.id
        )));
    }
    if let Some(existing) = tx
        .get_by_name(KIND.store_kind(), Some(&l.id), &name)
        .await?
    {
        return Err(ApiError::conflict(
            KIND,
            &existing.id,
            format!("A rule named '{name}' already exists in listener {}", l.id),
        ));
    }
    let rules = tx.list(KIND.store_kind(), Some(&l.id)).await?;
    let mut non_default = 0;
    for r in &rules {
        let rule: Rule = doc(r)?;
        if rule.is_default {
            continue;
        }
        non_default += 1;
        if rule.priority == Some(priority) {
            return Err(ApiError::conflict(
                KIND,
                &rule.id,
                format!(
                    "Priority {priority} is already used by rule {} of listener {}",
                    rule.id, l.id
                ),
            ));
        }
    }
    if non_default >= RULES_PER_LISTENER {
        return Err(ApiError::quota(
            KIND,
            Some(&l.id),
            "rules-per-listener",
            "rules per listener (not counting the default rule)",
            RULES_PER_LISTENER,
        ));
    }
    resolve_action(&mut tx, &s.ctx, l.protocol, &svc.id, "action", &mut action).await?;
    let mut tgs = service_target_groups(&mut tx, &svc.id, &[]).await?;
    tgs.extend(action.target_group_ids());
    check_target_group_quota(&svc.id, &tgs)?;

    let id = KIND.new_id();
    let now = Timestamp::now();
    let rule = Rule {
        arn: s.ctx.rule_arn(&svc.id, &l.id, &id),
        id,
        name,
        service_id: svc.id.clone(),
        listener_id: l.id.clone(),
        is_default: false,
        priority: Some(priority),
        rule_match: Some(rule_match.clone()),
        action,
        created_at: now,
        last_updated_at: now,
        tags: input.tags,
    };
    tx.insert(&rule_record(&rule)?).await?;
    // CreateRuleResponse has no isDefault (a created rule never is).
    let out = CreateRuleOutput {
        arn: rule.arn,
        id: rule.id,
        name: rule.name,
        rule_match,
        priority,
        action: RuleActionOutput::from(&rule.action),
    };
    idem.finish_output(tx, out).await
}

pub(crate) async fn read(
    s: AppState,
    input: RuleIdentifierInput,
    _: Call,
) -> ApiResult<GetRuleOutput> {
    let mut tx = s.store.read().await?;
    let svc = load_service(&mut tx, &s.ctx, &input.service_identifier).await?;
    let (lrec, _) = load_listener(&mut tx, &s.ctx, &svc.id, &input.listener_identifier).await?;
    let (_, r) = load_rule(&mut tx, &s.ctx, &lrec.id, &input.rule_identifier).await?;
    Ok(GetRuleOutput {
        action: RuleActionOutput::from(&r.action),
        arn: r.arn,
        id: r.id,
        name: r.name,
        is_default: r.is_default,
        rule_match: r.rule_match,
        priority: r.priority,
        created_at: r.created_at,
        last_updated_at: r.last_updated_at,
    })
}

/// Lists a listener's rules in evaluation order: ascending priority, the default rule last.
pub(crate) async fn list(
    s: AppState,
    input: ListRulesInput,
    _: Call,
) -> ApiResult<ListOutput<RuleSummary>> {
    let page = Page::new(input.max_results.as_deref(), input.next_token.as_deref())?;
    let mut tx = s.store.read().await?;
    let svc = load_service(&mut tx, &s.ctx, &input.service_identifier).await?;
    let (lrec, _) = load_listener(&mut tx, &s.ctx, &svc.id, &input.listener_identifier).await?;
    let mut records = Vec::new();
    for mut rec in tx.list(KIND.store_kind(), Some(&lrec.id)).await? {
        let rule: Rule = doc(&rec)?;
        // Pages are cut by `seq`; ordering (and paging) by priority instead, with the default
        // rule after every possible priority, lists the rules in the order they are evaluated.
        rec.seq = rule.priority.map_or(i64::MAX, i64::from);
        records.push((rec, rule));
    }
    records.sort_by_key(|(rec, _)| rec.seq);
    let mut by_id: BTreeMap<String, Rule> = records
        .iter()
        .map(|(rec, r)| (rec.id.clone(), r.clone()))
        .collect();
    let (page_records, next_token) = page.apply(records.into_iter().map(|(rec, _)| rec).collect());
    let items = page_records
        .iter()
        .filter_map(|rec| by_id.remove(&rec.id))
        .map(|r| RuleSummary {
            arn: r.arn,
            id: r.id,
            name: r.name,
            is_default: r.is_default,
            priority: r.priority,
            created_at: r.created_at,
            last_updated_at: r.last_updated_at,
        })
        .collect();
    Ok(ListOutput { items, next_token })
}

pub(crate) async fn update(s: AppState, input: UpdateRuleInput, _: Call) -> ApiResult<RuleOutput> {
    let change = input.validate()?;
    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &input.service_identifier).await?;
    let (lrec, l) = load_listener(&mut tx, &s.ctx, &svc.id, &input.listener_identifier).await?;
    let (mut rec, mut r) = load_rule(&mut tx, &s.ctx, &lrec.id, &input.rule_identifier).await?;
    apply_change(&mut tx, &s.ctx, &l, &mut r, change).await?;
    set_doc(&mut rec, &r)?;
    rec.refs = r.action.target_group_ids();
    tx.update(&rec).await?;
    tx.commit().await?;
    Ok(RuleOutput::from(&r))
}

/// Applies `change` to rule `r` of listener `l` with every check UpdateRule makes.
async fn apply_change(
    tx: &mut Tx,
    ctx: &Context,
    l: &Listener,
    r: &mut Rule,
    change: Change,
) -> ApiResult<()> {
    if r.is_default {
        return Err(default_rule_is_read_only(r));
    }
    if let Some(p) = change.priority
        && Some(p) != r.priority
    {
        for other in tx.list(KIND.store_kind(), Some(&l.id)).await? {
            let o: Rule = doc(&other)?;
            if o.id != r.id && o.priority == Some(p) {
                return Err(ApiError::conflict(
                    KIND,
                    &o.id,
                    format!(
                        "Priority {p} is already used by rule {} of listener {}",
                        o.id, l.id
                    ),
                ));
            }
        }
    }
    if let Some(mut action) = change.action {
        resolve_action(tx, ctx, l.protocol, &l.service_id, "action", &mut action).await?;
        let mut tgs = service_target_groups(tx, &l.service_id, &[&r.id]).await?;
        tgs.extend(action.target_group_ids());
        check_target_group_quota(&l.service_id, &tgs)?;
        r.action = action;
    }
    if let Some(p) = change.priority {
        r.priority = Some(p);
    }
    if let Some(m) = change.rule_match {
        r.rule_match = Some(m);
    }
    r.last_updated_at = Timestamp::now();
    Ok(())
}

pub(crate) async fn delete(
    s: AppState,
    input: RuleIdentifierInput,
    _: Call,
) -> ApiResult<DeleteRuleOutput> {
    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &input.service_identifier).await?;
    let (lrec, _) = load_listener(&mut tx, &s.ctx, &svc.id, &input.listener_identifier).await?;
    let (rec, r) = load_rule(&mut tx, &s.ctx, &lrec.id, &input.rule_identifier).await?;
    if r.is_default {
        return Err(default_rule_is_read_only(&r));
    }
    tx.delete(KIND.store_kind(), &rec.id).await?;
    tx.commit().await?;
    Ok(DeleteRuleOutput {})
}

// ---------------------------------------------------------------------------------------------
// BatchUpdateRule.

/// One item of a batch on its way through: the identifier as given, the rule's id once the
/// item has been applied, and the error that failed it, if any.
struct Item {
    identifier: String,
    rule_id: Option<String>,
    failure: Option<ApiError>,
}

/// The listener's rules as a batch changes them, keyed by id.
type RuleSet = BTreeMap<String, (Record, Rule)>;

/// Checks one batch item like UpdateRule would (except for priority uniqueness, which is checked
/// once the whole batch is applied) and applies it to `state`. Returns the rule's id.
#[allow(clippy::too_many_arguments)]
async fn apply_item(
    tx: &mut Tx,
    ctx: &Context,
    l: &Listener,
    state: &mut RuleSet,
    done: &[Item],
    others: &BTreeSet<String>,
    identifier: &str,
    change: Change,
) -> ApiResult<String> {
    let Resolved::Id(id) = ctx.resolve(KIND, identifier) else {
        return Err(ApiError::not_found(KIND, identifier));
    };
    let Some((_, current)) = state.get(&id) else {
        return Err(ApiError::not_found(KIND, identifier));
    };
    if done
        .iter()
        .any(|i| i.rule_id.as_deref() == Some(id.as_str()))
    {
        return Err(ApiError::validation_other(format!(
            "Rule {id} appears more than once in the batch"
        )));
    }
    if current.is_default {
        return Err(default_rule_is_read_only(current));
    }
    let mut updated = current.clone();
    if let Some(mut action) = change.action {
        resolve_action(tx, ctx, l.protocol, &l.service_id, "action", &mut action).await?;
        let mut tgs = others.clone();
        for (rid, (_, r)) in state.iter() {
            if *rid != id {
                tgs.extend(r.action.target_group_ids());
            }
        }
        tgs.extend(action.target_group_ids());
        check_target_group_quota(&l.service_id, &tgs)?;
        updated.action = action;
    }
    if let Some(m) = change.rule_match {
        updated.rule_match = Some(m);
    }
    if let Some(p) = change.priority {
        updated.priority = Some(p);
    }
    updated.last_updated_at = Timestamp::now();
    if let Some(entry) = state.get_mut(&id) {
        entry.1 = updated;
    }
    Ok(id)
}

/// BatchUpdateRule: every item is checked like UpdateRule, items that fail are reported in
/// `unsuccessful` and the others applied. Priority uniqueness is checked on the listener's
/// rules as they are after the whole batch, so that a batch can swap two priorities.
pub(crate) async fn batch_update(
    s: AppState,
    input: BatchUpdateRuleInput,
    _: Call,
) -> ApiResult<BatchUpdateRuleOutput> {
    let inputs = input.validate(&s.ctx)?;

    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &input.service_identifier).await?;
    let (lrec, l) = load_listener(&mut tx, &s.ctx, &svc.id, &input.listener_identifier).await?;
    let mut state: RuleSet = BTreeMap::new();
    for rec in tx.list(KIND.store_kind(), Some(&lrec.id)).await? {
        let r: Rule = doc(&rec)?;
        state.insert(rec.id.clone(), (rec, r));
    }
    let original: BTreeMap<String, Rule> = state
        .iter()
        .map(|(k, (_, r))| (k.clone(), r.clone()))
        .collect();
    let rule_ids: Vec<&str> = original.keys().map(String::as_str).collect();
    // The target groups the rest of the service uses (the listener record itself included, and
    // with it the default action): the per-service quota applies to the union.
    let others = service_target_groups(&mut tx, &svc.id, &rule_ids).await?;

    let mut items: Vec<Item> = Vec::new();
    for (identifier, change) in inputs {
        let outcome = apply_item(
            &mut tx,
            &s.ctx,
            &l,
            &mut state,
            &items,
            &others,
            &identifier,
            change,
        )
        .await;
        items.push(match outcome {
            Ok(id) => Item {
                identifier,
                rule_id: Some(id),
                failure: None,
            },
            Err(e) => Item {
                identifier,
                rule_id: None,
                failure: Some(e),
            },
        });
    }

    // Priorities must be unique among the rules as the batch leaves them. An item whose new
    // priority collides fails and its rule keeps its old priority, which may in turn collide
    // with another item that took that priority: repeat until stable. Original priorities are
    // unique, so every collision involves a changed rule and the loop ends.
    loop {
        let mut by_priority: BTreeMap<u16, Vec<String>> = BTreeMap::new();
        for (id, (_, r)) in &state {
            if let Some(p) = r.priority {
                by_priority.entry(p).or_default().push(id.clone());
            }
        }
        let mut reverted = false;
        for (p, ids) in by_priority.into_iter().filter(|(_, ids)| ids.len() > 1) {
            for id in &ids {
                let old = original.get(id).and_then(|r| r.priority);
                if old == Some(p) {
                    continue;
                }
                let Some(item) = items
                    .iter_mut()
                    .find(|i| i.failure.is_none() && i.rule_id.as_deref() == Some(id.as_str()))
                else {
                    continue;
                };
                let holder = ids.iter().find(|o| *o != id).cloned().unwrap_or_default();
                item.failure = Some(ApiError::conflict(
                    KIND,
                    id,
                    format!(
                        "Priority {p} would also be used by rule {holder} of listener {} after this batch",
                        l.id
                    ),
                ));
                if let (Some(entry), Some(orig)) = (state.get_mut(id), original.get(id)) {
                    entry.1 = orig.clone();
                }
                reverted = true;
            }
        }
        if !reverted {
            break;
        }
    }

    let mut successful = Vec::new();
    let mut unsuccessful = Vec::new();
    for item in &items {
        match (&item.failure, &item.rule_id) {
            (Some(e), _) => {
                let (failure_code, failure_message) = failure_of(e);
                unsuccessful.push(RuleUpdateFailure {
                    rule_identifier: item.identifier.clone(),
                    failure_code,
                    failure_message,
                });
            }
            (None, Some(id)) => {
                if let Some((rec, r)) = state.get_mut(id) {
                    set_doc(rec, &*r)?;
                    rec.refs = r.action.target_group_ids();
                    tx.update(rec).await?;
                    successful.push(RuleOutput::from(&*r));
                }
            }
            (None, None) => {}
        }
    }
    tx.commit().await?;
    Ok(BatchUpdateRuleOutput {
        successful,
        unsuccessful,
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Loads the rule a path names; a rule of another listener does not exist here.
async fn load_rule(
    tx: &mut Tx,
    ctx: &Context,
    listener_id: &str,
    ident: &str,
) -> ApiResult<(Record, Rule)> {
    load_child_doc(tx, ctx, KIND, "ruleIdentifier", ident, listener_id).await
}

fn default_rule_is_read_only(rule: &Rule) -> ApiError {
    ApiError::validation_other(format!(
        "Rule {} is the listener's default rule; use UpdateListener to change its action (the default rule cannot be updated or deleted on its own)",
        rule.id
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use trellis_model::resources::rule::{
        HeaderMatch, HeaderMatchType, HttpMatch, PathMatch, PathMatchType, WeightedTargetGroup,
    };

    use super::*;

    /// Outputs carry the stored match as is: its serialisation must be the API's `RuleMatch`.
    #[test]
    fn match_output_shape() {
        let m = RuleMatch::HttpMatch(HttpMatch {
            method: Some("GET".into()),
            path_match: Some(PathMatch {
                path: PathMatchType::Prefix("/api".into()),
                case_sensitive: false,
            }),
            header_matches: vec![HeaderMatch {
                name: "x-env".into(),
                value: HeaderMatchType::Contains("blue".into()),
                case_sensitive: true,
            }],
        });
        let shown = serde_json::to_value(&m).unwrap();
        assert_eq!(
            shown,
            json!({"httpMatch": {
                "method": "GET",
                "pathMatch": {"match": {"prefix": "/api"}, "caseSensitive": false},
                "headerMatches": [{"name": "x-env", "match": {"contains": "blue"}, "caseSensitive": true}],
            }})
        );
        let again: RuleMatchInput = serde_json::from_value(shown).unwrap();
        let mut c = Checks::new();
        assert_eq!(again.check(&mut c, "match"), Some(m));
        assert!(c.finish().is_ok());
    }

    const TG: &str = "tg-0123456789abcdef0";
    const RULE: &str = "rule-0123456789abcdef0";

    /// The failing members of an input (labels added), decoded as the front door would.
    fn failing<I: serde::de::DeserializeOwned>(
        mut body: serde_json::Value,
        check: impl Fn(&I) -> Result<(), ValidationError>,
    ) -> Vec<String> {
        body["serviceIdentifier"] = json!("svc-0123456789abcdef0");
        body["listenerIdentifier"] = json!("listener-0123456789abcdef0");
        body["ruleIdentifier"] = json!(RULE);
        let input: I = trellis_wire::de::from_value(body).unwrap();
        crate::testutil::names(check(&input))
    }

    /// (CreateRule body, failing members)
    #[test]
    fn create_rule_validation_table() {
        let ok = json!({
            "name": "api", "priority": 1,
            "match": {"httpMatch": {"method": "GET"}},
            "action": {"fixedResponse": {"statusCode": 404}},
        });
        let with = |k: &str, v: serde_json::Value| {
            let mut b = ok.clone();
            b[k] = v;
            b
        };
        let without = |k: &str| {
            let mut b = ok.clone();
            b.as_object_mut().unwrap().remove(k);
            b
        };
        let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
            (ok.clone(), vec![]),
            (json!({}), vec!["name", "match", "priority", "action"]),
            (without("name"), vec!["name"]),
            (with("name", json!("rule-x")), vec!["name"]),
            (without("priority"), vec!["priority"]),
            (with("priority", json!(0)), vec!["priority"]),
            (with("priority", json!("7")), vec![]),
            (with("match", json!({})), vec!["match"]),
            (
                with(
                    "action",
                    json!({"forward": {"targetGroups": [{"targetGroupIdentifier": TG, "weight": 1000}]}}),
                ),
                vec!["action.forward.targetGroups[0].weight"],
            ),
            (with("tags", json!({"aws:x": "v"})), vec!["tags.aws:x"]),
            (with("clientToken", json!("")), vec!["clientToken"]),
        ];
        for (body, want) in cases {
            let got = failing(body.clone(), |i: &CreateRuleInput| i.validate().map(|_| ()));
            assert_eq!(got, want, "{body}");
        }
    }

    /// (UpdateRule body, failing members): every member is optional.
    #[test]
    fn update_rule_validation_table() {
        let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
            (json!({}), vec![]),
            (json!({"priority": 2001}), vec!["priority"]),
            (json!({"match": {"httpMatch": {}}}), vec!["match.httpMatch"]),
            (json!({"action": {}}), vec!["action"]),
        ];
        for (body, want) in cases {
            let got = failing(body.clone(), |i: &UpdateRuleInput| i.validate().map(|_| ()));
            assert_eq!(got, want, "{body}");
        }
    }

    /// (BatchUpdateRule body, failing members): members are named by their place in the batch.
    #[test]
    fn batch_update_rule_validation_table() {
        let ctx = crate::testutil::ctx();
        let arn = format!(
            "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/listener/listener-0123456789abcdef0/rule/{RULE}"
        );
        let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
            (
                json!({"rules": [{"ruleIdentifier": RULE, "priority": 3}]}),
                vec![],
            ),
            (json!({"rules": [{"ruleIdentifier": arn}]}), vec![]),
            (json!({}), vec!["rules"]),
            (json!({"rules": []}), vec!["rules"]),
            (
                json!({"rules": (0..11).map(|_| json!({"ruleIdentifier": RULE})).collect::<Vec<_>>()}),
                vec!["rules"],
            ),
            (
                json!({"rules": [{"priority": 3}]}),
                vec!["rules[0].ruleIdentifier"],
            ),
            (
                json!({"rules": [{"ruleIdentifier": "rule-1"}]}),
                vec!["rules[0].ruleIdentifier"],
            ),
            (
                json!({"rules": [{"ruleIdentifier": "svc-0123456789abcdef0xx"}]}),
                vec!["rules[0].ruleIdentifier"],
            ),
            (
                json!({"rules": [{"ruleIdentifier": RULE}, {"ruleIdentifier": RULE, "priority": 0, "action": {"fixedResponse": {"statusCode": 200}}}]}),
                vec![
                    "rules[1].priority",
                    "rules[1].action.fixedResponse.statusCode",
                ],
            ),
        ];
        for (body, want) in cases {
            let got = failing(body.clone(), |i: &BatchUpdateRuleInput| {
                i.validate(&ctx).map(|_| ())
            });
            assert_eq!(got, want, "{body}");
        }
    }

    /// The default rule has no match and no priority, and its output leaves both out.
    #[test]
    fn default_rule_output_omits_match_and_priority() {
        let rule = Rule {
            id: "rule-0123456789abcdef0".into(),
            name: "default".into(),
            arn: "arn".into(),
            service_id: "svc-0123456789abcdef0".into(),
            listener_id: "listener-0123456789abcdef0".into(),
            is_default: true,
            priority: None,
            rule_match: None,
            action: RuleAction::Forward {
                target_groups: vec![WeightedTargetGroup {
                    target_group_id: "tg-0123456789abcdef0".into(),
                    weight: 100,
                }],
            },
            created_at: Timestamp::from_unix_millis(0),
            last_updated_at: Timestamp::from_unix_millis(0),
            tags: Tags::new(),
        };
        assert_eq!(
            serde_json::to_value(RuleOutput::from(&rule)).unwrap(),
            json!({
                "arn": "arn", "id": "rule-0123456789abcdef0", "name": "default", "isDefault": true,
                "action": {"forward": {"targetGroups": [{"targetGroupIdentifier": "tg-0123456789abcdef0", "weight": 100}]}},
            })
        );
    }
}
