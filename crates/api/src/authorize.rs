//! Identity-based authorization of every API call: the one place that decides whether a caller
//! may perform an operation.
//!
//! The SigV4 gate authenticates the caller and puts a [`CallerAuthorizer`] in the request; the
//! operation table asks it once the input is decoded, before the handler runs
//! ([`trellis_wire::Authorize`]). Root may do anything. An IAM user's inline policies are
//! evaluated with IAM's logic for each (action, resource) pair the call needs — an explicit deny
//! in any policy wins, then an allow in any, otherwise the implicit deny — so a user without a
//! policy can do nothing but `sts:GetCallerIdentity`, which AWS never denies.
//!
//! The action is `<prefix>:<Operation>` with the service's IAM prefix (`vpc-lattice`, `lambda`,
//! `tag` for the Tagging API, `iam`, `sts`, `logs`); Lambda's Invoke is `lambda:InvokeFunction`, as in
//! IAM. The resource is the ARN of what the input names ([`requests`]; docs/decisions.md lists
//! the rule per service), or `*` when it names nothing.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::Value;
use trellis_model::arn::Resolved;
use trellis_model::{Context, ResourceKind};
use trellis_policy::{Decision, Principal, RequestContext};
use trellis_wire::{Authorize, AwsError, OperationMeta};

use crate::identity::{Caller, IdentityIndex, group_arn, policy_arn, role_arn, user_arn};

/// The authorizer of one request: its caller and the identities of the moment it was
/// authenticated, and the store, for the tags of the resources a call names
/// (`aws:ResourceTag/…`, read only when one of the caller's policies mentions the key).
pub struct CallerAuthorizer {
    pub caller: Caller,
    /// The caller's account.
    pub ctx: Context,
    pub index: Arc<IdentityIndex>,
    pub store: Option<trellis_store::Store>,
}

impl Authorize for CallerAuthorizer {
    fn authorize<'a>(
        &'a self,
        meta: &'a OperationMeta,
        input: &'a Value,
    ) -> trellis_wire::AuthorizeFuture<'a> {
        Box::pin(self.decide(meta, input))
    }
}

