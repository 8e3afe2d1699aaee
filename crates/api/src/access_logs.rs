//! Access-log subscriptions: Create/Get/List/Update/DeleteAccessLogSubscription.
//!
//! A subscription names a service network or service and a destination (CloudWatch Logs log
//! group, S3 bucket or Firehose delivery stream ARN). Trellis stores it now; delivering the
//! records is the telemetry sinks' job and reads these documents. A resource may have one
//! subscription per destination type (and, for service networks, per log type).

use serde::{Deserialize, Serialize};
use trellis_model::arn::Resolved;
use trellis_model::resources::Tags;
use trellis_model::resources::access_log::{
    AccessLogSubscription, DESTINATION_ARN_PATTERN, DestinationType, SERVICE_NETWORK_LOG_TYPES,
    destination_type, is_destination_arn,
};
use trellis_model::{Checks, Context, ResourceKind, Timestamp, ValidationError};
use trellis_store::Tx;
use trellis_wire::Call;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::wire::{Idempotency, ListOutput, NewRecord, Page, doc, load_doc, set_doc};

const KIND: ResourceKind = ResourceKind::AccessLogSubscription;
/// The identifier label of every operation on one subscription.
const IDENTIFIER: &str = "accessLogSubscriptionIdentifier";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccessLogSubscriptionInput {
    resource_identifier: Option<String>,
    destination_arn: Option<String>,
    service_network_log_type: Option<String>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

/// The input of the operations that name one subscription and nothing else.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogSubscriptionIdentifierInput {
    access_log_subscription_identifier: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAccessLogSubscriptionsInput {
    resource_identifier: Option<String>,
    max_results: Option<String>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAccessLogSubscriptionInput {
    access_log_subscription_identifier: String,
    destination_arn: Option<String>,
}

/// CreateAccessLogSubscription's output; also what an idempotent retry replays.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAccessLogSubscriptionOutput {
    id: String,
    arn: String,
    resource_id: String,
    resource_arn: String,
    destination_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_network_log_type: Option<String>,
}

/// A subscription as Get and List show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogSubscriptionSummary {
    id: String,
    arn: String,
    resource_id: String,
    resource_arn: String,
    destination_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_network_log_type: Option<String>,
    created_at: Timestamp,
    last_updated_at: Timestamp,
}

impl From<AccessLogSubscription> for AccessLogSubscriptionSummary {
    fn from(a: AccessLogSubscription) -> Self {
        AccessLogSubscriptionSummary {
            id: a.id,
            arn: a.arn,
            resource_id: a.resource_id,
            resource_arn: a.resource_arn,
            destination_arn: a.destination_arn,
            service_network_log_type: a.service_network_log_type,
            created_at: a.created_at,
            last_updated_at: a.last_updated_at,
        }
    }
}

/// UpdateAccessLogSubscriptionResponse has no serviceNetworkLogType member.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateAccessLogSubscriptionOutput {
    id: String,
    arn: String,
    resource_id: String,
    resource_arn: String,
    destination_arn: String,
}

/// DeleteAccessLogSubscription answers 204 with no members.
#[derive(Debug, Serialize)]
pub struct DeleteAccessLogSubscriptionOutput {}

/// What a `resourceIdentifier` names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    /// A service network or service (the kind), and its ID when it is one of ours.
    Resource(ResourceKind, Option<String>),
    /// A resource configuration: valid in the model, but Trellis has none.
    ResourceConfiguration,
}

/// Classifies `resourceIdentifier` (17–200 characters; SN, service or resource-configuration
/// ID or ARN), recording a field error when it is none of them.
fn check_resource(c: &mut Checks, ctx: &Context, value: Option<&str>) -> Option<Target> {
    let field = "resourceIdentifier";
    let Some(v) = value else {
        c.missing(field);
        return None;
    };
    if !c.length(field, v, 17, 200) {
        return None;
    }
    for kind in [ResourceKind::ServiceNetwork, ResourceKind::Service] {
        match ctx.resolve(kind, v) {
            Resolved::Id(id) => return Some(Target::Resource(kind, Some(id))),
            Resolved::Foreign(_) => return Some(Target::Resource(kind, None)),
            Resolved::Malformed => {}
        }
    }
    let rcfg = v
        .strip_prefix("rcfg-")
        .or_else(|| v.split_once(":resourceconfiguration/rcfg-").map(|(_, r)| r));
    if rcfg.is_some_and(|r| {
        r.len() == 17
            && r.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    }) {
        return Some(Target::ResourceConfiguration);
    }
    c.fail(
        field,
        format!("Value '{v}' at '{field}' failed to satisfy constraint: Member must be a service network or service ID or ARN"),
    );
    None
}

