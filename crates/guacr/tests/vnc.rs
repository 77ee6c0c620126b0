//! The `vnc` protocol through the real daemon, against real VNC servers
//! started by `scripts/test-peers.sh start` (scripts/peers.d/vnc.sh):
//! Xvfb + x11vnc (VNC authentication) and TigerVNC Xvnc (None and VNC
//! authentication), each showing an xterm. The X server's own screenshot
//! (`xwd`) is the reference picture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::x11::{
    Fidelity, XText, diff, mouse_location, read_selection, scratch, screen_size,
    settle_and_disconnect, unique, wait_file, wait_matches_screen, wait_x_text,
};
use common::{TestDaemon, client_info, peer_var, refused_port, x_screenshot};
use guacr_testkit::GuacClient;
use guacr_testkit::x11::Selection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const T: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------ peers

#[derive(Debug, Clone)]
struct VncPeers {
    host: String,
    x11vnc: Server,
    xvnc_none: Server,
    xvnc_auth: Server,
}

#[derive(Debug, Clone)]
struct Server {
    name: &'static str,
    port: String,
    password: Option<String>,
    display: String,
    /// Serialises the tests that type into, resize or click on this display.
    lock: &'static tokio::sync::Mutex<()>,
    /// x11vnc takes the X selections on ClientCutText but answers no
    /// conversion requests (seen with x11vnc 0.9.16); it also stores the
    /// text in CUT_BUFFER0, which is what the tests read there.
    cut_buffer: bool,
}

fn peers() -> &'static VncPeers {
    static P: OnceLock<VncPeers> = OnceLock::new();
    static LOCKS: [tokio::sync::Mutex<()>; 3] = [const { tokio::sync::Mutex::const_new(()) }; 3];
    P.get_or_init(|| {
        let var = |k: &str| peer_var(k, "vnc");
        VncPeers {
            host: var("GUACR_TEST_VNC_HOST"),
            x11vnc: Server {
                name: "x11vnc",
                port: var("GUACR_TEST_VNC_X11VNC_PORT"),
                password: Some(var("GUACR_TEST_VNC_X11VNC_PASSWORD")),
                display: var("GUACR_TEST_VNC_X11VNC_DISPLAY"),
                lock: &LOCKS[0],
                cut_buffer: true,
            },
            xvnc_none: Server {
                name: "Xvnc (None)",
                port: var("GUACR_TEST_VNC_XVNC_NONE_PORT"),
                password: None,
                display: var("GUACR_TEST_VNC_XVNC_NONE_DISPLAY"),
                lock: &LOCKS[1],
                cut_buffer: false,
            },
            xvnc_auth: Server {
                name: "Xvnc (VncAuth)",
                port: var("GUACR_TEST_VNC_XVNC_AUTH_PORT"),
                password: Some(var("GUACR_TEST_VNC_XVNC_AUTH_PASSWORD")),
                display: var("GUACR_TEST_VNC_XVNC_AUTH_DISPLAY"),
                lock: &LOCKS[2],
                cut_buffer: false,
            },
        }
    })
}

fn all_servers() -> [&'static Server; 3] {
    let p = peers();
    [&p.x11vnc, &p.xvnc_none, &p.xvnc_auth]
}

/// Connects to `server` through the daemon (its password, `extra` overriding).
async fn vnc_session(
    d: &TestDaemon,
    server: &Server,
    extra: &[(&str, &str)],
) -> anyhow::Result<GuacClient<TcpStream>> {
    let p = peers();
    let mut params: Vec<(&str, &str)> = vec![
        ("hostname", p.host.as_str()),
        ("port", server.port.as_str()),
    ];
    if let Some(pw) = &server.password {
        params.push(("password", pw));
    }
    for (k, v) in extra {
        params.retain(|(n, _)| n != k);
        params.push((k, v));
    }
    let mut c = d.client().await;
    c.handshake("vnc", &client_info(1024, 768), &params).await?;
    // Like a browser, report where the pointer is: TigerVNC draws its cursor
    // into the framebuffer while the client's pointer position differs from
    // the server's (and `xwd` pictures never contain the cursor).
    c.send_mouse(300, 200, 0).await?;
    Ok(c)
}

