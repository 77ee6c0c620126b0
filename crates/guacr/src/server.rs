//! The TCP listener (guacd's port 4822), optional TLS, limits, the admin
//! listener, configuration reload and graceful shutdown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use guacr_protocol::Status;
use guacr_session::{Protocol, Registry, SessionError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// Builds the protocol handlers from a configuration.
pub type ProtocolFactory = fn(&Config) -> Vec<Arc<dyn Protocol>>;

/// Applies a new log level (installed by the binary's logging setup).
pub type LogReloader = Box<dyn Fn(&str) -> anyhow::Result<()> + Send + Sync>;

/// Why a connection was refused by a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub limit: &'static str,
    pub status: Status,
    pub message: String,
}

#[derive(Debug)]
struct IpEntry {
    connections: usize,
    tokens: f64,
    refilled: Instant,
}

/// State shared by every connection.
pub struct ServerState {
    config: RwLock<Arc<Config>>,
    pub registry: Arc<Registry>,
    protocols: RwLock<Arc<HashMap<String, Arc<dyn Protocol>>>>,
    /// Rebuilds the handlers from a new configuration on reload (their
    /// defaults, e.g. the terminal frame interval); `None` keeps them.
    protocol_factory: Option<ProtocolFactory>,
    /// Parameters users may change at runtime with `argv`.
    pub mutable_params: &'static [&'static str],
    shutting_down: AtomicBool,
    listening: AtomicBool,
    tls: RwLock<Option<TlsAcceptor>>,
    per_ip: Mutex<HashMap<IpAddr, IpEntry>>,
    log_reloader: Mutex<Option<LogReloader>>,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The recording uploader for the current `[recording.upload]` (started on first use).
    uploader: Mutex<Option<(crate::config::UploadSection, guacr_record::upload::Uploader)>>,
}

/// Held while a client connection is open; releases its per-IP slot on drop.
pub struct IpGuard {
    state: Arc<ServerState>,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut map = self.state.ips();
        if let Some(e) = map.get_mut(&self.ip) {
            e.connections = e.connections.saturating_sub(1);
            if e.connections == 0
                && e.tokens >= f64::from(self.state.config().limits.connection_burst_per_ip)
            {
                map.remove(&self.ip);
            }
        }
        metrics::gauge!("guacr_users_active").decrement(1.0);
    }
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read().unwrap_or_else(|e| e.into_inner()).clone()
}

fn write<T>(lock: &RwLock<T>, value: T) {
    *lock.write().unwrap_or_else(|e| e.into_inner()) = value;
}

impl ServerState {
    pub fn new(config: Config, protocols: Vec<Arc<dyn Protocol>>) -> Arc<Self> {
        let metrics = crate::metrics::install();
        for p in &protocols {
            // Present from the first scrape, not only after the first session.
            metrics::gauge!("guacr_sessions_active", "protocol" => p.name()).increment(0.0);
            metrics::counter!("guacr_sessions_total", "protocol" => p.name()).increment(0);
        }
        Arc::new(ServerState {
            config: RwLock::new(Arc::new(config)),
            registry: Registry::new(),
            protocols: RwLock::new(Arc::new(by_name(protocols))),
            protocol_factory: None,
            // Terminal settings, and credentials a handler asked for with `required`
            // (handlers ignore credentials they did not ask for).
            mutable_params: &[
                "color-scheme",
                "font-name",
                "font-size",
                "username",
                "password",
            ],
            shutting_down: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            tls: RwLock::new(None),
            per_ip: Mutex::new(HashMap::new()),
            log_reloader: Mutex::new(None),
            metrics,
            uploader: Mutex::new(None),
        })
    }

    /// A state whose handlers are built from the configuration by `factory`,
    /// and rebuilt by it on every reload (new sessions get the new defaults;
    /// live sessions keep theirs).
    pub fn with_factory(
        config: Config,
        factory: fn(&Config) -> Vec<Arc<dyn Protocol>>,
    ) -> Arc<Self> {
        let protocols = factory(&config);
        let mut state = Self::new(config, protocols);
        if let Some(s) = Arc::get_mut(&mut state) {
            s.protocol_factory = Some(factory);
        }
        state
    }

