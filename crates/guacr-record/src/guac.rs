//! `.guac` session recordings, as guacd writes them (`src/libguac/recording.c`).
//!
//! The file is the raw Guacamole instruction stream the session sends to its
//! users (guacd tees the client's broadcast socket into it), with no header and
//! no handshake (`args`/`ready`). Input is interleaved as guacd's
//! `guac_recording_report_*` write it:
//!
//! - `mouse,X,Y,MASK,TIMESTAMP;` unless `recording-exclude-mouse`,
//! - `key,KEYSYM,PRESSED,TIMESTAMP;` (PRESSED is `1`/`0`) with
//!   `recording-include-keys`,
//! - `touch,ID,X,Y,XRADIUS,YRADIUS,ANGLE,FORCE,TIMESTAMP;` unless
//!   `recording-exclude-touch` (RDP only; ANGLE and FORCE as `%.16g`),
//! - `clipboard,STREAM,MIMETYPE;` + `blob,STREAM,BASE64;` per 4096 bytes +
//!   `end,STREAM;` with `recording-include-clipboard` (guacd 1.6).
//!
//! Timestamps must be in the same time base as the session's `sync`
//! timestamps (`guacenc` places mouse positions in time with them):
//! [`now`] returns that time base (`guacr_session::now_millis`).
//!
//! The file reaches the OS at least at every `sync` in the output (cheaply
//! detected at instruction starts) and on close.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use guacr_protocol::InstructionWriter;
use guacr_session::Input;

use crate::settings::{FailurePolicy, RecordingSettings};
use crate::writer::{RecordFailure, RecordWriter};
use crate::{RecordError, file};

/// Clipboard data is recorded in `blob`s of this many bytes
/// (`GUAC_RECORDING_CLIPBOARD_BLOCK_SIZE`).
pub const CLIPBOARD_BLOCK: usize = 4096;

/// The current timestamp in the session's `sync` time base (milliseconds).
pub fn now() -> i64 {
    guacr_session::now_millis()
}

/// Appends `mouse,x,y,mask,timestamp;`.
pub fn encode_mouse(out: &mut Vec<u8>, x: i32, y: i32, mask: i32, timestamp: i64) {
    InstructionWriter::new(out, "mouse")
        .arg(&x)
        .arg(&y)
        .arg(&mask)
        .arg(&timestamp)
        .finish();
}

/// Appends `key,keysym,1|0,timestamp;`.
pub fn encode_key(out: &mut Vec<u8>, keysym: u32, pressed: bool, timestamp: i64) {
    InstructionWriter::new(out, "key")
        .arg(&keysym)
        .arg(&pressed)
        .arg(&timestamp)
        .finish();
}

/// Appends `touch,id,x,y,x_radius,y_radius,angle,force,timestamp;`.
#[allow(clippy::too_many_arguments)]
pub fn encode_touch(
    out: &mut Vec<u8>,
    id: i32,
    x: i32,
    y: i32,
    x_radius: i32,
    y_radius: i32,
    angle: f64,
    force: f64,
    timestamp: i64,
) {
    InstructionWriter::new(out, "touch")
        .arg(&id)
        .arg(&x)
        .arg(&y)
        .arg(&x_radius)
        .arg(&y_radius)
        .arg(format_g16(angle).as_str())
        .arg(format_g16(force).as_str())
        .arg(&timestamp)
        .finish();
}

/// Appends `clipboard` + `blob`s + `end` for one clipboard change.
pub fn encode_clipboard(out: &mut Vec<u8>, stream: i32, mimetype: &str, data: &[u8]) {
    InstructionWriter::new(out, "clipboard")
        .arg(&stream)
        .arg(mimetype)
        .finish();
    for block in data.chunks(CLIPBOARD_BLOCK) {
        InstructionWriter::new(out, "blob")
            .arg(&stream)
            .arg_base64(block)
            .finish();
    }
    InstructionWriter::new(out, "end").arg(&stream).finish();
}

/// C's `printf("%.16g", v)` (how libguac writes doubles).
pub fn format_g16(v: f64) -> String {
    const P: i32 = 16;
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf" } else { "inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // The exponent after rounding to P significant digits.
    let sci = format!("{:.*e}", (P - 1) as usize, v);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_owned(), e.parse::<i32>().unwrap_or(0)),
        None => (sci.clone(), 0),
    };
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if !(-4..P).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(&mantissa), exp.abs())
    } else {
        let decimals = (P - 1 - exp).max(0) as usize;
        strip(&format!("{v:.decimals$}"))
    }
}

