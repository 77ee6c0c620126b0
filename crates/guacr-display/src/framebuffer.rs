//! The framebuffer: `u32` pixels `0x00RRGGBB`, row-major, stride = width.

use crate::{DisplayError, MAX_DIMENSION, MAX_PIXELS, Rect};

/// Byte layouts accepted by [`Framebuffer::put_bytes`] / `Display::put_bytes`.
///
/// `Bgrx32` is the canonical one: it is the in-memory (little-endian) form of
/// the `u32` pixel `0x00RRGGBB`, i.e. what an RFB server sends for the pixel
/// format "32 bpp, depth 24, little-endian, true colour, red-shift 16,
/// green-shift 8, blue-shift 0", so such data is copied with no conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 4 bytes per pixel: B, G, R, unused (`u32` 0x00RRGGBB little-endian).
    Bgrx32,
    /// 4 bytes per pixel: R, G, B, unused.
    Rgbx32,
    /// 4 bytes per pixel: R, G, B, A (alpha ignored: the screen is opaque).
    Rgba32,
    /// 3 bytes per pixel: R, G, B.
    Rgb24,
    /// 3 bytes per pixel: B, G, R.
    Bgr24,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Bgrx32 | PixelFormat::Rgbx32 | PixelFormat::Rgba32 => 4,
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => 3,
        }
    }

    #[inline]
    fn pixel(self, p: &[u8]) -> u32 {
        let (r, g, b) = match self {
            PixelFormat::Bgrx32 | PixelFormat::Bgr24 => (p[2], p[1], p[0]),
            PixelFormat::Rgbx32 | PixelFormat::Rgba32 | PixelFormat::Rgb24 => (p[0], p[1], p[2]),
        };
        rgb(r, g, b)
    }
}

/// Packs a colour into the canonical pixel `0x00RRGGBB`.
#[inline]
pub const fn rgb(r: u8, g: u8, b: u8) -> u32 {
    ((r as u32) << 16) | ((g as u32) << 8) | (b as u32)
}

/// Splits a canonical pixel into `(r, g, b)`.
#[inline]
pub const fn split_rgb(p: u32) -> (u8, u8, u8) {
    ((p >> 16) as u8, (p >> 8) as u8, p as u8)
}

/// Checks a surface size against the limits.
pub fn check_size(width: u32, height: u32) -> Result<(), DisplayError> {
    if width == 0
        || height == 0
        || width > MAX_DIMENSION
        || height > MAX_DIMENSION
        || u64::from(width) * u64::from(height) > MAX_PIXELS
    {
        return Err(DisplayError::InvalidSize { width, height });
    }
    Ok(())
}

/// An opaque RGB framebuffer.
#[derive(Clone, PartialEq, Eq)]
pub struct Framebuffer {
    width: u32,
    height: u32,
    pixels: Vec<u32>,
}

