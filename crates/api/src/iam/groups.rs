//! IAM groups: CreateGroup, GetGroup, ListGroups, UpdateGroup, DeleteGroup, membership
//! (AddUserToGroup, RemoveUserFromGroup, ListGroupsForUser) and the group's inline policies.
//! A group's policies (inline and attached) apply to its members: the identity index flattens
//! them into each member's effective policies ([`crate::identity::IdentityIndex::from_records`]).

use serde::{Deserialize, Serialize};
use trellis_model::Timestamp;
use trellis_store::{Record, StoreError, Tx};
use trellis_wire::Call;
use trellis_wire::codec::Timestamp as WireTimestamp;

use super::roles::path_constraints;
use super::{
    Constraints, Empty, IamError, IamResult, UserOutput, check_inline_policy, commit, decode,
    encode, new_id, paging, path_prefix_constraints, policy_id, put_inline_policy, required,
    url_encode, user_named,
};
use crate::AppState;
use crate::identity::{
    ATTACHMENT_KIND, GROUP_KIND, GROUP_MEMBER_KIND, GROUP_POLICY_KIND, StoredGroup,
    StoredGroupMember, StoredGroupPolicy, StoredUser, USER_KIND, group_arn,
};

/// Groups a user may belong to at once (IAM's quota).
pub const GROUPS_PER_USER: usize = 10;

pub(super) fn no_such_group(name: &str) -> IamError {
    IamError::NoSuchEntity(format!("The group with name {name} cannot be found."))
}

async fn find_group(tx: &mut Tx, name: &str) -> IamResult<Option<(Record, StoredGroup)>> {
    let Some(rec) = tx
        .get_by_name(GROUP_KIND, None, &name.to_lowercase())
        .await?
    else {
        return Ok(None);
    };
    let group = decode(&rec)?;
    Ok(Some((rec, group)))
}

pub(super) async fn group_named(tx: &mut Tx, name: &str) -> IamResult<(Record, StoredGroup)> {
    find_group(tx, name)
        .await?
        .ok_or_else(|| no_such_group(name))
}

fn group_name(value: &Option<String>, member: &str) -> IamResult<String> {
    let name = required(value, member)?;
    let mut c = Constraints::default();
    c.name(name, member, 128);
    c.finish()?;
    Ok(name.to_string())
}

/// The record ID of a membership.
fn member_id(group_id: &str, user_id: &str) -> String {
    format!("{group_id}/{user_id}")
}

/// The model's `Group`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupOutput {
    pub path: String,
    pub group_name: String,
    pub group_id: String,
    pub arn: String,
    pub create_date: WireTimestamp,
}

