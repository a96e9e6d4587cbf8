package api_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/testenv"
)

// TestFoundationFlow walks the acceptance path: an assistant, a test and an api
// conversation with variables, messages and replies, the list with every filter and a cursor, the
// detail, both exports, metrics, and the error answers.
func TestFoundationFlow(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		aid := e.CreateAssistant("Ava", "You are Ava, the support assistant for Acme Shoes.")

		test := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{
			"assistant_id": aid, "type": "test", "customer_id": "tester-1", "variables": map[string]any{"plan": "gold", "seats": 3},
		})
		testID := test["id"].(string)
		apiConv := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api", "customer_id": "crm-42"})
		apiID := apiConv["id"].(string)

		// A greeting gets a reply built from the system prompt.
		r := e.MustDo(200, "POST", "/api/v1/conversations/"+testID+"/messages", map[string]any{"text": "Hello!"})
		msgs := r["messages"].([]any)
		if len(msgs) != 2 {
			t.Fatalf("want inbound + reply, got %d: %v", len(msgs), msgs)
		}
		in, reply := msgs[0].(map[string]any), msgs[1].(map[string]any)
		if in["role"] != "user" || in["direction"] != "inbound" || reply["role"] != "assistant" || reply["direction"] != "outbound" {
			t.Fatalf("roles: %v / %v", in, reply)
		}
		if !strings.Contains(reply["text"].(string), "Ava") {
			t.Fatalf("reply does not come from the system prompt: %q", reply["text"])
		}
		if reply["tokens_in"].(float64) <= 0 || reply["tokens_out"].(float64) <= 0 {
			t.Fatalf("reply has no token counts: %v", reply)
		}

		// Details in a message become extracted variables through tool calls.
		r = e.MustDo(200, "POST", "/api/v1/conversations/"+apiID+"/messages", map[string]any{"text": "Order ORD-12345 never came. Mail me at jo@example.com"})
		msgs = r["messages"].([]any)
		if len(msgs) != 3 {
			t.Fatalf("want inbound, tool-call step, reply; got %d", len(msgs))
		}
		calls := msgs[1].(map[string]any)["tool_calls"].([]any)
		if len(calls) != 2 || calls[0].(map[string]any)["name"] != "set_variable" {
			t.Fatalf("tool calls: %v", calls)
		}
		if res := calls[0].(map[string]any)["result"].(string); !strings.Contains(res, `"ok":true`) {
			t.Fatalf("tool result: %s", res)
		}

		// An agent message is stored and not answered.
		r = e.MustDo(200, "POST", "/api/v1/conversations/"+apiID+"/messages", map[string]any{"text": "Checking with the warehouse.", "role": "agent"})
		if msgs = r["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["role"] != "agent" {
			t.Fatalf("agent message: %v", msgs)
		}

		// Detail: messages in order, variables with sources, usage equal to the sum of the messages.
		d := e.MustDo(200, "GET", "/api/v1/conversations/"+apiID, nil)
		vars := map[string]string{}
		for _, v := range d["variables"].([]any) {
			m := v.(map[string]any)
			vars[m["name"].(string)] = m["value"].(string) + "/" + m["source"].(string)
		}
		if vars["email"] != "jo@example.com/extracted" || vars["order_id"] != "ORD-12345/extracted" {
			t.Fatalf("variables: %v", vars)
		}
		var sumIn float64
		dm := d["messages"].([]any)
		for _, m := range dm {
			sumIn += m.(map[string]any)["tokens_in"].(float64)
		}
		usage := d["usage"].(map[string]any)
		if usage["messages"].(float64) != float64(len(dm)) || usage["tokens_in"].(float64) != sumIn || d["message_count"].(float64) != 4 {
			t.Fatalf("usage %v vs %d messages, %v tokens in", usage, len(dm), sumIn)
		}
		if d["last_message_preview"] != "Checking with the warehouse." {
			t.Fatalf("preview: %v", d["last_message_preview"])
		}
		td := e.MustDo(200, "GET", "/api/v1/conversations/"+testID, nil)
		if v := td["variables"].([]any); len(v) != 2 || v[0].(map[string]any)["source"] != "flow" || v[1].(map[string]any)["value"] != "3" {
			t.Fatalf("flow variables: %v", v)
		}

		// List filters.
		ids := func(q string) []string {
			t.Helper()
			l := e.MustDo(200, "GET", "/api/v1/conversations?"+q, nil)
			var out []string
			for _, c := range l["data"].([]any) {
				out = append(out, c.(map[string]any)["id"].(string))
			}
			return out
		}
		today := time.Now().UTC().Format("2006-01-02")
		tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02")
		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"", []string{apiID, testID}},
			{"type=test", []string{testID}},
			{"type=test,api", []string{apiID, testID}},
			{"type=whatsapp", nil},
			{"customer=crm-42", []string{apiID}},
			{"q=warehouse", []string{apiID}},
			{"q=hello", []string{testID}},
			{"q=nothing+matches+this", nil},
			{"assistant_id=" + aid + "&type=api", []string{apiID}},
			{"status=active", []string{apiID, testID}},
			{"status=ended", nil},
			{"from=" + today + "&to=" + today, []string{apiID, testID}},
			{"from=" + tomorrow, nil},
			{"to=2020-01-01", nil},
		} {
			if got := ids(tc.query); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("list ?%s = %v, want %v", tc.query, got, tc.want)
			}
		}

		// Handoff stops the AI; resume brings it back; end closes.
		e.MustDo(200, "POST", "/api/v1/conversations/"+testID+"/handoff", map[string]any{"reason": "VIP"})
		r = e.MustDo(200, "POST", "/api/v1/conversations/"+testID+"/messages", map[string]any{"text": "anyone?"})
		if n := len(r["messages"].([]any)); n != 1 {
			t.Fatalf("the AI answered during handoff: %d messages", n)
		}
		e.MustDo(200, "POST", "/api/v1/conversations/"+testID+"/resume", nil)
		r = e.MustDo(200, "POST", "/api/v1/conversations/"+testID+"/messages", map[string]any{"text": "hi again"})
		if n := len(r["messages"].([]any)); n != 2 {
			t.Fatalf("the AI did not answer after resume: %d messages", n)
		}
		ended := e.MustDo(200, "POST", "/api/v1/conversations/"+testID+"/end", nil)
		if ended["status"] != "ended" || ended["ended_at"] == nil {
			t.Fatalf("end: %v", ended)
		}
		if got := e.Do("POST", "/api/v1/conversations/"+testID+"/messages", map[string]any{"text": "x"}); got.Status != 409 {
			t.Fatalf("message to an ended conversation: %d %s", got.Status, got.Body)
		}
		if got := ids("status=ended"); fmt.Sprint(got) != fmt.Sprint([]string{testID}) {
			t.Fatalf("status=ended: %v", got)
		}

		// A customer message while a human has the conversation, never answered.
		e.MustDo(200, "POST", "/api/v1/conversations/"+apiID+"/handoff", nil)
		e.MustDo(200, "POST", "/api/v1/conversations/"+apiID+"/messages", map[string]any{"text": "still there?"})

		// Exports: one row per message, filtered like the list.
		csvResp := e.Do("GET", "/api/v1/conversations/export?format=csv&type=api", nil)
		rows, err := csv.NewReader(bytes.NewReader(csvResp.Body)).ReadAll()
		if err != nil || csvResp.Status != 200 {
			t.Fatalf("csv: %d %v", csvResp.Status, err)
		}
		if len(rows) != 1+5 || rows[0][0] != "conversation_id" {
			t.Fatalf("csv rows: %d (%v)", len(rows), rows[0])
		}
		for _, row := range rows[1:] {
			if row[0] != apiID {
				t.Fatalf("csv has a row of another conversation: %v", row)
			}
		}
		// The JSON columns say what the detail says (the store may hand them on as stored).
		detailMsgs := map[string]map[string]any{}
		for _, m := range e.MustDo(200, "GET", "/api/v1/conversations/"+apiID, nil)["messages"].([]any) {
			detailMsgs[m.(map[string]any)["id"].(string)] = m.(map[string]any)
		}
		sameJSON := func(cell string, want any) bool {
			if cell == "" {
				return want == nil
			}
			var got any
			return json.Unmarshal([]byte(cell), &got) == nil && reflect.DeepEqual(got, want)
		}
		withTools := 0
		for _, row := range rows[1:] {
			dm := detailMsgs[row[8]]
			if dm == nil || !sameJSON(row[15], dm["media"]) || !sameJSON(row[16], dm["tool_calls"]) || !sameJSON(row[18], dm["error"]) {
				t.Fatalf("csv JSON columns differ from the detail: %q %q %q vs %v", row[15], row[16], row[18], dm)
			}
			if row[16] != "" {
				withTools++
			}
		}
		if withTools == 0 {
			t.Fatal("no exported row has tool calls: the JSON columns are not exercised")
		}
		jl := e.Do("GET", "/api/v1/conversations/export?format=jsonl", nil)
		sc := bufio.NewScanner(bytes.NewReader(jl.Body))
		lines := 0
		for sc.Scan() {
			var row map[string]any
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatalf("jsonl line %d: %v", lines, err)
			}
			if row["conversation_id"] == nil || row["role"] == nil || row["created_at"] == nil {
				t.Fatalf("jsonl row lacks fields: %v", row)
			}
			if dm := detailMsgs[fmt.Sprint(row["id"])]; dm != nil {
				for _, k := range []string{"media", "tool_calls", "error"} {
					if !reflect.DeepEqual(row[k], dm[k]) {
						t.Fatalf("jsonl %s differs from the detail: %v vs %v", k, row[k], dm[k])
					}
				}
			}
			lines++
		}
		total := int(e.MustDo(200, "GET", "/api/v1/conversations/"+testID, nil)["message_count"].(float64)) + 5
		if lines != total {
			t.Fatalf("jsonl has %d lines, want %d", lines, total)
		}

		// Metrics, hand-counted. test: "Hello" answered; "anyone?" (sent during the handoff) answered by
		// the reply after resume, the first outbound answer after it; "hi again" answered. api: the order
		// message answered (by the reply, not the tool step); "still there?" never answered. 4 of 5.
		m := e.MustDo(200, "GET", "/api/v1/metrics", nil)
		if m["total_conversations"].(float64) != 2 {
			t.Fatalf("total_conversations: %v", m["total_conversations"])
		}
		if m["total_messages"].(float64) != float64(total) {
			t.Fatalf("total_messages %v, want %d", m["total_messages"], total)
		}
		if rr := m["response_rate"].(float64); rr != 0.8 {
			t.Fatalf("response_rate %v, want 0.8 (4 of 5 customer messages answered)", rr)
		}
		// Response time recomputed from the transcripts: each customer message to the first answer after it.
		var sum, answered float64
		for _, id := range []string{testID, apiID} {
			var waiting []time.Time
			for _, raw := range e.MustDo(200, "GET", "/api/v1/conversations/"+id, nil)["messages"].([]any) {
				msg := raw.(map[string]any)
				at, _ := time.Parse(time.RFC3339Nano, msg["created_at"].(string))
				switch {
				case msg["role"] == "user":
					waiting = append(waiting, at)
				case (msg["role"] == "assistant" || msg["role"] == "agent") && msg["text"] != "":
					for _, w := range waiting {
						sum += float64(at.Sub(w).Milliseconds())
						answered++
					}
					waiting = nil
				}
			}
		}
		if art := m["avg_response_time_ms"].(float64); answered != 4 || art != sum/answered {
			t.Fatalf("avg_response_time_ms %v, want %v over %v answers", art, sum/answered, answered)
		}
		if m["messages_per_conversation"].(float64) != float64(total)/2 {
			t.Fatalf("messages_per_conversation: %v", m["messages_per_conversation"])
		}
		if ba := m["by_assistant"].([]any); len(ba) != 1 || ba[0].(map[string]any)["name"] != "Ava" {
			t.Fatalf("by_assistant: %v", ba)
		}
		if bd := m["by_day"].([]any); len(bd) != 1 || bd[0].(map[string]any)["date"] != today {
			t.Fatalf("by_day: %v", bd)
		}
		// Both conversations started in this hour of this weekday (UTC); every other cell is empty.
		created, _ := time.Parse(time.RFC3339Nano, test["created_at"].(string))
		var hourTotal float64
		for _, h := range m["by_hour"].([]any) {
			hm := h.(map[string]any)
			hourTotal += hm["conversations"].(float64)
			if int(hm["hour"].(float64)) == created.Hour() && hm["conversations"].(float64) != 2 {
				t.Fatalf("by_hour: %v", m["by_hour"])
			}
		}
		week := m["by_weekday_hour"].([]any)
		if hourTotal != 2 || week[int(created.Weekday())].([]any)[created.Hour()].(float64) != 2 {
			t.Fatalf("by_weekday_hour[%d][%d]: %v", created.Weekday(), created.Hour(), week)
		}
		if m2 := e.MustDo(200, "GET", "/api/v1/metrics?type=api", nil); m2["total_conversations"].(float64) != 1 || m2["response_rate"].(float64) != 0.5 {
			t.Fatalf("metrics?type=api: %v", m2)
		}
		if m3 := e.MustDo(200, "GET", "/api/v1/metrics?from="+tomorrow, nil); m3["total_conversations"].(float64) != 0 {
			t.Fatalf("metrics from tomorrow: %v", m3["total_conversations"])
		}
	})
}

