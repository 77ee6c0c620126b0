//! Keysyms (as Guacamole clients send them) → RDP keyboard events, per guacd's
//! `server-layout` names.
//!
//! # Use (for the handler)
//! ```
//! use guacr_rdp::keymap::{KeyEvent, KeyMapper, Layout};
//! // `server-layout` parameter; empty → the default (en-us-qwerty); unknown → None (error 768).
//! let layout = Layout::from_name("de-de-qwertz").unwrap();
//! // Client core data: keyboardLayout / keyboardType / keyboardSubType / function keys.
//! assert_eq!(layout.keyboard_layout_id(), 0x0407);
//! let mut keys = KeyMapper::new(layout);
//! // `key,64,1` ('@'): AltGr (extended 0x38) is pressed around Q (0x10) because the user
//! // does not hold it; every event goes to the server in order.
//! let events = keys.key(0x40, true);
//! assert_eq!(events.len(), 3);
//! assert!(matches!(events[1], KeyEvent::Scancode { code: 0x10, extended: false, pressed: true }));
//! // `key,64,0`: only Q's release.
//! assert_eq!(keys.key(0x40, false).len(), 1);
//! // On session end / focus loss: release whatever is still down.
//! let _ = keys.release_all();
//! ```
//! * `KeyEvent::Scancode` = a fast-path/slow-path keyboard event with a set-1 scancode;
//!   `extended` = `KBDFLAGS_EXTENDED` (the E0 prefix). `KeyEvent::Unicode` = a Unicode
//!   keyboard event (one UTF-16 code unit; characters outside the BMP give two events).
//! * Characters on the layout become the scancode of their key; when the key needs Shift or
//!   AltGr (or needs them *released*, e.g. the user holds Shift but the character is
//!   unshifted on the server's layout), the modifier presses/releases are synthesised around
//!   the key press and the user's modifier state is restored right after it (like guacd).
//!   Caps Lock (pressed through this mapper or reported with [`KeyMapper::set_locks`]) is
//!   honoured for keys Caps Lock affects (letters). Keypad digits switch Num Lock on first.
//! * Characters not on the layout (and every printable character with `failsafe`) are sent
//!   as Unicode events; their release is a Unicode release.
//! * Keysyms that are neither characters nor known keys are ignored (empty vector).
//! * Lock state starts all-off: send a Synchronize event with no toggle flags at connect, and
//!   feed the server's Set Keyboard Indicators PDU to [`KeyMapper::set_locks`].
//! * Never panics, whatever `u32` it is given.

use std::collections::HashMap;

/// One keyboard event for the RDP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEvent {
    /// Set-1 scancode; `extended` is the E0 prefix (KBDFLAGS_EXTENDED).
    Scancode {
        code: u8,
        extended: bool,
        pressed: bool,
    },
    /// A UTF-16 code unit (TS_UNICODE_KEYBOARD_EVENT).
    Unicode { ch: u16, pressed: bool },
}

/// A physical key and the modifier/lock state it must be typed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    code: u8,
    ext: bool,
    shift: bool,
    altgr: bool,
    /// Caps Lock inverts the shift requirement (letter keys).
    caps: bool,
    /// Needs Num Lock on (keypad digits).
    num: bool,
}

