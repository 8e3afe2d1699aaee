//! Listener rules: CreateRule, GetRule, ListRules, UpdateRule, DeleteRule, BatchUpdateRule, and
//! the pieces listeners share with rules: resolving an action's target groups (existence,
//! listener compatibility, one service per target group, the per-service quota) and the wire
//! form of actions and matches.
//!
//! Every listener has a default rule (created and kept in sync by [`crate::listeners`]); it is
//! readable here but only UpdateListener changes it and only DeleteListener removes it.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_model::arn::Resolved;
use trellis_model::resources::Tags;
use trellis_model::resources::listener::{
    Listener, ListenerProtocol, check_action_for_listener, check_target_group_for_listener,
};
use trellis_model::resources::rule::{
    HeaderMatchType, PathMatchType, RULES_PER_LISTENER, Rule, RuleAction, RuleActionInput,
    RuleMatch, RuleMatchInput, TARGET_GROUPS_PER_SERVICE, check_priority, check_rule_name,
};
use trellis_model::resources::target_group::TargetGroup;
use trellis_model::{Checks, Context, ResourceKind, Timestamp};
use trellis_store::{Record, Tx};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::listeners::{load_listener, load_service};
use crate::wire::{
    Idempotency, NewRecord, Page, QueryParams, body_value, doc, list_reply, load_child_doc,
    no_content, parse_body, reply, set_doc,
};

const KIND: ResourceKind = ResourceKind::Rule;

