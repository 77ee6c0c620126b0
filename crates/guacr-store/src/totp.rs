//! TOTP (RFC 6238) with HMAC-SHA1, 30-second steps, 6 digits: the defaults
//! every authenticator app supports.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;

/// The HOTP value (RFC 4226) of `secret` at `counter`, `digits` long.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    let modulo = 10u64.pow(digits.min(9));
    format!(
        "{:0width$}",
        u64::from(bin) % modulo,
        width = digits.min(9) as usize
    )
}

/// The step containing unix time `t` (seconds).
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP)
}

/// The TOTP code at unix time `t` (seconds).
pub fn code_at(secret: &[u8], unix_seconds: i64, digits: u32) -> String {
    hotp(secret, step_at(unix_seconds).max(0) as u64, digits)
}

/// Checks `code` against the steps `now-1`, `now`, `now+1`; returns the
/// matching step. Whitespace in the code is ignored.
pub fn verify(secret: &[u8], code: &str, unix_seconds: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_seconds);
    (now - 1..=now + 1).filter(|s| *s >= 0).find(|s| {
        let want = hotp(secret, *s as u64, DIGITS);
        subtle::ConstantTimeEq::ct_eq(want.as_bytes(), code.as_bytes()).into()
    })
}

/// Base32 (RFC 4648, no padding), as authenticator apps expect.
pub fn base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// Decodes base32 (padding and case tolerated).
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let t: String = text
        .trim()
        .trim_end_matches('=')
        .to_ascii_uppercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    data_encoding::BASE32_NOPAD.decode(t.as_bytes()).ok()
}

/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        pct(issuer),
        pct(account),
        base32(secret),
        pct(issuer)
    )
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA1 rows (8 digits; the 6-digit code is the last six).
    const SECRET: &[u8] = b"12345678901234567890";
    const VECTORS: &[(i64, &str)] = &[
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ];

    #[test]
    fn rfc6238_vectors() {
        for (t, want) in VECTORS {
            assert_eq!(code_at(SECRET, *t, 8), *want, "t={t}");
            assert_eq!(code_at(SECRET, *t, 6), want[2..], "t={t}");
        }
    }

    #[test]
    fn window_is_plus_minus_one_step() {
        let t = 1111111109;
        let code = code_at(SECRET, t, 6);
        assert_eq!(verify(SECRET, &code, t), Some(step_at(t)));
        assert!(verify(SECRET, &code, t + 30).is_some());
        assert!(verify(SECRET, &code, t - 30).is_some());
        assert!(verify(SECRET, &code, t + 61).is_none());
        assert!(verify(SECRET, &code, t - 61).is_none());
        assert!(verify(SECRET, "12345", t).is_none());
        assert!(verify(SECRET, "abcdef", t).is_none());
    }

    #[test]
    fn uri_and_base32() {
        let uri = otpauth_uri("guacr", "al ice", SECRET);
        assert!(
            uri.starts_with(
                "otpauth://totp/guacr:al%20ice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
            )
        );
        assert_eq!(
            from_base32("gezdgnbvgy3tqojqgezdgnbvgy3tqojq").unwrap(),
            SECRET
        );
    }
}
