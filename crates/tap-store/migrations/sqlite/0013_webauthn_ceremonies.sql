-- WebAuthn ceremonies in progress (registration, approval by passkey,
-- passkey sign-in): begun on one process, finished on any. Short-lived
-- (minutes), taken out once; `state` is the library's server-side state
-- (it holds the challenge), `NULL` for a decoy sign-in. No foreign key: a
-- decoy has no account, and an expired row is swept on the next put.
CREATE TABLE webauthn_ceremonies (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    state        TEXT,
    account_id   INTEGER,
    name         TEXT,
    txn_id       TEXT,
    request_hash TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
CREATE INDEX webauthn_ceremonies_kind ON webauthn_ceremonies (kind, created_at);
