//! The Resource Groups Tagging API (`tagging/2017-01-26`, awsJson1_1) over every taggable VPC
//! Lattice resource Trellis stores (service networks, services, listeners, rules, target groups,
//! both kinds of association and access-log subscriptions), so that
//! `aws resourcegroupstaggingapi get-resources --tag-filters …` finds Trellis resources.
//!
//! The tags are the ones Lattice's TagResource writes (each record body's top-level `tags`, see
//! [`crate::tags`]) and are changed by the same rule ([`tags::add_tags`], [`tags::remove_tags`]):
//! the same validation, the same 50-tag limit. A TagResources or UntagResources call is one store
//! transaction, committed (one revision) only when it changed a tag. ARNs that cannot be tagged
//! here are reported in `FailedResourcesMap` and do not stop the others, as AWS does.
//!
//! Where AWS is vague, docs/decisions.md records what Trellis answers (ComplianceDetails,
//! resource-type names, which resources GetResources lists, page sizes, token lifetime).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use trellis_model::arn::Arn;
use trellis_model::resources::Tags;
use trellis_model::{Checks, Context, ResourceKind, ValidationError};
use trellis_store::{Record, StoreError, Tx};
use trellis_wire::{AwsError, Call, Operation, Protocol, Service, ServiceErrors};

use crate::AppState;
use crate::error::ApiError;
use crate::tags;

/// The Resource Groups Tagging API as the front door knows it.
pub static TAGGING: Service = Service {
    id: "Resource Groups Tagging API",
    signing_name: "tagging",
    endpoint_prefix: "tagging",
    api_version: "2017-01-26",
    protocol: Protocol::AwsJson1_1,
    target_prefix: Some("ResourceGroupsTaggingAPI_20170126"),
    xml_namespace: None,
    path_prefixes: &[],
    errors: ServiceErrors {
        unknown_operation: |what| {
            TaggingError::InvalidParameter(format!(
                "Trellis does not implement the operation {what}: of the Resource Groups Tagging API it serves {}",
                SERVED.join(", ")
            ))
            .into()
        },
        bad_input: |m| TaggingError::InvalidParameter(m).into(),
        internal_code: "InternalServiceException",
        throttling_code: "ThrottledException",
        too_large: |cap| {
            TaggingError::InvalidParameter(format!("Request body exceeds {cap} bytes")).into()
        },
        // Identity-based authorization refuses any operation with it.
        common: &["AccessDeniedException"],
    },
};

/// The operations Trellis serves, named in the answer to the others.
const SERVED: &[&str] = &[
    "GetResources",
    "GetTagKeys",
    "GetTagValues",
    "TagResources",
    "UntagResources",
];

const READ_ERRORS: &[&str] = &[
    "InvalidParameterException",
    "ThrottledException",
    "InternalServiceException",
    "PaginationTokenExpiredException",
];
const WRITE_ERRORS: &[&str] = &[
    "InvalidParameterException",
    "ThrottledException",
    "InternalServiceException",
];

/// Every Tagging API operation Trellis serves.
pub fn operations() -> Vec<Operation<AppState>> {
    vec![
        Operation::rpc(&TAGGING, "GetResources", get_resources).errors(READ_ERRORS),
        Operation::rpc(&TAGGING, "GetTagKeys", get_tag_keys).errors(READ_ERRORS),
        Operation::rpc(&TAGGING, "GetTagValues", get_tag_values).errors(READ_ERRORS),
        Operation::rpc(&TAGGING, "TagResources", tag_resources).errors(WRITE_ERRORS),
        Operation::rpc(&TAGGING, "UntagResources", untag_resources).errors(WRITE_ERRORS),
    ]
}

/// GetResources' page size when `ResourcesPerPage` is absent (its largest allowed value).
pub const DEFAULT_RESOURCES_PER_PAGE: usize = 100;
/// Tag keys or values per page of GetTagKeys and GetTagValues (the model has no page size).
pub const VALUES_PER_PAGE: usize = 500;
/// How long a pagination token stays valid, as AWS documents for PaginationTokenExpiredException.
pub const TOKEN_LIFETIME_SECS: u64 = 15 * 60;
/// A ResourceARN's length (the model's `ResourceARN`).
const ARN_MAX: usize = 1011;

/// Lattice resource types AWS has and Trellis does not store: a type filter naming one is valid
/// and matches nothing.
const LATTICE_TYPES_NOT_STORED: &[&str] = &[
    "resourceconfiguration",
    "resourcegateway",
    "servicenetworkresourceassociation",
    "resourceendpointassociation",
    "domainverification",
];

// ---------------------------------------------------------------------------------------------
// Errors

/// The Tagging API's errors, classified once.
#[derive(Debug)]
pub enum TaggingError {
    /// A missing, malformed or out-of-range parameter (HTTP 400).
    InvalidParameter(String),
    /// A pagination token older than [`TOKEN_LIFETIME_SECS`] (HTTP 400).
    PaginationTokenExpired(String),
    /// Anything else: logged with the request ID, answered generically (HTTP 500).
    Internal(String),
    /// The store is unavailable (HTTP 503, [`AwsError::unavailable`]).
    Unavailable(Box<AwsError>),
}

impl From<TaggingError> for AwsError {
    fn from(e: TaggingError) -> AwsError {
        let err = match e {
            TaggingError::InvalidParameter(m) => {
                AwsError::new("InvalidParameterException", StatusCode::BAD_REQUEST, m)
            }
            TaggingError::PaginationTokenExpired(m) => AwsError::new(
                "PaginationTokenExpiredException",
                StatusCode::BAD_REQUEST,
                m,
            ),
            TaggingError::Internal(detail) => {
                AwsError::internal("InternalServiceException", detail)
            }
            TaggingError::Unavailable(err) => *err,
        };
        // The model's exceptions spell their one member `Message`.
        err.with_message_member("Message")
    }
}

impl From<ValidationError> for TaggingError {
    /// The Tagging API's errors have no `fieldList`, so the message names every failing member.
    fn from(v: ValidationError) -> TaggingError {
        if v.fields.is_empty() {
            return TaggingError::InvalidParameter(v.message);
        }
        let n = v.fields.len();
        let parts: Vec<String> = v
            .fields
            .into_iter()
            .map(|f| {
                if f.message.contains(&format!("'{}'", f.name)) {
                    f.message
                } else {
                    format!("'{}': {}", f.name, f.message)
                }
            })
            .collect();
        TaggingError::InvalidParameter(format!(
            "{n} validation error{} detected: {}",
            if n == 1 { "" } else { "s" },
            parts.join("; ")
        ))
    }
}

impl From<ApiError> for TaggingError {
    fn from(e: ApiError) -> TaggingError {
        match e {
            ApiError::Validation(v) => v.into(),
            ApiError::Internal(detail) => TaggingError::Internal(detail),
            ApiError::Unavailable(err) => TaggingError::Unavailable(err),
            other => TaggingError::Internal(format!("{}: {}", other.code(), other.body())),
        }
    }
}

