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
-- Each day's conversations (by the day they started, UTC) per assistant and type, summed: the
-- figures that do not depend on the resolution window read these rows, a few per day, whatever the
-- number of conversations. Kept from conversation_insights by the triggers below, so no writer has to know.
CREATE TABLE conversation_insights_daily (
    workspace_id        TEXT NOT NULL,
    day                 BIGINT NOT NULL, -- days since 1970-01-01 (UTC)
    assistant_id        TEXT NOT NULL,
    type                TEXT NOT NULL,
    conversations       BIGINT NOT NULL DEFAULT 0,
    ended               BIGINT NOT NULL DEFAULT 0,
    clean_ended         BIGINT NOT NULL DEFAULT 0, -- ended without a handoff
    handoffs            BIGINT NOT NULL DEFAULT 0, -- conversations handed off at least once
    handoff_events      BIGINT NOT NULL DEFAULT 0,
    unanswered_handoffs BIGINT NOT NULL DEFAULT 0,
    replied_handoffs    BIGINT NOT NULL DEFAULT 0, -- with a known handoff time and a human reply after it
    reply_ms_sum        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day, assistant_id, type)
);

-- Partial days at the ends of a range read the facts themselves; every column they need is in the index.
CREATE INDEX conversation_insights_created ON conversation_insights(workspace_id, created_at, assistant_id, type, ended_at, handoff_count,
    first_handoff_at, first_human_reply_at);
-- The window's part: clean ends whose customer came back, and clean ends too recent to be settled.
CREATE INDEX conversation_insights_returned ON conversation_insights(workspace_id, created_at, assistant_id, type, ended_at, returned_at)
    WHERE returned_at IS NOT NULL AND handoff_count = 0 AND ended_at IS NOT NULL;
CREATE INDEX conversation_insights_recent_end ON conversation_insights(workspace_id, ended_at, created_at, assistant_id, type)
    WHERE returned_at IS NULL AND handoff_count = 0 AND ended_at IS NOT NULL;
-- Reply times for the median.
CREATE INDEX conversation_insights_replied ON conversation_insights(workspace_id, created_at, assistant_id, type, first_handoff_at, first_human_reply_at)
    WHERE first_handoff_at IS NOT NULL AND first_human_reply_at IS NOT NULL;
-- A customer writing again finds their ended conversations not yet marked returned.
CREATE INDEX conversation_insights_returning ON conversation_insights(workspace_id, customer_id, type) WHERE ended_at IS NOT NULL AND returned_at IS NULL;

-- A row's part of its day: added when it is inserted, moved when it changes, taken away when it goes.
CREATE FUNCTION conversation_insights_daily_add(r conversation_insights, delta_sign INTEGER) RETURNS void LANGUAGE sql AS $$
    INSERT INTO conversation_insights_daily (workspace_id, day, assistant_id, type, conversations, ended, clean_ended, handoffs,
        handoff_events, unanswered_handoffs, replied_handoffs, reply_ms_sum)
    VALUES (r.workspace_id, r.created_at / 86400000, r.assistant_id, r.type, delta_sign, delta_sign * (r.ended_at IS NOT NULL)::int,
        delta_sign * (r.ended_at IS NOT NULL AND r.handoff_count = 0)::int, delta_sign * (r.handoff_count > 0)::int, delta_sign * r.handoff_count,
        delta_sign * (r.handoff_count > 0 AND r.first_human_reply_at IS NULL)::int, delta_sign * (r.first_handoff_at IS NOT NULL AND r.first_human_reply_at IS NOT NULL)::int,
        delta_sign * (CASE WHEN r.first_handoff_at IS NOT NULL AND r.first_human_reply_at IS NOT NULL THEN r.first_human_reply_at - r.first_handoff_at ELSE 0 END))
    ON CONFLICT (workspace_id, day, assistant_id, type) DO UPDATE SET conversations = conversation_insights_daily.conversations + excluded.conversations,
        ended = conversation_insights_daily.ended + excluded.ended, clean_ended = conversation_insights_daily.clean_ended + excluded.clean_ended,
        handoffs = conversation_insights_daily.handoffs + excluded.handoffs, handoff_events = conversation_insights_daily.handoff_events + excluded.handoff_events,
        unanswered_handoffs = conversation_insights_daily.unanswered_handoffs + excluded.unanswered_handoffs,
        replied_handoffs = conversation_insights_daily.replied_handoffs + excluded.replied_handoffs,
        reply_ms_sum = conversation_insights_daily.reply_ms_sum + excluded.reply_ms_sum;
$$;
CREATE FUNCTION conversation_insights_daily_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM conversation_insights_daily_add(OLD, -1);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM conversation_insights_daily_add(NEW, 1);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER conversation_insights_daily_insert AFTER INSERT ON conversation_insights FOR EACH ROW EXECUTE FUNCTION conversation_insights_daily_update();
CREATE TRIGGER conversation_insights_daily_change AFTER UPDATE OF ended_at, handoff_count, first_handoff_at, first_human_reply_at ON conversation_insights
    FOR EACH ROW EXECUTE FUNCTION conversation_insights_daily_update();
CREATE TRIGGER conversation_insights_daily_delete AFTER DELETE ON conversation_insights FOR EACH ROW EXECUTE FUNCTION conversation_insights_daily_update();

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
