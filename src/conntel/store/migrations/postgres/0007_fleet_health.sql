-- Fleet health (conntel/health.py), kept current as events arrive and as time passes:
-- the newest outcome among the eight Finish kinds (what "failing" is decided by), and the
-- health it and the heartbeat give, since when, why, and the event that made it so.
ALTER TABLE connectors ADD COLUMN outcome_t bigint;
ALTER TABLE connectors ADD COLUMN outcome_n bigint;
ALTER TABLE connectors ADD COLUMN outcome_k text;
ALTER TABLE connectors ADD COLUMN health text NOT NULL DEFAULT 'silent';
ALTER TABLE connectors ADD COLUMN health_since bigint;
ALTER TABLE connectors ADD COLUMN health_reason text NOT NULL DEFAULT 'never_reported';
ALTER TABLE connectors ADD COLUMN health_t bigint;
ALTER TABLE connectors ADD COLUMN health_n bigint;
-- An account's own silence threshold in seconds (NULL: the server's --silent-after).
ALTER TABLE accounts ADD COLUMN silent_after bigint;

-- Connectors of earlier stores: their newest outcome from their events, then their health.
UPDATE connectors SET (outcome_t, outcome_n, outcome_k) = (
    SELECT t, n, k FROM events
    WHERE events.account_id = connectors.account_id AND events.connector_id = connectors.connector_id
      AND k IN ('FinishAttestationSuccess', 'FinishAttestationFailure', 'FinishRotateCryptKeySuccess', 'FinishRotateCryptKeyFailure', 'FinishRotatePkiSuccess', 'FinishRotatePkiFailure', 'FinishUpgradeSuccess', 'FinishUpgradeFailure')
    ORDER BY t DESC, n DESC LIMIT 1
);
UPDATE connectors SET
    health = CASE WHEN outcome_k LIKE '%Failure' THEN 'failing'
                  WHEN last_heartbeat IS NULL THEN 'silent' ELSE 'healthy' END,
    health_reason = CASE WHEN outcome_k LIKE '%Failure' THEN outcome_k
                         WHEN last_heartbeat IS NULL THEN 'never_reported' ELSE 'reporting' END,
    health_since = coalesce(last_heartbeat, created_on),
    health_t = CASE WHEN outcome_k LIKE '%Failure' THEN outcome_t END,
    health_n = CASE WHEN outcome_k LIKE '%Failure' THEN outcome_n END;
