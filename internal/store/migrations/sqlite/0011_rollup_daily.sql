-- Daily metrics rollups: what rollup_hourly holds, summed per UTC day, plus the conversations started
-- in each hour of that day (c00..c23) for the hour-of-day and weekday×hour charts. Metrics read whole
-- days here (24× fewer rows) and only the partial days at a range's edges from rollup_hourly.
CREATE TABLE rollup_daily (
    workspace_id    TEXT NOT NULL,
    bucket          INTEGER NOT NULL, -- day start, unix seconds UTC
    assistant_id    TEXT NOT NULL,
    type            TEXT NOT NULL,
    conversations   INTEGER NOT NULL DEFAULT 0,
    messages        INTEGER NOT NULL DEFAULT 0,
    inbound         INTEGER NOT NULL DEFAULT 0,
    answered        INTEGER NOT NULL DEFAULT 0,
    response_ms_sum INTEGER NOT NULL DEFAULT 0,
    tokens_in       INTEGER NOT NULL DEFAULT 0,
    tokens_out      INTEGER NOT NULL DEFAULT 0,
    cost_micros     INTEGER NOT NULL DEFAULT 0,
    c00 INTEGER NOT NULL DEFAULT 0,
    c01 INTEGER NOT NULL DEFAULT 0,
    c02 INTEGER NOT NULL DEFAULT 0,
    c03 INTEGER NOT NULL DEFAULT 0,
    c04 INTEGER NOT NULL DEFAULT 0,
    c05 INTEGER NOT NULL DEFAULT 0,
    c06 INTEGER NOT NULL DEFAULT 0,
    c07 INTEGER NOT NULL DEFAULT 0,
    c08 INTEGER NOT NULL DEFAULT 0,
    c09 INTEGER NOT NULL DEFAULT 0,
    c10 INTEGER NOT NULL DEFAULT 0,
    c11 INTEGER NOT NULL DEFAULT 0,
    c12 INTEGER NOT NULL DEFAULT 0,
    c13 INTEGER NOT NULL DEFAULT 0,
    c14 INTEGER NOT NULL DEFAULT 0,
    c15 INTEGER NOT NULL DEFAULT 0,
    c16 INTEGER NOT NULL DEFAULT 0,
    c17 INTEGER NOT NULL DEFAULT 0,
    c18 INTEGER NOT NULL DEFAULT 0,
    c19 INTEGER NOT NULL DEFAULT 0,
    c20 INTEGER NOT NULL DEFAULT 0,
    c21 INTEGER NOT NULL DEFAULT 0,
    c22 INTEGER NOT NULL DEFAULT 0,
    c23 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, bucket, assistant_id, type)
);
-- An assistant's month (budget checks) is a range of its daily rows: ~30 per channel instead of ~720
-- hourly ones, so the hourly index of 0010 is no longer needed.
CREATE INDEX rollup_daily_assistant ON rollup_daily(workspace_id, assistant_id, bucket);
DROP INDEX rollup_hourly_assistant;

INSERT INTO rollup_daily (workspace_id, bucket, assistant_id, type, conversations, messages, inbound, answered, response_ms_sum,
    tokens_in, tokens_out, cost_micros, c00, c01, c02, c03, c04, c05, c06, c07, c08, c09, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22, c23)
SELECT workspace_id, bucket - bucket % 86400, assistant_id, type, SUM(conversations), SUM(messages), SUM(inbound), SUM(answered),
    SUM(response_ms_sum), SUM(tokens_in), SUM(tokens_out), SUM(cost_micros),
    SUM(CASE WHEN bucket % 86400 = 0 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 3600 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 7200 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 10800 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 14400 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 18000 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 21600 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 25200 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 28800 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 32400 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 36000 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 39600 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 43200 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 46800 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 50400 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 54000 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 57600 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 61200 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 64800 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 68400 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 72000 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 75600 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 79200 THEN conversations ELSE 0 END),
    SUM(CASE WHEN bucket % 86400 = 82800 THEN conversations ELSE 0 END)
FROM rollup_hourly GROUP BY workspace_id, bucket - bucket % 86400, assistant_id, type;

-- Full-text rows are written once per group commit by the store (deferred.go), not by a trigger per
-- message: FTS5 flushes its pending index at every statement journal and savepoint, so a trigger
-- made every message a new index segment (a third of the write path's time).
DROP TRIGGER messages_fts_insert;
