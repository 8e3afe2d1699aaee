//! Access-log subscriptions: Create/Get/List/Update/DeleteAccessLogSubscription.
//!
//! A subscription names a service network or service and a destination (CloudWatch Logs log
//! group, S3 bucket or Firehose delivery stream ARN). Trellis stores it now; delivering the
//! records is the telemetry sinks' job and reads these documents. A resource may have one
//! subscription per destination type (and, for service networks, per log type).

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
use trellis_model::resources::access_log::{
    AccessLogSubscription, DESTINATION_ARN_PATTERN, DestinationType, SERVICE_NETWORK_LOG_TYPES,
    destination_type, is_destination_arn,
};
use trellis_model::{Checks, Context, ResourceKind, Timestamp, ValidationError};
use trellis_store::Tx;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::wire::{
    Idempotency, NewRecord, Page, QueryParams, body_value, doc, list_reply, load_doc, no_content,
    parse_body, reply, set_doc,
};

const KIND: ResourceKind = ResourceKind::AccessLogSubscription;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/accesslogsubscriptions", get(list).post(create))
        .route(
            "/accesslogsubscriptions/{id}",
            get(read).patch(update).delete(delete),
        )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    resource_identifier: Option<String>,
    destination_arn: Option<String>,
    service_network_log_type: Option<String>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct UpdateRequest {
    destination_arn: Option<String>,
}

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
    target: Target,
    destination_type: DestinationType,
    log_type: Option<String>,
}

fn validate_create(ctx: &Context, req: &CreateRequest) -> Result<NewSubscription, ValidationError> {
    let mut c = Checks::new();
    let target = check_resource(&mut c, ctx, req.resource_identifier.as_deref());
    let dest = check_destination(&mut c, req.destination_arn.as_deref());
    let mut log_type = None;
    if let Some(t) = &req.service_network_log_type
        && c.one_of("serviceNetworkLogType", t, &SERVICE_NETWORK_LOG_TYPES)
    {
        log_type = Some(t.clone());
    }
    match &target {
        Some(Target::Resource(ResourceKind::ServiceNetwork, _)) => {
            // SERVICE is what a service-network subscription receives unless RESOURCE is asked for.
            log_type.get_or_insert_with(|| "SERVICE".to_string());
        }
        Some(_) if req.service_network_log_type.is_some() => c.fail(
            "serviceNetworkLogType",
            "serviceNetworkLogType can only be specified for service network subscriptions",
        ),
        _ => {}
    }
    c.tags("tags", &req.tags);
    c.finish()?;
    match (target, dest) {
        (Some(target), Some(destination_type)) => Ok(NewSubscription {
            target,
            destination_type,
            log_type,
        }),
        _ => unreachable_validation(),
    }
}

/// Checks passed, so both members were classified; kept as an error rather than a panic.
fn unreachable_validation<T>() -> Result<T, ValidationError> {
    Err(ValidationError::other("request could not be validated"))
}

fn validate_update(req: &UpdateRequest) -> Result<DestinationType, ValidationError> {
    let mut c = Checks::new();
    let dest = check_destination(&mut c, req.destination_arn.as_deref());
    c.finish()?;
    dest.map_or_else(unreachable_validation, Ok)
}

