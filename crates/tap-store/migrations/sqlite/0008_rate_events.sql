-- Agent rate limits counted in the store (SPEC §15: a sliding hour shared by
-- every replica): one row per counted request, pruned as the window slides.
CREATE TABLE rate_events (
    team_id  INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    at       INTEGER NOT NULL
);
CREATE INDEX rate_events_by_agent ON rate_events (team_id, agent_id, at);
