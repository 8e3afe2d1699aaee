//! The CloudWatch Logs API subset Trellis hosts (`logs`, awsJson1_1, target prefix
//! `Logs_20140328`): log groups (configuration: store records of kind
//! [`trellis_snapshot`'s `logs-log-group`](LOG_GROUP_KIND), so every node and both backends see
//! them), log streams and events (the node's [`EventStore`]), retention, and FilterLogEvents with
//! [`crate::pattern`]s — what `aws logs filter-log-events` and `aws logs tail --follow` (which
//! polls FilterLogEvents) need.
//!
//! Every request is bounded: names by the model's lengths and patterns, `limit`s by the
//! model's ranges, a filter pattern to 1,024 bytes, PutLogEvents to 10,000 events of at most
//! 256 KiB each, and a FilterLogEvents call to scanning [`SCAN_MAX`] events (it answers a
//! `nextToken` to continue from).

use http::StatusCode;
use serde::{Deserialize, Serialize};
use trellis_model::Context;
use trellis_store::{Record, Store, StoreError};
use trellis_wire::{AwsError, Call, Operation, Protocol, Service, ServiceErrors};

use crate::events::{Cursor, EventStore, EventsError, Query, now_ms};
use crate::pattern;

/// Store kind of log groups (the data plane reads their names: `trellis_snapshot`).
pub const LOG_GROUP_KIND: &str = "logs-log-group";
/// Events a FilterLogEvents call reads at most before answering with a `nextToken`.
pub const SCAN_MAX: u32 = 10_000;
/// PutLogEvents: events per call, bytes per message.
pub const MAX_EVENTS: usize = 10_000;
pub const MAX_MESSAGE: usize = 256 * 1024;
/// Retention periods CloudWatch Logs accepts (the model's `Days`).
pub const RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// What the Logs handlers share: the caller's account (`ctx`, and `store` scoped to it — the
/// table derives both per request, [`LogsState::for_request`]) and the node's event store
/// (keyed by log-group ARN, so accounts never mix).
#[derive(Clone)]
pub struct LogsState {
    pub ctx: Context,
    pub store: Store,
    pub events: EventStore,
}

impl LogsState {
    /// The state of one request: its caller's account, from the [`Context`] the API's gate
    /// puts in the request. A request without one (refused by the table's authorization before
    /// any handler runs) acts for no account and sees no log group.
    pub fn for_request(&self, extensions: &http::Extensions) -> LogsState {
        let ctx = extensions
            .get::<Context>()
            .cloned()
            .unwrap_or_else(|| Context {
                account_id: String::new(),
                ..self.ctx.clone()
            });
        LogsState {
            store: self.store.unscoped().scoped(&ctx.account_id),
            ctx,
            events: self.events.clone(),
        }
    }
}

const SERVED: &[&str] = &[
    "CreateLogGroup",
    "DescribeLogGroups",
    "DeleteLogGroup",
    "PutRetentionPolicy",
    "DeleteRetentionPolicy",
    "CreateLogStream",
    "DescribeLogStreams",
    "DeleteLogStream",
    "PutLogEvents",
    "GetLogEvents",
    "FilterLogEvents",
];

pub static LOGS: Service = Service {
    id: "CloudWatch Logs",
    signing_name: "logs",
    endpoint_prefix: "logs",
    api_version: "2014-03-28",
    protocol: Protocol::AwsJson1_1,
    target_prefix: Some("Logs_20140328"),
    xml_namespace: None,
    path_prefixes: &[],
    errors: ServiceErrors {
        unknown_operation: |what| {
            LogsError::InvalidParameter(format!(
                "Trellis does not implement the operation {what}: of CloudWatch Logs it serves {}",
                SERVED.join(", ")
            ))
            .into()
        },
        bad_input: |m| LogsError::InvalidParameter(m).into(),
        internal_code: "ServiceUnavailableException",
        throttling_code: "ThrottlingException",
        too_large: |cap| {
            LogsError::InvalidParameter(format!("Request body exceeds {cap} bytes")).into()
        },
        common: &["AccessDeniedException"],
    },
};

const GROUP_ERRORS: &[&str] = &[
    "InvalidParameterException",
    "ResourceNotFoundException",
    "OperationAbortedException",
    "ServiceUnavailableException",
];

