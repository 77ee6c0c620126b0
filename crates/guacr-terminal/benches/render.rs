//! Feeding and rendering a `seq 1 100000` flood, plus an interactive-typing
//! frame. Prints the bytes produced on the wire.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guacr_terminal::{Terminal, TerminalConfig};

fn seq_output(n: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 1..=n {
        v.extend_from_slice(i.to_string().as_bytes());
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// Feeds `data` in 32 KB chunks and renders a frame every `chunks_per_frame`
/// chunks. Returns the bytes of instructions produced.
fn run(data: &[u8], chunks_per_frame: usize) -> usize {
    let Ok(mut t) = Terminal::new(TerminalConfig::default()) else {
        return 0;
    };
    let mut out = Vec::with_capacity(64 * 1024);
    let mut total = 0;
    for (i, chunk) in data.chunks(32 * 1024).enumerate() {
        t.feed(chunk);
        if (i + 1) % chunks_per_frame == 0 {
            out.clear();
            t.render_frame(&mut out);
            total += out.len();
        }
    }
    out.clear();
    t.render_frame(&mut out);
    total + out.len()
}

fn bench_seq(c: &mut Criterion) {
    let data = seq_output(100_000);
    for chunks_per_frame in [1usize, 8] {
        let bytes = run(&data, chunks_per_frame);
        println!(
            "seq 1..100000 ({} input bytes), frame every {chunks_per_frame} x 32 KB: {bytes} output bytes",
            data.len()
        );
    }
    let mut group = c.benchmark_group("seq_100k");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    for chunks_per_frame in [1usize, 8] {
        group.bench_function(format!("frame_every_{chunks_per_frame}_chunks"), |b| {
            b.iter(|| black_box(run(black_box(&data), chunks_per_frame)))
        });
    }
    group.finish();
}

fn bench_typing(c: &mut Criterion) {
    let Ok(mut t) = Terminal::new(TerminalConfig::default()) else {
        return;
    };
    t.feed(b"Last login: today\r\nuser@host:~$ ");
    let mut out = Vec::new();
    t.render_frame(&mut out);
    c.bench_function("type_one_char_and_render", |b| {
        b.iter(|| {
            t.feed(b"x\x08");
            out.clear();
            t.render_frame(&mut out);
            black_box(out.len())
        })
    });
}

fn bench_full_screen(c: &mut Criterion) {
    let Ok(mut t) = Terminal::new(TerminalConfig::default()) else {
        return;
    };
    let mut screen = Vec::new();
    for i in 0..40 {
        screen.extend_from_slice(
            format!(
                "\x1b[{};1H\x1b[3{}m{:-<100}",
                i + 1,
                i % 8,
                format!("line {i} ")
            )
            .as_bytes(),
        );
    }
    let mut out = Vec::new();
    c.bench_function("full_screen_redraw", |b| {
        b.iter(|| {
            t.feed(b"\x1b[2J");
            out.clear();
            t.render_frame(&mut out);
            t.feed(&screen);
            out.clear();
            t.render_frame(&mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench_seq, bench_typing, bench_full_screen);
criterion_main!(benches);
