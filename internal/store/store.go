// Package store keeps Parley's data in SQL: SQLite (the default, pure Go) or PostgreSQL. It knows SQL
// and nothing else; the rules live in the domain packages, which call it through their own interfaces.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"modernc.org/sqlite"
)

// ErrNotFound is returned when a row does not exist in the caller's workspace.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a unique value is already taken.
var ErrConflict = errors.New("already exists")

//go:embed migrations
var migrationFS embed.FS

// Store is the database. Writes go through Write: on SQLite one goroutine owns the only write
// connection and commits waiting writes together (group commit); reads use a separate pool.
type Store struct {
	dialect string // "sqlite" or "postgres"
	write   *sql.DB
	read    *sql.DB
	writes  chan *writeReq
	done    chan struct{}
	// item collects the deferred work of the write running now on the SQLite writer goroutine
	// (nil elsewhere, and always on PostgreSQL).
	item *deferred
}

type writeReq struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	errc chan error
}

// maxBatch bounds how many writes one group commit carries, so one transaction never grows unbounded.
const maxBatch = 256

// Open connects to the database named by dsn (sqlite://path or postgres://…), creating the SQLite
// file's directory when needed. It does not migrate: call Migrate.
func Open(dsn string) (*Store, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite://"), strings.HasPrefix(dsn, "file:"), !strings.Contains(dsn, "://"):
		return openSQLite(dsn)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(dsn)
	}
	return nil, fmt.Errorf("unsupported database URL %q (want sqlite://PATH or postgres://…)", dsn)
}

// SQLitePath returns the file path of a sqlite:// URL.
func SQLitePath(dsn string) string {
	p := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite://"), "file:")
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p
}

func openSQLite(dsn string) (*Store, error) {
	path := SQLitePath(dsn)
	if path == "" {
		return nil, errors.New("sqlite: empty path")
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: create data directory: %w", err)
		}
	}
	// busy_timeout first, so that switching to WAL waits for another process instead of failing.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	// Each write of a group commit runs in a savepoint; savepoints keep page copies in a
	// sub-journal, on disk unless temp storage is memory (measured: 28% of CPU in pwrite).
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_txlock", "immediate")
	writeDB := sql.OpenDB(sqliteConnector{dsn: "file:" + path + "?" + q.Encode(), driver: &sqlite.Driver{}})
	writeDB.SetMaxOpenConns(1)
	writeDB.SetMaxIdleConns(1)
	writeDB.SetConnMaxLifetime(0)
	writeDB.SetConnMaxIdleTime(0)

	rq := url.Values{}
	rq.Add("_pragma", "busy_timeout(10000)")
	rq.Add("_pragma", "foreign_keys(ON)")
	rq.Add("_pragma", "query_only(1)")
	readDB := sql.OpenDB(sqliteConnector{dsn: "file:" + path + "?" + rq.Encode(), driver: &sqlite.Driver{}})
	readDB.SetMaxOpenConns(8)
	readDB.SetMaxIdleConns(8)
	readDB.SetConnMaxIdleTime(5 * time.Minute)

	if err := writeDB.Ping(); err != nil {
		writeDB.Close()
		readDB.Close()
		return nil, fmt.Errorf("sqlite: connect %s: %w", path, err)
	}
	s := &Store{dialect: "sqlite", write: writeDB, read: readDB, writes: make(chan *writeReq, 1024), done: make(chan struct{})}
	// Labelled, so that a CPU profile tells the main database's writer from the inbox's.
	go pprof.Do(context.Background(), pprof.Labels("writer", filepath.Base(path)), func(context.Context) { s.writer() })
	return s, nil
}

// DB returns the write pool: on SQLite the single write connection (so a job library's insert joins
// the same transaction as the rows it refers to), on PostgreSQL the pool.
func (s *Store) DB() *sql.DB { return s.write }

// Dialect names the SQL backend: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Close stops the writer after the queued writes and closes the connections.
func (s *Store) Close() error {
	if s.writes == nil {
		return s.write.Close()
	}
	close(s.writes)
	<-s.done
	return errors.Join(s.write.Close(), s.read.Close())
}

// Ping reports whether the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.read.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// Write runs fn in a transaction. On SQLite, writes waiting at the same moment share one
// transaction and one fsync; each runs inside its own savepoint, so one write's failure undoes only
// that write. fn may be retried never; it must not keep tx after returning.
func (s *Store) Write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.enqueue(ctx, fn)
}

