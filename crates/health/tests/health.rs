//! Health checks, balancing and draining against real backends on ephemeral loopback ports.
//!
//! Every test runs on tokio's paused clock: time moves only when a test calls `advance`, so a
//! check interval or timeout elapses exactly when the test says so. Tests wait for observable
//! state (check counts, statuses, backend request logs) with bounded `yield_now` loops, which
//! keep the runtime busy and so never let the paused clock jump forward on its own.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::advance;
use tokio_rustls::TlsAcceptor;
use trellis_health::{
    CheckOutcome, Health, HealthConfig, InFlight, REASON_HEALTH_CHECK_FAILED, USER_AGENT,
};
use trellis_model::Context;
use trellis_model::resources::target_group::{
    HealthCheck, HealthCheckProtocolVersion, TargetGroupConfig, TargetGroupProtocol,
    TargetGroupType, TargetStatus,
};
use trellis_snapshot::{Snapshot, TargetEntry, TargetGroupEntry};

const INTERVAL: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(2);
const TG: &str = "tg-0123456789abcdef0";

// ---------------------------------------------------------------------------------------------
// A test backend whose answer can be flipped: a status code, or 0 to stall forever.

#[derive(Clone, Debug)]
struct Seen {
    version: Version,
    path: String,
    user_agent: Option<String>,
}

#[derive(Default)]
struct BackendState {
    status: AtomicU16,
    connections: AtomicUsize,
    requests: Mutex<Vec<Seen>>,
}

#[derive(Clone)]
struct Backend {
    addr: SocketAddr,
    state: Arc<BackendState>,
}

impl Backend {
    async fn plain(status: u16) -> Backend {
        Backend::start(status, None).await
    }

    async fn tls(status: u16) -> Backend {
        Backend::start(status, Some(tls_acceptor())).await
    }

