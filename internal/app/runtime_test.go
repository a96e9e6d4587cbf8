package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/llm"
	"github.com/parley-hq/parley/internal/llm/llmtest"
	"github.com/parley-hq/parley/internal/testenv"
)

// newRuntimeEnv starts Parley with the fake OpenAI-compatible server as its default provider and
// quick retries.
func newRuntimeEnv(t testing.TB, fake *llmtest.Server, configure ...func(*app.Config)) *testenv.Env {
	t.Helper()
	e := testenv.New(t, append([]func(*app.Config){func(c *app.Config) {
		if fake != nil {
			c.LLMBaseURL, c.LLMAPIKey = fake.BaseURL(), "sk-default"
		}
		c.ExtractIdle = -1 // sweeps are run by the tests themselves
	}}, configure...)...)
	rt := e.App.Extra["runtime"].(*app.Runtime)
	rt.Resolver.Template.MinBackoff = time.Millisecond
	rt.Resolver.Template.MaxBackoff = 2 * time.Millisecond
	return e
}

func createAssistant(t testing.TB, e *testenv.Env, body map[string]any) string {
	t.Helper()
	if body["name"] == nil {
		body["name"] = "Ava"
	}
	if body["system_prompt"] == nil {
		body["system_prompt"] = "You are Ava, the helper of Acme."
	}
	return e.MustDo(201, "POST", "/api/v1/assistants", body)["id"].(string)
}

func newConversation(t testing.TB, e *testenv.Env, aid string) string {
	t.Helper()
	return e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "test"})["id"].(string)
}

type sseEvent struct {
	Name string
	Data map[string]any
}

func postStream(t *testing.T, e *testenv.Env, convID, text string) []sseEvent {
	t.Helper()
	r := e.DoWith(e.Key, "POST", "/api/v1/conversations/"+convID+"/messages", map[string]any{"text": text}, http.Header{"Accept": {"text/event-stream"}})
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	var out []sseEvent
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	var name string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var d map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
			out = append(out, sseEvent{name, d})
		}
	}
	return out
}

func post(t testing.TB, e *testenv.Env, convID, text string) []map[string]any {
	t.Helper()
	res := e.MustDo(200, "POST", "/api/v1/conversations/"+convID+"/messages", map[string]any{"text": text})
	var out []map[string]any
	for _, m := range res["messages"].([]any) {
		out = append(out, m.(map[string]any))
	}
	return out
}

func variables(t testing.TB, e *testenv.Env, convID string) map[string][2]string {
	t.Helper()
	d := e.MustDo(200, "GET", "/api/v1/conversations/"+convID, nil)
	out := map[string][2]string{}
	for _, v := range d["variables"].([]any) {
		m := v.(map[string]any)
		out[m["name"].(string)] = [2]string{m["value"].(string), m["source"].(string)}
	}
	return out
}

func TestRuntimeStreamsToolCallsAndCountsCost(t *testing.T) {
	fake := llmtest.New(t)
	e := newRuntimeEnv(t, fake)
	// A custom price, so the cost is computed from the table and not a default.
	e.MustDo(200, "PUT", "/api/v1/prices/gpt-4o-mini", map[string]any{"input_per_million_usd": 1.5, "output_per_million_usd": 6})
	aid := createAssistant(t, e, map[string]any{"model": "gpt-4o-mini", "extract": []any{map[string]any{"name": "email", "type": "email", "description": "contact email"}}})
	cid := newConversation(t, e, aid)
	fake.Push(
		llmtest.Reply{Calls: []llmtest.Call{
			{ID: "call_fdNz3vOBKYgOIpMdWotB9MjY", Name: "set_variable", Arguments: `{"name": "email", "value": "ana@example.com"}`},
			{ID: "call_h1DWI1POMJLb0KwIyQHWXD4p", Name: "set_variable", Arguments: `{"name": "city", "value": "Edinburgh"}`},
		}, Usage: &[2]int64{149, 60}},
		llmtest.Text("Thanks Ana, I've noted your email and city.", 210, 12),
	)
	events := postStream(t, e, cid, "I'm ana@example.com from Edinburgh")

	// In order: the customer's message, the tool round, the reply's text as deltas, the reply, done.
	var names []string
	var deltas strings.Builder
	for _, ev := range events {
		if ev.Name != "delta" || names[len(names)-1] != "delta" {
			names = append(names, ev.Name)
		}
		if ev.Name == "delta" {
			deltas.WriteString(ev.Data["text"].(string))
		}
	}
	if got := strings.Join(names, ","); got != "message,message,delta,message,done" {
		t.Fatalf("event order %s", got)
	}
	if deltas.String() != "Thanks Ana, I've noted your email and city." {
		t.Fatalf("deltas %q", deltas.String())
	}
	toolMsg := events[1].Data
	calls := toolMsg["tool_calls"].([]any)
	if len(calls) != 2 {
		t.Fatalf("tool calls %v", calls)
	}
	first := calls[0].(map[string]any)
	if first["id"] != "call_fdNz3vOBKYgOIpMdWotB9MjY" || first["name"] != "set_variable" || first["arguments"].(map[string]any)["value"] != "ana@example.com" || !strings.Contains(first["result"].(string), `"ok":true`) {
		t.Fatalf("first call %v", first)
	}
	// Usage and cost per message: 149 in × $1.5/M + 60 out × $6/M = 583.5 µ$ → 584 µ$ (rounded once).
	if toolMsg["tokens_in"].(float64) != 149 || toolMsg["tokens_out"].(float64) != 60 || toolMsg["cost_usd"].(float64) != 0.000584 {
		t.Fatalf("tool round usage %v %v %v", toolMsg["tokens_in"], toolMsg["tokens_out"], toolMsg["cost_usd"])
	}
	final := events[len(events)-2].Data
	if final["text"] != "Thanks Ana, I've noted your email and city." || final["tokens_in"].(float64) != 210 || final["cost_usd"].(float64) != 0.000387 {
		t.Fatalf("final %v", final)
	}
	// Both parallel calls ran, their results went back to the model under their ids.
	vars := variables(t, e, cid)
	if vars["email"] != [2]string{"ana@example.com", "extracted"} || vars["city"] != [2]string{"Edinburgh", "extracted"} {
		t.Fatalf("variables %v", vars)
	}
	reqs := fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d model calls", len(reqs))
	}
	msgs := reqs[1]["messages"].([]any)
	tail := msgs[len(msgs)-3:]
	if tail[0].(map[string]any)["role"] != "assistant" || len(tail[0].(map[string]any)["tool_calls"].([]any)) != 2 ||
		tail[1].(map[string]any)["tool_call_id"] != "call_fdNz3vOBKYgOIpMdWotB9MjY" || tail[2].(map[string]any)["tool_call_id"] != "call_h1DWI1POMJLb0KwIyQHWXD4p" {
		t.Fatalf("second request's tail %v", tail)
	}
	if reqs[0]["stream_options"].(map[string]any)["include_usage"] != true {
		t.Fatalf("include_usage not asked")
	}
	// The conversation's totals add up the messages; the detail and the export show the calls.
	d := e.MustDo(200, "GET", "/api/v1/conversations/"+cid, nil)
	if d["tokens_in"].(float64) != 359 || d["tokens_out"].(float64) != 72 || d["cost_usd"].(float64) != 0.000971 {
		t.Fatalf("totals %v %v %v", d["tokens_in"], d["tokens_out"], d["cost_usd"])
	}
	exp := e.Do("GET", "/api/v1/conversations/export?format=jsonl", nil)
	if !bytes.Contains(exp.Body, []byte("call_h1DWI1POMJLb0KwIyQHWXD4p")) {
		t.Fatalf("export lacks the tool call: %s", exp.Body)
	}
}

