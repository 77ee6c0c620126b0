use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use guacr_protocol::handshake::ClientInfo;
use guacr_protocol::{Instruction, InstructionWriter, ProtocolVersion, Status};
use tokio::sync::{Notify, mpsc};

use crate::{Params, Registry};

/// Milliseconds since the Unix epoch (what guacd puts in `sync`).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One user of a session, as established by its handshake.
#[derive(Debug, Clone)]
pub struct UserInfo {
    /// `@`-prefixed user id.
    pub id: String,
    pub name: Option<String>,
    pub client: ClientInfo,
    pub version: ProtocolVersion,
    pub read_only: bool,
    pub owner: bool,
}

impl UserInfo {
    pub fn new(client: ClientInfo, version: ProtocolVersion, owner: bool, read_only: bool) -> Self {
        UserInfo {
            id: format!("@{}", uuid::Uuid::new_v4()),
            name: client.name.clone(),
            client,
            version,
            read_only,
            owner,
        }
    }
}

/// Input from a user, after stream reassembly and read-only filtering.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Key {
        keysym: u32,
        pressed: bool,
    },
    Mouse {
        x: i32,
        y: i32,
        mask: i32,
    },
    /// The owner's display size changed.
    Size {
        width: u32,
        height: u32,
    },
    /// A complete clipboard stream.
    Clipboard {
        mimetype: String,
        data: Vec<u8>,
    },
    /// A complete `argv` stream: a runtime change of a connection parameter.
    Argv {
        name: String,
        value: String,
    },
    /// Anything else (file, pipe, get, put, …) for handlers that support it.
    Other(Instruction),
}

/// Events delivered to a running handler.
#[derive(Debug, Clone)]
pub enum HandlerEvent {
    /// A user joined: send it the current state with [`Session::send_to`],
    /// then call [`Session::activate`] so it receives broadcasts.
    Joined(Arc<UserInfo>),
    Left(Arc<UserInfo>),
    Input {
        user: Arc<UserInfo>,
        input: Input,
    },
    /// Every user has left or the daemon is shutting down: end the session.
    Shutdown,
}

/// Why a session ended abnormally: sent to every user as `error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({status})")]
pub struct SessionError {
    pub status: Status,
    pub message: String,
}

impl SessionError {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        SessionError {
            status,
            message: message.into(),
        }
    }
}

pub type ProtocolFuture = Pin<Box<dyn Future<Output = Result<(), SessionError>> + Send>>;

/// What every protocol handler implements.
pub trait Protocol: Send + Sync + 'static {
    /// The name clients `select` (e.g. `ssh`).
    fn name(&self) -> &'static str;
    /// Parameter names announced in `args`, in order.
    fn arg_names(&self) -> &'static [&'static str];
    /// Runs the connection until the upstream ends or every user has left.
    fn run(&self, ctx: SessionContext) -> ProtocolFuture;
    /// Readiness check of this handler (fonts loadable, …), for `/health/ready`.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
    /// Whether the owner's `read-only` parameter makes it a view-only user
    /// (guacd's meaning). Database consoles answer false: there `read-only`
    /// is a read-only database session and the owner still types.
    fn read_only_is_view_only(&self) -> bool {
        true
    }
    /// The parameter schema (for forms): by default derived from
    /// [`arg_names`](Self::arg_names) with kinds guessed from guacd's naming.
    fn param_specs(&self) -> Vec<crate::ParamSpec> {
        crate::schema::derive_specs(self.arg_names())
    }
    /// Whether the handler draws a framebuffer and publishes it on
    /// [`Session::video`] (VNC, RDP, …): video transports (WebRTC) may then
    /// carry the screen as video. Terminal protocols answer false.
    fn graphical(&self) -> bool {
        false
    }
}

/// An observer of a session's traffic: recordings, typescripts, audit.
///
/// Called synchronously on the session's hot paths: implementations must
/// never block (queue the work and return).
pub trait SessionTap: Send + Sync + 'static {
    /// Output broadcast to every user (whole instructions, `sync` included).
    fn output(&self, data: &Bytes);
    /// Input from a user, after read-only filtering.
    fn input(&self, user: &UserInfo, input: &Input) {
        let _ = (user, input);
    }
    /// Raw output of the remote side of a terminal session (for typescripts).
    /// A `Bytes` so a recorder can keep the buffer instead of copying it.
    fn upstream(&self, data: &Bytes) {
        let _ = data;
    }
    /// A frame ended (after its `sync` went through [`output`](Self::output)).
    fn frame(&self) {}
}

