package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// Backup writes a consistent copy of the database to path while it stays in use: SQLite's
// VACUUM INTO (a transactionally consistent snapshot, compacted), or pg_dump's custom format for
// PostgreSQL (pg_dump must be installed).
func (s *Store) Backup(ctx context.Context, path, dsn string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("backup: %s already exists", path)
	}
	switch s.dialect {
	case "sqlite":
		// A connection of its own: the reader pool is query_only, and the write connection must stay
		// free for the writer while the copy runs.
		db, err := sql.Open("sqlite", "file:"+SQLitePath(dsn)+"?_pragma=busy_timeout(10000)")
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, `VACUUM INTO $1`, path); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		return nil
	case "postgres":
		bin, err := exec.LookPath("pg_dump")
		if err != nil {
			return errors.New("backup: pg_dump is not installed (apt-get install postgresql-client)")
		}
		cmd := exec.CommandContext(ctx, bin, "--format=custom", "--file", path, "--dbname", dsn)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("backup: pg_dump: %v: %s", err, out)
		}
		return nil
	}
	return fmt.Errorf("backup: unsupported database %s", s.dialect)
}
