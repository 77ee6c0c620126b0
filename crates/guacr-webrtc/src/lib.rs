//! WebRTC for guacr's web gateway (issue 9): one [`Peer`] per browser tunnel.
//!
//! * [`accept`] takes the browser's SDP offer and answers it with host
//!   candidates on the configured addresses (one UDP socket per address),
//!   a data channel, and — when the offer has a `recvonly` video m-line,
//!   video is wanted and an encoder starts — an H.264 video track whose
//!   m-line announces the server's bitrate ceiling as `b=TIAS`.
//! * [`Peer::spawn`] runs the peer on tokio: str0m (sans-IO) is fed the
//!   sockets and timers; data-channel messages go both ways through
//!   channels ([`PeerHandle`]); video frames come from a session's
//!   [`VideoFeed`](guacr_session::VideoFeed) watch, are encoded off the
//!   runtime (`spawn_blocking`, latest frame wins, paced to `max_fps`) by a
//!   [`guacr_video::VideoPipeline`] (PLI throttle, bitrate from the
//!   bandwidth estimate capped by the ceiling) and written to the track once
//!   ICE and DTLS are connected.
//!
//! The peer ends when the data channel closes, ICE fails, the channel does
//! not open within the open timeout, or the tunnel side drops its sender.

pub mod sdp;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use guacr_session::VideoFrame;
use guacr_video::{BitrateController, EncoderPrefs, Frame, KeyframeThrottle, VideoPipeline};
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The data channel label the browser creates.
pub const CHANNEL_LABEL: &str = "guacamole";

/// Frames from a session's video feed.
pub type FrameSource = watch::Receiver<Option<Arc<VideoFrame>>>;

/// Video settings of a peer.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSettings {
    /// Ceiling in bits per second (`b=TIAS`, enforced by the encoder).
    pub max_bitrate: u32,
    /// Highest frame rate sent.
    pub max_fps: u32,
    /// `"auto"` (every backend, hardware first, openh264 last) or a backend
    /// name (`"openh264"`).
    pub encoder: String,
}

impl Default for VideoSettings {
    fn default() -> Self {
        VideoSettings {
            max_bitrate: 4_000_000,
            max_fps: 30,
            encoder: "auto".into(),
        }
    }
}

/// How a peer is set up.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Addresses of the host candidates (one UDP socket each, port chosen
    /// by the system).
    pub addresses: Vec<IpAddr>,
    /// `Some`: send video when the offer asks for it.
    pub video: Option<VideoSettings>,
    /// The data channel must open within this time.
    pub open_timeout: Duration,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            addresses: default_addresses(),
            video: Some(VideoSettings::default()),
            open_timeout: Duration::from_secs(30),
        }
    }
}

/// Every non-loopback IPv4 address of the host's interfaces, then
/// 127.0.0.1 (browsers on the same host use it; Chromium needs a
/// non-loopback interface to gather any candidate at all).
pub fn default_addresses() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(ip) = a
                .address
                .as_ref()
                .and_then(|s| s.as_sockaddr_in())
                .map(|s| IpAddr::V4(s.ip()))
            else {
                continue;
            };
            if !ip.is_loopback() && !ip.is_unspecified() && !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out.push(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    out
}

/// Why a peer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The offer is not SDP str0m can answer (HTTP 400).
    #[error("bad SDP offer: {0}")]
    BadOffer(String),
    /// No socket could be bound, or str0m failed (HTTP 500).
    #[error("WebRTC setup failed: {0}")]
    Setup(String),
}

/// An answered offer.
pub struct Accepted {
    /// The SDP answer for the browser.
    pub answer: String,
    /// The encoder backend when the answer carries video, else `None`.
    pub video: Option<String>,
    /// The peer, to [`spawn`](Peer::spawn).
    pub peer: Peer,
}

/// A peer between [`accept`] and [`Peer::spawn`].
pub struct Peer {
    rtc: Rtc,
    sockets: Vec<Arc<UdpSocket>>,
    pipeline: Option<VideoPipeline>,
    max_fps: u32,
    ceiling: u32,
    open_timeout: Duration,
}

