//! Bytes on the wire for the same screen content: the H.264 video path
//! (WebRTC) against the `img` path (guacr-display's instructions over the
//! WebSocket / data channel), at 1920×1080 and a nominal 30 frames/s, plus
//! the encode time per frame of each.
//!
//! `cargo bench -p guacr-video --bench video_vs_img`
//!
//! Content (guacr-video's synthetic generators, stride = width):
//! * `scroll`: a terminal-like screen scrolling one 16-pixel line per
//!   frame, every pixel resent (the display must find the scroll itself);
//! * `new_line`: the same terminal screen with only its bottom text row
//!   replaced every frame, no scrolling: the cost of the new text alone,
//!   which is the floor for `scroll` on both paths;
//! * `full_change`: a new photographic picture every frame.
//!
//! The `img` path announces `image/png` + `image/jpeg` like the web client
//! (JPEG quality 90 while the client keeps up). The video path is openh264
//! at the server's default ceiling (4 Mbit/s) and at 20 Mbit/s; frames the
//! rate control skips are re-submitted at the next tick, as the WebRTC
//! driver does, and counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use guacr_display::{Display, DisplayConfig};
use guacr_video::openh264::OpenH264Encoder;
use guacr_video::synth::{photo, text_screen};
use guacr_video::{EncoderPrefs, Frame, VideoEncoder};

const W: u32 = 1920;
const H: u32 = 1080;
const FPS: f64 = 30.0;
const FRAMES: usize = 90;

struct Run {
    bytes: usize,
    sent: usize,
    time: Duration,
}

fn img_path(frames: &[Vec<u32>]) -> Run {
    let cfg = DisplayConfig::new(W, H).with_image_mimetypes(&["image/png", "image/jpeg"]);
    let mut d = Display::new(cfg).unwrap();
    let mut out = Vec::new();
    // The first picture is the same for both paths and not counted.
    d.put_pixels(0, 0, W, H, &frames[0], W as usize).unwrap();
    d.take_frame(&mut out);
    let (mut bytes, mut time) = (0, Duration::ZERO);
    for i in 1..FRAMES {
        out.clear();
        let px = &frames[i % frames.len()];
        let t = Instant::now();
        d.put_pixels(0, 0, W, H, px, W as usize).unwrap();
        d.take_frame(&mut out);
        time += t.elapsed();
        bytes += out.len();
    }
    Run {
        bytes,
        sent: FRAMES - 1,
        time,
    }
}

fn video_path(frames: &[Vec<u32>], ceiling: u32) -> Run {
    let prefs = EncoderPrefs {
        backends: Vec::new(),
        max_bitrate: ceiling,
        start_bitrate: ceiling,
        max_fps: FPS as f32,
    };
    let mut enc = OpenH264Encoder::new(&prefs).unwrap();
    let first = Frame::xrgb32(W, H, &frames[0], W as usize);
    while enc.encode(&first, false).unwrap().is_none() {}
    let (mut bytes, mut sent, mut time) = (0, 0, Duration::ZERO);
    for i in 1..FRAMES {
        let px = &frames[i % frames.len()];
        let t = Instant::now();
        if let Some(f) = enc
            .encode(&Frame::xrgb32(W, H, px, W as usize), false)
            .unwrap()
        {
            bytes += f.data.len();
            sent += 1;
        }
        time += t.elapsed();
    }
    Run { bytes, sent, time }
}

fn report(name: &str, frames: &[Vec<u32>]) {
    let secs = (FRAMES - 1) as f64 / FPS;
    let img = img_path(frames);
    let line = |path: &str, r: &Run| {
        println!(
            "{name:12} {path:22} {:8.2} Mbit/s  {:7.0} KiB/s  {:3}/{} frames  {:6.1} ms/frame",
            r.bytes as f64 * 8.0 / secs / 1e6,
            r.bytes as f64 / secs / 1024.0,
            r.sent,
            FRAMES - 1,
            r.time.as_secs_f64() * 1000.0 / (FRAMES - 1) as f64,
        );
    };
    line("img (png+jpeg)", &img);
    for ceiling in [4_000_000, 20_000_000] {
        let v = video_path(frames, ceiling);
        line(&format!("h264 @ {} Mbit/s", ceiling / 1_000_000), &v);
        println!(
            "{name:12} {:22} video/img bytes = {:.3}",
            "",
            v.bytes as f64 / img.bytes.max(1) as f64
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs one quick pass too.
    let scroll: Vec<Vec<u32>> = (0..FRAMES as u64).map(|l| text_screen(W, H, l)).collect();
    report("scroll", &scroll);
    let screen = text_screen(W, H, 0);
    let row = (H as usize / 16 - 1) * 16 * W as usize..(H as usize / 16) * 16 * W as usize;
    let new_line: Vec<Vec<u32>> = (0..FRAMES as u64)
        .map(|l| {
            let mut px = screen.clone();
            px[row.clone()].copy_from_slice(&text_screen(W, H, 1000 + l)[row.clone()]);
            px
        })
        .collect();
    report("new_line", &new_line);
    let photos: Vec<Vec<u32>> = (0..FRAMES as u64).map(|s| photo(W, H, s * 7 + 1)).collect();
    report("full_change", &photos);
}
