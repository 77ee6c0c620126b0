//! The Guacamole *client* side, for guacr's integration tests, benchmarks
//! and load tools.
//!
//! * [`GuacClient`] — handshake, receive loop (with `sync` echo), input
//!   (keys, mouse, size, clipboard), and waiting on conditions.
//! * [`Display`] (from `guacr-playback`) — a model of the client display (layers, buffers, PNG
//!   images, copy/rect/cfill/transfer) with pixel access, screenshots and
//!   text read-back by glyph matching.

mod client;
pub mod keysym;
pub mod peers;
pub mod x11;

pub use client::{
    Ack, ArgvValue, ClientState, GuacClient, GuacError, Msg, ReceivedStream, ServerError,
};
// The display model lives in guacr-playback (shared with recording playback).
pub use guacr_playback::{
    BLOB_CHUNK, COMP_OVER, COMP_PLUS, COMP_SRC, CellRead, Cursor, DEFAULT_CHARSET, Display, Layer,
    MAX_LAYER_DIMENSION, MAX_LAYER_PIXELS, ReadTextOptions, RgbaImage, TRANSFER_SRC,
    blob_instructions, composite, decode_png, encode_png_rgba, img_instructions, transfer,
};
pub use guacr_protocol::Instruction;
pub use guacr_protocol::handshake::ClientInfo;
