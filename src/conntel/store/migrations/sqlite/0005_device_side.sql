-- The device side (README "The device side"): each connector's own credential
-- and the operations (interrupts) operators submit to it.

-- A credential minted for a connector (`conntel connectors credential`), hashed;
-- one per connector: minting again replaces it. A LICENSED connector's license
-- key (connectors.license_key_hash) is a device credential too, found by this index.
CREATE TABLE device_credentials (
    account_id TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    created_on INTEGER NOT NULL,
    PRIMARY KEY (account_id, connector_id)
) WITHOUT ROWID;
CREATE INDEX connectors_by_license_key ON connectors (license_key_hash) WHERE license_key_hash IS NOT NULL;

-- Interrupts: reboot, restart or shutdown, pending until the connector reports
-- it executed (triggered_at). At most one pending per connector.
CREATE TABLE interrupts (
    account_id TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    interrupt_id TEXT NOT NULL,
    action TEXT NOT NULL,  -- reboot, restart or shutdown
    purge INTEGER NOT NULL,  -- 0 or 1
    submitted_at INTEGER NOT NULL,  -- microseconds since the epoch
    triggered_at INTEGER,  -- microseconds since the epoch; NULL while pending
    PRIMARY KEY (account_id, connector_id, interrupt_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX interrupts_pending ON interrupts (account_id, connector_id) WHERE triggered_at IS NULL;
CREATE INDEX interrupts_by_time ON interrupts (account_id, connector_id, submitted_at);
