//! The RDPSND static virtual channel → Guacamole `audio` streams (audio/L16), like guacd.
//!
//! # How the handler wires it (no threads: a queue the handler drains)
//!
//! ```text
//! // connect time, unless disable-audio=true (then the channel is not offered at all):
//! let accept = audio::user_accepts(&owner.client);          // owner listed audio/L16
//! let (rdpsnd, audio_rx) = audio::channel(accept);           // an `ironrdp_rdpsnd::client::Rdpsnd`
//! connector.static_channels: insert rdpsnd
//! let mut audio_out = audio::AudioStream::new(AUDIO_STREAM); // e.g. stream index 5
//!
//! // after every `ActiveStage::process(..)` (it feeds RDPSND PDUs to the channel and already
//! // answers format list, training and wave confirm in its ResponseFrame):
//! for chunk in audio_rx.drain() { audio_out.deliver(&session, &chunk); }
//! // optional, for Windows 8+ (tries the dynamic channel first): register
//! // audio::dvc_channel(&audio_rx, accept) in the DrdynvcClient (same queue).
//! // HandlerEvent::Left(user): audio_out.user_left(&user.id)
//! // session end: audio_out.close(&session)
//! ```
//!
//! * Formats: only `WAVE_FORMAT_PCM`, 16-bit, mono/stereo, 8–192 kHz that the server offers,
//!   in guacd's order of preference (44.1 kHz, 48 kHz, 22.05 kHz, stereo before mono, then any
//!   other rate). With `accept = false` (no user can play audio/L16) none is advertised, so the
//!   server sends no audio (guacd does the same when it has no audio encoder for the user).
//! * Each wave block becomes [`AudioChunk`] (format + PCM bytes, whole sample frames). The
//!   channel confirms each block itself (`SNDC_WAVECONFIRM` with the server's timestamp plus the
//!   time we held it, measured by a monotonic clock, and the block number).
//! * [`AudioStream::deliver`] sends `audio,<stream>,audio/L16;rate=<r>,channels=<c>` once per
//!   user and format, then `blob`s of ≤ 6048 bytes (base64) — only to users whose handshake
//!   `audio` list includes `audio/L16` (guacd's raw encoder rule). A format change ends the
//!   stream (`end`) and opens a new one. [`audio_instructions`] is the pure form of this.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use guacr_protocol::InstructionWriter;
use guacr_protocol::handshake::ClientInfo;
use guacr_session::Session;
use ironrdp_rdpsnd::client::{Rdpsnd, RdpsndClientHandler, RdpsndDvc, RdpsndDvcState};
use ironrdp_rdpsnd::pdu::{AudioFormat, PitchPdu, VolumePdu, WaveFormat};

/// Raw bytes per `blob` (guacd's limit); a multiple of every frame size we accept.
pub const BLOB_MAX: usize = 6048;

/// Audio queued for the handler before the oldest is dropped (~5 s at 48 kHz stereo).
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// The base mimetype users must list in their handshake.
pub const L16: &str = "audio/L16";

/// A PCM format as Guacamole describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PcmFormat {
    pub rate: u32,
    pub channels: u16,
    pub bits: u16,
}

impl PcmFormat {
    /// `audio/L16;rate=44100,channels=2` (guacd's raw encoder syntax; `audio/L8` for 8-bit).
    pub fn mimetype(&self) -> String {
        let base = if self.bits == 8 { "audio/L8" } else { L16 };
        format!("{base};rate={},channels={}", self.rate, self.channels)
    }

    /// Bytes per sample frame (all channels).
    pub fn frame_bytes(&self) -> usize {
        usize::from(self.channels).saturating_mul(usize::from(self.bits / 8).max(1))
    }

    /// The formats we can stream: PCM, 16-bit, 1–2 channels, 8–192 kHz.
    pub fn from_audio_format(f: &AudioFormat) -> Option<Self> {
        let ok = f.format == WaveFormat::PCM
            && f.bits_per_sample == 16
            && (1..=2).contains(&f.n_channels)
            && (8_000..=192_000).contains(&f.n_samples_per_sec);
        ok.then_some(PcmFormat {
            rate: f.n_samples_per_sec,
            channels: f.n_channels,
            bits: f.bits_per_sample,
        })
    }

