//! Users, connections, permissions and the audit log, as the web server
//! needs them. `guacr` adapts `guacr-store` to this trait; [`MemoryDirectory`]
//! serves tests and stores-less runs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A user, as the API shows it (`User` in docs/web-api.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct User {
    #[serde(default)]
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub totp_enabled: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The user must choose a new password before anything else (a
    /// generated first password, or one an administrator set).
    #[serde(default)]
    pub must_change_password: bool,
}

/// A connection (`Connection` in docs/web-api.md). `params` hold secrets
/// in clear: only the tunnel sees them; the API masks them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Connection {
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub protocol: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Names the store keeps encrypted (masked in API answers besides the
    /// schema's secrets).
    #[serde(skip)]
    pub secret_params: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Group {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Permissions {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One audit event (`AuditEvent` in docs/web-api.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AuditEvent {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub time: String,
    pub kind: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub remote_addr: String,
    #[serde(default)]
    pub connection_id: String,
    #[serde(default)]
    pub connection_name: String,
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub session_id: String,
    #[serde(default)]
    pub bytes_in: u64,
    #[serde(default)]
    pub bytes_out: u64,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub recording_path: String,
    #[serde(default)]
    pub detail: String,
}

impl AuditEvent {
    pub fn new(kind: &str) -> Self {
        AuditEvent {
            kind: kind.to_owned(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub limit: usize,
    pub before: Option<String>,
    pub kind: Option<String>,
    pub user: Option<String>,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    InvalidCredentials,
    TotpRequired,
    Locked,
    Disabled,
    Internal(String),
}

/// Errors of directory operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirError {
    NotFound,
    Conflict(String),
    Invalid(String),
    Internal(String),
}

impl std::fmt::Display for DirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirError::NotFound => f.write_str("not found"),
            DirError::Conflict(m) | DirError::Invalid(m) | DirError::Internal(m) => f.write_str(m),
        }
    }
}

pub type DirResult<T> = Result<T, DirError>;

/// A TOTP enrolment in progress: TOTP is required only once it is confirmed
/// with a code from the authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The shared secret, base32 (for typing into the authenticator).
    pub secret: String,
    /// `otpauth://totp/…` (for the QR code).
    pub uri: String,
}

/// A login session as the directory keeps it, so that every instance on
/// the same database knows it and a restart keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// SHA-256 (hex) of the cookie's random id; the id itself is not stored.
    pub id_hash: String,
    pub user_id: String,
    pub csrf: String,
    /// Unix milliseconds.
    pub created_ms: i64,
    /// Unix milliseconds.
    pub last_seen_ms: i64,
}

fn no_totp<T>() -> DirResult<T> {
    Err(DirError::Invalid(
        "Two-factor authentication is not available with this directory.".into(),
    ))
}

/// The store, seen from the web server.
#[async_trait::async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Checks a password (and TOTP code when the user has one); counts
    /// failures and locks the account as the store's policy says.
    async fn login(
        &self,
        username: &str,
        password: &str,
        totp: Option<&str>,
        remote_addr: &str,
    ) -> Result<User, LoginError>;
    async fn user(&self, id: &str) -> DirResult<Option<User>>;
    /// The user for an OIDC identity (created on first login, not admin).
    async fn external_user(&self, username: &str, display_name: &str) -> DirResult<User>;
    async fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new: &str,
    ) -> Result<(), LoginError>;
    /// Whether `password` is this user's (to confirm a sensitive change).
    async fn verify_password(&self, user_id: &str, password: &str) -> DirResult<bool> {
        let _ = (user_id, password);
        no_totp()
    }
    /// Starts (or restarts) a TOTP enrolment with a new secret.
    async fn totp_begin(&self, user_id: &str) -> DirResult<TotpEnrolment> {
        let _ = user_id;
        no_totp()
    }
    /// Confirms the pending enrolment with a current code; false if wrong
    /// (or nothing is pending). From then on logins need a code.
    async fn totp_confirm(&self, user_id: &str, code: &str) -> DirResult<bool> {
        let _ = (user_id, code);
        no_totp()
    }
    /// Turns TOTP off (and drops a pending enrolment).
    async fn totp_disable(&self, user_id: &str) -> DirResult<()> {
        let _ = user_id;
        no_totp()
    }

    /// Whether login sessions are kept here (shared by instances, kept over
    /// restarts). If not, they live in this process only.
    fn keeps_sessions(&self) -> bool {
        false
    }
    async fn session_save(&self, s: &StoredSession) -> DirResult<()> {
        let _ = s;
        Ok(())
    }
    async fn session_load(&self, id_hash: &str) -> DirResult<Option<StoredSession>> {
        let _ = id_hash;
        Ok(None)
    }
    /// Moves a session's last activity forward.
    async fn session_touch(&self, id_hash: &str, last_seen_ms: i64) -> DirResult<()> {
        let _ = (id_hash, last_seen_ms);
        Ok(())
    }
    async fn session_delete(&self, id_hash: &str) -> DirResult<()> {
        let _ = id_hash;
        Ok(())
    }
    /// Ends every session of a user but `except_hash` (`""`: all of them).
    async fn sessions_end_user(&self, user_id: &str, except_hash: &str) -> DirResult<()> {
        let _ = (user_id, except_hash);
        Ok(())
    }
    /// Deletes sessions created before, or idle since, the given times.
    async fn sessions_prune(&self, created_before_ms: i64, seen_before_ms: i64) -> DirResult<()> {
        let _ = (created_before_ms, seen_before_ms);
        Ok(())
    }

    /// Connections `user` may use (admins: all).
    async fn connections_for(&self, user: &User) -> DirResult<Vec<Connection>>;
    /// Whether `user` may use connection `id` (admins: always).
    async fn may_use(&self, user: &User, connection_id: &str) -> DirResult<bool>;
    /// A connection with its parameters decrypted.
    async fn connection(&self, id: &str) -> DirResult<Option<Connection>>;

    async fn list_connections(&self) -> DirResult<Vec<Connection>>;
    async fn create_connection(&self, c: Connection) -> DirResult<Connection>;
    async fn update_connection(&self, c: Connection) -> DirResult<Connection>;
    async fn delete_connection(&self, id: &str) -> DirResult<()>;
    async fn permissions(&self, connection_id: &str) -> DirResult<Permissions>;
    async fn set_permissions(&self, connection_id: &str, p: Permissions) -> DirResult<()>;

    async fn list_users(&self) -> DirResult<Vec<User>>;
    async fn create_user(&self, u: User, password: Option<&str>) -> DirResult<User>;
    async fn update_user(&self, u: User, password: Option<&str>) -> DirResult<User>;
    async fn delete_user(&self, id: &str) -> DirResult<()>;

    async fn list_groups(&self) -> DirResult<Vec<Group>>;
    async fn create_group(&self, g: Group) -> DirResult<Group>;
    async fn update_group(&self, g: Group) -> DirResult<Group>;
    async fn delete_group(&self, id: &str) -> DirResult<()>;

    async fn audit(&self, event: AuditEvent);
    async fn audit_log(&self, q: AuditQuery) -> DirResult<Vec<AuditEvent>>;
}

