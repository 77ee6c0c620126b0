//! The async driver: socket ⇄ [`RfbClient`] ⇄ [`Display`] ⇄ [`Session`].
//!
//! One task per session. It reads the server, feeds the sans-IO RFB core,
//! applies the decoded rectangles to the display framebuffer at once and
//! draws frames paced like the console driver: the first change after a quiet
//! period goes out at once, later ones are coalesced at most every
//! `frame_interval`, and drawing waits while the slowest user has too many
//! frames unacknowledged. Encoding runs on the display's worker pool.
//! Framebuffer update requests are paced by the same rule, so a lagging
//! client also slows the VNC server down instead of piling up work.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use guacr_display::{Display, DisplayConfig, DisplayError, GraphicalTuning, Tuning};
use guacr_protocol::{InstructionWriter, Status};
use guacr_rfb::{
    Encoding, Event, PixelFormatRequest, ResizeReason, ResizeStatus, RfbClient, RfbConfig, RfbError,
};
use guacr_session::{
    HandlerEvent, Input, Protocol, ProtocolFuture, Session, SessionContext, SessionError,
    SessionEvents, UserInfo,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::settings::{VNC_ARGS, VncSettings};

/// Broadcast stream index for clipboard data (odd: broadcast; the display
/// uses 1 for images).
const CLIPBOARD_STREAM: i32 = 3;
/// Delay between connection attempts with `autoretry` (guacd: 1 s).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How long the owner has to answer `required` with the credentials.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a held-back update request is reconsidered while clients lag.
const LAG_POLL: Duration = Duration::from_millis(10);

/// The `vnc` protocol.
#[derive(Clone, Default)]
pub struct Vnc {
    /// Timeouts, frame pacing and the encoding pool.
    pub tuning: GraphicalTuning,
}

impl std::fmt::Debug for Vnc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vnc").field("tuning", &self.tuning).finish()
    }
}

impl Protocol for Vnc {
    fn name(&self) -> &'static str {
        "vnc"
    }

    fn graphical(&self) -> bool {
        true
    }

    fn arg_names(&self) -> &'static [&'static str] {
        VNC_ARGS
    }

    fn run(&self, ctx: SessionContext) -> ProtocolFuture {
        let opts = self.tuning.resolve(Duration::from_secs(15));
        Box::pin(run(ctx, opts))
    }
}

type Options = Tuning;

// ------------------------------------------------------------------ stream

/// The server connection: plain TCP, or TLS after VeNCrypt asked for it.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Only while upgrading.
    Gone,
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl Conn {
    async fn start_tls(&mut self, host: &str) -> Result<(), SessionError> {
        let Conn::Plain(tcp) = std::mem::replace(self, Conn::Gone) else {
            return Err(upstream("The VNC server asked for TLS twice."));
        };
        let connector = crate::tls::connector()
            .map_err(|e| SessionError::new(Status::ServerError, format!("TLS setup: {e}")))?;
        let tls = connector
            .connect(crate::tls::server_name(host), tcp)
            .await
            .map_err(|e| upstream(format!("TLS handshake with the VNC server failed: {e}")))?;
        *self = Conn::Tls(Box::new(tls));
        Ok(())
    }
}

// ------------------------------------------------------------------ errors

fn upstream(msg: impl Into<String>) -> SessionError {
    SessionError::new(Status::UpstreamError, msg)
}

/// The Guacamole error for an RFB failure.
pub fn rfb_error(e: &RfbError) -> SessionError {
    match e {
        RfbError::AuthFailed(reason) => SessionError::new(
            Status::ClientUnauthorized,
            format!("VNC authentication failed: {reason}"),
        ),
        RfbError::Closed => upstream("The VNC server closed the connection."),
        other => upstream(other.to_string()),
    }
}

fn display_error(e: &DisplayError) -> SessionError {
    SessionError::new(e.status(), format!("VNC server sent bad display data: {e}"))
}

fn io_error(e: &io::Error) -> SessionError {
    upstream(format!("Lost the connection to the VNC server: {e}"))
}

// ------------------------------------------------------------------ setup

