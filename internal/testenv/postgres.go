package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver

	"github.com/parley-hq/parley/internal/app"
)

// PostgresEnv names the variable that points the tests at a PostgreSQL server.
const PostgresEnv = "PARLEY_TEST_POSTGRES_URL"

// PostgresDSN returns a DSN for a fresh, empty schema on the PostgreSQL server named by
// PARLEY_TEST_POSTGRES_URL (dropped when the test ends), or "" when the variable is unset.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		return ""
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("postgres: create schema: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("postgres URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Backend is one database a test can run on.
type Backend struct {
	Name string
	// Configure points an app.Config at a fresh database of this backend.
	Configure func(t testing.TB) func(*app.Config)
}

// Backends are SQLite always and PostgreSQL when PARLEY_TEST_POSTGRES_URL is set.
func Backends() []Backend {
	bs := []Backend{{Name: "sqlite", Configure: func(t testing.TB) func(*app.Config) {
		dir := t.TempDir()
		return func(c *app.Config) { c.DB = "sqlite://" + filepath.Join(dir, "parley.db") }
	}}}
	if os.Getenv(PostgresEnv) != "" {
		bs = append(bs, Backend{Name: "postgres", Configure: func(t testing.TB) func(*app.Config) {
			dsn := PostgresDSN(t)
			return func(c *app.Config) { c.DB = dsn }
		}})
	}
	return bs
}

// EachBackend runs fn as a subtest on every backend, each with a fresh Parley.
func EachBackend(t *testing.T, fn func(t *testing.T, e *Env)) {
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, New(t, b.Configure(t)))
		})
	}
}
