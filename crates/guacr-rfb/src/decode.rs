//! Rectangle decoders that are independent of the client state machine.

use flate2::{Decompress, FlushDecompress, Status};

use crate::RfbError;
use crate::pixel::Converter;

/// Why parsing stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Not enough input yet; retry from the same point with more bytes.
    More,
    /// Fatal.
    Err(RfbError),
}

impl From<RfbError> for Stop {
    fn from(e: RfbError) -> Stop {
        Stop::Err(e)
    }
}

pub(crate) type P<T> = Result<T, Stop>;

pub(crate) fn proto<T>(msg: impl Into<String>) -> P<T> {
    Err(Stop::Err(RfbError::Protocol(msg.into())))
}

/// A source of bytes: buffered socket input (running out means "wait for
/// more") or inflated zlib output (running out is an error).
pub(crate) trait Src {
    fn take(&mut self, n: usize) -> P<&[u8]>;

    fn u8(&mut self) -> P<u8> {
        match self.take(1)? {
            [b] => Ok(*b),
            _ => proto("short read"),
        }
    }
}

/// Cursor over buffered input.
pub(crate) struct Rd<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Rd<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Rd<'a> {
        Rd { buf, pos: 0 }
    }

    pub(crate) fn avail(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> P<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Stop::More)?;
        let s = self.buf.get(self.pos..end).ok_or(Stop::More)?;
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn arr<const N: usize>(&mut self) -> P<[u8; N]> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> P<u8> {
        Ok(self.arr::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> P<u16> {
        Ok(u16::from_be_bytes(self.arr()?))
    }

    pub(crate) fn u32(&mut self) -> P<u32> {
        Ok(u32::from_be_bytes(self.arr()?))
    }
}

impl Src for Rd<'_> {
    fn take(&mut self, n: usize) -> P<&[u8]> {
        self.bytes(n)
    }
}

/// Pulls inflated bytes on demand out of one zlib-compressed payload,
/// through a persistent stream.
pub(crate) struct ZReader<'a> {
    z: &'a mut Decompress,
    input: &'a [u8],
    in_pos: usize,
    out: Vec<u8>,
    out_pos: usize,
    /// Output budget left (bounds what a bogus stream can make us inflate).
    budget: usize,
}

impl<'a> ZReader<'a> {
    pub(crate) fn new(z: &'a mut Decompress, input: &'a [u8], budget: usize) -> ZReader<'a> {
        ZReader {
            z,
            input,
            in_pos: 0,
            out: Vec::with_capacity(64 * 1024),
            out_pos: 0,
            budget,
        }
    }

    /// Inflates more output; false when no more can come.
    fn more(&mut self) -> P<bool> {
        if self.out_pos > 0 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        let chunk = (64 * 1024).min(self.budget);
        if chunk == 0 {
            return Err(Stop::Err(RfbError::TooLarge(
                "zlib data inflates beyond the rectangle".into(),
            )));
        }
        self.out.reserve(chunk);
        let before_out = self.z.total_out();
        let before_in = self.z.total_in();
        let input = self.input.get(self.in_pos..).unwrap_or(&[]);
        let status = self
            .z
            .decompress_vec(input, &mut self.out, FlushDecompress::None);
        let produced = (self.z.total_out() - before_out) as usize;
        let consumed = (self.z.total_in() - before_in) as usize;
        self.in_pos += consumed;
        self.budget = self.budget.saturating_sub(produced);
        match status {
            Ok(Status::Ok) | Ok(Status::BufError) | Ok(Status::StreamEnd) => Ok(produced > 0),
            Err(e) => proto(format!("bad zlib data: {e}")),
        }
    }

    /// Feeds the rest of the payload into the stream (keeping its dictionary
    /// in step with the server), discarding extra output within budget.
    pub(crate) fn finish(mut self) -> P<()> {
        while self.in_pos < self.input.len() {
            self.out_pos = self.out.len();
            if !self.more()? && self.in_pos < self.input.len() {
                // No progress although input remains: a stream that ended.
                return proto("zlib data after the end of the stream");
            }
        }
        Ok(())
    }
}

impl Src for ZReader<'_> {
    fn take(&mut self, n: usize) -> P<&[u8]> {
        while self.out.len() - self.out_pos < n {
            if !self.more()? {
                return proto("compressed data ended early");
            }
        }
        let s = self
            .out
            .get(self.out_pos..self.out_pos + n)
            .ok_or_else(|| Stop::Err(RfbError::Protocol("short zlib output".into())))?;
        self.out_pos += n;
        Ok(s)
    }
}

