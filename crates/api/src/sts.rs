//! STS (`sts/2011-06-15`, awsQuery): GetCallerIdentity, which tells a caller who the gate
//! authenticated it as (root, an IAM user or a role session) and which AWS never denies;
//! AssumeRole, which grants a role's temporary credentials to a caller its trust policy (and,
//! where AWS requires it, its identity policy) lets assume the role; and GetSessionToken, a
//! user's (or root's) own temporary credentials. Credentials are self-verifying tokens
//! ([`crate::session`]); the gate authenticates them.

use axum::http::StatusCode;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use trellis_model::{Context, Timestamp};
use trellis_policy::{Decision, Principal, RequestContext};
use trellis_store::{Record, StoreError};
use trellis_wire::codec::Timestamp as WireTimestamp;
use trellis_wire::{AwsError, Call, Operation, Protocol, Service, ServiceErrors};

use crate::AppState;
use crate::authorize::{Verdict, identity_decision, principal_tags};
use crate::identity::{
    Caller, Role, StoredTokenKey, TOKEN_KEY_ID, TOKEN_KEY_KIND, Tag, assumed_role_arn, root_arn,
};
use crate::session::{Claims, Subject};

/// STS as the front door knows it.
pub static STS: Service = Service {
    id: "STS",
    signing_name: "sts",
    endpoint_prefix: "sts",
    api_version: "2011-06-15",
    protocol: Protocol::AwsQuery,
    target_prefix: None,
    xml_namespace: Some("https://sts.amazonaws.com/doc/2011-06-15/"),
    path_prefixes: &[],
    errors: ServiceErrors {
        unknown_operation: |what| {
            AwsError::new(
                "InvalidAction",
                StatusCode::BAD_REQUEST,
                format!(
                    "Trellis does not implement the STS operation {what}: it serves \
                     GetCallerIdentity, AssumeRole and GetSessionToken"
                ),
            )
        },
        bad_input: |m| AwsError::new("ValidationError", StatusCode::BAD_REQUEST, m),
        internal_code: "InternalFailure",
        throttling_code: "Throttling",
        too_large: |cap| {
            AwsError::new(
                "ValidationError",
                StatusCode::BAD_REQUEST,
                format!("Request body exceeds {cap} bytes"),
            )
        },
        common: &["AccessDenied"],
    },
};

/// AssumeRole's DurationSeconds bounds and default (the upper bound is the role's
/// MaxSessionDuration).
pub const MIN_DURATION: i64 = 900;
pub const DEFAULT_ASSUME_ROLE_DURATION: i64 = 3600;
/// GetSessionToken's bounds and default; root's sessions last at most an hour.
pub const MAX_SESSION_TOKEN_DURATION: i64 = 129_600;
pub const DEFAULT_SESSION_TOKEN_DURATION: i64 = 43_200;
pub const MAX_ROOT_SESSION_DURATION: i64 = 3600;
/// The longest session of a role assumed by a role session (role chaining).
pub const MAX_CHAINED_DURATION: i64 = 3600;
/// Session tags per AssumeRole.
pub const MAX_SESSION_TAGS: usize = 50;

/// Every STS operation Trellis serves.
pub fn operations() -> Vec<Operation<AppState>> {
    vec![
        // The model lists no errors for GetCallerIdentity.
        Operation::rpc(&STS, "GetCallerIdentity", get_caller_identity).errors(&[]),
        Operation::rpc(&STS, "AssumeRole", assume_role).errors(&[
            "MalformedPolicyDocumentException",
            "PackedPolicyTooLargeException",
            "RegionDisabledException",
            "ExpiredTokenException",
        ]),
        Operation::rpc(&STS, "GetSessionToken", get_session_token)
            .errors(&["RegionDisabledException"]),
    ]
}

/// Put in a request's extensions by the gate when it was signed with temporary credentials.
#[derive(Clone, Copy, Debug)]
pub struct SessionCredentials;

fn caller(call: &Call) -> Caller {
    call.extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(|| Caller::Root {
            account: String::new(),
        })
}

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new("ValidationError", StatusCode::BAD_REQUEST, message)
}

fn access_denied(message: String) -> AwsError {
    AwsError::new("AccessDenied", StatusCode::FORBIDDEN, message)
}

