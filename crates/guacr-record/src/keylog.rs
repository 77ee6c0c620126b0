//! Key logs from recordings, as `guaclog` makes them (`src/guaclog/`).
//!
//! Only `key` instructions are read (`key,KEYSYM,PRESSED[,TIMESTAMP]`; fewer
//! than two arguments are skipped; numbers are read like `atoi`). Rules:
//!
//! - Modifiers (Shift, Ctrl, Alt, AltGr, Meta, Super, Hyper) are tracked while
//!   held and never printed on their own.
//! - On each key press: if a held modifier has no typed value (Ctrl, Alt, Meta,
//!   Super, Hyper — Shift and AltGr do not count), the press is a shortcut,
//!   printed in angle brackets; otherwise the key's typed value is printed
//!   (Latin-1 and `0x0100xxxx` Unicode keysyms as UTF-8, Return/Enter as a
//!   newline, keypad digits/operators, Space as a space), or its name in angle
//!   brackets (`<Tab>`, `<Backspace>`, `<F1>`, unknown keysyms as `<0xABCD>`).
//!
//! Shortcuts: [`KeyLogFormat::Documented`] (the default) writes them as the
//! guaclog manual page describes, `<Ctrl+a>`, `<Alt+Shift+Tab>`: held
//! modifiers then the key's name, joined with `+`. The released guaclog code
//! actually prints the modifier names followed directly by the key's *value*
//! (`<Ctrla>`, and `<Alt+Shift(null)>` for keys without a value);
//! [`KeyLogFormat::GuaclogCompat`] reproduces that byte for byte.
//!
//! [`KeyLog::typed_text`] is a guacr extension: what the keystrokes would leave
//! in a plain text editor (printable values, Return as newline, Tab as tab,
//! Backspace erasing a character; shortcuts and other keys ignored).

use guacr_protocol::Parser;

/// How shortcuts are written (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyLogFormat {
    #[default]
    Documented,
    GuaclogCompat,
}

/// What guaclog knows about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyDef {
    keysym: i32,
    name: String,
    value: Option<String>,
    modifier: bool,
}

