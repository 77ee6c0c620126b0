//! guacd's RDP connection parameters, parsed and checked.

use guacr_protocol::Status;
use guacr_protocol::handshake::ClientInfo;
use guacr_session::schema::derive_spec;
use guacr_session::{ParamError, ParamKind, ParamSpec, Params, SessionError};

/// Parameter names, in guacd's order (src/protocols/rdp/settings.c), with
/// guacd 1.6's `cert-tofu` and `cert-fingerprints` after `ignore-cert`.
pub const RDP_ARGS: &[&str] = &[
    "hostname",
    "port",
    "domain",
    "username",
    "password",
    "width",
    "height",
    "dpi",
    "initial-program",
    "color-depth",
    "disable-audio",
    "enable-printing",
    "printer-name",
    "enable-drive",
    "drive-name",
    "drive-path",
    "create-drive-path",
    "disable-download",
    "disable-upload",
    "console",
    "console-audio",
    "server-layout",
    "security",
    "ignore-cert",
    "cert-tofu",
    "cert-fingerprints",
    "disable-auth",
    "remote-app",
    "remote-app-dir",
    "remote-app-args",
    "static-channels",
    "client-name",
    "enable-wallpaper",
    "enable-theming",
    "enable-font-smoothing",
    "enable-full-window-drag",
    "enable-desktop-composition",
    "enable-menu-animations",
    "disable-bitmap-caching",
    "disable-offscreen-caching",
    "disable-glyph-caching",
    "preconnection-id",
    "preconnection-blob",
    "timezone",
    "enable-sftp",
    "sftp-hostname",
    "sftp-host-key",
    "sftp-port",
    "sftp-username",
    "sftp-password",
    "sftp-private-key",
    "sftp-passphrase",
    "sftp-directory",
    "sftp-root-directory",
    "sftp-server-alive-interval",
    "sftp-disable-download",
    "sftp-disable-upload",
    "recording-path",
    "recording-name",
    "recording-exclude-output",
    "recording-exclude-mouse",
    "recording-exclude-touch",
    "recording-include-keys",
    "create-recording-path",
    "resize-method",
    "enable-audio-input",
    "enable-touch",
    "read-only",
    "gateway-hostname",
    "gateway-port",
    "gateway-domain",
    "gateway-username",
    "gateway-password",
    "load-balance-info",
    "disable-copy",
    "disable-paste",
    "wol-send-packet",
    "wol-mac-addr",
    "wol-broadcast-addr",
    "wol-udp-port",
    "wol-wait-time",
    "force-lossless",
    "normalize-clipboard",
];

/// guacd's `security` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Whatever the server prefers (NLA, TLS, then standard RDP security).
    Any,
    /// NLA (CredSSP over TLS) only.
    Nla,
    /// NLA with the early user authorization result PDU (HYBRID_EX).
    NlaExt,
    /// TLS (enhanced RDP security without NLA) only.
    Tls,
    /// Standard RDP security.
    Rdp,
    /// Hyper-V VMConnect (NLA plus a preconnection blob).
    VmConnect,
}

impl Security {
    pub fn from_name(name: &str) -> Option<Security> {
        Some(match name {
            "" | "any" => Security::Any,
            "nla" => Security::Nla,
            "nla-ext" => Security::NlaExt,
            "tls" => Security::Tls,
            "rdp" => Security::Rdp,
            "vmconnect" => Security::VmConnect,
            _ => return None,
        })
    }

    /// Which protocols the X.224 negotiation offers: (TLS, CredSSP, standard RDP).
    pub fn protocols(self) -> (bool, bool, bool) {
        match self {
            Security::Any => (true, true, true),
            Security::Nla | Security::NlaExt | Security::VmConnect => (false, true, false),
            Security::Tls => (true, false, false),
            Security::Rdp => (false, false, true),
        }
    }
}

/// guacd's `resize-method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMethod {
    /// The desktop keeps its size (guacd's default: no value).
    None,
    /// The Display Control dynamic channel (RDP 8.1+).
    DisplayUpdate,
    /// Reconnect with the new size.
    Reconnect,
}

