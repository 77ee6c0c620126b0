//! [`Display`]: the framebuffer, what clients currently show (the shadow),
//! and the production of frames.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use guacr_protocol::{COMP_OVER, COMP_SRC};
use rayon::prelude::*;

use crate::encode::{self, Kind, Opts, Piece};
use crate::framebuffer::Framebuffer;
use crate::pool::EncodePool;
use crate::{
    BROADCAST_STREAM, Damage, DisplayConfig, DisplayError, LAG_BAD, LAG_GOOD, MAX_CURSOR_DIMENSION,
    PixelFormat, Rect, USER_STREAM, scroll, wire,
};

/// Tile size of the change search.
const TILE: u32 = 64;
/// Changed areas this close are sent as one image.
const MERGE_GAP: u32 = 32;
/// More changed tiles than this are merged by tile row first.
const MAX_BOXES: usize = 192;
/// Dirty rectangles kept between frames (more are merged).
const MAX_DAMAGE: usize = 64;
/// Lossy (JPEG) areas remembered for refinement (more are merged).
const MAX_LOSSY: usize = 64;
/// How long a JPEG area must stay unchanged before it is resent as PNG.
pub const REFINE_AFTER: Duration = Duration::from_millis(400);

/// What one frame contained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Bytes of instructions written.
    pub bytes: usize,
    /// `copy` instructions (CopyRect and detected scrolls).
    pub copies: u32,
    /// Of which detected scrolls.
    pub scrolls: u32,
    /// `rect`+`cfill` pairs.
    pub fills: u32,
    /// PNG images.
    pub pngs: u32,
    /// Lossless WebP images.
    pub webps: u32,
    /// JPEG images.
    pub jpegs: u32,
    /// PNG images resending earlier JPEG areas losslessly.
    pub refinements: u32,
    /// Pixels sent as images.
    pub image_pixels: u64,
    /// Whether the cursor was sent.
    pub cursor: bool,
    /// Whether the desktop size was sent.
    pub resized: bool,
    /// JPEG quality in effect.
    pub jpeg_quality: u8,
    /// Wall time spent producing the frame.
    pub elapsed: Duration,
}

impl FrameStats {
    fn lossless_image(&mut self, r: Rect, refinement: bool) {
        self.image_pixels += r.area();
        if refinement {
            self.refinements += 1;
        }
    }

    fn add(&mut self, o: &FrameStats) {
        self.bytes += o.bytes;
        self.copies += o.copies;
        self.scrolls += o.scrolls;
        self.fills += o.fills;
        self.pngs += o.pngs;
        self.webps += o.webps;
        self.jpegs += o.jpegs;
        self.refinements += o.refinements;
        self.image_pixels += o.image_pixels;
        self.cursor |= o.cursor;
        self.resized |= o.resized;
        self.jpeg_quality = o.jpeg_quality;
        self.elapsed += o.elapsed;
    }
}