func TestCursorPagingVisitsEveryConversationOnce(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		aid := e.CreateAssistant("A", "You are A.")
		want := map[string]bool{}
		for i := 0; i < 23; i++ {
			c := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api", "customer_id": fmt.Sprint("c", i)})
			want[c["id"].(string)] = true
		}
		seen := map[string]bool{}
		cursor := ""
		pages := 0
		var lastAt string
		for {
			q := "/api/v1/conversations?limit=5"
			if cursor != "" {
				q += "&cursor=" + url.QueryEscape(cursor)
			}
			l := e.MustDo(200, "GET", q, nil)
			pages++
			for _, c := range l["data"].([]any) {
				m := c.(map[string]any)
				id := m["id"].(string)
				if seen[id] {
					t.Fatalf("conversation %s seen twice", id)
				}
				seen[id] = true
				if at := m["last_message_at"].(string); lastAt != "" && at > lastAt {
					t.Fatalf("not newest first: %s after %s", at, lastAt)
				}
				lastAt = m["last_message_at"].(string)
			}
			if l["next_cursor"] == nil {
				break
			}
			cursor = l["next_cursor"].(string)
		}
		if len(seen) != len(want) || pages != 5 {
			t.Fatalf("saw %d of %d conversations in %d pages", len(seen), len(want), pages)
		}
	})
}