pub fn routes() -> Router<AppState> {
    // `{id}` is the service segment: the name must match the services module's routes.
    Router::new()
        .route(
            "/services/{id}/listeners/{listener}/rules",
            get(list).post(create).patch(batch_update),
        )
        .route(
            "/services/{id}/listeners/{listener}/rules/{rule}",
            get(read).patch(update).delete(delete),
        )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    name: Option<String>,
    #[serde(rename = "match")]
    rule_match: Option<RuleMatchInput>,
    priority: Option<i64>,
    action: Option<RuleActionInput>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UpdateRequest {
    #[serde(rename = "match")]
    rule_match: Option<RuleMatchInput>,
    priority: Option<i64>,
    action: Option<RuleActionInput>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct BatchRequest {
    rules: Option<Vec<RuleUpdateInput>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RuleUpdateInput {
    rule_identifier: Option<String>,
    #[serde(rename = "match")]
    rule_match: Option<RuleMatchInput>,
    priority: Option<i64>,
    action: Option<RuleActionInput>,
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
// Wire forms.

/// A `RuleAction` as the API returns it (target groups by ID).
pub(crate) fn action_wire(action: &RuleAction) -> Value {
    match action {
        RuleAction::Forward { target_groups } => json!({
            "forward": {
                "targetGroups": target_groups
                    .iter()
                    .map(|t| json!({ "targetGroupIdentifier": t.target_group_id, "weight": t.weight }))
                    .collect::<Vec<_>>()
            }
        }),
        RuleAction::FixedResponse { status_code } => {
            json!({ "fixedResponse": { "statusCode": status_code } })
        }
    }
}

/// A `RuleMatch` as the API returns it.
pub(crate) fn match_wire(m: &RuleMatch) -> Value {
    let RuleMatch::HttpMatch(h) = m;
    let mut http = serde_json::Map::new();
    if let Some(method) = &h.method {
        http.insert("method".into(), json!(method));
    }
    if let Some(p) = &h.path_match {
        let inner = match &p.path {
            PathMatchType::Exact(v) => json!({ "exact": v }),
            PathMatchType::Prefix(v) => json!({ "prefix": v }),
        };
        http.insert(
            "pathMatch".into(),
            json!({ "match": inner, "caseSensitive": p.case_sensitive }),
        );
    }
    if !h.header_matches.is_empty() {
        let list: Vec<Value> = h
            .header_matches
            .iter()
            .map(|hm| {
                let inner = match &hm.value {
                    HeaderMatchType::Exact(v) => json!({ "exact": v }),
                    HeaderMatchType::Prefix(v) => json!({ "prefix": v }),
                    HeaderMatchType::Contains(v) => json!({ "contains": v }),
                };
                json!({ "name": hm.name, "match": inner, "caseSensitive": hm.case_sensitive })
            })
            .collect();
        http.insert("headerMatches".into(), Value::Array(list));
    }
    json!({ "httpMatch": http })
}

/// The members every rule response shares: `arn, id, name, isDefault, match, priority, action`.
fn rule_wire(r: &Rule) -> Value {
    let mut out = json!({
        "arn": r.arn, "id": r.id, "name": r.name, "isDefault": r.is_default,
        "action": action_wire(&r.action),
    });
    if let Some(m) = &r.rule_match {
        out["match"] = match_wire(m);
    }
    if let Some(p) = r.priority {
        out["priority"] = json!(p);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Shared with listeners.

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
        let users = crate::target_groups::services_using(tx, &id).await?;
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
        for r in tx.list(KIND.store_kind(), Some(&l.id)).await? {
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

/// Builds a rule record (refs = the action's target groups).
pub(crate) fn rule_record(rule: &Rule) -> ApiResult<Record> {
    NewRecord {
        kind: KIND,
        id: &rule.id,
        parent: Some(&rule.listener_id),
        name: Some(&rule.name),
        arn: Some(&rule.arn),
        refs: rule.action.target_group_ids(),
    }
    .with_body(rule)
}

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

/// `(failureCode, failureMessage)` of a batch item that failed with `e`. Lattice does not
/// document failure codes; Trellis uses the name of the exception the single-item operation
/// would have raised: `ValidationException` (default rule, rule repeated in the batch, action
/// unsuitable for the listener, target not valid for the group), `ResourceNotFoundException`
/// (unknown rule or target group, target not registered), `ConflictException` (priority taken
/// after the batch, target group of another service, second LAMBDA/ALB target) and
/// `ServiceQuotaExceededException` (target groups per service).
pub(crate) fn failure_of(e: &ApiError) -> (String, String) {
    let msg = e
        .body()
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    (e.code().to_string(), msg)
}

// ---------------------------------------------------------------------------------------------
// Handlers.

pub(crate) async fn create(
    State(s): State<AppState>,
    Path((service, listener)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let raw = body_value(&body)?;
    let req: CreateRequest = parse_body(&body)?;
    let mut c = Checks::new();
    match &req.name {
        Some(n) => {
            check_rule_name(&mut c, "name", n);
        }
        None => c.missing("name"),
    }
    let rule_match = match &req.rule_match {
        Some(m) => m.check(&mut c, "match"),
        None => {
            c.missing("match");
            None
        }
    };
    let priority = match req.priority {
        Some(p) => check_priority(&mut c, "priority", p),
        None => {
            c.missing("priority");
            None
        }
    };
    let action = match &req.action {
        Some(a) => a.check(&mut c, "action"),
        None => {
            c.missing("action");
            None
        }
    };
    c.tags("tags", &req.tags);
    if let Some(t) = &req.client_token {
        c.client_token(t);
    }
    c.finish()?;
    let (Some(rule_match), Some(priority), Some(mut action)) = (rule_match, priority, action)
    else {
        return Err(ApiError::Internal("validated rule members missing".into()));
    };
    let name = req.name.unwrap_or_default();

    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &service).await?;
    let (lrec, l) = load_listener(&mut tx, &s.ctx, &svc.id, &listener).await?;
    let idem = Idempotency::new("CreateRule", &lrec.id, req.client_token.as_deref(), &raw)?;
    if let Some((status, body)) = idem.replay(&mut tx, KIND).await? {
        return Ok(reply(status, body));
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
        rule_match: Some(rule_match),
        action,
        created_at: now,
        last_updated_at: now,
        tags: req.tags,
    };
    tx.insert(&rule_record(&rule)?).await?;
    let mut out = rule_wire(&rule);
    if let Value::Object(m) = &mut out {
        // CreateRuleResponse has no isDefault (a created rule never is).
        m.remove("isDefault");
    }
    idem.finish(tx, StatusCode::CREATED, out).await
}

pub(crate) async fn read(
    State(s): State<AppState>,
    Path((service, listener, rule)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let mut tx = s.store.read().await?;
    let svc = load_service(&mut tx, &s.ctx, &service).await?;
    let (lrec, _) = load_listener(&mut tx, &s.ctx, &svc.id, &listener).await?;
    let (_, r) = load_rule(&mut tx, &s.ctx, &lrec.id, &rule).await?;
    let mut out = rule_wire(&r);
    out["createdAt"] = json!(r.created_at);
    out["lastUpdatedAt"] = json!(r.last_updated_at);
    Ok(reply(StatusCode::OK, out))
}

/// Lists a listener's rules in evaluation order: ascending priority, the default rule last.
pub(crate) async fn list(
    State(s): State<AppState>,
    Path((service, listener)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let page = Page::from_query(&QueryParams::parse(q.as_deref()))?;
    let mut tx = s.store.read().await?;
    let svc = load_service(&mut tx, &s.ctx, &service).await?;
    let (lrec, _) = load_listener(&mut tx, &s.ctx, &svc.id, &listener).await?;
    let mut records = Vec::new();
    for mut rec in tx.list(KIND.store_kind(), Some(&lrec.id)).await? {
        let rule: Rule = doc(&rec)?;
        // Pages are cut by `seq`; ordering (and paging) by priority instead, with the default
        // rule after every possible priority, lists the rules in the order they are evaluated.
        rec.seq = rule.priority.map_or(i64::MAX, i64::from);
        records.push((rec, rule));
    }
    records.sort_by_key(|(rec, _)| rec.seq);
    let by_id: BTreeMap<String, Rule> = records
        .iter()
        .map(|(rec, r)| (rec.id.clone(), r.clone()))
        .collect();
    let (page_records, next) = page.apply(records.into_iter().map(|(rec, _)| rec).collect());
    let items = page_records
        .iter()
        .filter_map(|rec| by_id.get(&rec.id))
        .map(|r| {
            let mut item = json!({
                "arn": r.arn, "id": r.id, "name": r.name, "isDefault": r.is_default,
                "createdAt": r.created_at, "lastUpdatedAt": r.last_updated_at,
            });
            if let Some(p) = r.priority {
                item["priority"] = json!(p);
            }
            item
        })
        .collect();
    Ok(list_reply(items, next))
}

pub(crate) async fn update(
    State(s): State<AppState>,
    Path((service, listener, rule)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: UpdateRequest = parse_body(&body)?;
    let mut c = Checks::new();
    let change = check_change(
        &mut c,
        "",
        req.rule_match.as_ref(),
        req.priority,
        req.action.as_ref(),
    );
    c.finish()?;

    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &service).await?;
    let (lrec, l) = load_listener(&mut tx, &s.ctx, &svc.id, &listener).await?;
    let (mut rec, mut r) = load_rule(&mut tx, &s.ctx, &lrec.id, &rule).await?;
    apply_change(&mut tx, &s.ctx, &l, &mut r, change).await?;
    set_doc(&mut rec, &r)?;
    rec.refs = r.action.target_group_ids();
    tx.update(&rec).await?;
    tx.commit().await?;
    Ok(reply(StatusCode::OK, rule_wire(&r)))
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
    State(s): State<AppState>,
    Path((service, listener, rule)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &service).await?;
    let (lrec, _) = load_listener(&mut tx, &s.ctx, &svc.id, &listener).await?;
    let (rec, r) = load_rule(&mut tx, &s.ctx, &lrec.id, &rule).await?;
    if r.is_default {
        return Err(default_rule_is_read_only(&r));
    }
    tx.delete(KIND.store_kind(), &rec.id).await?;
    tx.commit().await?;
    Ok(no_content())
}

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
    State(s): State<AppState>,
    Path((service, listener)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: BatchRequest = parse_body(&body)?;
    let mut c = Checks::new();
    let mut inputs = Vec::new();
    match &req.rules {
        None => c.missing("rules"),
        Some(list) => {
            if c.count("rules", list.len(), 1, 10) {
                for (i, item) in list.iter().enumerate() {
                    let field = format!("rules[{i}].ruleIdentifier");
                    match &item.rule_identifier {
                        None => c.missing(&field),
                        Some(v) => {
                            if c.length(&field, v, 20, 2048)
                                && s.ctx.resolve(KIND, v) == Resolved::Malformed
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
                    inputs.push((item.rule_identifier.clone().unwrap_or_default(), change));
                }
            }
        }
    }
    c.finish()?;

    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &service).await?;
    let (lrec, l) = load_listener(&mut tx, &s.ctx, &svc.id, &listener).await?;
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
                let (code, message) = failure_of(e);
                unsuccessful.push(json!({ "ruleIdentifier": item.identifier, "failureCode": code, "failureMessage": message }));
            }
            (None, Some(id)) => {
                if let Some((rec, r)) = state.get_mut(id) {
                    set_doc(rec, &*r)?;
                    rec.refs = r.action.target_group_ids();
                    tx.update(rec).await?;
                    successful.push(rule_wire(r));
                }
            }
            (None, None) => {}
        }
    }
    tx.commit().await?;
    Ok(reply(
        StatusCode::OK,
        json!({ "successful": successful, "unsuccessful": unsuccessful }),
    ))
}
