//! Database consoles through the daemon against the real PostgreSQL 15 and
//! MariaDB servers of scripts/test-peers.sh (plug-ins postgres.sh, mariadb.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use guacr_testkit::{GuacClient, keysym};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(30);

fn var(name: &str) -> String {
    guacr_testkit::peers::var(name).unwrap_or_else(|| {
        panic!("{name} is not set: start the test peers with `scripts/test-peers.sh install && scripts/test-peers.sh start`")
    })
}

const PG_USER: &str = "guacr_db_test";
const PG_PASS: &str = "guacr-db-test-pass";
const PG_DB: &str = "guacr_db_test";

/// Creates the PostgreSQL test role and database (idempotent) with the
/// superuser URL of the postgres peer.
fn pg_setup() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let url = var("GUACR_TEST_PG_URL");
        let script = format!(
            "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_USER}') THEN \
             CREATE ROLE {PG_USER} LOGIN PASSWORD '{PG_PASS}'; END IF; END$$;\n\
             SELECT 'CREATE DATABASE {PG_DB} OWNER {PG_USER}' \
             WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{PG_DB}')\\gexec\n"
        );
        let out = std::process::Command::new("psql")
            .arg(&url)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=0"])
            .arg("-c")
            .arg(script.lines().next().unwrap())
            .output()
            .expect("psql (postgresql-client) must be installed");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = std::process::Command::new("psql")
            .arg(&url)
            .args(["-X", "-q"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(script.lines().nth(1).unwrap().as_bytes())?;
                child.wait_with_output()
            })
            .expect("psql");
        // A concurrent test process may have created it first.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && (err.is_empty() || err.contains("already exists")),
            "{err}"
        );
    });
}

async fn open(d: &TestDaemon, protocol: &str, params: &[(&str, &str)]) -> GuacClient<TcpStream> {
    let mut c = d.client().await;
    c.handshake(protocol, &client_info(1024, 640), params)
        .await
        .expect("handshake");
    c
}

async fn pg(d: &TestDaemon, extra: &[(&str, &str)]) -> GuacClient<TcpStream> {
    pg_setup();
    let host = var("GUACR_TEST_PG_HOST");
    let port = var("GUACR_TEST_PG_PORT");
    let mut params: Vec<(&str, &str)> = vec![
        ("hostname", host.as_str()),
        ("port", port.as_str()),
        ("username", PG_USER),
        ("password", PG_PASS),
        ("database", PG_DB),
    ];
    for (k, v) in extra {
        params.retain(|(n, _)| n != k);
        params.push((k, v));
    }
    open(d, "postgresql", &params).await
}

async fn my(d: &TestDaemon, extra: &[(&str, &str)]) -> GuacClient<TcpStream> {
    let host = var("GUACR_TEST_MYSQL_HOST");
    let port = var("GUACR_TEST_MYSQL_PORT");
    let user = var("GUACR_TEST_MYSQL_USER");
    let pass = var("GUACR_TEST_MYSQL_PASSWORD");
    let db = var("GUACR_TEST_MYSQL_DATABASE");
    let mut params: Vec<(&str, &str)> = vec![
        ("hostname", host.as_str()),
        ("port", port.as_str()),
        ("username", user.as_str()),
        ("password", pass.as_str()),
        ("database", db.as_str()),
    ];
    for (k, v) in extra {
        params.retain(|(n, _)| n != k);
        params.push((k, v));
    }
    open(d, "mysql", &params).await
}

async fn run(c: &mut GuacClient<TcpStream>, line: &str) {
    c.type_text(line).await.unwrap();
    c.press_key(keysym::RETURN).await.unwrap();
}

async fn ctrl(c: &mut GuacClient<TcpStream>, key: char) {
    c.send_key_combo(&[keysym::CONTROL_L, key as u32])
        .await
        .unwrap();
}

