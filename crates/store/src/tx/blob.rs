//! Content-addressed blobs (function code): immutable byte strings keyed by the lowercase hex
//! SHA-256 of their content, written and read inside ordinary transactions.
//!
//! The key is checked against the content on insert, so a key always names exactly one byte
//! string and putting the same content twice is a no-op. Who still needs a blob is the caller's
//! business: records point at blobs through their `refs`, and the caller deletes a blob once
//! [`Tx::list_referencing`] finds no record left that points at it.

use sha2::{Digest, Sha256};

use super::Tx;
use crate::backend::on_conn;
use crate::{Result, StoreError};

/// Whether `key` is a SHA-256 digest in lowercase hex, the only form the table holds.
fn valid_key(key: &str) -> bool {
    key.len() == 64
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_key(key: &str) -> Result<()> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "blob key {key:?} is not a lowercase hex SHA-256 digest"
        )))
    }
}

impl Tx {
    /// Stores `bytes` under `sha256_hex`, which must be the lowercase hex SHA-256 of `bytes`.
    /// Returns whether the blob is new (`false` when the same content was already stored).
    pub async fn put_blob(&mut self, sha256_hex: &str, bytes: &[u8]) -> Result<bool> {
        self.writable()?;
        check_key(sha256_hex)?;
        let actual = hex::encode(Sha256::digest(bytes));
        if actual != sha256_hex {
            return Err(StoreError::Backend(format!(
                "blob key {sha256_hex} does not match its content (SHA-256 {actual})"
            )));
        }
        let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        // ON CONFLICT DO NOTHING keeps a duplicate put from raising an error, which on
        // PostgreSQL would abort the whole transaction.
        let result = on_conn!(&mut self.conn, c => sqlx::query(
                "INSERT INTO blobs (sha256, size, data) VALUES ($1, $2, $3) \
                 ON CONFLICT (sha256) DO NOTHING")
            .bind(sha256_hex)
            .bind(size)
            .bind(bytes)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()));
        Ok(self.check(result, "put blob")? > 0)
    }

    /// The blob stored under `sha256_hex`, if any.
    pub async fn get_blob(&mut self, sha256_hex: &str) -> Result<Option<Vec<u8>>> {
        self.usable()?;
        check_key(sha256_hex)?;
        let result = on_conn!(&mut self.conn, c => sqlx::query_scalar::<_, Vec<u8>>(
                "SELECT data FROM blobs WHERE sha256 = $1")
            .bind(sha256_hex)
            .fetch_optional(&mut **c)
            .await);
        self.check(result, "get blob")
    }

    /// The size in bytes of the blob stored under `sha256_hex`, without reading it.
    pub async fn blob_size(&mut self, sha256_hex: &str) -> Result<Option<u64>> {
        self.usable()?;
        check_key(sha256_hex)?;
        let result = on_conn!(&mut self.conn, c => sqlx::query_scalar::<_, i64>(
                "SELECT size FROM blobs WHERE sha256 = $1")
            .bind(sha256_hex)
            .fetch_optional(&mut **c)
            .await);
        Ok(self
            .check(result, "get blob size")?
            .map(|size| u64::try_from(size).unwrap_or_default()))
    }

    /// Deletes the blob; returns whether it existed.
    pub async fn delete_blob(&mut self, sha256_hex: &str) -> Result<bool> {
        self.writable()?;
        check_key(sha256_hex)?;
        let result = on_conn!(&mut self.conn, c => sqlx::query(
                "DELETE FROM blobs WHERE sha256 = $1")
            .bind(sha256_hex)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()));
        Ok(self.check(result, "delete blob")? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::valid_key;

    #[test]
    fn keys_are_lowercase_hex_digests() {
        let cases = [
            (&"ab".repeat(32)[..], true),
            (&"0123456789abcdef".repeat(4)[..], true),
            (&"AB".repeat(32)[..], false),
            (&"ab".repeat(31)[..], false),
            (&"g0".repeat(32)[..], false),
            ("", false),
        ];
        for (key, expected) in cases {
            assert_eq!(valid_key(key), expected, "{key:?}");
        }
    }
}
