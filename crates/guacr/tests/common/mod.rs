//! Shared harness for the daemon's integration tests: the real peers started by
//! `scripts/test-peers.sh`, an in-process daemon on an ephemeral port, and
//! reading the terminal text back from the rebuilt display.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use guacr::{Config, Server, ServerState};
use guacr_protocol::Status;
use guacr_session::{Protocol, ProtocolFuture, SessionContext, SessionError};
use guacr_testkit::{ClientInfo, GuacClient, GuacError};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// X clients, screen comparison and scratch files for the graphical tests (vnc, rdp).
pub mod x11;

/// The loopback peers (see scripts/test-peers.sh).
#[derive(Debug, Clone)]
pub struct Peers {
    pub host: String,
    pub ssh_port: u16,
    pub telnet_port: u16,
    pub pw_user: String,
    pub pw_password: String,
    pub key_user: String,
    pub key_passphrase: String,
    pub key_ed25519: String,
    pub key_ed25519_enc: String,
    pub key_rsa_pem_enc: String,
    pub known_hosts_line: String,
    pub hostkey_pub: String,
}

impl Peers {
    pub fn get() -> &'static Peers {
        static P: OnceLock<Peers> = OnceLock::new();
        P.get_or_init(|| {
            let file = guacr_testkit::peers::env_file();
            let var = |k: &str| -> String {
                std::env::var(k).ok().or_else(|| file.get(k).cloned()).unwrap_or_else(|| {
                    panic!("{k} is not set: start the test peers with `scripts/test-peers.sh install && scripts/test-peers.sh start`")
                })
            };
            Peers {
                host: var("GUACR_TEST_HOST"),
                ssh_port: var("GUACR_TEST_SSH_PORT").parse().expect("port"),
                telnet_port: var("GUACR_TEST_TELNET_PORT").parse().expect("port"),
                pw_user: var("GUACR_TEST_PW_USER"),
                pw_password: var("GUACR_TEST_PW_PASSWORD"),
                key_user: var("GUACR_TEST_KEY_USER"),
                key_passphrase: var("GUACR_TEST_KEY_PASSPHRASE"),
                key_ed25519: var("GUACR_TEST_KEY_ED25519"),
                key_ed25519_enc: var("GUACR_TEST_KEY_ED25519_ENC"),
                key_rsa_pem_enc: var("GUACR_TEST_KEY_RSA_PEM_ENC"),
                known_hosts_line: var("GUACR_TEST_SSH_KNOWN_HOSTS_LINE"),
                hostkey_pub: var("GUACR_TEST_SSH_HOSTKEY_PUB"),
            }
        })
    }

    pub fn ssh_port_str(&self) -> String {
        self.ssh_port.to_string()
    }
}

/// A peer variable written by the plug-in `scripts/peers.d/{plugin}.sh`; panics saying how
/// to start the peers when it is not set.
pub fn peer_var(name: &str, plugin: &str) -> String {
    guacr_testkit::peers::var(name).unwrap_or_else(|| {
        panic!(
            "{name} is not set: start the test peers with `scripts/test-peers.sh install && \
             scripts/test-peers.sh start` (plug-in scripts/peers.d/{plugin}.sh)"
        )
    })
}

/// A daemon serving on an ephemeral loopback port, inside the test process.
pub struct TestDaemon {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub state: Arc<ServerState>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TestDaemon {
    pub async fn start() -> TestDaemon {
        Self::start_with(|_| {}, None).await
    }

    pub async fn start_with(
        configure: impl FnOnce(&mut Config),
        protocols: Option<Vec<Arc<dyn Protocol>>>,
    ) -> TestDaemon {
        let mut cfg = Config::default();
        cfg.server.bind_port = 0;
        configure(&mut cfg);
        let state = match protocols {
            Some(p) => ServerState::new(cfg, p),
            None => ServerState::with_factory(cfg, guacr::builtin_protocols),
        };
        let server = Server::bind(state).await.expect("bind");
        let addr = server.local_addrs()[0];
        let admin = server.admin_addr();
        let state = server.state();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(server.run(rx));
        TestDaemon {
            addr,
            admin,
            state,
            shutdown: tx,
            task,
        }
    }

    pub async fn client(&self) -> GuacClient<TcpStream> {
        GuacClient::connect_tcp(self.addr).await.expect("connect")
    }

    /// Signals shutdown and waits for the drain to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(60), self.task).await;
    }
}

