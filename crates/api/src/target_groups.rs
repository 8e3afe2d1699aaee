//! Target groups and targets: CreateTargetGroup, GetTargetGroup, ListTargetGroups,
//! UpdateTargetGroup, DeleteTargetGroup, RegisterTargets, DeregisterTargets, ListTargets.
//!
//! Which services use a target group is not stored on the group: it is derived from the listener
//! and rule records whose `refs` name it ([`services_using`]). Target status is observed state;
//! ListTargets asks a [`TargetHealthSource`] (installed by the data plane) and falls back to the
//! status implied by configuration alone ([`TargetStatus::provisional`]).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_model::resources::Tags;
use trellis_model::resources::target_group::{
    HealthCheck, HealthCheckInput, TARGETS_PER_TARGET_GROUP, Target, TargetGroup,
    TargetGroupConfigInput, TargetGroupStatus, TargetGroupType, TargetStatus, check_config,
    check_target, check_vpc_id, target_key,
};
use trellis_model::{Checks, ResourceKind, Timestamp};
use trellis_store::{Record, Tx};

use crate::AppState;
use crate::actions::services_using;
use crate::error::failure_of;
use crate::error::{ApiError, ApiResult};
use crate::wire::{
    Idempotency, NewRecord, Page, QueryParams, body_value, check_new_top_level, doc, list_reply,
    load_doc, parse_body, reply, set_doc,
};

const KIND: ResourceKind = ResourceKind::TargetGroup;
/// Store kind of registered targets; parent = the target group's id, name = `target_key`.
pub const TARGET: &str = "target";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/targetgroups", get(list).post(create))
        .route("/targetgroups/{id}", get(read).patch(update).delete(delete))
        .route("/targetgroups/{id}/registertargets", post(register_targets))
        .route(
            "/targetgroups/{id}/deregistertargets",
            post(deregister_targets),
        )
        .route("/targetgroups/{id}/listtargets", post(list_targets))
}

// ---------------------------------------------------------------------------------------------
// Observed target status.

/// What the data plane has observed about one registered target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedTarget {
    pub status: TargetStatus,
    /// e.g. `HealthCheckFailed` for an `UNHEALTHY` target.
    pub reason_code: Option<String>,
}

/// The data plane's view of target health. The API calls it for each target ListTargets
/// returns; `None` means "nothing observed yet" and the configuration-implied status is used.
pub trait TargetHealthSource: Send + Sync {
    fn observe(
        &self,
        target_group_id: &str,
        target_id: &str,
        port: Option<u16>,
    ) -> Option<ObservedTarget>;

    /// Targets of the group that were deregistered and are still `DRAINING`: no longer in the
    /// store, but ListTargets lists them until the deregistration delay ends. `(id, port)`.
    fn draining(&self, target_group_id: &str) -> Vec<(String, Option<u16>)> {
        let _ = target_group_id;
        Vec::new()
    }
}

/// The installed source. A process-wide slot rather than a member of `AppState` so that the
/// data plane can install itself without the API's state type knowing about it.
static HEALTH_SOURCE: RwLock<Option<Arc<dyn TargetHealthSource>>> = RwLock::new(None);

/// Installs (or replaces) the source ListTargets consults.
pub fn set_target_health_source(source: Arc<dyn TargetHealthSource>) {
    if let Ok(mut slot) = HEALTH_SOURCE.write() {
        *slot = Some(source);
    }
}

fn observed(tg_id: &str, target_id: &str, port: Option<u16>) -> Option<ObservedTarget> {
    let source = HEALTH_SOURCE.read().ok()?.clone()?;
    source.observe(tg_id, target_id, port)
}

fn draining(tg_id: &str) -> Vec<(String, Option<u16>)> {
    let source = HEALTH_SOURCE.read().ok().and_then(|s| s.clone());
    source.map(|s| s.draining(tg_id)).unwrap_or_default()
}

