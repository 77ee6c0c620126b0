//! The instruction stream a Display produces, replayed into guacr-playback's
//! client display model, must rebuild the framebuffer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use guacr_display::{Display, DisplayConfig, DisplayError, Framebuffer, PixelFormat, rgb};
use guacr_playback::Display as Model;
use guacr_protocol::{Instruction, Status, parse_all};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n.max(1))) as u32
    }
}

fn instructions(bytes: &[u8]) -> Vec<Instruction> {
    let (ins, used) = parse_all(bytes).expect("output parses");
    assert_eq!(used, bytes.len(), "output ends with a complete instruction");
    ins
}

fn apply(model: &mut Model, bytes: &[u8]) {
    for i in instructions(bytes) {
        model.apply(&i).expect("model accepts the instruction");
    }
    assert!(model.warnings().is_empty(), "{:?}", model.warnings());
}

fn count(bytes: &[u8], opcode: &str) -> usize {
    instructions(bytes)
        .iter()
        .filter(|i| i.opcode == opcode)
        .count()
}

fn mimetypes(bytes: &[u8]) -> Vec<String> {
    instructions(bytes)
        .iter()
        .filter(|i| i.opcode == "img")
        .map(|i| i.args[3].clone())
        .collect()
}

fn assert_same(model: &Model, fb: &Framebuffer, what: &str) {
    let (w, h, px) = model.screenshot();
    assert_eq!((w, h), (fb.width(), fb.height()), "{what}: size");
    let want = fb.to_rgba();
    if px != want {
        let i = px
            .chunks(4)
            .zip(want.chunks(4))
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{what}: pixel ({}, {}) is {:?}, framebuffer has {:?}",
            i as u32 % w,
            i as u32 / w,
            &px[i * 4..i * 4 + 4],
            &want[i * 4..i * 4 + 4]
        );
    }
}

fn frame(d: &mut Display) -> Vec<u8> {
    let mut out = Vec::new();
    d.take_frame(&mut out);
    out
}

const JPEG: &[&str] = &["image/png", "image/jpeg"];

/// Text-like content: a few colours, glyph-ish dots.
fn text_block(rng: &mut Rng, w: u32, h: u32) -> Vec<u32> {
    let fg = [0xffffff, 0x00ff00, 0xc0c0c0][rng.below(3) as usize];
    let seed = rng.next();
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            if (u64::from(x / 2) * 31 + u64::from(y) * 17 + seed) % 7 < 2 {
                fg
            } else {
                0x000000
            }
        })
        .collect()
}

/// Photographic content: many colours.
fn noise_block(rng: &mut Rng, w: u32, h: u32) -> Vec<u32> {
    (0..w * h).map(|_| (rng.next() >> 40) as u32).collect()
}

fn random_ops(d: &mut Display, rng: &mut Rng, ops: usize) {
    for _ in 0..ops {
        let (w, h) = (d.width(), d.height());
        let rw = 1 + rng.below(w.min(120));
        let rh = 1 + rng.below(h.min(90));
        let x = rng.below(w - rw + 1);
        let y = rng.below(h - rh + 1);
        match rng.below(10) {
            0..=2 => {
                let px = text_block(rng, rw, rh);
                d.put_pixels(x, y, rw, rh, &px, rw as usize).unwrap();
            }
            3 => {
                let px = noise_block(rng, rw, rh);
                d.put_pixels(x, y, rw, rh, &px, rw as usize).unwrap();
            }
            4 | 5 => d.fill(x, y, rw, rh, (rng.next() >> 40) as u32).unwrap(),
            6 | 7 => {
                let sx = rng.below(w - rw + 1);
                let sy = rng.below(h - rh + 1);
                d.copy(sx, sy, x, y, rw, rh).unwrap();
            }
            8 => {
                let cw = 1 + rng.below(32);
                let ch = 1 + rng.below(32);
                let rgba: Vec<u8> = (0..cw * ch * 4).map(|_| rng.next() as u8).collect();
                d.set_cursor(rng.below(cw), rng.below(ch), cw, ch, &rgba)
                    .unwrap();
            }
            _ => {
                // Bytes in another layout.
                let bytes: Vec<u8> = (0..rw * rh * 3).map(|_| rng.next() as u8).collect();
                d.put_bytes(x, y, rw, rh, &bytes, rw as usize * 3, PixelFormat::Rgb24)
                    .unwrap();
            }
        }
    }
}

