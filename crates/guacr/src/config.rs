//! Configuration: `guacr.toml`, overridden by guacd's command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The default configuration file, read when it exists and no `--config` is given.
pub const DEFAULT_CONFIG: &str = "/etc/guacr/guacr.toml";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerSection,
    pub daemon: DaemonSection,
    pub ssl: SslSection,
    pub session: SessionSection,
    pub limits: LimitsSection,
    pub admin: AdminSection,
    pub recording: RecordingSection,
    pub tracing: TracingSection,
    pub web: WebSection,
    pub database: DatabaseSection,
}

/// The store behind the web gateway and `guacr user|connection|init`
/// (users, connections, permissions, audit). Resolved by `guacr::store_cli`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite:///var/lib/guacr/guacr.db` or `postgres://user:pass@host:5432/db`.
    /// Unset = env `GUACR_DATABASE_URL`, else `guacr.db` in the data directory
    /// (`$GUACR_DATA_DIR`; `/var/lib/guacr` as root; `~/.local/share/guacr` otherwise).
    pub url: Option<String>,
    /// File holding the key that encrypts connection secrets at rest (32 bytes,
    /// base64 or hex). Env `GUACR_SECRET_KEY` (the key itself) wins; unset =
    /// `secret.key` in the data directory, created (mode 0600) on first run.
    pub secret_key_file: Option<PathBuf>,
    /// Failed logins in a row before an account is locked (0 = never).
    pub lockout_failures: u32,
    /// Minutes a locked account stays locked.
    pub lockout_minutes: u64,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            url: None,
            secret_key_file: None,
            lockout_failures: 5,
            lockout_minutes: 15,
        }
    }
}

/// The web gateway (web client, JSON API, WebSocket/HTTP tunnels).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebSection {
    /// `true`/`false` force it; unset = on only in gateway mode (guacr started
    /// without a configuration file and without `-b`/`-l`), off for guacd
    /// drop-in use. `--web-bind` turns it on, `--no-web` off.
    pub enabled: Option<bool>,
    /// Listen address (default 127.0.0.1:8080).
    pub bind: String,
    /// The built web client; unset = `$GUACR_WEB_DIR`, `<exe>/../share/guacr/web`, `web/dist`.
    pub assets: Option<PathBuf>,
    /// TLS for the web listener (PEM); unset = the `[ssl]` files when set, else plain HTTP.
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// HS256 key of connection tokens (or env `GUACR_TOKEN_SECRET`, or a file).
    pub token_secret: Option<String>,
    pub token_secret_file: Option<PathBuf>,
    /// Minutes of inactivity before a login session ends.
    pub session_idle_minutes: u64,
    /// Hours after which a login session ends in any case.
    pub session_max_hours: u64,
    /// Seconds an instance trusts its copy of a login session before it
    /// checks the database again (a logout on another instance takes
    /// effect within this time).
    pub session_revalidate_seconds: u64,
    /// Login attempts per minute from one address; more get 429.
    pub login_per_ip_per_minute: u32,
    /// Failed logins per minute for one user name; more get 429.
    pub login_per_user_per_minute: u32,
    /// Largest tunnel message (WebSocket message, HTTP tunnel write), bytes.
    pub max_message_bytes: usize,
    /// External base URL, e.g. "https://gw.example.com" (OIDC redirect URIs).
    pub public_url: Option<String>,
    /// Where the web player finds `.guac` recordings (normally the `recording-path`
    /// your connections use).
    pub recordings_dir: Option<PathBuf>,
    /// OpenID Connect providers.
    pub oidc: Vec<OidcSection>,
    /// The WebRTC tunnel (`[web.webrtc]`).
    pub webrtc: WebRtcSection,
}

/// The WebRTC tunnel: data channel + H.264 video for graphical sessions.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebRtcSection {
    /// Offer WebRTC to browsers (they fall back to WebSocket otherwise).
    pub enabled: bool,
    /// Host-candidate addresses (one UDP socket per peer and address);
    /// empty = every non-loopback IPv4 interface address plus 127.0.0.1.
    pub addresses: Vec<String>,
    /// STUN/TURN servers handed to browsers (NAT traversal).
    pub ice_servers: Vec<IceServerSection>,
    /// Send graphical sessions (VNC, RDP) as H.264 video when the browser asks.
    pub video: bool,
    /// Video bitrate ceiling in bit/s (announced as `b=TIAS`, enforced by the encoder).
    pub max_bitrate: u32,
    /// Highest video frame rate.
    pub max_fps: u32,
    /// `auto` (hardware encoders first when compiled in, openh264 last) or `openh264`.
    pub encoder: String,
}