/// Inflates exactly `expected` bytes from `input` through `z`.
pub(crate) fn inflate_exact(z: &mut Decompress, input: &[u8], expected: usize) -> P<Vec<u8>> {
    let mut r = ZReader::new(z, input, expected.saturating_add(64 * 1024));
    let data = r.take(expected)?.to_vec();
    r.finish()?;
    Ok(data)
}

/// Output of one tile: `tw * th` canonical pixels written into the strip.
pub(crate) struct Strip<'a> {
    pub(crate) data: &'a mut [u32],
    pub(crate) stride: usize,
}

impl Strip<'_> {
    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, c: u32) {
        for row in y..y + h {
            let start = row * self.stride + x;
            if let Some(s) = self.data.get_mut(start..start + w) {
                s.fill(c);
            }
        }
    }

    /// Copies a `tw`×`th` tile of pixels (row-major) to column `tx`.
    fn put_tile(&mut self, tx: usize, tw: usize, th: usize, px: &[u32]) {
        for (row, src) in px.chunks_exact(tw.max(1)).take(th).enumerate() {
            let start = row * self.stride + tx;
            if let Some(d) = self.data.get_mut(start..start + tw) {
                d.copy_from_slice(src);
            }
        }
    }

    fn set(&mut self, x: usize, y: usize, c: u32) {
        if let Some(p) = self.data.get_mut(y * self.stride + x) {
            *p = c;
        }
    }
}

/// Hextile colour state carried between tiles of one rectangle.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HextileColours {
    pub(crate) bg: u32,
    pub(crate) fg: u32,
}

/// Decodes one Hextile tile at (`tx`, 0) of `strip` (`tw`×`th`).
pub(crate) fn hextile_tile(
    src: &mut impl Src,
    conv: &Converter,
    colours: &mut HextileColours,
    strip: &mut Strip<'_>,
    tx: usize,
    tw: usize,
    th: usize,
) -> P<()> {
    let bpp = conv.bpp();
    let sub = src.u8()?;
    if sub & 1 != 0 {
        let raw = src.take(tw * th * bpp)?;
        let mut px = Vec::with_capacity(tw * th);
        conv.extend(raw, &mut px);
        strip.put_tile(tx, tw, th, &px);
        return Ok(());
    }
    if sub & 2 != 0 {
        colours.bg = conv.pixel(src.take(bpp)?);
    }
    if sub & 4 != 0 {
        colours.fg = conv.pixel(src.take(bpp)?);
    }
    strip.fill(tx, 0, tw, th, colours.bg);
    if sub & 8 != 0 {
        let n = usize::from(src.u8()?);
        let coloured = sub & 16 != 0;
        let each = if coloured { bpp + 2 } else { 2 };
        let body = src.take(n * each)?;
        for rec in body.chunks_exact(each) {
            let (c, xy, wh) = if coloured {
                let (px, rest) = rec.split_at(bpp);
                (conv.pixel(px), rest[0], rest[1])
            } else {
                (colours.fg, rec[0], rec[1])
            };
            let (sx, sy) = (usize::from(xy >> 4), usize::from(xy & 15));
            let (sw, sh) = (usize::from(wh >> 4) + 1, usize::from(wh & 15) + 1);
            if sx + sw > tw || sy + sh > th {
                return proto("Hextile subrectangle outside its tile");
            }
            strip.fill(tx + sx, sy, sw, sh, c);
        }
    }
    Ok(())
}