/// A seeded random-operations case: a 320×200 force-lossless display
/// announcing `mimetypes`, and an empty client model.
fn lossless_case(seed: u64, mimetypes: &[&str]) -> (Rng, Display, Model) {
    let cfg = DisplayConfig::new(320, 200)
        .with_image_mimetypes(mimetypes)
        .with_lossless(true);
    (
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        Display::new(cfg).unwrap(),
        Model::new(),
    )
}

#[test]
fn lossless_random_operations_rebuild_exactly() {
    for seed in 1..=12u64 {
        let (mut rng, mut d, mut model) = lossless_case(seed, JPEG);
        for step in 0..25 {
            if rng.below(12) == 0 {
                let (w, h) = (40 + rng.below(400), 30 + rng.below(300));
                d.resize(w, h).unwrap();
            }
            let n = rng.below(8) as usize;
            random_ops(&mut d, &mut rng, n);
            let out = frame(&mut d);
            assert!(
                !mimetypes(&out).iter().any(|m| m == "image/jpeg"),
                "lossless mode sent a JPEG"
            );
            apply(&mut model, &out);
            assert_same(
                &model,
                &d.framebuffer(),
                &format!("seed {seed} step {step}"),
            );
            assert!(!d.has_changes(), "seed {seed} step {step}: changes left");
        }
    }
}

#[test]
fn cursor_is_sent_as_cursor_instruction() {
    let mut d = Display::new(DisplayConfig::new(64, 64)).unwrap();
    let mut model = Model::new();
    let rgba: Vec<u8> = (0..12 * 20 * 4).map(|i| (i * 7) as u8).collect();
    d.set_cursor(3, 4, 12, 20, &rgba).unwrap();
    let out = frame(&mut d);
    assert_eq!(count(&out, "cursor"), 1);
    apply(&mut model, &out);
    let c = model.cursor().expect("cursor set");
    assert_eq!(
        (c.hotspot_x, c.hotspot_y, c.width, c.height),
        (3, 4, 12, 20)
    );
    assert_eq!(c.data, rgba);
    // The cursor lives on a buffer, never on the screen.
    assert_same(&model, &d.framebuffer(), "cursor");
    // Hidden: a 1x1 transparent cursor.
    d.set_cursor(0, 0, 0, 0, &[]).unwrap();
    apply(&mut model, &frame(&mut d));
    let c = model.cursor().expect("cursor set");
    assert_eq!((c.width, c.height), (1, 1));
    assert_eq!(c.data, vec![0, 0, 0, 0]);
    // Oversized cursors and short buffers are refused.
    assert!(d.set_cursor(0, 0, 5000, 2, &[]).is_err());
    assert!(d.set_cursor(0, 0, 4, 4, &[0; 10]).is_err());
}

#[test]
fn copy_rect_is_sent_as_copy() {
    let mut d = Display::new(DisplayConfig::new(200, 100)).unwrap();
    let mut model = Model::new();
    let mut rng = Rng(7);
    let px = text_block(&mut rng, 80, 40);
    d.put_pixels(0, 0, 80, 40, &px, 80).unwrap();
    apply(&mut model, &frame(&mut d));
    d.copy(0, 0, 100, 50, 80, 40).unwrap();
    let out = frame(&mut d);
    assert_eq!(count(&out, "copy"), 1);
    assert_eq!(count(&out, "img"), 0, "no pixels for a copy");
    apply(&mut model, &out);
    assert_same(&model, &d.framebuffer(), "copy");
    // A copy of an area drawn in the same frame is still right.
    let px = text_block(&mut rng, 30, 30);
    d.put_pixels(10, 10, 30, 30, &px, 30).unwrap();
    d.copy(0, 0, 120, 5, 60, 60).unwrap();
    d.fill(0, 0, 5, 5, 0xff0000).unwrap();
    apply(&mut model, &frame(&mut d));
    assert_same(&model, &d.framebuffer(), "copy of fresh pixels");
}

/// An xterm-like screen: `rows` lines of 16-pixel text starting at `first`.
fn xterm(w: u32, rows: u32, first: u32) -> Vec<u32> {
    let mut px = vec![0x1e1e1eu32; (w * rows * 16) as usize];
    for r in 0..rows {
        let line = first + r;
        let len = (line * 37 % (w / 8)) + 1;
        for c in 0..len {
            let ch = (line * 31 + c * 7) % 95;
            for gy in 2..14 {
                for gx in 1..7 {
                    let bit = (u64::from(ch) << 32 | u64::from(gx << 8 | gy))
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        >> 61;
                    if bit < 3 {
                        px[((r * 16 + gy) * w + c * 8 + gx) as usize] = 0xd0d0d0;
                    }
                }
            }
        }
    }
    px
}

