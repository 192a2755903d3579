-- Fleet health from snapshots and pending operations (conntel/health.py), and every health change
-- recorded for the live streams.
--
-- What health is now also decided from: the newest snapshot's tunnels, and an operation pending for
-- longer than the silence threshold (marked by the sweep).
ALTER TABLE connectors ADD COLUMN tunnel_t bigint;            -- `t` of its newest snapshot
ALTER TABLE connectors ADD COLUMN tunnel_down text;           -- a tunnel reported down in it (tunnel_id); NULL: none
ALTER TABLE connectors ADD COLUMN operation_overdue text;     -- the pending interrupt's id, once pending too long
-- Why its health is what it is, besides health_reason and the event (health_t, health_n).
ALTER TABLE connectors ADD COLUMN health_snapshot_t bigint;   -- the snapshot that made it so
ALTER TABLE connectors ADD COLUMN health_tunnel text;         -- tunnel_down: which tunnel
ALTER TABLE connectors ADD COLUMN health_operation text;      -- operation_pending / operation_done: which one
-- Earlier stores: their tunnels are known from their next snapshot on (bodies are compressed, not
-- readable here); an operation pending too long is marked by the first sweep.

-- Every change of a connector's health, reason or reference, written by the trigger below in the
-- transaction that made it (whichever path: ingestion, check-ins, the sweep), read by each account's live
-- feed and pruned by the sweep after an hour. Concurrent writers commit in any order, so a reader goes by
-- (txid, seq) and reads only rows of transactions older than every one still running (the snapshot's
-- xmin): no row can appear later behind a position already read, and no writer waits for another.
CREATE TABLE health_changes (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    txid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    account_id text NOT NULL,
    connector_id text NOT NULL,
    health text NOT NULL,
    previous text NOT NULL,
    since bigint NOT NULL,
    reason text NOT NULL,
    event_t bigint,
    event_n bigint,
    snapshot_t bigint,
    tunnel_id text,
    operation_id text,
    created_on bigint NOT NULL,
    PRIMARY KEY (account_id, txid, seq)
);

CREATE FUNCTION conntel_connector_health_noted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO health_changes (account_id, connector_id, health, previous, since, reason, event_t, event_n,
                                snapshot_t, tunnel_id, operation_id, created_on)
    VALUES (NEW.account_id, NEW.connector_id, NEW.health, OLD.health, coalesce(NEW.health_since, NEW.created_on),
            NEW.health_reason, NEW.health_t, NEW.health_n, NEW.health_snapshot_t, NEW.health_tunnel,
            NEW.health_operation, extract(epoch FROM now())::bigint);
    RETURN NULL;
END
$$;
CREATE TRIGGER connector_health_noted AFTER UPDATE OF
    health, health_reason, health_t, health_n, health_snapshot_t, health_tunnel, health_operation ON connectors
    FOR EACH ROW WHEN ((OLD.health, OLD.health_reason, OLD.health_t, OLD.health_n, OLD.health_snapshot_t,
                        OLD.health_tunnel, OLD.health_operation)
                       IS DISTINCT FROM (NEW.health, NEW.health_reason, NEW.health_t, NEW.health_n,
                                         NEW.health_snapshot_t, NEW.health_tunnel, NEW.health_operation))
    EXECUTE FUNCTION conntel_connector_health_noted();

-- Webhook bodies name the snapshot (and its path), the tunnel and the operation too.
CREATE OR REPLACE FUNCTION conntel_connector_health_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_messages (message_id, webhook_id, type, body, created_on, next_attempt)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), webhook_id, 'connector.' || NEW.health,
           jsonb_build_object(
               'type', 'connector.' || NEW.health,
               'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'data', jsonb_build_object(
                   'account_id', NEW.account_id, 'connector_id', NEW.connector_id,
                   'health', NEW.health, 'previous', OLD.health, 'reason', NEW.health_reason,
                   'since', NEW.health_since,
                   'event', CASE WHEN NEW.health_t IS NOT NULL
                                 THEN jsonb_build_object('t', NEW.health_t, 'n', NEW.health_n) END,
                   'event_path', CASE WHEN NEW.health_t IS NOT NULL
                                      THEN '/client/v4/accounts/' || NEW.account_id || '/magic/connectors/'
                                           || NEW.connector_id || '/telemetry/events/'
                                           || NEW.health_t || '.' || NEW.health_n END,
                   'snapshot', CASE WHEN NEW.health_snapshot_t IS NOT NULL
                                    THEN jsonb_build_object('t', NEW.health_snapshot_t) END,
                   'snapshot_path', CASE WHEN NEW.health_snapshot_t IS NOT NULL
                                         THEN '/client/v4/accounts/' || NEW.account_id || '/magic/connectors/'
                                              || NEW.connector_id || '/telemetry/snapshots/'
                                              || NEW.health_snapshot_t END,
                   'tunnel_id', NEW.health_tunnel,
                   'operation_id', NEW.health_operation))::text,
           extract(epoch FROM now())::bigint, extract(epoch FROM now())::bigint
    FROM webhooks
    WHERE account_id = NEW.account_id AND disabled_on IS NULL
      AND event_types::jsonb ? ('connector.' || NEW.health);
    RETURN NULL;
END
$$;
