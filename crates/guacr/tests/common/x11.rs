//! The X side of the graphical tests (tests/vnc.rs, tests/rdp.rs): X clients run
//! against a test desktop's `DISPLAY`, the display rebuilt from the instruction
//! stream compared with the X server's own screenshot (`xwd`), and scratch files
//! that commands typed into the desktop's xterm write.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use guacr_testkit::GuacClient;
use tokio::io::{AsyncRead, AsyncWrite};

use super::x_screenshot;

/// How long one X client may run, in seconds: a selection owner may never answer
/// `xclip -o`, and a wedged X server must fail the test, not hang it.
const X_CLIENT_TIMEOUT: u32 = 5;

/// Runs the X client `program` with `args` on `display` under `timeout(1)`.
fn run_x_client(display: &str, program: &str, args: &[&str]) -> Output {
    let out = Command::new("timeout")
        .arg(X_CLIENT_TIMEOUT.to_string())
        .arg(program)
        .args(args)
        .env("DISPLAY", display)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running timeout(1) for {program}: {e}"));
    // timeout(1) exits 126 when the program cannot be run, 127 when it is not found.
    assert!(
        !matches!(out.status.code(), Some(126 | 127)),
        "{program} could not be run: {} (install the test peers: \
         `scripts/test-peers.sh install`)",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

/// How an X client ended, for failure messages.
fn describe_exit(out: &Output) -> String {
    match out.status.code() {
        Some(124) => format!("timed out after {X_CLIENT_TIMEOUT} s"),
        _ => out.status.to_string(),
    }
}

/// The standard output of the X client `program` on `display`, or `None` when it fails
/// or runs longer than 5 s (for queries whose answer may legitimately be missing: no
/// such window yet, no selection owner).
pub fn x_output(display: &str, program: &str, args: &[&str]) -> Option<String> {
    let out = run_x_client(display, program, args);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The standard output of the X client `program` on `display`; panics with its exit
/// status and error output when it fails or runs longer than 5 s.
pub fn x_command(display: &str, program: &str, args: &[&str]) -> String {
    let out = run_x_client(display, program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} on {display} failed ({}): {}",
        describe_exit(&out),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The X screen's size (`xdpyinfo`).
pub fn screen_size(display: &str) -> (u32, u32) {
    let info = x_command(display, "xdpyinfo", &[]);
    let dims = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("dimensions:"))
        .unwrap_or_else(|| panic!("no dimensions in xdpyinfo on {display}:\n{info}"));
    let wh = dims.split_whitespace().next().unwrap_or_default();
    let parsed = wh
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
    parsed.unwrap_or_else(|| panic!("xdpyinfo dimensions {dims:?} on {display}"))
}

/// Where the X pointer is (`xdotool getmouselocation`), `None` if xdotool cannot tell.
pub fn mouse_location(display: &str) -> Option<(u32, u32)> {
    let out = x_output(display, "xdotool", &["getmouselocation", "--shell"])?;
    let get =
        |k: &str| -> Option<u32> { out.lines().find_map(|l| l.strip_prefix(k))?.parse().ok() };
    Some((get("X=")?, get("Y=")?))
}

/// The text of the X `selection` (`xclip -o`), `None` without an owner or text. The
/// owner may be the session's server asking its client, i.e. the daemon running on this
/// test's runtime, so xclip runs on the blocking pool while `c` keeps reading.
pub async fn read_selection<S>(
    c: &mut GuacClient<S>,
    display: &str,
    selection: &str,
) -> Option<String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (d, s) = (display.to_owned(), selection.to_owned());
    let mut ask = tokio::task::spawn_blocking(move || {
        x_output(&d, "xclip", &["-o", "-selection", s.as_str()])
    });
    loop {
        tokio::select! {
            r = &mut ask => match r {
                Ok(text) => return text,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("xclip -o on {display}: {e}"),
            },
            _ = c.drain(Duration::from_millis(100)) => {}
        }
    }
}

/// CUT_BUFFER0 of the root window (Latin-1), decoded from what `xprop` prints; `None`
/// when it is not set.
pub fn read_cut_buffer(display: &str) -> Option<String> {
    let out = x_command(display, "xprop", &["-root", "CUT_BUFFER0"]);
    let quoted = out.split_once("= \"")?.1.trim_end().strip_suffix('"')?;
    let mut bytes = Vec::new();
    let mut it = quoted.bytes().peekable();
    while let Some(b) = it.next() {
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        let mut octal = String::new();
        while octal.len() < 3 && it.peek().is_some_and(|c| c.is_ascii_digit()) {
            octal.push(char::from(it.next()?));
        }
        match u8::from_str_radix(&octal, 8) {
            Ok(v) if !octal.is_empty() => bytes.push(v),
            _ => bytes.push(it.next()?),
        }
    }
    Some(bytes.iter().map(|&b| char::from(b)).collect())
}

/// Where on the X side a server puts the text its client sent (RFB ClientCutText, RDP
/// CLIPRDR).
#[derive(Debug, Clone, Copy)]
pub enum XText {
    /// An X selection (`"clipboard"`, `"primary"`), read with `xclip -o`.
    Selection(&'static str),
    /// CUT_BUFFER0 of the root window, read with `xprop`.
    CutBuffer0,
}

/// The text at `from` on `display` now (`c` keeps reading while a selection owner answers).
pub async fn read_x_text<S>(c: &mut GuacClient<S>, display: &str, from: XText) -> Option<String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    match from {
        XText::Selection(selection) => read_selection(c, display, selection).await,
        XText::CutBuffer0 => read_cut_buffer(display),
    }
}

/// Waits until the text at `from` on `display` is exactly `want`; gives up after `timeout`
/// with the last text read and the session's summary. `c` keeps reading meanwhile.
pub async fn wait_x_text<S>(
    c: &mut GuacClient<S>,
    display: &str,
    from: XText,
    want: &str,
    timeout: Duration,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let deadline = Instant::now() + timeout;
    loop {
        let got = read_x_text(c, display, from).await;
        if got.as_deref() == Some(want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "X {from:?} on {display} is {got:?} after {timeout:?}, want {want:?}; {}",
                c.state().summary()
            ));
        }
        let _ = c.drain(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------------ pictures

/// How close the display rebuilt from the instruction stream must get to the X screen.
#[derive(Debug, Clone, Copy)]
pub struct Fidelity {
    /// Per-channel difference still counted as equal.
    pub tolerance: u8,
    /// Pixels allowed to differ by more than `tolerance`.
    pub max_bad: usize,
    /// Skip the pointer's box (49x49 px around the X pointer): for servers that draw the
    /// pointer into their framebuffer, which `xwd` pictures never show.
    pub skip_pointer: bool,
    /// Applied to the X screenshot's RGBA pixels before comparing: what the session was
    /// asked to change (e.g. `swap-red-blue`).
    pub transform: Option<fn(&mut [u8])>,
}

impl Fidelity {
    /// Pixel for pixel.
    pub const EXACT: Fidelity = Fidelity {
        tolerance: 0,
        max_bad: 0,
        skip_pointer: false,
        transform: None,
    };

    /// Every pixel within `tolerance` per channel.
    pub const fn within(tolerance: u8) -> Fidelity {
        Fidelity {
            tolerance,
            ..Fidelity::EXACT
        }
    }
}

/// Compares two RGBA pictures (width, height, pixels): Ok when at most `max_bad` pixels
/// differ by more than `tolerance` on some channel; pixels within 24 px of `skip` are not
/// compared. The error counts the differing pixels by size of difference and lists the
/// first few.
pub fn diff(
    a: (u32, u32, &[u8]),
    b: (u32, u32, &[u8]),
    tolerance: u8,
    max_bad: usize,
    skip: Option<(u32, u32)>,
) -> Result<(), String> {
    if (a.0, a.1) != (b.0, b.1) {
        return Err(format!("sizes differ: {}x{} vs {}x{}", a.0, a.1, b.0, b.1));
    }
    let mut count = 0usize;
    let mut first = Vec::new();
    let mut hist = [0usize; 4]; // max channel difference > 0, > 8, > 32, > 96
    for (i, (pa, pb)) in a.2.chunks_exact(4).zip(b.2.chunks_exact(4)).enumerate() {
        let (x, y) = (i as u32 % a.0, i as u32 / a.0);
        if skip.is_some_and(|(px, py)| x.abs_diff(px) <= 24 && y.abs_diff(py) <= 24) {
            continue;
        }
        let worst = pa[..3]
            .iter()
            .zip(&pb[..3])
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0);
        for (slot, limit) in hist.iter_mut().zip([0u8, 8, 32, 96]) {
            if worst > limit {
                *slot += 1;
            }
        }
        if worst > tolerance {
            count += 1;
            if first.len() < 5 {
                first.push(format!("({x},{y}): {:?} vs {:?}", &pa[..3], &pb[..3]));
            }
        }
    }
    if count <= max_bad {
        return Ok(());
    }
    let skipped = skip.map_or(String::new(), |(x, y)| {
        format!(" (pointer box at ({x},{y}) skipped)")
    });
    Err(format!(
        "{count} pixels differ by more than {tolerance} (at most {max_bad} may; {} / {} / {} / \
         {} by more than 0 / 8 / 32 / 96){skipped}, e.g. {}",
        hist[0],
        hist[1],
        hist[2],
        hist[3],
        first.join(", ")
    ))
}

/// Waits until the display rebuilt from `c`'s instruction stream equals the X server's
/// screenshot of `display` as `fidelity` asks. Gives up after `timeout` or when the
/// session closes, with the last difference and the session's summary, and saves the
/// rebuilt display as a PNG named in the error.
pub async fn wait_matches_screen<S>(
    c: &mut GuacClient<S>,
    display: &str,
    fidelity: Fidelity,
    timeout: Duration,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let start = Instant::now();
    loop {
        let _ = c.drain(Duration::from_millis(300)).await;
        let skip = if fidelity.skip_pointer {
            mouse_location(display)
        } else {
            None
        };
        let (w, h, mut x) = x_screenshot(display);
        if let Some(transform) = fidelity.transform {
            transform(&mut x);
        }
        let (gw, gh, g) = c.display().screenshot();
        let Err(e) = diff(
            (gw, gh, &g),
            (w, h, &x),
            fidelity.tolerance,
            fidelity.max_bad,
            skip,
        ) else {
            return Ok(());
        };
        if start.elapsed() >= timeout || c.state().closed {
            let name: String = display
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                .collect();
            let png = std::env::temp_dir().join(format!("guacr-mismatch-display{name}.png"));
            let saved = match c.display().save_png(&png) {
                Ok(()) => format!("rebuilt display saved as {}", png.display()),
                Err(err) => format!("saving the rebuilt display as {}: {err:#}", png.display()),
            };
            let why = if c.state().closed {
                "the session closed"
            } else {
                "timed out"
            };
            return Err(format!(
                "rebuilt display vs X screen of {display} ({why} after {:?}): {e}; {saved}; {}",
                start.elapsed(),
                c.state().summary()
            ));
        }
    }
}

// ------------------------------------------------------------------ scratch files

/// A name no other test (or test process) uses: `tag-PID-N`.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh scratch file path for a command typed into a desktop's xterm to write: directly
/// in the temporary directory (/tmp), which the desktop's shell can write whoever it runs
/// as (root, or a test user behind xrdp).
pub fn scratch(tag: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("guacr-x-{}", unique(tag)));
    let _ = std::fs::remove_file(&path);
    path
}

/// The contents of `path` once it holds a complete line (then the file is removed), or
/// `None` after `timeout`; `c` keeps reading meanwhile.
pub async fn wait_file<S>(c: &mut GuacClient<S>, path: &Path, timeout: Duration) -> Option<String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            let _ = std::fs::remove_file(path);
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        let _ = c.drain(Duration::from_millis(100)).await;
    }
}

/// Ends the session after the typed keys had time to reach the server (x11vnc drops
/// input still queued when its client leaves).
pub async fn settle_and_disconnect<S>(c: &mut GuacClient<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let _ = c.drain(Duration::from_millis(500)).await;
    let _ = c.disconnect().await;
}