#[test]
fn vertical_scroll_becomes_copy_plus_strip() {
    let (w, rows) = (640u32, 30u32);
    let h = rows * 16;
    let mut d = Display::new(DisplayConfig::new(w, h)).unwrap();
    let mut model = Model::new();
    d.put_pixels(0, 0, w, h, &xterm(w, rows, 0), w as usize)
        .unwrap();
    let first = frame(&mut d);
    apply(&mut model, &first);
    // The server resends the whole screen scrolled by one line.
    d.put_pixels(0, 0, w, h, &xterm(w, rows, 1), w as usize)
        .unwrap();
    let mut out = Vec::new();
    let stats = d.take_frame(&mut out);
    assert_eq!(stats.scrolls, 1, "{stats:?}");
    assert_eq!(count(&out, "copy"), 1);
    apply(&mut model, &out);
    assert_same(&model, &d.framebuffer(), "scroll");
    // Compare with sending the whole screen again.
    d.invalidate();
    let naive = frame(&mut d);
    assert!(
        out.len() * 8 < naive.len(),
        "scroll frame {} bytes vs full repaint {}",
        out.len(),
        naive.len()
    );
    // Only about one text line of pixels was encoded, as one image.
    assert!(stats.image_pixels <= u64::from(w) * 16, "{stats:?}");
    assert_eq!(stats.pngs, 1, "{stats:?}");
}

#[test]
fn scrolling_part_of_the_screen() {
    // A terminal window inside a desktop with a gradient background.
    let (w, h) = (800u32, 600u32);
    let mut d = Display::new(DisplayConfig::new(w, h)).unwrap();
    let bg: Vec<u32> = (0..w * h)
        .map(|i| rgb((i % w) as u8, (i / w) as u8, 90))
        .collect();
    d.put_pixels(0, 0, w, h, &bg, w as usize).unwrap();
    d.put_pixels(100, 50, 480, 320, &xterm(480, 20, 0), 480)
        .unwrap();
    let mut model = Model::new();
    apply(&mut model, &frame(&mut d));
    for i in 1..6 {
        // The server sends the full screen each time.
        let mut full = bg.clone();
        let term = xterm(480, 20, i);
        for y in 0..320 {
            let s = (y * 480) as usize;
            let dst = ((50 + y) * w + 100) as usize;
            full[dst..dst + 480].copy_from_slice(&term[s..s + 480]);
        }
        d.put_pixels(0, 0, w, h, &full, w as usize).unwrap();
        let mut out = Vec::new();
        let stats = d.take_frame(&mut out);
        assert_eq!(stats.scrolls, 1, "frame {i}: {stats:?}");
        assert!(stats.image_pixels <= 480 * 16, "frame {i}: {stats:?}");
        apply(&mut model, &out);
        assert_same(&model, &d.framebuffer(), "partial scroll");
    }
}

#[test]
fn jpeg_only_when_announced_and_not_lossless() {
    let photo = |d: &mut Display| {
        let mut rng = Rng(99);
        let px = noise_block(&mut rng, 256, 256);
        d.put_pixels(0, 0, 256, 256, &px, 256).unwrap();
        frame(d)
    };
    let mut png_only = Display::new(DisplayConfig::new(256, 256)).unwrap();
    let out = photo(&mut png_only);
    assert!(
        mimetypes(&out).iter().all(|m| m == "image/png"),
        "{:?}",
        mimetypes(&out)
    );

    let mut lossless = Display::new(
        DisplayConfig::new(256, 256)
            .with_image_mimetypes(JPEG)
            .with_lossless(true),
    )
    .unwrap();
    let out = photo(&mut lossless);
    assert!(mimetypes(&out).iter().all(|m| m == "image/png"));

    let mut adaptive =
        Display::new(DisplayConfig::new(256, 256).with_image_mimetypes(JPEG)).unwrap();
    let out = photo(&mut adaptive);
    assert!(
        mimetypes(&out).iter().any(|m| m == "image/jpeg"),
        "{:?}",
        mimetypes(&out)
    );
    let mut model = Model::new();
    apply(&mut model, &out);
    // Text stays PNG even when JPEG is allowed.
    let mut rng = Rng(3);
    let px = text_block(&mut rng, 200, 100);
    adaptive.put_pixels(0, 0, 200, 100, &px, 200).unwrap();
    let out = frame(&mut adaptive);
    assert!(
        mimetypes(&out).iter().all(|m| m == "image/png"),
        "{:?}",
        mimetypes(&out)
    );
}

