package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parley-hq/parley/internal/auth"
)

// EnsureWorkspace creates ws unless a workspace with its slug exists, and returns the stored one.
func (s *Store) EnsureWorkspace(ctx context.Context, ws auth.Workspace) (auth.Workspace, error) {
	err := s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO workspaces (id, slug, name, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (slug) DO NOTHING`,
			ws.ID, ws.Slug, ws.Name, ms(ws.CreatedAt))
		return err
	})
	if err != nil {
		return auth.Workspace{}, fmt.Errorf("ensure workspace %s: %w", ws.Slug, err)
	}
	return s.WorkspaceBySlug(ctx, ws.Slug)
}

// WorkspaceBySlug finds a workspace.
func (s *Store) WorkspaceBySlug(ctx context.Context, slug string) (auth.Workspace, error) {
	var ws auth.Workspace
	var created int64
	err := s.read.QueryRowContext(ctx, `SELECT id, slug, name, created_at FROM workspaces WHERE slug = $1`, slug).
		Scan(&ws.ID, &ws.Slug, &ws.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return ws, ErrNotFound
	}
	ws.CreatedAt = fromMS(created)
	return ws, err
}

// CreateAPIKey stores a key.
func (s *Store) CreateAPIKey(ctx context.Context, k auth.APIKey) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO api_keys (id, workspace_id, name, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			k.ID, k.WorkspaceID, k.Name, k.Prefix, k.Hash, ms(k.CreatedAt))
		return err
	})
}

// APIKeyByPrefix finds a key by its public prefix.
func (s *Store) APIKeyByPrefix(ctx context.Context, prefix string) (auth.APIKey, error) {
	var k auth.APIKey
	var created int64
	var revoked sql.NullInt64
	err := s.read.QueryRowContext(ctx, `SELECT id, workspace_id, name, prefix, hash, created_at, revoked_at FROM api_keys WHERE prefix = $1`, prefix).
		Scan(&k.ID, &k.WorkspaceID, &k.Name, &k.Prefix, &k.Hash, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	k.CreatedAt = fromMS(created)
	k.RevokedAt = fromNullMS(revoked)
	return k, err
}

// CreateUser stores a user and its membership; an existing email is ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u auth.User, workspaceID, role string) error {
	err := s.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)`,
			u.ID, u.Email, u.PasswordHash, ms(u.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO memberships (user_id, workspace_id, role) VALUES ($1, $2, $3)`, u.ID, workspaceID, role)
		return err
	})
	if isUniqueViolation(err) {
		return fmt.Errorf("user %s: %w", u.Email, ErrConflict)
	}
	return err
}
