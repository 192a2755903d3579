-- Webhooks (conntel/webhooks.py): endpoints per account, and an outbox of messages written in
-- the same transaction as the health change they tell of (the trigger below), delivered by one
-- server process at a time, at least once, with retries.
CREATE TABLE webhooks (
    webhook_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,       -- whsec_...: signing needs it as is; shown once, never listed or logged
    event_types TEXT NOT NULL,  -- JSON array of message types
    created_on INTEGER NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,  -- failed attempts in a row (0 after any success)
    failing_since INTEGER,
    delivered INTEGER NOT NULL DEFAULT 0,
    last_attempt INTEGER,
    last_status INTEGER,
    last_error TEXT,
    disabled_on INTEGER
);
CREATE INDEX webhooks_by_account ON webhooks (account_id);

CREATE TABLE webhook_messages (
    message_id TEXT PRIMARY KEY,  -- the webhook-id header, the same on every attempt
    webhook_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,           -- the JSON sent, fixed when the message is made
    created_on INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    delivered_on INTEGER,
    given_up_on INTEGER
) WITHOUT ROWID;
CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt)
    WHERE delivered_on IS NULL AND given_up_on IS NULL;

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
                                           || NEW.health_t || '.' || NEW.health_n END)),
           unixepoch(), unixepoch()
    FROM webhooks
    WHERE account_id = NEW.account_id AND disabled_on IS NULL
      AND EXISTS (SELECT 1 FROM json_each(webhooks.event_types) WHERE value = 'connector.' || NEW.health);
END;
