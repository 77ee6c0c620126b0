//! Sans-IO RFB (VNC) client core for guacr.
//!
//! [`RfbClient`] is a plain state machine: the driver feeds it the bytes it
//! reads from the server ([`RfbClient::feed`]), drains the decoded
//! [`Event`]s ([`RfbClient::poll_event`]) and writes whatever
//! [`RfbClient::take_output`] returns to the server. Nothing here performs
//! I/O, spawns threads or depends on an async runtime; arbitrary
//! fragmentation of the input (down to one byte at a time) produces exactly
//! the same events.
//!
//! Supported:
//! * protocol versions 3.3, 3.7 and 3.8 (3.889 from Apple and 4.x map to 3.8;
//!   3.4/3.5/3.6 map to 3.3);
//! * security types None (1), VNC Authentication (2) and VeNCrypt (19) with
//!   the subtypes Plain, TLSNone, TLSVnc, TLSPlain, X509None, X509Vnc and
//!   X509Plain (TLS is done by the driver after [`Event::StartTls`]);
//! * encodings Raw, CopyRect, RRE, Hextile, TRLE, ZRLE and Tight (fill,
//!   palette, gradient, JPEG), with the Cursor, XCursor, DesktopSize,
//!   ExtendedDesktopSize, LastRect, DesktopName, JPEG quality and compression
//!   level pseudo-encodings;
//! * any server pixel format of 8, 16, 24 or 32 bits per pixel, either byte
//!   order, any shifts, and colour maps.
//!
//! # Canonical pixel format
//! Every decoded pixel handed out in [`Event::Pixels`] / [`Event::Fill`] is a
//! `u32` of the form `0x00RRGGBB` (8 bits per channel, top byte zero),
//! rows top to bottom, no padding: pixel `(px, py)` of a rectangle of width
//! `w` is `data[py * w + px]`. On little-endian machines the memory layout of
//! such a slice is B, G, R, 0 (the layout of a Cairo `RGB24` / `XRGB8888`
//! surface), so a framebuffer of `u32` can be blitted with `copy_from_slice`.
//! Colour scaling from fewer bits is exact-rounded (`v * 255 / max`), and the
//! `swap_red_blue` option is applied before pixels leave the crate.
//! Cursor images ([`Event::Cursor`]) are straight (non-premultiplied) RGBA8
//! bytes, alpha 0 or 255.
//!
//! # Limits
//! Every size the server sends is bounded: desktop sizes must be 1..=16384 in
//! each dimension ([`MAX_DIMENSION`]), rectangles must lie inside the
//! framebuffer, zlib output never exceeds what the rectangle needs, reason
//! strings and desktop names are capped ([`MAX_REASON`]), clipboard text above
//! [`RfbConfig::max_cut_text`] is skipped, cursors are at most
//! [`MAX_CURSOR`] pixels wide and high. Violations are [`RfbError`]s, never
//! panics.

mod auth;
mod client;
mod decode;
mod pixel;

pub use auth::vnc_auth_response;
pub use client::RfbClient;
pub use pixel::PixelFormat;

/// Largest accepted framebuffer width or height.
pub const MAX_DIMENSION: u16 = 16384;
/// Longest reason string / desktop name kept (bytes); longer ones are
/// truncated (and ones over 64 KiB are a protocol error).
pub const MAX_REASON: usize = 4096;
/// Largest accepted cursor width or height.
pub const MAX_CURSOR: u16 = 1024;

/// Protocol version agreed with the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// RFB 3.3 (server chooses the security type).
    V3_3,
    /// RFB 3.7.
    V3_7,
    /// RFB 3.8.
    V3_8,
}

/// An RFB encoding or pseudo-encoding this crate knows how to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Raw (0).
    Raw,
    /// CopyRect (1).
    CopyRect,
    /// RRE (2).
    Rre,
    /// Hextile (5).
    Hextile,
    /// Tight (7), including its JPEG mode when a quality level is requested.
    Tight,
    /// TRLE (15).
    Trle,
    /// ZRLE (16).
    Zrle,
    /// Rich cursor pseudo-encoding (-239).
    Cursor,
    /// X cursor pseudo-encoding (-240).
    XCursor,
    /// DesktopSize pseudo-encoding (-223).
    DesktopSize,
    /// ExtendedDesktopSize pseudo-encoding (-308); enables
    /// [`RfbClient::set_desktop_size`] once the server answers with it.
    ExtendedDesktopSize,
    /// LastRect pseudo-encoding (-224).
    LastRect,
    /// DesktopName pseudo-encoding (-307).
    DesktopName,
}

