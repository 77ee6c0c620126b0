//! A line editor over a VT byte stream (what the terminal sends for keys):
//! cursor movement, history, word and line kills, Tab for completion.
//! Sans-IO: bytes in, VT output bytes and [`EditEvent`]s out.

use std::fmt::Write as _;

use unicode_width::UnicodeWidthChar;

/// What a byte of input caused beyond redrawing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditEvent {
    /// Enter: the line is done (the cursor moved to a new line).
    Submit(String),
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-D on an empty line.
    Eof,
    /// Tab: the caller computes completions and calls [`LineEditor::insert`]
    /// or lists them.
    Complete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EscState {
    None,
    Esc,
    Csi(String),
    Ss3,
}

/// Most history entries kept.
const MAX_HISTORY: usize = 500;

/// The line being edited and the history.
#[derive(Debug)]
pub struct LineEditor {
    prompt: String,
    buf: Vec<char>,
    cursor: usize,
    history: Vec<String>,
    hist_pos: Option<usize>,
    saved: Vec<char>,
    esc: EscState,
    utf8: Vec<u8>,
    cols: usize,
    /// Row of the cursor relative to the prompt's first row, as last drawn.
    cur_row: usize,
    active: bool,
}

fn width(chars: &[char]) -> usize {
    chars.iter().map(|c| c.width().unwrap_or(0)).sum()
}

fn str_width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

impl LineEditor {
    pub fn new(cols: u16) -> Self {
        LineEditor {
            prompt: String::new(),
            buf: Vec::new(),
            cursor: 0,
            history: Vec::new(),
            hist_pos: None,
            saved: Vec::new(),
            esc: EscState::None,
            utf8: Vec::new(),
            cols: usize::from(cols.max(1)),
            cur_row: 0,
            active: false,
        }
    }

    pub fn set_cols(&mut self, cols: u16) {
        self.cols = usize::from(cols.max(1));
    }

    /// Starts a new line with `prompt` (plain text) and draws it.
    pub fn start(&mut self, prompt: &str, out: &mut Vec<u8>) {
        self.prompt = prompt.to_owned();
        self.buf.clear();
        self.cursor = 0;
        self.hist_pos = None;
        self.cur_row = 0;
        self.active = true;
        out.extend_from_slice(b"\r");
        self.refresh(out);
    }

    /// Whether a line is being edited (between `start` and its end).
    pub fn is_active(&self) -> bool {
        self.active
    }

    pub fn line(&self) -> String {
        self.buf.iter().collect()
    }

    /// The text left of the cursor.
    pub fn before_cursor(&self) -> String {
        self.buf.iter().take(self.cursor).collect()
    }

    /// Replaces the `remove` characters left of the cursor by `text`.
    pub fn replace_before_cursor(&mut self, remove: usize, text: &str, out: &mut Vec<u8>) {
        let remove = remove.min(self.cursor);
        let start = self.cursor - remove;
        self.buf.drain(start..self.cursor);
        let ins: Vec<char> = text.chars().filter(|c| !c.is_control()).collect();
        let n = ins.len();
        self.buf.splice(start..start, ins);
        self.cursor = start + n;
        self.refresh(out);
    }

    /// Redraws the prompt and line below some other output (completion lists).
    pub fn redraw_below(&mut self, out: &mut Vec<u8>) {
        self.cur_row = 0;
        out.extend_from_slice(b"\r");
        self.refresh(out);
    }