/// Everything a handler gets when its session starts.
pub struct SessionContext {
    pub session: Arc<Session>,
    pub params: Params,
    pub owner: Arc<UserInfo>,
    pub events: SessionEvents,
}

/// The handler's event queue.
pub struct SessionEvents {
    rx: mpsc::UnboundedReceiver<HandlerEvent>,
}

impl SessionEvents {
    /// The next event; `Shutdown` once the session is closing.
    pub async fn recv(&mut self) -> HandlerEvent {
        self.rx.recv().await.unwrap_or(HandlerEvent::Shutdown)
    }

    pub fn try_recv(&mut self) -> Option<HandlerEvent> {
        self.rx.try_recv().ok()
    }
}

/// The receiving end of a user's output, drained by its connection writer.
pub struct UserOutput {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
}

impl UserOutput {
    /// The next chunk to write; `None` once the user was removed and everything was drained.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let b = self.rx.recv().await?;
        self.queued.fetch_sub(b.len(), Ordering::Relaxed);
        Some(b)
    }

    pub fn try_recv(&mut self) -> Option<Bytes> {
        let b = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(b.len(), Ordering::Relaxed);
        Some(b)
    }
}

/// Frame timing statistics derived from `sync` echoes.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameTiming {
    /// Frames sent but not yet acknowledged by the slowest active user.
    pub max_unacked: usize,
    /// Age of the oldest unacknowledged frame among active users.
    pub max_lag: Duration,
}

struct UserSlot {
    info: Arc<UserInfo>,
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    active: bool,
    in_flight: VecDeque<(i64, Instant)>,
    last_rtt: Duration,
}

struct Inner {
    users: Vec<UserSlot>,
    closed: bool,
}

/// Largest number of unacknowledged frames remembered per user.
const MAX_TRACKED_FRAMES: usize = 1024;

