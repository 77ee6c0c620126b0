//! The `telnet` protocol handler: a TCP socket driven by [`TelnetClient`] and
//! guacd's automatic login, feeding the shared terminal driver.

use std::time::Duration;

use bytes::Bytes;
use guacr_console::{ConsoleOptions, UpstreamCommand, UpstreamEvent, UpstreamHandle};
use guacr_protocol::Status;
use guacr_session::{Params, Protocol, ProtocolFuture, SessionContext, SessionError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{LoginAction, LoginAutomation, LoginConfig, TelnetClient, TelnetConfig, encode_input};

/// Parameter names, in guacd 1.5's order.
pub const TELNET_ARGS: &[&str] = &[
    "hostname",
    "port",
    "username",
    "username-regex",
    "password",
    "password-regex",
    "font-name",
    "font-size",
    "color-scheme",
    "typescript-path",
    "typescript-name",
    "create-typescript-path",
    "recording-path",
    "recording-name",
    "recording-exclude-output",
    "recording-exclude-mouse",
    "recording-include-keys",
    "create-recording-path",
    "read-only",
    "backspace",
    "terminal-type",
    "scrollback",
    "login-success-regex",
    "login-failure-regex",
    "disable-copy",
    "disable-paste",
    "wol-send-packet",
    "wol-mac-addr",
    "wol-broadcast-addr",
    "wol-udp-port",
    "wol-wait-time",
];

/// The `telnet` protocol.
#[derive(Debug, Clone, Default)]
pub struct Telnet {
    pub console: ConsoleOptions,
    pub connect_timeout: Option<Duration>,
}

impl Protocol for Telnet {
    fn name(&self) -> &'static str {
        "telnet"
    }

    fn arg_names(&self) -> &'static [&'static str] {
        TELNET_ARGS
    }

    fn run(&self, ctx: SessionContext) -> ProtocolFuture {
        let opts = self.console;
        let timeout = self.connect_timeout.unwrap_or(Duration::from_secs(10));
        Box::pin(run(ctx, opts, timeout))
    }

    fn health(&self) -> Result<(), String> {
        guacr_console::health()
    }
}

fn bad(e: guacr_session::ParamError) -> SessionError {
    SessionError::new(e.status(), e.to_string())
}

fn login_config(p: &Params) -> Result<LoginConfig, SessionError> {
    LoginConfig::from_params(
        p.get("username"),
        p.get("password"),
        p.get("username-regex"),
        p.get("password-regex"),
        p.get("login-success-regex"),
        p.get("login-failure-regex"),
    )
    .map_err(|e| SessionError::new(Status::ClientBadRequest, e.to_string()))
}

async fn run(
    ctx: SessionContext,
    opts: ConsoleOptions,
    timeout: Duration,
) -> Result<(), SessionError> {
    let p = &ctx.params;
    let hostname = p.require("hostname").map_err(bad)?.to_owned();
    let port: u16 = p.parse_or("port", 23).map_err(bad)?;
    let login = login_config(p)?;
    let term = guacr_console::create_terminal(p, &ctx.owner)?;
    let config = TelnetConfig {
        terminal_type: p.get_or("terminal-type", "linux").to_owned(),
        username: p.get("username").map(str::to_owned),
        cols: term.cols(),
        rows: term.rows(),
    };
    let sock = guacr_console::connect_tcp(&hostname, port, timeout).await?;
    tracing::info!(connection = %ctx.session.id(), host = %hostname, "telnet connection established");
    let (upstream, io) = guacr_console::upstream_channels();
    tokio::spawn(tracing::Instrument::in_current_span(pump(
        sock,
        TelnetClient::new(config),
        LoginAutomation::new(login),
        io,
    )));
    guacr_console::run(ctx, term, upstream, opts).await
}

async fn pump(
    mut sock: TcpStream,
    mut client: TelnetClient,
    mut login: LoginAutomation,
    mut io: UpstreamHandle,
) {
    let mut rbuf = vec![0u8; 32 * 1024];
    let mut data = Vec::with_capacity(32 * 1024);
    let mut replies = Vec::new();
    let mut wbuf = Vec::new();
    let closed = |e: Option<SessionError>| UpstreamEvent::Closed(e);
    loop {
        tokio::select! {
            r = sock.read(&mut rbuf) => {
                let n = match r {
                    Ok(0) => {
                        let _ = io.events.send(closed(None)).await;
                        return;
                    }
                    Ok(n) => n,
                    Err(e) => {
                        let _ = io.events.send(closed(Some(SessionError::new(
                            Status::UpstreamError,
                            format!("Lost the telnet connection: {e}"),
                        )))).await;
                        return;
                    }
                };
                data.clear();
                replies.clear();
                client.receive(&rbuf[..n], &mut data, &mut replies);
                if !replies.is_empty() && sock.write_all(&replies).await.is_err() {
                    let _ = io.events.send(closed(None)).await;
                    return;
                }
                if data.is_empty() {
                    continue;
                }
                let mut failed = false;
                if login.is_active() {
                    for action in login.observe(&data) {
                        match action {
                            LoginAction::SendUsername(bytes) | LoginAction::SendPassword(bytes) => {
                                wbuf.clear();
                                encode_input(&bytes, &mut wbuf);
                                if sock.write_all(&wbuf).await.is_err() {
                                    failed = true;
                                }
                            }
                            LoginAction::LoginSucceeded => tracing::debug!("telnet login succeeded"),
                            LoginAction::LoginFailed => failed = true,
                        }
                    }
                }
                if io.events.send(UpstreamEvent::Data(Bytes::copy_from_slice(&data))).await.is_err() {
                    return;
                }
                if failed {
                    let _ = io.events.send(closed(Some(SessionError::new(
                        Status::ClientUnauthorized,
                        "Login failed.",
                    )))).await;
                    return;
                }
            }
            cmd = io.commands.recv() => match cmd {
                Some(UpstreamCommand::Write(bytes)) => {
                    wbuf.clear();
                    encode_input(&bytes, &mut wbuf);
                    if sock.write_all(&wbuf).await.is_err() {
                        let _ = io.events.send(closed(None)).await;
                        return;
                    }
                }
                Some(UpstreamCommand::Resize { cols, rows, .. }) => {
                    wbuf.clear();
                    client.resize(cols, rows, &mut wbuf);
                    if !wbuf.is_empty() && sock.write_all(&wbuf).await.is_err() {
                        let _ = io.events.send(closed(None)).await;
                        return;
                    }
                }
                None => return,
            },
        }
    }
}
