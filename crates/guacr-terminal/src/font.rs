//! Fonts: lookup, cell metrics, rasterization and a shared glyph image cache.
//!
//! A [`FontSet`] is immutable after creation (apart from its internal caches)
//! and shared between all terminals using the same font name, size and DPI
//! through [`FontSet::get`], so per-session memory stays small.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::TerminalError;
use crate::color::Rgb;

/// Style bit: bold face.
pub const STYLE_BOLD: u8 = 1;
/// Style bit: italic/oblique face.
pub const STYLE_ITALIC: u8 = 2;

/// Entries kept in each shared cache before it is cleared.
const SHARED_CACHE_LIMIT: usize = 8192;

/// What a glyph image shows: one cell of one character with resolved colors
/// and attributes. Also the key of the glyph caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GlyphKey {
    pub ch: char,
    pub fg: Rgb,
    pub bg: Rgb,
    pub attrs: u8,
}

impl GlyphKey {
    pub const BOLD: u8 = 1;
    pub const ITALIC: u8 = 2;
    pub const UNDERLINE: u8 = 4;
    pub const STRIKE: u8 = 8;
    /// Left half of a double-width character.
    pub const WIDE_LEFT: u8 = 16;
    /// Right half of a double-width character.
    pub const WIDE_RIGHT: u8 = 32;
    /// Not a glyph: the client's content of this cell is unknown.
    pub const UNKNOWN: u8 = 128;

    /// A blank cell of the given background (normalized form).
    pub const fn blank(bg: Rgb) -> GlyphKey {
        GlyphKey {
            ch: ' ',
            fg: bg,
            bg,
            attrs: 0,
        }
    }

    /// The sentinel for "unknown content".
    pub const fn unknown() -> GlyphKey {
        GlyphKey {
            ch: '\0',
            fg: Rgb::new(0, 0, 0),
            bg: Rgb::new(0, 0, 0),
            attrs: GlyphKey::UNKNOWN,
        }
    }

    /// True when the cell is a solid fill of `bg`.
    pub fn is_blank(&self) -> bool {
        self.ch == ' ' && self.attrs == 0
    }
}

/// (character, style bits, span in cells).
type CoverageKey = (char, u8, u8);

/// One loaded face and where it came from.
struct Face {
    font: fontdue::Font,
}

/// Fonts parsed once per process, keyed by a description of their source.
fn face_cache() -> &'static Mutex<HashMap<String, Arc<Face>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Face>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn system_db() -> &'static fontdb::Database {
    static DB: OnceLock<fontdb::Database> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = fontdb::Database::new();
        db.load_system_fonts();
        db
    })
}

fn parse_face(data: &[u8], index: u32) -> Option<Face> {
    let settings = fontdue::FontSettings {
        collection_index: index,
        scale: 40.0,
        load_substitutions: false,
    };
    fontdue::Font::from_bytes(data, settings)
        .ok()
        .map(|font| Face { font })
}

fn cached_face(key: String, load: impl FnOnce() -> Option<Face>) -> Option<Arc<Face>> {
    if let Ok(cache) = face_cache().lock()
        && let Some(f) = cache.get(&key)
    {
        return Some(f.clone());
    }
    let face = Arc::new(load()?);
    if let Ok(mut cache) = face_cache().lock() {
        cache.insert(key, face.clone());
    }
    Some(face)
}

/// The embedded DejaVu Sans Mono in the given style.
fn embedded_mono(style: u8) -> Option<Arc<Face>> {
    let data: &'static [u8] = match style & (STYLE_BOLD | STYLE_ITALIC) {
        0 => dejavu::sans_mono::regular(),
        STYLE_BOLD => dejavu::sans_mono::bold(),
        STYLE_ITALIC => dejavu::sans_mono::oblique(),
        _ => dejavu::sans_mono::bold_oblique(),
    };
    cached_face(format!("embedded:mono:{style}"), || parse_face(data, 0))
}

/// The embedded DejaVu Sans (regular), the last fallback for symbols.
fn embedded_sans() -> Option<Arc<Face>> {
    cached_face("embedded:sans".into(), || {
        parse_face(dejavu::sans::regular(), 0)
    })
}