impl std::fmt::Debug for Framebuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framebuffer")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl Framebuffer {
    /// A black framebuffer; sizes are checked against [`MAX_DIMENSION`] and
    /// [`MAX_PIXELS`] before anything is allocated.
    pub fn new(width: u32, height: u32) -> Result<Framebuffer, DisplayError> {
        check_size(width, height)?;
        Ok(Framebuffer {
            width,
            height,
            pixels: vec![0; width as usize * height as usize],
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The whole surface as a rectangle.
    pub fn bounds(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }

    /// All pixels, row-major, `width` pixels per row.
    pub fn pixels(&self) -> &[u32] {
        &self.pixels
    }

    /// One pixel (`None` outside).
    pub fn pixel(&self, x: u32, y: u32) -> Option<u32> {
        if x >= self.width || y >= self.height {
            return None;
        }
        self.pixels
            .get(y as usize * self.width as usize + x as usize)
            .copied()
    }

    /// Pixels `x..x+w` of row `y` (the caller guarantees the bounds).
    #[inline]
    pub(crate) fn row(&self, x: u32, y: u32, w: u32) -> &[u32] {
        let start = y as usize * self.width as usize + x as usize;
        &self.pixels[start..start + w as usize]
    }

    #[inline]
    pub(crate) fn row_mut(&mut self, x: u32, y: u32, w: u32) -> &mut [u32] {
        let start = y as usize * self.width as usize + x as usize;
        &mut self.pixels[start..start + w as usize]
    }

    /// Checks that `r` lies inside the surface.
    pub fn check_rect(&self, r: Rect) -> Result<(), DisplayError> {
        if r.right() > self.width
            || r.bottom() > self.height
            || r.x.checked_add(r.width).is_none()
            || r.y.checked_add(r.height).is_none()
        {
            return Err(DisplayError::OutOfBounds {
                rect: r,
                width: self.width,
                height: self.height,
            });
        }
        Ok(())
    }

    /// Copies `w`×`h` pixels from `src` (row `i` starts at `i * stride`).
    pub fn put_pixels(
        &mut self,
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        src: &[u32],
        stride: usize,
    ) -> Result<(), DisplayError> {
        let r = Rect::new(x, y, w, h);
        self.check_rect(r)?;
        if r.is_empty() {
            return Ok(());
        }
        let needed = needed_len(w as usize, h as usize, stride, 1)?;
        if src.len() < needed {
            return Err(DisplayError::ShortBuffer {
                needed,
                got: src.len(),
            });
        }
        for row in 0..h {
            let s = row as usize * stride;
            let dst = self.row_mut(x, y + row, w);
            dst.copy_from_slice(&src[s..s + w as usize]);
            for d in dst {
                *d &= 0x00FF_FFFF;
            }
        }
        Ok(())
    }

    /// Copies `w`×`h` pixels given as bytes in `format`, `stride` bytes per row.
    #[allow(clippy::too_many_arguments)]
    pub fn put_bytes(
        &mut self,
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        src: &[u8],
        stride: usize,
        format: PixelFormat,
    ) -> Result<(), DisplayError> {
        let r = Rect::new(x, y, w, h);
        self.check_rect(r)?;
        if r.is_empty() {
            return Ok(());
        }
        let bpp = format.bytes_per_pixel();
        let needed = needed_len(w as usize, h as usize, stride, bpp)?;
        if src.len() < needed {
            return Err(DisplayError::ShortBuffer {
                needed,
                got: src.len(),
            });
        }
        for row in 0..h {
            let s = row as usize * stride;
            let line = &src[s..s + w as usize * bpp];
            let dst = self.row_mut(x, y + row, w);
            if format == PixelFormat::Bgrx32 {
                for (d, p) in dst.iter_mut().zip(line.chunks_exact(4)) {
                    *d = u32::from_le_bytes([p[0], p[1], p[2], 0]);
                }
            } else {
                for (d, p) in dst.iter_mut().zip(line.chunks_exact(bpp)) {
                    *d = format.pixel(p);
                }
            }
        }
        Ok(())
    }

    /// Fills a rectangle with one colour.
    pub fn fill(&mut self, x: u32, y: u32, w: u32, h: u32, color: u32) -> Result<(), DisplayError> {
        let r = Rect::new(x, y, w, h);
        self.check_rect(r)?;
        let color = color & 0x00FF_FFFF;
        for row in 0..h {
            self.row_mut(x, y + row, w).fill(color);
        }
        Ok(())
    }

    /// Moves a rectangle within the surface (overlap-safe, like `memmove`).
    pub fn copy_within(
        &mut self,
        src_x: u32,
        src_y: u32,
        x: u32,
        y: u32,
        w: u32,
        h: u32,
    ) -> Result<(), DisplayError> {
        self.check_rect(Rect::new(src_x, src_y, w, h))?;
        self.check_rect(Rect::new(x, y, w, h))?;
        let width = self.width as usize;
        let rows: Box<dyn Iterator<Item = u32>> = if y > src_y {
            Box::new((0..h).rev())
        } else {
            Box::new(0..h)
        };
        for row in rows {
            let s = (src_y + row) as usize * width + src_x as usize;
            let d = (y + row) as usize * width + x as usize;
            self.pixels.copy_within(s..s + w as usize, d);
        }
        Ok(())
    }

    /// Copies a rectangle out of this surface into `dst` at the same place.
    pub(crate) fn copy_rect_to(&self, r: Rect, dst: &mut Framebuffer) {
        for row in r.y..r.bottom() {
            dst.row_mut(r.x, row, r.width)
                .copy_from_slice(self.row(r.x, row, r.width));
        }
    }

    /// Resizes, keeping the overlapping top-left content; new area is black.
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), DisplayError> {
        check_size(width, height)?;
        if width == self.width && height == self.height {
            return Ok(());
        }
        let mut new = vec![0u32; width as usize * height as usize];
        let cw = self.width.min(width) as usize;
        for row in 0..self.height.min(height) as usize {
            let s = row * self.width as usize;
            let d = row * width as usize;
            new[d..d + cw].copy_from_slice(&self.pixels[s..s + cw]);
        }
        self.pixels = new;
        self.width = width;
        self.height = height;
        Ok(())
    }

    /// Extracts a rectangle as packed pixels.
    pub fn extract(&self, r: Rect) -> Vec<u32> {
        let mut out = Vec::with_capacity(r.area() as usize);
        for row in r.y..r.bottom() {
            out.extend_from_slice(self.row(r.x, row, r.width));
        }
        out
    }

    /// The surface as RGBA bytes (alpha 255), e.g. to compare with a
    /// screenshot.
    pub fn to_rgba(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len() * 4);
        for &p in &self.pixels {
            let (r, g, b) = split_rgb(p);
            out.extend_from_slice(&[r, g, b, 255]);
        }
        out
    }
}