func TestRuntimeRetriesAndFallback(t *testing.T) {
	cases := []struct {
		name     string
		script   []llmtest.Reply
		requests int
		failed   string // "" when the turn succeeds; else a substring of the stored error
	}{
		{"429 then 200", []llmtest.Reply{func() llmtest.Reply {
			r := llmtest.RateLimited
			r.Header = map[string]string{"retry-after-ms": "3"}
			return r
		}(), llmtest.Text("Hello!", 10, 2)}, 2, ""},
		{"500 then 200", []llmtest.Reply{llmtest.ServerError, llmtest.Text("Hello!", 10, 2)}, 2, ""},
		{"500 until retries run out", []llmtest.Reply{llmtest.ServerError, llmtest.ServerError, llmtest.ServerError, llmtest.ServerError}, 4, "model error 500"},
		{"401 is final", []llmtest.Reply{llmtest.InvalidKey}, 1, "invalid_api_key"},
		{"insufficient quota is final", []llmtest.Reply{llmtest.InsufficientQuota}, 1, "insufficient_quota"},
		{"empty reply", []llmtest.Reply{{Usage: &[2]int64{10, 0}}}, 1, "empty reply"},
		{"dropped stream then 200", []llmtest.Reply{{Truncate: true}, llmtest.Text("Hello!", 10, 2)}, 2, ""},
		{"stream error event", []llmtest.Reply{{Text: "Half an answ", StreamError: `{"error":{"message":"The server had an error while processing your request.","type":"server_error","code":"server_error"}}`}}, 1, "model stream error"},
	}
	fake := llmtest.New(t)
	fake.Default = llmtest.Text("unused", 1, 1)
	e := newRuntimeEnv(t, fake)
	aid := createAssistant(t, e, map[string]any{"model": "gpt-4o-mini", "fallback_text": "Sorry, one moment please."})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(fake.Requests())
			fake.Push(tc.script...)
			cid := newConversation(t, e, aid)
			msgs := post(t, e, cid, "Hi there")
			if n := len(fake.Requests()) - before; n != tc.requests {
				t.Fatalf("%d model requests, want %d", n, tc.requests)
			}
			if len(msgs) != 2 {
				t.Fatalf("messages %v", msgs)
			}
			reply := msgs[1]
			d := e.MustDo(200, "GET", "/api/v1/conversations/"+cid, nil)
			if tc.failed == "" {
				if reply["text"] != "Hello!" || reply["error"] != nil || d["last_error"] != nil {
					t.Fatalf("reply %v, last_error %v", reply, d["last_error"])
				}
				return
			}
			errObj, _ := reply["error"].(map[string]any)
			if reply["text"] != "Sorry, one moment please." || errObj == nil || errObj["code"] != "ai_turn_failed" || !strings.Contains(errObj["details"].(string), tc.failed) {
				t.Fatalf("fallback reply %v", reply)
			}
			if le, _ := d["last_error"].(string); !strings.Contains(le, tc.failed) {
				t.Fatalf("last_error %q", le)
			}
		})
	}
}

