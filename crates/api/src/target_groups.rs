//! Target groups and targets: CreateTargetGroup, GetTargetGroup, ListTargetGroups,
//! UpdateTargetGroup, DeleteTargetGroup, RegisterTargets, DeregisterTargets, ListTargets.
//!
//! Each operation's input is a `*Input` type whose `validate` yields the checked values or one
//! `ValidationError` naming every failing member (the shared request shapes and their checks are
//! in [`input`]); each output is a `Serialize` type the front door writes in the rest-json shape.
//!
//! Which services use a target group is not stored on the group: it is derived from the listener
//! and rule records whose `refs` name it ([`services_using`]). Target status is observed state;
//! ListTargets asks the [`TargetHealthSource`] the data plane put in the API state
//! ([`crate::AppState::with_target_health`]) and falls back to the status implied by
//! configuration alone ([`TargetStatus::provisional`]).

pub mod input;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use trellis_model::resources::Tags;
use trellis_model::resources::target_group::{
    HealthCheck, HealthCheckProtocolVersion, IpAddressType, LambdaEventStructureVersion,
    ProtocolVersion, TARGETS_PER_TARGET_GROUP, Target, TargetGroup, TargetGroupConfig,
    TargetGroupProtocol, TargetGroupStatus, TargetGroupType, TargetStatus, target_key,
};
use trellis_model::{Checks, ResourceKind, Timestamp, ValidationError};
use trellis_store::{Record, Tx};
use trellis_wire::Call;

use self::input::{
    HealthCheckInput, TargetGroupConfigInput, TargetInput, check_config, check_target,
    check_targets, check_vpc_id,
};
use crate::AppState;
use crate::actions::services_using;
use crate::error::failure_of;
use crate::error::{ApiError, ApiResult};
use crate::wire::{
    Idempotency, ListOutput, NewRecord, Page, check_new_top_level, doc, load_doc, set_doc,
};

const KIND: ResourceKind = ResourceKind::TargetGroup;
/// Store kind of registered targets; parent = the target group's id, name = `target_key`.
pub const TARGET: &str = "target";
/// The identifier label of every operation on one target group.
const IDENTIFIER: &str = "targetGroupIdentifier";

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

async fn load_target_group(
    tx: &mut Tx,
    s: &AppState,
    ident: &str,
) -> ApiResult<(Record, TargetGroup)> {
    load_doc::<TargetGroup>(tx, &s.ctx, KIND, IDENTIFIER, ident).await
}

// ---------------------------------------------------------------------------------------------
// Outputs shared by several operations.

/// A stored health check in the wire shape (`HealthCheckConfig`) Get/Create/Update answer with
/// (also the fuzz `api_wire` target's round trip).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckConfigOutput {
    enabled: bool,
    protocol: TargetGroupProtocol,
    protocol_version: HealthCheckProtocolVersion,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    path: String,
    health_check_interval_seconds: u16,
    health_check_timeout_seconds: u16,
    healthy_threshold_count: u16,
    unhealthy_threshold_count: u16,
    matcher: MatcherOutput,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatcherOutput {
    http_code: String,
}

impl From<&HealthCheck> for HealthCheckConfigOutput {
    fn from(h: &HealthCheck) -> HealthCheckConfigOutput {
        HealthCheckConfigOutput {
            enabled: h.enabled,
            protocol: h.protocol,
            protocol_version: h.protocol_version,
            port: h.port,
            path: h.path.clone(),
            health_check_interval_seconds: h.interval_seconds,
            health_check_timeout_seconds: h.timeout_seconds,
            healthy_threshold_count: h.healthy_threshold_count,
            unhealthy_threshold_count: h.unhealthy_threshold_count,
            matcher: MatcherOutput {
                http_code: h.matcher.clone(),
            },
        }
    }
}

/// `TargetGroupConfig` as the API returns it: only the members that apply to the type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupConfigOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<TargetGroupProtocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol_version: Option<ProtocolVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address_type: Option<IpAddressType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vpc_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check: Option<HealthCheckConfigOutput>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lambda_event_structure_version: Option<LambdaEventStructureVersion>,
}

