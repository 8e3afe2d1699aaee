//! Desired-state store: generic resource records in SQLite (default) or PostgreSQL, a global
//! revision bumped by every committed write, and a change feed that publishes it.
//!
//! # Design
//!
//! * **Two typed pools, one set of SQL.** The store holds either a `SqlitePool` or a `PgPool`
//!   (see `backend.rs`) and every statement is written once, in the SQL subset both engines accept
//!   (`$n` placeholders work on SQLite too). The `Any` driver was the alternative; it was not used
//!   because it re-parses the URL and drops typed SQLite options (WAL, `synchronous=FULL`,
//!   busy timeout), and because the PostgreSQL change feed needs a real `PgPool` for `PgListener`
//!   anyway. The only per-backend code is how a transaction begins and how commits are announced.
//! * **Serialized writers.** [`Store::write`] takes a process-local async mutex (a fair FIFO queue,
//!   so in-process writers never spin in SQLite's busy handler) and then the database's own write
//!   lock, which also serializes writers in other processes and on other nodes: SQLite begins with
//!   `BEGIN IMMEDIATE`; on both engines the first statement is
//!   `UPDATE meta SET revision = revision + 1 … RETURNING revision`, which on PostgreSQL holds the
//!   `meta` row lock until commit. The bumped value is the revision the transaction commits as;
//!   a rollback undoes the bump.
//! * **Consistent reads.** [`Store::read`] begins a deferred SQLite transaction (a WAL snapshot)
//!   or a PostgreSQL `REPEATABLE READ READ ONLY` one, and pins the snapshot by reading the
//!   revision first.
//! * **Change feed.** A `tokio::sync::watch` holds the newest revision known to this process. It is
//!   advanced after every local commit, by a background poll of `meta.revision` (other processes
//!   on the same SQLite file, other PostgreSQL nodes, notifications missed while disconnected) and,
//!   on PostgreSQL, by a `LISTEN trellis_revision` task fed by the `NOTIFY` each write sends inside
//!   its transaction. The feed only moves forward.
//! * **Schema** (`migrations/`, applied on connect, versions in `trellis_schema`): `meta` (the
//!   single row with `revision` and the `last_seq` counter), `records` (PK `(kind, id)`, unique
//!   `(kind, coalesce(parent, ''), name)` where `name` is set, unique `arn` where set, JSON `body`
//!   and `refs` as TEXT), `record_refs` (the deduplicated `(kind, id, ref_id)` index behind
//!   [`Tx::list_referencing`]), `idempotency` (`(scope, token)` → request hash and response) and
//!   `blobs` (content-addressed bytes keyed by their SHA-256, for function code; see
//!   [`Tx::put_blob`]).
//!   A parent of `""` shares the top-level scope with `None`; ids are never empty in practice.
//! * **Errors.** Uniqueness violations are `Conflict` and leave the transaction usable on both
//!   engines (each insert/update runs under a savepoint). Any other failed statement poisons the
//!   transaction: later calls and `commit` return an error, and nothing is committed. Failures
//!   that say "not now" — no connection within the acquire timeout, a broken connection, the
//!   server shutting down, a lock, statement or idle-in-transaction timeout, SQLite still busy
//!   after its busy timeout — are `Unavailable`; a connection lost while `COMMIT` was in flight is
//!   `CommitUnknown` (the write may or may not have been applied); the rest is `Backend`.
//! * **Bounded waits on PostgreSQL** ([`PgLimits`]). Every connection starts its session with a
//!   `statement_timeout`, a `lock_timeout`, an `idle_in_transaction_session_timeout` and TCP
//!   keepalives, so that a node stopped or cut off in the middle of a write holds the writer
//!   lock only until the database ends its session; the pool's acquire timeout is short and a
//!   writer's wait in this process's queue is bounded by the lock timeout, so a database that is
//!   gone costs a request about that long, not a hang. The node also gives up on any one round
//!   trip after `statement_timeout` plus a margin (`backend::bounded`), for a database that stops
//!   answering without closing the connection. Migrations lift the lock and statement timeouts,
//!   and that bound, for their own transaction.
//!
//! Keep read transactions short: on SQLite an open reader stops the WAL from being checkpointed,
//! on PostgreSQL it holds back vacuum; a write transaction blocks every other writer.
//!
//! Tests: `cargo test -p trellis-store` runs the conformance suite on SQLite and, when
//! `TRELLIS_TEST_POSTGRES_URL` is set, on PostgreSQL; `scripts/with-postgres cargo test -p
//! trellis-store` provides a throwaway server for it.

