//! The WebRTC tunnel (`/tunnel/webrtc`) in process, over the real daemon
//! core, a SQLite store and the real peers (OpenSSH, x11vnc on Xvfb with an
//! xterm). The browser side is str0m itself: it makes the offer (data
//! channel `guacamole`, optionally a `recvonly` H.264 video m-line), reads
//! the data channel, depacketises the video and decodes it with openh264.
#![cfg(feature = "webrtc")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use guacr_testkit::GuacClient;
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(20);
const ALICE_PW: &str = "alice-pass-123";

// ------------------------------------------------------------------ gateway

struct Gw {
    d: TestDaemon,
    web: SocketAddr,
    store: guacr_store::Store,
    dir: std::path::PathBuf,
    stop: tokio::sync::watch::Sender<bool>,
}

async fn gateway(configure: impl FnOnce(&mut guacr::Config)) -> Gw {
    let d = TestDaemon::start().await;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "guacr-webrtc-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("guacr.db").display());
    let store = guacr_store::Store::open(&url, Some(guacr_store::SecretKey::generate().unwrap()))
        .await
        .expect("store");
    store
        .create_user(&guacr_store::NewUser {
            username: "alice".into(),
            password: Some(ALICE_PW.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut cfg = guacr::Config::default();
    cfg.web.bind = "127.0.0.1:0".into();
    cfg.web.assets = None;
    cfg.web.token_secret = Some("test-token-secret".into());
    cfg.web.webrtc.addresses = vec!["127.0.0.1".into()];
    configure(&mut cfg);
    let web = guacr::web::bind(&cfg, d.state.clone(), store.clone())
        .await
        .expect("web bind");
    let addr = web.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(web.run(rx));
    Gw {
        d,
        web: addr,
        store,
        dir,
        stop,
    }
}

impl Gw {
    async fn connection(&self, protocol: &str, params: &[(&str, &str)]) -> i64 {
        let c = self
            .store
            .create_connection(&guacr_store::NewConnection {
                name: format!("{protocol} test"),
                protocol: protocol.into(),
                group: String::new(),
                description: String::new(),
                params: params
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            })
            .await
            .unwrap();
        let alice = self.store.user_by_name("alice").await.unwrap().unwrap();
        self.store.grant_user(c.id, alice.id).await.unwrap();
        c.id
    }

    async fn ssh_connection(&self) -> i64 {
        let p = Peers::get();
        let port = p.ssh_port_str();
        self.connection(
            "ssh",
            &[
                ("hostname", p.host.as_str()),
                ("port", port.as_str()),
                ("username", p.pw_user.as_str()),
                ("password", p.pw_password.as_str()),
            ],
        )
        .await
    }

    async fn vnc_connection(&self) -> i64 {
        let var = |k: &str| peer_var(k, "vnc");
        let host = var("GUACR_TEST_VNC_HOST");
        let port = var("GUACR_TEST_VNC_X11VNC_PORT");
        let pw = var("GUACR_TEST_VNC_X11VNC_PASSWORD");
        self.connection(
            "vnc",
            &[
                ("hostname", host.as_str()),
                ("port", port.as_str()),
                ("password", pw.as_str()),
            ],
        )
        .await
    }

    async fn login(&self) -> (String, String) {
        let res = reqwest::Client::new()
            .post(format!("http://{}/api/login", self.web))
            .json(&json!({"username": "alice", "password": ALICE_PW}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let cookie = res
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let body: Value = res.json().await.unwrap();
        (cookie, body["csrf"].as_str().unwrap().to_owned())
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.d.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP answer: status, Guacamole-Status-Code, JSON body.
struct Answer {
    status: u16,
    guac: Option<u32>,
    body: Value,
}

async fn post(
    gw: &Gw,
    auth: Option<&(String, String)>,
    origin: Option<&str>,
    body: &Value,
) -> Answer {
    let mut r = reqwest::Client::new()
        .post(format!("http://{}/tunnel/webrtc", gw.web))
        .json(body);
    if let Some((cookie, csrf)) = auth {
        r = r.header("cookie", cookie).header("x-csrf-token", csrf);
    }
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    let res = r.send().await.unwrap();
    let status = res.status().as_u16();
    let guac = res
        .headers()
        .get("guacamole-status-code")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = res.json().await.unwrap_or(Value::Null);
    Answer { status, guac, body }
}

// ------------------------------------------------------------------ browser

fn crypto() -> Arc<str0m::config::CryptoProvider> {
    Arc::new(str0m::crypto::from_feature_flags())
}

/// The browser's side before the answer.
struct Offer {
    rtc: Rtc,
    socket: UdpSocket,
    pending: SdpPendingOffer,
    sdp: String,
    video: Option<Mid>,
}

async fn make_offer(video: bool) -> Offer {
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(crypto())
        .clear_codecs()
        .enable_h264(true)
        .build(Instant::now());
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    rtc.add_local_candidate(Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_channel(guacr_webrtc::CHANNEL_LABEL.into());
    let video =
        video.then(|| api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None));
    let (offer, pending) = api.apply().unwrap();
    Offer {
        rtc,
        socket,
        pending,
        sdp: offer.to_sdp_string(),
        video,
    }
}

enum Cmd {
    Text(String),
    Pli,
}

/// A connected browser: data-channel text and H.264 access units.
struct Browser {
    cmd: mpsc::UnboundedSender<Cmd>,
    text: mpsc::UnboundedReceiver<String>,
    frames: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    /// Every data-channel message received (for assertions on the stream).
    log: Arc<Mutex<String>>,
}

fn start_browser(mut o: Offer, answer: &str) -> Browser {
    let answer = SdpAnswer::from_sdp_string(answer).unwrap();
    o.rtc.sdp_api().accept_answer(o.pending, answer).unwrap();
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    let (text_tx, text_rx) = mpsc::unbounded_channel();
    let (frame_tx, frame_rx) = mpsc::unbounded_channel();
    let log = Arc::new(Mutex::new(String::new()));
    let log2 = log.clone();
    tokio::spawn(async move {
        let mut rtc = o.rtc;
        let socket = o.socket;
        let local = socket.local_addr().unwrap();
        let mut channel = None;
        let mut queued: Vec<String> = Vec::new();
        let mut buf = vec![0u8; 2048];
        loop {
            let timeout = loop {
                match rtc.poll_output() {
                    Ok(Output::Timeout(t)) => break t,
                    Ok(Output::Transmit(t)) => {
                        let _ = socket.send_to(&t.contents, t.destination).await;
                    }
                    Ok(Output::Event(e)) => match e {
                        Event::ChannelOpen(id, _) => {
                            channel = Some(id);
                            for m in queued.drain(..) {
                                let _ = rtc.channel(id).unwrap().write(false, m.as_bytes());
                            }
                        }
                        Event::ChannelData(d) => {
                            let s = String::from_utf8(d.data).expect("text messages");
                            log2.lock().unwrap().push_str(&s);
                            let _ = text_tx.send(s);
                        }
                        Event::MediaData(m) => {
                            let _ = frame_tx.send((Instant::now(), m.data.to_vec()));
                        }
                        Event::ChannelClose(_)
                        | Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            return;
                        }
                        _ => {}
                    },
                    Err(_) => return,
                }
            };
            tokio::select! {
                r = socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { return };
                    if let Ok(rx) = Receive::new(Protocol::Udp, from, local, &buf[..n]) {
                        let _ = rtc.handle_input(Input::Receive(Instant::now(), rx));
                    }
                }
                c = cmd_rx.recv() => match c {
                    Some(Cmd::Text(m)) => match channel {
                        Some(id) => { let _ = rtc.channel(id).unwrap().write(false, m.as_bytes()); }
                        None => queued.push(m),
                    },
                    Some(Cmd::Pli) => {
                        if let Some(mid) = o.video
                            && let Some(mut w) = rtc.writer(mid)
                        {
                            let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
                        }
                    }
                    None => {
                        rtc.disconnect();
                        return;
                    }
                },
                _ = tokio::time::sleep_until(timeout.into()) => {
                    let _ = rtc.handle_input(Input::Timeout(Instant::now()));
                }
            }
        }
    });
    Browser {
        cmd: cmd_tx,
        text: text_rx,
        frames: frame_rx,
        log,
    }
}

impl Browser {
    async fn next_text(&mut self) -> Option<String> {
        tokio::time::timeout(T, self.text.recv()).await.ok()?
    }

    /// The tunnel uuid message, first on the channel.
    async fn tunnel_uuid(&mut self) -> String {
        let first = self.next_text().await.expect("first data-channel message");
        assert!(
            first.starts_with("0.,36.") && first.ends_with(';') && first.len() == 43,
            "first message is the tunnel uuid: {first:?}"
        );
        first[6..42].to_owned()
    }

    /// A testkit client over the data channel (text after the uuid).
    fn client(self) -> (GuacClient<guacr_web::stream::TunnelStream>, BrowserSide) {
        self.client_after(Vec::new())
    }

    /// Like [`client`](Self::client), first replaying `seen` (messages the
    /// test already read).
    fn client_after(
        mut self,
        seen: Vec<String>,
    ) -> (GuacClient<guacr_web::stream::TunnelStream>, BrowserSide) {
        let (stream, peer) = guacr_web::stream::pair(64);
        let guacr_web::stream::TunnelPeer {
            to_core,
            mut from_core,
            ..
        } = peer;
        let cmd = self.cmd.clone();
        tokio::spawn(async move {
            for t in seen {
                if to_core.send(bytes::Bytes::from(t)).await.is_err() {
                    return;
                }
            }
            while let Some(t) = self.text.recv().await {
                if to_core.send(bytes::Bytes::from(t)).await.is_err() {
                    break;
                }
            }
        });
        let cmd2 = cmd.clone();
        tokio::spawn(async move {
            while let Some(b) = from_core.recv().await {
                let s = String::from_utf8(b.to_vec()).unwrap();
                if cmd2.send(Cmd::Text(s)).is_err() {
                    break;
                }
            }
        });
        let mut c = GuacClient::new(stream);
        c.set_echo_sync(true);
        (
            c,
            BrowserSide {
                cmd,
                frames: self.frames,
                log: self.log,
            },
        )
    }
}

/// What stays with the test once the data channel feeds a testkit client.
struct BrowserSide {
    cmd: mpsc::UnboundedSender<Cmd>,
    frames: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    log: Arc<Mutex<String>>,
}

/// Offers, posts, starts the browser; returns it and the JSON answer.
async fn open(gw: &Gw, auth: &(String, String), connect: &str, video: bool) -> (Browser, Value) {
    let o = make_offer(video).await;
    let a = post(
        gw,
        Some(auth),
        None,
        &json!({"connect": connect, "offer": o.sdp}),
    )
    .await;
    assert_eq!(a.status, 200, "answer: {:?}", a.body);
    let answer = a.body["answer"].as_str().expect("answer").to_owned();
    (start_browser(o, &answer), a.body)
}

/// Logs in and opens connection `id` (with `query`, e.g. the size) over
/// WebRTC with video, which the answer must carry; returns the client once
/// its display has a size, the browser's side and the JSON answer.
async fn open_video(
    gw: &Gw,
    id: i64,
    query: &str,
) -> (
    GuacClient<guacr_web::stream::TunnelStream>,
    BrowserSide,
    Value,
) {
    let auth = gw.login().await;
    let (mut b, answer) = open(gw, &auth, &format!("connection={id}&{query}"), true).await;
    assert_eq!(answer["video"], json!(true), "answer: {answer}");
    b.tunnel_uuid().await;
    let (mut c, side) = b.client();
    c.wait_for(T, |d, _| d.width() > 0).await.unwrap();
    (c, side, answer)
}

// ------------------------------------------------------------------ H.264

/// Decodes the video until a picture differs from `before` in at least 200
/// luma samples (or 20 s pass); returns how many differ in the last one.
async fn video_change(
    side: &mut BrowserSide,
    dec: &mut openh264::decoder::Decoder,
    before: &[u8],
) -> usize {
    let until = Instant::now() + T;
    let mut changed = 0usize;
    while Instant::now() < until && changed < 200 {
        let Ok(Some((_, au))) =
            tokio::time::timeout(Duration::from_secs(2), side.frames.recv()).await
        else {
            continue;
        };
        if let Some(p) = decode(dec, &au) {
            changed =
                p.y.iter()
                    .zip(before)
                    .filter(|(a, b)| a.abs_diff(**b) > 60)
                    .count();
        }
    }
    changed
}

struct Decoded {
    width: usize,
    height: usize,
    y: Vec<u8>,
}

fn decode(dec: &mut openh264::decoder::Decoder, au: &[u8]) -> Option<Decoded> {
    use openh264::formats::YUVSource;
    let pic = dec.decode(au).ok()??;
    let (w, h) = pic.dimensions();
    let (ys, _, _) = pic.strides();
    let mut y = Vec::with_capacity(w * h);
    for row in pic.y().chunks(ys).take(h) {
        y.extend_from_slice(&row[..w]);
    }
    Some(Decoded {
        width: w,
        height: h,
        y,
    })
}

fn nal_kinds(au: &[u8]) -> Vec<u8> {
    guacr_video::h264::nal_units(au)
        .iter()
        .map(|n| n.kind)
        .collect()
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn ssh_over_the_data_channel_with_ping_echo() {
    let gw = gateway(|_| {}).await;
    let id = gw.ssh_connection().await;
    let auth = gw.login().await;
    let info: Value = reqwest::get(format!("http://{}/tunnel/webrtc", gw.web))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["enabled"], json!(true));
    assert_eq!(info["video"], json!(true));
    assert!(info["ice_servers"].is_array());

    let (mut b, answer) = open(
        &gw,
        &auth,
        &format!("connection={id}&width=800&height=600&dpi=96&image=image/png&timezone=UTC"),
        true,
    )
    .await;
    // A terminal protocol never gets video, even when offered.
    assert_eq!(answer["video"], json!(false));
    assert!(!answer["answer"].as_str().unwrap().contains("b=TIAS"));
    let uuid = b.tunnel_uuid().await;
    assert_eq!(answer["tunnel"].as_str(), Some(uuid.as_str()));

    b.cmd
        .send(Cmd::Text("0.,4.ping,7.1234567;".into()))
        .unwrap();
    let mut echoed = false;
    let mut seen = Vec::new();
    for _ in 0..500 {
        let Some(t) = b.next_text().await else { break };
        if t == "0.,4.ping,7.1234567;" {
            echoed = true;
            break;
        }
        seen.push(t);
    }
    assert!(echoed, "ping echoed on the data channel");
    let (mut c, side) = b.client_after(seen);
    wait_text(&mut c, "guacr$", T).await.unwrap();
    c.type_text("echo hello-from-$((6*7))-rtc").await.unwrap();
    c.press_key(0xff0d).await.unwrap();
    wait_text(&mut c, "hello-from-42-rtc", T).await.unwrap();
    assert!(
        !side.log.lock().unwrap().contains("4.args"),
        "the browser never sees args"
    );

    // Closing the peer ends the tunnel: the user leaves, the session ends
    // and the audit event names the transport.
    drop(c);
    drop(side);
    let end = audit_event(&gw, "session.end").await;
    assert_eq!(end.username.as_deref(), Some("alice"));
    assert_eq!(end.detail.as_deref(), Some("transport=webrtc codec=none"));
    assert!(end.bytes_out.unwrap_or(0) > 1000);
    gw.stop().await;
}

#[tokio::test]
async fn vnc_with_h264_video_replaces_img_on_layer_0() {
    let gw = gateway(|_| {}).await;
    let id = gw.vnc_connection().await;
    let (mut c, mut side, answer) = open_video(
        &gw,
        id,
        "width=1024&height=768&image=image/png&image=image/jpeg",
    )
    .await;
    let sdp = answer["answer"].as_str().unwrap();
    assert_eq!(
        guacr_webrtc::sdp::tias(sdp),
        Some(4_000_000),
        "b=TIAS in {sdp}"
    );
    let (w, h) = (c.display().width() as usize, c.display().height() as usize);

    // The first access unit is a Constrained Baseline keyframe: SPS+PPS+IDR.
    let (_, first) = tokio::time::timeout(T, side.frames.recv())
        .await
        .expect("an H.264 frame within 20 s")
        .unwrap();
    let kinds = nal_kinds(&first);
    let pos = |k| kinds.iter().position(|&x| x == k);
    assert!(
        matches!((pos(7), pos(8), pos(5)), (Some(s), Some(p), Some(i)) if s < p && p < i),
        "first frame is SPS+PPS+IDR: NAL types {kinds:?}"
    );
    let sps = guacr_video::h264::nal_units(&first)
        .into_iter()
        .find(|n| n.kind == 7)
        .and_then(|n| guacr_video::h264::SpsProfile::parse(n.data))
        .unwrap();
    assert!(
        sps.is_constrained_baseline(),
        "profile {}",
        sps.profile_level_id()
    );
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let pic = decode(&mut dec, &first).expect("the keyframe decodes");
    assert_eq!((pic.width, pic.height), (w, h), "video size = desktop size");

    // Typing into the xterm changes the decoded picture.
    c.send_mouse(300, 200, 0).await.unwrap();
    c.send_key_combo(&[0xffe3, u32::from('u')]).await.unwrap();
    let mut last = pic.y.clone();
    while let Ok(Some((_, au))) =
        tokio::time::timeout(Duration::from_millis(700), side.frames.recv()).await
    {
        if let Some(p) = decode(&mut dec, &au) {
            last = p.y;
        }
    }
    c.type_text("echo webrtc-video-typing-test-WWWWWWWWWWWWWWWWWWWWW")
        .await
        .unwrap();
    let changed = video_change(&mut side, &mut dec, &last).await;
    assert!(
        changed >= 200,
        "typing changed {changed} luma samples of the decoded video"
    );
    c.send_key_combo(&[0xffe3, u32::from('u')]).await.unwrap();
    let _ = c.drain(Duration::from_millis(500)).await;

    // The data channel carried no img/copy to layer 0, but sync and size.
    let log = side.log.lock().unwrap().clone();
    let (ins, _) = guacr_protocol::parse_all(log.as_bytes()).unwrap_or_default();
    let img0 = ins
        .iter()
        .filter(|i| i.opcode == "img" && i.args.get(2).map(String::as_str) == Some("0"))
        .count();
    let copy0 = ins
        .iter()
        .filter(|i| i.opcode == "copy" && i.args.get(6).map(String::as_str) == Some("0"))
        .count();
    assert_eq!(
        (img0, copy0),
        (0, 0),
        "no drawing of layer 0 on the data channel"
    );
    assert!(ins.iter().any(|i| i.opcode == "sync"), "sync passes");
    assert!(ins.iter().any(|i| i.opcode == "size"), "size passes");
    c.disconnect().await.unwrap();
    drop(side);
    let end = audit_event(&gw, "session.end").await;
    assert_eq!(end.detail.as_deref(), Some("transport=webrtc codec=h264"));
    gw.stop().await;
}

#[tokio::test]
async fn vnc_without_video_draws_with_img_on_the_data_channel() {
    for disabled_in_config in [false, true] {
        let gw = gateway(|c| c.web.webrtc.video = !disabled_in_config).await;
        let id = gw.vnc_connection().await;
        let auth = gw.login().await;
        // Offer without video, or with video while the server has it off.
        let (mut b, answer) = open(
            &gw,
            &auth,
            &format!("connection={id}&width=1024&height=768&image=image/png"),
            disabled_in_config,
        )
        .await;
        assert_eq!(answer["video"], json!(false));
        assert!(!answer["answer"].as_str().unwrap().contains("b=TIAS"));
        b.tunnel_uuid().await;
        let (mut c, side) = b.client();
        c.wait_for(T, |d, _| d.width() > 0).await.unwrap();
        c.wait_until(T, |_| side.log.lock().unwrap().contains("3.img,"))
            .await
            .unwrap_or_else(|e| panic!("no img on the data channel: {e}"));
        let log = side.log.lock().unwrap().clone();
        let (ins, _) = guacr_protocol::parse_all(log.as_bytes()).unwrap_or_default();
        assert!(
            ins.iter()
                .any(|i| i.opcode == "img" && i.args.get(2).map(String::as_str) == Some("0")),
            "img to layer 0 arrives"
        );
        assert!(side.frames.is_empty(), "no video frames");
        c.disconnect().await.unwrap();
        drop(side);
        gw.stop().await;
    }
}

#[tokio::test]
async fn pli_flood_gets_at_most_two_keyframes_per_second() {
    let gw = gateway(|_| {}).await;
    let id = gw.vnc_connection().await;
    let (mut c, mut side, _) = open_video(&gw, id, "width=1024&height=768&image=image/png").await;
    let (_, first) = tokio::time::timeout(T, side.frames.recv())
        .await
        .expect("first frame")
        .unwrap();
    assert!(guacr_video::h264::is_keyframe(&first));
    let start = Instant::now();
    let flood = Duration::from_secs(3);
    let mut keyframes = 0u32;
    let mut frames = 0u32;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while start.elapsed() < flood {
        tokio::select! {
            _ = tick.tick() => { side.cmd.send(Cmd::Pli).unwrap(); }
            f = side.frames.recv() => {
                let (_, au) = f.expect("video continues");
                frames += 1;
                keyframes += u32::from(guacr_video::h264::is_keyframe(&au));
            }
        }
    }
    // Frames already on their way when the flood ended still count.
    while let Ok(Some((_, au))) =
        tokio::time::timeout(Duration::from_millis(300), side.frames.recv()).await
    {
        frames += 1;
        keyframes += u32::from(guacr_video::h264::is_keyframe(&au));
    }
    eprintln!("PLI flood: {keyframes} keyframes in {frames} frames over 3 s");
    assert!(keyframes >= 2, "PLIs are served ({keyframes} keyframes)");
    assert!(
        keyframes <= 2 * 3 + 1,
        "{keyframes} keyframes in 3 s of PLI flood"
    );
    c.disconnect().await.unwrap();
    drop(side);
    gw.stop().await;
}

#[tokio::test]
async fn refusals_have_http_and_guacamole_status() {
    let gw = gateway(|_| {}).await;
    let id = gw.ssh_connection().await;
    let auth = gw.login().await;
    let offer = make_offer(false).await.sdp;
    let connect = format!("connection={id}");
    let body = json!({"connect": connect, "offer": offer});

    // No cookie.
    let a = post(&gw, None, None, &body).await;
    assert_eq!((a.status, a.guac), (401, Some(769)), "{:?}", a.body);
    assert_eq!(a.body["code"], "unauthenticated");
    // Wrong origin.
    let a = post(&gw, Some(&auth), Some("https://evil.example"), &body).await;
    assert_eq!((a.status, a.guac), (403, Some(771)), "{:?}", a.body);
    // Missing CSRF header on a cookie tunnel.
    let res = reqwest::Client::new()
        .post(format!("http://{}/tunnel/webrtc", gw.web))
        .header("cookie", &auth.0)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["code"], "csrf");
    // Unknown connection: same answer as a forbidden one.
    let a = post(
        &gw,
        Some(&auth),
        None,
        &json!({"connect": "connection=999999", "offer": offer}),
    )
    .await;
    assert_eq!((a.status, a.guac), (403, Some(771)), "{:?}", a.body);
    assert_eq!(a.body["code"], "forbidden");
    // Bad SDP.
    let a = post(
        &gw,
        Some(&auth),
        None,
        &json!({"connect": connect, "offer": "v=0\r\nnonsense"}),
    )
    .await;
    assert_eq!((a.status, a.guac), (400, Some(768)), "{:?}", a.body);
    let a = post(
        &gw,
        Some(&auth),
        None,
        &json!({"connect": connect, "offer": "hello"}),
    )
    .await;
    assert_eq!((a.status, a.guac), (400, Some(768)), "{:?}", a.body);
    // Malformed body and connect data.
    let res = reqwest::Client::new()
        .post(format!("http://{}/tunnel/webrtc", gw.web))
        .header("cookie", &auth.0)
        .header("x-csrf-token", &auth.1)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let a = post(
        &gw,
        Some(&auth),
        None,
        &json!({"connect": "width=5", "offer": offer}),
    )
    .await;
    assert_eq!((a.status, a.guac), (400, Some(768)));
    // Bad share link and token: 401/769 from anywhere.
    let a = post(
        &gw,
        None,
        Some("https://elsewhere.example"),
        &json!({"connect": "share=nope", "offer": offer}),
    )
    .await;
    assert_eq!((a.status, a.guac), (401, Some(769)));
    let a = post(
        &gw,
        None,
        None,
        &json!({"connect": "token=abc.def.ghi", "offer": offer}),
    )
    .await;
    assert_eq!((a.status, a.guac), (401, Some(769)));
    gw.stop().await;

    // WebRTC off: GET says so, POST is 404.
    let gw = gateway(|c| c.web.webrtc.enabled = false).await;
    let info: Value = reqwest::get(format!("http://{}/tunnel/webrtc", gw.web))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["enabled"], json!(false));
    let a = post(&gw, None, None, &body).await;
    assert_eq!(a.status, 404);
    assert!(a.body["error"].as_str().unwrap().contains("disabled"));
    gw.stop().await;
}

#[tokio::test]
async fn data_channel_that_never_opens_ends_the_tunnel() {
    // The browser posts an offer but never connects: the session starts,
    // then ends (the open timeout is 30 s; the core's 15 s client timeout
    // may come first) instead of living forever.
    let gw = gateway(|_| {}).await;
    let id = gw.ssh_connection().await;
    let auth = gw.login().await;
    let o = make_offer(false).await;
    let a = post(
        &gw,
        Some(&auth),
        None,
        &json!({"connect": format!("connection={id}"), "offer": o.sdp}),
    )
    .await;
    assert_eq!(a.status, 200);
    drop(o);
    // The session exists while the server waits for the channel.
    let until = Instant::now() + T;
    while gw.d.state.registry.all().is_empty() {
        assert!(Instant::now() < until, "the session never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // …and is gone once the 30 s open timeout has passed.
    let until = Instant::now() + Duration::from_secs(45);
    while !gw.d.state.registry.all().iter().all(|s| s.is_closed()) {
        assert!(
            Instant::now() < until,
            "the session outlived the open timeout"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    gw.stop().await;
}

#[tokio::test]
async fn share_link_viewer_from_another_origin_gets_video() {
    let gw = gateway(|_| {}).await;
    let id = gw.vnc_connection().await;
    let auth = gw.login().await;
    let (mut b, answer) = open(
        &gw,
        &auth,
        &format!("connection={id}&width=1024&height=768&image=image/png"),
        true,
    )
    .await;
    assert_eq!(answer["video"], json!(true));
    let uuid = b.tunnel_uuid().await;
    let (mut c, mut side) = b.client();
    c.wait_for(T, |d, _| d.width() > 0).await.unwrap();
    let (w, h) = (c.display().width() as usize, c.display().height() as usize);
    tokio::time::timeout(T, side.frames.recv())
        .await
        .expect("owner's first frame")
        .unwrap();
    // The owner shares the session by its tunnel uuid (read-only).
    let res = reqwest::Client::new()
        .post(format!("http://{}/api/sessions/{uuid}/share", gw.web))
        .header("cookie", &auth.0)
        .header("x-csrf-token", &auth.1)
        .json(&json!({"read_only": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let share: Value = res.json().await.unwrap();
    let token = share["token"].as_str().unwrap().to_owned();

    // A viewer with no login, embedded elsewhere, joins over WebRTC with video.
    let o = make_offer(true).await;
    let a = post(
        &gw,
        None,
        Some("https://embedding.example"),
        &json!({"connect": format!("share={token}&width=800&height=600"), "offer": o.sdp}),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["video"], json!(true));
    let mut viewer = start_browser(o, a.body["answer"].as_str().unwrap());
    viewer.tunnel_uuid().await;
    let (mut vc, mut vside) = viewer.client();
    vc.wait_for(T, |d, _| d.width() > 0).await.unwrap();
    let (_, first) = tokio::time::timeout(T, vside.frames.recv())
        .await
        .expect("the viewer's first frame")
        .unwrap();
    assert!(guacr_video::h264::is_keyframe(&first));
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let pic = decode(&mut dec, &first).expect("decodes");
    assert_eq!((pic.width, pic.height), (w, h), "the shared desktop's size");
    // The joiner's private full repaint was filtered too.
    let log = vside.log.lock().unwrap().clone();
    let (ins, _) = guacr_protocol::parse_all(log.as_bytes()).unwrap_or_default();
    assert!(
        !ins.iter()
            .any(|i| i.opcode == "img" && i.args.get(2).map(String::as_str) == Some("0")),
        "no img to layer 0 for the video viewer"
    );
    vc.disconnect().await.unwrap();
    drop(vside);
    c.disconnect().await.unwrap();
    drop(side);
    gw.stop().await;
}

/// The first audit event of `kind` (newest first) within 20 s.
async fn audit_event(gw: &Gw, kind: &str) -> guacr_store::AuditEvent {
    let until = Instant::now() + T;
    loop {
        let events = gw
            .store
            .query_audit(&guacr_store::AuditQuery {
                kind: Some(kind.into()),
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(e) = events.into_iter().next() {
            return e;
        }
        assert!(Instant::now() < until, "no {kind} audit event within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The session id of the gateway's only `session.start` (from the audit log).
async fn started_session(gw: &Gw) -> Arc<guacr_session::Session> {
    let start = audit_event(gw, "session.start").await;
    start
        .session_id
        .as_deref()
        .and_then(|id| gw.d.state.registry.get(id))
        .expect("the started session is live")
}

/// With the video as the session's only viewer the handler encodes no image
/// at all. A browser wider than H.264 allows (4000 px, beyond openh264's
/// 3840) makes the encoder refuse the frame: the video stops and the handler
/// repaints this browser's layer 0 with `img`, exactly as the X screen
/// shows, and the session goes on. Xvnc `:14` (the benchmark desktop, which
/// no other test uses) resizes to what the owner asks.
#[tokio::test]
async fn video_beyond_h264_limits_falls_back_to_a_full_img_repaint() {
    let gw = gateway(|_| {}).await;
    let var = |k: &str| peer_var(k, "vnc");
    let (host, port, display) = (
        var("GUACR_TEST_VNC_HOST"),
        var("GUACR_TEST_VNC_BENCH_PORT"),
        var("GUACR_TEST_VNC_BENCH_DISPLAY"),
    );
    // A run that failed half-way may have left :14 4000 px wide.
    bench_desktop_to_1080p(&gw, &host, &port, &display).await;
    let id = gw
        .connection(
            "vnc",
            &[("hostname", host.as_str()), ("port", port.as_str())],
        )
        .await;
    let (mut c, mut side, _) = open_video(&gw, id, "width=1920&height=1080&image=image/png").await;
    tokio::time::timeout(T, side.frames.recv())
        .await
        .expect("an H.264 frame within 20 s")
        .unwrap();
    let session = started_session(&gw).await;

    // Typing changes the screen; with every user on video, no image is encoded.
    let before = session.video().deferred_frames();
    c.send_mouse(400, 300, 0).await.unwrap();
    c.type_text("echo images-deferred-while-video-plays")
        .await
        .unwrap();
    let until = Instant::now() + T;
    while session.video().deferred_frames() == before {
        assert!(Instant::now() < until, "no frame was deferred while typing");
        let _ = c.drain(Duration::from_millis(100)).await;
    }
    assert!(!session.images_wanted());
    let img0 = |log: &str| {
        let (ins, _) = guacr_protocol::parse_all(log.as_bytes()).unwrap_or_default();
        ins.iter()
            .filter(|i| i.opcode == "img" && i.args.get(2).map(String::as_str) == Some("0"))
            .count()
    };
    assert_eq!(img0(&side.log.lock().unwrap()), 0, "no img to layer 0 yet");

    // 4000 px wide: the encoder refuses, the browser gets layer 0 in full.
    c.send_size(4000, 720).await.unwrap();
    let until = Instant::now() + T;
    loop {
        let _ = c.drain(Duration::from_millis(200)).await;
        let (w, h, x) = x_screenshot(&display);
        if (w, h) == (4000, 720) && c.display().screenshot() == (w, h, x) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the browser's picture did not become the 4000x720 X screen (X is {w}x{h}, \
             browser {}x{}, {} img to layer 0)",
            c.display().width(),
            c.display().height(),
            img0(&side.log.lock().unwrap())
        );
    }
    assert!(img0(&side.log.lock().unwrap()) > 0);
    assert!(session.images_wanted(), "images are encoded again");
    // The session goes on over img: typing shows up in the browser's picture.
    c.type_text("echo still-here").await.unwrap();
    let until = Instant::now() + T;
    loop {
        let _ = c.drain(Duration::from_millis(200)).await;
        let shot = x_screenshot(&display);
        if shot.0 == 4000 && c.display().screenshot() == shot {
            break;
        }
        assert!(Instant::now() < until, "typing did not reach the browser");
    }
    c.send_key_combo(&[0xffe3, u32::from('u')]).await.unwrap();
    c.disconnect().await.unwrap();
    drop(side);
    bench_desktop_to_1080p(&gw, &host, &port, &display).await;
    gw.stop().await;
}

/// Puts Xvnc `:14` back at the benchmark's 1920×1080 through a plain
/// Guacamole session (no video) whose owner asks for that size.
async fn bench_desktop_to_1080p(gw: &Gw, host: &str, port: &str, display: &str) {
    let size = || {
        let (w, h, _) = x_screenshot(display);
        (w, h)
    };
    if size() == (1920, 1080) {
        return;
    }
    let mut c = gw.d.client().await;
    c.handshake(
        "vnc",
        &client_info(1920, 1080),
        &[("hostname", host), ("port", port)],
    )
    .await
    .unwrap();
    c.send_size(1920, 1080).await.unwrap();
    let until = Instant::now() + T;
    while size() != (1920, 1080) {
        assert!(Instant::now() < until, "{display} stays {:?}", size());
        let _ = c.drain(Duration::from_millis(200)).await;
    }
    c.disconnect().await.unwrap();
}

/// RDP (xrdp, its benchmark user's own session) over WebRTC: the desktop
/// arrives as H.264 at its size, typing changes the decoded video, and with
/// the video as the only viewer the handler encodes no image.
#[tokio::test]
async fn rdp_with_h264_video_encodes_no_images() {
    let gw = gateway(|_| {}).await;
    let var = |k: &str| peer_var(k, "rdp");
    let (host, port, user, pw) = (
        var("GUACR_TEST_RDP_HOST"),
        var("GUACR_TEST_RDP_XRDP_TLS_PORT"),
        var("GUACR_TEST_RDP_BENCH_USER"),
        var("GUACR_TEST_RDP_PASSWORD"),
    );
    let id = gw
        .connection(
            "rdp",
            &[
                ("hostname", host.as_str()),
                ("port", port.as_str()),
                ("username", user.as_str()),
                ("password", pw.as_str()),
                ("security", "tls"),
                ("ignore-cert", "true"),
            ],
        )
        .await;
    let (mut c, mut side, _) = open_video(&gw, id, "width=1024&height=768&image=image/png").await;
    let (w, h) = (c.display().width() as usize, c.display().height() as usize);
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let until = Instant::now() + T;
    let mut last = loop {
        let (_, au) = tokio::time::timeout(T, side.frames.recv())
            .await
            .expect("an H.264 frame within 20 s")
            .unwrap();
        if let Some(p) = decode(&mut dec, &au) {
            assert_eq!((p.width, p.height), (w, h), "video size = desktop size");
            break p.y;
        }
        assert!(Instant::now() < until, "no decodable frame");
    };
    let session = started_session(&gw).await;
    // Let the desktop settle (a new xrdp session draws for a while).
    while let Ok(Some((_, au))) =
        tokio::time::timeout(Duration::from_millis(1500), side.frames.recv()).await
    {
        if let Some(p) = decode(&mut dec, &au) {
            last = p.y;
        }
    }
    let deferred = session.video().deferred_frames();
    // The benchmark user's session shows an xterm at the top left.
    c.send_mouse(200, 150, 0).await.unwrap();
    c.type_text("echo rdp-over-webrtc-WWWWWWWWWWWWWWWWWWWWWWWWWWWW")
        .await
        .unwrap();
    let changed = video_change(&mut side, &mut dec, &last).await;
    assert!(
        changed >= 200,
        "typing changed {changed} luma samples of the decoded video"
    );
    assert!(
        session.video().deferred_frames() > deferred,
        "the handler deferred no frame while only the video watched"
    );
    assert!(!session.images_wanted());
    let log = side.log.lock().unwrap().clone();
    let (ins, _) = guacr_protocol::parse_all(log.as_bytes()).unwrap_or_default();
    let drawn0 = ins
        .iter()
        .filter(|i| {
            (i.opcode == "img" && i.args.get(2).map(String::as_str) == Some("0"))
                || (i.opcode == "copy" && i.args.get(6).map(String::as_str) == Some("0"))
        })
        .count();
    assert_eq!(drawn0, 0, "no drawing of layer 0 on the data channel");
    c.send_key_combo(&[0xffe3, u32::from('u')]).await.unwrap();
    c.disconnect().await.unwrap();
    drop(side);
    gw.stop().await;
}