// ------------------------------------------------------------------ X side

/// Where the server puts the text of a ClientCutText on the X side.
fn pasted_text(server: &Server) -> XText {
    if server.cut_buffer {
        XText::CutBuffer0
    } else {
        XText::Selection("clipboard")
    }
}

/// Ctrl-U: forget any half-typed line in the xterm's shell.
async fn fresh_line(c: &mut GuacClient<TcpStream>) {
    c.send_key_combo(&[0xffe3, u32::from('u')]).await.unwrap();
}

// ------------------------------------------------------------------ tests

/// Every server: connect, get the first frame with the desktop's size.
#[tokio::test]
async fn connects_to_every_server() {
    let d = TestDaemon::start().await;
    for server in all_servers() {
        let mut c = vnc_session(&d, server, &[])
            .await
            .unwrap_or_else(|e| panic!("{}: {e:#}", server.name));
        let (w, h) = screen_size(&server.display);
        c.wait_for(T, |disp, _| disp.width() == w && disp.height() == h)
            .await
            .unwrap_or_else(|e| panic!("{}: no {w}x{h} display: {e:#}", server.name));
        c.disconnect().await.unwrap();
    }
}

/// `force-lossless=true`: the display rebuilt from the instruction stream is
/// the X server's own picture, pixel for pixel, on every server.
#[tokio::test]
async fn lossless_display_equals_the_x_screenshot() {
    let d = TestDaemon::start().await;
    for server in all_servers() {
        let _g = server.lock.lock().await;
        let mut c = vnc_session(&d, server, &[("force-lossless", "true")])
            .await
            .unwrap();
        wait_matches_screen(&mut c, &server.display, Fidelity::EXACT, T)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", server.name));
        assert!(
            c.state().count("img") > 0,
            "{}: images were sent",
            server.name
        );
        c.disconnect().await.unwrap();
    }
}

/// Typing reaches the xterm's shell (the command's output lands in a file)
/// and the echoed text is on the rebuilt display exactly as on the X screen.
#[tokio::test]
async fn typing_reaches_the_xterm() {
    let d = TestDaemon::start().await;
    for server in all_servers() {
        let _g = server.lock.lock().await;
        let mut c = vnc_session(&d, server, &[("force-lossless", "true")])
            .await
            .unwrap();
        wait_matches_screen(&mut c, &server.display, Fidelity::EXACT, T)
            .await
            .unwrap();
        let before = c.display().screenshot();
        // Keyboard focus follows the pointer (no window manager): keep it on the xterm.
        c.send_mouse(300, 200, 0).await.unwrap();
        fresh_line(&mut c).await;
        let file = scratch("typed");
        let word = unique("hello-vnc");
        c.type_text(&format!("echo {word} > {}\n", file.display()))
            .await
            .unwrap();
        let got = wait_file(&mut c, &file, T).await;
        assert_eq!(
            got.as_deref(),
            Some(format!("{word}\n").as_str()),
            "{}: typed command ran",
            server.name
        );
        wait_matches_screen(&mut c, &server.display, Fidelity::EXACT, T)
            .await
            .unwrap_or_else(|e| panic!("{}: after typing: {e}", server.name));
        assert_ne!(
            before.2,
            c.display().screenshot().2,
            "{}: the display changed",
            server.name
        );
        // Clean the terminal for the next test.
        c.type_text("clear\n").await.unwrap();
        settle_and_disconnect(&mut c).await;
    }
}

