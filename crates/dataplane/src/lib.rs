//! The data plane's driver: [`load`] reads a snapshot from the store; the compiler task
//! ([`follow`]) follows the store's change feed, loads and compiles snapshots off the request
//! path and hands each one to the reconcilers (health checks, TLS names, the proxy's listeners,
//! the DNS zone) before reporting its revision as applied; [`DataPlane`] starts all of it with
//! the DNS server and owns the data plane's part of the shutdown order.
//!
//! The only data-plane crate that reads the store: the snapshot, the proxy and what they depend
//! on never reach it (`tests/crate_graph.rs`). It knows nothing of the API either: `trellis
//! serve` hands bind failures to `/_trellis/health` through [`Status::failed_ports`] and the
//! health checker ([`DataPlane::health`]) to ListTargets.
//!
//! Order of one apply (each step sees the new snapshot before the next one starts):
//!
//! 1. `health.sync` — before the snapshot is published, so that a target group a new rule
//!    forwards to already has its targets when the first request routes to it (publishing first
//!    would answer 503 "no target" for that instant).
//! 2. TLS names — before publishing too, so a new HTTPS service's certificate can be issued by
//!    the time a client knows the name.
//! 3. Publish (`ArcSwap` for requests, `watch` for followers).
//! 4. `proxy.reconcile` — binds new listener ports, stops accepting on removed ones (after the
//!    publish, so removed ports never see a snapshot without their service). Ports that fail to
//!    bind are logged once with the cause, listed by `/_trellis/health` (503) and
//!    `trellis status`, and retried with backoff — [`PORT_RETRY_INTERVAL`] doubling to
//!    [`PORT_RETRY_MAX`], from the start again at each configuration change — until they bind
//!    or leave the configuration.
//! 5. The DNS zone — last, so a name resolves only once everything behind it is in place.
//! 6. The applied revision (`/_trellis/revision`, metric) — only now.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use trellis_dns::{DnsServer, Zone};
use trellis_health::{Health, HealthConfig};
use trellis_model::Context;
use trellis_proxy::{FunctionInvoker, Proxy, ProxyConfig};
use trellis_snapshot::{Publisher, Snapshot};
use trellis_store::Store;
use trellis_telemetry::lattice::{LatticeMetrics, TargetHealthSample};
use trellis_tls::{CertificateAuthority, SniResolver};

mod load;

pub use load::{LoadError, load};

/// How often ports that failed to bind are tried again while nothing else changes.
pub const PORT_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// The longest wait between two attempts to bind a failing listener port.
pub const PORT_RETRY_MAX: Duration = Duration::from_secs(60);
/// First and longest wait before a snapshot load that failed in the store is tried again.
const STORE_RETRY_MIN: Duration = Duration::from_millis(100);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);
/// The longest the compiler holds back after a round that writes overtook (see [`follow`]).
const HOLD_MAX: Duration = Duration::from_secs(1);

/// What `trellis serve` passes the data plane.
#[derive(Debug, Clone)]
pub struct DataPlaneConfig {
    pub ctx: Context,
    pub dns_listen: SocketAddr,
    /// The addresses listener ports are bound on (and DNS answers with, unless `advertise`).
    pub ingress: Vec<IpAddr>,
    /// What DNS answers for service names instead of the ingress addresses (IPv4 → A, IPv6 →
    /// AAAA): a load balancer's address, or every node's (`--advertise-address`).
    pub advertise: Vec<IpAddr>,
    pub idle_timeout: Duration,
    pub deregistration_delay: Duration,
    /// Client connection deadlines and caps.
    pub conn_limits: trellis_proxy::ConnLimits,
    /// Development mode: clients no VPC admits reach every service (`--open-network`).
    pub open_network: bool,
    /// Trusted PROXY protocol v2 senders (`--proxy-protocol-from`).
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
    /// Resolvers the DNS server forwards names it does not own to (`--dns-upstream`).
    pub dns_upstreams: Vec<SocketAddr>,
}

