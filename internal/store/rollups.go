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

func (d *rollupDelta) add(o *rollupDelta) {
	d.conversations += o.conversations
	d.messages += o.messages
	d.inbound += o.inbound
	d.answered += o.answered
	d.responseMS += o.responseMS
	d.tokensIn += o.tokensIn
	d.tokensOut += o.tokensOut
	d.cost += o.cost
}

// addRollups adds a write's rollup deltas: at the end of the group commit on SQLite (deferred.go),
// at once on PostgreSQL.
func (s *Store) addRollups(tx *sql.Tx, workspaceID, assistantID, typ string, r rollups) error {
	for hour, d := range r {
		k := rollupKey{workspaceID: workspaceID, assistantID: assistantID, typ: typ, hour: hour}
		if s.item != nil {
			s.item.addRollup(k, d)
			continue
		}
		if err := upsertRollup(tx, k, d); err != nil {
			return err
		}
	}
	return nil
}

// dailyUpserts are the rollup_daily upserts, one per hour of the day (the column that counts the
// conversations started in that hour differs).
var dailyUpserts = func() (out [24]string) {
	for h := range out {
		col := fmt.Sprintf("c%02d", h)
		out[h] = `INSERT INTO rollup_daily (workspace_id, bucket, assistant_id, type, conversations, messages, inbound, answered,
			response_ms_sum, tokens_in, tokens_out, cost_micros, ` + col + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $5)
			ON CONFLICT (workspace_id, bucket, assistant_id, type) DO UPDATE SET
			conversations = rollup_daily.conversations + excluded.conversations, messages = rollup_daily.messages + excluded.messages,
			inbound = rollup_daily.inbound + excluded.inbound, answered = rollup_daily.answered + excluded.answered,
			response_ms_sum = rollup_daily.response_ms_sum + excluded.response_ms_sum, tokens_in = rollup_daily.tokens_in + excluded.tokens_in,
			tokens_out = rollup_daily.tokens_out + excluded.tokens_out, cost_micros = rollup_daily.cost_micros + excluded.cost_micros,
			` + col + ` = rollup_daily.` + col + ` + excluded.` + col
	}
	return out
}()

// upsertRollup adds one hour's deltas to its hourly and daily rollup rows.
func upsertRollup(tx *sql.Tx, k rollupKey, d *rollupDelta) error {
	if _, err := tx.Exec(`INSERT INTO rollup_hourly (workspace_id, bucket, assistant_id, type, conversations, messages, inbound, answered,
		response_ms_sum, tokens_in, tokens_out, cost_micros) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (workspace_id, bucket, assistant_id, type) DO UPDATE SET
		conversations = rollup_hourly.conversations + excluded.conversations, messages = rollup_hourly.messages + excluded.messages,
		inbound = rollup_hourly.inbound + excluded.inbound, answered = rollup_hourly.answered + excluded.answered,
		response_ms_sum = rollup_hourly.response_ms_sum + excluded.response_ms_sum, tokens_in = rollup_hourly.tokens_in + excluded.tokens_in,
		tokens_out = rollup_hourly.tokens_out + excluded.tokens_out, cost_micros = rollup_hourly.cost_micros + excluded.cost_micros`,
		k.workspaceID, k.hour, k.assistantID, k.typ, d.conversations, d.messages, d.inbound, d.answered, d.responseMS, d.tokensIn, d.tokensOut, d.cost); err != nil {
		return fmt.Errorf("update hourly rollup: %w", err)
	}
	day, hourOfDay := k.hour-mod(k.hour, 86400), mod(k.hour, 86400)/3600
	if _, err := tx.Exec(dailyUpserts[hourOfDay], k.workspaceID, day, k.assistantID, k.typ, d.conversations, d.messages, d.inbound, d.answered,
		d.responseMS, d.tokensIn, d.tokensOut, d.cost); err != nil {
		return fmt.Errorf("update daily rollup: %w", err)
	}
	return nil
}

// mod is the non-negative remainder (times before 1970 included).
func mod(a, b int64) int64 {
	if m := a % b; m < 0 {
		return m + b
	}
	return a % b
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

// dayRanges splits a metrics filter's range into whole UTC days, read from rollup_daily, and the
// partial days at its edges, read from rollup_hourly; the hours counted are exactly those the
// hourly rows alone would give.
func dayRanges(f metrics.Filter) (days *metrics.Filter, edges []metrics.Filter) {
	const day = 24 * time.Hour
	whole := f
	if f.From != nil {
		start := f.From.UTC().Truncate(day)
		if start.Before(*f.From) {
			start = start.Add(day)
		}
		whole.From = &start
	}
	if f.To != nil {
		end := f.To.UTC().Truncate(day)
		whole.To = &end
	}
	if whole.From != nil && whole.To != nil && !whole.From.Before(*whole.To) {
		return nil, []metrics.Filter{f} // less than a whole day
	}
	if f.From != nil && whole.From.After(*f.From) {
		e := f
		e.To = whole.From
		edges = append(edges, e)
	}
	if f.To != nil && whole.To.Before(*f.To) {
		e := f
		e.From = whole.To
		edges = append(edges, e)
	}
	return &whole, edges
}

const rollupSums = `CAST(SUM(conversations) AS BIGINT), CAST(SUM(messages) AS BIGINT), CAST(SUM(inbound) AS BIGINT),
	CAST(SUM(answered) AS BIGINT), CAST(SUM(response_ms_sum) AS BIGINT), CAST(SUM(tokens_in) AS BIGINT), CAST(SUM(tokens_out) AS BIGINT),
	CAST(SUM(cost_micros) AS BIGINT)`

// Rollups streams the rollups that match f summed per day and assistant: whole days come from the
// daily rollups (a year is a few hundred rows per assistant and channel), the edges from hourly ones.
func (s *Store) Rollups(ctx context.Context, workspaceID string, f metrics.Filter, fn func(metrics.Bucket) error) error {
	days, edges := dayRanges(f)
	if days != nil {
		var q sqlBuilder
		where := rollupWhere(&q, workspaceID, *days)
		if err := s.scanBuckets(ctx, `SELECT bucket / 86400, assistant_id, `+rollupSums+` FROM rollup_daily WHERE `+where+
			` GROUP BY bucket, assistant_id`, q.args, fn); err != nil {
			return err
		}
	}
	for _, e := range edges {
		var q sqlBuilder
		where := rollupWhere(&q, workspaceID, e)
		if err := s.scanBuckets(ctx, `SELECT bucket / 86400, assistant_id, `+rollupSums+` FROM rollup_hourly WHERE `+where+
			` GROUP BY bucket / 86400, assistant_id`, q.args, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) scanBuckets(ctx context.Context, query string, args []any, fn func(metrics.Bucket) error) error {
	rows, err := s.read.QueryContext(ctx, query, args...)
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

// hourColumns sums the daily rows' conversations started per hour of the day.
var hourColumns = func() string {
	var b strings.Builder
	for h := 0; h < 24; h++ {
		if h > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "CAST(SUM(c%02d) AS BIGINT)", h)
	}
	return b.String()
}()

// HourOfWeek counts the conversations started in each hour of the week (UTC, Sunday first).
// The Unix epoch began on a Thursday: day 0 is weekday 4, hour 0 of the epoch is hour 4×24 of its week.
func (s *Store) HourOfWeek(ctx context.Context, workspaceID string, f metrics.Filter) ([7][24]int64, error) {
	var out [7][24]int64
	days, edges := dayRanges(f)
	if days != nil {
		var q sqlBuilder
		where := rollupWhere(&q, workspaceID, *days)
		rows, err := s.read.QueryContext(ctx, `SELECT (bucket / 86400 + 4) % 7, `+hourColumns+` FROM rollup_daily WHERE `+where+
			` GROUP BY (bucket / 86400 + 4) % 7`, q.args...)
		if err != nil {
			return out, fmt.Errorf("read hours of week: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var wd int64
			var hours [24]int64
			dest := []any{&wd}
			for h := range hours {
				dest = append(dest, &hours[h])
			}
			if err := rows.Scan(dest...); err != nil {
				return out, err
			}
			if wd >= 0 && wd < 7 {
				for h, n := range hours {
					out[wd][h] += n
				}
			}
		}
		if err := rows.Err(); err != nil {
			return out, err
		}
	}
	for _, e := range edges {
		var q sqlBuilder
		where := rollupWhere(&q, workspaceID, e)
		rows, err := s.read.QueryContext(ctx, `SELECT (bucket / 3600 + 96) % 168, CAST(SUM(conversations) AS BIGINT) FROM rollup_hourly
			WHERE `+where+` AND conversations > 0 GROUP BY (bucket / 3600 + 96) % 168`, q.args...)
		if err != nil {
			return out, fmt.Errorf("read hours of week: %w", err)
		}
		for rows.Next() {
			var how, n int64
			if err := rows.Scan(&how, &n); err != nil {
				rows.Close()
				return out, err
			}
			if how >= 0 && how < 168 {
				out[how/24][how%24] += n
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return out, err
		}
	}
	return out, nil
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

// RebuildDailyRollups derives rollup_daily again from rollup_hourly, for data loaded in bulk
// around the store (the bench generator) or a repair; normal writes keep both up to date.
func (s *Store) RebuildDailyRollups(ctx context.Context) error {
	var sums, cols strings.Builder
	for h := 0; h < 24; h++ {
		fmt.Fprintf(&cols, ", c%02d", h)
		fmt.Fprintf(&sums, ", SUM(CASE WHEN bucket %% 86400 = %d THEN conversations ELSE 0 END)", h*3600)
	}
	return s.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM rollup_daily`); err != nil {
			return fmt.Errorf("rebuild daily rollups: %w", err)
		}
		if _, err := tx.Exec(`INSERT INTO rollup_daily (workspace_id, bucket, assistant_id, type, conversations, messages, inbound, answered,
			response_ms_sum, tokens_in, tokens_out, cost_micros` + cols.String() + `)
			SELECT workspace_id, bucket - bucket % 86400, assistant_id, type, SUM(conversations), SUM(messages), SUM(inbound), SUM(answered),
			SUM(response_ms_sum), SUM(tokens_in), SUM(tokens_out), SUM(cost_micros)` + sums.String() + `
			FROM rollup_hourly GROUP BY workspace_id, bucket - bucket % 86400, assistant_id, type`); err != nil {
			return fmt.Errorf("rebuild daily rollups: %w", err)
		}
		return nil
	})
}

