//! Rendering recordings to video with ffmpeg (needs `ffmpeg`/`ffprobe`:
//! `scripts/test-peers.sh install`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;
use guacr_playback::{RenderError, RenderOptions, VideoFormat, render_video};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("guacr-playback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[derive(Debug)]
struct Probe {
    codec: String,
    width: u32,
    height: u32,
    duration: f64,
}

fn ffprobe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height:format=duration",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
            .to_owned()
    };
    Probe {
        codec: get("codec_name"),
        width: get("width").parse().unwrap(),
        height: get("height").parse().unwrap(),
        duration: get("duration").parse().unwrap(),
    }
}

/// Every picture of the video resampled at `fps` (RGB): picture `k` is
/// what the video shows at `k / fps` seconds.
fn pictures(path: &Path, fps: u32, w: u32, h: u32) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-vf",
            &format!("fps={fps}"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = (w * h * 3) as usize;
    assert_eq!(out.stdout.len() % size, 0);
    out.stdout.chunks(size).map(<[u8]>::to_vec).collect()
}

/// The colour expected at video frame `k` (25 fps) of [`coloured_recording`].
fn expected_colour(k: usize) -> [u8; 3] {
    match k {
        0..25 => [255, 0, 0],
        25..50 => [0, 255, 0],
        _ => [0, 0, 255],
    }
}

fn near(px: &[u8], rgb: [u8; 3]) -> bool {
    (0..3).all(|c| px[c].abs_diff(rgb[c]) <= 24)
}

/// 3.2 s: red, then green from 1.0 s, then blue from 2.0 s (idle until the
/// last sync at 3.2 s). The size is odd to check the rounding to even.
fn coloured_recording() -> Vec<u8> {
    let t = |ms: i64| (T0 + ms).to_string();
    let fill = |rgb: &str| format!("cfill,14,0,{rgb},255");
    wire(&[
        "size,0,161,121",
        "rect,0,0,0,161,121",
        &fill("255,0,0"),
        &format!("sync,{}", t(0)),
        &format!("sync,{}", t(500)),
        "rect,0,0,0,161,121",
        &fill("0,255,0"),
        &format!("sync,{}", t(1000)),
        "rect,0,0,0,161,121",
        &fill("255,255,255"),
        &format!("sync,{}", t(1990)),
        "rect,0,0,0,161,121",
        &fill("0,0,255"),
        &format!("sync,{}", t(2000)),
        &format!("sync,{}", t(3200)),
    ])
}

fn check_video(format: VideoFormat, file: &str, codec: &str) {
    let data = coloured_recording();
    let out = temp(file);
    let stats = render_video(&data, &out, RenderOptions::default()).unwrap();
    assert_eq!(stats.format, format);
    assert_eq!((stats.width, stats.height), (160, 120));
    assert_eq!(stats.recording_ms, 3200);
    assert_eq!(stats.video_frames, 80);
    // Changed pictures: red, green, blue (white at 1990 is replaced at 2000
    // within the same 40 ms frame), plus the last picture again in the last
    // three frames.
    assert_eq!(stats.frames_sent, 6, "{stats:?}");
    let probe = ffprobe(&out);
    assert_eq!(probe.codec, codec);
    assert_eq!((probe.width, probe.height), (160, 120));
    assert!(
        (probe.duration - 3.2).abs() <= 0.04 + 1e-6,
        "duration {} vs 3.2 s",
        probe.duration
    );
    // The whole timeline, frame by frame: each colour from its sync time on.
    let pics = pictures(&out, 25, 160, 120);
    assert!((79..=80).contains(&pics.len()), "{}", pics.len());
    for (k, px) in pics.iter().enumerate() {
        let mid = ((60 * 160 + 80) * 3) as usize;
        let rgb = expected_colour(k);
        assert!(
            near(&px[mid..mid + 3], rgb),
            "{format:?} frame {k}: {:?}",
            &px[mid..mid + 3]
        );
    }
    std::fs::remove_file(&out).ok();
}

#[test]
fn renders_mp4_h264() {
    check_video(VideoFormat::Mp4, "colours.mp4", "h264");
}

#[test]
fn renders_webm_vp9() {
    check_video(VideoFormat::WebM, "colours.webm", "vp9");
}

