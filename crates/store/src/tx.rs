//! Transactions: record, reference and idempotency operations, and commit with the revision bump
//! and change-feed publication.

mod blob;

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::OwnedMutexGuard;

use crate::backend::{Conn, on_conn};
use crate::error::{backend, commit_error, db, write_error};
use crate::{
    IdempotencyEntry, Inner, JsonPage, NOTIFY_CHANNEL, Record, Result, Revision, StoreError,
};

/// The columns every record query selects, decoded as one tuple so both engines' rows end up in
/// the same Rust type (see `on_conn!`).
type RecordRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    i64,
);

/// "Records of kind $1 whose refs contain $2", driven from `record_refs` (its covering index
/// `record_refs_by_ref (ref_id, kind, id)`, migration 0003): the number of matches, not the number
/// of records of the kind, sets the cost. SQLite keeps a `CROSS JOIN`'s tables in the written
/// order; with an inner join and no statistics it walked every record of the kind in `seq` order
/// instead, to skip the sort (33 ms at 17,000 rules). PostgreSQL plans a `CROSS JOIN` with a
/// join condition like any inner join.
pub(crate) const LIST_REFERENCING: &str = "SELECT r.kind, r.id, r.parent, r.name, r.arn, r.refs, \
     r.body, r.seq FROM record_refs x CROSS JOIN records r \
     WHERE x.kind = $1 AND x.ref_id = $2 AND r.kind = x.kind AND r.id = x.id \
     AND ($3 IS NULL OR r.account = $3 OR r.account = '') ORDER BY r.seq";

macro_rules! select_records {
    ($where:literal) => {
        concat!(
            "SELECT kind, id, parent, name, arn, refs, body, seq FROM records ",
            $where
        )
    };
}

/// Insert and update run several statements; a savepoint around them makes each call all-or-
/// nothing, and on PostgreSQL it keeps a uniqueness violation from aborting the whole
/// transaction, so a caller can handle `Conflict` and go on exactly as on SQLite.
const SAVEPOINT: &str = "SAVEPOINT trellis_op";
const RELEASE: &str = "RELEASE SAVEPOINT trellis_op";
const ROLLBACK_TO: &str = "ROLLBACK TO SAVEPOINT trellis_op";

