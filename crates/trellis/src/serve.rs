//! `trellis serve`: validates every flag and the data dir before binding anything, opens the
//! store, binds the API and the DNS server, starts the data plane (which follows the change
//! feed), and shuts down cleanly on SIGINT/SIGTERM: the API stops accepting, the proxy drains,
//! DNS stops, the store closes.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use trellis_api::AppState;
use trellis_model::Context;
use trellis_store::Store;
use trellis_telemetry::Metrics;

use trellis_dataplane::DataPlaneConfig;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A TOML file of flags: each key a flag without its dashes (`api-listen = "0.0.0.0:9460"`,
    /// `open-network = true`, lists for repeatable flags); a flag on the command line overrides
    /// the file's key.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The server's own log on stderr: `text` (coloured only on a terminal) or `json` (one
    /// object per line). `RUST_LOG` sets what is logged (default `info`, with a line per API
    /// request; `RUST_LOG=info,trellis_proxy=debug` adds a line per proxied request).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormatArg,
    /// Directory for the embedded database, credentials and other state.
    #[arg(long, default_value = "./trellis-data")]
    data_dir: PathBuf,
    /// Address of the control-plane API, admin endpoints and metrics (port 0 picks a free one;
    /// the bound address is written to DATA_DIR/api-address).
    #[arg(long, default_value = "127.0.0.1:9460")]
    api_listen: SocketAddr,
    /// Address of the DNS server (UDP and TCP) that answers service names (port 0 picks a free
    /// one; the bound address is written to DATA_DIR/dns-address).
    #[arg(long, default_value = "127.0.0.1:9453")]
    dns_listen: SocketAddr,
    /// Address the listeners' ports are bound on and DNS answers with; repeat it (or separate
    /// with commas) for a dual-stack data plane, e.g. `127.0.0.1,::1` (VPC associations tagged
    /// `trellis:ingress-address` add their own).
    #[arg(long, default_value = "127.0.0.1", value_delimiter = ',')]
    ingress_address: Vec<IpAddr>,
    /// What DNS answers for service names instead of the ingress addresses: a load balancer's
    /// address, or every node's (repeat it or separate with commas). VPC associations tagged
    /// `trellis:advertised-address` override it for their clients.
    #[arg(long, value_delimiter = ',')]
    advertise_address: Vec<IpAddr>,
    /// Development mode: clients in no associated VPC reach every served service. Without it,
    /// only clients a VPC association admits reach the services of its service network.
    #[arg(long)]
    open_network: bool,
    /// A trusted PROXY protocol v2 sender (CIDR or address; repeatable): connections from it
    /// must start with a PROXY v2 header giving the client's address and, optionally, its VPC.
    #[arg(long = "proxy-protocol-from", value_name = "CIDR", value_parser = parse_net)]
    proxy_protocol_from: Vec<ipnet::IpNet>,
    /// An upstream resolver (IP or IP:port, port 53 by default; repeatable, tried in order) the
    /// DNS server forwards names it does not own to, so it can be a machine's resolver.
    #[arg(long = "dns-upstream", value_name = "ADDR", value_parser = parse_resolver)]
    dns_upstream: Vec<SocketAddr>,
    /// Region used in ARNs, DNS names and SigV4 credential scopes.
    #[arg(long, default_value = "us-west-2")]
    region: String,
    /// Account ID that owns every resource.
    #[arg(long, default_value = "111122223333")]
    account_id: String,
    /// Store URL: default SQLite in the data dir; `postgres://…` for PostgreSQL.
    #[arg(long)]
    store: Option<String>,
    /// The key (64 hex digits) that seals the secrets every node of one store shares (the CA's
    /// private key, the code-link key). Default: DATA_DIR/secret.key, created on first start;
    /// give every node of one store the same file.
    #[arg(long, value_name = "FILE")]
    secret_key_file: Option<PathBuf>,
    /// Seconds a deregistered target stays DRAINING (no new requests; in-flight ones finish).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    deregistration_delay: u64,
    /// Seconds a client connection may sit without an active request before it is closed.
    /// Lattice allows 60–600; Trellis also accepts 1–59 so that tests need not wait a minute.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    idle_timeout: u64,
    /// Worker threads of the async runtime (default: one per CPU). Benchmarks pin Trellis to
    /// one core with `--worker-threads 1`.
    #[arg(long, env = "TRELLIS_WORKER_THREADS", value_name = "N")]
    worker_threads: Option<usize>,
    /// Raises (or lowers) an adjustable account quota, as Service Quotas does for Lattice:
    /// `CODE=N` with CODE one of services-per-region, target-groups-per-region,
    /// service-networks-per-region, service-associations-per-service-network. Repeatable.
    #[arg(long = "quota", value_name = "CODE=N")]
    quotas: Vec<String>,
    /// Also write every proxied request's access-log record (Lattice's JSON, one per line) to
    /// this file, appending, or to stdout with `-`: for shipping with Vector or Fluent Bit.
    /// Subscriptions to Trellis-hosted log groups are delivered whether or not this is set.
    #[arg(long, value_name = "PATH|-")]
    access_log_file: Option<String>,
    /// Seconds between rounds that delete log events older than their group's retention.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, hide = true)]
    log_retention_interval: u64,
    #[command(flatten)]
    functions: crate::functions::FunctionArgs,
    /// Data-plane connection deadlines and caps (--handshake-timeout, --header-read-timeout,
    /// --max-connections, --max-connections-per-port, --max-connections-per-source).
    #[command(flatten)]
    conn_limits: crate::conn_limits::ConnLimitArgs,
    /// The API listener's and the SigV4 gate's limits (--api-max-connections, --api-*-timeout,
    /// --api-body-budget-mib).
    #[command(flatten)]
    api_limits: crate::api_limits::ApiLimitArgs,
    /// How long a node waits for its PostgreSQL store (--db-statement-timeout,
    /// --db-lock-timeout, --db-idle-in-transaction-timeout, --db-keepalive,
    /// --db-acquire-timeout).
    #[command(flatten)]
    db_limits: crate::db_limits::DbLimitArgs,
}

