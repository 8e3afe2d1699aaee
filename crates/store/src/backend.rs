//! The two database engines behind one enum: opening a pool from a URL, beginning transactions the
//! way each engine needs them, and the `on_conn!` macro that runs one piece of SQL code on either.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Postgres, Sqlite, Transaction};

use crate::error::{db, redact};
use crate::{Backend, PgLimits, Result, Revision, StoreError, StoreOptions};

/// Runs `$body` with `$c` bound to the open transaction of whichever engine `$conn` holds. The
/// body is expanded once per engine, so the same source compiles against both drivers' types;
/// both arms must evaluate to the same `Result<_, sqlx::Error>` (rows are decoded into tuples for
/// that reason). On PostgreSQL the body is bounded by the connection's client-side limit
/// ([`bounded`]).
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::backend::Conn::Sqlite($c) => $body,
            $crate::backend::Conn::Postgres($c, limit) => {
                $crate::backend::bounded(*limit, async { $body }).await
            }
        }
    };
}
pub(crate) use on_conn;

/// A direct PostgreSQL connection attempt gives up after this long, so a server pointed at an
/// unreachable host fails at startup instead of hanging in TCP retries.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How much longer than `statement_timeout` the node itself waits for an answer. The database
/// cancels a statement at its timeout and answers at once; no answer by this margin later means
/// the answer is not coming (a network that drops packets silently, a database host that froze),
/// and the node gives up rather than wait for the operating system's TCP timeout.
const CLIENT_MARGIN: Duration = Duration::from_secs(5);

const SELECT_REVISION: &str = "SELECT revision FROM meta WHERE id = 1";
const BUMP_REVISION: &str =
    "UPDATE meta SET revision = revision + 1 WHERE id = 1 RETURNING revision";

/// A PostgreSQL pool carries its client-side limit: how long the node waits for any one answer
/// (`statement_timeout` plus [`CLIENT_MARGIN`]; `None` when statements are not limited).
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool, Option<Duration>),
}

/// An open transaction on either engine. Dropping it rolls back (sqlx queues the `ROLLBACK`).
/// A PostgreSQL transaction keeps its pool's client-side limit.
pub(crate) enum Conn {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>, Option<Duration>),
}

/// `fut` (one round trip to PostgreSQL), given up after `limit` as an I/O timeout — which the
/// store classifies as `Unavailable`, or `CommitUnknown` for a `COMMIT`. The abandoned
/// connection is not reused: its transaction is dropped, and the pool's ping before the next
/// use fails on it.
pub(crate) async fn bounded<T>(
    limit: Option<Duration>,
    fut: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    match limit {
        None => fut.await,
        Some(limit) => tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer from the database within {limit:?}"),
            )))
        }),
    }
}

/// Opens a pool for `url` and checks that the database is reachable; every failure is a
/// `Backend` error whose message names the store (the server prints it and exits).
pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Pool> {
    if url.starts_with("sqlite:") {
        open_sqlite(url, options).await.map(Pool::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let limit = options
            .postgres
            .statement_timeout
            .map(|t| t + CLIENT_MARGIN);
        open_postgres(url, options)
            .await
            .map(|pool| Pool::Postgres(pool, limit))
    } else {
        Err(StoreError::Backend(format!(
            "unsupported store URL {:?}: expected sqlite:///path/to/trellis.db or postgres://…",
            redact(url)
        )))
    }
}

async fn open_sqlite(url: &str, options: &StoreOptions) -> Result<SqlitePool> {
    // An in-memory database lives only as long as its connections and shares a cache with
    // table-level locks that the busy timeout does not cover: not a store worth offering.
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Err(StoreError::Backend(format!(
            "in-memory SQLite ({url}) is not supported as a store; use a file path"
        )));
    }
    let connect = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Backend(format!("invalid SQLite store URL {url:?}: {e}")))?;
    let path = connect.get_filename().display().to_string();
    // WAL lets readers run beside the single writer; synchronous=FULL fsyncs the WAL on every
    // commit so an acknowledged write survives a crash; the busy timeout is how long a writer
    // waits for another process's write lock (in-process writers queue on a mutex instead).
    let connect = connect
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(options.busy_timeout);
    let pool_options = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .after_release(|conn, _| Box::pin(release_outside_transaction(conn)));
    // Switching a new file to WAL needs an exclusive lock that SQLite does not wait for with
    // the busy timeout, so processes opening a fresh file together can see SQLITE_BUSY here.
    // The switch is quick and happens once per file: retry within the busy timeout.
    let deadline = tokio::time::Instant::now() + options.busy_timeout;
    loop {
        match pool_options.clone().connect_with(connect.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(e) if is_sqlite_busy(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot open SQLite store at {path}: {e}"
                )));
            }
        }
    }
}

