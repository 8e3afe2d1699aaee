//! Test harness for the store conformance suite: gives each case a fresh database on SQLite (a
//! temp dir) or PostgreSQL (a uniquely named database on `TRELLIS_TEST_POSTGRES_URL`).

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use trellis_store::{Backend, Store, StoreOptions};

/// Where the PostgreSQL cases find a server they may create databases on.
pub const POSTGRES_URL_ENV: &str = "TRELLIS_TEST_POSTGRES_URL";

/// No single case should come near this; a hang becomes a failure instead of a stuck CI run.
const CASE_TIMEOUT: Duration = Duration::from_secs(180);

/// One case's database. Cloneable so a case can hand it to spawned tasks; the SQLite temp dir
/// lives as long as any clone.
#[derive(Clone)]
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    _dir: Option<Arc<tempfile::TempDir>>,
}

impl TestDb {
    /// A new `Store` on this database (a second call gives an independent pool and feed, like
    /// another process or node would have).
    pub async fn open(&self) -> Store {
        self.open_with(StoreOptions::default()).await
    }

    pub async fn open_with(&self, options: StoreOptions) -> Store {
        Store::connect_with(&self.url, options)
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url))
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The admin URL for the PostgreSQL cases, or `None` (after saying so) when they are to be
/// skipped. In CI a missing URL is a failure: a green CI run must have exercised PostgreSQL.
pub fn postgres_admin_url(case: &str) -> Option<String> {
    match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci() => panic!(
            "{POSTGRES_URL_ENV} is not set but CI is: the PostgreSQL conformance cases must run \
             in CI. Run the tests under scripts/with-postgres, e.g. \
             `scripts/with-postgres cargo test -p trellis-store`."
        ),
        _ => {
            // Straight to stderr rather than eprintln!, which the test harness captures and
            // hides for passing tests: a skip must be visible.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED postgres case {case}: {POSTGRES_URL_ENV} is not set (run under \
                 scripts/with-postgres to include the PostgreSQL backend)"
            );
            None
        }
    }
}

/// `url` with its database (path) replaced by `database`, query parameters kept.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

async fn admin_exec(admin_url: &str, sql: String) {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("connect to {POSTGRES_URL_ENV}: {e}"));
    sqlx::raw_sql(AssertSqlSafe(sql.clone()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// Runs `case` on a fresh SQLite database in a temp dir.
pub async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let url = Store::sqlite_url(&dir.path().join("trellis.db"));
    let db = TestDb {
        backend: Backend::Sqlite,
        url,
        _dir: Some(Arc::new(dir)),
    };
    tokio::time::timeout(CASE_TIMEOUT, case(db))
        .await
        .expect("case timed out");
}

/// Runs `case` on a freshly created PostgreSQL database, dropped afterwards even if the case
/// panics, so cases run in parallel without seeing each other's data.
pub async fn run_postgres<F, Fut>(name: &str, case: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let Some(admin) = postgres_admin_url(name) else {
        return;
    };
    let short: String = name.chars().take(30).collect();
    let database = format!(
        "trellis_t_{short}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    admin_exec(&admin, format!("CREATE DATABASE \"{database}\"")).await;
    let db = TestDb {
        backend: Backend::Postgres,
        url: with_database(&admin, &database),
        _dir: None,
    };
    // Spawned so a panic comes back as a JoinError and the database is still dropped.
    let outcome = tokio::spawn(tokio::time::timeout(CASE_TIMEOUT, case(db))).await;
    admin_exec(
        &admin,
        format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
    )
    .await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("case timed out"),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("case task failed: {e}"),
    }
}

/// Declares every listed case (an `async fn(TestDb)` in `crate::cases`) once per backend, as
/// `sqlite::<case>` and `postgres::<case>`.
#[macro_export]
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::harness::run_sqlite($crate::cases::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    $crate::harness::run_postgres(stringify!($case), $crate::cases::$case).await;
                }
            )*
        }
    };
}

#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        with_database("postgres://u@h:5/db?sslmode=disable", "x"),
        "postgres://u@h:5/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
}
