//! Replays rendered frames into a display model and checks the pixels.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Display, opcode_counts, parse};
use guacr_terminal::{GlyphKey, Rgb, Terminal, TerminalConfig};

fn term(width: u32, height: u32) -> Terminal {
    Terminal::new(TerminalConfig {
        width,
        height,
        ..TerminalConfig::default()
    })
    .unwrap()
}

fn frame(t: &mut Terminal) -> Vec<u8> {
    let mut out = Vec::new();
    t.render_frame(&mut out);
    out
}

fn full(t: &Terminal) -> Display {
    let mut out = Vec::new();
    t.render_full(&mut out);
    let mut d = Display::default();
    d.apply(&out);
    d
}

fn dist(a: [u8; 3], b: Rgb) -> u32 {
    let d = |x: u8, y: u8| (i32::from(x) - i32::from(y)).unsigned_abs();
    d(a[0], b.r) + d(a[1], b.g) + d(a[2], b.b)
}

/// Reads the characters of a row from pixels, using the terminal's glyph
/// masks (printable ASCII), assuming `fg` on `bg`.
fn read_row(t: &Terminal, d: &Display, row: u32, fg: Rgb, bg: Rgb) -> String {
    let (cw, ch) = t.cell_size();
    let masks: Vec<(char, Vec<bool>)> = (0x20u8..0x7f)
        .map(char::from)
        .map(|c| (c, t.glyph_mask(c).2))
        .collect();
    let mut s = String::new();
    for col in 0..u32::from(t.cols()) {
        let px = d.screen().region(col * cw, row * ch, cw, ch);
        let m: Vec<bool> = px.iter().map(|p| dist(*p, fg) < dist(*p, bg)).collect();
        if m.iter().all(|&b| b) {
            // The cursor: an inverted blank.
            s.push(' ');
            continue;
        }
        s.push(
            masks
                .iter()
                .find(|(_, mask)| *mask == m)
                .map_or('?', |(c, _)| *c),
        );
    }
    s.trim_end().to_owned()
}

const FG: Rgb = Rgb::new(0x99, 0x99, 0x99);
const BG: Rgb = Rgb::new(0, 0, 0);

#[test]
fn screen_shows_the_characters() {
    let mut t = term(400, 200);
    t.feed(b"Hello, world!\r\n$ ");
    let mut d = Display::default();
    d.apply(&frame(&mut t));
    let (cw, ch) = t.cell_size();
    // Cell (0,0) is exactly the glyph 'H' rendered on its own.
    let want = t.fonts().glyph_rgb(&GlyphKey {
        ch: 'H',
        fg: FG,
        bg: BG,
        attrs: 0,
    });
    let got: Vec<u8> = d.screen().region(0, 0, cw, ch).concat();
    assert_eq!(got, want);
    // Same for ',' in column 5.
    let want = t.fonts().glyph_rgb(&GlyphKey {
        ch: ',',
        fg: FG,
        bg: BG,
        attrs: 0,
    });
    assert_eq!(d.screen().region(5 * cw, 0, cw, ch).concat(), want);
    assert_eq!(read_row(&t, &d, 0, FG, BG), "Hello, world!");
    assert_eq!(read_row(&t, &d, 1, FG, BG), "$");
    // The cursor (column 2 of row 1) is an inverted blank: solid foreground.
    assert!(
        d.screen()
            .region(2 * cw, ch, cw, ch)
            .iter()
            .all(|p| *p == [FG.r, FG.g, FG.b])
    );
    // The margin right of the last column is background.
    let (w, _) = (d.screen().w, d.screen().h);
    assert_eq!(d.screen().get(w - 1, 0), [0, 0, 0, 255]);
}

#[test]
fn no_change_means_no_output() {
    let mut t = term(400, 200);
    t.feed(b"abc\r\n");
    let first = frame(&mut t);
    assert!(!first.is_empty());
    assert!(frame(&mut t).is_empty());
    t.feed(b"\x1b[0m");
    assert!(frame(&mut t).is_empty());
}