impl Default for WebRtcSection {
    fn default() -> Self {
        WebRtcSection {
            enabled: true,
            addresses: Vec::new(),
            ice_servers: Vec::new(),
            video: true,
            max_bitrate: 4_000_000,
            max_fps: 30,
            encoder: "auto".into(),
        }
    }
}

/// One STUN or TURN server, as in `RTCIceServer`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct IceServerSection {
    /// `stun:host:3478`, `turn:host:3478?transport=udp`, `turns:host:5349`.
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub credential: Option<String>,
}

/// One OpenID Connect provider (authorization code + PKCE).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct OidcSection {
    /// Short id used in URLs (`/api/auth/oidc/<id>/login`).
    pub id: String,
    /// Button text, e.g. "Sign in with Example".
    pub label: String,
    /// Issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Claim used as the guacr user name (default `preferred_username`, then `email`, then `sub`).
    pub username_claim: Option<String>,
    /// Extra scopes besides `openid` (default `profile email`).
    pub scopes: Option<String>,
}

impl Default for WebSection {
    fn default() -> Self {
        WebSection {
            enabled: None,
            bind: "127.0.0.1:8080".into(),
            assets: None,
            certificate: None,
            key: None,
            token_secret: None,
            token_secret_file: None,
            session_idle_minutes: 30,
            session_max_hours: 12,
            session_revalidate_seconds: 30,
            login_per_ip_per_minute: 30,
            login_per_user_per_minute: 10,
            max_message_bytes: 1 << 20,
            public_url: None,
            recordings_dir: None,
            oidc: Vec::new(),
            webrtc: WebRtcSection::default(),
        }
    }
}

/// OpenTelemetry traces (off unless an endpoint is set).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TracingSection {
    /// OTLP/HTTP (protobuf) traces endpoint, e.g. "http://127.0.0.1:4318/v1/traces".
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans (default "guacr").
    pub service_name: Option<String>,
}

/// Session recordings (`recording-path` / `typescript-path` parameters).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingSection {
    /// `terminate` (default: a session that cannot be recorded must not run)
    /// or `continue`. The `recording-failure` parameter may override it.
    pub failure: Option<String>,
    /// X25519 public key file (`guacr recording keygen`): when set, every
    /// recording and typescript is encrypted to it; the daemon cannot read them back.
    pub encrypt_to: Option<PathBuf>,
    /// Upload of finished recordings and typescripts to S3-compatible storage.
    pub upload: Option<UploadSection>,
}

/// `[recording.upload]`: where finished recordings go. The local file is kept until
/// the store confirms it (and deleted then when `delete_local`); pending uploads are
/// journaled in `spool_dir` and resumed after a restart.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UploadSection {
    /// `http(s)://host[:port]` of the S3 API (path-style requests).
    pub endpoint: String,
    pub bucket: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// Prepended to the file name to make the object key.
    #[serde(default)]
    pub prefix: String,
    /// Else the environment variable `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Else `secret_access_key_file`, else `AWS_SECRET_ACCESS_KEY`. Never printed.
    #[serde(skip_serializing)]
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    #[serde(default = "default_spool")]
    pub spool_dir: PathBuf,
    #[serde(default = "default_true")]
    pub delete_local: bool,
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_spool() -> PathBuf {
    PathBuf::from("/var/lib/guacr/upload-spool")
}

fn default_true() -> bool {
    true
}

impl std::fmt::Debug for UploadSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadSection")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("spool_dir", &self.spool_dir)
            .field("delete_local", &self.delete_local)
            .finish_non_exhaustive()
    }
}

impl UploadSection {
    /// The uploader settings, credentials resolved (file or environment).
    pub fn uploader_config(&self) -> anyhow::Result<guacr_record::upload::UploaderConfig> {
        let access_key_id = match &self.access_key_id {
            Some(k) => k.clone(),
            None => std::env::var("AWS_ACCESS_KEY_ID").map_err(|_| {
                anyhow::anyhow!("recording.upload needs access_key_id or AWS_ACCESS_KEY_ID")
            })?,
        };
        let secret_access_key = match (&self.secret_access_key, &self.secret_access_key_file) {
            (Some(s), _) => s.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?
                .trim()
                .to_owned(),
            (None, None) => std::env::var("AWS_SECRET_ACCESS_KEY").map_err(|_| {
                anyhow::anyhow!(
                    "recording.upload needs secret_access_key(_file) or AWS_SECRET_ACCESS_KEY"
                )
            })?,
        };
        let s3 = guacr_record::upload::S3Config {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            prefix: self.prefix.clone(),
            access_key_id,
            secret_access_key,
        };
        guacr_record::upload::S3Client::new(s3.clone())
            .map_err(|e| anyhow::anyhow!("recording.upload: {e}"))?;
        Ok(guacr_record::upload::UploaderConfig {
            s3,
            spool_dir: self.spool_dir.clone(),
            delete_local: self.delete_local,
            retry_delay: Duration::from_secs(2),
            max_retry_delay: Duration::from_secs(300),
        })
    }
}