impl From<&TargetGroupConfig> for TargetGroupConfigOutput {
    fn from(c: &TargetGroupConfig) -> TargetGroupConfigOutput {
        TargetGroupConfigOutput {
            port: c.port,
            protocol: c.protocol,
            protocol_version: c.protocol_version,
            ip_address_type: c.ip_address_type,
            vpc_identifier: c.vpc_identifier.clone(),
            health_check: c.health_check.as_ref().map(HealthCheckConfigOutput::from),
            lambda_event_structure_version: c.lambda_event_structure_version,
        }
    }
}

/// The members CreateTargetGroup and UpdateTargetGroup answer with.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupOutput {
    id: String,
    arn: String,
    name: String,
    #[serde(rename = "type")]
    target_type: TargetGroupType,
    config: TargetGroupConfigOutput,
    status: TargetGroupStatus,
}

impl From<&TargetGroup> for TargetGroupOutput {
    fn from(tg: &TargetGroup) -> TargetGroupOutput {
        TargetGroupOutput {
            id: tg.id.clone(),
            arn: tg.arn.clone(),
            name: tg.name.clone(),
            target_type: tg.target_type,
            config: TargetGroupConfigOutput::from(&tg.config),
            status: tg.status,
        }
    }
}

/// The input of the operations that name one target group and nothing else.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupIdentifierInput {
    target_group_identifier: String,
}

