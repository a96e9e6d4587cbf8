package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/webhooks"
	"github.com/parley-hq/parley/internal/whatsapp"
)

const waSenderColumns = `id, workspace_id, phone_number_id, display_phone_number, access_token, app_secret, verify_token, assistant_id,
	graph_api_url, rate_per_second, quality_rating, messaging_limit, last_error, last_error_at, created_at, updated_at`

func scanWASender(r scanner) (*whatsapp.Sender, error) {
	var x whatsapp.Sender
	var lastErrAt sql.NullInt64
	var created, updated int64
	if err := r.Scan(&x.ID, &x.WorkspaceID, &x.PhoneNumberID, &x.DisplayPhoneNumber, &x.AccessToken, &x.AppSecret, &x.VerifyToken,
		&x.AssistantID, &x.GraphAPIURL, &x.RatePerSecond, &x.QualityRating, &x.MessagingLimit, &x.LastError, &lastErrAt, &created, &updated); err != nil {
		return nil, err
	}
	x.LastErrorAt = fromNullMS(lastErrAt)
	x.CreatedAt, x.UpdatedAt = fromMS(created), fromMS(updated)
	return &x, nil
}

// CreateWASender stores a sender (secrets already sealed); ErrConflict when its number is taken.
func (s *Store) CreateWASender(ctx context.Context, x *whatsapp.Sender) error {
	err := s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO wa_senders (`+waSenderColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			x.ID, x.WorkspaceID, x.PhoneNumberID, x.DisplayPhoneNumber, x.AccessToken, x.AppSecret, x.VerifyToken, x.AssistantID,
			x.GraphAPIURL, x.RatePerSecond, x.QualityRating, x.MessagingLimit, x.LastError, nullMS(x.LastErrorAt), ms(x.CreatedAt), ms(x.UpdatedAt))
		return err
	})
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create whatsapp sender: %w", err)
	}
	return nil
}

// UpdateWASender saves a sender's editable fields.
func (s *Store) UpdateWASender(ctx context.Context, x *whatsapp.Sender) error {
	err := s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE wa_senders SET phone_number_id = $1, display_phone_number = $2, access_token = $3, app_secret = $4, verify_token = $5,
			assistant_id = $6, graph_api_url = $7, rate_per_second = $8, last_error = $9, last_error_at = $10, updated_at = $11 WHERE id = $12 AND workspace_id = $13`,
			x.PhoneNumberID, x.DisplayPhoneNumber, x.AccessToken, x.AppSecret, x.VerifyToken, x.AssistantID, x.GraphAPIURL, x.RatePerSecond,
			x.LastError, nullMS(x.LastErrorAt), ms(x.UpdatedAt), x.ID, x.WorkspaceID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
	switch {
	case isUniqueViolation(err):
		return ErrConflict
	case errors.Is(err, ErrNotFound):
		return err
	case err != nil:
		return fmt.Errorf("update whatsapp sender: %w", err)
	}
	return nil
}

// GetWASender returns a sender of the workspace.
func (s *Store) GetWASender(ctx context.Context, workspaceID, id string) (*whatsapp.Sender, error) {
	x, err := scanWASender(s.read.QueryRowContext(ctx, `SELECT `+waSenderColumns+` FROM wa_senders WHERE id = $1 AND workspace_id = $2`, id, workspaceID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return x, err
}

// ListWASenders returns the workspace's senders, oldest first.
func (s *Store) ListWASenders(ctx context.Context, workspaceID string) ([]*whatsapp.Sender, error) {
	return s.queryWASenders(ctx, `SELECT `+waSenderColumns+` FROM wa_senders WHERE workspace_id = $1 ORDER BY created_at, id`, workspaceID)
}

// WASendersByPhone returns the senders of the given phone number ids, whatever their workspace
// (the webhook is shared: Meta names the number, not the workspace).
func (s *Store) WASendersByPhone(ctx context.Context, phoneNumberIDs []string) ([]*whatsapp.Sender, error) {
	if len(phoneNumberIDs) == 0 {
		return nil, nil
	}
	var q sqlBuilder
	ph := make([]string, len(phoneNumberIDs))
	for i, id := range phoneNumberIDs {
		ph[i] = q.arg(id)
	}
	return s.queryWASenders(ctx, `SELECT `+waSenderColumns+` FROM wa_senders WHERE phone_number_id IN (`+strings.Join(ph, ", ")+`)`, q.args...)
}

// AllWASenders returns every sender of every workspace (the verification handshake names no number).
func (s *Store) AllWASenders(ctx context.Context) ([]*whatsapp.Sender, error) {
	return s.queryWASenders(ctx, `SELECT `+waSenderColumns+` FROM wa_senders ORDER BY created_at`)
}

func (s *Store) queryWASenders(ctx context.Context, q string, args ...any) ([]*whatsapp.Sender, error) {
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list whatsapp senders: %w", err)
	}
	defer rows.Close()
	out := []*whatsapp.Sender{}
	for rows.Next() {
		x, err := scanWASender(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// DeleteWASender removes a sender; its conversations stay.
func (s *Store) DeleteWASender(ctx context.Context, workspaceID, id string) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM wa_senders WHERE id = $1 AND workspace_id = $2`, id, workspaceID)
		if err != nil {
			return fmt.Errorf("delete whatsapp sender: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// SetWASenderError records (or clears, with "") a sender-level problem such as a rejected token.
func (s *Store) SetWASenderError(ctx context.Context, id, msg string, at time.Time) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		var when any
		if msg != "" {
			when = ms(at)
		}
		_, err := tx.Exec(`UPDATE wa_senders SET last_error = $1, last_error_at = $2, updated_at = $3 WHERE id = $4`, msg, when, ms(at), id)
		return err
	})
}

// SetWASenderQuality records the number's quality rating and messaging limit tier as Meta reports them.
func (s *Store) SetWASenderQuality(ctx context.Context, id, quality, limit string, at time.Time) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE wa_senders SET quality_rating = CASE WHEN $1 = '' THEN quality_rating ELSE $2 END,
			messaging_limit = CASE WHEN $3 = '' THEN messaging_limit ELSE $4 END, updated_at = $5 WHERE id = $6`, quality, quality, limit, limit, ms(at), id)
		return err
	})
}

const waTemplateColumns = `id, workspace_id, name, language, category, components, status, created_at, updated_at`

func scanWATemplate(r scanner) (*whatsapp.Template, error) {
	var t whatsapp.Template
	var comps string
	var created, updated int64
	if err := r.Scan(&t.ID, &t.WorkspaceID, &t.Name, &t.Language, &t.Category, &comps, &t.Status, &created, &updated); err != nil {
		return nil, err
	}
	t.Components = json.RawMessage(comps)
	t.CreatedAt, t.UpdatedAt = fromMS(created), fromMS(updated)
	return &t, nil
}

// CreateWATemplate stores a template; ErrConflict when the name and language are taken.
func (s *Store) CreateWATemplate(ctx context.Context, t *whatsapp.Template) error {
	err := s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO wa_templates (`+waTemplateColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			t.ID, t.WorkspaceID, t.Name, t.Language, t.Category, string(t.Components), t.Status, ms(t.CreatedAt), ms(t.UpdatedAt))
		return err
	})
	if isUniqueViolation(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	return nil
}

// ListWATemplates returns the workspace's templates by name.
func (s *Store) ListWATemplates(ctx context.Context, workspaceID string) ([]*whatsapp.Template, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+waTemplateColumns+` FROM wa_templates WHERE workspace_id = $1 ORDER BY name, language`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	defer rows.Close()
	out := []*whatsapp.Template{}
	for rows.Next() {
		t, err := scanWATemplate(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// WATemplateByName returns a template by name and language.
func (s *Store) WATemplateByName(ctx context.Context, workspaceID, name, language string) (*whatsapp.Template, error) {
	t, err := scanWATemplate(s.read.QueryRowContext(ctx, `SELECT `+waTemplateColumns+` FROM wa_templates WHERE workspace_id = $1 AND name = $2 AND language = $3`,
		workspaceID, name, language))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return t, err
}

// FindChannelConversation returns the newest conversation not ended of the type for (channel,
// customer), or nil when there is none.
func (s *Store) FindChannelConversation(ctx context.Context, workspaceID string, typ conversation.Type, channelID, customerID string) (*conversation.Conversation, error) {
	if !typ.Valid() {
		return nil, fmt.Errorf("find channel conversation: unknown type %q", typ)
	}
	// The type is written into the SQL, not bound: compared with the literal in a partial index's
	// WHERE, a bound parameter makes SQLite compile the statement again on every run (measured: a
	// fifth of the webhook path's CPU in the SQL parser). Valid types are a closed set of words.
	row := s.read.QueryRowContext(ctx, `SELECT `+conversationColumns+conversationFrom+` WHERE c.workspace_id = $1 AND c.channel_id = $2 AND c.customer_id = $3
		AND c.type = '`+string(typ)+`' AND c.status <> 'ended' ORDER BY c.pk DESC LIMIT 1`, workspaceID, channelID, customerID)
	c, _, err := scanConversation(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return c, err
}

// MessageByExternalID finds a message by its channel id; ("", nil, nil) when none has it.
func (s *Store) MessageByExternalID(ctx context.Context, workspaceID, externalID string) (string, *conversation.Message, error) {
	var convID string
	m := &conversation.Message{}
	d := newMessageDest(m)
	err := s.read.QueryRowContext(ctx, `SELECT c.id, `+messageColumns+` FROM messages m JOIN conversations c ON c.pk = m.conversation_pk
		WHERE m.workspace_id = $1 AND m.external_id = $2`, workspaceID, externalID).Scan(append([]any{&convID}, d.targets()...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("message by external id: %w", err)
	}
	m.ConversationID = convID
	return convID, m, d.finish()
}

// MessageByID returns one message of a conversation.
func (s *Store) MessageByID(ctx context.Context, workspaceID, conversationID, messageID string) (*conversation.Message, error) {
	msgs, err := s.MessagesByID(ctx, workspaceID, conversationID, []string{messageID})
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, ErrNotFound
	}
	return msgs[0], nil
}

// CustomerMessageSuperseded reports whether a customer message is followed in its conversation by
// another customer message (not a reaction) with no assistant message after it: the later message's
// reply job answers both, so this one's has nothing to do.
func (s *Store) CustomerMessageSuperseded(ctx context.Context, workspaceID, conversationID, messageID string) (bool, error) {
	var superseded bool
	err := s.read.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM messages l WHERE l.conversation_pk = t.conversation_pk AND l.pk > t.pk AND l.role = 'user' AND l.type <> 'reaction')
		AND NOT EXISTS (SELECT 1 FROM messages a WHERE a.conversation_pk = t.conversation_pk AND a.pk > t.pk AND a.role = 'assistant')
		FROM messages t JOIN conversations c ON c.pk = t.conversation_pk
		WHERE t.id = $1 AND c.id = $2 AND c.workspace_id = $3`, messageID, conversationID, workspaceID).Scan(&superseded)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrNotFound
	}
	if err != nil {
		return false, fmt.Errorf("superseded message: %w", err)
	}
	return superseded, nil
}

