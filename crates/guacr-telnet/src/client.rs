//! Sans-IO Telnet client: stream decoding and option negotiation.

use crate::codes::{
    DO, DONT, ENVIRON_ESC, ENVIRON_IS, ENVIRON_SEND, ENVIRON_USERVAR, ENVIRON_VALUE, ENVIRON_VAR,
    IAC, OPT_COMPRESS, OPT_ECHO, OPT_NAWS, OPT_NEW_ENVIRON, OPT_SGA, OPT_TTYPE, SB, SE, TTYPE_IS,
    TTYPE_SEND, WILL, WONT,
};

/// Largest subnegotiation payload buffered (libtelnet's limit). Longer
/// subnegotiations are discarded (but still consumed up to `IAC SE`).
pub const MAX_SUBNEGOTIATION: usize = 16384;

/// Static configuration of a [`TelnetClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelnetConfig {
    /// Terminal type reported through TERMINAL-TYPE (guacd's `terminal-type`
    /// parameter, default `linux`).
    pub terminal_type: String,
    /// User name reported as `USER` through NEW-ENVIRON, if any.
    pub username: Option<String>,
    /// Initial terminal width in columns (reported through NAWS).
    pub cols: u16,
    /// Initial terminal height in rows (reported through NAWS).
    pub rows: u16,
}

/// Decoder state between two calls of [`TelnetClient::receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Plain terminal data.
    Data,
    /// After `IAC`.
    Iac,
    /// After `IAC WILL|WONT|DO|DONT`, waiting for the option byte.
    Negotiate(u8),
    /// After `IAC SB`, waiting for the option byte.
    SbOption,
    /// Inside a subnegotiation payload.
    SbData,
    /// After `IAC` inside a subnegotiation payload.
    SbIac,
    /// Swallow exactly one byte (the `SE` of an MCCPv1 `IAC SB 85 WILL SE`
    /// start marker, which libtelnet discards the same way).
    SkipOne,
}

/// A sans-IO Telnet client (RFC 854/855) as configured by guacd.
///
/// Feed every byte received from the server to [`receive`](Self::receive);
/// write the reply bytes it produces back to the server, and the data bytes to
/// the terminal. Keyboard input must go through [`encode_input`].
///
/// # Option negotiation
///
/// Options are negotiated following RFC 1143: a reply is only sent when the
/// state of an option actually changes (or to refuse a request), so the client
/// never enters a negotiation loop. Because this client never *initiates* a
/// negotiation (like libtelnet as used by guacd), the `WANTYES`/`WANTNO`
/// states of the Q method are never entered and every option is simply
/// enabled or disabled, on each side.
///
/// | Option | Server sends | We answer |
/// |---|---|---|
/// | NAWS (31) | `DO` | `WILL`, then `SB NAWS <cols> <rows>` |
/// | TERMINAL-TYPE (24) | `DO` | `WILL`; `SB TTYPE SEND` → `SB TTYPE IS <type>` |
/// | NEW-ENVIRON (39) | `DO` | `WILL`; `SB NEW-ENVIRON SEND` → `IS [VAR "USER" VALUE <user>]` |
/// | ECHO (1) | `WILL` | `DO` (remote echo on) |
/// | SUPPRESS-GO-AHEAD (3) | `WILL` | `DO` |
/// | anything else | `WILL` / `DO` | `DONT` / `WONT` |
///
/// `WONT`/`DONT` for an enabled option are acknowledged with `DONT`/`WONT`;
/// for a disabled option they are ignored. Other commands (`GA`, `NOP`,
/// `AYT`, `DM`, …) are ignored.
#[derive(Debug, Clone)]
pub struct TelnetClient {
    config: TelnetConfig,
    state: State,
    /// Previous data byte emitted was a CR (so a following NUL is dropped).
    pending_cr: bool,
    sb_option: u8,
    sb_buffer: Vec<u8>,
    sb_overflow: bool,
    /// Options enabled on our side (we sent/confirmed `WILL`).
    local: [bool; 256],
    /// Options enabled on the server side (we sent/confirmed `DO`).
    remote: [bool; 256],
}

