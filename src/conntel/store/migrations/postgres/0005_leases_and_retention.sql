-- Leases: a named job (retention, later fleet health) runs in one process at a
-- time among all sharing the store. The holder renews before `expires_at`
-- (seconds since the epoch, the database's clock, so hosts' clocks do not
-- matter); once it lapses, another process may take it.
CREATE TABLE leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    expires_at double precision NOT NULL
);

-- Retention deletes by `a` (when conntel collected a row), account by account.
CREATE INDEX events_by_arrival ON events (account_id, a);
CREATE INDEX snapshots_by_arrival ON snapshots (account_id, a);
