//! guacd's `clipboard-encoding`: the character set of RFB cut text.
//!
//! RFB defines cut text as ISO 8859-1; guacd lets the administrator pick
//! `ISO8859-1` (default), `UTF-8`, `UTF-16` (little-endian code units, no BOM)
//! or `CP1252`, because many servers send something else. Guacamole clipboard
//! streams are always UTF-8 text.

/// A cut-text character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClipboardEncoding {
    #[default]
    Iso8859_1,
    Utf8,
    Utf16,
    Cp1252,
}

/// CP1252 code points for bytes 0x80..=0x9F (0 = undefined, mapped to U+FFFD).
const CP1252_HIGH: [u16; 32] = [
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC,
    0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
];

impl ClipboardEncoding {
    /// Parses guacd's names; `None` for an unknown one.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "" | "ISO8859-1" => Some(Self::Iso8859_1),
            "UTF-8" => Some(Self::Utf8),
            "UTF-16" => Some(Self::Utf16),
            "CP1252" => Some(Self::Cp1252),
            _ => None,
        }
    }

    /// Cut text from the server → UTF-8.
    pub fn decode(self, bytes: &[u8]) -> String {
        match self {
            Self::Iso8859_1 => bytes.iter().map(|&b| char::from(b)).collect(),
            Self::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Self::Utf16 => {
                let units = bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]));
                char::decode_utf16(units)
                    .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect()
            }
            Self::Cp1252 => bytes
                .iter()
                .map(|&b| match b {
                    0x80..=0x9F => {
                        let cp = CP1252_HIGH[usize::from(b - 0x80)];
                        char::from_u32(u32::from(cp))
                            .filter(|_| cp != 0)
                            .unwrap_or(char::REPLACEMENT_CHARACTER)
                    }
                    _ => char::from(b),
                })
                .collect(),
        }
    }

    /// UTF-8 text from a user → cut text for the server. Characters the
    /// encoding cannot represent become `?` (as iconv's substitution in guacd).
    pub fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Self::Iso8859_1 => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
            Self::Utf8 => text.as_bytes().to_vec(),
            Self::Utf16 => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
            Self::Cp1252 => text
                .chars()
                .map(|c| {
                    let cp = u32::from(c);
                    match cp {
                        0..=0x7F | 0xA0..=0xFF => cp as u8,
                        _ => CP1252_HIGH
                            .iter()
                            .position(|&h| h != 0 && u32::from(h) == cp)
                            .map(|i| 0x80 + i as u8)
                            .unwrap_or(b'?'),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            ClipboardEncoding::from_name(""),
            Some(ClipboardEncoding::Iso8859_1)
        );
        assert_eq!(
            ClipboardEncoding::from_name("UTF-16"),
            Some(ClipboardEncoding::Utf16)
        );
        assert_eq!(ClipboardEncoding::from_name("latin9"), None);
    }

    #[test]
    fn round_trips() {
        let text = "héllo € “quotes” 日本";
        for enc in [ClipboardEncoding::Utf8, ClipboardEncoding::Utf16] {
            assert_eq!(enc.decode(&enc.encode(text)), text);
        }
        let latin = ClipboardEncoding::Iso8859_1;
        assert_eq!(latin.encode("hé€"), b"h\xe9?");
        assert_eq!(latin.decode(b"h\xe9"), "hé");
        let cp = ClipboardEncoding::Cp1252;
        assert_eq!(cp.encode("€“é"), b"\x80\x93\xe9");
        assert_eq!(cp.decode(b"\x80\x93\xe9\x81"), "€“é\u{fffd}");
        assert_eq!(ClipboardEncoding::Utf16.encode("A"), b"A\0");
    }

    #[test]
    fn odd_utf16_and_bad_utf8_do_not_panic() {
        assert_eq!(ClipboardEncoding::Utf16.decode(b"A\0B"), "A");
        assert_eq!(ClipboardEncoding::Utf8.decode(b"\xff"), "\u{fffd}");
        assert_eq!(ClipboardEncoding::Utf16.decode(b"\x00\xd8"), "\u{fffd}");
    }
}
