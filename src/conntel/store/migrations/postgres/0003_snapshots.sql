-- Snapshots (CONTRACT §8): one per connector and `t`. `a` is when conntel
-- received it (seconds since the epoch, as events.a); `size` is the bytes of
-- its JSON as recorded, `body` that JSON as a zstd frame (store/snapshot_codec.py).
CREATE TABLE snapshots (
    account_id text NOT NULL,
    connector_id text NOT NULL,
    t bigint NOT NULL,
    a bigint NOT NULL,
    size integer NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (account_id, connector_id, t)
);
-- Already compressed: TOAST moves a large body out of line but does not try to compress it again.
ALTER TABLE snapshots ALTER COLUMN body SET STORAGE EXTERNAL;
