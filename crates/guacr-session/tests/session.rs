//! Session core behaviour: broadcast, joiners, frame acknowledgement, failure isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use guacr_protocol::handshake::ClientInfo;
use guacr_protocol::{ProtocolVersion, parse_all};
use guacr_session::{
    HandlerEvent, Input, Params, Protocol, ProtocolFuture, Registry, Session, SessionContext,
    SessionError, UserInfo, UserOutput,
};
use tokio::sync::mpsc;

/// A protocol whose handler forwards its events to the test.
struct Probe {
    tx: mpsc::UnboundedSender<(Arc<Session>, HandlerEvent)>,
}

impl Protocol for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn arg_names(&self) -> &'static [&'static str] {
        &["mode"]
    }
    fn run(&self, mut ctx: SessionContext) -> ProtocolFuture {
        let tx = self.tx.clone();
        Box::pin(async move {
            match ctx.params.get("mode") {
                Some("panic") => panic!("probe panics"),
                Some("fail") => {
                    return Err(SessionError::new(
                        guacr_protocol::Status::UpstreamNotFound,
                        "gone",
                    ));
                }
                _ => {}
            }
            loop {
                let ev = ctx.events.recv().await;
                let stop = matches!(ev, HandlerEvent::Shutdown) && ctx.session.user_count() == 0;
                let _ = tx.send((ctx.session.clone(), ev));
                if stop {
                    return Ok(());
                }
            }
        })
    }
}

fn user(owner: bool, read_only: bool, version: ProtocolVersion) -> UserInfo {
    UserInfo::new(ClientInfo::default(), version, owner, read_only)
}

async fn drain(out: &mut UserOutput) -> String {
    let mut s = String::new();
    while let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(50), out.recv()).await {
        s.push_str(&String::from_utf8_lossy(&b));
    }
    s
}

type Events = mpsc::UnboundedReceiver<(Arc<Session>, HandlerEvent)>;

fn start(
    mode: &str,
) -> (
    Arc<Session>,
    Arc<UserInfo>,
    UserOutput,
    Events,
    Arc<Registry>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let registry = Registry::new();
    let (s, u, o) = Session::start(
        Arc::new(Probe { tx }),
        user(true, false, ProtocolVersion::V1_5_0),
        Params::from_pairs([("mode", mode)]),
        registry.clone(),
        1 << 20,
    );
    (s, u, o, rx, registry)
}

#[tokio::test]
async fn joiners_get_nothing_until_activated_and_owners_hear_of_them() {
    let (s, _owner, mut owner_out, mut events, registry) = start("");
    assert!(s.id().starts_with('$'));
    assert!(registry.get(s.id()).is_some());
    let (joiner, mut joiner_out) = s.join(user(false, true, ProtocolVersion::V1_5_0)).unwrap();
    assert!(joiner.id.starts_with('@'));
    let (_, ev) = events.recv().await.unwrap();
    assert!(matches!(ev, HandlerEvent::Joined(ref u) if u.id == joiner.id));
    s.broadcast(b"4.size,1.0,2.10,2.10;");
    s.send_to(&joiner.id, b"3.nop;");
    s.activate(&joiner.id);
    s.broadcast(b"5.shade,1.0,3.255;");
    let owner_text = drain(&mut owner_out).await;
    assert!(owner_text.starts_with("3.msg,1.1,"), "{owner_text}");
    assert!(owner_text.contains("4.size") && owner_text.contains("5.shade"));
    assert_eq!(drain(&mut joiner_out).await, "3.nop;5.shade,1.0,3.255;");
    s.leave(&joiner.id);
    assert!(drain(&mut owner_out).await.starts_with("3.msg,1.2,"));
}

#[tokio::test]
async fn old_protocol_owners_get_no_msg() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let (s, _, mut out) = Session::start(
        Arc::new(Probe { tx }),
        user(true, false, ProtocolVersion::V1_3_0),
        Params::default(),
        Registry::new(),
        1 << 20,
    );
    s.join(user(false, false, ProtocolVersion::V1_5_0)).unwrap();
    assert_eq!(drain(&mut out).await, "");
}

#[tokio::test]
async fn frames_are_tracked_until_echoed() {
    let (s, owner, mut out, _events, _r) = start("");
    let t1 = s.end_frame();
    let t2 = s.end_frame();
    assert!(t2 >= t1);
    assert_eq!(s.timing().max_unacked, 2);
    // Waiting gives up after max_wait when nobody echoes.
    let started = std::time::Instant::now();
    s.wait_for_clients(0, Duration::from_millis(100)).await;
    assert!(started.elapsed() >= Duration::from_millis(90));
    // A timestamp never sent is refused.
    assert!(!s.ack(&owner.id, t2 + 1_000_000));
    assert!(s.ack(&owner.id, t1));
    assert_eq!(s.timing().max_unacked, 1);
    let s2 = s.clone();
    let id = owner.id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        s2.ack(&id, t2);
    });
    s.wait_for_clients(0, Duration::from_secs(5)).await;
    assert_eq!(s.timing().max_unacked, 0);
    let text = drain(&mut out).await;
    let (all, _) = parse_all(text.as_bytes()).unwrap();
    assert_eq!(all.iter().filter(|i| i.opcode == "sync").count(), 2);
}