pub fn client_info(width: u32, height: u32) -> ClientInfo {
    ClientInfo {
        width,
        height,
        dpi: 96,
        image_mimetypes: vec!["image/png".into(), "image/jpeg".into()],
        timezone: Some("UTC".into()),
        name: Some("tester".into()),
        ..Default::default()
    }
}

/// Connects to SSH with the password user plus `extra` parameters.
pub async fn ssh_session(
    d: &TestDaemon,
    extra: &[(&str, &str)],
) -> anyhow::Result<(GuacClient<TcpStream>, String)> {
    let p = Peers::get();
    let port = p.ssh_port_str();
    connect(d, "ssh", &port, extra).await
}

/// Connects to `protocol` on the loopback peer at `port` as the password
/// user, with `extra` parameters overriding the defaults.
pub async fn connect(
    d: &TestDaemon,
    protocol: &str,
    port: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<(GuacClient<TcpStream>, String)> {
    let p = Peers::get();
    let mut params: Vec<(&str, &str)> = vec![
        ("hostname", p.host.as_str()),
        ("port", port),
        ("username", p.pw_user.as_str()),
        ("password", p.pw_password.as_str()),
    ];
    for (k, v) in extra {
        params.retain(|(n, _)| n != k);
        params.push((k, v));
    }
    let mut c = d.client().await;
    let id = c
        .handshake(protocol, &client_info(800, 600), &params)
        .await?;
    Ok((c, id))
}

/// A loopback port where connections are refused. Port 1 (tcpmux) is never
/// served here; an ephemeral port picked by bind-and-drop could be taken by
/// another test's daemon in the meantime.
pub fn refused_port() -> String {
    "1".to_owned()
}

/// A currently free loopback port, for a daemon to bind (racy by nature:
/// use it right away).
pub fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port.to_string()
}

/// The status of a server `error`, from a testkit error.
pub fn status_of(e: &anyhow::Error) -> Option<u32> {
    GuacError::from_anyhow(e).and_then(|g| g.status())
}

/// Glyph masks of the default terminal font, for reading text back.
pub struct Glyphs {
    pub cell: (u32, u32),
    masks: HashMap<char, Vec<bool>>,
}

impl Glyphs {
    pub fn get() -> &'static Glyphs {
        static G: OnceLock<Glyphs> = OnceLock::new();
        G.get_or_init(|| {
            let term = guacr_terminal::Terminal::new(guacr_terminal::TerminalConfig::default())
                .expect("terminal");
            let cell = term.cell_size();
            let masks = guacr_testkit::DEFAULT_CHARSET
                .chars()
                .map(|c| (c, term.glyph_mask(c).2))
                .collect();
            Glyphs { cell, masks }
        })
    }

    /// The foreground mask of `ch` (blank for unknown characters).
    pub fn mask(&self, ch: char) -> Vec<bool> {
        self.masks
            .get(&ch)
            .cloned()
            .unwrap_or_else(|| vec![false; (self.cell.0 * self.cell.1) as usize])
    }

    pub fn read<S>(&self, c: &GuacClient<S>) -> Vec<String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        let blank = vec![false; (self.cell.0 * self.cell.1) as usize];
        c.display().read_text(
            self.cell.0,
            self.cell.1,
            &|ch| {
                self.masks
                    .get(&ch)
                    .cloned()
                    .unwrap_or_else(|| blank.clone())
            },
            guacr_testkit::DEFAULT_CHARSET,
        )
    }
}

/// Waits until some screen line contains `needle`; returns the screen.
pub async fn wait_text<S>(
    c: &mut GuacClient<S>,
    needle: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<String>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let deadline = Instant::now() + timeout;
    loop {
        let _ = c.drain(Duration::from_millis(150)).await?;
        let screen = Glyphs::get().read(c);
        if screen.iter().any(|l| l.contains(needle)) {
            return Ok(screen);
        }
        if Instant::now() >= deadline || c.state().closed {
            anyhow::bail!(
                "{needle:?} not on screen after {timeout:?}; screen:\n{}\n{}",
                screen.join("\n"),
                c.state().summary()
            );
        }
    }
}

/// Counts lines containing `needle`.
pub fn count_lines(screen: &[String], needle: &str) -> usize {
    screen.iter().filter(|l| l.contains(needle)).count()
}

