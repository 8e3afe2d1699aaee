//! Embedded schema migrations, applied on connect inside one locked transaction.
//!
//! Hand-run rather than `sqlx::migrate!`: that macro needs sqlx's proc-macro feature, and its
//! checksum table differs per backend, while our SQL is portable and a version list is all we need.

use crate::backend::{Conn, Pool, on_conn};
use crate::error::backend;
use crate::{Result, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// In version order. A migration is never edited once released; add a new one instead.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "blobs",
        sql: include_str!("../migrations/0002_blobs.sql"),
    },
    Migration {
        version: 3,
        name: "refs_by_ref_covering",
        sql: include_str!("../migrations/0003_refs_by_ref_covering.sql"),
    },
    Migration {
        version: 4,
        name: "accounts",
        sql: include_str!("../migrations/0004_accounts.sql"),
    },
];

/// PostgreSQL advisory lock key held while migrating, so nodes starting together do not race
/// (the bytes spell "trellis").
const MIGRATION_LOCK_KEY: i64 = 0x0074_7265_6c6c_6973;

const CREATE_SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS trellis_schema (\
     version BIGINT NOT NULL PRIMARY KEY, name TEXT NOT NULL)";

/// Applies every migration the database has not seen yet. The write transaction serializes
/// concurrent starters (SQLite's `BEGIN IMMEDIATE`; PostgreSQL's advisory lock, taken before the
/// `CREATE TABLE IF NOT EXISTS`, which is itself not safe to run concurrently there).
pub(crate) async fn run(pool: &Pool) -> Result<()> {
    let mut conn = pool.begin_write().await?;
    match apply(&mut conn).await {
        Ok(()) => conn
            .commit()
            .await
            .map_err(|e| backend("commit migrations", e)),
        Err(e) => {
            let _ = conn.rollback().await;
            Err(e)
        }
    }
}

async fn apply(conn: &mut Conn) -> Result<()> {
    if let Conn::Postgres(c, limit) = conn {
        // A node starting while another migrates waits for it however long that takes, and a
        // migration may rewrite a large table: the session's lock and statement timeouts (meant
        // for the request path) do not apply here, nor does the node's own limit.
        *limit = None;
        sqlx::raw_sql("SET LOCAL lock_timeout = 0; SET LOCAL statement_timeout = 0")
            .execute(&mut **c)
            .await
            .map_err(|e| backend("lift timeouts for migration", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut **c)
            .await
            .map_err(|e| backend("lock schema for migration", e))?;
    }
    on_conn!(&mut *conn, c => sqlx::raw_sql(CREATE_SCHEMA_TABLE).execute(&mut **c).await.map(|r| r.rows_affected()))
        .map_err(|e| backend("create schema version table", e))?;
    let applied: Vec<i64> = on_conn!(&mut *conn, c => sqlx::query_scalar::<_, i64>(
            "SELECT version FROM trellis_schema ORDER BY version")
        .fetch_all(&mut **c)
        .await)
    .map_err(|e| backend("read schema version", e))?;

    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&newest) = applied.last()
        && newest > known
    {
        return Err(StoreError::Backend(format!(
            "the database schema is at version {newest}, newer than this build of trellis \
             understands (version {known}); run a newer trellis"
        )));
    }

    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        on_conn!(&mut *conn, c => sqlx::raw_sql(m.sql).execute(&mut **c).await.map(|r| r.rows_affected()))
            .map_err(|e| backend(&format!("apply migration {} ({})", m.version, m.name), e))?;
        on_conn!(&mut *conn, c => sqlx::query(
                "INSERT INTO trellis_schema (version, name) VALUES ($1, $2)")
            .bind(m.version)
            .bind(m.name)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| backend("record schema version", e))?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied store migration"
        );
    }
    Ok(())
}