#[test]
fn typing_changes_few_cells() {
    let mut t = term(800, 400);
    t.feed(b"Last login: today\r\nuser@host:~$ ");
    frame(&mut t);
    t.feed(b"l");
    let out = frame(&mut t);
    let counts = opcode_counts(&out);
    let total: usize = counts.values().sum();
    // Upload of 'l' (img, blob, end), its copy, and the moved cursor.
    assert!(total <= 7, "too many instructions: {counts:?}");
    assert_eq!(counts.get("size"), None);
    // A glyph already in the cache costs no upload.
    t.feed(b"s");
    frame(&mut t);
    t.feed(b"\x08 \x08");
    frame(&mut t);
    t.feed(b"s");
    let counts = opcode_counts(&frame(&mut t));
    assert_eq!(counts.get("img"), None, "{counts:?}");
    assert!(counts.values().sum::<usize>() <= 4, "{counts:?}");
}

#[test]
fn scrolling_uses_copy_and_matches_full_render() {
    let mut t = term(400, 200);
    let rows = usize::from(t.rows());
    let mut d = Display::default();
    for i in 0..rows {
        t.feed(format!("line {i}\r\n").as_bytes());
    }
    d.apply(&frame(&mut t));
    t.feed(b"line X\r\nline Y\r\n");
    let out = frame(&mut t);
    let scroll = parse(&out)
        .into_iter()
        .find(|i| i.opcode == "copy" && i.args[0] == "0" && i.args[6] == "0")
        .expect("a copy from layer 0 to layer 0");
    let (_, ch) = t.cell_size();
    // Moved up by two rows.
    assert_eq!(scroll.args[2], (2 * ch).to_string());
    assert_eq!(scroll.args[8], "0");
    // One scroll copy, two glyph uploads (X, Y) and a handful of copies.
    let counts = opcode_counts(&out);
    assert_eq!(counts.get("img"), Some(&2), "{counts:?}");
    assert!(counts.get("copy").copied().unwrap_or(0) <= 5, "{counts:?}");
    d.apply(&out);
    let last = rows as u32 - 1;
    assert_eq!(read_row(&t, &d, last - 2, FG, BG), "line X");
    assert_eq!(read_row(&t, &d, last - 1, FG, BG), "line Y");
    assert_eq!(read_row(&t, &d, 0, FG, BG), "line 3");
    assert_eq!(full(&t).screen(), d.screen());
}

#[test]
fn render_full_equals_incremental_picture() {
    let mut t = term(640, 300);
    let mut d = Display::default();
    t.feed(b"\x1b[1;31mred bold\x1b[0m \x1b[4munder\x1b[0m \x1b[7minverse\x1b[0m\r\n");
    d.apply(&frame(&mut t));
    t.feed("wide: \u{4e2d}\u{6587} box: \u{2500}\u{2502}\u{250c} \u{2588}\r\n".as_bytes());
    d.apply(&frame(&mut t));
    for i in 0..40 {
        t.feed(format!("\x1b[38;5;{}mcolor {i}\x1b[0m\r\n", 16 + i * 5).as_bytes());
        if i % 7 == 0 {
            d.apply(&frame(&mut t));
        }
    }
    t.feed(b"\x1b[44m   blue   \x1b[0m$ ");
    d.apply(&frame(&mut t));
    assert_eq!(full(&t).screen(), d.screen());
    // A joiner keeps following the broadcast stream correctly.
    let mut joiner = full(&t);
    t.feed(b"\r\nmore \x1b[32mgreen\x1b[0m text\r\n$ ");
    let out = frame(&mut t);
    d.apply(&out);
    joiner.apply(&out);
    assert_eq!(joiner.screen(), d.screen());
    assert_eq!(full(&t).screen(), d.screen());
}

#[test]
fn glyph_cache_eviction_stays_correct() {
    let mut t = term(800, 400);
    let mut d = Display::default();
    // 26 letters x 100 colors = 2600 distinct glyphs > 2048 slots.
    for c in 0..100 {
        let mut s = format!("\x1b[38;5;{}m", 16 + c);
        for l in b'a'..=b'z' {
            s.push(char::from(l));
        }
        s.push_str("\x1b[0m\r\n");
        t.feed(s.as_bytes());
        d.apply(&frame(&mut t));
    }
    assert!(t.cached_glyphs() <= guacr_terminal::GLYPH_CACHE_SLOTS);
    assert_eq!(full(&t).screen(), d.screen());
    t.feed(b"plain text\r\n");
    d.apply(&frame(&mut t));
    let (_, ch) = t.cell_size();
    let _ = ch;
    let rows = u32::from(t.rows());
    assert_eq!(read_row(&t, &d, rows - 2, FG, BG), "plain text");
}

