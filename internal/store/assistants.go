package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parley-hq/parley/internal/assistant"
)

const assistantColumns = `id, workspace_id, name, system_prompt, model, temperature, tools, knowledge_base_ids, extract, fallback_text, version, created_at, updated_at, monthly_budget_micros`

// CreateAssistant stores a new assistant.
func (s *Store) CreateAssistant(ctx context.Context, a *assistant.Assistant) error {
	kbs, extract := encodeAssistant(a)
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO assistants (`+assistantColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			a.ID, a.WorkspaceID, a.Name, a.SystemPrompt, a.Model, a.Temperature, string(a.Tools), kbs, extract, a.FallbackText, a.Version, ms(a.CreatedAt), ms(a.UpdatedAt), budgetColumn(a))
		if err != nil {
			return err
		}
		return saveVersion(tx, a)
	})
}

// UpdateAssistant stores an assistant's new state.
func (s *Store) UpdateAssistant(ctx context.Context, a *assistant.Assistant) error {
	kbs, extract := encodeAssistant(a)
	return s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE assistants SET name = $1, system_prompt = $2, model = $3, temperature = $4, tools = $5, knowledge_base_ids = $6, extract = $7, fallback_text = $8, version = $9, updated_at = $10, monthly_budget_micros = $13
			WHERE id = $11 AND workspace_id = $12 AND deleted_at IS NULL`,
			a.Name, a.SystemPrompt, a.Model, a.Temperature, string(a.Tools), kbs, extract, a.FallbackText, a.Version, ms(a.UpdatedAt), a.ID, a.WorkspaceID, budgetColumn(a))
		if err != nil {
			return err
		}
		if err := expectOne(res); err != nil {
			return err
		}
		return saveVersion(tx, a)
	})
}

// DeleteAssistant marks an assistant deleted; conversations keep its name in their history.
func (s *Store) DeleteAssistant(ctx context.Context, workspaceID, id string) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE assistants SET deleted_at = $1 WHERE id = $2 AND workspace_id = $3 AND deleted_at IS NULL`, nowMS(), id, workspaceID)
		if err != nil {
			return err
		}
		return expectOne(res)
	})
}

// GetAssistant returns a live assistant of the workspace.
func (s *Store) GetAssistant(ctx context.Context, workspaceID, id string) (*assistant.Assistant, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+assistantColumns+` FROM assistants WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL`, id, workspaceID)
	a, err := scanAssistant(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return a, err
}

// ListAssistants returns the workspace's live assistants, oldest first.
func (s *Store) ListAssistants(ctx context.Context, workspaceID string) ([]*assistant.Assistant, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+assistantColumns+` FROM assistants WHERE workspace_id = $1 AND deleted_at IS NULL ORDER BY created_at, id`, workspaceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*assistant.Assistant{}
	for rows.Next() {
		a, err := scanAssistant(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

func scanAssistant(r scanner) (*assistant.Assistant, error) {
	var a assistant.Assistant
	var temp sql.NullFloat64
	var tools, kbs, extract string
	var created, updated int64
	var budget sql.NullInt64
	if err := r.Scan(&a.ID, &a.WorkspaceID, &a.Name, &a.SystemPrompt, &a.Model, &temp, &tools, &kbs, &extract, &a.FallbackText, &a.Version, &created, &updated, &budget); err != nil {
		return nil, err
	}
	a.MonthlyBudgetMicros = budget.Int64
	if temp.Valid {
		a.Temperature = &temp.Float64
	}
	a.Tools = json.RawMessage(tools)
	if err := json.Unmarshal([]byte(kbs), &a.KnowledgeBaseIDs); err != nil {
		return nil, fmt.Errorf("assistant %s knowledge_base_ids: %w", a.ID, err)
	}
	if err := json.Unmarshal([]byte(extract), &a.Extract); err != nil {
		return nil, fmt.Errorf("assistant %s extract: %w", a.ID, err)
	}
	a.CreatedAt, a.UpdatedAt = fromMS(created), fromMS(updated)
	return &a, nil
}

func encodeAssistant(a *assistant.Assistant) (kbs, extract string) {
	k, _ := json.Marshal(a.KnowledgeBaseIDs)
	e, _ := json.Marshal(a.Extract)
	if a.Tools == nil {
		a.Tools = json.RawMessage("[]")
	}
	return string(k), string(e)
}

// budgetColumn stores "no budget" as NULL.
func budgetColumn(a *assistant.Assistant) any {
	if a.MonthlyBudgetMicros <= 0 {
		return nil
	}
	return a.MonthlyBudgetMicros
}

func expectOne(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