/// Waits until the server runs a statement starting with `prefix` (so a
/// cancel cannot arrive before it), asking with the server's own client.
async fn wait_running(mysql: bool, prefix: &str) {
    for _ in 0..200 {
        let out = if mysql {
            std::process::Command::new("mariadb")
                .args(["--no-defaults", "-N", "-B", "-h"])
                .arg(var("GUACR_TEST_MYSQL_HOST"))
                .arg("-P")
                .arg(var("GUACR_TEST_MYSQL_PORT"))
                .arg("-u")
                .arg(var("GUACR_TEST_MYSQL_USER"))
                .arg(format!("-p{}", var("GUACR_TEST_MYSQL_PASSWORD")))
                .arg("-e")
                .arg(format!(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '{prefix}%'"
                ))
                .output()
        } else {
            std::process::Command::new("psql")
                .arg(var("GUACR_TEST_PG_URL"))
                .args(["-X", "-A", "-t", "-c"])
                .arg(format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '{prefix}%' AND state = 'active'"
                ))
                .output()
        }
        .expect("the database client (psql / mariadb) must be installed");
        let running: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        if running >= 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{prefix} never ran on the server");
}

/// A table name unique to this test run.
fn table(tag: &str) -> String {
    format!("{tag}_{}", std::process::id())
}

async fn assert_status(mut c: GuacClient<TcpStream>, status: u32) -> String {
    c.wait_for_close(T).await.expect("closed");
    let e = c
        .state()
        .last_error()
        .expect("an error instruction")
        .clone();
    assert_eq!(e.status, status, "{e:?}");
    e.message
}

/// Create, insert, query (NULL drawn), completion of the table and its
/// columns, the pager, CSV export of the last result, meta commands.
async fn console_round_trip(mut c: GuacClient<TcpStream>, prompt: &str, t: &str) {
    wait_text(&mut c, prompt, T).await.expect("prompt");
    run(&mut c, &format!("DROP TABLE IF EXISTS {t};")).await;
    run(
        &mut c,
        &format!("CREATE TABLE {t} (id int primary key, name varchar(40), note varchar(40));"),
    )
    .await;
    // A multi-line statement: nothing runs before the `;`.
    run(&mut c, &format!("INSERT INTO {t}")).await;
    run(&mut c, "VALUES (1, 'alice', NULL), (2, 'bob', 'x,y');").await;
    wait_text(&mut c, "OK, 2 rows affected", T)
        .await
        .expect("insert");
    run(&mut c, &format!("SELECT * FROM {t} ORDER BY id;")).await;
    let screen = wait_text(&mut c, "(2 rows)", T).await.expect("select");
    let alice = screen
        .iter()
        .find(|l| l.contains("alice"))
        .expect("alice row");
    assert!(alice.contains("NULL"), "NULL is drawn: {alice:?}");
    assert!(screen.iter().any(|l| l.contains("Time:")), "timing shown");

    // CSV export of the last result arrives as a file stream.
    run(&mut c, "\\export").await;
    wait_text(&mut c, "Exported 2 rows", T)
        .await
        .expect("export");
    c.wait_until(T, |s| s.streams.iter().any(|f| f.kind == "file"))
        .await
        .expect("file stream");
    let file = c
        .state()
        .streams
        .iter()
        .find(|f| f.kind == "file")
        .unwrap()
        .clone();
    assert_eq!(file.mimetype, "text/csv");
    assert!(file.name.ends_with(".csv"), "{}", file.name);
    assert_eq!(
        String::from_utf8_lossy(&file.data),
        "id,name,note\r\n1,alice,\r\n2,bob,\"x,y\"\r\n"
    );

    // Completion: the table name (unique prefix), then its columns.
    let prefix = &t[..t.len() - 3];
    c.type_text(&format!("SELECT * FROM {prefix}"))
        .await
        .unwrap();
    c.press_key(keysym::TAB).await.unwrap();
    run(&mut c, " WHERE id = 2;").await;
    wait_text(&mut c, "(1 row)", T)
        .await
        .expect("completed table name ran");
    c.type_text(&format!("SELECT {t}.")).await.unwrap();
    c.press_key(keysym::TAB).await.unwrap();
    let screen = wait_text(&mut c, &format!("{t}.note"), T)
        .await
        .expect("columns listed");
    assert!(
        screen.iter().any(|l| l.contains(&format!("{t}.name"))),
        "{screen:?}"
    );
    ctrl(&mut c, 'u').await;
    c.press_key(keysym::RETURN).await.unwrap();

    // History: Up recalls the last statement (on a cleared screen).
    ctrl(&mut c, 'l').await;
    c.drain(Duration::from_millis(300)).await.unwrap();
    assert_eq!(count_lines(&Glyphs::get().read(&c), "(1 row)"), 0);
    c.press_key(keysym::UP).await.unwrap();
    c.press_key(keysym::RETURN).await.unwrap();
    wait_text(&mut c, "(1 row)", T).await.expect("history");
}

