//! Services: CreateService, GetService, ListServices, UpdateService, DeleteService.
//!
//! A service's generated DNS name comes from [`trellis_model::dns`] and is stored in the
//! document at creation. DeleteService refuses while the service is in a service network and
//! otherwise takes its listeners, their rules, its policies and access-log subscriptions with it.

use serde::{Deserialize, Serialize};
use trellis_model::arn::Resolved;
use trellis_model::dns::DnsEntry;
use trellis_model::resources::service::{
    CERTIFICATE_ARN_PATTERN, Service, ServiceStatus, is_certificate_arn, is_domain_name,
};
use trellis_model::resources::{AuthType, Tags};
use trellis_model::{Checks, Context, ResourceKind, Timestamp, ValidationError, dns};
use trellis_store::Tx;
use trellis_wire::Call;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::service_networks::check_auth_type;
use crate::wire::{
    Idempotency, ListOutput, NewRecord, Page, check_new_top_level, doc, load_doc, set_doc,
};

const KIND: ResourceKind = ResourceKind::Service;
/// Services per region (reference §11.1).
pub const QUOTA: u64 = 2000;
/// The identifier label of every operation on one service.
const IDENTIFIER: &str = "serviceIdentifier";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceInput {
    name: Option<String>,
    custom_domain_name: Option<String>,
    certificate_arn: Option<String>,
    auth_type: Option<String>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

/// The input of the operations that name one service and nothing else.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceIdentifierInput {
    service_identifier: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListServicesInput {
    max_results: Option<String>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateServiceInput {
    service_identifier: String,
    certificate_arn: Option<String>,
    auth_type: Option<String>,
    /// Not a member of UpdateServiceRequest; read only to refuse a change clearly instead of
    /// silently ignoring it (the custom domain is immutable).
    custom_domain_name: Option<String>,
}

/// CreateService's output; also what an idempotent retry replays.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceOutput {
    id: String,
    arn: String,
    name: String,
    status: ServiceStatus,
    auth_type: AuthType,
    dns_entry: DnsEntry,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_domain_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetServiceOutput {
    id: String,
    arn: String,
    name: String,
    status: ServiceStatus,
    auth_type: AuthType,
    dns_entry: DnsEntry,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_domain_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_arn: Option<String>,
    created_at: Timestamp,
    last_updated_at: Timestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    id: String,
    name: String,
    arn: String,
    created_at: Timestamp,
    last_updated_at: Timestamp,
    dns_entry: DnsEntry,
    status: ServiceStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_domain_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateServiceOutput {
    id: String,
    arn: String,
    name: String,
    auth_type: AuthType,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_domain_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteServiceOutput {
    id: String,
    arn: String,
    name: String,
    status: ServiceStatus,
}

/// Checks an `*Identifier` member that must name a `kind` resource by ID or ARN, so that a
/// malformed one is reported with the other field errors before anything is looked up.
pub fn check_identifier(
    c: &mut Checks,
    ctx: &Context,
    kind: ResourceKind,
    field: &str,
    value: Option<&str>,
) {
    match value {
        None => c.missing(field),
        Some(v) if ctx.resolve(kind, v) == Resolved::Malformed => c.fail(
            field,
            format!(
                "Value '{v}' at '{field}' failed to satisfy constraint: Member must be a {} ID or ARN",
                crate::error::human(kind)
            ),
        ),
        Some(_) => {}
    }
}

/// `certificateArn`: 0–2048 characters matching the model's pattern (empty clears it).
fn check_certificate(c: &mut Checks, value: Option<&str>) {
    if let Some(v) = value
        && c.length("certificateArn", v, 0, 2048)
    {
        c.pattern(
            "certificateArn",
            v,
            is_certificate_arn(v),
            CERTIFICATE_ARN_PATTERN,
        );
    }
}

/// Validated CreateService input.
struct NewService {
    name: String,
    custom_domain_name: Option<String>,
    certificate_arn: Option<String>,
    auth_type: AuthType,
}

impl CreateServiceInput {
    fn validate(&self) -> Result<NewService, ValidationError> {
        let mut c = Checks::new();
        match &self.name {
            Some(n) => {
                c.resource_name("name", n, 3, 40, Some("svc-"));
            }
            None => c.missing("name"),
        }
        if let Some(d) = &self.custom_domain_name
            && c.length("customDomainName", d, 3, 255)
            && !is_domain_name(d)
        {
            c.fail(
                "customDomainName",
                format!("Value '{d}' at 'customDomainName' failed to satisfy constraint: Member must be a valid domain name"),
            );
        }
        check_certificate(&mut c, self.certificate_arn.as_deref());
        let auth_type = check_auth_type(&mut c, self.auth_type.as_deref()).unwrap_or_default();
        c.tags("tags", &self.tags);
        c.finish()?;
        Ok(NewService {
            name: self.name.clone().unwrap_or_default(),
            // A trailing dot is the same name; stored without it so comparisons are plain.
            custom_domain_name: self
                .custom_domain_name
                .as_ref()
                .map(|d| d.strip_suffix('.').unwrap_or(d).to_string()),
            certificate_arn: self.certificate_arn.clone().filter(|a| !a.is_empty()),
            auth_type,
        })
    }
}

/// `(certificateArn change, authType change)`; `Some(None)` clears the certificate.
type ServiceChanges = (Option<Option<String>>, Option<AuthType>);

impl UpdateServiceInput {
    fn validate(&self) -> Result<ServiceChanges, ValidationError> {
        let mut c = Checks::new();
        check_certificate(&mut c, self.certificate_arn.as_deref());
        let auth_type = check_auth_type(&mut c, self.auth_type.as_deref());
        c.finish()?;
        Ok((
            self.certificate_arn
                .as_ref()
                .map(|a| Some(a.clone()).filter(|a| !a.is_empty())),
            auth_type,
        ))
    }
}

pub(crate) async fn create(
    s: AppState,
    input: CreateServiceInput,
    _: Call,
) -> ApiResult<CreateServiceOutput> {
    let new = input.validate()?;
    let idem = Idempotency::new(
        "CreateService",
        "",
        input.client_token.as_deref(),
        &serde_json::to_value(&input).map_err(|e| ApiError::Internal(e.to_string()))?,
    )?;

    let mut tx = s.store.write().await?;
    if let Some(out) = idem.replay_output(&mut tx, KIND).await? {
        return Ok(out);
    }
    check_new_top_level(
        &mut tx,
        KIND,
        &new.name,
        s.quotas.services_per_region,
        "services-per-region",
    )
    .await?;
    if let Some(domain) = &new.custom_domain_name {
        check_domain_free(&mut tx, &s.ctx.account_id, domain).await?;
    }
    let id = KIND.new_id();
    let arn = s.ctx.top_level_arn(KIND, &id);
    let now = Timestamp::now();
    let svc = Service {
        dns_entry: dns::service_dns_entry(&new.name, &id, &s.ctx.region, &s.ctx.account_id),
        id: id.clone(),
        name: new.name.clone(),
        arn: arn.clone(),
        auth_type: new.auth_type,
        custom_domain_name: new.custom_domain_name,
        certificate_arn: new.certificate_arn,
        status: ServiceStatus::Active,
        created_at: now,
        last_updated_at: now,
        tags: input.tags,
    };
    let rec = NewRecord {
        kind: KIND,
        id: &id,
        parent: None,
        name: Some(&svc.name),
        arn: Some(&arn),
        refs: vec![],
    }
    .with_body(&svc)?;
    tx.insert(&rec).await?;
    let out = CreateServiceOutput {
        id: svc.id,
        arn: svc.arn,
        name: svc.name,
        status: svc.status,
        auth_type: svc.auth_type,
        dns_entry: svc.dns_entry,
        custom_domain_name: svc.custom_domain_name,
        certificate_arn: svc.certificate_arn,
    };
    idem.finish_output(tx, out).await
}

pub(crate) async fn read(
    s: AppState,
    input: ServiceIdentifierInput,
    _: Call,
) -> ApiResult<GetServiceOutput> {
    let mut tx = s.store.read().await?;
    let (_, svc) =
        load_doc::<Service>(&mut tx, &s.ctx, KIND, IDENTIFIER, &input.service_identifier).await?;
    Ok(GetServiceOutput {
        id: svc.id,
        arn: svc.arn,
        name: svc.name,
        status: svc.status,
        auth_type: svc.auth_type,
        dns_entry: svc.dns_entry,
        custom_domain_name: svc.custom_domain_name,
        certificate_arn: svc.certificate_arn,
        created_at: svc.created_at,
        last_updated_at: svc.last_updated_at,
    })
}

pub(crate) async fn list(
    s: AppState,
    input: ListServicesInput,
    _: Call,
) -> ApiResult<ListOutput<ServiceSummary>> {
    let page = Page::new(input.max_results.as_deref(), input.next_token.as_deref())?;
    let mut tx = s.store.read().await?;
    let (records, next_token) = page.apply(tx.list(KIND.store_kind(), None).await?);
    let items = records
        .iter()
        .map(|r| {
            doc::<Service>(r).map(|svc| ServiceSummary {
                id: svc.id,
                name: svc.name,
                arn: svc.arn,
                created_at: svc.created_at,
                last_updated_at: svc.last_updated_at,
                dns_entry: svc.dns_entry,
                status: svc.status,
                custom_domain_name: svc.custom_domain_name,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(ListOutput { items, next_token })
}

/// Refuses a custom domain name another account's service has: the data plane answers and
/// certifies a name for one service only, and one account must not take over (or be shadowed
/// on) a name another serves. Within one account the earliest service keeps a shared name, as
/// before accounts. Reads every account's services, inside the caller's write transaction (so
/// no concurrent create slips between the check and the insert).
async fn check_domain_free(tx: &mut Tx, account: &str, domain: &str) -> ApiResult<()> {
    let wanted = domain.strip_suffix('.').unwrap_or(domain);
    let scope = tx.account().map(str::to_string);
    tx.set_account(None);
    let all = tx.list(KIND.store_kind(), None).await;
    tx.set_account(scope.as_deref());
    for rec in all? {
        let other_account = rec
            .arn
            .as_deref()
            .map_or("", trellis_model::arn::account_of);
        let theirs = rec
            .body
            .get("customDomainName")
            .and_then(|v| v.as_str())
            .is_some_and(|d| d.eq_ignore_ascii_case(wanted));
        if theirs && other_account != account {
            return Err(ApiError::conflict(
                KIND,
                &rec.id,
                format!(
                    "The custom domain name {wanted} is in use by a service of another account"
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) async fn update(
    s: AppState,
    input: UpdateServiceInput,
    _: Call,
) -> ApiResult<UpdateServiceOutput> {
    let (certificate, auth_type) = input.validate()?;
    let mut tx = s.store.write().await?;
    let (mut rec, mut svc) =
        load_doc::<Service>(&mut tx, &s.ctx, KIND, IDENTIFIER, &input.service_identifier).await?;
    if let Some(d) = &input.custom_domain_name
        && svc
            .custom_domain_name
            .as_deref()
            .is_none_or(|cur| !cur.eq_ignore_ascii_case(d.strip_suffix('.').unwrap_or(d)))
    {
        return Err(ApiError::validation_field(
            "customDomainName",
            "The custom domain name of a service cannot be changed after creation",
        ));
    }
    if let Some(c) = certificate {
        svc.certificate_arn = c;
    }
    if let Some(a) = auth_type {
        svc.auth_type = a;
    }
    svc.last_updated_at = Timestamp::now();
    set_doc(&mut rec, &svc)?;
    tx.update(&rec).await?;
    tx.commit().await?;
    Ok(UpdateServiceOutput {
        id: svc.id,
        arn: svc.arn,
        name: svc.name,
        auth_type: svc.auth_type,
        custom_domain_name: svc.custom_domain_name,
        certificate_arn: svc.certificate_arn,
    })
}

/// Deletes a listener and its rules (DeleteService's cascade).
async fn delete_listener_tree(tx: &mut Tx, listener_id: &str) -> ApiResult<()> {
    let rule = ResourceKind::Rule.store_kind();
    for r in tx.list(rule, Some(listener_id)).await? {
        tx.delete(rule, &r.id).await?;
    }
    tx.delete(ResourceKind::Listener.store_kind(), listener_id)
        .await?;
    Ok(())
}

pub(crate) async fn delete(
    s: AppState,
    input: ServiceIdentifierInput,
    _: Call,
) -> ApiResult<DeleteServiceOutput> {
    let mut tx = s.store.write().await?;
    let (rec, svc) =
        load_doc::<Service>(&mut tx, &s.ctx, KIND, IDENTIFIER, &input.service_identifier).await?;
    let associations = tx
        .list_referencing(
            ResourceKind::ServiceNetworkServiceAssociation.store_kind(),
            &svc.id,
        )
        .await?;
    if !associations.is_empty() {
        let networks: Vec<&str> = associations
            .iter()
            .filter_map(|a| a.parent.as_deref())
            .collect();
        return Err(ApiError::conflict(
            KIND,
            &svc.id,
            format!(
                "Service {} is associated with service network(s) {}; delete those associations first",
                svc.id,
                networks.join(", ")
            ),
        ));
    }
    for listener in tx
        .list(ResourceKind::Listener.store_kind(), Some(&svc.id))
        .await?
    {
        delete_listener_tree(&mut tx, &listener.id).await?;
    }
    crate::cascade::delete_attached(&mut tx, &rec.id).await?;
    tx.delete(KIND.store_kind(), &rec.id).await?;
    tx.commit().await?;
    Ok(DeleteServiceOutput {
        id: svc.id,
        arn: svc.arn,
        name: svc.name,
        status: ServiceStatus::DeleteInProgress,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn fields(body: Value, validate: impl Fn(Value) -> Result<(), ValidationError>) -> Vec<String> {
        match validate(body) {
            Ok(()) => vec![],
            Err(e) => e.fields.into_iter().map(|f| f.name).collect(),
        }
    }

    fn create(body: Value) -> Result<(), ValidationError> {
        let input: CreateServiceInput = serde_json::from_value(body).unwrap();
        input.validate().map(|_| ())
    }

    /// UpdateService's input as the front door merges it: the URI label and the body.
    fn update_input(mut body: Value) -> UpdateServiceInput {
        body["serviceIdentifier"] = json!("svc-0123456789abcdef0");
        serde_json::from_value(body).unwrap()
    }

    fn update(body: Value) -> Result<(), ValidationError> {
        update_input(body).validate().map(|_| ())
    }

    #[test]
    fn create_validation_table() {
        let cert = "arn:aws:acm:us-west-2:111122223333:certificate/abc-123";
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"name": "billing"}), vec![]),
            (
                json!({"name": "billing", "customDomainName": "api.example.com", "certificateArn": cert, "authType": "AWS_IAM"}),
                vec![],
            ),
            (json!({"name": "billing", "certificateArn": ""}), vec![]),
            (json!({}), vec!["name"]),
            (json!({"name": "ab"}), vec!["name"]),
            (json!({"name": "a".repeat(41)}), vec!["name"]),
            (json!({"name": "svc-billing"}), vec!["name"]),
            (json!({"name": "Billing"}), vec!["name"]),
            (json!({"name": "bill--ing"}), vec!["name"]),
            (json!({"name": "-billing"}), vec!["name"]),
            (
                json!({"name": "billing", "customDomainName": "ab"}),
                vec!["customDomainName"],
            ),
            (
                json!({"name": "billing", "customDomainName": format!("{}.com", "a.".repeat(127))}),
                vec!["customDomainName"],
            ),
            (
                json!({"name": "billing", "customDomainName": "bad_domain.com"}),
                vec!["customDomainName"],
            ),
            (
                json!({"name": "billing", "certificateArn": "arn:aws:acm:us-west-2:111122223333:cert/x"}),
                vec!["certificateArn"],
            ),
            (
                json!({"name": "billing", "certificateArn": format!("{cert}{}", "a".repeat(2048))}),
                vec!["certificateArn"],
            ),
            (
                json!({"name": "billing", "authType": "IAM"}),
                vec!["authType"],
            ),
            (
                json!({"name": "billing", "tags": {"aws:x": "y"}}),
                vec!["tags.aws:x"],
            ),
            (
                json!({"name": "x", "authType": "nope", "certificateArn": "z"}),
                vec!["name", "certificateArn", "authType"],
            ),
        ];
        for (body, want) in cases {
            assert_eq!(fields(body.clone(), create), want, "{body}");
        }
    }

    #[test]
    fn update_validation_table() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({}), vec![]),
            (json!({"authType": "NONE", "certificateArn": ""}), vec![]),
            (json!({"authType": "none"}), vec!["authType"]),
            (
                json!({"certificateArn": "arn:aws:acm:us-west-2:1:certificate/UPPER"}),
                vec!["certificateArn"],
            ),
        ];
        for (body, want) in cases {
            assert_eq!(fields(body.clone(), update), want, "{body}");
        }
    }

    #[test]
    fn empty_certificate_clears_and_trailing_dot_is_dropped() {
        let input = update_input(json!({"certificateArn": ""}));
        assert_eq!(input.validate().unwrap(), (Some(None), None));
        let input: CreateServiceInput =
            serde_json::from_value(json!({"name": "abc", "customDomainName": "a.example.com."}))
                .unwrap();
        assert_eq!(
            input.validate().unwrap().custom_domain_name.as_deref(),
            Some("a.example.com")
        );
    }

    #[test]
    fn identifier_checks_table() {
        let ctx = Context {
            partition: "aws".into(),
            region: "us-west-2".into(),
            account_id: "111122223333".into(),
        };
        let svc = "svc-0123456789abcdef0";
        let cases: Vec<(Option<String>, bool)> = vec![
            (Some(svc.into()), true),
            (Some(ctx.top_level_arn(KIND, svc)), true),
            // Another account's ARN is well formed: it is "not found" later, not invalid.
            (
                Some(format!(
                    "arn:aws:vpc-lattice:us-west-2:444455556666:service/{svc}"
                )),
                true,
            ),
            (Some("sn-0123456789abcdef0".into()), false),
            (Some("svc-123".into()), false),
            (None, false),
        ];
        for (value, ok) in cases {
            let mut c = Checks::new();
            check_identifier(&mut c, &ctx, KIND, "serviceIdentifier", value.as_deref());
            assert_eq!(c.is_empty(), ok, "{value:?}");
        }
    }
}
