//! One health check and the checker task that repeats it: a new connection per check (TCP, then
//! TLS without certificate verification for HTTPS), one `GET` over HTTP/1.1 or HTTP/2, the status
//! compared with the matcher, everything bounded by the check timeout.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Uri, header};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::MissedTickBehavior;
use tokio_rustls::TlsConnector;
use trellis_model::resources::target_group::{
    HealthCheck, HealthCheckProtocolVersion, TargetGroupProtocol,
};

use crate::matcher::Matcher;
use crate::state::{CheckOutcome, Observed, Streak, TargetState, Thresholds, step};

/// The `User-Agent` of every health-check request.
pub const USER_AGENT: &str = "Trellis-HealthChecker/1.0";

/// TLS for HTTPS checks: no certificate verification (Lattice does not validate target
/// certificates), ALPN chosen by the check's protocol version.
static TLS_HTTP1: LazyLock<TlsConnector> = LazyLock::new(|| {
    TlsConnector::from(trellis_tls::insecure_client_config(vec![
        b"http/1.1".to_vec(),
    ]))
});
static TLS_HTTP2: LazyLock<TlsConnector> =
    LazyLock::new(|| TlsConnector::from(trellis_tls::insecure_client_config(vec![b"h2".to_vec()])));

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http,
    Https,
    /// A connect-only check. The API never enables checks with protocol TCP (the model rejects
    /// it), so this only guards against a document written otherwise.
    Tcp,
}

/// Everything one target's checker needs, resolved from the group's `HealthCheck` and the
/// target's address. Two specs compare equal exactly when a running checker can be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CheckSpec {
    /// Where to connect; `None` for targets without an address (every check fails).
    addr: Option<SocketAddr>,
    protocol: Protocol,
    http2: bool,
    /// `None` when the stored path is not a valid request target (every check fails).
    path: Option<PathAndQuery>,
    pub(crate) interval: Duration,
    timeout: Duration,
    pub(crate) thresholds: Thresholds,
    matcher: Matcher,
}

impl CheckSpec {
    /// `traffic_addr` is the target's address with its traffic port; the check's own `port`, when
    /// set, replaces that port.
    pub(crate) fn new(hc: &HealthCheck, traffic_addr: Option<SocketAddr>) -> CheckSpec {
        let addr = traffic_addr.map(|a| match hc.port {
            Some(p) if p != 0 => SocketAddr::new(a.ip(), p),
            _ => a,
        });
        let path = if hc.path.is_empty() { "/" } else { &hc.path };
        CheckSpec {
            addr,
            protocol: match hc.protocol {
                TargetGroupProtocol::Http => Protocol::Http,
                TargetGroupProtocol::Https => Protocol::Https,
                TargetGroupProtocol::Tcp => Protocol::Tcp,
            },
            http2: hc.protocol_version == HealthCheckProtocolVersion::Http2,
            path: PathAndQuery::try_from(path).ok(),
            // The model keeps both within their documented ranges; a zero would spin or always
            // time out, so it is clamped rather than trusted.
            interval: Duration::from_secs(u64::from(hc.interval_seconds.max(1))),
            timeout: Duration::from_secs(u64::from(hc.timeout_seconds.max(1))),
            thresholds: Thresholds {
                healthy: hc.healthy_threshold_count,
                unhealthy: hc.unhealthy_threshold_count,
            },
            matcher: Matcher::parse_or_default(&hc.matcher),
        }
    }
}

/// Runs one check.
pub(crate) async fn probe(spec: &CheckSpec) -> CheckOutcome {
    let Some(addr) = spec.addr else {
        return CheckOutcome::NoAddress;
    };
    match tokio::time::timeout(spec.timeout, exchange(spec, addr)).await {
        Err(_) => CheckOutcome::Timeout,
        Ok(Err(failure)) => failure,
        Ok(Ok(None)) => CheckOutcome::Passed,
        Ok(Ok(Some(status))) if spec.matcher.matches(status) => CheckOutcome::Passed,
        Ok(Ok(Some(status))) => CheckOutcome::UnexpectedStatus(status),
    }
}

/// Connects and asks; `Ok(None)` for a TCP check that connected, `Ok(Some(status))` for an
/// HTTP answer. Every resource (socket, TLS session, hyper connection) lives inside this future,
/// so the timeout dropping it closes the connection.
async fn exchange(spec: &CheckSpec, addr: SocketAddr) -> Result<Option<u16>, CheckOutcome> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|_| CheckOutcome::ConnectFailed)?;
    let _ = tcp.set_nodelay(true);
    let path = spec.path.clone().ok_or(CheckOutcome::ProtocolError)?;
    match spec.protocol {
        Protocol::Tcp => Ok(None),
        Protocol::Http => request(TokioIo::new(tcp), Scheme::HTTP, addr, path, spec.http2)
            .await
            .map(Some),
        Protocol::Https => {
            let connector = if spec.http2 { &*TLS_HTTP2 } else { &*TLS_HTTP1 };
            // Targets are addressed by IP: no SNI is sent and no name is checked.
            let name = ServerName::IpAddress(addr.ip().into());
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|_| CheckOutcome::TlsFailed)?;
            request(TokioIo::new(tls), Scheme::HTTPS, addr, path, spec.http2)
                .await
                .map(Some)
        }
    }
}