#[derive(Debug, Clone)]
struct CursorImage {
    hotspot_x: u32,
    hotspot_y: u32,
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct CopyOp {
    sx: u32,
    sy: u32,
    dx: u32,
    dy: u32,
    w: u32,
    h: u32,
}

struct State {
    lossless: bool,
    jpeg_allowed: bool,
    webp_allowed: bool,
    quality_min: u8,
    quality_max: u8,
    cursor_layer: i32,
    refine_after: Duration,
    fb: Framebuffer,
    /// What clients show (exact pixels even where they got a JPEG).
    shadow: Framebuffer,
    damage: Damage,
    copies: Vec<CopyOp>,
    force_full: bool,
    size_changed: bool,
    lossy: Vec<(Rect, Instant)>,
    cursor: Option<CursorImage>,
    cursor_dirty: bool,
    lag: Duration,
    /// Frame output produced but not yet handed to the caller (a cancelled
    /// `take_frame_async`); goes out first with the next frame.
    undelivered: Vec<u8>,
    undelivered_stats: FrameStats,
    /// Picture changes held back by [`Display::take_frame_deferred`]: the
    /// shadow is behind the framebuffer until the next real frame.
    held: bool,
    /// Nothing changed since the last deferred frame.
    held_clean: bool,
}

/// The graphical display of one session. See the crate documentation.
pub struct Display {
    state: Arc<Mutex<State>>,
    pool: Arc<EncodePool>,
    config: DisplayConfig,
}

impl std::fmt::Debug for Display {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Display")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Display {
    /// A black display of the configured size; the first frame paints it all.
    pub fn new(config: DisplayConfig) -> Result<Display, DisplayError> {
        let fb = Framebuffer::new(config.width, config.height)?;
        let pool = config.pool.clone().unwrap_or_else(EncodePool::shared);
        let (qmin, qmax) = (
            config.jpeg_quality_min.clamp(1, 100),
            config.jpeg_quality_max.clamp(1, 100),
        );
        let state = State {
            lossless: config.lossless,
            jpeg_allowed: config.jpeg_allowed(),
            webp_allowed: config.webp_allowed(),
            quality_min: qmin.min(qmax),
            quality_max: qmax.max(qmin),
            cursor_layer: if config.cursor_layer < 0 {
                config.cursor_layer
            } else {
                -1
            },
            refine_after: REFINE_AFTER,
            shadow: fb.clone(),
            fb,
            damage: Damage::new(MAX_DAMAGE),
            copies: Vec::new(),
            force_full: true,
            size_changed: true,
            lossy: Vec::new(),
            cursor: None,
            cursor_dirty: false,
            lag: Duration::ZERO,
            undelivered: Vec::new(),
            undelivered_stats: FrameStats::default(),
            held: false,
            held_clean: false,
        };
        Ok(Display {
            state: Arc::new(Mutex::new(state)),
            pool,
            config,
        })
    }

    fn st(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The configuration the display was created with (sizes are initial).
    pub fn config(&self) -> &DisplayConfig {
        &self.config
    }

    /// Current desktop width.
    pub fn width(&self) -> u32 {
        self.st().fb.width()
    }

    /// Current desktop height.
    pub fn height(&self) -> u32 {
        self.st().fb.height()
    }

    /// Runs `f` with the current framebuffer (e.g. to compare in tests).
    pub fn with_framebuffer<T>(&self, f: impl FnOnce(&Framebuffer) -> T) -> T {
        f(&self.st().fb)
    }

    /// A copy of the current framebuffer.
    pub fn framebuffer(&self) -> Framebuffer {
        self.st().fb.clone()
    }

    /// Draws `w`×`h` pixels (`0x00RRGGBB`, row `i` at `i * stride`) at (x, y).
    pub fn put_pixels(
        &mut self,
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        pixels: &[u32],
        stride: usize,
    ) -> Result<(), DisplayError> {
        let mut st = self.st();
        st.fb.put_pixels(x, y, w, h, pixels, stride)?;
        st.held_clean = false;
        st.damage.add(Rect::new(x, y, w, h));
        Ok(())
    }

    /// Draws `w`×`h` pixels given as bytes in `format` (`stride` bytes per row).
    #[allow(clippy::too_many_arguments)]
    pub fn put_bytes(
        &mut self,
        x: u32,
        y: u32,
        w: u32,
        h: u32,
        data: &[u8],
        stride: usize,
        format: PixelFormat,
    ) -> Result<(), DisplayError> {
        let mut st = self.st();
        st.fb.put_bytes(x, y, w, h, data, stride, format)?;
        st.held_clean = false;
        st.damage.add(Rect::new(x, y, w, h));
        Ok(())
    }

    /// Fills a rectangle with `color` (`0x00RRGGBB`).
    pub fn fill(&mut self, x: u32, y: u32, w: u32, h: u32, color: u32) -> Result<(), DisplayError> {
        let mut st = self.st();
        st.fb.fill(x, y, w, h, color)?;
        st.held_clean = false;
        st.damage.add(Rect::new(x, y, w, h));
        Ok(())
    }

    /// Moves a rectangle (RFB CopyRect): applied now, sent as `copy`.
    pub fn copy(
        &mut self,
        src_x: u32,
        src_y: u32,
        x: u32,
        y: u32,
        w: u32,
        h: u32,
    ) -> Result<(), DisplayError> {
        let mut st = self.st();
        st.fb.copy_within(src_x, src_y, x, y, w, h)?;
        st.held_clean = false;
        if w == 0 || h == 0 || (src_x == x && src_y == y) || st.force_full {
            return Ok(());
        }
        // Pixels copied from not-yet-sent areas are not yet right on the
        // client: their destinations are dirty too.
        let src = Rect::new(src_x, src_y, w, h);
        let moved: Vec<Rect> = st
            .damage
            .rects()
            .iter()
            .filter_map(|d| d.intersect(&src))
            .map(|i| Rect::new(i.x - src_x + x, i.y - src_y + y, i.width, i.height))
            .collect();
        for m in moved {
            st.damage.add(m);
        }
        st.copies.push(CopyOp {
            sx: src_x,
            sy: src_y,
            dx: x,
            dy: y,
            w,
            h,
        });
        if st.copies.len() > 256 {
            // A pathological stream of tiny copies: repaint instead.
            st.force_full = true;
            st.copies.clear();
        }
        Ok(())
    }

    /// Resizes the desktop (content at the top left is kept, new area is
    /// black); the next frame sends `size` and repaints.
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), DisplayError> {
        let mut st = self.st();
        if width == st.fb.width() && height == st.fb.height() {
            return Ok(());
        }
        st.fb.resize(width, height)?;
        st.held_clean = false;
        st.shadow.resize(width, height)?;
        st.size_changed = true;
        st.force_full = true;
        st.copies.clear();
        st.damage.clear();
        st.lossy.clear();
        Ok(())
    }

