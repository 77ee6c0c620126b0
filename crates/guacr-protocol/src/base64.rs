//! Base64 for `blob` payloads: a fast encoder and guacd's lenient decoder.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Length of the base64 encoding of `n` bytes (with padding).
pub const fn encoded_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Appends the padded base64 encoding of `data` to `out`.
pub fn encode_into(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(encoded_len(data.len()));
    let mut chunks = data.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

pub fn encode(data: &[u8]) -> String {
    let mut v = Vec::with_capacity(encoded_len(data.len()));
    encode_into(data, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

/// Decodes like guacd's `guac_protocol_decode_base64`: stops at the first `=`,
/// treats invalid characters as zero, ignores a trailing partial group.
pub fn decode_lenient(input: &[u8]) -> Vec<u8> {
    let end = input.iter().position(|&c| c == b'=').unwrap_or(input.len());
    let input = &input[..end];
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut groups = input.chunks_exact(4);
    for g in &mut groups {
        let n = (DECODE[g[0] as usize] << 18)
            | (DECODE[g[1] as usize] << 12)
            | (DECODE[g[2] as usize] << 6)
            | DECODE[g[3] as usize];
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let rest = groups.remainder();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in rest {
        acc = (acc << 6) | DECODE[c as usize];
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Sextet values; guacd treats characters outside the alphabet as zero.
static DECODE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 64 {
        t[ALPHABET[i] as usize] = i as u32;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guacd_vectors() {
        assert_eq!(decode_lenient(b"SEVMTE8="), b"HELLO");
        assert_eq!(decode_lenient(b"QVZPQ0FETw=="), b"AVOCADO");
        assert_eq!(decode_lenient(b"R1VBQ0FNT0xF"), b"GUACAMOLE");
        assert_eq!(decode_lenient(b"===="), b"");
        assert_eq!(decode_lenient(b""), b"");
    }

    #[test]
    fn encode_matches_reference() {
        assert_eq!(encode(b"HELLO"), "SEVMTE8=");
        assert_eq!(encode(b"AVOCADO"), "QVZPQ0FETw==");
        assert_eq!(encode(b"GUACAMOLE"), "R1VBQ0FNT0xF");
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(decode_lenient(encode(&data).as_bytes()), data);
        }
    }
}
