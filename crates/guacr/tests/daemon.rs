//! Daemon behaviour independent of a protocol: handshake errors, liveness,
//! isolation of failures, graceful shutdown, TLS, and the guacd-style CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

async fn raw_exchange(d: &TestDaemon, send: &[u8]) -> String {
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(send).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn args_lists_version_first_and_guacd_parameter_names() {
    let d = TestDaemon::start().await;
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(b"6.select,3.ssh;").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(T, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("4.args,13.VERSION_1_5_0,8.hostname,8.host-key,4.port,"),
        "{text}"
    );
    let (all, _) = guacr_protocol::parse_all(&buf[..n]).unwrap();
    assert_eq!(all[0].args.len(), 1 + guacr_ssh::SSH_ARGS.len());
}

#[tokio::test]
async fn unknown_protocol_gets_an_error() {
    let d = TestDaemon::start().await;
    let out = raw_exchange(&d, b"6.select,5.bogus;").await;
    assert!(out.starts_with("5.error,"), "{out}");
    assert!(out.contains("3.768;"), "{out}");
    assert!(out.ends_with("10.disconnect;"), "{out}");
}

#[tokio::test]
async fn instruction_before_select_is_768() {
    let d = TestDaemon::start().await;
    let out = raw_exchange(&d, b"4.size,4.1024,3.768;").await;
    assert!(
        out.contains("3.768;") && out.starts_with("5.error"),
        "{out}"
    );
}

#[tokio::test]
async fn malformed_input_gets_an_error_and_others_are_unaffected() {
    let d = TestDaemon::start().await;
    // A healthy session first.
    let (mut good, _) = ssh_session(&d, &[]).await.unwrap();
    wait_text(&mut good, "guacr$", Duration::from_secs(20))
        .await
        .unwrap();
    for bad in [
        &b"6.select,3.ssh"[..],
        b"x.select;",
        b"6.select,3.ssh:",
        b"99999.a;",
    ] {
        let out = raw_exchange(&d, &[bad, b";;;;"].concat()).await;
        assert!(out.contains("3.768;"), "{bad:?} -> {out}");
    }
    let out = raw_exchange(&d, b"6.select,3.ssh;4.size,3.abc,3.600;").await;
    assert!(out.contains("3.768;"), "{out}");
    // Malformed input after the handshake ends only that user.
    let (mut victim, _) = ssh_session(&d, &[]).await.unwrap();
    victim.send_raw(b"3.key,x.1;").await.unwrap();
    victim.wait_for_close(T).await.unwrap();
    assert_eq!(victim.state().last_error().map(|e| e.status), Some(768));
    good.type_text("echo still-alive").await.unwrap();
    good.press_key(guacr_testkit::keysym::RETURN).await.unwrap();
    wait_text(&mut good, "still-alive", Duration::from_secs(20))
        .await
        .unwrap();
}

#[tokio::test]
async fn silent_client_times_out_with_776() {
    let d = TestDaemon::start_with(|c| c.session.client_timeout = 1, None).await;
    let (mut c, _) = ssh_session(&d, &[]).await.unwrap();
    c.set_echo_sync(false);
    // The client sends nothing at all from now on.
    c.wait_for_close(T).await.expect("closed by the server");
    let e = c.state().last_error().expect("error");
    assert_eq!(e.status, 776);
    assert!(c.state().disconnected);
}

#[tokio::test]
async fn handshake_timeout_is_776() {
    let d = TestDaemon::start_with(|c| c.session.client_timeout = 1, None).await;
    let out = raw_exchange(&d, b"").await;
    assert!(out.contains("3.776;"), "{out}");
}

#[tokio::test]
async fn nop_keepalive_when_nothing_is_sent() {
    let d = silent_daemon(|c| c.session.keepalive_interval = 1).await;
    let mut c = d.client().await;
    c.handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap();
    c.wait_until(Duration::from_secs(5), |s| s.count("nop") >= 2)
        .await
        .expect("nop every second");
}

#[tokio::test]
async fn handler_panic_ends_only_that_session() {
    let d = silent_daemon(|_| {}).await;
    let mut calm = d.client().await;
    calm.handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap();
    let mut bad = d.client().await;
    bad.handshake("silent", &client_info(640, 480), &[("mode", "panic")])
        .await
        .unwrap();
    bad.wait_for_close(T).await.unwrap();
    assert_eq!(bad.state().last_error().map(|e| e.status), Some(512));
    let mut failing = d.client().await;
    failing
        .handshake("silent", &client_info(640, 480), &[("mode", "fail")])
        .await
        .unwrap();
    failing.wait_for_close(T).await.unwrap();
    let e = failing.state().last_error().unwrap();
    assert_eq!((e.status, e.message.as_str()), (520, "upstream is down"));
    // The calm session and the daemon are fine.
    assert!(!calm.state().closed);
    let mut again = d.client().await;
    again
        .handshake("silent", &client_info(640, 480), &[])
        .await
        .expect("daemon still serving");
    assert_eq!(d.state.registry.len(), 2);
}

#[tokio::test]
async fn graceful_shutdown_tells_users_and_drains() {
    let d = silent_daemon(|c| c.session.shutdown_timeout = 1).await;
    let addr = d.addr;
    let mut c = d.client().await;
    c.handshake("silent", &client_info(640, 480), &[])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    d.shutdown().await;
    c.wait_for_close(T).await.unwrap();
    let e = c.state().last_error().expect("told why");
    assert_eq!(e.status, 513);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for the drain deadline"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn tls_with_certificate_and_key() {
    let dir = std::env::temp_dir().join(format!("guacr-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = make_cert(&dir, "cert");
    let (c2, k2) = (cert.clone(), key.clone());
    let d = silent_daemon(move |c| {
        c.ssl.server_certificate = Some(c2);
        c.ssl.server_key = Some(k2);
    })
    .await;
    // Plain text gets nowhere.
    let out = raw_exchange(&d, b"6.select,6.silent;").await;
    assert!(!out.contains("args"), "{out}");
    // A TLS client completes the handshake.
    let tls = tls_connect(d.addr, &cert).await.expect("TLS handshake");
    let mut c = guacr_testkit::GuacClient::new(tls);
    let id = c
        .handshake("silent", &client_info(640, 480), &[])
        .await
        .expect("guac over TLS");
    assert!(id.starts_with('$'));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_version_and_bad_flags() {
    let bin = env!("CARGO_BIN_EXE_guacr");
    let out = std::process::Command::new(bin).arg("-v").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("guacr version"));
    let out = std::process::Command::new(bin)
        .args(["-f", "-L", "loud"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid log level"));
    let out = std::process::Command::new(bin)
        .args(["-f", "-C", "/nonexistent.pem"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "-C without -K is refused");
}

#[tokio::test]
async fn cli_foreground_listens_writes_pid_and_stops_on_sigterm() {
    let bin = env!("CARGO_BIN_EXE_guacr");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let pid_file = std::env::temp_dir().join(format!("guacr-test-{port}.pid"));
    let mut child = tokio::process::Command::new(bin)
        .args([
            "-f",
            "-b",
            "127.0.0.1",
            "-l",
            &port.to_string(),
            "-L",
            "debug",
            "--log-format",
            "json",
        ])
        .arg("-p")
        .arg(&pid_file)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut connected = None;
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
            connected = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut s = connected.expect("daemon listening on -b/-l");
    s.write_all(b"6.select,6.telnet;").await.unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"4.args,13.VERSION_1_5_0"));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(Some(pid as u32), child.id());
    drop(s);
    // SIGTERM: a clean exit.
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    let status = tokio::time::timeout(T, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(
        err.lines()
            .any(|l| l.starts_with('{') && l.contains("\"level\":\"DEBUG\"")),
        "JSON logs at debug: {err}"
    );
    assert!(!pid_file.exists(), "PID file removed on exit");
}

fn free_port() -> u16 {
    closed_port().parse().unwrap()
}

async fn wait_listening(port: u16) -> TcpStream {
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listening on {port}");
}

#[tokio::test]
async fn cli_config_file_and_background_mode() {
    let bin = env!("CARGO_BIN_EXE_guacr");
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("guacr-cfg-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("guacr.pid");
    let cfg = dir.join("guacr.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nbind_host = \"127.0.0.1\"\nbind_port = {port}\n[daemon]\nlog_level = \"warning\"\npid_file = \"{}\"\n",
            pid_file.display()
        ),
    )
    .unwrap();
    // Without -f the daemon goes to the background, like guacd: the command returns at once.
    let status = std::process::Command::new(bin)
        .arg("-c")
        .arg(&cfg)
        .status()
        .unwrap();
    assert!(status.success());
    let mut s = wait_listening(port).await;
    s.write_all(b"6.select,3.ssh;").await.unwrap();
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"4.args"));
    let mut pid = String::new();
    for _ in 0..50 {
        pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if !pid.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = pid.trim().to_owned();
    assert!(!pid.is_empty(), "PID file written by the background daemon");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let _ = std::process::Command::new("kill").arg(&pid).status();
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "stopped on SIGTERM"
    );
    // A flag overrides the file; a bad file is refused with a message.
    std::fs::write(&cfg, "[server]\nbind_port = \"x\"\n").unwrap();
    let out = std::process::Command::new(bin)
        .arg("-f")
        .arg("-c")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("guacr.toml"));
    let _ = std::fs::remove_dir_all(&dir);
}