    /// Adds an entry to the history (consecutive duplicates are kept once).
    pub fn add_history(&mut self, entry: &str) {
        let entry = entry.trim();
        if entry.is_empty() || self.history.last().is_some_and(|l| l == entry) {
            return;
        }
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(0);
        }
        self.history.push(entry.to_owned());
    }

    pub fn history(&self) -> &[String] {
        &self.history
    }

    fn refresh(&mut self, out: &mut Vec<u8>) {
        let cols = self.cols;
        if self.cur_row > 0 {
            let _ = write!(Vec8(out), "\x1b[{}A", self.cur_row);
        }
        out.extend_from_slice(b"\r\x1b[J");
        out.extend_from_slice(self.prompt.as_bytes());
        let mut tmp = [0u8; 4];
        for c in &self.buf {
            out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        }
        let pw = str_width(&self.prompt);
        let total = pw + width(&self.buf);
        if total > 0 && total.is_multiple_of(cols) {
            // The cursor waits past the last column: move it to the next row.
            out.extend_from_slice(b"\r\n");
        }
        let end_row = total / cols;
        let cpos = pw + width(&self.buf[..self.cursor.min(self.buf.len())]);
        let (crow, ccol) = (cpos / cols, cpos % cols);
        if end_row > crow {
            let _ = write!(Vec8(out), "\x1b[{}A", end_row - crow);
        }
        out.extend_from_slice(b"\r");
        if ccol > 0 {
            let _ = write!(Vec8(out), "\x1b[{ccol}C");
        }
        self.cur_row = crow;
    }

    fn finish_line(&mut self, out: &mut Vec<u8>) {
        self.cursor = self.buf.len();
        self.refresh(out);
        out.extend_from_slice(b"\r\n");
        self.active = false;
        self.cur_row = 0;
    }

    fn history_move(&mut self, up: bool, out: &mut Vec<u8>) {
        if self.history.is_empty() {
            return;
        }
        let pos = match (self.hist_pos, up) {
            (None, true) => {
                self.saved = self.buf.clone();
                Some(self.history.len() - 1)
            }
            (None, false) => return,
            (Some(0), true) => Some(0),
            (Some(p), true) => Some(p - 1),
            (Some(p), false) if p + 1 < self.history.len() => Some(p + 1),
            (Some(_), false) => None,
        };
        self.hist_pos = pos;
        self.buf = match pos {
            Some(p) => self
                .history
                .get(p)
                .map(|s| s.chars().collect())
                .unwrap_or_default(),
            None => std::mem::take(&mut self.saved),
        };
        self.cursor = self.buf.len();
        self.refresh(out);
    }

    fn insert_char(&mut self, c: char, out: &mut Vec<u8>) {
        self.buf.insert(self.cursor, c);
        self.cursor += 1;
        if self.cursor == self.buf.len() && self.cur_row == 0 {
            // Fast path: typing at the end of a one-row line is just an echo.
            let pw = str_width(&self.prompt);
            let total = pw + width(&self.buf);
            if total < self.cols {
                let mut tmp = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                return;
            }
        }
        self.refresh(out);
    }

    fn csi(&mut self, seq: &str, out: &mut Vec<u8>) {
        let Some(last) = seq.chars().last() else {
            return;
        };
        let params = seq.get(..seq.len() - last.len_utf8()).unwrap_or("");
        let mut tmp = [0u8; 4];
        let fin: &str = last.encode_utf8(&mut tmp);
        match fin {
            "A" => self.history_move(true, out),
            "B" => self.history_move(false, out),
            "C" => self.right(out),
            "D" => self.left(out),
            "H" => self.home(out),
            "F" => self.end(out),
            "~" => match params {
                "1" | "7" => self.home(out),
                "4" | "8" => self.end(out),
                "3" => self.delete(out),
                _ => {}
            },
            _ => {}
        }
    }

    fn left(&mut self, out: &mut Vec<u8>) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.refresh(out);
        }
    }

    fn right(&mut self, out: &mut Vec<u8>) {
        if self.cursor < self.buf.len() {
            self.cursor += 1;
            self.refresh(out);
        }
    }

    fn home(&mut self, out: &mut Vec<u8>) {
        self.cursor = 0;
        self.refresh(out);
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        self.cursor = self.buf.len();
        self.refresh(out);
    }

    fn delete(&mut self, out: &mut Vec<u8>) {
        if self.cursor < self.buf.len() {
            self.buf.remove(self.cursor);
            self.refresh(out);
        }
    }

    fn backspace(&mut self, out: &mut Vec<u8>) {
        if self.cursor > 0 {
            self.cursor -= 1;
            self.buf.remove(self.cursor);
            self.refresh(out);
        }
    }

    fn kill_word(&mut self, out: &mut Vec<u8>) {
        let mut start = self.cursor;
        while start > 0 && self.buf.get(start - 1).is_some_and(|c| c.is_whitespace()) {
            start -= 1;
        }
        while start > 0 && self.buf.get(start - 1).is_some_and(|c| !c.is_whitespace()) {
            start -= 1;
        }
        self.buf.drain(start..self.cursor);
        self.cursor = start;
        self.refresh(out);
    }

    /// Feeds one byte typed by the user; redraws into `out`.
    pub fn feed(&mut self, b: u8, out: &mut Vec<u8>) -> Option<EditEvent> {
        match std::mem::replace(&mut self.esc, EscState::None) {
            EscState::Esc => {
                match b {
                    b'[' => self.esc = EscState::Csi(String::new()),
                    b'O' => self.esc = EscState::Ss3,
                    _ => {}
                }
                return None;
            }
            EscState::Csi(mut s) => {
                if !(0x20..=0x7e).contains(&b) {
                    // Not a control sequence after all: drop it.
                    return None;
                }
                s.push(char::from(b));
                if (0x40..=0x7e).contains(&b) {
                    self.csi(&s, out);
                } else if s.len() < 16 {
                    self.esc = EscState::Csi(s);
                }
                return None;
            }
            EscState::Ss3 => {
                let s = char::from(b).to_string();
                self.csi(&s, out);
                return None;
            }
            EscState::None => {}
        }
        if !self.utf8.is_empty() || b >= 0x80 {
            self.utf8.push(b);
            match std::str::from_utf8(&self.utf8) {
                Ok(s) => {
                    let chars: Vec<char> = s.chars().collect();
                    self.utf8.clear();
                    for c in chars {
                        self.insert_char(c, out);
                    }
                }
                Err(e) if e.error_len().is_some() || self.utf8.len() >= 4 => {
                    // Drop the bad lead byte; what follows is input again.
                    let rest: Vec<u8> = self.utf8.drain(..).skip(1).collect();
                    let mut ev = None;
                    for b in rest {
                        ev = ev.or(self.feed(b, out));
                    }
                    return ev;
                }
                Err(_) => {}
            }
            return None;
        }
        match b {
            0x1b => self.esc = EscState::Esc,
            b'\r' | b'\n' => {
                let line = self.line();
                self.finish_line(out);
                return Some(EditEvent::Submit(line));
            }
            0x03 => {
                self.cursor = self.buf.len();
                self.refresh(out);
                out.extend_from_slice(b"^C\r\n");
                self.active = false;
                self.cur_row = 0;
                return Some(EditEvent::Interrupt);
            }
            0x04 => {
                if self.buf.is_empty() {
                    self.finish_line(out);
                    return Some(EditEvent::Eof);
                }
                self.delete(out);
            }
            b'\t' => return Some(EditEvent::Complete),
            0x7f | 0x08 => self.backspace(out),
            0x01 => self.home(out),
            0x05 => self.end(out),
            0x02 => self.left(out),
            0x06 => self.right(out),
            0x10 => self.history_move(true, out),
            0x0e => self.history_move(false, out),
            0x0b => {
                self.buf.truncate(self.cursor);
                self.refresh(out);
            }
            0x15 => {
                self.buf.drain(..self.cursor);
                self.cursor = 0;
                self.refresh(out);
            }
            0x17 => self.kill_word(out),
            0x0c => {
                out.extend_from_slice(b"\x1b[H\x1b[2J");
                self.cur_row = 0;
                self.refresh(out);
            }
            0x20..=0x7e => self.insert_char(char::from(b), out),
            _ => {}
        }
        None
    }
}