/// Pointer motion moves the X pointer; a middle click pastes the PRIMARY
/// selection into the xterm at the pointer (so the click landed).
#[tokio::test]
async fn pointer_moves_and_clicks_land() {
    let d = TestDaemon::start().await;
    for server in all_servers() {
        let _g = server.lock.lock().await;
        let mut c = vnc_session(&d, server, &[]).await.unwrap();
        c.wait_for_frame(T).await.unwrap();
        c.send_mouse(123, 234, 0).await.unwrap();
        let deadline = Instant::now() + T;
        while mouse_location(&server.display) != Some((123, 234)) {
            assert!(
                Instant::now() < deadline,
                "{}: pointer at {:?}, want (123, 234)",
                server.name,
                mouse_location(&server.display)
            );
            let _ = c.drain(Duration::from_millis(50)).await;
        }
        let file = scratch("clicked");
        let _sel = Selection::set(
            &server.display,
            "primary",
            &format!("echo clicked > {}\n", file.display()),
        )
        .expect("an X selection owner");
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.send_mouse(300, 200, 0).await.unwrap();
        fresh_line(&mut c).await;
        for mask in [0, 2, 0] {
            c.send_mouse(300, 200, mask).await.unwrap();
            let _ = c.drain(Duration::from_millis(100)).await;
        }
        assert_eq!(
            wait_file(&mut c, &file, T).await.as_deref(),
            Some("clicked\n"),
            "{}: the middle click pasted into the xterm",
            server.name
        );
        c.type_text("clear\n").await.unwrap();
        settle_and_disconnect(&mut c).await;
    }
}

/// Wrong password → 769 with the server's reason, on both servers with VNC
/// authentication; the password never appears in the message.
#[tokio::test]
async fn wrong_password_is_769() {
    let d = TestDaemon::start().await;
    let p = peers();
    for server in [&p.x11vnc, &p.xvnc_auth] {
        let mut c = vnc_session(&d, server, &[("password", "wrongpw!")])
            .await
            .unwrap();
        c.wait_for_close(T).await.unwrap();
        let e = c.state().last_error().expect("an error").clone();
        assert_eq!(e.status, 769, "{}: {e:?}", server.name);
        assert!(!e.message.contains("wrongpw"), "{e:?}");
        assert!(e.message.contains("authentication"), "{e:?}");
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
        "vnc",
        &client_info(800, 600),
        &[("hostname", &p.host), ("port", &port)],
    )
    .await
    .unwrap();
    c.wait_for_close(T).await.unwrap();
    assert_eq!(c.state().last_error().map(|e| e.status), Some(519));
    // Another session still works.
    let mut c = vnc_session(&d, &p.xvnc_none, &[]).await.unwrap();
    c.wait_for_frame(T).await.unwrap();
}

/// Text selected in the xterm (PRIMARY, selected with a triple click sent
/// through the session) reaches the client, and the client's clipboard
/// becomes the X CLIPBOARD selection.
#[tokio::test]
async fn clipboard_goes_both_ways() {
    let d = TestDaemon::start().await;
    for server in all_servers() {
        let _g = server.lock.lock().await;
        let mut c = vnc_session(&d, server, &[]).await.unwrap();
        c.wait_for_frame(T).await.unwrap();
        // The first line of the cleared xterm shows the word; triple-click selects it.
        let text = unique("from-x");
        fresh_line(&mut c).await;
        c.type_text(&format!("clear; echo {text}\n")).await.unwrap();
        // Select until the selection holds the word (the echo may land late).
        let deadline = Instant::now() + T;
        let got = |c: &GuacClient<TcpStream>| {
            c.state()
                .clipboards
                .iter()
                .any(|t| t.trim_end() == text.as_str())
        };
        while !got(&c) {
            assert!(
                Instant::now() < deadline,
                "{}: server clipboard never became {text:?}; {}",
                server.name,
                c.state().summary()
            );
            c.drain(Duration::from_millis(500)).await.unwrap();
            for _ in 0..3 {
                c.send_mouse(20, 7, 1).await.unwrap();
                c.send_mouse(20, 7, 0).await.unwrap();
            }
            c.drain(Duration::from_millis(500)).await.unwrap();
        }
        c.send_mouse(300, 200, 0).await.unwrap();
        let text = unique("to-x héllo");
        c.send_clipboard(&text).await.unwrap();
        wait_x_text(&mut c, &server.display, pasted_text(server), &text, T)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", server.name));
        c.disconnect().await.unwrap();
    }
}

