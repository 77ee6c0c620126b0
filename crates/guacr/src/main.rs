//! `guacr` — the daemon binary. Flags follow guacd's: `-b -l -p -L -C -K -f -v`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use guacr::Config;

#[derive(Debug, Parser)]
#[command(
    name = "guacr",
    about = "guacr: a remote access gateway speaking the Guacamole protocol (drop-in for guacd)",
    disable_version_flag = true
)]
struct Cli {
    /// Address to listen on (guacd -b; default 127.0.0.1).
    #[arg(short = 'b', value_name = "HOST")]
    bind_host: Option<String>,
    /// Port to listen on (guacd -l; default 4822).
    #[arg(short = 'l', value_name = "PORT")]
    bind_port: Option<u16>,
    /// Write the daemon's PID to this file (guacd -p).
    #[arg(short = 'p', value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Log level: trace, debug, info, warning, error (guacd -L).
    #[arg(short = 'L', value_name = "LEVEL")]
    log_level: Option<String>,
    /// TLS certificate chain, PEM (guacd -C).
    #[arg(short = 'C', value_name = "FILE")]
    certificate: Option<PathBuf>,
    /// TLS private key, PEM (guacd -K).
    #[arg(short = 'K', value_name = "FILE")]
    key: Option<PathBuf>,
    /// Stay in the foreground (guacd -f).
    #[arg(short = 'f')]
    foreground: bool,
    /// Print the version and exit (guacd -v).
    #[arg(short = 'v')]
    version: bool,
    /// Configuration file (default /etc/guacr/guacr.toml when it exists).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", value_name = "FORMAT")]
    log_format: Option<String>,
    /// Serve the web gateway on this address (turns it on; `[web] bind`).
    #[arg(long = "web-bind", value_name = "ADDR")]
    web_bind: Option<String>,
    /// Do not serve the web gateway (guacd drop-in only).
    #[arg(long = "no-web", conflicts_with = "web_bind")]
    no_web: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Recording tools.
    #[command(subcommand)]
    Recording(RecordingCommand),
    /// Signed connection tokens (embedding a connection without a login).
    #[cfg(feature = "web")]
    #[command(subcommand)]
    Token(TokenCommand),
    /// Creates the database and the first admin (prints its one-time password once).
    Init(guacr::store_cli::InitArgs),
    /// Web gateway users: add, passwd, list.
    #[command(subcommand)]
    User(guacr::store_cli::UserCommand),
    /// Web gateway connections: add, list, import (Guacamole user-mapping.xml).
    #[command(subcommand)]
    Connection(guacr::store_cli::ConnectionCommand),
}

#[cfg(feature = "web")]
#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Prints an HS256 token for `/#/client?token=…` (secret: `[web] token_secret`,
    /// `token_secret_file` or env GUACR_TOKEN_SECRET).
    Create {
        /// A stored connection id…
        #[arg(long, conflicts_with = "protocol")]
        connection: Option<String>,
        /// …or a protocol with `--param NAME=VALUE` parameters.
        #[arg(long)]
        protocol: Option<String>,
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: u64,
        /// View only.
        #[arg(long)]
        read_only: bool,
        /// A label for the audit log (`sub`).
        #[arg(long)]
        sub: Option<String>,
        /// Configuration file (default /etc/guacr/guacr.toml when it exists).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[cfg(feature = "web")]
fn run_token(cmd: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Create {
        connection,
        protocol,
        params,
        ttl,
        read_only,
        sub,
        config,
    } = cmd;
    let cfg = match config {
        Some(p) => Config::load(&p)?,
        None if std::path::Path::new(guacr::config::DEFAULT_CONFIG).exists() => {
            Config::load(std::path::Path::new(guacr::config::DEFAULT_CONFIG))?
        }
        None => Config::default(),
    };
    let secret = guacr::web::token_secret(&cfg)?.ok_or_else(|| {
        anyhow::anyhow!("no token secret: set [web] token_secret or GUACR_TOKEN_SECRET")
    })?;
    if connection.is_none() && protocol.is_none() {
        anyhow::bail!("pass --connection ID or --protocol NAME");
    }
    let params = params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("--param {p:?} is not NAME=VALUE"))
        })
        .collect::<anyhow::Result<std::collections::BTreeMap<_, _>>>()?;
    let claims = guacr_web::token::Claims {
        exp: guacr_web::token::now_secs() + ttl,
        iat: 0,
        sub,
        connection,
        params: protocol.is_some().then_some(params),
        protocol,
        read_only: read_only.then_some(true),
    };
    print_out(&format!("{}\n", guacr_web::token::create(&secret, claims)?))
}