    /// Sets the cursor image: `rgba` holds `w`×`h` pixels R, G, B, A
    /// (straight alpha). `w == 0 || h == 0` hides the cursor; a hotspot
    /// outside the image is clamped to its edge.
    pub fn set_cursor(
        &mut self,
        hotspot_x: u32,
        hotspot_y: u32,
        w: u32,
        h: u32,
        rgba: &[u8],
    ) -> Result<(), DisplayError> {
        if w == 0 || h == 0 {
            self.hide_cursor();
            return Ok(());
        }
        if w > MAX_CURSOR_DIMENSION || h > MAX_CURSOR_DIMENSION {
            return Err(DisplayError::InvalidCursor {
                width: w,
                height: h,
                hotspot_x,
                hotspot_y,
            });
        }
        // Some servers put the hotspot on the edge: clamp rather than refuse.
        let (hotspot_x, hotspot_y) = (hotspot_x.min(w - 1), hotspot_y.min(h - 1));
        let needed = w as usize * h as usize * 4;
        if rgba.len() < needed {
            return Err(DisplayError::ShortBuffer {
                needed,
                got: rgba.len(),
            });
        }
        let mut st = self.st();
        st.cursor = Some(CursorImage {
            hotspot_x,
            hotspot_y,
            width: w,
            height: h,
            rgba: rgba[..needed].to_vec(),
        });
        st.cursor_dirty = true;
        st.held_clean = false;
        Ok(())
    }

    /// Hides the cursor (a 1×1 transparent cursor).
    pub fn hide_cursor(&mut self) {
        let mut st = self.st();
        st.cursor = Some(CursorImage {
            hotspot_x: 0,
            hotspot_y: 0,
            width: 1,
            height: 1,
            rgba: vec![0; 4],
        });
        st.cursor_dirty = true;
        st.held_clean = false;
    }

    /// Sets the client lag that drives JPEG quality (e.g.
    /// `Session::timing().max_lag`).
    pub fn set_lag(&mut self, lag: Duration) {
        self.st().lag = lag;
    }

    /// `Session::timing()` figures: the oldest unacknowledged frame's age and
    /// how many frames are in flight.
    pub fn note_timing(&mut self, max_unacked: usize, max_lag: Duration) {
        // Several frames in flight with a young oldest one still means the
        // client is behind by about that many frame times.
        let backlog = Duration::from_millis(40) * (max_unacked.saturating_sub(2) as u32);
        self.set_lag(max_lag.max(backlog));
    }

    /// The JPEG quality the next frame would use.
    pub fn jpeg_quality(&self) -> u8 {
        self.st().quality()
    }