#[test]
fn jpeg_areas_are_refined_to_exact_pixels() {
    let mut d = Display::new(DisplayConfig::new(300, 200).with_image_mimetypes(JPEG)).unwrap();
    let mut model = Model::new();
    let mut rng = Rng(5);
    let px = noise_block(&mut rng, 300, 200);
    d.put_pixels(0, 0, 300, 200, &px, 300).unwrap();
    let mut out = Vec::new();
    let stats = d.take_frame(&mut out);
    assert!(stats.jpegs > 0, "{stats:?}");
    apply(&mut model, &out);
    let (_, _, shot) = model.screenshot();
    assert_ne!(shot, d.framebuffer().to_rgba(), "JPEG is lossy");
    assert!(d.next_refinement().is_some());
    d.set_refine_after(Duration::ZERO);
    assert!(d.has_changes(), "refinement is due");
    let mut out = Vec::new();
    let stats = d.take_frame(&mut out);
    assert!(stats.refinements > 0 && stats.jpegs == 0, "{stats:?}");
    apply(&mut model, &out);
    assert_same(&model, &d.framebuffer(), "refined");
    assert!(!d.has_changes());
}

#[test]
fn jpeg_quality_follows_lag() {
    let mut d = Display::new(DisplayConfig::new(64, 64).with_image_mimetypes(JPEG)).unwrap();
    assert_eq!(d.jpeg_quality(), 90);
    d.set_lag(Duration::from_millis(550));
    let mid = d.jpeg_quality();
    assert!(40 < mid && mid < 90, "{mid}");
    d.set_lag(Duration::from_secs(3));
    assert_eq!(d.jpeg_quality(), 40);
    d.note_timing(1, Duration::from_millis(10));
    assert_eq!(d.jpeg_quality(), 90);
    d.note_timing(30, Duration::from_millis(10));
    assert_eq!(d.jpeg_quality(), 40);
}

#[test]
fn joiner_full_repaint_rebuilds_the_same_picture() {
    let mut rng = Rng(4242);
    let mut d = Display::new(DisplayConfig::new(400, 300).with_image_mimetypes(JPEG)).unwrap();
    let mut owner = Model::new();
    random_ops(&mut d, &mut rng, 40);
    apply(&mut owner, &frame(&mut d));
    random_ops(&mut d, &mut rng, 10);
    // Pending changes (not yet broadcast) must not leak into the repaint.
    let mut repaint = Vec::new();
    d.full_repaint(&mut repaint);
    let mut joiner = Model::new();
    apply(&mut joiner, &repaint);
    assert!(mimetypes(&repaint).iter().all(|m| m == "image/png"));
    // Then both receive the same broadcast frames.
    for _ in 0..5 {
        let out = frame(&mut d);
        apply(&mut owner, &out);
        apply(&mut joiner, &out);
        random_ops(&mut d, &mut rng, 10);
    }
    d.set_refine_after(Duration::ZERO);
    let out = frame(&mut d);
    apply(&mut owner, &out);
    apply(&mut joiner, &out);
    let out = frame(&mut d);
    apply(&mut owner, &out);
    apply(&mut joiner, &out);
    assert_same(&joiner, &d.framebuffer(), "joiner");
    assert_same(&owner, &d.framebuffer(), "owner");
    assert_eq!(joiner.cursor(), owner.cursor());
}

#[test]
fn absurd_sizes_are_refused() {
    for (w, h) in [
        (0, 10),
        (10, 0),
        (100_000, 10),
        (10, 100_000),
        (16384, 16384),
        (u32::MAX, 1),
    ] {
        let err = Display::new(DisplayConfig::new(w, h)).unwrap_err();
        assert_eq!(
            err,
            DisplayError::InvalidSize {
                width: w,
                height: h
            }
        );
        assert_eq!(err.status(), Status::UpstreamError);
    }
    let mut d = Display::new(DisplayConfig::new(100, 100)).unwrap();
    assert!(matches!(
        d.resize(0, 5),
        Err(DisplayError::InvalidSize { .. })
    ));
    assert!(matches!(
        d.resize(100_000, 100_000),
        Err(DisplayError::InvalidSize { .. })
    ));
    assert!(matches!(
        d.put_pixels(90, 90, 20, 20, &[0; 400], 20),
        Err(DisplayError::OutOfBounds { .. })
    ));
    assert!(matches!(
        d.put_pixels(0, 0, 20, 20, &[0; 399], 20),
        Err(DisplayError::ShortBuffer { .. })
    ));
    assert!(d.copy(u32::MAX, 0, 0, 0, 2, 2).is_err());
    // Still usable at its old size.
    assert_eq!((d.width(), d.height()), (100, 100));
    let mut model = Model::new();
    apply(&mut model, &frame(&mut d));
    assert_same(&model, &d.framebuffer(), "after refusals");
}

