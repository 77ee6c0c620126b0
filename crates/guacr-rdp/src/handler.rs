//! The async driver: RDP server ⇄ IronRDP active stage ⇄ [`Display`] ⇄ [`Session`].
//!
//! One task per session, no threads of its own: the server's PDUs are
//! decoded by IronRDP's active stage into its image (`BgrX32`, the display's
//! native layout), the changed rectangles are copied into the display's
//! framebuffer at once, and frames are drawn paced by the clients' `sync`
//! lag (encoding runs on the display's shared worker pool).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use guacr_display::{
    Display, DisplayConfig, DisplayError, GraphicalTuning, PixelFormat as DisplayFormat, Tuning,
};
use guacr_protocol::{InstructionWriter, Status};
use guacr_session::{
    HandlerEvent, Input, ParamSpec, Protocol, ProtocolFuture, Session, SessionContext,
    SessionError, SessionEvents, UserInfo,
};
use ironrdp_cliprdr::CliprdrClient;
use ironrdp_connector::ClientConnector;
use ironrdp_connector::connection_activation::ConnectionActivationState;
use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_pdu::geometry::InclusiveRectangle;
use ironrdp_pdu::input::fast_path::FastPathInputEvent;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{
    ActiveStage, ActiveStageBuilder, ActiveStageOutput, GracefulDisconnectReason,
};
use ironrdp_svc::SvcProcessorMessages;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::audio::{self, AudioReceiver, AudioStream};
use crate::clipboard::{self, ClipboardSettings, LineEndings};
use crate::connect::{self, ConnectRequest, Connected, UpgradedFramed};
use crate::input::{MouseState, key_events, synchronize};
use crate::keymap::{KeyMapper, Layout};
use crate::settings::{RDP_ARGS, RdpSettings, ResizeMethod, clamp_size};

/// Broadcast stream index for clipboard data (odd: broadcast; the display uses 1).
const CLIPBOARD_STREAM: i32 = 3;
/// Broadcast stream index for audio (odd: broadcast).
const AUDIO_STREAM: i32 = 5;
/// How long the owner has to answer `required` with the credentials.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the server has to reactivate after a display update.
const DISPLAY_UPDATE_TIMEOUT: Duration = Duration::from_secs(3);
/// A size change settles for this long before the desktop follows it.
const RESIZE_SETTLE: Duration = Duration::from_millis(300);

/// The `rdp` protocol.
#[derive(Clone, Default)]
pub struct Rdp {
    /// Timeouts, frame pacing and the encoding pool.
    pub tuning: GraphicalTuning,
}

impl std::fmt::Debug for Rdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rdp").field("tuning", &self.tuning).finish()
    }
}

impl Protocol for Rdp {
    fn name(&self) -> &'static str {
        "rdp"
    }

    fn arg_names(&self) -> &'static [&'static str] {
        RDP_ARGS
    }

    fn param_specs(&self) -> Vec<ParamSpec> {
        crate::settings::param_specs()
    }

    /// A framebuffer published to `session.video()`: WebRTC browsers get H.264.
    fn graphical(&self) -> bool {
        true
    }

    fn run(&self, ctx: SessionContext) -> ProtocolFuture {
        let opts = self.tuning.resolve(Duration::from_secs(30));
        Box::pin(run(ctx, opts))
    }
}

type Options = Tuning;

// ------------------------------------------------------------------ errors

fn upstream(msg: impl Into<String>) -> SessionError {
    SessionError::new(Status::UpstreamError, msg)
}

fn display_error(e: &DisplayError) -> SessionError {
    SessionError::new(e.status(), format!("RDP server sent bad display data: {e}"))
}

fn session_error(e: &ironrdp_session::SessionError) -> SessionError {
    upstream(format!(
        "The RDP server sent data guacr cannot process: {}",
        e.report()
    ))
}

