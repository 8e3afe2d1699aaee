//! Managed policies: customer-managed ones with their versions (CreatePolicy, GetPolicy,
//! ListPolicies, DeletePolicy, their tags, CreatePolicyVersion, GetPolicyVersion, ListPolicyVersions,
//! DeletePolicyVersion, SetDefaultPolicyVersion), the built-in AWS-managed ones
//! ([`super::aws_managed`]), and their attachment to users, groups and roles (Attach/Detach and
//! ListAttached…Policies for each, ListEntitiesForPolicy).
//!
//! A customer-managed policy is one record holding every version (at most
//! [`VERSIONS_PER_POLICY`]); an attachment is a record of its own under the entity, referencing
//! the policy's ARN, so that "what is attached to X" and "who has P attached" are both one
//! indexed query. What a policy grants is the default version's document; the identity index
//! flattens it into every user and role it applies to.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use trellis_model::Timestamp;
use trellis_store::{Record, StoreError, Tx};
use trellis_wire::Call;
use trellis_wire::codec::Timestamp as WireTimestamp;

use super::aws_managed::{self, AwsManaged};
use super::groups::group_named;
use super::roles::{path_constraints, role_named, tag_constraints};
use super::{
    Constraints, Empty, IamError, IamResult, check_inline_policy, commit, decode, encode, new_id,
    paging, required, url_encode, user_named,
};
use crate::AppState;
use crate::identity::{
    ATTACHMENT_KIND, EntityType, GROUP_KIND, MANAGED_POLICY_KIND, ROLE_KIND, StoredAttachment,
    StoredGroup, StoredManagedPolicy, StoredPolicyVersion, StoredRole, StoredUser, Tag, USER_KIND,
    policy_arn,
};

/// Versions a customer-managed policy may have at once (IAM's quota).
pub const VERSIONS_PER_POLICY: usize = 5;
/// Managed policies attached to one user, group or role (IAM's default quota).
pub const ATTACHED_PER_ENTITY: usize = 10;
/// Tags a customer-managed policy may carry.
pub const TAGS_PER_POLICY: usize = 50;

/// A managed policy as the API shows it: stored (customer-managed) or built in (AWS-managed).
#[allow(
    clippy::large_enum_variant,
    reason = "a handful live for one request; boxing buys nothing"
)]
enum Managed {
    Local(Record, StoredManagedPolicy),
    Aws(&'static AwsManaged),
}

fn no_such_policy(arn: &str) -> IamError {
    IamError::NoSuchEntity(format!("Policy {arn} does not exist or is not attachable."))
}

/// `ARN … is not valid.` unless the ARN names an IAM policy.
fn check_policy_arn(arn: &str) -> IamResult<()> {
    let mut c = Constraints::default();
    c.length(arn, "policyArn", 20, 2048);
    c.finish()?;
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[5].starts_with("policy/");
    if !ok {
        return Err(IamError::InvalidInput(format!("ARN {arn} is not valid.")));
    }
    Ok(())
}

async fn find_policy(tx: &mut Tx, arn: &str) -> IamResult<Option<Managed>> {
    if let Some(p) = aws_managed::by_arn(arn) {
        return Ok(Some(Managed::Aws(p)));
    }
    let Some(rec) = tx.get_by_arn(arn).await? else {
        return Ok(None);
    };
    if rec.kind != MANAGED_POLICY_KIND {
        return Ok(None);
    }
    let policy = decode(&rec)?;
    Ok(Some(Managed::Local(rec, policy)))
}

async fn policy_at(tx: &mut Tx, arn: &str) -> IamResult<Managed> {
    check_policy_arn(arn)?;
    find_policy(tx, arn)
        .await?
        .ok_or_else(|| no_such_policy(arn))
}

/// A customer-managed policy, for the operations that change one: an AWS-managed policy is
/// refused as IAM refuses it (it is not this account's to change).
async fn local_policy_at(
    tx: &mut Tx,
    arn: &str,
    action: &str,
    state: &AppState,
    call: &Call,
) -> IamResult<(Record, StoredManagedPolicy)> {
    match policy_at(tx, arn).await? {
        Managed::Local(rec, p) => Ok((rec, p)),
        Managed::Aws(_) => Err(IamError::AccessDenied(format!(
            "User: {} is not authorized to perform: iam:{action} on resource: policy {arn}",
            super::caller(call).arn(&state.ctx)
        ))),
    }
}

/// The model's `Policy`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyOutput {
    pub policy_name: String,
    pub policy_id: String,
    pub arn: String,
    pub path: String,
    pub default_version_id: String,
    pub attachment_count: i64,
    pub permissions_boundary_usage_count: i64,
    pub is_attachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub create_date: WireTimestamp,
    pub update_date: WireTimestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

impl PolicyOutput {
    /// `detail`: with the description and tags (CreatePolicy, GetPolicy), not in lists (as IAM).
    fn new(m: &Managed, partition: &str, attachments: usize, detail: bool) -> PolicyOutput {
        let count = i64::try_from(attachments).unwrap_or(i64::MAX);
        match m {
            Managed::Local(_, p) => PolicyOutput {
                policy_name: p.policy_name.clone(),
                policy_id: p.policy_id.clone(),
                arn: p.arn.clone(),
                path: p.path.clone(),
                default_version_id: p.default_version_id.clone(),
                attachment_count: count,
                permissions_boundary_usage_count: 0,
                is_attachable: true,
                description: p.description.clone().filter(|_| detail),
                create_date: WireTimestamp::from_unix_millis(p.create_date_ms),
                update_date: WireTimestamp::from_unix_millis(p.update_date_ms),
                tags: (detail && !p.tags.is_empty()).then(|| p.tags.clone()),
            },
            Managed::Aws(p) => PolicyOutput {
                policy_name: p.name.to_string(),
                policy_id: aws_managed::policy_id(p),
                arn: aws_managed::arn(partition, p),
                path: "/".into(),
                default_version_id: p.version_id.into(),
                attachment_count: count,
                permissions_boundary_usage_count: 0,
                is_attachable: true,
                description: detail.then(|| p.description.to_string()),
                create_date: WireTimestamp::from_unix_millis(p.create_date_ms),
                update_date: WireTimestamp::from_unix_millis(p.update_date_ms),
                tags: None,
            },
        }
    }

