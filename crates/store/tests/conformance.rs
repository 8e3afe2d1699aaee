//! The store conformance suite: one set of cases, run against SQLite and PostgreSQL alike, plus
//! the checks that only make sense on one engine (kill -9 durability on SQLite, LISTEN/NOTIFY on
//! PostgreSQL) and connect-time error reporting.
//!
//! PostgreSQL cases need `TRELLIS_TEST_POSTGRES_URL` (run under `scripts/with-postgres`); without
//! it they print SKIPPED, or fail when `CI` is set.

mod harness;

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use trellis_store::{Backend, IdempotencyEntry, Record, Revision, Store, StoreError, StoreOptions};

use harness::TestDb;

conformance!(
    insert_get_roundtrip,
    get_by_arn_and_name,
    list_is_in_insertion_order,
    list_json_pages_in_insertion_order,
    list_referencing_follows_refs,
    count_by_kind_and_parent,
    update_replaces_fields_keeps_seq,
    update_missing_is_not_found,
    delete_reports_existence,
    conflict_on_duplicate_id,
    conflict_on_duplicate_name,
    conflict_on_duplicate_arn,
    conflict_on_update,
    conflict_leaves_transaction_usable,
    rollback_leaves_no_trace,
    revision_bumps_by_one_per_commit,
    subscribe_sees_commits,
    second_store_sees_commits,
    writers_are_serialized_across_stores,
    a_held_writer_lock_makes_other_writers_unavailable,
    concurrent_writers_lose_no_updates,
    read_transaction_is_consistent,
    read_transaction_refuses_writes,
    idempotency_get_put,
    accounts_scope_every_operation,
    adopt_unowned_gives_legacy_records_to_an_account,
    data_survives_reopen,
    concurrent_connects_migrate_once,
);