impl Encoding {
    /// The 32-bit signed code sent in SetEncodings.
    pub fn code(self) -> i32 {
        match self {
            Encoding::Raw => 0,
            Encoding::CopyRect => 1,
            Encoding::Rre => 2,
            Encoding::Hextile => 5,
            Encoding::Tight => 7,
            Encoding::Trle => 15,
            Encoding::Zrle => 16,
            Encoding::Cursor => -239,
            Encoding::XCursor => -240,
            Encoding::DesktopSize => -223,
            Encoding::ExtendedDesktopSize => -308,
            Encoding::LastRect => -224,
            Encoding::DesktopName => -307,
        }
    }

    /// The encoding for one of guacd's `encodings` parameter words
    /// (`raw`, `copyrect`, `rre`, `hextile`, `tight`, `trle`, `zrle`).
    /// Words guacd accepts that this crate does not decode (`zlib`, `corre`,
    /// `ultra`, `zywrle`) give `None`; callers skip them.
    pub fn from_name(name: &str) -> Option<Encoding> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "raw" => Encoding::Raw,
            "copyrect" => Encoding::CopyRect,
            "rre" => Encoding::Rre,
            "hextile" => Encoding::Hextile,
            "tight" => Encoding::Tight,
            "trle" => Encoding::Trle,
            "zrle" => Encoding::Zrle,
            _ => return None,
        })
    }

    /// The default preference: CopyRect, Tight, ZRLE, TRLE, Hextile, RRE,
    /// Raw, then the pseudo-encodings Cursor, XCursor, DesktopSize,
    /// ExtendedDesktopSize, LastRect, DesktopName.
    pub fn default_list() -> Vec<Encoding> {
        vec![
            Encoding::CopyRect,
            Encoding::Tight,
            Encoding::Zrle,
            Encoding::Trle,
            Encoding::Hextile,
            Encoding::Rre,
            Encoding::Raw,
            Encoding::Cursor,
            Encoding::XCursor,
            Encoding::DesktopSize,
            Encoding::ExtendedDesktopSize,
            Encoding::LastRect,
            Encoding::DesktopName,
        ]
    }

    /// True for pseudo-encodings (no pixels of their own).
    pub fn is_pseudo(self) -> bool {
        self.code() < 0
    }
}

/// Which pixel format to ask the server for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormatRequest {
    /// Keep the server's native format (send no SetPixelFormat): for servers
    /// that ignore or refuse SetPixelFormat.
    ServerNative,
    /// A guacd `color-depth` value: 8 (BGR233), 16 (RGB565), 24 or 32
    /// (32 bits per pixel, depth 24, little-endian, red at bit 16, green 8,
    /// blue 0: exactly the canonical `0x00RRGGBB`, so no conversion).
    Depth(u8),
    /// An exact format.
    Exact(PixelFormat),
}

impl Default for PixelFormatRequest {
    fn default() -> Self {
        PixelFormatRequest::Depth(24)
    }
}

impl PixelFormatRequest {
    /// The request for a guacd `color-depth` parameter value (8, 16, 24, 32);
    /// `None` for anything else (guacd then uses the default, 24).
    pub fn from_color_depth(depth: u8) -> Option<PixelFormatRequest> {
        matches!(depth, 8 | 16 | 24 | 32).then_some(PixelFormatRequest::Depth(depth))
    }
}

/// Connection settings. `Debug` hides the password.
#[derive(Clone)]
pub struct RfbConfig {
    /// Password for VNC Authentication and VeNCrypt Plain. If the server
    /// needs one and this is `None`, [`Event::CredentialsRequired`] is
    /// emitted.
    pub password: Option<String>,
    /// Username for VeNCrypt Plain / TLSPlain / X509Plain.
    pub username: Option<String>,
    /// ClientInit shared flag (guacd always sends shared = true).
    pub shared: bool,
    /// Encodings in preference order, pseudo-encodings included. Quality and
    /// compression pseudo-encodings come from `jpeg_quality` and
    /// `compress_level`.
    pub encodings: Vec<Encoding>,
    /// Tight JPEG quality level 0..=9 (pseudo-encoding -32 + level). `None`
    /// sends no quality level, which makes Tight servers stay lossless.
    pub jpeg_quality: Option<u8>,
    /// Compression level 0..=9 (pseudo-encoding -256 + level), `None` for the
    /// server's default.
    pub compress_level: Option<u8>,
    /// Pixel format to request after ServerInit.
    pub pixel_format: PixelFormatRequest,
    /// Swap red and blue in every decoded pixel (guacd's `swap-red-blue`).
    pub swap_red_blue: bool,
    /// Choose VeNCrypt (19) when the server lists it first, and accept its
    /// TLS subtypes (the driver must then wrap the socket in TLS on
    /// [`Event::StartTls`]). Certificate-based X509* subtypes are preferred
    /// over the anonymous TLS* ones, which servers such as TigerVNC run with
    /// anonymous Diffie-Hellman only (rustls cannot); with `false` VeNCrypt
    /// is skipped (unless `allow_plain_without_tls`) and VncAuth/None used.
    pub allow_tls: bool,
    /// Accept VeNCrypt Plain (256): username and password in clear text.
    pub allow_plain_without_tls: bool,
    /// Send an incremental FramebufferUpdateRequest automatically after every
    /// update ends. Set `false` for driver-paced flow control and call
    /// [`RfbClient::request_update`] yourself.
    pub auto_update_requests: bool,
    /// Longest ServerCutText kept; longer ones are skipped (not an error).
    pub max_cut_text: usize,
}

