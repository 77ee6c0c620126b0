//! Per-session memory, measured as resident-set growth (Linux).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use guacr_terminal::{Terminal, TerminalConfig};

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// RSS is process-wide: measurements must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sessions(n: usize, output: &[u8]) -> (Vec<Terminal>, usize) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Warm the shared font set and caches first.
    let mut warm = Terminal::new(TerminalConfig::default()).unwrap();
    warm.feed(output);
    warm.render_frame(&mut Vec::new());
    let before = rss_bytes().unwrap_or(0);
    let mut v = Vec::with_capacity(n);
    let mut out = Vec::new();
    for _ in 0..n {
        let mut t = Terminal::new(TerminalConfig::default()).unwrap();
        t.feed(output);
        out.clear();
        t.render_frame(&mut out);
        v.push(t);
    }
    let after = rss_bytes().unwrap_or(0);
    v.push(warm);
    (v, after.saturating_sub(before) / n)
}

#[test]
fn idle_sessions_stay_under_1mb_each() {
    if rss_bytes().is_none() {
        return;
    }
    let motd = b"Linux host 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian x86_64\r\n\r\n\
The programs included with the Debian GNU/Linux system are free software;\r\n\
the exact distribution terms for each program are described in the\r\n\
individual files in /usr/share/doc/*/copyright.\r\n\r\n\
Last login: Mon Jan  1 00:00:00 2026 from 127.0.0.1\r\n\x1b[01;32muser@host\x1b[00m:\x1b[01;34m~\x1b[00m$ ";
    let (_keep, per) = sessions(200, motd);
    println!("idle 1024x768 session (scrollback 1000, not scrolled): {per} bytes RSS");
    assert!(per < 1024 * 1024, "{per} bytes per idle session");
}

#[test]
fn scrolled_session_memory_follows_history() {
    if rss_bytes().is_none() {
        return;
    }
    let mut out = Vec::new();
    for i in 0..100 {
        out.extend_from_slice(format!("line {i}\r\n").as_bytes());
    }
    let (_keep, per) = sessions(100, &out);
    println!("1024x768 session with 61 lines of history: {per} bytes RSS");
    assert!(per < 1024 * 1024, "{per} bytes per session");
}

#[test]
#[ignore = "diagnostic: a full 1000-line history costs ~2.5 KB per line in alacritty"]
fn full_history_memory() {
    let mut out = Vec::new();
    for i in 0..1100 {
        out.extend_from_slice(format!("line {i}\r\n").as_bytes());
    }
    let (_keep, per) = sessions(50, &out);
    println!("1024x768 session with 1000 lines of history: {per} bytes RSS");
}
