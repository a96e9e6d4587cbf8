package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parley-hq/parley/internal/assistant"
)

// saveVersion writes the assistant's current version snapshot in the caller's transaction. Changes
// that make no new version (name, fallback text) refresh the snapshot of the current one, so a
// version's snapshot is its latest state; created_at stays the version's first write.
func saveVersion(tx *sql.Tx, a *assistant.Assistant) error {
	snap, err := json.Marshal(a.Snapshot())
	if err != nil {
		return fmt.Errorf("encode version snapshot: %w", err)
	}
	_, err = tx.Exec(`INSERT INTO assistant_versions (workspace_id, assistant_id, version, snapshot, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (assistant_id, version) DO UPDATE SET snapshot = excluded.snapshot`,
		a.WorkspaceID, a.ID, a.Version, string(snap), ms(a.UpdatedAt))
	if err != nil {
		return fmt.Errorf("save assistant version: %w", err)
	}
	return nil
}

// AssistantVersions returns an assistant's stored versions, oldest first.
func (s *Store) AssistantVersions(ctx context.Context, workspaceID, assistantID string) ([]assistant.Version, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT version, snapshot, created_at FROM assistant_versions WHERE assistant_id = $1 AND workspace_id = $2 ORDER BY version`, assistantID, workspaceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []assistant.Version{}
	for rows.Next() {
		v, err := scanVersion(rows, workspaceID, assistantID)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}

// AssistantVersion returns one stored version (assistant.ErrVersionNotFound when there is none).
func (s *Store) AssistantVersion(ctx context.Context, workspaceID, assistantID string, version int) (*assistant.Version, error) {
	row := s.read.QueryRowContext(ctx, `SELECT version, snapshot, created_at FROM assistant_versions WHERE assistant_id = $1 AND workspace_id = $2 AND version = $3`, assistantID, workspaceID, version)
	v, err := scanVersion(row, workspaceID, assistantID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, assistant.ErrVersionNotFound
	}
	return v, err
}

func scanVersion(r scanner, workspaceID, assistantID string) (*assistant.Version, error) {
	v := &assistant.Version{WorkspaceID: workspaceID, AssistantID: assistantID}
	var snap string
	var created int64
	if err := r.Scan(&v.Version, &snap, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(snap), &v.Snapshot); err != nil {
		return nil, fmt.Errorf("assistant %s version %d snapshot: %w", assistantID, v.Version, err)
	}
	if v.Snapshot.Tools == nil {
		v.Snapshot.Tools = json.RawMessage("[]")
	}
	v.CreatedAt = fromMS(created)
	return v, nil
}
