//! The Guacamole *client* side, for guacr's integration tests, benchmarks
//! and load tools.
//!
//! * [`GuacClient`] — handshake, receive loop (with `sync` echo), input
//!   (keys, mouse, size, clipboard), and waiting on conditions.
//! * [`Display`] — a model of the client display (layers, buffers, PNG
//!   images, copy/rect/cfill/transfer) with pixel access, screenshots and
//!   text read-back by glyph matching.

mod client;
mod display;
mod image;
pub mod keysym;
mod text;

pub use client::{
    Ack, ArgvValue, ClientState, GuacClient, GuacError, Msg, ReceivedStream, ServerError,
};
pub use display::{
    COMP_OVER, COMP_PLUS, COMP_SRC, Cursor, Display, Layer, MAX_LAYER_DIMENSION, MAX_LAYER_PIXELS,
    TRANSFER_SRC, composite, transfer,
};
pub use guacr_protocol::Instruction;
pub use guacr_protocol::handshake::ClientInfo;
pub use image::{
    BLOB_CHUNK, RgbaImage, blob_instructions, decode_png, encode_png_rgba, img_instructions,
};
pub use text::{CellRead, DEFAULT_CHARSET, ReadTextOptions};
