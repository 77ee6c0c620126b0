//! One client connection: the handshake, then the user's input and output loops.
//! Generic over the byte stream, so TCP, TLS and (later) WebSocket tunnels share it.

use std::sync::Arc;
use std::time::Duration;

use guacr_protocol::handshake::{self, Event, Selection, ServerHandshake};
use guacr_protocol::{InstructionRef, InstructionWriter, ParseError, Parser, Status};
use guacr_session::user::{Outcome, UserInput};
use guacr_session::{Params, Session, UserInfo, UserOutput};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::server::{IpGuard, Rejection, ServerState};

/// Why reading an instruction failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("connection closed")]
    Closed,
    #[error("client timed out")]
    Timeout,
    #[error("malformed instruction: {0}")]
    Parse(#[from] ParseError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Buffers bytes from the client and hands out complete instructions.
pub struct InstructionReader {
    buf: Vec<u8>,
    pos: usize,
    parser: Parser,
    /// Bytes read so far (not yet reported to the metrics).
    received: u64,
}

impl Default for InstructionReader {
    fn default() -> Self {
        Self::new()
    }
}

impl InstructionReader {
    pub fn new() -> Self {
        InstructionReader {
            buf: Vec::with_capacity(8192),
            pos: 0,
            parser: Parser::new(),
            received: 0,
        }
    }

    /// Bytes read since the last call.
    pub fn take_received(&mut self) -> u64 {
        std::mem::take(&mut self.received)
    }

    /// Reads until one instruction is complete and passes it to `f`.
    pub async fn next<R, F, T>(
        &mut self,
        rd: &mut R,
        timeout: Duration,
        f: F,
    ) -> Result<T, ReadError>
    where
        R: AsyncRead + Unpin,
        F: FnOnce(&InstructionRef<'_>) -> T,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.pos < self.buf.len()
                && let Some((ins, used)) = self.parser.parse(&self.buf[self.pos..])?
            {
                let r = f(&ins);
                self.pos += used;
                return Ok(r);
            }
            if self.pos == self.buf.len() {
                self.buf.clear();
                self.pos = 0;
            } else if self.pos >= 16 * 1024 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            self.buf.reserve(8192);
            let n = match tokio::time::timeout_at(deadline, rd.read_buf(&mut self.buf)).await {
                Err(_) => return Err(ReadError::Timeout),
                Ok(r) => r?,
            };
            if n == 0 {
                return Err(ReadError::Closed);
            }
            self.received += n as u64;
        }
    }
}

fn error_bytes(message: &str, status: Status) -> Vec<u8> {
    crate::metrics::error(status);
    let mut buf = Vec::new();
    handshake::write_error(&mut buf, message, status);
    InstructionWriter::new(&mut buf, "disconnect").finish();
    buf
}

/// Serves one client connection to the end.
pub async fn serve<S>(
    stream: S,
    state: Arc<ServerState>,
    peer: String,
    admitted: Result<IpGuard, Rejection>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    serve_split(&mut rd, &mut wr, state, peer, admitted).await;
    // Every path ends here: FIN, then drain what the client still sends.
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
    linger(&mut rd).await;
}

