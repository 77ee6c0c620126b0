//! Connects to a real VNC server with a blocking socket, waits for the first
//! full update and writes the framebuffer as a binary PPM. A smoke-test tool
//! for the decoders (compare the output of different encodings, or with the
//! X server's own screenshot).
//!
//! `cargo run -p guacr-rfb --example probe -- HOST:PORT ENCODING[,ENC..] OUT.ppm [PASSWORD] [DEPTH] [CHUNK]`
//!
//! ENCODING is a guacd `encodings` word (raw, copyrect, rre, hextile, tight,
//! trle, zrle) or `tightjpeg` (Tight with quality 9); DEPTH a guacd
//! `color-depth` (8, 16, 24, 32) or `native`; CHUNK the read size (default
//! 65536; 1 exercises fragmentation).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;

use guacr_rfb::{Encoding, Event, PixelFormatRequest, RfbClient, RfbConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: probe HOST:PORT ENCODINGS OUT.ppm [PASSWORD] [DEPTH] [CHUNK]");
        std::process::exit(2);
    }
    let mut jpeg = None;
    let mut encodings: Vec<Encoding> = args[2]
        .split(',')
        .filter_map(|w| {
            if w == "tightjpeg" {
                jpeg = Some(9);
                Some(Encoding::Tight)
            } else {
                Encoding::from_name(w)
            }
        })
        .collect();
    encodings.extend([
        Encoding::Cursor,
        Encoding::DesktopSize,
        Encoding::ExtendedDesktopSize,
        Encoding::LastRect,
        Encoding::DesktopName,
    ]);
    let pixel_format = match args.get(5).map(String::as_str) {
        Some("native") => PixelFormatRequest::ServerNative,
        Some(d) => PixelFormatRequest::from_color_depth(d.parse().unwrap()).unwrap(),
        None => PixelFormatRequest::default(),
    };
    let chunk: usize = args.get(6).map(|c| c.parse().unwrap()).unwrap_or(65536);
    let cfg = RfbConfig {
        password: args.get(4).filter(|p| !p.is_empty()).cloned(),
        encodings,
        jpeg_quality: jpeg,
        pixel_format,
        ..RfbConfig::default()
    };
    let mut sock = TcpStream::connect(&args[1]).expect("connect");
    let mut c = RfbClient::new(cfg);
    let mut buf = vec![0u8; chunk.max(1)];
    let (mut w, mut h) = (0usize, 0usize);
    let mut fb: Vec<u32> = Vec::new();
    let mut updates = 0;
    let mut stats = std::collections::BTreeMap::<&str, usize>::new();
    let started = std::time::Instant::now();
    loop {
        let out = c.take_output();
        if !out.is_empty() {
            sock.write_all(&out).unwrap();
        }
        let n = sock.read(&mut buf).unwrap();
        if n == 0 {
            eprintln!("eof: {}", c.eof());
            std::process::exit(1);
        }
        if let Err(e) = c.feed(&buf[..n]) {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
        while let Some(ev) = c.poll_event() {
            match ev {
                Event::Connected {
                    width,
                    height,
                    name,
                    pixel_format,
                } => {
                    eprintln!("connected {width}x{height} {name:?} server format {pixel_format:?}");
                    eprintln!("security {:?}, using {:?}", c.security(), c.pixel_format());
                    (w, h) = (usize::from(width), usize::from(height));
                    fb = vec![0; w * h];
                }
                Event::Resize { width, height, .. } => {
                    (w, h) = (usize::from(width), usize::from(height));
                    fb = vec![0; w * h];
                }
                Event::Pixels {
                    x,
                    y,
                    w: rw,
                    h: rh,
                    data,
                } => {
                    *stats.entry("pixels").or_default() += 1;
                    for row in 0..usize::from(rh) {
                        let d = (usize::from(y) + row) * w + usize::from(x);
                        fb[d..d + usize::from(rw)].copy_from_slice(
                            &data[row * usize::from(rw)..(row + 1) * usize::from(rw)],
                        );
                    }
                }
                Event::Fill {
                    x,
                    y,
                    w: rw,
                    h: rh,
                    color,
                } => {
                    *stats.entry("fill").or_default() += 1;
                    for row in 0..usize::from(rh) {
                        let d = (usize::from(y) + row) * w + usize::from(x);
                        fb[d..d + usize::from(rw)].fill(color);
                    }
                }
                Event::Copy {
                    src_x,
                    src_y,
                    x,
                    y,
                    w: rw,
                    h: rh,
                } => {
                    *stats.entry("copy").or_default() += 1;
                    let old = fb.clone();
                    for row in 0..usize::from(rh) {
                        let s = (usize::from(src_y) + row) * w + usize::from(src_x);
                        let d = (usize::from(y) + row) * w + usize::from(x);
                        fb[d..d + usize::from(rw)].copy_from_slice(&old[s..s + usize::from(rw)]);
                    }
                }
                Event::Cursor { w: cw, h: ch, .. } => {
                    eprintln!("cursor {cw}x{ch}");
                }
                Event::UpdateEnd => {
                    if !stats.is_empty() {
                        updates += 1;
                    }
                }
                Event::AuthFailed { reason } => {
                    eprintln!("auth failed: {reason}");
                    std::process::exit(3);
                }
                other => eprintln!("{other:?}"),
            }
        }
        if updates >= 1 {
            break;
        }
    }
    eprintln!("first update in {:?}: {stats:?}", started.elapsed());
    // PROBE_RESIZE=WxH: ask for a new desktop size and wait for the answer.
    if let Ok(size) = std::env::var("PROBE_RESIZE") {
        let (rw, rh) = size.split_once('x').expect("WxH");
        eprintln!("can_resize: {}", c.can_resize());
        c.set_desktop_size(rw.parse().unwrap(), rh.parse().unwrap())
            .expect("set_desktop_size");
        'wait: loop {
            sock.write_all(&c.take_output()).unwrap();
            let n = sock.read(&mut buf).unwrap();
            assert!(n > 0, "eof");
            c.feed(&buf[..n]).unwrap();
            while let Some(ev) = c.poll_event() {
                if let Event::Resize { reason, .. } = ev {
                    eprintln!("{ev:?}");
                    if reason == guacr_rfb::ResizeReason::ThisClient {
                        break 'wait;
                    }
                }
            }
        }
    }
    let mut f = std::fs::File::create(&args[3]).unwrap();
    write!(f, "P6\n{w} {h}\n255\n").unwrap();
    let rgb: Vec<u8> = fb
        .iter()
        .flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, *p as u8])
        .collect();
    f.write_all(&rgb).unwrap();
}
