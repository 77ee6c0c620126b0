//! The JSON API (docs/web-api.md): login sessions, CSRF, throttling, the
//! user's connections, protocols, sharing and administration.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::directory::{
    AuditQuery, Connection, DirError, Group, LoginError, Permissions, StoredSession, User,
};
use crate::{App, AuditEvent, lock};

pub const COOKIE: &str = "guacr_session";
/// What secret parameters look like in API answers.
pub const MASK: &str = "********";

/// A login session (server side; the cookie holds only its random id).
/// With a directory that keeps sessions, this is a cached copy of the
/// stored one, checked again every `session_revalidate`.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub user_id: String,
    pub csrf: String,
    /// Unix milliseconds (wall clock: shared with other instances).
    pub created_ms: i64,
    pub last_seen_ms: i64,
    /// `last_seen_ms` as last written to the directory.
    stored_seen_ms: i64,
    /// When the directory last confirmed the session.
    checked: Instant,
}

impl WebSession {
    pub fn expired(&self, now_ms: i64, opts: &crate::WebOptions) -> bool {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_sub(self.last_seen_ms) > ms(opts.session_idle)
            || now_ms.saturating_sub(self.created_ms) > ms(opts.session_absolute)
    }
}

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// How a session id is kept in the directory (never the id itself).
fn session_hash(id: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Ends a user's login sessions on this instance and in the directory
/// (other instances notice within `session_revalidate`), except the
/// session `keep` (the caller's own, after it changed its password).
pub(crate) async fn end_user_sessions(app: &App, user_id: &str, keep: Option<&str>) {
    lock(&app.sessions).retain(|sid, s| s.user_id != user_id || Some(sid.as_str()) == keep);
    let except = keep.map(session_hash).unwrap_or_default();
    if let Err(e) = app.dir.sessions_end_user(user_id, &except).await {
        tracing::error!("ending the login sessions of a user failed: {e}");
    }
}

/// Last activity is written to the directory at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The session of cookie `sid`: the cached copy while it is fresh, else the
/// directory's (which another instance may have created or ended).
async fn session_of(app: &App, sid: &str) -> Option<WebSession> {
    let now = Instant::now();
    let now_ms = unix_ms();
    let keeps = app.dir.keeps_sessions();
    let cached = {
        let mut sessions = lock(&app.sessions);
        match sessions.get_mut(sid) {
            Some(s) if s.expired(now_ms, &app.opts) => {
                sessions.remove(sid);
                None
            }
            Some(s) if !keeps || now.duration_since(s.checked) < app.opts.session_revalidate => {
                s.last_seen_ms = now_ms;
                Some(s.clone())
            }
            _ => None,
        }
    };
    let mut s = match cached {
        Some(s) => s,
        None if !keeps => return None,
        None => {
            let stored = match app.dir.session_load(&session_hash(sid)).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("loading a login session failed: {e}");
                    None
                }
            };
            let Some(st) = stored else {
                lock(&app.sessions).remove(sid);
                return None;
            };
            let mut s = WebSession {
                user_id: st.user_id,
                csrf: st.csrf,
                created_ms: st.created_ms,
                last_seen_ms: st.last_seen_ms,
                stored_seen_ms: st.last_seen_ms,
                checked: now,
            };
            if s.expired(now_ms, &app.opts) {
                lock(&app.sessions).remove(sid);
                let _ = app.dir.session_delete(&session_hash(sid)).await;
                return None;
            }
            s.last_seen_ms = now_ms;
            lock(&app.sessions).insert(sid.to_owned(), s.clone());
            s
        }
    };
    if keeps && now_ms - s.stored_seen_ms >= TOUCH_EVERY_MS {
        if let Err(e) = app.dir.session_touch(&session_hash(sid), now_ms).await {
            tracing::warn!("recording login session activity failed: {e}");
        }
        s.stored_seen_ms = now_ms;
        if let Some(c) = lock(&app.sessions).get_mut(sid) {
            c.stored_seen_ms = now_ms;
        }
    }
    Some(s)
}