    /// The uploader of finished recordings, when `[recording.upload]` is set; started
    /// (and restarted after a reload changed the section) on the current runtime.
    pub fn uploader(&self) -> Option<guacr_record::upload::Uploader> {
        let cfg = self.config();
        let section = cfg.recording.upload.as_ref()?;
        let mut slot = self.uploader.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, u)) = slot.as_ref()
            && s == section
        {
            return Some(u.clone());
        }
        let started = section
            .uploader_config()
            .and_then(|c| guacr_record::upload::Uploader::start(c, None).map_err(Into::into));
        match started {
            Ok(u) => {
                *slot = Some((section.clone(), u.clone()));
                Some(u)
            }
            Err(e) => {
                tracing::error!("recording upload unavailable: {e}");
                None
            }
        }
    }

    /// The handler for `name`, as currently configured.
    pub fn protocol(&self, name: &str) -> Option<Arc<dyn Protocol>> {
        read(&self.protocols).get(name).cloned()
    }

    /// Every handler, as currently configured, by name.
    pub fn protocols(&self) -> Vec<Arc<dyn Protocol>> {
        let map = read(&self.protocols);
        let mut v: Vec<Arc<dyn Protocol>> = map.values().cloned().collect();
        v.sort_by_key(|p| p.name());
        v
    }

    /// The configuration in force (it may be replaced by a reload at any time).
    pub fn config(&self) -> Arc<Config> {
        read(&self.config)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    pub fn set_log_reloader(&self, f: LogReloader) {
        *self.log_reloader.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    fn ips(&self) -> MutexGuard<'_, HashMap<IpAddr, IpEntry>> {
        self.per_ip.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn tls(&self) -> Option<TlsAcceptor> {
        read(&self.tls)
    }

    /// Admits a new client connection from `ip` (per-IP count and rate).
    pub fn admit_connection(self: &Arc<Self>, ip: IpAddr) -> Result<IpGuard, Rejection> {
        let limits = self.config().limits.clone();
        let mut map = self.ips();
        let burst = f64::from(limits.connection_burst_per_ip.max(1));
        let e = map.entry(ip).or_insert(IpEntry {
            connections: 0,
            tokens: burst,
            refilled: Instant::now(),
        });
        if limits.connection_rate_per_ip > 0.0 {
            let now = Instant::now();
            let refill =
                now.duration_since(e.refilled).as_secs_f64() * limits.connection_rate_per_ip;
            e.tokens = (e.tokens + refill).min(burst);
            e.refilled = now;
            if e.tokens < 1.0 {
                return Err(reject(
                    "connection_rate_per_ip",
                    Status::ClientTooMany,
                    "Too many new connections from your address; try again shortly.",
                ));
            }
            e.tokens -= 1.0;
        }
        if limits.max_connections_per_ip > 0 && e.connections >= limits.max_connections_per_ip {
            return Err(reject(
                "max_connections_per_ip",
                Status::ClientTooMany,
                "Too many connections from your address.",
            ));
        }
        e.connections += 1;
        drop(map);
        metrics::gauge!("guacr_users_active").increment(1.0);
        Ok(IpGuard {
            state: self.clone(),
            ip,
        })
    }

    /// Admits a new session of `protocol` (total and per-protocol limits).
    pub fn admit_session(&self, protocol: &str) -> Result<(), Rejection> {
        let cfg = self.config();
        let limits = &cfg.limits;
        if limits.max_sessions > 0 && self.registry.len() >= limits.max_sessions {
            return Err(reject(
                "max_sessions",
                Status::ServerBusy,
                "The server has reached its maximum number of connections.",
            ));
        }
        if let Some(&max) = limits.max_sessions_per_protocol.get(protocol)
            && max > 0
            && self.registry.count_protocol(protocol) >= max
        {
            return Err(reject(
                "max_sessions_per_protocol",
                Status::ServerBusy,
                &format!("The server has reached its maximum number of {protocol} connections."),
            ));
        }
        Ok(())
    }

    /// Whether the daemon can serve: listeners up, not draining, every handler healthy.
    pub fn ready(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !self.listening.load(Ordering::Relaxed) {
            problems.push("listener: not bound".to_owned());
        }
        if self.is_shutting_down() {
            problems.push("shutting down".to_owned());
        }
        let protocols = read(&self.protocols);
        let mut names: Vec<&String> = protocols.keys().collect();
        names.sort();
        for name in names {
            if let Some(p) = protocols.get(name)
                && let Err(e) = p.health()
            {
                problems.push(format!("{name}: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    pub fn render_metrics(&self) -> String {
        match &self.metrics {
            Some(h) => {
                h.run_upkeep();
                h.render()
            }
            None => String::new(),
        }
    }

    /// Applies a new configuration to the running daemon: log level, limits,
    /// TLS certificate, session settings and handler defaults for new
    /// connections. Listener addresses need a restart. A configuration that
    /// fails validation (or whose TLS files do not load) is refused as a whole
    /// and the old one stays.
    pub fn reload(&self, new: Config) -> anyhow::Result<()> {
        let result = self.try_reload(new);
        let outcome = if result.is_ok() { "ok" } else { "refused" };
        metrics::counter!("guacr_config_reloads_total", "result" => outcome).increment(1);
        result
    }

    fn try_reload(&self, new: Config) -> anyhow::Result<()> {
        new.validate()?;
        let old = self.config();
        let tls = match (&new.ssl.server_certificate, &new.ssl.server_key) {
            (Some(c), Some(k)) => Some(crate::tls::acceptor(c, k)?),
            _ => None,
        };
        if old.ssl.server_certificate.is_some() != tls.is_some() {
            anyhow::bail!("turning TLS on or off needs a restart");
        }
        if let Some(f) = self
            .log_reloader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            f(&new.daemon.log_level)?;
        }
        if old.server != new.server {
            tracing::warn!("listener address changes take effect after a restart");
        }
        if old.admin != new.admin {
            tracing::warn!("admin listener changes take effect after a restart");
        }
        if tls.is_some() {
            write(&self.tls, tls);
        }
        if let Some(factory) = self.protocol_factory {
            write(&self.protocols, Arc::new(by_name(factory(&new))));
        }
        write(&self.config, Arc::new(new));
        tracing::info!("configuration reloaded");
        Ok(())
    }
}

fn by_name(protocols: Vec<Arc<dyn Protocol>>) -> HashMap<String, Arc<dyn Protocol>> {
    protocols
        .into_iter()
        .map(|p| (p.name().to_owned(), p))
        .collect()
}

fn reject(limit: &'static str, status: Status, message: &str) -> Rejection {
    metrics::counter!("guacr_limit_rejections_total", "limit" => limit).increment(1);
    Rejection {
        limit,
        status,
        message: message.to_owned(),
    }
}

/// Frame pacing of the graphical handlers, from `[session]`.
#[cfg(any(feature = "vnc", feature = "rdp"))]
fn graphical_tuning(config: &Config) -> guacr_display::GraphicalTuning {
    guacr_display::GraphicalTuning {
        frame_interval: Some(Duration::from_millis(
            config.session.frame_interval_ms.max(1),
        )),
        ..Default::default()
    }
}

/// The protocols compiled into this binary.
pub fn builtin_protocols(config: &Config) -> Vec<Arc<dyn Protocol>> {
    let mut v: Vec<Arc<dyn Protocol>> = Vec::new();
    let _ = config;
    #[cfg(feature = "ssh")]
    v.push(Arc::new(guacr_ssh::Ssh {
        console: console_options(config),
        connect_timeout: None,
    }));
    #[cfg(feature = "telnet")]
    v.push(Arc::new(guacr_telnet::handler::Telnet {
        console: console_options(config),
        connect_timeout: None,
    }));
    #[cfg(feature = "vnc")]
    v.push(Arc::new(guacr_vnc::Vnc {
        tuning: graphical_tuning(config),
    }));
    #[cfg(feature = "rdp")]
    v.push(Arc::new(guacr_rdp::Rdp {
        tuning: graphical_tuning(config),
    }));
    #[cfg(feature = "db")]
    for kind in [
        guacr_db::Kind::Postgres,
        guacr_db::Kind::MySql,
        guacr_db::Kind::SqlServer,
    ] {
        v.push(Arc::new(guacr_db::Database::new(
            kind,
            console_options(config),
        )));
    }
    v
}

#[cfg(any(feature = "ssh", feature = "telnet", feature = "db"))]
fn console_options(config: &Config) -> guacr_console::ConsoleOptions {
    guacr_console::ConsoleOptions {
        frame_interval: Duration::from_millis(config.session.frame_interval_ms.max(1)),
        ..Default::default()
    }
}

/// A bound listener, ready to serve.
pub struct Server {
    listeners: Vec<TcpListener>,
    admin: Option<TcpListener>,
    state: Arc<ServerState>,
}

impl Server {
    pub async fn bind(state: Arc<ServerState>) -> anyhow::Result<Server> {
        let cfg = state.config();
        let mut listeners = Vec::new();
        let mut last_err = None;
        for addr in cfg.bind_addrs()? {
            match TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!("listening on {addr}");
                    listeners.push(l);
                    // guacd binds the first address that works.
                    break;
                }
                Err(e) => last_err = Some(anyhow::anyhow!("cannot bind {addr}: {e}")),
            }
        }
        if listeners.is_empty() {
            return Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no address to bind")));
        }
        if let (Some(cert), Some(key)) = (&cfg.ssl.server_certificate, &cfg.ssl.server_key) {
            write(&state.tls, Some(crate::tls::acceptor(cert, key)?));
            tracing::info!("TLS enabled");
        }
        let admin = match &cfg.admin.bind {
            Some(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot bind admin listener {addr}: {e}"))?;
                tracing::info!("admin listener (metrics, health) on {addr}");
                Some(l)
            }
            None => None,
        };
        state.listening.store(true, Ordering::Relaxed);
        Ok(Server {
            listeners,
            admin,
            state,
        })
    }

    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> Arc<ServerState> {
        self.state.clone()
    }

    /// Serves until `shutdown` turns true, then drains sessions for up to
    /// `session.shutdown_timeout` seconds and closes the rest.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Server {
            listeners,
            admin,
            state,
        } = self;
        let mut tasks = Vec::new();
        for listener in listeners {
            tasks.push(tokio::spawn(accept_loop(listener, state.clone())));
        }
        tasks.push(tokio::spawn(memory_trimmer(state.clone())));
        // Resume uploads a previous run left in the spool.
        let _ = state.uploader();
        if let Some(admin) = admin {
            tasks.push(tokio::spawn(crate::admin::serve(admin, state.clone())));
        }
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        state.shutting_down.store(true, Ordering::Relaxed);
        // Stop accepting; the admin listener stays up (ready = 503) while draining.
        let admin_task = if state.config().admin.bind.is_some() {
            tasks.pop()
        } else {
            None
        };
        for t in &tasks {
            t.abort();
        }
        drain(
            &state,
            Duration::from_secs(state.config().session.shutdown_timeout),
        )
        .await;
        state.listening.store(false, Ordering::Relaxed);
        if let Some(t) = admin_task {
            t.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ServerState>) {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        let state = state.clone();
        // Every log line of this connection carries its peer, and after the
        // handshake its connection id, user id and protocol.
        let span = tracing::info_span!(
            "conn",
            peer = %peer,
            connection = tracing::field::Empty,
            user = tracing::field::Empty,
            protocol = tracing::field::Empty,
        );
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let admitted = state.admit_connection(peer.ip());
                let peer_s = peer.to_string();
                match state.tls() {
                    None => crate::connection::serve(sock, state, peer_s, admitted).await,
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            state.config().client_timeout(),
                            acceptor.accept(sock),
                        )
                        .await;
                        match handshake {
                            Ok(Ok(stream)) => {
                                crate::connection::serve(stream, state, peer_s, admitted).await
                            }
                            Ok(Err(e)) => {
                                tracing::info!(peer = %peer_s, "TLS handshake failed: {e}")
                            }
                            Err(_) => tracing::info!(peer = %peer_s, "TLS handshake timed out"),
                        }
                    }
                }
            },
            span,
        ));
    }
}