#[derive(Default)]
struct Mem {
    users: BTreeMap<String, (User, String)>,
    connections: BTreeMap<String, Connection>,
    groups: BTreeMap<String, Group>,
    permissions: HashMap<String, Permissions>,
    failures: HashMap<String, u32>,
    audit: Vec<AuditEvent>,
    next: u64,
}

/// An in-memory directory (plain-text passwords compared in constant time;
/// for tests and for running the web UI without a database).
#[derive(Default)]
pub struct MemoryDirectory {
    inner: Mutex<Mem>,
    /// Failed logins before an account locks (0 = never).
    pub lock_after: u32,
}

fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl MemoryDirectory {
    pub fn new(lock_after: u32) -> Self {
        MemoryDirectory {
            inner: Mutex::new(Mem::default()),
            lock_after,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mem> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_id(m: &mut Mem) -> String {
        m.next += 1;
        m.next.to_string()
    }

    /// Adds a user and returns it.
    pub fn add_user(&self, username: &str, password: &str, admin: bool) -> User {
        let mut m = self.lock();
        let id = Self::next_id(&mut m);
        let u = User {
            id: id.clone(),
            username: username.to_owned(),
            display_name: username.to_owned(),
            admin,
            ..Default::default()
        };
        m.users.insert(id, (u.clone(), password.to_owned()));
        u
    }

    /// Adds a connection usable by `users`.
    pub fn add_connection(&self, mut c: Connection, users: &[&str]) -> Connection {
        let mut m = self.lock();
        c.id = Self::next_id(&mut m);
        m.permissions.insert(
            c.id.clone(),
            Permissions {
                users: users.iter().map(|s| (*s).to_owned()).collect(),
                groups: Vec::new(),
            },
        );
        m.connections.insert(c.id.clone(), c.clone());
        c
    }

    pub fn events(&self) -> Vec<AuditEvent> {
        self.lock().audit.clone()
    }
}

#[async_trait::async_trait]
impl Directory for MemoryDirectory {
    async fn login(
        &self,
        username: &str,
        password: &str,
        _totp: Option<&str>,
        _remote_addr: &str,
    ) -> Result<User, LoginError> {
        let mut m = self.lock();
        let found = m
            .users
            .values()
            .find(|(u, _)| u.username == username)
            .cloned();
        let Some((user, pw)) = found else {
            return Err(LoginError::InvalidCredentials);
        };
        let failures = m.failures.get(&user.id).copied().unwrap_or(0);
        if user.disabled || (self.lock_after > 0 && failures >= self.lock_after) {
            return Err(LoginError::Locked);
        }
        if ct_eq(&pw, password) {
            m.failures.remove(&user.id);
            Ok(user)
        } else {
            let n = failures + 1;
            m.failures.insert(user.id.clone(), n);
            if self.lock_after > 0 && n >= self.lock_after {
                Err(LoginError::Locked)
            } else {
                Err(LoginError::InvalidCredentials)
            }
        }
    }

    async fn user(&self, id: &str) -> DirResult<Option<User>> {
        Ok(self.lock().users.get(id).map(|(u, _)| u.clone()))
    }

    async fn external_user(&self, username: &str, display_name: &str) -> DirResult<User> {
        if let Some((u, _)) = self
            .lock()
            .users
            .values()
            .find(|(u, _)| u.username == username)
        {
            return Ok(u.clone());
        }
        let mut u = self.add_user(username, "", false);
        u.display_name = display_name.to_owned();
        let mut m = self.lock();
        if let Some(e) = m.users.get_mut(&u.id) {
            e.0.display_name = display_name.to_owned();
        }
        Ok(u)
    }

    async fn change_password(
        &self,
        user_id: &str,
        current: &str,
        new: &str,
    ) -> Result<(), LoginError> {
        let mut m = self.lock();
        match m.users.get_mut(user_id) {
            Some((u, pw)) if ct_eq(pw, current) => {
                *pw = new.to_owned();
                u.must_change_password = false;
                Ok(())
            }
            _ => Err(LoginError::InvalidCredentials),
        }
    }

    async fn connections_for(&self, user: &User) -> DirResult<Vec<Connection>> {
        let m = self.lock();
        Ok(m.connections
            .values()
            .filter(|c| user.admin || allowed(&m, user, &c.id))
            .cloned()
            .collect())
    }

    async fn may_use(&self, user: &User, connection_id: &str) -> DirResult<bool> {
        let m = self.lock();
        Ok(m.connections.contains_key(connection_id)
            && (user.admin || allowed(&m, user, connection_id)))
    }

    async fn connection(&self, id: &str) -> DirResult<Option<Connection>> {
        Ok(self.lock().connections.get(id).cloned())
    }

    async fn list_connections(&self) -> DirResult<Vec<Connection>> {
        Ok(self.lock().connections.values().cloned().collect())
    }

    async fn create_connection(&self, c: Connection) -> DirResult<Connection> {
        Ok(self.add_connection(c, &[]))
    }

    async fn update_connection(&self, c: Connection) -> DirResult<Connection> {
        let mut m = self.lock();
        match m.connections.get_mut(&c.id) {
            Some(e) => {
                *e = c.clone();
                Ok(c)
            }
            None => Err(DirError::NotFound),
        }
    }

    async fn delete_connection(&self, id: &str) -> DirResult<()> {
        self.lock()
            .connections
            .remove(id)
            .map(|_| ())
            .ok_or(DirError::NotFound)
    }

    async fn permissions(&self, connection_id: &str) -> DirResult<Permissions> {
        Ok(self
            .lock()
            .permissions
            .get(connection_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn set_permissions(&self, connection_id: &str, p: Permissions) -> DirResult<()> {
        self.lock().permissions.insert(connection_id.to_owned(), p);
        Ok(())
    }

    async fn list_users(&self) -> DirResult<Vec<User>> {
        Ok(self.lock().users.values().map(|(u, _)| u.clone()).collect())
    }

    async fn create_user(&self, u: User, password: Option<&str>) -> DirResult<User> {
        if self
            .lock()
            .users
            .values()
            .any(|(x, _)| x.username == u.username)
        {
            return Err(DirError::Conflict("A user with this name exists.".into()));
        }
        let mut created = self.add_user(&u.username, password.unwrap_or(""), u.admin);
        created.display_name = u.display_name.clone();
        created.disabled = u.disabled;
        created.must_change_password = u.must_change_password;
        self.update_user(created, None).await
    }

    async fn update_user(&self, u: User, password: Option<&str>) -> DirResult<User> {
        let mut m = self.lock();
        match m.users.get_mut(&u.id) {
            Some((e, pw)) => {
                *e = u.clone();
                if let Some(p) = password {
                    *pw = p.to_owned();
                }
                Ok(u)
            }
            None => Err(DirError::NotFound),
        }
    }

    async fn delete_user(&self, id: &str) -> DirResult<()> {
        self.lock()
            .users
            .remove(id)
            .map(|_| ())
            .ok_or(DirError::NotFound)
    }

    async fn list_groups(&self) -> DirResult<Vec<Group>> {
        Ok(self.lock().groups.values().cloned().collect())
    }

    async fn create_group(&self, mut g: Group) -> DirResult<Group> {
        let mut m = self.lock();
        g.id = Self::next_id(&mut m);
        m.groups.insert(g.id.clone(), g.clone());
        Ok(g)
    }

    async fn update_group(&self, g: Group) -> DirResult<Group> {
        let mut m = self.lock();
        match m.groups.get_mut(&g.id) {
            Some(e) => {
                *e = g.clone();
                Ok(g)
            }
            None => Err(DirError::NotFound),
        }
    }

    async fn delete_group(&self, id: &str) -> DirResult<()> {
        self.lock()
            .groups
            .remove(id)
            .map(|_| ())
            .ok_or(DirError::NotFound)
    }

    async fn audit(&self, mut event: AuditEvent) {
        let mut m = self.lock();
        event.id = Self::next_id(&mut m);
        if event.time.is_empty() {
            event.time = crate::now_rfc3339();
        }
        m.audit.push(event);
    }

    async fn audit_log(&self, q: AuditQuery) -> DirResult<Vec<AuditEvent>> {
        let m = self.lock();
        let limit = if q.limit == 0 { 100 } else { q.limit };
        Ok(m.audit
            .iter()
            .rev()
            .filter(|e| q.kind.as_deref().is_none_or(|k| e.kind == k))
            .filter(|e| q.user.as_deref().is_none_or(|u| e.username == u))
            .filter(|e| {
                q.before
                    .as_deref()
                    .is_none_or(|b| e.id.parse::<u64>().ok() < b.parse::<u64>().ok())
            })
            .take(limit)
            .cloned()
            .collect())
    }
}

fn allowed(m: &Mem, user: &User, connection_id: &str) -> bool {
    let Some(p) = m.permissions.get(connection_id) else {
        return false;
    };
    p.users.iter().any(|u| u == &user.id)
        || m.groups
            .values()
            .any(|g| p.groups.contains(&g.id) && g.members.contains(&user.id))
}
