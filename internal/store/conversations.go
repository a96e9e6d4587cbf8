package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/terms"
)

const conversationColumns = `c.pk, c.id, c.workspace_id, c.type, c.status, c.assistant_id, COALESCE(a.name, ''), c.customer_id, c.customer_name,
	c.channel_id, c.metadata, c.message_count, c.tokens_in, c.tokens_out, c.cost_micros, c.last_message_preview, c.last_message_at,
	c.last_inbound_at, c.handoff_reason, c.last_error, c.created_at, c.updated_at, c.ended_at`

const (
	conversationFrom  = ` FROM conversations c` + conversationJoins
	conversationJoins = ` LEFT JOIN assistants a ON a.id = c.assistant_id`
)

const messageColumns = `m.id, m.external_id, m.role, m.direction, m.type, m.text, m.media, m.tool_calls, m.status, m.error,
	m.tokens_in, m.tokens_out, m.cost_micros, m.latency_ms, m.assistant_version, m.created_at`

// CreateConversation stores a new conversation with its first variables.
func (s *Store) CreateConversation(ctx context.Context, c *conversation.Conversation, vars []conversation.Variable) error {
	meta, _ := json.Marshal(c.Metadata)
	return s.Write(ctx, func(tx *sql.Tx) error {
		var pk int64
		err := tx.QueryRow(`INSERT INTO conversations (id, workspace_id, type, status, assistant_id, customer_id, customer_name, channel_id, metadata,
			last_message_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING pk`,
			c.ID, c.WorkspaceID, string(c.Type), string(c.Status), c.AssistantID, c.CustomerID, c.CustomerName, c.ChannelID, string(meta),
			ms(c.LastMessageAt), ms(c.CreatedAt), ms(c.UpdatedAt)).Scan(&pk)
		if isUniqueViolation(err) {
			return conversation.ErrDuplicate
		}
		if err != nil {
			return fmt.Errorf("insert conversation: %w", err)
		}
		if err := upsertVariables(tx, pk, vars); err != nil {
			return err
		}
		if err := insertInsightFacts(tx, pk, c); err != nil { // insights.go
			return err
		}
		r := rollups{}
		r.at(c.CreatedAt).conversations++
		return s.addRollups(tx, c.WorkspaceID, c.AssistantID, string(c.Type), r)
	})
}

// GetConversation returns a conversation of the workspace.
func (s *Store) GetConversation(ctx context.Context, workspaceID, id string) (*conversation.Conversation, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+conversationColumns+conversationFrom+` WHERE c.id = $1 AND c.workspace_id = $2`, id, workspaceID)
	c, _, err := scanConversation(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return c, err
}

// Apply appends messages and applies a change to a conversation in one transaction: the messages,
// the running totals, the metrics rollups, variables and status. Messages whose external id is
// already stored are skipped (idempotent channel deliveries); the stored ones are returned.
func (s *Store) Apply(ctx context.Context, workspaceID, id string, ch conversation.Change) (*conversation.Conversation, []*conversation.Message, error) {
	var out *conversation.Conversation
	var stored []*conversation.Message
	err := s.Write(ctx, func(tx *sql.Tx) error {
		stored = stored[:0]
		// The term signature comes with the row (SQLite; NULL on PostgreSQL, which has none).
		row := tx.QueryRow(`SELECT `+conversationColumns+`, `+s.termsColumn()+conversationFrom+` WHERE c.id = $1 AND c.workspace_id = $2`+s.lockConversation(), id, workspaceID)
		c := &conversation.Conversation{}
		d := newConversationDest(c)
		var sig []byte
		err := row.Scan(append(d.targets(), &sig)...)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := d.finish(); err != nil {
			return err
		}
		pk, countBefore := d.pk, c.MessageCount
		r := rollups{}
		firstInbound := c.LastInboundAt == nil // for insightFactsOnApply
		for _, m := range ch.Messages {
			ok, err := s.insertMessage(tx, workspaceID, pk, m)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			stored = append(stored, m)
			b := r.at(m.CreatedAt)
			b.messages++
			b.tokensIn += m.TokensIn
			b.tokensOut += m.TokensOut
			b.cost += m.CostMicros
			if m.Role == conversation.RoleUser && m.Direction == conversation.Inbound {
				b.inbound++
				t := m.CreatedAt
				if c.LastInboundAt == nil || t.After(*c.LastInboundAt) {
					c.LastInboundAt = &t
				}
			}
			if m.IsAnswer() {
				if err := markAnswered(tx, pk, m.CreatedAt, r); err != nil {
					return err
				}
			}
			c.MessageCount++
			c.TokensIn += m.TokensIn
			c.TokensOut += m.TokensOut
			c.CostMicros += m.CostMicros
			if p := preview(m); p != "" {
				c.LastMessagePreview = p
			}
			if m.CreatedAt.After(c.LastMessageAt) {
				c.LastMessageAt = m.CreatedAt
			}
		}
		now := time.Now().UTC()
		if err := insightFactsOnApply(tx, pk, c, ch, stored, now, firstInbound); err != nil { // insights.go; c is still the old state
			return err
		}
		if ch.Status != "" && ch.Status != c.Status {
			c.Status = ch.Status
			if ch.Status == conversation.StatusEnded {
				c.EndedAt = &now
			}
		}
		if ch.HandoffReason != nil {
			c.HandoffReason = *ch.HandoffReason
		}
		if ch.LastError != nil {
			c.LastError = *ch.LastError
		}
		c.UpdatedAt = now
		if ch.CostMicros != 0 {
			c.CostMicros += ch.CostMicros
			r.at(now).cost += ch.CostMicros
		}
		sig = s.termsAfter(sig, countBefore, stored)
		setTerms := ""
		args := []any{string(c.Status), c.MessageCount, c.TokensIn, c.TokensOut, c.CostMicros, c.LastMessagePreview, ms(c.LastMessageAt),
			nullMS(c.LastInboundAt), c.HandoffReason, c.LastError, ms(c.UpdatedAt), nullMS(c.EndedAt), pk}
		if sig != nil {
			setTerms = ", terms = $14"
			args = append(args, sig)
		}
		if _, err := tx.Exec(`UPDATE conversations SET status = $1, message_count = $2, tokens_in = $3, tokens_out = $4, cost_micros = $5,
			last_message_preview = $6, last_message_at = $7, last_inbound_at = $8, handoff_reason = $9, last_error = $10, updated_at = $11, ended_at = $12`+setTerms+`
			WHERE pk = $13`, args...); err != nil {
			return fmt.Errorf("update conversation totals: %w", err)
		}
		if err := upsertVariables(tx, pk, ch.Variables); err != nil {
			return err
		}
		if err := s.addRollups(tx, workspaceID, c.AssistantID, string(c.Type), r); err != nil {
			return err
		}
		if ch.InTx != nil {
			if err := ch.InTx(tx, stored); err != nil {
				return err
			}
		}
		out = c
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, nil, err
	}
	if err != nil {
		return nil, nil, fmt.Errorf("apply to conversation %s: %w", id, err)
	}
	return out, stored, nil
}

func (s *Store) lockConversation() string {
	if s.dialect == "postgres" {
		return " FOR UPDATE OF c"
	}
	return "" // SQLite: the single writer already serialises
}

func (s *Store) insertMessage(tx *sql.Tx, workspaceID string, convPK int64, m *conversation.Message) (bool, error) {
	var ext any
	if m.ExternalID != "" {
		ext = m.ExternalID
	}
	var media, toolCalls, msgErr any
	if m.Media != nil {
		b, _ := json.Marshal(m.Media)
		media = string(b)
	}
	if len(m.ToolCalls) > 0 {
		b, _ := json.Marshal(m.ToolCalls)
		toolCalls = string(b)
	}
	if m.Error != nil {
		b, _ := json.Marshal(m.Error)
		msgErr = string(b)
	}
	var latency, version any
	if m.LatencyMS != nil {
		latency = *m.LatencyMS
	}
	if m.AssistantVersion > 0 {
		version = m.AssistantVersion
	}
	var pk int64
	err := tx.QueryRow(`INSERT INTO messages (id, workspace_id, conversation_pk, external_id, role, direction, type, text, media, tool_calls, status, error,
		tokens_in, tokens_out, cost_micros, latency_ms, assistant_version, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
		ON CONFLICT (workspace_id, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING pk`,
		m.ID, workspaceID, convPK, ext, string(m.Role), string(m.Direction), m.Type, m.Text, media, toolCalls, m.Status, msgErr,
		m.TokensIn, m.TokensOut, m.CostMicros, latency, version, ms(m.CreatedAt)).Scan(&pk)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("insert message: %w", err)
	}
	if s.dialect == "sqlite" && m.Text != "" {
		if s.item != nil {
			s.item.fts = append(s.item.fts, pk)
		} else if err := indexText(tx, []int64{pk}); err != nil {
			return false, err
		}
	}
	return true, nil
}

