//! The async driver shared by every text protocol: it connects a byte stream
//! from the remote side (an SSH channel, a Telnet socket, a database console)
//! to a [`guacr_terminal::Terminal`] and the terminal to a [`Session`].
//!
//! Upstream I/O stays in the protocol handler, which talks to the driver over
//! two channels ([`Upstream`]); the driver owns the terminal, the users' input
//! and the frame pacing:
//!
//! * the first change after a quiet period is drawn at once (keystroke echo
//!   latency), later changes are coalesced into frames at most every
//!   [`ConsoleOptions::frame_interval`];
//! * frames are held back while the slowest user has too many frames
//!   unacknowledged (`sync` echoes), as guacd does, without blocking input.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use guacr_protocol::{InstructionWriter, Status};
use guacr_session::{
    HandlerEvent, Input, ParamError, Params, Session, SessionContext, SessionError, UserInfo,
};
use guacr_terminal::{Terminal, TerminalConfig};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Terminal parameters every text protocol shares (guacd names).
pub const TERMINAL_ARGS: &[&str] = &[
    "font-name",
    "font-size",
    "color-scheme",
    "scrollback",
    "backspace",
    "terminal-type",
    "read-only",
    "disable-copy",
    "disable-paste",
];

/// Parameters that may change at runtime through `argv` (as in guacd).
pub const MUTABLE_ARGS: &[&str] = &["color-scheme", "font-name", "font-size"];

/// What the upstream side reports to the driver.
#[derive(Debug)]
pub enum UpstreamEvent {
    /// Terminal output from the remote side.
    Data(Bytes),
    /// The remote side ended: `None` is a normal end (shell exited).
    Closed(Option<SessionError>),
}

/// What the driver asks of the upstream side.
#[derive(Debug, PartialEq, Eq)]
pub enum UpstreamCommand {
    /// Bytes typed by a user (or terminal replies).
    Write(Bytes),
    /// The terminal size changed.
    Resize {
        cols: u16,
        rows: u16,
        width: u32,
        height: u32,
    },
}

/// The driver's ends of the upstream channels.
pub struct Upstream {
    pub events: mpsc::Receiver<UpstreamEvent>,
    pub commands: mpsc::UnboundedSender<UpstreamCommand>,
}

/// The handler's ends of the upstream channels.
pub struct UpstreamHandle {
    pub events: mpsc::Sender<UpstreamEvent>,
    pub commands: mpsc::UnboundedReceiver<UpstreamCommand>,
}

/// Creates the channel pair between a handler's I/O task and the driver.
pub fn upstream_channels() -> (Upstream, UpstreamHandle) {
    // A bounded queue of chunks gives backpressure to the remote side when
    // the terminal falls behind (it never does for long: feeding is cheap).
    let (etx, erx) = mpsc::channel(64);
    let (ctx, crx) = mpsc::unbounded_channel();
    (
        Upstream {
            events: erx,
            commands: ctx,
        },
        UpstreamHandle {
            events: etx,
            commands: crx,
        },
    )
}

/// Frame pacing.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleOptions {
    /// Minimum time between two frames while output keeps arriving.
    pub frame_interval: Duration,
    /// Frames a user may leave unacknowledged before drawing is held back.
    pub max_unacked_frames: usize,
    /// Beyond this lag a stalled user no longer holds frames back.
    pub max_hold: Duration,
    /// Most upstream bytes fed before looking at user input again.
    pub feed_budget: usize,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        ConsoleOptions {
            frame_interval: Duration::from_millis(40),
            max_unacked_frames: 3,
            max_hold: Duration::from_secs(2),
            feed_budget: 256 * 1024,
        }
    }
}

fn param_error(e: ParamError) -> SessionError {
    SessionError::new(e.status(), e.to_string())
}

/// Builds the terminal configuration from guacd's parameter names.
pub fn terminal_config(params: &Params, owner: &UserInfo) -> Result<TerminalConfig, SessionError> {
    let font_size: f32 = params.parse_or("font-size", 12.0).map_err(param_error)?;
    if !(4.0..=256.0).contains(&font_size) {
        return Err(SessionError::new(
            Status::ClientBadRequest,
            format!("font-size {font_size} is out of range (4 to 256)"),
        ));
    }
    let scrollback: usize = params.parse_or("scrollback", 1000).map_err(param_error)?;
    let backspace: u8 = params.parse_or("backspace", 127).map_err(param_error)?;
    Ok(TerminalConfig {
        font_name: params.get_or("font-name", "monospace").to_owned(),
        font_size,
        dpi: owner.client.dpi.clamp(48, 480),
        color_scheme: params.get_or("color-scheme", "").to_owned(),
        scrollback: scrollback.min(100_000),
        width: owner.client.width.clamp(64, 8192),
        height: owner.client.height.clamp(64, 8192),
        backspace,
        read_only: params.flag("read-only"),
        disable_copy: params.flag("disable-copy"),
        disable_paste: params.flag("disable-paste"),
    })
}