/// A read or write transaction (see [`crate::Store::read`] and [`crate::Store::write`]).
/// Dropping it without [`Tx::commit`] rolls back and leaves the revision unchanged.
pub struct Tx {
    // Field order matters for drop: the connection (and its queued rollback) goes before the
    // writer lock is released.
    conn: Conn,
    inner: Arc<Inner>,
    /// Read: the revision the snapshot shows. Write: the revision a commit will produce.
    revision: Revision,
    /// Held by write transactions only: this process's place in the writer queue.
    write_guard: Option<OwnedMutexGuard<()>>,
    /// The account this transaction acts for ([`crate::Store::scoped`]): it sees that account's
    /// records and the records of no account, and what it inserts belongs to that account.
    /// `None`: every record, and inserts belong to no account.
    account: Option<Arc<str>>,
    /// Set when a statement failed in a way that may have aborted the transaction (PostgreSQL
    /// turns any error into "current transaction is aborted", and a later COMMIT silently rolls
    /// back). A poisoned transaction refuses further work and never reports a commit.
    poisoned: bool,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("write", &self.is_write())
            .field("revision", &self.revision)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

fn record_from_row(row: RecordRow) -> Result<Record> {
    let (kind, id, parent, name, arn, refs, body, seq) = row;
    let refs = serde_json::from_str(&refs)
        .map_err(|e| backend(&format!("corrupt refs of {kind} {id}"), e))?;
    let body = serde_json::from_str(&body)
        .map_err(|e| backend(&format!("corrupt body of {kind} {id}"), e))?;
    Ok(Record {
        kind,
        id,
        parent,
        name,
        arn,
        refs,
        body,
        seq,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| backend("encode JSON", e))
}

impl Tx {
    pub(crate) fn new(
        conn: Conn,
        inner: Arc<Inner>,
        revision: Revision,
        write_guard: Option<OwnedMutexGuard<()>>,
        account: Option<Arc<str>>,
    ) -> Tx {
        Tx {
            conn,
            inner,
            revision,
            write_guard,
            account,
            poisoned: false,
        }
    }

    /// The account this transaction is scoped to, `None` when it sees every account.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// Makes the rest of this transaction act for `account` (`None`: every account). For the
    /// rare write that spans accounts in one commit — the organization creating a member account
    /// and its first role. Handlers get transactions already scoped to their caller.
    pub fn set_account(&mut self, account: Option<&str>) {
        self.account = account.map(Arc::from);
    }

    fn scope(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// Whether this is a write transaction.
    pub fn is_write(&self) -> bool {
        self.write_guard.is_some()
    }

    /// For a read transaction the revision its snapshot shows; for a write transaction the
    /// revision `commit` will return.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    fn usable(&self) -> Result<()> {
        if self.poisoned {
            return Err(StoreError::Backend(
                "transaction aborted by an earlier error; drop it and start again".into(),
            ));
        }
        Ok(())
    }

    fn writable(&self) -> Result<()> {
        self.usable()?;
        if !self.is_write() {
            return Err(StoreError::Backend(
                "write operation on a read transaction (use Store::write)".into(),
            ));
        }
        Ok(())
    }

    /// Converts a failed statement into `Backend`, poisoning the transaction.
    fn check<T>(&mut self, result: Result<T, sqlx::Error>, context: &str) -> Result<T> {
        result.map_err(|e| {
            self.poisoned = true;
            db(context, e)
        })
    }

    async fn exec(&mut self, sql: &'static str) -> Result<()> {
        let result = on_conn!(&mut self.conn, c => sqlx::raw_sql(sql).execute(&mut **c).await.map(|r| r.rows_affected()));
        self.check(result, sql).map(drop)
    }

    /// Ends the savepoint opened before a multi-statement write: released on success, rolled
    /// back to on failure (after which the transaction is as it was before the call).
    async fn end_savepoint<T>(
        &mut self,
        result: Result<T, sqlx::Error>,
        rec: &Record,
    ) -> Result<T> {
        match result {
            Ok(value) => {
                self.exec(RELEASE).await?;
                Ok(value)
            }
            Err(e) => {
                self.exec(ROLLBACK_TO).await?;
                self.exec(RELEASE).await?;
                Err(write_error(e, rec))
            }
        }
    }

    async fn fetch_records(
        &mut self,
        sql: &'static str,
        binds: &[Option<&str>],
        context: &str,
    ) -> Result<Vec<Record>> {
        let result = on_conn!(&mut self.conn, c => {
            let mut query = sqlx::query_as::<_, RecordRow>(sql);
            for bind in binds {
                query = query.bind(*bind);
            }
            query.fetch_all(&mut **c).await
        });
        self.check(result, context)?
            .into_iter()
            .map(record_from_row)
            .collect()
    }

    async fn fetch_record(
        &mut self,
        sql: &'static str,
        binds: &[Option<&str>],
        context: &str,
    ) -> Result<Option<Record>> {
        self.usable()?;
        let mut records = self.fetch_records(sql, binds, context).await?;
        // Every caller selects by a unique key, so there is at most one row.
        Ok(records.pop())
    }

    pub async fn get(&mut self, kind: &str, id: &str) -> Result<Option<Record>> {
        let account = self.account.clone();
        self.fetch_record(
            select_records!(
                "WHERE kind = $1 AND id = $2 AND ($3 IS NULL OR account = $3 OR account = '')"
            ),
            &[Some(kind), Some(id), account.as_deref()],
            "get record",
        )
        .await
    }

    pub async fn get_by_arn(&mut self, arn: &str) -> Result<Option<Record>> {
        let account = self.account.clone();
        self.fetch_record(
            select_records!("WHERE arn = $1 AND ($2 IS NULL OR account = $2 OR account = '')"),
            &[Some(arn), account.as_deref()],
            "get record by ARN",
        )
        .await
    }

    pub async fn get_by_name(
        &mut self,
        kind: &str,
        parent: Option<&str>,
        name: &str,
    ) -> Result<Option<Record>> {
        let account = self.account.clone();
        // The same `coalesce(parent, '')` expression as the unique index, so the index serves it.
        self.fetch_record(
            select_records!(
                "WHERE kind = $1 AND coalesce(parent, '') = $2 AND name = $3 \
                 AND ($4 IS NULL OR account = $4 OR account = '')"
            ),
            &[
                Some(kind),
                Some(parent.unwrap_or("")),
                Some(name),
                account.as_deref(),
            ],
            "get record by name",
        )
        .await
    }

    /// All records of `kind` (with this parent when `Some`), in insertion order.
    pub async fn list(&mut self, kind: &str, parent: Option<&str>) -> Result<Vec<Record>> {
        let account = self.account.clone();
        self.usable()?;
        match parent {
            None => {
                self.fetch_records(
                    select_records!(
                        "WHERE kind = $1 AND ($2 IS NULL OR account = $2 OR account = '') \
                         ORDER BY seq"
                    ),
                    &[Some(kind), account.as_deref()],
                    "list records",
                )
                .await
            }
            Some(parent) => {
                self.fetch_records(
                    select_records!(
                        "WHERE kind = $1 AND parent = $2 \
                         AND ($3 IS NULL OR account = $3 OR account = '') ORDER BY seq"
                    ),
                    &[Some(kind), Some(parent), account.as_deref()],
                    "list records",
                )
                .await
            }
        }
    }

    /// One page of the records of `kind` for bulk readers (the data plane's snapshot compiler):
    /// up to `limit` records with `seq > after_seq`, in insertion order, aggregated by the
    /// database into one JSON text so that a page costs one row rather than one per record, and
    /// the caller can decode bodies straight into its own types without a `serde_json::Value`
    /// per record. `None` when no record is left.
    pub async fn list_json(
        &mut self,
        kind: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Option<JsonPage>> {
        self.usable()?;
        // Each element is `[id, parent, body]`; the body is stored JSON text, spliced in as is.
        // The aggregate's own ORDER BY keeps insertion order (SQLite 3.44+ and PostgreSQL).
        const SQLITE: &str = "SELECT string_agg('[' || json_quote(id) || ',' || json_quote(parent) \
             || ',' || body || ']', ',' ORDER BY seq), count(*), max(seq) FROM \
             (SELECT id, parent, body, seq FROM records WHERE kind = $1 AND seq > $2 \
              ORDER BY seq LIMIT $3) AS page";
        const POSTGRES: &str = "SELECT string_agg('[' || to_json(id)::text || ',' \
             || coalesce(to_json(parent)::text, 'null') || ',' || body || ']', ',' ORDER BY seq), \
             count(*), max(seq) FROM \
             (SELECT id, parent, body, seq FROM records WHERE kind = $1 AND seq > $2 \
              ORDER BY seq LIMIT $3) AS page";
        type PageRow = (Option<String>, i64, Option<i64>);
        let limit = i64::from(limit.max(1));
        let result = match &mut self.conn {
            Conn::Sqlite(c) => {
                sqlx::query_as::<_, PageRow>(SQLITE)
                    .bind(kind)
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_one(&mut **c)
                    .await
            }
            Conn::Postgres(c, bound) => {
                crate::backend::bounded(
                    *bound,
                    sqlx::query_as::<_, PageRow>(POSTGRES)
                        .bind(kind)
                        .bind(after_seq)
                        .bind(limit)
                        .fetch_one(&mut **c),
                )
                .await
            }
        };
        let (elements, count, last_seq) = self.check(result, "list records as JSON")?;
        let (Some(elements), Some(last_seq)) = (elements, last_seq) else {
            return Ok(None);
        };
        let mut json = String::with_capacity(elements.len() + 2);
        json.push('[');
        json.push_str(&elements);
        json.push(']');
        Ok(Some(JsonPage {
            json,
            count: usize::try_from(count).unwrap_or_default(),
            last_seq,
        }))
    }

    /// All records of `kind` whose `refs` contain `id`, in insertion order ([`LIST_REFERENCING`]).
    pub async fn list_referencing(&mut self, kind: &str, id: &str) -> Result<Vec<Record>> {
        let account = self.account.clone();
        self.usable()?;
        self.fetch_records(
            LIST_REFERENCING,
            &[Some(kind), Some(id), account.as_deref()],
            "list referencing records",
        )
        .await
    }

    pub async fn count(&mut self, kind: &str, parent: Option<&str>) -> Result<u64> {
        self.usable()?;
        let account = self.account.clone();
        let account = account.as_deref();
        let result = on_conn!(&mut self.conn, c => match parent {
            None => sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM records WHERE kind = $1 \
                     AND ($2 IS NULL OR account = $2 OR account = '')")
                .bind(kind)
                .bind(account)
                .fetch_one(&mut **c)
                .await,
            Some(parent) => sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM records WHERE kind = $1 AND parent = $2 \
                     AND ($3 IS NULL OR account = $3 OR account = '')")
                .bind(kind)
                .bind(parent)
                .bind(account)
                .fetch_one(&mut **c)
                .await,
        });
        let count = self.check(result, "count records")?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Inserts; returns the assigned seq. `Conflict` on a duplicate id, (parent, name) or arn.
    pub async fn insert(&mut self, rec: &Record) -> Result<i64> {
        self.writable()?;
        let refs = to_json(&rec.refs)?;
        let body = to_json(&rec.body)?;
        self.exec(SAVEPOINT).await?;
        let result = self.insert_statements(rec, &refs, &body).await;
        self.end_savepoint(result, rec).await
    }

    async fn insert_statements(
        &mut self,
        rec: &Record,
        refs: &str,
        body: &str,
    ) -> Result<i64, sqlx::Error> {
        let account = self.account.clone();
        let account = account.as_deref().unwrap_or("");
        // seq comes from a counter in `meta` rather than max(seq)+1 so it is never reused after a
        // delete; writers are serialized, so the counter needs no further care.
        let seq = on_conn!(&mut self.conn, c => sqlx::query_scalar::<_, i64>(
                "UPDATE meta SET last_seq = last_seq + 1 WHERE id = 1 RETURNING last_seq")
            .fetch_one(&mut **c)
            .await)?;
        on_conn!(&mut self.conn, c => sqlx::query(
                "INSERT INTO records (kind, id, parent, name, arn, refs, body, seq, account) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(rec.kind.as_str())
            .bind(rec.id.as_str())
            .bind(rec.parent.as_deref())
            .bind(rec.name.as_deref())
            .bind(rec.arn.as_deref())
            .bind(refs)
            .bind(body)
            .bind(seq)
            .bind(account)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()))?;
        self.insert_refs(rec).await?;
        Ok(seq)
    }

    /// One `record_refs` row per distinct reference (the list itself is kept verbatim in
    /// `records.refs`).
    async fn insert_refs(&mut self, rec: &Record) -> Result<(), sqlx::Error> {
        let mut seen = HashSet::new();
        for target in rec.refs.iter().filter(|r| seen.insert(r.as_str())) {
            on_conn!(&mut self.conn, c => sqlx::query(
                    "INSERT INTO record_refs (kind, id, ref_id) VALUES ($1, $2, $3)")
                .bind(rec.kind.as_str())
                .bind(rec.id.as_str())
                .bind(target.as_str())
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected()))?;
        }
        Ok(())
    }

    /// Replaces parent/name/arn/refs/body of the record (kind, id). `NotFound` if missing.
    pub async fn update(&mut self, rec: &Record) -> Result<()> {
        self.writable()?;
        let refs = to_json(&rec.refs)?;
        let body = to_json(&rec.body)?;
        self.exec(SAVEPOINT).await?;
        let result = self.update_statements(rec, &refs, &body).await;
        if self.end_savepoint(result, rec).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn update_statements(
        &mut self,
        rec: &Record,
        refs: &str,
        body: &str,
    ) -> Result<bool, sqlx::Error> {
        let account = self.account.clone();
        let account = account.as_deref();
        let updated = on_conn!(&mut self.conn, c => sqlx::query(
                "UPDATE records SET parent = $3, name = $4, arn = $5, refs = $6, body = $7 \
                 WHERE kind = $1 AND id = $2 AND ($8 IS NULL OR account = $8 OR account = '')")
            .bind(rec.kind.as_str())
            .bind(rec.id.as_str())
            .bind(rec.parent.as_deref())
            .bind(rec.name.as_deref())
            .bind(rec.arn.as_deref())
            .bind(refs)
            .bind(body)
            .bind(account)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()))?;
        if updated == 0 {
            return Ok(false);
        }
        on_conn!(&mut self.conn, c => sqlx::query(
                "DELETE FROM record_refs WHERE kind = $1 AND id = $2")
            .bind(rec.kind.as_str())
            .bind(rec.id.as_str())
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()))?;
        self.insert_refs(rec).await?;
        Ok(true)
    }

    /// Deletes; returns whether it existed.
    pub async fn delete(&mut self, kind: &str, id: &str) -> Result<bool> {
        self.writable()?;
        let account = self.account.clone();
        let account = account.as_deref();
        let result = on_conn!(&mut self.conn, c => sqlx::query(
                "DELETE FROM records WHERE kind = $1 AND id = $2 \
                 AND ($3 IS NULL OR account = $3 OR account = '')")
            .bind(kind)
            .bind(id)
            .bind(account)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()));
        if self.check(result, "delete record")? == 0 {
            return Ok(false);
        }
        let result = on_conn!(&mut self.conn, c => sqlx::query(
                "DELETE FROM record_refs WHERE kind = $1 AND id = $2")
            .bind(kind)
            .bind(id)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()));
        self.check(result, "delete record references")?;
        Ok(true)
    }

