-- guacr store schema v1 (SQLite). Keep in step with ../postgres/0001_init.sql.
-- Times are unix milliseconds (UTC); flags are 0/1.
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT,
    legacy_hash TEXT,
    admin INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    totp_secret TEXT,
    totp_pending TEXT,
    totp_last_step INTEGER,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    created INTEGER NOT NULL,
    last_login INTEGER
);
CREATE TABLE user_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE
);
CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members(user_id);
CREATE TABLE connections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    protocol TEXT NOT NULL,
    group_path TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL,
    UNIQUE (group_path, name)
);
CREATE TABLE connection_params (
    connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    encrypted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (connection_id, name)
);
CREATE TABLE connection_user_perms (
    connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (connection_id, user_id)
);
CREATE INDEX connection_user_perms_user ON connection_user_perms(user_id);
CREATE TABLE connection_group_perms (
    connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
    PRIMARY KEY (connection_id, group_id)
);
CREATE INDEX connection_group_perms_group ON connection_group_perms(group_id);
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    username TEXT,
    username_key TEXT,
    remote_addr TEXT,
    connection_id INTEGER,
    connection_name TEXT,
    protocol TEXT,
    session_id TEXT,
    bytes_in INTEGER,
    bytes_out INTEGER,
    duration_ms INTEGER,
    recording_path TEXT,
    detail TEXT
);
CREATE INDEX audit_events_time ON audit_events(time);
CREATE INDEX audit_events_kind ON audit_events(kind);
CREATE INDEX audit_events_user ON audit_events(username_key);
