//! Reading terminal text back from the display by glyph matching.

use crate::display::Display;

/// Printable ASCII, space first (the default candidate set).
pub const DEFAULT_CHARSET: &str = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

/// How to split the default layer into character cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadTextOptions {
    pub cell_width: u32,
    pub cell_height: u32,
    /// Top-left corner of the grid on layer 0.
    pub origin_x: u32,
    pub origin_y: u32,
    /// Number of columns/rows; `None` = as many whole cells as fit.
    pub columns: Option<u32>,
    pub rows: Option<u32>,
    /// Candidate characters; empty = [`DEFAULT_CHARSET`].
    pub charset: String,
    /// A cell whose pixels all differ from its background by at most this
    /// much (largest per-channel difference) is blank.
    pub min_contrast: u8,
    /// Fixed foreground threshold (per-channel difference from the
    /// background). `None`: half of the largest difference in the cell, which
    /// corresponds to 50 % glyph coverage whatever the colours.
    pub threshold: Option<u8>,
}

impl ReadTextOptions {
    pub fn new(cell_width: u32, cell_height: u32) -> Self {
        ReadTextOptions {
            cell_width,
            cell_height,
            origin_x: 0,
            origin_y: 0,
            columns: None,
            rows: None,
            charset: String::new(),
            min_contrast: 32,
            threshold: None,
        }
    }
}

/// What was read from one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellRead {
    pub ch: char,
    /// Most common colour of the cell.
    pub background: [u8; 4],
    /// Most common colour among foreground pixels (`None` for blank cells).
    pub foreground: Option<[u8; 4]>,
    /// Hamming distance between the cell's mask and the chosen glyph's mask.
    pub distance: u32,
}

fn diff(a: [u8; 4], b: [u8; 4]) -> u8 {
    (0..4).map(|i| a[i].abs_diff(b[i])).max().unwrap_or(0)
}