/// A record with only kind and id set; cases fill in the rest with struct update syntax.
fn rec(kind: &str, id: &str) -> Record {
    Record {
        kind: kind.into(),
        id: id.into(),
        parent: None,
        name: None,
        arn: None,
        refs: Vec::new(),
        body: json!({ "id": id }),
        seq: 0,
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn ids(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

async fn insert_all(store: &Store, records: &[Record]) -> Revision {
    let mut tx = store.write().await.unwrap();
    for r in records {
        tx.insert(r).await.unwrap();
    }
    tx.commit().await.unwrap()
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, needle: &str) {
    match result {
        Err(StoreError::Conflict(message)) => assert!(
            message.contains(needle),
            "conflict message {message:?} should mention {needle:?}"
        ),
        other => panic!("expected Conflict mentioning {needle:?}, got {other:?}"),
    }
}

/// Waits until `rx` shows at least `revision`.
async fn feed_reaches(rx: &mut tokio::sync::watch::Receiver<Revision>, revision: Revision) {
    let reached = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|r| *r >= revision))
        .await
        .map(|r| r.is_ok());
    match reached {
        Ok(true) => {}
        Ok(false) => panic!("feed closed"),
        Err(_) => panic!("feed stuck at {} waiting for {revision}", *rx.borrow()),
    }
}

mod cases {
    use super::*;

    pub async fn insert_get_roundtrip(db: TestDb) {
        let store = db.open().await;
        assert_eq!(store.backend(), db.backend);
        let input = Record {
            parent: s("svc-1"),
            name: s("http"),
            arn: s("arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-1/listener/l-1"),
            refs: vec!["tg-2".into(), "tg-1".into(), "tg-2".into()],
            body: json!({ "port": 80, "protocol": "HTTP", "nested": { "z": 1, "a": [true, null] } }),
            seq: 12345, // ignored on input
            ..rec("listener", "l-1")
        };
        let mut tx = store.write().await.unwrap();
        let seq = tx.insert(&input).await.unwrap();
        // A write transaction reads its own writes.
        let inside = tx.get("listener", "l-1").await.unwrap().unwrap();
        assert_eq!(inside.seq, seq);
        tx.commit().await.unwrap();

        let mut tx = store.read().await.unwrap();
        let got = tx.get("listener", "l-1").await.unwrap().expect("record");
        assert_eq!(
            got,
            Record {
                seq,
                ..input.clone()
            }
        );
        // Object key order survives storage (the API echoes documents back).
        assert_eq!(
            serde_json::to_string(&got.body).unwrap(),
            serde_json::to_string(&input.body).unwrap()
        );
        assert_eq!(tx.get("listener", "l-2").await.unwrap(), None);
        assert_eq!(tx.get("service", "l-1").await.unwrap(), None);
        tx.commit().await.unwrap();
    }

    pub async fn get_by_arn_and_name(db: TestDb) {
        let store = db.open().await;
        insert_all(
            &store,
            &[
                Record {
                    name: s("web"),
                    arn: s("arn:svc/web"),
                    ..rec("service", "svc-1")
                },
                Record {
                    name: s("http"),
                    parent: s("svc-1"),
                    ..rec("listener", "l-1")
                },
                Record {
                    name: s("http"),
                    parent: s("svc-2"),
                    ..rec("listener", "l-2")
                },
                Record {
                    name: s("http"),
                    ..rec("listener", "l-3")
                },
            ],
        )
        .await;
        let mut tx = store.read().await.unwrap();
        assert_eq!(
            tx.get_by_arn("arn:svc/web").await.unwrap().unwrap().id,
            "svc-1"
        );
        assert_eq!(tx.get_by_arn("arn:svc/nope").await.unwrap(), None);
        let by_name = |r: Option<Record>| r.map(|r| r.id);
        assert_eq!(
            by_name(tx.get_by_name("service", None, "web").await.unwrap()),
            s("svc-1")
        );
        assert_eq!(
            by_name(
                tx.get_by_name("listener", Some("svc-1"), "http")
                    .await
                    .unwrap()
            ),
            s("l-1")
        );
        assert_eq!(
            by_name(
                tx.get_by_name("listener", Some("svc-2"), "http")
                    .await
                    .unwrap()
            ),
            s("l-2")
        );
        // parent None is its own scope.
        assert_eq!(
            by_name(tx.get_by_name("listener", None, "http").await.unwrap()),
            s("l-3")
        );
        assert_eq!(
            tx.get_by_name("listener", Some("svc-3"), "http")
                .await
                .unwrap(),
            None
        );
        assert_eq!(tx.get_by_name("service", None, "WEB").await.unwrap(), None);
        assert_eq!(tx.get_by_name("target", None, "web").await.unwrap(), None);
    }

    pub async fn list_is_in_insertion_order(db: TestDb) {
        let store = db.open().await;
        // Ids deliberately out of lexical order, kinds and parents interleaved.
        for (kind, id, parent) in [
            ("rule", "r-9", "l-1"),
            ("listener", "l-1", "svc"),
            ("rule", "r-1", "l-2"),
            ("rule", "r-5", "l-1"),
            ("rule", "r-3", "l-1"),
        ] {
            // One transaction each, so the order is also commit order.
            insert_all(
                &store,
                &[Record {
                    parent: s(parent),
                    ..rec(kind, id)
                }],
            )
            .await;
        }
        let mut tx = store.write().await.unwrap();
        let all = tx.list("rule", None).await.unwrap();
        assert_eq!(ids(&all), ["r-9", "r-1", "r-5", "r-3"]);
        assert!(
            all.windows(2).all(|w| w[0].seq < w[1].seq),
            "seq increases: {all:?}"
        );
        assert_eq!(
            ids(&tx.list("rule", Some("l-1")).await.unwrap()),
            ["r-9", "r-5", "r-3"]
        );
        assert_eq!(
            ids(&tx.list("rule", Some("l-3")).await.unwrap()),
            Vec::<&str>::new()
        );
        assert_eq!(
            ids(&tx.list("nothing", None).await.unwrap()),
            Vec::<&str>::new()
        );

        // A re-created record goes to the end, and seqs are never reused.
        let max_seq = all.iter().map(|r| r.seq).max().unwrap();
        assert!(tx.delete("rule", "r-9").await.unwrap());
        let seq = tx
            .insert(&Record {
                parent: s("l-1"),
                ..rec("rule", "r-9")
            })
            .await
            .unwrap();
        assert!(seq > max_seq);
        assert_eq!(
            ids(&tx.list("rule", Some("l-1")).await.unwrap()),
            ["r-5", "r-3", "r-9"]
        );
        tx.commit().await.unwrap();
    }

    pub async fn list_json_pages_in_insertion_order(db: TestDb) {
        let store = db.open().await;
        // Ids out of lexical order; a parent and a body that need JSON escaping; another kind
        // interleaved, which no page may include.
        let bodies = [
            json!({"n": 1, "text": "quote \" and \\ and \u{e9}"}),
            json!([1, 2, {"nested": null}]),
            json!("plain string"),
            json!({"n": 4}),
            json!({"n": 5}),
        ];
        let mut records = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            records.push(Record {
                parent: (i % 2 == 0).then(|| format!("tg-\"{i}\"")),
                body: body.clone(),
                ..rec("target", &format!("t-{}", 9 - i))
            });
            records.push(rec("other", &format!("o-{i}")));
        }
        insert_all(&store, &records).await;

        let mut tx = store.read().await.unwrap();
        let mut seen: Vec<(String, Option<String>, serde_json::Value)> = Vec::new();
        let mut pages = Vec::new();
        let mut after = 0;
        while let Some(page) = tx.list_json("target", after, 2).await.unwrap() {
            let decoded: Vec<(String, Option<String>, serde_json::Value)> =
                serde_json::from_str(&page.json)
                    .unwrap_or_else(|e| panic!("page is not JSON ({e}): {}", page.json));
            assert_eq!(decoded.len(), page.count);
            pages.push(page.count);
            assert!(page.last_seq > after);
            after = page.last_seq;
            seen.extend(decoded);
        }
        assert_eq!(pages, [2, 2, 1]);
        let want: Vec<(String, Option<String>, serde_json::Value)> = records
            .iter()
            .filter(|r| r.kind == "target")
            .map(|r| (r.id.clone(), r.parent.clone(), r.body.clone()))
            .collect();
        assert_eq!(seen, want);
        // The same as `list`, in the same order.
        let listed = tx.list("target", None).await.unwrap();
        assert_eq!(
            ids(&listed),
            seen.iter().map(|(id, ..)| id.as_str()).collect::<Vec<_>>()
        );
        assert_eq!(tx.list_json("nothing", 0, 10).await.unwrap(), None);
        assert_eq!(tx.list_json("target", after, 10).await.unwrap(), None);
    }

    pub async fn list_referencing_follows_refs(db: TestDb) {
        let store = db.open().await;
        insert_all(
            &store,
            &[
                Record {
                    refs: vec!["tg-1".into(), "tg-2".into()],
                    ..rec("rule", "r-1")
                },
                Record {
                    refs: vec!["tg-2".into(), "tg-2".into()],
                    ..rec("rule", "r-2")
                },
                Record {
                    refs: vec!["tg-1".into()],
                    ..rec("listener", "l-1")
                },
                rec("rule", "r-3"),
            ],
        )
        .await;
        let mut tx = store.write().await.unwrap();
        assert_eq!(
            ids(&tx.list_referencing("rule", "tg-1").await.unwrap()),
            ["r-1"]
        );
        assert_eq!(
            ids(&tx.list_referencing("rule", "tg-2").await.unwrap()),
            ["r-1", "r-2"]
        );
        assert_eq!(
            ids(&tx.list_referencing("listener", "tg-1").await.unwrap()),
            ["l-1"]
        );
        assert!(
            tx.list_referencing("rule", "tg-9")
                .await
                .unwrap()
                .is_empty()
        );

        // The reference index follows updates and deletes.
        let mut r1 = tx.get("rule", "r-1").await.unwrap().unwrap();
        r1.refs = vec!["tg-3".into()];
        tx.update(&r1).await.unwrap();
        assert!(tx.delete("rule", "r-2").await.unwrap());
        assert!(
            tx.list_referencing("rule", "tg-1")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            tx.list_referencing("rule", "tg-2")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            ids(&tx.list_referencing("rule", "tg-3").await.unwrap()),
            ["r-1"]
        );
        tx.commit().await.unwrap();
    }

    pub async fn count_by_kind_and_parent(db: TestDb) {
        let store = db.open().await;
        insert_all(
            &store,
            &[
                Record {
                    parent: s("tg-1"),
                    ..rec("target", "a")
                },
                Record {
                    parent: s("tg-1"),
                    ..rec("target", "b")
                },
                Record {
                    parent: s("tg-2"),
                    ..rec("target", "c")
                },
                rec("target", "d"),
                rec("service", "a"),
            ],
        )
        .await;
        let mut tx = store.read().await.unwrap();
        assert_eq!(tx.count("target", None).await.unwrap(), 4);
        assert_eq!(tx.count("target", Some("tg-1")).await.unwrap(), 2);
        assert_eq!(tx.count("target", Some("tg-2")).await.unwrap(), 1);
        assert_eq!(tx.count("target", Some("tg-3")).await.unwrap(), 0);
        assert_eq!(tx.count("service", None).await.unwrap(), 1);
        assert_eq!(tx.count("listener", None).await.unwrap(), 0);
    }

    pub async fn update_replaces_fields_keeps_seq(db: TestDb) {
        let store = db.open().await;
        let original = Record {
            parent: s("p-1"),
            name: s("old"),
            arn: s("arn:old"),
            refs: vec!["x".into()],
            ..rec("thing", "t-1")
        };
        insert_all(&store, &[original.clone(), rec("thing", "t-2")]).await;
        let seq = store
            .read()
            .await
            .unwrap()
            .get("thing", "t-1")
            .await
            .unwrap()
            .unwrap()
            .seq;

        let updated = Record {
            parent: s("p-2"),
            name: s("new"),
            arn: s("arn:new"),
            refs: vec!["y".into(), "z".into()],
            body: json!({ "changed": true }),
            seq: -1, // ignored
            ..rec("thing", "t-1")
        };
        let mut tx = store.write().await.unwrap();
        tx.update(&updated).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = store.read().await.unwrap();
        assert_eq!(
            tx.get("thing", "t-1").await.unwrap().unwrap(),
            Record { seq, ..updated }
        );
        assert_eq!(
            tx.get_by_name("thing", Some("p-1"), "old").await.unwrap(),
            None
        );
        assert_eq!(tx.get_by_arn("arn:old").await.unwrap(), None);
        assert_eq!(
            tx.get_by_name("thing", Some("p-2"), "new")
                .await
                .unwrap()
                .unwrap()
                .id,
            "t-1"
        );
        assert_eq!(tx.get_by_arn("arn:new").await.unwrap().unwrap().id, "t-1");
        // Order is by insertion, not by last update.
        assert_eq!(ids(&tx.list("thing", None).await.unwrap()), ["t-1", "t-2"]);

        // Clearing optional fields frees them for others.
        let mut tx = store.write().await.unwrap();
        tx.update(&rec("thing", "t-1")).await.unwrap();
        tx.insert(&Record {
            parent: s("p-2"),
            name: s("new"),
            arn: s("arn:new"),
            ..rec("thing", "t-3")
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    pub async fn update_missing_is_not_found(db: TestDb) {
        let store = db.open().await;
        insert_all(&store, &[rec("a", "1")]).await;
        let mut tx = store.write().await.unwrap();
        assert!(matches!(
            tx.update(&rec("a", "2")).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            tx.update(&rec("b", "1")).await,
            Err(StoreError::NotFound)
        ));
        // Still usable afterwards, and the miss created nothing.
        tx.update(&Record {
            body: json!(1),
            ..rec("a", "1")
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.read().await.unwrap();
        assert_eq!(tx.get("a", "2").await.unwrap(), None);
        assert_eq!(tx.get("a", "1").await.unwrap().unwrap().body, json!(1));
    }

    pub async fn delete_reports_existence(db: TestDb) {
        let store = db.open().await;
        insert_all(
            &store,
            &[Record {
                name: s("n"),
                arn: s("arn:1"),
                ..rec("a", "1")
            }],
        )
        .await;
        let mut tx = store.write().await.unwrap();
        assert!(!tx.delete("a", "2").await.unwrap());
        assert!(!tx.delete("b", "1").await.unwrap());
        assert!(tx.delete("a", "1").await.unwrap());
        assert!(!tx.delete("a", "1").await.unwrap());
        tx.commit().await.unwrap();
        let mut tx = store.write().await.unwrap();
        assert_eq!(tx.get("a", "1").await.unwrap(), None);
        // Its id, name and ARN are free again.
        tx.insert(&Record {
            name: s("n"),
            arn: s("arn:1"),
            ..rec("a", "1")
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    pub async fn conflict_on_duplicate_id(db: TestDb) {
        let store = db.open().await;
        insert_all(&store, &[rec("service", "svc-1")]).await;
        let mut tx = store.write().await.unwrap();
        assert_conflict(tx.insert(&rec("service", "svc-1")).await, "svc-1");
        // The same id under another kind is a different record.
        tx.insert(&rec("listener", "svc-1")).await.unwrap();
        // A duplicate within one transaction is caught as well.
        tx.insert(&rec("rule", "r")).await.unwrap();
        assert_conflict(tx.insert(&rec("rule", "r")).await, "already exists");
        tx.commit().await.unwrap();
    }

    pub async fn conflict_on_duplicate_name(db: TestDb) {
        let store = db.open().await;
        insert_all(
            &store,
            &[
                Record {
                    name: s("web"),
                    ..rec("service", "svc-1")
                },
                Record {
                    name: s("http"),
                    parent: s("svc-1"),
                    ..rec("listener", "l-1")
                },
            ],
        )
        .await;
        let mut tx = store.write().await.unwrap();
        assert_conflict(
            tx.insert(&Record {
                name: s("web"),
                ..rec("service", "svc-2")
            })
            .await,
            "web",
        );
        assert_conflict(
            tx.insert(&Record {
                name: s("http"),
                parent: s("svc-1"),
                ..rec("listener", "l-2")
            })
            .await,
            "http",
        );
        // Other scopes are free: another parent, no parent, another kind; and nameless records
        // never clash.
        tx.insert(&Record {
            name: s("http"),
            parent: s("svc-2"),
            ..rec("listener", "l-3")
        })
        .await
        .unwrap();
        tx.insert(&Record {
            name: s("http"),
            ..rec("listener", "l-4")
        })
        .await
        .unwrap();
        tx.insert(&Record {
            name: s("web"),
            ..rec("target-group", "tg-1")
        })
        .await
        .unwrap();
        tx.insert(&Record {
            parent: s("svc-1"),
            ..rec("listener", "l-5")
        })
        .await
        .unwrap();
        tx.insert(&Record {
            parent: s("svc-1"),
            ..rec("listener", "l-6")
        })
        .await
        .unwrap();
        // parent None is one scope: two top-level records with one name clash.
        assert_conflict(
            tx.insert(&Record {
                name: s("http"),
                ..rec("listener", "l-7")
            })
            .await,
            "http",
        );
        tx.commit().await.unwrap();
    }

    pub async fn conflict_on_duplicate_arn(db: TestDb) {
        let store = db.open().await;
        insert_all(
            &store,
            &[Record {
                arn: s("arn:x"),
                ..rec("service", "svc-1")
            }],
        )
        .await;
        let mut tx = store.write().await.unwrap();
        // ARNs are unique across kinds.
        assert_conflict(
            tx.insert(&Record {
                arn: s("arn:x"),
                ..rec("listener", "l-1")
            })
            .await,
            "arn:x",
        );
        tx.insert(&Record {
            arn: s("arn:y"),
            ..rec("listener", "l-1")
        })
        .await
        .unwrap();
        tx.insert(&rec("listener", "l-2")).await.unwrap();
        tx.insert(&rec("listener", "l-3")).await.unwrap();
        tx.commit().await.unwrap();
    }

    pub async fn conflict_on_update(db: TestDb) {
        let store = db.open().await;
        insert_all(
            &store,
            &[
                Record {
                    name: s("a"),
                    arn: s("arn:a"),
                    ..rec("service", "1")
                },
                Record {
                    name: s("b"),
                    arn: s("arn:b"),
                    ..rec("service", "2")
                },
            ],
        )
        .await;
        let mut tx = store.write().await.unwrap();
        assert_conflict(
            tx.update(&Record {
                name: s("a"),
                arn: s("arn:b"),
                ..rec("service", "2")
            })
            .await,
            "\"a\"",
        );
        assert_conflict(
            tx.update(&Record {
                name: s("b"),
                arn: s("arn:a"),
                ..rec("service", "2")
            })
            .await,
            "arn:a",
        );
        tx.commit().await.unwrap();
        // The failed updates changed nothing.
        let mut tx = store.read().await.unwrap();
        let two = tx.get("service", "2").await.unwrap().unwrap();
        assert_eq!((two.name, two.arn), (s("b"), s("arn:b")));
    }

    pub async fn conflict_leaves_transaction_usable(db: TestDb) {
        let store = db.open().await;
        insert_all(&store, &[rec("a", "1")]).await;
        let before = store.revision().await.unwrap();
        let mut tx = store.write().await.unwrap();
        tx.insert(&rec("a", "2")).await.unwrap();
        // A conflicting insert with references must leave no partial rows behind.
        assert_conflict(
            tx.insert(&Record {
                refs: vec!["z".into()],
                ..rec("a", "1")
            })
            .await,
            "already exists",
        );
        tx.insert(&rec("a", "3")).await.unwrap();
        assert_eq!(tx.commit().await.unwrap(), before + 1);
        let mut tx = store.read().await.unwrap();
        assert_eq!(ids(&tx.list("a", None).await.unwrap()), ["1", "2", "3"]);
        assert!(tx.list_referencing("a", "z").await.unwrap().is_empty());
    }

    pub async fn rollback_leaves_no_trace(db: TestDb) {
        let store = db.open().await;
        insert_all(&store, &[rec("a", "keep")]).await;
        let before = store.revision().await.unwrap();
        let mut rx = store.subscribe();
        rx.mark_unchanged();

        // Dropped without commit.
        {
            let mut tx = store.write().await.unwrap();
            tx.insert(&Record {
                refs: vec!["r".into()],
                name: s("n"),
                ..rec("a", "gone")
            })
            .await
            .unwrap();
            tx.update(&Record {
                body: json!("changed"),
                ..rec("a", "keep")
            })
            .await
            .unwrap();
            tx.idempotency_put(
                "scope",
                "tok",
                &IdempotencyEntry {
                    request_hash: "h".into(),
                    response: json!({}),
                },
            )
            .await
            .unwrap();
        }
        // Explicit rollback.
        let mut tx = store.write().await.unwrap();
        tx.delete("a", "keep").await.unwrap();
        tx.rollback().await.unwrap();

        assert_eq!(store.revision().await.unwrap(), before);
        let mut tx = store.read().await.unwrap();
        assert_eq!(tx.revision(), before);
        assert_eq!(tx.get("a", "gone").await.unwrap(), None);
        assert_eq!(tx.get_by_name("a", None, "n").await.unwrap(), None);
        assert!(tx.list_referencing("a", "r").await.unwrap().is_empty());
        assert_eq!(
            tx.get("a", "keep").await.unwrap().unwrap().body,
            json!({ "id": "keep" })
        );
        assert_eq!(tx.idempotency_get("scope", "tok").await.unwrap(), None);
        drop(tx);
        assert!(!rx.has_changed().unwrap(), "feed moved on a rollback");

        // The next commit is exactly one past the last committed revision.
        assert_eq!(insert_all(&store, &[rec("a", "next")]).await, before + 1);
    }

    pub async fn revision_bumps_by_one_per_commit(db: TestDb) {
        let store = db.open().await;
        let start = store.revision().await.unwrap();
        assert_eq!(*store.subscribe().borrow(), start);
        for i in 1..=5u64 {
            let mut tx = store.write().await.unwrap();
            assert!(tx.is_write());
            assert_eq!(tx.revision(), start + i);
            tx.insert(&rec("a", &i.to_string())).await.unwrap();
            assert_eq!(tx.commit().await.unwrap(), start + i);
            assert_eq!(store.revision().await.unwrap(), start + i);
        }
        // An empty write transaction still commits as one revision.
        assert_eq!(
            store.write().await.unwrap().commit().await.unwrap(),
            start + 6
        );
        // Read transactions report the revision they saw and bump nothing.
        let tx = store.read().await.unwrap();
        assert!(!tx.is_write());
        assert_eq!(tx.commit().await.unwrap(), start + 6);
        assert_eq!(store.revision().await.unwrap(), start + 6);
    }

    pub async fn subscribe_sees_commits(db: TestDb) {
        let store = db.open().await;
        let mut rx = store.subscribe();
        let current = *rx.borrow_and_update();
        assert_eq!(current, store.revision().await.unwrap());
        let revision = insert_all(&store, &[rec("a", "1")]).await;
        // Published by the time commit returns: no waiting needed.
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), revision);

        // A subscriber waiting in another task is woken. The commit happens once the waiter
        // runs, so it is (or is about to be) parked in `changed`, not merely spawned.
        let (running, is_running) = tokio::sync::oneshot::channel();
        let waiter = tokio::spawn(async move {
            running.send(()).unwrap();
            rx.changed().await.unwrap();
            *rx.borrow()
        });
        is_running.await.unwrap();
        let revision = insert_all(&store, &[rec("a", "2")]).await;
        let seen = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen, revision);
    }

    /// Another Store on the same database (another process on the SQLite file, another node on
    /// PostgreSQL) learns about commits through its own feed.
    pub async fn second_store_sees_commits(db: TestDb) {
        let a = db.open().await;
        let b = db.open().await;
        let mut rx = b.subscribe();
        for i in 0..3 {
            let revision = insert_all(&a, &[rec("a", &i.to_string())]).await;
            feed_reaches(&mut rx, revision).await;
        }
        let mut tx = b.read().await.unwrap();
        assert_eq!(tx.count("a", None).await.unwrap(), 3);
    }

    /// A writer that waits longer than its bound for the database's writer lock (held by another
    /// Store, as another node or process would) fails with `Unavailable`, not a generic error,
    /// and nothing it did is committed; once the lock is free, writes succeed again. The bound is
    /// the lock timeout on PostgreSQL and the busy timeout on SQLite.
    pub async fn a_held_writer_lock_makes_other_writers_unavailable(db: TestDb) {
        let holder = db.open().await;
        let short = StoreOptions {
            busy_timeout: Duration::from_millis(200),
            postgres: trellis_store::PgLimits {
                lock_timeout: Some(Duration::from_millis(200)),
                ..trellis_store::PgLimits::default()
            },
            ..StoreOptions::default()
        };
        let waiter = db.open_with(short).await;
        let before = waiter.revision().await.unwrap();
        let held = holder.write().await.unwrap();
        let err = waiter.write().await.unwrap_err();
        assert!(
            matches!(err, StoreError::Unavailable(_)),
            "expected Unavailable, got {err:?}"
        );
        assert!(err.is_unavailable());
        held.rollback().await.unwrap();
        assert_eq!(waiter.revision().await.unwrap(), before);
        insert_all(&waiter, &[rec("a", "after")]).await;
    }

    /// The database lock (not just the in-process queue) serializes writers: a writer on a second
    /// Store waits for the first to commit, then sees its changes.
    pub async fn writers_are_serialized_across_stores(db: TestDb) {
        let a = db.open().await;
        let b = db.open().await;
        insert_all(
            &a,
            &[Record {
                body: json!(0),
                ..rec("counter", "c")
            }],
        )
        .await;

        let mut first = a.write().await.unwrap();
        first
            .update(&Record {
                body: json!(1),
                ..rec("counter", "c")
            })
            .await
            .unwrap();

        let (entered, has_entered) = tokio::sync::oneshot::channel();
        let mut second = tokio::spawn(async move {
            entered.send(()).unwrap();
            let mut tx = b.write().await.unwrap();
            let value = tx.get("counter", "c").await.unwrap().unwrap().body;
            tx.update(&Record {
                body: json!(value.as_i64().unwrap() + 10),
                ..rec("counter", "c")
            })
            .await
            .unwrap();
            (value, tx.commit().await.unwrap())
        });
        // Once the second writer has asked for its transaction, it must not finish while the
        // first holds the lock: a bounded wait on the task itself, which must run out.
        has_entered.await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut second)
                .await
                .is_err(),
            "second writer ran while the first held the lock"
        );
        let first_revision = first.commit().await.unwrap();
        let (seen, second_revision) = second.await.unwrap();
        assert_eq!(
            seen,
            json!(1),
            "second writer must see the first writer's commit"
        );
        assert_eq!(second_revision, first_revision + 1);
        let mut tx = a.read().await.unwrap();
        assert_eq!(
            tx.get("counter", "c").await.unwrap().unwrap().body,
            json!(11)
        );
    }

    /// 50 tasks, spread over two Stores, each read-modify-write one counter: no update is lost
    /// and every commit is exactly one revision.
    pub async fn concurrent_writers_lose_no_updates(db: TestDb) {
        const TASKS: u64 = 50;
        let a = db.open().await;
        let b = db.open().await;
        let start = insert_all(
            &a,
            &[Record {
                body: json!({ "n": 0 }),
                ..rec("counter", "c")
            }],
        )
        .await;

        let mut handles = Vec::new();
        for i in 0..TASKS {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            handles.push(tokio::spawn(async move {
                let mut tx = store.write().await.unwrap();
                let mut counter = tx.get("counter", "c").await.unwrap().unwrap();
                let n = counter.body["n"].as_u64().unwrap();
                tokio::task::yield_now().await;
                counter.body = json!({ "n": n + 1 });
                tx.update(&counter).await.unwrap();
                tx.commit().await.unwrap()
            }));
        }
        let mut revisions = Vec::new();
        for h in handles {
            revisions.push(h.await.unwrap());
        }
        revisions.sort_unstable();
        let expected: Vec<Revision> = (start + 1..=start + TASKS).collect();
        assert_eq!(
            revisions, expected,
            "each commit got its own consecutive revision"
        );
        assert_eq!(a.revision().await.unwrap(), start + TASKS);
        let mut tx = b.read().await.unwrap();
        assert_eq!(
            tx.get("counter", "c").await.unwrap().unwrap().body,
            json!({ "n": TASKS })
        );
        let mut rx = a.subscribe();
        feed_reaches(&mut rx, start + TASKS).await;
    }

    pub async fn read_transaction_is_consistent(db: TestDb) {
        let store = db.open().await;
        let base = insert_all(&store, &[rec("a", "1")]).await;
        let mut reader = store.read().await.unwrap();
        assert_eq!(reader.revision(), base);
        assert_eq!(reader.count("a", None).await.unwrap(), 1);

        // Writes committed while the reader is open stay invisible to it.
        let mut tx = store.write().await.unwrap();
        tx.insert(&rec("a", "2")).await.unwrap();
        tx.update(&Record {
            body: json!("new"),
            ..rec("a", "1")
        })
        .await
        .unwrap();
        let later = tx.commit().await.unwrap();

        assert_eq!(reader.count("a", None).await.unwrap(), 1);
        assert_eq!(reader.get("a", "2").await.unwrap(), None);
        assert_eq!(
            reader.get("a", "1").await.unwrap().unwrap().body,
            json!({ "id": "1" })
        );
        assert_eq!(reader.commit().await.unwrap(), base);

        let mut fresh = store.read().await.unwrap();
        assert_eq!(fresh.revision(), later);
        assert_eq!(fresh.count("a", None).await.unwrap(), 2);
    }

    pub async fn read_transaction_refuses_writes(db: TestDb) {
        let store = db.open().await;
        let before = store.revision().await.unwrap();
        let mut tx = store.read().await.unwrap();
        assert!(matches!(
            tx.insert(&rec("a", "1")).await,
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            tx.update(&rec("a", "1")).await,
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            tx.delete("a", "1").await,
            Err(StoreError::Backend(_))
        ));
        let entry = IdempotencyEntry {
            request_hash: "h".into(),
            response: json!(null),
        };
        assert!(matches!(
            tx.idempotency_put("s", "t", &entry).await,
            Err(StoreError::Backend(_))
        ));
        assert_eq!(tx.commit().await.unwrap(), before);
        assert_eq!(store.revision().await.unwrap(), before);
        assert_eq!(
            store.read().await.unwrap().count("a", None).await.unwrap(),
            0
        );
    }

    pub async fn idempotency_get_put(db: TestDb) {
        let store = db.open().await;
        let first = IdempotencyEntry {
            request_hash: "sha256:abc".into(),
            response: json!({ "arn": "arn:svc/1", "status": "ACTIVE", "list": [1, 2] }),
        };
        let mut tx = store.write().await.unwrap();
        assert_eq!(
            tx.idempotency_get("CreateService", "tok-1").await.unwrap(),
            None
        );
        tx.idempotency_put("CreateService", "tok-1", &first)
            .await
            .unwrap();
        assert_eq!(
            tx.idempotency_get("CreateService", "tok-1").await.unwrap(),
            Some(first.clone())
        );
        tx.commit().await.unwrap();

        let mut tx = store.write().await.unwrap();
        assert_eq!(
            tx.idempotency_get("CreateService", "tok-1").await.unwrap(),
            Some(first.clone())
        );
        // Scopes are separate namespaces.
        assert_eq!(
            tx.idempotency_get("CreateListener", "tok-1").await.unwrap(),
            None
        );
        assert_eq!(
            tx.idempotency_get("CreateService", "tok-2").await.unwrap(),
            None
        );
        // A put replaces.
        let second = IdempotencyEntry {
            request_hash: "sha256:def".into(),
            response: json!("x"),
        };
        tx.idempotency_put("CreateService", "tok-1", &second)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.read().await.unwrap();
        assert_eq!(
            tx.idempotency_get("CreateService", "tok-1").await.unwrap(),
            Some(second)
        );
    }

    pub async fn accounts_scope_every_operation(db: TestDb) {
        let store = db.open().await;
        let a = store.scoped("111111111111");
        let b = store.scoped("222222222222");
        let named = |id: &str, arn: &str| Record {
            name: s("billing"),
            arn: s(arn),
            refs: vec!["target".into()],
            ..rec("service", id)
        };
        // The same name in two accounts; a record of no account seen by both.
        let mut tx = a.write().await.unwrap();
        tx.insert(&named("svc-a", "arn:a")).await.unwrap();
        tx.idempotency_put(
            "CreateService",
            "tok",
            &IdempotencyEntry {
                request_hash: "h".into(),
                response: json!("a"),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut tx = b.write().await.unwrap();
        tx.insert(&named("svc-b", "arn:b")).await.unwrap();
        assert_conflict(tx.insert(&named("svc-b2", "arn:b2")).await, "");
        tx.commit().await.unwrap();
        let mut tx = store.unscoped().write().await.unwrap();
        tx.insert(&rec("organization", "org")).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = a.read().await.unwrap();
        assert_eq!(tx.account(), Some("111111111111"));
        assert_eq!(ids(&tx.list("service", None).await.unwrap()), ["svc-a"]);
        assert_eq!(tx.count("service", None).await.unwrap(), 1);
        assert!(tx.get("service", "svc-b").await.unwrap().is_none());
        assert!(tx.get_by_arn("arn:b").await.unwrap().is_none());
        assert_eq!(
            tx.get_by_name("service", None, "billing")
                .await
                .unwrap()
                .map(|r| r.id),
            s("svc-a")
        );
        assert_eq!(
            ids(&tx.list_referencing("service", "target").await.unwrap()),
            ["svc-a"]
        );
        assert!(tx.get("organization", "org").await.unwrap().is_some());
        assert!(
            tx.idempotency_get("CreateService", "tok")
                .await
                .unwrap()
                .is_some()
        );
        drop(tx);
        // Another account can neither see, change nor delete it, nor use its token.
        let mut tx = b.write().await.unwrap();
        assert!(
            tx.idempotency_get("CreateService", "tok")
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            tx.update(&named("svc-a", "arn:a")).await,
            Err(StoreError::NotFound)
        ));
        assert!(!tx.delete("service", "svc-a").await.unwrap());
        tx.commit().await.unwrap();
        // The unscoped view sees everything.
        let mut tx = store.read().await.unwrap();
        assert_eq!(
            ids(&tx.list("service", None).await.unwrap()),
            ["svc-a", "svc-b"]
        );
        assert!(tx.get_by_arn("arn:a").await.unwrap().is_some());
    }

    pub async fn adopt_unowned_gives_legacy_records_to_an_account(db: TestDb) {
        let store = db.open().await;
        let mut tx = store.write().await.unwrap();
        tx.insert(&rec("service", "old")).await.unwrap();
        tx.insert(&rec("sts-token-key", "current")).await.unwrap();
        tx.commit().await.unwrap();
        let before = store.revision().await.unwrap();
        assert_eq!(
            store
                .adopt_unowned("111111111111", &["sts-token-key"])
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.revision().await.unwrap(), before + 1);
        // Nothing left to adopt: no write.
        assert_eq!(
            store
                .adopt_unowned("111111111111", &["sts-token-key"])
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.revision().await.unwrap(), before + 1);
        let mut tx = store.scoped("222222222222").read().await.unwrap();
        assert!(tx.get("service", "old").await.unwrap().is_none());
        assert!(tx.get("sts-token-key", "current").await.unwrap().is_some());
        let mut tx = store.scoped("111111111111").read().await.unwrap();
        assert!(tx.get("service", "old").await.unwrap().is_some());
    }

    pub async fn data_survives_reopen(db: TestDb) {
        let store = db.open().await;
        let record = Record {
            parent: s("p"),
            name: s("n"),
            arn: s("arn:n"),
            refs: vec!["r".into()],
            body: json!({ "deep": { "list": [1, "two", null] } }),
            ..rec("kind", "id")
        };
        insert_all(&store, std::slice::from_ref(&record)).await;
        let mut tx = store.write().await.unwrap();
        let entry = IdempotencyEntry {
            request_hash: "h".into(),
            response: json!([1]),
        };
        tx.idempotency_put("s", "t", &entry).await.unwrap();
        let revision = tx.commit().await.unwrap();
        store.close().await;
        drop(store);

        // Reopening runs the migrations again, which must be a no-op.
        for _ in 0..2 {
            let store = db.open().await;
            assert_eq!(store.revision().await.unwrap(), revision);
            assert_eq!(*store.subscribe().borrow(), revision);
            let mut tx = store.read().await.unwrap();
            let got = tx.get("kind", "id").await.unwrap().unwrap();
            assert_eq!(
                Record {
                    seq: 0,
                    ..got.clone()
                },
                record
            );
            assert_eq!(tx.get_by_arn("arn:n").await.unwrap().unwrap().id, "id");
            assert_eq!(
                ids(&tx.list_referencing("kind", "r").await.unwrap()),
                ["id"]
            );
            assert_eq!(
                tx.idempotency_get("s", "t").await.unwrap(),
                Some(entry.clone())
            );
            drop(tx);
            // Seqs continue after a restart.
            let mut tx = store.write().await.unwrap();
            let seq = tx
                .insert(&rec("kind", &format!("after-{}", got.seq)))
                .await
                .unwrap();
            assert!(seq > got.seq);
            tx.rollback().await.unwrap();
            store.close().await;
        }
    }

    /// Several nodes starting at once on an empty database: the migration runs once and every
    /// store works.
    pub async fn concurrent_connects_migrate_once(db: TestDb) {
        let mut handles = Vec::new();
        for _ in 0..4 {
            let db = db.clone();
            handles.push(tokio::spawn(async move { db.open().await }));
        }
        let mut stores = Vec::new();
        for h in handles {
            stores.push(h.await.unwrap());
        }
        for (i, store) in stores.iter().enumerate() {
            insert_all(store, &[rec("a", &i.to_string())]).await;
        }
        assert_eq!(stores[0].revision().await.unwrap(), 4);
        assert_eq!(
            stores[3]
                .read()
                .await
                .unwrap()
                .count("a", None)
                .await
                .unwrap(),
            4
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL-only: the session limits.

/// A session left idle inside a write transaction (a node stopped mid-write) is ended by the
/// database after the configured `idle_in_transaction_session_timeout`, which frees the writer
/// lock for the others; the stalled writer's next statement fails as `Unavailable`. (The lock
/// timeout is covered on both engines by `a_held_writer_lock_makes_other_writers_unavailable`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_idle_writers_lose_the_writer_lock() {
    harness::run_postgres("session_limits", |db| async move {
        let limits = trellis_store::PgLimits {
            idle_in_transaction_timeout: Some(Duration::from_millis(300)),
            ..trellis_store::PgLimits::default()
        };
        let store = db
            .open_with(StoreOptions {
                postgres: limits,
                ..StoreOptions::default()
            })
            .await;
        let mut stalled = store.write().await.unwrap();
        let other = db.open().await;
        // The stalled writer holds the lock until the database ends its idle session; the other
        // store's writer (default 5 s lock timeout) then gets it.
        let revision = insert_all(&other, &[rec("a", "1")]).await;
        assert!(revision > 0);
        let err = stalled.insert(&rec("a", "2")).await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        drop(stalled);
    })
    .await;
}

/// A database that stops answering without closing the connection (a frozen host, a network
/// that drops packets silently: here its backend process is stopped with SIGSTOP, so neither
/// its statement timeout nor a TCP error can end the wait) costs a statement the node's own
/// bound, `statement_timeout` plus a margin, and is reported `Unavailable`, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_database_that_stops_answering_is_unavailable_after_the_client_bound() {
    use sqlx::Connection;
    harness::run_postgres("frozen_backend", |db| async move {
        let app = "trellis-frozen-backend";
        let sep = if db.url.contains('?') { '&' } else { '?' };
        let store = Store::connect_with(
            &format!("{}{sep}application_name={app}", db.url),
            StoreOptions {
                poll_interval: None,
                listen: false,
                postgres: trellis_store::PgLimits {
                    statement_timeout: Some(Duration::from_secs(1)),
                    ..trellis_store::PgLimits::default()
                },
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap();
        let mut tx = store.read().await.unwrap();
        let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let pid: i32 = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 \
             AND state = 'idle in transaction'",
        )
        .bind(app)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        let signal = |sig: &str| {
            let status = std::process::Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success(), "kill {sig} {pid}");
        };
        signal("-STOP");
        let result = tokio::time::timeout(Duration::from_secs(60), tx.get("a", "1")).await;
        signal("-CONT");
        let err = result
            .expect("the store's own bound ends the wait")
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        drop(tx);
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut admin)
            .await
            .unwrap();
        // The abandoned connection is not handed out again: the next read works.
        let mut tx = store.read().await.unwrap();
        assert_eq!(tx.get("a", "1").await.unwrap(), None);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL-only: each feed source on its own.

async fn postgres_feed_case(name: &str, follower_options: StoreOptions) {
    let follower_options = follower_options.clone();
    harness::run_postgres(name, move |db| async move {
        let writer = db
            .open_with(StoreOptions {
                poll_interval: None,
                ..StoreOptions::default()
            })
            .await;
        let follower = db.open_with(follower_options).await;
        let mut rx = follower.subscribe();
        for i in 0..5 {
            let revision = insert_all(&writer, &[rec("a", &i.to_string())]).await;
            feed_reaches(&mut rx, revision).await;
        }
    })
    .await;
}

/// With polling off, only LISTEN/NOTIFY can move the follower's feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listen_notify_feeds_other_nodes() {
    postgres_feed_case(
        "listen_only",
        StoreOptions {
            poll_interval: None,
            listen: true,
            ..StoreOptions::default()
        },
    )
    .await;
}

/// With LISTEN off, the revision poll alone keeps the follower's feed current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_poll_fallback_feeds_other_nodes() {
    postgres_feed_case(
        "poll_only",
        StoreOptions {
            poll_interval: Some(Duration::from_millis(100)),
            listen: false,
            ..StoreOptions::default()
        },
    )
    .await;
}

/// A dropped LISTEN connection is re-established and the commits made meanwhile are caught up,
/// with polling off so LISTEN alone must recover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listen_recovers_after_connection_loss() {
    use sqlx::Connection;
    harness::run_postgres("listen_recovers", |db| async move {
        let no_poll = StoreOptions {
            poll_interval: None,
            ..StoreOptions::default()
        };
        let writer = db.open_with(no_poll.clone()).await;
        let follower = db.open_with(no_poll).await;
        let mut rx = follower.subscribe();
        let revision = insert_all(&writer, &[rec("a", "before")]).await;
        feed_reaches(&mut rx, revision).await;

        let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let terminated: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert!(!terminated.is_empty(), "no LISTEN connection found");
        // Committed while the follower has no listener.
        let revision = insert_all(&writer, &[rec("a", "during")]).await;
        feed_reaches(&mut rx, revision).await;
        // And notifications flow again afterwards.
        let revision = insert_all(&writer, &[rec("a", "after")]).await;
        feed_reaches(&mut rx, revision).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// SQLite-only: separate processes on one file.

/// Environment of a child process started by the tests below (a re-exec of this test binary
/// running only `sqlite_child_process`).
const CHILD_URL_ENV: &str = "TRELLIS_STORE_TEST_CHILD_URL";
const CHILD_MODE_ENV: &str = "TRELLIS_STORE_TEST_CHILD_MODE";

/// Not a test of its own: the body of the child processes. Does nothing unless started by a test
/// with `TRELLIS_STORE_TEST_CHILD_URL` set.
#[test]
fn sqlite_child_process() {
    let Ok(url) = std::env::var(CHILD_URL_ENV) else {
        return;
    };
    let mode = std::env::var(CHILD_MODE_ENV).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        use std::io::Write;
        let store = Store::connect(&url).await.unwrap();
        let mut out = std::io::stdout().lock();
        // The test harness has printed "test sqlite_child_process ... " without a newline; start
        // our protocol lines on a fresh line.
        writeln!(out).unwrap();
        match mode.as_str() {
            // Writes until killed, printing each acknowledged commit. Bounded so that an
            // orphaned child cannot run forever.
            "durability" => {
                for i in 0..100_000u64 {
                    let mut tx = store.write().await.unwrap();
                    tx.insert(&Record {
                        body: json!({ "i": i }),
                        ..rec("durable", &format!("d{i}"))
                    })
                    .await
                    .unwrap();
                    let revision = tx.commit().await.unwrap();
                    if writeln!(out, "ACK {i} {revision}")
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return; // the parent is gone
                    }
                }
            }
            // Increments the shared counter in separate write transactions.
            "counter" => {
                for _ in 0..COUNTER_INCREMENTS {
                    let mut tx = store.write().await.unwrap();
                    let mut counter = tx.get("counter", "c").await.unwrap().unwrap();
                    let n = counter.body["n"].as_u64().unwrap();
                    counter.body = json!({ "n": n + 1 });
                    tx.update(&counter).await.unwrap();
                    tx.commit().await.unwrap();
                }
                writeln!(out, "DONE").unwrap();
            }
            other => panic!("unknown child mode {other:?}"),
        }
    });
}

const COUNTER_INCREMENTS: u64 = 40;

fn child(url: &str, mode: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "sqlite_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL_ENV, url)
        .env(CHILD_MODE_ENV, mode)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Every write whose commit returned survives `kill -9` of the writing process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_keeps_acknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(&dir.path().join("trellis.db"));
    let mut process = child(&url, "durability").spawn().unwrap();
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let mut acked: Vec<(u64, Revision)> = Vec::new();
    let mut killed = false;
    let reading = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("ACK ") {
                let (i, revision) = rest.split_once(' ').unwrap();
                acked.push((i.parse().unwrap(), revision.parse().unwrap()));
                if acked.len() == 200 && !killed {
                    // SIGKILL mid-stream: the child is busy committing the next write.
                    process.start_kill().unwrap();
                    killed = true;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), reading)
        .await
        .expect("child too slow");
    let status = process.wait().await.unwrap();
    assert!(
        killed && !status.success(),
        "child should have been killed: {status:?}"
    );
    assert!(acked.len() >= 200);

    let store = Store::connect(&url).await.unwrap();
    let last = acked.last().unwrap().1;
    let revision = store.revision().await.unwrap();
    assert!(
        revision >= last,
        "revision {revision} is behind the acknowledged {last}"
    );
    let mut tx = store.read().await.unwrap();
    for (i, _) in &acked {
        let record = tx.get("durable", &format!("d{i}")).await.unwrap();
        assert_eq!(
            record.map(|r| r.body),
            Some(json!({ "i": i })),
            "acknowledged write d{i} lost"
        );
    }
}

/// Writers in separate processes are serialized by SQLite's write lock: no lost updates, one
/// revision per commit, and each process's feed poll sees the other's commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writers_in_separate_processes_lose_no_updates() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(&dir.path().join("trellis.db"));
    let store = Store::connect(&url).await.unwrap();
    let start = insert_all(
        &store,
        &[Record {
            body: json!({ "n": 0 }),
            ..rec("counter", "c")
        }],
    )
    .await;

    let mut children = Vec::new();
    for _ in 0..2 {
        children.push(child(&url, "counter").spawn().unwrap());
    }
    for mut process in children {
        let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
        let mut done = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            done |= line == "DONE";
        }
        let status = process.wait().await.unwrap();
        assert!(status.success() && done, "child failed: {status:?}");
    }
    let total = 2 * COUNTER_INCREMENTS;
    assert_eq!(store.revision().await.unwrap(), start + total);
    let mut tx = store.read().await.unwrap();
    assert_eq!(
        tx.get("counter", "c").await.unwrap().unwrap().body,
        json!({ "n": total })
    );
    // This process never wrote those revisions; its feed learns of them from the poll.
    let mut rx = store.subscribe();
    feed_reaches(&mut rx, start + total).await;
}

// ---------------------------------------------------------------------------------------------
// Connect-time errors: clear `Backend` messages, never a panic.

#[track_caller]
fn assert_backend_error(result: Result<Store, StoreError>, needles: &[&str]) {
    match result {
        Err(StoreError::Backend(message)) => {
            for needle in needles {
                assert!(
                    message.contains(needle),
                    "{message:?} should mention {needle:?}"
                );
            }
        }
        Err(other) => panic!("expected a Backend error, got {other:?}"),
        Ok(_) => panic!("expected a Backend error, got a store"),
    }
}

#[tokio::test]
async fn connect_reports_unusable_sqlite_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/trellis.db");
    assert_backend_error(
        Store::connect(&Store::sqlite_url(&missing)).await,
        &["SQLite", &missing.display().to_string()],
    );
    // A directory is not a database file.
    assert_backend_error(
        Store::connect(&Store::sqlite_url(dir.path())).await,
        &["SQLite"],
    );
    // Nor is a file with other contents.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    assert_backend_error(Store::connect(&Store::sqlite_url(&junk)).await, &["SQLite"]);
}

#[tokio::test]
async fn connect_reports_bad_urls() {
    assert_backend_error(
        Store::connect("mysql://localhost/x").await,
        &["unsupported store URL"],
    );
    assert_backend_error(Store::connect("").await, &["unsupported store URL"]);
    assert_backend_error(Store::connect("sqlite::memory:").await, &["in-memory"]);
    // Nothing listens on port 1; the password must not appear in the message.
    assert_backend_error(
        Store::connect("postgres://user:hunter2@127.0.0.1:1/db").await,
        &["PostgreSQL", "127.0.0.1:1", "user:***@"],
    );
    match Store::connect("postgres://user:hunter2@127.0.0.1:1/db").await {
        Err(e) => assert!(!e.to_string().contains("hunter2"), "{e}"),
        Ok(_) => unreachable!(),
    }
}

#[tokio::test]
async fn sqlite_url_escapes_reserved_characters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd name?#%.db");
    let url = Store::sqlite_url(&path);
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.close().await;
    assert!(path.exists(), "{url} should open {}", path.display());
}
