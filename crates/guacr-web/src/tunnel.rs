//! The Guacamole tunnels: `Guacamole.WebSocketTunnel` (subprotocol
//! `guacamole`) and `Guacamole.HTTPTunnel`. The server authorises the
//! connect data, performs the Guacamole handshake itself through the
//! [`Gateway`](crate::Gateway) and relays whole instructions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use guacr_protocol::handshake::ClientInfo;
use guacr_protocol::{InstructionWriter, Parser, Status};

use crate::api::{Authed, current_user};
use crate::gateway::{OpenTunnel, Target};
use crate::stream::{Counters, TunnelPeer};
use crate::{App, AuditEvent, lock};

/// One tunnel with a live (or starting) session, for sharing, the admin
/// list and the audit record at its end.
#[derive(Debug)]
pub struct LiveTunnel {
    pub uuid: String,
    /// Whether this tunnel started the session (not a join or share).
    pub owner: bool,
    pub user_id: String,
    pub username: String,
    pub connection_id: String,
    pub connection_name: String,
    pub protocol: String,
    pub remote_addr: String,
    pub started: Instant,
    pub started_wall: SystemTime,
    pub recording_path: String,
    /// Transport and codec for the audit events (`transport=webrtc codec=h264`).
    pub detail: String,
    session: Mutex<Option<String>>,
    counters: Mutex<Option<Arc<Counters>>>,
}

impl LiveTunnel {
    pub fn session_id(&self) -> Option<String> {
        lock(&self.session).clone()
    }
}

/// A share link.
#[derive(Debug, Clone)]
pub struct Share {
    pub session_id: String,
    pub read_only: bool,
    pub expires: SystemTime,
    pub created_by: String,
}

/// An HTTP tunnel between requests.
pub struct HttpTunnel {
    token: String,
    to_core: tokio::sync::mpsc::Sender<Bytes>,
    from_core: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Bytes>>>,
    closed: AtomicBool,
}

/// A refused tunnel: sent as `error` + `disconnect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: Status,
    pub message: String,
}

fn refuse(status: Status, message: &str) -> Refusal {
    Refusal {
        status,
        message: message.to_owned(),
    }
}

/// What the connect data asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Connection(String),
    Join { id: String, read_only: bool },
    Share(String),
    Token(String),
}

/// Parsed connect data (query string or HTTP tunnel `connect` body).
#[derive(Debug, Clone)]
pub struct ConnectData {
    pub ask: Ask,
    pub client: ClientInfo,
}

/// Parses the connect data. Exactly one of `connection`, `join`, `share`, `token`.
pub fn parse_connect(data: &str) -> Result<ConnectData, Refusal> {
    let mut client = ClientInfo::default();
    let mut asks = Vec::new();
    let mut read_only = false;
    for (k, v) in url::form_urlencoded::parse(data.as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "connection" => asks.push(Ask::Connection(v)),
            "join" => asks.push(Ask::Join {
                id: v,
                read_only: false,
            }),
            "share" => asks.push(Ask::Share(v)),
            "token" => asks.push(Ask::Token(v)),
            "read_only" => read_only = v == "1" || v == "true",
            "width" => client.width = dim(&v, client.width, 16384),
            "height" => client.height = dim(&v, client.height, 16384),
            "dpi" => client.dpi = dim(&v, client.dpi, 1200),
            "timezone" if v.len() <= 64 => client.timezone = Some(v),
            "audio" if client.audio_mimetypes.len() < 16 && v.len() <= 64 => {
                client.audio_mimetypes.push(v)
            }
            "video" if client.video_mimetypes.len() < 16 && v.len() <= 64 => {
                client.video_mimetypes.push(v)
            }
            "image" if client.image_mimetypes.len() < 16 && v.len() <= 64 => {
                client.image_mimetypes.push(v)
            }
            _ => {}
        }
    }
    if asks.len() != 1 {
        return Err(refuse(
            Status::ClientBadRequest,
            "The tunnel needs exactly one of connection, join, share or token.",
        ));
    }
    let mut ask = asks.remove(0);
    if let Ask::Join { read_only: r, .. } = &mut ask {
        *r = read_only;
    }
    Ok(ConnectData { ask, client })
}

fn dim(v: &str, default: u32, max: u32) -> u32 {
    match v.trim().parse::<u32>() {
        Ok(n) if n > 0 => n.min(max),
        _ => default,
    }
}

