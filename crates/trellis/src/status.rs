//! `trellis status`: asks a running server for its three health endpoints — liveness, traffic
//! readiness, store readiness — and prints one line for each. The exit status is 0 only when
//! the server is ready to serve traffic, so scripts can wait on it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The server's API address as a URL (`http://127.0.0.1:9460`).
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    api: Option<String>,
    /// The server's data dir: its API address is read from DATA_DIR/api-address.
    #[arg(long, value_name = "DIR", default_value = "./trellis-data")]
    data_dir: PathBuf,
}

/// Each endpoint must answer within this; the store endpoint bounds its own probe below it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The endpoints asked, with the name each line starts with.
const CHECKS: [(&str, &str); 3] = [
    ("live", "/_trellis/health/live"),
    ("ready", "/_trellis/health/ready"),
    ("store", "/_trellis/health/store"),
];

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let base = match args.api {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            let file = args.data_dir.join(crate::serve::API_ADDRESS_FILE);
            let addr = std::fs::read_to_string(&file).with_context(|| {
                format!(
                    "cannot read {} (is a server running with this --data-dir?)",
                    file.display()
                )
            })?;
            format!("http://{}", addr.trim())
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ready = runtime.block_on(report(&base))?;
    if !ready {
        bail!("{base} is not ready to serve traffic");
    }
    Ok(())
}

/// Prints `name: up|down (status) body` for each endpoint; returns whether the server is ready
/// for traffic.
async fn report(base: &str) -> anyhow::Result<bool> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    println!("server: {base}");
    let mut ready = false;
    for (name, path) in CHECKS {
        let uri: hyper::Uri = format!("{base}{path}")
            .parse()
            .with_context(|| format!("--api {base:?} is not a URL"))?;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let resp = client.get(uri).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        })
        .await;
        match answer {
            Ok(Ok((status, body))) => {
                let up = status.is_success();
                if name == "ready" {
                    ready = up;
                }
                println!(
                    "{name}: {} ({}) {}",
                    if up { "up" } else { "down" },
                    status.as_u16(),
                    String::from_utf8_lossy(&body).trim()
                );
            }
            Ok(Err(e)) => println!("{name}: down (no answer: {e:#})"),
            Err(_) => println!(
                "{name}: down (no answer within {}s)",
                REQUEST_TIMEOUT.as_secs()
            ),
        }
    }
    Ok(ready)
}
