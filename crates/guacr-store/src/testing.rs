//! Test support: a fresh, uniquely named PostgreSQL database per test run
//! (`guacr_store_test_<random>`), created from an administrative URL such as
//! the test peers' `GUACR_TEST_PG_URL` and dropped afterwards.

use sqlx::Connection as _;

use crate::Error;

/// A database created for one test run. Call [`TestDatabase::drop_database`] at the end.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates `guacr_store_test_<random>` on the server of `admin_url`
    /// (a URL whose user may `CREATE DATABASE`).
    pub async fn create_postgres(admin_url: &str) -> Result<TestDatabase, Error> {
        sqlx::any::install_default_drivers();
        let mut b = [0u8; 8];
        crate::crypto::random(&mut b)?;
        let name = format!("guacr_store_test_{}", hex::encode(b));
        let base = admin_url.split('?').next().unwrap_or(admin_url);
        let cut = base
            .rfind('/')
            .filter(|i| *i > base.find("://").map_or(0, |s| s + 2))
            .ok_or_else(|| Error::Invalid("the PostgreSQL URL names no database".to_owned()))?;
        let url = format!("{}/{name}", &base[..cut]);
        let mut c = sqlx::AnyConnection::connect(admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await?;
        let _ = c.close().await;
        Ok(TestDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }

    /// The URL of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database (closing whatever is still connected to it).
    pub async fn drop_database(self) {
        if let Ok(mut c) = sqlx::AnyConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut c)
            .await;
            let _ = c.close().await;
        }
    }
}
