-- Per-minute rollups of events, kept by triggers with every transition, so statistics and
-- totals never count rows of the events table. A row counts the events accepted in that
-- minute (by enqueue time) that are now in that status, per invocation type.
CREATE TABLE event_rollups (
    function_id INTEGER NOT NULL,
    minute      INTEGER NOT NULL,
    status      INTEGER NOT NULL,
    invoke_type TEXT    NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (function_id, minute, status, invoke_type)
) WITHOUT ROWID;

-- Run times of ended events in buckets (upper bounds in milliseconds), per minute of enqueue:
-- the source of the p50/p95 durations.
CREATE TABLE event_durations (
    function_id INTEGER NOT NULL,
    minute      INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (function_id, minute, bucket)
) WITHOUT ROWID;

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

-- Lists filter by status and sort by start (enqueue) or end time, newest first by default.
CREATE INDEX events_by_function_status ON events (function_id, status, enqueued_at, id);
CREATE INDEX events_by_function_end ON events (function_id, ended_at, id);

CREATE TRIGGER functions_rollups_delete AFTER DELETE ON functions BEGIN
    DELETE FROM event_rollups WHERE function_id = OLD.id;
    DELETE FROM event_durations WHERE function_id = OLD.id;
END;