func TestErrorsAreJSONAndChangeNothing(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		aid := e.CreateAssistant("A", "You are A.")
		big := `{"name":"` + strings.Repeat("a", 1<<20) + `"}`
		for _, tc := range []struct {
			name, method, path string
			body               any
			key                string
			status             int
			code               string
		}{
			{"malformed json", "POST", "/api/v1/assistants", `{"name":`, e.Key, 400, "invalid_json"},
			{"not an object", "POST", "/api/v1/assistants", `[1,2]`, e.Key, 400, "invalid_json"},
			{"wrong field type", "POST", "/api/v1/assistants", `{"name": 5}`, e.Key, 400, "invalid_field"},
			{"two objects", "POST", "/api/v1/assistants", `{"name":"a"}{"name":"b"}`, e.Key, 400, "invalid_json"},
			{"empty body", "POST", "/api/v1/assistants", "", e.Key, 400, "invalid_json"},
			{"missing name", "POST", "/api/v1/assistants", `{"model":"builtin"}`, e.Key, 422, "invalid_field"},
			{"temperature out of range", "POST", "/api/v1/assistants", `{"name":"x","temperature":3}`, e.Key, 422, "invalid_field"},
			{"unknown builtin tool", "POST", "/api/v1/assistants", `{"name":"x","tools":["launch_rockets"]}`, e.Key, 422, "invalid_field"},
			{"body too large", "POST", "/api/v1/assistants", big, e.Key, 413, "body_too_large"},
			{"no key", "GET", "/api/v1/conversations", nil, "", 401, "unauthorized"},
			{"wrong key", "GET", "/api/v1/conversations", nil, "prl_nope_nope", 401, "unauthorized"},
			{"unknown conversation", "GET", "/api/v1/conversations/01a0-none", nil, e.Key, 404, "not_found"},
			{"unknown assistant", "GET", "/api/v1/assistants/01a0-none", nil, e.Key, 404, "not_found"},
			{"message to unknown conversation", "POST", "/api/v1/conversations/nope/messages", `{"text":"hi"}`, e.Key, 404, "not_found"},
			{"conversation with unknown assistant", "POST", "/api/v1/conversations", `{"assistant_id":"nope","type":"api"}`, e.Key, 404, "assistant_not_found"},
			{"conversation with bad type", "POST", "/api/v1/conversations", `{"assistant_id":"` + aid + `","type":"fax"}`, e.Key, 422, "invalid_field"},
			{"object variable", "POST", "/api/v1/conversations", `{"assistant_id":"` + aid + `","type":"api","variables":{"a":{"b":1}}}`, e.Key, 422, "invalid_field"},
			{"bad type filter", "GET", "/api/v1/conversations?type=fax", nil, e.Key, 400, "invalid_parameter"},
			{"bad date", "GET", "/api/v1/conversations?from=yesterday", nil, e.Key, 400, "invalid_parameter"},
			{"bad limit", "GET", "/api/v1/conversations?limit=501", nil, e.Key, 400, "invalid_parameter"},
			{"forged cursor", "GET", "/api/v1/conversations?cursor=abc", nil, e.Key, 400, "invalid_cursor"},
			{"bad export format", "GET", "/api/v1/conversations/export?format=xml", nil, e.Key, 400, "invalid_parameter"},
			{"wrong method", "PUT", "/api/v1/conversations", nil, e.Key, 405, "method_not_allowed"},
			{"unknown route", "GET", "/api/v1/nothing-here", nil, e.Key, 404, "not_found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.DoWith(tc.key, tc.method, tc.path, tc.body, nil)
				if r.Status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
				}
				var body struct {
					Error struct{ Code, Message string }
				}
				if err := json.Unmarshal(r.Body, &body); err != nil || body.Error.Code != tc.code || body.Error.Message == "" {
					t.Fatalf("body %s, want code %s", r.Body, tc.code)
				}
			})
		}
		// Nothing above created anything.
		if l := e.MustDo(200, "GET", "/api/v1/assistants", nil)["data"].([]any); len(l) != 1 {
			t.Fatalf("%d assistants after refused requests, want 1", len(l))
		}
		if l := e.MustDo(200, "GET", "/api/v1/conversations", nil)["data"].([]any); len(l) != 0 {
			t.Fatalf("%d conversations after refused requests, want 0", len(l))
		}
	})
}

