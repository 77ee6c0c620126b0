//! Terminal typescripts, as guacd writes them (`src/terminal/typescript.c`).
//!
//! - `NAME` (created like a recording: exclusive, `.1`…`.255`, mode 0640, not
//!   locked) starts with `[BEGIN TYPESCRIPT]\n`, then holds the raw bytes
//!   received from the remote end (before terminal emulation), and ends with
//!   `\n[END TYPESCRIPT]\n`.
//! - `NAME.timing` (the data file's final name + `.timing`) gets one line per
//!   flush, `"%0.6f %i\n"`: seconds since the previous flush (whole
//!   milliseconds, capped at one day) and the number of bytes flushed — the
//!   format of `script -t` that util-linux `scriptreplay` reads. The header line
//!   is not counted: `scriptreplay` skips the first line of the typescript.
//! - Output is buffered (4096 bytes); the buffer is flushed when full and at
//!   every terminal flush (guacd's `guac_terminal_flush`, i.e. every frame):
//!   call [`Typescript::flush`] at the end of each frame.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;

use crate::settings::{FailurePolicy, TypescriptSettings};
use crate::writer::{RecordFailure, RecordWriter};
use crate::{RecordError, file};

/// First line of every typescript (`GUAC_TERMINAL_TYPESCRIPT_HEADER`).
pub const HEADER: &[u8] = b"[BEGIN TYPESCRIPT]\n";
/// End of every typescript (`GUAC_TERMINAL_TYPESCRIPT_FOOTER`).
pub const FOOTER: &[u8] = b"\n[END TYPESCRIPT]\n";
/// Size of the output buffer (bytes per timing entry at most).
pub const BUFFER_SIZE: usize = 4096;
/// Longest delay written to the timing file, in milliseconds.
pub const MAX_DELAY_MS: u64 = 86_400_000;
/// Flushed typescript output handed to the writer at once, mid-frame.
const SEND_BATCH: usize = 256 * 1024;

/// Suffix of the timing file.
pub const TIMING_SUFFIX: &str = ".timing";

/// Bytes produced by [`TypescriptCore`] for the two files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TypescriptOutput {
    /// The data, as the pieces it arrived in (shared, never copied: the file
    /// writer hands them to `writev` as they are).
    pub data: Vec<Bytes>,
    /// Total length of `data`.
    pub data_len: usize,
    pub timing: Vec<u8>,
}

impl TypescriptOutput {
    pub fn is_empty(&self) -> bool {
        self.data_len == 0 && self.timing.is_empty()
    }

    fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.data_len += data.len();
            self.data.push(data);
        }
    }

    /// The data as one buffer.
    pub fn data_bytes(&self) -> Vec<u8> {
        self.data.concat()
    }
}

/// Sans-IO typescript: buffering and timing. Times are milliseconds on any
/// monotonic clock.
///
/// guacd copies output into a 4096-byte buffer and writes buffer + timing line
/// when it is full and more arrives, or at a terminal flush. The files must say
/// the same, but the bytes need not take that detour: the pieces go to
/// [`TypescriptOutput::data`] as they are and only the size of the current,
/// not yet timed, entry is tracked. Bytes can therefore reach the data file
/// before their timing line does; both are complete after a flush.
#[derive(Debug, Clone)]
pub struct TypescriptCore {
    /// Bytes of the entry being filled (≤ [`BUFFER_SIZE`]).
    pending: usize,
    last_flush: u64,
}

impl TypescriptCore {
    /// A typescript started at `now_ms`; its data file must begin with
    /// [`HEADER`].
    pub fn new(now_ms: u64) -> Self {
        TypescriptCore {
            pending: 0,
            last_flush: now_ms,
        }
    }

    /// Adds terminal output to `out`, ending a timing entry whenever the
    /// 4096-byte entry is full and more arrives (as guacd does).
    pub fn write(&mut self, data: Bytes, now_ms: u64, out: &mut TypescriptOutput) {
        let mut left = data.len();
        while left > 0 {
            if self.pending == BUFFER_SIZE {
                self.flush(now_ms, out);
            }
            let take = (BUFFER_SIZE - self.pending).min(left);
            self.pending += take;
            left -= take;
        }
        out.push(data);
    }

