//! Upload of finished recordings to S3-compatible object storage.
//!
//! - [`sign`]: AWS Signature Version 4 for one request (pure; tested against AWS's
//!   published example).
//! - [`S3Client`]: `PUT`/`HEAD`/`GET` of one object (path-style URLs, streamed bodies).
//! - [`Uploader`]: a durable queue. [`Uploader::enqueue`] first writes a spool entry
//!   (so a crash between the end of a session and the upload loses nothing), then a
//!   background task uploads, confirms (`HEAD` must report the local size), and only then
//!   deletes the local copy (when configured) and the spool entry. Failures are retried
//!   with backoff; entries left over from a previous run are picked up at start.
//!
//! Credentials never reach logs; only object keys and sizes do.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

type HmacSha256 = Hmac<Sha256>;

/// Where and how to upload.
#[derive(Clone)]
pub struct S3Config {
    /// `http://127.0.0.1:9000` or `https://s3.eu-west-1.amazonaws.com` (no bucket, no path).
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Prepended to the file name to make the object key, e.g. `recordings/`.
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &"<hidden>")
            .field("secret_access_key", &"<hidden>")
            .finish()
    }
}

/// Why an upload step failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("invalid endpoint {0:?}")]
    Endpoint(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP request failed: {0}")]
    Http(String),
    #[error("the object store answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("upload not confirmed: stored size {stored:?}, local size {local}")]
    NotConfirmed { stored: Option<u64>, local: u64 },
}

// ---------------------------------------------------------------- SigV4

/// Hex of SHA-256 of the empty payload.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it (unreserved characters kept; `/` kept when
/// `keep_slash`).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` for a time.
pub fn amz_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::tokens::civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// One request to sign.
pub struct SignRequest<'a> {
    pub method: &'a str,
    /// Already URI-encoded path, e.g. `/bucket/key`.
    pub canonical_path: &'a str,
    /// Already canonical query string (sorted, encoded), usually empty.
    pub canonical_query: &'a str,
    /// Headers to sign, names lower-case; `host` and `x-amz-date` included.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the payload (the value of `x-amz-content-sha256`).
    pub payload_sha256: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// The `Authorization` header value (AWS Signature Version 4).
