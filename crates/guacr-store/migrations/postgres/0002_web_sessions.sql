-- Web login sessions, shared by every instance on this database (a login
-- survives a restart and works behind a load balancer). The cookie's random
-- id is stored only as its SHA-256; times are Unix milliseconds.
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    csrf TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
