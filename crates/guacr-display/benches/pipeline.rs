//! Display pipeline at 1920×1080.
//!
//! * `scroll/*`: an xterm-like screen of antialiased text (DejaVu Sans Mono,
//!   fontdue) scrolls by one line per frame. `full_update` = the server
//!   resends every pixel (worst case: the pipeline must find the scroll);
//!   `copyrect` = the server sends CopyRect + the new line.
//! * `photo/*`: every frame the whole screen changes to a new photographic
//!   picture (smooth gradients + noise).
//!
//! Modes: `lossless` (force-lossless: PNG/cfill only), `adaptive`
//! (`image/jpeg` announced, quality 90 at no lag) and, for photos,
//! `adaptive_lagging` (client 2 s behind: quality 40) and `lossless_webp`
//! (force-lossless with `image/webp` announced: many-colour regions as
//! lossless WebP instead of RGB PNG).
//!
//! Besides criterion's time per frame, each case prints frames/s, bytes per
//! frame and CPU cores used (process CPU time / wall time over 3 s).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use guacr_display::{Display, DisplayConfig};

const W: u32 = 1920;
const H: u32 = 1080;
const CELL_W: u32 = 9;
const CELL_H: u32 = 17;
const BG: u32 = 0x1e1e1e;
const FG: u32 = 0xd8d8d8;

/// A long "document" of text lines, rendered; frames are 1080-row windows.
struct Document {
    px: Vec<u32>,
    lines: u32,
}

fn blend(a: u32, b: u32, t: u8) -> u32 {
    let t = u32::from(t);
    let ch = |s: u32| {
        let (x, y) = ((a >> s) & 0xff, (b >> s) & 0xff);
        ((x * (255 - t) + y * t) / 255) << s
    };
    ch(16) | ch(8) | ch(0)
}

fn document(lines: u32) -> Document {
    let font = fontdue::Font::from_bytes(
        dejavu::sans_mono::regular(),
        fontdue::FontSettings::default(),
    )
    .unwrap();
    let words = [
        "drwxr-xr-x",
        "root",
        "4096",
        "Nov",
        "22",
        "09:14",
        "guacr-display",
        "src",
        "lib.rs",
        "cargo",
        "build",
        "--release",
        "warning:",
        "unused",
        "variable",
        "fn",
        "main()",
        "{",
        "}",
        "let",
        "mut",
        "frame",
        "=",
        "display.take_frame(&mut",
        "out);",
        "OK",
        "12.5ms",
    ];
    let cols = W / CELL_W;
    let mut px = vec![BG; (W * CELL_H * lines) as usize];
    let mut cache = std::collections::HashMap::new();
    let mut seed = 0x1234_5678u64;
    for line in 0..lines {
        let mut text = String::new();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let target = (seed >> 33) as u32 % cols;
        while (text.len() as u32) < target {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(words[(seed >> 33) as usize % words.len()]);
            text.push(' ');
        }
        for (c, ch) in text.chars().take(cols as usize).enumerate() {
            let (m, bitmap) = cache
                .entry(ch)
                .or_insert_with(|| font.rasterize(ch, 14.0))
                .clone();
            let baseline = 13i32;
            let x0 = c as i32 * CELL_W as i32 + m.xmin;
            let y0 = baseline - m.height as i32 - m.ymin;
            for gy in 0..m.height as i32 {
                for gx in 0..m.width as i32 {
                    let (x, y) = (x0 + gx, y0 + gy);
                    if x < 0 || y < 0 || x >= W as i32 || y >= CELL_H as i32 {
                        continue;
                    }
                    let a = bitmap[(gy * m.width as i32 + gx) as usize];
                    if a > 0 {
                        let i = ((line * CELL_H + y as u32) * W + x as u32) as usize;
                        px[i] = blend(BG, FG, a);
                    }
                }
            }
        }
    }
    Document { px, lines }
}

impl Document {
    /// The screen showing lines `first..` (wrapping).
    fn screen(&self, first: u32, out: &mut Vec<u32>) {
        out.clear();
        let rows = H / CELL_H;
        for l in 0..rows {
            let src = ((first + l) % self.lines * CELL_H * W) as usize;
            out.extend_from_slice(&self.px[src..src + (CELL_H * W) as usize]);
        }
        out.resize((W * H) as usize, BG);
    }

    fn line(&self, n: u32) -> &[u32] {
        let src = (n % self.lines * CELL_H * W) as usize;
        &self.px[src..src + (CELL_H * W) as usize]
    }
}

/// Process CPU time (user + system) from /proc/self/stat, in clock ticks of
/// 10 ms.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ')'.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn config(lossless: bool) -> DisplayConfig {
    DisplayConfig::new(W, H)
        .with_image_mimetypes(&["image/png", "image/jpeg"])
        .with_lossless(lossless)
}

fn config_webp() -> DisplayConfig {
    DisplayConfig::new(W, H)
        .with_image_mimetypes(&["image/png", "image/jpeg", "image/webp"])
        .with_lossless(true)
}

