//! Property test: however output is split into frames, the incrementally
//! drawn picture equals a from-scratch render of the same final state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Display;
use guacr_terminal::{Terminal, TerminalConfig};
use proptest::prelude::*;

fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[a-z0-9 .:/-]{1,30}".prop_map(|s| s.into_bytes()),
        3 => Just(b"\r\n".to_vec()),
        1 => (1u8..12, 1u8..30).prop_map(|(r, c)| format!("\x1b[{r};{c}H").into_bytes()),
        1 => (0u8..8).prop_map(|c| format!("\x1b[3{c}m").into_bytes()),
        1 => (0u8..8).prop_map(|c| format!("\x1b[4{c}m").into_bytes()),
        1 => Just(b"\x1b[0m".to_vec()),
        1 => Just(b"\x1b[7m".to_vec()),
        1 => Just(b"\x1b[1m".to_vec()),
        1 => Just(b"\x1b[K".to_vec()),
        1 => Just(b"\x1b[J".to_vec()),
        1 => Just(b"\x1b[2J".to_vec()),
        1 => Just(b"\x1bM".to_vec()),
        1 => Just(b"\x1b[2S".to_vec()),
        1 => Just(b"\x1b[L".to_vec()),
        1 => Just(b"\x1b[M".to_vec()),
        1 => Just(b"\x1b[3;8r".to_vec()),
        1 => Just(b"\x1b[r".to_vec()),
        1 => Just(b"\x1b[?25l".to_vec()),
        1 => Just(b"\x1b[?25h".to_vec()),
        1 => Just("\u{4e2d}\u{2500}\u{2588}".as_bytes().to_vec()),
        2 => (1usize..40).prop_map(|n| {
            let mut v = Vec::new();
            for i in 0..n {
                v.extend_from_slice(format!("{i}\r\n").as_bytes());
            }
            v
        }),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Feed(Vec<u8>),
    Frame,
    Wheel(bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => piece().prop_map(Step::Feed),
        3 => Just(Step::Frame),
        1 => any::<bool>().prop_map(Step::Wheel),
    ]
}

fn cfg() -> TerminalConfig {
    TerminalConfig {
        width: 300,
        height: 230,
        scrollback: 100,
        ..TerminalConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn incremental_equals_fresh(steps in prop::collection::vec(step(), 1..40)) {
        let mut t = Terminal::new(cfg()).unwrap();
        let mut d = Display::default();
        let mut out = Vec::new();
        let mut fed = Vec::new();
        for s in &steps {
            match s {
                Step::Feed(b) => {
                    t.feed(b);
                    fed.extend_from_slice(b);
                }
                Step::Frame => {
                    out.clear();
                    t.render_frame(&mut out);
                    d.apply(&out);
                }
                Step::Wheel(up) => {
                    let mask = if *up { 8 } else { 16 };
                    t.mouse(5, 5, mask);
                    t.mouse(5, 5, 0);
                }
            }
        }
        // Back to the bottom so a fresh terminal shows the same view.
        for _ in 0..50 {
            t.mouse(5, 5, 16);
            t.mouse(5, 5, 0);
        }
        out.clear();
        t.render_frame(&mut out);
        d.apply(&out);

        let mut fresh = Terminal::new(cfg()).unwrap();
        fresh.feed(&fed);
        out.clear();
        fresh.render_frame(&mut out);
        let mut fd = Display::default();
        fd.apply(&out);
        prop_assert!(d.screen() == fd.screen(), "incremental picture differs from fresh render");

        out.clear();
        t.render_full(&mut out);
        let mut jd = Display::default();
        jd.apply(&out);
        prop_assert!(jd.screen() == d.screen(), "render_full differs from incremental picture");
    }
}
