//! Load figure for BENCHMARKS.md: frames per second, bytes per frame and the
//! daemon's CPU for a scrolling xterm on a VNC desktop, measured through a
//! running daemon as a Guacamole client sees it.
//!
//! ```sh
//! scripts/test-peers.sh start          # Xvnc :14, 1920x1080, 127.0.0.1:5904
//! printf '[session]\nframe_interval_ms = 16\n' > /tmp/guacr-bench.toml
//! cargo build --release -p guacr && target/release/guacr -f -l 14822 -c /tmp/guacr-bench.toml &
//! cargo run --release -p guacr-vnc --example vnc_bench -- \
//!     --daemon 127.0.0.1:14822 --vnc-port 5904 --seconds 10 --pid $(pgrep -n guacr) [--lossless]
//! ```
//!
//! The load: the tool types a shell loop into the desktop's xterm that
//! prints lines as fast as the terminal takes them (xterm scrolls with jump
//! scroll), measures for `--seconds`, then interrupts it with Ctrl-C.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use guacr_testkit::{ClientInfo, GuacClient};

struct Args {
    daemon: String,
    vnc_host: String,
    vnc_port: String,
    password: Option<String>,
    seconds: u64,
    lossless: bool,
    pid: Option<u32>,
    width: u32,
    height: u32,
}

fn args() -> Args {
    let mut a = Args {
        daemon: "127.0.0.1:4822".into(),
        vnc_host: "127.0.0.1".into(),
        vnc_port: "5904".into(),
        password: None,
        seconds: 10,
        lossless: false,
        pid: None,
        width: 1920,
        height: 1080,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--daemon" => a.daemon = v(),
            "--vnc-host" => a.vnc_host = v(),
            "--vnc-port" => a.vnc_port = v(),
            "--password" => a.password = Some(v()),
            "--seconds" => a.seconds = v().parse().expect("seconds"),
            "--pid" => a.pid = Some(v().parse().expect("pid")),
            "--width" => a.width = v().parse().expect("width"),
            "--height" => a.height = v().parse().expect("height"),
            "--lossless" => a.lossless = true,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// User + system CPU seconds of a process (clock ticks at 100 Hz).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args();
    let mut c = GuacClient::connect_tcp(a.daemon.as_str()).await?;
    c.set_display_enabled(false);
    let info = ClientInfo {
        width: a.width,
        height: a.height,
        dpi: 96,
        image_mimetypes: vec!["image/png".into(), "image/jpeg".into()],
        ..Default::default()
    };
    let lossless = if a.lossless { "true" } else { "false" };
    let mut params = vec![
        ("hostname", a.vnc_host.as_str()),
        ("port", a.vnc_port.as_str()),
        ("force-lossless", lossless),
    ];
    if let Some(p) = &a.password {
        params.push(("password", p.as_str()));
    }
    c.handshake("vnc", &info, &params).await?;
    c.wait_for_frame(Duration::from_secs(20)).await?;
    c.drain(Duration::from_secs(2)).await?;
    // Focus follows the pointer: keep it over the xterm.
    c.send_mouse(200, 200, 0).await?;
    // Every line is indented differently, so consecutive rows never match:
    // only scroll detection (or re-encoding the screen) can follow it.
    c.type_text("clear; i=0; while :; do i=$((i+1)); printf '%*d the quick brown fox jumps over the lazy dog %d\\n' $((i%97+1)) $i $((i*7919%100003)); done\n")
        .await?;
    c.drain(Duration::from_secs(2)).await?;
    let (frames0, bytes0) = (c.state().count("sync"), c.state().bytes_received);
    let (img0, copy0) = (c.state().count("img"), c.state().count("copy"));
    let cpu0 = a.pid.and_then(cpu_secs);
    let started = Instant::now();
    c.drain(Duration::from_secs(a.seconds)).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let frames = c.state().count("sync") - frames0;
    let bytes = c.state().bytes_received - bytes0;
    let imgs = c.state().count("img") - img0;
    let copies = c.state().count("copy") - copy0;
    let cpu = match (cpu0, a.pid.and_then(cpu_secs)) {
        (Some(x), Some(y)) => format!("{:.0}% of one core", (y - x) / elapsed * 100.0),
        _ => "n/a (pass --pid)".into(),
    };
    // Ctrl-C, then clear the screen.
    c.send_key_combo(&[0xffe3, u32::from('c')]).await?;
    c.drain(Duration::from_millis(500)).await?;
    c.type_text("clear\n").await?;
    c.drain(Duration::from_millis(500)).await?;
    println!(
        "vnc scroll {}x{} lossless={}: {:.1} frames/s, {:.0} bytes/frame, {:.2} MB/s, {:.1} img/frame, {:.2} copy/frame, daemon CPU {cpu} ({frames} frames in {elapsed:.1} s)",
        a.width,
        a.height,
        a.lossless,
        frames as f64 / elapsed,
        bytes as f64 / frames.max(1) as f64,
        bytes as f64 / elapsed / 1e6,
        imgs as f64 / frames.max(1) as f64,
        copies as f64 / frames.max(1) as f64,
    );
    c.disconnect().await.ok();
    Ok(())
}
