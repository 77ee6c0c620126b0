//! The web gateway (guacr-web) in process, over the real daemon core, a real
//! SQLite store and the real OpenSSH peer: WebSocket and HTTP tunnels, login,
//! CSRF, throttling, lockout, permissions, admin kill, share links, signed
//! connection tokens, OIDC against an in-test provider, and bad input.
#![cfg(feature = "web")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use guacr_testkit::GuacClient;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const T: Duration = Duration::from_secs(20);

/// A daemon plus its web listener, with an admin and a normal user.
struct Gw {
    d: TestDaemon,
    web: SocketAddr,
    store: guacr_store::Store,
    _dir: TempDir,
    stop: tokio::sync::watch::Sender<bool>,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let p = std::env::temp_dir().join(format!(
        "guacr-web-{tag}-{}-{}",
        std::process::id(),
        uuid_like()
    ));
    std::fs::create_dir_all(&p).unwrap();
    TempDir(p)
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}", N.fetch_add(1, Ordering::Relaxed))
}

const ADMIN_PW: &str = "admin-pass-123";
const ALICE_PW: &str = "alice-pass-123";
const BOB_PW: &str = "bob-pass-123";

async fn gateway(configure: impl FnOnce(&mut guacr::Config)) -> Gw {
    let d = TestDaemon::start().await;
    let dir = temp_dir("gw");
    let url = format!("sqlite://{}", dir.0.join("guacr.db").display());
    let store = guacr_store::Store::open(&url, Some(guacr_store::SecretKey::generate().unwrap()))
        .await
        .expect("store");
    for (name, pw, admin) in [
        ("admin", ADMIN_PW, true),
        ("alice", ALICE_PW, false),
        ("bob", BOB_PW, false),
    ] {
        store
            .create_user(&guacr_store::NewUser {
                username: name.into(),
                password: Some(pw.into()),
                admin,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut cfg = guacr::Config::default();
    cfg.web.bind = "127.0.0.1:0".into();
    cfg.web.assets = None;
    cfg.web.token_secret = Some("test-token-secret".into());
    configure(&mut cfg);
    let web = guacr::web::bind(&cfg, d.state.clone(), store.clone())
        .await
        .expect("web bind");
    let addr = web.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(web.run(rx));
    Gw {
        d,
        web: addr,
        store,
        _dir: dir,
        stop,
    }
}

impl Gw {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.web)
    }

    /// An SSH connection to the peer, usable by `users`.
    async fn ssh_connection(&self, name: &str, users: &[&str], extra: &[(&str, &str)]) -> i64 {
        let p = Peers::get();
        let mut params = std::collections::BTreeMap::new();
        params.insert("hostname".to_owned(), p.host.clone());
        params.insert("port".to_owned(), p.ssh_port_str());
        params.insert("username".to_owned(), p.pw_user.clone());
        params.insert("password".to_owned(), p.pw_password.clone());
        for (k, v) in extra {
            params.insert((*k).to_owned(), (*v).to_owned());
        }
        let c = self
            .store
            .create_connection(&guacr_store::NewConnection {
                name: name.into(),
                protocol: "ssh".into(),
                group: "Tests".into(),
                description: String::new(),
                params,
            })
            .await
            .unwrap();
        for u in users {
            let user = self.store.user_by_name(u).await.unwrap().unwrap();
            self.store.grant_user(c.id, user.id).await.unwrap();
        }
        c.id
    }

    async fn audit(&self, kind: &str) -> Vec<guacr_store::AuditEvent> {
        self.store
            .query_audit(&guacr_store::AuditQuery {
                kind: Some(kind.into()),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.d.shutdown().await;
    }
}

/// A browser-like HTTP client: cookie jar of one cookie, CSRF header.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Browser {
    fn new(gw: &Gw) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: gw.url(""),
            cookie: None,
            csrf: None,
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            r = r.header("cookie", format!("guacr_session={c}"));
        }
        if let Some(c) = &self.csrf {
            r = r.header("x-csrf-token", c);
        }
        r
    }

    async fn login(&mut self, user: &str, password: &str) -> reqwest::Response {
        let res = self
            .send_json(
                reqwest::Method::POST,
                "/api/login",
                json!({"username": user, "password": password}),
            )
            .await;
        if let Some(sc) = res.headers().get("set-cookie") {
            let sc = sc.to_str().unwrap();
            let v = sc
                .split(';')
                .next()
                .unwrap()
                .trim_start_matches("guacr_session=");
            self.cookie = Some(v.to_owned());
        }
        res
    }

    async fn logged_in(gw: &Gw, user: &str, password: &str) -> Browser {
        let mut b = Browser::new(gw);
        let res = b.login(user, password).await;
        assert_eq!(res.status(), 200, "login of {user}");
        let body: Value = res.json().await.unwrap();
        b.csrf = Some(body["csrf"].as_str().unwrap().to_owned());
        b
    }

    /// Sends `body` as JSON (with the cookie and CSRF header).
    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> reqwest::Response {
        self.req(method, path).json(&body).send().await.unwrap()
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let res = self.req(reqwest::Method::GET, path).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Opens the WebSocket tunnel with `query`: returns the socket after the
    /// tunnel uuid message, and the uuid.
    async fn ws(&self, gw: &Gw, query: &str) -> (Ws, String) {
        let mut req = format!("ws://{}/tunnel/websocket?{query}", gw.web)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", "guacamole".parse().unwrap());
        if let Some(c) = &self.cookie {
            req.headers_mut()
                .insert("cookie", format!("guacr_session={c}").parse().unwrap());
        }
        let (mut ws, res) = tokio_tungstenite::connect_async(req).await.expect("ws");
        assert_eq!(
            res.headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap()),
            Some("guacamole"),
            "the server selects the guacamole subprotocol"
        );
        let first = next_text(&mut ws).await.expect("first message");
        assert!(
            first.starts_with("0.,36.") && first.ends_with(';') && first.len() == 6 + 36 + 1,
            "first message is the tunnel uuid: {first:?}"
        );
        let uuid = first[6..42].to_owned();
        (ws, uuid)
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match tokio::time::timeout(T, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Reads messages until the tunnel closes; returns everything received.
async fn read_to_close(ws: &mut Ws) -> String {
    let mut all = String::new();
    while let Some(t) = next_text(ws).await {
        all.push_str(&t);
    }
    all
}

/// The Guacamole `error` instructions in `text`: (message, status).
fn errors(text: &str) -> Vec<(String, u32)> {
    let (ins, _) = guacr_protocol::parse_all(text.as_bytes()).unwrap_or_default();
    ins.iter()
        .filter(|i| i.opcode == "error")
        .map(|i| (i.args[0].clone(), i.args[1].parse().unwrap_or(0)))
        .collect()
}

/// Turns a WebSocket tunnel into a testkit client (the tunnel already did
/// the handshake), pumping messages both ways.
fn ws_client(ws: Ws) -> GuacClient<guacr_web::stream::TunnelStream> {
    let (stream, peer) = guacr_web::stream::pair(64);
    let guacr_web::stream::TunnelPeer {
        to_core,
        mut from_core,
        ..
    } = peer;
    let (mut sink, mut source) = ws.split();
    tokio::spawn(async move {
        while let Some(Ok(m)) = source.next().await {
            match m {
                Message::Text(t)
                    if to_core
                        .send(bytes::Bytes::copy_from_slice(t.as_bytes()))
                        .await
                        .is_err() =>
                {
                    break;
                }
                Message::Text(_) => {}
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    tokio::spawn(async move {
        while let Some(b) = from_core.recv().await {
            let s = String::from_utf8(b.to_vec()).unwrap();
            if sink.send(Message::Text(s.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut c = GuacClient::new(stream);
    c.set_echo_sync(true);
    c
}

async fn type_line<S>(c: &mut GuacClient<S>, line: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    c.type_text(line).await.unwrap();
    c.press_key(0xff0d).await.unwrap();
}

fn wait_file_contains(path: &std::path::Path, needle: &str, timeout: Duration) -> bool {
    let until = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < until {
        if let Ok(data) = std::fs::read(path)
            && String::from_utf8_lossy(&data).contains(needle)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[tokio::test]
async fn websocket_tunnel_runs_an_ssh_session_with_ping_echo() {
    let gw = gateway(|_| {}).await;
    let id = gw.ssh_connection("shell", &["alice"], &[]).await;
    let b = Browser::logged_in(&gw, "alice", ALICE_PW).await;
    let (mut ws, uuid) = b
        .ws(
            &gw,
            &format!("connection={id}&width=800&height=600&dpi=96&image=image/png&timezone=UTC"),
        )
        .await;
    // Ping echo, as Guacamole.WebSocketTunnel expects.
    ws.send(Message::Text("0.,4.ping,7.1234567;".into()))
        .await
        .unwrap();
    let mut echoed = false;
    let mut seen = String::new();
    for _ in 0..200 {
        let Some(t) = next_text(&mut ws).await else {
            break;
        };
        if t == "0.,4.ping,7.1234567;" {
            echoed = true;
            break;
        }
        seen.push_str(&t);
    }
    assert!(echoed, "ping echoed");
    assert!(
        !seen.contains("ready") && !seen.contains("4.args"),
        "the browser never sees args/ready"
    );
    let mut c = ws_client(ws);
    wait_text(&mut c, "guacr$", T).await.unwrap();
    type_line(&mut c, "echo hello-from-$((6*7))-ws").await;
    wait_text(&mut c, "hello-from-42-ws", T).await.unwrap();

    // The session is listed for admins, with its owner and connection.
    let admin = Browser::logged_in(&gw, "admin", ADMIN_PW).await;
    let (status, list) = admin.get_json("/api/admin/sessions").await;
    assert_eq!(status, 200);
    let s = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["connection_id"] == json!(id.to_string()))
        .expect("listed");
    assert_eq!(s["username"], "alice");
    assert_eq!(s["protocol"], "ssh");
    assert_eq!(s["connection_name"], "shell");
    // Sharing by the tunnel uuid the browser knows works for the owner.
    let res = b
        .req(
            reqwest::Method::POST,
            &format!("/api/sessions/{uuid}/share"),
        )
        .json(&json!({"read_only": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    c.disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let starts = gw.audit("session.start").await;
    assert!(starts.iter().any(|e| e.username.as_deref() == Some("alice") && e.protocol.as_deref() == Some("ssh")));
    let ends = gw.audit("session.end").await;
    let end = ends
        .iter()
        .find(|e| e.username.as_deref() == Some("alice"))
        .expect("session.end audited");
    assert!(
        end.bytes_out.unwrap_or(0) > 1000,
        "bytes to the browser counted: {end:?}"
    );
    assert!(
        end.bytes_in.unwrap_or(0) > 10,
        "bytes from the browser counted"
    );
    assert!(end.duration_ms.unwrap_or(0) > 0);
    gw.stop().await;
}

#[tokio::test]
async fn http_tunnel_round_trip() {
    let gw = gateway(|_| {}).await;
    let id = gw.ssh_connection("shell", &["alice"], &[]).await;
    let b = Browser::logged_in(&gw, "alice", ALICE_PW).await;
    let res = b
        .req(reqwest::Method::POST, "/tunnel/http?connect")
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )
        .body(format!(
            "connection={id}&width=640&height=480&image=image/png"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res
        .headers()
        .get("guacamole-tunnel-token")
        .expect("tunnel token")
        .to_str()
        .unwrap()
        .to_owned();
    let uuid = res.text().await.unwrap();
    assert_eq!(uuid.len(), 36);
    // Without the token: refused.
    let res = b
        .req(reqwest::Method::GET, &format!("/tunnel/http?read:{uuid}:0"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Read until the shell prompt's frame arrives (sync), echoing syncs via write.
    let mut seen = String::new();
    let mut n = 0;
    let deadline = std::time::Instant::now() + T;
    let drawn = |s: &str| {
        s.contains("4.sync")
            && (s.contains("3.img") || s.contains("4.blob") || s.contains("4.copy"))
    };
    while !drawn(&seen) && std::time::Instant::now() < deadline {
        let res = b
            .req(
                reqwest::Method::GET,
                &format!("/tunnel/http?read:{uuid}:{n}"),
            )
            .header("guacamole-tunnel-token", &token)
            .send()
            .await
            .unwrap();
        n += 1;
        assert_eq!(res.status(), 200);
        let mut body = res.bytes_stream();
        while let Ok(Some(Ok(chunk))) =
            tokio::time::timeout(Duration::from_secs(3), body.next()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if drawn(&seen) {
                break;
            }
        }
    }
    assert!(
        seen.contains("4.sync"),
        "instructions arrive over the HTTP tunnel"
    );
    assert!(
        seen.contains("3.img") || seen.contains("4.blob") || seen.contains("4.copy"),
        "drawing arrives"
    );
    // Writes go to the session (nop and a key), and malformed writes end the tunnel.
    let res = b
        .req(reqwest::Method::POST, &format!("/tunnel/http?write:{uuid}"))
        .header("guacamole-tunnel-token", &token)
        .body("3.nop;3.key,2.97,1.1;3.key,2.97,1.0;")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = b
        .req(reqwest::Method::POST, &format!("/tunnel/http?write:{uuid}"))
        .header("guacamole-tunnel-token", &token)
        .body("3.nop;x.bad;")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers().get("guacamole-status-code").unwrap(), "768");
    let res = b
        .req(reqwest::Method::POST, &format!("/tunnel/http?write:{uuid}"))
        .header("guacamole-tunnel-token", &token)
        .body("3.nop;")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        404,
        "the tunnel is gone after malformed input"
    );
    gw.stop().await;
}

#[tokio::test]
async fn login_cookie_flags_failure_lockout_and_audit() {
    let gw = gateway(|_| {}).await;
    let mut b = Browser::new(&gw);
    let res = b.login("alice", ALICE_PW).await;
    assert_eq!(res.status(), 200);
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "no Secure flag over plain HTTP");
    let id = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("guacr_session=");
    assert_eq!(id.len(), 43, "256-bit random id, base64url");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["user"]["admin"], false);
    let (status, me) = b.get_json("/api/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["csrf"], body["csrf"]);
    // Logout needs CSRF; with it the cookie stops working.
    b.csrf = body["csrf"].as_str().map(str::to_owned);
    let res = b
        .req(reqwest::Method::POST, "/api/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(b.get_json("/api/me").await.0, 401);

    // Wrong password: 401 with a clear message, audited.
    let mut c = Browser::new(&gw);
    let res = c.login("bob", "wrong").await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "invalid_credentials");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Wrong user name or password")
    );
    assert!(
        gw.audit("login.failure")
            .await
            .iter()
            .any(|e| e.username.as_deref() == Some("bob"))
    );
    assert!(
        gw.audit("login.success")
            .await
            .iter()
            .any(|e| e.username.as_deref() == Some("alice"))
    );
    // The store's lockout (5 failures) → 423, audited; the right password is refused too.
    let mut last = 0;
    for _ in 0..5 {
        last = c.login("bob", "wrong").await.status().as_u16();
    }
    assert_eq!(last, 423);
    let res = c.login("bob", BOB_PW).await;
    assert_eq!(res.status(), 423, "locked even with the right password");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "locked");
    assert!(!gw.audit("login.locked").await.is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn login_is_throttled_per_address() {
    let gw = gateway(|c| c.web.login_per_ip_per_minute = 3).await;
    let mut b = Browser::new(&gw);
    for _ in 0..3 {
        assert_eq!(b.login("nobody", "x").await.status(), 401);
    }
    let res = b.login("alice", ALICE_PW).await;
    assert_eq!(
        res.status(),
        429,
        "over the per-address limit, even with the right password"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "throttled");
    gw.stop().await;
}

#[tokio::test]
async fn csrf_is_required_and_refusals_are_audited() {
    let gw = gateway(|_| {}).await;
    let mut b = Browser::logged_in(&gw, "admin", ADMIN_PW).await;
    let csrf = b.csrf.take();
    let res = b
        .req(reqwest::Method::POST, "/api/admin/users")
        .json(&json!({"username": "mallory", "password": "mallory-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "csrf");
    b.csrf = Some("wrong".into());
    let res = b
        .req(reqwest::Method::DELETE, "/api/admin/users/2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(gw.store.user_by_name("mallory").await.unwrap().is_none());
    assert!(
        gw.store.user_by_name("alice").await.unwrap().is_some(),
        "nothing was deleted"
    );
    let refused = gw.audit("csrf.refused").await;
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0].username.as_deref(), Some("admin"));
    // With the token it works.
    b.csrf = csrf;
    let res = b
        .req(reqwest::Method::POST, "/api/admin/users")
        .json(&json!({"username": "mallory", "password": "mallory-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    gw.stop().await;
}

#[tokio::test]
async fn users_see_and_open_only_their_connections() {
    let gw = gateway(|_| {}).await;
    let alice_conn = gw.ssh_connection("alice-box", &["alice"], &[]).await;
    let bob_conn = gw.ssh_connection("bob-box", &["bob"], &[]).await;
    let bob = Browser::logged_in(&gw, "bob", BOB_PW).await;
    let (status, list) = bob.get_json("/api/connections").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["bob-box"]);
    assert!(
        list[0].get("params").is_none(),
        "users never see parameters"
    );
    assert_eq!(list[0]["id"], json!(bob_conn.to_string()));
    // Admin endpoints are for admins.
    assert_eq!(bob.get_json("/api/admin/connections").await.0, 403);
    assert_eq!(bob.get_json("/api/admin/sessions").await.0, 403);
    // Opening alice's connection: a Guacamole error 771, then close.
    let (mut ws, _) = bob.ws(&gw, &format!("connection={alice_conn}")).await;
    let got = read_to_close(&mut ws).await;
    let errs = errors(&got);
    assert_eq!(errs.len(), 1, "{got}");
    assert_eq!(errs[0].1, 771);
    assert!(errs[0].0.contains("do not have access"));
    assert!(got.ends_with("10.disconnect;"));
    // A nonexistent id gets the same answer (no probing).
    let (mut ws, _) = bob.ws(&gw, "connection=999999").await;
    assert_eq!(errors(&read_to_close(&mut ws).await)[0].1, 771);
    // Not logged in: 769.
    let anon = Browser::new(&gw);
    let (mut ws, _) = anon.ws(&gw, &format!("connection={bob_conn}")).await;
    assert_eq!(errors(&read_to_close(&mut ws).await)[0].1, 769);
    // Joining a live session is for admins only.
    let (mut ws, _) = bob.ws(&gw, "join=$nope").await;
    assert_eq!(errors(&read_to_close(&mut ws).await)[0].1, 771);
    // Secrets never come back to admins either.
    let admin = Browser::logged_in(&gw, "admin", ADMIN_PW).await;
    let (_, c) = admin
        .get_json(&format!("/api/admin/connections/{alice_conn}"))
        .await;
    assert_eq!(c["params"]["password"], "********");
    assert_eq!(c["params"]["hostname"], "127.0.0.1");
    gw.stop().await;
}

#[tokio::test]
async fn admin_kill_reaches_the_user_with_the_reason() {
    let gw = gateway(|_| {}).await;
    let id = gw.ssh_connection("shell", &["alice"], &[]).await;
    let alice = Browser::logged_in(&gw, "alice", ALICE_PW).await;
    let (ws, _) = alice.ws(&gw, &format!("connection={id}")).await;
    let mut c = ws_client(ws);
    wait_text(&mut c, "guacr$", T).await.unwrap();
    let admin = Browser::logged_in(&gw, "admin", ADMIN_PW).await;
    let (_, list) = admin.get_json("/api/admin/sessions").await;
    let sid = list[0]["id"].as_str().unwrap().to_owned();
    let res = admin
        .send_json(
            reqwest::Method::DELETE,
            &format!("/api/admin/sessions/{sid}"),
            json!({"reason": "maintenance at noon"}),
        )
        .await;
    assert_eq!(res.status(), 204);
    c.wait_for_close(T).await.unwrap();
    let err = c
        .state()
        .last_error()
        .cloned()
        .expect("an error before the close");
    assert_eq!(err.status, 523);
    assert!(
        err.message.contains("Session closed by an administrator")
            && err.message.contains("maintenance at noon"),
        "{}",
        err.message
    );
    let kills = gw.audit("session.kill").await;
    assert_eq!(kills[0].username.as_deref(), Some("admin"));
    assert_eq!(kills[0].session_id.as_deref(), Some(sid.as_str()));
    // Unknown session: 404.
    let res = admin
        .req(reqwest::Method::DELETE, "/api/admin/sessions/$gone")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    gw.stop().await;
}

#[tokio::test]
async fn read_only_share_link_cannot_type() {
    let gw = gateway(|_| {}).await;
    let ts = temp_dir("ts");
    let ts_path = ts.0.to_str().unwrap().to_owned();
    let id = gw
        .ssh_connection(
            "shell",
            &["alice"],
            &[("typescript-path", &ts_path), ("typescript-name", "ts")],
        )
        .await;
    let alice = Browser::logged_in(&gw, "alice", ALICE_PW).await;
    let (ws, uuid) = alice.ws(&gw, &format!("connection={id}")).await;
    let mut owner = ws_client(ws);
    wait_text(&mut owner, "guacr$", T).await.unwrap();
    let res = alice
        .req(
            reqwest::Method::POST,
            &format!("/api/sessions/{uuid}/share"),
        )
        .json(&json!({"read_only": true, "ttl_seconds": 300}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let share: Value = res.json().await.unwrap();
    let token = share["token"].as_str().unwrap().to_owned();
    assert_eq!(share["url"], format!("/#/share/{token}"));
    // Bob may not share alice's session.
    let bob = Browser::logged_in(&gw, "bob", BOB_PW).await;
    let res = bob
        .send_json(
            reqwest::Method::POST,
            &format!("/api/sessions/{uuid}/share"),
            json!({"read_only": false}),
        )
        .await;
    assert_eq!(res.status(), 403);

    // A joiner without any login, by the share token.
    let anon = Browser::new(&gw);
    let (ws, _) = anon
        .ws(&gw, &format!("share={token}&width=800&height=600"))
        .await;
    let mut viewer = ws_client(ws);
    wait_text(&mut viewer, "guacr$", T).await.unwrap();
    type_line(&mut viewer, "echo VIEWER-TYPED-$((2+2))").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    type_line(&mut owner, "echo OWNER-TYPED-$((3+3))").await;
    wait_text(&mut owner, "OWNER-TYPED-6", T).await.unwrap();
    // The viewer sees the owner's output…
    wait_text(&mut viewer, "OWNER-TYPED-6", T).await.unwrap();
    // …and the remote shell never received the viewer's keys.
    let ts_file = ts.0.join("ts");
    assert!(
        wait_file_contains(&ts_file, "OWNER-TYPED-6", T),
        "typescript has the owner's output"
    );
    let data = String::from_utf8_lossy(&std::fs::read(&ts_file).unwrap()).into_owned();
    assert!(
        !data.contains("VIEWER-TYPED"),
        "read-only keys reached the shell: {data}"
    );
    // A bad share token: 769.
    let (mut ws, _) = anon.ws(&gw, "share=not-a-token").await;
    let errs = errors(&read_to_close(&mut ws).await);
    assert_eq!(errs[0].1, 769);
    gw.stop().await;
}

#[tokio::test]
async fn signed_tokens_open_without_login_and_bad_ones_are_refused() {
    let gw = gateway(|_| {}).await;
    let id = gw.ssh_connection("embedded", &[], &[]).await;
    let secret = b"test-token-secret";
    let now = guacr_web::token::now_secs();
    let good = guacr_web::token::create(
        secret,
        guacr_web::token::Claims {
            exp: now + 300,
            sub: Some("portal".into()),
            connection: Some(id.to_string()),
            ..Default::default()
        },
    )
    .unwrap();
    let anon = Browser::new(&gw);
    let (ws, _) = anon.ws(&gw, &format!("token={good}")).await;
    let mut c = ws_client(ws);
    wait_text(&mut c, "guacr$", T).await.unwrap();
    c.disconnect().await.unwrap();

    let expired = guacr_web::token::create(
        secret,
        guacr_web::token::Claims {
            exp: now - 120,
            connection: Some(id.to_string()),
            ..Default::default()
        },
    )
    .unwrap();
    let (mut ws, _) = anon.ws(&gw, &format!("token={expired}")).await;
    let errs = errors(&read_to_close(&mut ws).await);
    assert_eq!(errs[0], ("The link has expired.".to_owned(), 769));
    let forged = guacr_web::token::create(
        b"another-secret",
        guacr_web::token::Claims {
            exp: now + 300,
            connection: Some(id.to_string()),
            ..Default::default()
        },
    )
    .unwrap();
    let (mut ws, _) = anon.ws(&gw, &format!("token={forged}")).await;
    let errs = errors(&read_to_close(&mut ws).await);
    assert_eq!(errs[0], ("The link is not valid.".to_owned(), 769));
    // A tampered payload (claims edited, old signature) is also refused.
    let parts: Vec<&str> = good.split('.').collect();
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "{{\"exp\":{},\"connection\":\"1\",\"read_only\":false}}",
        now + 300
    ));
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    let (mut ws, _) = anon.ws(&gw, &format!("token={tampered}")).await;
    assert_eq!(errors(&read_to_close(&mut ws).await)[0].1, 769);
    let refused = gw.audit("token.refused").await;
    assert!(refused.len() >= 3, "{refused:?}");
    assert!(
        refused
            .iter()
            .any(|e| e.detail.as_deref() == Some("The link has expired."))
    );
    gw.stop().await;
}

#[tokio::test]
async fn malformed_and_oversize_tunnel_messages_close_cleanly() {
    let gw = gateway(|c| c.web.max_message_bytes = 16384).await;
    let id = gw.ssh_connection("shell", &["alice"], &[]).await;
    let alice = Browser::logged_in(&gw, "alice", ALICE_PW).await;
    // Malformed: error 768 then close; the server keeps serving.
    let (mut ws, _) = alice.ws(&gw, &format!("connection={id}")).await;
    ws.send(Message::Text("4.sync,abc;".into())).await.unwrap();
    let got = read_to_close(&mut ws).await;
    let errs = errors(&got);
    assert!(
        errs.iter()
            .any(|(m, s)| *s == 768 && m.contains("Malformed")),
        "{got}"
    );
    // Oversize: refused, closed.
    let (mut ws, _) = alice.ws(&gw, &format!("connection={id}")).await;
    let big = format!("5.clipb,{}.{};", 40000, "x".repeat(40000));
    let _ = ws.send(Message::Text(big.into())).await;
    let got = read_to_close(&mut ws).await;
    assert!(
        errors(&got).iter().any(|(_, s)| *s == 768),
        "oversize refused with an error: {got:.300}"
    );
    // Bad connect data: 768.
    let (mut ws, _) = alice.ws(&gw, "width=10").await;
    assert_eq!(errors(&read_to_close(&mut ws).await)[0].1, 768);
    let (mut ws, _) = alice.ws(&gw, &format!("connection={id}&token=x")).await;
    assert_eq!(errors(&read_to_close(&mut ws).await)[0].1, 768);
    // Still serving.
    let (ws, _) = alice.ws(&gw, &format!("connection={id}")).await;
    let mut c = ws_client(ws);
    wait_text(&mut c, "guacr$", T).await.unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn injection_looking_names_are_returned_verbatim_as_json() {
    let gw = gateway(|_| {}).await;
    let admin = Browser::logged_in(&gw, "admin", ADMIN_PW).await;
    let evil_user = "x'); DROP TABLE users;--";
    let evil_conn = "<script>alert(1)</script> \"q\" & ü";
    let res = admin
        .send_json(reqwest::Method::POST, "/api/admin/users", json!({"username": evil_user, "display_name": "<img src=x onerror=alert(1)>", "password": "evil-pass-123"}))
        .await;
    assert_eq!(res.status(), 201);
    let res = admin
        .send_json(reqwest::Method::POST, "/api/admin/connections", json!({"name": evil_conn, "protocol": "ssh", "group": "a/'b'", "params": {"hostname": "h"}}))
        .await;
    assert_eq!(res.status(), 201);
    let res = admin
        .req(reqwest::Method::GET, "/api/admin/users")
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        res.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    let users: Value = res.json().await.unwrap();
    assert!(
        users
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["username"] == evil_user
                && u["display_name"] == "<img src=x onerror=alert(1)>")
    );
    assert_eq!(users.as_array().unwrap().len(), 4, "no table was dropped");
    let (_, conns) = admin.get_json("/api/admin/connections").await;
    assert!(
        conns
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == evil_conn && c["group"] == "a/'b'")
    );
    // The new user can log in with the odd name.
    let mut b = Browser::new(&gw);
    assert_eq!(b.login(evil_user, "evil-pass-123").await.status(), 200);
    // Unknown protocol: 400.
    let res = admin
        .req(reqwest::Method::POST, "/api/admin/connections")
        .json(&json!({"name": "n", "protocol": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Protocol schemas.
    let (_, protos) = admin.get_json("/api/protocols").await;
    let ssh = protos
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "ssh")
        .unwrap();
    let pw = ssh["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "password")
        .unwrap();
    assert_eq!(pw["kind"], "password");
    assert_eq!(pw["secret"], true);
    let port = ssh["params"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "port")
        .unwrap();
    assert_eq!(port["kind"], "number");
    gw.stop().await;
}

// ------------------------------------------------------------ OIDC provider

/// A tiny OpenID provider: discovery, JWKS (an RSA key made with openssl for
/// this test), an authorize endpoint that approves at once, and a token
/// endpoint that checks the PKCE verifier and returns an RS256 id_token.
struct Provider {
    addr: SocketAddr,
    _dir: TempDir,
}

/// An issued code: (nonce, PKCE challenge, client id).
type Grant = (String, String, String);

#[derive(Clone)]
struct ProviderState {
    issuer: String,
    key_pem: Vec<u8>,
    jwks: Value,
    codes: Arc<Mutex<HashMap<String, Grant>>>,
    user: String,
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn provider(user: &str) -> Provider {
    use axum::extract::{Form, Query, State};
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::{get, post};
    let dir = temp_dir("oidc");
    let key = dir.0.join("key.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .unwrap();
    assert!(ok.status.success(), "openssl genpkey");
    let modulus = std::process::Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    let hex = String::from_utf8(modulus.stdout).unwrap();
    let hex = hex.trim().trim_start_matches("Modulus=");
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}");
    let st = ProviderState {
        issuer: issuer.clone(),
        key_pem: std::fs::read(&key).unwrap(),
        jwks: json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": b64url(&n), "e": "AQAB"}]}),
        codes: Arc::new(Mutex::new(HashMap::new())),
        user: user.to_owned(),
    };
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(|State(s): State<ProviderState>| async move {
                axum::Json(json!({
                    "issuer": s.issuer,
                    "authorization_endpoint": format!("{}/authorize", s.issuer),
                    "token_endpoint": format!("{}/token", s.issuer),
                    "jwks_uri": format!("{}/jwks", s.issuer),
                }))
            }),
        )
        .route("/jwks", get(|State(s): State<ProviderState>| async move { axum::Json(s.jwks) }))
        .route(
            "/authorize",
            get(|State(s): State<ProviderState>, Query(q): Query<HashMap<String, String>>| async move {
                assert_eq!(q["response_type"], "code");
                assert_eq!(q["code_challenge_method"], "S256");
                assert!(q["scope"].split(' ').any(|s| s == "openid"));
                let code = format!("code-{}", q["state"].len());
                s.codes.lock().unwrap().insert(
                    code.clone(),
                    (q["nonce"].clone(), q["code_challenge"].clone(), q["client_id"].clone()),
                );
                Redirect::to(&format!("{}?code={code}&state={}", q["redirect_uri"], q["state"]))
            }),
        )
        .route(
            "/token",
            post(|State(s): State<ProviderState>, Form(f): Form<HashMap<String, String>>| async move {
                use sha2::Digest;
                let Some((nonce, challenge, client)) = s.codes.lock().unwrap().remove(&f["code"]) else {
                    return (axum::http::StatusCode::BAD_REQUEST, "bad code").into_response();
                };
                let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                if b64url(&sha2::Sha256::digest(verifier.as_bytes())) != challenge || f["client_id"] != client {
                    return (axum::http::StatusCode::BAD_REQUEST, "PKCE failed").into_response();
                }
                let now = guacr_web::token::now_secs();
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                header.kid = Some("k1".into());
                let claims = json!({"iss": s.issuer, "sub": "u-1", "aud": client, "exp": now + 300,
                    "iat": now, "nonce": nonce, "preferred_username": s.user, "name": "Olivia Dc"});
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(&s.key_pem).unwrap();
                let id_token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
                axum::Json(json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token})).into_response()
            }),
        )
        .with_state(st);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Provider { addr, _dir: dir }
}

#[tokio::test]
async fn oidc_login_full_flow_against_an_in_test_provider() {
    let idp = provider("olivia").await;
    let issuer = format!("http://{}", idp.addr);
    let gw = gateway(|c| {
        c.web.oidc.push(guacr::config::OidcSection {
            id: "test".into(),
            label: "Sign in with Test".into(),
            issuer: issuer.clone(),
            client_id: "guacr-client".into(),
            client_secret: Some("s3cret".into()),
            ..Default::default()
        })
    })
    .await;
    let b = Browser::new(&gw);
    let (_, providers) = b.get_json("/api/auth/providers").await;
    assert_eq!(providers["oidc"][0]["id"], "test");
    assert_eq!(providers["oidc"][0]["label"], "Sign in with Test");
    // 1. guacr sends the browser to the provider.
    let res = b
        .req(reqwest::Method::GET, "/api/auth/oidc/test/login")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let to = res
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(to.starts_with(&format!("{issuer}/authorize?")), "{to}");
    let u = url::Url::parse(&to).unwrap();
    let q: HashMap<String, String> = u.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "guacr-client");
    assert!(q["state"].len() >= 32 && q["nonce"].len() >= 32 && q["code_challenge"].len() == 43);
    // 2. The provider approves and redirects back with a code.
    let res = b.http.get(&to).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let back = res
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        back.starts_with(&gw.url("/api/auth/oidc/test/callback")),
        "{back}"
    );
    // 3. The callback redeems the code, verifies the id_token, logs in.
    let res = b.http.get(&back).send().await.unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers().get("location").unwrap(), "/");
    let cookie = res
        .headers()
        .get("set-cookie")
        .expect("session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"));
    let mut logged = Browser::new(&gw);
    logged.cookie = Some(
        cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("guacr_session=")
            .to_owned(),
    );
    let (status, me) = logged.get_json("/api/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["user"]["username"], "olivia");
    assert_eq!(me["user"]["admin"], false);
    assert!(
        gw.audit("login.success")
            .await
            .iter()
            .any(|e| e.username.as_deref() == Some("olivia")
                && e.detail.as_deref() == Some("oidc test"))
    );
    // Replaying the callback (state used once) fails with a message.
    let res = b.http.get(&back).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let loc = res.headers().get("location").unwrap().to_str().unwrap();
    assert!(loc.starts_with("/#/login?error="), "{loc}");
    assert!(res.headers().get("set-cookie").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn static_files_spa_fallback_and_security_headers() {
    let assets = temp_dir("assets");
    std::fs::write(
        assets.0.join("index.html"),
        "<!doctype html><title>guacr</title>",
    )
    .unwrap();
    std::fs::create_dir_all(assets.0.join("assets")).unwrap();
    std::fs::write(assets.0.join("assets/app-123.js"), "console.log(1)").unwrap();
    let dir = assets.0.clone();
    let gw = gateway(move |c| c.web.assets = Some(dir)).await;
    let http = reqwest::Client::new();
    let res = http.get(gw.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers().get("x-frame-options").unwrap(), "DENY");
    assert!(
        res.headers()
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-cache");
    let res = http.get(gw.url("/some/client/route")).send().await.unwrap();
    assert_eq!(res.status(), 200, "SPA fallback");
    assert!(res.text().await.unwrap().contains("<title>guacr"));
    let res = http.get(gw.url("/assets/app-123.js")).send().await.unwrap();
    assert!(
        res.headers()
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let res = http.get(gw.url("/embed/x")).send().await.unwrap();
    assert!(
        res.headers().get("x-frame-options").is_none(),
        "embed routes may be framed"
    );
    let res = http.get(gw.url("/api/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
    gw.stop().await;
}

#[test]
fn cli_token_create_prints_a_verifiable_token() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guacr"))
        .args([
            "token",
            "create",
            "--connection",
            "42",
            "--ttl",
            "120",
            "--sub",
            "portal",
        ])
        .env("GUACR_TOKEN_SECRET", "cli-secret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = guacr_web::token::verify(b"cli-secret", token.trim()).unwrap();
    assert_eq!(claims.connection.as_deref(), Some("42"));
    assert_eq!(claims.sub.as_deref(), Some("portal"));
    assert!(claims.exp <= guacr_web::token::now_secs() + 120);
    assert!(guacr_web::token::verify(b"other", token.trim()).is_err());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guacr"))
        .args(["token", "create", "--connection", "42"])
        .env_remove("GUACR_TOKEN_SECRET")
        .args(["-c", "/dev/null"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "no secret, no token");
}

#[tokio::test]
async fn recordings_api_lists_serves_and_audits_for_admins_only() {
    let rec_dir = temp_dir("recordings");
    let dir = rec_dir.0.clone();
    let gw = gateway(|c| c.web.recordings_dir = Some(dir.clone())).await;
    let frames = "4.size,1.0,2.64,2.32;3.key,5.65307,1.1,3.100;3.key,5.65307,1.0,3.120;\
                  3.key,3.104,1.1,3.130;3.key,3.104,1.0,3.140;4.sync,3.150;";
    std::fs::write(dir.join("session-a"), frames).unwrap();
    std::fs::write(dir.join("enc"), b"GUACRENC1\x00\x01rest").unwrap();
    std::fs::write(dir.join("typescript"), b"[BEGIN TYPESCRIPT]\nx").unwrap();
    std::fs::write(dir.join("typescript.timing"), b"0.1 1\n").unwrap();

    let bob = Browser::logged_in(&gw, "bob", BOB_PW).await;
    assert_eq!(bob.get_json("/api/admin/recordings").await.0, 403);
    assert_eq!(bob.get_json("/api/admin/recordings/session-a").await.0, 403);

    let admin = Browser::logged_in(&gw, "admin", ADMIN_PW).await;
    let (status, list) = admin.get_json("/api/admin/recordings").await;
    assert_eq!(status, 200);
    let mut names: Vec<(String, bool, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["encrypted"].as_bool().unwrap(),
                r["size"].as_u64().unwrap(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("enc".to_owned(), true, 15),
            ("session-a".to_owned(), false, frames.len() as u64)
        ],
        "typescripts and timing files are not recordings"
    );
    let res = admin
        .req(reqwest::Method::GET, "/api/admin/recordings/session-a")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), frames);
    let (status, keys) = admin.get_json("/api/admin/recordings/session-a/keys").await;
    assert_eq!(status, 200);
    let keys = keys["keys"].as_str().unwrap();
    assert!(keys.contains('h'), "key log has the typed key: {keys:?}");
    // Encrypted: refused with a reason; traversal and unknown names: refused.
    let (status, body) = admin.get_json("/api/admin/recordings/enc").await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")));
    assert_eq!(admin.get_json("/api/admin/recordings/.hidden").await.0, 400);
    assert_eq!(
        admin
            .get_json("/api/admin/recordings/..%2F..%2Fetc%2Fpasswd")
            .await
            .0,
        400
    );
    assert_eq!(
        admin.get_json("/api/admin/recordings/typescript").await.0,
        404
    );
    assert_eq!(admin.get_json("/api/admin/recordings/missing").await.0, 404);
    let views = gw.audit("recording.view").await;
    assert_eq!(
        views.len(),
        2,
        "download and key log are audited: {views:?}"
    );
    assert!(views.iter().all(|v| v.username.as_deref() == Some("admin")
        && v.recording_path.as_deref() == Some("session-a")));
    gw.stop().await;
}

/// A user whose password an administrator set with "change at the next
/// login" can log in, but until it picks a new password every API call is
/// 403 `password_change_required` and every tunnel is refused with 771;
/// changing it (to a different one) lifts that.
#[tokio::test]
async fn a_user_who_must_change_the_password_can_do_nothing_else_first() {
    let gw = gateway(|_| {}).await;
    let conn = gw.ssh_connection("carol-box", &[], &[]).await;
    let admin = Browser::logged_in(&gw, "admin", ADMIN_PW).await;
    let res = admin
        .req(reqwest::Method::POST, "/api/admin/users")
        .json(
            &json!({"username": "carol", "password": "first-pass-1", "must_change_password": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let carol_user: Value = res.json().await.unwrap();
    assert_eq!(carol_user["must_change_password"], json!(true));
    let carol_id: i64 = carol_user["id"].as_str().unwrap().parse().unwrap();
    gw.store.grant_user(conn, carol_id).await.unwrap();

    let mut carol = Browser::new(&gw);
    let res = carol.login("carol", "first-pass-1").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["must_change_password"], json!(true));
    carol.csrf = Some(body["csrf"].as_str().unwrap().to_owned());
    let (status, me) = carol.get_json("/api/me").await;
    assert_eq!(
        (status, &me["user"]["must_change_password"]),
        (200, &json!(true))
    );
    let (status, refused) = carol.get_json("/api/connections").await;
    assert_eq!(status, 403);
    assert_eq!(refused["code"], "password_change_required");
    let (mut ws, _) = carol.ws(&gw, &format!("connection={conn}")).await;
    let got = read_to_close(&mut ws).await;
    let errs = errors(&got);
    assert_eq!(errs.len(), 1, "{got}");
    assert_eq!(errs[0].1, 771);
    assert!(errs[0].0.contains("change your password"), "{got}");

    // The same password again is not a change.
    let res = carol
        .send_json(
            reqwest::Method::POST,
            "/api/me/password",
            json!({"current": "first-pass-1", "new": "first-pass-1"}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let res = carol
        .send_json(
            reqwest::Method::POST,
            "/api/me/password",
            json!({"current": "first-pass-1", "new": "carol-own-pass-2"}),
        )
        .await;
    assert_eq!(res.status(), 204);
    let (status, list) = carol.get_json("/api/connections").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["name"], "carol-box");
    assert_eq!(
        carol.get_json("/api/me").await.1["user"]["must_change_password"],
        json!(false)
    );
    let stored = gw.store.user_by_name("carol").await.unwrap().unwrap();
    assert!(!stored.must_change_password);

    // An administrator's reset can ask for it again; without the flag it does not.
    let reset = |flag: bool, pw: &str| json!({"username": "carol", "display_name": "Carol", "password": pw, "must_change_password": flag});
    let res = admin
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/admin/users/{carol_id}"),
            reset(true, "reset-pass-3"),
        )
        .await;
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["must_change_password"], json!(true));
    let mut again = Browser::new(&gw);
    assert_eq!(again.login("carol", "reset-pass-3").await.status(), 200);
    assert_eq!(again.get_json("/api/connections").await.0, 403);
    let res = admin
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/admin/users/{carol_id}"),
            reset(false, "reset-pass-4"),
        )
        .await;
    assert_eq!(res.status(), 200);
    let mut third = Browser::new(&gw);
    assert_eq!(third.login("carol", "reset-pass-4").await.status(), 200);
    assert_eq!(third.get_json("/api/connections").await.0, 200);
    gw.stop().await;
}

/// The current TOTP code of `secret_b32` shifted by `steps` periods.
fn totp_code(secret_b32: &str, steps: i64) -> String {
    let secret = guacr_store::totp::from_base32(secret_b32).expect("base32 secret");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    guacr_store::totp::code_at(&secret, now + steps * guacr_store::totp::STEP, 6)
}

/// A user turns on two-factor authentication from the web (password, QR
/// code, a confirming code), then needs a code to log in (a code is not
/// accepted twice); turning it off needs the password; an administrator
/// can reset it for a lost authenticator. All of it is audited.
#[tokio::test]
async fn totp_enrolment_login_disable_and_admin_reset_over_the_api() {
    let gw = gateway(|_| {}).await;
    let bob = Browser::logged_in(&gw, "bob", BOB_PW).await;
    let post = |path: &str, body: Value| bob.req(reqwest::Method::POST, path).json(&body).send();
    // The password is needed to start.
    let res = post("/api/me/totp", json!({"password": "wrong"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = post("/api/me/totp", json!({"password": BOB_PW}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let e: Value = res.json().await.unwrap();
    let secret = e["secret"].as_str().unwrap().to_owned();
    assert!(e["uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    assert!(e["uri"].as_str().unwrap().contains(&secret));
    assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
    // Not required before it is confirmed.
    assert_eq!(Browser::new(&gw).login("bob", BOB_PW).await.status(), 200);
    // A wrong code is refused, the right one turns it on.
    let right = totp_code(&secret, -1);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let res = post("/api/me/totp/confirm", json!({"code": wrong}))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "invalid_code");
    let res = post("/api/me/totp/confirm", json!({"code": right}))
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        bob.get_json("/api/me").await.1["user"]["totp_enabled"],
        json!(true)
    );

    // Logging in now needs the code, once.
    let mut b2 = Browser::new(&gw);
    let res = b2.login("bob", BOB_PW).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "totp_required");
    let login = |code: String| {
        reqwest::Client::new()
            .post(gw.url("/api/login"))
            .json(&json!({"username": "bob", "password": BOB_PW, "totp": code}))
            .send()
    };
    let next = totp_code(&secret, 1);
    assert_eq!(login(next.clone()).await.unwrap().status(), 200);
    assert_eq!(
        login(next).await.unwrap().status(),
        401,
        "a used code is not accepted again"
    );

    // Turning it off needs the password.
    let del = |pw: &str| {
        bob.req(reqwest::Method::DELETE, "/api/me/totp")
            .json(&json!({"password": pw}))
            .send()
    };
    assert_eq!(del("wrong").await.unwrap().status(), 401);
    assert_eq!(del(BOB_PW).await.unwrap().status(), 204);
    assert_eq!(b2.login("bob", BOB_PW).await.status(), 200);

    // An administrator's reset (bob enrols again first).
    let e: Value = post("/api/me/totp", json!({"password": BOB_PW}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = totp_code(e["secret"].as_str().unwrap(), 0);
    let res = post("/api/me/totp/confirm", json!({"code": code}))
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(Browser::new(&gw).login("bob", BOB_PW).await.status(), 401);
    let bob_id = gw.store.user_by_name("bob").await.unwrap().unwrap().id;
    let path = format!("/api/admin/users/{bob_id}/totp");
    let alice = Browser::logged_in(&gw, "alice", ALICE_PW).await;
    let res = alice
        .req(reqwest::Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "administrators only");
    let admin = Browser::logged_in(&gw, "admin", ADMIN_PW).await;
    let res = admin
        .req(reqwest::Method::DELETE, &path)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(Browser::new(&gw).login("bob", BOB_PW).await.status(), 200);

    let audited = gw.audit("account.totp").await;
    assert_eq!(audited.len(), 3, "enabled, disabled, enabled");
    assert!(
        gw.audit("admin.change")
            .await
            .iter()
            .any(|e| e.detail.as_deref() == Some("two-factor of user bob reset"))
    );
    gw.stop().await;
}

/// Another web front end on the same daemon and database (a second
/// instance of a fleet, or the same one after a restart).
async fn another_instance(gw: &Gw) -> (String, tokio::sync::watch::Sender<bool>) {
    let mut cfg = guacr::Config::default();
    cfg.web.bind = "127.0.0.1:0".into();
    cfg.web.assets = None;
    cfg.web.token_secret = Some("test-token-secret".into());
    cfg.web.session_revalidate_seconds = 0;
    let web = guacr::web::bind(&cfg, gw.d.state.clone(), gw.store.clone())
        .await
        .expect("web bind");
    let base = format!("http://{}", web.local_addr().unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(web.run(rx));
    (base, stop)
}

/// Login sessions live in the database: another instance on it accepts the
/// cookie, a restart keeps the login, and a logout on one instance ends it
/// everywhere. The database holds the SHA-256 of the cookie, not the cookie.
#[tokio::test]
async fn login_sessions_are_shared_by_instances_and_survive_a_restart() {
    let gw = gateway(|c| c.web.session_revalidate_seconds = 0).await;
    let (b_base, b_stop) = another_instance(&gw).await;
    let alice = Browser::logged_in(&gw, "alice", ALICE_PW).await;
    let cookie = alice.cookie.clone().unwrap();
    let on = |base: &str| Browser {
        http: reqwest::Client::new(),
        base: base.to_owned(),
        cookie: alice.cookie.clone(),
        csrf: alice.csrf.clone(),
    };
    let b = on(&b_base);
    let (status, me) = b.get_json("/api/me").await;
    assert_eq!(status, 200, "the second instance knows the login");
    assert_eq!(me["user"]["username"], "alice");
    assert_eq!(me["csrf"].as_str(), alice.csrf.as_deref());
    assert_eq!(b.get_json("/api/connections").await.0, 200);

    use sha2::Digest;
    let hash: String = sha2::Sha256::digest(cookie.as_bytes())
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    assert!(gw.store.web_session_get(&hash).await.unwrap().is_some());
    assert!(
        gw.store.web_session_get(&cookie).await.unwrap().is_none(),
        "the cookie itself is not stored"
    );

    // The first instance goes away; a new one (a restart) keeps the login.
    let _ = gw.stop.send(true);
    let (c_base, c_stop) = another_instance(&gw).await;
    let c = on(&c_base);
    assert_eq!(
        c.get_json("/api/me").await.0,
        200,
        "a restart keeps the login"
    );

    // Logging out on one instance ends the login on the others.
    let res = b
        .req(reqwest::Method::POST, "/api/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(c.get_json("/api/me").await.0, 401);
    assert!(gw.store.web_session_get(&hash).await.unwrap().is_none());
    let _ = b_stop.send(true);
    let _ = c_stop.send(true);
    gw.stop().await;
}

/// Changing one's password signs out one's other sessions (on every
/// instance), not the one that changed it; an administrator's password
/// reset or disabling an account signs that user out everywhere.
#[tokio::test]
async fn a_password_change_or_reset_ends_the_other_sessions() {
    let gw = gateway(|c| c.web.session_revalidate_seconds = 0).await;
    let (b_base, b_stop) = another_instance(&gw).await;
    let here = Browser::logged_in(&gw, "alice", ALICE_PW).await;
    let other = Browser::logged_in(&gw, "alice", ALICE_PW).await;
    let other_on_b = Browser {
        http: reqwest::Client::new(),
        base: b_base.clone(),
        cookie: other.cookie.clone(),
        csrf: other.csrf.clone(),
    };
    assert_eq!(other_on_b.get_json("/api/me").await.0, 200);
    let res = here
        .req(reqwest::Method::POST, "/api/me/password")
        .json(&json!({"current": ALICE_PW, "new": "alice-new-pass-9"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        here.get_json("/api/me").await.0,
        200,
        "the changer stays in"
    );
    assert_eq!(
        other.get_json("/api/me").await.0,
        401,
        "the other session ended"
    );
    assert_eq!(
        other_on_b.get_json("/api/me").await.0,
        401,
        "on every instance"
    );

    // An administrator resets bob's password: bob is signed out.
    let bob = Browser::logged_in(&gw, "bob", BOB_PW).await;
    let admin = Browser::logged_in(&gw, "admin", ADMIN_PW).await;
    let bob_id = gw.store.user_by_name("bob").await.unwrap().unwrap().id;
    let res = admin
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/admin/users/{bob_id}"),
            json!({"username": "bob", "display_name": "Bob", "password": "bob-reset-pass-1"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(bob.get_json("/api/me").await.0, 401);
    // An edit without a password leaves sessions alone; disabling ends them.
    let bob = Browser::logged_in(&gw, "bob", "bob-reset-pass-1").await;
    let edit = |disabled: bool| {
        admin
            .req(reqwest::Method::PUT, &format!("/api/admin/users/{bob_id}"))
            .json(&json!({"username": "bob", "display_name": "Bobby", "disabled": disabled}))
            .send()
    };
    assert_eq!(edit(false).await.unwrap().status(), 200);
    assert_eq!(bob.get_json("/api/me").await.0, 200);
    assert_eq!(edit(true).await.unwrap().status(), 200);
    assert_eq!(bob.get_json("/api/me").await.0, 401);
    assert_eq!(admin.get_json("/api/me").await.0, 200);
    let _ = b_stop.send(true);
    gw.stop().await;
}