// ---------------------------------------------------------------------------------------------
// Target groups.

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTargetGroupInput {
    name: Option<String>,
    #[serde(rename = "type")]
    target_type: Option<String>,
    config: Option<TargetGroupConfigInput>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

/// A checked CreateTargetGroup.
struct NewTargetGroup {
    name: String,
    target_type: TargetGroupType,
    config: TargetGroupConfig,
}

impl CreateTargetGroupInput {
    fn validate(&self) -> Result<NewTargetGroup, ValidationError> {
        let mut c = Checks::new();
        match &self.name {
            Some(n) => {
                c.resource_name("name", n, 3, 128, Some("tg-"));
            }
            None => c.missing("name"),
        }
        let target_type = match &self.target_type {
            Some(t) => c
                .one_of("type", t, TargetGroupType::VALUES)
                .then(|| TargetGroupType::parse(t))
                .flatten(),
            None => {
                c.missing("type");
                None
            }
        };
        let checked = target_type.map(|t| (t, check_config(&mut c, t, self.config.as_ref())));
        c.tags("tags", &self.tags);
        let Some((target_type, config)) = checked else {
            // `type` is absent or unknown, which `c` has recorded.
            return Err(c
                .finish()
                .expect_err("an absent or unknown type is a failure"));
        };
        c.finish()?;
        Ok(NewTargetGroup {
            name: self.name.clone().unwrap_or_default(),
            target_type,
            config,
        })
    }
}

pub type CreateTargetGroupOutput = TargetGroupOutput;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetTargetGroupOutput {
    id: String,
    arn: String,
    name: String,
    #[serde(rename = "type")]
    target_type: TargetGroupType,
    config: TargetGroupConfigOutput,
    status: TargetGroupStatus,
    created_at: Timestamp,
    last_updated_at: Timestamp,
    service_arns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTargetGroupsInput {
    max_results: Option<String>,
    next_token: Option<String>,
    vpc_identifier: Option<String>,
    target_group_type: Option<String>,
}

/// The filters of a checked ListTargetGroups.
struct TargetGroupFilter<'a> {
    vpc: Option<&'a str>,
    target_type: Option<TargetGroupType>,
}

impl ListTargetGroupsInput {
    fn validate(&self) -> Result<TargetGroupFilter<'_>, ValidationError> {
        let mut c = Checks::new();
        let vpc = self.vpc_identifier.as_deref();
        if let Some(v) = vpc {
            check_vpc_id(&mut c, "vpcIdentifier", v);
        }
        let target_type = self.target_group_type.as_deref().and_then(|t| {
            c.one_of("targetGroupType", t, TargetGroupType::VALUES)
                .then(|| TargetGroupType::parse(t))
                .flatten()
        });
        c.finish()?;
        Ok(TargetGroupFilter { vpc, target_type })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupSummary {
    id: String,
    arn: String,
    name: String,
    #[serde(rename = "type")]
    target_type: TargetGroupType,
    created_at: Timestamp,
    last_updated_at: Timestamp,
    status: TargetGroupStatus,
    service_arns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<TargetGroupProtocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip_address_type: Option<IpAddressType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vpc_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lambda_event_structure_version: Option<LambdaEventStructureVersion>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateTargetGroupInput {
    target_group_identifier: String,
    health_check: Option<HealthCheckInput>,
}

impl UpdateTargetGroupInput {
    /// The health check to apply. Its members are checked against the stored check and the
    /// group's protocol once the group is loaded ([`HealthCheckInput::apply`]).
    fn validate(&self) -> Result<&HealthCheckInput, ValidationError> {
        self.health_check.as_ref().ok_or_else(|| {
            let mut c = Checks::new();
            c.missing("healthCheck");
            c.finish().expect_err("a missing member is a failure")
        })
    }
}

pub type UpdateTargetGroupOutput = TargetGroupOutput;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteTargetGroupOutput {
    id: String,
    arn: String,
    status: TargetGroupStatus,
}

pub(crate) async fn create(
    s: AppState,
    input: CreateTargetGroupInput,
    _: Call,
) -> ApiResult<CreateTargetGroupOutput> {
    let new = input.validate()?;
    let idem = Idempotency::new(
        "CreateTargetGroup",
        "",
        input.client_token.as_deref(),
        &serde_json::to_value(&input).map_err(|e| ApiError::Internal(e.to_string()))?,
    )?;

    let mut tx = s.store.write().await?;
    if let Some(out) = idem.replay_output(&mut tx, KIND).await? {
        return Ok(out);
    }
    check_new_top_level(
        &mut tx,
        KIND,
        &new.name,
        s.quotas.target_groups_per_region,
        "target-groups-per-region",
    )
    .await?;
    if let Some(vpc) = new.config.vpc_identifier.as_deref() {
        crate::ec2::require_vpc(&mut tx, "config.vpcIdentifier", vpc).await?;
    }
    let id = KIND.new_id();
    let arn = s.ctx.top_level_arn(KIND, &id);
    let now = Timestamp::now();
    let tg = TargetGroup {
        id: id.clone(),
        name: new.name.clone(),
        arn: arn.clone(),
        target_type: new.target_type,
        config: new.config,
        status: TargetGroupStatus::Active,
        created_at: now,
        last_updated_at: now,
        tags: input.tags,
    };
    let rec = NewRecord {
        kind: KIND,
        id: &id,
        parent: None,
        name: Some(&new.name),
        arn: Some(&arn),
        refs: vec![],
    }
    .with_body(&tg)?;
    tx.insert(&rec).await?;
    idem.finish_output(tx, TargetGroupOutput::from(&tg)).await
}

pub(crate) async fn read(
    s: AppState,
    input: TargetGroupIdentifierInput,
    _: Call,
) -> ApiResult<GetTargetGroupOutput> {
    let mut tx = s.store.read().await?;
    let (_, tg) = load_target_group(&mut tx, &s, &input.target_group_identifier).await?;
    let service_arns = service_arns(&mut tx, &s, &tg.id).await?;
    Ok(GetTargetGroupOutput {
        config: TargetGroupConfigOutput::from(&tg.config),
        id: tg.id,
        arn: tg.arn,
        name: tg.name,
        target_type: tg.target_type,
        status: tg.status,
        created_at: tg.created_at,
        last_updated_at: tg.last_updated_at,
        service_arns,
    })
}

pub(crate) async fn list(
    s: AppState,
    input: ListTargetGroupsInput,
    _: Call,
) -> ApiResult<ListOutput<TargetGroupSummary>> {
    let page = Page::new(input.max_results.as_deref(), input.next_token.as_deref())?;
    let filter = input.validate()?;

    let mut tx = s.store.read().await?;
    let mut matching = Vec::new();
    for rec in tx.list(KIND.store_kind(), None).await? {
        let tg: TargetGroup = doc(&rec)?;
        if filter
            .vpc
            .is_some_and(|v| tg.config.vpc_identifier.as_deref() != Some(v))
            || filter.target_type.is_some_and(|t| tg.target_type != t)
        {
            continue;
        }
        matching.push(rec);
    }
    let (records, next_token) = page.apply(matching);
    let mut items = Vec::with_capacity(records.len());
    for rec in &records {
        let tg: TargetGroup = doc(rec)?;
        let service_arns = service_arns(&mut tx, &s, &tg.id).await?;
        let c = tg.config;
        items.push(TargetGroupSummary {
            id: tg.id,
            arn: tg.arn,
            name: tg.name,
            target_type: tg.target_type,
            created_at: tg.created_at,
            last_updated_at: tg.last_updated_at,
            status: tg.status,
            service_arns,
            port: c.port,
            protocol: c.protocol,
            ip_address_type: c.ip_address_type,
            vpc_identifier: c.vpc_identifier,
            lambda_event_structure_version: c.lambda_event_structure_version,
        });
    }
    Ok(ListOutput { items, next_token })
}

pub(crate) async fn update(
    s: AppState,
    input: UpdateTargetGroupInput,
    _: Call,
) -> ApiResult<UpdateTargetGroupOutput> {
    let health_check = input.validate()?;
    let mut tx = s.store.write().await?;
    let (mut rec, mut tg) = load_target_group(&mut tx, &s, &input.target_group_identifier).await?;
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
    let merged = health_check.apply(&mut c, "healthCheck", current, protocol);
    c.finish()?;
    tg.config.health_check = Some(merged);
    tg.last_updated_at = Timestamp::now();
    set_doc(&mut rec, &tg)?;
    tx.update(&rec).await?;
    tx.commit().await?;
    Ok(TargetGroupOutput::from(&tg))
}

pub(crate) async fn delete(
    s: AppState,
    input: TargetGroupIdentifierInput,
    _: Call,
) -> ApiResult<DeleteTargetGroupOutput> {
    let mut tx = s.store.write().await?;
    let (rec, tg) = load_target_group(&mut tx, &s, &input.target_group_identifier).await?;
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
    Ok(DeleteTargetGroupOutput {
        id: tg.id,
        arn: tg.arn,
        status: TargetGroupStatus::DeleteInProgress,
    })
}

// ---------------------------------------------------------------------------------------------
// Targets.

/// The input of RegisterTargets and DeregisterTargets.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetsInput {
    target_group_identifier: String,
    targets: Option<Vec<TargetInput>>,
}

impl TargetsInput {
    /// The `(id, port)` of every target: 1 to 100 of them.
    fn validate(&self) -> Result<Vec<(String, Option<u16>)>, ValidationError> {
        check_targets(self.targets.as_deref(), 1, 100, true)
    }
}

/// A target as the API names it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetOutput {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

/// A target a Register/DeregisterTargets call could not process, and why.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetFailure {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    failure_code: String,
    failure_message: String,
}

impl TargetFailure {
    fn new(id: &str, port: Option<u16>, e: &ApiError) -> TargetFailure {
        let (failure_code, failure_message) = failure_of(e);
        TargetFailure {
            id: id.to_string(),
            port,
            failure_code,
            failure_message,
        }
    }
}

/// The output of RegisterTargets and DeregisterTargets.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetsOutput {
    successful: Vec<TargetOutput>,
    unsuccessful: Vec<TargetFailure>,
}

