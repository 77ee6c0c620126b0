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
const SEND_BATCH: usize = 64 * 1024;

/// Suffix of the timing file.
pub const TIMING_SUFFIX: &str = ".timing";

/// Bytes produced by [`TypescriptCore`] for the two files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TypescriptOutput {
    pub data: Vec<u8>,
    pub timing: Vec<u8>,
}

impl TypescriptOutput {
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && self.timing.is_empty()
    }
}

/// Sans-IO typescript: buffering and timing. Times are milliseconds on any
/// monotonic clock.
#[derive(Debug, Clone)]
pub struct TypescriptCore {
    buf: Vec<u8>,
    last_flush: u64,
}

impl TypescriptCore {
    /// A typescript started at `now_ms`; its data file must begin with
    /// [`HEADER`].
    pub fn new(now_ms: u64) -> Self {
        TypescriptCore {
            buf: Vec::with_capacity(BUFFER_SIZE),
            last_flush: now_ms,
        }
    }

    /// Buffers terminal output, flushing into `out` whenever the buffer is
    /// full and more arrives (as guacd does byte by byte).
    pub fn write(&mut self, mut data: &[u8], now_ms: u64, out: &mut TypescriptOutput) {
        while !data.is_empty() {
            if self.buf.len() == BUFFER_SIZE {
                self.flush(now_ms, out);
            }
            let take = (BUFFER_SIZE - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    /// Moves buffered output into `out` with its timing line (nothing if the
    /// buffer is empty).
    pub fn flush(&mut self, now_ms: u64, out: &mut TypescriptOutput) {
        if self.buf.is_empty() {
            return;
        }
        let elapsed = now_ms.saturating_sub(self.last_flush).min(MAX_DELAY_MS);
        out.timing.extend_from_slice(
            format!("{:.6} {}\n", elapsed as f64 / 1000.0, self.buf.len()).as_bytes(),
        );
        out.data.extend_from_slice(&self.buf);
        self.buf.clear();
        self.last_flush = now_ms;
    }

    /// Flushes and appends [`FOOTER`] to the data.
    pub fn finish(&mut self, now_ms: u64, out: &mut TypescriptOutput) {
        self.flush(now_ms, out);
        out.data.extend_from_slice(FOOTER);
    }

    /// Bytes buffered and not yet flushed.
    pub fn pending(&self) -> usize {
        self.buf.len()
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
        let data = RecordWriter::spawn(
            tokio::fs::File::from_std(data),
            label.clone(),
            settings.queue_budget,
            key,
        );
        let timing = RecordWriter::spawn(
            tokio::fs::File::from_std(timing),
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
        let now = self.now_ms();
        self.write_at(data, now)
    }

    /// Flushes buffered output with a timing entry (call at every frame end).
    pub fn flush(&mut self) -> Result<(), RecordFailure> {
        let now = self.now_ms();
        self.flush_at(now)
    }

    /// [`write`](Self::write) at an explicit time (milliseconds since open).
    pub fn write_at(&mut self, data: &[u8], now_ms: u64) -> Result<(), RecordFailure> {
        self.core.write(data, now_ms, &mut self.out);
        // Full buffers mid-frame are handed to the writer in batches (one message per
        // SEND_BATCH bytes, not per 4 KiB entry: bulk output would wake the writer
        // thousands of times a second); the files are flushed at frame ends.
        if self.out.data.len() >= SEND_BATCH {
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
            let data = Bytes::from(std::mem::take(&mut self.out.data));
            let timing = Bytes::from(std::mem::take(&mut self.out.timing));
            r = if flush {
                self.data
                    .try_write_flush(data)
                    .and_then(|()| self.timing.try_write_flush(timing))
            } else {
                self.data
                    .try_write(data)
                    .and_then(|()| self.timing.try_write(timing))
            };
        }
        self.out.data.clear();
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
            let data = Bytes::from(std::mem::take(&mut self.out.data));
            let timing = Bytes::from(std::mem::take(&mut self.out.timing));
            let _ = self.data.try_write(data);
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
        c.write(b"hello", 1200, &mut out);
        assert!(out.is_empty());
        c.flush(1250, &mut out);
        assert_eq!(out.timing, b"0.250000 5\n");
        assert_eq!(out.data, b"hello");
        c.flush(1300, &mut out); // nothing buffered: no entry
        assert_eq!(out.timing, b"0.250000 5\n");

        let mut out = TypescriptOutput::default();
        c.write(&[b'x'; 4096], 2250, &mut out);
        assert!(
            out.is_empty(),
            "a full buffer is flushed only when more arrives"
        );
        c.write(b"y", 2250, &mut out);
        assert_eq!(out.timing, b"1.000000 4096\n");
        c.finish(2251, &mut out);
        assert_eq!(out.timing, b"1.000000 4096\n0.001000 1\n");
        assert!(out.data.ends_with(b"y\n[END TYPESCRIPT]\n"));
    }

    #[test]
    fn delay_is_capped_at_one_day() {
        let mut c = TypescriptCore::new(0);
        let mut out = TypescriptOutput::default();
        c.write(b"a", 0, &mut out);
        c.flush(MAX_DELAY_MS * 3, &mut out);
        assert_eq!(out.timing, b"86400.000000 1\n");
    }
}
