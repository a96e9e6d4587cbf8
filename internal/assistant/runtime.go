package assistant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/llm"
	"github.com/parley-hq/parley/internal/tools"
)

// ProviderResolver finds the provider that serves a model for a workspace.
type ProviderResolver interface {
	Provider(ctx context.Context, workspaceID, model string) (llm.Provider, error)
}

// PriceBook turns usage into integer micro-dollars.
type PriceBook interface {
	Cost(ctx context.Context, workspaceID, model string, u llm.Usage) int64
}

// Turn is the input of one run: the assistant, the conversation so far (oldest first, ending with
// the customer's new message) and the variables known.
type Turn struct {
	Assistant      *Assistant
	ConversationID string
	History        []llm.Message
	Variables      map[string]string
}

// ToolCallRecord is a tool call with its result, as stored on the round's message.
type ToolCallRecord struct {
	ID        string
	Name      string
	Arguments string
	Result    string
}

// Step is one round's outcome: the model's text and tool calls with their results and effects, or
// a failure (Err set, Text the fallback for the customer).
type Step struct {
	Text       string
	ToolCalls  []ToolCallRecord
	Usage      llm.Usage
	CostMicros int64
	LatencyMS  int64
	Effects    tools.Effects
	Err        error
	Version    int
}

// Sink receives a turn as it happens: text deltas for streaming, and each completed step to store.
type Sink interface {
	Delta(text string)
	Step(ctx context.Context, s Step) error
}

// Runtime runs turns.
type Runtime struct {
	Providers ProviderResolver
	Prices    PriceBook
	Knowledge tools.Searcher
	MaxRounds int
	Log       *slog.Logger
}

// Run runs the turn loop: model → tools → model …, bounded by MaxRounds. A model failure is not an
// error of Run: it becomes a failed step carrying the assistant's fallback text.
func (r *Runtime) Run(ctx context.Context, t Turn, sink Sink) error {
	a := t.Assistant
	maxRounds := r.MaxRounds
	if maxRounds <= 0 {
		maxRounds = 8
	}
	env := &tools.Env{KnowledgeBaseIDs: a.KnowledgeBaseIDs, Knowledge: r.Knowledge, WorkspaceID: a.WorkspaceID, ConversationID: t.ConversationID}
	for _, f := range a.Extract {
		env.Extract = append(env.Extract, tools.Field{Name: f.Name, Description: f.Description, Type: f.Type, Pattern: f.Pattern})
	}
	req := llm.Request{Model: a.Model, Temperature: a.Temperature, Tools: tools.Definitions(env, enabledBuiltins(a.Tools))}
	req.Messages = append([]llm.Message{{Role: "system", Content: systemPrompt(a, t.Variables)}}, t.History...)

	provider, err := r.Providers.Provider(ctx, a.WorkspaceID, a.Model)
	if err != nil {
		return sink.Step(ctx, r.failed(a, fmt.Errorf("model %q: %w", a.Model, err)))
	}
	for round := 0; round < maxRounds; round++ {
		start := time.Now()
		resp, err := provider.Chat(ctx, req, sink.Delta)
		latency := time.Since(start).Milliseconds()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return sink.Step(ctx, r.failed(a, err))
		}
		step := Step{Text: resp.Content, Usage: resp.Usage, LatencyMS: latency, Version: a.Version}
		if r.Prices != nil {
			step.CostMicros = r.Prices.Cost(ctx, a.WorkspaceID, a.Model, resp.Usage)
		}
		if len(resp.ToolCalls) == 0 {
			return sink.Step(ctx, step)
		}
		assistantMsg := llm.Message{Role: "assistant", Content: resp.Content, ToolCalls: resp.ToolCalls}
		var results []llm.Message
		for _, tc := range resp.ToolCalls {
			result, fx := tools.Call(ctx, env, tc.Name, tc.Arguments)
			step.Effects.Merge(fx)
			step.ToolCalls = append(step.ToolCalls, ToolCallRecord{ID: tc.ID, Name: tc.Name, Arguments: tc.Arguments, Result: result})
			results = append(results, llm.Message{Role: "tool", ToolCallID: tc.ID, Name: tc.Name, Content: result})
		}
		if err := sink.Step(ctx, step); err != nil {
			return err
		}
		req.Messages = append(req.Messages, assistantMsg)
		req.Messages = append(req.Messages, results...)
	}
	return sink.Step(ctx, r.failed(a, fmt.Errorf("the model kept calling tools for %d rounds", maxRounds)))
}

