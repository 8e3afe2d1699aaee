//! The Trellis data plane's L7 proxy: it binds every listener port of the current snapshot on
//! the ingress address, serves HTTP/1.1 and HTTP/2 in clear text and over TLS, runs each
//! request through the pipeline of DESIGN.md's request path, and forwards it over pooled
//! connections to a target.
//!
//! Code map:
//! * `listener` binds ports and accepts under the connection caps of `limits`; `conn` serves
//!   one connection (TLS sniffing, HTTP protocol, handshake deadline, idle timeout, graceful
//!   close); `head` is its header-read deadline.
//! * `pipeline` is the per-request phase function: snapshot → service → listener → limits →
//!   auth → route → target group → target → upstream → response; `auth` is its auth stage
//!   (SigV4/SigV4A, the three policy layers, identity headers) over a [`Credentials`] source.
//! * `upstream` pools connections to targets and performs one exchange; `lambda` serves LAMBDA
//!   target groups through a [`FunctionInvoker`] (buffered, bounded bodies); `body` streams
//!   bodies both ways; `headers` owns every header rule; `error` maps every failure to a
//!   response in one place.
//!
//! Invariants: the request path reads one `Arc<Snapshot>` per request and nothing else of the
//! configuration; it takes no lock across an `.await` (the only locks are the upstream pool's
//! and the port table's, both held for a few pointer moves); bodies are never buffered whole,
//! except a LAMBDA target's request (at most 6 MB, the event needs it whole).
//!
//! Decisions (recorded in docs/decisions.md):
//! * Ports whose listeners are all TLS_PASSTHROUGH are not bound: passthrough is not served yet.
//! * The response timeout: Lattice documents no request timeout besides the 60 s idle timeout
//!   (`TargetDataTimeout` in its logs). Trellis applies the idle timeout to the wait for a
//!   target's response head, counted from the request's last body frame, and answers 504 when
//!   it runs out. A response body that stalls is not timed out.
//! * LAMBDA target groups invoke their function through the [`FunctionInvoker`] set with
//!   [`Proxy::set_invoker`]; without one they answer 500. The proxy depends on
//!   `trellis-functions` for the pure event/response mapping (`lattice`) and the invocation
//!   result types only; the host itself stays behind the trait.
//! * Over TLS, a request whose Host names another served service than the SNI gets 421.
//! * Shutdown waits up to [`SHUTDOWN_GRACE`] for in-flight requests, then closes what is left.
//! * Every client connection is bounded before it carries a request ([`ConnLimits`]): a
//!   handshake deadline, a header-read timeout counted from a head's first byte, and caps on
//!   concurrent connections (total, per port, per client address) enforced by closing excess
//!   connections at accept. The total defaults to a share of the open-file limit that leaves
//!   descriptors for the API, DNS, health checks, upstream connections and the store.
//! * A request body the client breaks (an invalid chunk, a body cut short) is the client's
//!   failure (400, or the connection closed once the response started), whatever the target
//!   exchange reports about it.
//! * Upstream connections are pooled by Trellis itself, not hyper-util's legacy client (see
//!   `upstream` for why): HTTP/1.1 connections per target in a LIFO stack, one shared HTTP/2
//!   connection per target, idle ones closed after [`POOL_IDLE_TIMEOUT`].
//! * HTTP/1.1 ⇄ HTTP/2 conversion goes both ways for every target-group protocol version,
//!   including the combinations Lattice's matrix rejects (an HTTP/1.1 client to an HTTP2 or
//!   GRPC group): converting costs nothing and refusing helps no one.

mod access_log;
mod auth;
mod body;
mod clients;
mod conn;
mod error;
mod head;
mod headers;
mod lambda;
mod limits;
mod listener;
mod metrics;
mod pipeline;
mod rng;
mod upstream;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use trellis_health::Health;
use trellis_snapshot::Snapshot;

