//! Sans-IO rate control: the keyframe-request (PLI) throttle and the bitrate
//! controller. Neither reads a clock; the caller passes `now` (an
//! [`Instant`]) into every call, so tests drive them with a fake clock and
//! the session loop merges [`KeyframeThrottle::poll_timeout`] into its own
//! wake-up deadline.

use std::time::{Duration, Instant};

/// Throttles keyframe requests from the receiver (RTCP PLI/FIR).
///
/// A request is served by forcing the next encoded frame to be an IDR, but
/// never sooner than [`min_after_keyframe`](Self::min_after_keyframe) after
/// the last keyframe of any origin, nor sooner than
/// [`min_interval`](Self::min_interval) after the last keyframe served for a
/// request. Requests that arrive too early are deferred, not dropped: many
/// requests in between collapse into one keyframe. A client flooding PLIs
/// therefore gets at most one keyframe per 500 ms (two per second).
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    min_interval: Duration,
    min_after_keyframe: Duration,
    pending_since: Option<Instant>,
    last_keyframe: Option<Instant>,
    last_served: Option<Instant>,
    requests: u64,
    served: u64,
}

impl Default for KeyframeThrottle {
    fn default() -> Self {
        KeyframeThrottle::new(Duration::from_millis(500), Duration::from_millis(200))
    }
}

impl KeyframeThrottle {
    /// A throttle with explicit limits (the default is 500 ms / 200 ms).
    pub fn new(min_interval: Duration, min_after_keyframe: Duration) -> KeyframeThrottle {
        KeyframeThrottle {
            min_interval,
            min_after_keyframe,
            pending_since: None,
            last_keyframe: None,
            last_served: None,
            requests: 0,
            served: 0,
        }
    }

    /// Minimum gap between two keyframes served for requests.
    pub fn min_interval(&self) -> Duration {
        self.min_interval
    }

    /// Minimum gap between any keyframe and one served for a request.
    pub fn min_after_keyframe(&self) -> Duration {
        self.min_after_keyframe
    }

    /// Records a keyframe request (PLI/FIR) received at `now`.
    pub fn request(&mut self, now: Instant) {
        self.requests += 1;
        if self.pending_since.is_none() {
            self.pending_since = Some(now);
        }
    }

    /// Records that a keyframe went out at `now`, whatever its cause (first
    /// frame, size change, a forced one). A pending request is satisfied by
    /// it, since the receiver gets a fresh IDR anyway.
    pub fn keyframe_sent(&mut self, now: Instant) {
        self.last_keyframe = Some(now);
        self.pending_since = None;
    }

    /// The earliest time a pending request may be served, or `None` when
    /// nothing is pending. The session loop wakes up at this time (merged
    /// with its other deadlines) and calls [`poll`](Self::poll).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let since = self.pending_since?;
        let mut at = since;
        if let Some(k) = self.last_keyframe {
            at = at.max(k + self.min_after_keyframe);
        }
        if let Some(s) = self.last_served {
            at = at.max(s + self.min_interval);
        }
        Some(at)
    }

    /// Whether the frame encoded at `now` must be a keyframe to serve a
    /// pending request. When it returns `true` the request counts as served
    /// and the keyframe as sent at `now`.
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.poll_timeout() {
            Some(at) if now >= at => {
                self.pending_since = None;
                self.last_served = Some(now);
                self.last_keyframe = Some(now);
                self.served += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether a request is waiting.
    pub fn pending(&self) -> bool {
        self.pending_since.is_some()
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Keyframes served for requests so far.
    pub fn served(&self) -> u64 {
        self.served
    }
}

/// Follows the receiver's bandwidth estimate (REMB, or the TWCC-based
/// estimate) but never exceeds the server ceiling announced in the answer
/// (`b=TIAS`), nor goes below a floor.
///
/// The target is a fraction ([`headroom`](Self::with_headroom), 0.9 by
/// default) of the estimate, so the video leaves room for the data channel
/// and RTCP. To avoid reconfiguring the encoder on every report, a new
/// target is reported only when it moves by more than 5 % or hits a bound.
#[derive(Debug, Clone)]
pub struct BitrateController {
    ceiling: u32,
    floor: u32,
    target: u32,
    headroom: f64,
    estimate: Option<u32>,
}

impl BitrateController {
    /// A controller starting at `start` bps, kept in `floor..=ceiling`
    /// (a floor above the ceiling is lowered to it).
    pub fn new(ceiling: u32, floor: u32, start: u32) -> BitrateController {
        let floor = floor.min(ceiling);
        BitrateController {
            ceiling,
            floor,
            target: start.clamp(floor, ceiling),
            headroom: 0.9,
            estimate: None,
        }
    }

    /// Sets the fraction of the estimate used for video (clamped to 0.1–1).
    pub fn with_headroom(mut self, fraction: f64) -> BitrateController {
        self.headroom = if fraction.is_finite() {
            fraction.clamp(0.1, 1.0)
        } else {
            0.9
        };
        self
    }

    /// The server ceiling in bps.
    pub fn ceiling(&self) -> u32 {
        self.ceiling
    }

    /// The current target in bps (always `floor..=ceiling`).
    pub fn target(&self) -> u32 {
        self.target
    }

    /// The last estimate received, if any.
    pub fn estimate(&self) -> Option<u32> {
        self.estimate
    }

    /// Feeds a receiver estimate in bps. Returns the new target when the
    /// encoder should be reconfigured.
    pub fn on_estimate(&mut self, bps: u64) -> Option<u32> {
        let bps = u32::try_from(bps).unwrap_or(u32::MAX);
        self.estimate = Some(bps);
        let wanted = (f64::from(bps) * self.headroom) as u32;
        self.retarget(wanted.clamp(self.floor, self.ceiling))
    }

    /// Lowers (or raises) the ceiling, e.g. after renegotiation; the target
    /// follows when it is above the new ceiling.
    pub fn set_ceiling(&mut self, ceiling: u32) -> Option<u32> {
        self.ceiling = ceiling;
        self.floor = self.floor.min(ceiling);
        let wanted = self.target.min(ceiling);
        self.retarget(wanted)
    }

    fn retarget(&mut self, wanted: u32) -> Option<u32> {
        let old = self.target;
        if wanted == old {
            return None;
        }
        let moved = f64::from(wanted.abs_diff(old)) / f64::from(old.max(1));
        let at_bound = wanted == self.ceiling || wanted == self.floor || old > self.ceiling;
        if moved > 0.05 || at_bound {
            self.target = wanted;
            Some(wanted)
        } else {
            None
        }
    }
}
