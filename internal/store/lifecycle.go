package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// RetentionDays returns the workspace's retention (0: keep forever).
func (s *Store) RetentionDays(ctx context.Context, workspaceID string) (int, error) {
	var days int
	err := s.read.QueryRowContext(ctx, `SELECT retention_days FROM workspace_settings WHERE workspace_id = $1`, workspaceID).Scan(&days)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return days, err
}

// SetRetentionDays stores the workspace's retention.
func (s *Store) SetRetentionDays(ctx context.Context, workspaceID string, days int) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO workspace_settings (workspace_id, retention_days, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (workspace_id) DO UPDATE SET retention_days = excluded.retention_days, updated_at = excluded.updated_at`, workspaceID, days, nowMS())
		return err
	})
}

// RetentionPolicies lists the workspaces that keep conversations for a limited time.
func (s *Store) RetentionPolicies(ctx context.Context) (map[string]int, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT workspace_id, retention_days FROM workspace_settings WHERE retention_days > 0`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var ws string
		var days int
		if err := rows.Scan(&ws, &days); err != nil {
			return nil, err
		}
		out[ws] = days
	}
	return out, rows.Err()
}

// Deleted counts what a deletion removed.
type Deleted struct {
	Conversations int64 `json:"deleted_conversations"`
	Messages      int64 `json:"deleted_messages"`
}

// deleteBatch bounds one deletion transaction, so a large purge never holds the writer for long.
const deleteBatch = 500

// DeleteConversationsBefore deletes the workspace's conversations whose last activity is before
// cutoff, with their messages and variables. Metrics rollups keep their (anonymous) totals.
func (s *Store) DeleteConversationsBefore(ctx context.Context, workspaceID string, cutoff time.Time) (Deleted, error) {
	return s.deleteWhere(ctx, `workspace_id = $1 AND last_message_at < $2`, workspaceID, ms(cutoff))
}

// DeleteCustomer deletes every conversation of a customer (their identifier, or a phone number in
// any notation), with messages and variables.
func (s *Store) DeleteCustomer(ctx context.Context, workspaceID, customer string) (Deleted, error) {
	keys := customerKeys(customer)
	var q sqlBuilder
	q.arg(workspaceID)
	ph := make([]string, len(keys))
	for i, k := range keys {
		ph[i] = q.arg(k)
	}
	return s.deleteWhere(ctx, `workspace_id = $1 AND customer_id IN (`+strings.Join(ph, ", ")+`)`, q.args...)
}

func (s *Store) deleteWhere(ctx context.Context, where string, args ...any) (Deleted, error) {
	var total Deleted
	for {
		var batch Deleted
		err := s.Write(ctx, func(tx *sql.Tx) error {
			rows, err := tx.Query(`SELECT pk, message_count FROM conversations WHERE `+where+` LIMIT `+fmt.Sprint(deleteBatch), args...)
			if err != nil {
				return err
			}
			var pks []any
			var ph []string
			for rows.Next() {
				var pk, n int64
				if err := rows.Scan(&pk, &n); err != nil {
					rows.Close()
					return err
				}
				pks = append(pks, pk)
				ph = append(ph, fmt.Sprintf("$%d", len(pks)))
				batch.Messages += n
			}
			rows.Close()
			if err := rows.Err(); err != nil || len(pks) == 0 {
				return err
			}
			in := strings.Join(ph, ", ")
			// Children first: explicit deletes work whether or not a table cascades.
			for _, stmt := range []string{
				`DELETE FROM variables WHERE conversation_pk IN (` + in + `)`,
				`DELETE FROM messages WHERE conversation_pk IN (` + in + `)`,
				`DELETE FROM conversations WHERE pk IN (` + in + `)`,
			} {
				if _, err := tx.Exec(stmt, pks...); err != nil {
					return fmt.Errorf("delete: %w", err)
				}
			}
			batch.Conversations = int64(len(pks))
			return nil
		})
		if err != nil {
			return total, err
		}
		total.Conversations += batch.Conversations
		total.Messages += batch.Messages
		if batch.Conversations < deleteBatch {
			return total, nil
		}
	}
}

// AuditEntry is one admin action.
type AuditEntry struct {
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Status    int       `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// Audit records an admin action.
func (s *Store) Audit(ctx context.Context, workspaceID string, e AuditEntry) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO audit_log (workspace_id, actor, action, target, status, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			workspaceID, e.Actor, e.Action, e.Target, e.Status, ms(e.CreatedAt))
		return err
	})
}

// AuditLog returns the workspace's most recent admin actions, newest first.
func (s *Store) AuditLog(ctx context.Context, workspaceID string, limit int) ([]AuditEntry, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT actor, action, target, status, created_at FROM audit_log WHERE workspace_id = $1 ORDER BY pk DESC LIMIT $2`, workspaceID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.Actor, &e.Action, &e.Target, &e.Status, &at); err != nil {
			return nil, err
		}
		e.CreatedAt = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
