//! The settings every graphical handler (VNC, RDP, …) takes from the daemon.

use std::sync::Arc;
use std::time::Duration;

use crate::EncodePool;

/// What the daemon sets on a graphical handler; `None` = the default.
#[derive(Clone, Default)]
pub struct GraphicalTuning {
    /// TCP connect timeout (default 10 s).
    pub connect_timeout: Option<Duration>,
    /// Longest time for the server's handshake (default: the handler's).
    pub handshake_timeout: Option<Duration>,
    /// Minimum gap between frames while the screen keeps changing (default 40 ms).
    pub frame_interval: Option<Duration>,
    /// Frames a user may leave unacknowledged before drawing is held back (default 3).
    pub max_unacked_frames: Option<usize>,
    /// Encoding pool; `None` = the display crate's shared pool.
    pub pool: Option<Arc<EncodePool>>,
}

impl std::fmt::Debug for GraphicalTuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphicalTuning")
            .field("connect_timeout", &self.connect_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("frame_interval", &self.frame_interval)
            .field("max_unacked_frames", &self.max_unacked_frames)
            .finish_non_exhaustive()
    }
}

/// [`GraphicalTuning`] with every default filled in.
#[derive(Clone)]
pub struct Tuning {
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
    /// At least 1 ms.
    pub frame_interval: Duration,
    pub max_unacked: usize,
    /// Longest a frame is held back for lagging clients (2 s).
    pub max_hold: Duration,
    pub pool: Option<Arc<EncodePool>>,
}

impl GraphicalTuning {
    /// The settings in effect, with `handshake` as the handshake default.
    pub fn resolve(&self, handshake: Duration) -> Tuning {
        Tuning {
            connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(10)),
            handshake_timeout: self.handshake_timeout.unwrap_or(handshake),
            frame_interval: self
                .frame_interval
                .unwrap_or(Duration::from_millis(40))
                .max(Duration::from_millis(1)),
            max_unacked: self.max_unacked_frames.unwrap_or(3),
            max_hold: Duration::from_secs(2),
            pool: self.pool.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let t = GraphicalTuning::default().resolve(Duration::from_secs(15));
        assert_eq!(
            (
                t.connect_timeout,
                t.handshake_timeout,
                t.frame_interval,
                t.max_unacked
            ),
            (
                Duration::from_secs(10),
                Duration::from_secs(15),
                Duration::from_millis(40),
                3
            )
        );
        let t = GraphicalTuning {
            frame_interval: Some(Duration::ZERO),
            max_unacked_frames: Some(7),
            ..Default::default()
        }
        .resolve(Duration::from_secs(30));
        assert_eq!(t.frame_interval, Duration::from_millis(1), "never zero");
        assert_eq!(
            (t.max_unacked, t.handshake_timeout),
            (7, Duration::from_secs(30))
        );
    }
}