// markAnswered closes every customer message still waiting in the conversation: each counts as
// answered, with its own response time, in the hour it arrived.
func markAnswered(tx *sql.Tx, convPK int64, at time.Time, r rollups) error {
	waiting, err := column[int64](tx.Query(`SELECT created_at FROM messages WHERE conversation_pk = $1 AND role = 'user' AND answered_at IS NULL`, convPK))
	if err != nil {
		return fmt.Errorf("find unanswered: %w", err)
	}
	if len(waiting) == 0 {
		return nil
	}
	if _, err := tx.Exec(`UPDATE messages SET answered_at = $1 WHERE conversation_pk = $2 AND role = 'user' AND answered_at IS NULL`, ms(at), convPK); err != nil {
		return fmt.Errorf("mark answered: %w", err)
	}
	for _, created := range waiting {
		b := r.at(fromMS(created))
		b.answered++
		if d := ms(at) - created; d > 0 {
			b.responseMS += d
		}
	}
	return nil
}

func preview(m *conversation.Message) string {
	text := strings.TrimSpace(m.Text)
	if text == "" {
		if m.Type != "" && m.Type != "text" {
			return "[" + m.Type + "]"
		}
		return ""
	}
	text = strings.Join(strings.Fields(text), " ")
	if r := []rune(text); len(r) > 160 {
		text = string(r[:160]) + "…"
	}
	return text
}

func upsertVariables(tx *sql.Tx, convPK int64, vars []conversation.Variable) error {
	for _, v := range vars {
		if _, err := tx.Exec(`INSERT INTO variables (conversation_pk, name, value, source, updated_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (conversation_pk, name) DO UPDATE SET value = excluded.value, source = excluded.source, updated_at = excluded.updated_at`,
			convPK, v.Name, v.Value, v.Source, ms(v.UpdatedAt)); err != nil {
			return fmt.Errorf("upsert variable %s: %w", v.Name, err)
		}
	}
	return nil
}

