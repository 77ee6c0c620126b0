//! Operations: metrics and health probes, limits, configuration reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(10);

fn with_admin(c: &mut guacr::Config) {
    c.admin.bind = Some("127.0.0.1:0".into());
}

// Metrics are process-wide: this file's tests that read counters run in one test.
#[tokio::test]
async fn metrics_and_probes_follow_sessions() {
    let d = silent_daemon(with_admin).await;
    let admin = d.admin.expect("admin listener");
    assert_eq!(http_get(admin, "/health/live").await.0, 200);
    let (code, body) = http_get(admin, "/health/ready").await;
    assert_eq!((code, body.as_str()), (200, "ready\n"));
    assert_eq!(http_get(admin, "/nope").await.0, 404);

    let active = "guacr_sessions_active{protocol=\"silent\"}";
    let total = "guacr_sessions_total{protocol=\"silent\"}";
    let (_, before) = http_get(admin, "/metrics").await;
    let mut a = d.client().await;
    a.handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap();
    let mut b = d.client().await;
    b.handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap();
    let (_, during) = http_get(admin, "/metrics").await;
    assert_eq!(
        metric(&during, active) - metric(&before, active),
        2.0,
        "{during}"
    );
    assert_eq!(metric(&during, total) - metric(&before, total), 2.0);
    assert!(
        during.contains("guacr_handshake_seconds_bucket"),
        "handshake histogram"
    );
    assert!(metric(&during, "guacr_handshake_seconds_count") >= 2.0);
    a.disconnect().await.unwrap();
    b.disconnect().await.unwrap();
    let mut after = String::new();
    for _ in 0..50 {
        after = http_get(admin, "/metrics").await.1;
        if metric(&after, active) == metric(&before, active) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(&after, active),
        metric(&before, active),
        "sessions gone"
    );
    assert!(
        metric(&after, "guacr_bytes_received_total")
            > metric(&before, "guacr_bytes_received_total")
    );

    // An error is counted by status code.
    let errors = "guacr_errors_total{status=\"520\"}";
    let mut f = d.client().await;
    f.handshake("silent", &client_info(640, 480), &[("mode", "fail")])
        .await
        .unwrap();
    f.wait_for_close(T).await.unwrap();
    let (_, m) = http_get(admin, "/metrics").await;
    assert!(metric(&m, errors) >= metric(&after, errors) + 1.0, "{m}");

    // Limit rejections are counted too.
    let mut cfg = (*d.state.config()).clone();
    cfg.limits.max_sessions = 1;
    d.state.reload(cfg).unwrap();
    let mut keep = d.client().await;
    keep.handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap();
    let mut refused = d.client().await;
    let e = refused
        .handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(513));
    let (_, m2) = http_get(admin, "/metrics").await;
    assert!(metric(&m2, "guacr_limit_rejections_total{limit=\"max_sessions\"}") >= 1.0);

    // While draining, ready turns 503 and live stays 200.
    let d_state = d.state.clone();
    let shutdown = tokio::spawn(d.shutdown());
    let mut ready = 200;
    for _ in 0..50 {
        ready = http_get(admin, "/health/ready").await.0;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready, 503);
    assert!(d_state.ready().is_err());
    keep.wait_for_close(Duration::from_secs(60)).await.unwrap();
    shutdown.await.unwrap();
}

#[tokio::test]
async fn session_limits_answer_513_and_the_daemon_stays_healthy() {
    let d = silent_daemon(|c| {
        c.limits.max_sessions = 3;
        c.limits
            .max_sessions_per_protocol
            .insert("silent".into(), 2);
        with_admin(c);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = d.client().await;
        c.handshake("silent", &client_info(640, 480), &[])
            .await
            .unwrap();
        held.push(c);
    }
    let mut third = d.client().await;
    let e = third
        .handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(513), "per-protocol limit");
    // Joining an existing session is not a new session.
    let id = held[0].connection_id().unwrap().to_owned();
    let mut joiner = d.client().await;
    joiner
        .handshake(&id, &client_info(640, 480), &[])
        .await
        .expect("join allowed");
    // One leaves: room again.
    held.pop().unwrap().disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = d.client().await;
    again
        .handshake("silent", &client_info(640, 480), &[])
        .await
        .expect("room again");
    assert_eq!(http_get(d.admin.unwrap(), "/health/ready").await.0, 200);
}

