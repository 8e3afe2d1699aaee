//! Auth policies (PutAuthPolicy, GetAuthPolicy, DeleteAuthPolicy) and resource policies
//! (PutResourcePolicy, GetResourcePolicy, DeleteResourcePolicy) of service networks and services.
//!
//! Both kinds are stored one per resource: store kind [`AUTH_POLICY`] / [`RESOURCE_POLICY`], record
//! id and parent = the service or service network id, body a [`StoredPolicy`]. The policy text is
//! kept verbatim (Lattice normalizes it, but clients such as Terraform compare policies as JSON,
//! not as text) and is validated with `trellis-policy` before it is stored, so whoever evaluates it
//! later can parse it again without surprises. Deleting the resource removes both policies
//! (`cascade::delete_attached`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use trellis_model::{Checks, ResourceKind, Timestamp, ValidationError};
use trellis_policy::{Diagnostic, PolicyKind};
use trellis_store::{Record, Tx};
use trellis_wire::Call;

use crate::AppState;
use crate::cascade::{AUTH_POLICY, RESOURCE_POLICY};
use crate::error::{ApiError, ApiResult, human};
use crate::wire::{doc, load, set_doc};

/// Lattice's auth-policy size quota (reference §11.1: 10 KB, not adjustable), in UTF-8 bytes.
/// The model allows 36,864 characters; the quota is the tighter bound and is what Lattice
/// enforces, so Trellis rejects bigger policies too (as a ValidationException, see
/// [`check_policy`]).
pub const AUTH_POLICY_QUOTA_BYTES: usize = 10_240;

/// At most this many policy diagnostics are reported, so that a pathological document cannot
/// produce a megabyte-long error message.
const MAX_DIAGNOSTICS: usize = 20;

/// The body of `auth-policy` and `resource-policy` records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPolicy {
    /// The service or service network the policy is attached to (also the record id).
    pub resource_id: String,
    pub resource_arn: String,
    /// `SERVICE_NETWORK` or `SERVICE`.
    pub resource_type: String,
    /// The policy document exactly as the client sent it.
    pub policy: String,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
}

/// What a policy identifier names, judged by the model's patterns alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Resource(ResourceKind),
    /// `rcfg-…`: valid in Lattice, but Trellis has no resource configurations.
    ResourceConfiguration,
}

fn is_id_suffix(s: &str) -> bool {
    s.len() == 17
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

fn id_target(s: &str) -> Option<Target> {
    if ResourceKind::ServiceNetwork.is_id(s) {
        Some(Target::Resource(ResourceKind::ServiceNetwork))
    } else if ResourceKind::Service.is_id(s) {
        Some(Target::Resource(ResourceKind::Service))
    } else if s.strip_prefix("rcfg-").is_some_and(is_id_suffix) {
        Some(Target::ResourceConfiguration)
    } else {
        None
    }
}

/// `[a-z0-9]+([.-][a-z0-9]+)*`, one ARN segment of the `ResourceArn` pattern.
fn is_label(s: &str) -> bool {
    let sep = |b: u8| b == b'.' || b == b'-';
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || sep(b))
        && !sep(s.as_bytes()[0])
        && !sep(s.as_bytes()[s.len() - 1])
        && !s.as_bytes().windows(2).any(|w| sep(w[0]) && sep(w[1]))
}

fn arn_target(s: &str) -> Option<Target> {
    let parts: Vec<&str> = s.split(':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return None;
    };
    if *arn != "arn" || !is_label(partition) || !is_label(service) {
        return None;
    }
    if !(region.is_empty() || is_label(region)) || !(account.is_empty() || is_label(account)) {
        return None;
    }
    let (segment, id) = resource.split_once('/')?;
    let target = id_target(id)?;
    match (segment, target) {
        ("servicenetwork", Target::Resource(ResourceKind::ServiceNetwork))
        | ("service", Target::Resource(ResourceKind::Service))
        | ("resourceconfiguration", Target::ResourceConfiguration) => Some(target),
        _ => None,
    }
}

/// Classifies an identifier by the model's `ResourceIdentifier` pattern (IDs or ARNs,
/// `allow_id`) or `ResourceArn` pattern (ARNs only). `None`: it matches neither.
fn classify(identifier: &str, allow_id: bool) -> Option<Target> {
    if allow_id && let Some(t) = id_target(identifier) {
        return Some(t);
    }
    arn_target(identifier)
}

