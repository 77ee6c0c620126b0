//! The CLIPRDR channel against a real server: xrdp (test peer `scripts/peers.d/rdp.sh`,
//! standard RDP security user), whose chansrv bridges CLIPRDR and the session's X
//! CLIPBOARD selection; `xclip` plays the X application on the session display.

use std::process::Command;
use std::time::{Duration, Instant};

use ironrdp_cliprdr::CliprdrClient;
use ironrdp_svc::SvcProcessorMessages;

use crate::audio::xrdp_tests::{XRDP_USER, Xrdp};
use crate::clipboard::{self, ClipboardSettings, LineEndings};
use guacr_testkit::x11::Selection;

fn xclip_out(display: &str) -> Option<String> {
    let out = Command::new("xclip")
        .args(["-o", "-selection", "clipboard"])
        .env("DISPLAY", display)
        .output()
        .expect("xclip (installed by the rdp peers plug-in)");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Pumps the connection and the clipboard; returns the server's clipboard texts.
async fn pump(x: &mut Xrdp) -> Vec<String> {
    x.pump().await;
    let Some(c) = x.stage.get_svc_processor_mut::<CliprdrClient>() else {
        panic!("no CLIPRDR channel");
    };
    let out = clipboard::poll(c);
    send(x, out.messages).await;
    out.remote_text
}

async fn send(x: &mut Xrdp, messages: Vec<ironrdp_svc::SvcMessage>) {
    if messages.is_empty() {
        return;
    }
    let frame = x
        .stage
        .process_svc_processor_messages(SvcProcessorMessages::<CliprdrClient>::new(messages))
        .unwrap();
    x.send(&frame).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn xrdp_clipboard_both_ways() {
    let _turn = XRDP_USER.lock().await;
    // `windows` line endings: what the X side gets shows the conversion.
    let settings = ClipboardSettings::new(false, false, LineEndings::Windows);
    let mut x = Xrdp::connect(false, move |c| {
        c.attach_static_channel(clipboard::channel(settings));
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = |x: &mut Xrdp| {
        x.stage
            .get_svc_processor_mut::<CliprdrClient>()
            .is_some_and(|c| c.is_ready())
    };
    while !(ready(&mut x) && x.display().is_some()) {
        assert!(
            Instant::now() < deadline,
            "xrdp never completed the clipboard channel start"
        );
        pump(&mut x).await;
    }
    let display = x.display().unwrap();
    let tag = std::process::id();

    // Client → X: announced, requested by chansrv when xclip asks, CRLF applied.
    let text = format!("h5 to-x {tag} é ✓\nline 2");
    let c = x.stage.get_svc_processor_mut::<CliprdrClient>().unwrap();
    let out = clipboard::set_local_text(c, &text);
    send(&mut x, out.messages).await;
    let want = text.replace('\n', "\r\n");
    let mut got = None;
    while got.as_deref() != Some(want.as_str()) {
        assert!(
            Instant::now() < deadline,
            "X clipboard is {got:?}, want {want:?}"
        );
        // xclip blocks until chansrv answers: ask from a thread while pumping.
        let d = display.clone();
        let ask = tokio::task::spawn_blocking(move || xclip_out(&d));
        while !ask.is_finished() {
            pump(&mut x).await;
        }
        got = ask.await.unwrap();
    }

    // X → client: chansrv announces the new owner's text, we request and decode it.
    let text = format!("h5 from-x {tag} ü €\r\nend");
    let _sel = Selection::set(&display, "clipboard", &text).expect("an X selection owner");
    let want = format!("h5 from-x {tag} ü €\nend");
    let mut seen = Vec::new();
    while !seen.contains(&want) {
        assert!(
            Instant::now() < deadline,
            "the X clipboard never reached the channel; got {seen:?}"
        );
        seen.extend(pump(&mut x).await);
    }
}
