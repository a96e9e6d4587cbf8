package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/llm/llmtest"
)

// BenchmarkTurn measures one customer message through the API to the stored reply, with a model
// that answers at once (a local OpenAI-compatible fake streaming its reply): what Parley adds to a
// turn. "parley-ms/op" excludes the time the fake itself spent answering.
func BenchmarkTurn(b *testing.B) {
	for _, bc := range []struct {
		name   string
		model  string
		stream bool
		tools  bool
	}{
		{"openai", "gpt-4o-mini", false, false},
		{"openai-sse", "gpt-4o-mini", true, false},
		{"openai-tool-round", "gpt-4o-mini", false, true},
		{"builtin", "builtin", false, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fake := llmtest.New(b)
			e := newRuntimeEnv(b, fake)
			aid := createAssistant(b, e, map[string]any{"model": bc.model})
			cid := newConversation(b, e, aid)
			reply := llmtest.Text("We open at 9am on weekdays and 10am on Saturdays.", 120, 14)
			fake.Default = reply
			if bc.tools {
				fake.Default = llmtest.Reply{Func: func(req map[string]any) llmtest.Reply {
					msgs := req["messages"].([]any)
					if msgs[len(msgs)-1].(map[string]any)["role"] == "tool" {
						return reply
					}
					return llmtest.Reply{Calls: []llmtest.Call{{ID: "call_1", Name: "set_variable", Arguments: `{"name":"topic","value":"hours"}`}}, Usage: &[2]int64{120, 20}}
				}}
			}
			hdr := http.Header{}
			if bc.stream {
				hdr.Set("Accept", "text/event-stream")
			}
			// Warm up: a conversation with some history, as in real use.
			for range 10 {
				post(b, e, cid, "When do you open?")
			}
			fakeBefore := fake.ChatTime()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				r := e.DoWith(e.Key, "POST", "/api/v1/conversations/"+cid+"/messages", map[string]any{"text": "When do you open?"}, hdr)
				if r.Status != 200 {
					b.Fatalf("status %d: %s", r.Status, r.Body)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			model := fake.ChatTime() - fakeBefore
			b.ReportMetric(float64(elapsed-model)/float64(b.N)/1e6, "parley-ms/op")
		})
	}
}
