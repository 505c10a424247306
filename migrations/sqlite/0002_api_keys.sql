-- API keys for the SCF API. The secret key is kept as it is: TC3 signatures can only be
-- verified with it (it cannot be hashed), so this file must be protected like the keys.

CREATE TABLE api_keys (
    secret_id   TEXT    PRIMARY KEY,
    secret_key  TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