/// How a server-side end of the session reaches users, after guacd's
/// mapping of the server's error info: a logoff or disconnect by the user
/// (or an unknown reason) is a plain `disconnect`; an administrator's
/// disconnect or logoff 523, idle timeout 522, another connection taking
/// the session 521, refusal 520, missing privileges 771, expired
/// credentials 769.
fn terminate_outcome(reason: &GracefulDisconnectReason) -> Result<(), SessionError> {
    use ironrdp_pdu::rdp::server_error_info::{ErrorInfo, ProtocolIndependentCode as C};
    let GracefulDisconnectReason::Other(desc) = reason else {
        return Ok(());
    };
    let table = [
        (
            C::RpcInitiatedDisconnect,
            Status::SessionClosed,
            "Forcibly disconnected.",
        ),
        (C::RpcInitiatedLogoff, Status::SessionClosed, "Logged off."),
        (
            C::IdleTimeout,
            Status::SessionTimeout,
            "Idle session time limit exceeded.",
        ),
        (
            C::LogonTimeout,
            Status::SessionClosed,
            "Active session time limit exceeded.",
        ),
        (
            C::DisconnectedByOtherconnection,
            Status::SessionConflict,
            "Disconnected by other connection.",
        ),
        (
            C::OutOfMemory,
            Status::UpstreamUnavailable,
            "Server refused connection.",
        ),
        (
            C::ServerDeniedConnection,
            Status::UpstreamUnavailable,
            "Server refused connection.",
        ),
        (
            C::ServerInsufficientPrivileges,
            Status::ClientForbidden,
            "Insufficient privileges.",
        ),
        (
            C::ServerFreshCredentialsRequired,
            Status::ClientUnauthorized,
            "Credentials expired.",
        ),
    ];
    for (code, status, message) in table {
        if *desc == ErrorInfo::ProtocolIndependentCode(code).description() {
            return Err(SessionError::new(
                status,
                format!("{message} (RDP server: {desc})"),
            ));
        }
    }
    Ok(())
}

/// IronRDP's error for a valid share-data PDU it has no use for.
fn is_unhandled_pdu(e: &ironrdp_session::SessionError) -> bool {
    matches!(e.kind(), ironrdp_session::SessionErrorKind::Reason(r) if r.starts_with("unhandled PDU"))
}

fn write_error(e: &std::io::Error) -> SessionError {
    upstream(format!("Lost the connection to the RDP server: {e}"))
}

/// How a read failure ends the session: the server closing the connection
/// (logoff, disconnect) is a clean end, like guacd; anything else is 515.
fn read_outcome(e: &std::io::Error) -> Result<(), SessionError> {
    use std::io::ErrorKind::*;
    match e.kind() {
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe => {
            tracing::info!("the RDP server closed the connection ({e})");
            Ok(())
        }
        _ => Err(upstream(format!(
            "The RDP server sent data guacr cannot process: {e}"
        ))),
    }
}

// ------------------------------------------------------------------ connecting

