-- Telegram approvals (SPEC §11): who a Telegram user is, one-time link codes,
-- and the approval messages sent, keyed by the hash of their callback nonce so
-- any replica can resolve a click.
CREATE TABLE telegram_users (
    telegram_user_id INTEGER PRIMARY KEY,
    account_id       INTEGER NOT NULL UNIQUE REFERENCES accounts(id) ON DELETE CASCADE,
    linked_at        INTEGER NOT NULL
);

CREATE TABLE telegram_link_codes (
    code_hash  TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

CREATE TABLE telegram_messages (
    nonce_hash      TEXT PRIMARY KEY,
    txn_id          TEXT NOT NULL,
    chat_id         TEXT NOT NULL,
    message_id      INTEGER,
    text            TEXT NOT NULL,
    offers_grant    INTEGER NOT NULL DEFAULT 0,
    shown           TEXT NOT NULL DEFAULT '',
    closed          INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX telegram_messages_open ON telegram_messages (closed, next_attempt_at);
