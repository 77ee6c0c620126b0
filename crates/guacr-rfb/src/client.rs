//! The RFB client state machine.

use std::collections::VecDeque;

use flate2::Decompress;

use crate::decode::{
    HextileColours, P, Rd, Stop, Strip, ZReader, compact_len, cursor_rgba, decode_jpeg,
    hextile_tile, inflate_exact, proto, rle_tile,
};
use crate::pixel::Converter;
use crate::{
    Event, MAX_CURSOR, MAX_DIMENSION, MAX_REASON, PixelFormat, PixelFormatRequest, ProtocolVersion,
    ResizeReason, ResizeStatus, RfbConfig, RfbError, Screen, Security, vnc_auth_response,
};

/// Largest reason string / name accepted on the wire (longer is an error).
const MAX_WIRE_STRING: usize = 64 * 1024;
/// Largest ZRLE payload accepted.
const MAX_ZRLE: usize = 64 << 20;
/// Raw rectangles are emitted in strips of about this many bytes.
const RAW_STRIP_BYTES: usize = 256 * 1024;

const VENCRYPT_PLAIN: u32 = 256;
const VENCRYPT_TLSNONE: u32 = 257;
const VENCRYPT_TLSVNC: u32 = 258;
const VENCRYPT_TLSPLAIN: u32 = 259;
const VENCRYPT_X509NONE: u32 = 260;
const VENCRYPT_X509VNC: u32 = 261;
const VENCRYPT_X509PLAIN: u32 = 262;

/// What follows the TLS upgrade or a credentials prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// SecurityResult.
    Result,
    /// VNC Authentication challenge.
    Vnc,
    /// VeNCrypt Plain credentials, then SecurityResult.
    Plain,
}

#[derive(Debug, Clone, Copy)]
struct Rect {
    x: u16,
    y: u16,
    w: u16,
    h: u16,
}

impl Rect {
    fn wu(&self) -> usize {
        usize::from(self.w)
    }
    fn hu(&self) -> usize {
        usize::from(self.h)
    }
}

#[derive(Debug, Clone, Copy)]
enum TightKind {
    Jpeg,
    Copy,
    Palette,
    Gradient,
}

enum Body {
    Raw {
        row: u16,
    },
    /// Hextile (tile 16) or TRLE (tile 16).
    Tiles {
        trle: bool,
        tile_row: u16,
        tile_col: u16,
        strip: Vec<u32>,
        colours: HextileColours,
        palette: Vec<u32>,
    },
    RreSubs {
        left: u32,
    },
    TightData {
        kind: TightKind,
        len: usize,
        raw: bool,
        stream: usize,
        expected: usize,
        palette: Vec<u32>,
    },
}

enum State {
    Version,
    SecTypes,
    SecType33,
    RefusedReason,
    VncChallenge,
    SecResult,
    FailReason,
    VeVersion,
    VeAck,
    VeSubtypes,
    TlsAck(Next, bool),
    WaitTls(Next),
    WaitCreds(Next),
    ServerInit,
    Message,
    RectHeader,
    /// Rectangle body; the encoding is dispatched from `enc`.
    RectBody(i32, Rect, Option<Body>),
    CutText {
        left: usize,
        keep: bool,
    },
    Done,
}

/// Sans-IO RFB client. See the crate documentation.
pub struct RfbClient {
    config: RfbConfig,
    state: State,
    inbuf: Vec<u8>,
    events: VecDeque<Event>,
    out: Vec<u8>,
    width: u16,
    height: u16,
    conv: Converter,
    version: Option<ProtocolVersion>,
    security: Option<Security>,
    screens: Vec<Screen>,
    can_resize: bool,
    connected: bool,
    rects_left: u16,
    full_refresh: bool,
    zrle: Decompress,
    tight: [Decompress; 4],
}

fn new_tight_streams() -> [Decompress; 4] {
    [
        Decompress::new(true),
        Decompress::new(true),
        Decompress::new(true),
        Decompress::new(true),
    ]
}

fn lossy(b: &[u8]) -> String {
    let b = b.get(..MAX_REASON).unwrap_or(b);
    String::from_utf8_lossy(b).into_owned()
}

fn security_name(t: u8) -> String {
    match t {
        1 => "None".into(),
        2 => "VncAuth".into(),
        5 => "RA2".into(),
        6 => "RA2ne".into(),
        16 => "Tight".into(),
        18 => "TLS".into(),
        19 => "VeNCrypt".into(),
        30 => "Apple-DH".into(),
        n => n.to_string(),
    }
}

impl RfbClient {
    /// A client waiting for the server's ProtocolVersion.
    pub fn new(config: RfbConfig) -> RfbClient {
        let swap = config.swap_red_blue;
        RfbClient {
            config,
            state: State::Version,
            inbuf: Vec::new(),
            events: VecDeque::new(),
            out: Vec::new(),
            width: 0,
            height: 0,
            conv: Converter::new(PixelFormat::RGB888, swap),
            version: None,
            security: None,
            screens: Vec::new(),
            can_resize: false,
            connected: false,
            rects_left: 0,
            full_refresh: false,
            zrle: Decompress::new(true),
            tight: new_tight_streams(),
        }
    }

    /// Processes bytes received from the server (any fragmentation). Events
    /// are queued for [`RfbClient::poll_event`], replies for
    /// [`RfbClient::take_output`]. Events decoded before an error stay
    /// available from [`RfbClient::poll_event`]. After an error every call
    /// returns [`RfbError::Closed`].
    pub fn feed(&mut self, data: &[u8]) -> Result<(), RfbError> {
        match self.state {
            State::Done => return Err(RfbError::Closed),
            State::WaitTls(_) if !data.is_empty() => {
                return self.fail(RfbError::Protocol(
                    "data received before the TLS handshake".into(),
                ));
            }
            _ => {}
        }
        if self.inbuf.is_empty() && !matches!(self.state, State::WaitCreds(_)) {
            // Nothing pending: parse straight from the caller's buffer and
            // keep only the unconsumed tail.
            let (pos, result) = self.run(data);
            let mut rest = std::mem::take(&mut self.inbuf);
            rest.extend_from_slice(data.get(pos..).unwrap_or(&[]));
            return self.finish_run(rest, result);
        }
        self.inbuf.extend_from_slice(data);
        if matches!(self.state, State::WaitCreds(_)) && self.inbuf.len() > MAX_WIRE_STRING {
            return self.fail(RfbError::TooLarge(
                "data received while waiting for credentials".into(),
            ));
        }
        self.process()
    }