/// `destinationArn`: 20–2048 characters, the model's pattern, and one of the three supported
/// destination types.
fn check_destination(c: &mut Checks, value: Option<&str>) -> Option<DestinationType> {
    let field = "destinationArn";
    let Some(v) = value else {
        c.missing(field);
        return None;
    };
    if !c.length(field, v, 20, 2048)
        || !c.pattern(field, v, is_destination_arn(v), DESTINATION_ARN_PATTERN)
    {
        return None;
    }
    let t = destination_type(v);
    if t.is_none() {
        c.fail(
            field,
            format!(
                "Value '{v}' at '{field}' failed to satisfy constraint: Member must be the ARN of a CloudWatch Logs log group, an S3 bucket or a Firehose delivery stream"
            ),
        );
    }
    t
}

/// Validated CreateAccessLogSubscription input.
struct NewSubscription {
    /// The `resourceIdentifier` as given, for messages.
    resource_identifier: String,
    target: Target,
    destination_arn: String,
    destination_type: DestinationType,
    log_type: Option<String>,
}

impl CreateAccessLogSubscriptionInput {
    fn validate(&self, ctx: &Context) -> Result<NewSubscription, ValidationError> {
        let mut c = Checks::new();
        let target = check_resource(&mut c, ctx, self.resource_identifier.as_deref());
        let dest = check_destination(&mut c, self.destination_arn.as_deref());
        let mut log_type = None;
        if let Some(t) = &self.service_network_log_type
            && c.one_of("serviceNetworkLogType", t, &SERVICE_NETWORK_LOG_TYPES)
        {
            log_type = Some(t.clone());
        }
        match &target {
            Some(Target::Resource(ResourceKind::ServiceNetwork, _)) => {
                // SERVICE is what a service-network subscription receives unless RESOURCE is
                // asked for.
                log_type.get_or_insert_with(|| "SERVICE".to_string());
            }
            Some(_) if self.service_network_log_type.is_some() => c.fail(
                "serviceNetworkLogType",
                "serviceNetworkLogType can only be specified for service network subscriptions",
            ),
            _ => {}
        }
        c.tags("tags", &self.tags);
        c.finish()?;
        match (target, dest) {
            (Some(target), Some(destination_type)) => Ok(NewSubscription {
                resource_identifier: self.resource_identifier.clone().unwrap_or_default(),
                target,
                destination_arn: self.destination_arn.clone().unwrap_or_default(),
                destination_type,
                log_type,
            }),
            _ => unreachable_validation(),
        }
    }
}

/// Checks passed, so both members were classified; kept as an error rather than a panic.
fn unreachable_validation<T>() -> Result<T, ValidationError> {
    Err(ValidationError::other("request could not be validated"))
}

impl ListAccessLogSubscriptionsInput {
    /// What `resourceIdentifier` (required) names.
    fn validate(&self, ctx: &Context) -> Result<Target, ValidationError> {
        let mut c = Checks::new();
        let target = check_resource(&mut c, ctx, self.resource_identifier.as_deref());
        c.finish()?;
        target.map_or_else(unreachable_validation, Ok)
    }
}

impl UpdateAccessLogSubscriptionInput {
    /// The new destination and its type.
    fn validate(&self) -> Result<(String, DestinationType), ValidationError> {
        let mut c = Checks::new();
        let dest = check_destination(&mut c, self.destination_arn.as_deref());
        c.finish()?;
        match (&self.destination_arn, dest) {
            (Some(arn), Some(t)) => Ok((arn.clone(), t)),
            _ => unreachable_validation(),
        }
    }
}