impl TelnetClient {
    /// Creates a client in the initial state (every option disabled).
    pub fn new(config: TelnetConfig) -> Self {
        Self {
            config,
            state: State::Data,
            pending_cr: false,
            sb_option: 0,
            sb_buffer: Vec::new(),
            sb_overflow: false,
            local: [false; 256],
            remote: [false; 256],
        }
    }

    /// The configuration (with the size updated by [`resize`](Self::resize)).
    pub fn config(&self) -> &TelnetConfig {
        &self.config
    }

    /// Bytes to send to the server right after connecting.
    ///
    /// guacd (through libtelnet) does not offer or request any option
    /// proactively: it waits for the server's requests. This therefore
    /// appends nothing; it exists so that a driver has a single place to call
    /// should that ever change.
    pub fn initial_offers(&mut self, out: &mut Vec<u8>) {
        let _ = out;
    }

    /// Whether the server echoes our input (the server sent `WILL ECHO` and
    /// we accepted it).
    pub fn remote_echo(&self) -> bool {
        self.remote[usize::from(OPT_ECHO)]
    }

    /// Whether input must be echoed locally: guacd's `echo_enabled`, i.e. the
    /// negation of [`remote_echo`](Self::remote_echo) (local echo is on until
    /// the server offers to echo).
    pub fn local_echo(&self) -> bool {
        !self.remote_echo()
    }

    /// Whether NAWS is enabled (the server sent `DO NAWS` and we accepted).
    pub fn naws_enabled(&self) -> bool {
        self.local[usize::from(OPT_NAWS)]
    }

    /// Whether the given option is enabled on our side.
    pub fn local_option(&self, option: u8) -> bool {
        self.local[usize::from(option)]
    }

    /// Whether the given option is enabled on the server's side.
    pub fn remote_option(&self, option: u8) -> bool {
        self.remote[usize::from(option)]
    }

    /// Records the new terminal size and, if NAWS is enabled, appends the
    /// `IAC SB NAWS <cols> <rows> IAC SE` update to `out`.
    pub fn resize(&mut self, cols: u16, rows: u16, out: &mut Vec<u8>) {
        self.config.cols = cols;
        self.config.rows = rows;
        if self.naws_enabled() {
            self.send_naws(out);
        }
    }

    /// Escapes keyboard data for the wire; see [`encode_input`].
    pub fn encode_input(data: &[u8], out: &mut Vec<u8>) {
        encode_input(data, out);
    }