/// `fmt::Write` over a byte vector.
pub(crate) struct Vec8<'a>(pub &'a mut Vec<u8>);

impl std::fmt::Write for Vec8<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(ed: &mut LineEditor, bytes: &[u8]) -> Vec<EditEvent> {
        let mut out = Vec::new();
        bytes.iter().filter_map(|&b| ed.feed(b, &mut out)).collect()
    }

    #[test]
    fn typing_and_cursor_movement() {
        let mut ed = LineEditor::new(80);
        let mut out = Vec::new();
        ed.start("db=> ", &mut out);
        assert!(String::from_utf8_lossy(&out).contains("db=> "));
        // "selct", left twice, insert 'e' → "select"; Home, Delete, End.
        feed(&mut ed, b"selct\x1b[D\x1b[De");
        assert_eq!(ed.line(), "select");
        assert_eq!(ed.before_cursor(), "sele");
        feed(&mut ed, b"\x1bOH\x1b[3~");
        assert_eq!(ed.line(), "elect");
        feed(&mut ed, b"\x1b[Fs\x01X\x05Y");
        assert_eq!(ed.line(), "XelectsY");
        // Backspace (DEL and BS), Ctrl-W, Ctrl-U, Ctrl-K.
        feed(&mut ed, b"\x7f\x08 two words");
        assert_eq!(ed.line(), "Xelect two words");
        feed(&mut ed, b"\x17");
        assert_eq!(ed.line(), "Xelect two ");
        feed(&mut ed, b"\x01\x06\x0b");
        assert_eq!(ed.line(), "X");
        feed(&mut ed, b"\x05abc\x02\x15");
        assert_eq!(ed.line(), "c");
        let ev = feed(&mut ed, b"\r");
        assert_eq!(ev, vec![EditEvent::Submit("c".into())]);
        assert!(!ed.is_active());
    }

    #[test]
    fn history_up_and_down() {
        let mut ed = LineEditor::new(80);
        ed.add_history("select 1;");
        ed.add_history("select 2;");
        ed.add_history("select 2;");
        assert_eq!(ed.history().len(), 2);
        let mut out = Vec::new();
        ed.start("> ", &mut out);
        feed(&mut ed, b"draft");
        feed(&mut ed, b"\x1b[A");
        assert_eq!(ed.line(), "select 2;");
        feed(&mut ed, b"\x1bOA\x1b[A");
        assert_eq!(ed.line(), "select 1;");
        feed(&mut ed, b"\x1b[B");
        assert_eq!(ed.line(), "select 2;");
        feed(&mut ed, b"\x1b[B");
        assert_eq!(ed.line(), "draft");
    }

    #[test]
    fn events_utf8_and_completion_replace() {
        let mut ed = LineEditor::new(80);
        let mut out = Vec::new();
        ed.start("> ", &mut out);
        assert_eq!(feed(&mut ed, "héllo ✓".as_bytes()), vec![]);
        assert_eq!(ed.line(), "héllo ✓");
        assert_eq!(feed(&mut ed, b"\t"), vec![EditEvent::Complete]);
        ed.replace_before_cursor(1, "done", &mut out);
        assert_eq!(ed.line(), "héllo done");
        assert_eq!(feed(&mut ed, b"\x03"), vec![EditEvent::Interrupt]);
        ed.start("> ", &mut out);
        assert_eq!(feed(&mut ed, b"\x04"), vec![EditEvent::Eof]);
        // Invalid UTF-8 and stray escapes are dropped, never panic.
        ed.start("> ", &mut out);
        feed(
            &mut ed,
            &[
                0xff, 0xc3, 0x28, 0x1b, b'[', b'9', b'9', b'9', b'9', b'Z', b'a',
            ],
        );
        assert_eq!(ed.line(), "(a");
    }

    #[test]
    fn wrapped_lines_move_the_cursor_back_up() {
        let mut ed = LineEditor::new(10);
        let mut out = Vec::new();
        ed.start("> ", &mut out);
        feed(&mut ed, b"0123456789abcdef");
        out.clear();
        // Home: the cursor is on row 1 (prompt 2 + 16 chars = 18 cells): go up one row.
        assert_eq!(ed.feed(0x01, &mut out), None);
        let s = String::from_utf8_lossy(&out).into_owned();
        assert!(s.starts_with("\x1b[1A\r\x1b[J"), "{s:?}");
        assert!(s.ends_with("\x1b[1A\r\x1b[2C"), "{s:?}");
    }
}
