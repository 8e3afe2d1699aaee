//! `trellis serve`: validates every flag and the data dir before binding anything, opens the
//! store, binds the API, follows the change feed, and shuts down cleanly on SIGINT/SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use clap::Args;
use trellis_api::AppState;
use trellis_model::Context;
use trellis_store::Store;
use trellis_telemetry::Metrics;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Directory for the embedded database, credentials and other state.
    #[arg(long, default_value = "./trellis-data")]
    data_dir: PathBuf,
    /// Address of the control-plane API, admin endpoints and metrics (port 0 picks a free one;
    /// the bound address is written to DATA_DIR/api-address).
    #[arg(long, default_value = "127.0.0.1:9460")]
    api_listen: SocketAddr,
    /// Address of the DNS server (UDP and TCP) that answers service names.
    #[arg(long, default_value = "127.0.0.1:9453")]
    dns_listen: SocketAddr,
    /// Address the listeners' ports are bound on.
    #[arg(long, default_value = "127.0.0.1")]
    ingress_address: IpAddr,
    /// Region used in ARNs, DNS names and SigV4 credential scopes.
    #[arg(long, default_value = "us-west-2")]
    region: String,
    /// Account ID that owns every resource.
    #[arg(long, default_value = "111122223333")]
    account_id: String,
    /// Store URL: default SQLite in the data dir; `postgres://…` for PostgreSQL.
    #[arg(long)]
    store: Option<String>,
}

/// The file the bound API address is written to, so tools can find a port picked with `:0`.
pub const API_ADDRESS_FILE: &str = "api-address";

fn check_args(args: &ServeArgs) -> anyhow::Result<()> {
    let region_ok = !args.region.is_empty()
        && args.region.len() <= 32
        && args
            .region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        bail!(
            "--region {:?} is not a region name (like us-west-2)",
            args.region
        );
    }
    if args.account_id.len() != 12 || !args.account_id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--account-id {:?} must be 12 digits", args.account_id);
    }
    if let Some(url) = &args.store
        && !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
    {
        bail!("--store {url:?} must be a postgres:// URL or a sqlite: URL");
    }
    Ok(())
}

/// Creates the data dir if needed and proves it is writable, returning its absolute path.
fn prepare_data_dir(dir: &PathBuf) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot use data dir {}", dir.display()))?;
    let abs = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot use data dir {}", dir.display()))?;
    let probe = abs.join(".write-test");
    std::fs::write(&probe, b"ok")
        .with_context(|| format!("cannot use data dir {}: not writable", abs.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(abs)
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let data_dir = prepare_data_dir(&args.data_dir)?;
    let credentials = crate::credentials::load_or_create(&data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args, data_dir, credentials))
}

async fn serve(
    args: ServeArgs,
    data_dir: PathBuf,
    credentials: trellis_api::RootCredentials,
) -> anyhow::Result<()> {
    let store_url = match &args.store {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", data_dir.join("trellis.db").display()),
    };
    let shutdown = shutdown_signal()?;
    let store = Store::connect(&store_url)
        .await
        .with_context(|| "cannot open the store".to_string())?;
    let listener = tokio::net::TcpListener::bind(args.api_listen)
        .await
        .with_context(|| format!("cannot listen on --api-listen {}", args.api_listen))?;
    let bound = listener.local_addr()?;
    std::fs::write(data_dir.join(API_ADDRESS_FILE), format!("{bound}\n"))
        .with_context(|| format!("cannot write {}", data_dir.join(API_ADDRESS_FILE).display()))?;

    let metrics = Arc::new(Metrics::new());
    let applied = Arc::new(AtomicU64::new(store.revision().await?));
    let ready = Arc::new(AtomicBool::new(false));
    let ctx = Context {
        partition: "aws".into(),
        region: args.region.clone(),
        account_id: args.account_id.clone(),
    };
    let state = AppState::new(
        ctx,
        store.clone(),
        credentials,
        metrics,
        applied.clone(),
        ready.clone(),
    );

    // Until the data plane exists, the follower only records the revisions the change feed
    // publishes; the data plane will take its place and report what it has applied.
    let mut feed = store.subscribe();
    let follower = tokio::spawn({
        let applied = applied.clone();
        async move {
            loop {
                let rev = *feed.borrow_and_update();
                applied.store(rev, Ordering::Release);
                if feed.changed().await.is_err() {
                    break;
                }
            }
        }
    });
    ready.store(true, Ordering::Release);
    tracing::info!(api = %bound, store = %redact(&store_url), data_dir = %data_dir.display(), "trellis is serving");
    eprintln!("trellis: API listening on http://{bound}");

    axum::serve(listener, trellis_api::router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("shutting down");
    follower.abort();
    store.close().await;
    Ok(())
}

/// Hides a password in a store URL before it is logged.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are registered when this is called, not when it
/// is first polled, so a signal that arrives right after start-up is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:pw@host/db"), "postgres://***@host/db");
        assert_eq!(redact("sqlite:///x/y.db"), "sqlite:///x/y.db");
    }
}