/// Whether `data` (whole instructions) contains a `sync` instruction. Looks
/// for `4.sync,` at the start or right after a `;`; a match inside an element
/// value only causes an extra flush.
pub fn contains_sync(data: &[u8]) -> bool {
    const PAT: &[u8] = b"4.sync,";
    if data.starts_with(PAT) {
        return true;
    }
    data.windows(PAT.len() + 1)
        .any(|w| w[0] == b';' && &w[1..] == PAT)
}

/// An open `.guac` recording.
#[derive(Debug)]
pub struct GuacRecording {
    writer: RecordWriter,
    path: Option<PathBuf>,
    include_output: bool,
    include_mouse: bool,
    include_touch: bool,
    include_keys: bool,
    include_clipboard: bool,
    policy: FailurePolicy,
}

impl GuacRecording {
    /// Creates the file as guacd does (see [`file::open_exclusive`]) and starts
    /// writing. Must be called inside a tokio runtime.
    pub async fn open(settings: &RecordingSettings) -> Result<Self, RecordError> {
        let dir = settings.path.clone();
        let name = settings.name.clone();
        let create = settings.create_path;
        let existing = settings.write_existing;
        let (file, path) = tokio::task::spawn_blocking(move || {
            if existing {
                file::open_existing(&dir, &name, create, true)
            } else {
                file::open_exclusive(&dir, &name, create)
            }
        })
        .await
        .map_err(|e| RecordError::Io(std::io::Error::other(e.to_string())))?
        .map_err(RecordError::Io)?;
        tracing::info!(path = %path.display(), "recording of session will be saved");
        let writer = RecordWriter::spawn_file(
            file,
            path.display().to_string(),
            settings.queue_budget,
            settings.encryption.as_ref().map(|e| &e.recipient),
        );
        let mut rec = Self::with_writer(writer, settings);
        rec.path = Some(path);
        Ok(rec)
    }

    /// A recording into any writer (tests, pipes); file options in
    /// `settings` are ignored.
    pub fn with_writer(writer: RecordWriter, settings: &RecordingSettings) -> Self {
        GuacRecording {
            writer,
            path: None,
            include_output: settings.include_output,
            include_mouse: settings.include_mouse,
            include_touch: settings.include_touch,
            include_keys: settings.include_keys,
            include_clipboard: settings.include_clipboard,
            policy: settings.failure_policy,
        }
    }

