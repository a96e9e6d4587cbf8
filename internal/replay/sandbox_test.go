package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/llm/llmtest"
	"github.com/parley-hq/parley/internal/replay"
	"github.com/parley-hq/parley/internal/testenv"
)

// lastMessage returns the role and content of a chat request's last message, and its system prompt.
func lastMessage(req map[string]any) (role, content, system string) {
	msgs, _ := req["messages"].([]any)
	if len(msgs) == 0 {
		return "", "", ""
	}
	if m, ok := msgs[0].(map[string]any); ok && m["role"] == "system" {
		system, _ = m["content"].(string)
	}
	m, _ := msgs[len(msgs)-1].(map[string]any)
	role, _ = m["role"].(string)
	content, _ = m["content"].(string)
	return role, content, system
}

// toolResults are the tool messages of a chat request's last round, in order.
func toolResults(req map[string]any) []string {
	msgs, _ := req["messages"].([]any)
	var out []string
	for i := len(msgs) - 1; i >= 0; i-- {
		m, _ := msgs[i].(map[string]any)
		if m["role"] != "tool" {
			break
		}
		c, _ := m["content"].(string)
		out = append([]string{c}, out...)
	}
	return out
}

// TestReplayAnswersHTTPToolsFromRecording replays a conversation in which a real model (the fake
// OpenAI-compatible server) called an HTTP tool. The draft makes the model call it with other
// arguments and call a second HTTP tool besides: the first is answered with the recorded result of
// the original call, the second with "not executed in replay", and the tools' server sees no
// request beyond the original one. The differences, tokens and cost are reported.
func TestReplayAnswersHTTPToolsFromRecording(t *testing.T) {
	fake := llmtest.New(t)
	tools := newHits(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		io.WriteString(w, `{"order":"`+strings.TrimPrefix(r.URL.Path, "/orders/")+`","status":"shipped"}`)
	})
	fake.Default = llmtest.Reply{Func: func(req map[string]any) llmtest.Reply {
		role, content, system := lastMessage(req)
		if role == "tool" {
			return llmtest.Text("Here is what I found: "+strings.Join(toolResults(req), " / "), 40, 10)
		}
		if strings.Contains(system, "careful") {
			return llmtest.Reply{Usage: &[2]int64{30, 8}, Calls: []llmtest.Call{
				{ID: "call_a", Name: "lookup_order", Arguments: `{"order":"ORD-1","verbose":true}`},
				{ID: "call_b", Name: "cancel_order", Arguments: `{"order":"ORD-1"}`},
			}}
		}
		if strings.Contains(content, "ORD-1") {
			return llmtest.Reply{Usage: &[2]int64{30, 5}, Calls: []llmtest.Call{{ID: "call_1", Name: "lookup_order", Arguments: `{"order":"ORD-1"}`}}}
		}
		return llmtest.Text("How can I help?", 20, 4)
	}}
	e := testenv.New(t, func(c *app.Config) { c.LLMBaseURL, c.LLMAPIKey = fake.BaseURL(), "sk-test" })
	e.MustDo(200, "PUT", "/api/v1/prices/gpt-4o-mini", map[string]any{"input_per_million_usd": 1, "output_per_million_usd": 4})
	httpTool := func(name, method string) map[string]any {
		return map[string]any{"type": "http", "name": name, "description": name, "method": method, "url": tools.URL + "/orders/{order}",
			"parameters": map[string]any{"type": "object", "properties": map[string]any{"order": map[string]any{"type": "string"}}}}
	}
	aid := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Orders", "system_prompt": "You are the orders desk.", "model": "gpt-4o-mini",
		"tools": []any{httpTool("lookup_order", "GET"), httpTool("cancel_order", "POST")}})["id"].(string)
	conv := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api"})["id"].(string)
	post(t, e, conv, "Where is my order ORD-1?")
	if tools.n.Load() != 1 {
		t.Fatalf("the live turn called the tool %d times", tools.n.Load())
	}
	recorded := `{"body":{"order":"ORD-1","status":"shipped"},"ok":true,"status":200}`
	requestsBefore := len(fake.Requests())

	rp := e.MustDo(202, "POST", "/api/v1/replays", map[string]any{"assistant_id": aid, "draft": map[string]any{"system_prompt": "You are the careful orders desk."}})
	done := waitReplay(t, e, rp["id"].(string))
	it := reportOf(t, e, rp["id"].(string))[conv]
	if tools.n.Load() != 1 {
		t.Fatalf("the replay called the tools' server: %d requests", tools.n.Load())
	}
	if len(it.Turns) != 1 {
		t.Fatalf("turns: %+v", it.Turns)
	}
	tn := it.Turns[0]
	wantNew := "Here is what I found: " + recorded + " / " + replay.NotExecutedResult
	if tn.Old.Text != "Here is what I found: "+recorded || tn.New.Text != wantNew || !tn.Changed {
		t.Fatalf("old %q, new %q (want %q)", tn.Old.Text, tn.New.Text, wantNew)
	}
	if len(tn.Sandbox) != 2 || tn.Sandbox[0].Tool != "lookup_order" || tn.Sandbox[0].Outcome != replay.AnsweredFromRecording || tn.Sandbox[0].Result != recorded ||
		tn.Sandbox[1].Tool != "cancel_order" || tn.Sandbox[1].Outcome != replay.NotExecuted {
		t.Fatalf("sandbox: %+v", tn.Sandbox)
	}
	diffs := map[string]string{}
	for _, d := range tn.ToolCallDiffs {
		diffs[d.Name] = d.Change
	}
	if len(tn.ToolCallDiffs) != 2 || diffs["lookup_order"] != replay.ToolChanged || diffs["cancel_order"] != replay.ToolAdded {
		t.Fatalf("tool differences: %+v", tn.ToolCallDiffs)
	}
	// The model read the recorded result and the sandbox's answer as the tools' results.
	var sawResults bool
	for _, req := range fake.Requests()[requestsBefore:] {
		if r := toolResults(req); len(r) == 2 && r[0] == recorded && r[1] == replay.NotExecutedResult {
			sawResults = true
		}
	}
	if !sawResults {
		t.Fatal("the model never read the sandbox's tool results")
	}
	// Usage: old 30+5 then 40+10; new 30+8 then 40+10. At $1 / $4 per million tokens.
	if tn.Old.TokensIn != 70 || tn.Old.TokensOut != 15 || tn.New.TokensIn != 70 || tn.New.TokensOut != 18 || tn.TokensDiff != 3 {
		t.Fatalf("tokens: old %d/%d new %d/%d diff %d", tn.Old.TokensIn, tn.Old.TokensOut, tn.New.TokensIn, tn.New.TokensOut, tn.TokensDiff)
	}
	wantOld, wantNewCost := (70*1.0+15*4.0)/1e6, (70*1.0+18*4.0)/1e6
	tot := done["totals"].(map[string]any)
	if !near(tn.Old.CostUSD, wantOld) || !near(tn.New.CostUSD, wantNewCost) || !near(tot["cost_diff_usd"].(float64), wantNewCost-wantOld) ||
		tot["tool_call_differences"].(float64) != 2 || tot["changed_turns"].(float64) != 1 {
		t.Fatalf("cost old %v new %v; totals %v", tn.Old.CostUSD, tn.New.CostUSD, tot)
	}
	// Still exactly the live turn's messages.
	if d := e.MustDo(200, "GET", "/api/v1/conversations/"+conv, nil); d["message_count"].(float64) != 3 {
		t.Fatalf("the conversation changed: %v", d["message_count"])
	}
}