/// Every operation, for the front door's table.
pub fn operations() -> Vec<Operation<LogsState>> {
    vec![
        Operation::rpc(&LOGS, "CreateLogGroup", create_log_group).errors(&[
            "InvalidParameterException",
            "ResourceAlreadyExistsException",
            "LimitExceededException",
            "OperationAbortedException",
            "ServiceUnavailableException",
        ]),
        Operation::rpc(&LOGS, "DescribeLogGroups", describe_log_groups)
            .errors(&["InvalidParameterException", "ServiceUnavailableException"]),
        Operation::rpc(&LOGS, "DeleteLogGroup", delete_log_group).errors(&[
            "InvalidParameterException",
            "ResourceNotFoundException",
            "OperationAbortedException",
            "ServiceUnavailableException",
            "ValidationException",
        ]),
        Operation::rpc(&LOGS, "PutRetentionPolicy", put_retention_policy).errors(GROUP_ERRORS),
        Operation::rpc(&LOGS, "DeleteRetentionPolicy", delete_retention_policy)
            .errors(GROUP_ERRORS),
        Operation::rpc(&LOGS, "CreateLogStream", create_log_stream).errors(&[
            "InvalidParameterException",
            "ResourceAlreadyExistsException",
            "ResourceNotFoundException",
            "ServiceUnavailableException",
        ]),
        Operation::rpc(&LOGS, "DescribeLogStreams", describe_log_streams).errors(&[
            "InvalidParameterException",
            "ResourceNotFoundException",
            "ServiceUnavailableException",
        ]),
        Operation::rpc(&LOGS, "DeleteLogStream", delete_log_stream).errors(&[
            "InvalidParameterException",
            "ResourceNotFoundException",
            "OperationAbortedException",
            "ServiceUnavailableException",
            "ValidationException",
        ]),
        Operation::rpc(&LOGS, "PutLogEvents", put_log_events)
            .errors(&[
                "InvalidParameterException",
                "InvalidSequenceTokenException",
                "DataAlreadyAcceptedException",
                "ResourceNotFoundException",
                "ServiceUnavailableException",
                "UnrecognizedClientException",
            ])
            .body_cap(2 << 20, None),
        Operation::rpc(&LOGS, "GetLogEvents", get_log_events).errors(&[
            "InvalidParameterException",
            "ResourceNotFoundException",
            "ServiceUnavailableException",
        ]),
        Operation::rpc(&LOGS, "FilterLogEvents", filter_log_events).errors(&[
            "InvalidParameterException",
            "ResourceNotFoundException",
            "ServiceUnavailableException",
        ]),
    ]
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The Logs API's errors, classified once.
#[derive(Debug)]
pub enum LogsError {
    InvalidParameter(String),
    NotFound(String),
    AlreadyExists(String),
    Internal(String),
    /// The store is unavailable (HTTP 503, [`AwsError::unavailable`]).
    Unavailable(Box<AwsError>),
}

impl From<LogsError> for AwsError {
    fn from(e: LogsError) -> AwsError {
        match e {
            LogsError::InvalidParameter(m) => {
                AwsError::new("InvalidParameterException", StatusCode::BAD_REQUEST, m)
            }
            LogsError::NotFound(m) => {
                AwsError::new("ResourceNotFoundException", StatusCode::BAD_REQUEST, m)
            }
            LogsError::AlreadyExists(m) => {
                AwsError::new("ResourceAlreadyExistsException", StatusCode::BAD_REQUEST, m)
            }
            LogsError::Internal(detail) => {
                AwsError::internal("ServiceUnavailableException", detail)
            }
            LogsError::Unavailable(err) => *err,
        }
    }
}

impl From<StoreError> for LogsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => {
                LogsError::Unavailable(Box::new(AwsError::unavailable(m)))
            }
            StoreError::CommitUnknown(m) => {
                LogsError::Unavailable(Box::new(AwsError::outcome_unknown(m)))
            }
            e => LogsError::Internal(e.to_string()),
        }
    }
}

impl From<EventsError> for LogsError {
    fn from(e: EventsError) -> Self {
        LogsError::Internal(e.to_string())
    }
}

type LogsResult<T> = Result<T, LogsError>;

fn invalid<T>(m: impl Into<String>) -> LogsResult<T> {
    Err(LogsError::InvalidParameter(m.into()))
}

fn group_not_found() -> LogsError {
    LogsError::NotFound("The specified log group does not exist.".into())
}

// ---------------------------------------------------------------------------------------------
// Validation