    /// The `AUDIO_FORMAT` describing this PCM format.
    pub fn to_audio_format(self) -> AudioFormat {
        let block_align = self.channels.saturating_mul(self.bits / 8);
        AudioFormat {
            format: WaveFormat::PCM,
            n_channels: self.channels,
            n_samples_per_sec: self.rate,
            n_avg_bytes_per_sec: self.rate.saturating_mul(u32::from(block_align)),
            n_block_align: block_align,
            bits_per_sample: self.bits,
            data: None,
        }
    }
}

/// Our preferred formats, best first (what guacd streams: 16-bit PCM).
pub const PREFERRED: [PcmFormat; 6] = [
    PcmFormat {
        rate: 44_100,
        channels: 2,
        bits: 16,
    },
    PcmFormat {
        rate: 48_000,
        channels: 2,
        bits: 16,
    },
    PcmFormat {
        rate: 22_050,
        channels: 2,
        bits: 16,
    },
    PcmFormat {
        rate: 44_100,
        channels: 1,
        bits: 16,
    },
    PcmFormat {
        rate: 48_000,
        channels: 1,
        bits: 16,
    },
    PcmFormat {
        rate: 22_050,
        channels: 1,
        bits: 16,
    },
];

/// The server formats we advertise back, best first: acceptable PCM formats
/// ordered by [`PREFERRED`], then other acceptable ones in the server's order.
/// The entries are the server's own (so they match it exactly).
pub fn choose_formats(server: &[AudioFormat]) -> Vec<AudioFormat> {
    let rank = |f: &AudioFormat| {
        PcmFormat::from_audio_format(f).map(|p| {
            PREFERRED
                .iter()
                .position(|q| *q == p)
                .unwrap_or(PREFERRED.len())
        })
    };
    let mut picked: Vec<(usize, usize, &AudioFormat)> = server
        .iter()
        .enumerate()
        .filter_map(|(i, f)| rank(f).map(|r| (r, i, f)))
        .collect();
    picked.sort_by_key(|&(r, i, _)| (r, i));
    let mut seen = HashSet::new();
    picked
        .into_iter()
        .filter(|(_, _, f)| PcmFormat::from_audio_format(f).is_some_and(|p| seen.insert(p)))
        .map(|(_, _, f)| f.clone())
        .collect()
}

/// Whether a user's handshake lists `audio/L16` (parameters ignored, case-insensitive).
pub fn user_accepts(client: &ClientInfo) -> bool {
    client.audio_mimetypes.iter().any(|m| {
        m.split(';')
            .next()
            .is_some_and(|base| base.trim().eq_ignore_ascii_case(L16))
    })
}

/// One wave block from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioChunk {
    pub format: PcmFormat,
    /// Interleaved little-endian samples, whole frames only.
    pub data: Vec<u8>,
}

/// The handler's end of the audio queue.
#[derive(Debug, Clone, Default)]
pub struct AudioReceiver {
    queue: Arc<Mutex<Queue>>,
}

#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<AudioChunk>,
    bytes: usize,
}

impl AudioReceiver {
    /// Every chunk received since the last call, oldest first.
    pub fn drain(&self) -> Vec<AudioChunk> {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        q.bytes = 0;
        q.chunks.drain(..).collect()
    }
}

/// The [`RdpsndClientHandler`]: wave blocks go to the [`AudioReceiver`].
#[derive(Debug)]
pub struct GuacAudio {
    accept: bool,
    formats: Vec<AudioFormat>,
    queue: Arc<Mutex<Queue>>,
}

impl GuacAudio {
    /// `accept = false` advertises no format (nobody can play audio/L16).
    pub fn new(accept: bool) -> (Self, AudioReceiver) {
        let rx = AudioReceiver::default();
        (Self::with_queue(accept, rx.queue.clone()), rx)
    }

    fn with_queue(accept: bool, queue: Arc<Mutex<Queue>>) -> Self {
        let formats = if accept {
            PREFERRED.iter().map(|p| p.to_audio_format()).collect()
        } else {
            Vec::new()
        };
        GuacAudio {
            accept,
            formats,
            queue,
        }
    }

