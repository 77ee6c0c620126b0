//! guacd's automatic login: prompt detection on the terminal output.

use regex::{Regex, RegexBuilder};

use crate::TelnetError;

/// guacd's default `username-regex` (`GUAC_TELNET_DEFAULT_USERNAME_REGEX`).
pub const DEFAULT_USERNAME_REGEX: &str = "[Ll]ogin:";
/// guacd's default `password-regex` (`GUAC_TELNET_DEFAULT_PASSWORD_REGEX`).
pub const DEFAULT_PASSWORD_REGEX: &str = "[Pp]assword:";
/// Maximum number of bytes of the current (unfinished) line kept for matching.
/// Older bytes of an over-long line are dropped.
pub const MAX_LINE: usize = 4096;

/// Configuration of [`LoginAutomation`].
#[derive(Debug, Clone)]
pub struct LoginConfig {
    /// User name to type at the username prompt. Without it, the username
    /// prompt is not searched for.
    pub username: Option<String>,
    /// Password to type at the password prompt. Without it, the password
    /// prompt is not searched for.
    pub password: Option<String>,
    /// Username prompt (default [`DEFAULT_USERNAME_REGEX`]).
    pub username_regex: Regex,
    /// Password prompt (default [`DEFAULT_PASSWORD_REGEX`]).
    pub password_regex: Regex,
    /// Output that means the login succeeded. Only used together with
    /// `login_failure_regex`.
    pub login_success_regex: Option<Regex>,
    /// Output that means the login failed. Only used together with
    /// `login_success_regex`.
    pub login_failure_regex: Option<Regex>,
}

impl LoginConfig {
    /// Builds the configuration from guacd's connection parameters
    /// (`username`, `password`, `username-regex`, `password-regex`,
    /// `login-success-regex`, `login-failure-regex`).
    ///
    /// As in guacd, empty values count as absent, absent prompt regexes take
    /// their default, and every regex is case-insensitive (guacd compiles
    /// them with `REG_EXTENDED | REG_ICASE`). A pattern that would be
    /// compiled by guacd (the username regex only with a username, the
    /// password regex only with a password, the success/failure regexes
    /// always) and does not compile yields [`TelnetError::InvalidRegex`];
    /// guacd merely logs and ignores it.
    ///
    /// If only one of the success/failure regexes is given, both are ignored
    /// (with a warning), like guacd does.
    pub fn from_params(
        username: Option<&str>,
        password: Option<&str>,
        username_regex: Option<&str>,
        password_regex: Option<&str>,
        login_success_regex: Option<&str>,
        login_failure_regex: Option<&str>,
    ) -> Result<Self, TelnetError> {
        fn present(v: Option<&str>) -> Option<&str> {
            v.filter(|s| !s.is_empty())
        }
        let username = present(username).map(str::to_owned);
        let password = present(password).map(str::to_owned);

        let username_regex = if username.is_some() {
            compile(
                "username-regex",
                present(username_regex).unwrap_or(DEFAULT_USERNAME_REGEX),
            )?
        } else {
            compile("username-regex", DEFAULT_USERNAME_REGEX)?
        };
        let password_regex = if password.is_some() {
            compile(
                "password-regex",
                present(password_regex).unwrap_or(DEFAULT_PASSWORD_REGEX),
            )?
        } else {
            compile("password-regex", DEFAULT_PASSWORD_REGEX)?
        };

        let mut success = present(login_success_regex)
            .map(|p| compile("login-success-regex", p))
            .transpose()?;
        let mut failure = present(login_failure_regex)
            .map(|p| compile("login-failure-regex", p))
            .transpose()?;
        if success.is_some() != failure.is_some() {
            tracing::warn!(
                "Ignoring login-success-regex / login-failure-regex: both must be provided"
            );
            success = None;
            failure = None;
        }

        Ok(Self {
            username,
            password,
            username_regex,
            password_regex,
            login_success_regex: success,
            login_failure_regex: failure,
        })
    }
}

/// Compiles a pattern the way guacd does (extended syntax, case-insensitive).
fn compile(parameter: &'static str, pattern: &str) -> Result<Regex, TelnetError> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .build()
        .map_err(|e| TelnetError::InvalidRegex {
            parameter,
            pattern: pattern.to_owned(),
            message: e.to_string(),
        })
}

