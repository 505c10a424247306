-- The nodes serving this store: each one's heartbeat says it is alive and what it runs, and
-- the System page lists them. A node that stops removes its row; one that died is removed an
-- hour after its last heartbeat.
CREATE TABLE nodes (
    id           TEXT    PRIMARY KEY,
    address      TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    running      INTEGER NOT NULL
) WITHOUT ROWID;
