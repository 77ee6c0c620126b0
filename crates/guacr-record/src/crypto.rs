//! Encryption at rest for recordings and typescripts.
//!
//! Each file gets a fresh random 256-bit data key, sealed to the recipient's
//! X25519 public key; the recipient's private key never needs to be on the
//! recording server.
//!
//! File format (all integers big-endian):
//!
//! ```text
//! "GUACRENC1"                      9 bytes   magic (format version 1)
//! recipient public key            32 bytes   which key can open the file
//! ephemeral public key            32 bytes   per-file X25519 key
//! wrapped data key                48 bytes   AES-256-GCM(KEK, data key) + tag
//! chunk*                                     until and including the final chunk
//!   length                         4 bytes   ciphertext length incl. 16-byte tag
//!   ciphertext                     length    AES-256-GCM(data key, plaintext)
//! ```
//!
//! - KEK and wrap nonce: `HKDF-SHA256(salt = ephemeral_pub || recipient_pub,
//!   ikm = X25519(ephemeral_secret, recipient_pub), info = "guacr recording key
//!   wrap v1")` → 32-byte key + 12-byte nonce; the wrap's associated data is the
//!   first 73 header bytes.
//! - Chunk `i` (from 0): nonce = 4 zero bytes || `i` as u64 — unique because
//!   the data key is never reused; associated data = magic || `i` as u64 ||
//!   final flag (1 for the last chunk, else 0). Reordered, dropped, altered or
//!   spliced chunks fail authentication; a file whose final chunk is missing
//!   is reported as truncated; anything after the final chunk is rejected.
//!
//! Decryption streams: plaintext of verified chunks is written as it goes, so
//! on any error the output must be discarded.

use std::fmt;
use std::io::{self, Read, Write};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use curve25519_dalek::montgomery::MontgomeryPoint;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// File magic and format version.
pub const MAGIC: &[u8; 9] = b"GUACRENC1";
/// Length of the header before the first chunk.
pub const HEADER_LEN: usize = 9 + 32 + 32 + 48;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Largest chunk plaintext accepted when decrypting.
pub const MAX_CHUNK: usize = 1 << 20;
/// Chunk plaintext size used by the writer.
pub const WRITE_CHUNK: usize = 64 * 1024;

const WRAP_INFO: &[u8] = b"guacr recording key wrap v1";
const PRIVATE_LABEL: &str = "GUACR RECORDING PRIVATE KEY";
const PUBLIC_LABEL: &str = "GUACR RECORDING PUBLIC KEY";

/// A key or key file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a guacr recording {0} key (expected -----BEGIN {1}----- and 32 bytes of base64)")]
    Format(&'static str, &'static str),
    #[error("the public key is a low-order point and cannot be used")]
    WeakKey,
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("encryption failed")]
    Cipher,
}

/// Why an encrypted file could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    #[error("not an encrypted guacr recording (bad magic)")]
    NotEncrypted,
    #[error("the file was encrypted for a different key")]
    WrongKey,
    #[error("the file header has been tampered with")]
    TamperedHeader,
    #[error("chunk {index} has been tampered with, reordered or replaced")]
    TamperedChunk { index: u64 },
    #[error("the file is truncated (its final chunk is missing)")]
    Truncated,
    #[error("unexpected data after the final chunk")]
    TrailingData,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// An X25519 public key (recipient of encrypted recordings).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

/// An X25519 private key. Its `Debug` never shows the key; it is wiped on drop.
#[derive(Clone)]
pub struct PrivateKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn armor(label: &str, bytes: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        b64().encode(bytes)
    )
}

/// Accepts the armored form, or a bare base64 line.
fn unarmor(text: &str, label: &str) -> Option<Zeroizing<[u8; 32]>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let text = text.trim();
    let body = match text.strip_prefix(&begin) {
        Some(rest) => rest.trim_end().strip_suffix(&end)?,
        None if !text.contains("-----") => text,
        None => return None,
    };
    let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = Zeroizing::new(b64().decode(body.as_bytes()).ok()?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return None;
    }
    key.copy_from_slice(&bytes);
    Some(key)
}

