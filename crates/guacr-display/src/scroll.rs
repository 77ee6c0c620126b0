//! Vertical scroll detection: finds rows of the new picture that equal rows
//! of what the client shows, shifted vertically, so they can be sent as one
//! `copy` instead of pixels.

use std::collections::HashMap;

use crate::Rect;
use crate::framebuffer::Framebuffer;

/// Regions shorter than this are not worth a scroll search.
const MIN_HEIGHT: u32 = 16;
/// Narrower regions are not worth it either.
const MIN_WIDTH: u32 = 32;
/// A copied run must be at least this many rows.
const MIN_RUN: u32 = 4;
/// At most this many copies per region and frame.
const MAX_ROUNDS: usize = 3;
/// Width of the stripe whose rows vote for a shift.
const STRIPE: u32 = 256;

/// One detected move: rows `src_y..src_y+height` to `dst_y..`, columns
/// `x..x+width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Move {
    pub x: u32,
    pub width: u32,
    pub src_y: u32,
    pub dst_y: u32,
    pub height: u32,
}

/// Hash of a row of pixels (4 independent lanes, then mixed).
pub(crate) fn hash_row(row: &[u32]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = [
        0x243F_6A88_85A3_08D3u64,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
    ];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, h) in h.iter_mut().enumerate() {
            let v = u64::from(c[2 * l]) | (u64::from(c[2 * l + 1]) << 32);
            *h = (*h ^ v).wrapping_mul(K).rotate_left(29);
        }
    }
    let mut t = 0xC0AC_29B7_C97C_50DDu64 ^ row.len() as u64;
    for &p in chunks.remainder() {
        t = (t ^ u64::from(p)).wrapping_mul(K).rotate_left(29);
    }
    let mut out = t;
    for v in h {
        out = (out ^ v).wrapping_mul(K).rotate_left(31);
    }
    out ^ (out >> 32)
}

/// Index of the first pixel where `a` and `b` differ (chunks compared with
/// `memcmp` first).
#[inline]
fn first_diff(a: &[u32], b: &[u32]) -> Option<usize> {
    const C: usize = 32;
    let mut off = 0;
    for (ca, cb) in a.chunks(C).zip(b.chunks(C)) {
        if ca != cb {
            return ca.iter().zip(cb).position(|(p, q)| p != q).map(|i| off + i);
        }
        off += ca.len();
    }
    None
}

/// Index of the last pixel where `a` and `b` differ.
#[inline]
fn last_diff(a: &[u32], b: &[u32]) -> Option<usize> {
    const C: usize = 32;
    let mut end = a.len().min(b.len());
    while end > 0 {
        let start = end.saturating_sub(C);
        let (ca, cb) = (&a[start..end], &b[start..end]);
        if ca != cb {
            return ca
                .iter()
                .zip(cb)
                .rposition(|(p, q)| p != q)
                .map(|i| start + i);
        }
        end = start;
    }
    None
}

/// The tight bounding box of the pixels of `r` that differ between `a` and `b`.
pub(crate) fn changed_bounds(a: &Framebuffer, b: &Framebuffer, r: Rect) -> Option<Rect> {
    let (mut x0, mut x1, mut y0, mut y1) = (u32::MAX, 0u32, u32::MAX, 0u32);
    for y in r.y..r.bottom() {
        let ra = a.row(r.x, y, r.width);
        let rb = b.row(r.x, y, r.width);
        let Some(first) = first_diff(ra, rb) else {
            continue;
        };
        let last = last_diff(ra, rb).unwrap_or(first);
        x0 = x0.min(r.x + first as u32);
        x1 = x1.max(r.x + last as u32 + 1);
        y0 = y0.min(y);
        y1 = y.max(y1);
    }
    (x0 < x1).then(|| Rect::new(x0, y0, x1 - x0, y1 + 1 - y0))
}

