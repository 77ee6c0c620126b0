//! The TCP listener (guacd's port 4822), optional TLS, graceful shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use guacr_protocol::Status;
use guacr_session::{Protocol, Registry, SessionError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// State shared by every connection.
pub struct ServerState {
    pub config: Config,
    pub registry: Arc<Registry>,
    pub protocols: HashMap<String, Arc<dyn Protocol>>,
    /// Parameters users may change at runtime with `argv`.
    pub mutable_params: &'static [&'static str],
    shutting_down: AtomicBool,
}

impl ServerState {
    pub fn new(config: Config, protocols: Vec<Arc<dyn Protocol>>) -> Arc<Self> {
        Arc::new(ServerState {
            config,
            registry: Registry::new(),
            protocols: protocols
                .into_iter()
                .map(|p| (p.name().to_owned(), p))
                .collect(),
            mutable_params: &["color-scheme", "font-name", "font-size"],
            shutting_down: AtomicBool::new(false),
        })
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
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
    v
}

#[cfg(any(feature = "ssh", feature = "telnet"))]
fn console_options(config: &Config) -> guacr_console::ConsoleOptions {
    guacr_console::ConsoleOptions {
        frame_interval: Duration::from_millis(config.session.frame_interval_ms.max(1)),
        ..Default::default()
    }
}

/// A bound listener, ready to serve.
pub struct Server {
    listeners: Vec<TcpListener>,
    state: Arc<ServerState>,
    tls: Option<TlsAcceptor>,
}

impl Server {
    pub async fn bind(state: Arc<ServerState>) -> anyhow::Result<Server> {
        let mut listeners = Vec::new();
        let mut last_err = None;
        for addr in state.config.bind_addrs()? {
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
        let tls = match (
            &state.config.ssl.server_certificate,
            &state.config.ssl.server_key,
        ) {
            (Some(cert), Some(key)) => Some(crate::tls::acceptor(cert, key)?),
            _ => None,
        };
        if tls.is_some() {
            tracing::info!("TLS enabled");
        }
        Ok(Server {
            listeners,
            state,
            tls,
        })
    }

    pub fn local_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    pub fn state(&self) -> Arc<ServerState> {
        self.state.clone()
    }

    /// Serves until `shutdown` turns true, then drains sessions for up to
    /// `session.shutdown_timeout` seconds and closes the rest.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Server {
            listeners,
            state,
            tls,
        } = self;
        let mut accepts = Vec::new();
        for listener in listeners {
            let state = state.clone();
            let tls = tls.clone();
            accepts.push(tokio::spawn(accept_loop(listener, state, tls)));
        }
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        for a in &accepts {
            a.abort();
        }
        state.shutting_down.store(true, Ordering::Relaxed);
        drain(
            &state,
            Duration::from_secs(state.config.session.shutdown_timeout),
        )
        .await;
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ServerState>, tls: Option<TlsAcceptor>) {
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
        let tls = tls.clone();
        tokio::spawn(async move {
            let peer = peer.to_string();
            match tls {
                None => crate::connection::serve(sock, state, peer).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(state.config.client_timeout(), acceptor.accept(sock))
                            .await;
                    match handshake {
                        Ok(Ok(stream)) => crate::connection::serve(stream, state, peer).await,
                        Ok(Err(e)) => tracing::info!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

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
