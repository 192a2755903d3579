-- Leases: a named job (retention, later fleet health) runs in one process at a
-- time among all sharing the store. The holder renews before `expires_at`
-- (seconds since the epoch, the database's clock); once it lapses, another
-- process may take it.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;

-- Retention deletes by `a` (when conntel collected a row), account by account.
CREATE INDEX events_by_arrival ON events (account_id, a);
CREATE INDEX snapshots_by_arrival ON snapshots (account_id, a);
