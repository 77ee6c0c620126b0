//! Result formatting: aligned tables (psql style), expanded records (`\x`)
//! and CSV. Works a page at a time so results are never held whole.

use unicode_width::UnicodeWidthChar;

/// One row: `None` is SQL NULL.
pub type Row = Vec<Option<String>>;

/// Widest a cell is drawn (longer values end with `…`).
pub const MAX_CELL_WIDTH: usize = 80;

/// How NULL is drawn: dim magenta, so it differs from the text 'NULL'.
pub const NULL_STYLED: &str = "\x1b[2;35mNULL\x1b[0m";
const NULL_TEXT: &str = "NULL";

/// Makes a value safe and single-line for the terminal: control characters
/// (which could drive the terminal) become visible escapes, long values are cut.
pub fn sanitize(v: &str) -> (String, usize) {
    let mut s = String::with_capacity(v.len().min(MAX_CELL_WIDTH * 4));
    let mut w = 0usize;
    for c in v.chars() {
        let (text, cw): (std::borrow::Cow<'_, str>, usize) = match c {
            '\n' => ("↵".into(), 1),
            '\r' => ("\\r".into(), 2),
            '\t' => ("  ".into(), 2),
            c if c.is_control() => (format!("\\x{:02x}", u32::from(c)).into(), 4),
            c => {
                let cw = c.width().unwrap_or(0);
                (c.to_string().into(), cw)
            }
        };
        if w + cw > MAX_CELL_WIDTH {
            s.push('…');
            w += 1;
            break;
        }
        s.push_str(&text);
        w += cw;
    }
    (s, w)
}

fn cell_width(v: &Option<String>) -> usize {
    match v {
        None => NULL_TEXT.len(),
        Some(s) => sanitize(s).1,
    }
}

fn looks_numeric(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty() && t.len() < 64 && t.parse::<f64>().is_ok()
}

/// Column layout of a table being printed page by page.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub columns: Vec<String>,
    pub widths: Vec<usize>,
    pub numeric: Vec<bool>,
}

impl Layout {
    pub fn new(columns: Vec<String>) -> Self {
        let widths = columns.iter().map(|c| sanitize(c).1).collect();
        let numeric = vec![true; columns.len()];
        Layout {
            columns,
            widths,
            numeric,
        }
    }

    /// Widens the columns for `rows`; returns whether any width changed.
    pub fn fit(&mut self, rows: &[Row]) -> bool {
        let mut changed = false;
        for row in rows {
            for (i, v) in row.iter().enumerate() {
                let w = cell_width(v);
                if let Some(cw) = self.widths.get_mut(i)
                    && w > *cw
                {
                    *cw = w;
                    changed = true;
                }
                if let (Some(n), Some(s)) = (self.numeric.get_mut(i), v)
                    && !looks_numeric(s)
                {
                    *n = false;
                }
            }
        }
        changed
    }

    /// Header line and separator.
    pub fn header(&self, out: &mut String) {
        out.push(' ');
        for (i, (c, w)) in self.columns.iter().zip(&self.widths).enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            let (s, sw) = sanitize(c);
            // Centered, like psql.
            let pad = w.saturating_sub(sw);
            let left = pad / 2;
            out.extend(std::iter::repeat_n(' ', left));
            out.push_str(&s);
            out.extend(std::iter::repeat_n(' ', pad - left));
        }
        out.push_str("\r\n");
        for (i, w) in self.widths.iter().enumerate() {
            if i > 0 {
                out.push('+');
            }
            out.extend(std::iter::repeat_n('-', w + 2));
        }
        out.push_str("\r\n");
    }

    /// One data line.
    pub fn row(&self, row: &Row, out: &mut String) {
        out.push(' ');
        for (i, w) in self.widths.iter().enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            let v = row.get(i).and_then(|v| v.as_ref());
            let (text, tw) = match v {
                None => (NULL_STYLED.to_owned(), NULL_TEXT.len()),
                Some(s) => sanitize(s),
            };
            let pad = w.saturating_sub(tw);
            let right = self.numeric.get(i).copied().unwrap_or(false) && v.is_some();
            if right {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(&text);
            } else {
                out.push_str(&text);
                if i + 1 < self.widths.len() {
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
        }
        out.push_str("\r\n");
    }

    /// One record in expanded mode (`\x`).
    pub fn record(&self, number: u64, row: &Row, out: &mut String) {
        let name_w = self
            .columns
            .iter()
            .map(|c| sanitize(c).1)
            .max()
            .unwrap_or(0);
        let title = format!("-[ RECORD {number} ]");
        out.push_str(&title);
        let total = name_w + 3 + self.widths.iter().copied().max().unwrap_or(0);
        out.extend(std::iter::repeat_n(
            '-',
            total.saturating_sub(title.len()).max(1),
        ));
        out.push_str("\r\n");
        for (i, c) in self.columns.iter().enumerate() {
            let (name, nw) = sanitize(c);
            out.push_str(&name);
            out.extend(std::iter::repeat_n(' ', name_w.saturating_sub(nw)));
            out.push_str(" | ");
            match row.get(i).and_then(|v| v.as_ref()) {
                None => out.push_str(NULL_STYLED),
                Some(s) => out.push_str(&sanitize(s).0),
            }
            out.push_str("\r\n");
        }
    }
}