/// Sends `GET path` on a fresh connection and returns the response status. The connection is
/// driven here, not on a spawned task, so that nothing outlives the check.
async fn request<T>(
    io: T,
    scheme: Scheme,
    addr: SocketAddr,
    path: PathAndQuery,
    http2: bool,
) -> Result<u16, CheckOutcome>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let authority = addr.to_string();
    let protocol_error = |_| CheckOutcome::ProtocolError;
    if http2 {
        // HTTP/2 carries the target in `:scheme`/`:authority`, taken from an absolute URI.
        let uri = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(protocol_error)?;
        let req = Request::get(uri)
            .header(header::USER_AGENT, USER_AGENT)
            .body(Empty::<Bytes>::new())
            .map_err(protocol_error)?;
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|_| CheckOutcome::ProtocolError)?;
        drive(sender.send_request(req), conn).await
    } else {
        let req = Request::get(Uri::from(path))
            .header(header::HOST, authority)
            .header(header::USER_AGENT, USER_AGENT)
            .body(Empty::<Bytes>::new())
            .map_err(protocol_error)?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|_| CheckOutcome::ProtocolError)?;
        drive(sender.send_request(req), conn).await
    }
}

/// Polls the connection alongside the request until the response head arrives.
async fn drive<S, C, B, E>(send: S, conn: C) -> Result<u16, CheckOutcome>
where
    S: Future<Output = Result<http::Response<B>, hyper::Error>>,
    C: Future<Output = Result<(), E>>,
{
    let mut send = pin!(send);
    let mut conn = pin!(conn);
    let response = tokio::select! {
        biased;
        r = &mut send => r,
        // The connection may finish in the same poll that delivered the response (the target
        // answered and closed): the request future then resolves at once, with the response or
        // with the reason it was lost.
        _ = &mut conn => send.await,
    };
    response
        .map(|r| r.status().as_u16())
        .map_err(|_| CheckOutcome::ProtocolError)
}

/// Labels for logs.
#[derive(Clone, Debug)]
pub(crate) struct Labels {
    pub(crate) target_group: String,
    pub(crate) target: String,
}

/// The checker task of one target: a check every interval (the first at once), at most one at a
/// time; a check that outlasts the interval delays the next instead of overlapping it. Ends when
/// `generation` no longer owns the target's state (it is also aborted by the reconciler).
pub(crate) async fn run_checker(
    state: Arc<TargetState>,
    generation: u64,
    spec: Arc<CheckSpec>,
    labels: Labels,
) {
    let mut ticker = tokio::time::interval(spec.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut streak = Streak::default();
    loop {
        ticker.tick().await;
        // The probe's future (a connect, a TLS handshake and a hyper exchange) is about 8 KiB.
        // Held inline it would make every checker task that size for its whole life, idle
        // between checks almost all of it: 800 MiB at 100,000 targets. Boxed, it exists only
        // while a check runs.
        let outcome = Box::pin(probe(&spec)).await;
        let Some(status) = state.observed_if(generation) else {
            return;
        };
        state.record(outcome);
        let (next, next_streak) = step(status, streak, outcome.passed(), spec.thresholds);
        if next != status {
            if !state.transition(generation, status, next) {
                return;
            }
            log_transition(&labels, status, next, outcome);
        } else if !outcome.passed() {
            tracing::debug!(
                target_group = %labels.target_group,
                target = %labels.target,
                status = status.status().as_str(),
                outcome = ?outcome,
                "health check failed"
            );
        }
        streak = next_streak;
    }
}

fn log_transition(labels: &Labels, from: Observed, to: Observed, outcome: CheckOutcome) {
    let (from, to) = (from.status().as_str(), to.status().as_str());
    if to == Observed::Unhealthy.status().as_str() {
        tracing::warn!(target_group = %labels.target_group, target = %labels.target, from, to, outcome = ?outcome, "target health changed");
    } else {
        tracing::info!(target_group = %labels.target_group, target = %labels.target, from, to, "target health changed");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use trellis_model::resources::target_group::{
        HealthCheck, HealthCheckProtocolVersion, TargetGroupProtocol,
    };

    use super::{CheckSpec, Labels, probe, run_checker};
    use crate::state::{Observed, TargetState};

    /// One checker task lives per checked target, so its future's size is per-target memory
    /// (docs/benchmarks.md, "10,000 services"). The probe is boxed so that an idle checker stays
    /// small however large a check's own state grows.
    #[test]
    fn an_idle_checker_task_is_small() {
        let hc = HealthCheck {
            enabled: true,
            protocol: TargetGroupProtocol::Https,
            protocol_version: HealthCheckProtocolVersion::Http2,
            port: None,
            path: "/".into(),
            interval_seconds: 30,
            timeout_seconds: 5,
            healthy_threshold_count: 5,
            unhealthy_threshold_count: 2,
            matcher: "200".into(),
        };
        let spec = Arc::new(CheckSpec::new(&hc, None));
        let state = Arc::new(TargetState::new(Observed::Initial));
        let labels = Labels {
            target_group: String::new(),
            target: String::new(),
        };
        let checker = run_checker(state, 0, Arc::clone(&spec), labels);
        let probe_size = std::mem::size_of_val(&probe(&spec));
        let checker_size = std::mem::size_of_val(&checker);
        assert!(
            probe_size > 1024,
            "the probe is {probe_size} bytes; if it became small, boxing it is no longer needed"
        );
        assert!(
            checker_size <= 512,
            "an idle checker task is {checker_size} bytes (the probe alone is {probe_size})"
        );
    }
}