/// The longest `--deregistration-delay` (an hour, the longest draining time AWS load balancers
/// accept).
pub const MAX_DEREGISTRATION_DELAY_SECS: u64 = 3600;
/// Lattice's `idleTimeoutSeconds` range is 60–600; Trellis accepts from 1 (see the flag's help).
pub const IDLE_TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=600;
/// Below this `--idle-timeout` is outside Lattice's range, which is worth a warning.
const LATTICE_MIN_IDLE_TIMEOUT_SECS: u64 = 60;

/// How long shutdown waits for the access-log queues to be written.
const ACCESS_LOG_GRACE: Duration = Duration::from_secs(5);

/// The file the bound API address is written to, so tools can find a port picked with `:0`.
pub const API_ADDRESS_FILE: &str = "api-address";
/// The file the bound DNS address is written to (before `api-address`, so whoever waits for the
/// API finds it too).
pub const DNS_ADDRESS_FILE: &str = "dns-address";

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
    if args.deregistration_delay > MAX_DEREGISTRATION_DELAY_SECS {
        bail!(
            "--deregistration-delay {} must be between 0 and {MAX_DEREGISTRATION_DELAY_SECS} seconds",
            args.deregistration_delay
        );
    }
    if !IDLE_TIMEOUT_SECS.contains(&args.idle_timeout) {
        bail!(
            "--idle-timeout {} must be between {} and {} seconds",
            args.idle_timeout,
            IDLE_TIMEOUT_SECS.start(),
            IDLE_TIMEOUT_SECS.end()
        );
    }
    if args.log_retention_interval == 0 {
        bail!("--log-retention-interval must be at least 1 second");
    }
    if args.access_log_file.as_deref() == Some("") {
        bail!("--access-log-file needs a path, or - for stdout");
    }
    if args.worker_threads == Some(0) {
        bail!("--worker-threads must be at least 1");
    }
    quotas(&args.quotas)?;
    args.functions.check(&args.region)?;
    args.conn_limits.check()?;
    args.api_limits.check()?;
    args.db_limits.check()?;
    Ok(())
}

/// The quotas with every `--quota CODE=N` applied.
fn quotas(flags: &[String]) -> anyhow::Result<trellis_api::Quotas> {
    let mut quotas = trellis_api::Quotas::default();
    for flag in flags {
        let parsed = flag
            .split_once('=')
            .and_then(|(code, n)| Some((code, n.parse::<u64>().ok()?)));
        let Some((code, n)) = parsed else {
            bail!("--quota {flag:?} must be CODE=N");
        };
        if !quotas.set(code, n) {
            bail!(
                "--quota {flag:?}: unknown quota code (one of {})",
                trellis_api::Quotas::CODES.join(", ")
            );
        }
    }
    Ok(quotas)
}