/// Runs `step` (one frame, returns its bytes) for ~3 s; prints the figures.
fn report(name: &str, mut step: impl FnMut() -> usize) {
    // Honour criterion's name filter (the first free argument).
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-') && a != "pipeline");
    if filter.is_some_and(|f| !name.contains(&f)) {
        return;
    }
    for _ in 0..5 {
        step();
    }
    let (t0, c0) = (Instant::now(), cpu_time());
    let (mut frames, mut bytes) = (0u64, 0u64);
    while t0.elapsed() < Duration::from_secs(3) {
        bytes += step() as u64;
        frames += 1;
    }
    let wall = t0.elapsed();
    let cpu = cpu_time().saturating_sub(c0);
    eprintln!(
        "FIGURES {name}: {:.1} frames/s, {} bytes/frame, {:.2} cores, {:.2} ms CPU/frame",
        frames as f64 / wall.as_secs_f64(),
        bytes / frames.max(1),
        cpu.as_secs_f64() / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1000.0 / frames.max(1) as f64
    );
}

fn scroll(c: &mut Criterion) {
    let doc = document(400);
    let rows = H / CELL_H;
    let mut g = c.benchmark_group("scroll");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    for lossless in [true, false] {
        let mode = if lossless { "lossless" } else { "adaptive" };
        // The server resends every pixel.
        let mut d = Display::new(config(lossless)).unwrap();
        let mut screen = Vec::new();
        let mut out = Vec::new();
        let mut first = 0u32;
        let mut step = || {
            first += 1;
            doc.screen(first, &mut screen);
            d.put_pixels(0, 0, W, H, &screen, W as usize).unwrap();
            out.clear();
            d.take_frame(&mut out);
            out.len()
        };
        step();
        report(&format!("scroll/full_update/{mode}"), &mut step);
        g.bench_function(format!("full_update/{mode}"), |b| {
            b.iter(|| black_box(step()))
        });

        // The server sends CopyRect + the new line.
        let mut d = Display::new(config(lossless)).unwrap();
        let mut first = 0u32;
        doc.screen(first, &mut screen);
        d.put_pixels(0, 0, W, H, &screen, W as usize).unwrap();
        d.take_frame(&mut out);
        let mut step = || {
            first += 1;
            d.copy(0, CELL_H, 0, 0, W, (rows - 1) * CELL_H).unwrap();
            d.put_pixels(
                0,
                (rows - 1) * CELL_H,
                W,
                CELL_H,
                doc.line(first + rows - 1),
                W as usize,
            )
            .unwrap();
            out.clear();
            d.take_frame(&mut out);
            out.len()
        };
        report(&format!("scroll/copyrect/{mode}"), &mut step);
        g.bench_function(format!("copyrect/{mode}"), |b| b.iter(|| black_box(step())));
    }
    g.finish();
}

/// Photographic pictures: smooth colour fields with noise, different each frame.
fn photos(n: usize) -> Vec<Vec<u32>> {
    let mut seed = 99u64;
    (0..n)
        .map(|k| {
            let k = k as f32;
            (0..W * H)
                .map(|i| {
                    let (x, y) = ((i % W) as f32, (i / W) as f32);
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let noise = (seed >> 60) as f32 - 8.0;
                    let r = 128.0 + 100.0 * ((x + k * 37.0) / 210.0).sin() + noise;
                    let g = 128.0 + 100.0 * ((y - k * 23.0) / 160.0).cos() + noise;
                    let b = 128.0 + 90.0 * ((x + y + k * 51.0) / 330.0).sin() - noise;
                    let c = |v: f32| v.clamp(0.0, 255.0) as u32;
                    (c(r) << 16) | (c(g) << 8) | c(b)
                })
                .collect()
        })
        .collect()
}

fn photo(c: &mut Criterion) {
    let pics = photos(4);
    let mut g = c.benchmark_group("photo");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for (mode, lossless, lag) in [
        ("adaptive", false, Duration::ZERO),
        ("adaptive_lagging", false, Duration::from_secs(2)),
        ("lossless", true, Duration::ZERO),
        ("lossless_webp", true, Duration::ZERO),
    ] {
        let cfg = if mode == "lossless_webp" {
            config_webp()
        } else {
            config(lossless)
        };
        let mut d = Display::new(cfg).unwrap();
        // A client more than 1 s behind: JPEG quality at its minimum (40).
        d.set_lag(lag);
        let mut out = Vec::new();
        let mut k = 0usize;
        let mut step = || {
            k += 1;
            d.put_pixels(0, 0, W, H, &pics[k % pics.len()], W as usize)
                .unwrap();
            out.clear();
            d.take_frame(&mut out);
            out.len()
        };
        report(&format!("photo/full_screen/{mode}"), &mut step);
        g.bench_function(format!("full_screen/{mode}"), |b| {
            b.iter(|| black_box(step()))
        });
    }
    g.finish();
}

criterion_group!(benches, scroll, photo);
criterion_main!(benches);
