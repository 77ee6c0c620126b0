//! The loopback test peers' environment, written by `scripts/test-peers.sh start`
//! as `export K=V` lines in `$GUACR_PEERS_DIR/env` (default /var/tmp/guacr-peers).

use std::collections::HashMap;

fn unescape_shell(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else if c != '\'' && c != '"' {
            out.push(c);
        }
    }
    out
}

/// Parses `export K=V` lines (shell-escaped values).
pub fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), unescape_shell(v)))
        .collect()
}

/// The peers' env file (empty when it does not exist).
pub fn env_file() -> HashMap<String, String> {
    let dir = std::env::var("GUACR_PEERS_DIR").unwrap_or_else(|_| "/var/tmp/guacr-peers".into());
    parse_env(&std::fs::read_to_string(format!("{dir}/env")).unwrap_or_default())
}

/// A variable from the process environment, else from the env file.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| env_file().get(name).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shell_escaped_exports() {
        let env = parse_env(
            "# comment\nexport A=1\nexport PROMPT=guacr\\$\\ \nexport K=ssh-ed25519\\ AAAA\nnot an export\n",
        );
        assert_eq!(env["A"], "1");
        assert_eq!(env["PROMPT"], "guacr$ ");
        assert_eq!(env["K"], "ssh-ed25519 AAAA");
        assert_eq!(env.len(), 3);
    }
}
