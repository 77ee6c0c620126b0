//! Axis-aligned rectangles in framebuffer coordinates.

/// A rectangle of pixels: `x..x+width` × `y..y+height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    /// Exclusive right edge.
    #[inline]
    pub fn right(&self) -> u32 {
        self.x.saturating_add(self.width)
    }

    /// Exclusive bottom edge.
    #[inline]
    pub fn bottom(&self) -> u32 {
        self.y.saturating_add(self.height)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// Number of pixels.
    #[inline]
    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The overlap of two rectangles (`None` if they do not overlap).
    pub fn intersect(&self, o: &Rect) -> Option<Rect> {
        let x0 = self.x.max(o.x);
        let y0 = self.y.max(o.y);
        let x1 = self.right().min(o.right());
        let y1 = self.bottom().min(o.bottom());
        (x1 > x0 && y1 > y0).then(|| Rect::new(x0, y0, x1 - x0, y1 - y0))
    }

    /// The bounding box of both rectangles.
    pub fn union(&self, o: &Rect) -> Rect {
        if self.is_empty() {
            return *o;
        }
        if o.is_empty() {
            return *self;
        }
        let x0 = self.x.min(o.x);
        let y0 = self.y.min(o.y);
        let x1 = self.right().max(o.right());
        let y1 = self.bottom().max(o.bottom());
        Rect::new(x0, y0, x1 - x0, y1 - y0)
    }

    /// Whether the rectangles overlap or share an edge.
    pub fn touches(&self, o: &Rect) -> bool {
        self.x <= o.right() && o.x <= self.right() && self.y <= o.bottom() && o.y <= self.bottom()
    }

    /// Whether the rectangles are at most `gap` pixels apart.
    pub fn near(&self, o: &Rect, gap: u32) -> bool {
        self.x <= o.right().saturating_add(gap)
            && o.x <= self.right().saturating_add(gap)
            && self.y <= o.bottom().saturating_add(gap)
            && o.y <= self.bottom().saturating_add(gap)
    }

    /// Whether `o` lies entirely inside `self`.
    pub fn contains(&self, o: &Rect) -> bool {
        o.x >= self.x && o.y >= self.y && o.right() <= self.right() && o.bottom() <= self.bottom()
    }

    /// Clips to a `width` × `height` surface.
    pub fn clip(&self, width: u32, height: u32) -> Option<Rect> {
        self.intersect(&Rect::new(0, 0, width, height))
    }
}

/// A bounded list of dirty rectangles. Rectangles that touch are merged when
/// the merge wastes little area; past `max` entries the pair whose union
/// grows least is merged, so the list never exceeds `max` rectangles.
#[derive(Debug, Clone)]
pub struct Damage {
    rects: Vec<Rect>,
    max: usize,
    /// Rectangles this close (pixels) may merge.
    gap: u32,
    /// Merge while the union is at most `num / 4` of the summed areas
    /// (plus `gap`² pixels).
    num: u64,
}

impl Damage {
    pub fn new(max: usize) -> Damage {
        Damage {
            rects: Vec::new(),
            max: max.max(1),
            gap: 0,
            num: 4,
        }
    }

