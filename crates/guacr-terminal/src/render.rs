//! Turning a grid of cells into Guacamole drawing instructions.
//!
//! Every drawing operation uses composite mode 14 (OVER): all images and
//! fills are opaque, and mode 12 (SRC) maps to canvas `copy` in
//! guacamole-common-js, which clears the rest of the layer.
//!
//! The renderer keeps, per session, only a compact record of what every
//! client shows in each cell ([`GlyphKey`], 12 bytes a cell) and the index of
//! the glyph cache held client-side in an off-screen buffer layer. No pixels
//! are stored server-side.
//!
//! A frame is drawn as:
//! 1. a `copy` of layer 0 onto itself when the content scrolled,
//! 2. for every remaining changed cell, the cheapest of: a `rect`+`cfill` of a
//!    run of blank cells, a `copy` of an identical, already correct region of
//!    the screen (rows above, or cells to the left), or a `copy` of the glyph
//!    from the glyph cache (uploaded once as a tiny PNG).

use std::collections::HashMap;

use guacr_protocol::{COMP_OVER, InstructionWriter};

use crate::color::Rgb;
use crate::font::{FontSet, GlyphKey};

/// The off-screen buffer layer holding the glyph cache.
pub const GLYPH_LAYER: i32 = -1;
/// Glyph slots per row of the buffer layer.
const SLOTS_PER_ROW: u32 = 64;
/// Maximum number of cached glyphs per session.
pub const GLYPH_CACHE_SLOTS: usize = 2048;
/// Stream index for broadcast image uploads (odd = broadcast).
const BROADCAST_STREAM: u32 = 1;
/// Stream index for per-user image uploads (even = per user).
const USER_STREAM: u32 = 2;
/// Raw bytes per `blob`, as guacd.
const BLOB_MAX: usize = 6048;
/// How far up to look for identical rows to copy from.
const MAX_ROW_LOOKBACK: usize = 64;
/// How far left to look for identical cells to copy from.
const MAX_COL_LOOKBACK: usize = 16;

#[allow(clippy::too_many_arguments)] // mirrors the instruction's 9 arguments
pub(crate) fn write_copy(
    out: &mut Vec<u8>,
    src: i32,
    sx: u32,
    sy: u32,
    w: u32,
    h: u32,
    dst: i32,
    dx: u32,
    dy: u32,
) {
    InstructionWriter::new(out, "copy")
        .arg(&src)
        .arg(&sx)
        .arg(&sy)
        .arg(&w)
        .arg(&h)
        .arg(&COMP_OVER)
        .arg(&dst)
        .arg(&dx)
        .arg(&dy)
        .finish();
}

pub(crate) fn write_fill(out: &mut Vec<u8>, layer: i32, x: u32, y: u32, w: u32, h: u32, c: Rgb) {
    InstructionWriter::new(out, "rect")
        .arg(&layer)
        .arg(&x)
        .arg(&y)
        .arg(&w)
        .arg(&h)
        .finish();
    InstructionWriter::new(out, "cfill")
        .arg(&COMP_OVER)
        .arg(&layer)
        .arg(&c.r)
        .arg(&c.g)
        .arg(&c.b)
        .arg(&255u8)
        .finish();
}

pub(crate) fn write_size(out: &mut Vec<u8>, layer: i32, w: u32, h: u32) {
    InstructionWriter::new(out, "size")
        .arg(&layer)
        .arg(&w)
        .arg(&h)
        .finish();
}

/// `img` + `blob`s + `end` of a PNG onto `layer` at (x, y).
pub(crate) fn write_png(out: &mut Vec<u8>, stream: u32, layer: i32, x: u32, y: u32, png: &[u8]) {
    InstructionWriter::new(out, "img")
        .arg(&stream)
        .arg(&COMP_OVER)
        .arg(&layer)
        .arg("image/png")
        .arg(&x)
        .arg(&y)
        .finish();
    for chunk in png.chunks(BLOB_MAX) {
        InstructionWriter::new(out, "blob")
            .arg(&stream)
            .arg_base64(chunk)
            .finish();
    }
    InstructionWriter::new(out, "end").arg(&stream).finish();
}

