//! The RDPSND channel against a real server: xrdp (test peer `scripts/peers.d/rdp.sh`,
//! standard RDP security user). xrdp's chansrv forwards whatever a sound server writes
//! to its sink socket (`xrdp_chansrv_audio_out_socket_<display>`, messages
//! `[u32 id=0][u32 size incl. header][s16le PCM]`, what pulseaudio-module-xrdp does) as
//! RDPSND WaveInfo + Wave PDUs; the test plays that part and checks the samples arrive.

use std::time::{Duration, Instant};

use ironrdp_graphics::image_processing::PixelFormat;
use ironrdp_session::image::DecodedImage;
use ironrdp_session::{ActiveStage, ActiveStageBuilder, ActiveStageOutput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::audio::{self, PREFERRED};
use crate::connect::{self, ConnectRequest};

pub(crate) fn var(k: &str) -> String {
    guacr_testkit::peers::var(k).unwrap_or_else(|| {
        panic!(
            "{k} is not set: start the RDP test peers with `scripts/test-peers.sh install && \
             scripts/test-peers.sh start` (plug-in scripts/peers.d/rdp.sh)"
        )
    })
}

/// 44.1 kHz stereo s16le: a 440 Hz tone, `frames` long.
fn tone(frames: u32) -> Vec<u8> {
    let mut pcm = Vec::with_capacity(frames as usize * 4);
    for i in 0..frames {
        let t = i as f32 * 440.0 * std::f32::consts::TAU / 44_100.0;
        let v = (t.sin() * 8000.0) as i16;
        pcm.extend_from_slice(&v.to_le_bytes());
        pcm.extend_from_slice(&(-v).to_le_bytes());
    }
    pcm
}

/// The xrdp peers keep one session per user and a new login takes it over:
/// the tests that log in as the standard-RDP-security user take turns.
pub(crate) static XRDP_USER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A connection to xrdp (standard RDP security user) in the active stage.
pub(crate) struct Xrdp {
    pub framed: connect::UpgradedFramed,
    pub stage: ActiveStage,
    pub image: DecodedImage,
    /// The file the session's window manager writes `$DISPLAY` into.
    pub display_file: String,
}

impl Xrdp {
    /// Logs in with `attach` adding the static channels under test.
    pub async fn connect(
        audio: bool,
        attach: impl FnOnce(&mut ironrdp_connector::ClientConnector),
    ) -> Xrdp {
        let (host, port) = (
            var("GUACR_TEST_RDP_HOST"),
            var("GUACR_TEST_RDP_XRDP_RDP_PORT"),
        );
        let (user, password) = (
            var("GUACR_TEST_RDP_XRDP_RDP_USER"),
            var("GUACR_TEST_RDP_PASSWORD"),
        );
        let params = guacr_session::Params::from_pairs([
            ("hostname", host.as_str()),
            ("port", port.as_str()),
            ("username", user.as_str()),
            ("password", password.as_str()),
            ("security", "rdp"),
            ("ignore-cert", "true"),
        ]);
        let settings = crate::RdpSettings::from_params(&params).unwrap();
        let req = ConnectRequest {
            settings: &settings,
            username: Some(user.clone()),
            password: Some(password.clone()),
            domain: None,
            width: 1024,
            height: 768,
            dpi: 96,
            keyboard_layout: 0x409,
            keyboard_type: 4,
            keyboard_subtype: 0,
            function_keys: 12,
            timezone: crate::tz::timezone_info(Some("UTC")),
            connect_timeout: Duration::from_secs(10),
            audio,
        };
        let (framed, connector, selected) = connect::begin(&req, attach).await.unwrap();
        let connected = connect::finish(&req, framed, connector, selected, Duration::from_secs(30))
            .await
            .unwrap();
        let r = connected.result;
        let stage = ActiveStageBuilder {
            static_channels: r.static_channels,
            user_channel_id: r.user_channel_id,
            io_channel_id: r.io_channel_id,
            message_channel_id: r.message_channel_id,
            share_id: r.share_id,
            compression_type: r.compression_type,
            enable_server_pointer: r.enable_server_pointer,
            pointer_software_rendering: r.pointer_software_rendering,
        }
        .build();
        Xrdp {
            framed: connected.framed,
            stage,
            image: DecodedImage::new(PixelFormat::BgrX32, 1024, 768),
            display_file: var("GUACR_TEST_RDP_XRDP_RDP_DISPLAY_FILE"),
        }
    }

    /// Handles the next PDU (waiting at most 200 ms), answering it.
    pub async fn pump(&mut self) {
        let (stream, buf) = self.framed.get_inner_mut();
        let pdu = loop {
            match ironrdp_pdu::find_size(buf).unwrap() {
                Some(info) if buf.len() >= info.length => {
                    break Some((info.action, buf.split_to(info.length)));
                }
                Some(info) => buf.reserve(info.length - buf.len()),
                None => buf.reserve(8192),
            }
            match tokio::time::timeout(Duration::from_millis(200), stream.read_buf(buf)).await {
                Ok(read) => assert!(read.unwrap() > 0, "xrdp closed the connection"),
                Err(_) => break None,
            }
        };
        if let Some((action, frame)) = pdu {
            for o in self
                .stage
                .process(&mut self.image, action, &frame, None)
                .unwrap()
            {
                if let ActiveStageOutput::ResponseFrame(f) = o {
                    self.send(&f).await;
                }
            }
        }
    }

    pub async fn send(&mut self, frame: &[u8]) {
        let (stream, _) = self.framed.get_inner_mut();
        stream.write_all(frame).await.unwrap();
    }

    /// The session's X display (`:N.0`), once its window manager wrote it.
    pub fn display(&self) -> Option<String> {
        let d = std::fs::read_to_string(&self.display_file).ok()?;
        Some(d.trim().to_owned()).filter(|d| !d.is_empty())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn xrdp_audio_reaches_the_queue_as_pcm() {
    let _turn = XRDP_USER.lock().await;
    let (rdpsnd, rx) = audio::channel(true);
    let mut x = Xrdp::connect(true, move |c| {
        c.attach_static_channel(rdpsnd);
    })
    .await;
    let display_file = x.display_file.clone();

    // 2 s of tone, fed in 100 ms messages once the channel is negotiated (chansrv
    // re-creates its sink listener when a client's RDPSND channel starts).
    let pcm = tone(88_200);
    let feed = |fed: Vec<u8>, display_file: String| async move {
        let t0 = Instant::now();
        'connect: loop {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "could not feed xrdp's audio sink socket (session display from {display_file})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            let Some(sock) = std::fs::read_to_string(&display_file).ok().and_then(|d| {
                let n = d
                    .trim()
                    .trim_start_matches(':')
                    .split('.')
                    .next()?
                    .to_owned();
                Some(format!(
                    "/run/xrdp/sockdir/xrdp_chansrv_audio_out_socket_{n}"
                ))
            }) else {
                continue;
            };
            let Ok(mut sink) = tokio::net::UnixStream::connect(&sock).await else {
                continue;
            };
            // A close message first: chansrv drops what an earlier sound server left
            // in its 8 KiB block buffer (it sends whole blocks only).
            let mut msgs = vec![[1u32.to_le_bytes(), 8u32.to_le_bytes()].concat()];
            for part in fed.chunks(17_640) {
                let len = u32::try_from(8 + part.len()).unwrap();
                msgs.push([&0u32.to_le_bytes()[..], &len.to_le_bytes(), part].concat());
            }
            for m in msgs {
                if sink.write_all(&m).await.is_err() {
                    // Connected to a listener chansrv was replacing: again.
                    continue 'connect;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Keep the sink open until the reader is done.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    };
    let mut feeder = None;

    let mut got: Vec<u8> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // xrdp sends whole 8 KiB blocks: wait for all but the last partial one.
    let want = pcm.len() - pcm.len() % 8192;
    while got.len() < want && Instant::now() < deadline {
        x.pump().await;
        if feeder.is_none()
            && x.stage
                .get_svc_processor_mut::<ironrdp_rdpsnd::client::Rdpsnd>()
                .is_some_and(|snd| snd.version().is_ok())
        {
            feeder = Some(tokio::spawn(feed(pcm.clone(), display_file.clone())));
        }
        for chunk in rx.drain() {
            // xrdp offers PCM 44.1 kHz and 22.05 kHz stereo and picks 44.1 kHz.
            assert_eq!(chunk.format, PREFERRED[0]);
            got.extend_from_slice(&chunk.data);
        }
    }
    let feeder = feeder.expect("xrdp never offered RDPSND formats");
    if feeder.is_finished() {
        // It only ends early by failing: report why.
        feeder.await.unwrap();
    } else {
        feeder.abort();
    }
    assert!(
        got.len() >= want,
        "only {} of {want} PCM bytes arrived from xrdp",
        got.len()
    );
    // The tone starts at a block boundary unless chansrv still held older data:
    // find its first 64 bytes, then the rest must follow unchanged.
    let start = got
        .windows(64)
        .position(|w| w == &pcm[..64])
        .expect("the fed tone is not in what arrived");
    let n = (got.len() - start).min(pcm.len());
    assert!(n >= want - 8192, "only {n} bytes of the tone arrived");
    assert!(
        got[start..start + n] == pcm[..n],
        "samples changed on the way"
    );
    // And they become Guacamole instructions a client can play.
    let bytes = audio::audio_instructions(5, PREFERRED[0], &got, true);
    let (list, _) = guacr_protocol::parse_all(&bytes).unwrap();
    assert_eq!(list[0].args[1], "audio/L16;rate=44100,channels=2");
}