pub use auth::{
    Caller, CredentialError, Credentials, INVOKE, IdentityCache, IdentityFields, Layer, Resolved,
    SIGNING_NAME,
};
pub use clients::SOURCE_VPC_TLV;
pub use conn::{
    H2_KEEP_ALIVE_INTERVAL, H2_KEEP_ALIVE_TIMEOUT, H2_MAX_CONCURRENT_STREAMS,
    H2_MAX_LOCAL_ERROR_RESET_STREAMS, H2_MAX_PENDING_ACCEPT_RESET_STREAMS,
};
pub use error::{BodyFault, NON_EXISTENT_SERVICE, ProxyError, Side};
pub use headers::MAX_REQUEST_ID_BYTES;
pub use limits::{
    ConnLimits, DESCRIPTOR_RESERVE, HANDSHAKE_TIMEOUT, HEADER_READ_TIMEOUT,
    MAX_CONNECTIONS_PER_SOURCE, connection_budget, open_file_limit,
};
pub use pipeline::AccessRecord;
pub use trellis_lambda_event::{FunctionInvoker, InvokeFuture};
pub use upstream::{CONNECT_TIMEOUT, MAX_IDLE_PER_TARGET, POOL_IDLE_TIMEOUT};

use conn::Servers;
use headers::TargetHeaderCache;
use listener::{Phase, PortHandle};
use upstream::Upstreams;

/// How long [`Proxy::shutdown`] lets in-flight requests finish before closing their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The addresses every listener port is bound on (`--ingress-address`, IPv4 and IPv6 for a
    /// dual-stack data plane); the VPC associations' own ingress addresses
    /// (`trellis:ingress-address`) are bound too.
    pub ingress: Vec<IpAddr>,
    /// Development mode (`--open-network`): clients no VPC admits still reach every served
    /// service, as before client networks existed.
    pub open_network: bool,
    /// Peers that must start each connection with a PROXY protocol v2 header
    /// (`--proxy-protocol-from`), which gives the client's address and VPC.
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
    /// A client connection with no active request for this long is closed (Lattice: 60 s). Also
    /// the longest a target may take to start its response once the request stopped moving.
    pub idle_timeout: Duration,
    /// Requests whose header fields add up to more bytes than this get 400 (Lattice: 60 KB).
    pub max_header_bytes: usize,
    /// Requests with more header fields than this get 400 (Lattice: 100).
    pub max_headers: usize,
    /// Deadlines and caps on client connections.
    pub limits: ConnLimits,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            ingress: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            open_network: false,
            proxy_protocol_from: Vec::new(),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 60 * 1024,
            max_headers: 100,
            limits: ConnLimits::default(),
        }
    }
}

/// Counters of the proxy's own behaviour (Lattice's per-resource series are the
/// `trellis_lattice_*` metrics, see [`Proxy::set_metrics`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests retried on another target after a connection failure.
    pub retries: u64,
    /// Connections opened to targets.
    pub upstream_connects: u64,
    /// Client connections open now.
    pub client_connections: usize,
    /// Client connections closed at accept because a connection cap was reached.
    pub refused_connections: u64,
    /// Client connections closed at accept because no client network admitted them (or a
    /// trusted sender's PROXY header was invalid).
    pub refused_by_network: u64,
}

/// Everything connections and requests share.
pub(crate) struct Shared {
    pub config: ProxyConfig,
    pub snapshots: Arc<ArcSwap<Snapshot>>,
    pub health: Arc<Health>,
    pub upstreams: Arc<Upstreams>,
    pub tls: TlsAcceptor,
    pub servers: Servers,
    pub target_headers: TargetHeaderCache,
    pub retries: AtomicU64,
    /// Client connections open across every port (the caps' total).
    pub connections: Arc<AtomicUsize>,
    /// Client connections refused at accept.
    pub refused: Arc<AtomicU64>,
    /// Client connections refused because no client network admitted them.
    pub refused_by_network: AtomicU64,
    /// Invokes LAMBDA targets' functions; set once, after construction.
    pub invoker: OnceLock<Arc<dyn FunctionInvoker>>,
    /// Where signed requests' secrets and callers come from; set once, after construction.
    pub credentials: OnceLock<Arc<dyn Credentials>>,
    /// Derived SigV4 signing keys and SigV4A public keys (keyed by the secret too, so a
    /// rotated or deactivated key never verifies through a cached entry).
    pub key_cache: trellis_sigv4::KeyCache,
    /// The data-plane metrics; set once, after construction (none: nothing is counted).
    pub metrics: OnceLock<metrics::Recorder>,
    /// Where access-log records go; set once, after construction (none: no records).
    pub access_logs: OnceLock<Arc<dyn trellis_telemetry::access_log::AccessLogSink>>,
}

