//! Whole-screen frames of a graphical session, for video transports.
//!
//! A graphical handler (VNC, RDP, …) owns the session's framebuffer. A video
//! transport (WebRTC) subscribes to the session's [`VideoFeed`]; while anyone
//! is subscribed, the handler publishes a copy of the screen after every frame
//! that changed it, and a full one whenever [`VideoFeed::take_refresh`] says a
//! new subscriber is waiting. With no subscriber, [`VideoFeed::publish`] costs
//! one atomic load: terminal handlers and sessions without video pay nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Notify, watch};

/// One screen: `width × height` pixels `0x00RRGGBB`, row-major, no padding.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    pub width: u32,
    pub height: u32,
    pub pixels: Arc<[u32]>,
    /// Increases by one with every published frame of this session.
    pub seq: u64,
}

/// The latest screen of a session, for whoever watches it.
#[derive(Debug)]
pub struct VideoFeed {
    tx: watch::Sender<Option<Arc<VideoFrame>>>,
    seq: AtomicU64,
    refresh: AtomicBool,
    refresh_notify: Notify,
}

impl Default for VideoFeed {
    fn default() -> Self {
        VideoFeed::new()
    }
}

impl VideoFeed {
    pub fn new() -> VideoFeed {
        VideoFeed {
            tx: watch::channel(None).0,
            seq: AtomicU64::new(0),
            refresh: AtomicBool::new(false),
            refresh_notify: Notify::new(),
        }
    }

    /// Whether anyone watches (a handler skips the copy otherwise).
    pub fn wanted(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Starts watching. The handler is asked for a full frame right away
    /// ([`take_refresh`](Self::take_refresh) / [`refresh_requested`](Self::refresh_requested)).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<VideoFrame>>> {
        let rx = self.tx.subscribe();
        self.refresh.store(true, Ordering::Release);
        self.refresh_notify.notify_one();
        rx
    }

    /// True once after a new subscriber arrived: publish the whole screen now
    /// even if nothing changed.
    pub fn take_refresh(&self) -> bool {
        self.refresh.swap(false, Ordering::AcqRel)
    }

    /// Resolves when a subscriber waits for a full frame (for a handler's
    /// `select!` loop, so an idle screen still answers a new subscriber).
    /// Cancel-safe; it does not clear the request: call
    /// [`take_refresh`](Self::take_refresh) when publishing.
    pub async fn refresh_requested(&self) {
        loop {
            let notified = self.refresh_notify.notified();
            if self.refresh.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Publishes a screen (`stride` pixels per source row) if anyone watches.
    /// Returns whether it was published.
    pub fn publish(&self, width: u32, height: u32, pixels: &[u32], stride: usize) -> bool {
        if !self.wanted() {
            return false;
        }
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 || stride < w || pixels.len() < stride * (h - 1) + w {
            return false;
        }
        let mut out = Vec::with_capacity(w * h);
        for row in pixels.chunks(stride).take(h) {
            out.extend_from_slice(&row[..w]);
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        self.tx.send_replace(Some(Arc::new(VideoFrame {
            width,
            height,
            pixels: out.into(),
            seq,
        })));
        true
    }

    /// The last published frame, if any.
    pub fn latest(&self) -> Option<Arc<VideoFrame>> {
        self.tx.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_only_while_watched() {
        let feed = VideoFeed::new();
        assert!(!feed.publish(2, 1, &[1, 2], 2));
        assert!(feed.latest().is_none());
        let rx = feed.subscribe();
        assert!(feed.take_refresh());
        assert!(!feed.take_refresh());
        assert!(feed.publish(2, 2, &[1, 2, 9, 3, 4, 9], 3));
        let f = rx
            .borrow()
            .clone()
            .map(|f| (f.width, f.height, f.pixels.to_vec(), f.seq));
        assert_eq!(f, Some((2, 2, vec![1, 2, 3, 4], 1)));
        drop(rx);
        assert!(!feed.wanted());
    }

    #[test]
    fn rejects_short_buffers() {
        let feed = VideoFeed::new();
        let _rx = feed.subscribe();
        assert!(!feed.publish(4, 2, &[0; 7], 4));
        assert!(!feed.publish(4, 2, &[0; 8], 3));
        assert!(!feed.publish(0, 2, &[], 0));
        assert!(feed.publish(4, 2, &[0; 8], 4));
    }

    #[tokio::test]
    async fn refresh_wakes_an_idle_handler() {
        let feed = Arc::new(VideoFeed::new());
        let f = feed.clone();
        let waiter = tokio::spawn(async move { f.refresh_requested().await });
        tokio::task::yield_now().await;
        let _rx = feed.subscribe();
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(
            matches!(woke, Ok(Ok(()))),
            "refresh_requested did not resolve"
        );
    }
}
