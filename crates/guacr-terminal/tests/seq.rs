//! Wire size of a `seq` flood, the terminal's worst case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use guacr_terminal::{Terminal, TerminalConfig};

fn seq_output(n: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 1..=n {
        v.extend_from_slice(i.to_string().as_bytes());
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// Feeds `data` in 32 KB chunks, rendering a frame every `per_frame` bytes.
/// Returns (total bytes, frames).
fn run(data: &[u8], per_frame: usize) -> (usize, usize) {
    let mut t = Terminal::new(TerminalConfig::default()).unwrap();
    let mut out = Vec::new();
    let mut total = 0;
    let mut frames = 0;
    let mut since = 0;
    for chunk in data.chunks(32 * 1024) {
        t.feed(chunk);
        since += chunk.len();
        if since >= per_frame {
            since = 0;
            out.clear();
            t.render_frame(&mut out);
            total += out.len();
            frames += 1;
        }
    }
    out.clear();
    t.render_frame(&mut out);
    total += out.len();
    (total, frames + 1)
}

#[test]
fn seq_100k_is_small() {
    let data = seq_output(100_000);
    let (bytes, frames) = run(&data, 256 * 1024);
    println!(
        "seq 100000: {} input bytes, {frames} frames, {bytes} output bytes",
        data.len()
    );
    assert!(bytes < 30 * 1024, "{bytes} bytes");
}

#[test]
#[ignore = "slow in debug builds; run with --release --ignored"]
fn seq_1m_within_budget() {
    let data = seq_output(1_000_000);
    let (bytes, frames) = run(&data, 256 * 1024);
    println!(
        "seq 1000000: {} input bytes, {frames} frames, {bytes} output bytes",
        data.len()
    );
    assert!(bytes <= 106 * 1024, "{bytes} bytes");
}