impl From<&StoredGroup> for GroupOutput {
    fn from(g: &StoredGroup) -> GroupOutput {
        GroupOutput {
            path: g.path.clone(),
            group_name: g.group_name.clone(),
            group_id: g.group_id.clone(),
            arn: g.arn.clone(),
            create_date: WireTimestamp::from_unix_millis(g.create_date_ms),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupResult {
    pub group: GroupOutput,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateGroupInput {
    pub group_name: Option<String>,
    pub path: Option<String>,
}

pub async fn create_group(
    state: AppState,
    input: CreateGroupInput,
    _: Call,
) -> IamResult<GroupResult> {
    let name = required(&input.group_name, "groupName")?;
    let path = input.path.as_deref().unwrap_or("/");
    let mut c = Constraints::default();
    c.name(name, "groupName", 128);
    path_constraints(&mut c, path);
    c.finish()?;
    let mut tx = state.store.write().await?;
    let exists =
        |n: &str| IamError::EntityAlreadyExists(format!("Group with name {n} already exists."));
    if let Some((_, existing)) = find_group(&mut tx, name).await? {
        return Err(exists(&existing.group_name));
    }
    let group = StoredGroup {
        arn: group_arn(&state.ctx, path, name),
        group_id: new_id("AGPA", 17),
        group_name: name.to_string(),
        path: path.to_string(),
        create_date_ms: Timestamp::now().unix_millis(),
    };
    let rec = Record {
        kind: GROUP_KIND.into(),
        id: group.group_id.clone(),
        parent: None,
        name: Some(name.to_lowercase()),
        arn: Some(group.arn.clone()),
        refs: Vec::new(),
        body: encode(&group)?,
        seq: 0,
    };
    match tx.insert(&rec).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return Err(exists(name)),
        Err(e) => return Err(e.into()),
    }
    commit(&state, tx).await?;
    Ok(GroupResult {
        group: (&group).into(),
    })
}

/// The users of a group, sorted by lower-cased name.
async fn members(tx: &mut Tx, group_id: &str) -> IamResult<Vec<StoredUser>> {
    let mut users = Vec::new();
    for rec in tx.list(GROUP_MEMBER_KIND, Some(group_id)).await? {
        let m: StoredGroupMember = decode(&rec)?;
        if let Some(u) = tx.get(USER_KIND, &m.user_id).await? {
            users.push(decode(&u)?);
        }
    }
    Ok(users)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetGroupInput {
    pub group_name: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetGroupOutput {
    pub group: GroupOutput,
    pub users: Vec<UserOutput>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

pub async fn get_group(
    state: AppState,
    input: GetGroupInput,
    _: Call,
) -> IamResult<GetGroupOutput> {
    let name = group_name(&input.group_name, "groupName")?;
    let mut c = Constraints::default();
    let paging = paging(&mut c, input.marker, input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let (_, group) = group_named(&mut tx, &name).await?;
    let users = members(&mut tx, &group.group_id).await?;
    let (page, marker) = paging.page(users, |u| u.user_name.to_lowercase());
    Ok(GetGroupOutput {
        group: (&group).into(),
        users: page.iter().map(|u| UserOutput::new(u, false)).collect(),
        is_truncated: marker.is_some(),
        marker,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListGroupsInput {
    pub path_prefix: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListGroupsOutput {
    pub groups: Vec<GroupOutput>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

pub async fn list_groups(
    state: AppState,
    input: ListGroupsInput,
    _: Call,
) -> IamResult<ListGroupsOutput> {
    let mut c = Constraints::default();
    let paging = paging(&mut c, input.marker, input.max_items);
    let prefix = input.path_prefix.unwrap_or_else(|| "/".into());
    path_prefix_constraints(&mut c, &prefix);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let groups: Vec<StoredGroup> = tx
        .list(GROUP_KIND, None)
        .await?
        .iter()
        .map(decode)
        .collect::<IamResult<Vec<StoredGroup>>>()?
        .into_iter()
        .filter(|g| g.path.starts_with(&prefix))
        .collect();
    let (page, marker) = paging.page(groups, |g| g.group_name.to_lowercase());
    Ok(ListGroupsOutput {
        groups: page.iter().map(GroupOutput::from).collect(),
        is_truncated: marker.is_some(),
        marker,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupNameInput {
    pub group_name: Option<String>,
}

pub async fn delete_group(state: AppState, input: GroupNameInput, _: Call) -> IamResult<Empty> {
    let name = group_name(&input.group_name, "groupName")?;
    let mut tx = state.store.write().await?;
    let (rec, group) = group_named(&mut tx, &name).await?;
    // IAM's order and words.
    if tx.count(GROUP_MEMBER_KIND, Some(&group.group_id)).await? > 0 {
        return Err(IamError::DeleteConflict(
            "Cannot delete entity, must remove users from group first.".into(),
        ));
    }
    if tx.count(GROUP_POLICY_KIND, Some(&group.group_id)).await? > 0 {
        return Err(IamError::DeleteConflict(
            "Cannot delete entity, must delete policies first.".into(),
        ));
    }
    if tx.count(ATTACHMENT_KIND, Some(&group.group_id)).await? > 0 {
        return Err(IamError::DeleteConflict(
            "Cannot delete entity, must detach all policies first.".into(),
        ));
    }
    tx.delete(GROUP_KIND, &rec.id).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateGroupInput {
    pub group_name: Option<String>,
    pub new_group_name: Option<String>,
    pub new_path: Option<String>,
}

/// UpdateGroup: a new name and/or path. The group keeps its ID, members and policies; its ARN
/// follows the new name and path.
pub async fn update_group(state: AppState, input: UpdateGroupInput, _: Call) -> IamResult<Empty> {
    let name = group_name(&input.group_name, "groupName")?;
    let mut c = Constraints::default();
    if let Some(n) = &input.new_group_name {
        c.name(n, "newGroupName", 128);
    }
    if let Some(p) = &input.new_path {
        path_constraints(&mut c, p);
    }
    c.finish()?;
    let mut tx = state.store.write().await?;
    let (mut rec, mut group) = group_named(&mut tx, &name).await?;
    if let Some(new_name) = &input.new_group_name
        && !new_name.eq_ignore_ascii_case(&group.group_name)
        && find_group(&mut tx, new_name).await?.is_some()
    {
        return Err(IamError::EntityAlreadyExists(format!(
            "Group with name {new_name} already exists."
        )));
    }
    if let Some(new_name) = &input.new_group_name {
        group.group_name = new_name.clone();
    }
    if let Some(p) = &input.new_path {
        group.path = p.clone();
    }
    group.arn = group_arn(&state.ctx, &group.path, &group.group_name);
    rec.name = Some(group.group_name.to_lowercase());
    rec.arn = Some(group.arn.clone());
    rec.body = encode(&group)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MembershipInput {
    pub group_name: Option<String>,
    pub user_name: Option<String>,
}

impl MembershipInput {
    fn names(&self) -> IamResult<(&str, &str)> {
        let group = required(&self.group_name, "groupName")?;
        let user = required(&self.user_name, "userName")?;
        let mut c = Constraints::default();
        c.name(group, "groupName", 128);
        c.name(user, "userName", 128);
        c.finish()?;
        Ok((group, user))
    }
}

/// AddUserToGroup; adding a member again changes nothing, as in IAM.
pub async fn add_user_to_group(
    state: AppState,
    input: MembershipInput,
    _: Call,
) -> IamResult<Empty> {
    let (group_name, user_name) = input.names()?;
    let mut tx = state.store.write().await?;
    let (_, group) = group_named(&mut tx, group_name).await?;
    let (_, user) = user_named(&mut tx, user_name).await?;
    let id = member_id(&group.group_id, &user.user_id);
    if tx.get(GROUP_MEMBER_KIND, &id).await?.is_some() {
        return Ok(Empty {});
    }
    if tx
        .list_referencing(GROUP_MEMBER_KIND, &user.user_id)
        .await?
        .len()
        >= GROUPS_PER_USER
    {
        return Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for GroupsPerUser: {GROUPS_PER_USER}"
        )));
    }
    let member = StoredGroupMember {
        group_id: group.group_id.clone(),
        user_id: user.user_id.clone(),
    };
    tx.insert(&Record {
        kind: GROUP_MEMBER_KIND.into(),
        id,
        parent: Some(group.group_id.clone()),
        name: None,
        arn: None,
        refs: vec![user.user_id.clone()],
        body: encode(&member)?,
        seq: 0,
    })
    .await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

pub async fn remove_user_from_group(
    state: AppState,
    input: MembershipInput,
    _: Call,
) -> IamResult<Empty> {
    let (group_name, user_name) = input.names()?;
    let mut tx = state.store.write().await?;
    let (_, group) = group_named(&mut tx, group_name).await?;
    let (_, user) = user_named(&mut tx, user_name).await?;
    if !tx
        .delete(
            GROUP_MEMBER_KIND,
            &member_id(&group.group_id, &user.user_id),
        )
        .await?
    {
        return Err(IamError::NoSuchEntity(format!(
            "The user with name {} is not in group {}.",
            user.user_name, group.group_name
        )));
    }
    commit(&state, tx).await?;
    Ok(Empty {})
}

/// The groups a user belongs to.
pub(super) async fn groups_of(tx: &mut Tx, user_id: &str) -> IamResult<Vec<StoredGroup>> {
    let mut groups = Vec::new();
    for rec in tx.list_referencing(GROUP_MEMBER_KIND, user_id).await? {
        let m: StoredGroupMember = decode(&rec)?;
        if let Some(g) = tx.get(GROUP_KIND, &m.group_id).await? {
            groups.push(decode(&g)?);
        }
    }
    Ok(groups)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListGroupsForUserInput {
    pub user_name: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

pub async fn list_groups_for_user(
    state: AppState,
    input: ListGroupsForUserInput,
    _: Call,
) -> IamResult<ListGroupsOutput> {
    let user_name = required(&input.user_name, "userName")?;
    let mut c = Constraints::default();
    c.name(user_name, "userName", 128);
    let paging = paging(&mut c, input.marker.clone(), input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let (_, user) = user_named(&mut tx, user_name).await?;
    let groups = groups_of(&mut tx, &user.user_id).await?;
    let (page, marker) = paging.page(groups, |g| g.group_name.to_lowercase());
    Ok(ListGroupsOutput {
        groups: page.iter().map(GroupOutput::from).collect(),
        is_truncated: marker.is_some(),
        marker,
    })
}

// ---------------------------------------------------------------------------------------------
// Inline policies

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupPolicyInput {
    pub group_name: Option<String>,
    pub policy_name: Option<String>,
    pub policy_document: Option<String>,
}

impl GroupPolicyInput {
    fn names(&self) -> IamResult<(&str, &str)> {
        let group = required(&self.group_name, "groupName")?;
        let policy = required(&self.policy_name, "policyName")?;
        let mut c = Constraints::default();
        c.name(group, "groupName", 128);
        c.name(policy, "policyName", 128);
        c.finish()?;
        Ok((group, policy))
    }
}

fn no_such_policy(group: &str, policy: &str) -> IamError {
    IamError::NoSuchEntity(format!(
        "The group policy with name {policy} cannot be found for group {group}."
    ))
}

pub async fn put_group_policy(
    state: AppState,
    input: GroupPolicyInput,
    _: Call,
) -> IamResult<Empty> {
    let (group_name, policy_name) = input.names()?;
    let document = required(&input.policy_document, "policyDocument")?;
    check_inline_policy(document, &format!("group {group_name}"))?;
    let mut tx = state.store.write().await?;
    let (_, group) = group_named(&mut tx, group_name).await?;
    let stored = StoredGroupPolicy {
        group_id: group.group_id.clone(),
        policy_name: policy_name.to_string(),
        policy_document: document.to_string(),
    };
    if put_inline_policy(
        &mut tx,
        GROUP_POLICY_KIND,
        &group.group_id,
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
pub struct GetGroupPolicyOutput {
    pub group_name: String,
    pub policy_name: String,
    /// URL-encoded, as IAM returns every policy document (RFC 3986).
    pub policy_document: String,
}

pub async fn get_group_policy(
    state: AppState,
    input: GroupPolicyInput,
    _: Call,
) -> IamResult<GetGroupPolicyOutput> {
    let (group_name, policy_name) = input.names()?;
    let mut tx = state.store.read().await?;
    let (_, group) = group_named(&mut tx, group_name).await?;
    let rec = tx
        .get(GROUP_POLICY_KIND, &policy_id(&group.group_id, policy_name))
        .await?
        .ok_or_else(|| no_such_policy(&group.group_name, policy_name))?;
    let stored: StoredGroupPolicy = decode(&rec)?;
    Ok(GetGroupPolicyOutput {
        group_name: group.group_name,
        policy_name: stored.policy_name,
        policy_document: url_encode(&stored.policy_document),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListGroupPoliciesInput {
    pub group_name: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListGroupPoliciesOutput {
    pub policy_names: Vec<String>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

pub async fn list_group_policies(
    state: AppState,
    input: ListGroupPoliciesInput,
    _: Call,
) -> IamResult<ListGroupPoliciesOutput> {
    let name = group_name(&input.group_name, "groupName")?;
    let mut c = Constraints::default();
    let paging = paging(&mut c, input.marker.clone(), input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let (_, group) = group_named(&mut tx, &name).await?;
    let names: Vec<String> = tx
        .list(GROUP_POLICY_KIND, Some(&group.group_id))
        .await?
        .iter()
        .map(|r| decode::<StoredGroupPolicy>(r).map(|p| p.policy_name))
        .collect::<IamResult<_>>()?;
    let (page, marker) = paging.page(names, Clone::clone);
    Ok(ListGroupPoliciesOutput {
        policy_names: page,
        is_truncated: marker.is_some(),
        marker,
    })
}

pub async fn delete_group_policy(
    state: AppState,
    input: GroupPolicyInput,
    _: Call,
) -> IamResult<Empty> {
    let (group_name, policy_name) = input.names()?;
    let mut tx = state.store.write().await?;
    let (_, group) = group_named(&mut tx, group_name).await?;
    if !tx
        .delete(GROUP_POLICY_KIND, &policy_id(&group.group_id, policy_name))
        .await?
    {
        return Err(no_such_policy(&group.group_name, policy_name));
    }
    commit(&state, tx).await?;
    Ok(Empty {})
}