fn view(a: &AccessLogSubscription, timestamps: bool) -> Value {
    let mut v = json!({
        "id": a.id, "arn": a.arn, "resourceId": a.resource_id, "resourceArn": a.resource_arn,
        "destinationArn": a.destination_arn,
    });
    if let Some(t) = &a.service_network_log_type {
        v["serviceNetworkLogType"] = json!(t);
    }
    if timestamps {
        v["createdAt"] = json!(a.created_at);
        v["lastUpdatedAt"] = json!(a.last_updated_at);
    }
    v
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

pub(crate) async fn create(State(s): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let raw = body_value(&body)?;
    let req: CreateRequest = parse_body(&body)?;
    let input = validate_create(&s.ctx, &req)?;
    let ident = req.resource_identifier.clone().unwrap_or_default();
    let (kind, resource_id) = match input.target {
        Target::Resource(kind, Some(id)) => (kind, id),
        Target::Resource(kind, None) => return Err(ApiError::not_found(kind, &ident)),
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
        req.client_token.as_deref(),
        &raw,
    )?;

    let mut tx = s.store.write().await?;
    if let Some((status, body)) = idem.replay(&mut tx, KIND).await? {
        return Ok(reply(status, body));
    }
    let resource = tx
        .get(kind.store_kind(), &resource_id)
        .await?
        .ok_or_else(|| ApiError::not_found(kind, &ident))?;
    let resource_arn = resource
        .arn
        .clone()
        .unwrap_or_else(|| s.ctx.top_level_arn(kind, &resource_id));
    if let Some(existing) = same_type_subscription(
        &mut tx,
        &resource_id,
        input.log_type.as_deref(),
        input.destination_type,
        None,
    )
    .await?
    {
        return Err(ApiError::conflict(
            KIND,
            &existing.id,
            conflict_message(&resource_id, input.destination_type, &existing),
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
        destination_arn: req.destination_arn.clone().unwrap_or_default(),
        service_network_log_type: input.log_type,
        created_at: now,
        last_updated_at: now,
        tags: req.tags,
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
    let out = view(&sub, false);
    idem.finish(tx, StatusCode::CREATED, out).await
}

pub(crate) async fn read(
    State(s): State<AppState>,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.store.read().await?;
    let (_, sub) = load_doc::<AccessLogSubscription>(
        &mut tx,
        &s.ctx,
        KIND,
        "accessLogSubscriptionIdentifier",
        &ident,
    )
    .await?;
    Ok(reply(StatusCode::OK, view(&sub, true)))
}

pub(crate) async fn list(State(s): State<AppState>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = QueryParams::parse(q.as_deref());
    let mut c = Checks::new();
    let target = check_resource(&mut c, &s.ctx, q.get("resourceIdentifier"));
    c.finish()?;
    let page = Page::from_query(&q)?;
    let mut tx = s.store.read().await?;
    // A resource that is not (or no longer) here simply has no subscriptions: the operation
    // does not model ResourceNotFoundException.
    let all = match target {
        Some(Target::Resource(_, Some(id))) => tx.list(KIND.store_kind(), Some(&id)).await?,
        _ => vec![],
    };
    let (records, next) = page.apply(all);
    let items = records
        .iter()
        .map(|r| doc::<AccessLogSubscription>(r).map(|a| view(&a, true)))
        .collect::<ApiResult<_>>()?;
    Ok(list_reply(items, next))
}

pub(crate) async fn update(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: UpdateRequest = parse_body(&body)?;
    let dest = validate_update(&req)?;
    let mut tx = s.store.write().await?;
    let (mut rec, mut sub) = load_doc::<AccessLogSubscription>(
        &mut tx,
        &s.ctx,
        KIND,
        "accessLogSubscriptionIdentifier",
        &ident,
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
    sub.destination_arn = req.destination_arn.unwrap_or_default();
    sub.last_updated_at = Timestamp::now();
    set_doc(&mut rec, &sub)?;
    tx.update(&rec).await?;
    tx.commit().await?;
    let mut out = view(&sub, false);
    // UpdateAccessLogSubscriptionResponse has no serviceNetworkLogType member.
    if let Value::Object(m) = &mut out {
        m.remove("serviceNetworkLogType");
    }
    Ok(reply(StatusCode::OK, out))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.store.write().await?;
    let (rec, _) = load_doc::<AccessLogSubscription>(
        &mut tx,
        &s.ctx,
        KIND,
        "accessLogSubscriptionIdentifier",
        &ident,
    )
    .await?;
    tx.delete(KIND.store_kind(), &rec.id).await?;
    tx.commit().await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

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
            let req: CreateRequest = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(names(validate_create(&c, &req).map(|_| ())), want, "{body}");
        }
    }

    #[test]
    fn log_type_defaults_to_service_for_networks_only() {
        let c = ctx();
        let req: CreateRequest =
            serde_json::from_value(json!({"resourceIdentifier": SN, "destinationArn": LOGS}))
                .unwrap();
        assert_eq!(
            validate_create(&c, &req).unwrap().log_type.as_deref(),
            Some("SERVICE")
        );
        let req: CreateRequest =
            serde_json::from_value(json!({"resourceIdentifier": SVC, "destinationArn": LOGS}))
                .unwrap();
        let v = validate_create(&c, &req).unwrap();
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
            let req: UpdateRequest = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(names(validate_update(&req).map(|_| ())), want, "{body}");
        }
    }
}