mod backend;
mod error;
mod feed;
mod migrate;
mod tx;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::backend::Pool;
pub use crate::tx::Tx;

/// The global revision: bumped by exactly one for every committed write transaction.
pub type Revision = u64;

/// The PostgreSQL channel every write transaction notifies with its revision (decimal text).
pub const NOTIFY_CHANNEL: &str = "trellis_revision";

/// One stored resource. The store knows nothing about Lattice: `kind` is an opaque string
/// ("service", "listener", ...), `body` is the resource's JSON document.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub kind: String,
    pub id: String,
    /// The owning resource's id (listener → service, rule → listener, target → target group).
    pub parent: Option<String>,
    /// When set, unique per (kind, parent) — parent `None` is its own scope.
    pub name: Option<String>,
    /// When set, unique across all records; lookups by ARN use it.
    pub arn: Option<String>,
    /// Ids of other records this one points at, for "who references X" queries.
    pub refs: Vec<String>,
    pub body: serde_json::Value,
    /// Insertion order, assigned by the store on insert (ignored on input). Lists are ordered by it.
    pub seq: i64,
}

/// One page of [`Tx::list_json`].
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPage {
    /// A JSON array with one `[id, parent, body]` array per record, in insertion order (`parent`
    /// is `null` for top-level records, `body` the stored document).
    pub json: String,
    /// How many records the page holds.
    pub count: usize,
    /// The `seq` of the page's last record: the `after_seq` of the next page.
    pub last_seq: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IdempotencyEntry {
    pub request_hash: String,
    pub response: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint failed: (kind, id), (kind, parent, name) or arn.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("store backend error: {0}")]
    Backend(String),
    /// The database could not be reached or did not answer in time: the pool had no connection
    /// within the acquire timeout, the connection broke, the server is shutting down, or a
    /// statement hit the lock or statement timeout. Nothing was committed; the request may be
    /// retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The connection failed while `COMMIT` was in flight: the write may or may not have been
    /// applied. A retry with the same idempotency token is safe.
    #[error("store commit outcome unknown: {0}")]
    CommitUnknown(String),
}

impl StoreError {
    /// Whether this is [`StoreError::Unavailable`] or [`StoreError::CommitUnknown`]: the store,
    /// not the request, is at fault, and the same request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::CommitUnknown(_)
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Tuning knobs for [`Store::connect_with`]. [`Store::connect`] uses the defaults.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How often a background task re-reads `meta.revision` to notice commits made elsewhere
    /// (another process on the same SQLite file, another PostgreSQL node whose `NOTIFY` was missed).
    /// `None` disables polling. Default: one second.
    pub poll_interval: Option<Duration>,
    /// PostgreSQL only: follow other nodes' commits through `LISTEN trellis_revision`.
    /// Default: true.
    pub listen: bool,
    /// Upper bound on pooled connections. Default: 10.
    pub max_connections: u32,
    /// SQLite only: how long a writer waits for another process's write lock before failing.
    /// Default: 30 seconds.
    pub busy_timeout: Duration,
    /// PostgreSQL only: the session limits every pooled connection gets (see [`PgLimits`]).
    pub postgres: PgLimits,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            poll_interval: Some(Duration::from_secs(1)),
            listen: true,
            max_connections: 10,
            busy_timeout: Duration::from_secs(30),
            postgres: PgLimits::default(),
        }
    }
}

