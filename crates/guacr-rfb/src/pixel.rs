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
            return Err(format!("unsupported bits-per-pixel {}", self.bits_per_pixel));
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
