//! X11 keysyms (as sent by Guacamole clients) to the bytes a terminal sends.

/// Modifier keys currently held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Modifiers {
    pub shift: bool,
    pub ctrl: bool,
    pub alt: bool,
}

impl Modifiers {
    /// xterm's modifier parameter (1 + shift + 2·alt + 4·ctrl), or `None`
    /// when no modifier is held.
    fn param(self) -> Option<u8> {
        let v = u8::from(self.shift) + 2 * u8::from(self.alt) + 4 * u8::from(self.ctrl);
        (v != 0).then_some(v + 1)
    }

    /// Updates the state from a modifier key event. Returns `true` when
    /// `keysym` was a modifier.
    pub fn update(&mut self, keysym: u32, pressed: bool) -> bool {
        match keysym {
            0xffe1 | 0xffe2 => self.shift = pressed,
            0xffe3 | 0xffe4 => self.ctrl = pressed,
            // Alt_L/R, Meta_L/R.
            0xffe7..=0xffea => self.alt = pressed,
            // Caps/Shift lock, Super, Hyper, AltGr (ISO_Level3_Shift), Mode_switch.
            0xffe5 | 0xffe6 | 0xffeb..=0xffee | 0xfe03 | 0xff7e => {}
            _ => return false,
        }
        true
    }
}

/// Terminal modes that change what keys send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyModes {
    /// DECCKM: cursor keys send SS3 instead of CSI.
    pub app_cursor: bool,
    /// DECKPAM: keypad application mode.
    pub app_keypad: bool,
}

/// Maps a pressed keysym to bytes. `backspace` is the byte BackSpace sends.
pub fn key_bytes(keysym: u32, mods: Modifiers, modes: KeyModes, backspace: u8, out: &mut Vec<u8>) {
    // Characters first.
    if let Some(c) = keysym_char(keysym) {
        char_bytes(c, mods, out);
        return;
    }
    let csi_mod = |out: &mut Vec<u8>, n: &str, final_byte: u8| {
        out.extend_from_slice(b"\x1b[");
        out.extend_from_slice(n.as_bytes());
        if let Some(m) = mods.param() {
            out.push(b';');
            out.extend_from_slice(m.to_string().as_bytes());
        }
        out.push(final_byte);
    };
    // Cursor-style keys: SS3 x in application mode without modifiers,
    // CSI x without, CSI 1;m x with modifiers.
    let cursor_key = |out: &mut Vec<u8>, final_byte: u8| match mods.param() {
        Some(m) => {
            out.extend_from_slice(b"\x1b[1;");
            out.extend_from_slice(m.to_string().as_bytes());
            out.push(final_byte);
        }
        None if modes.app_cursor => out.extend_from_slice(&[0x1b, b'O', final_byte]),
        None => out.extend_from_slice(&[0x1b, b'[', final_byte]),
    };
    let alt_prefix = |out: &mut Vec<u8>| {
        if mods.alt {
            out.push(0x1b);
        }
    };
    match keysym {
        // BackSpace
        0xff08 => {
            alt_prefix(out);
            out.push(if mods.ctrl && backspace == 0x7f {
                0x08
            } else {
                backspace
            });
        }
        // Tab, KP_Tab
        0xff09 | 0xff89 => {
            if mods.shift {
                out.extend_from_slice(b"\x1b[Z");
            } else {
                alt_prefix(out);
                out.push(b'\t');
            }
        }
        // ISO_Left_Tab
        0xfe20 => out.extend_from_slice(b"\x1b[Z"),
        // Linefeed
        0xff0a => out.push(b'\n'),
        // Return, KP_Enter
        0xff0d | 0xff8d => {
            if modes.app_keypad && keysym == 0xff8d {
                out.extend_from_slice(b"\x1bOM");
            } else {
                alt_prefix(out);
                out.push(b'\r');
            }
        }
        // Pause, Scroll_Lock, Sys_Req: nothing
        0xff13..=0xff15 => {}
        // Escape
        0xff1b => {
            alt_prefix(out);
            out.push(0x1b);
        }
        // Home, KP_Home
        0xff50 | 0xff95 => cursor_key(out, b'H'),
        // Left, Up, Right, Down (and keypad variants)
        0xff51 | 0xff96 => cursor_key(out, b'D'),
        0xff52 | 0xff97 => cursor_key(out, b'A'),
        0xff53 | 0xff98 => cursor_key(out, b'C'),
        0xff54 | 0xff99 => cursor_key(out, b'B'),
        // Page_Up / Prior, KP_Page_Up
        0xff55 | 0xff9a => csi_mod(out, "5", b'~'),
        // Page_Down / Next, KP_Page_Down
        0xff56 | 0xff9b => csi_mod(out, "6", b'~'),
        // End, KP_End
        0xff57 | 0xff9c => cursor_key(out, b'F'),
        // Begin, KP_Begin
        0xff58 | 0xff9d => cursor_key(out, b'E'),
        // Insert, KP_Insert
        0xff63 | 0xff9e => csi_mod(out, "2", b'~'),
        // Delete, KP_Delete
        0xffff | 0xff9f => csi_mod(out, "3", b'~'),
        // Menu
        0xff67 => csi_mod(out, "29", b'~'),
        // F1..F4
        0xffbe..=0xffc1 => {
            let f = b"PQRS"[(keysym - 0xffbe) as usize];
            match mods.param() {
                Some(m) => {
                    out.extend_from_slice(b"\x1b[1;");
                    out.extend_from_slice(m.to_string().as_bytes());
                    out.push(f);
                }
                None => out.extend_from_slice(&[0x1b, b'O', f]),
            }
        }
        // F5..F12
        0xffc2..=0xffc9 => {
            const CODES: [&str; 8] = ["15", "17", "18", "19", "20", "21", "23", "24"];
            csi_mod(out, CODES[(keysym - 0xffc2) as usize], b'~');
        }
        // Keypad characters
        0xff80 | 0xffaa..=0xffb9 | 0xffbd => {
            let c = match keysym {
                0xff80 => ' ',
                0xffaa => '*',
                0xffab => '+',
                0xffac => ',',
                0xffad => '-',
                0xffae => '.',
                0xffaf => '/',
                0xffbd => '=',
                d => char::from(b'0' + u8::try_from(d - 0xffb0).unwrap_or(0)),
            };
            char_bytes(c, mods, out);
        }
        _ => {}
    }
}

