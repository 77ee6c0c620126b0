//! Choosing and running the encoding of one region: `cfill`, PNG (palette or
//! RGB), lossless WebP (many colours, when the client decodes it) or JPEG.

use crate::framebuffer::Framebuffer;
use crate::{Rect, split_rgb};

/// Regions with more distinct colours than this are "photographic".
pub(crate) const MAX_PALETTE: usize = 256;
/// Smallest region sent as JPEG (smaller ones compress fine as PNG and a
/// JPEG header costs ~600 bytes).
pub(crate) const JPEG_MIN_AREA: u64 = 64 * 64;
/// Regions larger than this are cut into horizontal bands encoded in parallel.
pub(crate) const BAND_PIXELS: u64 = 192 * 1024;
/// RGB regions up to this size are compressed with zlib, larger ones with
/// fdeflate's fast mode.
const SMALL_RGB: u64 = 64 * 1024;

/// How a region may be encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opts {
    /// JPEG allowed (announced, not lossless, not a lossless refinement).
    pub jpeg: bool,
    pub quality: u8,
    /// Lossless WebP announced: used instead of RGB PNG for regions with
    /// more than [`MAX_PALETTE`] colours (0.57–0.89× the bytes of PNG on
    /// antialiased text and UI screens, 2–3× faster; palette PNG stays
    /// smaller for few colours).
    pub webp: bool,
}

/// The encoded form of a region.
#[derive(Debug)]
pub(crate) enum Kind {
    Fill(u32),
    Png(Vec<u8>),
    Webp(Vec<u8>),
    Jpeg(Vec<u8>),
}

#[derive(Debug)]
pub(crate) struct Piece {
    pub rect: Rect,
    pub kind: Kind,
}

/// Cuts a large rectangle into bands (multiples of 16 rows, so JPEG blocks
/// align) of at most about [`BAND_PIXELS`] pixels.
pub(crate) fn split_bands(r: Rect, out: &mut Vec<Rect>) {
    if r.area() <= BAND_PIXELS || r.height <= 16 {
        out.push(r);
        return;
    }
    let rows = ((BAND_PIXELS / u64::from(r.width.max(1))) as u32 / 16 * 16).max(16);
    let mut y = r.y;
    while y < r.bottom() {
        let h = rows.min(r.bottom() - y);
        out.push(Rect::new(r.x, y, r.width, h));
        y += h;
    }
}

/// A tiny open-addressing colour → index table (at most [`MAX_PALETTE`]).
struct Palette {
    keys: [u32; 1024],
    idx: [u16; 1024],
    colors: Vec<u32>,
}

const EMPTY: u32 = u32::MAX;

impl Palette {
    fn new() -> Box<Palette> {
        Box::new(Palette {
            keys: [EMPTY; 1024],
            idx: [0; 1024],
            colors: Vec::with_capacity(MAX_PALETTE),
        })
    }

    #[inline]
    fn slot(c: u32) -> usize {
        (c.wrapping_mul(0x9E37_79B1) >> 22) as usize
    }

    /// Index of `c`, inserting it; `None` once the palette is full.
    #[inline]
    fn index(&mut self, c: u32) -> Option<u16> {
        let mut s = Self::slot(c);
        loop {
            let k = self.keys[s];
            if k == c {
                return Some(self.idx[s]);
            }
            if k == EMPTY {
                if self.colors.len() >= MAX_PALETTE {
                    return None;
                }
                let i = self.colors.len() as u16;
                self.keys[s] = c;
                self.idx[s] = i;
                self.colors.push(c);
                return Some(i);
            }
            s = (s + 1) & 1023;
        }
    }
}

/// Scans the region: its palette if it has at most [`MAX_PALETTE`] colours.
fn analyze(fb: &Framebuffer, r: Rect) -> Option<Box<Palette>> {
    let mut pal = Palette::new();
    let mut last = EMPTY;
    for y in r.y..r.bottom() {
        for &p in fb.row(r.x, y, r.width) {
            if p != last {
                pal.index(p)?;
                last = p;
            }
        }
    }
    Some(pal)
}

/// Encodes one region of `fb`.
pub(crate) fn encode_region(fb: &Framebuffer, r: Rect, opts: Opts) -> Piece {
    let kind = match analyze(fb, r) {
        Some(pal) if pal.colors.len() == 1 => Kind::Fill(pal.colors[0]),
        Some(pal) => Kind::Png(png_indexed(fb, r, pal)),
        None if opts.jpeg && r.area() >= JPEG_MIN_AREA && r.width >= 16 && r.height >= 16 => {
            match jpeg(fb, r, opts.quality) {
                Some(j) => Kind::Jpeg(j),
                None => many_colours(fb, r, opts.webp),
            }
        }
        None => many_colours(fb, r, opts.webp),
    };
    Piece { rect: r, kind }
}

