//! The benchmarks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use guacr_protocol::handshake::ClientInfo;
use guacr_testkit::{GuacClient, keysym};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::Target;
use crate::procmem::{self, Mem};
use crate::report::{Json, Summary, Table, ms};

pub(crate) type Client = GuacClient<TcpStream>;

/// Opcodes that draw on the display.
pub(crate) const DRAWING: [&str; 5] = ["img", "copy", "rect", "cfill", "png"];

pub(crate) fn client_info(t: &Target) -> ClientInfo {
    ClientInfo {
        width: t.width,
        height: t.height,
        dpi: 96,
        image_mimetypes: vec!["image/png".into(), "image/jpeg".into(), "image/webp".into()],
        timezone: Some("UTC".into()),
        name: Some("guacr-bench".into()),
        ..Default::default()
    }
}

/// Timings of one handshake, from just before `select` was written.
pub(crate) struct HandshakeTimes {
    pub(crate) args: Duration,
    pub(crate) ready: Duration,
}

/// Connects and performs the SSH handshake. Sync echo on, display model as asked.
async fn open(t: &Target, display: bool) -> anyhow::Result<(Client, HandshakeTimes)> {
    let params = t.params();
    open_with(t, "ssh", &params, display).await
}

/// Connects and performs the handshake for `protocol` with `params`. Sync
/// echo on, display model as asked.
pub(crate) async fn open_with(
    t: &Target,
    protocol: &str,
    params: &[(&'static str, String)],
    display: bool,
) -> anyhow::Result<(Client, HandshakeTimes)> {
    let mut c = GuacClient::connect_tcp(t.addr.as_str())
        .await
        .with_context(|| format!("connecting to {}", t.addr))?;
    c.set_display_enabled(display);
    c.set_echo_sync(true);
    c.set_record_timings(true);
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let start = Instant::now();
    c.handshake(protocol, &client_info(t), &pairs).await?;
    c.set_record_timings(false);
    let at = |op: &str| {
        c.state()
            .timings
            .iter()
            .find(|(_, o)| o == op)
            .map(|(i, _)| i.duration_since(start))
    };
    let times = HandshakeTimes {
        args: at("args").context("no args timing")?,
        ready: at("ready").context("no ready timing")?,
    };
    Ok((c, times))
}

/// Processes instructions until none arrives for `quiet`; returns the arrival
/// time of the last one (None if nothing came). Fails after `max` or on close.
pub(crate) async fn settle(
    c: &mut Client,
    quiet: Duration,
    max: Duration,
) -> anyhow::Result<Option<Instant>> {
    let start = Instant::now();
    let mut last = None;
    loop {
        match c.next_instruction(quiet).await? {
            Some(_) => last = Some(Instant::now()),
            None => {
                if c.state().closed {
                    anyhow::bail!("connection closed; {}", c.state().summary());
                }
                return Ok(last);
            }
        }
        if start.elapsed() > max {
            anyhow::bail!(
                "output did not pause for {quiet:?} within {max:?}; {}",
                c.state().summary()
            );
        }
    }
}

/// Waits until at least `syncs` frames were received, then until output pauses.
pub(crate) async fn wait_prompt(
    c: &mut Client,
    syncs: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    c.wait_until(timeout, |s| s.count("sync") >= syncs)
        .await
        .context("waiting for the first frames")?;
    settle(c, Duration::from_millis(300), timeout).await?;
    Ok(())
}

pub(crate) async fn close(mut c: Client) {
    let _ = c.disconnect().await;
    let _ = c.wait_for_close(Duration::from_secs(2)).await;
}

// ----------------------------------------------------------------- handshake

#[derive(Debug, Args)]
pub struct HandshakeArgs {
    /// Number of handshakes.
    #[arg(long, default_value_t = 200)]
    n: usize,
    /// Pause between handshakes, in ms. The daemon starts the SSH login after
    /// `ready`; the pause keeps that work (and its teardown) out of the next
    /// measurement.
    #[arg(long, default_value_t = 200)]
    pause_ms: u64,
    /// Handshakes before measuring (not reported).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
}

pub async fn handshake(t: &Target, a: &HandshakeArgs) -> anyhow::Result<(String, Json)> {
    let mut connect = Vec::new();
    let mut args = Vec::new();
    let mut ready = Vec::new();
    for i in 0..a.warmup + a.n {
        let t0 = Instant::now();
        let stream = TcpStream::connect(t.addr.as_str())
            .await
            .with_context(|| format!("connecting to {}", t.addr))?;
        let connected = t0.elapsed();
        drop(stream);
        let (c, times) = open(t, false)
            .await
            .with_context(|| format!("handshake {i}"))?;
        close(c).await;
        if i >= a.warmup {
            connect.push(connected);
            args.push(times.args);
            ready.push(times.ready);
        }
        tokio::time::sleep(Duration::from_millis(a.pause_ms)).await;
        if (i + 1).is_multiple_of(50) {
            eprintln!("handshake: {}/{}", i + 1, a.warmup + a.n);
        }
    }
    let mut table = Table::new(
        ["daemon", "interval"]
            .into_iter()
            .chain(Summary::HEADER)
            .collect::<Vec<_>>(),
    );
    let mut json = vec![("daemon", Json::from(t.label.as_str()))];
    for (name, key, samples) in [
        ("select → args", "select_to_args", &args),
        ("select → ready", "select_to_ready", &ready),
        ("TCP connect (reference)", "tcp_connect", &connect),
    ] {
        if let Some(s) = Summary::of(samples) {
            let mut row = vec![t.label.clone(), name.to_owned()];
            row.extend(s.cells());
            table.row(row);
            json.push((key, s.json()));
        }
    }
    Ok((
        format!("handshake ({} SSH handshakes)\n{}", a.n, table.render()),
        Json::obj(json),
    ))
}

// ----------------------------------------------------------------- keystroke

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Clear {
    /// Ctrl-U (Control_L held + u).
    CtrlU,
    /// BackSpace × the number of typed characters.
    Backspace,
}

#[derive(Debug, Args)]
pub struct KeystrokeArgs {
    /// Number of measured keystrokes.
    #[arg(long, default_value_t = 200)]
    n: usize,
    /// Silence that counts as "quiet" between samples, in ms.
    #[arg(long, default_value_t = 50)]
    quiet_ms: u64,
    /// Clear the line after this many characters.
    #[arg(long, default_value_t = 50)]
    line: usize,
    /// How to clear the line.
    #[arg(long, value_enum, default_value_t = Clear::CtrlU)]
    clear: Clear,
    /// Keystrokes before measuring (not reported).
    #[arg(long, default_value_t = 10)]
    warmup: usize,
}

pub async fn keystroke(t: &Target, a: &KeystrokeArgs) -> anyhow::Result<(String, Json)> {
    let (mut c, _) = open(t, false).await?;
    wait_prompt(&mut c, 2, Duration::from_secs(30)).await?;
    let quiet = Duration::from_millis(a.quiet_ms);
    let mut draw = Vec::new();
    let mut frame = Vec::new();
    let mut bytes = Vec::new();
    let mut typed = 0usize;
    for i in 0..a.warmup + a.n {
        if typed == a.line {
            match a.clear {
                Clear::CtrlU => {
                    c.send_key_combo(&[keysym::CONTROL_L, u32::from('u')])
                        .await?
                }
                Clear::Backspace => {
                    for _ in 0..typed {
                        c.press_key(keysym::BACKSPACE).await?;
                    }
                }
            }
            settle(&mut c, Duration::from_millis(150), Duration::from_secs(10)).await?;
            typed = 0;
        }
        let ch = char::from(b'a' + (i % 26) as u8);
        let bytes0 = c.state().bytes_received;
        let t0 = Instant::now();
        c.press_key(u32::from(ch)).await?;
        let mut first_draw = None;
        let first_frame = loop {
            let Some(ins) = c.next_instruction(Duration::from_secs(5)).await? else {
                anyhow::bail!(
                    "no drawing within 5 s of key {ch:?} (sample {i}); {}",
                    c.state().summary()
                );
            };
            if first_draw.is_none() && DRAWING.contains(&ins.opcode.as_str()) {
                first_draw = Some(t0.elapsed());
            }
            if first_draw.is_some() && ins.opcode == "sync" {
                break t0.elapsed();
            }
        };
        settle(&mut c, quiet, Duration::from_secs(10)).await?;
        typed += 1;
        if i >= a.warmup {
            draw.push(first_draw.unwrap_or(first_frame));
            frame.push(first_frame);
            bytes.push(c.state().bytes_received - bytes0);
        }
    }
    close(c).await;
    let mut table = Table::new(
        ["daemon", "interval"]
            .into_iter()
            .chain(Summary::HEADER)
            .collect::<Vec<_>>(),
    );
    let mut json = vec![("daemon", Json::from(t.label.as_str()))];
    for (name, key, samples) in [
        ("key → first drawing instruction", "key_to_draw", &draw),
        ("key → end of frame (sync)", "key_to_sync", &frame),
    ] {
        if let Some(s) = Summary::of(samples) {
            let mut row = vec![t.label.clone(), name.to_owned()];
            row.extend(s.cells());
            table.row(row);
            json.push((key, s.json()));
        }
    }
    let mean_bytes = bytes.iter().sum::<u64>() as f64 / bytes.len().max(1) as f64;
    json.push(("mean_bytes_per_keystroke", mean_bytes.into()));
    Ok((
        format!(
            "keystroke ({} keys, {}x{}; mean {:.0} bytes received per keystroke)\n{}",
            a.n,
            t.width,
            t.height,
            mean_bytes,
            table.render()
        ),
        Json::obj(json),
    ))
}

// ----------------------------------------------------------------- seq

#[derive(Debug, Args)]
pub struct SeqArgs {
    /// `seq 1 COUNT`.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Number of runs (a fresh session each).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Silence that ends the measurement, in ms (not counted in the time).
    #[arg(long, default_value_t = 500)]
    silence_ms: u64,
    /// Keep the display model on and save the settled screen of each run as
    /// PNG (PATH-1.png, …) to check the output really finished. Costs client CPU.
    #[arg(long, value_name = "PATH")]
    screenshot: Option<String>,
    /// PID of the daemon: report the CPU time its process tree used per run.
    #[arg(long)]
    pid: Option<u32>,
    /// PID of the SSH server: report the CPU time of its process tree (sshd,
    /// shell, seq) per run [default: $GUACR_PEERS_DIR/sshd.pid if present].
    #[arg(long)]
    ssh_pid: Option<u32>,
    /// Type `seq 1 COUNT; date +%s%N >/tmp/guacr-bench-…` instead, and report
    /// when seq finished on the (local) SSH server, so that the daemon's lag
    /// behind the producer can be told apart from the producer's own time.
    #[arg(long)]
    mark: bool,
}

impl SeqArgs {
    fn ssh_pid(&self) -> Option<u32> {
        self.ssh_pid.or_else(|| {
            let dir =
                std::env::var("GUACR_PEERS_DIR").unwrap_or_else(|_| "/var/tmp/guacr-peers".into());
            std::fs::read_to_string(format!("{dir}/sshd.pid"))
                .ok()?
                .trim()
                .parse()
                .ok()
        })
    }
}

/// CPU seconds of the daemon's and the SSH server's process trees.
fn cpu_pair(a: &SeqArgs) -> (Option<f64>, Option<f64>) {
    let get = |p: Option<u32>| p.and_then(|p| procmem::tree_cpu_secs(p).ok());
    (get(a.pid), get(a.ssh_pid()))
}

struct SeqRun {
    settled: Duration,
    bytes: u64,
    instructions: u64,
    syncs: u64,
    opcodes: BTreeMap<String, u64>,
    /// CPU seconds used by the daemon (tree) from Return to settled.
    daemon_cpu: Option<f64>,
    /// CPU seconds used by the SSH server tree from Return to settled.
    ssh_cpu: Option<f64>,
    /// When `seq` had finished on the server, after Return (`--mark`).
    producer_done: Option<Duration>,
}

/// Nanoseconds since the Unix epoch, now.
fn epoch_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

async fn seq_run(t: &Target, a: &SeqArgs, index: usize) -> anyhow::Result<SeqRun> {
    let (mut c, _) = open(t, a.screenshot.is_some()).await?;
    wait_prompt(&mut c, 2, Duration::from_secs(30)).await?;
    let mark_file = format!("/tmp/guacr-bench-{}-{index}", std::process::id());
    let _ = std::fs::remove_file(&mark_file);
    let command = if a.mark {
        format!("seq 1 {}; date +%s%N >{mark_file}", a.count)
    } else {
        format!("seq 1 {}", a.count)
    };
    c.type_text(&command).await?;
    settle(&mut c, Duration::from_millis(300), Duration::from_secs(10)).await?;
    let bytes0 = c.state().bytes_received;
    let ins0 = c.state().instructions_received;
    let syncs0 = c.state().count("sync");
    let counts0 = c.state().opcode_counts.clone();
    let cpu0 = cpu_pair(a);
    let t0 = Instant::now();
    let t0_epoch = epoch_nanos();
    c.press_key(keysym::RETURN).await?;
    let last = settle(
        &mut c,
        Duration::from_millis(a.silence_ms),
        Duration::from_secs(600),
    )
    .await?
    .context("no output after Return")?;
    let cpu1 = cpu_pair(a);
    let diff = |x: Option<f64>, y: Option<f64>| Some(y? - x?);
    let producer_done = if a.mark {
        let text = std::fs::read_to_string(&mark_file)
            .with_context(|| format!("reading {mark_file} (written by the shell)"))?;
        let _ = std::fs::remove_file(&mark_file);
        let done: u128 = text.trim().parse().context("parsing the date mark")?;
        Some(Duration::from_nanos(
            u64::try_from(done.saturating_sub(t0_epoch)).unwrap_or(u64::MAX),
        ))
    } else {
        None
    };
    let st = c.state();
    let opcodes = st
        .opcode_counts
        .iter()
        .map(|(k, v)| (k.clone(), v - counts0.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    let run = SeqRun {
        settled: last.duration_since(t0),
        bytes: st.bytes_received - bytes0,
        instructions: st.instructions_received - ins0,
        syncs: st.count("sync") - syncs0,
        opcodes,
        daemon_cpu: diff(cpu0.0, cpu1.0),
        ssh_cpu: diff(cpu0.1, cpu1.1),
        producer_done,
    };
    if let Some(path) = &a.screenshot {
        let path = format!("{path}-{index}.png");
        c.display().save_png(&path)?;
        eprintln!("seq: screen saved to {path}");
    }
    close(c).await;
    Ok(run)
}

pub async fn seq(t: &Target, a: &SeqArgs) -> anyhow::Result<(String, Json)> {
    let mut runs = Vec::new();
    for i in 0..a.runs {
        let r = seq_run(t, a, i + 1)
            .await
            .with_context(|| format!("run {i}"))?;
        eprintln!(
            "seq run {}: settled {:.1} ms, {} bytes, {} instructions, {} frames",
            i + 1,
            ms(r.settled),
            r.bytes,
            r.instructions,
            r.syncs
        );
        runs.push(r);
    }
    let mut table = Table::new([
        "daemon",
        "run",
        "settled ms",
        "bytes",
        "instructions",
        "frames (sync)",
        "daemon CPU s",
        "sshd+shell CPU s",
        "seq done ms",
    ]);
    let secs = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"));
    let mut jruns = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        table.row([
            t.label.clone(),
            (i + 1).to_string(),
            format!("{:.1}", ms(r.settled)),
            r.bytes.to_string(),
            r.instructions.to_string(),
            r.syncs.to_string(),
            secs(r.daemon_cpu),
            secs(r.ssh_cpu),
            r.producer_done
                .map_or_else(|| "–".to_owned(), |d| format!("{:.1}", ms(d))),
        ]);
        jruns.push(Json::obj([
            ("settled_ms", Json::from(ms(r.settled))),
            ("bytes", r.bytes.into()),
            ("instructions", r.instructions.into()),
            ("syncs", r.syncs.into()),
            ("daemon_cpu_s", r.daemon_cpu.into()),
            ("ssh_cpu_s", r.ssh_cpu.into()),
            ("producer_done_ms", r.producer_done.map(ms).into()),
            (
                "opcodes",
                Json::obj(r.opcodes.iter().map(|(k, v)| (k.clone(), Json::from(*v)))),
            ),
        ]));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let med_ms = median(runs.iter().map(|r| ms(r.settled)).collect());
    let med_bytes = median(runs.iter().map(|r| r.bytes as f64).collect());
    table.row([
        t.label.clone(),
        "median".into(),
        format!("{med_ms:.1}"),
        format!("{med_bytes:.0}"),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ]);
    let json = Json::obj([
        ("daemon", Json::from(t.label.as_str())),
        ("count", a.count.into()),
        ("runs", Json::Arr(jruns)),
        ("median_settled_ms", med_ms.into()),
        ("median_bytes", med_bytes.into()),
    ]);
    Ok((
        format!(
            "seq 1 {} ({}x{}; settled = last instruction before {} ms of silence)\n{}",
            a.count,
            t.width,
            t.height,
            a.silence_ms,
            table.render()
        ),
        json,
    ))
}

// ----------------------------------------------------------------- idle

#[derive(Debug, Args)]
pub struct IdleArgs {
    /// Number of concurrent idle SSH sessions.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// PID of the daemon (its process tree is measured: guacd forks per connection).
    #[arg(long)]
    pid: u32,
    /// Sessions being established at the same time.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Wait after the last session is established before measuring, in seconds.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// Frames (syncs) a session must receive to count as established.
    #[arg(long, default_value_t = 2)]
    min_syncs: u64,
}

/// One idle session: established (prompt drawn), then kept alive — syncs
/// echoed, a `nop` every 5 s as guacamole-common-js does — until `stop`.
async fn idle_session(
    t: Arc<Target>,
    sem: Arc<Semaphore>,
    min_syncs: u64,
    done: mpsc::UnboundedSender<anyhow::Result<()>>,
    stop: watch::Receiver<bool>,
    lost: Arc<AtomicUsize>,
) {
    let permit = sem.acquire_owned().await;
    let opened = async {
        let (mut c, _) = open(&t, false).await?;
        wait_prompt(&mut c, min_syncs, Duration::from_secs(60)).await?;
        anyhow::Ok(c)
    }
    .await;
    drop(permit);
    let mut c = match opened {
        Ok(c) => {
            let _ = done.send(Ok(()));
            c
        }
        Err(e) => {
            let _ = done.send(Err(e));
            return;
        }
    };
    let mut last_nop = Instant::now();
    while !*stop.borrow() {
        if c.drain(Duration::from_millis(500)).await.is_err() || c.state().closed {
            if lost.fetch_add(1, Ordering::Relaxed) == 0 {
                eprintln!("idle: a session closed: {}", c.state().summary());
            }
            return;
        }
        if last_nop.elapsed() >= Duration::from_secs(5) {
            if c.send_nop().await.is_err() {
                lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
            last_nop = Instant::now();
        }
    }
    close(c).await;
}

pub(crate) fn mem_json(m: &Mem) -> Json {
    Json::obj([
        ("rss_kib", Json::from(m.rss_kib)),
        ("pss_kib", m.pss_kib.into()),
        ("uss_kib", m.uss_kib.into()),
        ("threads", m.threads.into()),
        ("processes", m.processes.into()),
    ])
}

pub async fn idle(t: &Target, a: &IdleArgs) -> anyhow::Result<(String, Json)> {
    if let Some((soft, _)) = procmem::nofile_limit()
        && soft < a.sessions as u64 + 64
    {
        anyhow::bail!(
            "RLIMIT_NOFILE is {soft}: raise it (`ulimit -n {}`) for {} sessions; \
             the daemon needs about 2 per session too",
            a.sessions * 2 + 256,
            a.sessions
        );
    }
    let before_main = procmem::process(a.pid)?;
    let before = procmem::tree(a.pid)?;
    eprintln!(
        "idle: baseline RSS {} KiB, PSS(tree) {} KiB, {} threads, {} processes",
        before_main.rss_kib, before.pss_kib, before.threads, before.processes
    );

    let t = Arc::new(t.clone());
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let lost = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let ramp_start = Instant::now();
    for _ in 0..a.sessions {
        tasks.spawn(idle_session(
            t.clone(),
            sem.clone(),
            a.min_syncs,
            done_tx.clone(),
            stop_rx.clone(),
            lost.clone(),
        ));
    }
    drop(done_tx);
    let mut ok = 0usize;
    let mut failed = 0usize;
    let mut first_error = None;
    // Every session reports once (and keeps its sender while it idles).
    while ok + failed < a.sessions {
        let Some(r) = done_rx.recv().await else {
            break;
        };
        match r {
            Ok(()) => ok += 1,
            Err(e) => {
                failed += 1;
                if first_error.is_none() {
                    eprintln!("idle: a session failed: {e:#}");
                    first_error = Some(format!("{e:#}"));
                }
            }
        }
        if (ok + failed).is_multiple_of(100) {
            eprintln!(
                "idle: {ok} established, {failed} failed, {:.1} s",
                ramp_start.elapsed().as_secs_f64()
            );
        }
    }
    let ramp = ramp_start.elapsed();
    tokio::time::sleep(Duration::from_secs(a.settle_secs)).await;
    let after_main = procmem::process(a.pid)?;
    let after = procmem::tree(a.pid)?;
    let alive = ok.saturating_sub(lost.load(Ordering::Relaxed));
    eprintln!("idle: measured, closing {ok} sessions");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}

    let per = |b: u64, a_: u64| (a_.saturating_sub(b)) as f64 / ok.max(1) as f64;
    let mut table = Table::new(["daemon", "measure", "before", "after", "per session"]);
    let kib = |v: u64| format!("{:.1} MiB", v as f64 / 1024.0);
    let per_kib = |v: f64| format!("{v:.0} KiB");
    table.row([
        t.label.clone(),
        "VmRSS (daemon pid)".into(),
        kib(before_main.rss_kib),
        kib(after_main.rss_kib),
        per_kib(per(before_main.rss_kib, after_main.rss_kib)),
    ]);
    table.row([
        t.label.clone(),
        "PSS (process tree)".into(),
        kib(before.pss_kib),
        kib(after.pss_kib),
        per_kib(per(before.pss_kib, after.pss_kib)),
    ]);
    table.row([
        t.label.clone(),
        "USS (process tree)".into(),
        kib(before.uss_kib),
        kib(after.uss_kib),
        per_kib(per(before.uss_kib, after.uss_kib)),
    ]);
    table.row([
        t.label.clone(),
        "threads (process tree)".into(),
        before.threads.to_string(),
        after.threads.to_string(),
        format!(
            "{:.2}",
            after.threads.saturating_sub(before.threads) as f64 / ok.max(1) as f64
        ),
    ]);
    table.row([
        t.label.clone(),
        "processes".into(),
        before.processes.to_string(),
        after.processes.to_string(),
        String::new(),
    ]);
    let json = Json::obj([
        ("daemon", Json::from(t.label.as_str())),
        ("sessions", Json::from(a.sessions as u64)),
        ("established", (ok as u64).into()),
        ("failed", (failed as u64).into()),
        ("alive_at_measurement", (alive as u64).into()),
        ("first_error", first_error.clone().into()),
        ("ramp_s", ramp.as_secs_f64().into()),
        ("before_main", mem_json(&before_main)),
        ("after_main", mem_json(&after_main)),
        ("before_tree", mem_json(&before)),
        ("after_tree", mem_json(&after)),
        (
            "rss_per_session_kib",
            per(before_main.rss_kib, after_main.rss_kib).into(),
        ),
        (
            "pss_per_session_kib",
            per(before.pss_kib, after.pss_kib).into(),
        ),
    ]);
    Ok((
        format!(
            "idle ({ok} of {} SSH sessions established in {:.1} s, {failed} failed, {}x{}, \
             scrollback {})\n{}",
            a.sessions,
            ramp.as_secs_f64(),
            t.width,
            t.height,
            t.scrollback,
            table.render()
        ),
        json,
    ))
}