    async fn start(status: u16, tls: Option<TlsAcceptor>) -> Backend {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(BackendState::default());
        state.status.store(status, Ordering::SeqCst);
        let st = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                st.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(tcp, tls.clone(), Arc::clone(&st)));
            }
        });
        Backend { addr, state }
    }

    fn set(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    fn requests(&self) -> Vec<Seen> {
        self.state.requests.lock().unwrap().clone()
    }

    fn hits(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

async fn serve(tcp: TcpStream, tls: Option<TlsAcceptor>, state: Arc<BackendState>) {
    let service = service_fn(move |req: Request<Incoming>| {
        let state = Arc::clone(&state);
        async move {
            state.requests.lock().unwrap().push(Seen {
                version: req.version(),
                path: req.uri().path().to_owned(),
                user_agent: req
                    .headers()
                    .get(http::header::USER_AGENT)
                    .map(|v| v.to_str().unwrap().to_owned()),
            });
            let status = state.status.load(Ordering::SeqCst);
            if status == 0 {
                std::future::pending::<()>().await;
            }
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(Empty::<Bytes>::new())
                    .unwrap(),
            )
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    match tls {
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(tcp).await {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        }
        None => {
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        }
    }
}

/// A self-signed certificate nobody trusts: the checker must not verify it.
fn tls_acceptor() -> TlsAcceptor {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(trellis_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// An address nothing listens on (connections are refused).
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    l.local_addr().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Snapshots built by hand.

fn ctx() -> Context {
    Context {
        partition: "aws".into(),
        region: "us-west-2".into(),
        account_id: "111122223333".into(),
    }
}

fn hc(edit: impl FnOnce(&mut HealthCheck)) -> HealthCheck {
    let mut h = HealthCheck {
        enabled: true,
        protocol: TargetGroupProtocol::Http,
        protocol_version: HealthCheckProtocolVersion::Http1,
        port: None,
        path: "/health".into(),
        interval_seconds: INTERVAL.as_secs() as u16,
        timeout_seconds: TIMEOUT.as_secs() as u16,
        healthy_threshold_count: 2,
        unhealthy_threshold_count: 2,
        matcher: "200".into(),
    };
    edit(&mut h);
    h
}

fn disabled() -> HealthCheck {
    hc(|h| h.enabled = false)
}

fn target(addr: SocketAddr) -> TargetEntry {
    TargetEntry {
        id: addr.ip().to_string(),
        port: Some(addr.port()),
        key: format!("{}:{}", addr.ip(), addr.port()),
        addr: Some(addr),
    }
}

/// A made-up target that is never connected to (checks disabled).
fn fake(n: u16) -> TargetEntry {
    target(SocketAddr::from(([127, 0, 0, 1], 40000 + n)))
}

fn group(
    id: &str,
    in_use: bool,
    check: Option<HealthCheck>,
    targets: Vec<TargetEntry>,
) -> TargetGroupEntry {
    TargetGroupEntry {
        id: id.into(),
        arn: format!("arn:aws:vpc-lattice:us-west-2:111122223333:targetgroup/{id}"),
        name: id.into(),
        target_type: TargetGroupType::Ip,
        config: TargetGroupConfig {
            port: Some(80),
            protocol: Some(TargetGroupProtocol::Http),
            health_check: check,
            ..Default::default()
        },
        in_use,
        targets,
    }
}

fn snapshot(groups: Vec<TargetGroupEntry>) -> Arc<Snapshot> {
    let mut s = Snapshot::empty(ctx());
    s.target_groups = groups
        .into_iter()
        .map(|g| (g.id.clone(), Arc::new(g)))
        .collect();
    Arc::new(s)
}

fn health() -> Arc<Health> {
    Health::new(HealthConfig::default())
}

// ---------------------------------------------------------------------------------------------
// Waiting and reading.

/// Yields until `cond` holds; bounded by iterations, never by wall-clock time.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never reached: {what}");
}

/// Lets every runnable task run (used before asserting that something did *not* happen).
async fn settle() {
    for _ in 0..2_000 {
        tokio::task::yield_now().await;
    }
}

fn checks(h: &Health, tg: &str, t: &TargetEntry) -> u64 {
    h.check_report(tg, &t.key).map_or(0, |r| r.checks)
}

async fn until_checks(h: &Health, tg: &str, t: &TargetEntry, n: u64) {
    until(&format!("{} checks of {}", n, t.key), || {
        checks(h, tg, t) >= n
    })
    .await;
}

fn status(h: &Health, tg: &str, t: &TargetEntry) -> Option<TargetStatus> {
    h.status(tg, &t.key).map(|(s, _)| s)
}

fn last(h: &Health, tg: &str, t: &TargetEntry) -> Option<CheckOutcome> {
    h.check_report(tg, &t.key).and_then(|r| r.last)
}

/// Picks `n` times (guards dropped at once) and counts picks per target key.
fn pick_counts(h: &Health, tg: &str, exclude: &[&str], n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..n {
        if let Some(p) = h.pick(tg, exclude) {
            *counts.entry(p.target.key).or_default() += 1;
        }
    }
    counts
}

fn counts(pairs: &[(&TargetEntry, usize)]) -> HashMap<String, usize> {
    pairs.iter().map(|(t, n)| (t.key.clone(), *n)).collect()
}

// ---------------------------------------------------------------------------------------------
// Health checks.

#[tokio::test(start_paused = true)]
async fn status_follows_the_thresholds() {
    let backend = Backend::plain(200).await;
    let t = target(backend.addr);
    let h = health();
    let check = hc(|h| {
        h.healthy_threshold_count = 3;
        h.unhealthy_threshold_count = 2;
    });
    h.sync(&snapshot(vec![group(
        TG,
        true,
        Some(check),
        vec![t.clone()],
    )]));
    assert_eq!(h.status(TG, &t.key), Some((TargetStatus::Initial, None)));

    // One pass makes a new target healthy, whatever healthyThresholdCount says.
    until_checks(&h, TG, &t, 1).await;
    assert_eq!(h.status(TG, &t.key), Some((TargetStatus::Healthy, None)));

    backend.set(503);
    // (checks completed, expected status) after each further interval.
    let steps = [
        (2, TargetStatus::Healthy),
        (3, TargetStatus::Unhealthy),
        (4, TargetStatus::Unhealthy),
    ];
    for (n, want) in steps {
        advance(INTERVAL).await;
        until_checks(&h, TG, &t, n).await;
        assert_eq!(status(&h, TG, &t), Some(want), "after check {n}");
        assert_eq!(last(&h, TG, &t), Some(CheckOutcome::UnexpectedStatus(503)));
    }
    assert_eq!(
        h.status(TG, &t.key),
        Some((
            TargetStatus::Unhealthy,
            Some(REASON_HEALTH_CHECK_FAILED.to_owned())
        ))
    );

    backend.set(200);
    for (n, want) in [
        (5, TargetStatus::Unhealthy),
        (6, TargetStatus::Unhealthy),
        (7, TargetStatus::Healthy),
    ] {
        advance(INTERVAL).await;
        until_checks(&h, TG, &t, n).await;
        assert_eq!(status(&h, TG, &t), Some(want), "after check {n}");
    }

    // Every check was a GET of the path with our User-Agent, on a new HTTP/1.1 connection.
    let seen = backend.requests();
    assert_eq!(seen.len(), 7);
    assert_eq!(backend.connections(), 7);
    for s in seen {
        assert_eq!(s.path, "/health");
        assert_eq!(s.user_agent.as_deref(), Some(USER_AGENT));
        assert_eq!(s.version, Version::HTTP_11);
    }
}

#[tokio::test(start_paused = true)]
async fn matcher_lists_and_ranges_decide_each_check() {
    // (matcher, backend status, passes)
    let cases = [
        ("200", 200, true),
        ("200", 204, false),
        ("200,202", 202, true),
        ("200,202", 201, false),
        ("200-299", 299, true),
        ("200-299", 204, true),
        ("200-299", 302, false),
        ("200-299,302", 302, true),
        ("404", 404, true),
        ("200-399", 404, false),
        ("", 200, true),
    ];
    let h = health();
    let mut groups = Vec::new();
    let mut probes = Vec::new();
    for (i, (matcher, code, passes)) in cases.into_iter().enumerate() {
        let backend = Backend::plain(code).await;
        let t = target(backend.addr);
        let id = format!("tg-{i}");
        groups.push(group(
            &id,
            true,
            Some(hc(|h| h.matcher = matcher.into())),
            vec![t.clone()],
        ));
        probes.push((id, t, matcher, code, passes, backend));
    }
    h.sync(&snapshot(groups));
    for (id, t, matcher, code, passes, _backend) in probes {
        until_checks(&h, &id, &t, 1).await;
        let (want_outcome, want_status) = if passes {
            (CheckOutcome::Passed, TargetStatus::Healthy)
        } else {
            (CheckOutcome::UnexpectedStatus(code), TargetStatus::Initial)
        };
        assert_eq!(last(&h, &id, &t), Some(want_outcome), "{matcher:?} {code}");
        assert_eq!(status(&h, &id, &t), Some(want_status), "{matcher:?} {code}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_timeout_counts_as_a_failure() {
    let backend = Backend::plain(0).await;
    let t = target(backend.addr);
    let h = health();
    h.sync(&snapshot(vec![group(
        TG,
        true,
        Some(hc(|_| {})),
        vec![t.clone()],
    )]));

    until("the first check to reach the backend", || {
        backend.hits() >= 1
    })
    .await;
    settle().await;
    assert_eq!(checks(&h, TG, &t), 0, "the check waits for its timeout");
    advance(TIMEOUT).await;
    until_checks(&h, TG, &t, 1).await;
    assert_eq!(last(&h, TG, &t), Some(CheckOutcome::Timeout));
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Initial));

    advance(INTERVAL - TIMEOUT).await;
    until("the second check to reach the backend", || {
        backend.hits() >= 2
    })
    .await;
    advance(TIMEOUT).await;
    until_checks(&h, TG, &t, 2).await;
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Unhealthy));

    // A target that answers in time again recovers.
    backend.set(200);
    for n in [3, 4] {
        advance(INTERVAL - TIMEOUT).await;
        until_checks(&h, TG, &t, n).await;
        advance(TIMEOUT).await;
    }
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Healthy));
}

#[tokio::test(start_paused = true)]
async fn protocols_versions_and_ports() {
    let plain = Backend::plain(200).await;
    let tls = Backend::tls(200).await;
    let refused = closed_port().await;
    // (name, backend the traffic port points at, check, expected outcome, version seen)
    type Case<'a> = (
        &'static str,
        SocketAddr,
        HealthCheck,
        CheckOutcome,
        Option<(&'a Backend, Version)>,
    );
    let cases: Vec<Case> = vec![
        (
            "http1",
            plain.addr,
            hc(|_| {}),
            CheckOutcome::Passed,
            Some((&plain, Version::HTTP_11)),
        ),
        (
            "h2c prior knowledge",
            plain.addr,
            hc(|h| h.protocol_version = HealthCheckProtocolVersion::Http2),
            CheckOutcome::Passed,
            Some((&plain, Version::HTTP_2)),
        ),
        (
            "https http1, self-signed",
            tls.addr,
            hc(|h| h.protocol = TargetGroupProtocol::Https),
            CheckOutcome::Passed,
            Some((&tls, Version::HTTP_11)),
        ),
        (
            "https h2, self-signed",
            tls.addr,
            hc(|h| {
                h.protocol = TargetGroupProtocol::Https;
                h.protocol_version = HealthCheckProtocolVersion::Http2;
            }),
            CheckOutcome::Passed,
            Some((&tls, Version::HTTP_2)),
        ),
        (
            "check port overrides the traffic port",
            refused,
            hc(|h| h.port = Some(plain.addr.port())),
            CheckOutcome::Passed,
            Some((&plain, Version::HTTP_11)),
        ),
        (
            "refused",
            refused,
            hc(|_| {}),
            CheckOutcome::ConnectFailed,
            None,
        ),
        (
            "https against clear text",
            plain.addr,
            hc(|h| h.protocol = TargetGroupProtocol::Https),
            CheckOutcome::TlsFailed,
            None,
        ),
        (
            "clear text against https",
            tls.addr,
            hc(|_| {}),
            CheckOutcome::ProtocolError,
            None,
        ),
    ];
    for (name, addr, check, want, seen) in cases {
        let h = health();
        let t = target(addr);
        let before = seen.map(|(b, _)| b.hits()).unwrap_or(0);
        h.sync(&snapshot(vec![group(
            TG,
            true,
            Some(check),
            vec![t.clone()],
        )]));
        until_checks(&h, TG, &t, 1).await;
        assert_eq!(last(&h, TG, &t), Some(want), "{name}");
        if let Some((backend, version)) = seen {
            let requests = backend.requests();
            assert_eq!(requests.len(), before + 1, "{name}");
            let r = &requests[before];
            assert_eq!(r.version, version, "{name}");
            assert_eq!(r.path, "/health", "{name}");
            assert_eq!(r.user_agent.as_deref(), Some(USER_AGENT), "{name}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn statuses_without_checks() {
    let t = target(closed_port().await);
    let mut lambda = group("tg-lambda", true, None, vec![t.clone()]);
    lambda.target_type = TargetGroupType::Lambda;
    // (group, expected status)
    let cases = [
        (
            group("tg-off", true, Some(disabled()), vec![t.clone()]),
            TargetStatus::Unavailable,
        ),
        (lambda, TargetStatus::Unavailable),
        (
            group("tg-unused", false, Some(hc(|_| {})), vec![t.clone()]),
            TargetStatus::Unused,
        ),
        (
            group("tg-unused-off", false, Some(disabled()), vec![t.clone()]),
            TargetStatus::Unused,
        ),
    ];
    let h = health();
    let ids: Vec<(String, TargetStatus)> = cases.iter().map(|(g, s)| (g.id.clone(), *s)).collect();
    h.sync(&snapshot(cases.into_iter().map(|(g, _)| g).collect()));
    advance(INTERVAL * 3).await;
    settle().await;
    for (id, want) in ids {
        assert_eq!(h.status(&id, &t.key), Some((want, None)), "{id}");
        assert_eq!(checks(&h, &id, &t), 0, "{id} is never checked");
        // Unavailable targets are routable; unused ones are picked only by fail-open.
        assert_eq!(h.pick(&id, &[]).map(|p| p.target), Some(t.clone()), "{id}");
    }
    assert_eq!(h.status("tg-unknown", &t.key), None);
    assert_eq!(h.status("tg-off", "127.0.0.1:1"), None);
    assert!(h.pick("tg-unknown", &[]).is_none());
}

// ---------------------------------------------------------------------------------------------
// Balancing.

#[tokio::test(start_paused = true)]
async fn round_robin_is_even_and_in_order() {
    let targets: Vec<TargetEntry> = (0..4).map(fake).collect();
    let h = health();
    h.sync(&snapshot(vec![group(
        TG,
        true,
        Some(disabled()),
        targets.clone(),
    )]));
    let order: Vec<TargetEntry> = (0..8).map(|_| h.pick(TG, &[]).unwrap().target).collect();
    assert_eq!(&order[..4], &order[4..], "a full cycle repeats");
    let mut first: Vec<&str> = order[..4].iter().map(|t| t.key.as_str()).collect();
    first.sort();
    let mut want: Vec<&str> = targets.iter().map(|t| t.key.as_str()).collect();
    want.sort();
    assert_eq!(first, want, "each target once per cycle");
    let got = pick_counts(&h, TG, &[], 400);
    assert_eq!(
        got,
        counts(&targets.iter().map(|t| (t, 100)).collect::<Vec<_>>())
    );
    // The cursor survives a new snapshot with the same targets.
    h.sync(&snapshot(vec![group(
        TG,
        true,
        Some(disabled()),
        targets.clone(),
    )]));
    assert_eq!(
        pick_counts(&h, TG, &[], 400),
        counts(&targets.iter().map(|t| (t, 100)).collect::<Vec<_>>())
    );
}

/// `pick` has a bit-set path for groups of up to 64 targets and a collecting path above; both
/// must balance evenly and honour exclusions. The sizes straddle the boundary.
#[tokio::test(start_paused = true)]
async fn round_robin_and_exclusions_hold_on_both_sides_of_64_targets() {
    for size in [1u16, 63, 64, 65, 130] {
        let targets: Vec<TargetEntry> = (0..size).map(fake).collect();
        let h = health();
        h.sync(&snapshot(vec![group(
            TG,
            true,
            Some(disabled()),
            targets.clone(),
        )]));
        let rounds = 3;
        assert_eq!(
            pick_counts(&h, TG, &[], size as usize * rounds),
            counts(&targets.iter().map(|t| (t, rounds)).collect::<Vec<_>>()),
            "{size} targets: each picked once per cycle"
        );
        // Excluding every target but the last leaves only the last.
        let excluded: Vec<&str> = targets[..size as usize - 1]
            .iter()
            .map(|t| t.key.as_str())
            .collect();
        let last = targets.last().unwrap();
        assert_eq!(
            pick_counts(&h, TG, &excluded, 10),
            counts(&[(last, 10)]),
            "{size} targets: exclusions"
        );
        let all: Vec<&str> = targets.iter().map(|t| t.key.as_str()).collect();
        assert!(h.pick(TG, &all).is_none(), "{size} targets: all excluded");
    }
}

#[tokio::test(start_paused = true)]
async fn unhealthy_targets_are_skipped_until_all_are_unhealthy() {
    let a_backend = Backend::plain(200).await;
    let b_backend = Backend::plain(200).await;
    let (a, b) = (target(a_backend.addr), target(b_backend.addr));
    let c = target(closed_port().await);
    let h = health();
    h.sync(&snapshot(vec![group(
        TG,
        true,
        Some(hc(|_| {})),
        vec![a.clone(), b.clone(), c.clone()],
    )]));
    // Before any result every target is INITIAL: nothing is routable, so requests fail open.
    assert_eq!(
        pick_counts(&h, TG, &[], 30),
        counts(&[(&a, 10), (&b, 10), (&c, 10)])
    );

    for t in [&a, &b, &c] {
        until_checks(&h, TG, t, 1).await;
    }
    advance(INTERVAL).await;
    for t in [&a, &b, &c] {
        until_checks(&h, TG, t, 2).await;
    }
    assert_eq!(status(&h, TG, &a), Some(TargetStatus::Healthy));
    assert_eq!(status(&h, TG, &b), Some(TargetStatus::Healthy));
    assert_eq!(status(&h, TG, &c), Some(TargetStatus::Unhealthy));
    assert_eq!(last(&h, TG, &c), Some(CheckOutcome::ConnectFailed));

    // (exclude, expected pick counts over 100 picks)
    let cases: Vec<(Vec<&str>, HashMap<String, usize>)> = vec![
        (vec![], counts(&[(&a, 50), (&b, 50)])),
        (vec![a.key.as_str()], counts(&[(&b, 100)])),
        (vec![b.key.as_str(), "10.9.9.9:80"], counts(&[(&a, 100)])),
        // Healthy targets exist, so the unhealthy one is not a fallback for a retry.
        (vec![a.key.as_str(), b.key.as_str()], counts(&[])),
    ];
    for (exclude, want) in cases {
        assert_eq!(pick_counts(&h, TG, &exclude, 100), want, "{exclude:?}");
    }

    // All unhealthy: fail open over every registered target.
    a_backend.set(503);
    b_backend.set(500);
    for n in [3, 4] {
        advance(INTERVAL).await;
        for t in [&a, &b, &c] {
            until_checks(&h, TG, t, n).await;
        }
    }
    for t in [&a, &b, &c] {
        assert_eq!(status(&h, TG, t), Some(TargetStatus::Unhealthy));
    }
    let cases: Vec<(Vec<&str>, HashMap<String, usize>)> = vec![
        (vec![], counts(&[(&a, 40), (&b, 40), (&c, 40)])),
        (vec![a.key.as_str()], counts(&[(&b, 60), (&c, 60)])),
        (
            vec![a.key.as_str(), b.key.as_str(), c.key.as_str()],
            counts(&[]),
        ),
    ];
    for (exclude, want) in cases {
        assert_eq!(pick_counts(&h, TG, &exclude, 120), want, "{exclude:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Draining.

#[tokio::test(start_paused = true)]
async fn deregistered_targets_drain_then_disappear() {
    let delay = Duration::from_secs(30);
    let h = Health::new(HealthConfig {
        deregistration_delay: delay,
    });
    let (x, y) = (fake(1), fake(2));
    h.sync(&snapshot(vec![group(
        TG,
        true,
        Some(disabled()),
        vec![x.clone(), y.clone()],
    )]));

    let held = h.pick(TG, &[&y.key]).unwrap();
    assert_eq!(held.target, x);
    let also: InFlight = h.pick(TG, &[&y.key]).unwrap().guard;
    assert_eq!(h.in_flight(TG, &x.key), 2);
    drop(also);
    assert_eq!(h.in_flight(TG, &x.key), 1);

    // x is deregistered.
    h.sync(&snapshot(vec![group(
        TG,
        true,
        Some(disabled()),
        vec![y.clone()],
    )]));
    assert_eq!(h.status(TG, &x.key), Some((TargetStatus::Draining, None)));
    assert_eq!(h.draining(TG), vec![x.clone()]);
    assert_eq!(pick_counts(&h, TG, &[], 50), counts(&[(&y, 50)]));
    assert!(
        h.pick(TG, &[&y.key]).is_none(),
        "draining targets are not a fallback"
    );
    assert_eq!(h.in_flight(TG, &x.key), 1, "the in-flight request finishes");
    drop(held);
    assert_eq!(h.in_flight(TG, &x.key), 0);

    // Snapshot churn during the drain does not restart it.
    advance(delay / 2).await;
    h.sync(&snapshot(vec![group(
        TG,
        true,
        Some(disabled()),
        vec![y.clone()],
    )]));
    advance(delay / 2 - Duration::from_secs(1)).await;
    assert_eq!(status(&h, TG, &x), Some(TargetStatus::Draining));
    advance(Duration::from_secs(1)).await;
    assert_eq!(h.status(TG, &x.key), None, "forgotten after the delay");
    assert!(h.draining(TG).is_empty());
    assert_eq!(status(&h, TG, &y), Some(TargetStatus::Unavailable));

    // A target registered again while draining is a registered target again, in-flight count
    // kept.
    h.sync(&snapshot(vec![group(
        TG,
        true,
        Some(disabled()),
        vec![y.clone()],
    )]));
    let on_y = h.pick(TG, &[]).unwrap();
    assert_eq!(on_y.target, y);
    h.sync(&snapshot(vec![group(TG, true, Some(disabled()), vec![])]));
    assert_eq!(status(&h, TG, &y), Some(TargetStatus::Draining));
    assert!(h.pick(TG, &[]).is_none(), "no registered target left");
    h.sync(&snapshot(vec![group(
        TG,
        true,
        Some(disabled()),
        vec![y.clone()],
    )]));
    assert_eq!(status(&h, TG, &y), Some(TargetStatus::Unavailable));
    assert!(h.draining(TG).is_empty());
    assert_eq!(h.in_flight(TG, &y.key), 1);
    drop(on_y);
    assert_eq!(h.in_flight(TG, &y.key), 0);

    // A deleted group is forgotten at once, draining targets included.
    h.sync(&snapshot(vec![group(TG, true, Some(disabled()), vec![])]));
    h.sync(&snapshot(vec![]));
    assert_eq!(h.status(TG, &y.key), None);
    assert!(h.draining(TG).is_empty());
    assert!(h.pick(TG, &[]).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_draining_target_is_no_longer_checked() {
    let backend = Backend::plain(200).await;
    let t = target(backend.addr);
    let h = health();
    h.sync(&snapshot(vec![group(
        TG,
        true,
        Some(hc(|_| {})),
        vec![t.clone()],
    )]));
    until_checks(&h, TG, &t, 1).await;
    h.sync(&snapshot(vec![group(TG, true, Some(hc(|_| {})), vec![])]));
    advance(INTERVAL * 3).await;
    settle().await;
    assert_eq!(backend.hits(), 1);
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Draining));
}

// ---------------------------------------------------------------------------------------------
// Snapshot churn.

#[tokio::test(start_paused = true)]
async fn churn_keeps_state_and_config_changes_restart_checkers() {
    let backend = Backend::plain(200).await;
    let t = target(backend.addr);
    let other = fake(7);
    let h = health();
    let with = |check: HealthCheck, in_use: bool| {
        snapshot(vec![
            group(TG, in_use, Some(check), vec![t.clone()]),
            group("tg-other", true, Some(disabled()), vec![other.clone()]),
        ])
    };
    h.sync(&with(hc(|_| {}), true));
    until_checks(&h, TG, &t, 1).await;
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Healthy));

    // The same target in new snapshots keeps its status and its one checker.
    for _ in 0..5 {
        h.sync(&with(hc(|_| {}), true));
        assert_eq!(status(&h, TG, &t), Some(TargetStatus::Healthy));
    }
    settle().await;
    assert_eq!(checks(&h, TG, &t), 1, "no restart, no extra check");
    advance(INTERVAL).await;
    until_checks(&h, TG, &t, 2).await;
    settle().await;
    assert_eq!(checks(&h, TG, &t), 2, "exactly one checker");

    // Make it unhealthy, then change the settings: the checker restarts at once with the new
    // path and interval, and the status is kept (a fresh INITIAL target would be healthy after
    // one pass; an UNHEALTHY one needs healthyThresholdCount passes).
    backend.set(503);
    for n in [3, 4] {
        advance(INTERVAL).await;
        until_checks(&h, TG, &t, n).await;
    }
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Unhealthy));
    backend.set(200);
    let slower = hc(|h| {
        h.path = "/ready".into();
        h.interval_seconds = 20;
    });
    h.sync(&with(slower.clone(), true));
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Unhealthy));
    until_checks(&h, TG, &t, 5).await;
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Unhealthy));
    assert_eq!(backend.requests().last().unwrap().path, "/ready");
    advance(INTERVAL).await;
    settle().await;
    assert_eq!(checks(&h, TG, &t), 5, "the new interval is 20 s");
    advance(INTERVAL).await;
    until_checks(&h, TG, &t, 6).await;
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Healthy));

    // Disabling checks stops the checker: UNAVAILABLE. Re-enabling starts over at INITIAL.
    h.sync(&with(disabled(), true));
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Unavailable));
    advance(INTERVAL * 4).await;
    settle().await;
    assert_eq!(checks(&h, TG, &t), 6);
    h.sync(&with(slower.clone(), true));
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Initial));
    until_checks(&h, TG, &t, 7).await;
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Healthy));

    // A group that stops being used is not checked (UNUSED), and starts over when used again.
    h.sync(&with(slower.clone(), false));
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Unused));
    advance(INTERVAL * 4).await;
    settle().await;
    assert_eq!(checks(&h, TG, &t), 7);
    h.sync(&with(slower, true));
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Initial));
    until_checks(&h, TG, &t, 8).await;
    assert_eq!(status(&h, TG, &t), Some(TargetStatus::Healthy));

    // The other group was untouched throughout.
    assert_eq!(
        status(&h, "tg-other", &other),
        Some(TargetStatus::Unavailable)
    );
    assert_eq!(backend.connections(), 8, "one connection per check");
}

