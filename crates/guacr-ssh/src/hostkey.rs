//! `host-key` parameter / known_hosts parsing and matching.

use russh::keys::PublicKey;
use russh::keys::ssh_key::public::KeyData;

/// Why a known_hosts text could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostKeyError {
    #[error("no public key found in {0:?}")]
    NoKey(String),
}

#[derive(Debug, Clone)]
struct Entry {
    /// Host patterns (`host`, `[host]:port`, `*`); empty matches any host.
    hosts: Vec<String>,
    key: KeyData,
}

/// Keys trusted for a server, from known_hosts lines.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    /// Parses known_hosts lines: `[hosts] keytype base64 [comment]`.
    /// Comments, blank lines, hashed hosts and `@`-markers other than none are skipped.
    pub fn parse(text: &str) -> Result<KnownHosts, HostKeyError> {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Find "keytype base64": the first field that decodes as a key after a type.
            let mut found = None;
            for i in 0..fields.len().saturating_sub(1) {
                if let Ok(k) = russh::keys::parse_public_key_base64(fields[i + 1])
                    && (k.algorithm().as_str() == fields[i]
                        || fields[i].starts_with("ssh-")
                        || fields[i].starts_with("ecdsa-"))
                {
                    found = Some((i, k));
                    break;
                }
            }
            let Some((i, key)) = found else { continue };
            let hosts = if i == 0 {
                Vec::new()
            } else {
                fields[0].split(',').map(str::to_owned).collect()
            };
            entries.push(Entry {
                hosts,
                key: key.key_data().clone(),
            });
        }
        if entries.is_empty() {
            return Err(HostKeyError::NoKey(text.chars().take(60).collect()));
        }
        Ok(KnownHosts { entries })
    }

    fn host_matches(patterns: &[String], host: &str, port: u16) -> bool {
        if patterns.is_empty() {
            return true;
        }
        let bracketed = format!("[{host}]:{port}");
        let mut matched = false;
        for p in patterns {
            let (neg, p) = match p.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, p.as_str()),
            };
            let hit = if port == 22 {
                glob(p, host) || p == bracketed
            } else {
                p == bracketed || glob(p, &bracketed)
            };
            if hit {
                if neg {
                    return false;
                }
                matched = true;
            }
        }
        matched
    }

    /// Whether `key` is trusted for `host:port`.
    pub fn matches(&self, key: &PublicKey, host: &str, port: u16) -> bool {
        self.matches_key_data(key.key_data(), host, port)
    }

    pub fn matches_key_data(&self, key: &KeyData, host: &str, port: u16) -> bool {
        self.entries
            .iter()
            .any(|e| &e.key == key && Self::host_matches(&e.hosts, host, port))
    }
}

/// known_hosts wildcard matching (`*` and `?`).
fn glob(pattern: &str, text: &str) -> bool {
    fn rec(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], t) || (!t.is_empty() && rec(p, &t[1..])),
            (Some(b'?'), Some(_)) => rec(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => rec(&p[1..], &t[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnXN/Pg3E0yHQSm2/5sBRDGQKvSW44zHiDTjxaP3vIS";

    fn key(line: &str) -> PublicKey {
        let b64 = line.split_whitespace().nth(1).unwrap();
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    #[test]
    fn bare_key_matches_any_host() {
        let k = KnownHosts::parse(KEY_A).unwrap();
        assert!(k.matches(&key(KEY_A), "example", 22));
        assert!(!k.matches(&key(KEY_B), "example", 22));
    }

    #[test]
    fn host_patterns_and_ports() {
        let k = KnownHosts::parse(&format!(
            "# c\n[127.0.0.1]:2222 {KEY_A}\nhost*.lan,!hostx.lan {KEY_B} comment\n"
        ))
        .unwrap();
        assert!(k.matches(&key(KEY_A), "127.0.0.1", 2222));
        assert!(!k.matches(&key(KEY_A), "127.0.0.1", 22));
        assert!(k.matches(&key(KEY_B), "host1.lan", 22));
        assert!(!k.matches(&key(KEY_B), "hostx.lan", 22));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(KnownHosts::parse("not a key").is_err());
        assert!(KnownHosts::parse("").is_err());
    }
}