/// A protocol that sends nothing: only keep-alives reach the client.
pub struct Silent;
impl Protocol for Silent {
    fn name(&self) -> &'static str {
        "silent"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        &["mode"]
    }
    fn run(&self, mut ctx: SessionContext) -> ProtocolFuture {
        Box::pin(async move {
            match ctx.params.get("mode") {
                Some("panic") => panic!("handler bug"),
                Some("fail") => Err(SessionError::new(
                    Status::UpstreamUnavailable,
                    "upstream is down",
                )),
                _ => loop {
                    if let guacr_session::HandlerEvent::Shutdown = ctx.events.recv().await
                        && (ctx.session.user_count() == 0 || ctx.session.is_shutting_down())
                    {
                        return Ok(());
                    }
                },
            }
        })
    }
}

pub async fn silent_daemon(configure: impl FnOnce(&mut guacr::Config)) -> TestDaemon {
    let protocols: Vec<Arc<dyn Protocol>> = vec![Arc::new(Silent)];
    TestDaemon::start_with(configure, Some(protocols)).await
}

/// `GET path` on the admin listener: (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// The value of a Prometheus sample (`name{labels}`), 0 if absent.
pub fn metric(body: &str, sample: &str) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == sample).then(|| v.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// A self-signed EC certificate for 127.0.0.1 (end entity): (cert.pem, key.pem) in `dir`.
pub fn make_cert(dir: &std::path::Path, tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{tag}.pem")),
        dir.join(format!("{tag}.key")),
    );
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (cert, key)
}

/// A TLS connection to `addr` trusting only `trusted` (a PEM certificate).
pub async fn tls_connect(
    addr: SocketAddr,
    trusted: &std::path::Path,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(trusted)?;
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c?).map_err(std::io::Error::other)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(addr).await?;
    let name =
        rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(std::io::Error::other)?;
    connector.connect(name, tcp).await
}

/// Waits until a guacr binary listens on `port` and returns a client connected to it.
pub async fn connect_when_listening(port: &str) -> GuacClient<TcpStream> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if let Ok(c) = GuacClient::connect_tcp(addr).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listening on {addr}");
}

/// The X server's own picture of the whole screen (`xwd -root`), as RGBA.
pub fn x_screenshot(display: &str) -> (u32, u32, Vec<u8>) {
    let out = std::process::Command::new("xwd")
        .args(["-root", "-silent", "-display", display])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running xwd (x11-apps)");
    assert!(out.status.success(), "xwd failed on {display}");
    parse_xwd(&out.stdout).unwrap_or_else(|e| panic!("parsing xwd output: {e}"))
}

/// Parses an XWD (X Window Dump, version 7) image of a TrueColor visual
/// with 24 or 32 bits per pixel.
pub fn parse_xwd(data: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    let field = |i: usize| -> Result<u32, String> {
        data.get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "truncated header".to_owned())
    };
    let header_size = field(0)? as usize;
    if field(1)? != 7 {
        return Err(format!("XWD version {} (want 7)", field(1)?));
    }
    if field(2)? != 2 {
        return Err("not a ZPixmap".into());
    }
    let (width, height) = (field(4)?, field(5)?);
    let byte_order = field(7)?; // 0 = LSBFirst
    let bpp = field(11)?;
    let bytes_per_line = field(12)? as usize;
    let (rmask, gmask, bmask) = (field(14)?, field(15)?, field(16)?);
    let ncolors = field(19)? as usize;
    if bpp != 32 && bpp != 24 {
        return Err(format!("{bpp} bits per pixel"));
    }
    let start = header_size + ncolors * 12;
    let bytes_pp = (bpp / 8) as usize;
    let pixels = data
        .get(start..start + bytes_per_line * height as usize)
        .ok_or("truncated pixel data")?;
    let channel = |v: u32, mask: u32| -> u8 {
        if mask == 0 {
            return 0;
        }
        let shift = mask.trailing_zeros();
        let bits = (mask >> shift).count_ones();
        let raw = (v & mask) >> shift;
        ((raw * 255) / ((1u32 << bits) - 1)) as u8
    };
    let mut rgba = Vec::with_capacity(width as usize * height as usize * 4);
    for row in pixels.chunks_exact(bytes_per_line) {
        for px in row[..width as usize * bytes_pp].chunks_exact(bytes_pp) {
            let mut v = 0u32;
            if byte_order == 0 {
                for (i, b) in px.iter().enumerate() {
                    v |= u32::from(*b) << (8 * i);
                }
            } else {
                for b in px {
                    v = (v << 8) | u32::from(*b);
                }
            }
            rgba.extend_from_slice(&[channel(v, rmask), channel(v, gmask), channel(v, bmask), 255]);
        }
    }
    Ok((width, height, rgba))
}