    fn name(m: &Managed) -> String {
        match m {
            Managed::Local(_, p) => p.policy_name.clone(),
            Managed::Aws(p) => p.name.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyResult {
    pub policy: PolicyOutput,
}

async fn attachment_count(tx: &mut Tx, arn: &str) -> IamResult<usize> {
    Ok(tx.list_referencing(ATTACHMENT_KIND, arn).await?.len())
}

// ---------------------------------------------------------------------------------------------
// Policies

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreatePolicyInput {
    pub policy_name: Option<String>,
    pub path: Option<String>,
    pub policy_document: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

pub async fn create_policy(
    state: AppState,
    input: CreatePolicyInput,
    _: Call,
) -> IamResult<PolicyResult> {
    let name = required(&input.policy_name, "policyName")?;
    let document = required(&input.policy_document, "policyDocument")?;
    let path = input.path.as_deref().unwrap_or("/");
    let mut c = Constraints::default();
    c.name(name, "policyName", 128);
    path_constraints(&mut c, path);
    if let Some(d) = &input.description {
        c.length(d, "description", 0, 1000);
    }
    tag_constraints(&mut c, &input.tags);
    c.finish()?;
    if input.tags.len() > TAGS_PER_POLICY {
        return Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for TagsPerPolicy: {TAGS_PER_POLICY}"
        )));
    }
    check_inline_policy(document, &format!("policy {name}"))?;
    let exists = |n: &str| {
        IamError::EntityAlreadyExists(format!(
            "A policy called {n} already exists. Duplicate names are not allowed."
        ))
    };
    let mut tx = state.store.write().await?;
    if let Some(rec) = tx
        .get_by_name(MANAGED_POLICY_KIND, None, &name.to_lowercase())
        .await?
    {
        let existing: StoredManagedPolicy = decode(&rec)?;
        return Err(exists(&existing.policy_name));
    }
    let now = Timestamp::now().unix_millis();
    let policy = StoredManagedPolicy {
        policy_name: name.to_string(),
        policy_id: new_id("ANPA", 17),
        arn: policy_arn(&state.ctx, path, name),
        path: path.to_string(),
        description: input.description.clone(),
        create_date_ms: now,
        update_date_ms: now,
        default_version_id: "v1".into(),
        next_version: 2,
        versions: vec![StoredPolicyVersion {
            version_id: "v1".into(),
            document: document.to_string(),
            create_date_ms: now,
        }],
        tags: input.tags.clone(),
    };
    let rec = Record {
        kind: MANAGED_POLICY_KIND.into(),
        id: policy.policy_id.clone(),
        parent: None,
        name: Some(name.to_lowercase()),
        arn: Some(policy.arn.clone()),
        refs: Vec::new(),
        body: encode(&policy)?,
        seq: 0,
    };
    match tx.insert(&rec).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return Err(exists(name)),
        Err(e) => return Err(e.into()),
    }
    commit(&state, tx).await?;
    Ok(PolicyResult {
        policy: PolicyOutput::new(&Managed::Local(rec, policy), &state.ctx.partition, 0, true),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyArnInput {
    pub policy_arn: Option<String>,
}

pub async fn get_policy(
    state: AppState,
    input: PolicyArnInput,
    _: Call,
) -> IamResult<PolicyResult> {
    let arn = required(&input.policy_arn, "policyArn")?;
    let mut tx = state.store.read().await?;
    let policy = policy_at(&mut tx, arn).await?;
    let count = attachment_count(&mut tx, arn).await?;
    Ok(PolicyResult {
        policy: PolicyOutput::new(&policy, &state.ctx.partition, count, true),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPoliciesInput {
    pub scope: Option<String>,
    pub only_attached: Option<bool>,
    pub path_prefix: Option<String>,
    pub policy_usage_filter: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPoliciesOutput {
    pub policies: Vec<PolicyOutput>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

fn enum_constraint(c: &mut Constraints, value: &str, member: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        c.fail(
            value,
            member,
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        );
    }
}

/// ListPolicies: AWS-managed and/or customer-managed policies (`Scope`), optionally only those
/// attached to something, under a path prefix; sorted by lower-cased name, then ARN.
pub async fn list_policies(
    state: AppState,
    input: ListPoliciesInput,
    _: Call,
) -> IamResult<ListPoliciesOutput> {
    let scope = input.scope.as_deref().unwrap_or("All");
    let prefix = input.path_prefix.as_deref().unwrap_or("/");
    let mut c = Constraints::default();
    enum_constraint(&mut c, scope, "scope", &["All", "AWS", "Local"]);
    if let Some(f) = &input.policy_usage_filter {
        enum_constraint(
            &mut c,
            f,
            "policyUsageFilter",
            &["PermissionsPolicy", "PermissionsBoundary"],
        );
    }
    super::path_prefix_constraints(&mut c, prefix);
    let paging = paging(&mut c, input.marker, input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for rec in tx.list(ATTACHMENT_KIND, None).await? {
        let a: StoredAttachment = decode(&rec)?;
        *counts.entry(a.policy_arn).or_default() += 1;
    }
    let mut all: Vec<(Managed, String)> = Vec::new();
    if scope != "Local" {
        for p in aws_managed::POLICIES {
            all.push((Managed::Aws(p), aws_managed::arn(&state.ctx.partition, p)));
        }
    }
    if scope != "AWS" {
        for rec in tx.list(MANAGED_POLICY_KIND, None).await? {
            let p: StoredManagedPolicy = decode(&rec)?;
            let arn = p.arn.clone();
            all.push((Managed::Local(rec, p), arn));
        }
    }
    // Boundaries are not supported: nothing is used as one.
    let boundaries_only = input.policy_usage_filter.as_deref() == Some("PermissionsBoundary");
    let only_attached = input.only_attached.unwrap_or(false);
    let path_of = |m: &Managed| match m {
        Managed::Local(_, p) => p.path.clone(),
        Managed::Aws(_) => "/".to_string(),
    };
    let chosen: Vec<(Managed, String)> = all
        .into_iter()
        .filter(|(m, arn)| {
            path_of(m).starts_with(prefix)
                && (!only_attached || counts.get(arn).copied().unwrap_or(0) > 0)
                && !(boundaries_only && only_attached)
        })
        .collect();
    let (page, marker) = paging.page(chosen, |(m, arn)| {
        format!("{} {arn}", PolicyOutput::name(m).to_lowercase())
    });
    Ok(ListPoliciesOutput {
        policies: page
            .iter()
            .map(|(m, arn)| {
                PolicyOutput::new(
                    m,
                    &state.ctx.partition,
                    counts.get(arn).copied().unwrap_or(0),
                    false,
                )
            })
            .collect(),
        is_truncated: marker.is_some(),
        marker,
    })
}

pub async fn delete_policy(state: AppState, input: PolicyArnInput, call: Call) -> IamResult<Empty> {
    let arn = required(&input.policy_arn, "policyArn")?;
    let mut tx = state.store.write().await?;
    let (rec, policy) = local_policy_at(&mut tx, arn, "DeletePolicy", &state, &call).await?;
    if attachment_count(&mut tx, arn).await? > 0 {
        return Err(IamError::DeleteConflict(
            "Cannot delete a policy attached to entities.".into(),
        ));
    }
    if policy.versions.len() > 1 {
        return Err(IamError::DeleteConflict(
            "This policy has more than one version. Before you delete a policy, you must delete \
             the policy's versions. The default version is deleted with the policy."
                .into(),
        ));
    }
    tx.delete(MANAGED_POLICY_KIND, &rec.id).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

// ---------------------------------------------------------------------------------------------
// Tags

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagPolicyInput {
    pub policy_arn: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// TagPolicy: a new value replaces the tag of the same key (regardless of case).
pub async fn tag_policy(state: AppState, input: TagPolicyInput, call: Call) -> IamResult<Empty> {
    let arn = required(&input.policy_arn, "policyArn")?;
    let mut c = Constraints::default();
    tag_constraints(&mut c, &input.tags);
    c.finish()?;
    let mut tx = state.store.write().await?;
    let (mut rec, mut policy) = local_policy_at(&mut tx, arn, "TagPolicy", &state, &call).await?;
    for t in &input.tags {
        policy
            .tags
            .retain(|old| !old.key.eq_ignore_ascii_case(&t.key));
        policy.tags.push(t.clone());
    }
    if policy.tags.len() > TAGS_PER_POLICY {
        return Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for TagsPerPolicy: {TAGS_PER_POLICY}"
        )));
    }
    rec.body = encode(&policy)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagPolicyInput {
    pub policy_arn: Option<String>,
    #[serde(default)]
    pub tag_keys: Vec<String>,
}

pub async fn untag_policy(
    state: AppState,
    input: UntagPolicyInput,
    call: Call,
) -> IamResult<Empty> {
    let arn = required(&input.policy_arn, "policyArn")?;
    let mut tx = state.store.write().await?;
    let (mut rec, mut policy) = local_policy_at(&mut tx, arn, "UntagPolicy", &state, &call).await?;
    let before = policy.tags.len();
    policy.tags.retain(|t| {
        !input
            .tag_keys
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&t.key))
    });
    if policy.tags.len() == before {
        return Ok(Empty {});
    }
    rec.body = encode(&policy)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPolicyTagsInput {
    pub policy_arn: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPolicyTagsOutput {
    pub tags: Vec<Tag>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// ListPolicyTags: a customer-managed policy's tags; an AWS-managed policy has none.
pub async fn list_policy_tags(
    state: AppState,
    input: ListPolicyTagsInput,
    _: Call,
) -> IamResult<ListPolicyTagsOutput> {
    let arn = required(&input.policy_arn, "policyArn")?;
    let mut c = Constraints::default();
    let paging = paging(&mut c, input.marker.clone(), input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let tags = match policy_at(&mut tx, arn).await? {
        Managed::Local(_, p) => p.tags,
        Managed::Aws(_) => Vec::new(),
    };
    let (page, marker) = paging.page(tags, |t| t.key.clone());
    Ok(ListPolicyTagsOutput {
        tags: page,
        is_truncated: marker.is_some(),
        marker,
    })
}

// ---------------------------------------------------------------------------------------------
// Versions

/// The model's `PolicyVersion`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyVersionOutput {
    /// URL-encoded, as IAM returns every policy document; only GetPolicyVersion carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    pub version_id: String,
    pub is_default_version: bool,
    pub create_date: WireTimestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyVersionResult {
    pub policy_version: PolicyVersionOutput,
}

fn version_constraints(c: &mut Constraints, version: &str) {
    let digits = version.strip_prefix('v').unwrap_or("");
    let number = digits.split('.').next().unwrap_or("");
    let ok = !number.is_empty()
        && !number.starts_with('0')
        && number.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        c.fail(
            version,
            "versionId",
            r"Member must satisfy regular expression pattern: v[1-9][0-9]*(\.[A-Za-z0-9-]*)?",
        );
    }
}

fn no_such_version(arn: &str, version: &str) -> IamError {
    IamError::NoSuchEntity(format!(
        "Policy {arn} version {version} does not exist or is not attachable."
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreatePolicyVersionInput {
    pub policy_arn: Option<String>,
    pub policy_document: Option<String>,
    pub set_as_default: Option<bool>,
}

pub async fn create_policy_version(
    state: AppState,
    input: CreatePolicyVersionInput,
    call: Call,
) -> IamResult<PolicyVersionResult> {
    let arn = required(&input.policy_arn, "policyArn")?;
    let document = required(&input.policy_document, "policyDocument")?;
    let mut tx = state.store.write().await?;
    let (mut rec, mut policy) =
        local_policy_at(&mut tx, arn, "CreatePolicyVersion", &state, &call).await?;
    check_inline_policy(document, &format!("policy {}", policy.policy_name))?;
    if policy.versions.len() >= VERSIONS_PER_POLICY {
        return Err(IamError::LimitExceeded(format!(
            "A managed policy can have up to {VERSIONS_PER_POLICY} versions. Before you create a \
             new version, you must delete an existing version."
        )));
    }
    let now = Timestamp::now().unix_millis();
    let version = StoredPolicyVersion {
        version_id: format!("v{}", policy.next_version),
        document: document.to_string(),
        create_date_ms: now,
    };
    policy.next_version += 1;
    let is_default = input.set_as_default.unwrap_or(false);
    if is_default {
        policy.default_version_id = version.version_id.clone();
    }
    policy.update_date_ms = now;
    policy.versions.push(version.clone());
    rec.body = encode(&policy)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(PolicyVersionResult {
        policy_version: PolicyVersionOutput {
            document: None,
            version_id: version.version_id,
            is_default_version: is_default,
            create_date: WireTimestamp::from_unix_millis(now),
        },
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyVersionInput {
    pub policy_arn: Option<String>,
    pub version_id: Option<String>,
}

impl PolicyVersionInput {
    fn validate(&self) -> IamResult<(&str, &str)> {
        let arn = required(&self.policy_arn, "policyArn")?;
        let version = required(&self.version_id, "versionId")?;
        let mut c = Constraints::default();
        version_constraints(&mut c, version);
        c.finish()?;
        Ok((arn, version))
    }
}

pub async fn get_policy_version(
    state: AppState,
    input: PolicyVersionInput,
    _: Call,
) -> IamResult<PolicyVersionResult> {
    let (arn, version) = input.validate()?;
    let mut tx = state.store.read().await?;
    let out = match policy_at(&mut tx, arn).await? {
        Managed::Local(_, p) => {
            let v = p
                .versions
                .iter()
                .find(|v| v.version_id == version)
                .ok_or_else(|| no_such_version(arn, version))?;
            PolicyVersionOutput {
                document: Some(url_encode(&v.document)),
                version_id: v.version_id.clone(),
                is_default_version: v.version_id == p.default_version_id,
                create_date: WireTimestamp::from_unix_millis(v.create_date_ms),
            }
        }
        Managed::Aws(p) if p.version_id == version => PolicyVersionOutput {
            document: Some(url_encode(p.document)),
            version_id: p.version_id.into(),
            is_default_version: true,
            create_date: WireTimestamp::from_unix_millis(p.update_date_ms),
        },
        // Trellis keeps only an AWS-managed policy's current version.
        Managed::Aws(_) => return Err(no_such_version(arn, version)),
    };
    Ok(PolicyVersionResult {
        policy_version: out,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPolicyVersionsInput {
    pub policy_arn: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPolicyVersionsOutput {
    pub versions: Vec<PolicyVersionOutput>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// The sort key of a version: newest first, as IAM lists them.
fn version_key(version_id: &str) -> String {
    let n: u64 = version_id
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    format!("{:020}", u64::MAX - n)
}

pub async fn list_policy_versions(
    state: AppState,
    input: ListPolicyVersionsInput,
    _: Call,
) -> IamResult<ListPolicyVersionsOutput> {
    let arn = required(&input.policy_arn, "policyArn")?;
    let mut c = Constraints::default();
    let paging = paging(&mut c, input.marker, input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let versions: Vec<PolicyVersionOutput> = match policy_at(&mut tx, arn).await? {
        Managed::Local(_, p) => p
            .versions
            .iter()
            .map(|v| PolicyVersionOutput {
                document: None,
                version_id: v.version_id.clone(),
                is_default_version: v.version_id == p.default_version_id,
                create_date: WireTimestamp::from_unix_millis(v.create_date_ms),
            })
            .collect(),
        Managed::Aws(p) => vec![PolicyVersionOutput {
            document: None,
            version_id: p.version_id.into(),
            is_default_version: true,
            create_date: WireTimestamp::from_unix_millis(p.update_date_ms),
        }],
    };
    let (page, marker) = paging.page(versions, |v| version_key(&v.version_id));
    Ok(ListPolicyVersionsOutput {
        versions: page,
        is_truncated: marker.is_some(),
        marker,
    })
}

pub async fn delete_policy_version(
    state: AppState,
    input: PolicyVersionInput,
    call: Call,
) -> IamResult<Empty> {
    let (arn, version) = input.validate()?;
    let mut tx = state.store.write().await?;
    let (mut rec, mut policy) =
        local_policy_at(&mut tx, arn, "DeletePolicyVersion", &state, &call).await?;
    if !policy.versions.iter().any(|v| v.version_id == version) {
        return Err(no_such_version(arn, version));
    }
    if policy.default_version_id == version {
        return Err(IamError::DeleteConflict(
            "Cannot delete the default version of a policy.".into(),
        ));
    }
    policy.versions.retain(|v| v.version_id != version);
    rec.body = encode(&policy)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

pub async fn set_default_policy_version(
    state: AppState,
    input: PolicyVersionInput,
    call: Call,
) -> IamResult<Empty> {
    let (arn, version) = input.validate()?;
    let mut tx = state.store.write().await?;
    let (mut rec, mut policy) =
        local_policy_at(&mut tx, arn, "SetDefaultPolicyVersion", &state, &call).await?;
    if !policy.versions.iter().any(|v| v.version_id == version) {
        return Err(no_such_version(arn, version));
    }
    if policy.default_version_id == version {
        return Ok(Empty {});
    }
    policy.default_version_id = version.to_string();
    policy.update_date_ms = Timestamp::now().unix_millis();
    rec.body = encode(&policy)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

// ---------------------------------------------------------------------------------------------
// Attachments

/// The user, group or role an attachment operation names: its ID and what IAM calls its quota.
async fn entity(tx: &mut Tx, kind: EntityType, name: &str) -> IamResult<(String, &'static str)> {
    Ok(match kind {
        EntityType::User => (user_named(tx, name).await?.1.user_id, "PoliciesPerUser"),
        EntityType::Group => (group_named(tx, name).await?.1.group_id, "PoliciesPerGroup"),
        EntityType::Role => (role_named(tx, name).await?.1.role_id, "PoliciesPerRole"),
    })
}

pub(crate) fn attachment_id(entity_id: &str, arn: &str) -> String {
    format!("{entity_id} {arn}")
}

/// The entity's name member and its constraint (user and group names 128, role names 64).
fn entity_name(kind: EntityType, value: &Option<String>) -> IamResult<&str> {
    let (member, max) = match kind {
        EntityType::User => ("userName", 128),
        EntityType::Group => ("groupName", 128),
        EntityType::Role => ("roleName", 64),
    };
    let name = required(value, member)?;
    let mut c = Constraints::default();
    c.name(name, member, max);
    c.finish()?;
    Ok(name)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttachInput {
    pub user_name: Option<String>,
    pub group_name: Option<String>,
    pub role_name: Option<String>,
    pub policy_arn: Option<String>,
}

impl AttachInput {
    fn name_of(&self, kind: EntityType) -> IamResult<&str> {
        let value = match kind {
            EntityType::User => &self.user_name,
            EntityType::Group => &self.group_name,
            EntityType::Role => &self.role_name,
        };
        entity_name(kind, value)
    }
}

async fn attach(state: AppState, kind: EntityType, input: AttachInput) -> IamResult<Empty> {
    let name = input.name_of(kind)?;
    let arn = required(&input.policy_arn, "policyArn")?;
    check_policy_arn(arn)?;
    let mut tx = state.store.write().await?;
    let (entity_id, quota) = entity(&mut tx, kind, name).await?;
    if find_policy(&mut tx, arn).await?.is_none() {
        return Err(no_such_policy(arn));
    }
    let id = attachment_id(&entity_id, arn);
    if tx.get(ATTACHMENT_KIND, &id).await?.is_some() {
        return Ok(Empty {});
    }
    if tx.count(ATTACHMENT_KIND, Some(&entity_id)).await? >= ATTACHED_PER_ENTITY as u64 {
        return Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for {quota}: {ATTACHED_PER_ENTITY}"
        )));
    }
    let attachment = StoredAttachment {
        entity_type: kind,
        entity_id: entity_id.clone(),
        policy_arn: arn.to_string(),
    };
    tx.insert(&Record {
        kind: ATTACHMENT_KIND.into(),
        id,
        parent: Some(entity_id),
        name: None,
        arn: None,
        refs: vec![arn.to_string()],
        body: encode(&attachment)?,
        seq: 0,
    })
    .await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

async fn detach(state: AppState, kind: EntityType, input: AttachInput) -> IamResult<Empty> {
    let name = input.name_of(kind)?;
    let arn = required(&input.policy_arn, "policyArn")?;
    check_policy_arn(arn)?;
    let mut tx = state.store.write().await?;
    let (entity_id, _) = entity(&mut tx, kind, name).await?;
    if !tx
        .delete(ATTACHMENT_KIND, &attachment_id(&entity_id, arn))
        .await?
    {
        return Err(IamError::NoSuchEntity(format!(
            "Policy {arn} was not found."
        )));
    }
    commit(&state, tx).await?;
    Ok(Empty {})
}

pub async fn attach_user_policy(state: AppState, input: AttachInput, _: Call) -> IamResult<Empty> {
    attach(state, EntityType::User, input).await
}

pub async fn detach_user_policy(state: AppState, input: AttachInput, _: Call) -> IamResult<Empty> {
    detach(state, EntityType::User, input).await
}

pub async fn attach_group_policy(state: AppState, input: AttachInput, _: Call) -> IamResult<Empty> {
    attach(state, EntityType::Group, input).await
}

pub async fn detach_group_policy(state: AppState, input: AttachInput, _: Call) -> IamResult<Empty> {
    detach(state, EntityType::Group, input).await
}

pub async fn attach_role_policy(state: AppState, input: AttachInput, _: Call) -> IamResult<Empty> {
    attach(state, EntityType::Role, input).await
}

pub async fn detach_role_policy(state: AppState, input: AttachInput, _: Call) -> IamResult<Empty> {
    detach(state, EntityType::Role, input).await
}

/// `AttachedPolicy`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttachedPolicy {
    pub policy_name: String,
    pub policy_arn: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAttachedInput {
    pub user_name: Option<String>,
    pub group_name: Option<String>,
    pub role_name: Option<String>,
    pub path_prefix: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAttachedOutput {
    pub attached_policies: Vec<AttachedPolicy>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

async fn list_attached(
    state: AppState,
    kind: EntityType,
    input: ListAttachedInput,
) -> IamResult<ListAttachedOutput> {
    let value = match kind {
        EntityType::User => &input.user_name,
        EntityType::Group => &input.group_name,
        EntityType::Role => &input.role_name,
    };
    let name = entity_name(kind, value)?;
    let prefix = input.path_prefix.as_deref().unwrap_or("/");
    let mut c = Constraints::default();
    path_constraints(&mut c, prefix);
    let paging = paging(&mut c, input.marker.clone(), input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let (entity_id, _) = entity(&mut tx, kind, name).await?;
    let mut attached = Vec::new();
    for rec in tx.list(ATTACHMENT_KIND, Some(&entity_id)).await? {
        let a: StoredAttachment = decode(&rec)?;
        match find_policy(&mut tx, &a.policy_arn).await? {
            Some(Managed::Local(_, p)) if p.path.starts_with(prefix) => {
                attached.push(AttachedPolicy {
                    policy_name: p.policy_name,
                    policy_arn: a.policy_arn,
                });
            }
            // AWS-managed policies are all under `/`.
            Some(Managed::Aws(p)) if "/".starts_with(prefix) => attached.push(AttachedPolicy {
                policy_name: p.name.to_string(),
                policy_arn: a.policy_arn,
            }),
            _ => {}
        }
    }
    let (page, marker) = paging.page(attached, |a| {
        format!("{} {}", a.policy_name.to_lowercase(), a.policy_arn)
    });
    Ok(ListAttachedOutput {
        attached_policies: page,
        is_truncated: marker.is_some(),
        marker,
    })
}

pub async fn list_attached_user_policies(
    state: AppState,
    input: ListAttachedInput,
    _: Call,
) -> IamResult<ListAttachedOutput> {
    list_attached(state, EntityType::User, input).await
}

pub async fn list_attached_group_policies(
    state: AppState,
    input: ListAttachedInput,
    _: Call,
) -> IamResult<ListAttachedOutput> {
    list_attached(state, EntityType::Group, input).await
}

/// Terraform's `aws_iam_role` reads it on every refresh.
pub async fn list_attached_role_policies(
    state: AppState,
    input: ListAttachedInput,
    _: Call,
) -> IamResult<ListAttachedOutput> {
    list_attached(state, EntityType::Role, input).await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEntitiesForPolicyInput {
    pub policy_arn: Option<String>,
    pub entity_filter: Option<String>,
    pub path_prefix: Option<String>,
    pub policy_usage_filter: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyGroup {
    pub group_name: String,
    pub group_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyUser {
    pub user_name: String,
    pub user_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyRole {
    pub role_name: String,
    pub role_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListEntitiesForPolicyOutput {
    pub policy_groups: Vec<PolicyGroup>,
    pub policy_users: Vec<PolicyUser>,
    pub policy_roles: Vec<PolicyRole>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

/// One entity a policy is attached to, for ListEntitiesForPolicy's one sorted page.
enum Attached {
    User(StoredUser),
    Group(StoredGroup),
    Role(StoredRole),
}

impl Attached {
    /// Groups, then users, then roles, each by lower-cased name.
    fn key(&self) -> String {
        match self {
            Attached::Group(g) => format!("1 {}", g.group_name.to_lowercase()),
            Attached::User(u) => format!("2 {}", u.user_name.to_lowercase()),
            Attached::Role(r) => format!("3 {}", r.role_name.to_lowercase()),
        }
    }

    fn path(&self) -> &str {
        match self {
            Attached::Group(g) => &g.path,
            Attached::User(u) => &u.path,
            Attached::Role(r) => &r.path,
        }
    }
}

pub async fn list_entities_for_policy(
    state: AppState,
    input: ListEntitiesForPolicyInput,
    _: Call,
) -> IamResult<ListEntitiesForPolicyOutput> {
    let arn = required(&input.policy_arn, "policyArn")?;
    let prefix = input.path_prefix.as_deref().unwrap_or("/");
    let mut c = Constraints::default();
    path_constraints(&mut c, prefix);
    if let Some(f) = &input.entity_filter {
        enum_constraint(
            &mut c,
            f,
            "entityFilter",
            &[
                "User",
                "Role",
                "Group",
                "LocalManagedPolicy",
                "AWSManagedPolicy",
            ],
        );
    }
    if let Some(f) = &input.policy_usage_filter {
        enum_constraint(
            &mut c,
            f,
            "policyUsageFilter",
            &["PermissionsPolicy", "PermissionsBoundary"],
        );
    }
    let paging = paging(&mut c, input.marker.clone(), input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    policy_at(&mut tx, arn).await?;
    let filter = input.entity_filter.as_deref();
    let mut found = Vec::new();
    // Nothing uses a policy as a permissions boundary.
    if input.policy_usage_filter.as_deref() != Some("PermissionsBoundary") {
        for rec in tx.list_referencing(ATTACHMENT_KIND, arn).await? {
            let a: StoredAttachment = decode(&rec)?;
            let wanted = match filter {
                None => true,
                Some(f) => matches!(
                    (f, a.entity_type),
                    ("User", EntityType::User)
                        | ("Group", EntityType::Group)
                        | ("Role", EntityType::Role)
                ),
            };
            if !wanted {
                continue;
            }
            let kind = match a.entity_type {
                EntityType::User => USER_KIND,
                EntityType::Group => GROUP_KIND,
                EntityType::Role => ROLE_KIND,
            };
            let Some(rec) = tx.get(kind, &a.entity_id).await? else {
                continue;
            };
            let entity = match a.entity_type {
                EntityType::User => Attached::User(decode(&rec)?),
                EntityType::Group => Attached::Group(decode(&rec)?),
                EntityType::Role => Attached::Role(decode(&rec)?),
            };
            if entity.path().starts_with(prefix) {
                found.push(entity);
            }
        }
    }
    let (page, marker) = paging.page(found, Attached::key);
    let mut out = ListEntitiesForPolicyOutput {
        policy_groups: Vec::new(),
        policy_users: Vec::new(),
        policy_roles: Vec::new(),
        is_truncated: marker.is_some(),
        marker,
    };
    for e in page {
        match e {
            Attached::Group(g) => out.policy_groups.push(PolicyGroup {
                group_name: g.group_name,
                group_id: g.group_id,
            }),
            Attached::User(u) => out.policy_users.push(PolicyUser {
                user_name: u.user_name,
                user_id: u.user_id,
            }),
            Attached::Role(r) => out.policy_roles.push(PolicyRole {
                role_name: r.role_name,
                role_id: r.role_id,
            }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_arns_and_versions_are_checked() {
        for ok in [
            "arn:aws:iam::111122223333:policy/p",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "arn:aws:iam::111122223333:policy/team/p",
        ] {
            assert!(check_policy_arn(ok).is_ok(), "{ok}");
        }
        for bad in [
            "arn:aws:iam::111122223333:role/r",
            "arn:aws:s3:::bucket/policy/x",
            "not-an-arn-at-all-xxxxx",
        ] {
            assert!(
                matches!(check_policy_arn(bad), Err(IamError::InvalidInput(_))),
                "{bad}"
            );
        }
        for (version, ok) in [
            ("v1", true),
            ("v12", true),
            ("v0", false),
            ("1", false),
            ("v", false),
        ] {
            let mut c = Constraints::default();
            version_constraints(&mut c, version);
            assert_eq!(c.finish().is_ok(), ok, "{version}");
        }
        // Newest first.
        let mut keys = vec![version_key("v2"), version_key("v10"), version_key("v1")];
        keys.sort();
        assert_eq!(
            keys,
            vec![version_key("v10"), version_key("v2"), version_key("v1")]
        );
    }
}
