//! Listeners: CreateListener, GetListener, ListListeners, UpdateListener, DeleteListener.
//!
//! A listener owns a default rule record (`isDefault`, named `default`, no priority) whose action
//! mirrors the listener's `defaultAction`: CreateListener creates it, UpdateListener keeps it in
//! sync and DeleteListener removes it with the listener's other rules. The data plane can thus
//! compile a listener from its rules alone.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_model::resources::Tags;
use trellis_model::resources::listener::{
    LISTENERS_PER_SERVICE, Listener, ListenerProtocol, check_listener_name,
};
use trellis_model::resources::rule::{DEFAULT_RULE_NAME, Rule, RuleActionInput};
use trellis_model::resources::service::Service;
use trellis_model::{Checks, Context, ResourceKind, Timestamp};
use trellis_store::{Record, Tx};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::rules::{
    action_wire, check_target_group_quota, resolve_action, rule_record, service_target_groups,
};
use crate::wire::{
    Idempotency, NewRecord, Page, QueryParams, body_value, doc, list_reply, load, load_child_doc,
    no_content, parse_body, reply, set_doc,
};

const KIND: ResourceKind = ResourceKind::Listener;

pub fn routes() -> Router<AppState> {
    // `{id}` is the service segment: the name must match the services module's routes.
    Router::new()
        .route("/services/{id}/listeners", get(list).post(create))
        .route(
            "/services/{id}/listeners/{listener}",
            get(read).patch(update).delete(delete),
        )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    name: Option<String>,
    protocol: Option<String>,
    port: Option<i64>,
    default_action: Option<RuleActionInput>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UpdateRequest {
    default_action: Option<RuleActionInput>,
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
    load_child_doc(tx, ctx, KIND, "listenerIdentifier", ident, service_id).await
}

/// CreateListener / UpdateListener response members.
fn listener_wire(l: &Listener) -> Value {
    json!({
        "arn": l.arn, "id": l.id, "name": l.name, "protocol": l.protocol.as_str(), "port": l.port,
        "serviceArn": l.service_arn, "serviceId": l.service_id,
        "defaultAction": action_wire(&l.default_action),
    })
}

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
    State(s): State<AppState>,
    Path(service): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let raw = body_value(&body)?;
    let req: CreateRequest = parse_body(&body)?;
    let mut c = Checks::new();
    match &req.name {
        Some(n) => {
            check_listener_name(&mut c, "name", n);
        }
        None => c.missing("name"),
    }
    let protocol = match &req.protocol {
        Some(p) => c
            .one_of("protocol", p, ListenerProtocol::VALUES)
            .then(|| ListenerProtocol::parse(p))
            .flatten(),
        None => {
            c.missing("protocol");
            None
        }
    };
    let port = req
        .port
        .and_then(|p| c.range("port", p, 1, 65535).then_some(p as u16));
    let action = match &req.default_action {
        Some(a) => a.check(&mut c, "defaultAction"),
        None => {
            c.missing("defaultAction");
            None
        }
    };
    c.tags("tags", &req.tags);
    if let Some(t) = &req.client_token {
        c.client_token(t);
    }
    c.finish()?;
    let (Some(protocol), Some(mut action)) = (protocol, action) else {
        return Err(ApiError::Internal(
            "validated listener members missing".into(),
        ));
    };
    let port = port.unwrap_or_else(|| protocol.default_port());
    let name = req.name.unwrap_or_default();

    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &service).await?;
    let idem = Idempotency::new("CreateListener", &svc.id, req.client_token.as_deref(), &raw)?;
    if let Some((status, body)) = idem.replay(&mut tx, KIND).await? {
        return Ok(reply(status, body));
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
        tags: req.tags,
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
    let out = listener_wire(&listener);
    idem.finish(tx, StatusCode::CREATED, out).await
}

pub(crate) async fn read(
    State(s): State<AppState>,
    Path((service, listener)): Path<(String, String)>,
) -> ApiResult<Response> {
    let mut tx = s.store.read().await?;
    let svc = load_service(&mut tx, &s.ctx, &service).await?;
    let (_, l) = load_listener(&mut tx, &s.ctx, &svc.id, &listener).await?;
    let mut out = listener_wire(&l);
    out["createdAt"] = json!(l.created_at);
    out["lastUpdatedAt"] = json!(l.last_updated_at);
    Ok(reply(StatusCode::OK, out))
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let page = Page::from_query(&QueryParams::parse(q.as_deref()))?;
    let mut tx = s.store.read().await?;
    let svc = load_service(&mut tx, &s.ctx, &service).await?;
    let (records, next) = page.apply(tx.list(KIND.store_kind(), Some(&svc.id)).await?);
    let mut items = Vec::with_capacity(records.len());
    for rec in &records {
        let l: Listener = doc(rec)?;
        items.push(json!({
            "arn": l.arn, "id": l.id, "name": l.name, "protocol": l.protocol.as_str(), "port": l.port,
            "createdAt": l.created_at, "lastUpdatedAt": l.last_updated_at,
        }));
    }
    Ok(list_reply(items, next))
}

pub(crate) async fn update(
    State(s): State<AppState>,
    Path((service, listener)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: UpdateRequest = parse_body(&body)?;
    let mut c = Checks::new();
    let action = match &req.default_action {
        Some(a) => a.check(&mut c, "defaultAction"),
        None => {
            c.missing("defaultAction");
            None
        }
    };
    c.finish()?;
    let Some(mut action) = action else {
        return Err(ApiError::Internal("validated defaultAction missing".into()));
    };

    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &service).await?;
    let (mut rec, mut l) = load_listener(&mut tx, &s.ctx, &svc.id, &listener).await?;
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
    Ok(reply(StatusCode::OK, listener_wire(&l)))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Path((service, listener)): Path<(String, String)>,
) -> ApiResult<Response> {
    let mut tx = s.store.write().await?;
    let svc = load_service(&mut tx, &s.ctx, &service).await?;
    let (rec, _) = load_listener(&mut tx, &s.ctx, &svc.id, &listener).await?;
    let rule_kind = ResourceKind::Rule.store_kind();
    for r in tx.list(rule_kind, Some(&rec.id)).await? {
        tx.delete(rule_kind, &r.id).await?;
    }
    tx.delete(KIND.store_kind(), &rec.id).await?;
    tx.commit().await?;
    Ok(no_content())
}