/// Login attempt windows per address and per user name.
#[derive(Default)]
pub struct Throttle {
    by_ip: HashMap<String, VecDeque<Instant>>,
    by_user: HashMap<String, VecDeque<Instant>>,
}

const WINDOW: Duration = Duration::from_secs(60);

fn count_recent(q: &mut VecDeque<Instant>, now: Instant) -> usize {
    while q.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
        q.pop_front();
    }
    q.len()
}

impl Throttle {
    /// Counts an attempt from `ip`; false when over the limit.
    fn attempt_ip(&mut self, ip: &str, limit: u32) -> bool {
        let now = Instant::now();
        let q = self.by_ip.entry(ip.to_owned()).or_default();
        if limit > 0 && count_recent(q, now) >= limit as usize {
            return false;
        }
        q.push_back(now);
        true
    }

    fn user_blocked(&mut self, user: &str, limit: u32) -> bool {
        let now = Instant::now();
        match self.by_user.get_mut(user) {
            Some(q) => limit > 0 && count_recent(q, now) >= limit as usize,
            None => false,
        }
    }

    fn user_failed(&mut self, user: &str) {
        self.by_user
            .entry(user.to_owned())
            .or_default()
            .push_back(Instant::now());
        if self.by_user.len() > 100_000 {
            let now = Instant::now();
            self.by_user.retain(|_, q| count_recent(q, now) > 0);
            self.by_ip.retain(|_, q| count_recent(q, now) > 0);
        }
    }
}

/// `{"error", "code"}` with a status.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": message, "code": code}))).into_response()
}

pub(crate) fn dir_error(e: DirError) -> Response {
    match e {
        DirError::NotFound => error(StatusCode::NOT_FOUND, "not_found", "Not found."),
        DirError::Conflict(m) => error(StatusCode::CONFLICT, "conflict", &m),
        DirError::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid", &m),
        DirError::Internal(m) => {
            tracing::error!("directory error: {m}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error.",
            )
        }
    }
}

pub fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The caller of an API request.
#[derive(Debug, Clone)]
pub struct Authed {
    pub user: User,
    pub session_id: String,
    pub csrf: String,
}

/// The logged-in user, if any (no CSRF check: for reads and tunnels).
pub async fn current_user(app: &App, headers: &HeaderMap) -> Option<Authed> {
    let sid = cookie_value(headers, COOKIE)?;
    let s = session_of(app, sid).await?;
    let user = app.dir.user(&s.user_id).await.ok()??;
    if user.disabled {
        return None;
    }
    Some(Authed {
        user,
        session_id: sid.to_owned(),
        csrf: s.csrf,
    })
}

/// Authenticates an API request; state-changing methods need the CSRF
/// header. A user who must change its password gets 403
/// `password_change_required` until it has.
pub async fn authed(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Result<Authed, Response> {
    let a = authed_any(app, method, headers, addr).await?;
    if a.user.must_change_password {
        return Err(error(
            StatusCode::FORBIDDEN,
            "password_change_required",
            "You must change your password first.",
        ));
    }
    Ok(a)
}

/// [`authed`] for what a user who must change its password may still do:
/// change it, and log out.
async fn authed_any(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Result<Authed, Response> {
    let Some(a) = current_user(app, headers).await else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "You are not logged in.",
        ));
    };
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !crate::token::ct_eq(given.as_bytes(), a.csrf.as_bytes()) {
            let mut ev = AuditEvent::new("csrf.refused");
            ev.username = a.user.username.clone();
            ev.remote_addr = addr.ip().to_string();
            ev.detail = if given.is_empty() {
                "missing X-CSRF-Token".into()
            } else {
                "wrong X-CSRF-Token".into()
            };
            app.audit(ev).await;
            return Err(error(
                StatusCode::FORBIDDEN,
                "csrf",
                "Missing or invalid CSRF token; reload the page.",
            ));
        }
    }
    Ok(a)
}

