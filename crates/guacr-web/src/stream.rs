//! The byte stream a tunnel hands to the session core.
//!
//! The core writes whole instructions with each `write` (it batches complete
//! instructions), so every write becomes one tunnel message: one WebSocket
//! text frame, or one chunk of an HTTP read response. Reads deliver the
//! instructions the browser sent (internal-opcode ones are answered by the
//! tunnel and never reach the core).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// Bytes relayed by one tunnel, for the audit log.
#[derive(Debug, Default)]
pub struct Counters {
    /// From the browser to the core.
    pub bytes_in: AtomicU64,
    /// From the core to the browser.
    pub bytes_out: AtomicU64,
}

impl Counters {
    pub fn get(&self) -> (u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }
}

/// The core's end of a tunnel: `AsyncRead` of browser instructions,
/// `AsyncWrite` of server instructions (one message per write).
pub struct TunnelStream {
    rx: mpsc::Receiver<Bytes>,
    pending: Bytes,
    tx: PollSender<Bytes>,
    counters: Arc<Counters>,
}

/// The tunnel's end: send browser instructions, receive server messages.
pub struct TunnelPeer {
    pub to_core: mpsc::Sender<Bytes>,
    pub from_core: mpsc::Receiver<Bytes>,
    pub counters: Arc<Counters>,
}

/// A connected pair with `depth` messages of buffering each way.
pub fn pair(depth: usize) -> (TunnelStream, TunnelPeer) {
    let (in_tx, in_rx) = mpsc::channel(depth);
    let (out_tx, out_rx) = mpsc::channel(depth);
    let counters = Arc::new(Counters::default());
    (
        TunnelStream {
            rx: in_rx,
            pending: Bytes::new(),
            tx: PollSender::new(out_tx),
            counters: counters.clone(),
        },
        TunnelPeer {
            to_core: in_tx,
            from_core: out_rx,
            counters,
        },
    )
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.pending.is_empty() {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(b)) => {
                    this.counters
                        .bytes_in
                        .fetch_add(b.len() as u64, Ordering::Relaxed);
                    this.pending = b;
                }
                // The browser side is gone: end of stream.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match this.tx.poll_reserve(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Poll::Pending => return Poll::Pending,
        }
        if this.tx.send_item(Bytes::copy_from_slice(buf)).is_err() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        this.counters
            .bytes_out
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        // The whole buffer, always: one write is one message.
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}
