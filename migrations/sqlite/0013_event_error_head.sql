-- The first line of a failed event's error, cut at 200 characters: what Event Management's
-- top errors group by and its error filter matches. Kept apart from the error itself (up to
-- 64 KB) and in a covering index of failed events, so grouping the latest ten thousand reads
-- the index only, never the events' large columns.
ALTER TABLE events ADD COLUMN error_head TEXT;

UPDATE events SET error_head = substr(
    CASE WHEN instr(error, char(10)) > 0 THEN substr(error, 1, instr(error, char(10)) - 1)
         ELSE error END, 1, 200)
WHERE status = 3 AND error IS NOT NULL;

-- Status and trace are columns of the index too: SQLite reads a partial index's own condition
-- from the table otherwise, and the index would not cover the query; the invocation type lets
-- the statistics follow the type filter from the index alone.
CREATE INDEX events_failed_errors
ON events (function_id, status, traced, enqueued_at, invoke_type, error_head)
WHERE status = 3;