#[derive(Debug, Subcommand)]
enum RecordingCommand {
    /// Creates an X25519 key pair for encrypted recordings: PREFIX.key (keep
    /// it off the gateway) and PREFIX.pub (for `recording.encrypt_to`).
    Keygen { prefix: PathBuf },
    /// Decrypts an encrypted recording or typescript; detects tampering and truncation.
    Decrypt {
        /// Private key file (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        input: PathBuf,
        /// Output file (default: standard output).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Renders a `.guac` recording to a video file (.mp4 or .webm; needs ffmpeg).
    Render {
        input: PathBuf,
        /// Output video; the extension chooses the format.
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// Frames per second.
        #[arg(long, default_value_t = 25)]
        fps: u32,
        /// Private key, when the recording is encrypted.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Prints the keystroke log of a `.guac` recording (what guaclog does).
    Keys {
        input: PathBuf,
        /// Private key, when the recording is encrypted.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Print the typed text instead of the key log.
        #[arg(long)]
        typed: bool,
    },
}

fn read_private_key(path: &std::path::Path) -> anyhow::Result<guacr_record::PrivateKey> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read key {}: {e}", path.display()))?;
    guacr_record::PrivateKey::from_text(&text)
        .map_err(|e| anyhow::anyhow!("invalid private key {}: {e}", path.display()))
}

fn read_recording(
    input: &std::path::Path,
    key: Option<&std::path::Path>,
) -> anyhow::Result<Vec<u8>> {
    let data = std::fs::read(input)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", input.display()))?;
    if !guacr_record::crypto::is_encrypted(&data) {
        return Ok(data);
    }
    let key = key.ok_or_else(|| anyhow::anyhow!("{} is encrypted: pass --key", input.display()))?;
    let mut out = Vec::new();
    guacr_record::decrypt(data.as_slice(), &read_private_key(key)?, &mut out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    Ok(out)
}

fn run_recording(cmd: RecordingCommand) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match cmd {
        RecordingCommand::Keygen { prefix } => {
            let (private, public) = guacr_record::generate_keypair()?;
            let key_path = prefix.with_extension("key");
            let pub_path = prefix.with_extension("pub");
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key_path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", key_path.display()))?;
            f.write_all(private.to_text().as_bytes())?;
            std::fs::write(&pub_path, public.to_text())?;
            print_out(&format!("{}\n{}\n", key_path.display(), pub_path.display()))
        }
        RecordingCommand::Decrypt { key, input, output } => {
            let data = read_recording(&input, Some(&key))?;
            match output {
                Some(o) => Ok(std::fs::write(&o, data)?),
                None => {
                    let mut out = std::io::stdout();
                    match out.write_all(&data) {
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                        other => Ok(other?),
                    }
                }
            }
        }
        RecordingCommand::Render {
            input,
            output,
            fps,
            key,
        } => {
            let data = read_recording(&input, key.as_deref())?;
            let stats = guacr_playback::render_video(
                &data,
                &output,
                guacr_playback::RenderOptions {
                    fps,
                    ..Default::default()
                },
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            print_out(&format!(
                "{}: {}x{} at {} fps, {:.1} s of recording in {:.1} s\n",
                output.display(),
                stats.width,
                stats.height,
                stats.fps,
                stats.recording_ms as f64 / 1000.0,
                stats.elapsed.as_secs_f64()
            ))
        }
        RecordingCommand::Keys { input, key, typed } => {
            let data = read_recording(&input, key.as_deref())?;
            let text = if typed {
                guacr_record::typed_text_from_recording(&data)
            } else {
                guacr_record::keys_from_recording(&data)
            };
            print_out(&text)
        }
    }
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validates a guacr.toml (and the TLS files it names); prints the effective configuration.
    Check { file: PathBuf },
    /// Converts guacd's guacd.conf to guacr.toml on standard output.
    FromGuacd { file: PathBuf },
}

/// Writes to standard output; a closed pipe (`| head`) is not an error.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn run_command(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Recording(r) => run_recording(r),
        #[cfg(feature = "web")]
        Command::Token(t) => run_token(t),
        // Dispatched in `main` with the configuration file.
        Command::Init(_) | Command::User(_) | Command::Connection(_) => {
            anyhow::bail!("store commands are run from main")
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let cfg = Config::load(&file)?;
            if let (Some(c), Some(k)) = (&cfg.ssl.server_certificate, &cfg.ssl.server_key) {
                guacr::tls::acceptor(c, k)?;
            }
            cfg.bind_addrs()?;
            print_out(&format!("# {}: OK\n{}", file.display(), cfg.to_toml()))
        }
        Command::Config(ConfigCommand::FromGuacd { file }) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let cfg = Config::from_guacd_conf(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            print_out(&format!(
                "# converted from {}\n{}",
                file.display(),
                cfg.to_toml()
            ))
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut cfg = match &cli.config {
        Some(p) => Config::load(p)?,
        None if std::path::Path::new(guacr::config::DEFAULT_CONFIG).exists() => {
            Config::load(std::path::Path::new(guacr::config::DEFAULT_CONFIG))?
        }
        None => Config::default(),
    };
    if let Some(h) = &cli.bind_host {
        cfg.server.bind_host = h.clone();
    }
    if let Some(p) = cli.bind_port {
        cfg.server.bind_port = p;
    }
    if let Some(p) = &cli.pid_file {
        cfg.daemon.pid_file = Some(p.clone());
    }
    if let Some(l) = &cli.log_level {
        cfg.daemon.log_level = l.clone();
    }
    if let Some(f) = &cli.log_format {
        cfg.daemon.log_format = f.clone();
    }
    if let Some(c) = &cli.certificate {
        cfg.ssl.server_certificate = Some(c.clone());
    }
    if let Some(k) = &cli.key {
        cfg.ssl.server_key = Some(k.clone());
    }
    if cli.foreground {
        cfg.daemon.foreground = true;
    }
    if let Some(b) = &cli.web_bind {
        cfg.web.bind = b.clone();
        cfg.web.enabled = Some(true);
    }
    if cli.no_web {
        cfg.web.enabled = Some(false);
    }
    cfg.validate()?;
    Ok(cfg)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!(
            "guacr version {} (Guacamole protocol VERSION_1_5_0, guacd 1.5 compatible)",
            env!("CARGO_PKG_VERSION")
        );
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(cmd) = cli.command {
        let config = cli.config.as_deref();
        let result = match cmd {
            Command::Init(a) => guacr::store_cli::run_init(a, config),
            Command::User(c) => guacr::store_cli::run_user(c, config),
            Command::Connection(c) => guacr::store_cli::run_connection(c, config),
            cmd => run_command(cmd),
        };
        return match result {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("guacr: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guacr: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = load_config(&cli)?;
    // Gateway mode (the web UI on by default): no configuration file and no
    // guacd listener flags. Otherwise guacr is a guacd drop-in unless
    // `[web] enabled = true` or `--web-bind`.
    let gateway_mode = cli.config.is_none()
        && !std::path::Path::new(guacr::config::DEFAULT_CONFIG).exists()
        && cli.bind_host.is_none()
        && cli.bind_port.is_none();
    // Resolve the address before daemonizing so errors reach the terminal.
    let addrs = cfg.bind_addrs()?;
    if !cfg.daemon.foreground {
        // Before anything starts a thread (the trace exporter does).
        daemon::daemonize()?;
    }
    let otlp = cfg
        .tracing
        .otlp_endpoint
        .as_deref()
        .map(|e| (e, cfg.tracing.service_name.as_deref().unwrap_or("guacr")));
    let (log_reloader, _traces) =
        guacr::logging::init_with_traces(&cfg.daemon.log_level, &cfg.daemon.log_format, otlp)?;
    tracing::debug!(?addrs, "configuration loaded");
    if let Some(pid) = &cfg.daemon.pid_file {
        std::fs::write(pid, format!("{}\n", std::process::id()))
            .map_err(|e| anyhow::anyhow!("cannot write PID file {}: {e}", pid.display()))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("guacr")
        .build()?;
    let pid_file = cfg.daemon.pid_file.clone();
    let config_path = cli.config.clone().or_else(|| {
        let p = PathBuf::from(guacr::config::DEFAULT_CONFIG);
        p.exists().then_some(p)
    });
    let result = rt.block_on(async move {
        #[cfg(feature = "web")]
        let web_cfg = cfg.clone();
        let server = guacr::bind(cfg).await?;
        let state = server.state();
        state.set_log_reloader(log_reloader);
        let (tx, rx) = tokio::sync::watch::channel(false);
        #[cfg(feature = "web")]
        if guacr::web::enabled(&web_cfg, gateway_mode) {
            // The same database as `guacr init|user|connection` ([database]).
            let store = guacr::store_cli::open_store(&web_cfg, None).await?;
            if let Some(password) = store.ensure_admin().await? {
                guacr::web::announce_first_admin(&password, web_cfg.daemon.foreground);
            }
            let web = guacr::web::bind(&web_cfg, state.clone(), store).await?;
            if let Some(a) = web.local_addr() {
                println!(
                    "guacr: web gateway on {}://{a}/",
                    if web_cfg.web.certificate.is_some() || web_cfg.ssl.server_certificate.is_some()
                    {
                        "https"
                    } else {
                        "http"
                    }
                );
            }
            tokio::spawn(web.run(rx.clone()));
        }
        #[cfg(not(feature = "web"))]
        let _ = gateway_mode;
        if let Some(path) = config_path {
            let overrides = Overrides(cli);
            tokio::spawn(reload_loop(state, path, overrides));
        }
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: no longer accepting connections");
            let _ = tx.send(true);
            // A second signal forces the exit.
            wait_for_signal().await;
            tracing::warn!("second signal: exiting now");
            std::process::exit(1);
        });
        server.run(rx).await;
        tracing::info!("shutdown complete");
        anyhow::Ok(())
    });
    if let Some(pid) = &pid_file {
        let _ = std::fs::remove_file(pid);
    }
    result
}

/// Command-line flags keep priority over the file on reload too.
struct Overrides(Cli);

impl Overrides {
    fn apply(&self, path: &std::path::Path) -> anyhow::Result<Config> {
        let mut cli_view = Cli {
            config: Some(path.to_owned()),
            command: None,
            ..self.0.clone_flags()
        };
        cli_view.foreground = true;
        load_config(&cli_view)
    }
}

impl Cli {
    fn clone_flags(&self) -> Cli {
        Cli {
            bind_host: self.bind_host.clone(),
            bind_port: self.bind_port,
            pid_file: self.pid_file.clone(),
            log_level: self.log_level.clone(),
            certificate: self.certificate.clone(),
            key: self.key.clone(),
            foreground: self.foreground,
            version: false,
            config: self.config.clone(),
            log_format: self.log_format.clone(),
            web_bind: self.web_bind.clone(),
            no_web: self.no_web,
            command: None,
        }
    }
}

/// Reloads the configuration on SIGHUP and when the file changes (polled
/// every 2 s, which also catches Kubernetes ConfigMap symlink swaps).
async fn reload_loop(state: std::sync::Arc<guacr::ServerState>, path: PathBuf, flags: Overrides) {
    use tokio::signal::unix::{SignalKind, signal};
    let fingerprint = |p: &std::path::Path| std::fs::read(p).ok();
    let mut last = fingerprint(&path);
    let mut hup = signal(SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        let by_signal = tokio::select! {
            _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending::<()>().await } } => true,
            _ = tick.tick() => false,
        };
        let now = fingerprint(&path);
        if !by_signal && now == last {
            continue;
        }
        last = now;
        tracing::info!(file = %path.display(), by_signal, "reloading configuration");
        match flags.apply(&path).and_then(|cfg| state.reload(cfg)) {
            Ok(()) => {}
            Err(e) => tracing::error!("configuration reload refused, keeping the old one: {e:#}"),
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

mod daemon {
    //! Backgrounding like guacd without `-f`: fork, setsid, fork, stdio to /dev/null.
    #![allow(unsafe_code)]

    pub fn daemonize() -> anyhow::Result<()> {
        fork_and_exit_parent()?;
        // SAFETY: setsid takes no pointers and has no memory-safety preconditions.
        if unsafe { libc::setsid() } < 0 {
            anyhow::bail!("setsid failed: {}", std::io::Error::last_os_error());
        }
        fork_and_exit_parent()?;
        std::env::set_current_dir("/")?;
        let devnull = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        use std::os::fd::AsRawFd;
        for fd in 0..=2 {
            // SAFETY: both descriptors are valid open descriptors owned by this process.
            if unsafe { libc::dup2(devnull.as_raw_fd(), fd) } < 0 {
                anyhow::bail!("dup2 failed: {}", std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    fn fork_and_exit_parent() -> anyhow::Result<()> {
        // SAFETY: called from main before any other thread exists (the tokio
        // runtime is built afterwards), so the child inherits a consistent state.
        match unsafe { libc::fork() } {
            -1 => anyhow::bail!("fork failed: {}", std::io::Error::last_os_error()),
            0 => Ok(()),
            _ => std::process::exit(0),
        }
    }
}
