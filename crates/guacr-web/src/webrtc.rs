//! The WebRTC tunnel (`/tunnel/webrtc`, docs/web-api.md): the browser posts
//! its SDP offer with the same connect data the WebSocket tunnel takes,
//! authorised by the same [`resolve`](crate::tunnel::resolve); the answer
//! comes back with the tunnel uuid. Guacamole instructions then travel on
//! the `guacamole` data channel into the same session core, and a graphical
//! session's screen travels as H.264 on a video track
//! ([`guacr_webrtc`]); while it does, this browser's copy of the
//! instruction stream loses the drawing of layer 0 (the video shows it).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use guacr_protocol::{InstructionRef, Parser, Status};
use guacr_webrtc::{PeerConfig, PeerEvent, PeerHandle, VideoSettings};
use serde_json::json;

use crate::App;
use crate::api::current_user;
use crate::gateway::ReadySession;
use crate::stream::TunnelPeer;
use crate::tunnel::{
    Ask, Inbound, error_instruction, guac_headers, http_status_for, parse_connect, resolve,
};

/// Largest data-channel message built from several instructions (one
/// instruction larger than this still goes whole).
const MAX_MESSAGE: usize = 64 * 1024;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/tunnel/webrtc", get(info).post(offer))
}

/// What the browser needs to build its `RTCPeerConnection`.
async fn info(State(app): State<Arc<App>>) -> Response {
    let w = &app.opts.webrtc;
    Json(json!({
        "enabled": w.enabled,
        "video": w.enabled && w.video,
        "ice_servers": w.ice_servers,
    }))
    .into_response()
}

/// A refusal: HTTP status, `Guacamole-Status-Code`/`-Error-Message`, and
/// `{"error", "code"}`.
fn refusal(http: StatusCode, guac: Status, code: &str, message: &str) -> Response {
    let mut res = (http, Json(json!({"error": message, "code": code}))).into_response();
    guac_headers(res.headers_mut(), guac, message);
    res
}

fn code_for(s: Status) -> &'static str {
    match s {
        Status::ClientUnauthorized => "unauthenticated",
        Status::ClientForbidden => "forbidden",
        Status::ResourceNotFound => "not_found",
        Status::ClientBadRequest => "invalid",
        Status::ServerBusy | Status::ClientTooMany => "throttled",
        _ => "internal",
    }
}

#[derive(serde::Deserialize)]
struct OfferBody {
    connect: String,
    offer: String,
}

async fn offer(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let w = app.opts.webrtc.clone();
    if !w.enabled {
        return refusal(
            StatusCode::NOT_FOUND,
            Status::Unsupported,
            "not_found",
            "WebRTC is disabled on this server.",
        );
    }
    let bad = |m: &str| {
        refusal(
            StatusCode::BAD_REQUEST,
            Status::ClientBadRequest,
            "invalid",
            m,
        )
    };
    let body: OfferBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return bad(&format!(
                "The body must be JSON {{\"connect\": \"…\", \"offer\": \"<SDP>\"}}: {e}"
            ));
        }
    };
    let data = match parse_connect(&body.connect) {
        Ok(d) => d,
        Err(r) => {
            return refusal(
                http_status_for(r.status),
                r.status,
                code_for(r.status),
                &r.message,
            );
        }
    };
    let user = current_user(&app, &headers).await;
    // Cookie-authorised tunnels are state-changing POSTs of a logged-in
    // user: like the API, they need the CSRF header.
    if matches!(data.ask, Ask::Connection(_) | Ask::Join { .. })
        && let Some(a) = &user
    {
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !crate::token::ct_eq(given.as_bytes(), a.csrf.as_bytes()) {
            let mut ev = crate::AuditEvent::new("csrf.refused");
            ev.username = a.user.username.clone();
            ev.remote_addr = addr.ip().to_string();
            ev.detail = "WebRTC tunnel without a valid X-CSRF-Token".into();
            app.audit(ev).await;
            return refusal(
                StatusCode::FORBIDDEN,
                Status::ClientForbidden,
                "csrf",
                "Missing or invalid CSRF token; reload the page.",
            );
        }
    }
    let same = crate::tunnel::same_origin(&headers);
    let r = match resolve(&app, user, same, &data, addr).await {
        Ok(r) => r,
        Err(r) => {
            tracing::info!(peer = %addr, status = r.status.code(), "WebRTC tunnel refused: {}", r.message);
            return refusal(
                http_status_for(r.status),
                r.status,
                code_for(r.status),
                &r.message,
            );
        }
    };
    let graphical = app.gateway.is_graphical(&r.protocol);
    let cfg = PeerConfig {
        addresses: if w.addresses.is_empty() {
            guacr_webrtc::default_addresses()
        } else {
            w.addresses.clone()
        },
        video: (w.video && graphical).then(|| VideoSettings {
            max_bitrate: w.max_bitrate,
            max_fps: w.max_fps,
            encoder: w.encoder.clone(),
        }),
        ..PeerConfig::default()
    };
    let accepted = match guacr_webrtc::accept(&body.offer, &cfg) {
        Ok(a) => a,
        Err(e @ guacr_webrtc::PeerError::BadOffer(_)) => return bad(&e.to_string()),
        Err(e) => {
            tracing::error!(peer = %addr, "WebRTC setup failed: {e}");
            return refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                Status::ServerError,
                "internal",
                "The server could not set up WebRTC.",
            );
        }
    };
    let video = accepted.video.is_some();
    let uuid = uuid::Uuid::new_v4().to_string();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let detail = format!(
        "transport=webrtc codec={}",
        if video { "h264" } else { "none" }
    );
    let peer = crate::tunnel::start(&app, &uuid, r, data.client, addr, detail, Some(ready_tx));
    let handle = accepted.peer.spawn();
    tokio::spawn(relay(
        app.clone(),
        uuid.clone(),
        handle,
        peer,
        video.then_some(ready_rx),
        addr,
    ));
    Json(json!({"answer": accepted.answer, "tunnel": uuid, "video": video})).into_response()
}

