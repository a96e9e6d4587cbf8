package app_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/parley-hq/parley/internal/testenv"
)

// TestTenantIsolationOnEveryEndpoint creates one of everything in workspace A, then calls every
// API route with workspace B's key and A's ids in every path parameter. Each answer must be exactly
// the answer for an id that does not exist (404 where the route looks things up), never a 2xx with
// A's data; afterwards everything of A is intact. New routes are covered as they are registered.
func TestTenantIsolationOnEveryEndpoint(t *testing.T) {
	e := testenv.New(t)
	secret := "tenant-a-secret-words"
	var ids []string
	collect := func(r *testenv.Response) map[string]any {
		var m map[string]any
		_ = json.Unmarshal(r.Body, &m)
		if id, ok := m["id"].(string); ok && r.Status < 300 {
			ids = append(ids, id)
		}
		return m
	}
	asst := collect(e.Do("POST", "/api/v1/assistants", map[string]any{"name": "A " + secret, "system_prompt": "You are A.", "model": "builtin", "monthly_budget_usd": 5}))
	aid, _ := asst["id"].(string)
	conv := collect(e.Do("POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api", "customer_id": "cust-a"}))
	cid, _ := conv["id"].(string)
	msgs := e.Do("POST", "/api/v1/conversations/"+cid+"/messages", map[string]any{"text": secret})
	var posted struct {
		Messages []struct{ ID string } `json:"messages"`
	}
	_ = json.Unmarshal(msgs.Body, &posted)
	for _, m := range posted.Messages {
		ids = append(ids, m.ID)
	}
	kb := collect(e.Do("POST", "/api/v1/knowledge-bases", map[string]any{"name": "KB " + secret}))
	if kbID, ok := kb["id"].(string); ok {
		collect(e.Do("POST", "/api/v1/knowledge-bases/"+kbID+"/documents", map[string]any{"title": "Doc", "content": "Opening hours " + secret}))
	}
	collect(e.Do("POST", "/api/v1/webhooks", map[string]any{"url": "https://hooks.example.com/a", "events": []string{"message.created"}}))
	collect(e.Do("POST", "/api/v1/whatsapp/senders", map[string]any{"phone_number_id": "555000111", "display_phone_number": "15550001111",
		"access_token": "tok-" + secret, "app_secret": "app-" + secret, "verify_token": "ver-" + secret, "assistant_id": aid}))
	collect(e.Do("POST", "/api/v1/whatsapp/templates", map[string]any{"name": "hello_a", "language": "en_US", "category": "UTILITY",
		"components": []any{map[string]any{"type": "BODY", "text": "Hello {{1}}"}}}))
	collect(e.Do("POST", "/api/v1/widgets", map[string]any{"assistant_id": aid, "mode": "chat", "allowed_origins": []string{"https://a.example.com"}}))
	collect(e.Do("POST", "/api/v1/replays", map[string]any{"assistant_id": aid, "draft": map[string]any{"system_prompt": "You are A, " + secret}}))
	if len(ids) < 7 {
		t.Fatalf("created only %d resources in A: %v", len(ids), ids)
	}

	keyB, _ := e.NewKey("tenant-b")
	varPattern := regexp.MustCompile(`\{[^}]+\}`)
	missing := "01a00000-0000-7000-8000-000000000000"
	call := func(method, path string) *testenv.Response {
		var body any
		if method != "GET" && method != "DELETE" {
			body = map[string]any{"text": "x", "name": "x", "reason": "x"}
		}
		return e.DoWith(keyB, method, path, body, nil)
	}
	leaks := func(r *testenv.Response) bool {
		if bytes.Contains(r.Body, []byte(secret)) {
			return true
		}
		for _, id := range ids {
			if bytes.Contains(r.Body, []byte(id)) {
				return true
			}
		}
		return false
	}
	// First the lists, before B's own calls put A's ids (as B typed them) into B's audit log.
	patterns := e.App.APIPatterns()
	for _, pattern := range patterns {
		method, path, _ := strings.Cut(pattern, " ")
		if method == "GET" && !strings.Contains(path, "{") {
			if r := call("GET", path); leaks(r) {
				t.Errorf("GET %s with B's key shows A's data: %s", path, r.Body)
			}
		}
	}
	routes := 0
	for _, pattern := range patterns {
		method, path, _ := strings.Cut(pattern, " ")
		if method == "" || !strings.Contains(path, "{") {
			continue
		}
		routes++
		want := call(method, varPattern.ReplaceAllString(path, missing))
		for _, id := range ids {
			got := call(method, varPattern.ReplaceAllString(path, id))
			if got.Status != want.Status || (got.Status < 300 && got.Status >= 200) && want.Status >= 300 {
				t.Errorf("%s with A's id %s: %d, but %d for an id that does not exist (%s)", pattern, id, got.Status, want.Status, got.Body)
			}
			if leaks(got) {
				t.Errorf("%s with A's id %s leaks: %s", pattern, id, got.Body)
			}
		}
	}
	if routes < 10 {
		t.Fatalf("only %d routes with ids were tried", routes)
	}

	// Nothing of A changed.
	if r := e.Do("GET", "/api/v1/assistants/"+aid, nil); r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte(secret)) {
		t.Fatalf("A's assistant after B's calls: %d %s", r.Status, r.Body)
	}
	d := e.MustDo(200, "GET", "/api/v1/conversations/"+cid, nil)
	if d["status"] != "active" || d["message_count"].(float64) != float64(len(posted.Messages)) {
		t.Fatalf("A's conversation after B's calls: %v", d)
	}
}
