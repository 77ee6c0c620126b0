//! Rendering a `.guac` recording to a video file with ffmpeg (what guacenc
//! does, to MP4/H.264 or WebM/VP9).
//!
//! The timeline is sampled every 1/fps second: the video frame at time `t`
//! shows the display as of the last `sync` at or before `t` (long idle gaps
//! are kept as they are). Only frames whose picture changed are composited
//! and sent to ffmpeg, each with its own timestamp (a Matroska stream of raw
//! YUV 4:2:0 on ffmpeg's standard input, converted here from RGBA for the
//! rows that changed only), so idle time costs nothing; the output is
//! variable frame rate on the 1/fps grid, or constant frame rate (ffmpeg
//! repeats frames) with [`RenderOptions::constant_frame_rate`].
//!
//! The mouse cursor (`cursor` image at the recorded `mouse` position) is
//! drawn as guacenc does, unless [`RenderOptions::draw_cursor`] is off.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::display::Display;
use crate::mkv::MkvWriter;
use crate::player::Player;
use crate::yuv::{update_yuv420, yuv420_len};

/// Colour tags for the BT.601 limited-range pictures sent to ffmpeg.
const COLOUR_ARGS: [&str; 8] = [
    "-colorspace",
    "smpte170m",
    "-color_primaries",
    "smpte170m",
    "-color_trc",
    "smpte170m",
    "-color_range",
    "tv",
];

/// Output container and codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFormat {
    /// MP4 with H.264 (libx264, yuv420p).
    Mp4,
    /// WebM with VP9 (libvpx-vp9).
    WebM,
}

impl VideoFormat {
    /// The format for a file name's extension (`.mp4`/`.m4v`, `.webm`).
    pub fn from_path(path: &Path) -> Option<VideoFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "mp4" | "m4v" => Some(VideoFormat::Mp4),
            "webm" => Some(VideoFormat::WebM),
            _ => None,
        }
    }

    /// ffmpeg's codec options for this format.
    fn codec_args(self) -> &'static [&'static str] {
        match self {
            VideoFormat::Mp4 => &[
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "23",
                "-movflags",
                "+faststart",
            ],
            VideoFormat::WebM => &[
                "-c:v",
                "libvpx-vp9",
                "-b:v",
                "0",
                "-crf",
                "35",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ],
        }
    }
}

/// How to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Frames per second of the timeline sampling (default 25).
    pub fps: u32,
    /// `None`: from the output file's extension.
    pub format: Option<VideoFormat>,
    /// Video size. Default: the recording's first default-layer size. With
    /// only one given, the other keeps the aspect ratio. Rounded down to
    /// even numbers (H.264/yuv420p); a picture of another aspect ratio is
    /// scaled to fit and centred (letterboxed), as guacenc does.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The ffmpeg program (default `ffmpeg`, looked up in `PATH`).
    pub ffmpeg: PathBuf,
    /// Draw the mouse cursor at the recorded mouse position (default true).
    pub draw_cursor: bool,
    /// Constant frame rate output (every 1/fps frame encoded, like
    /// guacenc); default false: only changed frames are encoded, which is
    /// much faster for mostly idle recordings and plays the same.
    pub constant_frame_rate: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            fps: 25,
            format: None,
            width: None,
            height: None,
            ffmpeg: PathBuf::from("ffmpeg"),
            draw_cursor: true,
            constant_frame_rate: false,
        }
    }
}

/// What was rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderStats {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub format: VideoFormat,
    /// Recording duration (first to last `sync`), milliseconds.
    pub recording_ms: u64,
    /// Video duration: `video_frames / fps` seconds.
    pub video_frames: u64,
    /// Pictures composited and sent to ffmpeg (with constant frame rate,
    /// ffmpeg encodes `video_frames`).
    pub frames_sent: u64,
    /// `sync` frames in the recording.
    pub recording_frames: usize,
    /// Instructions the display model rejected or did not implement.
    pub display_warnings: u64,
    /// Set when the recording ends with a malformed instruction.
    pub truncated: bool,
    pub elapsed: Duration,
}

