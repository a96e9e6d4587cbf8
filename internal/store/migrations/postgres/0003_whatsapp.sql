-- WhatsApp Business Cloud API channel (PostgreSQL dialect): senders (phone numbers), templates, delivery bookkeeping,
-- and outgoing webhooks for automations. Secrets are sealed (AES-GCM) by the application.
CREATE TABLE wa_senders (
    id                   TEXT PRIMARY KEY,
    workspace_id         TEXT NOT NULL REFERENCES workspaces(id),
    phone_number_id      TEXT NOT NULL,
    display_phone_number TEXT NOT NULL DEFAULT '',
    access_token         TEXT NOT NULL,
    app_secret           TEXT NOT NULL,
    verify_token         TEXT NOT NULL,
    assistant_id         TEXT NOT NULL DEFAULT '',
    graph_api_url        TEXT NOT NULL,
    rate_per_second      INTEGER NOT NULL DEFAULT 80,
    quality_rating       TEXT NOT NULL DEFAULT '',
    messaging_limit      TEXT NOT NULL DEFAULT '',
    last_error           TEXT NOT NULL DEFAULT '',
    last_error_at        BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
-- Meta identifies the number of a delivery by phone_number_id: one sender per number.
CREATE UNIQUE INDEX wa_senders_phone ON wa_senders(phone_number_id);
CREATE INDEX wa_senders_workspace ON wa_senders(workspace_id, created_at);

CREATE TABLE wa_templates (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name         TEXT NOT NULL,
    language     TEXT NOT NULL,
    category     TEXT NOT NULL,
    components   TEXT NOT NULL DEFAULT '[]',
    status       TEXT NOT NULL DEFAULT 'local',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX wa_templates_name ON wa_templates(workspace_id, name, language);

-- The channel's own record of a message: Meta's payload as received, and its pricing once.
ALTER TABLE messages ADD COLUMN payload TEXT;
ALTER TABLE messages ADD COLUMN pricing TEXT;

CREATE TABLE webhooks (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    url          TEXT NOT NULL,
    events       TEXT NOT NULL DEFAULT '[]',
    secret       TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX webhooks_workspace ON webhooks(workspace_id, created_at);

-- Status reports that arrived before the send that produced their wamid was recorded (Meta can
-- answer the webhook faster than the send's own answer is committed); applied when it is.
CREATE TABLE wa_pending_statuses (
    workspace_id TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX wa_pending_statuses_ext ON wa_pending_statuses(workspace_id, external_id);
CREATE INDEX wa_pending_statuses_age ON wa_pending_statuses(created_at);