#[tokio::test]
async fn per_ip_limits_answer_797() {
    let d = silent_daemon(|c| c.limits.max_connections_per_ip = 2).await;
    let mut a = d.client().await;
    a.handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap();
    let mut b = d.client().await;
    b.handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap();
    let mut c = d.client().await;
    let e = c
        .handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(797));
    drop(a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c2 = d.client().await;
    c2.handshake("silent", &client_info(640, 480), &[])
        .await
        .expect("slot released");

    let d = silent_daemon(|c| {
        c.limits.connection_rate_per_ip = 1.0;
        c.limits.connection_burst_per_ip = 3;
    })
    .await;
    let mut codes = Vec::new();
    for _ in 0..5 {
        let mut c = d.client().await;
        codes.push(
            c.handshake("silent", &client_info(640, 480), &[])
                .await
                .err()
                .and_then(|e| status_of(&e)),
        );
    }
    assert_eq!(codes[..3], [None, None, None], "burst allowed: {codes:?}");
    assert_eq!(codes[3], Some(797), "rate exceeded: {codes:?}");
}

#[tokio::test]
async fn handshake_timeout_and_clipboard_limit() {
    let d = silent_daemon(|c| {
        c.limits.handshake_timeout = 1;
        c.limits.clipboard_max_bytes = 1000;
    })
    .await;
    // A client that trickles handshake instructions forever is cut at the deadline.
    let mut c = d.client().await;
    c.send_raw(b"6.select,6.silent;").await.unwrap();
    let started = std::time::Instant::now();
    let mut closed = false;
    for _ in 0..30 {
        if c.send_raw(b"8.timezone,3.UTC;").await.is_err() {
            closed = true;
            break;
        }
        if c.next_instruction(Duration::from_millis(200))
            .await
            .unwrap()
            .is_none()
            && c.state().closed
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "closed by the handshake deadline");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(c.state().last_error().map(|e| e.status), Some(776));

    let mut c = d.client().await;
    c.handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap();
    c.send_clipboard(&"x".repeat(2000)).await.unwrap();
    c.wait_until(T, |s| s.acks.iter().any(|a| a.status == 781))
        .await
        .expect("oversized clipboard refused with 781");
    assert!(!c.state().closed, "the session goes on");
}

#[tokio::test]
async fn reload_changes_limits_without_dropping_sessions() {
    let d = silent_daemon(|_| {}).await;
    let mut live = d.client().await;
    live.handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap();
    let levels = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = levels.clone();
    d.state.set_log_reloader(Box::new(move |l| {
        seen.lock().unwrap().push(l.to_owned());
        Ok(())
    }));
    let mut cfg = (*d.state.config()).clone();
    cfg.limits.max_sessions = 1;
    cfg.daemon.log_level = "debug".into();
    d.state.reload(cfg.clone()).unwrap();
    assert_eq!(*levels.lock().unwrap(), ["debug"]);
    let mut refused = d.client().await;
    let e = refused
        .handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap_err();
    assert_eq!(status_of(&e), Some(513));
    // A bad configuration is refused whole; the old one stays.
    let mut bad = cfg.clone();
    bad.daemon.log_level = "loud".into();
    bad.limits.max_sessions = 0;
    assert!(d.state.reload(bad).is_err());
    assert_eq!(d.state.config().limits.max_sessions, 1);
    // The live session never noticed.
    live.drain(Duration::from_millis(200)).await.unwrap();
    assert!(!live.state().closed && live.state().last_error().is_none());
}

