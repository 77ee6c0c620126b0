//! CPU cost of writing a typescript of bulk terminal output (issue 5: recording
//! must add ≤ 5 % CPU to a busy terminal session).
//!
//! Measures process CPU time (every thread's time on CPU: the runtime's
//! workers and tokio's blocking pool that does the file writes), not wall time,
//! so a loaded machine changes the figure little. The input is the output of
//! `seq 1 2000000` (15 MB, the `guacr-bench seq` workload) in 16 KiB pieces as
//! SSH delivers it, with a frame end (flush) every 400 KB (~38 frames, what the
//! daemon draws for it). Compare the result with the daemon's CPU for the same
//! session without recording (BENCHMARKS.md "Recording cost").
//!
//! `cargo bench -p guacr-record --bench typescript`

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use guacr_record::settings::{FailurePolicy, TypescriptSettings};
use guacr_record::typescript::Typescript;

/// CPU time of every thread of this process, from `/proc/self/task/*/schedstat`
/// (nanoseconds on CPU; blocking-pool threads stay alive between iterations).
fn cpu_time() -> Duration {
    let mut ns = 0u64;
    for t in std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

fn seq_output() -> Vec<u8> {
    let mut out = Vec::with_capacity(16 << 20);
    for i in 1..=2_000_000u32 {
        out.extend_from_slice(i.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

fn bench(c: &mut Criterion) {
    // Pieces of one buffer, as SSH hands them over (`Bytes`, kept without copying).
    let input = bytes::Bytes::from(seq_output());
    let pieces: Vec<bytes::Bytes> = (0..input.len())
        .step_by(16 * 1024)
        .map(|i| input.slice(i..(i + 16 * 1024).min(input.len())))
        .collect();
    let dir = PathBuf::from(std::env::var_os("TS_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into()))
        .join(format!("guacr-ts-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("typescript");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.sample_size(10);
    g.bench_function("seq_2000000_cpu", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let settings = TypescriptSettings {
                    path: dir.clone(),
                    name: "ts".into(),
                    create_path: false,
                    write_existing: false,
                    failure_policy: FailurePolicy::Terminate,
                    encryption: None,
                    queue_budget: 64 << 20,
                };
                let start = cpu_time();
                rt.block_on(async {
                    let mut ts = Typescript::open(&settings).await.expect("open");
                    let mut since_flush = 0;
                    for chunk in &pieces {
                        ts.write_bytes(chunk.clone()).expect("write");
                        since_flush += chunk.len();
                        if since_flush >= 400_000 {
                            ts.flush().expect("flush");
                            since_flush = 0;
                            tokio::task::yield_now().await;
                        }
                    }
                    ts.close().await.expect("close");
                });
                total += cpu_time() - start;
                for e in std::fs::read_dir(&dir).expect("read dir").flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            total
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
