//! Tests of the data-plane wiring that need no ports: the pure helpers, and the compiler task
//! against a real SQLite store with a recording stand-in for the reconcilers.

use super::*;
use tokio::sync::mpsc;
use trellis_model::Timestamp;
use trellis_model::dns::service_dns_entry;
use trellis_model::resources::association::{AssociationStatus, ServiceNetworkServiceAssociation};
use trellis_model::resources::service::{Service, ServiceStatus};
use trellis_model::resources::service_network::ServiceNetwork;
use trellis_model::resources::{AuthType, Tags};
use trellis_store::Record;

const REGION: &str = "us-west-2";
const ACCOUNT: &str = "111122223333";

fn ctx() -> Context {
    Context {
        partition: "aws".into(),
        region: REGION.into(),
        account_id: ACCOUNT.into(),
    }
}

#[test]
fn dns_answers_the_ingress_or_loopback_for_wildcards() {
    let cases = [
        ("127.0.0.1", "127.0.0.1"),
        ("10.1.2.3", "10.1.2.3"),
        ("0.0.0.0", "127.0.0.1"),
        ("::", "::1"),
        ("fd00::5", "fd00::5"),
    ];
    for (ingress, want) in cases {
        assert_eq!(
            dns_answer_address(ingress.parse().unwrap()),
            want.parse::<IpAddr>().unwrap(),
            "{ingress}"
        );
    }
}

#[test]
fn zone_records_map_every_dns_name_to_the_address() {
    let mut snap = Snapshot::empty(ctx());
    snap.dns_names = vec!["a.example.com".into(), "b.example.com".into()];
    let addr: IpAddr = "10.0.0.9".parse().unwrap();
    assert_eq!(
        zone_records(&snap, &[addr]),
        vec![
            ("a.example.com".to_string(), vec![addr]),
            ("b.example.com".to_string(), vec![addr]),
        ]
    );
    assert!(zone_records(&Snapshot::empty(ctx()), &[addr]).is_empty());
}

#[test]
fn failed_ports_are_reported_by_port_with_their_error() {
    let failures = [
        (
            8443,
            io::Error::new(io::ErrorKind::AddrInUse, "address in use"),
        ),
        (
            80,
            io::Error::new(io::ErrorKind::PermissionDenied, "permission denied"),
        ),
    ];
    assert_eq!(
        failed_ports(&failures),
        vec![
            FailedPort {
                port: 80,
                error: "permission denied".into()
            },
            FailedPort {
                port: 8443,
                error: "address in use".into()
            },
        ]
    );
}

#[derive(Debug)]
enum Event {
    Applied(Arc<Snapshot>),
    Rejected,
}

/// Records what the compiler task asks of the reconcilers.
struct Recorder(mpsc::UnboundedSender<Event>);

impl Reconcile for Recorder {
    async fn apply(&self, snapshot: Arc<Snapshot>) -> bool {
        let _ = self.0.send(Event::Applied(snapshot));
        false
    }
    async fn retry_ports(&self) -> bool {
        false
    }
    fn rejected(&self, _error: &LoadError) {
        let _ = self.0.send(Event::Rejected);
    }
}

/// The next event, bounded so that a broken task fails the test instead of hanging it.
async fn next(events: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("the compiler task did not react")
        .expect("the compiler task ended")
}

/// The next applied snapshot at `revision` or later, skipping earlier ones.
async fn applied_at_least(
    events: &mut mpsc::UnboundedReceiver<Event>,
    revision: u64,
) -> Arc<Snapshot> {
    loop {
        match next(events).await {
            Event::Applied(s) if s.revision >= revision => return s,
            Event::Applied(_) => {}
            Event::Rejected => panic!("unexpected rejection while waiting for {revision}"),
        }
    }
}

fn record(kind: &str, id: &str, parent: Option<&str>, body: serde_json::Value) -> Record {
    Record {
        kind: kind.into(),
        id: id.into(),
        parent: parent.map(str::to_string),
        name: None,
        arn: None,
        refs: Vec::new(),
        body,
        seq: 0,
    }
}