impl PublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        PublicKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_base64(&self) -> String {
        b64().encode(self.0)
    }

    /// The key file text (`-----BEGIN GUACR RECORDING PUBLIC KEY-----` …).
    pub fn to_text(&self) -> String {
        armor(PUBLIC_LABEL, &self.0)
    }

    /// Parses [`to_text`](Self::to_text)'s format or a bare base64 key.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        unarmor(text, PUBLIC_LABEL)
            .map(|k| PublicKey(*k))
            .ok_or(KeyError::Format("public", PUBLIC_LABEL))
    }
}

impl PrivateKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        PrivateKey(Zeroizing::new(bytes))
    }

    /// A new random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut k = Zeroizing::new([0u8; 32]);
        random(k.as_mut())?;
        Ok(PrivateKey(k))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(MontgomeryPoint::mul_base_clamped(*self.0).to_bytes())
    }

    /// The key file text (`-----BEGIN GUACR RECORDING PRIVATE KEY-----` …).
    /// Contains the secret: write it with restrictive permissions.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(armor(PRIVATE_LABEL, self.0.as_ref()))
    }

    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        unarmor(text, PRIVATE_LABEL)
            .map(PrivateKey)
            .ok_or(KeyError::Format("private", PRIVATE_LABEL))
    }

    fn diffie_hellman(&self, public: &PublicKey) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(MontgomeryPoint(public.0).mul_clamped(*self.0).to_bytes())
    }
}

/// A new random key pair.
pub fn generate_keypair() -> Result<(PrivateKey, PublicKey), KeyError> {
    let private = PrivateKey::generate()?;
    let public = private.public_key();
    Ok((private, public))
}

fn random(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buf).map_err(|e| KeyError::Random(e.to_string()))
}

/// KEK (32 bytes) followed by the wrap nonce (12 bytes).
fn wrap_secret(
    shared: &[u8; 32],
    ephemeral: &PublicKey,
    recipient: &PublicKey,
) -> Zeroizing<[u8; 44]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(&ephemeral.0);
    salt[32..].copy_from_slice(&recipient.0);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut okm = Zeroizing::new([0u8; 44]);
    // 44 bytes is far below HKDF-SHA256's 8160-byte limit.
    let _ = hk.expand(WRAP_INFO, okm.as_mut());
    okm
}

fn chunk_nonce(index: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&index.to_be_bytes());
    Nonce::from(n)
}

fn chunk_aad(index: u64, last: bool) -> [u8; 18] {
    let mut aad = [0u8; 18];
    aad[..9].copy_from_slice(MAGIC);
    aad[9..17].copy_from_slice(&index.to_be_bytes());
    aad[17] = u8::from(last);
    aad
}

/// Sans-IO encryptor for one file: [`Encryptor::new`] gives the header, then
/// [`seal_chunk`](Self::seal_chunk) each piece of plaintext, the last one with
/// `last = true`.
pub struct Encryptor {
    cipher: Aes256Gcm,
    index: u64,
    finished: bool,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("index", &self.index)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// A new data key sealed to `recipient`; returns the encryptor and the
    /// file header to write first.
    pub fn new(recipient: &PublicKey) -> Result<(Self, Vec<u8>), KeyError> {
        let ephemeral = PrivateKey::generate()?;
        let ephemeral_pub = ephemeral.public_key();
        let shared = ephemeral.diffie_hellman(recipient);
        if shared.iter().all(|&b| b == 0) {
            return Err(KeyError::WeakKey);
        }
        let mut data_key = Zeroizing::new([0u8; 32]);
        random(data_key.as_mut())?;

        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&recipient.0);
        header.extend_from_slice(&ephemeral_pub.0);

