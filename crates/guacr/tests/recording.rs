//! Session recordings and typescripts through the daemon, against the real OpenSSH peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use guacr_testkit::keysym;

const T: Duration = Duration::from_secs(20);

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("guacr-rec-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Replays a `.guac` file into a fresh display model.
fn replay(data: &[u8]) -> guacr_testkit::Display {
    let (all, _) = guacr_protocol::parse_all(data).unwrap();
    let mut d = guacr_testkit::Display::new();
    for ins in &all {
        // Recorded input (`key`, `mouse` with timestamps) is not drawing.
        if ins.opcode != "key" {
            let _ = d.apply(ins);
        }
    }
    d
}

async fn run(c: &mut guacr_testkit::GuacClient<tokio::net::TcpStream>, cmd: &str) {
    c.type_text(cmd).await.unwrap();
    c.press_key(keysym::RETURN).await.unwrap();
}

#[tokio::test]
async fn recorded_ssh_session_replays_to_the_live_picture() {
    let dir = temp_dir("guac");
    let d = TestDaemon::start().await;
    let path = dir.to_str().unwrap().to_owned();
    let (mut c, _) = ssh_session(
        &d,
        &[
            ("recording-path", &path),
            ("recording-name", "${GUAC_USERNAME}-session"),
            ("recording-include-keys", "true"),
            ("typescript-path", &path),
            ("typescript-name", "ts"),
        ],
    )
    .await
    .unwrap();
    wait_text(&mut c, "guacr$", T).await.unwrap();
    run(&mut c, "seq 1 5; echo recorded-$((5*5))").await;
    wait_text(&mut c, "recorded-25", T).await.unwrap();
    c.drain(Duration::from_millis(500)).await.unwrap();
    let live = c.display().screenshot();
    run(&mut c, "exit").await;
    c.wait_for_close(T).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let p = Peers::get();
    let file = dir.join(format!("{}-session", p.pw_user));
    let data = std::fs::read(&file).expect("recording file named from the username token");
    let meta = std::fs::metadata(&file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert!(
        !data.starts_with(b"4.args") && !data.windows(7).any(|w| w == b"5.ready"),
        "no handshake in recordings"
    );
    // The picture before `exit` was typed: replay up to the frame that matched.
    let replayed = replay(&data);
    let (w, h, _) = live;
    assert_eq!((replayed.width(), replayed.height()), (w, h));
    // The final recorded frame shows everything the live client saw, plus the exit.
    let text = replayed.read_text(
        Glyphs::get().cell.0,
        Glyphs::get().cell.1,
        &|ch| Glyphs::get().mask(ch),
        guacr_testkit::DEFAULT_CHARSET,
    );
    assert!(text.iter().any(|l| l.contains("recorded-25")), "{text:?}");
    // Keys were recorded and read back like guaclog.
    let keys = guacr_record::typed_text_from_recording(&data);
    assert!(keys.contains("echo recorded-$((5*5))"), "{keys}");

    // Pixel-exact: replaying only up to the last frame the live client had seen
    // before `exit` gives the same picture.
    let (all, _) = guacr_protocol::parse_all(&data).unwrap();
    let mut d = guacr_testkit::Display::new();
    let mut matched = false;
    for ins in &all {
        if ins.opcode == "key" {
            continue;
        }
        let _ = d.apply(ins);
        if ins.opcode == "sync" && d.screenshot() == live {
            matched = true;
        }
    }
    assert!(
        matched,
        "some recorded frame equals the live picture pixel for pixel"
    );

    // guacr recording render makes a video of it.
    let video = dir.join("session.webm");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guacr"))
        .args(["recording", "render"])
        .arg(&file)
        .arg("-o")
        .arg(&video)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&video)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        format!("vp9,{w},{h}")
    );

    // The typescript replays with util-linux scriptreplay to the recorded bytes.
    let ts = dir.join("ts");
    let ts_data = std::fs::read(&ts).unwrap();
    assert!(
        ts_data.starts_with(b"[BEGIN TYPESCRIPT]\n") || ts_data.starts_with(b"[BEGIN TYPESCRIPT")
    );
    let out = std::process::Command::new("scriptreplay")
        .arg("--timing")
        .arg(dir.join("ts.timing"))
        .arg("--typescript")
        .arg(&ts)
        .args(["--divisor", "1000"])
        .output()
        .expect("scriptreplay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body_start = ts_data.iter().position(|&b| b == b'\n').unwrap() + 1;
    let body = &ts_data[body_start..];
    assert!(String::from_utf8_lossy(&out.stdout).contains("recorded-25"));
    assert!(
        body.starts_with(&out.stdout[..out.stdout.len().min(body.len()).saturating_sub(1)]),
        "scriptreplay reproduces the bytes"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn encrypted_recording_decrypts_with_the_private_key_only() {
    let dir = temp_dir("enc");
    let bin = env!("CARGO_BIN_EXE_guacr");
    let prefix = dir.join("rec");
    assert!(
        std::process::Command::new(bin)
            .args(["recording", "keygen"])
            .arg(&prefix)
            .status()
            .unwrap()
            .success()
    );
    let pub_key = dir.join("rec.pub");
    let d = TestDaemon::start_with(|c| c.recording.encrypt_to = Some(pub_key.clone()), None).await;
    let path = dir.to_str().unwrap().to_owned();
    let (mut c, _) = ssh_session(
        &d,
        &[
            ("recording-path", &path),
            ("recording-include-keys", "true"),
        ],
    )
    .await
    .unwrap();
    wait_text(&mut c, "guacr$", T).await.unwrap();
    run(&mut c, "echo secret-$((2*21))").await;
    wait_text(&mut c, "secret-42", T).await.unwrap();
    run(&mut c, "exit").await;
    c.wait_for_close(T).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let file = dir.join("recording");
    let raw = std::fs::read(&file).unwrap();
    assert!(raw.starts_with(b"GUACRENC1"));
    assert!(
        !raw.windows(4).any(|w| w == b"sync"),
        "nothing readable without the key"
    );
    let out = std::process::Command::new(bin)
        .args(["recording", "decrypt", "--key"])
        .arg(dir.join("rec.key"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(replay(&out.stdout).frames() > 0);
    let keys = std::process::Command::new(bin)
        .args(["recording", "keys", "--typed", "--key"])
        .arg(dir.join("rec.key"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&keys.stdout).contains("echo secret-$((2*21))"));
    // Truncated and altered files are reported.
    let cut = dir.join("cut");
    std::fs::write(&cut, &raw[..raw.len() - 10]).unwrap();
    let altered = dir.join("altered");
    let mut bad = raw.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&altered, &bad).unwrap();
    for (f, word) in [(&cut, "truncat"), (&altered, "tamper")] {
        let out = std::process::Command::new(bin)
            .args(["recording", "decrypt", "--key"])
            .arg(dir.join("rec.key"))
            .arg(f)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains(word), "{word}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = temp_dir(&format!("tmpfs-{size}-{}", rand_suffix()));
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "mounting a tmpfs (needs root) to simulate a full disk");
        Tmpfs(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

#[tokio::test]
async fn full_disk_terminates_or_continues_by_policy() {
    for policy in ["terminate", "continue"] {
        let fs = Tmpfs::mount("16k");
        // The policy is the daemon's (a client cannot opt out of being recorded).
        let d = TestDaemon::start_with(|c| c.recording.failure = Some(policy.into()), None).await;
        let path = fs.path().to_str().unwrap().to_owned();
        let (mut c, _) = ssh_session(&d, &[("recording-path", &path)]).await.unwrap();
        wait_text(&mut c, "guacr$", T).await.unwrap();
        // Sustained output: far more than 16 KiB of recorded frames.
        run(
            &mut c,
            "for i in $(seq 1 40); do seq 1 3000; sleep 0.05; done; echo done-$((7*7))",
        )
        .await;
        if policy == "terminate" {
            c.wait_for_close(Duration::from_secs(30))
                .await
                .expect("session ended by the failure");
            let e = c.state().last_error().expect("error");
            assert_eq!(e.status, 512, "{e:?} {}", c.state().summary());
            assert!(e.message.contains("recording"), "{}", e.message);
        } else {
            wait_text(&mut c, "done-49", Duration::from_secs(30))
                .await
                .unwrap();
            run(&mut c, "echo still-here").await;
            wait_text(&mut c, "still-here", T)
                .await
                .expect("the session goes on");
            assert!(c.state().last_error().is_none());
        }
    }
}

#[tokio::test]
async fn unusable_recording_path_refuses_the_session() {
    let d = TestDaemon::start().await;
    let e = ssh_session(&d, &[("recording-path", "/nonexistent/dir")])
        .await
        .err()
        .expect("a session that cannot be recorded must not run");
    assert_eq!(status_of(&e), Some(512));
}

#[tokio::test]
async fn finished_recordings_are_uploaded_and_the_local_copy_removed() {
    use guacr_testkit::peers::var;
    let need =
        |k: &str| var(k).unwrap_or_else(|| panic!("{k} missing: run scripts/test-peers.sh start"));
    let dir = temp_dir("upload");
    let prefix = format!("daemon-{}-{}/", std::process::id(), rand_suffix());
    let section = guacr::config::UploadSection {
        endpoint: need("GUACR_TEST_S3_ENDPOINT"),
        bucket: need("GUACR_TEST_S3_BUCKET"),
        region: need("GUACR_TEST_S3_REGION"),
        prefix: prefix.clone(),
        access_key_id: Some(need("GUACR_TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(need("GUACR_TEST_S3_SECRET_KEY")),
        secret_access_key_file: None,
        spool_dir: dir.join("spool"),
        delete_local: true,
    };
    let client =
        guacr_record::upload::S3Client::new(section.uploader_config().unwrap().s3).unwrap();
    let d = TestDaemon::start_with(|c| c.recording.upload = Some(section), None).await;
    let path = dir.to_str().unwrap().to_owned();
    let (mut c, _) = ssh_session(
        &d,
        &[
            ("recording-path", &path),
            ("recording-name", "uploaded"),
            ("typescript-path", &path),
            ("typescript-name", "uploaded-ts"),
        ],
    )
    .await
    .unwrap();
    wait_text(&mut c, "guacr$", T).await.unwrap();
    run(&mut c, "echo to-the-bucket-$((6*7))").await;
    wait_text(&mut c, "to-the-bucket-42", T).await.unwrap();
    run(&mut c, "exit").await;
    c.wait_for_close(T).await.unwrap();

    // Every finished file lands in the bucket, then leaves the disk.
    for name in ["uploaded", "uploaded-ts", "uploaded-ts.timing"] {
        let key = format!("{prefix}{name}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let stored = loop {
            if let Ok(b) = client.get(&key).await
                && !dir.join(name).exists()
            {
                break b;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{key} not uploaded (or local copy kept)"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if name == "uploaded" {
            let g = Glyphs::get();
            let text = replay(&stored)
                .read_text(
                    g.cell.0,
                    g.cell.1,
                    &|ch| g.mask(ch),
                    guacr_testkit::DEFAULT_CHARSET,
                )
                .join("\n");
            assert!(
                text.contains("to-the-bucket-42"),
                "uploaded recording replays: {text}"
            );
        }
        if name == "uploaded-ts" {
            assert!(String::from_utf8_lossy(&stored).contains("to-the-bucket-42"));
        }
    }
    assert_eq!(
        std::fs::read_dir(dir.join("spool")).unwrap().count(),
        0,
        "spool emptied"
    );
    d.shutdown().await;
}

/// A recorded VNC session (TigerVNC Xvnc with an xterm, from scripts/peers.d/vnc.sh)
/// replays to a final frame identical to the live session's last frame.
#[tokio::test]
async fn recorded_vnc_session_replays_to_the_live_picture() {
    use guacr_testkit::peers::var;
    let need =
        |k: &str| var(k).unwrap_or_else(|| panic!("{k} missing: run scripts/test-peers.sh start"));
    let host = need("GUACR_TEST_VNC_HOST");
    let port = need("GUACR_TEST_VNC_XVNC_NONE_PORT");
    let dir = temp_dir("vnc");
    let path = dir.to_str().unwrap().to_owned();
    let d = TestDaemon::start().await;
    let mut c = d.client().await;
    c.handshake(
        "vnc",
        &client_info(1024, 768),
        &[
            ("hostname", host.as_str()),
            ("port", port.as_str()),
            ("force-lossless", "true"),
            ("read-only", "true"),
            ("recording-path", &path),
            ("recording-name", "vnc"),
        ],
    )
    .await
    .unwrap();
    // Let the first full update and any follow-ups arrive, then stop reading.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while c.state().count("img") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no picture from the VNC server"
        );
        c.drain(Duration::from_millis(200)).await.unwrap();
    }
    c.drain(Duration::from_millis(1500)).await.unwrap();
    let live = c.display().screenshot();
    assert!(live.0 > 0 && live.1 > 0);
    c.disconnect().await.unwrap();
    d.shutdown().await;

    let data = std::fs::read(dir.join("vnc")).expect("VNC recording written");
    let (all, _) = guacr_protocol::parse_all(&data).unwrap();
    let mut replayed = guacr_testkit::Display::new();
    let mut last_frame = None;
    for ins in &all {
        if ins.opcode == "key" || ins.opcode == "mouse" {
            continue;
        }
        let _ = replayed.apply(ins);
        if ins.opcode == "sync" {
            last_frame = Some(replayed.screenshot());
        }
    }
    let last_frame = last_frame.expect("the recording has frames");
    assert_eq!((last_frame.0, last_frame.1), (live.0, live.1));
    assert!(
        last_frame.2 == live.2,
        "the recording's last frame equals the live picture pixel for pixel"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
