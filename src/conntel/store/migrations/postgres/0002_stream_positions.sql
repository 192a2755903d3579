-- Live tail: each account numbers its events in the order their batches
-- commit (`seq`; the account row is locked while a batch takes its numbers),
-- so a stream can resume after any position with no gap and no repeat.
ALTER TABLE accounts ADD COLUMN next_seq bigint NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN seq bigint;
CREATE INDEX events_by_seq ON events (account_id, seq) WHERE seq IS NOT NULL;
