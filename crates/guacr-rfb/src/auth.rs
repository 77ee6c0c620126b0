//! VNC Authentication (DES challenge-response).

use des::Des;
use des::cipher::{Block, BlockCipherEncrypt, KeyInit};

/// The 16-byte response to a VNC Authentication challenge: the challenge
/// encrypted with DES-ECB under the password's first 8 bytes (zero-padded),
/// each key byte bit-reversed (the RFB quirk).
pub fn vnc_auth_response(password: &[u8], challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, p) in key.iter_mut().zip(password) {
        *k = p.reverse_bits();
    }
    let cipher = Des::new(&key.into());
    let mut out = [0u8; 16];
    for (dst, src) in out.chunks_exact_mut(8).zip(challenge.chunks_exact(8)) {
        let mut block = Block::<Des>::default();
        block.copy_from_slice(src);
        cipher.encrypt_block(&mut block);
        dst.copy_from_slice(&block);
    }
    key.fill(0);
    out
}
