//! SSH through the daemon against the real OpenSSH server from scripts/test-peers.sh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use guacr_testkit::keysym;

const T: Duration = Duration::from_secs(20);

async fn run_command<S>(c: &mut guacr_testkit::GuacClient<S>, cmd: &str) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    c.type_text(cmd).await?;
    c.press_key(keysym::RETURN).await
}

#[tokio::test]
async fn password_login_runs_a_command_and_shows_output() {
    let d = TestDaemon::start().await;
    let (mut c, id) = ssh_session(&d, &[]).await.expect("handshake");
    assert!(id.starts_with('$'), "connection id {id}");
    wait_text(&mut c, "guacr$", T).await.expect("prompt");
    run_command(&mut c, "echo out-$((40+2))").await.unwrap();
    let screen = wait_text(&mut c, "out-42", T)
        .await
        .expect("command output");
    // The typed command line shows the unexpanded text, the output the result.
    assert!(
        screen.iter().any(|l| l.contains("echo out-$((40+2))")),
        "{screen:?}"
    );
    run_command(&mut c, "exit").await.unwrap();
    c.wait_for_close(T).await.expect("disconnect after exit");
    assert!(
        c.state().last_error().is_none(),
        "shell exit is a clean disconnect: {:?}",
        c.state().last_error()
    );
    assert!(c.state().count("disconnect") >= 1);
}

#[tokio::test]
async fn wrong_password_is_769() {
    let d = TestDaemon::start().await;
    let (mut c, _) = ssh_session(&d, &[("password", "not-the-password")])
        .await
        .expect("ready first");
    c.wait_for_close(T).await.expect("closed");
    let e = c.state().last_error().expect("an error instruction");
    assert_eq!(e.status, 769, "{e:?}");
    assert!(
        !e.message.contains("not-the-password"),
        "secrets never echoed"
    );
}

#[tokio::test]
async fn closed_port_is_519() {
    let d = TestDaemon::start().await;
    let port = refused_port();
    let (mut c, _) = ssh_session(&d, &[("port", &port)]).await.expect("ready");
    c.wait_for_close(T).await.expect("closed");
    assert_eq!(c.state().last_error().map(|e| e.status), Some(519));
}

#[tokio::test]
async fn missing_hostname_is_768() {
    let d = TestDaemon::start().await;
    let (mut c, _) = ssh_session(&d, &[("hostname", "")]).await.expect("ready");
    c.wait_for_close(T).await.expect("closed");
    let e = c.state().last_error().expect("error");
    assert_eq!(e.status, 768);
    assert!(e.message.contains("hostname"), "{}", e.message);
}

#[tokio::test]
async fn host_key_is_verified() {
    let d = TestDaemon::start().await;
    let p = Peers::get();
    // The right key (known_hosts line with [host]:port) connects.
    let (mut c, _) = ssh_session(&d, &[("host-key", p.known_hosts_line.as_str())])
        .await
        .unwrap();
    wait_text(&mut c, "guacr$", T)
        .await
        .expect("prompt with matching host key");
    // A different key is refused before authentication.
    let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnXN/Pg3E0yHQSm2/5sBRDGQKvSW44zHiDTjxaP3vIS";
    let (mut c2, _) = ssh_session(&d, &[("host-key", other)]).await.unwrap();
    c2.wait_for_close(T).await.expect("closed");
    let e = c2.state().last_error().expect("error");
    assert_eq!(e.status, 515, "{e:?}");
    assert!(e.message.contains("Host key"), "{}", e.message);
}

async fn key_login(key_path: &str, passphrase: Option<&str>) {
    let d = TestDaemon::start().await;
    let p = Peers::get();
    let key = std::fs::read_to_string(key_path).expect("key file");
    let mut extra = vec![
        ("username", p.key_user.as_str()),
        ("password", ""),
        ("private-key", key.as_str()),
    ];
    if let Some(pp) = passphrase {
        extra.push(("passphrase", pp));
    }
    let (mut c, _) = ssh_session(&d, &extra).await.unwrap();
    wait_text(&mut c, "guacr$", T).await.expect("prompt");
    run_command(&mut c, "whoami").await.unwrap();
    wait_text(&mut c, "guacr-key", T)
        .await
        .expect("whoami output");
}

