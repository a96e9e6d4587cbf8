-- Data lifecycle and audit: per-workspace settings (retention), and a log of admin actions.
CREATE TABLE workspace_settings (
    workspace_id   TEXT PRIMARY KEY REFERENCES workspaces(id),
    retention_days INTEGER NOT NULL DEFAULT 0, -- 0: keep forever
    updated_at     INTEGER NOT NULL
);

CREATE TABLE audit_log (
    pk           INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL DEFAULT '',
    status       INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX audit_log_workspace ON audit_log(workspace_id, pk DESC);