func near(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }

// TestReplaySurvivesRestart creates a replay in a Parley that stops before running it; the next
// Parley on the same database runs its queued jobs to the end.
func TestReplaySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := app.Config{DB: "sqlite://" + filepath.Join(dir, "parley.db"), DataDir: filepath.Join(dir, "data"), ExtractIdle: -1}
	ctx := context.Background()
	a1, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := a1.Auth.EnsureWorkspace(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	name, prompt := "Ava", "You are Ava."
	as, err := a1.Assistants.Create(ctx, ws.ID, assistant.Input{Name: &name, SystemPrompt: &prompt})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		c, err := a1.Conversations.Create(ctx, ws.ID, conversation.CreateInput{AssistantID: as.ID, Type: conversation.TypeAPI})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a1.Conversations.Post(ctx, ws.ID, c.ID, conversation.PostInput{Text: "Hello"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	draftPrompt := "You are Bo."
	rp, err := a1.ReplayService().Create(ctx, ws.ID, replay.Request{AssistantID: as.ID, Draft: &assistant.Draft{SystemPrompt: &draftPrompt}})
	if err != nil {
		t.Fatal(err)
	}
	if rp.Status != replay.StatusQueued || rp.Progress.Total != 3 || rp.Progress.Done != 0 {
		t.Fatalf("created: %+v", rp)
	}
	if err := a1.Close(); err != nil { // the queue never started: the jobs wait in the database
		t.Fatal(err)
	}

	a2, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); _ = a2.Close() }()
	if err := a2.Start(runCtx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := a2.ReplayService().Get(ctx, ws.ID, rp.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == replay.StatusDone {
			if got.Progress.Done != 3 || got.Totals.Turns != 3 || got.Totals.ChangedTurns != 3 {
				t.Fatalf("after the restart: %+v", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replay never finished after the restart: %+v", got)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// TestReplayValidation: bad requests are 4xx JSON errors and store nothing.
func TestReplayValidation(t *testing.T) {
	e := testenv.New(t)
	aid := e.CreateAssistant("Ava", "You are Ava.")
	conv := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "test"})["id"].(string)
	post(t, e, conv, "Hello")
	other := e.CreateAssistant("Bo", "You are Bo.")
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"not JSON", `{"assistant_id":`, 400, "invalid_json"},
		{"no assistant", map[string]any{}, 422, "invalid_field"},
		{"unknown assistant", map[string]any{"assistant_id": "01a00000-0000-7000-8000-000000000000"}, 404, "assistant_not_found"},
		{"version 0", map[string]any{"assistant_id": aid, "version": 0}, 422, "invalid_field"},
		{"version never made", map[string]any{"assistant_id": aid, "version": 7}, 422, "invalid_field"},
		{"version not a number", map[string]any{"assistant_id": aid, "version": "2"}, 400, "invalid_field"},
		{"bad type", map[string]any{"assistant_id": aid, "filter": map[string]any{"type": "fax"}}, 422, "invalid_field"},
		{"bad date", map[string]any{"assistant_id": aid, "filter": map[string]any{"from": "yesterday"}}, 422, "invalid_field"},
		{"bad status", map[string]any{"assistant_id": aid, "filter": map[string]any{"status": "open"}}, 422, "invalid_field"},
		{"limit 0", map[string]any{"assistant_id": aid, "filter": map[string]any{"limit": 0}}, 422, "invalid_field"},
		{"limit too big", map[string]any{"assistant_id": aid, "filter": map[string]any{"limit": 1001}}, 422, "invalid_field"},
		{"ids with filters", map[string]any{"assistant_id": aid, "filter": map[string]any{"ids": []string{conv}, "type": "test"}}, 422, "invalid_field"},
		{"unknown id", map[string]any{"assistant_id": aid, "filter": map[string]any{"ids": []string{"01a00000-0000-7000-8000-000000000000"}}}, 422, "invalid_field"},
		{"nothing matches", map[string]any{"assistant_id": other}, 422, "invalid_field"},
		{"draft: bad temperature", map[string]any{"assistant_id": aid, "draft": map[string]any{"temperature": 5}}, 422, "invalid_field"},
		{"draft: bad tools", map[string]any{"assistant_id": aid, "draft": map[string]any{"tools": []string{"no_such_tool"}}}, 422, "invalid_field"},
		{"draft: empty model", map[string]any{"assistant_id": aid, "draft": map[string]any{"model": " "}}, 422, "invalid_field"},
	} {
		r := e.Do("POST", "/api/v1/replays", tc.body)
		var body struct {
			Error struct{ Code, Message string }
		}
		_ = json.Unmarshal(r.Body, &body)
		if r.Status != tc.status || body.Error.Code != tc.code || body.Error.Message == "" {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Body, tc.status, tc.code)
		}
	}
	if list := e.MustDo(200, "GET", "/api/v1/replays", nil)["data"].([]any); len(list) != 0 {
		t.Fatalf("bad requests stored replays: %v", list)
	}
	for _, path := range []string{"/api/v1/replays/01a00000-0000-7000-8000-000000000000", "/api/v1/replays/nope/conversations"} {
		if r := e.Do("GET", path, nil); r.Status != 404 {
			t.Errorf("GET %s: %d", path, r.Status)
		}
	}
	for _, q := range []string{"limit=0", "limit=x", "cursor=bad!"} {
		if r := e.Do("GET", "/api/v1/replays?"+q, nil); r.Status != 400 {
			t.Errorf("GET /replays?%s: %d %s", q, r.Status, r.Body)
		}
	}
	// ids alone, and "*" for every assistant's conversations.
	rp := e.MustDo(202, "POST", "/api/v1/replays", map[string]any{"assistant_id": other, "filter": map[string]any{"ids": []string{conv, conv}}})
	if rp["progress"].(map[string]any)["total"].(float64) != 1 {
		t.Fatalf("ids: %v", rp)
	}
	rp = e.MustDo(202, "POST", "/api/v1/replays", map[string]any{"assistant_id": other, "filter": map[string]any{"assistant_id": "*", "type": []string{"test", "api"}}})
	if rp["progress"].(map[string]any)["total"].(float64) != 1 || rp["filter"].(map[string]any)["assistant_id"] != "*" {
		t.Fatalf("every assistant: %v", rp)
	}
	if r := e.Do("GET", "/api/v1/replays/"+rp["id"].(string)+"/conversations?cursor=x", nil); r.Status != 400 {
		t.Fatalf("bad cursor: %d", r.Status)
	}
}

// TestReplayItemsGoWithTheirConversation: erasing a customer removes their conversation from the
// replays' reports too (and from the totals).
func TestReplayItemsGoWithTheirConversation(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		aid := e.CreateAssistant("Ava", "You are Ava.")
		var convs []string
		for _, cust := range []string{"keep-me", "erase-me"} {
			c := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api", "customer_id": cust})["id"].(string)
			post(t, e, c, "Hello, my secret is hunter2")
			convs = append(convs, c)
		}
		rp := e.MustDo(202, "POST", "/api/v1/replays", map[string]any{"assistant_id": aid})
		id := rp["id"].(string)
		waitReplay(t, e, id)
		if r := e.Do("GET", "/api/v1/replays/"+id+"/conversations", nil); !strings.Contains(string(r.Body), convs[1]) {
			t.Fatalf("report before erasure lacks the conversation: %s", r.Body)
		}
		e.MustDo(200, "DELETE", "/api/v1/customers/erase-me", nil)
		after := e.MustDo(200, "GET", "/api/v1/replays/"+id, nil)
		items := e.Do("GET", "/api/v1/replays/"+id+"/conversations", nil)
		if strings.Contains(string(items.Body), convs[1]) || after["progress"].(map[string]any)["total"].(float64) != 1 || after["totals"].(map[string]any)["turns"].(float64) != 1 {
			t.Fatalf("after erasure: %v\n%s", after, items.Body)
		}
	})
}

