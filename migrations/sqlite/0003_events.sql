-- Async events and their timelines. Times are Unix milliseconds; status is
-- 0 queued, 1 running, 2 finished, 3 failed, 4 aborted.

CREATE TABLE events (
    id            INTEGER PRIMARY KEY,
    request_id    TEXT    NOT NULL UNIQUE,
    function_id   INTEGER NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
    qualifier     TEXT    NOT NULL DEFAULT '$LATEST',
    invoke_type   TEXT    NOT NULL,
    status        INTEGER NOT NULL CHECK (status BETWEEN 0 AND 4),
    status_code   INTEGER,
    attempt       INTEGER NOT NULL DEFAULT 1,
    -- Status trace was on when the event was accepted: only traced events are shown and
    -- kept; untraced ones are deleted as soon as they end.
    traced        INTEGER NOT NULL CHECK (traced IN (0, 1)),
    payload       TEXT    NOT NULL,
    result        TEXT,
    error         TEXT,
    logs          TEXT,
    enqueued_at   INTEGER NOT NULL,
    started_at    INTEGER,
    ended_at      INTEGER,
    -- Not claimable before this time (retry backoff).
    run_after     INTEGER NOT NULL,
    -- A running event whose lease ran out belongs to a dead process.
    lease_until   INTEGER,
    -- 'force' or 'grace' once a user asked to terminate it.
    terminate     TEXT
);

-- The queue: only queued events, oldest first.
CREATE INDEX events_queue ON events (run_after, id) WHERE status = 0;
-- Running events, for recovery.
CREATE INDEX events_running ON events (lease_until) WHERE status = 1;
CREATE INDEX events_by_function ON events (function_id, enqueued_at DESC, id DESC);

-- Transitions after the first (queued, read from the event itself), in insertion order.
CREATE TABLE event_timeline (
    id       INTEGER PRIMARY KEY,
    event_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    at       INTEGER NOT NULL,
    status   INTEGER NOT NULL,
    detail   TEXT    NOT NULL
);
CREATE INDEX event_timeline_by_event ON event_timeline (event_id, id);

-- Namespace billing state: a suspended namespace, or one whose invocation quota is used up,
-- is "in arrears" and its invocations are refused.
ALTER TABLE namespaces ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
ALTER TABLE namespaces ADD COLUMN invocation_quota INTEGER;
ALTER TABLE namespaces ADD COLUMN invocations_used INTEGER NOT NULL DEFAULT 0;
