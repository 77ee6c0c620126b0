//! Parameter schemas: what a handler's `args` mean, for forms in a web UI.
//!
//! [`Protocol::param_specs`](crate::Protocol::param_specs) derives a schema
//! from the argument names with [`derive_specs`]; handlers may override it.

/// How a parameter is edited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Text,
    Password,
    Number,
    Boolean,
    Enum,
    Multiline,
}

impl ParamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::Text => "text",
            ParamKind::Password => "password",
            ParamKind::Number => "number",
            ParamKind::Boolean => "boolean",
            ParamKind::Enum => "enum",
            ParamKind::Multiline => "multiline",
        }
    }
}

/// One parameter of a protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub label: String,
    pub kind: ParamKind,
    /// Allowed values of an [`ParamKind::Enum`].
    pub options: Vec<&'static str>,
    pub default: Option<&'static str>,
    /// `network`, `authentication`, `display`, `terminal`, `recording`,
    /// `clipboard`, `sftp`, `wol` or `other`.
    pub section: &'static str,
    /// Stored encrypted and never shown back.
    pub secret: bool,
}

const SECRETS: &[&str] = &["password", "passphrase", "private-key"];
const NUMBERS: &[&str] = &[
    "port",
    "font-size",
    "scrollback",
    "server-alive-interval",
    "wol-udp-port",
    "wol-wait-time",
];

fn section_of(name: &str) -> &'static str {
    match name {
        "hostname" | "port" | "host-key" | "server-alive-interval" | "timezone" | "locale" => {
            "network"
        }
        "username"
        | "password"
        | "private-key"
        | "passphrase"
        | "username-regex"
        | "password-regex"
        | "login-success-regex"
        | "login-failure-regex" => "authentication",
        "font-name" | "font-size" | "color-scheme" | "scrollback" | "read-only"
        | "resize-method" | "dpi" => "display",
        "command" | "backspace" | "terminal-type" => "terminal",
        "disable-copy" | "disable-paste" => "clipboard",
        n if n.starts_with("recording-")
            || n.starts_with("typescript-")
            || n.starts_with("create-recording")
            || n.starts_with("create-typescript") =>
        {
            "recording"
        }
        n if n.starts_with("sftp-") || n == "enable-sftp" => "sftp",
        n if n.starts_with("wol-") => "wol",
        _ => "other",
    }
}

fn is_boolean(name: &str) -> bool {
    name == "read-only"
        || name.starts_with("enable-")
        || name.starts_with("disable-")
        || name.starts_with("create-")
        || name.starts_with("recording-exclude-")
        || name.starts_with("recording-include-")
        || name.starts_with("sftp-disable-")
        || name == "wol-send-packet"
        || name == "ignore-cert"
}

fn enum_options(name: &str) -> Option<(Vec<&'static str>, Option<&'static str>)> {
    match name {
        "color-scheme" => Some((
            vec!["gray-black", "black-white", "green-black", "white-black"],
            Some("gray-black"),
        )),
        "backspace" => Some((vec!["127", "8"], Some("127"))),
        "terminal-type" => Some((
            vec!["xterm", "xterm-256color", "vt220", "vt100", "ansi", "linux"],
            Some("linux"),
        )),
        "security" => Some((
            vec!["any", "nla", "nla-ext", "tls", "vmconnect", "rdp"],
            Some("any"),
        )),
        "resize-method" => Some((vec!["display-update", "reconnect"], None)),
        _ => None,
    }
}

fn label_of(name: &str) -> String {
    let mut label = String::with_capacity(name.len());
    for (i, word) in name.split('-').enumerate() {
        if i > 0 {
            label.push(' ');
        }
        let mut chars = word.chars();
        if i == 0 {
            if let Some(c) = chars.next() {
                label.extend(c.to_uppercase());
            }
            label.push_str(chars.as_str());
        } else {
            label.push_str(word);
        }
    }
    match name {
        "sftp-root-directory" => "SFTP root directory".into(),
        "enable-sftp" => "Enable SFTP".into(),
        "wol-mac-addr" => "Wake-on-LAN MAC address".into(),
        _ => label,
    }
}

/// One spec from a parameter name, with kinds guessed from guacd's naming.
pub fn derive_spec(name: &'static str) -> ParamSpec {
    let secret = SECRETS.contains(&name);
    let (kind, options, default) = if name == "private-key" {
        (ParamKind::Multiline, Vec::new(), None)
    } else if secret {
        (ParamKind::Password, Vec::new(), None)
    } else if let Some((options, default)) = enum_options(name) {
        (ParamKind::Enum, options, default)
    } else if NUMBERS.contains(&name) {
        (ParamKind::Number, Vec::new(), None)
    } else if is_boolean(name) {
        (ParamKind::Boolean, Vec::new(), None)
    } else if name == "host-key" {
        (ParamKind::Multiline, Vec::new(), None)
    } else {
        (ParamKind::Text, Vec::new(), None)
    };
    ParamSpec {
        name,
        label: label_of(name),
        kind,
        options,
        default,
        section: section_of(name),
        secret,
    }
}

/// Specs for every name, in order.
pub fn derive_specs(names: &[&'static str]) -> Vec<ParamSpec> {
    names.iter().map(|n| derive_spec(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names() {
        let s = derive_specs(&[
            "hostname",
            "port",
            "password",
            "private-key",
            "read-only",
            "color-scheme",
            "enable-sftp",
            "recording-path",
        ]);
        let kinds: Vec<ParamKind> = s.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ParamKind::Text,
                ParamKind::Number,
                ParamKind::Password,
                ParamKind::Multiline,
                ParamKind::Boolean,
                ParamKind::Enum,
                ParamKind::Boolean,
                ParamKind::Text
            ]
        );
        assert!(s[2].secret && s[3].secret && !s[0].secret);
        assert_eq!(s[0].label, "Hostname");
        assert_eq!(s[7].section, "recording");
        assert_eq!(s[5].default, Some("gray-black"));
    }
}
