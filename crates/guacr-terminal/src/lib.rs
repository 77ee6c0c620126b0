//! Sans-IO terminal emulation rendered to Guacamole drawing instructions.
//!
//! Shared by the SSH, Telnet and database handlers: [`Terminal`] wraps an
//! xterm-compatible emulator (alacritty_terminal), maps Guacamole key and
//! mouse events to bytes, and renders the screen as Guacamole instructions
//! with damage tracking, `copy`-based scrolling and a client-side glyph cache.
//!
//! ```
//! use guacr_terminal::{Terminal, TerminalConfig};
//! let mut term = Terminal::new(TerminalConfig::default()).unwrap();
//! term.feed(b"hello\r\n$ ");
//! let mut out = Vec::new();
//! term.render_frame(&mut out); // then the driver appends `sync`
//! assert!(!out.is_empty());
//! ```

pub mod color;
pub mod font;
pub mod keys;
mod render;
mod terminal;

pub use color::{ColorScheme, ColorSchemeError, Rgb};
pub use font::{FontSet, GlyphKey};
pub use render::{GLYPH_CACHE_SLOTS, GLYPH_LAYER};
pub use terminal::{MouseResult, Terminal, TerminalConfig};

/// Errors creating or reconfiguring a terminal.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TerminalError {
    #[error("invalid font size {0}")]
    InvalidFontSize(f32),
    #[error("no usable font")]
    FontUnavailable,
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_is_send_and_fontset_is_shared() {
        fn send<T: Send>() {}
        fn sync<T: Send + Sync>() {}
        send::<crate::Terminal>();
        sync::<crate::FontSet>();
    }
}