/// Encodes a region as PNG whatever its content (no `cfill`, no JPEG).
pub(crate) fn encode_png(fb: &Framebuffer, r: Rect) -> Vec<u8> {
    match analyze(fb, r) {
        Some(pal) => png_indexed(fb, r, pal),
        None => png_rgb(fb, r),
    }
}

/// Encodes a region losslessly (a refinement of JPEG areas): palette PNG,
/// else WebP if allowed, else RGB PNG.
pub(crate) fn encode_lossless(fb: &Framebuffer, r: Rect, webp: bool) -> Kind {
    match analyze(fb, r) {
        Some(pal) => Kind::Png(png_indexed(fb, r, pal)),
        None => many_colours(fb, r, webp),
    }
}

/// A region with more than [`MAX_PALETTE`] colours, losslessly.
fn many_colours(fb: &Framebuffer, r: Rect, webp: bool) -> Kind {
    if webp && let Some(w) = webp_lossless(fb, r) {
        return Kind::Webp(w);
    }
    Kind::Png(png_rgb(fb, r))
}

/// Lossless WebP of a region (`None` if the encoder refuses it, e.g. a
/// side over 16384: the caller sends PNG).
fn webp_lossless(fb: &Framebuffer, r: Rect) -> Option<Vec<u8>> {
    if r.width == 0 || r.height == 0 || r.width > 16384 || r.height > 16384 {
        return None;
    }
    let data = rgb_bytes(fb, r);
    let mut buf = Vec::with_capacity(data.len() / 4 + 128);
    image_webp::WebPEncoder::new(&mut buf)
        .encode(&data, r.width, r.height, image_webp::ColorType::Rgb8)
        .ok()?;
    Some(buf)
}

/// The region as packed R, G, B bytes.
fn rgb_bytes(fb: &Framebuffer, r: Rect) -> Vec<u8> {
    let mut data = Vec::with_capacity(r.area() as usize * 3);
    for row in r.y..r.bottom() {
        for &p in fb.row(r.x, row, r.width) {
            let (r, g, b) = split_rgb(p);
            data.extend_from_slice(&[r, g, b]);
        }
    }
    data
}

fn png_encoder(
    buf: &mut Vec<u8>,
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    filter: png::Filter,
) -> png::Encoder<'_, &mut Vec<u8>> {
    let mut enc = png::Encoder::new(buf, w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    enc.set_compression(png::Compression::Fast);
    enc.set_filter(filter);
    enc
}

fn finish_png(enc: png::Encoder<'_, &mut Vec<u8>>, data: &[u8]) -> Result<(), png::EncodingError> {
    let mut w = enc.write_header()?;
    w.write_image_data(data)?;
    w.finish()
}

fn png_indexed(fb: &Framebuffer, r: Rect, pal: Box<Palette>) -> Vec<u8> {
    // zlib level 3 makes palette images ~2.8x smaller than fdeflate's
    // ultra-fast mode (text strips: 4.9 vs 13.7 KB) for ~0.35 ms per
    // 1920x17 strip.
    png_indexed_with(
        fb,
        r,
        pal,
        png::DeflateCompression::Level(3),
        png::Filter::NoFilter,
    )
}

fn png_indexed_with(
    fb: &Framebuffer,
    r: Rect,
    mut pal: Box<Palette>,
    compression: png::DeflateCompression,
    filter: png::Filter,
) -> Vec<u8> {
    let n = pal.colors.len();
    let bits: u32 = match n {
        0..=2 => 1,
        3..=4 => 2,
        5..=16 => 4,
        _ => 8,
    };
    let per_byte = (8 / bits) as usize;
    let row_bytes = (r.width as usize).div_ceil(per_byte);
    let mut data = vec![0u8; row_bytes * r.height as usize];
    for (row, line) in (r.y..r.bottom()).zip(data.chunks_exact_mut(row_bytes)) {
        let px = fb.row(r.x, row, r.width);
        if bits == 8 {
            for (d, &p) in line.iter_mut().zip(px) {
                *d = pal.index(p).unwrap_or(0) as u8;
            }
        } else {
            for (i, &p) in px.iter().enumerate() {
                let v = pal.index(p).unwrap_or(0) as u8;
                let shift = 8 - bits as usize * (i % per_byte + 1);
                line[i / per_byte] |= v << shift;
            }
        }
    }
    let mut palette = Vec::with_capacity(n * 3);
    for &c in &pal.colors {
        let (r, g, b) = split_rgb(c);
        palette.extend_from_slice(&[r, g, b]);
    }
    let depth = match bits {
        1 => png::BitDepth::One,
        2 => png::BitDepth::Two,
        4 => png::BitDepth::Four,
        _ => png::BitDepth::Eight,
    };
    let mut buf = Vec::with_capacity(data.len() / 4 + 128);
    let mut enc = png_encoder(
        &mut buf,
        r.width,
        r.height,
        png::ColorType::Indexed,
        depth,
        filter,
    );
    enc.set_deflate_compression(compression);
    enc.set_palette(palette);
    if finish_png(enc, &data).is_err() {
        // Cannot happen for consistent sizes; fall back to RGB.
        return png_rgb(fb, r);
    }
    buf
}

