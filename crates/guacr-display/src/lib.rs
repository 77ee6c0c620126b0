//! The graphical display pipeline of guacr (VNC, RDP, browser isolation):
//! an opaque framebuffer with damage tracking, turned frame by frame into
//! Guacamole drawing instructions.
//!
//! # Public API (stable: later changes are additive only)
//!
//! * Pixels are `u32` **`0x00RRGGBB`** ([`rgb`], [`split_rgb`]); the top byte is
//!   ignored. In memory (little-endian) that is the byte order B, G, R, X —
//!   [`PixelFormat::Bgrx32`], which is what an RFB server sends for the pixel
//!   format 32 bpp / depth 24 / little-endian / true colour / shifts R16 G8 B0,
//!   so such rectangles are copied without conversion. Other byte layouts:
//!   [`PixelFormat`].
//! * [`Display::new`]`(`[`DisplayConfig`]`)` → `Result<Display, DisplayError>`.
//!   Sizes are checked ([`MAX_DIMENSION`], [`MAX_PIXELS`]; 0 is refused) before
//!   anything is allocated; [`DisplayError::status`] gives the Guacamole status
//!   to report (515 UPSTREAM_ERROR: the remote desktop sent it).
//! * Mutations from the upstream, applied to the framebuffer at once, sent at
//!   the next frame (all return `Result<(), DisplayError>`, never panic):
//!   - [`Display::put_pixels`]`(x, y, w, h, &[u32], stride_in_pixels)`
//!   - [`Display::put_bytes`]`(x, y, w, h, &[u8], stride_in_bytes, PixelFormat)`
//!   - [`Display::fill`]`(x, y, w, h, color)`
//!   - [`Display::copy`]`(src_x, src_y, x, y, w, h)` — CopyRect: sent as a
//!     Guacamole `copy`, not as pixels.
//!   - [`Display::resize`]`(w, h)` — keeps the top-left content.
//!   - [`Display::set_cursor`]`(hotspot_x, hotspot_y, w, h, &rgba)` — RGBA
//!     bytes, straight (non-premultiplied) alpha; sent as `size`/`img` on an
//!     off-screen buffer ([`DisplayConfig::cursor_layer`], default -1) plus
//!     `cursor`. `w == 0 || h == 0` (or [`Display::hide_cursor`]) hides it.
//! * Frames: [`Display::take_frame`]`(&mut Vec<u8>) -> FrameStats` appends the
//!   instructions for everything changed since the previous frame (blocking
//!   the caller while the worker pool encodes); [`Display::take_frame_async`]
//!   is the same without blocking an async runtime thread (the work runs on
//!   the [`EncodePool`], the future only waits; cancel-safe). Neither writes
//!   `sync`: call `Session::end_frame()` after broadcasting a non-empty frame.
//!   Call them at most at your frame rate ([`DisplayConfig::frame_interval`]);
//!   everything changed in between is coalesced and encoded once.
//!   [`Display::has_changes`] says whether a frame would be non-empty.
//! * Joiners: [`Display::full_repaint`]`(&mut Vec<u8>)` writes `size` + the
//!   whole screen + the cursor as the other users currently see it (so the
//!   next broadcast frame applies cleanly on top); send it with
//!   `Session::send_to` then `Session::sync_user`. It uses per-user stream
//!   index 2, broadcast frames use odd stream indices.
//! * Lag: [`Display::set_lag`]`(Duration)` or [`Display::note_timing`]`(max_unacked,
//!   max_lag)` with `Session::timing()` figures; JPEG quality goes from
//!   [`DisplayConfig::jpeg_quality_max`] (no lag) down to
//!   [`DisplayConfig::jpeg_quality_min`] (≥ 1 s behind).
//! * [`Display::invalidate`] repaints everything at the next frame.
//! * Lossless refinement: JPEG areas are resent as PNG once unchanged for
//!   [`REFINE_AFTER`] ([`Display::set_refine_after`]). [`Display::has_changes`]
//!   turns true when one is due; [`Display::next_refinement`] says when, so
//!   an idle handler should wake up then and take a frame.
//! * Also: [`Display::width`]/[`Display::height`], [`Display::framebuffer`]
//!   (a copy) / [`Display::with_framebuffer`], [`Display::set_image_mimetypes`]
//!   and [`Display::set_lossless`] (e.g. when users with other capabilities
//!   join), [`Display::full_repaint_async`], [`FrameStats`] (what a frame
//!   contained: bytes, copies, scrolls, fills, PNGs, JPEGs, refinements...),
//!   [`Damage`] and [`Rect`] (bounded dirty-rectangle list), [`Framebuffer`].
//!
//! # Per frame
//! 1. `size` of layer 0 if the desktop was resized.
//! 2. `copy` for every CopyRect, in order.
//! 3. Scroll detection: a dirty region whose rows equal the previous frame's
//!    rows shifted vertically becomes one `copy` (the xterm scroll).
//! 4. What still differs from what clients have (a shadow framebuffer) is
//!    cut into tiles, merged into rectangles and each is sent as
//!    `rect`+`cfill` (one colour), PNG (few colours: palette PNG; else RGB
//!    PNG) or JPEG (many colours, large enough, `image/jpeg` announced, not
//!    lossless). JPEG areas are resent as PNG once they stop changing
//!    (lossless refinement), so a still screen always ends up exact.
//! 5. The cursor, if it changed.
//!
//! Images are `img` streams with composite mode OVER (14) on layer 0 (the
//! browser maps SRC to canvas `copy`, which would erase the rest of the
//! layer), `blob`s of at most 6048 raw bytes, then `end`. WebP is not
//! produced: no pure-Rust lossy WebP encoder exists; PNG and JPEG only.
//!
//! Encoding runs on a bounded [`EncodePool`] (rayon; by default one shared
//! process-wide pool with as many threads as CPUs, at most 4), never on the
//! async runtime.

