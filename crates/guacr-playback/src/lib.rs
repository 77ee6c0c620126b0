//! Guacamole display model, `.guac` recording playback, and rendering of
//! recordings to video (what guacenc does).
//!
//! * [`Display`] — a model of the client display (layers, buffers, PNG/JPEG/
//!   WebP images, copy/rect/cfill/transfer) with pixel access, screenshots
//!   and text read-back by glyph matching ([`Display::read_text`]).
//! * [`Player`] — plays a recording onto a [`Display`]: frames on the `sync`
//!   timeline, seeking (with periodic keyframe snapshots), screenshots at a
//!   time, and the recorded key/mouse input.
//! * [`render_video`] — encodes a recording to MP4 (H.264) or WebM (VP9)
//!   with an `ffmpeg` child process.

mod display;
mod image;
mod mkv;
mod player;
mod text;
mod video;
mod yuv;

pub use display::{
    COMP_OVER, COMP_PLUS, COMP_SRC, Cursor, Display, Layer, MAX_LAYER_DIMENSION, MAX_LAYER_PIXELS,
    MAX_WARNINGS, TRANSFER_SRC, composite, is_unbounded, transfer,
};
pub use image::{
    BLOB_CHUNK, RgbaImage, blob_instructions, decode_image, decode_jpeg, decode_png, decode_webp,
    encode_png_rgba, img_instructions,
};
pub use player::{
    DEFAULT_KEYFRAME_BUDGET, DEFAULT_KEYFRAME_INTERVAL_MS, FrameInfo, InputEvent, Player,
    RecordedInput,
};
pub use text::{CellRead, DEFAULT_CHARSET, ReadTextOptions};
pub use video::{RenderError, RenderOptions, RenderStats, VideoFormat, render_video};
