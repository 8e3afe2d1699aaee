//! The data plane's metrics under Lattice's names (reference §9): per service and per target
//! group request counts by status class, request time, timeouts, in-flight requests and
//! connection failures; client TLS handshakes; target health; snapshot build time.
//!
//! Naming (docs/telemetry.md, docs/decisions.md "Metric names"): every series is
//! `trellis_lattice_<dimension>_<name>`, where the dimension is Lattice's (`service`,
//! `target_group`) and the name is the CloudWatch metric in Prometheus's idiom: one
//! `requests_total` counter with a `code` label (`1XX` … `5XX`) stands for `TotalRequestCount`
//! (its sum) and the four `HTTPCode_nXX_Count`s (its `code` values). Label values are resource
//! IDs and fixed strings only, so the number of series is bounded by the configuration.
//!
//! The request path does not build label sets: [`LatticeMetrics::service`] and
//! [`LatticeMetrics::target_group`] hand out a resource's handles once ([`ServiceSeries`],
//! [`TargetGroupSeries`]: clones of the registered metrics, which share their values), and the
//! proxy caches them by resource ID.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `RequestTime` buckets, in milliseconds: from sub-millisecond local targets to the 60 s idle
/// timeout that bounds a target's response.
pub const REQUEST_TIME_BUCKETS_MS: [f64; 16] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    30000.0, 60000.0,
];

/// Snapshot build buckets, in seconds.
pub const SNAPSHOT_BUILD_BUCKETS_S: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The status classes a response counts in (`code` label); index = first digit − 1.
pub const CODE_CLASSES: [&str; 5] = ["1XX", "2XX", "3XX", "4XX", "5XX"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceCodeLabels {
    pub service: String,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetGroupLabels {
    pub target_group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetGroupCodeLabels {
    pub target_group: String,
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetGroupConnectionLabels {
    pub target_group: String,
    /// `HTTP1` or `HTTP2`: the protocol the connection speaks to the target.
    pub protocol: &'static str,
}

/// Labels of `trellis_lattice_target_health`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetHealthLabels {
    pub target_group: String,
    /// The target's key: `id:port` (ListTargets' identity of a registration).
    pub target: String,
    /// ListTargets' `status`: `HEALTHY`, `UNHEALTHY`, `INITIAL`, `UNUSED`, `UNAVAILABLE`,
    /// `DRAINING`.
    pub state: &'static str,
}

/// One target's observed health, as the data plane reports it at scrape time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetHealthSample {
    pub target_group: String,
    pub target: String,
    pub state: &'static str,
}

/// Where DNS query counts come from at scrape time: `(response code, queries so far)`.
pub type DnsSource = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// Where client-connection counts come from at scrape time: (connections open now, [(reason a
/// connection was closed at accept, how many so far)]).
pub type ConnectionSource = Box<dyn Fn() -> (u64, Vec<(&'static str, u64)>) + Send + Sync>;

/// Labels of `trellis_client_connections_refused_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `limit` (a connection cap) or `client_network` (no VPC association admits the client).
    pub reason: &'static str,
}

/// Labels of `trellis_dns_queries_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsLabels {
    /// `NOERROR`, `NXDOMAIN`, `REFUSED` or `OTHER`.
    pub rcode: &'static str,
}

/// Where target health comes from at scrape time (the data plane's health checker).
pub type TargetHealthSource = Box<dyn Fn() -> Vec<TargetHealthSample> + Send + Sync>;

fn request_time() -> Histogram {
    Histogram::new(REQUEST_TIME_BUCKETS_MS)
}

/// The class index of a status code (`None` outside 100–599).
pub fn code_class(status: u16) -> Option<usize> {
    match status {
        100..=599 => Some(usize::from(status / 100 - 1)),
        _ => None,
    }
}

/// The data-plane metrics, registered under `trellis_lattice_`.
pub struct LatticeMetrics {
    service_requests: Family<ServiceCodeLabels, Counter>,
    service_request_time: Family<ServiceLabels, Histogram, fn() -> Histogram>,
    service_request_timeouts: Family<ServiceLabels, Counter>,
    group_requests: Family<TargetGroupCodeLabels, Counter>,
    group_request_time: Family<TargetGroupLabels, Histogram, fn() -> Histogram>,
    group_active_requests: Family<TargetGroupLabels, Gauge>,
    group_connection_errors: Family<TargetGroupLabels, Counter>,
    group_connection_timeouts: Family<TargetGroupLabels, Counter>,
    group_connections: Family<TargetGroupConnectionLabels, Counter>,
    /// Client TLS handshakes that completed (`TotalTLSConnectionHandshakeCount`).
    pub tls_handshakes: Counter,
    /// Client TLS handshakes that failed or missed the handshake deadline
    /// (`TLSConnectionErrorCount`).
    pub tls_connection_errors: Counter,
    target_health: Family<TargetHealthLabels, Gauge>,
    target_health_source: OnceLock<TargetHealthSource>,
    /// Time to load, compile and apply one snapshot (seconds).
    pub snapshot_build: Histogram,
    dns_queries: Family<DnsLabels, Counter>,
    dns_source: OnceLock<DnsSource>,
    client_connections: Gauge,
    client_connections_refused: Family<RefusalLabels, Counter>,
    connection_source: OnceLock<ConnectionSource>,
}

impl std::fmt::Debug for LatticeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatticeMetrics").finish_non_exhaustive()
    }
}