const RESOURCE_IDENTIFIER_PATTERN: &str = "((((sn)|(svc)|(rcfg))-[0-9a-z]{17})|(arn(:[a-z0-9]+([.-][a-z0-9]+)*){2}(:([a-z0-9]+([.-][a-z0-9]+)*)?){2}:((servicenetwork/sn)|(resourceconfiguration/rcfg)|(service/svc))-[0-9a-z]{17}))";
const RESOURCE_ARN_PATTERN: &str = "arn(:[a-z0-9]+([.-][a-z0-9]+)*){2}(:([a-z0-9]+([.-][a-z0-9]+)*)?){2}:((servicenetwork/sn)|(service/svc)|(resourceconfiguration/rcfg))-[0-9a-z]{17}";

/// Which identifier an operation takes: the path member's name and its model constraints.
struct IdentifierRule {
    field: &'static str,
    min: usize,
    allow_id: bool,
    pattern: &'static str,
}

const AUTH_IDENTIFIER: IdentifierRule = IdentifierRule {
    field: "resourceIdentifier",
    min: 17,
    allow_id: true,
    pattern: RESOURCE_IDENTIFIER_PATTERN,
};
const RESOURCE_ARN: IdentifierRule = IdentifierRule {
    field: "resourceArn",
    min: 20,
    allow_id: false,
    pattern: RESOURCE_ARN_PATTERN,
};

/// Validates the identifier; returns the kind of resource it names when it is usable.
fn check_target(c: &mut Checks, rule: &IdentifierRule, identifier: &str) -> Option<ResourceKind> {
    if !c.length(rule.field, identifier, rule.min, 200) {
        return None;
    }
    let target = classify(identifier, rule.allow_id);
    if !c.pattern(rule.field, identifier, target.is_some(), rule.pattern) {
        return None;
    }
    match target? {
        Target::Resource(kind) => Some(kind),
        Target::ResourceConfiguration => {
            c.fail(
                rule.field,
                format!(
                    "Value '{identifier}' at '{}' names a resource configuration; Trellis does not support resource configurations, so policies can only be attached to service networks and services",
                    rule.field
                ),
            );
            None
        }
    }
}

/// Validates a policy text: the model's length bounds (and, for resource policies, its
/// non-whitespace pattern), the auth-policy size quota, then the policy language itself.
///
/// The 10 KB quota is answered with a ValidationException on `policy` rather than a
/// ServiceQuotaExceededException: the quota cannot be raised, so it behaves like a fixed limit,
/// and Put*Policy does not model ServiceQuotaExceededException, so typed SDK clients could not
/// match it. Newlines are accepted although the API reference says the JSON "must not contain
/// newlines": `--policy file://policy.json` with a pretty-printed file is the documented CLI
/// usage and works against Lattice.
fn check_policy(c: &mut Checks, policy: Option<&str>, kind: PolicyKind) {
    let Some(p) = policy else {
        c.missing("policy");
        return;
    };
    if !c.length("policy", p, 1, kind.max_chars()) {
        return;
    }
    if kind == PolicyKind::Resource
        && !c.pattern(
            "policy",
            p,
            p.chars().any(|ch| !ch.is_whitespace()),
            ".*\\S.*",
        )
    {
        return;
    }
    if kind == PolicyKind::Auth && p.len() > AUTH_POLICY_QUOTA_BYTES {
        c.fail(
            "policy",
            format!(
                "The auth policy is {} bytes long, which exceeds the auth policy size quota of 10 KB ({AUTH_POLICY_QUOTA_BYTES} bytes)",
                p.len()
            ),
        );
        return;
    }
    if let Err(diagnostics) = trellis_policy::parse(p, kind) {
        report_diagnostics(c, &diagnostics);
    }
}

/// One `policy` field error per diagnostic, each saying where in the document the problem is.
fn report_diagnostics(c: &mut Checks, diagnostics: &[Diagnostic]) {
    for d in diagnostics.iter().take(MAX_DIAGNOSTICS) {
        let message = if d.path.is_empty() {
            format!("Invalid policy: {}", d.message)
        } else {
            format!("Invalid policy at {}: {}", d.path, d.message)
        };
        c.fail("policy", message);
    }
    if diagnostics.len() > MAX_DIAGNOSTICS {
        c.fail(
            "policy",
            format!(
                "Invalid policy: {} more problems not shown",
                diagnostics.len() - MAX_DIAGNOSTICS
            ),
        );
    }
}

