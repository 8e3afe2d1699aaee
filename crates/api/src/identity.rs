//! Who is calling: the root credentials and the IAM users of the account, as the SigV4 gate sees
//! them, and the records IAM stores them in.
//!
//! The gate must not read the store per request, so it reads an [`IdentityIndex`] — every active
//! access key with its secret and owner, every user with its parsed inline policies — held in an
//! `ArcSwap` and rebuilt off the request path whenever the store's revision moves
//! ([`follow`], as the data plane follows the change feed). An IAM write also rebuilds it before
//! its answer leaves ([`Identities::reload`]), so that a caller sees its own change on the node it
//! called; other nodes see it when their follower reaches the write's revision. Either way a
//! deactivated key, a deleted user or a changed policy is in force from the index's revision
//! (reported as `identity` by `/_trellis/revision`) on.
//!
//! Records (kinds [`USER_KIND`], [`ACCESS_KEY_KIND`], [`USER_POLICY_KIND`]): a user is keyed by
//! its `AIDA…` user ID and named by its lower-cased name (IAM user names are unique regardless of
//! case); access keys and inline policies are children of their user. Access key secrets are
//! stored as SigV4 needs them (an HMAC key cannot be checked against a hash), like the root
//! credentials in `DATA_DIR/credentials`; they leave the server only in CreateAccessKey's answer.
//!
//! Key last-used ([`Identities::due_for_last_used`]): the gate records a key's use in its record
//! at most once per [`LAST_USED_GRANULARITY`] per key and process, off the request path, so that
//! traffic does not turn into writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use trellis_model::Context;
use trellis_policy::{Policy, PolicyKind};
use trellis_store::{Revision, Store, StoreError};

/// The record kind of an IAM user (id: user ID, name: lower-cased user name).
pub const USER_KIND: &str = "iam-user";
/// The record kind of an access key (id: access key ID, parent: the owner's user ID).
pub const ACCESS_KEY_KIND: &str = "iam-access-key";
/// The record kind of a user's inline policy (parent: user ID, name: policy name).
pub const USER_POLICY_KIND: &str = "iam-user-policy";

/// The record kind of an IAM role (id: role ID, name: lower-cased role name).
pub const ROLE_KIND: &str = "iam-role";
/// The record kind of a role's inline policy (parent: role ID, name: policy name).
pub const ROLE_POLICY_KIND: &str = "iam-role-policy";
/// The record kind of an IAM group (id: group ID, name: lower-cased group name).
pub const GROUP_KIND: &str = "iam-group";
/// The record kind of a user's membership of a group (id: `<group ID>/<user ID>`, parent: the
/// group ID, refs: the group and the user).
pub const GROUP_MEMBER_KIND: &str = "iam-group-member";
/// The record kind of a group's inline policy (parent: group ID, name: policy name).
pub const GROUP_POLICY_KIND: &str = "iam-group-policy";
/// The record kind of a customer-managed policy with its versions (id: policy ID, name:
/// lower-cased policy name, arn: the policy's ARN).
pub const MANAGED_POLICY_KIND: &str = "iam-policy";
/// The record kind of a managed policy attached to a user, group or role (id: `<entity ID> <policy
/// ARN>`, parent: the entity's ID, refs: the entity's ID and the policy's ARN).
pub const ATTACHMENT_KIND: &str = "iam-policy-attachment";

/// The record kind of the key session tokens are signed with (one record, id [`TOKEN_KEY_ID`]).
pub const TOKEN_KEY_KIND: &str = "sts-token-key";
/// The ID of the one [`TOKEN_KEY_KIND`] record.
pub const TOKEN_KEY_ID: &str = "current";

/// How often, at most, a key's last use is written to its record (per key and process).
pub const LAST_USED_GRANULARITY: Duration = Duration::from_secs(60);

/// A stored IAM user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredUser {
    pub user_name: String,
    pub user_id: String,
    pub path: String,
    pub arn: String,
    pub create_date_ms: i64,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// When and for what a key was last used (`GetAccessKeyLastUsed`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastUsed {
    pub date_ms: i64,
    pub service_name: String,
    pub region: String,
}

/// A stored access key. Its `Debug` leaves the secret out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// `Active` or `Inactive`.
    pub status: String,
    pub user_id: String,
    pub user_name: String,
    pub create_date_ms: i64,
    #[serde(default)]
    pub last_used: Option<LastUsed>,
}

impl std::fmt::Debug for StoredAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("status", &self.status)
            .field("user_name", &self.user_name)
            .finish_non_exhaustive()
    }
}

/// A stored inline policy of a user: the document exactly as it was put.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredUserPolicy {
    pub user_id: String,
    pub policy_name: String,
    pub policy_document: String,
}