    /// Updates the image mimetypes clients support (e.g. the intersection
    /// over all users after a join).
    pub fn set_image_mimetypes<S: AsRef<str>>(&mut self, mimetypes: &[S]) {
        self.config.image_mimetypes = mimetypes.iter().map(|m| m.as_ref().to_owned()).collect();
        let allowed = self.config.jpeg_allowed();
        let webp = self.config.webp_allowed();
        let mut st = self.st();
        st.jpeg_allowed = allowed;
        st.webp_allowed = webp;
    }

    /// Switches lossless mode.
    pub fn set_lossless(&mut self, lossless: bool) {
        self.config.lossless = lossless;
        let allowed = self.config.jpeg_allowed();
        let mut st = self.st();
        st.lossless = lossless;
        st.jpeg_allowed = allowed;
    }

    /// How long a JPEG area must stay unchanged before it is resent as PNG
    /// ([`REFINE_AFTER`] by default).
    pub fn set_refine_after(&mut self, after: Duration) {
        self.st().refine_after = after;
    }

    /// Repaints everything (and resends the cursor) at the next frame.
    pub fn invalidate(&mut self) {
        let mut st = self.st();
        st.force_full = true;
        st.copies.clear();
        st.cursor_dirty = st.cursor.is_some();
        st.held_clean = false;
    }

    /// Whether [`Display::take_frame`] would write anything now. After
    /// [`Display::take_frame_deferred`], only what changed since then counts.
    pub fn has_changes(&self) -> bool {
        let st = self.st();
        if st.held_clean {
            return !st.undelivered.is_empty();
        }
        st.force_full
            || st.size_changed
            || st.cursor_dirty
            || !st.copies.is_empty()
            || !st.damage.is_empty()
            || !st.undelivered.is_empty()
            || st.refinement_due(Instant::now()).is_some()
    }

    /// When lossless refinement of JPEG areas becomes due (if any are
    /// pending): call [`Display::take_frame`] then even if nothing else changed.
    pub fn next_refinement(&self) -> Option<Instant> {
        let st = self.st();
        if st.held {
            return None; // nothing is refined while pictures are held back
        }
        st.lossy.iter().map(|(_, t)| *t + st.refine_after).min()
    }

    /// Appends the instructions of everything changed since the previous
    /// frame to `out` (no `sync`). Blocks while the worker pool encodes.
    pub fn take_frame(&mut self, out: &mut Vec<u8>) -> FrameStats {
        let state = &self.state;
        self.pool.run(|| {
            let mut st = lock(state);
            st.produce_frame();
            st.deliver(out)
        })
    }

    /// Like [`Display::take_frame`], but the caller's (async) thread only
    /// waits: the frame is produced on the worker pool. Cancel-safe: if the
    /// future is dropped, the frame's bytes come out with the next frame.
    pub async fn take_frame_async(&mut self, out: &mut Vec<u8>) -> FrameStats {
        let state = self.state.clone();
        self.pool
            .spawn(move || {
                lock(&state).produce_frame();
            })
            .await;
        self.st().deliver(out)
    }

    /// A frame for clients that take the picture from elsewhere (every user
    /// watches the session's video): writes `size` and cursor changes, and
    /// holds the picture's changes back, unencoded, for the next
    /// [`Display::take_frame`] (which sends them against what clients were
    /// last sent, so nothing is lost). Costs no image encoding.
    pub fn take_frame_deferred(&mut self, out: &mut Vec<u8>) -> FrameStats {
        let mut st = self.st();
        let mut stats = st.deliver(out);
        let start = out.len();
        if st.size_changed {
            let (w, h) = (st.fb.width(), st.fb.height());
            wire::size(out, 0, w, h);
            st.size_changed = false;
            stats.resized = true;
        }
        if st.cursor_dirty {
            st.cursor_dirty = false;
            if let Some(c) = &st.cursor {
                write_cursor(out, BROADCAST_STREAM, st.cursor_layer, c);
                stats.cursor = true;
            }
        }
        stats.bytes += out.len() - start;
        st.held = true;
        st.held_clean = true;
        stats
    }

