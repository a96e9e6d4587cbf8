-- The dashboard: login sessions, and a running count of each workspace's conversations for the
-- navigation badge (O(1) on a million conversations; kept by triggers so no writer has to know).
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY, -- SHA-256 (hex) of the cookie's token; the token itself is never stored
    user_id      TEXT NOT NULL REFERENCES users(id),
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE conversation_counts (
    workspace_id TEXT PRIMARY KEY,
    total        INTEGER NOT NULL DEFAULT 0
);
INSERT INTO conversation_counts (workspace_id, total) SELECT workspace_id, COUNT(*) FROM conversations GROUP BY workspace_id;
CREATE TRIGGER conversation_counts_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO conversation_counts (workspace_id, total) VALUES (new.workspace_id, 1)
        ON CONFLICT (workspace_id) DO UPDATE SET total = conversation_counts.total + 1;
END;
CREATE TRIGGER conversation_counts_delete AFTER DELETE ON conversations BEGIN
    UPDATE conversation_counts SET total = total - 1 WHERE workspace_id = old.workspace_id;
END;