/// The client-side glyph cache index (LRU over a fixed number of slots).
#[derive(Debug, Default)]
pub(crate) struct GlyphCache {
    map: HashMap<GlyphKey, u16>,
    /// Key and last-use tick of each slot.
    slots: Vec<(GlyphKey, u32)>,
    tick: u32,
    /// Slot rows the buffer layer has been sized for.
    sized_rows: u32,
    capacity: usize,
}

impl GlyphCache {
    pub(crate) fn new(capacity: usize) -> GlyphCache {
        GlyphCache {
            capacity: capacity.clamp(1, usize::from(u16::MAX)),
            ..GlyphCache::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn slot_pos(slot: usize, cw: u32, ch: u32) -> (u32, u32) {
        let s = u32::try_from(slot).unwrap_or(0);
        ((s % SLOTS_PER_ROW) * cw, (s / SLOTS_PER_ROW) * ch)
    }

    fn lookup(&self, key: &GlyphKey) -> Option<usize> {
        self.map.get(key).map(|&s| usize::from(s))
    }

    /// Position of `key` in the buffer layer, uploading it if needed.
    fn place(&mut self, key: &GlyphKey, fonts: &FontSet, out: &mut Vec<u8>) -> (u32, u32) {
        let (cw, ch) = fonts.cell_size();
        self.tick = self.tick.wrapping_add(1);
        if let Some(&slot) = self.map.get(key) {
            let slot = usize::from(slot);
            self.slots[slot].1 = self.tick;
            return GlyphCache::slot_pos(slot, cw, ch);
        }
        let slot = if self.slots.len() < self.capacity {
            self.slots.push((*key, self.tick));
            self.slots.len() - 1
        } else {
            let tick = self.tick;
            let victim = self
                .slots
                .iter()
                .enumerate()
                .max_by_key(|(_, (_, used))| tick.wrapping_sub(*used))
                .map_or(0, |(i, _)| i);
            let old = self.slots[victim].0;
            self.map.remove(&old);
            self.slots[victim] = (*key, self.tick);
            victim
        };
        self.map.insert(*key, u16::try_from(slot).unwrap_or(0));
        let needed_rows = u32::try_from(slot).unwrap_or(0) / SLOTS_PER_ROW + 1;
        if needed_rows > self.sized_rows {
            let max_rows = u32::try_from(self.capacity)
                .unwrap_or(u32::MAX)
                .div_ceil(SLOTS_PER_ROW);
            self.sized_rows = needed_rows.next_multiple_of(4).min(max_rows.max(1));
            write_size(out, GLYPH_LAYER, SLOTS_PER_ROW * cw, self.sized_rows * ch);
        }
        let (x, y) = GlyphCache::slot_pos(slot, cw, ch);
        write_png(
            out,
            BROADCAST_STREAM,
            GLYPH_LAYER,
            x,
            y,
            &fonts.glyph_png(key),
        );
        (x, y)
    }
}

/// What was sent to the clients and the cache index: the per-session
/// rendering state.
#[derive(Debug)]
pub(crate) struct Renderer {
    cols: usize,
    rows: usize,
    /// Size of layer 0 as last sent.
    layer_size: Option<(u32, u32)>,
    /// Background the whole layer was last cleared with.
    clear_bg: Rgb,
    /// Client content per cell (row-major); `GlyphKey::unknown()` = unknown.
    state: Vec<GlyphKey>,
    cache: GlyphCache,
}

/// What the screen should show.
pub(crate) struct Frame<'a> {
    /// One key per cell, row-major.
    pub target: &'a [GlyphKey],
    pub cols: usize,
    pub rows: usize,
    /// Size of layer 0 in pixels.
    pub size: (u32, u32),
    /// Default background (margins, clears).
    pub bg: Rgb,
}

/// One drawing decision of [`draw_diff`].
#[derive(Clone, Copy, Debug)]
enum Choice {
    Glyph,
    Fill { w: usize, h: usize },
    CopyUp { k: usize, w: usize, h: usize },
    CopyLeft { dx: usize, w: usize },
}

impl Renderer {
    pub(crate) fn new() -> Renderer {
        Renderer {
            cols: 0,
            rows: 0,
            layer_size: None,
            clear_bg: Rgb::default(),
            state: Vec::new(),
            cache: GlyphCache::new(GLYPH_CACHE_SLOTS),
        }
    }

