-- Assistant versions and replays (see the SQLite migration for the notes).
CREATE TABLE assistant_versions (
    workspace_id TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    version      INTEGER NOT NULL,
    snapshot     JSONB NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (assistant_id, version)
);
INSERT INTO assistant_versions (workspace_id, assistant_id, version, snapshot, created_at)
SELECT workspace_id, id, version, jsonb_build_object('system_prompt', system_prompt, 'model', model, 'temperature', temperature,
       'tools', tools, 'knowledge_base_ids', knowledge_base_ids, 'extract', extract, 'fallback_text', fallback_text),
       updated_at
FROM assistants;

CREATE TABLE replays (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces(id),
    assistant_id   TEXT NOT NULL,
    assistant_name TEXT NOT NULL DEFAULT '',
    version        INTEGER NOT NULL,
    draft          TEXT NOT NULL DEFAULT '',
    config         TEXT NOT NULL,
    filter         TEXT NOT NULL DEFAULT '{}',
    status         TEXT NOT NULL,
    error          TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    started_at     BIGINT,
    finished_at    BIGINT
);
CREATE INDEX replays_workspace ON replays(workspace_id, created_at DESC);

CREATE TABLE replay_conversations (
    replay_id        TEXT NOT NULL REFERENCES replays(id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    conversation_pk  BIGINT NOT NULL REFERENCES conversations(pk) ON DELETE CASCADE,
    status           TEXT NOT NULL DEFAULT 'pending',
    error            TEXT NOT NULL DEFAULT '',
    turns            INTEGER NOT NULL DEFAULT 0,
    changed_turns    INTEGER NOT NULL DEFAULT 0,
    skipped_turns    INTEGER NOT NULL DEFAULT 0,
    similarity_sum   DOUBLE PRECISION NOT NULL DEFAULT 0,
    old_tokens_in    BIGINT NOT NULL DEFAULT 0,
    old_tokens_out   BIGINT NOT NULL DEFAULT 0,
    new_tokens_in    BIGINT NOT NULL DEFAULT 0,
    new_tokens_out   BIGINT NOT NULL DEFAULT 0,
    old_cost_micros  BIGINT NOT NULL DEFAULT 0,
    new_cost_micros  BIGINT NOT NULL DEFAULT 0,
    tool_call_diffs  INTEGER NOT NULL DEFAULT 0,
    errors           INTEGER NOT NULL DEFAULT 0,
    result           TEXT NOT NULL DEFAULT '',
    finished_at      BIGINT,
    PRIMARY KEY (replay_id, position)
);
CREATE INDEX replay_conversations_conversation ON replay_conversations(conversation_pk);
