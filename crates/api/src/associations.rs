//! Service-network associations: services joined to service networks
//! (Create/Get/List/DeleteServiceNetworkServiceAssociation) and client VPCs joined to service
//! networks (Create/Get/List/Update/DeleteServiceNetworkVpcAssociation).
//!
//! Trellis has no real VPCs: any well-formed VPC ID is accepted and stands for a client network
//! the data plane will later map peers onto. Security group IDs are likewise only checked for
//! form. Associations are applied synchronously (status `ACTIVE` at once).

use serde::{Deserialize, Serialize};
use trellis_model::arn::Resolved;
use trellis_model::dns::DnsEntry;
use trellis_model::resources::Tags;
use trellis_model::resources::association::{
    AssociationStatus, DnsOptions, PREFERENCES_WITH_DOMAINS, PRIVATE_DNS_PREFERENCES,
    SECURITY_GROUP_ID_PATTERN, ServiceNetworkServiceAssociation, ServiceNetworkVpcAssociation,
    VPC_ID_PATTERN, is_security_group_id, is_vpc_id,
};
use trellis_model::resources::service::{Service, is_domain_name};
use trellis_model::resources::service_network::ServiceNetwork;
use trellis_model::{Checks, Context, ResourceKind, Timestamp, ValidationError};
use trellis_store::{Record, Tx};
use trellis_wire::Call;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::services::check_identifier;
use crate::wire::{Idempotency, ListOutput, NewRecord, Page, doc, load_doc, set_doc};

const SNSA: ResourceKind = ResourceKind::ServiceNetworkServiceAssociation;
const SNVA: ResourceKind = ResourceKind::ServiceNetworkVpcAssociation;
/// Service associations per service network (reference §11.1).
pub const SERVICE_ASSOCIATIONS_QUOTA: u64 = 500;
/// VPC associations per service network (reference §11.1).
pub const VPC_ASSOCIATIONS_QUOTA: u64 = 500;
/// The identifier label of the operations on one service association.
const SNSA_IDENTIFIER: &str = "serviceNetworkServiceAssociationIdentifier";
/// The identifier label of the operations on one VPC association.
const SNVA_IDENTIFIER: &str = "serviceNetworkVpcAssociationIdentifier";

// ---------------------------------------------------------------------------------------------
// Validation shared by both kinds
// ---------------------------------------------------------------------------------------------

/// One filter of a List call.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Filter {
    /// The query parameter was not given.
    Absent,
    /// Well formed but naming nothing of ours (another account's ARN): the list is empty.
    Nothing,
    /// Records with this parent (SN) or reference (service, VPC).
    Id(String),
}

/// A list-filter identifier from the query string; a malformed one is a field error.
fn filter_id(
    c: &mut Checks,
    ctx: &Context,
    kind: ResourceKind,
    field: &str,
    value: Option<&str>,
) -> Filter {
    let Some(v) = value else {
        return Filter::Absent;
    };
    match ctx.resolve(kind, v) {
        Resolved::Id(id) => Filter::Id(id),
        Resolved::Foreign(_) => Filter::Nothing,
        Resolved::Malformed => {
            check_identifier(c, ctx, kind, field, Some(v));
            Filter::Nothing
        }
    }
}

fn check_vpc_id(c: &mut Checks, field: &str, v: &str) -> bool {
    c.length(field, v, 5, 50) && c.pattern(field, v, is_vpc_id(v), VPC_ID_PATTERN)
}

/// `securityGroupIds`: `min..=5` entries, each `sg-` + 8 or 17, no repeats.
fn check_security_groups(c: &mut Checks, ids: &[String], min: usize) {
    c.count("securityGroupIds", ids.len(), min, 5);
    for (i, sg) in ids.iter().enumerate() {
        let field = format!("securityGroupIds[{i}]");
        if c.length(&field, sg, 5, 200)
            && c.pattern(
                &field,
                sg,
                is_security_group_id(sg),
                SECURITY_GROUP_ID_PATTERN,
            )
            && ids[..i].contains(sg)
        {
            c.fail(
                field,
                format!("Security group '{sg}' is listed more than once"),
            );
        }
    }
}

