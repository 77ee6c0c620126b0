//! Image decoding (PNG, JPEG, WebP), PNG encoding, and builders for `img`
//! streams.

use std::io::Cursor;

use anyhow::{Context, bail};
use guacr_protocol::Instruction;

/// guacd's maximum raw payload per `blob` (6048 bytes, 8064 base64 characters).
pub const BLOB_CHUNK: usize = 6048;

/// A decoded RGBA image (straight, non-premultiplied alpha).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbaImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// Decodes a PNG of any colour type and bit depth (palette with or without
/// `tRNS`, grey 1/2/4/8/16, grey+alpha, RGB, RGBA, 16-bit) into 8-bit RGBA.
pub fn decode_png(bytes: &[u8]) -> anyhow::Result<RgbaImage> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().context("reading PNG header")?;
    let size = reader
        .output_buffer_size()
        .context("PNG output buffer size overflows")?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).context("decoding PNG data")?;
    let (width, height) = (info.width, info.height);
    let pixels = width as usize * height as usize;
    let line = info.line_size;
    let samples = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => bail!("PNG palette was not expanded"),
    };
    if info.bit_depth != png::BitDepth::Eight {
        bail!("PNG not normalised to 8 bits: {:?}", info.bit_depth);
    }
    let mut data = Vec::with_capacity(pixels * 4);
    for y in 0..height as usize {
        let row = buf
            .get(y * line..y * line + width as usize * samples)
            .context("PNG row out of range")?;
        for px in row.chunks_exact(samples) {
            match *px {
                [g] => data.extend_from_slice(&[g, g, g, 255]),
                [g, a] => data.extend_from_slice(&[g, g, g, a]),
                [r, g, b] => data.extend_from_slice(&[r, g, b, 255]),
                [r, g, b, a] => data.extend_from_slice(&[r, g, b, a]),
                _ => bail!("unexpected PNG sample count"),
            }
        }
    }
    Ok(RgbaImage {
        width,
        height,
        data,
    })
}

/// Largest decoded image accepted from a JPEG or WebP stream, in bytes of
/// RGBA output (the largest layer, [`crate::MAX_LAYER_PIXELS`] x 4).
const MAX_DECODED_BYTES: usize = (crate::display::MAX_LAYER_PIXELS as usize) * 4;

/// Decodes a baseline or progressive JPEG (greyscale, YCbCr/RGB, CMYK, 8 or
/// 16 bits) into opaque 8-bit RGBA.
pub fn decode_jpeg(bytes: &[u8]) -> anyhow::Result<RgbaImage> {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.set_max_decoding_buffer_size(MAX_DECODED_BYTES);
    let pixels = decoder.decode().context("decoding JPEG")?;
    let info = decoder.info().context("JPEG without a frame header")?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let count = width as usize * height as usize;
    let mut data = Vec::with_capacity(count * 4);
    match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            for &g in pixels.iter().take(count) {
                data.extend_from_slice(&[g, g, g, 255]);
            }
        }
        jpeg_decoder::PixelFormat::L16 => {
            for px in pixels.chunks_exact(2).take(count) {
                let g = (u16::from_ne_bytes([px[0], px[1]]) >> 8) as u8;
                data.extend_from_slice(&[g, g, g, 255]);
            }
        }
        jpeg_decoder::PixelFormat::RGB24 => {
            for px in pixels.chunks_exact(3).take(count) {
                data.extend_from_slice(&[px[0], px[1], px[2], 255]);
            }
        }
        jpeg_decoder::PixelFormat::CMYK32 => {
            // The decoder yields Adobe-style inverted CMYK (as the `image` crate reads it).
            for px in pixels.chunks_exact(4).take(count) {
                let k = u16::from(255 - px[3]);
                let ch = |c: u8| (u16::from(255 - c) * k / 255) as u8;
                data.extend_from_slice(&[ch(px[0]), ch(px[1]), ch(px[2]), 255]);
            }
        }
    }
    if data.len() != count * 4 {
        bail!("JPEG data is shorter than {width}x{height}");
    }
    Ok(RgbaImage {
        width,
        height,
        data,
    })
}

