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
        let label: Arc<str> = Arc::from(label.into());
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let (failure, _) = watch::channel(None);
        let failure = Arc::new(failure);
        let encryptor = encryption.map(Encryptor::new);
        let task = tokio::spawn(run(
            BufWriter::with_capacity(BUF_CAPACITY, writer),
            rx,
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

    fn enqueue(&self, data: Bytes, flush: bool) -> Result<(), RecordFailure> {
        if let Some(f) = self.failed() {
            return Err(f);
        }
        if data.is_empty() {
            return if flush { self.flush() } else { Ok(()) };
        }
        let len = data.len();
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
        self.tx.send(Cmd::Data { data, flush }).map_err(|_| {
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

struct Sink<W: AsyncWrite + Unpin> {
    out: BufWriter<W>,
    enc: Option<(Encryptor, Vec<u8>)>,
    sealed: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> Sink<W> {
    async fn write(&mut self, mut data: &[u8]) -> Result<(), Fail> {
        let Some((enc, pending)) = &mut self.enc else {
            return self.out.write_all(data).await.map_err(Fail::Io);
        };
        while !data.is_empty() {
            let take = (WRITE_CHUNK - pending.len()).min(data.len());
            pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if pending.len() == WRITE_CHUNK {
                self.sealed.clear();
                enc.seal_chunk(pending, false, &mut self.sealed)
                    .map_err(Fail::Crypto)?;
                pending.clear();
                self.out.write_all(&self.sealed).await.map_err(Fail::Io)?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Fail> {
        if let Some((enc, pending)) = &mut self.enc
            && !pending.is_empty()
        {
            self.sealed.clear();
            enc.seal_chunk(pending, false, &mut self.sealed)
                .map_err(Fail::Crypto)?;
            pending.clear();
            self.out.write_all(&self.sealed).await.map_err(Fail::Io)?;
        }
        self.out.flush().await.map_err(Fail::Io)
    }

    async fn finish(&mut self) -> Result<(), Fail> {
        if let Some((enc, pending)) = &mut self.enc {
            self.sealed.clear();
            enc.seal_chunk(pending, true, &mut self.sealed)
                .map_err(Fail::Crypto)?;
            pending.clear();
            self.out.write_all(&self.sealed).await.map_err(Fail::Io)?;
        }
        self.out.flush().await.map_err(Fail::Io)?;
        self.out.shutdown().await.map_err(Fail::Io)
    }
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
    out: BufWriter<W>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    queued: Arc<AtomicUsize>,
    failure: Arc<watch::Sender<Option<RecordFailure>>>,
    label: Arc<str>,
    encryptor: Option<Result<(Encryptor, Vec<u8>), crate::crypto::KeyError>>,
) {
    let mut sink = Sink {
        out,
        enc: None,
        sealed: Vec::new(),
    };
    let result: Result<(), Fail> = async {
        if let Some(e) = encryptor {
            let (enc, header) = e.map_err(Fail::Crypto)?;
            sink.out.write_all(&header).await.map_err(Fail::Io)?;
            sink.enc = Some((enc, Vec::with_capacity(WRITE_CHUNK)));
        }
        // A flush asked for while more data is already queued is done once that
        // data is written: under sustained output the file is flushed when the
        // queue runs dry (one system call for many frames), never later.
        let mut flush_due = false;
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Cmd::Data { data, flush } => {
                    let r = sink.write(&data).await;
                    queued.fetch_sub(data.len(), Ordering::AcqRel);
                    r?;
                    flush_due |= flush;
                }
                Cmd::Flush => flush_due = true,
            }
            if flush_due && rx.is_empty() {
                sink.flush().await?;
                flush_due = false;
            }
        }
        sink.finish().await
    }
    .await;
    if let Err(e) = result {
        fail(&failure, e.into_failure(&label));
        // Best effort: push out what was buffered and close the file.
        let _ = sink.out.shutdown().await;
    }
}
