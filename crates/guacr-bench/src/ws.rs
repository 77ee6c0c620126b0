//! The web gateway's WebSocket tunnel: keystroke echo compared with TCP 4822
//! on the same daemon, and many concurrent idle WebSocket sessions.
//!
//! Sessions are opened with signed connection tokens (`--token-secret`, the
//! gateway's `[web] token_secret` / `GUACR_TOKEN_SECRET`), so no user or
//! stored connection is needed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use guacr_testkit::{GuacClient, keysym};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::Target;
use crate::bench::{DRAWING, client_info};
use crate::procmem;
use crate::report::{Json, Summary, Table, ms};

/// Where the web gateway is.
#[derive(Debug, Args)]
pub struct WebArgs {
    /// The web listener, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:8080")]
    web: String,
    /// The gateway's token secret [default: env GUACR_TOKEN_SECRET].
    #[arg(long)]
    token_secret: Option<String>,
}

impl WebArgs {
    fn secret(&self) -> anyhow::Result<Vec<u8>> {
        self.token_secret
            .clone()
            .or_else(|| std::env::var("GUACR_TOKEN_SECRET").ok())
            .filter(|s| !s.is_empty())
            .map(String::into_bytes)
            .context("pass --token-secret (the gateway's [web] token_secret)")
    }

