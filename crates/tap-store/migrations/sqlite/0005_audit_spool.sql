-- How far the audit spool (<db>.audit-spool) has been folded into `audit`:
-- updated in the same transaction as the rows it describes, so a restart
-- replays exactly the rows that are missing.
CREATE TABLE audit_spool (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    spool_id TEXT NOT NULL,
    position INTEGER NOT NULL
);
