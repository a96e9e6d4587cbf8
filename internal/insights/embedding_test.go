package insights_test

import (
	"net/url"
	"reflect"
	"testing"

	"github.com/parley-hq/parley/internal/llm/llmtest"
	"github.com/parley-hq/parley/internal/testenv"
)

// TestTopicsByEmbeddings configures the workspace's provider with an embedding model (the llmtest
// fake, whose embedding is a hashed bag of word stems: texts sharing words are near) and checks
// that topics are clusters of alike questions, named by the knowledge-base document nearest to
// them when one is near enough, else by their keywords; without the model, topics are offline again.
func TestTopicsByEmbeddings(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		fake := llmtest.New(t)
		e.MustDo(201, "POST", "/api/v1/providers", map[string]any{"base_url": fake.BaseURL(), "api_key": "sk-test", "embedding_model": "text-embedding-3-small"})
		kb := e.MustDo(201, "POST", "/api/v1/knowledge-bases", map[string]any{"name": "Help"})["id"].(string)
		docs := map[string]string{}
		for _, d := range []struct{ title, content string }{
			{"Opening hours", "We are open Monday to Friday from 9am to 6pm."},
			{"Returns and refunds", "You can return any item within 30 days for a full refund."},
		} {
			doc := e.MustDo(201, "POST", "/api/v1/knowledge-bases/"+kb+"/documents", map[string]any{"title": d.title, "content": d.content})
			if doc["embedded"] != true {
				t.Fatalf("document not embedded: %v", doc)
			}
			docs[d.title] = doc["id"].(string)
		}
		asst := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Support", "system_prompt": "You are Support.", "model": "builtin", "knowledge_base_ids": []string{kb}})["id"].(string)
		for _, q := range []string{
			"Where is my parcel?", "Where is my parcel?", "Where is my parcel now?", "Where is my parcel please?",
			"How do I reset my password?", "How do I reset my password again?",
			"Can I return an item for a refund?", "Return an item for a refund",
			"Are you open Monday to Friday?", "Are you open on Monday?",
		} {
			c := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": asst, "type": "api"})["id"].(string)
			e.MustDo(200, "POST", "/api/v1/conversations/"+c+"/messages", map[string]any{"text": q})
		}
		calls := fake.EmbedCalls()
		r := getReport(t, e, url.Values{})
		if r.Questions.Method != "embeddings" || r.Questions.Embedded != 9 || r.Questions.Scanned != 10 || r.Questions.Grouped != 10 {
			t.Fatalf("questions: %+v", r.Questions)
		}
		if fake.EmbedCalls() != calls+1 {
			t.Errorf("%d embedding requests for 9 texts, want 1 batch", fake.EmbedCalls()-calls)
		}
		type topic struct {
			Label, Kind, Doc string
			Count            int
		}
		var got []topic
		for _, tp := range r.Topics {
			got = append(got, topic{tp.Label, tp.Kind, tp.DocumentID, tp.Count})
		}
		// "are you open on monday" is 0.73 like "are you open monday to friday": below 0.8, its own
		// cluster, and too far (0.36) from the opening hours passage to take its title.
		want := []topic{
			{"parcel", "embeddings", "", 4},
			{"reset password", "embeddings", "", 2},
			{"Returns and refunds", "embeddings", docs["Returns and refunds"], 2},
			{"monday", "embeddings", "", 1},
			{"Opening hours", "embeddings", docs["Opening hours"], 1},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("topics:\n got  %+v\n want %+v", got, want)
		}

		// Without an embedding model the same questions are grouped offline.
		e.MustDo(204, "DELETE", "/api/v1/providers", nil)
		off := getReport(t, e, url.Values{})
		if off.Questions.Method != "keywords" || off.Questions.Embedded != 0 {
			t.Errorf("without a provider: %+v", off.Questions)
		}
	})
}
