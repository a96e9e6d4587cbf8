package events

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-hq/parley/internal/conversation"
)

// Channel is the PostgreSQL notification channel Parley's instances share.
const Channel = "parley_events"

// Loader reads a conversation and some of its messages back from the database.
type Loader func(ctx context.Context, workspaceID, conversationID string, messageIDs []string) (*conversation.Conversation, []*conversation.Message, error)

// PGFanout makes events reach every instance on one PostgreSQL: it delivers locally at once and
// sends a NOTIFY carrying only ids (payloads are capped at 8 KB); every other instance LISTENs,
// loads the rows and delivers them to its own hub.
type PGFanout struct {
	Hub      *Hub
	DB       *sql.DB
	DSN      string
	Load     Loader
	Log      *slog.Logger
	instance string
	// listening is true while the LISTEN connection is up; readiness reports it.
	listening atomic.Bool
}

// Listening reports whether this instance currently hears the others.
func (f *PGFanout) Listening() bool { return f.listening.Load() }

type notice struct {
	Instance     string   `json:"i"`
	WorkspaceID  string   `json:"w"`
	Conversation string   `json:"c"`
	Messages     []string `json:"m,omitempty"`
}

// NewPGFanout returns a fan-out for hub over the database.
func NewPGFanout(hub *Hub, db *sql.DB, dsn string, load Loader, log *slog.Logger) *PGFanout {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &PGFanout{Hub: hub, DB: db, DSN: dsn, Load: load, Log: log, instance: hex.EncodeToString(b[:])}
}

// Publish implements conversation.Publisher.
func (f *PGFanout) Publish(workspaceID string, c *conversation.Conversation, msgs []*conversation.Message) {
	f.Hub.Publish(workspaceID, c, msgs)
	if c == nil {
		return
	}
	n := notice{Instance: f.instance, WorkspaceID: workspaceID, Conversation: c.ID}
	for _, m := range msgs {
		n.Messages = append(n.Messages, m.ID)
	}
	payload, _ := json.Marshal(n)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.DB.ExecContext(ctx, `SELECT pg_notify($1, $2)`, Channel, string(payload)); err != nil {
		f.Log.Warn("notify other instances", "err", err)
	}
}

// Run listens until ctx ends, reconnecting after errors.
func (f *PGFanout) Run(ctx context.Context) {
	for ctx.Err() == nil {
		err := f.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		f.Log.Warn("event listener stopped; reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (f *PGFanout) listen(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, f.DSN)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	f.listening.Store(true)
	defer f.listening.Store(false)
	for {
		nt, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var n notice
		if json.Unmarshal([]byte(nt.Payload), &n) != nil || n.Instance == f.instance {
			continue
		}
		c, msgs, err := f.Load(ctx, n.WorkspaceID, n.Conversation, n.Messages)
		if err != nil {
			continue // another database's schema or a deleted conversation: nothing to deliver here
		}
		f.Hub.Deliver(Event{WorkspaceID: n.WorkspaceID, Conversation: c, Messages: msgs})
	}
}
