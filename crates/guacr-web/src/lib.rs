//! guacr's web gateway: the built web client (static files), the JSON API of
//! docs/web-api.md, and the Guacamole tunnels (`Guacamole.WebSocketTunnel`
//! and `Guacamole.HTTPTunnel`), all on one axum listener.
//!
//! The daemon is reached through [`Gateway`] (implemented by the `guacr`
//! crate), users and connections through [`Directory`] (implemented over
//! `guacr-store`, or [`MemoryDirectory`]).

// Handlers return `Result<_, Response>` (an early HTTP answer); boxing
// every refusal would only add allocations on rare paths.
#![allow(clippy::result_large_err)]

mod account;
pub mod api;
pub mod directory;
pub mod gateway;
pub mod oidc;
pub mod recordings;
pub mod stream;
pub mod token;
pub mod tunnel;
#[cfg(feature = "webrtc")]
pub mod webrtc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use directory::{AuditEvent, Connection, Directory, Group, MemoryDirectory, User};
pub use gateway::{Gateway, LiveSession, OpenTunnel, ProtocolInfo, Target};
pub use oidc::OidcProvider;

/// Settings of the web listener (`[web]` in guacr.toml).
#[derive(Clone)]
pub struct WebOptions {
    pub bind: SocketAddr,
    /// The built web client; `None`: no static files (API and tunnels only).
    pub assets: Option<PathBuf>,
    pub tls: Option<TlsAcceptor>,
    /// HS256 key of connection tokens; `None`: tokens are refused.
    pub token_secret: Option<Vec<u8>>,
    /// A login session ends after this much inactivity…
    pub session_idle: Duration,
    /// …and after this long in any case.
    pub session_absolute: Duration,
    /// How long an instance trusts its cached copy of a login session
    /// before checking the directory again (see `Directory::keeps_sessions`).
    pub session_revalidate: Duration,
    /// Login attempts per minute from one address (429 beyond).
    pub login_per_ip_per_minute: u32,
    /// Failed logins per minute for one user name (429 beyond).
    pub login_per_user_per_minute: u32,
    /// Largest WebSocket message / HTTP tunnel write accepted.
    pub max_message_bytes: usize,
    /// Share links live this long unless asked otherwise (and at most 24 h).
    pub share_ttl: Duration,
    pub oidc: Vec<OidcProvider>,
    /// The externally visible base URL (for OIDC redirects), e.g. `https://gw.example`.
    pub public_url: Option<String>,
    /// Where the web player finds `.guac` recordings (normally the `recording-path`
    /// of the connections); `None`: the recordings API lists nothing.
    pub recordings_dir: Option<PathBuf>,
    /// The WebRTC tunnel (`/tunnel/webrtc`).
    pub webrtc: WebRtcOptions,
}

/// One STUN/TURN server for the browser's `RTCPeerConnection`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Settings of the WebRTC tunnel (`[web.webrtc]`).
#[derive(Debug, Clone, PartialEq)]
pub struct WebRtcOptions {
    /// Offered to browsers at all (also off when built without the
    /// `webrtc` feature).
    pub enabled: bool,
    /// Host-candidate addresses; empty = every non-loopback IPv4 interface
    /// address plus 127.0.0.1.
    pub addresses: Vec<std::net::IpAddr>,
    pub ice_servers: Vec<IceServer>,
    /// H.264 video for graphical sessions.
    pub video: bool,
    /// Video ceiling, bit/s (`b=TIAS`).
    pub max_bitrate: u32,
    pub max_fps: u32,
    /// `auto` or a backend name (`openh264`).
    pub encoder: String,
}