pub fn sign(req: &SignRequest<'_>, access_key_id: &str, secret: &str) -> String {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    headers.sort();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let mut canonical = format!(
        "{}\n{}\n{}\n",
        req.method, req.canonical_path, req.canonical_query
    );
    for (k, v) in &headers {
        canonical.push_str(k);
        canonical.push(':');
        canonical.push_str(v);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed);
    canonical.push('\n');
    canonical.push_str(req.payload_sha256);
    let date = req.amz_date.get(..8).unwrap_or("");
    let scope = format!("{date}/{}/{}/aws4_request", req.region, req.service);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        req.amz_date,
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, req.region.as_bytes());
    let k_service = hmac(&k_region, req.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex(&hmac(&k_signing, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
}

// ---------------------------------------------------------------- client

/// A minimal S3 client: one object at a time, path-style addressing.
#[derive(Clone, Debug)]
pub struct S3Client {
    cfg: S3Config,
    http: reqwest::Client,
    /// `host[:port]` as sent in the Host header.
    host: String,
    /// Endpoint without a trailing slash.
    base: String,
}

impl S3Client {
    pub fn new(cfg: S3Config) -> Result<S3Client, UploadError> {
        let base = cfg.endpoint.trim_end_matches('/').to_owned();
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"))
            .ok_or_else(|| UploadError::Endpoint(cfg.endpoint.clone()))?;
        if rest.is_empty() || rest.contains('/') || cfg.bucket.is_empty() {
            return Err(UploadError::Endpoint(cfg.endpoint.clone()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| UploadError::Http(e.to_string()))?;
        Ok(S3Client {
            host: rest.to_owned(),
            base,
            cfg,
            http,
        })
    }

    /// The object key for a local file.
    pub fn key_for(&self, path: &Path) -> String {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("{}{name}", self.cfg.prefix)
    }

    fn request(
        &self,
        method: reqwest::Method,
        key: &str,
        payload_sha256: &str,
    ) -> reqwest::RequestBuilder {
        let path = format!(
            "/{}/{}",
            uri_encode(&self.cfg.bucket, false),
            uri_encode(key, true)
        );
        let date = amz_date(SystemTime::now());
        let auth = sign(
            &SignRequest {
                method: method.as_str(),
                canonical_path: &path,
                canonical_query: "",
                headers: &[
                    ("host", &self.host),
                    ("x-amz-content-sha256", payload_sha256),
                    ("x-amz-date", &date),
                ],
                payload_sha256,
                amz_date: &date,
                region: &self.cfg.region,
                service: "s3",
            },
            &self.cfg.access_key_id,
            &self.cfg.secret_access_key,
        );
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("x-amz-content-sha256", payload_sha256)
            .header("x-amz-date", date)
            .header("authorization", auth)
    }

    async fn check(resp: reqwest::Response) -> Result<reqwest::Response, UploadError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let mut body = resp.text().await.unwrap_or_default();
        body.truncate(300);
        Err(UploadError::Status { status, body })
    }

    /// Uploads a file (streamed; the payload hash is signed, so the store verifies it).
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<u64, UploadError> {
        let (sha, size) = sha256_file(path).await?;
        let file = tokio::fs::File::open(path).await?;
        let resp = self
            .request(reqwest::Method::PUT, key, &sha)
            .header("content-length", size)
            .body(reqwest::Body::from(file))
            .send()
            .await
            .map_err(|e| UploadError::Http(e.to_string()))?;
        Self::check(resp).await?;
        Ok(size)
    }

    /// The stored size of an object (`None` when it does not exist).
    pub async fn head(&self, key: &str) -> Result<Option<u64>, UploadError> {
        let resp = self
            .request(reqwest::Method::HEAD, key, EMPTY_SHA256)
            .send()
            .await
            .map_err(|e| UploadError::Http(e.to_string()))?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        let resp = Self::check(resp).await?;
        Ok(resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()))
    }

    /// Downloads an object (for tests and the player).
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, UploadError> {
        let resp = self
            .request(reqwest::Method::GET, key, EMPTY_SHA256)
            .send()
            .await
            .map_err(|e| UploadError::Http(e.to_string()))?;
        let resp = Self::check(resp).await?;
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| UploadError::Http(e.to_string()))
    }

    /// Uploads and confirms: the stored size must equal the local size.
    pub async fn upload_confirmed(&self, path: &Path) -> Result<(String, u64), UploadError> {
        let key = self.key_for(path);
        let size = self.put_file(&key, path).await?;
        let stored = self.head(&key).await?;
        if stored != Some(size) {
            return Err(UploadError::NotConfirmed {
                stored,
                local: size,
            });
        }
        Ok((key, size))
    }
}

async fn sha256_file(path: &Path) -> Result<(String, u64), UploadError> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex(&h.finalize()), size))
}

// ---------------------------------------------------------------- uploader

/// What happened to one queued file (for the audit trail and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadEvent {
    Uploaded {
        path: PathBuf,
        key: String,
        size: u64,
        local_deleted: bool,
    },
    Failed {
        path: PathBuf,
        error: String,
        attempt: u32,
    },
    /// The local file vanished before it could be uploaded (nothing to do).
    Missing { path: PathBuf },
}

/// Upload settings besides the store.
#[derive(Debug, Clone)]
pub struct UploaderConfig {
    pub s3: S3Config,
    /// Durable queue directory (one small file per pending upload).
    pub spool_dir: PathBuf,
    /// Delete the local copy once the upload is confirmed.
    pub delete_local: bool,
    /// First retry delay; doubles up to `max_retry_delay`.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
}

/// The durable upload queue; cheap to clone.
#[derive(Clone)]
pub struct Uploader {
    spool: PathBuf,
    tx: mpsc::UnboundedSender<PathBuf>,
}

const SPOOL_SUFFIX: &str = ".upload";

impl Uploader {
    /// Starts the background task (on the current tokio runtime) and queues what a
    /// previous run left in the spool. `events` receives what happens (may be dropped).
    pub fn start(
        cfg: UploaderConfig,
        events: Option<mpsc::UnboundedSender<UploadEvent>>,
    ) -> Result<Uploader, UploadError> {
        let client = S3Client::new(cfg.s3.clone())?;
        std::fs::create_dir_all(&cfg.spool_dir)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let leftovers = spool_entries(&cfg.spool_dir)?;
        for entry in leftovers {
            let _ = tx.send(entry);
        }
        tokio::spawn(run(cfg.clone(), client, rx, events));
        Ok(Uploader {
            spool: cfg.spool_dir,
            tx,
        })
    }

    /// Queues a finished file: durable once this returns.
    pub fn enqueue(&self, path: &Path) -> Result<(), UploadError> {
        let path = std::path::absolute(path)?;
        let entry = self.spool.join(spool_name(&path));
        let tmp = entry.with_extension("tmp");
        std::fs::write(&tmp, path.as_os_str().as_encoded_bytes())?;
        std::fs::rename(&tmp, &entry)?;
        let _ = self.tx.send(entry);
        Ok(())
    }