    fn push(&self, chunk: AudioChunk) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        q.bytes += chunk.data.len();
        q.chunks.push_back(chunk);
        while q.bytes > MAX_QUEUED_BYTES {
            let Some(old) = q.chunks.pop_front() else {
                q.bytes = 0;
                break;
            };
            q.bytes = q.bytes.saturating_sub(old.data.len());
        }
    }
}

impl RdpsndClientHandler for GuacAudio {
    fn get_formats(&self) -> &[AudioFormat] {
        &self.formats
    }

    fn choose_formats(&self, server_formats: &[AudioFormat]) -> Vec<AudioFormat> {
        if !self.accept {
            return Vec::new();
        }
        choose_formats(server_formats)
    }

    fn wave(&mut self, format: &AudioFormat, _ts: u32, data: std::borrow::Cow<'_, [u8]>) {
        let Some(pcm) = PcmFormat::from_audio_format(format) else {
            return;
        };
        let whole = data.len() - data.len() % pcm.frame_bytes();
        if whole == 0 {
            return;
        }
        let data = match data {
            std::borrow::Cow::Owned(mut v) => {
                v.truncate(whole);
                v
            }
            std::borrow::Cow::Borrowed(b) => b.get(..whole).unwrap_or_default().to_vec(),
        };
        self.push(AudioChunk { format: pcm, data });
    }

    fn set_volume(&mut self, _volume: VolumePdu) {}

    fn set_pitch(&mut self, _pitch: PitchPdu) {}

    fn close(&mut self) {}
}

/// Builds the RDPSND channel (with a monotonic clock for wave confirm timing) and
/// its queue. Do not call it with `disable-audio=true`: the channel is not offered then.
pub fn channel(accept: bool) -> (Rdpsnd, AudioReceiver) {
    let (handler, rx) = GuacAudio::new(accept);
    let epoch = Instant::now();
    let clock: Box<dyn Fn() -> Duration + Send> = Box::new(move || epoch.elapsed());
    (Rdpsnd::new(Box::new(handler)).with_clock(clock), rx)
}

/// The same audio output on the `AUDIO_PLAYBACK_DVC` dynamic channel (Windows 8+
/// servers try it before the static channel), feeding the same `rx`. Register it
/// in the `DrdynvcClient` next to [`channel`]'s static one.
pub fn dvc_channel(rx: &AudioReceiver, accept: bool) -> RdpsndDvc {
    let handler = GuacAudio::with_queue(accept, rx.queue.clone());
    let epoch = Instant::now();
    let clock: Box<dyn Fn() -> Duration + Send> = Box::new(move || epoch.elapsed());
    RdpsndDvcState::new(Box::new(handler))
        .with_clock(clock)
        .channel()
}

/// The Guacamole instructions for `pcm` on `stream`: `audio,<stream>,<mime>` first when
/// `open`, then `blob`s of at most [`BLOB_MAX`] bytes, each holding whole sample frames.
/// A trailing partial frame is dropped.
pub fn audio_instructions(stream: i32, format: PcmFormat, pcm: &[u8], open: bool) -> Vec<u8> {
    let frame = format.frame_bytes().max(1);
    let chunk = (BLOB_MAX - BLOB_MAX % frame).max(frame);
    let whole = pcm.len() - pcm.len() % frame;
    let pcm = pcm.get(..whole).unwrap_or_default();
    let mut buf = Vec::with_capacity(pcm.len() * 4 / 3 + 64);
    if open {
        InstructionWriter::new(&mut buf, "audio")
            .arg(&stream)
            .arg(format.mimetype().as_str())
            .finish();
    }
    for part in pcm.chunks(chunk) {
        InstructionWriter::new(&mut buf, "blob")
            .arg(&stream)
            .arg_base64(part)
            .finish();
    }
    buf
}

/// `end,<stream>`.
pub fn end_instruction(stream: i32) -> Vec<u8> {
    let mut buf = Vec::new();
    InstructionWriter::new(&mut buf, "end")
        .arg(&stream)
        .finish();
    buf
}

/// The session's audio stream: which users have it open, in which format.
#[derive(Debug)]
pub struct AudioStream {
    stream: i32,
    format: Option<PcmFormat>,
    opened: HashSet<String>,
}