/// Whether a connection handed back to the pool may be reused: only if it is outside any
/// transaction. A `COMMIT` that fails with SQLITE_FULL (a full disk) can make SQLite roll the
/// transaction back itself; sqlx then still counts it open, its `ROLLBACK` on drop fails ("no
/// transaction is active") and the count never returns to zero, so every later `BEGIN
/// IMMEDIATE` on that connection failed ("begin_with at non-zero transaction depth") and the
/// store refused all writes until a restart, even after space was freed. The ping waits for the
/// rollback sqlx queued when the transaction was dropped; a connection still in a transaction
/// after it is closed instead of reused (the pool opens a fresh one).
async fn release_outside_transaction(
    conn: &mut sqlx::SqliteConnection,
) -> Result<bool, sqlx::Error> {
    conn.ping().await?;
    Ok(!conn.is_in_transaction())
}

/// SQLITE_BUSY, including its extended codes (the primary code is the low byte).
fn is_sqlite_busy(e: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i64 = 5;
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_BUSY),
        _ => false,
    }
}

async fn open_postgres(url: &str, options: &StoreOptions) -> Result<PgPool> {
    let shown = redact(url);
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL store URL {shown}: {e}")))?
        .options(session_settings(&options.postgres));
    // One direct connection first: a pool retries failed connects until its acquire timeout,
    // but a bad URL or a server that is down should be reported at once and precisely.
    match tokio::time::timeout(PG_CONNECT_TIMEOUT, PgConnection::connect_with(&connect)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
        Ok(Err(e)) => {
            return Err(StoreError::Backend(format!(
                "cannot connect to PostgreSQL store {shown}: {e}"
            )));
        }
        Err(_) => {
            return Err(StoreError::Backend(format!(
                "cannot connect to PostgreSQL store {shown}: timed out after {}s",
                PG_CONNECT_TIMEOUT.as_secs()
            )));
        }
    }
    // The pool pings a connection before handing it out (sqlx's default), so a connection the
    // database dropped is replaced, and the acquire timeout bounds that ping too.
    Ok(PgPoolOptions::new()
        .max_connections(options.max_connections.max(2))
        .acquire_timeout(options.postgres.acquire_timeout)
        .connect_lazy_with(connect))
}

/// The session settings every PostgreSQL connection starts with (sent as `-c name=value` in the
/// startup packet, so they hold from the first statement and survive `DISCARD ALL`). Values are
/// in milliseconds or seconds, PostgreSQL's units for these settings; 0 means "no limit".
fn session_settings(limits: &PgLimits) -> Vec<(&'static str, String)> {
    let ms = |d: Option<Duration>| d.map_or(0, |d| d.as_millis().max(1)).to_string();
    let mut settings = vec![
        ("statement_timeout", ms(limits.statement_timeout)),
        ("lock_timeout", ms(limits.lock_timeout)),
        (
            "idle_in_transaction_session_timeout",
            ms(limits.idle_in_transaction_timeout),
        ),
    ];
    if let Some(idle) = limits.keepalive {
        let idle = idle.as_secs().max(1);
        settings.push(("tcp_keepalives_idle", idle.to_string()));
        settings.push(("tcp_keepalives_interval", (idle / 2).max(1).to_string()));
        settings.push(("tcp_keepalives_count", "3".to_string()));
    }
    settings
}

pub(crate) fn to_revision(value: i64) -> Result<Revision> {
    Revision::try_from(value)
        .map_err(|_| StoreError::Backend(format!("meta.revision holds a negative value {value}")))
}

