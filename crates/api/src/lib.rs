//! The control plane: the VPC Lattice REST-JSON API (`vpc-lattice/2022-11-30`) over the store,
//! plus the admin endpoints (`/_trellis/health`, `/_trellis/revision`, `/metrics`).
//!
//! AWS wire shapes live only in this crate. Each resource family has its own module that maps
//! wire DTOs to model documents; [`error`] is the one place failures become AWS error responses,
//! [`auth`] verifies SigV4 before any handler runs (and bounds request bodies), [`server`]
//! serves the router with bounded connections, and [`wire`] holds pagination, idempotency
//! and lookups shared by all modules.

pub mod access_logs;
pub mod associations;
pub mod auth;
pub mod cascade;
pub mod error;
pub mod listeners;
pub mod ops;
pub mod policies;
pub mod rules;
pub mod server;
pub mod service_networks;
pub mod services;
pub mod tags;
pub mod target_groups;
#[cfg(test)]
mod testutil;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use trellis_model::Context;
use trellis_store::Store;
use trellis_telemetry::{ApiRequestLabels, Metrics};

pub use error::{ApiError, ApiResult};

/// The root credentials every API call must be signed with.
#[derive(Clone, Debug)]
pub struct RootCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub ctx: Context,
    pub store: Store,
    pub credentials: RootCredentials,
    pub metrics: Arc<Metrics>,
    pub key_cache: trellis_sigv4::KeyCache,
    /// The store revision the data plane has applied (set by whoever follows the change feed).
    pub applied_revision: Arc<AtomicU64>,
    /// Whether the data plane is ready; `/_trellis/health` answers 503 until it is.
    pub data_plane_ready: Arc<AtomicBool>,
    /// Listener ports the data plane could not bind at the last reconcile; `/_trellis/health`
    /// answers 503 and lists them while any remain. Replaced wholesale by the data plane.
    pub failed_ports: Arc<RwLock<Vec<FailedPort>>>,
    /// The adjustable account-level quotas (Lattice's defaults unless `trellis serve --quota`).
    pub quotas: Quotas,
    /// The SigV4 gate's body limits.
    pub gate: auth::GateLimits,
}

/// The account-level quotas Lattice lets an account raise through Service Quotas, with Trellis's
/// defaults. The fixed per-resource limits (listeners per service, rules per listener, targets per
/// group, …) stay constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    pub service_networks_per_region: u64,
    pub services_per_region: u64,
    pub target_groups_per_region: u64,
    pub service_associations_per_service_network: u64,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            service_networks_per_region: service_networks::QUOTA,
            services_per_region: services::QUOTA,
            target_groups_per_region:
                trellis_model::resources::target_group::TARGET_GROUPS_PER_REGION,
            service_associations_per_service_network: associations::SERVICE_ASSOCIATIONS_QUOTA,
        }
    }
}

impl Quotas {
    /// The quota codes `set` accepts (the `quotaCode` of the matching ServiceQuotaExceededException).
    pub const CODES: [&'static str; 4] = [
        "service-networks-per-region",
        "services-per-region",
        "target-groups-per-region",
        "service-associations-per-service-network",
    ];

    /// Sets the quota named by its code; `false` for an unknown code.
    pub fn set(&mut self, code: &str, value: u64) -> bool {
        let slot = match code {
            "service-networks-per-region" => &mut self.service_networks_per_region,
            "services-per-region" => &mut self.services_per_region,
            "target-groups-per-region" => &mut self.target_groups_per_region,
            "service-associations-per-service-network" => {
                &mut self.service_associations_per_service_network
            }
            _ => return false,
        };
        *slot = value;
        true
    }
}

