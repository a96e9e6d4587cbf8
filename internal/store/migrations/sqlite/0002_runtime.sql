-- The assistant runtime: model providers, prices, knowledge bases and HTTP tool secrets.
-- Times are unix milliseconds (UTC); money is integer micro-dollars.

-- A workspace's own OpenAI-compatible provider; without a row the server's default is used.
CREATE TABLE providers (
    workspace_id     TEXT PRIMARY KEY REFERENCES workspaces(id),
    base_url         TEXT NOT NULL,
    api_key_sealed   TEXT NOT NULL DEFAULT '',
    transcribe_model TEXT NOT NULL DEFAULT '',
    vision_model     TEXT NOT NULL DEFAULT '',
    embedding_model  TEXT NOT NULL DEFAULT '',
    updated_at       INTEGER NOT NULL
);

-- A workspace's prices, over the built-in defaults: per million tokens, or per audio minute.
CREATE TABLE prices (
    workspace_id      TEXT NOT NULL REFERENCES workspaces(id),
    model             TEXT NOT NULL,
    input_micros      INTEGER NOT NULL,
    output_micros     INTEGER NOT NULL,
    per_minute_micros INTEGER NOT NULL DEFAULT 0,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, model)
);

CREATE TABLE knowledge_bases (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX knowledge_bases_workspace ON knowledge_bases(workspace_id, created_at);

CREATE TABLE kb_documents (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL,
    knowledge_base_id TEXT NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    title             TEXT NOT NULL,
    filename          TEXT NOT NULL DEFAULT '',
    mime_type         TEXT NOT NULL DEFAULT 'text/plain',
    size_bytes        INTEGER NOT NULL DEFAULT 0,
    chunk_count       INTEGER NOT NULL DEFAULT 0,
    embedded          INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL
);
CREATE INDEX kb_documents_kb ON kb_documents(workspace_id, knowledge_base_id, created_at);

CREATE TABLE kb_chunks (
    pk                INTEGER PRIMARY KEY,
    workspace_id      TEXT NOT NULL,
    knowledge_base_id TEXT NOT NULL,
    document_id       TEXT NOT NULL REFERENCES kb_documents(id) ON DELETE CASCADE,
    position          INTEGER NOT NULL,
    content           TEXT NOT NULL,
    embedding         BLOB
);
CREATE INDEX kb_chunks_document ON kb_chunks(document_id, position);
CREATE INDEX kb_chunks_kb ON kb_chunks(workspace_id, knowledge_base_id);

CREATE VIRTUAL TABLE kb_chunks_fts USING fts5(content, content='kb_chunks', content_rowid='pk', tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER kb_chunks_fts_insert AFTER INSERT ON kb_chunks BEGIN
    INSERT INTO kb_chunks_fts(rowid, content) VALUES (new.pk, new.content);
END;
CREATE TRIGGER kb_chunks_fts_delete AFTER DELETE ON kb_chunks BEGIN
    INSERT INTO kb_chunks_fts(kb_chunks_fts, rowid, content) VALUES ('delete', old.pk, old.content);
END;

-- HTTP tool header values, sealed with the server's secret key; the assistant's tools JSON keeps
-- only the header names with a mask.
CREATE TABLE tool_secrets (
    workspace_id TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    tool_name    TEXT NOT NULL,
    header       TEXT NOT NULL,
    sealed_value TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, assistant_id, tool_name, header)
);

-- Post-conversation extraction: which activity of a conversation has been extracted, so an idle
-- sweep (on any instance) extracts each stretch of activity once.
CREATE TABLE extractions (
    conversation_id TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    last_message_at INTEGER NOT NULL,
    extracted_at    INTEGER NOT NULL
);
