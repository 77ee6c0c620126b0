//! The sans-IO RFB client over arbitrary server bytes, two ways: raw (the
//! handshake itself is fuzzed) and after a fixed valid handshake prefix
//! (3.8, None, a 64x48 ServerInit) so the message and rectangle decoders are
//! reached. The first byte picks the mode and the chunk size; decoding in
//! chunks must give the same events as decoding at once. Nothing may panic.
#![no_main]

use guacr_rfb::{Event, PixelFormat, RfbClient, RfbConfig};
use libfuzzer_sys::fuzz_target;

fn prefix() -> Vec<u8> {
    let mut s = b"RFB 003.008\n".to_vec();
    s.extend_from_slice(&[1, 1, 0, 0, 0, 0]);
    s.extend_from_slice(&64u16.to_be_bytes());
    s.extend_from_slice(&48u16.to_be_bytes());
    s.extend_from_slice(&PixelFormat::RGB888.to_wire());
    s.extend_from_slice(&[0, 0, 0, 0]);
    s
}

/// Feeds `stream` in chunks of `chunk` bytes, answering TLS and credential
/// prompts between chunks; returns the events and whether the client ended
/// (error or authentication failure).
fn run(stream: &[u8], chunk: usize, config: &RfbConfig) -> (Vec<Event>, bool) {
    let mut c = RfbClient::new(config.clone());
    let mut events = Vec::new();
    for part in stream.chunks(chunk.max(1)) {
        let res = c.feed(part);
        // Events decoded before an error stay available.
        events.extend(std::iter::from_fn(|| c.poll_event()));
        if res.is_err() {
            break;
        }
        let _ = c.take_output();
        let _ = c.tls_established();
        let _ = c.provide_credentials(Some("u".into()), Some("p".into()));
        events.extend(std::iter::from_fn(|| c.poll_event()));
    }
    let closed = c.is_closed();
    let _ = c.eof();
    (events, closed)
}

/// After `StartTls` the bytes that follow in the same chunk are (rightly)
/// refused, while between chunks the harness completes the upgrade: compare
/// only up to the upgrade in that case.
fn comparable((mut events, closed): (Vec<Event>, bool)) -> (Vec<Event>, Option<bool>) {
    match events
        .iter()
        .position(|e| matches!(e, Event::StartTls { .. }))
    {
        Some(i) => {
            events.truncate(i + 1);
            (events, None)
        }
        None => (events, Some(closed)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let stream = if mode & 1 == 0 {
        let mut s = prefix();
        s.extend_from_slice(rest);
        s
    } else {
        rest.to_vec()
    };
    let config = RfbConfig {
        password: Some("pw".into()),
        swap_red_blue: mode & 2 != 0,
        allow_plain_without_tls: true,
        pixel_format: if mode & 4 != 0 {
            guacr_rfb::PixelFormatRequest::ServerNative
        } else {
            guacr_rfb::PixelFormatRequest::default()
        },
        ..RfbConfig::default()
    };
    let whole = comparable(run(&stream, stream.len(), &config));
    let chunked = comparable(run(&stream, usize::from(mode >> 3) + 1, &config));
    assert_eq!(whole, chunked, "chunking changed the result");
});
