-- The dashboard: login sessions, and a running count of each workspace's conversations for the
-- navigation badge, kept by a trigger (the same tables as the SQLite migration).
CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY, -- SHA-256 (hex) of the cookie's token; the token itself is never stored
    user_id      TEXT NOT NULL REFERENCES users(id),
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    csrf_token   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE conversation_counts (
    workspace_id TEXT PRIMARY KEY,
    total        BIGINT NOT NULL DEFAULT 0
);
INSERT INTO conversation_counts (workspace_id, total) SELECT workspace_id, COUNT(*) FROM conversations GROUP BY workspace_id;

CREATE FUNCTION conversation_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO conversation_counts (workspace_id, total) VALUES (NEW.workspace_id, 1)
            ON CONFLICT (workspace_id) DO UPDATE SET total = conversation_counts.total + 1;
    ELSE
        UPDATE conversation_counts SET total = total - 1 WHERE workspace_id = OLD.workspace_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER conversation_counts_insert AFTER INSERT ON conversations FOR EACH ROW EXECUTE FUNCTION conversation_counts_update();
CREATE TRIGGER conversation_counts_delete AFTER DELETE ON conversations FOR EACH ROW EXECUTE FUNCTION conversation_counts_update();
