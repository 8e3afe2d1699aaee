//! Turning driver errors into `StoreError`: uniqueness violations become `Conflict` with a message
//! that names the clashing key, everything else is `Backend` with the operation that failed.

use std::fmt::Display;

use crate::{Record, StoreError};

pub(crate) fn backend(context: &str, e: impl Display) -> StoreError {
    StoreError::Backend(format!("{context}: {e}"))
}

/// Classifies a driver error from `context`: the database being unreachable, shutting down or
/// over one of the session's timeouts is `Unavailable` (the request may be retried later);
/// anything else is `Backend`.
pub(crate) fn db(context: &str, e: sqlx::Error) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable(format!("{context}: {e}"))
    } else {
        backend(context, e)
    }
}

/// Classifies a failed `COMMIT`. When the connection broke while the `COMMIT` was in flight,
/// nobody knows whether the database applied it; a database error that answered the `COMMIT`
/// means it did not.
pub(crate) fn commit_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(_) => db("commit", e),
        _ if is_unavailable(&e) => StoreError::CommitUnknown(format!(
            "the connection to the database failed during COMMIT ({e}); the write may or may \
             not have been applied"
        )),
        _ => backend("commit", e),
    }
}

/// SQLSTATEs that say "not now" rather than "not this": PostgreSQL's connection exceptions
/// (class 08), operator intervention (57: query canceled by `statement_timeout`, admin or crash
/// shutdown, cannot connect now), `lock_not_available` (55P03, `lock_timeout`),
/// `idle_in_transaction_session_timeout` (25P03), `too_many_connections` (53300).
fn is_unavailable_state(state: &str) -> bool {
    state.starts_with("08")
        || state.starts_with("57")
        || matches!(state, "55P03" | "25P03" | "53300")
}

fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                is_unavailable_state(code)
            } else {
                // SQLite reports its result code (extended codes in the high bytes): SQLITE_BUSY
                // (5) once the busy timeout has passed.
                code.parse::<i64>().is_ok_and(|n| n & 0xff == 5)
            }
        }
        _ => false,
    }
}

/// Classifies an error from inserting or updating `rec`.
pub(crate) fn write_error(e: sqlx::Error, rec: &Record) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        // PostgreSQL names the violated constraint; SQLite only says so in its message
        // ("UNIQUE constraint failed: records.kind, records.id" or "… index 'records_name_key'").
        let what = db.constraint().unwrap_or_else(|| db.message());
        return StoreError::Conflict(describe_conflict(what, rec));
    }
    db("write record", e)
}

fn describe_conflict(what: &str, rec: &Record) -> String {
    if what.contains("records_pkey") || what.contains("records.kind, records.id") {
        format!("{} {:?} already exists", rec.kind, rec.id)
    } else if what.contains("records_name_key") {
        let name = rec.name.as_deref().unwrap_or_default();
        match &rec.parent {
            Some(parent) => format!(
                "a {} named {name:?} already exists under {parent:?}",
                rec.kind
            ),
            None => format!("a {} named {name:?} already exists", rec.kind),
        }
    } else if what.contains("records_arn_key") || what.contains("records.arn") {
        format!(
            "a record with ARN {:?} already exists",
            rec.arn.as_deref().unwrap_or_default()
        )
    } else {
        format!("uniqueness constraint violated: {what}")
    }
}

/// The URL with any password replaced, for error messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    match authority[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &authority[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_unavailable_and_anything_else_a_backend_error() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()),
        ] {
            assert!(matches!(db("x", e), StoreError::Unavailable(_)));
        }
        assert!(matches!(
            db("x", sqlx::Error::RowNotFound),
            StoreError::Backend(_)
        ));
        for state in ["08006", "57014", "57P01", "55P03", "25P03", "53300"] {
            assert!(is_unavailable_state(state), "{state}");
        }
        for state in ["23505", "42P01", "40001"] {
            assert!(!is_unavailable_state(state), "{state}");
        }
    }

    /// A connection lost during COMMIT leaves the outcome unknown; an error that answered the
    /// COMMIT (or a pool that never gave a connection) does not.
    #[test]
    fn a_commit_cut_off_is_reported_as_of_unknown_outcome() {
        let e = commit_error(sqlx::Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        assert!(matches!(&e, StoreError::CommitUnknown(m) if m.contains("may or may not")));
        assert!(e.is_unavailable());
        assert!(matches!(
            commit_error(sqlx::Error::Protocol("garbled".into())),
            StoreError::Backend(_)
        ));
    }

    #[test]
    fn redacts_only_the_password() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db?sslmode=disable"),
            "postgres://u:***@h:5432/db?sslmode=disable"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert_eq!(redact("nonsense"), "nonsense");
    }
}