// SetMessageStatusTx moves a message to status if its current status is one of from.
func (s *Store) SetMessageStatusTx(tx *sql.Tx, workspaceID, messageID, status string, msgErr *conversation.MessageError, from []string) (bool, error) {
	var q sqlBuilder
	var errJSON any
	if msgErr != nil {
		b, _ := json.Marshal(msgErr)
		errJSON = string(b)
	}
	ph := make([]string, len(from))
	set := `status = ` + q.arg(status) + `, error = COALESCE(` + q.arg(errJSON) + `, error)`
	where := ` WHERE id = ` + q.arg(messageID) + ` AND workspace_id = ` + q.arg(workspaceID)
	for i, f := range from {
		ph[i] = q.arg(f)
	}
	if len(from) == 0 {
		return false, nil
	}
	res, err := tx.Exec(`UPDATE messages SET `+set+where+` AND status IN (`+strings.Join(ph, ", ")+`)`, q.args...)
	if err != nil {
		return false, fmt.Errorf("set message status: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// AddMessagePricingTx records a message's channel price once, adding its cost to the message;
// false when the message was priced before.
func (s *Store) AddMessagePricingTx(tx *sql.Tx, workspaceID, messageID, pricing string, costMicros int64) (bool, error) {
	res, err := tx.Exec(`UPDATE messages SET pricing = $1, cost_micros = cost_micros + $2 WHERE id = $3 AND workspace_id = $4 AND pricing IS NULL`,
		pricing, costMicros, messageID, workspaceID)
	if err != nil {
		return false, fmt.Errorf("price message: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// SetMessageExternalTx sets a sent message's channel id.
func (s *Store) SetMessageExternalTx(tx *sql.Tx, workspaceID, messageID, externalID string) error {
	_, err := tx.Exec(`UPDATE messages SET external_id = $1 WHERE id = $2 AND workspace_id = $3`, externalID, messageID, workspaceID)
	if err != nil {
		return fmt.Errorf("set external id: %w", err)
	}
	return nil
}

// SetMessageMediaTx replaces a message's media reference.
func (s *Store) SetMessageMediaTx(tx *sql.Tx, workspaceID, messageID string, media *conversation.Media) error {
	b, _ := json.Marshal(media)
	if _, err := tx.Exec(`UPDATE messages SET media = $1 WHERE id = $2 AND workspace_id = $3`, string(b), messageID, workspaceID); err != nil {
		return fmt.Errorf("set media: %w", err)
	}
	return nil
}

// AddMessageCostTx adds a cost to a message (its conversation's totals go through Change.CostMicros).
func (s *Store) AddMessageCostTx(tx *sql.Tx, workspaceID, messageID string, costMicros int64) error {
	_, err := tx.Exec(`UPDATE messages SET cost_micros = cost_micros + $1 WHERE id = $2 AND workspace_id = $3`, costMicros, messageID, workspaceID)
	return err
}

// SetCustomerNameTx updates a conversation's customer name.
func (s *Store) SetCustomerNameTx(tx *sql.Tx, workspaceID, conversationID, name string) error {
	_, err := tx.Exec(`UPDATE conversations SET customer_name = $1 WHERE id = $2 AND workspace_id = $3`, name, conversationID, workspaceID)
	return err
}

// SetMessagePayloadTx keeps the channel's payload of a message as received.
func (s *Store) SetMessagePayloadTx(tx *sql.Tx, workspaceID, messageID, payload string) error {
	_, err := tx.Exec(`UPDATE messages SET payload = $1 WHERE id = $2 AND workspace_id = $3`, payload, messageID, workspaceID)
	return err
}

// MessagePayload returns a message's stored channel payload ("" when none).
func (s *Store) MessagePayload(ctx context.Context, workspaceID, messageID string) (string, error) {
	var p sql.NullString
	err := s.read.QueryRowContext(ctx, `SELECT payload FROM messages WHERE id = $1 AND workspace_id = $2`, messageID, workspaceID).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return p.String, err
}

// CreateWebhook stores an outgoing webhook (secret already sealed).
func (s *Store) CreateWebhook(ctx context.Context, h *webhooks.Webhook) error {
	ev, _ := json.Marshal(h.Events)
	return s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO webhooks (id, workspace_id, url, events, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			h.ID, h.WorkspaceID, h.URL, string(ev), h.Secret, ms(h.CreatedAt))
		return err
	})
}

// ListWebhooks returns the workspace's webhooks.
func (s *Store) ListWebhooks(ctx context.Context, workspaceID string) ([]*webhooks.Webhook, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, workspace_id, url, events, secret, created_at FROM webhooks WHERE workspace_id = $1 ORDER BY created_at, id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	out := []*webhooks.Webhook{}
	for rows.Next() {
		var h webhooks.Webhook
		var ev string
		var created int64
		if err := rows.Scan(&h.ID, &h.WorkspaceID, &h.URL, &ev, &h.Secret, &created); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(ev), &h.Events); err != nil {
			return nil, fmt.Errorf("webhook %s events: %w", h.ID, err)
		}
		h.CreatedAt = fromMS(created)
		out = append(out, &h)
	}
	return out, rows.Err()
}

// GetWebhook returns a webhook of the workspace.
func (s *Store) GetWebhook(ctx context.Context, workspaceID, id string) (*webhooks.Webhook, error) {
	all, err := s.ListWebhooks(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	for _, h := range all {
		if h.ID == id {
			return h, nil
		}
	}
	return nil, ErrNotFound
}

// DeleteWebhook removes a webhook.
func (s *Store) DeleteWebhook(ctx context.Context, workspaceID, id string) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM webhooks WHERE id = $1 AND workspace_id = $2`, id, workspaceID)
		if err != nil {
			return fmt.Errorf("delete webhook: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// WebhookWorkspaces lists the workspaces that have outgoing webhooks.
func (s *Store) WebhookWorkspaces(ctx context.Context) ([]string, error) {
	out, err := column[string](s.read.QueryContext(ctx, `SELECT DISTINCT workspace_id FROM webhooks`))
	if err != nil {
		return nil, fmt.Errorf("webhook workspaces: %w", err)
	}
	return out, nil
}

// AddPendingStatus keeps a status report for a wamid not known yet, dropping reports older than
// a day (statuses of messages sent by other tools on the same number never match).
func (s *Store) AddPendingStatus(ctx context.Context, workspaceID, externalID, payload string, at time.Time) error {
	return s.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`DELETE FROM wa_pending_statuses WHERE created_at < $1`, ms(at.Add(-24*time.Hour))); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO wa_pending_statuses (workspace_id, external_id, payload, created_at) VALUES ($1, $2, $3, $4)`,
			workspaceID, externalID, payload, ms(at))
		return err
	})
}

// TakePendingStatuses returns and removes the status reports kept for a wamid, oldest first.
func (s *Store) TakePendingStatuses(ctx context.Context, workspaceID, externalID string) ([]string, error) {
	var out []string
	err := s.Write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = column[string](tx.Query(`SELECT payload FROM wa_pending_statuses WHERE workspace_id = $1 AND external_id = $2 ORDER BY created_at`, workspaceID, externalID))
		if err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		_, err = tx.Exec(`DELETE FROM wa_pending_statuses WHERE workspace_id = $1 AND external_id = $2`, workspaceID, externalID)
		return err
	})
	return out, err
}
