//! The control plane: the VPC Lattice REST-JSON API (`vpc-lattice/2022-11-30`) over the store,
//! plus the admin endpoints (`/_trellis/health` and its `live`, `ready` and `store` parts,
//! `/_trellis/revision`, `/_trellis/operations`, `/metrics`).
//!
//! AWS wire shapes live only in this crate. Each resource family has its own module that maps
//! wire DTOs to model documents; [`error`] is the one place failures become AWS error responses,
//! [`auth`] verifies SigV4 before any handler runs (and bounds request bodies), [`server`]
//! serves the router with bounded connections, and [`wire`] holds pagination, idempotency
//! and lookups shared by all modules.

pub mod access_logs;
pub mod actions;
pub mod associations;
pub mod auth;
pub mod authorize;
pub mod cascade;
pub mod ec2;
pub mod error;
pub mod iam;
pub mod identity;
pub mod listeners;
pub mod operations;
pub mod organizations;
pub mod policies;
pub mod rules;
pub mod server;
pub mod service_networks;
pub mod services;
pub mod session;
pub mod sts;
pub mod tagging;
pub mod tags;
pub mod target_groups;
#[cfg(test)]
mod testutil;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use trellis_model::Context;
use trellis_store::Store;
use trellis_telemetry::{ApiRequestLabels, Metrics};
use trellis_wire::{OperationName, Table, TableBuilder};

pub use error::{ApiError, ApiResult};

/// The root credentials every API call must be signed with.
#[derive(Clone, Debug)]
pub struct RootCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Shared state of every handler. The table gives each handler the state of its caller's account
/// ([`AppState::for_request`]): `ctx` names that account (so every ARN a handler builds carries
/// it) and `store` is scoped to it (so a handler sees and changes that account's records only).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    /// The account this state acts for: the caller's in a handler, the management account's
    /// outside one.
    pub ctx: Context,
    /// The store as that account sees it; unscoped outside a handler.
    pub store: Store,
}

pub struct Inner {
    /// The management account (`--account-id`): the organization's, and the owner of every
    /// record written before accounts existed.
    pub management: Context,
    /// The store as a whole, every account's records (the identity index, the organization).
    pub global_store: Store,
    pub credentials: RootCredentials,
    pub metrics: Arc<Metrics>,
    pub key_cache: trellis_sigv4::KeyCache,
    /// The store revision the data plane has applied (set by whoever follows the change feed).
    pub applied_revision: Arc<AtomicU64>,
    /// Whether the data plane is ready (its first snapshot applied); `/_trellis/health/ready`
    /// answers 503 until it is.
    pub data_plane_ready: Arc<AtomicBool>,
    /// Listener ports the data plane could not bind at the last reconcile;
    /// `/_trellis/health/ready` answers 503 and lists them while any remain. Replaced wholesale by the data plane.
    pub failed_ports: Arc<RwLock<Vec<FailedPort>>>,
    /// The adjustable account-level quotas (Lattice's defaults unless `trellis serve --quota`).
    pub quotas: Quotas,
    /// The SigV4 gate's body limits.
    pub gate: auth::GateLimits,
    /// What the data plane observes about targets, for ListTargets; `None` (no data plane, as
    /// in API-only tests) reports the status implied by configuration alone.
    pub target_health: Option<Arc<dyn target_groups::TargetHealthSource>>,
    /// The IAM users and access keys the gate authenticates, as of the store revision it last
    /// loaded ([`identity::follow`] keeps it current).
    pub identities: Arc<identity::Identities>,
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
        &self.inner
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
        AppState {
            ctx: ctx.clone(),
            store: store.unscoped(),
            inner: Arc::new(Inner {
                management: ctx,
                global_store: store.unscoped(),
                credentials,
                metrics,
                key_cache: trellis_sigv4::KeyCache::default(),
                applied_revision,
                data_plane_ready,
                failed_ports: Arc::default(),
                quotas: Quotas::default(),
                gate: auth::GateLimits::default(),
                target_health: None,
                identities: Arc::default(),
            }),
        }
    }

    /// The state of the account `account`: its context and the store scoped to it.
    pub fn for_account(&self, account: &str) -> AppState {
        AppState {
            inner: Arc::clone(&self.inner),
            ctx: Context {
                account_id: account.to_string(),
                ..self.management.clone()
            },
            store: self.global_store.scoped(account),
        }
    }

    /// The state a handler of this request gets: its caller's account's ([`Self::for_account`]).
    /// The gate puts the caller in every request it lets through; one without (which the
    /// table's authorization refuses before any handler runs) gets an empty scope that sees
    /// no account's records.
    pub fn for_request(&self, extensions: &axum::http::Extensions) -> AppState {
        match extensions.get::<identity::Caller>() {
            Some(caller) => self.for_account(caller.account()),
            None => self.for_account(""),
        }
    }

    /// Replaces the default quotas; call it before the state is cloned.
    pub fn with_quotas(mut self, quotas: Quotas) -> AppState {
        Arc::get_mut(&mut self.inner)
            .expect("with_quotas is called before the state is shared")
            .quotas = quotas;
        self
    }

    /// Installs the data plane's view of target health that ListTargets reports; call it before
    /// the state is cloned.
    pub fn with_target_health(
        mut self,
        source: Arc<dyn target_groups::TargetHealthSource>,
    ) -> AppState {
        Arc::get_mut(&mut self.inner)
            .expect("with_target_health is called before the state is shared")
            .target_health = Some(source);
        self
    }

    /// Replaces the SigV4 gate's default body limits; call it before the state is cloned.
    pub fn with_gate_limits(mut self, gate: auth::GateLimits) -> AppState {
        Arc::get_mut(&mut self.inner)
            .expect("with_gate_limits is called before the state is shared")
            .gate = gate;
        self
    }
}