func TestRuntimeTrimsHistoryOnContextLength(t *testing.T) {
	fake := llmtest.New(t)
	e := newRuntimeEnv(t, fake)
	aid := createAssistant(t, e, map[string]any{"model": "gpt-4o-mini"})
	cid := newConversation(t, e, aid)
	for i := range 4 {
		fake.Push(llmtest.Text(fmt.Sprintf("Answer %d.", i), 10, 2))
		post(t, e, cid, fmt.Sprintf("Question %d", i))
	}
	before := len(fake.Requests())
	fake.Push(llmtest.ContextTooLong, llmtest.Text("Short answer.", 10, 2))
	msgs := post(t, e, cid, "Question 4")
	if msgs[1]["text"] != "Short answer." {
		t.Fatalf("reply %v", msgs[1])
	}
	reqs := fake.Requests()[before:]
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	full, trimmed := reqs[0]["messages"].([]any), reqs[1]["messages"].([]any)
	if len(trimmed) >= len(full) {
		t.Fatalf("the retry was not shorter: %d then %d messages", len(full), len(trimmed))
	}
	if trimmed[0].(map[string]any)["role"] != "system" || trimmed[1].(map[string]any)["role"] != "user" || trimmed[len(trimmed)-1].(map[string]any)["content"] != "Question 4" {
		t.Fatalf("trimmed request %v", trimmed)
	}
}

func TestRuntimeHandoffStopsTheAI(t *testing.T) {
	fake := llmtest.New(t)
	e := newRuntimeEnv(t, fake)
	aid := createAssistant(t, e, map[string]any{"model": "gpt-4o-mini"})
	cid := newConversation(t, e, aid)
	fake.Push(llmtest.Reply{Calls: []llmtest.Call{{ID: "call_1", Name: "transfer_to_human", Arguments: `{"reason":"wants a refund over the limit"}`}}}, llmtest.Text("A colleague will take over.", 5, 5))
	post(t, e, cid, "I want my money back, now")
	d := e.MustDo(200, "GET", "/api/v1/conversations/"+cid, nil)
	if d["status"] != "handoff" || d["handoff_reason"] != "wants a refund over the limit" {
		t.Fatalf("after transfer: %v %v", d["status"], d["handoff_reason"])
	}
	before := len(fake.Requests())
	if msgs := post(t, e, cid, "Hello? Anyone?"); len(msgs) != 1 {
		t.Fatalf("the AI answered during handoff: %v", msgs)
	}
	if len(fake.Requests()) != before {
		t.Fatal("the model was called during handoff")
	}
	e.MustDo(200, "POST", "/api/v1/conversations/"+cid+"/resume", nil)
	fake.Push(llmtest.Text("I'm back.", 5, 5))
	if msgs := post(t, e, cid, "Still there?"); len(msgs) != 2 || msgs[1]["text"] != "I'm back." {
		t.Fatalf("after resume: %v", msgs)
	}
}

func TestWorkspaceProviderAndNoKeyLeak(t *testing.T) {
	def := llmtest.New(t)
	own := llmtest.New(t)
	var auths []string
	var mu sync.Mutex
	own.Default = llmtest.Reply{Func: func(req map[string]any) llmtest.Reply { return llmtest.Text("From the workspace's own server.", 3, 3) }}
	wrapped := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		own.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(wrapped.Close)
	e := newRuntimeEnv(t, def, func(c *app.Config) { c.ToolsAllowPrivate = true })
	def.Default = llmtest.Text("From the default server.", 3, 3)
	if p := e.MustDo(200, "GET", "/api/v1/providers", nil); p["source"] != "default" || p["api_key_set"] != true {
		t.Fatalf("default provider: %v", p)
	}
	r := e.Do("POST", "/api/v1/providers", map[string]any{"base_url": wrapped.URL + "/v1", "api_key": "sk-own-secret-1234"})
	if r.Status != 201 || bytes.Contains(r.Body, []byte("sk-own-secret")) {
		t.Fatalf("put provider: %d %s", r.Status, r.Body)
	}
	if g := e.Do("GET", "/api/v1/providers", nil); bytes.Contains(g.Body, []byte("sk-own-secret")) || !bytes.Contains(g.Body, []byte(`"source":"workspace"`)) {
		t.Fatalf("get provider: %s", g.Body)
	}
	if r := e.Do("POST", "/api/v1/providers", map[string]any{"base_url": "ftp://example.com"}); r.Status != 422 {
		t.Fatalf("bad base_url: %d", r.Status)
	}
	aid := createAssistant(t, e, map[string]any{"model": "gpt-4o-mini"})
	if msgs := post(t, e, newConversation(t, e, aid), "Hi"); msgs[1]["text"] != "From the workspace's own server." {
		t.Fatalf("reply %v", msgs[1])
	}
	mu.Lock()
	if len(auths) != 1 || auths[0] != "Bearer sk-own-secret-1234" {
		t.Fatalf("authorization sent: %v", auths)
	}
	mu.Unlock()
	// Another workspace still uses the default.
	key2, _ := e.NewKey("other")
	a2 := e.DoWith(key2, "POST", "/api/v1/assistants", map[string]any{"name": "B", "system_prompt": "You are B.", "model": "gpt-4o-mini"}, nil)
	var as2 map[string]any
	json.Unmarshal(a2.Body, &as2)
	c2 := e.DoWith(key2, "POST", "/api/v1/conversations", map[string]any{"assistant_id": as2["id"], "type": "test"}, nil)
	var cv2 map[string]any
	json.Unmarshal(c2.Body, &cv2)
	m2 := e.DoWith(key2, "POST", "/api/v1/conversations/"+cv2["id"].(string)+"/messages", map[string]any{"text": "Hi"}, nil)
	if !bytes.Contains(m2.Body, []byte("From the default server.")) {
		t.Fatalf("other workspace: %s", m2.Body)
	}
}

