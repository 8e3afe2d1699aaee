//! The log events of hosted log groups: a SQLite database of its own in the data dir
//! (`DATA_DIR/logs/events.db`), never the config store. Events are not configuration: writing
//! them through the store's revisioned records would bump the revision (and rebuild the data
//! plane's snapshot) per request. With several nodes on one PostgreSQL store, each node keeps the
//! events it wrote (its own requests' access logs and PutLogEvents calls it served), and
//! GetLogEvents / FilterLogEvents read that node's events (docs/decisions.md, "Log events").
//!
//! Log streams live here too (a stream is created by the first event written to it as often as
//! by CreateLogStream); log groups are configuration and live in the store.
//!
//! Writes are batched by the callers (one transaction per PutLogEvents call or per delivery
//! batch); SQLite serializes them. Reads page by `(timestamp, event id)`.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, Sqlite};

/// The event store failed (answered as an internal error).
#[derive(Debug, thiserror::Error)]
#[error("log event store: {0}")]
pub struct EventsError(String);

impl From<sqlx::Error> for EventsError {
    fn from(e: sqlx::Error) -> Self {
        EventsError(e.to_string())
    }
}

type Result<T> = std::result::Result<T, EventsError>;

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Increasing in insertion order; GetLogEvents' and FilterLogEvents' `eventId`.
    pub id: i64,
    pub stream: String,
    /// Milliseconds since the epoch, as the writer gave it.
    pub timestamp: i64,
    /// When it was stored, milliseconds since the epoch.
    pub ingestion_time: i64,
    pub message: String,
}

/// One stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub name: String,
    pub creation_time: i64,
    pub first_event: Option<i64>,
    pub last_event: Option<i64>,
    pub last_ingestion: Option<i64>,
    pub stored_bytes: i64,
}

/// Where a page of events starts: after this (timestamp, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub timestamp: i64,
    pub id: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.timestamp, self.id)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let (t, i) = s.split_once('_')?;
        Some(Cursor {
            timestamp: t.parse().ok()?,
            id: i.parse().ok()?,
        })
    }
}

/// What a query reads.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub group: &'a str,
    /// Only these streams (empty: all).
    pub streams: &'a [String],
    pub stream_prefix: Option<&'a str>,
    /// Inclusive, milliseconds.
    pub start: Option<i64>,
    /// Exclusive, milliseconds.
    pub end: Option<i64>,
    pub after: Option<Cursor>,
    /// Newest first (GetLogEvents without `startFromHead`).
    pub backwards: bool,
    pub limit: u32,
}

/// The event database.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: SqlitePool,
}

