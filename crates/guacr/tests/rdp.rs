//! The `rdp` protocol through the real daemon, against real RDP servers started by
//! `scripts/test-peers.sh start` (plug-in scripts/peers.d/rdp.sh):
//! * xrdp 0.9 with the Xvnc backend, TLS security (127.0.0.1:3389, user guacr-rdp);
//! * xrdp 0.9 with the Xvnc backend, standard RDP security (encryption level none,
//!   127.0.0.1:3391, user guacr-rdp2);
//! * FreeRDP's shadow server on Xvfb :21, NLA only (3390, NTLM SAM file) and TLS only with
//!   PAM after logon (3392).
//!
//! Every desktop shows an xterm. The X server's own screenshot (`xwd`) is the reference
//! picture; typing is checked by the file the typed command writes; the clipboard by `xclip`
//! on the session's display.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::x11::{
    self, Fidelity, XText, scratch, screen_size, settle_and_disconnect, unique, wait_file,
    wait_x_text, x_output,
};
use common::{TestDaemon, client_info, peer_var, refused_port};
use guacr_testkit::GuacClient;
use guacr_testkit::x11::Selection;
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ peers

#[derive(Debug)]
struct Server {
    name: &'static str,
    port: String,
    user: String,
    /// guacd's `security` value for this server.
    security: &'static str,
    /// Where to find the X display: fixed (shadow) or written by the session (xrdp).
    display: DisplaySource,
    /// Serialises the tests that type into, resize or read this desktop.
    lock: &'static tokio::sync::Mutex<()>,
    /// How close the rebuilt picture must get to the X screen.
    fidelity: Fidelity,
}

#[derive(Debug)]
enum DisplaySource {
    Fixed(String),
    /// The session's window manager writes `$DISPLAY` into this file at session start.
    SessionFile(String),
}

#[derive(Debug)]
struct RdpPeers {
    host: String,
    password: String,
    xrdp_tls: Server,
    xrdp_rdp: Server,
    shadow_nla: Server,
    shadow_tls: Server,
}

fn peers() -> &'static RdpPeers {
    static P: OnceLock<RdpPeers> = OnceLock::new();
    // xrdp users have a session each; both shadow servers share one Xvfb display.
    static LOCKS: [tokio::sync::Mutex<()>; 3] = [const { tokio::sync::Mutex::const_new(()) }; 3];
    P.get_or_init(|| {
        let var = |k: &str| peer_var(k, "rdp");
        let shadow_display = var("GUACR_TEST_RDP_SHADOW_DISPLAY");
        RdpPeers {
            host: var("GUACR_TEST_RDP_HOST"),
            password: var("GUACR_TEST_RDP_PASSWORD"),
            xrdp_tls: Server {
                name: "xrdp (TLS)",
                port: var("GUACR_TEST_RDP_XRDP_TLS_PORT"),
                user: var("GUACR_TEST_RDP_XRDP_TLS_USER"),
                security: "tls",
                display: DisplaySource::SessionFile(var("GUACR_TEST_RDP_XRDP_TLS_DISPLAY_FILE")),
                lock: &LOCKS[0],
                fidelity: XRDP_FIDELITY,
            },
            xrdp_rdp: Server {
                name: "xrdp (RDP security)",
                port: var("GUACR_TEST_RDP_XRDP_RDP_PORT"),
                user: var("GUACR_TEST_RDP_XRDP_RDP_USER"),
                security: "rdp",
                display: DisplaySource::SessionFile(var("GUACR_TEST_RDP_XRDP_RDP_DISPLAY_FILE")),
                lock: &LOCKS[1],
                fidelity: XRDP_FIDELITY,
            },
            shadow_nla: Server {
                name: "FreeRDP shadow (NLA)",
                port: var("GUACR_TEST_RDP_SHADOW_PORT"),
                user: var("GUACR_TEST_RDP_SHADOW_USER"),
                security: "nla",
                display: DisplaySource::Fixed(shadow_display.clone()),
                lock: &LOCKS[2],
                fidelity: SHADOW_FIDELITY,
            },
            shadow_tls: Server {
                name: "FreeRDP shadow (TLS)",
                port: var("GUACR_TEST_RDP_SHADOW_TLS_PORT"),
                user: var("GUACR_TEST_RDP_SHADOW_USER"),
                security: "tls",
                display: DisplaySource::Fixed(shadow_display),
                lock: &LOCKS[2],
                fidelity: SHADOW_FIDELITY,
            },
        }
    })
}