/// Looks `family` up among the system fonts. Returns the face and whether it
/// really has the requested style (else the regular face is returned).
fn system_face(family: &str, style: u8) -> Option<(Arc<Face>, bool)> {
    let db = system_db();
    let wanted_family = db
        .faces()
        .flat_map(|f| f.families.iter())
        .find(|(name, _)| name.eq_ignore_ascii_case(family))
        .map(|(name, _)| name.clone())?;
    let families = [fontdb::Family::Name(&wanted_family)];
    let query = fontdb::Query {
        families: &families,
        weight: if style & STYLE_BOLD != 0 {
            fontdb::Weight::BOLD
        } else {
            fontdb::Weight::NORMAL
        },
        stretch: fontdb::Stretch::Normal,
        style: if style & STYLE_ITALIC != 0 {
            fontdb::Style::Oblique
        } else {
            fontdb::Style::Normal
        },
    };
    let id = db.query(&query)?;
    let info = db.face(id)?;
    let exact = (info.weight.0 >= 600) == (style & STYLE_BOLD != 0)
        && (info.style != fontdb::Style::Normal) == (style & STYLE_ITALIC != 0);
    let key = format!("system:{}:{}", info.post_script_name, info.index);
    let face = cached_face(key, || db.with_face_data(id, parse_face).flatten())?;
    Some((face, exact))
}

/// A font at one size and DPI: four styles (loaded lazily), cell metrics, and
/// caches of rasterized coverage and encoded glyph PNGs shared by every
/// terminal using it.
pub struct FontSet {
    name: String,
    size: f32,
    dpi: u32,
    px: f32,
    cell_w: u32,
    cell_h: u32,
    baseline: i32,
    underline_y: u32,
    line_thickness: u32,
    strike_y: u32,
    /// Regular, bold, italic, bold-italic; `bool` = synthesize bold.
    styles: [OnceLock<(Arc<Face>, bool)>; 4],
    system: bool,
    coverage: Mutex<HashMap<CoverageKey, Arc<[u8]>>>,
    pngs: Mutex<HashMap<GlyphKey, Arc<[u8]>>>,
}

impl std::fmt::Debug for FontSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FontSet")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("dpi", &self.dpi)
            .field("cell", &(self.cell_w, self.cell_h))
            .finish()
    }
}

type FontSetKey = (String, u32, u32);

