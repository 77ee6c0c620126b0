//! A model of the Guacamole client display (what guacamole-common-js draws).
//!
//! * Layer 0 is the default layer; positive layers are visible layers (created
//!   at the display size, positioned with `move`); negative layers are
//!   off-screen buffers that start empty and grow to fit every drawing
//!   operation (guacamole-common-js `autosize`).
//! * Pixels are straight (non-premultiplied) RGBA.
//! * Supported: `size` `move` `shade` `dispose` `img`+`blob`+`end` (PNG,
//!   JPEG, WebP) `copy` `transfer` `rect`+`cfill` `cursor` `sync`. Other
//!   drawing instructions are counted in [`Display::unhandled`]; problems (bad
//!   arguments, undecodable images, unsupported image types) are recorded in
//!   [`Display::warnings`].
//! * [`Display::revision`] changes whenever the picture returned by
//!   [`Display::screenshot`] (or the cursor) may have changed, so that
//!   players can skip recompositing unchanged frames.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, anyhow, bail};
use guacr_protocol::Instruction;

use crate::image::{decode_image, encode_png_rgba};

/// Largest accepted layer width/height.
pub const MAX_LAYER_DIMENSION: u32 = 16384;
/// Largest accepted layer area, in pixels.
pub const MAX_LAYER_PIXELS: u64 = 1 << 26;

/// Composite mode SRC: the source replaces the destination.
pub const COMP_SRC: i32 = guacr_protocol::COMP_SRC;
/// Composite mode OVER: source over destination.
pub const COMP_OVER: i32 = guacr_protocol::COMP_OVER;
/// Composite mode PLUS (additive).
pub const COMP_PLUS: i32 = 0xF;

/// Transfer function SRC (`GUAC_TRANSFER_BINARY_SRC`).
pub const TRANSFER_SRC: i32 = 0x3;

/// At most this many warnings are kept (later ones are only counted).
pub const MAX_WARNINGS: usize = 1000;

/// One layer or buffer.
#[derive(Debug, Clone)]
pub struct Layer {
    width: u32,
    height: u32,
    data: Vec<u8>,
    autosize: bool,
    parent: i32,
    x: i32,
    y: i32,
    z: i32,
    opacity: u8,
    /// Pending path (rectangles) for the next fill.
    path: Vec<(i32, i32, i32, i32)>,
}

