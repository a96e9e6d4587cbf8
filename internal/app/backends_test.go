package app_test

import (
	"strings"
	"testing"

	"github.com/parley-hq/parley/internal/testenv"
)

// TestRuntimeOnEveryBackend runs the runtime's stored features — knowledge bases (full-text search
// on FTS5 or tsvector), the offline answer from a passage, prices — on SQLite and PostgreSQL.
func TestRuntimeOnEveryBackend(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		kb := e.MustDo(201, "POST", "/api/v1/knowledge-bases", map[string]any{"name": "Help"})
		kbID := kb["id"].(string)
		e.MustDo(201, "POST", "/api/v1/knowledge-bases/"+kbID+"/documents", map[string]any{"title": "FAQ",
			"content": "# Opening hours\n\nWe are open Monday to Friday from 9am to 6pm, and on Saturday from 10am to 2pm.\n\n# Returns\n\nYou can return any item within 30 days of delivery for a full refund."})
		hits := e.MustDo(200, "GET", "/api/v1/knowledge-bases/"+kbID+"/search?q=returning+items", nil)["data"].([]any)
		if len(hits) == 0 || !strings.Contains(hits[0].(map[string]any)["content"].(string), "30 days") {
			t.Fatalf("search: %v", hits)
		}
		a := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Kb", "system_prompt": "You are Kb.", "model": "builtin", "knowledge_base_ids": []string{kbID}})
		c := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": a["id"], "type": "test"})
		msgs := e.MustDo(200, "POST", "/api/v1/conversations/"+c["id"].(string)+"/messages", map[string]any{"text": "Are you open on Saturday?"})["messages"].([]any)
		if text := msgs[len(msgs)-1].(map[string]any)["text"].(string); !strings.Contains(text, "Saturday from 10am to 2pm") {
			t.Fatalf("offline answer: %q", text)
		}
		e.MustDo(200, "PUT", "/api/v1/prices/my-model", map[string]any{"input_per_million_usd": 1.5, "output_per_million_usd": 2})
		found := false
		for _, p := range e.MustDo(200, "GET", "/api/v1/prices", nil)["data"].([]any) {
			if p.(map[string]any)["model"] == "my-model" {
				found = true
			}
		}
		if !found {
			t.Fatal("a set price is not listed")
		}
	})
}
