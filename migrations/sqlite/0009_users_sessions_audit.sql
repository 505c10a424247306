-- Console users, their sessions, API keys owned by users, and the audit log.
--
-- A user's name never changes, so it is the key that sessions, keys and audit entries name.
CREATE TABLE users (
    name          TEXT    PRIMARY KEY,
    -- An argon2id PHC string: the password itself is never kept.
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'developer', 'read-only')),
    created_at    INTEGER NOT NULL,
    -- Sessions opened before the password last changed are no longer valid.
    password_changed_at INTEGER NOT NULL
) WITHOUT ROWID;

-- A session is found by the SHA-256 of its cookie, so a copy of this file does not log anyone
-- in. Deleting a user ends their sessions.
CREATE TABLE sessions (
    token_hash TEXT    PRIMARY KEY,
    user_name  TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_token TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    source     TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user_name);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Keys act with their owner's role, or read-only. Keys made before users existed get the first
-- admin as owner when it is created; deleting a user deletes their keys.
ALTER TABLE api_keys ADD COLUMN owner TEXT REFERENCES users (name) ON DELETE CASCADE;
ALTER TABLE api_keys ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1));
CREATE INDEX api_keys_by_owner ON api_keys (owner);

-- Who did what to what, from where and when. Names are kept as text, not as references: the
-- trail outlives the users, keys and functions it names.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    -- 'user' (the console), 'key' (the SCF API; actor is the SecretId) or 'system'.
    via     TEXT    NOT NULL,
    source  TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    outcome TEXT    NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (at);
