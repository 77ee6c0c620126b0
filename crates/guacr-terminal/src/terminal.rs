//! The terminal: emulator + input mapping + renderer, without any I/O.

use std::sync::{Arc, Mutex};

use alacritty_terminal::Term;
use alacritty_terminal::event::{Event, EventListener, WindowSize};
use alacritty_terminal::grid::{Dimensions, Scroll};
use alacritty_terminal::index::{Column, Line, Point, Side};
use alacritty_terminal::selection::{Selection, SelectionType};
use alacritty_terminal::term::cell::{Cell, Flags};
use alacritty_terminal::term::color::Colors;
use alacritty_terminal::term::{Config, TermMode};
use alacritty_terminal::vte::ansi::{
    Color, CursorShape, NamedColor, Processor, Rgb as VteRgb, Timeout,
};

use crate::TerminalError;
use crate::color::{ColorScheme, Rgb};
use crate::font::{FontSet, GlyphKey};
use crate::keys::{self, KeyModes, Modifiers};
use crate::render::{Frame, Renderer};

/// Lines scrolled per mouse wheel step (as guacd).
const WHEEL_SCROLL_LINES: i32 = 3;
/// Frames a synchronized update (DEC mode 2026) may hold back output.
const SYNC_UPDATE_MAX_FRAMES: u8 = 4;

/// Settings of a terminal session (guacd's terminal parameters).
#[derive(Clone, Debug, PartialEq)]
pub struct TerminalConfig {
    /// Font family; `monospace` (the default) uses DejaVu Sans Mono.
    pub font_name: String,
    /// Font size in points.
    pub font_size: f32,
    /// Display resolution of the client.
    pub dpi: u32,
    /// guacd color scheme (`gray-black`, … or `foreground:…;background:…`).
    pub color_scheme: String,
    /// Lines of scrollback history.
    pub scrollback: usize,
    /// Display width in pixels.
    pub width: u32,
    /// Display height in pixels.
    pub height: u32,
    /// Byte sent by BackSpace.
    pub backspace: u8,
    /// Ignore keyboard and paste input.
    pub read_only: bool,
    /// Never hand selected text to the clipboard.
    pub disable_copy: bool,
    /// Ignore pastes.
    pub disable_paste: bool,
}

impl Default for TerminalConfig {
    fn default() -> Self {
        TerminalConfig {
            font_name: "monospace".into(),
            font_size: 12.0,
            dpi: 96,
            color_scheme: String::new(),
            scrollback: 1000,
            width: 1024,
            height: 768,
            backspace: 127,
            read_only: false,
            disable_copy: false,
            disable_paste: false,
        }
    }
}

/// What a mouse event produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MouseResult {
    /// Text selected with the left button, on release (unless copying is disabled).
    pub clipboard: Option<String>,
    /// The middle button was pressed: the driver should paste its clipboard.
    pub paste_requested: bool,
}

/// Collects emulator events (replies, title changes).
#[derive(Clone, Default)]
struct Listener(Arc<Mutex<Vec<Event>>>);

impl EventListener for Listener {
    fn send_event(&self, event: Event) {
        match event {
            Event::PtyWrite(_)
            | Event::Title(_)
            | Event::ResetTitle
            | Event::ColorRequest(..)
            | Event::TextAreaSizeRequest(_) => {
                if let Ok(mut q) = self.0.lock() {
                    q.push(event);
                }
            }
            _ => {}
        }
    }
}

/// Synchronized-update timeout measured in rendered frames (sans-IO).
#[derive(Default)]
struct FrameTimeout {
    active: bool,
}

impl Timeout for FrameTimeout {
    fn set_timeout(&mut self, _duration: std::time::Duration) {
        self.active = true;
    }
    fn clear_timeout(&mut self) {
        self.active = false;
    }
    fn pending_timeout(&self) -> bool {
        self.active
    }
}

struct TermSize {
    cols: usize,
    rows: usize,
}

impl Dimensions for TermSize {
    fn total_lines(&self) -> usize {
        self.rows
    }
    fn screen_lines(&self) -> usize {
        self.rows
    }
    fn columns(&self) -> usize {
        self.cols
    }
}