/// `dnsOptions` rules: the preference is an enum value; specified domains (1–10, each 1–255,
/// a host name optionally under `*.`) are required by, and only allowed with, the two
/// `…SPECIFIED_DOMAINS…` preferences; all of it only when private DNS is enabled.
fn check_dns_options(c: &mut Checks, private_dns_enabled: bool, opts: &DnsOptions) {
    if !private_dns_enabled {
        c.fail(
            "dnsOptions",
            "dnsOptions can only be set when privateDnsEnabled is true",
        );
        return;
    }
    let pref = opts.private_dns_preference.as_deref();
    let pref_ok = pref.is_none_or(|p| {
        c.one_of(
            "dnsOptions.privateDnsPreference",
            p,
            &PRIVATE_DNS_PREFERENCES,
        )
    });
    let field = "dnsOptions.privateDnsSpecifiedDomains";
    let takes_domains = pref.is_some_and(|p| PREFERENCES_WITH_DOMAINS.contains(&p));
    match &opts.private_dns_specified_domains {
        Some(domains) => {
            if pref_ok && !takes_domains {
                c.fail(
                    field,
                    format!(
                        "privateDnsSpecifiedDomains is only allowed with privateDnsPreference {}",
                        PREFERENCES_WITH_DOMAINS.join(" or ")
                    ),
                );
            }
            c.count(field, domains.len(), 1, 10);
            for (i, d) in domains.iter().enumerate() {
                let f = format!("{field}[{i}]");
                if c.length(&f, d, 1, 255) && !is_domain_name(d.strip_prefix("*.").unwrap_or(d)) {
                    c.fail(&f, format!("Value '{d}' at '{f}' failed to satisfy constraint: Member must be a domain name or a wildcard (*.example.com)"));
                }
            }
        }
        None if takes_domains => c.fail(
            field,
            format!(
                "privateDnsSpecifiedDomains is required with privateDnsPreference {}",
                pref.unwrap_or("")
            ),
        ),
        None => {}
    }
}

/// The status a Delete* returns: Trellis removes the association at once, but the modelled
/// answer is the in-progress state clients expect.
const DELETING: AssociationStatus = AssociationStatus::DeleteInProgress;

// ---------------------------------------------------------------------------------------------
// Service network ↔ service
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceNetworkServiceAssociationInput {
    service_identifier: Option<String>,
    service_network_identifier: Option<String>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

/// A checked CreateServiceNetworkServiceAssociation: the two identifiers, well formed (they are
/// looked up later, in the write transaction).
struct NewServiceAssociation {
    service_identifier: String,
    service_network_identifier: String,
}

impl CreateServiceNetworkServiceAssociationInput {
    fn validate(&self, ctx: &Context) -> Result<NewServiceAssociation, ValidationError> {
        let mut c = Checks::new();
        check_identifier(
            &mut c,
            ctx,
            ResourceKind::Service,
            "serviceIdentifier",
            self.service_identifier.as_deref(),
        );
        check_identifier(
            &mut c,
            ctx,
            ResourceKind::ServiceNetwork,
            "serviceNetworkIdentifier",
            self.service_network_identifier.as_deref(),
        );
        c.tags("tags", &self.tags);
        c.finish()?;
        Ok(NewServiceAssociation {
            service_identifier: self.service_identifier.clone().unwrap_or_default(),
            service_network_identifier: self.service_network_identifier.clone().unwrap_or_default(),
        })
    }
}

/// CreateServiceNetworkServiceAssociation's output; also what an idempotent retry replays.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceNetworkServiceAssociationOutput {
    id: String,
    status: AssociationStatus,
    arn: String,
    created_by: String,
    dns_entry: DnsEntry,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_domain_name: Option<String>,
}

/// The input of the operations that name one service association and nothing else.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetworkServiceAssociationIdentifierInput {
    service_network_service_association_identifier: String,
}

/// A service association as Get and List show it (Get's failure members are absent while the
/// association is ACTIVE, which in Trellis it always is).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetworkServiceAssociationSummary {
    id: String,
    status: AssociationStatus,
    arn: String,
    created_by: String,
    created_at: Timestamp,
    service_id: String,
    service_name: String,
    service_arn: String,
    service_network_id: String,
    service_network_name: String,
    service_network_arn: String,
    dns_entry: DnsEntry,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_domain_name: Option<String>,
}