#[derive(Debug, Deserialize)]
pub struct GetCallerIdentityInput {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetCallerIdentityOutput {
    pub user_id: String,
    pub account: String,
    pub arn: String,
}

async fn get_caller_identity(
    state: AppState,
    _: GetCallerIdentityInput,
    call: Call,
) -> Result<GetCallerIdentityOutput, AwsError> {
    let (user_id, arn) = match &caller(&call) {
        Caller::Root { .. } => (state.ctx.account_id.clone(), root_arn(&state.ctx)),
        Caller::User { user, .. } => (user.id.clone(), user.arn.clone()),
        Caller::Role { role, session } => (
            format!("{}:{}", role.id, session.session_name),
            session.arn.clone(),
        ),
    };
    Ok(GetCallerIdentityOutput {
        user_id,
        account: state.ctx.account_id.clone(),
        arn,
    })
}

// ---------------------------------------------------------------------------------------------
// Trust

/// Whether `caller` may perform `action` (`sts:AssumeRole`, `sts:TagSession`) on `role`, with the
/// request's condition keys `keys` (`sts:ExternalId`, `aws:RequestTag/…`, `aws:TagKeys`).
///
/// AWS's same-account rule: the trust policy must allow the caller, and
/// * when it names the caller directly (its ARN, or for a session its role's ARN), that
///   suffices — unless an identity policy of the caller explicitly denies the action;
/// * when it allows the caller only through its account (`"AWS": "<account-id>"` or the
///   account's `:root` ARN, which delegate to the account's own IAM), the caller's identity
///   policy must allow the action on the role too (root's always does).
///
/// An explicit deny in the trust policy for the caller refuses it either way.
pub fn may_assume(
    ctx: &Context,
    role: &Role,
    caller: &Caller,
    action: &str,
    keys: &[(String, String)],
) -> bool {
    let Some(trust) = &role.trust else {
        return false;
    };
    let caller_arn = caller.arn(ctx);
    let request = |principal: Principal| {
        let mut r = RequestContext::new(principal, action, role.arn.as_str())
            .with_key("aws:PrincipalAccount", ctx.account_id.as_str());
        for (k, v) in principal_tags(caller)
            .into_iter()
            .chain(keys.iter().cloned())
        {
            r = r.with_key(k, v);
        }
        r
    };
    let full = trust.evaluate(&request(Principal::Iam {
        arn: caller_arn.clone(),
        account: ctx.account_id.clone(),
    }));
    if matches!(full, Decision::ExplicitDeny(_)) {
        return false;
    }
    // The caller by its ARN alone: an account pattern cannot match a principal without one.
    let direct = matches!(
        trust.evaluate(&request(Principal::Iam {
            arn: caller_arn,
            account: String::new(),
        })),
        Decision::Allow(_)
    );
    let identity = identity_decision(caller, ctx, action, &role.arn, keys);
    if identity == Verdict::ExplicitDeny {
        return false;
    }
    // Across accounts both sides must agree: the role's account through its trust policy, the
    // caller's through its identity policies (root's always allow).
    if role.account != ctx.account_id {
        return (direct || via_account_allows(trust, ctx, &request)) && identity == Verdict::Allow;
    }
    if direct {
        return true;
    }
    via_account_allows(trust, ctx, &request) && identity == Verdict::Allow
}

/// Whether the trust policy allows the caller's account as a whole (`"AWS": "<account-id>"` or
/// its `:root` ARN).
fn via_account_allows<'a>(
    trust: &trellis_policy::Policy,
    ctx: &Context,
    request: &dyn Fn(Principal) -> RequestContext<'a>,
) -> bool {
    matches!(
        trust.evaluate(&request(Principal::Iam {
            arn: root_arn(ctx),
            account: ctx.account_id.clone(),
        })),
        Decision::Allow(_)
    )
}

// ---------------------------------------------------------------------------------------------
// Credentials

