//! RGB → I420 (YUV 4:2:0, 8 bit) conversion of the display framebuffer.
//!
//! BT.709 matrix, limited range (Y 16–235, Cb/Cr 16–240), which the H.264
//! stream signals in its VUI; chroma is the average of each 2×2 block.
//! Odd widths and heights are rounded up to even by repeating the last
//! column / row (4:2:0 needs even dimensions).

use crate::{Frame, Pixels, VideoError};

/// An I420 picture: a full-size Y plane and quarter-size U and V planes, each
/// tightly packed (stride = plane width). Width and height are even.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct I420Buffer {
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl I420Buffer {
    /// An empty (black-less, zeroed) picture of `width`×`height` rounded up
    /// to even.
    pub fn new(width: u32, height: u32) -> I420Buffer {
        let mut b = I420Buffer::default();
        b.resize(width, height);
        b
    }

    /// Resizes the planes for a `width`×`height` picture (rounded up to even).
    pub fn resize(&mut self, width: u32, height: u32) {
        let w = even(width);
        let h = even(height);
        if w == self.width && h == self.height {
            return;
        }
        self.width = w;
        self.height = h;
        let luma = w as usize * h as usize;
        self.y.resize(luma, 0);
        self.u.resize(luma / 4, 0);
        self.v.resize(luma / 4, 0);
    }

    /// Width (even).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height (even).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The Y plane, `width` bytes per row.
    pub fn y(&self) -> &[u8] {
        &self.y
    }

    /// The U (Cb) plane, `width / 2` bytes per row.
    pub fn u(&self) -> &[u8] {
        &self.u
    }

    /// The V (Cr) plane, `width / 2` bytes per row.
    pub fn v(&self) -> &[u8] {
        &self.v
    }

    /// Fills this picture from a frame (any pixel format), resizing it.
    pub fn fill_from(&mut self, frame: &Frame<'_>) -> Result<(), VideoError> {
        match frame.pixels {
            Pixels::Xrgb32 { data, stride } => {
                xrgb_to_i420(frame.width, frame.height, data, stride, self)
            }
            Pixels::Bgrx8 { data, stride } => {
                bgrx_to_i420(frame.width, frame.height, data, stride, self)
            }
            Pixels::I420(src) => {
                if src.width != even(frame.width) || src.height != even(frame.height) {
                    return Err(VideoError::BadFrame(format!(
                        "I420 picture is {}x{}, frame says {}x{}",
                        src.width, src.height, frame.width, frame.height
                    )));
                }
                self.clone_from(src);
                Ok(())
            }
        }
    }
}

impl openh264::formats::YUVSource for I420Buffer {
    fn dimensions(&self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }

    fn strides(&self) -> (usize, usize, usize) {
        let w = self.width as usize;
        (w, w / 2, w / 2)
    }

    fn y(&self) -> &[u8] {
        &self.y
    }

    fn u(&self) -> &[u8] {
        &self.u
    }

    fn v(&self) -> &[u8] {
        &self.v
    }
}

fn even(n: u32) -> u32 {
    n.saturating_add(1) & !1
}

fn check(
    width: u32,
    height: u32,
    len: usize,
    stride: usize,
    unit: usize,
) -> Result<(), VideoError> {
    if width == 0 || height == 0 {
        return Err(VideoError::BadFrame(format!(
            "empty frame {width}x{height}"
        )));
    }
    let row = (width as usize)
        .checked_mul(unit)
        .ok_or_else(|| VideoError::BadFrame("width overflows".into()))?;
    if stride < row {
        return Err(VideoError::BadFrame(format!(
            "stride {stride} shorter than a row ({row})"
        )));
    }
    let needed = (height as usize - 1)
        .checked_mul(stride)
        .and_then(|n| n.checked_add(row))
        .ok_or_else(|| VideoError::BadFrame("frame size overflows".into()))?;
    if len < needed {
        return Err(VideoError::BadFrame(format!(
            "{width}x{height} frame with stride {stride} needs {needed} units, got {len}"
        )));
    }
    Ok(())
}

/// Converts `0x00RRGGBB` pixels (`stride` pixels per row) into `out`.
pub fn xrgb_to_i420(
    width: u32,
    height: u32,
    data: &[u32],
    stride: usize,
    out: &mut I420Buffer,
) -> Result<(), VideoError> {
    check(width, height, data.len(), stride, 1)?;
    out.resize(width, height);
    let w = width as usize;
    let h = height as usize;
    let row = |y: usize| data.get(y * stride..y * stride + w).unwrap_or(&[]);
    convert_rows(w, h, row, out);
    Ok(())
}