/// What the data plane reports through the API's admin endpoints (shared with its `AppState`).
#[derive(Clone)]
pub struct Status {
    /// The revision of the snapshot every reconciler has applied.
    pub applied: Arc<AtomicU64>,
    /// Set once the first snapshot is applied.
    pub ready: Arc<AtomicBool>,
    /// Told the listener ports that failed to bind at each reconcile (the whole list, ordered by
    /// port; empty once every port binds).
    pub failed_ports: FailedPortsReport,
    /// The data-plane metrics (`trellis_lattice_*`, snapshot build time); `None` counts nothing.
    pub metrics: Option<Arc<LatticeMetrics>>,
    /// Where the proxy sends access-log records; `None` writes none.
    pub access_logs: Option<Arc<dyn trellis_telemetry::access_log::AccessLogSink>>,
}

/// Where [`Status`] reports bind failures: a function rather than the API's shared list, so that
/// this crate does not depend on the API.
pub type FailedPortsReport = Arc<dyn Fn(&[FailedPort]) + Send + Sync>;

/// Every registered target's health for `trellis_lattice_target_health`.
fn target_health(health: &Health) -> Vec<TargetHealthSample> {
    health
        .statuses()
        .into_iter()
        .map(|(target_group, target, status)| TargetHealthSample {
            target_group,
            target,
            state: status.as_str(),
        })
        .collect()
}

/// A listener port the data plane failed to bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedPort {
    pub port: u16,
    pub error: String,
}

/// The running data plane; [`DataPlane::shutdown`] stops it in order.
pub struct DataPlane {
    proxy: Arc<Proxy>,
    health: Arc<Health>,
    dns_addr: SocketAddr,
    stop_compiler: watch::Sender<bool>,
    compiler: JoinHandle<()>,
    stop_dns: oneshot::Sender<()>,
    dns: JoinHandle<io::Result<()>>,
}

impl DataPlane {
    /// Binds the DNS server (a bind failure is a startup error), builds the proxy, health checks
    /// and TLS resolver, and starts following the store.
    /// `functions` invokes LAMBDA targets and `credentials` authenticates signed requests; both
    /// are in place before the first listener binds.
    pub async fn start(
        config: DataPlaneConfig,
        store: Store,
        ca: Arc<CertificateAuthority>,
        status: Status,
        functions: Arc<dyn FunctionInvoker>,
        credentials: Arc<dyn trellis_proxy::Credentials>,
    ) -> anyhow::Result<DataPlane> {
        let apex = trellis_model::dns::zone_apex(&config.ctx.region, &config.ctx.account_id);
        // Until the first snapshot, names under the zone are NXDOMAIN rather than REFUSED.
        let (zones, zone_rx) = watch::channel(Arc::new(Zone::new(
            [apex],
            Vec::<(String, Vec<IpAddr>)>::new(),
        )));
        let dns = DnsServer::bind(config.dns_listen, zone_rx)
            .await
            .with_context(|| format!("cannot listen on --dns-listen {}", config.dns_listen))?
            .with_upstreams(config.dns_upstreams.clone());
        let dns_addr = dns.local_addr();
        if let Some(metrics) = &status.metrics {
            let stats = dns.stats();
            metrics.set_dns_source(Box::new(move || stats.counts().to_vec()));
        }
        let (stop_dns, dns_stopped) = oneshot::channel::<()>();
        let dns = tokio::spawn(dns.run(async {
            let _ = dns_stopped.await;
        }));

        let publisher = Publisher::new(Arc::new(Snapshot::empty(config.ctx.clone())));
        let health = Health::new(HealthConfig {
            deregistration_delay: config.deregistration_delay,
        });
        let tls = Arc::new(SniResolver::new(ca));
        let proxy = Proxy::new(
            proxy_config(&config),
            publisher.handle(),
            Arc::clone(&health),
            Arc::clone(&tls),
        );
        proxy.set_invoker(functions);
        proxy.set_credentials(credentials);
        if let Some(sink) = &status.access_logs {
            proxy.set_access_log_sink(Arc::clone(sink));
        }
        if let Some(metrics) = &status.metrics {
            proxy.set_metrics(Arc::clone(metrics));
            // Weak: the metrics must not keep the proxy alive (it holds the metrics).
            let counted = Arc::downgrade(&proxy);
            metrics.set_connection_source(Box::new(move || {
                let Some(stats) = counted.upgrade().map(|p| p.stats()) else {
                    return (0, Vec::new());
                };
                (
                    stats.client_connections as u64,
                    vec![
                        ("limit", stats.refused_connections),
                        ("client_network", stats.refused_by_network),
                    ],
                )
            }));
            let health = Arc::clone(&health);
            metrics.set_target_health_source(Box::new(move || target_health(&health)));
        }

        let reconcilers = Reconcilers {
            publisher,
            proxy: Arc::clone(&proxy),
            health: Arc::clone(&health),
            tls,
            zones,
            dns_answer: if config.advertise.is_empty() {
                config
                    .ingress
                    .iter()
                    .map(|a| dns_answer_address(*a))
                    .collect()
            } else {
                config.advertise.clone()
            },
            open_network: config.open_network,
            failed_ports: status.failed_ports.clone(),
            last_failed: Mutex::default(),
        };
        let (stop_compiler, stop_rx) = watch::channel(false);
        let compiler = tokio::spawn(follow(
            store,
            config.ctx.clone(),
            reconcilers,
            status,
            stop_rx,
        ));
        Ok(DataPlane {
            proxy,
            health,
            dns_addr,
            stop_compiler,
            compiler,
            stop_dns,
            dns,
        })
    }