/// A connect request resolved to a target the caller may use.
pub struct Resolved {
    pub target: Target,
    pub params: Vec<(String, String)>,
    pub read_only: bool,
    pub owner: bool,
    pub user_id: String,
    pub username: String,
    pub connection_id: String,
    pub connection_name: String,
    pub protocol: String,
}

/// Whether a browser request comes from our own origin (no `Origin`, or
/// one whose host matches `Host`). Cookie-authorised tunnels need it
/// (cross-site WebSocket hijacking).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin)
        .trim_end_matches('/');
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

async fn audit_refusal(app: &App, kind: &str, addr: SocketAddr, who: &str, detail: &str) {
    let mut ev = AuditEvent::new(kind);
    ev.username = who.to_owned();
    ev.remote_addr = addr.ip().to_string();
    ev.detail = detail.to_owned();
    app.audit(ev).await;
}

/// Checks that the caller may open what the connect data asks for.
pub async fn resolve(
    app: &App,
    user: Option<Authed>,
    same_origin: bool,
    data: &ConnectData,
    addr: SocketAddr,
) -> Result<Resolved, Refusal> {
    if app.gateway.is_shutting_down() {
        return Err(refuse(Status::ServerBusy, "The server is shutting down."));
    }
    let logged_in = |user: Option<Authed>| -> Result<Authed, Refusal> {
        match user {
            Some(a) if a.user.must_change_password => Err(refuse(
                Status::ClientForbidden,
                "You must change your password before you connect.",
            )),
            Some(a) if same_origin => Ok(a),
            Some(_) => Err(refuse(
                Status::ClientForbidden,
                "Cross-site tunnel requests are not allowed.",
            )),
            None => Err(refuse(
                Status::ClientUnauthorized,
                "You are not logged in (or your session has expired).",
            )),
        }
    };
    match &data.ask {
        Ask::Connection(id) => {
            let a = logged_in(user)?;
            let allowed = app.dir.may_use(&a.user, id).await.unwrap_or(false);
            let conn = if allowed {
                app.dir.connection(id).await.ok().flatten()
            } else {
                None
            };
            let Some(conn) = conn else {
                audit_refusal(
                    app,
                    "access.denied",
                    addr,
                    &a.user.username,
                    &format!("connection {id:?}"),
                )
                .await;
                // Same answer whether it exists or not: no probing of ids.
                return Err(refuse(
                    Status::ClientForbidden,
                    "You do not have access to this connection.",
                ));
            };
            Ok(Resolved {
                target: Target::Protocol(conn.protocol.clone()),
                params: conn.params.into_iter().collect(),
                read_only: false,
                owner: true,
                user_id: a.user.id,
                username: a.user.username,
                connection_id: conn.id,
                connection_name: conn.name,
                protocol: conn.protocol,
            })
        }
        Ask::Join { id, read_only } => {
            let a = logged_in(user)?;
            if !a.user.admin {
                audit_refusal(
                    app,
                    "access.denied",
                    addr,
                    &a.user.username,
                    &format!("join {id:?}"),
                )
                .await;
                return Err(refuse(
                    Status::ClientForbidden,
                    "Only administrators may join live sessions.",
                ));
            }
            let Some(s) = app.gateway.sessions().into_iter().find(|s| &s.id == id) else {
                return Err(refuse(Status::ResourceNotFound, "No such live session."));
            };
            Ok(Resolved {
                target: Target::Join(s.id.clone()),
                params: Vec::new(),
                read_only: *read_only,
                owner: false,
                user_id: a.user.id,
                username: a.user.username,
                connection_id: String::new(),
                connection_name: String::new(),
                protocol: s.protocol,
            })
        }
        Ask::Share(token) => {
            let share = lock(&app.shares).get(token).cloned();
            let Some(share) = share.filter(|s| s.expires > SystemTime::now()) else {
                audit_refusal(
                    app,
                    "token.refused",
                    addr,
                    "",
                    "share link unknown or expired",
                )
                .await;
                return Err(refuse(
                    Status::ClientUnauthorized,
                    "The share link is not valid or has expired.",
                ));
            };
            let Some(s) = app
                .gateway
                .sessions()
                .into_iter()
                .find(|s| s.id == share.session_id)
            else {
                return Err(refuse(
                    Status::ResourceNotFound,
                    "The shared session has ended.",
                ));
            };
            Ok(Resolved {
                target: Target::Join(s.id),
                params: Vec::new(),
                read_only: share.read_only,
                owner: false,
                user_id: String::new(),
                username: format!("share of {}", share.created_by),
                connection_id: String::new(),
                connection_name: String::new(),
                protocol: s.protocol,
            })
        }
        Ask::Token(jwt) => {
            let Some(secret) = &app.opts.token_secret else {
                audit_refusal(app, "token.refused", addr, "", "tokens are not enabled").await;
                return Err(refuse(
                    Status::ClientUnauthorized,
                    "Connection tokens are not enabled on this server.",
                ));
            };
            let claims = match crate::token::verify(secret, jwt) {
                Ok(c) => c,
                Err(e) => {
                    audit_refusal(app, "token.refused", addr, "", e.message()).await;
                    return Err(refuse(Status::ClientUnauthorized, e.message()));
                }
            };
            let who = claims.sub.clone().unwrap_or_else(|| "token".to_owned());
            let read_only = claims.read_only.unwrap_or(false);
            if let Some(id) = &claims.connection {
                let Some(conn) = app.dir.connection(id).await.ok().flatten() else {
                    return Err(refuse(
                        Status::ResourceNotFound,
                        "The connection of this link no longer exists.",
                    ));
                };
                return Ok(Resolved {
                    target: Target::Protocol(conn.protocol.clone()),
                    params: conn.params.into_iter().collect(),
                    read_only,
                    owner: true,
                    user_id: String::new(),
                    username: who,
                    connection_id: conn.id,
                    connection_name: conn.name,
                    protocol: conn.protocol,
                });
            }
            let protocol = claims.protocol.unwrap_or_default();
            Ok(Resolved {
                target: Target::Protocol(protocol.clone()),
                params: claims.params.unwrap_or_default().into_iter().collect(),
                read_only,
                owner: true,
                user_id: String::new(),
                username: who,
                connection_id: String::new(),
                connection_name: String::new(),
                protocol,
            })
        }
    }
}