pub(crate) async fn admin(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    addr: SocketAddr,
) -> Result<Authed, Response> {
    let a = authed(app, method, headers, addr).await?;
    if !a.user.admin {
        return Err(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Administrators only.",
        ));
    }
    Ok(a)
}

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/auth/providers", get(providers))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/me/password", post(change_password))
        .route(
            "/api/me/totp",
            post(crate::account::begin).delete(crate::account::disable),
        )
        .route("/api/me/totp/confirm", post(crate::account::confirm))
        .route(
            "/api/admin/users/{id}/totp",
            delete(crate::account::admin_reset),
        )
        .route("/api/connections", get(connections))
        .route("/api/protocols", get(protocols))
        .route("/api/sessions/{id}/share", post(share))
        .route("/api/admin/sessions", get(admin_sessions))
        .route("/api/admin/sessions/{id}", delete(admin_kill))
        .route(
            "/api/admin/connections",
            get(admin_connections).post(admin_create_connection),
        )
        .route(
            "/api/admin/connections/{id}",
            get(admin_connection)
                .put(admin_update_connection)
                .delete(admin_delete_connection),
        )
        .route(
            "/api/admin/connections/{id}/permissions",
            get(admin_permissions).put(admin_set_permissions),
        )
        .route("/api/admin/users", get(admin_users).post(admin_create_user))
        .route(
            "/api/admin/users/{id}",
            get(admin_user)
                .put(admin_update_user)
                .delete(admin_delete_user),
        )
        .route(
            "/api/admin/groups",
            get(admin_groups).post(admin_create_group),
        )
        .route(
            "/api/admin/groups/{id}",
            get(admin_group)
                .put(admin_update_group)
                .delete(admin_delete_group),
        )
        .route("/api/admin/audit", get(admin_audit))
        .route("/api/admin/recordings", get(crate::recordings::list))
        .route(
            "/api/admin/recordings/{name}",
            get(crate::recordings::download),
        )
        .route(
            "/api/admin/recordings/{name}/keys",
            get(crate::recordings::keys),
        )
        .route("/api/{*rest}", axum::routing::any(api_not_found))
}

async fn api_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "No such API endpoint.")
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "display_name": u.display_name,
        "admin": u.admin,
        "totp_enabled": u.totp_enabled,
        "disabled": u.disabled,
        "groups": u.groups,
        "must_change_password": u.must_change_password,
    })
}

async fn providers(State(app): State<Arc<App>>) -> Response {
    let oidc: Vec<Value> = app
        .opts
        .oidc
        .iter()
        .map(|p| json!({"id": p.id, "label": p.label}))
        .collect();
    Json(json!({"password": true, "oidc": oidc})).into_response()
}

/// Creates a login session for `user` (kept in the directory too when it
/// keeps sessions) and returns the Set-Cookie value and CSRF token.
pub async fn open_session(app: &App, user: &User) -> (String, String) {
    let id = crate::random_token();
    let csrf = crate::random_token();
    let now_ms = unix_ms();
    let s = WebSession {
        user_id: user.id.clone(),
        csrf: csrf.clone(),
        created_ms: now_ms,
        last_seen_ms: now_ms,
        stored_seen_ms: now_ms,
        checked: Instant::now(),
    };
    if app.dir.keeps_sessions() {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let _ = app
            .dir
            .sessions_prune(
                now_ms.saturating_sub(ms(app.opts.session_absolute)),
                now_ms.saturating_sub(ms(app.opts.session_idle)),
            )
            .await;
        let stored = StoredSession {
            id_hash: session_hash(&id),
            user_id: s.user_id.clone(),
            csrf: csrf.clone(),
            created_ms: now_ms,
            last_seen_ms: now_ms,
        };
        if let Err(e) = app.dir.session_save(&stored).await {
            // The login still works on this instance.
            tracing::error!("storing a login session failed: {e}");
        }
    }
    lock(&app.sessions).insert(id.clone(), s);
    (
        session_cookie(app, &id, app.opts.session_absolute.as_secs()),
        csrf,
    )
}

