//! Each encoding decoded from hand-built server messages, compared with the
//! expected pixels; pixel-format conversions; pseudo-encodings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use guacr_rfb::{
    Event, PixelFormat, PixelFormatRequest, ResizeReason, ResizeStatus, RfbConfig, RfbError,
};

const R: u32 = 0xFF0000;
const G: u32 = 0x00FF00;
const B: u32 = 0x0000FF;
const W: u32 = 0xFFFFFF;

fn pixels_of(ev: &[Event]) -> Vec<(u16, u16, u16, u16, Vec<u32>)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Pixels { x, y, w, h, data } => Some((*x, *y, *w, *h, data.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn raw_and_update_framing() {
    let mut c = default_client(4, 4);
    let m = Msg::new()
        .update(1)
        .rect(1, 1, 2, 2, 0)
        .px(R)
        .px(G)
        .px(B)
        .px(0x123456);
    let ev = feed(&mut c, &m.0);
    assert_eq!(
        ev,
        vec![
            Event::UpdateBegin,
            Event::Pixels {
                x: 1,
                y: 1,
                w: 2,
                h: 2,
                data: vec![R, G, B, 0x123456]
            },
            Event::UpdateEnd
        ]
    );
    // Incremental request sent automatically after the update.
    assert_eq!(c.take_output(), [3, 1, 0, 0, 0, 0, 0, 4, 0, 4]);
    // Empty update.
    assert_eq!(
        feed(&mut c, &Msg::new().update(0).0),
        vec![Event::UpdateBegin, Event::UpdateEnd]
    );
}

#[test]
fn manual_update_requests() {
    let mut c = connected(
        RfbConfig {
            auto_update_requests: false,
            ..RfbConfig::default()
        },
        4,
        4,
        PixelFormat::RGB888,
    );
    feed(&mut c, &Msg::new().update(0).0);
    assert!(!c.has_output());
    c.request_update(false);
    assert_eq!(c.take_output(), [3, 0, 0, 0, 0, 0, 0, 4, 0, 4]);
}

#[test]
fn raw_large_rect_arrives_in_strips() {
    let (w, h) = (1000u16, 200u16);
    let mut c = default_client(w, h);
    let mut m = Msg::new().update(1).rect(0, 0, w, h, 0);
    for i in 0..u32::from(w) * u32::from(h) {
        m = m.px(i & 0xFFFFFF);
    }
    let ev = feed(&mut c, &m.0);
    let strips = pixels_of(&ev);
    assert!(strips.len() > 1, "expected several strips");
    let mut fb = Fb::new(usize::from(w), usize::from(h));
    fb.apply(&ev);
    for (i, p) in fb.px.iter().enumerate() {
        assert_eq!(*p, i as u32 & 0xFFFFFF);
    }
}

#[test]
fn raw_16bpp_big_endian_server_format() {
    let pf = PixelFormat {
        big_endian: true,
        ..PixelFormat::RGB565
    };
    let cfg = RfbConfig {
        pixel_format: PixelFormatRequest::ServerNative,
        ..RfbConfig::default()
    };
    let mut c = connected(cfg, 3, 1, pf);
    // Pure red (31<<11), green max (63<<5), a mid value r=16 g=32 b=8.
    let mid: u16 = (16 << 11) | (32 << 5) | 8;
    let m = Msg::new()
        .update(1)
        .rect(0, 0, 3, 1, 0)
        .u16(0xF800)
        .u16(0x07E0)
        .u16(mid);
    let ev = feed(&mut c, &m.0);
    // 16*255/31 = 131.6 -> 132, 32*255/63 = 129.5 -> 130 (rounded), 8*255/31 = 65.8 -> 66.
    assert_eq!(pixels_of(&ev)[0].4, vec![R, G, 0x848242]);
}

#[test]
fn raw_24bpp_and_shifted_32bpp_big_endian() {
    let pf24 = PixelFormat {
        bits_per_pixel: 24,
        ..PixelFormat::RGB888
    };
    let cfg = RfbConfig {
        pixel_format: PixelFormatRequest::ServerNative,
        ..RfbConfig::default()
    };
    let mut c = connected(cfg.clone(), 1, 1, pf24);
    let ev = feed(
        &mut c,
        &Msg::new()
            .update(1)
            .rect(0, 0, 1, 1, 0)
            .bytes(&[0x56, 0x34, 0x12])
            .0,
    );
    assert_eq!(pixels_of(&ev)[0].4, vec![0x123456]);

    // 32 bpp big-endian, blue at 24, green at 16, red at 8.
    let pf = PixelFormat {
        big_endian: true,
        red_shift: 8,
        green_shift: 16,
        blue_shift: 24,
        ..PixelFormat::RGB888
    };
    let mut c = connected(cfg, 1, 1, pf);
    let ev = feed(
        &mut c,
        &Msg::new()
            .update(1)
            .rect(0, 0, 1, 1, 0)
            .bytes(&[0x56, 0x34, 0x12, 0])
            .0,
    );
    assert_eq!(pixels_of(&ev)[0].4, vec![0x123456]);
}

#[test]
fn colour_map_8bpp() {
    let pf = PixelFormat {
        bits_per_pixel: 8,
        depth: 8,
        big_endian: false,
        true_colour: false,
        red_max: 0,
        green_max: 0,
        blue_max: 0,
        red_shift: 0,
        green_shift: 0,
        blue_shift: 0,
    };
    let cfg = RfbConfig {
        pixel_format: PixelFormatRequest::ServerNative,
        ..RfbConfig::default()
    };
    let mut c = connected(cfg, 3, 1, pf);
    // SetColourMapEntries: first 5, two colours.
    let m = Msg::new()
        .u8(1)
        .u8(0)
        .u16(5)
        .u16(2)
        .u16(0xFFFF)
        .u16(0x8000)
        .u16(0)
        .u16(0x1234)
        .u16(0x5678)
        .u16(0x9ABC)
        .update(1)
        .rect(0, 0, 3, 1, 0)
        .bytes(&[5, 6, 200]);
    let ev = feed(&mut c, &m.0);
    assert_eq!(pixels_of(&ev)[0].4, vec![0xFF8000, 0x12569A, 0]);
}

#[test]
fn bgr233_request_and_swap_red_blue() {
    let cfg = RfbConfig {
        pixel_format: PixelFormatRequest::Depth(8),
        swap_red_blue: true,
        ..RfbConfig::default()
    };
    let mut c = connected(cfg, 2, 1, PixelFormat::RGB888);
    assert_eq!(c.pixel_format(), PixelFormat::BGR233);
    // red=7 (bits 0-2), blue=3 (bits 6-7).
    let ev = feed(
        &mut c,
        &Msg::new()
            .update(1)
            .rect(0, 0, 2, 1, 0)
            .bytes(&[0x07, 0xC0])
            .0,
    );
    // Swapped: red shows as blue and vice versa.
    assert_eq!(pixels_of(&ev)[0].4, vec![B, R]);

    let cfg = RfbConfig {
        swap_red_blue: true,
        ..RfbConfig::default()
    };
    let mut c = connected(cfg, 1, 1, PixelFormat::RGB888);
    let ev = feed(
        &mut c,
        &Msg::new().update(1).rect(0, 0, 1, 1, 0).px(0x123456).0,
    );
    assert_eq!(pixels_of(&ev)[0].4, vec![0x563412]);
}

#[test]
fn copyrect_and_bounds() {
    let mut c = default_client(10, 10);
    let ev = feed(
        &mut c,
        &Msg::new().update(1).rect(5, 5, 3, 2, 1).u16(0).u16(1).0,
    );
    assert_eq!(
        ev[1],
        Event::Copy {
            src_x: 0,
            src_y: 1,
            x: 5,
            y: 5,
            w: 3,
            h: 2
        }
    );
    let e = feed_err(
        &mut c,
        &Msg::new().update(1).rect(5, 5, 3, 2, 1).u16(8).u16(0).0,
    );
    assert!(matches!(e, RfbError::Protocol(_)));
}

#[test]
fn rectangle_outside_framebuffer_is_an_error() {
    let mut c = default_client(10, 10);
    let e = feed_err(&mut c, &Msg::new().update(1).rect(8, 0, 3, 1, 0).0);
    assert!(
        matches!(e, RfbError::Protocol(ref s) if s.contains("outside")),
        "{e}"
    );
    assert_eq!(c.feed(&[]), Err(RfbError::Closed));
}

#[test]
fn rre() {
    let mut c = default_client(8, 8);
    let m = Msg::new()
        .update(1)
        .rect(1, 1, 6, 6, 2)
        .u32(2)
        .px(W)
        .px(R)
        .u16(0)
        .u16(0)
        .u16(2)
        .u16(2)
        .px(B)
        .u16(3)
        .u16(4)
        .u16(3)
        .u16(2);
    let ev = feed(&mut c, &m.0);
    let mut fb = Fb::new(8, 8);
    fb.apply(&ev);
    assert_eq!(fb.at(1, 1), R);
    assert_eq!(fb.at(2, 2), R);
    assert_eq!(fb.at(3, 3), W);
    assert_eq!(fb.at(4, 5), B);
    assert_eq!(fb.at(6, 6), B);
    assert_eq!(fb.at(0, 0), 0xDEAD);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Fill { .. }))
            .count(),
        3
    );
    // Subrectangle outside.
    let e = feed_err(
        &mut c,
        &Msg::new()
            .update(1)
            .rect(0, 0, 2, 2, 2)
            .u32(1)
            .px(W)
            .px(R)
            .u16(1)
            .u16(1)
            .u16(2)
            .u16(1)
            .0,
    );
    assert!(matches!(e, RfbError::Protocol(_)));
}