    /// Whether picture changes are held back by
    /// [`Display::take_frame_deferred`] (a joiner's
    /// [`Display::full_repaint`] must follow a real frame then).
    pub fn has_held_changes(&self) -> bool {
        self.st().held
    }

    /// Writes the picture clients currently show (as of the last frame),
    /// plus `size` and the cursor, for a joining user: send it to that user
    /// only, before the next broadcast frame. PNG only (any client decodes
    /// it); uses the per-user stream index [`USER_STREAM`]. Blocks while the
    /// pool encodes.
    pub fn full_repaint(&mut self, out: &mut Vec<u8>) {
        let state = &self.state;
        let bytes = self.pool.run(|| lock(state).repaint());
        out.extend_from_slice(&bytes);
    }

    /// [`Display::full_repaint`] without blocking the async runtime.
    pub async fn full_repaint_async(&mut self, out: &mut Vec<u8>) {
        let state = self.state.clone();
        let bytes = self.pool.spawn(move || lock(&state).repaint()).await;
        out.extend_from_slice(&bytes);
    }
}

impl State {
    fn quality(&self) -> u8 {
        let (lo, hi) = (self.quality_min, self.quality_max);
        if self.lag <= LAG_GOOD {
            return hi;
        }
        if self.lag >= LAG_BAD {
            return lo;
        }
        let f = (self.lag - LAG_GOOD).as_secs_f64() / (LAG_BAD - LAG_GOOD).as_secs_f64();
        (f64::from(hi) - f * f64::from(hi - lo)).round() as u8
    }

    fn refinement_due(&self, now: Instant) -> Option<Rect> {
        self.lossy
            .iter()
            .find(|(_, t)| now.saturating_duration_since(*t) >= self.refine_after)
            .map(|(r, _)| *r)
    }

    fn deliver(&mut self, out: &mut Vec<u8>) -> FrameStats {
        if out.is_empty() {
            std::mem::swap(out, &mut self.undelivered);
        } else {
            out.append(&mut self.undelivered);
        }
        std::mem::take(&mut self.undelivered_stats)
    }

    fn add_lossy(&mut self, r: Rect, t: Instant) {
        self.lossy.retain(|(o, _)| !r.contains(o));
        self.lossy.push((r, t));
        if self.lossy.len() > MAX_LOSSY {
            let all = self
                .lossy
                .iter()
                .fold(Rect::default(), |acc, (r, _)| acc.union(r));
            self.lossy.clear();
            self.lossy.push((all, t));
        }
    }

    /// Lossy areas moved by a copy stay lossy at their destination.
    fn move_lossy(&mut self, src: Rect, dx: u32, dy: u32, now: Instant) {
        let moved: Vec<Rect> = self
            .lossy
            .iter()
            .filter_map(|(l, _)| l.intersect(&src))
            .map(|i| Rect::new(i.x - src.x + dx, i.y - src.y + dy, i.width, i.height))
            .collect();
        for m in moved {
            self.add_lossy(m, now);
        }
    }

