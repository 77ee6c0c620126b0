//! H.264 video encoding of a graphical session's framebuffer, for the WebRTC
//! transport (issue 9).
//!
//! * [`VideoEncoder`] is the interface every encoder backend implements
//!   (openh264 in software today; VA-API, NVENC or VideoToolbox later), and
//!   [`select`] picks the first backend that starts, with openh264 as the
//!   fallback. When none starts, the caller keeps the `img` path.
//! * [`convert`] turns the display's 32-bit `0x00RRGGBB` pixels into I420.
//! * [`control`] holds the sans-IO keyframe (PLI) throttle and the bitrate
//!   controller; both take the current time as an argument.
//! * [`h264`] parses Annex-B access units (NAL types, SPS profile) without
//!   panicking on any input.

pub mod control;
pub mod convert;
pub mod h264;
pub mod openh264;
pub mod pipeline;
pub mod synth;

pub use control::{BitrateController, KeyframeThrottle};
pub use convert::I420Buffer;
pub use pipeline::VideoPipeline;

/// Errors from the video layer.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The frame's dimensions or stride do not fit its pixel buffer.
    #[error("bad frame: {0}")]
    BadFrame(String),
    /// A backend could not be created or configured.
    #[error("encoder {backend} unavailable: {reason}")]
    Unavailable {
        /// Backend name.
        backend: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A backend failed while encoding a frame.
    #[error("encoder {backend} failed: {reason}")]
    Encode {
        /// Backend name.
        backend: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// No backend could start (the caller falls back to `img`).
    #[error("no video encoder could start: {0}")]
    NoEncoder(String),
}

/// The pixels of one frame of the display.
#[derive(Debug, Clone, Copy)]
pub enum Pixels<'a> {
    /// `u32` pixels `0x00RRGGBB` (the display framebuffer's format);
    /// `stride` is in pixels.
    Xrgb32 {
        /// Pixel data, row `i` starting at `i * stride`.
        data: &'a [u32],
        /// Pixels per row in `data` (≥ width).
        stride: usize,
    },
    /// Bytes B, G, R, X per pixel (the same pixels as bytes, little-endian);
    /// `stride` is in bytes.
    Bgrx8 {
        /// Pixel data, row `i` starting at byte `i * stride`.
        data: &'a [u8],
        /// Bytes per row in `data` (≥ 4 × width).
        stride: usize,
    },
    /// An already converted I420 picture of exactly the frame's size
    /// (rounded up to even).
    I420(&'a I420Buffer),
}

/// One frame of the display to encode.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The pixels.
    pub pixels: Pixels<'a>,
}

impl<'a> Frame<'a> {
    /// A frame over `0x00RRGGBB` pixels, `stride` pixels per row.
    pub fn xrgb32(width: u32, height: u32, data: &'a [u32], stride: usize) -> Frame<'a> {
        Frame {
            width,
            height,
            pixels: Pixels::Xrgb32 { data, stride },
        }
    }
}

/// One encoded access unit in Annex-B form (start code before each NAL unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The access unit: SPS + PPS + IDR slice(s) for a keyframe, non-IDR
    /// slice(s) otherwise.
    pub data: Vec<u8>,
    /// Whether this is an IDR (decodable on its own) access unit.
    pub keyframe: bool,
    /// Encoded width (even; the frame's width rounded up).
    pub width: u32,
    /// Encoded height (even; the frame's height rounded up).
    pub height: u32,
}

/// A video encoder backend.
///
/// Contract for every backend: H.264 Constrained Baseline (no B-frames, so
/// output order is input order and every call returns the picture it was
/// given), no periodic IDR, each keyframe carries SPS + PPS + IDR, Annex-B
/// output, the bitrate never set above the ceiling the backend was created
/// with. A change of frame size starts a new keyframe.
pub trait VideoEncoder: Send {
    /// Encodes one frame. `force_keyframe` makes it an IDR access unit.
    ///
    /// Returns `Ok(None)` when the rate controller skipped the frame (nothing
    /// to send; the previous picture stays on screen).
    fn encode(
        &mut self,
        frame: &Frame<'_>,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, VideoError>;

    /// Sets the target bitrate in bits per second; values above the ceiling
    /// are clamped to it. Returns the bitrate in effect.
    fn set_bitrate(&mut self, bps: u32) -> u32;

    /// The target bitrate in effect (bits per second).
    fn bitrate(&self) -> u32;

    /// The ceiling given at creation (bits per second).
    fn max_bitrate(&self) -> u32;

    /// Short backend name for logs and the audit event (`"openh264"`).
    fn name(&self) -> &str;
}

/// What the session asks of an encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderPrefs {
    /// Backends to try in order by name; empty means every registered
    /// backend in its default order (hardware first, openh264 last).
    pub backends: Vec<String>,
    /// Server ceiling in bits per second (announced as `b=TIAS`).
    pub max_bitrate: u32,
    /// Initial target bitrate (clamped to `max_bitrate`).
    pub start_bitrate: u32,
    /// Maximum frame rate the caller will feed.
    pub max_fps: f32,
}

impl Default for EncoderPrefs {
    fn default() -> Self {
        EncoderPrefs {
            backends: Vec::new(),
            max_bitrate: 8_000_000,
            start_bitrate: 2_000_000,
            max_fps: 30.0,
        }
    }
}

/// A registered backend: its name and its constructor.
pub struct Backend {
    /// Name used in [`EncoderPrefs::backends`] and logs.
    pub name: &'static str,
    /// Creates the encoder, or says why it cannot start on this host.
    pub create: fn(&EncoderPrefs) -> Result<Box<dyn VideoEncoder>, VideoError>,
}

/// Backends compiled in, in default preference order. Hardware backends go
/// before openh264 when they are added.
pub fn backends() -> &'static [Backend] {
    static BACKENDS: [Backend; 1] = [Backend {
        name: openh264::NAME,
        create: openh264::create,
    }];
    &BACKENDS
}

/// Creates the first backend that starts, trying [`EncoderPrefs::backends`]
/// (or all registered backends) in order. Fails with
/// [`VideoError::NoEncoder`] when none starts; the caller then keeps the
/// `img` path without telling the user.
pub fn select(prefs: &EncoderPrefs) -> Result<Box<dyn VideoEncoder>, VideoError> {
    select_from(backends(), prefs)
}

/// [`select`] over an explicit backend list (for tests and for callers that
/// register their own backends).
pub fn select_from(
    list: &[Backend],
    prefs: &EncoderPrefs,
) -> Result<Box<dyn VideoEncoder>, VideoError> {
    let mut failures = Vec::new();
    let wanted: Vec<&Backend> = if prefs.backends.is_empty() {
        list.iter().collect()
    } else {
        prefs
            .backends
            .iter()
            .filter_map(|n| list.iter().find(|b| b.name == n.as_str()))
            .collect()
    };
    for backend in wanted {
        match (backend.create)(prefs) {
            Ok(enc) => {
                tracing::debug!(backend = backend.name, "video encoder started");
                return Ok(enc);
            }
            Err(e) => {
                tracing::debug!(backend = backend.name, error = %e, "video encoder unavailable");
                failures.push(e.to_string());
            }
        }
    }
    if failures.is_empty() {
        failures.push(format!(
            "no registered backend matches {:?}",
            prefs.backends
        ));
    }
    Err(VideoError::NoEncoder(failures.join("; ")))
}