/// One live connection.
pub struct Session {
    id: String,
    protocol: String,
    arg_names: &'static [&'static str],
    inner: Mutex<Inner>,
    events: mpsc::UnboundedSender<HandlerEvent>,
    acked: Notify,
    last_ts: AtomicI64,
    max_queued_bytes: usize,
    shutting_down: AtomicBool,
    bytes_sent: metrics::Counter,
    taps: Vec<Arc<dyn SessionTap>>,
    closed_tx: tokio::sync::watch::Sender<bool>,
    video: crate::video::VideoFeed,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl Session {
    /// Creates a session for `owner` and starts `protocol` on it.
    ///
    /// The handler runs in its own task, watched by a supervisor: when it ends,
    /// panics or fails, every user gets `error` (if any) and `disconnect`, and
    /// the session leaves the registry. Returns the session and the owner's output.
    pub fn start(
        protocol: Arc<dyn Protocol>,
        owner: UserInfo,
        params: Params,
        registry: Arc<Registry>,
        max_queued_bytes: usize,
    ) -> (Arc<Session>, Arc<UserInfo>, UserOutput) {
        Self::start_with_taps(
            protocol,
            owner,
            params,
            registry,
            max_queued_bytes,
            Vec::new(),
        )
    }

    /// [`start`](Self::start) with taps (recordings) attached from the very
    /// first instruction.
    pub fn start_with_taps(
        protocol: Arc<dyn Protocol>,
        owner: UserInfo,
        params: Params,
        registry: Arc<Registry>,
        max_queued_bytes: usize,
        taps: Vec<Arc<dyn SessionTap>>,
    ) -> (Arc<Session>, Arc<UserInfo>, UserOutput) {
        let (etx, erx) = mpsc::unbounded_channel();
        let session = Arc::new(Session {
            id: format!("${}", uuid::Uuid::new_v4()),
            protocol: protocol.name().to_owned(),
            arg_names: protocol.arg_names(),
            inner: Mutex::new(Inner {
                users: Vec::new(),
                closed: false,
            }),
            events: etx,
            acked: Notify::new(),
            last_ts: AtomicI64::new(0),
            max_queued_bytes,
            shutting_down: AtomicBool::new(false),
            bytes_sent: metrics::counter!("guacr_bytes_sent_total", "protocol" => protocol.name()),
            taps,
            closed_tx: tokio::sync::watch::channel(false).0,
            video: crate::video::VideoFeed::new(),
        });
        let active = metrics::gauge!("guacr_sessions_active", "protocol" => protocol.name());
        active.increment(1.0);
        metrics::counter!("guacr_sessions_total", "protocol" => protocol.name()).increment(1);
        let owner = Arc::new(owner);
        let output = session.add_user(owner.clone(), true);
        registry.insert(session.clone());
        let ctx = SessionContext {
            session: session.clone(),
            params,
            owner: owner.clone(),
            events: SessionEvents { rx: erx },
        };
        // The handler and everything it logs carry the connection id and protocol.
        let span = tracing::info_span!(
            "session",
            connection = %session.id,
            protocol = %session.protocol,
        );
        let handler = tokio::spawn(tracing::Instrument::instrument(
            protocol.run(ctx),
            span.clone(),
        ));
        let supervised = session.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let outcome = handler.await;
                let error = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => {
                        tracing::info!(connection = %supervised.id, status = e.status.code(), "connection ended: {}", e.message);
                        Some(e)
                    }
                    Err(join) => {
                        if join.is_panic() {
                            tracing::error!(connection = %supervised.id, "protocol handler panicked; only this connection is closed");
                        }
                        Some(SessionError::new(
                            Status::ServerError,
                            "Internal server error in the connection handler.",
                        ))
                    }
                };
                supervised.close(error.as_ref());
                registry.remove(&supervised.id);
                active.decrement(1.0);
            },
            span,
        ));
        (session, owner, output)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whole-screen frames for video transports (graphical handlers publish).
    pub fn video(&self) -> &crate::video::VideoFeed {
        &self.video
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    pub fn arg_names(&self) -> &'static [&'static str] {
        self.arg_names
    }

    /// Whether anyone draws the picture from `img` instructions: a user
    /// without video (joining users included) or a recording. When not, a
    /// graphical handler defers encoding images: every user takes the
    /// picture from [`video`](Self::video).
    pub fn images_wanted(&self) -> bool {
        if !self.taps.is_empty() {
            return true;
        }
        let inner = self.lock();
        !self
            .video
            .all_viewers(inner.users.iter().map(|u| u.info.id.as_str()))
    }

    pub fn user_count(&self) -> usize {
        self.lock().users.len()
    }

    pub fn users(&self) -> Vec<Arc<UserInfo>> {
        self.lock().users.iter().map(|u| u.info.clone()).collect()
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    fn add_user(&self, info: Arc<UserInfo>, active: bool) -> UserOutput {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut inner = self.lock();
        if inner.closed {
            drop(tx);
        } else {
            inner.users.push(UserSlot {
                info,
                tx,
                queued: queued.clone(),
                active,
                in_flight: VecDeque::new(),
                last_rtt: Duration::ZERO,
            });
        }
        UserOutput { rx, queued }
    }

    /// Adds a joining user. It receives nothing but what the handler sends it
    /// directly until the handler calls [`activate`](Self::activate).
    /// Owners on protocol ≥ 1.5 are told with `msg`. Returns `None` if the session is closing.
    pub fn join(&self, info: UserInfo) -> Option<(Arc<UserInfo>, UserOutput)> {
        if self.is_closed() {
            return None;
        }
        let info = Arc::new(info);
        let out = self.add_user(info.clone(), false);
        self.notify_owners(guacr_protocol::MSG_USER_JOINED, &info);
        // If the handler is gone, the supervisor closes the session soon.
        let _ = self.events.send(HandlerEvent::Joined(info.clone()));
        Some((info, out))
    }

    fn notify_owners(&self, code: u32, user: &UserInfo) {
        let mut buf = Vec::new();
        InstructionWriter::new(&mut buf, "msg")
            .arg(&code)
            .arg(user.id.as_str())
            .arg(user.name.as_deref().unwrap_or(""))
            .finish();
        let bytes = Bytes::from(buf);
        let inner = self.lock();
        for u in inner.users.iter() {
            if u.info.owner && u.info.version.supports_msg() && u.info.id != user.id {
                u.queued.fetch_add(bytes.len(), Ordering::Relaxed);
                let _ = u.tx.send(bytes.clone());
            }
        }
    }

    /// Lets a joined user receive broadcasts.
    pub fn activate(&self, user_id: &str) {
        if let Some(u) = self.lock().users.iter_mut().find(|u| u.info.id == user_id) {
            u.active = true;
        }
    }

    /// Removes a user (it left or its connection failed).
    pub fn leave(&self, user_id: &str) {
        let (removed, empty) = {
            let mut inner = self.lock();
            let removed = inner
                .users
                .iter()
                .position(|u| u.info.id == user_id)
                .map(|i| inner.users.remove(i));
            (removed, inner.users.is_empty())
        };
        self.video.forget(user_id);
        if let Some(slot) = removed {
            self.notify_owners(guacr_protocol::MSG_USER_LEFT, &slot.info);
            let _ = self.events.send(HandlerEvent::Left(slot.info.clone()));
        }
        self.acked.notify_waiters();
        if empty {
            let _ = self.events.send(HandlerEvent::Shutdown);
        }
    }

    /// Delivers user input to the handler.
    pub fn input(&self, user: &Arc<UserInfo>, input: Input) {
        // The handler first (echo latency), then the recording taps.
        let recorded = (!self.taps.is_empty()).then(|| input.clone());
        let _ = self.events.send(HandlerEvent::Input {
            user: user.clone(),
            input,
        });
        if let Some(input) = recorded {
            for t in &self.taps {
                t.input(user, &input);
            }
        }
    }

    /// Asks the handler to end (daemon shutdown).
    pub fn request_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let _ = self.events.send(HandlerEvent::Shutdown);
    }

    /// Sends `data` to every active user.
    pub fn broadcast(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.broadcast_bytes(Bytes::copy_from_slice(data));
    }

    pub fn broadcast_bytes(&self, data: Bytes) {
        let mut inner = self.lock();
        let max = self.max_queued_bytes;
        let mut overrun = Vec::new();
        for (i, u) in inner.users.iter().enumerate() {
            if !u.active {
                continue;
            }
            let q = u.queued.fetch_add(data.len(), Ordering::Relaxed) + data.len();
            let _ = u.tx.send(data.clone());
            self.bytes_sent.increment(data.len() as u64);
            if q > max {
                overrun.push(i);
            }
        }
        for i in overrun.into_iter().rev() {
            let slot = inner.users.remove(i);
            self.video.forget(&slot.info.id);
            tracing::warn!(connection = %self.id, user = %slot.info.id, "user cannot keep up with the display output; disconnecting it");
            let mut buf = Vec::new();
            guacr_protocol::handshake::write_error(
                &mut buf,
                "Client is not keeping up with the display output.",
                Status::ClientTimeout,
            );
            InstructionWriter::new(&mut buf, "disconnect").finish();
            let _ = slot.tx.send(Bytes::from(buf));
        }
        drop(inner);
        // Users first: a recording's writer task woken here must not run ahead
        // of the users' connection writers (keystroke echo latency).
        for t in &self.taps {
            t.output(&data);
        }
    }

    /// Sends `data` to one user (active or not). Returns false if it is gone.
    pub fn send_to(&self, user_id: &str, data: &[u8]) -> bool {
        let inner = self.lock();
        match inner.users.iter().find(|u| u.info.id == user_id) {
            Some(u) => {
                u.queued.fetch_add(data.len(), Ordering::Relaxed);
                self.bytes_sent.increment(data.len() as u64);
                u.tx.send(Bytes::copy_from_slice(data)).is_ok()
            }
            None => false,
        }
    }

    /// A strictly increasing `sync` timestamp (milliseconds since the epoch),
    /// so every frame's echo can be told apart.
    fn next_timestamp(&self) -> i64 {
        let now = now_millis();
        let mut prev = self.last_ts.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self.last_ts.compare_exchange_weak(
                prev,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(actual) => prev = actual,
            }
        }
    }

    /// Ends a frame: sends `sync,<ts>` to every active user and starts tracking its echo.
    pub fn end_frame(&self) -> i64 {
        let ts = self.next_timestamp();
        let mut buf = Vec::with_capacity(24);
        InstructionWriter::new(&mut buf, "sync").arg(&ts).finish();
        let bytes = Bytes::from(buf);
        let now = Instant::now();
        let mut inner = self.lock();
        for u in inner.users.iter_mut().filter(|u| u.active) {
            u.queued.fetch_add(bytes.len(), Ordering::Relaxed);
            let _ = u.tx.send(bytes.clone());
            if u.in_flight.len() >= MAX_TRACKED_FRAMES {
                u.in_flight.pop_front();
            }
            u.in_flight.push_back((ts, now));
        }
        drop(inner);
        for t in &self.taps {
            t.output(&bytes);
            t.frame();
        }
        ts
    }

    /// Passes raw upstream output (terminal bytes) to the taps.
    pub fn tap_upstream(&self, data: &Bytes) {
        for t in &self.taps {
            t.upstream(data);
        }
    }

    /// Resolves once the session is closed (every user was sent `disconnect`).
    pub async fn wait_closed(&self) {
        let mut rx = self.closed_tx.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// Sends `sync` to one user only (e.g. after its initial state).
    pub fn sync_user(&self, user_id: &str) {
        let ts = self.next_timestamp();
        let mut buf = Vec::with_capacity(24);
        InstructionWriter::new(&mut buf, "sync").arg(&ts).finish();
        let mut inner = self.lock();
        if let Some(u) = inner.users.iter_mut().find(|u| u.info.id == user_id) {
            u.queued.fetch_add(buf.len(), Ordering::Relaxed);
            let _ = u.tx.send(Bytes::from(buf));
            u.in_flight.push_back((ts, Instant::now()));
        }
    }

    /// Records a `sync` echo from a user. Returns false for a timestamp that was
    /// never sent (newer than the last one), a protocol violation that is ignored.
    pub fn ack(&self, user_id: &str, timestamp: i64) -> bool {
        if timestamp > self.last_ts.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        {
            let mut inner = self.lock();
            if let Some(u) = inner.users.iter_mut().find(|u| u.info.id == user_id) {
                while let Some(&(ts, sent)) = u.in_flight.front() {
                    if ts > timestamp {
                        break;
                    }
                    u.last_rtt = now.saturating_duration_since(sent);
                    u.in_flight.pop_front();
                }
            }
        }
        self.acked.notify_waiters();
        true
    }

    /// Current lag figures over the active users.
    pub fn timing(&self) -> FrameTiming {
        let now = Instant::now();
        let inner = self.lock();
        let mut t = FrameTiming::default();
        for u in inner.users.iter().filter(|u| u.active) {
            t.max_unacked = t.max_unacked.max(u.in_flight.len());
            let lag = u
                .in_flight
                .front()
                .map(|&(_, sent)| now.saturating_duration_since(sent))
                .unwrap_or(Duration::ZERO);
            t.max_lag = t.max_lag.max(lag);
        }
        t
    }

    /// Waits until no active user has more than `max_unacked` frames in flight,
    /// or `max_wait` passed (a stalled client must not freeze everyone else).
    pub async fn wait_for_clients(&self, max_unacked: usize, max_wait: Duration) {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let notified = self.acked.notified();
            if self.timing().max_unacked <= max_unacked {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Ends the session for everyone: `error` (if any) then `disconnect`.
    pub fn close(&self, error: Option<&SessionError>) {
        let mut buf = Vec::new();
        if let Some(e) = error {
            metrics::counter!("guacr_errors_total", "status" => e.status.code().to_string())
                .increment(1);
            guacr_protocol::handshake::write_error(&mut buf, &e.message, e.status);
        }
        InstructionWriter::new(&mut buf, "disconnect").finish();
        let bytes = Bytes::from(buf);
        let users = {
            let mut inner = self.lock();
            inner.closed = true;
            std::mem::take(&mut inner.users)
        };
        for u in users {
            let _ = u.tx.send(bytes.clone());
        }
        self.acked.notify_waiters();
        self.closed_tx.send_replace(true);
    }

    /// Ends the session on an administrator's request: every user gets
    /// `error` 523 (SESSION_CLOSED) with `reason`, then `disconnect`, and
    /// the handler is asked to stop.
    pub fn kill(&self, reason: &str) {
        self.close(Some(&SessionError::new(Status::SessionClosed, reason)));
        self.request_shutdown();
    }

    /// Closes one user's connection with an error, leaving the others.
    pub fn kick(&self, user_id: &str, error: &SessionError) {
        let slot = {
            let mut inner = self.lock();
            inner
                .users
                .iter()
                .position(|u| u.info.id == user_id)
                .map(|i| inner.users.remove(i))
        };
        self.video.forget(user_id);
        if let Some(slot) = slot {
            let mut buf = Vec::new();
            guacr_protocol::handshake::write_error(&mut buf, &error.message, error.status);
            InstructionWriter::new(&mut buf, "disconnect").finish();
            let _ = slot.tx.send(Bytes::from(buf));
            let _ = self.events.send(HandlerEvent::Left(slot.info.clone()));
            if self.lock().users.is_empty() {
                let _ = self.events.send(HandlerEvent::Shutdown);
            }
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