/// Finds vertical moves that turn `shadow` (what the client shows) into
/// `fb` within `r`, applies each to `shadow` and returns them in order.
#[allow(clippy::needless_range_loop)] // rows are compared at i and at i + d
pub(crate) fn detect_and_apply(fb: &Framebuffer, shadow: &mut Framebuffer, r: Rect) -> Vec<Move> {
    let mut moves = Vec::new();
    if r.height < MIN_HEIGHT || r.width < MIN_WIDTH {
        return moves;
    }
    let n = r.height as usize;
    // Votes come from a stripe at the left of the region (where text lines
    // start): cheap to hash even when the whole screen changed; runs are
    // then verified on whole rows.
    let sw = r.width.min(STRIPE);
    let fb_h: Vec<u64> = (r.y..r.bottom())
        .map(|y| hash_row(fb.row(r.x, y, sw)))
        .collect();
    let mut sh_h: Vec<u64> = (r.y..r.bottom())
        .map(|y| hash_row(shadow.row(r.x, y, sw)))
        .collect();
    // Stripes of one colour vote for nothing (blank lines are everywhere).
    let uniform: Vec<bool> = (r.y..r.bottom())
        .map(|y| {
            let row = fb.row(r.x, y, sw);
            row.iter().all(|&p| p == row[0])
        })
        .collect();
    let rows_equal = |fy: usize, shadow: &Framebuffer, sy: usize| {
        fb.row(r.x, r.y + fy as u32, r.width) == shadow.row(r.x, r.y + sy as u32, r.width)
    };
    for _ in 0..MAX_ROUNDS {
        let mut index: HashMap<u64, Vec<u32>> = HashMap::with_capacity(n);
        for (j, &h) in sh_h.iter().enumerate() {
            let e = index.entry(h).or_default();
            if e.len() < 4 {
                e.push(j as u32);
            }
        }
        let mut votes: HashMap<i64, u32> = HashMap::new();
        let mut changed = 0u32;
        for i in 0..n {
            if fb_h[i] == sh_h[i] || uniform[i] {
                continue;
            }
            changed += 1;
            if let Some(js) = index.get(&fb_h[i]) {
                for &j in js {
                    *votes.entry(i64::from(j) - i as i64).or_default() += 1;
                }
            }
        }
        let Some((&d, &v)) = votes.iter().max_by_key(|&(d, v)| (*v, -d.abs())) else {
            break;
        };
        if d == 0 || v < 2 || v * 8 < changed {
            break;
        }
        // Longest run of rows i with fb[i] == shadow[i + d] (verified).
        let (lo, hi) = if d > 0 {
            (0usize, n - d as usize)
        } else {
            ((-d) as usize, n)
        };
        let mut best = (0usize, 0usize, 0u32); // start, len, rows it fixes
        let mut start = lo;
        let mut fixes = 0u32;
        for i in lo..=hi {
            let ok = i < hi && {
                let j = (i as i64 + d) as usize;
                fb_h[i] == sh_h[j] && rows_equal(i, shadow, j)
            };
            if ok {
                // A row the copy fixes (its stripe differs: cheap and enough
                // for this threshold).
                if fb_h[i] != sh_h[i] {
                    fixes += 1;
                }
            } else {
                if i - start > best.1 {
                    best = (start, i - start, fixes);
                }
                start = i + 1;
                fixes = 0;
            }
        }
        let (i0, len, fixes) = best;
        if (len as u32) < MIN_RUN || fixes < 2 {
            break;
        }
        let m = Move {
            x: r.x,
            width: r.width,
            src_y: r.y + (i0 as i64 + d) as u32,
            dst_y: r.y + i0 as u32,
            height: len as u32,
        };
        if shadow
            .copy_within(m.x, m.src_y, m.x, m.dst_y, m.width, m.height)
            .is_err()
        {
            break;
        }
        let src = (i0 as i64 + d) as usize;
        sh_h.copy_within(src..src + len, i0);
        moves.push(m);
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_rows(fb: &mut Framebuffer, first_line: u32, lines: u32) {
        for l in 0..lines {
            let seed = first_line + l;
            for y in 0..16 {
                for x in 0..fb.width() {
                    let on = (x.wrapping_mul(7) ^ seed.wrapping_mul(13) ^ y).is_multiple_of(5);
                    fb.fill(x, l * 16 + y, 1, 1, if on { 0xffffff } else { 0 })
                        .unwrap();
                }
            }
        }
    }

    #[test]
    fn diff_positions() {
        let a: Vec<u32> = (0..100).collect();
        let mut b = a.clone();
        assert_eq!((first_diff(&a, &b), last_diff(&a, &b)), (None, None));
        b[0] = 1000;
        b[70] = 1000;
        assert_eq!((first_diff(&a, &b), last_diff(&a, &b)), (Some(0), Some(70)));
        b[0] = 0;
        b[99] = 5;
        assert_eq!(
            (first_diff(&a, &b), last_diff(&a, &b)),
            (Some(70), Some(99))
        );
    }

    #[test]
    fn finds_one_line_scroll() {
        let mut shadow = Framebuffer::new(200, 160).unwrap();
        text_rows(&mut shadow, 0, 10);
        let mut fb = Framebuffer::new(200, 160).unwrap();
        text_rows(&mut fb, 1, 10);
        let moves = detect_and_apply(&fb, &mut shadow, fb.bounds());
        assert_eq!(
            moves,
            vec![Move {
                x: 0,
                width: 200,
                src_y: 16,
                dst_y: 0,
                height: 144
            }]
        );
        // Only the last line still differs.
        assert_eq!(
            changed_bounds(&fb, &shadow, fb.bounds()),
            Some(Rect::new(0, 144, 200, 16))
        );
    }

    #[test]
    fn no_scroll_in_unrelated_change() {
        let mut shadow = Framebuffer::new(64, 64).unwrap();
        text_rows(&mut shadow, 0, 4);
        let mut fb = Framebuffer::new(64, 64).unwrap();
        text_rows(&mut fb, 100, 4);
        assert!(detect_and_apply(&fb, &mut shadow, fb.bounds()).is_empty());
    }
}