/// `error` + `disconnect`.
pub fn error_instruction(message: &str, status: Status) -> String {
    let mut buf = Vec::new();
    guacr_protocol::handshake::write_error(&mut buf, message, status);
    InstructionWriter::new(&mut buf, "disconnect").finish();
    String::from_utf8_lossy(&buf).into_owned()
}

/// Starts the session behind a tunnel: registers it, runs the gateway in
/// its own task, and writes the audit records. `detail` names the transport
/// and codec in them; `ready` learns the session id once it exists.
pub(crate) fn start(
    app: &Arc<App>,
    uuid: &str,
    r: Resolved,
    client: ClientInfo,
    addr: SocketAddr,
    detail: String,
    ready: Option<tokio::sync::oneshot::Sender<crate::gateway::ReadySession>>,
) -> TunnelPeer {
    let (stream, peer) = crate::stream::pair(64);
    let recording_path = r
        .params
        .iter()
        .find(|(k, _)| k == "recording-path")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let live = Arc::new(LiveTunnel {
        uuid: uuid.to_owned(),
        owner: r.owner,
        user_id: r.user_id.clone(),
        username: r.username.clone(),
        connection_id: r.connection_id.clone(),
        connection_name: r.connection_name.clone(),
        protocol: r.protocol.clone(),
        remote_addr: addr.ip().to_string(),
        started: Instant::now(),
        started_wall: SystemTime::now(),
        recording_path,
        detail,
        session: Mutex::new(None),
        counters: Mutex::new(Some(peer.counters.clone())),
    });
    lock(&app.tunnels).insert(uuid.to_owned(), live.clone());
    let ready_live = live.clone();
    let ready_app = app.clone();
    let on_ready = Box::new(move |r: crate::gateway::ReadySession| {
        let session_id = r.session_id.clone();
        *lock(&ready_live.session) = Some(session_id.clone());
        let mut ev = AuditEvent::new(if ready_live.owner {
            "session.start"
        } else {
            "session.join"
        });
        fill(&mut ev, &ready_live);
        ev.session_id = session_id.clone();
        if let Some(tx) = ready {
            let _ = tx.send(r);
        }
        tokio::spawn(async move { ready_app.audit(ev).await });
    });
    let open = OpenTunnel {
        target: r.target,
        client,
        params: r.params,
        read_only: r.read_only,
        remote_addr: addr,
        on_ready,
    };
    let fut = app.gateway.open(open, stream);
    let app = app.clone();
    let uuid = uuid.to_owned();
    tokio::spawn(async move {
        fut.await;
        lock(&app.tunnels).remove(&uuid);
        lock(&app.http_tunnels).remove(&uuid);
        if let Some(session_id) = live.session_id() {
            let mut ev = AuditEvent::new(if live.owner {
                "session.end"
            } else {
                "session.leave"
            });
            fill(&mut ev, &live);
            ev.session_id = session_id;
            if let Some(c) = lock(&live.counters).take() {
                (ev.bytes_in, ev.bytes_out) = c.get();
            }
            ev.duration_ms = live.started.elapsed().as_millis() as u64;
            ev.recording_path = live.recording_path.clone();
            app.audit(ev).await;
        }
    });
    peer
}