/// Another subscription of the same resource (and log type) that already delivers to this
/// destination type, ignoring `except`.
async fn same_type_subscription(
    tx: &mut Tx,
    resource_id: &str,
    log_type: Option<&str>,
    dest: DestinationType,
    except: Option<&str>,
) -> ApiResult<Option<AccessLogSubscription>> {
    for rec in tx.list(KIND.store_kind(), Some(resource_id)).await? {
        if Some(rec.id.as_str()) == except {
            continue;
        }
        let other: AccessLogSubscription = doc(&rec)?;
        if other.service_network_log_type.as_deref() == log_type
            && destination_type(&other.destination_arn) == Some(dest)
        {
            return Ok(Some(other));
        }
    }
    Ok(None)
}

fn conflict_message(
    resource_id: &str,
    dest: DestinationType,
    existing: &AccessLogSubscription,
) -> String {
    format!(
        "{resource_id} already has an access log subscription to a {} ({}); a resource can have one subscription per destination type",
        dest.as_str(),
        existing.id
    )
}

pub(crate) async fn create(
    s: AppState,
    input: CreateAccessLogSubscriptionInput,
    _: Call,
) -> ApiResult<CreateAccessLogSubscriptionOutput> {
    let new = input.validate(&s.ctx)?;
    let (kind, resource_id) = match new.target {
        Target::Resource(kind, Some(id)) => (kind, id),
        Target::Resource(kind, None) => {
            return Err(ApiError::not_found(kind, &new.resource_identifier));
        }
        Target::ResourceConfiguration => {
            return Err(ApiError::validation_field(
                "resourceIdentifier",
                "Trellis does not support resource configurations; subscribe a service network or a service",
            ));
        }
    };
    let idem = Idempotency::new(
        "CreateAccessLogSubscription",
        "",
        input.client_token.as_deref(),
        &serde_json::to_value(&input).map_err(|e| ApiError::Internal(e.to_string()))?,
    )?;

    let mut tx = s.store.write().await?;
    if let Some(out) = idem.replay_output(&mut tx, KIND).await? {
        return Ok(out);
    }
    let resource = tx
        .get(kind.store_kind(), &resource_id)
        .await?
        .ok_or_else(|| ApiError::not_found(kind, &new.resource_identifier))?;
    let resource_arn = resource
        .arn
        .clone()
        .unwrap_or_else(|| s.ctx.top_level_arn(kind, &resource_id));
    if let Some(existing) = same_type_subscription(
        &mut tx,
        &resource_id,
        new.log_type.as_deref(),
        new.destination_type,
        None,
    )
    .await?
    {
        return Err(ApiError::conflict(
            KIND,
            &existing.id,
            conflict_message(&resource_id, new.destination_type, &existing),
        ));
    }
    let id = KIND.new_id();
    let arn = s.ctx.top_level_arn(KIND, &id);
    let now = Timestamp::now();
    let sub = AccessLogSubscription {
        id: id.clone(),
        arn: arn.clone(),
        resource_id: resource_id.clone(),
        resource_arn,
        destination_arn: new.destination_arn,
        service_network_log_type: new.log_type,
        created_at: now,
        last_updated_at: now,
        tags: input.tags,
    };
    let rec = NewRecord {
        kind: KIND,
        id: &id,
        parent: Some(&resource_id),
        name: None,
        arn: Some(&arn),
        refs: vec![],
    }
    .with_body(&sub)?;
    tx.insert(&rec).await?;
    let out = CreateAccessLogSubscriptionOutput {
        id: sub.id,
        arn: sub.arn,
        resource_id: sub.resource_id,
        resource_arn: sub.resource_arn,
        destination_arn: sub.destination_arn,
        service_network_log_type: sub.service_network_log_type,
    };
    idem.finish_output(tx, out).await
}

pub(crate) async fn read(
    s: AppState,
    input: AccessLogSubscriptionIdentifierInput,
    _: Call,
) -> ApiResult<AccessLogSubscriptionSummary> {
    let mut tx = s.store.read().await?;
    let (_, sub) = load_doc::<AccessLogSubscription>(
        &mut tx,
        &s.ctx,
        KIND,
        IDENTIFIER,
        &input.access_log_subscription_identifier,
    )
    .await?;
    Ok(sub.into())
}

