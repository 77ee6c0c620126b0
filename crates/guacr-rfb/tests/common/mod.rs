//! Helpers shared by the guacr-rfb tests: a hand-built RFB server side.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use guacr_rfb::{Event, PixelFormat, RfbClient, RfbConfig, RfbError};

/// Builder for server-to-client bytes.
#[derive(Default, Clone)]
pub struct Msg(pub Vec<u8>);

impl Msg {
    pub fn new() -> Msg {
        Msg(Vec::new())
    }
    pub fn u8(mut self, v: u8) -> Msg {
        self.0.push(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Msg {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Msg {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i32(mut self, v: i32) -> Msg {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bytes(mut self, b: &[u8]) -> Msg {
        self.0.extend_from_slice(b);
        self
    }
    /// FramebufferUpdate header.
    pub fn update(self, n: u16) -> Msg {
        self.u8(0).u8(0).u16(n)
    }
    /// Rectangle header.
    pub fn rect(self, x: u16, y: u16, w: u16, h: u16, enc: i32) -> Msg {
        self.u16(x).u16(y).u16(w).u16(h).i32(enc)
    }
    /// A 32bpp little-endian 0x00RRGGBB pixel (the default requested format).
    pub fn px(self, c: u32) -> Msg {
        self.bytes(&c.to_le_bytes())
    }
    /// A 3-byte CPIXEL of the default format.
    pub fn cpx(self, c: u32) -> Msg {
        self.bytes(&c.to_le_bytes()[..3])
    }
    /// A 3-byte Tight TPIXEL (R, G, B).
    pub fn tpx(self, c: u32) -> Msg {
        self.bytes(&[(c >> 16) as u8, (c >> 8) as u8, c as u8])
    }
}

pub fn server_init(w: u16, h: u16, pf: PixelFormat, name: &str) -> Vec<u8> {
    Msg::new()
        .u16(w)
        .u16(h)
        .bytes(&pf.to_wire())
        .u32(name.len() as u32)
        .bytes(name.as_bytes())
        .0
}

pub fn drain(c: &mut RfbClient) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// A client through a 3.8 / None handshake and ServerInit, events and output
/// drained.
pub fn connected(cfg: RfbConfig, w: u16, h: u16, server_pf: PixelFormat) -> RfbClient {
    let mut c = RfbClient::new(cfg);
    let mut s = b"RFB 003.008\n".to_vec();
    s.extend_from_slice(&[1, 1]);
    s.extend_from_slice(&0u32.to_be_bytes());
    s.extend_from_slice(&server_init(w, h, server_pf, "test"));
    c.feed(&s).expect("handshake");
    let ev = drain(&mut c);
    assert!(
        matches!(ev.last(), Some(Event::Connected { .. })),
        "not connected: {ev:?}"
    );
    c.take_output();
    c
}

pub fn default_client(w: u16, h: u16) -> RfbClient {
    connected(RfbConfig::default(), w, h, PixelFormat::RGB888)
}

/// Feeds and returns the events (panics on error).
pub fn feed(c: &mut RfbClient, b: &[u8]) -> Vec<Event> {
    c.feed(b).expect("feed");
    drain(c)
}

/// Feeds and returns the error.
pub fn feed_err(c: &mut RfbClient, b: &[u8]) -> RfbError {
    match c.feed(b) {
        Err(e) => e,
        Ok(()) => panic!("expected an error, got events {:?}", drain(c)),
    }
}

/// Framebuffer model rebuilt from events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fb {
    pub w: usize,
    pub h: usize,
    pub px: Vec<u32>,
}

impl Fb {
    pub fn new(w: usize, h: usize) -> Fb {
        Fb {
            w,
            h,
            px: vec![0xDEAD; w * h],
        }
    }
    pub fn apply(&mut self, ev: &[Event]) {
        for e in ev {
            match e {
                Event::Pixels { x, y, w, h, data } => {
                    assert_eq!(data.len(), usize::from(*w) * usize::from(*h));
                    for yy in 0..usize::from(*h) {
                        for xx in 0..usize::from(*w) {
                            self.px[(usize::from(*y) + yy) * self.w + usize::from(*x) + xx] =
                                data[yy * usize::from(*w) + xx];
                        }
                    }
                }
                Event::Fill { x, y, w, h, color } => {
                    for yy in 0..usize::from(*h) {
                        for xx in 0..usize::from(*w) {
                            self.px[(usize::from(*y) + yy) * self.w + usize::from(*x) + xx] =
                                *color;
                        }
                    }
                }
                Event::Copy {
                    src_x,
                    src_y,
                    x,
                    y,
                    w,
                    h,
                } => {
                    let old = self.px.clone();
                    for yy in 0..usize::from(*h) {
                        for xx in 0..usize::from(*w) {
                            self.px[(usize::from(*y) + yy) * self.w + usize::from(*x) + xx] =
                                old[(usize::from(*src_y) + yy) * self.w + usize::from(*src_x) + xx];
                        }
                    }
                }
                Event::Resize { width, height, .. } => {
                    *self = Fb::new(usize::from(*width), usize::from(*height));
                }
                _ => {}
            }
        }
    }
    pub fn at(&self, x: usize, y: usize) -> u32 {
        self.px[y * self.w + x]
    }
}

/// Compresses `data` through a persistent zlib stream with a sync flush (as
/// RFB servers do).
pub fn zsync(z: &mut flate2::Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1024);
    let start_in = z.total_in();
    loop {
        let consumed = (z.total_in() - start_in) as usize;
        out.reserve(4096);
        z.compress_vec(&data[consumed..], &mut out, flate2::FlushCompress::Sync)
            .expect("compress");
        if (z.total_in() - start_in) as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    out
}

/// Tight compact length.
pub fn compact(len: usize) -> Vec<u8> {
    let mut v = vec![(len & 0x7F) as u8];
    if len > 0x7F {
        v[0] |= 0x80;
        v.push(((len >> 7) & 0x7F) as u8);
        if len > 0x3FFF {
            v[1] |= 0x80;
            v.push((len >> 14) as u8);
        }
    }
    v
}
