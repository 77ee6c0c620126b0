//! SSH protocol handler (russh client, aws-lc-rs crypto).
//!
//! Behaviour follows guacd's `ssh` protocol: parameter names and order, host
//! key checking against the `host-key` parameter (known_hosts format) or
//! `/etc/guacamole/ssh_known_hosts`, private keys with passphrase (OpenSSH,
//! PKCS#1/PKCS#8 PEM), password and keyboard-interactive authentication,
//! `command`, `locale` (LANG), `timezone` (TZ), `server-alive-interval`,
//! `terminal-type`; the end of the remote shell ends the connection with a
//! plain `disconnect`.

mod hostkey;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use guacr_console::{ConsoleOptions, UpstreamCommand, UpstreamEvent, UpstreamHandle};
use guacr_protocol::Status;
use guacr_session::{Params, Protocol, ProtocolFuture, SessionContext, SessionError};
use russh::ChannelMsg;
use russh::client::{self, AuthResult, KeyboardInteractiveAuthResponse};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

pub use hostkey::{HostKeyError, KnownHosts};

/// Parameter names, in guacd 1.5's order.
pub const SSH_ARGS: &[&str] = &[
    "hostname",
    "host-key",
    "port",
    "username",
    "password",
    "font-name",
    "font-size",
    "enable-sftp",
    "sftp-root-directory",
    "sftp-disable-download",
    "sftp-disable-upload",
    "private-key",
    "passphrase",
    "color-scheme",
    "command",
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
    "server-alive-interval",
    "backspace",
    "terminal-type",
    "scrollback",
    "locale",
    "timezone",
    "disable-copy",
    "disable-paste",
    "wol-send-packet",
    "wol-mac-addr",
    "wol-broadcast-addr",
    "wol-udp-port",
    "wol-wait-time",
];

/// guacd reads this file when no `host-key` parameter is given.
pub const GUACD_KNOWN_HOSTS: &str = "/etc/guacamole/ssh_known_hosts";

/// The `ssh` protocol.
#[derive(Debug, Clone, Default)]
pub struct Ssh {
    pub console: ConsoleOptions,
    /// Timeout for the TCP connection and the SSH handshake.
    pub connect_timeout: Option<Duration>,
}

impl Protocol for Ssh {
    fn name(&self) -> &'static str {
        "ssh"
    }

    fn arg_names(&self) -> &'static [&'static str] {
        SSH_ARGS
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

/// Settings parsed from the parameters.
struct Settings {
    hostname: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    private_key: Option<String>,
    passphrase: Option<String>,
    host_key: Option<String>,
    command: Option<String>,
    locale: Option<String>,
    timezone: Option<String>,
    terminal_type: String,
    server_alive_interval: u64,
}

fn bad(e: guacr_session::ParamError) -> SessionError {
    SessionError::new(e.status(), e.to_string())
}

impl Settings {
    fn from_params(p: &Params, client_timezone: Option<&str>) -> Result<Settings, SessionError> {
        let owned = |name: &str| p.get(name).map(str::to_owned);
        Ok(Settings {
            hostname: p.require("hostname").map_err(bad)?.to_owned(),
            port: p.parse_or("port", 22u16).map_err(bad)?,
            username: owned("username"),
            password: owned("password"),
            private_key: owned("private-key"),
            passphrase: owned("passphrase"),
            host_key: owned("host-key"),
            command: owned("command"),
            locale: owned("locale"),
            timezone: owned("timezone").or_else(|| client_timezone.map(str::to_owned)),
            terminal_type: p.get_or("terminal-type", "linux").to_owned(),
            server_alive_interval: p.parse_or("server-alive-interval", 0u64).map_err(bad)?,
        })
    }
}

struct ClientHandler {
    /// russh calls the handler from its own task, outside the session's span.
    connection: String,
    known: Option<KnownHosts>,
    hostname: String,
    port: u16,
    mismatch: Arc<std::sync::atomic::AtomicBool>,
}

impl client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let Some(known) = &self.known else {
            tracing::warn!(connection = %self.connection, protocol = "ssh", host = %self.hostname, "no known host keys provided; host identity is not verified");
            return Ok(true);
        };
        let key: &PublicKey = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(cert) => {
                return Ok(known.matches_key_data(cert.public_key(), &self.hostname, self.port));
            }
        };
        let ok = known.matches(key, &self.hostname, self.port);
        if !ok {
            self.mismatch
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(ok)
    }
}

