//! The `vnc` protocol handler: a TCP (optionally TLS) connection to a VNC
//! server driven by the sans-IO RFB client (`guacr-rfb`), with the remote
//! framebuffer mirrored into the graphical display pipeline
//! (`guacr-display`) and sent to every user of the session as Guacamole
//! drawing instructions.

pub mod clipboard;
pub mod handler;
pub mod settings;
mod tls;

pub use clipboard::ClipboardEncoding;
pub use handler::Vnc;
pub use settings::{VNC_ARGS, VncSettings};