    /// The recording's file, when opened with [`open`](Self::open).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    fn apply_policy(&self, r: Result<(), RecordFailure>) -> Result<(), RecordFailure> {
        match (r, self.policy) {
            (Err(f), FailurePolicy::Terminate) => Err(f),
            _ => Ok(()),
        }
    }

    /// Records instructions the session broadcast (whole instructions).
    /// Never waits. `Err` means the recording failed and the policy is
    /// [`FailurePolicy::Terminate`]: end the session.
    pub fn output(&self, data: &Bytes) -> Result<(), RecordFailure> {
        if !self.include_output || data.is_empty() {
            return Ok(());
        }
        let r = if contains_sync(data) {
            self.writer.try_write_flush(data.clone())
        } else {
            self.writer.try_write(data.clone())
        };
        self.apply_policy(r)
    }

    /// Records a mouse event (unless `recording-exclude-mouse`).
    pub fn mouse(&self, x: i32, y: i32, mask: i32, timestamp: i64) -> Result<(), RecordFailure> {
        if !self.include_mouse {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(48);
        encode_mouse(&mut buf, x, y, mask, timestamp);
        self.apply_policy(self.writer.try_write(Bytes::from(buf)))
    }

    /// Records a key event (with `recording-include-keys`).
    pub fn key(&self, keysym: u32, pressed: bool, timestamp: i64) -> Result<(), RecordFailure> {
        if !self.include_keys {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(40);
        encode_key(&mut buf, keysym, pressed, timestamp);
        self.apply_policy(self.writer.try_write(Bytes::from(buf)))
    }

    /// Records a touch event (unless `recording-exclude-touch`).
    #[allow(clippy::too_many_arguments)]
    pub fn touch(
        &self,
        id: i32,
        x: i32,
        y: i32,
        x_radius: i32,
        y_radius: i32,
        angle: f64,
        force: f64,
        timestamp: i64,
    ) -> Result<(), RecordFailure> {
        if !self.include_touch {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(96);
        encode_touch(
            &mut buf, id, x, y, x_radius, y_radius, angle, force, timestamp,
        );
        self.apply_policy(self.writer.try_write(Bytes::from(buf)))
    }

    /// Records a clipboard change on output stream `stream` (with
    /// `recording-include-clipboard`). The stream index must not be in use by
    /// the session's own output (guacd allocates one from the client's pool).
    pub fn clipboard(&self, stream: i32, mimetype: &str, data: &[u8]) -> Result<(), RecordFailure> {
        if !self.include_clipboard {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(data.len() * 4 / 3 + 64);
        encode_clipboard(&mut buf, stream, mimetype, data);
        self.apply_policy(self.writer.try_write(Bytes::from(buf)))
    }

    /// Records a user's input event (key, mouse, clipboard; the rest is not
    /// recorded), stamped with `timestamp`. Clipboard uses `clipboard_stream`.
    pub fn input(
        &self,
        input: &Input,
        timestamp: i64,
        clipboard_stream: i32,
    ) -> Result<(), RecordFailure> {
        match input {
            Input::Key { keysym, pressed } => self.key(*keysym, *pressed, timestamp),
            Input::Mouse { x, y, mask } => self.mouse(*x, *y, *mask, timestamp),
            Input::Clipboard { mimetype, data } => self.clipboard(clipboard_stream, mimetype, data),
            _ => Ok(()),
        }
    }

    /// The failure, if the recording has failed (whatever the policy).
    pub fn failed(&self) -> Option<RecordFailure> {
        self.writer.failed()
    }

    /// Resolves when the recording fails.
    pub async fn wait_failure(&self) -> RecordFailure {
        self.writer.wait_failure().await
    }

    /// Bytes waiting for the disk.
    pub fn queued_bytes(&self) -> usize {
        self.writer.queued_bytes()
    }

    /// Writes what is queued, closes the file and releases its lock.
    pub async fn close(self) -> Result<(), RecordFailure> {
        self.writer.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_instruction_forms_match_guacd() {
        let mut b = Vec::new();
        encode_mouse(&mut b, 10, -2, 5, 1_700_000_000_123);
        assert_eq!(b, b"5.mouse,2.10,2.-2,1.5,13.1700000000123;");
        b.clear();
        encode_key(&mut b, 65, true, 42);
        encode_key(&mut b, 0xff0d, false, 43);
        assert_eq!(b, b"3.key,2.65,1.1,2.42;3.key,5.65293,1.0,2.43;");
        b.clear();
        encode_touch(&mut b, 1, 2, 3, 4, 5, 0.0, 1.0, 9);
        assert_eq!(b, b"5.touch,1.1,1.2,1.3,1.4,1.5,1.0,1.1,1.9;");
        b.clear();
        encode_clipboard(&mut b, 7, "text/plain", b"hi");
        assert_eq!(
            b,
            b"9.clipboard,1.7,10.text/plain;4.blob,1.7,4.aGk=;3.end,1.7;"
        );
    }

    #[test]
    fn clipboard_blocks_of_4096() {
        let mut b = Vec::new();
        encode_clipboard(&mut b, 3, "text/plain", &vec![b'x'; 4097]);
        let (ins, _) = guacr_protocol::parse_all(&b).unwrap();
        let blobs: Vec<_> = ins.iter().filter(|i| i.opcode == "blob").collect();
        assert_eq!(blobs.len(), 2);
        assert_eq!(blobs[1].args[1], "eA==");
    }

    #[test]
    fn printf_g16() {
        for (v, s) in [
            (0.5, "0.5"),
            (1.0, "1"),
            (-3.25, "-3.25"),
            (0.1, "0.1"),
            (1e20, "1e+20"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (123456789.0, "123456789"),
            (1.0 / 3.0, "0.3333333333333333"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456"),
            (90.0, "90"),
        ] {
            assert_eq!(format_g16(v), s, "{v}");
        }
    }

    #[test]
    fn sync_detection() {
        assert!(contains_sync(b"4.sync,3.123;"));
        assert!(contains_sync(b"3.nop;4.sync,3.123;"));
        assert!(!contains_sync(b"3.nop;"));
        assert!(!contains_sync(b"5.async,1.1;"));
        assert!(!contains_sync(b"4.name,4.sync;"));
    }
}