/// A service network, a service and their association.
fn served_service() -> Vec<Record> {
    let (sn, svc, snsa) = (
        "sn-00000000000000001",
        "svc-00000000000000002",
        "snsa-00000000000000003",
    );
    let now = Timestamp::now();
    let dns_entry = service_dns_entry("web", svc, REGION, ACCOUNT);
    let network = ServiceNetwork {
        id: sn.into(),
        name: "net".into(),
        arn: "arn:sn".into(),
        auth_type: AuthType::None,
        sharing_enabled: false,
        created_at: now,
        last_updated_at: now,
        tags: Tags::new(),
    };
    let service = Service {
        id: svc.into(),
        name: "web".into(),
        arn: "arn:svc".into(),
        auth_type: AuthType::None,
        custom_domain_name: None,
        certificate_arn: None,
        status: ServiceStatus::Active,
        dns_entry: dns_entry.clone(),
        created_at: now,
        last_updated_at: now,
        tags: Tags::new(),
    };
    let association = ServiceNetworkServiceAssociation {
        id: snsa.into(),
        arn: "arn:snsa".into(),
        status: AssociationStatus::Active,
        created_by: ACCOUNT.into(),
        created_at: now,
        service_id: svc.into(),
        service_name: "web".into(),
        service_arn: "arn:svc".into(),
        service_network_id: sn.into(),
        service_network_name: "net".into(),
        service_network_arn: "arn:sn".into(),
        dns_entry,
        custom_domain_name: None,
        tags: Tags::new(),
    };
    vec![
        record(
            "service-network",
            sn,
            None,
            serde_json::to_value(network).unwrap(),
        ),
        record("service", svc, None, serde_json::to_value(service).unwrap()),
        record(
            "service-network-service-association",
            snsa,
            Some(sn),
            serde_json::to_value(association).unwrap(),
        ),
    ]
}

/// Inserts or replaces `records` in one write transaction; returns its revision.
async fn write(store: &Store, records: Vec<Record>) -> u64 {
    let mut tx = store.write().await.unwrap();
    for rec in records {
        if tx.get(&rec.kind, &rec.id).await.unwrap().is_some() {
            tx.update(&rec).await.unwrap();
        } else {
            tx.insert(&rec).await.unwrap();
        }
    }
    tx.commit().await.unwrap()
}