/// Moves instructions between the data channel and the session core until
/// either side ends.
async fn relay(
    app: Arc<App>,
    uuid: String,
    mut handle: PeerHandle,
    peer: TunnelPeer,
    mut ready: Option<tokio::sync::oneshot::Receiver<ReadySession>>,
    addr: SocketAddr,
) {
    let TunnelPeer {
        to_core,
        mut from_core,
        counters: _,
    } = peer;
    let mut to_core = Some(to_core);
    let mut inbound = Inbound::new(app.opts.max_message_bytes);
    let mut filter = ready.is_some().then(VideoFilter::default);
    // The session and this tunnel's user in it, once video is fed from it.
    let mut viewer: Option<(Arc<guacr_session::Session>, String)> = None;
    let mut opened = false;
    let out = handle.outgoing.clone();
    let send = |m: String| {
        let out = out.clone();
        async move { out.send(m.into_bytes()).await.is_ok() }
    };
    loop {
        tokio::select! {
            ev = handle.events.recv() => match ev {
                Some(PeerEvent::Open) => {
                    opened = true;
                    if !send(format!("0.,36.{uuid};")).await {
                        break;
                    }
                }
                Some(PeerEvent::Message(data)) => match inbound.feed(&data) {
                    Ok(split) => {
                        // Ping echoes never wait: a browser flooding pings
                        // into a congested channel loses echoes, it cannot
                        // stall the relay (and through it the peer).
                        for r in split.replies {
                            let _ = out.try_send(r.into_bytes());
                        }
                        if !split.forward.is_empty()
                            && let Some(tx) = &to_core
                            && tx.send(Bytes::from(split.forward)).await.is_err()
                        {
                            to_core = None;
                        }
                    }
                    Err(e) => {
                        tracing::info!(peer = %addr, "malformed data-channel message: {e}");
                        let msg = format!("Malformed instruction: {e}");
                        let _ = send(error_instruction(&msg, Status::ClientBadRequest)).await;
                        break;
                    }
                },
                Some(PeerEvent::VideoStopped(_)) => {
                    // From now on this browser draws layer 0 from `img`:
                    // the handler repaints it in full, and encodes images
                    // again if it had stopped.
                    filter = None;
                    if let Some((s, user)) = viewer.take() {
                        s.video().viewer_stopped(&user);
                    }
                }
                None => break,
            },
            b = from_core.recv(), if opened => match b {
                Some(b) => {
                    let mut ok = true;
                    for m in messages(&b, filter.as_mut()) {
                        if !send(m).await {
                            ok = false;
                            break;
                        }
                    }
                    if !ok {
                        break;
                    }
                }
                None => break,
            },
            r = wait(&mut ready) => {
                ready = None;
                if let Ok(r) = r
                    && let Some(s) = app.gateway.session(&r.session_id)
                {
                    handle.set_video_source(s.video().subscribe_as(&r.user_id));
                    viewer = Some((s, r.user_id));
                }
            }
        }
    }
    // Dropping our ends: the core sees the end of its stream (the user
    // leaves), the peer flushes what is queued and closes.
    drop(to_core);
    drop(out);
    drop(handle.outgoing);
    if let Ok(stats) = handle.task.await {
        tracing::debug!(
            peer = %addr,
            tunnel = %uuid,
            frames = stats.frames,
            keyframes = stats.keyframes,
            bytes = stats.video_bytes,
            "WebRTC tunnel ended: {}",
            stats.end
        );
    }
}