/// Creates the terminal for a session.
pub fn create_terminal(params: &Params, owner: &UserInfo) -> Result<Terminal, SessionError> {
    let cfg = terminal_config(params, owner)?;
    Terminal::new(cfg).map_err(|e| SessionError::new(Status::ServerError, e.to_string()))
}

struct Driver {
    session: Arc<Session>,
    term: Terminal,
    commands: mpsc::UnboundedSender<UpstreamCommand>,
    opts: ConsoleOptions,
    out: Vec<u8>,
    keys: Vec<u8>,
    last_frame: Option<Instant>,
    deadline: Option<Instant>,
    title: Option<String>,
    /// Display size in pixels, as last requested by a user.
    size: (u32, u32),
    encode_time: metrics::Histogram,
}

impl Driver {
    fn send_upstream(&self, data: &[u8]) {
        if !data.is_empty() {
            let _ = self
                .commands
                .send(UpstreamCommand::Write(Bytes::copy_from_slice(data)));
        }
    }

    fn feed(&mut self, data: &Bytes) {
        self.session.tap_upstream(data);
        self.term.feed(data);
        let replies = self.term.take_replies();
        self.send_upstream(&replies);
    }

    /// Decides when the pending changes are drawn.
    fn schedule(&mut self) {
        if self.deadline.is_some() || !self.term.has_damage() {
            return;
        }
        let now = Instant::now();
        self.deadline = Some(match self.last_frame {
            Some(t) if now.duration_since(t) < self.opts.frame_interval => {
                t + self.opts.frame_interval
            }
            _ => now,
        });
    }

    /// Draws a frame now if the clients keep up; otherwise postpones it.
    fn render(&mut self) {
        self.deadline = None;
        let timing = self.session.timing();
        if timing.max_unacked > self.opts.max_unacked_frames && timing.max_lag < self.opts.max_hold
        {
            self.deadline = Some(Instant::now() + Duration::from_millis(5));
            return;
        }
        self.out.clear();
        let started = std::time::Instant::now();
        self.term.render_frame(&mut self.out);
        self.encode_time.record(started.elapsed().as_secs_f64());
        let title = self.term.title().map(str::to_owned);
        if title != self.title {
            if let Some(t) = &title {
                InstructionWriter::new(&mut self.out, "name")
                    .arg(t.as_str())
                    .finish();
            }
            self.title = title;
        }
        if !self.out.is_empty() {
            self.session.broadcast(&self.out);
            self.session.end_frame();
            self.last_frame = Some(Instant::now());
        }
    }

    fn broadcast_clipboard(&mut self, text: &str) {
        const STREAM: i32 = 3;
        let mut buf = Vec::with_capacity(text.len() * 4 / 3 + 64);
        InstructionWriter::new(&mut buf, "clipboard")
            .arg(&STREAM)
            .arg("text/plain")
            .finish();
        for chunk in text.as_bytes().chunks(6048) {
            InstructionWriter::new(&mut buf, "blob")
                .arg(&STREAM)
                .arg_base64(chunk)
                .finish();
        }
        InstructionWriter::new(&mut buf, "end")
            .arg(&STREAM)
            .finish();
        self.session.broadcast(&buf);
    }

    fn resize(&mut self, width: u32, height: u32) {
        self.size = (width, height);
        let (old_c, old_r) = (self.term.cols(), self.term.rows());
        let (cols, rows) = self
            .term
            .resize(width.clamp(64, 8192), height.clamp(64, 8192));
        if (cols, rows) != (old_c, old_r) {
            let _ = self.commands.send(UpstreamCommand::Resize {
                cols,
                rows,
                width,
                height,
            });
        }
    }

