// Package jobs runs durable background work (WhatsApp replies, media downloads, sends, outgoing
// webhooks, replays) with River on the store's own database (SQLite through riversqlite, PostgreSQL through
// riverdatabasesql), so a job is inserted in the same transaction as the rows it refers to and
// survives a restart.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
)

// Options tune the queue.
type Options struct {
	// Workers is how many jobs run at once (default 4).
	Workers int
	// PollInterval is how often the queue looks for due jobs when nothing woke it (default 200ms).
	PollInterval time.Duration
	Log          *slog.Logger
	// Postgres selects River's PostgreSQL driver (db is then the store's pgx pool).
	Postgres bool
}

// QueueBackground is the queue of long, non-urgent work (replays): its own few workers, so it
// never holds up the default queue's customer replies and sends.
const QueueBackground = "background"

// backgroundWorkers is how many background jobs run at once.
const backgroundWorkers = 2

// Queue is the job queue.
type Queue struct {
	db      *sql.DB
	client  *river.Client[*sql.Tx]
	workers *river.Workers
	log     *slog.Logger

	mu      sync.Mutex
	started bool
}

// Open migrates River's tables on db (the store's write pool: on SQLite its single write
// connection) and builds the client. Register workers before Start.
func Open(ctx context.Context, db *sql.DB, opts Options) (*Queue, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	var driver riverdriver.Driver[*sql.Tx] = riversqlite.New(db)
	if opts.Postgres {
		driver = riverdatabasesql.New(db)
	}
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: quiet(opts.Log)})
	if err != nil {
		return nil, fmt.Errorf("jobs: migrator: %w", err)
	}
	if err := migrate(ctx, db, opts.Postgres, migrator); err != nil {
		return nil, err
	}
	if !opts.Postgres {
		// Exactly one process uses a SQLite database, so a job still marked running belongs to a
		// process that died mid-job (SIGKILL, power loss): run it again now, not after River's
		// stuck-job rescue delay. Jobs are written to be safe to run again.
		// scheduled_at stays: it is in the past, so the job is due at once.
		if _, err := db.ExecContext(ctx, `UPDATE river_job SET state = 'available' WHERE state = 'running'`); err != nil {
			return nil, fmt.Errorf("jobs: requeue interrupted jobs: %w", err)
		}
	}
	workers := river.NewWorkers()
	client, err := river.NewClient(driver, &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.Workers}, QueueBackground: {MaxWorkers: backgroundWorkers}},
		Workers:              workers,
		FetchPollInterval:    opts.PollInterval,
		FetchCooldown:        10 * time.Millisecond,
		JobTimeout:           5 * time.Minute,
		RescueStuckJobsAfter: 15 * time.Minute,
		MaxAttempts:          10,
		Logger:               quiet(opts.Log),
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: client: %w", err)
	}
	return &Queue{db: db, client: client, workers: workers, log: opts.Log}, nil
}

// quiet keeps River's own logging at warnings and above.
func quiet(l *slog.Logger) *slog.Logger {
	return slog.New(levelFilter{l.Handler(), slog.LevelWarn})
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}
func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{f.Handler.WithAttrs(a), f.min}
}
func (f levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{f.Handler.WithGroup(n), f.min}
}

// Register adds a worker for its job kind; call it before Start.
func Register[T river.JobArgs](q *Queue, w river.Worker[T]) {
	river.AddWorker(q.workers, w)
}

// InsertTx queues a job in the caller's transaction: it runs only if the transaction commits.
func (q *Queue) InsertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	if _, err := q.client.InsertTx(ctx, tx, args, opts); err != nil {
		return fmt.Errorf("queue %s job: %w", args.Kind(), err)
	}
	return nil
}

// InsertManyTx queues several jobs in the caller's transaction, each with its kind's InsertOpts.
func (q *Queue) InsertManyTx(ctx context.Context, tx *sql.Tx, args []river.JobArgs) error {
	if len(args) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(args))
	for i, a := range args {
		params[i] = river.InsertManyParams{Args: a}
	}
	if _, err := q.client.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("queue %d %s jobs: %w", len(args), args[0].Kind(), err)
	}
	return nil
}

// Insert queues a job on its own.
func (q *Queue) Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) error {
	if _, err := q.client.Insert(ctx, args, opts); err != nil {
		return fmt.Errorf("queue %s job: %w", args.Kind(), err)
	}
	return nil
}

// Start runs the workers until Stop (not tied to ctx's cancellation: shutdown is Stop's job, so
// running jobs finish or are given back cleanly).
func (q *Queue) Start(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started {
		return nil
	}
	if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("jobs: start: %w", err)
	}
	q.started = true
	return nil
}

// Stop lets running jobs finish within ctx's deadline, then cancels them (they are retried later).
func (q *Queue) Stop(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.started {
		return nil
	}
	q.started = false
	soft, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := q.client.Stop(soft)
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return q.client.StopAndCancel(ctx)
	}
	return err
}

// Cancel stops retrying a job for good: the failure is permanent.
func Cancel(err error) error { return river.JobCancel(err) }

// Snooze runs the job again after d without counting it as a failure (throttling).
func Snooze(d time.Duration) error { return river.JobSnooze(d) }

// riverMigrationLock is the PostgreSQL advisory lock key that serialises River's migrations: several
// instances starting together would otherwise race creating the same types and tables.
const riverMigrationLock = 7_270_414_002

func migrate(ctx context.Context, db *sql.DB, postgres bool, migrator *rivermigrate.Migrator[*sql.Tx]) error {
	if postgres {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("jobs: migrate: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, riverMigrationLock); err != nil {
			return fmt.Errorf("jobs: migration lock: %w", err)
		}
		defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, riverMigrationLock)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	return nil
}
