//! `guacr-bench rdp`: daemon memory and threads per active RDP session, and frames per
//! second / bytes per frame while text scrolls in the remote xterm.
//!
//! Opens N sessions to one RDP server (default: the xrdp TLS test peer of
//! scripts/peers.d/rdp.sh; xrdp reconnects a user's logins to one X session, so every
//! session shows — and receives the updates of — the same desktop), measures the daemon's
//! VmRSS and thread count before and after, then types a scrolling command (the GPL in a loop) into
//! the xterm and counts `sync`s (frames) and bytes on session 0 for a fixed window, with
//! the daemon's RSS sampled during the scroll (every session is then active).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use guacr_protocol::handshake::ClientInfo;
use guacr_testkit::GuacClient;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::Target;
use crate::bench::{close, mem_json};
use crate::procmem;
use crate::report::{Json, Table};

type Client = GuacClient<TcpStream>;

#[derive(Debug, Args)]
pub struct RdpArgs {
    /// PID of the daemon (its process tree is measured).
    #[arg(long)]
    pid: u32,
    /// Concurrent RDP sessions.
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// RDP host as seen by the daemon [env GUACR_TEST_RDP_HOST, else 127.0.0.1].
    #[arg(long)]
    rdp_host: Option<String>,
    /// RDP port [env GUACR_TEST_RDP_XRDP_TLS_PORT, else 3389].
    #[arg(long)]
    rdp_port: Option<u16>,
    /// RDP user [env GUACR_TEST_RDP_BENCH_USER, else guacr-rdp-bench: an xrdp session of
    /// its own, so the tests' sessions are not disturbed].
    #[arg(long)]
    rdp_user: Option<String>,
    /// RDP password [env GUACR_TEST_RDP_PASSWORD].
    #[arg(long)]
    rdp_password: Option<String>,
    /// guacd `security` parameter.
    #[arg(long, default_value = "tls")]
    security: String,
    /// Seconds to wait after the last session is up before measuring.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// Length of the scrolling window.
    #[arg(long, default_value_t = 10)]
    scroll_secs: u64,
    /// The command typed into the xterm to scroll text (stopped with Ctrl-C): prose, so
    /// the picture changes across the width (`yes` or `seq` lines scroll into identical
    /// pixels and measure nothing).
    #[arg(
        long,
        default_value = "while :; do cat /usr/share/common-licenses/GPL-3; done"
    )]
    scroll_command: String,
}

fn resolve(a: &RdpArgs) -> anyhow::Result<(String, u16, String, String)> {
    let file = guacr_testkit::peers::env_file();
    let var = |k: &str| std::env::var(k).ok().or_else(|| file.get(k).cloned());
    let host = a
        .rdp_host
        .clone()
        .or_else(|| var("GUACR_TEST_RDP_HOST"))
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = match a.rdp_port {
        Some(p) => p,
        None => var("GUACR_TEST_RDP_XRDP_TLS_PORT")
            .and_then(|p| p.parse().ok())
            .unwrap_or(3389),
    };
    let user = a
        .rdp_user
        .clone()
        .or_else(|| var("GUACR_TEST_RDP_BENCH_USER"))
        .unwrap_or_else(|| "guacr-rdp-bench".into());
    let Some(password) = a
        .rdp_password
        .clone()
        .or_else(|| var("GUACR_TEST_RDP_PASSWORD"))
    else {
        anyhow::bail!(
            "no RDP password: pass --rdp-password or start the peers (scripts/test-peers.sh start)"
        );
    };
    Ok((host, port, user, password))
}

async fn open_rdp(
    t: &Target,
    a: &RdpArgs,
    server: &(String, u16, String, String),
    display: bool,
) -> anyhow::Result<Client> {
    let mut c = GuacClient::connect_tcp(t.addr.as_str()).await?;
    c.set_display_enabled(display);
    let info = ClientInfo {
        width: t.width,
        height: t.height,
        dpi: 96,
        image_mimetypes: vec!["image/png".into(), "image/jpeg".into(), "image/webp".into()],
        timezone: Some("UTC".into()),
        ..Default::default()
    };
    let port = server.1.to_string();
    let mut params: Vec<(&str, &str)> = vec![
        ("hostname", server.0.as_str()),
        ("port", port.as_str()),
        ("username", server.2.as_str()),
        ("password", server.3.as_str()),
        ("security", a.security.as_str()),
        ("ignore-cert", "true"),
    ];
    for (k, v) in &t.extra {
        params.retain(|(n, _)| n != k);
        params.push((k, v.as_str()));
    }
    c.handshake("rdp", &info, &params).await?;
    // The desktop is drawn: images and a frame boundary.
    c.wait_until(Duration::from_secs(60), |s| {
        s.count("img") > 0 && s.count("sync") > 0
    })
    .await?;
    Ok(c)
}