mod display;
mod encode;
mod framebuffer;
mod pool;
mod rect;
mod scroll;
mod tuning;
mod wire;

use std::sync::Arc;
use std::time::Duration;

pub use display::{Display, FrameStats, REFINE_AFTER};
pub use framebuffer::{Framebuffer, PixelFormat, check_size, rgb, split_rgb};
pub use pool::{EncodePool, SHARED_POOL_MAX_THREADS};
pub use rect::{Damage, Rect};
pub use tuning::{GraphicalTuning, Tuning};

use guacr_protocol::Status;

/// Largest accepted width or height (guacamole-common-js / guacd limit canvases similarly).
pub const MAX_DIMENSION: u32 = 16384;
/// Largest accepted number of pixels (a bit more than 7680×4320).
pub const MAX_PIXELS: u64 = 1 << 25;
/// Largest accepted cursor width or height.
pub const MAX_CURSOR_DIMENSION: u32 = 1024;
/// Raw bytes per `blob` (as guacd).
pub const BLOB_MAX: usize = 6048;
/// Broadcast image stream index (odd: broadcast).
pub const BROADCAST_STREAM: i32 = 1;
/// Per-user image stream index used by [`Display::full_repaint`] (even: per user).
pub const USER_STREAM: i32 = 2;

/// Why a display operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayError {
    #[error(
        "invalid display size {width}x{height} (allowed: 1..={MAX_DIMENSION} per side, at most {MAX_PIXELS} pixels)"
    )]
    InvalidSize { width: u32, height: u32 },
    #[error("rectangle {rect:?} is outside the {width}x{height} display")]
    OutOfBounds { rect: Rect, width: u32, height: u32 },
    #[error("pixel buffer too short: {needed} needed, {got} given")]
    ShortBuffer { needed: usize, got: usize },
    #[error("row stride {stride} is shorter than a row ({row})")]
    BadStride { stride: usize, row: usize },
    #[error("invalid cursor {width}x{height} with hotspot ({hotspot_x},{hotspot_y})")]
    InvalidCursor {
        width: u32,
        height: u32,
        hotspot_x: u32,
        hotspot_y: u32,
    },
}

impl DisplayError {
    /// The Guacamole status to report: the data came from the remote desktop,
    /// so `UPSTREAM_ERROR` (515).
    pub fn status(&self) -> Status {
        Status::UpstreamError
    }
}

/// How a [`Display`] encodes.
#[derive(Debug, Clone)]
pub struct DisplayConfig {
    /// Initial desktop size.
    pub width: u32,
    pub height: u32,
    /// guacd's `force-lossless`: PNG and `cfill` only, never JPEG.
    pub lossless: bool,
    /// Image mimetypes the client announced with `image` during the handshake
    /// (`ClientInfo::image_mimetypes`). PNG is always allowed; JPEG only if
    /// `image/jpeg` is listed.
    pub image_mimetypes: Vec<String>,
    /// JPEG quality (1..=100) used when clients keep up.
    pub jpeg_quality_max: u8,
    /// JPEG quality used when clients lag a lot.
    pub jpeg_quality_min: u8,
    /// Frames per second the caller intends to produce at most (see
    /// [`DisplayConfig::frame_interval`]); also the time base of lossless
    /// refinement.
    pub max_frame_rate: u32,
    /// Off-screen buffer layer holding the cursor image (negative).
    pub cursor_layer: i32,
    /// Worker pool for encoding; `None` = the shared process-wide pool.
    pub pool: Option<Arc<EncodePool>>,
}

impl DisplayConfig {
    /// PNG only, not lossless, JPEG quality 40..=90, 30 fps, cursor on layer -1.
    pub fn new(width: u32, height: u32) -> DisplayConfig {
        DisplayConfig {
            width,
            height,
            lossless: false,
            image_mimetypes: Vec::new(),
            jpeg_quality_max: 90,
            jpeg_quality_min: 40,
            max_frame_rate: 30,
            cursor_layer: -1,
            pool: None,
        }
    }

    /// Sets the announced image mimetypes.
    pub fn with_image_mimetypes<S: AsRef<str>>(mut self, mimetypes: &[S]) -> DisplayConfig {
        self.image_mimetypes = mimetypes.iter().map(|m| m.as_ref().to_owned()).collect();
        self
    }

    /// Sets lossless mode (`force-lossless`).
    pub fn with_lossless(mut self, lossless: bool) -> DisplayConfig {
        self.lossless = lossless;
        self
    }

    /// Whether JPEG may be sent: announced and not lossless.
    pub fn jpeg_allowed(&self) -> bool {
        !self.lossless
            && self
                .image_mimetypes
                .iter()
                .any(|m| m.eq_ignore_ascii_case("image/jpeg"))
    }

    /// Whether clients announced lossless-capable `image/webp`.
    pub fn webp_allowed(&self) -> bool {
        self.image_mimetypes
            .iter()
            .any(|m| m.eq_ignore_ascii_case("image/webp"))
    }

    /// Minimum time between frames (`1 / max_frame_rate`).
    pub fn frame_interval(&self) -> Duration {
        Duration::from_secs(1) / self.max_frame_rate.clamp(1, 1000)
    }
}

/// Lag below which JPEG quality stays at the maximum.
pub const LAG_GOOD: Duration = Duration::from_millis(100);
/// Lag from which JPEG quality is at the minimum.
pub const LAG_BAD: Duration = Duration::from_millis(1000);