impl LatticeMetrics {
    /// Creates the metrics and registers them in `registry` (a sub-registry prefixed
    /// `lattice`, except the snapshot build time, which is the control plane's own).
    pub(crate) fn register(registry: &mut Registry) -> Arc<LatticeMetrics> {
        let metrics = LatticeMetrics {
            service_requests: Family::default(),
            service_request_time: Family::new_with_constructor(request_time),
            service_request_timeouts: Family::default(),
            group_requests: Family::default(),
            group_request_time: Family::new_with_constructor(request_time),
            group_active_requests: Family::default(),
            group_connection_errors: Family::default(),
            group_connection_timeouts: Family::default(),
            group_connections: Family::default(),
            tls_handshakes: Counter::default(),
            tls_connection_errors: Counter::default(),
            target_health: Family::default(),
            target_health_source: OnceLock::new(),
            snapshot_build: Histogram::new(SNAPSHOT_BUILD_BUCKETS_S),
            dns_queries: Family::default(),
            dns_source: OnceLock::new(),
            client_connections: Gauge::default(),
            client_connections_refused: Family::default(),
            connection_source: OnceLock::new(),
        };
        registry.register(
            "client_connections",
            "Data-plane client connections open now",
            metrics.client_connections.clone(),
        );
        registry.register(
            "client_connections_refused",
            "Data-plane client connections closed at accept, by reason (a connection cap, or no client network admitting the client)",
            metrics.client_connections_refused.clone(),
        );
        registry.register(
            "dns_queries",
            "DNS queries answered by the embedded server, by response code",
            metrics.dns_queries.clone(),
        );
        registry.register(
            "snapshot_build_seconds",
            "Time to load, compile and apply one configuration snapshot",
            metrics.snapshot_build.clone(),
        );
        let lattice = registry.sub_registry_with_prefix("lattice");
        lattice.register(
            "service_requests",
            "Requests to a service by status class (Lattice TotalRequestCount, HTTPCode_nXX_Count)",
            metrics.service_requests.clone(),
        );
        lattice.register(
            "service_request_time_milliseconds",
            "Time from a service's request to its response head (Lattice RequestTime)",
            metrics.service_request_time.clone(),
        );
        lattice.register(
            "service_request_timeouts",
            "Requests to a service that timed out waiting for the target (Lattice RequestTimeoutCount)",
            metrics.service_request_timeouts.clone(),
        );
        lattice.register(
            "target_group_requests",
            "Requests forwarded to a target group by status class (Lattice TotalRequestCount, HTTPCode_nXX_Count)",
            metrics.group_requests.clone(),
        );
        lattice.register(
            "target_group_request_time_milliseconds",
            "Time from a target group's request to its response head (Lattice RequestTime)",
            metrics.group_request_time.clone(),
        );
        lattice.register(
            "target_group_active_requests",
            "Requests to a target group waiting for their response head (Lattice ActiveRequestCount)",
            metrics.group_active_requests.clone(),
        );
        lattice.register(
            "target_group_connection_errors",
            "Failed attempts to reach a target of the group, retried ones included (Lattice ConnectionErrorCount)",
            metrics.group_connection_errors.clone(),
        );
        lattice.register(
            "target_group_connection_timeouts",
            "Connection attempts to a target that timed out (Lattice ConnectionTimeoutCount)",
            metrics.group_connection_timeouts.clone(),
        );
        lattice.register(
            "target_group_connections",
            "Connections opened to the group's targets by protocol (Lattice TotalConnectionCount, HTTP1_ConnectionCount, HTTP2_ConnectionCount)",
            metrics.group_connections.clone(),
        );
        lattice.register(
            "tls_handshakes",
            "Client TLS handshakes completed (Lattice TotalTLSConnectionHandshakeCount)",
            metrics.tls_handshakes.clone(),
        );
        lattice.register(
            "tls_connection_errors",
            "Client TLS handshakes that failed or timed out (Lattice TLSConnectionErrorCount)",
            metrics.tls_connection_errors.clone(),
        );
        lattice.register(
            "target_health",
            "1 for each registered target's current health state (ListTargets status)",
            metrics.target_health.clone(),
        );
        Arc::new(metrics)
    }

