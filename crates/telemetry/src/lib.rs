//! Telemetry: tracing setup and the Prometheus metric registry with every metric Trellis exports.
//!
//! Metric names and label sets are a public interface (docs/telemetry.md); label values are
//! bounded (operation names, status codes, resource IDs), never request-derived strings. The
//! data plane's series under Lattice's names are [`lattice`]'s.

pub mod access_log;
pub mod lattice;

use std::sync::Arc;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of `trellis_api_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    /// The AWS operation name (`CreateService`), or `Unknown`.
    pub operation: String,
    /// The HTTP status code of the response.
    pub code: u16,
}

/// Every metric, registered once at start-up.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub api_requests: Family<ApiRequestLabels, Counter>,
    pub store_revision: Gauge<u64, AtomicU64>,
    pub applied_revision: Gauge<u64, AtomicU64>,
    /// `store_revision − applied_revision`, computed at each scrape.
    applied_revision_lag: Gauge<u64, AtomicU64>,
    /// The data plane's series (`trellis_lattice_*`, `trellis_snapshot_build_seconds`).
    pub lattice: Arc<lattice::LatticeMetrics>,
    /// Access-log delivery (`trellis_access_log_*`).
    pub access_log: Arc<access_log::AccessLogMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("trellis");
        let api_requests = Family::<ApiRequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Control-plane API requests by operation and HTTP status",
            api_requests.clone(),
        );
        let store_revision = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "store_revision",
            "Latest committed store revision seen by this node",
            store_revision.clone(),
        );
        let applied_revision = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "applied_revision",
            "Store revision the data plane has applied",
            applied_revision.clone(),
        );
        let applied_revision_lag = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "applied_revision_lag",
            "Store revisions committed but not yet applied by the data plane",
            applied_revision_lag.clone(),
        );
        let lattice = lattice::LatticeMetrics::register(&mut registry);
        let access_log = access_log::AccessLogMetrics::register(&mut registry);
        Metrics {
            registry,
            api_requests,
            store_revision,
            applied_revision,
            applied_revision_lag,
            lattice,
            access_log,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        self.applied_revision_lag.set(
            self.store_revision
                .get()
                .saturating_sub(self.applied_revision.get()),
        );
        self.lattice.refresh();
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Installs the global tracing subscriber: human-readable lines on stderr, filtered by
/// `RUST_LOG` (default `info`), coloured only when stderr is a terminal (a file or a pipe gets
/// plain text that `grep` and log shippers can read).
pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colour only for a terminal: a file or a pipe gets plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // One JSON object per line (timestamp, level, target, fields), for Vector, Fluent Bit,
        // Loki or jq.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// How the server's own log lines are written (`trellis serve --log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