async fn serve_split<R, W>(
    mut rd: &mut R,
    wr: &mut W,
    state: Arc<ServerState>,
    peer: String,
    admitted: Result<IpGuard, Rejection>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _guard = match admitted {
        Ok(g) => g,
        Err(r) => {
            tracing::info!(%peer, limit = r.limit, "connection refused by a limit");
            let _ = wr.write_all(&error_bytes(&r.message, r.status)).await;
            let _ = wr.shutdown().await;
            return;
        }
    };
    let mut reader = InstructionReader::new();
    let cfg = state.config();
    let timeout = cfg.client_timeout();
    let handshake_deadline = tokio::time::Instant::now() + cfg.handshake_timeout();
    let mut handshake_started: Option<std::time::Instant> = None;
    let mut hs = ServerHandshake::new();
    let mut out = Vec::new();
    let mut joining: Option<Arc<Session>> = None;

    // Handshake.
    let handshake = loop {
        let remaining = handshake_deadline.saturating_duration_since(tokio::time::Instant::now());
        let step = reader
            .next(&mut rd, timeout.min(remaining), |ins| hs.receive(ins))
            .await;
        let event = match step {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => {
                tracing::warn!(%peer, "handshake failed: {e}");
                let _ = wr.write_all(&error_bytes(&e.to_string(), e.status())).await;
                return;
            }
            Err(ReadError::Closed) => {
                tracing::debug!(%peer, "connection closed during handshake");
                return;
            }
            Err(ReadError::Timeout) => {
                tracing::info!(%peer, "handshake timed out");
                let _ = wr
                    .write_all(&error_bytes("Handshake timed out.", Status::ClientTimeout))
                    .await;
                return;
            }
            Err(e) => {
                tracing::warn!(%peer, "handshake failed: {e}");
                let _ = wr
                    .write_all(&error_bytes(&e.to_string(), Status::ClientBadRequest))
                    .await;
                return;
            }
        };
        match event {
            Event::Selected(Selection::Protocol(name)) => match state.protocol(&name) {
                Some(p) => {
                    handshake_started = Some(std::time::Instant::now());
                    if let Err(r) = state.admit_session(&name) {
                        tracing::info!(%peer, limit = r.limit, protocol = %name, "session refused by a limit");
                        let _ = wr.write_all(&error_bytes(&r.message, r.status)).await;
                        return;
                    }
                    out.clear();
                    hs.send_args(p.arg_names(), &mut out);
                    if wr.write_all(&out).await.is_err() {
                        return;
                    }
                }
                None => {
                    tracing::info!(%peer, protocol = %name, "unsupported protocol requested");
                    let msg = format!("Protocol \"{name}\" is not supported.");
                    let _ = wr
                        .write_all(&error_bytes(&msg, Status::ClientBadRequest))
                        .await;
                    return;
                }
            },
            Event::Selected(Selection::Join(id)) => match state.registry.get(&id) {
                Some(s) => {
                    handshake_started = Some(std::time::Instant::now());
                    out.clear();
                    hs.send_args(s.arg_names(), &mut out);
                    joining = Some(s);
                    if wr.write_all(&out).await.is_err() {
                        return;
                    }
                }
                None => {
                    tracing::info!(%peer, connection = %id, "join of an unknown connection");
                    let _ = wr
                        .write_all(&error_bytes(
                            "No such connection.",
                            Status::ResourceNotFound,
                        ))
                        .await;
                    return;
                }
            },
            Event::Continue => {}
            Event::Ignored(op) => tracing::debug!(%peer, opcode = %op, "ignored during handshake"),
            Event::Complete(h) => break h,
        }
    };

    let params = Params::from_pairs(handshake.params());
    let mut read_only = params.flag("read-only");
    let start = match joining {
        None => {
            let Selection::Protocol(name) = &handshake.selection else {
                return;
            };
            let Some(protocol) = state.protocol(name) else {
                return;
            };
            read_only &= protocol.read_only_is_view_only();
            Start::New(protocol)
        }
        Some(session) => Start::Join(session),
    };
    let Some((session, user, output)) = start_session(
        wr,
        &state,
        &peer,
        start,
        params,
        handshake.client.clone(),
        handshake.version,
        read_only,
    )
    .await
    else {
        return;
    };
    out.clear();
    handshake::write_ready(&mut out, session.id());
    if wr.write_all(&out).await.is_err() {
        session.leave(&user.id);
        return;
    }
    if let Some(t) = handshake_started {
        metrics::histogram!("guacr_handshake_seconds").record(t.elapsed().as_secs_f64());
    }
    let disable_paste = session_flag(&handshake, "disable-paste");
    run_user(
        reader,
        rd,
        wr,
        session,
        user,
        output,
        state,
        disable_paste,
        peer,
    )
    .await;
}

/// What a session start is for: a new connection of a protocol, or a join.
enum Start {
    New(Arc<dyn guacr_session::Protocol>),
    Join(Arc<Session>),
}

/// Creates the session (with its recording taps) or joins it, after a
/// completed handshake. On failure the client has been sent the error.
#[allow(clippy::too_many_arguments)]
async fn start_session<W>(
    wr: &mut W,
    state: &Arc<ServerState>,
    peer: &str,
    start: Start,
    params: Params,
    client: guacr_protocol::handshake::ClientInfo,
    version: guacr_protocol::ProtocolVersion,
    read_only: bool,
) -> Option<(Arc<Session>, Arc<UserInfo>, UserOutput)>
where
    W: AsyncWrite + Unpin,
{
    let cfg = state.config();
    let (session, user, output) = match start {
        Start::New(protocol) => {
            let name = protocol.name();
            if state.is_shutting_down() {
                let _ = wr
                    .write_all(&error_bytes(
                        "The server is shutting down.",
                        Status::ServerBusy,
                    ))
                    .await;
                return None;
            }
            let owner = UserInfo::new(client, version, true, read_only);
            let recorder =
                match crate::recording::Recorder::open(&params, &cfg, state.uploader()).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(%peer, "refusing the session: {}", e.message);
                        let _ = wr.write_all(&error_bytes(&e.message, e.status)).await;
                        return None;
                    }
                };
            let taps: Vec<Arc<dyn guacr_session::SessionTap>> = recorder
                .iter()
                .map(|r| r.clone() as Arc<dyn guacr_session::SessionTap>)
                .collect();
            let (session, user, output) = Session::start_with_taps(
                protocol.clone(),
                owner,
                params,
                state.registry.clone(),
                cfg.session.max_queued_bytes,
                taps,
            );
            if let Some(r) = recorder {
                r.watch(session.clone());
            }
            tracing::info!(%peer, connection = %session.id(), user = %user.id, protocol = %name, "new connection");
            (session, user, output)
        }
        Start::Join(session) => {
            let info = UserInfo::new(client, version, false, read_only);
            match session.join(info) {
                Some((user, output)) => {
                    tracing::info!(%peer, connection = %session.id(), user = %user.id, read_only, "user joined");
                    (session, user, output)
                }
                None => {
                    let _ = wr
                        .write_all(&error_bytes(
                            "No such connection.",
                            Status::ResourceNotFound,
                        ))
                        .await;
                    return None;
                }
            }
        }
    };
    let span = tracing::Span::current();
    span.record("connection", session.id());
    span.record("user", user.id.as_str());
    span.record("protocol", session.protocol());
    Some((session, user, output))
}