    /// Produces the next frame into `self.undelivered`.
    fn produce_frame(&mut self) {
        self.held = false;
        self.held_clean = false;
        let t0 = Instant::now();
        let now = t0;
        let mut out = std::mem::take(&mut self.undelivered);
        let start_len = out.len();
        let mut stats = FrameStats {
            jpeg_quality: self.quality(),
            ..FrameStats::default()
        };
        let (w, h) = (self.fb.width(), self.fb.height());
        if self.size_changed {
            wire::size(&mut out, 0, w, h);
            self.size_changed = false;
            stats.resized = true;
        }
        // Regions to compare with the shadow, and regions to send as they are.
        let mut regions: Vec<Rect> = Vec::new();
        let mut forced: Vec<(Rect, bool)> = Vec::new(); // (rect, refinement)
        if self.force_full {
            self.force_full = false;
            self.copies.clear();
            self.damage.clear();
            self.lossy.clear();
            forced.push((self.fb.bounds(), false));
        } else {
            for c in std::mem::take(&mut self.copies) {
                wire::copy(&mut out, 0, c.sx, c.sy, c.w, c.h, 0, c.dx, c.dy);
                // Bounds were checked when the copy was recorded.
                let _ = self.shadow.copy_within(c.sx, c.sy, c.dx, c.dy, c.w, c.h);
                self.move_lossy(Rect::new(c.sx, c.sy, c.w, c.h), c.dx, c.dy, now);
                stats.copies += 1;
            }
            regions = self
                .damage
                .take()
                .into_iter()
                .filter_map(|r| r.clip(w, h))
                .collect();
            // Lossless refinement of JPEG areas that stopped changing.
            let mut keep = Vec::with_capacity(self.lossy.len());
            for (l, t) in std::mem::take(&mut self.lossy) {
                if regions.iter().any(|r| r.intersect(&l).is_some()) {
                    keep.push((l, now));
                } else if now.saturating_duration_since(t) >= self.refine_after {
                    if let Some(l) = l.clip(w, h) {
                        forced.push((l, true));
                    }
                } else {
                    keep.push((l, t));
                }
            }
            self.lossy = keep;
        }

        // Scroll detection within the changed part of each dirty region.
        let mut search: Vec<Rect> = Vec::new();
        for r in &regions {
            // Bands of rows compared in parallel.
            let mut bands = Vec::new();
            let mut y = r.y;
            while y < r.bottom() {
                let h = (r.bottom() - y).min(128);
                bands.push(Rect::new(r.x, y, r.width, h));
                y += h;
            }
            let (fb, shadow) = (&self.fb, &self.shadow);
            let b = bands
                .par_iter()
                .filter_map(|b| scroll::changed_bounds(fb, shadow, *b))
                .reduce(Rect::default, |a, b| a.union(&b));
            if !b.is_empty() {
                search.push(b);
            }
        }
        for b in &search {
            for m in scroll::detect_and_apply(&self.fb, &mut self.shadow, *b) {
                wire::copy(
                    &mut out, 0, m.x, m.src_y, m.width, m.height, 0, m.x, m.dst_y,
                );
                self.move_lossy(
                    Rect::new(m.x, m.src_y, m.width, m.height),
                    m.x,
                    m.dst_y,
                    now,
                );
                stats.copies += 1;
                stats.scrolls += 1;
            }
        }

        // Changed tiles, tightened, then merged into rectangles.
        let fb = &self.fb;
        let shadow = &self.shadow;
        let mut tile_rows: Vec<Rect> = Vec::new();
        for b in &search {
            let mut y = b.y / TILE * TILE;
            while y < b.bottom() {
                if let Some(band) = Rect::new(b.x, y, b.width, TILE).intersect(b) {
                    tile_rows.push(band);
                }
                y += TILE;
            }
        }
        let changed: Vec<Rect> = tile_rows
            .par_iter()
            .flat_map_iter(|band| {
                let mut v = Vec::new();
                let mut x = band.x / TILE * TILE;
                while x < band.right() {
                    if let Some(t) = Rect::new(x, band.y, TILE, band.height).intersect(band)
                        && let Some(c) = scroll::changed_bounds(fb, shadow, t)
                    {
                        v.push(c);
                    }
                    x += TILE;
                }
                v
            })
            .collect();
        let mut merged = Damage::with_gap(usize::MAX, MERGE_GAP);
        if changed.len() > MAX_BOXES {
            // Changes scattered everywhere: one box per tile row keeps the
            // merge cheap.
            let mut rows: Vec<Rect> = Vec::new();
            for c in changed {
                match rows.iter_mut().find(|r| r.y / TILE == c.y / TILE) {
                    Some(r) => *r = r.union(&c),
                    None => rows.push(c),
                }
            }
            for r in rows {
                merged.add(r);
            }
        } else {
            for c in changed {
                merged.add(c);
            }
        }

        // Encode (in parallel) and write in order.
        let jpeg = self.jpeg_allowed && !self.lossless;
        let opts = Opts {
            jpeg,
            quality: stats.jpeg_quality,
            webp: self.webp_allowed,
        };
        let mut jobs: Vec<(Rect, bool, bool)> = Vec::new(); // (band, jpeg allowed, refinement)
        let mut bands = Vec::new();
        for r in merged.rects() {
            bands.clear();
            encode::split_bands(*r, &mut bands);
            jobs.extend(bands.iter().map(|b| (*b, jpeg, false)));
        }
        for (r, refine) in &forced {
            bands.clear();
            encode::split_bands(*r, &mut bands);
            jobs.extend(bands.iter().map(|b| (*b, jpeg && !refine, *refine)));
        }
        let pieces: Vec<(Piece, bool)> = jobs
            .par_iter()
            .map(|&(r, j, refine)| {
                let piece = if refine {
                    Piece {
                        rect: r,
                        kind: encode::encode_lossless(fb, r, opts.webp),
                    }
                } else {
                    encode::encode_region(fb, r, Opts { jpeg: j, ..opts })
                };
                (piece, refine)
            })
            .collect();
        for (p, refine) in pieces {
            let r = p.rect;
            match p.kind {
                Kind::Fill(c) => {
                    wire::fill(&mut out, 0, r.x, r.y, r.width, r.height, c);
                    stats.fills += 1;
                }
                Kind::Png(data) => {
                    write_image(&mut out, "image/png", r, &data);
                    stats.pngs += 1;
                    stats.lossless_image(r, refine);
                }
                Kind::Webp(data) => {
                    write_image(&mut out, "image/webp", r, &data);
                    stats.webps += 1;
                    stats.lossless_image(r, refine);
                }
                Kind::Jpeg(data) => {
                    write_image(&mut out, "image/jpeg", r, &data);
                    stats.jpegs += 1;
                    stats.image_pixels += r.area();
                    self.add_lossy(r, now);
                }
            }
        }
        for r in merged.rects().iter().chain(forced.iter().map(|(r, _)| r)) {
            self.fb.copy_rect_to(*r, &mut self.shadow);
        }

        if self.cursor_dirty {
            self.cursor_dirty = false;
            if let Some(c) = &self.cursor {
                write_cursor(&mut out, BROADCAST_STREAM, self.cursor_layer, c);
                stats.cursor = true;
            }
        }
        stats.bytes = out.len() - start_len;
        stats.elapsed = t0.elapsed();
        self.undelivered = out;
        self.undelivered_stats.add(&stats);
    }