/// `Active` iff the resource's top-level `authType` is `AWS_IAM` (the policy is kept but ignored
/// otherwise).
fn auth_state(resource: &Record) -> &'static str {
    if resource.body.get("authType").and_then(Value::as_str) == Some("AWS_IAM") {
        "Active"
    } else {
        "Inactive"
    }
}

fn policy_not_found(
    what: &str,
    resource_type: &str,
    kind: ResourceKind,
    identifier: &str,
) -> ApiError {
    ApiError::NotFound {
        message: format!("The {} {identifier} has no {what}", human(kind)),
        resource_id: identifier.to_string(),
        resource_type: resource_type.to_string(),
    }
}

/// Creates or replaces the policy of `store_kind` attached to `resource`.
async fn upsert(
    tx: &mut Tx,
    store_kind: &str,
    kind: ResourceKind,
    resource: &Record,
    policy: String,
) -> ApiResult<StoredPolicy> {
    let now = Timestamp::now();
    if let Some(mut rec) = tx.get(store_kind, &resource.id).await? {
        let mut stored: StoredPolicy = doc(&rec)?;
        stored.policy = policy;
        stored.last_updated_at = now;
        set_doc(&mut rec, &stored)?;
        tx.update(&rec).await?;
        return Ok(stored);
    }
    let stored = StoredPolicy {
        resource_id: resource.id.clone(),
        resource_arn: resource.arn.clone().unwrap_or_default(),
        resource_type: kind.error_type().to_string(),
        policy,
        created_at: now,
        last_updated_at: now,
    };
    let rec = Record {
        kind: store_kind.to_string(),
        id: resource.id.clone(),
        parent: Some(resource.id.clone()),
        name: None,
        arn: None,
        refs: Vec::new(),
        body: serde_json::to_value(&stored).map_err(|e| ApiError::Internal(e.to_string()))?,
        seq: 0,
    };
    tx.insert(&rec).await?;
    Ok(stored)
}

/// Validates the path identifier alone (Get/Delete).
fn checked_target(
    rule: &IdentifierRule,
    identifier: &str,
) -> Result<ResourceKind, ValidationError> {
    let mut c = Checks::new();
    let kind = check_target(&mut c, rule, identifier);
    match kind {
        Some(kind) => Ok(kind),
        // `check_target` names no kind only after recording why.
        None => Err(c.finish().expect_err("an unusable identifier is a failure")),
    }
}

/// Validates the path identifier and the body's `policy` together (Put), so one response lists
/// every problem.
fn checked_put(
    rule: &IdentifierRule,
    identifier: &str,
    policy: Option<&str>,
    kind: PolicyKind,
) -> Result<(ResourceKind, String), ValidationError> {
    let mut c = Checks::new();
    let target = check_target(&mut c, rule, identifier);
    check_policy(&mut c, policy, kind);
    let (Some(target), Some(policy)) = (target, policy) else {
        // An unusable identifier or a missing policy, which `c` has recorded.
        return Err(c.finish().expect_err("an unusable member is a failure"));
    };
    c.finish()?;
    Ok((target, policy.to_string()))
}

/// The input of GetAuthPolicy and DeleteAuthPolicy.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthPolicyInput {
    /// The greedy label `{resourceIdentifier+}`: the rest of the path, so an ARN whose `/` was
    /// not percent-encoded still arrives whole.
    resource_identifier: String,
}