impl Default for WebRtcOptions {
    fn default() -> Self {
        WebRtcOptions {
            enabled: true,
            addresses: Vec::new(),
            ice_servers: Vec::new(),
            video: true,
            max_bitrate: 4_000_000,
            max_fps: 30,
            encoder: "auto".into(),
        }
    }
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            assets: None,
            tls: None,
            token_secret: None,
            session_idle: Duration::from_secs(30 * 60),
            session_absolute: Duration::from_secs(12 * 3600),
            session_revalidate: Duration::from_secs(30),
            login_per_ip_per_minute: 30,
            login_per_user_per_minute: 10,
            max_message_bytes: 1 << 20,
            share_ttl: Duration::from_secs(3600),
            oidc: Vec::new(),
            public_url: None,
            recordings_dir: None,
            webrtc: WebRtcOptions::default(),
        }
    }
}

/// Where the built web client is looked for when `[web] assets` is unset:
/// `$GUACR_WEB_DIR`, `<exe>/../share/guacr/web`, the repository's `web/dist`.
pub fn find_assets() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(d) = std::env::var_os("GUACR_WEB_DIR") {
        candidates.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
    {
        candidates.push(bin.join("../share/guacr/web"));
        // target/{debug,release}/guacr in a checkout.
        candidates.push(bin.join("../../web/dist"));
    }
    candidates.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../web/dist"
    )));
    candidates
        .into_iter()
        .find(|p| p.join("index.html").is_file())
}

