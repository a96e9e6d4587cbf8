package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parley-hq/parley/internal/budget"
)

// AssistantBudget returns a live assistant's name and monthly budget in micro-dollars (0: none, or
// no such assistant).
func (s *Store) AssistantBudget(ctx context.Context, workspaceID, assistantID string) (string, int64, error) {
	var name string
	var micros sql.NullInt64
	err := s.read.QueryRowContext(ctx, `SELECT name, monthly_budget_micros FROM assistants WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL`,
		assistantID, workspaceID).Scan(&name, &micros)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	return name, micros.Int64, nil
}

// AssistantSpend sums the assistant's cost in [from, to), both on UTC day boundaries (a month),
// from the daily rollups (kept in the transaction of every message and delivery price).
func (s *Store) AssistantSpend(ctx context.Context, workspaceID, assistantID string, from, to time.Time) (int64, error) {
	var spent int64
	err := s.read.QueryRowContext(ctx, `SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM rollup_daily
		WHERE workspace_id = $1 AND bucket >= $2 AND bucket < $3 AND assistant_id = $4`,
		workspaceID, from.Unix(), to.Unix(), assistantID).Scan(&spent)
	if err != nil {
		return 0, fmt.Errorf("sum spend: %w", err)
	}
	return spent, nil
}

// BudgetedAssistants lists the live assistants that have a budget, in every workspace.
func (s *Store) BudgetedAssistants(ctx context.Context) ([]budget.Ref, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT workspace_id, id FROM assistants WHERE monthly_budget_micros > 0 AND deleted_at IS NULL ORDER BY workspace_id, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []budget.Ref
	for rows.Next() {
		var r budget.Ref
		if err := rows.Scan(&r.WorkspaceID, &r.AssistantID); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// RecordBudgetAlert inserts the alert unless one exists for its (assistant, month, threshold) and,
// only when this call inserted it, runs inTx (the webhook deliveries) in the same transaction.
func (s *Store) RecordBudgetAlert(ctx context.Context, a budget.Alert, inTx func(tx *sql.Tx) error) (bool, error) {
	created := false
	err := s.Write(ctx, func(tx *sql.Tx) error {
		created = false
		res, err := tx.Exec(`INSERT INTO budget_alerts (assistant_id, month, threshold, workspace_id, budget_micros, spent_micros, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (assistant_id, month, threshold) DO NOTHING`,
			a.AssistantID, a.Month, a.Threshold, a.WorkspaceID, a.BudgetMicros, a.SpentMicros, ms(a.CreatedAt))
		if err != nil {
			return fmt.Errorf("insert budget alert: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		created = true
		if inTx != nil {
			return inTx(tx)
		}
		return nil
	})
	return created, err
}

// BudgetStatuses returns the workspace's live assistants that have a budget (only assistantID when
// it is not ""), with their spend and alerts in the UTC month of now, oldest assistant first.
func (s *Store) BudgetStatuses(ctx context.Context, workspaceID, assistantID string, now time.Time) ([]budget.Status, error) {
	from, to := budget.MonthBounds(now)
	month := budget.Month(now)
	rows, err := s.read.QueryContext(ctx, `SELECT a.id, a.name, a.monthly_budget_micros,
		CAST(COALESCE((SELECT SUM(r.cost_micros) FROM rollup_daily r WHERE r.workspace_id = a.workspace_id AND r.assistant_id = a.id
			AND r.bucket >= $2 AND r.bucket < $3), 0) AS BIGINT)
		FROM assistants a WHERE a.workspace_id = $1 AND a.monthly_budget_micros > 0 AND a.deleted_at IS NULL AND ($4 = '' OR a.id = $4)
		ORDER BY a.created_at, a.id`,
		workspaceID, from.Unix(), to.Unix(), assistantID)
	if err != nil {
		return nil, fmt.Errorf("read budgets: %w", err)
	}
	defer rows.Close()
	out := []budget.Status{}
	index := map[string]int{}
	for rows.Next() {
		st := budget.Status{Month: month, Alerts: []budget.Alert{}}
		if err := rows.Scan(&st.AssistantID, &st.AssistantName, &st.BudgetMicros, &st.SpentMicros); err != nil {
			return nil, err
		}
		index[st.AssistantID] = len(out)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	alerts, err := s.read.QueryContext(ctx, `SELECT assistant_id, threshold, budget_micros, spent_micros, created_at FROM budget_alerts
		WHERE workspace_id = $1 AND month = $2 AND ($3 = '' OR assistant_id = $3) ORDER BY threshold`, workspaceID, month, assistantID)
	if err != nil {
		return nil, fmt.Errorf("read budget alerts: %w", err)
	}
	defer alerts.Close()
	for alerts.Next() {
		a := budget.Alert{WorkspaceID: workspaceID, Month: month}
		var created int64
		if err := alerts.Scan(&a.AssistantID, &a.Threshold, &a.BudgetMicros, &a.SpentMicros, &created); err != nil {
			return nil, err
		}
		a.CreatedAt = fromMS(created)
		if i, ok := index[a.AssistantID]; ok {
			out[i].Alerts = append(out[i].Alerts, a)
		}
	}
	return out, alerts.Err()
}
