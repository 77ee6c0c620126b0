//! Opening the pool and migrating: one `sqlx::Any` code path, per-backend migration files.

use std::borrow::Cow;
use std::sync::Once;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::{Backend, Error};

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "web sessions",
        include_str!("../migrations/sqlite/0002_web_sessions.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "web sessions",
        include_str!("../migrations/postgres/0002_web_sessions.sql"),
    ),
];

/// The migrator of a backend (the SQL files are compiled in).
pub(crate) fn migrator(backend: Backend) -> Migrator {
    let list = match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    };
    let migrations: Vec<Migration> = list
        .iter()
        .map(|(v, d, sql)| {
            Migration::new(
                *v,
                Cow::Borrowed(*d),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// Which backend a URL names, and the URL to give sqlx.
pub(crate) fn classify(url: &str) -> Result<(Backend, String), Error> {
    let lower = url.get(..11).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql:") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    if lower.starts_with("sqlite:") {
        let rest = &url["sqlite:".len()..];
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(Error::Invalid(format!("no file in the SQLite URL {url:?}")));
        }
        let memory = path == ":memory:";
        if !memory {
            let p = std::path::Path::new(path);
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty())
                && !dir.exists()
            {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display())))?;
            }
            // The file holds password hashes: create it private (SQLite gives
            // its -wal/-shm files the same mode). An empty file is a valid database.
            if !p.exists() {
                use std::os::unix::fs::OpenOptionsExt;
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(p)
                {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(Error::Io(format!("cannot create {}: {e}", p.display())));
                    }
                }
            }
        }
        // Create the file on first open unless the URL says otherwise.
        let query = match query {
            Some(q) if q.split('&').any(|kv| kv.starts_with("mode=")) => q.to_owned(),
            Some(q) if !memory => format!("{q}&mode=rwc"),
            Some(q) => q.to_owned(),
            None if memory => String::new(),
            None => "mode=rwc".to_owned(),
        };
        let url = if memory {
            // `sqlite://:memory:` would parse as a URL with an empty host.
            if query.is_empty() {
                "sqlite::memory:".to_owned()
            } else {
                format!("sqlite::memory:?{query}")
            }
        } else if query.is_empty() {
            format!("sqlite://{path}")
        } else {
            format!("sqlite://{path}?{query}")
        };
        return Ok((Backend::Sqlite, url));
    }
    Err(Error::Invalid(format!(
        "unsupported database URL (use sqlite://PATH or postgres://…): {}",
        redact_url(url)
    )))
}

/// A URL without its password, for messages.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub(crate) async fn connect(url: &str, max_connections: u32) -> Result<(Backend, AnyPool), Error> {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
    let (backend, url) = classify(url)?;
    let memory = url.contains(":memory:");
    let max = if memory { 1 } else { max_connections.max(1) };
    let mut opts = AnyPoolOptions::new().max_connections(max);
    if memory {
        // One connection that lives as long as the pool: the database is that connection.
        opts = opts
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    }
    let pool = opts.connect(&url).await.map_err(|e| match e {
        sqlx::Error::Configuration(m) => Error::Invalid(format!("database URL: {m}")),
        e => e.into(),
    })?;
    if backend == Backend::Sqlite && !memory {
        // WAL: readers do not block the writer (the web server reads while it audits).
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
    }
    Ok((backend, pool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            classify("sqlite::memory:").unwrap(),
            (Backend::Sqlite, "sqlite::memory:".to_owned())
        );
        let (_, u) = classify("sqlite:///tmp/x.db").unwrap();
        assert_eq!(u, "sqlite:///tmp/x.db?mode=rwc");
        let (_, u) = classify("sqlite:///tmp/x.db?mode=ro").unwrap();
        assert_eq!(u, "sqlite:///tmp/x.db?mode=ro");
        assert_eq!(
            classify("postgres://a:b@h/db").unwrap().0,
            Backend::Postgres
        );
        let e = classify("mysql://root:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported") && !e.contains("hunter2"), "{e}");
    }
}
