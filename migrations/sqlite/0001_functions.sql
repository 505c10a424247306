-- Namespaces, functions and their code. Times are Unix milliseconds.

CREATE TABLE namespaces (
    region      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (region, name)
) WITHOUT ROWID;

CREATE TABLE functions (
    id                INTEGER PRIMARY KEY,
    region            TEXT    NOT NULL,
    namespace         TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    runtime           TEXT    NOT NULL,
    handler           TEXT    NOT NULL,
    description       TEXT    NOT NULL DEFAULT '',
    memory_size       INTEGER NOT NULL,
    timeout           INTEGER NOT NULL,
    -- JSON list of {"Key", "Value"}, as SCF's Environment.Variables.
    environment       TEXT    NOT NULL DEFAULT '[]',
    async_run_enable  INTEGER NOT NULL CHECK (async_run_enable IN (0, 1)),
    trace_enable      INTEGER NOT NULL CHECK (trace_enable IN (0, 1)),
    retry_num         INTEGER NOT NULL,
    msg_ttl           INTEGER NOT NULL,
    qps_limit         INTEGER NOT NULL DEFAULT 1000,
    trace_disabled_at INTEGER,
    created_at        INTEGER NOT NULL,
    modified_at       INTEGER NOT NULL,
    UNIQUE (region, namespace, name),
    FOREIGN KEY (region, namespace) REFERENCES namespaces (region, name)
);

-- The list shows the newest functions first.
CREATE INDEX functions_by_created ON functions (region, namespace, created_at DESC, id DESC);

CREATE TABLE function_files (
    function_id INTEGER NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    path        TEXT    NOT NULL,
    content     BLOB    NOT NULL,
    PRIMARY KEY (function_id, path)
) WITHOUT ROWID;