    /// Consumes bytes received from the server.
    ///
    /// Terminal data (with `IAC IAC` unescaped and `CR NUL` turned into `CR`)
    /// is appended to `data_out`; negotiation replies to send back to the
    /// server are appended to `reply_out`. The input may be split anywhere:
    /// the decoder keeps its state between calls.
    pub fn receive(&mut self, input: &[u8], data_out: &mut Vec<u8>, reply_out: &mut Vec<u8>) {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                // Fast path: copy a run of plain bytes at once.
                let run = &input[i..];
                let end = run
                    .iter()
                    .position(|&b| b == IAC || b == 0)
                    .unwrap_or(run.len());
                if end > 0 {
                    data_out.extend_from_slice(&run[..end]);
                    self.pending_cr = run[end - 1] == b'\r';
                    i += end;
                    continue;
                }
            }
            let byte = input[i];
            i += 1;
            self.step(byte, data_out, reply_out);
        }
    }

    /// Processes a single byte.
    fn step(&mut self, byte: u8, data_out: &mut Vec<u8>, reply_out: &mut Vec<u8>) {
        match self.state {
            State::Data => {
                if byte == IAC {
                    self.pending_cr = false;
                    self.state = State::Iac;
                } else {
                    // Drop the NUL of a CR NUL pair (RFC 854 bare carriage return).
                    if !(self.pending_cr && byte == 0) {
                        data_out.push(byte);
                    }
                    self.pending_cr = byte == b'\r';
                }
            }
            State::Iac => self.command(byte, data_out),
            State::Negotiate(command) => {
                self.state = State::Data;
                self.negotiate(command, byte, reply_out);
            }
            State::SbOption => {
                self.sb_option = byte;
                self.sb_buffer.clear();
                self.sb_overflow = false;
                self.state = State::SbData;
            }
            State::SbData => {
                if byte == IAC {
                    self.state = State::SbIac;
                } else if self.sb_option == OPT_COMPRESS && byte == WILL {
                    // MCCPv1 start marker (IAC SB 85 WILL SE): discard.
                    self.state = State::SkipOne;
                } else {
                    self.buffer_sb(byte);
                }
            }
            State::SbIac => match byte {
                SE => {
                    self.state = State::Data;
                    self.subnegotiation(reply_out);
                }
                IAC => {
                    self.state = State::SbData;
                    self.buffer_sb(IAC);
                }
                _ => {
                    // Protocol error: like libtelnet, process what was
                    // received and interpret the byte as an IAC command.
                    tracing::debug!(byte, "unexpected byte after IAC inside subnegotiation");
                    self.subnegotiation(reply_out);
                    self.command(byte, data_out);
                }
            },
            State::SkipOne => self.state = State::Data,
        }
    }

    /// Handles the byte following `IAC` (outside a subnegotiation).
    fn command(&mut self, byte: u8, data_out: &mut Vec<u8>) {
        self.state = match byte {
            SB => State::SbOption,
            WILL | WONT | DO | DONT => State::Negotiate(byte),
            IAC => {
                data_out.push(IAC);
                self.pending_cr = false;
                State::Data
            }
            other => {
                // GA, NOP, DM, BRK, IP, AO, AYT, EC, EL, EOR, stray SE, …
                tracing::trace!(command = other, "ignoring telnet command");
                State::Data
            }
        };
    }

    fn buffer_sb(&mut self, byte: u8) {
        if self.sb_buffer.len() < MAX_SUBNEGOTIATION {
            self.sb_buffer.push(byte);
        } else if !self.sb_overflow {
            tracing::warn!(
                option = self.sb_option,
                "subnegotiation buffer size limit reached; discarding"
            );
            self.sb_overflow = true;
        }
    }

    /// Options we agree to enable on our side (answer `DO` with `WILL`).
    fn supports_local(option: u8) -> bool {
        matches!(option, OPT_TTYPE | OPT_NAWS | OPT_NEW_ENVIRON)
    }

    /// Options we agree the server enables (answer `WILL` with `DO`).
    fn supports_remote(option: u8) -> bool {
        matches!(option, OPT_ECHO | OPT_SGA)
    }

    fn negotiate(&mut self, command: u8, option: u8, reply: &mut Vec<u8>) {
        let idx = usize::from(option);
        match command {
            WILL => {
                if self.remote[idx] {
                    // Already enabled: acknowledging again would loop.
                } else if Self::supports_remote(option) {
                    self.remote[idx] = true;
                    tracing::debug!(option, "server option enabled");
                    reply.extend_from_slice(&[IAC, DO, option]);
                } else {
                    tracing::debug!(option, "refusing server option");
                    reply.extend_from_slice(&[IAC, DONT, option]);
                }
            }
            WONT if self.remote[idx] => {
                self.remote[idx] = false;
                tracing::debug!(option, "server option disabled");
                reply.extend_from_slice(&[IAC, DONT, option]);
            }
            DO => {
                if self.local[idx] {
                    // Already enabled: acknowledging again would loop.
                } else if Self::supports_local(option) {
                    self.local[idx] = true;
                    tracing::debug!(option, "local option enabled");
                    reply.extend_from_slice(&[IAC, WILL, option]);
                    if option == OPT_NAWS {
                        self.send_naws(reply);
                    }
                } else {
                    tracing::debug!(option, "refusing local option");
                    reply.extend_from_slice(&[IAC, WONT, option]);
                }
            }
            DONT if self.local[idx] => {
                self.local[idx] = false;
                tracing::debug!(option, "local option disabled");
                reply.extend_from_slice(&[IAC, WONT, option]);
            }
            // WONT/DONT for a disabled option: already off, nothing to say.
            _ => {}
        }
    }

    /// Handles a complete subnegotiation (`IAC SB <option> <payload> IAC SE`).
    ///
    /// Like libtelnet, requests are answered whether or not the option was
    /// negotiated beforehand.
    fn subnegotiation(&mut self, reply: &mut Vec<u8>) {
        if self.sb_overflow {
            return;
        }
        match (self.sb_option, self.sb_buffer.first()) {
            (OPT_TTYPE, Some(&TTYPE_SEND)) => {
                begin_sb(reply, OPT_TTYPE);
                reply.push(TTYPE_IS);
                encode_input(self.config.terminal_type.as_bytes(), reply);
                finish_sb(reply);
            }
            (OPT_NEW_ENVIRON, Some(&ENVIRON_SEND)) => {
                let send_user = environ_requests_user(&self.sb_buffer[1..]);
                begin_sb(reply, OPT_NEW_ENVIRON);
                reply.push(ENVIRON_IS);
                if let (true, Some(user)) = (send_user, &self.config.username) {
                    reply.push(ENVIRON_VAR);
                    reply.extend_from_slice(b"USER");
                    reply.push(ENVIRON_VALUE);
                    environ_escape(user.as_bytes(), reply);
                }
                finish_sb(reply);
            }
            (option, _) => {
                tracing::trace!(option, "ignoring subnegotiation");
            }
        }
    }

    fn send_naws(&self, out: &mut Vec<u8>) {
        begin_sb(out, OPT_NAWS);
        let [c0, c1] = self.config.cols.to_be_bytes();
        let [r0, r1] = self.config.rows.to_be_bytes();
        encode_input(&[c0, c1, r0, r1], out);
        finish_sb(out);
    }
}