fn needed_len(w: usize, h: usize, stride: usize, bpp: usize) -> Result<usize, DisplayError> {
    let row = w * bpp;
    if stride < row {
        return Err(DisplayError::BadStride { stride, row });
    }
    Ok((h - 1) * stride + row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_before_allocating() {
        assert!(matches!(
            Framebuffer::new(0, 10),
            Err(DisplayError::InvalidSize { .. })
        ));
        assert!(Framebuffer::new(100_000, 100_000).is_err());
        assert!(Framebuffer::new(100_000, 1).is_err());
        assert!(Framebuffer::new(u32::MAX, u32::MAX).is_err());
        assert!(Framebuffer::new(1920, 1080).is_ok());
    }

    #[test]
    fn put_bytes_formats_agree() {
        let mut a = Framebuffer::new(2, 1).unwrap();
        a.put_bytes(
            0,
            0,
            2,
            1,
            &[3, 2, 1, 9, 6, 5, 4, 9],
            8,
            PixelFormat::Bgrx32,
        )
        .unwrap();
        let mut b = Framebuffer::new(2, 1).unwrap();
        b.put_bytes(0, 0, 2, 1, &[1, 2, 3, 4, 5, 6], 6, PixelFormat::Rgb24)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.pixel(0, 0), Some(0x010203));
        assert_eq!(a.pixel(1, 0), Some(0x040506));
    }

    #[test]
    fn bad_input_is_refused() {
        let mut f = Framebuffer::new(10, 10).unwrap();
        assert!(f.put_pixels(5, 5, 6, 1, &[0; 6], 6).is_err());
        assert!(f.put_pixels(0, 0, 4, 2, &[0; 7], 4).is_err());
        assert!(f.put_pixels(0, 0, 4, 2, &[0; 8], 3).is_err());
        assert!(f.put_pixels(u32::MAX, 0, 2, 1, &[0; 2], 2).is_err());
        assert!(f.copy_within(0, 0, 5, 5, 6, 6).is_err());
        assert!(f.fill(0, 9, 1, 2, 0).is_err());
    }

    #[test]
    fn overlapping_copy() {
        let mut f = Framebuffer::new(1, 4).unwrap();
        f.put_pixels(0, 0, 1, 4, &[1, 2, 3, 4], 1).unwrap();
        f.copy_within(0, 0, 0, 1, 1, 3).unwrap();
        assert_eq!(f.pixels(), &[1, 1, 2, 3]);
        f.copy_within(0, 1, 0, 0, 1, 3).unwrap();
        assert_eq!(f.pixels(), &[1, 2, 3, 3]);
    }
}
