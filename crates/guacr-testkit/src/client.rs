//! The Guacamole client side of a connection, over any async byte stream.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io;
use std::time::{Duration, Instant};

use anyhow::Context;
use guacr_protocol::handshake::{ClientInfo, client};
use guacr_protocol::{Instruction, InstructionWriter, Parser};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::keysym;
use guacr_playback::BLOB_CHUNK;
use guacr_playback::Display;

/// Errors with a meaning tests assert on. Returned inside `anyhow::Error`;
/// get it back with `err.downcast_ref::<GuacError>()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuacError {
    /// The server sent `error,<message>,<status>` (during the handshake).
    #[error("server error {status}: {message}")]
    Server { message: String, status: u32 },
    /// The server closed the connection before the awaited event.
    #[error("connection closed by the server; {summary}")]
    Closed { summary: String },
    /// The awaited event did not happen in time.
    #[error("timed out after {after:?}; {summary}")]
    Timeout { after: Duration, summary: String },
    /// The server sent something that is not valid Guacamole protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
}

impl GuacError {
    /// The status code of a [`GuacError::Server`] error.
    pub fn status(&self) -> Option<u32> {
        match self {
            GuacError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The [`GuacError`] inside an `anyhow::Error`, if any.
    pub fn from_anyhow(err: &anyhow::Error) -> Option<&GuacError> {
        err.downcast_ref()
    }
}

/// A `msg` instruction (1 = user joined, 2 = user left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub code: u32,
    pub args: Vec<String>,
}

/// An `error` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    pub message: String,
    pub status: u32,
}

/// An `ack` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub stream: i32,
    pub message: String,
    pub status: u32,
}

/// A completed `argv` stream (runtime parameter value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgvValue {
    pub mimetype: String,
    pub name: String,
    pub value: String,
}

/// A completed `file` or `pipe` stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedStream {
    /// `file` or `pipe`.
    pub kind: String,
    pub mimetype: String,
    pub name: String,
    pub data: Vec<u8>,
}

/// Everything the client has learnt from the server so far.
#[derive(Debug, Default)]
pub struct ClientState {
    pub display: Display,
    /// Protocol version announced in `args`.
    pub args_version: Option<String>,
    /// Parameter names announced in `args`.
    pub args_names: Vec<String>,
    /// Id from `ready`.
    pub connection_id: Option<String>,
    /// Completed `clipboard` streams, decoded as UTF-8 (lossy).
    pub clipboards: Vec<String>,
    /// `name` instructions (connection titles).
    pub names: Vec<String>,
    pub msgs: Vec<Msg>,
    pub errors: Vec<ServerError>,
    /// A `disconnect` instruction was received.
    pub disconnected: bool,
    /// The server closed the stream (EOF).
    pub closed: bool,
    pub argvs: Vec<ArgvValue>,
    /// `required` instructions (parameter names).
    pub required: Vec<Vec<String>>,
    pub logs: Vec<String>,
    pub acks: Vec<Ack>,
    /// Completed `file` and `pipe` streams.
    pub streams: Vec<ReceivedStream>,
    /// How many instructions of each opcode were received.
    pub opcode_counts: BTreeMap<String, u64>,
    pub bytes_received: u64,
    pub instructions_received: u64,
    /// Size in bytes of the largest instruction received.
    pub largest_instruction: usize,
    pub syncs_echoed: u64,
    pub last_instruction: Option<Instruction>,
    /// Arrival time and opcode of each instruction (when enabled).
    pub timings: Vec<(Instant, String)>,
}

impl ClientState {
    pub fn last_error(&self) -> Option<&ServerError> {
        self.errors.last()
    }

    pub fn last_clipboard(&self) -> Option<&str> {
        self.clipboards.last().map(String::as_str)
    }

    pub fn count(&self, opcode: &str) -> u64 {
        self.opcode_counts.get(opcode).copied().unwrap_or(0)
    }