impl AuthPolicyInput {
    fn validate(&self) -> Result<ResourceKind, ValidationError> {
        checked_target(&AUTH_IDENTIFIER, &self.resource_identifier)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutAuthPolicyInput {
    resource_identifier: String,
    policy: Option<String>,
}

impl PutAuthPolicyInput {
    fn validate(&self) -> Result<(ResourceKind, String), ValidationError> {
        checked_put(
            &AUTH_IDENTIFIER,
            &self.resource_identifier,
            self.policy.as_deref(),
            PolicyKind::Auth,
        )
    }
}

#[derive(Debug, Serialize)]
pub struct PutAuthPolicyOutput {
    policy: String,
    state: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAuthPolicyOutput {
    policy: String,
    state: &'static str,
    created_at: Timestamp,
    last_updated_at: Timestamp,
}

/// DeleteAuthPolicy answers 204 with no members.
#[derive(Debug, Serialize)]
pub struct DeleteAuthPolicyOutput {}

/// The input of GetResourcePolicy and DeleteResourcePolicy.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePolicyInput {
    /// The greedy label `{resourceArn+}` (see [`AuthPolicyInput`]).
    resource_arn: String,
}

impl ResourcePolicyInput {
    fn validate(&self) -> Result<ResourceKind, ValidationError> {
        checked_target(&RESOURCE_ARN, &self.resource_arn)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutResourcePolicyInput {
    resource_arn: String,
    policy: Option<String>,
}

impl PutResourcePolicyInput {
    fn validate(&self) -> Result<(ResourceKind, String), ValidationError> {
        checked_put(
            &RESOURCE_ARN,
            &self.resource_arn,
            self.policy.as_deref(),
            PolicyKind::Resource,
        )
    }
}

/// PutResourcePolicy answers with no members.
#[derive(Debug, Serialize)]
pub struct PutResourcePolicyOutput {}

#[derive(Debug, Serialize)]
pub struct GetResourcePolicyOutput {
    policy: String,
}

/// DeleteResourcePolicy answers 204 with no members.
#[derive(Debug, Serialize)]
pub struct DeleteResourcePolicyOutput {}

pub(crate) async fn put_auth(
    s: AppState,
    input: PutAuthPolicyInput,
    _: Call,
) -> ApiResult<PutAuthPolicyOutput> {
    let (kind, policy) = input.validate()?;
    let ident = &input.resource_identifier;
    let mut tx = s.store.write().await?;
    let resource = load(&mut tx, &s.ctx, kind, AUTH_IDENTIFIER.field, ident).await?;
    let stored = upsert(&mut tx, AUTH_POLICY, kind, &resource, policy).await?;
    tx.commit().await?;
    Ok(PutAuthPolicyOutput {
        policy: stored.policy,
        state: auth_state(&resource),
    })
}

pub(crate) async fn get_auth(
    s: AppState,
    input: AuthPolicyInput,
    _: Call,
) -> ApiResult<GetAuthPolicyOutput> {
    let kind = input.validate()?;
    let ident = &input.resource_identifier;
    let mut tx = s.store.read().await?;
    let resource = load(&mut tx, &s.ctx, kind, AUTH_IDENTIFIER.field, ident).await?;
    let rec = tx
        .get(AUTH_POLICY, &resource.id)
        .await?
        .ok_or_else(|| policy_not_found("auth policy", "AUTH_POLICY", kind, ident))?;
    let stored: StoredPolicy = doc(&rec)?;
    Ok(GetAuthPolicyOutput {
        policy: stored.policy,
        state: auth_state(&resource),
        created_at: stored.created_at,
        last_updated_at: stored.last_updated_at,
    })
}

/// Deleting is allowed whatever the resource's authType (reference §2.5/§15 leave it open): with
/// `AWS_IAM` and no policy every request is denied, which is the safe outcome the API reference
/// describes, and Terraform destroys the policy before the service, which must not fail.
pub(crate) async fn delete_auth(
    s: AppState,
    input: AuthPolicyInput,
    _: Call,
) -> ApiResult<DeleteAuthPolicyOutput> {
    let kind = input.validate()?;
    let ident = &input.resource_identifier;
    let mut tx = s.store.write().await?;
    let resource = load(&mut tx, &s.ctx, kind, AUTH_IDENTIFIER.field, ident).await?;
    if !tx.delete(AUTH_POLICY, &resource.id).await? {
        return Err(policy_not_found("auth policy", "AUTH_POLICY", kind, ident));
    }
    tx.commit().await?;
    Ok(DeleteAuthPolicyOutput {})
}

pub(crate) async fn put_resource(
    s: AppState,
    input: PutResourcePolicyInput,
    _: Call,
) -> ApiResult<PutResourcePolicyOutput> {
    let (kind, policy) = input.validate()?;
    let mut tx = s.store.write().await?;
    let resource = load(
        &mut tx,
        &s.ctx,
        kind,
        RESOURCE_ARN.field,
        &input.resource_arn,
    )
    .await?;
    upsert(&mut tx, RESOURCE_POLICY, kind, &resource, policy).await?;
    tx.commit().await?;
    Ok(PutResourcePolicyOutput {})
}

pub(crate) async fn get_resource(
    s: AppState,
    input: ResourcePolicyInput,
    _: Call,
) -> ApiResult<GetResourcePolicyOutput> {
    let kind = input.validate()?;
    let arn = &input.resource_arn;
    let mut tx = s.store.read().await?;
    let resource = load(&mut tx, &s.ctx, kind, RESOURCE_ARN.field, arn).await?;
    let rec = tx
        .get(RESOURCE_POLICY, &resource.id)
        .await?
        .ok_or_else(|| policy_not_found("resource policy", "RESOURCE_POLICY", kind, arn))?;
    let stored: StoredPolicy = doc(&rec)?;
    Ok(GetResourcePolicyOutput {
        policy: stored.policy,
    })
}

pub(crate) async fn delete_resource(
    s: AppState,
    input: ResourcePolicyInput,
    _: Call,
) -> ApiResult<DeleteResourcePolicyOutput> {
    let kind = input.validate()?;
    let arn = &input.resource_arn;
    let mut tx = s.store.write().await?;
    let resource = load(&mut tx, &s.ctx, kind, RESOURCE_ARN.field, arn).await?;
    if !tx.delete(RESOURCE_POLICY, &resource.id).await? {
        return Err(policy_not_found(
            "resource policy",
            "RESOURCE_POLICY",
            kind,
            arn,
        ));
    }
    tx.commit().await?;
    Ok(DeleteResourcePolicyOutput {})
}

#[cfg(test)]
mod tests {
    use super::*;

    const SN: &str = "sn-0123456789abcdef0";
    const SVC: &str = "svc-0123456789abcdef0";
    const RCFG: &str = "rcfg-0123456789abcdef0";

    #[test]
    fn classify_table() {
        use ResourceKind::{Service, ServiceNetwork};
        let sn_arn = format!("arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/{SN}");
        let svc_arn = format!("arn:aws:vpc-lattice:us-west-2:111122223333:service/{SVC}");
        let rcfg_arn =
            format!("arn:aws:vpc-lattice:us-west-2:111122223333:resourceconfiguration/{RCFG}");
        let cases: Vec<(String, bool, Option<Target>)> = vec![
            (SN.into(), true, Some(Target::Resource(ServiceNetwork))),
            (SVC.into(), true, Some(Target::Resource(Service))),
            (RCFG.into(), true, Some(Target::ResourceConfiguration)),
            (SN.into(), false, None),
            (
                sn_arn.clone(),
                false,
                Some(Target::Resource(ServiceNetwork)),
            ),
            (svc_arn.clone(), true, Some(Target::Resource(Service))),
            (rcfg_arn, false, Some(Target::ResourceConfiguration)),
            // Region and account may be empty in the pattern.
            (
                format!("arn:aws-cn:vpc-lattice:::service/{SVC}"),
                false,
                Some(Target::Resource(Service)),
            ),
            (format!("{svc_arn}/extra"), true, None),
            (
                format!("arn:aws:vpc-lattice:us-west-2:111122223333:service/{SN}"),
                true,
                None,
            ),
            (
                "arn:aws:vpc-lattice:us-west-2:111122223333:targetgroup/tg-0123456789abcdef0"
                    .to_string(),
                true,
                None,
            ),
            (
                format!("arn:AWS:vpc-lattice:us-west-2:111122223333:service/{SVC}"),
                true,
                None,
            ),
            (
                format!("arn:aws:vpc--lattice:us-west-2:111122223333:service/{SVC}"),
                true,
                None,
            ),
            (
                format!("arn:aws:vpc-lattice:us-west-2:111122223333:extra:service/{SVC}"),
                true,
                None,
            ),
            ("tg-0123456789abcdef0".into(), true, None),
            ("svc-0123456789ABCDEF0".into(), true, None),
            ("".into(), true, None),
        ];
        for (input, allow_id, want) in cases {
            assert_eq!(
                classify(&input, allow_id),
                want,
                "{input} allow_id={allow_id}"
            );
        }
    }

    fn field_names(c: Checks) -> Vec<String> {
        match c.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.fields.into_iter().map(|f| f.name).collect(),
        }
    }

    #[test]
    fn identifier_checks_name_the_member() {
        let cases: Vec<(&IdentifierRule, String, Vec<&str>)> = vec![
            (&AUTH_IDENTIFIER, SN.into(), vec![]),
            (
                &AUTH_IDENTIFIER,
                "sn-short".into(),
                vec!["resourceIdentifier"],
            ),
            (
                &AUTH_IDENTIFIER,
                "x".repeat(201),
                vec!["resourceIdentifier"],
            ),
            (&AUTH_IDENTIFIER, RCFG.into(), vec!["resourceIdentifier"]),
            (&RESOURCE_ARN, SVC.into(), vec!["resourceArn"]),
            (
                &RESOURCE_ARN,
                format!("arn:aws:vpc-lattice:us-west-2:111122223333:service/{SVC}"),
                vec![],
            ),
            (
                &RESOURCE_ARN,
                format!("arn:aws:vpc-lattice:us-west-2:111122223333:resourceconfiguration/{RCFG}"),
                vec!["resourceArn"],
            ),
        ];
        for (rule, input, want) in cases {
            let mut c = Checks::new();
            let kind = check_target(&mut c, rule, &input);
            assert_eq!(kind.is_some(), want.is_empty(), "{input}");
            assert_eq!(field_names(c), want, "{input}");
        }
    }

    /// Put*Policy reports a bad identifier and a bad policy together; Get/Delete check the
    /// identifier alone. (input document, expected failing fields)
    #[test]
    fn put_inputs_report_every_member() {
        use serde_json::json;
        let svc_arn = format!("arn:aws:vpc-lattice:us-west-2:111122223333:service/{SVC}");
        let auth: Vec<(Value, Vec<&str>)> = vec![
            (json!({ "resourceIdentifier": SVC, "policy": GOOD }), vec![]),
            (
                json!({ "resourceIdentifier": svc_arn, "policy": GOOD }),
                vec![],
            ),
            (json!({ "resourceIdentifier": SVC }), vec!["policy"]),
            (
                json!({ "resourceIdentifier": "svc-1" }),
                vec!["resourceIdentifier", "policy"],
            ),
            (
                json!({ "resourceIdentifier": RCFG, "policy": "{" }),
                vec!["resourceIdentifier", "policy"],
            ),
        ];
        for (doc, want) in auth {
            let input: PutAuthPolicyInput = trellis_wire::de::from_value(doc.clone()).unwrap();
            let got = input.validate().err().map(|e| e.fields).unwrap_or_default();
            let got: Vec<_> = got.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(got, want, "{doc}");
        }
        let resource: Vec<(Value, Vec<&str>)> = vec![
            (json!({ "resourceArn": svc_arn, "policy": GOOD }), vec![]),
            (
                json!({ "resourceArn": SVC, "policy": "  " }),
                vec!["resourceArn", "policy"],
            ),
        ];
        for (doc, want) in resource {
            let input: PutResourcePolicyInput = trellis_wire::de::from_value(doc.clone()).unwrap();
            let got = input.validate().err().map(|e| e.fields).unwrap_or_default();
            let got: Vec<_> = got.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(got, want, "{doc}");
        }
        let get: AuthPolicyInput =
            trellis_wire::de::from_value(json!({ "resourceIdentifier": SN })).unwrap();
        assert_eq!(get.validate().unwrap(), ResourceKind::ServiceNetwork);
        let get: ResourcePolicyInput =
            trellis_wire::de::from_value(json!({ "resourceArn": SN })).unwrap();
        assert_eq!(get.validate().unwrap_err().fields[0].name, "resourceArn");
    }

    #[test]
    fn resource_configurations_are_reported_as_unsupported() {
        let mut c = Checks::new();
        check_target(&mut c, &AUTH_IDENTIFIER, RCFG);
        let e = c.finish().unwrap_err();
        assert!(
            e.fields[0]
                .message
                .contains("does not support resource configurations"),
            "{}",
            e.message
        );
    }

    const GOOD: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke","Resource":"*"}]}"#;

    /// (policy, kind, how many `policy` field errors, a fragment every message set must contain)
    fn policy_cases() -> Vec<(Option<String>, PolicyKind, usize, &'static str)> {
        vec![
            (Some(GOOD.into()), PolicyKind::Auth, 0, ""),
            (None, PolicyKind::Auth, 1, "must not be null"),
            (Some(String::new()), PolicyKind::Auth, 1, "greater than or equal to 1"),
            (Some("{not json".into()), PolicyKind::Auth, 1, "JSON"),
            (
                Some(r#"{"Version":"2012-10-17","Statement":[{"Principal":"*","Action":"vpc-lattice-svcs:Invoke","Resource":"*"}]}"#.into()),
                PolicyKind::Auth,
                1,
                "Statement[0]",
            ),
            (
                Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#.into()),
                PolicyKind::Auth,
                1,
                "Statement[0].Action",
            ),
            // Within the model's 36,864 characters but over the 10 KB quota.
            (Some(format!("{GOOD}{}", " ".repeat(AUTH_POLICY_QUOTA_BYTES))), PolicyKind::Auth, 1, "10 KB"),
            (Some("x".repeat(36_865)), PolicyKind::Auth, 1, "less than or equal to 36864"),
            (Some("   ".into()), PolicyKind::Resource, 1, "\\S"),
            (Some("x".repeat(10_001)), PolicyKind::Resource, 1, "less than or equal to 10000"),
            // A pretty-printed policy (newlines) is accepted.
            (
                Some("{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": \"vpc-lattice-svcs:Invoke\", \"Resource\": \"*\"}]\n}".into()),
                PolicyKind::Auth,
                0,
                "",
            ),
        ]
    }

    #[test]
    fn policy_checks_table() {
        for (policy, kind, n, fragment) in policy_cases() {
            let mut c = Checks::new();
            check_policy(&mut c, policy.as_deref(), kind);
            let shown = policy
                .as_deref()
                .map(|p| p.chars().take(60).collect::<String>());
            match c.finish() {
                Ok(()) => assert_eq!(n, 0, "{shown:?} passed"),
                Err(e) => {
                    assert_eq!(e.fields.len(), n, "{shown:?}: {}", e.message);
                    assert!(
                        e.fields.iter().all(|f| f.name == "policy"),
                        "{shown:?}: {:?}",
                        e.fields
                    );
                    assert!(e.message.contains(fragment), "{shown:?}: {}", e.message);
                }
            }
        }
    }

    #[test]
    fn diagnostics_map_to_policy_fields_with_their_paths() {
        let cases: Vec<(Vec<Diagnostic>, Vec<&str>)> = vec![
            (
                vec![Diagnostic::new("", "policy is not valid JSON: x")],
                vec!["Invalid policy: policy is not valid JSON: x"],
            ),
            (
                vec![
                    Diagnostic::new("Statement[0].Effect", "is required"),
                    Diagnostic::new("Version", "bad"),
                ],
                vec![
                    "Invalid policy at Statement[0].Effect: is required",
                    "Invalid policy at Version: bad",
                ],
            ),
        ];
        for (diagnostics, want) in cases {
            let mut c = Checks::new();
            report_diagnostics(&mut c, &diagnostics);
            let e = c.finish().unwrap_err();
            assert!(e.fields.iter().all(|f| f.name == "policy"));
            assert_eq!(
                e.fields
                    .iter()
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>(),
                want
            );
        }
    }

    #[test]
    fn diagnostics_are_capped() {
        let many: Vec<Diagnostic> = (0..50)
            .map(|i| Diagnostic::new(format!("Statement[{i}]"), "bad"))
            .collect();
        let mut c = Checks::new();
        report_diagnostics(&mut c, &many);
        let e = c.finish().unwrap_err();
        assert_eq!(e.fields.len(), MAX_DIAGNOSTICS + 1);
        assert!(
            e.fields
                .last()
                .unwrap()
                .message
                .contains("30 more problems")
        );
    }

    #[test]
    fn state_follows_auth_type() {
        use serde_json::json;
        let rec = |body: Value| Record {
            kind: "service-network".into(),
            id: SN.into(),
            parent: None,
            name: None,
            arn: None,
            refs: vec![],
            body,
            seq: 1,
        };
        assert_eq!(auth_state(&rec(json!({ "authType": "AWS_IAM" }))), "Active");
        assert_eq!(auth_state(&rec(json!({ "authType": "NONE" }))), "Inactive");
        assert_eq!(auth_state(&rec(json!({}))), "Inactive");
    }
}