/// The whole API: Lattice operations behind the SigV4 gate, admin endpoints without it.
pub fn router(state: AppState) -> Router {
    router_with(state, ExtraRoutes::default())
}

/// What another crate serves on the API address: operations of its own services added to the
/// table (behind the SigV4 gate; the Lambda API of `trellis-functions`), and `public` routes
/// without the gate. Each carries its own state.
#[derive(Default)]
pub struct ExtraRoutes {
    pub operations: Vec<Box<dyn FnOnce(TableBuilder) -> TableBuilder + Send>>,
    pub public: Router,
}

/// The operation table: the Lattice operations and `extra`'s.
pub fn table(
    state: &AppState,
    extra: Vec<Box<dyn FnOnce(TableBuilder) -> TableBuilder + Send>>,
) -> Arc<Table> {
    let mut builder = TableBuilder::new(&operations::LATTICE).add_scoped(
        state.clone(),
        operations::operations(),
        AppState::for_request,
    );
    builder = builder.add_scoped(state.clone(), tagging::operations(), AppState::for_request);
    builder = builder.add_scoped(state.clone(), iam::operations(), AppState::for_request);
    builder = builder.add_scoped(state.clone(), sts::operations(), AppState::for_request);
    builder = builder.add_scoped(
        state.clone(),
        organizations::operations(),
        AppState::for_request,
    );
    builder = builder.add_scoped(state.clone(), ec2::operations(), AppState::for_request);
    for add in extra {
        builder = add(builder);
    }
    Arc::new(builder.build())
}

/// [`router`] plus `extra`.
pub fn router_with(state: AppState, extra: ExtraRoutes) -> Router {
    let table = table(&state, extra.operations);
    let signed = table.router().layer(middleware::from_fn_with_state(
        (state.clone(), table.clone()),
        auth::sigv4_gate,
    ));
    let listing = table.markdown();
    Router::new()
        .route("/_trellis/health", get(ready))
        .route("/_trellis/health/live", get(live))
        .route("/_trellis/health/ready", get(ready))
        .route("/_trellis/health/store", get(store_health))
        .route("/_trellis/revision", get(revision))
        .route("/metrics", get(metrics))
        .with_state(state.clone())
        // The operations this server serves, as docs/api.md lists them (an e2e test compares).
        .route(
            "/_trellis/operations",
            get(move || async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/markdown; charset=utf-8",
                    )],
                    listing,
                )
            }),
        )
        .merge(extra.public)
        .merge(signed)
        .layer(middleware::from_fn_with_state(state, observe))
        .layer(middleware::from_fn(trellis_wire::request_id::assign))
}