async fn pager(c: &mut GuacClient<TcpStream>, sql: &str) {
    run(c, sql).await;
    let screen = wait_text(c, "--More--", T).await.expect("pager");
    assert!(
        !screen.iter().any(|l| l.contains("rows)")),
        "paused before the end"
    );
    // Space: the next page; q: stop.
    c.type_text(" ").await.unwrap();
    c.drain(Duration::from_millis(300)).await.unwrap();
    c.type_text("q").await.unwrap();
    wait_text(c, "(output stopped after", T)
        .await
        .expect("stopped");
}

#[tokio::test]
async fn postgresql_console_create_query_complete_page_export() {
    let d = TestDaemon::start().await;
    let t = table("pgrt");
    let mut c = pg(&d, &[]).await;
    wait_text(&mut c, "guacr SQL console: PostgreSQL 15", T)
        .await
        .expect("banner");
    console_round_trip(c, "guacr_db_test=>", &t).await;

    let mut c = pg(&d, &[]).await;
    wait_text(&mut c, "guacr_db_test=>", T).await.unwrap();
    pager(
        &mut c,
        "SELECT g, md5(g::text) FROM generate_series(1, 100000) g;",
    )
    .await;
    // A whole result streamed to a file, never held: \export QUERY.
    run(
        &mut c,
        "\\export SELECT g AS n, 'v' || g AS label FROM generate_series(1, 20000) g",
    )
    .await;
    wait_text(&mut c, "Exported 20000 rows as a CSV file", T)
        .await
        .expect("streamed export");
    c.wait_until(T, |s| s.streams.iter().any(|f| f.kind == "file"))
        .await
        .expect("file stream");
    let file = c
        .state()
        .streams
        .iter()
        .find(|f| f.kind == "file")
        .unwrap()
        .clone();
    let csv = String::from_utf8_lossy(&file.data).into_owned();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 20001);
    assert_eq!(lines[0], "n,label");
    assert_eq!(lines[20000], "20000,v20000");
    // Meta commands.
    run(&mut c, "\\dt").await;
    wait_text(&mut c, &t, T)
        .await
        .expect("\\dt lists the table");
    run(&mut c, &format!("\\d {t}")).await;
    wait_text(&mut c, "character varying(40)", T)
        .await
        .expect("\\d describes");
    // Server notices are shown.
    run(&mut c, "DROP TABLE IF EXISTS no_such_table_x;").await;
    wait_text(&mut c, "does not exist, skipping", T)
        .await
        .expect("notice");
    run(&mut c, "\\dn").await;
    wait_text(&mut c, "public", T).await.expect("\\dn");
    run(&mut c, "\\x").await;
    run(&mut c, &format!("SELECT * FROM {t} WHERE id = 1;")).await;
    wait_text(&mut c, "-[ RECORD 1 ]", T)
        .await
        .expect("expanded");
    // SQL errors are shown and the session goes on.
    run(&mut c, "SELECT * FROM no_such_table;").await;
    wait_text(&mut c, "relation \"no_such_table\" does not exist", T)
        .await
        .expect("error");
    run(&mut c, &format!("DROP TABLE {t};")).await;
    run(&mut c, "\\q").await;
    c.wait_for_close(T).await.expect("\\q closes");
    assert!(
        c.state().last_error().is_none(),
        "{:?}",
        c.state().last_error()
    );
}