    /// A service's handles (its series exist from this call on).
    pub fn service(&self, id: &str) -> ServiceSeries {
        let labels = ServiceLabels {
            service: id.to_owned(),
        };
        ServiceSeries {
            codes: CODE_CLASSES.map(|code| {
                self.service_requests
                    .get_or_create_owned(&ServiceCodeLabels {
                        service: id.to_owned(),
                        code,
                    })
            }),
            time: self.service_request_time.get_or_create_owned(&labels),
            timeouts: self.service_request_timeouts.get_or_create_owned(&labels),
        }
    }

    /// A target group's handles (its series exist from this call on).
    pub fn target_group(&self, id: &str) -> TargetGroupSeries {
        let labels = TargetGroupLabels {
            target_group: id.to_owned(),
        };
        TargetGroupSeries {
            codes: CODE_CLASSES.map(|code| {
                self.group_requests
                    .get_or_create_owned(&TargetGroupCodeLabels {
                        target_group: id.to_owned(),
                        code,
                    })
            }),
            time: self.group_request_time.get_or_create_owned(&labels),
            active: self.group_active_requests.get_or_create_owned(&labels),
            connection_errors: self.group_connection_errors.get_or_create_owned(&labels),
            connection_timeouts: self.group_connection_timeouts.get_or_create_owned(&labels),
            connections: ["HTTP1", "HTTP2"].map(|protocol| {
                self.group_connections
                    .get_or_create_owned(&TargetGroupConnectionLabels {
                        target_group: id.to_owned(),
                        protocol,
                    })
            }),
        }
    }

    /// Sets where target health is read at each scrape. Only the first call counts.
    pub fn set_target_health_source(&self, source: TargetHealthSource) {
        let _ = self.target_health_source.set(source);
    }

    /// Sets where DNS query counts are read at each scrape. Only the first call counts.
    pub fn set_dns_source(&self, source: DnsSource) {
        let _ = self.dns_source.set(source);
    }

    /// Sets where client-connection counts are read at each scrape. Only the first call counts.
    pub fn set_connection_source(&self, source: ConnectionSource) {
        let _ = self.connection_source.set(source);
    }