/// A terminal session: feed it the remote program's output, give it the
/// user's input, and render frames of Guacamole instructions.
pub struct Terminal {
    cfg: TerminalConfig,
    term: Term<Listener>,
    parser: Processor<FrameTimeout>,
    events: Arc<Mutex<Vec<Event>>>,
    fonts: Arc<FontSet>,
    scheme: Box<ColorScheme>,
    renderer: Renderer,
    mods: Modifiers,
    title: Option<String>,
    replies: Vec<u8>,
    damaged: bool,
    sync_frames: u8,
    mouse_mask: i32,
    selecting: bool,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("cols", &self.cols())
            .field("rows", &self.rows())
            .field("fonts", &self.fonts)
            .finish_non_exhaustive()
    }
}

fn grid_size(fonts: &FontSet, width: u32, height: u32) -> (usize, usize) {
    let (cw, ch) = fonts.cell_size();
    let cols = (width / cw).clamp(1, u32::from(u16::MAX));
    let rows = (height / ch).clamp(1, u32::from(u16::MAX));
    (cols as usize, rows as usize)
}

fn vte_rgb(c: Rgb) -> VteRgb {
    VteRgb {
        r: c.r,
        g: c.g,
        b: c.b,
    }
}

impl Terminal {
    pub fn new(cfg: TerminalConfig) -> Result<Terminal, TerminalError> {
        let fonts = FontSet::get(&cfg.font_name, cfg.font_size, cfg.dpi)?;
        let (cols, rows) = grid_size(&fonts, cfg.width, cfg.height);
        let events = Arc::new(Mutex::new(Vec::new()));
        let config = Config {
            scrolling_history: cfg.scrollback,
            ..Config::default()
        };
        let term = Term::new(config, &TermSize { cols, rows }, Listener(events.clone()));
        let (scheme, err) = ColorScheme::parse_lenient(&cfg.color_scheme);
        if let Some(e) = err {
            tracing::warn!(error = %e, "invalid color scheme");
        }
        Ok(Terminal {
            cfg,
            term,
            parser: Processor::new(),
            events,
            fonts,
            scheme: Box::new(scheme),
            renderer: Renderer::new(),
            mods: Modifiers::default(),
            title: None,
            replies: Vec::new(),
            damaged: true,
            sync_frames: 0,
            mouse_mask: 0,
            selecting: false,
        })
    }

    pub fn config(&self) -> &TerminalConfig {
        &self.cfg
    }

    pub fn cols(&self) -> u16 {
        u16::try_from(self.term.columns()).unwrap_or(u16::MAX)
    }

    pub fn rows(&self) -> u16 {
        u16::try_from(self.term.screen_lines()).unwrap_or(u16::MAX)
    }

    /// Cell size in pixels.
    pub fn cell_size(&self) -> (u32, u32) {
        self.fonts.cell_size()
    }

    /// The shared font set in use.
    pub fn fonts(&self) -> &Arc<FontSet> {
        &self.fonts
    }

    /// Current color scheme.
    pub fn color_scheme(&self) -> &ColorScheme {
        &self.scheme
    }

    /// Cell width/height and the foreground mask of `ch` (regular style), for
    /// reading text back from pixels.
    pub fn glyph_mask(&self, ch: char) -> (u32, u32, Vec<bool>) {
        self.fonts.glyph_mask(ch)
    }