fn png_rgb(fb: &Framebuffer, r: Rect) -> Vec<u8> {
    let data = rgb_bytes(fb, r);
    let mut buf = Vec::with_capacity(data.len() / 2 + 128);
    let mut enc = png_encoder(
        &mut buf,
        r.width,
        r.height,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        png::Filter::Up,
    );
    if r.area() <= SMALL_RGB {
        // Small many-colour areas (icons, gradients): compress well.
        enc.set_deflate_compression(png::DeflateCompression::Level(3));
        enc.set_filter(png::Filter::Adaptive);
    }
    if finish_png(enc, &data).is_err() {
        buf.clear();
    }
    buf
}

/// PNG of straight-alpha RGBA pixels (cursor images).
pub(crate) fn png_rgba(w: u32, h: u32, rgba: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let enc = png_encoder(
        &mut buf,
        w,
        h,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        png::Filter::NoFilter,
    );
    if finish_png(enc, rgba).is_err() {
        buf.clear();
    }
    buf
}

fn jpeg(fb: &Framebuffer, r: Rect, quality: u8) -> Option<Vec<u8>> {
    let mut data = Vec::with_capacity(r.area() as usize * 4);
    for row in r.y..r.bottom() {
        for &p in fb.row(r.x, row, r.width) {
            data.extend_from_slice(&p.to_le_bytes());
        }
    }
    let w = u16::try_from(r.width).ok()?;
    let h = u16::try_from(r.height).ok()?;
    let mut buf = Vec::with_capacity(data.len() / 8 + 1024);
    let mut enc = jpeg_encoder::Encoder::new(&mut buf, quality.clamp(1, 100));
    // 4:2:0 at every quality (as libjpeg, which guacd uses).
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode(&data, w, h, jpeg_encoder::ColorType::Bgra)
        .ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_exactly() {
        let r = Rect::new(3, 5, 1920, 1080);
        let mut v = Vec::new();
        split_bands(r, &mut v);
        assert!(v.len() > 1);
        assert_eq!(v.iter().map(Rect::area).sum::<u64>(), r.area());
        assert!(
            v.iter()
                .all(|b| b.area() <= BAND_PIXELS && b.x == 3 && b.width == 1920)
        );
        assert_eq!(v[0].y, 5);
        assert_eq!(v.last().map(Rect::bottom), Some(r.bottom()));
    }

    #[test]
    fn classification() {
        let mut fb = Framebuffer::new(128, 128).unwrap();
        fb.fill(0, 0, 128, 128, 0x123456).unwrap();
        let o = Opts {
            jpeg: true,
            quality: 80,
            webp: false,
        };
        assert!(matches!(
            encode_region(&fb, fb.bounds(), o).kind,
            Kind::Fill(0x123456)
        ));
        fb.fill(3, 3, 5, 5, 0xffffff).unwrap();
        assert!(matches!(
            encode_region(&fb, fb.bounds(), o).kind,
            Kind::Png(_)
        ));
        let px: Vec<u32> = (0..128 * 128u32)
            .map(|i| i.wrapping_mul(2654435761) >> 8)
            .collect();
        fb.put_pixels(0, 0, 128, 128, &px, 128).unwrap();
        assert!(matches!(
            encode_region(&fb, fb.bounds(), o).kind,
            Kind::Jpeg(_)
        ));
        let o = Opts {
            jpeg: false,
            quality: 80,
            webp: false,
        };
        assert!(matches!(
            encode_region(&fb, fb.bounds(), o).kind,
            Kind::Png(_)
        ));
        let o = Opts { webp: true, ..o };
        assert!(matches!(
            encode_region(&fb, fb.bounds(), o).kind,
            Kind::Webp(_)
        ));
    }
}