impl Pool {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(..) => Backend::Postgres,
        }
    }

    /// A transaction with a stable snapshot. SQLite's deferred `BEGIN` takes its WAL snapshot at
    /// the first read (the caller reads the revision at once); PostgreSQL needs REPEATABLE READ,
    /// because its default READ COMMITTED takes a new snapshot per statement.
    pub(crate) async fn begin_read(&self) -> Result<Conn> {
        match self {
            Pool::Sqlite(p) => p.begin().await.map(Conn::Sqlite),
            Pool::Postgres(p, limit) => bounded(
                *limit,
                p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
            )
            .await
            .map(|t| Conn::Postgres(t, *limit)),
        }
        .map_err(|e| db("begin read transaction", e))
    }

    /// A transaction that will write. SQLite takes the database write lock at `BEGIN IMMEDIATE`,
    /// so the transaction never has to upgrade a read lock (which could fail with SQLITE_BUSY
    /// mid-transaction). PostgreSQL stays in READ COMMITTED: the caller's first statement locks
    /// the `meta` row, and every later statement sees everything committed before that lock.
    pub(crate) async fn begin_write(&self) -> Result<Conn> {
        match self {
            Pool::Sqlite(p) => p.begin_with("BEGIN IMMEDIATE").await.map(Conn::Sqlite),
            Pool::Postgres(p, limit) => bounded(*limit, p.begin())
                .await
                .map(|t| Conn::Postgres(t, *limit)),
        }
        .map_err(|e| db("begin write transaction", e))
    }

    pub(crate) async fn revision(&self) -> Result<Revision> {
        let value = match self {
            Pool::Sqlite(p) => {
                sqlx::query_scalar::<_, i64>(SELECT_REVISION)
                    .fetch_one(p)
                    .await
            }
            Pool::Postgres(p, limit) => {
                bounded(
                    *limit,
                    sqlx::query_scalar::<_, i64>(SELECT_REVISION).fetch_one(p),
                )
                .await
            }
        }
        .map_err(|e| db("read revision", e))?;
        to_revision(value)
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p, _) => p.close().await,
        }
    }
}

impl Conn {
    pub(crate) async fn read_revision(&mut self) -> Result<Revision> {
        let value = on_conn!(self, c => sqlx::query_scalar::<_, i64>(SELECT_REVISION)
            .fetch_one(&mut **c)
            .await)
        .map_err(|e| db("read revision", e))?;
        to_revision(value)
    }

    /// Bumps the global revision inside this transaction and returns the new value, which is the
    /// revision the transaction commits as. On PostgreSQL this statement is the writer lock.
    pub(crate) async fn bump_revision(&mut self) -> Result<Revision> {
        let value = on_conn!(self, c => sqlx::query_scalar::<_, i64>(BUMP_REVISION)
            .fetch_one(&mut **c)
            .await)
        .map_err(|e| db("bump revision", e))?;
        to_revision(value)
    }

    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Conn::Sqlite(t) => t.commit().await,
            Conn::Postgres(t, limit) => bounded(limit, t.commit()).await,
        }
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Conn::Sqlite(t) => t.rollback().await,
            Conn::Postgres(t, limit) => bounded(limit, t.rollback()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction that SQLite ended behind sqlx's back (as a `COMMIT` failing with SQLITE_FULL
    /// can) must not poison the pool: with one connection, the next write transaction begins.
    #[tokio::test]
    async fn a_connection_left_in_a_transaction_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let options = StoreOptions {
            max_connections: 1,
            ..StoreOptions::default()
        };
        let pool = open(&url, &options).await.unwrap();
        let mut conn = pool.begin_write().await.unwrap();
        // SQLite's own rollback: sqlx still counts the transaction open, and its ROLLBACK on
        // drop fails.
        on_conn!(&mut conn, c => sqlx::query("ROLLBACK").execute(&mut **c).await.map(|_| ()))
            .unwrap();
        drop(conn);
        for _ in 0..3 {
            let conn = pool.begin_write().await.expect("a fresh write transaction");
            conn.rollback().await.unwrap();
        }
    }
}