/// Why a recording could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "ffmpeg not found ({program}): it is needed to encode video; install it with `apt-get install ffmpeg`"
    )]
    FfmpegNotFound { program: PathBuf },
    #[error("ffmpeg failed ({status}): {stderr}")]
    Ffmpeg { status: String, stderr: String },
    #[error("cannot tell the video format from {0:?}: use a .mp4 or .webm file name")]
    UnknownFormat(PathBuf),
    #[error("the recording has no frames (no `sync` instruction)")]
    EmptyRecording,
    #[error("the recording never sets the display size; give a width and height")]
    NoSize,
    #[error("invalid option: {0}")]
    InvalidOption(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> RenderError {
    let context = context.into();
    move |source| RenderError::Io { context, source }
}

/// Rounds down to an even number, at least 2.
fn even(v: u32) -> u32 {
    (v & !1).max(2)
}

/// Output size from the options and the source size.
fn output_size(opts: &RenderOptions, src: (u32, u32)) -> (u32, u32) {
    let (sw, sh) = (u64::from(src.0.max(1)), u64::from(src.1.max(1)));
    let (w, h) = match (opts.width, opts.height) {
        (Some(w), Some(h)) => (w, h),
        (Some(w), None) => (w, (u64::from(w) * sh / sw) as u32),
        (None, Some(h)) => ((u64::from(h) * sw / sh) as u32, h),
        (None, None) => src,
    };
    (even(w), even(h))
}

/// Video frame index at which a frame of time `t_ms` starts showing:
/// ceil(t * fps / 1000).
fn slot_of(t_ms: u64, fps: u32) -> u64 {
    let v = u128::from(t_ms) * u128::from(fps);
    u64::try_from(v.div_ceil(1000)).unwrap_or(u64::MAX)
}

/// Milliseconds at which video frame `slot` starts.
fn slot_ms(slot: u64, fps: u32) -> u64 {
    let v = u128::from(slot) * 1000 / u128::from(fps);
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Renders a `.guac` recording to `output` (MP4 or WebM) with ffmpeg.
pub fn render_video(
    input: &[u8],
    output: &Path,
    opts: RenderOptions,
) -> Result<RenderStats, RenderError> {
    let started = Instant::now();
    if opts.fps == 0 || opts.fps > 1000 {
        return Err(RenderError::InvalidOption(format!(
            "fps must be between 1 and 1000, not {}",
            opts.fps
        )));
    }
    if opts.width == Some(0) || opts.height == Some(0) {
        return Err(RenderError::InvalidOption(
            "width/height must not be 0".into(),
        ));
    }
    let format = match opts.format {
        Some(f) => f,
        None => VideoFormat::from_path(output)
            .ok_or_else(|| RenderError::UnknownFormat(output.to_path_buf()))?,
    };
    let mut player = Player::new(input);
    player.set_keyframes(None, 0);
    let frame_count = player.frames().len();
    if frame_count == 0 {
        return Err(RenderError::EmptyRecording);
    }
    let src = match player.initial_size() {
        Some(s) => s,
        None => match (opts.width, opts.height) {
            (Some(w), Some(h)) => (w, h),
            _ => return Err(RenderError::NoSize),
        },
    };
    let (out_w, out_h) = output_size(&opts, src);
    // Pictures are fed at the source size cropped to even dimensions, and
    // scaled by ffmpeg if another size is wanted.
    let (feed_w, feed_h) = (even(src.0), even(src.1));

    let fps = opts.fps;
    let recording_ms = player.duration();
    // The video lasts ceil(duration) frames, at least one; its last frame
    // shows the final picture.
    let total_slots = slot_of(recording_ms, fps).max(1);

    let mut child = spawn_ffmpeg(
        &opts,
        format,
        output,
        (feed_w, feed_h),
        (out_w, out_h),
        total_slots,
    )?;
    let stderr_reader = child.stderr.take().map(|mut stderr| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf);
            // Keep draining so ffmpeg never blocks on a full pipe.
            let _ = io::copy(&mut stderr, &mut io::sink());
            String::from_utf8_lossy(&buf).trim().to_owned()
        })
    });
    let result = match child.stdin.take() {
        Some(stdin) => feed_frames(&mut player, stdin, &opts, (feed_w, feed_h), total_slots),
        None => Err(RenderError::Io {
            context: "ffmpeg standard input".into(),
            source: io::Error::other("not captured"),
        }),
    };
    let status = child.wait().map_err(io_err("waiting for ffmpeg"));
    let stderr = stderr_reader
        .and_then(|h| h.join().ok())
        .unwrap_or_default();
    let failure = |status: Option<ExitStatus>| RenderError::Ffmpeg {
        status: status.map_or_else(|| "not started".into(), |s| s.to_string()),
        stderr: if stderr.is_empty() {
            "(no output)".into()
        } else {
            stderr.clone()
        },
    };
    let outcome = match (result, status) {
        (_, Ok(st)) if !st.success() => Err(failure(Some(st))),
        (Err(RenderError::Io { source, .. }), Ok(st))
            if source.kind() == io::ErrorKind::BrokenPipe =>
        {
            Err(failure(Some(st)))
        }
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e),
        (Ok(frames_sent), Ok(_)) => Ok(frames_sent),
    };
    let frames_sent = match outcome {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(output);
            return Err(e);
        }
    };
    let display = player.display();
    let unhandled: u64 = display.unhandled().values().sum();
    Ok(RenderStats {
        width: out_w,
        height: out_h,
        fps,
        format,
        recording_ms,
        video_frames: total_slots,
        frames_sent,
        recording_frames: frame_count,
        display_warnings: player.apply_errors() + unhandled,
        truncated: player.parse_error().is_some(),
        elapsed: started.elapsed(),
    })
}

