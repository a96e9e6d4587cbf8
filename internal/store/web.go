package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/conversation"
)

// Membership is a user's place in a workspace.
type Membership struct {
	WorkspaceID string
	Slug        string
	Name        string
	Role        string
}

// Session is a dashboard login. IDHash is the SHA-256 of the cookie's token.
type Session struct {
	IDHash      string
	UserID      string
	Email       string
	WorkspaceID string
	CSRFToken   string
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// UserByEmail finds a dashboard user (email as stored: lower case).
func (s *Store) UserByEmail(ctx context.Context, email string) (auth.User, error) {
	var u auth.User
	var created int64
	err := s.read.QueryRowContext(ctx, `SELECT id, email, password_hash, created_at FROM users WHERE email = $1`, email).
		Scan(&u.ID, &u.Email, &u.PasswordHash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return u, ErrNotFound
	}
	if err != nil {
		return u, fmt.Errorf("user by email: %w", err)
	}
	u.CreatedAt = fromMS(created)
	return u, nil
}

// Memberships lists the workspaces a user belongs to, by name.
func (s *Store) Memberships(ctx context.Context, userID string) ([]Membership, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT w.id, w.slug, w.name, m.role FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
		WHERE m.user_id = $1 ORDER BY w.name, w.slug`, userID)
	if err != nil {
		return nil, fmt.Errorf("memberships: %w", err)
	}
	defer rows.Close()
	var out []Membership
	for rows.Next() {
		var m Membership
		if err := rows.Scan(&m.WorkspaceID, &m.Slug, &m.Name, &m.Role); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// AddMembership makes a user a member of another workspace (no-op when already one).
func (s *Store) AddMembership(ctx context.Context, userID, workspaceID, role string) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO memberships (user_id, workspace_id, role) VALUES ($1, $2, $3) ON CONFLICT (user_id, workspace_id) DO NOTHING`,
			userID, workspaceID, role)
		return err
	})
}

// CreateSession stores a login.
func (s *Store) CreateSession(ctx context.Context, se Session) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO sessions (id_hash, user_id, workspace_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			se.IDHash, se.UserID, se.WorkspaceID, se.CSRFToken, ms(se.CreatedAt), ms(se.ExpiresAt))
		return err
	})
}

// SessionByHash returns a live session with its user's email; an expired or unknown one is ErrNotFound.
func (s *Store) SessionByHash(ctx context.Context, idHash string, now time.Time) (Session, error) {
	var se Session
	var created, expires int64
	err := s.read.QueryRowContext(ctx, `SELECT s.id_hash, s.user_id, u.email, s.workspace_id, s.csrf_token, s.created_at, s.expires_at
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1 AND s.expires_at > $2`, idHash, ms(now)).
		Scan(&se.IDHash, &se.UserID, &se.Email, &se.WorkspaceID, &se.CSRFToken, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return se, ErrNotFound
	}
	if err != nil {
		return se, fmt.Errorf("session: %w", err)
	}
	se.CreatedAt, se.ExpiresAt = fromMS(created), fromMS(expires)
	return se, nil
}

// SetSessionWorkspace switches a session to another workspace the user belongs to; ErrNotFound
// when the user is not a member.
func (s *Store) SetSessionWorkspace(ctx context.Context, idHash, workspaceID string) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE sessions SET workspace_id = $1 WHERE id_hash = $2 AND EXISTS
			(SELECT 1 FROM memberships m WHERE m.user_id = sessions.user_id AND m.workspace_id = $3)`, workspaceID, idHash, workspaceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// DeleteSession ends a login.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM sessions WHERE id_hash = $1`, idHash)
		return err
	})
}

// DeleteExpiredSessions removes logins past their expiry.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM sessions WHERE expires_at <= $1`, ms(now))
		return err
	})
}

// ListAPIKeys lists a workspace's keys, newest first (prefix and name only: the secret is never kept).
func (s *Store) ListAPIKeys(ctx context.Context, workspaceID string) ([]auth.APIKey, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, workspace_id, name, prefix, created_at, revoked_at FROM api_keys WHERE workspace_id = $1
		ORDER BY created_at DESC, id DESC`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	var out []auth.APIKey
	for rows.Next() {
		var k auth.APIKey
		var created int64
		var revoked sql.NullInt64
		if err := rows.Scan(&k.ID, &k.WorkspaceID, &k.Name, &k.Prefix, &created, &revoked); err != nil {
			return nil, err
		}
		k.CreatedAt, k.RevokedAt = fromMS(created), fromNullMS(revoked)
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey revokes a key of the workspace; another workspace's key is ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, workspaceID, id string, at time.Time) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND workspace_id = $3`, ms(at), id, workspaceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// ConversationCount is the workspace's number of conversations: a counter that triggers keep, so
// reading it costs the same on a million conversations as on ten.
func (s *Store) ConversationCount(ctx context.Context, workspaceID string) (int64, error) {
	var n int64
	err := s.read.QueryRowContext(ctx, `SELECT COALESCE((SELECT total FROM conversation_counts WHERE workspace_id = $1), 0)`, workspaceID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("conversation count: %w", err)
	}
	return n, nil
}

// CountConversations counts the conversations that match f (its cursor and limit ignored), up to
// max: it returns max+1 when there are more, so a page reads at most max+1 index entries, and -1
// (unknown) for a text search with too many matches to count them all (see textPlan).
func (s *Store) CountConversations(ctx context.Context, workspaceID string, f conversation.Filter, max int) (int64, error) {
	f.Cursor, f.Limit = "", 0
	if match := ftsQuery(f.Query); match != "" && s.textPlan(ctx, match) != planSet {
		return -1, nil
	}
	var q sqlBuilder
	where := s.filterWhere(&q, workspaceID, f)
	var n int64
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM conversations c WHERE `+where+limitSQL(max+1)+`) x`, q.args...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count conversations: %w", err)
	}
	return n, nil
}