fn upstream_error(status: Status, msg: impl Into<String>) -> SessionError {
    SessionError::new(status, msg)
}

async fn run(
    mut ctx: SessionContext,
    opts: ConsoleOptions,
    timeout: Duration,
) -> Result<(), SessionError> {
    let mut settings = Settings::from_params(&ctx.params, ctx.owner.client.timezone.as_deref())?;
    let mut term = guacr_console::create_terminal(&ctx.params, &ctx.owner)?;
    // Like guacd: ask in the terminal for what the connection does not provide.
    if settings.username.is_none() {
        let name = guacr_console::read_line(&mut ctx, &mut term, "Login as: ", true).await?;
        settings.username = Some(name);
    }
    if settings.password.is_none() && settings.private_key.is_none() {
        let pw = guacr_console::read_line(&mut ctx, &mut term, "Password: ", false).await?;
        settings.password = Some(pw);
    }
    let known = match &settings.host_key {
        Some(text) => Some(KnownHosts::parse(text).map_err(|e| {
            SessionError::new(
                Status::ClientBadRequest,
                format!("invalid host-key parameter: {e}"),
            )
        })?),
        None => match std::fs::read_to_string(GUACD_KNOWN_HOSTS) {
            Ok(text) => KnownHosts::parse(&text).ok(),
            Err(_) => None,
        },
    };

    let private_key = match &settings.private_key {
        Some(pem) => Some(
            russh::keys::decode_secret_key(pem, settings.passphrase.as_deref()).map_err(|e| {
                SessionError::new(
                    Status::ClientUnauthorized,
                    format!("Auth key import failed: {e}"),
                )
            })?,
        ),
        None => None,
    };

    let username = settings.username.clone().unwrap_or_default();

    let config = Arc::new(client::Config {
        keepalive_interval: (settings.server_alive_interval > 0)
            .then(|| Duration::from_secs(settings.server_alive_interval)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let mismatch = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handler = ClientHandler {
        connection: ctx.session.id().to_owned(),
        known,
        hostname: settings.hostname.clone(),
        port: settings.port,
        mismatch: mismatch.clone(),
    };

    let session = ctx.session.clone();
    let (owner_w, owner_h) = (ctx.owner.client.width, ctx.owner.client.height);
    let (cols, rows) = (term.cols(), term.rows());
    let setup = async {
        let tcp = guacr_console::connect_tcp(&settings.hostname, settings.port, timeout).await?;
        let mut handle =
            match tokio::time::timeout(timeout, client::connect_stream(config, tcp, handler)).await
            {
                Err(_) => {
                    return Err::<_, SessionError>(upstream_error(
                        Status::UpstreamTimeout,
                        "Timed out during the SSH handshake.",
                    ));
                }
                Ok(Err(e)) => {
                    if mismatch.load(std::sync::atomic::Ordering::Relaxed) {
                        return Err::<_, SessionError>(upstream_error(
                            Status::UpstreamError,
                            "Host key did not match any provided known host keys.",
                        ));
                    }
                    return Err::<_, SessionError>(upstream_error(
                        Status::UpstreamError,
                        format!("SSH handshake failed: {e}"),
                    ));
                }
                Ok(Ok(h)) => h,
            };

        authenticate(&mut handle, &username, &settings, private_key).await?;
        tracing::info!(connection = %session.id(), host = %settings.hostname, user = %username, "SSH connection established");

        let channel = handle.channel_open_session().await.map_err(|e| {
            upstream_error(
                Status::UpstreamError,
                format!("Unable to open a channel: {e}"),
            )
        })?;
        let env = [("TZ", &settings.timezone), ("LANG", &settings.locale)];
        for (name, value) in env {
            if let Some(value) = value
                && let Err(e) = channel.set_env(false, name, value.clone()).await
            {
                tracing::warn!("server refused to set {name}: {e}");
            }
        }
        channel
            .request_pty(
                true,
                &settings.terminal_type,
                u32::from(cols),
                u32::from(rows),
                owner_w,
                owner_h,
                &[],
            )
            .await
            .map_err(|e| {
                upstream_error(
                    Status::UpstreamError,
                    format!("Unable to allocate PTY: {e}"),
                )
            })?;
        match &settings.command {
            Some(cmd) => channel.exec(true, cmd.as_bytes()).await,
            None => channel.request_shell(true).await,
        }
        .map_err(|e| {
            upstream_error(
                Status::UpstreamError,
                format!("Unable to start the shell: {e}"),
            )
        })?;
        Ok::<_, SessionError>((handle, channel))
    };
    // Nobody left to see it: no login, no shell (guacd stops too).
    let (handle, channel) = guacr_console::unless_abandoned(&session, setup).await??;

    let (upstream, io) = guacr_console::upstream_channels();
    tokio::spawn(tracing::Instrument::in_current_span(pump(
        channel, io, handle,
    )));
    guacr_console::run(ctx, term, upstream, opts).await
}

async fn authenticate(
    handle: &mut client::Handle<ClientHandler>,
    username: &str,
    settings: &Settings,
    private_key: Option<russh::keys::PrivateKey>,
) -> Result<(), SessionError> {
    let auth_err = |e: russh::Error| {
        SessionError::new(
            Status::UpstreamError,
            format!("SSH authentication failed: {e}"),
        )
    };
    if let Some(key) = private_key {
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(auth_err)?
            .flatten();
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        if handle
            .authenticate_publickey(username, key)
            .await
            .map_err(auth_err)?
            .success()
        {
            return Ok(());
        }
        return Err(SessionError::new(
            Status::ClientUnauthorized,
            "Public key authentication failed.",
        ));
    }
    let Some(password) = &settings.password else {
        return Err(SessionError::new(
            Status::ClientUnauthorized,
            "No password or private key provided.",
        ));
    };
    let methods = match handle
        .authenticate_password(username, password.clone())
        .await
        .map_err(auth_err)?
    {
        AuthResult::Success => return Ok(()),
        AuthResult::Failure {
            remaining_methods, ..
        } => remaining_methods,
    };
    if methods.contains(&russh::MethodKind::KeyboardInteractive) {
        // Answer every prompt with the password, as guacd does.
        let mut resp = handle
            .authenticate_keyboard_interactive_start(username, None)
            .await
            .map_err(auth_err)?;
        for _ in 0..8 {
            match resp {
                KeyboardInteractiveAuthResponse::Success => return Ok(()),
                KeyboardInteractiveAuthResponse::Failure { .. } => break,
                KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                    let answers = prompts.iter().map(|_| password.clone()).collect();
                    resp = handle
                        .authenticate_keyboard_interactive_respond(answers)
                        .await
                        .map_err(auth_err)?;
                }
            }
        }
    }
    Err(SessionError::new(
        Status::ClientUnauthorized,
        "SSH authentication failed: the server rejected the credentials.",
    ))
}

/// Owns the SSH channel: remote output to the driver, driver commands to the remote.
async fn pump(
    mut channel: russh::Channel<client::Msg>,
    mut io: UpstreamHandle,
    handle: client::Handle<ClientHandler>,
) {
    loop {
        tokio::select! {
            msg = channel.wait() => match msg {
                Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                    if io.events.send(UpstreamEvent::Data(data)).await.is_err() {
                        break;
                    }
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    tracing::debug!(exit_status, "remote command exited");
                }
                Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) | None => {
                    let _ = io.events.send(UpstreamEvent::Closed(None)).await;
                    break;
                }
                Some(_) => {}
            },
            cmd = io.commands.recv() => match cmd {
                Some(UpstreamCommand::Write(data)) => {
                    if let Err(e) = channel.data_bytes(data).await {
                        let _ = io.events.send(UpstreamEvent::Closed(Some(SessionError::new(
                            Status::UpstreamError,
                            format!("Lost the SSH connection: {e}"),
                        )))).await;
                        break;
                    }
                }
                Some(UpstreamCommand::Resize { cols, rows, width, height }) => {
                    let _ = channel.window_change(u32::from(cols), u32::from(rows), width, height).await;
                }
                None => break,
            },
        }
    }
    let _ = channel.close().await;
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    let _ = Bytes::new();
}
