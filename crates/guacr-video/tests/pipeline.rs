//! The session-side pipeline with the real openh264 encoder and a fake
//! clock: a PLI flood, re-encoding after skips, bitrate feedback.

use std::time::{Duration, Instant};

use guacr_video::synth::text_screen;
use guacr_video::{
    BitrateController, EncodedFrame, EncoderPrefs, Frame, KeyframeThrottle, VideoEncoder,
    VideoError, VideoPipeline, h264, select,
};

fn pipeline(ceiling: u32) -> VideoPipeline {
    let prefs = EncoderPrefs {
        max_bitrate: ceiling,
        start_bitrate: ceiling / 2,
        ..EncoderPrefs::default()
    };
    let enc = select(&prefs).unwrap_or_else(|e| panic!("{e}"));
    VideoPipeline::new(
        enc,
        KeyframeThrottle::default(),
        BitrateController::new(ceiling, 150_000, ceiling / 2),
    )
}

/// 4 s of typing at 30 fps while the client sends a PLI every 10 ms: at most
/// two keyframes in any one-second window, and the flood is still served.
#[test]
fn pli_flood_gets_at_most_two_keyframes_per_second() {
    let (w, h) = (640u32, 480u32);
    let mut p = pipeline(4_000_000);
    let t0 = Instant::now();
    let mut screen = text_screen(w, h, 0);
    let mut keyframes_ms = Vec::new();
    let mut next_frame = 0u64;
    for t in 0..4_000u64 {
        let now = t0 + Duration::from_millis(t);
        if t % 10 == 0 {
            p.request_keyframe(now);
        }
        if t >= next_frame || p.poll_timeout(now).is_some_and(|d| now >= d) {
            next_frame = t + 33;
            // Typing: one glyph cell changes per frame.
            let i = (t as usize / 33 * 8) % (w as usize - 8) + 20 * 16 * w as usize;
            screen[i..i + 6].fill(0x0020_2020);
            p.mark_dirty();
            if p.wants_frame(now) {
                let f = p
                    .encode(now, &Frame::xrgb32(w, h, &screen, w as usize))
                    .unwrap_or_else(|e| panic!("{e}"));
                if let Some(f) = f {
                    assert_eq!(f.keyframe, h264::is_keyframe(&f.data));
                    if f.keyframe {
                        keyframes_ms.push(t);
                    }
                }
            }
        }
    }
    eprintln!("keyframes at {keyframes_ms:?}");
    assert_eq!(
        keyframes_ms.first(),
        Some(&0),
        "the first frame is a keyframe"
    );
    let served: Vec<u64> = keyframes_ms[1..].to_vec();
    assert!(
        served.len() >= 6,
        "the flood must still be served: {keyframes_ms:?}"
    );
    for &s in &served {
        let n = served.iter().filter(|&&x| x >= s && x < s + 1000).count();
        assert!(
            n <= 2,
            "{n} keyframes within 1 s of {s} ms: {keyframes_ms:?}"
        );
    }
    assert!(
        served[0] >= 200,
        "none within 200 ms of the first IDR: {keyframes_ms:?}"
    );
}

/// An encoder that skips its first `skips` calls, as a rate control does
/// after a large frame, and records what it was asked to encode.
struct Skipping {
    skips: u32,
    calls: Vec<(u32, bool)>,
    bitrate: u32,
}

impl VideoEncoder for Skipping {
    fn encode(
        &mut self,
        frame: &Frame<'_>,
        force: bool,
    ) -> Result<Option<EncodedFrame>, VideoError> {
        let first_px = match frame.pixels {
            guacr_video::Pixels::Xrgb32 { data, .. } => data.first().copied().unwrap_or(0),
            _ => 0,
        };
        self.calls.push((first_px, force));
        if self.skips > 0 {
            self.skips -= 1;
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            data: vec![0, 0, 0, 1, if force { 0x65 } else { 0x41 }, 0],
            keyframe: force,
            width: frame.width,
            height: frame.height,
        }))
    }
    fn set_bitrate(&mut self, bps: u32) -> u32 {
        self.bitrate = bps;
        bps
    }
    fn bitrate(&self) -> u32 {
        self.bitrate
    }
    fn max_bitrate(&self) -> u32 {
        u32::MAX
    }
    fn name(&self) -> &str {
        "skipping"
    }
}

