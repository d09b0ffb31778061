-- Approvals, votes, grants and member sessions (SPEC §5, §11, §4).

CREATE TABLE approvals (
    txn_id             TEXT PRIMARY KEY,
    team_id            INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    agent_team_id      INTEGER NOT NULL,
    agent_id           TEXT NOT NULL,
    credential         TEXT NOT NULL,
    credential_version INTEGER NOT NULL,
    method             TEXT NOT NULL,
    target             TEXT NOT NULL,
    request            TEXT NOT NULL,
    request_hash       TEXT NOT NULL,
    status             TEXT NOT NULL,
    policy_reason      TEXT NOT NULL,
    min_approvals      INTEGER NOT NULL,
    channels           TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    decided_at         INTEGER,
    error_code         TEXT,
    response           TEXT
);
CREATE INDEX approvals_by_status ON approvals (status, expires_at);
CREATE INDEX approvals_by_agent ON approvals (agent_team_id, agent_id, status);

CREATE TABLE approval_votes (
    txn_id   TEXT NOT NULL REFERENCES approvals(txn_id) ON DELETE CASCADE,
    email    TEXT NOT NULL,
    decision TEXT NOT NULL,
    channel  TEXT NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (txn_id, email)
);

CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    team_id     INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    credential  TEXT NOT NULL,
    methods     TEXT NOT NULL,
    route_scope TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    max_uses    INTEGER,
    uses        INTEGER NOT NULL DEFAULT 0,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX grants_by_team ON grants (team_id, credential);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