fn fill(ev: &mut AuditEvent, t: &LiveTunnel) {
    ev.username = t.username.clone();
    ev.remote_addr = t.remote_addr.clone();
    ev.connection_id = t.connection_id.clone();
    ev.connection_name = t.connection_name.clone();
    ev.protocol = t.protocol.clone();
    ev.detail = t.detail.clone();
}

/// Splits what the browser sent into instructions for the core and answers
/// to internal (empty-opcode) instructions (`ping` is echoed).
pub(crate) struct Inbound {
    buf: Vec<u8>,
    parser: Parser,
}

pub(crate) struct Split {
    pub(crate) forward: Vec<u8>,
    pub(crate) replies: Vec<String>,
}

impl Inbound {
    pub(crate) fn new(max: usize) -> Self {
        Inbound {
            buf: Vec::new(),
            parser: Parser::with_limit(max.max(8192)),
        }
    }

    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<Split, String> {
        self.buf.extend_from_slice(data);
        let mut out = Split {
            forward: Vec::with_capacity(data.len()),
            replies: Vec::new(),
        };
        let mut pos = 0;
        while pos < self.buf.len() {
            let (internal, used) = match self.parser.parse(&self.buf[pos..]) {
                Ok(Some((ins, used))) => {
                    let internal = if ins.opcode().is_empty() {
                        Some(ins.arg(0) == Some("ping"))
                    } else {
                        None
                    };
                    (internal, used)
                }
                Ok(None) => break,
                Err(e) => {
                    self.parser.reset();
                    return Err(e.to_string());
                }
            };
            let raw = &self.buf[pos..pos + used];
            match internal {
                None => out.forward.extend_from_slice(raw),
                Some(true) => out.replies.push(String::from_utf8_lossy(raw).into_owned()),
                Some(false) => {}
            }
            pos += used;
        }
        self.buf.drain(..pos);
        Ok(out)
    }
}

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/tunnel/websocket", get(websocket))
        .route("/websocket-tunnel", get(websocket))
        .route("/tunnel/http", get(http_get).post(http_post))
}

async fn websocket(
    ws: WebSocketUpgrade,
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let user = current_user(&app, &headers).await;
    let same = same_origin(&headers);
    let max = app.opts.max_message_bytes;
    ws.protocols(["guacamole"])
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            ws_session(socket, app, user, same, query.unwrap_or_default(), addr)
        })
}

async fn ws_send(socket: &mut WebSocket, text: String) -> bool {
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn ws_close(socket: &mut WebSocket) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}

async fn ws_session(
    mut socket: WebSocket,
    app: Arc<App>,
    user: Option<Authed>,
    same: bool,
    query: String,
    addr: SocketAddr,
) {
    let uuid = uuid::Uuid::new_v4().to_string();
    if !ws_send(&mut socket, format!("0.,36.{uuid};")).await {
        return;
    }
    let resolved = match parse_connect(&query) {
        Ok(data) => resolve(&app, user, same, &data, addr)
            .await
            .map(|r| (r, data.client)),
        Err(e) => Err(e),
    };
    let (r, client) = match resolved {
        Ok(x) => x,
        Err(refusal) => {
            tracing::info!(peer = %addr, status = refusal.status.code(), "tunnel refused: {}", refusal.message);
            let _ = ws_send(
                &mut socket,
                error_instruction(&refusal.message, refusal.status),
            )
            .await;
            ws_close(&mut socket).await;
            return;
        }
    };
    let TunnelPeer {
        to_core,
        mut from_core,
        counters: _,
    } = start(
        &app,
        &uuid,
        r,
        client,
        addr,
        "transport=websocket codec=none".into(),
        None,
    );
    let mut to_core = Some(to_core);
    let mut inbound = Inbound::new(app.opts.max_message_bytes);
    loop {
        tokio::select! {
            msg = socket.recv(), if to_core.is_some() => {
                let data: Bytes = match msg {
                    Some(Ok(Message::Text(t))) => Bytes::copy_from_slice(t.as_str().as_bytes()),
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        tracing::info!(peer = %addr, "tunnel read failed: {e}");
                        let msg = format!("Tunnel message refused: {e}");
                        let _ = ws_send(&mut socket, error_instruction(&msg, Status::ClientBadRequest)).await;
                        ws_close(&mut socket).await;
                        break;
                    }
                };
                match inbound.feed(&data) {
                    Ok(split) => {
                        for r in split.replies {
                            if !ws_send(&mut socket, r).await {
                                break;
                            }
                        }
                        if !split.forward.is_empty()
                            && let Some(tx) = &to_core
                            && tx.send(Bytes::from(split.forward)).await.is_err()
                        {
                            to_core = None;
                        }
                    }
                    Err(e) => {
                        tracing::info!(peer = %addr, "malformed tunnel message: {e}");
                        let msg = format!("Malformed instruction: {e}");
                        let _ = ws_send(&mut socket, error_instruction(&msg, Status::ClientBadRequest)).await;
                        ws_close(&mut socket).await;
                        break;
                    }
                }
            }
            out = from_core.recv() => match out {
                Some(b) => {
                    let text = match String::from_utf8(b.to_vec()) {
                        Ok(s) => s,
                        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                    };
                    if !ws_send(&mut socket, text).await {
                        break;
                    }
                }
                None => {
                    ws_close(&mut socket).await;
                    break;
                }
            },
        }
    }
    // Dropping our ends lets the core see the end of the stream.
}

