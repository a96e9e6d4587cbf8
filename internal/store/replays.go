package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/replay"
)

// CreateReplay stores a replay and its pending items (one per conversation still in the
// workspace, in order), then runs inTx with their positions in the same transaction.
func (s *Store) CreateReplay(ctx context.Context, r *replay.Replay, conversationIDs []string, inTx func(tx *sql.Tx, positions []int) error) error {
	cfg, err := json.Marshal(r.Config)
	if err != nil {
		return fmt.Errorf("encode replay config: %w", err)
	}
	filter, _ := json.Marshal(r.Filter)
	draft := ""
	if r.Draft != nil {
		b, _ := json.Marshal(r.Draft)
		draft = string(b)
	}
	return s.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO replays (id, workspace_id, assistant_id, assistant_name, version, draft, config, filter, status, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			r.ID, r.WorkspaceID, r.AssistantID, r.AssistantName, r.Version, draft, string(cfg), string(filter), string(r.Status), ms(r.CreatedAt)); err != nil {
			return fmt.Errorf("insert replay: %w", err)
		}
		positions := make([]int, 0, len(conversationIDs))
		for i, id := range conversationIDs {
			res, err := tx.Exec(`INSERT INTO replay_conversations (replay_id, position, conversation_pk)
				SELECT $1, $2, pk FROM conversations WHERE id = $3 AND workspace_id = $4`, r.ID, i, id, r.WorkspaceID)
			if err != nil {
				return fmt.Errorf("insert replay item: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				positions = append(positions, i)
			}
		}
		if inTx != nil {
			return inTx(tx, positions)
		}
		return nil
	})
}

const replayColumns = `r.id, r.workspace_id, r.assistant_id, r.assistant_name, r.version, r.draft, r.config, r.filter, r.status, r.error,
	r.created_at, r.started_at, r.finished_at,
	COUNT(i.position), COALESCE(SUM(CASE WHEN i.status <> 'pending' THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN i.status = 'failed' THEN 1 ELSE 0 END), 0),
	` + itemSums

// itemSums total the items' summary columns (aggregate over the alias i).
const itemSums = `COALESCE(SUM(i.turns), 0), COALESCE(SUM(i.changed_turns), 0), COALESCE(SUM(i.skipped_turns), 0), COALESCE(SUM(i.similarity_sum), 0),
	COALESCE(SUM(i.old_tokens_in), 0), COALESCE(SUM(i.old_tokens_out), 0), COALESCE(SUM(i.new_tokens_in), 0), COALESCE(SUM(i.new_tokens_out), 0),
	COALESCE(SUM(i.old_cost_micros), 0), COALESCE(SUM(i.new_cost_micros), 0), COALESCE(SUM(i.tool_call_diffs), 0), COALESCE(SUM(i.errors), 0)`

const replayFrom = ` FROM replays r LEFT JOIN replay_conversations i ON i.replay_id = r.id`

// GetReplay returns a replay of the workspace with its progress and totals.
func (s *Store) GetReplay(ctx context.Context, workspaceID, id string) (*replay.Replay, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+replayColumns+replayFrom+` WHERE r.id = $1 AND r.workspace_id = $2 GROUP BY r.id`, id, workspaceID)
	r, err := scanReplay(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, replay.ErrNotFound
	}
	return r, err
}

// ListReplays returns the workspace's replays, newest first, limit at a time.
func (s *Store) ListReplays(ctx context.Context, workspaceID string, limit int, cursor string) ([]*replay.Replay, string, error) {
	var q sqlBuilder
	where := `r.workspace_id = ` + q.arg(workspaceID)
	if cursor != "" {
		at, id, err := decodeReplayCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		a, b, c := q.arg(at), q.arg(at), q.arg(id)
		where += ` AND (r.created_at < ` + a + ` OR (r.created_at = ` + b + ` AND r.id < ` + c + `))`
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+replayColumns+replayFrom+` WHERE `+where+` GROUP BY r.id ORDER BY r.created_at DESC, r.id DESC LIMIT `+q.arg(limit+1), q.args...)
	if err != nil {
		return nil, "", fmt.Errorf("list replays: %w", err)
	}
	defer rows.Close()
	out := []*replay.Replay{}
	next := ""
	for rows.Next() {
		r, err := scanReplay(rows)
		if err != nil {
			return nil, "", err
		}
		if len(out) == limit {
			last := out[limit-1]
			next = base64.RawURLEncoding.EncodeToString([]byte("r1:" + strconv.FormatInt(ms(last.CreatedAt), 10) + ":" + last.ID))
			break
		}
		out = append(out, r)
	}
	return out, next, rows.Err()
}