/// Decodes one TRLE/ZRLE tile. `palette` persists between TRLE tiles
/// (subencodings 127 and 129); ZRLE passes `reuse_allowed = false`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rle_tile(
    src: &mut impl Src,
    conv: &Converter,
    palette: &mut Vec<u32>,
    reuse_allowed: bool,
    strip: &mut Strip<'_>,
    tx: usize,
    tw: usize,
    th: usize,
) -> P<()> {
    let cp = conv.cpixel_len();
    let sub = src.u8()?;
    let npx = tw * th;
    match sub {
        0 => {
            let raw = src.take(npx * cp)?;
            let mut px = Vec::with_capacity(npx);
            conv.extend_cpixels(raw, &mut px);
            strip.put_tile(tx, tw, th, &px);
        }
        1 => {
            let c = conv.cpixel(src.take(cp)?);
            strip.fill(tx, 0, tw, th, c);
            palette.clear();
            palette.push(c);
        }
        2..=16 | 127 => {
            if sub != 127 {
                let raw = src.take(usize::from(sub) * cp)?;
                palette.clear();
                conv.extend_cpixels(raw, palette);
            } else if !reuse_allowed || palette.is_empty() {
                return proto("TRLE palette reuse without a palette");
            }
            let n = palette.len();
            let bits = match n {
                0..=2 => 1,
                3..=4 => 2,
                _ => 4,
            };
            let row_bytes = (tw * bits).div_ceil(8);
            let packed = src.take(row_bytes * th)?;
            for y in 0..th {
                let row = packed
                    .get(y * row_bytes..(y + 1) * row_bytes)
                    .unwrap_or(&[]);
                for x in 0..tw {
                    let bit = x * bits;
                    let byte = row.get(bit / 8).copied().unwrap_or(0);
                    let idx = usize::from((byte >> (8 - bits - bit % 8)) & ((1u8 << bits) - 1));
                    let c = palette.get(idx).copied().ok_or_else(|| {
                        Stop::Err(RfbError::Protocol("palette index out of range".into()))
                    })?;
                    strip.set(tx + x, y, c);
                }
            }
        }
        128 => {
            let mut i = 0;
            while i < npx {
                let c = conv.cpixel(src.take(cp)?);
                let run = run_length(src, npx - i)?;
                for k in i..i + run {
                    strip.set(tx + k % tw, k / tw, c);
                }
                i += run;
            }
        }
        129..=255 => {
            if sub != 129 {
                let raw = src.take(usize::from(sub - 128) * cp)?;
                palette.clear();
                conv.extend_cpixels(raw, palette);
            } else if !reuse_allowed || palette.is_empty() {
                return proto("TRLE palette reuse without a palette");
            }
            let mut i = 0;
            while i < npx {
                let idx = src.u8()?;
                let c = palette
                    .get(usize::from(idx & 0x7F))
                    .copied()
                    .ok_or_else(|| {
                        Stop::Err(RfbError::Protocol("palette index out of range".into()))
                    })?;
                let run = if idx & 0x80 != 0 {
                    run_length(src, npx - i)?
                } else {
                    1
                };
                for k in i..i + run {
                    strip.set(tx + k % tw, k / tw, c);
                }
                i += run;
            }
        }
        _ => return proto(format!("invalid TRLE/ZRLE subencoding {sub}")),
    }
    Ok(())
}

/// An RLE run length (sum of bytes, 255 continues, plus one), at most `left`.
fn run_length(src: &mut impl Src, left: usize) -> P<usize> {
    let mut run = 1usize;
    loop {
        let b = src.u8()?;
        run += usize::from(b);
        if run > left {
            return proto("RLE run longer than the tile");
        }
        if b != 255 {
            return Ok(run);
        }
    }
}

/// Tight's compact length (1 to 3 bytes).
pub(crate) fn compact_len(r: &mut Rd<'_>) -> P<usize> {
    let b0 = r.u8()?;
    let mut len = usize::from(b0 & 0x7F);
    if b0 & 0x80 != 0 {
        let b1 = r.u8()?;
        len |= usize::from(b1 & 0x7F) << 7;
        if b1 & 0x80 != 0 {
            len |= usize::from(r.u8()?) << 14;
        }
    }
    Ok(len)
}

/// Builds a straight-RGBA cursor from pixels and a 1-bit mask (rows padded
/// to bytes, most significant bit first).
pub(crate) fn cursor_rgba(pixels: &[u32], mask: &[u8], w: usize, h: usize) -> Vec<u8> {
    let row = w.div_ceil(8);
    let mut out = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let c = pixels.get(y * w + x).copied().unwrap_or(0);
            let bit = mask.get(y * row + x / 8).copied().unwrap_or(0) & (0x80 >> (x % 8));
            out.extend_from_slice(&[
                (c >> 16) as u8,
                (c >> 8) as u8,
                c as u8,
                if bit != 0 { 255 } else { 0 },
            ]);
        }
    }
    out
}

/// Decodes a Tight JPEG rectangle to canonical pixels.
pub(crate) fn decode_jpeg(data: &[u8], w: usize, h: usize, conv: &Converter) -> P<Vec<u32>> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    let bad =
        |e: &dyn std::fmt::Display| Stop::Err(RfbError::Protocol(format!("bad Tight JPEG: {e}")));
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::BGRA)
        .set_max_width(w.max(1))
        .set_max_height(h.max(1));
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(data), options);
    dec.decode_headers().map_err(|e| bad(&e))?;
    let (jw, jh) = dec
        .dimensions()
        .ok_or_else(|| Stop::Err(RfbError::Protocol("Tight JPEG without header".into())))?;
    if jw != w || jh != h {
        return proto(format!("Tight JPEG is {jw}x{jh}, rectangle is {w}x{h}"));
    }
    let bgra = dec.decode().map_err(|e| bad(&e))?;
    if bgra.len() != w * h * 4 {
        return proto("Tight JPEG size mismatch");
    }
    let mut out = Vec::with_capacity(w * h);
    out.extend(bgra.chunks_exact(4).map(|c| conv.rgb(c[2], c[1], c[0])));
    Ok(out)
}
