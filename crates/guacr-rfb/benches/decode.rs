//! Decode throughput at 1920x1080: one full-screen FramebufferUpdate per
//! iteration, fed to a connected client and drained. Throughput is counted in
//! decoded output bytes (1920 * 1080 * 4 per frame), so MiB/s / 7.9 = frames/s.
//!
//! Run: `cargo bench -p guacr-rfb --bench decode`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use guacr_rfb::{Event, PixelFormat, RfbClient, RfbConfig};

const W: u16 = 1920;
const H: u16 = 1080;

fn client() -> RfbClient {
    let mut c = RfbClient::new(RfbConfig::default());
    let mut s = b"RFB 003.008\n".to_vec();
    s.extend_from_slice(&[1, 1, 0, 0, 0, 0]);
    s.extend_from_slice(&W.to_be_bytes());
    s.extend_from_slice(&H.to_be_bytes());
    s.extend_from_slice(&PixelFormat::RGB888.to_wire());
    s.extend_from_slice(&[0, 0, 0, 0]);
    c.feed(&s).expect("handshake");
    while c.poll_event().is_some() {}
    c.take_output();
    c
}

/// A desktop-like picture: flat background, "text" rows, a gradient panel.
fn desktop(x: usize, y: usize) -> u32 {
    if x > 1200 && y > 200 && y < 900 {
        // Photo-like panel.
        let r = (x * 255 / 1920) as u32;
        let g = (y * 255 / 1080) as u32;
        let b = (((x ^ y) & 0x3F) + 96) as u32;
        return (r << 16) | (g << 8) | b;
    }
    if (y / 16).is_multiple_of(2) && (x * 7 + y * 13) % 11 < 4 {
        0x202020
    } else {
        0xF0F0F0
    }
}

fn photo(x: usize, y: usize) -> u32 {
    let r = ((x * 3 + y) % 256) as u32;
    let g = ((x + y * 2) / 4 % 256) as u32;
    let b = (((x * y) >> 6) % 256) as u32;
    (r << 16) | (g << 8) | b
}

fn rect_header(m: &mut Vec<u8>, x: u16, y: u16, w: u16, h: u16, enc: i32) {
    for v in [x, y, w, h] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    m.extend_from_slice(&enc.to_be_bytes());
}

fn zsync(z: &mut flate2::Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let start = z.total_in();
    loop {
        let done = (z.total_in() - start) as usize;
        out.reserve(64 * 1024);
        z.compress_vec(&data[done..], &mut out, flate2::FlushCompress::Sync)
            .expect("compress");
        if (z.total_in() - start) as usize == data.len() && out.len() < out.capacity() {
            return out;
        }
    }
}

fn raw_frame(pic: fn(usize, usize) -> u32) -> Vec<u8> {
    let mut m = vec![0, 0, 0, 1];
    rect_header(&mut m, 0, 0, W, H, 0);
    for y in 0..usize::from(H) {
        for x in 0..usize::from(W) {
            m.extend_from_slice(&pic(x, y).to_le_bytes());
        }
    }
    m
}

/// ZRLE: palette tiles where a tile has <= 16 colours, raw CPIXELs otherwise.
fn zrle_frame(pic: fn(usize, usize) -> u32) -> Vec<u8> {
    let mut tiles = Vec::new();
    for ty in (0..usize::from(H)).step_by(64) {
        for tx in (0..usize::from(W)).step_by(64) {
            let (tw, th) = (64.min(usize::from(W) - tx), 64.min(usize::from(H) - ty));
            let px: Vec<u32> = (0..th)
                .flat_map(|y| (0..tw).map(move |x| pic(tx + x, ty + y)))
                .collect();
            let mut pal: Vec<u32> = Vec::new();
            for &p in &px {
                if !pal.contains(&p) {
                    pal.push(p);
                    if pal.len() > 16 {
                        break;
                    }
                }
            }
            if pal.len() == 1 {
                tiles.push(1);
                tiles.extend_from_slice(&pal[0].to_le_bytes()[..3]);
            } else if pal.len() <= 16 {
                tiles.push(pal.len() as u8);
                for p in &pal {
                    tiles.extend_from_slice(&p.to_le_bytes()[..3]);
                }
                let bits = match pal.len() {
                    2 => 1,
                    3..=4 => 2,
                    _ => 4,
                };
                for y in 0..th {
                    let mut acc = 0u8;
                    let mut used = 0;
                    for x in 0..tw {
                        let i = pal.iter().position(|&p| p == px[y * tw + x]).unwrap_or(0) as u8;
                        acc |= i << (8 - bits - used);
                        used += bits;
                        if used == 8 {
                            tiles.push(acc);
                            acc = 0;
                            used = 0;
                        }
                    }
                    if used > 0 {
                        tiles.push(acc);
                    }
                }
            } else {
                tiles.push(0);
                for p in &px {
                    tiles.extend_from_slice(&p.to_le_bytes()[..3]);
                }
            }
        }
    }
    let mut z = flate2::Compress::new(flate2::Compression::new(6), true);
    let data = zsync(&mut z, &tiles);
    let mut m = vec![0, 0, 0, 1];
    rect_header(&mut m, 0, 0, W, H, 16);
    m.extend_from_slice(&(data.len() as u32).to_be_bytes());
    m.extend_from_slice(&data);
    m
}

