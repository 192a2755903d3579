-- Account-scoped tables key on account_id first, so the schema can be
-- distributed by account. Credential tables (users, memberships, tokens) are
-- small global reference tables, looked up by the credential itself.

CREATE TABLE accounts (
    account_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_on INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE connectors (
    account_id TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    created_on INTEGER NOT NULL,
    PRIMARY KEY (account_id, connector_id)
) WITHOUT ROWID;

CREATE TABLE events (
    account_id TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    t INTEGER NOT NULL,
    n INTEGER NOT NULL,
    a INTEGER NOT NULL,
    k TEXT NOT NULL,
    v TEXT,
    e BLOB NOT NULL,
    PRIMARY KEY (account_id, connector_id, t, n)
) WITHOUT ROWID;

CREATE TABLE users (
    email TEXT PRIMARY KEY,
    api_key_hash BLOB NOT NULL,
    created_on INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE memberships (
    email TEXT NOT NULL,
    account_id TEXT NOT NULL,
    PRIMARY KEY (email, account_id)
) WITHOUT ROWID;

CREATE TABLE tokens (
    token_id TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    permissions TEXT NOT NULL,  -- JSON array of permission group names
    not_before INTEGER,
    expires_on INTEGER,
    created_on INTEGER NOT NULL,
    revoked_on INTEGER
);