/// How long a PostgreSQL node waits for the database before it gives up, so that a database
/// that is gone, slow or held by a stuck node costs each request a bounded wait instead of a
/// hang. Every pooled connection (and the `LISTEN` connection) starts its session with these
/// settings; `None` leaves the server's own setting (PostgreSQL's default: no limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgLimits {
    /// `statement_timeout`: the longest any one statement may run. Default: 30 seconds.
    pub statement_timeout: Option<Duration>,
    /// `lock_timeout`: the longest a statement waits for a lock — above all the writer lock (the
    /// `meta` row) that another node holds while it writes. Also bounds the wait in this
    /// process's own writer queue. Default: 5 seconds.
    pub lock_timeout: Option<Duration>,
    /// `idle_in_transaction_session_timeout`: the database ends a session that sits in an open
    /// transaction doing nothing for this long, releasing its locks — a node stopped (SIGSTOP, a
    /// VM pause) or cut off while it held the writer lock blocks the others' writes no longer
    /// than this. Default: 10 seconds.
    pub idle_in_transaction_timeout: Option<Duration>,
    /// `tcp_keepalives_idle` (the probe interval is half of it, three probes): the database
    /// notices a node that vanished without closing its connections (power loss, a network
    /// partition) and ends its sessions. Default: 10 seconds.
    pub keepalive: Option<Duration>,
    /// How long a request waits for a pooled connection (including opening one) before the store
    /// answers [`StoreError::Unavailable`]. Default: 2 seconds.
    pub acquire_timeout: Duration,
}

impl Default for PgLimits {
    fn default() -> Self {
        PgLimits {
            statement_timeout: Some(Duration::from_secs(30)),
            lock_timeout: Some(Duration::from_secs(5)),
            idle_in_transaction_timeout: Some(Duration::from_secs(10)),
            keepalive: Some(Duration::from_secs(10)),
            acquire_timeout: Duration::from_secs(2),
        }
    }
}

/// A handle to the store; cheap to clone, all clones share one pool and one change feed.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    /// The account this handle's transactions act for ([`Store::scoped`]); `None` for every
    /// account.
    account: Option<Arc<str>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("feed_revision", &*self.inner.feed.borrow())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pool: Pool,
    feed: watch::Sender<Revision>,
    /// Queues this process's writers before they reach the database lock (see the module docs).
    write_lock: Arc<Mutex<()>>,
    /// How long a writer waits in that queue before the store reports itself unavailable
    /// (PostgreSQL: the lock timeout, since the writer ahead may be waiting on another node;
    /// SQLite: no bound, the writer ahead holds the file's lock only briefly).
    write_queue_timeout: Option<Duration>,
    /// Background tasks stop when this is set or dropped (the last `Store` clone going away).
    shutdown: watch::Sender<bool>,
}

