-- Insights: one narrow row of facts per conversation, kept as data lands (store/insights.go), so the
-- resolution and handoff figures read these rows instead of every message. Times are unix ms (UTC).
CREATE TABLE conversation_insights (
    conversation_pk      INTEGER PRIMARY KEY REFERENCES conversations(pk) ON DELETE CASCADE,
    workspace_id         TEXT NOT NULL,
    assistant_id         TEXT NOT NULL,
    type                 TEXT NOT NULL,
    customer_id          TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    ended_at             INTEGER,
    handoff_count        INTEGER NOT NULL DEFAULT 0,
    first_handoff_at     INTEGER, -- NULL with handoff_count > 0: handed off before this table existed, time unknown
    first_human_reply_at INTEGER, -- the first agent message after the first handoff
    returned_at          INTEGER  -- the first time the customer wrote again after the end
);
-- Each day's conversations (by the day they started, UTC) per assistant and type, summed: the
-- figures that do not depend on the resolution window read these rows, a few per day, whatever the
-- number of conversations. Kept from conversation_insights by the triggers below, so no writer has to know.
CREATE TABLE conversation_insights_daily (
    workspace_id        TEXT NOT NULL,
    day                 INTEGER NOT NULL, -- days since 1970-01-01 (UTC)
    assistant_id        TEXT NOT NULL,
    type                TEXT NOT NULL,
    conversations       INTEGER NOT NULL DEFAULT 0,
    ended               INTEGER NOT NULL DEFAULT 0,
    clean_ended         INTEGER NOT NULL DEFAULT 0, -- ended without a handoff
    handoffs            INTEGER NOT NULL DEFAULT 0, -- conversations handed off at least once
    handoff_events      INTEGER NOT NULL DEFAULT 0,
    unanswered_handoffs INTEGER NOT NULL DEFAULT 0,
    replied_handoffs    INTEGER NOT NULL DEFAULT 0, -- with a known handoff time and a human reply after it
    reply_ms_sum        INTEGER NOT NULL DEFAULT 0,
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
CREATE TRIGGER conversation_insights_daily_insert AFTER INSERT ON conversation_insights BEGIN
    INSERT INTO conversation_insights_daily (workspace_id, day, assistant_id, type, conversations, ended, clean_ended, handoffs,
        handoff_events, unanswered_handoffs, replied_handoffs, reply_ms_sum)
    VALUES (new.workspace_id, new.created_at / 86400000, new.assistant_id, new.type, 1, (new.ended_at IS NOT NULL),
        (new.ended_at IS NOT NULL AND new.handoff_count = 0), (new.handoff_count > 0), new.handoff_count,
        (new.handoff_count > 0 AND new.first_human_reply_at IS NULL), (new.first_handoff_at IS NOT NULL AND new.first_human_reply_at IS NOT NULL),
        (CASE WHEN new.first_handoff_at IS NOT NULL AND new.first_human_reply_at IS NOT NULL THEN new.first_human_reply_at - new.first_handoff_at ELSE 0 END))
    ON CONFLICT (workspace_id, day, assistant_id, type) DO UPDATE SET conversations = conversations + excluded.conversations,
        ended = ended + excluded.ended, clean_ended = clean_ended + excluded.clean_ended, handoffs = handoffs + excluded.handoffs,
        handoff_events = handoff_events + excluded.handoff_events, unanswered_handoffs = unanswered_handoffs + excluded.unanswered_handoffs,
        replied_handoffs = replied_handoffs + excluded.replied_handoffs, reply_ms_sum = reply_ms_sum + excluded.reply_ms_sum;
END;
CREATE TRIGGER conversation_insights_daily_update AFTER UPDATE OF ended_at, handoff_count, first_handoff_at, first_human_reply_at ON conversation_insights BEGIN
    INSERT INTO conversation_insights_daily (workspace_id, day, assistant_id, type, conversations, ended, clean_ended, handoffs,
        handoff_events, unanswered_handoffs, replied_handoffs, reply_ms_sum)
    VALUES (old.workspace_id, old.created_at / 86400000, old.assistant_id, old.type, -1, -(old.ended_at IS NOT NULL),
        -(old.ended_at IS NOT NULL AND old.handoff_count = 0), -(old.handoff_count > 0), -old.handoff_count,
        -(old.handoff_count > 0 AND old.first_human_reply_at IS NULL), -(old.first_handoff_at IS NOT NULL AND old.first_human_reply_at IS NOT NULL),
        -(CASE WHEN old.first_handoff_at IS NOT NULL AND old.first_human_reply_at IS NOT NULL THEN old.first_human_reply_at - old.first_handoff_at ELSE 0 END))
    ON CONFLICT (workspace_id, day, assistant_id, type) DO UPDATE SET conversations = conversations + excluded.conversations,
        ended = ended + excluded.ended, clean_ended = clean_ended + excluded.clean_ended, handoffs = handoffs + excluded.handoffs,
        handoff_events = handoff_events + excluded.handoff_events, unanswered_handoffs = unanswered_handoffs + excluded.unanswered_handoffs,
        replied_handoffs = replied_handoffs + excluded.replied_handoffs, reply_ms_sum = reply_ms_sum + excluded.reply_ms_sum;
    INSERT INTO conversation_insights_daily (workspace_id, day, assistant_id, type, conversations, ended, clean_ended, handoffs,
        handoff_events, unanswered_handoffs, replied_handoffs, reply_ms_sum)
    VALUES (new.workspace_id, new.created_at / 86400000, new.assistant_id, new.type, 1, (new.ended_at IS NOT NULL),
        (new.ended_at IS NOT NULL AND new.handoff_count = 0), (new.handoff_count > 0), new.handoff_count,
        (new.handoff_count > 0 AND new.first_human_reply_at IS NULL), (new.first_handoff_at IS NOT NULL AND new.first_human_reply_at IS NOT NULL),
        (CASE WHEN new.first_handoff_at IS NOT NULL AND new.first_human_reply_at IS NOT NULL THEN new.first_human_reply_at - new.first_handoff_at ELSE 0 END))
    ON CONFLICT (workspace_id, day, assistant_id, type) DO UPDATE SET conversations = conversations + excluded.conversations,
        ended = ended + excluded.ended, clean_ended = clean_ended + excluded.clean_ended, handoffs = handoffs + excluded.handoffs,
        handoff_events = handoff_events + excluded.handoff_events, unanswered_handoffs = unanswered_handoffs + excluded.unanswered_handoffs,
        replied_handoffs = replied_handoffs + excluded.replied_handoffs, reply_ms_sum = reply_ms_sum + excluded.reply_ms_sum;
END;
CREATE TRIGGER conversation_insights_daily_delete AFTER DELETE ON conversation_insights BEGIN
    INSERT INTO conversation_insights_daily (workspace_id, day, assistant_id, type, conversations, ended, clean_ended, handoffs,
        handoff_events, unanswered_handoffs, replied_handoffs, reply_ms_sum)
    VALUES (old.workspace_id, old.created_at / 86400000, old.assistant_id, old.type, -1, -(old.ended_at IS NOT NULL),
        -(old.ended_at IS NOT NULL AND old.handoff_count = 0), -(old.handoff_count > 0), -old.handoff_count,
        -(old.handoff_count > 0 AND old.first_human_reply_at IS NULL), -(old.first_handoff_at IS NOT NULL AND old.first_human_reply_at IS NOT NULL),
        -(CASE WHEN old.first_handoff_at IS NOT NULL AND old.first_human_reply_at IS NOT NULL THEN old.first_human_reply_at - old.first_handoff_at ELSE 0 END))
    ON CONFLICT (workspace_id, day, assistant_id, type) DO UPDATE SET conversations = conversations + excluded.conversations,
        ended = ended + excluded.ended, clean_ended = clean_ended + excluded.clean_ended, handoffs = handoffs + excluded.handoffs,
        handoff_events = handoff_events + excluded.handoff_events, unanswered_handoffs = unanswered_handoffs + excluded.unanswered_handoffs,
        replied_handoffs = replied_handoffs + excluded.replied_handoffs, reply_ms_sum = reply_ms_sum + excluded.reply_ms_sum;
END;

-- backfill:begin (also run by Store.RebuildInsights; statements separated by ";\n")
INSERT INTO conversation_insights (conversation_pk, workspace_id, assistant_id, type, customer_id, created_at, ended_at)
    SELECT pk, workspace_id, assistant_id, type, customer_id, created_at, CASE WHEN status = 'ended' THEN COALESCE(ended_at, updated_at) END
    FROM conversations;
-- Handoffs by the assistant's transfer_to_human tool: their count and the first one's time.
UPDATE conversation_insights SET first_handoff_at = h.first_at, handoff_count = h.n
    FROM (SELECT m.conversation_pk AS pk, MIN(m.created_at) AS first_at, COUNT(*) AS n FROM messages m
          WHERE m.role = 'assistant' AND m.tool_calls LIKE '%"transfer_to_human"%'
            AND EXISTS (SELECT 1 FROM json_each(m.tool_calls) j WHERE json_extract(j.value, '$.name') = 'transfer_to_human')
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
