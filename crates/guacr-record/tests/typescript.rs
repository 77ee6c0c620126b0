#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{TempDir, umask};
use guacr_record::typescript::{FOOTER, HEADER};
use guacr_record::{EncryptionSettings, Typescript, TypescriptSettings, crypto, generate_keypair};
use guacr_session::Params;

fn settings(dir: &TempDir) -> TypescriptSettings {
    let path = dir.path().join("ts");
    TypescriptSettings::from_params(
        &Params::from_pairs([
            ("typescript-path", path.to_str().unwrap()),
            ("typescript-name", "${GUAC_USERNAME}"),
            ("create-typescript-path", "true"),
        ]),
        Some("carol"),
    )
    .unwrap()
    .unwrap()
}

/// Terminal output in pieces: (time in ms, bytes, flush afterwards).
fn session() -> Vec<(u64, Vec<u8>, bool)> {
    let mut v = vec![
        (10, b"$ ".to_vec(), true),
        (250, b"l".to_vec(), false),
        (260, b"s\r\n".to_vec(), true),
        (
            400,
            "fichier-é.txt\r\n\x1b[1;32mok\x1b[0m\r\n"
                .as_bytes()
                .to_vec(),
            true,
        ),
    ];
    // More than the 4096-byte buffer in one write.
    v.push((
        900,
        (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect(),
        true,
    ));
    v.push((1500, b"$ exit\r\n".to_vec(), false));
    v
}

async fn write_session(ts: &mut Typescript) -> Vec<u8> {
    let mut all = Vec::new();
    for (t, bytes, flush) in session() {
        ts.write_at(&bytes, t).unwrap();
        if flush {
            ts.flush_at(t).unwrap();
        }
        all.extend_from_slice(&bytes);
    }
    all
}

#[tokio::test]
async fn typescript_files_match_guacd() {
    let dir = TempDir::new("ts");
    let s = settings(&dir);
    let mut ts = Typescript::open(&s).await.unwrap();
    let data_path = ts.path().unwrap().to_path_buf();
    assert_eq!(data_path, dir.path().join("ts").join("carol"));
    let all = write_session(&mut ts).await;
    ts.close_at(1600).await.unwrap();

    let data = std::fs::read(&data_path).unwrap();
    let mut want = HEADER.to_vec();
    want.extend_from_slice(&all);
    want.extend_from_slice(FOOTER);
    assert_eq!(data, want);
    assert!(data.starts_with(b"[BEGIN TYPESCRIPT]\n"));
    assert!(data.ends_with(b"\n[END TYPESCRIPT]\n"));

    let timing = std::fs::read_to_string(dir.path().join("ts").join("carol.timing")).unwrap();
    assert_eq!(
        timing,
        "0.010000 2\n\
         0.250000 4\n\
         0.140000 31\n\
         0.500000 4096\n\
         0.000000 4096\n\
         0.000000 1808\n\
         0.700000 8\n"
    );
    let total: usize = timing
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, all.len());

    let mask = umask();
    for p in [&data_path, &dir.path().join("ts").join("carol.timing")] {
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
            0o640 & !mask
        );
    }

    // A second typescript with the same name gets `.1`, timing `.1.timing`.
    let ts2 = Typescript::open(&s).await.unwrap();
    assert_eq!(ts2.path().unwrap(), dir.path().join("ts").join("carol.1"));
    ts2.close().await.unwrap();
    assert!(dir.path().join("ts").join("carol.1.timing").exists());
    assert_eq!(
        std::fs::read(dir.path().join("ts").join("carol.1")).unwrap(),
        [HEADER, FOOTER].concat()
    );

    // util-linux scriptreplay plays it back: it skips the header line and
    // prints exactly the bytes counted in the timing file (plus a final newline).
    if let Some(out) = scriptreplay(&dir.path().join("ts").join("carol.timing"), &data_path) {
        let mut expected = all.clone();
        expected.push(b'\n');
        assert_eq!(out, expected, "scriptreplay output differs");
    }
}

fn scriptreplay(timing: &Path, data: &Path) -> Option<Vec<u8>> {
    let out = Command::new("scriptreplay")
        .arg(format!("--timing={}", timing.display()))
        .arg(format!("--typescript={}", data.display()))
        .args(["--divisor", "1000"])
        .output();
    match out {
        Ok(o) => {
            assert!(
                o.status.success(),
                "scriptreplay failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            Some(o.stdout)
        }
        Err(_) => {
            eprintln!("skipped: scriptreplay (util-linux / bsdutils) is not installed");
            None
        }
    }
}

#[tokio::test]
async fn encrypted_typescript_decrypts_to_a_replayable_one() {
    let dir = TempDir::new("tsenc");
    let (private, public) = generate_keypair().unwrap();
    let s = TypescriptSettings {
        encryption: Some(EncryptionSettings { recipient: public }),
        ..settings(&dir)
    };
    let mut ts = Typescript::open(&s).await.unwrap();
    let data_path = ts.path().unwrap().to_path_buf();
    let all = write_session(&mut ts).await;
    ts.close_at(1600).await.unwrap();

    let plain_dir = TempDir::new("tsplain");
    let timing_path = dir.path().join("ts").join("carol.timing");
    for (src, dst) in [(&data_path, "carol"), (&timing_path, "carol.timing")] {
        let enc = std::fs::read(src).unwrap();
        assert!(crypto::is_encrypted(&enc));
        let mut out = Vec::new();
        crypto::decrypt(&enc[..], &private, &mut out).unwrap();
        std::fs::write(plain_dir.path().join(dst), out).unwrap();
    }
    let data = std::fs::read(plain_dir.path().join("carol")).unwrap();
    assert_eq!(data, [HEADER, &all, FOOTER].concat());
    if let Some(out) = scriptreplay(
        &plain_dir.path().join("carol.timing"),
        &plain_dir.path().join("carol"),
    ) {
        assert_eq!(out, [&all[..], b"\n"].concat());
    }
}