fn rfb_config(s: &VncSettings) -> RfbConfig {
    let mut encodings: Vec<Encoding> = match &s.encodings {
        Some(words) => words
            .iter()
            .filter_map(|w| Encoding::from_name(w))
            .collect(),
        None => Encoding::default_list()
            .into_iter()
            .filter(|e| !e.is_pseudo())
            .collect(),
    };
    if encodings.is_empty() {
        encodings.push(Encoding::Raw);
    }
    if !s.remote_cursor {
        encodings.extend([Encoding::Cursor, Encoding::XCursor]);
    }
    encodings.extend([
        Encoding::DesktopSize,
        Encoding::ExtendedDesktopSize,
        Encoding::LastRect,
        Encoding::DesktopName,
    ]);
    RfbConfig {
        password: s.password.clone(),
        username: s.username.clone(),
        shared: true,
        encodings,
        // Ask for lossless data: the display decides what to send lossy.
        jpeg_quality: None,
        compress_level: None,
        pixel_format: s
            .color_depth
            .and_then(PixelFormatRequest::from_color_depth)
            .unwrap_or_default(),
        swap_red_blue: s.swap_red_blue,
        allow_tls: true,
        allow_plain_without_tls: false,
        auto_update_requests: false,
        max_cut_text: 1 << 20,
    }
}

/// A connected, authenticated RFB session (ServerInit received).
struct Connected {
    conn: Conn,
    rfb: RfbClient,
    width: u16,
    height: u16,
    name: String,
    /// Events decoded after `Connected` in the same read.
    pending: Vec<Event>,
}

async fn write_output(conn: &mut Conn, rfb: &mut RfbClient) -> Result<(), SessionError> {
    if rfb.has_output() {
        let out = rfb.take_output();
        conn.write_all(&out).await.map_err(|e| io_error(&e))?;
    }
    Ok(())
}

/// Connects and runs the RFB handshake up to ServerInit. Asks the owner for
/// missing credentials with `required` (protocol ≥ 1.3).
async fn connect(
    s: &VncSettings,
    opts: &Options,
    session: &Session,
    owner: &UserInfo,
    events: &mut SessionEvents,
    deferred: &mut Vec<HandlerEvent>,
) -> Result<Connected, SessionError> {
    let tcp = guacr_console::connect_tcp(&s.hostname, s.port, opts.connect_timeout).await?;
    let mut conn = Conn::Plain(tcp);
    let mut rfb = RfbClient::new(rfb_config(s));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        write_output(&mut conn, &mut rfb).await?;
        let n = match tokio::time::timeout(opts.handshake_timeout, conn.read(&mut buf)).await {
            Err(_) => {
                return Err(SessionError::new(
                    Status::UpstreamTimeout,
                    "The VNC server did not complete the handshake in time.",
                ));
            }
            Ok(Err(e)) => return Err(io_error(&e)),
            Ok(Ok(0)) => return Err(rfb_error(&rfb.eof())),
            Ok(Ok(n)) => n,
        };
        let fed = rfb.feed(&buf[..n]);
        let mut connected = None;
        let mut pending = Vec::new();
        while let Some(ev) = rfb.poll_event() {
            match ev {
                Event::AuthFailed { reason } => {
                    return Err(rfb_error(&RfbError::AuthFailed(reason)));
                }
                Event::StartTls { .. } => {
                    write_output(&mut conn, &mut rfb).await?;
                    conn.start_tls(&s.hostname).await?;
                    rfb.tls_established().map_err(|e| rfb_error(&e))?;
                }
                Event::CredentialsRequired { username, password } => {
                    let (u, p) =
                        ask_credentials(session, owner, events, deferred, username, password)
                            .await?;
                    rfb.provide_credentials(u, p).map_err(|e| rfb_error(&e))?;
                }
                Event::Connected {
                    width,
                    height,
                    name,
                    ..
                } => connected = Some((width, height, name)),
                other if connected.is_some() => pending.push(other),
                _ => {}
            }
        }
        fed.map_err(|e| rfb_error(&e))?;
        if let Some((width, height, name)) = connected {
            write_output(&mut conn, &mut rfb).await?;
            return Ok(Connected {
                conn,
                rfb,
                width,
                height,
                name,
                pending,
            });
        }
    }
}

