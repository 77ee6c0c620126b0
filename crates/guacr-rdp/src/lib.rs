//! The RDP handler of guacr (on upstream IronRDP).
//!
//! * [`Rdp`] — the `rdp` protocol: IronRDP's connector over tokio (TLS with
//!   rustls, CredSSP/NLA via sspi), the active stage's decoded screen mirrored
//!   into `guacr-display`, pointer shapes as `cursor`, input as fast-path
//!   events.
//! * `settings` — guacd's RDP parameters.
//! * `connect` — the connection sequence and its error statuses.
//! * `keymap` — keysyms to RDP scancodes per `server-layout` (Unicode fallback).
//! * `clipboard` — the CLIPRDR channel (text both ways).
//! * `audio` — the RDPSND channel → Guacamole `audio` streams (audio/L16).

pub mod audio;
pub mod clipboard;
pub mod connect;
pub mod handler;
pub mod input;
pub mod keymap;
pub mod settings;
pub mod tz;

pub use handler::Rdp;
pub use settings::{RDP_ARGS, RdpSettings};
