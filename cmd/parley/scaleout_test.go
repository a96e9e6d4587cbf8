package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/testenv"
)

// postgresOrSkip returns a fresh PostgreSQL schema's DSN; without one it skips, except in CI.
func postgresOrSkip(t *testing.T) string {
	t.Helper()
	dsn := testenv.PostgresDSN(t)
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set in CI", testenv.PostgresEnv)
		}
		t.Skipf("set %s to run the scale-out tests", testenv.PostgresEnv)
	}
	return dsn
}

// TestTwoInstancesOnOnePostgres starts two `parley serve` processes together on one database (their
// migrations race and must serialise) and proves a reply produced on B reaches a stream open on A.
func TestTwoInstancesOnOnePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dsn := postgresOrSkip(t)
	bin := buildBinary(t)
	env := append(cleanEnv(), "PARLEY_DB="+dsn, "PARLEY_SECRET_KEY=scale-out-test-secret-key")

	var a, b string
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = startServer(t, bin, t.TempDir(), env) }()
	go func() { defer wg.Done(); b = startServer(t, bin, t.TempDir(), env) }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	tok := exec.Command(bin, "token", "create")
	tok.Dir = t.TempDir()
	tok.Env = env
	out, err := tok.Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	key := lines[len(lines)-1]

	call := func(base, method, path, body string) map[string]any {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v %v", method, path, resp.StatusCode, m, err)
		}
		return m
	}
	asst := call(a, "POST", "/api/v1/assistants", `{"name":"Ava","system_prompt":"You are Ava.","model":"builtin"}`)
	conv := call(a, "POST", "/api/v1/conversations", fmt.Sprintf(`{"assistant_id":%q,"type":"api"}`, asst["id"]))
	id := conv["id"].(string)

	req, _ := http.NewRequest("GET", a+"/api/v1/conversations/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events on A: %v %v", resp, err)
	}
	defer resp.Body.Close()
	replies := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				event = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok && event == "message" {
				var m map[string]any
				if json.Unmarshal([]byte(v), &m) == nil && m["role"] == "assistant" {
					replies <- m["text"].(string)
				}
			}
		}
	}()

	posted := call(b, "POST", "/api/v1/conversations/"+id+"/messages", `{"text":"Hello from B"}`)
	want := posted["messages"].([]any)[1].(map[string]any)["text"].(string)
	select {
	case got := <-replies:
		if got != want {
			t.Fatalf("A streamed %q, B produced %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reply produced on B never reached the stream on A")
	}
}