#[tokio::test]
async fn postgresql_read_only_is_enforced_by_the_server() {
    let d = TestDaemon::start().await;
    let t = table("pgro");
    let mut c = pg(&d, &[]).await;
    wait_text(&mut c, "=>", T).await.unwrap();
    run(&mut c, &format!("CREATE TABLE IF NOT EXISTS {t} (id int);")).await;
    wait_text(&mut c, "OK", T).await.unwrap();
    let mut ro = pg(&d, &[("read-only", "true")]).await;
    wait_text(&mut ro, "(read-only)", T)
        .await
        .expect("banner says read-only");
    run(&mut ro, &format!("INSERT INTO {t} VALUES (1);")).await;
    wait_text(
        &mut ro,
        "cannot execute INSERT in a read-only transaction",
        T,
    )
    .await
    .expect("server refuses");
    run(&mut ro, &format!("SELECT count(*) FROM {t};")).await;
    wait_text(&mut ro, "(1 row)", T).await.expect("reads work");
    // disable-copy also refuses exports.
    let mut nc = pg(&d, &[("disable-copy", "true")]).await;
    wait_text(&mut nc, "=>", T).await.unwrap();
    run(&mut nc, "SELECT 1;").await;
    run(&mut nc, "\\export").await;
    wait_text(&mut nc, "Export is disabled", T)
        .await
        .expect("no export");
    assert!(nc.state().streams.is_empty());
    run(&mut c, &format!("DROP TABLE {t};")).await;
    wait_text(&mut c, "OK", T).await.unwrap();
}

#[tokio::test]
async fn postgresql_ctrl_c_cancels_on_the_server() {
    let d = TestDaemon::start().await;
    let mut c = pg(&d, &[]).await;
    wait_text(&mut c, "=>", T).await.unwrap();
    run(&mut c, "SELECT pg_sleep(30);").await;
    wait_running(false, "SELECT pg_sleep(30)").await;
    ctrl(&mut c, 'c').await;
    wait_text(&mut c, "canceling statement due to user request", T)
        .await
        .expect("server cancelled");
    run(&mut c, "SELECT 40 + 2 AS answer;").await;
    let screen = wait_text(&mut c, "(1 row)", T).await.expect("console back");
    assert!(screen.iter().any(|l| l.contains("42")), "{screen:?}");
}

#[tokio::test]
async fn postgresql_query_timeout_and_max_rows() {
    let d = TestDaemon::start().await;
    let mut c = pg(&d, &[("query-timeout", "1"), ("max-rows", "5")]).await;
    wait_text(&mut c, "=>", T).await.unwrap();
    run(&mut c, "SELECT pg_sleep(30);").await;
    wait_text(&mut c, "canceling statement due to user request", T)
        .await
        .expect("timeout cancels");
    run(&mut c, "SELECT g FROM generate_series(1, 1000) g;").await;
    let screen = wait_text(&mut c, "max-rows 5 reached", T)
        .await
        .expect("max-rows");
    assert!(!screen.iter().any(|l| l.trim() == "6"), "{screen:?}");
}

#[tokio::test]
async fn postgresql_prompts_for_missing_password() {
    let d = TestDaemon::start().await;
    let mut c = pg(&d, &[("password", "")]).await;
    wait_text(&mut c, "Password:", T).await.expect("prompt");
    c.type_text(PG_PASS).await.unwrap();
    c.press_key(keysym::RETURN).await.unwrap();
    let screen = wait_text(&mut c, "guacr_db_test=>", T)
        .await
        .expect("logged in");
    assert!(
        !screen.iter().any(|l| l.contains(PG_PASS)),
        "password not echoed"
    );
}

#[tokio::test]
async fn postgresql_wrong_password_is_769_and_unreachable_is_519() {
    let d = TestDaemon::start().await;
    let c = pg(&d, &[("password", "wrong-password")]).await;
    let msg = assert_status(c, 769).await;
    assert!(!msg.contains("wrong-password"), "{msg}");
    let port = refused_port();
    let c = pg(&d, &[("port", &port)]).await;
    assert_status(c, 519).await;
    let c = pg(&d, &[("ssl-mode", "sometimes")]).await;
    assert_status(c, 768).await;
}