/// Keeps a session alive (syncs echoed by the client, a `nop` every 5 s) until `stop`.
async fn keep_alive(mut c: Client, mut stop: watch::Receiver<bool>, lost: Arc<AtomicUsize>) {
    let mut last_nop = Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            r = c.drain(Duration::from_millis(500)) => {
                if r.is_err() || c.state().closed {
                    if lost.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("rdp: a session closed: {}", c.state().summary());
                    }
                    return;
                }
            }
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

pub async fn rdp(t: &Target, a: &RdpArgs) -> anyhow::Result<(String, Json)> {
    let server = resolve(a)?;
    let n = a.sessions.max(1);
    let before = procmem::process(a.pid)?;
    eprintln!(
        "rdp: baseline RSS {} KiB, {} threads; {n} sessions to {}:{} as {}",
        before.rss_kib, before.threads, server.0, server.1, server.2
    );

    // Session 0 keeps its display model (the scroll is read on it); the others only count.
    let ramp_start = Instant::now();
    let mut active = open_rdp(t, a, &server, true).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let lost = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 1..n {
        let c = open_rdp(t, a, &server, false)
            .await
            .map_err(|e| anyhow::anyhow!("session {i} of {n}: {e:#}"))?;
        tasks.spawn(keep_alive(c, stop_rx.clone(), lost.clone()));
        // Session 0 keeps echoing syncs while the others connect.
        let _ = active.drain(Duration::from_millis(10)).await;
    }
    let ramp = ramp_start.elapsed();
    let settle_end = Instant::now() + Duration::from_secs(a.settle_secs);
    while Instant::now() < settle_end {
        let _ = active.drain(Duration::from_millis(200)).await;
    }
    let idle = procmem::process(a.pid)?;
    eprintln!(
        "rdp: {n} sessions up in {:.1} s; RSS {} KiB, {} threads",
        ramp.as_secs_f64(),
        idle.rss_kib,
        idle.threads
    );

    // Scroll: keyboard focus follows the pointer (no window manager), so point at the xterm.
    active.send_mouse(300, 200, 0).await?;
    let _ = active.drain(Duration::from_millis(200)).await;
    // Bounded by `timeout` as well as the Ctrl-C below, so a lost Ctrl-C never leaves the
    // desktop scrolling.
    let typed = format!(
        "timeout {} sh -c '{}'\n",
        a.scroll_secs + 5,
        a.scroll_command.replace('\'', r"'\''")
    );
    active.type_text(&typed).await?;
    // Let the scroll start before the window opens.
    let _ = active.drain(Duration::from_millis(1000)).await;
    let cpu0 = procmem::cpu_ticks(a.pid).unwrap_or(0);
    let (syncs0, bytes0, imgs0) = (
        active.state().count("sync"),
        active.state().bytes_received,
        active.state().count("img"),
    );
    let copies0 = active.state().count("copy");
    let window_start = Instant::now();
    let window = Duration::from_secs(a.scroll_secs.max(1));
    let mut peak = idle;
    while window_start.elapsed() < window {
        let _ = active.drain(Duration::from_millis(250)).await;
        if let Ok(m) = procmem::process(a.pid)
            && m.rss_kib > peak.rss_kib
        {
            peak = m;
        }
    }
    let secs = window_start.elapsed().as_secs_f64();
    let syncs = active.state().count("sync") - syncs0;
    let bytes = active.state().bytes_received - bytes0;
    let imgs = active.state().count("img") - imgs0;
    let copies = active.state().count("copy") - copies0;
    let cpu_secs = procmem::cpu_ticks(a.pid)
        .map(|c| c.saturating_sub(cpu0) as f64 / 100.0)
        .unwrap_or(0.0);
    let during = procmem::process(a.pid)?;
    // Stop the scroll and clean the terminal.
    for _ in 0..3 {
        active.send_key_combo(&[0xffe3, u32::from('c')]).await?;
        let _ = active.drain(Duration::from_millis(300)).await;
    }
    active.type_text("clear\n").await?;
    let _ = active.drain(Duration::from_millis(500)).await;
    let alive = n - lost.load(Ordering::Relaxed);

    let _ = stop_tx.send(true);
    close(active).await;
    while tasks.join_next().await.is_some() {}
    // After every session closed: does the daemon give the memory back (or keep it for
    // the next sessions)?
    tokio::time::sleep(Duration::from_secs(2)).await;
    let closed = procmem::process(a.pid)?;

    let per = |b: u64, x: u64| x.saturating_sub(b) as f64 / n as f64;
    let kib = |v: u64| format!("{:.1} MiB", v as f64 / 1024.0);
    let mut table = Table::new([
        "daemon",
        "measure",
        "before",
        "idle",
        "scrolling (peak)",
        "all closed",
        "per session",
    ]);
    table.row([
        t.label.clone(),
        "VmRSS".into(),
        kib(before.rss_kib),
        kib(idle.rss_kib),
        kib(peak.rss_kib),
        kib(closed.rss_kib),
        format!(
            "{:.0} KiB idle, {:.0} KiB scrolling",
            per(before.rss_kib, idle.rss_kib),
            per(before.rss_kib, peak.rss_kib)
        ),
    ]);
    table.row([
        t.label.clone(),
        "threads".into(),
        before.threads.to_string(),
        idle.threads.to_string(),
        during.threads.to_string(),
        closed.threads.to_string(),
        format!(
            "{:.2}",
            per(before.threads, idle.threads.max(during.threads))
        ),
    ]);
    let fps = syncs as f64 / secs;
    let bpf = if syncs > 0 {
        bytes as f64 / syncs as f64
    } else {
        0.0
    };
    let mut scroll = Table::new([
        "daemon",
        "frames/s",
        "bytes/frame",
        "KiB/s",
        "img",
        "copy",
        "daemon CPU",
    ]);
    scroll.row([
        t.label.clone(),
        format!("{fps:.1}"),
        format!("{bpf:.0}"),
        format!("{:.0}", bytes as f64 / 1024.0 / secs),
        imgs.to_string(),
        copies.to_string(),
        format!("{:.0} %", cpu_secs / secs * 100.0),
    ]);
    let json = Json::obj([
        ("daemon", Json::from(t.label.as_str())),
        ("sessions", Json::from(n as u64)),
        ("alive_at_end", (alive as u64).into()),
        ("ramp_s", ramp.as_secs_f64().into()),
        ("before", mem_json(&before)),
        ("idle", mem_json(&idle)),
        ("scroll_peak", mem_json(&peak)),
        ("all_closed", mem_json(&closed)),
        (
            "rss_per_session_idle_kib",
            per(before.rss_kib, idle.rss_kib).into(),
        ),
        (
            "rss_per_session_scrolling_kib",
            per(before.rss_kib, peak.rss_kib).into(),
        ),
        ("threads_before", before.threads.into()),
        ("threads_idle", idle.threads.into()),
        ("threads_scrolling", during.threads.into()),
        ("scroll_secs", secs.into()),
        ("frames", syncs.into()),
        ("frames_per_s", fps.into()),
        ("bytes", bytes.into()),
        ("bytes_per_frame", bpf.into()),
        ("img", imgs.into()),
        ("copy", copies.into()),
        ("daemon_cpu_s", cpu_secs.into()),
    ]);
    Ok((
        format!(
            "rdp ({n} sessions to {}:{} security={}, {}x{}, {alive} alive at the end)\n{}\n\
             scrolling `{}` for {secs:.1} s, measured on session 0 ({n} sessions receiving)\n{}",
            server.0,
            server.1,
            a.security,
            t.width,
            t.height,
            table.render(),
            a.scroll_command,
            scroll.render()
        ),
        json,
    ))
}
