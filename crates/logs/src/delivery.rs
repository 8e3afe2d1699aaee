//! Access-log delivery: the [`Dispatcher`] the proxy offers records to (it implements
//! [`AccessLogSink`]), a bounded queue and a worker task per destination, and the [`Sink`]s the
//! workers write to.
//!
//! `offer` never waits: a record goes into its destination's queue with `try_send`, or is
//! dropped and counted (`trellis_access_log_dropped_total`) when the queue is full. Each worker
//! takes what its queue holds (up to [`BATCH_MAX`] records: what arrived within [`BATCH_WAIT`]
//! of the first, waited out asleep so that records do not wake it one by one), writes it as one
//! batch, and retries a failed batch with
//! exponential backoff ([`RETRIES`] times) before counting it failed. S3 and Firehose sinks fit
//! the same trait: their batches are objects or `PutRecordBatch` calls.
//!
//! Queues are keyed by subscription and destination ARN, created on a subscription's first
//! record, and retired after [`IDLE_RETIRE`] without records (a deleted subscription's queue
//! goes away; a quiet one is created again on its next record).

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use trellis_telemetry::access_log::{AccessLogMetrics, AccessLogSink, Delivery};

use crate::events::{EventStore, now_ms};

/// Records a destination's queue holds before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Records written per batch at most.
pub const BATCH_MAX: usize = 500;
/// How long a worker waits for more records after the first of a batch.
pub const BATCH_WAIT: Duration = Duration::from_millis(200);
/// How often a failed batch is retried.
pub const RETRIES: u32 = 5;
/// The first retry's delay (doubled each time).
pub const BACKOFF: Duration = Duration::from_millis(100);
/// How long a subscription's queue may stay empty before its worker retires it.
pub const IDLE_RETIRE: Duration = Duration::from_secs(600);

/// The subscription queues, by key.
type Queues = Arc<RwLock<HashMap<String, Queue>>>;

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// A destination: writes one batch of records (each one JSON object, no newline).
pub trait Sink: Send + 'static {
    /// The `destination` label of its metrics.
    fn kind(&self) -> &'static str;
    fn write(&mut self, batch: &[Arc<str>]) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A hosted log group: each record one event in the stream named after the subscribed
/// resource, timestamped when it was written.
pub struct LogGroupSink {
    pub events: EventStore,
    /// The group's ARN without `:*` (its key in the event store).
    pub group: String,
    pub stream: String,
}

impl Sink for LogGroupSink {
    fn kind(&self) -> &'static str {
        "log-group"
    }

    async fn write(&mut self, batch: &[Arc<str>]) -> Result<(), SinkError> {
        let now = now_ms();
        let events: Vec<(i64, &str)> = batch.iter().map(|r| (now, &**r)).collect();
        self.events
            .put(&self.group, &self.stream, &events, true)
            .await
            .map_err(|e| SinkError(e.to_string()))
    }
}

/// JSON lines appended to a file, or written to stdout (`-`), for log shippers.
pub struct FileSink {
    out: Box<dyn std::io::Write + Send>,
}

impl FileSink {
    /// `-` is stdout; anything else a file opened for appending (created 0600).
    pub fn open(path: &str) -> std::io::Result<FileSink> {
        let out: Box<dyn std::io::Write + Send> = if path == "-" {
            Box::new(std::io::stdout())
        } else {
            let path = PathBuf::from(path);
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            Box::new(options.open(&path)?)
        };
        Ok(FileSink { out })
    }
}

impl Sink for FileSink {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn write(&mut self, batch: &[Arc<str>]) -> Result<(), SinkError> {
        // A few kilobytes per batch to a local file or pipe: written inline.
        let mut buf = Vec::with_capacity(batch.iter().map(|r| r.len() + 1).sum());
        for r in batch {
            buf.extend_from_slice(r.as_bytes());
            buf.push(b'\n');
        }
        self.out
            .write_all(&buf)
            .and_then(|()| self.out.flush())
            .map_err(|e| SinkError(e.to_string()))
    }
}

