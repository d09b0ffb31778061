-- Agent rate limits counted in the store (SPEC §15: a sliding hour shared by
-- every replica): one row per counted request, pruned as the window slides.
-- Counting locks the agent (pg_advisory_xact_lock), so N means N.
CREATE TABLE rate_events (
    team_id  BIGINT NOT NULL,
    agent_id TEXT COLLATE "C" NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX rate_events_by_agent ON rate_events (team_id, agent_id, at);