fn all_servers() -> [&'static Server; 4] {
    let p = peers();
    [&p.xrdp_tls, &p.xrdp_rdp, &p.shadow_nla, &p.shadow_tls]
}

fn xrdp_servers() -> [&'static Server; 2] {
    let p = peers();
    [&p.xrdp_tls, &p.xrdp_rdp]
}

/// The guacd parameters for `server` (its user and password, `ignore-cert`), `extra`
/// overriding or adding.
fn params<'a>(server: &'a Server, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let p = peers();
    let mut params: Vec<(&str, &str)> = vec![
        ("hostname", p.host.as_str()),
        ("port", server.port.as_str()),
        ("username", server.user.as_str()),
        ("password", p.password.as_str()),
        ("security", server.security),
        ("ignore-cert", "true"),
    ];
    for (k, v) in extra {
        params.retain(|(n, _)| n != k);
        params.push((k, v));
    }
    params
}

/// Connects to `server` through the daemon at 1024x768.
async fn rdp_session(
    d: &TestDaemon,
    server: &Server,
    extra: &[(&str, &str)],
) -> anyhow::Result<GuacClient<TcpStream>> {
    let mut c = d.client().await;
    c.handshake("rdp", &client_info(1024, 768), &params(server, extra))
        .await?;
    // Like a browser, report where the pointer is: Xvnc (behind xrdp) draws its cursor
    // into the framebuffer while the client's pointer position differs from the server's
    // (and `xwd` pictures never contain the cursor).
    c.send_mouse(POINTER.0 as i32, POINTER.1 as i32, 0).await?;
    Ok(c)
}

/// The session's X display, once the server shows it (xrdp: after login, from the file
/// the session's window manager wrote; the display must answer and show the xterm).
async fn x_display(server: &Server, c: &mut GuacClient<TcpStream>) -> String {
    let deadline = Instant::now() + T;
    loop {
        let candidate = match &server.display {
            DisplaySource::Fixed(d) => Some(d.clone()),
            DisplaySource::SessionFile(f) => std::fs::read_to_string(f)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        };
        if let Some(d) = candidate
            && xterm_window(&d).is_some()
        {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no session display with an xterm; {}",
            server.name,
            c.state().summary()
        );
        let _ = c.drain(Duration::from_millis(200)).await;
    }
}

// ------------------------------------------------------------------ X side

fn xterm_window(display: &str) -> Option<String> {
    x_output(display, "xdotool", &["search", "--class", "xterm"])?
        .lines()
        .next()
        .map(str::to_owned)
}

/// FreeRDP's shadow server: the picture converges to the exact X screen too (checked with
/// no tolerance; relax here if a codec change makes it lossy).
const SHADOW_FIDELITY: Fidelity = Fidelity::EXACT;

/// xrdp: exact but for the mouse pointer, which Xvnc behind xrdp draws into its framebuffer
/// (`xwd` pictures never show it), so comparisons skip the pointer's box.
const XRDP_FIDELITY: Fidelity = Fidelity {
    skip_pointer: true,
    ..Fidelity::EXACT
};

/// Where the tests leave the pointer (over the xterm, which has keyboard focus then).
const POINTER: (u32, u32) = (300, 200);

/// Waits until the display rebuilt from the instruction stream equals the X server's
/// screenshot as `server.fidelity` asks, the client's pointer back at [`POINTER`].
async fn wait_matches_screen(
    c: &mut GuacClient<TcpStream>,
    server: &Server,
    display: &str,
) -> Result<(), String> {
    let _ = c.send_mouse(POINTER.0 as i32, POINTER.1 as i32, 0).await;
    x11::wait_matches_screen(c, display, server.fidelity, T).await
}

