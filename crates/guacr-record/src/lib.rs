//! Session recordings compatible with guacd.
//!
//! - [`GuacRecording`]: `.guac` recordings (output instruction stream + mouse,
//!   keys, touch, clipboard), playable by `guacenc` and the Guacamole player.
//! - [`Typescript`]: terminal typescripts + timing files (`scriptreplay`).
//! - [`RecordingSettings`] / [`TypescriptSettings`]: guacd's parameters, with
//!   `${GUAC_USERNAME}`/`${GUAC_DATE}`/`${GUAC_TIME}` tokens ([`tokens`]).
//! - [`file`](mod@file): guacd's file creation rules (`.1`…`.255`, 0640, 0750, locks).
//! - [`RecordWriter`]: the non-blocking writer behind both, with a byte
//!   budget and a [`FailurePolicy`].
//! - [`crypto`]: optional encryption at rest (X25519 + AES-256-GCM chunks) and
//!   `decrypt`.
//! - [`keylog`]: `guaclog`'s key log and a typed-text view.
//! - `upload` (feature `s3`): durable upload of finished files to S3-compatible storage.
//!
//! Nothing here logs recorded data or key material.

pub mod crypto;
pub mod file;
pub mod guac;
pub mod keylog;
pub mod settings;
pub mod tokens;
pub mod typescript;
#[cfg(feature = "s3")]
pub mod upload;
pub mod writer;

pub use crypto::{DecryptError, KeyError, PrivateKey, PublicKey, decrypt, generate_keypair};
pub use file::open_exclusive;
pub use guac::GuacRecording;
pub use keylog::{KeyLog, KeyLogFormat, keys_from_recording, typed_text_from_recording};
pub use settings::{EncryptionSettings, FailurePolicy, RecordingSettings, TypescriptSettings};
pub use typescript::Typescript;
pub use writer::{RecordFailure, RecordWriter};

/// A recording that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("invalid value for parameter \"{name}\": {reason}")]
    InvalidParam { name: String, reason: String },
    #[error("creation of recording failed: {0}")]
    Io(#[from] std::io::Error),
}