func TestWorkspacesAreIsolated(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		aid := e.CreateAssistant("Mine", "You are mine.")
		conv := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api", "customer_id": "secret-customer"})
		cid := conv["id"].(string)
		e.MustDo(200, "POST", "/api/v1/conversations/"+cid+"/messages", map[string]any{"text": "private words"})

		other, _ := e.NewKey("other")
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/api/v1/assistants/" + aid, ""},
			{"PATCH", "/api/v1/assistants/" + aid, `{"name":"stolen"}`},
			{"DELETE", "/api/v1/assistants/" + aid, ""},
			{"GET", "/api/v1/conversations/" + cid, ""},
			{"GET", "/api/v1/conversations/" + cid + "/messages", ""},
			{"POST", "/api/v1/conversations/" + cid + "/messages", `{"text":"hi"}`},
			{"POST", "/api/v1/conversations/" + cid + "/handoff", ""},
			{"POST", "/api/v1/conversations/" + cid + "/resume", ""},
			{"POST", "/api/v1/conversations/" + cid + "/end", ""},
			{"POST", "/api/v1/conversations", `{"assistant_id":"` + aid + `","type":"api"}`},
		} {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			if r := e.DoWith(other, tc.method, tc.path, body, nil); r.Status != 404 {
				t.Errorf("%s %s from another workspace: %d %s", tc.method, tc.path, r.Status, r.Body)
			}
		}
		for _, path := range []string{"/api/v1/conversations", "/api/v1/conversations?q=private", "/api/v1/conversations?customer=secret-customer", "/api/v1/assistants"} {
			r := e.DoWith(other, "GET", path, nil, nil)
			if !bytes.Contains(r.Body, []byte(`"data":[]`)) {
				t.Errorf("GET %s from another workspace shows data: %s", path, r.Body)
			}
		}
		for _, path := range []string{"/api/v1/conversations/export?format=csv", "/api/v1/conversations/export?format=jsonl"} {
			r := e.DoWith(other, "GET", path, nil, nil)
			if bytes.Contains(r.Body, []byte("private")) || bytes.Contains(r.Body, []byte(cid)) {
				t.Errorf("%s from another workspace leaks: %s", path, r.Body)
			}
		}
		if m := e.DoWith(other, "GET", "/api/v1/metrics", nil, nil); !bytes.Contains(m.Body, []byte(`"total_conversations":0`)) {
			t.Errorf("metrics of another workspace: %s", m.Body)
		}
		// And the owner still sees everything unchanged.
		d := e.MustDo(200, "GET", "/api/v1/conversations/"+cid, nil)
		if d["status"] != "active" || d["message_count"].(float64) != 2 {
			t.Fatalf("owner's conversation changed: %v", d)
		}
		if a := e.MustDo(200, "GET", "/api/v1/assistants/"+aid, nil); a["name"] != "Mine" {
			t.Fatalf("owner's assistant changed: %v", a)
		}
	})
}