func TestPricesAPI(t *testing.T) {
	e := newRuntimeEnv(t, nil)
	list := e.MustDo(200, "GET", "/api/v1/prices", nil)["data"].([]any)
	byModel := map[string]map[string]any{}
	for _, p := range list {
		m := p.(map[string]any)
		byModel[m["model"].(string)] = m
	}
	if b := byModel["builtin"]; b == nil || b["input_per_million_usd"].(float64) != 0 || b["output_per_million_usd"].(float64) != 0 {
		t.Fatalf("builtin price %v", b)
	}
	if g := byModel["gpt-4o-mini"]; g == nil || g["input_per_million_usd"].(float64) != 0.15 || g["default"] != true {
		t.Fatalf("gpt-4o-mini default %v", g)
	}
	if w := byModel["whisper-1"]; w == nil || w["per_minute_usd"].(float64) != 0.006 {
		t.Fatalf("whisper-1 %v", w)
	}
	for _, bad := range []string{`{"input_per_million_usd":-1,"output_per_million_usd":1}`, `{}`, `{"input_per_million_usd":"x"}`} {
		if r := e.Do("PUT", "/api/v1/prices/my-model", bad); r.Status < 400 || r.Status >= 500 {
			t.Fatalf("bad price %s: %d", bad, r.Status)
		}
	}
	p := e.MustDo(200, "PUT", "/api/v1/prices/llama3.1:8b", map[string]any{"input_per_million_usd": 0.1, "output_per_million_usd": 0.2})
	if p["model"] != "llama3.1:8b" || p["default"] != false || p["output_per_million_usd"].(float64) != 0.2 {
		t.Fatalf("put %v", p)
	}
	// OpenRouter-style names carry a slash.
	if p := e.MustDo(200, "PUT", "/api/v1/prices/openai/gpt-4o", map[string]any{"input_per_million_usd": 2.5, "output_per_million_usd": 10}); p["model"] != "openai/gpt-4o" {
		t.Fatalf("slash model %v", p)
	}
	e.MustDo(204, "DELETE", "/api/v1/prices/openai/gpt-4o", nil)
	if r := e.Do("DELETE", "/api/v1/prices/openai/gpt-4o", nil); r.Status != 404 {
		t.Fatalf("second delete: %d", r.Status)
	}
	key2, _ := e.NewKey("other")
	other := e.DoWith(key2, "GET", "/api/v1/prices", nil, nil)
	if bytes.Contains(other.Body, []byte("llama3.1:8b")) {
		t.Fatal("a workspace's price shows in another workspace")
	}
}

func TestKnowledgeBaseAnswersOffline(t *testing.T) {
	e := newRuntimeEnv(t, nil) // no provider at all: the builtin model only
	kb := e.MustDo(201, "POST", "/api/v1/knowledge-bases", map[string]any{"name": "Acme help"})
	kbID := kb["id"].(string)
	md := "# Opening hours\n\nWe are open **Monday to Friday from 9am to 6pm**, and on Saturday from 10am to 2pm. We are closed on Sundays.\n\n" +
		"# Returns\n\nYou can return any item within 30 days of delivery for a full refund. Refunds reach your card in 5 business days.\n\n" +
		"# Shipping\n\nStandard shipping takes 3 to 5 days and costs $4.99; orders over $50 ship free."
	doc := e.MustDo(201, "POST", "/api/v1/knowledge-bases/"+kbID+"/documents", map[string]any{"title": "FAQ", "content": md, "mime_type": "text/markdown"})
	if doc["chunk_count"].(float64) < 1 {
		t.Fatalf("document %v", doc)
	}
	// An HTML page, uploaded as a file.
	html := `<html><head><title>Warranty</title><style>p{color:red}</style></head><body><h1>Warranty</h1><p>Every blender carries a two-year warranty covering the motor.</p><script>var x=1;</script></body></html>`
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "warranty.html")
	fw.Write([]byte(html))
	mw.Close()
	r := e.DoWith(e.Key, "POST", "/api/v1/knowledge-bases/"+kbID+"/documents", body.Bytes(), http.Header{"Content-Type": {mw.FormDataContentType()}})
	if r.Status != 201 {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	chunks := e.MustDo(200, "GET", "/api/v1/knowledge-bases/"+kbID+"/chunks", nil)["data"].([]any)
	for _, c := range chunks {
		if s := c.(map[string]any)["content"].(string); strings.Contains(s, "color:red") || strings.Contains(s, "var x") || strings.Contains(s, "**") {
			t.Fatalf("markup left in a passage: %q", s)
		}
	}
	only := e.MustDo(200, "GET", "/api/v1/knowledge-bases/"+kbID+"/chunks?document_id="+doc["id"].(string), nil)["data"].([]any)
	if len(only) == 0 || len(only) >= len(chunks) {
		t.Fatalf("chunks of one document: %d of %d", len(only), len(chunks))
	}
	for _, c := range only {
		if c.(map[string]any)["document_id"] != doc["id"] {
			t.Fatalf("another document's chunk: %v", c)
		}
	}
	hits := e.MustDo(200, "GET", "/api/v1/knowledge-bases/"+kbID+"/search?q=how+long+is+the+warranty", nil)["data"].([]any)
	if len(hits) == 0 || !strings.Contains(hits[0].(map[string]any)["content"].(string), "two-year warranty") {
		t.Fatalf("search %v", hits)
	}

	aid := createAssistant(t, e, map[string]any{"model": "builtin", "knowledge_base_ids": []string{kbID}})
	cid := newConversation(t, e, aid)
	for _, qa := range []struct{ q, want, not string }{
		{"Are you open on Saturday?", "Saturday from 10am to 2pm", "refund"},
		{"How many days do I have to return an item?", "within 30 days", "Saturday"},
		{"Do you charge for shipping?", "$4.99", "refund"},
	} {
		msgs := post(t, e, cid, qa.q)
		last := msgs[len(msgs)-1]
		if text := last["text"].(string); !strings.Contains(text, qa.want) || strings.Contains(text, qa.not) {
			t.Fatalf("%q answered %q, want it to contain %q and not %q", qa.q, text, qa.want, qa.not)
		}
		if msgs[1]["tool_calls"].([]any)[0].(map[string]any)["name"] != "search_knowledge" {
			t.Fatalf("no knowledge search for %q: %v", qa.q, msgs[1])
		}
	}

	// Knowledge bases belong to their workspace.
	key2, _ := e.NewKey("other")
	if r := e.DoWith(key2, "GET", "/api/v1/knowledge-bases/"+kbID+"/search?q=warranty", nil, nil); r.Status != 404 {
		t.Fatalf("another workspace searched it: %d", r.Status)
	}
	if r := e.DoWith(key2, "POST", "/api/v1/assistants", map[string]any{"name": "X", "knowledge_base_ids": []string{kbID}}, nil); r.Status != 422 {
		t.Fatalf("another workspace's knowledge base accepted: %d %s", r.Status, r.Body)
	}
	if r := e.Do("POST", "/api/v1/knowledge-bases/"+kbID+"/documents", map[string]any{"title": "empty"}); r.Status != 422 {
		t.Fatalf("empty document: %d", r.Status)
	}
}