/// `logGroupName`: 1–512 of `[.\-_/#A-Za-z0-9]`.
pub fn check_group_name(name: &str) -> LogsResult<()> {
    if name.is_empty() || name.len() > 512 {
        return invalid(format!(
            "1 validation error detected: Value '{name}' at 'logGroupName' failed to satisfy constraint: Member must have length between 1 and 512"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/' | b'#'))
    {
        return invalid(format!(
            "1 validation error detected: Value '{name}' at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
        ));
    }
    Ok(())
}

/// `logStreamName`: 1–512, no `:` or `*`.
pub fn check_stream_name(name: &str) -> LogsResult<()> {
    if name.is_empty() || name.len() > 512 || name.contains([':', '*']) {
        return invalid(format!(
            "1 validation error detected: Value '{name}' at 'logStreamName' failed to satisfy constraint: Member must have length between 1 and 512 and satisfy regular expression pattern: [^:*]*"
        ));
    }
    Ok(())
}

fn check_limit(limit: Option<i64>, max: u32, default: u32) -> LogsResult<u32> {
    match limit {
        None => Ok(default),
        Some(n) if n >= 1 && n <= i64::from(max) => Ok(n as u32),
        Some(n) => invalid(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {max}"
        )),
    }
}

/// The group a request names, by `logGroupName` or `logGroupIdentifier` (name or ARN).
fn group_ref(ctx: &Context, name: Option<&str>, identifier: Option<&str>) -> LogsResult<String> {
    match (name, identifier) {
        (Some(_), Some(_)) => {
            invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
        }
        (Some(n), None) => {
            check_group_name(n)?;
            Ok(n.to_string())
        }
        (None, Some(id)) => {
            let prefix = format!(
                "arn:{}:logs:{}:{}:log-group:",
                ctx.partition, ctx.region, ctx.account_id
            );
            let n = match id.strip_prefix(&prefix) {
                Some(n) => n.strip_suffix(":*").unwrap_or(n),
                None if id.starts_with("arn:") => return Err(group_not_found()),
                None => id,
            };
            check_group_name(n)?;
            Ok(n.to_string())
        }
        (None, None) => invalid("Either logGroupName or logGroupIdentifier is required."),
    }
}

// ---------------------------------------------------------------------------------------------
// Log groups

/// The stored log-group document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredLogGroup {
    pub log_group_name: String,
    pub creation_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_in_days: Option<u32>,
    /// Without the trailing `:*`: also the group's key in the event store.
    pub log_group_arn: String,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
}

/// The group's ARN as `LogGroup.arn` spells it (`…:log-group:NAME:*`).
pub fn group_arn(ctx: &Context, name: &str) -> String {
    format!(
        "arn:{}:logs:{}:{}:log-group:{name}",
        ctx.partition, ctx.region, ctx.account_id
    )
}

async fn load_group(
    tx: &mut trellis_store::Tx,
    name: &str,
) -> LogsResult<Option<(Record, StoredLogGroup)>> {
    let Some(rec) = tx.get_by_name(LOG_GROUP_KIND, None, name).await? else {
        return Ok(None);
    };
    let doc = serde_json::from_value(rec.body.clone())
        .map_err(|e| LogsError::Internal(format!("stored log group {name}: {e}")))?;
    Ok(Some((rec, doc)))
}

/// A group that must exist, read in its own read transaction.
async fn existing_group(s: &LogsState, name: &str) -> LogsResult<StoredLogGroup> {
    let mut tx = s.store.read().await?;
    let g = load_group(&mut tx, name).await?;
    let _ = tx.rollback().await;
    g.map(|(_, g)| g).ok_or_else(group_not_found)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateLogGroupInput {
    log_group_name: String,
    kms_key_id: Option<String>,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
    log_group_class: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Empty {}

async fn create_log_group(s: LogsState, input: CreateLogGroupInput, _: Call) -> LogsResult<Empty> {
    check_group_name(&input.log_group_name)?;
    if input.kms_key_id.is_some() {
        return invalid("Trellis does not encrypt log groups with KMS keys; omit kmsKeyId");
    }
    if let Some(class) = &input.log_group_class
        && class != "STANDARD"
    {
        return invalid(format!(
            "Trellis hosts STANDARD log groups only, not {class}"
        ));
    }
    if input.tags.len() > 50 {
        return invalid("A log group can have at most 50 tags");
    }
    if input
        .tags
        .iter()
        .any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > 256)
    {
        return invalid("Tag keys are 1 to 128 characters and tag values at most 256");
    }
    let arn = group_arn(&s.ctx, &input.log_group_name);
    let doc = StoredLogGroup {
        log_group_name: input.log_group_name.clone(),
        creation_time: now_ms(),
        retention_in_days: None,
        log_group_arn: arn.clone(),
        tags: input.tags,
    };
    let exists = || LogsError::AlreadyExists("The specified log group already exists".into());
    let mut tx = s.store.write().await?;
    if load_group(&mut tx, &input.log_group_name).await?.is_some() {
        return Err(exists());
    }
    // Events a delivery wrote after a group of this name was deleted are not this group's.
    s.events.delete_group(&arn).await?;
    let rec = Record {
        kind: LOG_GROUP_KIND.into(),
        id: arn.clone(),
        parent: None,
        name: Some(input.log_group_name.clone()),
        arn: Some(format!("{arn}:*")),
        refs: Vec::new(),
        body: serde_json::to_value(&doc).map_err(|e| LogsError::Internal(e.to_string()))?,
        seq: 0,
    };
    match tx.insert(&rec).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return Err(exists()),
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogGroupsInput {
    log_group_name_prefix: Option<String>,
    log_group_name_pattern: Option<String>,
    /// Names or ARNs (with or without `:*`); at most 50.
    log_group_identifiers: Option<Vec<String>>,
    next_token: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogGroupOut {
    log_group_name: String,
    creation_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    retention_in_days: Option<u32>,
    metric_filter_count: u32,
    arn: String,
    stored_bytes: i64,
    log_group_class: &'static str,
    log_group_arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogGroupsOutput {
    log_groups: Vec<LogGroupOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

async fn describe_log_groups(
    s: LogsState,
    input: DescribeLogGroupsInput,
    _: Call,
) -> LogsResult<DescribeLogGroupsOutput> {
    let limit = check_limit(input.limit, 50, 50)? as usize;
    if input.log_group_name_prefix.is_some() && input.log_group_name_pattern.is_some() {
        return invalid(
            "logGroupNamePrefix and logGroupNamePattern are mutually exclusive parameters.",
        );
    }
    if let Some(p) = &input.log_group_name_prefix {
        check_group_name(p)?;
    }
    if input
        .log_group_name_pattern
        .as_ref()
        .is_some_and(|p| p.len() > 512)
    {
        return invalid("logGroupNamePattern is at most 512 characters");
    }
    let identifiers = match &input.log_group_identifiers {
        Some(ids) if ids.is_empty() || ids.len() > 50 => {
            return invalid("logGroupIdentifiers must name between 1 and 50 log groups");
        }
        Some(_)
            if input.log_group_name_prefix.is_some() || input.log_group_name_pattern.is_some() =>
        {
            return invalid(
                "logGroupIdentifiers cannot be combined with logGroupNamePrefix or logGroupNamePattern.",
            );
        }
        Some(ids) => Some(
            ids.iter()
                .map(|id| {
                    let id = id.strip_suffix(":*").unwrap_or(id);
                    match id.split_once(":log-group:") {
                        Some(_) => id.to_string(),
                        None => group_arn(&s.ctx, id),
                    }
                })
                .collect::<Vec<String>>(),
        ),
        None => None,
    };
    let mut tx = s.store.read().await?;
    let records = tx.list(LOG_GROUP_KIND, None).await?;
    let _ = tx.rollback().await;
    let mut groups: Vec<StoredLogGroup> = records
        .into_iter()
        .filter_map(|r| serde_json::from_value(r.body).ok())
        .filter(|g: &StoredLogGroup| {
            input
                .log_group_name_prefix
                .as_deref()
                .is_none_or(|p| g.log_group_name.starts_with(p))
                && input
                    .log_group_name_pattern
                    .as_deref()
                    .is_none_or(|p| g.log_group_name.to_lowercase().contains(&p.to_lowercase()))
                && identifiers
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&g.log_group_arn))
                && input
                    .next_token
                    .as_deref()
                    .is_none_or(|after| g.log_group_name.as_str() > after)
        })
        .collect();
    groups.sort_by(|a, b| a.log_group_name.cmp(&b.log_group_name));
    let next_token = (groups.len() > limit).then(|| groups[limit - 1].log_group_name.clone());
    groups.truncate(limit);
    let mut log_groups = Vec::with_capacity(groups.len());
    for g in groups {
        log_groups.push(LogGroupOut {
            stored_bytes: s.events.stored_bytes(&g.log_group_arn).await?,
            arn: format!("{}:*", g.log_group_arn),
            log_group_name: g.log_group_name,
            creation_time: g.creation_time,
            retention_in_days: g.retention_in_days,
            metric_filter_count: 0,
            log_group_class: "STANDARD",
            log_group_arn: g.log_group_arn,
        });
    }
    Ok(DescribeLogGroupsOutput {
        log_groups,
        next_token,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupNameInput {
    log_group_name: String,
}

async fn delete_log_group(s: LogsState, input: GroupNameInput, _: Call) -> LogsResult<Empty> {
    check_group_name(&input.log_group_name)?;
    let mut tx = s.store.write().await?;
    let (rec, doc) = load_group(&mut tx, &input.log_group_name)
        .await?
        .ok_or_else(group_not_found)?;
    tx.delete(LOG_GROUP_KIND, &rec.id).await?;
    tx.commit().await?;
    s.events.delete_group(&doc.log_group_arn).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRetentionPolicyInput {
    log_group_name: String,
    retention_in_days: i64,
}

async fn set_retention(s: &LogsState, name: &str, days: Option<u32>) -> LogsResult<()> {
    check_group_name(name)?;
    let mut tx = s.store.write().await?;
    let (mut rec, mut doc) = load_group(&mut tx, name)
        .await?
        .ok_or_else(group_not_found)?;
    doc.retention_in_days = days;
    rec.body = serde_json::to_value(&doc).map_err(|e| LogsError::Internal(e.to_string()))?;
    tx.update(&rec).await?;
    tx.commit().await?;
    Ok(())
}

async fn put_retention_policy(
    s: LogsState,
    input: PutRetentionPolicyInput,
    _: Call,
) -> LogsResult<Empty> {
    let days = u32::try_from(input.retention_in_days)
        .ok()
        .filter(|d| RETENTION_DAYS.contains(d));
    let Some(days) = days else {
        return invalid(format!(
            "1 validation error detected: Value '{}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: {:?}",
            input.retention_in_days, RETENTION_DAYS
        ));
    };
    set_retention(&s, &input.log_group_name, Some(days)).await?;
    Ok(Empty {})
}

async fn delete_retention_policy(
    s: LogsState,
    input: GroupNameInput,
    _: Call,
) -> LogsResult<Empty> {
    set_retention(&s, &input.log_group_name, None).await?;
    Ok(Empty {})
}

// ---------------------------------------------------------------------------------------------
// Streams

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamInput {
    log_group_name: String,
    log_stream_name: String,
}

async fn create_log_stream(s: LogsState, input: StreamInput, _: Call) -> LogsResult<Empty> {
    check_group_name(&input.log_group_name)?;
    check_stream_name(&input.log_stream_name)?;
    let g = existing_group(&s, &input.log_group_name).await?;
    if !s
        .events
        .create_stream(&g.log_group_arn, &input.log_stream_name)
        .await?
    {
        return Err(LogsError::AlreadyExists(
            "The specified log stream already exists".into(),
        ));
    }
    Ok(Empty {})
}

async fn delete_log_stream(s: LogsState, input: StreamInput, _: Call) -> LogsResult<Empty> {
    check_group_name(&input.log_group_name)?;
    check_stream_name(&input.log_stream_name)?;
    let g = existing_group(&s, &input.log_group_name).await?;
    if !s
        .events
        .delete_stream(&g.log_group_arn, &input.log_stream_name)
        .await?
    {
        return Err(LogsError::NotFound(
            "The specified log stream does not exist.".into(),
        ));
    }
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogStreamsInput {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name_prefix: Option<String>,
    order_by: Option<String>,
    descending: Option<bool>,
    next_token: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogStreamOut {
    log_stream_name: String,
    creation_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_event_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_event_timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_ingestion_time: Option<i64>,
    arn: String,
    stored_bytes: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeLogStreamsOutput {
    log_streams: Vec<LogStreamOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

async fn describe_log_streams(
    s: LogsState,
    input: DescribeLogStreamsInput,
    _: Call,
) -> LogsResult<DescribeLogStreamsOutput> {
    let name = group_ref(
        &s.ctx,
        input.log_group_name.as_deref(),
        input.log_group_identifier.as_deref(),
    )?;
    let limit = check_limit(input.limit, 50, 50)?;
    match input.order_by.as_deref() {
        None | Some("LogStreamName") => {}
        Some("LastEventTime") if input.log_stream_name_prefix.is_none() => {}
        Some("LastEventTime") => {
            return invalid("Cannot order by LastEventTime with a logStreamNamePrefix.");
        }
        Some(other) => return invalid(format!("Unknown orderBy value {other}")),
    }
    if let Some(p) = &input.log_stream_name_prefix {
        check_stream_name(p)?;
    }
    if input.next_token.as_ref().is_some_and(|t| t.len() > 512) {
        return invalid("The specified nextToken is invalid.");
    }
    let g = existing_group(&s, &name).await?;
    let mut streams = s
        .events
        .streams(
            &g.log_group_arn,
            input.log_stream_name_prefix.as_deref(),
            input.next_token.as_deref(),
            limit + 1,
        )
        .await?;
    let next_token =
        (streams.len() > limit as usize).then(|| streams[limit as usize - 1].name.clone());
    streams.truncate(limit as usize);
    if input.order_by.as_deref() == Some("LastEventTime") {
        streams.sort_by_key(|s| s.last_event);
    }
    if input.descending == Some(true) {
        streams.reverse();
    }
    Ok(DescribeLogStreamsOutput {
        log_streams: streams
            .into_iter()
            .map(|st| LogStreamOut {
                arn: format!("{}:log-stream:{}", g.log_group_arn, st.name),
                log_stream_name: st.name,
                creation_time: st.creation_time,
                first_event_timestamp: st.first_event,
                last_event_timestamp: st.last_event,
                last_ingestion_time: st.last_ingestion,
                stored_bytes: st.stored_bytes,
            })
            .collect(),
        next_token,
    })
}

// ---------------------------------------------------------------------------------------------
// Events

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputLogEvent {
    timestamp: i64,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutLogEventsInput {
    log_group_name: String,
    log_stream_name: String,
    log_events: Vec<InputLogEvent>,
    #[allow(dead_code)]
    sequence_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PutLogEventsOutput {
    next_sequence_token: String,
}

async fn put_log_events(
    s: LogsState,
    input: PutLogEventsInput,
    _: Call,
) -> LogsResult<PutLogEventsOutput> {
    check_group_name(&input.log_group_name)?;
    check_stream_name(&input.log_stream_name)?;
    if input.log_events.is_empty() || input.log_events.len() > MAX_EVENTS {
        return invalid(format!(
            "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length between 1 and {MAX_EVENTS}"
        ));
    }
    if let Some(big) = input
        .log_events
        .iter()
        .position(|e| e.message.len() > MAX_MESSAGE)
    {
        return invalid(format!(
            "Log event {big} is larger than {MAX_MESSAGE} bytes"
        ));
    }
    if input
        .log_events
        .windows(2)
        .any(|w| w[1].timestamp < w[0].timestamp)
    {
        return invalid(
            "Log events in a single PutLogEvents request must be in chronological order.",
        );
    }
    let g = existing_group(&s, &input.log_group_name).await?;
    if !s
        .events
        .stream_exists(&g.log_group_arn, &input.log_stream_name)
        .await?
    {
        return Err(LogsError::NotFound(
            "The specified log stream does not exist.".into(),
        ));
    }
    let events: Vec<(i64, &str)> = input
        .log_events
        .iter()
        .map(|e| (e.timestamp, e.message.as_str()))
        .collect();
    s.events
        .put(&g.log_group_arn, &input.log_stream_name, &events, false)
        .await?;
    Ok(PutLogEventsOutput {
        // Sequence tokens are ignored, as CloudWatch Logs now does.
        next_sequence_token: format!("{:056}", now_ms()),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogEventsInput {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name: String,
    start_time: Option<i64>,
    end_time: Option<i64>,
    next_token: Option<String>,
    limit: Option<i64>,
    start_from_head: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputLogEvent {
    timestamp: i64,
    message: String,
    ingestion_time: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogEventsOutput {
    events: Vec<OutputLogEvent>,
    next_forward_token: String,
    next_backward_token: String,
}

/// GetLogEvents' tokens: `f/<ts>_<id>` (forward) and `b/<ts>_<id>` (backward).
fn parse_token(t: &str) -> LogsResult<(bool, Cursor)> {
    let bad = || LogsError::InvalidParameter("The specified nextToken is invalid.".into());
    let (dir, rest) = t.split_once('/').ok_or_else(bad)?;
    let c = Cursor::decode(rest).ok_or_else(bad)?;
    match dir {
        "f" => Ok((false, c)),
        "b" => Ok((true, c)),
        _ => Err(bad()),
    }
}

async fn get_log_events(
    s: LogsState,
    input: GetLogEventsInput,
    _: Call,
) -> LogsResult<GetLogEventsOutput> {
    let name = group_ref(
        &s.ctx,
        input.log_group_name.as_deref(),
        input.log_group_identifier.as_deref(),
    )?;
    check_stream_name(&input.log_stream_name)?;
    let limit = check_limit(input.limit, 10_000, 10_000)?;
    let token = input.next_token.as_deref().map(parse_token).transpose()?;
    let g = existing_group(&s, &name).await?;
    if !s
        .events
        .stream_exists(&g.log_group_arn, &input.log_stream_name)
        .await?
    {
        return Err(LogsError::NotFound(
            "The specified log stream does not exist.".into(),
        ));
    }
    let backwards = match token {
        Some((b, _)) => b,
        None => input.start_from_head != Some(true),
    };
    let streams = [input.log_stream_name.clone()];
    let mut events = s
        .events
        .read(&Query {
            group: &g.log_group_arn,
            streams: &streams,
            stream_prefix: None,
            start: input.start_time,
            end: input.end_time,
            after: token.map(|(_, c)| c),
            backwards,
            limit,
        })
        .await?;
    if backwards {
        events.reverse();
    }
    let cursor = |e: &crate::events::Event| Cursor {
        timestamp: e.timestamp,
        id: e.id,
    };
    // With no events, the tokens stay where the caller was (so polling continues from there).
    let here = token.map(|(_, c)| c).unwrap_or(Cursor {
        timestamp: if backwards { i64::MAX } else { i64::MIN },
        id: if backwards { i64::MAX } else { 0 },
    });
    let forward = events.last().map(cursor).unwrap_or(here);
    let backward = events.first().map(cursor).unwrap_or(here);
    Ok(GetLogEventsOutput {
        next_forward_token: format!("f/{}", forward.encode()),
        next_backward_token: format!("b/{}", backward.encode()),
        events: events
            .into_iter()
            .map(|e| OutputLogEvent {
                timestamp: e.timestamp,
                message: e.message,
                ingestion_time: e.ingestion_time,
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterLogEventsInput {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    #[serde(default)]
    log_stream_names: Vec<String>,
    log_stream_name_prefix: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilteredLogEvent {
    log_stream_name: String,
    timestamp: i64,
    message: String,
    ingestion_time: i64,
    event_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchedLogStream {
    log_stream_name: String,
    searched_completely: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterLogEventsOutput {
    events: Vec<FilteredLogEvent>,
    searched_log_streams: Vec<SearchedLogStream>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

async fn filter_log_events(
    s: LogsState,
    input: FilterLogEventsInput,
    _: Call,
) -> LogsResult<FilterLogEventsOutput> {
    let name = group_ref(
        &s.ctx,
        input.log_group_name.as_deref(),
        input.log_group_identifier.as_deref(),
    )?;
    if !input.log_stream_names.is_empty() && input.log_stream_name_prefix.is_some() {
        return invalid(
            "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
        );
    }
    if input.log_stream_names.len() > 100 {
        return invalid("At most 100 logStreamNames may be given.");
    }
    for n in &input.log_stream_names {
        check_stream_name(n)?;
    }
    if let Some(p) = &input.log_stream_name_prefix {
        check_stream_name(p)?;
    }
    let limit = check_limit(input.limit, 10_000, 10_000)?;
    let pattern = pattern::parse(input.filter_pattern.as_deref().unwrap_or(""))
        .map_err(|e| LogsError::InvalidParameter(e.to_string()))?;
    let after = match input.next_token.as_deref() {
        None => None,
        Some(t) => Some(Cursor::decode(t).ok_or_else(|| {
            LogsError::InvalidParameter("The specified nextToken is invalid.".into())
        })?),
    };
    let g = existing_group(&s, &name).await?;
    let mut out = Vec::new();
    let mut cursor = after;
    let mut scanned = 0u32;
    let mut exhausted = false;
    const PAGE: u32 = 1_000;
    while out.len() < limit as usize && scanned < SCAN_MAX {
        let page = s
            .events
            .read(&Query {
                group: &g.log_group_arn,
                streams: &input.log_stream_names,
                stream_prefix: input.log_stream_name_prefix.as_deref(),
                start: input.start_time,
                // FilterLogEvents includes events at `endTime`; GetLogEvents excludes them.
                end: input.end_time.map(|t| t.saturating_add(1)),
                after: cursor,
                backwards: false,
                limit: PAGE,
            })
            .await?;
        let n = page.len() as u32;
        for e in page {
            scanned += 1;
            cursor = Some(Cursor {
                timestamp: e.timestamp,
                id: e.id,
            });
            if pattern.matches(&e.message) {
                out.push(FilteredLogEvent {
                    event_id: format!("{:020}", e.id),
                    log_stream_name: e.stream,
                    timestamp: e.timestamp,
                    message: e.message,
                    ingestion_time: e.ingestion_time,
                });
                if out.len() == limit as usize {
                    break;
                }
            }
        }
        if n < PAGE {
            exhausted = out.len() < limit as usize || scanned == 0;
            break;
        }
    }
    let mut names: Vec<String> = out.iter().map(|e| e.log_stream_name.clone()).collect();
    names.sort();
    names.dedup();
    Ok(FilterLogEventsOutput {
        searched_log_streams: names
            .into_iter()
            .map(|log_stream_name| SearchedLogStream {
                log_stream_name,
                searched_completely: exhausted,
            })
            .collect(),
        events: out,
        next_token: if exhausted {
            None
        } else {
            cursor.map(|c| c.encode())
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Retention

/// Deletes expired events (each group's `retentionInDays`) and the events of groups that no
/// longer exist, every `every`. Runs until the process ends.
pub async fn enforce_retention(store: Store, events: EventStore, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(e) = retention_round(&store, &events).await {
            tracing::warn!(error = ?e, "log retention round failed");
        }
    }
}

/// One round of [`enforce_retention`].
pub async fn retention_round(store: &Store, events: &EventStore) -> LogsResult<()> {
    let mut tx = store.read().await?;
    let records = tx.list(LOG_GROUP_KIND, None).await?;
    let _ = tx.rollback().await;
    let groups: Vec<StoredLogGroup> = records
        .into_iter()
        .filter_map(|r| serde_json::from_value(r.body).ok())
        .collect();
    let now = now_ms();
    for g in &groups {
        if let Some(days) = g.retention_in_days {
            let n = events
                .expire(&g.log_group_arn, now - i64::from(days) * 86_400_000)
                .await?;
            if n > 0 {
                tracing::debug!(group = %g.log_group_name, events = n, "expired log events");
            }
        }
    }
    for key in events.groups().await? {
        if !groups.iter().any(|g| g.log_group_arn == key) {
            events.delete_group(&key).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            partition: "aws".into(),
            region: "us-west-2".into(),
            account_id: "111122223333".into(),
        }
    }

    #[test]
    fn name_checks_table() {
        let long = "a".repeat(513);
        for (name, ok) in [
            ("/aws/vpclattice/x", true),
            ("a.b-c_d#e", true),
            ("", false),
            ("has space", false),
            ("colon:no", false),
            (long.as_str(), false),
        ] {
            assert_eq!(check_group_name(name).is_ok(), ok, "group {name:?}");
        }
        for (name, ok) in [
            ("svc-1", true),
            ("a/b c", true),
            ("", false),
            ("a:b", false),
            ("a*", false),
        ] {
            assert_eq!(check_stream_name(name).is_ok(), ok, "stream {name:?}");
        }
    }

    #[test]
    fn limit_table() {
        for (limit, max, want) in [
            (None, 50, Some(50)),
            (Some(1), 50, Some(1)),
            (Some(50), 50, Some(50)),
            (Some(0), 50, None),
            (Some(51), 50, None),
            (Some(-1), 10_000, None),
            (Some(10_000), 10_000, Some(10_000)),
        ] {
            assert_eq!(check_limit(limit, max, max).ok(), want, "{limit:?}");
        }
    }

    #[test]
    fn group_ref_table() {
        let arn = "arn:aws:logs:us-west-2:111122223333:log-group:/g";
        let star = format!("{arn}:*");
        for (name, id, want) in [
            (Some("/g"), None, Ok("/g")),
            (None, Some("/g"), Ok("/g")),
            (None, Some(arn), Ok("/g")),
            (None, Some(star.as_str()), Ok("/g")),
            (
                None,
                Some("arn:aws:logs:eu-west-1:111122223333:log-group:/g"),
                Err("ResourceNotFoundException"),
            ),
            (Some("/g"), Some("/g"), Err("InvalidParameterException")),
            (None, None, Err("InvalidParameterException")),
        ] {
            let got = group_ref(&ctx(), name, id).map_err(|e| AwsError::from(e).code);
            assert_eq!(
                got.as_deref().map_err(String::as_str),
                want,
                "{name:?} {id:?}"
            );
        }
    }

    #[test]
    fn get_log_events_tokens_round_trip() {
        let c = Cursor {
            timestamp: 1_700_000_000_000,
            id: 42,
        };
        assert_eq!(
            parse_token(&format!("f/{}", c.encode())).unwrap(),
            (false, c)
        );
        assert_eq!(
            parse_token(&format!("b/{}", c.encode())).unwrap(),
            (true, c)
        );
        for bad in ["", "f/", "x/1_2", "f/1", "f/a_b"] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }
}