    /// A one-line description for failure messages.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} instructions / {} bytes received; opcodes seen: {{",
            self.instructions_received, self.bytes_received
        );
        for (i, (op, n)) in self.opcode_counts.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(s, "{sep}{op}: {n}");
        }
        s.push('}');
        match self.last_error() {
            Some(e) => {
                let _ = write!(s, "; last error: {:?} status {}", e.message, e.status);
            }
            None => s.push_str("; no error instruction"),
        }
        if self.disconnected {
            s.push_str("; disconnect received");
        }
        if self.closed {
            s.push_str("; stream closed");
        }
        if let Some(last) = &self.last_instruction {
            let mut wire = last.to_wire();
            if wire.len() > 120 {
                let mut cut = 120;
                while !wire.is_char_boundary(cut) {
                    cut -= 1;
                }
                wire.truncate(cut);
                wire.push('…');
            }
            let _ = write!(s, "; last instruction: {wire}");
        }
        let d = &self.display;
        let _ = write!(
            s,
            "; display {}x{}, {} frames",
            d.width(),
            d.height(),
            d.frames()
        );
        if !d.warnings().is_empty() {
            let _ = write!(
                s,
                "; {} display warnings, first: {}",
                d.warnings().len(),
                d.warnings()[0]
            );
        }
        s
    }
}

#[derive(Debug)]
struct InStream {
    kind: &'static str,
    mimetype: String,
    name: String,
    data: Vec<u8>,
}

enum Fill {
    Data,
    Timeout,
    Closed,
}

/// A Guacamole client connection.
pub struct GuacClient<S> {
    stream: S,
    rbuf: Vec<u8>,
    rpos: usize,
    parser: Parser,
    wbuf: Vec<u8>,
    state: ClientState,
    in_streams: HashMap<i32, InStream>,
    out_streams: BTreeSet<i32>,
    echo_sync: bool,
    auto_ack_files: bool,
    display_enabled: bool,
    record_timings: bool,
    handshake_timeout: Duration,
    /// When something was last sent; like guacamole-common-js, an echoing
    /// client sends `nop` after 5 s of silence so an idle display is not
    /// mistaken for a dead client.
    last_sent: Instant,
}

/// Keep-alive interval of an echoing client (guacamole-common-js: 5 s).
pub const CLIENT_KEEPALIVE: Duration = Duration::from_secs(5);

impl GuacClient<TcpStream> {
    /// Connects over TCP (with `TCP_NODELAY`).
    pub async fn connect_tcp(addr: impl ToSocketAddrs) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await.context("connecting")?;
        stream.set_nodelay(true).ok();
        Ok(GuacClient::new(stream))
    }
}

