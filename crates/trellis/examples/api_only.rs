//! `api_only`: the Lattice API of `trellis serve` over a data dir's store, with no data plane, for
//! loading a large configuration quickly before measuring a real server on it (the 10,000-service
//! figures in docs/benchmarks.md). Not part of the `trellis` binary.
//!
//! The records are written by the same router, handlers and SigV4 gate as `trellis serve`; only the
//! data plane's compiler, which would rebuild the whole configuration while the load runs, is
//! absent. Quotas are unlimited. Writes `DATA_DIR/api-address` like `trellis serve`; root
//! credentials come from `TRELLIS_ROOT_ACCESS_KEY_ID` / `TRELLIS_ROOT_SECRET_ACCESS_KEY`.
//!
//! ```sh
//! cargo run --release -p trellis --example api_only -- DATA_DIR
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use trellis_api::{AppState, Quotas, RootCredentials};
use trellis_model::Context;
use trellis_store::Store;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let data_dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: api_only DATA_DIR"))?;
    let data_dir = std::path::PathBuf::from(data_dir);
    std::fs::create_dir_all(&data_dir)?;
    let credentials = RootCredentials {
        access_key_id: std::env::var("TRELLIS_ROOT_ACCESS_KEY_ID")?,
        secret_access_key: std::env::var("TRELLIS_ROOT_SECRET_ACCESS_KEY")?,
    };
    let store = Store::connect(&format!(
        "sqlite://{}",
        data_dir.join("trellis.db").display()
    ))
    .await?;
    let ctx = Context {
        partition: "aws".into(),
        region: "us-west-2".into(),
        account_id: "111122223333".into(),
    };
    let unlimited = Quotas {
        service_networks_per_region: u64::MAX,
        services_per_region: u64::MAX,
        target_groups_per_region: u64::MAX,
        service_associations_per_service_network: u64::MAX,
    };
    let state = AppState::new(
        ctx,
        store.clone(),
        credentials,
        Arc::new(trellis_telemetry::Metrics::new()),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(true)),
    )
    .with_quotas(unlimited);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    std::fs::write(
        data_dir.join("api-address"),
        listener.local_addr()?.to_string(),
    )?;
    axum::serve(listener, trellis_api::router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    store.close().await;
    Ok(())
}