func TestAssistantCRUDAndVersions(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		a := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{
			"name": "Bob", "system_prompt": "You are Bob.", "model": "builtin", "temperature": 0.2,
			"tools": []any{"schedule_appointment"}, "extract": []any{map[string]any{"name": "email", "description": "customer email", "type": "email"}},
		})
		id := a["id"].(string)
		if a["version"].(float64) != 1 || a["temperature"].(float64) != 0.2 {
			t.Fatalf("created: %v", a)
		}
		u := e.MustDo(200, "PATCH", "/api/v1/assistants/"+id, map[string]any{"name": "Bobby"})
		if u["name"] != "Bobby" || u["version"].(float64) != 1 || u["system_prompt"] != "You are Bob." {
			t.Fatalf("renaming changed more than the name: %v", u)
		}
		u = e.MustDo(200, "PATCH", "/api/v1/assistants/"+id, map[string]any{"system_prompt": "You are Bobby."})
		if u["version"].(float64) != 2 {
			t.Fatalf("a new prompt did not make a new version: %v", u)
		}
		if l := e.MustDo(200, "GET", "/api/v1/assistants", nil)["data"].([]any); len(l) != 1 {
			t.Fatalf("list: %v", l)
		}
		if r := e.Do("DELETE", "/api/v1/assistants/"+id, nil); r.Status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		if r := e.Do("GET", "/api/v1/assistants/"+id, nil); r.Status != 404 {
			t.Fatalf("deleted assistant still answers: %d", r.Status)
		}
	})
}

