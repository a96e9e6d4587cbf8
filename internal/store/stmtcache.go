package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"reflect"
	"strings"

	"modernc.org/sqlite"
)

// The SQLite driver compiles every statement each time it runs: under load, parsing SQL was 38% of
// the server's CPU. This wrapper keeps each connection's compiled statements (the driver reuses a
// statement's compiled form across runs) for every caller — our queries, the job library's, all.

// maxCachedStatements bounds a connection's cache; the oldest idle statement leaves first.
const maxCachedStatements = 512

// sqliteConnector opens cached connections to one DSN.
type sqliteConnector struct {
	dsn    string
	driver *sqlite.Driver
}

func (c sqliteConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.driver.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &cachedConn{Conn: conn, stmts: map[string]*cachedStmt{}}, nil
}

func (c sqliteConnector) Driver() driver.Driver { return c.driver }

type cachedStmt struct {
	driver.Stmt
	query string
	busy  bool // rows of it are open: running it again would reset them
}

type cachedConn struct {
	driver.Conn
	stmts map[string]*cachedStmt
	order []string
}

// statement returns a compiled statement for query and whether it belongs to the cache (a script of
// several statements, or one whose rows are still open, gets a fresh one to close after use).
func (c *cachedConn) statement(ctx context.Context, query string) (*cachedStmt, bool, error) {
	if s := c.stmts[query]; s != nil && !s.busy {
		return s, true, nil
	}
	ds, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, false, err
	}
	s := &cachedStmt{Stmt: ds, query: query}
	if c.stmts[query] != nil || strings.Contains(strings.TrimRight(strings.TrimSpace(query), ";"), ";") {
		return s, false, nil
	}
	if len(c.stmts) >= maxCachedStatements {
		c.evict()
	}
	c.stmts[query] = s
	c.order = append(c.order, query)
	return s, true, nil
}

func (c *cachedConn) evict() {
	for i, q := range c.order {
		if s := c.stmts[q]; s != nil && !s.busy {
			_ = s.Close()
			delete(c.stmts, q)
			c.order = append(c.order[:i:i], c.order[i+1:]...)
			return
		}
	}
}

func (c *cachedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, cached, err := c.statement(ctx, query)
	if err != nil {
		return nil, err
	}
	if !cached {
		defer s.Close()
	}
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, cached, err := c.statement(ctx, query)
	if err != nil {
		return nil, err
	}
	rows, err := s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		if !cached {
			_ = s.Close()
		}
		return nil, err
	}
	s.busy = true
	return &cachedRows{Rows: rows, done: func() {
		s.busy = false
		if !cached {
			_ = s.Close()
		}
	}}, nil
}

func (c *cachedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c *cachedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *cachedConn) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

func (c *cachedConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachedConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *cachedConn) Close() error {
	var errs []error
	for _, s := range c.stmts {
		errs = append(errs, s.Close())
	}
	c.stmts = nil
	return errors.Join(append(errs, c.Conn.Close())...)
}

// cachedRows gives its statement back when closed.
type cachedRows struct {
	driver.Rows
	done func()
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.done != nil {
		r.done()
		r.done = nil
	}
	return err
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
