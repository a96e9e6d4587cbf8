package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/whatsapp"
)

// OpenWAInbox returns where kept WhatsApp deliveries live. On SQLite that is a log of its own
// beside the database (InboxLog): acknowledging a delivery during a burst never waits behind the
// main writer, which is busy storing the burst's messages and answers. Storing a kept delivery's
// messages and marking it done are idempotent steps in that order, so they need no shared
// transaction. On PostgreSQL (no single writer) the main store holds the wa_inbox table and main
// is returned. Close what is returned when it is not main.
func OpenWAInbox(main *Store, dsn string, log *slog.Logger) whatsapp.InboxRepository {
	if main.dialect != "sqlite" {
		return main
	}
	return NewInboxLog(SQLitePath(dsn), log)
}

// AddWAInbox keeps a verified WhatsApp delivery, as it came, to be processed after its 200
// (PostgreSQL; SQLite keeps them in an InboxLog).
func (s *Store) AddWAInbox(ctx context.Context, phoneNumberIDs []string, body []byte, at time.Time) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO wa_inbox (phone_number_ids, body, received_at) VALUES ($1, $2, $3)`,
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

// maxInboxTake bounds one TakeWAInbox, of the table (written into its SQL) and of the log alike.
const maxInboxTake = 128

var takeInboxSQL = `SELECT id, phone_number_ids, body, received_at FROM wa_inbox ORDER BY id LIMIT ` + strconv.Itoa(maxInboxTake) + ` FOR UPDATE SKIP LOCKED`

// TakeWAInbox hands the oldest kept deliveries (at most maxInboxTake) to process, which returns
// the ids of those it finished; those are deleted, the rest stay for the next call. The rows stay
// locked (SKIP LOCKED) while they are processed, so several instances share the inbox without
// working on the same delivery.
func (s *Store) TakeWAInbox(ctx context.Context, process func([]whatsapp.InboxItem) ([]int64, error)) (int, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("take kept whatsapp deliveries: %w", err)
	}
	defer tx.Rollback()
	items, err := scanInbox(tx.QueryContext(ctx, takeInboxSQL))
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