    /// Ends the current entry with its timing line (nothing if it is empty).
    pub fn flush(&mut self, now_ms: u64, out: &mut TypescriptOutput) {
        if self.pending == 0 {
            return;
        }
        let elapsed = now_ms.saturating_sub(self.last_flush).min(MAX_DELAY_MS);
        // "%0.6f %i\n" of whole milliseconds, without the float formatter.
        use std::io::Write as _;
        let _ = writeln!(
            out.timing,
            "{}.{:03}000 {}",
            elapsed / 1000,
            elapsed % 1000,
            self.pending
        );
        self.pending = 0;
        self.last_flush = now_ms;
    }

    /// Flushes and appends [`FOOTER`] to the data.
    pub fn finish(&mut self, now_ms: u64, out: &mut TypescriptOutput) {
        self.flush(now_ms, out);
        out.push(Bytes::from_static(FOOTER));
    }

    /// Bytes of the current entry (not yet in a timing line).
    pub fn pending(&self) -> usize {
        self.pending
    }
}

/// An open typescript (data + timing files).
#[derive(Debug)]
pub struct Typescript {
    core: TypescriptCore,
    out: TypescriptOutput,
    data: RecordWriter,
    timing: RecordWriter,
    start: Instant,
    policy: FailurePolicy,
    path: Option<PathBuf>,
}

impl Typescript {
    /// Creates the two files as guacd does and starts writing.
    /// Must be called inside a tokio runtime.
    pub async fn open(settings: &TypescriptSettings) -> Result<Self, RecordError> {
        let dir = settings.path.clone();
        let name = settings.name.clone();
        let create = settings.create_path;
        let existing = settings.write_existing;
        let (data, timing, path) = tokio::task::spawn_blocking(move || {
            let (data, path) = if existing {
                file::open_existing(&dir, &name, create, false)?
            } else {
                file::create_unique(&dir, &name, create)?
            };
            let mut timing_path = path.clone().into_os_string();
            timing_path.push(TIMING_SUFFIX);
            let timing = file::open_sibling(Path::new(&timing_path), existing)?;
            Ok::<_, std::io::Error>((data, timing, path))
        })
        .await
        .map_err(|e| RecordError::Io(std::io::Error::other(e.to_string())))?
        .map_err(RecordError::Io)?;
        tracing::info!(path = %path.display(), "typescript of session will be saved");
        let label = path.display().to_string();
        let key = settings.encryption.as_ref().map(|e| &e.recipient);
        let data = RecordWriter::spawn_file(data, label.clone(), settings.queue_budget, key);
        let timing = RecordWriter::spawn_file(
            timing,
            format!("{label}{TIMING_SUFFIX}"),
            settings.queue_budget,
            key,
        );
        let mut ts = Self::with_writers(data, timing, settings.failure_policy);
        ts.path = Some(path);
        Ok(ts)
    }

    /// A typescript into any two writers; writes the header at once.
    pub fn with_writers(data: RecordWriter, timing: RecordWriter, policy: FailurePolicy) -> Self {
        // A failure here is reported by `failed()` and every later call.
        let _ = data.try_write(Bytes::from_static(HEADER));
        Typescript {
            core: TypescriptCore::new(0),
            out: TypescriptOutput::default(),
            data,
            timing,
            start: Instant::now(),
            policy,
            path: None,
        }
    }

