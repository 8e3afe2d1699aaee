//! Service networks: CreateServiceNetwork, GetServiceNetwork, ListServiceNetworks,
//! UpdateServiceNetwork, DeleteServiceNetwork.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use trellis_model::resources::service_network::ServiceNetwork;
use trellis_model::resources::{AuthType, Tags};
use trellis_model::{Checks, ResourceKind, Timestamp};
use trellis_store::Tx;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::wire::{
    Idempotency, NewRecord, Page, QueryParams, body_value, check_new_top_level, doc, list_reply,
    load_doc, no_content, parse_body, reply, set_doc,
};

const KIND: ResourceKind = ResourceKind::ServiceNetwork;
/// Service networks per region (reference §11.1).
pub const QUOTA: u64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/servicenetworks", get(list).post(create))
        .route(
            "/servicenetworks/{id}",
            get(read).patch(update).delete(delete),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    name: Option<String>,
    auth_type: Option<String>,
    sharing_config: Option<SharingConfig>,
    #[serde(default)]
    tags: Tags,
    client_token: Option<String>,
}

#[derive(Deserialize)]
struct SharingConfig {
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateRequest {
    auth_type: Option<String>,
}

/// Checks an `authType` member, returning the parsed value when present and valid.
pub fn check_auth_type(c: &mut Checks, value: Option<&str>) -> Option<AuthType> {
    let v = value?;
    if c.one_of("authType", v, &AuthType::VALUES) {
        AuthType::parse(v)
    } else {
        None
    }
}

fn sharing(sn: &ServiceNetwork) -> Value {
    json!({ "enabled": sn.sharing_enabled })
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

pub(crate) async fn create(State(s): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let raw = body_value(&body)?;
    let req: CreateRequest = parse_body(&body)?;
    let mut c = Checks::new();
    match &req.name {
        Some(n) => {
            c.resource_name("name", n, 3, 63, None);
        }
        None => c.missing("name"),
    }
    let auth_type = check_auth_type(&mut c, req.auth_type.as_deref()).unwrap_or_default();
    c.tags("tags", &req.tags);
    c.finish()?;
    let name = req.name.unwrap_or_default();
    let idem = Idempotency::new(
        "CreateServiceNetwork",
        "",
        req.client_token.as_deref(),
        &raw,
    )?;

    let mut tx = s.store.write().await?;
    if let Some((status, body)) = idem.replay(&mut tx, KIND).await? {
        return Ok(reply(status, body));
    }
    check_new_top_level(
        &mut tx,
        KIND,
        &name,
        s.quotas.service_networks_per_region,
        "service-networks-per-region",
    )
    .await?;
    let id = KIND.new_id();
    let arn = s.ctx.top_level_arn(KIND, &id);
    let now = Timestamp::now();
    let sn = ServiceNetwork {
        id: id.clone(),
        name: name.clone(),
        arn: arn.clone(),
        auth_type,
        sharing_enabled: req.sharing_config.and_then(|c| c.enabled).unwrap_or(false),
        created_at: now,
        last_updated_at: now,
        tags: req.tags,
    };
    let rec = NewRecord {
        kind: KIND,
        id: &id,
        parent: None,
        name: Some(&name),
        arn: Some(&arn),
        refs: vec![],
    }
    .with_body(&sn)?;
    tx.insert(&rec).await?;
    let out = json!({
        "id": sn.id, "name": sn.name, "arn": sn.arn,
        "sharingConfig": sharing(&sn), "authType": sn.auth_type.as_str(),
    });
    idem.finish(tx, StatusCode::CREATED, out).await
}

pub(crate) async fn read(
    State(s): State<AppState>,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.store.read().await?;
    let (_, sn) =
        load_doc::<ServiceNetwork>(&mut tx, &s.ctx, KIND, "serviceNetworkIdentifier", &ident)
            .await?;
    let (services, vpcs) = association_counts(&mut tx, &sn.id).await?;
    Ok(reply(
        StatusCode::OK,
        json!({
            "id": sn.id, "name": sn.name, "arn": sn.arn,
            "createdAt": sn.created_at, "lastUpdatedAt": sn.last_updated_at,
            "authType": sn.auth_type.as_str(), "sharingConfig": sharing(&sn),
            "numberOfAssociatedVPCs": vpcs, "numberOfAssociatedServices": services,
        }),
    ))
}

pub(crate) async fn list(State(s): State<AppState>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let page = Page::from_query(&QueryParams::parse(q.as_deref()))?;
    let mut tx = s.store.read().await?;
    let all = tx.list(KIND.store_kind(), None).await?;
    let (records, next) = page.apply(all);
    let mut items = Vec::with_capacity(records.len());
    for rec in &records {
        let sn: ServiceNetwork = doc(rec)?;
        let (services, vpcs) = association_counts(&mut tx, &sn.id).await?;
        items.push(json!({
            "id": sn.id, "name": sn.name, "arn": sn.arn,
            "createdAt": sn.created_at, "lastUpdatedAt": sn.last_updated_at,
            "numberOfAssociatedVPCs": vpcs, "numberOfAssociatedServices": services,
            "numberOfAssociatedResourceConfigurations": 0,
        }));
    }
    Ok(list_reply(items, next))
}

pub(crate) async fn update(
    State(s): State<AppState>,
    Path(ident): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: UpdateRequest = parse_body(&body)?;
    let mut c = Checks::new();
    if req.auth_type.is_none() {
        c.missing("authType");
    }
    let auth_type = check_auth_type(&mut c, req.auth_type.as_deref());
    c.finish()?;
    let mut tx = s.store.write().await?;
    let (mut rec, mut sn) =
        load_doc::<ServiceNetwork>(&mut tx, &s.ctx, KIND, "serviceNetworkIdentifier", &ident)
            .await?;
    if let Some(a) = auth_type {
        sn.auth_type = a;
    }
    sn.last_updated_at = Timestamp::now();
    set_doc(&mut rec, &sn)?;
    tx.update(&rec).await?;
    tx.commit().await?;
    Ok(reply(
        StatusCode::OK,
        json!({ "id": sn.id, "name": sn.name, "arn": sn.arn, "authType": sn.auth_type.as_str() }),
    ))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Path(ident): Path<String>,
) -> ApiResult<Response> {
    let mut tx = s.store.write().await?;
    let (rec, sn) =
        load_doc::<ServiceNetwork>(&mut tx, &s.ctx, KIND, "serviceNetworkIdentifier", &ident)
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
    Ok(no_content())
}
