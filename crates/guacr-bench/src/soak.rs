//! Scale and soak: a cheap Telnet echo peer (`upstream`), many concurrent
//! telnet sessions (`scale`) and many short ones (`cycles`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::Target;
use crate::bench::{Client, DRAWING, close, mem_json, open_with, wait_prompt};
use crate::procmem::{self, Mem};
use crate::report::{Json, Summary, Table};

// ----------------------------------------------------------------- upstream

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;

const BANNER: &[u8] = b"guacr-bench upstream\r\n";
const PROMPT: &[u8] = b"bench$ ";

#[derive(Debug, Args)]
pub struct UpstreamArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:2399")]
    listen: String,
}

/// Where the upstream is, for `scale` and `cycles`.
#[derive(Debug, Args)]
pub struct UpstreamTarget {
    /// The Telnet echo server (`guacr-bench upstream`), as the daemon reaches it.
    #[arg(long, default_value = "127.0.0.1:2399")]
    upstream: String,
    /// Run the upstream inside this process (listening on `--upstream`).
    #[arg(long)]
    spawn_upstream: bool,
}

impl UpstreamTarget {
    pub(crate) async fn start(&self) -> anyhow::Result<()> {
        if self.spawn_upstream {
            let l = TcpListener::bind(self.upstream.as_str())
                .await
                .with_context(|| format!("binding {}", self.upstream))?;
            tokio::spawn(serve(l));
        }
        Ok(())
    }

    /// The telnet parameters: no username/password, so no login automation.
    pub(crate) fn params(&self, t: &Target) -> anyhow::Result<Vec<(&'static str, String)>> {
        let (host, port) = self
            .upstream
            .rsplit_once(':')
            .context("--upstream must be HOST:PORT")?;
        Ok(vec![
            ("hostname", host.to_owned()),
            ("port", port.to_owned()),
            ("scrollback", t.scrollback.to_string()),
        ])
    }
}

/// Telnet parser state of one upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tn {
    Data,
    /// The previous data byte was CR: swallow a following NUL or LF.
    AfterCr,
    Iac,
    Negotiate(u8),
    Sub,
    SubIac,
}

/// Feeds received bytes: echo in `out`, `\r` → `\r\n` + prompt; answers
/// `DO`/`WILL` with `WONT`/`DONT` and ignores everything else of Telnet.
fn upstream_feed(state: &mut Tn, input: &[u8], out: &mut Vec<u8>) {
    for &b in input {
        *state = match (*state, b) {
            (Tn::Data | Tn::AfterCr, IAC) => Tn::Iac,
            (Tn::AfterCr, 0 | b'\n') => Tn::Data,
            (Tn::Data | Tn::AfterCr, b'\r') => {
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(PROMPT);
                Tn::AfterCr
            }
            (Tn::Data | Tn::AfterCr, b) => {
                out.push(b);
                Tn::Data
            }
            (Tn::Iac, IAC) => {
                out.extend_from_slice(&[IAC, IAC]);
                Tn::Data
            }
            (Tn::Iac, WILL | WONT | DO | DONT) => Tn::Negotiate(b),
            (Tn::Iac, SB) => Tn::Sub,
            (Tn::Iac, _) => Tn::Data,
            (Tn::Negotiate(cmd), opt) => {
                match cmd {
                    DO => out.extend_from_slice(&[IAC, WONT, opt]),
                    WILL => out.extend_from_slice(&[IAC, DONT, opt]),
                    _ => {}
                }
                Tn::Data
            }
            (Tn::Sub, IAC) => Tn::SubIac,
            (Tn::Sub, _) => Tn::Sub,
            (Tn::SubIac, SE) => Tn::Data,
            (Tn::SubIac, _) => Tn::Sub,
        };
    }
}

async fn upstream_conn(mut s: TcpStream) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut hello = BANNER.to_vec();
    hello.extend_from_slice(PROMPT);
    s.write_all(&hello).await?;
    let mut buf = [0u8; 512];
    let mut out = Vec::new();
    let mut state = Tn::Data;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        out.clear();
        upstream_feed(&mut state, &buf[..n], &mut out);
        if !out.is_empty() {
            s.write_all(&out).await?;
        }
    }
}