fn crypto() -> Arc<str0m::config::CryptoProvider> {
    static P: OnceLock<Arc<str0m::config::CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(str0m::crypto::from_feature_flags()))
        .clone()
}

/// Answers the browser's offer (see the crate docs). Must run inside a
/// tokio runtime (the sockets are registered with it).
pub fn accept(offer: &str, cfg: &PeerConfig) -> Result<Accepted, PeerError> {
    if offer.len() > 64 * 1024 {
        return Err(PeerError::BadOffer("offer larger than 64 KiB".into()));
    }
    if !offer.trim_start().starts_with("v=0") {
        return Err(PeerError::BadOffer("not an SDP offer (no v=0)".into()));
    }
    // Video: asked for, enabled, and an encoder starts.
    let mut pipeline = None;
    let mut ceiling = 0;
    let mut max_fps = 30;
    if let Some(v) = &cfg.video
        && sdp::offers_recvonly_video(offer)
    {
        let prefs = EncoderPrefs {
            backends: match v.encoder.as_str() {
                "" | "auto" => Vec::new(),
                name => vec![name.to_owned()],
            },
            max_bitrate: v.max_bitrate,
            start_bitrate: (v.max_bitrate / 2).max(300_000),
            max_fps: v.max_fps.clamp(1, 60) as f32,
        };
        match guacr_video::select(&prefs) {
            Ok(enc) => {
                let ceiling_bps = enc.max_bitrate();
                pipeline = Some(VideoPipeline::new(
                    enc,
                    KeyframeThrottle::default(),
                    BitrateController::new(ceiling_bps, 300_000, prefs.start_bitrate),
                ));
                ceiling = ceiling_bps;
                max_fps = v.max_fps.clamp(1, 60);
            }
            Err(e) => {
                tracing::info!("WebRTC video off, the session draws with img: {e}");
            }
        }
    }
    let offer_text = if pipeline.is_some() {
        offer.to_owned()
    } else {
        sdp::without_video(offer)
    };
    let parsed =
        SdpOffer::from_sdp_string(&offer_text).map_err(|e| PeerError::BadOffer(e.to_string()))?;

    let mut rtc_cfg = RtcConfig::new()
        .set_crypto_provider(crypto())
        .clear_codecs()
        .enable_h264(true)
        // Lets the browser show each frame as soon as it is decoded.
        .set_extension(5, str0m::rtp::Extension::PlayoutDelay);
    if pipeline.is_some() {
        rtc_cfg = rtc_cfg.enable_bwe(Some(Bitrate::bps(u64::from(ceiling / 2))));
    }
    let mut rtc = rtc_cfg.build(Instant::now());

    let mut sockets = Vec::new();
    for ip in &cfg.addresses {
        let bound = std::net::UdpSocket::bind(SocketAddr::new(*ip, 0))
            .and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .and_then(UdpSocket::from_std);
        let sock = match bound {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(address = %ip, "cannot bind a WebRTC socket: {e}");
                continue;
            }
        };
        let Ok(local) = sock.local_addr() else {
            continue;
        };
        match Candidate::host(local, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
                sockets.push(Arc::new(sock));
            }
            Err(e) => tracing::warn!(address = %local, "bad host candidate: {e}"),
        }
    }
    if sockets.is_empty() {
        return Err(PeerError::Setup(
            "no UDP socket could be bound on the configured addresses".into(),
        ));
    }
    let answer = rtc
        .sdp_api()
        .accept_offer(parsed)
        .map_err(|e| PeerError::BadOffer(e.to_string()))?;
    let mut answer = answer.to_sdp_string();
    let video = if pipeline.is_some() && sdp::answer_sends_video(&answer) {
        answer = sdp::with_tias(&answer, ceiling);
        pipeline.as_ref().map(|p| p.encoder_name().to_owned())
    } else {
        pipeline = None;
        None
    };
    Ok(Accepted {
        answer,
        video,
        peer: Peer {
            rtc,
            sockets,
            pipeline,
            max_fps,
            ceiling,
            open_timeout: cfg.open_timeout,
        },
    })
}

