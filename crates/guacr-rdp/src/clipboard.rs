//! The CLIPRDR static virtual channel: plain text both ways, with guacd's
//! `disable-copy`, `disable-paste`, `normalize-clipboard` and 256 KiB limit.
//!
//! # How the handler wires it (no threads, no channels: a queue inside the backend)
//!
//! ```text
//! // connect time (guacd always loads cliprdr):
//! let settings = ClipboardSettings::new(disable_copy, disable_paste,
//!     LineEndings::from_param(params.get_or("normalize-clipboard", ""))?);   // None → 256 error
//! connector.static_channels: insert clipboard::channel(settings)              // a `CliprdrClient`
//!
//! // after every `ActiveStage::process(..)` (it feeds CLIPRDR PDUs to the channel):
//! if let Some(c) = stage.get_svc_processor_mut::<CliprdrClient>() {
//!     let out = clipboard::poll(c);
//!     send(out.messages)                       // see below
//!     for text in out.remote_text {            // the server's clipboard, already decoded,
//!         session.broadcast(&clipboard::clipboard_instructions(STREAM, &text)); // limited
//!     }
//! }
//! // a user's clipboard stream (Input::Clipboard { mimetype: "text/…", data }):
//! if let Some(c) = stage.get_svc_processor_mut::<CliprdrClient>() {
//!     let out = clipboard::set_local_text(c, &String::from_utf8_lossy(&data));
//!     send(out.messages)
//! }
//! // send(messages): if !messages.is_empty() {
//! //     let frame = stage.process_svc_processor_messages(
//! //         SvcProcessorMessages::<CliprdrClient>::new(messages))?;  write frame to the server }
//! ```
//!
//! Remote → Guacamole: the server's format list is answered by the channel
//! itself; when it holds text the backend requests `CF_UNICODETEXT` (else
//! `CF_TEXT`, else `CF_OEMTEXT`), and the response comes out of [`poll`] as a
//! `String` (UTF-16LE up to the first NUL; CP1252 / CP437 for the 8-bit
//! formats). Nothing is requested with `disable-copy`.
//!
//! Guacamole → remote: [`set_local_text`] stores the text (truncated to the
//! limit at a character boundary) and announces `CF_UNICODETEXT` + `CF_TEXT`;
//! the server's data request is answered with UTF-16LE + NUL (or CP1252 + NUL),
//! line endings per `normalize-clipboard`. Ignored with `disable-paste`.
//!
//! `normalize-clipboard` (guacd): `preserve` (default) leaves text alone;
//! `unix` turns CRLF and lone CR into LF both ways; `windows` does the same for
//! text from the server and sends CRLF line endings to the server.
//!
//! Malformed or unexpected PDUs never panic: decoding is total (bad UTF-16 →
//! U+FFFD) and channel errors are logged and dropped.

use std::borrow::Cow;
use std::collections::VecDeque;

use guacr_protocol::InstructionWriter;
use ironrdp_cliprdr::CliprdrClient;
use ironrdp_cliprdr::backend::CliprdrBackend;
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest,
    FileContentsResponse, FormatDataRequest, FormatDataResponse, LockDataId,
    OwnedFormatDataResponse,
};
use ironrdp_svc::SvcMessage;

/// guacd's clipboard limit (`GUAC_RDP_CLIPBOARD_MAX_LENGTH`): 256 KiB of UTF-8.
pub const CLIPBOARD_MAX_BYTES: usize = 262_144;

/// Raw bytes per `blob` (guacd's limit).
const BLOB_MAX: usize = 6048;

/// guacd's `normalize-clipboard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEndings {
    /// `preserve` (and empty): text passes unchanged.
    #[default]
    Preserve,
    /// `unix`: LF.
    Unix,
    /// `windows`: CRLF towards the server (LF towards the client, like guacd).
    Windows,
}

impl LineEndings {
    /// Parses the parameter value; `None` for an unknown one.
    pub fn from_param(value: &str) -> Option<Self> {
        match value {
            "" | "preserve" => Some(Self::Preserve),
            "unix" => Some(Self::Unix),
            "windows" => Some(Self::Windows),
            _ => None,
        }
    }

    /// Text from a user as it is sent to the server.
    pub fn to_server(self, text: &str) -> Cow<'_, str> {
        match self {
            Self::Preserve => Cow::Borrowed(text),
            Self::Unix => to_lf(text),
            Self::Windows => {
                let lf = to_lf(text);
                if !lf.contains('\n') {
                    return lf;
                }
                Cow::Owned(lf.replace('\n', "\r\n"))
            }
        }
    }

    /// Text from the server as it is sent to users.
    pub fn from_server(self, text: &str) -> Cow<'_, str> {
        match self {
            Self::Preserve => Cow::Borrowed(text),
            Self::Unix | Self::Windows => to_lf(text),
        }
    }
}

/// CRLF and lone CR → LF.
fn to_lf(text: &str) -> Cow<'_, str> {
    if !text.contains('\r') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' {
            if chars.peek() == Some(&'\n') {
                chars.next();
            }
            out.push('\n');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Truncates `text` to at most `max` bytes at a character boundary.
pub fn truncate_utf8(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// Clipboard options of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipboardSettings {
    /// `disable-copy`: the server's clipboard never reaches users.
    pub disable_copy: bool,
    /// `disable-paste`: users' clipboard never reaches the server.
    pub disable_paste: bool,
    /// `normalize-clipboard`.
    pub line_endings: LineEndings,
    /// Most UTF-8 bytes kept either way ([`CLIPBOARD_MAX_BYTES`]).
    pub max_bytes: usize,
}

impl Default for ClipboardSettings {
    fn default() -> Self {
        ClipboardSettings {
            disable_copy: false,
            disable_paste: false,
            line_endings: LineEndings::Preserve,
            max_bytes: CLIPBOARD_MAX_BYTES,
        }
    }
}