// Variables returns a conversation's variables by name.
func (s *Store) Variables(ctx context.Context, workspaceID, id string) ([]conversation.Variable, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT v.name, v.value, v.source, v.updated_at FROM variables v JOIN conversations c ON c.pk = v.conversation_pk
		WHERE c.id = $1 AND c.workspace_id = $2 ORDER BY v.name`, id, workspaceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []conversation.Variable{}
	for rows.Next() {
		var v conversation.Variable
		var updated int64
		if err := rows.Scan(&v.Name, &v.Value, &v.Source, &updated); err != nil {
			return nil, err
		}
		v.UpdatedAt = fromMS(updated)
		out = append(out, v)
	}
	return out, rows.Err()
}

// Messages returns a conversation's messages in order; lastN > 0 keeps only the most recent.
func (s *Store) Messages(ctx context.Context, workspaceID, id string, lastN int) ([]*conversation.Message, error) {
	q := `SELECT ` + messageColumns + ` FROM messages m JOIN conversations c ON c.pk = m.conversation_pk WHERE c.id = $1 AND c.workspace_id = $2`
	args := []any{id, workspaceID}
	if lastN > 0 {
		q = `SELECT * FROM (` + q + ` ORDER BY m.pk DESC` + limitSQL(lastN) + `) recent`
	} else {
		q += ` ORDER BY m.pk`
	}
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out, err := collectMessages(rows, id)
	if err != nil {
		return nil, err
	}
	if lastN > 0 {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, nil
}

// ListConversations returns one page, newest activity first, with keyset pagination.
func (s *Store) ListConversations(ctx context.Context, workspaceID string, f conversation.Filter) (conversation.Page, error) {
	if match := ftsQuery(f.Query); match != "" {
		switch plan := s.textPlan(ctx, match); {
		case plan == planWalk:
			return s.listWalk(ctx, workspaceID, f, match)
		case plan == planMembers && activityOnly(f):
			return s.listMatching(ctx, workspaceID, f, planMembers)
		case s.dialect == "sqlite":
			return s.listMatching(ctx, workspaceID, f, planSet)
		}
	}
	return s.listConversations(ctx, workspaceID, f)
}

// activityOnly reports whether f filters on nothing but text and dates (what the activity index
// holds besides the workspace).
func activityOnly(f conversation.Filter) bool {
	return len(f.Types) == 0 && f.AssistantID == "" && f.Customer == "" && f.Status == "" && f.Window == ""
}

// listMatching is the text search's set and members plans (SQLite): the page's conversations
// found by pk alone, then loaded. The set plan drives the join from the matches, each
// conversation looked up by pk: asked for pks only, the planner walked the activity index (which
// covers them) testing each against the matches, 473 ms for an order number in one message. The
// members plan asks for exactly that walk, over the narrow index of the list order (0016).
func (s *Store) listMatching(ctx context.Context, workspaceID string, f conversation.Filter, plan textPlanKind) (conversation.Page, error) {
	var q sqlBuilder
	var query string
	if plan == planMembers {
		query = `SELECT c.pk FROM conversations c INDEXED BY conversations_recent WHERE ` + s.filterWhere(&q, workspaceID, f)
	} else {
		rest := f
		rest.Query = ""
		query = `SELECT c.pk FROM (SELECT DISTINCT ` + matchedConversations(&q, ftsQuery(f.Query)) +
			`) m CROSS JOIN conversations c ON c.pk = m.pk WHERE ` + s.filterWhere(&q, workspaceID, rest)
	}
	if f.Cursor != "" {
		at, pk, err := decodeCursor(f.Cursor)
		if err != nil {
			return conversation.Page{}, err
		}
		query += keysetAfter(&q, at, pk)
	}
	var pks []int64
	err := s.readRaw(ctx, query+` ORDER BY c.last_message_at DESC, c.pk DESC`+limitSQL(f.Limit+1), q.args, func(v []driver.Value) error {
		pks = append(pks, valueInt(v[0]))
		return nil
	})
	if err != nil {
		return conversation.Page{}, fmt.Errorf("list conversations: %w", err)
	}
	return s.pageOf(ctx, pks, f.Limit)
}

func (s *Store) listConversations(ctx context.Context, workspaceID string, f conversation.Filter) (conversation.Page, error) {
	var q sqlBuilder
	where := s.filterWhere(&q, workspaceID, f)
	if f.Cursor != "" {
		at, pk, err := decodeCursor(f.Cursor)
		if err != nil {
			return conversation.Page{}, err
		}
		where += keysetAfter(&q, at, pk)
	}
	limit := f.Limit
	rows, err := s.read.QueryContext(ctx, `SELECT `+conversationColumns+conversationFrom+` WHERE `+where+
		` ORDER BY c.last_message_at DESC, c.pk DESC`+limitSQL(limit+1), q.args...)
	if err != nil {
		return conversation.Page{}, fmt.Errorf("list conversations: %w", err)
	}
	defer rows.Close()
	return scanPage(rows, limit)
}

// ErrBadCursor is returned for a cursor this server did not make.
var ErrBadCursor = errors.New("invalid cursor")

func encodeCursor(at time.Time, pk int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1:" + strconv.FormatInt(ms(at), 10) + ":" + strconv.FormatInt(pk, 10)))
}

func decodeCursor(s string) (int64, int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, 0, ErrBadCursor
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != "v1" {
		return 0, 0, ErrBadCursor
	}
	at, err1 := strconv.ParseInt(parts[1], 10, 64)
	pk, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, ErrBadCursor
	}
	return at, pk, nil
}

// exportBatch is how many conversations the export reads at a time. Small pages keep the export's
// memory low (the pages in flight are most of its heap, which GOGC=200 lets grow to three times
// that) and cost no speed: 64 conversations are ~640 rows a query.
const exportBatch = 64

// exportFetchers is how many pages of messages are read at once, each on its own connection.
const exportFetchers = 2

// exportPageMessages bounds a page by its messages too: 64 conversations of 100 messages each (a
// burst's) are 6,400 rows in memory per page, and the export's RSS went from 80 to 98 MB. A longer
// conversation is split into pages of its own.
const exportPageMessages = 1024

type exportPage struct {
	convs []*conversation.Conversation
	pks   []int64
	// A conversation longer than exportPageMessages comes in pages of its own, each with the
	// messages whose pk is in (msgAfter, msgUpTo]; both 0: every message of the page's conversations.
	msgAfter, msgUpTo int64
	vars              map[int64][]conversation.Variable // set before msgs is sent
	msgs              chan map[int64][]exportMessage
	err               chan error
}

// Export streams every message of the filtered conversations, conversation by conversation in list
// order. Conversations are read a page at a time (keyset); each page's messages are read with one
// query, on up to exportFetchers connections at once, and handed on in order. Memory is bounded by a
// few pages whatever the export's size, and a conversation's columns are read once, not per message.
func (s *Store) Export(ctx context.Context, workspaceID string, f conversation.Filter, opts conversation.ExportOptions, fn func(conversation.ExportRow) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan *exportPage, exportFetchers)
	listErr := make(chan error, 1)
	sem := make(chan struct{}, exportFetchers)
	go func() {
		defer close(pages)
		listErr <- s.exportPages(ctx, workspaceID, f, func(p *exportPage) error {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
			go func() {
				defer func() { <-sem }()
				m, err := s.exportMessages(ctx, p)
				if err == nil && opts.Variables {
					p.vars, err = s.exportVariables(ctx, p.pks)
				}
				p.msgs <- m
				p.err <- err
			}()
			select {
			case pages <- p:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	for p := range pages {
		byConv, err := <-p.msgs, <-p.err
		if err != nil {
			return err
		}
		for i, c := range p.convs {
			for _, em := range byConv[p.pks[i]] {
				em.m.ConversationID = c.ID
				if err := fn(conversation.ExportRow{Conversation: c, Message: em.m, Variables: p.vars[p.pks[i]], Stored: em.stored}); err != nil {
					return err
				}
			}
		}
	}
	return <-listErr
}

// exportPages walks the filtered conversations in list order, a page at a time, all from one
// snapshot: a conversation that gains activity during the export would otherwise jump ahead of the
// cursor and be missed.
func (s *Store) exportPages(ctx context.Context, workspaceID string, f conversation.Filter, emit func(*exportPage) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.dialect == "postgres" {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.read.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer tx.Rollback()
	var afterAt, afterPK int64
	first := true
	for {
		var q sqlBuilder
		where := s.filterWhere(&q, workspaceID, f)
		if !first {
			where += keysetAfter(&q, afterAt, afterPK)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+conversationColumns+conversationFrom+` WHERE `+where+
			` ORDER BY c.last_message_at DESC, c.pk DESC`+limitSQL(exportBatch), q.args...)
		if err != nil {
			return fmt.Errorf("export conversations: %w", err)
		}
		var p *exportPage
		var inPage, read int64
		for rows.Next() {
			c, pk, err := scanConversation(rows)
			if err != nil {
				rows.Close()
				return err
			}
			read++
			afterAt, afterPK = ms(c.LastMessageAt), pk
			if p != nil && inPage+c.MessageCount > exportPageMessages {
				if err := emit(p); err != nil {
					rows.Close()
					return err
				}
				p = nil
			}
			if c.MessageCount > exportPageMessages {
				if err := s.exportLongConversation(ctx, tx, c, pk, emit); err != nil {
					rows.Close()
					return err
				}
				continue
			}
			if p == nil {
				p = &exportPage{msgs: make(chan map[int64][]exportMessage, 1), err: make(chan error, 1)}
				inPage = 0
			}
			p.convs = append(p.convs, c)
			p.pks = append(p.pks, pk)
			inPage += c.MessageCount
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if p != nil {
			if err := emit(p); err != nil {
				return err
			}
		}
		first = false
		if read < exportBatch {
			return nil
		}
	}
}

// exportLongConversation emits a conversation longer than exportPageMessages as pages of its
// own, split at message pks read from the (conversation_pk, pk) index in the export's snapshot:
// 8 bytes a message in memory instead of the messages themselves.
func (s *Store) exportLongConversation(ctx context.Context, tx *sql.Tx, c *conversation.Conversation, pk int64, emit func(*exportPage) error) error {
	rows, err := tx.QueryContext(ctx, `SELECT pk FROM messages WHERE conversation_pk = $1 ORDER BY pk`, pk)
	if err != nil {
		return fmt.Errorf("export conversation %s: %w", c.ID, err)
	}
	var msgPKs []int64
	for rows.Next() {
		var m int64
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return err
		}
		msgPKs = append(msgPKs, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	after := int64(0)
	for start := 0; start < len(msgPKs); start += exportPageMessages {
		upTo := msgPKs[min(start+exportPageMessages, len(msgPKs))-1]
		p := &exportPage{convs: []*conversation.Conversation{c}, pks: []int64{pk}, msgAfter: after, msgUpTo: upTo,
			msgs: make(chan map[int64][]exportMessage, 1), err: make(chan error, 1)}
		if err := emit(p); err != nil {
			return err
		}
		after = upTo
	}
	return nil
}

// exportMessage is a message as the export reads it: on SQLite its JSON fields stay as stored.
type exportMessage struct {
	m      *conversation.Message
	stored *conversation.StoredJSON
}

// exportMessages reads the messages of a page of conversations with one query. On SQLite, media,
// tool calls and errors are TEXT holding exactly what json.Marshal wrote (the only writer), so they
// are handed on as stored; PostgreSQL's JSONB reformats them, so there they are decoded as elsewhere.
func (s *Store) exportMessages(ctx context.Context, p *exportPage) (map[int64][]exportMessage, error) {
	pks := p.pks
	var q sqlBuilder
	ph := make([]string, len(pks))
	for i, pk := range pks {
		ph[i] = q.arg(pk)
	}
	where := `m.conversation_pk IN (` + strings.Join(ph, ", ") + `)`
	if p.msgUpTo > 0 {
		where += ` AND m.pk > ` + q.arg(p.msgAfter) + ` AND m.pk <= ` + q.arg(p.msgUpTo)
	}
	query := `SELECT m.conversation_pk, ` + messageColumns + ` FROM messages m WHERE ` + where + ` ORDER BY m.conversation_pk, m.pk`
	out := make(map[int64][]exportMessage, len(pks))
	if s.dialect == "sqlite" {
		return out, s.exportMessagesRaw(ctx, query, q.args, out)
	}
	rows, err := s.read.QueryContext(ctx, query, q.args...)
	if err != nil {
		return nil, fmt.Errorf("export messages: %w", err)
	}
	defer rows.Close()
	var convPK int64
	for rows.Next() {
		m := &conversation.Message{}
		d := newMessageDest(m)
		if err := rows.Scan(append([]any{&convPK}, d.targets()...)...); err != nil {
			return nil, err
		}
		if err := d.finish(); err != nil {
			return nil, err
		}
		out[convPK] = append(out[convPK], exportMessage{m: m})
	}
	return out, rows.Err()
}

// exportMessagesRaw runs the export's message query on SQLite through the driver's rows, below
// database/sql: at 10M rows its Scan (locking, conversion through reflection) was a tenth of the
// export's CPU. The columns are those of exportMessages' query.
func (s *Store) exportMessagesRaw(ctx context.Context, query string, args []any, out map[int64][]exportMessage) error {
	n := 0
	err := s.readRaw(ctx, query, args, func(v []driver.Value) error {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		m := &conversation.Message{ID: valueText(v[1]), ExternalID: valueText(v[2]), Role: conversation.Role(valueText(v[3])),
			Direction: conversation.Direction(valueText(v[4])), Type: valueText(v[5]), Text: valueText(v[6]), Status: valueText(v[9]),
			TokensIn: valueInt(v[11]), TokensOut: valueInt(v[12]), CostMicros: valueInt(v[13]),
			AssistantVersion: int(valueInt(v[15])), CreatedAt: fromMS(valueInt(v[16]))}
		if v[14] != nil {
			l := valueInt(v[14])
			m.LatencyMS = &l
		}
		em := exportMessage{m: m}
		if v[7] != nil || v[8] != nil || v[10] != nil {
			em.stored = &conversation.StoredJSON{Media: valueBytes(v[7]), ToolCalls: valueBytes(v[8]), Error: valueBytes(v[10])}
		}
		pk := valueInt(v[0])
		out[pk] = append(out[pk], em)
		return nil
	})
	if err != nil {
		return fmt.Errorf("export messages: %w", err)
	}
	return nil
}

// readRaw runs a read query on one connection and hands fn each row's driver values, below
// database/sql's Scan, whose conversions and copies cost more than SQLite's step for rows read by
// the thousand (the export, the common-word walk). The values are valid until fn returns. SQLite
// only: PostgreSQL's driver values differ (JSONB, timestamps).
func (s *Store) readRaw(ctx context.Context, query string, args []any, fn func(v []driver.Value) error) error {
	conn, err := s.read.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return conn.Raw(func(dc any) error {
		qc, ok := dc.(driver.QueryerContext)
		if !ok {
			return errors.New("the driver cannot query")
		}
		rows, err := qc.QueryContext(ctx, query, named)
		if err != nil {
			return err
		}
		defer rows.Close()
		v := make([]driver.Value, len(rows.Columns()))
		for {
			if err := rows.Next(v); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if err := fn(v); err != nil {
				return err
			}
		}
	})
}

// valueText, valueInt and valueBytes read a driver value of a TEXT, INTEGER or JSON column
// (NULL: the zero value).
func valueText(v driver.Value) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func valueInt(v driver.Value) int64 {
	x, _ := v.(int64)
	return x
}

func valueBytes(v driver.Value) []byte {
	switch x := v.(type) {
	case string:
		return []byte(x)
	case []byte:
		return x
	}
	return nil
}

// filterWhere builds the WHERE clause shared by the list, the export and counts.
func (s *Store) filterWhere(q *sqlBuilder, workspaceID string, f conversation.Filter) string {
	conds := []string{`c.workspace_id = ` + q.arg(workspaceID)}
	if len(f.Types) > 0 {
		ph := make([]string, len(f.Types))
		for i, t := range f.Types {
			ph[i] = q.arg(string(t))
		}
		conds = append(conds, `c.type IN (`+strings.Join(ph, ", ")+`)`)
	}
	if f.AssistantID != "" {
		conds = append(conds, `c.assistant_id = `+q.arg(f.AssistantID))
	}
	if f.From != nil {
		conds = append(conds, `c.last_message_at >= `+q.arg(ms(*f.From)))
	}
	if f.To != nil {
		conds = append(conds, `c.last_message_at < `+q.arg(ms(*f.To)))
	}
	if f.Customer != "" {
		ids := customerKeys(f.Customer)
		ph := make([]string, len(ids))
		for i, id := range ids {
			ph[i] = q.arg(id)
		}
		conds = append(conds, `c.customer_id IN (`+strings.Join(ph, ", ")+`)`)
	}
	if f.Status != "" {
		conds = append(conds, `c.status = `+q.arg(string(f.Status)))
	}
	if f.Window != "" {
		cutoff := q.arg(ms(time.Now().Add(-conversation.CustomerWindow)))
		if f.Window == "open" {
			conds = append(conds, `c.type = 'whatsapp' AND c.last_inbound_at >= `+cutoff)
		} else {
			conds = append(conds, `c.type = 'whatsapp' AND (c.last_inbound_at IS NULL OR c.last_inbound_at < `+cutoff+`)`)
		}
	}
	if f.Query != "" {
		conds = append(conds, s.textMatch(q, workspaceID, f.Query))
	}
	return strings.Join(conds, " AND ")
}

// textMatch selects conversations with a message containing every word of query: the set of
// matching conversations, computed once (an uncorrelated subquery), so its cost follows the number
// of matches. Common terms take listWalk instead.
func (s *Store) textMatch(q *sqlBuilder, workspaceID, query string) string {
	match := ftsQuery(query)
	if match == "" {
		return "1 = 1"
	}
	if s.dialect == "postgres" {
		return `c.pk IN (SELECT m.conversation_pk FROM messages m WHERE m.workspace_id = ` + q.arg(workspaceID) + ` AND m.tsv @@ plainto_tsquery('simple', ` + q.arg(query) + `))`
	}
	return `c.pk IN (SELECT ` + matchedConversations(q, match) + `)`
}

// matchedConversations is the SQL (after SELECT) of the pks of the conversations with a message
// matching the FTS query match, one row per matching message (SQLite).
func matchedConversations(q *sqlBuilder, match string) string {
	return `rowid >> 32 AS pk FROM messages_fts WHERE messages_fts MATCH ` + q.arg(textColumn(match))
}

// textColumn restricts the FTS query match to the index's text column.
func textColumn(match string) string { return "text : (" + match + ")" }

// ftsKey is a message's rowid in the full-text index (SQLite), as SQL over a messages row: its
// conversation's pk in the high 32 bits, its own pk's low 32 bits below, so that a match names its
// conversation (rowid >> 32) and one conversation's rows are a rowid range (convRows). Unique while
// conversation pks stay below 2³¹ and no conversation has two messages 2³² pks apart.
const ftsKey = `(conversation_pk << 32) | (pk & 4294967295)`

// convRows is the range of full-text rowids of conversation pk's messages.
func convRows(pk int64) (lo, hi int64) { return pk << 32, pk<<32 | 0xFFFFFFFF }

// A text search's plan (SQLite) follows how many messages match. Measured on 10M messages and 1M
// conversations, for a page of 50 (n matches, a share d of the conversations matching):
//   - planSet: the matches' conversations (distinct) each looked up by pk for its activity, then
//     sorted: ~5 µs × n;
//   - planMembers: SQLite collects the matches' conversations into a set (~0.4 µs × n), then walks
//     the list order's narrow index (conversations_recent) testing each conversation against it
//     (~0.35 µs × 50/d; 0.7 over the activity index, which carries the term signatures);
//   - planWalk: the activity index walked with each conversation's term signature tested in the
//     query and its possible matches checked (listWalk): ~43 ms at 3,700 matches, falling as
//     1/n; for words too common to collect.
//
// The bounds sit where the costs cross: ~2,800 matches (~14 ms either way, the slowest search,
// when the members plan walked the activity index; set ~8 ms and members ~7 ms over the narrow one
// on a faster machine) and ~16,000 (~9 ms). planMembers walks the list order whatever else the
// filter asks, so it is for searches filtered by dates at most: a filter the index does not hold
// (a customer, an assistant) makes the set plan cheaper.
type textPlanKind int

const (
	planSet textPlanKind = iota
	planMembers
	planWalk
)

const (
	setPlanMax     = 2800
	membersPlanMax = 16000
)

// densityWindow is how many of the newest conversations textPlan samples for a word's density.
const densityWindow = 20000

// textPlan picks the plan for the FTS query match from the number of messages matching it
// (~0.15 µs a match to count). Past setPlanMax, the matches among the newest conversations (by pk,
// a rowid range of the index) tell a common word cheaply; only a word that looks rare enough
// there is counted up to membersPlanMax, so that a common one costs ~0.5 ms to recognise rather
// than 2. PostgreSQL has only the set plan.
func (s *Store) textPlan(ctx context.Context, match string) textPlanKind {
	if s.dialect != "sqlite" {
		return planSet
	}
	query := textColumn(match)
	if s.countMatches(ctx, query, 0, setPlanMax) < setPlanMax {
		return planSet
	}
	var top int64
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(pk), 0) FROM conversations`).Scan(&top); err != nil {
		return planWalk
	}
	if window := min(top, densityWindow); window > 0 {
		// More recent matches than membersPlanMax spread evenly would put there. Counted up to a
		// power of two, so that the statement (its LIMIT written in) is one of a few cached ones.
		enough := int(membersPlanMax*window/top) + 1
		lo, _ := convRows(top - window + 1)
		if s.countMatches(ctx, query, lo, 1<<bits.Len(uint(enough))) >= enough {
			return planWalk
		}
	}
	if s.countMatches(ctx, query, 0, membersPlanMax) >= membersPlanMax {
		return planWalk
	}
	return planMembers
}

