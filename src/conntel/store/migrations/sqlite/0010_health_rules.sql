-- Fleet health from snapshots and pending operations (conntel/health.py), and every health change
-- recorded for the live streams.
--
-- What health is now also decided from: the newest snapshot's tunnels, and an operation pending for
-- longer than the silence threshold (marked by the sweep).
ALTER TABLE connectors ADD COLUMN tunnel_t INTEGER;           -- `t` of its newest snapshot
ALTER TABLE connectors ADD COLUMN tunnel_down TEXT;           -- a tunnel reported down in it (tunnel_id); NULL: none
ALTER TABLE connectors ADD COLUMN operation_overdue TEXT;     -- the pending interrupt's id, once pending too long
-- Why its health is what it is, besides health_reason and the event (health_t, health_n).
ALTER TABLE connectors ADD COLUMN health_snapshot_t INTEGER;  -- the snapshot that made it so
ALTER TABLE connectors ADD COLUMN health_tunnel TEXT;         -- tunnel_down: which tunnel
ALTER TABLE connectors ADD COLUMN health_operation TEXT;      -- operation_pending / operation_done: which one
-- Earlier stores: their tunnels are known from their next snapshot on (bodies are compressed, not
-- readable here); an operation pending too long is marked by the first sweep.

-- Every change of a connector's health, reason or reference, written by the trigger below in the
-- transaction that made it (whichever path: ingestion, check-ins, the sweep), read by each account's live
-- feed (`seq` after the last it read: the writer is one at a time, so `seq` follows commit order) and
-- pruned by the sweep after an hour. AUTOINCREMENT: a pruned `seq` is never used again.
CREATE TABLE health_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    health TEXT NOT NULL,
    previous TEXT NOT NULL,
    since INTEGER NOT NULL,
    reason TEXT NOT NULL,
    event_t INTEGER,
    event_n INTEGER,
    snapshot_t INTEGER,
    tunnel_id TEXT,
    operation_id TEXT,
    created_on INTEGER NOT NULL
);
CREATE INDEX health_changes_by_account ON health_changes (account_id, seq);

CREATE TRIGGER connector_health_noted AFTER UPDATE OF
    health, health_reason, health_t, health_n, health_snapshot_t, health_tunnel, health_operation ON connectors
WHEN OLD.health IS NOT NEW.health OR OLD.health_reason IS NOT NEW.health_reason
  OR OLD.health_t IS NOT NEW.health_t OR OLD.health_n IS NOT NEW.health_n
  OR OLD.health_snapshot_t IS NOT NEW.health_snapshot_t OR OLD.health_tunnel IS NOT NEW.health_tunnel
  OR OLD.health_operation IS NOT NEW.health_operation
BEGIN
    INSERT INTO health_changes (account_id, connector_id, health, previous, since, reason, event_t, event_n,
                                snapshot_t, tunnel_id, operation_id, created_on)
    VALUES (NEW.account_id, NEW.connector_id, NEW.health, OLD.health, coalesce(NEW.health_since, NEW.created_on),
            NEW.health_reason, NEW.health_t, NEW.health_n, NEW.health_snapshot_t, NEW.health_tunnel,
            NEW.health_operation, unixepoch());
END;

-- Webhook bodies name the snapshot (and its path), the tunnel and the operation too.
DROP TRIGGER connector_health_changed;
CREATE TRIGGER connector_health_changed AFTER UPDATE OF health ON connectors
WHEN OLD.health <> NEW.health
BEGIN
    INSERT INTO webhook_messages (message_id, webhook_id, type, body, created_on, next_attempt)
    SELECT 'msg_' || lower(hex(randomblob(12))), webhook_id, 'connector.' || NEW.health,
           json_object(
               'type', 'connector.' || NEW.health,
               'timestamp', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'),
               'data', json_object(
                   'account_id', NEW.account_id, 'connector_id', NEW.connector_id,
                   'health', NEW.health, 'previous', OLD.health, 'reason', NEW.health_reason,
                   'since', NEW.health_since,
                   'event', CASE WHEN NEW.health_t IS NOT NULL
                                 THEN json_object('t', NEW.health_t, 'n', NEW.health_n) END,
                   'event_path', CASE WHEN NEW.health_t IS NOT NULL
                                      THEN '/client/v4/accounts/' || NEW.account_id || '/magic/connectors/'
                                           || NEW.connector_id || '/telemetry/events/'
                                           || NEW.health_t || '.' || NEW.health_n END,
                   'snapshot', CASE WHEN NEW.health_snapshot_t IS NOT NULL
                                    THEN json_object('t', NEW.health_snapshot_t) END,
                   'snapshot_path', CASE WHEN NEW.health_snapshot_t IS NOT NULL
                                         THEN '/client/v4/accounts/' || NEW.account_id || '/magic/connectors/'
                                              || NEW.connector_id || '/telemetry/snapshots/'
                                              || NEW.health_snapshot_t END,
                   'tunnel_id', NEW.health_tunnel,
                   'operation_id', NEW.health_operation)),
           unixepoch(), unixepoch()
    FROM webhooks
    WHERE account_id = NEW.account_id AND disabled_on IS NULL
      AND EXISTS (SELECT 1 FROM json_each(webhooks.event_types) WHERE value = 'connector.' || NEW.health);
END;