    /// A list that also merges rectangles up to `gap` pixels apart, as long
    /// as the union is at most twice their summed area (plus `gap`²): fewer,
    /// larger images, where each image costs a header.
    pub fn with_gap(max: usize, gap: u32) -> Damage {
        Damage {
            rects: Vec::new(),
            max: max.max(1),
            gap,
            num: 8,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rects.is_empty()
    }

    pub fn rects(&self) -> &[Rect] {
        &self.rects
    }

    pub fn clear(&mut self) {
        self.rects.clear();
    }

    /// Takes the rectangles out, leaving the list empty.
    pub fn take(&mut self) -> Vec<Rect> {
        std::mem::take(&mut self.rects)
    }

    /// Total area (rectangles do not overlap much, but may).
    pub fn area(&self) -> u64 {
        self.rects.iter().map(Rect::area).sum()
    }

    /// Adds a rectangle.
    pub fn add(&mut self, r: Rect) {
        if r.is_empty() {
            return;
        }
        let mut r = r;
        // Absorb every rectangle the new one contains or cheaply merges with.
        loop {
            let mut merged = false;
            let mut i = 0;
            while i < self.rects.len() {
                let o = self.rects[i];
                if r.contains(&o) {
                    self.rects.swap_remove(i);
                    continue;
                }
                if o.contains(&r) {
                    return;
                }
                if o.near(&r, self.gap) {
                    let u = o.union(&r);
                    // Merge when the union wastes little area.
                    let slack = u64::from(self.gap) * u64::from(self.gap);
                    if u.area() * 4 <= (o.area() + r.area()) * self.num + slack * 4 {
                        self.rects.swap_remove(i);
                        r = u;
                        merged = true;
                        continue;
                    }
                }
                i += 1;
            }
            if !merged {
                break;
            }
        }
        self.rects.push(r);
        while self.rects.len() > self.max {
            self.merge_cheapest();
        }
    }

    fn merge_cheapest(&mut self) {
        let n = self.rects.len();
        let mut best = (u64::MAX, 0, 1);
        for i in 0..n {
            for j in (i + 1)..n {
                let (a, b) = (self.rects[i], self.rects[j]);
                let growth = a.union(&b).area() - a.area().max(b.area());
                if growth < best.0 {
                    best = (growth, i, j);
                }
            }
        }
        let (_, i, j) = best;
        let u = self.rects[i].union(&self.rects[j]);
        self.rects.swap_remove(j);
        self.rects.swap_remove(i);
        self.add(u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersect_union() {
        let a = Rect::new(0, 0, 10, 10);
        let b = Rect::new(5, 5, 10, 10);
        assert_eq!(a.intersect(&b), Some(Rect::new(5, 5, 5, 5)));
        assert_eq!(a.union(&b), Rect::new(0, 0, 15, 15));
        assert_eq!(a.intersect(&Rect::new(10, 0, 5, 5)), None);
        assert!(a.touches(&Rect::new(10, 0, 5, 5)));
        assert_eq!(
            Rect::new(5, 5, 100, 100).clip(20, 10),
            Some(Rect::new(5, 5, 15, 5))
        );
    }

    #[test]
    fn damage_is_bounded_and_covers() {
        let mut d = Damage::new(8);
        let mut added = Vec::new();
        for i in 0..100u32 {
            let r = Rect::new((i * 37) % 500, (i * 91) % 400, 1 + i % 13, 1 + i % 7);
            d.add(r);
            added.push(r);
            assert!(d.rects().len() <= 8);
        }
        for r in added {
            assert!(
                d.rects().iter().any(|o| o.contains(&r))
                    || (r.x..r.right()).all(|x| (r.y..r.bottom())
                        .all(|y| d.rects().iter().any(|o| o.contains(&Rect::new(x, y, 1, 1))))),
                "{r:?} not covered"
            );
        }
    }

    #[test]
    fn near_boxes_merge_with_gap() {
        let mut d = Damage::with_gap(usize::MAX, 32);
        // Glyph boxes of one text line, a few pixels apart.
        for i in 0..20 {
            d.add(Rect::new(i * 64 + 3, 2 + i % 3, 57, 12));
        }
        assert_eq!(d.rects().len(), 1);
        // Far apart: kept separate.
        d.add(Rect::new(0, 500, 10, 10));
        assert_eq!(d.rects().len(), 2);
        // Without a gap, boxes that do not touch stay apart.
        let mut d = Damage::new(usize::MAX);
        d.add(Rect::new(0, 0, 10, 10));
        d.add(Rect::new(12, 0, 10, 10));
        assert_eq!(d.rects().len(), 2);
    }

    #[test]
    fn adjacent_rows_merge() {
        let mut d = Damage::new(64);
        for y in 0..10 {
            d.add(Rect::new(0, y * 16, 640, 16));
        }
        assert_eq!(d.rects(), &[Rect::new(0, 0, 640, 160)]);
    }
}
