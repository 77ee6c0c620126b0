//! A writer that never blocks the live session.
//!
//! [`RecordWriter::try_write`] only enqueues: a tokio task does the writing
//! (optionally encrypting). If more than the byte budget is waiting, or a write
//! fails, the recording *fails*: the first failure is kept, every later
//! `try_write` returns it, and [`RecordWriter::failed`] /
//! [`RecordWriter::wait_failure`] let the session notice and apply its
//! [`FailurePolicy`](crate::FailurePolicy). Data is never silently skipped:
//! once failed, nothing more is written (a recording with holes would be
//! misleading).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::crypto::{Encryptor, PublicKey, WRITE_CHUNK};

/// Why a recording stopped being written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordFailure {
    #[error("recording of {label} fell behind: more than {budget} bytes waiting for the disk")]
    Backlog { label: String, budget: usize },
    #[error("writing {label} failed: {message}")]
    Io {
        label: String,
        kind: io::ErrorKind,
        message: String,
    },
    #[error("encrypting {label} failed: {message}")]
    Encryption { label: String, message: String },
    #[error("the writer of {label} has stopped")]
    Stopped { label: String },
}

enum Cmd {
    Data { data: Bytes, flush: bool },
    Parts { parts: Vec<Bytes>, flush: bool },
    Flush,
}

/// Size of the write buffer in front of the file.
const BUF_CAPACITY: usize = 64 * 1024;

/// The asynchronous writer of one file.
#[derive(Debug)]
pub struct RecordWriter {
    tx: mpsc::UnboundedSender<Cmd>,
    queued: Arc<AtomicUsize>,
    budget: usize,
    failure: Arc<watch::Sender<Option<RecordFailure>>>,
    task: JoinHandle<()>,
    label: Arc<str>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cmd::Data { data, flush } => write!(f, "Data({} bytes, flush={flush})", data.len()),
            Cmd::Parts { parts, flush } => {
                write!(f, "Parts({} pieces, flush={flush})", parts.len())
            }
            Cmd::Flush => f.write_str("Flush"),
        }
    }
}

fn fail(tx: &watch::Sender<Option<RecordFailure>>, failure: RecordFailure) -> RecordFailure {
    let mut first = None;
    tx.send_if_modified(|cur| match cur {
        Some(existing) => {
            first = Some(existing.clone());
            false
        }
        None => {
            tracing::warn!(error = %failure, "recording failed");
            *cur = Some(failure.clone());
            true
        }
    });
    first.unwrap_or(failure)
}

