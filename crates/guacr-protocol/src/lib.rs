//! Sans-IO implementation of the Guacamole protocol as spoken by Apache guacd 1.5.
//!
//! * [`Parser`] — a streaming, resumable parser over byte buffers that yields
//!   zero-copy [`InstructionRef`] views (element lengths in Unicode code points,
//!   guacd's limits of 8192 code points per element and 128 elements).
//! * [`InstructionWriter`] / [`encode`] — an encoder into a reusable `Vec<u8>`.
//! * [`ServerInstruction`] / [`ClientInstruction`] — typed instructions for every
//!   opcode of the protocol, both directions.
//! * [`handshake`] — the `select` / `args` / `connect` / `ready` state machine.
//! * [`Status`] — the protocol status codes.
//!
//! Nothing in this crate performs I/O or depends on an async runtime.

pub mod base64;
mod encoder;
pub mod handshake;
mod instruction;
mod parser;
mod status;
mod typed;
mod version;

pub use encoder::{Element, InstructionWriter, codepoint_len, encode};
pub use instruction::{Instruction, InstructionRef};
pub use parser::{
    MAX_ELEMENT_CODEPOINTS, MAX_ELEMENTS, MAX_INSTRUCTION_BYTES, ParseError, Parser, parse_all,
};
pub use status::Status;
pub use typed::{ClientInstruction, FieldError, ServerInstruction};
pub use version::ProtocolVersion;

/// Composite operation: source over destination (`GUAC_COMP_OVER`).
pub const COMP_OVER: i32 = 14;
/// Composite operation: source replaces destination (`GUAC_COMP_SRC`).
pub const COMP_SRC: i32 = 12;

/// `msg` code: a user joined the connection (args: user id, user name).
pub const MSG_USER_JOINED: u32 = 1;
/// `msg` code: a user left the connection (args: user id, user name).
pub const MSG_USER_LEFT: u32 = 2;