fn compact(len: usize) -> Vec<u8> {
    let mut v = vec![(len & 0x7F) as u8];
    if len > 0x7F {
        v[0] |= 0x80;
        v.push(((len >> 7) & 0x7F) as u8);
        if len > 0x3FFF {
            v[1] |= 0x80;
            v.push((len >> 14) as u8);
        }
    }
    v
}

/// Tight in 256x256 rectangles (as servers split them): basic/copy filter
/// with zlib, or JPEG.
fn tight_frame(pic: fn(usize, usize) -> u32, jpeg: bool) -> Vec<u8> {
    let mut rects = Vec::new();
    let mut n = 0u16;
    let mut z = flate2::Compress::new(flate2::Compression::new(6), true);
    for ry in (0..usize::from(H)).step_by(256) {
        for rx in (0..usize::from(W)).step_by(256) {
            let (rw, rh) = (256.min(usize::from(W) - rx), 256.min(usize::from(H) - ry));
            let mut rgb = Vec::with_capacity(rw * rh * 3);
            for y in 0..rh {
                for x in 0..rw {
                    let p = pic(rx + x, ry + y);
                    rgb.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, p as u8]);
                }
            }
            rect_header(&mut rects, rx as u16, ry as u16, rw as u16, rh as u16, 7);
            if jpeg {
                let mut j = Vec::new();
                jpeg_encoder::Encoder::new(&mut j, 80)
                    .encode(&rgb, rw as u16, rh as u16, jpeg_encoder::ColorType::Rgb)
                    .expect("jpeg");
                rects.push(0x90);
                rects.extend_from_slice(&compact(j.len()));
                rects.extend_from_slice(&j);
            } else {
                let d = zsync(&mut z, &rgb);
                rects.push(0x00);
                rects.extend_from_slice(&compact(d.len()));
                rects.extend_from_slice(&d);
            }
            n += 1;
        }
    }
    let mut m = vec![0, 0];
    m.extend_from_slice(&n.to_be_bytes());
    m.extend_from_slice(&rects);
    m
}

fn bench_frame(c: &mut Criterion, name: &str, frame: Vec<u8>) {
    let mut g = c.benchmark_group("decode_1080p");
    g.throughput(Throughput::Bytes(u64::from(W) * u64::from(H) * 4));
    g.sample_size(20);
    eprintln!("{name}: {} wire bytes per frame", frame.len());
    g.bench_function(name, |b| {
        b.iter_batched(
            client,
            |mut cl| {
                cl.feed(&frame).expect("decode");
                let mut px = 0usize;
                while let Some(e) = cl.poll_event() {
                    if let Event::Pixels { data, .. } = e {
                        px += data.len();
                    }
                }
                px
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_frame(c, "raw", raw_frame(desktop));
    bench_frame(c, "zrle_desktop", zrle_frame(desktop));
    bench_frame(c, "zrle_photo", zrle_frame(photo));
    bench_frame(c, "tight_zlib_desktop", tight_frame(desktop, false));
    bench_frame(c, "tight_jpeg_photo", tight_frame(photo, true));
}

criterion_group!(decode, benches);
criterion_main!(decode);
