package store

import (
	"context"
	"database/sql"

	"fmt"
	"strings"
	"time"
)

// openPostgres connects a pool through pgx. pgx prepares and caches each statement per connection,
// so the hand-written SQL runs as prepared statements without a cache of our own.
func openPostgres(dsn string) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	// Reads and writes share the pool; there is no writer goroutine (writes == nil): PostgreSQL
	// runs concurrent transactions itself.
	return &Store{dialect: "postgres", write: db, read: db}, nil
}

// writeDirect runs fn in its own transaction, retrying the few times PostgreSQL asks for it
// (serialization failure, deadlock).
func (s *Store) writeDirect(ctx context.Context, fn func(tx *sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var tx *sql.Tx
		tx, err = s.write.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		if err = fn(tx); err != nil {
			_ = tx.Rollback()
			if retryable(err) {
				continue
			}
			return err
		}
		if err = tx.Commit(); err != nil {
			if retryable(err) {
				continue
			}
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	}
	return err
}

func retryable(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLSTATE 40001") || strings.Contains(msg, "SQLSTATE 40P01")
}
