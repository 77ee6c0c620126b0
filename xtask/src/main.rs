//! `cargo xtask` — project automation.
//!
//! * `cargo xtask ci` — exactly what CI runs (`scripts/test.sh`).
//! * `cargo xtask fuzz [TARGET] [SECONDS]` — runs a cargo-fuzz target (default: parser, 60 s).

use std::process::{Command, ExitCode};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| ".".into())
}

fn run(cmd: &mut Command) -> ExitCode {
    match cmd.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("xtask: {cmd:?} failed: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("xtask: cannot run {cmd:?}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => run(Command::new("bash")
            .arg(root().join("scripts/test.sh"))
            .current_dir(root())),
        Some("fuzz") => {
            let target = args.get(1).map(String::as_str).unwrap_or("parser");
            let secs = args.get(2).map(String::as_str).unwrap_or("60");
            let corpus = format!("corpus/{target}");
            let seeds = format!("seeds/{target}");
            let _ = std::fs::create_dir_all(root().join("fuzz").join(&corpus));
            run(Command::new("cargo")
                .args(["+nightly", "fuzz", "run", target, &corpus, &seeds, "--"])
                .arg(format!("-max_total_time={secs}"))
                .current_dir(root().join("fuzz")))
        }
        _ => {
            eprintln!("usage: cargo xtask ci | cargo xtask fuzz [TARGET] [SECONDS]");
            ExitCode::FAILURE
        }
    }
}