#[tokio::test]
async fn mariadb_console_create_query_complete_page_export() {
    let d = TestDaemon::start().await;
    let t = table("myrt");
    let mut c = my(&d, &[]).await;
    wait_text(&mut c, "guacr SQL console: MariaDB", T)
        .await
        .expect("banner");
    let db = var("GUACR_TEST_MYSQL_DATABASE");
    console_round_trip(c, &format!("MariaDB [{db}]>"), &t).await;

    let mut c = my(&d, &[]).await;
    wait_text(&mut c, "MariaDB [", T).await.unwrap();
    pager(&mut c, "SELECT seq, md5(seq) FROM seq_1_to_100000;").await;
    run(&mut c, "DROP TABLE IF EXISTS no_such_table_x;").await;
    wait_text(&mut c, "1 warning(s)", T)
        .await
        .expect("warnings noted");
    run(&mut c, "SHOW TABLES;").await;
    wait_text(&mut c, &t, T).await.expect("SHOW TABLES");
    run(&mut c, &format!("DESCRIBE {t};")).await;
    wait_text(&mut c, "varchar(40)", T).await.expect("DESCRIBE");
    run(&mut c, "SELECT * FROM no_such_table;").await;
    wait_text(&mut c, "ERROR 1146", T)
        .await
        .expect("error in red, session goes on");
    run(&mut c, &format!("DROP TABLE {t};")).await;
    wait_text(&mut c, "OK", T).await.unwrap();
}

#[tokio::test]
async fn mariadb_read_only_is_enforced_by_the_server() {
    let d = TestDaemon::start().await;
    let t = table("myro");
    let mut c = my(&d, &[]).await;
    wait_text(&mut c, "MariaDB [", T).await.unwrap();
    run(&mut c, &format!("CREATE TABLE IF NOT EXISTS {t} (id int);")).await;
    wait_text(&mut c, "OK", T).await.unwrap();
    let mut ro = my(&d, &[("read-only", "true")]).await;
    wait_text(&mut ro, "(read-only)", T).await.unwrap();
    run(&mut ro, &format!("INSERT INTO {t} VALUES (1);")).await;
    wait_text(&mut ro, "READ ONLY transaction", T)
        .await
        .expect("server refuses");
    run(&mut c, &format!("DROP TABLE {t};")).await;
    wait_text(&mut c, "OK", T).await.unwrap();
}

#[tokio::test]
async fn mariadb_ctrl_c_cancels_on_the_server() {
    let d = TestDaemon::start().await;
    let mut c = my(&d, &[]).await;
    wait_text(&mut c, "MariaDB [", T).await.unwrap();
    run(&mut c, "SELECT SLEEP(30) AS slept;").await;
    wait_running(true, "SELECT SLEEP(30)").await;
    ctrl(&mut c, 'c').await;
    wait_text(&mut c, "Cancel request sent", T)
        .await
        .expect("cancel sent");
    run(&mut c, "SELECT 40 + 2 AS answer;").await;
    let screen = wait_text(&mut c, "42", T).await.expect("console back");
    // KILL QUERY: MariaDB reports the interruption (error 1317) or SLEEP returns 1.
    assert!(
        screen.iter().any(|l| l.contains("interrupted")) || screen.iter().any(|l| l.trim() == "1"),
        "{screen:?}"
    );
}

#[tokio::test]
async fn mariadb_wrong_password_is_769() {
    let d = TestDaemon::start().await;
    let c = my(&d, &[("password", "wrong-password")]).await;
    let msg = assert_status(c, 769).await;
    assert!(!msg.contains("wrong-password"), "{msg}");
    let port = refused_port();
    let c = my(&d, &[("port", &port)]).await;
    assert_status(c, 519).await;
}

