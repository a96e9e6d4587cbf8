-- Assistant versions and replays.
-- A version's snapshot (JSON: system_prompt, model, temperature, tools with header values masked,
-- knowledge_base_ids, extract, fallback_text) is written with every create and update of its
-- assistant; the current version of every existing assistant is back-filled here.
CREATE TABLE assistant_versions (
    workspace_id TEXT NOT NULL,
    assistant_id TEXT NOT NULL,
    version      INTEGER NOT NULL,
    snapshot     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (assistant_id, version)
);
INSERT INTO assistant_versions (workspace_id, assistant_id, version, snapshot, created_at)
SELECT workspace_id, id, version, json_object('system_prompt', system_prompt, 'model', model, 'temperature', temperature,
       'tools', json(tools), 'knowledge_base_ids', json(knowledge_base_ids), 'extract', json(extract), 'fallback_text', fallback_text),
       updated_at
FROM assistants;

-- A replay runs one assistant configuration (a stored version, or a draft on top of one) over a
-- fixed selection of conversations, in a sandbox; each selected conversation is one item with its
-- per-turn comparison. Items go with their conversation (retention, customer erasure).
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
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER
);
CREATE INDEX replays_workspace ON replays(workspace_id, created_at DESC);

CREATE TABLE replay_conversations (
    replay_id        TEXT NOT NULL REFERENCES replays(id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    conversation_pk  INTEGER NOT NULL REFERENCES conversations(pk) ON DELETE CASCADE,
    status           TEXT NOT NULL DEFAULT 'pending',
    error            TEXT NOT NULL DEFAULT '',
    turns            INTEGER NOT NULL DEFAULT 0,
    changed_turns    INTEGER NOT NULL DEFAULT 0,
    skipped_turns    INTEGER NOT NULL DEFAULT 0,
    similarity_sum   REAL NOT NULL DEFAULT 0,
    old_tokens_in    INTEGER NOT NULL DEFAULT 0,
    old_tokens_out   INTEGER NOT NULL DEFAULT 0,
    new_tokens_in    INTEGER NOT NULL DEFAULT 0,
    new_tokens_out   INTEGER NOT NULL DEFAULT 0,
    old_cost_micros  INTEGER NOT NULL DEFAULT 0,
    new_cost_micros  INTEGER NOT NULL DEFAULT 0,
    tool_call_diffs  INTEGER NOT NULL DEFAULT 0,
    errors           INTEGER NOT NULL DEFAULT 0,
    result           TEXT NOT NULL DEFAULT '',
    finished_at      INTEGER,
    PRIMARY KEY (replay_id, position)
);
CREATE INDEX replay_conversations_conversation ON replay_conversations(conversation_pk);
