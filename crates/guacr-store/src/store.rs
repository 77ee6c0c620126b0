//! The implementation behind [`crate::Store`]. Portable SQL only (SQLite and
//! PostgreSQL), runtime-bound `$n` parameters, times as unix milliseconds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use sqlx::AnyPool;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::import::{MappedPassword, UserMapping};
use crate::{
    AuditEvent, AuditId, AuditQuery, Backend, Connection, ConnectionId, ConnectionSummary,
    DEFAULT_ADMIN, Error, Group, GroupId, ImportReport, LegacyHash, LoginOutcome, NewAuditEvent,
    NewConnection, NewUser, Permissions, Result, SECRET_PLACEHOLDER, SecretKey, SecretPredicate,
    StoreOptions, TotpEnrolment, User, UserId, UserUpdate, WebSessionRecord, crypto, db, password,
    totp,
};

const USER_COLS: &str = "id, username, display_name, admin, disabled, must_change_password, \
                         totp_secret, failed_logins, locked_until, created, last_login";
const AUDIT_COLS: &str = "id, time, kind, username, remote_addr, connection_id, connection_name, \
                          protocol, session_id, bytes_in, bytes_out, duration_ms, recording_path, detail";
const KEY_CHECK: &str = "guacr-key-check";
const MAX_PARAM_VALUE: usize = 64 * 1024;
const MAX_DETAIL: usize = 4096;

pub(crate) struct Inner {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) key: Option<SecretKey>,
    pub(crate) options: StoreOptions,
    predicate: RwLock<Option<SecretPredicate>>,
}

fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Names: 1–`max` characters, no control characters, no surrounding spaces.
fn check_name(what: &str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() {
        return Err(Error::Invalid(format!("the {what} is empty")));
    }
    if s.chars().count() > max {
        return Err(Error::Invalid(format!(
            "the {what} is longer than {max} characters"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "the {what} contains control characters"
        )));
    }
    if s.trim() != s {
        return Err(Error::Invalid(format!(
            "the {what} starts or ends with spaces"
        )));
    }
    Ok(())
}

fn name_key(s: &str) -> String {
    s.to_lowercase()
}

/// `"/A//B/"` → `"A/B"`.
fn normalize_group(g: &str) -> Result<String> {
    let parts: Vec<&str> = g
        .split('/')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let out = parts.join("/");
    if out.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "the folder contains control characters".to_owned(),
        ));
    }
    if out.chars().count() > 512 {
        return Err(Error::Invalid(
            "the folder is longer than 512 characters".to_owned(),
        ));
    }
    Ok(out)
}

fn check_protocol(p: &str) -> Result<()> {
    if p.is_empty()
        || p.len() > 32
        || !p
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(Error::Invalid(format!(
            "invalid protocol {p:?} (lowercase letters, digits, - and _)"
        )));
    }
    Ok(())
}

fn conflict_or(e: sqlx::Error, message: impl FnOnce() -> String) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict(message()),
        _ => Error::Database(e),
    }
}

fn user_from_row(r: &AnyRow) -> Result<User> {
    let totp: Option<String> = r.try_get("totp_secret")?;
    let failed: i64 = r.try_get("failed_logins")?;
    Ok(User {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        admin: r.try_get::<i64, _>("admin")? != 0,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        must_change_password: r.try_get::<i64, _>("must_change_password")? != 0,
        totp_enabled: totp.is_some(),
        failed_logins: u32::try_from(failed.max(0)).unwrap_or(u32::MAX),
        locked_until: r.try_get::<Option<i64>, _>("locked_until")?.map(from_ms),
        created: from_ms(r.try_get("created")?),
        last_login: r.try_get::<Option<i64>, _>("last_login")?.map(from_ms),
    })
}

fn summary_from_row(r: &AnyRow) -> Result<ConnectionSummary> {
    Ok(ConnectionSummary {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        protocol: r.try_get("protocol")?,
        group: r.try_get("group_path")?,
        description: r.try_get("description")?,
    })
}

fn audit_from_row(r: &AnyRow) -> Result<AuditEvent> {
    let u = |v: Option<i64>| v.map(|x| u64::try_from(x).unwrap_or(0));
    Ok(AuditEvent {
        id: r.try_get("id")?,
        time: from_ms(r.try_get("time")?),
        kind: r.try_get("kind")?,
        username: r.try_get("username")?,
        remote_addr: r.try_get("remote_addr")?,
        connection_id: r.try_get("connection_id")?,
        connection_name: r.try_get("connection_name")?,
        protocol: r.try_get("protocol")?,
        session_id: r.try_get("session_id")?,
        bytes_in: u(r.try_get("bytes_in")?),
        bytes_out: u(r.try_get("bytes_out")?),
        duration_ms: u(r.try_get("duration_ms")?),
        recording_path: r.try_get("recording_path")?,
        detail: r.try_get("detail")?,
    })
}

fn param_aad(conn: ConnectionId, name: &str) -> String {
    format!("conn:{conn}:{name}")
}

fn totp_aad(user: UserId, pending: bool) -> String {
    if pending {
        format!("user:{user}:totp-pending")
    } else {
        format!("user:{user}:totp")
    }
}

/// Runs argon2 off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Crypto(format!("hashing task failed: {e}")))
}