async fn wait(
    rx: &mut Option<tokio::sync::oneshot::Receiver<ReadySession>>,
) -> Result<ReadySession, tokio::sync::oneshot::error::RecvError> {
    match rx {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
}

/// Drops the drawing of layer 0 from the instruction stream of a browser
/// that receives the screen as video: `img` to layer 0 with its stream's
/// `blob`/`end`, and drawing operations whose destination is layer 0.
/// `size`, `cursor`, `sync`, buffers, clipboard, audio, `error`,
/// `disconnect` and everything else pass.
#[derive(Debug, Default)]
pub struct VideoFilter {
    streams: HashSet<String>,
}

impl VideoFilter {
    /// Whether the instruction is dropped.
    pub fn drops(&mut self, ins: &InstructionRef<'_>) -> bool {
        let layer0 = |i: usize| ins.arg(i) == Some("0");
        match ins.opcode() {
            // img,stream,mask,layer,mimetype,x,y
            "img" if layer0(2) => {
                if let Some(s) = ins.arg(0) {
                    self.streams.insert(s.to_owned());
                }
                true
            }
            "blob" => ins.arg(0).is_some_and(|s| self.streams.contains(s)),
            "end" => ins.arg(0).is_some_and(|s| self.streams.remove(s)),
            // copy/transfer: source, rectangle, mask/function, destination…
            "copy" | "transfer" => layer0(6),
            // mask (or stroke style) first, then the layer.
            "cfill" | "cstroke" | "lfill" | "lstroke" | "png" | "jpeg" | "webp" => layer0(1),
            "rect" | "arc" | "curve" | "line" | "start" | "close" | "clip" | "push" | "pop"
            | "reset" | "identity" | "transform" | "distort" => layer0(0),
            _ => false,
        }
    }
}

/// Splits what the core wrote into data-channel messages of whole
/// instructions (≤ [`MAX_MESSAGE`] unless one instruction is larger),
/// without what `filter` drops.
pub fn messages(data: &[u8], mut filter: Option<&mut VideoFilter>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut parser = Parser::with_limit(data.len().max(8192));
    let mut pos = 0;
    while pos < data.len() {
        let Ok(Some((ins, used))) = parser.parse(&data[pos..]) else {
            // Not whole instructions (never written by the core): pass on.
            cur.extend_from_slice(&data[pos..]);
            break;
        };
        let dropped = filter.as_mut().is_some_and(|f| f.drops(&ins));
        if !dropped {
            if !cur.is_empty() && cur.len() + used > MAX_MESSAGE {
                out.push(text(std::mem::take(&mut cur)));
            }
            cur.extend_from_slice(&data[pos..pos + used]);
        }
        pos += used;
    }
    if !cur.is_empty() {
        out.push(text(cur));
    }
    out
}

fn text(b: Vec<u8>) -> String {
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_drops_layer0_drawing_only() {
        let mut f = VideoFilter::default();
        let input = "4.size,1.0,4.1024,3.768;\
            3.img,1.3,2.14,1.0,9.image/png,1.0,1.0;4.blob,1.3,4.AAAA;3.end,1.3;\
            3.img,1.4,2.14,2.-1,9.image/png,1.0,1.0;4.blob,1.4,4.BBBB;3.end,1.4;\
            4.copy,1.0,1.0,2.16,3.100,2.16,2.12,1.0,1.0,1.0;\
            4.copy,2.-2,1.0,1.0,1.8,2.16,2.12,2.-1,1.0,1.0;\
            4.rect,1.0,1.0,1.0,2.10,2.10;5.cfill,2.14,1.0,1.0,1.0,1.0,3.255;\
            6.cursor,1.0,1.0,2.-1,1.0,1.0,2.10,2.10;4.sync,3.123;";
        let out = messages(input.as_bytes(), Some(&mut f)).concat();
        assert_eq!(
            out,
            "4.size,1.0,4.1024,3.768;\
            3.img,1.4,2.14,2.-1,9.image/png,1.0,1.0;4.blob,1.4,4.BBBB;3.end,1.4;\
            4.copy,2.-2,1.0,1.0,1.8,2.16,2.12,2.-1,1.0,1.0;\
            6.cursor,1.0,1.0,2.-1,1.0,1.0,2.10,2.10;4.sync,3.123;"
        );
        // Stream 3 ended: a later blob on a reused index 3 of a buffer passes.
        let out = messages(
            b"3.img,1.3,2.14,2.-3,9.image/png,1.0,1.0;4.blob,1.3,4.CCCC;",
            Some(&mut f),
        )
        .concat();
        assert!(out.contains("4.blob,1.3,4.CCCC;"));
        // Without a filter everything passes.
        assert_eq!(messages(input.as_bytes(), None).concat(), input);
    }

    #[test]
    fn messages_split_at_instruction_boundaries() {
        let one = format!("4.blob,1.1,5000.{};", "A".repeat(5000));
        let data = one.repeat(40);
        let msgs = messages(data.as_bytes(), None);
        assert!(msgs.len() > 1);
        for m in &msgs {
            assert!(m.len() <= MAX_MESSAGE);
            assert!(m.ends_with(';'));
        }
        assert_eq!(msgs.concat(), data);
    }
}