/// Counts every request by the operation the table resolved it to (`Admin` for Trellis's own
/// endpoints, `Unknown` for anything else) and status, and logs one line per API request
/// (Trellis's own endpoints at debug level): operation, principal, status, duration, request ID.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let path = req.uri().path();
    let admin = path.starts_with("/_trellis/") || path == "/metrics";
    let request_id = trellis_wire::request_id::RequestId::of(req.extensions());
    let resp = next.run(req).await;
    let operation = match resp.extensions().get::<OperationName>() {
        Some(OperationName(name)) => name,
        None if admin => "Admin",
        None => "Unknown",
    };
    let principal = resp
        .extensions()
        .get::<auth::CallerArn>()
        .map_or("-", |c| c.0.as_str());
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if admin {
        tracing::debug!(
            operation,
            status = resp.status().as_u16(),
            duration_ms,
            "admin request"
        );
    } else {
        tracing::info!(
            operation,
            principal,
            status = resp.status().as_u16(),
            duration_ms,
            request_id = %request_id,
            "api request"
        );
    }
    state
        .metrics
        .api_requests
        .get_or_create(&ApiRequestLabels {
            operation: operation.to_string(),
            code: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// How long `/_trellis/health/store` waits for the database before it answers 503: longer than
/// the default acquire timeout, so that a pool that is merely opening a connection is not
/// reported down, and short enough for any probe's timeout.
pub const STORE_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Liveness: the process is up and its API answers. Never consults the store or the data
/// plane, so a restart is never triggered by a database outage.
async fn live() -> Response {
    axum::Json(json!({ "live": true })).into_response()
}

/// Traffic readiness (`/_trellis/health/ready`, and `/_trellis/health` for compatibility): the
/// data plane has applied a snapshot and every listener port is bound. Deliberately not the
/// store: during a database outage the data plane keeps serving its last snapshot, and a load
/// balancer that took every node out for it would turn a control-plane outage into a traffic
/// outage.
async fn ready(State(state): State<AppState>) -> Response {
    let dp = state.data_plane_ready.load(Ordering::Acquire);
    // A poisoned lock only means a writer panicked mid-replace; the list it left is still a list.
    let failed_ports = state
        .failed_ports
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let ready = dp && failed_ports.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "ready": ready,
            "api": true,
            "dataPlane": dp,
            "appliedRevision": state.applied_revision.load(Ordering::Acquire),
            "failedPorts": failed_ports,
        })),
    )
        .into_response()
}

/// Control-plane readiness: the store answers a read within [`STORE_PROBE_TIMEOUT`]. When it
/// does not, API calls that need it are answered 503 ServiceUnavailableException.
async fn store_health(State(state): State<AppState>) -> Response {
    let backend = match state.global_store.backend() {
        trellis_store::Backend::Sqlite => "sqlite",
        trellis_store::Backend::Postgres => "postgres",
    };
    match state.global_store.probe(STORE_PROBE_TIMEOUT).await {
        Ok(revision) => axum::Json(json!({
            "store": true,
            "backend": backend,
            "revision": revision,
        }))
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store health probe failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "store": false,
                    "backend": backend,
                    "error": if e.is_unavailable() { "unavailable" } else { "failed" },
                })),
            )
                .into_response()
        }
    }
}

async fn revision(State(state): State<AppState>) -> ApiResult<Response> {
    let store = state.store.revision().await?;
    let applied = state.applied_revision.load(Ordering::Acquire);
    // `identity`: the revision of the identity index the SigV4 gate authenticates with.
    let identity = state.identities.revision();
    Ok(
        axum::Json(json!({ "store": store, "applied": applied, "identity": identity }))
            .into_response(),
    )
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

#[cfg(test)]
mod health_tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    async fn get(app: &Router, path: &str) -> (StatusCode, serde_json::Value) {
        let resp = app
            .clone()
            .oneshot(
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap())
    }

    /// Liveness never fails; readiness follows the data plane and bound ports, never the store;
    /// the store's endpoint follows the store alone.
    #[tokio::test]
    async fn each_health_endpoint_checks_only_its_own_part() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(&dir.path().join("h.db")))
            .await
            .unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let state = AppState::new(
            testutil::ctx(),
            store.clone(),
            RootCredentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "secret".into(),
            },
            Arc::default(),
            Arc::new(AtomicU64::new(7)),
            ready.clone(),
        );
        let app = router(state.clone());

        assert_eq!(get(&app, "/_trellis/health/live").await.0, StatusCode::OK);
        for path in ["/_trellis/health", "/_trellis/health/ready"] {
            let (status, body) = get(&app, path).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert_eq!(body["dataPlane"], false, "{body}");
        }
        ready.store(true, Ordering::Release);
        let (status, body) = get(&app, "/_trellis/health/ready").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (body["ready"].clone(), body["appliedRevision"].clone()),
            (json!(true), json!(7))
        );
        state.failed_ports.write().unwrap().push(FailedPort {
            port: 8080,
            error: "address in use".into(),
        });
        let (status, body) = get(&app, "/_trellis/health").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["failedPorts"][0]["port"], 8080, "{body}");
        state.failed_ports.write().unwrap().clear();

        let (status, body) = get(&app, "/_trellis/health/store").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["backend"], "sqlite", "{body}");
        store.close().await;
        let (status, body) = get(&app, "/_trellis/health/store").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["store"], false, "{body}");
        // The store being gone is not a reason to take traffic away from this node.
        assert_eq!(get(&app, "/_trellis/health").await.0, StatusCode::OK);
        assert_eq!(get(&app, "/_trellis/health/live").await.0, StatusCode::OK);
    }
}