func (r *Runtime) failed(a *Assistant, err error) Step {
	if r.Log != nil {
		r.Log.Warn("assistant turn failed", "assistant", a.ID, "model", a.Model, "err", err)
	}
	text := a.FallbackText
	if text == "" {
		text = DefaultFallback
	}
	return Step{Text: text, Err: err, Version: a.Version}
}

// ErrTurnFailed marks a step that failed.
var ErrTurnFailed = errors.New("assistant turn failed")

func systemPrompt(a *Assistant, vars map[string]string) string {
	var b strings.Builder
	b.WriteString(a.SystemPrompt)
	if len(vars) > 0 {
		names := make([]string, 0, len(vars))
		for n := range vars {
			names = append(names, n)
		}
		sort.Strings(names)
		b.WriteString("\n\nKnown details about this conversation:\n")
		for _, n := range names {
			fmt.Fprintf(&b, "- %s: %s\n", n, vars[n])
		}
	}
	return b.String()
}

// enabledBuiltins lists the built-in tool names in an assistant's tools array.
func enabledBuiltins(raw json.RawMessage) []string {
	var items []json.RawMessage
	_ = json.Unmarshal(raw, &items)
	var names []string
	for _, it := range items {
		var s string
		if json.Unmarshal(it, &s) == nil {
			names = append(names, s)
		}
	}
	return names
}

// Providers resolves "builtin" to the offline model and every other model to the default
// OpenAI-compatible provider, when one is configured.
type Providers struct {
	Default llm.Provider
}

// Provider returns the provider for model.
func (p Providers) Provider(_ context.Context, _ string, model string) (llm.Provider, error) {
	if model == llm.BuiltinModel {
		return llm.Builtin{}, nil
	}
	if p.Default == nil {
		return nil, llm.ErrNoProvider
	}
	return p.Default, nil
}

// StaticPrices is a price table in micro-dollars per million tokens.
type StaticPrices map[string][2]int64

// DefaultPrices are list prices of common models (USD per million tokens, input/output, as micros).
var DefaultPrices = StaticPrices{
	"builtin":       {0, 0},
	"gpt-4o":        {2_500_000, 10_000_000},
	"gpt-4o-mini":   {150_000, 600_000},
	"gpt-4.1":       {2_000_000, 8_000_000},
	"gpt-4.1-mini":  {400_000, 1_600_000},
	"gpt-4.1-nano":  {100_000, 400_000},
	"gpt-5":         {1_250_000, 10_000_000},
	"gpt-5-mini":    {250_000, 2_000_000},
	"gpt-5-nano":    {50_000, 400_000},
	"o4-mini":       {1_100_000, 4_400_000},
	"gpt-3.5-turbo": {500_000, 1_500_000},
}

// Cost prices usage; unknown models cost nothing (and are visible as zero-cost in the dashboard).
func (p StaticPrices) Cost(_ context.Context, _ string, model string, u llm.Usage) int64 {
	price, ok := p[model]
	if !ok {
		return 0
	}
	return CostMicros(price[0], price[1], u)
}

// CostMicros computes integer micro-dollars from per-million prices, rounding once at the end.
func CostMicros(inPerMillion, outPerMillion int64, u llm.Usage) int64 {
	return (u.InputTokens*inPerMillion + u.OutputTokens*outPerMillion + 500_000) / 1_000_000
}