#[test]
fn async_frames_and_cancellation() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut d = Display::new(DisplayConfig::new(200, 150)).unwrap();
        let mut model = Model::new();
        let mut rng = Rng(77);
        random_ops(&mut d, &mut rng, 20);
        let mut out = Vec::new();
        d.take_frame_async(&mut out).await;
        apply(&mut model, &out);
        assert_same(&model, &d.framebuffer(), "async");
        // A frame whose future is dropped before completion comes out next time.
        random_ops(&mut d, &mut rng, 20);
        {
            let mut lost = Vec::new();
            let fut = d.take_frame_async(&mut lost);
            let _ = tokio::time::timeout(Duration::ZERO, fut).await;
        }
        random_ops(&mut d, &mut rng, 5);
        let mut out = Vec::new();
        d.take_frame_async(&mut out).await;
        apply(&mut model, &out);
        d.set_refine_after(Duration::ZERO);
        let mut out = Vec::new();
        d.take_frame_async(&mut out).await;
        apply(&mut model, &out);
        assert_same(&model, &d.framebuffer(), "after cancellation");
        let mut repaint = Vec::new();
        d.full_repaint_async(&mut repaint).await;
        let mut joiner = Model::new();
        apply(&mut joiner, &repaint);
        assert_same(&joiner, &d.framebuffer(), "async repaint");
    });
}

#[test]
fn scattered_changes_everywhere() {
    let (w, h) = (1280u32, 1024u32);
    let mut d = Display::new(DisplayConfig::new(w, h).with_lossless(true)).unwrap();
    let mut model = Model::new();
    apply(&mut model, &frame(&mut d));
    let mut rng = Rng(31337);
    for round in 0..3 {
        // A few pixels in every 64x64 tile (320 tiles).
        for ty in 0..h / 64 {
            for tx in 0..w / 64 {
                for _ in 0..3 {
                    let (x, y) = (tx * 64 + rng.below(64), ty * 64 + rng.below(64));
                    d.fill(x, y, 1, 1, (rng.next() >> 40) as u32).unwrap();
                }
            }
        }
        apply(&mut model, &frame(&mut d));
        assert_same(&model, &d.framebuffer(), &format!("round {round}"));
    }
}

#[test]
fn display_and_its_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn sync<T: Send + Sync>() {}
    sync::<Display>();
    sync::<guacr_display::EncodePool>();
    let mut d = Display::new(DisplayConfig::new(8, 8)).unwrap();
    let mut out = Vec::new();
    let fut = d.take_frame_async(&mut out);
    send(&fut);
    drop(fut);
    let fut = d.full_repaint_async(&mut out);
    send(&fut);
}