    /// Entries not yet confirmed.
    pub fn pending(&self) -> usize {
        spool_entries(&self.spool).map(|v| v.len()).unwrap_or(0)
    }
}

fn spool_name(path: &Path) -> String {
    let h = Sha256::digest(path.as_os_str().as_encoded_bytes());
    format!("{}{SPOOL_SUFFIX}", hex(&h[..16]))
}

fn spool_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.to_string_lossy().ends_with(SPOOL_SUFFIX) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

async fn run(
    cfg: UploaderConfig,
    client: S3Client,
    mut rx: mpsc::UnboundedReceiver<PathBuf>,
    events: Option<mpsc::UnboundedSender<UploadEvent>>,
) {
    let emit = |e: UploadEvent| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    while let Some(entry) = rx.recv().await {
        let Ok(raw) = tokio::fs::read(&entry).await else {
            continue; // already handled (queued twice)
        };
        let path = PathBuf::from(String::from_utf8_lossy(&raw).into_owned());
        let mut delay = cfg.retry_delay;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if tokio::fs::metadata(&path).await.is_err() {
                let _ = tokio::fs::remove_file(&entry).await;
                emit(UploadEvent::Missing { path: path.clone() });
                break;
            }
            match client.upload_confirmed(&path).await {
                Ok((key, size)) => {
                    let local_deleted =
                        cfg.delete_local && tokio::fs::remove_file(&path).await.is_ok();
                    let _ = tokio::fs::remove_file(&entry).await;
                    tracing::info!(target: "guacr::audit", event = "recording_uploaded", key = %key, size, "audit");
                    metrics::counter!("guacr_recording_uploads_total", "result" => "ok")
                        .increment(1);
                    emit(UploadEvent::Uploaded {
                        path: path.clone(),
                        key,
                        size,
                        local_deleted,
                    });
                    break;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), attempt, "recording upload failed (local copy kept, will retry): {e}");
                    metrics::counter!("guacr_recording_uploads_total", "result" => "error")
                        .increment(1);
                    emit(UploadEvent::Failed {
                        path: path.clone(),
                        error: e.to_string(),
                        attempt,
                    });
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(cfg.max_retry_delay);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published SigV4 example for S3 (GET object with a Range header), from
    /// "Signature Calculations for the Authorization Header: Transferring Payload in a
    /// Single Chunk" in the Amazon S3 API reference.
    #[test]
    fn matches_aws_published_example() {
        let auth = sign(
            &SignRequest {
                method: "GET",
                canonical_path: "/test.txt",
                canonical_query: "",
                headers: &[
                    ("host", "examplebucket.s3.amazonaws.com"),
                    ("range", "bytes=0-9"),
                    ("x-amz-content-sha256", EMPTY_SHA256),
                    ("x-amz-date", "20130524T000000Z"),
                ],
                payload_sha256: EMPTY_SHA256,
                amz_date: "20130524T000000Z",
                region: "us-east-1",
                service: "s3",
            },
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn encodes_keys_like_sigv4() {
        assert_eq!(uri_encode("a b/c+d~e", true), "a%20b/c%2Bd~e");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(uri_encode("é", true), "%C3%A9");
    }

    #[test]
    fn formats_amz_dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600);
        assert_eq!(amz_date(t), "20130524T000000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_827_696);
        assert_eq!(amz_date(t), "20000229T123456Z");
    }

    #[test]
    fn refuses_bad_endpoints() {
        let cfg = |e: &str| S3Config {
            endpoint: e.into(),
            bucket: "b".into(),
            region: "us-east-1".into(),
            prefix: String::new(),
            access_key_id: "a".into(),
            secret_access_key: "s".into(),
        };
        assert!(S3Client::new(cfg("ftp://x")).is_err());
        assert!(S3Client::new(cfg("http://")).is_err());
        assert!(S3Client::new(cfg("http://host/path")).is_err());
        assert!(S3Client::new(cfg("http://127.0.0.1:9000/")).is_ok());
    }

    #[test]
    fn debug_hides_credentials() {
        let c = S3Config {
            endpoint: "http://x".into(),
            bucket: "b".into(),
            region: "r".into(),
            prefix: String::new(),
            access_key_id: "AKIDSECRET".into(),
            secret_access_key: "TOPSECRET".into(),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("TOPSECRET") && !s.contains("AKIDSECRET"), "{s}");
    }
}
