//! Whole-screen frames of a graphical session, for video transports.
//!
//! A graphical handler (VNC, RDP, …) owns the session's framebuffer. A video
//! transport (WebRTC) subscribes to the session's [`VideoFeed`]; while anyone
//! is subscribed, the handler publishes a copy of the screen after every frame
//! that changed it, and a full one whenever [`VideoFeed::take_refresh`] says a
//! new subscriber is waiting. With no subscriber, [`VideoFeed::publish`] costs
//! one atomic load: terminal handlers and sessions without video pay nothing.
//!
//! A user whose browser shows the video draws nothing of layer 0 from `img`
//! (its transport filters that out). The feed knows those users
//! ([`VideoFeed::subscribe_as`]): while every user of a session is one and
//! nothing records, the handler need not encode images at all
//! ([`Session::images_wanted`](crate::Session::images_wanted)). When a user's
//! video stops ([`VideoFeed::viewer_stopped`]), the handler repaints that
//! user's layer 0 in full ([`VideoFeed::take_repaints`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// Users that take the picture from the video, not from `img`.
    viewers: Mutex<Vec<String>>,
    /// Users whose video stopped: they need a full `img` repaint.
    repaints: Mutex<Vec<String>>,
    /// Frames whose image encoding a handler deferred (nobody wanted `img`).
    deferred: AtomicU64,
}

fn lock(m: &Mutex<Vec<String>>) -> MutexGuard<'_, Vec<String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
            viewers: Mutex::new(Vec::new()),
            repaints: Mutex::new(Vec::new()),
            deferred: AtomicU64::new(0),
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

    /// [`subscribe`](Self::subscribe) for a user of the session whose
    /// browser shows the video instead of drawing layer 0 from `img`.
    pub fn subscribe_as(&self, user_id: &str) -> watch::Receiver<Option<Arc<VideoFrame>>> {
        {
            let mut v = lock(&self.viewers);
            if !v.iter().any(|u| u == user_id) {
                v.push(user_id.to_owned());
            }
        }
        lock(&self.repaints).retain(|u| u != user_id);
        self.subscribe()
    }

    /// Whether this user takes the picture from the video.
    pub fn is_viewer(&self, user_id: &str) -> bool {
        lock(&self.viewers).iter().any(|u| u == user_id)
    }

    /// Whether every one of `users` takes the picture from the video (one
    /// lock for all of them: this runs at every frame of a graphical session).
    pub fn all_viewers<'a>(&self, mut users: impl Iterator<Item = &'a str>) -> bool {
        let v = lock(&self.viewers);
        users.all(|u| v.iter().any(|x| x == u))
    }

    /// This user's video stopped (its encoder failed): from now on it draws
    /// from `img`, and the handler is asked to repaint its layer 0 in full.
    pub fn viewer_stopped(&self, user_id: &str) {
        let was = {
            let mut v = lock(&self.viewers);
            let n = v.len();
            v.retain(|u| u != user_id);
            v.len() != n
        };
        if was {
            let mut r = lock(&self.repaints);
            if !r.iter().any(|u| u == user_id) {
                r.push(user_id.to_owned());
            }
            drop(r);
            self.refresh_notify.notify_one();
        }
    }

    /// The user left the session: nothing more to do for it.
    pub fn forget(&self, user_id: &str) {
        lock(&self.viewers).retain(|u| u != user_id);
        lock(&self.repaints).retain(|u| u != user_id);
    }

    /// Users waiting for a full repaint (see [`viewer_stopped`](Self::viewer_stopped)).
    pub fn take_repaints(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.repaints))
    }

    /// A handler skipped encoding a frame's images because nobody wanted them.
    pub fn note_deferred(&self) {
        self.deferred.fetch_add(1, Ordering::Relaxed);
    }

    /// How many frames' images were deferred so far.
    pub fn deferred_frames(&self) -> u64 {
        self.deferred.load(Ordering::Relaxed)
    }

    /// True once after a new subscriber arrived: publish the whole screen now
    /// even if nothing changed.
    pub fn take_refresh(&self) -> bool {
        self.refresh.swap(false, Ordering::AcqRel)
    }

    /// Resolves when a subscriber waits for a full frame or a user waits for
    /// a repaint (for a handler's `select!` loop, so an idle screen still
    /// answers). Cancel-safe; it does not clear the requests: call
    /// [`take_refresh`](Self::take_refresh) when publishing and
    /// [`take_repaints`](Self::take_repaints).
    pub async fn refresh_requested(&self) {
        loop {
            let notified = self.refresh_notify.notified();
            if self.refresh.load(Ordering::Acquire) || !lock(&self.repaints).is_empty() {
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
    async fn a_stopped_viewer_asks_for_a_repaint_once() {
        let feed = Arc::new(VideoFeed::new());
        assert!(!feed.is_viewer("u1"));
        let rx = feed.subscribe_as("u1");
        assert!(feed.is_viewer("u1") && !feed.is_viewer("u2"));
        assert!(feed.take_refresh());
        // A user that never watched asks for nothing.
        feed.viewer_stopped("u2");
        assert!(feed.take_repaints().is_empty());
        let f = feed.clone();
        let waiter = tokio::spawn(async move { f.refresh_requested().await });
        tokio::task::yield_now().await;
        drop(rx);
        feed.viewer_stopped("u1");
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
        assert!(
            matches!(woke, Ok(Ok(()))),
            "a repaint did not wake the handler"
        );
        assert!(!feed.is_viewer("u1"));
        assert_eq!(feed.take_repaints(), vec!["u1".to_owned()]);
        assert!(feed.take_repaints().is_empty());
        // Leaving clears a pending repaint.
        let _rx = feed.subscribe_as("u3");
        feed.viewer_stopped("u3");
        feed.forget("u3");
        assert!(feed.take_repaints().is_empty());
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
