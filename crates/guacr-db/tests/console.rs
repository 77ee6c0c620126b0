//! The console driven directly (keys in, VT text out) against the PostgreSQL
//! test peer: the audit log, and input that must never panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use guacr_console::{Upstream, UpstreamCommand, UpstreamEvent};
use guacr_db::backend::{ConnectSettings, Kind, connect};
use guacr_db::console::{Console, ConsoleConfig, FileSink};
use guacr_db::tls::TlsMode;

struct Files(Mutex<Vec<u8>>);
impl FileSink for Files {
    fn open(&self, _: &str, _: &str) -> i32 {
        1
    }
    fn blob(&self, _: i32, data: &[u8]) {
        self.0.lock().unwrap().extend_from_slice(data);
    }
    fn end(&self, _: i32) {}
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);
impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn var(name: &str) -> String {
    guacr_testkit::peers::var(name).unwrap_or_else(|| {
        panic!("{name} is not set: start the test peers with `scripts/test-peers.sh start`")
    })
}

async fn start(files: Arc<Files>) -> Upstream {
    let settings = ConnectSettings {
        kind: Kind::Postgres,
        host: var("GUACR_TEST_PG_HOST"),
        port: var("GUACR_TEST_PG_PORT").parse().unwrap(),
        username: var("GUACR_TEST_PG_USER"),
        password: var("GUACR_TEST_PG_PASSWORD"),
        database: None,
        tls: TlsMode::Prefer,
        ca_certificate: None,
        read_only: false,
        connect_timeout: Duration::from_secs(10),
    };
    let conn = connect(&settings).await.expect("connect");
    let (up, io) = guacr_console::upstream_channels();
    let cfg = ConsoleConfig {
        kind: Kind::Postgres,
        connection_id: "$test".into(),
        user: "auditor".into(),
        db_user: settings.username.clone(),
        read_only: false,
        max_rows: 0,
        query_timeout: None,
        allow_export: true,
        cols: 80,
        rows: 24,
        export_limit: 1024,
        reconnect: None,
    };
    tokio::spawn(Console::new(cfg, conn, io, files).run());
    up
}

async fn until(up: &mut Upstream, needle: &str) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !text.contains(needle) {
        match tokio::time::timeout_at(deadline, up.events.recv()).await {
            Ok(Some(UpstreamEvent::Data(d))) => text.push_str(&String::from_utf8_lossy(&d)),
            other => panic!("{needle:?} never came ({other:?}); got {text:?}"),
        }
    }
    text
}

fn send(up: &Upstream, s: &str) {
    up.commands
        .send(UpstreamCommand::Write(Bytes::copy_from_slice(s.as_bytes())))
        .unwrap();
}

#[tokio::test]
async fn every_statement_is_audited_with_user_rows_duration_and_no_secrets() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let files = Arc::new(Files(Mutex::new(Vec::new())));
    let mut up = start(files.clone()).await;
    until(&mut up, "=> ").await;
    send(&up, "SELECT g FROM generate_series(1, 3) g;\r");
    until(&mut up, "(3 rows)").await;
    send(&up, "SELECT 1/0;\r");
    until(&mut up, "division by zero").await;
    // Not executed for real: the role does not exist; the literal must not be logged.
    send(
        &up,
        "ALTER ROLE no_such_role_x PASSWORD 'hunter2-secret';\r",
    );
    until(&mut up, "does not exist").await;
    // The export buffer is capped (1 KiB here): a note says so.
    send(
        &up,
        "SELECT repeat('x', 100) FROM generate_series(1, 50);\r",
    );
    until(&mut up, "--More--").await;
    send(&up, "q");
    until(&mut up, "output stopped").await;
    send(&up, "\\export\r");
    let out = until(&mut up, "Exported").await;
    assert!(out.contains("cut at 1024 bytes"), "{out}");
    assert!(files.0.lock().unwrap().len() <= 1024 + 128);
    send(&up, "\\q\r");
    loop {
        match up.events.recv().await {
            Some(UpstreamEvent::Closed(reason)) => {
                assert_eq!(reason, None, "\\q is a clean end");
                break;
            }
            Some(_) => {}
            None => panic!("closed without a reason"),
        }
    }
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    let audit: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("guacr::audit"))
        .collect();
    let ok = audit
        .iter()
        .find(|l| l.contains("generate_series(1, 3)"))
        .unwrap_or_else(|| panic!("statement audited: {text}"));
    for field in [
        "user=auditor",
        "rows=3",
        "outcome=\"ok\"",
        "duration_ms=",
        "connection=$test",
    ] {
        assert!(ok.contains(field), "{field} in {ok}");
    }
    assert!(
        audit
            .iter()
            .any(|l| l.contains("1/0") && l.contains("outcome=\"error\"")),
        "{text}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("ALTER ROLE") && l.contains("'***'")),
        "{text}"
    );
    assert!(
        !text.contains("hunter2-secret"),
        "secrets never reach the log: {text}"
    );
    assert!(audit.iter().any(|l| l.contains("db_export")), "{text}");
}

mod props {
    use guacr_db::complete::{SchemaCache, complete};
    use guacr_db::editor::LineEditor;
    use guacr_db::sql::{Dialect, split_statements};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn splitter_never_panics_and_keeps_text(s in "\\PC{0,200}") {
            for d in [Dialect::Postgres, Dialect::MySql, Dialect::SqlServer] {
                let (stmts, rest) = split_statements(&s, d);
                let total: usize = stmts.iter().map(|x| x.len()).sum::<usize>() + rest.len();
                prop_assert!(total <= s.len());
            }
        }

        #[test]
        fn editor_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), cols in 1u16..200) {
            let mut ed = LineEditor::new(cols);
            let mut out = Vec::new();
            ed.start("db=> ", &mut out);
            for b in bytes {
                if ed.feed(b, &mut out).is_some() {
                    ed.start("db=> ", &mut out);
                }
            }
        }

        #[test]
        fn completion_never_panics(s in "\\PC{0,80}") {
            let mut cache = SchemaCache::default();
            cache.add("public", "t", "c");
            cache.add("é", "ü.x", "");
            let c = complete(&s, &cache);
            prop_assert!(c.word_len <= s.chars().count());
        }
    }
}