    /// See [`crate::Store::adopt_unowned`]. Only on an unscoped write transaction.
    pub(crate) async fn adopt_unowned(&mut self, account: &str, keep: &[&str]) -> Result<u64> {
        self.writable()?;
        let result = on_conn!(&mut self.conn, c => sqlx::query_scalar::<_, String>(
                "SELECT DISTINCT kind FROM records WHERE account = ''")
            .fetch_all(&mut **c)
            .await);
        let kinds = self.check(result, "list records of no account")?;
        let mut moved = 0;
        for kind in kinds.iter().filter(|k| !keep.contains(&k.as_str())) {
            let result = on_conn!(&mut self.conn, c => sqlx::query(
                    "UPDATE records SET account = $1 WHERE account = '' AND kind = $2")
                .bind(account)
                .bind(kind.as_str())
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected()));
            moved += self.check(result, "give records to an account")?;
        }
        Ok(moved)
    }

    /// Idempotency scopes are per account: the same client token in two accounts is two
    /// tokens.
    fn idempotency_scope(&self, scope: &str) -> String {
        match self.scope() {
            Some(account) => format!("{account}:{scope}"),
            None => scope.to_string(),
        }
    }

    pub async fn idempotency_get(
        &mut self,
        scope: &str,
        token: &str,
    ) -> Result<Option<IdempotencyEntry>> {
        self.usable()?;
        let scope = self.idempotency_scope(scope);
        let scope = scope.as_str();
        let result = on_conn!(&mut self.conn, c => sqlx::query_as::<_, (String, String)>(
                "SELECT request_hash, response FROM idempotency WHERE scope = $1 AND token = $2")
            .bind(scope)
            .bind(token)
            .fetch_optional(&mut **c)
            .await);
        let Some((request_hash, response)) = self.check(result, "get idempotency entry")? else {
            return Ok(None);
        };
        let response = serde_json::from_str(&response)
            .map_err(|e| backend("corrupt idempotency response", e))?;
        Ok(Some(IdempotencyEntry {
            request_hash,
            response,
        }))
    }

    /// Stores the entry for (scope, token), replacing any earlier one.
    pub async fn idempotency_put(
        &mut self,
        scope: &str,
        token: &str,
        entry: &IdempotencyEntry,
    ) -> Result<()> {
        self.writable()?;
        let scope = self.idempotency_scope(scope);
        let scope = scope.as_str();
        let response = to_json(&entry.response)?;
        let result = on_conn!(&mut self.conn, c => sqlx::query(
                "INSERT INTO idempotency (scope, token, request_hash, response) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (scope, token) DO UPDATE \
                 SET request_hash = excluded.request_hash, response = excluded.response")
            .bind(scope)
            .bind(token)
            .bind(entry.request_hash.as_str())
            .bind(response.as_str())
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()));
        self.check(result, "put idempotency entry").map(drop)
    }

    /// Commits. Write transactions bump and publish the revision and return it; read transactions
    /// return the revision they saw.
    pub async fn commit(self) -> Result<Revision> {
        let Tx {
            mut conn,
            inner,
            revision,
            write_guard,
            poisoned,
            account: _,
        } = self;
        if poisoned {
            let _ = conn.rollback().await;
            return Err(StoreError::Backend(
                "transaction aborted by an earlier error; nothing was committed".into(),
            ));
        }
        if write_guard.is_some()
            && let Conn::Postgres(c, limit) = &mut conn
        {
            // Sent inside the transaction, so PostgreSQL delivers it exactly when (and only if)
            // the commit succeeds.
            let notified = crate::backend::bounded(
                *limit,
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(NOTIFY_CHANNEL)
                    .bind(revision.to_string())
                    .execute(&mut **c),
            )
            .await;
            if let Err(e) = notified {
                let _ = conn.rollback().await;
                return Err(db("notify revision", e));
            }
        }
        conn.commit().await.map_err(commit_error)?;
        if write_guard.is_some() {
            // Published before the writer lock is released, so local subscribers see this
            // process's revisions in order.
            inner.publish(revision);
        }
        drop(write_guard);
        Ok(revision)
    }

    pub async fn rollback(self) -> Result<()> {
        self.conn.rollback().await.map_err(|e| db("rollback", e))
    }
}