/// One destination's queue.
struct Queue {
    tx: mpsc::Sender<Arc<str>>,
    kind: &'static str,
    /// Tells this queue from a later one under the same key.
    id: u64,
}

/// Where a worker removes its queue when it retires it.
struct Retire {
    queues: std::sync::Weak<RwLock<HashMap<String, Queue>>>,
    key: String,
    id: u64,
}

impl Retire {
    /// Removes the queue (if it is still this worker's). Senders push under the map's read
    /// lock, so once this returns nobody can push to it; dropping its sender lets the worker
    /// drain what is left and end.
    fn retire(self) {
        let Some(queues) = self.queues.upgrade() else {
            return;
        };
        let mut queues = queues.write().unwrap_or_else(PoisonError::into_inner);
        if queues.get(&self.key).is_some_and(|q| q.id == self.id) {
            queues.remove(&self.key);
        }
    }
}

/// The proxy's access-log sink: queues per destination, workers that write them.
pub struct Dispatcher {
    events: EventStore,
    /// Whether there is an every-request sink (`--access-log-file`).
    wants_all: bool,
    /// Its queue, until [`Dispatcher::close`].
    all: RwLock<Option<Queue>>,
    queues: Queues,
    /// Every worker started, for [`Dispatcher::close`] to wait on.
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Set by [`Dispatcher::close`]: no new queue is created afterwards.
    closed: std::sync::atomic::AtomicBool,
    metrics: Arc<AccessLogMetrics>,
}

impl Dispatcher {
    /// Must be called on the runtime the workers run on.
    pub fn new(
        events: EventStore,
        file: Option<FileSink>,
        metrics: Arc<AccessLogMetrics>,
    ) -> Dispatcher {
        Dispatcher::with_sink(events, file, metrics)
    }

    /// [`Dispatcher::new`] with any every-request sink.
    fn with_sink<S: Sink>(
        events: EventStore,
        all: Option<S>,
        metrics: Arc<AccessLogMetrics>,
    ) -> Dispatcher {
        let mut workers = Vec::new();
        let all = all.map(|sink| {
            let (q, worker) = spawn(sink, Arc::clone(&metrics), None);
            workers.push(worker);
            q
        });
        Dispatcher {
            events,
            wants_all: all.is_some(),
            all: RwLock::new(all),
            queues: Queues::default(),
            workers: Mutex::new(workers),
            closed: std::sync::atomic::AtomicBool::new(false),
            metrics,
        }
    }

    /// Stops taking records and waits, at most `within`, for the workers to write what their
    /// queues hold (at shutdown, once the proxy has drained). Records offered afterwards are
    /// dropped.
    pub async fn close(&self, within: Duration) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        // Dropping every sender lets each worker drain its queue and end.
        self.all
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.queues
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        let all = async {
            for w in workers {
                let _ = w.await;
            }
        };
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!(
                "access-log queues not written within the shutdown grace; the rest is lost"
            );
        }
    }

    fn push(&self, q: &Queue, record: Arc<str>) {
        let labels = AccessLogMetrics::labels(q.kind);
        match q.tx.try_send(record) {
            Ok(()) => {
                self.metrics.accepted.get_or_create(&labels).inc();
                self.metrics.queued.get_or_create(&labels).inc();
            }
            Err(_) => {
                self.metrics.dropped.get_or_create(&labels).inc();
            }
        }
    }
}

impl AccessLogSink for Dispatcher {
    fn wants_all(&self) -> bool {
        self.wants_all
    }

