//! Service networks: CreateServiceNetwork, GetServiceNetwork, ListServiceNetworks,
//! UpdateServiceNetwork, DeleteServiceNetwork.
//!
//! Each operation's input is a `*Input` type whose `validate` yields the checked values or one
//! `ValidationError` naming every failing member; each output is a `Serialize` type the front
//! door writes in the rest-json shape.

use serde::{Deserialize, Serialize};
use trellis_model::resources::service_network::ServiceNetwork;
use trellis_model::resources::{AuthType, Tags};
use trellis_model::{Checks, ResourceKind, Timestamp, ValidationError};
use trellis_store::Tx;
use trellis_wire::Call;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::wire::{
    Idempotency, ListOutput, NewRecord, Page, check_new_top_level, doc, load_doc, set_doc,
};

const KIND: ResourceKind = ResourceKind::ServiceNetwork;
/// Service networks per region (reference §11.1).
pub const QUOTA: u64 = 50;
/// The identifier label of every operation on one service network.
const IDENTIFIER: &str = "serviceNetworkIdentifier";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceNetworkInput {
    name: Option<String>,
    auth_type: Option<String>,
    sharing_config: Option<SharingConfig>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct SharingConfig {
    #[serde(default)]
    enabled: Option<bool>,
}

/// A checked CreateServiceNetwork.
struct NewServiceNetwork {
    name: String,
    auth_type: AuthType,
    sharing_enabled: bool,
}

impl CreateServiceNetworkInput {
    fn validate(&self) -> Result<NewServiceNetwork, ValidationError> {
        let mut c = Checks::new();
        match &self.name {
            Some(n) => {
                c.resource_name("name", n, 3, 63, None);
            }
            None => c.missing("name"),
        }
        let auth_type = check_auth_type(&mut c, self.auth_type.as_deref()).unwrap_or_default();
        c.tags("tags", &self.tags);
        c.finish()?;
        Ok(NewServiceNetwork {
            name: self.name.clone().unwrap_or_default(),
            auth_type,
            sharing_enabled: self.sharing_config.and_then(|c| c.enabled).unwrap_or(false),
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateServiceNetworkOutput {
    id: String,
    name: String,
    arn: String,
    sharing_config: SharingConfigOut,
    auth_type: AuthType,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SharingConfigOut {
    enabled: bool,
}

/// The input of the operations that name one service network and nothing else.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetworkIdentifierInput {
    service_network_identifier: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetServiceNetworkOutput {
    id: String,
    name: String,
    arn: String,
    created_at: Timestamp,
    last_updated_at: Timestamp,
    auth_type: AuthType,
    sharing_config: SharingConfigOut,
    #[serde(rename = "numberOfAssociatedVPCs")]
    number_of_associated_vpcs: u64,
    number_of_associated_services: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListServiceNetworksInput {
    max_results: Option<String>,
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetworkSummary {
    id: String,
    name: String,
    arn: String,
    created_at: Timestamp,
    last_updated_at: Timestamp,
    #[serde(rename = "numberOfAssociatedVPCs")]
    number_of_associated_vpcs: u64,
    number_of_associated_services: u64,
    number_of_associated_resource_configurations: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateServiceNetworkInput {
    service_network_identifier: String,
    auth_type: Option<String>,
}

impl UpdateServiceNetworkInput {
    fn validate(&self) -> Result<AuthType, ValidationError> {
        let mut c = Checks::new();
        if self.auth_type.is_none() {
            c.missing("authType");
        }
        let auth_type = check_auth_type(&mut c, self.auth_type.as_deref());
        c.finish()?;
        Ok(auth_type.unwrap_or_default())
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateServiceNetworkOutput {
    id: String,
    name: String,
    arn: String,
    auth_type: AuthType,
}

/// DeleteServiceNetwork answers 204 with no members.
#[derive(Debug, Serialize)]
pub struct DeleteServiceNetworkOutput {}

/// Checks an `authType` member, returning the parsed value when present and valid.
pub fn check_auth_type(c: &mut Checks, value: Option<&str>) -> Option<AuthType> {
    let v = value?;
    if c.one_of("authType", v, &AuthType::VALUES) {
        AuthType::parse(v)
    } else {
        None
    }
}

/// Associated services and VPCs, counted from the association records.
async fn association_counts(tx: &mut Tx, sn_id: &str) -> ApiResult<(u64, u64)> {
    let services = tx
        .count(
            ResourceKind::ServiceNetworkServiceAssociation.store_kind(),
            Some(sn_id),
        )
        .await?;
    let vpcs = tx
        .count(
            ResourceKind::ServiceNetworkVpcAssociation.store_kind(),
            Some(sn_id),
        )
        .await?;
    Ok((services, vpcs))
}

pub(crate) async fn create(
    s: AppState,
    input: CreateServiceNetworkInput,
    _: Call,
) -> ApiResult<CreateServiceNetworkOutput> {
    let new = input.validate()?;
    let idem = Idempotency::new(
        "CreateServiceNetwork",
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
        s.quotas.service_networks_per_region,
        "service-networks-per-region",
    )
    .await?;
    let id = KIND.new_id();
    let arn = s.ctx.top_level_arn(KIND, &id);
    let now = Timestamp::now();
    let sn = ServiceNetwork {
        id: id.clone(),
        name: new.name.clone(),
        arn: arn.clone(),
        auth_type: new.auth_type,
        sharing_enabled: new.sharing_enabled,
        created_at: now,
        last_updated_at: now,
        tags: input.tags,
    };
    let rec = NewRecord {
        kind: KIND,
        id: &id,
        parent: None,
        name: Some(&new.name),
        arn: Some(&arn),
        refs: vec![],
    }
    .with_body(&sn)?;
    tx.insert(&rec).await?;
    let out = CreateServiceNetworkOutput {
        id: sn.id,
        name: sn.name,
        arn: sn.arn,
        sharing_config: SharingConfigOut {
            enabled: sn.sharing_enabled,
        },
        auth_type: sn.auth_type,
    };
    idem.finish_output(tx, out).await
}

pub(crate) async fn read(
    s: AppState,
    input: ServiceNetworkIdentifierInput,
    _: Call,
) -> ApiResult<GetServiceNetworkOutput> {
    let mut tx = s.store.read().await?;
    let (_, sn) = load_doc::<ServiceNetwork>(
        &mut tx,
        &s.ctx,
        KIND,
        IDENTIFIER,
        &input.service_network_identifier,
    )
    .await?;
    let (services, vpcs) = association_counts(&mut tx, &sn.id).await?;
    Ok(GetServiceNetworkOutput {
        sharing_config: SharingConfigOut {
            enabled: sn.sharing_enabled,
        },
        id: sn.id,
        name: sn.name,
        arn: sn.arn,
        created_at: sn.created_at,
        last_updated_at: sn.last_updated_at,
        auth_type: sn.auth_type,
        number_of_associated_vpcs: vpcs,
        number_of_associated_services: services,
    })
}

pub(crate) async fn list(
    s: AppState,
    input: ListServiceNetworksInput,
    _: Call,
) -> ApiResult<ListOutput<ServiceNetworkSummary>> {
    let page = Page::new(input.max_results.as_deref(), input.next_token.as_deref())?;
    let mut tx = s.store.read().await?;
    let all = tx.list(KIND.store_kind(), None).await?;
    let (records, next_token) = page.apply(all);
    let mut items = Vec::with_capacity(records.len());
    for rec in &records {
        let sn: ServiceNetwork = doc(rec)?;
        let (services, vpcs) = association_counts(&mut tx, &sn.id).await?;
        items.push(ServiceNetworkSummary {
            id: sn.id,
            name: sn.name,
            arn: sn.arn,
            created_at: sn.created_at,
            last_updated_at: sn.last_updated_at,
            number_of_associated_vpcs: vpcs,
            number_of_associated_services: services,
            number_of_associated_resource_configurations: 0,
        });
    }
    Ok(ListOutput { items, next_token })
}

pub(crate) async fn update(
    s: AppState,
    input: UpdateServiceNetworkInput,
    _: Call,
) -> ApiResult<UpdateServiceNetworkOutput> {
    let auth_type = input.validate()?;
    let mut tx = s.store.write().await?;
    let (mut rec, mut sn) = load_doc::<ServiceNetwork>(
        &mut tx,
        &s.ctx,
        KIND,
        IDENTIFIER,
        &input.service_network_identifier,
    )
    .await?;
    sn.auth_type = auth_type;
    sn.last_updated_at = Timestamp::now();
    set_doc(&mut rec, &sn)?;
    tx.update(&rec).await?;
    tx.commit().await?;
    Ok(UpdateServiceNetworkOutput {
        id: sn.id,
        name: sn.name,
        arn: sn.arn,
        auth_type: sn.auth_type,
    })
}

pub(crate) async fn delete(
    s: AppState,
    input: ServiceNetworkIdentifierInput,
    _: Call,
) -> ApiResult<DeleteServiceNetworkOutput> {
    let mut tx = s.store.write().await?;
    let (rec, sn) = load_doc::<ServiceNetwork>(
        &mut tx,
        &s.ctx,
        KIND,
        IDENTIFIER,
        &input.service_network_identifier,
    )
    .await?;
    let (services, vpcs) = association_counts(&mut tx, &sn.id).await?;
    if services > 0 || vpcs > 0 {
        return Err(ApiError::conflict(
            KIND,
            &sn.id,
            format!(
                "Service network {} still has {services} service association(s) and {vpcs} VPC association(s); delete them first",
                sn.id
            ),
        ));
    }
    crate::cascade::delete_attached(&mut tx, &rec.id).await?;
    tx.delete(KIND.store_kind(), &rec.id).await?;
    tx.commit().await?;
    Ok(DeleteServiceNetworkOutput {})
}