/// Accepts forever, one task per connection.
async fn serve(l: TcpListener) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                tokio::spawn(upstream_conn(s));
            }
            Err(e) => {
                // EMFILE and the like: wait and retry rather than die.
                eprintln!("upstream: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

pub async fn upstream(a: &UpstreamArgs) -> anyhow::Result<(String, Json)> {
    let l = TcpListener::bind(a.listen.as_str())
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    eprintln!("upstream: listening on {}", a.listen);
    serve(l).await;
    Ok((String::new(), Json::Null))
}

// ----------------------------------------------------------------- helpers

fn check_nofile(needed: usize) -> anyhow::Result<()> {
    if let Some((soft, _)) = procmem::nofile_limit()
        && soft < needed as u64 + 64
    {
        anyhow::bail!(
            "RLIMIT_NOFILE is {soft}: raise it (`ulimit -n {}`); the daemon needs about 2 \
             fds per session too",
            needed + 256
        );
    }
    Ok(())
}

/// Daemon memory (its pid and its tree) and fds.
#[derive(Debug, Clone, Copy)]
struct Sample {
    main: Mem,
    tree: Mem,
    fds: u64,
}

fn sample(pid: u32) -> anyhow::Result<Sample> {
    Ok(Sample {
        main: procmem::process(pid)?,
        tree: procmem::tree(pid)?,
        fds: procmem::fd_count(pid)?,
    })
}

fn sample_json(s: &Sample) -> Json {
    Json::obj([
        ("main", mem_json(&s.main)),
        ("tree", mem_json(&s.tree)),
        ("fds", Json::from(s.fds)),
    ])
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

// ----------------------------------------------------------------- scale

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Number of concurrent telnet sessions.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// How many of them type (the others idle).
    #[arg(long, default_value_t = 100)]
    active: usize,
    /// PID of the daemon.
    #[arg(long)]
    pid: u32,
    #[command(flatten)]
    up: UpstreamTarget,
    /// Sessions being established at the same time.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Length of the typing phase, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Time between two keys of one active session, in ms (the active
    /// sessions are spread evenly over it: round robin).
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Wait after the ramp before measuring memory, in seconds.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
}

/// Keys typed on one line before Return (the Return is not measured).
const LINE: usize = 60;

struct Shared {
    ok: AtomicUsize,
    lost: AtomicUsize,
    latencies: Mutex<Vec<Duration>>,
    timeouts: AtomicUsize,
}

/// Keeps an established session alive until `stop` (or `until`), reading
/// everything (syncs are echoed) and sending a `nop` every 5 s.
async fn keep_alive(
    c: &mut Client,
    stop: &mut watch::Receiver<bool>,
    until: Option<Instant>,
    last_nop: &mut Instant,
) -> anyhow::Result<()> {
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let mut slice = Duration::from_secs(1);
        if let Some(u) = until {
            let left = u.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            slice = slice.min(left);
        }
        c.drain(slice).await?;
        if c.state().closed {
            anyhow::bail!("closed by the daemon: {}", c.state().summary());
        }
        if last_nop.elapsed() >= Duration::from_secs(5) {
            c.send_nop().await?;
            *last_nop = Instant::now();
        }
    }
}

/// One key and its latency to the first drawing instruction (None: no
/// drawing within 5 s).
async fn key_latency(c: &mut Client, keysym: u32) -> anyhow::Result<Option<Duration>> {
    let t0 = Instant::now();
    c.press_key(keysym).await?;
    let deadline = t0 + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match c.next_instruction(left).await? {
            Some(ins) if DRAWING.contains(&ins.opcode.as_str()) => return Ok(Some(t0.elapsed())),
            Some(_) => {}
            None if c.state().closed => {
                anyhow::bail!("closed by the daemon: {}", c.state().summary())
            }
            None => return Ok(None),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn scale_session(
    t: Arc<Target>,
    params: Arc<Vec<(&'static str, String)>>,
    sem: Arc<Semaphore>,
    done: mpsc::UnboundedSender<anyhow::Result<()>>,
    mut go: watch::Receiver<Option<(Instant, Instant)>>,
    mut stop: watch::Receiver<bool>,
    shared: Arc<Shared>,
    active: Option<(usize, usize, Duration)>,
) {
    let permit = sem.acquire_owned().await;
    let opened = async {
        let (mut c, _) = open_with(&t, "telnet", &params, false).await?;
        wait_prompt(&mut c, 1, Duration::from_secs(60)).await?;
        anyhow::Ok(c)
    }
    .await;
    drop(permit);
    let mut c = match opened {
        Ok(c) => {
            shared.ok.fetch_add(1, Ordering::Relaxed);
            let _ = done.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = done.send(Err(e));
            return;
        }
    };
    let mut last_nop = Instant::now();
    let r = async {
        let Some((index, count, interval)) = active else {
            return keep_alive(&mut c, &mut stop, None, &mut last_nop).await;
        };
        // Idle until the typing phase starts (`go` carries its start and end).
        let start = loop {
            if let Some(s) = *go.borrow() {
                break s;
            }
            tokio::select! {
                r = go.changed() => r?,
                r = c.drain(Duration::from_secs(1)) => { r?; }
            }
            if c.state().closed {
                anyhow::bail!("closed by the daemon: {}", c.state().summary());
            }
        };
        let (start, end) = start;
        let phase = interval * index as u32 / count.max(1) as u32;
        let mut next = start + phase;
        let mut typed = 0usize;
        let mut samples = Vec::new();
        while next < end {
            keep_alive(&mut c, &mut stop, Some(next), &mut last_nop).await?;
            if *stop.borrow() {
                break;
            }
            if typed == LINE {
                c.press_key(guacr_testkit::keysym::RETURN).await?;
                typed = 0;
            } else {
                let ch = char::from(b'a' + (typed % 26) as u8);
                match key_latency(&mut c, u32::from(ch)).await? {
                    Some(d) => samples.push(d),
                    None => {
                        shared.timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                }
                typed += 1;
            }
            next = (next + interval).max(Instant::now());
        }
        if let Ok(mut l) = shared.latencies.lock() {
            l.extend(samples);
        }
        keep_alive(&mut c, &mut stop, None, &mut last_nop).await
    }
    .await;
    if let Err(e) = r {
        if shared.lost.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!("scale: a session failed after it was established: {e:#}");
        }
        return;
    }
    close(c).await;
}

pub async fn scale(t: &Target, a: &ScaleArgs) -> anyhow::Result<(String, Json)> {
    let own = if a.up.spawn_upstream { 2 } else { 1 };
    check_nofile(a.sessions * own)?;
    a.up.start().await?;
    let params = Arc::new(a.up.params(t)?);
    let before = sample(a.pid)?;
    eprintln!(
        "scale: baseline RSS {} KiB, PSS(tree) {} KiB, {} fds",
        before.main.rss_kib, before.tree.pss_kib, before.fds
    );
    let t = Arc::new(t.clone());
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (go_tx, go_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        ok: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
        latencies: Mutex::new(Vec::new()),
        timeouts: AtomicUsize::new(0),
    });
    let active = a.active.min(a.sessions);
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    let ramp_start = Instant::now();
    for i in 0..a.sessions {
        // Spread the active sessions over the ramp (every k-th session).
        let stride = a.sessions / active.max(1);
        let act = (active > 0 && i.is_multiple_of(stride.max(1)) && i / stride.max(1) < active)
            .then(|| (i / stride.max(1), active, interval));
        tasks.spawn(scale_session(
            t.clone(),
            params.clone(),
            sem.clone(),
            done_tx.clone(),
            go_rx.clone(),
            stop_rx.clone(),
            shared.clone(),
            act,
        ));
    }
    drop(done_tx);
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut first_error = None;
    while ok + failed < a.sessions {
        let Some(r) = done_rx.recv().await else {
            break;
        };
        match r {
            Ok(()) => ok += 1,
            Err(e) => {
                failed += 1;
                if first_error.is_none() {
                    eprintln!("scale: a session failed: {e:#}");
                    first_error = Some(format!("{e:#}"));
                }
            }
        }
        if (ok + failed).is_multiple_of(500) {
            eprintln!(
                "scale: {ok} established, {failed} failed, {:.1} s",
                ramp_start.elapsed().as_secs_f64()
            );
        }
    }
    let ramp = ramp_start.elapsed();
    tokio::time::sleep(Duration::from_secs(a.settle_secs)).await;
    let after = sample(a.pid)?;
    eprintln!(
        "scale: {ok} sessions: RSS {} KiB, PSS(tree) {} KiB, {} fds; typing for {} s",
        after.main.rss_kib, after.tree.pss_kib, after.fds, a.duration
    );
    let cpu0 = procmem::tree_cpu_secs(a.pid).ok();
    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs(a.duration);
    let _ = go_tx.send(Some((start, end)));
    tokio::time::sleep_until((end + Duration::from_millis(500)).into()).await;
    let cpu1 = procmem::tree_cpu_secs(a.pid).ok();
    // Let the active sessions hand in their samples (they stop typing at `end`).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let typed = sample(a.pid)?;
    let lost = shared.lost.load(Ordering::Relaxed);
    eprintln!("scale: measured, closing {ok} sessions");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let latencies = shared
        .latencies
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    let timeouts = shared.timeouts.load(Ordering::Relaxed);
    let lat = Summary::of(&latencies);
    let daemon_cpu = cpu0.zip(cpu1).map(|(x, y)| y - x);

    let per = |b: u64, x: u64| x.saturating_sub(b) as f64 / ok.max(1) as f64;
    let mut table = Table::new([
        "daemon",
        "measure",
        "before",
        "after ramp",
        "after typing",
        "per session (ramp)",
    ]);
    for (name, f) in [
        (
            "VmRSS (daemon pid)",
            (|s: &Sample| s.main.rss_kib) as fn(&Sample) -> u64,
        ),
        ("PSS (process tree)", |s: &Sample| s.tree.pss_kib),
        ("USS (process tree)", |s: &Sample| s.tree.uss_kib),
    ] {
        table.row([
            t.label.clone(),
            name.into(),
            mib(f(&before)),
            mib(f(&after)),
            mib(f(&typed)),
            format!("{:.0} KiB", per(f(&before), f(&after))),
        ]);
    }
    for (name, f) in [
        (
            "threads (process tree)",
            (|s: &Sample| s.tree.threads) as fn(&Sample) -> u64,
        ),
        ("open fds (daemon pid)", |s: &Sample| s.fds),
    ] {
        table.row([
            t.label.clone(),
            name.into(),
            f(&before).to_string(),
            f(&after).to_string(),
            f(&typed).to_string(),
            format!("{:.2}", per(f(&before), f(&after))),
        ]);
    }
    let mut lt = Table::new(
        ["daemon", "interval"]
            .into_iter()
            .chain(Summary::HEADER)
            .collect::<Vec<_>>(),
    );
    if let Some(s) = &lat {
        let mut row = vec![
            t.label.clone(),
            "key → first drawing instruction".to_owned(),
        ];
        row.extend(s.cells());
        lt.row(row);
    }
    let json = Json::obj([
        ("daemon", Json::from(t.label.as_str())),
        ("sessions", Json::from(a.sessions as u64)),
        ("active", (active as u64).into()),
        ("established", (ok as u64).into()),
        ("failed", (failed as u64).into()),
        ("lost", (lost as u64).into()),
        ("first_error", first_error.into()),
        ("ramp_s", ramp.as_secs_f64().into()),
        ("before", sample_json(&before)),
        ("after_ramp", sample_json(&after)),
        ("after_typing", sample_json(&typed)),
        (
            "rss_per_session_kib",
            per(before.main.rss_kib, after.main.rss_kib).into(),
        ),
        (
            "pss_per_session_kib",
            per(before.tree.pss_kib, after.tree.pss_kib).into(),
        ),
        (
            "key_to_draw",
            lat.as_ref().map_or(Json::Null, Summary::json),
        ),
        ("key_timeouts", (timeouts as u64).into()),
        ("daemon_cpu_s_typing", daemon_cpu.into()),
    ]);
    Ok((
        format!(
            "scale ({ok} of {} telnet sessions established in {:.1} s, {failed} failed, {lost} \
             lost; {}x{}, scrollback {})\n{}\n\
             typing: {active} active sessions, one key every {} ms each, {} s; {timeouts} keys \
             without a drawing within 5 s; daemon CPU {}\n{}",
            a.sessions,
            ramp.as_secs_f64(),
            t.width,
            t.height,
            t.scrollback,
            table.render(),
            a.interval_ms,
            a.duration,
            daemon_cpu.map_or_else(|| "–".to_owned(), |c| format!("{c:.2} s")),
            lt.render()
        ),
        json,
    ))
}

// ----------------------------------------------------------------- cycles

#[derive(Debug, Args)]
pub struct CyclesArgs {
    /// Number of measured cycles (after the warm-up).
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// PID of the daemon.
    #[arg(long)]
    pid: u32,
    #[command(flatten)]
    up: UpstreamTarget,
    /// Cycles running at the same time.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Cycles before the baseline is taken.
    #[arg(long, default_value_t = 1000)]
    warmup: usize,
    /// Quiet time before the baseline and before the final sample, in seconds.
    #[arg(long, default_value_t = 5)]
    quiet_secs: u64,
    /// RSS tolerance against the baseline, in percent.
    #[arg(long, default_value_t = 5.0)]
    tolerance: f64,
}

struct CycleStats {
    done: AtomicUsize,
    failed: AtomicUsize,
    /// The daemon did not close the connection within 2 s of `disconnect`.
    slow_close: AtomicUsize,
    first_error: Mutex<Option<String>>,
    latencies: Mutex<Vec<Duration>>,
}

/// connect → handshake → first `sync` → disconnect → the daemon closes.
async fn one_cycle(
    t: &Target,
    params: &[(&'static str, String)],
) -> anyhow::Result<(Duration, bool)> {
    let t0 = Instant::now();
    let (mut c, _) = open_with(t, "telnet", params, false).await?;
    c.wait_until(Duration::from_secs(10), |s| s.count("sync") >= 1)
        .await
        .context("waiting for the first frame")?;
    let first = t0.elapsed();
    c.disconnect().await?;
    let clean = c.wait_for_close(Duration::from_secs(2)).await.is_ok();
    Ok((first, clean))
}

/// Runs `count` cycles on `concurrency` workers; `progress(done)` is called
/// by the caller while they run (see `cycles`).
fn spawn_cycles(
    t: &Arc<Target>,
    params: &Arc<Vec<(&'static str, String)>>,
    count: usize,
    concurrency: usize,
    stats: &Arc<CycleStats>,
) -> tokio::task::JoinSet<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (t, params, stats, next) = (t.clone(), params.clone(), stats.clone(), next.clone());
        set.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                match one_cycle(&t, &params).await {
                    Ok((d, clean)) => {
                        if !clean {
                            stats.slow_close.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Ok(mut l) = stats.latencies.lock() {
                            l.push(d);
                        }
                    }
                    Err(e) => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut f) = stats.first_error.lock()
                            && f.is_none()
                        {
                            eprintln!("cycles: a cycle failed: {e:#}");
                            *f = Some(format!("{e:#}"));
                        }
                    }
                }
                stats.done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    set
}

pub async fn cycles(t: &Target, a: &CyclesArgs) -> anyhow::Result<(String, Json)> {
    check_nofile(a.concurrency * 4)?;
    a.up.start().await?;
    let params = Arc::new(a.up.params(t)?);
    let t = Arc::new(t.clone());
    let quiet = Duration::from_secs(a.quiet_secs);
    let mut samples: Vec<(String, usize, f64, Sample)> = Vec::new();
    let begin = Instant::now();
    let start = sample(a.pid)?;
    samples.push(("start".into(), 0, 0.0, start));

    let new_stats = || {
        Arc::new(CycleStats {
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            slow_close: AtomicUsize::new(0),
            first_error: Mutex::new(None),
            latencies: Mutex::new(Vec::new()),
        })
    };
    // Warm-up, then quiet, then the baseline.
    let warm = new_stats();
    let mut set = spawn_cycles(&t, &params, a.warmup, a.concurrency, &warm);
    while set.join_next().await.is_some() {}
    eprintln!(
        "cycles: warm-up of {} done in {:.1} s ({} failed)",
        a.warmup,
        begin.elapsed().as_secs_f64(),
        warm.failed.load(Ordering::Relaxed)
    );
    tokio::time::sleep(quiet).await;
    let baseline = sample(a.pid)?;
    samples.push((
        "baseline (after warm-up + quiet)".into(),
        0,
        begin.elapsed().as_secs_f64(),
        baseline,
    ));

    let stats = new_stats();
    let run_start = Instant::now();
    let mut set = spawn_cycles(&t, &params, a.n, a.concurrency, &stats);
    let mut next_tenth = 1;
    loop {
        let done = stats.done.load(Ordering::Relaxed);
        while next_tenth <= 10 && done * 10 >= a.n * next_tenth {
            let s = sample(a.pid)?;
            eprintln!(
                "cycles: {done}/{} in {:.1} s: RSS {} KiB, {} fds, {} failed",
                a.n,
                run_start.elapsed().as_secs_f64(),
                s.main.rss_kib,
                s.fds,
                stats.failed.load(Ordering::Relaxed)
            );
            samples.push((
                format!("{}%", next_tenth * 10),
                done,
                begin.elapsed().as_secs_f64(),
                s,
            ));
            next_tenth += 1;
        }
        if set.is_empty() {
            break;
        }
        tokio::select! {
            r = set.join_next() => { if r.is_none() { continue; } }
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    let run = run_start.elapsed();
    tokio::time::sleep(quiet).await;
    let end = sample(a.pid)?;
    samples.push((
        format!("end (+{} s quiet)", a.quiet_secs),
        a.n,
        begin.elapsed().as_secs_f64(),
        end,
    ));

    let growth = |b: u64, x: u64| (x as f64 - b as f64) / (b.max(1) as f64) * 100.0;
    let rss_growth = growth(baseline.main.rss_kib, end.main.rss_kib);
    let rss_ok = rss_growth <= a.tolerance;
    let fd_leak = end.fds.saturating_sub(baseline.fds);
    let failed = stats.failed.load(Ordering::Relaxed);
    let slow = stats.slow_close.load(Ordering::Relaxed);
    let first_error = stats.first_error.lock().ok().and_then(|f| f.clone());
    let lat = stats.latencies.lock().ok().and_then(|l| Summary::of(&l));

    let mut table = Table::new([
        "daemon",
        "point",
        "cycles",
        "t s",
        "VmRSS",
        "PSS (tree)",
        "threads",
        "open fds",
    ]);
    for (name, n, at, s) in &samples {
        table.row([
            t.label.clone(),
            name.clone(),
            n.to_string(),
            format!("{at:.1}"),
            mib(s.main.rss_kib),
            mib(s.tree.pss_kib),
            s.tree.threads.to_string(),
            s.fds.to_string(),
        ]);
    }
    let mut lt = Table::new(
        ["daemon", "interval"]
            .into_iter()
            .chain(Summary::HEADER)
            .collect::<Vec<_>>(),
    );
    if let Some(s) = &lat {
        let mut row = vec![t.label.clone(), "connect → first sync".to_owned()];
        row.extend(s.cells());
        lt.row(row);
    }
    let rate = a.n as f64 / run.as_secs_f64().max(1e-9);
    let json = Json::obj([
        ("daemon", Json::from(t.label.as_str())),
        ("n", Json::from(a.n as u64)),
        ("warmup", (a.warmup as u64).into()),
        ("concurrency", (a.concurrency as u64).into()),
        ("failed", (failed as u64).into()),
        ("slow_close", (slow as u64).into()),
        ("first_error", first_error.clone().into()),
        ("run_s", run.as_secs_f64().into()),
        ("cycles_per_s", rate.into()),
        ("rss_growth_pct", rss_growth.into()),
        ("rss_within_tolerance", rss_ok.into()),
        ("fd_growth", fd_leak.into()),
        (
            "samples",
            Json::Arr(
                samples
                    .iter()
                    .map(|(name, n, at, s)| {
                        Json::obj([
                            ("point", Json::from(name.as_str())),
                            ("cycles", (*n as u64).into()),
                            ("t_s", (*at).into()),
                            ("sample", sample_json(s)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "connect_to_first_sync",
            lat.as_ref().map_or(Json::Null, Summary::json),
        ),
    ]);
    Ok((
        format!(
            "cycles ({} telnet connect → first sync → disconnect after a warm-up of {}, {} at a \
             time; {:.1} s, {rate:.0}/s; {failed} failed, {slow} not closed by the daemon within \
             2 s)\n{}\nRSS end vs baseline: {rss_growth:+.2} % ({}: tolerance {} %); open fds: \
             {} → {} ({})\n{}",
            a.n,
            a.warmup,
            a.concurrency,
            run.as_secs_f64(),
            table.render(),
            if rss_ok { "ok" } else { "NOT ok" },
            a.tolerance,
            baseline.fds,
            end.fds,
            if fd_leak == 0 { "no leak" } else { "LEAK" },
            lt.render()
        ),
        json,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(input: &[u8]) -> Vec<u8> {
        let mut st = Tn::Data;
        let mut out = Vec::new();
        upstream_feed(&mut st, input, &mut out);
        out
    }

    #[test]
    fn echoes_and_prompts() {
        assert_eq!(feed(b"ab"), b"ab");
        assert_eq!(feed(b"a\r\0b"), b"a\r\nbench$ b");
        assert_eq!(feed(b"a\r\nb"), b"a\r\nbench$ b");
    }

    #[test]
    fn refuses_options() {
        assert_eq!(
            feed(&[IAC, DO, 31, b'x', IAC, WILL, 1, IAC, WONT, 3, IAC, DONT, 24]),
            [IAC, WONT, 31, b'x', IAC, DONT, 1]
        );
        assert_eq!(feed(&[IAC, SB, 24, 0, b'x', IAC, SE, b'y']), b"y");
        assert_eq!(feed(&[IAC, IAC]), [IAC, IAC]);
    }
}
