//! Pixel formats and conversion to the canonical `0x00RRGGBB`.

/// An RFB PIXEL_FORMAT (ServerInit / SetPixelFormat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PixelFormat {
    /// 8, 16, 24 or 32.
    pub bits_per_pixel: u8,
    /// Significant bits.
    pub depth: u8,
    /// Multi-byte pixels are big-endian.
    pub big_endian: bool,
    /// True colour (else colour-mapped).
    pub true_colour: bool,
    /// Red maximum.
    pub red_max: u16,
    /// Green maximum.
    pub green_max: u16,
    /// Blue maximum.
    pub blue_max: u16,
    /// Red shift.
    pub red_shift: u8,
    /// Green shift.
    pub green_shift: u8,
    /// Blue shift.
    pub blue_shift: u8,
}

impl PixelFormat {
    /// 32 bpp, depth 24, little-endian, red at 16, green at 8, blue at 0: the
    /// canonical `0x00RRGGBB` on the wire.
    pub const RGB888: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };
    /// 16 bpp RGB565 little-endian.
    pub const RGB565: PixelFormat = PixelFormat {
        bits_per_pixel: 16,
        depth: 16,
        big_endian: false,
        true_colour: true,
        red_max: 31,
        green_max: 63,
        blue_max: 31,
        red_shift: 11,
        green_shift: 5,
        blue_shift: 0,
    };
    /// 8 bpp BGR233 (red bits 0-2, green 3-5, blue 6-7), as vncviewer's
    /// 8-bit mode.
    pub const BGR233: PixelFormat = PixelFormat {
        bits_per_pixel: 8,
        depth: 8,
        big_endian: false,
        true_colour: true,
        red_max: 7,
        green_max: 7,
        blue_max: 3,
        red_shift: 0,
        green_shift: 3,
        blue_shift: 6,
    };

    /// Bytes per pixel (1..=4).
    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    /// Parses the 16-byte wire form, validating it.
    pub fn from_wire(b: &[u8; 16]) -> Result<PixelFormat, String> {
        let pf = PixelFormat {
            bits_per_pixel: b[0],
            depth: b[1],
            big_endian: b[2] != 0,
            true_colour: b[3] != 0,
            red_max: u16::from_be_bytes([b[4], b[5]]),
            green_max: u16::from_be_bytes([b[6], b[7]]),
            blue_max: u16::from_be_bytes([b[8], b[9]]),
            red_shift: b[10],
            green_shift: b[11],
            blue_shift: b[12],
        };
        pf.validate()?;
        Ok(pf)
    }

    /// The 16-byte wire form.
    pub fn to_wire(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.bits_per_pixel;
        b[1] = self.depth;
        b[2] = u8::from(self.big_endian);
        b[3] = u8::from(self.true_colour);
        b[4..6].copy_from_slice(&self.red_max.to_be_bytes());
        b[6..8].copy_from_slice(&self.green_max.to_be_bytes());
        b[8..10].copy_from_slice(&self.blue_max.to_be_bytes());
        b[10] = self.red_shift;
        b[11] = self.green_shift;
        b[12] = self.blue_shift;
        b
    }

    /// Checks the format is one this crate can decode.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.bits_per_pixel, 8 | 16 | 24 | 32) {
            return Err(format!(
                "unsupported bits-per-pixel {}",
                self.bits_per_pixel
            ));
        }
        if self.true_colour {
            let bits = u32::from(self.bits_per_pixel);
            for (max, shift) in [
                (self.red_max, self.red_shift),
                (self.green_max, self.green_shift),
                (self.blue_max, self.blue_shift),
            ] {
                if max == 0 || u32::from(shift) >= bits {
                    return Err(format!("invalid colour max {max} / shift {shift}"));
                }
            }
        }
        Ok(())
    }
}

/// Converts wire pixels of one format into canonical `0x00RRGGBB`.
#[derive(Debug, Clone)]
pub(crate) struct Converter {
    pf: PixelFormat,
    bpp: usize,
    swap: bool,
    /// 32 bpp little-endian with red at 16, green 8, blue 0, all max 255.
    fast32: bool,
    rtab: Vec<u8>,
    gtab: Vec<u8>,
    btab: Vec<u8>,
    /// Colour map (canonical, swap already applied).
    map: Vec<u32>,
    /// Compressed pixel (ZRLE/TRLE CPIXEL) length and where its 3 bytes sit.
    cpixel_len: usize,
    cpixel_high: bool,
    /// Tight's TPIXEL is 3 bytes R, G, B.
    tpixel_rgb: bool,
}

