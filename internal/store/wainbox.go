package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/whatsapp"
)

// OpenWAInbox opens where kept WhatsApp deliveries live. On SQLite that is a database file of its
// own beside the main one (parley.db → parley-inbox.db), with its own writer: acknowledging a
// delivery during a burst never waits behind the main writer, which is busy storing the burst's
// messages and answers. Storing a kept delivery's messages and deleting it are idempotent steps in
// that order, so they need no shared transaction. On PostgreSQL (no single writer) the main store
// holds the table and main is returned.
func OpenWAInbox(ctx context.Context, main *Store, dsn string) (*Store, error) {
	if main.dialect != "sqlite" {
		return main, nil
	}
	path := SQLitePath(dsn)
	ext := filepath.Ext(path)
	ib, err := openSQLite("sqlite://" + strings.TrimSuffix(path, ext) + "-inbox" + ext)
	if err != nil {
		return nil, fmt.Errorf("open whatsapp inbox: %w", err)
	}
	ib.linger = inboxLinger
	if _, err := ib.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS wa_inbox (
		id INTEGER PRIMARY KEY,
		phone_number_ids TEXT NOT NULL,
		body BLOB NOT NULL,
		received_at INTEGER NOT NULL
	)`); err != nil {
		ib.Close()
		return nil, fmt.Errorf("open whatsapp inbox: %w", err)
	}
	return ib, nil
}

// inboxLinger is how long the inbox's writer waits for more deliveries to join a commit. Each is
// one small insert, so the commit is most of a delivery's cost there: during a burst the commits
// were 1.6 s of the server's 10 s of CPU. Measured acknowledgements with the drain held off (32
// clients, 10M messages): none 16.2k msg/s (65 µs of server CPU each: a commit per few), 50 µs
// 21.5k, 100 µs 22.7k, 200 µs 20.7k, 300 µs 20.1k, 1 ms 13.0k (each client waits out the linger).
const inboxLinger = 100 * time.Microsecond

// AddWAInbox keeps a verified WhatsApp delivery, as it came, to be processed after its 200.
func (s *Store) AddWAInbox(ctx context.Context, phoneNumberIDs []string, body []byte, at time.Time) error {
	err := s.WriteStatement(ctx, `INSERT INTO wa_inbox (phone_number_ids, body, received_at) VALUES ($1, $2, $3)`,
		strings.Join(phoneNumberIDs, ","), body, ms(at))
	if err != nil {
		return fmt.Errorf("keep whatsapp delivery: %w", err)
	}
	return nil
}

// CountWAInbox returns how many kept deliveries wait to be processed.
func (s *Store) CountWAInbox(ctx context.Context) (int64, error) {
	var n int64
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM wa_inbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count kept whatsapp deliveries: %w", err)
	}
	return n, nil
}

// maxInboxTake bounds one TakeWAInbox (written into the SQL: a bound LIMIT makes SQLite recompile).
const maxInboxTake = 128

var takeInboxSQL = `SELECT id, phone_number_ids, body, received_at FROM wa_inbox ORDER BY id LIMIT ` + strconv.Itoa(maxInboxTake)

// TakeWAInbox hands the oldest kept deliveries (at most maxInboxTake) to process, which returns
// the ids of those it finished; those are deleted, the rest stay for the next call. On PostgreSQL
// the rows stay locked (SKIP LOCKED) while they are processed, so several instances share the inbox
// without working on the same delivery; on SQLite one process owns the database, and the caller
// runs one drainer.
func (s *Store) TakeWAInbox(ctx context.Context, process func([]whatsapp.InboxItem) ([]int64, error)) (int, error) {
	q := takeInboxSQL
	if s.dialect == "postgres" {
		tx, err := s.write.BeginTx(ctx, nil)
		if err != nil {
			return 0, fmt.Errorf("take kept whatsapp deliveries: %w", err)
		}
		defer tx.Rollback()
		items, err := scanInbox(tx.QueryContext(ctx, q+` FOR UPDATE SKIP LOCKED`))
		if err != nil {
			return 0, err
		}
		done, perr := process(items)
		if err := deleteInbox(ctx, tx, done); err != nil {
			return 0, err
		}
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("take kept whatsapp deliveries: commit: %w", err)
		}
		return len(done), perr
	}
	items, err := scanInbox(s.read.QueryContext(ctx, q))
	if err != nil {
		return 0, err
	}
	done, perr := process(items)
	if len(done) > 0 {
		if err := s.Write(ctx, func(tx *sql.Tx) error { return deleteInbox(ctx, tx, done) }); err != nil {
			return 0, err
		}
	}
	return len(done), perr
}

func scanInbox(rows *sql.Rows, err error) ([]whatsapp.InboxItem, error) {
	if err != nil {
		return nil, fmt.Errorf("read kept whatsapp deliveries: %w", err)
	}
	defer rows.Close()
	var out []whatsapp.InboxItem
	for rows.Next() {
		var it whatsapp.InboxItem
		var phones string
		var at int64
		if err := rows.Scan(&it.ID, &phones, &it.Body, &at); err != nil {
			return nil, fmt.Errorf("read kept whatsapp deliveries: %w", err)
		}
		if phones != "" {
			it.PhoneNumberIDs = strings.Split(phones, ",")
		}
		it.ReceivedAt = fromMS(at)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read kept whatsapp deliveries: %w", err)
	}
	return out, nil
}

func deleteInbox(ctx context.Context, tx *sql.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	var b strings.Builder
	args := make([]any, len(ids))
	b.WriteString(`DELETE FROM wa_inbox WHERE id IN (`)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "$%d", i+1)
		args[i] = id
	}
	b.WriteByte(')')
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("delete processed whatsapp deliveries: %w", err)
	}
	return nil
}