    /// Forget what the clients show (forces a full redraw next frame).
    pub(crate) fn invalidate(&mut self) {
        self.state.fill(GlyphKey::unknown());
    }

    /// Forget the glyph cache too (font change: slot geometry changes).
    pub(crate) fn reset_cache(&mut self) {
        self.cache = GlyphCache::new(GLYPH_CACHE_SLOTS);
        self.invalidate();
    }

    pub(crate) fn cached_glyphs(&self) -> usize {
        self.cache.len()
    }

    /// Approximate heap bytes held by this renderer.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.state.capacity() * std::mem::size_of::<GlyphKey>()
            + self.cache.slots.capacity() * std::mem::size_of::<(GlyphKey, u32)>()
            + self.cache.map.capacity() * (std::mem::size_of::<(GlyphKey, u16)>() + 1)
    }

    /// Draws what changed between the clients' state and `target`.
    pub(crate) fn render(&mut self, frame: &Frame<'_>, fonts: &FontSet, out: &mut Vec<u8>) {
        let Frame {
            target,
            cols,
            rows,
            size,
            bg,
        } = *frame;
        let (cw, ch) = fonts.cell_size();
        if self.layer_size != Some(size) || self.cols != cols || self.rows != rows {
            if self.layer_size != Some(size) {
                write_size(out, 0, size.0, size.1);
                self.layer_size = Some(size);
            }
            self.cols = cols;
            self.rows = rows;
            self.state = vec![GlyphKey::unknown(); cols * rows];
        }
        if self.clear_bg != bg || self.state.iter().all(|k| k.attrs == GlyphKey::UNKNOWN) {
            // Full clear: the whole layer (margins included) gets the background.
            write_fill(out, 0, 0, 0, size.0, size.1, bg);
            self.clear_bg = bg;
            self.state.fill(GlyphKey::blank(bg));
        }
        if target.len() != cols * rows {
            return;
        }
        let changed_rows = target
            .chunks(cols.max(1))
            .zip(self.state.chunks(cols.max(1)))
            .filter(|(t, s)| t != s)
            .count();
        if changed_rows == 0 {
            return;
        }
        let scroll = if changed_rows > 1 {
            detect_scroll(target, &self.state, cols, rows)
        } else {
            None
        };
        if let Some((shift, first, last)) = scroll {
            let src_row = first as isize + shift;
            let (Ok(src_row), Ok(n), Ok(w)) = (
                u32::try_from(src_row),
                u32::try_from(last - first + 1),
                u32::try_from(cols),
            ) else {
                return;
            };
            let dst_row = u32::try_from(first).unwrap_or(0);
            write_copy(out, 0, 0, src_row * ch, w * cw, n * ch, 0, 0, dst_row * ch);
            let moved: Vec<GlyphKey> = self.state
                [(src_row as usize) * cols..(src_row as usize + last - first + 1) * cols]
                .to_vec();
            self.state[first * cols..(last + 1) * cols].copy_from_slice(&moved);
        }
        let cache = &mut self.cache;
        draw_diff(
            target,
            &mut self.state,
            cols,
            rows,
            (cw, ch),
            out,
            &mut |key, x, y, out| {
                let (sx, sy) = cache.place(key, fonts, out);
                write_copy(out, GLYPH_LAYER, sx, sy, cw, ch, 0, x, y);
            },
        );
    }