/// `clipboard-encoding=UTF-8` sends UTF-8 bytes as cut text: a server that
/// reads cut text as Latin-1 (Xvnc, per RFB) shows the two-byte sequence.
#[tokio::test]
async fn clipboard_encoding_is_applied() {
    let d = TestDaemon::start().await;
    let server = &peers().xvnc_none;
    let _g = server.lock.lock().await;
    let mut c = vnc_session(&d, server, &[("clipboard-encoding", "UTF-8")])
        .await
        .unwrap();
    c.wait_for_frame(T).await.unwrap();
    let tag = unique("enc");
    c.send_clipboard(&format!("{tag} é")).await.unwrap();
    let want = format!("{tag} \u{c3}\u{a9}");
    let clipboard = XText::Selection("clipboard");
    wait_x_text(&mut c, &server.display, clipboard, &want, T)
        .await
        .unwrap_or_else(|e| panic!("cut text sent as UTF-8: {e}"));
}

/// `disable-copy` / `disable-paste` block each direction.
#[tokio::test]
async fn disable_copy_and_paste() {
    let d = TestDaemon::start().await;
    let server = &peers().xvnc_none;
    let _g = server.lock.lock().await;
    let mut c = vnc_session(
        &d,
        server,
        &[("disable-copy", "true"), ("disable-paste", "true")],
    )
    .await
    .unwrap();
    c.wait_for_frame(T).await.unwrap();
    let before = read_selection(&mut c, &server.display, "clipboard").await;
    let pasted = unique("blocked-paste");
    c.send_clipboard(&pasted).await.unwrap();
    let copied = unique("blocked-copy");
    let sel = Selection::set(&server.display, "clipboard", &copied).expect("an X selection owner");
    c.drain(Duration::from_secs(2)).await.unwrap();
    assert_eq!(
        c.state().count("clipboard"),
        0,
        "no clipboard to the client"
    );
    drop(sel);
    let after = read_selection(&mut c, &server.display, "clipboard").await;
    assert_ne!(
        after.as_deref(),
        Some(pasted.as_str()),
        "before: {before:?}"
    );
    assert!(!c.state().closed);
}

/// `read-only`: keys and clicks are not sent.
#[tokio::test]
async fn read_only_sends_no_input() {
    let d = TestDaemon::start().await;
    let server = &peers().xvnc_none;
    let _g = server.lock.lock().await;
    let mut c = vnc_session(&d, server, &[("read-only", "true")])
        .await
        .unwrap();
    c.wait_for_frame(T).await.unwrap();
    c.send_mouse(321, 211, 0).await.unwrap();
    let file = scratch("read-only");
    c.type_text(&format!("echo no > {}\n", file.display()))
        .await
        .unwrap();
    c.drain(Duration::from_secs(2)).await.unwrap();
    assert!(!file.exists(), "typed input reached the server");
    let pointer = mouse_location(&server.display).expect("the X pointer's location");
    assert_ne!(
        pointer,
        (321, 211),
        "read-only: the pointer motion reached the server"
    );
    assert!(!c.state().closed);
}