/// Escapes data typed by the user for sending to the server: every `IAC`
/// (255) byte is doubled.
///
/// This is exactly what guacd does (libtelnet's `telnet_send`): no CR/LF
/// translation takes place, keyboard bytes are otherwise sent as they are.
pub fn encode_input(data: &[u8], out: &mut Vec<u8>) {
    let mut rest = data;
    while let Some(pos) = rest.iter().position(|&b| b == IAC) {
        out.extend_from_slice(&rest[..=pos]);
        out.push(IAC);
        rest = &rest[pos + 1..];
    }
    out.extend_from_slice(rest);
}

fn begin_sb(out: &mut Vec<u8>, option: u8) {
    out.extend_from_slice(&[IAC, SB, option]);
}

fn finish_sb(out: &mut Vec<u8>) {
    out.extend_from_slice(&[IAC, SE]);
}

/// Escapes a NEW-ENVIRON name or value (RFC 1572: `VAR`, `VALUE`, `ESC` and
/// `USERVAR` are prefixed with `ESC`; `IAC` is doubled).
fn environ_escape(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        match b {
            ENVIRON_VAR | ENVIRON_VALUE | ENVIRON_ESC | ENVIRON_USERVAR => {
                out.extend_from_slice(&[ENVIRON_ESC, b]);
            }
            IAC => out.extend_from_slice(&[IAC, IAC]),
            _ => out.push(b),
        }
    }
}