#[test]
fn scrollback_view_and_selection() {
    let mut t = term(400, 200);
    let mut d = Display::default();
    for i in 0..50 {
        t.feed(format!("row {i}\r\n").as_bytes());
    }
    d.apply(&frame(&mut t));
    let rows = u32::from(t.rows());
    // Wheel up: 3 lines of history.
    t.mouse(10, 10, 8);
    t.mouse(10, 10, 0);
    assert!(t.has_damage());
    d.apply(&frame(&mut t));
    let top = 50 - rows as usize - 2; // last line is the empty prompt line
    assert_eq!(read_row(&t, &d, 0, FG, BG), format!("row {}", top));
    // Wheel down back to the bottom.
    t.mouse(10, 10, 16);
    t.mouse(10, 10, 0);
    d.apply(&frame(&mut t));
    assert_eq!(read_row(&t, &d, 0, FG, BG), format!("row {}", top + 3));
    // Drag-select the first row's text.
    let (cw, ch) = t.cell_size();
    let y = i32::try_from(ch / 2).unwrap();
    let cw = i32::try_from(cw).unwrap();
    assert_eq!(t.mouse(1, y, 1).clipboard, None);
    t.mouse(cw * 5 + cw / 2 + 1, y, 1);
    let out = frame(&mut t);
    d.apply(&out);
    // Highlighted cells are inverted: background turns into the foreground color.
    assert_eq!(d.screen().get(0, 0), [FG.r, FG.g, FG.b, 255]);
    let r = t.mouse(cw * 5 + cw / 2 + 1, y, 0);
    assert_eq!(
        r.clipboard.as_deref(),
        Some(format!("row {}", top + 3).as_str())
    );
}

#[test]
fn resize_resizes_layer() {
    let mut t = term(400, 200);
    let mut d = Display::default();
    t.feed(b"hello");
    d.apply(&frame(&mut t));
    assert_eq!((d.screen().w, d.screen().h), (400, 200));
    let (cols, rows) = t.resize(600, 300);
    let (cw, ch) = t.cell_size();
    assert_eq!(u32::from(cols), 600 / cw);
    assert_eq!(u32::from(rows), 300 / ch);
    d.apply(&frame(&mut t));
    assert_eq!((d.screen().w, d.screen().h), (600, 300));
    assert_eq!(read_row(&t, &d, 0, FG, BG), "hello");
    assert_eq!(full(&t).screen(), d.screen());
}

#[test]
fn color_scheme_change_redraws() {
    let mut t = term(400, 200);
    let mut d = Display::default();
    t.feed(b"abc");
    d.apply(&frame(&mut t));
    t.set_color_scheme("black-white");
    d.apply(&frame(&mut t));
    let fg = Rgb::new(0, 0, 0);
    let bg = Rgb::new(255, 255, 255);
    assert_eq!(read_row(&t, &d, 0, fg, bg), "abc");
    assert_eq!(d.screen().get(399, 199), [255, 255, 255, 255]);
    t.set_font(None, Some(16.0)).unwrap();
    d.apply(&frame(&mut t));
    assert_eq!(read_row(&t, &d, 0, fg, bg), "abc");
    assert_eq!(full(&t).screen(), d.screen());
}

#[test]
fn replies_title_paste_and_modes() {
    let mut t = term(400, 200);
    t.feed(b"\x1b[6n");
    assert_eq!(t.take_replies(), b"\x1b[1;1R");
    t.feed(b"\x1b[c");
    assert!(t.take_replies().starts_with(b"\x1b[?"));
    assert!(t.take_replies().is_empty());
    t.feed(b"\x1b]0;my title\x07");
    assert_eq!(t.title(), Some("my title"));

    let mut out = Vec::new();
    t.paste("a\nb", &mut out);
    assert_eq!(out, b"a\rb");
    t.feed(b"\x1b[?2004h");
    out.clear();
    t.paste("x\x1b[201~y", &mut out);
    assert_eq!(out, b"\x1b[200~x[201~y\x1b[201~");

    out.clear();
    t.key(0xff52, true, &mut out);
    assert_eq!(out, b"\x1b[A");
    t.feed(b"\x1b[?1h");
    out.clear();
    t.key(0xff52, true, &mut out);
    t.key(0xff52, false, &mut out);
    assert_eq!(out, b"\x1bOA");
    // Ctrl+C via tracked modifier state.
    out.clear();
    t.key(0xffe3, true, &mut out);
    t.key(0x63, true, &mut out);
    t.key(0x63, false, &mut out);
    t.key(0xffe3, false, &mut out);
    t.key(0x63, true, &mut out);
    assert_eq!(out, b"\x03c");
}

