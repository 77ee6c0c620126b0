//! Error type of this crate.

/// Errors raised while building the Telnet configuration.
///
/// The Telnet core itself never fails: malformed input from the server is
/// tolerated (and logged), exactly like libtelnet does for guacd.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelnetError {
    /// A regular expression parameter could not be compiled. The driver is
    /// expected to turn this into Guacamole status 768 (`CLIENT_BAD_REQUEST`).
    #[error(
        "Regular expression '{pattern}' given for parameter \"{parameter}\" could not be compiled: {message}"
    )]
    InvalidRegex {
        /// Connection parameter name (e.g. `username-regex`).
        parameter: &'static str,
        /// The offending pattern.
        pattern: String,
        /// Human-readable reason reported by the regex compiler.
        message: String,
    },
}