/// guaclog's table of known keys: keysym, name, typed value, modifier.
const KNOWN_KEYS: &[(i32, &str, Option<&str>, bool)] = &[
    (0xFE03, "AltGr", Some(""), true),
    (0xFF08, "Backspace", None, false),
    (0xFF09, "Tab", None, false),
    (0xFF0B, "Clear", None, false),
    (0xFF0D, "Return", Some("\n"), false),
    (0xFF13, "Pause", None, false),
    (0xFF14, "Scroll", None, false),
    (0xFF15, "SysReq", None, false),
    (0xFF1B, "Escape", None, false),
    (0xFF50, "Home", None, false),
    (0xFF51, "Left", None, false),
    (0xFF52, "Up", None, false),
    (0xFF53, "Right", None, false),
    (0xFF54, "Down", None, false),
    (0xFF55, "Page Up", None, false),
    (0xFF56, "Page Down", None, false),
    (0xFF57, "End", None, false),
    (0xFF63, "Insert", None, false),
    (0xFF65, "Undo", None, false),
    (0xFF6A, "Help", None, false),
    (0xFF7F, "Num", None, false),
    (0xFF80, "Space", Some(" "), false),
    (0xFF8D, "Enter", Some("\n"), false),
    (0xFF95, "Home", None, false),
    (0xFF96, "Left", None, false),
    (0xFF97, "Up", None, false),
    (0xFF98, "Right", None, false),
    (0xFF99, "Down", None, false),
    (0xFF9A, "Page Up", None, false),
    (0xFF9B, "Page Down", None, false),
    (0xFF9C, "End", None, false),
    (0xFF9E, "Insert", None, false),
    (0xFFAA, "*", Some("*"), false),
    (0xFFAB, "+", Some("+"), false),
    (0xFFAD, "-", Some("-"), false),
    (0xFFAE, ".", Some("."), false),
    (0xFFAF, "/", Some("/"), false),
    (0xFFB0, "0", Some("0"), false),
    (0xFFB1, "1", Some("1"), false),
    (0xFFB2, "2", Some("2"), false),
    (0xFFB3, "3", Some("3"), false),
    (0xFFB4, "4", Some("4"), false),
    (0xFFB5, "5", Some("5"), false),
    (0xFFB6, "6", Some("6"), false),
    (0xFFB7, "7", Some("7"), false),
    (0xFFB8, "8", Some("8"), false),
    (0xFFB9, "9", Some("9"), false),
    (0xFFBE, "F1", None, false),
    (0xFFBF, "F2", None, false),
    (0xFFC0, "F3", None, false),
    (0xFFC1, "F4", None, false),
    (0xFFC2, "F5", None, false),
    (0xFFC3, "F6", None, false),
    (0xFFC4, "F7", None, false),
    (0xFFC5, "F8", None, false),
    (0xFFC6, "F9", None, false),
    (0xFFC7, "F10", None, false),
    (0xFFC8, "F11", None, false),
    (0xFFC9, "F12", None, false),
    (0xFFCA, "F13", None, false),
    (0xFFCB, "F14", None, false),
    (0xFFCC, "F15", None, false),
    (0xFFCD, "F16", None, false),
    (0xFFCE, "F17", None, false),
    (0xFFCF, "F18", None, false),
    (0xFFD0, "F19", None, false),
    (0xFFD1, "F20", None, false),
    (0xFFD2, "F21", None, false),
    (0xFFD3, "F22", None, false),
    (0xFFD4, "F23", None, false),
    (0xFFD5, "F24", None, false),
    (0xFFE1, "Shift", Some(""), true),
    (0xFFE2, "Shift", Some(""), true),
    (0xFFE3, "Ctrl", None, true),
    (0xFFE4, "Ctrl", None, true),
    (0xFFE5, "Caps", None, false),
    (0xFFE7, "Meta", None, true),
    (0xFFE8, "Meta", None, true),
    (0xFFE9, "Alt", None, true),
    (0xFFEA, "Alt", None, true),
    (0xFFEB, "Super", None, true),
    (0xFFEC, "Super", None, true),
    (0xFFED, "Hyper", None, true),
    (0xFFEE, "Hyper", None, true),
    (0xFFFF, "Delete", None, false),
];

/// guaclog tracks at most this many held keys.
const MAX_KEYS: usize = 256;

fn keydef(keysym: i32) -> KeyDef {
    if let Ok(i) = KNOWN_KEYS.binary_search_by_key(&keysym, |k| k.0) {
        let (keysym, name, value, modifier) = KNOWN_KEYS[i];
        return KeyDef {
            keysym,
            name: name.to_owned(),
            value: value.map(str::to_owned),
            modifier,
        };
    }
    // Latin-1 keysyms, and Unicode keysyms 0x0100XXXX (BMP only, as guaclog).
    if keysym >= 0 && (keysym <= 0xFF || (keysym | 0xFFFF) == 0x0100_FFFF) {
        let cp = (keysym & 0xFFFF) as u32;
        // Surrogates have no `char`; guaclog would emit invalid UTF-8 for them.
        let s = char::from_u32(cp)
            .map(String::from)
            .unwrap_or_else(|| "\u{FFFD}".into());
        return KeyDef {
            keysym,
            name: s.clone(),
            value: Some(s),
            modifier: false,
        };
    }
    KeyDef {
        keysym,
        name: format!("0x{keysym:X}"),
        value: None,
        modifier: false,
    }
}

/// C's `atoi`: optional whitespace and sign, then leading digits.
fn atoi(s: &str) -> i32 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = (v * 10 + i64::from(b - b'0')).min(i64::from(u32::MAX) + 1);
    }
    let v = if neg { -v } else { v };
    v as i32
}

/// Streaming interpreter of a recording's `key` instructions.
#[derive(Debug)]
pub struct KeyLog {
    format: KeyLogFormat,
    parser: Parser,
    pending: Vec<u8>,
    start: usize,
    held: Vec<(KeyDef, bool)>,
    log: String,
    typed: String,
    broken: bool,
}

