package llm

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

var allTools = []ToolDef{{Name: "set_variable"}, {Name: "transfer_to_human"}, {Name: "end_conversation"}, {Name: "search_knowledge"}}

func TestBuiltinToolCalls(t *testing.T) {
	for _, tc := range []struct {
		name  string
		text  string
		tools []ToolDef
		want  map[string]string // tool name → one expected argument value
	}{
		{"asks for a human", "Can I talk to a human please", allTools, map[string]string{"transfer_to_human": "The customer asked to talk to a person."}},
		{"asks for an agent", "get me an AGENT", allTools, map[string]string{"transfer_to_human": ""}},
		{"human without the tool", "I want a person", nil, nil},
		{"email", "my email is jo.doe+x@example.co.uk thanks", allTools, map[string]string{"set_variable": "jo.doe+x@example.co.uk"}},
		{"order id", "where is ORD-12345", allTools, map[string]string{"set_variable": "ORD-12345"}},
		{"phone", "call me on +44 20 7946 0958", allTools, map[string]string{"set_variable": "+442079460958"}},
		{"question searches knowledge", "What are your opening hours?", allTools, map[string]string{"search_knowledge": "What are your opening hours?"}},
		{"question without knowledge", "What are your opening hours?", allTools[:3], nil},
		{"greeting", "hello", allTools, nil},
		{"agentic is not agent", "the agentic workflow broke", allTools[:3], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := Builtin{}.Chat(context.Background(), Request{Messages: []Message{{Role: "user", Content: tc.text}}, Tools: tc.tools}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.ToolCalls) != len(tc.want) {
				t.Fatalf("calls %v, want %v", resp.ToolCalls, tc.want)
			}
			for _, call := range resp.ToolCalls {
				want, ok := tc.want[call.Name]
				if !ok {
					t.Fatalf("unexpected call %s", call.Name)
				}
				var args map[string]string
				if err := json.Unmarshal([]byte(call.Arguments), &args); err != nil {
					t.Fatalf("arguments %q: %v", call.Arguments, err)
				}
				if want != "" && args["value"] != want && args["reason"] != want && args["query"] != want {
					t.Fatalf("arguments %v, want a value %q", args, want)
				}
			}
			if len(resp.ToolCalls) == 0 && resp.Content == "" {
				t.Fatal("no tool call and no reply")
			}
		})
	}
}

func TestBuiltinRepliesAfterTools(t *testing.T) {
	sys := Message{Role: "system", Content: "You are Ava, the helper of Acme. Be kind."}
	for _, tc := range []struct {
		name    string
		results []Message
		want    string
	}{
		{"transfer", []Message{{Role: "tool", Name: "transfer_to_human", Content: `{"ok":true}`}}, "connecting you"},
		{"knowledge passage", []Message{{Role: "tool", Name: "search_knowledge", Content: `{"results":[{"content":"We open at 9am."}]}`}}, "We open at 9am."},
		{"no passage falls back to persona", []Message{{Role: "tool", Name: "search_knowledge", Content: `{"results":[]}`}}, "I'm Ava, the helper of Acme."},
		{"noted variable", []Message{{Role: "tool", Name: "set_variable", Content: `{"ok":true,"name":"order_id","value":"ORD-1"}`}}, "noted your order id ORD-1"},
		{"rejected variable is not claimed", []Message{{Role: "tool", Name: "set_variable", Content: `{"ok":false,"error":"bad"}`}}, "Could you tell me"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := append([]Message{sys, {Role: "user", Content: "question"}, {Role: "assistant", ToolCalls: []ToolCall{{ID: "1"}}}}, tc.results...)
			var streamed strings.Builder
			resp, err := Builtin{}.Chat(context.Background(), Request{Messages: msgs, Tools: allTools}, func(s string) { streamed.WriteString(s) })
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(resp.Content, tc.want) {
				t.Fatalf("reply %q, want it to contain %q", resp.Content, tc.want)
			}
			if streamed.String() != resp.Content {
				t.Fatalf("streamed %q != content %q", streamed.String(), resp.Content)
			}
			if resp.Usage.InputTokens == 0 || resp.Usage.OutputTokens == 0 {
				t.Fatalf("usage %+v", resp.Usage)
			}
		})
	}
}

func TestBuiltinIsDeterministic(t *testing.T) {
	req := Request{Messages: []Message{{Role: "system", Content: "You are X."}, {Role: "user", Content: "Hi, order ORD-999 for bob@example.com"}}, Tools: allTools}
	a, _ := Builtin{}.Chat(context.Background(), req, nil)
	b, _ := Builtin{}.Chat(context.Background(), req, nil)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("two answers differ:\n%s\n%s", ja, jb)
	}
}

func TestEstimateTokens(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "a": 1, "abcd": 1, "abcde": 2, "héllo wörld": 3} {
		if got := EstimateTokens(in); got != want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", in, got, want)
		}
	}
}