/// A joiner gets a full repaint equal to the X screen; both keep updating.
#[tokio::test]
async fn joiner_gets_the_full_picture() {
    let d = TestDaemon::start().await;
    let server = &peers().xvnc_auth;
    let _g = server.lock.lock().await;
    let p = peers();
    let mut params: Vec<(&str, &str)> = vec![
        ("hostname", p.host.as_str()),
        ("port", server.port.as_str()),
        ("force-lossless", "true"),
    ];
    if let Some(pw) = &server.password {
        params.push(("password", pw));
    }
    let mut owner = d.client().await;
    let id = owner
        .handshake("vnc", &client_info(1024, 768), &params)
        .await
        .unwrap();
    owner.send_mouse(300, 200, 0).await.unwrap();
    wait_matches_screen(&mut owner, &server.display, Fidelity::EXACT, T)
        .await
        .unwrap();
    let mut joiner = d.client().await;
    joiner
        .handshake(&id, &client_info(1024, 768), &[])
        .await
        .unwrap();
    wait_matches_screen(&mut joiner, &server.display, Fidelity::EXACT, T)
        .await
        .unwrap();
    // A change made by the owner reaches both.
    owner.send_mouse(300, 200, 0).await.unwrap();
    fresh_line(&mut owner).await;
    owner.type_text("echo joined-view\n").await.unwrap();
    let _ = owner.drain(Duration::from_millis(500)).await;
    wait_matches_screen(&mut joiner, &server.display, Fidelity::EXACT, T)
        .await
        .unwrap();
    wait_matches_screen(&mut owner, &server.display, Fidelity::EXACT, T)
        .await
        .unwrap();
    owner.type_text("clear\n").await.unwrap();
    settle_and_disconnect(&mut owner).await;
}

/// Xvnc (ExtendedDesktopSize): the owner's `size` resizes the remote desktop.
#[tokio::test]
async fn resize_follows_the_owner_on_xvnc() {
    let d = TestDaemon::start().await;
    let server = &peers().xvnc_none;
    let _g = server.lock.lock().await;
    let original = screen_size(&server.display);
    let mut c = vnc_session(&d, server, &[("force-lossless", "true")])
        .await
        .unwrap();
    c.wait_for_frame(T).await.unwrap();
    c.send_size(800, 600).await.unwrap();
    let resized = c
        .wait_for(T, |disp, _| disp.width() == 800 && disp.height() == 600)
        .await;
    let x_size = screen_size(&server.display);
    // Put the shared desktop back whatever happened.
    c.send_size(original.0, original.1).await.unwrap();
    let restored = c
        .wait_for(T, |disp, _| (disp.width(), disp.height()) == original)
        .await;
    resized.unwrap();
    assert_eq!(x_size, (800, 600), "the X screen was resized");
    restored.unwrap();
    wait_matches_screen(&mut c, &server.display, Fidelity::EXACT, T)
        .await
        .unwrap();
}

/// x11vnc cannot resize: the request is ignored, the session goes on.
#[tokio::test]
async fn resize_is_ignored_where_unsupported() {
    let d = TestDaemon::start().await;
    let server = &peers().x11vnc;
    let _g = server.lock.lock().await;
    let original = screen_size(&server.display);
    let mut c = vnc_session(&d, server, &[]).await.unwrap();
    c.wait_for(T, |disp, _| (disp.width(), disp.height()) == original)
        .await
        .unwrap();
    c.send_size(800, 600).await.unwrap();
    c.drain(Duration::from_secs(1)).await.unwrap();
    assert!(!c.state().closed, "{}", c.state().summary());
    assert_eq!((c.display().width(), c.display().height()), original);
    assert_eq!(screen_size(&server.display), original);
    c.send_mouse(10, 10, 0).await.unwrap();
    c.drain(Duration::from_millis(300)).await.unwrap();
    assert!(!c.state().closed);
}

// ------------------------------------------------------------------ broken servers

/// A one-shot TCP server on loopback running `script` on the accepted socket.
async fn one_shot_server<F, Fut>(script: F) -> String
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        if let Ok((sock, _)) = listener.accept().await {
            script(sock).await;
        }
    });
    port.to_string()
}

