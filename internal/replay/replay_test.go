package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/replay"
	"github.com/parley-hq/parley/internal/testenv"
	"github.com/parley-hq/parley/internal/whatsapp"
)

// hits counts the requests a loopback server received.
type hits struct {
	*httptest.Server
	n atomic.Int64
}

func newHits(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, body []byte)) *hits {
	h := &hits{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if answer != nil {
			answer(w, r, body)
		}
		h.n.Add(1)
	}))
	t.Cleanup(h.Close)
	return h
}

// waitReplay polls the replay until it has finished.
func waitReplay(t *testing.T, e *testenv.Env, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := e.MustDo(200, "GET", "/api/v1/replays/"+id, nil)
		if s := r["status"]; s == "done" || s == "failed" {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("replay %s did not finish: %v", id, r)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// reportOf reads every replayed conversation of a replay, through the paged API.
func reportOf(t *testing.T, e *testenv.Env, id string) map[string]replay.ItemJSON {
	t.Helper()
	out := map[string]replay.ItemJSON{}
	cursor := ""
	for {
		path := "/api/v1/replays/" + id + "/conversations?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var page struct {
			Data       []replay.ItemJSON `json:"data"`
			NextCursor *string           `json:"next_cursor"`
		}
		r := e.Do("GET", path, nil)
		if r.Status != 200 {
			t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
		}
		r.Decode(t, &page)
		for _, it := range page.Data {
			out[it.ConversationID] = it
		}
		if page.NextCursor == nil {
			return out
		}
		cursor = *page.NextCursor
	}
}

// snapshot is everything a replay must leave as it was.
func snapshot(t *testing.T, e *testenv.Env, ids []string) string {
	t.Helper()
	var b strings.Builder
	for _, id := range ids {
		d := e.MustDo(200, "GET", "/api/v1/conversations/"+id, nil)
		delete(d, "window") // computed from the clock
		enc, _ := json.Marshal(d)
		b.Write(enc)
		b.WriteByte('\n')
	}
	return b.String()
}

func post(t *testing.T, e *testenv.Env, conv, text string) {
	t.Helper()
	e.MustDo(200, "POST", "/api/v1/conversations/"+conv+"/messages", map[string]any{"text": text})
}

const (
	oldPrompt = "You are Ava, the support assistant for Acme Shoes. Be brief."
	newPrompt = "You are Max, the returns expert at Acme Shoes. Be brief."
	waAppKey  = "app-secret-replay"
)

// TestReplayAcceptance seeds conversations with the builtin model (an API one, a test one handed
// to a human, a WhatsApp one answered and sent through a fake Graph API), then changes the system
// prompt — as a draft, and saved as a new version — and replays. The reports differ exactly where
// the prompt shapes the reply (greetings and plain answers name Max instead of Ava), nowhere else
// (tool calls, handoff, token counts of tool turns), replaying the unchanged version reproduces
// every reply and token count, and nothing leaves the sandbox: the HTTP tool's server, the Graph
// API and the webhook receiver get no request, no live event is published, and every
// conversation reads exactly as before.
func TestReplayAcceptance(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		ctx := context.Background()
		toolServer := newHits(t, func(w http.ResponseWriter, r *http.Request, body []byte) { io.WriteString(w, `{"status":"shipped"}`) })
		var sendsMu sync.Mutex
		sends := 0
		graph := newHits(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Content-Type", "application/json")
			switch {
			case r.Method == "POST" && strings.Contains(string(body), `"status":"read"`):
				io.WriteString(w, `{"success":true}`)
			case r.Method == "POST":
				sendsMu.Lock()
				sends++
				n := sends
				sendsMu.Unlock()
				fmt.Fprintf(w, `{"messaging_product":"whatsapp","contacts":[{"input":"5511988887777","wa_id":"5511988887777"}],"messages":[{"id":"wamid.OUT%d"}]}`, n)
			default:
				io.WriteString(w, `{"display_phone_number":"+1 555 000 1111","quality_rating":"GREEN","messaging_limit_tier":"TIER_1K","id":"9990001"}`)
			}
		})
		hooks := newHits(t, nil)

		aid := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Ava", "system_prompt": oldPrompt, "model": "builtin",
			"tools": []any{"set_variable", "transfer_to_human", map[string]any{"type": "http", "name": "lookup_order", "description": "Look an order up.",
				"method": "GET", "url": toolServer.URL + "/orders/{order}", "headers": map[string]string{"Authorization": "Bearer tool-secret-123"},
				"parameters": map[string]any{"type": "object", "properties": map[string]any{"order": map[string]any{"type": "string"}}}}}})["id"].(string)
		e.MustDo(201, "POST", "/api/v1/webhooks", map[string]any{"url": hooks.URL + "/hook", "events": []string{"message.created"}})

		// An API conversation: a greeting, a detail the assistant records, a plain question.
		api := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api", "customer_id": "crm-1", "variables": map[string]any{"plan": "gold"}})["id"].(string)
		post(t, e, api, "Hello")
		post(t, e, api, "My email is jo@example.com")
		post(t, e, api, "Tell me about your running shoes")
		// A test conversation handed to a human; the next customer message is a human's to answer.
		test := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "test", "customer_id": "tester"})["id"].(string)
		post(t, e, test, "I want to talk to a person")
		post(t, e, test, "Hello? Anyone there?")
		e.MustDo(200, "POST", "/api/v1/conversations/"+test+"/messages", map[string]any{"text": "Hi, Sam here.", "role": "agent"})
		// A WhatsApp conversation, answered by a job and sent through the fake Graph API.
		e.MustDo(201, "POST", "/api/v1/whatsapp/senders", map[string]any{"phone_number_id": "9990001", "display_phone_number": "+1 555 000 1111",
			"access_token": "tok", "app_secret": waAppKey, "verify_token": "ver", "assistant_id": aid, "graph_api_url": graph.URL + "/v21.0/"})
		body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",` +
			`"metadata":{"display_phone_number":"15550001111","phone_number_id":"9990001"},"contacts":[{"profile":{"name":"Maria"},"wa_id":"5511988887777"}],` +
			`"messages":[{"from":"5511988887777","id":"wamid.IN1","timestamp":"` + fmt.Sprint(time.Now().Unix()) + `","type":"text","text":{"body":"Hello"}}]}}]}]}`)
		if r := e.DoWith("", "POST", "/webhooks/whatsapp", body, http.Header{"X-Hub-Signature-256": {whatsapp.Sign(body, waAppKey)}}); r.Status != 200 {
			t.Fatalf("whatsapp delivery: %d %s", r.Status, r.Body)
		}
		var wa string
		waitFor(t, "the WhatsApp answer to be sent", func() bool {
			list := e.MustDo(200, "GET", "/api/v1/conversations?type=whatsapp", nil)["data"].([]any)
			if len(list) == 0 {
				return false
			}
			wa = list[0].(map[string]any)["id"].(string)
			msgs := e.MustDo(200, "GET", "/api/v1/conversations/"+wa+"/messages", nil)["data"].([]any)
			return len(msgs) == 2 && msgs[1].(map[string]any)["status"] == "sent"
		})
		convs := []string{api, test, wa}
		totalMessages := 0
		for _, id := range convs {
			totalMessages += int(e.MustDo(200, "GET", "/api/v1/conversations/"+id, nil)["message_count"].(float64))
		}
		waitFor(t, "a webhook delivery per message", func() bool { return hooks.n.Load() == int64(totalMessages) })
		before := snapshot(t, e, convs)
		sendCount := func() int { sendsMu.Lock(); defer sendsMu.Unlock(); return sends }
		toolHits, graphSends, hookHits := toolServer.n.Load(), sendCount(), hooks.n.Load()
		if toolHits != 0 || graphSends != 1 {
			t.Fatalf("seeding: %d tool hits, %d Graph sends", toolHits, graphSends)
		}
		sub := e.App.Events.Subscribe(e.WorkspaceID, "")
		defer sub.Close()

		// 1. The prompt change as a draft, on the current version 1.
		draft := e.MustDo(202, "POST", "/api/v1/replays", map[string]any{"assistant_id": aid, "draft": map[string]any{"system_prompt": newPrompt}})
		if draft["status"] != "queued" && draft["status"] != "running" || draft["version"].(float64) != 1 || draft["progress"].(map[string]any)["total"].(float64) != 3 {
			t.Fatalf("draft replay: %v", draft)
		}
		draftDone := waitReplay(t, e, draft["id"].(string))
		draftReport := reportOf(t, e, draft["id"].(string))

		// 2. The same change saved: a new version, replayed as the current one.
		upd := e.MustDo(200, "PATCH", "/api/v1/assistants/"+aid, map[string]any{"system_prompt": newPrompt})
		if upd["version"].(float64) != 2 {
			t.Fatalf("version after the prompt change: %v", upd["version"])
		}
		saved := e.MustDo(202, "POST", "/api/v1/replays", map[string]any{"assistant_id": aid})
		savedDone := waitReplay(t, e, saved["id"].(string))
		savedReport := reportOf(t, e, saved["id"].(string))

		// 3. The old version, replayed: nothing may differ.
		same := e.MustDo(202, "POST", "/api/v1/replays", map[string]any{"assistant_id": aid, "version": 1})
		sameDone := waitReplay(t, e, same["id"].(string))
		sameReport := reportOf(t, e, same["id"].(string))

		greetOld := "Hello! I'm Ava, the support assistant for Acme Shoes. How can I help you today?"
		greetNew := "Hello! I'm Max, the returns expert at Acme Shoes. How can I help you today?"
		plainOld := "Thanks for your message. I'm Ava, the support assistant for Acme Shoes. Could you tell me a little more so I can help?"
		plainNew := "Thanks for your message. I'm Max, the returns expert at Acme Shoes. Could you tell me a little more so I can help?"
		noted := "Thanks, I've noted your email jo@example.com. How else can I help?"
		handoff := "I'm connecting you with a member of our team now. Someone will reply here shortly."
		type want struct {
			conv, customer, old, new string
			skipped                  bool
		}
		changedTurns := []want{
			{api, "Hello", greetOld, greetNew, false},
			{api, "My email is jo@example.com", noted, noted, false},
			{api, "Tell me about your running shoes", plainOld, plainNew, false},
			{test, "I want to talk to a person", handoff, handoff, false},
			{test, "Hello? Anyone there?", "", "", true},
			{wa, "Hello", greetOld, greetNew, false},
		}
		check := func(name string, done map[string]any, report map[string]replay.ItemJSON, turns []want, version float64) {
			t.Helper()
			if done["status"] != "done" || done["version"].(float64) != version {
				t.Fatalf("%s: %v", name, done)
			}
			var simSum float64
			changed, compared := 0, 0
			idx := map[string]int{}
			for _, w := range turns {
				it, ok := report[w.conv]
				if !ok {
					t.Fatalf("%s: conversation %s not in the report", name, w.conv)
				}
				i := idx[w.conv]
				idx[w.conv]++
				if i >= len(it.Turns) {
					t.Fatalf("%s: conversation %s has %d turns", name, w.conv, len(it.Turns))
				}
				tn := it.Turns[i]
				if tn.CustomerText != w.customer {
					t.Errorf("%s: %s turn %d customer %q, want %q", name, w.conv, i, tn.CustomerText, w.customer)
				}
				if w.skipped {
					if tn.Skipped == "" || tn.Changed {
						t.Errorf("%s: %s turn %d should be skipped: %+v", name, w.conv, i, tn)
					}
					continue
				}
				compared++
				if tn.Old.Text != w.old || tn.New.Text != w.new {
					t.Errorf("%s: %s turn %d\n old %q, want %q\n new %q, want %q", name, w.conv, i, tn.Old.Text, w.old, tn.New.Text, w.new)
				}
				wantSim := replay.Similarity(w.old, w.new)
				if tn.Similarity != float64(int(wantSim*1e4+0.5))/1e4 || (w.old == w.new) != (tn.Similarity == 1) {
					t.Errorf("%s: %s turn %d similarity %v, want %v", name, w.conv, i, tn.Similarity, wantSim)
				}
				if tn.Changed != (w.old != w.new) {
					t.Errorf("%s: %s turn %d changed %v", name, w.conv, i, tn.Changed)
				}
				if tn.Changed {
					changed++
				}
				simSum += wantSim
				if len(tn.ToolCallDiffs) != 0 || tn.New.Error != "" || len(tn.Sandbox) != 0 {
					t.Errorf("%s: %s turn %d: tool differences %v, error %q, sandbox %v", name, w.conv, i, tn.ToolCallDiffs, tn.New.Error, tn.Sandbox)
				}
				if !reflect.DeepEqual(toolNames(tn.Old.ToolCalls), toolNames(tn.New.ToolCalls)) {
					t.Errorf("%s: %s turn %d tool calls %v → %v", name, w.conv, i, tn.Old.ToolCalls, tn.New.ToolCalls)
				}
				// An unchanged reply costs the same output tokens; the input tokens only differ by the prompt's.
				if !tn.Changed && (tn.Old.TokensOut != tn.New.TokensOut || version == 1 && name == "same version" && tn.Old.TokensIn != tn.New.TokensIn) {
					t.Errorf("%s: %s turn %d tokens %d/%d → %d/%d", name, w.conv, i, tn.Old.TokensIn, tn.Old.TokensOut, tn.New.TokensIn, tn.New.TokensOut)
				}
			}
			tot := done["totals"].(map[string]any)
			wantMean := float64(int(simSum/float64(compared)*1e4+0.5)) / 1e4
			if tot["conversations"].(float64) != 3 || tot["turns"].(float64) != float64(compared) || tot["changed_turns"].(float64) != float64(changed) ||
				tot["skipped_turns"].(float64) != 1 || tot["tool_call_differences"].(float64) != 0 || tot["errors"].(float64) != 0 ||
				tot["mean_similarity"].(float64) != wantMean {
				t.Errorf("%s totals: %v (want %d turns, %d changed, mean %v)", name, tot, compared, changed, wantMean)
			}
			if p := done["progress"].(map[string]any); p["done"] != p["total"] || p["total"].(float64) != 3 {
				t.Errorf("%s progress: %v", name, p)
			}
		}
		check("draft", draftDone, draftReport, changedTurns, 1)
		check("saved version", savedDone, savedReport, changedTurns, 2)
		unchanged := make([]want, len(changedTurns))
		for i, w := range changedTurns {
			w.new = w.old
			unchanged[i] = w
		}
		check("same version", sameDone, sameReport, unchanged, 1)
		if tot := sameDone["totals"].(map[string]any); tot["tokens_diff"].(float64) != 0 || tot["mean_similarity"].(float64) != 1 {
			t.Errorf("replaying the recorded version changed tokens or text: %v", tot)
		}
		if d := draftDone["draft"].(map[string]any); d["system_prompt"] != newPrompt || draftDone["config"].(map[string]any)["system_prompt"] != newPrompt {
			t.Errorf("draft replay keeps %v / %v", d, draftDone["config"])
		}
		// The sandbox recorded what the tools would have done, and did none of it.
		email := draftReport[api].Turns[1].Effects
		if len(email.Variables) != 1 || email.Variables[0].Name != "email" || email.Variables[0].Value != "jo@example.com" {
			t.Errorf("recorded variables: %+v", email)
		}
		if h := draftReport[test].Turns[0].Effects.Handoff; h == nil || *h == "" {
			t.Errorf("recorded handoff: %+v", draftReport[test].Turns[0].Effects)
		}
		if toolServer.n.Load() != toolHits || sendCount() != graphSends || hooks.n.Load() != hookHits {
			t.Fatalf("the replay reached out: tool %d→%d, Graph sends %d→%d, webhooks %d→%d",
				toolHits, toolServer.n.Load(), graphSends, sendCount(), hookHits, hooks.n.Load())
		}
		// Live events: none but late echoes of the seeding (PostgreSQL's fan-out delivers them a
		// little later) — of messages and states that existed before any replay ran.
		for drained := false; !drained; {
			select {
			case ev := <-sub.C:
				d := e.MustDo(200, "GET", "/api/v1/conversations/"+ev.Conversation.ID, nil)
				if ev.Conversation.MessageCount > int64(d["message_count"].(float64)) {
					t.Fatalf("a live event with a state the conversation never had: %+v", ev.Conversation)
				}
				for _, m := range ev.Messages {
					if !strings.Contains(before, m.ID) {
						t.Fatalf("a live event with a message that was not there before: %+v", m)
					}
				}
			default:
				drained = true
			}
		}
		if after := snapshot(t, e, convs); after != before {
			t.Fatalf("the conversations changed:\nbefore %s\nafter  %s", before, after)
		}
		if n, err := e.App.Store.ConversationCount(ctx, e.WorkspaceID); err != nil || n != 3 {
			t.Fatalf("conversations: %d %v", n, err)
		}
		// The list shows the three replays, newest first.
		list := e.MustDo(200, "GET", "/api/v1/replays", nil)["data"].([]any)
		if len(list) != 3 || list[0].(map[string]any)["id"] != same["id"] || list[2].(map[string]any)["id"] != draft["id"] {
			t.Fatalf("replay list: %v", list)
		}
	})
}

func toolNames(calls []replay.ToolCall) []string {
	out := []string{}
	for _, c := range calls {
		out = append(out, c.Name+" "+string(c.Arguments))
	}
	return out
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
