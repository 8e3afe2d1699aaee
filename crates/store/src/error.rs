//! Turning driver errors into `StoreError`: uniqueness violations become `Conflict` with a message
//! that names the clashing key, everything else is `Backend` with the operation that failed.

use std::fmt::Display;

use crate::{Record, StoreError};

pub(crate) fn backend(context: &str, e: impl Display) -> StoreError {
    StoreError::Backend(format!("{context}: {e}"))
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
    backend("write record", e)
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
    use super::redact;

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
