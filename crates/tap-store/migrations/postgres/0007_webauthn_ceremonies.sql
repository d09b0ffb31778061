-- WebAuthn ceremonies in progress, so a ceremony begun on one replica is
-- finished on any other. Same as SQLite's 0013.
CREATE TABLE webauthn_ceremonies (
    id           TEXT COLLATE "C" PRIMARY KEY,
    kind         TEXT COLLATE "C" NOT NULL,
    state        TEXT COLLATE "C",
    account_id   BIGINT,
    name         TEXT COLLATE "C",
    txn_id       TEXT COLLATE "C",
    request_hash TEXT COLLATE "C",
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
CREATE INDEX webauthn_ceremonies_kind ON webauthn_ceremonies (kind, created_at);
