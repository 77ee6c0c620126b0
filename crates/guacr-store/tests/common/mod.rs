//! Runs a test body against both backends: a fresh SQLite file in a temp
//! directory, and a fresh PostgreSQL database (`guacr_store_test_<random>`)
//! created from `GUACR_TEST_PG_URL` (scripts/peers.d/postgres.sh) and dropped
//! afterwards, whether the body passed or not.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::PathBuf;

pub const PG_MISSING: &str = "PostgreSQL test peer missing: GUACR_TEST_PG_URL is not set \
     (run `scripts/test-peers.sh start`, which starts scripts/peers.d/postgres.sh)";

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("randomness");
    hex::encode(b)
}

/// A database for one test on one backend.
pub enum TestDb {
    Sqlite { dir: PathBuf },
    Postgres(guacr_store::testing::TestDatabase),
}

impl TestDb {
    pub fn sqlite(test: &str) -> TestDb {
        let dir = std::env::temp_dir().join(format!("guacr-store-{test}-{}", random_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TestDb::Sqlite { dir }
    }

    pub async fn postgres() -> TestDb {
        let admin_url = guacr_testkit::peers::var("GUACR_TEST_PG_URL").expect(PG_MISSING);
        let db = guacr_store::testing::TestDatabase::create_postgres(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot create a database on the PostgreSQL test peer: {e}")
            });
        TestDb::Postgres(db)
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite { dir } => format!("sqlite://{}/guacr.db", dir.display()),
            TestDb::Postgres(db) => db.url().to_owned(),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            TestDb::Sqlite { .. } => "sqlite",
            TestDb::Postgres(_) => "postgres",
        }
    }

    pub async fn drop_db(self) {
        match self {
            TestDb::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            TestDb::Postgres(db) => db.drop_database().await,
        }
    }
}

/// Runs `body(url)` on SQLite, then on PostgreSQL; panics (naming the
/// backend) if either run panicked, after dropping both databases.
pub async fn each_backend<F, Fut>(test: &str, body: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut failures = Vec::new();
    for pg in [false, true] {
        let db = if pg {
            TestDb::postgres().await
        } else {
            TestDb::sqlite(test)
        };
        let result = tokio::spawn(body(db.url())).await;
        let label = db.label();
        db.drop_db().await;
        if let Err(e) = result {
            let msg = match e.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            failures.push(format!("[{label}] {msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{test} failed: {}",
        failures.join("\n")
    );
}

/// A raw connection to the same database (to look at stored columns).
pub async fn raw(url: &str) -> sqlx::AnyConnection {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url)
        .await
        .expect("raw connection")
}
