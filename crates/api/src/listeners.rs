//! Listeners: CreateListener, GetListener, ListListeners, UpdateListener, DeleteListener.
//!
//! A listener owns a default rule record (`isDefault`, named `default`, no priority) whose action
//! mirrors the listener's `defaultAction`: CreateListener creates it, UpdateListener keeps it in
//! sync and DeleteListener removes it with the listener's other rules. The data plane can thus
//! compile a listener from its rules alone. What listeners share with rules is in
//! [`crate::actions`].

use serde::{Deserialize, Serialize};
use trellis_model::resources::Tags;
use trellis_model::resources::listener::{
    LISTENERS_PER_SERVICE, Listener, ListenerProtocol, check_listener_name,
};
use trellis_model::resources::rule::{DEFAULT_RULE_NAME, Rule, RuleAction};
use trellis_model::resources::service::Service;
use trellis_model::{Checks, ResourceKind, Timestamp, ValidationError};
use trellis_store::Record;
use trellis_wire::Call;

use crate::AppState;
use crate::actions::{
    RuleActionInput, RuleActionOutput, check_target_group_quota, load_listener, load_service,
    resolve_action, rule_record, service_target_groups,
};
use crate::error::{ApiError, ApiResult};
use crate::wire::{Idempotency, ListOutput, NewRecord, Page, doc, set_doc};

