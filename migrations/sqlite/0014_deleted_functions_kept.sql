-- A deleted function's events stay readable for 72 hours, as on SCF (GetRequestStatus,
-- GetAsyncEventStatus, ListAsyncEvents), while its name is free at once for a new function.
-- So a deletion marks the row (`deleted_at`) and the sweeper removes it, with its events,
-- once the 72 hours have passed; names are unique among the functions not deleted.
--
-- SQLite cannot drop the table's UNIQUE (region, namespace, name) constraint, so the table is
-- rebuilt the way SQLite documents (https://sqlite.org/lang_altertable.html#otheralter); the
-- migrations run with foreign keys off, so dropping the old table cascades nowhere, and the
-- tables that refer to `functions` keep their references by name. Function ids become
-- AUTOINCREMENT on the way, as event ids did: a deleted function's id, which the engine
-- remembers to keep its claimed events from starting, is never handed to a new function.

CREATE TABLE functions_new (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    region            TEXT    NOT NULL,
    namespace         TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    runtime           TEXT    NOT NULL,
    handler           TEXT    NOT NULL,
    description       TEXT    NOT NULL DEFAULT '',
    memory_size       INTEGER NOT NULL,
    timeout           INTEGER NOT NULL,
    environment       TEXT    NOT NULL DEFAULT '[]',
    async_run_enable  INTEGER NOT NULL CHECK (async_run_enable IN (0, 1)),
    trace_enable      INTEGER NOT NULL CHECK (trace_enable IN (0, 1)),
    retry_num         INTEGER NOT NULL,
    msg_ttl           INTEGER NOT NULL,
    qps_limit         INTEGER NOT NULL DEFAULT 1000,
    trace_disabled_at INTEGER,
    created_at        INTEGER NOT NULL,
    modified_at       INTEGER NOT NULL,
    reserved_mem      INTEGER,
    public_net        INTEGER NOT NULL DEFAULT 1,
    -- When the function was deleted (NULL: it was not).
    deleted_at        INTEGER,
    FOREIGN KEY (region, namespace) REFERENCES namespaces (region, name)
);

INSERT INTO functions_new (id, region, namespace, name, runtime, handler, description,
    memory_size, timeout, environment, async_run_enable, trace_enable, retry_num, msg_ttl,
    qps_limit, trace_disabled_at, created_at, modified_at, reserved_mem, public_net)
SELECT id, region, namespace, name, runtime, handler, description,
    memory_size, timeout, environment, async_run_enable, trace_enable, retry_num, msg_ttl,
    qps_limit, trace_disabled_at, created_at, modified_at, reserved_mem, public_net
FROM functions;

DROP TABLE functions;
ALTER TABLE functions_new RENAME TO functions;

CREATE UNIQUE INDEX functions_by_name ON functions (region, namespace, name)
    WHERE deleted_at IS NULL;
-- The list shows the newest functions first.
CREATE INDEX functions_by_created ON functions (region, namespace, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
-- Deleted functions, by name (their events are still asked for) and by age (the sweeper).
CREATE INDEX functions_deleted ON functions (region, namespace, name, deleted_at)
    WHERE deleted_at IS NOT NULL;

CREATE TRIGGER functions_rollups_delete AFTER DELETE ON functions BEGIN
    DELETE FROM event_rollups WHERE function_id = OLD.id;
    DELETE FROM event_durations WHERE function_id = OLD.id;
END;

-- A deleted function takes no new event: an invocation accepted as it was deleted is refused
-- at its insert, as the foreign key refused it when deleted functions were removed at once.
-- The message is the one the store maps back to "not found".
CREATE TRIGGER events_of_deleted_functions BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM functions WHERE id = NEW.function_id AND deleted_at IS NOT NULL)
BEGIN
    SELECT RAISE(ABORT, 'the function was deleted');
END;