/// The performance flags guacd derives from the `enable-*` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Performance {
    pub wallpaper: bool,
    pub theming: bool,
    pub font_smoothing: bool,
    pub full_window_drag: bool,
    pub desktop_composition: bool,
    pub menu_animations: bool,
}

impl Performance {
    /// TS_EXTENDED_INFO_PACKET performanceFlags ([MS-RDPBCGR] 2.2.1.11.1.1.1).
    pub fn flags(&self) -> u32 {
        let mut f = 0;
        if !self.wallpaper {
            f |= 0x0000_0001; // DISABLE_WALLPAPER
        }
        if !self.full_window_drag {
            f |= 0x0000_0002; // DISABLE_FULLWINDOWDRAG
        }
        if !self.menu_animations {
            f |= 0x0000_0004; // DISABLE_MENUANIMATIONS
        }
        if !self.theming {
            f |= 0x0000_0008; // DISABLE_THEMING
        }
        if self.font_smoothing {
            f |= 0x0000_0080; // ENABLE_FONT_SMOOTHING
        }
        if self.desktop_composition {
            f |= 0x0000_0100; // ENABLE_DESKTOP_COMPOSITION
        }
        f
    }
}

/// Smallest and largest desktop side requested from the server.
pub const MIN_SIZE: u32 = 200;
pub const MAX_SIZE: u32 = 8192;

/// Parsed RDP settings.
#[derive(Clone, PartialEq, Eq)]
pub struct RdpSettings {
    pub hostname: String,
    pub port: u16,
    pub domain: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Explicit `width`/`height`/`dpi` (otherwise the owner's `size`).
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub dpi: Option<u32>,
    pub initial_program: Option<String>,
    /// 8, 16, 24 or 32 (default 32: RemoteFX needs it).
    pub color_depth: u32,
    pub disable_audio: bool,
    pub console: bool,
    pub server_layout: Option<String>,
    pub security: Security,
    pub ignore_cert: bool,
    pub cert_tofu: bool,
    /// SHA-256 fingerprints of acceptable server certificates (32 bytes each).
    pub cert_fingerprints: Vec<[u8; 32]>,
    pub disable_auth: bool,
    pub client_name: String,
    pub performance: Performance,
    pub timezone: Option<String>,
    pub resize_method: ResizeMethod,
    pub read_only: bool,
    pub load_balance_info: Option<String>,
    pub disable_copy: bool,
    pub disable_paste: bool,
    /// guacd's `normalize-clipboard`: `preserve` (default), `unix` or `windows`.
    pub normalize_clipboard: Option<String>,
    pub force_lossless: bool,
}

impl std::fmt::Debug for RdpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdpSettings")
            .field("hostname", &self.hostname)
            .field("port", &self.port)
            .field("domain", &self.domain)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("security", &self.security)
            .field("ignore_cert", &self.ignore_cert)
            .field("color_depth", &self.color_depth)
            .field("resize_method", &self.resize_method)
            .finish_non_exhaustive()
    }
}

fn bad(e: ParamError) -> SessionError {
    SessionError::new(e.status(), e.to_string())
}

fn invalid(msg: String) -> SessionError {
    SessionError::new(Status::ClientBadRequest, msg)
}

fn unsupported(msg: &str) -> SessionError {
    SessionError::new(Status::Unsupported, msg)
}

fn optional_u32(p: &Params, name: &str, min: u32, max: u32) -> Result<Option<u32>, SessionError> {
    match p.get(name) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(invalid(format!(
                "invalid value for parameter \"{name}\": {v:?} ({min}..={max})"
            ))),
        },
    }
}

