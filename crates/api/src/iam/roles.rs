//! IAM roles: CreateRole, GetRole, ListRoles, DeleteRole, UpdateAssumeRolePolicy, the role's
//! inline policies and its tags. A role's trust policy (`AssumeRolePolicyDocument`) is validated
//! as IAM validates one ([`validate_trust_policy`]); STS evaluates it ([`crate::sts`]). Managed
//! policies attached to a role are [`super::managed`]'s.

use trellis_model::Timestamp;
use trellis_policy::PolicyKind;
use trellis_store::{Record, StoreError, Tx};
use trellis_wire::Call;
use trellis_wire::codec::Timestamp as WireTimestamp;

use super::{
    Constraints, Empty, IamError, IamResult, check_inline_policy, commit, decode, encode, new_id,
    paging, policy_id, put_inline_policy, required, url_encode,
};
use crate::AppState;
use crate::identity::{
    ATTACHMENT_KIND, ROLE_KIND, ROLE_POLICY_KIND, StoredRole, StoredRolePolicy, Tag, role_arn,
};
use serde::{Deserialize, Serialize};

/// IAM's default quota for a role's trust policy, in characters.
pub const TRUST_POLICY_MAX_CHARS: usize = 2048;
/// Tags a role may carry.
pub const TAGS_PER_ROLE: usize = 50;
/// MaxSessionDuration's default and bounds (seconds).
pub const DEFAULT_MAX_SESSION: i64 = 3600;
pub const MAX_SESSION_LIMIT: i64 = 43_200;

/// The actions a trust policy may name.
const TRUST_ACTIONS: [&str; 2] = ["sts:AssumeRole", "sts:TagSession"];

/// A trust policy's problems, as IAM's `MalformedPolicyDocument` words them; `Ok` when it is a
/// valid trust policy: a resource-based policy whose statements name a `Principal` (or
/// `NotPrincipal`), no `Resource`, and only `sts:AssumeRole` / `sts:TagSession`.
pub fn validate_trust_policy(document: &str) -> IamResult<()> {
    if let Err(diagnostics) = trellis_policy::parse(document, PolicyKind::Resource) {
        let problems: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        return Err(IamError::MalformedPolicyDocument(format!(
            "Syntax errors in policy: {}",
            problems.join("; ")
        )));
    }
    let value: serde_json::Value = serde_json::from_str(document)
        .map_err(|e| IamError::MalformedPolicyDocument(e.to_string()))?;
    let statements = match value.get("Statement") {
        Some(serde_json::Value::Array(items)) => items.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    for statement in &statements {
        if statement.get("Resource").is_some() || statement.get("NotResource").is_some() {
            return Err(IamError::MalformedPolicyDocument(
                "Has prohibited field Resource".into(),
            ));
        }
        if statement.get("NotAction").is_some() {
            return Err(IamError::MalformedPolicyDocument(
                "NotAction is not supported in a trust policy".into(),
            ));
        }
        let actions: Vec<&str> = match statement.get("Action") {
            Some(serde_json::Value::String(a)) => vec![a.as_str()],
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|a| a.as_str()).collect()
            }
            _ => Vec::new(),
        };
        for action in actions {
            if !TRUST_ACTIONS.iter().any(|a| a.eq_ignore_ascii_case(action)) {
                return Err(IamError::MalformedPolicyDocument(format!(
                    "Invalid action in a trust policy: {action}; Trellis supports {}",
                    TRUST_ACTIONS.join(" and ")
                )));
            }
        }
    }
    Ok(())
}

fn trust_size(document: &str) -> IamResult<()> {
    if document.chars().count() > TRUST_POLICY_MAX_CHARS {
        return Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for ACLSizePerRole: {TRUST_POLICY_MAX_CHARS}"
        )));
    }
    Ok(())
}

fn no_such_role(name: &str) -> IamError {
    IamError::NoSuchEntity(format!("The role with name {name} cannot be found."))
}

async fn find_role(tx: &mut Tx, name: &str) -> IamResult<Option<(Record, StoredRole)>> {
    let Some(rec) = tx
        .get_by_name(ROLE_KIND, None, &name.to_lowercase())
        .await?
    else {
        return Ok(None);
    };
    let role = decode(&rec)?;
    Ok(Some((rec, role)))
}