/// Decodes a lossy or lossless WebP (the first frame if animated) into
/// 8-bit RGBA.
pub fn decode_webp(bytes: &[u8]) -> anyhow::Result<RgbaImage> {
    let mut decoder =
        image_webp::WebPDecoder::new(Cursor::new(bytes)).context("reading WebP header")?;
    let (width, height) = decoder.dimensions();
    let size = decoder
        .output_buffer_size()
        .context("WebP output buffer size overflows")?;
    if size > MAX_DECODED_BYTES {
        bail!("WebP image {width}x{height} is too large");
    }
    let mut buf = vec![0u8; size];
    decoder.read_image(&mut buf).context("decoding WebP data")?;
    let data = if decoder.has_alpha() {
        buf
    } else {
        let mut data = Vec::with_capacity(width as usize * height as usize * 4);
        for px in buf.chunks_exact(3) {
            data.extend_from_slice(&[px[0], px[1], px[2], 255]);
        }
        data
    };
    Ok(RgbaImage {
        width,
        height,
        data,
    })
}

/// Decodes an image of one of the mimetypes Guacamole servers send
/// (`image/png`, `image/jpeg`, `image/webp`). `Ok(None)` for other types.
pub fn decode_image(mimetype: &str, bytes: &[u8]) -> anyhow::Result<Option<RgbaImage>> {
    let base = mimetype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "image/png" => decode_png(bytes).map(Some),
        "image/jpeg" | "image/jpg" => decode_jpeg(bytes).map(Some),
        "image/webp" => decode_webp(bytes).map(Some),
        _ => Ok(None),
    }
}

/// Encodes 8-bit RGBA pixels as a PNG.
pub fn encode_png_rgba(width: u32, height: u32, rgba: &[u8]) -> anyhow::Result<Vec<u8>> {
    if rgba.len() != width as usize * height as usize * 4 {
        bail!(
            "RGBA buffer has {} bytes, expected {}x{}x4",
            rgba.len(),
            width,
            height
        );
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().context("writing PNG header")?;
        w.write_image_data(rgba).context("writing PNG data")?;
        w.finish().context("finishing PNG")?;
    }
    Ok(out)
}

/// The instructions a server sends to draw an image: `img`, `blob`s of at
/// most [`BLOB_CHUNK`] raw bytes, `end`.
pub fn img_instructions(
    stream: i32,
    mode: i32,
    layer: i32,
    mimetype: &str,
    x: i32,
    y: i32,
    data: &[u8],
) -> Vec<Instruction> {
    let mut out = vec![Instruction::new(
        "img",
        [
            stream.to_string(),
            mode.to_string(),
            layer.to_string(),
            mimetype.to_owned(),
            x.to_string(),
            y.to_string(),
        ],
    )];
    out.extend(blob_instructions(stream, data));
    out.push(Instruction::new("end", [stream.to_string()]));
    out
}

