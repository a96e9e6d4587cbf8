// Package testenv starts a real Parley for tests: a fresh SQLite file in a temp dir (or the
// PostgreSQL in PARLEY_TEST_POSTGRES_URL where a test asks), the whole HTTP surface on a loopback
// httptest server, and an API key.
package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-hq/parley/internal/app"
)

// Env is a running Parley.
type Env struct {
	T           testing.TB
	App         *app.App
	Server      *httptest.Server
	URL         string
	Key         string
	WorkspaceID string
	Dir         string
}

// New starts Parley on a fresh SQLite database; configure adjusts the config before it opens.
func New(t testing.TB, configure ...func(*app.Config)) *Env {
	t.Helper()
	dir := t.TempDir()
	// Test fakes (Graph API, LLM, webhook receivers) listen on loopback: allow it unless a test
	// turns it off to check the guard.
	cfg := app.Config{DB: "sqlite://" + filepath.Join(dir, "parley.db"), DataDir: filepath.Join(dir, "data"), AllowPrivateNetworks: true}
	for _, c := range configure {
		c(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.Open(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("open app: %v", err)
	}
	if err := a.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start app: %v", err)
	}
	srv := httptest.NewServer(a.Handler())
	e := &Env{T: t, App: a, Server: srv, URL: srv.URL, Dir: dir}
	t.Cleanup(func() {
		srv.Close()
		cancel()
		if err := a.Close(); err != nil {
			t.Errorf("close app: %v", err)
		}
	})
	e.Key, e.WorkspaceID = e.NewKey("default")
	return e
}

// NewKey creates an API key in the workspace with slug (created if missing).
func (e *Env) NewKey(slug string) (key, workspaceID string) {
	e.T.Helper()
	ctx := context.Background()
	ws, err := e.App.Auth.EnsureWorkspace(ctx, slug)
	if err != nil {
		e.T.Fatalf("workspace: %v", err)
	}
	key, _, err = e.App.Auth.CreateAPIKey(ctx, ws.ID, "test")
	if err != nil {
		e.T.Fatalf("api key: %v", err)
	}
	return key, ws.ID
}

// Response is a decoded answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic map (or fails the test).
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
	return m
}

// Decode decodes the body into v.
func (r *Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
}

// Do calls the API with the env's key. body may be nil, a string/[]byte (sent as is) or a value
// (sent as JSON).
func (e *Env) Do(method, path string, body any) *Response {
	e.T.Helper()
	return e.DoWith(e.Key, method, path, body, nil)
}

// DoWith calls the server with the given key ("" for none) and extra headers.
func (e *Env) DoWith(key, method, path string, body any, header http.Header) *Response {
	e.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			e.T.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.T.Fatalf("request: %v", err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.T.Fatalf("read %s %s: %v", method, path, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// MustDo calls the API and fails the test unless the status is want; it returns the decoded body.
func (e *Env) MustDo(want int, method, path string, body any) map[string]any {
	e.T.Helper()
	r := e.Do(method, path, body)
	if r.Status != want {
		e.T.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	if len(r.Body) == 0 {
		return nil
	}
	return r.JSON(e.T)
}

// CreateAssistant makes a builtin-model assistant and returns its id.
func (e *Env) CreateAssistant(name, prompt string) string {
	e.T.Helper()
	a := e.MustDo(http.StatusCreated, "POST", "/api/v1/assistants", map[string]any{"name": name, "system_prompt": prompt, "model": "builtin"})
	return a["id"].(string)
}

// With returns the env reporting to t (a subtest, or a fuzz target's *testing.T).
func (e *Env) With(t testing.TB) *Env {
	c := *e
	c.T = t
	return &c
}