    /// Output from the remote program.
    pub fn feed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.parser.advance(&mut self.term, bytes);
        self.damaged = true;
        self.drain_events();
        self.release_spare_history();
        self.clamp_display_offset();
    }

    /// alacritty 0.26 moves the display offset along with line deletions in
    /// a partial scroll region (CSI M, CSI S with DECSTBM) while scrolled
    /// back, without bounding it by the history: keep it valid, else reading
    /// the viewport indexes past the grid.
    fn clamp_display_offset(&mut self) {
        let grid = self.term.grid();
        if grid.display_offset() > grid.history_size() {
            self.term.grid_mut().scroll_display(Scroll::Delta(0));
        }
    }

    /// alacritty grows the scrollback in chunks of 1000 pre-allocated rows
    /// (~2.4 MB at 100 columns) on the first scrolled line; drop the unused
    /// part so memory follows the history actually held.
    fn release_spare_history(&mut self) {
        let grid = self.term.grid();
        if grid.history_size() < self.cfg.scrollback {
            self.term.grid_mut().truncate();
        }
    }

    fn drain_events(&mut self) {
        let events = match self.events.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(_) => return,
        };
        for ev in events {
            match ev {
                Event::PtyWrite(s) => self.replies.extend_from_slice(s.as_bytes()),
                Event::Title(t) => self.title = Some(t),
                Event::ResetTitle => self.title = None,
                Event::ColorRequest(index, format) => {
                    let rgb = self.index_color(index);
                    self.replies
                        .extend_from_slice(format(vte_rgb(rgb)).as_bytes());
                }
                Event::TextAreaSizeRequest(format) => {
                    let (cw, ch) = self.fonts.cell_size();
                    let size = WindowSize {
                        num_lines: self.rows(),
                        num_cols: self.cols(),
                        cell_width: u16::try_from(cw).unwrap_or(u16::MAX),
                        cell_height: u16::try_from(ch).unwrap_or(u16::MAX),
                    };
                    self.replies.extend_from_slice(format(size).as_bytes());
                }
                _ => {}
            }
        }
    }

    /// Bytes the emulator must send upstream (device attribute and status
    /// report answers, color queries, …).
    pub fn take_replies(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.replies)
    }

    fn key_modes(&self) -> KeyModes {
        let mode = self.term.mode();
        KeyModes {
            app_cursor: mode.contains(TermMode::APP_CURSOR),
            app_keypad: mode.contains(TermMode::APP_KEYPAD),
        }
    }

    /// A key event (X11 keysym). Bytes to send upstream are appended to `out`.
    pub fn key(&mut self, keysym: u32, pressed: bool, out: &mut Vec<u8>) {
        if self.mods.update(keysym, pressed) || !pressed || self.cfg.read_only {
            return;
        }
        // Shift+PageUp/PageDown scroll the scrollback.
        if self.mods.shift && !self.mods.ctrl && !self.mods.alt {
            let scroll = match keysym {
                0xff55 => Some(Scroll::PageUp),
                0xff56 => Some(Scroll::PageDown),
                _ => None,
            };
            if let Some(s) = scroll {
                self.scroll(s);
                return;
            }
        }
        let before = out.len();
        keys::key_bytes(keysym, self.mods, self.key_modes(), self.cfg.backspace, out);
        if out.len() > before && self.term.grid().display_offset() != 0 {
            self.scroll(Scroll::Bottom);
        }
    }

    fn scroll(&mut self, s: Scroll) {
        let before = self.term.grid().display_offset();
        self.term.scroll_display(s);
        if self.term.grid().display_offset() != before {
            self.damaged = true;
        }
        self.drain_events();
    }

    fn point_at(&self, x: i32, y: i32) -> (Point, Side) {
        let (cw, ch) = self.fonts.cell_size();
        let cw = i32::try_from(cw).unwrap_or(1).max(1);
        let ch = i32::try_from(ch).unwrap_or(1).max(1);
        let cols = i32::try_from(self.term.columns()).unwrap_or(1);
        let rows = i32::try_from(self.term.screen_lines()).unwrap_or(1);
        let col = (x.max(0) / cw).min(cols - 1);
        let row = (y.max(0) / ch).min(rows - 1);
        let side = if x.max(0) % cw < cw / 2 {
            Side::Left
        } else {
            Side::Right
        };
        let offset = i32::try_from(self.term.grid().display_offset()).unwrap_or(0);
        let col = usize::try_from(col).unwrap_or(0);
        (Point::new(Line(row - offset), Column(col)), side)
    }

    /// A mouse event: wheel scrolls the scrollback, left-drag selects text;
    /// on release the selection is returned for the clipboard.
    pub fn mouse(&mut self, x: i32, y: i32, mask: i32) -> MouseResult {
        let mut result = MouseResult::default();
        let prev = self.mouse_mask;
        self.mouse_mask = mask;
        let pressed = mask & !prev;
        let released = prev & !mask;
        if pressed & 8 != 0 {
            self.scroll(Scroll::Delta(WHEEL_SCROLL_LINES));
        }
        if pressed & 16 != 0 {
            self.scroll(Scroll::Delta(-WHEEL_SCROLL_LINES));
        }
        if pressed & 2 != 0 {
            result.paste_requested = true;
        }
        let (point, side) = self.point_at(x, y);
        if pressed & 1 != 0 {
            if self.term.selection.is_some() {
                self.damaged = true;
            }
            self.term.selection = Some(Selection::new(SelectionType::Simple, point, side));
            self.selecting = true;
        } else if mask & 1 != 0
            && self.selecting
            && let Some(sel) = self.term.selection.as_mut()
        {
            sel.update(point, side);
            self.damaged = true;
        }
        if released & 1 != 0 && self.selecting {
            self.selecting = false;
            let empty = self.term.selection.as_ref().is_none_or(|s| s.is_empty());
            if empty {
                self.term.selection = None;
            } else if let Some(text) = self.term.selection_to_string()
                && !text.is_empty()
                && !self.cfg.disable_copy
            {
                result.clipboard = Some(text);
            }
        }
        result
    }

    /// Text pasted by the user (bracketed if the application asked for it).
    pub fn paste(&mut self, text: &str, out: &mut Vec<u8>) {
        if self.cfg.read_only || self.cfg.disable_paste || text.is_empty() {
            return;
        }
        let normalized = text.replace("\r\n", "\r").replace('\n', "\r");
        if self.term.mode().contains(TermMode::BRACKETED_PASTE) {
            out.extend_from_slice(b"\x1b[200~");
            // Never let pasted text end the bracket early.
            out.extend(normalized.bytes().filter(|&b| b != 0x1b));
            out.extend_from_slice(b"\x1b[201~");
        } else {
            out.extend_from_slice(normalized.as_bytes());
        }
        if self.term.grid().display_offset() != 0 {
            self.scroll(Scroll::Bottom);
        }
    }

    /// New display size in pixels; returns the new (cols, rows).
    pub fn resize(&mut self, width: u32, height: u32) -> (u16, u16) {
        self.cfg.width = width;
        self.cfg.height = height;
        self.apply_size();
        (self.cols(), self.rows())
    }

    fn apply_size(&mut self) {
        let (cols, rows) = grid_size(&self.fonts, self.cfg.width, self.cfg.height);
        if cols != self.term.columns() || rows != self.term.screen_lines() {
            self.term.resize(TermSize { cols, rows });
            self.clamp_display_offset();
        }
        self.damaged = true;
    }

    /// Changes the color scheme at runtime (guacd's `color-scheme` argv).
    pub fn set_color_scheme(&mut self, s: &str) {
        let (scheme, err) = ColorScheme::parse_lenient(s);
        if let Some(e) = err {
            tracing::warn!(error = %e, "invalid color scheme");
        }
        self.cfg.color_scheme = s.to_owned();
        if *self.scheme != scheme {
            *self.scheme = scheme;
            self.renderer.invalidate();
            self.damaged = true;
        }
    }

    /// Changes font name and/or size at runtime (guacd's `font-name` and
    /// `font-size` argv). The grid size may change: check `cols()`/`rows()`.
    pub fn set_font(&mut self, name: Option<&str>, size: Option<f32>) -> Result<(), TerminalError> {
        let name = name.unwrap_or(&self.cfg.font_name).to_owned();
        let size = size.unwrap_or(self.cfg.font_size);
        let fonts = FontSet::get(&name, size, self.cfg.dpi)?;
        self.cfg.font_name = name;
        self.cfg.font_size = size;
        if !Arc::ptr_eq(&fonts, &self.fonts) {
            self.fonts = fonts;
            self.renderer.reset_cache();
            self.apply_size();
        }
        Ok(())
    }

    /// The window title set by the application (OSC 0/2).
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Whether anything may have changed since the last frame.
    pub fn has_damage(&self) -> bool {
        self.damaged
    }

    /// Number of glyphs in this session's client-side cache.
    pub fn cached_glyphs(&self) -> usize {
        self.renderer.cached_glyphs()
    }

    /// Approximate heap bytes of this session (emulator grids, renderer).
    pub fn heap_bytes(&self) -> usize {
        let grid = self.term.grid();
        let cell = std::mem::size_of::<Cell>();
        // Both grids (primary with its allocated history, alternate screen).
        let primary_rows = grid.screen_lines() + grid.history_size();
        let rows = primary_rows + grid.screen_lines();
        rows * (grid.columns() * cell + 32) + self.renderer.heap_bytes()
    }

    /// Instructions for everything that changed since the last frame (the
    /// broadcast stream). The caller adds `sync`.
    pub fn render_frame(&mut self, out: &mut Vec<u8>) {
        let sync_pending = self.parser.sync_timeout().pending_timeout();
        if !self.damaged && !sync_pending {
            return;
        }
        if sync_pending {
            self.sync_frames += 1;
            if self.sync_frames >= SYNC_UPDATE_MAX_FRAMES {
                self.parser.stop_sync(&mut self.term);
                self.drain_events();
                self.release_spare_history();
                self.clamp_display_offset();
                self.sync_frames = 0;
            }
        } else {
            self.sync_frames = 0;
        }
        let target = self.build_target();
        let cols = self.term.columns();
        let rows = self.term.screen_lines();
        let frame = Frame {
            target: &target,
            cols,
            rows,
            size: (self.cfg.width.max(1), self.cfg.height.max(1)),
            bg: self.scheme.background,
        };
        self.renderer.render(&frame, &self.fonts, out);
        self.damaged = false;
    }

    /// Everything a user joining now needs (layer sizes, glyph cache, whole
    /// screen), without changing the broadcast state.
    pub fn render_full(&self, out: &mut Vec<u8>) {
        self.renderer.render_full(&self.fonts, out);
    }

    /// The text currently shown, one line per row (trailing spaces trimmed).
    pub fn screen_text(&self) -> String {
        let cols = self.term.columns();
        let mut lines = vec![String::new(); self.term.screen_lines()];
        let offset = self.term.grid().display_offset();
        for ic in self.term.grid().display_iter() {
            let Ok(row) = usize::try_from(ic.point.line.0 + i32::try_from(offset).unwrap_or(0))
            else {
                continue;
            };
            if let Some(line) = lines.get_mut(row)
                && !ic.cell.flags.contains(Flags::WIDE_CHAR_SPACER)
                && ic.point.column.0 < cols
            {
                line.push(ic.cell.c);
            }
        }
        lines
            .iter()
            .map(|l| l.trim_end())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn index_color(&self, index: usize) -> Rgb {
        if let Some(c) = self.term.colors()[index.min(268)] {
            return Rgb::new(c.r, c.g, c.b);
        }
        match index {
            0..=255 => self.scheme.palette[index],
            256 | 258 | 267 => self.scheme.foreground,
            257 => self.scheme.background,
            259..=266 => self.scheme.palette[index - 259].dim(),
            _ => self.scheme.foreground.dim(),
        }
    }

    fn resolve(&self, color: Color, colors: &Colors, bold: bool) -> Rgb {
        let indexed = |i: usize| -> Rgb {
            let i = if bold && i < 8 { i + 8 } else { i };
            match colors[i] {
                Some(c) => Rgb::new(c.r, c.g, c.b),
                None => self.scheme.palette[i],
            }
        };
        match color {
            Color::Spec(c) => Rgb::new(c.r, c.g, c.b),
            Color::Indexed(i) => indexed(usize::from(i)),
            Color::Named(n) => {
                let idx = n as usize;
                match n {
                    _ if idx < 16 => indexed(idx),
                    NamedColor::Foreground | NamedColor::BrightForeground | NamedColor::Cursor => {
                        colors[NamedColor::Foreground]
                            .map_or(self.scheme.foreground, |c| Rgb::new(c.r, c.g, c.b))
                    }
                    NamedColor::Background => colors[NamedColor::Background]
                        .map_or(self.scheme.background, |c| Rgb::new(c.r, c.g, c.b)),
                    NamedColor::DimForeground => self.scheme.foreground.dim(),
                    _ => self.index_color(idx),
                }
            }
        }
    }

    fn cell_key(&self, cell: &Cell, colors: &Colors, invert: bool) -> GlyphKey {
        let flags = cell.flags;
        let bold = flags.contains(Flags::BOLD);
        let mut fg = self.resolve(cell.fg, colors, bold);
        let mut bg = self.resolve(cell.bg, colors, false);
        if flags.contains(Flags::DIM) {
            fg = fg.dim();
        }
        if flags.contains(Flags::INVERSE) != invert {
            std::mem::swap(&mut fg, &mut bg);
        }
        let mut attrs = 0u8;
        if bold {
            attrs |= GlyphKey::BOLD;
        }
        if flags.contains(Flags::ITALIC) {
            attrs |= GlyphKey::ITALIC;
        }
        if flags.intersects(Flags::ALL_UNDERLINES) {
            attrs |= GlyphKey::UNDERLINE;
        }
        if flags.contains(Flags::STRIKEOUT) {
            attrs |= GlyphKey::STRIKE;
        }
        if flags.contains(Flags::WIDE_CHAR) {
            attrs |= GlyphKey::WIDE_LEFT;
        }
        let mut ch = cell.c;
        if flags.contains(Flags::HIDDEN) || ch.is_control() {
            ch = ' ';
        }
        if flags.intersects(Flags::WIDE_CHAR_SPACER | Flags::LEADING_WIDE_CHAR_SPACER) {
            ch = ' ';
        }
        let lines = attrs & (GlyphKey::UNDERLINE | GlyphKey::STRIKE);
        if (ch == ' ' || fg == bg) && lines == 0 {
            return GlyphKey::blank(bg);
        }
        if ch == ' ' {
            attrs = lines;
        }
        GlyphKey { ch, fg, bg, attrs }
    }

    /// What the screen should show now, one key per cell (row-major).
    fn build_target(&self) -> Vec<GlyphKey> {
        let cols = self.term.columns();
        let rows = self.term.screen_lines();
        let mut target = vec![GlyphKey::blank(self.scheme.background); cols * rows];
        let content = self.term.renderable_content();
        let offset = i32::try_from(content.display_offset).unwrap_or(0);
        let colors = content.colors;
        let selection = content.selection;
        let cursor = content.cursor;
        let cursor_visible = cursor.shape != CursorShape::Hidden;
        let cursor_row = cursor.point.line.0 + offset;
        // Fast path for the common cell: default colors, no attributes.
        let default_fg = self.resolve(Color::Named(NamedColor::Foreground), colors, false);
        let default_bg = self.resolve(Color::Named(NamedColor::Background), colors, false);
        let plain = |cell: &Cell| {
            cell.flags.is_empty()
                && cell.fg == Color::Named(NamedColor::Foreground)
                && cell.bg == Color::Named(NamedColor::Background)
        };
        for ic in content.display_iter {
            let Ok(row) = usize::try_from(ic.point.line.0 + offset) else {
                continue;
            };
            let col = ic.point.column.0;
            if row >= rows || col >= cols {
                continue;
            }
            let selected = selection.is_some_and(|s| s.contains(ic.point));
            let is_cursor = cursor_visible
                && row == usize::try_from(cursor_row).unwrap_or(usize::MAX)
                && (col == cursor.point.column.0
                    || (col == cursor.point.column.0 + 1
                        && ic.cell.flags.contains(Flags::WIDE_CHAR_SPACER)));
            let i = row * cols + col;
            if ic.cell.flags.contains(Flags::WIDE_CHAR_SPACER) && col > 0 {
                let left = target[i - 1];
                if left.attrs & GlyphKey::WIDE_LEFT != 0 {
                    target[i] = GlyphKey {
                        attrs: (left.attrs & !GlyphKey::WIDE_LEFT) | GlyphKey::WIDE_RIGHT,
                        ..left
                    };
                    continue;
                }
            }
            let invert = selected != is_cursor;
            target[i] = if !invert && plain(ic.cell) {
                match ic.cell.c {
                    ' ' => GlyphKey::blank(default_bg),
                    c if c.is_control() || default_fg == default_bg => GlyphKey::blank(default_bg),
                    c => GlyphKey {
                        ch: c,
                        fg: default_fg,
                        bg: default_bg,
                        attrs: 0,
                    },
                }
            } else {
                self.cell_key(ic.cell, colors, invert)
            };
        }
        target
    }
}
