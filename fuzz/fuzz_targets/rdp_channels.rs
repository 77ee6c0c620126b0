//! guacr-rdp's CLIPRDR and RDPSND channels (IronRDP's processors with guacr's
//! backends) over arbitrary server PDUs. Byte 0: bit 0 picks the channel, bit 1
//! primes it with a valid start (capabilities, Monitor Ready, format list OK /
//! PCM formats and training) so later states are reached, bits 2-3 pick the
//! clipboard options, bit 4 sets a user's clipboard text midway. The rest is
//! PDUs, each prefixed by a 2-byte little-endian length. Nothing may panic; the
//! clipboard text users get stays within the limit; audio chunks hold whole
//! frames and become parseable Guacamole instructions.
#![no_main]

// The two modules are compiled in straight from guacr-rdp, without the rest of
// that crate (TLS, CredSSP, the display pipeline), to keep this build light.
#[path = "../../crates/guacr-rdp/src/audio.rs"]
#[allow(dead_code)]
mod audio;
#[path = "../../crates/guacr-rdp/src/clipboard.rs"]
#[allow(dead_code)]
mod clipboard;

use ironrdp_cliprdr::pdu::{
    Capabilities, ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags,
    ClipboardPdu, ClipboardProtocolVersion, FormatListResponse,
};
use ironrdp_pdu::encode_vec;
use ironrdp_rdpsnd::pdu::{ServerAudioFormatPdu, ServerAudioOutputPdu, TrainingPdu, Version};
use ironrdp_svc::SvcProcessor;
use libfuzzer_sys::fuzz_target;

fn pdus(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
        let take = len.min(rest.len());
        out.push(&rest[..take]);
        rest = &rest[take..];
    }
    out
}

fn clipboard_run(flags: u8, data: &[u8]) {
    let settings = clipboard::ClipboardSettings {
        disable_copy: flags & 4 != 0,
        disable_paste: false,
        line_endings: if flags & 8 != 0 {
            clipboard::LineEndings::Windows
        } else {
            clipboard::LineEndings::Preserve
        },
        max_bytes: 4096,
    };
    let mut c = clipboard::channel(settings);
    let _ = c.start();
    if flags & 2 != 0 {
        let caps = ClipboardPdu::Capabilities(Capabilities::new(
            ClipboardProtocolVersion::V2,
            ClipboardGeneralCapabilityFlags::USE_LONG_FORMAT_NAMES,
        ));
        for pdu in [
            caps,
            ClipboardPdu::MonitorReady,
            ClipboardPdu::FormatListResponse(FormatListResponse::Ok),
        ] {
            let bytes = encode_vec(&pdu).unwrap();
            let _ = c.process(&bytes);
            let _ = clipboard::poll(&mut c);
        }
    }
    let list = pdus(data);
    let half = list.len() / 2;
    for (i, pdu) in list.into_iter().enumerate() {
        if flags & 16 != 0 && i == half {
            let _ = clipboard::set_local_text(&mut c, "fuzz\nclipboard ✓");
        }
        let _ = c.process(pdu);
        for text in clipboard::poll(&mut c).remote_text {
            assert!(text.len() <= 4096);
            let _ = clipboard::clipboard_instructions(3, &text);
        }
    }
    // The decoders on their own.
    let _ = clipboard::decode_utf16le(data, 4096);
    let _ = clipboard::decode_cp1252(data, 4096);
    let _ = clipboard::decode_cp437(data, 4096);
    let _ = clipboard::choose_text_format(&[ClipboardFormat::new(ClipboardFormatId::CF_TEXT)]);
}

fn audio_run(flags: u8, data: &[u8]) {
    let (mut snd, rx) = audio::channel(flags & 4 == 0);
    if flags & 2 != 0 {
        let formats = vec![
            audio::PREFERRED[0].to_audio_format(),
            audio::PREFERRED[3].to_audio_format(),
        ];
        let offer = ServerAudioOutputPdu::AudioFormat(ServerAudioFormatPdu {
            version: if flags & 8 != 0 {
                Version::V8
            } else {
                Version::V5
            },
            formats,
        });
        let training = ServerAudioOutputPdu::Training(TrainingPdu {
            timestamp: 1,
            data: vec![0; 4],
        });
        let _ = snd.process(&encode_vec(&offer).unwrap());
        let _ = snd.process(&encode_vec(&training).unwrap());
    }
    for pdu in pdus(data) {
        let _ = snd.process(pdu);
        for chunk in rx.drain() {
            assert_eq!(chunk.data.len() % chunk.format.frame_bytes(), 0);
            let bytes = audio::audio_instructions(5, chunk.format, &chunk.data, true);
            assert!(guacr_protocol::parse_all(&bytes).is_ok());
        }
    }
    let odd = audio::PcmFormat {
        rate: 8000,
        channels: u16::from(flags >> 5),
        bits: 16,
    };
    let _ = audio::audio_instructions(1, odd, data, true);
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    if flags & 1 == 0 {
        clipboard_run(flags, rest);
    } else {
        audio_run(flags, rest);
    }
});
