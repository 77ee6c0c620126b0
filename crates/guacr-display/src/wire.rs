//! Writers for the drawing instructions the pipeline emits.

use guacr_protocol::{COMP_OVER, InstructionWriter};

use crate::BLOB_MAX;

/// `copy` within/between layers with composite mode OVER.
#[allow(clippy::too_many_arguments)] // mirrors the instruction
pub(crate) fn copy(
    out: &mut Vec<u8>,
    src_layer: i32,
    sx: u32,
    sy: u32,
    w: u32,
    h: u32,
    dst_layer: i32,
    dx: u32,
    dy: u32,
) {
    InstructionWriter::new(out, "copy")
        .arg(&src_layer)
        .arg(&sx)
        .arg(&sy)
        .arg(&w)
        .arg(&h)
        .arg(&COMP_OVER)
        .arg(&dst_layer)
        .arg(&dx)
        .arg(&dy)
        .finish();
}

/// `rect` + `cfill` (opaque) on `layer`.
pub(crate) fn fill(out: &mut Vec<u8>, layer: i32, x: u32, y: u32, w: u32, h: u32, color: u32) {
    let (r, g, b) = crate::split_rgb(color);
    InstructionWriter::new(out, "rect")
        .arg(&layer)
        .arg(&x)
        .arg(&y)
        .arg(&w)
        .arg(&h)
        .finish();
    InstructionWriter::new(out, "cfill")
        .arg(&COMP_OVER)
        .arg(&layer)
        .arg(&r)
        .arg(&g)
        .arg(&b)
        .arg(&255u8)
        .finish();
}

pub(crate) fn size(out: &mut Vec<u8>, layer: i32, w: u32, h: u32) {
    InstructionWriter::new(out, "size")
        .arg(&layer)
        .arg(&w)
        .arg(&h)
        .finish();
}

/// `img` + `blob`s (≤ [`BLOB_MAX`] raw bytes each) + `end`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn image(
    out: &mut Vec<u8>,
    stream: i32,
    mode: i32,
    layer: i32,
    mimetype: &str,
    x: u32,
    y: u32,
    data: &[u8],
) {
    out.reserve(data.len() * 4 / 3 + 64 + data.len() / BLOB_MAX * 24);
    InstructionWriter::new(out, "img")
        .arg(&stream)
        .arg(&mode)
        .arg(&layer)
        .arg(mimetype)
        .arg(&x)
        .arg(&y)
        .finish();
    for chunk in data.chunks(BLOB_MAX) {
        InstructionWriter::new(out, "blob")
            .arg(&stream)
            .arg_base64(chunk)
            .finish();
    }
    InstructionWriter::new(out, "end").arg(&stream).finish();
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn cursor(
    out: &mut Vec<u8>,
    hx: u32,
    hy: u32,
    layer: i32,
    sx: u32,
    sy: u32,
    w: u32,
    h: u32,
) {
    InstructionWriter::new(out, "cursor")
        .arg(&hx)
        .arg(&hy)
        .arg(&layer)
        .arg(&sx)
        .arg(&sy)
        .arg(&w)
        .arg(&h)
        .finish();
}
