package api_test

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/parley-hq/parley/internal/testenv"
)

// FuzzAPIBodies sends arbitrary bodies and query strings to the API's write and list endpoints:
// whatever arrives, the answer is never a 5xx, and every refusal is the contract's JSON error.
func FuzzAPIBodies(f *testing.F) {
	e := testenv.New(f)
	aid := e.CreateAssistant("Fuzz", "You are a fuzz target.")
	conv := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api"})
	cid := conv["id"].(string)
	for _, seed := range []struct{ body, query string }{
		{`{"name":"a","model":"builtin"}`, "type=api"},
		{`{"text":"hello"}`, "q=hello&limit=5"},
		{`{"assistant_id":"` + aid + `","type":"test","variables":{"a":1,"b":true,"c":null}}`, "from=2026-01-01&to=2026-12-31"},
		{`{"text":"x","role":"agent"}`, "cursor=djE6MTox"},
		{`{"name":`, "limit=-1"},
		{`[]`, "type=whatsapp,,api&status=ended"},
		{`{"temperature":"hot"}`, "q=%22OR%22*&customer=%2B1%20555"},
		{`{"tools":[{"name":""}],"extract":[{"name":"9x"}]}`, "from=2026-13-45"},
		{"\x00\xff{", "q=\x00"},
	} {
		f.Add([]byte(seed.body), seed.query)
	}
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		e := e.With(t)
		for _, path := range []string{"/api/v1/assistants", "/api/v1/conversations", "/api/v1/conversations/" + cid + "/messages", "/api/v1/assistants/" + aid} {
			method := "POST"
			if path == "/api/v1/assistants/"+aid {
				method = "PATCH"
			}
			check(t, e.Do(method, path, body))
		}
		q := url.PathEscape(query)
		if v, err := url.ParseQuery(query); err == nil {
			q = v.Encode()
		}
		for _, path := range []string{"/api/v1/conversations?", "/api/v1/metrics?", "/api/v1/conversations/export?format=jsonl&"} {
			check(t, e.Do("GET", path+q, nil))
		}
	})
}

func check(t *testing.T, r *testenv.Response) {
	t.Helper()
	if r.Status >= 500 {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	if r.Status >= 400 {
		var body struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(r.Body, &body); err != nil || body.Error.Code == "" || body.Error.Message == "" {
			t.Fatalf("status %d without the JSON error: %s", r.Status, r.Body)
		}
	}
}