/// Gives memory freed by ended sessions back to the OS. glibc's malloc keeps
/// freed memory in its arenas: after 100,000 connect/disconnect cycles the
/// daemon's RSS stayed 15 % above its baseline (BENCHMARKS.md, "Scale and
/// soak"). When sessions ended since the last look, this trims, at most
/// every 10 s. (mimalloc was tried: it kept 2.6 MB per idle
/// session instead of 0.4 MB.)
async fn memory_trimmer(state: Arc<ServerState>) {
    let mut last = state.registry.removed_total();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = state.registry.removed_total();
        if now != last {
            let _ = tokio::task::spawn_blocking(trim_heap).await;
        }
        last = now;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_heap() {
    // SAFETY: malloc_trim takes no pointers; it only releases free heap pages
    // and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// Waits for live sessions to end, then closes what is left.
async fn drain(state: &ServerState, deadline: Duration) {
    let live = state.registry.len();
    if live == 0 {
        return;
    }
    tracing::info!(
        sessions = live,
        "shutting down: waiting up to {}s for sessions to end",
        deadline.as_secs()
    );
    let until = tokio::time::Instant::now() + deadline;
    while !state.registry.is_empty() && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let left = state.registry.all();
    if !left.is_empty() {
        tracing::info!(sessions = left.len(), "closing the remaining sessions");
    }
    let err = SessionError::new(Status::ServerBusy, "The server is shutting down.");
    for s in left {
        s.close(Some(&err));
        s.request_shutdown();
        state.registry.remove(s.id());
    }
    // Let the writers flush the final instructions.
    tokio::time::sleep(Duration::from_millis(200)).await;
}