// IndexText adds the text of messages with pk > afterPK to the full-text index, for messages
// loaded in bulk around the store (SQLite; PostgreSQL indexes by itself).
func (s *Store) IndexText(ctx context.Context, afterPK int64) error {
	if s.dialect != "sqlite" {
		return nil
	}
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO messages_fts (rowid, text) SELECT `+ftsKey+`, text FROM messages WHERE pk > $1 AND text <> '' ORDER BY conversation_pk, pk`, afterPK)
		return err
	})
}

// textMergePages bounds one merge step of the full-text index (pages written), so a step holds the
// writer for milliseconds, not seconds.
const textMergePages = 32

// MergeTextIndex merges the full-text index's segments into one, in small steps for up to budget,
// and reports whether work is left: for text indexed in bulk (IndexText), which leaves many
// segments, and a search that walks recent conversations looks every conversation term up in every
// segment (merged, the common-word walk over 800 conversations took 6 ms instead of 90 ms at 1M
// messages). Not for a live server: once a step has started merging the largest segment, FTS5's
// automerge continues that merge a little at every commit (measured: 40% of an AI turn's CPU on a
// 10M-message index); normal writes keep segments in check with automerge alone. SQLite only.
func (s *Store) MergeTextIndex(ctx context.Context, budget time.Duration) (bool, error) {
	if s.dialect != "sqlite" {
		return false, nil
	}
	deadline := time.Now().Add(budget)
	for time.Now().Before(deadline) {
		worked := false
		err := s.Write(ctx, func(tx *sql.Tx) error {
			var before, after int64
			if err := tx.QueryRow(`SELECT total_changes()`).Scan(&before); err != nil {
				return err
			}
			// A negative page count merges segments of any level, as 'optimize' does, but a bounded
			// amount at a time.
			if _, err := tx.Exec(`INSERT INTO messages_fts (messages_fts, rank) VALUES ('merge', $1)`, -textMergePages); err != nil {
				return err
			}
			if err := tx.QueryRow(`SELECT total_changes()`).Scan(&after); err != nil {
				return err
			}
			worked = after-before >= 2 // FTS5's documented sign that the step merged something
			return nil
		})
		if err != nil {
			return false, fmt.Errorf("merge text index: %w", err)
		}
		if !worked {
			return false, nil
		}
	}
	return true, nil
}