/// A picture skipped by the rate control stays owed and is encoded again at
/// the next tick, even though the framebuffer did not change again.
#[test]
fn skipped_picture_is_encoded_again() {
    let enc = Box::new(Skipping {
        skips: 3,
        calls: Vec::new(),
        bitrate: 0,
    });
    let mut p = VideoPipeline::new(
        enc,
        KeyframeThrottle::default(),
        BitrateController::new(10_000_000, 100_000, 1_000_000),
    );
    let t0 = Instant::now();
    let px = [7u32; 4];
    let frame = Frame::xrgb32(2, 2, &px, 2);
    p.mark_dirty();
    let mut out = Vec::new();
    for i in 0..10u64 {
        let now = t0 + Duration::from_millis(i * 33);
        if p.wants_frame(now) {
            out.push((
                i,
                p.encode(now, &frame)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .is_some(),
            ));
        }
    }
    // Ticks 0-2 skipped, tick 3 sent, then nothing is owed any more.
    assert_eq!(out, vec![(0, false), (1, false), (2, false), (3, true)]);
    assert!(!p.wants_frame(t0 + Duration::from_secs(5)));
    assert_eq!(p.stats().0, 1);
}

#[test]
fn bitrate_feedback_is_capped_by_the_ceiling() {
    let mut p = pipeline(2_000_000);
    assert_eq!(p.bitrate(), 1_000_000);
    assert_eq!(p.on_estimate(100_000_000), Some(2_000_000));
    assert_eq!(p.bitrate(), 2_000_000);
    assert_eq!(p.on_estimate(500_000), Some(450_000));
    assert_eq!(p.bitrate(), 450_000);
    assert_eq!(p.encoder_name(), "openh264");
}

/// Every frame a different photograph at 30 fps (each a scene-change IDR,
/// which openh264's rate control cannot skip): the pipeline's bucket still
/// holds the average to the ceiling.
#[test]
fn full_screen_changes_stay_under_the_ceiling() {
    let (w, h) = (640u32, 480u32);
    let ceiling = 1_000_000u32;
    let mut p = pipeline(ceiling);
    let t0 = Instant::now();
    let photos: Vec<Vec<u32>> = (0..4)
        .map(|s| guacr_video::synth::photo(w, h, s * 90))
        .collect();
    let mut sent_bits = 0u64;
    let mut max_frame_bits = 0u64;
    let secs = 4u64;
    let mut i = 0usize;
    for t in (0..secs * 1000).step_by(33) {
        let now = t0 + Duration::from_millis(t);
        i += 1;
        p.mark_dirty();
        if p.wants_frame(now) {
            let px = &photos[i % photos.len()];
            if let Some(f) = p
                .encode(now, &Frame::xrgb32(w, h, px, w as usize))
                .unwrap_or_else(|e| panic!("{e}"))
            {
                sent_bits += f.data.len() as u64 * 8;
                max_frame_bits = max_frame_bits.max(f.data.len() as u64 * 8);
            }
        }
    }
    // The bucket admits a frame while at most half a second's bits are
    // pending, so the total is bounded by ceiling × time + burst + one frame.
    let limit = u64::from(ceiling) * secs + u64::from(ceiling) / 2 + max_frame_bits;
    eprintln!(
        "{sent_bits} bits in {secs} s (limit {limit}), frames/keyframes/bytes {:?}",
        p.stats()
    );
    assert!(
        sent_bits <= limit,
        "{sent_bits} bits in {secs} s exceeds the ceiling"
    );
    assert!(p.stats().0 >= 4, "some frames must still go out");
}