/// Events inserted per statement (five parameters each, well under SQLite's 32,766).
const INSERT_ROWS: usize = 500;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS streams (
        grp TEXT NOT NULL, name TEXT NOT NULL, created INTEGER NOT NULL,
        first_ts INTEGER, last_ts INTEGER, last_ingest INTEGER,
        stored_bytes INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (grp, name))",
    "CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        grp TEXT NOT NULL, stream TEXT NOT NULL,
        ts INTEGER NOT NULL, ingest INTEGER NOT NULL, message TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_by_time ON events (grp, ts, id)",
];

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl EventStore {
    /// Opens (creating) the database at `path`.
    pub async fn open(path: &Path) -> Result<EventStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| EventsError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let connect = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(connect)
            .await?;
        for &stmt in SCHEMA {
            sqlx::raw_sql(stmt).execute(&pool).await?;
        }
        Ok(EventStore { pool })
    }

    /// Creates a stream; `false` when it exists.
    pub async fn create_stream(&self, group: &str, stream: &str) -> Result<bool> {
        let r = sqlx::query("INSERT OR IGNORE INTO streams (grp, name, created) VALUES (?, ?, ?)")
            .bind(group)
            .bind(stream)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn stream_exists(&self, group: &str, stream: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM streams WHERE grp = ? AND name = ?")
            .bind(group)
            .bind(stream)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Deletes a stream and its events; `false` when there was none.
    pub async fn delete_stream(&self, group: &str, stream: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM events WHERE grp = ? AND stream = ?")
            .bind(group)
            .bind(stream)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM streams WHERE grp = ? AND name = ?")
            .bind(group)
            .bind(stream)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes every stream and event of a group (DeleteLogGroup; CreateLogGroup clears what a
    /// late delivery may have left under a deleted group's name).
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "DELETE FROM events WHERE grp = ?",
            "DELETE FROM streams WHERE grp = ?",
        ] {
            sqlx::query(table).bind(group).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Appends events `(timestamp, message)` to a stream in one transaction, creating the
    /// stream when `create` (a delivery) — else the caller checked it exists.
    pub async fn put(
        &self,
        group: &str,
        stream: &str,
        events: &[(i64, &str)],
        create: bool,
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        if create {
            sqlx::query("INSERT OR IGNORE INTO streams (grp, name, created) VALUES (?, ?, ?)")
                .bind(group)
                .bind(stream)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        let (mut first, mut last, mut bytes) = (i64::MAX, i64::MIN, 0i64);
        for (ts, message) in events {
            first = first.min(*ts);
            last = last.max(*ts);
            bytes += message.len() as i64;
        }
        // Many rows per statement: each statement is a round trip to SQLite's worker thread
        // (two thread wakeups), which cost more than the insert itself when made per event.
        for chunk in events.chunks(INSERT_ROWS) {
            let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (grp, stream, ts, ingest, message) ",
            );
            insert.push_values(chunk, |mut row, (ts, message)| {
                row.push_bind(group)
                    .push_bind(stream)
                    .push_bind(*ts)
                    .push_bind(now)
                    .push_bind(*message);
            });
            insert.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE streams SET first_ts = min(coalesce(first_ts, ?1), ?1),
                last_ts = max(coalesce(last_ts, ?2), ?2), last_ingest = ?3,
                stored_bytes = stored_bytes + ?4
             WHERE grp = ?5 AND name = ?6",
        )
        .bind(first)
        .bind(last)
        .bind(now)
        .bind(bytes)
        .bind(group)
        .bind(stream)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A group's streams in name order, after `after`, at most `limit`, names starting with
    /// `prefix`.
    pub async fn streams(
        &self,
        group: &str,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Stream>> {
        let rows = sqlx::query(
            "SELECT name, created, first_ts, last_ts, last_ingest, stored_bytes FROM streams
             WHERE grp = ? AND substr(name, 1, length(?)) = ? AND name > ?
             ORDER BY name LIMIT ?",
        )
        .bind(group)
        .bind(prefix.unwrap_or(""))
        .bind(prefix.unwrap_or(""))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Stream {
                name: r.get(0),
                creation_time: r.get(1),
                first_event: r.get(2),
                last_event: r.get(3),
                last_ingestion: r.get(4),
                stored_bytes: r.get(5),
            })
            .collect())
    }

    /// Bytes stored for a group (DescribeLogGroups' `storedBytes`).
    pub async fn stored_bytes(&self, group: &str) -> Result<i64> {
        let row = sqlx::query("SELECT coalesce(sum(stored_bytes), 0) FROM streams WHERE grp = ?")
            .bind(group)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }

    /// One page of events in time order (or reverse): the caller filters them.
    pub async fn read(&self, q: &Query<'_>) -> Result<Vec<Event>> {
        let mut sql = String::from(
            "SELECT id, stream, ts, ingest, message FROM events WHERE grp = ? AND ts >= ? AND ts < ?",
        );
        if !q.streams.is_empty() {
            sql.push_str(" AND stream IN (");
            sql.push_str(&vec!["?"; q.streams.len()].join(","));
            sql.push(')');
        }
        if q.stream_prefix.is_some() {
            sql.push_str(" AND substr(stream, 1, length(?)) = ?");
        }
        if q.after.is_some() {
            sql.push_str(if q.backwards {
                " AND (ts < ? OR (ts = ? AND id < ?))"
            } else {
                " AND (ts > ? OR (ts = ? AND id > ?))"
            });
        }
        sql.push_str(if q.backwards {
            " ORDER BY ts DESC, id DESC LIMIT ?"
        } else {
            " ORDER BY ts, id LIMIT ?"
        });
        // Built from fixed fragments only; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q.group)
            .bind(q.start.unwrap_or(i64::MIN))
            .bind(q.end.unwrap_or(i64::MAX));
        for s in q.streams {
            query = query.bind(s);
        }
        if let Some(p) = q.stream_prefix {
            query = query.bind(p).bind(p);
        }
        if let Some(c) = q.after {
            query = query.bind(c.timestamp).bind(c.timestamp).bind(c.id);
        }
        let rows = query.bind(i64::from(q.limit)).fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| Event {
                id: r.get(0),
                stream: r.get(1),
                timestamp: r.get(2),
                ingestion_time: r.get(3),
                message: r.get(4),
            })
            .collect())
    }

    /// Deletes a group's events older than `before` (retention); how many went.
    pub async fn expire(&self, group: &str, before: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM events WHERE grp = ? AND ts < ?")
            .bind(group)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Groups that have streams here (so retention can find groups deleted meanwhile).
    pub async fn groups(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT grp FROM streams")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_read_page_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(&dir.path().join("e.db")).await.unwrap();
        assert!(store.create_stream("g", "s1").await.unwrap());
        assert!(!store.create_stream("g", "s1").await.unwrap());
        store
            .put("g", "s1", &[(10, "a"), (30, "c")], false)
            .await
            .unwrap();
        store.put("g", "s2", &[(20, "b")], true).await.unwrap();
        store.put("other", "s1", &[(15, "x")], true).await.unwrap();
        let q = Query {
            group: "g",
            limit: 2,
            ..Query::default()
        };
        let page = store.read(&q).await.unwrap();
        let msgs: Vec<&str> = page.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs, ["a", "b"]);
        let last = page.last().unwrap();
        let q2 = Query {
            after: Some(Cursor {
                timestamp: last.timestamp,
                id: last.id,
            }),
            ..q.clone()
        };
        let page = store.read(&q2).await.unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].message, "c");
        let streams = store.streams("g", Some("s"), None, 10).await.unwrap();
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0].first_event, Some(10));
        assert_eq!(streams[0].last_event, Some(30));
        assert_eq!(store.expire("g", 25).await.unwrap(), 2);
        assert_eq!(store.read(&q).await.unwrap().len(), 1);
        store.delete_group("g").await.unwrap();
        assert!(store.read(&q).await.unwrap().is_empty());
        assert!(store.streams("g", None, None, 10).await.unwrap().is_empty());
        assert_eq!(store.groups().await.unwrap(), ["other"]);
    }
}