impl Key {
    const fn plain(code: u8) -> Key {
        Key {
            code,
            ext: false,
            shift: false,
            altgr: false,
            caps: false,
            num: false,
        }
    }
    const fn ext(code: u8) -> Key {
        Key {
            ext: true,
            ..Key::plain(code)
        }
    }
    const fn shifted(code: u8) -> Key {
        Key {
            shift: true,
            ..Key::plain(code)
        }
    }
    const fn numpad(code: u8) -> Key {
        Key {
            num: true,
            ..Key::plain(code)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Normal,
    Shift,
    AltGr,
    ShiftAltGr,
}

/// Characters of a row of keys at one level; `' '` = nothing at that position.
struct Row {
    codes: &'static [u8],
    level: Level,
    chars: &'static str,
}

struct LayoutDef {
    name: &'static str,
    /// Windows keyboard layout id (client core data).
    layout_id: u32,
    /// IBM enhanced (4) or Japanese (7).
    keyboard_type: u32,
    keyboard_subtype: u32,
    function_keys: u32,
    rows: &'static [Row],
    /// Layout-specific non-character keysyms (dead keys, IME keys).
    extra: &'static [(u32, Key)],
    /// Whether characters need the AltGr level (then AltGr held by the user is released
    /// for characters that must be typed without it).
    has_altgr: bool,
    /// `failsafe`: every printable character is sent as Unicode.
    unicode_only: bool,
}

// Physical rows (set-1 scancodes), ISO order.
const E: &[u8] = &[
    0x29, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D,
];
const D: &[u8] = &[
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B,
];
const C: &[u8] = &[
    0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x2B,
];
const B: &[u8] = &[
    0x56, 0x2C, 0x2D, 0x2E, 0x2F, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35,
];
// Japanese 106/109: number row with the yen key, bottom row with the ro key.
const E_JP: &[u8] = &[
    0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x7D,
];
const B_JP: &[u8] = &[
    0x2C, 0x2D, 0x2E, 0x2F, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x73,
];

const fn row(codes: &'static [u8], level: Level, chars: &'static str) -> Row {
    Row {
        codes,
        level,
        chars,
    }
}

use Level::{AltGr, Normal, Shift, ShiftAltGr};

// Dead keys (X11 keysyms).
const DEAD_GRAVE: u32 = 0xFE50;
const DEAD_ACUTE: u32 = 0xFE51;
const DEAD_CIRCUMFLEX: u32 = 0xFE52;
const DEAD_TILDE: u32 = 0xFE53;
const DEAD_DIAERESIS: u32 = 0xFE57;

const fn altgr(code: u8) -> Key {
    Key {
        altgr: true,
        ..Key::plain(code)
    }
}

static LAYOUTS: &[LayoutDef] = &[
    LayoutDef {
        name: "en-us-qwerty",
        layout_id: 0x0409,
        keyboard_type: 4,
        keyboard_subtype: 0,
        function_keys: 12,
        rows: &[
            row(E, Normal, "`1234567890-="),
            row(E, Shift, "~!@#$%^&*()_+"),
            row(D, Normal, "qwertyuiop[]"),
            row(D, Shift, "QWERTYUIOP{}"),
            row(C, Normal, "asdfghjkl;'\\"),
            row(C, Shift, "ASDFGHJKL:\"|"),
            row(B, Normal, " zxcvbnm,./"),
            row(B, Shift, " ZXCVBNM<>?"),
        ],
        extra: &[],
        has_altgr: false,
        unicode_only: false,
    },
    LayoutDef {
        name: "en-gb-qwerty",
        layout_id: 0x0809,
        keyboard_type: 4,
        keyboard_subtype: 0,
        function_keys: 12,
        rows: &[
            row(E, Normal, "`1234567890-="),
            row(E, Shift, "¬!\"£$%^&*()_+"),
            row(E, AltGr, "¦   €        "),
            row(D, Normal, "qwertyuiop[]"),
            row(D, Shift, "QWERTYUIOP{}"),
            row(D, AltGr, "  é   úíó   "),
            row(D, ShiftAltGr, "  É   ÚÍÓ   "),
            row(C, Normal, "asdfghjkl;'#"),
            row(C, Shift, "ASDFGHJKL:@~"),
            row(C, AltGr, "á           "),
            row(C, ShiftAltGr, "Á           "),
            row(B, Normal, "\\zxcvbnm,./"),
            row(B, Shift, "|ZXCVBNM<>?"),
            row(B, AltGr, "   ç       "),
            row(B, ShiftAltGr, "   Ç       "),
        ],
        extra: &[],
        has_altgr: true,
        unicode_only: false,
    },
    LayoutDef {
        name: "de-de-qwertz",
        layout_id: 0x0407,
        keyboard_type: 4,
        keyboard_subtype: 0,
        function_keys: 12,
        rows: &[
            row(E, Normal, " 1234567890ß "),
            row(E, Shift, "°!\"§$%&/()=? "),
            row(E, AltGr, "  ²³   {[]}\\ "),
            row(D, Normal, "qwertzuiopü+"),
            row(D, Shift, "QWERTZUIOPÜ*"),
            row(D, AltGr, "@ €        ~"),
            row(C, Normal, "asdfghjklöä#"),
            row(C, Shift, "ASDFGHJKLÖÄ'"),
            row(B, Normal, "<yxcvbnm,.-"),
            row(B, Shift, ">YXCVBNM;:_"),
            row(B, AltGr, "|      µ   "),
        ],
        extra: &[
            (DEAD_CIRCUMFLEX, Key::plain(0x29)),
            (DEAD_ACUTE, Key::plain(0x0D)),
            (DEAD_GRAVE, Key::shifted(0x0D)),
        ],
        has_altgr: true,
        unicode_only: false,
    },
    LayoutDef {
        name: "fr-fr-azerty",
        layout_id: 0x040C,
        keyboard_type: 4,
        keyboard_subtype: 0,
        function_keys: 12,
        rows: &[
            row(E, Normal, "²&é\"'(-è_çà)="),
            row(E, Shift, " 1234567890°+"),
            row(E, AltGr, "  ~#{[|`\\^@]}"),
            row(D, Normal, "azertyuiop $"),
            row(D, Shift, "AZERTYUIOP £"),
            row(D, AltGr, "  €        ¤"),
            row(C, Normal, "qsdfghjklmù*"),
            row(C, Shift, "QSDFGHJKLM%µ"),
            row(B, Normal, "<wxcvbn,;:!"),
            row(B, Shift, ">WXCVBN?./§"),
        ],
        extra: &[
            (DEAD_CIRCUMFLEX, Key::plain(0x1A)),
            (DEAD_DIAERESIS, Key::shifted(0x1A)),
        ],
        has_altgr: true,
        unicode_only: false,
    },
    LayoutDef {
        name: "es-es-qwerty",
        layout_id: 0x040A,
        keyboard_type: 4,
        keyboard_subtype: 0,
        function_keys: 12,
        rows: &[
            row(E, Normal, "º1234567890'¡"),
            row(E, Shift, "ª!\"·$%&/()=?¿"),
            row(E, AltGr, "\\|@#  ¬      "),
            row(D, Normal, "qwertyuiop +"),
            row(D, Shift, "QWERTYUIOP *"),
            row(D, AltGr, "  €       []"),
            row(C, Normal, "asdfghjklñ ç"),
            row(C, Shift, "ASDFGHJKLÑ Ç"),
            row(C, AltGr, "          {}"),
            row(B, Normal, "<zxcvbnm,.-"),
            row(B, Shift, ">ZXCVBNM;:_"),
        ],
        extra: &[
            (DEAD_GRAVE, Key::plain(0x1A)),
            (DEAD_CIRCUMFLEX, Key::shifted(0x1A)),
            (DEAD_ACUTE, Key::plain(0x28)),
            (DEAD_DIAERESIS, Key::shifted(0x28)),
            (DEAD_TILDE, altgr(0x05)),
        ],
        has_altgr: true,
        unicode_only: false,
    },
    LayoutDef {
        name: "it-it-qwerty",
        layout_id: 0x0410,
        keyboard_type: 4,
        keyboard_subtype: 0,
        function_keys: 12,
        rows: &[
            row(E, Normal, "\\1234567890'ì"),
            row(E, Shift, "|!\"£$%&/()=?^"),
            row(D, Normal, "qwertyuiopè+"),
            row(D, Shift, "QWERTYUIOPé*"),
            row(D, AltGr, "  €       []"),
            row(D, ShiftAltGr, "          {}"),
            row(C, Normal, "asdfghjklòàù"),
            row(C, Shift, "ASDFGHJKLç°§"),
            row(C, AltGr, "         @# "),
            row(B, Normal, "<zxcvbnm,.-"),
            row(B, Shift, ">ZXCVBNM;:_"),
        ],
        extra: &[],
        has_altgr: true,
        unicode_only: false,
    },
    LayoutDef {
        name: "sv-se-qwerty",
        layout_id: 0x041D,
        keyboard_type: 4,
        keyboard_subtype: 0,
        function_keys: 12,
        rows: &[
            row(E, Normal, "§1234567890+ "),
            row(E, Shift, "½!\"#¤%&/()=? "),
            row(E, AltGr, "  @£$  {[]}\\ "),
            row(D, Normal, "qwertyuiopå "),
            row(D, Shift, "QWERTYUIOPÅ "),
            row(D, AltGr, "  €         "),
            row(C, Normal, "asdfghjklöä'"),
            row(C, Shift, "ASDFGHJKLÖÄ*"),
            row(B, Normal, "<zxcvbnm,.-"),
            row(B, Shift, ">ZXCVBNM;:_"),
            row(B, AltGr, "|      µ   "),
        ],
        extra: &[
            (DEAD_ACUTE, Key::plain(0x0D)),
            (DEAD_GRAVE, Key::shifted(0x0D)),
            (DEAD_DIAERESIS, Key::plain(0x1B)),
            (DEAD_CIRCUMFLEX, Key::shifted(0x1B)),
            (DEAD_TILDE, altgr(0x1B)),
        ],
        has_altgr: true,
        unicode_only: false,
    },
    LayoutDef {
        name: "ja-jp-qwerty",
        layout_id: 0x0411,
        keyboard_type: 7,
        keyboard_subtype: 2,
        function_keys: 12,
        rows: &[
            row(E_JP, Normal, "1234567890-^\\"),
            row(E_JP, Shift, "!\"#$%&'() =~|"),
            row(D, Normal, "qwertyuiop@["),
            row(D, Shift, "QWERTYUIOP`{"),
            row(C, Normal, "asdfghjkl;:]"),
            row(C, Shift, "ASDFGHJKL+*}"),
            row(B_JP, Normal, "zxcvbnm,./\\"),
            row(B_JP, Shift, "ZXCVBNM<>?_"),
        ],
        extra: &[
            (0xFF2A, Key::plain(0x29)),   // Zenkaku_Hankaku
            (0xFF28, Key::plain(0x29)),   // Zenkaku
            (0xFF29, Key::shifted(0x29)), // Hankaku
            (0xFF21, Key::plain(0x29)),   // Kanji
            (0xFF27, Key::plain(0x70)),   // Hiragana_Katakana
            (0xFF24, Key::plain(0x70)),   // Romaji
            (0xFF22, Key::plain(0x7B)),   // Muhenkan
            (0xFF23, Key::plain(0x79)),   // Henkan
            (0xFF30, Key::plain(0x3A)),   // Eisu_toggle
        ],
        has_altgr: false,
        unicode_only: false,
    },
    LayoutDef {
        name: "failsafe",
        layout_id: 0x0409,
        keyboard_type: 4,
        keyboard_subtype: 0,
        function_keys: 12,
        rows: &[],
        extra: &[],
        has_altgr: false,
        unicode_only: true,
    },
];

// Modifier scancodes.
const LSHIFT: u8 = 0x2A;
const RSHIFT: u8 = 0x36;
const ALT: u8 = 0x38; // extended = right Alt / AltGr
const CAPS_LOCK: u8 = 0x3A;
const NUM_LOCK: u8 = 0x45;

/// Keys every layout has (guacd's "base" keymap plus the keypad's Enter and navigation).
fn base_key(keysym: u32) -> Option<Key> {
    let k = match keysym {
        0x20 => Key::plain(0x39),   // space
        0xFF09 => Key::plain(0x0F), // Tab
        0xFF08 => Key::plain(0x0E), // BackSpace
        0xFF0D => Key::plain(0x1C), // Return
        0xFF1B => Key::plain(0x01), // Escape
        0xFF63 => Key::ext(0x52),   // Insert
        0xFFFF => Key::ext(0x53),   // Delete
        0xFF50 => Key::ext(0x47),   // Home
        0xFF57 => Key::ext(0x4F),   // End
        0xFF51 => Key::ext(0x4B),   // Left
        0xFF52 => Key::ext(0x48),   // Up
        0xFF53 => Key::ext(0x4D),   // Right
        0xFF54 => Key::ext(0x50),   // Down
        0xFF55 => Key::ext(0x49),   // Page_Up (Prior)
        0xFF56 => Key::ext(0x51),   // Page_Down (Next)
        0xFF61 => Key::ext(0x37),   // Print
        0xFF7F => Key::plain(NUM_LOCK),
        0xFF14 => Key::plain(0x46), // Scroll_Lock
        0xFFE5 => Key::plain(CAPS_LOCK),
        // Keypad digits (need Num Lock) and operators.
        0xFFB0 => Key::numpad(0x52),
        0xFFB1 => Key::numpad(0x4F),
        0xFFB2 => Key::numpad(0x50),
        0xFFB3 => Key::numpad(0x51),
        0xFFB4 => Key::numpad(0x4B),
        0xFFB5 => Key::numpad(0x4C),
        0xFFB6 => Key::numpad(0x4D),
        0xFFB7 => Key::numpad(0x47),
        0xFFB8 => Key::numpad(0x48),
        0xFFB9 => Key::numpad(0x49),
        0xFFAA => Key::plain(0x37), // KP_Multiply
        0xFFAB => Key::plain(0x4E), // KP_Add
        0xFFAD => Key::plain(0x4A), // KP_Subtract
        0xFFAE => Key::plain(0x53), // KP_Decimal
        0xFFAF => Key::ext(0x35),   // KP_Divide
        0xFF8D => Key::ext(0x1C),   // KP_Enter
        // Keypad navigation (Num Lock off).
        0xFF95 => Key::plain(0x47), // KP_Home
        0xFF96 => Key::plain(0x4B), // KP_Left
        0xFF97 => Key::plain(0x48), // KP_Up
        0xFF98 => Key::plain(0x4D), // KP_Right
        0xFF99 => Key::plain(0x50), // KP_Down
        0xFF9A => Key::plain(0x49), // KP_Prior
        0xFF9B => Key::plain(0x51), // KP_Next
        0xFF9C => Key::plain(0x4F), // KP_End
        0xFF9D => Key::plain(0x4C), // KP_Begin
        0xFF9E => Key::plain(0x52), // KP_Insert
        0xFF9F => Key::plain(0x53), // KP_Delete
        // F1–F12.
        0xFFBE..=0xFFC7 => Key::plain(0x3B + (keysym - 0xFFBE) as u8),
        0xFFC8 => Key::plain(0x57), // F11
        0xFFC9 => Key::plain(0x58), // F12
        // Modifiers.
        0xFFE1 => Key::plain(LSHIFT),       // Shift_L
        0xFFE2 => Key::plain(RSHIFT),       // Shift_R
        0xFFE3 => Key::plain(0x1D),         // Control_L
        0xFFE4 => Key::ext(0x1D),           // Control_R
        0xFFE9 | 0xFFE7 => Key::plain(ALT), // Alt_L, Meta_L
        0xFFEA | 0xFFE8 => Key::ext(ALT),   // Alt_R, Meta_R
        0xFE03 | 0xFF7E => Key::ext(ALT),   // ISO_Level3_Shift (AltGr), Mode_switch
        0xFFEB => Key::ext(0x5B),           // Super_L
        0xFFEC => Key::ext(0x5C),           // Super_R
        0xFF67 => Key::ext(0x5D),           // Menu
        _ => return None,
    };
    Some(k)
}

/// The character a keysym types, if it is a printable character: Latin-1 keysyms equal
/// their code point, `0x01000000 + U` is Unicode U, 0x20AC is EuroSign.
pub fn keysym_to_char(keysym: u32) -> Option<char> {
    let cp = match keysym {
        0x20..=0x7E | 0xA0..=0xFF => keysym,
        0x20AC => 0x20AC,
        0x0100_0000..=0x0110_FFFF => keysym - 0x0100_0000,
        _ => return None,
    };
    let c = char::from_u32(cp)?;
    if c.is_control() {
        return None;
    }
    Some(c)
}

/// A keyboard layout (guacd `server-layout` name).
#[derive(Debug, Clone)]
pub struct Layout {
    def: &'static LayoutDef,
    chars: HashMap<char, Key>,
}

impl std::fmt::Debug for LayoutDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Default for Layout {
    fn default() -> Self {
        Layout::build(&LAYOUTS[0])
    }
}

impl Layout {
    /// The default layout's name (guacd's default).
    pub const DEFAULT: &'static str = "en-us-qwerty";

    /// Looks a `server-layout` value up; an empty string is the default layout.
    pub fn from_name(name: &str) -> Option<Layout> {
        let name = name.trim();
        if name.is_empty() {
            return Some(Layout::default());
        }
        LAYOUTS
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
            .map(Layout::build)
    }

    /// Every supported `server-layout` name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        LAYOUTS.iter().map(|d| d.name)
    }

    pub fn name(&self) -> &'static str {
        self.def.name
    }