/// Creates the data dir if needed (0700) and proves it is writable, returning its absolute path.
/// An existing data dir is made 0700 and its files lose every group and other permission: it
/// holds the credentials, the CA key and the database (function environments included).
/// `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl ServeArgs {
    /// The log format `--log-format` asks for.
    pub fn log_format(&self) -> trellis_telemetry::LogFormat {
        match self.log_format {
            LogFormatArg::Text => trellis_telemetry::LogFormat::Text,
            LogFormatArg::Json => trellis_telemetry::LogFormat::Json,
        }
    }
}

pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot use data dir {}", dir.display()))?;
    let abs = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot use data dir {}", dir.display()))?;
    restrict_tree(&abs).with_context(|| format!("cannot restrict data dir {}", abs.display()))?;
    let probe = abs.join(".write-test");
    std::fs::write(&probe, b"ok")
        .with_context(|| format!("cannot use data dir {}: not writable", abs.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(abs)
}

/// Removes group and other permissions from `dir` and everything below it (symlinks are not
/// followed).
fn restrict_tree(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7700))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            // A file of another user (a log a supervisor opened) cannot be changed by this one;
            // the 0700 data dir keeps others out of it anyway.
            if let Err(e) = restrict_tree(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove group and other permissions");
            }
        }
    }
    Ok(())
}

