//! The software backend: Cisco's openh264 (built from bundled source).
//!
//! Configuration: screen-content real-time usage, Constrained Baseline,
//! bitrate rate control with frame skipping, no periodic IDR (intra period
//! 0), one slice per picture, constant SPS/PPS ids, BT.709 limited-range
//! VUI. Every IDR access unit carries SPS + PPS.
//!
//! Keyframes come from: the first frame, a size change, `force_keyframe`,
//! and openh264's scene-change detection, which screen-content mode always
//! enables and codes as an IDR (long-term references, which would avoid
//! that, are refused by openh264 on lossy links). Typing and scrolling never
//! produce an IDR; a full-screen change may. Callers report every keyframe
//! to the [`KeyframeThrottle`](crate::KeyframeThrottle).
//!
//! Frame skipping is how the ceiling is enforced: after a large frame the
//! rate control may return `Ok(None)` for the next frames. The picture is
//! still pending, so the session loop encodes the framebuffer again at the
//! next frame tick even if nothing changed, until a frame comes out.

use std::os::raw::c_int;

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::{OpenH264API, Timestamp};

use crate::convert::I420Buffer;
use crate::{EncodedFrame, EncoderPrefs, Frame, Pixels, VideoEncoder, VideoError};

/// Backend name.
pub const NAME: &str = "openh264";

/// Lowest bitrate the backend accepts (below this openh264's rate control
/// produces unusable pictures at desktop sizes).
pub const MIN_BITRATE: u32 = 100_000;

/// The openh264 encoder.
pub struct OpenH264Encoder {
    /// Created at the first frame and again when the picture size changes
    /// (a new encoder starts with an IDR and the current bitrate).
    encoder: Option<Encoder>,
    /// Whether `encoder` has encoded a frame (openh264 initialises then).
    initialised: bool,
    dims: (u32, u32),
    yuv: I420Buffer,
    bitrate: u32,
    max_bitrate: u32,
    started: std::time::Instant,
    frames: u64,
    max_fps: f32,
}

/// Creates the backend (registered in [`crate::backends`]).
pub fn create(prefs: &EncoderPrefs) -> Result<Box<dyn VideoEncoder>, VideoError> {
    Ok(Box::new(OpenH264Encoder::new(prefs)?))
}

fn unavailable(reason: impl std::fmt::Display) -> VideoError {
    VideoError::Unavailable {
        backend: NAME,
        reason: reason.to_string(),
    }
}

impl OpenH264Encoder {
    /// Creates the encoder; the picture size is taken from the first frame.
    pub fn new(prefs: &EncoderPrefs) -> Result<OpenH264Encoder, VideoError> {
        if prefs.max_bitrate < MIN_BITRATE {
            return Err(unavailable(format!(
                "bitrate ceiling {} below the minimum {MIN_BITRATE}",
                prefs.max_bitrate
            )));
        }
        let max_fps = if prefs.max_fps.is_finite() && prefs.max_fps > 0.0 {
            prefs.max_fps.min(60.0)
        } else {
            30.0
        };
        let bitrate = prefs.start_bitrate.clamp(MIN_BITRATE, prefs.max_bitrate);
        let enc = OpenH264Encoder {
            encoder: None,
            initialised: false,
            dims: (0, 0),
            yuv: I420Buffer::default(),
            bitrate,
            max_bitrate: prefs.max_bitrate,
            started: std::time::Instant::now(),
            frames: 0,
            max_fps,
        };
        // Create one now so a host where openh264 cannot start is found at
        // selection time, not at the first frame.
        Encoder::with_api_config(OpenH264API::from_source(), enc.config()).map_err(unavailable)?;
        Ok(enc)
    }

    fn config(&self) -> EncoderConfig {
        screen_config(self.bitrate, self.max_fps)
    }

    fn apply_bitrate(&mut self) -> Result<(), VideoError> {
        let Some(encoder) = self.encoder.as_mut().filter(|_| self.initialised) else {
            return Ok(()); // used when the encoder is created / initialised
        };
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: openh264_sys2::SPATIAL_LAYER_ALL,
            iBitrate: c_int::try_from(self.bitrate).unwrap_or(c_int::MAX),
        };
        // SAFETY: the encoder is initialised (it encoded a frame, which calls
        // InitializeExt), ENCODER_OPTION_BITRATE takes a pointer to an
        // SBitrateInfo that openh264 only reads during the call, and `info`
        // lives on the stack for the whole call.
        #[allow(unsafe_code)]
        let rc = unsafe {
            encoder.raw_api().set_option(
                openh264_sys2::ENCODER_OPTION_BITRATE,
                (&raw mut info).cast(),
            )
        };
        if rc != 0 {
            return Err(VideoError::Encode {
                backend: NAME,
                reason: format!("set bitrate {} failed ({rc})", self.bitrate),
            });
        }
        Ok(())
    }
}

