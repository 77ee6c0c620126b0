//! The RFB client state machine.

use std::collections::VecDeque;

use crate::{Event, PixelFormat, ProtocolVersion, RfbConfig, RfbError, Screen, Security};

/// Sans-IO RFB client. See the crate documentation.
pub struct RfbClient {
    config: RfbConfig,
    events: VecDeque<Event>,
    out: Vec<u8>,
    closed: bool,
    width: u16,
    height: u16,
    pf: PixelFormat,
    version: Option<ProtocolVersion>,
    security: Option<Security>,
    screens: Vec<Screen>,
    can_resize: bool,
    connected: bool,
}

impl RfbClient {
    /// A client waiting for the server's ProtocolVersion.
    pub fn new(config: RfbConfig) -> RfbClient {
        RfbClient {
            config,
            events: VecDeque::new(),
            out: Vec::new(),
            closed: false,
            width: 0,
            height: 0,
            pf: PixelFormat::RGB888,
            version: None,
            security: None,
            screens: Vec::new(),
            can_resize: false,
            connected: false,
        }
    }

    /// Processes bytes received from the server (any fragmentation). Events
    /// are queued for [`RfbClient::poll_event`], replies for
    /// [`RfbClient::take_output`]. After an error every call returns
    /// [`RfbError::Closed`].
    pub fn feed(&mut self, data: &[u8]) -> Result<(), RfbError> {
        let _ = data;
        if self.closed {
            return Err(RfbError::Closed);
        }
        self.closed = true;
        Err(RfbError::Protocol("not implemented yet".into()))
    }

    /// The server closed the connection: returns the error describing it
    /// ([`RfbError::AuthFailed`] right after credentials were sent to a 3.3 /
    /// 3.7 server, [`RfbError::UnexpectedEof`] during the handshake or in
    /// the middle of a message, [`RfbError::Closed`] otherwise).
    pub fn eof(&mut self) -> RfbError {
        self.closed = true;
        RfbError::Closed
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
        Err(RfbError::InvalidState("no TLS upgrade pending"))
    }

    /// Supplies credentials after [`Event::CredentialsRequired`].
    pub fn provide_credentials(
        &mut self,
        username: Option<String>,
        password: Option<String>,
    ) -> Result<(), RfbError> {
        let _ = (username, password);
        Err(RfbError::InvalidState("no credentials requested"))
    }

    /// Queues a FramebufferUpdateRequest for the whole framebuffer. Ignored
    /// before [`Event::Connected`].
    pub fn request_update(&mut self, incremental: bool) {
        let _ = incremental;
    }

    /// Queues a KeyEvent (X11 keysym). Ignored before [`Event::Connected`].
    pub fn key(&mut self, keysym: u32, down: bool) {
        let _ = (keysym, down);
    }

    /// Queues a PointerEvent (`buttons`: bit 0 left, 1 middle, 2 right, 3/4
    /// wheel up/down). Coordinates are clamped to the framebuffer. Ignored
    /// before [`Event::Connected`].
    pub fn pointer(&mut self, x: u16, y: u16, buttons: u8) {
        let _ = (x, y, buttons);
    }

    /// Queues ClientCutText (Latin-1 bytes; the caller converts from UTF-8
    /// per guacd's `clipboard-encoding`). Ignored before [`Event::Connected`].
    pub fn cut_text(&mut self, latin1: &[u8]) {
        let _ = latin1;
    }

    /// Asks the server to resize the desktop (SetDesktopSize, one screen).
    /// Only valid when [`RfbClient::can_resize`]; the answer arrives as
    /// [`Event::Resize`] with [`crate::ResizeReason::ThisClient`].
    pub fn set_desktop_size(&mut self, width: u16, height: u16) -> Result<(), RfbError> {
        let _ = (width, height);
        Err(RfbError::InvalidState("server does not support ExtendedDesktopSize"))
    }

    /// Whether the server announced ExtendedDesktopSize (so
    /// [`RfbClient::set_desktop_size`] may be used).
    pub fn can_resize(&self) -> bool {
        self.can_resize
    }

    /// ServerInit done and not closed.
    pub fn is_connected(&self) -> bool {
        self.connected && !self.closed
    }

    /// Finished (error, auth failure or eof).
    pub fn is_closed(&self) -> bool {
        self.closed
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
        self.pf
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
}