/// The proxy: listeners that follow the snapshot, and the request path behind them.
pub struct Proxy {
    shared: Arc<Shared>,
    ports: Mutex<Ports>,
    sweeper: Once,
}

#[derive(Default)]
struct Ports {
    /// By address and port: every listener port is bound on the ingress address and on each
    /// VPC association's own ingress address.
    bound: HashMap<SocketAddr, PortHandle>,
    /// Phase senders of removed ports whose connections may still be finishing.
    draining: Vec<watch::Sender<Phase>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.shared.config)
            .field("ports", &self.ports())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy serving the snapshots published in `snapshots`, balancing with `health`, and
    /// presenting certificates from `tls` on HTTPS listeners. Nothing is bound until
    /// [`Proxy::reconcile`].
    pub fn new(
        config: ProxyConfig,
        snapshots: Arc<ArcSwap<Snapshot>>,
        health: Arc<Health>,
        tls: Arc<trellis_tls::SniResolver>,
    ) -> Arc<Proxy> {
        let servers = Servers::new(config.max_headers, config.max_header_bytes);
        Arc::new(Proxy {
            shared: Arc::new(Shared {
                config,
                snapshots,
                health,
                upstreams: Upstreams::new(),
                tls: TlsAcceptor::from(trellis_tls::server_config(tls)),
                servers,
                target_headers: TargetHeaderCache::default(),
                retries: AtomicU64::new(0),
                connections: Arc::new(AtomicUsize::new(0)),
                refused: Arc::new(AtomicU64::new(0)),
                refused_by_network: AtomicU64::new(0),
                invoker: OnceLock::new(),
                credentials: OnceLock::new(),
                key_cache: trellis_sigv4::KeyCache::default(),
                metrics: OnceLock::new(),
                access_logs: OnceLock::new(),
            }),
            ports: Mutex::new(Ports::default()),
            sweeper: Once::new(),
        })
    }

    /// Gives LAMBDA target groups their function host. Only the first call counts; until it,
    /// requests routed to a LAMBDA group get 500.
    pub fn set_invoker(&self, invoker: Arc<dyn FunctionInvoker>) {
        lambda::set(&self.shared.invoker, invoker);
    }

    /// Gives the auth stage its credentials. Only the first call counts; until it, every signed
    /// request to an `AWS_IAM` service is refused as unrecognised (anonymous ones are still
    /// evaluated).
    pub fn set_credentials(&self, credentials: Arc<dyn Credentials>) {
        if self.shared.credentials.set(credentials).is_err() {
            tracing::warn!("the proxy's credentials were already set; the new ones are ignored");
        }
    }

    /// Gives the proxy the metrics it counts requests, target connections and client TLS
    /// handshakes on (`trellis_lattice_*`). Only the first call counts; until it, nothing is
    /// counted.
    pub fn set_metrics(&self, metrics: Arc<trellis_telemetry::lattice::LatticeMetrics>) {
        if self
            .shared
            .metrics
            .set(metrics::Recorder::new(metrics))
            .is_err()
        {
            tracing::warn!("the proxy's metrics were already set; the new ones are ignored");
        }
    }

    /// Gives the proxy the sink its access-log records go to. Only the first call counts; until
    /// it, no record is written.
    pub fn set_access_log_sink(&self, sink: Arc<dyn trellis_telemetry::access_log::AccessLogSink>) {
        if self.shared.access_logs.set(sink).is_err() {
            tracing::warn!("the proxy's access-log sink was already set; the new one is ignored");
        }
    }

    /// Makes the bound ports those of `snapshot`: binds new ones, stops accepting on removed
    /// ones (their connections finish their in-flight requests and close; a removed port
    /// refuses connections once this returns). Returns the ports that could not be bound; they
    /// are tried again on the next call.
    pub async fn reconcile(self: &Arc<Self>, snapshot: &Snapshot) -> Vec<(u16, std::io::Error)> {
        self.sweeper
            .call_once(|| self.shared.upstreams.spawn_sweeper());
        let ports: BTreeSet<u16> = snapshot
            .ports
            .iter()
            .filter(|(_, protocols)| protocols.http || protocols.https)
            .map(|(port, _)| *port)
            .collect();
        let mut addresses = snapshot.clients.ingress_addresses();
        addresses.extend(self.shared.config.ingress.iter().copied());
        let wanted: BTreeSet<SocketAddr> = addresses
            .iter()
            .flat_map(|ip| ports.iter().map(|port| SocketAddr::new(*ip, *port)))
            .collect();
        let mut failures = Vec::new();
        let mut removed = Vec::new();
        {
            let mut bound = self.lock_ports();
            let gone: Vec<SocketAddr> = bound
                .bound
                .keys()
                .filter(|addr| !wanted.contains(addr))
                .copied()
                .collect();
            for addr in gone {
                if let Some(handle) = bound.bound.remove(&addr) {
                    handle.phase.send_replace(Phase::Draining);
                    removed.push((addr, handle));
                }
            }
            for addr in wanted {
                if bound.bound.contains_key(&addr) {
                    continue;
                }
                match listener::bind(addr) {
                    Ok(socket) => {
                        tracing::info!(%addr, "listening");
                        let handle = listener::spawn(Arc::clone(&self.shared), socket, addr);
                        bound.bound.insert(addr, handle);
                    }
                    Err(error) => {
                        // The data plane logs a port's failure once, not each retry.
                        tracing::debug!(%addr, %error, "cannot bind listener port");
                        failures.push((addr.port(), error));
                    }
                }
            }
            bound.draining.retain(|phase| !phase.is_closed());
        }
        for (addr, handle) in removed {
            // Once the accept loop has ended, its socket is closed.
            let _ = handle.accept.await;
            tracing::info!(%addr, "stopped listening; connections drain");
            self.lock_ports().draining.push(handle.phase);
        }
        failures
    }

    /// Stops accepting on every port, lets in-flight requests finish for up to
    /// [`SHUTDOWN_GRACE`], then closes the connections that remain.
    pub async fn shutdown(&self) {
        let (handles, mut phases) = {
            let mut ports = self.lock_ports();
            let handles: Vec<PortHandle> = ports.bound.drain().map(|(_, h)| h).collect();
            for handle in &handles {
                handle.phase.send_replace(Phase::Draining);
            }
            (handles, std::mem::take(&mut ports.draining))
        };
        for handle in handles {
            let _ = handle.accept.await;
            phases.push(handle.phase);
        }
        let all_closed = async {
            for phase in &phases {
                phase.closed().await;
            }
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, all_closed)
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace over: closing the remaining client connections");
            for phase in &phases {
                phase.send_replace(Phase::Closing);
            }
            let all_closed = async {
                for phase in &phases {
                    phase.closed().await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), all_closed).await;
        }
    }

    /// The ports currently bound (on any address), ascending.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.lock_ports().bound.keys().map(|a| a.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// The addresses and ports currently bound, ascending.
    pub fn bound(&self) -> Vec<SocketAddr> {
        let mut bound: Vec<SocketAddr> = self.lock_ports().bound.keys().copied().collect();
        bound.sort_unstable();
        bound
    }

    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            retries: self.shared.retries.load(Ordering::Relaxed),
            upstream_connects: self.shared.upstreams.connects(),
            client_connections: self.shared.connections.load(Ordering::Relaxed),
            refused_connections: self.shared.refused.load(Ordering::Relaxed),
            refused_by_network: self.shared.refused_by_network.load(Ordering::Relaxed),
        }
    }

    fn lock_ports(&self) -> MutexGuard<'_, Ports> {
        // The port table is consistent after every critical section (no panics inside hold
        // half-done work), so a poisoned lock is as good as a healthy one.
        self.ports.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