/// A tag of a role or a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// A stored IAM role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRole {
    pub role_name: String,
    pub role_id: String,
    pub path: String,
    pub arn: String,
    pub create_date_ms: i64,
    /// The trust policy, exactly as it was put.
    pub assume_role_policy_document: String,
    #[serde(default)]
    pub description: Option<String>,
    pub max_session_duration: i64,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A stored inline policy of a role: the document exactly as it was put.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredRolePolicy {
    pub role_id: String,
    pub policy_name: String,
    pub policy_document: String,
}

/// A stored IAM group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub group_name: String,
    pub group_id: String,
    pub path: String,
    pub arn: String,
    pub create_date_ms: i64,
}

/// A user's membership of a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredGroupMember {
    pub group_id: String,
    pub user_id: String,
}

/// A stored inline policy of a group: the document exactly as it was put.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredGroupPolicy {
    pub group_id: String,
    pub policy_name: String,
    pub policy_document: String,
}

/// One version of a customer-managed policy: the document exactly as it was put.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredPolicyVersion {
    /// `v1`, `v2`, … (never reused within a policy).
    pub version_id: String,
    pub document: String,
    pub create_date_ms: i64,
}

/// A stored customer-managed policy, with every version it has (at most five).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredManagedPolicy {
    pub policy_name: String,
    pub policy_id: String,
    pub arn: String,
    pub path: String,
    #[serde(default)]
    pub description: Option<String>,
    pub create_date_ms: i64,
    pub update_date_ms: i64,
    pub default_version_id: String,
    /// The number of the next version (IAM never reuses a version ID).
    pub next_version: u32,
    pub versions: Vec<StoredPolicyVersion>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl StoredManagedPolicy {
    /// The document of the default version.
    pub fn default_document(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.version_id == self.default_version_id)
            .map(|v| v.document.as_str())
    }
}

/// What a managed policy is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntityType {
    User,
    Group,
    Role,
}

/// A managed policy (customer-managed or AWS-managed) attached to a user, group or role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredAttachment {
    pub entity_type: EntityType,
    pub entity_id: String,
    pub policy_arn: String,
}

/// The key session tokens are signed with and session secrets derived from (base64 of 32
/// bytes from the CSPRNG). Its `Debug` leaves the key out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTokenKey {
    pub key: String,
}

impl std::fmt::Debug for StoredTokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokenKey").finish_non_exhaustive()
    }
}

/// An IAM role as the gate, STS and the authorizer see it.
#[derive(Debug)]
pub struct Role {
    /// The account it belongs to (from its ARN).
    pub account: String,
    pub id: String,
    pub name: String,
    pub path: String,
    pub arn: String,
    pub max_session_duration: i64,
    /// The trust policy; `None` when the stored one no longer parses (nobody may assume it).
    pub trust: Option<Policy>,
    /// Its complete effective identity-based policies, parsed: its inline policies and the
    /// default version of every managed policy attached to it.
    pub policies: Vec<Policy>,
    pub tags: Vec<Tag>,
}

/// An assumed-role session: who it is and what it carries.
#[derive(Debug)]
pub struct RoleSession {
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    pub session_name: String,
    pub access_key_id: String,
    /// The session tags (`aws:PrincipalTag/…`, over the role's own tags).
    pub tags: Vec<Tag>,
}

/// An IAM user as the gate and the authorizer see it.
#[derive(Debug)]
pub struct User {
    /// The account it belongs to (from its ARN).
    pub account: String,
    pub id: String,
    pub name: String,
    pub path: String,
    pub arn: String,
    /// Its complete effective identity-based policies, parsed: its inline policies, the inline
    /// policies of every group it belongs to, and the default version of every managed policy
    /// attached to it or to one of its groups.
    pub policies: Vec<Policy>,
    /// Its tags (`aws:PrincipalTag/…` of its requests).
    pub tags: Vec<Tag>,
}

/// An IAM group as the authorizer sees it (policies apply to its members, not to it).
#[derive(Debug)]
pub struct Group {
    /// The account it belongs to (from its ARN).
    pub account: String,
    pub id: String,
    pub name: String,
    pub path: String,
    pub arn: String,
}

/// The authenticated caller of a request, put in the request's extensions by the gate.
#[derive(Clone, Debug)]
pub enum Caller {
    /// An account's root credentials: every action on the account's resources is allowed.
    Root { account: String },
    /// An IAM user, signing with `access_key_id`.
    User {
        user: Arc<User>,
        access_key_id: String,
    },
    /// A session of an IAM role (AssumeRole's temporary credentials): authorized with the
    /// role's policies only.
    Role {
        role: Arc<Role>,
        session: Arc<RoleSession>,
    },
}

