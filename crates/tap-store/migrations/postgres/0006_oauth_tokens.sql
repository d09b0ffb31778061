-- Shared OAuth 2 access tokens (SPEC §6.3): one token call across replicas.
-- The token is sealed with the team's data key like values; it counts only
-- while the credential's sealed value is still value_sealed (a value set
-- again, or a rotated refresh token persisted, is a new sealed value). The
-- lease names the replica calling the token endpoint; others wait and read.
CREATE TABLE oauth_tokens (
    team_id          BIGINT NOT NULL,
    name             TEXT COLLATE "C" NOT NULL,
    sealed_token     BYTEA,
    until_ms         BIGINT NOT NULL DEFAULT 0,
    value_sealed     BYTEA,
    lease_holder     TEXT,
    lease_until      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, name)
);