fn spawn_ffmpeg(
    opts: &RenderOptions,
    format: VideoFormat,
    output: &Path,
    feed: (u32, u32),
    out: (u32, u32),
    total_slots: u64,
) -> Result<std::process::Child, RenderError> {
    let mut args: Vec<OsString> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
        .iter()
        .map(OsString::from)
        .collect();
    args.extend(["-f", "matroska", "-i", "-", "-an"].map(OsString::from));
    let mut filters = Vec::new();
    if opts.constant_frame_rate {
        // The fps filter places every frame exactly on the output grid (our
        // timestamps are on it already); `-fps_mode cfr` alone may shift
        // changes by a frame.
        filters.push(format!("fps={}", opts.fps));
    }
    if feed != out {
        let (w, h) = out;
        filters.push(format!(
            "scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2"
        ));
    }
    if !filters.is_empty() {
        args.push("-vf".into());
        args.push(filters.join(",").into());
    }
    if opts.constant_frame_rate {
        args.extend(["-fps_mode", "cfr", "-frames:v"].map(OsString::from));
        args.push(total_slots.to_string().into());
    } else {
        args.extend(["-fps_mode", "vfr"].map(OsString::from));
    }
    args.extend(format.codec_args().iter().map(OsString::from));
    args.extend(COLOUR_ARGS.iter().map(OsString::from));
    args.push("-y".into());
    args.push(output.as_os_str().to_owned());
    Command::new(&opts.ffmpeg)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .inspect(|child| {
            // Fewer, larger pipe transfers (best effort; 1 MiB is the default limit).
            if let Some(stdin) = &child.stdin {
                let _ = rustix::pipe::fcntl_setpipe_size(stdin, 1 << 20);
            }
        })
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                RenderError::FfmpegNotFound {
                    program: opts.ffmpeg.clone(),
                }
            } else {
                RenderError::Io {
                    context: format!("starting {}", opts.ffmpeg.display()),
                    source: e,
                }
            }
        })
}