#[tokio::test]
async fn sighup_reload_of_the_binary_keeps_sessions() {
    let bin = env!("CARGO_BIN_EXE_guacr");
    let port: u16 = closed_port().parse().unwrap();
    let dir = std::env::temp_dir().join(format!("guacr-reload-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("guacr.toml");
    let log = dir.join("stderr.log");
    let write_cfg = |level: &str, max: usize| {
        std::fs::write(
            &cfg,
            format!("[server]\nbind_port = {port}\n[daemon]\nlog_level = \"{level}\"\n[limits]\nmax_sessions = {max}\n"),
        )
        .unwrap();
    };
    write_cfg("warning", 0);
    let mut child = tokio::process::Command::new(bin)
        .arg("-f")
        .arg("-c")
        .arg(&cfg)
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut d_addr = None;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            d_addr = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addr = d_addr.expect("listening");
    let p = Peers::get();
    let ssh_port = p.ssh_port_str();
    let params = [
        ("hostname", p.host.as_str()),
        ("port", ssh_port.as_str()),
        ("username", p.pw_user.as_str()),
        ("password", p.pw_password.as_str()),
    ];
    let mut live = guacr_testkit::GuacClient::connect_tcp(addr).await.unwrap();
    live.handshake("ssh", &client_info(800, 600), &params)
        .await
        .unwrap();
    wait_text(&mut live, "guacr$", Duration::from_secs(20))
        .await
        .unwrap();
    assert!(!std::fs::read_to_string(&log).unwrap().contains("DEBUG"));

    write_cfg("debug", 1);
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut refused = None;
    for _ in 0..40 {
        let mut c = guacr_testkit::GuacClient::connect_tcp(addr).await.unwrap();
        match c.handshake("ssh", &client_info(800, 600), &params).await {
            Err(e) => {
                refused = status_of(&e);
                break;
            }
            Ok(_) => {
                c.disconnect().await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(refused, Some(513), "the new limit applies");
    // Something only logged at debug level: an unknown instruction.
    live.send_raw(b"7.unknown;").await.unwrap();
    live.drain(Duration::from_millis(300)).await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("configuration reloaded"), "{text}");
    assert!(text.contains("DEBUG"), "debug logging after reload: {text}");
    // The session from before the reload still works.
    live.type_text("echo after-reload").await.unwrap();
    live.press_key(guacr_testkit::keysym::RETURN).await.unwrap();
    wait_text(&mut live, "after-reload", Duration::from_secs(20))
        .await
        .unwrap();

    // A broken file is refused and the daemon keeps running.
    std::fs::write(&cfg, "[limits]\nmax_sessions = \"many\"\n").unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("reload refused")
    );
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = std::process::Command::new("kill").arg(&pid).status();
    let _ = tokio::time::timeout(Duration::from_secs(40), child.wait()).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the guacr binary with `args` and a path argument.
fn guacr_cmd(args: &[&str], path: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_guacr"))
        .args(args)
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn config_check_and_from_guacd() {
    let dir = std::env::temp_dir().join(format!("guacr-cfgcheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[server]\nbind_port = 4999\n[limits]\nmax_sessions = 10\n",
    )
    .unwrap();
    let out = guacr_cmd(&["config", "check"], &good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("bind_port = 4999"));
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[ssl]\nserver_certificate = \"/nonexistent\"\nserver_key = \"/nonexistent\"\n",
    )
    .unwrap();
    let out = guacr_cmd(&["config", "check"], &bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read certificate"));
    let conf = dir.join("guacd.conf");
    std::fs::write(
        &conf,
        "[server]\nbind_host = 0.0.0.0\nbind_port = 4822\n[daemon]\nlog_level = debug\n",
    )
    .unwrap();
    let out = guacr_cmd(&["config", "from-guacd"], &conf);
    assert!(out.status.success());
    let toml = String::from_utf8_lossy(&out.stdout);
    assert!(
        toml.contains("bind_host = \"0.0.0.0\"") && toml.contains("log_level = \"debug\""),
        "{toml}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn json_logs_carry_connection_user_protocol_and_peer() {
    let bin = env!("CARGO_BIN_EXE_guacr");
    let port = closed_port();
    let log = std::env::temp_dir().join(format!("guacr-json-{port}.log"));
    let mut child = tokio::process::Command::new(bin)
        .args(["-f", "-l", &port, "-L", "debug", "--log-format", "json"])
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut c = connect_when_listening(&port).await;
    let p = Peers::get();
    let ssh_port = p.ssh_port_str();
    let id = c
        .handshake(
            "ssh",
            &client_info(800, 600),
            &[
                ("hostname", &p.host),
                ("port", &ssh_port),
                ("username", &p.pw_user),
                ("password", "wrong"),
            ],
        )
        .await
        .unwrap();
    c.wait_for_close(Duration::from_secs(20)).await.unwrap();
    let _ = child.start_kill();
    let _ = child.wait().await;
    let text = std::fs::read_to_string(&log).unwrap();
    let session_lines: Vec<&str> = text.lines().filter(|l| l.contains(&id)).collect();
    assert!(session_lines.len() >= 2, "{text}");
    // Lines logged by the SSH handler and the session carry the connection and protocol.
    for target in ["guacr_ssh", "guacr_session::session"] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("\"target\":\"{target}\"")))
            .unwrap_or_else(|| panic!("no {target} line: {text}"));
        assert!(
            line.contains(&id) && line.contains("\"protocol\":\"ssh\""),
            "{line}"
        );
    }
    // Lines logged by the connection carry peer, user and protocol.
    let conn_line = text
        .lines()
        .find(|l| l.contains("\"target\":\"guacr::connection\"") && l.contains(&id))
        .unwrap();
    for field in [
        "\"peer\":\"127.0.0.1:",
        "\"user\":\"@",
        "\"protocol\":\"ssh\"",
    ] {
        assert!(conn_line.contains(field), "{field} missing: {conn_line}");
    }
    assert!(
        !text.contains("\"wrong\""),
        "the password never reaches the log"
    );
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn otlp_traces_are_exported_when_configured() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A stand-in OTLP/HTTP collector: records what is POSTed to /v1/traces.
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/v1/traces", collector.local_addr().unwrap());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = collector.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 65536];
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_lowercase();
                    if let Some(h) = text.find("\r\n\r\n") {
                        let len = text[..h]
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if req.len() >= h + 4 + len {
                            break;
                        }
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = tx.send(req);
            });
        }
    });
    let port = closed_port();
    let dir = std::env::temp_dir().join(format!("guacr-otlp-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("guacr.toml");
    std::fs::write(
        &cfg,
        format!("[server]\nbind_port = {port}\n[tracing]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"guacr-test\"\n"),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_guacr"))
        .arg("-f")
        .arg("-c")
        .arg(&cfg)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut c = connect_when_listening(&port).await;
    let p = Peers::get();
    let ssh_port = p.ssh_port_str();
    c.handshake(
        "ssh",
        &client_info(800, 600),
        &[
            ("hostname", &p.host),
            ("port", &ssh_port),
            ("username", &p.pw_user),
            ("password", "wrong"),
        ],
    )
    .await
    .unwrap();
    c.wait_for_close(Duration::from_secs(20)).await.unwrap();
    // SIGTERM: the exporter flushes on exit.
    let pid = child.id().unwrap().to_string();
    let _ = std::process::Command::new("kill").arg(&pid).status();
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    let mut all = Vec::new();
    while let Ok(Some(req)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        all.extend_from_slice(&req);
    }
    let text = String::from_utf8_lossy(&all);
    assert!(
        text.starts_with("POST /v1/traces"),
        "{}",
        &text[..text.len().min(300)]
    );
    for needle in ["guacr-test", "conn", "session", "peer", "connection"] {
        assert!(
            text.contains(needle),
            "{needle} missing from the exported spans"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn tls_handshake_ok(addr: std::net::SocketAddr, trusted: &std::path::Path) -> bool {
    tls_connect(addr, trusted).await.is_ok()
}

#[tokio::test]
async fn reload_swaps_the_tls_certificate_and_handler_defaults() {
    let dir = std::env::temp_dir().join(format!("guacr-tlsreload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_a, key_a) = make_cert(&dir, "a");
    let (cert_b, key_b) = make_cert(&dir, "b");
    let (ca, ka) = (cert_a.clone(), key_a.clone());
    let d = TestDaemon::start_with(
        move |c| {
            c.ssl.server_certificate = Some(ca);
            c.ssl.server_key = Some(ka);
        },
        None,
    )
    .await;
    assert!(tls_handshake_ok(d.addr, &cert_a).await);
    assert!(!tls_handshake_ok(d.addr, &cert_b).await);
    let ssh_before = d.state.protocol("ssh").unwrap();
    let mut cfg = (*d.state.config()).clone();
    cfg.ssl.server_certificate = Some(cert_b.clone());
    cfg.ssl.server_key = Some(key_b);
    cfg.session.frame_interval_ms = 20;
    d.state.reload(cfg).unwrap();
    assert!(
        tls_handshake_ok(d.addr, &cert_b).await,
        "new certificate served"
    );
    assert!(
        !tls_handshake_ok(d.addr, &cert_a).await,
        "old certificate gone"
    );
    let ssh_after = d.state.protocol("ssh").unwrap();
    assert!(
        !std::sync::Arc::ptr_eq(&ssh_before, &ssh_after),
        "handlers rebuilt with the new defaults"
    );
    // A certificate that does not load is refused and the served one stays.
    let mut bad = (*d.state.config()).clone();
    bad.ssl.server_certificate = Some(dir.join("missing.pem"));
    assert!(d.state.reload(bad).is_err());
    assert!(tls_handshake_ok(d.addr, &cert_b).await);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn packaged_example_config_parses() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/guacr.toml.example"
    );
    guacr::Config::load(std::path::Path::new(path)).expect("packaging/guacr.toml.example");
}

#[test]
fn recording_upload_section_is_validated_and_its_secret_never_printed() {
    let ok = guacr::Config::parse(
        "[recording.upload]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"\n\
         access_key_id = \"AKID\"\nsecret_access_key = \"TOPSECRET\"\n",
    )
    .expect("valid upload section");
    let u = ok.recording.upload.as_ref().expect("section");
    assert_eq!((u.region.as_str(), u.delete_local), ("us-east-1", true));
    let printed = toml::to_string(&ok).expect("serializable");
    assert!(!printed.contains("TOPSECRET"), "{printed}");
    assert!(!format!("{ok:?}").contains("TOPSECRET"));
    let bad = guacr::Config::parse(
        "[recording.upload]\nendpoint = \"ftp://x\"\nbucket = \"b\"\n\
         access_key_id = \"a\"\nsecret_access_key = \"s\"\n",
    );
    assert!(bad.is_err(), "an ftp:// endpoint is refused");
}