impl Caller {
    /// The account the caller belongs to, whose resources it acts on.
    pub fn account(&self) -> &str {
        match self {
            Caller::Root { account } => account,
            Caller::User { user, .. } => &user.account,
            Caller::Role { role, .. } => &role.account,
        }
    }

    /// `arn:aws:iam::<account>:root` or the user's ARN.
    pub fn arn(&self, ctx: &Context) -> String {
        match self {
            Caller::Root { account } => format!("arn:{}:iam::{account}:root", ctx.partition),
            Caller::User { user, .. } => user.arn.clone(),
            Caller::Role { session, .. } => session.arn.clone(),
        }
    }
}

/// A role's ARN: `arn:aws:iam::<account>:role<path><name>`.
pub fn role_arn(ctx: &Context, path: &str, name: &str) -> String {
    format!(
        "arn:{}:iam::{}:role{path}{name}",
        ctx.partition, ctx.account_id
    )
}

/// A role session's ARN: `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
pub fn assumed_role_arn(ctx: &Context, role: &str, session: &str) -> String {
    format!(
        "arn:{}:sts::{}:assumed-role/{role}/{session}",
        ctx.partition, ctx.account_id
    )
}

/// The root principal's ARN.
pub fn root_arn(ctx: &Context) -> String {
    format!("arn:{}:iam::{}:root", ctx.partition, ctx.account_id)
}

/// A user's ARN: `arn:aws:iam::<account>:user<path><name>` (the path starts and ends with `/`).
pub fn user_arn(ctx: &Context, path: &str, name: &str) -> String {
    format!(
        "arn:{}:iam::{}:user{path}{name}",
        ctx.partition, ctx.account_id
    )
}

/// A group's ARN: `arn:aws:iam::<account>:group<path><name>`.
pub fn group_arn(ctx: &Context, path: &str, name: &str) -> String {
    format!(
        "arn:{}:iam::{}:group{path}{name}",
        ctx.partition, ctx.account_id
    )
}

/// A customer-managed policy's ARN: `arn:aws:iam::<account>:policy<path><name>`.
pub fn policy_arn(ctx: &Context, path: &str, name: &str) -> String {
    format!(
        "arn:{}:iam::{}:policy{path}{name}",
        ctx.partition, ctx.account_id
    )
}

/// An active key's secret and owner.
struct ActiveKey {
    secret: String,
    user: Arc<User>,
}

/// Every identity of one store revision.
#[derive(Default)]
pub struct IdentityIndex {
    /// The revision it was loaded at; `None` before the first load.
    pub revision: Option<Revision>,
    /// Active keys only: an inactive or deleted key is unknown to the gate.
    keys: HashMap<String, ActiveKey>,
    /// Users by account and lower-cased name ([`scoped_name`]).
    users: HashMap<String, Arc<User>>,
    /// Every key's owner (active or not), for GetAccessKeyLastUsed's resource.
    key_owners: HashMap<String, Arc<User>>,
    /// Users by user ID (sessions of GetSessionToken name their user by ID).
    users_by_id: HashMap<String, Arc<User>>,
    /// Roles by account and lower-cased name ([`scoped_name`]).
    roles: HashMap<String, Arc<Role>>,
    /// Roles by role ID (a session names its role by ID: a role deleted and created again
    /// under the same name is another role, and its old sessions are not its).
    roles_by_id: HashMap<String, Arc<Role>>,
    /// Groups by account and lower-cased name ([`scoped_name`]).
    groups: HashMap<String, Arc<Group>>,
    /// Member accounts' root keys: access key ID → (secret, account).
    account_roots: HashMap<String, (String, String)>,
    /// The key session tokens are signed with, once one exists.
    token_key: Option<Vec<u8>>,
    /// The account's organization, once it created one: every principal of the account is a
    /// member (`aws:PrincipalOrgID`, `aws:PrincipalOrgPaths`).
    organization: Option<crate::organizations::StoredOrganization>,
}

impl IdentityIndex {
    /// The secret and owner of an active access key.
    pub fn active_key(&self, access_key_id: &str) -> Option<(&str, &Arc<User>)> {
        self.keys
            .get(access_key_id)
            .map(|k| (k.secret.as_str(), &k.user))
    }

    /// A user of `account` by name (case-insensitively, as IAM names are).
    pub fn user(&self, account: &str, name: &str) -> Option<&Arc<User>> {
        self.users.get(&scoped_name(account, name))
    }