#[tokio::test]
async fn ed25519_key_login() {
    key_login(&Peers::get().key_ed25519, None).await;
}

#[tokio::test]
async fn encrypted_openssh_key_login() {
    let p = Peers::get();
    key_login(&p.key_ed25519_enc, Some(&p.key_passphrase)).await;
}

#[tokio::test]
async fn encrypted_rsa_pem_key_login() {
    let p = Peers::get();
    key_login(&p.key_rsa_pem_enc, Some(&p.key_passphrase)).await;
}

#[tokio::test]
async fn wrong_passphrase_is_769() {
    let d = TestDaemon::start().await;
    let p = Peers::get();
    let key = std::fs::read_to_string(&p.key_ed25519_enc).unwrap();
    let (mut c, _) = ssh_session(
        &d,
        &[
            ("username", &p.key_user),
            ("private-key", &key),
            ("passphrase", "wrong"),
        ],
    )
    .await
    .unwrap();
    c.wait_for_close(T).await.expect("closed");
    assert_eq!(c.state().last_error().map(|e| e.status), Some(769));
}

#[tokio::test]
async fn resize_changes_the_pty_size() {
    let d = TestDaemon::start().await;
    let (mut c, _) = ssh_session(&d, &[]).await.unwrap();
    wait_text(&mut c, "guacr$", T).await.unwrap();
    let (cw, ch) = Glyphs::get().cell;
    c.send_size(cw * 50 + 3, ch * 20 + 2).await.unwrap();
    c.drain(Duration::from_millis(300)).await.unwrap();
    run_command(&mut c, "stty size").await.unwrap();
    let screen = wait_text(&mut c, "20 50", T).await.expect("new pty size");
    assert!(screen.iter().any(|l| l.trim() == "20 50"), "{screen:?}");
}

#[tokio::test]
async fn command_locale_and_timezone_parameters() {
    let d = TestDaemon::start().await;
    let (mut c, _) = ssh_session(
        &d,
        &[
            ("command", "echo tz=$TZ; sleep 2"),
            ("timezone", "Europe/Paris"),
        ],
    )
    .await
    .unwrap();
    wait_text(&mut c, "tz=Europe/Paris", T)
        .await
        .expect("command output with TZ");
    c.wait_for_close(T)
        .await
        .expect("command end closes the connection");
    assert!(c.state().last_error().is_none());
}

#[tokio::test]
async fn scrollback_with_mouse_wheel() {
    let d = TestDaemon::start().await;
    let (mut c, _) = ssh_session(&d, &[]).await.unwrap();
    wait_text(&mut c, "guacr$", T).await.unwrap();
    run_command(&mut c, "seq 1001 1200").await.unwrap();
    wait_text(&mut c, "1200", T).await.unwrap();
    let before = Glyphs::get().read(&c);
    assert!(
        !before.iter().any(|l| l.trim() == "1010"),
        "1010 scrolled off"
    );
    for _ in 0..100 {
        c.send_mouse(100, 100, 8).await.unwrap();
        c.send_mouse(100, 100, 0).await.unwrap();
    }
    let screen = wait_text(&mut c, "1010", T).await.expect("scrolled back");
    assert!(screen.iter().any(|l| l.trim() == "1010"));
    // Typing returns to the bottom.
    c.type_text("x").await.unwrap();
    wait_text(&mut c, "guacr$ x", T)
        .await
        .expect("back at the prompt");
}

