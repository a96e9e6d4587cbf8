-- Daily metrics rollups: what rollup_hourly holds, summed per UTC day, plus the conversations started
-- in each hour of that day (c00..c23) for the hour-of-day and weekday×hour charts. Metrics read whole
-- days here (24× fewer rows) and only the partial days at a range's edges from rollup_hourly.
CREATE TABLE rollup_daily (
    workspace_id    TEXT NOT NULL,
    bucket          BIGINT NOT NULL, -- day start, unix seconds UTC
    assistant_id    TEXT NOT NULL,
    type            TEXT NOT NULL,
    conversations   BIGINT NOT NULL DEFAULT 0,
    messages        BIGINT NOT NULL DEFAULT 0,
    inbound         BIGINT NOT NULL DEFAULT 0,
    answered        BIGINT NOT NULL DEFAULT 0,
    response_ms_sum BIGINT NOT NULL DEFAULT 0,
    tokens_in       BIGINT NOT NULL DEFAULT 0,
    tokens_out      BIGINT NOT NULL DEFAULT 0,
    cost_micros     BIGINT NOT NULL DEFAULT 0,
    c00 BIGINT NOT NULL DEFAULT 0,
    c01 BIGINT NOT NULL DEFAULT 0,
    c02 BIGINT NOT NULL DEFAULT 0,
    c03 BIGINT NOT NULL DEFAULT 0,
    c04 BIGINT NOT NULL DEFAULT 0,
    c05 BIGINT NOT NULL DEFAULT 0,
    c06 BIGINT NOT NULL DEFAULT 0,
    c07 BIGINT NOT NULL DEFAULT 0,
    c08 BIGINT NOT NULL DEFAULT 0,
    c09 BIGINT NOT NULL DEFAULT 0,
    c10 BIGINT NOT NULL DEFAULT 0,
    c11 BIGINT NOT NULL DEFAULT 0,
    c12 BIGINT NOT NULL DEFAULT 0,
    c13 BIGINT NOT NULL DEFAULT 0,
    c14 BIGINT NOT NULL DEFAULT 0,
    c15 BIGINT NOT NULL DEFAULT 0,
    c16 BIGINT NOT NULL DEFAULT 0,
    c17 BIGINT NOT NULL DEFAULT 0,
    c18 BIGINT NOT NULL DEFAULT 0,
    c19 BIGINT NOT NULL DEFAULT 0,
    c20 BIGINT NOT NULL DEFAULT 0,
    c21 BIGINT NOT NULL DEFAULT 0,
    c22 BIGINT NOT NULL DEFAULT 0,
    c23 BIGINT NOT NULL DEFAULT 0,
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
