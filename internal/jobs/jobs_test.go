package jobs_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"
	_ "modernc.org/sqlite"

	"github.com/parley-hq/parley/internal/jobs"
)

type echoArgs struct {
	Text string `json:"text"`
}

func (echoArgs) Kind() string { return "echo" }

type echoWorker struct {
	river.WorkerDefaults[echoArgs]
	done  chan string
	fails int
}

func (w *echoWorker) NextRetry(*river.Job[echoArgs]) time.Time { return time.Now() }

func (w *echoWorker) Work(ctx context.Context, job *river.Job[echoArgs]) error {
	if job.Args.Text == "flaky" && job.Attempt <= w.fails {
		return errors.New("not yet")
	}
	w.done <- job.Args.Text
	return nil
}

func openDB(t *testing.T) *sql.DB {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "q.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestInsertTxIsTransactionalAndRetried(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	q, err := jobs.Open(ctx, db, jobs.Options{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w := &echoWorker{done: make(chan string, 8), fails: 2}
	jobs.Register(q, w)
	insert := func(text string, commit bool) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.InsertTx(ctx, tx, echoArgs{text}, nil); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	insert("rolled back", false)
	insert("committed", true)
	insert("flaky", true)
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer q.Stop(ctx)
	got := map[string]bool{}
	timeout := time.After(20 * time.Second)
	for len(got) < 2 {
		select {
		case s := <-w.done:
			got[s] = true
		case <-timeout:
			t.Fatalf("jobs done: %v", got)
		}
	}
	if !got["committed"] || !got["flaky"] {
		t.Fatalf("done %v", got)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM river_job WHERE kind = 'echo'`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d jobs stored (%v), want 2: a rolled-back insert must leave none", n, err)
	}
}

func TestMigrationsRunTwice(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	for i := 0; i < 2; i++ {
		if _, err := jobs.Open(ctx, db, jobs.Options{}); err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
}