#[tokio::test]
async fn selection_copies_and_clipboard_pastes() {
    let d = TestDaemon::start().await;
    let (mut c, _) = ssh_session(&d, &[]).await.unwrap();
    wait_text(&mut c, "guacr$", T).await.unwrap();
    // Paste a command through the clipboard.
    c.send_clipboard("echo pasted-$((6*7))").await.unwrap();
    c.drain(Duration::from_millis(200)).await.unwrap();
    c.press_key(keysym::RETURN).await.unwrap();
    let screen = wait_text(&mut c, "pasted-42", T)
        .await
        .expect("pasted command ran");
    // Select the output line with the mouse: it arrives as the client clipboard.
    let row = screen
        .iter()
        .position(|l| l.trim() == "pasted-42")
        .expect("output row") as u32;
    let (cw, ch) = Glyphs::get().cell;
    let y = (row * ch + ch / 2) as i32;
    c.send_mouse(1, y, 1).await.unwrap();
    c.send_mouse((cw * 9 - 2) as i32, y, 1).await.unwrap();
    c.send_mouse((cw * 9 - 2) as i32, y, 0).await.unwrap();
    c.wait_until(T, |s| {
        s.last_clipboard().is_some_and(|t| t.contains("pasted-42"))
    })
    .await
    .expect("selection reached the clipboard");
}

#[tokio::test]
async fn joining_users_full_and_read_only() {
    let d = TestDaemon::start().await;
    let (mut owner, id) = ssh_session(&d, &[]).await.unwrap();
    wait_text(&mut owner, "guacr$", T).await.unwrap();
    run_command(&mut owner, "echo before-join").await.unwrap();
    wait_text(&mut owner, "before-join", T).await.unwrap();

    // A read-only joiner sees the current screen.
    let mut ro = d.client().await;
    let rid = ro
        .handshake(&id, &client_info(800, 600), &[("read-only", "true")])
        .await
        .unwrap();
    assert_eq!(rid, id, "joiners get the connection's id");
    wait_text(&mut ro, "before-join", T)
        .await
        .expect("joiner sees existing output");
    owner
        .wait_until(T, |s| s.msgs.iter().any(|m| m.code == 1))
        .await
        .expect("owner told about the join");
    // Its keys are ignored.
    ro.type_text("echo from-readonly").await.unwrap();
    ro.press_key(keysym::RETURN).await.unwrap();

    // A full joiner can type; everyone sees it.
    let mut full = d.client().await;
    full.handshake(&id, &client_info(800, 600), &[])
        .await
        .unwrap();
    wait_text(&mut full, "before-join", T).await.unwrap();
    full.type_text("echo from-joiner-$((1+1))").await.unwrap();
    full.press_key(keysym::RETURN).await.unwrap();
    wait_text(&mut owner, "from-joiner-2", T)
        .await
        .expect("owner sees joiner's command");
    let screen = wait_text(&mut ro, "from-joiner-2", T)
        .await
        .expect("read-only sees it");
    assert_eq!(
        count_lines(&screen, "from-readonly"),
        0,
        "read-only input ignored: {screen:?}"
    );

    // Leaving is reported to the owner.
    full.disconnect().await.unwrap();
    owner
        .wait_until(T, |s| s.msgs.iter().any(|m| m.code == 2))
        .await
        .expect("owner told about the leave");
}

#[tokio::test]
async fn join_unknown_connection_is_516() {
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    let e = c
        .handshake(
            "$00000000-0000-0000-0000-000000000000",
            &client_info(800, 600),
            &[],
        )
        .await
        .expect_err("unknown id");
    assert_eq!(status_of(&e), Some(516));
}

