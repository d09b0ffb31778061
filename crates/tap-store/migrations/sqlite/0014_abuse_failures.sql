-- Per-address abuse limits (failed sign-ins, invalid agent keys) counted in
-- the store, so replicas sharing it share one limit: one row per (kind,
-- address) with the start of its window and the failures in it. Expired
-- windows are deleted as failures are counted. A single SQLite process counts
-- in memory instead; the table stays empty there.
CREATE TABLE abuse_failures (
    kind         TEXT NOT NULL,
    address      TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL,
    PRIMARY KEY (kind, address)
);
CREATE INDEX abuse_failures_by_window ON abuse_failures (kind, window_start);
