-- Webhooks (conntel/webhooks.py): endpoints per account, and an outbox of messages written in
-- the same transaction as the health change they tell of (the trigger below), delivered by one
-- server process at a time, at least once, with retries.
CREATE TABLE webhooks (
    webhook_id text PRIMARY KEY,
    account_id text NOT NULL,
    url text NOT NULL,
    secret text NOT NULL,       -- whsec_...: signing needs it as is; shown once, never listed or logged
    event_types text NOT NULL,  -- JSON array of message types
    created_on bigint NOT NULL,
    failures bigint NOT NULL DEFAULT 0,  -- failed attempts in a row (0 after any success)
    failing_since bigint,
    delivered bigint NOT NULL DEFAULT 0,
    last_attempt bigint,
    last_status bigint,
    last_error text,
    disabled_on bigint
);
CREATE INDEX webhooks_by_account ON webhooks (account_id);

CREATE TABLE webhook_messages (
    message_id text PRIMARY KEY,  -- the webhook-id header, the same on every attempt
    webhook_id text NOT NULL,
    type text NOT NULL,
    body text NOT NULL,           -- the JSON sent, fixed when the message is made
    created_on bigint NOT NULL,
    attempts bigint NOT NULL DEFAULT 0,
    next_attempt bigint NOT NULL,
    delivered_on bigint,
    given_up_on bigint
);
CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt)
    WHERE delivered_on IS NULL AND given_up_on IS NULL;

CREATE FUNCTION conntel_connector_health_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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
                                           || NEW.health_t || '.' || NEW.health_n END))::text,
           extract(epoch FROM now())::bigint, extract(epoch FROM now())::bigint
    FROM webhooks
    WHERE account_id = NEW.account_id AND disabled_on IS NULL
      AND event_types::jsonb ? ('connector.' || NEW.health);
    RETURN NULL;
END
$$;
CREATE TRIGGER connector_health_changed AFTER UPDATE OF health ON connectors
    FOR EACH ROW WHEN (OLD.health IS DISTINCT FROM NEW.health)
    EXECUTE FUNCTION conntel_connector_health_changed();