/// The password fields of a user row.
struct Credentials {
    user: User,
    password_hash: Option<String>,
    legacy_hash: Option<String>,
    totp_secret: Option<String>,
    totp_last_step: Option<i64>,
}

enum Bind {
    I(i64),
    S(String),
}

impl Inner {
    pub(crate) async fn open(
        url: &str,
        key: Option<SecretKey>,
        options: StoreOptions,
    ) -> Result<Inner> {
        let (backend, pool) = db::connect(url, options.max_connections).await?;
        let predicate = RwLock::new(options.secret_predicate.clone());
        let inner = Inner {
            pool,
            backend,
            key,
            options,
            predicate,
        };
        inner.migrate().await?;
        inner.check_key().await?;
        Ok(inner)
    }

    pub(crate) async fn migrate(&self) -> Result<()> {
        db::migrator(self.backend).run(&self.pool).await?;
        Ok(())
    }

    /// Refuses a missing key when encrypted values exist, and a wrong one.
    async fn check_key(&self) -> Result<()> {
        let stored: Option<String> = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind("key_check")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("value"))
            .transpose()?;
        match &self.key {
            None => {
                let enc_param = sqlx::query(
                    "SELECT connection_id FROM connection_params WHERE encrypted = 1 LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?;
                let enc_totp = sqlx::query(
                    "SELECT id FROM users WHERE totp_secret IS NOT NULL OR totp_pending IS NOT NULL LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?;
                if enc_param.is_some() || enc_totp.is_some() {
                    return Err(Error::KeyRequired);
                }
                Ok(())
            }
            Some(key) => match stored {
                Some(check) => match key.decrypt(&check, "key-check") {
                    Ok(v) if v == KEY_CHECK => Ok(()),
                    _ => Err(Error::WrongKey),
                },
                None => {
                    let check = key.encrypt(KEY_CHECK, "key-check")?;
                    sqlx::query(
                        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    )
                    .bind("key_check")
                    .bind(check)
                    .execute(&self.pool)
                    .await?;
                    // Another process may have won the race with another key.
                    Box::pin(self.check_key()).await
                }
            },
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.options.clock.now()
    }

    pub(crate) fn set_secret_predicate(&self, p: SecretPredicate) {
        *self.predicate.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    pub(crate) fn is_secret(&self, protocol: &str, name: &str) -> bool {
        match &*self.predicate.read().unwrap_or_else(|e| e.into_inner()) {
            Some(p) => p(protocol, name),
            None => crate::default_is_secret(protocol, name),
        }
    }

    fn key(&self) -> Result<&SecretKey> {
        self.key.as_ref().ok_or(Error::KeyRequired)
    }

    // ----- users -----

    pub(crate) async fn ensure_admin(&self) -> Result<Option<String>> {
        let any = sqlx::query("SELECT id FROM users LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        if any.is_some() {
            return Ok(None);
        }
        let password = crypto::random_password()?;
        let new = NewUser {
            username: DEFAULT_ADMIN.to_owned(),
            display_name: "Administrator".to_owned(),
            password: Some(password.clone()),
            admin: true,
            disabled: false,
            must_change_password: true,
        };
        match self.create_user(&new).await {
            Ok(_) => Ok(Some(password)),
            // Another process created it at the same moment.
            Err(Error::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn create_user(&self, new: &NewUser) -> Result<User> {
        check_name("username", &new.username, 128)?;
        let display = if new.display_name.is_empty() {
            new.username.clone()
        } else {
            check_name("display name", &new.display_name, 256)?;
            new.display_name.clone()
        };
        let hash = match &new.password {
            Some(p) => {
                let p = p.clone();
                Some(blocking(move || password::hash(&p)).await??)
            }
            None => None,
        };
        let username = new.username.clone();
        let row = sqlx::query(&format!(
            "INSERT INTO users (username, username_key, display_name, password_hash, admin, \
             disabled, must_change_password, failed_logins, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8) RETURNING {USER_COLS}"
        ))
        .bind(&new.username)
        .bind(name_key(&new.username))
        .bind(display)
        .bind(hash)
        .bind(flag(new.admin))
        .bind(flag(new.disabled))
        .bind(flag(new.must_change_password))
        .bind(to_ms(self.now()))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict_or(e, || format!("a user named {username:?} already exists")))?;
        user_from_row(&row)
    }

    pub(crate) async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| user_from_row(&r))
            .transpose()
    }

    pub(crate) async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users WHERE username_key = $1"
        ))
        .bind(name_key(username))
        .fetch_optional(&self.pool)
        .await?
        .map(|r| user_from_row(&r))
        .transpose()
    }

