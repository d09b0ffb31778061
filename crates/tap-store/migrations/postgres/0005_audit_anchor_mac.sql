-- The retention anchor's seal (SPEC §9, issue 17): a MAC with the audit key
-- over (team, first_seq, anchor_hash), so an anchor written without the key
-- (old rows deleted behind the store's back) fails verification.
ALTER TABLE audit_anchor ADD COLUMN mac TEXT;