/// Protective limits. Zero means unlimited.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Live connections (sessions) in total; more get 513 SERVER_BUSY.
    pub max_sessions: usize,
    /// Live connections per protocol, e.g. `{ ssh = 500 }`; more get 513.
    pub max_sessions_per_protocol: std::collections::BTreeMap<String, usize>,
    /// Concurrent client connections from one IP address; more get 797 CLIENT_TOO_MANY.
    pub max_connections_per_ip: usize,
    /// New connections per second from one IP address (token bucket); more get 797.
    pub connection_rate_per_ip: f64,
    /// Burst allowed above the rate.
    pub connection_burst_per_ip: u32,
    /// Seconds allowed for the whole handshake (`select` to `connect`); 776 after.
    pub handshake_timeout: u64,
    /// Largest clipboard (or argv) stream accepted from a client; larger gets 781.
    pub clipboard_max_bytes: usize,
}

/// The admin listener: Prometheus `/metrics`, `/health/live`, `/health/ready`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSection {
    /// e.g. "127.0.0.1:9822"; unset = no admin listener.
    pub bind: Option<String>,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_sessions: 0,
            max_sessions_per_protocol: Default::default(),
            max_connections_per_ip: 0,
            connection_rate_per_ip: 0.0,
            connection_burst_per_ip: 20,
            handshake_timeout: 30,
            clipboard_max_bytes: 262_144,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// guacd default: 127.0.0.1 (`-b`).
    pub bind_host: String,
    /// guacd default: 4822 (`-l`).
    pub bind_port: u16,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SslSection {
    /// `-C`: PEM certificate chain. TLS is on when both are set.
    pub server_certificate: Option<PathBuf>,
    /// `-K`: PEM private key.
    pub server_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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
        if self.limits.connection_rate_per_ip < 0.0
            || !self.limits.connection_rate_per_ip.is_finite()
        {
            anyhow::bail!("limits.connection_rate_per_ip must be a non-negative number");
        }
        if self.limits.handshake_timeout == 0 {
            anyhow::bail!("limits.handshake_timeout must be positive");
        }
        if let Some(f) = &self.recording.failure
            && f.parse::<guacr_record::FailurePolicy>().is_err()
        {
            anyhow::bail!("recording.failure must be \"terminate\" or \"continue\"");
        }
        if let Some(k) = &self.recording.encrypt_to {
            self.recording_key_from(k)?;
        }
        if let Some(u) = &self.recording.upload {
            u.uploader_config()?;
        }
        if let Some(e) = &self.tracing.otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            anyhow::bail!("tracing.otlp_endpoint must be an http:// or https:// URL");
        }
        if let Some(a) = &self.admin.bind {
            a.parse::<SocketAddr>()
                .map_err(|e| anyhow::anyhow!("admin.bind {a:?} is not an address:port: {e}"))?;
        }
        self.web.bind.parse::<SocketAddr>().map_err(|e| {
            anyhow::anyhow!("web.bind {:?} is not an address:port: {e}", self.web.bind)
        })?;
        if self.web.certificate.is_some() != self.web.key.is_some() {
            anyhow::bail!("web TLS needs both web.certificate and web.key");
        }
        for a in &self.web.webrtc.addresses {
            a.parse::<std::net::IpAddr>().map_err(|e| {
                anyhow::anyhow!("web.webrtc.addresses: {a:?} is not an IP address: {e}")
            })?;
        }
        if self.web.webrtc.max_bitrate < 100_000 || self.web.webrtc.max_fps == 0 {
            anyhow::bail!("web.webrtc: max_bitrate must be at least 100000 and max_fps at least 1");
        }
        if !matches!(self.web.webrtc.encoder.as_str(), "auto" | "openh264") {
            anyhow::bail!("web.webrtc.encoder must be \"auto\" or \"openh264\"");
        }
        if self.web.max_message_bytes < 8192 {
            anyhow::bail!("web.max_message_bytes must be at least 8192");
        }
        for o in &self.web.oidc {
            if o.id.is_empty()
                || !o
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                anyhow::bail!("web.oidc id {:?} must be letters, digits, - or _", o.id);
            }
            if !(o.issuer.starts_with("https://") || o.issuer.starts_with("http://")) {
                anyhow::bail!("web.oidc {:?}: issuer must be an http(s) URL", o.id);
            }
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

    fn recording_key_from(&self, path: &Path) -> anyhow::Result<guacr_record::PublicKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read recording key {}: {e}", path.display()))?;
        guacr_record::PublicKey::from_text(&text)
            .map_err(|e| anyhow::anyhow!("invalid recording key {}: {e}", path.display()))
    }

    /// The recording encryption key, if configured.
    pub fn recording_key(&self) -> anyhow::Result<Option<guacr_record::PublicKey>> {
        self.recording
            .encrypt_to
            .as_deref()
            .map(|p| self.recording_key_from(p))
            .transpose()
    }

    /// The daemon's default recording failure policy.
    pub fn recording_failure(&self) -> guacr_record::FailurePolicy {
        self.recording
            .failure
            .as_deref()
            .and_then(|f| f.parse().ok())
            .unwrap_or_default()
    }

    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.handshake_timeout)
    }

    /// The effective configuration as TOML (for `guacr config check`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Converts guacd's `guacd.conf` (INI: `[server] bind_host bind_port`,
    /// `[daemon] pid_file log_level`, `[ssl] server_certificate server_key`).
    pub fn from_guacd_conf(text: &str) -> anyhow::Result<Config> {
        let mut cfg = Config::default();
        let mut section = String::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.trim().to_ascii_lowercase();
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                anyhow::bail!("line {}: expected name = value", n + 1);
            };
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            match (section.as_str(), k) {
                ("server", "bind_host") => cfg.server.bind_host = v.to_owned(),
                ("server", "bind_port") => {
                    cfg.server.bind_port = v
                        .parse()
                        .map_err(|_| anyhow::anyhow!("line {}: invalid bind_port {v:?}", n + 1))?
                }
                ("daemon", "pid_file") => cfg.daemon.pid_file = Some(v.into()),
                ("daemon", "log_level") => cfg.daemon.log_level = v.to_owned(),
                ("ssl", "server_certificate") => cfg.ssl.server_certificate = Some(v.into()),
                ("ssl", "server_key") => cfg.ssl.server_key = Some(v.into()),
                (s, k) => anyhow::bail!("line {}: unknown setting [{s}] {k}", n + 1),
            }
        }
        cfg.validate()?;
        Ok(cfg)
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
        assert!(Config::parse("[admin]\nbind = \"nope\"\n").is_err());
        assert!(Config::parse("[limits]\nconnection_rate_per_ip = -1.0\n").is_err());
        let c = Config::parse("[server]\nbind_host = \"0.0.0.0\"\nbind_port = 5000\n").unwrap();
        assert_eq!(c.bind_addrs().unwrap()[0].port(), 5000);
    }
}

