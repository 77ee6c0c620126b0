//! The X side of graphical tests: a selection owner on a test display.

use std::io::Write;
use std::process::{Child, Command, Stdio};

/// Owns an X selection (`clipboard`, `primary`, …) with a text, through
/// `xclip -quiet`, until dropped.
pub struct Selection(Child);

impl Selection {
    /// Starts owning `selection` on `display` with `text` (`xclip` comes
    /// with the VNC and RDP peer plug-ins).
    pub fn set(display: &str, selection: &str, text: &str) -> anyhow::Result<Selection> {
        use anyhow::Context;
        let child = Command::new("xclip")
            .args(["-quiet", "-selection", selection])
            .env("DISPLAY", display)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("running xclip (installed by scripts/test-peers.sh install)")?;
        // Owned before the write: a failed write still ends xclip on drop.
        let mut owner = Selection(child);
        if let Some(mut stdin) = owner.0.stdin.take() {
            stdin
                .write_all(text.as_bytes())
                .context("writing the selection text to xclip")?;
        }
        Ok(owner)
    }
}

impl Drop for Selection {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