impl TargetsOutput {
    fn ok(&mut self, id: &str, port: Option<u16>) {
        self.successful.push(TargetOutput {
            id: id.to_string(),
            port,
        });
    }

    fn failed(&mut self, id: &str, port: Option<u16>, e: &ApiError) {
        self.unsuccessful.push(TargetFailure::new(id, port, e));
    }
}

/// RegisterTargets: each target is checked against the group's type; registering a target that
/// is already registered succeeds without change. Failed targets are reported per item with the
/// codes of [`failure_of`]: `ValidationException` for an id or port that does not suit the group,
/// `ConflictException` for a second target of a LAMBDA or ALB group. Exceeding the targets-per-
/// group quota fails the whole request (402) and registers nothing.
pub(crate) async fn register_targets(
    s: AppState,
    input: TargetsInput,
    _: Call,
) -> ApiResult<TargetsOutput> {
    let targets = input.validate()?;
    let mut tx = s.store.write().await?;
    let (_, tg) = load_target_group(&mut tx, &s, &input.target_group_identifier).await?;
    let existing = tx.list(TARGET, Some(&tg.id)).await?;
    let mut registered: Vec<Target> = existing.iter().map(doc).collect::<ApiResult<_>>()?;
    let single = matches!(
        tg.target_type,
        TargetGroupType::Lambda | TargetGroupType::Alb
    );

    let mut out = TargetsOutput::default();
    let mut new_targets: Vec<Target> = Vec::new();
    let now = Timestamp::now();
    for (id, port) in targets {
        let port = match check_target(&s.ctx, &tg, &id, port) {
            Ok(p) => p,
            Err(m) => {
                out.failed(&id, port, &ApiError::validation_other(m));
                continue;
            }
        };
        // An INSTANCE target names an instance of the caller's account, in the group's VPC.
        if tg.target_type == TargetGroupType::Instance {
            let found = tx.get(crate::ec2::INSTANCE_KIND, &id).await?;
            let problem = match &found {
                None => Some(format!("Instance {id} does not exist")),
                Some(r) => {
                    let vpc = r.body.get("vpc_id").and_then(|v| v.as_str()).unwrap_or("");
                    let state = r.body.get("state").and_then(|v| v.as_str()).unwrap_or("");
                    if state == "terminated" {
                        Some(format!("Instance {id} is terminated"))
                    } else if tg
                        .config
                        .vpc_identifier
                        .as_deref()
                        .is_some_and(|v| v != vpc)
                    {
                        Some(format!(
                            "Instance {id} is in {vpc}, not in the target group's VPC"
                        ))
                    } else {
                        None
                    }
                }
            };
            if let Some(m) = problem {
                out.failed(&id, port, &ApiError::validation_other(m));
                continue;
            }
        }
        if registered.iter().any(|t| t.id == id && t.port == port) {
            out.ok(&id, port);
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
            out.failed(&id, port, &e);
            continue;
        }
        let t = Target {
            id: id.clone(),
            port,
            registered_at: now,
        };
        registered.push(t.clone());
        new_targets.push(t);
        out.ok(&id, port);
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
    Ok(out)
}

/// DeregisterTargets: a target that is not registered (with that port, defaulting to the
/// group's) is a per-item `ResourceNotFoundException`. The target is removed at once: draining is
/// observed state, which the data plane owns.
pub(crate) async fn deregister_targets(
    s: AppState,
    input: TargetsInput,
    _: Call,
) -> ApiResult<TargetsOutput> {
    let targets = input.validate()?;
    let mut tx = s.store.write().await?;
    let (_, tg) = load_target_group(&mut tx, &s, &input.target_group_identifier).await?;
    let mut out = TargetsOutput::default();
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
                out.ok(&id, port);
            }
            None => {
                let e = ApiError::NotFound {
                    message: format!("Target {key} is not registered with target group {}", tg.id),
                    resource_id: id.clone(),
                    resource_type: "TARGET".into(),
                };
                out.failed(&id, port, &e);
            }
        }
    }
    tx.commit().await?;
    Ok(out)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTargetsInput {
    target_group_identifier: String,
    max_results: Option<String>,
    next_token: Option<String>,
    targets: Option<Vec<TargetInput>>,
}