/// guacd's `required`: asks the owner for the missing values and waits for
/// them as `argv` streams.
async fn ask_credentials(
    session: &Session,
    owner: &UserInfo,
    events: &mut SessionEvents,
    deferred: &mut Vec<HandlerEvent>,
    need_username: bool,
    need_password: bool,
) -> Result<(Option<String>, Option<String>), SessionError> {
    if !owner.version.supports_required() {
        return Err(SessionError::new(
            Status::ClientUnauthorized,
            "The VNC server requires credentials that were not provided.",
        ));
    }
    let mut names = Vec::new();
    if need_username {
        names.push("username");
    }
    if need_password {
        names.push("password");
    }
    let mut buf = Vec::new();
    let mut w = InstructionWriter::new(&mut buf, "required");
    for n in &names {
        w = w.arg(*n);
    }
    w.finish();
    session.send_to(&owner.id, &buf);
    let (mut username, mut password) = (None, None);
    let deadline = Instant::now() + CREDENTIALS_TIMEOUT;
    while (need_username && username.is_none()) || (need_password && password.is_none()) {
        let Ok(ev) = tokio::time::timeout_at(deadline, events.recv()).await else {
            return Err(SessionError::new(
                Status::ClientUnauthorized,
                "The VNC server requires credentials that were not provided in time.",
            ));
        };
        match ev {
            HandlerEvent::Input {
                user,
                input: Input::Argv { name, value },
            } if user.owner => match name.as_str() {
                "username" => username = Some(value),
                "password" => password = Some(value),
                _ => {}
            },
            HandlerEvent::Shutdown => {
                if session.user_count() == 0 || session.is_shutting_down() {
                    return Err(SessionError::new(
                        Status::ClientUnauthorized,
                        "Every user left before credentials were given.",
                    ));
                }
            }
            ev @ (HandlerEvent::Joined(_) | HandlerEvent::Left(_)) => deferred.push(ev),
            HandlerEvent::Input { .. } => {}
        }
    }
    Ok((username, password))
}

// ------------------------------------------------------------------ running

struct Driver {
    session: Arc<Session>,
    settings: VncSettings,
    opts: Options,
    rfb: RfbClient,
    display: Display,
    out: Vec<u8>,
    last_frame: Option<Instant>,
    deadline: Option<Instant>,
    /// An incremental update request is owed to the server (held back while
    /// clients lag).
    update_owed: bool,
    /// Whether a FramebufferUpdateRequest is outstanding.
    update_pending: bool,
    name: String,
    name_sent: bool,
    /// Latest size asked by the owner, not yet sent (one request at a time).
    wanted_size: Option<(u16, u16)>,
    resize_in_flight: bool,
    encode_time: metrics::Histogram,
}

impl Driver {
    fn lagging(&self) -> bool {
        let t = self.session.timing();
        t.max_unacked > self.opts.max_unacked && t.max_lag < self.opts.max_hold
    }

    fn apply(&mut self, ev: Event) -> Result<(), SessionError> {
        match ev {
            Event::Pixels { x, y, w, h, data } => self
                .display
                .put_pixels(
                    u32::from(x),
                    u32::from(y),
                    u32::from(w),
                    u32::from(h),
                    &data,
                    usize::from(w),
                )
                .map_err(|e| display_error(&e)),
            Event::Fill { x, y, w, h, color } => self
                .display
                .fill(
                    u32::from(x),
                    u32::from(y),
                    u32::from(w),
                    u32::from(h),
                    color,
                )
                .map_err(|e| display_error(&e)),
            Event::Copy {
                src_x,
                src_y,
                x,
                y,
                w,
                h,
            } => self
                .display
                .copy(
                    u32::from(src_x),
                    u32::from(src_y),
                    u32::from(x),
                    u32::from(y),
                    u32::from(w),
                    u32::from(h),
                )
                .map_err(|e| display_error(&e)),
            Event::Cursor {
                hotspot_x,
                hotspot_y,
                w,
                h,
                rgba,
            } => {
                if w == 0 || h == 0 {
                    self.display.hide_cursor();
                    Ok(())
                } else {
                    match self.display.set_cursor(
                        u32::from(hotspot_x),
                        u32::from(hotspot_y),
                        u32::from(w),
                        u32::from(h),
                        &rgba,
                    ) {
                        Ok(()) => Ok(()),
                        // An odd cursor is not worth ending the session for.
                        Err(e) => {
                            tracing::debug!("ignoring VNC cursor: {e}");
                            Ok(())
                        }
                    }
                }
            }
            Event::Resize {
                width,
                height,
                reason,
                status,
            } => {
                if reason == ResizeReason::ThisClient {
                    self.resize_in_flight = false;
                    if status != ResizeStatus::Ok {
                        tracing::info!(
                            "the VNC server refused to resize the desktop to the client's size: {status:?}"
                        );
                    }
                }
                if (u32::from(width), u32::from(height))
                    != (self.display.width(), self.display.height())
                {
                    self.display
                        .resize(u32::from(width), u32::from(height))
                        .map_err(|e| display_error(&e))?;
                }
                Ok(())
            }
            Event::DesktopName(name) => {
                self.name = name;
                self.name_sent = false;
                Ok(())
            }
            Event::UpdateBegin => Ok(()),
            Event::UpdateEnd => {
                self.update_pending = false;
                self.update_owed = true;
                Ok(())
            }
            Event::Bell => Ok(()),
            Event::ServerCutText(bytes) => {
                if !self.settings.disable_copy {
                    let text = self.settings.clipboard_encoding.decode(&bytes);
                    self.broadcast_clipboard(&text);
                }
                Ok(())
            }
            Event::Connected { .. }
            | Event::AuthFailed { .. }
            | Event::StartTls { .. }
            | Event::CredentialsRequired { .. } => Ok(()),
        }
    }

