//! RGBA to planar YUV 4:2:0 (BT.601, limited range: what ffmpeg's swscale
//! produces by default), updated incrementally: only pairs of rows that
//! changed since the previous picture are converted.

/// Bytes of a `width`x`height` (even) YUV 4:2:0 picture.
pub fn yuv420_len(width: usize, height: usize) -> usize {
    width * height + 2 * (width / 2) * (height / 2)
}

/// Straight RGBA flattened onto black.
#[inline]
fn rgb(px: &[u8]) -> (i32, i32, i32) {
    let (r, g, b, a) = (
        i32::from(px[0]),
        i32::from(px[1]),
        i32::from(px[2]),
        i32::from(px[3]),
    );
    if a == 255 {
        (r, g, b)
    } else {
        (
            (r * a + 127) / 255,
            (g * a + 127) / 255,
            (b * a + 127) / 255,
        )
    }
}

#[inline]
fn luma(r: i32, g: i32, b: i32) -> u8 {
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

/// Converts `rgba` (`width`x`height`, both even) into `yuv` (I420 layout),
/// skipping pairs of rows identical in `prev` (the RGBA picture `yuv` was
/// last converted from; `None` converts everything). Returns the number of
/// row pairs converted.
pub fn update_yuv420(
    rgba: &[u8],
    prev: Option<&[u8]>,
    width: usize,
    height: usize,
    yuv: &mut [u8],
) -> usize {
    let (cw, ch) = (width / 2, height / 2);
    let row = width * 4;
    if rgba.len() < row * height || yuv.len() < yuv420_len(width, height) {
        return 0;
    }
    let prev = prev.filter(|p| p.len() == rgba.len());
    let (y_plane, chroma) = yuv.split_at_mut(width * height);
    let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);
    let mut converted = 0;
    for pair in 0..ch {
        let band = pair * 2 * row..(pair * 2 + 2) * row;
        if let Some(p) = prev
            && p[band.clone()] == rgba[band.clone()]
        {
            continue;
        }
        converted += 1;
        let (top, bottom) = rgba[band].split_at(row);
        let (y_top, y_bottom) =
            y_plane[pair * 2 * width..(pair * 2 + 2) * width].split_at_mut(width);
        let u_row = &mut u_plane[pair * cw..(pair + 1) * cw];
        let v_row = &mut v_plane[pair * cw..(pair + 1) * cw];
        for x in 0..cw {
            let o = x * 8;
            let p00 = rgb(&top[o..o + 4]);
            let p01 = rgb(&top[o + 4..o + 8]);
            let p10 = rgb(&bottom[o..o + 4]);
            let p11 = rgb(&bottom[o + 4..o + 8]);
            y_top[x * 2] = luma(p00.0, p00.1, p00.2);
            y_top[x * 2 + 1] = luma(p01.0, p01.1, p01.2);
            y_bottom[x * 2] = luma(p10.0, p10.1, p10.2);
            y_bottom[x * 2 + 1] = luma(p11.0, p11.1, p11.2);
            let r = (p00.0 + p01.0 + p10.0 + p11.0 + 2) >> 2;
            let g = (p00.1 + p01.1 + p10.1 + p11.1 + 2) >> 2;
            let b = (p00.2 + p01.2 + p10.2 + p11.2 + 2) >> 2;
            u_row[x] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8;
            v_row[x] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8;
        }
    }
    converted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_known_colours_and_skips_unchanged_rows() {
        // 2x4: rows 0-1 white, rows 2-3 red; one half-transparent pixel.
        let mut rgba = Vec::new();
        for _ in 0..4 {
            rgba.extend_from_slice(&[255, 255, 255, 255]);
        }
        for _ in 0..4 {
            rgba.extend_from_slice(&[255, 0, 0, 255]);
        }
        let mut yuv = vec![0u8; yuv420_len(2, 4)];
        assert_eq!(yuv.len(), 12);
        assert_eq!(update_yuv420(&rgba, None, 2, 4, &mut yuv), 2);
        // White: Y 235, U/V 128. Red: Y 82, U 90, V 240.
        assert_eq!(&yuv[..4], &[235; 4]);
        assert_eq!(&yuv[4..8], &[82; 4]);
        assert_eq!(yuv[8..12], [128, 90, 128, 240]);
        // Only the changed pair of rows is converted again.
        let prev = rgba.clone();
        rgba[16..20].copy_from_slice(&[255, 255, 255, 0]);
        assert_eq!(update_yuv420(&rgba, Some(&prev), 2, 4, &mut yuv), 1);
        // Transparent white is black: Y 16.
        assert_eq!(&yuv[4..8], &[16, 82, 82, 82]);
        assert_eq!(&yuv[..4], &[235; 4]);
        assert_eq!(update_yuv420(&rgba, Some(&rgba.clone()), 2, 4, &mut yuv), 0);
        // Too short a buffer converts nothing.
        assert_eq!(update_yuv420(&rgba, None, 2, 4, &mut [0u8; 3]), 0);
    }
}