const KIND: ResourceKind = ResourceKind::Listener;

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateListenerInput {
    // The path label is the idempotency scope (by ID), not part of the remembered request.
    #[serde(skip_serializing)]
    service_identifier: String,
    name: Option<String>,
    protocol: Option<String>,
    port: Option<i64>,
    default_action: Option<RuleActionInput>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

/// A checked CreateListener (the default action's target groups not yet resolved).
struct NewListener {
    name: String,
    protocol: ListenerProtocol,
    port: u16,
    action: RuleAction,
}

impl CreateListenerInput {
    fn validate(&self) -> Result<NewListener, ValidationError> {
        let mut c = Checks::new();
        match &self.name {
            Some(n) => {
                check_listener_name(&mut c, "name", n);
            }
            None => c.missing("name"),
        }
        let protocol = match &self.protocol {
            Some(p) => c
                .one_of("protocol", p, ListenerProtocol::VALUES)
                .then(|| ListenerProtocol::parse(p))
                .flatten(),
            None => {
                c.missing("protocol");
                None
            }
        };
        let port = self
            .port
            .and_then(|p| c.range("port", p, 1, 65535).then_some(p as u16));
        let action = check_default_action(&mut c, self.default_action.as_ref());
        c.tags("tags", &self.tags);
        if let Some(t) = &self.client_token {
            c.client_token(t);
        }
        c.finish()?;
        match (protocol, action) {
            (Some(protocol), Some(action)) => Ok(NewListener {
                name: self.name.clone().unwrap_or_default(),
                protocol,
                port: port.unwrap_or_else(|| protocol.default_port()),
                action,
            }),
            // Every check that leaves a member unset also records a failure, so `finish` has
            // already returned; this names the members should that ever stop holding.
            _ => Err(ValidationError::other(
                "protocol and defaultAction must both be valid",
            )),
        }
    }
}

/// The required `defaultAction` of CreateListener and UpdateListener.
fn check_default_action(c: &mut Checks, action: Option<&RuleActionInput>) -> Option<RuleAction> {
    match action {
        Some(a) => a.check(c, "defaultAction"),
        None => {
            c.missing("defaultAction");
            None
        }
    }
}

/// The input of the operations that name one listener and nothing else.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerIdentifierInput {
    service_identifier: String,
    listener_identifier: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListListenersInput {
    service_identifier: String,
    max_results: Option<String>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateListenerInput {
    service_identifier: String,
    listener_identifier: String,
    default_action: Option<RuleActionInput>,
}

impl UpdateListenerInput {
    fn validate(&self) -> Result<RuleAction, ValidationError> {
        let mut c = Checks::new();
        let action = check_default_action(&mut c, self.default_action.as_ref());
        c.finish()?;
        action.ok_or_else(|| ValidationError::other("defaultAction must be valid"))
    }
}

/// CreateListener's and UpdateListener's output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerOutput {
    arn: String,
    id: String,
    name: String,
    protocol: ListenerProtocol,
    port: u16,
    service_arn: String,
    service_id: String,
    default_action: RuleActionOutput,
}

impl From<&Listener> for ListenerOutput {
    fn from(l: &Listener) -> ListenerOutput {
        ListenerOutput {
            arn: l.arn.clone(),
            id: l.id.clone(),
            name: l.name.clone(),
            protocol: l.protocol,
            port: l.port,
            service_arn: l.service_arn.clone(),
            service_id: l.service_id.clone(),
            default_action: RuleActionOutput::from(&l.default_action),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetListenerOutput {
    #[serde(flatten)]
    listener: ListenerOutput,
    created_at: Timestamp,
    last_updated_at: Timestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSummary {
    arn: String,
    id: String,
    name: String,
    protocol: ListenerProtocol,
    port: u16,
    created_at: Timestamp,
    last_updated_at: Timestamp,
}

/// DeleteListener answers 204 with no members.
#[derive(Debug, Serialize)]
pub struct DeleteListenerOutput {}

fn listener_record(l: &Listener) -> ApiResult<Record> {
    NewRecord {
        kind: KIND,
        id: &l.id,
        parent: Some(&l.service_id),
        name: Some(&l.name),
        arn: Some(&l.arn),
        refs: l.default_action.target_group_ids(),
    }
    .with_body(l)
}

pub(crate) async fn create(
    s: AppState,
    input: CreateListenerInput,
    _: Call,
) -> ApiResult<ListenerOutput> {
    let NewListener {
        name,
        protocol,
        port,
        mut action,
    } = input.validate()?;

    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &input.service_identifier).await?;
    let idem = Idempotency::new(
        "CreateListener",
        &svc.id,
        input.client_token.as_deref(),
        &serde_json::to_value(&input).map_err(|e| ApiError::Internal(e.to_string()))?,
    )?;
    if let Some(out) = idem.replay_output(&mut tx, KIND).await? {
        return Ok(out);
    }
    if let Some(existing) = tx
        .get_by_name(KIND.store_kind(), Some(&svc.id), &name)
        .await?
    {
        return Err(ApiError::conflict(
            KIND,
            &existing.id,
            format!(
                "A listener named '{name}' already exists in service {}",
                svc.id
            ),
        ));
    }
    let listeners = tx.list(KIND.store_kind(), Some(&svc.id)).await?;
    for rec in &listeners {
        let other: Listener = doc(rec)?;
        if other.port == port {
            return Err(ApiError::conflict(
                KIND,
                &other.id,
                format!(
                    "Listener {} of service {} already uses port {port}",
                    other.id, svc.id
                ),
            ));
        }
    }
    if listeners.len() as u64 >= LISTENERS_PER_SERVICE {
        return Err(ApiError::quota(
            KIND,
            Some(&svc.id),
            "listeners-per-service",
            "listeners per service",
            LISTENERS_PER_SERVICE,
        ));
    }
    if protocol == ListenerProtocol::TlsPassthrough
        && doc::<Service>(&svc)?
            .custom_domain_name
            .is_none_or(|d| d.is_empty())
    {
        // SNI must name the service exactly, and only a custom domain can be served without
        // terminating TLS (reference §3.2).
        return Err(ApiError::validation_field(
            "protocol",
            format!(
                "Service {} has no customDomainName; TLS_PASSTHROUGH listeners require a service with a custom domain name",
                svc.id
            ),
        ));
    }
    resolve_action(
        &mut tx,
        &s.ctx,
        protocol,
        &svc.id,
        "defaultAction",
        &mut action,
    )
    .await?;
    let mut tgs = service_target_groups(&mut tx, &svc.id, &[]).await?;
    tgs.extend(action.target_group_ids());
    check_target_group_quota(&svc.id, &tgs)?;

    let id = KIND.new_id();
    let rule_id = ResourceKind::Rule.new_id();
    let now = Timestamp::now();
    let listener = Listener {
        arn: s.ctx.listener_arn(&svc.id, &id),
        id: id.clone(),
        name,
        service_id: svc.id.clone(),
        service_arn: svc
            .arn
            .clone()
            .unwrap_or_else(|| s.ctx.top_level_arn(ResourceKind::Service, &svc.id)),
        protocol,
        port,
        default_action: action.clone(),
        default_rule_id: rule_id.clone(),
        created_at: now,
        last_updated_at: now,
        tags: input.tags,
    };
    let default_rule = Rule {
        arn: s.ctx.rule_arn(&svc.id, &id, &rule_id),
        id: rule_id,
        name: DEFAULT_RULE_NAME.to_string(),
        service_id: svc.id.clone(),
        listener_id: id.clone(),
        is_default: true,
        priority: None,
        rule_match: None,
        action,
        created_at: now,
        last_updated_at: now,
        tags: Tags::new(),
    };
    tx.insert(&listener_record(&listener)?).await?;
    tx.insert(&rule_record(&default_rule)?).await?;
    idem.finish_output(tx, ListenerOutput::from(&listener))
        .await
}

pub(crate) async fn read(
    s: AppState,
    input: ListenerIdentifierInput,
    _: Call,
) -> ApiResult<GetListenerOutput> {
    let mut tx = s.store.read().await?;
    let svc = load_service(&mut tx, &s.ctx, &input.service_identifier).await?;
    let (_, l) = load_listener(&mut tx, &s.ctx, &svc.id, &input.listener_identifier).await?;
    Ok(GetListenerOutput {
        listener: ListenerOutput::from(&l),
        created_at: l.created_at,
        last_updated_at: l.last_updated_at,
    })
}

pub(crate) async fn list(
    s: AppState,
    input: ListListenersInput,
    _: Call,
) -> ApiResult<ListOutput<ListenerSummary>> {
    let page = Page::new(input.max_results.as_deref(), input.next_token.as_deref())?;
    let mut tx = s.store.read().await?;
    let svc = load_service(&mut tx, &s.ctx, &input.service_identifier).await?;
    let (records, next_token) = page.apply(tx.list(KIND.store_kind(), Some(&svc.id)).await?);
    let mut items = Vec::with_capacity(records.len());
    for rec in &records {
        let l: Listener = doc(rec)?;
        items.push(ListenerSummary {
            arn: l.arn,
            id: l.id,
            name: l.name,
            protocol: l.protocol,
            port: l.port,
            created_at: l.created_at,
            last_updated_at: l.last_updated_at,
        });
    }
    Ok(ListOutput { items, next_token })
}

pub(crate) async fn update(
    s: AppState,
    input: UpdateListenerInput,
    _: Call,
) -> ApiResult<ListenerOutput> {
    let mut action = input.validate()?;

    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &input.service_identifier).await?;
    let (mut rec, mut l) =
        load_listener(&mut tx, &s.ctx, &svc.id, &input.listener_identifier).await?;
    resolve_action(
        &mut tx,
        &s.ctx,
        l.protocol,
        &svc.id,
        "defaultAction",
        &mut action,
    )
    .await?;
    let mut tgs = service_target_groups(&mut tx, &svc.id, &[&l.id, &l.default_rule_id]).await?;
    tgs.extend(action.target_group_ids());
    check_target_group_quota(&svc.id, &tgs)?;

    let now = Timestamp::now();
    l.default_action = action.clone();
    l.last_updated_at = now;
    set_doc(&mut rec, &l)?;
    rec.refs = l.default_action.target_group_ids();
    tx.update(&rec).await?;
    let rule_kind = ResourceKind::Rule.store_kind();
    match tx.get(rule_kind, &l.default_rule_id).await? {
        Some(mut rule_rec) => {
            let mut rule: Rule = doc(&rule_rec)?;
            rule.action = action;
            rule.last_updated_at = now;
            set_doc(&mut rule_rec, &rule)?;
            rule_rec.refs = rule.action.target_group_ids();
            tx.update(&rule_rec).await?;
        }
        None => {
            return Err(ApiError::Internal(format!(
                "listener {} has lost its default rule",
                l.id
            )));
        }
    }
    tx.commit().await?;
    Ok(ListenerOutput::from(&l))
}

pub(crate) async fn delete(
    s: AppState,
    input: ListenerIdentifierInput,
    _: Call,
) -> ApiResult<DeleteListenerOutput> {
    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &input.service_identifier).await?;
    let (rec, _) = load_listener(&mut tx, &s.ctx, &svc.id, &input.listener_identifier).await?;
    let rule_kind = ResourceKind::Rule.store_kind();
    for r in tx.list(rule_kind, Some(&rec.id)).await? {
        tx.delete(rule_kind, &r.id).await?;
    }
    tx.delete(KIND.store_kind(), &rec.id).await?;
    tx.commit().await?;
    Ok(DeleteListenerOutput {})
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const TG: &str = "tg-0123456789abcdef0";

    /// (CreateListener body, failing members)
    #[test]
    fn create_listener_validation_table() {
        let ok = json!({
            "name": "web", "protocol": "HTTP",
            "defaultAction": {"forward": {"targetGroups": [{"targetGroupIdentifier": TG}]}},
        });
        let with = |k: &str, v: Value| {
            let mut b = ok.clone();
            b[k] = v;
            b
        };
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (ok.clone(), vec![]),
            (json!({}), vec!["name", "protocol", "defaultAction"]),
            (with("name", json!("a")), vec!["name"]),
            (with("protocol", json!("TCP")), vec!["protocol"]),
            (with("port", json!(0)), vec!["port"]),
            (with("port", json!(65536)), vec!["port"]),
            (with("port", json!("8080")), vec![]),
            (with("defaultAction", json!({})), vec!["defaultAction"]),
            (
                with(
                    "defaultAction",
                    json!({"fixedResponse": {"statusCode": 200}}),
                ),
                vec!["defaultAction.fixedResponse.statusCode"],
            ),
            (with("clientToken", json!("")), vec!["clientToken"]),
        ];
        for (mut body, want) in cases {
            body["serviceIdentifier"] = json!("svc-0123456789abcdef0");
            let input: CreateListenerInput = trellis_wire::de::from_value(body.clone()).unwrap();
            let got = crate::testutil::names(input.validate().map(|_| ()));
            assert_eq!(got, want, "{body}");
        }
    }

    /// A listener without a port gets its protocol's default.
    #[test]
    fn port_defaults_by_protocol() {
        for (protocol, port) in [("HTTP", 80), ("HTTPS", 443), ("TLS_PASSTHROUGH", 443)] {
            let input: CreateListenerInput = trellis_wire::de::from_value(json!({
                "serviceIdentifier": "svc-0123456789abcdef0", "name": "web", "protocol": protocol,
                "defaultAction": {"fixedResponse": {"statusCode": 404}},
            }))
            .unwrap();
            assert_eq!(input.validate().unwrap().port, port, "{protocol}");
        }
    }

    /// UpdateListener requires its defaultAction.
    #[test]
    fn update_listener_requires_default_action() {
        let input: UpdateListenerInput = trellis_wire::de::from_value(json!({
            "serviceIdentifier": "svc-0123456789abcdef0",
            "listenerIdentifier": "listener-0123456789abcdef0",
        }))
        .unwrap();
        assert_eq!(
            crate::testutil::names(input.validate().map(|_| ())),
            vec!["defaultAction"]
        );
    }
}