/// The encoder configuration of this backend (see the module
/// documentation) at `bitrate` bit/s and `max_fps`; public so that tools
/// can vary one setting of it (`examples/qp_probe.rs`).
pub fn screen_config(bitrate: u32, max_fps: f32) -> EncoderConfig {
    EncoderConfig::new()
        .usage_type(UsageType::ScreenContentRealTime)
        .profile(Profile::Baseline)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(bitrate))
        .max_frame_rate(FrameRate::from_hz(max_fps))
        .skip_frames(true)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        // openh264 forces scene-change detection on for screen content.
        .scene_change_detect(true)
        // LTR under screen content needs a lossless link (openh264
        // turns it off otherwise), so a scene change is coded as an IDR.
        .long_term_reference(false)
        .background_detection(false)
        .adaptive_quantization(false)
        .complexity(Complexity::Low)
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        .vui(VuiConfig::bt709())
        .num_threads(1)
}

impl VideoEncoder for OpenH264Encoder {
    fn encode(
        &mut self,
        frame: &Frame<'_>,
        force_keyframe: bool,
    ) -> Result<Option<EncodedFrame>, VideoError> {
        let src: &I420Buffer = match frame.pixels {
            Pixels::I420(b)
                if (b.width(), b.height())
                    == (
                        frame.width.saturating_add(1) & !1,
                        frame.height.saturating_add(1) & !1,
                    ) =>
            {
                b
            }
            _ => {
                self.yuv.fill_from(frame)?;
                &self.yuv
            }
        };
        let (w, h) = (src.width(), src.height());
        let config = self.config();
        if w > 3840 || h > 2160 {
            return Err(VideoError::BadFrame(format!("{w}x{h} exceeds 3840x2160")));
        }
        // Timestamps drive openh264's rate control: use the nominal frame
        // clock so a burst of calls is not seen as a huge frame rate.
        let nominal_ms = (self.frames as f64 * 1000.0 / f64::from(self.max_fps)) as u64;
        let wall_ms = self.started.elapsed().as_millis() as u64;
        let ts = Timestamp::from_millis(nominal_ms.max(wall_ms));
        self.frames += 1;
        let encoder = match &mut self.encoder {
            Some(e) if self.dims == (w, h) => e,
            slot => {
                let e = Encoder::with_api_config(OpenH264API::from_source(), config)
                    .map_err(unavailable)?;
                self.dims = (w, h);
                self.initialised = false;
                slot.insert(e)
            }
        };
        if force_keyframe {
            encoder.force_intra_frame();
        }
        let bs = encoder.encode_at(src, ts).map_err(|e| VideoError::Encode {
            backend: NAME,
            reason: e.to_string(),
        })?;
        self.initialised = true;
        let keyframe = match bs.frame_type() {
            FrameType::Skip => return Ok(None),
            FrameType::IDR => true,
            FrameType::I | FrameType::P | FrameType::IPMixed => false,
            FrameType::Invalid => {
                return Err(VideoError::Encode {
                    backend: NAME,
                    reason: "encoder returned an invalid frame".into(),
                });
            }
        };
        let data = bs.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedFrame {
            data,
            keyframe,
            width: w,
            height: h,
        }))
    }

    fn set_bitrate(&mut self, bps: u32) -> u32 {
        let bps = bps.clamp(MIN_BITRATE, self.max_bitrate);
        if bps != self.bitrate {
            let old = self.bitrate;
            self.bitrate = bps;
            if let Err(e) = self.apply_bitrate() {
                tracing::warn!(error = %e, "openh264 bitrate change failed");
                self.bitrate = old;
            }
        }
        self.bitrate
    }

    fn bitrate(&self) -> u32 {
        self.bitrate
    }

    fn max_bitrate(&self) -> u32 {
        self.max_bitrate
    }

    fn name(&self) -> &str {
        NAME
    }
}