/// The model's `Credentials`. Its `Debug` leaves the secret and the token out.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: WireTimestamp,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The account's token key, created (32 bytes from the OS-seeded CSPRNG) by the first session.
async fn token_key(state: &AppState) -> Result<Vec<u8>, AwsError> {
    let internal = |e: StoreError| match e {
        StoreError::Unavailable(m) => AwsError::unavailable(m),
        StoreError::CommitUnknown(m) => AwsError::outcome_unknown(m),
        e => AwsError::internal("InternalFailure", e.to_string()),
    };
    if let Some(key) = state.identities.current().token_key() {
        return Ok(key.to_vec());
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    use base64::Engine as _;
    let stored = StoredTokenKey {
        key: base64::engine::general_purpose::STANDARD.encode(bytes),
    };
    // One key for every account's sessions: a record of no account.
    let mut tx = state.global_store.write().await.map_err(internal)?;
    if tx
        .get(TOKEN_KEY_KIND, TOKEN_KEY_ID)
        .await
        .map_err(internal)?
        .is_none()
    {
        let body = serde_json::to_value(&stored)
            .map_err(|e| AwsError::internal("InternalFailure", e.to_string()))?;
        tx.insert(&Record {
            kind: TOKEN_KEY_KIND.into(),
            id: TOKEN_KEY_ID.into(),
            parent: None,
            name: None,
            arn: None,
            refs: Vec::new(),
            body,
            seq: 0,
        })
        .await
        .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
    } else {
        tx.rollback().await.map_err(internal)?;
    }
    state
        .identities
        .reload(&state.store)
        .await
        .map_err(internal)?;
    state
        .identities
        .current()
        .token_key()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| AwsError::internal("InternalFailure", "the token key did not load"))
}

/// `ASIA` + 16 characters of IAM's ID alphabet, from the CSPRNG.
fn session_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let mut out = String::from("ASIA");
    for _ in 0..16 {
        out.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    out
}

async fn issue(
    state: &AppState,
    subject: Subject,
    id: String,
    session_name: String,
    tags: Vec<Tag>,
    duration: i64,
) -> Result<Credentials, AwsError> {
    let key = token_key(state).await?;
    let access_key_id = session_key_id();
    let now_ms = Timestamp::now().unix_millis();
    let expires = now_ms / 1000 + duration;
    let claims = Claims {
        access_key_id: access_key_id.clone(),
        expires,
        subject,
        id,
        session_name,
        tags,
    };
    Ok(Credentials {
        secret_access_key: crate::session::secret(&key, &access_key_id),
        session_token: crate::session::mint(&key, &claims),
        access_key_id,
        expiration: WireTimestamp::from_unix_millis(expires * 1000),
    })
}

