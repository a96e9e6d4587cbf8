package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/metrics"
)

// rollupDelta is what one transaction adds to one hour's rollup row.
type rollupDelta struct {
	conversations, messages, inbound, answered, responseMS, tokensIn, tokensOut, cost int64
}

// rollups collects a transaction's deltas by hour (unix seconds of the hour's start).
type rollups map[int64]*rollupDelta

func (r rollups) at(t time.Time) *rollupDelta {
	hour := t.Unix() - t.Unix()%3600
	if t.Unix() < 0 && t.Unix()%3600 != 0 {
		hour -= 3600
	}
	d := r[hour]
	if d == nil {
		d = &rollupDelta{}
		r[hour] = d
	}
	return d
}

func (r rollups) flush(tx *sql.Tx, workspaceID, assistantID, typ string) error {
	for hour, d := range r {
		if _, err := tx.Exec(`INSERT INTO rollup_hourly (workspace_id, bucket, assistant_id, type, conversations, messages, inbound, answered,
			response_ms_sum, tokens_in, tokens_out, cost_micros) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (workspace_id, bucket, assistant_id, type) DO UPDATE SET
			conversations = rollup_hourly.conversations + excluded.conversations, messages = rollup_hourly.messages + excluded.messages,
			inbound = rollup_hourly.inbound + excluded.inbound, answered = rollup_hourly.answered + excluded.answered,
			response_ms_sum = rollup_hourly.response_ms_sum + excluded.response_ms_sum, tokens_in = rollup_hourly.tokens_in + excluded.tokens_in,
			tokens_out = rollup_hourly.tokens_out + excluded.tokens_out, cost_micros = rollup_hourly.cost_micros + excluded.cost_micros`,
			workspaceID, hour, assistantID, typ, d.conversations, d.messages, d.inbound, d.answered, d.responseMS, d.tokensIn, d.tokensOut, d.cost); err != nil {
			return fmt.Errorf("update rollup: %w", err)
		}
	}
	return nil
}

// rollupWhere is the WHERE clause of the metrics filter over rollup_hourly.
func rollupWhere(q *sqlBuilder, workspaceID string, f metrics.Filter) string {
	conds := []string{`workspace_id = ` + q.arg(workspaceID)}
	if f.From != nil {
		conds = append(conds, `bucket >= `+q.arg(f.From.Unix()))
	}
	if f.To != nil {
		conds = append(conds, `bucket < `+q.arg(f.To.Unix()))
	}
	if f.AssistantID != "" {
		conds = append(conds, `assistant_id = `+q.arg(f.AssistantID))
	}
	if len(f.Types) > 0 {
		ph := make([]string, len(f.Types))
		for i, t := range f.Types {
			ph[i] = q.arg(t)
		}
		conds = append(conds, `type IN (`+strings.Join(ph, ", ")+`)`)
	}
	return strings.Join(conds, " AND ")
}

// Rollups streams the rollups that match f summed per day and assistant: the database does the
// aggregation, so a year of hourly rows comes back as a few hundred.
func (s *Store) Rollups(ctx context.Context, workspaceID string, f metrics.Filter, fn func(metrics.Bucket) error) error {
	var q sqlBuilder
	where := rollupWhere(&q, workspaceID, f)
	rows, err := s.read.QueryContext(ctx, `SELECT bucket / 86400, assistant_id, CAST(SUM(conversations) AS BIGINT), CAST(SUM(messages) AS BIGINT),
		CAST(SUM(inbound) AS BIGINT), CAST(SUM(answered) AS BIGINT), CAST(SUM(response_ms_sum) AS BIGINT), CAST(SUM(tokens_in) AS BIGINT),
		CAST(SUM(tokens_out) AS BIGINT), CAST(SUM(cost_micros) AS BIGINT) FROM rollup_hourly WHERE `+where+` GROUP BY bucket / 86400, assistant_id`, q.args...)
	if err != nil {
		return fmt.Errorf("read rollups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b metrics.Bucket
		var day int64
		if err := rows.Scan(&day, &b.AssistantID, &b.Conversations, &b.Messages, &b.Inbound, &b.Answered, &b.ResponseMSSum, &b.TokensIn, &b.TokensOut, &b.CostMicros); err != nil {
			return err
		}
		b.Day = time.Unix(day*86400, 0).UTC()
		if err := fn(b); err != nil {
			return err
		}
	}
	return rows.Err()
}

// HourOfWeek counts the conversations started in each hour of the week (UTC, Sunday first).
// The Unix epoch began on a Thursday: hour 0 of the epoch is hour 4×24 of its week.
func (s *Store) HourOfWeek(ctx context.Context, workspaceID string, f metrics.Filter) ([7][24]int64, error) {
	var out [7][24]int64
	var q sqlBuilder
	where := rollupWhere(&q, workspaceID, f)
	rows, err := s.read.QueryContext(ctx, `SELECT (bucket / 3600 + 96) % 168, CAST(SUM(conversations) AS BIGINT) FROM rollup_hourly
		WHERE `+where+` AND conversations > 0 GROUP BY (bucket / 3600 + 96) % 168`, q.args...)
	if err != nil {
		return out, fmt.Errorf("read hours of week: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var how, n int64
		if err := rows.Scan(&how, &n); err != nil {
			return out, err
		}
		if how >= 0 && how < 168 {
			out[how/24][how%24] += n
		}
	}
	return out, rows.Err()
}

// AssistantNames maps every assistant id of the workspace (deleted ones too) to its name.
func (s *Store) AssistantNames(ctx context.Context, workspaceID string) (map[string]string, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, name FROM assistants WHERE workspace_id = $1`, workspaceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, err
		}
		out[id] = name
	}
	return out, rows.Err()
}