        let secret = wrap_secret(&shared, &ephemeral_pub, recipient);
        let kek = Aes256Gcm::new_from_slice(&secret[..32]).map_err(|_| KeyError::Cipher)?;
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&secret[32..]);
        let wrapped = kek
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: data_key.as_ref(),
                    aad: &header,
                },
            )
            .map_err(|_| KeyError::Cipher)?;
        header.extend_from_slice(&wrapped);
        debug_assert_eq!(header.len(), HEADER_LEN);

        let cipher = Aes256Gcm::new_from_slice(data_key.as_ref()).map_err(|_| KeyError::Cipher)?;
        Ok((
            Encryptor {
                cipher,
                index: 0,
                finished: false,
            },
            header,
        ))
    }

    /// Appends one sealed chunk (length + ciphertext) to `out`. After the
    /// last chunk nothing more can be sealed.
    pub fn seal_chunk(
        &mut self,
        plaintext: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), KeyError> {
        if self.finished || plaintext.len() > MAX_CHUNK {
            return Err(KeyError::Cipher);
        }
        let aad = chunk_aad(self.index, last);
        let ct = self
            .cipher
            .encrypt(
                &chunk_nonce(self.index),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Cipher)?;
        let len = u32::try_from(ct.len()).map_err(|_| KeyError::Cipher)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&ct);
        self.index += 1;
        self.finished = last;
        Ok(())
    }

    /// Whether the final chunk has been sealed.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// Whether `prefix` (the first bytes of a file) starts like an encrypted file.
pub fn is_encrypted(prefix: &[u8]) -> bool {
    prefix.starts_with(MAGIC)
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean EOF before any
/// byte, `Truncated` at an EOF in the middle.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<bool, DecryptError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => {
                return if filled == 0 {
                    Ok(false)
                } else {
                    Err(DecryptError::Truncated)
                };
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DecryptError::Io(e)),
        }
    }
    Ok(true)
}

