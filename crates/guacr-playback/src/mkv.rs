//! A minimal streaming Matroska writer for uncompressed video: the way
//! frames with their own timestamps (variable frame rate) reach ffmpeg over
//! a pipe, which `-f rawvideo` cannot do.

use std::io::{self, Write};

const EBML: u32 = 0x1A45_DFA3;
const EBML_VERSION: u32 = 0x4286;
const EBML_READ_VERSION: u32 = 0x42F7;
const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
const DOC_TYPE: u32 = 0x4282;
const DOC_TYPE_VERSION: u32 = 0x4287;
const DOC_TYPE_READ_VERSION: u32 = 0x4285;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const TRACK_TYPE: u32 = 0x83;
const FLAG_LACING: u32 = 0x9C;
const CODEC_ID: u32 = 0x86;
const DEFAULT_DURATION: u32 = 0x23_E383;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const COLOUR_SPACE: u32 = 0x2E_B524;
const CLUSTER: u32 = 0x1F43_B675;
const TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;

/// Matroska timestamps are in this many nanoseconds (1 ms).
const TIMESTAMP_SCALE_NS: u64 = 1_000_000;

fn put_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// Element sizes are always written on 8 bytes.
fn put_size(out: &mut Vec<u8>, size: u64) {
    let mut bytes = size.to_be_bytes();
    bytes[0] = 0x01;
    out.extend_from_slice(&bytes);
}

fn put_element(out: &mut Vec<u8>, id: u32, payload: &[u8]) {
    put_id(out, id);
    put_size(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn put_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    put_element(out, id, &bytes[skip..]);
}

/// Writes a Matroska stream with one `V_UNCOMPRESSED` video track.
pub struct MkvWriter<W: Write> {
    out: W,
    frame_bytes: usize,
    header: Vec<u8>,
}

impl<W: Write> MkvWriter<W> {
    /// Writes the header. `fourcc` names the pixel format (`RGBA`, `I420`…),
    /// `frame_bytes` is the size of one picture, `default_duration_ns` the
    /// nominal frame duration (it tells the reader the frame rate).
    pub fn new(
        mut out: W,
        width: u32,
        height: u32,
        fourcc: &[u8; 4],
        frame_bytes: usize,
        default_duration_ns: u64,
    ) -> io::Result<Self> {
        let mut h = Vec::new();
        let mut ebml = Vec::new();
        put_uint(&mut ebml, EBML_VERSION, 1);
        put_uint(&mut ebml, EBML_READ_VERSION, 1);
        put_uint(&mut ebml, EBML_MAX_ID_LENGTH, 4);
        put_uint(&mut ebml, EBML_MAX_SIZE_LENGTH, 8);
        put_element(&mut ebml, DOC_TYPE, b"matroska");
        put_uint(&mut ebml, DOC_TYPE_VERSION, 4);
        put_uint(&mut ebml, DOC_TYPE_READ_VERSION, 2);
        put_element(&mut h, EBML, &ebml);
        // Segment of unknown size (live stream).
        put_id(&mut h, SEGMENT);
        h.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        let mut info = Vec::new();
        put_uint(&mut info, TIMESTAMP_SCALE, TIMESTAMP_SCALE_NS);
        put_element(&mut info, MUXING_APP, b"guacr");
        put_element(&mut info, WRITING_APP, b"guacr");
        put_element(&mut h, INFO, &info);
        let mut video = Vec::new();
        put_uint(&mut video, PIXEL_WIDTH, u64::from(width));
        put_uint(&mut video, PIXEL_HEIGHT, u64::from(height));
        put_element(&mut video, COLOUR_SPACE, fourcc);
        let mut track = Vec::new();
        put_uint(&mut track, TRACK_NUMBER, 1);
        put_uint(&mut track, TRACK_UID, 1);
        put_uint(&mut track, TRACK_TYPE, 1);
        put_uint(&mut track, FLAG_LACING, 0);
        put_element(&mut track, CODEC_ID, b"V_UNCOMPRESSED");
        put_uint(&mut track, DEFAULT_DURATION, default_duration_ns.max(1));
        put_element(&mut track, VIDEO, &video);
        let mut tracks = Vec::new();
        put_element(&mut tracks, TRACK_ENTRY, &track);
        put_element(&mut h, TRACKS, &tracks);
        out.write_all(&h)?;
        Ok(MkvWriter {
            out,
            frame_bytes,
            header: Vec::with_capacity(64),
        })
    }

    /// Writes one picture (`frame_bytes` bytes) shown from `time_ms` (until
    /// the next one), in its own cluster.
    pub fn write_frame(&mut self, time_ms: u64, picture: &[u8]) -> io::Result<()> {
        if picture.len() != self.frame_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame has {} bytes, expected {}",
                    picture.len(),
                    self.frame_bytes
                ),
            ));
        }
        // SimpleBlock: track number (vint), relative timestamp (i16), flags
        // (keyframe).
        let block_header = [0x81u8, 0, 0, 0x80];
        let block_len = (block_header.len() + picture.len()) as u64;
        let mut timestamp = Vec::new();
        put_uint(&mut timestamp, TIMESTAMP, time_ms);
        // Cluster payload: Timestamp + SimpleBlock (id 1 + size 8 + data).
        let cluster_len = timestamp.len() as u64 + 1 + 8 + block_len;
        let h = &mut self.header;
        h.clear();
        put_id(h, CLUSTER);
        put_size(h, cluster_len);
        h.extend_from_slice(&timestamp);
        put_id(h, SIMPLE_BLOCK);
        put_size(h, block_len);
        h.extend_from_slice(&block_header);
        self.out.write_all(h)?;
        self.out.write_all(picture)
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn element_encoding() {
        let mut out = Vec::new();
        put_uint(&mut out, TIMESTAMP, 0);
        assert_eq!(out, [0xE7, 0x01, 0, 0, 0, 0, 0, 0, 1, 0]);
        out.clear();
        put_uint(&mut out, TIMESTAMP_SCALE, 1_000_000);
        assert_eq!(
            out,
            [
                0x2A, 0xD7, 0xB1, 0x01, 0, 0, 0, 0, 0, 0, 3, 0x0F, 0x42, 0x40
            ]
        );
        let mut w = MkvWriter::new(Vec::new(), 1, 1, b"RGBA", 4, 40_000_000).unwrap();
        assert!(w.write_frame(0, &[0; 3]).is_err());
        w.write_frame(40, &[1, 2, 3, 4]).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(&bytes[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
        let cluster = [
            0x1F, 0x43, 0xB6, 0x75, 1, 0, 0, 0, 0, 0, 0, 27, // Cluster, 27 bytes
            0xE7, 1, 0, 0, 0, 0, 0, 0, 1, 40, // Timestamp 40
            0xA3, 1, 0, 0, 0, 0, 0, 0, 8, 0x81, 0, 0, 0x80, 1, 2, 3, 4,
        ];
        assert!(bytes.ends_with(&cluster));
        assert!(
            bytes
                .windows(6)
                .any(|w| w == [0x2E, 0xB5, 0x24, 0x01, 0, 0])
        );
    }
}
