//! Recordings for the playback tests.
#![allow(dead_code)]

use guacr_protocol::{Instruction, InstructionWriter};
use guacr_terminal::{Terminal, TerminalConfig};

/// An arbitrary but realistic sync time base (Unix milliseconds).
pub const T0: i64 = 1_700_000_000_000;

/// A recording written by hand from wire strings like `"size,0,4,4"`.
pub fn wire(list: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in list {
        let mut it = s.split(',');
        let op = it.next().unwrap_or_default();
        Instruction::new(op, it).encode(&mut out);
    }
    out
}

pub fn sync(out: &mut Vec<u8>, ts: i64) {
    InstructionWriter::new(out, "sync").arg(&ts).finish();
}

/// Small deterministic pseudo-random numbers.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// A terminal session recording as guacd would write it: every 40–200 ms of
/// recording time some shell-like output (prompts, commands typed with
/// recorded `key` input, listings that scroll), rendered by the real
/// terminal renderer and ended by `sync`. Returns the recording and the
/// terminal (for glyph masks and the final screen text).
pub fn terminal_recording(duration_ms: u64, seed: u64) -> (Vec<u8>, Terminal) {
    let mut term = Terminal::new(TerminalConfig::default()).unwrap();
    let mut rng = Lcg(seed);
    let mut out = Vec::new();
    let mut t = 0u64;
    let mut line = 0u64;
    let mut typing: Vec<u8> = Vec::new();
    term.feed(b"guacr$ ");
    term.render_frame(&mut out);
    sync(&mut out, T0);
    while t < duration_ms {
        t = (t + rng.range(40, 200)).min(duration_ms);
        let ts = T0 + t as i64;
        if typing.is_empty() && rng.range(0, 3) == 0 {
            typing = format!("ls -la /var/log/app{}\r", rng.range(1, 99)).into_bytes();
        }
        if let Some(&b) = typing.first() {
            typing.remove(0);
            let keysym = if b == b'\r' { 0xFF0D } else { u32::from(b) };
            for pressed in [1, 0] {
                InstructionWriter::new(&mut out, "key")
                    .arg(&keysym)
                    .arg(&pressed)
                    .arg(&ts)
                    .finish();
            }
            if b == b'\r' {
                term.feed(b"\r\n");
                for _ in 0..rng.range(1, 12) {
                    line += 1;
                    let text = format!(
                        "-rw-r--r-- 1 app app {:>8} Nov 14 22:13 line-{line:06}.log\r\n",
                        rng.range(1, 99_999_999)
                    );
                    term.feed(text.as_bytes());
                }
                term.feed(b"guacr$ ");
            } else {
                term.feed(&[b]);
            }
        } else if rng.range(0, 4) == 0 {
            InstructionWriter::new(&mut out, "mouse")
                .arg(&(rng.range(0, 1023) as i32))
                .arg(&(rng.range(0, 767) as i32))
                .arg(&0)
                .arg(&ts)
                .finish();
        }
        term.render_frame(&mut out);
        sync(&mut out, ts);
    }
    (out, term)
}