    fn broadcast_clipboard(&mut self, text: &str) {
        let mut buf = Vec::with_capacity(text.len() * 4 / 3 + 64);
        InstructionWriter::new(&mut buf, "clipboard")
            .arg(&CLIPBOARD_STREAM)
            .arg("text/plain")
            .finish();
        for chunk in text.as_bytes().chunks(guacr_display::BLOB_MAX) {
            InstructionWriter::new(&mut buf, "blob")
                .arg(&CLIPBOARD_STREAM)
                .arg_base64(chunk)
                .finish();
        }
        InstructionWriter::new(&mut buf, "end")
            .arg(&CLIPBOARD_STREAM)
            .finish();
        self.session.broadcast(&buf);
    }

    /// Requests the next update from the server unless clients lag.
    fn maybe_request_update(&mut self) {
        if self.update_owed && !self.update_pending && !self.lagging() {
            self.rfb.request_update(true);
            self.update_owed = false;
            self.update_pending = true;
        }
    }

    /// Decides when pending changes are drawn.
    fn schedule(&mut self) {
        let dirty = self.display.has_changes() || !self.name_sent;
        if self.deadline.is_some() {
            return;
        }
        if !dirty {
            // A still screen: lossy (JPEG) areas are redrawn exactly once their
            // refinement is due, without waiting for the next server update.
            self.deadline = self.display.next_refinement().map(Instant::from_std);
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

    fn write_name(&mut self, buf: &mut Vec<u8>) {
        if !self.name.is_empty() {
            InstructionWriter::new(buf, "name")
                .arg(self.name.as_str())
                .finish();
        }
    }

    /// Draws a frame now if the clients keep up; otherwise postpones it.
    async fn render(&mut self, force: bool) {
        self.deadline = None;
        if !force && self.lagging() {
            self.deadline = Some(Instant::now() + Duration::from_millis(5));
            return;
        }
        let t = self.session.timing();
        self.display.note_timing(t.max_unacked, t.max_lag);
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        if !self.name_sent {
            self.write_name(&mut out);
            self.name_sent = true;
        }
        // Video watchers get the new screen before the images are encoded
        // (the framebuffer already holds it): the encoding is not on their path.
        if self.display.has_changes() {
            self.publish_video();
        }
        if self.session.images_wanted() {
            let started = std::time::Instant::now();
            self.display.take_frame_async(&mut out).await;
            self.encode_time.record(started.elapsed().as_secs_f64());
        } else {
            // Every user watches the video: no image is encoded until
            // someone draws from `img` again.
            self.display.take_frame_deferred(&mut out);
            self.session.video().note_deferred();
        }
        if !out.is_empty() {
            self.session.broadcast(&out);
            self.session.end_frame();
            self.last_frame = Some(Instant::now());
        }
        self.out = out;
    }

    /// Hands the screen to a video transport (WebRTC) if one watches; a
    /// pending refresh request is answered by the same copy.
    fn publish_video(&self) {
        let video = self.session.video();
        // Cleared even with nobody watching (a subscriber that left at once),
        // or the select loop would wake for it forever.
        video.take_refresh();
        if !video.wanted() {
            return;
        }
        self.display.with_framebuffer(|fb| {
            video.publish(fb.width(), fb.height(), fb.pixels(), fb.width() as usize)
        });
    }

    async fn joined(&mut self, user: &UserInfo) {
        self.repaint(&user.id).await;
        self.session.activate(&user.id);
    }

    /// Sends one user the whole picture (a joiner, or a user whose video
    /// stopped). Everyone first reaches the current state, so this picture
    /// and the next broadcast delta start from the same point.
    async fn repaint(&mut self, user_id: &str) {
        if self.display.has_changes() || self.display.has_held_changes() || !self.name_sent {
            self.render(true).await;
        }
        let mut full = Vec::new();
        self.write_name(&mut full);
        self.display.full_repaint_async(&mut full).await;
        if self.session.send_to(user_id, &full) {
            self.session.sync_user(user_id);
        }
    }

    /// A new video watcher waits for the whole screen; users whose video
    /// stopped wait for their `img` repaint.
    async fn video_requests(&mut self) {
        self.publish_video();
        for user in self.session.video().take_repaints() {
            self.repaint(&user).await;
        }
    }

    fn input(&mut self, user: &UserInfo, input: Input) {
        if self.settings.read_only {
            return;
        }
        match input {
            Input::Key { keysym, pressed } => self.rfb.key(keysym, pressed),
            Input::Mouse { x, y, mask } => {
                let x = x.clamp(0, i32::from(u16::MAX)) as u16;
                let y = y.clamp(0, i32::from(u16::MAX)) as u16;
                self.rfb.pointer(x, y, (mask & 0xff) as u8);
            }
            Input::Size { width, height } => {
                if user.owner {
                    self.wanted_size = Some((
                        width.clamp(1, u32::from(guacr_rfb::MAX_DIMENSION)) as u16,
                        height.clamp(1, u32::from(guacr_rfb::MAX_DIMENSION)) as u16,
                    ));
                    self.send_resize();
                }
            }
            Input::Clipboard { mimetype, data } => {
                if !self.settings.disable_paste && mimetype.starts_with("text/") {
                    let text = String::from_utf8_lossy(&data);
                    let bytes = self.settings.clipboard_encoding.encode(&text);
                    self.rfb.cut_text(&bytes);
                }
            }
            Input::Argv { .. } | Input::Other(_) => {}
        }
    }

    /// Sends the owner's latest size to a server that can resize, one
    /// request at a time.
    fn send_resize(&mut self) {
        if self.resize_in_flight || !self.rfb.can_resize() {
            return;
        }
        let Some((w, h)) = self.wanted_size.take() else {
            return;
        };
        if (u32::from(w), u32::from(h)) == (self.display.width(), self.display.height()) {
            return;
        }
        match self.rfb.set_desktop_size(w, h) {
            Ok(()) => self.resize_in_flight = true,
            Err(e) => tracing::debug!("not resizing the VNC desktop: {e}"),
        }
    }
}

async fn run(mut ctx: SessionContext, opts: Options) -> Result<(), SessionError> {
    let settings = VncSettings::from_params(&ctx.params)?;
    let session = ctx.session.clone();
    let owner = ctx.owner.clone();
    let mut deferred = Vec::new();
    let mut attempt = 0u32;
    let connected = loop {
        let result = guacr_console::unless_abandoned(
            &session,
            connect(
                &settings,
                &opts,
                &session,
                &owner,
                &mut ctx.events,
                &mut deferred,
            ),
        )
        .await?;
        match result {
            Ok(c) => break c,
            Err(e) if attempt < settings.autoretry && e.status != Status::ClientUnauthorized => {
                attempt += 1;
                tracing::info!(
                    "VNC connection attempt {attempt} failed ({}); retrying",
                    e.message
                );
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
            Err(e) => return Err(e),
        }
    };
    tracing::info!(
        host = %settings.hostname,
        port = settings.port,
        width = connected.width,
        height = connected.height,
        "VNC connection established"
    );
    let Connected {
        mut conn,
        rfb,
        width,
        height,
        name,
        pending,
    } = connected;
    let mut cfg = DisplayConfig::new(u32::from(width), u32::from(height))
        .with_image_mimetypes(&owner.client.image_mimetypes)
        .with_lossless(settings.force_lossless);
    cfg.max_frame_rate = (1000 / opts.frame_interval.as_millis().max(1)).clamp(1, 1000) as u32;
    cfg.pool = opts.pool.clone();
    let display = Display::new(cfg).map_err(|e| display_error(&e))?;
    let encode_time = metrics::histogram!("guacr_frame_encode_seconds", "protocol" => "vnc");
    let mut d = Driver {
        session: session.clone(),
        settings,
        opts,
        rfb,
        display,
        out: Vec::with_capacity(256 * 1024),
        last_frame: None,
        deadline: None,
        update_owed: false,
        // ServerInit handling queued the first (full) update request.
        update_pending: true,
        name,
        name_sent: false,
        wanted_size: None,
        resize_in_flight: false,
        encode_time,
    };
    for ev in pending {
        d.apply(ev)?;
    }
    for ev in deferred {
        if let HandlerEvent::Joined(user) = ev {
            d.joined(&user).await;
        }
    }
    d.schedule();
    let mut rbuf = vec![0u8; 256 * 1024];
    let mut events = ctx.events;
    loop {
        d.schedule();
        // A due frame goes first: a server streaming without pause must not
        // starve the timer branch below.
        if d.deadline.is_some_and(|t| t <= Instant::now()) {
            d.render(false).await;
        }
        d.maybe_request_update();
        d.send_resize();
        write_output(&mut conn, &mut d.rfb).await?;
        d.schedule();
        // An update request held back while clients lagged: look again soon
        // (their `sync` echoes do not wake this task).
        let deadline = match (d.deadline, d.update_owed && !d.update_pending) {
            (Some(t), true) => Some(t.min(Instant::now() + LAG_POLL)),
            (None, true) => Some(Instant::now() + LAG_POLL),
            (t, false) => t,
        };
        tokio::select! {
            biased;
            ev = events.recv() => match ev {
                HandlerEvent::Input { user, input } => d.input(&user, input),
                HandlerEvent::Joined(user) => d.joined(&user).await,
                HandlerEvent::Left(_) => {}
                HandlerEvent::Shutdown => {
                    if session.user_count() == 0 || session.is_shutting_down() {
                        let _ = conn.shutdown().await;
                        return Ok(());
                    }
                }
            },
            r = conn.read(&mut rbuf) => {
                let n = match r {
                    Ok(0) => return Err(rfb_error(&d.rfb.eof())),
                    Ok(n) => n,
                    Err(e) => return Err(io_error(&e)),
                };
                let fed = d.rfb.feed(&rbuf[..n]);
                while let Some(ev) = d.rfb.poll_event() {
                    d.apply(ev)?;
                }
                fed.map_err(|e| rfb_error(&e))?;
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                if d.deadline.is_some_and(|t| t <= Instant::now()) {
                    d.render(false).await;
                }
            }
            _ = session.video().refresh_requested() => d.video_requests().await,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guacr_session::Params;

    fn settings(pairs: &[(&str, &str)]) -> VncSettings {
        let mut all = vec![("hostname", "h")];
        all.extend_from_slice(pairs);
        VncSettings::from_params(&Params::from_pairs(all)).unwrap()
    }

    #[test]
    fn encodings_follow_the_parameters() {
        let c = rfb_config(&settings(&[]));
        assert!(c.encodings.contains(&Encoding::Tight));
        assert!(c.encodings.contains(&Encoding::Cursor));
        assert!(!c.auto_update_requests);
        let c = rfb_config(&settings(&[
            ("encodings", "hextile raw zlib"),
            ("cursor", "remote"),
        ]));
        assert_eq!(&c.encodings[..2], &[Encoding::Hextile, Encoding::Raw]);
        assert!(!c.encodings.contains(&Encoding::Cursor));
        assert!(c.encodings.contains(&Encoding::ExtendedDesktopSize));
        let c = rfb_config(&settings(&[("encodings", "ultra")]));
        assert_eq!(c.encodings[0], Encoding::Raw);
    }

    #[test]
    fn color_depth_and_swap() {
        let c = rfb_config(&settings(&[
            ("color-depth", "16"),
            ("swap-red-blue", "true"),
        ]));
        assert_eq!(c.pixel_format, PixelFormatRequest::Depth(16));
        assert!(c.swap_red_blue);
        assert_eq!(
            rfb_config(&settings(&[])).pixel_format,
            PixelFormatRequest::Depth(24)
        );
    }

    #[test]
    fn auth_failures_are_769() {
        let e = rfb_error(&RfbError::AuthFailed("Authentication failure".into()));
        assert_eq!(e.status, Status::ClientUnauthorized);
        assert!(e.message.contains("Authentication failure"));
        assert_eq!(
            rfb_error(&RfbError::Protocol("junk".into())).status,
            Status::UpstreamError
        );
    }
}
