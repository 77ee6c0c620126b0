//! Upload of finished recordings to a real S3-compatible server (moto, started by
//! scripts/peers.d/s3.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use guacr_record::upload::{S3Client, S3Config, UploadEvent, Uploader, UploaderConfig};
use guacr_testkit::peers;
use tokio::sync::mpsc;

fn s3(endpoint: Option<String>) -> S3Config {
    let need = |k: &str| {
        peers::var(k).unwrap_or_else(|| panic!("{k} missing: run scripts/test-peers.sh start"))
    };
    S3Config {
        endpoint: endpoint.unwrap_or_else(|| need("GUACR_TEST_S3_ENDPOINT")),
        bucket: need("GUACR_TEST_S3_BUCKET"),
        region: need("GUACR_TEST_S3_REGION"),
        prefix: format!("test-{}/", std::process::id()),
        access_key_id: need("GUACR_TEST_S3_ACCESS_KEY"),
        secret_access_key: need("GUACR_TEST_S3_SECRET_KEY"),
    }
}

fn config(s3: S3Config, spool: &std::path::Path) -> UploaderConfig {
    UploaderConfig {
        s3,
        spool_dir: spool.to_owned(),
        delete_local: true,
        retry_delay: Duration::from_millis(100),
        max_retry_delay: Duration::from_millis(400),
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<UploadEvent>) -> UploadEvent {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("no upload event within 30 s")
        .expect("uploader stopped")
}

#[tokio::test]
async fn uploads_confirms_then_deletes_the_local_copy() {
    let dir = tempdir("ok");
    let file = dir.join("session-1.guac");
    let body: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(&file, &body).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cfg = s3(None);
    let up = Uploader::start(config(cfg.clone(), &dir.join("spool")), Some(tx)).unwrap();
    up.enqueue(&file).unwrap();
    match next(&mut rx).await {
        UploadEvent::Uploaded {
            key,
            size,
            local_deleted,
            ..
        } => {
            assert_eq!(size, body.len() as u64);
            assert!(local_deleted);
            assert!(
                !file.exists(),
                "local copy must go once the upload is confirmed"
            );
            let stored = S3Client::new(cfg).unwrap().get(&key).await.unwrap();
            assert!(stored == body, "stored object differs from the local file");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(up.pending(), 0);
}

#[tokio::test]
async fn keeps_the_local_copy_until_a_later_run_uploads_it() {
    let dir = tempdir("retry");
    let spool = dir.join("spool");
    let file = dir.join("session-2.guac");
    std::fs::write(&file, b"4.sync,1.0;").unwrap();

    // The store is unreachable: the file and its spool entry stay.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let down = s3(Some("http://127.0.0.1:1".into()));
    let rt_up = Uploader::start(config(down, &spool), Some(tx)).unwrap();
    rt_up.enqueue(&file).unwrap();
    for _ in 0..2 {
        match next(&mut rx).await {
            UploadEvent::Failed { path, .. } => {
                assert_eq!(path, std::path::absolute(&file).unwrap())
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(file.exists());
    assert_eq!(rt_up.pending(), 1);
    drop(rt_up);

    // A new run (say, after a restart) finds the spool entry and finishes the job.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cfg = s3(None);
    let up = Uploader::start(config(cfg.clone(), &spool), Some(tx)).unwrap();
    match next(&mut rx).await {
        UploadEvent::Uploaded { key, .. } => {
            let stored = S3Client::new(cfg).unwrap().get(&key).await.unwrap();
            assert_eq!(stored, b"4.sync,1.0;");
        }
        UploadEvent::Failed { error, .. } => panic!("upload to the live store failed: {error}"),
        UploadEvent::Missing { .. } => panic!("file reported missing"),
    }
    assert!(!file.exists());
    assert_eq!(up.pending(), 0);
}

#[tokio::test]
async fn a_wrong_bucket_is_an_error_not_a_confirmation() {
    let mut cfg = s3(None);
    cfg.bucket = "no-such-bucket-guacr".into();
    let dir = tempdir("nobucket");
    let file = dir.join("x.guac");
    std::fs::write(&file, b"data").unwrap();
    let err = S3Client::new(cfg)
        .unwrap()
        .upload_confirmed(&file)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    assert!(file.exists());
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("guacr-upload-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