fn scale_table(max: u16) -> Vec<u8> {
    let max32 = u32::from(max.max(1));
    (0..=max32)
        .map(|v| ((v * 255 + max32 / 2) / max32).min(255) as u8)
        .collect()
}

/// Swaps the red and blue bytes of a canonical pixel.
pub(crate) fn swap_rb(v: u32) -> u32 {
    ((v & 0xFF) << 16) | (v & 0xFF00) | ((v >> 16) & 0xFF)
}

impl Converter {
    pub(crate) fn new(pf: PixelFormat, swap: bool) -> Converter {
        let fast32 = pf.bits_per_pixel == 32
            && !pf.big_endian
            && pf.true_colour
            && pf.red_max == 255
            && pf.green_max == 255
            && pf.blue_max == 255
            && pf.red_shift == 16
            && pf.green_shift == 8
            && pf.blue_shift == 0;
        let (rtab, gtab, btab) = if pf.true_colour {
            (
                scale_table(pf.red_max),
                scale_table(pf.green_max),
                scale_table(pf.blue_max),
            )
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        let fits = |high: bool| {
            [
                (pf.red_max, pf.red_shift),
                (pf.green_max, pf.green_shift),
                (pf.blue_max, pf.blue_shift),
            ]
            .iter()
            .all(|&(max, shift)| {
                let top = (u64::from(max) << shift) >> 24;
                if high { shift >= 8 } else { top == 0 }
            })
        };
        let compressible = pf.true_colour && pf.bits_per_pixel == 32 && pf.depth <= 24;
        let (cpixel_len, cpixel_high) = if compressible && fits(false) {
            (3, false)
        } else if compressible && fits(true) {
            (3, true)
        } else {
            (pf.bytes_per_pixel(), false)
        };
        let tpixel_rgb = pf.true_colour
            && pf.bits_per_pixel == 32
            && pf.depth == 24
            && pf.red_max == 255
            && pf.green_max == 255
            && pf.blue_max == 255;
        Converter {
            pf,
            bpp: pf.bytes_per_pixel(),
            swap,
            fast32,
            rtab,
            gtab,
            btab,
            map: Vec::new(),
            cpixel_len,
            cpixel_high,
            tpixel_rgb,
        }
    }

    pub(crate) fn format(&self) -> PixelFormat {
        self.pf
    }

    pub(crate) fn bpp(&self) -> usize {
        self.bpp
    }

    pub(crate) fn cpixel_len(&self) -> usize {
        self.cpixel_len
    }

    pub(crate) fn tpixel_len(&self) -> usize {
        if self.tpixel_rgb { 3 } else { self.bpp }
    }

    /// Sets colour map entries (16-bit RGB).
    pub(crate) fn set_colours(&mut self, first: usize, colours: &[(u16, u16, u16)]) {
        let end = first + colours.len();
        if self.map.len() < end {
            self.map.resize(end, 0);
        }
        for (slot, &(r, g, b)) in self.map[first..end].iter_mut().zip(colours) {
            let v = (u32::from(r >> 8) << 16) | (u32::from(g >> 8) << 8) | u32::from(b >> 8);
            *slot = if self.swap { swap_rb(v) } else { v };
        }
    }

    /// Keeps the colour map of a previous converter.
    pub(crate) fn inherit_map(&mut self, other: &Converter) {
        self.map = other.map.clone();
    }

    /// Raw pixel value of `bpp` bytes in the format's byte order.
    #[inline]
    fn read_raw(&self, b: &[u8]) -> u32 {
        let mut v = 0u32;
        if self.pf.big_endian {
            for &x in b {
                v = (v << 8) | u32::from(x);
            }
        } else {
            for &x in b.iter().rev() {
                v = (v << 8) | u32::from(x);
            }
        }
        v
    }

    /// Canonical colour of a raw pixel value.
    #[inline]
    pub(crate) fn colour_of_raw(&self, v: u32) -> u32 {
        if !self.pf.true_colour {
            return self.map.get(v as usize).copied().unwrap_or(0);
        }
        let pf = &self.pf;
        let comp = |tab: &[u8], max: u16, shift: u8| -> u32 {
            let c = (v >> shift) & u32::from(max);
            u32::from(tab.get(c as usize).copied().unwrap_or(255))
        };
        let out = (comp(&self.rtab, pf.red_max, pf.red_shift) << 16)
            | (comp(&self.gtab, pf.green_max, pf.green_shift) << 8)
            | comp(&self.btab, pf.blue_max, pf.blue_shift);
        if self.swap { swap_rb(out) } else { out }
    }

    /// Canonical colour of one wire pixel (`b.len() == bpp`).
    #[inline]
    pub(crate) fn pixel(&self, b: &[u8]) -> u32 {
        if self.fast32
            && !self.swap
            && let [a, g, r, _] = *b
        {
            return (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(a);
        }
        self.colour_of_raw(self.read_raw(b))
    }

    /// Appends the canonical colours of consecutive wire pixels.
    pub(crate) fn extend(&self, src: &[u8], dst: &mut Vec<u32>) {
        if self.fast32 && !self.swap {
            dst.extend(
                src.chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], 0])),
            );
        } else {
            dst.extend(src.chunks_exact(self.bpp.max(1)).map(|c| self.pixel(c)));
        }
    }

    /// Canonical colour of a CPIXEL (`b.len() == cpixel_len`).
    #[inline]
    pub(crate) fn cpixel(&self, b: &[u8]) -> u32 {
        if self.cpixel_len != 3 || self.bpp != 4 {
            return self.pixel(b);
        }
        if self.fast32
            && !self.swap
            && let [bl, g, r] = *b
        {
            return (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(bl);
        }
        let v = self.read_raw(b);
        self.colour_of_raw(if self.cpixel_high { v << 8 } else { v })
    }

    /// Appends the canonical colours of consecutive CPIXELs.
    pub(crate) fn extend_cpixels(&self, src: &[u8], dst: &mut Vec<u32>) {
        if self.cpixel_len == self.bpp {
            self.extend(src, dst);
        } else if self.fast32 && !self.swap {
            dst.extend(
                src.chunks_exact(3)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], 0])),
            );
        } else {
            dst.extend(src.chunks_exact(3).map(|c| self.cpixel(c)));
        }
    }

    /// Canonical colour of a Tight TPIXEL (`b.len() == tpixel_len`).
    #[inline]
    pub(crate) fn tpixel(&self, b: &[u8]) -> u32 {
        if self.tpixel_rgb {
            if let [r, g, bl] = *b {
                let v = (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(bl);
                return if self.swap { swap_rb(v) } else { v };
            }
            return 0;
        }
        self.pixel(b)
    }

    /// Canonical colour from 8-bit RGB components (Tight JPEG, gradient).
    #[inline]
    pub(crate) fn rgb(&self, r: u8, g: u8, b: u8) -> u32 {
        let v = (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b);
        if self.swap { swap_rb(v) } else { v }
    }

    /// Tight gradient filter: decodes `w * h` filtered TPIXELs in `data`.
    pub(crate) fn gradient(&self, data: &[u8], w: usize, h: usize, dst: &mut Vec<u32>) {
        let tp = self.tpixel_len();
        // Components and their maxima in the wire format.
        let (maxes, shifts): ([u32; 3], [u32; 3]) = if self.tpixel_rgb {
            ([255; 3], [16, 8, 0])
        } else {
            (
                [
                    u32::from(self.pf.red_max),
                    u32::from(self.pf.green_max),
                    u32::from(self.pf.blue_max),
                ],
                [
                    u32::from(self.pf.red_shift),
                    u32::from(self.pf.green_shift),
                    u32::from(self.pf.blue_shift),
                ],
            )
        };
        let mut prev = vec![[0u32; 3]; w];
        let mut cur = vec![[0u32; 3]; w];
        for row in 0..h {
            let mut left = [0u32; 3];
            let mut upleft = [0u32; 3];
            for (col, slot) in cur.iter_mut().enumerate() {
                let off = (row * w + col) * tp;
                let raw = match data.get(off..off + tp) {
                    Some(b) if self.tpixel_rgb => {
                        (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
                    }
                    Some(b) => self.read_raw(b),
                    None => 0,
                };
                let up = prev.get(col).copied().unwrap_or([0; 3]);
                let mut px = [0u32; 3];
                for c in 0..3 {
                    let pred = (i64::from(left[c]) + i64::from(up[c]) - i64::from(upleft[c]))
                        .clamp(0, i64::from(maxes[c])) as u32;
                    let d = (raw >> shifts[c]) & maxes[c];
                    px[c] = (pred + d) & maxes[c];
                }
                *slot = px;
                upleft = up;
                left = px;
            }
            for px in cur.iter() {
                let v = if self.tpixel_rgb {
                    self.rgb(px[0] as u8, px[1] as u8, px[2] as u8)
                } else {
                    self.colour_of_raw(
                        (px[0] << shifts[0]) | (px[1] << shifts[1]) | (px[2] << shifts[2]),
                    )
                };
                dst.push(v);
            }
            std::mem::swap(&mut prev, &mut cur);
        }
    }
}