    fn fail(&mut self, e: RfbError) -> Result<(), RfbError> {
        self.state = State::Done;
        self.inbuf = Vec::new();
        Err(e)
    }

    fn process(&mut self) -> Result<(), RfbError> {
        let buf = std::mem::take(&mut self.inbuf);
        let (pos, result) = self.run(&buf);
        let mut buf = buf;
        buf.drain(..pos.min(buf.len()));
        self.finish_run(buf, result)
    }

    /// Parses as much of `buf` as possible: bytes consumed and the outcome.
    fn run(&mut self, buf: &[u8]) -> (usize, Result<(), RfbError>) {
        let mut pos = 0;
        loop {
            if matches!(
                self.state,
                State::Done | State::WaitTls(_) | State::WaitCreds(_)
            ) {
                return (pos, Ok(()));
            }
            match self.step(buf.get(pos..).unwrap_or(&[])) {
                Ok(n) => pos += n,
                Err(Stop::More) => return (pos, Ok(())),
                Err(Stop::Err(e)) => return (pos, Err(e)),
            }
        }
    }

    /// Keeps the unconsumed bytes `rest` and applies the outcome of a run.
    fn finish_run(&mut self, rest: Vec<u8>, result: Result<(), RfbError>) -> Result<(), RfbError> {
        if let Err(e) = result {
            return self.fail(e);
        }
        if matches!(self.state, State::Done) {
            self.inbuf = Vec::new();
            return Ok(());
        }
        self.inbuf = rest;
        if matches!(self.state, State::WaitTls(_)) && !self.inbuf.is_empty() {
            return self.fail(RfbError::Protocol(
                "data received before the TLS handshake".into(),
            ));
        }
        Ok(())
    }

    /// The server closed the connection: returns the error describing it
    /// ([`RfbError::AuthFailed`] right after credentials were sent,
    /// [`RfbError::UnexpectedEof`] during the handshake or in the middle of
    /// a message, [`RfbError::Closed`] otherwise).
    pub fn eof(&mut self) -> RfbError {
        let e = match &self.state {
            State::Done => RfbError::Closed,
            State::SecResult => {
                RfbError::AuthFailed("the server closed the connection after authentication".into())
            }
            State::Message | State::CutText { .. } if self.inbuf.is_empty() => {
                if matches!(self.state, State::Message) {
                    RfbError::Closed
                } else {
                    RfbError::UnexpectedEof("in the middle of a message".into())
                }
            }
            State::Message | State::RectHeader | State::RectBody(..) | State::CutText { .. } => {
                RfbError::UnexpectedEof("in the middle of a message".into())
            }
            _ => RfbError::UnexpectedEof("during the handshake".into()),
        };
        self.state = State::Done;
        self.inbuf = Vec::new();
        e
    }

    /// Next decoded event, in wire order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to send to the server (taken; the internal buffer is emptied).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether [`RfbClient::take_output`] would return something.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Call after [`Event::StartTls`] once the TLS handshake is done; feed
    /// decrypted bytes from then on.
    pub fn tls_established(&mut self) -> Result<(), RfbError> {
        let State::WaitTls(next) = self.state else {
            return Err(RfbError::InvalidState("no TLS upgrade pending"));
        };
        self.after_auth_step(next);
        self.process()
    }

    /// Supplies credentials after [`Event::CredentialsRequired`].
    pub fn provide_credentials(
        &mut self,
        username: Option<String>,
        password: Option<String>,
    ) -> Result<(), RfbError> {
        let State::WaitCreds(next) = self.state else {
            return Err(RfbError::InvalidState("no credentials requested"));
        };
        if username.is_some() {
            self.config.username = username;
        }
        if password.is_some() {
            self.config.password = password;
        }
        self.after_auth_step(next);
        self.process()
    }

    /// Moves on to `next`, asking for credentials first if they are missing.
    fn after_auth_step(&mut self, next: Next) {
        match next {
            Next::Result => self.state = State::SecResult,
            Next::Vnc => {
                if self.config.password.is_none() {
                    self.events.push_back(Event::CredentialsRequired {
                        username: false,
                        password: true,
                    });
                    self.state = State::WaitCreds(Next::Vnc);
                } else {
                    self.state = State::VncChallenge;
                }
            }
            Next::Plain => {
                let (u, p) = (self.config.username.clone(), self.config.password.clone());
                match (u, p) {
                    (Some(u), Some(p)) => {
                        let (u, p) = (u.as_bytes(), p.as_bytes());
                        self.out.extend_from_slice(&(u.len() as u32).to_be_bytes());
                        self.out.extend_from_slice(&(p.len() as u32).to_be_bytes());
                        self.out.extend_from_slice(u);
                        self.out.extend_from_slice(p);
                        self.state = State::SecResult;
                    }
                    (u, p) => {
                        self.events.push_back(Event::CredentialsRequired {
                            username: u.is_none(),
                            password: p.is_none(),
                        });
                        self.state = State::WaitCreds(Next::Plain);
                    }
                }
            }
        }
    }

    /// Queues a FramebufferUpdateRequest for the whole framebuffer. Ignored
    /// before [`Event::Connected`].
    pub fn request_update(&mut self, incremental: bool) {
        if !self.is_connected() {
            return;
        }
        let incremental = incremental && !self.full_refresh;
        self.full_refresh = false;
        self.out.push(3);
        self.out.push(u8::from(incremental));
        self.out.extend_from_slice(&[0, 0, 0, 0]);
        self.out.extend_from_slice(&self.width.to_be_bytes());
        self.out.extend_from_slice(&self.height.to_be_bytes());
    }

    /// Queues a KeyEvent (X11 keysym). Ignored before [`Event::Connected`].
    pub fn key(&mut self, keysym: u32, down: bool) {
        if !self.is_connected() {
            return;
        }
        self.out.extend_from_slice(&[4, u8::from(down), 0, 0]);
        self.out.extend_from_slice(&keysym.to_be_bytes());
    }

    /// Queues a PointerEvent (`buttons`: bit 0 left, 1 middle, 2 right, 3/4
    /// wheel up/down). Coordinates are clamped to the framebuffer. Ignored
    /// before [`Event::Connected`].
    pub fn pointer(&mut self, x: u16, y: u16, buttons: u8) {
        if !self.is_connected() {
            return;
        }
        let x = x.min(self.width.saturating_sub(1));
        let y = y.min(self.height.saturating_sub(1));
        self.out.extend_from_slice(&[5, buttons]);
        self.out.extend_from_slice(&x.to_be_bytes());
        self.out.extend_from_slice(&y.to_be_bytes());
    }

