-- Event ids are never reused. With a plain INTEGER PRIMARY KEY, SQLite gives the next insert
-- the largest id plus one, so deleting the newest event (its function was deleted while it ran)
-- handed its id to the next event of another function, and the orphaned run's late writes
-- landed there. AUTOINCREMENT keeps every id ever used out of reach. SQLite cannot add it to a
-- table, so events and their timelines move to new tables; the rollups keep their counts (the
-- triggers are dropped before the copy and created again after it).

DROP TRIGGER events_rollup_insert;
DROP TRIGGER events_rollup_status;
DROP TRIGGER events_duration_ended;
DROP TRIGGER events_rollup_delete;
DROP INDEX events_queue;
DROP INDEX events_running;
DROP INDEX events_by_function;
DROP INDEX events_by_function_status;
DROP INDEX events_by_function_end;
DROP INDEX events_ended;
DROP INDEX event_timeline_by_event;

-- Renaming also points the old timeline's foreign key at the old events table.
ALTER TABLE event_timeline RENAME TO event_timeline_old;
ALTER TABLE events RENAME TO events_old;

CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id    TEXT    NOT NULL UNIQUE,
    function_id   INTEGER NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    qualifier     TEXT    NOT NULL DEFAULT '$LATEST',
    invoke_type   TEXT    NOT NULL,
    status        INTEGER NOT NULL CHECK (status BETWEEN 0 AND 4),
    status_code   INTEGER,
    attempt       INTEGER NOT NULL DEFAULT 1,
    traced        INTEGER NOT NULL CHECK (traced IN (0, 1)),
    payload       TEXT    NOT NULL,
    result        TEXT,
    error         TEXT,
    logs          TEXT,
    enqueued_at   INTEGER NOT NULL,
    started_at    INTEGER,
    ended_at      INTEGER,
    run_after     INTEGER NOT NULL,
    lease_until   INTEGER,
    terminate     TEXT
);
INSERT INTO events (id, request_id, function_id, qualifier, invoke_type, status, status_code,
                    attempt, traced, payload, result, error, logs, enqueued_at, started_at,
                    ended_at, run_after, lease_until, terminate)
SELECT id, request_id, function_id, qualifier, invoke_type, status, status_code, attempt,
       traced, payload, result, error, logs, enqueued_at, started_at, ended_at, run_after,
       lease_until, terminate
FROM events_old;

CREATE TABLE event_timeline (
    id       INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    at       INTEGER NOT NULL,
    status   INTEGER NOT NULL,
    detail   TEXT    NOT NULL
);
INSERT INTO event_timeline (id, event_id, at, status, detail)
SELECT id, event_id, at, status, detail FROM event_timeline_old;

DROP TABLE event_timeline_old;
DROP TABLE events_old;

CREATE INDEX events_queue ON events (run_after, id) WHERE status = 0;
CREATE INDEX events_running ON events (lease_until) WHERE status = 1;
CREATE INDEX events_by_function ON events (function_id, enqueued_at DESC, id DESC);
CREATE INDEX events_by_function_status ON events (function_id, status, enqueued_at, id);
CREATE INDEX events_by_function_end ON events (function_id, ended_at, id);
CREATE INDEX events_ended ON events (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX event_timeline_by_event ON event_timeline (event_id, id);

CREATE TRIGGER events_rollup_insert AFTER INSERT ON events WHEN NEW.traced = 1 BEGIN
    INSERT INTO event_rollups (function_id, minute, status, invoke_type, count)
    VALUES (NEW.function_id, NEW.enqueued_at / 60000, NEW.status, NEW.invoke_type, 1)
    ON CONFLICT DO UPDATE SET count = count + 1;
END;

CREATE TRIGGER events_rollup_status AFTER UPDATE OF status ON events
WHEN NEW.traced = 1 AND OLD.status != NEW.status BEGIN
    UPDATE event_rollups SET count = count - 1
    WHERE function_id = OLD.function_id AND minute = OLD.enqueued_at / 60000
      AND status = OLD.status AND invoke_type = OLD.invoke_type;
    INSERT INTO event_rollups (function_id, minute, status, invoke_type, count)
    VALUES (NEW.function_id, NEW.enqueued_at / 60000, NEW.status, NEW.invoke_type, 1)
    ON CONFLICT DO UPDATE SET count = count + 1;
END;

CREATE TRIGGER events_duration_ended AFTER UPDATE OF status ON events
WHEN NEW.traced = 1 AND NEW.status IN (2, 3, 4) AND OLD.status NOT IN (2, 3, 4)
     AND NEW.started_at IS NOT NULL AND NEW.ended_at IS NOT NULL BEGIN
    INSERT INTO event_durations (function_id, minute, bucket, count)
    VALUES (NEW.function_id, NEW.enqueued_at / 60000,
        CASE
            WHEN NEW.ended_at - NEW.started_at <= 10 THEN 10
            WHEN NEW.ended_at - NEW.started_at <= 25 THEN 25
            WHEN NEW.ended_at - NEW.started_at <= 50 THEN 50
            WHEN NEW.ended_at - NEW.started_at <= 100 THEN 100
            WHEN NEW.ended_at - NEW.started_at <= 250 THEN 250
            WHEN NEW.ended_at - NEW.started_at <= 500 THEN 500
            WHEN NEW.ended_at - NEW.started_at <= 1000 THEN 1000
            WHEN NEW.ended_at - NEW.started_at <= 2500 THEN 2500
            WHEN NEW.ended_at - NEW.started_at <= 5000 THEN 5000
            WHEN NEW.ended_at - NEW.started_at <= 10000 THEN 10000
            WHEN NEW.ended_at - NEW.started_at <= 30000 THEN 30000
            WHEN NEW.ended_at - NEW.started_at <= 60000 THEN 60000
            WHEN NEW.ended_at - NEW.started_at <= 300000 THEN 300000
            WHEN NEW.ended_at - NEW.started_at <= 900000 THEN 900000
            WHEN NEW.ended_at - NEW.started_at <= 3600000 THEN 3600000
            ELSE 86400000
        END, 1)
    ON CONFLICT DO UPDATE SET count = count + 1;
END;

CREATE TRIGGER events_rollup_delete AFTER DELETE ON events WHEN OLD.traced = 1 BEGIN
    UPDATE event_rollups SET count = count - 1
    WHERE function_id = OLD.function_id AND minute = OLD.enqueued_at / 60000
      AND status = OLD.status AND invoke_type = OLD.invoke_type;
END;

-- A scratch row the store commits and removes to learn whether the disk takes writes again.
CREATE TABLE store_probe (
    id   INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
