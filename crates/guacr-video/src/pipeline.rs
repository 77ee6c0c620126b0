//! The per-session video state, sans-IO: an encoder plus the PLI throttle
//! and the bitrate controller, and the bookkeeping the session loop would
//! otherwise repeat (re-encoding a skipped picture, reporting every keyframe
//! to the throttle, applying bitrate changes).
//!
//! The loop calls [`mark_dirty`](VideoPipeline::mark_dirty) when the
//! framebuffer changes, [`request_keyframe`](VideoPipeline::request_keyframe)
//! on a PLI, [`on_estimate`](VideoPipeline::on_estimate) on a bandwidth
//! estimate, and at each frame tick where
//! [`wants_frame`](VideoPipeline::wants_frame) is true,
//! [`encode`](VideoPipeline::encode) with the framebuffer. It merges
//! [`poll_timeout`](VideoPipeline::poll_timeout) into its wake-up deadline.

use std::time::Instant;

use crate::{BitrateController, EncodedFrame, Frame, KeyframeThrottle, VideoEncoder, VideoError};

/// Encoder + throttle + bitrate controller for one video track.
pub struct VideoPipeline {
    encoder: Box<dyn VideoEncoder>,
    throttle: KeyframeThrottle,
    bitrate: BitrateController,
    /// The framebuffer holds a picture the receiver has not been sent
    /// (changed since the last frame, or the last frame was skipped).
    owed: bool,
    /// Leaky bucket enforcing the ceiling over whole frames: bits sent and
    /// not yet drained at `ceiling` bit/s, as of `debt_at`.
    debt_bits: f64,
    debt_at: Option<Instant>,
    frames: u64,
    keyframes: u64,
    bytes: u64,
}

impl VideoPipeline {
    /// Wraps an encoder; the controller's ceiling should be the encoder's.
    pub fn new(
        mut encoder: Box<dyn VideoEncoder>,
        throttle: KeyframeThrottle,
        bitrate: BitrateController,
    ) -> Self {
        encoder.set_bitrate(bitrate.target());
        VideoPipeline {
            encoder,
            throttle,
            bitrate,
            owed: true,
            debt_bits: 0.0,
            debt_at: None,
            frames: 0,
            keyframes: 0,
            bytes: 0,
        }
    }

    /// The encoder's name (for the audit event).
    pub fn encoder_name(&self) -> &str {
        self.encoder.name()
    }

    /// The framebuffer changed.
    pub fn mark_dirty(&mut self) {
        self.owed = true;
    }

    /// The receiver asked for a keyframe (PLI/FIR) at `now`.
    pub fn request_keyframe(&mut self, now: Instant) {
        self.throttle.request(now);
    }

    /// A bandwidth estimate (REMB / TWCC) in bps. Returns the new encoder
    /// bitrate if it changed.
    pub fn on_estimate(&mut self, bps: u64) -> Option<u32> {
        let target = self.bitrate.on_estimate(bps)?;
        Some(self.encoder.set_bitrate(target))
    }

    /// The burst the bucket allows above the ceiling: half a second's worth.
    fn burst_bits(&self) -> f64 {
        f64::from(self.bitrate.ceiling()) * 0.5
    }

    /// Bits still in the bucket at `now`.
    fn debt(&self, now: Instant) -> f64 {
        let Some(at) = self.debt_at else {
            return 0.0;
        };
        let drained =
            now.saturating_duration_since(at).as_secs_f64() * f64::from(self.bitrate.ceiling());
        (self.debt_bits - drained).max(0.0)
    }

    /// When the bucket is back within the burst allowance (`None`: it is).
    fn bucket_ready_at(&self, now: Instant) -> Option<Instant> {
        let over = self.debt(now) - self.burst_bits();
        if over <= 0.0 {
            return None;
        }
        let secs = over / f64::from(self.bitrate.ceiling().max(1));
        Some(now + std::time::Duration::from_secs_f64(secs))
    }

    /// When the loop must wake up: a deferred keyframe request, or the
    /// ceiling's bucket draining while a picture is owed.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let bucket = if self.owed {
            self.bucket_ready_at(now)
        } else {
            None
        };
        match (self.throttle.poll_timeout(), bucket) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (Some(a), None) => Some(a),
            (None, b) => b,
        }
    }

    /// Whether a frame should be encoded at `now`: a picture is owed or a
    /// deferred keyframe request is due, and the ceiling allows it (the
    /// bits sent so far, drained at the ceiling rate, are within half a
    /// second's burst — so over any stretch of time the video averages at
    /// most the ceiling whatever the encoder does).
    pub fn wants_frame(&self, now: Instant) -> bool {
        let due = self.owed || self.throttle.poll_timeout().is_some_and(|t| now >= t);
        due && self.bucket_ready_at(now).is_none()
    }

    /// Encodes the framebuffer at `now`, forcing an IDR when a keyframe
    /// request is due. `Ok(None)`: nothing to send (skipped by the rate
    /// control — the picture stays owed — or nothing was owed).
    pub fn encode(
        &mut self,
        now: Instant,
        frame: &Frame<'_>,
    ) -> Result<Option<EncodedFrame>, VideoError> {
        if self.bucket_ready_at(now).is_some() {
            return Ok(None); // over the ceiling: wait for poll_timeout
        }
        let force = self.throttle.poll(now);
        if !force && !self.owed {
            return Ok(None);
        }
        let out = self.encoder.encode(frame, force)?;
        match &out {
            Some(f) => {
                self.owed = false;
                self.frames += 1;
                self.bytes += f.data.len() as u64;
                self.debt_bits = self.debt(now) + f.data.len() as f64 * 8.0;
                self.debt_at = Some(now);
                if f.keyframe {
                    self.keyframes += 1;
                    self.throttle.keyframe_sent(now);
                }
            }
            None => {
                self.owed = true;
                if force {
                    // The forced IDR did not come out: ask again.
                    self.throttle.request(now);
                }
            }
        }
        Ok(out)
    }

    /// Frames, keyframes and bytes sent so far.
    pub fn stats(&self) -> (u64, u64, u64) {
        (self.frames, self.keyframes, self.bytes)
    }

    /// The bitrate target in effect.
    pub fn bitrate(&self) -> u32 {
        self.encoder.bitrate()
    }
}
