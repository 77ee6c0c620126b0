//! The web gateway glue: the daemon as a [`guacr_web::Gateway`] and
//! `guacr-store` as a [`guacr_web::Directory`].

use std::sync::Arc;
use std::time::Duration;

use guacr_store::{
    AuditQuery, LoginOutcome, NewAuditEvent, NewConnection, NewUser, Permissions, Store, UserUpdate,
};
use guacr_web::directory::{self as wd, DirError, DirResult, LoginError};
use guacr_web::{Gateway, LiveSession, OpenTunnel, ProtocolInfo, Target, WebOptions};

use crate::config::Config;
use crate::connection::{TunnelRequest, TunnelTarget};
use crate::server::ServerState;

/// The daemon, for the web server.
pub struct DaemonGateway {
    pub state: Arc<ServerState>,
}

impl Gateway for DaemonGateway {
    fn protocols(&self) -> Vec<ProtocolInfo> {
        self.state
            .protocols()
            .into_iter()
            .map(|p| ProtocolInfo {
                name: p.name().to_owned(),
                params: p.param_specs(),
            })
            .collect()
    }

    fn sessions(&self) -> Vec<LiveSession> {
        self.state
            .registry
            .all()
            .into_iter()
            .filter(|s| !s.is_closed())
            .map(|s| LiveSession {
                id: s.id().to_owned(),
                protocol: s.protocol().to_owned(),
                users: s.user_count(),
            })
            .collect()
    }

    fn kill(&self, session_id: &str, reason: &str) -> bool {
        match self.state.registry.get(session_id) {
            Some(s) => {
                tracing::info!(connection = %session_id, "session killed: {reason}");
                s.kill(reason);
                true
            }
            None => false,
        }
    }

    fn open(
        &self,
        tunnel: OpenTunnel,
        stream: guacr_web::stream::TunnelStream,
    ) -> guacr_web::gateway::BoxFuture {
        let state = self.state.clone();
        Box::pin(async move {
            let peer = tunnel.remote_addr.to_string();
            let admitted = state.admit_connection(tunnel.remote_addr.ip());
            let request = TunnelRequest {
                target: match tunnel.target {
                    Target::Protocol(p) => TunnelTarget::Protocol(p),
                    Target::Join(id) => TunnelTarget::Join(id),
                },
                client: tunnel.client,
                params: tunnel.params,
                read_only: tunnel.read_only,
            };
            let on_ready = tunnel.on_ready;
            let span = tracing::info_span!(
                "tunnel",
                peer = %peer,
                connection = tracing::field::Empty,
                user = tracing::field::Empty,
                protocol = tracing::field::Empty,
            );
            tracing::Instrument::instrument(
                crate::connection::serve_tunnel(
                    stream,
                    state,
                    peer,
                    admitted,
                    request,
                    Box::new(move |s, u| {
                        on_ready(guacr_web::gateway::ReadySession {
                            session_id: s.id().to_owned(),
                            user_id: u.id.clone(),
                        })
                    }),
                ),
                span,
            )
            .await;
        })
    }

    fn is_shutting_down(&self) -> bool {
        self.state.is_shutting_down()
    }

    fn session(&self, session_id: &str) -> Option<Arc<guacr_session::Session>> {
        self.state.registry.get(session_id)
    }

    fn is_graphical(&self, protocol: &str) -> bool {
        self.state
            .protocols()
            .iter()
            .any(|p| p.name() == protocol && p.graphical())
    }
}

/// Whether the web gateway runs: `[web] enabled` when set, else gateway
/// mode (`gateway_mode`: no configuration file and no `-b`/`-l`).
pub fn enabled(cfg: &Config, gateway_mode: bool) -> bool {
    cfg.web.enabled.unwrap_or(gateway_mode)
}