fn fontset_cache() -> &'static Mutex<HashMap<FontSetKey, Weak<FontSet>>> {
    static CACHE: OnceLock<Mutex<HashMap<FontSetKey, Weak<FontSet>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl FontSet {
    /// Returns the shared font set for (name, size in points, dpi), creating it
    /// if no live terminal uses it. Unknown names fall back to the embedded
    /// DejaVu Sans Mono.
    pub fn get(name: &str, size: f32, dpi: u32) -> Result<Arc<FontSet>, TerminalError> {
        if !(size.is_finite() && size > 0.0 && size <= 500.0) {
            return Err(TerminalError::InvalidFontSize(size));
        }
        let dpi = dpi.clamp(24, 1200);
        let key = (name.to_ascii_lowercase(), size.to_bits(), dpi);
        if let Ok(cache) = fontset_cache().lock()
            && let Some(set) = cache.get(&key).and_then(Weak::upgrade)
        {
            return Ok(set);
        }
        let set = Arc::new(FontSet::load(name, size, dpi)?);
        if let Ok(mut cache) = fontset_cache().lock() {
            cache.retain(|_, w| w.strong_count() > 0);
            cache.insert(key, Arc::downgrade(&set));
        }
        Ok(set)
    }

    fn load(name: &str, size: f32, dpi: u32) -> Result<FontSet, TerminalError> {
        let lname = name.trim().to_ascii_lowercase();
        let use_embedded = lname.is_empty() || lname == "monospace" || lname == "mono";
        let (regular, system) = if use_embedded {
            (None, false)
        } else {
            match system_face(name.trim(), 0) {
                Some((f, _)) => (Some(f), true),
                None => {
                    tracing::info!(font = name, "font not found, using DejaVu Sans Mono");
                    (None, false)
                }
            }
        };
        let regular = match regular {
            Some(f) => f,
            None => embedded_mono(0).ok_or(TerminalError::FontUnavailable)?,
        };
        let px = size * dpi as f32 / 72.0;
        let font = &regular.font;
        let lm = font
            .horizontal_line_metrics(px)
            .ok_or(TerminalError::FontUnavailable)?;
        let advance = font.metrics('M', px).advance_width;
        let cell_w = (advance.round() as u32).max(1);
        let cell_h = ((lm.ascent - lm.descent).ceil() as u32).max(1);
        let baseline = (lm.ascent.round() as i32).clamp(1, cell_h as i32);
        let line_thickness = ((px / 14.0).round() as u32).max(1);
        let below = u32::try_from(baseline).unwrap_or(0) + 1;
        let underline_y = below.min(cell_h.saturating_sub(line_thickness));
        let strike_y = u32::try_from(baseline).unwrap_or(0) * 2 / 3;
        let styles: [OnceLock<(Arc<Face>, bool)>; 4] = Default::default();
        let _ = styles[0].set((regular, false));
        Ok(FontSet {
            name: name.to_owned(),
            size,
            dpi,
            px,
            cell_w,
            cell_h,
            baseline,
            underline_y,
            line_thickness,
            strike_y,
            styles,
            system,
            coverage: Mutex::new(HashMap::new()),
            pngs: Mutex::new(HashMap::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in points.
    pub fn size(&self) -> f32 {
        self.size
    }

    pub fn dpi(&self) -> u32 {
        self.dpi
    }

    /// Cell size in pixels.
    pub fn cell_size(&self) -> (u32, u32) {
        (self.cell_w, self.cell_h)
    }

    fn style_face(&self, style: u8) -> Option<&(Arc<Face>, bool)> {
        let idx = usize::from(style & 3);
        if let Some(f) = self.styles[idx].get() {
            return Some(f);
        }
        let loaded = if self.system {
            system_face(&self.name, style).map(|(f, exact)| {
                // Synthesize bold when the family has no bold face.
                let fake_bold = !exact && style & STYLE_BOLD != 0;
                (f, fake_bold)
            })
        } else {
            embedded_mono(style).map(|f| (f, false))
        };
        let loaded = match loaded {
            Some(l) => l,
            None => (self.styles[0].get()?.0.clone(), style & STYLE_BOLD != 0),
        };
        let _ = self.styles[idx].set(loaded);
        self.styles[idx].get()
    }

    /// Coverage (0–255) of `ch` drawn into a box `span` cells wide, one byte
    /// per pixel, row-major, `span * cell_w` by `cell_h`.
    pub fn coverage(&self, ch: char, style: u8, span: u8) -> Arc<[u8]> {
        let key = (ch, style & 3, span);
        if let Ok(cache) = self.coverage.lock()
            && let Some(c) = cache.get(&key)
        {
            return c.clone();
        }
        let cov: Arc<[u8]> = self.rasterize(ch, style & 3, span).into();
        if let Ok(mut cache) = self.coverage.lock() {
            if cache.len() >= SHARED_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, cov.clone());
        }
        cov
    }

    fn rasterize(&self, ch: char, style: u8, span: u8) -> Vec<u8> {
        let span = u32::from(span.max(1));
        let w = (self.cell_w * span) as usize;
        let h = self.cell_h as usize;
        let mut out = vec![0u8; w * h];
        if ch == ' ' || ch == '\0' {
            return out;
        }
        if let Some(block) = block_element(ch) {
            fill_block(&mut out, w, h, block);
            return out;
        }
        let Some((face, fake_bold)) = self.style_face(style) else {
            return out;
        };
        // Fallback chain for characters the face lacks.
        let mut chosen: Option<Arc<Face>> = None;
        if face.font.has_glyph(ch) {
            chosen = Some(face.clone());
        } else {
            for cand in [embedded_mono(style), embedded_sans()]
                .into_iter()
                .flatten()
            {
                if cand.font.has_glyph(ch) {
                    chosen = Some(cand);
                    break;
                }
            }
        }
        let face = chosen.unwrap_or_else(|| face.clone());
        let (m, bitmap) = face.font.rasterize(ch, self.px);
        // Horizontal: centre the advance in the box.
        let box_w = w as f32;
        let x_off = ((box_w - m.advance_width) / 2.0).round().max(0.0) as i32;
        let x0 = x_off + m.xmin;
        let y0 = self.baseline - (m.ymin + m.height as i32);
        for gy in 0..m.height {
            let y = y0 + gy as i32;
            if y < 0 || y >= h as i32 {
                continue;
            }
            for gx in 0..m.width {
                let x = x0 + gx as i32;
                if x < 0 || x >= w as i32 {
                    continue;
                }
                let v = bitmap[gy * m.width + gx];
                let idx = y as usize * w + x as usize;
                out[idx] = out[idx].max(v);
            }
        }
        if *fake_bold {
            for row in out.chunks_mut(w) {
                for x in (1..w).rev() {
                    row[x] = row[x].max(row[x - 1]);
                }
            }
        }
        out
    }

    /// The opaque cell image for `key` as an indexed PNG (shared cache).
    pub fn glyph_png(&self, key: &GlyphKey) -> Arc<[u8]> {
        if let Ok(cache) = self.pngs.lock()
            && let Some(p) = cache.get(key)
        {
            return p.clone();
        }
        let png: Arc<[u8]> = self.encode_png(key).into();
        if let Ok(mut cache) = self.pngs.lock() {
            if cache.len() >= SHARED_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(*key, png.clone());
        }
        png
    }

    /// Quantized fg levels (0–15) of the cell `key`, one per pixel.
    fn levels(&self, key: &GlyphKey) -> Vec<u8> {
        let w = self.cell_w as usize;
        let h = self.cell_h as usize;
        let mut lv = vec![0u8; w * h];
        let style = key.attrs & (GlyphKey::BOLD | GlyphKey::ITALIC);
        let wide = key.attrs & (GlyphKey::WIDE_LEFT | GlyphKey::WIDE_RIGHT) != 0;
        if key.ch != ' ' && key.ch != '\0' {
            let cov = self.coverage(key.ch, style, if wide { 2 } else { 1 });
            let stride = if wide { 2 * w } else { w };
            let xoff = if key.attrs & GlyphKey::WIDE_RIGHT != 0 {
                w
            } else {
                0
            };
            for y in 0..h {
                for x in 0..w {
                    let c = u32::from(cov[y * stride + xoff + x]);
                    lv[y * w + x] = u8::try_from((c * 15 + 127) / 255).unwrap_or(15);
                }
            }
        }
        let t = self.line_thickness as usize;
        let mut hline = |y0: usize| {
            for y in y0..(y0 + t).min(h) {
                lv[y * w..(y + 1) * w].fill(15);
            }
        };
        if key.attrs & GlyphKey::UNDERLINE != 0 {
            hline(self.underline_y as usize);
        }
        if key.attrs & GlyphKey::STRIKE != 0 {
            hline(self.strike_y as usize);
        }
        lv
    }

    /// RGB pixels (3 bytes each) of the cell image for `key`.
    pub fn glyph_rgb(&self, key: &GlyphKey) -> Vec<u8> {
        self.levels(key)
            .iter()
            .flat_map(|&l| {
                let c = key.bg.blend(key.fg, l * 17);
                [c.r, c.g, c.b]
            })
            .collect()
    }

    /// Foreground mask of `ch` (regular style): `true` where the pixel is
    /// closer to the foreground than the background color.
    pub fn glyph_mask(&self, ch: char) -> (u32, u32, Vec<bool>) {
        let key = GlyphKey {
            ch,
            fg: Rgb::new(255, 255, 255),
            bg: Rgb::new(0, 0, 0),
            attrs: 0,
        };
        let mask = self.levels(&key).iter().map(|&l| l >= 8).collect();
        (self.cell_w, self.cell_h, mask)
    }

    fn encode_png(&self, key: &GlyphKey) -> Vec<u8> {
        let levels = self.levels(key);
        let mut used = [false; 16];
        for &l in &levels {
            used[usize::from(l)] = true;
        }
        let mut index_of = [0u8; 16];
        let mut palette = Vec::with_capacity(48);
        let mut n: u8 = 0;
        for (l, u) in used.iter().enumerate() {
            if *u {
                index_of[l] = n;
                n += 1;
                let lvl = u8::try_from(l).unwrap_or(15);
                let c = key.bg.blend(key.fg, lvl * 17);
                palette.extend_from_slice(&[c.r, c.g, c.b]);
            }
        }
        let depth: u8 = match n {
            0..=2 => 1,
            3..=4 => 2,
            _ => 4,
        };
        let w = self.cell_w as usize;
        let per_byte = 8 / usize::from(depth);
        let row_bytes = w.div_ceil(per_byte);
        let mut data = vec![0u8; row_bytes * self.cell_h as usize];
        for (y, row) in levels.chunks(w).enumerate() {
            for (x, &l) in row.iter().enumerate() {
                let v = index_of[usize::from(l)];
                let shift = 8 - usize::from(depth) * (x % per_byte + 1);
                data[y * row_bytes + x / per_byte] |= v << shift;
            }
        }
        let bit_depth = match depth {
            1 => png::BitDepth::One,
            2 => png::BitDepth::Two,
            _ => png::BitDepth::Four,
        };
        let mut best: Option<Vec<u8>> = None;
        for filter in [png::Filter::NoFilter, png::Filter::Up] {
            let mut buf = Vec::with_capacity(256);
            let ok = (|| -> Result<(), png::EncodingError> {
                let mut enc = png::Encoder::new(&mut buf, self.cell_w, self.cell_h);
                enc.set_color(png::ColorType::Indexed);
                enc.set_depth(bit_depth);
                enc.set_palette(palette.clone());
                enc.set_deflate_compression(png::DeflateCompression::Level(9));
                enc.set_filter(filter);
                let mut wr = enc.write_header()?;
                wr.write_image_data(&data)?;
                wr.finish()
            })();
            if ok.is_ok() && best.as_ref().is_none_or(|b| buf.len() < b.len()) {
                best = Some(buf);
            }
        }
        best.unwrap_or_default()
    }
}

/// Block elements drawn geometrically so they tile without gaps:
/// (x0, y0, x1, y1) in eighths of the cell, or a shade level.
enum Block {
    Rect(u32, u32, u32, u32),
    Shade(u8),
}

fn block_element(ch: char) -> Option<Block> {
    Some(match ch {
        '\u{2580}' => Block::Rect(0, 0, 8, 4),
        '\u{2581}'..='\u{2587}' => {
            let n = ch as u32 - 0x2580;
            Block::Rect(0, 8 - n, 8, 8)
        }
        '\u{2588}' => Block::Rect(0, 0, 8, 8),
        '\u{2589}'..='\u{258f}' => {
            let n = 0x2590 - ch as u32;
            Block::Rect(0, 0, n, 8)
        }
        '\u{2590}' => Block::Rect(4, 0, 8, 8),
        '\u{2591}' => Block::Shade(64),
        '\u{2592}' => Block::Shade(128),
        '\u{2593}' => Block::Shade(192),
        '\u{2594}' => Block::Rect(0, 0, 8, 1),
        '\u{2595}' => Block::Rect(7, 0, 8, 8),
        _ => return None,
    })
}

fn fill_block(out: &mut [u8], w: usize, h: usize, block: Block) {
    match block {
        Block::Rect(x0, y0, x1, y1) => {
            let sx = |v: u32| (v as usize * w).div_ceil(8).min(w);
            let sy = |v: u32| (v as usize * h).div_ceil(8).min(h);
            for y in sy(y0)..sy(y1) {
                out[y * w + sx(x0)..y * w + sx(x1)].fill(255);
            }
        }
        Block::Shade(v) => out.fill(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_font_metrics() {
        let f = FontSet::get("monospace", 12.0, 96).unwrap();
        let (w, h) = f.cell_size();
        // DejaVu Sans Mono at 16 px: advance 9.63, ascent+descent 18.6.
        assert_eq!((w, h), (10, 19));
        let again = FontSet::get("monospace", 12.0, 96).unwrap();
        assert!(Arc::ptr_eq(&f, &again));
    }

    #[test]
    fn glyph_png_decodes() {
        let f = FontSet::get("monospace", 12.0, 96).unwrap();
        let key = GlyphKey {
            ch: 'A',
            fg: Rgb::new(200, 100, 50),
            bg: Rgb::new(0, 0, 20),
            attrs: GlyphKey::UNDERLINE,
        };
        let png_bytes = f.glyph_png(&key);
        assert!(png_bytes.len() < 400, "png is {} bytes", png_bytes.len());
        let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes.to_vec()));
        dec.set_transformations(png::Transformations::EXPAND);
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), f.cell_size());
        assert_eq!(&buf[..info.buffer_size()], &f.glyph_rgb(&key)[..]);
        let (_, _, mask) = f.glyph_mask('A');
        assert!(mask.iter().filter(|&&m| m).count() > 10);
        let (_, _, blank) = f.glyph_mask(' ');
        assert!(blank.iter().all(|&m| !m));
    }

    #[test]
    fn unknown_font_falls_back() {
        let f = FontSet::get("No Such Font Family", 12.0, 96).unwrap();
        assert_eq!(f.cell_size(), (10, 19));
        assert!(FontSet::get("monospace", 0.0, 96).is_err());
    }
}
