//! Sans-IO Telnet client core for guacr, mirroring guacd's Telnet support
//! (libtelnet with guacd's option table, plus guacd's automatic login).
//!
//! * [`TelnetClient`] — decodes the byte stream received from the server into
//!   terminal data and negotiation replies (RFC 854/855, RFC 1143 style, with
//!   NAWS, TERMINAL-TYPE, NEW-ENVIRON, ECHO and SUPPRESS-GO-AHEAD).
//! * [`encode_input`] — escapes keyboard input for the wire.
//! * [`LoginAutomation`] — guacd's username/password prompt detection and
//!   login success/failure detection.
//!
//! Nothing in this crate performs I/O or depends on an async runtime.

mod client;
mod error;
#[cfg(feature = "handler")]
pub mod handler;
mod login;

pub use client::{MAX_SUBNEGOTIATION, TelnetClient, TelnetConfig, encode_input};
pub use error::TelnetError;
pub use login::{
    DEFAULT_PASSWORD_REGEX, DEFAULT_USERNAME_REGEX, LoginAction, LoginAutomation, LoginConfig,
    MAX_LINE,
};

/// Telnet command and option codes (RFC 854, 855, 857, 858, 1073, 1091, 1572).
pub mod codes {
    /// End of subnegotiation.
    pub const SE: u8 = 240;
    /// No operation.
    pub const NOP: u8 = 241;
    /// Data mark.
    pub const DM: u8 = 242;
    /// Break.
    pub const BRK: u8 = 243;
    /// Interrupt process.
    pub const IP: u8 = 244;
    /// Abort output.
    pub const AO: u8 = 245;
    /// Are you there.
    pub const AYT: u8 = 246;
    /// Erase character.
    pub const EC: u8 = 247;
    /// Erase line.
    pub const EL: u8 = 248;
    /// Go ahead.
    pub const GA: u8 = 249;
    /// Start of subnegotiation.
    pub const SB: u8 = 250;
    /// Sender wants to enable an option on its side.
    pub const WILL: u8 = 251;
    /// Sender refuses / disables an option on its side.
    pub const WONT: u8 = 252;
    /// Sender asks the peer to enable an option.
    pub const DO: u8 = 253;
    /// Sender asks the peer to disable an option.
    pub const DONT: u8 = 254;
    /// Interpret as command.
    pub const IAC: u8 = 255;

    /// ECHO option (RFC 857).
    pub const OPT_ECHO: u8 = 1;
    /// SUPPRESS-GO-AHEAD option (RFC 858).
    pub const OPT_SGA: u8 = 3;
    /// TERMINAL-TYPE option (RFC 1091).
    pub const OPT_TTYPE: u8 = 24;
    /// Negotiate About Window Size (RFC 1073).
    pub const OPT_NAWS: u8 = 31;
    /// NEW-ENVIRON option (RFC 1572).
    pub const OPT_NEW_ENVIRON: u8 = 39;
    /// MCCP v1 (the obsolete COMPRESS option).
    pub const OPT_COMPRESS: u8 = 85;
    /// MCCP v2 (COMPRESS2).
    pub const OPT_COMPRESS2: u8 = 86;

    /// TERMINAL-TYPE `IS`.
    pub const TTYPE_IS: u8 = 0;
    /// TERMINAL-TYPE `SEND`.
    pub const TTYPE_SEND: u8 = 1;

    /// NEW-ENVIRON `IS`.
    pub const ENVIRON_IS: u8 = 0;
    /// NEW-ENVIRON `SEND`.
    pub const ENVIRON_SEND: u8 = 1;
    /// NEW-ENVIRON `INFO`.
    pub const ENVIRON_INFO: u8 = 2;
    /// NEW-ENVIRON `VAR`.
    pub const ENVIRON_VAR: u8 = 0;
    /// NEW-ENVIRON `VALUE`.
    pub const ENVIRON_VALUE: u8 = 1;
    /// NEW-ENVIRON `ESC`.
    pub const ENVIRON_ESC: u8 = 2;
    /// NEW-ENVIRON `USERVAR`.
    pub const ENVIRON_USERVAR: u8 = 3;
}

/// Fuzzing entry point: runs a [`TelnetClient`] (and a [`LoginAutomation`]
/// over its output) on arbitrary server input.
///
/// Besides "must not panic", it checks that decoding the input in one piece
/// and in small chunks (size taken from the first byte) gives identical data,
/// replies and option state; a mismatch panics.
pub fn fuzz_receive(data: &[u8]) {
    let config = TelnetConfig {
        terminal_type: "linux".into(),
        username: Some("fu\u{1}zz".into()),
        cols: 0x00ff,
        rows: 0xff00,
    };

    let mut whole = TelnetClient::new(config.clone());
    let (mut whole_data, mut whole_reply) = (Vec::new(), Vec::new());
    whole.receive(data, &mut whole_data, &mut whole_reply);

    let step = data.first().map_or(1, |b| usize::from(b % 16) + 1);
    let mut split = TelnetClient::new(config);
    let (mut split_data, mut split_reply) = (Vec::new(), Vec::new());
    for chunk in data.chunks(step) {
        split.receive(chunk, &mut split_data, &mut split_reply);
    }

    assert_eq!(whole_data, split_data, "data differs when split");
    assert_eq!(whole_reply, split_reply, "replies differ when split");
    assert_eq!(whole.remote_echo(), split.remote_echo());
    assert_eq!(whole.naws_enabled(), split.naws_enabled());

    let mut out = Vec::new();
    split.resize(0xffff, 1, &mut out);

    if let Ok(login) = LoginConfig::from_params(
        Some("user"),
        Some("pass"),
        None,
        None,
        Some(r"\$ $"),
        Some("incorrect"),
    ) {
        let mut login = LoginAutomation::new(login);
        for chunk in split_data.chunks(step) {
            for action in login.observe(chunk) {
                if let LoginAction::SendUsername(v) | LoginAction::SendPassword(v) = action {
                    encode_input(&v, &mut out);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_entry_smoke() {
        fuzz_receive(&[]);
        fuzz_receive(&[3, 255, 253, 31, 255, 250, 24, 1, 255, 240, b'l', b'o', b'g']);
        fuzz_receive(b"\x07login: \xff\xfb\x01Password:\r\n$ ");
        let all: Vec<u8> = (0..=255u8).cycle().take(2000).collect();
        fuzz_receive(&all);
    }
}
