//! Fragmentation invariance: the same events and replies whatever the
//! chunking of the server's bytes; garbage never panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use guacr_rfb::{Event, PixelFormat, RfbClient, RfbConfig};
use proptest::prelude::*;

/// A long server stream: 3.8 VncAuth handshake and updates using every
/// encoding and pseudo-encoding.
fn session_stream() -> Vec<u8> {
    let mut s = b"RFB 003.008\n".to_vec();
    s.extend_from_slice(&[2, 2, 1]);
    s.extend_from_slice(&[7; 16]);
    s.extend_from_slice(&[0, 0, 0, 0]);
    s.extend_from_slice(&server_init(40, 36, PixelFormat::RGB888, "frag"));
    let mut z = flate2::Compress::new(flate2::Compression::default(), true);
    let mut tz = flate2::Compress::new(flate2::Compression::default(), true);
    let zrle_tiles = Msg::new().u8(128).cpx(0x112233).u8(99).cpx(0x445566).u8(99);
    let zdata = zsync(&mut z, &zrle_tiles.0);
    let zdata2 = zsync(&mut z, &Msg::new().u8(1).cpx(0x0F0F0F).0);
    let tight_raw: Vec<u8> = (0..30 * 20 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let tdata = zsync(&mut tz, &tight_raw);
    let mut raw = Msg::new();
    for i in 0..40 * 3 {
        raw = raw.px(i * 0x020301);
    }
    let m = Msg::new()
        .u8(1)
        .u8(0)
        .u16(0)
        .u16(1)
        .u16(1)
        .u16(2)
        .u16(3) // colour map (ignored in true colour)
        .update(9)
        .rect(0, 0, 40, 3, 0)
        .bytes(&raw.0)
        .rect(0, 3, 40, 36 - 3, 5)
        // Hextile: 3x3 tiles (last col 8 wide, last row 1 high).
        .u8(2 | 4 | 8)
        .px(0xFFFFFF)
        .px(0xFF0000)
        .u8(1)
        .u8(0x12)
        .u8(0x34)
        .u8(1)
        .bytes(&[9; 16 * 16 * 4])
        .u8(8 | 16)
        .u8(2)
        .px(0x00FF00)
        .u8(0x00)
        .u8(0x11)
        .px(0x0000FF)
        .u8(0x22)
        .u8(0x33)
        .u8(2)
        .px(0x123456)
        .u8(0)
        .u8(1)
        .bytes(&[3; 8 * 16 * 4])
        .u8(2 | 8)
        .px(0xABCDEF)
        .u8(1)
        .u8(0x00)
        .u8(0xF0)
        .u8(0)
        .u8(1)
        .bytes(&[5; 8 * 4])
        .rect(2, 2, 10, 10, 1)
        .u16(20)
        .u16(20)
        .rect(1, 1, 30, 4, 2)
        .u32(2)
        .px(0x101010)
        .px(0x202020)
        .u16(0)
        .u16(0)
        .u16(5)
        .u16(2)
        .px(0x303030)
        .u16(10)
        .u16(1)
        .u16(20)
        .u16(3)
        .rect(0, 0, 20, 10, 15)
        .u8(130)
        .cpx(1)
        .cpx(2)
        .u8(0x80)
        .u8(100)
        .u8(0x81)
        .u8(58)
        .u8(2)
        .cpx(7)
        .cpx(8)
        .bytes(&[0xA0; 10])
        .rect(5, 5, 10, 10, 16)
        .u32(zdata.len() as u32)
        .bytes(&zdata)
        .rect(0, 0, 30, 20, 7)
        .u8(0x00)
        .bytes(&compact(tdata.len()))
        .bytes(&tdata)
        .rect(3, 3, 2, 2, -239)
        .px(1)
        .px(2)
        .px(3)
        .px(4)
        .u8(0x80)
        .u8(0x40)
        .rect(0, 0, 0, 0, -224)
        .u8(2)
        .u8(3)
        .bytes(&[0; 3])
        .u32(5)
        .bytes(b"hello")
        .update(2)
        .rect(0, 0, 4, 4, 16)
        .u32(zdata2.len() as u32)
        .bytes(&zdata2)
        .rect(0, 0, 4, 4, 7)
        .u8(0x80)
        .tpx(0x777777);
    s.extend_from_slice(&m.0);
    s
}

fn run(chunks: &[usize], stream: &[u8]) -> (Vec<Event>, Vec<u8>) {
    let mut c = RfbClient::new(RfbConfig {
        password: Some("pw".into()),
        ..RfbConfig::default()
    });
    let mut events = Vec::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let n = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        let end = (pos + n).min(stream.len());
        c.feed(&stream[pos..end]).expect("feed");
        events.extend(drain(&mut c));
        out.extend(c.take_output());
        pos = end;
        i += 1;
    }
    (events, out)
}

#[test]
fn whole_stream_decodes() {
    let s = session_stream();
    let (ev, out) = run(&[s.len()], &s);
    assert!(matches!(ev[0], Event::Connected { .. }));
    assert_eq!(ev.iter().filter(|e| **e == Event::UpdateEnd).count(), 2);
    assert!(ev.contains(&Event::ServerCutText(b"hello".to_vec())));
    assert!(ev.iter().any(|e| matches!(e, Event::Cursor { .. })));
    assert!(!out.is_empty());
}

#[test]
fn one_byte_at_a_time() {
    let s = session_stream();
    assert_eq!(run(&[1], &s), run(&[s.len()], &s));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_chunking_same_events(chunks in proptest::collection::vec(1usize..200, 1..50)) {
        let s = session_stream();
        prop_assert_eq!(run(&chunks, &s), run(&[s.len()], &s));
    }

    #[test]
    fn garbage_after_handshake_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096),
                                            split in 1usize..64) {
        let mut c = default_client(64, 48);
        for chunk in data.chunks(split) {
            if c.feed(chunk).is_err() {
                break;
            }
            drain(&mut c);
        }
        let _ = c.eof();
    }

    #[test]
    fn garbage_handshake_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut c = RfbClient::new(RfbConfig::default());
        let mut s = b"RFB 003.008\n".to_vec();
        s.extend_from_slice(&data);
        let _ = c.feed(&s);
        drain(&mut c);
        let _ = c.tls_established();
        let _ = c.provide_credentials(Some("a".into()), Some("b".into()));
    }
}

/// Writes seeds for the `rfb` fuzz target into `fuzz/seeds/rfb` (run with
/// `cargo test -p guacr-rfb --test fragmentation -- --ignored`).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/rfb");
    std::fs::create_dir_all(&dir).unwrap();
    let s = session_stream();
    // The fuzz target's fixed prefix ends with a 64x48 ServerInit; the
    // updates of the session stream fit in it.
    let init_end = 12 + 3 + 16 + 4 + 24 + 4;
    for (i, mode) in [1u8, 1 | (3 << 3), 1 | 2 | 4, 0, 2 | (7 << 3), 4]
        .iter()
        .enumerate()
    {
        let mut seed = vec![*mode];
        if mode & 1 == 1 {
            seed.extend_from_slice(&s);
        } else {
            seed.extend_from_slice(&s[init_end..]);
        }
        std::fs::write(dir.join(format!("session-{i}")), seed).unwrap();
    }
}
