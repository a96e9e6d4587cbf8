package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/testenv"
)

// resetConn drops the connection without an answer, as a crashed peer or a reset would.
func resetConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
		}
	}
}

// TestGraphAPIFaults: a connection reset and a 5xx HTML page are retried until the message is
// accepted, and it is sent exactly once with the accepted wamid. An unreadable 200 is ambiguous —
// Meta may have accepted the message, and sends have no idempotency key — so it is surfaced (the
// message fails with a clear error, for an agent to resend) and never sent twice.
func TestGraphAPIFaults(t *testing.T) {
	var mu sync.Mutex
	attempts := map[string]int{}
	accepted := map[string]int{}
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/messages") {
			w.WriteHeader(404)
			return
		}
		var body struct {
			To string `json:"to"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		attempts[body.To]++
		n := attempts[body.To]
		mu.Unlock()
		switch {
		case body.To == "351922222222":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"messaging_product":"whatsapp","messages":[{"id":`)
		case n == 1:
			resetConn(w)
		case n == 2:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(503)
			fmt.Fprint(w, "<html>upstream unavailable</html>")
		default:
			mu.Lock()
			accepted[body.To]++
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"messaging_product":"whatsapp","contacts":[{"input":%q,"wa_id":%q}],"messages":[{"id":"wamid.accepted"}]}`, body.To, body.To)
		}
	}))
	defer graph.Close()
	e := testenv.New(t)
	aid := e.CreateAssistant("A", "You are A.")
	s := e.MustDo(201, "POST", "/api/v1/whatsapp/senders", map[string]any{"phone_number_id": "8880001", "display_phone_number": "15550001111",
		"access_token": "t", "app_secret": "s", "verify_token": "v", "assistant_id": aid, "graph_api_url": graph.URL})
	e.MustDo(201, "POST", "/api/v1/whatsapp/templates", map[string]any{"name": "hello", "language": "en_US", "category": "UTILITY",
		"components": []any{map[string]any{"type": "BODY", "text": "Hello {{1}}"}}})
	send := func(to string) string {
		r := e.MustDo(201, "POST", "/api/v1/whatsapp/messages", map[string]any{"sender_id": s["id"], "to": to,
			"template": map[string]any{"name": "hello", "language": "en_US", "components": []any{map[string]any{"type": "body", "parameters": []any{map[string]any{"type": "text", "text": "Ana"}}}}}})
		return r["conversation_id"].(string)
	}
	settled := func(convID string) map[string]any {
		deadline := time.Now().Add(30 * time.Second)
		for {
			d := e.MustDo(200, "GET", "/api/v1/conversations/"+convID, nil)
			msgs := d["messages"].([]any)
			if len(msgs) != 1 {
				t.Fatalf("%d messages stored for one template", len(msgs))
			}
			m := msgs[0].(map[string]any)
			if m["status"] != "queued" {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("still queued: %v", m)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ok := settled(send("351911111111"))
	if ok["status"] != "sent" || ok["external_id"] != "wamid.accepted" {
		t.Fatalf("after a reset and a 503: %v", ok)
	}
	bad := settled(send("351922222222"))
	if bad["status"] != "failed" || bad["error"] == nil {
		t.Fatalf("after an unreadable 200: %v", bad)
	}
	time.Sleep(2 * time.Second) // room for a wrong retry to show up
	mu.Lock()
	defer mu.Unlock()
	if attempts["351911111111"] != 3 || accepted["351911111111"] != 1 || attempts["351922222222"] != 1 {
		t.Fatalf("attempts %v, accepted %v; want 3 attempts and one acceptance, and one attempt for the ambiguous answer", attempts, accepted)
	}
}

// TestLLMFaults: a connection reset is retried into a normal answer; a malformed answer is
// surfaced as designed — the fallback text, an error on the message and the conversation — with
// nothing duplicated and no 5xx.
func TestLLMFaults(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	mode := "reset-then-ok"
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		calls++
		n, m := calls, mode
		mu.Unlock()
		if m == "reset-then-ok" && n == 1 {
			resetConn(w)
			return
		}
		if m == "malformed" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"x","choices":[{"message":{"content":`)
			return
		}
		if req["stream"] == true {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Recovered answer.\"},\"finish_reason\":null}]}\n\n")
			fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
			fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":3,\"total_tokens\":13}}\n\n")
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Recovered answer."},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":3,"total_tokens":13}}`)
	}))
	defer llm.Close()
	e := testenv.New(t, func(c *app.Config) { c.LLMBaseURL, c.LLMAPIKey = llm.URL+"/v1", "k" })
	a := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Real", "system_prompt": "You are real.", "model": "gpt-4o-mini", "fallback_text": "Sorry, try again soon."})

	c := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": a["id"], "type": "api"})
	msgs := e.MustDo(200, "POST", "/api/v1/conversations/"+c["id"].(string)+"/messages", map[string]any{"text": "Hello"})["messages"].([]any)
	if len(msgs) != 2 || msgs[1].(map[string]any)["text"] != "Recovered answer." || msgs[1].(map[string]any)["error"] != nil {
		t.Fatalf("after a reset: %v", msgs)
	}

	mu.Lock()
	mode = "malformed"
	mu.Unlock()
	c2 := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": a["id"], "type": "api"})
	msgs = e.MustDo(200, "POST", "/api/v1/conversations/"+c2["id"].(string)+"/messages", map[string]any{"text": "Hello"})["messages"].([]any)
	last := msgs[len(msgs)-1].(map[string]any)
	if len(msgs) != 2 || last["text"] != "Sorry, try again soon." || last["error"] == nil {
		t.Fatalf("after a malformed answer: %v", msgs)
	}
	d := e.MustDo(200, "GET", "/api/v1/conversations/"+c2["id"].(string), nil)
	if d["last_error"] == "" || d["last_error"] == nil || d["message_count"].(float64) != 2 {
		t.Fatalf("the failure is not recorded on the conversation: %v", d)
	}
}