    /// Replaces the target-health series with the source's current states: a deregistered
    /// target's series disappears, a changed state moves to its new `state` label.
    pub(crate) fn refresh(&self) {
        if let Some(connections) = self.connection_source.get() {
            let (open, refused) = connections();
            self.client_connections
                .set(i64::try_from(open).unwrap_or(i64::MAX));
            for (reason, count) in refused {
                self.client_connections_refused
                    .get_or_create(&RefusalLabels { reason })
                    .inner()
                    .store(count, std::sync::atomic::Ordering::Relaxed);
            }
        }
        if let Some(dns) = self.dns_source.get() {
            for (rcode, queries) in dns() {
                // The server's own counters are the truth; the exported counter mirrors them.
                self.dns_queries
                    .get_or_create(&DnsLabels { rcode })
                    .inner()
                    .store(queries, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let Some(source) = self.target_health_source.get() else {
            return;
        };
        let samples = source();
        self.target_health.clear();
        for s in samples {
            self.target_health
                .get_or_create(&TargetHealthLabels {
                    target_group: s.target_group,
                    target: s.target,
                    state: s.state,
                })
                .set(1);
        }
    }
}

/// A service's metric handles: what the proxy updates per request, without label lookups.
#[derive(Clone, Debug)]
pub struct ServiceSeries {
    codes: [Counter; 5],
    time: Histogram,
    timeouts: Counter,
}

impl ServiceSeries {
    /// Counts one answered request: its status class and its time.
    pub fn request(&self, status: u16, time_ms: f64, timed_out: bool) {
        if let Some(class) = code_class(status) {
            self.codes[class].inc();
        }
        self.time.observe(time_ms);
        if timed_out {
            self.timeouts.inc();
        }
    }
}

/// A target group's metric handles.
#[derive(Clone, Debug)]
pub struct TargetGroupSeries {
    codes: [Counter; 5],
    time: Histogram,
    active: Gauge,
    connection_errors: Counter,
    connection_timeouts: Counter,
    /// Opened connections: HTTP/1.1, HTTP/2.
    connections: [Counter; 2],
}

impl TargetGroupSeries {
    /// Counts one answered request.
    pub fn request(&self, status: u16, time_ms: f64) {
        if let Some(class) = code_class(status) {
            self.codes[class].inc();
        }
        self.time.observe(time_ms);
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn enter(&self) -> ActiveGuard {
        self.active.inc();
        ActiveGuard(self.active.clone())
    }

    /// Counts one connection opened to a target of the group.
    pub fn connection_opened(&self, h2: bool) {
        self.connections[usize::from(h2)].inc();
    }

    /// Counts one failed attempt to reach a target; `timed_out` when the connect timed out.
    pub fn connection_error(&self, timed_out: bool) {
        self.connection_errors.inc();
        if timed_out {
            self.connection_timeouts.inc();
        }
    }
}

/// Keeps one request counted in `ActiveRequestCount` until dropped.
#[derive(Debug)]
pub struct ActiveGuard(Gauge);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> (Registry, Arc<LatticeMetrics>) {
        let mut registry = Registry::with_prefix("trellis");
        let lattice = LatticeMetrics::register(&mut registry);
        (registry, lattice)
    }

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn classes() {
        for (status, class) in [
            (100, Some(0)),
            (200, Some(1)),
            (204, Some(1)),
            (302, Some(2)),
            (404, Some(3)),
            (499, Some(3)),
            (503, Some(4)),
            (599, Some(4)),
            (0, None),
            (600, None),
        ] {
            assert_eq!(code_class(status), class, "{status}");
        }
    }

    #[test]
    fn handles_share_the_registered_series() {
        let (registry, lattice) = metrics();
        let service = lattice.service("svc-0123456789abcdef0");
        service.request(200, 3.0, false);
        service.request(204, 700.0, false);
        service.request(504, 60000.0, true);
        // A second handle for the same service adds to the same series.
        lattice
            .service("svc-0123456789abcdef0")
            .request(404, 1.0, false);
        let group = lattice.target_group("tg-0123456789abcdef0");
        group.request(200, 2.0);
        group.connection_error(true);
        group.connection_error(false);
        group.connection_opened(false);
        group.connection_opened(true);
        group.connection_opened(true);
        let guard = group.enter();
        let out = text(&registry);
        for line in [
            r#"trellis_lattice_service_requests_total{service="svc-0123456789abcdef0",code="2XX"} 2"#,
            r#"trellis_lattice_service_requests_total{service="svc-0123456789abcdef0",code="4XX"} 1"#,
            r#"trellis_lattice_service_requests_total{service="svc-0123456789abcdef0",code="5XX"} 1"#,
            r#"trellis_lattice_service_requests_total{service="svc-0123456789abcdef0",code="3XX"} 0"#,
            r#"trellis_lattice_service_request_time_milliseconds_count{service="svc-0123456789abcdef0"} 4"#,
            r#"trellis_lattice_service_request_time_milliseconds_bucket{le="5.0",service="svc-0123456789abcdef0"} 2"#,
            r#"trellis_lattice_service_request_timeouts_total{service="svc-0123456789abcdef0"} 1"#,
            r#"trellis_lattice_target_group_requests_total{target_group="tg-0123456789abcdef0",code="2XX"} 1"#,
            r#"trellis_lattice_target_group_active_requests{target_group="tg-0123456789abcdef0"} 1"#,
            r#"trellis_lattice_target_group_connection_errors_total{target_group="tg-0123456789abcdef0"} 2"#,
            r#"trellis_lattice_target_group_connection_timeouts_total{target_group="tg-0123456789abcdef0"} 1"#,
            r#"trellis_lattice_target_group_connections_total{target_group="tg-0123456789abcdef0",protocol="HTTP1"} 1"#,
            r#"trellis_lattice_target_group_connections_total{target_group="tg-0123456789abcdef0",protocol="HTTP2"} 2"#,
        ] {
            assert!(out.contains(line), "missing {line} in\n{out}");
        }
        drop(guard);
        assert!(text(&registry).contains(
            r#"trellis_lattice_target_group_active_requests{target_group="tg-0123456789abcdef0"} 0"#
        ));
    }

    #[test]
    fn target_health_follows_the_source() {
        let (registry, lattice) = metrics();
        let state = Arc::new(std::sync::Mutex::new("INITIAL"));
        let source = Arc::clone(&state);
        lattice.set_target_health_source(Box::new(move || {
            vec![TargetHealthSample {
                target_group: "tg-1".into(),
                target: "10.0.0.1:80".into(),
                state: *source.lock().unwrap(),
            }]
        }));
        lattice.refresh();
        assert!(text(&registry).contains(
            r#"trellis_lattice_target_health{target_group="tg-1",target="10.0.0.1:80",state="INITIAL"} 1"#
        ));
        *state.lock().unwrap() = "HEALTHY";
        lattice.set_dns_source(Box::new(|| vec![("NOERROR", 3), ("NXDOMAIN", 1)]));
        lattice.refresh();
        let out = text(&registry);
        assert!(out.contains(r#"state="HEALTHY"} 1"#), "{out}");
        assert!(!out.contains(r#"state="INITIAL""#), "{out}");
        assert!(
            out.contains(r#"trellis_dns_queries_total{rcode="NOERROR"} 3"#),
            "{out}"
        );
        assert!(
            out.contains(r#"trellis_dns_queries_total{rcode="NXDOMAIN"} 1"#),
            "{out}"
        );
    }
}
