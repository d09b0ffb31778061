-- Telegram messages of require_passkey approvals (SPEC §11): Approve is a link
-- to the approval page, where the passkey ceremony runs, not a callback.
ALTER TABLE telegram_messages ADD COLUMN approve_url TEXT;