func TestExtractionFillsVariablesWithSource(t *testing.T) {
	fake := llmtest.New(t)
	e := newRuntimeEnv(t, fake)
	extract := []any{
		map[string]any{"name": "email", "type": "email", "description": "contact email"},
		map[string]any{"name": "plan", "type": "string", "description": "the plan they want"},
		map[string]any{"name": "seats", "type": "integer", "description": "number of seats"},
	}
	aid := createAssistant(t, e, map[string]any{"model": "gpt-4o-mini", "extract": extract})
	// What a flow already knows stays as it is.
	cid := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api", "variables": map[string]any{"plan": "Pro"}})["id"].(string)
	fake.Push(llmtest.Text("Happy to help with the Pro plan.", 5, 5))
	post(t, e, cid, "We want Pro for 12 people, write to ops@acme.test")
	fake.Push(llmtest.Reply{Calls: []llmtest.Call{{ID: "call_x", Name: "save_variables", Arguments: `{"email":"ops@acme.test","plan":"Enterprise","seats":"twelve"}`}}, Usage: &[2]int64{400, 30}})
	e.MustDo(200, "POST", "/api/v1/conversations/"+cid+"/end", nil)
	e.App.Extra["runtime"].(*app.Runtime).WaitExtractions()
	vars := variables(t, e, cid)
	if vars["email"] != [2]string{"ops@acme.test", "post_conversation"} || vars["plan"] != [2]string{"Pro", "flow"} {
		t.Fatalf("variables %v", vars)
	}
	if _, ok := vars["seats"]; ok {
		t.Fatalf("a value failing its type was stored: %v", vars)
	}
	req := fake.Requests()[len(fake.Requests())-1]
	if !strings.Contains(fmt.Sprint(req["messages"]), "ops@acme.test") || req["tools"].([]any)[0].(map[string]any)["function"].(map[string]any)["name"] != "save_variables" {
		t.Fatalf("extraction request %v", req)
	}
	// The extraction's cost is the conversation's: 400 × 0.15 + 30 × 0.6 = 78 µ$ more.
	d := e.MustDo(200, "GET", "/api/v1/conversations/"+cid, nil)
	if got := d["cost_usd"].(float64); fmt.Sprintf("%.6f", got) != fmt.Sprintf("%.6f", 0.000078+assistantCost(5, 5)) {
		t.Fatalf("cost %v", got)
	}

	// Offline: the builtin model extracts by type when the conversation goes idle.
	bid := createAssistant(t, e, map[string]any{"model": "builtin", "extract": []any{map[string]any{"name": "visit_date", "type": "date", "description": "when they come"}}})
	bc := newConversation(t, e, bid)
	post(t, e, bc, "Hello, we would like to visit on 2026-12-04")
	rt := e.App.Extra["runtime"].(*app.Runtime)
	if n, err := rt.SweepIdle(context.Background(), time.Now().Add(time.Hour), 30*time.Minute); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if v := variables(t, e, bc)["visit_date"]; v != [2]string{"2026-12-04", "post_conversation"} {
		t.Fatalf("idle extraction %v", v)
	}
	if n, _ := rt.SweepIdle(context.Background(), time.Now().Add(time.Hour), 30*time.Minute); n != 0 {
		t.Fatalf("the same activity was extracted twice")
	}
}

func llmUsage(in, out int64) llm.Usage { return llm.Usage{InputTokens: in, OutputTokens: out} }

func llmImage(messageID string) llm.Image { return llm.Image{MessageID: messageID} }

func assistantCost(in, out int64) float64 {
	return float64(assistant.DefaultPrices["gpt-4o-mini"][0]*in+assistant.DefaultPrices["gpt-4o-mini"][1]*out+500_000) / 1_000_000 / 1e6
}