impl RecordWriter {
    /// Starts the writer task (must be called inside a tokio runtime).
    /// `label` names the file in errors and logs (a path, never data).
    /// `budget` is how many bytes may wait before the recording fails; one
    /// chunk larger than the budget is still accepted when nothing waits.
    /// With `encryption`, the file is written in the [`crate::crypto`] format.
    pub fn spawn<W>(
        writer: W,
        label: impl Into<String>,
        budget: usize,
        encryption: Option<&PublicKey>,
    ) -> Self
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        Self::start(
            Backend::Async(BufWriter::with_capacity(BUF_CAPACITY, writer)),
            label,
            budget,
            encryption,
        )
    }

    /// Like [`spawn`](Self::spawn) for a file: writes go to the OS from the
    /// queued buffers themselves (no copy), one `writev` on tokio's blocking
    /// pool per batch of whatever is queued (up to 1 MiB). Every write reaches
    /// the OS, so a flush only seals a partial encrypted chunk.
    pub fn spawn_file(
        file: std::fs::File,
        label: impl Into<String>,
        budget: usize,
        encryption: Option<&PublicKey>,
    ) -> Self {
        Self::start::<tokio::io::Sink>(Backend::File(Some(file)), label, budget, encryption)
    }

    fn start<W>(
        backend: Backend<W>,
        label: impl Into<String>,
        budget: usize,
        encryption: Option<&PublicKey>,
    ) -> Self
    where
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let label: Arc<str> = Arc::from(label.into());
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let (failure, _) = watch::channel(None);
        let failure = Arc::new(failure);
        let encryptor = encryption.map(Encryptor::new);
        let task = tokio::spawn(run(
            backend,
            rx,
            budget,
            queued.clone(),
            failure.clone(),
            label.clone(),
            encryptor,
        ));
        RecordWriter {
            tx,
            queued,
            budget,
            failure,
            task,
            label,
        }
    }

    /// The label given to [`spawn`](Self::spawn).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Enqueues `data` without waiting.
    pub fn try_write(&self, data: Bytes) -> Result<(), RecordFailure> {
        self.enqueue(data, false)
    }

    /// Enqueues `data` and asks for it to reach the OS once written.
    pub fn try_write_flush(&self, data: Bytes) -> Result<(), RecordFailure> {
        self.enqueue(data, true)
    }

    /// Asks for everything enqueued so far to reach the OS.
    pub fn flush(&self) -> Result<(), RecordFailure> {
        if let Some(f) = self.failed() {
            return Err(f);
        }
        self.tx.send(Cmd::Flush).map_err(|_| self.stopped())
    }

    fn stopped(&self) -> RecordFailure {
        fail(
            &self.failure,
            RecordFailure::Stopped {
                label: self.label.to_string(),
            },
        )
    }

    /// Enqueues several buffers at once (written in order, without copying).
    pub fn try_write_parts(&self, parts: Vec<Bytes>, flush: bool) -> Result<(), RecordFailure> {
        let len = parts.iter().map(Bytes::len).sum();
        self.enqueue_cmd(len, Cmd::Parts { parts, flush }, flush)
    }

    /// Enqueues `data`, with a flush once written if `flush`.
    pub fn enqueue(&self, data: Bytes, flush: bool) -> Result<(), RecordFailure> {
        self.enqueue_cmd(data.len(), Cmd::Data { data, flush }, flush)
    }

    fn enqueue_cmd(&self, len: usize, cmd: Cmd, flush: bool) -> Result<(), RecordFailure> {
        if let Some(f) = self.failed() {
            return Err(f);
        }
        if len == 0 {
            return if flush { self.flush() } else { Ok(()) };
        }
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.budget {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(fail(
                &self.failure,
                RecordFailure::Backlog {
                    label: self.label.to_string(),
                    budget: self.budget,
                },
            ));
        }
        self.tx.send(cmd).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.stopped()
        })
    }

    /// Bytes accepted but not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The failure, if the recording has failed.
    pub fn failed(&self) -> Option<RecordFailure> {
        self.failure.borrow().clone()
    }

    /// Resolves when the recording fails (never, if it does not).
    pub async fn wait_failure(&self) -> RecordFailure {
        let mut rx = self.failure.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(f) => match &*f {
                Some(f) => f.clone(),
                None => std::future::pending().await,
            },
            Err(_) => std::future::pending().await,
        }
    }

    /// Writes everything enqueued, finishes the file (final encrypted chunk),
    /// flushes and closes it (releasing its lock). Returns the failure, if the
    /// recording failed at any point.
    pub async fn close(self) -> Result<(), RecordFailure> {
        let RecordWriter {
            tx,
            task,
            failure,
            label,
            ..
        } = self;
        drop(tx);
        if task.await.is_err() {
            fail(
                &failure,
                RecordFailure::Stopped {
                    label: label.to_string(),
                },
            );
        }
        let f = failure.borrow().clone();
        match f {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

/// Encodes queued data for the file: as is, or sealed in encrypted chunks.
/// Output accumulates in `batch` for [`Backend::write`].
struct Encoder {
    enc: Option<(Encryptor, Vec<u8>)>,
    batch: Vec<Bytes>,
    batch_len: usize,
}

impl Encoder {
    fn push(&mut self, b: Bytes) {
        self.batch_len += b.len();
        self.batch.push(b);
    }

    fn seal(&mut self, last: bool) -> Result<(), Fail> {
        if let Some((enc, pending)) = &mut self.enc {
            let mut sealed = Vec::with_capacity(pending.len() + 64);
            enc.seal_chunk(pending, last, &mut sealed)
                .map_err(Fail::Crypto)?;
            pending.clear();
            self.push(Bytes::from(sealed));
        }
        Ok(())
    }

    fn write(&mut self, data: Bytes) -> Result<(), Fail> {
        if self.enc.is_none() {
            self.push(data);
            return Ok(());
        }
        let mut rest = &data[..];
        while !rest.is_empty() {
            let full = {
                let Some((_, pending)) = &mut self.enc else {
                    break;
                };
                let take = (WRITE_CHUNK - pending.len()).min(rest.len());
                pending.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                pending.len() == WRITE_CHUNK
            };
            if full {
                self.seal(false)?;
            }
        }
        Ok(())
    }

    /// Seals a partial chunk so a flush puts everything written so far on disk.
    fn flush(&mut self) -> Result<(), Fail> {
        match &self.enc {
            Some((_, pending)) if !pending.is_empty() => self.seal(false),
            _ => Ok(()),
        }
    }
}

/// Where encoded bytes go.
enum Backend<W> {
    /// Any async writer (pipes, tests), behind a buffer.
    Async(BufWriter<W>),
    /// A file, written on tokio's blocking pool straight from the queued
    /// buffers: no copy, one `writev` and one hand-off per batch.
    File(Option<std::fs::File>),
}

/// Batches larger than this are written before more is taken from the queue.
const MAX_BATCH: usize = 1 << 20;

impl<W: AsyncWrite + Unpin> Backend<W> {
    async fn write(&mut self, batch: &mut Vec<Bytes>, flush: bool) -> Result<(), Fail> {
        match self {
            Backend::Async(out) => {
                for b in batch.drain(..) {
                    out.write_all(&b).await.map_err(Fail::Io)?;
                }
                if flush {
                    out.flush().await.map_err(Fail::Io)?;
                }
                Ok(())
            }
            Backend::File(slot) => {
                if batch.is_empty() {
                    return Ok(());
                }
                let Some(mut file) = slot.take() else {
                    return Err(Fail::Io(io::ErrorKind::BrokenPipe.into()));
                };
                let bufs = std::mem::take(batch);
                let (file, bufs, r) = tokio::task::spawn_blocking(move || {
                    let r = write_all_vectored(&mut file, &bufs);
                    (file, bufs, r)
                })
                .await
                .map_err(|e| Fail::Io(io::Error::other(e.to_string())))?;
                *slot = Some(file);
                // Keep the Vec's allocation for the next batch.
                *batch = bufs;
                batch.clear();
                r.map_err(Fail::Io)
            }
        }
    }

    async fn close(&mut self) -> Result<(), Fail> {
        match self {
            Backend::Async(out) => {
                out.flush().await.map_err(Fail::Io)?;
                out.shutdown().await.map_err(Fail::Io)
            }
            Backend::File(slot) => {
                slot.take();
                Ok(())
            }
        }
    }

    async fn abandon(&mut self) {
        match self {
            Backend::Async(out) => {
                let _ = out.shutdown().await;
            }
            Backend::File(slot) => {
                slot.take();
            }
        }
    }
}

/// `write_all` of many buffers with `writev` (at most 1024 slices a call).
fn write_all_vectored(file: &mut std::fs::File, bufs: &[Bytes]) -> io::Result<()> {
    use std::io::{IoSlice, Write};
    for group in bufs.chunks(1024) {
        let mut slices: Vec<IoSlice<'_>> = group.iter().map(|b| IoSlice::new(b)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match file.write_vectored(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

enum Fail {
    Io(io::Error),
    Crypto(crate::crypto::KeyError),
}

impl Fail {
    fn into_failure(self, label: &str) -> RecordFailure {
        match self {
            Fail::Io(e) => RecordFailure::Io {
                label: label.to_owned(),
                kind: e.kind(),
                message: e.to_string(),
            },
            Fail::Crypto(e) => RecordFailure::Encryption {
                label: label.to_owned(),
                message: e.to_string(),
            },
        }
    }
}

async fn run<W: AsyncWrite + Unpin>(
    mut backend: Backend<W>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    budget: usize,
    queued: Arc<AtomicUsize>,
    failure: Arc<watch::Sender<Option<RecordFailure>>>,
    label: Arc<str>,
    encryptor: Option<Result<(Encryptor, Vec<u8>), crate::crypto::KeyError>>,
) {
    let mut enc = Encoder {
        enc: None,
        batch: Vec::new(),
        batch_len: 0,
    };
    let result: Result<(), Fail> = async {
        if let Some(e) = encryptor {
            let (encryptor, header) = e.map_err(Fail::Crypto)?;
            enc.push(Bytes::from(header));
            enc.enc = Some((encryptor, Vec::with_capacity(WRITE_CHUNK)));
        }
        // Everything already queued is encoded as one batch, and written once a
        // flush is due or `hold` bytes wait (small frames' output is not written
        // piece by piece). A flush asked for while more data is queued is done
        // once that data is written: under sustained output the file is flushed
        // when the queue runs dry (one system call for many frames), never later.
        let hold = (budget / 2).clamp(1, BUF_CAPACITY);
        let mut flush_due = false;
        let mut plain = 0;
        while let Some(first) = rx.recv().await {
            let mut cmd = Some(first);
            while let Some(c) = cmd.take() {
                match c {
                    Cmd::Data { data, flush } => {
                        plain += data.len();
                        flush_due |= flush;
                        enc.write(data)?;
                    }
                    Cmd::Parts { parts, flush } => {
                        flush_due |= flush;
                        for data in parts {
                            plain += data.len();
                            enc.write(data)?;
                        }
                    }
                    Cmd::Flush => flush_due = true,
                }
                if enc.batch_len < MAX_BATCH {
                    cmd = rx.try_recv().ok();
                }
            }
            let flush = flush_due && rx.is_empty();
            if !flush && enc.batch_len < hold {
                continue;
            }
            if flush {
                enc.flush()?;
                flush_due = false;
            }
            let r = backend.write(&mut enc.batch, flush).await;
            enc.batch_len = 0;
            queued.fetch_sub(std::mem::take(&mut plain), Ordering::AcqRel);
            r?;
        }
        enc.seal(true)?;
        backend.write(&mut enc.batch, true).await?;
        backend.close().await
    }
    .await;
    if let Err(e) = result {
        fail(&failure, e.into_failure(&label));
        // Best effort: push out what was buffered and close the file.
        backend.abandon().await;
    }
}