    /// Everything a newly joined client needs to show the current state and
    /// follow later broadcast frames: layer sizes, every cached glyph, and the
    /// screen exactly as the other clients have it.
    pub(crate) fn render_full(&self, fonts: &FontSet, out: &mut Vec<u8>) {
        let Some((w, h)) = self.layer_size else {
            return;
        };
        let (cw, ch) = fonts.cell_size();
        write_size(out, 0, w, h);
        if self.cache.sized_rows > 0 {
            write_size(
                out,
                GLYPH_LAYER,
                SLOTS_PER_ROW * cw,
                self.cache.sized_rows * ch,
            );
            for (slot, (key, _)) in self.cache.slots.iter().enumerate() {
                let (x, y) = GlyphCache::slot_pos(slot, cw, ch);
                write_png(out, USER_STREAM, GLYPH_LAYER, x, y, &fonts.glyph_png(key));
            }
        }
        write_fill(out, 0, 0, 0, w, h, self.clear_bg);
        let mut fresh = vec![GlyphKey::blank(self.clear_bg); self.state.len()];
        let cache = &self.cache;
        draw_diff(
            &self.state,
            &mut fresh,
            self.cols,
            self.rows,
            (cw, ch),
            out,
            &mut |key, x, y, out| match cache.lookup(key) {
                Some(slot) => {
                    let (sx, sy) = GlyphCache::slot_pos(slot, cw, ch);
                    write_copy(out, GLYPH_LAYER, sx, sy, cw, ch, 0, x, y);
                }
                None => write_png(out, USER_STREAM, 0, x, y, &fonts.glyph_png(key)),
            },
        );
    }
}

fn row_hashes(cells: &[GlyphKey], cols: usize) -> Vec<u64> {
    cells
        .chunks(cols.max(1))
        .map(|row| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for k in row {
                let v = u64::from(u32::from(k.ch))
                    ^ (u64::from(k.fg.r) << 21 | u64::from(k.fg.g) << 29 | u64::from(k.fg.b) << 37)
                    ^ (u64::from(k.bg.r) << 45 | u64::from(k.bg.g) << 53)
                    ^ (u64::from(k.bg.b) << 13 | u64::from(k.attrs) << 5);
                h = (h ^ v).wrapping_mul(0x0100_0000_01b3);
            }
            h
        })
        .collect()
}

/// Finds a vertical shift of the clients' content that makes many rows
/// right: returns (shift, first, last) meaning target rows `first..=last`
/// equal (mostly) state rows `first+shift..=last+shift`.
fn detect_scroll(
    target: &[GlyphKey],
    state: &[GlyphKey],
    cols: usize,
    rows: usize,
) -> Option<(isize, usize, usize)> {
    if rows < 2 {
        return None;
    }
    let ht = row_hashes(target, cols);
    let hs = row_hashes(state, cols);
    let eq = |r: usize, sr: usize| {
        ht[r] == hs[sr] && target[r * cols..(r + 1) * cols] == state[sr * cols..(sr + 1) * cols]
    };
    // Weight of a row: its non-blank cells (blank rows match trivially).
    let weight: Vec<usize> = (0..rows)
        .map(|r| {
            target[r * cols..(r + 1) * cols]
                .iter()
                .filter(|k| !k.is_blank())
                .count()
        })
        .collect();
    let already: Vec<bool> = (0..rows).map(|r| eq(r, r)).collect();
    if already.iter().all(|&a| a) {
        return None;
    }
    let mut best: Option<(isize, usize, usize, usize)> = None;
    let irows = isize::try_from(rows).ok()?;
    for shift in (1 - irows)..irows {
        if shift == 0 {
            continue;
        }
        let lo = usize::try_from((-shift).max(0)).ok()?;
        let hi = usize::try_from((irows - shift).min(irows)).ok()?;
        let mut first = None;
        let mut last = 0;
        let mut gain = 0usize;
        for r in lo..hi {
            let sr = usize::try_from(r as isize + shift).ok()?;
            if ht[r] == hs[sr] && weight[r] > 0 && !already[r] && eq(r, sr) {
                gain += weight[r];
                first.get_or_insert(r);
                last = r;
            }
        }
        let Some(first) = first else { continue };
        // Rows in the copied band that were right and would be broken.
        let mut loss = 0usize;
        for r in first..=last {
            let sr = usize::try_from(r as isize + shift).ok()?;
            if already[r] && !(ht[r] == hs[sr] && eq(r, sr)) {
                loss += weight[r] + 1;
            }
        }
        if gain > loss + 2 && best.is_none_or(|b| gain - loss > b.3) {
            best = Some((shift, first, last, gain - loss));
        }
    }
    best.map(|(s, f, l, _)| (s, f, l))
}

/// Draws one cell's glyph at a pixel position.
type GlyphDrawer<'a> = &'a mut dyn FnMut(&GlyphKey, u32, u32, &mut Vec<u8>);