impl From<ServiceNetworkServiceAssociation> for ServiceNetworkServiceAssociationSummary {
    fn from(a: ServiceNetworkServiceAssociation) -> Self {
        ServiceNetworkServiceAssociationSummary {
            id: a.id,
            status: a.status,
            arn: a.arn,
            created_by: a.created_by,
            created_at: a.created_at,
            service_id: a.service_id,
            service_name: a.service_name,
            service_arn: a.service_arn,
            service_network_id: a.service_network_id,
            service_network_name: a.service_network_name,
            service_network_arn: a.service_network_arn,
            dns_entry: a.dns_entry,
            custom_domain_name: a.custom_domain_name,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListServiceNetworkServiceAssociationsInput {
    service_network_identifier: Option<String>,
    service_identifier: Option<String>,
    max_results: Option<String>,
    next_token: Option<String>,
}

impl ListServiceNetworkServiceAssociationsInput {
    /// The two filters (service network, service); at least one must be given.
    fn validate(&self, ctx: &Context) -> Result<(Filter, Filter), ValidationError> {
        let mut c = Checks::new();
        let by_sn = filter_id(
            &mut c,
            ctx,
            ResourceKind::ServiceNetwork,
            "serviceNetworkIdentifier",
            self.service_network_identifier.as_deref(),
        );
        let by_svc = filter_id(
            &mut c,
            ctx,
            ResourceKind::Service,
            "serviceIdentifier",
            self.service_identifier.as_deref(),
        );
        c.finish()?;
        if by_sn == Filter::Absent && by_svc == Filter::Absent {
            return Err(ValidationError::other(
                "Either serviceNetworkIdentifier or serviceIdentifier must be specified",
            ));
        }
        Ok((by_sn, by_svc))
    }
}

/// The members both Delete*Association operations answer with.
#[derive(Debug, Serialize)]
pub struct DeleteAssociationOutput {
    id: String,
    status: AssociationStatus,
    arn: String,
}

pub(crate) async fn create_service(
    s: AppState,
    input: CreateServiceNetworkServiceAssociationInput,
    _: Call,
) -> ApiResult<CreateServiceNetworkServiceAssociationOutput> {
    let new = input.validate(&s.ctx)?;
    let idem = Idempotency::new(
        "CreateServiceNetworkServiceAssociation",
        "",
        input.client_token.as_deref(),
        &serde_json::to_value(&input).map_err(|e| ApiError::Internal(e.to_string()))?,
    )?;

    let mut tx = s.store.write().await?;
    if let Some(out) = idem.replay_output(&mut tx, SNSA).await? {
        return Ok(out);
    }
    let (_, sn) = load_doc::<ServiceNetwork>(
        &mut tx,
        &s.ctx,
        ResourceKind::ServiceNetwork,
        "serviceNetworkIdentifier",
        &new.service_network_identifier,
    )
    .await?;
    let (_, svc) = load_doc::<Service>(
        &mut tx,
        &s.ctx,
        ResourceKind::Service,
        "serviceIdentifier",
        &new.service_identifier,
    )
    .await?;
    if let Some(existing) = tx
        .get_by_name(SNSA.store_kind(), Some(&sn.id), &svc.id)
        .await?
    {
        return Err(ApiError::conflict(
            SNSA,
            &existing.id,
            format!(
                "Service {} is already associated with service network {} ({})",
                svc.id, sn.id, existing.id
            ),
        ));
    }
    // A custom domain must be unique within a service network (reference §2.7): the data plane
    // could not tell two services with the same Host/SNI apart.
    if let Some(domain) = &svc.custom_domain_name {
        for rec in tx.list(SNSA.store_kind(), Some(&sn.id)).await? {
            let other: ServiceNetworkServiceAssociation = doc(&rec)?;
            if let Some(taken) = other.custom_domain_name.as_deref()
                && taken.eq_ignore_ascii_case(domain)
            {
                return Err(ApiError::conflict(
                    SNSA,
                    &other.id,
                    format!(
                        "Service network {} already has service {} with custom domain name '{taken}'",
                        sn.id, other.service_id
                    ),
                ));
            }
        }
    }
    let quota = s.quotas.service_associations_per_service_network;
    if tx.count(SNSA.store_kind(), Some(&sn.id)).await? >= quota {
        return Err(ApiError::quota(
            SNSA,
            Some(&sn.id),
            "service-associations-per-service-network",
            "service associations per service network",
            quota,
        ));
    }
    let id = SNSA.new_id();
    let arn = s.ctx.top_level_arn(SNSA, &id);
    let assoc = ServiceNetworkServiceAssociation {
        id: id.clone(),
        arn: arn.clone(),
        status: AssociationStatus::Active,
        created_by: s.ctx.account_id.clone(),
        created_at: Timestamp::now(),
        service_id: svc.id.clone(),
        service_name: svc.name.clone(),
        service_arn: svc.arn.clone(),
        service_network_id: sn.id.clone(),
        service_network_name: sn.name.clone(),
        service_network_arn: sn.arn.clone(),
        dns_entry: svc.dns_entry.clone(),
        custom_domain_name: svc.custom_domain_name.clone(),
        tags: input.tags,
    };
    let rec = NewRecord {
        kind: SNSA,
        id: &id,
        parent: Some(&sn.id),
        name: Some(&svc.id),
        arn: Some(&arn),
        refs: vec![svc.id.clone()],
    }
    .with_body(&assoc)?;
    tx.insert(&rec).await?;
    let out = CreateServiceNetworkServiceAssociationOutput {
        id: assoc.id,
        status: assoc.status,
        arn: assoc.arn,
        created_by: assoc.created_by,
        dns_entry: assoc.dns_entry,
        custom_domain_name: assoc.custom_domain_name,
    };
    idem.finish_output(tx, out).await
}

pub(crate) async fn read_service(
    s: AppState,
    input: ServiceNetworkServiceAssociationIdentifierInput,
    _: Call,
) -> ApiResult<ServiceNetworkServiceAssociationSummary> {
    let mut tx = s.store.read().await?;
    let (_, a) = load_doc::<ServiceNetworkServiceAssociation>(
        &mut tx,
        &s.ctx,
        SNSA,
        SNSA_IDENTIFIER,
        &input.service_network_service_association_identifier,
    )
    .await?;
    // Get has the same members as the summary (plus failure fields, absent while ACTIVE).
    Ok(a.into())
}

/// The records a List selects by parent (SN) and/or a referenced id (service or VPC), in
/// insertion order; both filters → the intersection.
async fn filtered(
    tx: &mut Tx,
    kind: ResourceKind,
    by_network: Filter,
    by_ref: Filter,
) -> ApiResult<Vec<Record>> {
    Ok(match (by_network, by_ref) {
        (Filter::Nothing, _) | (_, Filter::Nothing) => vec![],
        (Filter::Id(sn), Filter::Id(r)) => tx
            .list(kind.store_kind(), Some(&sn))
            .await?
            .into_iter()
            .filter(|rec| rec.refs.contains(&r))
            .collect(),
        (Filter::Id(sn), Filter::Absent) => tx.list(kind.store_kind(), Some(&sn)).await?,
        (Filter::Absent, Filter::Id(r)) => tx.list_referencing(kind.store_kind(), &r).await?,
        (Filter::Absent, Filter::Absent) => vec![],
    })
}

pub(crate) async fn list_service(
    s: AppState,
    input: ListServiceNetworkServiceAssociationsInput,
    _: Call,
) -> ApiResult<ListOutput<ServiceNetworkServiceAssociationSummary>> {
    let (by_sn, by_svc) = input.validate(&s.ctx)?;
    let page = Page::new(input.max_results.as_deref(), input.next_token.as_deref())?;
    let mut tx = s.store.read().await?;
    let (records, next_token) = page.apply(filtered(&mut tx, SNSA, by_sn, by_svc).await?);
    let items = records
        .iter()
        .map(|r| doc::<ServiceNetworkServiceAssociation>(r).map(Into::into))
        .collect::<ApiResult<_>>()?;
    Ok(ListOutput { items, next_token })
}

pub(crate) async fn delete_service(
    s: AppState,
    input: ServiceNetworkServiceAssociationIdentifierInput,
    _: Call,
) -> ApiResult<DeleteAssociationOutput> {
    let mut tx = s.store.write().await?;
    let (rec, a) = load_doc::<ServiceNetworkServiceAssociation>(
        &mut tx,
        &s.ctx,
        SNSA,
        SNSA_IDENTIFIER,
        &input.service_network_service_association_identifier,
    )
    .await?;
    tx.delete(SNSA.store_kind(), &rec.id).await?;
    tx.commit().await?;
    Ok(DeleteAssociationOutput {
        id: a.id,
        status: DELETING,
        arn: a.arn,
    })
}

// ---------------------------------------------------------------------------------------------
// Service network ↔ VPC
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceNetworkVpcAssociationInput {
    service_network_identifier: Option<String>,
    vpc_identifier: Option<String>,
    private_dns_enabled: Option<bool>,
    security_group_ids: Option<Vec<String>>,
    dns_options: Option<DnsOptions>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

/// Validated CreateServiceNetworkVpcAssociation input (the service network is looked up later).
struct NewVpcAssociation {
    service_network_identifier: String,
    vpc_id: String,
    security_group_ids: Vec<String>,
    private_dns_enabled: bool,
    dns_options: Option<DnsOptions>,
}

impl CreateServiceNetworkVpcAssociationInput {
    fn validate(&self, ctx: &Context) -> Result<NewVpcAssociation, ValidationError> {
        let mut c = Checks::new();
        check_identifier(
            &mut c,
            ctx,
            ResourceKind::ServiceNetwork,
            "serviceNetworkIdentifier",
            self.service_network_identifier.as_deref(),
        );
        match &self.vpc_identifier {
            Some(v) => {
                check_vpc_id(&mut c, "vpcIdentifier", v);
            }
            None => c.missing("vpcIdentifier"),
        }
        let sgs = self.security_group_ids.clone().unwrap_or_default();
        check_security_groups(&mut c, &sgs, 0);
        // Private DNS is on unless turned off, as for VPC endpoints; its preference then defaults
        // to VERIFIED_DOMAINS_ONLY (the documented default).
        let private_dns_enabled = self.private_dns_enabled.unwrap_or(true);
        if let Some(opts) = &self.dns_options {
            check_dns_options(&mut c, private_dns_enabled, opts);
        }
        c.tags("tags", &self.tags);
        c.finish()?;
        let dns_options = private_dns_enabled.then(|| {
            let mut o = self.dns_options.clone().unwrap_or(DnsOptions {
                private_dns_preference: None,
                private_dns_specified_domains: None,
            });
            o.private_dns_preference
                .get_or_insert_with(|| PRIVATE_DNS_PREFERENCES[0].to_string());
            o
        });
        Ok(NewVpcAssociation {
            service_network_identifier: self.service_network_identifier.clone().unwrap_or_default(),
            vpc_id: self.vpc_identifier.clone().unwrap_or_default(),
            security_group_ids: sgs,
            private_dns_enabled,
            dns_options,
        })
    }
}

/// CreateServiceNetworkVpcAssociation's output; also what an idempotent retry replays.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceNetworkVpcAssociationOutput {
    id: String,
    status: AssociationStatus,
    arn: String,
    created_by: String,
    security_group_ids: Vec<String>,
    private_dns_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_options: Option<DnsOptions>,
}

/// The input of the operations that name one VPC association and nothing else.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetworkVpcAssociationIdentifierInput {
    service_network_vpc_association_identifier: String,
}

/// A VPC association as List shows it; Get adds the security groups.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetworkVpcAssociationSummary {
    id: String,
    arn: String,
    status: AssociationStatus,
    created_by: String,
    created_at: Timestamp,
    last_updated_at: Timestamp,
    service_network_id: String,
    service_network_name: String,
    service_network_arn: String,
    vpc_id: String,
    private_dns_enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_options: Option<DnsOptions>,
}

impl From<ServiceNetworkVpcAssociation> for ServiceNetworkVpcAssociationSummary {
    fn from(a: ServiceNetworkVpcAssociation) -> Self {
        ServiceNetworkVpcAssociationSummary {
            id: a.id,
            arn: a.arn,
            status: a.status,
            created_by: a.created_by,
            created_at: a.created_at,
            last_updated_at: a.last_updated_at,
            service_network_id: a.service_network_id,
            service_network_name: a.service_network_name,
            service_network_arn: a.service_network_arn,
            vpc_id: a.vpc_id,
            private_dns_enabled: a.private_dns_enabled,
            dns_options: a.dns_options,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetServiceNetworkVpcAssociationOutput {
    #[serde(flatten)]
    summary: ServiceNetworkVpcAssociationSummary,
    security_group_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListServiceNetworkVpcAssociationsInput {
    service_network_identifier: Option<String>,
    vpc_identifier: Option<String>,
    max_results: Option<String>,
    next_token: Option<String>,
}

impl ListServiceNetworkVpcAssociationsInput {
    /// The two filters (service network, VPC); at least one must be given.
    fn validate(&self, ctx: &Context) -> Result<(Filter, Filter), ValidationError> {
        let mut c = Checks::new();
        let by_sn = filter_id(
            &mut c,
            ctx,
            ResourceKind::ServiceNetwork,
            "serviceNetworkIdentifier",
            self.service_network_identifier.as_deref(),
        );
        let by_vpc = match self.vpc_identifier.as_deref() {
            None => Filter::Absent,
            Some(v) if check_vpc_id(&mut c, "vpcIdentifier", v) => Filter::Id(v.to_string()),
            Some(_) => Filter::Nothing,
        };
        c.finish()?;
        if by_sn == Filter::Absent && by_vpc == Filter::Absent {
            return Err(ValidationError::other(
                "Either serviceNetworkIdentifier or vpcIdentifier must be specified",
            ));
        }
        Ok((by_sn, by_vpc))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateServiceNetworkVpcAssociationInput {
    service_network_vpc_association_identifier: String,
    security_group_ids: Option<Vec<String>>,
}

impl UpdateServiceNetworkVpcAssociationInput {
    /// The new security groups (1–5, required).
    fn validate(&self) -> Result<Vec<String>, ValidationError> {
        let mut c = Checks::new();
        match &self.security_group_ids {
            Some(sgs) => check_security_groups(&mut c, sgs, 1),
            None => c.missing("securityGroupIds"),
        }
        c.finish()?;
        Ok(self.security_group_ids.clone().unwrap_or_default())
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateServiceNetworkVpcAssociationOutput {
    id: String,
    arn: String,
    status: AssociationStatus,
    created_by: String,
    security_group_ids: Vec<String>,
}

/// The tag giving a VPC association its own ingress address (read by the data plane's
/// `trellis_snapshot::clients`): its value must be an IP address.
pub const INGRESS_ADDRESS_TAG: &str = "trellis:ingress-address";

/// The tag giving what DNS answers an association's clients: IP addresses, comma-separated.
pub const ADVERTISED_ADDRESS_TAG: &str = "trellis:advertised-address";

fn check_ingress_tag(tags: &trellis_model::resources::Tags) -> ApiResult<()> {
    if let Some(v) = tags.get(INGRESS_ADDRESS_TAG)
        && v.parse::<std::net::IpAddr>().is_err()
    {
        return Err(ApiError::validation_field(
            "tags",
            format!("the {INGRESS_ADDRESS_TAG} tag must be an IP address, not {v:?}"),
        ));
    }
    if let Some(v) = tags.get(ADVERTISED_ADDRESS_TAG)
        && v.split(',')
            .any(|a| a.trim().parse::<std::net::IpAddr>().is_err())
    {
        return Err(ApiError::validation_field(
            "tags",
            format!(
                "the {ADVERTISED_ADDRESS_TAG} tag must be IP addresses separated by commas, not {v:?}"
            ),
        ));
    }
    Ok(())
}

pub(crate) async fn create_vpc(
    s: AppState,
    input: CreateServiceNetworkVpcAssociationInput,
    _: Call,
) -> ApiResult<CreateServiceNetworkVpcAssociationOutput> {
    let new = input.validate(&s.ctx)?;
    let idem = Idempotency::new(
        "CreateServiceNetworkVpcAssociation",
        "",
        input.client_token.as_deref(),
        &serde_json::to_value(&input).map_err(|e| ApiError::Internal(e.to_string()))?,
    )?;

    let mut tx = s.store.write().await?;
    if let Some(out) = idem.replay_output(&mut tx, SNVA).await? {
        return Ok(out);
    }
    let (_, sn) = load_doc::<ServiceNetwork>(
        &mut tx,
        &s.ctx,
        ResourceKind::ServiceNetwork,
        "serviceNetworkIdentifier",
        &new.service_network_identifier,
    )
    .await?;
    crate::ec2::require_vpc(&mut tx, "vpcIdentifier", &new.vpc_id).await?;
    crate::ec2::require_security_groups(&mut tx, &new.vpc_id, &new.security_group_ids).await?;
    check_ingress_tag(&input.tags)?;
    // One service network per VPC through associations (a fixed limit, reference §11.1).
    if let Some(existing) = tx
        .list_referencing(SNVA.store_kind(), &new.vpc_id)
        .await?
        .first()
    {
        return Err(ApiError::conflict(
            SNVA,
            &existing.id,
            format!(
                "VPC {} is already associated with service network {} ({}); a VPC can be associated with only one service network",
                new.vpc_id,
                existing.parent.as_deref().unwrap_or("?"),
                existing.id
            ),
        ));
    }
    if tx.count(SNVA.store_kind(), Some(&sn.id)).await? >= VPC_ASSOCIATIONS_QUOTA {
        return Err(ApiError::quota(
            SNVA,
            Some(&sn.id),
            "vpc-associations-per-service-network",
            "VPC associations per service network",
            VPC_ASSOCIATIONS_QUOTA,
        ));
    }
    let id = SNVA.new_id();
    let arn = s.ctx.top_level_arn(SNVA, &id);
    let now = Timestamp::now();
    let assoc = ServiceNetworkVpcAssociation {
        id: id.clone(),
        arn: arn.clone(),
        status: AssociationStatus::Active,
        created_by: s.ctx.account_id.clone(),
        created_at: now,
        last_updated_at: now,
        service_network_id: sn.id.clone(),
        service_network_name: sn.name.clone(),
        service_network_arn: sn.arn.clone(),
        vpc_id: new.vpc_id.clone(),
        security_group_ids: new.security_group_ids,
        private_dns_enabled: new.private_dns_enabled,
        dns_options: new.dns_options,
        tags: input.tags,
    };
    let rec = NewRecord {
        kind: SNVA,
        id: &id,
        parent: Some(&sn.id),
        name: None,
        arn: Some(&arn),
        refs: vec![assoc.vpc_id.clone()],
    }
    .with_body(&assoc)?;
    tx.insert(&rec).await?;
    let out = CreateServiceNetworkVpcAssociationOutput {
        id: assoc.id,
        status: assoc.status,
        arn: assoc.arn,
        created_by: assoc.created_by,
        security_group_ids: assoc.security_group_ids,
        private_dns_enabled: assoc.private_dns_enabled,
        dns_options: assoc.dns_options,
    };
    idem.finish_output(tx, out).await
}

pub(crate) async fn read_vpc(
    s: AppState,
    input: ServiceNetworkVpcAssociationIdentifierInput,
    _: Call,
) -> ApiResult<GetServiceNetworkVpcAssociationOutput> {
    let mut tx = s.store.read().await?;
    let (_, mut a) = load_doc::<ServiceNetworkVpcAssociation>(
        &mut tx,
        &s.ctx,
        SNVA,
        SNVA_IDENTIFIER,
        &input.service_network_vpc_association_identifier,
    )
    .await?;
    Ok(GetServiceNetworkVpcAssociationOutput {
        security_group_ids: std::mem::take(&mut a.security_group_ids),
        summary: a.into(),
    })
}

pub(crate) async fn list_vpc(
    s: AppState,
    input: ListServiceNetworkVpcAssociationsInput,
    _: Call,
) -> ApiResult<ListOutput<ServiceNetworkVpcAssociationSummary>> {
    let (by_sn, by_vpc) = input.validate(&s.ctx)?;
    let page = Page::new(input.max_results.as_deref(), input.next_token.as_deref())?;
    let mut tx = s.store.read().await?;
    let (records, next_token) = page.apply(filtered(&mut tx, SNVA, by_sn, by_vpc).await?);
    let items = records
        .iter()
        .map(|r| doc::<ServiceNetworkVpcAssociation>(r).map(Into::into))
        .collect::<ApiResult<_>>()?;
    Ok(ListOutput { items, next_token })
}

pub(crate) async fn update_vpc(
    s: AppState,
    input: UpdateServiceNetworkVpcAssociationInput,
    _: Call,
) -> ApiResult<UpdateServiceNetworkVpcAssociationOutput> {
    let sgs = input.validate()?;
    let mut tx = s.store.write().await?;
    let (mut rec, mut a) = load_doc::<ServiceNetworkVpcAssociation>(
        &mut tx,
        &s.ctx,
        SNVA,
        SNVA_IDENTIFIER,
        &input.service_network_vpc_association_identifier,
    )
    .await?;
    crate::ec2::require_security_groups(&mut tx, &a.vpc_id, &sgs).await?;
    a.security_group_ids = sgs;
    a.last_updated_at = Timestamp::now();
    set_doc(&mut rec, &a)?;
    tx.update(&rec).await?;
    tx.commit().await?;
    Ok(UpdateServiceNetworkVpcAssociationOutput {
        id: a.id,
        arn: a.arn,
        status: a.status,
        created_by: a.created_by,
        security_group_ids: a.security_group_ids,
    })
}

pub(crate) async fn delete_vpc(
    s: AppState,
    input: ServiceNetworkVpcAssociationIdentifierInput,
    _: Call,
) -> ApiResult<DeleteAssociationOutput> {
    let mut tx = s.store.write().await?;
    let (rec, a) = load_doc::<ServiceNetworkVpcAssociation>(
        &mut tx,
        &s.ctx,
        SNVA,
        SNVA_IDENTIFIER,
        &input.service_network_vpc_association_identifier,
    )
    .await?;
    tx.delete(SNVA.store_kind(), &rec.id).await?;
    tx.commit().await?;
    Ok(DeleteAssociationOutput {
        id: a.id,
        status: DELETING,
        arn: a.arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_json::{Value, json};

    const SN: &str = "sn-0123456789abcdef0";
    const SVC: &str = "svc-0123456789abcdef0";

    #[test]
    fn create_service_association_table() {
        let c = ctx();
        let sn_arn = c.top_level_arn(ResourceKind::ServiceNetwork, SN);
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"serviceIdentifier": SVC, "serviceNetworkIdentifier": SN}),
                vec![],
            ),
            (
                json!({"serviceIdentifier": c.top_level_arn(ResourceKind::Service, SVC), "serviceNetworkIdentifier": sn_arn}),
                vec![],
            ),
            (
                json!({}),
                vec!["serviceIdentifier", "serviceNetworkIdentifier"],
            ),
            (
                json!({"serviceIdentifier": SN, "serviceNetworkIdentifier": SVC}),
                vec!["serviceIdentifier", "serviceNetworkIdentifier"],
            ),
            (
                json!({"serviceIdentifier": "svc-1", "serviceNetworkIdentifier": SN}),
                vec!["serviceIdentifier"],
            ),
            (
                json!({"serviceIdentifier": SVC, "serviceNetworkIdentifier": SN, "tags": {"": "x"}}),
                vec!["tags."],
            ),
        ];
        for (body, want) in cases {
            let input: CreateServiceNetworkServiceAssociationInput =
                serde_json::from_value(body.clone()).unwrap();
            assert_eq!(names(input.validate(&c).map(|_| ())), want, "{body}");
        }
    }

    #[test]
    fn create_vpc_association_table() {
        let c = ctx();
        let ok = |extra: Value| {
            let mut b = json!({"serviceNetworkIdentifier": SN, "vpcIdentifier": "vpc-0123abcd"});
            for (k, v) in extra.as_object().unwrap() {
                b[k] = v.clone();
            }
            b
        };
        let six: Vec<String> = (0..6).map(|i| format!("sg-0000000{i}")).collect();
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (ok(json!({})), vec![]),
            (
                ok(
                    json!({"vpcIdentifier": "vpc-0123456789abcdef0", "securityGroupIds": ["sg-0123abcd", "sg-0123456789abcdef0"]}),
                ),
                vec![],
            ),
            (
                ok(json!({"dnsOptions": {"privateDnsPreference": "ALL_DOMAINS"}})),
                vec![],
            ),
            (
                ok(
                    json!({"dnsOptions": {"privateDnsPreference": "SPECIFIED_DOMAINS_ONLY", "privateDnsSpecifiedDomains": ["*.example.com", "a.b"]}}),
                ),
                vec![],
            ),
            (json!({}), vec!["serviceNetworkIdentifier", "vpcIdentifier"]),
            (
                ok(json!({"vpcIdentifier": "vpc-123"})),
                vec!["vpcIdentifier"],
            ),
            (
                ok(json!({"vpcIdentifier": "vpc-0123ABCD"})),
                vec!["vpcIdentifier"],
            ),
            (
                ok(json!({"vpcIdentifier": format!("vpc-{}", "a".repeat(47))})),
                vec!["vpcIdentifier"],
            ),
            (
                ok(json!({"securityGroupIds": six})),
                vec!["securityGroupIds"],
            ),
            (
                ok(json!({"securityGroupIds": ["sg-1"]})),
                vec!["securityGroupIds[0]"],
            ),
            (
                ok(json!({"securityGroupIds": ["sg-0123abcd", "sg-0123abcd"]})),
                vec!["securityGroupIds[1]"],
            ),
            (
                ok(json!({"dnsOptions": {"privateDnsPreference": "SOME"}})),
                vec!["dnsOptions.privateDnsPreference"],
            ),
            (
                ok(json!({"privateDnsEnabled": false, "dnsOptions": {}})),
                vec!["dnsOptions"],
            ),
            (
                ok(
                    json!({"dnsOptions": {"privateDnsPreference": "ALL_DOMAINS", "privateDnsSpecifiedDomains": ["a.com"]}}),
                ),
                vec!["dnsOptions.privateDnsSpecifiedDomains"],
            ),
            (
                ok(json!({"dnsOptions": {"privateDnsSpecifiedDomains": ["a.com"]}})),
                vec!["dnsOptions.privateDnsSpecifiedDomains"],
            ),
            (
                ok(json!({"dnsOptions": {"privateDnsPreference": "SPECIFIED_DOMAINS_ONLY"}})),
                vec!["dnsOptions.privateDnsSpecifiedDomains"],
            ),
            (
                ok(
                    json!({"dnsOptions": {"privateDnsPreference": "SPECIFIED_DOMAINS_ONLY", "privateDnsSpecifiedDomains": []}}),
                ),
                vec!["dnsOptions.privateDnsSpecifiedDomains"],
            ),
            (
                ok(
                    json!({"dnsOptions": {"privateDnsPreference": "SPECIFIED_DOMAINS_ONLY", "privateDnsSpecifiedDomains": vec!["a.com"; 11]}}),
                ),
                vec!["dnsOptions.privateDnsSpecifiedDomains"],
            ),
            (
                ok(
                    json!({"dnsOptions": {"privateDnsPreference": "SPECIFIED_DOMAINS_ONLY", "privateDnsSpecifiedDomains": ["", "a b"]}}),
                ),
                vec![
                    "dnsOptions.privateDnsSpecifiedDomains[0]",
                    "dnsOptions.privateDnsSpecifiedDomains[1]",
                ],
            ),
            (ok(json!({"tags": {"aws:k": "v"}})), vec!["tags.aws:k"]),
        ];
        for (body, want) in cases {
            let input: CreateServiceNetworkVpcAssociationInput =
                serde_json::from_value(body.clone()).unwrap();
            assert_eq!(names(input.validate(&c).map(|_| ())), want, "{body}");
        }
    }

    #[test]
    fn vpc_association_defaults() {
        let input: CreateServiceNetworkVpcAssociationInput = serde_json::from_value(
            json!({"serviceNetworkIdentifier": SN, "vpcIdentifier": "vpc-0123abcd"}),
        )
        .unwrap();
        let a = input.validate(&ctx()).unwrap();
        assert!(a.private_dns_enabled);
        assert_eq!(
            a.dns_options.unwrap().private_dns_preference.as_deref(),
            Some("VERIFIED_DOMAINS_ONLY")
        );
        assert!(a.security_group_ids.is_empty());
        let input: CreateServiceNetworkVpcAssociationInput = serde_json::from_value(
            json!({"serviceNetworkIdentifier": SN, "vpcIdentifier": "vpc-0123abcd", "privateDnsEnabled": false}),
        )
        .unwrap();
        let a = input.validate(&ctx()).unwrap();
        assert!(!a.private_dns_enabled && a.dns_options.is_none());
    }

    #[test]
    fn update_vpc_association_table() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"securityGroupIds": ["sg-0123abcd"]}), vec![]),
            (json!({}), vec!["securityGroupIds"]),
            (json!({"securityGroupIds": []}), vec!["securityGroupIds"]),
            (
                json!({"securityGroupIds": ["sg-1", "sg-0123abcd"]}),
                vec!["securityGroupIds[0]"],
            ),
        ];
        for (body, want) in cases {
            // The front door merges the URI label into the input.
            let mut merged = body.clone();
            merged["serviceNetworkVpcAssociationIdentifier"] = json!("snva-0123456789abcdef0");
            let input: UpdateServiceNetworkVpcAssociationInput =
                serde_json::from_value(merged).unwrap();
            assert_eq!(names(input.validate().map(|_| ())), want, "{body}");
        }
    }

    #[test]
    fn list_filters_table() {
        let c = ctx();
        let foreign = format!("arn:aws:vpc-lattice:us-west-2:444455556666:servicenetwork/{SN}");
        let cases: Vec<(Option<&str>, Filter, bool)> = vec![
            (None, Filter::Absent, true),
            (Some(SN), Filter::Id(SN.to_string()), true),
            (Some(foreign.as_str()), Filter::Nothing, true),
            (Some("sn-bad"), Filter::Nothing, false),
        ];
        for (value, want, valid) in cases {
            let mut checks = Checks::new();
            let got = filter_id(
                &mut checks,
                &c,
                ResourceKind::ServiceNetwork,
                "serviceNetworkIdentifier",
                value,
            );
            assert_eq!(got, want, "{value:?}");
            assert_eq!(checks.is_empty(), valid, "{value:?}");
        }
    }
}
