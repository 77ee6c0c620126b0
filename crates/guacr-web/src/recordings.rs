//! Recordings for the web player: list, download (`.guac`), key log.
//! Admins only; every download is audited (`recording.view`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::api::{admin, error};
use crate::{App, AuditEvent};

/// Longest recording whose key log is built in memory.
const MAX_KEYS_INPUT: u64 = 256 << 20;

#[derive(Debug, Serialize)]
pub struct RecordingInfo {
    pub name: String,
    pub size: u64,
    pub modified: String,
    pub encrypted: bool,
}

/// What a file in the recordings directory is, from its first bytes.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Guac,
    Encrypted,
    Other,
}

fn kind_of(prefix: &[u8]) -> Kind {
    if guacr_record::crypto::is_encrypted(prefix) {
        return Kind::Encrypted;
    }
    // A `.guac` file starts with an instruction: `<n>.<opcode of n letters>,` (or `;`).
    let digits = prefix.iter().take_while(|b| b.is_ascii_digit()).count();
    let n: usize = std::str::from_utf8(&prefix[..digits.min(2)])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let opcode = prefix.get(digits + 1..digits + 1 + n);
    let after = prefix.get(digits + 1 + n);
    let is_instruction = (1..=2).contains(&digits)
        && prefix.get(digits) == Some(&b'.')
        && opcode.is_some_and(|o| o.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'))
        && matches!(after, Some(b',') | Some(b';'));
    if is_instruction {
        Kind::Guac
    } else {
        Kind::Other
    }
}

fn dir(app: &App) -> Result<&PathBuf, Response> {
    app.opts.recordings_dir.as_ref().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No recordings directory is configured ([web] recordings_dir).",
        )
    })
}

fn path_of(app: &App, name: &str) -> Result<PathBuf, Response> {
    let d = dir(app)?;
    if !guacr_record::file::is_filename(name) || name.starts_with('.') {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Not a recording name.",
        ));
    }
    Ok(d.join(name))
}

async fn prefix(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; 32];
    let mut n = 0;
    while n < buf.len() {
        let r = f.read(&mut buf[n..]).await?;
        if r == 0 {
            break;
        }
        n += r;
    }
    buf.truncate(n);
    Ok(buf)
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "No such recording.")
}

pub async fn list(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admin(&app, &method, &headers, addr).await {
        return r;
    }
    let d = match dir(&app) {
        Ok(d) => d.clone(),
        Err(_) => return Json(Vec::<RecordingInfo>::new()).into_response(),
    };
    let mut out = Vec::new();
    let mut entries = match tokio::fs::read_dir(&d).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(dir = %d.display(), "cannot list recordings: {e}");
            return Json(out).into_response();
        }
    };
    while let Ok(Some(e)) = entries.next_entry().await {
        let Ok(meta) = e.metadata().await else {
            continue;
        };
        let name = e.file_name().to_string_lossy().into_owned();
        if !meta.is_file() || name.starts_with('.') {
            continue;
        }
        let kind = match prefix(&e.path()).await {
            Ok(p) => kind_of(&p),
            Err(_) => continue,
        };
        if kind == Kind::Other {
            continue; // typescripts, timing files, anything else
        }
        let modified = meta.modified().map(crate::rfc3339).unwrap_or_default();
        out.push(RecordingInfo {
            name,
            size: meta.len(),
            modified,
            encrypted: kind == Kind::Encrypted,
        });
        if out.len() >= 5000 {
            break;
        }
    }
    out.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
    Json(out).into_response()
}

async fn open_guac(app: &App, name: &str) -> Result<(PathBuf, u64), Response> {
    let path = path_of(app, name)?;
    let meta = tokio::fs::metadata(&path).await.map_err(|_| not_found())?;
    if !meta.is_file() {
        return Err(not_found());
    }
    match prefix(&path).await.map(|p| kind_of(&p)) {
        Ok(Kind::Guac) => Ok((path, meta.len())),
        Ok(Kind::Encrypted) => Err(error(
            StatusCode::CONFLICT,
            "conflict",
            "This recording is encrypted; decrypt it with `guacr recording decrypt` and the private key.",
        )),
        _ => Err(not_found()),
    }
}

/// An admin's request for one readable recording: (admin's user name, path, size).
async fn admin_recording(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    addr: SocketAddr,
    name: &str,
) -> Result<(String, PathBuf, u64), Response> {
    let a = admin(app, method, headers, addr).await?;
    let (path, size) = open_guac(app, name).await?;
    Ok((a.user.username, path, size))
}

async fn audit_view(app: &App, user: &str, addr: SocketAddr, name: &str, what: &str) {
    let mut ev = AuditEvent::new("recording.view");
    ev.username = user.to_owned();
    ev.remote_addr = addr.ip().to_string();
    ev.recording_path = name.to_owned();
    ev.detail = what.to_owned();
    app.audit(ev).await;
}

pub async fn download(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let (user, path, size) = match admin_recording(&app, &method, &headers, addr, &name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return not_found(),
    };
    audit_view(&app, &user, addr, &name, "download").await;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

pub async fn keys(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let (user, path, size) = match admin_recording(&app, &method, &headers, addr, &name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if size > MAX_KEYS_INPUT {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid",
            "This recording is too large for an in-browser key log; use `guacr recording keys`.",
        );
    }
    let data = match tokio::fs::read(&path).await {
        Ok(d) => d,
        Err(_) => return not_found(),
    };
    audit_view(&app, &user, addr, &name, "keys").await;
    let keys = tokio::task::spawn_blocking(move || guacr_record::keys_from_recording(&data))
        .await
        .unwrap_or_default();
    Json(serde_json::json!({ "keys": keys })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_recordings_from_other_files() {
        assert_eq!(kind_of(b"4.size,1.0,4.1024,3.768;"), Kind::Guac);
        assert_eq!(kind_of(b"GUACRENC1\x00\x01"), Kind::Encrypted);
        assert_eq!(kind_of(b"[BEGIN TYPESCRIPT] "), Kind::Other);
        assert_eq!(kind_of(b"0.012 4096\n"), Kind::Other);
        assert_eq!(kind_of(b""), Kind::Other);
        assert_eq!(kind_of(b"1234567.x"), Kind::Other);
        assert_eq!(kind_of(b"0.1 1\n"), Kind::Other);
        assert_eq!(kind_of(b"12.345678 4096\n"), Kind::Other);
        assert_eq!(kind_of(b"3.key,5.65307,1.1;"), Kind::Guac);
    }
}