/// The credentials the connection uses (asked for when missing).
struct Creds {
    username: Option<String>,
    password: Option<String>,
    domain: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn connect(
    s: &RdpSettings,
    layout: &Layout,
    size: (u16, u16, u32),
    creds: &mut Creds,
    opts: &Options,
    session: &Session,
    owner: &UserInfo,
    events: &mut SessionEvents,
    deferred: &mut Vec<HandlerEvent>,
) -> Result<(Connected, Option<AudioReceiver>), SessionError> {
    // guacd always offers RDPSND unless disable-audio; with no user able to
    // play audio/L16 no format is advertised.
    let (rdpsnd, audio_rx) = if s.disable_audio {
        (None, None)
    } else {
        let (c, rx) = audio::channel(audio::user_accepts(&owner.client));
        (Some(c), Some(rx))
    };
    let mut req = ConnectRequest {
        settings: s,
        username: creds.username.clone(),
        password: creds.password.clone(),
        domain: creds.domain.clone(),
        width: size.0,
        height: size.1,
        dpi: size.2,
        keyboard_layout: layout.keyboard_layout_id(),
        keyboard_type: layout.keyboard_type(),
        keyboard_subtype: layout.keyboard_subtype(),
        function_keys: layout.function_keys(),
        timezone: crate::tz::timezone_info(
            s.timezone.as_deref().or(owner.client.timezone.as_deref()),
        ),
        connect_timeout: opts.connect_timeout,
        audio: rdpsnd.is_some(),
    };
    let clip = ClipboardSettings::new(
        s.disable_copy,
        s.disable_paste,
        s.normalize_clipboard
            .as_deref()
            .and_then(LineEndings::from_param)
            .unwrap_or_default(),
    );
    let display_update = s.resize_method == ResizeMethod::DisplayUpdate;
    let attach = move |c: &mut ClientConnector| {
        attach_channels(c, clip, display_update);
        if let Some(rdpsnd) = rdpsnd {
            c.attach_static_channel(rdpsnd);
        }
    };
    let (framed, mut connector, selected) = connect::begin(&req, attach).await?;
    if connect::uses_credssp(selected) && (creds.username.is_none() || creds.password.is_none()) {
        let (u, p) = ask_credentials(
            session,
            owner,
            events,
            deferred,
            creds.username.is_none(),
            creds.password.is_none(),
        )
        .await?;
        if u.is_some() {
            creds.username = u;
        }
        if p.is_some() {
            creds.password = p;
        }
        req.username = creds.username.clone();
        req.password = creds.password.clone();
        connector.config.credentials = ironrdp_connector::Credentials::UsernamePassword {
            username: creds.username.clone().unwrap_or_default(),
            password: creds.password.clone().unwrap_or_default(),
        };
        connector.config.autologon = creds.password.is_some();
    }
    let connected =
        connect::finish(&req, framed, connector, selected, opts.handshake_timeout).await?;
    Ok((connected, audio_rx))
}

fn attach_channels(c: &mut ClientConnector, clip: ClipboardSettings, display_update: bool) {
    c.attach_static_channel(clipboard::channel(clip));
    if display_update {
        let dvc = ironrdp_dvc::DrdynvcClient::new().with_dynamic_channel(
            ironrdp_displaycontrol::client::DisplayControlClient::new(|_| Ok(Vec::new())),
        );
        c.attach_static_channel(dvc);
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
            "The RDP server requires credentials (NLA) that were not provided.",
        ));
    }
    let mut buf = Vec::new();
    let mut w = InstructionWriter::new(&mut buf, "required");
    if need_username {
        w = w.arg("username");
    }
    if need_password {
        w = w.arg("password");
    }
    w.finish();
    session.send_to(&owner.id, &buf);
    let (mut username, mut password) = (None, None);
    let deadline = Instant::now() + CREDENTIALS_TIMEOUT;
    while (need_username && username.is_none()) || (need_password && password.is_none()) {
        let Ok(ev) = tokio::time::timeout_at(deadline, events.recv()).await else {
            return Err(SessionError::new(
                Status::ClientUnauthorized,
                "The RDP server requires credentials that were not provided in time.",
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

/// Runs `setup` unless every user leaves first.
async fn unless_abandoned<F: std::future::Future>(
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
        _ = abandoned => Err(SessionError::new(
            Status::SessionClosed,
            "Every user left before the connection was established.",
        )),
    }
}

// ------------------------------------------------------------------ running

/// Why the active session ended.
enum End {
    /// The server ended it, or every user left: a plain `disconnect`.
    Done,
    /// `resize-method=reconnect`: connect again at this size.
    Reconnect(u16, u16),
}

struct Driver {
    session: Arc<Session>,
    settings: RdpSettings,
    opts: Options,
    framed: UpgradedFramed,
    stage: ActiveStage,
    image: DecodedImage,
    display: Display,
    activation: ironrdp_connector::connection_activation::ConnectionActivationFactory,
    keys: KeyMapper,
    mouse: MouseState,
    out: Vec<u8>,
    last_frame: Option<Instant>,
    deadline: Option<Instant>,
    /// Latest size asked by the owner, and when it was asked.
    wanted_size: Option<(u16, u16, Instant)>,
    /// A display-update request is outstanding (the server reactivates).
    /// A display-update request is outstanding: its size and when to give
    /// up waiting for the server's reactivation (then reconnect, like
    /// IronRDP's own client: xrdp with Xvnc resizes the X screen but never
    /// reactivates).
    resize_in_flight: Option<(u16, u16, Instant)>,
    encode_time: metrics::Histogram,
    video_dirty: bool,
    audio_rx: Option<AudioReceiver>,
    audio_out: AudioStream,
    /// What the server allows for a full redraw (Refresh Rect, Suppress Output).
    redraw_support: (bool, bool),
    last_redraw: Option<Instant>,
}

enum Wake {
    Event(HandlerEvent),
    Pdu(std::io::Result<(ironrdp_pdu::Action, bytes::BytesMut)>),
    Timer,
    Video,
}

impl Driver {
    fn lagging(&self) -> bool {
        let t = self.session.timing();
        t.max_unacked > self.opts.max_unacked && t.max_lag < self.opts.max_hold
    }

    async fn send(&mut self, frame: &[u8]) -> Result<(), SessionError> {
        if frame.is_empty() {
            return Ok(());
        }
        // Straight to the stream (tokio's `write_all`): IronRDP's
        // `FramedWrite` future is not provably `Send`.
        let (stream, _) = self.framed.get_inner_mut();
        stream.write_all(frame).await.map_err(|e| write_error(&e))?;
        stream.flush().await.map_err(|e| write_error(&e))
    }

    async fn send_input(&mut self, events: &[FastPathInputEvent]) -> Result<(), SessionError> {
        if events.is_empty() {
            return Ok(());
        }
        let outputs = self
            .stage
            .process_fastpath_input(&mut self.image, events)
            .map_err(|e| session_error(&e))?;
        for o in outputs {
            if let ActiveStageOutput::ResponseFrame(f) = o {
                self.send(&f).await?;
            }
        }
        Ok(())
    }

    /// Copies a changed rectangle of the decoded image into the display.
    fn copy_rect(&mut self, r: &InclusiveRectangle) -> Result<(), SessionError> {
        let (iw, ih) = (
            u32::from(self.image.width()),
            u32::from(self.image.height()),
        );
        let (x0, y0) = (u32::from(r.left), u32::from(r.top));
        let x1 = u32::from(r.right).min(iw.saturating_sub(1));
        let y1 = u32::from(r.bottom).min(ih.saturating_sub(1));
        if x0 > x1 || y0 > y1 || iw == 0 || ih == 0 {
            return Ok(());
        }
        let stride = self.image.stride();
        let bpp = self.image.bytes_per_pixel();
        let start = y0 as usize * stride + x0 as usize * bpp;
        let Some(data) = self.image.data().get(start..) else {
            return Ok(());
        };
        self.display
            .put_bytes(
                x0,
                y0,
                x1 - x0 + 1,
                y1 - y0 + 1,
                data,
                stride,
                DisplayFormat::Bgrx32,
            )
            .map_err(|e| display_error(&e))?;
        self.video_dirty = true;
        Ok(())
    }

    /// Handles one PDU from the server. `Ok(Some(End))` ends the session.
    async fn pdu(
        &mut self,
        action: ironrdp_pdu::Action,
        frame: &[u8],
    ) -> Result<Option<End>, SessionError> {
        let outputs = match self.stage.process(&mut self.image, action, frame, None) {
            Ok(o) => o,
            Err(e) if is_unhandled_pdu(&e) => {
                // A well-formed PDU IronRDP does not act on (Play Sound for
                // the bell, …): nothing to do, like guacd.
                tracing::debug!("ignoring an RDP PDU: {}", e.report());
                return Ok(None);
            }
            Err(e) => return Err(session_error(&e)),
        };
        for o in outputs {
            match o {
                ActiveStageOutput::ResponseFrame(f) => self.send(&f).await?,
                ActiveStageOutput::GraphicsUpdate(r) => self.copy_rect(&r)?,
                ActiveStageOutput::PointerDefault => self.default_cursor(),
                ActiveStageOutput::PointerHidden => self.display.hide_cursor(),
                ActiveStageOutput::PointerPosition { .. } => {}
                ActiveStageOutput::PointerBitmap(p) => {
                    if p.width == 0 || p.height == 0 {
                        self.display.hide_cursor();
                    } else if let Err(e) = self.display.set_cursor(
                        u32::from(p.hotspot_x),
                        u32::from(p.hotspot_y),
                        u32::from(p.width),
                        u32::from(p.height),
                        &p.bitmap_data,
                    ) {
                        tracing::debug!("ignoring RDP pointer: {e}");
                    }
                }
                ActiveStageOutput::Terminate(reason) => {
                    tracing::info!("the RDP server ended the session: {reason}");
                    terminate_outcome(&reason)?;
                    return Ok(Some(End::Done));
                }
                ActiveStageOutput::DeactivateAll => self.reactivate().await?,
                ActiveStageOutput::ServerRedirection(_) => {
                    return Err(SessionError::new(
                        Status::Unsupported,
                        "The RDP server redirected the session (not supported by guacr yet).",
                    ));
                }
                _ => {}
            }
        }
        if self.stage.take_bitmap_recovery_request() {
            self.recover_bitmaps().await?;
        }
        self.pump_clipboard().await?;
        if let Some(rx) = &self.audio_rx {
            for chunk in rx.drain() {
                self.audio_out.deliver(&self.session, &chunk);
            }
        }
        Ok(None)
    }

    /// IronRDP dropped a malformed bitmap: ask the server to redraw the
    /// whole screen (at most once a second), where it allows it.
    async fn recover_bitmaps(&mut self) -> Result<(), SessionError> {
        let now = Instant::now();
        if self
            .last_redraw
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return Ok(());
        }
        self.last_redraw = Some(now);
        let (refresh, suppress) = self.redraw_support;
        let frames = self
            .stage
            .request_full_redraw(self.image.width(), self.image.height(), refresh, suppress)
            .map_err(|e| session_error(&e))?;
        tracing::debug!("a malformed bitmap was dropped: asking the RDP server for a redraw");
        for f in frames {
            self.send(&f).await?;
        }
        Ok(())
    }

    /// A small arrow: RDP's "default pointer" is the client's own.
    fn default_cursor(&mut self) {
        const W: usize = 11;
        const H: usize = 16;
        let mut rgba = vec![0u8; W * H * 4];
        for y in 0..H {
            // An outlined left-aligned triangle.
            let width = (y + 1).min(W);
            for x in 0..width {
                let edge = x == 0 || x + 1 == width || y + 1 == H;
                let i = (y * W + x) * 4;
                let v = if edge { 0 } else { 255 };
                rgba[i..i + 4].copy_from_slice(&[v, v, v, 255]);
            }
        }
        let _ = self.display.set_cursor(0, 0, W as u32, H as u32, &rgba);
    }

    /// The Deactivation-Reactivation sequence (a resize by the server or a
    /// display-update request): runs it to its end, then resizes.
    async fn reactivate(&mut self) -> Result<(), SessionError> {
        let mut seq = self.activation.create();
        let mut buf = ironrdp_core::WriteBuf::new();
        loop {
            let (stream, rbuf) = self.framed.get_inner_mut();
            tokio::time::timeout(
                self.opts.handshake_timeout,
                connect::step(stream, rbuf, &mut seq, &mut buf),
            )
            .await
            .map_err(|_| upstream("The RDP server did not finish reactivating the session."))?
            .map_err(|e| connect::connector_error(&e))?;
            if let ConnectionActivationState::Finalized {
                desktop_size,
                share_id,
                enable_server_pointer,
                pointer_software_rendering,
                static_channel_chunk_size,
                refresh_rect_support,
                suppress_output_support,
                ..
            } = seq.connection_activation_state()
            {
                if !self.stage.reactivate(
                    seq.io_channel_id(),
                    seq.user_channel_id(),
                    share_id,
                    enable_server_pointer,
                    pointer_software_rendering,
                    static_channel_chunk_size,
                ) {
                    return Err(upstream(
                        "The RDP server reactivated the session with an invalid channel chunk size.",
                    ));
                }
                self.resize_in_flight = None;
                self.redraw_support = (refresh_rect_support, suppress_output_support);
                let (w, h) = (desktop_size.width, desktop_size.height);
                tracing::debug!(width = w, height = h, "RDP session reactivated");
                // The display checks the size (a bounded allocation) first.
                self.display
                    .resize(u32::from(w), u32::from(h))
                    .map_err(|e| display_error(&e))?;
                self.image = DecodedImage::new(PixelFormat::BgrX32, w, h);
                self.display.invalidate();
                return Ok(());
            }
        }
    }

    async fn pump_clipboard(&mut self) -> Result<(), SessionError> {
        let Some(c) = self.stage.get_svc_processor_mut::<CliprdrClient>() else {
            return Ok(());
        };
        let out = clipboard::poll(c);
        for text in &out.remote_text {
            self.session
                .broadcast(&clipboard::clipboard_instructions(CLIPBOARD_STREAM, text));
        }
        self.send_clipboard(out.messages).await
    }

    async fn send_clipboard(
        &mut self,
        messages: Vec<ironrdp_svc::SvcMessage>,
    ) -> Result<(), SessionError> {
        if messages.is_empty() {
            return Ok(());
        }
        let frame = self
            .stage
            .process_svc_processor_messages(SvcProcessorMessages::<CliprdrClient>::new(messages))
            .map_err(|e| session_error(&e))?;
        self.send(&frame).await
    }

    /// Decides when pending changes are drawn.
    fn schedule(&mut self) {
        if self.deadline.is_some() {
            return;
        }
        if !self.display.has_changes() {
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

    fn publish_video(&mut self, force: bool) {
        let video = self.session.video();
        if (self.video_dirty || force) && video.wanted() {
            self.display.with_framebuffer(|fb| {
                video.publish(fb.width(), fb.height(), fb.pixels(), fb.width() as usize)
            });
        }
        self.video_dirty = false;
    }

    /// Draws a frame now if the clients keep up; otherwise postpones it.
    async fn render(&mut self, force: bool) {
        self.deadline = None;
        if !force && self.lagging() {
            self.deadline = Some(Instant::now() + Duration::from_millis(5));
            return;
        }
        // Video watchers first: they need not wait for the PNG/JPEG encoding.
        self.publish_video(false);
        let t = self.session.timing();
        self.display.note_timing(t.max_unacked, t.max_lag);
        let mut out = std::mem::take(&mut self.out);
        out.clear();
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

    async fn joined(&mut self, user: Arc<UserInfo>) {
        self.repaint(&user.id, true).await;
        self.session.activate(&user.id);
    }

    /// Sends one user the whole picture (a joiner, or a user whose video
    /// stopped), with the clipboard for a joiner. Everyone first reaches the
    /// current state, so this picture and the next broadcast delta start
    /// from the same point.
    async fn repaint(&mut self, user_id: &str, joining: bool) {
        if self.display.has_changes() || self.display.has_held_changes() {
            self.render(true).await;
        }
        let mut full = Vec::new();
        self.display.full_repaint_async(&mut full).await;
        if joining
            && !self.settings.disable_copy
            && let Some(text) = self
                .stage
                .get_svc_processor_mut::<CliprdrClient>()
                .and_then(|c| clipboard::current_text(c).map(str::to_owned))
        {
            full.extend_from_slice(&clipboard::clipboard_instructions(CLIPBOARD_STREAM, &text));
        }
        if self.session.send_to(user_id, &full) {
            self.session.sync_user(user_id);
        }
    }

    async fn input(&mut self, owner: bool, input: Input) -> Result<Option<End>, SessionError> {
        if self.settings.read_only {
            return Ok(None);
        }
        match input {
            Input::Key { keysym, pressed } => {
                let events = key_events(&self.keys.key(keysym, pressed));
                self.send_input(&events).await?;
            }
            Input::Mouse { x, y, mask } => {
                let events =
                    self.mouse
                        .update(x, y, mask, self.display.width(), self.display.height());
                self.send_input(&events).await?;
            }
            Input::Size { width, height } => {
                if owner && self.settings.resize_method != ResizeMethod::None {
                    let (w, h) = clamp_size(width, height);
                    self.wanted_size = Some((w, h, Instant::now() + RESIZE_SETTLE));
                }
            }
            Input::Clipboard { mimetype, data } => {
                if !self.settings.disable_paste && mimetype.starts_with("text/") {
                    let text = String::from_utf8_lossy(&data).into_owned();
                    if let Some(c) = self.stage.get_svc_processor_mut::<CliprdrClient>() {
                        let out = clipboard::set_local_text(c, &text);
                        self.send_clipboard(out.messages).await?;
                    }
                }
            }
            Input::Argv { .. } | Input::Other(_) => {}
        }
        Ok(None)
    }

    /// Applies a settled size change of the owner.
    async fn resize_due(&mut self) -> Result<Option<End>, SessionError> {
        if let Some((w, h, give_up)) = self.resize_in_flight {
            if give_up > Instant::now() {
                return Ok(None);
            }
            tracing::info!(
                "the RDP server did not apply the display update in time: reconnecting at {w}x{h}"
            );
            self.resize_in_flight = None;
            let (w, h) = self
                .wanted_size
                .take()
                .map_or((w, h), |(nw, nh, _)| (nw, nh));
            return Ok(Some(End::Reconnect(w, h)));
        }
        let Some((w, h, due)) = self.wanted_size else {
            return Ok(None);
        };
        if due > Instant::now() {
            return Ok(None);
        }
        self.wanted_size = None;
        if (u32::from(w), u32::from(h)) == (self.display.width(), self.display.height()) {
            return Ok(None);
        }
        match self.settings.resize_method {
            ResizeMethod::Reconnect => return Ok(Some(End::Reconnect(w, h))),
            ResizeMethod::DisplayUpdate => {
                match self
                    .stage
                    .encode_resize(u32::from(w), u32::from(h), None, None)
                {
                    Some(Ok(frame)) => {
                        self.send(&frame).await?;
                        self.resize_in_flight =
                            Some((w, h, Instant::now() + DISPLAY_UPDATE_TIMEOUT));
                    }
                    Some(Err(e)) => tracing::debug!("not resizing the RDP desktop: {e}"),
                    None => {
                        tracing::debug!("the RDP server offers no display control channel yet");
                        // Try again once the channel may be up.
                        self.wanted_size = Some((w, h, Instant::now() + Duration::from_secs(1)));
                    }
                }
            }
            ResizeMethod::None => {}
        }
        Ok(None)
    }

    fn next_wake(&self) -> Option<Instant> {
        [
            self.deadline,
            self.wanted_size.map(|(_, _, t)| t),
            self.resize_in_flight.map(|(_, _, t)| t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    async fn goodbye(&mut self) {
        self.audio_out.close(&self.session);
        let mut events = key_events(&self.keys.release_all());
        events.extend(self.mouse.release_all());
        let _ = self.send_input(&events).await;
        if let Ok(outputs) = self.stage.graceful_shutdown() {
            for o in outputs {
                if let ActiveStageOutput::ResponseFrame(f) = o {
                    let _ = self.send(&f).await;
                }
            }
        }
    }
}

async fn run(mut ctx: SessionContext, opts: Options) -> Result<(), SessionError> {
    let settings = RdpSettings::from_params(&ctx.params)?;
    let layout =
        Layout::from_name(settings.server_layout.as_deref().unwrap_or("")).ok_or_else(|| {
            SessionError::new(
                Status::ClientBadRequest,
                format!(
                    "invalid value for parameter \"server-layout\": {:?}",
                    settings.server_layout.as_deref().unwrap_or("")
                ),
            )
        })?;
    let session = ctx.session.clone();
    let owner = ctx.owner.clone();
    let mut size = settings.desktop_size(&owner.client);
    let mut creds = Creds {
        username: settings.username.clone(),
        password: settings.password.clone(),
        domain: settings.domain.clone(),
    };
    let mut deferred = Vec::new();
    let mut kept_display: Option<Display> = None;
    loop {
        // Boxed as `Send` where the lifetimes are concrete (IronRDP's
        // sequences otherwise defeat the higher-ranked `Send` proof).
        type Connecting<'a> = Pin<
            Box<
                dyn Future<Output = Result<(Connected, Option<AudioReceiver>), SessionError>>
                    + Send
                    + 'a,
            >,
        >;
        let connecting: Connecting<'_> = Box::pin(connect(
            &settings,
            &layout,
            size,
            &mut creds,
            &opts,
            &session,
            &owner,
            &mut ctx.events,
            &mut deferred,
        ));
        let (connected, audio_rx) = unless_abandoned(&session, connecting).await??;
        let Connected {
            framed,
            result,
            fingerprint,
        } = connected;
        let (w, h) = (result.desktop_size.width, result.desktop_size.height);
        tracing::info!(
            host = %settings.hostname,
            port = settings.port,
            width = w,
            height = h,
            certificate = fingerprint.as_ref().map(connect::hex_fingerprint).unwrap_or_default(),
            "RDP connection established"
        );
        let display = match kept_display.take() {
            Some(mut d) => {
                d.resize(u32::from(w), u32::from(h))
                    .map_err(|e| display_error(&e))?;
                d
            }
            None => {
                let mut cfg = DisplayConfig::new(u32::from(w), u32::from(h))
                    .with_image_mimetypes(&owner.client.image_mimetypes)
                    .with_lossless(settings.force_lossless);
                cfg.max_frame_rate =
                    (1000 / opts.frame_interval.as_millis().max(1)).clamp(1, 1000) as u32;
                cfg.pool = opts.pool.clone();
                Display::new(cfg).map_err(|e| display_error(&e))?
            }
        };
        let stage = ActiveStageBuilder {
            static_channels: result.static_channels,
            user_channel_id: result.user_channel_id,
            io_channel_id: result.io_channel_id,
            message_channel_id: result.message_channel_id,
            share_id: result.share_id,
            compression_type: result.compression_type,
            enable_server_pointer: result.enable_server_pointer,
            pointer_software_rendering: result.pointer_software_rendering,
        }
        .build();
        let mut d = Driver {
            session: session.clone(),
            settings: settings.clone(),
            opts: opts.clone(),
            framed,
            stage,
            image: DecodedImage::new(PixelFormat::BgrX32, w, h),
            display,
            activation: result.activation_factory,
            keys: KeyMapper::new(layout.clone()),
            mouse: MouseState::default(),
            out: Vec::with_capacity(256 * 1024),
            last_frame: None,
            deadline: None,
            wanted_size: None,
            resize_in_flight: None,
            encode_time: metrics::histogram!("guacr_frame_encode_seconds", "protocol" => "rdp"),
            video_dirty: true,
            audio_rx,
            audio_out: AudioStream::new(AUDIO_STREAM),
            redraw_support: (result.refresh_rect_support, result.suppress_output_support),
            last_redraw: None,
        };
        d.send_input(&[synchronize(false, false)]).await?;
        d.pump_clipboard().await?;
        for ev in std::mem::take(&mut deferred) {
            if let HandlerEvent::Joined(user) = ev {
                d.joined(user).await;
            }
        }
        let end = drive(&mut d, &mut ctx.events).await;
        match end {
            Ok(End::Reconnect(nw, nh)) => {
                tracing::info!(
                    width = nw,
                    height = nh,
                    "reconnecting to resize the RDP desktop"
                );
                d.goodbye().await;
                size = (nw, nh, size.2);
                kept_display = Some(d.display);
            }
            Ok(End::Done) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

async fn drive(d: &mut Driver, events: &mut SessionEvents) -> Result<End, SessionError> {
    let session = d.session.clone();
    loop {
        d.schedule();
        if d.deadline.is_some_and(|t| t <= Instant::now()) {
            d.render(false).await;
            d.schedule();
        }
        if let Some(end) = d.resize_due().await? {
            return Ok(end);
        }
        let wake = d.next_wake();
        // Boxed as `Send` where its lifetime is concrete: tokio's `Notified`
        // otherwise defeats the higher-ranked `Send` proof of the session future.
        let refresh: Pin<Box<dyn Future<Output = ()> + Send + '_>> =
            Box::pin(session.video().refresh_requested());
        let w = tokio::select! {
            biased;
            ev = events.recv() => Wake::Event(ev),
            r = read_pdu(&mut d.framed) => Wake::Pdu(r),
            _ = sleep_until(wake), if wake.is_some() => Wake::Timer,
            _ = refresh => Wake::Video,
        };
        match w {
            Wake::Event(HandlerEvent::Input { user, input }) => {
                if let Some(end) = d.input(user.owner, input).await? {
                    return Ok(end);
                }
            }
            Wake::Event(HandlerEvent::Joined(user)) => d.joined(user).await,
            Wake::Event(HandlerEvent::Left(user)) => d.audio_out.user_left(&user.id),
            Wake::Event(HandlerEvent::Shutdown) => {
                if session.user_count() == 0 || session.is_shutting_down() {
                    d.goodbye().await;
                    return Ok(End::Done);
                }
            }
            Wake::Pdu(Ok((action, frame))) => {
                if let Some(end) = d.pdu(action, &frame).await? {
                    return Ok(end);
                }
            }
            Wake::Pdu(Err(e)) => return read_outcome(&e).map(|()| End::Done),
            Wake::Timer => {
                if d.deadline.is_some_and(|t| t <= Instant::now()) {
                    d.render(false).await;
                }
            }
            Wake::Video => {
                if session.video().take_refresh() {
                    d.publish_video(true);
                }
                for user in session.video().take_repaints() {
                    d.repaint(&user, false).await;
                }
            }
        }
    }
}

/// Reads one RDP PDU (fast-path or X.224). Cancel-safe: bytes read stay in
/// the framed buffer. (IronRDP's own `read_pdu` is not provably `Send`.)
async fn read_pdu(
    framed: &mut UpgradedFramed,
) -> std::io::Result<(ironrdp_pdu::Action, bytes::BytesMut)> {
    use tokio::io::AsyncReadExt;
    let (stream, buf) = framed.get_inner_mut();
    loop {
        match ironrdp_pdu::find_size(buf) {
            Ok(Some(info)) if buf.len() >= info.length => {
                return Ok((info.action, buf.split_to(info.length)));
            }
            Ok(Some(info)) => buf.reserve(info.length - buf.len()),
            Ok(None) => buf.reserve(8 * 1024),
            Err(e) => return Err(std::io::Error::other(e)),
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
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

    #[test]
    fn server_disconnect_reasons() {
        use ironrdp_pdu::rdp::server_error_info::{ErrorInfo, ProtocolIndependentCode as C};
        let other = |c: C| {
            GracefulDisconnectReason::Other(ErrorInfo::ProtocolIndependentCode(c).description())
        };
        assert!(terminate_outcome(&GracefulDisconnectReason::ServerInitiated).is_ok());
        assert!(terminate_outcome(&GracefulDisconnectReason::UserInitiated).is_ok());
        assert!(terminate_outcome(&other(C::LogoffByUser)).is_ok());
        assert!(terminate_outcome(&other(C::RpcInitiatedDisconnectByuser)).is_ok());
        assert!(terminate_outcome(&GracefulDisconnectReason::Other("something".into())).is_ok());
        for (c, status) in [
            (C::RpcInitiatedDisconnect, Status::SessionClosed),
            (C::IdleTimeout, Status::SessionTimeout),
            (C::DisconnectedByOtherconnection, Status::SessionConflict),
            (C::ServerDeniedConnection, Status::UpstreamUnavailable),
            (C::ServerInsufficientPrivileges, Status::ClientForbidden),
            (
                C::ServerFreshCredentialsRequired,
                Status::ClientUnauthorized,
            ),
        ] {
            assert_eq!(
                terminate_outcome(&other(c)).unwrap_err().status,
                status,
                "{c:?}"
            );
        }
    }

    #[test]
    fn unhandled_pdus_are_not_fatal() {
        use ironrdp_session::{SessionError as E, SessionErrorKind as K};
        assert!(is_unhandled_pdu(&E::new(
            "IO channel",
            K::Reason("unhandled PDU: \"Play Sound PDU\"".into())
        )));
        assert!(!is_unhandled_pdu(&E::new(
            "x",
            K::Reason("bad length".into())
        )));
        assert!(!is_unhandled_pdu(&E::new("x", K::General)));
    }

    #[tokio::test]
    async fn garbage_in_the_active_stage_is_515_and_eof_is_clean() {
        use tokio::io::AsyncWriteExt;
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut framed = UpgradedFramed::new(Box::new(ours));
        // A complete fast-path PDU, then a byte no RDP header starts with.
        theirs.write_all(&[0x00, 0x03, 0xaa]).await.unwrap();
        let (action, pdu) = read_pdu(&mut framed).await.unwrap();
        assert_eq!((action, pdu.len()), (ironrdp_pdu::Action::FastPath, 3));
        theirs.write_all(&[0xfe, 0xfe, 0xfe, 0xfe]).await.unwrap();
        let e = read_pdu(&mut framed).await.unwrap_err();
        assert_eq!(read_outcome(&e).unwrap_err().status, Status::UpstreamError);
        // The server closing mid-PDU: a clean end.
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut framed = UpgradedFramed::new(Box::new(ours));
        theirs.write_all(&[0x03, 0x00, 0x00, 0x20]).await.unwrap();
        drop(theirs);
        let e = read_pdu(&mut framed).await.unwrap_err();
        assert!(read_outcome(&e).is_ok());
    }

    #[test]
    fn server_closing_is_a_clean_end() {
        for kind in [
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::ConnectionReset,
        ] {
            assert!(read_outcome(&std::io::Error::new(kind, "x")).is_ok());
        }
        let e = read_outcome(&std::io::Error::other("garbage header")).unwrap_err();
        assert_eq!(e.status, Status::UpstreamError);
    }
}