/// Something the driver must do in response to terminal output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginAction {
    /// Type these bytes (the username followed by `\r`) as if entered on the
    /// keyboard: send through [`encode_input`](crate::encode_input), and echo
    /// locally if the server does not echo (guacd routes it through the
    /// terminal's STDIN, which does both).
    SendUsername(Vec<u8>),
    /// Type these bytes (the password followed by `\r`), like
    /// [`SendUsername`](Self::SendUsername).
    SendPassword(Vec<u8>),
    /// The success regex matched: start rendering the terminal.
    LoginSucceeded,
    /// The failure regex matched: close the connection with status 769
    /// (`CLIENT_UNAUTHORIZED`, "Login failed").
    LoginFailed,
}

/// guacd's automatic login (`guac_telnet_search`): scans terminal output line
/// by line for the username/password prompts and the login success/failure
/// markers.
///
/// Semantics (as in guacd's `telnet.c`):
/// * Output is split at `\n`; every complete non-empty line is matched, and at
///   the end of each [`observe`](Self::observe) call the unfinished line (a
///   prompt usually has no newline) is matched too. The unfinished line is
///   kept across calls, so a prompt split across reads still matches.
/// * Each line is tested, in order, against the username regex, the password
///   regex, the success regex and the failure regex.
/// * The username regex fires at most once; once the password regex fires,
///   neither is searched any more; once the success or the failure regex
///   fires, all searches stop.
#[derive(Debug, Clone)]
pub struct LoginAutomation {
    username: Option<(Regex, Vec<u8>)>,
    password: Option<(Regex, Vec<u8>)>,
    success: Option<Regex>,
    failure: Option<Regex>,
    line: Vec<u8>,
}

impl LoginAutomation {
    /// Starts the searches configured in `config`.
    pub fn new(config: LoginConfig) -> Self {
        let typed = |value: String| {
            let mut v = value.into_bytes();
            v.push(b'\r');
            v
        };
        let (success, failure) = match (config.login_success_regex, config.login_failure_regex) {
            (Some(s), Some(f)) => (Some(s), Some(f)),
            _ => (None, None),
        };
        Self {
            username: config.username.map(|u| (config.username_regex, typed(u))),
            password: config.password.map(|p| (config.password_regex, typed(p))),
            success,
            failure,
            line: Vec::new(),
        }
    }

    /// Whether any search is still in progress. When false,
    /// [`observe`](Self::observe) does nothing and need not be called.
    pub fn is_active(&self) -> bool {
        self.username.is_some()
            || self.password.is_some()
            || self.success.is_some()
            || self.failure.is_some()
    }

    /// Whether the display must be held back: success/failure detection is
    /// configured and neither has matched yet (guacd only calls
    /// `guac_terminal_start` on success, or at connect time when no
    /// success/failure regexes are configured).
    pub fn awaiting_result(&self) -> bool {
        self.success.is_some() || self.failure.is_some()
    }

    /// Feeds terminal output (after Telnet decoding) and returns the actions
    /// triggered, in order.
    pub fn observe(&mut self, data: &[u8]) -> Vec<LoginAction> {
        let mut actions = Vec::new();
        if !self.is_active() {
            self.line.clear();
            return actions;
        }
        let mut segments = data.split(|&b| b == b'\n').peekable();
        while let Some(segment) = segments.next() {
            self.append(segment);
            let complete = segments.peek().is_some();
            if complete {
                if !self.line.is_empty() {
                    self.search_line(&mut actions);
                    self.line.clear();
                }
                if !self.is_active() {
                    return actions;
                }
            }
        }
        if !self.line.is_empty() {
            self.search_line(&mut actions);
        }
        if !self.is_active() {
            self.line = Vec::new();
        }
        actions
    }

    fn append(&mut self, segment: &[u8]) {
        if segment.len() >= MAX_LINE {
            self.line.clear();
            self.line
                .extend_from_slice(&segment[segment.len() - MAX_LINE..]);
        } else {
            self.line.extend_from_slice(segment);
            if self.line.len() > MAX_LINE {
                let excess = self.line.len() - MAX_LINE;
                self.line.drain(..excess);
            }
        }
    }