func decodeReplayCursor(s string) (int64, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	parts := strings.SplitN(string(raw), ":", 3)
	if len(parts) != 3 || parts[0] != "r1" {
		return 0, "", ErrBadCursor
	}
	at, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	return at, parts[2], nil
}

func scanReplay(r scanner) (*replay.Replay, error) {
	out := &replay.Replay{}
	var draft, cfg, filter, status string
	var created int64
	var started, finished sql.NullInt64
	t := &out.Totals
	if err := r.Scan(&out.ID, &out.WorkspaceID, &out.AssistantID, &out.AssistantName, &out.Version, &draft, &cfg, &filter, &status, &out.Error,
		&created, &started, &finished, &out.Progress.Total, &out.Progress.Done, &t.Failed,
		&t.Turns, &t.ChangedTurns, &t.SkippedTurns, &t.SimilaritySum, &t.OldTokensIn, &t.OldTokensOut, &t.NewTokensIn, &t.NewTokensOut,
		&t.OldCostMicros, &t.NewCostMicros, &t.ToolCallDiffs, &t.Errors); err != nil {
		return nil, err
	}
	out.Status = replay.Status(status)
	out.CreatedAt, out.StartedAt, out.FinishedAt = fromMS(created), fromNullMS(started), fromNullMS(finished)
	t.Conversations = out.Progress.Done
	if draft != "" {
		out.Draft = &assistant.Draft{}
		if err := json.Unmarshal([]byte(draft), out.Draft); err != nil {
			return nil, fmt.Errorf("replay %s draft: %w", out.ID, err)
		}
	}
	if err := json.Unmarshal([]byte(cfg), &out.Config); err != nil {
		return nil, fmt.Errorf("replay %s config: %w", out.ID, err)
	}
	if err := json.Unmarshal([]byte(filter), &out.Filter); err != nil {
		return nil, fmt.Errorf("replay %s filter: %w", out.ID, err)
	}
	return out, nil
}

const itemColumns = `i.replay_id, i.position, c.id, c.type, c.customer_id, c.customer_name, i.status, i.error,
	i.turns, i.changed_turns, i.skipped_turns, i.similarity_sum, i.old_tokens_in, i.old_tokens_out, i.new_tokens_in, i.new_tokens_out,
	i.old_cost_micros, i.new_cost_micros, i.tool_call_diffs, i.errors, i.result, i.finished_at`

const itemFrom = ` FROM replay_conversations i JOIN replays r ON r.id = i.replay_id JOIN conversations c ON c.pk = i.conversation_pk`

// ReplayItems returns up to limit items of a replay after position after, in order.
func (s *Store) ReplayItems(ctx context.Context, workspaceID, replayID string, after, limit int) ([]*replay.Item, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+itemColumns+itemFrom+` WHERE i.replay_id = $1 AND r.workspace_id = $2 AND i.position > $3 ORDER BY i.position LIMIT $4`,
		replayID, workspaceID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("replay items: %w", err)
	}
	defer rows.Close()
	out := []*replay.Item{}
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// ReplayItem returns one item of a replay.
func (s *Store) ReplayItem(ctx context.Context, workspaceID, replayID string, position int) (*replay.Item, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+itemColumns+itemFrom+` WHERE i.replay_id = $1 AND r.workspace_id = $2 AND i.position = $3`, replayID, workspaceID, position)
	it, err := scanItem(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, replay.ErrNotFound
	}
	return it, err
}

