//! Synthetic screen content for tests and benchmarks: text-like rows, a
//! scrolled terminal, photographic pictures and noise, as `0x00RRGGBB`
//! pixels with stride = width.

/// A cheap deterministic hash (for reproducible content).
pub fn hash(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A terminal-like screen: light background, dark "glyphs" in 8×16 cells,
/// line `i` of the text shown on screen row `i - first_line`. Increasing
/// `first_line` by one scrolls the text up by a 16-pixel line.
pub fn text_screen(width: u32, height: u32, first_line: u64) -> Vec<u32> {
    let (w, h) = (width as usize, height as usize);
    let mut px = vec![0x00f0_f0f0u32; w * h];
    let cols = w / 8;
    for (y, row) in px.chunks_exact_mut(w).enumerate() {
        let line = first_line + (y / 16) as u64;
        let len = (hash(line) % (cols as u64 + 1)) as usize; // ragged lines
        let gy = y % 16;
        if !(3..13).contains(&gy) {
            continue;
        }
        for col in 0..len.min(cols) {
            let glyph = hash(line.wrapping_mul(1000).wrapping_add(col as u64));
            if glyph.is_multiple_of(7) {
                continue; // a space
            }
            for gx in 1..7 {
                // A 6×10 bitmap from the glyph's hash bits.
                let bit = (gy - 3) * 6 + (gx - 1);
                if (glyph >> (bit % 64)) & 1 == 1 {
                    row[col * 8 + gx] = 0x0020_2020;
                }
            }
        }
    }
    px
}

/// A photographic-like picture: smooth colour gradients and waves with a
/// little grain; `seed` changes all of it.
pub fn photo(width: u32, height: u32, seed: u64) -> Vec<u32> {
    let (w, h) = (width as usize, height as usize);
    let phase = (seed % 360) as f32 * 0.0174;
    let mut px = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let fx = x as f32 / w as f32;
            let fy = y as f32 / h as f32;
            let r = 128.0 + 100.0 * (fx * 6.0 + phase).sin() * (fy * 3.0).cos();
            let g = 128.0 + 100.0 * (fy * 5.0 - phase).sin();
            let b = 128.0 + 90.0 * ((fx + fy) * 4.0 + phase * 2.0).cos();
            let grain = (hash(seed ^ ((y * w + x) as u64)) % 17) as f32 - 8.0;
            let c = |v: f32| (v + grain).clamp(0.0, 255.0) as u32;
            px.push((c(r) << 16) | (c(g) << 8) | c(b));
        }
    }
    px
}

/// Uniform random noise (the worst case for any encoder).
pub fn noise(width: u32, height: u32, seed: u64) -> Vec<u32> {
    (0..width as u64 * height as u64)
        .map(|i| (hash(seed.wrapping_mul(0x9e37_79b9) ^ i) & 0x00ff_ffff) as u32)
        .collect()
}