/// Plays the recording and writes the changed frames; returns how many.
fn feed_frames(
    player: &mut Player<'_>,
    stdin: impl Write,
    opts: &RenderOptions,
    feed: (u32, u32),
    total_slots: u64,
) -> Result<u64, RenderError> {
    let fps = opts.fps;
    let frame_ns = 1_000_000_000 / u64::from(fps);
    let (fw, fh) = (feed.0 as usize, feed.1 as usize);
    let frame_bytes = yuv420_len(fw, fh);
    let pipe = io::BufWriter::with_capacity(1 << 20, stdin);
    let mut mkv = MkvWriter::new(pipe, feed.0, feed.1, b"I420", frame_bytes, frame_ns)
        .map_err(io_err("writing to ffmpeg"))?;
    let last_slot = total_slots - 1;
    let slots: Vec<u64> = player
        .frames()
        .iter()
        .map(|f| slot_of(f.time_ms, fps).min(last_slot))
        .collect();
    let mut shot = Vec::new();
    // The RGBA picture being built, the one last converted, and its YUV.
    let mut picture = Vec::new();
    let mut previous = Vec::new();
    let mut yuv = vec![0u8; frame_bytes];
    let mut written: Option<u64> = None;
    let mut last_key: Option<(u64, Option<(i32, i32)>)> = None;
    let mut encoded = 0u64;
    for (i, &slot) in slots.iter().enumerate() {
        if player.step().is_none() {
            break;
        }
        let next = slots.get(i + 1).copied().unwrap_or(total_slots);
        if slot >= next {
            // Replaced by a later frame before the next video frame is due.
            continue;
        }
        let mouse = if opts.draw_cursor {
            player.mouse_position()
        } else {
            None
        };
        let key = (player.display().revision(), mouse);
        if last_key == Some(key) {
            continue;
        }
        last_key = Some(key);
        compose(player.display(), mouse, feed, &mut shot, &mut picture);
        let prev = written.map(|_| previous.as_slice());
        let changed = update_yuv420(&picture, prev, fw, fh, &mut yuv);
        std::mem::swap(&mut picture, &mut previous);
        if changed == 0 && written.is_some() {
            continue;
        }
        mkv.write_frame(slot_ms(slot, fps), &yuv)
            .map_err(io_err("writing to ffmpeg"))?;
        encoded += 1;
        written = Some(slot);
    }
    if let Some(w) = written {
        // The last picture is also written in each of the last (up to) three
        // frames: ffmpeg guesses the duration of a stream's last frame from
        // the spacing of the frames before it (for constant frame rate and
        // some muxers), and this makes that guess one frame.
        for s in total_slots.saturating_sub(3).max(w + 1)..total_slots {
            mkv.write_frame(slot_ms(s, fps), &yuv)
                .map_err(io_err("writing to ffmpeg"))?;
            encoded += 1;
        }
    }
    let pipe = mkv.finish().map_err(io_err("writing to ffmpeg"))?;
    drop(pipe);
    Ok(encoded)
}

