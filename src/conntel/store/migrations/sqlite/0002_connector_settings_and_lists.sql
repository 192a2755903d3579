-- Connector settings as the API types them, device identity, and what
-- arriving events keep current (heartbeat, newest version).
ALTER TABLE connectors ADD COLUMN settings BLOB NOT NULL DEFAULT '{}';  -- JSON of ConnectorSettings
ALTER TABLE connectors ADD COLUMN device_id TEXT;
ALTER TABLE connectors ADD COLUMN device_serial_number TEXT;
ALTER TABLE connectors ADD COLUMN device_type TEXT;  -- MANAGED, LICENSED or NULL
ALTER TABLE connectors ADD COLUMN license_key_hash BLOB;
ALTER TABLE connectors ADD COLUMN last_updated INTEGER;
ALTER TABLE connectors ADD COLUMN last_heartbeat INTEGER;
ALTER TABLE connectors ADD COLUMN last_seen_version TEXT;
ALTER TABLE connectors ADD COLUMN version_t INTEGER;  -- (t, n) of the event last_seen_version came from
ALTER TABLE connectors ADD COLUMN version_n INTEGER;
UPDATE connectors SET last_updated = created_on;

-- List Events filtered by kind: a keyset walk in (t, n) order within one kind.
CREATE INDEX events_by_kind ON events (account_id, connector_id, k, t, n);

-- Per-store secrets shared by every server process (e.g. the cursor signing key).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    secret BLOB NOT NULL
) WITHOUT ROWID;