impl Default for RfbConfig {
    fn default() -> Self {
        RfbConfig {
            password: None,
            username: None,
            shared: true,
            encodings: Encoding::default_list(),
            jpeg_quality: None,
            compress_level: None,
            pixel_format: PixelFormatRequest::default(),
            swap_red_blue: false,
            allow_tls: true,
            allow_plain_without_tls: false,
            auto_update_requests: true,
            max_cut_text: 1 << 20,
        }
    }
}

impl std::fmt::Debug for RfbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RfbConfig")
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("username", &self.username)
            .field("shared", &self.shared)
            .field("encodings", &self.encodings)
            .field("jpeg_quality", &self.jpeg_quality)
            .field("compress_level", &self.compress_level)
            .field("pixel_format", &self.pixel_format)
            .field("swap_red_blue", &self.swap_red_blue)
            .field("allow_tls", &self.allow_tls)
            .field("allow_plain_without_tls", &self.allow_plain_without_tls)
            .field("auto_update_requests", &self.auto_update_requests)
            .field("max_cut_text", &self.max_cut_text)
            .finish()
    }
}

/// Why the framebuffer size changed (or a resize request was answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeReason {
    /// The server changed the size (DesktopSize, or ExtendedDesktopSize with
    /// reason 0).
    Server,
    /// Answer to this client's [`RfbClient::set_desktop_size`].
    ThisClient,
    /// Another client asked for the change.
    OtherClient,
}

/// Result code of a SetDesktopSize request (ExtendedDesktopSize status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeStatus {
    /// Done (or not a reply to a request).
    Ok,
    /// The server does not allow resizing.
    Prohibited,
    /// The server ran out of resources.
    OutOfResources,
    /// The requested layout was invalid.
    InvalidLayout,
    /// Any other status code.
    Other(u16),
}

/// One screen of an ExtendedDesktopSize layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen {
    /// Screen id.
    pub id: u32,
    /// Left edge.
    pub x: u16,
    /// Top edge.
    pub y: u16,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Flags (unused by RFB today).
    pub flags: u32,
}

/// VeNCrypt subtype / security type actually used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No authentication (1).
    None,
    /// VNC Authentication (2).
    VncAuth,
    /// VeNCrypt (19) with the given subtype (256..=262).
    VeNCrypt(u32),
}