    /// The data file (the timing file is this path + `.timing`).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Records terminal output (raw bytes from the remote end). Never waits.
    /// `Err` means the typescript failed and the policy is `Terminate`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), RecordFailure> {
        self.write_bytes(Bytes::copy_from_slice(data))
    }

    /// [`write`](Self::write) of a shared buffer: kept as is, never copied.
    pub fn write_bytes(&mut self, data: Bytes) -> Result<(), RecordFailure> {
        let now = self.now_ms();
        self.write_bytes_at(data, now)
    }

    /// Flushes buffered output with a timing entry (call at every frame end).
    pub fn flush(&mut self) -> Result<(), RecordFailure> {
        let now = self.now_ms();
        self.flush_at(now)
    }

    /// [`write`](Self::write) at an explicit time (milliseconds since open).
    pub fn write_at(&mut self, data: &[u8], now_ms: u64) -> Result<(), RecordFailure> {
        self.write_bytes_at(Bytes::copy_from_slice(data), now_ms)
    }

    /// [`write_bytes`](Self::write_bytes) at an explicit time.
    pub fn write_bytes_at(&mut self, data: Bytes, now_ms: u64) -> Result<(), RecordFailure> {
        self.core.write(data, now_ms, &mut self.out);
        // Output mid-frame is handed to the writer in batches (one message per
        // SEND_BATCH bytes, not per piece: bulk output would wake the writer
        // thousands of times a second); the files are flushed at frame ends.
        if self.out.data_len >= SEND_BATCH {
            return self.send(false);
        }
        match (self.failed(), self.policy) {
            (Some(f), FailurePolicy::Terminate) => Err(f),
            _ => Ok(()),
        }
    }

    /// [`flush`](Self::flush) at an explicit time (milliseconds since open).
    pub fn flush_at(&mut self, now_ms: u64) -> Result<(), RecordFailure> {
        self.core.flush(now_ms, &mut self.out);
        self.send(true)
    }

    fn send(&mut self, flush: bool) -> Result<(), RecordFailure> {
        let mut r = match self.failed() {
            Some(f) => Err(f),
            None => Ok(()),
        };
        if r.is_ok() && !self.out.is_empty() {
            let parts = std::mem::take(&mut self.out.data);
            let timing = Bytes::from(std::mem::take(&mut self.out.timing));
            r = self
                .data
                .try_write_parts(parts, flush)
                .and_then(|()| self.timing.enqueue(timing, flush));
        }
        self.out.data.clear();
        self.out.data_len = 0;
        self.out.timing.clear();
        match (r, self.policy) {
            (Err(f), FailurePolicy::Terminate) => Err(f),
            _ => Ok(()),
        }
    }

    /// The failure, if either file failed.
    pub fn failed(&self) -> Option<RecordFailure> {
        self.data.failed().or_else(|| self.timing.failed())
    }

    /// Resolves when either file fails.
    pub async fn wait_failure(&self) -> RecordFailure {
        tokio::select! {
            f = self.data.wait_failure() => f,
            f = self.timing.wait_failure() => f,
        }
    }

    /// Flushes, writes the footer and closes both files.
    pub async fn close(self) -> Result<(), RecordFailure> {
        let now = self.now_ms();
        self.close_at(now).await
    }

    /// [`close`](Self::close) at an explicit time (milliseconds since open).
    pub async fn close_at(mut self, now_ms: u64) -> Result<(), RecordFailure> {
        self.core.finish(now_ms, &mut self.out);
        if self.failed().is_none() {
            let parts = std::mem::take(&mut self.out.data);
            let timing = Bytes::from(std::mem::take(&mut self.out.timing));
            let _ = self.data.try_write_parts(parts, false);
            let _ = self.timing.try_write(timing);
        }
        let d = self.data.close().await;
        let t = self.timing.close().await;
        d.and(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_lines_and_buffering() {
        let mut c = TypescriptCore::new(1000);
        let mut out = TypescriptOutput::default();
        c.write(Bytes::from_static(b"hello"), 1200, &mut out);
        assert!(out.timing.is_empty(), "no timing entry before a flush");
        assert_eq!(c.pending(), 5);
        c.flush(1250, &mut out);
        assert_eq!(out.timing, b"0.250000 5\n");
        assert_eq!(out.data_bytes(), b"hello");
        c.flush(1300, &mut out); // nothing buffered: no entry
        assert_eq!(out.timing, b"0.250000 5\n");

        let mut out = TypescriptOutput::default();
        c.write(Bytes::from_static(&[b'x'; 4096]), 2250, &mut out);
        assert!(
            out.timing.is_empty(),
            "a full entry is timed only when more arrives"
        );
        c.write(Bytes::from_static(b"y"), 2250, &mut out);
        assert_eq!(out.timing, b"1.000000 4096\n");
        c.finish(2251, &mut out);
        assert_eq!(out.timing, b"1.000000 4096\n0.001000 1\n");
        assert!(out.data_bytes().ends_with(b"y\n[END TYPESCRIPT]\n"));
    }

    #[test]
    fn delay_is_capped_at_one_day() {
        let mut c = TypescriptCore::new(0);
        let mut out = TypescriptOutput::default();
        c.write(Bytes::from_static(b"a"), 0, &mut out);
        c.flush(MAX_DELAY_MS * 3, &mut out);
        assert_eq!(out.timing, b"86400.000000 1\n");
    }
}