fn session_cookie(app: &App, value: &str, max_age: u64) -> String {
    let secure = if app.tls { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Expected {\"username\", \"password\"}.",
        );
    };
    let ip = addr.ip().to_string();
    let username = body.username.trim().to_owned();
    let throttled = {
        let mut t = lock(&app.throttle);
        !t.attempt_ip(&ip, app.opts.login_per_ip_per_minute)
            || t.user_blocked(&username, app.opts.login_per_user_per_minute)
    };
    let mut ev = AuditEvent::new("login.failure");
    ev.username = username.clone();
    ev.remote_addr = ip.clone();
    if throttled {
        ev.detail = "throttled: too many attempts".into();
        app.audit(ev).await;
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "Too many login attempts; wait a minute and try again.",
        );
    }
    match app
        .dir
        .login(&username, &body.password, body.totp.as_deref(), &ip)
        .await
    {
        Ok(user) => {
            let (cookie, csrf) = open_session(&app, &user).await;
            ev.kind = "login.success".into();
            app.audit(ev).await;
            let mut res = Json(json!({"user": user_json(&user), "csrf": csrf})).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(LoginError::TotpRequired) => error(
            StatusCode::UNAUTHORIZED,
            "totp_required",
            "Enter the code from your authenticator app.",
        ),
        Err(LoginError::Locked) => {
            lock(&app.throttle).user_failed(&username);
            ev.kind = "login.locked".into();
            ev.detail = "account locked".into();
            app.audit(ev).await;
            error(
                StatusCode::LOCKED,
                "locked",
                "This account is locked after too many failed logins; ask an administrator.",
            )
        }
        Err(LoginError::Disabled) => {
            ev.detail = "account disabled".into();
            app.audit(ev).await;
            error(
                StatusCode::FORBIDDEN,
                "disabled",
                "This account is disabled; ask an administrator.",
            )
        }
        Err(LoginError::InvalidCredentials) => {
            lock(&app.throttle).user_failed(&username);
            ev.detail = "wrong user name or password".into();
            app.audit(ev).await;
            error(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Wrong user name or password.",
            )
        }
        Err(LoginError::Internal(m)) => {
            tracing::error!("login failed: {m}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error.",
            )
        }
    }
}

async fn logout(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let a = match authed_any(&app, &method, &headers, addr).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    lock(&app.sessions).remove(&a.session_id);
    if let Err(e) = app.dir.session_delete(&session_hash(&a.session_id)).await {
        tracing::error!("ending a stored login session failed: {e}");
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&app, "", 0)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match current_user(&app, &headers).await {
        Some(a) => Json(json!({"user": user_json(&a.user), "csrf": a.csrf})).into_response(),
        None => error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "You are not logged in.",
        ),
    }
}

#[derive(Deserialize)]
struct PasswordBody {
    current: String,
    new: String,
}

async fn change_password(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Result<Json<PasswordBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let a = match authed_any(&app, &method, &headers, addr).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Ok(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Expected {\"current\", \"new\"}.",
        );
    };
    if body.new == body.current {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "The new password must differ from the current one.",
        );
    }
    if body.new.len() < 8 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "The new password needs at least 8 characters.",
        );
    }
    match app
        .dir
        .change_password(&a.user.id, &body.current, &body.new)
        .await
    {
        Ok(()) => {
            // Whoever else knew the old password is signed out.
            end_user_sessions(&app, &a.user.id, Some(&a.session_id)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(LoginError::Internal(m)) => {
            tracing::error!("password change failed: {m}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error.",
            )
        }
        Err(_) => error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "The current password is wrong.",
        ),
    }
}