/// A listener port the data plane failed to bind, as `/_trellis/health` reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FailedPort {
    pub port: u16,
    pub error: String,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        ctx: Context,
        store: Store,
        credentials: RootCredentials,
        metrics: Arc<Metrics>,
        applied_revision: Arc<AtomicU64>,
        data_plane_ready: Arc<AtomicBool>,
    ) -> AppState {
        AppState(Arc::new(Inner {
            ctx,
            store,
            credentials,
            metrics,
            key_cache: trellis_sigv4::KeyCache::default(),
            applied_revision,
            data_plane_ready,
            failed_ports: Arc::default(),
            quotas: Quotas::default(),
            gate: auth::GateLimits::default(),
        }))
    }

    /// Replaces the default quotas; call it before the state is cloned.
    pub fn with_quotas(mut self, quotas: Quotas) -> AppState {
        Arc::get_mut(&mut self.0)
            .expect("with_quotas is called before the state is shared")
            .quotas = quotas;
        self
    }

    /// Replaces the SigV4 gate's default body limits; call it before the state is cloned.
    pub fn with_gate_limits(mut self, gate: auth::GateLimits) -> AppState {
        Arc::get_mut(&mut self.0)
            .expect("with_gate_limits is called before the state is shared")
            .gate = gate;
        self
    }
}

/// The whole API: Lattice operations behind the SigV4 gate, admin endpoints without it.
pub fn router(state: AppState) -> Router {
    router_with(state, ExtraRoutes::default())
}

/// Routes another crate serves on the API address: `signed` behind the SigV4 gate (the Lambda
/// API of `trellis-functions`), `public` without it. Each router carries its own state.
#[derive(Default)]
pub struct ExtraRoutes {
    pub signed: Router,
    pub public: Router,
}

/// [`router`] plus `extra`.
pub fn router_with(state: AppState, extra: ExtraRoutes) -> Router {
    let lattice = Router::new()
        .merge(service_networks::routes())
        .merge(services::routes())
        .merge(associations::routes())
        .merge(access_logs::routes())
        .merge(policies::routes())
        .merge(tags::routes())
        .merge(listeners::routes())
        .merge(rules::routes())
        .merge(target_groups::routes())
        .with_state(state.clone())
        .merge(extra.signed)
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::sigv4_gate,
        ));
    Router::new()
        .route("/_trellis/health", get(health))
        .route("/_trellis/revision", get(revision))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        .merge(extra.public)
        .merge(lattice)
        .layer(middleware::from_fn_with_state(state, observe))
}

/// Counts every request by operation and status and stamps `x-amzn-RequestId`.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let operation = ops::operation_name(req.method(), req.uri().path());
    let mut resp = next.run(req).await;
    state
        .metrics
        .api_requests
        .get_or_create(&ApiRequestLabels {
            operation: operation.to_string(),
            code: resp.status().as_u16(),
        })
        .inc();
    let id = uuid_like();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

fn uuid_like() -> String {
    let id = trellis_model::ResourceKind::Rule.new_id();
    let h = &id[5..];
    // 17 random hex chars padded into the familiar 8-4-4-4-12 layout.
    format!(
        "{}-{}-4{}-8{}-{}000000000",
        &h[0..8],
        &h[8..12],
        &h[12..15],
        &h[15..17],
        &h[0..3]
    )
}

async fn unknown_operation(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::Validation(trellis_model::ValidationError {
        message: format!(
            "Trellis does not implement the operation {method} {}: resource gateways, resource configurations, domain verifications and VPC endpoint associations are not supported",
            uri.path()
        ),
        reason: "unknownOperation",
        fields: Vec::new(),
    })
}

async fn health(State(state): State<AppState>) -> Response {
    let store_ok = state.store.revision().await.is_ok();
    let dp = state.data_plane_ready.load(Ordering::Acquire);
    // A poisoned lock only means a writer panicked mid-replace; the list it left is still a list.
    let failed_ports = state
        .failed_ports
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let status = if store_ok && dp && failed_ports.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "api": true,
            "store": store_ok,
            "dataPlane": dp,
            "failedPorts": failed_ports,
        })),
    )
        .into_response()
}

async fn revision(State(state): State<AppState>) -> ApiResult<Response> {
    let store = state.store.revision().await?;
    let applied = state.applied_revision.load(Ordering::Acquire);
    Ok(axum::Json(json!({ "store": store, "applied": applied })).into_response())
}

async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(r) = state.store.revision().await {
        state.metrics.store_revision.set(r);
    }
    state
        .metrics
        .applied_revision
        .set(state.applied_revision.load(Ordering::Acquire));
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}