func TestHTTPToolCallsAndHidesHeaders(t *testing.T) {
	var got struct {
		sync.Mutex
		auth, path, query string
	}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Lock()
		got.auth, got.path, got.query = r.Header.Get("Authorization"), r.URL.Path, r.URL.RawQuery
		got.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"order":"ACME-1042","status":"shipped","eta":"2026-11-24"}`)
	}))
	t.Cleanup(target.Close)
	fake := llmtest.New(t)
	e := newRuntimeEnv(t, fake, func(c *app.Config) { c.ToolsAllowPrivate = true })
	tool := map[string]any{"type": "http", "name": "order_status", "description": "Look up an order.", "method": "GET",
		"url": target.URL + "/orders/{order_id}", "headers": map[string]string{"Authorization": "Bearer tool-secret-987"}, "timeout_ms": 2000,
		"parameters": map[string]any{"type": "object", "properties": map[string]any{"order_id": map[string]any{"type": "string"}, "verbose": map[string]any{"type": "boolean"}}, "required": []string{"order_id"}}}
	r := e.Do("POST", "/api/v1/assistants", map[string]any{"name": "Ava", "system_prompt": "You are Ava.", "model": "gpt-4o-mini", "tools": []any{"end_conversation", tool}})
	if r.Status != 201 || bytes.Contains(r.Body, []byte("tool-secret-987")) {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var as map[string]any
	json.Unmarshal(r.Body, &as)
	aid := as["id"].(string)
	if g := e.Do("GET", "/api/v1/assistants/"+aid, nil); bytes.Contains(g.Body, []byte("tool-secret-987")) || !bytes.Contains(g.Body, []byte(`"Authorization":"********"`)) {
		t.Fatalf("get shows: %s", g.Body)
	}
	// A PATCH that sends the masked value back keeps the secret.
	e.MustDo(200, "PATCH", "/api/v1/assistants/"+aid, map[string]any{"tools": as["tools"]})

	cid := newConversation(t, e, aid)
	fake.Push(llmtest.Reply{Calls: []llmtest.Call{{ID: "call_o", Name: "order_status", Arguments: `{"order_id":"ACME-1042","verbose":true}`}}}, llmtest.Text("Your order has shipped.", 5, 5))
	msgs := post(t, e, cid, "Where is ACME-1042?")
	got.Lock()
	if got.auth != "Bearer tool-secret-987" || got.path != "/orders/ACME-1042" || got.query != "verbose=true" {
		t.Fatalf("the tool's request: %s %s %s", got.auth, got.path, got.query)
	}
	got.Unlock()
	result := msgs[1]["tool_calls"].([]any)[0].(map[string]any)["result"].(string)
	if !strings.Contains(result, `"status":200`) || !strings.Contains(result, `"eta":"2026-11-24"`) {
		t.Fatalf("result %s", result)
	}
	reqs := fake.Requests()
	toolMsg := reqs[len(reqs)-1]["messages"].([]any)
	if last := toolMsg[len(toolMsg)-1].(map[string]any); last["role"] != "tool" || !strings.Contains(last["content"].(string), "shipped") {
		t.Fatalf("the result did not go back to the model: %v", last)
	}
	defs := fmt.Sprint(reqs[len(reqs)-1]["tools"])
	if !strings.Contains(defs, "order_status") || strings.Contains(defs, "tool-secret") {
		t.Fatalf("tool definitions %s", defs)
	}
	for _, bad := range []any{
		map[string]any{"type": "http", "name": "x", "url": "file:///etc/passwd"},
		map[string]any{"type": "http", "name": "search_knowledge", "url": "https://example.com"},
		map[string]any{"type": "http", "name": "y", "url": "https://example.com", "method": "TRACE"},
		map[string]any{"type": "http", "name": "z", "url": "https://example.com", "timeout_ms": 600000},
	} {
		if r := e.Do("POST", "/api/v1/assistants", map[string]any{"name": "Bad", "tools": []any{bad}}); r.Status != 422 {
			t.Fatalf("bad tool %v: %d %s", bad, r.Status, r.Body)
		}
	}
}

func TestMediaAITranscribesAndPrices(t *testing.T) {
	fake := llmtest.New(t)
	fake.Transcript = "Can I change my delivery address?"
	fake.AudioSecs = 90
	e := newRuntimeEnv(t, fake)
	ai := e.App.Extra["media_ai"].(interface {
		Transcribe(ctx context.Context, workspaceID string, audio io.Reader, filename, mimeType string) (string, error)
		Describe(ctx context.Context, workspaceID string, image []byte, mimeType string) (string, error)
	})
	text, err := ai.Transcribe(context.Background(), e.WorkspaceID, strings.NewReader("OggS-voice"), "", "audio/ogg; codecs=opus")
	if err != nil || text != "Can I change my delivery address?" {
		t.Fatalf("%q %v", text, err)
	}
	if up := fake.Uploads(); len(up) != 1 || up[0].Filename != "voice.ogg" || up[0].Model != "whisper-1" {
		t.Fatalf("uploads %+v", up)
	}
	_, cost, err := e.App.Extra["media_ai"].(*app.MediaAI).TranscribeWithCost(context.Background(), e.WorkspaceID, strings.NewReader("OggS"), "v.ogg", "audio/ogg")
	if err != nil || cost != 9000 { // 1.5 minutes at $0.006
		t.Fatalf("cost %d %v", cost, err)
	}
	if _, err := ai.Describe(context.Background(), e.WorkspaceID, []byte("\x89PNG"), "image/png"); err == nil || !strings.Contains(err.Error(), "vision model") {
		t.Fatalf("describe without a vision model: %v", err)
	}
}

func TestEndConversationToolExtractsAndImagesReachTheModel(t *testing.T) {
	fake := llmtest.New(t)
	e := newRuntimeEnv(t, fake)
	aid := createAssistant(t, e, map[string]any{"model": "gpt-4o-mini", "tools": []any{"schedule_appointment"},
		"extract": []any{map[string]any{"name": "party_size", "type": "integer", "description": "how many people"}}})
	cid := newConversation(t, e, aid)

	// An image the customer sent goes to the model as an image part.
	ws := e.WorkspaceID
	fake.Push(llmtest.Text("Nice table!", 5, 5))
	if _, err := e.App.Conversations.Post(context.Background(), ws, cid, conversation.PostInput{Type: "image", Text: "Can we sit here?",
		Media: &conversation.Media{ID: "wamid-img", MimeType: "image/jpeg", URL: "https://cdn.acme.test/table.jpg"}}, nil); err != nil {
		t.Fatal(err)
	}
	reqs := fake.Requests()
	user := reqs[len(reqs)-1]["messages"].([]any)[1].(map[string]any)
	parts, ok := user["content"].([]any)
	if !ok || len(parts) != 2 || parts[1].(map[string]any)["image_url"].(map[string]any)["url"] != "https://cdn.acme.test/table.jpg" {
		t.Fatalf("user message sent as %v", user)
	}

	// A model that refuses image parts gets the text only, and answers.
	fake.Push(llmtest.Error(400, "invalid_request_error", "invalid_request_error", "Invalid content type. image_url is only supported by certain models."), llmtest.Text("Sure.", 5, 5))
	msgs := post(t, e, cid, "And this one?")
	if msgs[1]["text"] != "Sure." {
		t.Fatalf("after a vision refusal: %v", msgs[1])
	}
	reqs = fake.Requests()
	if retry := fmt.Sprint(reqs[len(reqs)-1]["messages"]); strings.Contains(retry, "image_url") || !strings.Contains(fmt.Sprint(reqs[len(reqs)-2]["messages"]), "image_url") {
		t.Fatalf("the retry still had images: %s", retry)
	}

	// schedule_appointment stores the slot; end_conversation ends it and runs the extraction.
	// The extraction runs beside the turn's last round, so the fake answers by what is asked.
	round := 0
	fake.Default = llmtest.Reply{Func: func(req map[string]any) llmtest.Reply {
		if tools, _ := req["tools"].([]any); len(tools) == 1 { // the extraction offers save_variables only
			return llmtest.Reply{Calls: []llmtest.Call{{ID: "call_x", Name: "save_variables", Arguments: `{"party_size":"4"}`}}}
		}
		round++
		switch round {
		case 1:
			return llmtest.Reply{Calls: []llmtest.Call{{ID: "call_s", Name: "schedule_appointment", Arguments: `{"date":"2026-12-04","time":"19:30","name":"Ana"}`}}}
		case 2:
			return llmtest.Reply{Calls: []llmtest.Call{{ID: "call_e", Name: "end_conversation", Arguments: `{}`}}}
		}
		return llmtest.Text("Booked for Friday at 19:30. Goodbye!", 5, 5)
	}}
	post(t, e, cid, "Book Friday 2026-12-04 at 19:30 for 4, name Ana. That's all, bye")
	e.App.Extra["runtime"].(*app.Runtime).WaitExtractions()
	d := e.MustDo(200, "GET", "/api/v1/conversations/"+cid, nil)
	if d["status"] != "ended" {
		t.Fatalf("status %v", d["status"])
	}
	vars := variables(t, e, cid)
	want := map[string][2]string{"appointment_date": {"2026-12-04", "extracted"}, "appointment_time": {"19:30", "extracted"}, "appointment_name": {"Ana", "extracted"}, "party_size": {"4", "post_conversation"}}
	for k, v := range want {
		if vars[k] != v {
			t.Fatalf("%s = %v, want %v (all: %v)", k, vars[k], v, vars)
		}
	}
}

func TestWorkspaceProviderCannotReachPrivateAddresses(t *testing.T) {
	def := llmtest.New(t) // the server's own default provider may be local
	own := llmtest.New(t)
	e := newRuntimeEnv(t, def, func(c *app.Config) { c.AllowPrivateNetworks = false }) // the guard, as in production
	e.MustDo(201, "POST", "/api/v1/providers", map[string]any{"base_url": own.BaseURL(), "api_key": "k"})
	aid := createAssistant(t, e, map[string]any{"model": "gpt-4o-mini"})
	msgs := post(t, e, newConversation(t, e, aid), "Hi")
	if errObj, _ := msgs[1]["error"].(map[string]any); errObj == nil || !strings.Contains(errObj["details"].(string), "not public") {
		t.Fatalf("a workspace provider on loopback was used: %v", msgs[1])
	}
	if len(own.Requests()) != 0 {
		t.Fatal("the private server was reached")
	}
	if n := len(def.Requests()); n != 0 {
		t.Fatalf("the default provider was used instead: %d", n)
	}
	e.MustDo(204, "DELETE", "/api/v1/providers", nil)
	if msgs := post(t, e, newConversation(t, e, aid), "Hi"); msgs[1]["error"] != nil {
		t.Fatalf("the default provider after DELETE: %v", msgs[1])
	}
}

func TestMediaAIDescribesImagesAndLoadsThemFromBlobs(t *testing.T) {
	fake := llmtest.New(t)
	e := newRuntimeEnv(t, fake, func(c *app.Config) { c.VisionModel = "gpt-4o" })
	fake.Push(llmtest.Text("A receipt for order ACME-1042, total $35.20.", 900, 14))
	ai := e.App.Extra["media_ai"].(*app.MediaAI)
	png := []byte("\x89PNG\r\n\x1a\nreceipt")
	text, cost, err := ai.DescribeWithCost(context.Background(), e.WorkspaceID, png, "image/png")
	if err != nil || text != "A receipt for order ACME-1042, total $35.20." {
		t.Fatalf("%q %v", text, err)
	}
	if cost != assistant.CostMicros(2_500_000, 10_000_000, llmUsage(900, 14)) {
		t.Fatalf("cost %d", cost)
	}
	req := fake.Requests()[0]
	if req["model"] != "gpt-4o" || !strings.Contains(fmt.Sprint(req["messages"]), "data:image/png;base64,") {
		t.Fatalf("vision request %v", req)
	}
	// A channel's stored attachment is found by its message id and sent inline.
	ctx := context.Background()
	if _, err := e.App.Blobs.Put(ctx, "whatsapp/"+e.WorkspaceID+"/msg-1", bytes.NewReader(png), 1<<20); err != nil {
		t.Fatal(err)
	}
	img, err := e.App.Runtime.Images.LoadImage(ctx, e.WorkspaceID, llmImage("msg-1"))
	if err != nil || !bytes.Equal(img.Data, png) || img.MimeType != "image/png" {
		t.Fatalf("%+v %v", img, err)
	}
	if _, err := e.App.Runtime.Images.LoadImage(ctx, "another-workspace", llmImage("msg-1")); err == nil {
		t.Fatal("another workspace's blob was loaded")
	}
}

func TestParallelHTTPToolCallsRunAtOnce(t *testing.T) {
	arrived := make(chan string, 2)
	release := make(chan struct{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Query().Get("city")
		select {
		case <-release:
		case <-time.After(5 * time.Second):
			http.Error(w, "the other call never came", 500)
			return
		}
		fmt.Fprintf(w, `{"city":%q,"temp_c":12}`, r.URL.Query().Get("city"))
	}))
	t.Cleanup(target.Close)
	go func() {
		<-arrived
		<-arrived // both calls are in flight together
		close(release)
	}()
	fake := llmtest.New(t)
	e := newRuntimeEnv(t, fake, func(c *app.Config) { c.ToolsAllowPrivate = true })
	tool := map[string]any{"type": "http", "name": "weather", "description": "Weather in a city.", "url": target.URL + "/w", "headers": map[string]string{"X-Key": "wk-1"}}
	aid := createAssistant(t, e, map[string]any{"model": "gpt-4o-mini", "tools": []any{tool}})
	cid := newConversation(t, e, aid)
	fake.Push(llmtest.Reply{Calls: []llmtest.Call{
		{ID: "call_JMW1whyEaYG438VE1OIflxA2", Name: "weather", Arguments: `{"city":"Edinburgh"}`},
		{ID: "call_h1DWI1POMJLb0KwIyQHWXD4p", Name: "weather", Arguments: `{"city":"Paris"}`},
	}}, llmtest.Text("12°C in both.", 5, 5))
	msgs := post(t, e, cid, "Weather in Edinburgh and Paris?")
	calls := msgs[1]["tool_calls"].([]any)
	if len(calls) != 2 || !strings.Contains(calls[0].(map[string]any)["result"].(string), "Edinburgh") || !strings.Contains(calls[1].(map[string]any)["result"].(string), "Paris") {
		t.Fatalf("calls %v", calls)
	}
	// Deleting the assistant deletes its tools' header values.
	e.MustDo(204, "DELETE", "/api/v1/assistants/"+aid, nil)
	if left, err := e.App.Store.ToolSecrets(context.Background(), e.WorkspaceID, aid); err != nil || len(left) != 0 {
		t.Fatalf("secrets left: %v %v", left, err)
	}
}

func TestVoiceNoteWithoutTranscriptIsNotAnswered(t *testing.T) {
	fake := llmtest.New(t)
	e := newRuntimeEnv(t, fake)
	aid := createAssistant(t, e, map[string]any{"model": "gpt-4o-mini", "fallback_text": "Sorry, I could not listen to that. Could you type it?"})
	cid := newConversation(t, e, aid)
	ctx := context.Background()
	msgs, err := e.App.Conversations.Post(ctx, e.WorkspaceID, cid, conversation.PostInput{Type: "audio", Media: &conversation.Media{ID: "m1", MimeType: "audio/ogg"}}, nil)
	if err != nil || len(msgs) != 2 || msgs[1].Error == nil || msgs[1].Text != "Sorry, I could not listen to that. Could you type it?" {
		t.Fatalf("%v %+v", err, msgs)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Fatalf("the model was asked about a voice note it could not hear (%d calls)", n)
	}
	// With its transcript, it is answered.
	fake.Push(llmtest.Text("Yes, we deliver on Sundays.", 5, 5))
	msgs, err = e.App.Conversations.Post(ctx, e.WorkspaceID, cid, conversation.PostInput{Type: "audio", Media: &conversation.Media{ID: "m2", MimeType: "audio/ogg", Transcript: "Do you deliver on Sundays?"}}, nil)
	if err != nil || len(msgs) != 2 || msgs[1].Text != "Yes, we deliver on Sundays." {
		t.Fatalf("%v %+v", err, msgs)
	}
	last := fake.Requests()[0]["messages"].([]any)
	if !strings.Contains(fmt.Sprint(last[len(last)-1]), "Do you deliver on Sundays?") {
		t.Fatalf("transcript not sent: %v", last[len(last)-1])
	}
}