    pub(crate) async fn list_users(&self) -> Result<Vec<User>> {
        sqlx::query(&format!(
            "SELECT {USER_COLS} FROM users ORDER BY username_key"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn require_user(&self, id: UserId) -> Result<User> {
        self.get_user(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {id}")))
    }

    pub(crate) async fn update_user(&self, id: UserId, u: &UserUpdate) -> Result<User> {
        let cur = self.require_user(id).await?;
        let username = u.username.clone().unwrap_or(cur.username);
        check_name("username", &username, 128)?;
        let display = u.display_name.clone().unwrap_or(cur.display_name);
        check_name("display name", &display, 256)?;
        let taken = username.clone();
        sqlx::query(
            "UPDATE users SET username = $1, username_key = $2, display_name = $3, admin = $4, \
             disabled = $5 WHERE id = $6",
        )
        .bind(&username)
        .bind(name_key(&username))
        .bind(display)
        .bind(flag(u.admin.unwrap_or(cur.admin)))
        .bind(flag(u.disabled.unwrap_or(cur.disabled)))
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, || format!("a user named {taken:?} already exists")))?;
        self.require_user(id).await
    }

    pub(crate) async fn delete_user(&self, id: UserId) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM group_members WHERE user_id = $1",
            "DELETE FROM connection_user_perms WHERE user_id = $1",
            "DELETE FROM web_sessions WHERE user_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let n = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    pub(crate) async fn set_password(&self, id: UserId, pw: &str, must_change: bool) -> Result<()> {
        let pw = pw.to_owned();
        let hash = blocking(move || password::hash(&pw)).await??;
        let n = sqlx::query(
            "UPDATE users SET password_hash = $1, legacy_hash = NULL, must_change_password = $2, \
             failed_logins = 0, locked_until = NULL WHERE id = $3",
        )
        .bind(hash)
        .bind(flag(must_change))
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("user {id}")));
        }
        Ok(())
    }

    pub(crate) async fn set_legacy_password(
        &self,
        id: UserId,
        kind: LegacyHash,
        hex_digest: &str,
    ) -> Result<()> {
        let stored = password::legacy_encode(kind, hex_digest)?;
        let n =
            sqlx::query("UPDATE users SET password_hash = NULL, legacy_hash = $1 WHERE id = $2")
                .bind(stored)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("user {id}")));
        }
        Ok(())
    }

    async fn credentials(
        &self,
        by_id: Option<UserId>,
        by_name: &str,
    ) -> Result<Option<Credentials>> {
        let cols = format!("{USER_COLS}, password_hash, legacy_hash, totp_last_step");
        let row = match by_id {
            Some(id) => {
                sqlx::query(&format!("SELECT {cols} FROM users WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("SELECT {cols} FROM users WHERE username_key = $1"))
                    .bind(name_key(by_name))
                    .fetch_optional(&self.pool)
                    .await?
            }
        };
        let Some(r) = row else { return Ok(None) };
        Ok(Some(Credentials {
            user: user_from_row(&r)?,
            password_hash: r.try_get("password_hash")?,
            legacy_hash: r.try_get("legacy_hash")?,
            totp_secret: r.try_get("totp_secret")?,
            totp_last_step: r.try_get("totp_last_step")?,
        }))
    }

    /// (matches, needs an argon2id upgrade)
    async fn verify_credentials(c: &Credentials, pw: &str) -> Result<(bool, bool)> {
        let pw = pw.to_owned();
        let hash = c.password_hash.clone();
        let legacy = c.legacy_hash.clone();
        blocking(move || match (hash, legacy) {
            (Some(h), _) => (password::verify(&pw, &h), false),
            (None, Some(l)) => {
                let ok = password::legacy_verify(&pw, &l);
                (ok, ok)
            }
            (None, None) => {
                password::dummy_verify(&pw);
                (false, false)
            }
        })
        .await
    }

    pub(crate) async fn check_password(&self, id: UserId, pw: &str) -> Result<bool> {
        match self.credentials(Some(id), "").await? {
            Some(c) => Ok(Self::verify_credentials(&c, pw).await?.0),
            None => Ok(false),
        }
    }

    /// Counts a failure; returns the outcome to report.
    async fn register_failure(&self, id: UserId) -> Result<LoginOutcome> {
        let row = sqlx::query(
            "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = $1 RETURNING failed_logins",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        let failed: i64 = row.try_get("failed_logins")?;
        let policy = self.options.lockout;
        if policy.max_failures > 0 && failed >= i64::from(policy.max_failures) {
            let until = self.now()
                + chrono::Duration::from_std(policy.lock_duration)
                    .unwrap_or(chrono::Duration::minutes(15));
            sqlx::query("UPDATE users SET locked_until = $1, failed_logins = 0 WHERE id = $2")
                .bind(to_ms(until))
                .bind(id)
                .execute(&self.pool)
                .await?;
            return Ok(LoginOutcome::Locked { until });
        }
        Ok(LoginOutcome::InvalidCredentials)
    }

    pub(crate) async fn authenticate(
        &self,
        username: &str,
        pw: &str,
        code: Option<&str>,
    ) -> Result<LoginOutcome> {
        let Some(c) = self.credentials(None, username).await? else {
            let pw = pw.to_owned();
            blocking(move || password::dummy_verify(&pw)).await?;
            return Ok(LoginOutcome::InvalidCredentials);
        };
        let id = c.user.id;
        let now = self.now();
        if let Some(until) = c.user.locked_until {
            if until > now {
                return Ok(LoginOutcome::Locked { until });
            }
            // The lock has expired: start counting afresh.
            sqlx::query("UPDATE users SET locked_until = NULL, failed_logins = 0 WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        let (ok, upgrade) = Self::verify_credentials(&c, pw).await?;
        if !ok {
            return self.register_failure(id).await;
        }
        if c.user.disabled {
            return Ok(LoginOutcome::Disabled);
        }
        let mut step = c.totp_last_step;
        if let Some(enc) = &c.totp_secret {
            let code = match code.map(str::trim).filter(|s| !s.is_empty()) {
                Some(code) => code,
                None => return Ok(LoginOutcome::TotpRequired),
            };
            let secret_b32 = self.key()?.decrypt(enc, &totp_aad(id, false))?;
            let secret = totp::from_base32(&secret_b32)
                .ok_or_else(|| Error::Crypto("stored TOTP secret is not base32".to_owned()))?;
            match totp::verify(&secret, code, now.timestamp()) {
                // A code is good once (replays within the window are refused).
                Some(s) if c.totp_last_step.is_none_or(|last| s > last) => step = Some(s),
                _ => return self.register_failure(id).await,
            }
        }
        if upgrade {
            let pw = pw.to_owned();
            let hash = blocking(move || password::hash(&pw)).await??;
            sqlx::query("UPDATE users SET password_hash = $1, legacy_hash = NULL WHERE id = $2")
                .bind(hash)
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        sqlx::query(
            "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login = $1, \
             totp_last_step = $2 WHERE id = $3",
        )
        .bind(to_ms(now))
        .bind(step)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(LoginOutcome::Success(self.require_user(id).await?))
    }

    pub(crate) async fn unlock_user(&self, id: UserId) -> Result<()> {
        let n =
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("user {id}")));
        }
        Ok(())
    }

    // ----- TOTP -----

    pub(crate) async fn totp_begin(&self, id: UserId) -> Result<TotpEnrolment> {
        let user = self.require_user(id).await?;
        let key = self.key()?;
        let mut secret = [0u8; 20];
        crypto::random(&mut secret)?;
        let b32 = totp::base32(&secret);
        sqlx::query("UPDATE users SET totp_pending = $1 WHERE id = $2")
            .bind(key.encrypt(&b32, &totp_aad(id, true))?)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(TotpEnrolment {
            uri: totp::otpauth_uri("guacr", &user.username, &secret),
            secret_base32: b32,
        })
    }

    pub(crate) async fn totp_confirm(&self, id: UserId, code: &str) -> Result<bool> {
        let row = sqlx::query("SELECT totp_pending FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("user {id}")))?;
        let Some(pending) = row.try_get::<Option<String>, _>("totp_pending")? else {
            return Ok(false);
        };
        let key = self.key()?;
        let b32 = key.decrypt(&pending, &totp_aad(id, true))?;
        let secret = totp::from_base32(&b32)
            .ok_or_else(|| Error::Crypto("pending TOTP secret is not base32".to_owned()))?;
        let Some(step) = totp::verify(&secret, code, self.now().timestamp()) else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_pending = NULL, totp_last_step = $2 WHERE id = $3",
        )
        .bind(key.encrypt(&b32, &totp_aad(id, false))?)
        .bind(step)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    pub(crate) async fn totp_set_secret(&self, id: UserId, secret_base32: &str) -> Result<()> {
        let secret = totp::from_base32(secret_base32)
            .filter(|s| s.len() >= 10)
            .ok_or_else(|| {
                Error::Invalid("a TOTP secret is at least 16 base32 characters".to_owned())
            })?;
        let b32 = totp::base32(&secret);
        let enc = self.key()?.encrypt(&b32, &totp_aad(id, false))?;
        let n = sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_pending = NULL, totp_last_step = NULL WHERE id = $2",
        )
        .bind(enc)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("user {id}")));
        }
        Ok(())
    }

    pub(crate) async fn totp_disable(&self, id: UserId) -> Result<()> {
        let n = sqlx::query(
            "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("user {id}")));
        }
        Ok(())
    }

    // ----- web sessions -----

    pub(crate) async fn web_session_put(&self, s: &WebSessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, user_id, csrf, created, last_seen) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.id_hash)
        .bind(s.user_id)
        .bind(&s.csrf)
        .bind(s.created_ms)
        .bind(s.last_seen_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn web_session_get(&self, id_hash: &str) -> Result<Option<WebSessionRecord>> {
        let row = sqlx::query(
            "SELECT id_hash, user_id, csrf, created, last_seen FROM web_sessions WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(WebSessionRecord {
                id_hash: r.try_get("id_hash")?,
                user_id: r.try_get("user_id")?,
                csrf: r.try_get("csrf")?,
                created_ms: r.try_get("created")?,
                last_seen_ms: r.try_get("last_seen")?,
            })
        })
        .transpose()
    }

    pub(crate) async fn web_session_touch(&self, id_hash: &str, last_seen_ms: i64) -> Result<()> {
        sqlx::query("UPDATE web_sessions SET last_seen = $1 WHERE id_hash = $2 AND last_seen < $1")
            .bind(last_seen_ms)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn web_session_delete(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn web_sessions_end_user(&self, user_id: UserId, except: &str) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM web_sessions WHERE user_id = $1 AND id_hash <> $2")
                .bind(user_id)
                .bind(except)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    pub(crate) async fn web_sessions_prune(
        &self,
        created_before_ms: i64,
        seen_before_ms: i64,
    ) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM web_sessions WHERE created < $1 OR last_seen < $2")
                .bind(created_before_ms)
                .bind(seen_before_ms)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    // ----- groups -----

    async fn members(&self, id: GroupId) -> Result<Vec<UserId>> {
        sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get("user_id")?))
            .collect()
    }

    async fn group_from_row(&self, r: &AnyRow) -> Result<Group> {
        let id: GroupId = r.try_get("id")?;
        Ok(Group {
            id,
            name: r.try_get("name")?,
            members: self.members(id).await?,
        })
    }

    pub(crate) async fn create_group(&self, name: &str) -> Result<Group> {
        check_name("group name", name, 128)?;
        let row = sqlx::query(
            "INSERT INTO user_groups (name, name_key) VALUES ($1, $2) RETURNING id, name",
        )
        .bind(name)
        .bind(name_key(name))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict_or(e, || format!("a group named {name:?} already exists")))?;
        self.group_from_row(&row).await
    }

    pub(crate) async fn get_group(&self, id: GroupId) -> Result<Option<Group>> {
        match sqlx::query("SELECT id, name FROM user_groups WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        {
            Some(r) => Ok(Some(self.group_from_row(&r).await?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        match sqlx::query("SELECT id, name FROM user_groups WHERE name_key = $1")
            .bind(name_key(name))
            .fetch_optional(&self.pool)
            .await?
        {
            Some(r) => Ok(Some(self.group_from_row(&r).await?)),
            None => Ok(None),
        }
    }

    pub(crate) async fn list_groups(&self) -> Result<Vec<Group>> {
        let rows = sqlx::query("SELECT id, name FROM user_groups ORDER BY name_key")
            .fetch_all(&self.pool)
            .await?;
        let mut members: BTreeMap<GroupId, Vec<UserId>> = BTreeMap::new();
        for r in sqlx::query("SELECT group_id, user_id FROM group_members ORDER BY user_id")
            .fetch_all(&self.pool)
            .await?
        {
            members
                .entry(r.try_get("group_id")?)
                .or_default()
                .push(r.try_get("user_id")?);
        }
        rows.iter()
            .map(|r| {
                let id: GroupId = r.try_get("id")?;
                Ok(Group {
                    id,
                    name: r.try_get("name")?,
                    members: members.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn require_group(&self, id: GroupId) -> Result<Group> {
        self.get_group(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("group {id}")))
    }

    pub(crate) async fn rename_group(&self, id: GroupId, name: &str) -> Result<Group> {
        check_name("group name", name, 128)?;
        let n = sqlx::query("UPDATE user_groups SET name = $1, name_key = $2 WHERE id = $3")
            .bind(name)
            .bind(name_key(name))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, || format!("a group named {name:?} already exists")))?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("group {id}")));
        }
        self.require_group(id).await
    }

    pub(crate) async fn delete_group(&self, id: GroupId) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM group_members WHERE group_id = $1",
            "DELETE FROM connection_group_perms WHERE group_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let n = sqlx::query("DELETE FROM user_groups WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn exists(&self, table: &str, id: i64) -> Result<bool> {
        // `table` is one of ours, never input.
        Ok(
            sqlx::query(&format!("SELECT id FROM {table} WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    async fn require(&self, table: &str, what: &str, id: i64) -> Result<()> {
        if self.exists(table, id).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("{what} {id}")))
        }
    }

    async fn insert_pair(
        tx: &mut Transaction<'_, Any>,
        table: &str,
        cols: (&str, &str),
        a: i64,
        b: i64,
    ) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO {table} ({}, {}) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            cols.0, cols.1
        ))
        .bind(a)
        .bind(b)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    pub(crate) async fn set_group_members(&self, id: GroupId, members: &[UserId]) -> Result<()> {
        self.require("user_groups", "group", id).await?;
        for u in members {
            self.require("users", "user", *u).await?;
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM group_members WHERE group_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for u in members {
            Self::insert_pair(&mut tx, "group_members", ("group_id", "user_id"), id, *u).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn add_group_member(&self, id: GroupId, user: UserId) -> Result<()> {
        self.require("user_groups", "group", id).await?;
        self.require("users", "user", user).await?;
        let mut tx = self.pool.begin().await?;
        Self::insert_pair(&mut tx, "group_members", ("group_id", "user_id"), id, user).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn remove_group_member(&self, id: GroupId, user: UserId) -> Result<()> {
        sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(id)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn user_groups(&self, user: UserId) -> Result<Vec<GroupId>> {
        sqlx::query("SELECT group_id FROM group_members WHERE user_id = $1 ORDER BY group_id")
            .bind(user)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get("group_id")?))
            .collect()
    }

    pub(crate) async fn set_user_groups(&self, user: UserId, groups: &[GroupId]) -> Result<()> {
        self.require("users", "user", user).await?;
        for g in groups {
            self.require("user_groups", "group", *g).await?;
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM group_members WHERE user_id = $1")
            .bind(user)
            .execute(&mut *tx)
            .await?;
        for g in groups {
            Self::insert_pair(&mut tx, "group_members", ("group_id", "user_id"), *g, user).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ----- connections -----

    fn check_connection(&self, c: &NewConnection) -> Result<String> {
        check_name("connection name", &c.name, 256)?;
        check_protocol(&c.protocol)?;
        if c.description.chars().count() > 4096 {
            return Err(Error::Invalid(
                "the description is longer than 4096 characters".to_owned(),
            ));
        }
        for (k, v) in &c.params {
            check_name("parameter name", k, 128)?;
            if v.len() > MAX_PARAM_VALUE {
                return Err(Error::Invalid(format!(
                    "parameter {k:?} is longer than {MAX_PARAM_VALUE} bytes"
                )));
            }
        }
        normalize_group(&c.group)
    }

    /// Writes the parameters of connection `id` (secrets encrypted). `keep`
    /// holds the raw stored rows used for [`SECRET_PLACEHOLDER`] values.
    async fn write_params(
        &self,
        tx: &mut Transaction<'_, Any>,
        id: ConnectionId,
        protocol: &str,
        params: &BTreeMap<String, String>,
        keep: &BTreeMap<String, (String, i64)>,
    ) -> Result<()> {
        for (name, value) in params {
            let (stored, encrypted) = if value == SECRET_PLACEHOLDER {
                match keep.get(name) {
                    Some((v, e)) => (v.clone(), *e),
                    None => continue,
                }
            } else if !value.is_empty() && self.is_secret(protocol, name) {
                (self.key()?.encrypt(value, &param_aad(id, name))?, 1)
            } else {
                (value.clone(), 0)
            };
            sqlx::query(
                "INSERT INTO connection_params (connection_id, name, value, encrypted) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(name)
            .bind(stored)
            .bind(encrypted)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn create_connection(&self, new: &NewConnection) -> Result<Connection> {
        let group = self.check_connection(new)?;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO connections (name, protocol, group_path, description, created) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&new.name)
        .bind(&new.protocol)
        .bind(&group)
        .bind(&new.description)
        .bind(to_ms(self.now()))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, || conn_conflict(&group, &new.name)))?;
        let id: ConnectionId = row.try_get("id")?;
        self.write_params(&mut tx, id, &new.protocol, &new.params, &BTreeMap::new())
            .await?;
        tx.commit().await?;
        self.require_connection(id).await
    }

    async fn require_connection(&self, id: ConnectionId) -> Result<Connection> {
        self.get_connection(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("connection {id}")))
    }

    async fn raw_params(&self, id: ConnectionId) -> Result<BTreeMap<String, (String, i64)>> {
        sqlx::query("SELECT name, value, encrypted FROM connection_params WHERE connection_id = $1")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("name")?,
                    (r.try_get("value")?, r.try_get("encrypted")?),
                ))
            })
            .collect()
    }

    fn decrypt_params(
        &self,
        id: ConnectionId,
        raw: BTreeMap<String, (String, i64)>,
    ) -> Result<(BTreeMap<String, String>, BTreeSet<String>)> {
        let mut params = BTreeMap::new();
        let mut secret = BTreeSet::new();
        for (name, (value, enc)) in raw {
            if enc != 0 {
                let plain = self.key()?.decrypt(&value, &param_aad(id, &name))?;
                secret.insert(name.clone());
                params.insert(name, plain);
            } else {
                params.insert(name, value);
            }
        }
        Ok((params, secret))
    }

    fn connection_from(
        &self,
        s: ConnectionSummary,
        raw: BTreeMap<String, (String, i64)>,
    ) -> Result<Connection> {
        let (params, secret_params) = self.decrypt_params(s.id, raw)?;
        Ok(Connection {
            id: s.id,
            name: s.name,
            protocol: s.protocol,
            group: s.group,
            description: s.description,
            params,
            secret_params,
        })
    }

    pub(crate) async fn get_connection(&self, id: ConnectionId) -> Result<Option<Connection>> {
        let Some(r) = sqlx::query(
            "SELECT id, name, protocol, group_path, description FROM connections WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let s = summary_from_row(&r)?;
        let raw = self.raw_params(id).await?;
        Ok(Some(self.connection_from(s, raw)?))
    }

    pub(crate) async fn connection_by_name(
        &self,
        group: &str,
        name: &str,
    ) -> Result<Option<Connection>> {
        let group = normalize_group(group)?;
        let row = sqlx::query("SELECT id FROM connections WHERE group_path = $1 AND name = $2")
            .bind(group)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => self.get_connection(r.try_get("id")?).await,
            None => Ok(None),
        }
    }

    pub(crate) async fn list_connections(&self) -> Result<Vec<Connection>> {
        let rows = sqlx::query(
            "SELECT id, name, protocol, group_path, description FROM connections \
             ORDER BY group_path, name, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut raw: BTreeMap<ConnectionId, BTreeMap<String, (String, i64)>> = BTreeMap::new();
        for r in sqlx::query("SELECT connection_id, name, value, encrypted FROM connection_params")
            .fetch_all(&self.pool)
            .await?
        {
            raw.entry(r.try_get("connection_id")?).or_default().insert(
                r.try_get("name")?,
                (r.try_get("value")?, r.try_get("encrypted")?),
            );
        }
        rows.iter()
            .map(|r| {
                let s = summary_from_row(r)?;
                let p = raw.remove(&s.id).unwrap_or_default();
                self.connection_from(s, p)
            })
            .collect()
    }

    pub(crate) async fn update_connection(
        &self,
        id: ConnectionId,
        u: &NewConnection,
    ) -> Result<Connection> {
        let group = self.check_connection(u)?;
        self.require("connections", "connection", id).await?;
        let keep = self.raw_params(id).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE connections SET name = $1, protocol = $2, group_path = $3, description = $4 \
             WHERE id = $5",
        )
        .bind(&u.name)
        .bind(&u.protocol)
        .bind(&group)
        .bind(&u.description)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, || conn_conflict(&group, &u.name)))?;
        sqlx::query("DELETE FROM connection_params WHERE connection_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.write_params(&mut tx, id, &u.protocol, &u.params, &keep)
            .await?;
        tx.commit().await?;
        self.require_connection(id).await
    }

    pub(crate) async fn delete_connection(&self, id: ConnectionId) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM connection_params WHERE connection_id = $1",
            "DELETE FROM connection_user_perms WHERE connection_id = $1",
            "DELETE FROM connection_group_perms WHERE connection_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        let n = sqlx::query("DELETE FROM connections WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    // ----- permissions -----

    pub(crate) async fn connection_permissions(&self, id: ConnectionId) -> Result<Permissions> {
        self.require("connections", "connection", id).await?;
        let users = sqlx::query(
            "SELECT user_id FROM connection_user_perms WHERE connection_id = $1 ORDER BY user_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("user_id"))
        .collect::<Result<Vec<UserId>, _>>()?;
        let groups = sqlx::query(
            "SELECT group_id FROM connection_group_perms WHERE connection_id = $1 ORDER BY group_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("group_id"))
        .collect::<Result<Vec<GroupId>, _>>()?;
        Ok(Permissions { users, groups })
    }

    pub(crate) async fn set_connection_permissions(
        &self,
        id: ConnectionId,
        p: &Permissions,
    ) -> Result<()> {
        self.require("connections", "connection", id).await?;
        for u in &p.users {
            self.require("users", "user", *u).await?;
        }
        for g in &p.groups {
            self.require("user_groups", "group", *g).await?;
        }
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM connection_user_perms WHERE connection_id = $1",
            "DELETE FROM connection_group_perms WHERE connection_id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        for u in &p.users {
            Self::insert_pair(
                &mut tx,
                "connection_user_perms",
                ("connection_id", "user_id"),
                id,
                *u,
            )
            .await?;
        }
        for g in &p.groups {
            Self::insert_pair(
                &mut tx,
                "connection_group_perms",
                ("connection_id", "group_id"),
                id,
                *g,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn grant_user(&self, id: ConnectionId, user: UserId) -> Result<()> {
        self.require("connections", "connection", id).await?;
        self.require("users", "user", user).await?;
        let mut tx = self.pool.begin().await?;
        Self::insert_pair(
            &mut tx,
            "connection_user_perms",
            ("connection_id", "user_id"),
            id,
            user,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn revoke_user(&self, id: ConnectionId, user: UserId) -> Result<()> {
        sqlx::query("DELETE FROM connection_user_perms WHERE connection_id = $1 AND user_id = $2")
            .bind(id)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn grant_group(&self, id: ConnectionId, group: GroupId) -> Result<()> {
        self.require("connections", "connection", id).await?;
        self.require("user_groups", "group", group).await?;
        let mut tx = self.pool.begin().await?;
        Self::insert_pair(
            &mut tx,
            "connection_group_perms",
            ("connection_id", "group_id"),
            id,
            group,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn revoke_group(&self, id: ConnectionId, group: GroupId) -> Result<()> {
        sqlx::query(
            "DELETE FROM connection_group_perms WHERE connection_id = $1 AND group_id = $2",
        )
        .bind(id)
        .bind(group)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn connections_for_user(
        &self,
        user: UserId,
    ) -> Result<Vec<ConnectionSummary>> {
        let Some(u) = self.get_user(user).await? else {
            return Ok(Vec::new());
        };
        if u.disabled {
            return Ok(Vec::new());
        }
        let rows = if u.admin {
            sqlx::query(
                "SELECT id, name, protocol, group_path, description FROM connections \
                 ORDER BY group_path, name, id",
            )
            .fetch_all(&self.pool)
            .await?
        } else {
            sqlx::query(
                "SELECT id, name, protocol, group_path, description FROM connections \
                 WHERE id IN (SELECT connection_id FROM connection_user_perms WHERE user_id = $1) \
                 OR id IN (SELECT p.connection_id FROM connection_group_perms p \
                           JOIN group_members m ON m.group_id = p.group_id WHERE m.user_id = $2) \
                 ORDER BY group_path, name, id",
            )
            .bind(user)
            .bind(user)
            .fetch_all(&self.pool)
            .await?
        };
        rows.iter().map(summary_from_row).collect()
    }

    pub(crate) async fn can_use_connection(&self, user: UserId, id: ConnectionId) -> Result<bool> {
        let Some(u) = self.get_user(user).await? else {
            return Ok(false);
        };
        if u.disabled {
            return Ok(false);
        }
        if u.admin {
            return self.exists("connections", id).await;
        }
        let direct = sqlx::query(
            "SELECT user_id FROM connection_user_perms WHERE connection_id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        if direct.is_some() {
            return Ok(true);
        }
        let via = sqlx::query(
            "SELECT p.group_id FROM connection_group_perms p JOIN group_members m \
             ON m.group_id = p.group_id WHERE p.connection_id = $1 AND m.user_id = $2 LIMIT 1",
        )
        .bind(id)
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        Ok(via.is_some())
    }

    // ----- audit -----

    pub(crate) async fn append_audit(&self, e: &NewAuditEvent) -> Result<AuditId> {
        if e.kind.is_empty() || e.kind.len() > 64 || e.kind.chars().any(char::is_control) {
            return Err(Error::Invalid(format!("invalid audit kind {:?}", e.kind)));
        }
        let detail = e.detail.as_ref().map(|d| {
            let mut d = d.clone();
            if d.len() > MAX_DETAIL {
                let mut cut = MAX_DETAIL;
                while !d.is_char_boundary(cut) {
                    cut -= 1;
                }
                d.truncate(cut);
                d.push('…');
            }
            d
        });
        let row = sqlx::query(
            "INSERT INTO audit_events (time, kind, username, username_key, remote_addr, \
             connection_id, connection_name, protocol, session_id, bytes_in, bytes_out, \
             duration_ms, recording_path, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(to_ms(e.time.unwrap_or_else(|| self.now())))
        .bind(&e.kind)
        .bind(e.username.clone())
        .bind(e.username.as_deref().map(name_key))
        .bind(e.remote_addr.clone())
        .bind(e.connection_id)
        .bind(e.connection_name.clone())
        .bind(e.protocol.clone())
        .bind(e.session_id.clone())
        .bind(e.bytes_in.map(to_i64))
        .bind(e.bytes_out.map(to_i64))
        .bind(e.duration_ms.map(to_i64))
        .bind(e.recording_path.clone())
        .bind(detail)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    pub(crate) async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>> {
        let mut sql = format!("SELECT {AUDIT_COLS} FROM audit_events WHERE 1 = 1");
        let mut binds = Vec::new();
        let mut push = |sql: &mut String, clause: &str, b: Bind| {
            binds.push(b);
            sql.push_str(&clause.replace("$?", &format!("${}", binds.len())));
        };
        if let Some(before) = q.before {
            push(&mut sql, " AND id < $?", Bind::I(before));
        }
        if let Some(t) = q.before_time {
            push(&mut sql, " AND time < $?", Bind::I(to_ms(t)));
        }
        if let Some(kind) = q.kind.as_deref().filter(|k| !k.is_empty()) {
            let prefix = kind.strip_suffix('*').unwrap_or(kind);
            if prefix.ends_with('.') {
                let escaped = prefix
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                push(
                    &mut sql,
                    " AND kind LIKE $? ESCAPE '\\'",
                    Bind::S(format!("{escaped}%")),
                );
            } else {
                push(&mut sql, " AND kind = $?", Bind::S(kind.to_owned()));
            }
        }
        if let Some(user) = q.user.as_deref().filter(|u| !u.is_empty()) {
            push(&mut sql, " AND username_key = $?", Bind::S(name_key(user)));
        }
        let limit = i64::from(q.limit.unwrap_or(100).clamp(1, 1000));
        push(&mut sql, " ORDER BY id DESC LIMIT $?", Bind::I(limit));
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = match b {
                Bind::I(i) => query.bind(i),
                Bind::S(s) => query.bind(s),
            };
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    pub(crate) async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM audit_events WHERE time < $1")
            .bind(to_ms(before))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    // ----- import -----

    pub(crate) async fn import_user_mapping(
        &self,
        mapping: &UserMapping,
        group: &str,
    ) -> Result<ImportReport> {
        let group = normalize_group(group)?;
        let mut report = ImportReport::default();
        for mu in &mapping.users {
            let user = match self.user_by_name(&mu.username).await? {
                Some(u) => {
                    report.users_existing.push(u.username.clone());
                    u
                }
                None => {
                    let u = self
                        .create_user(&NewUser {
                            username: mu.username.clone(),
                            ..Default::default()
                        })
                        .await?;
                    match &mu.password {
                        MappedPassword::Plain(p) => self.set_password(u.id, p, false).await?,
                        MappedPassword::Hashed(kind, hex) => self
                            .set_legacy_password(u.id, *kind, hex)
                            .await
                            .map_err(|e| Error::Import(format!("user {:?}: {e}", mu.username)))?,
                    }
                    report.users_created.push(u.username.clone());
                    u
                }
            };
            for mc in &mu.connections {
                let new = NewConnection {
                    name: mc.name.clone(),
                    protocol: mc.protocol.clone(),
                    group: group.clone(),
                    description: String::new(),
                    params: mc.params.clone(),
                };
                // Connection names are per user in user-mapping.xml: an identical
                // connection is shared, a different one under the same name gets
                // the username appended.
                let same = |c: &Connection| c.protocol == mc.protocol && c.params == mc.params;
                let suffixed = format!("{} ({})", mc.name, mu.username);
                let id = match self.connection_by_name(&group, &mc.name).await? {
                    None => {
                        let c = self.create_connection(&new).await?;
                        report.connections_created.push(c.name.clone());
                        c.id
                    }
                    Some(c) if same(&c) => c.id,
                    Some(_) => {
                        let new = NewConnection {
                            name: suffixed.clone(),
                            ..new.clone()
                        };
                        match self.connection_by_name(&group, &suffixed).await? {
                            None => {
                                let c = self.create_connection(&new).await?;
                                report.connections_created.push(c.name.clone());
                                c.id
                            }
                            Some(c) if same(&c) => c.id,
                            Some(c) => {
                                self.update_connection(c.id, &new).await?;
                                report.connections_updated.push(c.name.clone());
                                c.id
                            }
                        }
                    }
                };
                self.grant_user(id, user.id).await?;
                report.grants += 1;
            }
        }
        Ok(report)
    }
}

fn conn_conflict(group: &str, name: &str) -> String {
    if group.is_empty() {
        format!("a connection named {name:?} already exists")
    } else {
        format!("a connection named {name:?} already exists in {group:?}")
    }
}