/// Everything the handlers share.
pub struct App {
    pub opts: WebOptions,
    pub gateway: Arc<dyn Gateway>,
    pub dir: Arc<dyn Directory>,
    pub(crate) sessions: Mutex<HashMap<String, api::WebSession>>,
    pub(crate) throttle: Mutex<api::Throttle>,
    pub(crate) tunnels: Mutex<HashMap<String, Arc<tunnel::LiveTunnel>>>,
    pub(crate) shares: Mutex<HashMap<String, tunnel::Share>>,
    pub(crate) http_tunnels: Mutex<HashMap<String, Arc<tunnel::HttpTunnel>>>,
    pub(crate) oidc_pending: Mutex<HashMap<String, oidc::Pending>>,
    pub(crate) oidc_meta: tokio::sync::Mutex<HashMap<String, oidc::Discovered>>,
    pub(crate) tls: bool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// RFC 3339 UTC time of now.
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

pub fn rfc3339(t: std::time::SystemTime) -> String {
    let t: time::OffsetDateTime = t.into();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// 256 random bits, base64url without padding.
pub fn random_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl App {
    pub fn new(opts: WebOptions, gateway: Arc<dyn Gateway>, dir: Arc<dyn Directory>) -> Arc<App> {
        let tls = opts.tls.is_some();
        Arc::new(App {
            opts,
            gateway,
            dir,
            sessions: Mutex::new(HashMap::new()),
            throttle: Mutex::new(api::Throttle::default()),
            tunnels: Mutex::new(HashMap::new()),
            shares: Mutex::new(HashMap::new()),
            http_tunnels: Mutex::new(HashMap::new()),
            oidc_pending: Mutex::new(HashMap::new()),
            oidc_meta: tokio::sync::Mutex::new(HashMap::new()),
            tls,
        })
    }

    /// Records an audit event (to the directory and the log).
    pub async fn audit(&self, event: AuditEvent) {
        tracing::info!(
            target: "guacr::audit",
            kind = %event.kind,
            username = %event.username,
            remote_addr = %event.remote_addr,
            connection = %event.connection_id,
            session = %event.session_id,
            detail = %event.detail,
            "audit"
        );
        self.dir.audit(event).await;
    }

    /// Drops expired login sessions, share links and OIDC states.
    fn sweep(&self) {
        let now_ms = api::unix_ms();
        lock(&self.sessions).retain(|_, s| !s.expired(now_ms, &self.opts));
        let wall = std::time::SystemTime::now();
        lock(&self.shares).retain(|_, s| s.expires > wall);
        lock(&self.oidc_pending).retain(|_, p| p.created.elapsed() < Duration::from_secs(600));
    }
}

/// The whole router (API, tunnels, static files), for tests and embedding.
pub fn router(app: Arc<App>) -> Router {
    let mut r = Router::new()
        .merge(api::routes())
        .merge(tunnel::routes())
        .merge(webrtc_routes())
        .merge(oidc::routes());
    r = match &app.opts.assets {
        Some(dir) => r.fallback_service(static_files(dir)),
        None => r.fallback(|| async {
            api::error(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "Not found (the web client is not installed: set [web] assets or GUACR_WEB_DIR).",
            )
        }),
    };
    r.layer(axum::middleware::from_fn(security_headers))
        .with_state(app)
}

#[cfg(feature = "webrtc")]
fn webrtc_routes() -> Router<Arc<App>> {
    webrtc::routes()
}

/// Without the `webrtc` feature the browser is told WebRTC is off.
#[cfg(not(feature = "webrtc"))]
fn webrtc_routes() -> Router<Arc<App>> {
    Router::new().route(
        "/tunnel/webrtc",
        axum::routing::get(|| async {
            axum::Json(serde_json::json!({"enabled": false, "video": false, "ice_servers": []}))
        })
        .post(|| async {
            api::error(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "WebRTC is not available in this build.",
            )
        }),
    )
}

fn static_files(dir: &Path) -> tower_http::services::ServeDir<tower_http::services::ServeFile> {
    tower_http::services::ServeDir::new(dir)
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(true)
        // SPA: unknown paths get index.html (the client routes with #/…).
        .fallback(
            tower_http::services::ServeFile::new(dir.join("index.html"))
                .precompressed_br()
                .precompressed_gzip(),
        )
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; font-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'";

/// Security and cache headers on every answer. Embedding (`/embed`, connection
/// tokens) may be framed; everything else may not.
async fn security_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let embed = path.starts_with("/embed");
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if embed {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    } else {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&format!("{CSP}; frame-ancestors 'none'"))
                .unwrap_or_else(|_| HeaderValue::from_static("frame-ancestors 'none'")),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        let value = if path.starts_with("/api/") || path.starts_with("/tunnel/") {
            "no-store"
        } else if path.starts_with("/assets/") {
            // Vite puts content hashes in these names.
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    res
}

/// A bound web listener.
pub struct WebServer {
    listener: TcpListener,
    app: Arc<App>,
}

impl WebServer {
    pub async fn bind(
        opts: WebOptions,
        gateway: Arc<dyn Gateway>,
        dir: Arc<dyn Directory>,
    ) -> anyhow::Result<WebServer> {
        let listener = TcpListener::bind(opts.bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind web listener {}: {e}", opts.bind))?;
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        match &opts.assets {
            Some(a) => tracing::info!(
                "web gateway on {scheme}://{} (web client from {})",
                listener.local_addr()?,
                a.display()
            ),
            None => tracing::warn!(
                "web gateway on {scheme}://{} without the web client (build web/ or set GUACR_WEB_DIR)",
                listener.local_addr()?
            ),
        }
        Ok(WebServer {
            listener,
            app: App::new(opts, gateway, dir),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// Serves until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let WebServer { listener, app } = self;
        let sweeper = {
            let app = app.clone();
            tokio::spawn(async move {
                let mut t = tokio::time::interval(Duration::from_secs(30));
                loop {
                    t.tick().await;
                    app.sweep();
                }
            })
        };
        let tls = app.opts.tls.clone();
        let svc = router(app).into_make_service_with_connect_info::<SocketAddr>();
        let stop = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        let result = match tls {
            None => {
                axum::serve(listener, svc)
                    .with_graceful_shutdown(stop)
                    .await
            }
            Some(acceptor) => {
                axum::serve(TlsListener::new(listener, acceptor).tap_io(|_| {}), svc)
                    .with_graceful_shutdown(stop)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::error!("web listener failed: {e}");
        }
        sweeper.abort();
    }
}

/// TLS on the web listener: handshakes run in their own tasks so a slow
/// client cannot hold up the accept loop.
struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        SocketAddr,
    )>,
    local: SocketAddr,
    _task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    fn new(listener: TcpListener, acceptor: TlsAcceptor) -> Self {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (sock, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("web accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = sock.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(15), acceptor.accept(sock)).await
                    {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "web TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "web TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener {
            rx,
            local,
            _task: task,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