// TestAssistantVersions: each change that shapes replies stores a version; a name change refreshes
// the current one; header secrets never appear in a snapshot; other workspaces see nothing.
func TestAssistantVersions(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		tool := map[string]any{"type": "http", "name": "lookup", "description": "d", "method": "GET", "url": "https://api.example.com/x",
			"headers": map[string]string{"X-Api-Key": "very-secret-header-value"}}
		aid := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Ava", "system_prompt": "v1 prompt", "model": "builtin", "tools": []any{tool}})["id"].(string)
		e.MustDo(200, "PATCH", "/api/v1/assistants/"+aid, map[string]any{"name": "Ava Renamed", "fallback_text": "Sorry!"})
		e.MustDo(200, "PATCH", "/api/v1/assistants/"+aid, map[string]any{"system_prompt": "v2 prompt"})
		e.MustDo(200, "PATCH", "/api/v1/assistants/"+aid, map[string]any{"temperature": 0.3})
		list := e.Do("GET", "/api/v1/assistants/"+aid+"/versions", nil)
		if list.Status != 200 || strings.Contains(string(list.Body), "very-secret-header-value") {
			t.Fatalf("versions: %d %s", list.Status, list.Body)
		}
		var versions struct {
			Data []struct {
				Version      int              `json:"version"`
				Current      bool             `json:"current"`
				SystemPrompt string           `json:"system_prompt"`
				Temperature  *float64         `json:"temperature"`
				FallbackText string           `json:"fallback_text"`
				Tools        []map[string]any `json:"tools"`
			} `json:"data"`
		}
		list.Decode(t, &versions)
		v := versions.Data
		if len(v) != 3 || v[0].SystemPrompt != "v1 prompt" || v[0].FallbackText != "Sorry!" || v[1].SystemPrompt != "v2 prompt" || v[1].Temperature != nil ||
			v[2].Temperature == nil || *v[2].Temperature != 0.3 || !v[2].Current || v[0].Current || v[0].Tools[0]["headers"].(map[string]any)["X-Api-Key"] != "********" {
			t.Fatalf("versions: %+v", v)
		}
		one := e.MustDo(200, "GET", "/api/v1/assistants/"+aid+"/versions/2", nil)
		if one["system_prompt"] != "v2 prompt" || one["version"].(float64) != 2 || one["assistant_id"] != aid {
			t.Fatalf("version 2: %v", one)
		}
		for _, path := range []string{"/versions/4", "/versions/0", "/versions/x"} {
			if r := e.Do("GET", "/api/v1/assistants/"+aid+path, nil); r.Status != 404 {
				t.Errorf("%s: %d", path, r.Status)
			}
		}
		// The model, the tools, the knowledge bases and the extraction each make a version; a budget does not.
		kb := e.MustDo(201, "POST", "/api/v1/knowledge-bases", map[string]any{"name": "Help"})["id"].(string)
		for i, change := range []map[string]any{{"model": "gpt-4o-mini"}, {"tools": []string{"set_variable"}}, {"knowledge_base_ids": []string{kb}},
			{"extract": []any{map[string]any{"name": "email", "type": "email"}}}, {"monthly_budget_usd": 5}} {
			want := float64(4 + min(i, 3))
			if got := e.MustDo(200, "PATCH", "/api/v1/assistants/"+aid, change)["version"].(float64); got != want {
				t.Errorf("after %v: version %v, want %v", change, got, want)
			}
		}
		if v := e.MustDo(200, "GET", "/api/v1/assistants/"+aid+"/versions/6", nil); fmt.Sprint(v["knowledge_base_ids"]) != "["+kb+"]" || v["model"] != "gpt-4o-mini" {
			t.Errorf("version 6: %v", v)
		}
		keyB, _ := e.NewKey("other")
		if r := e.DoWith(keyB, "GET", "/api/v1/assistants/"+aid+"/versions", nil, nil); r.Status != 404 {
			t.Fatalf("another workspace reads the versions: %d", r.Status)
		}
		e.MustDo(204, "DELETE", "/api/v1/assistants/"+aid, nil)
		if r := e.Do("GET", "/api/v1/assistants/"+aid+"/versions", nil); r.Status != 404 {
			t.Fatalf("versions of a deleted assistant: %d", r.Status)
		}
	})
}

