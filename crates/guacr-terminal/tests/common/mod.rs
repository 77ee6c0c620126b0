//! A tiny Guacamole display model for tests: applies `size`, `img`/`blob`/
//! `end` (PNG), `copy`, `rect` + `cfill` to RGBA layers.
//!
//! Only composite mode 14 (OVER) is accepted: mode 12 (SRC) is canvas
//! `copy` in guacamole-common-js, which erases the rest of the layer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use guacr_protocol::{Instruction, parse_all};

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Layer {
    pub w: u32,
    pub h: u32,
    pub px: Vec<[u8; 4]>,
}

impl Layer {
    fn resize(&mut self, w: u32, h: u32) {
        let mut px = vec![[0u8; 4]; (w * h) as usize];
        for y in 0..h.min(self.h) {
            for x in 0..w.min(self.w) {
                px[(y * w + x) as usize] = self.px[(y * self.w + x) as usize];
            }
        }
        self.w = w;
        self.h = h;
        self.px = px;
    }

    pub fn get(&self, x: u32, y: u32) -> [u8; 4] {
        self.px[(y * self.w + x) as usize]
    }

    /// Draws `v` with source-over compositing.
    fn put(&mut self, x: i64, y: i64, v: [u8; 4]) {
        if x >= 0 && y >= 0 && (x as u32) < self.w && (y as u32) < self.h {
            let d = &mut self.px[(y as u32 * self.w + x as u32) as usize];
            let a = u32::from(v[3]);
            if a == 255 {
                *d = v;
            } else {
                for i in 0..3 {
                    d[i] = ((u32::from(v[i]) * a + u32::from(d[i]) * (255 - a)) / 255) as u8;
                }
                d[3] = (a + u32::from(d[3]) * (255 - a) / 255) as u8;
            }
        }
    }

    /// RGB pixels of a rectangle, row-major.
    pub fn region(&self, x: u32, y: u32, w: u32, h: u32) -> Vec<[u8; 3]> {
        let mut v = Vec::new();
        for yy in y..y + h {
            for xx in x..x + w {
                let p = self.get(xx, yy);
                v.push([p[0], p[1], p[2]]);
            }
        }
        v
    }
}

#[derive(Default)]
pub struct Display {
    pub layers: HashMap<i32, Layer>,
    streams: HashMap<String, (i32, i64, i64, Vec<u8>)>,
    path: Vec<(i32, i64, i64, i64, i64)>,
    pub instructions: usize,
}

fn num(s: &str) -> i64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

pub fn parse(bytes: &[u8]) -> Vec<Instruction> {
    let (ins, used) = parse_all(bytes).expect("valid instructions");
    assert_eq!(used, bytes.len(), "trailing partial instruction");
    ins
}

impl Display {
    pub fn apply(&mut self, bytes: &[u8]) {
        for ins in parse(bytes) {
            self.apply_one(&ins);
        }
    }

    fn layer(&mut self, l: i32) -> &mut Layer {
        self.layers.entry(l).or_default()
    }

    pub fn apply_one(&mut self, ins: &Instruction) {
        self.instructions += 1;
        let a = &ins.args;
        match ins.opcode.as_str() {
            "size" => {
                let (l, w, h) = (num(&a[0]) as i32, num(&a[1]) as u32, num(&a[2]) as u32);
                self.layer(l).resize(w, h);
            }
            "img" => {
                assert_eq!(a[1], "14", "img mode");
                assert_eq!(a[3], "image/png");
                self.streams.insert(
                    a[0].clone(),
                    (num(&a[2]) as i32, num(&a[4]), num(&a[5]), Vec::new()),
                );
            }
            "blob" => {
                let s = self.streams.get_mut(&a[0]).expect("blob on open stream");
                s.3.extend(guacr_protocol::base64::decode_lenient(a[1].as_bytes()));
            }
            "end" => {
                let (l, x, y, data) = self.streams.remove(&a[0]).expect("end of open stream");
                let mut dec = png::Decoder::new(std::io::Cursor::new(data));
                dec.set_transformations(png::Transformations::EXPAND);
                let mut r = dec.read_info().expect("png header");
                let mut buf = vec![0; r.output_buffer_size().unwrap()];
                let info = r.next_frame(&mut buf).expect("png data");
                let bpp = info.color_type.samples();
                let layer = self.layer(l);
                for yy in 0..info.height {
                    for xx in 0..info.width {
                        let o = ((yy * info.width + xx) as usize) * bpp;
                        let p = match bpp {
                            3 => [buf[o], buf[o + 1], buf[o + 2], 255],
                            4 => [buf[o], buf[o + 1], buf[o + 2], buf[o + 3]],
                            1 => [buf[o], buf[o], buf[o], 255],
                            _ => [buf[o], buf[o], buf[o], buf[o + 1]],
                        };
                        layer.put(x + i64::from(xx), y + i64::from(yy), p);
                    }
                }
            }
            "copy" => {
                let src = num(&a[0]) as i32;
                let (sx, sy, w, h) = (num(&a[1]), num(&a[2]), num(&a[3]), num(&a[4]));
                assert_eq!(a[5], "14", "copy mode");
                let dst = num(&a[6]) as i32;
                let (dx, dy) = (num(&a[7]), num(&a[8]));
                // Snapshot semantics (as canvas drawImage onto itself).
                let s = self.layers.get(&src).cloned().unwrap_or_default();
                assert!(
                    sx >= 0 && sy >= 0 && sx + w <= i64::from(s.w) && sy + h <= i64::from(s.h),
                    "copy source out of bounds: {ins:?} layer {}x{}",
                    s.w,
                    s.h
                );
                let d = self.layer(dst);
                for yy in 0..h {
                    for xx in 0..w {
                        let p = s.get((sx + xx) as u32, (sy + yy) as u32);
                        d.put(dx + xx, dy + yy, p);
                    }
                }
            }
            "rect" => {
                self.path.push((
                    num(&a[0]) as i32,
                    num(&a[1]),
                    num(&a[2]),
                    num(&a[3]),
                    num(&a[4]),
                ));
            }
            "cfill" => {
                assert_eq!(a[0], "14", "cfill mode");
                let l = num(&a[1]) as i32;
                let c = [
                    num(&a[2]) as u8,
                    num(&a[3]) as u8,
                    num(&a[4]) as u8,
                    num(&a[5]) as u8,
                ];
                let path = std::mem::take(&mut self.path);
                let layer = self.layer(l);
                for (pl, x, y, w, h) in path {
                    assert_eq!(pl, l, "rect and cfill on the same layer");
                    for yy in y..y + h {
                        for xx in x..x + w {
                            layer.put(xx, yy, c);
                        }
                    }
                }
            }
            "sync" | "name" | "nop" => {}
            other => panic!("unexpected instruction {other}"),
        }
    }

    pub fn screen(&self) -> &Layer {
        self.layers.get(&0).expect("layer 0 exists")
    }
}

/// Counts instructions by opcode.
pub fn opcode_counts(bytes: &[u8]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for i in parse(bytes) {
        *m.entry(i.opcode).or_insert(0) += 1;
    }
    m
}
