//! Opening recording files the way guacd does (`guac_openat` in
//! `src/libguac/file.c`).
//!
//! - The name must be a plain file name: not `.`/`..`, no `/` or `\`.
//! - With `create-*-path`, the directory (one level, like `mkdir(2)`) is
//!   created with mode 0750; an existing directory is fine.
//! - The file is created with `O_CREAT|O_EXCL|O_WRONLY`, mode 0640. If the name
//!   is taken, `NAME.1`, `NAME.2`, … `NAME.255` are tried; after that the open
//!   fails ("Exhausted all possible unique suffixes"). guacd retries the
//!   suffixes on any `open` error; guacr retries only when the name exists and
//!   reports any other error (permissions, missing directory) at once.
//! - `.guac` recordings are write-locked for as long as they are recorded, so
//!   that `guacenc`/`guaclog` refuse in-progress recordings. guacd takes a POSIX
//!   record lock: `fcntl(fd, F_SETLK, {F_WRLCK, SEEK_SET, 0, 0})` on the whole
//!   file; `guacenc`/`guaclog` test with `F_SETLK`/`F_RDLCK`. guacr takes an
//!   *open file description* lock (`F_OFD_SETLK`, Linux ≥ 3.15) instead: it
//!   conflicts with those classic POSIX locks in every process, but unlike them
//!   it belongs to this open file rather than to the whole process, so two
//!   sessions in the one guacr process also exclude each other, and closing some
//!   other descriptor of the file does not silently drop the lock. Where OFD
//!   locks are unavailable, the classic `F_SETLK` is used.
//!   Typescripts are not locked (guacd does not lock them either).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Highest numeric suffix tried (`GUAC_FILE_UNIQUE_SUFFIX_MAX`).
pub const MAX_SUFFIX: u32 = 255;
/// Mode of created files (`S_IRUSR | S_IWUSR | S_IRGRP`).
pub const FILE_MODE: u32 = 0o640;
/// Mode of created directories (`S_IRWXU | S_IRGRP | S_IXGRP`).
pub const DIR_MODE: u32 = 0o750;

/// Whether `name` is a bare file name (guacd's `guac_is_filename`).
pub fn is_filename(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

fn create_dir(dir: &Path) -> io::Result<()> {
    match DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "containing directory {} could not be created: {e}",
                dir.display()
            ),
        )),
    }
}

fn check_dir(dir: &Path) -> io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            ErrorKind::NotADirectory,
            format!("{} is not a directory", dir.display()),
        )),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "containing directory {} could not be opened: {e}",
                dir.display()
            ),
        )),
    }
}

fn invalid_name(name: &str) -> io::Error {
    io::Error::new(
        ErrorKind::InvalidInput,
        format!("{name:?} is not a valid file name (no path separators, not . or ..)"),
    )
}

/// Creates `dir/name` exclusively (or `name.1` … `name.255`), mode 0640, and
/// write-locks it. Returns the open file and its path; the lock lasts until
/// the file is closed.
pub fn open_exclusive(dir: &Path, name: &str, create_dir: bool) -> io::Result<(File, PathBuf)> {
    let (file, path) = create_unique(dir, name, create_dir)?;
    lock_exclusive(&file).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{} could not be locked: {e}", path.display()),
        )
    })?;
    Ok((file, path))
}

/// Like [`open_exclusive`] without the lock (guacd's typescript data file).
pub fn create_unique(dir: &Path, name: &str, create_dir_flag: bool) -> io::Result<(File, PathBuf)> {
    if !is_filename(name) {
        return Err(invalid_name(name));
    }
    if create_dir_flag {
        create_dir(dir)?;
    }
    check_dir(dir)?;
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true).mode(FILE_MODE);
    let path = dir.join(name);
    match opts.open(&path) {
        Ok(f) => return Ok((f, path)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(open_error(&path, e)),
    }
    for i in 1..=MAX_SUFFIX {
        let path = dir.join(format!("{name}.{i}"));
        match opts.open(&path) {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(open_error(&path, e)),
        }
    }
    Err(io::Error::new(
        ErrorKind::AlreadyExists,
        format!(
            "exhausted all possible unique suffixes for {} (.1 to .{MAX_SUFFIX} exist)",
            dir.join(name).display()
        ),
    ))
}