impl AudioStream {
    pub fn new(stream: i32) -> Self {
        AudioStream {
            stream,
            format: None,
            opened: HashSet::new(),
        }
    }

    /// Sends a chunk to every user that accepts audio/L16 (opening the stream for
    /// users that have not got it in this format yet).
    pub fn deliver(&mut self, session: &Session, chunk: &AudioChunk) {
        let users = session.users();
        let wanting: Vec<String> = users
            .iter()
            .filter(|u| user_accepts(&u.client))
            .map(|u| u.id.clone())
            .collect();
        for (user, bytes) in self.plan(&wanting, chunk) {
            session.send_to(&user, &bytes);
        }
        let present: HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
        self.opened.retain(|id| present.contains(id.as_str()));
    }

    /// What each wanting user receives for `chunk` (pure part of [`deliver`](Self::deliver)).
    fn plan(&mut self, wanting: &[String], chunk: &AudioChunk) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        if self.format != Some(chunk.format) {
            // A new format: end the old stream for whoever has it.
            if self.format.is_some() {
                let end = end_instruction(self.stream);
                for id in self.opened.drain() {
                    out.push((id, end.clone()));
                }
            }
            self.format = Some(chunk.format);
        }
        let mut blobs: Option<Vec<u8>> = None;
        let mut opened: Option<Vec<u8>> = None;
        for id in wanting {
            let bytes = if self.opened.insert(id.clone()) {
                opened
                    .get_or_insert_with(|| {
                        audio_instructions(self.stream, chunk.format, &chunk.data, true)
                    })
                    .clone()
            } else {
                blobs
                    .get_or_insert_with(|| {
                        audio_instructions(self.stream, chunk.format, &chunk.data, false)
                    })
                    .clone()
            };
            out.push((id.clone(), bytes));
        }
        out
    }

    /// Forget a user that left.
    pub fn user_left(&mut self, user_id: &str) {
        self.opened.remove(user_id);
    }

    /// Ends the stream for every user that has it.
    pub fn close(&mut self, session: &Session) {
        let end = end_instruction(self.stream);
        for id in self.opened.drain() {
            session.send_to(&id, &end);
        }
        self.format = None;
    }
}

