//! `guacr` — the daemon binary. Flags follow guacd's: `-b -l -p -L -C -K -f -v`.

use std::path::PathBuf;

use clap::Parser;
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
    guacr::logging::init(&cfg.daemon.log_level, &cfg.daemon.log_format)?;
    // Bind before daemonizing so errors reach the terminal; guacd does the same.
    let std_listener_check = cfg.bind_addrs()?;
    tracing::debug!(?std_listener_check, "configuration loaded");
    if !cfg.daemon.foreground {
        daemon::daemonize()?;
    }
    if let Some(pid) = &cfg.daemon.pid_file {
        std::fs::write(pid, format!("{}\n", std::process::id()))
            .map_err(|e| anyhow::anyhow!("cannot write PID file {}: {e}", pid.display()))?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("guacr")
        .build()?;
    let pid_file = cfg.daemon.pid_file.clone();
    let result = rt.block_on(async move {
        let server = guacr::bind(cfg).await?;
        let (tx, rx) = tokio::sync::watch::channel(false);
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
