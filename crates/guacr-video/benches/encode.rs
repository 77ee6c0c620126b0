//! Encode time and size per frame at 1920×1080, and RGB → I420 time.
//!
//! `cargo bench -p guacr-video --bench encode`
//!
//! The encode benches feed frames at a nominal 30 fps to a 20 Mbit/s
//! ceiling; the bytes per frame are printed once per bench (criterion does
//! not record sizes).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use guacr_video::convert::xrgb_to_i420;
use guacr_video::openh264::OpenH264Encoder;
use guacr_video::synth::{photo, text_screen};
use guacr_video::{EncoderPrefs, Frame, I420Buffer, VideoEncoder};

const W: u32 = 1920;
const H: u32 = 1080;

fn encoder(max: u32) -> OpenH264Encoder {
    let prefs = EncoderPrefs {
        backends: Vec::new(),
        max_bitrate: max,
        start_bitrate: max,
        max_fps: 30.0,
    };
    OpenH264Encoder::new(&prefs).unwrap_or_else(|e| panic!("{e}"))
}

/// Encodes `frames` in a loop, reporting bytes per frame and skips.
fn report(name: &str, frames: &[Vec<u32>], max: u32) {
    let mut enc = encoder(max);
    let (mut bytes, mut sent, mut keys) = (0usize, 0usize, 0usize);
    let rounds = 60;
    for i in 0..rounds {
        let px = &frames[i % frames.len()];
        if let Ok(Some(f)) = enc.encode(&Frame::xrgb32(W, H, px, W as usize), false)
            && i > 0
        {
            bytes += f.data.len();
            sent += 1;
            keys += usize::from(f.keyframe);
        }
    }
    let per = bytes.checked_div(sent).unwrap_or(0);
    eprintln!(
        "{name}: {per} bytes/frame over {sent} of {} frames sent ({keys} keyframes), {:.2} Mbit/s at 30 fps, ceiling {:.1} Mbit/s",
        rounds - 1,
        bytes as f64 * 8.0 * 30.0 / (rounds as f64 - 1.0) / 1e6,
        f64::from(max) / 1e6
    );
}

fn benches(c: &mut Criterion) {
    let px = text_screen(W, H, 0);
    let mut out = I420Buffer::new(W, H);
    c.bench_function("rgb_to_i420_1080p", |b| {
        b.iter(|| xrgb_to_i420(W, H, black_box(&px), W as usize, &mut out))
    });

    // Scrolling text: each frame scrolls by one 16-pixel line.
    let scroll: Vec<Vec<u32>> = (0..30).map(|l| text_screen(W, H, l)).collect();
    report("scroll_text_1080p", &scroll, 20_000_000);
    let mut enc = encoder(20_000_000);
    let mut i = 0usize;
    c.bench_function("encode_scroll_text_1080p", |b| {
        b.iter(|| {
            i += 1;
            let px = &scroll[i % scroll.len()];
            enc.encode(&Frame::xrgb32(W, H, px, W as usize), false)
        })
    });

    // Full-screen photographic change every frame.
    let photos: Vec<Vec<u32>> = (0..8).map(|s| photo(W, H, s * 40)).collect();
    report("photo_change_1080p", &photos, 20_000_000);
    let mut enc = encoder(20_000_000);
    let mut i = 0usize;
    c.bench_function("encode_photo_change_1080p", |b| {
        b.iter(|| {
            i += 1;
            let px = &photos[i % photos.len()];
            enc.encode(&Frame::xrgb32(W, H, px, W as usize), false)
        })
    });
}

criterion_group! {
    name = encode;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(encode);
