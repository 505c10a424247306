-- An accept that would take its namespace past its invocation quota is refused by the
-- statement that stores it. The count is raised under the namespace's row lock, so batches of
-- several nodes count in turn, each from what the one before committed; a batch that goes
-- past the quota fails whole, and the engine then writes its accepts one by one, so exactly
-- those that fit are kept. The message is the one the store maps back to "quota used".
CREATE OR REPLACE FUNCTION events_after_insert() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_rollups (function_id, minute, status, invoke_type, count)
    SELECT function_id, enqueued_at / 60000, status, invoke_type, COUNT(*)
    FROM new_rows WHERE traced GROUP BY 1, 2, 3, 4;
    -- Each accepted invocation counts once against its namespace's invocation quota, in the
    -- statement that stores it. The namespaces are locked first, in key order (an ORDER BY
    -- under the UPDATE would not decide the order its join locks rows in), so two nodes'
    -- batches of the same namespaces never deadlock.
    PERFORM 1 FROM namespaces ns
    WHERE (ns.region, ns.name) IN (
        SELECT f.region, f.namespace FROM new_rows e JOIN functions f ON f.id = e.function_id)
    ORDER BY ns.region, ns.name FOR NO KEY UPDATE;
    UPDATE namespaces ns SET invocations_used = ns.invocations_used + c.n
    FROM (SELECT f.region, f.namespace, COUNT(*) AS n
          FROM new_rows e JOIN functions f ON f.id = e.function_id
          GROUP BY f.region, f.namespace) c
    WHERE ns.region = c.region AND ns.name = c.namespace;
    IF EXISTS (
        SELECT 1 FROM namespaces ns
        JOIN (SELECT DISTINCT f.region, f.namespace
              FROM new_rows e JOIN functions f ON f.id = e.function_id) c
          ON ns.region = c.region AND ns.name = c.namespace
        WHERE ns.invocations_used > ns.invocation_quota)
    THEN
        RAISE EXCEPTION 'the namespace has used its invocation quota' USING ERRCODE = 'P0001';
    END IF;
    RETURN NULL;
END
$$;

-- A deleted function takes no new event. Accepts hold the function's row in key-share mode,
-- which only a deletion (it locks the row FOR UPDATE first) waits for: saving a function's
-- configuration or code no longer stalls every node's accepts of it. A deletion waits for
-- accepts in flight to commit and then ends their events too, and an accept that comes
-- second sees the deletion.
CREATE OR REPLACE FUNCTION events_of_deleted_functions() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    deleted BIGINT;
BEGIN
    SELECT deleted_at INTO deleted FROM functions WHERE id = NEW.function_id FOR KEY SHARE;
    IF deleted IS NOT NULL THEN
        RAISE EXCEPTION 'the function was deleted' USING ERRCODE = 'P0002';
    END IF;
    RETURN NEW;
END
$$;