/// Parses `cert-fingerprints`: SHA-256 fingerprints, hex with or without
/// colons, optionally prefixed `sha256:`, separated by commas or spaces.
pub fn parse_fingerprints(s: &str) -> Result<Vec<[u8; 32]>, String> {
    let mut out = Vec::new();
    for word in s
        .split([',', ' ', '\n', '\t', ';'])
        .filter(|w| !w.is_empty())
    {
        let lower = word.to_ascii_lowercase();
        let hex: String = lower
            .strip_prefix("sha256:")
            .or_else(|| lower.strip_prefix("sha-256:"))
            .unwrap_or(&lower)
            .chars()
            .filter(|c| *c != ':')
            .collect();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{word:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
            ));
        }
        let mut fp = [0u8; 32];
        for (i, byte) in fp.iter_mut().enumerate() {
            let pair = hex.get(i * 2..i * 2 + 2).unwrap_or("00");
            *byte = u8::from_str_radix(pair, 16).map_err(|e| e.to_string())?;
        }
        out.push(fp);
    }
    Ok(out)
}

impl RdpSettings {
    pub fn from_params(p: &Params) -> Result<Self, SessionError> {
        let hostname = p.require("hostname").map_err(bad)?.to_owned();
        let port: u16 = p.parse_or("port", 3389).map_err(bad)?;
        if port == 0 {
            return Err(invalid("invalid value for parameter \"port\": 0".into()));
        }
        let color_depth = match p.parse_or::<u32>("color-depth", 0).map_err(bad)? {
            0 => 32,
            d @ (8 | 15 | 16 | 24 | 32) => d,
            d => {
                return Err(invalid(format!(
                    "invalid value for parameter \"color-depth\": {d} (8, 16, 24 or 32)"
                )));
            }
        };
        let security = Security::from_name(p.get_or("security", "any")).ok_or_else(|| {
            invalid(
                "invalid value for parameter \"security\" (any, nla, nla-ext, tls, vmconnect or rdp)"
                    .into(),
            )
        })?;
        let resize_method = match p.get_or("resize-method", "") {
            "" => ResizeMethod::None,
            "display-update" => ResizeMethod::DisplayUpdate,
            "reconnect" => ResizeMethod::Reconnect,
            other => {
                return Err(invalid(format!(
                    "invalid value for parameter \"resize-method\": {other:?} (display-update or reconnect)"
                )));
            }
        };
        let normalize_clipboard = match p.get_or("normalize-clipboard", "") {
            "" | "preserve" => None,
            v @ ("unix" | "windows") => Some(v.to_owned()),
            other => {
                return Err(invalid(format!(
                    "invalid value for parameter \"normalize-clipboard\": {other:?} (preserve, unix or windows)"
                )));
            }
        };
        let cert_fingerprints =
            parse_fingerprints(p.get_or("cert-fingerprints", "")).map_err(|e| {
                invalid(format!(
                    "invalid value for parameter \"cert-fingerprints\": {e}"
                ))
            })?;
        if p.get("remote-app").is_some() {
            return Err(unsupported(
                "RemoteApp (remote-app) is not supported by guacr yet.",
            ));
        }
        if p.get("gateway-hostname").is_some() {
            return Err(unsupported(
                "Remote Desktop Gateway (gateway-hostname) is not supported by guacr yet.",
            ));
        }
        if security == Security::VmConnect || p.get("preconnection-blob").is_some() {
            return Err(unsupported(
                "Hyper-V VMConnect and preconnection blobs are not supported by guacr yet.",
            ));
        }
        let client_name = match p.get("client-name") {
            Some(n) => n.chars().take(15).collect(),
            None => "guacr".to_owned(),
        };
        Ok(RdpSettings {
            hostname,
            port,
            domain: p.get("domain").map(str::to_owned),
            username: p.get("username").map(str::to_owned),
            password: p.get("password").map(str::to_owned),
            width: optional_u32(p, "width", 1, MAX_SIZE)?,
            height: optional_u32(p, "height", 1, MAX_SIZE)?,
            dpi: optional_u32(p, "dpi", 1, 2000)?,
            initial_program: p.get("initial-program").map(str::to_owned),
            color_depth,
            disable_audio: p.flag("disable-audio"),
            console: p.flag("console"),
            server_layout: p.get("server-layout").map(str::to_owned),
            security,
            ignore_cert: p.flag("ignore-cert"),
            cert_tofu: p.flag("cert-tofu"),
            cert_fingerprints,
            disable_auth: p.flag("disable-auth"),
            client_name,
            performance: Performance {
                wallpaper: p.flag("enable-wallpaper"),
                theming: p.flag("enable-theming"),
                font_smoothing: p.flag("enable-font-smoothing"),
                full_window_drag: p.flag("enable-full-window-drag"),
                desktop_composition: p.flag("enable-desktop-composition"),
                menu_animations: p.flag("enable-menu-animations"),
            },
            timezone: p.get("timezone").map(str::to_owned),
            resize_method,
            read_only: p.flag("read-only"),
            load_balance_info: p.get("load-balance-info").map(str::to_owned),
            disable_copy: p.flag("disable-copy"),
            disable_paste: p.flag("disable-paste"),
            normalize_clipboard,
            force_lossless: p.flag("force-lossless"),
        })
    }