impl From<StoreError> for TaggingError {
    fn from(e: StoreError) -> TaggingError {
        ApiError::from(e).into()
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes

/// `Tag`: one key and value of a `TagList`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// `ResourceTagMapping` (Trellis reports no `ComplianceDetails`: it has no tag policies).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceTagMapping {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    pub tags: Vec<Tag>,
}

impl ResourceTagMapping {
    fn new(arn: String, tags: &Tags) -> ResourceTagMapping {
        ResourceTagMapping {
            resource_arn: arn,
            tags: tags
                .iter()
                .map(|(k, v)| Tag {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcesOutput {
    /// Empty when there are no more pages, as AWS answers.
    pub pagination_token: String,
    pub resource_tag_mapping_list: Vec<ResourceTagMapping>,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTagKeysOutput {
    pub pagination_token: String,
    pub tag_keys: Vec<String>,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTagValuesOutput {
    pub pagination_token: String,
    pub tag_values: Vec<String>,
}

/// `FailureInfo`: why one resource of a TagResources/UntagResources call was not changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailureInfo {
    pub status_code: u16,
    pub error_code: &'static str,
    pub error_message: String,
}

impl FailureInfo {
    fn invalid(status: StatusCode, message: impl Into<String>) -> FailureInfo {
        FailureInfo {
            status_code: status.as_u16(),
            error_code: "InvalidParameterException",
            error_message: message.into(),
        }
    }
}

/// The output of TagResources and UntagResources: the ARNs that were not changed (empty when
/// every one was).
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailedResources {
    pub failed_resources_map: BTreeMap<String, FailureInfo>,
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// `TagFilter`: a key, and the values any one of which it must have (any value when none).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagFilterInput {
    pub key: Option<String>,
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcesInput {
    pub pagination_token: Option<String>,
    pub tag_filters: Option<Vec<TagFilterInput>>,
    pub resources_per_page: Option<i64>,
    pub tags_per_page: Option<i64>,
    pub resource_type_filters: Option<Vec<String>>,
    pub include_compliance_details: Option<bool>,
    pub exclude_compliant_resources: Option<bool>,
    #[serde(rename = "ResourceARNList")]
    pub resource_arn_list: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTagKeysInput {
    pub pagination_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetTagValuesInput {
    pub pagination_token: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourcesInput {
    #[serde(rename = "ResourceARNList")]
    pub resource_arn_list: Option<Vec<String>>,
    pub tags: Option<Tags>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourcesInput {
    #[serde(rename = "ResourceARNList")]
    pub resource_arn_list: Option<Vec<String>>,
    pub tag_keys: Option<Vec<String>>,
}

/// A checked GetResources request.
#[derive(Debug, PartialEq)]
pub enum ResourceQuery {
    /// `ResourceARNList`: these resources (deduplicated, in the order given), one page.
    Arns(Vec<String>),
    Filtered(ResourceFilter),
}

/// A checked GetResources request by filters.
#[derive(Debug, PartialEq)]
pub struct ResourceFilter {
    pub tags: Vec<TagMatch>,
    /// The kinds the type filters name (every Lattice kind when there are none).
    pub kinds: Vec<ResourceKind>,
    pub per_page: usize,
    pub tags_per_page: Option<usize>,
    pub after: Option<Cursor>,
}

/// One checked tag filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagMatch {
    pub key: String,
    /// Any of these; any value at all when empty.
    pub values: Vec<String>,
}

/// Where a page starts: after the item `after` of the operation `op`'s ordering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The operation (and, for GetTagValues, the key) the token was issued for.
    op: String,
    after: String,
    /// Seconds since the epoch when it was issued.
    issued: u64,
}

impl Cursor {
    fn encode(op: &str, after: &str, now: u64) -> String {
        let c = Cursor {
            op: op.to_string(),
            after: after.to_string(),
            issued: now,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("a cursor serializes"))
    }

    /// The cursor of a token this operation issued; `None` for anything else.
    fn decode(op: &str, token: &str) -> Option<Cursor> {
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        let c: Cursor = serde_json::from_slice(&raw).ok()?;
        (c.op == op).then_some(c)
    }

    /// The item to start after, unless the token has expired.
    fn fresh(self, now: u64) -> Result<String, TaggingError> {
        if now.saturating_sub(self.issued) > TOKEN_LIFETIME_SECS {
            return Err(TaggingError::PaginationTokenExpired(format!(
                "A PaginationToken is valid for a maximum of {} minutes. Your request was denied because the specified PaginationToken has expired.",
                TOKEN_LIFETIME_SECS / 60
            )));
        }
        Ok(self.after)
    }
}

/// Checks an optional pagination token (empty is absent, as in a first request).
fn check_token(c: &mut Checks, op: &str, token: Option<String>) -> Option<Cursor> {
    let token = token.filter(|t| !t.is_empty())?;
    if !c.length("PaginationToken", &token, 0, 2048) {
        return None;
    }
    let cursor = Cursor::decode(op, &token);
    if cursor.is_none() {
        c.fail(
            "PaginationToken",
            format!("The PaginationToken is not one that {op} issued"),
        );
    }
    cursor
}

/// Checks a required list of 1–`max` ARNs; returns them deduplicated in order.
fn check_arn_list(
    c: &mut Checks,
    list: Option<Vec<String>>,
    max: usize,
    must_parse: bool,
) -> Vec<String> {
    let Some(list) = list else {
        c.missing("ResourceARNList");
        return Vec::new();
    };
    if c.count("ResourceARNList", list.len(), 1, max) {
        for (i, arn) in list.iter().enumerate() {
            let name = format!("ResourceARNList[{i}]");
            if c.length(&name, arn, 1, ARN_MAX) && must_parse {
                c.pattern(
                    &name,
                    arn,
                    Arn::parse(arn).is_some(),
                    "arn:partition:service:region:account-id:resource",
                );
            }
        }
    }
    let mut seen = BTreeSet::new();
    list.into_iter()
        .filter(|a| seen.insert(a.clone()))
        .collect()
}

/// The Lattice kinds a `service[:resourceType]` filter names: all of them for `vpc-lattice`, one
/// for a type as Lattice ARNs spell it (`vpc-lattice:targetgroup`), none for another service or
/// a Lattice type Trellis does not store. An unknown Lattice type is an error naming the types.
pub fn kinds_of_type_filter(filter: &str) -> Result<Vec<ResourceKind>, String> {
    let (service, rtype) = match filter.split_once(':') {
        Some((s, t)) => (s, Some(t)),
        None => (filter, None),
    };
    if service.is_empty() || rtype == Some("") {
        return Err(format!(
            "'{filter}' is not a resource type: expected service[:resourceType], such as vpc-lattice:service"
        ));
    }
    if service != "vpc-lattice" {
        return Ok(Vec::new());
    }
    let Some(rtype) = rtype else {
        return Ok(ResourceKind::ALL.to_vec());
    };
    if let Some(kind) = ResourceKind::ALL
        .into_iter()
        .find(|k| k.arn_segment() == rtype)
    {
        return Ok(vec![kind]);
    }
    if LATTICE_TYPES_NOT_STORED.contains(&rtype) {
        return Ok(Vec::new());
    }
    let known: Vec<String> = ResourceKind::ALL
        .iter()
        .map(|k| format!("vpc-lattice:{}", k.arn_segment()))
        .collect();
    Err(format!(
        "'{filter}' is not a VPC Lattice resource type; the types are {}",
        known.join(", ")
    ))
}

impl GetResourcesInput {
    /// The checked request, or every failing member.
    pub fn validate(self) -> Result<ResourceQuery, ValidationError> {
        let mut c = Checks::new();
        let token = self.pagination_token.filter(|t| !t.is_empty());
        let tag_filters = self.tag_filters.unwrap_or_default();
        let type_filters = self.resource_type_filters.unwrap_or_default();
        if self.include_compliance_details == Some(true) {
            c.fail(
                "IncludeComplianceDetails",
                "Trellis has no tag policies and reports no compliance details: IncludeComplianceDetails must be false",
            );
        }
        if self.exclude_compliant_resources == Some(true) {
            c.fail(
                "ExcludeCompliantResources",
                "ExcludeCompliantResources requires IncludeComplianceDetails, which Trellis does not support",
            );
        }
        if let Some(arns) = self.resource_arn_list {
            let others = [
                ("TagFilters", !tag_filters.is_empty()),
                ("ResourceTypeFilters", !type_filters.is_empty()),
                ("ResourcesPerPage", self.resources_per_page.is_some()),
                ("TagsPerPage", self.tags_per_page.is_some()),
                ("PaginationToken", token.is_some()),
            ];
            for (name, given) in others {
                if given {
                    c.fail(
                        name,
                        format!(
                            "You can't specify both ResourceARNList and {name} in the same request"
                        ),
                    );
                }
            }
            let arns = check_arn_list(&mut c, Some(arns), 100, false);
            c.finish()?;
            return Ok(ResourceQuery::Arns(arns));
        }

        let mut tags = Vec::new();
        if c.count("TagFilters", tag_filters.len(), 0, 50) {
            for (i, f) in tag_filters.into_iter().enumerate() {
                let name = format!("TagFilters[{i}]");
                let key_ok = match &f.key {
                    None => {
                        c.missing(&format!("{name}.Key"));
                        false
                    }
                    Some(k) => c.length(&format!("{name}.Key"), k, 1, 128),
                };
                let values = f.values.unwrap_or_default();
                let mut values_ok = c.count(&format!("{name}.Values"), values.len(), 0, 20);
                if values_ok {
                    for (j, v) in values.iter().enumerate() {
                        values_ok &= c.length(&format!("{name}.Values[{j}]"), v, 0, 256);
                    }
                }
                if let (Some(key), true, true) = (f.key, key_ok, values_ok) {
                    tags.push(TagMatch { key, values });
                }
            }
        }

        let mut kinds = if type_filters.is_empty() {
            ResourceKind::ALL.to_vec()
        } else {
            Vec::new()
        };
        if c.count("ResourceTypeFilters", type_filters.len(), 0, 100) {
            for (i, t) in type_filters.iter().enumerate() {
                let name = format!("ResourceTypeFilters[{i}]");
                if !c.length(&name, t, 0, 256) {
                    continue;
                }
                match kinds_of_type_filter(t) {
                    Ok(ks) => {
                        for k in ks {
                            if !kinds.contains(&k) {
                                kinds.push(k);
                            }
                        }
                    }
                    Err(m) => c.fail(name, m),
                }
            }
        }

        let per_page = match self.resources_per_page {
            Some(n) if c.range("ResourcesPerPage", n, 1, 100) => n as usize,
            _ => DEFAULT_RESOURCES_PER_PAGE,
        };
        let tags_per_page = match self.tags_per_page {
            Some(n) if c.range("TagsPerPage", n, 100, 500) => Some(n as usize),
            _ => None,
        };
        let after = check_token(&mut c, "GetResources", token);
        c.finish()?;
        Ok(ResourceQuery::Filtered(ResourceFilter {
            tags,
            kinds,
            per_page,
            tags_per_page,
            after,
        }))
    }
}

impl GetTagKeysInput {
    pub fn validate(self) -> Result<Option<Cursor>, ValidationError> {
        let mut c = Checks::new();
        let after = check_token(&mut c, "GetTagKeys", self.pagination_token);
        c.finish()?;
        Ok(after)
    }
}

impl GetTagValuesInput {
    /// The key and where the page starts.
    pub fn validate(self) -> Result<(String, Option<Cursor>), ValidationError> {
        let mut c = Checks::new();
        match &self.key {
            None => c.missing("Key"),
            Some(k) => {
                c.length("Key", k, 1, 128);
            }
        }
        let key = self.key.unwrap_or_default();
        let after = check_token(
            &mut c,
            &format!("GetTagValues:{key}"),
            self.pagination_token,
        );
        c.finish()?;
        Ok((key, after))
    }
}

/// A checked TagResources request.
#[derive(Debug, PartialEq)]
pub struct TagWrite {
    pub arns: Vec<String>,
    pub tags: Tags,
}

impl TagResourcesInput {
    pub fn validate(self) -> Result<TagWrite, ValidationError> {
        let mut c = Checks::new();
        let arns = check_arn_list(&mut c, self.resource_arn_list, 20, true);
        match &self.tags {
            None => c.missing("Tags"),
            Some(t) => {
                // The model's TagMap holds 1–50 tags; each one is checked as Lattice checks it.
                if c.count("Tags", t.len(), 1, 50) {
                    c.tags("Tags", t);
                }
            }
        }
        c.finish()?;
        Ok(TagWrite {
            arns,
            tags: self.tags.unwrap_or_default(),
        })
    }
}

/// A checked UntagResources request.
#[derive(Debug, PartialEq)]
pub struct UntagWrite {
    pub arns: Vec<String>,
    pub keys: Vec<String>,
}

impl UntagResourcesInput {
    pub fn validate(self) -> Result<UntagWrite, ValidationError> {
        let mut c = Checks::new();
        let arns = check_arn_list(&mut c, self.resource_arn_list, 20, true);
        match &self.tag_keys {
            None => c.missing("TagKeys"),
            Some(keys) => {
                if c.count("TagKeys", keys.len(), 1, 50) {
                    for (i, k) in keys.iter().enumerate() {
                        c.length(&format!("TagKeys[{i}]"), k, 1, 128);
                    }
                }
            }
        }
        c.finish()?;
        Ok(UntagWrite {
            arns,
            keys: self.tag_keys.unwrap_or_default(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Whether a store kind is a Lattice resource kind (the store also holds Lambda functions,
/// whose tags are Lambda's own).
fn is_lattice_kind(store_kind: &str) -> bool {
    ResourceKind::ALL
        .iter()
        .any(|k| k.store_kind() == store_kind)
}

/// Whether a resource's tags pass every filter: AND across filters, OR within a filter's values.
pub fn matches(filters: &[TagMatch], tags: &Tags) -> bool {
    filters.iter().all(|f| match tags.get(&f.key) {
        None => false,
        Some(v) => f.values.is_empty() || f.values.contains(v),
    })
}

/// Every resource of `kinds` with its ARN and tags, ordered by ARN (the order pages follow).
async fn resources_of(
    tx: &mut Tx,
    kinds: &[ResourceKind],
) -> Result<Vec<(String, Tags)>, TaggingError> {
    let mut out = Vec::new();
    for kind in kinds {
        for rec in tx.list(kind.store_kind(), None).await? {
            if let Some(arn) = &rec.arn {
                out.push((arn.clone(), tags::tags_of(&rec)?));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// One page of resources (already in ARN order and filtered) after `after`: at most `per_page`,
/// and, with `tags_per_page`, no more tags than that (an untagged resource counts as one; a
/// resource is never split, and a page holds at least one). The ARN to resume after, when more
/// remain.
pub fn page_resources(
    items: Vec<(String, Tags)>,
    after: Option<&str>,
    per_page: usize,
    tags_per_page: Option<usize>,
) -> (Vec<(String, Tags)>, Option<String>) {
    let mut page = Vec::new();
    let mut used = 0;
    let mut rest = items
        .into_iter()
        .filter(|(arn, _)| after.is_none_or(|a| arn.as_str() > a))
        .peekable();
    while let Some((_, tags)) = rest.peek() {
        let weight = tags.len().max(1);
        let full = page.len() >= per_page
            || tags_per_page.is_some_and(|limit| !page.is_empty() && used + weight > limit);
        if full {
            break;
        }
        used += weight;
        page.push(rest.next().expect("peeked"));
    }
    let next = if rest.peek().is_some() {
        page.last().map(|(arn, _)| arn.clone())
    } else {
        None
    };
    (page, next)
}

/// One page of sorted strings after `after`, and the last one when more remain.
pub fn page_values(
    values: BTreeSet<String>,
    after: Option<&str>,
    per_page: usize,
) -> (Vec<String>, Option<String>) {
    let mut rest = values
        .into_iter()
        .filter(|v| after.is_none_or(|a| v.as_str() > a));
    let page: Vec<String> = rest.by_ref().take(per_page).collect();
    let next = match rest.next() {
        Some(_) => page.last().cloned(),
        None => None,
    };
    (page, next)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

async fn get_resources(
    s: AppState,
    input: GetResourcesInput,
    _call: Call,
) -> Result<GetResourcesOutput, TaggingError> {
    let query = input.validate()?;
    let mut tx = s.store.read().await?;
    match query {
        ResourceQuery::Arns(arns) => {
            // AWS: an ARN that does not exist "simply isn't included in the response".
            let mut list = Vec::new();
            for arn in arns {
                if let Some(rec) = tx.get_by_arn(&arn).await?
                    && is_lattice_kind(&rec.kind)
                {
                    list.push(ResourceTagMapping::new(arn, &tags::tags_of(&rec)?));
                }
            }
            Ok(GetResourcesOutput {
                pagination_token: String::new(),
                resource_tag_mapping_list: list,
            })
        }
        ResourceQuery::Filtered(f) => {
            let now = now_secs();
            let after = f.after.map(|c| c.fresh(now)).transpose()?;
            // Untagged resources are not listed ("GetResources does not return untagged
            // resources").
            let matching: Vec<(String, Tags)> = resources_of(&mut tx, &f.kinds)
                .await?
                .into_iter()
                .filter(|(_, t)| !t.is_empty() && matches(&f.tags, t))
                .collect();
            let (page, next) =
                page_resources(matching, after.as_deref(), f.per_page, f.tags_per_page);
            Ok(GetResourcesOutput {
                pagination_token: next
                    .map(|arn| Cursor::encode("GetResources", &arn, now))
                    .unwrap_or_default(),
                resource_tag_mapping_list: page
                    .into_iter()
                    .map(|(arn, t)| ResourceTagMapping::new(arn, &t))
                    .collect(),
            })
        }
    }
}

async fn get_tag_keys(
    s: AppState,
    input: GetTagKeysInput,
    _call: Call,
) -> Result<GetTagKeysOutput, TaggingError> {
    let now = now_secs();
    let after = input.validate()?.map(|c| c.fresh(now)).transpose()?;
    let mut tx = s.store.read().await?;
    let keys: BTreeSet<String> = resources_of(&mut tx, &ResourceKind::ALL)
        .await?
        .into_iter()
        .flat_map(|(_, t)| t.into_keys())
        .collect();
    let (page, next) = page_values(keys, after.as_deref(), VALUES_PER_PAGE);
    Ok(GetTagKeysOutput {
        pagination_token: next
            .map(|k| Cursor::encode("GetTagKeys", &k, now))
            .unwrap_or_default(),
        tag_keys: page,
    })
}

async fn get_tag_values(
    s: AppState,
    input: GetTagValuesInput,
    _call: Call,
) -> Result<GetTagValuesOutput, TaggingError> {
    let now = now_secs();
    let (key, after) = input.validate()?;
    let after = after.map(|c| c.fresh(now)).transpose()?;
    let mut tx = s.store.read().await?;
    let values: BTreeSet<String> = resources_of(&mut tx, &ResourceKind::ALL)
        .await?
        .into_iter()
        .filter_map(|(_, mut t)| t.remove(&key))
        .collect();
    let (page, next) = page_values(values, after.as_deref(), VALUES_PER_PAGE);
    Ok(GetTagValuesOutput {
        pagination_token: next
            .map(|v| Cursor::encode(&format!("GetTagValues:{key}"), &v, now))
            .unwrap_or_default(),
        tag_values: page,
    })
}

// ---------------------------------------------------------------------------------------------
// Writing

/// The record an ARN of a TagResources/UntagResources call names, or why it cannot be tagged
/// here: 400 for an ARN this Trellis cannot hold (another service, region or account), 404 for
/// a Lattice ARN nothing is stored under.
async fn load_taggable(
    tx: &mut Tx,
    ctx: &Context,
    arn: &str,
) -> Result<Result<Record, FailureInfo>, TaggingError> {
    let Some(parsed) = Arn::parse(arn) else {
        return Ok(Err(FailureInfo::invalid(
            StatusCode::BAD_REQUEST,
            format!("{arn} is not an ARN"),
        )));
    };
    if parsed.service != "vpc-lattice" {
        return Ok(Err(FailureInfo::invalid(
            StatusCode::BAD_REQUEST,
            format!(
                "Trellis tags only VPC Lattice resources; {arn} belongs to the service '{}'",
                parsed.service
            ),
        )));
    }
    if !tags::is_lattice_arn(arn) {
        return Ok(Err(FailureInfo::invalid(
            StatusCode::BAD_REQUEST,
            format!("{arn} is not a valid VPC Lattice ARN"),
        )));
    }
    if parsed.partition != ctx.partition
        || parsed.region != ctx.region
        || parsed.account_id != ctx.account_id
    {
        return Ok(Err(FailureInfo::invalid(
            StatusCode::BAD_REQUEST,
            format!(
                "You can only tag resources in the region {} of the account {}",
                ctx.region, ctx.account_id
            ),
        )));
    }
    match tx.get_by_arn(arn).await? {
        Some(rec) if is_lattice_kind(&rec.kind) => Ok(Ok(rec)),
        Some(_) => Ok(Err(FailureInfo::invalid(
            StatusCode::BAD_REQUEST,
            format!("{arn} cannot be tagged through the Resource Groups Tagging API"),
        ))),
        None => Ok(Err(FailureInfo::invalid(
            StatusCode::NOT_FOUND,
            format!("Resource not found: {arn}"),
        ))),
    }
}

/// One tag write over every ARN of the call in one store transaction, committed (one revision)
/// only when some resource changed. `change` applies the write to one record in memory.
async fn write_tags(
    s: &AppState,
    arns: &[String],
    change: impl Fn(&mut Record) -> Result<bool, ApiError>,
) -> Result<FailedResources, TaggingError> {
    let mut tx = s.store.write().await?;
    let mut out = FailedResources::default();
    let mut changed = false;
    for arn in arns {
        let mut rec = match load_taggable(&mut tx, &s.ctx, arn).await? {
            Ok(rec) => rec,
            Err(failure) => {
                out.failed_resources_map.insert(arn.clone(), failure);
                continue;
            }
        };
        match change(&mut rec) {
            Ok(true) => {
                tx.update(&rec).await?;
                changed = true;
            }
            Ok(false) => {}
            // The per-resource limit: this resource fails, the others go ahead.
            Err(ApiError::Validation(v)) => {
                let message = v.fields.into_iter().next().map_or(v.message, |f| f.message);
                out.failed_resources_map.insert(
                    arn.clone(),
                    FailureInfo::invalid(StatusCode::BAD_REQUEST, message),
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    if changed {
        tx.commit().await?;
    }
    Ok(out)
}

async fn tag_resources(
    s: AppState,
    input: TagResourcesInput,
    _call: Call,
) -> Result<FailedResources, TaggingError> {
    let w = input.validate()?;
    write_tags(&s, &w.arns, |rec| tags::add_tags(rec, w.tags.clone())).await
}

async fn untag_resources(
    s: AppState,
    input: UntagResourcesInput,
    _call: Call,
) -> Result<FailedResources, TaggingError> {
    let w = input.validate()?;
    write_tags(&s, &w.arns, |rec| {
        tags::remove_tags(rec, w.keys.iter().map(String::as_str))
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64};

    use axum::http::{HeaderMap, HeaderValue, Method};
    use serde_json::{Value, json};
    use trellis_wire::{Head, RequestId};

    use super::*;
    use crate::testutil::ctx;

    fn input<T: serde::de::DeserializeOwned>(doc: Value) -> T {
        trellis_wire::de::from_value(doc).expect("decodes")
    }

    /// The failing members of a validation, in order (empty when it passed).
    fn failing<T>(r: Result<T, ValidationError>) -> Vec<String> {
        r.err()
            .map(|e| e.fields.into_iter().map(|f| f.name).collect())
            .unwrap_or_default()
    }

    #[test]
    fn get_resources_validation_reports_every_failing_member() {
        let token = Cursor::encode("GetResources", "arn", 0);
        let other_op = Cursor::encode("GetTagKeys", "k", 0);
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({}), vec![]),
            (
                json!({"TagFilters": [{"Key": "env", "Values": ["prod"]}], "ResourceTypeFilters": ["vpc-lattice:service"], "ResourcesPerPage": 5, "TagsPerPage": 100, "PaginationToken": token}),
                vec![],
            ),
            // An empty token is a first request.
            (json!({"PaginationToken": ""}), vec![]),
            (
                json!({"ResourcesPerPage": 0, "TagsPerPage": 99, "TagFilters": [{"Values": []}, {"Key": "", "Values": vec!["x"; 21]}]}),
                vec![
                    "TagFilters[0].Key",
                    "TagFilters[1].Key",
                    "TagFilters[1].Values",
                    "ResourcesPerPage",
                    "TagsPerPage",
                ],
            ),
            (json!({"ResourcesPerPage": 101}), vec!["ResourcesPerPage"]),
            (json!({"TagsPerPage": 501}), vec!["TagsPerPage"]),
            (
                json!({"TagFilters": [{"Key": "k", "Values": ["ok", "v".repeat(257)]}]}),
                vec!["TagFilters[0].Values[1]"],
            ),
            (
                json!({"TagFilters": (0..51).map(|i| json!({"Key": format!("k{i}")})).collect::<Vec<_>>()}),
                vec!["TagFilters"],
            ),
            (
                json!({"ResourceTypeFilters": ["vpc-lattice:bogus", "", "ec2:instance", "vpc-lattice:"]}),
                vec![
                    "ResourceTypeFilters[0]",
                    "ResourceTypeFilters[1]",
                    "ResourceTypeFilters[3]",
                ],
            ),
            (
                json!({"PaginationToken": "not a token"}),
                vec!["PaginationToken"],
            ),
            (
                json!({"PaginationToken": other_op}),
                vec!["PaginationToken"],
            ),
            (
                json!({"IncludeComplianceDetails": true, "ExcludeCompliantResources": true}),
                vec!["IncludeComplianceDetails", "ExcludeCompliantResources"],
            ),
            (json!({"IncludeComplianceDetails": false}), vec![]),
            // ResourceARNList excludes the filters and the pagination parameters.
            (
                json!({"ResourceARNList": ["arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-00000000000000000"]}),
                vec![],
            ),
            (
                json!({"ResourceARNList": ["a"], "TagFilters": [{"Key": "k"}], "ResourceTypeFilters": ["vpc-lattice"], "ResourcesPerPage": 5, "TagsPerPage": 100, "PaginationToken": "t"}),
                vec![
                    "TagFilters",
                    "ResourceTypeFilters",
                    "ResourcesPerPage",
                    "TagsPerPage",
                    "PaginationToken",
                ],
            ),
            (json!({"ResourceARNList": []}), vec!["ResourceARNList"]),
            (
                json!({"ResourceARNList": ["", "x".repeat(1012)]}),
                vec!["ResourceARNList[0]", "ResourceARNList[1]"],
            ),
        ];
        for (doc, want) in cases {
            let got = failing(input::<GetResourcesInput>(doc.clone()).validate());
            assert_eq!(got, want, "{doc}");
        }
    }

    #[test]
    fn get_resources_query_keeps_what_was_asked() {
        let q = input::<GetResourcesInput>(json!({
            "TagFilters": [{"Key": "env", "Values": ["prod", "dev"]}, {"Key": "team"}],
            "ResourceTypeFilters": ["vpc-lattice:targetgroup", "ec2:instance", "vpc-lattice:service", "vpc-lattice:targetgroup"],
            "ResourcesPerPage": "7",
        }))
        .validate()
        .unwrap();
        assert_eq!(
            q,
            ResourceQuery::Filtered(ResourceFilter {
                tags: vec![
                    TagMatch {
                        key: "env".into(),
                        values: vec!["prod".into(), "dev".into()]
                    },
                    TagMatch {
                        key: "team".into(),
                        values: vec![]
                    },
                ],
                kinds: vec![ResourceKind::TargetGroup, ResourceKind::Service],
                per_page: 7,
                tags_per_page: None,
                after: None,
            })
        );
        let arn = "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-00000000000000000";
        let q = input::<GetResourcesInput>(json!({"ResourceARNList": [arn, arn]}))
            .validate()
            .unwrap();
        assert_eq!(q, ResourceQuery::Arns(vec![arn.to_string()]));
    }

    #[test]
    fn type_filters_use_the_names_in_lattice_arns() {
        let cases: Vec<(&str, Result<Vec<ResourceKind>, ()>)> = vec![
            ("vpc-lattice", Ok(ResourceKind::ALL.to_vec())),
            ("vpc-lattice:service", Ok(vec![ResourceKind::Service])),
            (
                "vpc-lattice:servicenetwork",
                Ok(vec![ResourceKind::ServiceNetwork]),
            ),
            (
                "vpc-lattice:targetgroup",
                Ok(vec![ResourceKind::TargetGroup]),
            ),
            ("vpc-lattice:listener", Ok(vec![ResourceKind::Listener])),
            ("vpc-lattice:rule", Ok(vec![ResourceKind::Rule])),
            (
                "vpc-lattice:accesslogsubscription",
                Ok(vec![ResourceKind::AccessLogSubscription]),
            ),
            (
                "vpc-lattice:servicenetworkserviceassociation",
                Ok(vec![ResourceKind::ServiceNetworkServiceAssociation]),
            ),
            (
                "vpc-lattice:servicenetworkvpcassociation",
                Ok(vec![ResourceKind::ServiceNetworkVpcAssociation]),
            ),
            // Lattice types Trellis does not store, and other services: valid, nothing here.
            ("vpc-lattice:resourcegateway", Ok(vec![])),
            ("ec2", Ok(vec![])),
            ("ec2:instance", Ok(vec![])),
            ("vpc-lattice:target-group", Err(())),
            ("vpc-lattice:", Err(())),
            (":service", Err(())),
            ("", Err(())),
        ];
        for (filter, want) in cases {
            assert_eq!(
                kinds_of_type_filter(filter).map_err(|_| ()),
                want,
                "{filter}"
            );
        }
        let e = kinds_of_type_filter("vpc-lattice:bogus").unwrap_err();
        assert!(e.contains("vpc-lattice:servicenetwork"), "{e}");
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn tag_match(key: &str, values: &[&str]) -> TagMatch {
        TagMatch {
            key: key.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn tag_filters_and_across_or_within() {
        let t = tags(&[("env", "prod"), ("team", "core"), ("empty", "")]);
        let cases: Vec<(Vec<TagMatch>, bool)> = vec![
            (vec![], true),
            (vec![tag_match("env", &["prod"])], true),
            (vec![tag_match("env", &["dev"])], false),
            (vec![tag_match("env", &["dev", "prod"])], true),
            (vec![tag_match("env", &[])], true),
            (vec![tag_match("empty", &[])], true),
            (vec![tag_match("empty", &[""])], true),
            (vec![tag_match("missing", &[])], false),
            (
                vec![tag_match("env", &["prod"]), tag_match("team", &["core"])],
                true,
            ),
            (
                vec![tag_match("env", &["prod"]), tag_match("team", &["edge"])],
                false,
            ),
            // Keys and values are case-sensitive.
            (vec![tag_match("ENV", &[])], false),
            (vec![tag_match("env", &["Prod"])], false),
        ];
        for (filters, want) in cases {
            assert_eq!(matches(&filters, &t), want, "{filters:?}");
        }
    }

    fn numbered(n: usize) -> Tags {
        (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect()
    }

    #[test]
    fn resource_pages_respect_both_limits_and_never_split_a_resource() {
        let items: Vec<(String, Tags)> = vec![
            ("a".into(), numbered(60)),
            ("b".into(), numbered(50)),
            ("c".into(), numbered(0)),
            ("d".into(), numbered(120)),
            ("e".into(), numbered(1)),
        ];
        let arns = |page: &[(String, Tags)]| page.iter().map(|p| p.0.clone()).collect::<Vec<_>>();
        // (after, per_page, tags_per_page) → (page, next)
        type Case<'a> = (
            (Option<&'a str>, usize, Option<usize>),
            (Vec<&'a str>, Option<&'a str>),
        );
        let cases: Vec<Case> = vec![
            ((None, 100, None), (vec!["a", "b", "c", "d", "e"], None)),
            ((None, 2, None), (vec!["a", "b"], Some("b"))),
            ((Some("b"), 2, None), (vec!["c", "d"], Some("d"))),
            ((Some("d"), 2, None), (vec!["e"], None)),
            ((Some("e"), 2, None), (vec![], None)),
            // 60 + 50 > 100: "b" goes to the next page.
            ((None, 100, Some(100)), (vec!["a"], Some("a"))),
            // 50 + 1 (untagged counts as one); 120 would not fit.
            ((Some("a"), 100, Some(100)), (vec!["b", "c"], Some("c"))),
            // A resource larger than the limit still gets a page of its own.
            ((Some("c"), 100, Some(100)), (vec!["d"], Some("d"))),
            ((Some("d"), 100, Some(100)), (vec!["e"], None)),
        ];
        for ((after, per_page, tpp), (want, want_next)) in cases {
            let (page, next) = page_resources(items.clone(), after, per_page, tpp);
            assert_eq!(arns(&page), want, "{after:?} {per_page} {tpp:?}");
            assert_eq!(next.as_deref(), want_next, "{after:?} {per_page} {tpp:?}");
        }
    }

    #[test]
    fn value_pages_walk_every_value_once() {
        let all: BTreeSet<String> = (0..7).map(|i| format!("v{i}")).collect();
        for per_page in 1..=8 {
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            for _ in 0..10 {
                let (page, next) = page_values(all.clone(), after.as_deref(), per_page);
                assert!(page.len() <= per_page);
                seen.extend(page);
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            assert_eq!(seen, all.iter().cloned().collect::<Vec<_>>(), "{per_page}");
        }
    }

    #[test]
    fn tokens_belong_to_their_operation_and_expire() {
        let t = Cursor::encode("GetTagValues:env", "prod", 1_000);
        assert_eq!(Cursor::decode("GetTagValues:team", &t), None);
        let c = Cursor::decode("GetTagValues:env", &t).unwrap();
        assert_eq!(c.clone().fresh(1_000).unwrap(), "prod");
        assert_eq!(
            c.clone().fresh(1_000 + TOKEN_LIFETIME_SECS).unwrap(),
            "prod"
        );
        assert!(matches!(
            c.fresh(1_001 + TOKEN_LIFETIME_SECS),
            Err(TaggingError::PaginationTokenExpired(_))
        ));
        let e: AwsError = TaggingError::PaginationTokenExpired("x".into()).into();
        assert_eq!(e.code, "PaginationTokenExpiredException");
        assert_eq!(e.message_member, "Message");
    }

    #[test]
    fn the_error_message_names_every_failing_member() {
        let v = input::<TagResourcesInput>(json!({"ResourceARNList": [], "Tags": {"aws:x": "v"}}))
            .validate()
            .unwrap_err();
        let TaggingError::InvalidParameter(m) = v.into() else {
            panic!("not InvalidParameter");
        };
        assert!(m.starts_with("2 validation errors detected: "), "{m}");
        assert!(
            m.contains("'ResourceARNList': Member must have length"),
            "{m}"
        );
        assert!(
            m.contains("'Tags.aws:x': Tag keys must not begin with 'aws:'"),
            "{m}"
        );
        let v = input::<GetTagValuesInput>(json!({}))
            .validate()
            .unwrap_err();
        let TaggingError::InvalidParameter(m) = v.into() else {
            panic!("not InvalidParameter");
        };
        assert_eq!(
            m,
            "1 validation error detected: Value null at 'Key' failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn write_validation_reports_every_failing_member() {
        let arn = "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-00000000000000000";
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"ResourceARNList": [arn], "Tags": {"k": "v"}}),
                vec![],
            ),
            (json!({}), vec!["ResourceARNList", "Tags"]),
            (
                json!({"ResourceARNList": [], "Tags": {}}),
                vec!["ResourceARNList", "Tags"],
            ),
            (
                json!({"ResourceARNList": vec![arn; 21], "Tags": {"k": "v"}}),
                vec!["ResourceARNList"],
            ),
            (
                json!({"ResourceARNList": ["not-an-arn", ""], "Tags": {"aws:x": "v", "ok": "v".repeat(257)}}),
                vec![
                    "ResourceARNList[0]",
                    "ResourceARNList[1]",
                    "Tags.aws:x",
                    "Tags.ok",
                ],
            ),
            (
                json!({"ResourceARNList": [arn], "Tags": numbered(51)}),
                vec!["Tags"],
            ),
        ];
        for (doc, want) in cases {
            let got = failing(input::<TagResourcesInput>(doc.clone()).validate());
            assert_eq!(got, want, "{doc}");
        }
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"ResourceARNList": [arn], "TagKeys": ["k"]}), vec![]),
            (json!({}), vec!["ResourceARNList", "TagKeys"]),
            (
                json!({"ResourceARNList": [arn], "TagKeys": []}),
                vec!["TagKeys"],
            ),
            (
                json!({"ResourceARNList": [arn], "TagKeys": ["", "k".repeat(129), "ok"]}),
                vec!["TagKeys[0]", "TagKeys[1]"],
            ),
            (
                json!({"ResourceARNList": [arn], "TagKeys": (0..51).map(|i| format!("k{i}")).collect::<Vec<_>>()}),
                vec!["TagKeys"],
            ),
        ];
        for (doc, want) in cases {
            let got = failing(input::<UntagResourcesInput>(doc.clone()).validate());
            assert_eq!(got, want, "{doc}");
        }
        assert_eq!(
            failing(input::<GetTagValuesInput>(json!({})).validate()),
            ["Key"]
        );
        assert_eq!(
            failing(input::<GetTagValuesInput>(json!({"Key": ""})).validate()),
            ["Key"]
        );
    }

    // -----------------------------------------------------------------------------------------
    // Over a real store

    struct Fixture {
        state: AppState,
        _dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = trellis_store::Store::connect(&trellis_store::Store::sqlite_url(
            &dir.path().join("tagging.db"),
        ))
        .await
        .unwrap();
        let state = AppState::new(
            ctx(),
            store,
            crate::RootCredentials {
                access_key_id: "AKID".into(),
                secret_access_key: "secret".into(),
            },
            Arc::default(),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(true)),
        );
        Fixture { state, _dir: dir }
    }

    /// Stores a resource of `kind` with `tags` (as the Lattice handlers store it: the ARN on the
    /// record, the tags at the top of the body); returns its ARN.
    async fn put(s: &AppState, kind: ResourceKind, tags: Value) -> String {
        let id = kind.new_id();
        let arn = s.ctx.top_level_arn(kind, &id);
        let rec = Record {
            kind: kind.store_kind().into(),
            id: id.clone(),
            parent: None,
            name: None,
            arn: Some(arn.clone()),
            refs: vec![],
            body: json!({ "id": id, "tags": tags }),
            seq: 0,
        };
        let mut tx = s.store.write().await.unwrap();
        tx.insert(&rec).await.unwrap();
        tx.commit().await.unwrap();
        arn
    }

    fn call() -> Call {
        Call {
            request_id: RequestId::new(),
            operation: "test",
            headers: HeaderMap::new(),
            extensions: Default::default(),
        }
    }

    async fn stored_tags(s: &AppState, arn: &str) -> Tags {
        let mut tx = s.store.read().await.unwrap();
        tags::tags_of(&tx.get_by_arn(arn).await.unwrap().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn tag_writes_are_one_transaction_and_report_what_failed() {
        let f = fixture().await;
        let s = &f.state;
        let svc = put(s, ResourceKind::Service, json!({"team": "core"})).await;
        let tg = put(s, ResourceKind::TargetGroup, json!({})).await;
        let full = put(s, ResourceKind::ServiceNetwork, json!(numbered(50))).await;
        let missing = s
            .ctx
            .top_level_arn(ResourceKind::Service, "svc-00000000000000000");
        let foreign = "arn:aws:vpc-lattice:eu-west-1:111122223333:service/svc-00000000000000000";
        let other_service = "arn:aws:s3:::bucket";
        let before = s.store.revision().await.unwrap();

        let out = tag_resources(
            s.clone(),
            input(json!({
                "ResourceARNList": [svc, tg, full, missing, foreign, other_service],
                "Tags": {"env": "prod"},
            })),
            call(),
        )
        .await
        .unwrap();
        assert_eq!(s.store.revision().await.unwrap(), before + 1);
        let failed: Vec<(&str, u16, &str)> = out
            .failed_resources_map
            .iter()
            .map(|(k, v)| (k.as_str(), v.status_code, v.error_code))
            .collect();
        let mut want = vec![
            (full.as_str(), 400, "InvalidParameterException"),
            (missing.as_str(), 404, "InvalidParameterException"),
            (foreign, 400, "InvalidParameterException"),
            (other_service, 400, "InvalidParameterException"),
        ];
        want.sort();
        assert_eq!(failed, want);
        assert!(
            out.failed_resources_map[&full]
                .error_message
                .contains("at most 50 tags")
        );
        // Visible where Lattice's ListTagsForResource reads them.
        assert_eq!(
            stored_tags(s, &svc).await,
            tags(&[("env", "prod"), ("team", "core")])
        );
        assert_eq!(stored_tags(s, &tg).await, tags(&[("env", "prod")]));
        assert_eq!(stored_tags(s, &full).await, numbered(50));

        // Nothing to change: no revision.
        let out = tag_resources(
            s.clone(),
            input(json!({"ResourceARNList": [svc], "Tags": {"env": "prod"}})),
            call(),
        )
        .await
        .unwrap();
        assert!(out.failed_resources_map.is_empty());
        assert_eq!(s.store.revision().await.unwrap(), before + 1);

        let out = untag_resources(
            s.clone(),
            input(json!({"ResourceARNList": [svc, tg, missing], "TagKeys": ["env", "absent"]})),
            call(),
        )
        .await
        .unwrap();
        assert_eq!(
            out.failed_resources_map.keys().collect::<Vec<_>>(),
            [&missing]
        );
        assert_eq!(out.failed_resources_map[&missing].status_code, 404);
        assert_eq!(s.store.revision().await.unwrap(), before + 2);
        assert_eq!(stored_tags(s, &svc).await, tags(&[("team", "core")]));
        assert_eq!(stored_tags(s, &tg).await, Tags::new());
    }

    #[tokio::test]
    async fn reads_list_tagged_lattice_resources_only() {
        let f = fixture().await;
        let s = &f.state;
        let svc = put(
            s,
            ResourceKind::Service,
            json!({"env": "prod", "team": "a"}),
        )
        .await;
        let sn = put(s, ResourceKind::ServiceNetwork, json!({"env": "dev"})).await;
        let untagged = put(s, ResourceKind::TargetGroup, json!({})).await;
        // A Lambda function's record: its tags are Lambda's, not listed here.
        let mut tx = s.store.write().await.unwrap();
        tx.insert(&Record {
            kind: "function".into(),
            id: "f".into(),
            parent: None,
            name: Some("f".into()),
            arn: Some("arn:aws:lambda:us-west-2:111122223333:function:f".into()),
            refs: vec![],
            body: json!({"tags": {"env": "prod"}}),
            seq: 0,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();

        let arns = |out: GetResourcesOutput| {
            assert_eq!(out.pagination_token, "");
            out.resource_tag_mapping_list
                .into_iter()
                .map(|m| m.resource_arn)
                .collect::<Vec<_>>()
        };
        let get = |doc: Value| get_resources(s.clone(), input(doc), call());
        let mut both = vec![svc.clone(), sn.clone()];
        both.sort();
        assert_eq!(arns(get(json!({})).await.unwrap()), both);
        assert_eq!(
            arns(
                get(json!({"TagFilters": [{"Key": "env", "Values": ["prod"]}]}))
                    .await
                    .unwrap()
            ),
            vec![svc.clone()]
        );
        assert_eq!(
            arns(
                get(json!({"ResourceTypeFilters": ["vpc-lattice:servicenetwork"]}))
                    .await
                    .unwrap()
            ),
            vec![sn.clone()]
        );
        // By ARN: existing Lattice resources, tagged or not; unknown ARNs are left out.
        let out = get(json!({"ResourceARNList": [untagged, "arn:aws:lambda:us-west-2:111122223333:function:f", svc]}))
            .await
            .unwrap();
        assert_eq!(
            out.resource_tag_mapping_list,
            vec![
                ResourceTagMapping::new(untagged.clone(), &Tags::new()),
                ResourceTagMapping::new(svc.clone(), &tags(&[("env", "prod"), ("team", "a")])),
            ]
        );
        let keys = get_tag_keys(s.clone(), input(json!({})), call())
            .await
            .unwrap();
        assert_eq!(keys.tag_keys, ["env", "team"]);
        assert_eq!(keys.pagination_token, "");
        let values = get_tag_values(s.clone(), input(json!({"Key": "env"})), call())
            .await
            .unwrap();
        assert_eq!(values.tag_values, ["dev", "prod"]);
        // Paging GetResources one resource at a time.
        let first = get(json!({"ResourcesPerPage": 1})).await.unwrap();
        assert_eq!(first.resource_tag_mapping_list.len(), 1);
        assert_ne!(first.pagination_token, "");
        let second = get(json!({"ResourcesPerPage": 1, "PaginationToken": first.pagination_token}))
            .await
            .unwrap();
        assert_eq!(
            vec![
                first.resource_tag_mapping_list[0].resource_arn.clone(),
                second.resource_tag_mapping_list[0].resource_arn.clone()
            ],
            both
        );
        assert_eq!(second.pagination_token, "");
    }

    #[tokio::test]
    async fn the_table_routes_the_target_prefix_here() {
        let f = fixture().await;
        let table = crate::table(&f.state, Vec::new());
        let mut headers = HeaderMap::new();
        let head = |headers: &HeaderMap| match table.head(&Method::POST, "/", headers) {
            Head::Operation(m) => (m.service.id, Some(m.name), m.service.signing_name),
            Head::Unknown(s) => (s.id, None, s.signing_name),
            Head::Query(_) => panic!("not a query request"),
        };
        for name in SERVED {
            headers.insert(
                "x-amz-target",
                HeaderValue::from_str(&format!("ResourceGroupsTaggingAPI_20170126.{name}"))
                    .unwrap(),
            );
            assert_eq!(
                head(&headers),
                ("Resource Groups Tagging API", Some(*name), "tagging")
            );
        }
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("ResourceGroupsTaggingAPI_20170126.GetComplianceSummary"),
        );
        assert_eq!(
            head(&headers),
            ("Resource Groups Tagging API", None, "tagging")
        );
        let e = (TAGGING.errors.unknown_operation)("X");
        assert_eq!(e.code, "InvalidParameterException");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
