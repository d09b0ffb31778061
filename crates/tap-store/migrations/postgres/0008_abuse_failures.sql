-- Per-address abuse limits (failed sign-ins, invalid agent keys) counted in
-- the store, so every replica shares one limit: one row per (kind, address)
-- with the start of its window and the failures in it. Counting is one
-- upsert (atomic per row, so a limit of N allows exactly N); expired windows
-- are deleted as failures are counted.
CREATE TABLE abuse_failures (
    kind         TEXT COLLATE "C" NOT NULL,
    address      TEXT COLLATE "C" NOT NULL,
    window_start BIGINT NOT NULL,
    failures     BIGINT NOT NULL,
    PRIMARY KEY (kind, address)
);
CREATE INDEX abuse_failures_by_window ON abuse_failures (kind, window_start);