/// What to connect a tunnel the web gateway has already authorised to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelTarget {
    /// A new session of this protocol (e.g. `ssh`).
    Protocol(String),
    /// Join the live session with this id (`$…`).
    Join(String),
}

/// A pre-resolved handshake: the gateway performs it on the browser's behalf
/// (the browser never sees `args`, `ready` or the stored parameters).
#[derive(Clone)]
pub struct TunnelRequest {
    pub target: TunnelTarget,
    pub client: guacr_protocol::handshake::ClientInfo,
    /// Connection parameters by name; only the names the handler announces
    /// in `args` are passed on, as in a guacd handshake.
    pub params: Vec<(String, String)>,
    pub read_only: bool,
}

impl std::fmt::Debug for TunnelRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Parameter values carry secrets: names only.
        let names: Vec<&str> = self.params.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("TunnelRequest")
            .field("target", &self.target)
            .field("client", &self.client)
            .field("params", &names)
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// Called with the session and the tunnel's user once the session exists.
pub type OnReady = Box<dyn FnOnce(&Arc<Session>, &Arc<UserInfo>) + Send>;

/// Serves an already-authorised tunnel (WebSocket or HTTP): starts or joins
/// the session without a client-side handshake, reports the session id to
/// `on_ready`, then relays like [`serve`]. Refusals reach the client as
/// `error` + `disconnect`.
pub async fn serve_tunnel<S>(
    stream: S,
    state: Arc<ServerState>,
    peer: String,
    admitted: Result<IpGuard, Rejection>,
    request: TunnelRequest,
    on_ready: OnReady,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    serve_tunnel_split(&mut rd, &mut wr, state, peer, admitted, request, on_ready).await;
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
    linger(&mut rd).await;
}

async fn serve_tunnel_split<R, W>(
    rd: &mut R,
    wr: &mut W,
    state: Arc<ServerState>,
    peer: String,
    admitted: Result<IpGuard, Rejection>,
    request: TunnelRequest,
    on_ready: OnReady,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _guard = match admitted {
        Ok(g) => g,
        Err(r) => {
            tracing::info!(%peer, limit = r.limit, "tunnel refused by a limit");
            let _ = wr.write_all(&error_bytes(&r.message, r.status)).await;
            return;
        }
    };
    let started = std::time::Instant::now();
    let (start, names): (Start, &'static [&'static str]) = match &request.target {
        TunnelTarget::Protocol(name) => {
            let Some(p) = state.protocol(name) else {
                let msg = format!("Protocol \"{name}\" is not supported.");
                let _ = wr
                    .write_all(&error_bytes(&msg, Status::ClientBadRequest))
                    .await;
                return;
            };
            if let Err(r) = state.admit_session(name) {
                tracing::info!(%peer, limit = r.limit, protocol = %name, "session refused by a limit");
                let _ = wr.write_all(&error_bytes(&r.message, r.status)).await;
                return;
            }
            let names = p.arg_names();
            (Start::New(p), names)
        }
        TunnelTarget::Join(id) => match state.registry.get(id) {
            Some(s) => {
                let names = s.arg_names();
                (Start::Join(s), names)
            }
            None => {
                let _ = wr
                    .write_all(&error_bytes(
                        "No such connection.",
                        Status::ResourceNotFound,
                    ))
                    .await;
                return;
            }
        },
    };
    let params = Params::from_pairs(
        request
            .params
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    let view_only_param = match &start {
        Start::New(p) => p.read_only_is_view_only(),
        Start::Join(_) => true,
    };
    let read_only = request.read_only || (params.flag("read-only") && view_only_param);
    let disable_paste = params.flag("disable-paste");
    let Some((session, user, output)) = start_session(
        wr,
        &state,
        &peer,
        start,
        params,
        request.client,
        guacr_protocol::ProtocolVersion::LATEST,
        read_only,
    )
    .await
    else {
        return;
    };
    metrics::histogram!("guacr_handshake_seconds").record(started.elapsed().as_secs_f64());
    on_ready(&session, &user);
    run_user(
        InstructionReader::new(),
        rd,
        wr,
        session,
        user,
        output,
        state,
        disable_paste,
        peer,
    )
    .await;
}

