-- The sealed head of each team's audit chain (SPEC §9): the last row's seq
-- and hash, and the first row chained with the keyed MAC, sealed with the
-- audit key. Every append moves it in the transaction that inserts the rows.
--
-- Chains written by earlier (unkeyed) versions get a head here with `mac`
-- NULL and `keyed_from` just after their last row: those rows keep verifying
-- with the unkeyed hash, every later row is keyed. The first process that
-- holds the key seals these heads once (and records that in `meta`).
CREATE TABLE audit_head (
    team_id    INTEGER PRIMARY KEY,
    seq        INTEGER NOT NULL,
    last_hash  TEXT NOT NULL,
    keyed_from INTEGER NOT NULL,
    mac        TEXT
);

INSERT INTO audit_head (team_id, seq, last_hash, keyed_from, mac)
SELECT a.team_id, a.seq, a.row_hash, a.seq + 1, NULL
FROM audit a
WHERE a.seq = (SELECT max(b.seq) FROM audit b WHERE b.team_id = a.team_id);

-- Retention deleted every row of a team: the chain goes on after its anchor.
INSERT INTO audit_head (team_id, seq, last_hash, keyed_from, mac)
SELECT team_id, first_seq - 1, anchor_hash, first_seq, NULL
FROM audit_anchor
WHERE team_id NOT IN (SELECT team_id FROM audit);
