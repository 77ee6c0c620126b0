//! Wires `guacr-record` into a session: `.guac` recordings and typescripts
//! as a [`SessionTap`], a watcher that applies the failure policy, and the
//! audit trail of recording events.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use guacr_protocol::Status;
use guacr_record::{
    FailurePolicy, GuacRecording, RecordingSettings, Typescript, TypescriptSettings,
};
use guacr_session::{Input, Params, Session, SessionError, SessionTap, UserInfo};

use crate::config::Config;

/// Stream index used for recorded clipboard data (never used by handlers' output).
const CLIPBOARD_STREAM: i32 = 63;

/// The recording and typescript of one session.
pub struct Recorder {
    guac: Mutex<Option<GuacRecording>>,
    typescript: Mutex<Option<Typescript>>,
    /// Finished files go here (`[recording.upload]`).
    uploader: Option<guacr_record::upload::Uploader>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recorder {
    /// Opens what the parameters ask for. `Ok(None)`: nothing to record.
    /// An error means the session must not start (the client gets it).
    pub async fn open(
        params: &Params,
        config: &Config,
        uploader: Option<guacr_record::upload::Uploader>,
    ) -> Result<Option<Arc<Recorder>>, SessionError> {
        let policy = config.recording_failure();
        let key = config.recording_key().map_err(|e| {
            SessionError::new(Status::ServerError, format!("Recording key unusable: {e}"))
        })?;
        let username = params.get("username");
        let now = guacr_record::tokens::LocalTime::now();
        let bad = |e: guacr_record::RecordError| {
            SessionError::new(Status::ClientBadRequest, e.to_string())
        };
        let mut rec =
            RecordingSettings::from_params_with(params, username, policy, now).map_err(bad)?;
        let mut ts =
            TypescriptSettings::from_params_with(params, username, policy, now).map_err(bad)?;
        if rec.is_none() && ts.is_none() {
            return Ok(None);
        }
        let encryption = key.map(|recipient| guacr_record::EncryptionSettings { recipient });
        let open_failed = |what: &str, e: guacr_record::RecordError| {
            audit("recording_open_failed", what, &e.to_string());
            metrics::counter!("guacr_recording_failures_total").increment(1);
            SessionError::new(
                Status::ServerError,
                format!("The session cannot be recorded ({what}): {e}"),
            )
        };
        let guac = match rec.as_mut() {
            Some(s) => {
                s.encryption = encryption.clone();
                match GuacRecording::open(s).await {
                    Ok(r) => {
                        audit("recording_started", "recording", &display(r.path()));
                        Some(r)
                    }
                    Err(e) if s.failure_policy == FailurePolicy::Continue => {
                        tracing::warn!("recording disabled: {e}");
                        None
                    }
                    Err(e) => return Err(open_failed("recording", e)),
                }
            }
            None => None,
        };
        let typescript = match ts.as_mut() {
            Some(s) => {
                s.encryption = encryption;
                match Typescript::open(s).await {
                    Ok(t) => {
                        audit("typescript_started", "typescript", &display(t.path()));
                        Some(t)
                    }
                    Err(e) if s.failure_policy == FailurePolicy::Continue => {
                        tracing::warn!("typescript disabled: {e}");
                        None
                    }
                    Err(e) => return Err(open_failed("typescript", e)),
                }
            }
            None => None,
        };
        Ok(Some(Arc::new(Recorder {
            guac: Mutex::new(guac),
            typescript: Mutex::new(typescript),
            uploader,
        })))
    }

    /// Watches for failures (applying the policy) and closes the files when
    /// the session ends.
    pub fn watch(self: Arc<Self>, session: Arc<Session>) {
        tokio::spawn(async move {
            let failure = async {
                // Poll both: each resolves only on failure.
                loop {
                    let guac_failed = lock(&self.guac)
                        .as_ref()
                        .and_then(|g| g.failed().map(|f| (f, g.policy())));
                    let ts_failed = lock(&self.typescript)
                        .as_ref()
                        .and_then(|t| t.failed().map(|f| (f, t.policy())));
                    if let Some(x) = guac_failed.or(ts_failed) {
                        return x;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            };
            tokio::select! {
                (failure, policy) = failure => {
                    metrics::counter!("guacr_recording_failures_total").increment(1);
                    audit("recording_failed", session.id(), &failure.to_string());
                    if policy == FailurePolicy::Terminate {
                        tracing::error!(connection = %session.id(), "recording failed, ending the session: {failure}");
                        let err = SessionError::new(
                            Status::ServerError,
                            format!("Session recording failed; the session cannot continue: {failure}"),
                        );
                        session.close(Some(&err));
                        session.request_shutdown();
                    } else {
                        tracing::warn!(connection = %session.id(), "recording failed, the session continues: {failure}");
                    }
                    session.wait_closed().await;
                }
                _ = session.wait_closed() => {}
            }
            self.close().await;
        });
    }

    async fn close(&self) {
        let guac = lock(&self.guac).take();
        if let Some(g) = guac {
            let file = g.path().map(|p| p.to_path_buf());
            let path = display(g.path());
            match g.close().await {
                Ok(()) => {
                    audit("recording_finished", "recording", &path);
                    self.upload(file.iter().cloned());
                }
                Err(e) => audit("recording_failed", "recording", &e.to_string()),
            }
        }
        let ts = lock(&self.typescript).take();
        if let Some(t) = ts {
            let file = t.path().map(|p| p.to_path_buf());
            let path = display(t.path());
            match t.close().await {
                Ok(()) => {
                    audit("typescript_finished", "typescript", &path);
                    let timing = file.as_ref().map(|p| {
                        let mut s = p.clone().into_os_string();
                        s.push(guacr_record::typescript::TIMING_SUFFIX);
                        std::path::PathBuf::from(s)
                    });
                    self.upload(file.into_iter().chain(timing));
                }
                Err(e) => audit("recording_failed", "typescript", &e.to_string()),
            }
        }
    }

    /// Queues finished files for upload (durably: the spool entry is written first).
    fn upload(&self, files: impl Iterator<Item = std::path::PathBuf>) {
        let Some(up) = &self.uploader else { return };
        for f in files {
            if let Err(e) = up.enqueue(&f) {
                metrics::counter!("guacr_recording_failures_total").increment(1);
                audit(
                    "recording_upload_failed",
                    &display(Some(&f)),
                    &e.to_string(),
                );
            }
        }
    }
}

fn display(p: Option<&std::path::Path>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

/// An audit event (the standalone gateway will store these; today: the log).
fn audit(event: &str, subject: &str, detail: &str) {
    tracing::info!(target: "guacr::audit", event, subject, detail, "audit");
}

impl SessionTap for Recorder {
    fn output(&self, data: &Bytes) {
        if let Some(g) = lock(&self.guac).as_ref() {
            let _ = g.output(data);
        }
    }

    fn input(&self, _user: &UserInfo, input: &Input) {
        if let Some(g) = lock(&self.guac).as_ref() {
            let _ = g.input(input, guacr_record::guac::now(), CLIPBOARD_STREAM);
        }
    }

    fn upstream(&self, data: &Bytes) {
        if let Some(t) = lock(&self.typescript).as_mut() {
            let _ = t.write_bytes(data.clone());
        }
    }

    fn frame(&self) {
        if let Some(t) = lock(&self.typescript).as_mut() {
            let _ = t.flush();
        }
    }
}
