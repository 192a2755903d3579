-- Account-scoped tables (accounts, connectors, events) key on account_id
-- first, so they can be distributed by account (e.g. Citus
-- create_distributed_table(..., 'account_id')). Credential tables (users,
-- memberships, tokens, server_secrets) are small global reference tables,
-- looked up by the credential itself.

CREATE TABLE accounts (
    account_id text PRIMARY KEY,
    name text NOT NULL,
    created_on bigint NOT NULL
);

CREATE TABLE connectors (
    account_id text NOT NULL,
    connector_id text NOT NULL,
    settings bytea NOT NULL,  -- JSON of ConnectorSettings
    created_on bigint NOT NULL,
    last_updated bigint NOT NULL,
    device_id text,
    device_serial_number text,
    device_type text,
    license_key_hash bytea,
    last_heartbeat bigint,
    last_seen_version text,
    version_t bigint,
    version_n bigint,
    PRIMARY KEY (account_id, connector_id)
);

CREATE TABLE events (
    account_id text NOT NULL,
    connector_id text NOT NULL,
    t bigint NOT NULL,
    n bigint NOT NULL,
    a bigint NOT NULL,
    k text NOT NULL,
    v text,
    e bytea NOT NULL,  -- the payload's JSON, byte for byte as recorded
    PRIMARY KEY (account_id, connector_id, t, n)
);
CREATE INDEX events_by_kind ON events (account_id, connector_id, k, t, n);

CREATE TABLE users (
    email text PRIMARY KEY,
    api_key_hash bytea NOT NULL,
    created_on bigint NOT NULL
);

CREATE TABLE memberships (
    email text NOT NULL,
    account_id text NOT NULL,
    PRIMARY KEY (email, account_id)
);

CREATE TABLE tokens (
    token_id text PRIMARY KEY,
    secret_hash bytea NOT NULL UNIQUE,
    account_id text NOT NULL,
    name text NOT NULL,
    permissions text NOT NULL,  -- JSON array of permission group names
    not_before bigint,
    expires_on bigint,
    created_on bigint NOT NULL,
    revoked_on bigint
);

CREATE TABLE server_secrets (
    name text PRIMARY KEY,
    secret bytea NOT NULL
);
