-- Who made an invocation (a console user's name, or `API key <SecretId>`), and the event it
-- re-runs, if any: shown on the event's page and timeline, with links both ways.
ALTER TABLE events ADD COLUMN invoked_by TEXT;
ALTER TABLE events ADD COLUMN rerun_of TEXT;

-- An event's page lists its re-runs.
CREATE INDEX events_reruns ON events (rerun_of) WHERE rerun_of IS NOT NULL;