/// What the peer tells the tunnel.
#[derive(Debug)]
pub enum PeerEvent {
    /// The `guacamole` data channel is open.
    Open,
    /// A message from the browser on the data channel.
    Message(Vec<u8>),
    /// Video stopped for good (the encoder failed): draw with `img` again.
    VideoStopped(String),
}

/// Counters of a finished peer.
#[derive(Debug, Clone, Default)]
pub struct PeerStats {
    /// Video frames, keyframes and bytes sent.
    pub frames: u64,
    pub keyframes: u64,
    pub video_bytes: u64,
    /// Keyframe requests (PLI/FIR) received.
    pub keyframe_requests: u64,
    /// Why the peer ended.
    pub end: String,
}

/// The tunnel's side of a running peer.
pub struct PeerHandle {
    /// Events in order; `None` once the peer has ended.
    pub events: mpsc::Receiver<PeerEvent>,
    /// Text messages for the browser (whole instructions). Dropping it
    /// closes the peer after what is queued has been sent (≤ 2 s).
    pub outgoing: mpsc::Sender<Vec<u8>>,
    video_source: Option<oneshot::Sender<FrameSource>>,
    /// The driver task; resolves with the peer's counters.
    pub task: JoinHandle<PeerStats>,
}

impl PeerHandle {
    /// Feeds the video track from a session's frames (once).
    pub fn set_video_source(&mut self, frames: FrameSource) {
        if let Some(tx) = self.video_source.take() {
            let _ = tx.send(frames);
        }
    }
}

impl Peer {
    /// Whether the answer carries video.
    pub fn has_video(&self) -> bool {
        self.pipeline.is_some()
    }

    /// The local socket addresses (host candidates).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// Runs the peer in its own task.
    pub fn spawn(self) -> PeerHandle {
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let (out_tx, out_rx) = mpsc::channel(64);
        let (src_tx, src_rx) = oneshot::channel();
        let task = tokio::spawn(self.drive(ev_tx, out_rx, src_rx));
        PeerHandle {
            events: ev_rx,
            outgoing: out_tx,
            video_source: Some(src_tx),
            task,
        }
    }

    async fn drive(
        self,
        events: mpsc::Sender<PeerEvent>,
        outgoing: mpsc::Receiver<Vec<u8>>,
        source: oneshot::Receiver<FrameSource>,
    ) -> PeerStats {
        let (in_tx, in_rx) = mpsc::channel(512);
        let readers: Vec<JoinHandle<()>> = self
            .sockets
            .iter()
            .map(|s| tokio::spawn(read_socket(s.clone(), in_tx.clone())))
            .collect();
        drop(in_tx);
        let peers = metrics::gauge!("guacr_webrtc_peers");
        peers.increment(1.0);
        let started = Instant::now();
        let mut d = Driver {
            rtc: self.rtc,
            sockets: self.sockets,
            pipeline: self.pipeline,
            frame_interval: Duration::from_secs_f64(1.0 / f64::from(self.max_fps.max(1))),
            ceiling: self.ceiling,
            events,
            channel: None,
            connected: false,
            video: None,
            frames: None,
            current: None,
            dirty_while_encoding: false,
            pli_while_encoding: 0,
            next_encode: started,
            started,
            open_deadline: started + self.open_timeout,
            pending_out: VecDeque::new(),
            closing: None,
            stats: PeerStats::default(),
        };
        let end = d.run(in_rx, outgoing, source).await;
        for r in readers {
            r.abort();
        }
        d.rtc.disconnect();
        if let Some(p) = &d.pipeline {
            let (frames, keys, bytes) = p.stats();
            d.stats.frames = frames;
            d.stats.keyframes = keys;
            d.stats.video_bytes = bytes;
        }
        tracing::debug!(
            end = %end,
            frames = d.stats.frames,
            keyframes = d.stats.keyframes,
            bytes = d.stats.video_bytes,
            "WebRTC peer ended"
        );
        peers.decrement(1.0);
        d.stats.end = end;
        d.stats
    }
}