impl CallerAuthorizer {
    async fn decide(&self, meta: &OperationMeta, input: &Value) -> Result<(), Box<AwsError>> {
        if matches!(self.caller, Caller::Root { .. }) {
            return Ok(());
        }
        let arn = self.caller.arn(&self.ctx);
        let mut keys = org_keys(&self.index);
        keys.extend(request_keys(meta, input, &self.ctx));
        let needs_resource_tags = policies(&self.caller)
            .iter()
            .any(|p| p.mentions("aws:ResourceTag/"));
        for (action, resource) in requests(meta, input, &self.caller, &self.ctx, &self.index) {
            let mut keys = keys.clone();
            if needs_resource_tags && let Some(store) = &self.store {
                keys.extend(
                    resource_tags(store, &resource)
                        .await
                        .map_err(|e| {
                            Box::new(AwsError::internal(
                                meta.service.errors.internal_code,
                                e.to_string(),
                            ))
                        })?
                        .into_iter()
                        .map(|(k, v)| (format!("aws:ResourceTag/{k}"), v)),
                );
            }
            match identity_decision(&self.caller, &self.ctx, &action, &resource, &keys) {
                Verdict::ExplicitDeny => {
                    return Err(denied(
                        meta,
                        format!(
                            "User: {arn} is not authorized to perform: {action} on resource: \
                             {resource} with an explicit deny in an identity-based policy"
                        ),
                    ));
                }
                Verdict::Allow => {}
                Verdict::ImplicitDeny => {
                    return Err(denied(
                        meta,
                        format!(
                            "User: {arn} is not authorized to perform: {action} on resource: \
                             {resource} because no identity-based policy allows the {action} action"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A caller's effective identity policies (none for root, whom none restricts).
fn policies(caller: &Caller) -> &[trellis_policy::Policy] {
    match caller {
        Caller::Root { .. } => &[],
        Caller::User { user, .. } => &user.policies,
        Caller::Role { role, .. } => &role.policies,
    }
}

/// The tags of the stored resource with ARN `arn` (a Lattice resource's `tags` map, an IAM
/// user's or role's `tags` list of `{Key, Value}`); none for anything not stored or untagged.
pub async fn resource_tags(
    store: &trellis_store::Store,
    arn: &str,
) -> Result<Vec<(String, String)>, trellis_store::StoreError> {
    if !arn.starts_with("arn:") {
        return Ok(Vec::new());
    }
    let mut tx = store.read().await?;
    let Some(rec) = tx.get_by_arn(arn).await? else {
        return Ok(Vec::new());
    };
    Ok(
        match rec.body.get("tags").or_else(|| rec.body.get("Tags")) {
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|t| {
                    let k = t.get("Key").or_else(|| t.get("key"))?.as_str()?;
                    let v = t.get("Value").or_else(|| t.get("value"))?.as_str()?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect(),
            _ => Vec::new(),
        },
    )
}

/// `aws:PrincipalOrgID` and `aws:PrincipalOrgPaths` of every principal of the account, once it
/// created its organization (it is then the organization's management account, directly under
/// the root); none before.
pub fn org_keys(index: &IdentityIndex) -> Vec<(String, String)> {
    index
        .organization()
        .map(|org| {
            vec![
                ("aws:PrincipalOrgID".to_string(), org.id.clone()),
                ("aws:PrincipalOrgPaths".to_string(), org.account_path()),
            ]
        })
        .unwrap_or_default()
}

/// The condition keys a call's input sets (reference §7.4): `vpc-lattice:AuthType`,
/// `vpc-lattice:TargetGroupArns` (every target group a listener's or rule's forward action
/// names, as ARNs), `vpc-lattice:Protocol`, `vpc-lattice:ServiceArn`,
/// `vpc-lattice:ServiceNetworkArn`, `vpc-lattice:VpcId`, `vpc-lattice:SecurityGroupIds`, and for
/// every service `aws:RequestTag/<key>` and `aws:TagKeys` from the tags a call sets (a map
/// `tags`/`Tags` or IAM's list of `{Key, Value}`) or removes (`tagKeys`/`TagKeys`); `iam:PolicyARN`
/// for IAM's Attach*Policy and Detach*Policy.
pub fn request_keys(meta: &OperationMeta, input: &Value, ctx: &Context) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let s = |member: &str| input.get(member).and_then(Value::as_str);
    if meta.service.signing_name == "vpc-lattice" {
        let lattice = |k: &str| format!("vpc-lattice:{k}");
        if let Some(auth) = s("authType") {
            keys.push((lattice("AuthType"), auth.to_string()));
        }
        if let Some(protocol) =
            s("protocol").or_else(|| input.pointer("/config/protocol").and_then(Value::as_str))
        {
            keys.push((lattice("Protocol"), protocol.to_string()));
        }
        let arn = |kind: ResourceKind, v: &str| match ctx.resolve(kind, v) {
            Resolved::Id(id) => ctx.top_level_arn(kind, &id),
            _ => v.to_string(),
        };
        if meta.name.contains("Association") || meta.name.contains("AccessLog") {
            if let Some(sn) = s("serviceNetworkIdentifier") {
                keys.push((
                    lattice("ServiceNetworkArn"),
                    arn(ResourceKind::ServiceNetwork, sn),
                ));
            }
            if let Some(svc) = s("serviceIdentifier") {
                keys.push((lattice("ServiceArn"), arn(ResourceKind::Service, svc)));
            }
        }
        if let Some(vpc) = s("vpcIdentifier").or_else(|| {
            input
                .pointer("/config/vpcIdentifier")
                .and_then(Value::as_str)
        }) {
            keys.push((lattice("VpcId"), vpc.to_string()));
        }
        for sg in strings(input.get("securityGroupIds")) {
            keys.push((lattice("SecurityGroupIds"), sg));
        }
        let mut actions: Vec<&Value> = ["defaultAction", "action"]
            .iter()
            .filter_map(|m| input.get(*m))
            .collect();
        if let Some(Value::Array(rules)) = input.get("rules") {
            actions.extend(rules.iter().filter_map(|r| r.get("action")));
        }
        for action in actions {
            if let Some(Value::Array(groups)) = action.pointer("/forward/targetGroups") {
                for g in groups {
                    if let Some(id) = g.get("targetGroupIdentifier").and_then(Value::as_str) {
                        keys.push((
                            lattice("TargetGroupArns"),
                            arn(ResourceKind::TargetGroup, id),
                        ));
                    }
                }
            }
        }
    }
    // The managed policy an attachment names, as IAM sets it for Attach*/Detach*Policy: lets an
    // administrator delegate attaching some policies only.
    if meta.service.signing_name == "iam"
        && (meta.name.starts_with("Attach") || meta.name.starts_with("Detach"))
        && let Some(arn) = s("PolicyArn")
    {
        keys.push(("iam:PolicyARN".into(), arn.to_string()));
    }
    let mut tag = |k: &str, v: Option<&str>| {
        keys.push(("aws:TagKeys".into(), k.to_string()));
        if let Some(v) = v {
            keys.push((format!("aws:RequestTag/{k}"), v.to_string()));
        }
    };
    for member in ["tags", "Tags"] {
        match input.get(member) {
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    tag(k, v.as_str());
                }
            }
            Some(Value::Array(items)) => {
                for t in items {
                    if let Some(k) = t.get("Key").and_then(Value::as_str) {
                        tag(k, t.get("Value").and_then(Value::as_str));
                    }
                }
            }
            _ => {}
        }
    }
    for member in ["tagKeys", "TagKeys"] {
        for k in strings(input.get(member)) {
            tag(&k, None);
        }
    }
    keys
}

/// What a caller's identity policies say about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    ImplicitDeny,
    ExplicitDeny,
}

/// The caller's tags as (key, value): a user's tags, or a role session's role tags overridden by
/// its session tags (tag keys compared regardless of case, as IAM does). The data plane sends
/// them in `x-amzn-lattice-identity-tags`; [`principal_tags`] makes them condition keys.
pub fn caller_tags(caller: &Caller) -> Vec<(String, String)> {
    let own: Vec<&crate::identity::Tag> = match caller {
        Caller::Root { .. } => return Vec::new(),
        Caller::User { user, .. } => user.tags.iter().collect(),
        Caller::Role { role, session } => role.tags.iter().chain(&session.tags).collect(),
    };
    let mut tags: Vec<(String, String)> = Vec::new();
    for t in own {
        tags.retain(|(k, _)| !k.eq_ignore_ascii_case(&t.key));
        tags.push((t.key.clone(), t.value.clone()));
    }
    tags
}

/// The caller's `aws:PrincipalTag/…` keys ([`caller_tags`]).
pub fn principal_tags(caller: &Caller) -> Vec<(String, String)> {
    caller_tags(caller)
        .into_iter()
        .map(|(k, v)| (format!("aws:PrincipalTag/{k}"), v))
        .collect()
}

/// Evaluates the caller's identity policies — a user's effective policies (inline, its groups',
/// attached managed ones), or a role session's role's (nothing of whoever assumed it) — for one
/// (action, resource) with IAM's
/// logic: an explicit deny in any wins, then an allow in any. Root is always allowed. `keys` are
/// the request's condition keys beside the caller's principal tags.
pub fn identity_decision(
    caller: &Caller,
    ctx: &Context,
    action: &str,
    resource: &str,
    keys: &[(String, String)],
) -> Verdict {
    if matches!(caller, Caller::Root { .. }) {
        return Verdict::Allow;
    }
    let mut request = RequestContext::new(Principal::iam(caller.arn(ctx)), action, resource);
    for (k, v) in principal_tags(caller)
        .into_iter()
        .chain(keys.iter().cloned())
    {
        request = request.with_key(k, v);
    }
    evaluate(caller, &request)
}

/// The caller's identity policies on a request whose context the caller built (the data
/// plane's, with its own condition keys and principal tags): an explicit deny in any wins, then
/// an allow in any. Root is always allowed.
pub fn evaluate(caller: &Caller, request: &RequestContext<'_>) -> Verdict {
    if matches!(caller, Caller::Root { .. }) {
        return Verdict::Allow;
    }
    let mut verdict = Verdict::ImplicitDeny;
    for policy in policies(caller) {
        match policy.evaluate(request) {
            Decision::ExplicitDeny(_) => return Verdict::ExplicitDeny,
            Decision::Allow(_) => verdict = Verdict::Allow,
            Decision::ImplicitDeny => {}
        }
    }
    verdict
}

/// The denial in the service's vocabulary: `AccessDenied` for the query services (IAM, STS),
/// `AccessDeniedException` for the others (with Lambda's and Tagging's `Message` spelling).
fn denied(meta: &OperationMeta, message: String) -> Box<AwsError> {
    if meta.service.signing_name == "ec2" {
        return Box::new(AwsError::new(
            "UnauthorizedOperation",
            StatusCode::FORBIDDEN,
            format!("You are not authorized to perform this operation. {message}"),
        ));
    }
    if meta.service.protocol.is_query() {
        return Box::new(AwsError::new(
            "AccessDenied",
            StatusCode::FORBIDDEN,
            message,
        ));
    }
    let e = AwsError::new("AccessDeniedException", StatusCode::FORBIDDEN, message);
    Box::new(match meta.service.signing_name {
        "vpc-lattice" => e,
        _ => e.with_message_member("Message"),
    })
}

/// The IAM action prefix of a service (its signing name, but `tag` for the Tagging API).
pub fn action_prefix(signing_name: &str) -> &str {
    match signing_name {
        "tagging" => "tag",
        other => other,
    }
}

/// The IAM action of an operation.
pub fn action(meta: &OperationMeta) -> String {
    let prefix = action_prefix(meta.service.signing_name);
    let name = match (prefix, meta.name) {
        ("lambda", "Invoke") => "InvokeFunction",
        (_, name) => name,
    };
    format!("{prefix}:{name}")
}

/// Every (action, resource) pair a call needs allowed. Empty for STS GetCallerIdentity,
/// GetSessionToken and AssumeRole.
pub fn requests(
    meta: &OperationMeta,
    input: &Value,
    caller: &Caller,
    ctx: &Context,
    index: &IdentityIndex,
) -> Vec<(String, String)> {
    let action = action(meta);
    let s = |member: &str| input.get(member).and_then(Value::as_str);
    let resources: Vec<String> = match meta.service.signing_name {
        // AWS never denies GetCallerIdentity, and needs no permission for GetSessionToken;
        // AssumeRole is decided by STS itself, trust policy and identity policy together
        // (crate::sts::may_assume).
        "sts"
            if matches!(
                meta.name,
                "GetCallerIdentity" | "GetSessionToken" | "AssumeRole"
            ) =>
        {
            return Vec::new();
        }
        "vpc-lattice" => lattice_resources(input, ctx),
        "lambda" => {
            let mut out = Vec::new();
            if let Some(f) = s("FunctionName") {
                out.push(function_arn(ctx, f, s("Qualifier")));
            }
            if let Some(r) = s("Resource") {
                out.push(r.to_string());
            }
            out
        }
        "tagging" if matches!(meta.name, "TagResources" | "UntagResources") => {
            // Tagging a resource through this API also needs its own service's permission, as
            // in AWS: `tag:TagResources` alone must not let a user tag what Lattice would not.
            let lattice_action = if meta.name == "TagResources" {
                "vpc-lattice:TagResource"
            } else {
                "vpc-lattice:UntagResource"
            };
            let arns = strings(input.get("ResourceARNList"));
            let mut out = Vec::new();
            for arn in &arns {
                out.push((action.clone(), arn.clone()));
                out.push((lattice_action.to_string(), arn.clone()));
            }
            if out.is_empty() {
                out.push((action, "*".to_string()));
            }
            return out;
        }
        "iam" => vec![iam_resource(meta.name, input, caller, ctx, index)],
        "logs" => logs_resources(input, ctx),
        _ => Vec::new(),
    };
    if resources.is_empty() {
        return vec![(action, "*".to_string())];
    }
    resources.into_iter().map(|r| (action.clone(), r)).collect()
}

/// CloudWatch Logs: the log group the input names (`logGroupName`, or `logGroupIdentifier` as a
/// name or ARN) as `arn:…:log-group:NAME:*`, as IAM names log groups; none (so `*`) for calls
/// that name no group (DescribeLogGroups).
fn logs_resources(input: &Value, ctx: &Context) -> Vec<String> {
    let s = |member: &str| input.get(member).and_then(Value::as_str);
    let Some(group) = s("logGroupName").or(s("logGroupIdentifier")) else {
        return Vec::new();
    };
    if group.starts_with("arn:") {
        return vec![if group.ends_with(":*") {
            group.to_string()
        } else {
            format!("{group}:*")
        }];
    }
    vec![format!(
        "arn:{}:logs:{}:{}:log-group:{group}:*",
        ctx.partition, ctx.region, ctx.account_id
    )]
}

/// A string or a list of strings (a query or JSON list member).
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The Lattice resources an input names: the rule or listener its path names (under the
/// service the path names), else every top-level identifier or ARN member it carries. An
/// identifier that resolves to one of this account's resources (a bare ID or a local ARN)
/// becomes that resource's canonical ARN — for a listener or rule always under the service
/// `serviceIdentifier` names, since that is where the handler looks it up, whatever service a
/// listener ARN spells; anything else (a foreign or malformed identifier, which the handler
/// refuses) is used verbatim, and only a policy matching that string (`*`) allows it.
fn lattice_resources(input: &Value, ctx: &Context) -> Vec<String> {
    let s = |member: &str| input.get(member).and_then(Value::as_str);
    let id_of = |kind: ResourceKind, v: &str| match ctx.resolve(kind, v) {
        Resolved::Id(id) => Some(id),
        Resolved::Foreign(_) | Resolved::Malformed => None,
    };
    if let (Some(svc), Some(listener)) = (s("serviceIdentifier"), s("listenerIdentifier")) {
        let (Some(svc_id), Some(listener_id)) = (
            id_of(ResourceKind::Service, svc),
            id_of(ResourceKind::Listener, listener),
        ) else {
            return vec![s("ruleIdentifier").unwrap_or(listener).to_string()];
        };
        return match s("ruleIdentifier") {
            Some(rule) => match id_of(ResourceKind::Rule, rule) {
                Some(rule_id) => vec![ctx.rule_arn(&svc_id, &listener_id, &rule_id)],
                None => vec![rule.to_string()],
            },
            None => vec![ctx.listener_arn(&svc_id, &listener_id)],
        };
    }
    const TOP_LEVEL: [(&str, ResourceKind); 6] = [
        ("serviceNetworkIdentifier", ResourceKind::ServiceNetwork),
        ("serviceIdentifier", ResourceKind::Service),
        ("targetGroupIdentifier", ResourceKind::TargetGroup),
        (
            "accessLogSubscriptionIdentifier",
            ResourceKind::AccessLogSubscription,
        ),
        (
            "serviceNetworkServiceAssociationIdentifier",
            ResourceKind::ServiceNetworkServiceAssociation,
        ),
        (
            "serviceNetworkVpcAssociationIdentifier",
            ResourceKind::ServiceNetworkVpcAssociation,
        ),
    ];
    let arn_of = |kinds: &[ResourceKind], v: &str| {
        kinds
            .iter()
            .find_map(|k| id_of(*k, v).map(|id| ctx.top_level_arn(*k, &id)))
            .unwrap_or_else(|| v.to_string())
    };
    let mut out = Vec::new();
    for (member, kind) in TOP_LEVEL {
        if let Some(v) = s(member) {
            out.push(arn_of(&[kind], v));
        }
    }
    // An auth policy's or access-log subscription's target: a service network or a service.
    if let Some(v) = s("resourceIdentifier") {
        out.push(arn_of(
            &[ResourceKind::ServiceNetwork, ResourceKind::Service],
            v,
        ));
    }
    // Tags and resource policies look the ARN up exactly as given.
    if let Some(v) = s("resourceArn") {
        out.push(v.to_string());
    }
    out
}

/// A Lambda function's ARN from a `FunctionName` (a name, `name:qualifier`, a partial ARN
/// `[REGION:]ACCOUNT:function:name[:qualifier]` or a full ARN, read as the Lambda API reads
/// them) and a separate `Qualifier`: the qualified ARN when either names a version or alias.
fn function_arn(ctx: &Context, name: &str, qualifier: Option<&str>) -> String {
    let qualify = |arn: String, has_qualifier: bool| match qualifier {
        Some(q) if !has_qualifier => format!("{arn}:{q}"),
        _ => arn,
    };
    if name.starts_with("arn:") {
        return qualify(name.to_string(), name.split(':').count() > 7);
    }
    let is_account = |t: &str| t.len() == 12 && t.bytes().all(|b| b.is_ascii_digit());
    let tokens: Vec<&str> = name.split(':').collect();
    let mut rest = &tokens[..];
    let mut region = ctx.region.as_str();
    let mut account = ctx.account_id.as_str();
    if rest.len() >= 3 && !is_account(rest[0]) && is_account(rest[1]) && rest[0].contains('-') {
        region = rest[0];
        rest = &rest[1..];
    }
    if rest.len() >= 3 && is_account(rest[0]) && rest[1] == "function" {
        account = rest[0];
        rest = &rest[1..];
    }
    if rest.len() >= 2 && rest[0] == "function" {
        rest = &rest[1..];
    }
    let arn = format!(
        "arn:{}:lambda:{region}:{account}:function:{}",
        ctx.partition,
        rest.join(":")
    );
    qualify(arn, rest.len() > 1)
}

/// The IAM resource an IAM operation is about: the role, group or user it names, in that order
/// (with its path when it exists; the `/` path otherwise) — so attaching a policy to a user is
/// about the user, adding a user to a group about the group; the policy a managed-policy
/// operation names (CreatePolicy's `Path` + `PolicyName`, otherwise `PolicyArn`); the caller
/// when it names nothing, the owner of the key GetAccessKeyLastUsed names; `*` for the lists of
/// a kind.
fn iam_resource(
    operation: &str,
    input: &Value,
    caller: &Caller,
    ctx: &Context,
    index: &IdentityIndex,
) -> String {
    let s = |member: &str| input.get(member).and_then(Value::as_str);
    match operation {
        "ListUsers" | "ListRoles" | "ListGroups" | "ListPolicies" => "*".to_string(),
        "CreatePolicy" => policy_arn(ctx, s("Path").unwrap_or("/"), s("PolicyName").unwrap_or("")),
        "CreateRole" => role_arn(ctx, s("Path").unwrap_or("/"), s("RoleName").unwrap_or("")),
        _ if s("RoleName").is_some() => {
            let name = s("RoleName").unwrap_or_default();
            index
                .role(&ctx.account_id, name)
                .map(|r| r.arn.clone())
                .unwrap_or_else(|| role_arn(ctx, "/", name))
        }
        "CreateGroup" => group_arn(ctx, s("Path").unwrap_or("/"), s("GroupName").unwrap_or("")),
        _ if s("GroupName").is_some() => {
            let name = s("GroupName").unwrap_or_default();
            index
                .group(&ctx.account_id, name)
                .map(|g| g.arn.clone())
                .unwrap_or_else(|| group_arn(ctx, "/", name))
        }
        "CreateUser" => user_arn(ctx, s("Path").unwrap_or("/"), s("UserName").unwrap_or("")),
        _ if s("UserName").is_none() && s("PolicyArn").is_some() => {
            s("PolicyArn").unwrap_or_default().to_string()
        }
        "GetAccessKeyLastUsed" => s("AccessKeyId")
            .and_then(|k| index.key_owner(k))
            .map(|u| u.arn.clone())
            .unwrap_or_else(|| "*".to_string()),
        _ => match s("UserName") {
            Some(name) => index
                .user(&ctx.account_id, name)
                .map(|u| u.arn.clone())
                .unwrap_or_else(|| user_arn(ctx, "/", name)),
            None => caller.arn(ctx),
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testutil::ctx;

    fn meta(service: &'static trellis_wire::Service, name: &'static str) -> OperationMeta {
        OperationMeta {
            service,
            name,
            http: None,
            body_cap: None,
            too_large: None,
            errors: &[],
            errors_declared: true,
        }
    }

    const ACCT: &str = "111122223333";

    /// (service, operation, input, the (action, resource) pairs it needs).
    type ResourceCase = (
        &'static trellis_wire::Service,
        &'static str,
        Value,
        Vec<(String, String)>,
    );
    /// (service, operation, input, Ok or the (code, message) of the refusal).
    type DecisionCase = (
        &'static trellis_wire::Service,
        &'static str,
        Value,
        Result<(), (&'static str, String)>,
    );

    #[test]
    fn resources_per_operation() {
        let ctx = ctx();
        let index = IdentityIndex::build(
            1,
            vec![crate::identity::StoredUser {
                user_name: "Bob".into(),
                user_id: "AIDABOB".into(),
                path: "/team/".into(),
                arn: format!("arn:aws:iam::{ACCT}:user/team/Bob"),
                create_date_ms: 0,
                tags: Vec::new(),
            }],
            vec![],
            vec![],
        );
        let lattice = &crate::operations::LATTICE;
        let lambda = &trellis_functions::LAMBDA;
        let tagging = &crate::tagging::TAGGING;
        let iam = &crate::iam::IAM;
        let sts = &crate::sts::STS;
        let svc = "svc-0123456789abcdef0";
        let l = "listener-0123456789abcdef0";
        let lattice_arn = |r: &str| format!("arn:aws:vpc-lattice:us-west-2:{ACCT}:{r}");
        #[rustfmt::skip]
        let cases: Vec<ResourceCase> = vec![
            (lattice, "ListServices", json!({}), vec![("vpc-lattice:ListServices".into(), "*".into())]),
            (lattice, "GetService", json!({"serviceIdentifier": svc}), vec![("vpc-lattice:GetService".into(), lattice_arn(&format!("service/{svc}")))]),
            (lattice, "GetService", json!({"serviceIdentifier": "arn:aws:vpc-lattice:us-west-2:444455556666:service/svc-1"}), vec![("vpc-lattice:GetService".into(), "arn:aws:vpc-lattice:us-west-2:444455556666:service/svc-1".into())]),
            (lattice, "GetListener", json!({"serviceIdentifier": svc, "listenerIdentifier": l}), vec![("vpc-lattice:GetListener".into(), lattice_arn(&format!("service/{svc}/listener/{l}")))]),
            (lattice, "GetRule", json!({"serviceIdentifier": lattice_arn(&format!("service/{svc}")), "listenerIdentifier": l, "ruleIdentifier": "rule-0123456789abcdef0"}), vec![("vpc-lattice:GetRule".into(), lattice_arn(&format!("service/{svc}/listener/{l}/rule/rule-0123456789abcdef0")))]),
            (lattice, "CreateServiceNetworkServiceAssociation", json!({"serviceNetworkIdentifier": "sn-0123456789abcdef0", "serviceIdentifier": svc}), vec![
                ("vpc-lattice:CreateServiceNetworkServiceAssociation".into(), lattice_arn("servicenetwork/sn-0123456789abcdef0")),
                ("vpc-lattice:CreateServiceNetworkServiceAssociation".into(), lattice_arn(&format!("service/{svc}"))),
            ]),
            (lattice, "PutAuthPolicy", json!({"resourceIdentifier": "sn-0123456789abcdef0"}), vec![("vpc-lattice:PutAuthPolicy".into(), lattice_arn("servicenetwork/sn-0123456789abcdef0"))]),
            (lattice, "GetService", json!({"serviceIdentifier": "bogus"}), vec![("vpc-lattice:GetService".into(), "bogus".into())]),
            // A listener ARN naming another service is the listener under the path's service:
            // that is the one the handler acts on.
            (lattice, "DeleteListener", json!({"serviceIdentifier": svc, "listenerIdentifier": lattice_arn(&format!("service/svc-0000000000000000b/listener/{l}"))}), vec![("vpc-lattice:DeleteListener".into(), lattice_arn(&format!("service/{svc}/listener/{l}")))]),
            (lattice, "GetRule", json!({"serviceIdentifier": svc, "listenerIdentifier": l, "ruleIdentifier": lattice_arn(&format!("service/svc-0000000000000000b/listener/{l}/rule/rule-0123456789abcdef0"))}), vec![("vpc-lattice:GetRule".into(), lattice_arn(&format!("service/{svc}/listener/{l}/rule/rule-0123456789abcdef0")))]),
            (lattice, "GetService", json!({"serviceIdentifier": lattice_arn(&format!("service/{svc}"))}), vec![("vpc-lattice:GetService".into(), lattice_arn(&format!("service/{svc}")))]),
            (lambda, "GetFunction", json!({"FunctionName": "f"}), vec![("lambda:GetFunction".into(), format!("arn:aws:lambda:us-west-2:{ACCT}:function:f"))]),
            (lambda, "GetFunction", json!({"FunctionName": format!("{ACCT}:function:f")}), vec![("lambda:GetFunction".into(), format!("arn:aws:lambda:us-west-2:{ACCT}:function:f"))]),
            (lambda, "Invoke", json!({"FunctionName": "f:live"}), vec![("lambda:InvokeFunction".into(), format!("arn:aws:lambda:us-west-2:{ACCT}:function:f:live"))]),
            (lambda, "Invoke", json!({"FunctionName": "f", "Qualifier": "7"}), vec![("lambda:InvokeFunction".into(), format!("arn:aws:lambda:us-west-2:{ACCT}:function:f:7"))]),
            (lambda, "GetFunction", json!({"FunctionName": format!("eu-west-1:{ACCT}:function:f")}), vec![("lambda:GetFunction".into(), format!("arn:aws:lambda:eu-west-1:{ACCT}:function:f"))]),
            (lambda, "GetFunction", json!({"FunctionName": "function:f"}), vec![("lambda:GetFunction".into(), format!("arn:aws:lambda:us-west-2:{ACCT}:function:f"))]),
            (lambda, "GetFunction", json!({"FunctionName": format!("arn:aws:lambda:us-west-2:{ACCT}:function:f"), "Qualifier": "live"}), vec![("lambda:GetFunction".into(), format!("arn:aws:lambda:us-west-2:{ACCT}:function:f:live"))]),
            (tagging, "GetResources", json!({}), vec![("tag:GetResources".into(), "*".into())]),
            (tagging, "TagResources", json!({"ResourceARNList": ["arn:x"]}), vec![("tag:TagResources".into(), "arn:x".into()), ("vpc-lattice:TagResource".into(), "arn:x".into())]),
            (iam, "ListUsers", json!({}), vec![("iam:ListUsers".into(), "*".into())]),
            (iam, "CreateUser", json!({"UserName": "carol", "Path": "/ops/"}), vec![("iam:CreateUser".into(), format!("arn:aws:iam::{ACCT}:user/ops/carol"))]),
            (iam, "GetUser", json!({"UserName": "bob"}), vec![("iam:GetUser".into(), format!("arn:aws:iam::{ACCT}:user/team/Bob"))]),
            (iam, "GetUser", json!({"UserName": "nobody"}), vec![("iam:GetUser".into(), format!("arn:aws:iam::{ACCT}:user/nobody"))]),
            (iam, "ListAccessKeys", json!({}), vec![("iam:ListAccessKeys".into(), format!("arn:aws:iam::{ACCT}:root"))]),
            (iam, "GetAccessKeyLastUsed", json!({"AccessKeyId": "AKIAUNKNOWN"}), vec![("iam:GetAccessKeyLastUsed".into(), "*".into())]),
            (iam, "ListGroups", json!({}), vec![("iam:ListGroups".into(), "*".into())]),
            (iam, "CreateGroup", json!({"GroupName": "devs", "Path": "/eng/"}), vec![("iam:CreateGroup".into(), format!("arn:aws:iam::{ACCT}:group/eng/devs"))]),
            (iam, "AddUserToGroup", json!({"GroupName": "devs", "UserName": "bob"}), vec![("iam:AddUserToGroup".into(), format!("arn:aws:iam::{ACCT}:group/devs"))]),
            (iam, "ListGroupsForUser", json!({"UserName": "bob"}), vec![("iam:ListGroupsForUser".into(), format!("arn:aws:iam::{ACCT}:user/team/Bob"))]),
            (iam, "CreatePolicy", json!({"PolicyName": "p", "Path": "/x/"}), vec![("iam:CreatePolicy".into(), format!("arn:aws:iam::{ACCT}:policy/x/p"))]),
            (iam, "GetPolicy", json!({"PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}), vec![("iam:GetPolicy".into(), "arn:aws:iam::aws:policy/ReadOnlyAccess".into())]),
            (iam, "AttachUserPolicy", json!({"UserName": "bob", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}), vec![("iam:AttachUserPolicy".into(), format!("arn:aws:iam::{ACCT}:user/team/Bob"))]),
            (iam, "AttachRolePolicy", json!({"RoleName": "app", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}), vec![("iam:AttachRolePolicy".into(), format!("arn:aws:iam::{ACCT}:role/app"))]),
            (iam, "ListPolicies", json!({}), vec![("iam:ListPolicies".into(), "*".into())]),
            (sts, "GetCallerIdentity", json!({}), vec![]),
        ];
        for (service, name, input, want) in cases {
            let got = requests(
                &meta(service, name),
                &input,
                &Caller::Root {
                    account: "111122223333".into(),
                },
                &ctx,
                &index,
            );
            assert_eq!(got, want, "{name} {input}");
        }
    }

    type KeysCase = (
        &'static trellis_wire::Service,
        &'static str,
        Value,
        Vec<(String, String)>,
    );

    #[test]
    fn a_users_tags_are_its_principal_tags() {
        let tag = |k: &str, v: &str| crate::identity::Tag {
            key: k.into(),
            value: v.into(),
        };
        let policy = trellis_policy::parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"vpc-lattice:ListServices","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"red"}}}}"#,
            trellis_policy::PolicyKind::Identity,
        )
        .unwrap();
        let caller = |tags: Vec<crate::identity::Tag>| Caller::User {
            user: Arc::new(crate::identity::User {
                account: "111122223333".into(),
                id: "AIDAT".into(),
                name: "t".into(),
                path: "/".into(),
                arn: format!("arn:aws:iam::{ACCT}:user/t"),
                policies: vec![policy.clone()],
                tags,
            }),
            access_key_id: "AKIAT".into(),
        };
        let red = caller(vec![tag("Team", "red")]);
        assert_eq!(
            principal_tags(&red),
            vec![("aws:PrincipalTag/Team".to_string(), "red".to_string())]
        );
        let ctx = ctx();
        // (tags, verdict): tag keys match regardless of case, as in IAM.
        let cases = [
            (vec![tag("Team", "red")], Verdict::Allow),
            (vec![tag("team", "blue")], Verdict::ImplicitDeny),
            (vec![], Verdict::ImplicitDeny),
        ];
        for (tags, want) in cases {
            let got = identity_decision(
                &caller(tags.clone()),
                &ctx,
                "vpc-lattice:ListServices",
                "*",
                &[],
            );
            assert_eq!(got, want, "{tags:?}");
        }
        assert!(
            principal_tags(&Caller::Root {
                account: "111122223333".into(),
            })
            .is_empty()
        );
    }

    #[test]
    fn request_keys_come_from_the_input() {
        let ctx = ctx();
        let lattice = &crate::operations::LATTICE;
        let tg = |id: &str| format!("arn:aws:vpc-lattice:us-west-2:{ACCT}:targetgroup/{id}");
        let forward = |ids: &[&str]| json!({"forward": {"targetGroups": ids.iter().map(|i| json!({"targetGroupIdentifier": i})).collect::<Vec<_>>()}});
        let k = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        #[rustfmt::skip]
        let cases: Vec<KeysCase> = vec![
            (lattice, "CreateService", json!({"name": "s", "authType": "AWS_IAM", "tags": {"team": "rates"}}),
                k(&[("vpc-lattice:AuthType", "AWS_IAM"), ("aws:TagKeys", "team"), ("aws:RequestTag/team", "rates")])),
            (lattice, "CreateListener", json!({"serviceIdentifier": "svc-0123456789abcdef0", "protocol": "HTTPS",
                "defaultAction": forward(&["tg-0123456789abcdef0", &tg("tg-0123456789abcdef1")])}),
                k(&[("vpc-lattice:Protocol", "HTTPS"), ("vpc-lattice:TargetGroupArns", &tg("tg-0123456789abcdef0")),
                    ("vpc-lattice:TargetGroupArns", &tg("tg-0123456789abcdef1"))])),
            (lattice, "UpdateRule", json!({"action": forward(&["tg-0123456789abcdef2"])}),
                k(&[("vpc-lattice:TargetGroupArns", &tg("tg-0123456789abcdef2"))])),
            (lattice, "CreateTargetGroup", json!({"name": "t", "config": {"protocol": "HTTP", "vpcIdentifier": "vpc-1"}}),
                k(&[("vpc-lattice:Protocol", "HTTP"), ("vpc-lattice:VpcId", "vpc-1")])),
            (lattice, "CreateServiceNetworkServiceAssociation", json!({"serviceNetworkIdentifier": "sn-0123456789abcdef0", "serviceIdentifier": "svc-0123456789abcdef0"}),
                k(&[("vpc-lattice:ServiceNetworkArn", &format!("arn:aws:vpc-lattice:us-west-2:{ACCT}:servicenetwork/sn-0123456789abcdef0")),
                    ("vpc-lattice:ServiceArn", &format!("arn:aws:vpc-lattice:us-west-2:{ACCT}:service/svc-0123456789abcdef0"))])),
            (lattice, "CreateServiceNetworkVpcAssociation", json!({"vpcIdentifier": "vpc-2", "securityGroupIds": ["sg-1", "sg-2"]}),
                k(&[("vpc-lattice:VpcId", "vpc-2"), ("vpc-lattice:SecurityGroupIds", "sg-1"), ("vpc-lattice:SecurityGroupIds", "sg-2")])),
            (lattice, "UntagResource", json!({"tagKeys": ["a", "b"]}), k(&[("aws:TagKeys", "a"), ("aws:TagKeys", "b")])),
            (&crate::iam::IAM, "CreateRole", json!({"Tags": [{"Key": "env", "Value": "prod"}]}),
                k(&[("aws:TagKeys", "env"), ("aws:RequestTag/env", "prod")])),
            (lattice, "GetService", json!({"serviceIdentifier": "svc-0123456789abcdef0"}), vec![]),
            (&crate::iam::IAM, "AttachUserPolicy", json!({"UserName": "u", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
                k(&[("iam:PolicyARN", "arn:aws:iam::aws:policy/ReadOnlyAccess")])),
            (&crate::iam::IAM, "DetachRolePolicy", json!({"RoleName": "r", "PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}),
                k(&[("iam:PolicyARN", "arn:aws:iam::aws:policy/ReadOnlyAccess")])),
            (&crate::iam::IAM, "GetPolicy", json!({"PolicyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}), vec![]),
        ];
        for (service, name, input, want) in cases {
            assert_eq!(
                request_keys(&meta(service, name), &input, &ctx),
                want,
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn decisions_and_messages() {
        let ctx = ctx();
        let policy =
            |doc: &str| trellis_policy::parse(doc, trellis_policy::PolicyKind::Identity).unwrap();
        let user = Arc::new(crate::identity::User {
            account: "111122223333".into(),
            id: "AIDAALICE".into(),
            name: "alice".into(),
            path: "/".into(),
            arn: format!("arn:aws:iam::{ACCT}:user/alice"),
            policies: vec![
                policy(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["vpc-lattice:Get*","vpc-lattice:List*"],"Resource":"*"}]}"#,
                ),
                policy(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"vpc-lattice:GetService","Resource":"arn:aws:vpc-lattice:*:*:service/svc-0000000000000000d"}]}"#,
                ),
            ],
            tags: Vec::new(),
        });
        let auth = CallerAuthorizer {
            caller: Caller::User {
                user,
                access_key_id: "AKIAALICE".into(),
            },
            ctx: ctx.clone(),
            index: Arc::new(IdentityIndex::default()),
            store: None,
        };
        let lattice = &crate::operations::LATTICE;
        #[rustfmt::skip]
        let cases: Vec<DecisionCase> = vec![
            (lattice, "ListServices", json!({}), Ok(())),
            (lattice, "GetService", json!({"serviceIdentifier": "svc-0000000000000000a"}), Ok(())),
            (lattice, "CreateService", json!({"name": "x"}), Err(("AccessDeniedException", format!(
                "User: arn:aws:iam::{ACCT}:user/alice is not authorized to perform: vpc-lattice:CreateService on resource: * because no identity-based policy allows the vpc-lattice:CreateService action")))),
            (lattice, "GetService", json!({"serviceIdentifier": "svc-0000000000000000d"}), Err(("AccessDeniedException", format!(
                "User: arn:aws:iam::{ACCT}:user/alice is not authorized to perform: vpc-lattice:GetService on resource: arn:aws:vpc-lattice:us-west-2:{ACCT}:service/svc-0000000000000000d with an explicit deny in an identity-based policy")))),
            (&crate::iam::IAM, "ListUsers", json!({}), Err(("AccessDenied", format!(
                "User: arn:aws:iam::{ACCT}:user/alice is not authorized to perform: iam:ListUsers on resource: * because no identity-based policy allows the iam:ListUsers action")))),
            (&crate::sts::STS, "GetCallerIdentity", json!({}), Ok(())),
        ];
        for (service, name, input, want) in cases {
            let got = auth
                .authorize(&meta(service, name), &input)
                .await
                .map_err(|e| (e.code.clone(), e.message.clone(), e.status));
            match want {
                Ok(()) => assert!(got.is_ok(), "{name}: {got:?}"),
                Err((code, message)) => {
                    let (got_code, got_message, status) = got.expect_err(name);
                    assert_eq!(
                        (got_code.as_str(), got_message, status.as_u16()),
                        (code, message, 403),
                        "{name}"
                    );
                }
            }
        }
        // Root may do anything.
        let root = CallerAuthorizer {
            caller: Caller::Root {
                account: "111122223333".into(),
            },
            ctx,
            index: Arc::new(IdentityIndex::default()),
            store: None,
        };
        assert!(
            root.authorize(&meta(lattice, "CreateService"), &json!({}))
                .await
                .is_ok()
        );
    }
}
