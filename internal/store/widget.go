package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parley-hq/parley/internal/widget"
)

// errWidgetNotFound matches both widget.ErrNotFound and the store's ErrNotFound.
var errWidgetNotFound = fmt.Errorf("%w (%w)", widget.ErrNotFound, ErrNotFound)

const widgetColumns = `id, workspace_id, public_key, assistant_id, mode, title, greeting, primary_color, text_color, position,
	prechat_fields, allowed_origins, created_at, updated_at`

func scanWidget(r scanner) (*widget.Widget, error) {
	var w widget.Widget
	var fields, origins string
	var created, updated int64
	if err := r.Scan(&w.ID, &w.WorkspaceID, &w.PublicKey, &w.AssistantID, &w.Mode, &w.Title, &w.Greeting, &w.PrimaryColor, &w.TextColor,
		&w.Position, &fields, &origins, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(fields), &w.PrechatFields); err != nil {
		return nil, fmt.Errorf("widget %s prechat_fields: %w", w.ID, err)
	}
	if err := json.Unmarshal([]byte(origins), &w.AllowedOrigins); err != nil {
		return nil, fmt.Errorf("widget %s allowed_origins: %w", w.ID, err)
	}
	if w.PrechatFields == nil {
		w.PrechatFields = []widget.PrechatField{}
	}
	if w.AllowedOrigins == nil {
		w.AllowedOrigins = []string{}
	}
	w.CreatedAt, w.UpdatedAt = fromMS(created), fromMS(updated)
	return &w, nil
}

func widgetJSON(w *widget.Widget) (fields, origins string) {
	f := w.PrechatFields
	if f == nil {
		f = []widget.PrechatField{}
	}
	o := w.AllowedOrigins
	if o == nil {
		o = []string{}
	}
	fb, _ := json.Marshal(f)
	ob, _ := json.Marshal(o)
	return string(fb), string(ob)
}

// CreateWidget stores a new widget.
func (s *Store) CreateWidget(ctx context.Context, w *widget.Widget) error {
	fields, origins := widgetJSON(w)
	err := s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO widgets (`+widgetColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			w.ID, w.WorkspaceID, w.PublicKey, w.AssistantID, w.Mode, w.Title, w.Greeting, w.PrimaryColor, w.TextColor, w.Position,
			fields, origins, ms(w.CreatedAt), ms(w.UpdatedAt))
		return err
	})
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create widget: %w", err)
	}
	return nil
}

// UpdateWidget saves a widget's editable settings.
func (s *Store) UpdateWidget(ctx context.Context, w *widget.Widget) error {
	fields, origins := widgetJSON(w)
	err := s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE widgets SET assistant_id = $1, mode = $2, title = $3, greeting = $4, primary_color = $5, text_color = $6,
			position = $7, prechat_fields = $8, allowed_origins = $9, updated_at = $10 WHERE id = $11 AND workspace_id = $12`,
			w.AssistantID, w.Mode, w.Title, w.Greeting, w.PrimaryColor, w.TextColor, w.Position, fields, origins, ms(w.UpdatedAt), w.ID, w.WorkspaceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errWidgetNotFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("update widget: %w", err)
	}
	return err
}

// GetWidget returns a widget of the workspace.
func (s *Store) GetWidget(ctx context.Context, workspaceID, id string) (*widget.Widget, error) {
	return s.oneWidget(ctx, `WHERE id = $1 AND workspace_id = $2`, id, workspaceID)
}

// WidgetByKey finds a widget by its public key (the embedded script's data-key).
func (s *Store) WidgetByKey(ctx context.Context, publicKey string) (*widget.Widget, error) {
	return s.oneWidget(ctx, `WHERE public_key = $1`, publicKey)
}

// WidgetByID finds a widget by id, whatever its workspace (the public demo page).
func (s *Store) WidgetByID(ctx context.Context, id string) (*widget.Widget, error) {
	return s.oneWidget(ctx, `WHERE id = $1`, id)
}

func (s *Store) oneWidget(ctx context.Context, where string, args ...any) (*widget.Widget, error) {
	w, err := scanWidget(s.read.QueryRowContext(ctx, `SELECT `+widgetColumns+` FROM widgets `+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errWidgetNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get widget: %w", err)
	}
	return w, nil
}

// ListWidgets returns the workspace's widgets, oldest first.
func (s *Store) ListWidgets(ctx context.Context, workspaceID string) ([]*widget.Widget, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+widgetColumns+` FROM widgets WHERE workspace_id = $1 ORDER BY created_at, id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list widgets: %w", err)
	}
	defer rows.Close()
	out := []*widget.Widget{}
	for rows.Next() {
		w, err := scanWidget(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// DeleteWidget removes a widget and its sessions (its conversations stay).
func (s *Store) DeleteWidget(ctx context.Context, workspaceID, id string) error {
	err := s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM widgets WHERE id = $1 AND workspace_id = $2`, id, workspaceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errWidgetNotFound
		}
		_, err = tx.Exec(`DELETE FROM widget_sessions WHERE widget_id = $1 AND workspace_id = $2`, id, workspaceID)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete widget: %w", err)
	}
	return err
}

// CreateWidgetSession stores a visitor session (its token's hash only).
func (s *Store) CreateWidgetSession(ctx context.Context, se *widget.Session) error {
	err := s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO widget_sessions (token_hash, workspace_id, widget_id, conversation_id, created_at, last_seen_at)
			VALUES ($1, $2, $3, $4, $5, $6)`, se.TokenHash, se.WorkspaceID, se.WidgetID, se.ConversationID, ms(se.CreatedAt), ms(se.LastSeenAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create widget session: %w", err)
	}
	return nil
}

// WidgetSession finds a session by its token's hash.
func (s *Store) WidgetSession(ctx context.Context, tokenHash string) (*widget.Session, error) {
	var se widget.Session
	var created, seen int64
	err := s.read.QueryRowContext(ctx, `SELECT token_hash, workspace_id, widget_id, conversation_id, created_at, last_seen_at
		FROM widget_sessions WHERE token_hash = $1`, tokenHash).Scan(&se.TokenHash, &se.WorkspaceID, &se.WidgetID, &se.ConversationID, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errWidgetNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get widget session: %w", err)
	}
	se.CreatedAt, se.LastSeenAt = fromMS(created), fromMS(seen)
	return &se, nil
}

// TouchWidgetSession records that a session was used.
func (s *Store) TouchWidgetSession(ctx context.Context, tokenHash string, at time.Time) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE widget_sessions SET last_seen_at = $1 WHERE token_hash = $2`, ms(at), tokenHash)
		return err
	})
}
