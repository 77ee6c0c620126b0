//! guacr's store: users (argon2id passwords, optional TOTP, lockout), groups,
//! connections with their parameters (secret parameters encrypted at rest with
//! AES-256-GCM), permissions and audit events.
//!
//! One code path over `sqlx::Any`: a SQLite file (the default, created on first
//! open) or PostgreSQL (`postgres://…`). Each backend has its own migration
//! directory (`migrations/sqlite`, `migrations/postgres`) with the same schema;
//! every query is portable SQL with runtime binding (`$1`, `$2`, …).
//!
//! ```no_run
//! # async fn demo() -> Result<(), guacr_store::Error> {
//! use guacr_store::{SecretKey, Store};
//! let key = SecretKey::load_or_create(std::path::Path::new("/var/lib/guacr/secret.key"))?;
//! let store = Store::open("sqlite:///var/lib/guacr/guacr.db", Some(key)).await?;
//! if let Some(password) = store.ensure_admin().await? {
//!     println!("admin one-time password: {password}");
//! }
//! # Ok(()) }
//! ```
//!
//! Ids are `i64` (the web API renders them as strings); times are UTC.
//! Nothing here logs a password, a TOTP secret or a secret parameter value.

mod crypto;
mod db;
pub mod import;
mod password;
mod store;
pub mod testing;
pub mod totp;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crypto::SecretKey;
pub use import::{ImportReport, UserMapping};

/// A user's id.
pub type UserId = i64;
/// A group's id.
pub type GroupId = i64;
/// A connection's id.
pub type ConnectionId = i64;
/// An audit event's id (grows with time: newer events have larger ids).
pub type AuditId = i64;

/// What the web layer shows instead of a secret parameter's value; sending it
/// back in [`Store::update_connection`] keeps the stored value.
pub const SECRET_PLACEHOLDER: &str = "********";

/// The username [`Store::ensure_admin`] creates.
pub const DEFAULT_ADMIN: &str = "admin";

/// Errors of the store. Messages are human and never contain secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such user, group, connection, ….
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is taken (usernames are case-insensitive).
    #[error("{0}")]
    Conflict(String),
    /// Bad input (empty name, control characters, bad URL, …).
    #[error("{0}")]
    Invalid(String),
    /// Encrypted values exist (or a secret must be written) but no key was configured.
    #[error(
        "the database holds encrypted secrets but no secret key is configured \
         (set [database] secret_key_file or GUACR_SECRET_KEY)"
    )]
    KeyRequired,
    /// The configured key does not decrypt this database's secrets.
    #[error(
        "the configured secret key does not match this database (wrong [database] \
         secret_key_file or GUACR_SECRET_KEY)"
    )]
    WrongKey,
    /// A key file or key string that is not 32 bytes of base64 or hex.
    #[error("invalid secret key: {0}")]
    BadKey(String),
    /// A stored value could not be decrypted or decoded (corruption or tampering).
    #[error("stored secret cannot be decrypted: {0}")]
    Crypto(String),
    /// A Guacamole `user-mapping.xml` that cannot be imported.
    #[error("user-mapping.xml: {0}")]
    Import(String),
    /// File system errors (key files, the SQLite directory).
    #[error("{0}")]
    Io(String),
    /// Database errors.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migration errors.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A user, without any secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    /// As entered at creation (lookups are case-insensitive).
    pub username: String,
    pub display_name: String,
    pub admin: bool,
    pub disabled: bool,
    pub totp_enabled: bool,
    /// Set for generated one-time passwords (first-run admin, `guacr user add` without a password).
    pub must_change_password: bool,
    /// Consecutive failed logins since the last success or lock.
    pub failed_logins: u32,
    /// Logins are refused until then.
    pub locked_until: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

/// A user to create. `password: None` creates a user that cannot log in with a
/// password (e.g. OIDC only) until one is set.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    /// Empty = the username.
    pub display_name: String,
    pub password: Option<String>,
    pub admin: bool,
    pub disabled: bool,
    pub must_change_password: bool,
}

/// Fields to change on a user; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub admin: Option<bool>,
    pub disabled: Option<bool>,
}

