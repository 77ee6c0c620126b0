//! Benchmark of the database console on a large result (figures for BENCHMARKS.md).
//!
//! Against the PostgreSQL test peer (scripts/peers.d/postgres.sh), runs
//! `SELECT g, md5(g::text) FROM generate_series(1, N) g` (N = 100,000 by
//! default) through the console exactly as a user would (keys in, VT text
//! out) and measures:
//!
//! * the server's time to the first row (a direct request, no console);
//! * time from Enter to the first page (`--More--`) on screen;
//! * paging through the whole result (Space per page) and the process's peak
//!   resident memory (VmHWM) before and after, showing the result is never
//!   held whole.
//!
//! Run: `cargo run --release -p guacr-db --example db_bench [-- ROWS]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use guacr_console::{UpstreamCommand, UpstreamEvent};
use guacr_db::backend::{ConnectSettings, Fetch, Kind, Request, connect};
use guacr_db::console::{Console, ConsoleConfig, FileSink};
use guacr_db::tls::TlsMode;

struct NoFiles;
impl FileSink for NoFiles {
    fn open(&self, _: &str, _: &str) -> i32 {
        0
    }
    fn blob(&self, _: i32, _: &[u8]) {}
    fn end(&self, _: i32) {}
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn var(name: &str) -> String {
    std::env::var(name)
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/var/tmp/guacr-peers/env")
                .ok()
                .and_then(|f| {
                    f.lines().find_map(|l| {
                        let l = l.strip_prefix("export ")?;
                        let (k, v) = l.split_once('=')?;
                        (k == name).then(|| v.to_owned())
                    })
                })
        })
        .unwrap_or_else(|| panic!("{name} not set: run scripts/test-peers.sh start"))
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let settings = ConnectSettings {
        kind: Kind::Postgres,
        host: var("GUACR_TEST_PG_HOST"),
        port: var("GUACR_TEST_PG_PORT").parse().unwrap(),
        username: var("GUACR_TEST_PG_USER"),
        password: var("GUACR_TEST_PG_PASSWORD"),
        database: None,
        tls: TlsMode::Disable,
        ca_certificate: None,
        read_only: false,
        connect_timeout: Duration::from_secs(10),
    };
    let sql = format!("SELECT g, md5(g::text) FROM generate_series(1, {n}) g");

    // 1. The server's own time to the first row (best of 3, warm).
    let conn = connect(&settings).await.expect("connect");
    let mut first_row = Duration::MAX;
    for _ in 0..3 {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let t0 = Instant::now();
        conn.requests
            .send(Request {
                sql: sql.clone(),
                reply: tx,
            })
            .await
            .unwrap();
        let mut first = None;
        while let Some(item) = rx.recv().await {
            if let Ok(Fetch::Row(_)) = item
                && first.is_none()
            {
                first = Some(t0.elapsed());
            }
        }
        first_row = first_row.min(first.expect("rows"));
    }
    drop(conn);

    // 2. Through the console.
    let conn = connect(&settings).await.expect("connect");
    let (mut up, io) = guacr_console::upstream_channels();
    let cfg = ConsoleConfig {
        kind: Kind::Postgres,
        connection_id: "bench".into(),
        user: "bench".into(),
        db_user: settings.username.clone(),
        read_only: false,
        max_rows: 0,
        query_timeout: None,
        allow_export: true,
        cols: 100,
        rows: 40,
        export_limit: guacr_db::EXPORT_LIMIT,
        reconnect: None,
    };
    tokio::spawn(Console::new(cfg, conn, io, Arc::new(NoFiles)).run());
    let mut screen = Vec::new();
    // Wait for the prompt.
    while !String::from_utf8_lossy(&screen).contains("=> ") {
        match up.events.recv().await {
            Some(UpstreamEvent::Data(d)) => screen.extend_from_slice(&d),
            other => panic!("console ended: {other:?}"),
        }
    }
    screen.clear();
    let rss_before = peak_rss_kib();
    let send = |b: &[u8]| {
        up.commands
            .send(UpstreamCommand::Write(Bytes::copy_from_slice(b)))
            .unwrap()
    };
    send(format!("{sql};").as_bytes());
    let t0 = Instant::now();
    send(b"\r");
    let mut first_page = None;
    let mut pages = 0u64;
    let mut bytes = 0usize;
    let mut tail = String::new();
    loop {
        let Some(UpstreamEvent::Data(d)) = up.events.recv().await else {
            panic!("console ended");
        };
        bytes += d.len();
        tail.push_str(&String::from_utf8_lossy(&d));
        if tail.contains("--More--") {
            if first_page.is_none() {
                first_page = Some(t0.elapsed());
            }
            pages += 1;
            tail.clear();
            send(b" ");
        } else if tail.contains(&format!("({n} rows)")) {
            break;
        } else if tail.len() > 4096 {
            tail.drain(..tail.len() - 64);
        }
    }
    let total = t0.elapsed();
    let first_page = first_page.unwrap_or(total);
    let rss_after = peak_rss_kib();
    println!("rows                          {n}");
    println!(
        "server: first row             {:.1} ms",
        first_row.as_secs_f64() * 1e3
    );
    println!(
        "console: Enter → first page   {:.1} ms",
        first_page.as_secs_f64() * 1e3
    );
    println!(
        "first page after first row   {:.1} ms",
        (first_page.saturating_sub(first_row)).as_secs_f64() * 1e3
    );
    println!(
        "all {pages} pages                {:.2} s ({:.1} MB of VT output)",
        total.as_secs_f64(),
        bytes as f64 / 1e6
    );
    println!(
        "peak RSS before / after       {} / {} KiB (+{} KiB)",
        rss_before,
        rss_after,
        rss_after.saturating_sub(rss_before)
    );
}