/// `blob` instructions carrying `data` in chunks of at most [`BLOB_CHUNK`] bytes.
pub fn blob_instructions(stream: i32, data: &[u8]) -> Vec<Instruction> {
    data.chunks(BLOB_CHUNK)
        .map(|c| {
            Instruction::new(
                "blob",
                [stream.to_string(), guacr_protocol::base64::encode(c)],
            )
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn encode_with(
        w: u32,
        h: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        palette: Option<(&[u8], Option<&[u8]>)>,
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(color);
            enc.set_depth(depth);
            if let Some((pal, trns)) = palette {
                enc.set_palette(pal.to_vec());
                if let Some(t) = trns {
                    enc.set_trns(t.to_vec());
                }
            }
            let mut wr = enc.write_header().unwrap();
            wr.write_image_data(data).unwrap();
        }
        out
    }

    #[test]
    fn decodes_every_color_type() {
        use png::{BitDepth as D, ColorType as C};
        // 2x1 images: pixel values chosen to be distinguishable.
        let rgba = decode_png(&encode_with(
            2,
            1,
            C::Rgba,
            D::Eight,
            None,
            &[1, 2, 3, 4, 5, 6, 7, 8],
        ))
        .unwrap();
        assert_eq!(rgba.data, [1, 2, 3, 4, 5, 6, 7, 8]);
        let rgb = decode_png(&encode_with(
            2,
            1,
            C::Rgb,
            D::Eight,
            None,
            &[1, 2, 3, 4, 5, 6],
        ))
        .unwrap();
        assert_eq!(rgb.data, [1, 2, 3, 255, 4, 5, 6, 255]);
        let grey = decode_png(&encode_with(2, 1, C::Grayscale, D::Eight, None, &[9, 200])).unwrap();
        assert_eq!(grey.data, [9, 9, 9, 255, 200, 200, 200, 255]);
        let ga = decode_png(&encode_with(
            2,
            1,
            C::GrayscaleAlpha,
            D::Eight,
            None,
            &[9, 10, 200, 0],
        ))
        .unwrap();
        assert_eq!(ga.data, [9, 9, 9, 10, 200, 200, 200, 0]);
        // 1-bit grey: 0b10 packed in the high bits -> white, black.
        let g1 = decode_png(&encode_with(
            2,
            1,
            C::Grayscale,
            D::One,
            None,
            &[0b1000_0000],
        ))
        .unwrap();
        assert_eq!(g1.data, [255, 255, 255, 255, 0, 0, 0, 255]);
        // 16-bit RGB keeps the high byte.
        let rgb16 = decode_png(&encode_with(
            1,
            1,
            C::Rgb,
            D::Sixteen,
            None,
            &[0x12, 0x34, 0xab, 0xcd, 0xff, 0x00],
        ))
        .unwrap();
        assert_eq!(rgb16.data, [0x12, 0xab, 0xff, 255]);
        let rgba16 = decode_png(&encode_with(
            1,
            1,
            C::Rgba,
            D::Sixteen,
            None,
            &[1, 0, 2, 0, 3, 0, 4, 0],
        ))
        .unwrap();
        assert_eq!(rgba16.data, [1, 2, 3, 4]);
        // Palette, 4-bit, with tRNS for entry 0 only.
        let pal = [10, 20, 30, 40, 50, 60];
        let p = decode_png(&encode_with(
            2,
            1,
            C::Indexed,
            D::Four,
            Some((&pal, Some(&[128]))),
            &[0x01],
        ))
        .unwrap();
        assert_eq!(p.data, [10, 20, 30, 128, 40, 50, 60, 255]);
        let p8 = decode_png(&encode_with(
            2,
            1,
            C::Indexed,
            D::Eight,
            Some((&pal, None)),
            &[1, 0],
        ))
        .unwrap();
        assert_eq!(p8.data, [40, 50, 60, 255, 10, 20, 30, 255]);
    }

    #[test]
    fn encode_roundtrip_and_chunking() {
        let px: Vec<u8> = (0..(100 * 80 * 4)).map(|i| (i * 7 % 251) as u8).collect();
        let png = encode_png_rgba(100, 80, &px).unwrap();
        let img = decode_png(&png).unwrap();
        assert_eq!((img.width, img.height), (100, 80));
        assert_eq!(img.data, px);
        let big = vec![7u8; BLOB_CHUNK * 2 + 1];
        let ins = img_instructions(3, 14, -1, "image/png", 5, 6, &big);
        assert_eq!(ins.len(), 5);
        assert_eq!(ins[0].args, ["3", "14", "-1", "image/png", "5", "6"]);
        assert_eq!(ins[1].args[1].len(), 8064);
        assert_eq!(ins[4].opcode, "end");
        assert!(encode_png_rgba(2, 2, &[0; 3]).is_err());
        assert!(decode_png(b"not a png").is_err());
    }
}