/// Keyboard focus follows the pointer (no window manager): put it on the xterm, then
/// Ctrl-C forgets any half-typed line (Ctrl-U on an empty line would ring the bell).
async fn focus_xterm(c: &mut GuacClient<TcpStream>) {
    c.send_mouse(POINTER.0 as i32, POINTER.1 as i32, 0)
        .await
        .unwrap();
    let _ = c.drain(Duration::from_millis(100)).await;
    c.send_key_combo(&[0xffe3, u32::from('c')]).await.unwrap();
    // The tty flushes its input on SIGINT: let that happen before typing on.
    let _ = c.drain(Duration::from_millis(400)).await;
}

/// Types `command` + Return into the xterm and returns what it wrote to a scratch file:
/// `command` gets ` > FILE` appended.
async fn run_typed(c: &mut GuacClient<TcpStream>, tag: &str, command: &str) -> Option<String> {
    let file = scratch(tag);
    focus_xterm(c).await;
    c.type_text(&format!("{command} > {}\n", file.display()))
        .await
        .unwrap();
    let got = wait_file(c, &file, T).await;
    if got.is_none() {
        let _ = c
            .display()
            .save_png(std::env::temp_dir().join("guacr-rdp-typed.png"));
    }
    got
}

// ------------------------------------------------------------------ tests

/// Every server: log in, get a display of the desktop's size that shows the session's
/// xterm: the rebuilt picture equals the X server's own screenshot.
#[tokio::test]
async fn logs_in_and_shows_the_xterm() {
    let d = TestDaemon::start().await;
    for server in all_servers() {
        let _g = server.lock.lock().await;
        let mut c = rdp_session(&d, server, &[])
            .await
            .unwrap_or_else(|e| panic!("{}: {e:#}", server.name));
        let display = x_display(server, &mut c).await;
        let (w, h) = screen_size(&display);
        c.wait_for(T, |disp, _| disp.width() == w && disp.height() == h)
            .await
            .unwrap_or_else(|e| panic!("{}: no {w}x{h} display: {e:#}", server.name));
        wait_matches_screen(&mut c, server, &display)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", server.name));
        assert!(
            c.state().count("img") > 0,
            "{}: images were sent",
            server.name
        );
        assert!(c.state().errors.is_empty(), "{}", c.state().summary());
        c.disconnect().await.unwrap();
    }
}

/// Typing reaches the xterm's shell (shifted characters included): the typed command's
/// output lands in a file; the echoed line is on the rebuilt display as on the X screen.
#[tokio::test]
async fn typing_reaches_the_xterm() {
    let d = TestDaemon::start().await;
    for server in all_servers() {
        let _g = server.lock.lock().await;
        let mut c = rdp_session(&d, server, &[]).await.unwrap();
        let display = x_display(server, &mut c).await;
        wait_matches_screen(&mut c, server, &display).await.unwrap();
        let word = unique("Guacr-RDP_ok:42");
        let got = run_typed(&mut c, "typed", &format!("echo '{word}' \"$((6*7))\"")).await;
        assert_eq!(
            got.as_deref(),
            Some(format!("{word} 42\n").as_str()),
            "{}: the typed command ran; {}",
            server.name,
            c.state().summary()
        );
        wait_matches_screen(&mut c, server, &display)
            .await
            .unwrap_or_else(|e| panic!("{}: after typing: {e}", server.name));
        c.type_text("clear\n").await.unwrap();
        settle_and_disconnect(&mut c).await;
    }
}

/// Wrong password → 769 where the server tells (NLA refuses the credentials; the shadow
/// server's PAM check after logon); the password never shows in the message.
#[tokio::test]
async fn wrong_password_is_769() {
    let d = TestDaemon::start().await;
    let p = peers();
    for server in [&p.shadow_nla] {
        let mut c = rdp_session(&d, server, &[("password", "wrongpw!")])
            .await
            .unwrap();
        c.wait_for_close(T).await.unwrap();
        let e = c
            .state()
            .last_error()
            .unwrap_or_else(|| panic!("{}: an error; {}", server.name, c.state().summary()))
            .clone();
        assert_eq!(e.status, 769, "{}: {e:?}", server.name);
        assert!(!e.message.contains("wrongpw"), "{e:?}");
    }
}