/// Decrypts an encrypted recording from `reader` into `writer`.
pub fn decrypt<R: Read, W: Write>(
    mut reader: R,
    key: &PrivateKey,
    mut writer: W,
) -> Result<(), DecryptError> {
    let mut header = [0u8; HEADER_LEN];
    let mut magic = [0u8; 9];
    if !read_full(&mut reader, &mut magic)? || &magic != MAGIC {
        return Err(DecryptError::NotEncrypted);
    }
    header[..9].copy_from_slice(&magic);
    if !read_full(&mut reader, &mut header[9..])? {
        return Err(DecryptError::Truncated);
    }
    let mut recipient = [0u8; 32];
    recipient.copy_from_slice(&header[9..41]);
    let recipient = PublicKey(recipient);
    if recipient != key.public_key() {
        return Err(DecryptError::WrongKey);
    }
    let mut eph = [0u8; 32];
    eph.copy_from_slice(&header[41..73]);
    let ephemeral = PublicKey(eph);
    let shared = key.diffie_hellman(&ephemeral);
    if shared.iter().all(|&b| b == 0) {
        return Err(DecryptError::TamperedHeader);
    }
    let secret = wrap_secret(&shared, &ephemeral, &recipient);
    let kek = Aes256Gcm::new_from_slice(&secret[..32]).map_err(|_| DecryptError::TamperedHeader)?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&secret[32..]);
    let data_key = Zeroizing::new(
        kek.decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &header[73..],
                aad: &header[..73],
            },
        )
        .map_err(|_| DecryptError::TamperedHeader)?,
    );
    let cipher = Aes256Gcm::new_from_slice(&data_key).map_err(|_| DecryptError::TamperedHeader)?;

    let mut index: u64 = 0;
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if !read_full(&mut reader, &mut len)? {
            return Err(DecryptError::Truncated);
        }
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG_LEN..=MAX_CHUNK + TAG_LEN).contains(&len) {
            return Err(DecryptError::TamperedChunk { index });
        }
        buf.resize(len, 0);
        if !read_full(&mut reader, &mut buf)? {
            return Err(DecryptError::Truncated);
        }
        let nonce = chunk_nonce(index);
        let open = |last: bool| {
            cipher.decrypt(
                &nonce,
                Payload {
                    msg: &buf,
                    aad: &chunk_aad(index, last),
                },
            )
        };
        let (mut plain, last) = match open(false) {
            Ok(p) => (p, false),
            Err(_) => match open(true) {
                Ok(p) => (p, true),
                Err(_) => return Err(DecryptError::TamperedChunk { index }),
            },
        };
        writer.write_all(&plain)?;
        plain.zeroize();
        if last {
            let mut extra = [0u8; 1];
            return if read_full(&mut reader, &mut extra)? {
                Err(DecryptError::TrailingData)
            } else {
                writer.flush()?;
                Ok(())
            };
        }
        index += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypt_all(recipient: &PublicKey, chunks: &[&[u8]]) -> Vec<u8> {
        let (mut enc, mut out) = Encryptor::new(recipient).unwrap();
        for (i, c) in chunks.iter().enumerate() {
            enc.seal_chunk(c, i + 1 == chunks.len(), &mut out).unwrap();
        }
        out
    }

    #[test]
    fn x25519_rfc7748_vector() {
        // RFC 7748 section 6.1.
        let hex = |s: &str| -> [u8; 32] {
            let mut out = [0u8; 32];
            for (i, o) in out.iter_mut().enumerate() {
                *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
            }
            out
        };
        let a = PrivateKey::from_bytes(hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let b = PrivateKey::from_bytes(hex(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        assert_eq!(
            a.public_key().0,
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert_eq!(
            *a.diffie_hellman(&b.public_key()),
            hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        );
    }

    #[test]
    fn round_trip_and_key_text() {
        let (sk, pk) = generate_keypair().unwrap();
        let sk2 = PrivateKey::from_text(&sk.to_text()).unwrap();
        let pk2 = PublicKey::from_text(&pk.to_text()).unwrap();
        assert_eq!(pk2, pk);
        assert_eq!(PublicKey::from_text(&pk.to_base64()).unwrap(), pk);
        assert!(PublicKey::from_text(&sk.to_text()).is_err());
        assert!(PrivateKey::from_text("nonsense").is_err());
        assert!(!format!("{sk:?}").contains(&sk.to_text()[40..60]));

        let file = encrypt_all(&pk, &[b"hello ", b"", b"world"]);
        assert!(is_encrypted(&file));
        let mut out = Vec::new();
        decrypt(&file[..], &sk2, &mut out).unwrap();
        assert_eq!(out, b"hello world");
    }

    #[test]
    fn errors_are_distinct() {
        let (sk, pk) = generate_keypair().unwrap();
        let file = encrypt_all(&pk, &[b"one", b"two", b"three"]);
        let run = |bytes: &[u8], key: &PrivateKey| decrypt(bytes, key, &mut Vec::new());

        let (other, _) = generate_keypair().unwrap();
        assert!(matches!(run(&file, &other), Err(DecryptError::WrongKey)));
        assert!(matches!(
            run(b"4.sync,1.0;", &sk),
            Err(DecryptError::NotEncrypted)
        ));

        let mut header = file.clone();
        header[80] ^= 1;
        assert!(matches!(
            run(&header, &sk),
            Err(DecryptError::TamperedHeader)
        ));

        // Second chunk starts after the first (4 + 3 + 16 bytes).
        let second = HEADER_LEN + 4 + 3 + TAG_LEN;
        let mut flipped = file.clone();
        flipped[second + 4 + 1] ^= 0x40;
        assert!(matches!(
            run(&flipped, &sk),
            Err(DecryptError::TamperedChunk { index: 1 })
        ));

        // Cut at a chunk boundary (final chunk missing) and in the middle.
        assert!(matches!(
            run(&file[..second], &sk),
            Err(DecryptError::Truncated)
        ));
        assert!(matches!(
            run(&file[..file.len() - 3], &sk),
            Err(DecryptError::Truncated)
        ));
        assert!(matches!(
            run(&file[..50], &sk),
            Err(DecryptError::Truncated)
        ));

        // Swapping the first two chunks (same length) is detected.
        let first = &file[HEADER_LEN..HEADER_LEN + 4 + 3 + TAG_LEN];
        let two = &file[second..second + 4 + 3 + TAG_LEN];
        let mut swapped = file[..HEADER_LEN].to_vec();
        swapped.extend_from_slice(two);
        swapped.extend_from_slice(first);
        swapped.extend_from_slice(&file[second + 4 + 3 + TAG_LEN..]);
        assert!(matches!(
            run(&swapped, &sk),
            Err(DecryptError::TamperedChunk { index: 0 })
        ));

        let mut trailing = file.clone();
        trailing.push(0);
        assert!(matches!(
            run(&trailing, &sk),
            Err(DecryptError::TrailingData)
        ));
    }
}
