//! Conformance cases for the content-addressed blob table, run against SQLite and PostgreSQL like
//! the main suite (PostgreSQL needs `TRELLIS_TEST_POSTGRES_URL`; see `harness`).

// The harness serves the main suite too; this file does not use all of it.
#[allow(dead_code)]
mod harness;

conformance!(
    blob_put_get_roundtrip,
    blob_put_is_idempotent,
    blob_key_must_match_content,
    blob_delete_reports_existence,
    blob_rollback_leaves_no_trace,
    blob_survives_reopen,
    blob_large_binary_content,
);

mod cases {
    use sha2::{Digest, Sha256};
    use trellis_store::StoreError;

    use crate::harness::TestDb;

    fn key(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Every byte value, including NUL and invalid UTF-8, must survive the round trip.
    fn binary(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 256) as u8).collect()
    }

    pub async fn blob_put_get_roundtrip(db: TestDb) {
        let store = db.open().await;
        let data = binary(1000);
        let k = key(&data);
        let mut tx = store.write().await.unwrap();
        assert_eq!(tx.get_blob(&k).await.unwrap(), None);
        assert!(tx.put_blob(&k, &data).await.unwrap());
        // Visible inside the writing transaction and, after commit, to readers.
        assert_eq!(tx.get_blob(&k).await.unwrap().as_deref(), Some(&data[..]));
        tx.commit().await.unwrap();
        let mut tx = store.read().await.unwrap();
        assert_eq!(tx.get_blob(&k).await.unwrap(), Some(data));
        assert_eq!(tx.blob_size(&k).await.unwrap(), Some(1000));
        assert_eq!(tx.blob_size(&key(b"other")).await.unwrap(), None);
        // An empty blob is a blob too.
        drop(tx);
        let mut tx = store.write().await.unwrap();
        assert!(tx.put_blob(&key(b""), b"").await.unwrap());
        assert_eq!(tx.get_blob(&key(b"")).await.unwrap(), Some(Vec::new()));
        tx.commit().await.unwrap();
    }

    pub async fn blob_put_is_idempotent(db: TestDb) {
        let store = db.open().await;
        let data = b"same content".to_vec();
        let k = key(&data);
        let mut tx = store.write().await.unwrap();
        assert!(tx.put_blob(&k, &data).await.unwrap());
        // A second put in the same transaction neither fails nor poisons it.
        assert!(!tx.put_blob(&k, &data).await.unwrap());
        tx.commit().await.unwrap();
        let mut tx = store.write().await.unwrap();
        assert!(!tx.put_blob(&k, &data).await.unwrap());
        assert_eq!(tx.get_blob(&k).await.unwrap(), Some(data));
        tx.commit().await.unwrap();
    }

    pub async fn blob_key_must_match_content(db: TestDb) {
        let store = db.open().await;
        let mut tx = store.write().await.unwrap();
        let wrong = key(b"something else");
        assert!(matches!(
            tx.put_blob(&wrong, b"content").await,
            Err(StoreError::Backend(m)) if m.contains("does not match")
        ));
        let upper = key(b"content").to_uppercase();
        assert!(matches!(
            tx.put_blob(&upper, b"content").await,
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            tx.get_blob("not-a-key").await,
            Err(StoreError::Backend(_))
        ));
        // Refused keys never reach the database, so the transaction is still usable.
        assert!(tx.put_blob(&key(b"content"), b"content").await.unwrap());
        tx.commit().await.unwrap();
    }

    pub async fn blob_delete_reports_existence(db: TestDb) {
        let store = db.open().await;
        let k = key(b"gone soon");
        let mut tx = store.write().await.unwrap();
        tx.put_blob(&k, b"gone soon").await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.write().await.unwrap();
        assert!(tx.delete_blob(&k).await.unwrap());
        assert!(!tx.delete_blob(&k).await.unwrap());
        tx.commit().await.unwrap();
        let mut tx = store.read().await.unwrap();
        assert_eq!(tx.get_blob(&k).await.unwrap(), None);
        // Deleting is a write.
        assert!(tx.delete_blob(&k).await.is_err());
    }

    pub async fn blob_rollback_leaves_no_trace(db: TestDb) {
        let store = db.open().await;
        let before = store.revision().await.unwrap();
        let k = key(b"rolled back");
        let mut tx = store.write().await.unwrap();
        tx.put_blob(&k, b"rolled back").await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(store.revision().await.unwrap(), before);
        let mut tx = store.read().await.unwrap();
        assert_eq!(tx.get_blob(&k).await.unwrap(), None);
        // Writes are refused on a read transaction.
        assert!(tx.put_blob(&k, b"rolled back").await.is_err());
    }

    pub async fn blob_survives_reopen(db: TestDb) {
        let data = binary(4096);
        let k = key(&data);
        {
            let store = db.open().await;
            let mut tx = store.write().await.unwrap();
            tx.put_blob(&k, &data).await.unwrap();
            tx.commit().await.unwrap();
            store.close().await;
        }
        let store = db.open().await;
        let mut tx = store.read().await.unwrap();
        assert_eq!(tx.get_blob(&k).await.unwrap(), Some(data));
    }

    pub async fn blob_large_binary_content(db: TestDb) {
        // Larger than any single page or TOAST chunk: the size of a real deployment package.
        let data = binary(8 << 20);
        let k = key(&data);
        let store = db.open().await;
        let mut tx = store.write().await.unwrap();
        tx.put_blob(&k, &data).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.read().await.unwrap();
        let back = tx.get_blob(&k).await.unwrap().unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data);
    }
}