/// Nothing listening → 519; the daemon keeps serving.
#[tokio::test]
async fn refused_is_519() {
    let d = TestDaemon::start().await;
    let p = peers();
    let port = refused_port();
    let mut c = d.client().await;
    c.handshake(
        "rdp",
        &client_info(800, 600),
        &[
            ("hostname", p.host.as_str()),
            ("port", port.as_str()),
            ("username", "nobody"),
            ("password", "x"),
        ],
    )
    .await
    .unwrap();
    c.wait_for_close(T).await.unwrap();
    assert_eq!(
        c.state().last_error().map(|e| e.status),
        Some(519),
        "{}",
        c.state().summary()
    );
    // Another session still works.
    let server = &p.shadow_nla;
    let _g = server.lock.lock().await;
    let mut c = rdp_session(&d, server, &[]).await.unwrap();
    c.wait_for_frame(T).await.unwrap();
}

/// No password (protocol 1.5 handshake): the owner is asked with `required`, answers
/// with `argv` (as guacamole-common-js does) and the session logs in.
#[tokio::test]
async fn missing_password_is_requested() {
    let d = TestDaemon::start().await;
    let server = &peers().shadow_nla;
    let _g = server.lock.lock().await;
    let mut c = rdp_session(&d, server, &[("password", "")]).await.unwrap();
    c.wait_until(T, |s| {
        s.required.iter().any(|r| r.iter().any(|n| n == "password"))
    })
    .await
    .unwrap();
    assert!(
        !c.state().closed && c.state().errors.is_empty(),
        "{}",
        c.state().summary()
    );
    c.send_argv("password", &peers().password).await.unwrap();
    c.wait_until(T, |s| s.count("img") > 0).await.unwrap();
    assert!(c.state().errors.is_empty(), "{}", c.state().summary());
    c.disconnect().await.unwrap();
}