impl Layer {
    fn new(width: u32, height: u32, autosize: bool) -> Self {
        Layer {
            width,
            height,
            data: vec![0; width as usize * height as usize * 4],
            autosize,
            parent: 0,
            x: 0,
            y: 0,
            z: 0,
            opacity: 255,
            path: Vec::new(),
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    /// RGBA pixels, row-major, `width * height * 4` bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// Whether the layer grows to fit drawing operations (buffers).
    pub fn autosize(&self) -> bool {
        self.autosize
    }
    /// Parent layer (from `move`; 0 by default).
    pub fn parent(&self) -> i32 {
        self.parent
    }
    /// Position relative to the parent (from `move`).
    pub fn position(&self) -> (i32, i32) {
        (self.x, self.y)
    }
    pub fn z(&self) -> i32 {
        self.z
    }
    /// Opacity from `shade` (255 = opaque).
    pub fn opacity(&self) -> u8 {
        self.opacity
    }

    /// The pixel at (x, y); transparent black outside the layer.
    pub fn pixel(&self, x: i32, y: i32) -> [u8; 4] {
        match self.offset(x, y) {
            Some(o) => [
                self.data[o],
                self.data[o + 1],
                self.data[o + 2],
                self.data[o + 3],
            ],
            None => [0; 4],
        }
    }

    fn offset(&self, x: i32, y: i32) -> Option<usize> {
        if x < 0 || y < 0 || x as u32 >= self.width || y as u32 >= self.height {
            return None;
        }
        Some((y as usize * self.width as usize + x as usize) * 4)
    }

    /// Resizes, keeping the existing content at the top left.
    fn resize(&mut self, width: u32, height: u32) -> anyhow::Result<()> {
        check_dimensions(width, height)?;
        if width == self.width && height == self.height {
            return Ok(());
        }
        let mut data = vec![0u8; width as usize * height as usize * 4];
        let copy_w = self.width.min(width) as usize * 4;
        for y in 0..self.height.min(height) as usize {
            let src = y * self.width as usize * 4;
            let dst = y * width as usize * 4;
            data[dst..dst + copy_w].copy_from_slice(&self.data[src..src + copy_w]);
        }
        self.data = data;
        self.width = width;
        self.height = height;
        Ok(())
    }

    /// guacamole-common-js `fitRect`: grows an autosize layer so that the
    /// rectangle fits (only to the right and bottom).
    fn fit(&mut self, x: i32, y: i32, w: i32, h: i32) -> anyhow::Result<()> {
        if !self.autosize {
            return Ok(());
        }
        let right = i64::from(x) + i64::from(w);
        let bottom = i64::from(y) + i64::from(h);
        let nw = right.max(i64::from(self.width));
        let nh = bottom.max(i64::from(self.height));
        if nw > i64::from(MAX_LAYER_DIMENSION) || nh > i64::from(MAX_LAYER_DIMENSION) {
            bail!("buffer would grow to {nw}x{nh}");
        }
        self.resize(nw as u32, nh as u32)
    }

    /// Extracts a rectangle already clipped to the layer.
    fn extract(&self, x: u32, y: u32, w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(w as usize * h as usize * 4);
        for row in y..y + h {
            let start = (row as usize * self.width as usize + x as usize) * 4;
            out.extend_from_slice(&self.data[start..start + w as usize * 4]);
        }
        out
    }

    /// Composites a `w`x`h` RGBA image at (dx, dy), clipped to the layer.
    fn blit(&mut self, src: &[u8], w: u32, h: u32, dx: i32, dy: i32, mode: i32) {
        if mode == COMP_SRC || mode == COMP_OVER {
            self.blit_fast(src, w, h, dx, dy, mode == COMP_SRC);
        } else {
            self.blit_with(src, w, h, dx, dy, |s, d| composite(mode, s, d));
        }
        if is_unbounded(mode) {
            let (x0, y0) = (i64::from(dx), i64::from(dy));
            let (x1, y1) = (x0 + i64::from(w), y0 + i64::from(h));
            self.clear_outside(mode, |x, y| x >= x0 && x < x1 && y >= y0 && y < y1);
        }
    }

    /// Canvas semantics of the "unbounded" composite operations that
    /// guacamole-common-js maps masks to (`copy`, `source-in`, `source-out`,
    /// `destination-in`, `destination-atop`): every pixel outside the drawn
    /// area is composited with a transparent source — `copy` (SRC, 0xC) erases
    /// the whole rest of the layer. Modelling this catches servers that draw
    /// partial updates with SRC.
    fn clear_outside(&mut self, mode: i32, inside: impl Fn(i64, i64) -> bool) {
        for y in 0..i64::from(self.height) {
            for x in 0..i64::from(self.width) {
                if inside(x, y) {
                    continue;
                }
                let o = ((y * i64::from(self.width) + x) * 4) as usize;
                let d = [
                    self.data[o],
                    self.data[o + 1],
                    self.data[o + 2],
                    self.data[o + 3],
                ];
                self.data[o..o + 4].copy_from_slice(&composite(mode, [0, 0, 0, 0], d));
            }
        }
    }

    /// SRC (`replace`) and OVER row by row, with copies for opaque pixels.
    fn blit_fast(&mut self, src: &[u8], w: u32, h: u32, dx: i32, dy: i32, replace: bool) {
        let x0 = i64::from(dx).max(0);
        let x1 = (i64::from(dx) + i64::from(w)).min(i64::from(self.width));
        let y0 = i64::from(dy).max(0);
        let y1 = (i64::from(dy) + i64::from(h)).min(i64::from(self.height));
        if x1 <= x0 || y1 <= y0 {
            return;
        }
        let row_bytes = (x1 - x0) as usize * 4;
        for ty in y0..y1 {
            let sy = (ty - i64::from(dy)) as usize;
            let sx = (x0 - i64::from(dx)) as usize;
            let si = (sy * w as usize + sx) * 4;
            let di = (ty as usize * self.width as usize + x0 as usize) * 4;
            let (Some(s_row), Some(d_row)) = (
                src.get(si..si + row_bytes),
                self.data.get_mut(di..di + row_bytes),
            ) else {
                return;
            };
            if replace {
                d_row.copy_from_slice(s_row);
                continue;
            }
            for (s, d) in s_row.chunks_exact(4).zip(d_row.chunks_exact_mut(4)) {
                match s[3] {
                    255 => d.copy_from_slice(s),
                    0 => {}
                    _ => {
                        let out = composite(
                            COMP_OVER,
                            [s[0], s[1], s[2], s[3]],
                            [d[0], d[1], d[2], d[3]],
                        );
                        d.copy_from_slice(&out);
                    }
                }
            }
        }
    }

    fn blit_with(
        &mut self,
        src: &[u8],
        w: u32,
        h: u32,
        dx: i32,
        dy: i32,
        mut op: impl FnMut([u8; 4], [u8; 4]) -> [u8; 4],
    ) {
        for sy in 0..h as i64 {
            let ty = i64::from(dy) + sy;
            if ty < 0 || ty >= i64::from(self.height) {
                continue;
            }
            for sx in 0..w as i64 {
                let tx = i64::from(dx) + sx;
                if tx < 0 || tx >= i64::from(self.width) {
                    continue;
                }
                let si = ((sy * i64::from(w) + sx) * 4) as usize;
                let di = ((ty * i64::from(self.width) + tx) * 4) as usize;
                let s = [src[si], src[si + 1], src[si + 2], src[si + 3]];
                let d = [
                    self.data[di],
                    self.data[di + 1],
                    self.data[di + 2],
                    self.data[di + 3],
                ];
                self.data[di..di + 4].copy_from_slice(&op(s, d));
            }
        }
    }
}

/// Masks that guacamole-common-js maps to unbounded canvas operations.
pub fn is_unbounded(mode: i32) -> bool {
    matches!(mode, 0x1 | 0x4 | 0x8 | 0x9 | 0xC)
}

fn check_dimensions(width: u32, height: u32) -> anyhow::Result<()> {
    if width > MAX_LAYER_DIMENSION
        || height > MAX_LAYER_DIMENSION
        || u64::from(width) * u64::from(height) > MAX_LAYER_PIXELS
    {
        bail!("layer size {width}x{height} is too large");
    }
    Ok(())
}

/// Porter-Duff compositing of straight-alpha RGBA pixels with a Guacamole
/// channel mask (`GUAC_COMP_*`): bit 0x8 keeps the source where the
/// destination is absent, 0x4 the source where both are present, 0x2 the
/// destination where the source is absent, 0x1 the destination where both are.
/// 0xF (PLUS) is additive.
pub fn composite(mode: i32, src: [u8; 4], dst: [u8; 4]) -> [u8; 4] {
    match mode {
        COMP_SRC => return src,
        COMP_OVER if src[3] == 255 => return src,
        COMP_OVER if src[3] == 0 => return dst,
        _ => {}
    }
    let a_s = f32::from(src[3]) / 255.0;
    let a_d = f32::from(dst[3]) / 255.0;
    let bit = |b: i32| if mode & b != 0 { 1.0f32 } else { 0.0 };
    let (ao, fs, fd) = if mode == COMP_PLUS {
        ((a_s + a_d).min(1.0), a_s, a_d)
    } else {
        let both = a_s * a_d;
        let s_only = a_s * (1.0 - a_d);
        let d_only = a_d * (1.0 - a_s);
        (
            both * (bit(0x4) + bit(0x1)) + s_only * bit(0x8) + d_only * bit(0x2),
            both * bit(0x4) + s_only * bit(0x8),
            both * bit(0x1) + d_only * bit(0x2),
        )
    };
    if ao <= 0.0 {
        return [0; 4];
    }
    let mut out = [0u8; 4];
    for c in 0..3 {
        let v = (fs * f32::from(src[c]) + fd * f32::from(dst[c])) / ao;
        out[c] = to_u8(v);
    }
    out[3] = to_u8(ao * 255.0);
    out
}

fn to_u8(v: f32) -> u8 {
    (v + 0.5).clamp(0.0, 255.0) as u8
}

/// A Guacamole transfer function (`GUAC_TRANSFER_BINARY_*`) applied to the
/// colour channels bitwise; like guacamole-common-js, functions that read the
/// source take the source's alpha, the others keep the destination's.
pub fn transfer(function: i32, src: [u8; 4], dst: [u8; 4]) -> [u8; 4] {
    let f = function & 0xF;
    let apply = |s: u8, d: u8| -> u8 {
        let mut r = 0u8;
        if f & 0x1 != 0 {
            r |= s & d;
        }
        if f & 0x2 != 0 {
            r |= s & !d;
        }
        if f & 0x4 != 0 {
            r |= !s & d;
        }
        if f & 0x8 != 0 {
            r |= !s & !d;
        }
        r
    };
    // BLACK (0x0), WHITE (0xF), DEST (0x5), NDEST (0xA) do not depend on the source.
    let alpha = if matches!(f, 0x0 | 0xF | 0x5 | 0xA) {
        dst[3]
    } else {
        src[3]
    };
    [
        apply(src[0], dst[0]),
        apply(src[1], dst[1]),
        apply(src[2], dst[2]),
        alpha,
    ]
}

/// The mouse cursor set by `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub hotspot_x: i32,
    pub hotspot_y: i32,
    pub width: u32,
    pub height: u32,
    /// RGBA pixels.
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
struct ImageStream {
    mode: i32,
    layer: i32,
    mimetype: String,
    x: i32,
    y: i32,
    data: Vec<u8>,
}

/// The client display model.
#[derive(Debug, Clone)]
pub struct Display {
    layers: BTreeMap<i32, Layer>,
    images: HashMap<i32, ImageStream>,
    frames: u64,
    last_sync: Option<i64>,
    cursor: Option<Cursor>,
    unhandled: BTreeMap<String, u64>,
    warnings: Vec<String>,
    warnings_dropped: u64,
    images_drawn: u64,
    images_skipped: u64,
    revision: u64,
}

impl Default for Display {
    fn default() -> Self {
        Self::new()
    }
}

/// Opcodes that are not about drawing: the display ignores them silently.
const NON_DISPLAY: &[&str] = &[
    "args",
    "ready",
    "error",
    "disconnect",
    "nop",
    "log",
    "msg",
    "name",
    "required",
    "nest",
    "audio",
    "video",
    "clipboard",
    "file",
    "pipe",
    "argv",
    "ack",
    "filesystem",
    "body",
    "undefine",
    // Input as recorded in `.guac` files (and `mouse` from shared sessions).
    "mouse",
    "key",
    "touch",
];

fn num<T: FromStr>(ins: &Instruction, i: usize, what: &str) -> anyhow::Result<T> {
    let s = ins
        .args
        .get(i)
        .ok_or_else(|| anyhow!("`{}` is missing argument {what}", ins.opcode))?;
    s.parse()
        .map_err(|_| anyhow!("`{}` argument {what} is not a number: {s:?}", ins.opcode))
}

impl Display {
    /// An empty display: layer 0 exists with size 0x0.
    pub fn new() -> Self {
        let mut layers = BTreeMap::new();
        layers.insert(0, Layer::new(0, 0, false));
        Display {
            layers,
            images: HashMap::new(),
            frames: 0,
            last_sync: None,
            cursor: None,
            unhandled: BTreeMap::new(),
            warnings: Vec::new(),
            warnings_dropped: 0,
            images_drawn: 0,
            images_skipped: 0,
            revision: 0,
        }
    }

    /// Width of the default layer.
    pub fn width(&self) -> u32 {
        self.layers.get(&0).map_or(0, |l| l.width)
    }

    /// Height of the default layer.
    pub fn height(&self) -> u32 {
        self.layers.get(&0).map_or(0, |l| l.height)
    }

    pub fn layer(&self, index: i32) -> Option<&Layer> {
        self.layers.get(&index)
    }

    /// All existing layers and buffers by index.
    pub fn layers(&self) -> impl Iterator<Item = (i32, &Layer)> {
        self.layers.iter().map(|(i, l)| (*i, l))
    }

    /// Number of `sync` instructions applied (frames).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Timestamp of the last `sync`.
    pub fn last_sync(&self) -> Option<i64> {
        self.last_sync
    }

    pub fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref()
    }

    /// Drawing instructions this model does not implement, with counts.
    pub fn unhandled(&self) -> &BTreeMap<String, u64> {
        &self.unhandled
    }

    /// Problems met while applying instructions (the first [`MAX_WARNINGS`]).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Warnings not kept because [`MAX_WARNINGS`] were already recorded.
    pub fn warnings_dropped(&self) -> u64 {
        self.warnings_dropped
    }

    /// A counter that changes whenever an applied instruction may have
    /// changed [`Display::screenshot`] or the cursor (drawing to a visible
    /// layer, layer geometry/opacity, `cursor`). Drawing to off-screen buffers,
    /// `rect` paths, image data still streaming, and `sync` leave it as is.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Approximate heap memory held by layers, buffers and pending images.
    pub fn heap_bytes(&self) -> usize {
        self.layers
            .values()
            .map(|l| l.data.capacity() + l.path.capacity() * 16)
            .sum::<usize>()
            + self
                .images
                .values()
                .map(|i| i.data.capacity())
                .sum::<usize>()
            + self.cursor.as_ref().map_or(0, |c| c.data.capacity())
    }

    /// Images decoded and drawn.
    pub fn images_drawn(&self) -> u64 {
        self.images_drawn
    }

    /// Images not drawn (unsupported type such as JPEG/WebP, or undecodable).
    pub fn images_skipped(&self) -> u64 {
        self.images_skipped
    }

    /// Whether `stream` is an image stream awaiting `blob`/`end`.
    pub fn has_image_stream(&self, stream: i32) -> bool {
        self.images.contains_key(&stream)
    }

    /// The pixel at (x, y) of `layer`; transparent black if absent.
    pub fn pixel(&self, layer: i32, x: i32, y: i32) -> [u8; 4] {
        self.layers.get(&layer).map_or([0; 4], |l| l.pixel(x, y))
    }

    /// Width, height and RGBA pixels of one layer, uncomposited.
    pub fn layer_rgba(&self, layer: i32) -> Option<(u32, u32, Vec<u8>)> {
        self.layers
            .get(&layer)
            .map(|l| (l.width, l.height, l.data.clone()))
    }

    /// The default layer composited with its visible descendants (ordered by
    /// z, with `shade` opacity), as width, height, RGBA.
    pub fn screenshot(&self) -> (u32, u32, Vec<u8>) {
        let mut out = Vec::new();
        let (w, h) = self.screenshot_into(&mut out);
        (w, h, out)
    }

    /// [`Display::screenshot`] into a reusable buffer (replacing its
    /// content); returns width and height. Without visible child layers this
    /// is a plain copy of layer 0.
    pub fn screenshot_into(&self, out: &mut Vec<u8>) -> (u32, u32) {
        out.clear();
        let has_children = self.layers.iter().any(|(i, l)| *i > 0 && l.parent == 0);
        if !has_children {
            return match self.layers.get(&0) {
                Some(l) => {
                    out.extend_from_slice(&l.data);
                    (l.width, l.height)
                }
                None => (0, 0),
            };
        }
        match self.render(0, 0) {
            Some((w, h, px)) => {
                *out = px;
                (w, h)
            }
            None => (0, 0),
        }
    }

    fn render(&self, index: i32, depth: u32) -> Option<(u32, u32, Vec<u8>)> {
        let layer = self.layers.get(&index)?;
        let mut canvas = layer.clone();
        if depth < 32 {
            let mut children: Vec<(i32, &Layer)> = self
                .layers
                .iter()
                .filter(|(i, l)| **i > 0 && **i != index && l.parent == index)
                .map(|(i, l)| (*i, l))
                .collect();
            children.sort_by_key(|(i, l)| (l.z, *i));
            for (ci, child) in children {
                if let Some((w, h, px)) = self.render(ci, depth + 1) {
                    let opacity = f32::from(child.opacity) / 255.0;
                    canvas.blit_with(&px, w, h, child.x, child.y, |s, d| {
                        let s = [s[0], s[1], s[2], to_u8(f32::from(s[3]) * opacity)];
                        composite(COMP_OVER, s, d)
                    });
                }
            }
        }
        Some((canvas.width, canvas.height, canvas.data))
    }

    /// Saves [`Display::screenshot`] as a PNG file.
    pub fn save_png(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let (w, h, px) = self.screenshot();
        let png = encode_png_rgba(w, h, &px)?;
        std::fs::write(path.as_ref(), png)
            .with_context(|| format!("writing {}", path.as_ref().display()))
    }

    fn layer_mut(&mut self, index: i32) -> &mut Layer {
        let (w, h) = (self.width(), self.height());
        self.layers.entry(index).or_insert_with(|| {
            if index > 0 {
                // guacamole-common-js createLayer: display-sized, child of layer 0.
                Layer::new(w, h, false)
            } else {
                Layer::new(0, 0, true)
            }
        })
    }

    /// Applies one server instruction. Errors are also recorded in
    /// [`Display::warnings`]; the display stays usable.
    pub fn apply(&mut self, ins: &Instruction) -> anyhow::Result<()> {
        if self.touches_picture(ins) {
            self.revision += 1;
        }
        let result = self.apply_inner(ins);
        if let Err(e) = &result {
            if self.warnings.len() < MAX_WARNINGS {
                self.warnings.push(format!("{}: {e:#}", ins.opcode));
            } else {
                self.warnings_dropped += 1;
            }
        }
        result
    }

    /// Whether `ins` may change the screenshot or the cursor (conservative:
    /// unknown drawing instructions do).
    fn touches_picture(&self, ins: &Instruction) -> bool {
        let layer_arg = |i: usize| ins.args.get(i).and_then(|a| a.parse::<i32>().ok());
        let visible = |l: Option<i32>| l.is_none_or(|l| l >= 0);
        match ins.opcode.as_str() {
            "sync" | "img" | "blob" | "rect" => false,
            "size" | "shade" | "dispose" | "move" => visible(layer_arg(0)),
            "cfill" => visible(layer_arg(1)),
            "copy" | "transfer" => visible(layer_arg(6)),
            "end" => layer_arg(0)
                .and_then(|s| self.images.get(&s))
                .is_some_and(|img| img.layer >= 0),
            op => !NON_DISPLAY.contains(&op),
        }
    }

    fn apply_inner(&mut self, ins: &Instruction) -> anyhow::Result<()> {
        match ins.opcode.as_str() {
            "size" => {
                let layer: i32 = num(ins, 0, "layer")?;
                let w: i64 = num(ins, 1, "width")?;
                let h: i64 = num(ins, 2, "height")?;
                if w < 0 || h < 0 || w > i64::from(u32::MAX) || h > i64::from(u32::MAX) {
                    bail!("invalid size {w}x{h}");
                }
                self.layer_mut(layer).resize(w as u32, h as u32)?;
            }
            "move" => {
                let layer: i32 = num(ins, 0, "layer")?;
                let parent: i32 = num(ins, 1, "parent")?;
                let (x, y, z) = (num(ins, 2, "x")?, num(ins, 3, "y")?, num(ins, 4, "z")?);
                if layer <= 0 {
                    bail!("cannot move layer {layer}");
                }
                let l = self.layer_mut(layer);
                l.parent = parent;
                l.x = x;
                l.y = y;
                l.z = z;
            }
            "shade" => {
                let layer: i32 = num(ins, 0, "layer")?;
                let a: i32 = num(ins, 1, "alpha")?;
                self.layer_mut(layer).opacity = a.clamp(0, 255) as u8;
            }
            "dispose" => {
                let layer: i32 = num(ins, 0, "layer")?;
                if layer != 0 {
                    self.layers.remove(&layer);
                }
            }
            "rect" => {
                let layer: i32 = num(ins, 0, "layer")?;
                let (x, y, w, h) = (
                    num(ins, 1, "x")?,
                    num(ins, 2, "y")?,
                    num(ins, 3, "width")?,
                    num(ins, 4, "height")?,
                );
                let l = self.layer_mut(layer);
                l.fit(x, y, w, h)?;
                l.path.push((x, y, w, h));
            }
            "cfill" => {
                let mode: i32 = num(ins, 0, "mask")?;
                let layer: i32 = num(ins, 1, "layer")?;
                let mut color = [0u8; 4];
                for (c, v) in color.iter_mut().enumerate() {
                    let n: i32 = num(ins, 2 + c, "color")?;
                    *v = n.clamp(0, 255) as u8;
                }
                fill_path(self.layer_mut(layer), mode, color);
            }
            "copy" | "transfer" => self.copy_or_transfer(ins)?,
            "cursor" => {
                let (hx, hy): (i32, i32) = (num(ins, 0, "x")?, num(ins, 1, "y")?);
                let src: i32 = num(ins, 2, "layer")?;
                let (sx, sy, w, h) = (
                    num(ins, 3, "x")?,
                    num(ins, 4, "y")?,
                    num(ins, 5, "width")?,
                    num(ins, 6, "height")?,
                );
                let layer = self.layer_mut(src).clone();
                let (w, h, data) = match clip_source(&layer, sx, sy, w, h) {
                    Some(c) => (c.w, c.h, layer.extract(c.sx, c.sy, c.w, c.h)),
                    None => (0, 0, Vec::new()),
                };
                self.cursor = Some(Cursor {
                    hotspot_x: hx,
                    hotspot_y: hy,
                    width: w,
                    height: h,
                    data,
                });
            }
            "img" => {
                let stream: i32 = num(ins, 0, "stream")?;
                let mode: i32 = num(ins, 1, "mask")?;
                let layer: i32 = num(ins, 2, "layer")?;
                let mimetype = ins
                    .args
                    .get(3)
                    .cloned()
                    .ok_or_else(|| anyhow!("`img` is missing its mimetype"))?;
                let (x, y) = (num(ins, 4, "x")?, num(ins, 5, "y")?);
                self.images.insert(
                    stream,
                    ImageStream {
                        mode,
                        layer,
                        mimetype,
                        x,
                        y,
                        data: Vec::new(),
                    },
                );
            }
            "blob" => {
                let stream: i32 = num(ins, 0, "stream")?;
                if let Some(img) = self.images.get_mut(&stream) {
                    let b64 = ins.args.get(1).map_or("", String::as_str);
                    img.data
                        .extend(guacr_protocol::base64::decode_lenient(b64.as_bytes()));
                }
            }
            "end" => {
                let stream: i32 = num(ins, 0, "stream")?;
                if let Some(img) = self.images.remove(&stream) {
                    self.draw_image(img)?;
                }
            }
            "sync" => {
                self.frames += 1;
                self.last_sync = ins.args.first().and_then(|t| t.parse().ok());
            }
            op if NON_DISPLAY.contains(&op) => {}
            op => {
                if matches!(op, "cstroke" | "lstroke" | "lfill") {
                    // Strokes and pattern fills are not modelled, but they consume the path.
                    if let Ok(layer) = num::<i32>(ins, 1, "layer")
                        && let Some(l) = self.layers.get_mut(&layer)
                    {
                        l.path.clear();
                    }
                }
                *self.unhandled.entry(op.to_owned()).or_default() += 1;
            }
        }
        Ok(())
    }

    fn draw_image(&mut self, img: ImageStream) -> anyhow::Result<()> {
        let decoded = match decode_image(&img.mimetype, &img.data) {
            Ok(Some(d)) => d,
            Ok(None) => {
                self.images_skipped += 1;
                if self.warnings.len() < MAX_WARNINGS {
                    self.warnings.push(format!(
                        "img: {} image on layer {} at ({}, {}) not decoded",
                        img.mimetype, img.layer, img.x, img.y
                    ));
                } else {
                    self.warnings_dropped += 1;
                }
                return Ok(());
            }
            Err(e) => {
                self.images_skipped += 1;
                return Err(e.context(format!("{} on layer {}", img.mimetype, img.layer)));
            }
        };
        let layer = self.layer_mut(img.layer);
        layer.fit(img.x, img.y, decoded.width as i32, decoded.height as i32)?;
        layer.blit(
            &decoded.data,
            decoded.width,
            decoded.height,
            img.x,
            img.y,
            img.mode,
        );
        self.images_drawn += 1;
        Ok(())
    }

    fn copy_or_transfer(&mut self, ins: &Instruction) -> anyhow::Result<()> {
        let src: i32 = num(ins, 0, "source layer")?;
        let (sx, sy, w, h) = (
            num(ins, 1, "x")?,
            num(ins, 2, "y")?,
            num(ins, 3, "width")?,
            num(ins, 4, "height")?,
        );
        let op: i32 = num(ins, 5, "mask/function")?;
        let dst: i32 = num(ins, 6, "destination layer")?;
        let (dx, dy): (i32, i32) = (num(ins, 7, "x")?, num(ins, 8, "y")?);
        let source = self.layer_mut(src);
        let Some(c) = clip_source(source, sx, sy, w, h) else {
            return Ok(());
        };
        // A temporary copy makes overlapping self-copies correct.
        let tmp = source.extract(c.sx, c.sy, c.w, c.h);
        let (dx, dy) = (dx + c.off_x, dy + c.off_y);
        let dest = self.layer_mut(dst);
        dest.fit(dx, dy, c.w as i32, c.h as i32)?;
        if ins.opcode == "copy" {
            dest.blit(&tmp, c.w, c.h, dx, dy, op);
        } else {
            dest.blit_with(&tmp, c.w, c.h, dx, dy, |s, d| transfer(op, s, d));
        }
        Ok(())
    }
}

struct Clipped {
    sx: u32,
    sy: u32,
    w: u32,
    h: u32,
    /// How far the source origin moved (to shift the destination too).
    off_x: i32,
    off_y: i32,
}

fn clip_source(layer: &Layer, sx: i32, sy: i32, w: i32, h: i32) -> Option<Clipped> {
    let x0 = i64::from(sx).max(0);
    let y0 = i64::from(sy).max(0);
    let x1 = (i64::from(sx) + i64::from(w)).min(i64::from(layer.width));
    let y1 = (i64::from(sy) + i64::from(h)).min(i64::from(layer.height));
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    Some(Clipped {
        sx: x0 as u32,
        sy: y0 as u32,
        w: (x1 - x0) as u32,
        h: (y1 - y0) as u32,
        off_x: (x0 - i64::from(sx)) as i32,
        off_y: (y0 - i64::from(sy)) as i32,
    })
}

/// Fills the layer's rectangle path (union of its rectangles) with `color`.
fn fill_path(layer: &mut Layer, mode: i32, color: [u8; 4]) {
    let path = std::mem::take(&mut layer.path);
    let (lw, lh) = (i64::from(layer.width), i64::from(layer.height));
    let mut bounds: Option<(i64, i64, i64, i64)> = None;
    for &(x, y, w, h) in &path {
        let (x0, y0) = (i64::from(x).max(0), i64::from(y).max(0));
        let x1 = (i64::from(x) + i64::from(w)).min(lw);
        let y1 = (i64::from(y) + i64::from(h)).min(lh);
        if x1 <= x0 || y1 <= y0 {
            continue;
        }
        bounds = Some(match bounds {
            None => (x0, y0, x1, y1),
            Some((a, b, c, d)) => (a.min(x0), b.min(y0), c.max(x1), d.max(y1)),
        });
    }
    let Some((bx0, by0, bx1, by1)) = bounds else {
        return;
    };
    let bw = (bx1 - bx0) as usize;
    let mut mask = vec![false; bw * (by1 - by0) as usize];
    for &(x, y, w, h) in &path {
        let (x0, y0) = (i64::from(x).max(bx0), i64::from(y).max(by0));
        let x1 = (i64::from(x) + i64::from(w)).min(bx1);
        let y1 = (i64::from(y) + i64::from(h)).min(by1);
        for yy in y0..y1 {
            let row = (yy - by0) as usize * bw;
            for xx in x0..x1 {
                mask[row + (xx - bx0) as usize] = true;
            }
        }
    }
    for yy in by0..by1 {
        for xx in bx0..bx1 {
            if mask[(yy - by0) as usize * bw + (xx - bx0) as usize] {
                let o = ((yy * lw + xx) * 4) as usize;
                let d = [
                    layer.data[o],
                    layer.data[o + 1],
                    layer.data[o + 2],
                    layer.data[o + 3],
                ];
                layer.data[o..o + 4].copy_from_slice(&composite(mode, color, d));
            }
        }
    }
    if is_unbounded(mode) {
        layer.clear_outside(mode, |x, y| {
            x >= bx0
                && x < bx1
                && y >= by0
                && y < by1
                && mask[(y - by0) as usize * bw + (x - bx0) as usize]
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::image::{decode_png, img_instructions};

    fn ins(wire_args: &str) -> Instruction {
        let mut it = wire_args.split(',');
        let op = it.next().unwrap();
        Instruction::new(op, it)
    }

    fn apply_all(d: &mut Display, list: &[&str]) {
        for s in list {
            d.apply(&ins(s)).unwrap();
        }
    }

    fn draw_png(d: &mut Display, layer: i32, x: i32, y: i32, w: u32, h: u32, px: &[u8]) {
        let png = encode_png_rgba(w, h, px).unwrap();
        for i in img_instructions(1, COMP_OVER, layer, "image/png", x, y, &png) {
            d.apply(&i).unwrap();
        }
    }

    #[test]
    fn img_png_is_placed_at_its_position() {
        let mut d = Display::new();
        apply_all(&mut d, &["size,0,10,8"]);
        // 2x2 image: red, green / blue, half-transparent white.
        let px = [
            255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 255, 255, 255, 128,
        ];
        draw_png(&mut d, 0, 3, 4, 2, 2, &px);
        assert_eq!(d.pixel(0, 3, 4), [255, 0, 0, 255]);
        assert_eq!(d.pixel(0, 4, 4), [0, 255, 0, 255]);
        assert_eq!(d.pixel(0, 3, 5), [0, 0, 255, 255]);
        // OVER onto transparent keeps the source as is.
        assert_eq!(d.pixel(0, 4, 5), [255, 255, 255, 128]);
        assert_eq!(d.pixel(0, 2, 4), [0; 4]);
        assert_eq!(d.pixel(0, 5, 4), [0; 4]);
        assert_eq!(d.images_drawn(), 1);
        assert!(d.warnings().is_empty());
        // Partly off-screen image is clipped, not an error.
        draw_png(&mut d, 0, 9, 7, 2, 2, &px);
        assert_eq!(d.pixel(0, 9, 7), [255, 0, 0, 255]);
        assert_eq!((d.width(), d.height()), (10, 8));
    }

    #[test]
    fn unsupported_image_type_is_skipped_with_a_warning() {
        let mut d = Display::new();
        apply_all(
            &mut d,
            &[
                "size,0,4,4",
                "img,2,14,0,image/gif,0,0",
                "blob,2,AAAA",
                "end,2",
            ],
        );
        assert_eq!(d.images_skipped(), 1);
        assert_eq!(d.warnings().len(), 1);
        assert_eq!(d.pixel(0, 0, 0), [0; 4]);
        // A corrupt JPEG is an error, recorded as a warning.
        apply_all(&mut d, &["img,3,14,0,image/jpeg,0,0", "blob,3,AAAA"]);
        assert!(d.apply(&ins("end,3")).is_err());
        assert_eq!(d.images_skipped(), 2);
        assert_eq!(d.warnings().len(), 2);
    }

    #[test]
    fn jpeg_and_webp_images_are_drawn() {
        let mut d = Display::new();
        apply_all(&mut d, &["size,0,40,20"]);
        // 16x16 JPEG: left half red, right half blue (block-aligned, so the
        // lossy result stays close to the original away from the edge).
        let mut rgb = Vec::new();
        for _y in 0..16 {
            for x in 0..16 {
                rgb.extend_from_slice(if x < 8 { &[255, 0, 0] } else { &[0, 0, 255] });
            }
        }
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 95)
            .encode(&rgb, 16, 16, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        for i in img_instructions(2, COMP_OVER, 0, "image/jpeg", 2, 3, &jpeg) {
            d.apply(&i).unwrap();
        }
        let near = |a: [u8; 4], b: [u8; 4]| (0..4).all(|c| a[c].abs_diff(b[c]) <= 12);
        assert!(
            near(d.pixel(0, 4, 5), [255, 0, 0, 255]),
            "{:?}",
            d.pixel(0, 4, 5)
        );
        assert!(
            near(d.pixel(0, 15, 16), [0, 0, 255, 255]),
            "{:?}",
            d.pixel(0, 15, 16)
        );
        assert_eq!(d.pixel(0, 1, 3), [0; 4]);
        // Lossless WebP with alpha: exact.
        let px = [10, 20, 30, 255, 40, 50, 60, 128];
        let mut webp = Vec::new();
        image_webp::WebPEncoder::new(&mut webp)
            .encode(&px, 2, 1, image_webp::ColorType::Rgba8)
            .unwrap();
        for i in img_instructions(4, COMP_SRC, -2, "image/webp", 0, 0, &webp) {
            d.apply(&i).unwrap();
        }
        assert_eq!(d.pixel(-2, 0, 0), [10, 20, 30, 255]);
        assert_eq!(d.pixel(-2, 1, 0), [40, 50, 60, 128]);
        assert_eq!(d.images_drawn(), 2);
        assert!(d.warnings().is_empty(), "{:?}", d.warnings());
    }

    #[test]
    fn revision_tracks_visible_changes_only() {
        let mut d = Display::new();
        apply_all(&mut d, &["size,0,4,4"]);
        let r0 = d.revision();
        apply_all(
            &mut d,
            &[
                "rect,-1,0,0,2,2",
                "cfill,14,-1,1,2,3,255",
                "sync,5",
                "nop",
                "mouse,1,1,0,5",
                "key,65,1,5",
            ],
        );
        assert_eq!(d.revision(), r0, "buffer drawing and input are invisible");
        assert!(d.unhandled().is_empty());
        apply_all(&mut d, &["copy,-1,0,0,2,2,14,0,1,1"]);
        assert!(d.revision() > r0);
        let r1 = d.revision();
        let png = encode_png_rgba(1, 1, &[1, 2, 3, 255]).unwrap();
        let list = img_instructions(7, COMP_OVER, 0, "image/png", 0, 0, &png);
        for (n, i) in list.iter().enumerate() {
            d.apply(i).unwrap();
            let last = n + 1 == list.len();
            assert_eq!(d.revision() > r1, last, "only `end` draws");
        }
        assert_eq!(d.pixel(0, 0, 0), [1, 2, 3, 255]);
    }

    #[test]
    fn overlapping_self_copy_scrolls_up() {
        let mut d = Display::new();
        apply_all(&mut d, &["size,0,3,4"]);
        // Row y has colour (y*10+1, 0, 0).
        for y in 0..4 {
            apply_all(
                &mut d,
                &[
                    &format!("rect,0,0,{y},3,1"),
                    &format!("cfill,14,0,{},0,0,255", y * 10 + 1),
                ],
            );
        }
        // Scroll up by one row: copy rows 1..4 to 0..3 on the same layer.
        apply_all(&mut d, &["copy,0,0,1,3,3,14,0,0,0"]);
        for x in 0..3 {
            assert_eq!(d.pixel(0, x, 0), [11, 0, 0, 255]);
            assert_eq!(d.pixel(0, x, 1), [21, 0, 0, 255]);
            assert_eq!(d.pixel(0, x, 2), [31, 0, 0, 255]);
            assert_eq!(d.pixel(0, x, 3), [31, 0, 0, 255]);
        }
        // Scroll down by one row (overlap in the other direction).
        apply_all(&mut d, &["copy,0,0,0,3,3,14,0,0,1"]);
        assert_eq!(d.pixel(0, 1, 0), [11, 0, 0, 255]);
        assert_eq!(d.pixel(0, 1, 1), [11, 0, 0, 255]);
        assert_eq!(d.pixel(0, 1, 2), [21, 0, 0, 255]);
        assert_eq!(d.pixel(0, 1, 3), [31, 0, 0, 255]);
    }

    #[test]
    fn cfill_over_vs_src_with_alpha() {
        let mut d = Display::new();
        apply_all(
            &mut d,
            &["size,0,4,1", "rect,0,0,0,4,1", "cfill,14,0,0,0,255,255"],
        );
        // Two overlapping rects in one path are filled once (no double blending).
        apply_all(
            &mut d,
            &["rect,0,0,0,2,1", "rect,0,1,0,1,1", "cfill,14,0,255,0,0,128"],
        );
        let over = d.pixel(0, 1, 0);
        assert_eq!(over, [128, 0, 127, 255]);
        assert_eq!(d.pixel(0, 0, 0), over);
        // The path is consumed by cfill: a fill without a path changes nothing.
        apply_all(&mut d, &["cfill,12,0,1,2,3,4"]);
        assert_eq!(d.pixel(0, 3, 0), [0, 0, 255, 255]);
        // SRC replaces the pixel, and (as on a browser canvas, `copy`) clears
        // everything outside the path.
        apply_all(&mut d, &["rect,0,2,0,1,1", "cfill,12,0,255,0,0,128"]);
        assert_eq!(d.pixel(0, 2, 0), [255, 0, 0, 128]);
        assert_eq!(d.pixel(0, 3, 0), [0, 0, 0, 0]);
        assert_eq!(d.pixel(0, 0, 0), [0, 0, 0, 0]);
    }

    #[test]
    fn src_copy_erases_the_rest_of_the_layer_like_a_canvas() {
        let mut d = Display::new();
        apply_all(
            &mut d,
            &["size,0,4,1", "rect,0,0,0,4,1", "cfill,14,0,9,9,9,255"],
        );
        apply_all(&mut d, &["copy,0,0,0,1,1,12,0,3,0"]);
        assert_eq!(d.pixel(0, 3, 0), [9, 9, 9, 255]);
        assert_eq!(d.pixel(0, 1, 0), [0, 0, 0, 0]);
        apply_all(
            &mut d,
            &[
                "rect,0,0,0,4,1",
                "cfill,14,0,9,9,9,255",
                "copy,0,0,0,1,1,14,0,3,0",
            ],
        );
        assert_eq!(d.pixel(0, 1, 0), [9, 9, 9, 255], "OVER is bounded");
    }

    #[test]
    fn composite_modes() {
        let s = [200, 100, 0, 255];
        let d = [0, 0, 50, 255];
        assert_eq!(composite(COMP_SRC, [1, 2, 3, 0], d), [1, 2, 3, 0]);
        assert_eq!(composite(COMP_OVER, [1, 2, 3, 0], d), d);
        assert_eq!(composite(COMP_OVER, s, d), s);
        // RIN (0x1): destination where both are present.
        assert_eq!(composite(0x1, s, d), d);
        // OUT (0x8) with an opaque destination: nothing.
        assert_eq!(composite(0x8, s, d), [0; 4]);
        // ROVER (0xB): destination over source.
        assert_eq!(composite(0xB, s, d), d);
        assert_eq!(composite(0xB, s, [0; 4]), s);
        assert_eq!(
            composite(COMP_PLUS, [100, 0, 0, 255], [100, 10, 0, 255]),
            [200, 10, 0, 255]
        );
    }

    #[test]
    fn buffers_autosize_and_transfer() {
        let mut d = Display::new();
        apply_all(
            &mut d,
            &["size,0,4,4", "rect,-1,2,3,2,1", "cfill,14,-1,9,9,9,255"],
        );
        let b = d.layer(-1).unwrap();
        assert!(b.autosize());
        assert_eq!((b.width(), b.height()), (4, 4));
        assert_eq!(d.pixel(-1, 3, 3), [9, 9, 9, 255]);
        apply_all(&mut d, &["copy,-1,2,3,2,1,14,0,0,0"]);
        assert_eq!(d.pixel(0, 0, 0), [9, 9, 9, 255]);
        assert_eq!(d.pixel(0, 1, 0), [9, 9, 9, 255]);
        // Copy from outside the source is clipped (shifting the destination).
        apply_all(&mut d, &["copy,-1,-1,3,2,1,12,0,0,1"]);
        assert_eq!(d.pixel(0, 0, 1), [0; 4]);
        assert_eq!(d.pixel(0, 1, 1), [0; 4]);
        apply_all(&mut d, &["copy,-1,1,3,3,1,12,0,0,2"]);
        assert_eq!(d.pixel(0, 1, 2), [9, 9, 9, 255]);
        // transfer SRC and NSRC (0xC).
        apply_all(&mut d, &["transfer,-1,2,3,1,1,3,0,3,3"]);
        assert_eq!(d.pixel(0, 3, 3), [9, 9, 9, 255]);
        apply_all(&mut d, &["transfer,-1,2,3,1,1,12,0,3,3"]);
        assert_eq!(d.pixel(0, 3, 3), [246, 246, 246, 255]);
        apply_all(&mut d, &["dispose,-1"]);
        assert!(d.layer(-1).is_none());
    }

    #[test]
    fn visible_layers_composite_into_screenshot() {
        let mut d = Display::new();
        apply_all(
            &mut d,
            &[
                "size,0,4,4",
                "rect,0,0,0,4,4",
                "cfill,14,0,0,0,0,255",
                "size,1,2,2",
                "move,1,0,1,1,5",
                "rect,1,0,0,2,2",
                "cfill,14,1,255,255,255,255",
                "shade,1,128",
                "sync,1234",
                "cursor,1,1,1,0,0,2,2",
                "frobnicate,1",
                "arc,0,1,1,1,0,3,0",
            ],
        );
        let (w, h, px) = d.screenshot();
        assert_eq!((w, h), (4, 4));
        assert_eq!(&px[0..4], &[0, 0, 0, 255]);
        let o = (4 + 1) * 4;
        assert_eq!(&px[o..o + 4], &[128, 128, 128, 255]);
        // Layer 0 itself is untouched.
        assert_eq!(d.pixel(0, 1, 1), [0, 0, 0, 255]);
        assert_eq!(d.frames(), 1);
        assert_eq!(d.last_sync(), Some(1234));
        let c = d.cursor().unwrap();
        assert_eq!((c.hotspot_x, c.width, c.height), (1, 2, 2));
        assert_eq!(&c.data[0..4], &[255, 255, 255, 255]);
        assert_eq!(d.unhandled().get("frobnicate"), Some(&1));
        assert_eq!(d.unhandled().get("arc"), Some(&1));
        // Malformed arguments are reported and recorded, the display survives.
        assert!(d.apply(&ins("size,0,x,1")).is_err());
        assert_eq!(d.warnings().len(), 1);
        assert_eq!(d.width(), 4);
        let path = std::env::temp_dir().join(format!("guacr-testkit-{}.png", std::process::id()));
        d.save_png(&path).unwrap();
        let back = decode_png(&std::fs::read(&path).unwrap()).unwrap();
        std::fs::remove_file(&path).ok();
        assert_eq!(back.data, px);
    }
}
