//! Recording and typescript settings from connection parameters.

use std::path::PathBuf;

use guacr_session::Params;

use crate::RecordError;
use crate::crypto::PublicKey;
use crate::tokens::{LocalTime, Tokens, expand_tokens};

/// Default `recording-name` (guacd's `GUAC_*_DEFAULT_RECORDING_NAME`).
pub const DEFAULT_RECORDING_NAME: &str = "recording";
/// Default `typescript-name`.
pub const DEFAULT_TYPESCRIPT_NAME: &str = "typescript";
/// Default budget of bytes queued for the writer before the recording fails.
pub const DEFAULT_QUEUE_BUDGET: usize = 4 * 1024 * 1024;

/// What happens to the session when its recording cannot be written.
///
/// Not a guacd parameter (guacd ignores write errors and keeps going with a
/// damaged recording): the daemon configuration chooses the default, and the
/// `recording-failure` parameter (`terminate` | `continue`) may override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// End the session (every user gets an error).
    #[default]
    Terminate,
    /// Stop recording, keep the session.
    Continue,
}

impl std::str::FromStr for FailurePolicy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim() {
            "terminate" => Ok(FailurePolicy::Terminate),
            "continue" => Ok(FailurePolicy::Continue),
            _ => Err(()),
        }
    }
}

/// Encryption at rest: files are sealed to this X25519 public key (see
/// [`crate::crypto`]). Chosen by the daemon configuration, never by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionSettings {
    pub recipient: PublicKey,
}

/// How a `.guac` session recording is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSettings {
    /// `recording-path` (tokens expanded).
    pub path: PathBuf,
    /// `recording-name` (tokens expanded), default `recording`.
    pub name: String,
    /// `create-recording-path`.
    pub create_path: bool,
    /// Not `recording-exclude-output`.
    pub include_output: bool,
    /// Not `recording-exclude-mouse`.
    pub include_mouse: bool,
    /// Not `recording-exclude-touch` (guacd records touch for RDP only; other
    /// handlers should ignore this).
    pub include_touch: bool,
    /// `recording-include-keys`.
    pub include_keys: bool,
    /// `recording-include-clipboard` (guacd 1.6).
    pub include_clipboard: bool,
    /// `recording-write-existing` (guacd 1.6): reuse the file instead of adding
    /// a `.N` suffix.
    pub write_existing: bool,
    pub failure_policy: FailurePolicy,
    pub encryption: Option<EncryptionSettings>,
    /// Bytes that may wait for the disk before the recording fails.
    pub queue_budget: usize,
}

/// How a terminal typescript is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypescriptSettings {
    /// `typescript-path` (tokens expanded).
    pub path: PathBuf,
    /// `typescript-name` (tokens expanded), default `typescript`.
    pub name: String,
    /// `create-typescript-path`.
    pub create_path: bool,
    /// `typescript-write-existing` (guacd 1.6).
    pub write_existing: bool,
    pub failure_policy: FailurePolicy,
    pub encryption: Option<EncryptionSettings>,
    pub queue_budget: usize,
}

fn policy(params: &Params, default: FailurePolicy) -> Result<FailurePolicy, RecordError> {
    match params.get("recording-failure") {
        None => Ok(default),
        Some(v) => v.parse().map_err(|()| RecordError::InvalidParam {
            name: "recording-failure".into(),
            reason: format!("{v:?} is neither \"terminate\" nor \"continue\""),
        }),
    }
}

/// Directory and file name from `(path parameter, name parameter, default
/// name)`, tokens expanded; `None` when the path parameter is empty.
fn location(
    params: &Params,
    (path_param, name_param, default_name): (&str, &str, &str),
    username: Option<&str>,
    now: LocalTime,
) -> Result<Option<(PathBuf, String)>, RecordError> {
    let Some(path) = params.get(path_param) else {
        return Ok(None);
    };
    let tokens = Tokens::standard(username, now);
    let name = expand_tokens(params.get_or(name_param, default_name), &tokens);
    if !crate::file::is_filename(&name) {
        return Err(RecordError::InvalidParam {
            name: name_param.into(),
            reason: format!("{name:?} is not a plain file name"),
        });
    }
    Ok(Some((PathBuf::from(expand_tokens(path, &tokens)), name)))
}

impl RecordingSettings {
    /// Settings from the connection parameters, or `None` when
    /// `recording-path` is empty. `username` is the value of
    /// `${GUAC_USERNAME}`. The failure policy defaults to
    /// [`FailurePolicy::Terminate`].
    pub fn from_params(
        params: &Params,
        username: Option<&str>,
    ) -> Result<Option<Self>, RecordError> {
        Self::from_params_with(params, username, FailurePolicy::default(), LocalTime::now())
    }

    /// [`from_params`](Self::from_params) with the daemon's default policy and
    /// the time used for `${GUAC_DATE}`/`${GUAC_TIME}`.
    pub fn from_params_with(
        params: &Params,
        username: Option<&str>,
        default_policy: FailurePolicy,
        now: LocalTime,
    ) -> Result<Option<Self>, RecordError> {
        let Some((path, name)) = location(
            params,
            ("recording-path", "recording-name", DEFAULT_RECORDING_NAME),
            username,
            now,
        )?
        else {
            return Ok(None);
        };
        Ok(Some(RecordingSettings {
            path,
            name,
            create_path: params.flag("create-recording-path"),
            include_output: !params.flag("recording-exclude-output"),
            include_mouse: !params.flag("recording-exclude-mouse"),
            include_touch: !params.flag("recording-exclude-touch"),
            include_keys: params.flag("recording-include-keys"),
            include_clipboard: params.flag("recording-include-clipboard"),
            write_existing: params.flag("recording-write-existing"),
            failure_policy: policy(params, default_policy)?,
            encryption: None,
            queue_budget: DEFAULT_QUEUE_BUDGET,
        }))
    }
}

