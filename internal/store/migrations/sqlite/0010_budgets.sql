-- Budget alerts: an assistant's monthly cost budget (micro-dollars; NULL or 0: none) and the alerts
-- raised when its spend in a UTC calendar month reaches 80% and 100% of it. The primary key makes
-- each (assistant, month, threshold) alert happen once, whichever instance or sweep sees it first.
ALTER TABLE assistants ADD COLUMN monthly_budget_micros INTEGER;
CREATE INDEX assistants_budgeted ON assistants(workspace_id, id) WHERE monthly_budget_micros > 0 AND deleted_at IS NULL;

CREATE TABLE budget_alerts (
    assistant_id  TEXT NOT NULL,
    month         TEXT NOT NULL,    -- YYYY-MM, UTC
    threshold     INTEGER NOT NULL, -- percent of the budget: 80 or 100
    workspace_id  TEXT NOT NULL,
    budget_micros INTEGER NOT NULL, -- the budget and the spend when the threshold was reached
    spent_micros  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (assistant_id, month, threshold)
);
CREATE INDEX budget_alerts_workspace ON budget_alerts(workspace_id, month);

-- An assistant's spend in a month is a range of its hourly rollups: without this index a budget check
-- scans the month of every assistant of the workspace. Rollup upserts mostly update cost and counts
-- of an existing row, which leaves these columns (and so the index) untouched.
CREATE INDEX rollup_hourly_assistant ON rollup_hourly(workspace_id, assistant_id, bucket);
