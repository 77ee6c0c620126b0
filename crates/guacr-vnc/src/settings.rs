//! guacd's VNC connection parameters.

use guacr_protocol::Status;
use guacr_session::{ParamError, Params, SessionError};

use crate::clipboard::ClipboardEncoding;

/// Parameter names, in guacd 1.5's order (src/protocols/vnc/settings.c).
pub const VNC_ARGS: &[&str] = &[
    "hostname",
    "port",
    "read-only",
    "encodings",
    "username",
    "password",
    "swap-red-blue",
    "color-depth",
    "cursor",
    "autoretry",
    "clipboard-encoding",
    "dest-host",
    "dest-port",
    "enable-audio",
    "audio-servername",
    "reverse-connect",
    "listen-timeout",
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
    "recording-include-keys",
    "create-recording-path",
    "disable-copy",
    "disable-paste",
    "wol-send-packet",
    "wol-mac-addr",
    "wol-broadcast-addr",
    "wol-udp-port",
    "wol-wait-time",
    "force-lossless",
];

/// Largest `autoretry` honoured (guacd has no limit; a bound keeps a
/// misconfigured connection from retrying for hours).
pub const MAX_RETRIES: u32 = 100;

/// Parsed VNC settings.
#[derive(Clone, PartialEq, Eq)]
pub struct VncSettings {
    pub hostname: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub read_only: bool,
    /// The `encodings` parameter, space separated names (guacd/libvncclient
    /// names: raw copyrect hextile zrle tight …); `None` = all supported.
    pub encodings: Option<Vec<String>>,
    pub swap_red_blue: bool,
    /// 8, 16, 24 or 32; `None` = the server's native format.
    pub color_depth: Option<u8>,
    /// `cursor=remote`: the server draws the cursor into the framebuffer
    /// (no cursor pseudo-encoding); default `local` (a `cursor` instruction).
    pub remote_cursor: bool,
    pub autoretry: u32,
    pub clipboard_encoding: ClipboardEncoding,
    pub disable_copy: bool,
    pub disable_paste: bool,
    pub force_lossless: bool,
}

impl std::fmt::Debug for VncSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VncSettings")
            .field("hostname", &self.hostname)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("read_only", &self.read_only)
            .field("encodings", &self.encodings)
            .field("color_depth", &self.color_depth)
            .finish_non_exhaustive()
    }
}

fn bad(e: ParamError) -> SessionError {
    SessionError::new(e.status(), e.to_string())
}

fn invalid(msg: String) -> SessionError {
    SessionError::new(Status::ClientBadRequest, msg)
}

impl VncSettings {
    pub fn from_params(p: &Params) -> Result<Self, SessionError> {
        let hostname = p.require("hostname").map_err(bad)?.to_owned();
        let port: u16 = p.parse_or("port", 5900).map_err(bad)?;
        if port == 0 {
            return Err(invalid("invalid value for parameter \"port\": 0".into()));
        }
        let color_depth = match p.parse_or::<u8>("color-depth", 0).map_err(bad)? {
            0 => None,
            d @ (8 | 16 | 24 | 32) => Some(d),
            d => {
                return Err(invalid(format!(
                    "invalid value for parameter \"color-depth\": {d} (8, 16, 24 or 32)"
                )));
            }
        };
        let remote_cursor = match p.get_or("cursor", "local") {
            "remote" => true,
            "local" => false,
            other => {
                return Err(invalid(format!(
                    "invalid value for parameter \"cursor\": {other:?} (local or remote)"
                )));
            }
        };
        let clipboard_encoding = ClipboardEncoding::from_name(p.get_or("clipboard-encoding", ""))
            .ok_or_else(|| {
                invalid(
                    "invalid value for parameter \"clipboard-encoding\" (ISO8859-1, UTF-8, UTF-16 or CP1252)"
                        .into(),
                )
            })?;
        let autoretry: u32 = p.parse_or("autoretry", 0).map_err(bad)?;
        if p.flag("reverse-connect") {
            return Err(SessionError::new(
                Status::Unsupported,
                "reverse-connect (listening for the VNC server) is not supported by guacr yet.",
            ));
        }
        if p.get("dest-host").is_some() {
            return Err(SessionError::new(
                Status::Unsupported,
                "VNC repeaters (dest-host/dest-port) are not supported by guacr yet.",
            ));
        }
        let encodings = p.get("encodings").map(|s| {
            s.split_whitespace()
                .map(|e| e.to_ascii_lowercase())
                .collect::<Vec<_>>()
        });
        Ok(VncSettings {
            hostname,
            port,
            username: p.get("username").map(str::to_owned),
            password: p.get("password").map(str::to_owned),
            read_only: p.flag("read-only"),
            encodings,
            swap_red_blue: p.flag("swap-red-blue"),
            color_depth,
            remote_cursor,
            autoretry: autoretry.min(MAX_RETRIES),
            clipboard_encoding,
            disable_copy: p.flag("disable-copy"),
            disable_paste: p.flag("disable-paste"),
            force_lossless: p.flag("force-lossless"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<VncSettings, SessionError> {
        VncSettings::from_params(&Params::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults() {
        let s = parse(&[("hostname", "h")]).unwrap();
        assert_eq!(s.port, 5900);
        assert_eq!(s.color_depth, None);
        assert!(!s.remote_cursor && !s.read_only && !s.force_lossless);
        assert_eq!(s.clipboard_encoding, ClipboardEncoding::Iso8859_1);
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            &[("hostname", "h"), ("color-depth", "12")][..],
            &[("hostname", "h"), ("cursor", "both")],
            &[("hostname", "h"), ("clipboard-encoding", "EBCDIC")],
            &[("hostname", "h"), ("port", "x")],
            &[("hostname", "h"), ("port", "0")],
            &[("port", "5900")],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.status, Status::ClientBadRequest, "{bad:?}");
        }
        let e = parse(&[("hostname", "h"), ("reverse-connect", "true")]).unwrap_err();
        assert_eq!(e.status, Status::Unsupported);
    }

    #[test]
    fn password_is_not_in_debug() {
        let s = parse(&[("hostname", "h"), ("password", "s3cret")]).unwrap();
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