    fn input(&mut self, user: &UserInfo, input: Input) {
        match input {
            Input::Key { keysym, pressed } => {
                self.keys.clear();
                self.term.key(keysym, pressed, &mut self.keys);
                let keys = std::mem::take(&mut self.keys);
                self.send_upstream(&keys);
                self.keys = keys;
            }
            Input::Mouse { x, y, mask } => {
                let r = self.term.mouse(x, y, mask);
                if let Some(text) = r.clipboard {
                    self.broadcast_clipboard(&text);
                }
            }
            Input::Size { width, height } => self.resize(width, height),
            Input::Clipboard { mimetype, data } => {
                if mimetype.starts_with("text/") {
                    let text = String::from_utf8_lossy(&data);
                    self.keys.clear();
                    self.term.paste(&text, &mut self.keys);
                    let keys = std::mem::take(&mut self.keys);
                    self.send_upstream(&keys);
                    self.keys = keys;
                }
            }
            Input::Argv { name, value } => {
                let result = match name.as_str() {
                    "color-scheme" => {
                        self.term.set_color_scheme(&value);
                        Ok(())
                    }
                    "font-name" => self.term.set_font(Some(&value), None),
                    "font-size" => match value.trim().parse::<f32>() {
                        Ok(size) if (4.0..=256.0).contains(&size) => {
                            self.term.set_font(None, Some(size))
                        }
                        _ => {
                            tracing::debug!(user = %user.id, "ignoring invalid font-size {value:?}");
                            Ok(())
                        }
                    },
                    _ => Ok(()),
                };
                if let Err(e) = result {
                    tracing::warn!(user = %user.id, "could not apply {name}: {e}");
                }
                // A font change changes the grid size.
                let (w, h) = self.size;
                self.resize(w, h);
            }
            Input::Other(_) => {}
        }
    }

    fn joined(&mut self, user: &UserInfo) {
        // Bring everyone to the current state first so the joiner's full
        // picture and the next broadcast delta start from the same point.
        if self.term.has_damage() {
            self.deadline = None;
            self.out.clear();
            self.term.render_frame(&mut self.out);
            if !self.out.is_empty() {
                self.session.broadcast(&self.out);
                self.session.end_frame();
                self.last_frame = Some(Instant::now());
            }
        }
        let mut full = Vec::new();
        if let Some(t) = &self.title {
            InstructionWriter::new(&mut full, "name")
                .arg(t.as_str())
                .finish();
        }
        self.term.render_full(&mut full);
        self.session.send_to(&user.id, &full);
        self.session.sync_user(&user.id);
        self.session.activate(&user.id);
    }
}

/// Runs a terminal session until the remote side ends or every user has left.
pub async fn run(
    ctx: SessionContext,
    term: Terminal,
    mut upstream: Upstream,
    opts: ConsoleOptions,
) -> Result<(), SessionError> {
    let SessionContext {
        session,
        mut events,
        owner,
        ..
    } = ctx;
    let encode_time = metrics::histogram!("guacr_frame_encode_seconds", "protocol" => session.protocol().to_owned());
    let mut d = Driver {
        session,
        term,
        commands: upstream.commands.clone(),
        opts,
        out: Vec::with_capacity(64 * 1024),
        keys: Vec::with_capacity(64),
        last_frame: None,
        deadline: None,
        title: None,
        size: (owner.client.width, owner.client.height),
        encode_time,
    };
    // The first frame: an empty terminal, so clients see the screen at once.
    d.render();
    loop {
        let deadline = d.deadline;
        tokio::select! {
            biased;
            ev = events.recv() => match ev {
                HandlerEvent::Input { user, input } => d.input(&user, input),
                HandlerEvent::Joined(user) => d.joined(&user),
                HandlerEvent::Left(_) => {}
                HandlerEvent::Shutdown => {
                    if d.session.user_count() == 0 || d.session.is_shutting_down() {
                        return Ok(());
                    }
                }
            },
            up = upstream.events.recv() => match up {
                Some(UpstreamEvent::Data(data)) => {
                    d.feed(&data);
                    // Drain what is already queued, up to a budget, before drawing.
                    let mut fed = data.len();
                    while fed < d.opts.feed_budget {
                        match upstream.events.try_recv() {
                            Ok(UpstreamEvent::Data(more)) => {
                                fed += more.len();
                                d.feed(&more);
                            }
                            Ok(UpstreamEvent::Closed(reason)) => {
                                d.render_final();
                                return reason.map_or(Ok(()), Err);
                            }
                            Err(_) => break,
                        }
                    }
                }
                Some(UpstreamEvent::Closed(reason)) => {
                    d.render_final();
                    return reason.map_or(Ok(()), Err);
                }
                None => {
                    d.render_final();
                    return Ok(());
                }
            },
            _ = sleep_until_opt(deadline) => d.render(),
        }
        d.schedule();
        // A frame due now is drawn now: going through the timer would add a
        // tick (~1 ms) to every keystroke echo.
        if d.deadline.is_some_and(|t| t <= Instant::now()) {
            d.render();
        }
    }
}