    /// The address the DNS server is bound to (UDP and TCP).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr
    }

    /// The health checker: what checks and deregistration observed, for ListTargets.
    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
    }

    /// Stops following the store (an apply in progress completes), drains the proxy (listeners
    /// stop accepting, in-flight requests finish, bounded by the proxy), then stops DNS.
    pub async fn shutdown(self) {
        let _ = self.stop_compiler.send(true);
        if let Err(e) = self.compiler.await {
            tracing::error!(error = %e, "the snapshot compiler task failed");
        }
        self.proxy.shutdown().await;
        let _ = self.stop_dns.send(());
        match self.dns.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the DNS server failed"),
            Err(e) => tracing::error!(error = %e, "the DNS server task failed"),
        }
    }
}

fn proxy_config(config: &DataPlaneConfig) -> ProxyConfig {
    ProxyConfig {
        ingress: config.ingress.clone(),
        idle_timeout: config.idle_timeout,
        limits: config.conn_limits.clone(),
        open_network: config.open_network,
        proxy_protocol_from: config.proxy_protocol_from.clone(),
        ..ProxyConfig::default()
    }
}

/// The address DNS answers service names with: the ingress address, or loopback of the same
/// family when the ingress is a wildcard (`0.0.0.0` / `::`), which no client can connect to.
pub fn dns_answer_address(ingress: IpAddr) -> IpAddr {
    match ingress {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// The DNS records of a snapshot: every served name answers `addresses`.
pub fn zone_records(snapshot: &Snapshot, addresses: &[IpAddr]) -> Vec<(String, Vec<IpAddr>)> {
    snapshot
        .dns_names
        .iter()
        .map(|name| (name.clone(), addresses.to_vec()))
        .collect()
}

/// The DNS zone of a snapshot. Each associated VPC's clients (by their addresses) see the names
/// of its service network's services — generated names always, custom domain names as the
/// association's private DNS settings allow — answered with the association's advertised
/// addresses (tag `trellis:advertised-address`), else its own ingress address, else
/// `addresses`. Other clients see every name in development mode (`open`), and none
/// otherwise (NXDOMAIN under the zones).
pub fn dns_zone(snapshot: &Snapshot, addresses: &[IpAddr], open: bool) -> Zone {
    let everyone = if open {
        zone_records(snapshot, addresses)
    } else {
        Vec::new()
    };
    let views = snapshot.clients.vpcs.values().filter_map(|vpc| {
        let association = vpc.association.as_ref()?;
        let answer: Vec<IpAddr> = match (&association.advertised[..], association.ingress) {
            ([], Some(own)) => vec![own],
            ([], None) => addresses.to_vec(),
            (advertised, _) => advertised.to_vec(),
        };
        let records: Vec<(String, Vec<IpAddr>)> = snapshot
            .hosts
            .iter()
            .filter(|(name, svc)| {
                svc.networks.iter().any(|n| n.id == association.network_id)
                    && (**name == svc.dns_name || association.resolves_custom_name(name))
            })
            .map(|(name, _)| (name.clone(), answer.clone()))
            .collect();
        Some((
            vpc.cidrs.clone(),
            Zone::new(snapshot.dns_zones.iter().cloned(), records),
        ))
    });
    Zone::new(snapshot.dns_zones.iter().cloned(), everyone).with_client_views(views)
}

/// The proxy's bind failures as reported, ordered by port.
pub fn failed_ports(failures: &[(u16, io::Error)]) -> Vec<FailedPort> {
    let mut out: Vec<FailedPort> = failures
        .iter()
        .map(|(port, error)| FailedPort {
            port: *port,
            error: error.to_string(),
        })
        .collect();
    out.sort_by_key(|f| f.port);
    out
}

/// The reconcilers the compiler task drives. A trait so that the task's feed handling (coalescing,
/// retries, keeping the last good snapshot) is tested without binding ports.
pub trait Reconcile: Send + Sync + 'static {
    /// Puts a freshly compiled snapshot into service. Returns whether some listener ports failed
    /// to bind (the task then calls [`Reconcile::retry_ports`] periodically).
    fn apply(&self, snapshot: Arc<Snapshot>) -> impl Future<Output = bool> + Send;
    /// Tries to bind the ports that failed, against the snapshot in service. Returns whether some
    /// still fail.
    fn retry_ports(&self) -> impl Future<Output = bool> + Send;
    /// A snapshot was rejected (it does not compile, or its build was interrupted); the one in
    /// service stays.
    fn rejected(&self, error: &LoadError);
}

struct Reconcilers {
    publisher: Publisher,
    proxy: Arc<Proxy>,
    health: Arc<Health>,
    tls: Arc<SniResolver>,
    zones: watch::Sender<Arc<Zone>>,
    dns_answer: Vec<IpAddr>,
    /// Development mode: DNS answers clients in no VPC too.
    open_network: bool,
    failed_ports: FailedPortsReport,
    /// The failures reported last, to log only what changed.
    last_failed: Mutex<Vec<FailedPort>>,
}

impl Reconcilers {
    /// Reports bind failures (for `/_trellis/health`) and logs the ones that are new.
    fn report(&self, failures: &[(u16, io::Error)]) -> bool {
        let now = failed_ports(failures);
        let mut slot = self
            .last_failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for f in &now {
            if !slot.iter().any(|old| old.port == f.port) {
                tracing::error!(port = f.port, error = %f.error, "cannot bind listener port; its listeners are not served until it binds");
            }
        }
        for old in slot.iter() {
            if !now.iter().any(|f| f.port == old.port) {
                tracing::info!(
                    port = old.port,
                    "listener port bound after an earlier failure (or no longer configured)"
                );
            }
        }
        let failing = !now.is_empty();
        (self.failed_ports)(&now);
        *slot = now;
        failing
    }
}

impl Reconcile for Reconcilers {
    async fn apply(&self, snapshot: Arc<Snapshot>) -> bool {
        self.health.sync(&snapshot);
        self.tls.set_names(snapshot.tls_names.iter().cloned());
        self.publisher.publish(Arc::clone(&snapshot));
        let failures = self.proxy.reconcile(&snapshot).await;
        let failing = self.report(&failures);
        self.zones.send_replace(Arc::new(dns_zone(
            &snapshot,
            &self.dns_answer,
            self.open_network,
        )));
        failing
    }

    async fn retry_ports(&self) -> bool {
        let snapshot = self.publisher.current();
        let failures = self.proxy.reconcile(&snapshot).await;
        self.report(&failures)
    }

    fn rejected(&self, error: &LoadError) {
        tracing::error!(error = %error, "configuration snapshot rejected; the last good one stays in service");
    }
}

/// The compiler task: follows the change feed until `stop`, loading and compiling the newest
/// state whenever the feed moves past the applied revision, and applying it.
///
/// Bursts coalesce: while one load/compile/apply runs, any number of commits only mark the feed
/// changed, and the next round reads the newest state once. A store failure is retried with
/// backoff; a compile failure (a document that does not decode) keeps the last good snapshot and
/// waits for the next change.
///
/// A round costs time in proportion to the whole configuration (about 0.15 s at 1,000 services
/// on one core). When writes arrived while a round ran, the next round waits as long as that
/// round took (at most [`HOLD_MAX`]) before it starts: under a stream of writes the compiler then
/// takes at most about half of the CPU it shares with the API, instead of starting a new
/// whole-configuration round after every write, which made loading N services through the API
/// cost O(N²). A change made while the compiler is idle, or after the round it waited for,
/// starts a round at once, so isolated changes are not delayed.
pub async fn follow<R: Reconcile>(
    store: Store,
    ctx: Context,
    reconcile: R,
    status: Status,
    mut stop: watch::Receiver<bool>,
) {
    let mut feed = store.subscribe();
    let mut pending = true;
    let mut ports_failing = false;
    let mut port_backoff = PORT_RETRY_INTERVAL;
    let mut backoff = STORE_RETRY_MIN;
    let mut hold = None;
    loop {
        if *stop.borrow() {
            break;
        }
        if pending {
            if let Some(hold) = hold.take() {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    () = tokio::time::sleep(hold) => {}
                }
            }
            feed.borrow_and_update();
            let started = tokio::time::Instant::now();
            match load(&store, &ctx).await {
                Ok(snapshot) => {
                    pending = false;
                    backoff = STORE_RETRY_MIN;
                    let revision = snapshot.revision;
                    ports_failing = reconcile.apply(Arc::new(snapshot)).await;
                    port_backoff = PORT_RETRY_INTERVAL;
                    status.applied.fetch_max(revision, Ordering::AcqRel);
                    if let Some(metrics) = &status.metrics {
                        metrics
                            .snapshot_build
                            .observe(started.elapsed().as_secs_f64());
                    }
                    status.ready.store(true, Ordering::Release);
                    tracing::debug!(revision, "configuration applied");
                    if *feed.borrow() > revision {
                        hold = Some(started.elapsed().min(HOLD_MAX));
                    }
                }
                Err(LoadError::Store(e)) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot read the configuration from the store");
                }
                Err(e) => {
                    pending = false;
                    reconcile.rejected(&e);
                }
            }
        }
        let wait = if pending {
            let wait = backoff;
            backoff = (backoff * 2).min(STORE_RETRY_MAX);
            Some(wait)
        } else if ports_failing {
            let wait = port_backoff;
            port_backoff = (port_backoff * 2).min(PORT_RETRY_MAX);
            Some(wait)
        } else {
            None
        };
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            changed = feed.changed() => {
                if changed.is_err() {
                    // The store was closed: nothing more will change.
                    break;
                }
                if *feed.borrow_and_update() > status.applied.load(Ordering::Acquire) {
                    pending = true;
                }
            }
            () = sleep_opt(wait) => {
                if !pending {
                    ports_failing = reconcile.retry_ports().await;
                }
            }
        }
    }
}

async fn sleep_opt(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
