-- TAP schema v1 (SQLite). Values are sealed; keys and tokens are keyed hashes.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE config_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO config_revision (id, revision) VALUES (1, 1);

CREATE TABLE teams (
    id                    INTEGER PRIMARY KEY,
    slug                  TEXT NOT NULL UNIQUE,
    default_approval_mode TEXT NOT NULL,
    dek_id                TEXT NOT NULL,
    wrapped_dek           BLOB NOT NULL,
    created_at            INTEGER NOT NULL
);

CREATE TABLE accounts (
    id               INTEGER PRIMARY KEY,
    email            TEXT NOT NULL UNIQUE,
    password_hash    TEXT NOT NULL,
    telegram_user_id TEXT,
    created_at       INTEGER NOT NULL
);

CREATE TABLE members (
    team_id    INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, account_id)
);

CREATE TABLE member_credentials (
    team_id    INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    credential TEXT NOT NULL,
    PRIMARY KEY (team_id, account_id, credential),
    FOREIGN KEY (team_id, account_id) REFERENCES members(team_id, account_id) ON DELETE CASCADE
);

CREATE TABLE admin_tokens (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);

CREATE TABLE agents (
    team_id             INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    id                  TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    enabled             INTEGER NOT NULL DEFAULT 1,
    key_hash            TEXT NOT NULL UNIQUE,
    rate_limit_per_hour INTEGER,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (team_id, id)
);

CREATE TABLE agent_roles (
    team_id  INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    role     TEXT NOT NULL,
    PRIMARY KEY (team_id, agent_id, role),
    FOREIGN KEY (team_id, agent_id) REFERENCES agents(team_id, id) ON DELETE CASCADE
);

CREATE TABLE agent_credentials (
    team_id    INTEGER NOT NULL,
    agent_id   TEXT NOT NULL,
    credential TEXT NOT NULL,
    PRIMARY KEY (team_id, agent_id, credential),
    FOREIGN KEY (team_id, agent_id) REFERENCES agents(team_id, id) ON DELETE CASCADE
);

CREATE TABLE credentials (
    team_id            INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    description        TEXT NOT NULL DEFAULT '',
    connector          TEXT NOT NULL DEFAULT 'direct',
    api_base           TEXT,
    relative_target    INTEGER NOT NULL DEFAULT 0,
    auth_header_format TEXT,
    auth_bindings      TEXT NOT NULL DEFAULT '[]',
    allowed_hosts      TEXT NOT NULL DEFAULT '[]',
    allow_any_host     INTEGER NOT NULL DEFAULT 0,
    sealed_value       BLOB,
    value_is_json      INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (team_id, name)
);

CREATE TABLE roles (
    team_id             INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    rate_limit_per_hour INTEGER,
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (team_id, name)
);

CREATE TABLE role_credentials (
    team_id    INTEGER NOT NULL,
    role       TEXT NOT NULL,
    credential TEXT NOT NULL,
    PRIMARY KEY (team_id, role, credential),
    FOREIGN KEY (team_id, role) REFERENCES roles(team_id, name) ON DELETE CASCADE
);

CREATE TABLE policies (
    team_id    INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    credential TEXT NOT NULL,
    policy     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, credential)
);

-- Hash-chained per team. `record` is the exact JSON that was hashed.
CREATE TABLE audit (
    team_id    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    phase      TEXT NOT NULL,
    request_id TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    credential TEXT,
    ts         TEXT NOT NULL,
    record     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    row_hash   TEXT NOT NULL,
    PRIMARY KEY (team_id, seq)
);
CREATE INDEX audit_by_request ON audit (team_id, request_id);
CREATE INDEX audit_by_agent ON audit (team_id, agent_id, seq);

-- Where verification starts after retention deleted the oldest rows.
CREATE TABLE audit_anchor (
    team_id     INTEGER PRIMARY KEY,
    anchor_hash TEXT NOT NULL,
    first_seq   INTEGER NOT NULL
);