// enqueue hands fn to the writer (PostgreSQL: runs it in a transaction of its own) and waits for
// its outcome.
func (s *Store) enqueue(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.writes == nil {
		return s.writeDirect(ctx, fn)
	}
	req := &writeReq{ctx: ctx, fn: fn, errc: make(chan error, 1)}
	select {
	case s.writes <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Wait for the outcome even if ctx ends meanwhile: the write may already be committed, and the
	// caller must not report failure for data that is stored.
	return <-req.errc
}

func (s *Store) writer() {
	defer close(s.done)
	batch := make([]*writeReq, 0, maxBatch)
	for first := range s.writes {
		batch = gather(append(batch[:0], first), s.writes, maxBatch)
		s.commitBatch(batch)
	}
}

// gather appends to batch what else waits in ch at this moment, up to limit in all: a group
// commit (or write) takes whatever queued while the last one ran, without waiting for more.
func gather[T any](batch []T, ch <-chan T, limit int) []T {
	for len(batch) < limit {
		select {
		case r, ok := <-ch:
			if !ok {
				return batch
			}
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

func (s *Store) commitBatch(batch []*writeReq) {
	results := make([]error, len(batch))
	tx, err := s.write.BeginTx(context.Background(), nil)
	if err != nil {
		for _, r := range batch {
			r.errc <- fmt.Errorf("begin write: %w", err)
		}
		return
	}
	single := len(batch) == 1
	var pending deferred
	run := func(r *writeReq) error {
		item := &deferred{}
		s.item = item
		err := r.fn(tx)
		s.item = nil
		if err == nil {
			pending.merge(item)
		}
		return err
	}
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if single {
			results[i] = run(r)
			continue
		}
		if _, err := tx.Exec("SAVEPOINT w"); err != nil {
			results[i] = fmt.Errorf("savepoint: %w", err)
			continue
		}
		if err := run(r); err != nil {
			results[i] = err
			if _, rbErr := tx.Exec("ROLLBACK TO w"); rbErr != nil {
				results[i] = errors.Join(err, rbErr)
			}
		}
		if _, err := tx.Exec("RELEASE w"); err != nil && results[i] == nil {
			results[i] = fmt.Errorf("release savepoint: %w", err)
		}
	}
	if single && results[0] != nil {
		_ = tx.Rollback()
		batch[0].errc <- results[0]
		return
	}
	err = pending.write(tx)
	if err == nil {
		err = tx.Commit()
	} else {
		_ = tx.Rollback()
	}
	if err != nil {
		for _, r := range batch {
			r.errc <- fmt.Errorf("commit: %w", err)
		}
		return
	}
	for i, r := range batch {
		r.errc <- results[i]
	}
}

// Migrate applies the embedded migrations not applied yet, in order, each in its own transaction.
// Concurrent runners (instances starting together, `parley migrate` during a rolling upgrade) are
// safe: SQLite's write lock, or a PostgreSQL advisory lock held for the whole run, serialises them,
// and each re-reads the applied versions inside its transaction.
func (s *Store) Migrate(ctx context.Context) error {
	dir := "migrations/" + s.dialect
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	run := s.Write
	if s.dialect == "postgres" {
		conn, err := s.write.Conn(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockID); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLockID)
		run = func(ctx context.Context, fn func(tx *sql.Tx) error) error {
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if err := fn(tx); err != nil {
				_ = tx.Rollback()
				return err
			}
			return tx.Commit()
		}
	}
	err = run(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, name := range names {
		version, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", name)
		}
		body, err := migrationFS.ReadFile(dir + "/" + name)
		if err != nil {
			return err
		}
		err = run(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRow(`SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.Exec(string(body)); err != nil {
				return fmt.Errorf("apply %s: %w", name, err)
			}
			_, err := tx.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, version, time.Now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

// Optimize refreshes the query planner's statistics where they are missing or stale (SQLite;
// PostgreSQL's autovacuum does this itself). Without them SQLite picked poor indexes for some list
// filters (121 ms instead of 1.5 ms at 200k conversations). analysis_limit keeps it a sample, so
// it is quick on any size.
func (s *Store) Optimize(ctx context.Context) error {
	if s.dialect != "sqlite" {
		return nil
	}
	// Statistics of near-empty tables are worse than none: recorded on a fresh database they made the
	// planner choose badly as the tables grew (bulk loading 5× slower). Wait until there is data.
	var messages int64
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(pk), 0) FROM messages`).Scan(&messages); err != nil || messages < minRowsForStatistics {
		return err
	}
	return s.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`PRAGMA analysis_limit = 400`); err != nil {
			return err
		}
		_, err := tx.Exec(`PRAGMA optimize = 0x10002`)
		return err
	})
}

// minRowsForStatistics is how many messages a database holds before its statistics are gathered.
const minRowsForStatistics = 10_000

// migrationLockID is the PostgreSQL advisory lock key that serialises migration runs.
const migrationLockID = 7_270_414_001

// ms converts a time to the stored unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMS converts stored unix milliseconds back to a UTC time.
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

func nullMS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ms(*t)
}

func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "SQLSTATE 23505")
}

// column reads a query's single column into a slice: column[int64](tx.Query(...)).
func column[T any](rows *sql.Rows, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