async fn connections(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let a = match authed(&app, &method, &headers, addr).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    match app.dir.connections_for(&a.user).await {
        Ok(list) => Json(
            list.iter()
                .map(|c| {
                    json!({"id": c.id, "name": c.name, "protocol": c.protocol,
                           "group": c.group, "description": c.description})
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => dir_error(e),
    }
}

async fn protocols(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authed(&app, &method, &headers, addr).await {
        return r;
    }
    let list: Vec<Value> = app
        .gateway
        .protocols()
        .into_iter()
        .map(|p| {
            let params: Vec<Value> = p
                .params
                .iter()
                .map(|s| {
                    let mut v = json!({
                        "name": s.name, "label": s.label, "kind": s.kind.as_str(),
                        "section": s.section, "secret": s.secret,
                    });
                    if !s.options.is_empty() {
                        v["options"] = json!(s.options);
                    }
                    if let Some(d) = s.default {
                        v["default"] = json!(d);
                    }
                    v
                })
                .collect();
            json!({"name": p.name, "params": params})
        })
        .collect();
    Json(list).into_response()
}

#[derive(Deserialize, Default)]
struct ShareBody {
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

async fn share(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Option<Json<ShareBody>>,
) -> Response {
    let a = match authed(&app, &method, &headers, addr).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let body = body.map(|Json(b)| b).unwrap_or_default();
    // `id` is the session id, or the tunnel uuid the browser knows.
    let owned = {
        let tunnels = lock(&app.tunnels);
        tunnels
            .values()
            .find(|t| t.owner && (t.uuid == id || t.session_id().as_deref() == Some(id.as_str())))
            .map(|t| (t.session_id(), t.user_id.clone()))
    };
    let session_id = match owned {
        Some((Some(sid), owner)) if owner == a.user.id || a.user.admin => sid,
        Some((Some(_), _)) => {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Only the session's owner or an administrator may share it.",
            );
        }
        _ if a.user.admin && app.gateway.sessions().iter().any(|s| s.id == id) => id,
        _ => return error(StatusCode::NOT_FOUND, "not_found", "No such live session."),
    };
    let ttl = body
        .ttl_seconds
        .map(Duration::from_secs)
        .unwrap_or(app.opts.share_ttl)
        .min(Duration::from_secs(24 * 3600));
    let token = crate::random_token();
    let expires = std::time::SystemTime::now() + ttl;
    lock(&app.shares).insert(
        token.clone(),
        crate::tunnel::Share {
            session_id: session_id.clone(),
            read_only: body.read_only,
            expires,
            created_by: a.user.username.clone(),
        },
    );
    let mut ev = AuditEvent::new("session.share");
    ev.username = a.user.username.clone();
    ev.remote_addr = addr.ip().to_string();
    ev.session_id = session_id;
    ev.detail = if body.read_only { "read-only" } else { "full" }.into();
    app.audit(ev).await;
    Json(json!({
        "token": token,
        "url": format!("/#/share/{token}"),
        "expires": crate::rfc3339(expires),
        "read_only": body.read_only,
    }))
    .into_response()
}

async fn admin_sessions(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admin(&app, &method, &headers, addr).await {
        return r;
    }
    let tunnels: Vec<Arc<crate::tunnel::LiveTunnel>> =
        lock(&app.tunnels).values().cloned().collect();
    let list: Vec<Value> = app
        .gateway
        .sessions()
        .into_iter()
        .map(|s| {
            let t = tunnels
                .iter()
                .find(|t| t.owner && t.session_id().as_deref() == Some(s.id.as_str()));
            json!({
                "id": s.id,
                "connection_id": t.map(|t| t.connection_id.clone()).unwrap_or_default(),
                "connection_name": t.map(|t| t.connection_name.clone()).unwrap_or_default(),
                "protocol": s.protocol,
                "username": t.map(|t| t.username.clone()).unwrap_or_default(),
                "remote_addr": t.map(|t| t.remote_addr.clone()).unwrap_or_default(),
                "started": t.map(|t| crate::rfc3339(t.started_wall)).unwrap_or_default(),
                "users": s.users,
                "via": if t.is_some() { "web" } else { "guacd" },
            })
        })
        .collect();
    Json(list).into_response()
}

#[derive(Deserialize, Default)]
struct KillBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn admin_kill(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Option<Json<KillBody>>,
) -> Response {
    let a = match admin(&app, &method, &headers, addr).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let reason = body
        .and_then(|Json(b)| b.reason)
        .filter(|r| !r.trim().is_empty())
        .map(|r| r.chars().take(500).collect::<String>());
    let message = match &reason {
        Some(r) => format!("Session closed by an administrator: {r}"),
        None => "Session closed by an administrator.".to_owned(),
    };
    if !app.gateway.kill(&id, &message) {
        return error(StatusCode::NOT_FOUND, "not_found", "No such live session.");
    }
    let mut ev = AuditEvent::new("session.kill");
    ev.username = a.user.username.clone();
    ev.remote_addr = addr.ip().to_string();
    ev.session_id = id;
    ev.detail = message;
    app.audit(ev).await;
    StatusCode::NO_CONTENT.into_response()
}

fn masked(mut c: Connection, app: &App) -> Connection {
    let secrets = secret_names(app, &c.protocol);
    for (k, v) in c.params.iter_mut() {
        if (secrets.iter().any(|s| s == k) || c.secret_params.contains(k)) && !v.is_empty() {
            *v = MASK.to_owned();
        }
    }
    c
}

fn secret_names(app: &App, protocol: &str) -> Vec<String> {
    let mut names: Vec<String> = app
        .gateway
        .protocols()
        .into_iter()
        .filter(|p| p.name == protocol)
        .flat_map(|p| {
            p.params
                .into_iter()
                .filter(|s| s.secret)
                .map(|s| s.name.to_owned())
        })
        .collect();
    if names.is_empty() {
        names = ["password", "passphrase", "private-key"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    }
    names
}

async fn audit_change(app: &App, a: &Authed, addr: SocketAddr, detail: String) {
    audit_by(app, "admin.change", a, addr, detail).await;
}

/// Records an audit event of `kind` done by the logged-in user `a`.
pub(crate) async fn audit_by(app: &App, kind: &str, a: &Authed, addr: SocketAddr, detail: String) {
    let mut ev = AuditEvent::new(kind);
    ev.username = a.user.username.clone();
    ev.remote_addr = addr.ip().to_string();
    ev.detail = detail;
    app.audit(ev).await;
}

macro_rules! admin_or_return {
    ($app:expr, $method:expr, $headers:expr, $addr:expr) => {
        match admin(&$app, &$method, &$headers, $addr).await {
            Ok(a) => a,
            Err(r) => return r,
        }
    };
}

fn validate_connection(app: &App, c: &Connection) -> Result<(), Response> {
    if c.name.trim().is_empty() || c.name.len() > 256 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "A connection needs a name (at most 256 characters).",
        ));
    }
    if !app.gateway.protocols().iter().any(|p| p.name == c.protocol) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid",
            &format!("Unknown protocol {:?}.", c.protocol),
        ));
    }
    Ok(())
}