pub(super) async fn role_named(tx: &mut Tx, name: &str) -> IamResult<(Record, StoredRole)> {
    find_role(tx, name).await?.ok_or_else(|| no_such_role(name))
}

pub(super) fn path_constraints(c: &mut Constraints, path: &str) {
    c.length(path, "path", 1, 512);
    let ok = path == "/"
        || (path.len() >= 3
            && path.starts_with('/')
            && path.ends_with('/')
            && path.chars().all(|ch| ('\u{21}'..='\u{7e}').contains(&ch)));
    if !ok {
        c.fail(
            path,
            "path",
            r"Member must satisfy regular expression pattern: (\u002F)|(\u002F[\u0021-\u007E]+\u002F)",
        );
    }
}

pub(super) fn tag_constraints(c: &mut Constraints, tags: &[Tag]) {
    for (i, t) in tags.iter().enumerate() {
        c.length(&t.key, &format!("tags.{}.member.key", i + 1), 1, 128);
        c.length(&t.value, &format!("tags.{}.member.value", i + 1), 0, 256);
    }
}

/// The model's `Role`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoleOutput {
    pub path: String,
    pub role_name: String,
    pub role_id: String,
    pub arn: String,
    pub create_date: WireTimestamp,
    /// URL-encoded, as IAM returns every policy document.
    pub assume_role_policy_document: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub max_session_duration: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

