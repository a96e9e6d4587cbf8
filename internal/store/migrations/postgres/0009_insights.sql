-- Insights: one narrow row of facts per conversation, kept as data lands (store/insights.go), so the
-- resolution and handoff figures read these rows instead of every message. Times are unix ms (UTC).
CREATE TABLE conversation_insights (
    conversation_pk      BIGINT PRIMARY KEY REFERENCES conversations(pk) ON DELETE CASCADE,
    workspace_id         TEXT NOT NULL,
    assistant_id         TEXT NOT NULL,
    type                 TEXT NOT NULL,
    customer_id          TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    ended_at             BIGINT,
    handoff_count        INTEGER NOT NULL DEFAULT 0,
    first_handoff_at     BIGINT, -- NULL with handoff_count > 0: handed off before this table existed, time unknown
    first_human_reply_at BIGINT, -- the first agent message after the first handoff
    returned_at          BIGINT  -- the first time the customer wrote again after the end
);
-- The report reads a range of creation times; every column it needs is in the index.
CREATE INDEX conversation_insights_created ON conversation_insights(workspace_id, created_at, assistant_id, type, ended_at, handoff_count,
    first_handoff_at, first_human_reply_at, returned_at);
-- A customer writing again finds their ended conversations not yet marked returned.
CREATE INDEX conversation_insights_returning ON conversation_insights(workspace_id, customer_id, type) WHERE ended_at IS NOT NULL AND returned_at IS NULL;

-- backfill:begin (also run by Store.RebuildInsights; statements separated by ";\n")
INSERT INTO conversation_insights (conversation_pk, workspace_id, assistant_id, type, customer_id, created_at, ended_at)
    SELECT pk, workspace_id, assistant_id, type, customer_id, created_at, CASE WHEN status = 'ended' THEN COALESCE(ended_at, updated_at) END
    FROM conversations;
-- Handoffs by the assistant's transfer_to_human tool: their count and the first one's time.
UPDATE conversation_insights SET first_handoff_at = h.first_at, handoff_count = h.n
    FROM (SELECT m.conversation_pk AS pk, MIN(m.created_at) AS first_at, COUNT(*) AS n FROM messages m
          WHERE m.role = 'assistant' AND m.tool_calls @> '[{"name": "transfer_to_human"}]'::jsonb
          GROUP BY m.conversation_pk) h
    WHERE conversation_insights.conversation_pk = h.pk;
-- Handoffs made by hand (API, dashboard) left no message: one handoff, time unknown.
UPDATE conversation_insights SET handoff_count = 1
    WHERE handoff_count = 0 AND conversation_pk IN (SELECT pk FROM conversations WHERE status = 'handoff' OR handoff_reason <> '');
UPDATE conversation_insights SET first_human_reply_at = (SELECT MIN(m.created_at) FROM messages m
        WHERE m.conversation_pk = conversation_insights.conversation_pk AND m.role = 'agent'
          AND m.created_at >= COALESCE(conversation_insights.first_handoff_at, 0))
    WHERE handoff_count > 0;
-- A customer came back when a later conversation of theirs (same channel type) has a message from
-- them; its start stands for their first message.
UPDATE conversation_insights SET returned_at = (SELECT MIN(c.created_at) FROM conversations c
        WHERE c.workspace_id = conversation_insights.workspace_id AND c.customer_id = conversation_insights.customer_id
          AND c.type = conversation_insights.type AND c.pk <> conversation_insights.conversation_pk
          AND c.created_at >= conversation_insights.ended_at AND c.last_inbound_at IS NOT NULL)
    WHERE ended_at IS NOT NULL AND customer_id <> '';
-- backfill:end
