//! Configuration: `guacr.toml`, overridden by guacd's command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The default configuration file, read when it exists and no `--config` is given.
pub const DEFAULT_CONFIG: &str = "/etc/guacr/guacr.toml";

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerSection,
    pub daemon: DaemonSection,
    pub ssl: SslSection,
    pub session: SessionSection,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// guacd default: 127.0.0.1 (`-b`).
    pub bind_host: String,
    /// guacd default: 4822 (`-l`).
    pub bind_port: u16,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonSection {
    /// `-p`
    pub pid_file: Option<PathBuf>,
    /// `-L`: trace, debug, info, warning, error.
    pub log_level: String,
    /// `text` or `json`.
    pub log_format: String,
    /// `-f`: stay in the foreground.
    pub foreground: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SslSection {
    /// `-C`: PEM certificate chain. TLS is on when both are set.
    pub server_certificate: Option<PathBuf>,
    /// `-K`: PEM private key.
    pub server_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSection {
    /// Seconds to wait for sessions to end after SIGTERM before closing them.
    pub shutdown_timeout: u64,
    /// Output bytes queued for one user before it is considered stalled.
    pub max_queued_bytes: usize,
    /// Seconds a client may stay silent before it is disconnected (guacd: 15).
    pub client_timeout: u64,
    /// Seconds of output silence after which a `nop` is sent (guacd: 5).
    pub keepalive_interval: u64,
    /// Minimum milliseconds between terminal frames while output streams.
    pub frame_interval_ms: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            bind_host: "127.0.0.1".into(),
            bind_port: 4822,
        }
    }
}

impl Default for DaemonSection {
    fn default() -> Self {
        DaemonSection {
            pid_file: None,
            log_level: "info".into(),
            log_format: "text".into(),
            foreground: false,
        }
    }
}

impl Default for SessionSection {
    fn default() -> Self {
        SessionSection {
            shutdown_timeout: 30,
            max_queued_bytes: 32 * 1024 * 1024,
            client_timeout: 15,
            keepalive_interval: 5,
            frame_interval_ms: 40,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let cfg: Config = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        crate::logging::parse_level(&self.daemon.log_level)?;
        if !matches!(self.daemon.log_format.as_str(), "text" | "json") {
            anyhow::bail!("daemon.log_format must be \"text\" or \"json\"");
        }
        if self.ssl.server_certificate.is_some() != self.ssl.server_key.is_some() {
            anyhow::bail!("TLS needs both ssl.server_certificate (-C) and ssl.server_key (-K)");
        }
        if self.session.client_timeout == 0 || self.session.keepalive_interval == 0 {
            anyhow::bail!("session.client_timeout and session.keepalive_interval must be positive");
        }
        Ok(())
    }

    /// The address to listen on. Host names are resolved.
    pub fn bind_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        use std::net::ToSocketAddrs;
        let addrs: Vec<SocketAddr> = (self.server.bind_host.as_str(), self.server.bind_port)
            .to_socket_addrs()
            .map_err(|e| {
                anyhow::anyhow!("cannot resolve bind host {:?}: {e}", self.server.bind_host)
            })?
            .collect();
        if addrs.is_empty() {
            anyhow::bail!(
                "bind host {:?} resolves to no address",
                self.server.bind_host
            );
        }
        Ok(addrs)
    }

    pub fn client_timeout(&self) -> Duration {
        Duration::from_secs(self.session.client_timeout)
    }

    pub fn keepalive_interval(&self) -> Duration {
        Duration::from_secs(self.session.keepalive_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_guacd() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.server.bind_host, "127.0.0.1");
        assert_eq!(c.server.bind_port, 4822);
        assert_eq!(c.session.client_timeout, 15);
        assert_eq!(c.session.keepalive_interval, 5);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Config::parse("[daemon]\nlog_level = \"loud\"\n").is_err());
        assert!(Config::parse("[ssl]\nserver_certificate = \"/x\"\n").is_err());
        assert!(Config::parse("[server]\nbogus = 1\n").is_err());
        let c = Config::parse("[server]\nbind_host = \"0.0.0.0\"\nbind_port = 5000\n").unwrap();
        assert_eq!(c.bind_addrs().unwrap()[0].port(), 5000);
    }
}