/// The server side of an RFB 3.8 handshake with security None, announcing a
/// `width`×`height` desktop (32 bpp, depth 24, little-endian true colour).
async fn serve_handshake(s: &mut TcpStream, width: u16, height: u16) -> std::io::Result<()> {
    s.write_all(b"RFB 003.008\n").await?;
    let mut version = [0u8; 12];
    s.read_exact(&mut version).await?;
    s.write_all(&[1, 1]).await?; // one security type: None
    let mut chosen = [0u8; 1];
    s.read_exact(&mut chosen).await?;
    s.write_all(&0u32.to_be_bytes()).await?; // SecurityResult OK
    let mut shared = [0u8; 1];
    s.read_exact(&mut shared).await?;
    let mut init = Vec::new();
    init.extend_from_slice(&width.to_be_bytes());
    init.extend_from_slice(&height.to_be_bytes());
    init.extend_from_slice(&[32, 24, 0, 1]); // bpp, depth, big-endian=0, true colour
    init.extend_from_slice(&255u16.to_be_bytes());
    init.extend_from_slice(&255u16.to_be_bytes());
    init.extend_from_slice(&255u16.to_be_bytes());
    init.extend_from_slice(&[16, 8, 0, 0, 0, 0]);
    init.extend_from_slice(&4u32.to_be_bytes());
    init.extend_from_slice(b"fake");
    s.write_all(&init).await
}

async fn expect_error(d: &TestDaemon, port: &str) -> guacr_testkit::ServerError {
    let mut c = d.client().await;
    c.handshake(
        "vnc",
        &client_info(800, 600),
        &[("hostname", "127.0.0.1"), ("port", port)],
    )
    .await
    .unwrap();
    c.wait_for_close(T).await.unwrap();
    c.state()
        .last_error()
        .cloned()
        .unwrap_or_else(|| panic!("no error; {}", c.state().summary()))
}

#[tokio::test]
async fn garbage_server_is_515() {
    let d = TestDaemon::start().await;
    let port = one_shot_server(|mut s| async move {
        let _ = s
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
        let mut sink = [0u8; 64];
        let _ = s.read(&mut sink).await;
    })
    .await;
    let e = expect_error(&d, &port).await;
    assert_eq!(e.status, 515, "{e:?}");
    assert!(!e.message.is_empty());
}