async fn admin_connections(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    admin_or_return!(app, method, headers, addr);
    match app.dir.list_connections().await {
        Ok(l) => Json(l.into_iter().map(|c| masked(c, &app)).collect::<Vec<_>>()).into_response(),
        Err(e) => dir_error(e),
    }
}

async fn admin_connection(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    admin_or_return!(app, method, headers, addr);
    match app.dir.connection(&id).await {
        Ok(Some(c)) => Json(masked(c, &app)).into_response(),
        Ok(None) => dir_error(DirError::NotFound),
        Err(e) => dir_error(e),
    }
}

async fn admin_create_connection(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Result<Json<Connection>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let a = admin_or_return!(app, method, headers, addr);
    let Ok(Json(mut c)) = body else {
        return error(StatusCode::BAD_REQUEST, "invalid", "Expected a Connection.");
    };
    if let Err(r) = validate_connection(&app, &c) {
        return r;
    }
    c.id.clear();
    c.params.retain(|_, v| v != MASK);
    match app.dir.create_connection(c).await {
        Ok(c) => {
            audit_change(&app, &a, addr, format!("connection {} created", c.id)).await;
            (StatusCode::CREATED, Json(masked(c, &app))).into_response()
        }
        Err(e) => dir_error(e),
    }
}

async fn admin_update_connection(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Connection>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let a = admin_or_return!(app, method, headers, addr);
    let Ok(Json(mut c)) = body else {
        return error(StatusCode::BAD_REQUEST, "invalid", "Expected a Connection.");
    };
    if let Err(r) = validate_connection(&app, &c) {
        return r;
    }
    let old = match app.dir.connection(&id).await {
        Ok(Some(o)) => o,
        Ok(None) => return dir_error(DirError::NotFound),
        Err(e) => return dir_error(e),
    };
    c.id = id;
    // "********" keeps the stored secret.
    for (k, v) in c.params.iter_mut() {
        if v == MASK {
            *v = old.params.get(k).cloned().unwrap_or_default();
        }
    }
    match app.dir.update_connection(c).await {
        Ok(c) => {
            audit_change(&app, &a, addr, format!("connection {} updated", c.id)).await;
            Json(masked(c, &app)).into_response()
        }
        Err(e) => dir_error(e),
    }
}

