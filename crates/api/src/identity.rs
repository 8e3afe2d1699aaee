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
    pub id: String,
    pub name: String,
    pub path: String,
    pub arn: String,
    pub max_session_duration: i64,
    /// The trust policy; `None` when the stored one no longer parses (nobody may assume it).
    pub trust: Option<Policy>,
    /// Its inline policies, parsed as identity-based policies.
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
    pub id: String,
    pub name: String,
    pub path: String,
    pub arn: String,
    /// Its inline policies, parsed as identity-based policies.
    pub policies: Vec<Policy>,
}

/// The authenticated caller of a request, put in the request's extensions by the gate.
#[derive(Clone, Debug)]
pub enum Caller {
    /// The root credentials: every action is allowed.
    Root,
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
    /// `arn:aws:iam::<account>:root` or the user's ARN.
    pub fn arn(&self, ctx: &Context) -> String {
        match self {
            Caller::Root => root_arn(ctx),
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
    /// Users by lower-cased name.
    users: HashMap<String, Arc<User>>,
    /// Every key's owner (active or not), for GetAccessKeyLastUsed's resource.
    key_owners: HashMap<String, Arc<User>>,
    /// Users by user ID (sessions of GetSessionToken name their user by ID).
    users_by_id: HashMap<String, Arc<User>>,
    /// Roles by lower-cased name.
    roles: HashMap<String, Arc<Role>>,
    /// Roles by role ID (a session names its role by ID: a role deleted and created again
    /// under the same name is another role, and its old sessions are not its).
    roles_by_id: HashMap<String, Arc<Role>>,
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

    /// A user by name (case-insensitively, as IAM names are).
    pub fn user(&self, name: &str) -> Option<&Arc<User>> {
        self.users.get(&name.to_lowercase())
    }

    /// The owner of an access key, active or not.
    pub fn key_owner(&self, access_key_id: &str) -> Option<&Arc<User>> {
        self.key_owners.get(access_key_id)
    }

    /// A user by user ID.
    pub fn user_by_id(&self, id: &str) -> Option<&Arc<User>> {
        self.users_by_id.get(id)
    }

    /// A role by name (case-insensitively, as IAM names are).
    pub fn role(&self, name: &str) -> Option<&Arc<Role>> {
        self.roles.get(&name.to_lowercase())
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

    /// Adds the roles, their policies and the token key of the same revision.
    pub fn with_roles(
        mut self,
        roles: Vec<StoredRole>,
        policies: Vec<StoredRolePolicy>,
        token_key: Option<StoredTokenKey>,
    ) -> IdentityIndex {
        let mut by_role: HashMap<String, Vec<Policy>> = HashMap::new();
        for p in policies {
            match trellis_policy::parse(&p.policy_document, PolicyKind::Identity) {
                Ok(parsed) => by_role.entry(p.role_id).or_default().push(parsed),
                Err(d) => tracing::warn!(
                    role_id = %p.role_id,
                    policy = %p.policy_name,
                    problems = d.len(),
                    "a stored role policy does not parse; it grants nothing"
                ),
            }
        }
        for r in roles {
            let trust = trellis_policy::parse(&r.assume_role_policy_document, PolicyKind::Resource)
                .map_err(|d| {
                    tracing::warn!(
                        role_id = %r.role_id,
                        problems = d.len(),
                        "a stored trust policy does not parse; nobody may assume the role"
                    );
                })
                .ok();
            let role = Arc::new(Role {
                policies: by_role.remove(&r.role_id).unwrap_or_default(),
                trust,
                id: r.role_id,
                name: r.role_name,
                path: r.path,
                arn: r.arn,
                max_session_duration: r.max_session_duration,
                tags: r.tags,
            });
            self.roles
                .insert(role.name.to_lowercase(), Arc::clone(&role));
            self.roles_by_id.insert(role.id.clone(), role);
        }
        self.token_key = token_key.and_then(|k| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(k.key).ok()
        });
        self
    }

    /// How many active keys it holds.
    pub fn active_keys(&self) -> usize {
        self.keys.len()
    }

    /// Builds the index from the records of one revision. A stored policy that no longer parses
    /// (it was validated when put) is left out and logged: it can only grant less.
    pub fn build(
        revision: Revision,
        users: Vec<StoredUser>,
        keys: Vec<StoredAccessKey>,
        policies: Vec<StoredUserPolicy>,
    ) -> IdentityIndex {
        let mut by_user: HashMap<String, Vec<Policy>> = HashMap::new();
        for p in policies {
            match trellis_policy::parse(&p.policy_document, PolicyKind::Identity) {
                Ok(parsed) => by_user.entry(p.user_id).or_default().push(parsed),
                Err(d) => tracing::warn!(
                    user_id = %p.user_id,
                    policy = %p.policy_name,
                    problems = d.len(),
                    "a stored user policy does not parse; it grants nothing"
                ),
            }
        }
        let mut by_id: HashMap<String, Arc<User>> = HashMap::new();
        let mut index = IdentityIndex {
            revision: Some(revision),
            ..IdentityIndex::default()
        };
        for u in users {
            let user = Arc::new(User {
                policies: by_user.remove(&u.user_id).unwrap_or_default(),
                id: u.user_id,
                name: u.user_name,
                path: u.path,
                arn: u.arn,
            });
            index
                .users
                .insert(user.name.to_lowercase(), Arc::clone(&user));
            by_id.insert(user.id.clone(), user);
        }
        index.users_by_id = by_id.clone();
        for k in keys {
            let Some(user) = by_id.get(&k.user_id) else {
                continue;
            };
            index
                .key_owners
                .insert(k.access_key_id.clone(), Arc::clone(user));
            if k.status == "Active" {
                index.keys.insert(
                    k.access_key_id,
                    ActiveKey {
                        secret: k.secret_access_key,
                        user: Arc::clone(user),
                    },
                );
            }
        }
        index
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
        let mut tx = store.read().await?;
        let revision = tx.revision();
        if self.index.load().revision.is_some_and(|r| r >= revision) {
            return Ok(());
        }
        let users = decode(tx.list(USER_KIND, None).await?)?;
        let keys = decode(tx.list(ACCESS_KEY_KIND, None).await?)?;
        let policies = decode(tx.list(USER_POLICY_KIND, None).await?)?;
        let roles = decode(tx.list(ROLE_KIND, None).await?)?;
        let role_policies = decode(tx.list(ROLE_POLICY_KIND, None).await?)?;
        let token_key = decode(tx.list(TOKEN_KEY_KIND, None).await?)?
            .into_iter()
            .next();
        let organization = decode(tx.list(crate::organizations::ORGANIZATION_KIND, None).await?)?
            .into_iter()
            .next();
        drop(tx);
        self.index.store(Arc::new(
            IdentityIndex::build(revision, users, keys, policies).with_roles(
                roles,
                role_policies,
                token_key,
            )
            .with_organization(organization),
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
        assert_eq!(index.user("ALICE").unwrap().policies.len(), 1);
        assert_eq!(index.user("bob").unwrap().policies.len(), 0);
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
