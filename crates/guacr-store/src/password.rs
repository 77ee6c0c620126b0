//! Password hashing: argon2id PHC strings, and Guacamole's legacy md5/sha256 hex digests.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sha2::Digest as _;
use subtle::ConstantTimeEq;

use crate::{Error, LegacyHash};

/// Hashes with argon2id (default parameters: 19 MiB, 2 passes) into a PHC string.
pub(crate) fn hash(password: &str) -> Result<String, Error> {
    let h: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| Error::Crypto(format!("password hashing failed: {e}")))?;
    Ok(h.to_string())
}

/// Verifies against a PHC string; a malformed stored hash never matches.
pub(crate) fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of nothing in particular, verified against for unknown users so
/// their timing matches known ones.
pub(crate) fn dummy_verify(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("guacr-dummy-password").unwrap_or_default());
    let _ = verify(password, phc);
}

/// Stored legacy form: `md5:<hex>` / `sha256:<hex>` (lowercase).
pub(crate) fn legacy_encode(kind: LegacyHash, hex_digest: &str) -> Result<String, Error> {
    let d = hex_digest.trim().to_ascii_lowercase();
    let want = match kind {
        LegacyHash::Md5 => 32,
        LegacyHash::Sha256 => 64,
    };
    if d.len() != want || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid(format!(
            "a {} password hash is {want} hex digits",
            legacy_name(kind)
        )));
    }
    Ok(format!("{}:{d}", legacy_name(kind)))
}

fn legacy_name(kind: LegacyHash) -> &'static str {
    match kind {
        LegacyHash::Md5 => "md5",
        LegacyHash::Sha256 => "sha256",
    }
}

/// Verifies a password against a stored legacy hash (constant-time compare).
pub(crate) fn legacy_verify(password: &str, stored: &str) -> bool {
    let Some((kind, hex_digest)) = stored.split_once(':') else {
        return false;
    };
    let Ok(want) = hex::decode(hex_digest) else {
        return false;
    };
    let got: Vec<u8> = match kind {
        "md5" => md5::compute(password.as_bytes()).0.to_vec(),
        "sha256" => sha2::Sha256::digest(password.as_bytes()).to_vec(),
        _ => return false,
    };
    got.len() == want.len() && bool::from(got.ct_eq(&want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
        assert!(!verify("x", "not a phc string"));
    }

    #[test]
    fn legacy_digests() {
        // md5("password") and sha256("password")
        let md5 = legacy_encode(LegacyHash::Md5, "5F4DCC3B5AA765D61D8327DEB882CF99").unwrap();
        assert!(legacy_verify("password", &md5));
        assert!(!legacy_verify("Password", &md5));
        let sha = legacy_encode(
            LegacyHash::Sha256,
            "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
        )
        .unwrap();
        assert!(legacy_verify("password", &sha));
        assert!(!legacy_verify("password", "sha256:zz"));
        assert!(legacy_encode(LegacyHash::Md5, "abc").is_err());
    }
}