impl RoleOutput {
    fn new(r: &StoredRole, with_tags: bool) -> RoleOutput {
        RoleOutput {
            path: r.path.clone(),
            role_name: r.role_name.clone(),
            role_id: r.role_id.clone(),
            arn: r.arn.clone(),
            create_date: WireTimestamp::from_unix_millis(r.create_date_ms),
            assume_role_policy_document: url_encode(&r.assume_role_policy_document),
            description: r.description.clone(),
            max_session_duration: r.max_session_duration,
            tags: (with_tags && !r.tags.is_empty()).then(|| r.tags.clone()),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoleResult {
    pub role: RoleOutput,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRoleInput {
    pub role_name: Option<String>,
    pub path: Option<String>,
    pub assume_role_policy_document: Option<String>,
    pub description: Option<String>,
    pub max_session_duration: Option<i64>,
    pub permissions_boundary: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

pub async fn create_role(
    state: AppState,
    input: CreateRoleInput,
    _: Call,
) -> IamResult<RoleResult> {
    let name = required(&input.role_name, "roleName")?;
    let document = required(
        &input.assume_role_policy_document,
        "assumeRolePolicyDocument",
    )?;
    let path = input.path.as_deref().unwrap_or("/");
    let max_session = input.max_session_duration.unwrap_or(DEFAULT_MAX_SESSION);
    let mut c = Constraints::default();
    c.name(name, "roleName", 64);
    path_constraints(&mut c, path);
    c.length(document, "assumeRolePolicyDocument", 1, 131_072);
    if let Some(d) = &input.description {
        c.length(d, "description", 0, 1000);
    }
    if max_session < DEFAULT_MAX_SESSION {
        c.fail(
            &max_session.to_string(),
            "maxSessionDuration",
            "Member must have value greater than or equal to 3600",
        );
    } else if max_session > MAX_SESSION_LIMIT {
        c.fail(
            &max_session.to_string(),
            "maxSessionDuration",
            "Member must have value less than or equal to 43200",
        );
    }
    tag_constraints(&mut c, &input.tags);
    c.finish()?;
    if input.permissions_boundary.is_some() {
        return Err(IamError::InvalidInput(
            "Trellis does not support permissions boundaries on roles yet".into(),
        ));
    }
    if input.tags.len() > TAGS_PER_ROLE {
        return Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for TagsPerRole: {TAGS_PER_ROLE}"
        )));
    }
    trust_size(document)?;
    validate_trust_policy(document)?;
    let mut tx = state.store.write().await?;
    if let Some((_, existing)) = find_role(&mut tx, name).await? {
        return Err(IamError::EntityAlreadyExists(format!(
            "Role with name {} already exists.",
            existing.role_name
        )));
    }
    let role = StoredRole {
        arn: role_arn(&state.ctx, path, name),
        role_id: new_id("AROA", 17),
        role_name: name.to_string(),
        path: path.to_string(),
        create_date_ms: Timestamp::now().unix_millis(),
        assume_role_policy_document: document.to_string(),
        description: input.description.clone(),
        max_session_duration: max_session,
        tags: input.tags.clone(),
    };
    let rec = Record {
        kind: ROLE_KIND.into(),
        id: role.role_id.clone(),
        parent: None,
        name: Some(name.to_lowercase()),
        arn: Some(role.arn.clone()),
        refs: Vec::new(),
        body: encode(&role)?,
        seq: 0,
    };
    match tx.insert(&rec).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(IamError::EntityAlreadyExists(format!(
                "Role with name {name} already exists."
            )));
        }
        Err(e) => return Err(e.into()),
    }
    commit(&state, tx).await?;
    Ok(RoleResult {
        role: RoleOutput::new(&role, true),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoleNameInput {
    pub role_name: Option<String>,
}

fn role_name(value: &Option<String>) -> IamResult<&str> {
    let name = required(value, "roleName")?;
    let mut c = Constraints::default();
    c.name(name, "roleName", 64);
    c.finish()?;
    Ok(name)
}

pub async fn get_role(state: AppState, input: RoleNameInput, _: Call) -> IamResult<RoleResult> {
    let name = role_name(&input.role_name)?;
    let mut tx = state.store.read().await?;
    let (_, role) = role_named(&mut tx, name).await?;
    Ok(RoleResult {
        role: RoleOutput::new(&role, true),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRolesInput {
    pub path_prefix: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRolesOutput {
    pub roles: Vec<RoleOutput>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

pub async fn list_roles(
    state: AppState,
    input: ListRolesInput,
    _: Call,
) -> IamResult<ListRolesOutput> {
    let mut c = Constraints::default();
    let paging = paging(&mut c, input.marker, input.max_items);
    let prefix = input.path_prefix.unwrap_or_else(|| "/".into());
    c.length(&prefix, "pathPrefix", 1, 512);
    if !prefix.starts_with('/') {
        c.fail(
            &prefix,
            "pathPrefix",
            r"Member must satisfy regular expression pattern: \u002F[\u0021-\u007F]*",
        );
    }
    c.finish()?;
    let mut tx = state.store.read().await?;
    let roles: Vec<StoredRole> = tx
        .list(ROLE_KIND, None)
        .await?
        .iter()
        .map(decode)
        .collect::<IamResult<_>>()?;
    let roles: Vec<StoredRole> = roles
        .into_iter()
        .filter(|r| r.path.starts_with(&prefix))
        .collect();
    let (page, marker) = paging.page(roles, |r| r.role_name.to_lowercase());
    Ok(ListRolesOutput {
        // ListRoles answers no tags, as IAM's does not.
        roles: page.iter().map(|r| RoleOutput::new(r, false)).collect(),
        is_truncated: marker.is_some(),
        marker,
    })
}

pub async fn delete_role(state: AppState, input: RoleNameInput, _: Call) -> IamResult<Empty> {
    let name = role_name(&input.role_name)?;
    let mut tx = state.store.write().await?;
    let (rec, role) = role_named(&mut tx, name).await?;
    if tx.count(ROLE_POLICY_KIND, Some(&role.role_id)).await? > 0 {
        return Err(IamError::DeleteConflict(
            "Cannot delete entity, must delete policies first.".into(),
        ));
    }
    if tx.count(ATTACHMENT_KIND, Some(&role.role_id)).await? > 0 {
        return Err(IamError::DeleteConflict(
            "Cannot delete entity, must detach all policies first.".into(),
        ));
    }
    tx.delete(ROLE_KIND, &rec.id).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAssumeRolePolicyInput {
    pub role_name: Option<String>,
    pub policy_document: Option<String>,
}

pub async fn update_assume_role_policy(
    state: AppState,
    input: UpdateAssumeRolePolicyInput,
    _: Call,
) -> IamResult<Empty> {
    let name = role_name(&input.role_name)?;
    let document = required(&input.policy_document, "policyDocument")?;
    let mut c = Constraints::default();
    c.length(document, "policyDocument", 1, 131_072);
    c.finish()?;
    trust_size(document)?;
    validate_trust_policy(document)?;
    let mut tx = state.store.write().await?;
    let (mut rec, mut role) = role_named(&mut tx, name).await?;
    if role.assume_role_policy_document == document {
        return Ok(Empty {});
    }
    role.assume_role_policy_document = document.to_string();
    rec.body = encode(&role)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

// ---------------------------------------------------------------------------------------------
// Inline policies

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RolePolicyInput {
    pub role_name: Option<String>,
    pub policy_name: Option<String>,
    pub policy_document: Option<String>,
}

impl RolePolicyInput {
    fn names(&self) -> IamResult<(&str, &str)> {
        let role = required(&self.role_name, "roleName")?;
        let policy = required(&self.policy_name, "policyName")?;
        let mut c = Constraints::default();
        c.name(role, "roleName", 64);
        c.name(policy, "policyName", 128);
        c.finish()?;
        Ok((role, policy))
    }
}

fn no_such_policy(role: &str, policy: &str) -> IamError {
    IamError::NoSuchEntity(format!(
        "The role policy with name {policy} cannot be found for role {role}."
    ))
}

pub async fn put_role_policy(state: AppState, input: RolePolicyInput, _: Call) -> IamResult<Empty> {
    let (role_name, policy_name) = input.names()?;
    let document = required(&input.policy_document, "policyDocument")?;
    check_inline_policy(document, &format!("role {role_name}"))?;
    let mut tx = state.store.write().await?;
    let (_, role) = role_named(&mut tx, role_name).await?;
    let stored = StoredRolePolicy {
        role_id: role.role_id.clone(),
        policy_name: policy_name.to_string(),
        policy_document: document.to_string(),
    };
    if put_inline_policy(
        &mut tx,
        ROLE_POLICY_KIND,
        &role.role_id,
        policy_name,
        &stored,
    )
    .await?
    {
        commit(&state, tx).await?;
    }
    Ok(Empty {})
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRolePolicyOutput {
    pub role_name: String,
    pub policy_name: String,
    /// URL-encoded, as IAM returns every policy document (RFC 3986).
    pub policy_document: String,
}

pub async fn get_role_policy(
    state: AppState,
    input: RolePolicyInput,
    _: Call,
) -> IamResult<GetRolePolicyOutput> {
    let (role_name, policy_name) = input.names()?;
    let mut tx = state.store.read().await?;
    let (_, role) = role_named(&mut tx, role_name).await?;
    let rec = tx
        .get(ROLE_POLICY_KIND, &policy_id(&role.role_id, policy_name))
        .await?
        .ok_or_else(|| no_such_policy(&role.role_name, policy_name))?;
    let stored: StoredRolePolicy = decode(&rec)?;
    Ok(GetRolePolicyOutput {
        role_name: role.role_name,
        policy_name: stored.policy_name,
        policy_document: url_encode(&stored.policy_document),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRolePoliciesInput {
    pub role_name: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRolePoliciesOutput {
    pub policy_names: Vec<String>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

pub async fn list_role_policies(
    state: AppState,
    input: ListRolePoliciesInput,
    _: Call,
) -> IamResult<ListRolePoliciesOutput> {
    let name = role_name(&input.role_name)?;
    let mut c = Constraints::default();
    let paging = paging(&mut c, input.marker.clone(), input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let (_, role) = role_named(&mut tx, name).await?;
    let names: Vec<String> = tx
        .list(ROLE_POLICY_KIND, Some(&role.role_id))
        .await?
        .iter()
        .map(|r| decode::<StoredRolePolicy>(r).map(|p| p.policy_name))
        .collect::<IamResult<_>>()?;
    let (page, marker) = paging.page(names, Clone::clone);
    Ok(ListRolePoliciesOutput {
        policy_names: page,
        is_truncated: marker.is_some(),
        marker,
    })
}

/// `InstanceProfile`. Trellis runs no EC2 instances and has no instance profiles; the type gives
/// the output its shape.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(
    dead_code,
    reason = "no instance profiles exist: the list is always empty"
)]
pub struct InstanceProfile {
    pub instance_profile_name: String,
    pub arn: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInstanceProfilesForRoleInput {
    pub role_name: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListInstanceProfilesForRoleOutput {
    pub instance_profiles: Vec<InstanceProfile>,
    pub is_truncated: bool,
}

/// ListInstanceProfilesForRole: the instance profiles of an existing role — none, as Trellis has
/// no EC2 instances. Terraform's `aws_iam_role` asks before deleting a role.
pub async fn list_instance_profiles_for_role(
    state: AppState,
    input: ListInstanceProfilesForRoleInput,
    _: Call,
) -> IamResult<ListInstanceProfilesForRoleOutput> {
    let name = role_name(&input.role_name)?;
    let mut c = Constraints::default();
    let _ = paging(&mut c, input.marker.clone(), input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    role_named(&mut tx, name).await?;
    Ok(ListInstanceProfilesForRoleOutput {
        instance_profiles: Vec::new(),
        is_truncated: false,
    })
}

pub async fn delete_role_policy(
    state: AppState,
    input: RolePolicyInput,
    _: Call,
) -> IamResult<Empty> {
    let (role_name, policy_name) = input.names()?;
    let mut tx = state.store.write().await?;
    let (_, role) = role_named(&mut tx, role_name).await?;
    if !tx
        .delete(ROLE_POLICY_KIND, &policy_id(&role.role_id, policy_name))
        .await?
    {
        return Err(no_such_policy(&role.role_name, policy_name));
    }
    commit(&state, tx).await?;
    Ok(Empty {})
}

// ---------------------------------------------------------------------------------------------
// Tags

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagRoleInput {
    pub role_name: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

pub async fn tag_role(state: AppState, input: TagRoleInput, _: Call) -> IamResult<Empty> {
    let name = role_name(&input.role_name)?;
    let mut c = Constraints::default();
    tag_constraints(&mut c, &input.tags);
    c.finish()?;
    let mut tx = state.store.write().await?;
    let (mut rec, mut role) = role_named(&mut tx, name).await?;
    for t in &input.tags {
        // Tag keys are unique regardless of case; the new value (and spelling) replaces.
        role.tags
            .retain(|old| !old.key.eq_ignore_ascii_case(&t.key));
        role.tags.push(t.clone());
    }
    if role.tags.len() > TAGS_PER_ROLE {
        return Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for TagsPerRole: {TAGS_PER_ROLE}"
        )));
    }
    rec.body = encode(&role)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagRoleInput {
    pub role_name: Option<String>,
    #[serde(default)]
    pub tag_keys: Vec<String>,
}

pub async fn untag_role(state: AppState, input: UntagRoleInput, _: Call) -> IamResult<Empty> {
    let name = role_name(&input.role_name)?;
    let mut tx = state.store.write().await?;
    let (mut rec, mut role) = role_named(&mut tx, name).await?;
    role.tags.retain(|t| {
        !input
            .tag_keys
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&t.key))
    });
    rec.body = encode(&role)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRoleTagsInput {
    pub role_name: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRoleTagsOutput {
    pub tags: Vec<Tag>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

pub async fn list_role_tags(
    state: AppState,
    input: ListRoleTagsInput,
    _: Call,
) -> IamResult<ListRoleTagsOutput> {
    let name = role_name(&input.role_name)?;
    let mut c = Constraints::default();
    let paging = paging(&mut c, input.marker.clone(), input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let (_, role) = role_named(&mut tx, name).await?;
    let (page, marker) = paging.page(role.tags, |t| t.key.clone());
    Ok(ListRoleTagsOutput {
        tags: page,
        is_truncated: marker.is_some(),
        marker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_policies_are_validated_as_iam_does() {
        let ok = [
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}}"#,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/app"},"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringEquals":{"sts:ExternalId":"x"}}}]}"#,
        ];
        for doc in ok {
            assert!(validate_trust_policy(doc).is_ok(), "{doc}");
        }
        let bad = [
            // No principal.
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sts:AssumeRole"}}"#,
            // A resource.
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole","Resource":"*"}}"#,
            // Another action.
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"vpc-lattice:*"}}"#,
            "{",
        ];
        for doc in bad {
            assert!(
                matches!(
                    validate_trust_policy(doc),
                    Err(IamError::MalformedPolicyDocument(_))
                ),
                "{doc}"
            );
        }
    }
}