#[test]
fn hextile() {
    // 20x18: tiles 16x16, 4x16, 16x2, 4x2.
    let mut c = default_client(20, 18);
    let m = Msg::new()
        .update(1)
        .rect(0, 0, 20, 18, 5)
        // Tile 1: bg white, fg red, 2 subrects (fg): (0,0) 2x1 and (15,15) 1x1.
        .u8(2 | 4 | 8)
        .px(W)
        .px(R)
        .u8(2)
        .u8(0x00)
        .u8(0x10)
        .u8(0xFF)
        .u8(0x00)
        // Tile 2 (4x16): raw.
        .u8(1)
        .bytes(
            &(0..64u32)
                .flat_map(|i| i.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
        // Tile 3 (16x2): bg kept (white), coloured subrect blue at (3,1) 1x1.
        .u8(8 | 16)
        .u8(1)
        .px(B)
        .u8(0x31)
        .u8(0x00)
        // Tile 4 (4x2): new bg green, nothing else.
        .u8(2)
        .px(G);
    let ev = feed(&mut c, &m.0);
    let mut fb = Fb::new(20, 18);
    fb.apply(&ev);
    assert_eq!(fb.at(0, 0), R);
    assert_eq!(fb.at(1, 0), R);
    assert_eq!(fb.at(2, 0), W);
    assert_eq!(fb.at(15, 15), R);
    assert_eq!(fb.at(14, 15), W);
    assert_eq!(fb.at(16, 0), 0);
    assert_eq!(fb.at(19, 15), 63);
    assert_eq!(fb.at(3, 17), B);
    assert_eq!(fb.at(3, 16), W);
    assert_eq!(fb.at(17, 17), G);
    assert!(fb.px.iter().all(|&p| p != 0xDEAD));
    // Subrectangle outside its tile.
    let e = feed_err(
        &mut c,
        &Msg::new()
            .update(1)
            .rect(0, 0, 4, 4, 5)
            .u8(2 | 8)
            .px(W)
            .u8(1)
            .u8(0x33)
            .u8(0x11)
            .0,
    );
    assert!(matches!(e, RfbError::Protocol(_)));
}

#[test]
fn hextile_solid_becomes_fill() {
    let mut c = default_client(32, 16);
    let m = Msg::new().update(1).rect(0, 0, 32, 16, 5).u8(2).px(B).u8(0);
    let ev = feed(&mut c, &m.0);
    assert_eq!(
        ev[1],
        Event::Fill {
            x: 0,
            y: 0,
            w: 32,
            h: 16,
            color: B
        }
    );
}

/// Tile data shared by the TRLE and ZRLE tests: a 6x3 rectangle (one tile)
/// with each subencoding in turn, and the expected pixels.
fn rle_cases() -> Vec<(Vec<u8>, Vec<u32>)> {
    let mut v = Vec::new();
    // Raw.
    let px: Vec<u32> = (0..18).map(|i| i * 0x010203).collect();
    let mut raw = Msg::new().u8(0);
    for p in &px {
        raw = raw.cpx(*p);
    }
    v.push((raw.0, px));
    // Solid.
    v.push((Msg::new().u8(1).cpx(G).0, vec![G; 18]));
    // Packed palette, 2 colours, 1 bit: rows 101010, 010101, 111000.
    let m = Msg::new()
        .u8(2)
        .cpx(R)
        .cpx(B)
        .bytes(&[0b1010_1000, 0b0101_0100, 0b1110_0000]);
    let want: Vec<u32> = [1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0]
        .iter()
        .map(|&i| if i == 1 { B } else { R })
        .collect();
    v.push((m.0, want));
    // Packed palette, 3 colours, 2 bits: row 0 = 0 1 2 0 1 2 -> 00011000 0110....
    let m = Msg::new().u8(3).cpx(R).cpx(G).cpx(B).bytes(&[
        0b0001_1000,
        0b0110_0000,
        0b1010_1010,
        0b1010_0000,
        0,
        0,
    ]);
    let mut want = vec![R, G, B, R, G, B];
    want.extend([B; 6]);
    want.extend([R; 6]);
    v.push((m.0, want));
    // Plain RLE: R x 5, G x 13.
    let m = Msg::new().u8(128).cpx(R).u8(4).cpx(G).u8(12);
    let mut want = vec![R; 5];
    want.extend([G; 13]);
    v.push((m.0, want));
    // Palette RLE: palette [W, B]; W run 10 (0x80|0, 9), B single, W run 7.
    let m = Msg::new()
        .u8(130)
        .cpx(W)
        .cpx(B)
        .u8(0x80)
        .u8(9)
        .u8(1)
        .u8(0x80)
        .u8(6);
    let mut want = vec![W; 10];
    want.push(B);
    want.extend([W; 7]);
    v.push((m.0, want));
    v
}

#[test]
fn trle_all_subencodings() {
    for (i, (tile, want)) in rle_cases().into_iter().enumerate() {
        let mut c = default_client(8, 8);
        let m = Msg::new().update(1).rect(1, 2, 6, 3, 15).bytes(&tile);
        let ev = feed(&mut c, &m.0);
        let mut fb = Fb::new(8, 8);
        fb.apply(&ev);
        let got: Vec<u32> = (0..18).map(|k| fb.at(1 + k % 6, 2 + k / 6)).collect();
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn trle_palette_reuse_and_errors() {
    let mut c = default_client(32, 16);
    // Two 16x16 tiles: palette 2 (R,B) all index 1, then 127 reusing it all index 0.
    let m = Msg::new()
        .update(1)
        .rect(0, 0, 32, 16, 15)
        .u8(2)
        .cpx(R)
        .cpx(B)
        .bytes(&[0xFF; 32])
        .u8(127)
        .bytes(&[0; 32]);
    let ev = feed(&mut c, &m.0);
    let mut fb = Fb::new(32, 16);
    fb.apply(&ev);
    assert_eq!(fb.at(0, 0), B);
    assert_eq!(fb.at(16, 15), R);
    // Run longer than the tile.
    let e = feed_err(
        &mut c,
        &Msg::new()
            .update(1)
            .rect(0, 0, 2, 2, 15)
            .u8(128)
            .cpx(R)
            .u8(4)
            .0,
    );
    assert!(matches!(e, RfbError::Protocol(_)));
}

#[test]
fn zrle_persistent_stream() {
    let mut z = flate2::Compress::new(flate2::Compression::default(), true);
    let mut c = default_client(8, 8);
    for (i, (tile, want)) in rle_cases().into_iter().enumerate() {
        let data = zsync(&mut z, &tile);
        let m = Msg::new()
            .update(1)
            .rect(1, 2, 6, 3, 16)
            .u32(data.len() as u32)
            .bytes(&data);
        let ev = feed(&mut c, &m.0);
        let mut fb = Fb::new(8, 8);
        fb.apply(&ev);
        let got: Vec<u32> = (0..18).map(|k| fb.at(1 + k % 6, 2 + k / 6)).collect();
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn zrle_multi_tile_and_errors() {
    // 70x65: four 64x64-grid tiles, each solid of a different colour.
    let mut z = flate2::Compress::new(flate2::Compression::default(), true);
    let mut c = default_client(70, 65);
    let tiles = Msg::new()
        .u8(1)
        .cpx(R)
        .u8(1)
        .cpx(G)
        .u8(1)
        .cpx(B)
        .u8(1)
        .cpx(W);
    let data = zsync(&mut z, &tiles.0);
    let m = Msg::new()
        .update(1)
        .rect(0, 0, 70, 65, 16)
        .u32(data.len() as u32)
        .bytes(&data);
    let ev = feed(&mut c, &m.0);
    let mut fb = Fb::new(70, 65);
    fb.apply(&ev);
    assert_eq!(
        (fb.at(0, 0), fb.at(69, 0), fb.at(0, 64), fb.at(69, 64)),
        (R, G, B, W)
    );

    // Data too short for the tiles.
    let data = zsync(&mut z, &[1]);
    let e = feed_err(
        &mut c,
        &Msg::new()
            .update(1)
            .rect(0, 0, 4, 4, 16)
            .u32(data.len() as u32)
            .bytes(&data)
            .0,
    );
    assert!(matches!(e, RfbError::Protocol(_)), "{e}");

    // Garbage zlib.
    let mut c = default_client(4, 4);
    let e = feed_err(
        &mut c,
        &Msg::new()
            .update(1)
            .rect(0, 0, 4, 4, 16)
            .u32(4)
            .bytes(&[1, 2, 3, 4])
            .0,
    );
    assert!(matches!(e, RfbError::Protocol(_)), "{e}");

    // Absurd length.
    let mut c = default_client(4, 4);
    let e = feed_err(
        &mut c,
        &Msg::new().update(1).rect(0, 0, 4, 4, 16).u32(u32::MAX).0,
    );
    assert!(matches!(e, RfbError::TooLarge(_)), "{e}");
}

#[test]
fn zrle_zip_bomb_is_bounded() {
    // 1 MiB of zeros compresses to ~1 KiB; a 2x2 raw tile needs 13 bytes.
    let mut z = flate2::Compress::new(flate2::Compression::best(), true);
    let data = zsync(&mut z, &vec![0u8; 8 << 20]);
    let mut c = default_client(2, 2);
    let e = feed_err(
        &mut c,
        &Msg::new()
            .update(1)
            .rect(0, 0, 2, 2, 16)
            .u32(data.len() as u32)
            .bytes(&data)
            .0,
    );
    assert!(matches!(e, RfbError::TooLarge(_)), "{e}");
}

#[test]
fn tight_fill_and_small_raw() {
    let mut c = default_client(8, 8);
    let m = Msg::new()
        .update(2)
        .rect(0, 0, 8, 8, 7)
        .u8(0x80)
        .tpx(0x102030)
        // 2x1 copy filter, 6 bytes < 12: sent uncompressed.
        .rect(3, 3, 2, 1, 7)
        .u8(0x00)
        .tpx(R)
        .tpx(B);
    let ev = feed(&mut c, &m.0);
    assert_eq!(
        ev[1],
        Event::Fill {
            x: 0,
            y: 0,
            w: 8,
            h: 8,
            color: 0x102030
        }
    );
    assert_eq!(pixels_of(&ev)[0], (3, 3, 2, 1, vec![R, B]));
}

#[test]
fn tight_basic_streams_palette_gradient_and_reset() {
    let mut zs: Vec<flate2::Compress> = (0..4)
        .map(|_| flate2::Compress::new(flate2::Compression::default(), true))
        .collect();
    let (w, h) = (10u16, 6u16);
    let mut c = default_client(w, h);
    let n = usize::from(w) * usize::from(h);
    let img: Vec<u32> = (0..n as u32).map(|i| ((i * 37) << 8) | (i * 3)).collect();

    // Copy filter, stream 1.
    let raw: Vec<u8> = img
        .iter()
        .flat_map(|&p| [(p >> 16) as u8, (p >> 8) as u8, p as u8])
        .collect();
    let data = zsync(&mut zs[1], &raw);
    let mut m = Msg::new()
        .update(1)
        .rect(0, 0, w, h, 7)
        .u8(0x10)
        .bytes(&compact(data.len()))
        .bytes(&data);
    let ev = feed(&mut c, &m.0);
    assert_eq!(pixels_of(&ev)[0].4, img);

    // Same stream again (dictionary persists).
    let data = zsync(&mut zs[1], &raw);
    m = Msg::new()
        .update(1)
        .rect(0, 0, w, h, 7)
        .u8(0x10)
        .bytes(&compact(data.len()))
        .bytes(&data);
    assert_eq!(pixels_of(&feed(&mut c, &m.0))[0].4, img);

    // Reset stream 1 (bit 1) with a fresh compressor.
    zs[1] = flate2::Compress::new(flate2::Compression::default(), true);
    let data = zsync(&mut zs[1], &raw);
    m = Msg::new()
        .update(1)
        .rect(0, 0, w, h, 7)
        .u8(0x12)
        .bytes(&compact(data.len()))
        .bytes(&data);
    assert_eq!(pixels_of(&feed(&mut c, &m.0))[0].4, img);

    // Palette filter, 2 colours (1 bit per pixel, rows padded), stream 2.
    let bits: Vec<u8> = (0..h)
        .flat_map(|y| {
            let mut row = [0u8; 2];
            for x in 0..w {
                if (x + y) % 2 == 1 {
                    row[usize::from(x / 8)] |= 0x80 >> (x % 8);
                }
            }
            row
        })
        .collect();
    let data = zsync(&mut zs[2], &bits);
    m = Msg::new()
        .update(1)
        .rect(0, 0, w, h, 7)
        .u8(0x60)
        .u8(1)
        .u8(1)
        .tpx(R)
        .tpx(G)
        .bytes(&compact(data.len()))
        .bytes(&data);
    let want: Vec<u32> = (0..n)
        .map(|i| if (i % 10 + i / 10) % 2 == 1 { G } else { R })
        .collect();
    assert_eq!(pixels_of(&feed(&mut c, &m.0))[0].4, want);

    // Palette filter, 3 colours (a byte per pixel), stream 3.
    let idx: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    let data = zsync(&mut zs[3], &idx);
    m = Msg::new()
        .update(1)
        .rect(0, 0, w, h, 7)
        .u8(0x70)
        .u8(1)
        .u8(2)
        .tpx(R)
        .tpx(G)
        .tpx(B)
        .bytes(&compact(data.len()))
        .bytes(&data);
    let want: Vec<u32> = (0..n).map(|i| [R, G, B][i % 3]).collect();
    assert_eq!(pixels_of(&feed(&mut c, &m.0))[0].4, want);

    // Gradient filter, stream 0: encode with the reference predictor.
    let comp = |p: u32, k: usize| ((p >> (16 - 8 * k)) & 0xFF) as i32;
    let mut enc = Vec::new();
    for y in 0..usize::from(h) {
        for x in 0..usize::from(w) {
            for k in 0..3 {
                let at = |xx: isize, yy: isize| -> i32 {
                    if xx < 0 || yy < 0 {
                        0
                    } else {
                        comp(img[yy as usize * usize::from(w) + xx as usize], k)
                    }
                };
                let (xi, yi) = (x as isize, y as isize);
                let pred = (at(xi - 1, yi) + at(xi, yi - 1) - at(xi - 1, yi - 1)).clamp(0, 255);
                enc.push((at(xi, yi) - pred) as u8);
            }
        }
    }
    let data = zsync(&mut zs[0], &enc);
    m = Msg::new()
        .update(1)
        .rect(0, 0, w, h, 7)
        .u8(0x40)
        .u8(2)
        .bytes(&compact(data.len()))
        .bytes(&data);
    assert_eq!(pixels_of(&feed(&mut c, &m.0))[0].4, img);

    // Unknown filter and unknown compression.
    let e = feed_err(
        &mut c,
        &Msg::new().update(1).rect(0, 0, 2, 2, 7).u8(0x40).u8(9).0,
    );
    assert!(matches!(e, RfbError::Protocol(_)));
    let mut c = default_client(4, 4);
    let e = feed_err(&mut c, &Msg::new().update(1).rect(0, 0, 2, 2, 7).u8(0xA0).0);
    assert!(matches!(e, RfbError::Protocol(_)));
}

#[test]
fn tight_jpeg() {
    let (w, h) = (32u16, 16u16);
    let mut rgb = Vec::new();
    for y in 0..h {
        for x in 0..w {
            rgb.extend_from_slice(&[(x * 8) as u8, (y * 16) as u8, 128]);
        }
    }
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 95)
        .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let mut c = default_client(w, h);
    let m = Msg::new()
        .update(1)
        .rect(0, 0, w, h, 7)
        .u8(0x90)
        .bytes(&compact(jpeg.len()))
        .bytes(&jpeg);
    let ev = feed(&mut c, &m.0);
    let px = &pixels_of(&ev)[0].4;
    assert_eq!(px.len(), usize::from(w) * usize::from(h));
    for (i, p) in px.iter().enumerate() {
        let want = &rgb[i * 3..i * 3 + 3];
        let got = [(p >> 16) as u8, (p >> 8) as u8, *p as u8];
        for k in 0..3 {
            assert!(
                want[k].abs_diff(got[k]) <= 12,
                "pixel {i}: {got:?} vs {want:?}"
            );
        }
    }
    // A JPEG of the wrong size is refused.
    let mut c = default_client(64, 64);
    let m = Msg::new()
        .update(1)
        .rect(0, 0, 16, 16, 7)
        .u8(0x90)
        .bytes(&compact(jpeg.len()))
        .bytes(&jpeg);
    assert!(matches!(feed_err(&mut c, &m.0), RfbError::Protocol(_)));
    // Garbage JPEG.
    let mut c = default_client(64, 64);
    let m = Msg::new()
        .update(1)
        .rect(0, 0, 16, 16, 7)
        .u8(0x90)
        .u8(3)
        .bytes(&[1, 2, 3]);
    assert!(matches!(feed_err(&mut c, &m.0), RfbError::Protocol(_)));
}

#[test]
fn cursors() {
    let mut c = default_client(8, 8);
    // Rich cursor 2x2, hotspot (1,0): pixels R G B W, mask 10 / 01.
    let m = Msg::new()
        .update(2)
        .rect(1, 0, 2, 2, -239)
        .px(R)
        .px(G)
        .px(B)
        .px(W)
        .u8(0x80)
        .u8(0x40)
        // X cursor 2x1, fg red, bg blue, source 10, mask 11.
        .rect(0, 0, 2, 1, -240)
        .bytes(&[255, 0, 0, 0, 0, 255])
        .u8(0x80)
        .u8(0xC0);
    let ev = feed(&mut c, &m.0);
    assert_eq!(
        ev[1],
        Event::Cursor {
            hotspot_x: 1,
            hotspot_y: 0,
            w: 2,
            h: 2,
            rgba: vec![
                255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 255, 0, 255, 255, 255, 255
            ]
        }
    );
    assert_eq!(
        ev[2],
        Event::Cursor {
            hotspot_x: 0,
            hotspot_y: 0,
            w: 2,
            h: 1,
            rgba: vec![255, 0, 0, 255, 0, 0, 255, 255]
        }
    );
    // Empty cursor; then a too-large one.
    let ev = feed(&mut c, &Msg::new().update(1).rect(0, 0, 0, 0, -239).0);
    assert!(matches!(ev[1], Event::Cursor { w: 0, h: 0, .. }));
    let e = feed_err(&mut c, &Msg::new().update(1).rect(0, 0, 5000, 5000, -239).0);
    assert!(matches!(e, RfbError::TooLarge(_)));
}

#[test]
fn desktop_size_and_last_rect() {
    let mut c = default_client(8, 8);
    let m = Msg::new()
        .update(0xFFFF)
        .rect(0, 0, 20, 10, -223)
        .rect(15, 5, 5, 5, 0)
        .bytes(&[0; 100])
        .rect(0, 0, 0, 0, -224);
    let ev = feed(&mut c, &m.0);
    assert_eq!(
        ev[1],
        Event::Resize {
            width: 20,
            height: 10,
            reason: ResizeReason::Server,
            status: ResizeStatus::Ok
        }
    );
    assert_eq!(ev.last(), Some(&Event::UpdateEnd));
    assert_eq!((c.width(), c.height()), (20, 10));
    // After a resize the next request is a full one.
    assert_eq!(c.take_output(), [3, 0, 0, 0, 0, 0, 0, 20, 0, 10]);
    // Invalid sizes.
    for (w, h) in [(0, 10), (20000, 10)] {
        let mut c = default_client(8, 8);
        let e = feed_err(&mut c, &Msg::new().update(1).rect(0, 0, w, h, -223).0);
        assert!(matches!(e, RfbError::InvalidDesktopSize { .. }), "{e}");
    }
}

#[test]
fn extended_desktop_size_and_set_desktop_size() {
    let mut c = default_client(8, 8);
    assert!(!c.can_resize());
    let screen = Msg::new().u32(7).u16(0).u16(0).u16(8).u16(8).u32(0);
    // Announcement (same size, reason server): no Resize event.
    let m = Msg::new()
        .update(1)
        .rect(0, 0, 8, 8, -308)
        .u8(1)
        .bytes(&[0; 3])
        .bytes(&screen.0);
    let ev = feed(&mut c, &m.0);
    assert_eq!(ev, vec![Event::UpdateBegin, Event::UpdateEnd]);
    assert!(c.can_resize());
    assert_eq!(c.screens()[0].id, 7);
    c.take_output();
    c.set_desktop_size(100, 50).unwrap();
    let want = Msg::new()
        .u8(251)
        .u8(0)
        .u16(100)
        .u16(50)
        .u8(1)
        .u8(0)
        .u32(7)
        .u16(0)
        .u16(0)
        .u16(100)
        .u16(50)
        .u32(0);
    assert_eq!(c.take_output(), want.0);
    // Refused.
    let m = Msg::new()
        .update(1)
        .rect(1, 1, 8, 8, -308)
        .u8(1)
        .bytes(&[0; 3])
        .bytes(&screen.0);
    let ev = feed(&mut c, &m.0);
    assert_eq!(
        ev[1],
        Event::Resize {
            width: 8,
            height: 8,
            reason: ResizeReason::ThisClient,
            status: ResizeStatus::Prohibited
        }
    );
    // Accepted.
    let screen = Msg::new().u32(7).u16(0).u16(0).u16(100).u16(50).u32(0);
    let m = Msg::new()
        .update(1)
        .rect(1, 0, 100, 50, -308)
        .u8(1)
        .bytes(&[0; 3])
        .bytes(&screen.0);
    let ev = feed(&mut c, &m.0);
    assert_eq!(
        ev[1],
        Event::Resize {
            width: 100,
            height: 50,
            reason: ResizeReason::ThisClient,
            status: ResizeStatus::Ok
        }
    );
    assert_eq!(c.width(), 100);
    assert!(c.set_desktop_size(0, 5).is_err());
}

#[test]
fn bell_cut_text_name_and_unknown_messages() {
    let mut c = connected(
        RfbConfig {
            max_cut_text: 4,
            ..RfbConfig::default()
        },
        8,
        8,
        PixelFormat::RGB888,
    );
    let m = Msg::new()
        .u8(2)
        .u8(3)
        .bytes(&[0; 3])
        .u32(3)
        .bytes(b"h\xe9!")
        // Too long: skipped.
        .u8(3)
        .bytes(&[0; 3])
        .u32(10)
        .bytes(b"0123456789")
        .u8(2)
        .update(1)
        .rect(0, 0, 0, 0, -307)
        .u32(4)
        .bytes(b"desk");
    let ev = feed(&mut c, &m.0);
    assert_eq!(
        ev,
        vec![
            Event::Bell,
            Event::ServerCutText(b"h\xe9!".to_vec()),
            Event::Bell,
            Event::UpdateBegin,
            Event::DesktopName("desk".into()),
            Event::UpdateEnd
        ]
    );
    let e = feed_err(&mut c, &[77]);
    assert!(matches!(e, RfbError::Protocol(_)));
    let mut c = default_client(8, 8);
    let e = feed_err(&mut c, &Msg::new().update(1).rect(0, 0, 1, 1, 6).0);
    assert!(
        matches!(e, RfbError::Protocol(ref s) if s.contains("encoding")),
        "{e}"
    );
}

#[test]
fn trle_compressed_pixels_in_other_formats() {
    let native = RfbConfig {
        pixel_format: PixelFormatRequest::ServerNative,
        ..RfbConfig::default()
    };
    // (format, the CPIXEL bytes of 0x123456, config).
    let be_high = PixelFormat {
        big_endian: true,
        red_shift: 24,
        green_shift: 16,
        blue_shift: 8,
        ..PixelFormat::RGB888
    };
    let le_high = PixelFormat {
        big_endian: false,
        ..be_high
    };
    let be_low = PixelFormat {
        big_endian: true,
        ..PixelFormat::RGB888
    };
    let cases: Vec<(PixelFormat, Vec<u8>, RfbConfig, u32)> = vec![
        (be_high, vec![0x12, 0x34, 0x56], native.clone(), 0x123456),
        (le_high, vec![0x56, 0x34, 0x12], native.clone(), 0x123456),
        (be_low, vec![0x12, 0x34, 0x56], native.clone(), 0x123456),
        // 16 bpp: CPIXEL = PIXEL (2 bytes, little-endian RGB565 pure blue).
        (PixelFormat::RGB565, vec![0x1F, 0x00], native.clone(), B),
        (
            PixelFormat::RGB888,
            vec![0x56, 0x34, 0x12],
            RfbConfig {
                swap_red_blue: true,
                ..RfbConfig::default()
            },
            0x563412,
        ),
    ];
    for (i, (pf, cpx, cfg, want)) in cases.into_iter().enumerate() {
        let mut c = connected(cfg, 4, 2, pf);
        // Solid tile, then a raw tile of the same colour in a second rect.
        let mut raw = Msg::new().update(2).rect(0, 0, 2, 2, 15).u8(1).bytes(&cpx);
        raw = raw.rect(2, 0, 2, 2, 15).u8(0);
        for _ in 0..4 {
            raw = raw.bytes(&cpx);
        }
        let ev = feed(&mut c, &raw.0);
        let mut fb = Fb::new(4, 2);
        fb.apply(&ev);
        assert!(fb.px.iter().all(|&p| p == want), "case {i}: {:x?}", fb.px);
    }
}
