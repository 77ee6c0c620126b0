//! Codec micro-benchmarks: parsing small instructions, parsing a blob-heavy
//! stream (throughput), encoding `copy` and `blob`.
//!
//! `cargo bench -p guacr-protocol --bench codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use guacr_protocol::{InstructionWriter, Parser, ServerInstruction, base64};

const SMALL: &[(&str, &[u8])] = &[
    ("sync", b"4.sync,13.1700000000000;"),
    ("key", b"3.key,5.65307,1.1;"),
    ("mouse", b"5.mouse,3.512,3.384,1.1;"),
];

fn parse_small(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_small");
    for &(name, wire) in SMALL {
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::from_parameter(name), wire, |b, wire| {
            let mut parser = Parser::new();
            b.iter(|| {
                let (ins, used) = parser
                    .parse(black_box(wire))
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| unreachable!());
                black_box((ins.arg(0).map(str::len), used))
            });
        });
    }
    // Parse plus typed interpretation, as the client-input path does it.
    g.bench_function("mouse_typed", |b| {
        let mut parser = Parser::new();
        let wire: &[u8] = b"5.mouse,3.512,3.384,1.1;";
        b.iter(|| {
            let (ins, _) = parser
                .parse(black_box(wire))
                .ok()
                .flatten()
                .unwrap_or_else(|| unreachable!());
            black_box(guacr_protocol::ClientInstruction::parse(&ins).is_ok())
        });
    });
    g.finish();
}

/// `count` instructions `4.blob,1.1,8192.<base64>;` back to back.
fn blob_stream(count: usize) -> Vec<u8> {
    let raw: Vec<u8> = (0..6144u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut out = Vec::new();
    for _ in 0..count {
        InstructionWriter::new(&mut out, "blob")
            .arg(&1)
            .arg_base64(&raw)
            .finish();
    }
    out
}

/// A realistic mixed stream: a few drawing instructions per blob.
fn mixed_stream(count: usize) -> Vec<u8> {
    let raw: Vec<u8> = (0..1500u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut out = Vec::new();
    for i in 0..count as i32 {
        InstructionWriter::new(&mut out, "img")
            .arg(&(i % 8))
            .arg(&14)
            .arg(&0)
            .arg("image/png")
            .arg(&(i * 16 % 1024))
            .arg(&(i * 16 % 768))
            .finish();
        InstructionWriter::new(&mut out, "blob")
            .arg(&(i % 8))
            .arg_base64(&raw)
            .finish();
        InstructionWriter::new(&mut out, "end")
            .arg(&(i % 8))
            .finish();
        InstructionWriter::new(&mut out, "sync")
            .arg(&(1_700_000_000_000i64 + i64::from(i)))
            .finish();
    }
    out
}

fn parse_stream(buf: &[u8]) -> usize {
    let mut parser = Parser::new();
    let mut offset = 0;
    let mut n = 0;
    while let Ok(Some((ins, used))) = parser.parse(&buf[offset..]) {
        n += ins.arg_count();
        offset += used;
    }
    assert_eq!(offset, buf.len());
    n
}

fn parse_streams(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_stream");
    for (name, buf) in [
        ("blob_8192x128", blob_stream(128)),
        ("mixed_img_blob_1500x256", mixed_stream(256)),
    ] {
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), &buf, |b, buf| {
            b.iter(|| parse_stream(black_box(buf)));
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    let mut out = Vec::with_capacity(64 * 1024);
    g.bench_function("copy_writer", |b| {
        b.iter(|| {
            out.clear();
            InstructionWriter::new(&mut out, "copy")
                .arg(black_box(&-1i32))
                .arg(&70)
                .arg(&0)
                .arg(&1024)
                .arg(&768)
                .arg(&12)
                .arg(&0)
                .arg(&700)
                .arg(&105)
                .finish();
            black_box(out.len())
        });
    });
    let copy = ServerInstruction::Copy {
        src_layer: -1,
        src_x: 70,
        src_y: 0,
        width: 1024,
        height: 768,
        mask: 12,
        dst_layer: 0,
        dst_x: 700,
        dst_y: 105,
    };
    g.bench_function("copy_typed", |b| {
        b.iter(|| {
            out.clear();
            black_box(&copy).encode(&mut out);
            black_box(out.len())
        });
    });
    // 6144 raw bytes -> one 8192-character base64 blob element.
    let raw: Vec<u8> = (0..6144u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("blob_6144_raw_bytes", |b| {
        b.iter(|| {
            out.clear();
            InstructionWriter::new(&mut out, "blob")
                .arg(&1)
                .arg_base64(black_box(&raw))
                .finish();
            black_box(out.len())
        });
    });
    let encoded = base64::encode(&raw);
    g.throughput(Throughput::Bytes(encoded.len() as u64));
    g.bench_function("base64_decode_lenient_8192", |b| {
        b.iter(|| black_box(base64::decode_lenient(black_box(encoded.as_bytes()))).len());
    });
    g.finish();
}

criterion_group!(benches, parse_small, parse_streams, encode);
criterion_main!(benches);