#[test]
fn read_only_and_disabled_clipboard() {
    let mut t = Terminal::new(TerminalConfig {
        width: 400,
        height: 200,
        read_only: true,
        disable_copy: true,
        ..TerminalConfig::default()
    })
    .unwrap();
    let mut out = Vec::new();
    t.key(0x61, true, &mut out);
    t.paste("hello", &mut out);
    assert!(out.is_empty());
    t.feed(b"some text");
    let (cw, ch) = t.cell_size();
    let y = i32::try_from(ch / 2).unwrap();
    t.mouse(0, y, 1);
    t.mouse(i32::try_from(cw * 5).unwrap(), y, 1);
    assert_eq!(
        t.mouse(i32::try_from(cw * 5).unwrap(), y, 0).clipboard,
        None
    );
}

#[test]
fn idle_session_memory_is_small() {
    let mut t = term(1024, 768);
    t.feed(b"Linux host 6.1.0 #1 SMP x86_64\r\n\r\nLast login: Mon Jan 1 00:00:00 2026\r\nuser@host:~$ ");
    frame(&mut t);
    let bytes = t.heap_bytes();
    assert!(bytes < 1024 * 1024, "idle session uses {bytes} bytes");
}

#[test]
fn synchronized_update_holds_output() {
    let mut t = term(400, 200);
    let mut d = Display::default();
    d.apply(&frame(&mut t));
    t.feed(b"\x1b[?2026hhidden");
    assert!(frame(&mut t).is_empty());
    t.feed(b" until done\x1b[?2026l");
    d.apply(&frame(&mut t));
    assert_eq!(read_row(&t, &d, 0, FG, BG), "hidden until done");
    // A synchronized update that never ends is flushed after a few frames.
    t.feed(b"\r\n\x1b[?2026hstuck");
    let mut shown = false;
    for _ in 0..6 {
        d.apply(&frame(&mut t));
        shown |= read_row(&t, &d, 1, FG, BG) == "stuck";
    }
    assert!(shown);
}

#[test]
fn wide_and_colored_glyphs_are_exact() {
    let mut t = term(400, 200);
    let mut d = Display::default();
    t.feed("\u{4e2d}\x1b[1;32mB\x1b[0m\x1b[4mu".as_bytes());
    d.apply(&frame(&mut t));
    let (cw, ch) = t.cell_size();
    let cell = |col: u32| d.screen().region(col * cw, 0, cw, ch).concat();
    let key = |ch: char, fg: Rgb, attrs: u8| GlyphKey {
        ch,
        fg,
        bg: BG,
        attrs,
    };
    let fonts = t.fonts();
    assert_eq!(
        cell(0),
        fonts.glyph_rgb(&key('\u{4e2d}', FG, GlyphKey::WIDE_LEFT))
    );
    assert_eq!(
        cell(1),
        fonts.glyph_rgb(&key('\u{4e2d}', FG, GlyphKey::WIDE_RIGHT))
    );
    // Bold green is guacd's bright green (color 10).
    let green = Rgb::new(0x67, 0xff, 0x67);
    assert_eq!(cell(2), fonts.glyph_rgb(&key('B', green, GlyphKey::BOLD)));
    assert_eq!(cell(3), fonts.glyph_rgb(&key('u', FG, GlyphKey::UNDERLINE)));
    // The wide glyph really has ink in both halves.
    assert!(cell(0).chunks(3).any(|p| p != [0, 0, 0]));
    assert!(cell(1).chunks(3).any(|p| p != [0, 0, 0]));
}
