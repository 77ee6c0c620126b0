//! X11 keysyms as sent in `key` instructions.

pub const BACKSPACE: u32 = 0xff08;
pub const TAB: u32 = 0xff09;
pub const RETURN: u32 = 0xff0d;
pub const ESCAPE: u32 = 0xff1b;
pub const DELETE: u32 = 0xffff;
pub const INSERT: u32 = 0xff63;
pub const HOME: u32 = 0xff50;
pub const LEFT: u32 = 0xff51;
pub const UP: u32 = 0xff52;
pub const RIGHT: u32 = 0xff53;
pub const DOWN: u32 = 0xff54;
pub const PAGE_UP: u32 = 0xff55;
pub const PAGE_DOWN: u32 = 0xff56;
pub const END: u32 = 0xff57;
pub const SHIFT_L: u32 = 0xffe1;
pub const SHIFT_R: u32 = 0xffe2;
pub const CONTROL_L: u32 = 0xffe3;
pub const CONTROL_R: u32 = 0xffe4;
pub const ALT_L: u32 = 0xffe9;
pub const ALT_R: u32 = 0xffea;
pub const META_L: u32 = 0xffe7;
pub const SUPER_L: u32 = 0xffeb;
/// F1; F2..F12 follow consecutively (`F1 + n - 1`).
pub const F1: u32 = 0xffbe;

/// The keysym guacamole-common-js sends for a typed character: Latin-1
/// characters are their code point, other Unicode characters
/// `0x01000000 + code point`; newline/CR are Return, tab Tab, backspace
/// BackSpace, escape Escape, DEL Delete.
pub fn for_char(c: char) -> u32 {
    let cp = u32::from(c);
    match c {
        '\n' | '\r' => RETURN,
        '\t' => TAB,
        '\u{8}' => BACKSPACE,
        '\u{1b}' => ESCAPE,
        '\u{7f}' => DELETE,
        _ if (0x20..=0x7e).contains(&cp) || (0xa0..=0xff).contains(&cp) => cp,
        _ => 0x0100_0000 + cp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_keysyms() {
        assert_eq!(for_char('a'), 0x61);
        assert_eq!(for_char('~'), 0x7e);
        assert_eq!(for_char('é'), 0xe9);
        assert_eq!(for_char('\n'), 0xff0d);
        assert_eq!(for_char('€'), 0x0100_20ac);
        assert_eq!(for_char('\u{1}'), 0x0100_0001);
    }
}