    /// Windows keyboard layout id for the client core data (e.g. 0x0409 en-US).
    pub fn keyboard_layout_id(&self) -> u32 {
        self.def.layout_id
    }

    /// Keyboard type for the client core data (4 = IBM enhanced, 7 = Japanese).
    pub fn keyboard_type(&self) -> u32 {
        self.def.keyboard_type
    }

    pub fn keyboard_subtype(&self) -> u32 {
        self.def.keyboard_subtype
    }

    pub fn function_keys(&self) -> u32 {
        self.def.function_keys
    }

    fn build(def: &'static LayoutDef) -> Layout {
        let mut chars: HashMap<char, Key> = HashMap::new();
        // Levels in preference order: a character on several keys/levels takes the first.
        for level in [Normal, Shift, AltGr, ShiftAltGr] {
            for r in def.rows.iter().filter(|r| r.level == level) {
                for (&code, c) in r.codes.iter().zip(r.chars.chars()) {
                    if c == ' ' {
                        continue;
                    }
                    let key = Key {
                        code,
                        ext: false,
                        shift: matches!(level, Shift | ShiftAltGr),
                        altgr: matches!(level, AltGr | ShiftAltGr),
                        caps: false,
                        num: false,
                    };
                    chars.entry(c).or_insert(key);
                }
            }
        }
        // Caps Lock affects a key whose unshifted and shifted characters are the lower and
        // upper case of one letter.
        let mut caps_keys: Vec<(u8, bool)> = Vec::new();
        for lower in def
            .rows
            .iter()
            .filter(|r| matches!(r.level, Normal | AltGr))
        {
            let want = if lower.level == Normal {
                Shift
            } else {
                ShiftAltGr
            };
            for upper in def
                .rows
                .iter()
                .filter(|r| r.level == want && r.codes == lower.codes)
            {
                for ((&code, l), u) in lower
                    .codes
                    .iter()
                    .zip(lower.chars.chars())
                    .zip(upper.chars.chars())
                {
                    if l != u && l.is_lowercase() && single_upper(l) == Some(u) {
                        caps_keys.push((code, lower.level == AltGr));
                    }
                }
            }
        }
        for key in chars.values_mut() {
            if caps_keys.contains(&(key.code, key.altgr)) {
                key.caps = true;
            }
        }
        Layout { def, chars }
    }