    fn offer(&self, delivery: Option<Delivery<'_>>, record: Arc<str>) {
        let Some(d) = delivery else {
            if let Some(q) = &*self.all.read().unwrap_or_else(PoisonError::into_inner) {
                self.push(q, record);
            }
            return;
        };
        let key = format!("{}\n{}", d.subscription, d.destination_arn);
        {
            let queues = self.queues.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(q) = queues.get(&key) {
                self.push(q, record);
                return;
            }
        }
        // The snapshot only lists log-group destinations (`trellis_snapshot`); the event
        // store knows a group by its ARN without the `:*`.
        if log_group_name(d.destination_arn).is_none() {
            return;
        }
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            let labels = AccessLogMetrics::labels("log-group");
            self.metrics.dropped.get_or_create(&labels).inc();
            return;
        }
        let group = d
            .destination_arn
            .strip_suffix(":*")
            .unwrap_or(d.destination_arn);
        let mut queues = self.queues.write().unwrap_or_else(PoisonError::into_inner);
        let retire = Retire {
            queues: Arc::downgrade(&self.queues),
            key: key.clone(),
            id: 0,
        };
        let q = queues.entry(key).or_insert_with(|| {
            let (q, worker) = spawn(
                LogGroupSink {
                    events: self.events.clone(),
                    group: group.to_string(),
                    stream: d.resource.to_string(),
                },
                Arc::clone(&self.metrics),
                Some(retire),
            );
            let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
            workers.retain(|w| !w.is_finished());
            workers.push(worker);
            q
        });
        self.push(q, record);
    }
}

/// The group name of `arn:…:logs:…:log-group:NAME[:*]`.
pub fn log_group_name(arn: &str) -> Option<&str> {
    let (_, name) = arn.split_once(":log-group:")?;
    Some(name.strip_suffix(":*").unwrap_or(name))
}

/// Starts a worker for `sink`; with `retire`, the worker removes its queue from the map after
/// [`IDLE_RETIRE`] without records.
fn spawn<S: Sink>(
    sink: S,
    metrics: Arc<AccessLogMetrics>,
    retire: Option<Retire>,
) -> (Queue, JoinHandle<()>) {
    static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let kind = sink.kind();
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let worker = tokio::spawn(work(sink, rx, metrics, retire.map(|r| Retire { id, ..r })));
    (Queue { tx, kind, id }, worker)
}