/// Password hash formats of Guacamole's `user-mapping.xml` (`encoding="md5"|"sha256"`),
/// stored as a legacy hash: verified on login, then replaced by argon2id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyHash {
    Md5,
    Sha256,
}

/// Lockout policy: `max_failures` consecutive failures lock the account for
/// `lock_duration`. `max_failures == 0` disables lockout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub lock_duration: std::time::Duration,
}

impl Default for LockoutPolicy {
    /// 5 failures → 15 minutes.
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 5,
            lock_duration: std::time::Duration::from_secs(15 * 60),
        }
    }
}

/// The result of [`Store::authenticate`]. The caller writes the audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Password (and TOTP when enrolled) correct; failures reset, last login set.
    Success(User),
    /// Unknown user, wrong password, wrong TOTP code (counts as a failure), or
    /// a user without a password. Deliberately does not say which.
    InvalidCredentials,
    /// Password correct but the user has TOTP and no code was given (not a failure).
    TotpRequired,
    /// Locked (now, or by this failure) until then; the password was not checked.
    Locked { until: DateTime<Utc> },
    /// The account is disabled (the password was correct).
    Disabled,
}

/// A web login session as stored (shared by every instance on the database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSessionRecord {
    /// SHA-256 of the cookie's random id (hex): the id itself is never stored.
    pub id_hash: String,
    pub user_id: UserId,
    pub csrf: String,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Unix milliseconds (updated at most about once a minute).
    pub last_seen_ms: i64,
}

/// A TOTP enrolment in progress (see [`Store::totp_begin`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The shared secret, base32 without padding (for manual entry).
    pub secret_base32: String,
    /// `otpauth://totp/guacr:<user>?secret=…&issuer=guacr&algorithm=SHA1&digits=6&period=30`
    pub uri: String,
}

/// A group and its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    pub members: Vec<UserId>,
}

/// A connection with its parameters, secrets decrypted (for the tunnel).
/// Show [`Connection::masked_params`] to people, never `params`.
#[derive(Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub name: String,
    pub protocol: String,
    /// Folder path, `"Folder/Sub"`, or `""`.
    pub group: String,
    pub description: String,
    /// Parameter name → value (plaintext).
    pub params: BTreeMap<String, String>,
    /// Names of the parameters stored encrypted.
    pub secret_params: BTreeSet<String>,
}

