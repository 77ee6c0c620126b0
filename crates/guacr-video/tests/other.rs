//! Backend selection, RGB → I420 conversion and the Annex-B parser.

use guacr_video::convert::{bgrx_to_i420, xrgb_to_i420};
use guacr_video::h264::{self, SpsProfile};
use guacr_video::{
    Backend, EncoderPrefs, I420Buffer, VideoEncoder, VideoError, select, select_from,
};

#[test]
fn select_defaults_to_openh264() {
    let enc = select(&EncoderPrefs::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(enc.name(), "openh264");
    assert!(enc.bitrate() <= enc.max_bitrate());
}

fn broken(_: &EncoderPrefs) -> Result<Box<dyn VideoEncoder>, VideoError> {
    Err(VideoError::Unavailable {
        backend: "vaapi",
        reason: "no /dev/dri/renderD128".into(),
    })
}

#[test]
fn select_falls_through_unavailable_backends() {
    let list = [
        Backend {
            name: "vaapi",
            create: broken,
        },
        Backend {
            name: "openh264",
            create: guacr_video::openh264::create,
        },
    ];
    let enc = select_from(&list, &EncoderPrefs::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(enc.name(), "openh264");
}

#[test]
fn select_fails_cleanly_when_nothing_starts() {
    let list = [Backend {
        name: "vaapi",
        create: broken,
    }];
    match select_from(&list, &EncoderPrefs::default()) {
        Err(VideoError::NoEncoder(msg)) => assert!(msg.contains("renderD128"), "{msg}"),
        other => panic!(
            "expected NoEncoder, got {:?}",
            other.map(|e| e.name().to_string())
        ),
    }
    let prefs = EncoderPrefs {
        backends: vec!["nvenc".into()],
        ..EncoderPrefs::default()
    };
    assert!(matches!(select(&prefs), Err(VideoError::NoEncoder(_))));
    let prefs = EncoderPrefs {
        max_bitrate: 1_000,
        ..EncoderPrefs::default()
    };
    assert!(
        matches!(select(&prefs), Err(VideoError::NoEncoder(_))),
        "ceiling too low for openh264"
    );
}

#[test]
fn conversion_of_known_colours() {
    // Each colour as a 2×2 picture (BT.709, limited range).
    for (p, y, u, v) in [
        (0x00ff_ffffu32, 235u8, 128u8, 128u8),
        (0x0000_0000, 16, 128, 128),
        (0x00ff_0000, 63, 102, 240),
        (0x0000_ff00, 172, 42, 26),
        (0x0000_00ff, 32, 240, 118),
    ] {
        let mut b = I420Buffer::default();
        xrgb_to_i420(2, 2, &[p; 4], 2, &mut b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.y(), &[y; 4], "Y of {p:06x}");
        assert_eq!((b.u()[0], b.v()[0]), (u, v), "UV of {p:06x}");
    }
}

#[test]
fn conversion_handles_stride_odd_sizes_and_bgrx() {
    // 3×3 picture inside a stride of 5; the padding must be ignored.
    let mut data = vec![0x00ff_0000u32; 15];
    for y in 0..3 {
        for x in 0..3 {
            data[y * 5 + x] = 0x0000_0000;
        }
    }
    let mut b = I420Buffer::default();
    xrgb_to_i420(3, 3, &data, 5, &mut b).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((b.width(), b.height()), (4, 4), "rounded up to even");
    assert!(b.y().iter().all(|&y| y == 16), "{:?}", b.y());
    assert!(b.u().iter().chain(b.v()).all(|&c| c == 128));

    // BGRX bytes give the same picture as the u32 pixels.
    let px = guacr_video::synth::photo(33, 17, 4);
    let mut bytes = Vec::new();
    for row in px.chunks(33) {
        for p in row {
            bytes.extend_from_slice(&p.to_le_bytes());
        }
        bytes.extend_from_slice(&[9; 8]); // row padding
    }
    let (mut a, mut c) = (I420Buffer::default(), I420Buffer::default());
    xrgb_to_i420(33, 17, &px, 33, &mut a).unwrap_or_else(|e| panic!("{e}"));
    bgrx_to_i420(33, 17, &bytes, 33 * 4 + 8, &mut c).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, c);
}

#[test]
fn conversion_rejects_bad_geometry() {
    let mut b = I420Buffer::default();
    assert!(
        xrgb_to_i420(4, 4, &[0; 15], 4, &mut b).is_err(),
        "too short"
    );
    assert!(
        xrgb_to_i420(4, 4, &[0; 16], 3, &mut b).is_err(),
        "stride < width"
    );
    assert!(xrgb_to_i420(0, 4, &[0; 16], 4, &mut b).is_err(), "empty");
    assert!(bgrx_to_i420(4, 1, &[0; 15], 16, &mut b).is_err());
    assert!(
        xrgb_to_i420(u32::MAX, 2, &[0; 16], usize::MAX, &mut b).is_err(),
        "overflow"
    );
}

#[test]
fn annex_b_parser() {
    let au = [
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xaa, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88, 0x80,
    ];
    let nals = h264::nal_units(&au);
    let kinds: Vec<u8> = nals.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, vec![7, 8, 5]);
    assert_eq!(
        nals.iter().map(|n| n.start_code_len).collect::<Vec<_>>(),
        vec![4, 3, 4]
    );
    assert_eq!(nals[0].data, &[0x67, 0x42, 0xc0, 0x1e, 0xaa]);
    let p = SpsProfile::parse(nals[0].data).unwrap_or_else(|| panic!("sps"));
    assert!(p.is_constrained_baseline());
    assert_eq!(p.profile_level_id(), "42c01e");
    assert!(h264::is_keyframe(&au));
    assert!(!h264::is_keyframe(&[0, 0, 1, 0x41, 0x9a]));
    assert!(SpsProfile::parse(&[0x68, 1, 2, 3]).is_none());
    assert!(SpsProfile::parse(&[0x67, 66]).is_none());
}

#[test]
fn annex_b_parser_never_panics() {
    let mut x = 1u64;
    for len in 0..2000usize {
        let bytes: Vec<u8> = (0..len % 64)
            .map(|_| {
                x = guacr_video::synth::hash(x);
                // Mostly zeros and ones to hit start-code edge cases.
                [0u8, 0, 1, (x >> 8) as u8][(x % 4) as usize]
            })
            .collect();
        for n in h264::nal_units(&bytes) {
            assert!(!n.data.is_empty());
            let _ = SpsProfile::parse(n.data);
        }
    }
}