#[cfg(test)]
mod guacd_conf_tests {
    use super::*;

    #[test]
    fn converts_guacd_conf() {
        let c = Config::from_guacd_conf(
            "# guacd.conf\n[server]\nbind_host = 0.0.0.0\nbind_port = 4823\n\n[daemon]\npid_file = /var/run/guacd.pid\nlog_level = debug\n[ssl]\nserver_certificate = /etc/ssl/certs/guacd.crt\nserver_key = /etc/ssl/private/guacd.key\n",
        )
        .unwrap();
        assert_eq!(c.server.bind_host, "0.0.0.0");
        assert_eq!(c.server.bind_port, 4823);
        assert_eq!(c.daemon.log_level, "debug");
        assert!(c.ssl.server_key.is_some());
        let round = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(round, c);
        assert!(Config::from_guacd_conf("[server]\nbind_port = x\n").is_err());
        assert!(Config::from_guacd_conf("[server]\nfoo = 1\n").is_err());
    }

    #[test]
    fn limits_parse() {
        let c = Config::parse("[limits]\nmax_sessions = 5\nmax_sessions_per_protocol = { ssh = 2 }\n[admin]\nbind = \"127.0.0.1:9822\"\n").unwrap();
        assert_eq!(c.limits.max_sessions, 5);
        assert_eq!(c.limits.max_sessions_per_protocol.get("ssh"), Some(&2));
    }
}