/// Distinct colours with their counts, most common first (ties: first seen).
fn colour_counts(pixels: impl Iterator<Item = [u8; 4]>) -> Vec<([u8; 4], u32)> {
    let mut counts: Vec<([u8; 4], u32)> = Vec::new();
    for p in pixels {
        match counts.iter_mut().find(|(c, _)| *c == p) {
            Some((_, n)) => *n += 1,
            None => counts.push((p, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
}

/// Reads one cell given its background colour.
fn classify(
    pixels: &[[u8; 4]],
    bg: [u8; 4],
    opts: &ReadTextOptions,
    glyphs: &[(char, Vec<bool>)],
    mask: &mut [bool],
) -> CellRead {
    let dmax = pixels.iter().map(|p| diff(*p, bg)).max().unwrap_or(0);
    let threshold = match opts.threshold {
        Some(t) => t,
        None if dmax <= opts.min_contrast => u8::MAX,
        None => dmax / 2,
    };
    for (m, p) in mask.iter_mut().zip(pixels) {
        *m = diff(*p, bg) > threshold;
    }
    if !mask.iter().any(|m| *m) {
        return CellRead {
            ch: ' ',
            background: bg,
            foreground: None,
            distance: 0,
        };
    }
    let mut best = (' ', u32::MAX);
    for (c, g) in glyphs {
        let d = g.iter().zip(mask.iter()).filter(|(a, b)| a != b).count() as u32;
        if d < best.1 {
            best = (*c, d);
        }
    }
    let fg = colour_counts(
        pixels
            .iter()
            .zip(mask.iter())
            .filter(|(_, m)| **m)
            .map(|(p, _)| *p),
    )
    .first()
    .map(|(c, _)| *c);
    CellRead {
        ch: best.0,
        background: bg,
        foreground: fg,
        distance: best.1,
    }
}

impl Display {
    /// Reads layer 0 as a grid of `cell_w`x`cell_h` character cells.
    ///
    /// `glyph_masks(c)` returns the foreground mask of `c` for one cell
    /// (`cell_w * cell_h` booleans, row-major); `charset` lists the candidate
    /// characters (empty = printable ASCII). Returns one string per row with
    /// trailing spaces trimmed.
    pub fn read_text(
        &self,
        cell_w: u32,
        cell_h: u32,
        glyph_masks: &dyn Fn(char) -> Vec<bool>,
        charset: &str,
    ) -> Vec<String> {
        let mut opts = ReadTextOptions::new(cell_w, cell_h);
        opts.charset = charset.to_owned();
        self.read_text_with(&opts, glyph_masks)
    }

    /// [`Display::read_text`] with full options.
    pub fn read_text_with(
        &self,
        opts: &ReadTextOptions,
        glyph_masks: &dyn Fn(char) -> Vec<bool>,
    ) -> Vec<String> {
        self.read_cells(opts, glyph_masks)
            .into_iter()
            .map(|row| {
                let s: String = row.iter().map(|c| c.ch).collect();
                s.trim_end_matches(' ').to_owned()
            })
            .collect()
    }

    /// Reads every cell (character, background and foreground colours).
    pub fn read_cells(
        &self,
        opts: &ReadTextOptions,
        glyph_masks: &dyn Fn(char) -> Vec<bool>,
    ) -> Vec<Vec<CellRead>> {
        let (cw, ch) = (opts.cell_width, opts.cell_height);
        let Some(layer) = self.layer(0) else {
            return Vec::new();
        };
        if cw == 0 || ch == 0 {
            return Vec::new();
        }
        let fit_cols = layer.width().saturating_sub(opts.origin_x) / cw;
        let fit_rows = layer.height().saturating_sub(opts.origin_y) / ch;
        let cols = opts.columns.unwrap_or(fit_cols);
        let rows = opts.rows.unwrap_or(fit_rows);
        let cell_len = cw as usize * ch as usize;

        let charset = if opts.charset.is_empty() {
            DEFAULT_CHARSET
        } else {
            opts.charset.as_str()
        };
        let mut glyphs: Vec<(char, Vec<bool>)> = Vec::new();
        for c in charset.chars() {
            if glyphs.iter().any(|(g, _)| *g == c) {
                continue;
            }
            let mut m = glyph_masks(c);
            m.resize(cell_len, false);
            glyphs.push((c, m));
        }

        let mut out = Vec::with_capacity(rows as usize);
        let mut pixels = vec![[0u8; 4]; cell_len];
        let mut mask = vec![false; cell_len];
        for row in 0..rows {
            let mut line = Vec::with_capacity(cols as usize);
            for col in 0..cols {
                let x0 = i64::from(opts.origin_x) + i64::from(col) * i64::from(cw);
                let y0 = i64::from(opts.origin_y) + i64::from(row) * i64::from(ch);
                for dy in 0..ch as usize {
                    for dx in 0..cw as usize {
                        let x = i32::try_from(x0 + dx as i64).unwrap_or(i32::MAX);
                        let y = i32::try_from(y0 + dy as i64).unwrap_or(i32::MAX);
                        pixels[dy * cw as usize + dx] = layer.pixel(x, y);
                    }
                }
                // Background: the most common colour; when the runner-up is
                // nearly as common (dense glyphs), try both and keep the better match.
                let counts = colour_counts(pixels.iter().copied());
                let mut best: Option<CellRead> = None;
                for (i, &(bg, n)) in counts.iter().take(2).enumerate() {
                    if i == 1 && n * 4 < counts[0].1 * 3 {
                        break;
                    }
                    let cell = classify(&pixels, bg, opts, &glyphs, &mut mask);
                    if best.as_ref().is_none_or(|b| cell.distance < b.distance) {
                        best = Some(cell);
                    }
                }
                line.push(best.unwrap_or(CellRead {
                    ch: ' ',
                    background: [0; 4],
                    foreground: None,
                    distance: 0,
                }));
            }
            out.push(line);
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::image::{encode_png_rgba, img_instructions};

    const CW: u32 = 4;
    const CH: u32 = 6;

    /// A 3x5 bitmap font, drawn at the top-left of a 4x6 cell.
    fn font(c: char) -> Option<[&'static str; 5]> {
        Some(match c {
            'H' => ["#.#", "#.#", "###", "#.#", "#.#"],
            'I' => ["###", ".#.", ".#.", ".#.", "###"],
            'O' => ["###", "#.#", "#.#", "#.#", "###"],
            'L' => ["#..", "#..", "#..", "#..", "###"],
            'A' => [".#.", "#.#", "###", "#.#", "#.#"],
            'T' => ["###", ".#.", ".#.", ".#.", ".#."],
            'B' => ["##.", "#.#", "##.", "#.#", "##."],
            '.' => ["...", "...", "...", "...", ".#."],
            _ => return None,
        })
    }

    fn mask(c: char) -> Vec<bool> {
        let mut m = vec![false; (CW * CH) as usize];
        if let Some(rows) = font(c) {
            for (y, r) in rows.iter().enumerate() {
                for (x, b) in r.bytes().enumerate() {
                    m[y * CW as usize + x] = b == b'#';
                }
            }
        }
        m
    }

    /// Renders lines into RGBA with per-cell colours.
    fn render(
        lines: &[&str],
        cols: u32,
        colors: &dyn Fn(u32, u32) -> ([u8; 4], [u8; 4]),
    ) -> Vec<u8> {
        let (w, h) = (cols * CW, lines.len() as u32 * CH);
        let mut px = vec![0u8; (w * h * 4) as usize];
        for row in 0..lines.len() as u32 {
            let chars: Vec<char> = lines[row as usize].chars().collect();
            for col in 0..cols {
                let (bg, fg) = colors(col, row);
                let m = mask(chars.get(col as usize).copied().unwrap_or(' '));
                for dy in 0..CH {
                    for dx in 0..CW {
                        let on = m[(dy * CW + dx) as usize];
                        let o = (((row * CH + dy) * w + col * CW + dx) * 4) as usize;
                        px[o..o + 4].copy_from_slice(if on { &fg } else { &bg });
                    }
                }
            }
        }
        px
    }

    #[test]
    fn reads_text_drawn_with_png_images() {
        let black = [0, 0, 0, 255];
        let white = [255, 255, 255, 255];
        let green = [0, 200, 0, 255];
        let cols = 5;
        let px = render(&["HOLA.", "BIT", " T I"], cols, &|col, row| {
            if (col, row) == (1, 1) {
                (white, black) // inverse video (a cursor)
            } else if row == 2 {
                (black, green)
            } else {
                (black, white)
            }
        });
        let (w, h) = (cols * CW, 3 * CH);
        let mut d = Display::new();
        d.apply(&guacr_protocol::Instruction::new(
            "size",
            ["0", &(w + 8).to_string(), &(h + 2).to_string()],
        ))
        .unwrap();
        // Send the picture as two images: top row and the rest, at an offset.
        let top = encode_png_rgba(w, CH, &px[..(w * CH * 4) as usize]).unwrap();
        let rest = encode_png_rgba(w, 2 * CH, &px[(w * CH * 4) as usize..]).unwrap();
        for i in img_instructions(1, 14, 0, "image/png", 4, 0, &top)
            .into_iter()
            .chain(img_instructions(3, 14, 0, "image/png", 4, CH as i32, &rest))
        {
            d.apply(&i).unwrap();
        }
        let mut opts = ReadTextOptions::new(CW, CH);
        opts.origin_x = 4;
        opts.charset = "HIOLATB.".into();
        assert_eq!(d.read_text_with(&opts, &mask), ["HOLA.", "BIT", " T I"]);

        let cells = d.read_cells(&opts, &mask);
        assert_eq!(cells[1][1].background, white);
        assert_eq!(cells[1][1].foreground, Some(black));
        assert_eq!(cells[2][1].foreground, Some(green));
        assert_eq!(cells[0][4].distance, 0);
        assert_eq!(cells[2][0].foreground, None);

        // Without an origin the grid is misaligned by one cell.
        let plain = d.read_text(CW, CH, &mask, "HIOLATB.");
        assert_eq!(plain[0], " HOLA.");
        // Default charset: glyphs not in the font have empty masks and never win.
        let all = d.read_text_with(
            &ReadTextOptions {
                charset: String::new(),
                ..opts.clone()
            },
            &mask,
        );
        assert_eq!(all, ["HOLA.", "BIT", " T I"]);
    }

    #[test]
    fn low_contrast_noise_is_blank_and_damaged_glyphs_match_nearest() {
        let bg = [10, 10, 40, 255];
        let mut d = Display::new();
        d.apply(&guacr_protocol::Instruction::new("size", ["0", "8", "6"]))
            .unwrap();
        let mut px = render(&["HI"], 2, &|_, _| (bg, [250, 250, 250, 255]));
        // Faint noise in cell 0 and one flipped pixel of the I.
        px[0..4].copy_from_slice(&[20, 20, 50, 255]);
        let o = ((2 * 8 + 4 + 1) * 4) as usize;
        px[o..o + 4].copy_from_slice(&bg);
        let png = encode_png_rgba(8, 6, &px).unwrap();
        for i in img_instructions(1, 12, 0, "image/png", 0, 0, &png) {
            d.apply(&i).unwrap();
        }
        let cells = d.read_cells(
            &ReadTextOptions {
                charset: "HIOT".into(),
                ..ReadTextOptions::new(CW, CH)
            },
            &mask,
        );
        assert_eq!(cells[0][0].ch, 'H');
        assert_eq!(cells[0][1].ch, 'I');
        assert_eq!(cells[0][1].distance, 1);
        // A cell with only faint noise reads as blank.
        let mut d2 = Display::new();
        d2.apply(&guacr_protocol::Instruction::new("size", ["0", "4", "6"]))
            .unwrap();
        let mut px2 = render(&[" "], 1, &|_, _| (bg, bg));
        px2[4..8].copy_from_slice(&[20, 20, 50, 255]);
        for i in img_instructions(
            1,
            12,
            0,
            "image/png",
            0,
            0,
            &encode_png_rgba(4, 6, &px2).unwrap(),
        ) {
            d2.apply(&i).unwrap();
        }
        assert_eq!(d2.read_text(CW, CH, &mask, ""), [""]);
    }
}