async fn admin_delete_connection(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let a = admin_or_return!(app, method, headers, addr);
    match app.dir.delete_connection(&id).await {
        Ok(()) => {
            audit_change(&app, &a, addr, format!("connection {id} deleted")).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => dir_error(e),
    }
}

async fn admin_permissions(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    admin_or_return!(app, method, headers, addr);
    match app.dir.permissions(&id).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => dir_error(e),
    }
}

async fn admin_set_permissions(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Permissions>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let a = admin_or_return!(app, method, headers, addr);
    let Ok(Json(p)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Expected {\"users\", \"groups\"}.",
        );
    };
    match app.dir.set_permissions(&id, p).await {
        Ok(()) => {
            audit_change(
                &app,
                &a,
                addr,
                format!("permissions of connection {id} set"),
            )
            .await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => dir_error(e),
    }
}

#[derive(Deserialize)]
struct UserBody {
    #[serde(flatten)]
    user: User,
    #[serde(default)]
    password: Option<String>,
}

async fn admin_users(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    admin_or_return!(app, method, headers, addr);
    match app.dir.list_users().await {
        Ok(l) => Json(l.iter().map(user_json).collect::<Vec<_>>()).into_response(),
        Err(e) => dir_error(e),
    }
}

async fn admin_user(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    admin_or_return!(app, method, headers, addr);
    match app.dir.user(&id).await {
        Ok(Some(u)) => Json(user_json(&u)).into_response(),
        Ok(None) => dir_error(DirError::NotFound),
        Err(e) => dir_error(e),
    }
}

fn validate_username(name: &str) -> Result<(), Response> {
    if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "A user name needs 1 to 128 printable characters.",
        ));
    }
    Ok(())
}

async fn admin_create_user(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Result<Json<UserBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let a = admin_or_return!(app, method, headers, addr);
    let Ok(Json(b)) = body else {
        return error(StatusCode::BAD_REQUEST, "invalid", "Expected a User.");
    };
    if let Err(r) = validate_username(&b.user.username) {
        return r;
    }
    match app.dir.create_user(b.user, b.password.as_deref()).await {
        Ok(u) => {
            audit_change(&app, &a, addr, format!("user {} created", u.username)).await;
            (StatusCode::CREATED, Json(user_json(&u))).into_response()
        }
        Err(e) => dir_error(e),
    }
}

