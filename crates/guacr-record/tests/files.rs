#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;

use common::{TempDir, umask};
use guacr_record::file::{self, lock_shared, open_exclusive, posix_lock_shared};

#[test]
fn name_collisions_get_numeric_suffixes() {
    let dir = TempDir::new("suffix");
    let (_a, pa) = open_exclusive(dir.path(), "rec", false).unwrap();
    let (_b, pb) = open_exclusive(dir.path(), "rec", false).unwrap();
    let (_c, pc) = open_exclusive(dir.path(), "rec", false).unwrap();
    assert_eq!(pa, dir.path().join("rec"));
    assert_eq!(pb, dir.path().join("rec.1"));
    assert_eq!(pc, dir.path().join("rec.2"));
    // A gap is reused: the first free name wins.
    std::fs::remove_file(&pb).unwrap();
    let (_d, pd) = open_exclusive(dir.path(), "rec", false).unwrap();
    assert_eq!(pd, dir.path().join("rec.1"));
}

#[test]
fn suffixes_stop_at_255() {
    let dir = TempDir::new("limit");
    std::fs::write(dir.path().join("r"), b"").unwrap();
    for i in 1..=254 {
        std::fs::write(dir.path().join(format!("r.{i}")), b"").unwrap();
    }
    let (_f, p) = open_exclusive(dir.path(), "r", false).unwrap();
    assert_eq!(p, dir.path().join("r.255"));
    let err = open_exclusive(dir.path(), "r", false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("exhausted"), "{err}");
    assert!(!dir.path().join("r.256").exists());
}

#[test]
fn modes_and_directory_creation() {
    let dir = TempDir::new("modes");
    let sub = dir.path().join("recordings");
    // Without create-recording-path a missing directory is an error.
    let err = open_exclusive(&sub, "x", false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let (_f, p) = open_exclusive(&sub, "x", true).unwrap();
    let mask = umask();
    let file_mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(file_mode, 0o640 & !mask);
    let dir_mode = std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o750 & !mask);
    // An existing directory is fine (and keeps its mode).
    let (_g, p2) = open_exclusive(&sub, "x", true).unwrap();
    assert_eq!(p2, sub.join("x.1"));
}

#[test]
fn invalid_names_are_rejected() {
    let dir = TempDir::new("names");
    for bad in ["", ".", "..", "a/b", "a\\b", "../x"] {
        let err = open_exclusive(dir.path(), bad, false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
    }
}

#[test]
fn recordings_are_write_locked_until_closed() {
    let dir = TempDir::new("lock");
    let (f, p) = open_exclusive(dir.path(), "rec", false).unwrap();

    // Another open of the file cannot lock it, with an OFD lock or with the
    // classic POSIX lock guaclog/guacenc use to detect in-progress recordings.
    let reader = std::fs::File::open(&p).unwrap();
    assert_eq!(
        lock_shared(&reader).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!(
        posix_lock_shared(&reader).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let other_writer = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    assert_eq!(
        file::lock_exclusive(&other_writer).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );

    // Another process (Python's lockf is fcntl F_SETLK) is refused too.
    if let Some(ok) = python_can_lock(&p) {
        assert!(!ok, "another process could lock an in-progress recording");
    }

    drop(f);
    let reader2 = std::fs::File::open(&p).unwrap();
    lock_shared(&reader2).unwrap();
    if let Some(ok) = python_can_lock(&p) {
        // Our own read lock does not block another reader.
        assert!(ok);
    }
}

/// Whether a separate process can take guaclog's read lock; None without python3.
fn python_can_lock(p: &std::path::Path) -> Option<bool> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import fcntl,sys\nf=open(sys.argv[1],'rb')\ntry:\n fcntl.lockf(f,fcntl.LOCK_SH|fcntl.LOCK_NB)\n print('locked')\nexcept OSError:\n print('busy')",
        )
        .arg(p)
        .output()
        .ok()?;
    match String::from_utf8_lossy(&out.stdout).trim() {
        "locked" => Some(true),
        "busy" => Some(false),
        _ => None,
    }
}

#[test]
fn write_existing_appends() {
    let dir = TempDir::new("existing");
    std::fs::write(dir.path().join("rec"), b"old;").unwrap();
    {
        use std::io::Write;
        let (mut f, p) = file::open_existing(dir.path(), "rec", false, true).unwrap();
        assert_eq!(p, dir.path().join("rec"));
        f.write_all(b"new;").unwrap();
        let reader = std::fs::File::open(&p).unwrap();
        assert!(lock_shared(&reader).is_err());
    }
    assert_eq!(std::fs::read(dir.path().join("rec")).unwrap(), b"old;new;");
}