impl ListTargetsInput {
    /// The targets to list: up to 20 filter entries, none meaning every target.
    fn validate(&self) -> Result<Vec<(String, Option<u16>)>, ValidationError> {
        check_targets(self.targets.as_deref(), 0, 20, false)
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetSummary {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    status: TargetStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_code: Option<String>,
}

/// ListTargets (a POST): the group's targets, optionally only those named in `targets` (a
/// filter entry without a port matches every port of that id), with their status.
pub(crate) async fn list_targets(
    s: AppState,
    input: ListTargetsInput,
    _: Call,
) -> ApiResult<ListOutput<TargetSummary>> {
    let page = Page::new(input.max_results.as_deref(), input.next_token.as_deref())?;
    let filter = input.validate()?;
    let mut tx = s.store.read().await?;
    let (_, tg) = load_target_group(&mut tx, &s, &input.target_group_identifier).await?;
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
    let health = s.target_health.as_deref();
    let (records, next_token) = page.apply(matching);
    let mut items = Vec::with_capacity(records.len());
    for rec in &records {
        let t: Target = doc(rec)?;
        // An instance that is not running (stopped, terminated, unknown) has no address to
        // send to: its targets are UNAVAILABLE whatever health checking last saw.
        if in_use
            && tg.target_type == TargetGroupType::Instance
            && !instance_running(&mut tx, &t.id).await?
        {
            items.push(TargetSummary {
                id: t.id,
                port: t.port,
                status: TargetStatus::Unavailable,
                reason_code: Some(INSTANCE_NOT_RUNNING.to_string()),
            });
            continue;
        }
        let observed = health.and_then(|h| h.observe(&tg.id, &t.id, t.port));
        let st = target_status(in_use, tg.health_checks_enabled(), observed);
        items.push(TargetSummary {
            id: t.id,
            port: t.port,
            status: st.status,
            reason_code: st.reason_code,
        });
    }
    // Deregistered targets still draining are not records, so they cannot take part in
    // pagination: they follow the registered ones on the last page. A group no service uses has
    // no requests to drain, so its deregistered targets are gone at once.
    if next_token.is_none()
        && in_use
        && let Some(health) = health
    {
        for (id, port) in health.draining(&tg.id) {
            if !registered.contains(&target_key(&id, port)) && wanted(&id, port) {
                items.push(TargetSummary {
                    id,
                    port,
                    status: TargetStatus::Draining,
                    reason_code: None,
                });
            }
        }
    }
    Ok(ListOutput { items, next_token })
}

/// The `reasonCode` of an INSTANCE target whose instance is not running (Lattice documents no
/// list of reason codes; docs/decisions.md).
pub const INSTANCE_NOT_RUNNING: &str = "InstanceNotRunning";

/// Whether the caller's instance `id` exists and is running.
async fn instance_running(tx: &mut Tx, id: &str) -> ApiResult<bool> {
    Ok(tx
        .get(crate::ec2::INSTANCE_KIND, id)
        .await?
        .is_some_and(|r| r.body.get("state").and_then(|v| v.as_str()) == Some("running")))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn fields(e: ValidationError) -> Vec<String> {
        e.fields.into_iter().map(|f| f.name).collect()
    }

    /// CreateTargetGroup as the front door decodes it: (body, expected failing fields).
    #[test]
    fn create_input_table() {
        let http = json!({ "protocol": "HTTP", "vpcIdentifier": "vpc-01234567" });
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({ "name": "web-1", "type": "IP", "config": http }),
                vec![],
            ),
            // The `tg-` prefix is reserved for generated names.
            (
                json!({ "name": "tg-web", "type": "IP", "config": http }),
                vec!["name"],
            ),
            (json!({ "name": "web", "type": "LAMBDA" }), vec![]),
            (json!({}), vec!["name", "type"]),
            (json!({ "name": "web", "type": "UDP" }), vec!["type"]),
            (
                json!({ "name": "tg-", "type": "IP" }),
                vec!["name", "config"],
            ),
            (
                json!({ "name": "web", "type": "IP", "config": { "port": "80" } }),
                vec!["config.protocol", "config.vpcIdentifier"],
            ),
            (
                json!({ "name": "web", "tags": { "": "x" } }),
                vec!["type", "tags."],
            ),
        ];
        for (body, want) in cases {
            let input: CreateTargetGroupInput = trellis_wire::de::from_value(body.clone()).unwrap();
            let got = input.validate().err().map(fields).unwrap_or_default();
            assert_eq!(got, want, "{body}");
        }
        let input: CreateTargetGroupInput = trellis_wire::de::from_value(
            json!({ "name": "web", "type": "IP", "config": { "protocol": "HTTPS", "vpcIdentifier": "vpc-01234567" } }),
        )
        .unwrap();
        let new = input.validate().unwrap();
        assert_eq!(
            (new.name.as_str(), new.target_type, new.config.port),
            ("web", TargetGroupType::Ip, Some(443))
        );
    }

