-- Which replica is forwarding an approval (src/pg/owner.rs): the key of the
-- session advisory lock it holds while it runs. A restart fails only the
-- approvals whose claimant's lock is free, never another live replica's.
ALTER TABLE approvals ADD COLUMN claimed_by BIGINT;