/// Whether a NEW-ENVIRON `SEND` request (payload after the `SEND` byte) asks
/// for the `USER` variable: the request is empty (whole environment, the only
/// case guacd answers with `USER`), or lists `VAR` without name (all
/// well-known variables) or `VAR "USER"`.
fn environ_requests_user(list: &[u8]) -> bool {
    if list.is_empty() {
        return true;
    }
    let mut items: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut iter = list.iter().copied();
    while let Some(b) = iter.next() {
        match b {
            ENVIRON_VAR | ENVIRON_USERVAR => items.push((b, Vec::new())),
            ENVIRON_ESC => {
                if let (Some(next), Some(item)) = (iter.next(), items.last_mut()) {
                    item.1.push(next);
                }
            }
            other => {
                if let Some(item) = items.last_mut() {
                    item.1.push(other);
                }
            }
        }
    }
    items
        .iter()
        .any(|(kind, name)| *kind == ENVIRON_VAR && (name.is_empty() || name == b"USER"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::codes::{GA, NOP};
    use proptest::prelude::*;

    fn config() -> TelnetConfig {
        TelnetConfig {
            terminal_type: "xterm-256color".into(),
            username: Some("alice".into()),
            cols: 80,
            rows: 24,
        }
    }

    fn run(client: &mut TelnetClient, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut data, mut reply) = (Vec::new(), Vec::new());
        client.receive(input, &mut data, &mut reply);
        (data, reply)
    }

    #[test]
    fn do_naws_sends_will_and_size() {
        let mut c = TelnetClient::new(config());
        let (data, reply) = run(&mut c, &[IAC, DO, OPT_NAWS]);
        assert!(data.is_empty());
        assert_eq!(
            reply,
            [IAC, WILL, 31, IAC, SB, 31, 0, 80, 0, 24, IAC, SE].to_vec()
        );
        assert!(c.naws_enabled());
    }

    #[test]
    fn naws_escapes_iac_bytes() {
        let mut c = TelnetClient::new(TelnetConfig {
            cols: 0x00ff,
            rows: 0xff01,
            ..config()
        });
        let (_, reply) = run(&mut c, &[IAC, DO, OPT_NAWS]);
        assert_eq!(
            reply,
            [
                IAC, WILL, 31, IAC, SB, 31, 0, 255, 255, 255, 255, 1, IAC, SE
            ]
            .to_vec()
        );
    }

    #[test]
    fn resize_only_when_naws_enabled() {
        let mut c = TelnetClient::new(config());
        let mut out = Vec::new();
        c.resize(100, 40, &mut out);
        assert!(out.is_empty());
        assert_eq!((c.config().cols, c.config().rows), (100, 40));
        let (_, reply) = run(&mut c, &[IAC, DO, OPT_NAWS]);
        assert_eq!(
            reply,
            [IAC, WILL, 31, IAC, SB, 31, 0, 100, 0, 40, IAC, SE].to_vec()
        );
        c.resize(132, 50, &mut out);
        assert_eq!(out, [IAC, SB, 31, 0, 132, 0, 50, IAC, SE].to_vec());
        // DONT NAWS disables it again.
        let (_, reply) = run(&mut c, &[IAC, DONT, OPT_NAWS]);
        assert_eq!(reply, [IAC, WONT, 31].to_vec());
        out.clear();
        c.resize(10, 10, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn ttype_negotiation() {
        let mut c = TelnetClient::new(config());
        let (_, reply) = run(&mut c, &[IAC, DO, OPT_TTYPE]);
        assert_eq!(reply, [IAC, WILL, 24].to_vec());
        let (data, reply) = run(&mut c, &[IAC, SB, OPT_TTYPE, TTYPE_SEND, IAC, SE]);
        assert!(data.is_empty());
        let mut expected = vec![IAC, SB, 24, 0];
        expected.extend_from_slice(b"xterm-256color");
        expected.extend_from_slice(&[IAC, SE]);
        assert_eq!(reply, expected);
        // Asked again: same answer (guacd does not cycle terminal types).
        let (_, reply2) = run(&mut c, &[IAC, SB, OPT_TTYPE, TTYPE_SEND, IAC, SE]);
        assert_eq!(reply2, expected);
        // TTYPE IS from the server is ignored.
        let (_, reply3) = run(&mut c, &[IAC, SB, OPT_TTYPE, TTYPE_IS, b'x', IAC, SE]);
        assert!(reply3.is_empty());
    }

    #[test]
    fn new_environ_send_all() {
        let mut c = TelnetClient::new(config());
        let (_, reply) = run(&mut c, &[IAC, DO, OPT_NEW_ENVIRON]);
        assert_eq!(reply, [IAC, WILL, 39].to_vec());
        let (_, reply) = run(&mut c, &[IAC, SB, OPT_NEW_ENVIRON, ENVIRON_SEND, IAC, SE]);
        let mut expected = vec![IAC, SB, 39, ENVIRON_IS, ENVIRON_VAR];
        expected.extend_from_slice(b"USER");
        expected.push(ENVIRON_VALUE);
        expected.extend_from_slice(b"alice");
        expected.extend_from_slice(&[IAC, SE]);
        assert_eq!(reply, expected);
    }

    #[test]
    fn new_environ_specific_requests() {
        let mut c = TelnetClient::new(config());
        let user_reply = {
            let mut e = vec![IAC, SB, 39, ENVIRON_IS, ENVIRON_VAR];
            e.extend_from_slice(b"USER");
            e.push(ENVIRON_VALUE);
            e.extend_from_slice(b"alice");
            e.extend_from_slice(&[IAC, SE]);
            e
        };
        let empty_reply = vec![IAC, SB, 39, ENVIRON_IS, IAC, SE];

        // SEND VAR "USER"
        let mut req = vec![IAC, SB, OPT_NEW_ENVIRON, ENVIRON_SEND, ENVIRON_VAR];
        req.extend_from_slice(b"USER");
        req.extend_from_slice(&[IAC, SE]);
        assert_eq!(run(&mut c, &req).1, user_reply);

        // SEND VAR (all well-known variables) USERVAR
        let req = [
            IAC,
            SB,
            OPT_NEW_ENVIRON,
            ENVIRON_SEND,
            ENVIRON_VAR,
            ENVIRON_USERVAR,
            IAC,
            SE,
        ];
        assert_eq!(run(&mut c, &req).1, user_reply);

        // SEND USERVAR "TERM": nothing we know of.
        let mut req = vec![IAC, SB, OPT_NEW_ENVIRON, ENVIRON_SEND, ENVIRON_USERVAR];
        req.extend_from_slice(b"TERM");
        req.extend_from_slice(&[IAC, SE]);
        assert_eq!(run(&mut c, &req).1, empty_reply);
    }

    #[test]
    fn new_environ_without_username_and_escaping() {
        let mut c = TelnetClient::new(TelnetConfig {
            username: None,
            ..config()
        });
        let (_, reply) = run(&mut c, &[IAC, SB, OPT_NEW_ENVIRON, ENVIRON_SEND, IAC, SE]);
        assert_eq!(reply, [IAC, SB, 39, ENVIRON_IS, IAC, SE].to_vec());

        let mut c = TelnetClient::new(TelnetConfig {
            username: Some("a\u{1}b\u{2}".into()),
            ..config()
        });
        let (_, reply) = run(&mut c, &[IAC, SB, OPT_NEW_ENVIRON, ENVIRON_SEND, IAC, SE]);
        let mut expected = vec![IAC, SB, 39, ENVIRON_IS, ENVIRON_VAR];
        expected.extend_from_slice(b"USER");
        expected.extend_from_slice(&[ENVIRON_VALUE, b'a', ENVIRON_ESC, 1, b'b', ENVIRON_ESC, 2]);
        expected.extend_from_slice(&[IAC, SE]);
        assert_eq!(reply, expected);
    }

    #[test]
    fn will_echo_and_sga_accepted() {
        let mut c = TelnetClient::new(config());
        assert!(!c.remote_echo());
        assert!(c.local_echo());
        let (_, reply) = run(&mut c, &[IAC, WILL, OPT_ECHO]);
        assert_eq!(reply, [IAC, DO, 1].to_vec());
        assert!(c.remote_echo());
        assert!(!c.local_echo());
        let (_, reply) = run(&mut c, &[IAC, WILL, OPT_SGA]);
        assert_eq!(reply, [IAC, DO, 3].to_vec());
        assert!(c.remote_option(OPT_SGA));
        // WONT ECHO turns it off again (acknowledged once).
        let (_, reply) = run(&mut c, &[IAC, WONT, OPT_ECHO, IAC, WONT, OPT_ECHO]);
        assert_eq!(reply, [IAC, DONT, 1].to_vec());
        assert!(!c.remote_echo());
    }

    #[test]
    fn refuses_unknown_options_once_per_request() {
        let mut c = TelnetClient::new(config());
        let (_, reply) = run(&mut c, &[IAC, DO, OPT_ECHO, IAC, WILL, OPT_TTYPE]);
        assert_eq!(reply, [IAC, WONT, 1, IAC, DONT, 24].to_vec());
        let (_, reply) = run(&mut c, &[IAC, DO, 200]);
        assert_eq!(reply, [IAC, WONT, 200].to_vec());
        // DONT/WONT for disabled options: no answer.
        let (_, reply) = run(&mut c, &[IAC, DONT, 200, IAC, WONT, 5, IAC, DONT, OPT_NAWS]);
        assert!(reply.is_empty());
    }

    #[test]
    fn no_reply_loops() {
        let mut c = TelnetClient::new(config());
        let input = [
            IAC, DO, OPT_TTYPE, IAC, DO, OPT_TTYPE, IAC, WILL, OPT_ECHO, IAC, WILL, OPT_ECHO,
        ];
        let (_, reply) = run(&mut c, &input);
        assert_eq!(reply, [IAC, WILL, 24, IAC, DO, 1].to_vec());
        // The server acknowledging our acknowledgement gets no answer either.
        let (_, reply) = run(&mut c, &[IAC, DO, OPT_TTYPE, IAC, WILL, OPT_ECHO]);
        assert!(reply.is_empty());
        let (_, reply) = run(&mut c, &[IAC, DO, OPT_NAWS, IAC, DO, OPT_NAWS]);
        assert_eq!(
            reply,
            [IAC, WILL, 31, IAC, SB, 31, 0, 80, 0, 24, IAC, SE].to_vec()
        );
    }

    #[test]
    fn data_decoding() {
        let mut c = TelnetClient::new(config());
        let input = [
            b'a', IAC, IAC, b'b', b'\r', 0, b'c', b'\r', b'\n', IAC, GA, IAC, NOP, b'd', 0, b'\r',
        ];
        let (data, reply) = run(&mut c, &input);
        assert_eq!(data, b"a\xffb\rc\r\nd\0\r".to_vec());
        assert!(reply.is_empty());
        // CR at the end of a chunk, NUL at the start of the next one.
        let (data, _) = run(&mut c, &[0, 0, b'x']);
        assert_eq!(data, [0, b'x'].to_vec());
    }

    #[test]
    fn subnegotiation_split_and_interrupted() {
        let mut c = TelnetClient::new(config());
        // IAC IAC inside SB is unescaped; unknown SB ignored; data resumes.
        let (data, reply) = run(&mut c, &[IAC, SB, 99, 1, IAC, IAC, 2, IAC, SE, b'z']);
        assert_eq!(data, b"z".to_vec());
        assert!(reply.is_empty());
        // SB terminated by another IAC command: SB processed, then command.
        let (data, reply) = run(
            &mut c,
            &[IAC, SB, OPT_TTYPE, TTYPE_SEND, IAC, WILL, OPT_ECHO, b'q'],
        );
        assert_eq!(data, b"q".to_vec());
        let mut expected = vec![IAC, SB, 24, 0];
        expected.extend_from_slice(b"xterm-256color");
        expected.extend_from_slice(&[IAC, SE, IAC, DO, 1]);
        assert_eq!(reply, expected);
        // Oversized SB is consumed and ignored.
        let mut big = vec![IAC, SB, OPT_TTYPE, TTYPE_SEND];
        big.extend(std::iter::repeat_n(b'x', MAX_SUBNEGOTIATION + 10));
        big.extend_from_slice(&[IAC, SE, b'k']);
        let (data, reply) = run(&mut c, &big);
        assert_eq!(data, b"k".to_vec());
        assert!(reply.is_empty());
        // MCCPv1 start marker discarded.
        let (data, reply) = run(&mut c, &[IAC, SB, OPT_COMPRESS, WILL, SE, b'm']);
        assert_eq!(data, b"m".to_vec());
        assert!(reply.is_empty());
    }

    fn negotiation_script() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(b"Welcome\r\n\r\0");
        s.extend_from_slice(&[
            IAC,
            DO,
            OPT_TTYPE,
            IAC,
            DO,
            OPT_NAWS,
            IAC,
            DO,
            OPT_NEW_ENVIRON,
        ]);
        s.extend_from_slice(&[IAC, WILL, OPT_ECHO, IAC, WILL, OPT_SGA, IAC, DO, 36]);
        s.extend_from_slice(&[IAC, SB, OPT_TTYPE, TTYPE_SEND, IAC, SE]);
        s.extend_from_slice(&[IAC, SB, OPT_NEW_ENVIRON, ENVIRON_SEND, ENVIRON_VAR, IAC, SE]);
        s.extend_from_slice(&[b'x', IAC, IAC, b'\r', 0, IAC, GA, b'y', b'\r']);
        s.extend_from_slice(&[IAC, SB, 77, IAC, IAC, 1, IAC, NOP, b'w']);
        s.extend_from_slice(&[IAC, WONT, OPT_ECHO, IAC, DONT, OPT_NAWS, 0, b'l', b'o']);
        s
    }

    #[test]
    fn split_at_every_position_is_identical() {
        let script = negotiation_script();
        let mut whole = TelnetClient::new(config());
        let expected = run(&mut whole, &script);
        assert!(!expected.0.is_empty() && !expected.1.is_empty());
        for split in 0..=script.len() {
            let mut c = TelnetClient::new(config());
            let (mut data, mut reply) = (Vec::new(), Vec::new());
            c.receive(&script[..split], &mut data, &mut reply);
            c.receive(&script[split..], &mut data, &mut reply);
            assert_eq!((data, reply), expected, "split at {split}");
        }
        // Byte by byte.
        let mut c = TelnetClient::new(config());
        let (mut data, mut reply) = (Vec::new(), Vec::new());
        for b in &script {
            c.receive(std::slice::from_ref(b), &mut data, &mut reply);
        }
        assert_eq!((data, reply), expected);
    }

    #[test]
    fn encode_input_escapes_iac() {
        let mut out = Vec::new();
        encode_input(&[1, IAC, 2, IAC, IAC, b'\r'], &mut out);
        assert_eq!(out, [1, IAC, IAC, 2, IAC, IAC, IAC, IAC, b'\r'].to_vec());
        out.clear();
        TelnetClient::encode_input(b"ls\r", &mut out);
        assert_eq!(out, b"ls\r".to_vec());
        let mut c = TelnetClient::new(config());
        let mut offers = Vec::new();
        c.initial_offers(&mut offers);
        assert!(offers.is_empty());
    }

    /// Expected decoding of plain data: the NUL of every CR NUL pair dropped.
    fn strip_cr_nul(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev_cr = false;
        for &b in data {
            if !(prev_cr && b == 0) {
                out.push(b);
            }
            prev_cr = b == b'\r';
        }
        out
    }

    proptest! {
        #[test]
        fn receive_never_panics(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)
        ) {
            let mut c = TelnetClient::new(config());
            let (mut data, mut reply) = (Vec::new(), Vec::new());
            for chunk in &chunks {
                c.receive(chunk, &mut data, &mut reply);
            }
            let mut out = Vec::new();
            c.resize(1, 2, &mut out);
            // Splitting does not change anything.
            let all: Vec<u8> = chunks.concat();
            let mut w = TelnetClient::new(config());
            let whole = run(&mut w, &all);
            prop_assert_eq!(whole, (data, reply));
        }

        #[test]
        fn encoded_data_round_trips(
            data in proptest::collection::vec(
                prop_oneof![any::<u8>(), Just(IAC), Just(b'\r'), Just(0u8)], 0..256),
            split in any::<prop::sample::Index>(),
        ) {
            let mut wire = Vec::new();
            encode_input(&data, &mut wire);
            let at = split.index(wire.len() + 1);
            let mut c = TelnetClient::new(config());
            let (mut out, mut reply) = (Vec::new(), Vec::new());
            c.receive(&wire[..at], &mut out, &mut reply);
            c.receive(&wire[at..], &mut out, &mut reply);
            prop_assert_eq!(out, strip_cr_nul(&data));
            prop_assert!(reply.is_empty());
        }
    }
}