fn is_closed_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Opcodes whose effect is only meaningful at the end of a frame: `wait_for`
/// does not evaluate its predicate after each of them, only once the
/// received data is exhausted.
fn is_bulk(opcode: &str) -> bool {
    matches!(
        opcode,
        "blob"
            | "img"
            | "end"
            | "copy"
            | "transfer"
            | "rect"
            | "cfill"
            | "size"
            | "move"
            | "shade"
            | "dispose"
            | "cursor"
            | "nop"
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> GuacClient<S> {
    pub fn new(stream: S) -> Self {
        GuacClient {
            stream,
            rbuf: Vec::with_capacity(64 * 1024),
            rpos: 0,
            parser: Parser::new(),
            wbuf: Vec::with_capacity(4096),
            state: ClientState::default(),
            in_streams: HashMap::new(),
            out_streams: BTreeSet::new(),
            echo_sync: true,
            auto_ack_files: true,
            display_enabled: true,
            record_timings: false,
            handshake_timeout: Duration::from_secs(15),
            last_sent: Instant::now(),
        }
    }

    // ----- configuration and accessors -----

    /// Echo every `sync` back (default on), as guacamole-common-js does.
    pub fn set_echo_sync(&mut self, on: bool) {
        self.echo_sync = on;
    }

    /// Acknowledge `file` streams and their blobs with `ack,<stream>,OK,0`
    /// (default on; guacd's SFTP downloads wait for these).
    pub fn set_auto_ack_files(&mut self, on: bool) {
        self.auto_ack_files = on;
    }

    /// Apply drawing instructions to the display model (default on; turn off
    /// for load generation).
    pub fn set_display_enabled(&mut self, on: bool) {
        self.display_enabled = on;
    }

    /// Record the arrival time of every instruction in [`ClientState::timings`].
    pub fn set_record_timings(&mut self, on: bool) {
        self.record_timings = on;
    }

    /// Overall time limit of [`GuacClient::handshake`] (default 15 s).
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    /// Largest accepted instruction in bytes (default guacd's 32768).
    pub fn set_parser_limit(&mut self, bytes: usize) {
        self.parser = Parser::with_limit(bytes);
    }

    pub fn state(&self) -> &ClientState {
        &self.state
    }

    pub fn display(&self) -> &Display {
        &self.state.display
    }

    /// Parameter names from `args`.
    pub fn args_names(&self) -> &[String] {
        &self.state.args_names
    }

    /// The id from `ready`.
    pub fn connection_id(&self) -> Option<&str> {
        self.state.connection_id.as_deref()
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    pub fn into_inner(self) -> S {
        self.stream
    }

    // ----- handshake -----

    /// Performs the handshake: `select`, await `args`, send the client info
    /// and `connect` (values filled by name from `params`, empty otherwise),
    /// await `ready` and return its id.
    ///
    /// An `error` from the server fails with [`GuacError::Server`]; EOF with
    /// [`GuacError::Closed`]; exceeding the handshake timeout with
    /// [`GuacError::Timeout`].
    pub async fn handshake(
        &mut self,
        protocol_or_join_id: &str,
        info: &ClientInfo,
        params: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let start = Instant::now();
        let deadline = start + self.handshake_timeout;
        let mut out = Vec::new();
        client::write_select(&mut out, protocol_or_join_id);
        self.send_handshake(&out).await?;

        let args = self.await_one_of(deadline, start, "args").await?;
        let wire = args.to_wire();
        let mut parser = Parser::with_limit(wire.len().max(1));
        let parsed = parser
            .parse(wire.as_bytes())
            .map_err(|e| GuacError::Protocol(format!("re-parsing args: {e}")))?
            .ok_or_else(|| GuacError::Protocol("incomplete args".into()))?
            .0;
        out.clear();
        client::write_connect(&mut out, &parsed, info, params);
        self.send_handshake(&out).await?;

        let ready = self.await_one_of(deadline, start, "ready").await?;
        let id = ready.args.first().cloned().unwrap_or_default();
        Ok(id)
    }

    /// Sends handshake data; if the server already hung up, carry on reading
    /// so that an `error` it sent before closing is reported.
    async fn send_handshake(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self.send_raw(bytes).await {
            Err(e) if matches!(e.downcast_ref(), Some(GuacError::Closed { .. })) => Ok(()),
            other => other,
        }
    }

    /// Reads until `opcode` (returned) or `error` (failure).
    async fn await_one_of(
        &mut self,
        deadline: Instant,
        start: Instant,
        opcode: &str,
    ) -> anyhow::Result<Instruction> {
        loop {
            let ins = self.next_or_fail(deadline, start, opcode).await?;
            if ins.opcode == opcode {
                return Ok(ins);
            }
            if ins.opcode == "error" {
                let e = self.state.errors.last().cloned().unwrap_or(ServerError {
                    message: String::new(),
                    status: 0,
                });
                return Err(GuacError::Server {
                    message: e.message,
                    status: e.status,
                }
                .into());
            }
        }
    }

    /// The next instruction, or a Timeout/Closed error mentioning `what`.
    async fn next_or_fail(
        &mut self,
        deadline: Instant,
        start: Instant,
        what: &str,
    ) -> anyhow::Result<Instruction> {
        loop {
            if let Some(ins) = self.poll_buffered().await? {
                return Ok(ins);
            }
            match self.fill(Some(deadline)).await? {
                Fill::Data => {}
                Fill::Timeout => {
                    return Err(GuacError::Timeout {
                        after: start.elapsed(),
                        summary: format!("waiting for `{what}`; {}", self.state.summary()),
                    }
                    .into());
                }
                Fill::Closed => {
                    return Err(GuacError::Closed {
                        summary: format!("waiting for `{what}`; {}", self.state.summary()),
                    }
                    .into());
                }
            }
        }
    }

    // ----- receiving -----

    /// The next instruction, processed (display updated, `sync` echoed,
    /// streams collected). `Ok(None)` when `timeout` passes or the server
    /// closed the connection (see [`ClientState::closed`]).
    pub async fn next_instruction(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<Option<Instruction>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ins) = self.poll_buffered().await? {
                return Ok(Some(ins));
            }
            match self.fill(Some(deadline)).await? {
                Fill::Data => {}
                Fill::Timeout | Fill::Closed => return Ok(None),
            }
        }
    }

    /// Pumps instructions until `pred(display, last instruction)` holds.
    ///
    /// The predicate is checked first, then after every instruction except
    /// drawing/stream-data ones (`img` `blob` `copy` `rect` …), and whenever
    /// all received data has been processed — so it sees every completed
    /// frame. Fails with [`GuacError::Timeout`] / [`GuacError::Closed`]
    /// carrying a summary of what was received.
    pub async fn wait_for<F>(&mut self, timeout: Duration, mut pred: F) -> anyhow::Result<()>
    where
        F: FnMut(&Display, Option<&Instruction>) -> bool,
    {
        self.wait_until(timeout, |s| pred(&s.display, s.last_instruction.as_ref()))
            .await
    }

    /// Like [`GuacClient::wait_for`] with a predicate on the whole client state.
    pub async fn wait_until<F>(&mut self, timeout: Duration, mut pred: F) -> anyhow::Result<()>
    where
        F: FnMut(&ClientState) -> bool,
    {
        let start = Instant::now();
        let deadline = start + timeout;
        if pred(&self.state) {
            return Ok(());
        }
        loop {
            match self.poll_buffered().await? {
                Some(ins) => {
                    if !is_bulk(&ins.opcode) && pred(&self.state) {
                        return Ok(());
                    }
                }
                None => {
                    if pred(&self.state) {
                        return Ok(());
                    }
                    match self.fill(Some(deadline)).await? {
                        Fill::Data => {}
                        Fill::Timeout => {
                            return Err(GuacError::Timeout {
                                after: start.elapsed(),
                                summary: self.state.summary(),
                            }
                            .into());
                        }
                        Fill::Closed => {
                            return Err(GuacError::Closed {
                                summary: self.state.summary(),
                            }
                            .into());
                        }
                    }
                }
            }
        }
    }

    /// Waits for the next instruction with this opcode and returns it
    /// (everything before it is processed as usual).
    pub async fn wait_for_opcode(
        &mut self,
        timeout: Duration,
        opcode: &str,
    ) -> anyhow::Result<Instruction> {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            let ins = self.next_or_fail(deadline, start, opcode).await?;
            if ins.opcode == opcode {
                return Ok(ins);
            }
        }
    }

    /// Waits for the next `sync` (end of a frame).
    pub async fn wait_for_frame(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let target = self.state.count("sync") + 1;
        self.wait_until(timeout, |s| s.count("sync") >= target)
            .await
    }

    /// Processes everything received for `duration` (or until the server
    /// closes); returns the number of instructions processed.
    pub async fn drain(&mut self, duration: Duration) -> anyhow::Result<u64> {
        let before = self.state.instructions_received;
        let deadline = Instant::now() + duration;
        loop {
            while self.poll_buffered().await?.is_some() {}
            match self.fill(Some(deadline)).await? {
                Fill::Data => {}
                Fill::Timeout | Fill::Closed => break,
            }
        }
        Ok(self.state.instructions_received - before)
    }

    /// Processes instructions until the server closes the connection.
    pub async fn wait_for_close(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        self.drain(timeout).await?;
        if self.state.closed {
            Ok(())
        } else {
            Err(GuacError::Timeout {
                after: start.elapsed(),
                summary: format!("waiting for close; {}", self.state.summary()),
            }
            .into())
        }
    }

    /// Parses and processes one instruction from already received data.
    async fn poll_buffered(&mut self) -> anyhow::Result<Option<Instruction>> {
        let parsed = match self.parser.parse(&self.rbuf[self.rpos..]) {
            Ok(Some((ins, used))) => Some((ins.to_owned(), used)),
            Ok(None) => None,
            Err(e) => {
                self.parser.reset();
                return Err(
                    GuacError::Protocol(format!("{e}; after {}", self.state.summary())).into(),
                );
            }
        };
        let Some((ins, used)) = parsed else {
            return Ok(None);
        };
        self.rpos += used;
        self.state.largest_instruction = self.state.largest_instruction.max(used);
        self.process(&ins).await?;
        Ok(Some(ins))
    }

    /// Reads more data. Timeouts and EOF are results, not errors.
    async fn fill(&mut self, deadline: Option<Instant>) -> anyhow::Result<Fill> {
        if self.state.closed {
            return Ok(Fill::Closed);
        }
        if self.rpos > 0 {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        self.rbuf.reserve(64 * 1024);
        let result = loop {
            let keepalive = self.echo_sync.then(|| self.last_sent + CLIENT_KEEPALIVE);
            let wake = match (deadline, keepalive) {
                (Some(d), Some(k)) => Some(d.min(k)),
                (d, k) => d.or(k),
            };
            let read = self.stream.read_buf(&mut self.rbuf);
            let r = match wake {
                Some(w) => tokio::time::timeout_at(tokio::time::Instant::from_std(w), read).await,
                None => Ok(read.await),
            };
            match r {
                Ok(r) => break r,
                Err(_) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(Fill::Timeout);
                    }
                    if self.write_bytes(b"3.nop;").await.is_err() {
                        self.state.closed = true;
                        return Ok(Fill::Closed);
                    }
                }
            }
        };
        match result {
            Ok(0) => {
                self.state.closed = true;
                Ok(Fill::Closed)
            }
            Ok(n) => {
                self.state.bytes_received += n as u64;
                Ok(Fill::Data)
            }
            Err(e) if is_closed_error(&e) => {
                self.state.closed = true;
                Ok(Fill::Closed)
            }
            Err(e) => Err(anyhow::Error::new(e).context("reading from server")),
        }
    }

    async fn process(&mut self, ins: &Instruction) -> anyhow::Result<()> {
        let st = &mut self.state;
        st.instructions_received += 1;
        *st.opcode_counts.entry(ins.opcode.clone()).or_default() += 1;
        if self.record_timings {
            st.timings.push((Instant::now(), ins.opcode.clone()));
        }
        st.last_instruction = Some(ins.clone());
        let arg = |i: usize| ins.args.get(i).map_or("", String::as_str);
        let stream_index = || arg(0).parse::<i32>().ok();
        match ins.opcode.as_str() {
            "args" => {
                st.args_version = ins.args.first().cloned();
                st.args_names = ins.args.iter().skip(1).cloned().collect();
            }
            "ready" => st.connection_id = Some(arg(0).to_owned()),
            "error" => st.errors.push(ServerError {
                message: arg(0).to_owned(),
                status: arg(1).parse().unwrap_or(0),
            }),
            "disconnect" => st.disconnected = true,
            "name" => st.names.push(arg(0).to_owned()),
            "msg" => st.msgs.push(Msg {
                code: arg(0).parse().unwrap_or(0),
                args: ins.args.iter().skip(1).cloned().collect(),
            }),
            "required" => st.required.push(ins.args.clone()),
            "log" => st.logs.push(arg(0).to_owned()),
            "ack" => st.acks.push(Ack {
                stream: stream_index().unwrap_or(-1),
                message: arg(1).to_owned(),
                status: arg(2).parse().unwrap_or(0),
            }),
            op @ ("clipboard" | "argv" | "file" | "pipe") => {
                if let Some(stream) = stream_index() {
                    let kind = match op {
                        "clipboard" => "clipboard",
                        "argv" => "argv",
                        "file" => "file",
                        _ => "pipe",
                    };
                    self.in_streams.insert(
                        stream,
                        InStream {
                            kind,
                            mimetype: arg(1).to_owned(),
                            name: arg(2).to_owned(),
                            data: Vec::new(),
                        },
                    );
                    if kind == "file" && self.auto_ack_files {
                        self.send_ack(stream, "OK", 0).await?;
                    }
                }
            }
            "blob" if stream_index().is_some_and(|s| self.in_streams.contains_key(&s)) => {
                let stream = stream_index().unwrap_or_default();
                let mut ack = false;
                if let Some(s) = self.in_streams.get_mut(&stream) {
                    s.data
                        .extend(guacr_protocol::base64::decode_lenient(arg(1).as_bytes()));
                    ack = s.kind == "file" && self.auto_ack_files;
                }
                if ack {
                    self.send_ack(stream, "OK", 0).await?;
                }
            }
            "end" if stream_index().is_some_and(|s| self.in_streams.contains_key(&s)) => {
                let stream = stream_index().unwrap_or_default();
                if let Some(s) = self.in_streams.remove(&stream) {
                    match s.kind {
                        "clipboard" => st
                            .clipboards
                            .push(String::from_utf8_lossy(&s.data).into_owned()),
                        "argv" => st.argvs.push(ArgvValue {
                            mimetype: s.mimetype,
                            name: s.name,
                            value: String::from_utf8_lossy(&s.data).into_owned(),
                        }),
                        kind => st.streams.push(ReceivedStream {
                            kind: kind.to_owned(),
                            mimetype: s.mimetype,
                            name: s.name,
                            data: s.data,
                        }),
                    }
                }
            }
            "sync" => {
                if self.display_enabled {
                    let _ = st.display.apply(ins);
                }
                if self.echo_sync {
                    let ts = arg(0).to_owned();
                    self.wbuf.clear();
                    InstructionWriter::new(&mut self.wbuf, "sync")
                        .arg(ts.as_str())
                        .finish();
                    // The server may already have closed its side (e.g. right
                    // after `disconnect`): what is still buffered is processed
                    // anyway, so a failed echo is not an error.
                    if self.flush_wbuf().await.is_ok() {
                        self.state.syncs_echoed += 1;
                    }
                }
            }
            op => {
                if matches!(op, "img" | "audio" | "video")
                    && let Some(stream) = stream_index()
                {
                    // A new stream reuses this index: stop routing it here.
                    self.in_streams.remove(&stream);
                }
                if self.display_enabled {
                    // Errors are recorded in the display's warnings.
                    let _ = st.display.apply(ins);
                }
            }
        }
        Ok(())
    }

    // ----- sending -----

    async fn flush_wbuf(&mut self) -> anyhow::Result<()> {
        let buf = std::mem::take(&mut self.wbuf);
        let result = self.write_bytes(&buf).await;
        self.wbuf = buf;
        result
    }

    async fn write_bytes(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.last_sent = Instant::now();
        let result = match self.stream.write_all(bytes).await {
            Ok(()) => self.stream.flush().await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if is_closed_error(&e) => Err(anyhow::Error::new(GuacError::Closed {
                summary: format!("writing failed: {e}; {}", self.state.summary()),
            })),
            Err(e) => Err(anyhow::Error::new(e).context("writing to server")),
        }
    }

    /// Sends raw bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.write_bytes(bytes).await
    }

    /// Sends one instruction.
    pub async fn send(&mut self, ins: &Instruction) -> anyhow::Result<()> {
        self.wbuf.clear();
        ins.encode(&mut self.wbuf);
        self.flush_wbuf().await
    }

    /// `key,<keysym>,<1|0>`.
    pub async fn send_key(&mut self, keysym: u32, pressed: bool) -> anyhow::Result<()> {
        self.wbuf.clear();
        write_key(&mut self.wbuf, keysym, pressed);
        self.flush_wbuf().await
    }

    /// Presses and releases one key.
    pub async fn press_key(&mut self, keysym: u32) -> anyhow::Result<()> {
        self.wbuf.clear();
        write_key(&mut self.wbuf, keysym, true);
        write_key(&mut self.wbuf, keysym, false);
        self.flush_wbuf().await
    }

    /// Presses the keys in order, then releases them in reverse order
    /// (e.g. `[CONTROL_L, 'c' as u32]`).
    pub async fn send_key_combo(&mut self, keysyms: &[u32]) -> anyhow::Result<()> {
        self.wbuf.clear();
        for k in keysyms {
            write_key(&mut self.wbuf, *k, true);
        }
        for k in keysyms.iter().rev() {
            write_key(&mut self.wbuf, *k, false);
        }
        self.flush_wbuf().await
    }

    /// Types `text`: press + release per character (see [`keysym::for_char`]),
    /// written in one go.
    pub async fn type_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.wbuf.clear();
        for c in text.chars() {
            let k = keysym::for_char(c);
            write_key(&mut self.wbuf, k, true);
            write_key(&mut self.wbuf, k, false);
        }
        self.flush_wbuf().await
    }

    /// `mouse,<x>,<y>,<mask>`.
    pub async fn send_mouse(&mut self, x: i32, y: i32, mask: u32) -> anyhow::Result<()> {
        self.wbuf.clear();
        InstructionWriter::new(&mut self.wbuf, "mouse")
            .arg(&x)
            .arg(&y)
            .arg(&mask)
            .finish();
        self.flush_wbuf().await
    }

    /// `size,<w>,<h>`.
    pub async fn send_size(&mut self, width: u32, height: u32) -> anyhow::Result<()> {
        self.wbuf.clear();
        InstructionWriter::new(&mut self.wbuf, "size")
            .arg(&width)
            .arg(&height)
            .finish();
        self.flush_wbuf().await
    }

    /// `sync,<timestamp>`.
    pub async fn send_sync(&mut self, timestamp: i64) -> anyhow::Result<()> {
        self.wbuf.clear();
        InstructionWriter::new(&mut self.wbuf, "sync")
            .arg(&timestamp)
            .finish();
        self.flush_wbuf().await
    }

    /// `nop`.
    pub async fn send_nop(&mut self) -> anyhow::Result<()> {
        self.send_raw(b"3.nop;").await
    }

    /// `ack,<stream>,<message>,<status>`.
    pub async fn send_ack(
        &mut self,
        stream: i32,
        message: &str,
        status: u32,
    ) -> anyhow::Result<()> {
        self.wbuf.clear();
        InstructionWriter::new(&mut self.wbuf, "ack")
            .arg(&stream)
            .arg(message)
            .arg(&status)
            .finish();
        self.flush_wbuf().await
    }

    fn alloc_stream(&mut self) -> i32 {
        let mut i = 0;
        while self.out_streams.contains(&i) {
            i += 1;
        }
        self.out_streams.insert(i);
        i
    }

    /// Writes `<opcode>,<stream>,<args…>`, the data as `blob`s of at most
    /// 6048 bytes, and `end`, in one write. Returns the stream index used.
    async fn send_stream(
        &mut self,
        opcode: &str,
        args: &[&str],
        data: &[u8],
    ) -> anyhow::Result<i32> {
        let stream = self.alloc_stream();
        self.wbuf.clear();
        let mut w = InstructionWriter::new(&mut self.wbuf, opcode).arg(&stream);
        for a in args {
            w = w.arg(*a);
        }
        w.finish();
        let mut b64 = Vec::new();
        for chunk in data.chunks(BLOB_CHUNK) {
            b64.clear();
            guacr_protocol::base64::encode_into(chunk, &mut b64);
            let text = std::str::from_utf8(&b64).unwrap_or_default();
            InstructionWriter::new(&mut self.wbuf, "blob")
                .arg(&stream)
                .arg(text)
                .finish();
        }
        InstructionWriter::new(&mut self.wbuf, "end")
            .arg(&stream)
            .finish();
        let result = self.flush_wbuf().await;
        self.out_streams.remove(&stream);
        result.map(|()| stream)
    }

    /// Sends the clipboard: `clipboard,<stream>,text/plain`, `blob`s, `end`.
    pub async fn send_clipboard(&mut self, text: &str) -> anyhow::Result<()> {
        self.send_stream("clipboard", &["text/plain"], text.as_bytes())
            .await
            .map(|_| ())
    }

    /// Updates a runtime parameter: `argv,<stream>,text/plain,<name>` + value.
    pub async fn send_argv(&mut self, name: &str, value: &str) -> anyhow::Result<()> {
        self.send_stream("argv", &["text/plain", name], value.as_bytes())
            .await
            .map(|_| ())
    }

    /// Sends a whole file stream without waiting for acks (they are
    /// collected in [`ClientState::acks`]). Returns the stream index.
    pub async fn send_file(
        &mut self,
        mimetype: &str,
        filename: &str,
        data: &[u8],
    ) -> anyhow::Result<i32> {
        self.send_stream("file", &[mimetype, filename], data).await
    }

    /// Sends `disconnect` and shuts down the write side.
    pub async fn disconnect(&mut self) -> anyhow::Result<()> {
        self.send_raw(b"10.disconnect;").await?;
        match self.stream.shutdown().await {
            Err(e) if !is_closed_error(&e) => Err(anyhow::Error::new(e).context("shutdown")),
            _ => Ok(()),
        }
    }
}

fn write_key(out: &mut Vec<u8>, keysym: u32, pressed: bool) {
    InstructionWriter::new(out, "key")
        .arg(&keysym)
        .arg(&u32::from(pressed))
        .finish();
}
