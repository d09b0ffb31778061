-- Shared OAuth 2 access tokens (SPEC §6.3); see the PostgreSQL migration.
-- One process owns a SQLite file, so the lease only ever passes within it.
CREATE TABLE oauth_tokens (
    team_id          INTEGER NOT NULL,
    name             TEXT NOT NULL,
    sealed_token     BLOB,
    until_ms         INTEGER NOT NULL DEFAULT 0,
    value_sealed     BLOB,
    lease_holder     TEXT,
    lease_until      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, name)
);