func TestStreamingDeliversEventsInOrder(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		aid := e.CreateAssistant("Ava", "You are Ava.")
		c := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "test"})
		r := e.DoWith(e.Key, "POST", "/api/v1/conversations/"+c["id"].(string)+"/messages", `{"text":"Hello"}`, http.Header{"Accept": {"text/event-stream"}})
		if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("stream: %d %s", r.Status, r.Header.Get("Content-Type"))
		}
		var names []string
		var text strings.Builder
		var final string
		sc := bufio.NewScanner(bytes.NewReader(r.Body))
		var event string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
				if len(names) == 0 || names[len(names)-1] != event {
					names = append(names, event)
				}
			case strings.HasPrefix(line, "data: "):
				var d map[string]any
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
					t.Fatalf("data: %v", err)
				}
				if event == "delta" {
					text.WriteString(d["text"].(string))
				}
				if event == "message" && d["role"] == "assistant" {
					final = d["text"].(string)
				}
			}
		}
		if fmt.Sprint(names) != "[message delta message done]" {
			t.Fatalf("event order: %v", names)
		}
		if text.String() != final || final == "" {
			t.Fatalf("deltas %q do not add up to the stored reply %q", text.String(), final)
		}
	})
}

func TestRateLimitPerKey(t *testing.T) {
	e := testenv.New(t, func(c *app.Config) { c.APIRateLimit = 5 })
	limited := 0
	var retryAfter string
	for i := 0; i < 40; i++ {
		r := e.Do("GET", "/api/v1/assistants", nil)
		if r.Status == http.StatusTooManyRequests {
			limited++
			retryAfter = r.Header.Get("Retry-After")
			if !bytes.Contains(r.Body, []byte(`"rate_limited"`)) {
				t.Fatalf("429 body: %s", r.Body)
			}
		}
	}
	if limited == 0 || retryAfter == "" {
		t.Fatalf("40 quick requests at 5/s: %d limited, Retry-After %q", limited, retryAfter)
	}
	// Another key has its own budget.
	other, _ := e.NewKey("default")
	if r := e.DoWith(other, "GET", "/api/v1/assistants", nil, nil); r.Status != 200 {
		t.Fatalf("a second key was limited by the first: %d", r.Status)
	}
}