pub(crate) async fn list(
    s: AppState,
    input: ListAccessLogSubscriptionsInput,
    _: Call,
) -> ApiResult<ListOutput<AccessLogSubscriptionSummary>> {
    let target = input.validate(&s.ctx)?;
    let page = Page::new(input.max_results.as_deref(), input.next_token.as_deref())?;
    let mut tx = s.store.read().await?;
    // A resource that is not (or no longer) here simply has no subscriptions: the operation
    // does not model ResourceNotFoundException.
    let all = match target {
        Target::Resource(_, Some(id)) => tx.list(KIND.store_kind(), Some(&id)).await?,
        _ => vec![],
    };
    let (records, next_token) = page.apply(all);
    let items = records
        .iter()
        .map(|r| doc::<AccessLogSubscription>(r).map(Into::into))
        .collect::<ApiResult<_>>()?;
    Ok(ListOutput { items, next_token })
}

pub(crate) async fn update(
    s: AppState,
    input: UpdateAccessLogSubscriptionInput,
    _: Call,
) -> ApiResult<UpdateAccessLogSubscriptionOutput> {
    let (destination_arn, dest) = input.validate()?;
    let mut tx = s.store.write().await?;
    let (mut rec, mut sub) = load_doc::<AccessLogSubscription>(
        &mut tx,
        &s.ctx,
        KIND,
        IDENTIFIER,
        &input.access_log_subscription_identifier,
    )
    .await?;
    if let Some(existing) = same_type_subscription(
        &mut tx,
        &sub.resource_id,
        sub.service_network_log_type.as_deref(),
        dest,
        Some(&sub.id),
    )
    .await?
    {
        return Err(ApiError::conflict(
            KIND,
            &existing.id,
            conflict_message(&sub.resource_id, dest, &existing),
        ));
    }
    sub.destination_arn = destination_arn;
    sub.last_updated_at = Timestamp::now();
    set_doc(&mut rec, &sub)?;
    tx.update(&rec).await?;
    tx.commit().await?;
    Ok(UpdateAccessLogSubscriptionOutput {
        id: sub.id,
        arn: sub.arn,
        resource_id: sub.resource_id,
        resource_arn: sub.resource_arn,
        destination_arn: sub.destination_arn,
    })
}

