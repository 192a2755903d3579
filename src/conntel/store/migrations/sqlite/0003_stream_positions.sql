-- Live tail: each account numbers its events in the order their batches
-- commit (`seq`), so a stream can resume after any position with no gap and
-- no repeat. Events recorded before this migration have no position: the
-- streams carry events ingested from now on.
ALTER TABLE accounts ADD COLUMN next_seq INTEGER NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN seq INTEGER;
CREATE INDEX events_by_seq ON events (account_id, seq) WHERE seq IS NOT NULL;