/// Builds the picture to send: the display's screenshot fitted to `feed`
/// (cropped if it is the same size give or take odd pixels, otherwise scaled
/// to fit and centred), with the cursor drawn.
fn compose(
    display: &Display,
    mouse: Option<(i32, i32)>,
    feed: (u32, u32),
    shot: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    let (sw, sh) = display.screenshot_into(shot);
    let (fw, fh) = (feed.0 as usize, feed.1 as usize);
    out.clear();
    out.resize(fw * fh * 4, 0);
    let (sw, sh) = (sw as usize, sh as usize);
    // Where the screenshot lands: (scale numerator/denominator, offset).
    let fits = sw <= fw + 1 && sh <= fh + 1 && sw + 1 >= fw && sh + 1 >= fh;
    let (num, den, ox, oy) = if sw == 0 || sh == 0 || fits {
        (1, 1, 0, 0)
    } else if fw * sh <= fh * sw {
        // Width-limited.
        let h = sh * fw / sw;
        (fw, sw, 0, (fh - h.min(fh)) / 2)
    } else {
        let w = sw * fh / sh;
        (fh, sh, (fw - w.min(fw)) / 2, 0)
    };
    if num == den {
        let row = sw.min(fw) * 4;
        for y in 0..sh.min(fh) {
            let s = y * sw * 4;
            let d = y * fw * 4;
            out[d..d + row].copy_from_slice(&shot[s..s + row]);
        }
    } else {
        let dw = (sw * num / den).min(fw - ox);
        let dh = (sh * num / den).min(fh - oy);
        for y in 0..dh {
            let sy = (y * den / num).min(sh - 1);
            for x in 0..dw {
                let sx = (x * den / num).min(sw - 1);
                let s = (sy * sw + sx) * 4;
                let d = ((y + oy) * fw + x + ox) * 4;
                out[d..d + 4].copy_from_slice(&shot[s..s + 4]);
            }
        }
    }
    if let (Some((mx, my)), Some(cursor)) = (mouse, display.cursor()) {
        // Cursor positions are in display coordinates: map them like the picture.
        let cx =
            ox as i64 + (i64::from(mx) - i64::from(cursor.hotspot_x)) * num as i64 / den as i64;
        let cy =
            oy as i64 + (i64::from(my) - i64::from(cursor.hotspot_y)) * num as i64 / den as i64;
        let (cw, ch) = (cursor.width as usize, cursor.height as usize);
        for y in 0..ch {
            let ty = cy + y as i64;
            if ty < 0 || ty >= fh as i64 {
                continue;
            }
            for x in 0..cw {
                let tx = cx + x as i64;
                if tx < 0 || tx >= fw as i64 {
                    continue;
                }
                let s = (y * cw + x) * 4;
                let Some(px) = cursor.data.get(s..s + 4) else {
                    continue;
                };
                let d = (ty as usize * fw + tx as usize) * 4;
                let dst = [out[d], out[d + 1], out[d + 2], out[d + 3]];
                let c = crate::display::composite(
                    crate::display::COMP_OVER,
                    [px[0], px[1], px[2], px[3]],
                    dst,
                );
                out[d..d + 4].copy_from_slice(&c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_sizes() {
        assert_eq!(slot_of(0, 25), 0);
        assert_eq!(slot_of(1, 25), 1);
        assert_eq!(slot_of(40, 25), 1);
        assert_eq!(slot_of(41, 25), 2);
        assert_eq!(slot_ms(3, 30), 100);
        assert_eq!(slot_ms(1, 30), 33);
        assert_eq!(even(1025), 1024);
        assert_eq!(even(1), 2);
        let mut o = RenderOptions::default();
        assert_eq!(output_size(&o, (1023, 767)), (1022, 766));
        o.width = Some(640);
        assert_eq!(output_size(&o, (1024, 768)), (640, 480));
        o.width = None;
        o.height = Some(241);
        assert_eq!(output_size(&o, (1000, 500)), (482, 240));
        assert_eq!(
            VideoFormat::from_path(Path::new("/x/a.WebM")),
            Some(VideoFormat::WebM)
        );
        assert_eq!(
            VideoFormat::from_path(Path::new("a.mp4")),
            Some(VideoFormat::Mp4)
        );
        assert_eq!(VideoFormat::from_path(Path::new("a.avi")), None);
    }

    #[test]
    fn compose_crops_and_letterboxes() {
        let mut d = Display::new();
        for s in [
            "size,0,3,2",
            "rect,0,0,0,3,2",
            "cfill,14,0,200,100,50,255",
            "rect,0,2,1,1,1",
            "cfill,12,0,255,255,255,128",
        ] {
            let mut it = s.split(',');
            let op = it.next().unwrap_or_default();
            let _ = d.apply(&guacr_protocol::Instruction::new(op, it));
        }
        let (mut shot, mut out) = (Vec::new(), Vec::new());
        // Cropped to 2x2; the SRC fill cleared everything else (canvas `copy`).
        compose(&d, None, (2, 2), &mut shot, &mut out);
        assert_eq!(out.len(), 16);
        assert!(out.chunks(4).all(|p| p == [0, 0, 0, 0]));
        // Letterboxed into 6x6: scaled by 2 → 6x4 at y offset 1.
        compose(&d, None, (6, 6), &mut shot, &mut out);
        let px = |x: usize, y: usize| &out[(y * 6 + x) * 4..(y * 6 + x) * 4 + 4];
        assert_eq!(px(0, 0), [0, 0, 0, 0]);
        assert_eq!(px(5, 3), [255, 255, 255, 128]);
        assert_eq!(px(5, 5), [0, 0, 0, 0]);
    }
}
