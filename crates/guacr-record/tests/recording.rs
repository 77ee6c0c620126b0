#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::{TempDir, eventually};
use guacr_record::crypto::{self, DecryptError};
use guacr_record::file::lock_shared;
use guacr_record::{
    EncryptionSettings, FailurePolicy, GuacRecording, RecordFailure, RecordWriter,
    RecordingSettings, generate_keypair, keys_from_recording,
};
use guacr_session::{Input, Params};

fn settings(dir: &TempDir, extra: &[(&str, &str)]) -> RecordingSettings {
    let path = dir.path().to_str().unwrap().to_owned();
    let mut pairs = vec![("recording-path", path.as_str())];
    pairs.extend_from_slice(extra);
    RecordingSettings::from_params(&Params::from_pairs(pairs), Some("alice"))
        .unwrap()
        .unwrap()
}

const FRAME: &[u8] = b"4.size,1.0,3.640,3.480;4.rect,1.0,1.0,1.0,2.10,2.10;";
const SYNC: &[u8] = b"4.sync,13.1700000000000;";

fn dev_full() -> tokio::fs::File {
    tokio::fs::File::from_std(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

#[tokio::test]
async fn default_recording_has_output_and_mouse_but_no_keys() {
    let dir = TempDir::new("default");
    let s = settings(&dir, &[]);
    let rec = GuacRecording::open(&s).await.unwrap();
    let path = rec.path().unwrap().to_path_buf();
    assert_eq!(path, dir.path().join("recording"));
    rec.output(&Bytes::from_static(FRAME)).unwrap();
    rec.mouse(5, 6, 1, 1_700_000_000_001).unwrap();
    rec.key(97, true, 1_700_000_000_002).unwrap();
    rec.touch(0, 1, 2, 3, 4, 0.5, 1.0, 1_700_000_000_003)
        .unwrap();
    rec.clipboard(9, "text/plain", b"secret").unwrap();
    rec.output(&Bytes::from_static(SYNC)).unwrap();
    rec.close().await.unwrap();
    let got = std::fs::read(&path).unwrap();
    let mut want = FRAME.to_vec();
    want.extend_from_slice(b"5.mouse,1.5,1.6,1.1,13.1700000000001;");
    want.extend_from_slice(b"5.touch,1.0,1.1,1.2,1.3,1.4,3.0.5,1.1,13.1700000000003;");
    want.extend_from_slice(SYNC);
    assert_eq!(
        String::from_utf8(got).unwrap(),
        String::from_utf8(want).unwrap()
    );
}

#[tokio::test]
async fn exclusions_and_inclusions() {
    let dir = TempDir::new("exclude");
    let s = settings(
        &dir,
        &[
            ("recording-name", "${GUAC_USERNAME}.guac"),
            ("recording-exclude-output", "true"),
            ("recording-exclude-mouse", "true"),
            ("recording-exclude-touch", "true"),
            ("recording-include-keys", "true"),
            ("recording-include-clipboard", "true"),
        ],
    );
    let rec = GuacRecording::open(&s).await.unwrap();
    assert_eq!(rec.path().unwrap(), dir.path().join("alice.guac"));
    rec.output(&Bytes::from_static(FRAME)).unwrap();
    rec.input(
        &Input::Mouse {
            x: 1,
            y: 2,
            mask: 0,
        },
        10,
        5,
    )
    .unwrap();
    rec.input(
        &Input::Key {
            keysym: 104,
            pressed: true,
        },
        11,
        5,
    )
    .unwrap();
    rec.input(
        &Input::Key {
            keysym: 104,
            pressed: false,
        },
        12,
        5,
    )
    .unwrap();
    rec.touch(0, 1, 2, 3, 4, 0.5, 1.0, 13).unwrap();
    rec.input(
        &Input::Clipboard {
            mimetype: "text/plain".into(),
            data: b"hi".to_vec(),
        },
        14,
        5,
    )
    .unwrap();
    rec.output(&Bytes::from_static(SYNC)).unwrap();
    let path = rec.path().unwrap().to_path_buf();
    rec.close().await.unwrap();
    let got = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        got,
        "3.key,3.104,1.1,2.11;3.key,3.104,1.0,2.12;\
         9.clipboard,1.5,10.text/plain;4.blob,1.5,4.aGk=;3.end,1.5;"
    );
    assert_eq!(keys_from_recording(got.as_bytes()), "h");
}

#[tokio::test]
async fn second_recording_gets_suffix_and_lock_lasts_until_close() {
    let dir = TempDir::new("lock");
    let s = settings(&dir, &[]);
    let a = GuacRecording::open(&s).await.unwrap();
    let b = GuacRecording::open(&s).await.unwrap();
    assert_eq!(b.path().unwrap(), dir.path().join("recording.1"));
    let pa = a.path().unwrap().to_path_buf();
    let reader = std::fs::File::open(&pa).unwrap();
    assert_eq!(
        lock_shared(&reader).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    a.close().await.unwrap();
    lock_shared(&reader).unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn output_reaches_the_file_at_every_sync() {
    let dir = TempDir::new("sync");
    let rec = GuacRecording::open(&settings(&dir, &[])).await.unwrap();
    let path = rec.path().unwrap().to_path_buf();
    let len = || std::fs::metadata(&path).unwrap().len() as usize;

    rec.output(&Bytes::from_static(FRAME)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(len(), 0, "without sync the output stays buffered");

    // A frame ending with sync (sync not first in the chunk).
    let mut frame = FRAME.to_vec();
    frame.extend_from_slice(SYNC);
    rec.output(&Bytes::from(frame)).unwrap();
    let want = FRAME.len() * 2 + SYNC.len();
    assert!(
        eventually(|| len() == want).await,
        "file has {} of {want} bytes",
        len()
    );
    assert!(std::fs::read(&path).unwrap().ends_with(SYNC));

    // A chunk that is only the sync.
    rec.output(&Bytes::from_static(FRAME)).unwrap();
    rec.output(&Bytes::from_static(SYNC)).unwrap();
    let want = want + FRAME.len() + SYNC.len();
    assert!(eventually(|| len() == want).await);
    rec.close().await.unwrap();
}

#[tokio::test]
async fn write_failure_terminate_policy() {
    let s = RecordingSettings {
        failure_policy: FailurePolicy::Terminate,
        ..settings(&TempDir::new("x"), &[])
    };
    // The file backend (what recordings on disk use): a real ENOSPC from writev.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let rec = GuacRecording::with_writer(
        RecordWriter::spawn_file(full, "/dev/full", 1 << 20, None),
        &s,
    );
    assert!(rec.failed().is_none());
    rec.output(&Bytes::from_static(SYNC)).unwrap(); // accepted; fails in the writer
    let f = tokio::time::timeout(Duration::from_secs(5), rec.wait_failure())
        .await
        .unwrap();
    assert!(
        matches!(&f, RecordFailure::Io { kind: ErrorKind::StorageFull, label, .. } if label == "/dev/full"),
        "{f:?}"
    );
    assert_eq!(rec.failed(), Some(f.clone()));
    // Every later call reports it, so the session can end.
    assert_eq!(rec.output(&Bytes::from_static(FRAME)), Err(f.clone()));
    assert_eq!(rec.mouse(1, 1, 0, 1), Err(f.clone()));
    assert_eq!(rec.close().await, Err(f));
}

#[tokio::test]
async fn write_failure_continue_policy() {
    let s = RecordingSettings {
        failure_policy: FailurePolicy::Continue,
        include_keys: true,
        ..settings(&TempDir::new("x"), &[])
    };
    let rec = GuacRecording::with_writer(
        RecordWriter::spawn(dev_full(), "/dev/full", 1 << 20, None),
        &s,
    );
    rec.output(&Bytes::from_static(SYNC)).unwrap();
    let f = tokio::time::timeout(Duration::from_secs(5), rec.wait_failure())
        .await
        .unwrap();
    // The session carries on: calls succeed, the failure stays visible.
    assert_eq!(rec.output(&Bytes::from_static(FRAME)), Ok(()));
    assert_eq!(rec.key(65, true, 1), Ok(()));
    assert_eq!(rec.failed(), Some(f.clone()));
    assert_eq!(rec.close().await, Err(f));
}

#[tokio::test]
async fn a_stalled_disk_fails_the_recording_without_blocking() {
    // A pipe nobody reads: the writer task stalls after 64 bytes.
    let (stalled, _keep_open) = tokio::io::duplex(64);
    let budget = 4096;
    let w = RecordWriter::spawn(stalled, "stalled", budget, None);
    let chunk = Bytes::from(vec![b'x'; 1000]);
    let mut accepted = 0;
    let failure = loop {
        match w.try_write(chunk.clone()) {
            Ok(()) => accepted += 1,
            Err(f) => break f,
        }
        assert!(accepted < 100, "the budget is not enforced");
    };
    assert!(
        matches!(failure, RecordFailure::Backlog { budget: 4096, .. }),
        "{failure:?}"
    );
    assert!(w.queued_bytes() <= budget);
    assert_eq!(w.failed(), Some(failure.clone()));
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(1), w.wait_failure())
            .await
            .unwrap(),
        failure
    );
    assert!(w.try_write(Bytes::from_static(b"more")).is_err());
}

/// A real full filesystem (a 64 KiB tmpfs), when this sandbox allows mounting.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &TempDir) -> Option<Self> {
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&mnt)
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(Tmpfs(mnt))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn full_filesystem_fails_the_recording() {
    let dir = TempDir::new("tmpfs");
    let Some(fs) = Tmpfs::mount(&dir) else {
        eprintln!("skipped: cannot mount tmpfs here (the /dev/full tests cover the failure path)");
        return;
    };
    let s = RecordingSettings {
        path: fs.0.clone(),
        ..settings(&dir, &[])
    };
    let rec = GuacRecording::open(&s).await.unwrap();
    let mut frame = vec![b'x'; 8192];
    frame.extend_from_slice(SYNC);
    let frame = Bytes::from(frame);
    // 64 × 8 KiB cannot fit in 64 KiB; the session learns of it from a call
    // (Terminate policy) or from wait_failure().
    for _ in 0..64 {
        if rec.output(&frame).is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let f = tokio::time::timeout(Duration::from_secs(5), rec.wait_failure())
        .await
        .unwrap();
    assert!(
        matches!(
            f,
            RecordFailure::Io {
                kind: ErrorKind::StorageFull,
                ..
            }
        ),
        "{f:?}"
    );
    assert_eq!(rec.close().await, Err(f));
    drop(fs);
}

#[tokio::test]
async fn encrypted_recording_round_trip_and_errors() {
    let dir = TempDir::new("enc");
    let (private, public) = generate_keypair().unwrap();
    let s = RecordingSettings {
        encryption: Some(EncryptionSettings { recipient: public }),
        include_keys: true,
        ..settings(&dir, &[])
    };
    let rec = GuacRecording::open(&s).await.unwrap();
    let path = rec.path().unwrap().to_path_buf();
    let mut want = Vec::new();
    // Enough output for several 64 KiB chunks, with syncs in between.
    for i in 0..3000u32 {
        let mut frame =
            format!("4.rect,1.0,1.0,1.0,{}.{i},2.10;", i.to_string().len()).into_bytes();
        frame.extend_from_slice(FRAME);
        if i % 100 == 0 {
            frame.extend_from_slice(SYNC);
        }
        rec.output(&Bytes::from(frame.clone())).unwrap();
        want.extend_from_slice(&frame);
    }
    rec.key(65, true, 7).unwrap();
    want.extend_from_slice(b"3.key,2.65,1.1,1.7;");
    rec.close().await.unwrap();

    let file = std::fs::read(&path).unwrap();
    assert!(crypto::is_encrypted(&file));
    assert!(
        !file.windows(FRAME.len()).any(|w| w == FRAME),
        "plaintext leaked"
    );
    let mut out = Vec::new();
    crypto::decrypt(&file[..], &private, &mut out).unwrap();
    assert_eq!(out, want);
    assert_eq!(keys_from_recording(&out), "A");

    let run =
        |bytes: &[u8], key: &guacr_record::PrivateKey| crypto::decrypt(bytes, key, &mut Vec::new());
    let (other, _) = generate_keypair().unwrap();
    assert!(matches!(run(&file, &other), Err(DecryptError::WrongKey)));
    let mut tampered = file.clone();
    let i = file.len() / 2;
    tampered[i] ^= 0x01;
    assert!(matches!(
        run(&tampered, &private),
        Err(DecryptError::TamperedChunk { .. })
    ));
    assert!(matches!(
        run(&file[..file.len() - 1], &private),
        Err(DecryptError::Truncated)
    ));
    assert!(matches!(
        run(&file[..file.len() / 3], &private),
        Err(DecryptError::Truncated)
    ));
}

/// Counts flushes and keeps what reached the "disk".
#[derive(Clone, Default)]
struct CountingSink {
    data: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    flushes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl tokio::io::AsyncWrite for CountingSink {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.data.lock().unwrap().extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.flushes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn flushes_coalesce_under_load_but_nothing_waits_once_idle() {
    let sink = CountingSink::default();
    let w = RecordWriter::spawn(sink.clone(), "counting", 1 << 24, None);
    // 500 frames queued back to back (the writer task has not run yet).
    for i in 0..500u32 {
        w.try_write_flush(Bytes::from(format!("frame-{i};")))
            .unwrap();
    }
    // Once the queue is drained, everything has been flushed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let done = sink.data.lock().unwrap().ends_with(b"frame-499;");
        if done && sink.flushes.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not flushed once idle"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let flushes = sink.flushes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(flushes < 500, "one flush per frame under load: {flushes}");
    // An idle writer flushes each frame by itself.
    w.try_write_flush(Bytes::from_static(b"late;")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while sink.flushes.load(std::sync::atomic::Ordering::SeqCst) == flushes {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle frame not flushed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(sink.data.lock().unwrap().ends_with(b"late;"));
}