    /// The joiner's repaint (see [`Display::full_repaint`]).
    fn repaint(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let (w, h) = (self.shadow.width(), self.shadow.height());
        wire::size(&mut out, 0, w, h);
        let mut bands = Vec::new();
        encode::split_bands(self.shadow.bounds(), &mut bands);
        let shadow = &self.shadow;
        let pngs: Vec<Vec<u8>> = bands
            .par_iter()
            .map(|b| encode::encode_png(shadow, *b))
            .collect();
        for (b, data) in bands.iter().zip(pngs) {
            wire::image(
                &mut out,
                USER_STREAM,
                COMP_OVER,
                0,
                "image/png",
                b.x,
                b.y,
                &data,
            );
        }
        if !self.undelivered.is_empty() {
            // The joiner will also receive the undelivered (already applied)
            // frame: repaint everything after it.
            self.force_full = true;
        }
        if let Some(c) = &self.cursor
            && !self.cursor_dirty
        {
            write_cursor(&mut out, USER_STREAM, self.cursor_layer, c);
        }
        out
    }
}

/// An image of the broadcast stream drawn over layer 0 at `r`.
fn write_image(out: &mut Vec<u8>, mimetype: &str, r: Rect, data: &[u8]) {
    wire::image(
        out,
        BROADCAST_STREAM,
        COMP_OVER,
        0,
        mimetype,
        r.x,
        r.y,
        data,
    );
}

fn write_cursor(out: &mut Vec<u8>, stream: i32, layer: i32, c: &CursorImage) {
    let png = encode::png_rgba(c.width, c.height, &c.rgba);
    wire::size(out, layer, c.width, c.height);
    // The image covers the whole buffer: SRC replaces the old cursor,
    // transparent pixels included.
    wire::image(out, stream, COMP_SRC, layer, "image/png", 0, 0, &png);
    wire::cursor(
        out,
        c.hotspot_x,
        c.hotspot_y,
        layer,
        0,
        0,
        c.width,
        c.height,
    );
}