/// Hardening the server process before it reads any secret: it is not dumpable, so that
/// processes of its own user cannot read its memory or `/proc/<pid>/environ` (and no core dump
/// holds its secrets). (`main` has set umask 077 already: every file and dir it creates is
/// private to its user.)
fn harden_process() -> anyhow::Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("cannot make the server non-dumpable")?;
    Ok(())
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    // In the re-executed image: the secrets the previous one moved out of the environment.
    crate::credentials::receive_hand_off()?;
    check_args(&args)?;
    harden_process()?;
    let data_dir = prepare_data_dir(&args.data_dir)?;
    // Secrets given in the environment are moved out of it (re-executing this binary without
    // them), so that /proc/<pid>/environ does not hold them.
    crate::credentials::hand_off_from_environment(&data_dir)?;
    let credentials = crate::credentials::load_or_create(&data_dir)?;
    if args.idle_timeout < LATTICE_MIN_IDLE_TIMEOUT_SECS {
        tracing::warn!(
            idle_timeout = args.idle_timeout,
            "--idle-timeout is below Lattice's minimum of 60 seconds (meant for tests)"
        );
    }
    let fd_limit = crate::api_limits::raise_fd_limit();
    let wanted = args.api_limits.api_max_connections as u64 + crate::api_limits::FD_RESERVE;
    if fd_limit.is_some_and(|limit| limit < wanted) {
        tracing::warn!(
            fd_limit,
            api_max_connections = args.api_limits.api_max_connections,
            "the open-file limit leaves little room beyond --api-max-connections; raise it (ulimit -Hn)"
        );
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = args.worker_threads {
        builder.worker_threads(threads);
    }
    let runtime = builder.build()?;
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
    let store_options = trellis_store::StoreOptions {
        postgres: args.db_limits.limits(),
        ..trellis_store::StoreOptions::default()
    };
    let store = Store::connect_with(&store_url, store_options)
        .await
        .with_context(|| "cannot open the store".to_string())?;
    let listener = tokio::net::TcpListener::bind(args.api_listen)
        .await
        .with_context(|| format!("cannot listen on --api-listen {}", args.api_listen))?;
    let bound = listener.local_addr()?;
    // Stale address files from an earlier run must not be mistaken for this one's.
    for file in [API_ADDRESS_FILE, DNS_ADDRESS_FILE] {
        let _ = std::fs::remove_file(data_dir.join(file));
    }

    let metrics = Arc::new(Metrics::new());
    // Nothing is applied until the data plane has compiled and reconciled its first snapshot.
    let applied = Arc::new(AtomicU64::new(0));
    let ready = Arc::new(AtomicBool::new(false));
    let ctx = Context {
        partition: "aws".into(),
        region: args.region.clone(),
        account_id: args.account_id.clone(),
    };
    // Records written before accounts existed belong to the management account.
    let adopted = store
        .adopt_unowned(&ctx.account_id, trellis_api::organizations::GLOBAL_KINDS)
        .await
        .context("cannot give existing records to the management account")?;
    if adopted > 0 {
        tracing::info!(
            records = adopted,
            account = %ctx.account_id,
            "records without an account now belong to the management account"
        );
    }
    let state = AppState::new(
        ctx.clone(),
        store.clone(),
        credentials,
        metrics.clone(),
        applied.clone(),
        ready.clone(),
    )
    .with_quotas(quotas(&args.quotas)?)
    .with_gate_limits(args.api_limits.gate());
    // Log events live beside the store, never in it (docs/decisions.md, "Log events").
    let events = trellis_logs::EventStore::open(&data_dir.join("logs").join("events.db"))
        .await
        .context("cannot open the log event store")?;
    let file_sink = match &args.access_log_file {
        Some(path) => Some(
            trellis_logs::FileSink::open(path)
                .with_context(|| format!("cannot open --access-log-file {path}"))?,
        ),
        None => None,
    };
    let access_logs = Arc::new(trellis_logs::Dispatcher::new(
        events.clone(),
        file_sink,
        Arc::clone(&metrics.access_log),
    ));
    let retention = tokio::spawn(trellis_logs::api::enforce_retention(
        store.clone(),
        events.clone(),
        Duration::from_secs(args.log_retention_interval),
    ));
    let logs_state = trellis_logs::LogsState {
        ctx: ctx.clone(),
        store: store.clone(),
        events,
    };
    let status = crate::dataplane::status(
        applied,
        ready,
        state.failed_ports.clone(),
        Arc::clone(&metrics.lattice),
        Some(access_logs.clone()),
    );

    // The CA and the code-link key are the store's, shared by every node (created by the first).
    let secret_key = crate::cluster_secrets::SecretKey::load_or_create(
        args.secret_key_file.as_deref(),
        &data_dir,
    )?;
    let secrets = crate::cluster_secrets::load_or_create(&store, &data_dir, &secret_key).await?;
    let functions = crate::functions::Functions::start(
        &args.functions,
        &data_dir,
        ctx.clone(),
        store.clone(),
        trellis_functions::CodeLinkKey(secrets.code_link_key),
    )?;
    let ca = secrets.ca;
    // The gate and the data plane's auth stage authenticate IAM keys and sessions from an
    // in-memory index of the stored identities: loaded before either serves, then rebuilt at
    // every revision the change feed announces.
    state
        .identities
        .reload(&store)
        .await
        .context("cannot load the IAM identities from the store")?;
    let data_plane = crate::dataplane::start(
        DataPlaneConfig {
            ctx,
            dns_listen: args.dns_listen,
            ingress: args.ingress_address.clone(),
            advertise: args.advertise_address.clone(),
            idle_timeout: Duration::from_secs(args.idle_timeout),
            deregistration_delay: Duration::from_secs(args.deregistration_delay),
            conn_limits: args.conn_limits.limits(),
            open_network: args.open_network,
            proxy_protocol_from: args.proxy_protocol_from.clone(),
            dns_upstreams: args.dns_upstream.clone(),
        },
        store.clone(),
        ca,
        status,
        functions.host(),
        crate::dataplane::credentials(
            state.identities.clone(),
            state.credentials.clone(),
            state.ctx.clone(),
        ),
    )
    .await?;
    let state = state.with_target_health(crate::dataplane::health_source(&data_plane));
    let identity_follower = tokio::spawn(trellis_api::identity::follow(
        state.identities.clone(),
        store.clone(),
    ));
    let dns = data_plane.dns_addr();
    write_address(&data_dir, DNS_ADDRESS_FILE, dns)?;
    write_address(&data_dir, API_ADDRESS_FILE, bound)?;
    if args.open_network {
        tracing::warn!(
            "--open-network (development mode): clients in no associated VPC reach every served service"
        );
    }
    tracing::info!(api = %bound, dns = %dns, ingress = ?args.ingress_address, store = %redact(&store_url), data_dir = %data_dir.display(), "trellis is serving");
    eprintln!("trellis: DNS listening on {dns} (UDP and TCP)");
    eprintln!("trellis: API listening on http://{bound}");

    let mut routes = functions.routes();
    routes
        .operations
        .push(Box::new(move |table: trellis_wire::TableBuilder| {
            // Each handler acts for its caller's account.
            table.add_scoped(
                logs_state,
                trellis_logs::operations(),
                trellis_logs::LogsState::for_request,
            )
        }));
    let app = trellis_api::router_with(state, routes);
    // The API stops accepting first; then the proxy drains, DNS stops and the store closes.
    let served =
        trellis_api::server::serve(listener, app, args.api_limits.server(), shutdown).await;
    tracing::info!("shutting down");
    identity_follower.abort();
    retention.abort();
    data_plane.shutdown().await;
    // The proxy has drained: write what the access-log queues still hold.
    access_logs.close(ACCESS_LOG_GRACE).await;
    functions.shutdown();
    store.close().await;
    Ok(served?)
}