/// The token secret from `[web]` or `GUACR_TOKEN_SECRET`.
pub fn token_secret(cfg: &Config) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(s) = &cfg.web.token_secret {
        return Ok(Some(s.as_bytes().to_vec()));
    }
    if let Some(f) = &cfg.web.token_secret_file {
        let s = std::fs::read_to_string(f).map_err(|e| {
            anyhow::anyhow!("cannot read web.token_secret_file {}: {e}", f.display())
        })?;
        return Ok(Some(s.trim().as_bytes().to_vec()));
    }
    Ok(std::env::var("GUACR_TOKEN_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .map(String::into_bytes))
}

/// The web listener's options from the configuration.
pub fn options(cfg: &Config) -> anyhow::Result<WebOptions> {
    let w = &cfg.web;
    let tls = match (&w.certificate, &w.key) {
        (Some(c), Some(k)) => Some(crate::tls::acceptor(c, k)?),
        _ => match (&cfg.ssl.server_certificate, &cfg.ssl.server_key) {
            (Some(c), Some(k)) => Some(crate::tls::acceptor(c, k)?),
            _ => None,
        },
    };
    Ok(WebOptions {
        bind: w.bind.parse()?,
        assets: w.assets.clone().or_else(guacr_web::find_assets),
        tls,
        token_secret: token_secret(cfg)?,
        session_idle: Duration::from_secs(w.session_idle_minutes.max(1) * 60),
        session_absolute: Duration::from_secs(w.session_max_hours.max(1) * 3600),
        session_revalidate: Duration::from_secs(w.session_revalidate_seconds),
        login_per_ip_per_minute: w.login_per_ip_per_minute,
        login_per_user_per_minute: w.login_per_user_per_minute,
        max_message_bytes: w.max_message_bytes,
        share_ttl: Duration::from_secs(3600),
        oidc: w
            .oidc
            .iter()
            .map(|o| guacr_web::OidcProvider {
                id: o.id.clone(),
                label: if o.label.is_empty() {
                    format!("Sign in with {}", o.id)
                } else {
                    o.label.clone()
                },
                issuer: o.issuer.trim_end_matches('/').to_owned(),
                client_id: o.client_id.clone(),
                client_secret: o.client_secret.clone(),
                username_claim: o.username_claim.clone(),
                scopes: o.scopes.clone().unwrap_or_else(|| "profile email".into()),
            })
            .collect(),
        public_url: w.public_url.clone(),
        recordings_dir: w.recordings_dir.clone(),
        webrtc: webrtc_options(&w.webrtc)?,
    })
}

/// `[web.webrtc]` as the web server's options.
pub fn webrtc_options(
    w: &crate::config::WebRtcSection,
) -> anyhow::Result<guacr_web::WebRtcOptions> {
    let mut addresses = Vec::new();
    for a in &w.addresses {
        addresses.push(a.parse().map_err(|e| {
            anyhow::anyhow!("web.webrtc.addresses: {a:?} is not an IP address: {e}")
        })?);
    }
    Ok(guacr_web::WebRtcOptions {
        enabled: w.enabled,
        addresses,
        ice_servers: w
            .ice_servers
            .iter()
            .map(|s| guacr_web::IceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect(),
        video: w.video,
        max_bitrate: w.max_bitrate,
        max_fps: w.max_fps,
        encoder: w.encoder.clone(),
    })
}

/// Binds the web listener over the daemon `state` and `store`.
pub async fn bind(
    cfg: &Config,
    state: Arc<ServerState>,
    store: Store,
) -> anyhow::Result<guacr_web::WebServer> {
    let gateway = Arc::new(DaemonGateway { state });
    // Secret parameters: the handlers' schemas, plus the store's own rule.
    let secrets: Vec<(String, String)> = gateway
        .protocols()
        .into_iter()
        .flat_map(|p| {
            let name = p.name.clone();
            p.params
                .into_iter()
                .filter(|s| s.secret)
                .map(move |s| (name.clone(), s.name.to_owned()))
        })
        .collect();
    store.set_secret_predicate(Arc::new(move |proto: &str, name: &str| {
        secrets.iter().any(|(p, n)| p == proto && n == name)
            || guacr_store::default_is_secret(proto, name)
    }));
    guacr_web::WebServer::bind(options(cfg)?, gateway, Arc::new(StoreDirectory(store))).await
}

/// `guacr-store` behind the web server's [`guacr_web::Directory`].
pub struct StoreDirectory(pub Store);

fn internal(e: guacr_store::Error) -> DirError {
    match e {
        guacr_store::Error::NotFound(_) => DirError::NotFound,
        guacr_store::Error::Conflict(m) => DirError::Conflict(m),
        guacr_store::Error::Invalid(m) => DirError::Invalid(m),
        other => DirError::Internal(other.to_string()),
    }
}

fn id_of(s: &str) -> DirResult<i64> {
    s.parse().map_err(|_| DirError::NotFound)
}

fn ids(v: &[String]) -> Vec<i64> {
    v.iter().filter_map(|s| s.parse().ok()).collect()
}

fn user_of(u: guacr_store::User, groups: Vec<i64>) -> wd::User {
    wd::User {
        id: u.id.to_string(),
        username: u.username,
        display_name: u.display_name,
        admin: u.admin,
        totp_enabled: u.totp_enabled,
        disabled: u.disabled,
        groups: groups.iter().map(i64::to_string).collect(),
        must_change_password: u.must_change_password,
    }
}

fn connection_of(c: guacr_store::Connection) -> wd::Connection {
    wd::Connection {
        id: c.id.to_string(),
        name: c.name,
        protocol: c.protocol,
        group: c.group,
        description: c.description,
        params: c.params,
        secret_params: c.secret_params,
    }
}

fn new_connection(c: &wd::Connection) -> NewConnection {
    NewConnection {
        name: c.name.clone(),
        protocol: c.protocol.clone(),
        group: c.group.clone(),
        description: c.description.clone(),
        params: c.params.clone(),
    }
}

fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

#[async_trait::async_trait]
impl guacr_web::Directory for StoreDirectory {
    async fn login(
        &self,
        username: &str,
        password: &str,
        totp: Option<&str>,
        _remote_addr: &str,
    ) -> Result<wd::User, LoginError> {
        match self.0.authenticate(username, password, totp).await {
            Ok(LoginOutcome::Success(u)) => {
                let groups = self.0.user_groups(u.id).await.unwrap_or_default();
                Ok(user_of(u, groups))
            }
            Ok(LoginOutcome::InvalidCredentials) => Err(LoginError::InvalidCredentials),
            Ok(LoginOutcome::TotpRequired) => Err(LoginError::TotpRequired),
            Ok(LoginOutcome::Locked { .. }) => Err(LoginError::Locked),
            Ok(LoginOutcome::Disabled) => Err(LoginError::Disabled),
            Err(e) => Err(LoginError::Internal(e.to_string())),
        }
    }

    async fn user(&self, id: &str) -> DirResult<Option<wd::User>> {
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        match self.0.get_user(id).await.map_err(internal)? {
            Some(u) => {
                let groups = self.0.user_groups(id).await.map_err(internal)?;
                Ok(Some(user_of(u, groups)))
            }
            None => Ok(None),
        }
    }

    async fn external_user(&self, username: &str, display_name: &str) -> DirResult<wd::User> {
        if let Some(u) = self.0.user_by_name(username).await.map_err(internal)? {
            let groups = self.0.user_groups(u.id).await.map_err(internal)?;
            return Ok(user_of(u, groups));
        }
        let u = self
            .0
            .create_user(&NewUser {
                username: username.to_owned(),
                display_name: display_name.to_owned(),
                password: None,
                ..Default::default()
            })
            .await
            .map_err(internal)?;
        Ok(user_of(u, Vec::new()))
    }

    async fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new: &str,
    ) -> Result<(), LoginError> {
        let id: i64 = user_id
            .parse()
            .map_err(|_| LoginError::InvalidCredentials)?;
        match self.0.check_password(id, current).await {
            Ok(true) => self
                .0
                .set_password(id, new, false)
                .await
                .map_err(|e| LoginError::Internal(e.to_string())),
            Ok(false) => Err(LoginError::InvalidCredentials),
            Err(e) => Err(LoginError::Internal(e.to_string())),
        }
    }

    fn keeps_sessions(&self) -> bool {
        true
    }

    async fn session_save(&self, s: &wd::StoredSession) -> DirResult<()> {
        self.0
            .web_session_put(&guacr_store::WebSessionRecord {
                id_hash: s.id_hash.clone(),
                user_id: id_of(&s.user_id)?,
                csrf: s.csrf.clone(),
                created_ms: s.created_ms,
                last_seen_ms: s.last_seen_ms,
            })
            .await
            .map_err(internal)
    }

    async fn session_load(&self, id_hash: &str) -> DirResult<Option<wd::StoredSession>> {
        Ok(self
            .0
            .web_session_get(id_hash)
            .await
            .map_err(internal)?
            .map(|r| wd::StoredSession {
                id_hash: r.id_hash,
                user_id: r.user_id.to_string(),
                csrf: r.csrf,
                created_ms: r.created_ms,
                last_seen_ms: r.last_seen_ms,
            }))
    }

    async fn session_touch(&self, id_hash: &str, last_seen_ms: i64) -> DirResult<()> {
        self.0
            .web_session_touch(id_hash, last_seen_ms)
            .await
            .map_err(internal)
    }

    async fn session_delete(&self, id_hash: &str) -> DirResult<()> {
        self.0.web_session_delete(id_hash).await.map_err(internal)
    }

    async fn sessions_end_user(&self, user_id: &str, except_hash: &str) -> DirResult<()> {
        self.0
            .web_sessions_end_user(id_of(user_id)?, except_hash)
            .await
            .map(|_| ())
            .map_err(internal)
    }

    async fn sessions_prune(&self, created_before_ms: i64, seen_before_ms: i64) -> DirResult<()> {
        self.0
            .web_sessions_prune(created_before_ms, seen_before_ms)
            .await
            .map(|_| ())
            .map_err(internal)
    }

    async fn verify_password(&self, user_id: &str, password: &str) -> DirResult<bool> {
        self.0
            .check_password(id_of(user_id)?, password)
            .await
            .map_err(internal)
    }

    async fn totp_begin(&self, user_id: &str) -> DirResult<wd::TotpEnrolment> {
        let e = self.0.totp_begin(id_of(user_id)?).await.map_err(internal)?;
        Ok(wd::TotpEnrolment {
            secret: e.secret_base32,
            uri: e.uri,
        })
    }

    async fn totp_confirm(&self, user_id: &str, code: &str) -> DirResult<bool> {
        self.0
            .totp_confirm(id_of(user_id)?, code)
            .await
            .map_err(internal)
    }

    async fn totp_disable(&self, user_id: &str) -> DirResult<()> {
        self.0.totp_disable(id_of(user_id)?).await.map_err(internal)
    }

    async fn connections_for(&self, user: &wd::User) -> DirResult<Vec<wd::Connection>> {
        let id = id_of(&user.id)?;
        Ok(self
            .0
            .connections_for_user(id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|c| wd::Connection {
                id: c.id.to_string(),
                name: c.name,
                protocol: c.protocol,
                group: c.group,
                description: c.description,
                ..Default::default()
            })
            .collect())
    }

    async fn may_use(&self, user: &wd::User, connection_id: &str) -> DirResult<bool> {
        let (Ok(u), Ok(c)) = (user.id.parse::<i64>(), connection_id.parse::<i64>()) else {
            return Ok(false);
        };
        self.0.can_use_connection(u, c).await.map_err(internal)
    }

    async fn connection(&self, id: &str) -> DirResult<Option<wd::Connection>> {
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        Ok(self
            .0
            .get_connection(id)
            .await
            .map_err(internal)?
            .map(connection_of))
    }

    async fn list_connections(&self) -> DirResult<Vec<wd::Connection>> {
        Ok(self
            .0
            .list_connections()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|c| {
                let masked = c.masked_params();
                let mut w = connection_of(c);
                w.params = masked;
                w
            })
            .collect())
    }

    async fn create_connection(&self, c: wd::Connection) -> DirResult<wd::Connection> {
        Ok(connection_of(
            self.0
                .create_connection(&new_connection(&c))
                .await
                .map_err(internal)?,
        ))
    }

    async fn update_connection(&self, c: wd::Connection) -> DirResult<wd::Connection> {
        let id = id_of(&c.id)?;
        Ok(connection_of(
            self.0
                .update_connection(id, &new_connection(&c))
                .await
                .map_err(internal)?,
        ))
    }

    async fn delete_connection(&self, id: &str) -> DirResult<()> {
        match self
            .0
            .delete_connection(id_of(id)?)
            .await
            .map_err(internal)?
        {
            true => Ok(()),
            false => Err(DirError::NotFound),
        }
    }

    async fn permissions(&self, connection_id: &str) -> DirResult<wd::Permissions> {
        let p = self
            .0
            .connection_permissions(id_of(connection_id)?)
            .await
            .map_err(internal)?;
        Ok(wd::Permissions {
            users: p.users.iter().map(i64::to_string).collect(),
            groups: p.groups.iter().map(i64::to_string).collect(),
        })
    }

    async fn set_permissions(&self, connection_id: &str, p: wd::Permissions) -> DirResult<()> {
        self.0
            .set_connection_permissions(
                id_of(connection_id)?,
                &Permissions {
                    users: ids(&p.users),
                    groups: ids(&p.groups),
                },
            )
            .await
            .map_err(internal)
    }

    async fn list_users(&self) -> DirResult<Vec<wd::User>> {
        let users = self.0.list_users().await.map_err(internal)?;
        let mut out = Vec::with_capacity(users.len());
        for u in users {
            let groups = self.0.user_groups(u.id).await.map_err(internal)?;
            out.push(user_of(u, groups));
        }
        Ok(out)
    }

    async fn create_user(&self, u: wd::User, password: Option<&str>) -> DirResult<wd::User> {
        let created = self
            .0
            .create_user(&NewUser {
                username: u.username.clone(),
                display_name: u.display_name.clone(),
                password: password.map(str::to_owned),
                admin: u.admin,
                disabled: u.disabled,
                // Only with a password: a user without one cannot change it.
                must_change_password: u.must_change_password && password.is_some(),
            })
            .await
            .map_err(internal)?;
        let groups = ids(&u.groups);
        if !groups.is_empty() {
            self.0
                .set_user_groups(created.id, &groups)
                .await
                .map_err(internal)?;
        }
        Ok(user_of(created, groups))
    }

    async fn update_user(&self, u: wd::User, password: Option<&str>) -> DirResult<wd::User> {
        let id = id_of(&u.id)?;
        let updated = self
            .0
            .update_user(
                id,
                &UserUpdate {
                    username: Some(u.username.clone()),
                    display_name: Some(u.display_name.clone()),
                    admin: Some(u.admin),
                    disabled: Some(u.disabled),
                },
            )
            .await
            .map_err(internal)?;
        // A new password may come with "change it at the next login".
        let updated = match password.filter(|p| !p.is_empty()) {
            Some(p) => {
                self.0
                    .set_password(id, p, u.must_change_password)
                    .await
                    .map_err(internal)?;
                self.0
                    .get_user(id)
                    .await
                    .map_err(internal)?
                    .ok_or(DirError::NotFound)?
            }
            None => updated,
        };
        let groups = ids(&u.groups);
        self.0
            .set_user_groups(id, &groups)
            .await
            .map_err(internal)?;
        Ok(user_of(updated, groups))
    }

    async fn delete_user(&self, id: &str) -> DirResult<()> {
        match self.0.delete_user(id_of(id)?).await.map_err(internal)? {
            true => Ok(()),
            false => Err(DirError::NotFound),
        }
    }

    async fn list_groups(&self) -> DirResult<Vec<wd::Group>> {
        Ok(self
            .0
            .list_groups()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|g| wd::Group {
                id: g.id.to_string(),
                name: g.name,
                members: g.members.iter().map(i64::to_string).collect(),
            })
            .collect())
    }

    async fn create_group(&self, g: wd::Group) -> DirResult<wd::Group> {
        let created = self.0.create_group(&g.name).await.map_err(internal)?;
        self.0
            .set_group_members(created.id, &ids(&g.members))
            .await
            .map_err(internal)?;
        Ok(wd::Group {
            id: created.id.to_string(),
            name: created.name,
            members: g.members,
        })
    }

    async fn update_group(&self, g: wd::Group) -> DirResult<wd::Group> {
        let id = id_of(&g.id)?;
        let renamed = self.0.rename_group(id, &g.name).await.map_err(internal)?;
        self.0
            .set_group_members(id, &ids(&g.members))
            .await
            .map_err(internal)?;
        Ok(wd::Group {
            id: g.id,
            name: renamed.name,
            members: g.members,
        })
    }

    async fn delete_group(&self, id: &str) -> DirResult<()> {
        match self.0.delete_group(id_of(id)?).await.map_err(internal)? {
            true => Ok(()),
            false => Err(DirError::NotFound),
        }
    }

    async fn audit(&self, e: wd::AuditEvent) {
        let ev = NewAuditEvent {
            time: None,
            kind: e.kind.clone(),
            username: opt(&e.username),
            remote_addr: opt(&e.remote_addr),
            connection_id: e.connection_id.parse().ok(),
            connection_name: opt(&e.connection_name),
            protocol: opt(&e.protocol),
            session_id: opt(&e.session_id),
            bytes_in: (e.bytes_in > 0 || e.kind.ends_with(".end")).then_some(e.bytes_in),
            bytes_out: (e.bytes_out > 0 || e.kind.ends_with(".end")).then_some(e.bytes_out),
            duration_ms: (e.duration_ms > 0).then_some(e.duration_ms),
            recording_path: opt(&e.recording_path),
            detail: opt(&e.detail),
        };
        if let Err(err) = self.0.append_audit(&ev).await {
            tracing::error!(kind = %e.kind, "cannot write the audit event: {err}");
        }
    }

    async fn audit_log(&self, q: wd::AuditQuery) -> DirResult<Vec<wd::AuditEvent>> {
        let events = self
            .0
            .query_audit(&AuditQuery {
                limit: Some(q.limit as u32),
                before: q.before.as_deref().and_then(|b| b.parse().ok()),
                before_time: None,
                kind: q.kind,
                user: q.user,
            })
            .await
            .map_err(internal)?;
        Ok(events
            .into_iter()
            .map(|e| wd::AuditEvent {
                id: e.id.to_string(),
                time: e.time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                kind: e.kind,
                username: e.username.unwrap_or_default(),
                remote_addr: e.remote_addr.unwrap_or_default(),
                connection_id: e.connection_id.map(|i| i.to_string()).unwrap_or_default(),
                connection_name: e.connection_name.unwrap_or_default(),
                protocol: e.protocol.unwrap_or_default(),
                session_id: e.session_id.unwrap_or_default(),
                bytes_in: e.bytes_in.unwrap_or_default(),
                bytes_out: e.bytes_out.unwrap_or_default(),
                duration_ms: e.duration_ms.unwrap_or_default(),
                recording_path: e.recording_path.unwrap_or_default(),
                detail: e.detail.unwrap_or_default(),
            })
            .collect())
    }
}

/// Shows the first admin's one-time password: on standard output in the
/// foreground; daemonized (stdout is /dev/null), in a 0600 file in the data
/// directory, whose path is logged (never the password).
pub fn announce_first_admin(password: &str, foreground: bool) {
    if foreground {
        println!(
            "guacr: first run: created user \"{}\" with one-time password: {password}",
            guacr_store::DEFAULT_ADMIN
        );
        return;
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = crate::store_cli::data_dir().join("initial-admin-password");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{} {password}", guacr_store::DEFAULT_ADMIN));
    match written {
        Ok(()) => tracing::warn!(
            "first run: created user \"{}\"; its one-time password is in {}",
            guacr_store::DEFAULT_ADMIN,
            path.display()
        ),
        Err(e) => tracing::error!("cannot write {}: {e}", path.display()),
    }
}