impl ClipboardSettings {
    pub fn new(disable_copy: bool, disable_paste: bool, line_endings: LineEndings) -> Self {
        ClipboardSettings {
            disable_copy,
            disable_paste,
            line_endings,
            max_bytes: CLIPBOARD_MAX_BYTES,
        }
    }
}

/// What the handler does after [`poll`] / [`set_local_text`].
#[derive(Debug, Default)]
pub struct ClipboardOutput {
    /// CLIPRDR messages for the server (encode with
    /// `ActiveStage::process_svc_processor_messages`).
    pub messages: Vec<SvcMessage>,
    /// The server's clipboard changed: broadcast each as a `text/plain` stream.
    pub remote_text: Vec<String>,
}

/// Builds the CLIPRDR channel for the connector's static channel set.
pub fn channel(settings: ClipboardSettings) -> CliprdrClient {
    CliprdrClient::new(Box::new(GuacClipboard::new(settings)))
}

/// Runs what the last PDUs asked for (data requests, answers, the initial
/// format list) and collects the server's clipboard text.
pub fn poll(cliprdr: &mut CliprdrClient) -> ClipboardOutput {
    let mut out = ClipboardOutput::default();
    while let Some(action) = backend(cliprdr).and_then(|b| b.actions.pop_front()) {
        match action {
            Action::Announce => {
                let formats = backend(cliprdr)
                    .map(|b| {
                        b.announced_version = b.local_version;
                        b.offered_formats()
                    })
                    .unwrap_or_default();
                match cliprdr.initiate_copy(&formats) {
                    Ok(m) => out.messages.extend(Vec::<SvcMessage>::from(m)),
                    Err(e) => tracing::warn!(error = %e, "clipboard: format list not sent"),
                }
            }
            Action::Request(format) => {
                if !cliprdr.is_ready() {
                    // The server announced its clipboard while the channel was
                    // still starting (xrdp does at start): ask once it is ready.
                    if let Some(b) = backend(cliprdr) {
                        b.deferred_request = Some(format);
                    }
                    continue;
                }
                if let Some(b) = backend(cliprdr) {
                    b.requested.push_back(format);
                    b.in_paste = true;
                }
                let sent = cliprdr.initiate_paste(format);
                let failed_locally = backend(cliprdr).is_some_and(|b| {
                    let failed = !b.in_paste;
                    b.in_paste = false;
                    failed
                });
                match sent {
                    Ok(m) => out.messages.extend(Vec::<SvcMessage>::from(m)),
                    Err(e) => {
                        if !failed_locally && let Some(b) = backend(cliprdr) {
                            b.requested.pop_back();
                        }
                        tracing::warn!(error = %e, "clipboard: data request not sent");
                    }
                }
            }
            Action::Answer(format) => {
                let response = backend(cliprdr)
                    .map(|b| b.answer(format))
                    .unwrap_or_else(OwnedFormatDataResponse::new_error);
                match cliprdr.submit_format_data(response) {
                    Ok(m) => out.messages.extend(Vec::<SvcMessage>::from(m)),
                    Err(e) => tracing::warn!(error = %e, "clipboard: data response not sent"),
                }
            }
            Action::FileContentsError(stream_id) => {
                match cliprdr.submit_file_contents(FileContentsResponse::new_error(stream_id)) {
                    Ok(m) => out.messages.extend(Vec::<SvcMessage>::from(m)),
                    Err(e) => {
                        tracing::debug!(error = %e, "clipboard: file contents refusal not sent")
                    }
                }
            }
        }
    }
    if let Some(b) = backend(cliprdr) {
        out.remote_text = std::mem::take(&mut b.remote_text);
    }
    out
}

/// A user's clipboard text for the server (ignored with `disable-paste`).
/// Before the channel is ready the text is kept and offered at its start.
pub fn set_local_text(cliprdr: &mut CliprdrClient, text: &str) -> ClipboardOutput {
    let ready = cliprdr.is_ready();
    let Some(b) = backend(cliprdr) else {
        return ClipboardOutput::default();
    };
    if b.settings.disable_paste {
        return ClipboardOutput::default();
    }
    let mut text = text.to_owned();
    truncate_utf8(&mut text, b.settings.max_bytes);
    b.current = Some(text.clone());
    b.local_text = Some(text);
    b.local_version = b.local_version.wrapping_add(1);
    if ready {
        b.actions.push_back(Action::Announce);
    }
    poll(cliprdr)
}

/// The latest clipboard contents (from the server or a user), e.g. for joiners.
pub fn current_text(cliprdr: &CliprdrClient) -> Option<&str> {
    cliprdr
        .downcast_backend::<GuacClipboard>()
        .and_then(|b| b.current.as_deref())
}

fn backend(cliprdr: &mut CliprdrClient) -> Option<&mut GuacClipboard> {
    cliprdr.downcast_backend_mut::<GuacClipboard>()
}

/// `clipboard,<stream>,text/plain` + `blob`s (≤ 6048 bytes each, split at
/// character boundaries) + `end`: what users receive for `text`.
pub fn clipboard_instructions(stream: i32, text: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(text.len() * 4 / 3 + 64);
    InstructionWriter::new(&mut buf, "clipboard")
        .arg(&stream)
        .arg("text/plain")
        .finish();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(BLOB_MAX);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (chunk, tail) = rest.split_at(end);
        InstructionWriter::new(&mut buf, "blob")
            .arg(&stream)
            .arg_base64(chunk.as_bytes())
            .finish();
        rest = tail;
    }
    InstructionWriter::new(&mut buf, "end")
        .arg(&stream)
        .finish();
    buf
}

