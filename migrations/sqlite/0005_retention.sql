-- The retention sweeper finds ended events oldest first.
CREATE INDEX events_ended ON events (ended_at) WHERE ended_at IS NOT NULL;