    /// The key for a keysym on this layout (None → Unicode event or ignored), and whether
    /// it types a character (then its Shift/AltGr level matters).
    fn lookup(&self, keysym: u32) -> Option<(Key, bool)> {
        if let Some(&(_, k)) = self.def.extra.iter().find(|(s, _)| *s == keysym) {
            return Some((k, true));
        }
        if let Some(k) = base_key(keysym) {
            return Some((k, false));
        }
        if self.def.unicode_only {
            return None;
        }
        let c = keysym_to_char(keysym)?;
        self.chars.get(&c).map(|&k| (k, true))
    }
}

fn single_upper(c: char) -> Option<char> {
    let mut it = c.to_uppercase();
    let u = it.next()?;
    if it.next().is_some() {
        return None;
    }
    Some(u)
}

/// What releasing a pressed keysym sends.
#[derive(Debug, Clone)]
enum Release {
    Scancode { code: u8, ext: bool },
    Unicode([u16; 2], usize),
}

/// Keyboard state of one RDP session: turns `key` instructions into RDP events.
#[derive(Debug, Clone)]
pub struct KeyMapper {
    layout: Layout,
    /// Scancodes currently down on the server: bit (ext << 8 | code).
    down: [u64; 8],
    /// Keysyms pressed by the user and what their release sends (press order).
    pressed: Vec<(u32, Release)>,
    caps: bool,
    num: bool,
}