/// A second sshd that only offers keyboard-interactive (PAM) authentication.
struct KbdOnlySshd {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl KbdOnlySshd {
    fn start() -> KbdOnlySshd {
        let peers_dir =
            std::env::var("GUACR_PEERS_DIR").unwrap_or_else(|_| "/var/tmp/guacr-peers".into());
        let base =
            std::fs::read_to_string(format!("{peers_dir}/sshd_config")).expect("peers sshd_config");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let dir = std::env::temp_dir().join(format!("guacr-kbd-sshd-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf: String = base
            .lines()
            .filter(|l| {
                let k = l.split_whitespace().next().unwrap_or("");
                !matches!(
                    k,
                    "Port" | "PasswordAuthentication" | "PidFile" | "PubkeyAuthentication"
                )
            })
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            + &format!(
                "Port {port}\nPasswordAuthentication no\nPubkeyAuthentication no\nKbdInteractiveAuthentication yes\nPidFile {}/sshd.pid\n",
                dir.display()
            );
        let conf_path = dir.join("sshd_config");
        std::fs::write(&conf_path, conf).unwrap();
        let child = std::process::Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&conf_path)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sshd");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        KbdOnlySshd { child, port, dir }
    }
}

impl Drop for KbdOnlySshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn keyboard_interactive_login() {
    let sshd = KbdOnlySshd::start();
    let d = TestDaemon::start().await;
    let port = sshd.port.to_string();
    let (mut c, _) = ssh_session(&d, &[("port", &port)]).await.unwrap();
    wait_text(&mut c, "guacr$", T)
        .await
        .expect("logged in with keyboard-interactive");
    let (mut bad, _) = ssh_session(&d, &[("port", &port), ("password", "nope")])
        .await
        .unwrap();
    bad.wait_for_close(Duration::from_secs(30)).await.unwrap();
    assert_eq!(bad.state().last_error().map(|e| e.status), Some(769));
}

#[tokio::test]
async fn color_scheme_changes_at_runtime_through_argv() {
    let d = TestDaemon::start().await;
    let (mut c, _) = ssh_session(&d, &[("color-scheme", "black-white")])
        .await
        .unwrap();
    wait_text(&mut c, "guacr$", T).await.unwrap();
    let bg = |c: &guacr_testkit::GuacClient<tokio::net::TcpStream>| c.display().pixel(0, 400, 500);
    assert_eq!(
        bg(&c)[..3],
        [255, 255, 255],
        "black-white has a white background"
    );
    c.send_argv(
        "color-scheme",
        "background:rgb:00/00/80;foreground:rgb:ff/ff/00",
    )
    .await
    .unwrap();
    c.wait_for(T, |d, _| d.pixel(0, 400, 500)[..3] == [0, 0, 0x80])
        .await
        .expect("background repainted with the new scheme");
}

#[tokio::test]
async fn missing_credentials_are_asked_in_the_terminal() {
    let d = TestDaemon::start().await;
    let p = Peers::get();
    let (mut c, _) = ssh_session(&d, &[("username", ""), ("password", "")])
        .await
        .unwrap();
    wait_text(&mut c, "Login as:", T)
        .await
        .expect("username prompt");
    c.type_text(&p.pw_user).await.unwrap();
    c.press_key(keysym::RETURN).await.unwrap();
    wait_text(&mut c, "Password:", T)
        .await
        .expect("password prompt");
    c.type_text(&p.pw_password).await.unwrap();
    c.press_key(keysym::RETURN).await.unwrap();
    let screen = wait_text(&mut c, "guacr$", T).await.expect("logged in");
    assert!(
        !screen.iter().any(|l| l.contains(&p.pw_password)),
        "the password is never echoed: {screen:?}"
    );
}

#[tokio::test]
async fn leaving_before_the_login_abandons_it() {
    // An upstream that accepts TCP but never speaks SSH: the handshake would hang.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    let d = TestDaemon::start().await;
    let (c, _) = ssh_session(&d, &[("port", &port)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(d.state.registry.len(), 1);
    drop(c);
    let started = std::time::Instant::now();
    while !d.state.registry.is_empty() && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        d.state.registry.len(),
        0,
        "setup abandoned once nobody is left"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "well before the 10 s connect timeout"
    );
    hold.abort();
}