/// The status ListTargets reports: `UNUSED` while no service forwards to the group (nobody
/// checks such targets), else what the data plane observed, else the provisional status.
pub fn target_status(
    in_use: bool,
    health_checks_enabled: bool,
    observed: Option<ObservedTarget>,
) -> ObservedTarget {
    match observed {
        Some(o) if in_use => o,
        _ => ObservedTarget {
            status: TargetStatus::provisional(in_use, health_checks_enabled),
            reason_code: None,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers.

async fn service_arns(tx: &mut Tx, s: &AppState, tg_id: &str) -> ApiResult<Vec<String>> {
    Ok(services_using(tx, tg_id)
        .await?
        .iter()
        .map(|id| s.ctx.top_level_arn(ResourceKind::Service, id))
        .collect())
}

/// A stored health check in the wire shape Get/Create/Update answer with (also the fuzz
/// `api_wire` target's round trip).
pub fn health_check_wire(h: &HealthCheck) -> Value {
    let mut out = json!({
        "enabled": h.enabled,
        "protocol": h.protocol.as_str(),
        "protocolVersion": h.protocol_version.as_str(),
        "path": h.path,
        "healthCheckIntervalSeconds": h.interval_seconds,
        "healthCheckTimeoutSeconds": h.timeout_seconds,
        "healthyThresholdCount": h.healthy_threshold_count,
        "unhealthyThresholdCount": h.unhealthy_threshold_count,
        "matcher": { "httpCode": h.matcher },
    });
    if let Some(p) = h.port {
        out["port"] = json!(p);
    }
    out
}

/// `TargetGroupConfig` as the API returns it: only the members that apply to the type.
fn config_wire(tg: &TargetGroup) -> Value {
    let c = &tg.config;
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            out.insert(k.to_string(), v);
        }
    };
    put("port", c.port.map(|p| json!(p)));
    put("protocol", c.protocol.map(|p| json!(p.as_str())));
    put(
        "protocolVersion",
        c.protocol_version.map(|p| json!(p.as_str())),
    );
    put(
        "ipAddressType",
        c.ip_address_type.map(|p| json!(p.as_str())),
    );
    put("vpcIdentifier", c.vpc_identifier.as_ref().map(|v| json!(v)));
    put(
        "healthCheck",
        c.health_check.as_ref().map(health_check_wire),
    );
    put(
        "lambdaEventStructureVersion",
        c.lambda_event_structure_version.map(|v| json!(v.as_str())),
    );
    Value::Object(out)
}

/// Create/Update response members.
fn target_group_wire(tg: &TargetGroup) -> Value {
    json!({
        "id": tg.id, "arn": tg.arn, "name": tg.name, "type": tg.target_type.as_str(),
        "config": config_wire(tg), "status": tg.status.as_str(),
    })
}

async fn load_target_group(
    tx: &mut Tx,
    s: &AppState,
    ident: &str,
) -> ApiResult<(Record, TargetGroup)> {
    load_doc::<TargetGroup>(tx, &s.ctx, KIND, "targetGroupIdentifier", ident).await
}

// ---------------------------------------------------------------------------------------------
// Target groups.

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    name: Option<String>,
    #[serde(rename = "type")]
    target_type: Option<String>,
    config: Option<TargetGroupConfigInput>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UpdateRequest {
    health_check: Option<HealthCheckInput>,
}

pub(crate) async fn create(State(s): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let raw = body_value(&body)?;
    let req: CreateRequest = parse_body(&body)?;
    let mut c = Checks::new();
    match &req.name {
        Some(n) => {
            c.resource_name("name", n, 3, 128, Some("tg-"));
        }
        None => c.missing("name"),
    }
    let target_type = match &req.target_type {
        Some(t) => c
            .one_of("type", t, TargetGroupType::VALUES)
            .then(|| TargetGroupType::parse(t))
            .flatten(),
        None => {
            c.missing("type");
            None
        }
    };
    let config = target_type.map(|t| check_config(&mut c, t, req.config.as_ref()));
    c.tags("tags", &req.tags);
    c.finish()?;
    let (Some(target_type), Some(config)) = (target_type, config) else {
        return Err(ApiError::Internal(
            "validated target group members missing".into(),
        ));
    };
    let name = req.name.unwrap_or_default();
    let idem = Idempotency::new("CreateTargetGroup", "", req.client_token.as_deref(), &raw)?;

    let mut tx = s.store.write().await?;
    if let Some((status, body)) = idem.replay(&mut tx, KIND).await? {
        return Ok(reply(status, body));
    }
    check_new_top_level(
        &mut tx,
        KIND,
        &name,
        s.quotas.target_groups_per_region,
        "target-groups-per-region",
    )
    .await?;
    let id = KIND.new_id();
    let arn = s.ctx.top_level_arn(KIND, &id);
    let now = Timestamp::now();
    let tg = TargetGroup {
        id: id.clone(),
        name: name.clone(),
        arn: arn.clone(),
        target_type,
        config,
        status: TargetGroupStatus::Active,
        created_at: now,
        last_updated_at: now,
        tags: req.tags,
    };
    let rec = NewRecord {
        kind: KIND,
        id: &id,
        parent: None,
        name: Some(&name),
        arn: Some(&arn),
        refs: vec![],
    }
    .with_body(&tg)?;
    tx.insert(&rec).await?;
    let out = target_group_wire(&tg);
    idem.finish(tx, StatusCode::CREATED, out).await
}

pub(crate) async fn read(
    State(s): State<AppState>,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.store.read().await?;
    let (_, tg) = load_target_group(&mut tx, &s, &ident).await?;
    let mut out = target_group_wire(&tg);
    out["createdAt"] = json!(tg.created_at);
    out["lastUpdatedAt"] = json!(tg.last_updated_at);
    out["serviceArns"] = json!(service_arns(&mut tx, &s, &tg.id).await?);
    Ok(reply(StatusCode::OK, out))
}

pub(crate) async fn list(State(s): State<AppState>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = QueryParams::parse(q.as_deref());
    let page = Page::from_query(&q)?;
    let mut c = Checks::new();
    let vpc = q.get("vpcIdentifier");
    if let Some(v) = vpc {
        check_vpc_id(&mut c, "vpcIdentifier", v);
    }
    let ty = q.get("targetGroupType").and_then(|t| {
        c.one_of("targetGroupType", t, TargetGroupType::VALUES)
            .then(|| TargetGroupType::parse(t))
            .flatten()
    });
    c.finish()?;

    let mut tx = s.store.read().await?;
    let mut matching = Vec::new();
    for rec in tx.list(KIND.store_kind(), None).await? {
        let tg: TargetGroup = doc(&rec)?;
        if vpc.is_some_and(|v| tg.config.vpc_identifier.as_deref() != Some(v))
            || ty.is_some_and(|t| tg.target_type != t)
        {
            continue;
        }
        matching.push(rec);
    }
    let (records, next) = page.apply(matching);
    let mut items = Vec::with_capacity(records.len());
    for rec in &records {
        let tg: TargetGroup = doc(rec)?;
        let mut item = json!({
            "id": tg.id, "arn": tg.arn, "name": tg.name, "type": tg.target_type.as_str(),
            "createdAt": tg.created_at, "lastUpdatedAt": tg.last_updated_at, "status": tg.status.as_str(),
            "serviceArns": service_arns(&mut tx, &s, &tg.id).await?,
        });
        let c = &tg.config;
        if let Some(p) = c.port {
            item["port"] = json!(p);
        }
        if let Some(p) = c.protocol {
            item["protocol"] = json!(p.as_str());
        }
        if let Some(t) = c.ip_address_type {
            item["ipAddressType"] = json!(t.as_str());
        }
        if let Some(v) = &c.vpc_identifier {
            item["vpcIdentifier"] = json!(v);
        }
        if let Some(v) = c.lambda_event_structure_version {
            item["lambdaEventStructureVersion"] = json!(v.as_str());
        }
        items.push(item);
    }
    Ok(list_reply(items, next))
}

pub(crate) async fn update(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: UpdateRequest = parse_body(&body)?;
    let Some(input) = req.health_check else {
        let mut c = Checks::new();
        c.missing("healthCheck");
        c.finish()?;
        return Err(ApiError::Internal("unreachable".into()));
    };
    let mut tx = s.store.write().await?;
    let (mut rec, mut tg) = load_target_group(&mut tx, &s, &ident).await?;
    let (Some(current), Some(protocol)) = (&tg.config.health_check, tg.config.protocol) else {
        return Err(ApiError::validation_field(
            "healthCheck",
            format!(
                "Target group {} is of type {}, which has no health check to update",
                tg.id,
                tg.target_type.as_str()
            ),
        ));
    };
    let mut c = Checks::new();
    let merged = input.apply(&mut c, "healthCheck", current, protocol);
    c.finish()?;
    tg.config.health_check = Some(merged);
    tg.last_updated_at = Timestamp::now();
    set_doc(&mut rec, &tg)?;
    tx.update(&rec).await?;
    tx.commit().await?;
    Ok(reply(StatusCode::OK, target_group_wire(&tg)))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.store.write().await?;
    let (rec, tg) = load_target_group(&mut tx, &s, &ident).await?;
    let users = services_using(&mut tx, &tg.id).await?;
    if !users.is_empty() {
        return Err(ApiError::conflict(
            KIND,
            &tg.id,
            format!(
                "Target group {} is used by the listeners or rules of service(s) {}; change those actions first",
                tg.id,
                users.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    for t in tx.list(TARGET, Some(&tg.id)).await? {
        tx.delete(TARGET, &t.id).await?;
    }
    tx.delete(KIND.store_kind(), &rec.id).await?;
    tx.commit().await?;
    Ok(reply(
        StatusCode::OK,
        json!({ "id": tg.id, "arn": tg.arn, "status": TargetGroupStatus::DeleteInProgress.as_str() }),
    ))
}

// ---------------------------------------------------------------------------------------------
// Targets.

#[derive(Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct TargetInput {
    id: Option<String>,
    port: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TargetsRequest {
    targets: Option<Vec<TargetInput>>,
}

/// Validates a `targets` list of `min..=max` entries; returns `(id, port)` pairs.
fn check_targets(
    targets: Option<&[TargetInput]>,
    min: usize,
    max: usize,
    required: bool,
) -> ApiResult<Vec<(String, Option<u16>)>> {
    let mut c = Checks::new();
    let mut out = Vec::new();
    match targets {
        None if required => c.missing("targets"),
        None => {}
        Some(list) if c.count("targets", list.len(), min, max) => {
            for (i, t) in list.iter().enumerate() {
                let id = match &t.id {
                    None => {
                        c.missing(&format!("targets[{i}].id"));
                        None
                    }
                    Some(id) => c
                        .length(&format!("targets[{i}].id"), id, 1, 200)
                        .then(|| id.clone()),
                };
                let port = match t.port {
                    None => Some(None),
                    Some(p) => c
                        .range(&format!("targets[{i}].port"), p, 1, 65535)
                        .then_some(Some(p as u16)),
                };
                if let (Some(id), Some(port)) = (id, port) {
                    out.push((id, port));
                }
            }
        }
        Some(_) => {}
    }
    c.finish()?;
    Ok(out)
}

fn target_wire(id: &str, port: Option<u16>) -> Value {
    let mut v = json!({ "id": id });
    if let Some(p) = port {
        v["port"] = json!(p);
    }
    v
}

fn target_failure(id: &str, port: Option<u16>, e: &ApiError) -> Value {
    let (code, message) = failure_of(e);
    let mut v = target_wire(id, port);
    v["failureCode"] = json!(code);
    v["failureMessage"] = json!(message);
    v
}

/// RegisterTargets: each target is checked against the group's type; registering a target that
/// is already registered succeeds without change. Failed targets are reported per item with the
/// codes of [`failure_of`]: `ValidationException` for an id or port that does not suit the group,
/// `ConflictException` for a second target of a LAMBDA or ALB group. Exceeding the targets-per-
/// group quota fails the whole request (402) and registers nothing.
pub(crate) async fn register_targets(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: TargetsRequest = parse_body(&body)?;
    let targets = check_targets(req.targets.as_deref(), 1, 100, true)?;
    let mut tx = s.store.write().await?;
    let (_, tg) = load_target_group(&mut tx, &s, &ident).await?;
    let existing = tx.list(TARGET, Some(&tg.id)).await?;
    let mut registered: Vec<Target> = existing.iter().map(doc).collect::<ApiResult<_>>()?;
    let single = matches!(
        tg.target_type,
        TargetGroupType::Lambda | TargetGroupType::Alb
    );

    let mut successful = Vec::new();
    let mut unsuccessful = Vec::new();
    let mut new_targets: Vec<Target> = Vec::new();
    let now = Timestamp::now();
    for (id, port) in targets {
        let port = match check_target(&s.ctx, &tg, &id, port) {
            Ok(p) => p,
            Err(m) => {
                unsuccessful.push(target_failure(&id, port, &ApiError::validation_other(m)));
                continue;
            }
        };
        if registered.iter().any(|t| t.id == id && t.port == port) {
            successful.push(target_wire(&id, port));
            continue;
        }
        if single && let Some(other) = registered.first() {
            let e = ApiError::conflict(
                KIND,
                &tg.id,
                format!(
                    "A {} target group has exactly one target and {} is already registered; deregister it first",
                    tg.target_type.as_str(),
                    other.id
                ),
            );
            unsuccessful.push(target_failure(&id, port, &e));
            continue;
        }
        let t = Target {
            id: id.clone(),
            port,
            registered_at: now,
        };
        registered.push(t.clone());
        new_targets.push(t);
        successful.push(target_wire(&id, port));
    }
    if registered.len() as u64 > TARGETS_PER_TARGET_GROUP {
        return Err(ApiError::quota(
            KIND,
            Some(&tg.id),
            "targets-per-target-group",
            "targets per target group",
            TARGETS_PER_TARGET_GROUP,
        ));
    }
    for t in &new_targets {
        let key = target_key(&t.id, t.port);
        let rec_id = format!("{}/{key}", tg.id);
        let rec = Record {
            kind: TARGET.to_string(),
            id: rec_id,
            parent: Some(tg.id.clone()),
            name: Some(key),
            arn: None,
            refs: vec![],
            body: serde_json::to_value(t).map_err(|e| ApiError::Internal(e.to_string()))?,
            seq: 0,
        };
        tx.insert(&rec).await?;
    }
    tx.commit().await?;
    Ok(reply(
        StatusCode::OK,
        json!({ "successful": successful, "unsuccessful": unsuccessful }),
    ))
}

/// DeregisterTargets: a target that is not registered (with that port, defaulting to the
/// group's) is a per-item `ResourceNotFoundException`. The target is removed at once: draining is
/// observed state, which the data plane owns.
pub(crate) async fn deregister_targets(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: TargetsRequest = parse_body(&body)?;
    let targets = check_targets(req.targets.as_deref(), 1, 100, true)?;
    let mut tx = s.store.write().await?;
    let (_, tg) = load_target_group(&mut tx, &s, &ident).await?;
    let mut successful = Vec::new();
    let mut unsuccessful = Vec::new();
    for (id, port) in targets {
        // LAMBDA targets have no port; every other target defaults to the group's port.
        let port = if tg.target_type == TargetGroupType::Lambda {
            port
        } else {
            port.or(tg.config.port)
        };
        let key = target_key(&id, port);
        match tx.get_by_name(TARGET, Some(&tg.id), &key).await? {
            Some(rec) => {
                tx.delete(TARGET, &rec.id).await?;
                successful.push(target_wire(&id, port));
            }
            None => {
                let e = ApiError::NotFound {
                    message: format!("Target {key} is not registered with target group {}", tg.id),
                    resource_id: id.clone(),
                    resource_type: "TARGET".into(),
                };
                unsuccessful.push(target_failure(&id, port, &e));
            }
        }
    }
    tx.commit().await?;
    Ok(reply(
        StatusCode::OK,
        json!({ "successful": successful, "unsuccessful": unsuccessful }),
    ))
}

/// ListTargets (a POST): the group's targets, optionally only those named in `targets` (a
/// filter entry without a port matches every port of that id), with their status.
pub(crate) async fn list_targets(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let page = Page::from_query(&QueryParams::parse(q.as_deref()))?;
    let req: TargetsRequest = parse_body(&body)?;
    let filter = check_targets(req.targets.as_deref(), 0, 20, false)?;
    let mut tx = s.store.read().await?;
    let (_, tg) = load_target_group(&mut tx, &s, &ident).await?;
    let in_use = !services_using(&mut tx, &tg.id).await?.is_empty();
    let wanted = |id: &str, port: Option<u16>| {
        filter.is_empty()
            || filter
                .iter()
                .any(|(fid, fport)| fid == id && fport.is_none_or(|p| Some(p) == port))
    };
    let mut matching = Vec::new();
    let mut registered = BTreeSet::new();
    for rec in tx.list(TARGET, Some(&tg.id)).await? {
        let t: Target = doc(&rec)?;
        registered.insert(target_key(&t.id, t.port));
        if wanted(&t.id, t.port) {
            matching.push(rec);
        }
    }
    let (records, next) = page.apply(matching);
    let mut items = Vec::with_capacity(records.len());
    for rec in &records {
        let t: Target = doc(rec)?;
        let st = target_status(
            in_use,
            tg.health_checks_enabled(),
            observed(&tg.id, &t.id, t.port),
        );
        let mut item = target_wire(&t.id, t.port);
        item["status"] = json!(st.status.as_str());
        if let Some(r) = st.reason_code {
            item["reasonCode"] = json!(r);
        }
        items.push(item);
    }
    // Deregistered targets still draining are not records, so they cannot take part in
    // pagination: they follow the registered ones on the last page. A group no service uses has
    // no requests to drain, so its deregistered targets are gone at once.
    if next.is_none() && in_use {
        for (id, port) in draining(&tg.id) {
            if !registered.contains(&target_key(&id, port)) && wanted(&id, port) {
                let mut item = target_wire(&id, port);
                item["status"] = json!(TargetStatus::Draining.as_str());
                items.push(item);
            }
        }
    }
    Ok(list_reply(items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_prefers_observation_only_when_in_use() {
        let seen = Some(ObservedTarget {
            status: TargetStatus::Unhealthy,
            reason_code: Some("HealthCheckFailed".into()),
        });
        assert_eq!(
            target_status(true, true, seen.clone()),
            seen.clone().unwrap()
        );
        assert_eq!(
            target_status(false, true, seen).status,
            TargetStatus::Unused
        );
        assert_eq!(
            target_status(true, false, None).status,
            TargetStatus::Unavailable
        );
        assert_eq!(
            target_status(true, true, None),
            ObservedTarget {
                status: TargetStatus::Initial,
                reason_code: None
            }
        );
    }

    #[test]
    fn targets_list_validation_table() {
        let t = |id: Option<&str>, port: Option<i64>| TargetInput {
            id: id.map(str::to_string),
            port,
        };
        // (targets, minimum count, expected failing fields)
        type Case = (Option<Vec<TargetInput>>, usize, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            (Some(vec![t(Some("10.0.0.1"), None)]), 1, vec![]),
            (None, 1, vec!["targets"]),
            (Some(vec![]), 1, vec!["targets"]),
            (Some(vec![t(Some("a"), None); 101]), 1, vec!["targets"]),
            (Some(vec![t(None, None)]), 1, vec!["targets[0].id"]),
            (Some(vec![t(Some(""), None)]), 1, vec!["targets[0].id"]),
            (
                Some(vec![t(Some(&"x".repeat(201)), None)]),
                1,
                vec!["targets[0].id"],
            ),
            (
                Some(vec![t(Some("a"), Some(0)), t(Some("b"), Some(65536))]),
                1,
                vec!["targets[0].port", "targets[1].port"],
            ),
            (Some(vec![]), 0, vec![]),
        ];
        for (list, min, want) in cases {
            let got = match check_targets(list.as_deref(), min, 100, true) {
                Ok(_) => vec![],
                Err(ApiError::Validation(e)) => e.fields.into_iter().map(|f| f.name).collect(),
                Err(e) => panic!("{e:?}"),
            };
            assert_eq!(got, want);
        }
    }
}