fn session_flag(h: &handshake::Handshake, name: &str) -> bool {
    h.param(name) == Some("true")
}

enum Exit {
    Disconnect,
    Closed,
    Timeout,
    Malformed(String),
    Removed,
}

#[allow(clippy::too_many_arguments)]
async fn run_user<R, W>(
    mut reader: InstructionReader,
    mut rd: R,
    mut wr: W,
    session: Arc<Session>,
    user: Arc<UserInfo>,
    mut output: UserOutput,
    state: Arc<ServerState>,
    disable_paste: bool,
    peer: String,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let cfg = state.config();
    let timeout = cfg.client_timeout();
    let keepalive = cfg.keepalive_interval();
    let mut input = UserInput::new(
        user.clone(),
        session.clone(),
        state.mutable_params,
        disable_paste,
    )
    .with_max_stream_bytes(cfg.limits.clipboard_max_bytes);
    let received = metrics::counter!("guacr_bytes_received_total");

    let read_loop = async {
        loop {
            let step = reader.next(&mut rd, timeout, |ins| input.handle(ins)).await;
            received.increment(reader.take_received());
            match step {
                Ok(Outcome::Continue) => {}
                Ok(Outcome::Disconnect) => return Exit::Disconnect,
                Err(ReadError::Timeout) => return Exit::Timeout,
                Err(ReadError::Closed) | Err(ReadError::Io(_)) => return Exit::Closed,
                Err(ReadError::Parse(e)) => return Exit::Malformed(e.to_string()),
            }
        }
    };
    let write_loop = async {
        let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut nop = Vec::new();
        InstructionWriter::new(&mut nop, "nop").finish();
        loop {
            match tokio::time::timeout(keepalive, output.recv()).await {
                Ok(Some(first)) => {
                    batch.clear();
                    batch.extend_from_slice(&first);
                    while batch.len() < 256 * 1024 {
                        match output.try_recv() {
                            Some(more) => batch.extend_from_slice(&more),
                            None => break,
                        }
                    }
                    if wr.write_all(&batch).await.is_err() {
                        return Exit::Closed;
                    }
                }
                Ok(None) => return Exit::Removed,
                Err(_) => {
                    if wr.write_all(&nop).await.is_err() {
                        return Exit::Closed;
                    }
                }
            }
        }
    };

    let exit = tokio::select! {
        e = read_loop => e,
        e = write_loop => e,
    };
    let final_bytes = match &exit {
        Exit::Disconnect => {
            tracing::info!(%peer, connection = %session.id(), user = %user.id, "user disconnected");
            Some(error_free_disconnect())
        }
        Exit::Closed => {
            tracing::info!(%peer, connection = %session.id(), user = %user.id, "connection closed");
            None
        }
        Exit::Timeout => {
            tracing::info!(%peer, connection = %session.id(), user = %user.id, "user is not responding");
            Some(error_bytes(
                "User is not responding.",
                Status::ClientTimeout,
            ))
        }
        Exit::Malformed(e) => {
            tracing::warn!(%peer, connection = %session.id(), user = %user.id, "malformed input: {e}");
            Some(error_bytes(
                &format!("Malformed instruction: {e}"),
                Status::ClientBadRequest,
            ))
        }
        Exit::Removed => None,
    };
    session.leave(&user.id);
    if let Some(b) = final_bytes {
        let _ = wr.write_all(&b).await;
    }
    let _ = wr.flush().await;
}

/// After our FIN, reads (and discards) what the client still sends — `sync`
/// echoes in flight — until it closes, for a short while. Closing a socket
/// with unread data makes the kernel send a reset, which can destroy the
/// final `error`/`disconnect` before the client reads it.
async fn linger<R: AsyncRead + Unpin>(rd: &mut R) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

fn error_free_disconnect() -> Vec<u8> {
    let mut buf = Vec::new();
    InstructionWriter::new(&mut buf, "disconnect").finish();
    buf
}
