package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles the real parley binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parley")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cleanEnv is an environment with no Parley configuration at all.
func cleanEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
}

// TestServeWithNoConfiguration starts the real binary in an empty directory with no settings,
// creates a key while it runs (a second process on the same SQLite file), uses the API, and stops
// it with SIGTERM.
func TestServeWithNoConfiguration(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	serve := exec.Command(bin, "serve", "--addr", addr)
	serve.Dir = dir
	serve.Env = cleanEnv()
	var logs bytes.Buffer
	serve.Stderr = &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() {
		_ = serve.Process.Kill()
	}()

	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "parley-data", "parley.db")); err != nil {
		t.Fatalf("database file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "parley-data", "parley.db-wal")); err != nil {
		t.Fatalf("not in WAL mode: %v", err)
	}

	key := createKey(t, bin, dir, cleanEnv()) // a second process on the same SQLite file

	call := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	status, a := call("POST", "/api/v1/assistants", `{"name":"Ava","system_prompt":"You are Ava.","model":"builtin"}`)
	if status != 201 {
		t.Fatalf("create assistant: %d %v", status, a)
	}
	status, c := call("POST", "/api/v1/conversations", fmt.Sprintf(`{"assistant_id":%q,"type":"api"}`, a["id"]))
	if status != 201 {
		t.Fatalf("create conversation: %d %v", status, c)
	}
	status, r := call("POST", "/api/v1/conversations/"+c["id"].(string)+"/messages", `{"text":"Hello"}`)
	if status != 200 || len(r["messages"].([]any)) != 2 {
		t.Fatalf("message: %d %v", status, r)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/metrics" && !bytes.Contains(b, []byte("parley_http_requests_total")) {
			t.Fatalf("metrics lack request counters")
		}
	}

	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("did not stop on SIGTERM\n%s", logs.String())
	}

	// Migrating again is a no-op, and a backup holds the data.
	mig := exec.Command(bin, "migrate")
	mig.Dir = dir
	mig.Env = cleanEnv()
	if out, err := mig.CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v %s", err, out)
	}
	bk := exec.Command(bin, "backup", "--out", "copy.db")
	bk.Dir = dir
	bk.Env = cleanEnv()
	if out, err := bk.CombinedOutput(); err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	restored := startServer(t, bin, dir, append(cleanEnv(), "PARLEY_DB=sqlite://copy.db"))
	req, _ := http.NewRequest("GET", restored+"/api/v1/conversations/"+c["id"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the backup lacks the conversation: %v %v", resp, err)
	}
	var d map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if d["message_count"].(float64) != 2 {
		t.Fatalf("backup conversation: %v", d)
	}
}

func TestCLIErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	for _, args := range [][]string{{}, {"nope"}, {"token"}, {"user", "create"}, {"serve", "--no-such-flag"}} {
		if err := run(args, &out, &errOut); err == nil {
			t.Errorf("run(%v) succeeded", args)
		}
	}
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "p.db")
	if err := run([]string{"user", "create", "--db", db, "--data-dir", dir, "--email", "not-an-email", "--password", "longenough"}, &out, &errOut); err == nil {
		t.Error("a bad email was accepted")
	}
	if err := run([]string{"user", "create", "--db", db, "--data-dir", dir, "--email", "a@b.co", "--password", "longenough"}, &out, &errOut); err != nil {
		t.Errorf("user create: %v", err)
	}
	if err := run([]string{"user", "create", "--db", db, "--data-dir", dir, "--email", "a@b.co", "--password", "longenough"}, &out, &errOut); err == nil {
		t.Error("a duplicate user was accepted")
	}
}

// startServer runs `parley serve` with env and waits until it is ready.
func startServer(t *testing.T, bin, dir string, env []string) string {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--addr", addr)
	cmd.Dir = dir
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createKey runs `parley token create` and returns the key from its last line of output.
func createKey(t *testing.T, bin, dir string, env []string) string {
	t.Helper()
	tok := exec.Command(bin, "token", "create", "--name", "test")
	tok.Dir, tok.Env = dir, env
	out, err := tok.Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	key := lines[len(lines)-1]
	if !strings.HasPrefix(key, "prl_") {
		t.Fatalf("the last line is not a key: %q", out)
	}
	return key
}
