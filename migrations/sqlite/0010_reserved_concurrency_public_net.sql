-- A function's reserved concurrency, in MB of memory as SCF counts it (NULL: none), and
-- whether its instances may reach the network (SCF's PublicNetConfig, on by default).
ALTER TABLE functions ADD COLUMN reserved_mem INTEGER;
ALTER TABLE functions ADD COLUMN public_net INTEGER NOT NULL DEFAULT 1;

-- Claims take queued events function by function (a fair share each, and no more than a
-- function may run), so they find each function's oldest ready events by an index seek,
-- whatever the backlog of the others.
CREATE INDEX events_queue_by_function ON events (function_id, run_after, id) WHERE status = 0;