/// Deferred frames (every user watches video) encode no image, pass size
/// and cursor, and the next real frame brings clients to the exact picture;
/// a joiner's repaint after it is exact too.
#[test]
fn deferred_frames_hold_the_picture_back_without_losing_it() {
    for seed in 1..=6u64 {
        let (mut rng, mut d, mut model) = lossless_case(seed, JPEG);
        apply(&mut model, &frame(&mut d));
        for step in 0..12 {
            // A few deferred frames: changes (copies and scrolls included),
            // a resize now and then, a cursor change.
            for _ in 0..3 {
                if rng.below(10) == 0 {
                    d.resize(100 + rng.below(300), 80 + rng.below(200)).unwrap();
                }
                let n = 1 + rng.below(6) as usize;
                random_ops(&mut d, &mut rng, n);
                if rng.below(4) == 0 {
                    let rgba = vec![(step * 16) as u8; 8 * 8 * 4];
                    d.set_cursor(1, 1, 8, 8, &rgba).unwrap();
                }
                assert!(d.has_changes());
                let mut out = Vec::new();
                d.take_frame_deferred(&mut out);
                for i in instructions(&out) {
                    assert!(
                        matches!(
                            i.opcode.as_str(),
                            "size" | "img" | "blob" | "end" | "cursor"
                        ) && (i.opcode != "img" || i.args[2] != "0")
                            && (i.opcode != "size"
                                || i.args[0] == "0"
                                || i.args[0].starts_with('-')),
                        "seed {seed} step {step}: deferred frame drew {} {:?}",
                        i.opcode,
                        i.args
                    );
                }
                apply(&mut model, &out);
                assert!(!d.has_changes(), "nothing new since the deferred frame");
                assert!(d.next_refinement().is_none(), "no refinement while held");
                assert!(d.has_held_changes());
            }
            let out = frame(&mut d);
            assert!(!d.has_held_changes());
            apply(&mut model, &out);
            assert_same(
                &model,
                &d.framebuffer(),
                &format!("seed {seed} step {step}"),
            );
        }
        // A joiner's repaint right after a deferred frame needs a real frame first.
        random_ops(&mut d, &mut rng, 4);
        let mut out = Vec::new();
        d.take_frame_deferred(&mut out);
        assert!(d.has_held_changes());
        let caught_up = frame(&mut d);
        apply(&mut model, &caught_up);
        let mut joiner = Model::new();
        let mut full = Vec::new();
        d.full_repaint(&mut full);
        apply(&mut joiner, &full);
        assert_same(&joiner, &d.framebuffer(), &format!("seed {seed} joiner"));
    }
}

/// With `image/webp` announced, many-colour regions go as lossless WebP
/// (exact pixels, also as the refinement of JPEG areas); few-colour ones
/// stay palette PNG; without it no WebP is ever sent.
#[test]
fn webp_when_announced_is_lossless_and_only_then() {
    const WEBP: &[&str] = &["image/png", "image/jpeg", "image/webp"];
    let mut webps = 0;
    for seed in 1..=8u64 {
        let (mut rng, mut d, mut model) = lossless_case(seed, WEBP);
        for step in 0..20 {
            let n = 1 + rng.below(8) as usize;
            random_ops(&mut d, &mut rng, n);
            let out = frame(&mut d);
            let types = mimetypes(&out);
            assert!(!types.iter().any(|m| m == "image/jpeg"), "lossless mode");
            webps += types.iter().filter(|m| *m == "image/webp").count();
            apply(&mut model, &out);
            assert_same(
                &model,
                &d.framebuffer(),
                &format!("seed {seed} step {step}"),
            );
        }
    }
    assert!(webps > 0, "noise blocks went as WebP");

    // Text-like (few colours) stays PNG.
    let mut d = Display::new(DisplayConfig::new(200, 100).with_image_mimetypes(WEBP)).unwrap();
    let mut rng = Rng(9);
    let px = text_block(&mut rng, 200, 100);
    d.put_pixels(0, 0, 200, 100, &px, 200).unwrap();
    let out = frame(&mut d);
    assert!(!mimetypes(&out).iter().any(|m| m == "image/webp"));

    // A JPEG area is refined to exact pixels as WebP.
    let mut d = Display::new(DisplayConfig::new(300, 200).with_image_mimetypes(WEBP)).unwrap();
    let mut model = Model::new();
    let px = noise_block(&mut rng, 300, 200);
    d.put_pixels(0, 0, 300, 200, &px, 300).unwrap();
    let out = frame(&mut d);
    assert!(
        mimetypes(&out).iter().all(|m| m == "image/jpeg"),
        "photo → JPEG first"
    );
    apply(&mut model, &out);
    d.set_refine_after(Duration::ZERO);
    let mut out = Vec::new();
    let stats = d.take_frame(&mut out);
    assert!(stats.refinements > 0 && stats.webps > 0, "{stats:?}");
    apply(&mut model, &out);
    assert_same(&model, &d.framebuffer(), "refined as WebP");

    // Not announced: never WebP.
    let mut d = Display::new(
        DisplayConfig::new(300, 200)
            .with_image_mimetypes(&["image/png"])
            .with_lossless(true),
    )
    .unwrap();
    let px = noise_block(&mut rng, 300, 200);
    d.put_pixels(0, 0, 300, 200, &px, 300).unwrap();
    let out = frame(&mut d);
    assert!(mimetypes(&out).iter().all(|m| m == "image/png"));
}