// TestRetentionDeletesWhatItShouldAndNoMore ages conversations by rewriting their activity time,
// then checks retention removes exactly the old ones of its own workspace, with their messages.
func TestRetentionDeletesWhatItShouldAndNoMore(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		aid := e.CreateAssistant("A", "You are A.")
		mk := func(key, customer string) string {
			r := e.DoWith(key, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api", "customer_id": customer}, nil)
			if key != e.Key {
				return ""
			}
			id := r.JSON(t)["id"].(string)
			e.MustDo(200, "POST", "/api/v1/conversations/"+id+"/messages", map[string]any{"text": "hello " + customer})
			return id
		}
		old1, old2, fresh := mk(e.Key, "old-1"), mk(e.Key, "old-2"), mk(e.Key, "fresh")
		age := func(id string, days int) {
			at := time.Now().AddDate(0, 0, -days).UnixMilli()
			if _, err := e.App.Store.DB().Exec(`UPDATE conversations SET last_message_at = $1 WHERE id = $2`, at, id); err != nil {
				t.Fatal(err)
			}
		}
		age(old1, 40)
		age(old2, 31)
		age(fresh, 29)
		// Another workspace's old conversation is not this workspace's retention's business.
		otherKey, _ := e.NewKey("other")
		oa := e.DoWith(otherKey, "POST", "/api/v1/assistants", map[string]any{"name": "O", "model": "builtin"}, nil).JSON(t)["id"].(string)
		oc := e.DoWith(otherKey, "POST", "/api/v1/conversations", map[string]any{"assistant_id": oa, "type": "api"}, nil).JSON(t)["id"].(string)
		age(oc, 400)

		if r := e.Do("POST", "/api/v1/retention/run", nil); r.Status != 409 {
			t.Fatalf("retention run while off: %d %s", r.Status, r.Body)
		}
		if r := e.Do("PATCH", "/api/v1/settings", map[string]any{"retention_days": -1}); r.Status != 422 {
			t.Fatalf("negative retention: %d", r.Status)
		}
		e.MustDo(200, "PATCH", "/api/v1/settings", map[string]any{"retention_days": 30})
		if s := e.MustDo(200, "GET", "/api/v1/settings", nil); s["retention_days"].(float64) != 30 {
			t.Fatalf("settings: %v", s)
		}
		d := e.MustDo(200, "POST", "/api/v1/retention/run", nil)
		if d["deleted_conversations"].(float64) != 2 || d["deleted_messages"].(float64) != 4 {
			t.Fatalf("retention deleted %v", d)
		}
		for id, want := range map[string]int{old1: 404, old2: 404, fresh: 200} {
			if r := e.Do("GET", "/api/v1/conversations/"+id, nil); r.Status != want {
				t.Fatalf("conversation %s: %d, want %d", id, r.Status, want)
			}
		}
		if r := e.Do("GET", "/api/v1/conversations?q=hello", nil); bytes.Contains(r.Body, []byte("old-1")) || !bytes.Contains(r.Body, []byte("fresh")) {
			t.Fatalf("text search after retention: %s", r.Body)
		}
		if r := e.DoWith(otherKey, "GET", "/api/v1/conversations/"+oc, nil, nil); r.Status != 200 {
			t.Fatalf("retention reached another workspace: %d", r.Status)
		}

		// A customer's data on request: every conversation of theirs, nobody else's.
		e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api", "customer_id": "15551234567"})
		e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "test", "customer_id": "15551234567"})
		del := e.MustDo(200, "DELETE", "/api/v1/customers/"+url.PathEscape("+1 555 123 4567"), nil)
		if del["deleted_conversations"].(float64) != 2 {
			t.Fatalf("customer deletion: %v", del)
		}
		if l := e.MustDo(200, "GET", "/api/v1/conversations?customer=15551234567", nil)["data"].([]any); len(l) != 0 {
			t.Fatalf("customer still has conversations: %v", l)
		}
		if r := e.Do("GET", "/api/v1/conversations/"+fresh, nil); r.Status != 200 {
			t.Fatalf("deleting a customer removed another: %d", r.Status)
		}

		// The admin actions above are in the audit log, newest first; customer traffic is not.
		log := e.MustDo(200, "GET", "/api/v1/audit-log", nil)["data"].([]any)
		var actions []string
		for _, entry := range log {
			m := entry.(map[string]any)
			actions = append(actions, m["action"].(string))
			if !strings.HasPrefix(m["actor"].(string), "key:") {
				t.Fatalf("audit actor: %v", m)
			}
		}
		want := []string{"DELETE /api/v1/customers/{customer}", "POST /api/v1/retention/run", "PATCH /api/v1/settings", "POST /api/v1/assistants"}
		if fmt.Sprint(actions) != fmt.Sprint(want) {
			t.Fatalf("audit log %v, want %v", actions, want)
		}
		if l := e.DoWith(otherKey, "GET", "/api/v1/audit-log", nil, nil).JSON(t)["data"].([]any); len(l) != 1 {
			t.Fatalf("the other workspace's audit log: %v", l)
		}
	})
}
