//! Telnet through the daemon against the real inetutils telnetd from scripts/test-peers.sh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use guacr_testkit::keysym;

const T: Duration = Duration::from_secs(25);

async fn telnet(
    d: &TestDaemon,
    extra: &[(&str, &str)],
) -> guacr_testkit::GuacClient<tokio::net::TcpStream> {
    let port = Peers::get().telnet_port.to_string();
    connect(d, "telnet", &port, extra)
        .await
        .expect("handshake")
        .0
}

#[tokio::test]
async fn automatic_login_and_command() {
    let d = TestDaemon::start().await;
    let mut c = telnet(&d, &[]).await;
    wait_text(&mut c, "guacr$", T)
        .await
        .expect("logged in by regex");
    c.type_text("echo telnet-$((3*3))").await.unwrap();
    c.press_key(keysym::RETURN).await.unwrap();
    wait_text(&mut c, "telnet-9", T).await.expect("output");
    // NAWS: a resize reaches the remote pty.
    let (cw, ch) = Glyphs::get().cell;
    c.send_size(cw * 60 + 1, ch * 22 + 1).await.unwrap();
    c.drain(Duration::from_millis(300)).await.unwrap();
    c.type_text("stty size").await.unwrap();
    c.press_key(keysym::RETURN).await.unwrap();
    wait_text(&mut c, "22 60", T).await.expect("NAWS resize");
    c.type_text("exit").await.unwrap();
    c.press_key(keysym::RETURN).await.unwrap();
    c.wait_for_close(T).await.expect("closed after logout");
    assert!(c.state().last_error().is_none());
}

#[tokio::test]
async fn login_failure_regex_is_769() {
    let d = TestDaemon::start().await;
    let mut c = telnet(
        &d,
        &[
            ("password", "wrong-password"),
            ("login-success-regex", "guacr\\$"),
            ("login-failure-regex", "Login incorrect"),
        ],
    )
    .await;
    c.wait_for_close(Duration::from_secs(40))
        .await
        .expect("closed");
    let e = c.state().last_error().expect("error");
    assert_eq!(e.status, 769, "{e:?}");
}

#[tokio::test]
async fn invalid_regex_is_768() {
    let d = TestDaemon::start().await;
    let mut c = telnet(&d, &[("username-regex", "([")]).await;
    c.wait_for_close(T).await.expect("closed");
    assert_eq!(c.state().last_error().map(|e| e.status), Some(768));
}

#[tokio::test]
async fn closed_port_is_519() {
    let d = TestDaemon::start().await;
    let port = refused_port();
    let mut c = telnet(&d, &[("port", &port)]).await;
    c.wait_for_close(T).await.expect("closed");
    assert_eq!(c.state().last_error().map(|e| e.status), Some(519));
}
