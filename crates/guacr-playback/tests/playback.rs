//! Playing recordings back: frames, seeking, keyframes, input log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use guacr_playback::{Display, InputEvent, Player};

fn colour_frames() -> Vec<u8> {
    let t = |ms: i64| (T0 + ms).to_string();
    wire(&[
        "size,0,8,6",
        "rect,0,0,0,8,6",
        "cfill,14,0,255,0,0,255",
        "mouse,1,2,0,1699999999990",
        &format!("sync,{}", t(0)),
        "rect,0,0,0,8,6",
        "cfill,14,0,0,255,0,255",
        &format!("key,97,1,{}", t(900)),
        &format!("key,97,0,{}", t(950)),
        &format!("sync,{}", t(1000)),
        // Drawn into a buffer only, then shown at 2500.
        "rect,-1,0,0,8,6",
        "cfill,14,-1,0,0,255,255",
        &format!("sync,{}", t(2000)),
        "copy,-1,0,0,4,6,14,0,4,0",
        &format!("mouse,5,4,1,{}", t(2400)),
        &format!("sync,{}", t(2500)),
        // Trailing instructions without a sync belong to no frame.
        "rect,0,0,0,8,6",
        "cfill,14,0,9,9,9,255",
    ])
}

#[test]
fn hand_written_recording_plays_on_the_sync_timeline() {
    let data = colour_frames();
    let mut p = Player::new(&data);
    assert_eq!(p.frames().len(), 4);
    assert_eq!(p.duration(), 2500);
    assert_eq!(p.initial_size(), Some((8, 6)));
    assert!(p.parse_error().is_none());
    let times: Vec<u64> = p.frames().iter().map(|f| f.time_ms).collect();
    assert_eq!(times, [0, 1000, 2000, 2500]);
    assert_eq!(p.frames()[1].timestamp, T0 + 1000);

    let red = [255, 0, 0, 255];
    let green = [0, 255, 0, 255];
    let blue = [0, 0, 255, 255];
    let at = |p: &mut Player<'_>, ms: u64, x: usize| {
        let (w, h, px) = p.screenshot_at(ms);
        assert_eq!((w, h), (8, 6));
        let o = x * 4;
        [px[o], px[o + 1], px[o + 2], px[o + 3]]
    };
    assert_eq!(at(&mut p, 0, 0), red);
    assert_eq!(at(&mut p, 999, 0), red);
    assert_eq!(at(&mut p, 1000, 0), green);
    // The buffer fill at 2000 is invisible until copied at 2500.
    assert_eq!(at(&mut p, 2499, 7), green);
    assert_eq!(at(&mut p, 2500, 7), blue);
    assert_eq!(at(&mut p, 2500, 3), green);
    assert_eq!(p.mouse_position(), Some((5, 4)));
    // Past the end: the last frame (trailing unsynced drawing is not played).
    assert_eq!(at(&mut p, 60_000, 0), green);
    // Backwards.
    assert_eq!(at(&mut p, 10, 0), red);
    assert_eq!(p.position(), 1);
    assert_eq!(p.current_time(), Some(0));
    assert_eq!(p.mouse_position(), Some((1, 2)));

    // Recorded input, with times relative to the first sync.
    let inputs = p.inputs();
    assert_eq!(inputs.len(), 4);
    assert_eq!(inputs[0].time_ms, 0, "before the first sync");
    assert_eq!(
        inputs[0].event,
        InputEvent::Mouse {
            x: 1,
            y: 2,
            mask: 0
        }
    );
    assert_eq!(inputs[1].time_ms, 900);
    assert_eq!(
        inputs[1].event,
        InputEvent::Key {
            keysym: 97,
            pressed: true
        }
    );
    assert_eq!(
        inputs[2].event,
        InputEvent::Key {
            keysym: 97,
            pressed: false
        }
    );
    assert_eq!(inputs[3].time_ms, 2400);
    // Input never reaches the display model.
    assert!(p.display().unhandled().is_empty());
    assert_eq!(p.apply_errors(), 0);
}

#[test]
fn malformed_tail_and_backwards_timestamps() {
    let mut data = wire(&[
        "size,0,2,2",
        "sync,5000",
        "rect,0,0,0,2,2",
        "cfill,14,0,1,1,1,255",
        "sync,4000",
        "sync,x",
        "sync,7000",
    ]);
    data.extend_from_slice(b"4.rect,Z,");
    let p = Player::new(&data);
    let times: Vec<u64> = p.frames().iter().map(|f| f.time_ms).collect();
    assert_eq!(times, [0, 0, 0, 2000], "monotonic; unparsable = previous");
    assert!(p.parse_error().is_some());
    assert_eq!(p.duration(), 2000);
    // Empty input.
    let mut empty = Player::new(b"");
    assert_eq!(empty.duration(), 0);
    assert_eq!(empty.seek(100), 0);
    assert_eq!(empty.screenshot_at(0), (0, 0, Vec::new()));
}

/// Replays a recording into a display up to (and including) the sync that
/// ends frame `frame`.
fn reference_at(data: &[u8], frame: usize) -> Display {
    let (all, _) = guacr_protocol::parse_all(data).unwrap();
    let mut d = Display::new();
    let mut syncs = 0;
    for ins in &all {
        let _ = d.apply(ins);
        if ins.opcode == "sync" {
            if syncs == frame {
                break;
            }
            syncs += 1;
        }
    }
    d
}

#[test]
fn terminal_recording_replays_and_seeks_to_the_right_picture() {
    let (data, term) = terminal_recording(20_000, 7);
    let mut p = Player::new(&data);
    p.set_keyframes(Some(3_000), 256 << 20);
    assert_eq!(p.initial_size(), Some((1024, 768)));
    assert!(p.duration() >= 19_000 && p.duration() <= 20_000);
    assert!(
        p.inputs()
            .iter()
            .any(|i| matches!(i.event, InputEvent::Key { keysym: 0xFF0D, .. }))
    );

    // Play to the end: the text of the terminal's final screen is there.
    let n = p.frames().len();
    while p.step().is_some() {}
    assert_eq!(p.position(), n);
    assert!(p.keyframe_count() >= 4, "{}", p.keyframe_count());
    let (cw, ch) = term.cell_size();
    let text = p.display().read_text(cw, ch, &|c| term.glyph_mask(c).2, "");
    let expected: Vec<String> = term
        .screen_text()
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect();
    assert_eq!(&text[..expected.len()], &expected[..]);
    assert!(expected.iter().any(|l| l.contains("line-")), "{expected:?}");

    // Seeking (backwards through keyframes, and forwards) gives exactly the
    // picture of that time.
    for &frame in &[n / 2, 3, n - 1, n / 3, 0, (n * 4) / 5] {
        let t = p.frames()[frame].time_ms;
        // The last frame at time t (several may share it).
        let last = p.frames().iter().rposition(|f| f.time_ms <= t).unwrap();
        let reference = reference_at(&data, last).screenshot();
        let got = p.screenshot_at(t);
        assert!(got == reference, "picture at {t} ms (frame {last}) differs");
        assert_eq!(p.position(), last + 1);
    }
}