/// Emits the instructions that turn `state` into `target`, updating `state`.
/// `glyph` draws one cell's glyph at a pixel position.
fn draw_diff(
    target: &[GlyphKey],
    state: &mut [GlyphKey],
    cols: usize,
    rows: usize,
    (cw, ch): (u32, u32),
    out: &mut Vec<u8>,
    glyph: GlyphDrawer<'_>,
) {
    let n = cols * rows;
    if target.len() != n || state.len() != n {
        return;
    }
    let px = |c: usize| u32::try_from(c).unwrap_or(0) * cw;
    let py = |r: usize| u32::try_from(r).unwrap_or(0) * ch;
    let mut done: Vec<bool> = target
        .iter()
        .zip(state.iter())
        .map(|(t, s)| t == s)
        .collect();
    let t = |r: usize, c: usize| &target[r * cols + c];
    for r in 0..rows {
        for c in 0..cols {
            let i = r * cols + c;
            if done[i] {
                continue;
            }
            let cell = target[i];
            let pending = |done: &[bool], row: usize, from: usize, to: usize| {
                done[row * cols + from..row * cols + to]
                    .iter()
                    .filter(|d| !**d)
                    .count()
            };
            let mut best = Choice::Glyph;
            let mut best_score = 1usize;
            if cell.is_blank() {
                let mut e = c;
                let mut last = c;
                while e < cols && *t(r, e) == cell {
                    if !done[r * cols + e] {
                        last = e;
                    }
                    e += 1;
                }
                let e = last + 1;
                let mut total = pending(&done, r, c, e);
                let mut h = 1;
                let mut rr = r + 1;
                while rr < rows && (c..e).all(|x| *t(rr, x) == cell) {
                    let p = pending(&done, rr, c, e);
                    if p > 0 {
                        total += p;
                        h = rr - r + 1;
                    }
                    rr += 1;
                }
                best = Choice::Fill { w: e - c, h };
                best_score = total;
            }
            for k in 1..=r.min(MAX_ROW_LOOKBACK) {
                let s = r - k;
                if *t(s, c) != cell {
                    continue;
                }
                let mut e = c;
                let mut last = c;
                while e < cols && t(s, e) == t(r, e) {
                    if !done[r * cols + e] {
                        last = e;
                    }
                    e += 1;
                }
                let e = last + 1;
                let mut total = pending(&done, r, c, e);
                let mut h = 1;
                let mut j = 1;
                while j < k && r + j < rows && (c..e).all(|x| t(r + j, x) == t(r + j - k, x)) {
                    let p = pending(&done, r + j, c, e);
                    if p > 0 {
                        total += p;
                        h = j + 1;
                    }
                    j += 1;
                }
                if total > best_score {
                    best = Choice::CopyUp { k, w: e - c, h };
                    best_score = total;
                }
            }
            for dx in 1..=c.min(MAX_COL_LOOKBACK) {
                if target[i - dx] != cell {
                    continue;
                }
                let mut len = 0;
                let mut last = 0;
                while len < dx && c + len < cols && target[i - dx + len] == target[i + len] {
                    if !done[i + len] {
                        last = len;
                    }
                    len += 1;
                }
                let w = last + 1;
                let total = pending(&done, r, c, c + w);
                if total > best_score {
                    best = Choice::CopyLeft { dx, w };
                    best_score = total;
                }
            }
            let (w, h) = match best {
                Choice::Glyph => {
                    glyph(&cell, px(c), py(r), out);
                    (1, 1)
                }
                Choice::Fill { w, h } => {
                    write_fill(out, 0, px(c), py(r), px(w), py(h), cell.bg);
                    (w, h)
                }
                Choice::CopyUp { k, w, h } => {
                    write_copy(out, 0, px(c), py(r - k), px(w), py(h), 0, px(c), py(r));
                    (w, h)
                }
                Choice::CopyLeft { dx, w } => {
                    write_copy(out, 0, px(c - dx), py(r), px(w), ch, 0, px(c), py(r));
                    (w, 1)
                }
            };
            for rr in r..r + h {
                for x in c..c + w {
                    let j = rr * cols + x;
                    state[j] = target[j];
                    done[j] = true;
                }
            }
        }
    }
}