/// An empty SQLite store in a temporary dir (kept alive by the returned guard) and a fresh status.
async fn fresh_store() -> (tempfile::TempDir, Store, Status) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(&dir.path().join("t.db")))
        .await
        .unwrap();
    let status = Status {
        applied: Arc::new(AtomicU64::new(0)),
        ready: Arc::new(AtomicBool::new(false)),
        failed_ports: Arc::new(|_: &[FailedPort]| {}),
        metrics: None,
        access_logs: None,
    };
    (dir, store, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_feed_and_keeps_the_last_good_snapshot() {
    let (_dir, store, status) = fresh_store().await;
    let (tx, mut events) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(follow(
        store.clone(),
        ctx(),
        Recorder(tx),
        status.clone(),
        stop_rx,
    ));

    // The state at start is applied without waiting for a change.
    let first = applied_at_least(&mut events, 0).await;
    assert!(first.hosts.is_empty());

    // A served service appears once its records are committed.
    let r1 = write(&store, served_service()).await;
    let snap = applied_at_least(&mut events, r1).await;
    let host = service_dns_entry("web", "svc-00000000000000002", REGION, ACCOUNT).domain_name;
    assert!(snap.hosts.contains_key(&host));
    assert_eq!(snap.dns_names, vec![host.clone()]);

    // A document that does not decode is rejected and nothing is applied for it.
    let r2 = write(
        &store,
        vec![record(
            "target-group",
            "tg-00000000000000004",
            None,
            serde_json::json!({"type": "NOT_A_TYPE"}),
        )],
    )
    .await;
    match next(&mut events).await {
        Event::Rejected => {}
        Event::Applied(s) => panic!("revision {} applied despite the bad document", s.revision),
    }
    assert!(status.applied.load(Ordering::Acquire) < r2);

    // Deleting the bad record lets the next revision through, with the service gone too.
    let r3 = {
        let mut tx = store.write().await.unwrap();
        tx.delete("target-group", "tg-00000000000000004")
            .await
            .unwrap();
        tx.delete(
            "service-network-service-association",
            "snsa-00000000000000003",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap()
    };
    let snap = applied_at_least(&mut events, r3).await;
    assert_eq!(snap.revision, r3);
    assert!(snap.hosts.is_empty() && snap.dns_names.is_empty());

    // A burst of commits ends applied at its last revision, each apply newer than the one before.
    let mut last = r3;
    for i in 0..10 {
        last = write(
            &store,
            vec![network_record(
                &format!("sn-1000000000000000{i}"),
                &format!("burst-{i}"),
            )],
        )
        .await;
    }
    let mut seen = r3;
    loop {
        match next(&mut events).await {
            Event::Applied(s) => {
                assert!(s.revision > seen, "{} after {seen}", s.revision);
                seen = s.revision;
                if seen == last {
                    break;
                }
            }
            Event::Rejected => panic!("unexpected rejection"),
        }
    }

    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(status.applied.load(Ordering::Acquire), last);
    assert!(status.ready.load(Ordering::Acquire));
    store.close().await;
}

/// A reconciler whose applies are held open until the test lets them finish, recording when
/// each one started and ended.
struct Gated {
    started: mpsc::UnboundedSender<(u64, tokio::time::Instant)>,
    gate: Arc<tokio::sync::Semaphore>,
    ended: Arc<std::sync::Mutex<Vec<(u64, tokio::time::Instant)>>>,
}

impl Reconcile for Gated {
    async fn apply(&self, snapshot: Arc<Snapshot>) -> bool {
        let _ = self
            .started
            .send((snapshot.revision, tokio::time::Instant::now()));
        self.gate.acquire().await.unwrap().forget();
        self.ended
            .lock()
            .unwrap()
            .push((snapshot.revision, tokio::time::Instant::now()));
        false
    }
    async fn retry_ports(&self) -> bool {
        false
    }
    fn rejected(&self, _error: &LoadError) {}
}

fn network_record(id: &str, name: &str) -> Record {
    let now = Timestamp::now();
    let network = ServiceNetwork {
        id: id.into(),
        name: name.into(),
        arn: format!("arn:{name}"),
        auth_type: AuthType::None,
        sharing_enabled: false,
        created_at: now,
        last_updated_at: now,
        tags: Tags::new(),
    };
    record(
        "service-network",
        id,
        None,
        serde_json::to_value(network).unwrap(),
    )
}

/// The next round the compiler task starts, bounded so that a broken task fails the test.
async fn round_started(
    rx: &mut mpsc::UnboundedReceiver<(u64, tokio::time::Instant)>,
) -> (u64, tokio::time::Instant) {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("the compiler task did not start a round")
        .expect("the compiler task ended")
}

/// Writes that overtake a round make the next round wait as long as that round took (the
/// compiler's share of the CPU stays bounded under a stream of writes); the writes still
/// coalesce into one round that applies the newest revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_overtaken_by_writes_holds_the_next_one_back() {
    let (_dir, store, status) = fresh_store().await;
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let ended = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(follow(
        store.clone(),
        ctx(),
        Gated {
            started: started_tx,
            gate: Arc::clone(&gate),
            ended: Arc::clone(&ended),
        },
        status.clone(),
        stop_rx,
    ));
    // The first round (the empty store) is held open while three writes land.
    let (first, round_start) = round_started(&mut started).await;
    let mut last = first;
    for i in 0..3 {
        last = write(
            &store,
            vec![network_record(
                &format!("sn-2{i:016}"),
                &format!("held-{i}"),
            )],
        )
        .await;
    }
    let held = Duration::from_millis(200);
    tokio::time::sleep(held).await;
    gate.add_permits(1);

    // One round applies all three writes, and it starts no sooner than the first round's
    // length after that round ended.
    let (second, second_start) = round_started(&mut started).await;
    assert_eq!(second, last, "the three writes coalesce into one round");
    let first_end = ended.lock().unwrap()[0].1;
    let first_len = first_end - round_start;
    assert!(first_len >= held);
    assert!(
        second_start - first_end >= first_len.min(HOLD_MAX),
        "the next round started {:?} after a round of {first_len:?}",
        second_start - first_end
    );
    gate.add_permits(1);

    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(status.applied.load(Ordering::Acquire), last);
    store.close().await;
}