impl Default for KeyLog {
    fn default() -> Self {
        Self::new(KeyLogFormat::default())
    }
}

impl KeyLog {
    pub fn new(format: KeyLogFormat) -> Self {
        KeyLog {
            format,
            // Recordings may hold larger instructions than clients may send.
            parser: Parser::with_limit(usize::MAX / 2),
            pending: Vec::new(),
            start: 0,
            held: Vec::new(),
            log: String::new(),
            typed: String::new(),
            broken: false,
        }
    }

    /// Feeds the next bytes of the recording (any split). Stops reading at the
    /// first malformed instruction (as guaclog does); returns false from then on.
    pub fn feed(&mut self, data: &[u8]) -> bool {
        if self.broken {
            return false;
        }
        self.pending.extend_from_slice(data);
        loop {
            let parsed = self.parser.parse(&self.pending[self.start..]);
            let (keysym, pressed, used) = match parsed {
                Ok(Some((ins, used))) => {
                    if ins.opcode() == "key" && ins.arg_count() >= 2 {
                        let keysym = atoi(ins.arg(0).unwrap_or(""));
                        let pressed = atoi(ins.arg(1).unwrap_or("")) != 0;
                        (Some(keysym), pressed, used)
                    } else {
                        (None, false, used)
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.broken = true;
                    self.pending.clear();
                    self.start = 0;
                    return false;
                }
            };
            self.start += used;
            if let Some(k) = keysym {
                self.update(k, pressed);
            }
        }
        if self.start > 0 && (self.start >= self.pending.len() / 2 || self.start > 1 << 20) {
            self.pending.drain(..self.start);
            self.start = 0;
        }
        true
    }

    fn update(&mut self, keysym: i32, pressed: bool) {
        let key = keydef(keysym);
        if key.modifier {
            if let Some(slot) = self.held.iter_mut().find(|(k, _)| k.keysym == keysym) {
                *slot = (key, pressed);
            } else if self.held.len() < MAX_KEYS {
                self.held.push((key, pressed));
            } else {
                return;
            }
            // Keep tracked keys only up to the last one still pressed.
            while matches!(self.held.last(), Some((_, false))) {
                self.held.pop();
            }
            return;
        }
        if !pressed {
            return;
        }
        let shortcut = self.held.iter().any(|(k, _)| k.value.is_none());
        if shortcut {
            self.log.push('<');
            for (i, (k, _)) in self.held.iter().enumerate() {
                if i > 0 {
                    self.log.push('+');
                }
                self.log.push_str(&k.name);
            }
            match self.format {
                KeyLogFormat::Documented => {
                    if !self.held.is_empty() {
                        self.log.push('+');
                    }
                    self.log.push_str(&key.name);
                }
                KeyLogFormat::GuaclogCompat => {
                    self.log.push_str(key.value.as_deref().unwrap_or("(null)"));
                }
            }
            self.log.push('>');
            return;
        }
        match &key.value {
            Some(v) => {
                self.log.push_str(v);
                self.typed.push_str(v);
            }
            None => {
                self.log.push('<');
                self.log.push_str(&key.name);
                self.log.push('>');
                match keysym {
                    0xFF08 => {
                        self.typed.pop();
                    }
                    0xFF09 => self.typed.push('\t'),
                    _ => {}
                }
            }
        }
    }

    /// The key log so far (guaclog's output).
    pub fn log(&self) -> &str {
        &self.log
    }

    /// The typed-text view so far.
    pub fn typed_text(&self) -> &str {
        &self.typed
    }

    /// Whether reading stopped at a malformed instruction.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The key log and typed text.
    pub fn into_parts(self) -> (String, String) {
        (self.log, self.typed)
    }
}

/// The key log of a whole recording (documented guaclog format).
pub fn keys_from_recording(recording: &[u8]) -> String {
    let mut k = KeyLog::default();
    k.feed(recording);
    k.into_parts().0
}

/// What the recorded keystrokes would have typed (see the module docs).
pub fn typed_text_from_recording(recording: &[u8]) -> String {
    let mut k = KeyLog::default();
    k.feed(recording);
    k.into_parts().1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guac::encode_key;

    const CTRL: u32 = 0xFFE3;
    const SHIFT: u32 = 0xFFE1;
    const ALT: u32 = 0xFFE9;
    const TAB: u32 = 0xFF09;

    struct Rec(Vec<u8>, i64);
    impl Rec {
        fn new() -> Self {
            // Output and mouse instructions are ignored.
            Rec(
                b"4.size,1.0,3.640,3.480;5.mouse,1.1,1.2,1.0,1.5;".to_vec(),
                0,
            )
        }
        fn key(&mut self, k: u32, pressed: bool) -> &mut Self {
            self.1 += 1;
            encode_key(&mut self.0, k, pressed, self.1);
            self
        }
        fn tap(&mut self, k: u32) -> &mut Self {
            self.key(k, true).key(k, false)
        }
        fn text(&mut self, s: &str) -> &mut Self {
            for c in s.chars() {
                let k = if (c as u32) <= 0xFF {
                    c as u32
                } else {
                    0x0100_0000 | c as u32
                };
                self.tap(k);
            }
            self
        }
        fn with(&mut self, mods: &[u32], k: u32) -> &mut Self {
            for m in mods {
                self.key(*m, true);
            }
            self.tap(k);
            for m in mods.iter().rev() {
                self.key(*m, false);
            }
            self
        }
    }

    fn manual_page_session() -> Vec<u8> {
        let mut r = Rec::new();
        r.text("Hello ");
        // "WORLD" typed with Shift held: Shift is not a shortcut.
        r.key(SHIFT, true);
        r.text("WORLD!");
        r.key(SHIFT, false);
        r.with(&[CTRL], u32::from(b'a'))
            .with(&[CTRL], u32::from(b'c'))
            .with(&[ALT, SHIFT], TAB)
            .with(&[CTRL], u32::from(b'v'));
        r.0
    }

    #[test]
    fn manual_page_example() {
        assert_eq!(
            keys_from_recording(&manual_page_session()),
            "Hello WORLD!<Ctrl+a><Ctrl+c><Alt+Shift+Tab><Ctrl+v>"
        );
    }

    #[test]
    fn guaclog_compat_quirks() {
        let mut k = KeyLog::new(KeyLogFormat::GuaclogCompat);
        k.feed(&manual_page_session());
        assert_eq!(
            k.log(),
            "Hello WORLD!<Ctrla><Ctrlc><Alt+Shift(null)><Ctrlv>"
        );
    }

    #[test]
    fn special_keys_unicode_and_typed_text() {
        let mut r = Rec::new();
        r.text("ls -l")
            .tap(0xFF0D)
            .tap(TAB)
            .tap(0xFFBE)
            .tap(0x1234_5678)
            .text("é€")
            .tap(0xFF08)
            .tap(0xFFB5)
            .tap(0xFF8D);
        let rec = r.0;
        assert_eq!(
            keys_from_recording(&rec),
            "ls -l\n<Tab><F1><0x12345678>é€<Backspace>5\n"
        );
        assert_eq!(typed_text_from_recording(&rec), "ls -l\n\té5\n");
    }

    #[test]
    fn streaming_in_small_pieces_and_malformed_input() {
        let rec = manual_page_session();
        let mut k = KeyLog::default();
        for piece in rec.chunks(3) {
            assert!(k.feed(piece));
        }
        assert_eq!(k.log(), keys_from_recording(&rec));
        let mut k = KeyLog::default();
        assert!(k.feed(b"3.key,2.97,1.1,1.0;"));
        assert!(!k.feed(b"xx;3.key,2.98,1.1,1.0;"));
        assert!(k.is_broken());
        assert_eq!(k.log(), "a");
        // Too few arguments: skipped. Timestamp optional.
        assert_eq!(keys_from_recording(b"3.key,2.97;3.key,2.98,1.1;"), "b");
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("65"), 65);
        assert_eq!(atoi(" -3x"), -3);
        assert_eq!(atoi("abc"), 0);
    }
}