fn guac_error(status: StatusCode, guac: Status, message: &str) -> Response {
    let mut res = (status, message.to_owned()).into_response();
    guac_headers(res.headers_mut(), guac, message);
    res
}

/// `Guacamole-Status-Code` and `Guacamole-Error-Message` (what gcjs reads
/// from a refused HTTP request).
pub(crate) fn guac_headers(h: &mut HeaderMap, guac: Status, message: &str) {
    h.insert(
        "Guacamole-Status-Code",
        HeaderValue::from_str(&guac.code().to_string()).unwrap_or(HeaderValue::from_static("512")),
    );
    // Header values must be visible ASCII.
    let ascii: String = message
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&ascii) {
        h.insert("Guacamole-Error-Message", v);
    }
}

pub(crate) fn http_status_for(s: Status) -> StatusCode {
    match s {
        Status::ClientUnauthorized => StatusCode::UNAUTHORIZED,
        Status::ClientForbidden => StatusCode::FORBIDDEN,
        Status::ResourceNotFound => StatusCode::NOT_FOUND,
        Status::ServerBusy | Status::ClientTooMany => StatusCode::TOO_MANY_REQUESTS,
        Status::ClientBadRequest => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn http_tunnel(app: &App, uuid: &str, headers: &HeaderMap) -> Result<Arc<HttpTunnel>, Response> {
    let t = lock(&app.http_tunnels).get(uuid).cloned();
    let Some(t) = t.filter(|t| !t.closed.load(Ordering::Relaxed)) else {
        return Err(guac_error(
            StatusCode::NOT_FOUND,
            Status::ResourceNotFound,
            "No such tunnel.",
        ));
    };
    let token = headers
        .get("Guacamole-Tunnel-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !crate::token::ct_eq(token.as_bytes(), t.token.as_bytes()) {
        return Err(guac_error(
            StatusCode::FORBIDDEN,
            Status::ClientForbidden,
            "Wrong tunnel token.",
        ));
    }
    Ok(t)
}

async fn http_post(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    if body.len() > app.opts.max_message_bytes {
        return guac_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            Status::ClientOverrun,
            "Tunnel message too large.",
        );
    }
    if query == "connect" {
        let data = String::from_utf8_lossy(&body);
        let user = current_user(&app, &headers).await;
        let same = same_origin(&headers);
        let resolved = match parse_connect(&data) {
            Ok(d) => resolve(&app, user, same, &d, addr)
                .await
                .map(|r| (r, d.client)),
            Err(e) => Err(e),
        };
        return match resolved {
            Ok((r, client)) => {
                let uuid = uuid::Uuid::new_v4().to_string();
                let peer = start(
                    &app,
                    &uuid,
                    r,
                    client,
                    addr,
                    "transport=http codec=none".into(),
                    None,
                );
                let token = crate::random_token();
                lock(&app.http_tunnels).insert(
                    uuid.clone(),
                    Arc::new(HttpTunnel {
                        token: token.clone(),
                        to_core: peer.to_core,
                        from_core: Arc::new(tokio::sync::Mutex::new(peer.from_core)),
                        closed: AtomicBool::new(false),
                    }),
                );
                let mut res = uuid.into_response();
                if let Ok(v) = HeaderValue::from_str(&token) {
                    res.headers_mut().insert("Guacamole-Tunnel-Token", v);
                }
                res
            }
            Err(r) => guac_error(http_status_for(r.status), r.status, &r.message),
        };
    }
    let Some(uuid) = query.strip_prefix("write:") else {
        return guac_error(
            StatusCode::BAD_REQUEST,
            Status::ClientBadRequest,
            "Unknown tunnel request.",
        );
    };
    let t = match http_tunnel(&app, uuid, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut inbound = Inbound::new(app.opts.max_message_bytes);
    match inbound.feed(&body) {
        Ok(split) if inbound.buf.is_empty() => {
            if !split.forward.is_empty()
                && t.to_core.send(Bytes::from(split.forward)).await.is_err()
            {
                return guac_error(
                    StatusCode::NOT_FOUND,
                    Status::ResourceNotFound,
                    "The tunnel is closed.",
                );
            }
            StatusCode::OK.into_response()
        }
        other => {
            let e = match other {
                Err(e) => e,
                Ok(_) => "incomplete instruction".to_owned(),
            };
            // A broken stream cannot be resynchronised: end the tunnel.
            t.closed.store(true, Ordering::Relaxed);
            lock(&app.http_tunnels).remove(uuid);
            guac_error(
                StatusCode::BAD_REQUEST,
                Status::ClientBadRequest,
                &format!("Malformed instruction: {e}"),
            )
        }
    }
}

/// Bytes a single read response carries before it ends with `0.;` (the
/// client has the next read request waiting already).
const READ_RESPONSE_BYTES: usize = 512 * 1024;

async fn http_get(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let Some(rest) = query.strip_prefix("read:") else {
        return guac_error(
            StatusCode::BAD_REQUEST,
            Status::ClientBadRequest,
            "Unknown tunnel request.",
        );
    };
    let uuid = rest.split(':').next().unwrap_or("");
    let t = match http_tunnel(&app, uuid, &headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let rx = t.from_core.clone().lock_owned().await;
    let stream =
        futures_util::stream::unfold((rx, 0usize, false), |(mut rx, sent, done)| async move {
            if done {
                return None;
            }
            if sent >= READ_RESPONSE_BYTES {
                return Some((
                    Ok::<Bytes, std::io::Error>(Bytes::from_static(b"0.;")),
                    (rx, sent, true),
                ));
            }
            match rx.recv().await {
                Some(b) => {
                    let n = b.len();
                    Some((Ok(b), (rx, sent + n, false)))
                }
                None => Some((Ok(Bytes::from_static(b"0.;")), (rx, sent, true))),
            }
        });
    let mut res = Body::from_stream(stream).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_filters_internal_instructions() {
        let mut i = Inbound::new(1 << 20);
        let s = i
            .feed(b"0.,4.ping,7.1234567;4.sync,3.123;0.,3.foo;")
            .unwrap();
        assert_eq!(s.replies, vec!["0.,4.ping,7.1234567;".to_owned()]);
        assert_eq!(s.forward, b"4.sync,3.123;");
        // Split across messages.
        let s = i.feed(b"3.key,2.9").unwrap();
        assert!(s.forward.is_empty());
        let s = i.feed(b"7,1.1;").unwrap();
        assert_eq!(s.forward, b"3.key,2.97,1.1;");
        assert!(i.feed(b"4.sync,abc;").is_err());
    }

    #[test]
    fn connect_data() {
        let d = parse_connect("connection=5&width=1280&height=99999&dpi=x&audio=audio/L16&image=image/png&image=image/jpeg&timezone=Europe%2FParis").unwrap();
        assert_eq!(d.ask, Ask::Connection("5".into()));
        assert_eq!(
            (d.client.width, d.client.height, d.client.dpi),
            (1280, 16384, 96)
        );
        assert_eq!(d.client.image_mimetypes, vec!["image/png", "image/jpeg"]);
        assert_eq!(d.client.timezone.as_deref(), Some("Europe/Paris"));
        let d = parse_connect("join=%24abc&read_only=1").unwrap();
        assert_eq!(
            d.ask,
            Ask::Join {
                id: "$abc".into(),
                read_only: true
            }
        );
        assert!(parse_connect("").is_err());
        assert!(parse_connect("connection=1&share=2").is_err());
    }

    #[test]
    fn origin_check() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, HeaderValue::from_static("gw.example:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://gw.example:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
    }
}