#[tokio::test]
async fn input_and_leaving_reach_the_handler() {
    let (s, owner, _out, mut events, registry) = start("");
    s.input(
        &owner,
        Input::Key {
            keysym: 97,
            pressed: true,
        },
    );
    let (_, ev) = events.recv().await.unwrap();
    assert!(matches!(
        ev,
        HandlerEvent::Input {
            input: Input::Key {
                keysym: 97,
                pressed: true
            },
            ..
        }
    ));
    s.leave(&owner.id);
    let mut saw_shutdown = false;
    while let Ok(Some((_, ev))) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await
    {
        if matches!(ev, HandlerEvent::Shutdown) {
            saw_shutdown = true;
            break;
        }
    }
    assert!(saw_shutdown, "last user leaving shuts the handler down");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        registry.get(s.id()).is_none(),
        "session removed from the registry"
    );
}

#[tokio::test]
async fn handler_failure_and_panic_close_with_error() {
    for (mode, status) in [("fail", "3.519;"), ("panic", "3.512;")] {
        let (s, _, mut out, _events, registry) = start(mode);
        let text = drain(&mut out).await;
        assert!(
            text.starts_with("5.error,") && text.contains(status),
            "{mode}: {text}"
        );
        assert!(text.ends_with("10.disconnect;"));
        assert!(out.recv().await.is_none(), "output closed");
        assert!(registry.get(s.id()).is_none());
        assert!(
            s.join(user(false, false, ProtocolVersion::V1_5_0))
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_user_that_cannot_keep_up_is_dropped_alone() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let (s, _owner, mut owner_out) = Session::start(
        Arc::new(Probe { tx }),
        user(true, false, ProtocolVersion::V1_5_0),
        Params::default(),
        Registry::new(),
        1000,
    );
    let (slow, mut slow_out) = s.join(user(false, false, ProtocolVersion::V1_5_0)).unwrap();
    s.activate(&slow.id);
    // The owner drains as we go; the joiner never reads.
    let chunk = vec![b'x'; 600];
    s.broadcast(&chunk);
    let _ = drain(&mut owner_out).await;
    s.broadcast(&chunk);
    let _ = drain(&mut owner_out).await;
    assert_eq!(s.user_count(), 1, "slow joiner dropped, owner kept");
    let mut slow_text = String::new();
    while let Some(b) = slow_out.recv().await {
        slow_text.push_str(&String::from_utf8_lossy(&b));
    }
    assert!(slow_text.contains("3.776;") && slow_text.ends_with("10.disconnect;"));
}

/// A tap that only counts (stands in for a `.guac` recording).
struct CountTap(std::sync::atomic::AtomicUsize);

impl guacr_session::SessionTap for CountTap {
    fn output(&self, _data: &bytes::Bytes) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test]
async fn images_are_wanted_unless_every_user_watches_video_and_nothing_records() {
    let (s, owner, _out, _events, _r) = start("");
    assert!(s.images_wanted(), "the owner draws from img");
    let rx = s.video().subscribe_as(&owner.id);
    assert!(!s.images_wanted(), "the only user watches the video");
    // A joiner (still joining, so inactive) draws from img.
    let (joiner, _jout) = s.join(user(false, false, ProtocolVersion::V1_5_0)).unwrap();
    assert!(s.images_wanted(), "a joining user without video");
    let _jrx = s.video().subscribe_as(&joiner.id);
    assert!(!s.images_wanted());
    // The owner's video stops: img again, and a repaint for the owner only.
    drop(rx);
    s.video().viewer_stopped(&owner.id);
    assert!(s.images_wanted());
    assert_eq!(s.video().take_repaints(), vec![owner.id.clone()]);
    // Leaving forgets the user.
    s.leave(&joiner.id);
    assert!(!s.video().is_viewer(&joiner.id));

    // A recording always wants the images.
    let (tx, _rx) = mpsc::unbounded_channel();
    let tap = Arc::new(CountTap(Default::default()));
    let (s2, owner2, _out2) = Session::start_with_taps(
        Arc::new(Probe { tx }),
        user(true, false, ProtocolVersion::V1_5_0),
        Params::default(),
        Registry::new(),
        1 << 20,
        vec![tap.clone()],
    );
    let _rx2 = s2.video().subscribe_as(&owner2.id);
    assert!(s2.images_wanted(), "a recording draws from img");
}