pub(crate) async fn delete(
    s: AppState,
    input: AccessLogSubscriptionIdentifierInput,
    _: Call,
) -> ApiResult<DeleteAccessLogSubscriptionOutput> {
    let mut tx = s.store.write().await?;
    let (rec, _) = load_doc::<AccessLogSubscription>(
        &mut tx,
        &s.ctx,
        KIND,
        IDENTIFIER,
        &input.access_log_subscription_identifier,
    )
    .await?;
    tx.delete(KIND.store_kind(), &rec.id).await?;
    tx.commit().await?;
    Ok(DeleteAccessLogSubscriptionOutput {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_json::{Value, json};

    const SN: &str = "sn-0123456789abcdef0";
    const SVC: &str = "svc-0123456789abcdef0";
    const LOGS: &str = "arn:aws:logs:us-west-2:111122223333:log-group:/lattice";
    const BUCKET: &str = "arn:aws:s3:::my-access-logs";

    #[test]
    fn create_validation_table() {
        let c = ctx();
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"resourceIdentifier": SN, "destinationArn": LOGS}),
                vec![],
            ),
            (
                json!({"resourceIdentifier": c.top_level_arn(ResourceKind::Service, SVC), "destinationArn": BUCKET}),
                vec![],
            ),
            (
                json!({"resourceIdentifier": SN, "destinationArn": BUCKET, "serviceNetworkLogType": "RESOURCE"}),
                vec![],
            ),
            (
                json!({"resourceIdentifier": "rcfg-0123456789abcdef0", "destinationArn": BUCKET}),
                vec![],
            ),
            (json!({}), vec!["resourceIdentifier", "destinationArn"]),
            (
                json!({"resourceIdentifier": "sn-short", "destinationArn": LOGS}),
                vec!["resourceIdentifier"],
            ),
            (
                json!({"resourceIdentifier": "tg-0123456789abcdef0", "destinationArn": LOGS}),
                vec!["resourceIdentifier"],
            ),
            (
                json!({"resourceIdentifier": format!("{SN}{}", "x".repeat(190)), "destinationArn": LOGS}),
                vec!["resourceIdentifier"],
            ),
            (
                json!({"resourceIdentifier": SN, "destinationArn": "arn:aws:s3:::b"}),
                vec!["destinationArn"],
            ),
            (
                json!({"resourceIdentifier": SN, "destinationArn": format!("arn:aws:s3:::{}", "b".repeat(2048))}),
                vec!["destinationArn"],
            ),
            (
                json!({"resourceIdentifier": SN, "destinationArn": "arn:aws:sqs:us-west-2:111122223333:queue-name"}),
                vec!["destinationArn"],
            ),
            (
                json!({"resourceIdentifier": SN, "destinationArn": "https://example.com/logs/bucket"}),
                vec!["destinationArn"],
            ),
            (
                json!({"resourceIdentifier": SN, "destinationArn": LOGS, "serviceNetworkLogType": "ALL"}),
                vec!["serviceNetworkLogType"],
            ),
            (
                json!({"resourceIdentifier": SVC, "destinationArn": LOGS, "serviceNetworkLogType": "SERVICE"}),
                vec!["serviceNetworkLogType"],
            ),
            (
                json!({"resourceIdentifier": SN, "destinationArn": LOGS, "tags": {"aws:a": "b"}}),
                vec!["tags.aws:a"],
            ),
        ];
        for (body, want) in cases {
            let input: CreateAccessLogSubscriptionInput =
                serde_json::from_value(body.clone()).unwrap();
            assert_eq!(names(input.validate(&c).map(|_| ())), want, "{body}");
        }
    }

    #[test]
    fn log_type_defaults_to_service_for_networks_only() {
        let c = ctx();
        let input: CreateAccessLogSubscriptionInput =
            serde_json::from_value(json!({"resourceIdentifier": SN, "destinationArn": LOGS}))
                .unwrap();
        assert_eq!(
            input.validate(&c).unwrap().log_type.as_deref(),
            Some("SERVICE")
        );
        let input: CreateAccessLogSubscriptionInput =
            serde_json::from_value(json!({"resourceIdentifier": SVC, "destinationArn": LOGS}))
                .unwrap();
        let v = input.validate(&c).unwrap();
        assert_eq!(v.log_type, None);
        assert_eq!(v.destination_type, DestinationType::CloudWatchLogs);
        assert_eq!(
            v.target,
            Target::Resource(ResourceKind::Service, Some(SVC.into()))
        );
    }

    #[test]
    fn update_validation_table() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"destinationArn": BUCKET}), vec![]),
            (json!({}), vec!["destinationArn"]),
            (
                json!({"destinationArn": "arn:aws:iam::111122223333:role/x"}),
                vec!["destinationArn"],
            ),
        ];
        for (body, want) in cases {
            // The front door merges the URI label into the input.
            let mut merged = body.clone();
            merged["accessLogSubscriptionIdentifier"] = json!("als-0123456789abcdef0");
            let input: UpdateAccessLogSubscriptionInput = serde_json::from_value(merged).unwrap();
            assert_eq!(names(input.validate().map(|_| ())), want, "{body}");
        }
    }

    #[test]
    fn list_validation_table() {
        let c = ctx();
        let foreign = format!("arn:aws:vpc-lattice:us-west-2:444455556666:service/{SVC}");
        let cases: Vec<(Value, Result<Target, Vec<&str>>)> = vec![
            (
                json!({"resourceIdentifier": SN}),
                Ok(Target::Resource(
                    ResourceKind::ServiceNetwork,
                    Some(SN.into()),
                )),
            ),
            (
                json!({"resourceIdentifier": foreign, "maxResults": "5"}),
                Ok(Target::Resource(ResourceKind::Service, None)),
            ),
            (json!({}), Err(vec!["resourceIdentifier"])),
            (
                json!({"resourceIdentifier": "tg-0123456789abcdef0"}),
                Err(vec!["resourceIdentifier"]),
            ),
        ];
        for (query, want) in cases {
            let input: ListAccessLogSubscriptionsInput =
                serde_json::from_value(query.clone()).unwrap();
            let got = input
                .validate(&c)
                .map_err(|e| e.fields.into_iter().map(|f| f.name).collect::<Vec<_>>());
            assert_eq!(
                got,
                want.map_err(|w| w.into_iter().map(String::from).collect()),
                "{query}"
            );
        }
    }
}