    fn search_line(&mut self, actions: &mut Vec<LoginAction>) {
        let text = String::from_utf8_lossy(&self.line);

        if let Some((regex, value)) = &self.username
            && regex.is_match(&text)
        {
            tracing::debug!("Username sent");
            actions.push(LoginAction::SendUsername(value.clone()));
            self.username = None;
        }

        if let Some((regex, value)) = &self.password
            && regex.is_match(&text)
        {
            tracing::debug!("Password sent");
            actions.push(LoginAction::SendPassword(value.clone()));
            self.username = None;
            self.password = None;
        }

        if let Some(regex) = &self.success
            && regex.is_match(&text)
        {
            tracing::debug!("Login successful");
            actions.push(LoginAction::LoginSucceeded);
            (self.username, self.password, self.success, self.failure) = (None, None, None, None);
        }

        if let Some(regex) = &self.failure
            && regex.is_match(&text)
        {
            tracing::debug!("Login failed");
            actions.push(LoginAction::LoginFailed);
            (self.username, self.password, self.success, self.failure) = (None, None, None, None);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn auto(
        user: Option<&str>,
        pass: Option<&str>,
        success: Option<&str>,
        failure: Option<&str>,
    ) -> LoginAutomation {
        LoginAutomation::new(
            LoginConfig::from_params(user, pass, None, None, success, failure).unwrap(),
        )
    }

    fn user(s: &str) -> LoginAction {
        LoginAction::SendUsername(format!("{s}\r").into_bytes())
    }

    fn pass(s: &str) -> LoginAction {
        LoginAction::SendPassword(format!("{s}\r").into_bytes())
    }

    #[test]
    fn username_then_password_once() {
        let mut a = auto(Some("bob"), Some("secret"), None, None);
        assert!(a.is_active());
        assert!(!a.awaiting_result());
        assert_eq!(a.observe(b"Ubuntu 24.04\r\n\r\n"), vec![]);
        assert_eq!(a.observe(b"host login: "), vec![user("bob")]);
        assert_eq!(a.observe(b"bob\r\n"), vec![]);
        assert_eq!(a.observe(b"Password: "), vec![pass("secret")]);
        assert!(!a.is_active());
        // Never again.
        assert_eq!(
            a.observe(b"\r\nLogin incorrect\r\nlogin: Password:"),
            vec![]
        );
    }

    #[test]
    fn case_insensitive_like_guacd() {
        let mut a = auto(Some("bob"), None, None, None);
        assert_eq!(a.observe(b"LOGIN: "), vec![user("bob")]);
        assert!(!a.is_active());
    }

    #[test]
    fn password_without_username_prompt_disables_username() {
        let mut a = auto(Some("bob"), Some("pw"), None, None);
        assert_eq!(a.observe(b"Password:"), vec![pass("pw")]);
        assert_eq!(a.observe(b"\r\nlogin:"), vec![]);
    }

    #[test]
    fn both_prompts_on_one_line() {
        let mut a = auto(Some("u"), Some("p"), None, None);
        assert_eq!(a.observe(b"login: password:"), vec![user("u"), pass("p")]);
    }

    #[test]
    fn no_username_configured_means_no_username_search() {
        let mut a = auto(None, Some("p"), None, None);
        assert_eq!(a.observe(b"login: "), vec![]);
        assert_eq!(a.observe(b"\npassword: "), vec![pass("p")]);
        let a = auto(None, None, None, None);
        assert!(!a.is_active());
    }

    #[test]
    fn prompt_split_across_chunks() {
        let mut a = auto(Some("bob"), Some("pw"), None, None);
        assert_eq!(a.observe(b"motd\r\nlog"), vec![]);
        assert_eq!(a.observe(b"in"), vec![]);
        assert_eq!(a.observe(b": "), vec![user("bob")]);
        assert_eq!(a.observe(b"\r\nPass"), vec![]);
        assert_eq!(a.observe(b"word:"), vec![pass("pw")]);
    }

    #[test]
    fn newline_resets_line() {
        let mut a = auto(Some("bob"), None, None, None);
        // "log" and "in:" are on different lines: no match.
        assert_eq!(a.observe(b"log\nin:"), vec![]);
        assert!(a.is_active());
    }

    #[test]
    fn success_regex() {
        let mut a = auto(Some("u"), Some("p"), Some(r"\$ $"), Some("incorrect"));
        assert!(a.awaiting_result());
        assert_eq!(a.observe(b"login: "), vec![user("u")]);
        assert_eq!(a.observe(b"u\r\nPassword: "), vec![pass("p")]);
        assert!(a.awaiting_result());
        assert_eq!(
            a.observe(b"\r\nLast login: today\r\nu@h:~$ "),
            vec![LoginAction::LoginSucceeded]
        );
        assert!(!a.awaiting_result());
        assert!(!a.is_active());
        assert_eq!(a.observe(b"Login incorrect\n"), vec![]);
    }

    #[test]
    fn failure_regex() {
        let mut a = auto(Some("u"), Some("p"), Some(r"\$ $"), Some("Login incorrect"));
        assert_eq!(a.observe(b"login: "), vec![user("u")]);
        assert_eq!(a.observe(b"u\r\nPassword: "), vec![pass("p")]);
        assert_eq!(
            a.observe(b"\r\n\r\nLogin incorrect\r\nlogin: "),
            vec![LoginAction::LoginFailed]
        );
        assert!(!a.awaiting_result());
        assert!(!a.is_active());
    }

    #[test]
    fn success_wins_over_failure_on_same_line() {
        let mut a = auto(None, None, Some("ok"), Some("ok"));
        assert_eq!(a.observe(b"ok"), vec![LoginAction::LoginSucceeded]);
    }

    #[test]
    fn success_without_failure_is_ignored() {
        let a = auto(Some("u"), None, Some("ok"), None);
        assert!(!a.awaiting_result());
        let a = auto(Some("u"), None, None, Some("bad"));
        assert!(!a.awaiting_result());
    }

    #[test]
    fn long_lines_keep_the_tail() {
        let mut a = auto(Some("bob"), None, None, None);
        let noise = vec![b'x'; 3 * MAX_LINE];
        assert_eq!(a.observe(&noise), vec![]);
        assert_eq!(a.observe(&noise[..100]), vec![]);
        assert_eq!(a.observe(b"login:"), vec![user("bob")]);
        let mut a = auto(Some("bob"), None, None, None);
        let mut big = noise.clone();
        big.extend_from_slice(b"login:");
        assert_eq!(a.observe(&big), vec![user("bob")]);
    }

    #[test]
    fn lossy_utf8() {
        let mut a = auto(Some("bob"), None, None, None);
        assert_eq!(a.observe(b"\xff\xfe login: \xc3"), vec![user("bob")]);
    }

    #[test]
    fn from_params_defaults_and_errors() {
        let c =
            LoginConfig::from_params(Some(""), Some(""), Some(""), None, Some(""), None).unwrap();
        assert_eq!(c.username, None);
        assert_eq!(c.password, None);
        assert_eq!(c.username_regex.as_str(), DEFAULT_USERNAME_REGEX);
        assert_eq!(c.password_regex.as_str(), DEFAULT_PASSWORD_REGEX);

        let c =
            LoginConfig::from_params(Some("u"), None, Some("^user>"), None, None, None).unwrap();
        assert_eq!(c.username_regex.as_str(), "^user>");

        let err =
            LoginConfig::from_params(Some("u"), None, Some("(["), None, None, None).unwrap_err();
        let TelnetError::InvalidRegex { parameter, .. } = &err;
        assert_eq!(*parameter, "username-regex");
        assert!(err.to_string().contains("username-regex"));

        // Not compiled by guacd without a username: not an error.
        assert!(LoginConfig::from_params(None, None, Some("(["), Some("(["), None, None).is_ok());

        let err =
            LoginConfig::from_params(None, None, None, None, Some("ok"), Some("(")).unwrap_err();
        let TelnetError::InvalidRegex { parameter, .. } = &err;
        assert_eq!(*parameter, "login-failure-regex");
        let err =
            LoginConfig::from_params(None, Some("p"), None, Some("*"), None, None).unwrap_err();
        let TelnetError::InvalidRegex { parameter, .. } = &err;
        assert_eq!(*parameter, "password-regex");
    }
}
