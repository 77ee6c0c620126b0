//! `base64::decode_lenient` over arbitrary bytes: never panics, produces
//! exactly 6 bits per character before the first `=`, and inverts `encode`.
#![no_main]

use guacr_protocol::base64;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = base64::decode_lenient(data);
    let chars = data.iter().position(|&c| c == b'=').unwrap_or(data.len());
    assert_eq!(decoded.len(), chars * 6 / 8);

    // Canonical encodings decode back to their input.
    let encoded = base64::encode(data);
    assert_eq!(encoded.len(), base64::encoded_len(data.len()));
    assert_eq!(base64::decode_lenient(encoded.as_bytes()), data);
    let mut into = b"prefix".to_vec();
    base64::encode_into(data, &mut into);
    assert_eq!(&into[6..], encoded.as_bytes());
});