/// The character a printable keysym stands for.
pub fn keysym_char(keysym: u32) -> Option<char> {
    match keysym {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(keysym),
        0x0100_0000..=0x0110_ffff => char::from_u32(keysym - 0x0100_0000),
        _ => None,
    }
}

fn char_bytes(c: char, mods: Modifiers, out: &mut Vec<u8>) {
    if mods.ctrl
        && let Some(code) = ctrl_code(c)
    {
        if mods.alt {
            out.push(0x1b);
        }
        out.push(code);
        return;
    }
    if mods.alt {
        out.push(0x1b);
    }
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Control code for Ctrl+`c` (xterm conventions).
pub fn ctrl_code(c: char) -> Option<u8> {
    Some(match c {
        'a'..='z' => c as u8 - b'a' + 1,
        'A'..='Z' => c as u8 - b'A' + 1,
        '@' | ' ' | '2' | '`' => 0x00,
        '[' | '3' | '{' => 0x1b,
        '\\' | '4' | '|' => 0x1c,
        ']' | '5' | '}' => 0x1d,
        '^' | '6' | '~' => 0x1e,
        '_' | '7' | '/' | '-' => 0x1f,
        '8' | '?' => 0x7f,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(keysym: u32, mods: Modifiers, modes: KeyModes) -> Vec<u8> {
        let mut out = Vec::new();
        key_bytes(keysym, mods, modes, 0x7f, &mut out);
        out
    }

    const NONE: Modifiers = Modifiers {
        shift: false,
        ctrl: false,
        alt: false,
    };
    const CTRL: Modifiers = Modifiers {
        shift: false,
        ctrl: true,
        alt: false,
    };
    const ALT: Modifiers = Modifiers {
        shift: false,
        ctrl: false,
        alt: true,
    };
    const SHIFT: Modifiers = Modifiers {
        shift: true,
        ctrl: false,
        alt: false,
    };
    const NORMAL: KeyModes = KeyModes {
        app_cursor: false,
        app_keypad: false,
    };
    const APP: KeyModes = KeyModes {
        app_cursor: true,
        app_keypad: false,
    };

    #[test]
    fn table() {
        let cases: &[(u32, Modifiers, KeyModes, &[u8])] = &[
            (0x61, NONE, NORMAL, b"a"),
            (0x41, NONE, NORMAL, b"A"),
            (0xe9, NONE, NORMAL, "é".as_bytes()),
            (0x0100_20ac, NONE, NORMAL, "€".as_bytes()),
            (0x0101_f600, NONE, NORMAL, "😀".as_bytes()),
            (0xff0d, NONE, NORMAL, b"\r"),
            (0xff8d, NONE, NORMAL, b"\r"),
            (0xff08, NONE, NORMAL, b"\x7f"),
            (0xff09, NONE, NORMAL, b"\t"),
            (0xff09, SHIFT, NORMAL, b"\x1b[Z"),
            (0xfe20, SHIFT, NORMAL, b"\x1b[Z"),
            (0xff1b, NONE, NORMAL, b"\x1b"),
            (0xff52, NONE, NORMAL, b"\x1b[A"),
            (0xff54, NONE, NORMAL, b"\x1b[B"),
            (0xff53, NONE, NORMAL, b"\x1b[C"),
            (0xff51, NONE, NORMAL, b"\x1b[D"),
            (0xff52, NONE, APP, b"\x1bOA"),
            (0xff51, NONE, APP, b"\x1bOD"),
            (0xff52, CTRL, NORMAL, b"\x1b[1;5A"),
            (0xff53, CTRL, APP, b"\x1b[1;5C"),
            (0xff51, SHIFT, NORMAL, b"\x1b[1;2D"),
            (0xff52, ALT, NORMAL, b"\x1b[1;3A"),
            (0xff50, NONE, NORMAL, b"\x1b[H"),
            (0xff57, NONE, NORMAL, b"\x1b[F"),
            (0xff50, NONE, APP, b"\x1bOH"),
            (0xff57, NONE, APP, b"\x1bOF"),
            (0xff63, NONE, NORMAL, b"\x1b[2~"),
            (0xffff, NONE, NORMAL, b"\x1b[3~"),
            (0xff55, NONE, NORMAL, b"\x1b[5~"),
            (0xff56, NONE, NORMAL, b"\x1b[6~"),
            (0xffff, CTRL, NORMAL, b"\x1b[3;5~"),
            (0xffbe, NONE, NORMAL, b"\x1bOP"),
            (0xffbf, NONE, NORMAL, b"\x1bOQ"),
            (0xffc0, NONE, NORMAL, b"\x1bOR"),
            (0xffc1, NONE, NORMAL, b"\x1bOS"),
            (0xffbe, SHIFT, NORMAL, b"\x1b[1;2P"),
            (0xffc2, NONE, NORMAL, b"\x1b[15~"),
            (0xffc3, NONE, NORMAL, b"\x1b[17~"),
            (0xffc4, NONE, NORMAL, b"\x1b[18~"),
            (0xffc5, NONE, NORMAL, b"\x1b[19~"),
            (0xffc6, NONE, NORMAL, b"\x1b[20~"),
            (0xffc7, NONE, NORMAL, b"\x1b[21~"),
            (0xffc8, NONE, NORMAL, b"\x1b[23~"),
            (0xffc9, NONE, NORMAL, b"\x1b[24~"),
            (0xffc9, CTRL, NORMAL, b"\x1b[24;5~"),
            (0xffb0, NONE, NORMAL, b"0"),
            (0xffb9, NONE, NORMAL, b"9"),
            (0xffab, NONE, NORMAL, b"+"),
            (0xffad, NONE, NORMAL, b"-"),
            (0xffaa, NONE, NORMAL, b"*"),
            (0xffaf, NONE, NORMAL, b"/"),
            (0xffae, NONE, NORMAL, b"."),
            (0xff97, NONE, NORMAL, b"\x1b[A"),
            (0x63, CTRL, NORMAL, b"\x03"),
            (0x43, CTRL, NORMAL, b"\x03"),
            (0x61, CTRL, NORMAL, b"\x01"),
            (0x7a, CTRL, NORMAL, b"\x1a"),
            (0x5b, CTRL, NORMAL, b"\x1b"),
            (0x5c, CTRL, NORMAL, b"\x1c"),
            (0x5d, CTRL, NORMAL, b"\x1d"),
            (0x5e, CTRL, NORMAL, b"\x1e"),
            (0x5f, CTRL, NORMAL, b"\x1f"),
            (0x20, CTRL, NORMAL, b"\x00"),
            (0x40, CTRL, NORMAL, b"\x00"),
            (0x78, ALT, NORMAL, b"\x1bx"),
            (
                0x78,
                Modifiers {
                    shift: false,
                    ctrl: true,
                    alt: true,
                },
                NORMAL,
                b"\x1b\x18",
            ),
            (0xff08, ALT, NORMAL, b"\x1b\x7f"),
            (0xffe3, NONE, NORMAL, b""),
            (0xffe1, NONE, NORMAL, b""),
        ];
        for (sym, mods, modes, want) in cases {
            assert_eq!(
                k(*sym, *mods, *modes),
                want.to_vec(),
                "keysym {sym:#x} mods {mods:?} modes {modes:?}"
            );
        }
    }

    #[test]
    fn backspace_configurable() {
        let mut out = Vec::new();
        key_bytes(0xff08, NONE, NORMAL, 8, &mut out);
        assert_eq!(out, b"\x08");
    }

    #[test]
    fn modifier_tracking() {
        let mut m = Modifiers::default();
        assert!(m.update(0xffe3, true));
        assert!(m.ctrl);
        assert!(m.update(0xffea, true));
        assert!(m.alt);
        assert!(m.update(0xffe3, false));
        assert!(!m.ctrl);
        assert!(!m.update(0x61, true));
    }
}