    /// The other inputs' member checks: (operation, document, expected failing fields).
    #[test]
    fn input_checks_table() {
        let tg = "tg-0123456789abcdef0";
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("list", json!({}), vec![]),
            (
                "list",
                json!({ "vpcIdentifier": "vpc-1", "targetGroupType": "IP" }),
                vec!["vpcIdentifier"],
            ),
            (
                "list",
                json!({ "targetGroupType": "ip" }),
                vec!["targetGroupType"],
            ),
            (
                "update",
                json!({ "targetGroupIdentifier": tg }),
                vec!["healthCheck"],
            ),
            (
                "update",
                json!({ "targetGroupIdentifier": tg, "healthCheck": {} }),
                vec![],
            ),
            (
                "register",
                json!({ "targetGroupIdentifier": tg }),
                vec!["targets"],
            ),
            (
                "register",
                json!({ "targetGroupIdentifier": tg, "targets": [{ "id": "10.0.0.1", "port": "8080" }] }),
                vec![],
            ),
            (
                "register",
                json!({ "targetGroupIdentifier": tg, "targets": [{ "port": 0 }] }),
                vec!["targets[0].id", "targets[0].port"],
            ),
            (
                "listTargets",
                json!({ "targetGroupIdentifier": tg }),
                vec![],
            ),
            (
                "listTargets",
                json!({ "targetGroupIdentifier": tg, "targets": [] }),
                vec![],
            ),
            (
                "listTargets",
                json!({ "targetGroupIdentifier": tg, "targets": vec![json!({ "id": "a" }); 21] }),
                vec!["targets"],
            ),
        ];
        for (op, doc, want) in cases {
            let d = doc.clone();
            let got = match op {
                "list" => trellis_wire::de::from_value::<ListTargetGroupsInput>(d)
                    .unwrap()
                    .validate()
                    .err(),
                "update" => trellis_wire::de::from_value::<UpdateTargetGroupInput>(d)
                    .unwrap()
                    .validate()
                    .err(),
                "register" => trellis_wire::de::from_value::<TargetsInput>(d)
                    .unwrap()
                    .validate()
                    .err(),
                _ => trellis_wire::de::from_value::<ListTargetsInput>(d)
                    .unwrap()
                    .validate()
                    .err(),
            };
            assert_eq!(got.map(fields).unwrap_or_default(), want, "{op} {doc}");
        }
    }

    /// Create/Get/Update show the health check under its wire names and only the config members
    /// that apply to the type; Create's output replays through the idempotency store.
    #[test]
    fn outputs_use_the_wire_shape() {
        let input: CreateTargetGroupInput = trellis_wire::de::from_value(json!({
            "name": "web", "type": "IP",
            "config": { "protocol": "HTTP", "port": 8080, "vpcIdentifier": "vpc-01234567",
                        "healthCheck": { "path": "/ready", "port": 9000 } }
        }))
        .unwrap();
        let new = input.validate().unwrap();
        let tg = TargetGroup {
            id: "tg-0123456789abcdef0".into(),
            name: new.name,
            arn: "arn".into(),
            target_type: new.target_type,
            config: new.config,
            status: TargetGroupStatus::Active,
            created_at: Timestamp::from_unix_millis(0),
            last_updated_at: Timestamp::from_unix_millis(0),
            tags: Tags::new(),
        };
        let out = serde_json::to_value(TargetGroupOutput::from(&tg)).unwrap();
        assert_eq!(
            out,
            json!({
                "id": "tg-0123456789abcdef0", "arn": "arn", "name": "web", "type": "IP",
                "status": "ACTIVE",
                "config": {
                    "port": 8080, "protocol": "HTTP", "protocolVersion": "HTTP1",
                    "ipAddressType": "IPV4", "vpcIdentifier": "vpc-01234567",
                    "healthCheck": {
                        "enabled": true, "protocol": "HTTP", "protocolVersion": "HTTP1",
                        "port": 9000, "path": "/ready", "healthCheckIntervalSeconds": 30,
                        "healthCheckTimeoutSeconds": 5, "healthyThresholdCount": 5,
                        "unhealthyThresholdCount": 2, "matcher": { "httpCode": "200" }
                    }
                }
            })
        );
        let replayed: TargetGroupOutput = serde_json::from_value(out.clone()).unwrap();
        assert_eq!(serde_json::to_value(replayed).unwrap(), out);
    }

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
}