    /// The secret and account of a member account's root access key.
    pub fn account_root_key(&self, access_key_id: &str) -> Option<(&str, &str)> {
        self.account_roots
            .get(access_key_id)
            .map(|(secret, account)| (secret.as_str(), account.as_str()))
    }

    /// The owner of an access key, active or not.
    pub fn key_owner(&self, access_key_id: &str) -> Option<&Arc<User>> {
        self.key_owners.get(access_key_id)
    }

    /// A user by user ID.
    pub fn user_by_id(&self, id: &str) -> Option<&Arc<User>> {
        self.users_by_id.get(id)
    }

    /// A role of `account` by name (case-insensitively, as IAM names are).
    pub fn role(&self, account: &str, name: &str) -> Option<&Arc<Role>> {
        self.roles.get(&scoped_name(account, name))
    }

    /// A role by role ID.
    pub fn role_by_id(&self, id: &str) -> Option<&Arc<Role>> {
        self.roles_by_id.get(id)
    }

    /// The session-token key, once one exists.
    pub fn token_key(&self) -> Option<&[u8]> {
        self.token_key.as_deref()
    }

    /// The account's organization, if it created one.
    pub fn organization(&self) -> Option<&crate::organizations::StoredOrganization> {
        self.organization.as_ref()
    }

    /// Adds the organization of the same revision.
    pub fn with_organization(
        mut self,
        organization: Option<crate::organizations::StoredOrganization>,
    ) -> IdentityIndex {
        self.organization = organization;
        self
    }

    /// How many active keys it holds.
    pub fn active_keys(&self) -> usize {
        self.keys.len()
    }

    /// A group of `account` by name (case-insensitively, as IAM names are).
    pub fn group(&self, account: &str, name: &str) -> Option<&Arc<Group>> {
        self.groups.get(&scoped_name(account, name))
    }

    /// Adds member accounts' root keys (from the organization's account records).
    pub fn with_account_roots(
        mut self,
        accounts: Vec<crate::organizations::StoredAccount>,
    ) -> IdentityIndex {
        for a in accounts {
            self.account_roots
                .insert(a.root_access_key_id, (a.root_secret_access_key, a.id));
        }
        self
    }

    /// Builds an index of users, their keys and their inline policies only (tests).
    pub fn build(
        revision: Revision,
        users: Vec<StoredUser>,
        keys: Vec<StoredAccessKey>,
        policies: Vec<StoredUserPolicy>,
    ) -> IdentityIndex {
        IdentityIndex::from_records(
            revision,
            IdentityRecords {
                users,
                keys,
                user_policies: policies,
                ..IdentityRecords::default()
            },
        )
    }

    /// Adds roles with their inline policies, and the token key, to an index [`Self::build`]
    /// made (tests; [`Self::from_records`] builds everything at once).
    pub fn with_roles(
        mut self,
        roles: Vec<StoredRole>,
        policies: Vec<StoredRolePolicy>,
        token_key: Option<StoredTokenKey>,
    ) -> IdentityIndex {
        let extra = IdentityIndex::from_records(
            self.revision.unwrap_or(0),
            IdentityRecords {
                roles,
                role_policies: policies,
                token_key,
                ..IdentityRecords::default()
            },
        );
        self.roles.extend(extra.roles);
        self.roles_by_id.extend(extra.roles_by_id);
        self.token_key = extra.token_key;
        self
    }