    /// Queues ClientCutText (Latin-1 bytes; the caller converts from UTF-8
    /// per guacd's `clipboard-encoding`). Ignored before [`Event::Connected`].
    pub fn cut_text(&mut self, latin1: &[u8]) {
        if !self.is_connected() {
            return;
        }
        let len = latin1.len().min(u32::MAX as usize);
        self.out.extend_from_slice(&[6, 0, 0, 0]);
        self.out.extend_from_slice(&(len as u32).to_be_bytes());
        self.out
            .extend_from_slice(latin1.get(..len).unwrap_or(latin1));
    }

    /// Asks the server to resize the desktop (SetDesktopSize, one screen).
    /// Only valid when [`RfbClient::can_resize`]; the answer arrives as
    /// [`Event::Resize`] with [`crate::ResizeReason::ThisClient`].
    pub fn set_desktop_size(&mut self, width: u16, height: u16) -> Result<(), RfbError> {
        if !self.is_connected() || !self.can_resize {
            return Err(RfbError::InvalidState(
                "server does not support ExtendedDesktopSize",
            ));
        }
        if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
            return Err(RfbError::InvalidState("desktop size out of range"));
        }
        let (id, flags) = self
            .screens
            .first()
            .map(|s| (s.id, s.flags))
            .unwrap_or((0, 0));
        self.out.extend_from_slice(&[251, 0]);
        self.out.extend_from_slice(&width.to_be_bytes());
        self.out.extend_from_slice(&height.to_be_bytes());
        self.out.extend_from_slice(&[1, 0]);
        self.out.extend_from_slice(&id.to_be_bytes());
        self.out.extend_from_slice(&[0, 0, 0, 0]);
        self.out.extend_from_slice(&width.to_be_bytes());
        self.out.extend_from_slice(&height.to_be_bytes());
        self.out.extend_from_slice(&flags.to_be_bytes());
        Ok(())
    }

    /// Whether the server announced ExtendedDesktopSize (so
    /// [`RfbClient::set_desktop_size`] may be used).
    pub fn can_resize(&self) -> bool {
        self.can_resize && self.is_connected()
    }

    /// ServerInit done and not closed.
    pub fn is_connected(&self) -> bool {
        self.connected && !matches!(self.state, State::Done)
    }

    /// Finished (error, auth failure or eof).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Current framebuffer width (0 before ServerInit).
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Current framebuffer height (0 before ServerInit).
    pub fn height(&self) -> u16 {
        self.height
    }

    /// The pixel format the server is sending in now.
    pub fn pixel_format(&self) -> PixelFormat {
        self.conv.format()
    }

    /// Negotiated protocol version.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Security type in use.
    pub fn security(&self) -> Option<Security> {
        self.security
    }

    /// Last screen layout from ExtendedDesktopSize.
    pub fn screens(&self) -> &[Screen] {
        &self.screens
    }

    /// The configuration.
    pub fn config(&self) -> &RfbConfig {
        &self.config
    }

    // ----------------------------------------------------------------------
    // Parsing.

    /// One parsing step over `buf` (the unconsumed input). Returns the bytes
    /// consumed; `Stop::More` when nothing can be done until more arrives.
    fn step(&mut self, buf: &[u8]) -> P<usize> {
        let mut r = Rd::new(buf);
        let state = std::mem::replace(&mut self.state, State::Done);
        match self.step_state(state, &mut r) {
            Ok(()) => Ok(r.pos),
            Err(e) => Err(e),
        }
    }

    /// Handles one state. On `Stop::More` the state must be put back
    /// unchanged (or with only resumable progress recorded).
    fn step_state(&mut self, state: State, r: &mut Rd<'_>) -> P<()> {
        macro_rules! again {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(Stop::More) => {
                        self.state = state;
                        return Err(Stop::More);
                    }
                    Err(e) => return Err(e),
                }
            };
        }
        match state {
            State::Version => {
                let v = again!(r.arr::<12>());
                self.on_version(&v)
            }
            State::SecTypes => {
                let n = again!(r.u8());
                if n == 0 {
                    self.state = State::RefusedReason;
                    return Ok(());
                }
                let types = again!(r.bytes(usize::from(n))).to_vec();
                self.choose_security(&types)
            }
            State::SecType33 => {
                let t = again!(r.u32());
                match t {
                    0 => self.state = State::RefusedReason,
                    1 => {
                        self.security = Some(Security::None);
                        self.send_client_init();
                    }
                    2 => {
                        self.security = Some(Security::VncAuth);
                        self.after_auth_step(Next::Vnc);
                    }
                    t => {
                        return Err(RfbError::UnsupportedSecurity(format!(
                            "server requires security type {t}"
                        ))
                        .into());
                    }
                }
                Ok(())
            }
            State::RefusedReason => {
                let reason = again!(read_string(r));
                Err(RfbError::ConnectionRefused(reason).into())
            }
            State::VncChallenge => {
                let ch = again!(r.arr::<16>());
                let pw = self.config.password.clone().unwrap_or_default();
                let resp = vnc_auth_response(pw.as_bytes(), &ch);
                self.out.extend_from_slice(&resp);
                self.state = State::SecResult;
                Ok(())
            }
            State::SecResult => {
                let res = again!(r.u32());
                if res == 0 {
                    self.send_client_init();
                } else if self.version == Some(ProtocolVersion::V3_8) {
                    self.state = State::FailReason;
                } else {
                    self.auth_failed("authentication failed".into());
                }
                Ok(())
            }
            State::FailReason => {
                let reason = again!(read_string(r));
                let reason = if reason.is_empty() {
                    "authentication failed".to_string()
                } else {
                    reason
                };
                self.auth_failed(reason);
                Ok(())
            }
            State::VeVersion => {
                let [major, minor] = again!(r.arr::<2>());
                if (major, minor) < (0, 2) {
                    return Err(RfbError::UnsupportedSecurity(format!(
                        "VeNCrypt version {major}.{minor}"
                    ))
                    .into());
                }
                self.out.extend_from_slice(&[0, 2]);
                self.state = State::VeAck;
                Ok(())
            }
            State::VeAck => {
                let ack = again!(r.u8());
                if ack != 0 {
                    return Err(RfbError::UnsupportedSecurity(
                        "server refused VeNCrypt 0.2".into(),
                    )
                    .into());
                }
                self.state = State::VeSubtypes;
                Ok(())
            }
            State::VeSubtypes => {
                let n = again!(r.u8());
                let raw = again!(r.bytes(usize::from(n) * 4));
                let subtypes: Vec<u32> = raw
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                self.choose_vencrypt(&subtypes)
            }
            State::TlsAck(next, verify) => {
                let ack = again!(r.u8());
                if ack == 0 {
                    return Err(RfbError::Protocol(
                        "server failed to initialise the TLS session".into(),
                    )
                    .into());
                }
                self.events.push_back(Event::StartTls {
                    verify_x509: verify,
                });
                self.state = State::WaitTls(next);
                Ok(())
            }
            State::WaitTls(_) | State::WaitCreds(_) | State::Done => {
                self.state = state;
                Err(Stop::More)
            }
            State::ServerInit => {
                let hdr = again!(r.arr::<24>());
                let len = u32::from_be_bytes([hdr[20], hdr[21], hdr[22], hdr[23]]) as usize;
                if len > MAX_WIRE_STRING {
                    return Err(RfbError::TooLarge(format!("desktop name of {len} bytes")).into());
                }
                let name = lossy(again!(r.bytes(len)));
                self.on_server_init(&hdr, name)
            }
            State::Message => {
                let t = again!(r.u8());
                match t {
                    0 => {
                        let [_, a, b] = again!(r.arr::<3>());
                        self.rects_left = u16::from_be_bytes([a, b]);
                        self.events.push_back(Event::UpdateBegin);
                        self.next_rect();
                    }
                    1 => {
                        let [_, f0, f1, n0, n1] = again!(r.arr::<5>());
                        let first = usize::from(u16::from_be_bytes([f0, f1]));
                        let n = usize::from(u16::from_be_bytes([n0, n1]));
                        if first + n > 65536 {
                            return proto("colour map entries beyond 65536");
                        }
                        let raw = again!(r.bytes(n * 6));
                        let colours: Vec<(u16, u16, u16)> = raw
                            .chunks_exact(6)
                            .map(|c| {
                                (
                                    u16::from_be_bytes([c[0], c[1]]),
                                    u16::from_be_bytes([c[2], c[3]]),
                                    u16::from_be_bytes([c[4], c[5]]),
                                )
                            })
                            .collect();
                        self.conv.set_colours(first, &colours);
                        self.state = State::Message;
                    }
                    2 => {
                        self.events.push_back(Event::Bell);
                        self.state = State::Message;
                    }
                    3 => {
                        let [_, _, _, a, b, c, d] = again!(r.arr::<7>());
                        let len = u32::from_be_bytes([a, b, c, d]) as usize;
                        let keep = len <= self.config.max_cut_text;
                        self.state = State::CutText { left: len, keep };
                    }
                    t => return proto(format!("unknown server message type {t}")),
                }
                Ok(())
            }
            State::CutText { left, keep } => {
                if keep {
                    let text = again!(r.bytes(left)).to_vec();
                    self.events.push_back(Event::ServerCutText(text));
                    self.state = State::Message;
                } else {
                    let n = left.min(r.avail());
                    if n == 0 && left > 0 {
                        self.state = state;
                        return Err(Stop::More);
                    }
                    r.pos += n;
                    self.state = if left - n == 0 {
                        State::Message
                    } else {
                        State::CutText {
                            left: left - n,
                            keep: false,
                        }
                    };
                }
                Ok(())
            }
            State::RectHeader => {
                let h = again!(r.arr::<12>());
                let rect = Rect {
                    x: u16::from_be_bytes([h[0], h[1]]),
                    y: u16::from_be_bytes([h[2], h[3]]),
                    w: u16::from_be_bytes([h[4], h[5]]),
                    h: u16::from_be_bytes([h[6], h[7]]),
                };
                let enc = i32::from_be_bytes([h[8], h[9], h[10], h[11]]);
                self.rects_left = self.rects_left.saturating_sub(1);
                if enc >= 0 {
                    let right = u32::from(rect.x) + u32::from(rect.w);
                    let bottom = u32::from(rect.y) + u32::from(rect.h);
                    if right > u32::from(self.width) || bottom > u32::from(self.height) {
                        return proto(format!(
                            "rectangle {}x{}+{}+{} outside the {}x{} framebuffer",
                            rect.w, rect.h, rect.x, rect.y, self.width, self.height
                        ));
                    }
                }
                self.state = State::RectBody(enc, rect, None);
                Ok(())
            }
            State::RectBody(enc, rect, body) => self.rect_body(enc, rect, body, r),
        }
    }

    fn on_version(&mut self, v: &[u8; 12]) -> P<()> {
        let bad = || {
            Stop::Err(RfbError::UnsupportedVersion(
                String::from_utf8_lossy(v).trim_end().to_string(),
            ))
        };
        if &v[..4] != b"RFB " || v[7] != b'.' || v[11] != b'\n' {
            return Err(bad());
        }
        let num = |s: &[u8]| -> Option<u32> {
            if s.iter().all(u8::is_ascii_digit) {
                std::str::from_utf8(s).ok()?.parse().ok()
            } else {
                None
            }
        };
        let major = num(&v[4..7]).ok_or_else(bad)?;
        let minor = num(&v[8..11]).ok_or_else(bad)?;
        let version = match (major, minor) {
            (3, m) if m >= 8 => ProtocolVersion::V3_8,
            (3, 7) => ProtocolVersion::V3_7,
            (3, _) => ProtocolVersion::V3_3,
            (m, _) if m > 3 => ProtocolVersion::V3_8,
            _ => return Err(bad()),
        };
        self.version = Some(version);
        self.out.extend_from_slice(match version {
            ProtocolVersion::V3_3 => b"RFB 003.003\n",
            ProtocolVersion::V3_7 => b"RFB 003.007\n",
            ProtocolVersion::V3_8 => b"RFB 003.008\n",
        });
        self.state = if version == ProtocolVersion::V3_3 {
            State::SecType33
        } else {
            State::SecTypes
        };
        Ok(())
    }

    fn choose_security(&mut self, types: &[u8]) -> P<()> {
        let vencrypt_ok = self.config.allow_tls || self.config.allow_plain_without_tls;
        let chosen = types
            .iter()
            .copied()
            .find(|&t| t == 1 || t == 2 || (t == 19 && vencrypt_ok));
        let Some(t) = chosen else {
            let offered: Vec<String> = types.iter().map(|&t| security_name(t)).collect();
            return Err(RfbError::UnsupportedSecurity(format!(
                "server offers {}",
                offered.join(", ")
            ))
            .into());
        };
        self.out.push(t);
        match t {
            1 => {
                self.security = Some(Security::None);
                if self.version == Some(ProtocolVersion::V3_8) {
                    self.state = State::SecResult;
                } else {
                    self.send_client_init();
                }
            }
            2 => {
                self.security = Some(Security::VncAuth);
                self.after_auth_step(Next::Vnc);
            }
            _ => self.state = State::VeVersion,
        }
        Ok(())
    }

    fn choose_vencrypt(&mut self, subtypes: &[u32]) -> P<()> {
        let ok = |s: u32| match s {
            VENCRYPT_PLAIN => self.config.allow_plain_without_tls,
            VENCRYPT_TLSNONE..=VENCRYPT_X509PLAIN => self.config.allow_tls,
            _ => false,
        };
        // Certificate-based X509* subtypes first (they work with any TLS
        // stack; the anonymous TLS* ones need anonymous Diffie-Hellman),
        // otherwise the server's order.
        let x509 = |s: u32| (VENCRYPT_X509NONE..=VENCRYPT_X509PLAIN).contains(&s);
        let pick = subtypes
            .iter()
            .copied()
            .find(|&s| x509(s) && ok(s))
            .or_else(|| subtypes.iter().copied().find(|&s| ok(s)));
        let Some(s) = pick else {
            let offered: Vec<String> = subtypes.iter().map(u32::to_string).collect();
            return Err(RfbError::UnsupportedSecurity(format!(
                "VeNCrypt subtypes offered: [{}]",
                offered.join(", ")
            ))
            .into());
        };
        self.security = Some(Security::VeNCrypt(s));
        self.out.extend_from_slice(&s.to_be_bytes());
        match s {
            VENCRYPT_PLAIN => self.after_auth_step(Next::Plain),
            VENCRYPT_TLSNONE => self.state = State::TlsAck(Next::Result, false),
            VENCRYPT_TLSVNC => self.state = State::TlsAck(Next::Vnc, false),
            VENCRYPT_TLSPLAIN => self.state = State::TlsAck(Next::Plain, false),
            VENCRYPT_X509NONE => self.state = State::TlsAck(Next::Result, true),
            VENCRYPT_X509VNC => self.state = State::TlsAck(Next::Vnc, true),
            _ => self.state = State::TlsAck(Next::Plain, true),
        }
        Ok(())
    }

    fn auth_failed(&mut self, reason: String) {
        self.events.push_back(Event::AuthFailed { reason });
        self.state = State::Done;
    }

    fn send_client_init(&mut self) {
        self.out.push(u8::from(self.config.shared));
        self.state = State::ServerInit;
    }

    fn on_server_init(&mut self, hdr: &[u8; 24], name: String) -> P<()> {
        let width = u16::from_be_bytes([hdr[0], hdr[1]]);
        let height = u16::from_be_bytes([hdr[2], hdr[3]]);
        check_size(u32::from(width), u32::from(height))?;
        let mut pfb = [0u8; 16];
        pfb.copy_from_slice(&hdr[4..20]);
        let server_pf = PixelFormat::from_wire(&pfb)
            .map_err(|e| Stop::Err(RfbError::Protocol(format!("server pixel format: {e}"))))?;
        self.width = width;
        self.height = height;
        self.connected = true;
        let swap = self.config.swap_red_blue;
        let wanted = match self.config.pixel_format {
            PixelFormatRequest::ServerNative => None,
            PixelFormatRequest::Depth(8) => Some(PixelFormat::BGR233),
            PixelFormatRequest::Depth(16) => Some(PixelFormat::RGB565),
            PixelFormatRequest::Depth(_) => Some(PixelFormat::RGB888),
            PixelFormatRequest::Exact(pf) => pf.validate().is_ok().then_some(pf),
        };
        self.conv = Converter::new(server_pf, swap);
        if let Some(pf) = wanted {
            let mut conv = Converter::new(pf, swap);
            conv.inherit_map(&self.conv);
            self.conv = conv;
            self.out.extend_from_slice(&[0, 0, 0, 0]);
            self.out.extend_from_slice(&pf.to_wire());
        }
        // SetEncodings.
        let mut codes: Vec<i32> = Vec::new();
        for e in &self.config.encodings {
            if !codes.contains(&e.code()) {
                codes.push(e.code());
            }
        }
        if let Some(q) = self.config.jpeg_quality {
            codes.push(-32 + i32::from(q.min(9)));
        }
        if let Some(c) = self.config.compress_level {
            codes.push(-256 + i32::from(c.min(9)));
        }
        let n = codes.len().min(u16::MAX as usize);
        self.out.extend_from_slice(&[2, 0]);
        self.out.extend_from_slice(&(n as u16).to_be_bytes());
        for c in codes.iter().take(n) {
            self.out.extend_from_slice(&c.to_be_bytes());
        }
        self.events.push_back(Event::Connected {
            width,
            height,
            name,
            pixel_format: server_pf,
        });
        self.state = State::Message;
        self.request_update(false);
        Ok(())
    }

    /// After a rectangle: the next one, or the end of the update.
    fn next_rect(&mut self) {
        if self.rects_left == 0 {
            self.end_update();
        } else {
            self.state = State::RectHeader;
        }
    }

    fn end_update(&mut self) {
        self.events.push_back(Event::UpdateEnd);
        self.state = State::Message;
        if self.config.auto_update_requests {
            self.request_update(true);
        }
    }

    /// Emits decoded pixels, as a `Fill` when they are all one colour.
    fn emit(&mut self, x: u16, y: u16, w: u16, h: u16, data: Vec<u32>) {
        emit_into(&mut self.events, x, y, w, h, data);
    }

    fn fill(&mut self, x: u16, y: u16, w: u16, h: u16, color: u32) {
        if w > 0 && h > 0 {
            self.events.push_back(Event::Fill { x, y, w, h, color });
        }
    }

    fn resize_to(&mut self, w: u32, h: u32) -> P<bool> {
        check_size(w, h)?;
        let (w, h) = (w as u16, h as u16);
        if (w, h) == (self.width, self.height) {
            return Ok(false);
        }
        self.width = w;
        self.height = h;
        self.full_refresh = true;
        Ok(true)
    }

    fn rect_body(&mut self, enc: i32, rect: Rect, body: Option<Body>, r: &mut Rd<'_>) -> P<()> {
        let start = r.pos;
        let res = self.rect_body_inner(enc, rect, body, r);
        match res {
            Ok(None) => {
                self.next_rect();
                Ok(())
            }
            Ok(Some(body)) => {
                // Partial progress: keep it and ask for more if nothing was consumed.
                self.state = State::RectBody(enc, rect, Some(body));
                if r.pos == start {
                    Err(Stop::More)
                } else {
                    Ok(())
                }
            }
            Err(Stop::More) => {
                // Atomic body: nothing consumed, state restored by caller.
                r.pos = start;
                self.state = State::RectBody(enc, rect, None);
                Err(Stop::More)
            }
            Err(e) => Err(e),
        }
    }

    /// Decodes (part of) a rectangle body. `Ok(None)`: done; `Ok(Some(b))`:
    /// resumable progress; `Err(More)`: nothing consumed (atomic bodies).
    fn rect_body_inner(
        &mut self,
        enc: i32,
        rect: Rect,
        body: Option<Body>,
        r: &mut Rd<'_>,
    ) -> P<Option<Body>> {
        let (x, y, w, h) = (rect.x, rect.y, rect.w, rect.h);
        if let Some(body) = body {
            return self.resume_body(rect, body, r);
        }
        match enc {
            0 => self.resume_body(rect, Body::Raw { row: 0 }, r),
            1 => {
                let sx = r.u16()?;
                let sy = r.u16()?;
                if u32::from(sx) + u32::from(w) > u32::from(self.width)
                    || u32::from(sy) + u32::from(h) > u32::from(self.height)
                {
                    return proto("CopyRect source outside the framebuffer");
                }
                if w > 0 && h > 0 {
                    self.events.push_back(Event::Copy {
                        src_x: sx,
                        src_y: sy,
                        x,
                        y,
                        w,
                        h,
                    });
                }
                Ok(None)
            }
            2 => {
                let n = r.u32()?;
                let bg = self.conv.pixel(r.bytes(self.conv.bpp())?);
                self.fill(x, y, w, h, bg);
                if n == 0 {
                    return Ok(None);
                }
                Ok(Some(Body::RreSubs { left: n }))
            }
            5 | 15 => self.resume_body(
                rect,
                Body::Tiles {
                    trle: enc == 15,
                    tile_row: 0,
                    tile_col: 0,
                    strip: Vec::new(),
                    colours: HextileColours::default(),
                    palette: Vec::new(),
                },
                r,
            ),
            7 => self.tight_header(rect, r),
            16 => {
                let len = r.u32()? as usize;
                if len > MAX_ZRLE {
                    return Err(RfbError::TooLarge(format!("ZRLE payload of {len} bytes")).into());
                }
                let data = r.bytes(len)?;
                self.zrle_rect(rect, data)?;
                Ok(None)
            }
            -239 => {
                self.rich_cursor(rect, r)?;
                Ok(None)
            }
            -240 => {
                self.x_cursor(rect, r)?;
                Ok(None)
            }
            -223 => {
                if self.resize_to(u32::from(w), u32::from(h))? {
                    self.events.push_back(Event::Resize {
                        width: w,
                        height: h,
                        reason: ResizeReason::Server,
                        status: ResizeStatus::Ok,
                    });
                }
                Ok(None)
            }
            -224 => {
                self.rects_left = 0;
                Ok(None)
            }
            -307 => {
                let s = read_string(r)?;
                self.events.push_back(Event::DesktopName(s));
                Ok(None)
            }
            -308 => {
                let [n, _, _, _] = r.arr::<4>()?;
                let raw = r.bytes(usize::from(n) * 16)?;
                let screens: Vec<Screen> = raw
                    .chunks_exact(16)
                    .map(|c| Screen {
                        id: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                        x: u16::from_be_bytes([c[4], c[5]]),
                        y: u16::from_be_bytes([c[6], c[7]]),
                        width: u16::from_be_bytes([c[8], c[9]]),
                        height: u16::from_be_bytes([c[10], c[11]]),
                        flags: u32::from_be_bytes([c[12], c[13], c[14], c[15]]),
                    })
                    .collect();
                self.can_resize = true;
                let reason = match x {
                    1 => ResizeReason::ThisClient,
                    2 => ResizeReason::OtherClient,
                    _ => ResizeReason::Server,
                };
                let status = match y {
                    0 => ResizeStatus::Ok,
                    1 => ResizeStatus::Prohibited,
                    2 => ResizeStatus::OutOfResources,
                    3 => ResizeStatus::InvalidLayout,
                    n => ResizeStatus::Other(n),
                };
                if status == ResizeStatus::Ok {
                    let changed = self.resize_to(u32::from(w), u32::from(h))?;
                    self.screens = screens;
                    if changed || reason == ResizeReason::ThisClient {
                        self.events.push_back(Event::Resize {
                            width: w,
                            height: h,
                            reason,
                            status,
                        });
                    }
                } else {
                    self.events.push_back(Event::Resize {
                        width: self.width,
                        height: self.height,
                        reason,
                        status,
                    });
                }
                Ok(None)
            }
            e => proto(format!("unsupported encoding {e}")),
        }
    }

    /// Continues a resumable body as far as the input allows.
    fn resume_body(&mut self, rect: Rect, body: Body, r: &mut Rd<'_>) -> P<Option<Body>> {
        let (x, y, w, h) = (rect.x, rect.y, rect.w, rect.h);
        match body {
            Body::Raw { mut row } => {
                let bpp = self.conv.bpp();
                let row_bytes = rect.wu() * bpp;
                if row_bytes == 0 || h == 0 {
                    return Ok(None);
                }
                let per_strip = (RAW_STRIP_BYTES / row_bytes).clamp(1, usize::from(u16::MAX));
                while row < h {
                    let rows = per_strip.min(usize::from(h - row));
                    let Ok(src) = r.bytes(rows * row_bytes) else {
                        return Ok(Some(Body::Raw { row }));
                    };
                    let mut data = Vec::with_capacity(rows * rect.wu());
                    self.conv.extend(src, &mut data);
                    self.events.push_back(Event::Pixels {
                        x,
                        y: y + row,
                        w,
                        h: rows as u16,
                        data,
                    });
                    row += rows as u16;
                }
                Ok(None)
            }
            Body::RreSubs { mut left } => {
                let bpp = self.conv.bpp();
                while left > 0 {
                    let save = r.pos;
                    let rec = (|| -> P<(u32, [u8; 8])> {
                        let c = self.conv.pixel(r.bytes(bpp)?);
                        Ok((c, r.arr::<8>()?))
                    })();
                    let (c, g) = match rec {
                        Ok(v) => v,
                        Err(Stop::More) => {
                            r.pos = save;
                            return Ok(Some(Body::RreSubs { left }));
                        }
                        Err(e) => return Err(e),
                    };
                    let sx = u16::from_be_bytes([g[0], g[1]]);
                    let sy = u16::from_be_bytes([g[2], g[3]]);
                    let sw = u16::from_be_bytes([g[4], g[5]]);
                    let sh = u16::from_be_bytes([g[6], g[7]]);
                    if u32::from(sx) + u32::from(sw) > u32::from(w)
                        || u32::from(sy) + u32::from(sh) > u32::from(h)
                    {
                        return proto("RRE subrectangle outside its rectangle");
                    }
                    self.fill(x + sx, y + sy, sw, sh, c);
                    left -= 1;
                }
                Ok(None)
            }
            Body::Tiles {
                trle,
                mut tile_row,
                mut tile_col,
                mut strip,
                mut colours,
                mut palette,
            } => {
                const T: u16 = 16;
                let rows = h.div_ceil(T);
                let cols = w.div_ceil(T);
                while tile_row < rows {
                    let th = usize::from(T.min(h - tile_row * T));
                    if strip.is_empty() {
                        strip = vec![0u32; rect.wu() * th];
                    }
                    while tile_col < cols {
                        let tx = usize::from(tile_col * T);
                        let tw = usize::from(T.min(w - tile_col * T));
                        let save = r.pos;
                        let saved_colours = colours;
                        let mut s = Strip {
                            data: &mut strip,
                            stride: rect.wu(),
                        };
                        let res = if trle {
                            rle_tile(r, &self.conv, &mut palette, true, &mut s, tx, tw, th)
                        } else {
                            hextile_tile(r, &self.conv, &mut colours, &mut s, tx, tw, th)
                        };
                        match res {
                            Ok(()) => tile_col += 1,
                            Err(Stop::More) => {
                                r.pos = save;
                                return Ok(Some(Body::Tiles {
                                    trle,
                                    tile_row,
                                    tile_col,
                                    strip,
                                    colours: saved_colours,
                                    palette,
                                }));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    let data = std::mem::take(&mut strip);
                    self.emit(x, y + tile_row * T, w, th as u16, data);
                    tile_row += 1;
                    tile_col = 0;
                }
                Ok(None)
            }
            Body::TightData {
                kind,
                len,
                raw,
                stream,
                expected,
                palette,
            } => {
                let Ok(data) = r.bytes(len) else {
                    return Ok(Some(Body::TightData {
                        kind,
                        len,
                        raw,
                        stream,
                        expected,
                        palette,
                    }));
                };
                self.tight_data(rect, kind, data, raw, stream, expected, &palette)?;
                Ok(None)
            }
        }
    }

    fn tight_header(&mut self, rect: Rect, r: &mut Rd<'_>) -> P<Option<Body>> {
        let (wu, hu) = (rect.wu(), rect.hu());
        let ctrl = r.u8()?;
        let comp = ctrl >> 4;
        let tp = self.conv.tpixel_len();
        let (kind, palette, stream) = match comp {
            8 => {
                let c = self.conv.tpixel(r.bytes(tp)?);
                self.reset_tight(ctrl);
                self.fill(rect.x, rect.y, rect.w, rect.h, c);
                return Ok(None);
            }
            9 => {
                let len = compact_len(r)?;
                self.reset_tight(ctrl);
                return Ok(Some(Body::TightData {
                    kind: TightKind::Jpeg,
                    len,
                    raw: false,
                    stream: 0,
                    expected: 0,
                    palette: Vec::new(),
                }));
            }
            c if c > 9 => return proto(format!("unsupported Tight compression {c}")),
            c => {
                let stream = usize::from(c & 3);
                let filter = if c & 4 != 0 { r.u8()? } else { 0 };
                match filter {
                    0 => (TightKind::Copy, Vec::new(), stream),
                    1 => {
                        let n = usize::from(r.u8()?) + 1;
                        let raw = r.bytes(n * tp)?;
                        let pal: Vec<u32> =
                            raw.chunks_exact(tp).map(|p| self.conv.tpixel(p)).collect();
                        (TightKind::Palette, pal, stream)
                    }
                    2 => (TightKind::Gradient, Vec::new(), stream),
                    f => return proto(format!("unknown Tight filter {f}")),
                }
            }
        };
        let expected = match kind {
            TightKind::Palette if palette.len() <= 2 => wu.div_ceil(8) * hu,
            TightKind::Palette => wu * hu,
            _ => wu * hu * tp,
        };
        let (len, raw) = if expected < 12 {
            (expected, true)
        } else {
            (compact_len(r)?, false)
        };
        self.reset_tight(ctrl);
        Ok(Some(Body::TightData {
            kind,
            len,
            raw,
            stream,
            expected,
            palette,
        }))
    }

    fn reset_tight(&mut self, ctrl: u8) {
        for (i, z) in self.tight.iter_mut().enumerate() {
            if ctrl & (1 << i) != 0 {
                *z = Decompress::new(true);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn tight_data(
        &mut self,
        rect: Rect,
        kind: TightKind,
        data: &[u8],
        raw: bool,
        stream: usize,
        expected: usize,
        palette: &[u32],
    ) -> P<()> {
        let (wu, hu) = (rect.wu(), rect.hu());
        if let TightKind::Jpeg = kind {
            if wu == 0 || hu == 0 {
                return Ok(());
            }
            let px = decode_jpeg(data, wu, hu, &self.conv)?;
            self.events.push_back(Event::Pixels {
                x: rect.x,
                y: rect.y,
                w: rect.w,
                h: rect.h,
                data: px,
            });
            return Ok(());
        }
        let bytes = if raw {
            data.to_vec()
        } else {
            let z = self
                .tight
                .get_mut(stream)
                .ok_or_else(|| Stop::Err(RfbError::Protocol("bad Tight stream".into())))?;
            inflate_exact(z, data, expected)?
        };
        let mut px = Vec::with_capacity(wu * hu);
        match kind {
            TightKind::Copy => {
                let tp = self.conv.tpixel_len();
                px.extend(bytes.chunks_exact(tp).map(|p| self.conv.tpixel(p)));
            }
            TightKind::Gradient => self.conv.gradient(&bytes, wu, hu, &mut px),
            TightKind::Palette if palette.len() <= 2 => {
                let row = wu.div_ceil(8);
                for yy in 0..hu {
                    for xx in 0..wu {
                        let b = bytes.get(yy * row + xx / 8).copied().unwrap_or(0);
                        let idx = usize::from((b >> (7 - xx % 8)) & 1);
                        px.push(palette.get(idx).copied().unwrap_or(0));
                    }
                }
            }
            TightKind::Palette => {
                for &i in &bytes {
                    let c = palette.get(usize::from(i)).copied().ok_or_else(|| {
                        Stop::Err(RfbError::Protocol(
                            "Tight palette index out of range".into(),
                        ))
                    })?;
                    px.push(c);
                }
            }
            TightKind::Jpeg => {}
        }
        if px.len() != wu * hu {
            return proto("Tight data size mismatch");
        }
        self.emit(rect.x, rect.y, rect.w, rect.h, px);
        Ok(())
    }

    fn zrle_rect(&mut self, rect: Rect, data: &[u8]) -> P<()> {
        const T: u16 = 64;
        let (x, y, w, h) = (rect.x, rect.y, rect.w, rect.h);
        let cp = self.conv.cpixel_len();
        let tiles = usize::from(w.div_ceil(T)) * usize::from(h.div_ceil(T));
        let budget = rect.wu() * rect.hu() * (cp + 2) + tiles * (1 + 128 * cp) + (64 << 10);
        let mut zr = ZReader::new(&mut self.zrle, data, budget);
        let mut palette = Vec::new();
        for tile_row in 0..h.div_ceil(T) {
            let th = usize::from(T.min(h - tile_row * T));
            let mut strip = vec![0u32; rect.wu() * th];
            for tile_col in 0..w.div_ceil(T) {
                let tx = usize::from(tile_col * T);
                let tw = usize::from(T.min(w - tile_col * T));
                let mut s = Strip {
                    data: &mut strip,
                    stride: rect.wu(),
                };
                match rle_tile(&mut zr, &self.conv, &mut palette, false, &mut s, tx, tw, th) {
                    Ok(()) => {}
                    Err(Stop::More) => return proto("ZRLE data ended early"),
                    Err(e) => return Err(e),
                }
            }
            // Emitted strip by strip: memory stays bounded by one strip even
            // when a small payload describes a huge solid rectangle.
            emit_into(&mut self.events, x, y + tile_row * T, w, th as u16, strip);
        }
        match zr.finish() {
            Ok(()) => Ok(()),
            Err(Stop::More) => proto("ZRLE data ended early"),
            Err(e) => Err(e),
        }
    }

    fn rich_cursor(&mut self, rect: Rect, r: &mut Rd<'_>) -> P<()> {
        let (wu, hu) = (rect.wu(), rect.hu());
        if rect.w > MAX_CURSOR || rect.h > MAX_CURSOR {
            return Err(RfbError::TooLarge(format!("cursor {}x{}", rect.w, rect.h)).into());
        }
        if wu * hu == 0 {
            self.empty_cursor(rect);
            return Ok(());
        }
        let pixels = r.bytes(wu * hu * self.conv.bpp())?;
        let mask = r.bytes(wu.div_ceil(8) * hu)?;
        let mut px = Vec::with_capacity(wu * hu);
        self.conv.extend(pixels, &mut px);
        let rgba = cursor_rgba(&px, mask, wu, hu);
        self.events.push_back(Event::Cursor {
            hotspot_x: rect.x.min(rect.w - 1),
            hotspot_y: rect.y.min(rect.h - 1),
            w: rect.w,
            h: rect.h,
            rgba,
        });
        Ok(())
    }

    fn x_cursor(&mut self, rect: Rect, r: &mut Rd<'_>) -> P<()> {
        let (wu, hu) = (rect.wu(), rect.hu());
        if rect.w > MAX_CURSOR || rect.h > MAX_CURSOR {
            return Err(RfbError::TooLarge(format!("cursor {}x{}", rect.w, rect.h)).into());
        }
        if wu * hu == 0 {
            self.empty_cursor(rect);
            return Ok(());
        }
        let c = r.arr::<6>()?;
        let fg = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        let bg = (u32::from(c[3]) << 16) | (u32::from(c[4]) << 8) | u32::from(c[5]);
        let row = wu.div_ceil(8);
        let source = r.bytes(row * hu)?;
        let mask = r.bytes(row * hu)?;
        let mut px = Vec::with_capacity(wu * hu);
        for yy in 0..hu {
            for xx in 0..wu {
                let b = source.get(yy * row + xx / 8).copied().unwrap_or(0);
                px.push(if b & (0x80 >> (xx % 8)) != 0 { fg } else { bg });
            }
        }
        let rgba = cursor_rgba(&px, mask, wu, hu);
        self.events.push_back(Event::Cursor {
            hotspot_x: rect.x.min(rect.w - 1),
            hotspot_y: rect.y.min(rect.h - 1),
            w: rect.w,
            h: rect.h,
            rgba,
        });
        Ok(())
    }

    fn empty_cursor(&mut self, rect: Rect) {
        self.events.push_back(Event::Cursor {
            hotspot_x: rect.x,
            hotspot_y: rect.y,
            w: 0,
            h: 0,
            rgba: Vec::new(),
        });
    }
}

/// Pushes decoded pixels, as a `Fill` when they are all one colour.
fn emit_into(events: &mut VecDeque<Event>, x: u16, y: u16, w: u16, h: u16, data: Vec<u32>) {
    if w == 0 || h == 0 {
        return;
    }
    match data.first() {
        Some(&c) if data.iter().all(|&p| p == c) => {
            events.push_back(Event::Fill {
                x,
                y,
                w,
                h,
                color: c,
            });
        }
        _ => events.push_back(Event::Pixels { x, y, w, h, data }),
    }
}

/// u32 length + string, capped.
fn read_string(r: &mut Rd<'_>) -> P<String> {
    let len = r.u32()? as usize;
    if len > MAX_WIRE_STRING {
        return Err(RfbError::TooLarge(format!("string of {len} bytes")).into());
    }
    Ok(lossy(r.bytes(len)?))
}

fn check_size(w: u32, h: u32) -> P<()> {
    let max = u32::from(MAX_DIMENSION);
    if w == 0 || h == 0 || w > max || h > max {
        return Err(RfbError::InvalidDesktopSize {
            width: w,
            height: h,
        }
        .into());
    }
    Ok(())
}