    /// The connect query for `protocol` with `params`, as a signed token.
    fn query(
        &self,
        t: &Target,
        protocol: &str,
        params: &[(&'static str, String)],
    ) -> anyhow::Result<String> {
        let claims = guacr_web::token::Claims {
            exp: guacr_web::token::now_secs() + 3600,
            sub: Some("guacr-bench".into()),
            protocol: Some(protocol.into()),
            params: Some(
                params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect(),
            ),
            ..Default::default()
        };
        let token = guacr_web::token::create(&self.secret()?, claims)?;
        Ok(format!(
            "token={token}&width={}&height={}&dpi=96&image=image/png&image=image/jpeg&timezone=UTC",
            t.width, t.height
        ))
    }
}

type WsClient = GuacClient<DuplexStream>;

/// Opens a WebSocket tunnel (subprotocol `guacamole`) and returns a testkit
/// client over it; the server did the Guacamole handshake.
async fn open_ws(web: &str, query: &str) -> anyhow::Result<WsClient> {
    let mut req = format!("ws://{web}/tunnel/websocket?{query}").into_client_request()?;
    req.headers_mut()
        .insert("sec-websocket-protocol", "guacamole".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .with_context(|| format!("WebSocket to {web}"))?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.starts_with("0.,36.") => {}
        other => anyhow::bail!("expected the tunnel uuid first, got {other:?}"),
    }
    let (mut sink, mut source) = ws.split();
    let (client_end, pump_end) = tokio::io::duplex(256 * 1024);
    let (mut pr, mut pw) = tokio::io::split(pump_end);
    tokio::spawn(async move {
        while let Some(Ok(m)) = source.next().await {
            match m {
                Message::Text(t) if pw.write_all(t.as_bytes()).await.is_err() => break,
                Message::Text(_) => {}
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = pw.shutdown().await;
    });
    tokio::spawn(async move {
        // Whole instructions per message, as Guacamole.WebSocketTunnel sends.
        let mut buf = Vec::new();
        let mut tmp = vec![0u8; 64 * 1024];
        loop {
            let n = match pr.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.extend_from_slice(&tmp[..n]);
            let Ok((_, used)) = guacr_protocol::parse_all(&buf) else {
                break;
            };
            if used > 0 {
                let text = String::from_utf8_lossy(&buf[..used]).into_owned();
                buf.drain(..used);
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        }
        let _ = sink.close().await;
    });
    let mut c = GuacClient::new(client_end);
    c.set_echo_sync(true);
    c.set_display_enabled(false);
    Ok(c)
}

async fn settle<S>(c: &mut GuacClient<S>, quiet: Duration, max: Duration) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let start = Instant::now();
    while c.next_instruction(quiet).await?.is_some() {
        if start.elapsed() > max {
            anyhow::bail!("output did not pause within {max:?}");
        }
    }
    if c.state().closed {
        anyhow::bail!("connection closed; {}", c.state().summary());
    }
    Ok(())
}

/// One keystroke: press → first drawing instruction.
async fn key_echo<S>(c: &mut GuacClient<S>, ch: char, quiet: Duration) -> anyhow::Result<Duration>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let t0 = Instant::now();
    c.press_key(u32::from(ch)).await?;
    let draw = loop {
        let Some(ins) = c.next_instruction(Duration::from_secs(5)).await? else {
            anyhow::bail!(
                "no drawing within 5 s of key {ch:?}; {}",
                c.state().summary()
            );
        };
        if DRAWING.contains(&ins.opcode.as_str()) {
            break t0.elapsed();
        }
    };
    settle(c, quiet, Duration::from_secs(10)).await?;
    Ok(draw)
}

#[derive(Debug, Args)]
pub struct WsKeystrokeArgs {
    #[command(flatten)]
    web: WebArgs,
    /// Keystrokes per transport.
    #[arg(long, default_value_t = 300)]
    n: usize,
    /// Unmeasured keystrokes first.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Silence after each echo before the next key, ms.
    #[arg(long, default_value_t = 60)]
    quiet_ms: u64,
}

/// Keystroke echo over the WebSocket tunnel and over TCP 4822, alternating
/// key by key on two SSH sessions of the same daemon.
pub async fn ws_keystroke(t: &Target, a: &WsKeystrokeArgs) -> anyhow::Result<(String, Json)> {
    let params = t.params();
    let mut ws = open_ws(&a.web.web, &a.web.query(t, "ssh", &params)?).await?;
    let mut tcp = GuacClient::connect_tcp(t.addr.as_str())
        .await
        .with_context(|| format!("connecting to {}", t.addr))?;
    tcp.set_display_enabled(false);
    tcp.set_echo_sync(true);
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    tcp.handshake("ssh", &client_info(t), &pairs).await?;
    for c in [&mut ws as &mut dyn Prompt, &mut tcp] {
        c.prompt().await?;
    }
    let quiet = Duration::from_millis(a.quiet_ms);
    let (mut ws_s, mut tcp_s) = (Vec::new(), Vec::new());
    for i in 0..a.warmup + a.n {
        if i % 40 == 39 {
            for c in [&mut ws as &mut dyn Prompt, &mut tcp] {
                c.clear_line().await?;
            }
        }
        let ch = char::from(b'a' + (i % 26) as u8);
        let w = key_echo(&mut ws, ch, quiet).await?;
        let p = key_echo(&mut tcp, ch, quiet).await?;
        if i >= a.warmup {
            ws_s.push(w);
            tcp_s.push(p);
        }
    }
    let _ = ws.disconnect().await;
    let _ = tcp.disconnect().await;
    let mut table = Table::new(
        ["daemon", "transport"]
            .into_iter()
            .chain(Summary::HEADER)
            .collect::<Vec<_>>(),
    );
    let mut json = vec![("daemon", Json::from(t.label.as_str()))];
    let mut medians = Vec::new();
    for (name, key, samples) in [
        ("WebSocket tunnel", "websocket", &ws_s),
        ("TCP 4822", "tcp", &tcp_s),
    ] {
        if let Some(s) = Summary::of(samples) {
            let mut row = vec![t.label.clone(), name.to_owned()];
            row.extend(s.cells());
            table.row(row);
            json.push((key, s.json()));
            let mut v = samples.clone();
            v.sort();
            medians.push(v[v.len() / 2]);
        }
    }
    let delta = match medians.as_slice() {
        [w, p] => ms(*w) - ms(*p),
        _ => f64::NAN,
    };
    json.push(("median_delta_ms", delta.into()));
    Ok((
        format!(
            "ws-keystroke ({} keys per transport, key → first drawing instruction; \
             WebSocket median − TCP median = {delta:.3} ms)\n{}",
            a.n,
            table.render()
        ),
        Json::obj(json),
    ))
}

/// What the keystroke loop needs of either client.
trait Prompt {
    fn prompt(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + '_>>;
    fn clear_line(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + '_>>;
}

impl<S> Prompt for GuacClient<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    fn prompt(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + '_>> {
        Box::pin(async move {
            self.wait_until(Duration::from_secs(30), |s| s.count("sync") >= 2)
                .await
                .context("waiting for the first frames")?;
            settle(self, Duration::from_millis(300), Duration::from_secs(30)).await
        })
    }

    fn clear_line(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + '_>> {
        Box::pin(async move {
            self.send_key_combo(&[keysym::CONTROL_L, u32::from('u')])
                .await?;
            settle(self, Duration::from_millis(150), Duration::from_secs(10)).await
        })
    }
}

#[derive(Debug, Args)]
pub struct WsIdleArgs {
    #[command(flatten)]
    web: WebArgs,
    #[command(flatten)]
    upstream: crate::soak::UpstreamTarget,
    /// Concurrent WebSocket sessions.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Sessions being opened at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// PID of the daemon (memory and CPU are read from /proc).
    #[arg(long)]
    pid: u32,
    /// Idle time over which the daemon's CPU use is measured, seconds.
    #[arg(long, default_value_t = 20)]
    idle_secs: u64,
}

/// Many idle WebSocket sessions (telnet to the in-process echo upstream):
/// daemon memory per session and CPU while idle.
pub async fn ws_idle(t: &Target, a: &WsIdleArgs) -> anyhow::Result<(String, Json)> {
    a.upstream.start().await?;
    let query = Arc::new(a.web.query(t, "telnet", &a.upstream.params(t)?)?);
    let web = Arc::new(a.web.web.clone());
    let before = procmem::process(a.pid)?;
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<anyhow::Result<()>>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let lost = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let start = Instant::now();
    for _ in 0..a.sessions {
        let (sem, done, mut stop, lost) =
            (sem.clone(), done_tx.clone(), stop_rx.clone(), lost.clone());
        let (web, query) = (web.clone(), query.clone());
        tasks.spawn(async move {
            let permit = sem.acquire_owned().await;
            let opened = async {
                let mut c = open_ws(&web, &query).await?;
                c.wait_until(Duration::from_secs(60), |s| s.count("sync") >= 1)
                    .await?;
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
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    r = c.drain(Duration::from_secs(3)) => {
                        if r.is_err() || c.state().closed {
                            lost.fetch_add(1, Ordering::Relaxed);
                            let _ = stop.changed().await;
                            return;
                        }
                    }
                }
            }
            let _ = c.disconnect().await;
        });
    }
    drop(done_tx);
    let (mut ok, mut failed, mut first_error) = (0usize, 0usize, None);
    while ok + failed < a.sessions {
        match done_rx.recv().await {
            Some(Ok(())) => ok += 1,
            Some(Err(e)) => {
                failed += 1;
                if first_error.is_none() {
                    eprintln!("ws-idle: a session failed: {e:#}");
                    first_error = Some(format!("{e:#}"));
                }
            }
            None => break,
        }
        if (ok + failed).is_multiple_of(100) {
            eprintln!(
                "ws-idle: {ok} open, {failed} failed, {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    let ramp = start.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu0 = procmem::tree_cpu_secs(a.pid)?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.idle_secs)).await;
    let cpu = (procmem::tree_cpu_secs(a.pid)? - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let after = procmem::process(a.pid)?;
    let alive = ok.saturating_sub(lost.load(Ordering::Relaxed));
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let per = after.rss_kib.saturating_sub(before.rss_kib) as f64 / ok.max(1) as f64;
    let mut table = Table::new([
        "daemon",
        "sessions",
        "alive after idle",
        "RSS before",
        "RSS after",
        "per session",
        "CPU idle",
        "ramp",
    ]);
    table.row([
        t.label.clone(),
        format!("{ok} ({failed} failed)"),
        alive.to_string(),
        format!("{:.1} MiB", before.rss_kib as f64 / 1024.0),
        format!("{:.1} MiB", after.rss_kib as f64 / 1024.0),
        format!("{per:.0} KiB"),
        format!("{cpu:.1} %"),
        format!("{:.1} s", ramp.as_secs_f64()),
    ]);
    Ok((
        format!(
            "ws-idle ({} WebSocket sessions, telnet to the echo upstream, {} s idle)\n{}",
            a.sessions,
            a.idle_secs,
            table.render()
        ),
        Json::obj([
            ("daemon", Json::from(t.label.as_str())),
            ("sessions", (ok as u64).into()),
            ("failed", (failed as u64).into()),
            ("alive", (alive as u64).into()),
            ("rss_before_kib", before.rss_kib.into()),
            ("rss_after_kib", after.rss_kib.into()),
            ("per_session_kib", per.into()),
            ("cpu_idle_percent", cpu.into()),
            ("ramp_ms", ms(ramp).into()),
        ]),
    ))
}
