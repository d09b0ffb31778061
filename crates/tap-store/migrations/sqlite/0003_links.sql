-- Multi-account links (SPEC §3.6): another team lets an agent use its credentials through a role.
CREATE TABLE links (
    team_id      INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    home_team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    agent_id     TEXT NOT NULL,
    role         TEXT,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (team_id, home_team_id, agent_id)
);
