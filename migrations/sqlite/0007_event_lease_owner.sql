-- A claim names the node that holds the event, so that two scf-console processes on one store
-- can tell their runs apart: each renews only its own leases, finishing writes are fenced on
-- the owner as well as the attempt, and a node that is gone (its lease ran out, or its node
-- lock is free) is taken over without touching the runs of a live one. '' is no node: rows
-- running before this migration are taken over when their lease runs out.
ALTER TABLE events ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';

DROP INDEX events_running;
CREATE INDEX events_running ON events (lease_owner, lease_until) WHERE status = 1;