// An explicit path, so the file is found the same way when fuzz/ compiles
// this module in by `#[path]`.
#[cfg(test)]
#[path = "audio/xrdp_tests.rs"]
pub(crate) mod xrdp_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use ironrdp_pdu::{decode, encode_vec};
    use ironrdp_rdpsnd::pdu::{
        ClientAudioOutputPdu, ServerAudioFormatPdu, ServerAudioOutputPdu, TrainingPdu, Version,
        Wave2Pdu, WaveConfirmPdu,
    };
    use ironrdp_svc::{SvcMessage, SvcProcessor};
    use std::borrow::Cow;

    fn pcm(rate: u32, channels: u16, bits: u16) -> AudioFormat {
        PcmFormat {
            rate,
            channels,
            bits,
        }
        .to_audio_format()
    }

    fn other(tag: WaveFormat) -> AudioFormat {
        AudioFormat {
            format: tag,
            n_channels: 2,
            n_samples_per_sec: 44_100,
            n_avg_bytes_per_sec: 16_000,
            n_block_align: 2048,
            bits_per_sample: 4,
            data: None,
        }
    }

    fn client_pdus(msgs: Vec<SvcMessage>) -> Vec<ClientAudioOutputPdu> {
        msgs.iter()
            .map(|m| decode::<ClientAudioOutputPdu>(&m.encode_unframed_pdu().unwrap()).unwrap())
            .collect()
    }

    fn server(pdu: &ServerAudioOutputPdu<'_>) -> Vec<u8> {
        encode_vec(pdu).unwrap()
    }

    #[test]
    fn mimetypes_use_guacd_syntax() {
        assert_eq!(PREFERRED[0].mimetype(), "audio/L16;rate=44100,channels=2");
        assert_eq!(
            PcmFormat {
                rate: 22_050,
                channels: 1,
                bits: 16
            }
            .mimetype(),
            "audio/L16;rate=22050,channels=1"
        );
        assert_eq!(PREFERRED[1].frame_bytes(), 4);
        assert_eq!(PREFERRED[3].frame_bytes(), 2);
    }

    #[test]
    fn only_16_bit_pcm_is_chosen_in_preference_order() {
        let server = vec![
            other(WaveFormat::ADPCM),
            pcm(22_050, 2, 16),
            pcm(44_100, 2, 8),
            pcm(11_025, 2, 16),
            pcm(48_000, 1, 16),
            pcm(44_100, 2, 16),
            pcm(44_100, 6, 16),
            pcm(44_100, 2, 16),
        ];
        let chosen: Vec<PcmFormat> = choose_formats(&server)
            .iter()
            .map(|f| PcmFormat::from_audio_format(f).unwrap())
            .collect();
        assert_eq!(
            chosen,
            vec![
                PcmFormat {
                    rate: 44_100,
                    channels: 2,
                    bits: 16
                },
                PcmFormat {
                    rate: 22_050,
                    channels: 2,
                    bits: 16
                },
                PcmFormat {
                    rate: 48_000,
                    channels: 1,
                    bits: 16
                },
                PcmFormat {
                    rate: 11_025,
                    channels: 2,
                    bits: 16
                },
            ]
        );
        assert!(choose_formats(&[other(WaveFormat::ADPCM)]).is_empty());
    }

    #[test]
    fn user_acceptance_follows_the_handshake_list() {
        let mut c = ClientInfo::default();
        assert!(!user_accepts(&c));
        c.audio_mimetypes = vec!["audio/ogg".into(), "audio/L8".into()];
        assert!(!user_accepts(&c));
        c.audio_mimetypes.push("audio/L16".into());
        assert!(user_accepts(&c));
        c.audio_mimetypes = vec!["AUDIO/l16; rate=44100".into()];
        assert!(user_accepts(&c));
    }

    #[test]
    fn instructions_open_then_split_blobs() {
        let f = PREFERRED[0];
        let data: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        let bytes = audio_instructions(5, f, &data, true);
        let (list, used) = guacr_protocol::parse_all(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(list[0].opcode, "audio");
        assert_eq!(list[0].args, ["5", "audio/L16;rate=44100,channels=2"]);
        let mut back = Vec::new();
        for ins in &list[1..] {
            assert_eq!(ins.opcode, "blob");
            assert_eq!(ins.args[0], "5");
            let raw = guacr_protocol::base64::decode_lenient(ins.args[1].as_bytes());
            assert!(raw.len() <= BLOB_MAX);
            assert_eq!(raw.len() % 4, 0);
            back.extend(raw);
        }
        assert_eq!(list.len(), 1 + 4); // 20000 = 3 × 6048 + 1856
        assert_eq!(back, data);
        let no_open = audio_instructions(5, f, &data[..8], false);
        assert_eq!(guacr_protocol::parse_all(&no_open).unwrap().0.len(), 1);
    }

    #[test]
    fn odd_sizes_never_panic_and_keep_whole_frames() {
        for f in PREFERRED {
            for len in [0usize, 1, 2, 3, 5, 6047, 6048, 6049, 12_097] {
                let data = vec![7u8; len];
                let bytes = audio_instructions(1, f, &data, false);
                let (list, _) = guacr_protocol::parse_all(&bytes).unwrap();
                let total: usize = list
                    .iter()
                    .map(|i| guacr_protocol::base64::decode_lenient(i.args[1].as_bytes()).len())
                    .sum();
                assert_eq!(total, len - len % f.frame_bytes(), "{f:?} {len}");
            }
        }
        // A degenerate format (0 channels) does not divide by zero.
        let odd = PcmFormat {
            rate: 8000,
            channels: 0,
            bits: 16,
        };
        let _ = audio_instructions(1, odd, &[1, 2, 3], true);
    }

    #[test]
    fn stream_opens_per_user_and_reopens_on_format_change() {
        let mut s = AudioStream::new(5);
        let a = AudioChunk {
            format: PREFERRED[0],
            data: vec![0; 8],
        };
        let users = vec!["@u1".to_owned()];
        let out = s.plan(&users, &a);
        let ops = |b: &[u8]| {
            guacr_protocol::parse_all(b)
                .unwrap()
                .0
                .into_iter()
                .map(|i| i.opcode)
                .collect::<Vec<_>>()
        };
        assert_eq!(out.len(), 1);
        assert_eq!(ops(&out[0].1), ["audio", "blob"]);
        // Second chunk: only blobs; a joiner gets the opener.
        let users2 = vec!["@u1".to_owned(), "@u2".to_owned()];
        let out = s.plan(&users2, &a);
        assert_eq!(ops(&out[0].1), ["blob"]);
        assert_eq!(ops(&out[1].1), ["audio", "blob"]);
        // New format: old stream ended for both, reopened with the new mimetype.
        let b = AudioChunk {
            format: PREFERRED[3],
            data: vec![0; 8],
        };
        let out = s.plan(&users2, &b);
        let ends = out.iter().filter(|(_, d)| ops(d) == ["end"]).count();
        assert_eq!(ends, 2);
        let reopened: Vec<_> = out
            .iter()
            .filter(|(_, d)| ops(d) == ["audio", "blob"])
            .collect();
        assert_eq!(reopened.len(), 2);
        let (list, _) = guacr_protocol::parse_all(&reopened[0].1).unwrap();
        assert_eq!(list[0].args[1], "audio/L16;rate=44100,channels=1");
        s.user_left("@u2");
        let out = s.plan(&users2, &b);
        assert_eq!(ops(&out[1].1), ["audio", "blob"]);
    }

    /// Format negotiation, training and a wave through IronRDP's client channel.
    #[test]
    fn channel_negotiates_pcm_and_confirms_waves() {
        let (mut snd, rx) = channel(true);
        let formats = vec![
            other(WaveFormat::ADPCM),
            pcm(22_050, 2, 16),
            pcm(44_100, 2, 16),
        ];
        let offer = ServerAudioOutputPdu::AudioFormat(ServerAudioFormatPdu {
            version: Version::V8,
            formats,
        });
        let replies = client_pdus(snd.process(&server(&offer)).unwrap());
        let ClientAudioOutputPdu::AudioFormat(ours) = &replies[0] else {
            panic!("{replies:?}");
        };
        let ours: Vec<PcmFormat> = ours
            .formats
            .iter()
            .map(|f| PcmFormat::from_audio_format(f).unwrap())
            .collect();
        assert_eq!(ours, vec![PREFERRED[0], PREFERRED[2]]);
        assert!(matches!(replies[1], ClientAudioOutputPdu::QualityMode(_)));

        let training = ServerAudioOutputPdu::Training(TrainingPdu {
            timestamp: 77,
            data: vec![0; 16],
        });
        let replies = client_pdus(snd.process(&server(&training)).unwrap());
        assert!(
            matches!(&replies[0], ClientAudioOutputPdu::TrainingConfirm(t) if t.timestamp == 77 && t.pack_size == 16),
            "{replies:?}"
        );

        // format_no 1 = our second advertised format (22.05 kHz stereo).
        let samples: Vec<u8> = (0..403u32).map(|i| i as u8).collect();
        let wave = ServerAudioOutputPdu::Wave2(Wave2Pdu {
            timestamp: 1000,
            format_no: 1,
            block_no: 9,
            audio_timestamp: 5,
            data: Cow::Borrowed(&samples),
        });
        let replies = client_pdus(snd.process(&server(&wave)).unwrap());
        let ClientAudioOutputPdu::WaveConfirm(WaveConfirmPdu {
            timestamp,
            block_no,
        }) = replies[0]
        else {
            panic!("{replies:?}");
        };
        assert_eq!(block_no, 9);
        assert!((1000..1100).contains(&timestamp), "{timestamp}");
        let chunks = rx.drain();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].format, PREFERRED[2]);
        assert_eq!(chunks[0].data, samples[..400]);
        assert!(rx.drain().is_empty());

        // A wave for a format index we never advertised: confirmed, not played.
        let wave = ServerAudioOutputPdu::Wave2(Wave2Pdu {
            timestamp: 2000,
            format_no: 7,
            block_no: 10,
            audio_timestamp: 6,
            data: Cow::Borrowed(&samples),
        });
        let replies = client_pdus(snd.process(&server(&wave)).unwrap());
        assert!(matches!(
            replies[0],
            ClientAudioOutputPdu::WaveConfirm(WaveConfirmPdu { block_no: 10, .. })
        ));
        assert!(rx.drain().is_empty());
    }

    #[test]
    fn dynamic_channel_feeds_the_same_queue() {
        use ironrdp_dvc::DvcProcessor;
        let (_snd, rx) = channel(true);
        let mut dvc = dvc_channel(&rx, true);
        assert_eq!(dvc.channel_name(), "AUDIO_PLAYBACK_DVC");
        assert!(dvc.start(3).unwrap().is_empty());
        let offer = ServerAudioOutputPdu::AudioFormat(ServerAudioFormatPdu {
            version: Version::V8,
            formats: vec![pcm(48_000, 2, 16)],
        });
        assert_eq!(dvc.process(3, &server(&offer)).unwrap().len(), 2);
        let training = ServerAudioOutputPdu::Training(TrainingPdu {
            timestamp: 1,
            data: vec![],
        });
        assert_eq!(dvc.process(3, &server(&training)).unwrap().len(), 1);
        let samples = vec![1u8; 64];
        let wave = ServerAudioOutputPdu::Wave2(Wave2Pdu {
            timestamp: 10,
            format_no: 0,
            block_no: 1,
            audio_timestamp: 0,
            data: Cow::Borrowed(&samples),
        });
        assert_eq!(dvc.process(3, &server(&wave)).unwrap().len(), 1);
        let chunks = rx.drain();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].format, PREFERRED[1]);
        assert_eq!(chunks[0].data, samples);
    }

    #[test]
    fn not_accepting_advertises_nothing() {
        let (mut snd, _rx) = channel(false);
        let offer = ServerAudioOutputPdu::AudioFormat(ServerAudioFormatPdu {
            version: Version::V6,
            formats: vec![pcm(44_100, 2, 16)],
        });
        let replies = client_pdus(snd.process(&server(&offer)).unwrap());
        let ClientAudioOutputPdu::AudioFormat(ours) = &replies[0] else {
            panic!("{replies:?}");
        };
        assert!(ours.formats.is_empty());
    }

    #[test]
    fn malformed_pdus_do_not_panic() {
        let (mut snd, rx) = channel(true);
        for bad in [
            &[][..],
            &[0x07],
            &[0x07, 0x00, 0xff, 0xff, 0x00],
            &[0x0D, 0x00, 0x04, 0x00, 0x01, 0x02],
            &[0x02, 0x00, 0x10, 0x00, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0xff; 64],
        ] {
            let _ = snd.process(bad);
        }
        assert!(rx.drain().is_empty());
    }

    /// Random PDUs (valid message types, random bodies) after a real negotiation.
    #[test]
    fn random_pdus_never_panic() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut snd, rx) = channel(true);
        let offer = ServerAudioOutputPdu::AudioFormat(ServerAudioFormatPdu {
            version: Version::V8,
            formats: vec![pcm(44_100, 2, 16), pcm(22_050, 1, 16)],
        });
        snd.process(&server(&offer)).unwrap();
        let training = ServerAudioOutputPdu::Training(TrainingPdu {
            timestamp: 1,
            data: vec![],
        });
        snd.process(&server(&training)).unwrap();
        for _ in 0..20_000 {
            let len = (next() % 48) as usize;
            let mut pdu: Vec<u8> = (0..len + 4).map(|_| next() as u8).collect();
            pdu[0] = (next() % 0x10) as u8;
            if next() % 4 != 0 {
                pdu[2..4].copy_from_slice(&(len as u16).to_le_bytes());
            }
            let _ = snd.process(&pdu);
            for chunk in rx.drain() {
                assert_eq!(chunk.data.len() % chunk.format.frame_bytes(), 0);
            }
        }
    }

    #[test]
    fn queue_is_bounded() {
        let (mut h, rx) = GuacAudio::new(true);
        let f = PREFERRED[0].to_audio_format();
        for _ in 0..400 {
            h.wave(&f, 0, Cow::Owned(vec![0; 6000]));
        }
        let total: usize = rx.drain().iter().map(|c| c.data.len()).sum();
        assert!(total <= MAX_QUEUED_BYTES && total > MAX_QUEUED_BYTES / 2);
    }
}