#[tokio::test]
async fn junk_after_the_handshake_is_515() {
    let d = TestDaemon::start().await;
    let port = one_shot_server(|mut s| async move {
        if serve_handshake(&mut s, 640, 480).await.is_ok() {
            // Message type 0x77 does not exist.
            let _ = s.write_all(&[0x77; 64]).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    })
    .await;
    let e = expect_error(&d, &port).await;
    assert_eq!(e.status, 515, "{e:?}");
}

#[tokio::test]
async fn server_closing_mid_frame_is_515() {
    let d = TestDaemon::start().await;
    let port = one_shot_server(|mut s| async move {
        if serve_handshake(&mut s, 640, 480).await.is_ok() {
            let mut update = vec![0u8, 0, 0, 1]; // FramebufferUpdate, 1 rectangle
            for v in [0u16, 0, 100, 100] {
                update.extend_from_slice(&v.to_be_bytes());
            }
            update.extend_from_slice(&0i32.to_be_bytes()); // Raw
            update.extend_from_slice(&[0x80; 1000]); // 250 of 10000 pixels
            let _ = s.write_all(&update).await;
        }
    })
    .await;
    let e = expect_error(&d, &port).await;
    assert_eq!(e.status, 515, "{e:?}");
}

#[tokio::test]
async fn absurd_desktop_sizes_are_refused() {
    let d = TestDaemon::start().await;
    for (w, h) in [(0u16, 0u16), (65535, 65535), (1, 0)] {
        let port = one_shot_server(move |mut s| async move {
            let _ = serve_handshake(&mut s, w, h).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        })
        .await;
        let e = expect_error(&d, &port).await;
        assert_eq!(e.status, 515, "{w}x{h}: {e:?}");
        assert!(e.message.contains("size"), "{w}x{h}: {e:?}");
    }
}

// ------------------------------------------------------------------ own Xvnc

/// A private Xvnc on a free display and port, killed when dropped (its lock file and
/// socket removed: a killed X server leaves them, and they used to pile up until no
/// display number was free).
struct OwnXvnc {
    child: Child,
    port: String,
    display: u16,
}

/// The display numbers this process has taken (an Xvnc writes its lock file only once up).
static CLAIMED_DISPLAYS: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A display number in 40..90 that no running X server holds; a stale lock file (its
/// process gone) and socket left on it are removed.
fn claim_display() -> u16 {
    let mut claimed = CLAIMED_DISPLAYS.lock().unwrap();
    let display = (40..90u16)
        .find(|n| {
            let free = match std::fs::read_to_string(format!("/tmp/.X{n}-lock")) {
                Ok(pid) => pid
                    .trim()
                    .parse::<u32>()
                    .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()),
                Err(_) => true,
            };
            free && !claimed.contains(n)
                && std::net::TcpListener::bind(("127.0.0.1", 6000 + *n)).is_ok()
        })
        .unwrap_or_else(|| {
            panic!("no free X display number in 40..90 (all held by running X servers)")
        });
    remove_display_files(display);
    claimed.push(display);
    display
}

fn remove_display_files(display: u16) {
    let _ = std::fs::remove_file(format!("/tmp/.X{display}-lock"));
    let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{display}"));
}

impl OwnXvnc {
    /// 640x480 on a free port.
    fn start(extra: &[&str]) -> OwnXvnc {
        Self::start_on(&common::closed_port(), "640x480", extra)
    }

    fn start_on(port: &str, geometry: &str, extra: &[&str]) -> OwnXvnc {
        let display = claim_display();
        let child = Command::new("Xvnc")
            .arg(format!(":{display}"))
            .args(["-geometry", geometry, "-depth", "24", "-rfbport", port])
            .args(["-interface", "127.0.0.1", "-localhost", "-nolisten", "tcp"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvnc (tigervnc-standalone-server; install the VNC peers)");
        OwnXvnc {
            child,
            port: port.to_owned(),
            display,
        }
    }

    async fn wait_listening(&self) {
        for _ in 0..100 {
            if TcpStream::connect(format!("127.0.0.1:{}", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Xvnc :{} did not listen on {}", self.display, self.port);
    }
}

impl Drop for OwnXvnc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_display_files(self.display);
        if let Ok(mut claimed) = CLAIMED_DISPLAYS.lock() {
            claimed.retain(|&n| n != self.display);
        }
    }
}

/// The VNC server dies mid-session: an error, then a clean close.
#[tokio::test]
async fn server_gone_mid_session_is_an_error() {
    let d = TestDaemon::start().await;
    let mut x = OwnXvnc::start(&["-SecurityTypes", "None"]);
    x.wait_listening().await;
    let mut c = d.client().await;
    c.handshake(
        "vnc",
        &client_info(800, 600),
        &[("hostname", "127.0.0.1"), ("port", &x.port)],
    )
    .await
    .unwrap();
    c.wait_for(T, |disp, _| disp.width() == 640).await.unwrap();
    x.child.kill().unwrap();
    c.wait_for_close(T).await.unwrap();
    let e = c.state().last_error().cloned().expect("an error");
    assert_eq!(e.status, 515, "{e:?}");
    assert_eq!(c.state().count("disconnect"), 1);
}

/// `autoretry`: a server that comes up after the first attempts is reached.
#[tokio::test]
async fn autoretry_reaches_a_late_server() {
    let d = TestDaemon::start().await;
    let port = common::closed_port();
    let mut c = d.client().await;
    c.handshake(
        "vnc",
        &client_info(800, 600),
        &[
            ("hostname", "127.0.0.1"),
            ("port", &port),
            ("autoretry", "10"),
        ],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The same port, now served.
    let x = OwnXvnc::start_on(&port, "320x200", &["-SecurityTypes", "None"]);
    let r = c.wait_for(T, |disp, _| disp.width() == 320).await;
    drop(x);
    r.unwrap();
}

/// VeNCrypt X509None: the socket is upgraded to TLS (certificate not
/// verified, like guacd), then the desktop arrives.
#[tokio::test]
async fn vencrypt_tls() {
    let dir = std::env::temp_dir().join(unique("guacr-vnc-tls"));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = common::make_cert(&dir, "xvnc");
    let d = TestDaemon::start().await;
    let x = OwnXvnc::start(&[
        "-SecurityTypes",
        "X509None",
        "-X509Cert",
        cert.to_str().unwrap(),
        "-X509Key",
        key.to_str().unwrap(),
    ]);
    x.wait_listening().await;
    let mut c = d.client().await;
    c.handshake(
        "vnc",
        &client_info(800, 600),
        &[("hostname", "127.0.0.1"), ("port", &x.port)],
    )
    .await
    .unwrap();
    c.wait_for(T, |disp, _| disp.width() == 640 && disp.height() == 480)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `color-depth=16` quantises colours (close to, but not exactly, the X
/// picture) and `swap-red-blue` swaps the channels, on coloured content.
#[tokio::test]
async fn color_depth_and_swap_red_blue() {
    let d = TestDaemon::start().await;
    let server = &peers().xvnc_none;
    let _g = server.lock.lock().await;
    // Two coloured bars in the xterm: 256-colour 67 (95,135,175) and 196 (255,0,0).
    let mut c = vnc_session(&d, server, &[("force-lossless", "true")])
        .await
        .unwrap();
    c.wait_for_frame(T).await.unwrap();
    fresh_line(&mut c).await;
    c.type_text("clear; printf '\\e[48;5;67m%60s\\e[0m\\n\\e[48;5;196m%60s\\e[0m\\n' '' ''\n")
        .await
        .unwrap();
    wait_matches_screen(&mut c, &server.display, Fidelity::EXACT, T)
        .await
        .unwrap();
    let (w, h, x) = x_screenshot(&server.display);
    assert!(
        x.chunks_exact(4).any(|p| p[..3] == [255, 0, 0]),
        "the red bar is on the X screen"
    );
    settle_and_disconnect(&mut c).await;

    let mut c = vnc_session(
        &d,
        server,
        &[("force-lossless", "true"), ("color-depth", "16")],
    )
    .await
    .unwrap();
    wait_matches_screen(&mut c, &server.display, Fidelity::within(8), T)
        .await
        .unwrap_or_else(|e| panic!("16-bit colour is close to the X picture: {e}"));
    let (gw, gh, g) = c.display().screenshot();
    assert!(
        diff((gw, gh, &g), (w, h, &x), 0, 0, None).is_err(),
        "16-bit colour is quantised (95 and 175 are not 5/6-bit exact)"
    );
    c.disconnect().await.unwrap();

    let mut c = vnc_session(
        &d,
        server,
        &[("force-lossless", "true"), ("swap-red-blue", "true")],
    )
    .await
    .unwrap();
    let swapped = Fidelity {
        transform: Some(|px| px.chunks_exact_mut(4).for_each(|p| p.swap(0, 2))),
        ..Fidelity::EXACT
    };
    wait_matches_screen(&mut c, &server.display, swapped, T)
        .await
        .unwrap_or_else(|e| panic!("red and blue are swapped: {e}"));
    c.type_text("clear\n").await.unwrap();
    settle_and_disconnect(&mut c).await;
}

/// No password for a server that needs one: the owner is asked with
/// `required,password` (guacd's behaviour), and the session waits.
#[tokio::test]
async fn missing_password_is_requested() {
    let d = TestDaemon::start().await;
    let server = &peers().xvnc_auth;
    let mut c = vnc_session(&d, server, &[("password", "")]).await.unwrap();
    c.wait_until(T, |s| s.required.iter().any(|r| r == &["password"]))
        .await
        .unwrap();
    assert!(!c.state().closed && c.state().errors.is_empty());
    // The owner answers with an `argv` stream, as guacamole-common-js does.
    let pw = server.password.clone().expect("password server");
    c.send_argv("password", &pw).await.unwrap();
    c.wait_until(T, |s| s.count("img") > 0).await.unwrap();
    assert!(c.state().errors.is_empty(), "{}", c.state().summary());
    c.disconnect().await.unwrap();
}
