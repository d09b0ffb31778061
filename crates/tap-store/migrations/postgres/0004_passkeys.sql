-- Passkeys (SPEC §11): WebAuthn credentials of member accounts (public
-- material only), and Telegram messages whose Approve is a link to the
-- approval page (require_passkey). Same as SQLite's 0009 and 0010.
CREATE TABLE passkeys (
    id            TEXT COLLATE "C" PRIMARY KEY,
    account_id    BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name          TEXT COLLATE "C" NOT NULL,
    credential_id TEXT COLLATE "C" NOT NULL UNIQUE,
    passkey       TEXT COLLATE "C" NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_account ON passkeys (account_id, created_at);

ALTER TABLE telegram_messages ADD COLUMN approve_url TEXT COLLATE "C";