    /// Builds the index from the records of one revision, flattening each user's and role's
    /// effective identity-based policies ([`User::policies`], [`Role::policies`]). A stored
    /// policy that no longer parses (it was validated when put) is left out and logged: it can
    /// only grant less. An attachment of a policy that does not exist grants nothing.
    pub fn from_records(revision: Revision, r: IdentityRecords) -> IdentityIndex {
        let mut index = IdentityIndex {
            revision: Some(revision),
            ..IdentityIndex::default()
        };
        // Managed policies' default versions, parsed once, by ARN.
        let mut managed: HashMap<String, Policy> = HashMap::new();
        for p in &r.managed_policies {
            let Some(doc) = p.default_document() else {
                continue;
            };
            if let Some(parsed) = parse_logged(doc, "managed policy", &p.arn, &p.default_version_id)
            {
                managed.insert(p.arn.clone(), parsed);
            }
        }
        let mut attached: HashMap<String, Vec<String>> = HashMap::new();
        for a in r.attachments {
            attached.entry(a.entity_id).or_default().push(a.policy_arn);
        }
        let managed_of = |entity_id: &str| -> Vec<Policy> {
            attached
                .get(entity_id)
                .into_iter()
                .flatten()
                .filter_map(|arn| {
                    managed.get(arn).cloned().or_else(|| {
                        crate::iam::aws_managed::by_arn(arn)
                            .and_then(|m| parse_logged(m.document, "AWS managed policy", arn, "v1"))
                    })
                })
                .collect()
        };
        let mut inline: HashMap<String, Vec<Policy>> = HashMap::new();
        let owned = r
            .user_policies
            .into_iter()
            .map(|p| (p.user_id, p.policy_name, p.policy_document))
            .chain(
                r.group_policies
                    .into_iter()
                    .map(|p| (p.group_id, p.policy_name, p.policy_document)),
            )
            .chain(
                r.role_policies
                    .into_iter()
                    .map(|p| (p.role_id, p.policy_name, p.policy_document)),
            );
        for (owner, name, document) in owned {
            if let Some(parsed) = parse_logged(&document, "inline policy", &owner, &name) {
                inline.entry(owner).or_default().push(parsed);
            }
        }
        // Each group's policies (its inline ones and its managed ones), for its members.
        let mut group_policies: HashMap<String, Vec<Policy>> = HashMap::new();
        for g in r.groups {
            let mut policies = inline.remove(&g.group_id).unwrap_or_default();
            policies.extend(managed_of(&g.group_id));
            group_policies.insert(g.group_id.clone(), policies);
            let group = Arc::new(Group {
                account: trellis_model::arn::account_of(&g.arn).to_string(),
                id: g.group_id,
                name: g.group_name,
                path: g.path,
                arn: g.arn,
            });
            index
                .groups
                .insert(scoped_name(&group.account, &group.name), group);
        }
        let mut groups_of: HashMap<String, Vec<String>> = HashMap::new();
        for m in r.group_members {
            groups_of.entry(m.user_id).or_default().push(m.group_id);
        }
        for u in r.users {
            let mut policies = inline.remove(&u.user_id).unwrap_or_default();
            policies.extend(managed_of(&u.user_id));
            for g in groups_of.get(&u.user_id).into_iter().flatten() {
                policies.extend(group_policies.get(g).into_iter().flatten().cloned());
            }
            let user = Arc::new(User {
                account: trellis_model::arn::account_of(&u.arn).to_string(),
                policies,
                id: u.user_id,
                name: u.user_name,
                path: u.path,
                arn: u.arn,
                tags: u.tags,
            });
            index
                .users
                .insert(scoped_name(&user.account, &user.name), Arc::clone(&user));
            index.users_by_id.insert(user.id.clone(), user);
        }
        for k in r.keys {
            let Some(user) = index.users_by_id.get(&k.user_id).cloned() else {
                continue;
            };
            index
                .key_owners
                .insert(k.access_key_id.clone(), Arc::clone(&user));
            if k.status == "Active" {
                index.keys.insert(
                    k.access_key_id,
                    ActiveKey {
                        secret: k.secret_access_key,
                        user,
                    },
                );
            }
        }
        for role in r.roles {
            let trust =
                trellis_policy::parse(&role.assume_role_policy_document, PolicyKind::Resource)
                    .map_err(|d| {
                        tracing::warn!(
                            role_id = %role.role_id,
                            problems = d.len(),
                            "a stored trust policy does not parse; nobody may assume the role"
                        );
                    })
                    .ok();
            let mut policies = inline.remove(&role.role_id).unwrap_or_default();
            policies.extend(managed_of(&role.role_id));
            let role = Arc::new(Role {
                account: trellis_model::arn::account_of(&role.arn).to_string(),
                policies,
                trust,
                id: role.role_id,
                name: role.role_name,
                path: role.path,
                arn: role.arn,
                max_session_duration: role.max_session_duration,
                tags: role.tags,
            });
            index
                .roles
                .insert(scoped_name(&role.account, &role.name), Arc::clone(&role));
            index.roles_by_id.insert(role.id.clone(), role);
        }
        index.token_key = r.token_key.and_then(|k| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(k.key).ok()
        });
        index
    }
}

/// The index key of a name in an account: IAM names are unique per account, regardless of case.
fn scoped_name(account: &str, name: &str) -> String {
    format!("{account}/{}", name.to_lowercase())
}

/// Every identity record of one revision, as [`IdentityIndex::from_records`] takes them.
#[derive(Default)]
pub struct IdentityRecords {
    pub users: Vec<StoredUser>,
    pub keys: Vec<StoredAccessKey>,
    pub user_policies: Vec<StoredUserPolicy>,
    pub roles: Vec<StoredRole>,
    pub role_policies: Vec<StoredRolePolicy>,
    pub groups: Vec<StoredGroup>,
    pub group_members: Vec<StoredGroupMember>,
    pub group_policies: Vec<StoredGroupPolicy>,
    pub managed_policies: Vec<StoredManagedPolicy>,
    pub attachments: Vec<StoredAttachment>,
    pub token_key: Option<StoredTokenKey>,
}