#[tokio::test]
async fn postgresql_session_is_in_the_typescript_without_the_password() {
    let dir = std::env::temp_dir().join(format!("guacr-db-ts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.to_str().unwrap().to_owned();
    let d = TestDaemon::start().await;
    let mut c = pg(
        &d,
        &[
            ("password", ""),
            ("typescript-path", &path),
            ("typescript-name", "db-ts"),
        ],
    )
    .await;
    wait_text(&mut c, "Password:", T).await.unwrap();
    c.type_text(PG_PASS).await.unwrap();
    c.press_key(keysym::RETURN).await.unwrap();
    wait_text(&mut c, "=>", T).await.unwrap();
    run(&mut c, "SELECT 'typescript-' || 6 * 7 AS marker;").await;
    wait_text(&mut c, "typescript-42", T).await.unwrap();
    run(&mut c, "\\q").await;
    c.wait_for_close(T).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ts = std::fs::read(dir.join("db-ts")).expect("typescript written");
    let text = String::from_utf8_lossy(&ts);
    assert!(
        text.contains("SELECT 'typescript-' || 6 * 7 AS marker;"),
        "statement recorded"
    );
    assert!(text.contains("typescript-42"), "result recorded");
    assert!(
        !text.contains(PG_PASS),
        "the password never reaches the typescript"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn postgresql_lost_connection_shows_a_message_and_closes() {
    let d = TestDaemon::start().await;
    let mut c = pg(&d, &[]).await;
    wait_text(&mut c, "=>", T).await.unwrap();
    run(&mut c, "SELECT pg_terminate_backend(pg_backend_pid());").await;
    c.wait_for_close(T).await.expect("closed");
    let e = c.state().last_error().expect("error").clone();
    assert_eq!(e.status, 515, "{e:?}");
    assert!(e.message.contains("lost"), "{}", e.message);
}

#[tokio::test]
async fn tls_required_against_a_server_without_tls_is_refused() {
    // The test peers run without TLS: `require` must fail, never fall back.
    let d = TestDaemon::start().await;
    let c = pg(&d, &[("ssl-mode", "require")]).await;
    let msg = assert_status(c, 515).await;
    assert!(
        msg.to_lowercase().contains("tls") || msg.contains("SSL"),
        "{msg}"
    );
    let c = my(&d, &[("ssl-mode", "require")]).await;
    assert_status(c, 515).await;
    // `prefer` goes on without.
    let mut c = my(&d, &[("ssl-mode", "prefer")]).await;
    wait_text(&mut c, "MariaDB [", T)
        .await
        .expect("prefer connects");
}

#[tokio::test]
async fn shared_console_viewers_see_results_but_get_no_exports() {
    let d = TestDaemon::start().await;
    pg_setup();
    let host = var("GUACR_TEST_PG_HOST");
    let port = var("GUACR_TEST_PG_PORT");
    let params = [
        ("hostname", host.as_str()),
        ("port", port.as_str()),
        ("username", PG_USER),
        ("password", PG_PASS),
        ("database", PG_DB),
    ];
    let mut owner = d.client().await;
    let id = owner
        .handshake("postgresql", &client_info(1024, 640), &params)
        .await
        .unwrap();
    wait_text(&mut owner, "=>", T).await.unwrap();
    let mut viewer = d.client().await;
    viewer
        .handshake(&id, &client_info(1024, 640), &[("read-only", "true")])
        .await
        .unwrap();
    wait_text(&mut viewer, "=>", T)
        .await
        .expect("viewer sees the console");
    // The viewer's keys are ignored.
    viewer.type_text("SELECT 'from-viewer';").await.unwrap();
    viewer.press_key(keysym::RETURN).await.unwrap();
    run(&mut owner, "SELECT 'shared-' || 7 * 6 AS shown;").await;
    wait_text(&mut viewer, "shared-42", T)
        .await
        .expect("viewer sees results");
    run(&mut owner, "\\export").await;
    wait_text(&mut owner, "Exported 1 rows", T).await.unwrap();
    owner
        .wait_until(T, |s| s.streams.iter().any(|f| f.kind == "file"))
        .await
        .expect("owner gets the file");
    viewer.drain(Duration::from_millis(500)).await.unwrap();
    assert!(
        viewer.state().streams.is_empty(),
        "read-only viewers get no exports"
    );
    let screen = Glyphs::get().read(&owner);
    assert_eq!(count_lines(&screen, "from-viewer"), 0, "{screen:?}");
}
