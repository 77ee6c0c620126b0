//! The secret key and AES-256-GCM encryption of values at rest.
//!
//! Stored form: `v1:` + base64(nonce(12) || ciphertext || tag(16)), with
//! associated data naming where the value belongs (so a value cannot be moved
//! to another parameter or connection unnoticed).

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::Error;

const PREFIX: &str = "v1:";

/// A 32-byte AES-256-GCM key. `Debug` does not show it.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Result<SecretKey, Error> {
        let mut k = Zeroizing::new([0u8; 32]);
        random(&mut k[..])?;
        Ok(SecretKey(k))
    }

    /// From raw bytes (exactly 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, Error> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::BadKey(format!("expected 32 bytes, got {}", bytes.len())))?;
        Ok(SecretKey(Zeroizing::new(arr)))
    }

    /// Parses 32 bytes written as 64 hex digits or base64 (standard or URL-safe,
    /// padded or not). Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<SecretKey, Error> {
        let t = text.trim();
        if t.len() == 64
            && t.bytes().all(|b| b.is_ascii_hexdigit())
            && let Ok(b) = hex::decode(t)
        {
            return SecretKey::from_bytes(&b);
        }
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            if let Ok(b) = engine.decode(t) {
                let b = Zeroizing::new(b);
                return SecretKey::from_bytes(&b);
            }
        }
        Err(Error::BadKey(
            "not 32 bytes of base64 or 64 hex digits".to_owned(),
        ))
    }

    /// The key as base64 (what key files hold).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0[..])
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<SecretKey, Error> {
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                Error::Io(format!("cannot read secret key {}: {e}", path.display()))
            })?);
        SecretKey::parse(&text).map_err(|e| match e {
            Error::BadKey(m) => Error::BadKey(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Reads a key file, or creates it (mode 0600, parent directories 0700)
    /// with a new random key when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, Error> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if path.exists() {
            return SecretKey::load(path);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::Io(format!("cannot create {}: {e}", dir.display())))?;
        }
        let key = SecretKey::generate()?;
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(f) => f,
            // Another process created it meanwhile: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return SecretKey::load(path);
            }
            Err(e) => {
                return Err(Error::Io(format!(
                    "cannot create secret key {}: {e}",
                    path.display()
                )));
            }
        };
        f.write_all(format!("{}\n", key.to_base64()).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::Io(format!("cannot write secret key {}: {e}", path.display())))?;
        Ok(key)
    }

    /// Encrypts `plain` bound to `aad`.
    pub(crate) fn encrypt(&self, plain: &str, aad: &str) -> Result<String, Error> {
        let cipher = Aes256Gcm::new_from_slice(&self.0[..])
            .map_err(|_| Error::Crypto("bad key length".to_owned()))?;
        let mut nonce = [0u8; 12];
        random(&mut nonce)?;
        let ct = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::Crypto("encryption failed".to_owned()))?;
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Decrypts what [`SecretKey::encrypt`] produced with the same `aad`.
    /// A wrong key or a moved/tampered value gives [`Error::Crypto`].
    pub(crate) fn decrypt(&self, stored: &str, aad: &str) -> Result<String, Error> {
        let body = stored
            .strip_prefix(PREFIX)
            .ok_or_else(|| Error::Crypto("unknown format".to_owned()))?;
        let raw = STANDARD
            .decode(body)
            .map_err(|_| Error::Crypto("not base64".to_owned()))?;
        if raw.len() < 12 + 16 {
            return Err(Error::Crypto("too short".to_owned()));
        }
        let (nonce, ct) = raw.split_at(12);
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| Error::Crypto("bad nonce".to_owned()))?;
        let cipher = Aes256Gcm::new_from_slice(&self.0[..])
            .map_err(|_| Error::Crypto("bad key length".to_owned()))?;
        let plain = cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::Crypto("authentication failed (wrong key or altered value)".to_owned())
            })?;
        String::from_utf8(plain).map_err(|_| Error::Crypto("not UTF-8".to_owned()))
    }
}

/// Fills `buf` from the OS random source.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|e| Error::Io(format!("no randomness: {e}")))
}

/// A random password: 20 characters from an unambiguous alphabet (~115 bits).
pub(crate) fn random_password() -> Result<String, Error> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(20);
    let mut buf = [0u8; 64];
    while out.len() < 20 {
        random(&mut buf)?;
        for b in buf {
            // Rejection sampling keeps the distribution uniform.
            let limit = 256 - (256 % ALPHABET.len());
            if (b as usize) < limit && out.len() < 20 {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_aad_binding() {
        let k = SecretKey::generate().unwrap();
        let c = k.encrypt("hunter2", "conn:1:password").unwrap();
        assert!(!c.contains("hunter2"));
        assert_eq!(k.decrypt(&c, "conn:1:password").unwrap(), "hunter2");
        assert!(k.decrypt(&c, "conn:2:password").is_err());
        let other = SecretKey::generate().unwrap();
        assert!(matches!(
            other.decrypt(&c, "conn:1:password"),
            Err(Error::Crypto(_))
        ));
        // A fresh nonce every time.
        assert_ne!(c, k.encrypt("hunter2", "conn:1:password").unwrap());
    }

    #[test]
    fn parse_hex_and_base64() {
        let k = SecretKey::generate().unwrap();
        let b64 = k.to_base64();
        let hex = hex::encode(&k.0[..]);
        assert_eq!(SecretKey::parse(&b64).unwrap().0[..], k.0[..]);
        assert_eq!(
            SecretKey::parse(&format!(" {hex}\n")).unwrap().0[..],
            k.0[..]
        );
        assert!(matches!(SecretKey::parse("short"), Err(Error::BadKey(_))));
        assert!(matches!(
            SecretKey::parse(&STANDARD.encode([1u8; 16])),
            Err(Error::BadKey(_))
        ));
        assert_eq!(format!("{k:?}"), "SecretKey(..)");
    }

    #[test]
    fn key_file_created_0600_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("guacr-store-key-{}", std::process::id()));
        let path = dir.join("sub/secret.key");
        let k1 = SecretKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(k1.0[..], k2.0[..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn passwords_are_random_and_long() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