impl Connection {
    /// `params` with every secret value replaced by [`SECRET_PLACEHOLDER`].
    pub fn masked_params(&self) -> BTreeMap<String, String> {
        self.params
            .iter()
            .map(|(k, v)| {
                let v = if self.secret_params.contains(k) {
                    SECRET_PLACEHOLDER.to_owned()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// The list entry (no parameters).
    pub fn summary(&self) -> ConnectionSummary {
        ConnectionSummary {
            id: self.id,
            name: self.name.clone(),
            protocol: self.protocol.clone(),
            group: self.group.clone(),
            description: self.description.clone(),
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("group", &self.group)
            .field("description", &self.description)
            .field("params", &self.masked_params())
            .finish()
    }
}

/// A connection as listed to users (`GET /api/connections`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionSummary {
    pub id: ConnectionId,
    pub name: String,
    pub protocol: String,
    pub group: String,
    pub description: String,
}

/// A connection to create, or the new state of one in [`Store::update_connection`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NewConnection {
    pub name: String,
    pub protocol: String,
    pub group: String,
    pub description: String,
    pub params: BTreeMap<String, String>,
}

impl std::fmt::Debug for NewConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConnection")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("group", &self.group)
            .field("params", &self.params.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Who may use a connection (besides admins, who may use all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Permissions {
    pub users: Vec<UserId>,
    pub groups: Vec<GroupId>,
}

/// Audit event kinds used by guacr (the column is free text; these are the known ones).
pub mod audit_kind {
    pub const LOGIN_SUCCESS: &str = "login.success";
    pub const LOGIN_FAILURE: &str = "login.failure";
    pub const LOGIN_LOCKED: &str = "login.locked";
    pub const SESSION_START: &str = "session.start";
    pub const SESSION_END: &str = "session.end";
    pub const SESSION_KILL: &str = "session.kill";
    pub const ADMIN_CHANGE: &str = "admin.change";
    pub const TOKEN_REFUSED: &str = "token.refused";
    pub const CSRF_REFUSED: &str = "csrf.refused";
}

/// A stored audit event (`AuditEvent` of docs/web-api.md; serializes with those names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub id: AuditId,
    pub time: DateTime<Utc>,
    pub kind: String,
    pub username: Option<String>,
    pub remote_addr: Option<String>,
    pub connection_id: Option<ConnectionId>,
    pub connection_name: Option<String>,
    pub protocol: Option<String>,
    pub session_id: Option<String>,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub duration_ms: Option<u64>,
    pub recording_path: Option<String>,
    pub detail: Option<String>,
}

/// An audit event to append. `time: None` = now (the store's clock).
/// Never put a password, token or secret parameter in any field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub time: Option<DateTime<Utc>>,
    pub kind: String,
    pub username: Option<String>,
    pub remote_addr: Option<String>,
    pub connection_id: Option<ConnectionId>,
    pub connection_name: Option<String>,
    pub protocol: Option<String>,
    pub session_id: Option<String>,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub duration_ms: Option<u64>,
    pub recording_path: Option<String>,
    pub detail: Option<String>,
}

impl NewAuditEvent {
    /// An event of `kind` with every other field empty.
    pub fn new(kind: &str) -> Self {
        NewAuditEvent {
            kind: kind.to_owned(),
            ..Default::default()
        }
    }
}

/// Filters of [`Store::query_audit`] (`GET /api/admin/audit?limit=&before=&kind=&user=`).
/// Results are newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Default 100, at most 1000.
    pub limit: Option<u32>,
    /// Only events with a smaller id (paging: pass the last id of the previous page).
    pub before: Option<AuditId>,
    /// Only events strictly older than this time.
    pub before_time: Option<DateTime<Utc>>,
    /// Exact kind (`login.failure`), or a prefix ending with `.` or `.*` (`login.`).
    pub kind: Option<String>,
    /// Username, case-insensitive.
    pub user: Option<String>,
}

/// A random password: 20 characters from an unambiguous alphabet (~115 bits),
/// as [`Store::ensure_admin`] generates.
pub fn generate_password() -> Result<String> {
    crypto::random_password()
}

/// A database URL with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    db::redact_url(url)
}

/// Decides which connection parameters are secret: `(protocol, parameter name) → secret`.
/// The web layer passes one built from each handler's parameter schema.
pub type SecretPredicate = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// The built-in rule: names containing `password`, `passphrase`, `private-key`,
/// `secret`, `token`, or equal to `key`/`api-key`-like names ending in `-key`
/// except `*-public-key`/`host-key`. Used when no predicate is set.
pub fn default_is_secret(_protocol: &str, name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.contains("public-key") || n == "host-key" || n.ends_with("-host-key") {
        return false;
    }
    n.contains("password")
        || n.contains("passphrase")
        || n.contains("passwd")
        || n.contains("private-key")
        || n.contains("secret")
        || n.contains("token")
        || n == "key"
        || n.ends_with("-key")
        || n.ends_with("_key")
}

/// The store's source of time (inject a [`ManualClock`] in tests).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(start)))
    }
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }
    pub fn advance(&self, d: std::time::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Options of [`Store::open_with`].
#[derive(Clone)]
pub struct StoreOptions {
    pub lockout: LockoutPolicy,
    /// `None` = [`default_is_secret`].
    pub secret_predicate: Option<SecretPredicate>,
    pub clock: Arc<dyn Clock>,
    /// Pool size (default 8; SQLite uses at most this many connections too).
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            lockout: LockoutPolicy::default(),
            secret_predicate: None,
            clock: Arc::new(SystemClock),
            max_connections: 8,
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("lockout", &self.lockout)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// The store. Cheap to clone (shared pool); use from any task.
#[derive(Clone)]
pub struct Store {
    inner: Arc<store::Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Everything the store does. Every method is async and returns [`Result`].
impl Store {
    // ----- opening -----

    /// Opens (SQLite: creates the file and its directory) and migrates the
    /// database at `url` (`sqlite:///abs/path.db`, `sqlite://relative.db`,
    /// `sqlite::memory:`, `postgres://user:pass@host:port/db`), with default options.
    /// `key` encrypts secret parameters and TOTP secrets; without one the open
    /// fails with [`Error::KeyRequired`] when encrypted values exist, and with
    /// a wrong one it fails with [`Error::WrongKey`].
    pub async fn open(url: &str, key: Option<SecretKey>) -> Result<Store> {
        Store::open_with(url, key, StoreOptions::default()).await
    }

    /// [`Store::open`] with options (lockout policy, secret predicate, clock, pool size).
    pub async fn open_with(
        url: &str,
        key: Option<SecretKey>,
        options: StoreOptions,
    ) -> Result<Store> {
        Ok(Store {
            inner: Arc::new(store::Inner::open(url, key, options).await?),
        })
    }

    /// Runs the migrations again (idempotent; `open` already does it).
    pub async fn migrate(&self) -> Result<()> {
        self.inner.migrate().await
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Whether a secret key is configured.
    pub fn has_key(&self) -> bool {
        self.inner.key.is_some()
    }

    /// Replaces the secret predicate (e.g. once the protocol handlers' schemas are known).
    pub fn set_secret_predicate(&self, predicate: SecretPredicate) {
        self.inner.set_secret_predicate(predicate);
    }

    /// Whether `(protocol, name)` is a secret parameter under the current predicate.
    pub fn is_secret_param(&self, protocol: &str, name: &str) -> bool {
        self.inner.is_secret(protocol, name)
    }

    /// The lockout policy in use.
    pub fn lockout_policy(&self) -> LockoutPolicy {
        self.inner.options.lockout
    }

    /// Now, by the store's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// First run: when there are no users at all, creates [`DEFAULT_ADMIN`]
    /// (admin, `must_change_password`) with a random one-time password and
    /// returns it (print it once). Returns `None` when any user exists.
    pub async fn ensure_admin(&self) -> Result<Option<String>> {
        self.inner.ensure_admin().await
    }

    // ----- users -----

    /// Creates a user. Usernames are unique case-insensitively ([`Error::Conflict`]),
    /// 1–128 characters without control characters; anything else (quotes,
    /// `<script>`, …) is stored verbatim.
    pub async fn create_user(&self, new: &NewUser) -> Result<User> {
        self.inner.create_user(new).await
    }

    pub async fn get_user(&self, id: UserId) -> Result<Option<User>> {
        self.inner.get_user(id).await
    }

    /// Case-insensitive lookup.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.inner.user_by_name(username).await
    }

    /// All users, by username.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        self.inner.list_users().await
    }

    /// Changes the given fields; returns the new user ([`Error::NotFound`], [`Error::Conflict`]).
    pub async fn update_user(&self, id: UserId, update: &UserUpdate) -> Result<User> {
        self.inner.update_user(id, update).await
    }

    /// Deletes a user (memberships and permissions go with it). `false` if absent.
    pub async fn delete_user(&self, id: UserId) -> Result<bool> {
        self.inner.delete_user(id).await
    }

    /// Sets an argon2id password (clears any legacy hash and the lock).
    pub async fn set_password(&self, id: UserId, password: &str, must_change: bool) -> Result<()> {
        self.inner.set_password(id, password, must_change).await
    }

    /// Stores a legacy hex hash (Guacamole `user-mapping.xml` md5/sha256); the
    /// first successful login replaces it with argon2id.
    pub async fn set_legacy_password(
        &self,
        id: UserId,
        kind: LegacyHash,
        hex_digest: &str,
    ) -> Result<()> {
        self.inner.set_legacy_password(id, kind, hex_digest).await
    }

    /// Checks a password without any lockout side effect (e.g. "current
    /// password" on change). `false` for unknown users.
    pub async fn check_password(&self, id: UserId, password: &str) -> Result<bool> {
        self.inner.check_password(id, password).await
    }

    /// A login attempt: lockout, password (argon2id or legacy, upgraded on
    /// success), disabled flag, TOTP (±1 step, a code is accepted once).
    /// Failures count towards the lockout policy. Does not write audit events.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Result<LoginOutcome> {
        self.inner.authenticate(username, password, totp).await
    }

    /// Clears failures and the lock.
    pub async fn unlock_user(&self, id: UserId) -> Result<()> {
        self.inner.unlock_user(id).await
    }

    // ----- TOTP -----

    /// Starts TOTP enrolment: a new pending secret (needs the key); returns
    /// the otpauth:// URI. TOTP is not required until [`Store::totp_confirm`].
    pub async fn totp_begin(&self, id: UserId) -> Result<TotpEnrolment> {
        self.inner.totp_begin(id).await
    }

    /// Confirms enrolment with a current code; `true` = TOTP now required at login.
    pub async fn totp_confirm(&self, id: UserId, code: &str) -> Result<bool> {
        self.inner.totp_confirm(id, code).await
    }

    /// Sets an already-known TOTP secret (base32, e.g. migrated from another
    /// system); TOTP is required at login from now on. Needs the key.
    pub async fn totp_set_secret(&self, id: UserId, secret_base32: &str) -> Result<()> {
        self.inner.totp_set_secret(id, secret_base32).await
    }

    /// Stores a new web login session.
    pub async fn web_session_put(&self, s: &WebSessionRecord) -> Result<()> {
        self.inner.web_session_put(s).await
    }

    /// A web login session by the hash of its id.
    pub async fn web_session_get(&self, id_hash: &str) -> Result<Option<WebSessionRecord>> {
        self.inner.web_session_get(id_hash).await
    }

    /// Moves a session's last activity forward (never back).
    pub async fn web_session_touch(&self, id_hash: &str, last_seen_ms: i64) -> Result<()> {
        self.inner.web_session_touch(id_hash, last_seen_ms).await
    }

    /// Ends a web login session (logout).
    pub async fn web_session_delete(&self, id_hash: &str) -> Result<()> {
        self.inner.web_session_delete(id_hash).await
    }

    /// Ends every web login session of a user but the one whose hash is
    /// `except` (`""` for none); returns how many ended.
    pub async fn web_sessions_end_user(&self, user_id: UserId, except: &str) -> Result<u64> {
        self.inner.web_sessions_end_user(user_id, except).await
    }

    /// Deletes sessions created before, or idle since, the given times; returns how many.
    pub async fn web_sessions_prune(
        &self,
        created_before_ms: i64,
        seen_before_ms: i64,
    ) -> Result<u64> {
        self.inner
            .web_sessions_prune(created_before_ms, seen_before_ms)
            .await
    }

    /// Removes TOTP from a user.
    pub async fn totp_disable(&self, id: UserId) -> Result<()> {
        self.inner.totp_disable(id).await
    }

    // ----- groups -----

    /// Creates a group (names unique case-insensitively).
    pub async fn create_group(&self, name: &str) -> Result<Group> {
        self.inner.create_group(name).await
    }

    pub async fn get_group(&self, id: GroupId) -> Result<Option<Group>> {
        self.inner.get_group(id).await
    }

    pub async fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        self.inner.group_by_name(name).await
    }

    /// All groups with their members, by name.
    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        self.inner.list_groups().await
    }

    pub async fn rename_group(&self, id: GroupId, name: &str) -> Result<Group> {
        self.inner.rename_group(id, name).await
    }

    /// `false` if absent.
    pub async fn delete_group(&self, id: GroupId) -> Result<bool> {
        self.inner.delete_group(id).await
    }

    /// Replaces a group's members.
    pub async fn set_group_members(&self, id: GroupId, members: &[UserId]) -> Result<()> {
        self.inner.set_group_members(id, members).await
    }

    pub async fn add_group_member(&self, id: GroupId, user: UserId) -> Result<()> {
        self.inner.add_group_member(id, user).await
    }

    pub async fn remove_group_member(&self, id: GroupId, user: UserId) -> Result<()> {
        self.inner.remove_group_member(id, user).await
    }

    /// The groups a user belongs to.
    pub async fn user_groups(&self, user: UserId) -> Result<Vec<GroupId>> {
        self.inner.user_groups(user).await
    }

    /// Replaces the groups a user belongs to.
    pub async fn set_user_groups(&self, user: UserId, groups: &[GroupId]) -> Result<()> {
        self.inner.set_user_groups(user, groups).await
    }

    // ----- connections -----

    /// Creates a connection; secret parameters (by the predicate) are encrypted
    /// ([`Error::KeyRequired`] without a key). `(group, name)` is unique.
    pub async fn create_connection(&self, new: &NewConnection) -> Result<Connection> {
        self.inner.create_connection(new).await
    }

    /// A connection with its parameters decrypted.
    pub async fn get_connection(&self, id: ConnectionId) -> Result<Option<Connection>> {
        self.inner.get_connection(id).await
    }

    /// Lookup by folder path and name.
    pub async fn connection_by_name(&self, group: &str, name: &str) -> Result<Option<Connection>> {
        self.inner.connection_by_name(group, name).await
    }

    /// All connections with parameters, by group then name.
    pub async fn list_connections(&self) -> Result<Vec<Connection>> {
        self.inner.list_connections().await
    }

    /// Replaces name/protocol/group/description/params. A parameter whose new
    /// value is [`SECRET_PLACEHOLDER`] keeps its stored value; parameters
    /// missing from `update.params` are removed.
    pub async fn update_connection(
        &self,
        id: ConnectionId,
        update: &NewConnection,
    ) -> Result<Connection> {
        self.inner.update_connection(id, update).await
    }

    /// `false` if absent (its permissions go with it).
    pub async fn delete_connection(&self, id: ConnectionId) -> Result<bool> {
        self.inner.delete_connection(id).await
    }

    // ----- permissions -----

    /// Who may use a connection.
    pub async fn connection_permissions(&self, id: ConnectionId) -> Result<Permissions> {
        self.inner.connection_permissions(id).await
    }

    /// Replaces who may use a connection.
    pub async fn set_connection_permissions(
        &self,
        id: ConnectionId,
        perms: &Permissions,
    ) -> Result<()> {
        self.inner.set_connection_permissions(id, perms).await
    }

    pub async fn grant_user(&self, id: ConnectionId, user: UserId) -> Result<()> {
        self.inner.grant_user(id, user).await
    }

    pub async fn revoke_user(&self, id: ConnectionId, user: UserId) -> Result<()> {
        self.inner.revoke_user(id, user).await
    }

    pub async fn grant_group(&self, id: ConnectionId, group: GroupId) -> Result<()> {
        self.inner.grant_group(id, group).await
    }

    pub async fn revoke_group(&self, id: ConnectionId, group: GroupId) -> Result<()> {
        self.inner.revoke_group(id, group).await
    }

    /// What a user may use: direct grants + grants to their groups; admins see
    /// everything; disabled or unknown users nothing. By group then name.
    pub async fn connections_for_user(&self, user: UserId) -> Result<Vec<ConnectionSummary>> {
        self.inner.connections_for_user(user).await
    }

    /// Whether a user may use a connection (same rule as `connections_for_user`).
    pub async fn can_use_connection(&self, user: UserId, id: ConnectionId) -> Result<bool> {
        self.inner.can_use_connection(user, id).await
    }

    // ----- audit -----

    /// Appends an event; returns its id.
    pub async fn append_audit(&self, event: &NewAuditEvent) -> Result<AuditId> {
        self.inner.append_audit(event).await
    }

    /// Events matching the filters, newest first.
    pub async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>> {
        self.inner.query_audit(query).await
    }

    /// Deletes audit events older than `before` (retention); returns how many.
    pub async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64> {
        self.inner.prune_audit(before).await
    }

    // ----- import -----

    /// Imports a parsed Guacamole `user-mapping.xml` (see [`import::parse_user_mapping`]):
    /// creates missing users (plain passwords hashed with argon2id, md5/sha256
    /// kept as legacy hashes), creates or updates their connections (folder
    /// `group`, empty for `""`), and grants each user its connections.
    pub async fn import_user_mapping(
        &self,
        mapping: &UserMapping,
        group: &str,
    ) -> Result<ImportReport> {
        self.inner.import_user_mapping(mapping, group).await
    }
}