/// Appends one CSV record (RFC 4180, CRLF). NULL is an empty field; an empty
/// string is `""` so the two stay distinguishable.
pub fn csv_record<'a>(fields: impl IntoIterator<Item = Option<&'a str>>, out: &mut Vec<u8>) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match f {
            None => {}
            Some(s) => {
                let quote = s.is_empty()
                    || s.contains([',', '"', '\r', '\n'])
                    || s.starts_with(' ')
                    || s.ends_with(' ');
                if quote {
                    out.push(b'"');
                    for part in s.split('"').enumerate() {
                        if part.0 > 0 {
                            out.extend_from_slice(b"\"\"");
                        }
                        out.extend_from_slice(part.1.as_bytes());
                    }
                    out.push(b'"');
                } else {
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut esc = false;
        for c in s.chars() {
            if esc {
                if c.is_ascii_alphabetic() {
                    esc = false;
                }
            } else if c == '\x1b' {
                esc = true;
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn aligned_table_with_nulls_and_numbers() {
        let mut l = Layout::new(vec!["id".into(), "name".into()]);
        let rows: Vec<Row> = vec![
            vec![Some("1".into()), Some("alice".into())],
            vec![Some("100".into()), None],
        ];
        assert!(l.fit(&rows));
        let mut s = String::new();
        l.header(&mut s);
        for r in &rows {
            l.row(r, &mut s);
        }
        assert!(s.contains(NULL_STYLED), "NULL is styled");
        let plain = strip_ansi(&s);
        let lines: Vec<&str> = plain.split("\r\n").collect();
        assert_eq!(lines[0], " id  | name ");
        assert_eq!(lines[1], "-----+-------");
        assert_eq!(lines[2], "   1 | alice");
        assert_eq!(lines[3], " 100 | NULL");
    }

    #[test]
    fn values_cannot_drive_the_terminal() {
        let (s, w) = sanitize("a\x1b[2Jb\nc");
        assert!(!s.contains('\x1b'));
        assert_eq!(s, "a\\x1b[2Jb↵c");
        assert_eq!(w, s.chars().count());
        let long = "x".repeat(500);
        let (s, w) = sanitize(&long);
        assert_eq!(w, MAX_CELL_WIDTH + 1);
        assert!(s.ends_with('…'));
        // Wide characters count two cells.
        assert_eq!(sanitize("日本").1, 4);
    }

    #[test]
    fn expanded_records() {
        let mut l = Layout::new(vec!["id".into(), "long_name".into()]);
        let rows: Vec<Row> = vec![vec![Some("7".into()), None]];
        l.fit(&rows);
        let mut s = String::new();
        l.record(1, &rows[0], &mut s);
        let plain = strip_ansi(&s);
        assert!(plain.starts_with("-[ RECORD 1 ]"), "{plain}");
        assert!(plain.contains("id        | 7\r\n"), "{plain:?}");
        assert!(plain.contains("long_name | NULL\r\n"), "{plain:?}");
    }

    #[test]
    fn csv_quoting() {
        let mut out = Vec::new();
        csv_record(
            [
                Some("a"),
                None,
                Some(""),
                Some("x,y"),
                Some("say \"hi\""),
                Some("l1\nl2"),
            ],
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,,\"\",\"x,y\",\"say \"\"hi\"\"\",\"l1\nl2\"\r\n"
        );
    }
}
