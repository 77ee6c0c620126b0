//! The RDP handler of guacr (on upstream IronRDP).
//!
//! * `keymap` — keysyms to RDP scancodes per `server-layout` (Unicode fallback).
//! * `clipboard` — the CLIPRDR channel (text both ways).
//! * `audio` — the RDPSND channel → Guacamole `audio` streams (audio/L16).

pub mod audio;
pub mod clipboard;
pub mod keymap;