// ---------------------------------------------------------------------------------------------
// AssumeRole

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleInput {
    pub role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub duration_seconds: Option<i64>,
    pub external_id: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub policy: Option<String>,
    #[serde(default)]
    pub policy_arns: Vec<serde_json::Value>,
    #[serde(default)]
    pub transitive_tag_keys: Vec<String>,
    pub serial_number: Option<String>,
    pub token_code: Option<String>,
    pub source_identity: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumedRoleUser {
    pub assumed_role_id: String,
    pub arn: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssumeRoleOutput {
    pub credentials: Credentials,
    pub assumed_role_user: AssumedRoleUser,
}

/// STS's constraint failures, worded as STS words them.
fn constraint(value: &str, member: &str, what: &str) -> String {
    format!("Value '{value}' at '{member}' failed to satisfy constraint: {what}")
}

/// The validation message for `errors`, if there are any.
fn validation_errors(errors: &[String]) -> Option<String> {
    match errors.len() {
        0 => None,
        1 => Some(format!("1 validation error detected: {}", errors[0])),
        n => Some(format!(
            "{n} validation errors detected: {}",
            errors.join("; ")
        )),
    }
}

fn session_name_ok(name: &str) -> bool {
    (2..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// The role name of a role ARN of this account (`arn:<partition>:iam::<account>:role/<path><name>`).
fn role_name_of<'a>(ctx: &Context, arn: &'a str) -> Option<&'a str> {
    let rest = arn.strip_prefix(&format!(
        "arn:{}:iam::{}:role/",
        ctx.partition, ctx.account_id
    ))?;
    rest.rsplit('/').next().filter(|n| !n.is_empty())
}

async fn assume_role(
    state: AppState,
    input: AssumeRoleInput,
    call: Call,
) -> Result<AssumeRoleOutput, AwsError> {
    let null = |member: &str| {
        format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy \
             constraint: Member must not be null"
        )
    };
    let Some(role_arn) = input.role_arn.clone() else {
        return Err(validation(null("roleArn")));
    };
    let Some(session_name) = input.role_session_name.clone() else {
        return Err(validation(null("roleSessionName")));
    };
    let mut errors = Vec::new();
    if !(20..=2048).contains(&role_arn.chars().count()) {
        errors.push(constraint(
            &role_arn,
            "roleArn",
            "Member must have length between 20 and 2048",
        ));
    }
    if !session_name_ok(&session_name) {
        errors.push(constraint(
            &session_name,
            "roleSessionName",
            r"Member must have length between 2 and 64 and satisfy regular expression pattern: [\w+=,.@-]*",
        ));
    }
    if let Some(d) = input.duration_seconds
        && !(MIN_DURATION..=43_200).contains(&d)
    {
        errors.push(constraint(
            &d.to_string(),
            "durationSeconds",
            "Member must have value between 900 and 43200",
        ));
    }
    if let Some(x) = &input.external_id
        && (!(2..=1224).contains(&x.chars().count())
            || !x
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c)))
    {
        errors.push(constraint(
            x,
            "externalId",
            r"Member must have length between 2 and 1224 and satisfy regular expression pattern: [\w+=,.@:\/-]*",
        ));
    }
    for (i, t) in input.tags.iter().enumerate() {
        if !(1..=128).contains(&t.key.chars().count()) {
            errors.push(constraint(
                &t.key,
                &format!("tags.{}.member.key", i + 1),
                "Member must have length between 1 and 128",
            ));
        }
        if t.value.chars().count() > 256 {
            errors.push(constraint(
                &t.value,
                &format!("tags.{}.member.value", i + 1),
                "Member must have length less than or equal to 256",
            ));
        }
    }
    if input.tags.len() > MAX_SESSION_TAGS {
        errors.push(constraint(
            &input.tags.len().to_string(),
            "tags",
            "Member must have length less than or equal to 50",
        ));
    }
    if let Some(message) = validation_errors(&errors) {
        return Err(validation(message));
    }
    if input.policy.is_some()
        || !input.policy_arns.is_empty()
        || !input.transitive_tag_keys.is_empty()
        || input.serial_number.is_some()
        || input.token_code.is_some()
        || input.source_identity.is_some()
    {
        return Err(validation(
            "Trellis does not support session policies, transitive tag keys, MFA or source \
             identity in AssumeRole yet",
        ));
    }

    let caller = caller(&call);
    let caller_arn = caller.arn(&state.ctx);
    let refused = || {
        access_denied(format!(
            "User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        ))
    };
    let index = state.identities.current();
    // The role's account is its ARN's: another account of the organization may be assumed
    // into (cross-account), as its trust policy allows. An unknown role is refused like a role
    // the caller may not assume.
    let role_account = trellis_model::arn::account_of(&role_arn).to_string();
    let role_ctx = Context {
        account_id: role_account.clone(),
        ..state.ctx.clone()
    };
    let role = role_name_of(&role_ctx, &role_arn)
        .and_then(|name| index.role(&role_account, name))
        .filter(|r| r.arn == role_arn)
        .cloned()
        .ok_or_else(refused)?;
    let mut keys: Vec<(String, String)> = crate::authorize::org_keys(&index);
    if let Some(x) = &input.external_id {
        keys.push(("sts:ExternalId".into(), x.clone()));
    }
    for t in &input.tags {
        keys.push((format!("aws:RequestTag/{}", t.key), t.value.clone()));
        keys.push(("aws:TagKeys".into(), t.key.clone()));
    }
    if !may_assume(&state.ctx, &role, &caller, "sts:AssumeRole", &keys) {
        return Err(refused());
    }
    if !input.tags.is_empty() && !may_assume(&state.ctx, &role, &caller, "sts:TagSession", &keys) {
        return Err(access_denied(format!(
            "User: {caller_arn} is not authorized to perform: sts:TagSession on resource: {role_arn}"
        )));
    }
    let duration = input
        .duration_seconds
        .unwrap_or(DEFAULT_ASSUME_ROLE_DURATION);
    // AWS caps a session assumed with another role session's credentials at one hour.
    if matches!(caller, Caller::Role { .. }) && duration > MAX_CHAINED_DURATION {
        return Err(validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by \
             role chaining.",
        ));
    }
    if duration > role.max_session_duration {
        return Err(validation(format!(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role \
             ({} seconds).",
            role.max_session_duration
        )));
    }
    let credentials = issue(
        &state,
        Subject::Role,
        role.id.clone(),
        session_name.clone(),
        input.tags.clone(),
        duration,
    )
    .await?;
    Ok(AssumeRoleOutput {
        credentials,
        assumed_role_user: AssumedRoleUser {
            assumed_role_id: format!("{}:{session_name}", role.id),
            arn: assumed_role_arn(&role_ctx, &role.name, &session_name),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// GetSessionToken

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSessionTokenInput {
    pub duration_seconds: Option<i64>,
    pub serial_number: Option<String>,
    pub token_code: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSessionTokenOutput {
    pub credentials: Credentials,
}

async fn get_session_token(
    state: AppState,
    input: GetSessionTokenInput,
    call: Call,
) -> Result<GetSessionTokenOutput, AwsError> {
    let duration = input
        .duration_seconds
        .unwrap_or(DEFAULT_SESSION_TOKEN_DURATION);
    if !(MIN_DURATION..=MAX_SESSION_TOKEN_DURATION).contains(&duration) {
        return Err(validation(format!(
            "1 validation error detected: {}",
            constraint(
                &duration.to_string(),
                "durationSeconds",
                "Member must have value between 900 and 129600",
            )
        )));
    }
    if input.serial_number.is_some() || input.token_code.is_some() {
        return Err(validation("Trellis does not support MFA yet"));
    }
    if call.extensions.get::<SessionCredentials>().is_some() {
        return Err(access_denied(
            "Cannot call GetSessionToken with session credentials".into(),
        ));
    }
    let (subject, id, duration) = match caller(&call) {
        // Root's sessions last at most an hour, as AWS's do.
        Caller::Root { account } => (
            Subject::Root,
            account,
            duration.min(MAX_ROOT_SESSION_DURATION),
        ),
        Caller::User { user, .. } => (Subject::User, user.id.clone(), duration),
        Caller::Role { .. } => {
            return Err(access_denied(
                "Cannot call GetSessionToken with session credentials".into(),
            ));
        }
    };
    let credentials = issue(&state, subject, id, String::new(), Vec::new(), duration).await?;
    Ok(GetSessionTokenOutput { credentials })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use trellis_policy::PolicyKind;

    use super::*;
    use crate::identity::{RoleSession, User};
    use crate::testutil::ctx;

    fn role(trust: &str) -> Role {
        Role {
            account: "111122223333".into(),
            id: "AROAAPP".into(),
            name: "app".into(),
            path: "/".into(),
            arn: "arn:aws:iam::111122223333:role/app".into(),
            max_session_duration: 3600,
            trust: Some(trellis_policy::parse(trust, PolicyKind::Resource).unwrap()),
            policies: Vec::new(),
            tags: Vec::new(),
        }
    }

    fn trust(principal: &str, actions: &str, condition: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":{actions}{condition}}}]}}"#
        )
    }

    fn user(policy: Option<&str>) -> Caller {
        Caller::User {
            user: Arc::new(User {
                account: "111122223333".into(),
                id: "AIDAALICE".into(),
                name: "alice".into(),
                path: "/".into(),
                arn: "arn:aws:iam::111122223333:user/alice".into(),
                policies: policy
                    .map(|p| trellis_policy::parse(p, PolicyKind::Identity).unwrap())
                    .into_iter()
                    .collect(),
                tags: Vec::new(),
            }),
            access_key_id: "AKIAALICE".into(),
        }
    }

    const ALLOW_ASSUME: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::111122223333:role/app"}}"#;
    const DENY_ASSUME: &str =
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"sts:*","Resource":"*"}}"#;
    const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

    /// (case, trust policy, caller, action, condition keys, allowed)
    type Case = (
        &'static str,
        String,
        Caller,
        &'static str,
        Vec<(String, String)>,
        bool,
    );

    #[test]
    fn trust_policy_evaluation() {
        let ctx = ctx();
        let assume = r#""sts:AssumeRole""#;
        let both = r#"["sts:AssumeRole","sts:TagSession"]"#;
        let external = r#","Condition":{"StringEquals":{"sts:ExternalId":"expected-id"}}"#;
        let x = |v: &str| vec![("sts:ExternalId".to_string(), v.to_string())];
        let other_role = Caller::Role {
            role: Arc::new(Role {
                id: "AROAOTHER".into(),
                name: "other".into(),
                ..role(&trust("111122223333", assume, ""))
            }),
            session: Arc::new(RoleSession {
                arn: "arn:aws:sts::111122223333:assumed-role/other/s".into(),
                session_name: "s".into(),
                access_key_id: "ASIAOTHER".into(),
                tags: Vec::new(),
            }),
        };
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // (case, trust policy, caller, action, keys, allowed)
            ("direct principal, no identity policy", trust(ALICE, assume, ""), user(None), "sts:AssumeRole", vec![], true),
            ("direct principal, identity explicit deny", trust(ALICE, assume, ""), user(Some(DENY_ASSUME)), "sts:AssumeRole", vec![], false),
            ("account root + identity allow", trust("111122223333", assume, ""), user(Some(ALLOW_ASSUME)), "sts:AssumeRole", vec![], true),
            ("account root ARN + identity allow", trust("arn:aws:iam::111122223333:root", assume, ""), user(Some(ALLOW_ASSUME)), "sts:AssumeRole", vec![], true),
            ("account root without identity allow", trust("111122223333", assume, ""), user(None), "sts:AssumeRole", vec![], false),
            ("account root, root caller", trust("111122223333", assume, ""), Caller::Root {
                account: "111122223333".into(),
            }, "sts:AssumeRole", vec![], true),
            ("another user named", trust("arn:aws:iam::111122223333:user/bob", assume, ""), user(Some(ALLOW_ASSUME)), "sts:AssumeRole", vec![], false),
            ("wrong account", trust("999999999999", assume, ""), user(Some(ALLOW_ASSUME)), "sts:AssumeRole", vec![], false),
            ("wrong account, root caller", trust("999999999999", assume, ""), Caller::Root {
                account: "111122223333".into(),
            }, "sts:AssumeRole", vec![], false),
            ("external ID matches", trust(ALICE, assume, external), user(None), "sts:AssumeRole", x("expected-id"), true),
            ("external ID differs", trust(ALICE, assume, external), user(None), "sts:AssumeRole", x("other-id"), false),
            ("external ID missing", trust(ALICE, assume, external), user(None), "sts:AssumeRole", vec![], false),
            ("TagSession not in the trust policy", trust(ALICE, assume, ""), user(None), "sts:TagSession", vec![], false),
            ("TagSession in the trust policy", trust(ALICE, both, ""), user(None), "sts:TagSession", vec![], true),
            ("a session of a named role", trust("arn:aws:iam::111122223333:role/other", assume, ""), other_role.clone(), "sts:AssumeRole", vec![], true),
            ("a session through the account, role grants nothing", trust("111122223333", assume, ""), other_role, "sts:AssumeRole", vec![], false),
        ];
        for (case, doc, caller, action, keys, allowed) in cases {
            assert_eq!(
                may_assume(&ctx, &role(&doc), &caller, action, &keys),
                allowed,
                "{case}"
            );
        }
        // A deny in the trust policy wins over a direct allow.
        let deny = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{ALICE}"}},"Action":"sts:AssumeRole"}},{{"Effect":"Deny","Principal":{{"AWS":"111122223333"}},"Action":"sts:AssumeRole"}}]}}"#
        );
        assert!(!may_assume(
            &ctx,
            &role(&deny),
            &user(None),
            "sts:AssumeRole",
            &[]
        ));
        // A role whose trust policy no longer parses is assumed by nobody.
        let broken = Role {
            trust: None,
            ..role(&trust(ALICE, assume, ""))
        };
        assert!(!may_assume(
            &ctx,
            &broken,
            &Caller::Root {
                account: "111122223333".into(),
            },
            "sts:AssumeRole",
            &[]
        ));
    }

    #[test]
    fn role_arns_name_this_accounts_roles() {
        let ctx = ctx();
        let cases = [
            ("arn:aws:iam::111122223333:role/app", Some("app")),
            ("arn:aws:iam::111122223333:role/team/app", Some("app")),
            ("arn:aws:iam::999999999999:role/app", None),
            ("arn:aws:iam::111122223333:user/app", None),
            ("arn:aws:iam::111122223333:role/", None),
        ];
        for (arn, name) in cases {
            assert_eq!(role_name_of(&ctx, arn), name, "{arn}");
        }
    }
}