impl Driver {
    fn render_final(&mut self) {
        self.out.clear();
        self.term.render_frame(&mut self.out);
        if !self.out.is_empty() {
            self.session.broadcast(&self.out);
            self.session.end_frame();
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Asks a question in the terminal before the upstream exists (guacd prompts
/// for a missing SSH username or password this way) and returns the line typed.
///
/// Handles typing, backspace, paste, resize and users joining meanwhile.
/// With `echo` false nothing typed is shown (passwords).
pub async fn read_line(
    ctx: &mut SessionContext,
    term: &mut Terminal,
    prompt: &str,
    echo: bool,
) -> Result<String, SessionError> {
    let session = ctx.session.clone();
    let mut out = Vec::new();
    let mut line = String::new();
    let mut keys = Vec::new();
    let draw = |term: &mut Terminal, out: &mut Vec<u8>| {
        out.clear();
        term.render_frame(out);
        if !out.is_empty() {
            session.broadcast(out);
            session.end_frame();
        }
    };
    term.feed(prompt.as_bytes());
    draw(term, &mut out);
    loop {
        match ctx.events.recv().await {
            HandlerEvent::Shutdown => {
                if session.user_count() == 0 || session.is_shutting_down() {
                    return Err(SessionError::new(Status::SessionClosed, "Every user left."));
                }
            }
            HandlerEvent::Joined(user) => {
                draw(term, &mut out);
                let mut full = Vec::new();
                term.render_full(&mut full);
                session.send_to(&user.id, &full);
                session.sync_user(&user.id);
                session.activate(&user.id);
            }
            HandlerEvent::Left(_) => {}
            HandlerEvent::Input { input, .. } => {
                let typed: Vec<u8> = match input {
                    Input::Key { keysym, pressed } => {
                        keys.clear();
                        term.key(keysym, pressed, &mut keys);
                        keys.clone()
                    }
                    Input::Clipboard { data, .. } => data,
                    Input::Size { width, height } => {
                        term.resize(width.clamp(64, 8192), height.clamp(64, 8192));
                        Vec::new()
                    }
                    _ => Vec::new(),
                };
                for ch in String::from_utf8_lossy(&typed).chars() {
                    match ch {
                        '\r' | '\n' => {
                            term.feed(b"\r\n");
                            draw(term, &mut out);
                            return Ok(line);
                        }
                        '\u{7f}' | '\u{8}' if line.pop().is_some() && echo => {
                            term.feed(b"\x08 \x08");
                        }
                        c if !c.is_control() => {
                            line.push(c);
                            if echo {
                                let mut b = [0u8; 4];
                                term.feed(c.encode_utf8(&mut b).as_bytes());
                            }
                        }
                        _ => {}
                    }
                }
                draw(term, &mut out);
            }
        }
    }
}

/// Opens the TCP connection to the remote host with guacd-compatible errors:
/// refused or unresolvable → 519 UPSTREAM_NOT_FOUND, no answer within
/// `timeout` → 514 UPSTREAM_TIMEOUT.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, SessionError> {
    let addr = format!("{host}:{port}");
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Err(_) => Err(SessionError::new(
            Status::UpstreamTimeout,
            format!("Timed out connecting to {addr}."),
        )),
        Ok(Err(e)) => Err(SessionError::new(
            Status::UpstreamNotFound,
            format!("Unable to connect to {addr}: {e}."),
        )),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

/// Readiness of the terminal stack: the default font must load.
pub fn health() -> Result<(), String> {
    guacr_terminal::FontSet::get("monospace", 12.0, 96)
        .map(|_| ())
        .map_err(|e| format!("terminal font unavailable: {e}"))
}

/// Runs `setup` (connecting, authenticating…) unless every user leaves first:
/// then the setup is dropped (no login happens for nobody) and the session ends.
pub async fn unless_abandoned<F: std::future::Future>(
    session: &Session,
    setup: F,
) -> Result<F::Output, SessionError> {
    let abandoned = async {
        while session.user_count() > 0 && !session.is_shutting_down() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        out = setup => Ok(out),
        _ = abandoned => Err(SessionError::new(Status::SessionClosed, "Every user left before the connection was established.")),
    }
}
