-- Snapshots (CONTRACT §8): one per connector and `t`. `a` is when conntel
-- received it (seconds since the epoch, as events.a); `size` is the bytes of
-- its JSON as recorded, `body` that JSON as a zstd frame (store/snapshot_codec.py).
-- A rowid table, not WITHOUT ROWID: a body of 1-4 KB would leave such a
-- table's b-tree cells for overflow pages, one partly empty page per row.
CREATE TABLE snapshots (
    account_id TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    t INTEGER NOT NULL,
    a INTEGER NOT NULL,
    size INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX snapshots_by_time ON snapshots (account_id, connector_id, t);
