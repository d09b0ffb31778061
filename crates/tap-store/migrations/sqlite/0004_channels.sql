-- Team notification channels (SPEC §4, §11): where approval requests are announced.
CREATE TABLE notification_channels (
    team_id    INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    chat_id    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, name)
);