impl TypescriptSettings {
    /// Settings from the connection parameters, or `None` when
    /// `typescript-path` is empty.
    pub fn from_params(
        params: &Params,
        username: Option<&str>,
    ) -> Result<Option<Self>, RecordError> {
        Self::from_params_with(params, username, FailurePolicy::default(), LocalTime::now())
    }

    pub fn from_params_with(
        params: &Params,
        username: Option<&str>,
        default_policy: FailurePolicy,
        now: LocalTime,
    ) -> Result<Option<Self>, RecordError> {
        let Some((path, name)) = location(
            params,
            (
                "typescript-path",
                "typescript-name",
                DEFAULT_TYPESCRIPT_NAME,
            ),
            username,
            now,
        )?
        else {
            return Ok(None);
        };
        Ok(Some(TypescriptSettings {
            path,
            name,
            create_path: params.flag("create-typescript-path"),
            write_existing: params.flag("typescript-write-existing"),
            failure_policy: policy(params, default_policy)?,
            encryption: None,
            queue_budget: DEFAULT_QUEUE_BUDGET,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> LocalTime {
        LocalTime {
            year: 2025,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 58,
        }
    }

    #[test]
    fn none_without_path() {
        let p = Params::from_pairs([("recording-name", "x"), ("recording-path", "")]);
        assert_eq!(RecordingSettings::from_params(&p, None).unwrap(), None);
        assert_eq!(TypescriptSettings::from_params(&p, None).unwrap(), None);
    }

    #[test]
    fn defaults() {
        let p = Params::from_pairs([("recording-path", "/rec"), ("typescript-path", "/ts")]);
        let r = RecordingSettings::from_params(&p, None).unwrap().unwrap();
        assert_eq!(r.path, PathBuf::from("/rec"));
        assert_eq!(r.name, "recording");
        assert!(!r.create_path && r.include_output && r.include_mouse && r.include_touch);
        assert!(!r.include_keys && !r.include_clipboard && !r.write_existing);
        assert_eq!(r.failure_policy, FailurePolicy::Terminate);
        assert_eq!(r.encryption, None);
        let t = TypescriptSettings::from_params(&p, None).unwrap().unwrap();
        assert_eq!(
            (t.path, t.name.as_str(), t.create_path),
            (PathBuf::from("/ts"), "typescript", false)
        );
    }

    #[test]
    fn flags_tokens_and_policy() {
        let p = Params::from_pairs([
            ("recording-path", "/rec/${GUAC_USERNAME}"),
            (
                "recording-name",
                "${GUAC_USERNAME}-${GUAC_DATE}-${GUAC_TIME}",
            ),
            ("create-recording-path", "true"),
            ("recording-exclude-output", "true"),
            ("recording-exclude-mouse", "true"),
            ("recording-exclude-touch", "true"),
            ("recording-include-keys", "true"),
            ("recording-include-clipboard", "true"),
            ("recording-write-existing", "true"),
            ("recording-failure", "continue"),
            ("typescript-path", "/ts"),
            ("typescript-name", "ts-${GUAC_DATE}"),
            ("create-typescript-path", "true"),
        ]);
        let r =
            RecordingSettings::from_params_with(&p, Some("bob"), FailurePolicy::Terminate, at())
                .unwrap()
                .unwrap();
        assert_eq!(r.path, PathBuf::from("/rec/bob"));
        assert_eq!(r.name, "bob-20251231-235958");
        assert!(r.create_path && !r.include_output && !r.include_mouse && !r.include_touch);
        assert!(r.include_keys && r.include_clipboard && r.write_existing);
        assert_eq!(r.failure_policy, FailurePolicy::Continue);
        let t = TypescriptSettings::from_params_with(&p, None, FailurePolicy::Terminate, at())
            .unwrap()
            .unwrap();
        assert_eq!(t.name, "ts-20251231");
        assert!(t.create_path);
        assert_eq!(t.failure_policy, FailurePolicy::Continue);
    }

    #[test]
    fn booleans_are_exactly_true() {
        let p = Params::from_pairs([("recording-path", "/r"), ("recording-include-keys", "yes")]);
        let r = RecordingSettings::from_params(&p, None).unwrap().unwrap();
        assert!(!r.include_keys);
    }

    #[test]
    fn daemon_default_policy_and_bad_values() {
        let p = Params::from_pairs([("recording-path", "/r")]);
        let r = RecordingSettings::from_params_with(&p, None, FailurePolicy::Continue, at())
            .unwrap()
            .unwrap();
        assert_eq!(r.failure_policy, FailurePolicy::Continue);
        let p = Params::from_pairs([("recording-path", "/r"), ("recording-failure", "maybe")]);
        assert!(matches!(
            RecordingSettings::from_params(&p, None),
            Err(RecordError::InvalidParam { name, .. }) if name == "recording-failure"
        ));
        // A username with a slash cannot smuggle a path into the name.
        let p = Params::from_pairs([
            ("recording-path", "/r"),
            ("recording-name", "${GUAC_USERNAME}"),
        ]);
        assert!(RecordingSettings::from_params(&p, Some("../etc")).is_err());
        let p = Params::from_pairs([("typescript-path", "/t"), ("typescript-name", "..")]);
        assert!(TypescriptSettings::from_params(&p, None).is_err());
    }
}
