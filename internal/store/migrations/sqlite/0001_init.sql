-- Parley schema, SQLite dialect. Times are unix milliseconds (UTC); money is integer micro-dollars.
CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    hash         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE memberships (
    user_id      TEXT NOT NULL REFERENCES users(id),
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    role         TEXT NOT NULL,
    PRIMARY KEY (user_id, workspace_id)
);

CREATE TABLE assistants (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces(id),
    name               TEXT NOT NULL,
    system_prompt      TEXT NOT NULL,
    model              TEXT NOT NULL,
    temperature        REAL,
    tools              TEXT NOT NULL DEFAULT '[]',
    knowledge_base_ids TEXT NOT NULL DEFAULT '[]',
    extract            TEXT NOT NULL DEFAULT '[]',
    fallback_text      TEXT NOT NULL DEFAULT '',
    version            INTEGER NOT NULL DEFAULT 1,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    deleted_at         INTEGER
);
CREATE INDEX assistants_workspace ON assistants(workspace_id, created_at);

CREATE TABLE conversations (
    pk                   INTEGER PRIMARY KEY,
    id                   TEXT NOT NULL UNIQUE,
    workspace_id         TEXT NOT NULL REFERENCES workspaces(id),
    type                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    assistant_id         TEXT NOT NULL DEFAULT '',
    customer_id          TEXT NOT NULL DEFAULT '',
    customer_name        TEXT NOT NULL DEFAULT '',
    channel_id           TEXT NOT NULL DEFAULT '',
    metadata             TEXT NOT NULL DEFAULT '{}',
    message_count        INTEGER NOT NULL DEFAULT 0,
    tokens_in            INTEGER NOT NULL DEFAULT 0,
    tokens_out           INTEGER NOT NULL DEFAULT 0,
    cost_micros          INTEGER NOT NULL DEFAULT 0,
    last_message_preview TEXT NOT NULL DEFAULT '',
    last_message_at      INTEGER NOT NULL,
    last_inbound_at      INTEGER,
    handoff_reason       TEXT NOT NULL DEFAULT '',
    last_error           TEXT NOT NULL DEFAULT '',
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    ended_at             INTEGER
);
-- One index per list filter, each ending in the sort key so a filtered page is an index range scan.
CREATE INDEX conversations_activity ON conversations(workspace_id, last_message_at DESC, pk DESC);
CREATE INDEX conversations_type ON conversations(workspace_id, type, last_message_at DESC, pk DESC);
CREATE INDEX conversations_assistant ON conversations(workspace_id, assistant_id, last_message_at DESC, pk DESC);
CREATE INDEX conversations_customer ON conversations(workspace_id, customer_id, last_message_at DESC, pk DESC);
CREATE INDEX conversations_status ON conversations(workspace_id, status, last_message_at DESC, pk DESC);
CREATE INDEX conversations_channel_customer ON conversations(workspace_id, channel_id, customer_id, type);

CREATE TABLE messages (
    pk              INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    workspace_id    TEXT NOT NULL,
    conversation_pk INTEGER NOT NULL REFERENCES conversations(pk) ON DELETE CASCADE,
    external_id     TEXT,
    role            TEXT NOT NULL,
    direction       TEXT NOT NULL,
    type            TEXT NOT NULL,
    text            TEXT NOT NULL DEFAULT '',
    media           TEXT,
    tool_calls      TEXT,
    status          TEXT NOT NULL DEFAULT '',
    error           TEXT,
    tokens_in       INTEGER NOT NULL DEFAULT 0,
    tokens_out      INTEGER NOT NULL DEFAULT 0,
    cost_micros     INTEGER NOT NULL DEFAULT 0,
    latency_ms      INTEGER,
    assistant_version INTEGER,
    answered_at     INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX messages_conversation ON messages(conversation_pk, pk);
-- Idempotency for channel ids (WhatsApp wamid): a unique constraint, not a check-then-insert.
CREATE UNIQUE INDEX messages_external ON messages(workspace_id, external_id) WHERE external_id IS NOT NULL;
-- Inbound customer messages still waiting for an answer: tiny, so answering is cheap.
CREATE INDEX messages_unanswered ON messages(conversation_pk) WHERE role = 'user' AND answered_at IS NULL;

-- Full-text index of message texts. Contentless (the text lives in messages); the conversation is an
-- indexed column too ("c<pk>"), so one conversation can be searched on its own, and fts5vocab gives
-- each term's document count, from which the list picks its plan (see textMatch).
CREATE VIRTUAL TABLE messages_fts USING fts5(text, conv, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE messages_fts_vocab USING fts5vocab(messages_fts, 'row');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.text <> '' BEGIN
    INSERT INTO messages_fts(rowid, text, conv) VALUES (new.pk, new.text, 'c' || new.conversation_pk);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.text <> '' BEGIN
    DELETE FROM messages_fts WHERE rowid = old.pk;
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    DELETE FROM messages_fts WHERE rowid = old.pk;
    INSERT INTO messages_fts(rowid, text, conv) SELECT new.pk, new.text, 'c' || new.conversation_pk WHERE new.text <> '';
END;

CREATE TABLE variables (
    conversation_pk INTEGER NOT NULL REFERENCES conversations(pk) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    value           TEXT NOT NULL,
    source          TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_pk, name)
);

-- Metrics rollups, maintained in the same transaction as the rows they count.
CREATE TABLE rollup_hourly (
    workspace_id    TEXT NOT NULL,
    bucket          INTEGER NOT NULL, -- hour start, unix seconds UTC
    assistant_id    TEXT NOT NULL,
    type            TEXT NOT NULL,
    conversations   INTEGER NOT NULL DEFAULT 0,
    messages        INTEGER NOT NULL DEFAULT 0,
    inbound         INTEGER NOT NULL DEFAULT 0,
    answered        INTEGER NOT NULL DEFAULT 0,
    response_ms_sum INTEGER NOT NULL DEFAULT 0,
    tokens_in       INTEGER NOT NULL DEFAULT 0,
    tokens_out      INTEGER NOT NULL DEFAULT 0,
    cost_micros     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, bucket, assistant_id, type)
);