/// UTF-16LE text up to the first NUL (an odd last byte is dropped, unpaired
/// surrogates become U+FFFD), at most `max` UTF-8 bytes.
pub fn decode_utf16le(data: &[u8], max: usize) -> String {
    let units = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0);
    let mut out = String::new();
    for c in char::decode_utf16(units) {
        let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// Text → UTF-16LE with a terminating NUL (`CF_UNICODETEXT`).
pub fn encode_utf16le(text: &str) -> Vec<u8> {
    let mut out: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    out.extend_from_slice(&[0, 0]);
    out
}

/// CP1252 code points for bytes 0x80..=0x9F (0 = undefined).
const CP1252_HIGH: [u16; 32] = [
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC,
    0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
];

/// CP437 (OEM United States) code points for bytes 0x80..=0xFF.
const CP437_HIGH: [u16; 128] = [
    0x00C7, 0x00FC, 0x00E9, 0x00E2, 0x00E4, 0x00E0, 0x00E5, 0x00E7, 0x00EA, 0x00EB, 0x00E8, 0x00EF,
    0x00EE, 0x00EC, 0x00C4, 0x00C5, 0x00C9, 0x00E6, 0x00C6, 0x00F4, 0x00F6, 0x00F2, 0x00FB, 0x00F9,
    0x00FF, 0x00D6, 0x00DC, 0x00A2, 0x00A3, 0x00A5, 0x20A7, 0x0192, 0x00E1, 0x00ED, 0x00F3, 0x00FA,
    0x00F1, 0x00D1, 0x00AA, 0x00BA, 0x00BF, 0x2310, 0x00AC, 0x00BD, 0x00BC, 0x00A1, 0x00AB, 0x00BB,
    0x2591, 0x2592, 0x2593, 0x2502, 0x2524, 0x2561, 0x2562, 0x2556, 0x2555, 0x2563, 0x2551, 0x2557,
    0x255D, 0x255C, 0x255B, 0x2510, 0x2514, 0x2534, 0x252C, 0x251C, 0x2500, 0x253C, 0x255E, 0x255F,
    0x255A, 0x2554, 0x2569, 0x2566, 0x2560, 0x2550, 0x256C, 0x2567, 0x2568, 0x2564, 0x2565, 0x2559,
    0x2558, 0x2552, 0x2553, 0x256B, 0x256A, 0x2518, 0x250C, 0x2588, 0x2584, 0x258C, 0x2590, 0x2580,
    0x03B1, 0x00DF, 0x0393, 0x03C0, 0x03A3, 0x03C3, 0x00B5, 0x03C4, 0x03A6, 0x0398, 0x03A9, 0x03B4,
    0x221E, 0x03C6, 0x03B5, 0x2229, 0x2261, 0x00B1, 0x2265, 0x2264, 0x2320, 0x2321, 0x00F7, 0x2248,
    0x00B0, 0x2219, 0x00B7, 0x221A, 0x207F, 0x00B2, 0x25A0, 0x00A0,
];

fn cp1252_char(b: u8) -> char {
    match b {
        0x80..=0x9F => CP1252_HIGH
            .get(usize::from(b - 0x80))
            .copied()
            .filter(|&cp| cp != 0)
            .and_then(|cp| char::from_u32(u32::from(cp)))
            .unwrap_or(char::REPLACEMENT_CHARACTER),
        _ => char::from(b),
    }
}

fn cp437_char(b: u8) -> char {
    if b < 0x80 {
        return char::from(b);
    }
    CP437_HIGH
        .get(usize::from(b - 0x80))
        .and_then(|&cp| char::from_u32(u32::from(cp)))
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// 8-bit text up to the first NUL through `map`, at most `max` UTF-8 bytes.
fn decode_8bit(data: &[u8], max: usize, map: fn(u8) -> char) -> String {
    let mut out = String::new();
    for &b in data.iter().take_while(|&&b| b != 0) {
        let c = map(b);
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// `CF_TEXT` (Windows-1252) → text.
pub fn decode_cp1252(data: &[u8], max: usize) -> String {
    decode_8bit(data, max, cp1252_char)
}

/// `CF_OEMTEXT` (CP437) → text.
pub fn decode_cp437(data: &[u8], max: usize) -> String {
    decode_8bit(data, max, cp437_char)
}

/// Text → Windows-1252 with a terminating NUL (`CF_TEXT`); characters it
/// cannot represent become `?`.
pub fn encode_cp1252(text: &str) -> Vec<u8> {
    let mut out: Vec<u8> = text
        .chars()
        .map(|c| {
            let cp = u32::from(c);
            match cp {
                0..=0x7F | 0xA0..=0xFF => u8::try_from(cp).unwrap_or(b'?'),
                _ => CP1252_HIGH
                    .iter()
                    .position(|&h| h != 0 && u32::from(h) == cp)
                    .and_then(|i| u8::try_from(0x80 + i).ok())
                    .unwrap_or(b'?'),
            }
        })
        .collect();
    out.push(0);
    out
}

/// The text formats we read from the server, best first.
const READABLE: [ClipboardFormatId; 3] = [
    ClipboardFormatId::CF_UNICODETEXT,
    ClipboardFormatId::CF_TEXT,
    ClipboardFormatId::CF_OEMTEXT,
];

/// The best text format among those the server offers.
pub fn choose_text_format(formats: &[ClipboardFormat]) -> Option<ClipboardFormatId> {
    READABLE
        .into_iter()
        .find(|wanted| formats.iter().any(|f| f.id() == *wanted))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Send our format list (the first one completes the channel's start).
    Announce,
    /// Ask the server for its clipboard in this format.
    Request(ClipboardFormatId),
    /// Answer the server's data request for this format.
    Answer(ClipboardFormatId),
    /// Refuse a file contents request (files are not supported).
    FileContentsError(u32),
}

/// The [`CliprdrBackend`]: callbacks only queue work; [`poll`] does it.
#[derive(Debug)]
pub struct GuacClipboard {
    settings: ClipboardSettings,
    /// Text offered to the server (limited, not yet normalised).
    local_text: Option<String>,
    /// Latest contents either way.
    current: Option<String>,
    actions: VecDeque<Action>,
    /// Formats of data requests sent, oldest first (responses come in order).
    requested: VecDeque<ClipboardFormatId>,
    /// Decoded server clipboard for users.
    remote_text: Vec<String>,
    /// Changes of `local_text`, and the change last announced: text set while
    /// the channel was starting is announced again once it is ready.
    local_version: u64,
    announced_version: u64,
    /// A text format the server announced before the channel was ready.
    deferred_request: Option<ClipboardFormatId>,
    /// Set while `initiate_paste` runs: a failure it reports at once (too many
    /// unanswered requests) belongs to the request just queued, not the oldest.
    in_paste: bool,
}

ironrdp_svc::impl_as_any!(GuacClipboard);

/// Most queued actions; a peer flooding format lists cannot grow memory.
const MAX_ACTIONS: usize = 64;

impl GuacClipboard {
    pub fn new(settings: ClipboardSettings) -> Self {
        GuacClipboard {
            settings,
            local_text: None,
            current: None,
            actions: VecDeque::new(),
            requested: VecDeque::new(),
            remote_text: Vec::new(),
            local_version: 0,
            announced_version: 0,
            deferred_request: None,
            in_paste: false,
        }
    }

    fn push(&mut self, action: Action) {
        if self.actions.len() >= MAX_ACTIONS {
            tracing::warn!("clipboard: too many pending actions; dropping one");
            return;
        }
        self.actions.push_back(action);
    }

    /// Our format list: text formats when we hold text, else empty.
    fn offered_formats(&self) -> Vec<ClipboardFormat> {
        if self.local_text.is_some() && !self.settings.disable_paste {
            vec![
                ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT),
                ClipboardFormat::new(ClipboardFormatId::CF_TEXT),
            ]
        } else {
            Vec::new()
        }
    }

    /// The data response for a server request.
    fn answer(&self, format: ClipboardFormatId) -> OwnedFormatDataResponse {
        let text = match (&self.local_text, self.settings.disable_paste) {
            (Some(t), false) => t,
            _ => return OwnedFormatDataResponse::new_error(),
        };
        let text = self.settings.line_endings.to_server(text);
        if format == ClipboardFormatId::CF_UNICODETEXT {
            OwnedFormatDataResponse::new_data(encode_utf16le(&text))
        } else if format == ClipboardFormatId::CF_TEXT {
            OwnedFormatDataResponse::new_data(encode_cp1252(&text))
        } else {
            OwnedFormatDataResponse::new_error()
        }
    }

    fn decode(&self, format: ClipboardFormatId, data: &[u8]) -> Option<String> {
        let max = self.settings.max_bytes;
        let text = if format == ClipboardFormatId::CF_UNICODETEXT {
            decode_utf16le(data, max)
        } else if format == ClipboardFormatId::CF_TEXT {
            decode_cp1252(data, max)
        } else if format == ClipboardFormatId::CF_OEMTEXT {
            decode_cp437(data, max)
        } else {
            return None;
        };
        Some(match self.settings.line_endings.from_server(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(t) => t,
        })
    }
}

impl CliprdrBackend for GuacClipboard {
    fn temporary_directory(&self) -> &str {
        ".cliprdr"
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        // Text only: no file streams, no clipboard locking.
        ClipboardGeneralCapabilityFlags::empty()
    }

    fn on_ready(&mut self) {
        tracing::debug!("clipboard channel ready");
        if self.local_version != self.announced_version {
            self.push(Action::Announce);
        }
        if let Some(format) = self.deferred_request.take() {
            self.push(Action::Request(format));
        }
    }

    fn on_request_format_list(&mut self) {
        // The first format list also carries our capabilities.
        self.push(Action::Announce);
    }

    fn on_process_negotiated_capabilities(&mut self, _: ClipboardGeneralCapabilityFlags) {}

    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        if self.settings.disable_copy {
            return;
        }
        // A newer list replaces one still waiting for the channel to start.
        self.deferred_request = None;
        if let Some(format) = choose_text_format(available_formats) {
            self.push(Action::Request(format));
        }
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        self.push(Action::Answer(request.format));
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        if self.in_paste {
            // Failed locally by `initiate_paste`: nothing was sent.
            self.in_paste = false;
            self.requested.pop_back();
            return;
        }
        let Some(format) = self.requested.pop_front() else {
            tracing::debug!("clipboard: unrequested data response ignored");
            return;
        };
        if response.is_error() || self.settings.disable_copy {
            return;
        }
        if let Some(text) = self.decode(format, response.data()) {
            self.current = Some(text.clone());
            if self.remote_text.len() >= MAX_ACTIONS {
                self.remote_text.remove(0);
            }
            self.remote_text.push(text);
        }
    }

    fn on_file_contents_request(&mut self, request: FileContentsRequest) {
        self.push(Action::FileContentsError(request.stream_id));
    }

    fn on_file_contents_response(&mut self, _: FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _: LockDataId) {}

    fn on_unlock(&mut self, _: LockDataId) {}
}

// An explicit path, so the file is found the same way when fuzz/ compiles
// this module in by `#[path]`.
#[cfg(test)]
#[path = "clipboard/xrdp_tests.rs"]
mod xrdp_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_cliprdr::pdu::{
        Capabilities, ClipboardPdu, ClipboardProtocolVersion, FormatList, FormatListResponse,
    };
    use ironrdp_pdu::{decode, encode_vec};
    use ironrdp_svc::SvcProcessor;

    fn server_pdu(pdu: &ClipboardPdu<'_>) -> Vec<u8> {
        encode_vec(pdu).unwrap()
    }

    /// Decodes what the client sends.
    fn sent(messages: &[SvcMessage]) -> Vec<ClipboardPdu<'static>> {
        messages
            .iter()
            .map(|m| {
                let bytes = m.encode_unframed_pdu().unwrap();
                let pdu: ClipboardPdu<'_> = decode(&bytes).unwrap();
                owned(pdu)
            })
            .collect()
    }

    fn owned(pdu: ClipboardPdu<'_>) -> ClipboardPdu<'static> {
        use ironrdp_pdu::IntoOwned;
        match pdu {
            ClipboardPdu::FormatList(l) => ClipboardPdu::FormatList(l.into_owned()),
            ClipboardPdu::FormatDataResponse(r) => ClipboardPdu::FormatDataResponse(r.into_owned()),
            ClipboardPdu::TemporaryDirectory(d) => ClipboardPdu::TemporaryDirectory(d.into_owned()),
            ClipboardPdu::FileContentsResponse(r) => {
                ClipboardPdu::FileContentsResponse(r.into_owned())
            }
            ClipboardPdu::MonitorReady => ClipboardPdu::MonitorReady,
            ClipboardPdu::FormatListResponse(r) => ClipboardPdu::FormatListResponse(r),
            ClipboardPdu::FormatDataRequest(r) => ClipboardPdu::FormatDataRequest(r),
            ClipboardPdu::Capabilities(c) => ClipboardPdu::Capabilities(c),
            ClipboardPdu::FileContentsRequest(r) => ClipboardPdu::FileContentsRequest(r),
            ClipboardPdu::LockData(i) => ClipboardPdu::LockData(i),
            ClipboardPdu::UnlockData(i) => ClipboardPdu::UnlockData(i),
        }
    }

    /// Feeds a server PDU; returns the channel's immediate replies and the poll output.
    fn feed(
        c: &mut CliprdrClient,
        pdu: &ClipboardPdu<'_>,
    ) -> (Vec<ClipboardPdu<'static>>, Vec<String>) {
        let mut msgs = c.process(&server_pdu(pdu)).unwrap();
        let out = poll(c);
        msgs.extend(out.messages);
        (sent(&msgs), out.remote_text)
    }

    fn formats_of(pdu: &ClipboardPdu<'_>) -> Vec<ClipboardFormatId> {
        match pdu {
            ClipboardPdu::FormatList(l) => l
                .get_formats(true)
                .unwrap()
                .iter()
                .map(|f| f.id())
                .collect(),
            other => panic!("not a format list: {other:?}"),
        }
    }

    /// Runs the start of the channel: capabilities, monitor ready, our list, OK.
    fn started(settings: ClipboardSettings) -> (CliprdrClient, Vec<ClipboardPdu<'static>>) {
        let mut c = channel(settings);
        assert!(c.start().unwrap().is_empty());
        let caps = ClipboardPdu::Capabilities(Capabilities::new(
            ClipboardProtocolVersion::V2,
            ClipboardGeneralCapabilityFlags::USE_LONG_FORMAT_NAMES,
        ));
        let (r, _) = feed(&mut c, &caps);
        assert!(r.is_empty());
        let (init, _) = feed(&mut c, &ClipboardPdu::MonitorReady);
        assert!(!c.is_ready());
        let (r, _) = feed(
            &mut c,
            &ClipboardPdu::FormatListResponse(FormatListResponse::Ok),
        );
        assert!(r.is_empty());
        assert!(c.is_ready());
        (c, init)
    }

    fn server_list(ids: &[ClipboardFormatId]) -> ClipboardPdu<'static> {
        let formats: Vec<ClipboardFormat> = ids.iter().map(|&i| ClipboardFormat::new(i)).collect();
        ClipboardPdu::FormatList(FormatList::new_unicode(&formats, true).unwrap())
    }

    #[test]
    fn start_sends_capabilities_and_an_empty_format_list() {
        let (_, init) = started(ClipboardSettings::default());
        assert!(matches!(init[0], ClipboardPdu::Capabilities(_)), "{init:?}");
        assert!(matches!(init[1], ClipboardPdu::TemporaryDirectory(_)));
        assert_eq!(formats_of(&init[2]), Vec::<ClipboardFormatId>::new());
    }

    #[test]
    fn text_set_before_start_is_offered_at_start() {
        let mut c = channel(ClipboardSettings::default());
        let out = set_local_text(&mut c, "early");
        assert!(out.messages.is_empty());
        let (init, _) = feed(&mut c, &ClipboardPdu::MonitorReady);
        assert_eq!(
            formats_of(&init[2]),
            vec![
                ClipboardFormatId::CF_UNICODETEXT,
                ClipboardFormatId::CF_TEXT
            ]
        );
    }

    #[test]
    fn text_set_while_starting_is_announced_when_ready() {
        let mut c = channel(ClipboardSettings::default());
        let (init, _) = feed(&mut c, &ClipboardPdu::MonitorReady);
        assert_eq!(formats_of(&init[2]), Vec::<ClipboardFormatId>::new());
        // The user's text arrives before the server accepted our first list.
        assert!(set_local_text(&mut c, "late").messages.is_empty());
        let (r, _) = feed(
            &mut c,
            &ClipboardPdu::FormatListResponse(FormatListResponse::Ok),
        );
        assert_eq!(
            formats_of(&r[0]),
            vec![
                ClipboardFormatId::CF_UNICODETEXT,
                ClipboardFormatId::CF_TEXT
            ]
        );
        // Once announced, another OK does not announce again.
        let (r, _) = feed(
            &mut c,
            &ClipboardPdu::FormatListResponse(FormatListResponse::Ok),
        );
        assert!(r.is_empty());
    }

    /// xrdp announces its clipboard right after Monitor Ready, before it has
    /// accepted our first format list: the data is requested once ready.
    #[test]
    fn format_list_during_start_is_requested_when_ready() {
        let mut c = channel(ClipboardSettings::default());
        feed(&mut c, &ClipboardPdu::MonitorReady);
        let (r, _) = feed(&mut c, &server_list(&[ClipboardFormatId::CF_UNICODETEXT]));
        assert_eq!(
            r,
            vec![ClipboardPdu::FormatListResponse(FormatListResponse::Ok)]
        );
        let (r, _) = feed(
            &mut c,
            &ClipboardPdu::FormatListResponse(FormatListResponse::Ok),
        );
        assert_eq!(
            r,
            vec![ClipboardPdu::FormatDataRequest(FormatDataRequest {
                format: ClipboardFormatId::CF_UNICODETEXT
            })]
        );
        let resp = FormatDataResponse::new_data(encode_utf16le("early bird"));
        let (_, text) = feed(&mut c, &ClipboardPdu::FormatDataResponse(resp));
        assert_eq!(text, vec!["early bird".to_owned()]);
    }

    #[test]
    fn remote_copy_is_requested_as_unicode_and_decoded() {
        let (mut c, _) = started(ClipboardSettings::default());
        let list = server_list(&[
            ClipboardFormatId::CF_TEXT,
            ClipboardFormatId::CF_UNICODETEXT,
            ClipboardFormatId::CF_LOCALE,
        ]);
        let (r, text) = feed(&mut c, &list);
        assert!(text.is_empty());
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(
            r[0],
            ClipboardPdu::FormatListResponse(FormatListResponse::Ok)
        );
        assert_eq!(
            r[1],
            ClipboardPdu::FormatDataRequest(FormatDataRequest {
                format: ClipboardFormatId::CF_UNICODETEXT
            })
        );
        let data = encode_utf16le("héllo wörld ✓ 😀");
        let resp = ClipboardPdu::FormatDataResponse(FormatDataResponse::new_data(data));
        let (r, text) = feed(&mut c, &resp);
        assert!(r.is_empty());
        assert_eq!(text, vec!["héllo wörld ✓ 😀".to_owned()]);
        assert_eq!(current_text(&c), Some("héllo wörld ✓ 😀"));
    }

    #[test]
    fn cf_text_fallback_is_cp1252_and_oemtext_cp437() {
        let (mut c, _) = started(ClipboardSettings::default());
        let (r, _) = feed(&mut c, &server_list(&[ClipboardFormatId::CF_TEXT]));
        assert_eq!(
            r[1],
            ClipboardPdu::FormatDataRequest(FormatDataRequest {
                format: ClipboardFormatId::CF_TEXT
            })
        );
        let resp = FormatDataResponse::new_data(vec![b'c', 0xE9, 0x80, 0, b'x']);
        let (_, text) = feed(&mut c, &ClipboardPdu::FormatDataResponse(resp));
        assert_eq!(text, vec!["cé€".to_owned()]);

        let (r, _) = feed(&mut c, &server_list(&[ClipboardFormatId::CF_OEMTEXT]));
        assert_eq!(
            r[1],
            ClipboardPdu::FormatDataRequest(FormatDataRequest {
                format: ClipboardFormatId::CF_OEMTEXT
            })
        );
        let resp = FormatDataResponse::new_data(vec![0x82, b'!', 0]);
        let (_, text) = feed(&mut c, &ClipboardPdu::FormatDataResponse(resp));
        assert_eq!(text, vec!["é!".to_owned()]);
    }

    #[test]
    fn non_text_format_lists_request_nothing() {
        let (mut c, _) = started(ClipboardSettings::default());
        let (r, text) = feed(&mut c, &server_list(&[ClipboardFormatId::CF_DIB]));
        assert_eq!(
            r,
            vec![ClipboardPdu::FormatListResponse(FormatListResponse::Ok)]
        );
        assert!(text.is_empty());
    }

    #[test]
    fn disable_copy_requests_nothing() {
        let settings = ClipboardSettings::new(true, false, LineEndings::Preserve);
        let (mut c, _) = started(settings);
        let (r, _) = feed(&mut c, &server_list(&[ClipboardFormatId::CF_UNICODETEXT]));
        assert_eq!(
            r,
            vec![ClipboardPdu::FormatListResponse(FormatListResponse::Ok)]
        );
        // Even an unsolicited response is not passed on.
        let resp = FormatDataResponse::new_data(encode_utf16le("secret"));
        let (_, text) = feed(&mut c, &ClipboardPdu::FormatDataResponse(resp));
        assert!(text.is_empty());
    }

    #[test]
    fn error_response_gives_no_text() {
        let (mut c, _) = started(ClipboardSettings::default());
        feed(&mut c, &server_list(&[ClipboardFormatId::CF_UNICODETEXT]));
        let (_, text) = feed(
            &mut c,
            &ClipboardPdu::FormatDataResponse(FormatDataResponse::new_error()),
        );
        assert!(text.is_empty());
    }

    #[test]
    fn user_text_is_announced_then_served_as_utf16() {
        let (mut c, _) = started(ClipboardSettings::default());
        let out = set_local_text(&mut c, "a\nb ✓");
        let r = sent(&out.messages);
        assert_eq!(
            formats_of(&r[0]),
            vec![
                ClipboardFormatId::CF_UNICODETEXT,
                ClipboardFormatId::CF_TEXT
            ]
        );
        let req = ClipboardPdu::FormatDataRequest(FormatDataRequest {
            format: ClipboardFormatId::CF_UNICODETEXT,
        });
        let (r, _) = feed(&mut c, &req);
        assert_eq!(
            r,
            vec![ClipboardPdu::FormatDataResponse(
                FormatDataResponse::new_data(encode_utf16le("a\nb ✓"))
            )]
        );
        let req = ClipboardPdu::FormatDataRequest(FormatDataRequest {
            format: ClipboardFormatId::CF_TEXT,
        });
        let (r, _) = feed(&mut c, &req);
        assert_eq!(
            r,
            vec![ClipboardPdu::FormatDataResponse(
                FormatDataResponse::new_data(b"a\nb ?\0".to_vec())
            )]
        );
        // A format we never offered gets an error response.
        let req = ClipboardPdu::FormatDataRequest(FormatDataRequest {
            format: ClipboardFormatId::CF_DIB,
        });
        let (r, _) = feed(&mut c, &req);
        assert_eq!(
            r,
            vec![ClipboardPdu::FormatDataResponse(
                FormatDataResponse::new_error()
            )]
        );
    }

    #[test]
    fn windows_normalisation_sends_crlf() {
        let settings = ClipboardSettings::new(false, false, LineEndings::Windows);
        let (mut c, _) = started(settings);
        set_local_text(&mut c, "a\nb\r\nc\rd");
        let req = ClipboardPdu::FormatDataRequest(FormatDataRequest {
            format: ClipboardFormatId::CF_UNICODETEXT,
        });
        let (r, _) = feed(&mut c, &req);
        assert_eq!(
            r,
            vec![ClipboardPdu::FormatDataResponse(
                FormatDataResponse::new_data(encode_utf16le("a\r\nb\r\nc\r\nd"))
            )]
        );
        // And text from the server is normalised to LF.
        feed(&mut c, &server_list(&[ClipboardFormatId::CF_UNICODETEXT]));
        let resp = FormatDataResponse::new_data(encode_utf16le("x\r\ny"));
        let (_, text) = feed(&mut c, &ClipboardPdu::FormatDataResponse(resp));
        assert_eq!(text, vec!["x\ny".to_owned()]);
    }

    #[test]
    fn disable_paste_ignores_user_text() {
        let settings = ClipboardSettings::new(false, true, LineEndings::Preserve);
        let (mut c, _) = started(settings);
        let out = set_local_text(&mut c, "nope");
        assert!(out.messages.is_empty());
        let req = ClipboardPdu::FormatDataRequest(FormatDataRequest {
            format: ClipboardFormatId::CF_UNICODETEXT,
        });
        let (r, _) = feed(&mut c, &req);
        assert_eq!(
            r,
            vec![ClipboardPdu::FormatDataResponse(
                FormatDataResponse::new_error()
            )]
        );
    }

    #[test]
    fn responses_pair_with_their_requests_in_order() {
        let (mut c, _) = started(ClipboardSettings::default());
        feed(&mut c, &server_list(&[ClipboardFormatId::CF_UNICODETEXT]));
        feed(&mut c, &server_list(&[ClipboardFormatId::CF_TEXT]));
        let r1 = FormatDataResponse::new_data(encode_utf16le("one"));
        let r2 = FormatDataResponse::new_data(b"two\0".to_vec());
        let (_, t1) = feed(&mut c, &ClipboardPdu::FormatDataResponse(r1));
        let (_, t2) = feed(&mut c, &ClipboardPdu::FormatDataResponse(r2));
        assert_eq!((t1, t2), (vec!["one".to_owned()], vec!["two".to_owned()]));
    }

    /// A server that stops answering: IronRDP fails new requests locally after
    /// a limit; the answers that do come later still pair with their requests.
    #[test]
    fn unanswered_requests_keep_pairing() {
        let (mut c, _) = started(ClipboardSettings::default());
        let mut sent_requests = 0;
        for _ in 0..100 {
            let (r, _) = feed(&mut c, &server_list(&[ClipboardFormatId::CF_UNICODETEXT]));
            sent_requests += r
                .iter()
                .filter(|p| matches!(p, ClipboardPdu::FormatDataRequest(_)))
                .count();
        }
        assert!(sent_requests < 100, "IronRDP caps unanswered requests");
        let (r, _) = feed(&mut c, &server_list(&[ClipboardFormatId::CF_TEXT]));
        assert!(
            !r.iter()
                .any(|p| matches!(p, ClipboardPdu::FormatDataRequest(_)))
        );
        // Answer every request that was sent: each decodes as UTF-16.
        for i in 0..sent_requests {
            let resp = FormatDataResponse::new_data(encode_utf16le(&format!("n{i}")));
            let (_, text) = feed(&mut c, &ClipboardPdu::FormatDataResponse(resp));
            assert_eq!(text, vec![format!("n{i}")]);
        }
        // Nothing is owed any more; a new copy works normally.
        let (r, _) = feed(&mut c, &server_list(&[ClipboardFormatId::CF_TEXT]));
        assert_eq!(r.len(), 2);
        let resp = FormatDataResponse::new_data(b"plain\0".to_vec());
        let (_, text) = feed(&mut c, &ClipboardPdu::FormatDataResponse(resp));
        assert_eq!(text, vec!["plain".to_owned()]);
    }

    #[test]
    fn malformed_pdus_are_errors_not_panics() {
        let (mut c, _) = started(ClipboardSettings::default());
        for bad in [
            &[][..],
            &[0x02, 0x00],
            &[0x02, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff],
            &[0x05, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00, 0x00, 0x41],
            &[0x04, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0d],
            &[0xff; 40],
        ] {
            let _ = c.process(bad);
            let _ = poll(&mut c);
        }
        // Still works afterwards.
        let (r, _) = feed(&mut c, &server_list(&[ClipboardFormatId::CF_UNICODETEXT]));
        assert_eq!(r.len(), 2);
    }

    /// Random PDUs (valid message types, random flags, lengths and bodies)
    /// through a started channel: no panic, and it still answers afterwards.
    #[test]
    fn random_pdus_never_panic() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut c, _) = started(ClipboardSettings::default());
        set_local_text(&mut c, "x");
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut pdu: Vec<u8> = (0..len + 8).map(|_| next() as u8).collect();
            pdu[0] = (next() % 14) as u8;
            pdu[1] = 0;
            let body = (len as u32).to_le_bytes();
            if next() % 4 != 0 {
                pdu[4..8].copy_from_slice(&body);
            }
            let _ = c.process(&pdu);
            let out = poll(&mut c);
            for t in out.remote_text {
                assert!(t.len() <= CLIPBOARD_MAX_BYTES);
            }
        }
        let (r, _) = feed(&mut c, &server_list(&[ClipboardFormatId::CF_UNICODETEXT]));
        assert!(r.contains(&ClipboardPdu::FormatListResponse(FormatListResponse::Ok)));
    }

    #[test]
    fn decoding_is_total() {
        assert_eq!(decode_utf16le(&[0x41, 0x00, 0x42], 100), "A");
        assert_eq!(decode_utf16le(&[0x00, 0xD8, 0x41, 0x00], 100), "\u{FFFD}A");
        assert_eq!(
            decode_utf16le(&[0x41, 0x00, 0x00, 0x00, 0x42, 0x00], 100),
            "A"
        );
        assert_eq!(decode_utf16le(&[], 100), "");
        assert_eq!(decode_cp1252(&[0x81, 0x41], 100), "\u{FFFD}A");
        assert_eq!(decode_cp437(&[0xB0, 0xFF], 100), "░\u{A0}");
    }

    #[test]
    fn limits_cut_at_character_boundaries() {
        // 3-byte characters: a 10-byte limit keeps 3 of them.
        let data = encode_utf16le(&"✓".repeat(10));
        assert_eq!(decode_utf16le(&data, 10), "✓✓✓");
        assert_eq!(decode_cp1252(&[0xE9; 10], 5), "éé");
        let mut s = "aé✓😀".to_owned();
        truncate_utf8(&mut s, 8);
        assert_eq!(s, "aé✓");
        truncate_utf8(&mut s, 5);
        assert_eq!(s, "aé");
        let mut s = "abc".to_owned();
        truncate_utf8(&mut s, 3);
        assert_eq!(s, "abc");

        let settings = ClipboardSettings {
            max_bytes: 4,
            ..ClipboardSettings::default()
        };
        let (mut c, _) = started(settings);
        set_local_text(&mut c, "ab✓cd");
        assert_eq!(current_text(&c), Some("ab"));
    }

    #[test]
    fn default_limit_is_guacds_256_kib() {
        let (mut c, _) = started(ClipboardSettings::default());
        let big = "x".repeat(CLIPBOARD_MAX_BYTES + 100);
        set_local_text(&mut c, &big);
        assert_eq!(current_text(&c).map(str::len), Some(CLIPBOARD_MAX_BYTES));
        feed(&mut c, &server_list(&[ClipboardFormatId::CF_UNICODETEXT]));
        let resp = FormatDataResponse::new_data(encode_utf16le(&big));
        let (_, text) = feed(&mut c, &ClipboardPdu::FormatDataResponse(resp));
        assert_eq!(text[0].len(), CLIPBOARD_MAX_BYTES);
    }

    #[test]
    fn line_ending_modes() {
        assert_eq!(LineEndings::from_param(""), Some(LineEndings::Preserve));
        assert_eq!(
            LineEndings::from_param("preserve"),
            Some(LineEndings::Preserve)
        );
        assert_eq!(LineEndings::from_param("unix"), Some(LineEndings::Unix));
        assert_eq!(
            LineEndings::from_param("windows"),
            Some(LineEndings::Windows)
        );
        assert_eq!(LineEndings::from_param("mac"), None);
        let t = "a\r\nb\rc\nd";
        assert_eq!(LineEndings::Preserve.to_server(t), t);
        assert_eq!(LineEndings::Unix.to_server(t), "a\nb\nc\nd");
        assert_eq!(LineEndings::Windows.to_server(t), "a\r\nb\r\nc\r\nd");
        assert_eq!(LineEndings::Preserve.from_server(t), t);
        assert_eq!(LineEndings::Unix.from_server(t), "a\nb\nc\nd");
        assert_eq!(LineEndings::Windows.from_server(t), "a\nb\nc\nd");
        assert_eq!(LineEndings::Windows.to_server("none"), "none");
    }

    #[test]
    fn cp1252_round_trip() {
        let t = "Grüße € „x“ ✓";
        let enc = encode_cp1252(t);
        assert_eq!(enc.last(), Some(&0));
        assert_eq!(decode_cp1252(&enc, 100), "Grüße € „x“ ?");
    }

    #[test]
    fn clipboard_stream_blobs_split_at_characters() {
        let text = "é".repeat(4000); // 8000 bytes
        let bytes = clipboard_instructions(3, &text);
        let (list, used) = guacr_protocol::parse_all(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        let mut ops = Vec::new();
        let mut decoded = Vec::new();
        for ins in list {
            if ins.opcode == "blob" {
                assert_eq!(ins.args[0], "3");
                let raw = guacr_protocol::base64::decode_lenient(ins.args[1].as_bytes());
                assert!(raw.len() <= BLOB_MAX);
                assert!(std::str::from_utf8(&raw).is_ok());
                decoded.extend(raw);
            }
            ops.push(ins.opcode);
        }
        assert_eq!(ops, ["clipboard", "blob", "blob", "end"]);
        assert_eq!(String::from_utf8(decoded).unwrap(), text);
        let empty = clipboard_instructions(3, "");
        assert_eq!(empty, b"9.clipboard,1.3,10.text/plain;3.end,1.3;");
    }
}