/// A stored identity-based policy, parsed; `None` (and a warning) when it no longer parses.
fn parse_logged(document: &str, what: &str, owner: &str, name: &str) -> Option<Policy> {
    match trellis_policy::parse(document, PolicyKind::Identity) {
        Ok(parsed) => Some(parsed),
        Err(d) => {
            tracing::warn!(
                owner = %owner,
                policy = %name,
                problems = d.len(),
                "a stored {what} does not parse; it grants nothing"
            );
            None
        }
    }
}

/// The current [`IdentityIndex`] and what keeps it current.
pub struct Identities {
    index: ArcSwap<IdentityIndex>,
    /// Serialises reloads, so that an older load never replaces a newer one.
    reload: tokio::sync::Mutex<()>,
    /// When each key's last use was last written by this process.
    last_used: Mutex<HashMap<String, Instant>>,
}

impl Default for Identities {
    fn default() -> Identities {
        Identities {
            index: ArcSwap::from_pointee(IdentityIndex::default()),
            reload: tokio::sync::Mutex::new(()),
            last_used: Mutex::new(HashMap::new()),
        }
    }
}

impl Identities {
    /// The index as of the last load (one atomic load, no lock).
    pub fn current(&self) -> Arc<IdentityIndex> {
        self.index.load_full()
    }

    /// The revision of the last load, 0 before it.
    pub fn revision(&self) -> Revision {
        self.index.load().revision.unwrap_or(0)
    }

    /// Reloads the index from the store unless it is already at the store's revision.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let _serial = self.reload.lock().await;
        // Every account's identities, whatever account the caller's handle is scoped to.
        let mut tx = store.unscoped().read().await?;
        let revision = tx.revision();
        if self.index.load().revision.is_some_and(|r| r >= revision) {
            return Ok(());
        }
        let records = IdentityRecords {
            users: decode(tx.list(USER_KIND, None).await?)?,
            keys: decode(tx.list(ACCESS_KEY_KIND, None).await?)?,
            user_policies: decode(tx.list(USER_POLICY_KIND, None).await?)?,
            roles: decode(tx.list(ROLE_KIND, None).await?)?,
            role_policies: decode(tx.list(ROLE_POLICY_KIND, None).await?)?,
            groups: decode(tx.list(GROUP_KIND, None).await?)?,
            group_members: decode(tx.list(GROUP_MEMBER_KIND, None).await?)?,
            group_policies: decode(tx.list(GROUP_POLICY_KIND, None).await?)?,
            managed_policies: decode(tx.list(MANAGED_POLICY_KIND, None).await?)?,
            attachments: decode(tx.list(ATTACHMENT_KIND, None).await?)?,
            token_key: decode(tx.list(TOKEN_KEY_KIND, None).await?)?
                .into_iter()
                .next(),
        };
        let organization = decode(
            tx.list(crate::organizations::ORGANIZATION_KIND, None)
                .await?,
        )?
        .into_iter()
        .next();
        let accounts = decode(tx.list(crate::organizations::ACCOUNT_KIND, None).await?)?;
        drop(tx);
        self.index.store(Arc::new(
            IdentityIndex::from_records(revision, records)
                .with_organization(organization)
                .with_account_roots(accounts),
        ));
        Ok(())
    }

    /// Whether the use of `access_key_id` now should be written to its record: the first use
    /// this process sees, then once per [`LAST_USED_GRANULARITY`].
    pub fn due_for_last_used(&self, access_key_id: &str, now: Instant) -> bool {
        let mut seen = self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = seen.get(access_key_id)
            && now.duration_since(*at) < LAST_USED_GRANULARITY
        {
            return false;
        }
        // Keys that were deleted linger until the map outgrows the index's keys.
        let limit = 2 * self.index.load().active_keys() + 16;
        if seen.len() >= limit {
            let index = self.current();
            seen.retain(|k, _| index.active_key(k).is_some());
        }
        seen.insert(access_key_id.to_string(), now);
        true
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    records: Vec<trellis_store::Record>,
) -> Result<Vec<T>, StoreError> {
    records
        .into_iter()
        .map(|r| {
            serde_json::from_value(r.body).map_err(|e| {
                StoreError::Backend(format!("a stored {} record does not decode: {e}", r.kind))
            })
        })
        .collect()
}