#[test]
fn constant_frame_rate_and_scaling() {
    let data = coloured_recording();
    let out = temp("cfr.mp4");
    let opts = RenderOptions {
        fps: 10,
        width: Some(101),
        constant_frame_rate: true,
        ..RenderOptions::default()
    };
    let stats = render_video(&data, &out, opts).unwrap();
    assert_eq!((stats.width, stats.height), (100, 74));
    assert_eq!(stats.video_frames, 32);
    let probe = ffprobe(&out);
    assert_eq!((probe.width, probe.height), (100, 74));
    assert!((probe.duration - 3.2).abs() <= 0.1 + 1e-6, "{probe:?}");
    let out_cnt = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(&out)
        .output()
        .unwrap();
    let frames: u32 = String::from_utf8_lossy(&out_cnt.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(frames, 32, "every frame is in a constant frame rate video");
    let pics = pictures(&out, 10, 100, 74);
    assert_eq!(pics.len(), 32);
    let mid = ((37 * 100 + 50) * 3) as usize;
    for (k, px) in pics.iter().enumerate() {
        let rgb = expected_colour(k * 25 / 10);
        assert!(
            near(&px[mid..mid + 3], rgb),
            "frame {k}: {:?}",
            &px[mid..mid + 3]
        );
    }
    std::fs::remove_file(&out).ok();
}

#[test]
fn missing_ffmpeg_is_a_clear_error() {
    let data = coloured_recording();
    let out = temp("missing.mp4");
    let opts = RenderOptions {
        ffmpeg: PathBuf::from("/nonexistent/bin/ffmpeg"),
        ..RenderOptions::default()
    };
    let err = render_video(&data, &out, opts).unwrap_err();
    assert!(matches!(err, RenderError::FfmpegNotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("apt-get install ffmpeg"), "{msg}");
    assert!(!out.exists());

    // Other early errors.
    assert!(matches!(
        render_video(&data, &temp("x.avi"), RenderOptions::default()),
        Err(RenderError::UnknownFormat(_))
    ));
    assert!(matches!(
        render_video(
            b"4.size,1.0,1.2,1.2;",
            &temp("x.mp4"),
            RenderOptions::default()
        ),
        Err(RenderError::EmptyRecording)
    ));
    // ffmpeg failing (an encoder it does not have) reports its message.
    let fake = temp("fake-ffmpeg.sh");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'Unknown encoder libx264' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let opts = RenderOptions {
        ffmpeg: fake,
        ..RenderOptions::default()
    };
    let err = render_video(&data, &out, opts).unwrap_err();
    assert!(err.to_string().contains("Unknown encoder libx264"), "{err}");
}

#[test]
fn terminal_recording_renders() {
    let (data, _) = terminal_recording(5_000, 3);
    let out = temp("terminal.webm");
    let stats = render_video(&data, &out, RenderOptions::default()).unwrap();
    assert_eq!((stats.width, stats.height), (1024, 768));
    let probe = ffprobe(&out);
    assert_eq!((probe.width, probe.height), (1024, 768));
    let expected = stats.recording_ms as f64 / 1000.0;
    assert!(
        (probe.duration - expected).abs() <= 0.04 + 1e-6,
        "{probe:?} vs {expected}"
    );
    std::fs::remove_file(&out).ok();
}

/// `cargo test --release -p guacr-playback --test render -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: renders a 10-minute terminal recording"]
fn bench_ten_minute_terminal_recording() {
    let start = Instant::now();
    let (data, _) = terminal_recording(600_000, 11);
    println!(
        "generated {:.1} MB recording in {:.1?}",
        data.len() as f64 / 1e6,
        start.elapsed()
    );
    // GUACR_BENCH_FFMPEG: another ffmpeg (e.g. a script discarding its
    // input, to time the player alone).
    let ffmpeg = std::env::var_os("GUACR_BENCH_FFMPEG").map(PathBuf::from);
    for file in ["ten-minutes.mp4", "ten-minutes.webm"] {
        let out = temp(file);
        // GUACR_BENCH_CFR=1: constant frame rate output (every frame encoded).
        let mut opts = RenderOptions {
            constant_frame_rate: std::env::var_os("GUACR_BENCH_CFR").is_some(),
            ..RenderOptions::default()
        };
        if let Some(f) = &ffmpeg {
            opts.ffmpeg = f.clone();
        }
        let stats = render_video(&data, &out, opts).unwrap();
        if ffmpeg.is_some() {
            println!("{file}: {:.2} s, {stats:?}", stats.elapsed.as_secs_f64());
            continue;
        }
        let probe = ffprobe(&out);
        println!(
            "{file}: {:.2} s to render {} ms ({} sync frames, {} video frames, {} encoded) -> {:.1} MB, {probe:?}",
            stats.elapsed.as_secs_f64(),
            stats.recording_ms,
            stats.recording_frames,
            stats.video_frames,
            stats.frames_sent,
            std::fs::metadata(&out).unwrap().len() as f64 / 1e6,
        );
        assert!((probe.duration - stats.recording_ms as f64 / 1000.0).abs() <= 0.04 + 1e-6);
        std::fs::remove_file(&out).ok();
    }
}