/// Opens `dir/name` for appending, creating it (mode 0640) if needed: guacd's
/// `recording-write-existing` / `typescript-write-existing`. guacd opens such
/// files with `O_CREAT|O_WRONLY` and writes from offset 0 over whatever is
/// there; guacr appends, as the parameter is documented ("existing files should
/// be appended to"), so an old recording is never left half overwritten.
pub fn open_existing(
    dir: &Path,
    name: &str,
    create_dir_flag: bool,
    lock: bool,
) -> io::Result<(File, PathBuf)> {
    if !is_filename(name) {
        return Err(invalid_name(name));
    }
    if create_dir_flag {
        create_dir(dir)?;
    }
    check_dir(dir)?;
    let path = dir.join(name);
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(|e| open_error(&path, e))?;
    if lock {
        lock_exclusive(&file).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{} could not be locked: {e}", path.display()),
            )
        })?;
    }
    Ok((file, path))
}

/// Opens the sibling file `path` (e.g. a typescript's `.timing`), creating or
/// truncating it, mode 0640. guacd opens it `O_CREAT|O_WRONLY` without
/// truncation; guacr truncates so stale timing lines cannot corrupt a replay.
pub fn open_sibling(path: &Path, append: bool) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).mode(FILE_MODE);
    if append {
        opts.append(true);
    } else {
        opts.write(true).truncate(true);
    }
    opts.open(path).map_err(|e| open_error(path, e))
}

fn open_error(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{} could not be opened: {e}", path.display()),
    )
}

/// Takes a write lock on the whole of `file` without waiting
/// (`ErrorKind::WouldBlock` when someone else holds a conflicting lock).
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    set_lock(file, libc::F_WRLCK as libc::c_short)
}

/// Takes a read lock on the whole of `file` without waiting, as `guaclog` and
/// `guacenc` do to detect in-progress recordings (`ErrorKind::WouldBlock` while
/// a recording is being written).
pub fn lock_shared(file: &File) -> io::Result<()> {
    set_lock(file, libc::F_RDLCK as libc::c_short)
}

#[allow(unsafe_code)]
fn fcntl_lock(file: &File, cmd: libc::c_int, kind: libc::c_short) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `libc::flock` is a plain C struct of integers; all-zero is valid
    // (and `l_pid` must be 0 for OFD locks).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0;
    // SAFETY: the descriptor is owned by `file`, which outlives the call, and
    // `fl` is a valid `struct flock` that fcntl only reads for F_SETLK-type
    // commands.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &fl as *const libc::flock) };
    if r == -1 {
        let e = io::Error::last_os_error();
        // EACCES and EAGAIN both mean "held by someone else".
        if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EAGAIN)) {
            return Err(io::Error::new(
                ErrorKind::WouldBlock,
                "file is locked by another writer",
            ));
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_lock(file: &File, kind: libc::c_short) -> io::Result<()> {
    match fcntl_lock(file, libc::F_OFD_SETLK, kind) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => fcntl_lock(file, libc::F_SETLK, kind),
        other => other,
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_lock(file: &File, kind: libc::c_short) -> io::Result<()> {
    fcntl_lock(file, libc::F_SETLK, kind)
}

/// The classic per-process POSIX lock guacd, `guacenc` and `guaclog` use
/// (exposed for tests that check compatibility with them).
pub fn posix_lock_shared(file: &File) -> io::Result<()> {
    fcntl_lock(file, libc::F_SETLK, libc::F_RDLCK as libc::c_short)
}