/// Follows the store's change feed and reloads the index at each new revision; a failed load
/// is retried (with a growing pause, at most 5 s) until one succeeds. Returns when the feed
/// closes.
pub async fn follow(identities: Arc<Identities>, store: Store) {
    let mut feed = store.subscribe();
    let mut pause = Duration::from_millis(50);
    loop {
        match identities.reload(&store).await {
            Ok(()) => pause = Duration::from_millis(50),
            Err(e) => {
                tracing::warn!(error = %e, "could not load the identity index; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        if feed.changed().await.is_err() {
            return;
        }
    }
}

/// Writes a key's last use to its record (one store transaction); a key deleted meanwhile is
/// left alone. Failures are logged: last-used is advisory.
pub async fn record_last_used(store: Store, access_key_id: String, used: LastUsed) {
    let result = async {
        let mut tx = store.write().await?;
        let Some(mut rec) = tx.get(ACCESS_KEY_KIND, &access_key_id).await? else {
            return tx.rollback().await;
        };
        let mut key: StoredAccessKey = serde_json::from_value(rec.body.clone())
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        key.last_used = Some(used);
        rec.body = serde_json::to_value(&key).map_err(|e| StoreError::Backend(e.to_string()))?;
        tx.update(&rec).await?;
        tx.commit().await.map(|_| ())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(access_key_id = %access_key_id, error = %e, "could not record an access key's last use");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, name: &str) -> StoredUser {
        StoredUser {
            user_name: name.into(),
            user_id: id.into(),
            path: "/".into(),
            arn: format!("arn:aws:iam::111122223333:user/{name}"),
            create_date_ms: 0,
            tags: Vec::new(),
        }
    }

    fn key(id: &str, user_id: &str, status: &str) -> StoredAccessKey {
        StoredAccessKey {
            access_key_id: id.into(),
            secret_access_key: format!("secret-of-{id}"),
            status: status.into(),
            user_id: user_id.into(),
            user_name: String::new(),
            create_date_ms: 0,
            last_used: None,
        }
    }

    #[test]
    fn the_index_holds_active_keys_and_parsed_policies() {
        let allow = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"vpc-lattice:List*","Resource":"*"}}"#;
        let index = IdentityIndex::build(
            7,
            vec![user("AIDA1", "Alice"), user("AIDA2", "bob")],
            vec![
                key("AKIA1", "AIDA1", "Active"),
                key("AKIA2", "AIDA1", "Inactive"),
                key("AKIA3", "AIDA2", "Active"),
                // An orphan (its user is gone) authenticates nobody.
                key("AKIA4", "AIDA9", "Active"),
            ],
            vec![
                StoredUserPolicy {
                    user_id: "AIDA1".into(),
                    policy_name: "read".into(),
                    policy_document: allow.into(),
                },
                StoredUserPolicy {
                    user_id: "AIDA1".into(),
                    policy_name: "broken".into(),
                    policy_document: "{".into(),
                },
            ],
        );
        assert_eq!(index.revision, Some(7));
        // (key, owner name if it authenticates)
        let cases = [
            ("AKIA1", Some("Alice")),
            ("AKIA2", None),
            ("AKIA3", Some("bob")),
            ("AKIA4", None),
            ("AKIA5", None),
        ];
        for (k, owner) in cases {
            assert_eq!(
                index.active_key(k).map(|(_, u)| u.name.as_str()),
                owner,
                "{k}"
            );
        }
        assert_eq!(index.active_key("AKIA1").unwrap().0, "secret-of-AKIA1");
        assert_eq!(index.key_owner("AKIA2").unwrap().name, "Alice");
        assert_eq!(
            index.user("111122223333", "ALICE").unwrap().policies.len(),
            1
        );
        assert_eq!(index.user("111122223333", "bob").unwrap().policies.len(), 0);
        // Roles added afterwards keep the users.
        let index = index.with_roles(
            vec![StoredRole {
                role_name: "App".into(),
                role_id: "AROA1".into(),
                path: "/".into(),
                arn: "arn:aws:iam::111122223333:role/App".into(),
                create_date_ms: 0,
                assume_role_policy_document: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}}"#.into(),
                description: None,
                max_session_duration: 3600,
                tags: Vec::new(),
            }],
            vec![StoredRolePolicy {
                role_id: "AROA1".into(),
                policy_name: "read".into(),
                policy_document: allow.into(),
            }],
            None,
        );
        assert_eq!(index.role("111122223333", "app").unwrap().policies.len(), 1);
        assert!(index.role("111122223333", "app").unwrap().trust.is_some());
        assert_eq!(
            index.user("111122223333", "alice").unwrap().policies.len(),
            1
        );
    }

    #[test]
    fn effective_policies_flatten_groups_and_managed_policies() {
        let doc = |action: &str, effect: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":{{"Effect":"{effect}","Action":"{action}","Resource":"*"}}}}"#
            )
        };
        let managed = StoredManagedPolicy {
            policy_name: "m".into(),
            policy_id: "ANPAM".into(),
            arn: "arn:aws:iam::111122223333:policy/m".into(),
            path: "/".into(),
            description: None,
            create_date_ms: 0,
            update_date_ms: 0,
            default_version_id: "v2".into(),
            next_version: 3,
            versions: vec![
                StoredPolicyVersion {
                    version_id: "v1".into(),
                    document: doc("vpc-lattice:CreateService", "Allow"),
                    create_date_ms: 0,
                },
                StoredPolicyVersion {
                    version_id: "v2".into(),
                    document: doc("vpc-lattice:DeleteService", "Allow"),
                    create_date_ms: 0,
                },
            ],
            tags: Vec::new(),
        };
        let attach = |entity_type, entity_id: &str, policy_arn: &str| StoredAttachment {
            entity_type,
            entity_id: entity_id.into(),
            policy_arn: policy_arn.into(),
        };
        let mut alice = user("AIDA1", "alice");
        alice.tags = vec![Tag {
            key: "team".into(),
            value: "red".into(),
        }];
        let index = IdentityIndex::from_records(
            3,
            IdentityRecords {
                users: vec![alice, user("AIDA2", "bob")],
                groups: vec![StoredGroup {
                    group_name: "readers".into(),
                    group_id: "AGPA1".into(),
                    path: "/".into(),
                    arn: "arn:aws:iam::111122223333:group/readers".into(),
                    create_date_ms: 0,
                }],
                group_members: vec![StoredGroupMember {
                    group_id: "AGPA1".into(),
                    user_id: "AIDA1".into(),
                }],
                group_policies: vec![StoredGroupPolicy {
                    group_id: "AGPA1".into(),
                    policy_name: "g".into(),
                    policy_document: doc("lambda:ListFunctions", "Allow"),
                }],
                managed_policies: vec![managed],
                attachments: vec![
                    attach(
                        EntityType::Group,
                        "AGPA1",
                        "arn:aws:iam::aws:policy/VPCLatticeReadOnlyAccess",
                    ),
                    attach(
                        EntityType::User,
                        "AIDA2",
                        "arn:aws:iam::111122223333:policy/m",
                    ),
                    // A policy that does not exist grants nothing.
                    attach(
                        EntityType::User,
                        "AIDA2",
                        "arn:aws:iam::111122223333:policy/gone",
                    ),
                ],
                ..IdentityRecords::default()
            },
        );
        let allows = |u: &User, action: &str| {
            let request = trellis_policy::RequestContext::new(
                trellis_policy::Principal::iam(u.arn.clone()),
                action,
                "*",
            );
            u.policies
                .iter()
                .any(|p| matches!(p.evaluate(&request), trellis_policy::Decision::Allow(_)))
        };
        let alice = index.user("111122223333", "alice").unwrap();
        assert_eq!(alice.policies.len(), 2);
        assert_eq!(alice.tags.len(), 1);
        // (user, action, allowed): alice through her group, bob through the default version.
        let cases = [
            (alice, "lambda:ListFunctions", true),
            (alice, "vpc-lattice:ListServices", true),
            (alice, "vpc-lattice:CreateService", false),
            (
                index.user("111122223333", "bob").unwrap(),
                "vpc-lattice:DeleteService",
                true,
            ),
            (
                index.user("111122223333", "bob").unwrap(),
                "vpc-lattice:CreateService",
                false,
            ),
            (
                index.user("111122223333", "bob").unwrap(),
                "lambda:ListFunctions",
                false,
            ),
        ];
        for (u, action, want) in cases {
            assert_eq!(allows(u, action), want, "{} {action}", u.name);
        }
        assert_eq!(
            index.group("111122223333", "READERS").unwrap().arn,
            "arn:aws:iam::111122223333:group/readers"
        );
    }

    #[test]
    fn last_used_is_due_once_per_granularity() {
        let ids = Identities::default();
        let t0 = Instant::now();
        assert!(ids.due_for_last_used("AKIA1", t0));
        assert!(!ids.due_for_last_used("AKIA1", t0 + Duration::from_secs(59)));
        assert!(ids.due_for_last_used("AKIA2", t0 + Duration::from_secs(59)));
        assert!(ids.due_for_last_used("AKIA1", t0 + LAST_USED_GRANULARITY));
    }

    #[test]
    fn stored_key_debug_hides_the_secret() {
        let k = key("AKIA1", "AIDA1", "Active");
        assert!(!format!("{k:?}").contains("secret-of"));
    }
}