fn write_address(data_dir: &Path, file: &str, addr: SocketAddr) -> anyhow::Result<()> {
    let path = data_dir.join(file);
    std::fs::write(&path, format!("{addr}\n"))
        .with_context(|| format!("cannot write {}", path.display()))
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

/// A resolver's address: `IP:port`, `[IPv6]:port`, or an IP alone (port 53).
fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("{s:?} is not an IP address or IP:port"))
}

/// A CIDR block, or a single address (as a /32 or /128).
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not a CIDR block or an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn check(flags: &[&str]) -> Result<(), String> {
        use clap::Parser as _;
        let parsed = Wrapper::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        check_args(&parsed.args).map_err(|e| e.to_string())
    }

    #[test]
    fn flag_validation_table() {
        // (flags, the flag named in the error, or None when they are accepted)
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], None),
            (
                &["--idle-timeout", "600", "--deregistration-delay", "0"],
                None,
            ),
            (
                &["--idle-timeout", "1", "--deregistration-delay", "3600"],
                None,
            ),
            (&["--idle-timeout", "0"], Some("--idle-timeout")),
            (&["--idle-timeout", "601"], Some("--idle-timeout")),
            (&["--idle-timeout=-5"], Some("--idle-timeout")),
            (
                &["--deregistration-delay", "3601"],
                Some("--deregistration-delay"),
            ),
            (
                &["--deregistration-delay", "soon"],
                Some("--deregistration-delay"),
            ),
            (&["--region", "Nowhere"], Some("--region")),
            (&["--account-id", "1"], Some("--account-id")),
            (&["--store", "mysql://x"], Some("--store")),
            (&["--worker-threads", "1"], None),
            (&["--worker-threads", "0"], Some("--worker-threads")),
            (&["--quota", "services-per-region=10000"], None),
            (
                &[
                    "--quota",
                    "services-per-region=1",
                    "--quota",
                    "service-associations-per-service-network=9",
                ],
                None,
            ),
            (&["--quota", "services-per-region"], Some("--quota")),
            (&["--quota", "services-per-region=-1"], Some("--quota")),
            (&["--quota", "listeners-per-service=9"], Some("--quota")),
            (
                &[
                    "--api-max-connections",
                    "8",
                    "--api-header-read-timeout",
                    "1",
                    "--api-idle-timeout",
                    "3600",
                    "--api-body-read-timeout",
                    "2",
                    "--api-body-budget-mib",
                    "1",
                ],
                None,
            ),
            (
                &["--api-max-connections", "0"],
                Some("--api-max-connections"),
            ),
            (
                &["--api-header-read-timeout", "0"],
                Some("--api-header-read-timeout"),
            ),
            (&["--api-idle-timeout", "3601"], Some("--api-idle-timeout")),
            (
                &["--api-body-read-timeout", "0"],
                Some("--api-body-read-timeout"),
            ),
            (
                &["--api-body-budget-mib", "0"],
                Some("--api-body-budget-mib"),
            ),
            (&["--function-isolation", "none"], None),
            (&["--function-isolation", "sandbox"], None),
            (
                &["--function-isolation", "off"],
                Some("--function-isolation"),
            ),
            (&["--function-pids-max", "4"], Some("--function-pids-max")),
            (&["--function-pids-max", "64"], None),
            (&["--function-uid-base", "0"], Some("--function-uid-base")),
            (
                &["--function-uid-base", "4294930000"],
                Some("--function-uid-base"),
            ),
            (&["--function-uid-base", "100000"], None),
            (&["--function-code-dir", "/var/lib/x"], None),
        ];
        for (flags, error) in cases {
            match (check(flags), error) {
                (Ok(()), None) => {}
                (Err(e), Some(flag)) => assert!(e.contains(flag), "{flags:?}: {e}"),
                (got, want) => panic!("{flags:?}: got {got:?}, want an error naming {want:?}"),
            }
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:pw@host/db"), "postgres://***@host/db");
        assert_eq!(redact("sqlite:///x/y.db"), "sqlite:///x/y.db");
    }
}