/// The session ends on the server (its xterm, the session's window manager, exits):
/// the client gets a clean `disconnect`, no `error`.
#[tokio::test]
async fn server_logoff_is_a_clean_disconnect() {
    let d = TestDaemon::start().await;
    let server = &peers().xrdp_tls;
    let _g = server.lock.lock().await;
    let mut c = rdp_session(&d, server, &[]).await.unwrap();
    let display = x_display(server, &mut c).await;
    // At least one frame drawn (a new one may never come: the desktop can be idle by now).
    c.wait_until(T, |s| s.count("sync") >= 1).await.unwrap();
    focus_xterm(&mut c).await;
    c.type_text("exit\n").await.unwrap();
    c.wait_for_close(T)
        .await
        .unwrap_or_else(|e| panic!("{e:#}; {}", c.state().summary()));
    assert!(c.state().disconnected, "{}", c.state().summary());
    assert!(c.state().errors.is_empty(), "{}", c.state().summary());
    // The session is gone from the X side too.
    let deadline = Instant::now() + T;
    while xterm_window(&display).is_some() {
        assert!(
            Instant::now() < deadline,
            "the session's xterm is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clipboard from the server with xrdp (its chansrv bridges the X CLIPBOARD selection and
/// CLIPRDR): text put on the X clipboard reaches the client as `clipboard`.
#[tokio::test]
async fn clipboard_from_x_reaches_the_client() {
    let d = TestDaemon::start().await;
    for server in xrdp_servers() {
        let _g = server.lock.lock().await;
        let mut c = rdp_session(&d, server, &[]).await.unwrap();
        let display = x_display(server, &mut c).await;
        // At least one frame drawn (a new one may never come: the desktop can be idle by now).
        c.wait_until(T, |s| s.count("sync") >= 1).await.unwrap();
        // Let the clipboard channel come up (a copy made while it starts is covered by the
        // handler's own tests).
        c.drain(Duration::from_secs(2)).await.unwrap();
        let text = unique("from-x héllo €");
        let _sel = Selection::set(&display, "clipboard", &text).expect("an X selection owner");
        c.wait_until(T, |s| s.clipboards.iter().any(|t| t == &text))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{}: X clipboard never reached the client: {e:#}",
                    server.name
                )
            });
        assert!(c.state().errors.is_empty(), "{}", c.state().summary());
        c.disconnect().await.unwrap();
    }
}

/// Clipboard to the server with xrdp: the client's `clipboard` becomes the X clipboard of
/// the session (read with `xclip -o`, which chansrv answers by asking the client).
#[tokio::test]
async fn clipboard_from_the_client_reaches_x() {
    let d = TestDaemon::start().await;
    for server in xrdp_servers() {
        let _g = server.lock.lock().await;
        let mut c = rdp_session(&d, server, &[]).await.unwrap();
        let display = x_display(server, &mut c).await;
        // At least one frame drawn (a new one may never come: the desktop can be idle by now).
        c.wait_until(T, |s| s.count("sync") >= 1).await.unwrap();
        c.drain(Duration::from_secs(2)).await.unwrap();
        let text = unique("to-x ünïcode €");
        c.send_clipboard(&text).await.unwrap();
        wait_x_text(&mut c, &display, XText::Selection("clipboard"), &text, T)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", server.name));
        assert!(c.state().errors.is_empty(), "{}", c.state().summary());
        c.disconnect().await.unwrap();
    }
}

/// `resize-method=display-update`: the owner's `size` resizes the xrdp desktop (Xvnc
/// follows), the rebuilt display follows and still equals the X screen.
/// `resize-method=reconnect`: the session reconnects at the new size (xrdp puts the client
/// back into the same Xvnc session, which keeps its own size: only the client's view
/// follows), then back at 1024x768 the picture equals the X screen again.
#[tokio::test]
async fn resize_follows_the_owner_on_xrdp() {
    let d = TestDaemon::start().await;
    let server = &peers().xrdp_tls;
    let _g = server.lock.lock().await;
    for method in ["display-update", "reconnect"] {
        let mut c = rdp_session(&d, server, &[("resize-method", method)])
            .await
            .unwrap();
        let display = x_display(server, &mut c).await;
        c.wait_for(T, |disp, _| disp.width() == 1024 && disp.height() == 768)
            .await
            .unwrap();
        c.send_size(800, 600).await.unwrap();
        let resized = c
            .wait_for(T, |disp, _| disp.width() == 800 && disp.height() == 600)
            .await;
        let x_size = screen_size(&display);
        let matched = wait_matches_screen(&mut c, server, &display).await;
        // Put the session back to the size the other tests use, whatever happened.
        c.send_size(1024, 768).await.unwrap();
        let restored = c
            .wait_for(T, |disp, _| disp.width() == 1024 && disp.height() == 768)
            .await;
        resized.unwrap_or_else(|e| panic!("{method}: display never 800x600: {e:#}"));
        if method == "display-update" {
            assert_eq!(x_size, (800, 600), "{method}: the X screen was resized");
            matched.unwrap_or_else(|e| panic!("{method}: {e}"));
        }
        restored.unwrap_or_else(|e| panic!("{method}: {e:#}"));
        wait_matches_screen(&mut c, server, &display)
            .await
            .unwrap_or_else(|e| panic!("{method}: back at 1024x768: {e}"));
        assert_eq!(screen_size(&display), (1024, 768), "{method}");
        assert!(
            c.state().errors.is_empty(),
            "{method}: {}",
            c.state().summary()
        );
        c.disconnect().await.unwrap();
    }
}

/// The shadow server shares a fixed-size Xvfb screen: a `size` from the owner changes
/// nothing and the session goes on.
#[tokio::test]
async fn resize_is_ignored_where_unsupported() {
    let d = TestDaemon::start().await;
    let server = &peers().shadow_tls;
    let _g = server.lock.lock().await;
    let mut c = rdp_session(&d, server, &[("resize-method", "display-update")])
        .await
        .unwrap();
    let display = x_display(server, &mut c).await;
    wait_matches_screen(&mut c, server, &display).await.unwrap();
    c.send_size(800, 600).await.unwrap();
    c.drain(Duration::from_secs(5)).await.unwrap();
    assert_eq!(screen_size(&display), (1024, 768));
    assert!(
        !c.state().closed && c.state().errors.is_empty(),
        "{}",
        c.state().summary()
    );
    wait_matches_screen(&mut c, server, &display).await.unwrap();
    c.disconnect().await.unwrap();
}

/// `security=nla` against a server without NLA (xrdp): the negotiation fails → 515 with
/// the reason.
#[tokio::test]
async fn nla_against_xrdp_is_515() {
    let d = TestDaemon::start().await;
    let server = &peers().xrdp_tls;
    let mut c = rdp_session(&d, server, &[("security", "nla")])
        .await
        .unwrap();
    c.wait_for_close(T).await.unwrap();
    let e = c
        .state()
        .last_error()
        .unwrap_or_else(|| panic!("an error; {}", c.state().summary()))
        .clone();
    assert_eq!(e.status, 515, "{e:?}");
    assert!(!e.message.is_empty());
}

/// `read-only=true`: typed keys do not reach the server.
#[tokio::test]
async fn read_only_sends_no_input() {
    let d = TestDaemon::start().await;
    let server = &peers().shadow_nla;
    let _g = server.lock.lock().await;
    let mut c = rdp_session(&d, server, &[("read-only", "true")])
        .await
        .unwrap();
    c.wait_for_frame(T).await.unwrap();
    let file = scratch("read-only");
    c.type_text(&format!("echo no > {}\n", file.display()))
        .await
        .unwrap();
    c.drain(Duration::from_secs(2)).await.unwrap();
    assert!(!file.exists(), "typed input reached the server");
    assert!(!c.state().closed, "{}", c.state().summary());
}

/// An X bell (Ctrl-U on an empty bash line) makes xrdp send a Play Sound PDU: the session
/// goes on.
#[tokio::test]
async fn bell_does_not_end_the_session() {
    let d = TestDaemon::start().await;
    let server = &peers().xrdp_tls;
    let _g = server.lock.lock().await;
    let mut c = rdp_session(&d, server, &[]).await.unwrap();
    x_display(server, &mut c).await;
    focus_xterm(&mut c).await;
    c.send_key_combo(&[0xffe3, u32::from('u')]).await.unwrap();
    c.drain(Duration::from_secs(1)).await.unwrap();
    assert!(
        !c.state().closed && c.state().errors.is_empty(),
        "{}",
        c.state().summary()
    );
    let got = run_typed(&mut c, "after-bell", "echo still-here").await;
    assert_eq!(
        got.as_deref(),
        Some("still-here\n"),
        "{}",
        c.state().summary()
    );
    settle_and_disconnect(&mut c).await;
}

/// `server-layout=de-de-qwertz`: the server (xrdp, German keymap from the client's
/// keyboard layout 0x0407) types what the client's keysyms mean, Z/Y and AltGr included.
#[tokio::test]
async fn german_layout_types_the_right_characters() {
    let d = TestDaemon::start().await;
    let server = &peers().xrdp_rdp;
    let _g = server.lock.lock().await;
    let mut c = rdp_session(&d, server, &[("server-layout", "de-de-qwertz")])
        .await
        .unwrap();
    x_display(server, &mut c).await;
    let got = run_typed(&mut c, "de", "echo 'zY@{ü}ß|~'").await;
    assert_eq!(
        got.as_deref(),
        Some("zY@{ü}ß|~\n"),
        "{}",
        c.state().summary()
    );
    settle_and_disconnect(&mut c).await;
}

/// The SHA-256 fingerprint of the xrdp test peer's certificate (`AB:CD:…`).
fn xrdp_cert_fingerprint() -> String {
    let cert = guacr_testkit::peers::var("GUACR_TEST_RDP_XRDP_CERT")
        .expect("GUACR_TEST_RDP_XRDP_CERT: start the RDP test peers");
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", &cert])
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl x509 on {cert}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .to_owned()
}

/// `ignore-cert=false`: xrdp's self-signed certificate is refused (515) unless its SHA-256
/// fingerprint is pinned with `cert-fingerprints`; a wrong pin is refused too.
#[tokio::test]
async fn certificate_is_verified_or_pinned() {
    let d = TestDaemon::start().await;
    let server = &peers().xrdp_tls;
    let _g = server.lock.lock().await;
    let refused = |c: &GuacClient<TcpStream>| -> u32 {
        c.state()
            .last_error()
            .unwrap_or_else(|| panic!("an error; {}", c.state().summary()))
            .status
    };
    let mut c = rdp_session(&d, server, &[("ignore-cert", "false")])
        .await
        .unwrap();
    c.wait_for_close(T).await.unwrap();
    assert_eq!(refused(&c), 515, "{}", c.state().summary());

    let wrong = ["00"; 32].join(":");
    let mut c = rdp_session(
        &d,
        server,
        &[("ignore-cert", "false"), ("cert-fingerprints", &wrong)],
    )
    .await
    .unwrap();
    c.wait_for_close(T).await.unwrap();
    assert_eq!(refused(&c), 515, "{}", c.state().summary());

    let pin = xrdp_cert_fingerprint();
    let mut c = rdp_session(
        &d,
        server,
        &[("ignore-cert", "false"), ("cert-fingerprints", &pin)],
    )
    .await
    .unwrap();
    c.wait_until(T, |s| s.count("img") > 0)
        .await
        .unwrap_or_else(|e| panic!("pinned {pin}: {e:#}"));
    assert!(c.state().errors.is_empty(), "{}", c.state().summary());
    c.disconnect().await.unwrap();
}

/// A joiner (`select,$id`) gets a full picture equal to the X screen; typing by the owner
/// then reaches both.
#[tokio::test]
async fn joiner_gets_the_full_picture() {
    let d = TestDaemon::start().await;
    let server = &peers().shadow_tls;
    let _g = server.lock.lock().await;
    let mut owner = d.client().await;
    let id = owner
        .handshake("rdp", &client_info(1024, 768), &params(server, &[]))
        .await
        .unwrap();
    let display = x_display(server, &mut owner).await;
    wait_matches_screen(&mut owner, server, &display)
        .await
        .unwrap();
    let mut joiner = d.client().await;
    joiner
        .handshake(&id, &client_info(1024, 768), &[])
        .await
        .unwrap();
    wait_matches_screen(&mut joiner, server, &display)
        .await
        .unwrap_or_else(|e| panic!("joiner: {e}"));
    let word = unique("joined-view");
    let got = run_typed(&mut owner, "joined", &format!("echo {word}")).await;
    assert_eq!(got, Some(format!("{word}\n")));
    owner.type_text("clear\n").await.unwrap();
    let _ = owner.drain(Duration::from_millis(500)).await;
    wait_matches_screen(&mut joiner, server, &display)
        .await
        .unwrap_or_else(|e| panic!("joiner after typing: {e}"));
    wait_matches_screen(&mut owner, server, &display)
        .await
        .unwrap_or_else(|e| panic!("owner after typing: {e}"));
    let _ = joiner.disconnect().await;
    settle_and_disconnect(&mut owner).await;
}

/// No username and no password for an NLA server: both are asked for with `required` and
/// answered with `argv`; the session logs in.
#[tokio::test]
async fn missing_username_and_password_are_requested() {
    let d = TestDaemon::start().await;
    let server = &peers().shadow_nla;
    let _g = server.lock.lock().await;
    let mut c = rdp_session(&d, server, &[("username", ""), ("password", "")])
        .await
        .unwrap();
    c.wait_until(T, |s| {
        s.required
            .iter()
            .any(|r| r.iter().any(|n| n == "username") && r.iter().any(|n| n == "password"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(c.state().errors.is_empty(), "{}", c.state().summary());
    c.send_argv("username", &server.user).await.unwrap();
    c.send_argv("password", &peers().password).await.unwrap();
    c.wait_until(T, |s| s.count("img") > 0).await.unwrap();
    assert!(c.state().errors.is_empty(), "{}", c.state().summary());
    c.disconnect().await.unwrap();
}