async fn work<S: Sink>(
    mut sink: S,
    mut rx: mpsc::Receiver<Arc<str>>,
    metrics: Arc<AccessLogMetrics>,
    mut retire: Option<Retire>,
) {
    let labels = AccessLogMetrics::labels(sink.kind());
    let mut batch: Vec<Arc<str>> = Vec::with_capacity(BATCH_MAX);
    loop {
        let got = if retire.is_some() {
            match tokio::time::timeout(IDLE_RETIRE, rx.recv_many(&mut batch, BATCH_MAX)).await {
                Ok(n) => n,
                Err(_) => {
                    // Idle: leave the map; what was queued meanwhile is still written below.
                    if let Some(r) = retire.take() {
                        r.retire();
                    }
                    continue;
                }
            }
        } else {
            rx.recv_many(&mut batch, BATCH_MAX).await
        };
        if got == 0 {
            return;
        }
        // One wakeup per batch, not one per record: the worker sleeps out the batch window
        // (records queue up meanwhile without waking it), then takes what came. Waking on
        // every record cost more CPU than writing it. A queue that already holds a full batch
        // is taken at once.
        if batch.len() < BATCH_MAX && rx.len() < BATCH_MAX {
            tokio::time::sleep(BATCH_WAIT).await;
        }
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        let n = batch.len() as i64;
        metrics.queued.get_or_create(&labels).dec_by(n);
        let mut delay = BACKOFF;
        let mut attempt = 0;
        loop {
            match sink.write(&batch).await {
                Ok(()) => {
                    metrics.delivered.get_or_create(&labels).inc_by(n as u64);
                    break;
                }
                Err(e) if attempt < RETRIES => {
                    tracing::debug!(error = %e, attempt, "access-log batch not written; retrying");
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    tracing::warn!(error = %e, records = n, destination = sink.kind(), "access-log batch dropped after retries");
                    metrics.failed.get_or_create(&labels).inc_by(n as u64);
                    break;
                }
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_group_name_table() {
        for (arn, want) in [
            ("arn:aws:logs:us-west-2:111122223333:log-group:g", Some("g")),
            (
                "arn:aws:logs:us-west-2:111122223333:log-group:/a/b:*",
                Some("/a/b"),
            ),
            ("arn:aws:s3:::bucket", None),
        ] {
            assert_eq!(log_group_name(arn), want, "{arn}");
        }
    }

    #[tokio::test]
    async fn delivers_to_a_log_group_and_drops_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let events = EventStore::open(&dir.path().join("e.db")).await.unwrap();
        let metrics = Arc::new(AccessLogMetrics::default());
        let d = Dispatcher::new(events.clone(), None, Arc::clone(&metrics));
        assert!(!d.wants_all());
        let delivery = Delivery {
            subscription: "als-1",
            destination_arn: "arn:aws:logs:us-west-2:111122223333:log-group:g",
            resource: "svc-1",
        };
        d.offer(Some(delivery), Arc::from("{\"a\":1}"));
        let labels = AccessLogMetrics::labels("log-group");
        for _ in 0..200 {
            if metrics.delivered.get_or_create(&labels).get() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(metrics.delivered.get_or_create(&labels).get(), 1);
        let got = events
            .read(&crate::events::Query {
                group: "arn:aws:logs:us-west-2:111122223333:log-group:g",
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].stream, "svc-1");
        assert_eq!(got[0].message, "{\"a\":1}");
    }

    /// Fails its first `failures` writes, then records what it is given.
    struct Flaky {
        failures: u32,
        written: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Sink for Flaky {
        fn kind(&self) -> &'static str {
            "file"
        }

        async fn write(&mut self, batch: &[Arc<str>]) -> Result<(), SinkError> {
            if self.failures > 0 {
                self.failures -= 1;
                return Err(SinkError("down".into()));
            }
            self.written
                .lock()
                .unwrap()
                .extend(batch.iter().map(|r| r.to_string()));
            Ok(())
        }
    }

    async fn settle(metrics: &AccessLogMetrics, done: impl Fn(&AccessLogMetrics) -> bool) {
        for _ in 0..500 {
            if done(metrics) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("delivery did not settle");
    }

    #[tokio::test]
    async fn retries_with_backoff_then_counts_failures() {
        let labels = AccessLogMetrics::labels("file");
        let dir = tempfile::tempdir().unwrap();
        let events = EventStore::open(&dir.path().join("e.db")).await.unwrap();
        // The backoff's sleeps pass in virtual time.
        tokio::time::pause();
        for (failures, delivered, failed) in [(0, 3, 0), (RETRIES, 3, 0), (RETRIES + 1, 0, 3)] {
            let metrics = Arc::new(AccessLogMetrics::default());
            let written = Arc::new(std::sync::Mutex::new(Vec::new()));
            let d = Dispatcher::with_sink(
                events.clone(),
                Some(Flaky {
                    failures,
                    written: Arc::clone(&written),
                }),
                Arc::clone(&metrics),
            );
            for r in ["a", "b", "c"] {
                d.offer(None, Arc::from(r));
            }
            settle(&metrics, |m| {
                m.delivered.get_or_create(&labels).get() + m.failed.get_or_create(&labels).get()
                    == 3
            })
            .await;
            assert_eq!(
                metrics.delivered.get_or_create(&labels).get(),
                delivered,
                "{failures}"
            );
            assert_eq!(
                metrics.failed.get_or_create(&labels).get(),
                failed,
                "{failures}"
            );
            assert_eq!(metrics.queued.get_or_create(&labels).get(), 0);
            assert_eq!(written.lock().unwrap().len() as u64, delivered);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let metrics = Arc::new(AccessLogMetrics::default());
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        let events = EventStore::open(&tempfile::tempdir().unwrap().path().join("e.db"))
            .await
            .unwrap();
        let d = Dispatcher::with_sink(
            events,
            Some(Flaky {
                failures: 0,
                written: Arc::clone(&written),
            }),
            Arc::clone(&metrics),
        );
        // On a current-thread runtime the worker cannot run until this task yields: the queue
        // fills and the rest is dropped, synchronously.
        for _ in 0..QUEUE_CAPACITY + 5 {
            d.offer(None, Arc::from("r"));
        }
        let labels = AccessLogMetrics::labels("file");
        assert_eq!(metrics.dropped.get_or_create(&labels).get(), 5);
        assert_eq!(
            metrics.queued.get_or_create(&labels).get(),
            QUEUE_CAPACITY as i64
        );
        settle(&metrics, |m| {
            m.delivered.get_or_create(&labels).get() == QUEUE_CAPACITY as u64
        })
        .await;
        assert_eq!(written.lock().unwrap().len(), QUEUE_CAPACITY);
    }

    #[tokio::test]
    async fn an_idle_queue_retires_and_keeps_what_it_holds() {
        tokio::time::pause();
        let metrics = Arc::new(AccessLogMetrics::default());
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        let queues = Queues::default();
        let key = "als-1\narn".to_string();
        let (q, _worker) = spawn(
            Flaky {
                failures: 0,
                written: Arc::clone(&written),
            },
            Arc::clone(&metrics),
            Some(Retire {
                queues: Arc::downgrade(&queues),
                key: key.clone(),
                id: 0,
            }),
        );
        let tx = q.tx.clone();
        queues.write().unwrap().insert(key.clone(), q);
        tx.try_send(Arc::from("one")).unwrap();
        let labels = AccessLogMetrics::labels("file");
        // Nothing counted this record as accepted (it bypassed `push`): wait on the sink.
        for _ in 0..100 {
            if written.lock().unwrap().len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(written.lock().unwrap().len(), 1);
        // Idle for longer than IDLE_RETIRE: the queue leaves the map.
        tokio::time::sleep(IDLE_RETIRE + Duration::from_secs(1)).await;
        assert!(queues.read().unwrap().get(&key).is_none());
        // A record sent by a holder of the old sender still arrives; then the worker ends.
        tx.try_send(Arc::from("two")).unwrap();
        drop(tx);
        for _ in 0..100 {
            if written.lock().unwrap().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(*written.lock().unwrap(), ["one", "two"]);
        assert_eq!(metrics.failed.get_or_create(&labels).get(), 0);
    }

    #[tokio::test]
    async fn close_writes_what_the_queues_hold() {
        let metrics = Arc::new(AccessLogMetrics::default());
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        let dir = tempfile::tempdir().unwrap();
        let events = EventStore::open(&dir.path().join("e.db")).await.unwrap();
        let d = Dispatcher::with_sink(
            events.clone(),
            Some(Flaky {
                failures: 0,
                written: Arc::clone(&written),
            }),
            Arc::clone(&metrics),
        );
        let delivery = Delivery {
            subscription: "als-1",
            destination_arn: "arn:aws:logs:us-west-2:111122223333:log-group:g",
            resource: "svc-1",
        };
        for i in 0..50 {
            d.offer(None, Arc::from(format!("{i}")));
            d.offer(Some(delivery), Arc::from(format!("{{\"i\":{i}}}")));
        }
        d.close(Duration::from_secs(30)).await;
        assert_eq!(written.lock().unwrap().len(), 50);
        let got = events
            .read(&crate::events::Query {
                group: "arn:aws:logs:us-west-2:111122223333:log-group:g",
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(got.len(), 50);
        // Afterwards nothing is taken, and no queue is created again.
        d.offer(None, Arc::from("late"));
        d.offer(Some(delivery), Arc::from("late"));
        assert_eq!(written.lock().unwrap().len(), 50);
        assert!(d.queues.read().unwrap().is_empty());
        let labels = AccessLogMetrics::labels("log-group");
        assert_eq!(metrics.dropped.get_or_create(&labels).get(), 1);
    }
}