// ---------------------------------------------------------------------------------------------
// Every target at once (the metrics' view).

#[tokio::test(start_paused = true)]
async fn statuses_list_registered_and_draining_targets() {
    let h = Health::new(HealthConfig {
        deregistration_delay: Duration::from_secs(30),
    });
    let (x, y, z) = (fake(1), fake(2), fake(3));
    h.sync(&snapshot(vec![
        group("tg-a", true, Some(disabled()), vec![x.clone(), y.clone()]),
        group("tg-b", false, Some(disabled()), vec![z.clone()]),
    ]));
    let sorted = |h: &Health| {
        let mut all = h.statuses();
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
    };
    assert_eq!(
        sorted(&h),
        vec![
            ("tg-a".to_owned(), x.key.clone(), TargetStatus::Unavailable),
            ("tg-a".to_owned(), y.key.clone(), TargetStatus::Unavailable),
            ("tg-b".to_owned(), z.key.clone(), TargetStatus::Unused),
        ]
    );
    // x is deregistered: DRAINING until the delay ends, then gone; tg-b is deleted.
    h.sync(&snapshot(vec![group(
        "tg-a",
        true,
        Some(disabled()),
        vec![y.clone()],
    )]));
    assert_eq!(
        sorted(&h),
        vec![
            ("tg-a".to_owned(), x.key.clone(), TargetStatus::Draining),
            ("tg-a".to_owned(), y.key.clone(), TargetStatus::Unavailable),
        ]
    );
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(
        sorted(&h),
        vec![("tg-a".to_owned(), y.key.clone(), TargetStatus::Unavailable)]
    );
}