/// Converts B, G, R, X bytes (`stride` bytes per row) into `out`.
pub fn bgrx_to_i420(
    width: u32,
    height: u32,
    data: &[u8],
    stride: usize,
    out: &mut I420Buffer,
) -> Result<(), VideoError> {
    check(width, height, data.len(), stride, 4)?;
    out.resize(width, height);
    let w = width as usize;
    let h = height as usize;
    // Repack as u32 pixels (the fast path); BGRX input is the rare case.
    let mut scratch = vec![0u32; w * h];
    for (y, dst) in scratch.chunks_exact_mut(w).enumerate() {
        let src = data.get(y * stride..y * stride + 4 * w).unwrap_or(&[]);
        for (d, p) in dst.iter_mut().zip(src.chunks_exact(4)) {
            *d = u32::from_le_bytes([p[0], p[1], p[2], 0]);
        }
    }
    convert_rows(w, h, |y| scratch.get(y * w..y * w + w).unwrap_or(&[]), out);
    Ok(())
}

#[inline(always)]
fn luma(p: u32) -> u8 {
    let r = (p >> 16) & 0xff;
    let g = (p >> 8) & 0xff;
    let b = p & 0xff;
    // 16 + (0.1826 R + 0.6142 G + 0.0620 B) in 8.8 fixed point; max 235.
    (((47 * r + 157 * g + 16 * b + 128) >> 8) + 16) as u8
}

#[inline(always)]
fn chroma(a: u32, b: u32, c: u32, d: u32) -> (u8, u8) {
    // R and B sums side by side in one u32 (each ≤ 1020 fits 16 bits).
    let rb = (a & 0x00ff_00ff) + (b & 0x00ff_00ff) + (c & 0x00ff_00ff) + (d & 0x00ff_00ff);
    let g = ((a >> 8) & 0xff) + ((b >> 8) & 0xff) + ((c >> 8) & 0xff) + ((d >> 8) & 0xff);
    let r = (rb >> 16) as i32;
    let bl = (rb & 0xffff) as i32;
    let g = g as i32;
    // Sums of four pixels, so 8.8 fixed point plus 2 bits: shift by 10.
    let u = ((-26 * r - 86 * g + 112 * bl + 512) >> 10) + 128;
    let v = ((112 * r - 102 * g - 10 * bl + 512) >> 10) + 128;
    (u as u8, v as u8)
}

/// Y of a whole row: a plain map the compiler vectorises.
#[inline(always)]
fn luma_row(src: &[u32], dst: &mut [u8]) {
    for (d, &p) in dst.iter_mut().zip(src) {
        *d = luma(p);
    }
}

/// Converts `h` rows of `w` pixels given by `row(y)` (each exactly `w` long)
/// into `out`, already sized for `w`×`h` rounded up to even.
fn convert_rows<'a>(w: usize, h: usize, row: impl Fn(usize) -> &'a [u32], out: &mut I420Buffer) {
    let ew = out.width as usize;
    let cw = ew / 2;
    let pairs = w / 2;
    let rows = out
        .y
        .chunks_exact_mut(2 * ew)
        .zip(out.u.chunks_exact_mut(cw))
        .zip(out.v.chunks_exact_mut(cw));
    for (cy, ((ypair, urow), vrow)) in rows.enumerate() {
        let r0 = row(2 * cy);
        // The last row repeats when the height is odd.
        let r1 = row((2 * cy + 1).min(h - 1));
        let (y0, y1) = ypair.split_at_mut(ew);
        luma_row(r0, y0);
        luma_row(r1, y1);
        for (((p0, p1), u), v) in r0
            .chunks_exact(2)
            .zip(r1.chunks_exact(2))
            .zip(urow.iter_mut())
            .zip(vrow.iter_mut())
        {
            (*u, *v) = chroma(p0[0], p0[1], p1[0], p1[1]);
        }
        if w % 2 == 1 {
            // The last column repeats when the width is odd.
            let a = r0.last().copied().unwrap_or(0);
            let c = r1.last().copied().unwrap_or(0);
            let x = 2 * pairs;
            for (o, p) in [(&mut *y0, a), (&mut *y1, c)] {
                if let Some(s) = o.get_mut(x..x + 2) {
                    s.fill(luma(p));
                }
            }
            let (cu, cv) = chroma(a, a, c, c);
            if let (Some(u), Some(v)) = (urow.get_mut(pairs), vrow.get_mut(pairs)) {
                (*u, *v) = (cu, cv);
            }
        }
    }
}