    /// The desktop size to ask for: the parameters, else the owner's
    /// `size`, bounded to what RDP servers accept (width even).
    pub fn desktop_size(&self, client: &ClientInfo) -> (u16, u16, u32) {
        let dpi = self.dpi.unwrap_or(client.dpi).clamp(1, 2000);
        let w = self.width.unwrap_or(client.width);
        let h = self.height.unwrap_or(client.height);
        let (w, h) = clamp_size(w, h);
        (w, h, dpi)
    }
}

/// Bounds a requested desktop size (200..=8192, even width).
pub fn clamp_size(w: u32, h: u32) -> (u16, u16) {
    let w = w.clamp(MIN_SIZE, MAX_SIZE) & !1;
    let h = h.clamp(MIN_SIZE, MAX_SIZE);
    (w as u16, h as u16)
}

/// The schema of the RDP parameters for the web editor.
pub fn param_specs() -> Vec<ParamSpec> {
    RDP_ARGS
        .iter()
        .map(|name| {
            let mut s = derive_spec(name);
            match *name {
                "width" | "height" | "dpi" | "preconnection-id" | "gateway-port" | "sftp-port" => {
                    s.kind = ParamKind::Number;
                }
                "color-depth" => {
                    s.kind = ParamKind::Enum;
                    s.options = vec!["8", "16", "24", "32"];
                    s.section = "display";
                }
                "normalize-clipboard" => {
                    s.kind = ParamKind::Enum;
                    s.options = vec!["preserve", "unix", "windows"];
                    s.section = "clipboard";
                }
                "console" | "console-audio" | "cert-tofu" => s.kind = ParamKind::Boolean,
                "gateway-password" | "sftp-password" | "sftp-passphrase" => {
                    s.kind = ParamKind::Password;
                    s.secret = true;
                }
                "sftp-private-key" => {
                    s.kind = ParamKind::Multiline;
                    s.secret = true;
                }
                "cert-fingerprints" | "preconnection-blob" | "static-channels" => {
                    s.kind = ParamKind::Text;
                }
                _ => {}
            }
            match *name {
                "domain" | "disable-auth" => s.section = "authentication",
                "security" | "ignore-cert" | "cert-tofu" | "cert-fingerprints" => {
                    s.section = "authentication"
                }
                "width" | "height" | "color-depth" | "force-lossless" => s.section = "display",
                "normalize-clipboard" => s.section = "clipboard",
                "server-layout" | "timezone" | "client-name" | "console" | "initial-program" => {
                    s.section = "other"
                }
                n if n.starts_with("gateway-") => s.section = "network",
                _ => {}
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<RdpSettings, SessionError> {
        RdpSettings::from_params(&Params::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults() {
        let s = parse(&[("hostname", "h")]).unwrap();
        assert_eq!(s.port, 3389);
        assert_eq!(s.security, Security::Any);
        assert_eq!(s.color_depth, 32);
        assert_eq!(s.resize_method, ResizeMethod::None);
        assert_eq!(s.client_name, "guacr");
        assert!(!s.ignore_cert && !s.read_only && !s.console);
        // guacd's defaults: wallpaper, theming, drag and animations off.
        assert_eq!(s.performance.flags(), 0x0f);
    }

    #[test]
    fn security_modes() {
        for (name, want, protos) in [
            ("any", Security::Any, (true, true, true)),
            ("nla", Security::Nla, (false, true, false)),
            ("nla-ext", Security::NlaExt, (false, true, false)),
            ("tls", Security::Tls, (true, false, false)),
            ("rdp", Security::Rdp, (false, false, true)),
        ] {
            let s = parse(&[("hostname", "h"), ("security", name)]).unwrap();
            assert_eq!(s.security, want);
            assert_eq!(s.security.protocols(), protos, "{name}");
        }
        assert_eq!(
            parse(&[("hostname", "h"), ("security", "vmconnect")])
                .unwrap_err()
                .status,
            Status::Unsupported
        );
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &[("hostname", "h"), ("security", "kerberos")][..],
            &[("hostname", "h"), ("color-depth", "12")],
            &[("hostname", "h"), ("resize-method", "stretch")],
            &[("hostname", "h"), ("port", "0")],
            &[("hostname", "h"), ("port", "x")],
            &[("hostname", "h"), ("width", "0")],
            &[("hostname", "h"), ("width", "99999")],
            &[("hostname", "h"), ("cert-fingerprints", "abc")],
            &[("hostname", "h"), ("normalize-clipboard", "mac")],
            &[("port", "3389")],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.status, Status::ClientBadRequest, "{bad:?}");
        }
        for unsupported in [
            &[("hostname", "h"), ("remote-app", "||notepad")][..],
            &[("hostname", "h"), ("gateway-hostname", "gw")],
        ] {
            assert_eq!(parse(unsupported).unwrap_err().status, Status::Unsupported);
        }
    }

    #[test]
    fn performance_flags() {
        let s = parse(&[
            ("hostname", "h"),
            ("enable-wallpaper", "true"),
            ("enable-theming", "true"),
            ("enable-font-smoothing", "true"),
            ("enable-full-window-drag", "true"),
            ("enable-desktop-composition", "true"),
            ("enable-menu-animations", "true"),
        ])
        .unwrap();
        assert_eq!(s.performance.flags(), 0x180);
    }

    #[test]
    fn fingerprints() {
        let hex = "AB".repeat(32);
        let colons = vec!["cd"; 32].join(":");
        let fps = parse_fingerprints(&format!("{hex}, sha256:{colons}")).unwrap();
        assert_eq!(fps, vec![[0xab; 32], [0xcd; 32]]);
        assert!(parse_fingerprints("").unwrap().is_empty());
        assert!(parse_fingerprints(&"zz".repeat(32)).is_err());
        assert!(parse_fingerprints(&"ab".repeat(31)).is_err());
    }

    #[test]
    fn size_from_client_or_params() {
        let client = ClientInfo {
            width: 1365,
            height: 700,
            dpi: 120,
            ..ClientInfo::default()
        };
        let s = parse(&[("hostname", "h")]).unwrap();
        assert_eq!(s.desktop_size(&client), (1364, 700, 120));
        let s = parse(&[("hostname", "h"), ("width", "800"), ("height", "100")]).unwrap();
        assert_eq!(s.desktop_size(&client), (800, 200, 120));
    }

    #[test]
    fn password_is_not_in_debug() {
        let s = parse(&[("hostname", "h"), ("password", "s3cret")]).unwrap();
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn specs_cover_every_arg() {
        let specs = param_specs();
        assert_eq!(specs.len(), RDP_ARGS.len());
        let kind = |n: &str| specs.iter().find(|s| s.name == n).map(|s| s.kind);
        assert_eq!(kind("security"), Some(ParamKind::Enum));
        assert_eq!(kind("width"), Some(ParamKind::Number));
        assert_eq!(kind("ignore-cert"), Some(ParamKind::Boolean));
        assert_eq!(kind("password"), Some(ParamKind::Password));
        assert_eq!(kind("color-depth"), Some(ParamKind::Enum));
        assert!(
            specs
                .iter()
                .find(|s| s.name == "gateway-password")
                .is_some_and(|s| s.secret)
        );
    }
}
