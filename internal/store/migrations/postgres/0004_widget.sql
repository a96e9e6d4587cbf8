-- The website chat widget (PostgreSQL dialect): widgets (what the business embeds, found by its
-- public key) and the visitors' sessions, each bound to one conversation. Only a hash of a session
-- token is stored. The JSON columns are TEXT: nothing queries inside them.
CREATE TABLE widgets (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id),
    public_key      TEXT NOT NULL,
    assistant_id    TEXT NOT NULL,
    mode            TEXT NOT NULL DEFAULT 'chat',
    title           TEXT NOT NULL DEFAULT '',
    greeting        TEXT NOT NULL DEFAULT '',
    primary_color   TEXT NOT NULL DEFAULT '',
    text_color      TEXT NOT NULL DEFAULT '',
    position        TEXT NOT NULL DEFAULT 'bottom-right',
    prechat_fields  TEXT NOT NULL DEFAULT '[]',
    allowed_origins TEXT NOT NULL DEFAULT '[]',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX widgets_public_key ON widgets(public_key);
CREATE INDEX widgets_workspace ON widgets(workspace_id, created_at);

CREATE TABLE widget_sessions (
    token_hash      TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces(id),
    widget_id       TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL
);
CREATE INDEX widget_sessions_widget ON widget_sessions(widget_id);
CREATE INDEX widget_sessions_conversation ON widget_sessions(conversation_id);
