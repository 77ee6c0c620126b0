//! The sans-IO RFB client over arbitrary server bytes, two ways: raw (the
//! handshake itself is fuzzed) and after a fixed valid handshake prefix
//! (3.8, None, a 64x48 ServerInit) so the message and rectangle decoders are
//! reached. The first byte picks the mode and the chunk size; decoding in
//! chunks must give the same events as decoding at once. Nothing may panic.
#![no_main]

use guacr_rfb::{PixelFormat, RfbClient, RfbConfig};
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

fn run(stream: &[u8], chunk: usize, config: &RfbConfig) -> (Vec<guacr_rfb::Event>, bool) {
    let mut c = RfbClient::new(config.clone());
    let mut events = Vec::new();
    let mut failed = false;
    for part in stream.chunks(chunk.max(1)) {
        let res = c.feed(part);
        // Events decoded before an error stay available.
        events.extend(std::iter::from_fn(|| c.poll_event()));
        if res.is_err() {
            failed = true;
            break;
        }
        let _ = c.take_output();
        // Answer TLS and credential prompts so fuzzing continues past them.
        let _ = c.tls_established();
        let _ = c.provide_credentials(Some("u".into()), Some("p".into()));
        events.extend(std::iter::from_fn(|| c.poll_event()));
    }
    let _ = c.eof();
    (events, failed)
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
    let whole = run(&stream, stream.len(), &config);
    let chunked = run(&stream, usize::from(mode >> 3) + 1, &config);
    assert_eq!(whole, chunked, "chunking changed the result");
});