async fn admin_update_user(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<UserBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let a = admin_or_return!(app, method, headers, addr);
    let Ok(Json(mut b)) = body else {
        return error(StatusCode::BAD_REQUEST, "invalid", "Expected a User.");
    };
    if let Err(r) = validate_username(&b.user.username) {
        return r;
    }
    b.user.id = id;
    let reset = b.password.as_deref().is_some_and(|p| !p.is_empty());
    let disabled = b.user.disabled;
    match app.dir.update_user(b.user, b.password.as_deref()).await {
        Ok(u) => {
            // A password reset or a disabled account signs the user out
            // everywhere (the administrator's own session stays).
            if reset || disabled {
                let keep = (u.id == a.user.id).then_some(a.session_id.as_str());
                end_user_sessions(&app, &u.id, keep).await;
            }
            audit_change(&app, &a, addr, format!("user {} updated", u.username)).await;
            Json(user_json(&u)).into_response()
        }
        Err(e) => dir_error(e),
    }
}

async fn admin_delete_user(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let a = admin_or_return!(app, method, headers, addr);
    if id == a.user.id {
        return error(
            StatusCode::CONFLICT,
            "conflict",
            "You cannot delete yourself.",
        );
    }
    match app.dir.delete_user(&id).await {
        Ok(()) => {
            lock(&app.sessions).retain(|_, s| s.user_id != id);
            audit_change(&app, &a, addr, format!("user {id} deleted")).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => dir_error(e),
    }
}

async fn admin_groups(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    admin_or_return!(app, method, headers, addr);
    match app.dir.list_groups().await {
        Ok(l) => Json(l).into_response(),
        Err(e) => dir_error(e),
    }
}

async fn admin_group(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    admin_or_return!(app, method, headers, addr);
    match app.dir.list_groups().await {
        Ok(l) => match l.into_iter().find(|g| g.id == id) {
            Some(g) => Json(g).into_response(),
            None => dir_error(DirError::NotFound),
        },
        Err(e) => dir_error(e),
    }
}

async fn admin_create_group(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Result<Json<Group>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let a = admin_or_return!(app, method, headers, addr);
    let Ok(Json(g)) = body else {
        return error(StatusCode::BAD_REQUEST, "invalid", "Expected a Group.");
    };
    if let Err(r) = validate_username(&g.name) {
        return r;
    }
    match app.dir.create_group(g).await {
        Ok(g) => {
            audit_change(&app, &a, addr, format!("group {} created", g.name)).await;
            (StatusCode::CREATED, Json(g)).into_response()
        }
        Err(e) => dir_error(e),
    }
}

async fn admin_update_group(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Group>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let a = admin_or_return!(app, method, headers, addr);
    let Ok(Json(mut g)) = body else {
        return error(StatusCode::BAD_REQUEST, "invalid", "Expected a Group.");
    };
    g.id = id;
    match app.dir.update_group(g).await {
        Ok(g) => {
            audit_change(&app, &a, addr, format!("group {} updated", g.name)).await;
            Json(g).into_response()
        }
        Err(e) => dir_error(e),
    }
}

async fn admin_delete_group(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let a = admin_or_return!(app, method, headers, addr);
    match app.dir.delete_group(&id).await {
        Ok(()) => {
            audit_change(&app, &a, addr, format!("group {id} deleted")).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => dir_error(e),
    }
}

#[derive(Deserialize)]
struct AuditParams {
    limit: Option<usize>,
    before: Option<String>,
    kind: Option<String>,
    user: Option<String>,
}

async fn admin_audit(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    Query(q): Query<AuditParams>,
) -> Response {
    admin_or_return!(app, method, headers, addr);
    let q = AuditQuery {
        limit: q.limit.unwrap_or(100).min(1000),
        before: q.before,
        kind: q.kind,
        user: q.user,
    };
    match app.dir.audit_log(q).await {
        Ok(l) => Json(l).into_response(),
        Err(e) => dir_error(e),
    }
}
