//! How openh264's settings change the bytes and quality of text content:
//! scrolling text and a single new text row (no motion), 1920×1080, 60
//! frames at a nominal 30 fps, per setting: bytes per sent frame, frames
//! sent, Mbit/s and the mean luma PSNR of the decoded pictures.
//!
//! `cargo run --release -p guacr-video --example qp_probe`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use guacr_video::Frame;
use guacr_video::convert::I420Buffer;
use guacr_video::synth::text_screen;
use openh264::decoder::{DecodedYUV, Decoder};
use openh264::encoder::{Complexity, Encoder, EncoderConfig, FrameType, QpRange, RateControlMode};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

const W: u32 = 1920;
const H: u32 = 1080;
const FRAMES: u64 = 60;

fn psnr_y(src: &I420Buffer, dec: &DecodedYUV<'_>) -> f64 {
    let (stride, _, _) = dec.strides();
    let (w, h) = (W as usize, H as usize);
    let mut se = 0f64;
    for y in 0..h {
        let a = &src.y()[y * w..y * w + w];
        let b = &dec.y()[y * stride..y * stride + w];
        se += a
            .iter()
            .zip(b)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum::<f64>();
    }
    let mse = (se / (w * h) as f64).max(1e-9);
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

fn run(name: &str, cfg: EncoderConfig, frames: &[Vec<u32>]) {
    let mut enc = Encoder::with_api_config(OpenH264API::from_source(), cfg).unwrap();
    let mut dec = Decoder::new().unwrap();
    let mut yuv = I420Buffer::default();
    let (mut bytes, mut sent, mut psnr) = (0usize, 0usize, 0f64);
    for (i, f) in frames.iter().enumerate() {
        yuv.fill_from(&Frame::xrgb32(W, H, f, W as usize)).unwrap();
        let bs = enc
            .encode_at(&yuv, Timestamp::from_millis(i as u64 * 1000 / 30))
            .unwrap();
        if matches!(bs.frame_type(), FrameType::Skip) {
            continue;
        }
        let data = bs.to_vec();
        let decoded = dec.decode(&data).ok().flatten();
        if i == 0 {
            continue; // the first keyframe is the same for every case
        }
        if let Some(d) = decoded {
            psnr += psnr_y(&yuv, &d);
        }
        bytes += data.len();
        sent += 1;
    }
    let secs = (frames.len() - 1) as f64 / 30.0;
    println!(
        "{name:34} {:7.0} B/frame  {sent:2}/{} sent  {:5.2} Mbit/s  PSNR-Y {:4.1} dB",
        bytes as f64 / sent.max(1) as f64,
        frames.len() - 1,
        bytes as f64 * 8.0 / secs / 1e6,
        psnr / sent.max(1) as f64
    );
}

fn config(rc: RateControlMode, bps: u32, qp: (u8, u8), cx: Complexity) -> EncoderConfig {
    // guacr-video's configuration, with the rate control, QP range and complexity varied.
    guacr_video::openh264::screen_config(bps, 30.0)
        .rate_control_mode(rc)
        .complexity(cx)
        .qp(QpRange::new(qp.0, qp.1))
}

fn main() {
    let scroll: Vec<Vec<u32>> = (0..FRAMES).map(|l| text_screen(W, H, l)).collect();
    let screen = text_screen(W, H, 0);
    let row = (H as usize / 16 - 1) * 16 * W as usize..(H as usize / 16) * 16 * W as usize;
    let new_line: Vec<Vec<u32>> = (0..FRAMES)
        .map(|l| {
            let mut px = screen.clone();
            px[row.clone()].copy_from_slice(&text_screen(W, H, 1000 + l)[row.clone()]);
            px
        })
        .collect();
    let (br, q) = (RateControlMode::Bitrate, RateControlMode::Quality);
    let (low, high) = (Complexity::Low, Complexity::High);
    for (content, frames) in [("scroll", &scroll), ("new_line", &new_line)] {
        run(
            &format!("{content} 4M qp0-51"),
            config(br, 4_000_000, (0, 51), low),
            frames,
        );
        run(
            &format!("{content} 20M qp0-51"),
            config(br, 20_000_000, (0, 51), low),
            frames,
        );
        for qp in [(20, 30), (24, 34), (28, 38)] {
            let name = format!("{content} 4M qp{}-{}", qp.0, qp.1);
            run(&name, config(br, 4_000_000, qp, low), frames);
        }
        run(
            &format!("{content} 4M high complexity"),
            config(br, 4_000_000, (0, 51), high),
            frames,
        );
        run(
            &format!("{content} quality rc 4M"),
            config(q, 4_000_000, (0, 51), low),
            frames,
        );
    }
}
