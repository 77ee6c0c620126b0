//! `guacr-bench`: end-to-end benchmarks of a running Guacamole daemon (guacr
//! or Apache guacd) over TCP, with SSH sessions to a real OpenSSH server.
//!
//! See `guacr-bench --help` and the `## Daemon` section of BENCHMARKS.md.

mod bench;
mod procmem;
mod rdp;
mod report;
mod soak;
mod ws;

use clap::{Args, Parser, Subcommand};

/// Benchmarks of a running guacd-compatible daemon.
#[derive(Debug, Parser)]
#[command(name = "guacr-bench", version)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    /// Print the results as one JSON object on stdout (the table goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where the daemon and the SSH server are. SSH values default to the
/// GUACR_TEST_* variables, then to `$GUACR_PEERS_DIR/env`
/// (/var/tmp/guacr-peers/env, written by `scripts/test-peers.sh start`).
#[derive(Debug, Args)]
struct TargetArgs {
    /// Daemon address.
    #[arg(long, global = true, default_value = "127.0.0.1:4822")]
    addr: String,
    /// Name of the daemon in the output (e.g. guacr, guacd).
    #[arg(long, global = true)]
    label: Option<String>,
    /// SSH host as seen by the daemon [env GUACR_TEST_HOST, else 127.0.0.1].
    #[arg(long, global = true)]
    ssh_host: Option<String>,
    /// SSH port [env GUACR_TEST_SSH_PORT, else 2222].
    #[arg(long, global = true)]
    ssh_port: Option<u16>,
    /// SSH user [env GUACR_TEST_PW_USER, else guacr-pw].
    #[arg(long, global = true)]
    user: Option<String>,
    /// SSH password [env GUACR_TEST_PW_PASSWORD].
    #[arg(long, global = true)]
    password: Option<String>,
    /// Display width sent in the handshake.
    #[arg(long, global = true, default_value_t = 1024)]
    width: u32,
    /// Display height sent in the handshake.
    #[arg(long, global = true, default_value_t = 768)]
    height: u32,
    /// `scrollback` connection parameter (guacd's default is 1000).
    #[arg(long, global = true, default_value_t = 1000)]
    scrollback: u32,
    /// Extra SSH connection parameter NAME=VALUE (repeatable), e.g.
    /// `--param recording-path=/tmp/rec` to measure the cost of recording.
    #[arg(long = "param", global = true, value_name = "NAME=VALUE")]
    params: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Handshake latency: `select` → `args` and `select` → `ready`, a fresh
    /// TCP connection each time (disconnects right after `ready`).
    Handshake(bench::HandshakeArgs),
    /// Echo latency: key press+release → first drawing instruction, in one
    /// SSH session at an idle prompt.
    Keystroke(bench::KeystrokeArgs),
    /// Bulk output: `seq 1 COUNT` + Return → screen settled, and bytes on the wire.
    Seq(bench::SeqArgs),
    /// Memory and threads of the daemon with many idle SSH sessions.
    Idle(bench::IdleArgs),
    /// A minimal Telnet echo server (the peer for `scale` and `cycles`).
    Upstream(soak::UpstreamArgs),
    /// Many telnet sessions: daemon memory per session, and keystroke
    /// latency of a few active sessions among idle ones.
    Scale(soak::ScaleArgs),
    /// Connect → first frame → disconnect, many times: does the daemon's
    /// RSS return to its baseline, do its fds leak?
    Cycles(soak::CyclesArgs),
    /// Keystroke echo over the web gateway's WebSocket tunnel vs TCP 4822
    /// (alternating, same daemon; sessions opened with a signed token).
    WsKeystroke(ws::WsKeystrokeArgs),
    /// Many concurrent idle WebSocket sessions: daemon memory and CPU.
    WsIdle(ws::WsIdleArgs),
    /// RDP sessions (default: the xrdp test peer): daemon memory and threads per
    /// session, frames per second and bytes per frame while text scrolls.
    Rdp(rdp::RdpArgs),
}

