-- A function's Monitoring tab: how long events waited in the queue, and how many ran at once,
-- per minute, beside the counts and run times the rollups already keep.

-- The upper bounds (ms) of the time histograms, in one place for every trigger that fills one.
CREATE TABLE time_buckets (upper INTEGER PRIMARY KEY) WITHOUT ROWID;
INSERT INTO time_buckets (upper) VALUES
    (10), (25), (50), (100), (250), (500), (1000), (2500), (5000), (10000), (30000), (60000),
    (300000), (900000), (3600000), (86400000);

-- Run times take their bucket from the same table now.
DROP TRIGGER events_duration_ended;
CREATE TRIGGER events_duration_ended AFTER UPDATE OF status ON events
WHEN NEW.traced = 1 AND NEW.status IN (2, 3, 4) AND OLD.status NOT IN (2, 3, 4)
     AND NEW.started_at IS NOT NULL AND NEW.ended_at IS NOT NULL BEGIN
    INSERT INTO event_durations (function_id, minute, bucket, count)
    VALUES (NEW.function_id, NEW.enqueued_at / 60000,
        COALESCE((SELECT MIN(upper) FROM time_buckets
                  WHERE upper >= NEW.ended_at - NEW.started_at), 86400000), 1)
    ON CONFLICT DO UPDATE SET count = count + 1;
END;

-- Time from accept to first leaving the queue (the first claim) of traced events, in
-- buckets, per minute of enqueue: the source of the queue wait percentiles. Only the first
-- claim finds no start time: an event put back (waiting for room, a server stopping) or
-- retried keeps its last one.
CREATE TABLE event_waits (
    function_id INTEGER NOT NULL,
    minute      INTEGER NOT NULL,
    bucket      INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (function_id, minute, bucket)
) WITHOUT ROWID;

CREATE TRIGGER events_wait_started AFTER UPDATE OF status ON events
WHEN NEW.traced = 1 AND OLD.status = 0 AND NEW.status = 1 AND OLD.started_at IS NULL
     AND NEW.started_at IS NOT NULL BEGIN
    INSERT INTO event_waits (function_id, minute, bucket, count)
    VALUES (NEW.function_id, NEW.enqueued_at / 60000,
        COALESCE((SELECT MIN(upper) FROM time_buckets
                  WHERE upper >= NEW.started_at - NEW.enqueued_at), 86400000), 1)
    ON CONFLICT DO UPDATE SET count = count + 1;
END;

-- The most events of a function running at once in a minute, as each node counted them when
-- they started. The nodes' peaks added up bound the function's from above (they need not
-- have come at the same moment).
CREATE TABLE function_concurrency (
    function_id INTEGER NOT NULL,
    minute      INTEGER NOT NULL,
    node        TEXT    NOT NULL,
    peak        INTEGER NOT NULL,
    PRIMARY KEY (function_id, minute, node)
) WITHOUT ROWID;

DROP TRIGGER functions_rollups_delete;
CREATE TRIGGER functions_rollups_delete AFTER DELETE ON functions BEGIN
    DELETE FROM event_rollups WHERE function_id = OLD.id;
    DELETE FROM event_durations WHERE function_id = OLD.id;
    DELETE FROM event_waits WHERE function_id = OLD.id;
    DELETE FROM function_concurrency WHERE function_id = OLD.id;
END;