func scanItem(r scanner) (*replay.Item, error) {
	it := &replay.Item{}
	var result string
	var finished sql.NullInt64
	t := &it.Totals
	if err := r.Scan(&it.ReplayID, &it.Position, &it.ConversationID, &it.ConversationType, &it.CustomerID, &it.CustomerName, &it.Status, &it.Error,
		&t.Turns, &t.ChangedTurns, &t.SkippedTurns, &t.SimilaritySum, &t.OldTokensIn, &t.OldTokensOut, &t.NewTokensIn, &t.NewTokensOut,
		&t.OldCostMicros, &t.NewCostMicros, &t.ToolCallDiffs, &t.Errors, &result, &finished); err != nil {
		return nil, err
	}
	it.FinishedAt = fromNullMS(finished)
	switch it.Status {
	case replay.ItemDone:
		t.Conversations = 1
	case replay.ItemFailed:
		t.Conversations, t.Failed = 1, 1
	}
	it.Turns = []replay.Turn{}
	if result != "" {
		if err := json.Unmarshal([]byte(result), &it.Turns); err != nil {
			return nil, fmt.Errorf("replay item %d turns: %w", it.Position, err)
		}
	}
	return it, nil
}

// StartReplay marks a queued replay running.
func (s *Store) StartReplay(ctx context.Context, workspaceID, replayID string, at time.Time) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE replays SET status = $1, started_at = $2 WHERE id = $3 AND workspace_id = $4 AND status = $5`,
			string(replay.StatusRunning), ms(at), replayID, workspaceID, string(replay.StatusQueued))
		return err
	})
}

// FinishReplayItem stores an item's outcome and, when no item is pending any more, closes the
// replay: done, or failed when every conversation failed. The replay's row is updated first, so
// concurrent finishers on PostgreSQL wait for each other and the last one sees all the others.
func (s *Store) FinishReplayItem(ctx context.Context, workspaceID, replayID string, it *replay.Item, at time.Time) error {
	result, err := json.Marshal(it.Turns)
	if err != nil {
		return fmt.Errorf("encode replay turns: %w", err)
	}
	t := it.Totals
	return s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE replays SET status = status WHERE id = $1 AND workspace_id = $2`, replayID, workspaceID)
		if err != nil {
			return err
		}
		if err := expectOne(res); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE replay_conversations SET status = $1, error = $2, turns = $3, changed_turns = $4, skipped_turns = $5, similarity_sum = $6,
			old_tokens_in = $7, old_tokens_out = $8, new_tokens_in = $9, new_tokens_out = $10, old_cost_micros = $11, new_cost_micros = $12,
			tool_call_diffs = $13, errors = $14, result = $15, finished_at = $16
			WHERE replay_id = $17 AND position = $18 AND status = 'pending'`,
			it.Status, it.Error, t.Turns, t.ChangedTurns, t.SkippedTurns, t.SimilaritySum, t.OldTokensIn, t.OldTokensOut, t.NewTokensIn, t.NewTokensOut,
			t.OldCostMicros, t.NewCostMicros, t.ToolCallDiffs, t.Errors, string(result), ms(at), replayID, it.Position); err != nil {
			return fmt.Errorf("update replay item: %w", err)
		}
		var pending, total, failed int
		var firstErr sql.NullString
		if err := tx.QueryRow(`SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), COUNT(*),
			COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0), MIN(CASE WHEN status = 'failed' THEN error END)
			FROM replay_conversations WHERE replay_id = $1`, replayID).Scan(&pending, &total, &failed, &firstErr); err != nil {
			return fmt.Errorf("replay progress: %w", err)
		}
		if pending > 0 {
			return nil
		}
		status, msg := replay.StatusDone, ""
		if failed == total {
			status, msg = replay.StatusFailed, "every conversation failed: "+firstErr.String
		}
		_, err = tx.Exec(`UPDATE replays SET status = $1, error = $2, finished_at = $3, started_at = COALESCE(started_at, $4) WHERE id = $5`,
			string(status), msg, ms(at), ms(at), replayID)
		return err
	})
}