impl KeyMapper {
    pub fn new(layout: Layout) -> KeyMapper {
        KeyMapper {
            layout,
            down: [0; 8],
            pressed: Vec::new(),
            caps: false,
            num: false,
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The server's lock state (from its Set Keyboard Indicators PDU).
    pub fn set_locks(&mut self, caps_lock: bool, num_lock: bool) {
        self.caps = caps_lock;
        self.num = num_lock;
    }

    /// (caps lock, num lock) as this mapper believes the server has them.
    pub fn locks(&self) -> (bool, bool) {
        (self.caps, self.num)
    }

    fn bit(code: u8, ext: bool) -> (usize, u64) {
        let i = (usize::from(ext) << 8) | usize::from(code);
        (i / 64, 1u64 << (i % 64))
    }

    fn is_down(&self, code: u8, ext: bool) -> bool {
        let (w, b) = Self::bit(code, ext);
        self.down.get(w).is_some_and(|x| x & b != 0)
    }

    fn scan(&mut self, out: &mut Vec<KeyEvent>, code: u8, ext: bool, pressed: bool) {
        let (w, b) = Self::bit(code, ext);
        if let Some(word) = self.down.get_mut(w) {
            if pressed {
                *word |= b;
            } else {
                *word &= !b;
            }
        }
        if pressed && !ext {
            match code {
                CAPS_LOCK if self.layout.def.keyboard_type != 7 => self.caps = !self.caps,
                NUM_LOCK => self.num = !self.num,
                _ => {}
            }
        }
        out.push(KeyEvent::Scancode {
            code,
            extended: ext,
            pressed,
        });
    }

    /// Events for a Guacamole `key,<keysym>,<pressed>` instruction.
    pub fn key(&mut self, keysym: u32, pressed: bool) -> Vec<KeyEvent> {
        let mut out = Vec::new();
        if !pressed {
            if let Some(i) = self.pressed.iter().position(|(k, _)| *k == keysym) {
                let (_, rel) = self.pressed.remove(i);
                self.release(&mut out, rel);
            }
            return out;
        }
        match self.layout.lookup(keysym) {
            Some((key, is_char)) => {
                self.press_key(&mut out, key, is_char);
                self.remember(
                    keysym,
                    Release::Scancode {
                        code: key.code,
                        ext: key.ext,
                    },
                );
            }
            None => {
                let Some(c) = keysym_to_char(keysym) else {
                    return out; // neither a character nor a known key: ignored
                };
                let mut units = [0u16; 2];
                let n = c.encode_utf16(&mut units).len();
                for &u in units.iter().take(n) {
                    out.push(KeyEvent::Unicode {
                        ch: u,
                        pressed: true,
                    });
                }
                self.remember(keysym, Release::Unicode(units, n));
            }
        }
        out
    }

    fn remember(&mut self, keysym: u32, rel: Release) {
        if let Some(slot) = self.pressed.iter_mut().find(|(k, _)| *k == keysym) {
            slot.1 = rel;
        } else {
            self.pressed.push((keysym, rel));
        }
    }

    fn release(&mut self, out: &mut Vec<KeyEvent>, rel: Release) {
        match rel {
            Release::Scancode { code, ext } => self.scan(out, code, ext, false),
            Release::Unicode(units, n) => {
                for &u in units.iter().take(n) {
                    out.push(KeyEvent::Unicode {
                        ch: u,
                        pressed: false,
                    });
                }
            }
        }
    }

    fn press_key(&mut self, out: &mut Vec<KeyEvent>, key: Key, is_char: bool) {
        if !is_char {
            if key.num && !self.num {
                self.scan(out, NUM_LOCK, false, true);
                self.scan(out, NUM_LOCK, false, false);
            }
            self.scan(out, key.code, key.ext, true);
            return;
        }
        let want_shift = key.shift ^ (key.caps && self.caps);
        let shifts: Vec<u8> = [LSHIFT, RSHIFT]
            .into_iter()
            .filter(|&c| self.is_down(c, false))
            .collect();
        let altgr_down = self.is_down(ALT, true);
        let mut restore: Vec<(u8, bool, bool)> = Vec::new();
        if want_shift && shifts.is_empty() {
            self.scan(out, LSHIFT, false, true);
            restore.push((LSHIFT, false, false));
        } else if !want_shift {
            for &c in &shifts {
                self.scan(out, c, false, false);
                restore.push((c, false, true));
            }
        }
        if key.altgr && !altgr_down {
            self.scan(out, ALT, true, true);
            restore.push((ALT, true, false));
        } else if !key.altgr && altgr_down && self.layout.def.has_altgr {
            self.scan(out, ALT, true, false);
            restore.push((ALT, true, true));
        }
        self.scan(out, key.code, key.ext, true);
        for (code, ext, pressed) in restore.into_iter().rev() {
            self.scan(out, code, ext, pressed);
        }
    }

    /// Releases everything still pressed (user keys, then any scancode left down).
    pub fn release_all(&mut self) -> Vec<KeyEvent> {
        let mut out = Vec::new();
        let pressed = std::mem::take(&mut self.pressed);
        for (_, rel) in pressed.into_iter().rev() {
            self.release(&mut out, rel);
        }
        for i in 0..512usize {
            let (w, b) = (i / 64, 1u64 << (i % 64));
            if self.down.get(w).is_some_and(|x| x & b != 0) {
                let code = (i & 0xFF) as u8;
                self.scan(&mut out, code, i >= 256, false);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(code: u8, extended: bool, pressed: bool) -> KeyEvent {
        KeyEvent::Scancode {
            code,
            extended,
            pressed,
        }
    }
    fn down(code: u8) -> KeyEvent {
        sc(code, false, true)
    }
    fn up(code: u8) -> KeyEvent {
        sc(code, false, false)
    }
    fn mapper(name: &str) -> KeyMapper {
        KeyMapper::new(Layout::from_name(name).expect("layout"))
    }
    /// Press and release; returns (press events, release events).
    fn tap(m: &mut KeyMapper, keysym: u32) -> (Vec<KeyEvent>, Vec<KeyEvent>) {
        (m.key(keysym, true), m.key(keysym, false))
    }

    #[test]
    fn every_row_has_one_char_per_key() {
        for def in LAYOUTS {
            for r in def.rows {
                assert_eq!(
                    r.codes.len(),
                    r.chars.chars().count(),
                    "{} {:?} {:?}",
                    def.name,
                    r.level,
                    r.chars
                );
            }
        }
    }

    #[test]
    fn names() {
        for n in [
            "en-us-qwerty",
            "en-gb-qwerty",
            "de-de-qwertz",
            "fr-fr-azerty",
            "es-es-qwerty",
            "it-it-qwerty",
            "sv-se-qwerty",
            "ja-jp-qwerty",
            "failsafe",
        ] {
            assert_eq!(Layout::from_name(n).map(|l| l.name()), Some(n));
        }
        assert_eq!(
            Layout::from_name("").map(|l| l.name()),
            Some("en-us-qwerty")
        );
        assert!(Layout::from_name("xx-yy-dvorak").is_none());
        assert_eq!(
            Layout::from_name("ja-jp-qwerty").map(|l| l.keyboard_type()),
            Some(7)
        );
    }

    #[test]
    fn us_letters_and_digits() {
        let mut m = mapper("en-us-qwerty");
        assert_eq!(tap(&mut m, 'a' as u32), (vec![down(0x1E)], vec![up(0x1E)]));
        assert_eq!(tap(&mut m, 'z' as u32), (vec![down(0x2C)], vec![up(0x2C)]));
        assert_eq!(tap(&mut m, '1' as u32), (vec![down(0x02)], vec![up(0x02)]));
        assert_eq!(tap(&mut m, '0' as u32), (vec![down(0x0B)], vec![up(0x0B)]));
        assert_eq!(tap(&mut m, ' ' as u32), (vec![down(0x39)], vec![up(0x39)]));
        // Uppercase without Shift held: Shift synthesised around the key press.
        assert_eq!(
            tap(&mut m, 'A' as u32),
            (vec![down(0x2A), down(0x1E), up(0x2A)], vec![up(0x1E)])
        );
        assert!(m.release_all().is_empty());
    }

    #[test]
    fn us_punctuation_with_shift() {
        let mut m = mapper("en-us-qwerty");
        assert_eq!(
            m.key('!' as u32, true),
            vec![down(0x2A), down(0x02), up(0x2A)]
        );
        assert_eq!(m.key('!' as u32, false), vec![up(0x02)]);
        assert_eq!(tap(&mut m, '/' as u32).0, vec![down(0x35)]);
        assert_eq!(
            tap(&mut m, '"' as u32).0,
            vec![down(0x2A), down(0x28), up(0x2A)]
        );
        assert_eq!(
            tap(&mut m, '|' as u32).0,
            vec![down(0x2A), down(0x2B), up(0x2A)]
        );
        // User holds Shift: no synthetic Shift for '?'.
        assert_eq!(m.key(0xFFE1, true), vec![down(0x2A)]);
        assert_eq!(m.key('?' as u32, true), vec![down(0x35)]);
        assert_eq!(m.key('?' as u32, false), vec![up(0x35)]);
        // User holds Shift but the character is unshifted here ('/' typed as Shift+7 on a
        // German client): Shift is released around the key and pressed again.
        assert_eq!(
            m.key('/' as u32, true),
            vec![up(0x2A), down(0x35), down(0x2A)]
        );
        assert_eq!(m.key('/' as u32, false), vec![up(0x35)]);
        assert_eq!(m.key(0xFFE1, false), vec![up(0x2A)]);
        assert!(m.release_all().is_empty());
    }

    #[test]
    fn function_and_navigation_keys() {
        let mut m = mapper("en-us-qwerty");
        assert_eq!(tap(&mut m, 0xFFBE).0, vec![down(0x3B)]); // F1
        assert_eq!(tap(&mut m, 0xFFC7).0, vec![down(0x44)]); // F10
        assert_eq!(tap(&mut m, 0xFFC8).0, vec![down(0x57)]); // F11
        assert_eq!(tap(&mut m, 0xFFC9).0, vec![down(0x58)]); // F12
        for (keysym, code) in [
            (0xFF51, 0x4B), // Left
            (0xFF52, 0x48), // Up
            (0xFF53, 0x4D), // Right
            (0xFF54, 0x50), // Down
            (0xFF50, 0x47), // Home
            (0xFF57, 0x4F), // End
            (0xFF63, 0x52), // Insert
            (0xFFFF, 0x53), // Delete
            (0xFF55, 0x49), // Page_Up
            (0xFF56, 0x51), // Page_Down
        ] {
            assert_eq!(
                tap(&mut m, keysym),
                (vec![sc(code, true, true)], vec![sc(code, true, false)]),
                "{keysym:#x}"
            );
        }
        assert_eq!(tap(&mut m, 0xFF0D).0, vec![down(0x1C)]); // Return
        assert_eq!(tap(&mut m, 0xFF08).0, vec![down(0x0E)]); // BackSpace
        assert_eq!(tap(&mut m, 0xFF09).0, vec![down(0x0F)]); // Tab
        assert_eq!(tap(&mut m, 0xFF1B).0, vec![down(0x01)]); // Escape
        assert!(m.release_all().is_empty());
    }

    #[test]
    fn numpad() {
        let mut m = mapper("en-us-qwerty");
        // Num Lock starts off: the first keypad digit switches it on.
        assert_eq!(m.key(0xFFB1, true), vec![down(0x45), up(0x45), down(0x4F)]);
        assert_eq!(m.key(0xFFB1, false), vec![up(0x4F)]);
        assert_eq!(m.locks(), (false, true));
        assert_eq!(tap(&mut m, 0xFFB7).0, vec![down(0x47)]); // KP_7
        assert_eq!(tap(&mut m, 0xFFB0).0, vec![down(0x52)]); // KP_0
        assert_eq!(tap(&mut m, 0xFF8D).0, vec![sc(0x1C, true, true)]); // KP_Enter
        assert_eq!(tap(&mut m, 0xFFAF).0, vec![sc(0x35, true, true)]); // KP_Divide
        assert_eq!(tap(&mut m, 0xFFAA).0, vec![down(0x37)]); // KP_Multiply
        assert_eq!(tap(&mut m, 0xFFAB).0, vec![down(0x4E)]); // KP_Add
        assert_eq!(tap(&mut m, 0xFFAD).0, vec![down(0x4A)]); // KP_Subtract
        // The server reports Num Lock off again: next digit toggles it back on.
        m.set_locks(false, false);
        assert_eq!(
            tap(&mut m, 0xFFB5).0,
            vec![down(0x45), up(0x45), down(0x4C)]
        );
    }

    #[test]
    fn modifiers() {
        let mut m = mapper("en-us-qwerty");
        assert_eq!(m.key(0xFFE3, true), vec![down(0x1D)]); // Control_L
        // Ctrl+C: the letter goes out plainly, Ctrl stays down.
        assert_eq!(tap(&mut m, 'c' as u32), (vec![down(0x2E)], vec![up(0x2E)]));
        assert_eq!(m.key(0xFFE3, false), vec![up(0x1D)]);
        assert_eq!(tap(&mut m, 0xFFE4).0, vec![sc(0x1D, true, true)]); // Control_R
        assert_eq!(tap(&mut m, 0xFFE9).0, vec![down(0x38)]); // Alt_L
        assert_eq!(tap(&mut m, 0xFFEA).0, vec![sc(0x38, true, true)]); // Alt_R
        assert_eq!(tap(&mut m, 0xFE03).0, vec![sc(0x38, true, true)]); // AltGr
        assert_eq!(tap(&mut m, 0xFFEB).0, vec![sc(0x5B, true, true)]); // Super_L
        assert_eq!(tap(&mut m, 0xFFEC).0, vec![sc(0x5C, true, true)]); // Super_R
        assert_eq!(tap(&mut m, 0xFF67).0, vec![sc(0x5D, true, true)]); // Menu
        assert_eq!(tap(&mut m, 0xFFE2).0, vec![down(0x36)]); // Shift_R
        // Right Alt held on a layout without AltGr is a plain Alt: not released for 'f'.
        m.key(0xFFEA, true);
        assert_eq!(m.key('f' as u32, true), vec![down(0x21)]);
        m.key('f' as u32, false);
        assert_eq!(m.release_all(), vec![sc(0x38, true, false)]);
        assert!(m.release_all().is_empty());
    }

    #[test]
    fn german_umlaut_and_altgr() {
        let mut m = mapper("de-de-qwertz");
        assert_eq!(tap(&mut m, 0xFC).0, vec![down(0x1A)]); // ü
        assert_eq!(tap(&mut m, 0xDC).0, vec![down(0x2A), down(0x1A), up(0x2A)]); // Ü
        assert_eq!(tap(&mut m, 'z' as u32).0, vec![down(0x15)]);
        assert_eq!(tap(&mut m, 'y' as u32).0, vec![down(0x2C)]);
        assert_eq!(tap(&mut m, 0xDF).0, vec![down(0x0C)]); // ß
        // '@' = AltGr+Q.
        assert_eq!(
            tap(&mut m, '@' as u32),
            (
                vec![sc(0x38, true, true), down(0x10), sc(0x38, true, false)],
                vec![up(0x10)]
            )
        );
        // With AltGr held by the user: no synthetic AltGr for '{' (AltGr+7)...
        assert_eq!(m.key(0xFE03, true), vec![sc(0x38, true, true)]);
        assert_eq!(m.key('{' as u32, true), vec![down(0x08)]);
        m.key('{' as u32, false);
        // ...but a plain 'q' while AltGr is held must be typed without it.
        assert_eq!(
            m.key('q' as u32, true),
            vec![sc(0x38, true, false), down(0x10), sc(0x38, true, true)]
        );
        m.key('q' as u32, false);
        assert_eq!(m.key(0xFE03, false), vec![sc(0x38, true, false)]);
        // Euro is on this layout (AltGr+E), both as EuroSign and as Unicode keysym.
        assert_eq!(tap(&mut m, 0x20AC).0[1], down(0x12));
        assert_eq!(tap(&mut m, 0x0100_20AC).0[1], down(0x12));
        // Dead circumflex is a key here.
        assert_eq!(tap(&mut m, DEAD_CIRCUMFLEX).0, vec![down(0x29)]);
        assert!(m.release_all().is_empty());
    }

    #[test]
    fn french_a_q_swap() {
        let mut m = mapper("fr-fr-azerty");
        assert_eq!(tap(&mut m, 'a' as u32).0, vec![down(0x10)]);
        assert_eq!(tap(&mut m, 'q' as u32).0, vec![down(0x1E)]);
        assert_eq!(tap(&mut m, 'w' as u32).0, vec![down(0x2C)]);
        assert_eq!(tap(&mut m, 'm' as u32).0, vec![down(0x27)]);
        assert_eq!(
            tap(&mut m, 'A' as u32).0,
            vec![down(0x2A), down(0x10), up(0x2A)]
        );
        // Digits need Shift on AZERTY; é is unshifted on the 2 key.
        assert_eq!(
            tap(&mut m, '1' as u32).0,
            vec![down(0x2A), down(0x02), up(0x2A)]
        );
        assert_eq!(tap(&mut m, 0xE9).0, vec![down(0x03)]);
        assert_eq!(tap(&mut m, '@' as u32).0[1], down(0x0B));
    }

    #[test]
    fn other_layouts() {
        let mut es = mapper("es-es-qwerty");
        assert_eq!(tap(&mut es, 0xF1).0, vec![down(0x27)]); // ñ
        assert_eq!(tap(&mut es, '@' as u32).0[1], down(0x03));
        let mut it = mapper("it-it-qwerty");
        assert_eq!(tap(&mut it, 0xE8).0, vec![down(0x1A)]); // è
        assert_eq!(tap(&mut it, '{' as u32).0.len(), 5); // Shift+AltGr+è
        let mut sv = mapper("sv-se-qwerty");
        assert_eq!(tap(&mut sv, 0xE5).0, vec![down(0x1A)]); // å
        assert_eq!(tap(&mut sv, 0xF6).0, vec![down(0x27)]); // ö
        let mut gb = mapper("en-gb-qwerty");
        assert_eq!(tap(&mut gb, 0xA3).0, vec![down(0x2A), down(0x04), up(0x2A)]); // £
        assert_eq!(tap(&mut gb, '#' as u32).0, vec![down(0x2B)]);
        assert_eq!(tap(&mut gb, '\\' as u32).0, vec![down(0x56)]);
        let mut jp = mapper("ja-jp-qwerty");
        assert_eq!(tap(&mut jp, '@' as u32).0, vec![down(0x1A)]);
        assert_eq!(tap(&mut jp, ':' as u32).0, vec![down(0x28)]);
        assert_eq!(
            tap(&mut jp, '_' as u32).0,
            vec![down(0x2A), down(0x73), up(0x2A)]
        );
        assert_eq!(tap(&mut jp, 0xFF2A).0, vec![down(0x29)]); // Zenkaku_Hankaku
        assert_eq!(tap(&mut jp, 0xFF23).0, vec![down(0x79)]); // Henkan
    }

    #[test]
    fn unicode_fallback() {
        let mut m = mapper("en-us-qwerty");
        for keysym in [0x20AC, 0x0100_20AC] {
            assert_eq!(
                tap(&mut m, keysym),
                (
                    vec![KeyEvent::Unicode {
                        ch: 0x20AC,
                        pressed: true
                    }],
                    vec![KeyEvent::Unicode {
                        ch: 0x20AC,
                        pressed: false
                    }]
                )
            );
        }
        assert_eq!(
            tap(&mut m, 0xE9).0,
            vec![KeyEvent::Unicode {
                ch: 0xE9,
                pressed: true
            }]
        );
        // Outside the BMP: a surrogate pair.
        let (p, r) = tap(&mut m, 0x0101_F600);
        assert_eq!(
            p,
            vec![
                KeyEvent::Unicode {
                    ch: 0xD83D,
                    pressed: true
                },
                KeyEvent::Unicode {
                    ch: 0xDE00,
                    pressed: true
                }
            ]
        );
        assert_eq!(r.len(), 2);
        // Pressed but not yet released: release_all releases it as Unicode.
        m.key(0x0100_4E2D, true);
        assert_eq!(
            m.release_all(),
            vec![KeyEvent::Unicode {
                ch: 0x4E2D,
                pressed: false
            }]
        );
    }

    #[test]
    fn failsafe_is_unicode_for_characters() {
        let mut m = mapper("failsafe");
        assert_eq!(
            tap(&mut m, 'a' as u32).0,
            vec![KeyEvent::Unicode {
                ch: 0x61,
                pressed: true
            }]
        );
        assert_eq!(
            tap(&mut m, 'A' as u32).0,
            vec![KeyEvent::Unicode {
                ch: 0x41,
                pressed: true
            }]
        );
        assert_eq!(tap(&mut m, 0xFF0D).0, vec![down(0x1C)]);
        assert_eq!(tap(&mut m, 0xFF51).0, vec![sc(0x4B, true, true)]);
    }

    #[test]
    fn caps_lock() {
        let mut m = mapper("en-us-qwerty");
        tap(&mut m, 0xFFE5);
        assert_eq!(m.locks(), (true, false));
        assert_eq!(tap(&mut m, 'A' as u32).0, vec![down(0x1E)]);
        assert_eq!(
            tap(&mut m, 'a' as u32).0,
            vec![down(0x2A), down(0x1E), up(0x2A)]
        );
        // Caps Lock does not affect digits or punctuation.
        assert_eq!(tap(&mut m, '1' as u32).0, vec![down(0x02)]);
        assert_eq!(tap(&mut m, '!' as u32).0.len(), 3);
        m.set_locks(false, false);
        assert_eq!(tap(&mut m, 'A' as u32).0.len(), 3);
        // German umlauts are letters too.
        let mut de = mapper("de-de-qwertz");
        de.set_locks(true, false);
        assert_eq!(tap(&mut de, 0xDC).0, vec![down(0x1A)]); // Ü
    }

    #[test]
    fn unknown_and_unpaired() {
        let mut m = mapper("en-us-qwerty");
        assert!(m.key(0x1008_FF11, true).is_empty()); // XF86AudioLowerVolume
        assert!(m.key(DEAD_ACUTE, true).is_empty()); // not on en-us
        assert!(m.key('a' as u32, false).is_empty()); // release without press
        // Auto-repeat: press twice, one release.
        assert_eq!(m.key('b' as u32, true), vec![down(0x30)]);
        assert_eq!(m.key('b' as u32, true), vec![down(0x30)]);
        assert_eq!(m.key('b' as u32, false), vec![up(0x30)]);
        assert!(m.key('b' as u32, false).is_empty());
        assert!(m.release_all().is_empty());
    }

    #[test]
    fn never_panics_and_always_releases() {
        let names: Vec<&str> = Layout::names().collect();
        for name in names {
            let mut m = mapper(name);
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            for i in 0..20_000u32 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let keysym = match i % 4 {
                    0 => x as u32,
                    1 => (x as u32) & 0xFFFF,
                    2 => 0x0100_0000 + ((x as u32) % 0x11_0000),
                    _ => i,
                };
                let _ = m.key(keysym, x & 0x100 != 0);
            }
            for k in [
                0u32,
                u32::MAX,
                0xFFFF_FFFE,
                0x0110_FFFF,
                0x0100_D800,
                0xFFFF,
            ] {
                let _ = m.key(k, true);
                let _ = m.key(k, false);
            }
            let _ = m.release_all();
            assert!(m.release_all().is_empty(), "{name}");
            assert_eq!(m.down, [0; 8], "{name}");
        }
    }
}
