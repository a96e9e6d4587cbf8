package assistant

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parley-hq/parley/internal/llm"
	"github.com/parley-hq/parley/internal/tools"
)

func roles(msgs []llm.Message) string {
	var b []string
	for _, m := range msgs {
		b = append(b, m.Role[:1])
	}
	return strings.Join(b, "")
}

func msgs(pattern string) []llm.Message {
	var out []llm.Message
	for i, r := range pattern {
		m := llm.Message{Content: string(rune('a' + i))}
		switch r {
		case 's':
			m.Role = "system"
		case 'u':
			m.Role = "user"
		case 'a':
			m.Role = "assistant"
		case 't':
			m.Role = "tool"
		}
		out = append(out, m)
	}
	return out
}

func TestTrimOldest(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"suauaua", "suaua", true},     // drops the oldest exchange (about half of what precedes the last question)
		{"suatauauatu", "suatu", true}, // cuts only where a user message starts, never at a tool result
		{"su", "su", false},            // nothing older than the question
		{"suatat", "suatat", false},    // the current turn's tool rounds are never cut
		{"saua", "sua", true},          // an agent's greeting before the first question goes
		{"uauau", "uau", true},         // no system prompt
		{"suauauauauauauau", "suauauau", true},
	}
	for _, tc := range cases {
		got, ok := trimOldest(msgs(tc.in))
		if roles(got) != tc.want || ok != tc.ok {
			t.Errorf("trimOldest(%s) = %s %v, want %s %v", tc.in, roles(got), ok, tc.want, tc.ok)
		}
		if ok && got[len(got)-1].Content != msgs(tc.in)[len(tc.in)-1].Content {
			t.Errorf("trimOldest(%s) lost the newest message", tc.in)
		}
	}
}

func TestFitContext(t *testing.T) {
	req := llm.Request{Messages: msgs("suauauauau")}
	for i := range req.Messages {
		req.Messages[i].Content = strings.Repeat("word ", 100) // ~125 tokens each
	}
	got := fitContext(req, 400)
	if len(got) >= len(req.Messages) || got[0].Role != "system" || got[1].Role != "user" {
		t.Fatalf("fitted to %s", roles(got))
	}
	if llm.EstimateRequestTokens(llm.Request{Messages: got}) > 400 && len(got) > 2 {
		t.Fatalf("still over budget with %s", roles(got))
	}
}

func TestCosts(t *testing.T) {
	if got := CostMicros(2_500_000, 10_000_000, llm.Usage{InputTokens: 1000, OutputTokens: 100}); got != 3500 {
		t.Fatalf("CostMicros = %d", got)
	}
	if got := CostMicros(150_000, 600_000, llm.Usage{InputTokens: 1, OutputTokens: 0}); got != 0 {
		t.Fatalf("sub-micro cost rounds to %d", got) // 0.15 µ$ → 0
	}
	if got := MinuteCostMicros(6_000, 90); got != 9_000 {
		t.Fatalf("MinuteCostMicros = %d", got)
	}
	if got := MinuteCostMicros(6_000, 0.5); got != 50 {
		t.Fatalf("half a second = %d", got)
	}
	if got := DefaultPrices.Cost(context.Background(), "", "gpt-4o-2024-08-06", llm.Usage{InputTokens: 1_000_000}); got != 2_500_000 {
		t.Fatalf("dated model name priced %d", got)
	}
	if got := DefaultPrices.Cost(context.Background(), "", "gpt-4o-mini-2024-07-18", llm.Usage{InputTokens: 1_000_000}); got != 150_000 {
		t.Fatalf("longest prefix not used: %d", got)
	}
	if got := DefaultPrices.Cost(context.Background(), "", "llama3", llm.Usage{InputTokens: 1_000_000}); got != 0 {
		t.Fatalf("unknown model priced %d", got)
	}
}

type memPrices map[string]Price

func (m memPrices) WorkspacePrice(_ context.Context, ws, model string) (*Price, error) {
	if p, ok := m[ws+"/"+model]; ok {
		return &p, nil
	}
	return nil, nil
}
func (m memPrices) WorkspacePrices(context.Context, string) ([]Price, error) { return nil, nil }
func (m memPrices) SetWorkspacePrice(context.Context, string, Price) error   { return nil }