/// A datagram: (local address, remote address, payload).
type Datagram = (SocketAddr, SocketAddr, Vec<u8>);

async fn read_socket(sock: Arc<UdpSocket>, tx: mpsc::Sender<Datagram>) {
    let Ok(local) = sock.local_addr() else {
        return;
    };
    let mut buf = vec![0u8; 2048];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                if tx.send((local, from, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // ICMP errors (port unreachable) surface here on Linux.
                tracing::trace!("WebRTC socket read: {e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

type Encoded = (
    VideoPipeline,
    Instant,
    Result<Option<guacr_video::EncodedFrame>, guacr_video::VideoError>,
);

struct Driver {
    rtc: Rtc,
    sockets: Vec<Arc<UdpSocket>>,
    /// `None` without video, or while a frame is being encoded.
    pipeline: Option<VideoPipeline>,
    frame_interval: Duration,
    ceiling: u32,
    events: mpsc::Sender<PeerEvent>,
    channel: Option<ChannelId>,
    connected: bool,
    /// The video m-line and the payload type chosen from the offer.
    video: Option<(Mid, Pt)>,
    frames: Option<FrameSource>,
    /// The newest screen.
    current: Option<Arc<VideoFrame>>,
    dirty_while_encoding: bool,
    pli_while_encoding: u32,
    next_encode: Instant,
    started: Instant,
    open_deadline: Instant,
    /// Messages waiting for room in the SCTP send buffer.
    pending_out: VecDeque<Vec<u8>>,
    /// Set when the tunnel dropped its sender: flush, then end.
    closing: Option<Instant>,
    stats: PeerStats,
}

/// Most bytes queued in the data channel before the tunnel waits.
const MAX_BUFFERED: usize = 1 << 20;

impl Driver {
    async fn run(
        &mut self,
        mut input: mpsc::Receiver<Datagram>,
        mut outgoing: mpsc::Receiver<Vec<u8>>,
        mut source: oneshot::Receiver<FrameSource>,
    ) -> String {
        let mut encoding: Option<JoinHandle<Encoded>> = None;
        let mut source_open = true;
        let mut outgoing_open = true;
        loop {
            // Queued messages into SCTP first, so that the drain below sends
            // them now rather than at str0m's next timeout.
            if let Err(end) = self.flush_out() {
                return end;
            }
            // Everything str0m wants done now, and its next deadline.
            let rtc_deadline = match self.drain().await {
                Ok(t) => t,
                Err(end) => return end,
            };
            let now = Instant::now();
            if self.channel.is_none() && now >= self.open_deadline {
                return "the data channel did not open in time".into();
            }
            if let Some(t) = self.closing
                && (now >= t || (self.pending_out.is_empty() && self.buffered() == 0))
            {
                return "tunnel closed".into();
            }
            if encoding.is_none() {
                encoding = self.maybe_encode(now);
            }
            let mut deadline = rtc_deadline.min(self.open_deadline);
            if let Some(t) = self.closing {
                deadline = deadline.min(t).min(now + Duration::from_millis(20));
            }
            if encoding.is_none()
                && let Some(t) = self.video_deadline(now)
            {
                deadline = deadline.min(t);
            }
            let room = outgoing_open
                && self.closing.is_none()
                && self.channel.is_some()
                && self.pending_out.is_empty()
                && self.buffered() < MAX_BUFFERED;
            tokio::select! {
                d = input.recv() => {
                    let Some((local, from, data)) = d else {
                        return "sockets closed".into();
                    };
                    let now = Instant::now();
                    match Receive::new(Protocol::Udp, from, local, &data) {
                        Ok(r) => {
                            if let Err(e) = self.rtc.handle_input(Input::Receive(now, r)) {
                                return format!("WebRTC error: {e}");
                            }
                        }
                        Err(e) => tracing::trace!("unparseable datagram from {from}: {e}"),
                    }
                }
                m = outgoing.recv(), if room => match m {
                    Some(m) => {
                        self.pending_out.push_back(m);
                        // Whatever else is ready goes out in the same round.
                        while self.pending_out.len() < 32
                            && let Ok(m) = outgoing.try_recv()
                        {
                            self.pending_out.push_back(m);
                        }
                    }
                    None => {
                        outgoing_open = false;
                        self.closing = Some(Instant::now() + Duration::from_secs(2));
                    }
                },
                s = &mut source, if source_open => {
                    source_open = false;
                    if let Ok(rx) = s
                        && self.pipeline.is_some()
                    {
                        self.current = rx.borrow().clone();
                        self.frames = Some(rx);
                        if let Some(p) = &mut self.pipeline {
                            p.mark_dirty();
                        }
                    }
                }
                c = changed(&mut self.frames) => {
                    if c {
                        self.current = self.frames.as_ref().and_then(|f| f.borrow().clone());
                        match &mut self.pipeline {
                            Some(p) => p.mark_dirty(),
                            None => self.dirty_while_encoding = true,
                        }
                    } else {
                        self.frames = None; // the session is gone
                    }
                }
                r = join(&mut encoding) => {
                    encoding = None;
                    match r {
                        Ok((mut p, at, result)) => {
                            if std::mem::take(&mut self.dirty_while_encoding) {
                                p.mark_dirty();
                            }
                            for _ in 0..std::mem::take(&mut self.pli_while_encoding) {
                                p.request_keyframe(Instant::now());
                            }
                            match result {
                                Ok(Some(f)) => {
                                    self.pipeline = Some(p);
                                    self.write_video(at, f.data);
                                }
                                Ok(None) => self.pipeline = Some(p),
                                Err(e) => self.stop_video(format!("{e}")).await,
                            }
                        }
                        Err(e) => self.stop_video(format!("encoder task failed: {e}")).await,
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
                        return format!("WebRTC error: {e}");
                    }
                }
            }
        }
    }

    fn buffered(&mut self) -> usize {
        match self.channel {
            Some(id) => self.rtc.channel(id).map_or(0, |mut c| c.buffered_amount()),
            None => 0,
        }
    }

    /// Polls str0m until it only waits; returns its deadline, or why the
    /// peer ends.
    async fn drain(&mut self) -> Result<Instant, String> {
        loop {
            if !self.rtc.is_alive() {
                return Err("the WebRTC connection closed".into());
            }
            let out = self
                .rtc
                .poll_output()
                .map_err(|e| format!("WebRTC error: {e}"))?;
            match out {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    let sock = self
                        .sockets
                        .iter()
                        .find(|s| s.local_addr().ok() == Some(t.source))
                        .or(self.sockets.first());
                    if let Some(s) = sock {
                        // UDP: a full send buffer drops the datagram, as a
                        // network would; retransmission handles it.
                        let _ = s.try_send_to(&t.contents, t.destination);
                    }
                }
                Output::Event(e) => self.on_event(e).await?,
            }
        }
    }

    async fn on_event(&mut self, e: Event) -> Result<(), String> {
        match e {
            Event::Connected => {
                self.connected = true;
                if self.pipeline.is_some() {
                    self.rtc
                        .bwe()
                        .set_bitrate(Bitrate::bps(300_000), Bitrate::bps(u64::from(self.ceiling)));
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err("ICE connection lost".into());
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Video => {
                let pt = self.rtc.writer(m.mid).and_then(|w| {
                    let h264: Vec<_> = w
                        .payload_params()
                        .filter(|p| p.spec().codec == Codec::H264)
                        .collect();
                    let pm1 = |p: &&str0m::format::PayloadParams| {
                        p.spec().format.packetization_mode == Some(1)
                    };
                    h264.iter()
                        .find(|p| pm1(p) && p.spec().format.profile_level_id == Some(0x42e01f))
                        .or_else(|| h264.iter().find(|p| pm1(p)))
                        .or_else(|| h264.first())
                        .map(|p| p.pt())
                });
                match pt {
                    Some(pt) => self.video = Some((m.mid, pt)),
                    None => self.stop_video("no H.264 payload type".into()).await,
                }
            }
            Event::ChannelOpen(id, label) if self.channel.is_none() && label == CHANNEL_LABEL => {
                self.channel = Some(id);
                if let Some(mut c) = self.rtc.channel(id) {
                    c.set_buffered_amount_low_threshold(MAX_BUFFERED / 2);
                }
                self.events
                    .send(PeerEvent::Open)
                    .await
                    .map_err(|_| "tunnel closed".to_owned())?;
            }
            Event::ChannelData(d) if Some(d.id) == self.channel => {
                self.events
                    .send(PeerEvent::Message(d.data))
                    .await
                    .map_err(|_| "tunnel closed".to_owned())?;
            }
            Event::ChannelClose(id) if Some(id) == self.channel => {
                return Err("the data channel closed".into());
            }
            Event::KeyframeRequest(_) => {
                self.stats.keyframe_requests += 1;
                metrics::counter!("guacr_webrtc_keyframe_requests_total").increment(1);
                match &mut self.pipeline {
                    Some(p) => p.request_keyframe(Instant::now()),
                    None => self.pli_while_encoding += 1,
                }
            }
            Event::EgressBitrateEstimate(
                BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. },
            ) => {
                if let Some(p) = &mut self.pipeline
                    && let Some(b) = p.on_estimate(estimate.as_u64())
                {
                    tracing::debug!(bitrate = b, "video bitrate follows the estimate");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes queued messages while the SCTP buffer has room.
    fn flush_out(&mut self) -> Result<(), String> {
        let Some(id) = self.channel else {
            return Ok(());
        };
        while let Some(m) = self.pending_out.front() {
            let Some(mut ch) = self.rtc.channel(id) else {
                return Err("the data channel closed".into());
            };
            match ch.write(false, m) {
                Ok(true) => {
                    self.pending_out.pop_front();
                }
                Ok(false) => break,
                Err(e) => return Err(format!("data channel write failed: {e}")),
            }
        }
        Ok(())
    }

    /// When the video loop must wake up (`None`: nothing to do).
    fn video_deadline(&self, now: Instant) -> Option<Instant> {
        let p = self.pipeline.as_ref()?;
        if !self.connected || self.video.is_none() || self.current.is_none() {
            return None;
        }
        if p.wants_frame(now) {
            return Some(self.next_encode.max(now));
        }
        p.poll_timeout(now).map(|t| t.max(self.next_encode))
    }

    /// Starts encoding the newest screen if one is due.
    fn maybe_encode(&mut self, now: Instant) -> Option<JoinHandle<Encoded>> {
        if !self.connected || self.video.is_none() || now < self.next_encode {
            return None;
        }
        let frame = self.current.clone()?;
        if !self.pipeline.as_ref()?.wants_frame(now) {
            return None;
        }
        let mut p = self.pipeline.take()?;
        self.next_encode = now + self.frame_interval;
        Some(tokio::task::spawn_blocking(move || {
            let f = Frame::xrgb32(
                frame.width,
                frame.height,
                &frame.pixels,
                frame.width as usize,
            );
            let t = Instant::now();
            let r = p.encode(now, &f);
            metrics::histogram!("guacr_webrtc_encode_seconds").record(t.elapsed().as_secs_f64());
            (p, now, r)
        }))
    }

    fn write_video(&mut self, at: Instant, data: Vec<u8>) {
        let Some((mid, pt)) = self.video else {
            return;
        };
        metrics::counter!("guacr_webrtc_video_frames_total").increment(1);
        metrics::counter!("guacr_webrtc_video_bytes_total").increment(data.len() as u64);
        if guacr_video::h264::is_keyframe(&data) {
            metrics::counter!("guacr_webrtc_video_keyframes_total").increment(1);
        }
        let ticks = at.saturating_duration_since(self.started).as_micros() as u64 * 9 / 100;
        // Playout delay 0..0: a remote desktop wants no jitter buffer.
        if let Some(w) = self.rtc.writer(mid)
            && let Err(e) = w
                .playout_delay(MediaTime::from_90khz(0), MediaTime::from_90khz(0))
                .write(pt, at, MediaTime::from_90khz(ticks), data)
        {
            tracing::debug!("video write failed: {e}");
        }
    }

    async fn stop_video(&mut self, why: String) {
        tracing::warn!("WebRTC video stopped, back to img: {why}");
        if let Some(p) = self.pipeline.take() {
            let (frames, keys, bytes) = p.stats();
            self.stats.frames = frames;
            self.stats.keyframes = keys;
            self.stats.video_bytes = bytes;
        }
        self.video = None;
        self.frames = None;
        let _ = self.events.send(PeerEvent::VideoStopped(why)).await;
    }
}

/// Resolves when the watched frame changes (`true`) or the feed is gone
/// (`false`); never without a feed.
async fn changed(frames: &mut Option<FrameSource>) -> bool {
    match frames {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn join(h: &mut Option<JoinHandle<Encoded>>) -> Result<Encoded, tokio::task::JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::media::Direction;

    fn offer(video: bool) -> String {
        let mut rtc = RtcConfig::new()
            .set_crypto_provider(crypto())
            .clear_codecs()
            .enable_h264(true)
            .build(Instant::now());
        let mut api = rtc.sdp_api();
        api.add_channel(CHANNEL_LABEL.into());
        if video {
            api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        }
        let Some((o, _)) = api.apply() else {
            panic!("no offer")
        };
        o.to_sdp_string()
    }

    fn cfg(video: bool) -> PeerConfig {
        PeerConfig {
            addresses: vec![IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
            video: video.then(VideoSettings::default),
            ..PeerConfig::default()
        }
    }

    #[tokio::test]
    async fn answers_video_only_when_offered_and_wanted() {
        let a = accept(&offer(true), &cfg(true)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.video.as_deref(), Some("openh264"));
        assert_eq!(sdp::tias(&a.answer), Some(4_000_000));
        assert!(sdp::answer_sends_video(&a.answer));
        assert!(a.answer.contains("a=candidate:"));
        assert!(a.peer.has_video());
        assert_eq!(a.peer.local_addrs().len(), 1);

        // Video offered, not wanted (terminal protocol or disabled).
        let a = accept(&offer(true), &cfg(false)).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.video.is_none());
        assert_eq!(sdp::tias(&a.answer), None);
        assert!(!sdp::answer_sends_video(&a.answer));

        // Wanted, not offered.
        let a = accept(&offer(false), &cfg(true)).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.video.is_none());
        assert!(!a.answer.contains("m=video"));

        // An encoder that cannot start: no video, no error.
        let mut c = cfg(true);
        c.video = Some(VideoSettings {
            encoder: "no-such-encoder".into(),
            ..VideoSettings::default()
        });
        let a = accept(&offer(true), &c).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.video.is_none());
    }

    #[tokio::test]
    async fn bad_offers_are_refused() {
        for bad in ["", "hello", "v=0\r\nnonsense", &"v=0\r\n".repeat(20_000)] {
            assert!(
                matches!(accept(bad, &cfg(true)), Err(PeerError::BadOffer(_))),
                "{:?}",
                &bad[..bad.len().min(20)]
            );
        }
    }

    #[test]
    fn default_addresses_end_with_loopback() {
        let a = default_addresses();
        assert_eq!(a.last(), Some(&IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)));
        assert!(a[..a.len() - 1].iter().all(|ip| !ip.is_loopback()));
    }
}