/// What the core reports to the driver, in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The server needs credentials the config did not have. The driver asks
    /// the user (guacd's `required` instruction) and calls
    /// [`RfbClient::provide_credentials`]; nothing proceeds until then.
    CredentialsRequired {
        /// A username is needed (VeNCrypt Plain variants).
        username: bool,
        /// A password is needed.
        password: bool,
    },
    /// Wrap the socket in TLS now (VeNCrypt TLS*/X509* subtypes), then call
    /// [`RfbClient::tls_established`] and feed the decrypted bytes from then
    /// on. `verify_x509` is true for the X509* subtypes (verify the server
    /// certificate) and false for the anonymous TLS* ones (TLSNone/TLSVnc/
    /// TLSPlain, which real servers run with anonymous Diffie-Hellman or a
    /// certificate the driver should not verify).
    StartTls {
        /// Whether the certificate should be verified.
        verify_x509: bool,
    },
    /// Authentication was refused (wrong password). The connection is
    /// finished; [`RfbClient::feed`] returns [`RfbError::Closed`] afterwards.
    AuthFailed {
        /// The server's reason (3.8) or a generic text.
        reason: String,
    },
    /// ServerInit received; the client has queued SetPixelFormat (unless
    /// [`PixelFormatRequest::ServerNative`]), SetEncodings and a
    /// non-incremental FramebufferUpdateRequest.
    Connected {
        /// Framebuffer width.
        width: u16,
        /// Framebuffer height.
        height: u16,
        /// Desktop name (lossy UTF-8, capped at [`MAX_REASON`] bytes).
        name: String,
        /// The server's native pixel format from ServerInit (the format in
        /// use afterwards is [`RfbClient::pixel_format`]).
        pixel_format: PixelFormat,
    },
    /// A FramebufferUpdate starts.
    UpdateBegin,
    /// Decoded pixels for a rectangle (canonical `0x00RRGGBB`, `w * h`
    /// entries). One wire rectangle may arrive as several horizontal strips,
    /// each its own `Pixels` (or `Fill`) event: Raw in strips of about
    /// 256 KiB, Hextile and TRLE in 16-row strips, ZRLE in 64-row strips.
    /// The split depends only on the rectangle, never on how the input was
    /// fragmented.
    Pixels {
        /// Left.
        x: u16,
        /// Top.
        y: u16,
        /// Width.
        w: u16,
        /// Height.
        h: u16,
        /// `w * h` pixels, row-major.
        data: Vec<u32>,
    },
    /// A solid rectangle (RRE background and subrectangles, Tight fill, and
    /// any decoded strip whose pixels are all one colour); an optimisation
    /// hint, equivalent to a `Pixels` of one colour.
    Fill {
        /// Left.
        x: u16,
        /// Top.
        y: u16,
        /// Width.
        w: u16,
        /// Height.
        h: u16,
        /// Canonical `0x00RRGGBB` colour.
        color: u32,
    },
    /// CopyRect: copy `w`×`h` from (`src_x`, `src_y`) to (`x`, `y`), using
    /// the framebuffer as it is after the previous events of this update.
    Copy {
        /// Source left.
        src_x: u16,
        /// Source top.
        src_y: u16,
        /// Destination left.
        x: u16,
        /// Destination top.
        y: u16,
        /// Width.
        w: u16,
        /// Height.
        h: u16,
    },
    /// New cursor shape. `w == 0 || h == 0` means an invisible cursor. The
    /// hotspot is clamped inside the cursor.
    Cursor {
        /// Hotspot x.
        hotspot_x: u16,
        /// Hotspot y.
        hotspot_y: u16,
        /// Width.
        w: u16,
        /// Height.
        h: u16,
        /// `w * h * 4` bytes of straight RGBA.
        rgba: Vec<u8>,
    },
    /// The framebuffer size changed (or a SetDesktopSize request was
    /// answered: then `reason` is [`ResizeReason::ThisClient`], and if
    /// `status` is not [`ResizeStatus::Ok`] the size did not change).
    /// Content after a resize is undefined until repainted.
    Resize {
        /// New width.
        width: u16,
        /// New height.
        height: u16,
        /// Who caused it.
        reason: ResizeReason,
        /// Outcome of a client request.
        status: ResizeStatus,
    },
    /// The desktop name changed (DesktopName pseudo-encoding).
    DesktopName(String),
    /// A FramebufferUpdate ended.
    UpdateEnd,
    /// Bell.
    Bell,
    /// Server clipboard, Latin-1 bytes as sent.
    ServerCutText(Vec<u8>),
}

/// Errors; after any of them the client is finished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RfbError {
    /// The server broke the protocol (bad message, bad rectangle, bad zlib or
    /// JPEG data, rectangle outside the framebuffer...).
    #[error("VNC protocol error: {0}")]
    Protocol(String),
    /// The server speaks a protocol version this client cannot use.
    #[error("unsupported VNC protocol version: {0}")]
    UnsupportedVersion(String),
    /// No security type (or VeNCrypt subtype) in common; the text lists what
    /// the server offered.
    #[error("no supported VNC security type: {0}")]
    UnsupportedSecurity(String),
    /// The server refused the connection before authentication (zero
    /// security types with a reason, e.g. "too many authentication
    /// failures").
    #[error("VNC server refused the connection: {0}")]
    ConnectionRefused(String),
    /// Authentication failed (also reported as [`Event::AuthFailed`]); or the
    /// server closed the connection right after the credentials were sent.
    #[error("VNC authentication failed: {0}")]
    AuthFailed(String),
    /// Framebuffer size 0 or above [`MAX_DIMENSION`].
    #[error("invalid VNC desktop size {width}x{height}")]
    InvalidDesktopSize {
        /// Width announced.
        width: u32,
        /// Height announced.
        height: u32,
    },
    /// A length from the server exceeds a limit.
    #[error("VNC server sent too much data: {0}")]
    TooLarge(String),
    /// The connection is closed (after an error, [`Event::AuthFailed`] or
    /// [`RfbClient::eof`]).
    #[error("VNC connection closed")]
    Closed,
    /// The server closed the connection in the middle of a message or of the
    /// handshake.
    #[error("VNC server closed the connection unexpectedly ({0})")]
    UnexpectedEof(String),
    /// A method was called in a state where it makes no sense (e.g.
    /// `tls_established` without a pending `StartTls`, `set_desktop_size`
    /// when the server did not announce ExtendedDesktopSize).
    #[error("invalid call: {0}")]
    InvalidState(&'static str),
}