func TestPricesPreferTheWorkspace(t *testing.T) {
	p := &Prices{Repo: memPrices{"w1/gpt-4o": {Model: "gpt-4o", InputMicros: 1_000_000, OutputMicros: 1_000_000}}}
	u := llm.Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000}
	if got := p.Cost(context.Background(), "w1", "gpt-4o", u); got != 2_000_000 {
		t.Fatalf("workspace price: %d", got)
	}
	if got := p.Cost(context.Background(), "w2", "gpt-4o", u); got != 12_500_000 {
		t.Fatalf("default price: %d", got)
	}
	if got := p.Cost(context.Background(), "w1", llm.BuiltinModel, u); got != 0 {
		t.Fatalf("builtin costs %d", got)
	}
}

func TestBuiltinExtract(t *testing.T) {
	fields := []tools.Field{{Name: "email", Type: "email"}, {Name: "phone", Type: "phone"}, {Name: "visit", Type: "date"},
		{Name: "order_id", Type: "string"}, {Name: "code", Type: "string", Pattern: `^[A-Z]{3}\d{2}$`}, {Name: "notes", Type: "string"}}
	history := []llm.Message{
		{Role: "user", Content: "I'm at old@example.com, order ACME-1042"},
		{Role: "assistant", Content: "Your email is support@acme.test?"},
		{Role: "user", Content: "No, new@example.com. Call +44 20 7946 0958 on 2026-12-04, code XYZ42"},
	}
	got := builtinExtract(fields, history)
	want := map[string]string{"email": "new@example.com", "phone": "+442079460958", "visit": "2026-12-04", "order_id": "ACME-1042", "code": "XYZ42"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["notes"]; ok {
		t.Errorf("free text extracted offline: %q", got["notes"])
	}
}

func TestParseExtraction(t *testing.T) {
	cases := []struct {
		resp llm.Response
		want string
	}{
		{llm.Response{ToolCalls: []llm.ToolCall{{Name: "save_variables", Arguments: `{"plan":"Pro","seats":12,"vip":true}`}}}, "plan=Pro seats=12 vip=true"},
		{llm.Response{Content: "Here you go: {\"plan\": \"Basic\"} — done."}, "plan=Basic"},
		{llm.Response{Content: "I found nothing."}, ""},
	}
	for _, tc := range cases {
		got := parseExtraction(tc.resp)
		var parts []string
		for _, k := range []string{"plan", "seats", "vip"} {
			if v, ok := got[k]; ok {
				parts = append(parts, k+"="+v)
			}
		}
		if strings.Join(parts, " ") != tc.want {
			t.Errorf("parseExtraction(%+v) = %v, want %s", tc.resp, got, tc.want)
		}
	}
}

type memWorkspaces map[string]ProviderConfig

func (m memWorkspaces) WorkspaceProvider(_ context.Context, ws string) (ProviderConfig, error) {
	if c, ok := m[ws]; ok {
		return c, nil
	}
	return ProviderConfig{}, ErrNoWorkspaceProvider
}

func TestResolver(t *testing.T) {
	ctx := context.Background()
	r := &Resolver{Default: ProviderConfig{BaseURL: "http://default.test/v1", APIKey: "d", TranscribeModel: "whisper-1", VisionModel: "gpt-4o"},
		Workspaces: memWorkspaces{"w1": {BaseURL: "http://own.test/v1", APIKey: "o", VisionModel: ""}}}
	if p, err := r.Provider(ctx, "w1", llm.BuiltinModel); err != nil || p != (llm.Builtin{}) {
		t.Fatalf("builtin: %v %v", p, err)
	}
	cfg, err := r.Settings(ctx, "w1")
	if err != nil || cfg.BaseURL != "http://own.test/v1" || cfg.APIKey != "o" || cfg.TranscribeModel != "whisper-1" || cfg.VisionModel != "gpt-4o" {
		t.Fatalf("workspace settings %+v %v", cfg, err)
	}
	if cfg, _ := r.Settings(ctx, "w2"); cfg.BaseURL != "http://default.test/v1" {
		t.Fatalf("default settings %+v", cfg)
	}
	a, _, _ := r.OpenAI(ctx, "w1")
	b, _, _ := r.OpenAI(ctx, "w1")
	c, _, _ := r.OpenAI(ctx, "w2")
	if a != b || a == c {
		t.Fatal("clients are not cached per provider")
	}
	none := &Resolver{}
	if _, err := none.Provider(ctx, "w1", "gpt-4o"); !errors.Is(err, llm.ErrNoProvider) {
		t.Fatalf("no provider: %v", err)
	}
	if p, err := none.Provider(ctx, "w1", llm.BuiltinModel); err != nil || p == nil {
		t.Fatalf("builtin needs no provider: %v", err)
	}
}