// countMatches counts the index rows matching query from rowid from on, up to max. An error
// counts as no match: it shows again, with its cause, in the plan's own query.
func (s *Store) countMatches(ctx context.Context, query string, from int64, max int) int {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT rowid FROM messages_fts WHERE messages_fts MATCH $1 AND rowid >= $2`+limitSQL(max)+`)`,
		query, from).Scan(&n)
	if err != nil {
		return 0
	}
	return n
}

// maxWalkBatch bounds how many conversations that may match listWalk reads with one query.
// Batches start at the page size and double while few of them match (the query passes over those
// that cannot match by itself, ~0.7 µs each).
const maxWalkBatch = 512

// listWalk finds a page for a common text search: it walks the conversations that pass the other
// filters in list order, a batch at a time, until the page is full. Each conversation's term
// signature, tested in the query, rules out most that cannot match; the rest are checked by
// reading their messages (matched as the index would), or, for long conversations, by asking the
// index (the conversation is an indexed FTS column). Its cost follows the page and the
// conversations walked past, at a signature test each, not the number of matches.
func (s *Store) listWalk(ctx context.Context, workspaceID string, f conversation.Filter, match string) (conversation.Page, error) {
	rest := f
	rest.Query, rest.Cursor = "", ""
	var afterAt, afterPK int64
	keyset := f.Cursor != ""
	if keyset {
		var err error
		if afterAt, afterPK, err = decodeCursor(f.Cursor); err != nil {
			return conversation.Page{}, err
		}
	}
	query := terms.NewQuery(queryWords(f.Query))
	probe := query.Probe()
	var found []int64
	batchSize := f.Limit + 1
	// Text and dates only: the activity index covers the walk (signatures and counts); since the
	// narrow conversations_recent exists, say so rather than leave it to the planner's estimates.
	// Other filters walk their own index and read the rows.
	walkIndex := ""
	if activityOnly(rest) {
		walkIndex = " INDEXED BY conversations_activity"
	}
	for len(found) <= f.Limit {
		var q sqlBuilder
		where := s.filterWhere(&q, workspaceID, rest)
		if keyset {
			where += keysetAfter(&q, afterAt, afterPK)
		}
		type candidate struct{ pk, count int64 }
		var maybe []candidate
		err := s.readRaw(ctx, `SELECT c.pk, c.last_message_at, c.message_count FROM conversations c`+walkIndex+` WHERE `+where+` AND `+mayHold(&q, probe)+
			` ORDER BY c.last_message_at DESC, c.pk DESC`+limitSQL(batchSize), q.args, func(v []driver.Value) error {
			afterPK, afterAt = valueInt(v[0]), valueInt(v[1])
			maybe = append(maybe, candidate{afterPK, valueInt(v[2])})
			return nil
		})
		if err != nil {
			return conversation.Page{}, fmt.Errorf("list candidates: %w", err)
		}
		got := len(maybe)
		if got == 0 {
			break
		}
		keyset = true
		// Checked in list order, as many at a time as the page still needs: past a few false
		// maybes, the page fills without checking the rest of the batch.
		for len(maybe) > 0 && len(found) <= f.Limit {
			chunk := maybe[:min(len(maybe), max(f.Limit+1-len(found), 8))]
			maybe = maybe[len(chunk):]
			var short, long []int64
			for _, c := range chunk {
				if c.count <= readCheckMax {
					short = append(short, c.pk)
				} else {
					long = append(long, c.pk)
				}
			}
			hits, err := s.convsMatching(ctx, match, long)
			if err != nil {
				return conversation.Page{}, err
			}
			if err := s.convsReadMatching(ctx, query, short, hits); err != nil {
				return conversation.Page{}, err
			}
			for _, c := range chunk {
				if hits[c.pk] && len(found) <= f.Limit {
					found = append(found, c.pk)
				}
			}
		}
		if got < batchSize {
			break
		}
		batchSize = min(2*batchSize, maxWalkBatch)
	}
	return s.pageOf(ctx, found, f.Limit)
}

// byteWithBit[b] is every byte value with bit b set: instr(byteWithBit[b], substr(terms, i, 1))
// tests bit b of a signature's byte i inside SQLite, so that the walk's query returns only the
// conversations that may match instead of every signature (copying each into Go cost more than
// reading it).
var byteWithBit = func() (sets [8][]byte) {
	for b := range sets {
		for v := 0; v < 256; v++ {
			if v&(1<<b) != 0 {
				sets[b] = append(sets[b], byte(v))
			}
		}
	}
	return sets
}()

// mayHold is the SQL condition that a conversation's signature may hold the probe's words: every
// bit set, or no signature known.
func mayHold(q *sqlBuilder, probe terms.Probe) string {
	if len(probe) == 0 {
		return "1 = 1"
	}
	conds := make([]string, len(probe))
	for i, bit := range probe {
		conds[i] = `instr(` + q.arg(byteWithBit[bit&7]) + `, substr(c.terms, ` + q.arg(int64(bit>>3)+1) + `, 1)) > 0`
	}
	return `(c.terms IS NULL OR length(c.terms) <> ` + strconv.Itoa(terms.Size) + ` OR (` + strings.Join(conds, " AND ") + `))`
}

// readCheckMax is the longest conversation listWalk checks by reading its messages: a short one's
// messages are read in a few pages (10 messages: ~30 µs, against 60–170 µs for one conversation's
// look-up in every segment of the full-text index at 10M messages); a long one's lie on a page each
// (a 94-message conversation written during a burst: ~900 µs).
const readCheckMax = 24

// convsMatching returns which of the conversations pks have a message matching the FTS query,
// each looked up in its rowid range of the index.
func (s *Store) convsMatching(ctx context.Context, match string, pks []int64) (map[int64]bool, error) {
	hits := map[int64]bool{}
	for _, pk := range pks {
		lo, hi := convRows(pk)
		var one int
		err := s.read.QueryRowContext(ctx, `SELECT 1 FROM messages_fts WHERE messages_fts MATCH $1 AND rowid >= $2 AND rowid <= $3 LIMIT 1`,
			textColumn(match), lo, hi).Scan(&one)
		switch {
		case err == nil:
			hits[pk] = true
		case !errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("list text batch: %w", err)
		}
	}
	return hits, nil
}

// convsReadMatching adds to hits which of the conversations pks have a message matching query,
// reading their messages' text.
func (s *Store) convsReadMatching(ctx context.Context, query terms.Query, pks []int64, hits map[int64]bool) error {
	if len(pks) == 0 {
		return nil
	}
	var q sqlBuilder
	ph := make([]string, len(pks))
	for i, pk := range pks {
		ph[i] = q.arg(pk)
	}
	err := s.readRaw(ctx, `SELECT conversation_pk, text FROM messages WHERE conversation_pk IN (`+strings.Join(ph, ", ")+`) AND text <> ''`, q.args,
		func(v []driver.Value) error {
			if pk := valueInt(v[0]); !hits[pk] && query.Matches(valueText(v[1])) {
				hits[pk] = true
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("list text batch: %w", err)
	}
	return nil
}

// pageOf loads the conversations pks (already in list order) as a page of limit, with a cursor when
// there is one more.
func (s *Store) pageOf(ctx context.Context, pks []int64, limit int) (conversation.Page, error) {
	if len(pks) == 0 {
		return conversation.Page{Conversations: []conversation.Conversation{}}, nil
	}
	var q sqlBuilder
	ph := make([]string, len(pks))
	for i, pk := range pks {
		ph[i] = q.arg(pk)
	}
	// Each looked up by pk: left to itself, the planner may walk the activity index for the order
	// and test each conversation against the list (2 ms for a page at 1M conversations).
	from := conversationFrom
	if s.dialect == "sqlite" {
		from = ` FROM conversations c NOT INDEXED` + conversationJoins
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+conversationColumns+from+` WHERE c.pk IN (`+strings.Join(ph, ", ")+
		`) ORDER BY c.last_message_at DESC, c.pk DESC`, q.args...)
	if err != nil {
		return conversation.Page{}, fmt.Errorf("load page: %w", err)
	}
	defer rows.Close()
	return scanPage(rows, limit)
}

// ftsQuery turns free text into an FTS5 query: every word must appear, each quoted so that
// operators and punctuation in the input are plain text.
func ftsQuery(text string) string {
	words := queryWords(text)
	for i, w := range words {
		words[i] = `"` + w + `"`
	}
	return strings.Join(words, " ")
}

// queryWords are the words of a text search: split at anything but letters and digits, at most 16.
func queryWords(text string) []string {
	words := strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if len(words) > 16 {
		words = words[:16]
	}
	return words
}

// customerKeys is the customer filter's value and, for a phone number written with +, spaces or
// dashes, its digits (WhatsApp customer ids are digits only).
func customerKeys(v string) []string {
	keys := []string{v}
	digits := strings.Map(func(r rune) rune {
		if unicode.IsDigit(r) {
			return r
		}
		if strings.ContainsRune("+ -().", r) {
			return -1
		}
		return 'x'
	}, v)
	if digits != v && digits != "" && !strings.ContainsRune(digits, 'x') {
		keys = append(keys, digits)
	}
	return keys
}

type sqlBuilder struct{ args []any }

// keysetAfter continues the list after (last activity, pk), newest first. The plain bound on the
// time lets the index seek to the page: with only the OR, SQLite, given bound parameters, walked the
// index from its start and filtered, so every page cost more than the one before (an export of 10M
// messages fell from 80k to 16k rows/s as it went).
func keysetAfter(q *sqlBuilder, at, pk int64) string {
	a, b, c, d := q.arg(at), q.arg(at), q.arg(at), q.arg(pk)
	return ` AND c.last_message_at <= ` + a + ` AND (c.last_message_at < ` + b + ` OR (c.last_message_at = ` + c + ` AND c.pk < ` + d + `))`
}

// limitSQL is a LIMIT clause with its number written in. SQLite compiles a statement again every
// time a bound LIMIT changes (the planner reads the value), which defeats the statement cache.
func limitSQL(n int) string { return " LIMIT " + strconv.Itoa(n) }

func (q *sqlBuilder) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// conversationDest scans a conversation row into c, decoding nullable and JSON columns in finish.
type conversationDest struct {
	c                       *conversation.Conversation
	pk                      int64
	typ, status, meta       string
	lastAt, created, update int64
	lastIn, ended           sql.NullInt64
}

func newConversationDest(c *conversation.Conversation) *conversationDest {
	return &conversationDest{c: c}
}

func (d *conversationDest) targets() []any {
	c := d.c
	return []any{&d.pk, &c.ID, &c.WorkspaceID, &d.typ, &d.status, &c.AssistantID, &c.AssistantName, &c.CustomerID, &c.CustomerName,
		&c.ChannelID, &d.meta, &c.MessageCount, &c.TokensIn, &c.TokensOut, &c.CostMicros, &c.LastMessagePreview, &d.lastAt,
		&d.lastIn, &c.HandoffReason, &c.LastError, &d.created, &d.update, &d.ended}
}

func (d *conversationDest) finish() error {
	c := d.c
	c.Type, c.Status = conversation.Type(d.typ), conversation.Status(d.status)
	c.Metadata = map[string]string{}
	if d.meta != "" && d.meta != "{}" {
		if err := json.Unmarshal([]byte(d.meta), &c.Metadata); err != nil {
			return fmt.Errorf("conversation %s metadata: %w", c.ID, err)
		}
	}
	c.LastMessageAt, c.CreatedAt, c.UpdatedAt = fromMS(d.lastAt), fromMS(d.created), fromMS(d.update)
	c.LastInboundAt, c.EndedAt = fromNullMS(d.lastIn), fromNullMS(d.ended)
	return nil
}

func scanConversation(r scanner) (*conversation.Conversation, int64, error) {
	c := &conversation.Conversation{}
	d := newConversationDest(c)
	if err := r.Scan(d.targets()...); err != nil {
		return nil, 0, err
	}
	return c, d.pk, d.finish()
}

// messageDest scans a message row into m.
type messageDest struct {
	m                             *conversation.Message
	ext, media, toolCalls, msgErr sql.NullString
	role, direction               string
	latency, version              sql.NullInt64
	created                       int64
}

func newMessageDest(m *conversation.Message) *messageDest { return &messageDest{m: m} }

func (d *messageDest) targets() []any {
	m := d.m
	return []any{&m.ID, &d.ext, &d.role, &d.direction, &m.Type, &m.Text, &d.media, &d.toolCalls, &m.Status, &d.msgErr,
		&m.TokensIn, &m.TokensOut, &m.CostMicros, &d.latency, &d.version, &d.created}
}

func (d *messageDest) finish() error {
	m := d.m
	m.ExternalID = d.ext.String
	m.Role, m.Direction = conversation.Role(d.role), conversation.Direction(d.direction)
	m.Media, m.ToolCalls, m.Error, m.LatencyMS = nil, nil, nil, nil
	if d.media.Valid {
		m.Media = &conversation.Media{}
		if err := json.Unmarshal([]byte(d.media.String), m.Media); err != nil {
			return fmt.Errorf("message %s media: %w", m.ID, err)
		}
	}
	if d.toolCalls.Valid {
		if err := json.Unmarshal([]byte(d.toolCalls.String), &m.ToolCalls); err != nil {
			return fmt.Errorf("message %s tool_calls: %w", m.ID, err)
		}
	}
	if d.msgErr.Valid {
		m.Error = &conversation.MessageError{}
		if err := json.Unmarshal([]byte(d.msgErr.String), m.Error); err != nil {
			return fmt.Errorf("message %s error: %w", m.ID, err)
		}
	}
	if d.latency.Valid {
		v := d.latency.Int64
		m.LatencyMS = &v
	}
	m.AssistantVersion = int(d.version.Int64)
	m.CreatedAt = fromMS(d.created)
	return nil
}

func scanMessage(r scanner) (*conversation.Message, error) {
	m := &conversation.Message{}
	d := newMessageDest(m)
	if err := r.Scan(d.targets()...); err != nil {
		return nil, err
	}
	return m, d.finish()
}

func nowMS() int64 { return time.Now().UnixMilli() }

// MessagesByID returns the named messages of a conversation, in order.
func (s *Store) MessagesByID(ctx context.Context, workspaceID, conversationID string, ids []string) ([]*conversation.Message, error) {
	if len(ids) == 0 {
		return []*conversation.Message{}, nil
	}
	var q sqlBuilder
	ph := make([]string, len(ids))
	for i, id := range ids {
		ph[i] = q.arg(id)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+messageColumns+` FROM messages m JOIN conversations c ON c.pk = m.conversation_pk
		WHERE c.id = `+q.arg(conversationID)+` AND c.workspace_id = `+q.arg(workspaceID)+` AND m.id IN (`+strings.Join(ph, ", ")+`) ORDER BY m.pk`, q.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collectMessages(rows, conversationID)
}

// MessagesAfter returns a conversation's messages stored after afterID, oldest first, at most
// limit (0: all). An afterID that is not one of its messages ("" included) returns them from the
// first. A reply job reads what followed its trigger this way, and the widget what a visitor has
// not seen.
func (s *Store) MessagesAfter(ctx context.Context, workspaceID, conversationID, afterID string, limit int) ([]*conversation.Message, error) {
	q := `SELECT ` + messageColumns + ` FROM messages m JOIN conversations c ON c.pk = m.conversation_pk
		WHERE c.id = $1 AND c.workspace_id = $2 AND m.pk > COALESCE((SELECT p.pk FROM messages p WHERE p.id = $3 AND p.conversation_pk = c.pk), 0)
		ORDER BY m.pk`
	if limit > 0 {
		q += limitSQL(limit)
	}
	rows, err := s.read.QueryContext(ctx, q, conversationID, workspaceID, afterID)
	if err != nil {
		return nil, fmt.Errorf("messages after %q: %w", afterID, err)
	}
	defer rows.Close()
	return collectMessages(rows, conversationID)
}

// collectMessages reads message rows (messageColumns) of one conversation.
func collectMessages(rows *sql.Rows, conversationID string) ([]*conversation.Message, error) {
	out := []*conversation.Message{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		m.ConversationID = conversationID
		out = append(out, m)
	}
	return out, rows.Err()
}

// scanPage reads up to limit conversation rows (conversationColumns, in list order) and, when one
// more follows, the cursor that continues after the last.
func scanPage(rows *sql.Rows, limit int) (conversation.Page, error) {
	page := conversation.Page{Conversations: make([]conversation.Conversation, 0, limit)}
	var lastPK int64
	for rows.Next() {
		c, pk, err := scanConversation(rows)
		if err != nil {
			return page, err
		}
		if len(page.Conversations) == limit {
			page.NextCursor = encodeCursor(page.Conversations[limit-1].LastMessageAt, lastPK)
			break
		}
		page.Conversations = append(page.Conversations, *c)
		lastPK = pk
	}
	return page, rows.Err()
}
