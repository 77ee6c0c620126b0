//! What the web server needs from the daemon, implemented by the `guacr`
//! crate (which owns the session core, limits and recordings).

use std::future::Future;
use std::pin::Pin;

use guacr_protocol::handshake::ClientInfo;
use guacr_session::ParamSpec;

use crate::stream::TunnelStream;

/// What a tunnel connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A new session of this protocol.
    Protocol(String),
    /// Join this live session (`$…`).
    Join(String),
}

/// An authorised tunnel, ready to be served by the session core.
pub struct OpenTunnel {
    pub target: Target,
    pub client: ClientInfo,
    /// Stored connection parameters by name (secrets included: never logged).
    pub params: Vec<(String, String)>,
    pub read_only: bool,
    pub remote_addr: std::net::SocketAddr,
    /// Called once the session exists, before any relaying.
    pub on_ready: Box<dyn FnOnce(ReadySession) + Send>,
}

/// A tunnel's place in its session, once it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadySession {
    /// The session (`$…`).
    pub session_id: String,
    /// This tunnel's user in it (`@…`).
    pub user_id: String,
}

/// A live session, as the daemon sees it.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub id: String,
    pub protocol: String,
    pub users: usize,
}

/// A protocol and its parameter schema.
#[derive(Debug, Clone)]
pub struct ProtocolInfo {
    pub name: String,
    pub params: Vec<ParamSpec>,
}

pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The daemon, seen from the web server.
pub trait Gateway: Send + Sync + 'static {
    /// Protocols this binary serves, with their parameter schemas.
    fn protocols(&self) -> Vec<ProtocolInfo>;
    /// Live sessions (TCP 4822 ones included).
    fn sessions(&self) -> Vec<LiveSession>;
    /// Ends a session: every user gets `error` 523 with `reason`. False if unknown.
    fn kill(&self, session_id: &str, reason: &str) -> bool;
    /// Serves a tunnel to its end (limits, session start or join, relay).
    fn open(&self, tunnel: OpenTunnel, stream: TunnelStream) -> BoxFuture;
    /// Whether the daemon is draining (new tunnels are refused).
    fn is_shutting_down(&self) -> bool {
        false
    }
    /// A live session by id (the WebRTC tunnel subscribes to its
    /// [`VideoFeed`](guacr_session::VideoFeed)).
    fn session(&self, session_id: &str) -> Option<std::sync::Arc<guacr_session::Session>> {
        let _ = session_id;
        None
    }
    /// Whether sessions of this protocol publish their screen as video
    /// ([`Protocol::graphical`](guacr_session::Protocol::graphical)).
    fn is_graphical(&self, protocol: &str) -> bool {
        let _ = protocol;
        false
    }
}