impl Cmd {
    /// Whether the subcommand opens SSH sessions (and so needs a password).
    fn needs_ssh(&self) -> bool {
        !matches!(
            self,
            Cmd::Upstream(_) | Cmd::Scale(_) | Cmd::Cycles(_) | Cmd::WsIdle(_) | Cmd::Rdp(_)
        )
    }
}

/// Resolved connection target.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: String,
    pub label: String,
    pub ssh_host: String,
    pub ssh_port: u16,
    pub user: String,
    pub password: String,
    pub width: u32,
    pub height: u32,
    pub scrollback: u32,
    /// Extra connection parameters (`--param`).
    pub extra: Vec<(&'static str, String)>,
}

impl Target {
    /// The SSH connection parameters.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        vec![
            ("hostname", self.ssh_host.clone()),
            ("port", self.ssh_port.to_string()),
            ("username", self.user.clone()),
            ("password", self.password.clone()),
            ("scrollback", self.scrollback.to_string()),
        ]
        .into_iter()
        .chain(self.extra.iter().cloned())
        .collect()
    }
}

fn resolve(a: &TargetArgs, needs_ssh: bool) -> anyhow::Result<Target> {
    let file = guacr_testkit::peers::env_file();
    let var = |k: &str| std::env::var(k).ok().or_else(|| file.get(k).cloned());
    let password = match a.password.clone().or_else(|| var("GUACR_TEST_PW_PASSWORD")) {
        Some(p) => p,
        None if !needs_ssh => String::new(),
        None => anyhow::bail!(
            "no SSH password: pass --password or start the peers (scripts/test-peers.sh start)"
        ),
    };
    let ssh_port = match a.ssh_port {
        Some(p) => p,
        None => var("GUACR_TEST_SSH_PORT")
            .and_then(|p| p.parse().ok())
            .unwrap_or(2222),
    };
    Ok(Target {
        addr: a.addr.clone(),
        label: a.label.clone().unwrap_or_else(|| a.addr.clone()),
        ssh_host: a
            .ssh_host
            .clone()
            .or_else(|| var("GUACR_TEST_HOST"))
            .unwrap_or_else(|| "127.0.0.1".into()),
        ssh_port,
        user: a
            .user
            .clone()
            .or_else(|| var("GUACR_TEST_PW_USER"))
            .unwrap_or_else(|| "guacr-pw".into()),
        password,
        width: a.width,
        height: a.height,
        scrollback: a.scrollback,
        extra: a
            .params
            .iter()
            .map(|p| {
                let (k, v) = p
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--param {p:?} is not NAME=VALUE"))?;
                // Parameter names live for the whole run of this tool.
                let k: &'static str = Box::leak(k.to_owned().into_boxed_str());
                Ok((k, v.to_owned()))
            })
            .collect::<anyhow::Result<_>>()?,
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let target = resolve(&cli.target, cli.cmd.needs_ssh())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (table, json) = rt.block_on(async {
        match &cli.cmd {
            Cmd::Handshake(a) => bench::handshake(&target, a).await,
            Cmd::Keystroke(a) => bench::keystroke(&target, a).await,
            Cmd::Seq(a) => bench::seq(&target, a).await,
            Cmd::Idle(a) => bench::idle(&target, a).await,
            Cmd::Upstream(a) => soak::upstream(a).await,
            Cmd::Scale(a) => soak::scale(&target, a).await,
            Cmd::Cycles(a) => soak::cycles(&target, a).await,
            Cmd::WsKeystroke(a) => ws::ws_keystroke(&target, a).await,
            Cmd::WsIdle(a) => ws::ws_idle(&target, a).await,
            Cmd::Rdp(a) => rdp::rdp(&target, a).await,
        }
    })?;
    if cli.json {
        eprint!("{table}");
        println!("{}", json.render());
    } else {
        print!("{table}");
    }
    Ok(())
}