impl Store {
    /// `url`: `sqlite:///abs/path/file.db` (created if missing) or `postgres://…`. Runs the embedded
    /// migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        Store::connect_with(url, StoreOptions::default()).await
    }

    /// [`Store::connect`] with explicit [`StoreOptions`].
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<Store> {
        let pool = backend::open(url, &options).await?;
        let write_queue_timeout = match pool.backend() {
            Backend::Postgres => options.postgres.lock_timeout,
            Backend::Sqlite => None,
        };
        migrate::run(&pool).await?;
        let revision = pool.revision().await?;

        let (feed, _) = watch::channel(revision);
        let (shutdown, _) = watch::channel(false);
        feed::spawn(&pool, &options, &feed, &shutdown);

        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                feed,
                write_lock: Arc::new(Mutex::new(())),
                write_queue_timeout,
                shutdown,
            }),
            account: None,
        })
    }

    /// The `sqlite://` URL for a database file, escaping the characters the URL form reserves.
    pub fn sqlite_url(path: &Path) -> String {
        let mut url = String::from("sqlite://");
        for c in path.to_string_lossy().chars() {
            match c {
                '%' => url.push_str("%25"),
                '?' => url.push_str("%3F"),
                '#' => url.push_str("%23"),
                c => url.push(c),
            }
        }
        url
    }

    /// A handle on the same store whose transactions act for `account`: they see only that
    /// account's records and the records of no account, what they insert belongs to `account`,
    /// and their idempotency tokens are the account's own. Names are unique per account.
    pub fn scoped(&self, account: &str) -> Store {
        Store {
            inner: Arc::clone(&self.inner),
            account: Some(Arc::from(account)),
        }
    }

    /// A handle on the same store that sees every account's records; what it inserts belongs to
    /// no account (records every account must see, such as the organization).
    pub fn unscoped(&self) -> Store {
        Store {
            inner: Arc::clone(&self.inner),
            account: None,
        }
    }

    /// The account this handle acts for, `None` when it sees every account.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// Gives every record of no account to `account`, except those of the `keep` kinds (which
    /// belong to no account by design). Records written before accounts existed (schema
    /// version 4) have no account; the server calls this at start with the management account so
    /// that an upgrade keeps every resource where it was. Commits (one revision) only when a
    /// record moved; returns how many did.
    pub async fn adopt_unowned(&self, account: &str, keep: &[&str]) -> Result<u64> {
        let mut tx = self.unscoped().write().await?;
        let moved = tx.adopt_unowned(account, keep).await?;
        if moved > 0 {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(moved)
    }

    pub fn backend(&self) -> Backend {
        self.inner.pool.backend()
    }

    /// The committed revision as the database has it now (not the feed's view).
    pub async fn revision(&self) -> Result<Revision> {
        self.inner.pool.revision().await
    }

    /// Whether the database answers now: reads the revision, giving up after `within` (a
    /// connection that hangs without failing — a network partition — is cut short here, not by
    /// the driver). For health checks.
    pub async fn probe(&self, within: Duration) -> Result<Revision> {
        tokio::time::timeout(within, self.revision())
            .await
            .map_err(|_| StoreError::Unavailable(format!("no answer within {within:?}")))?
    }

    /// The change feed: the latest committed revision (local commits and, on PostgreSQL, other nodes').
    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.inner.feed.subscribe()
    }

    /// A read transaction: consistent view; dropping it rolls back.
    pub async fn read(&self) -> Result<Tx> {
        let mut conn = self.inner.pool.begin_read().await?;
        let revision = match conn.read_revision().await {
            Ok(revision) => revision,
            Err(e) => {
                let _ = conn.rollback().await;
                return Err(e);
            }
        };
        Ok(Tx::new(
            conn,
            self.inner.clone(),
            revision,
            None,
            self.account.clone(),
        ))
    }

    /// A write transaction: writers are serialized; `commit` bumps the revision.
    pub async fn write(&self) -> Result<Tx> {
        let queued = self.inner.write_lock.clone().lock_owned();
        let guard = match self.inner.write_queue_timeout {
            None => queued.await,
            Some(limit) => tokio::time::timeout(limit, queued).await.map_err(|_| {
                StoreError::Unavailable(format!(
                    "waited {limit:?} behind this node's other writers, which are waiting for \
                     the database's writer lock"
                ))
            })?,
        };
        let mut conn = self.inner.pool.begin_write().await?;
        let revision = match conn.bump_revision().await {
            Ok(revision) => revision,
            Err(e) => {
                let _ = conn.rollback().await;
                return Err(e);
            }
        };
        Ok(Tx::new(
            conn,
            self.inner.clone(),
            revision,
            Some(guard),
            self.account.clone(),
        ))
    }

    /// Stops the background feed tasks and closes the pool; every clone of this store is closed.
    pub async fn close(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.pool.close().await;
    }
}

impl Inner {
    /// Moves the feed forward to `revision`; never backwards, since local commits, the poll and
    /// notifications can report revisions out of order.
    pub(crate) fn publish(&self, revision: Revision) {
        feed::publish(&self.feed, revision);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API holds these across `.await` points in spawned handlers.
    #[test]
    fn handles_are_send_and_sync() {
        fn send_sync<T: Send + Sync + 'static>() {}
        fn send<T: Send + 'static>() {}
        send_sync::<Store>();
        send::<Tx>();
        send_sync::<StoreError>();
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    /// `Tx::list_referencing` must be driven by the covering by-reference index, or its cost grows
    /// with the number of records of the kind (every CreateRule asks it). SQLite has no
    /// statistics, so the plan depends only on the query's shape and the indexes: check it.
    #[tokio::test]
    async fn list_referencing_uses_the_by_reference_index_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(&dir.path().join("plan.db")))
            .await
            .unwrap();
        let Pool::Sqlite(pool) = &store.inner.pool else {
            unreachable!("a sqlite URL opens a SQLite pool");
        };
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            // A constant of this crate prefixed with a constant: nothing from outside.
            "EXPLAIN QUERY PLAN {}",
            tx::LIST_REFERENCING
        )))
        .bind("rule")
        .bind("tg-0123456789abcdef0")
        .fetch_all(pool)
        .await
        .unwrap();
        let steps: Vec<&str> = plan
            .iter()
            .map(|(_, _, _, detail)| detail.as_str())
            .collect();
        assert!(
            steps[0].contains("record_refs_by_ref (ref_id=? AND kind=?)"),
            "{steps:?}"
        );
        assert!(
            steps.iter().all(|s| !s.contains("records_kind_seq")),
            "{steps:?}"
        );
        store.close().await;
    }
}