// TestReplayOtherWorkspaceAndOutOfRange: another workspace can start no replay over this one's
// assistant, conversations or knowledge bases, nor read its replays; numbers out of any stored
// range (a version, a cursor) are 4xx answers, not database errors. Nothing is stored.
func TestReplayOtherWorkspaceAndOutOfRange(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		aid := e.CreateAssistant("Ava", "You are Ava.")
		conv := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api"})["id"].(string)
		post(t, e, conv, "Hello")
		kb := e.MustDo(201, "POST", "/api/v1/knowledge-bases", map[string]any{"name": "Help"})["id"].(string)
		rp := e.MustDo(202, "POST", "/api/v1/replays", map[string]any{"assistant_id": aid})
		id := rp["id"].(string)
		waitReplay(t, e, id)

		keyB, _ := e.NewKey("other")
		mine := e.DoWith(keyB, "POST", "/api/v1/assistants", map[string]any{"name": "Bo", "system_prompt": "You are Bo.", "model": "builtin"}, nil)
		var b struct{ ID string }
		mine.Decode(t, &b)
		for _, tc := range []struct {
			name   string
			body   any
			status int
		}{
			{"A's assistant", map[string]any{"assistant_id": aid}, 404},
			{"A's conversation", map[string]any{"assistant_id": b.ID, "filter": map[string]any{"ids": []string{conv}}}, 422},
			{"A's assistant's conversations", map[string]any{"assistant_id": b.ID, "filter": map[string]any{"assistant_id": aid}}, 422},
			{"every assistant's conversations", map[string]any{"assistant_id": b.ID, "filter": map[string]any{"assistant_id": "*"}}, 422},
			{"A's knowledge base", map[string]any{"assistant_id": b.ID, "draft": map[string]any{"knowledge_base_ids": []string{kb}}}, 422},
		} {
			if r := e.DoWith(keyB, "POST", "/api/v1/replays", tc.body, nil); r.Status != tc.status || !strings.Contains(string(r.Body), `"error"`) {
				t.Errorf("B, %s: %d %s, want %d", tc.name, r.Status, r.Body, tc.status)
			}
		}
		for _, path := range []string{"/api/v1/replays/" + id, "/api/v1/replays/" + id + "/conversations"} {
			if r := e.DoWith(keyB, "GET", path, nil, nil); r.Status != 404 || strings.Contains(string(r.Body), conv) {
				t.Errorf("B, GET %s: %d %s", path, r.Status, r.Body)
			}
		}
		if r := e.DoWith(keyB, "GET", "/api/v1/replays", nil, nil); r.Status != 200 || strings.Contains(string(r.Body), id) {
			t.Errorf("B's list: %d %s", r.Status, r.Body)
		}

		// Out of range: beyond what any column holds.
		huge := 99999999999
		if r := e.Do("POST", "/api/v1/replays", map[string]any{"assistant_id": aid, "version": huge}); r.Status != 422 {
			t.Errorf("version %d: %d %s", huge, r.Status, r.Body)
		}
		if r := e.Do("GET", "/api/v1/assistants/"+aid+"/versions/"+fmt.Sprint(huge), nil); r.Status != 404 {
			t.Errorf("GET version %d: %d %s", huge, r.Status, r.Body)
		}
		if r := e.Do("GET", "/api/v1/replays/"+id+"/conversations?cursor="+fmt.Sprint(huge), nil); r.Status != 400 {
			t.Errorf("cursor %d: %d %s", huge, r.Status, r.Body)
		}
		if list := e.MustDo(200, "GET", "/api/v1/replays", nil)["data"].([]any); len(list) != 1 {
			t.Errorf("replays stored: %d", len(list))
		}
	})
}
