package assistant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
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
	// AnswerHTTPTool, when set, answers the assistant's HTTP tools in place of calling them: a
	// replay's sandbox answers from the recorded conversation and never reaches the network.
	AnswerHTTPTool func(ctx context.Context, name, arguments string) string
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

// ToolHeaderSource opens the header values of an assistant's HTTP tools (tool → header → value).
type ToolHeaderSource interface {
	ToolHeaders(ctx context.Context, workspaceID, assistantID string) (map[string]map[string]string, error)
}

// ImageLoader fetches the bytes of an image a customer sent (from the blob store), so it can go to
// a vision model inline.
type ImageLoader interface {
	LoadImage(ctx context.Context, workspaceID string, img llm.Image) (llm.Image, error)
}

// Runtime runs turns.
type Runtime struct {
	Providers ProviderResolver
	Prices    PriceBook
	Knowledge tools.Searcher
	// HTTP runs HTTP tools; Headers opens their header values.
	HTTP    *tools.HTTPCaller
	Headers ToolHeaderSource
	// Images loads customers' images for vision models; MaxImages bounds how many of the latest
	// ones go with a request (default 4).
	Images    ImageLoader
	MaxImages int
	MaxRounds int
	// MaxContextTokens caps the estimated prompt; 0 uses the model's known context size.
	MaxContextTokens int64
	Log              *slog.Logger

	noVision sync.Map // model name → true once it refused image inputs
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
	httpTools := map[string]tools.HTTPTool{}
	if hts, err := tools.ParseHTTPTools(a.Tools); err == nil {
		for _, ht := range hts {
			httpTools[ht.Name] = ht
			req.Tools = append(req.Tools, ht.Def())
		}
	}
	history := append([]llm.Message(nil), t.History...)
	history = r.prepareImages(ctx, a, history)
	req.Messages = append([]llm.Message{{Role: "system", Content: systemPrompt(a, t.Variables)}}, history...)
	req.Messages = fitContext(req, r.contextBudget(a.Model))

	if n := len(t.History); n > 0 && t.History[n-1].Role == "user" && t.History[n-1].Content == "[audio]" {
		// A voice note nobody could transcribe: the model must not answer what it did not hear.
		return sink.Step(ctx, r.failed(a, errors.New("the voice note has no transcript (transcription failed or is not configured)")))
	}
	provider, err := r.Providers.Provider(ctx, a.WorkspaceID, a.Model)
	if err != nil {
		return sink.Step(ctx, r.failed(a, fmt.Errorf("model %q: %w", a.Model, err)))
	}
	var headers map[string]map[string]string
	headersLoaded := false
	for round := 0; round < maxRounds; round++ {
		start := time.Now()
		resp, err := r.chat(ctx, provider, &req, sink.Delta)
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
			if strings.TrimSpace(resp.Content) == "" {
				// Nothing for the customer (a filtered or empty answer): the fallback, with what it cost.
				failed := r.failed(a, fmt.Errorf("the model returned an empty reply (finish_reason %q)", resp.FinishReason))
				failed.Usage, failed.CostMicros, failed.LatencyMS = step.Usage, step.CostMicros, step.LatencyMS
				return sink.Step(ctx, failed)
			}
			return sink.Step(ctx, step)
		}
		assistantMsg := llm.Message{Role: "assistant", Content: resp.Content, ToolCalls: resp.ToolCalls}
		// HTTP tools called together run at once; built-in ones act on the conversation in order.
		resultsOf := make([]string, len(resp.ToolCalls))
		var wg sync.WaitGroup
		for i, tc := range resp.ToolCalls {
			ht, ok := httpTools[tc.Name]
			if ok && t.AnswerHTTPTool != nil {
				resultsOf[i] = t.AnswerHTTPTool(ctx, tc.Name, tc.Arguments)
				continue
			}
			if !ok || r.HTTP == nil {
				continue
			}
			if !headersLoaded && len(ht.Headers) > 0 && r.Headers != nil {
				headersLoaded = true
				if headers, err = r.Headers.ToolHeaders(ctx, a.WorkspaceID, a.ID); err != nil && r.Log != nil {
					r.Log.Warn("assistant: HTTP tool headers could not be opened", "assistant", a.ID, "err", err)
				}
			}
			wg.Add(1)
			go func(i int, ht tools.HTTPTool, args string, hs map[string]string) {
				defer wg.Done()
				resultsOf[i] = r.HTTP.Call(ctx, ht, hs, args)
			}(i, ht, tc.Arguments, headers[ht.Name])
		}
		wg.Wait()
		var results []llm.Message
		for i, tc := range resp.ToolCalls {
			result := resultsOf[i]
			if _, ok := httpTools[tc.Name]; !ok || (r.HTTP == nil && t.AnswerHTTPTool == nil) {
				var fx tools.Effects
				result, fx = tools.Call(ctx, env, tc.Name, tc.Arguments)
				step.Effects.Merge(fx)
			}
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

// maxTrims bounds how often one call is shortened after context_length_exceeded.
const maxTrims = 6

// chat calls the model; when it refuses the prompt as too long, the oldest history is dropped and
// the shorter request is sent — never the same one again.
func (r *Runtime) chat(ctx context.Context, p llm.Provider, req *llm.Request, onDelta func(string)) (llm.Response, error) {
	for trims := 0; ; trims++ {
		resp, err := p.Chat(ctx, *req, onDelta)
		var ae *llm.APIError
		if err != nil && !errors.Is(err, llm.ErrContextLength) && errors.As(err, &ae) && ae.Status == 400 && stripImages(req) {
			// A model without vision refuses image parts: the images' text (descriptions) stays.
			if r.Log != nil {
				r.Log.Info("assistant: the model refused image inputs; sending the text only", "model", req.Model, "err", err)
			}
			r.noVision.Store(req.Model, true)
			resp, err = p.Chat(ctx, *req, onDelta)
		}
		if err == nil || !errors.Is(err, llm.ErrContextLength) {
			return resp, err
		}
		shorter, ok := trimOldest(req.Messages)
		if !ok || trims >= maxTrims {
			return resp, fmt.Errorf("the conversation does not fit the model's context even with its history trimmed: %w", err)
		}
		if r.Log != nil {
			r.Log.Info("assistant: prompt too long for the model; trimmed the oldest history", "model", req.Model, "messages_before", len(req.Messages), "messages_after", len(shorter))
		}
		req.Messages = shorter
	}
}

// stripImages removes the image inputs of a request, reporting whether there were any.
func stripImages(req *llm.Request) bool {
	found := false
	for i := range req.Messages {
		if len(req.Messages[i].Images) > 0 {
			if !found {
				req.Messages = append([]llm.Message(nil), req.Messages...) // the caller's slice stays as it was
			}
			found = true
			req.Messages[i].Images = nil
		}
	}
	return found
}

// trimOldest drops about the older half of the history (keeping the system prompt, and cutting
// only where a user message starts, so no tool result loses its call). It reports false when
// nothing can be dropped.
func trimOldest(msgs []llm.Message) ([]llm.Message, bool) {
	if len(msgs) < 2 {
		return msgs, false
	}
	head := 0
	if msgs[0].Role == "system" {
		head = 1
	}
	lastUser := -1
	for i := len(msgs) - 1; i >= head; i-- {
		if msgs[i].Role == "user" {
			lastUser = i
			break
		}
	}
	if lastUser <= head {
		return msgs, false
	}
	target := head + (lastUser-head+1)/2
	cut := lastUser
	for i := target; i <= lastUser; i++ {
		if msgs[i].Role == "user" && i > head {
			cut = i
			break
		}
	}
	out := make([]llm.Message, 0, len(msgs)-(cut-head))
	out = append(out, msgs[:head]...)
	out = append(out, msgs[cut:]...)
	return out, true
}

// contextWindows are known context sizes (tokens) by model name prefix.
var contextWindows = []struct {
	prefix string
	tokens int64
}{
	{"gpt-4.1", 1_000_000}, {"gpt-5", 400_000}, {"gpt-4o", 128_000}, {"o3", 200_000}, {"o4", 200_000},
	{"gpt-4-turbo", 128_000}, {"gpt-3.5-turbo", 16_000}, {"gpt-4", 8_000},
}

func (r *Runtime) contextBudget(model string) int64 {
	if r.MaxContextTokens > 0 {
		return r.MaxContextTokens
	}
	if model == llm.BuiltinModel {
		return 1 << 40
	}
	for _, w := range contextWindows {
		if strings.HasPrefix(model, w.prefix) {
			return w.tokens * 3 / 4 // room for the reply and the estimate's error
		}
	}
	return 24_000 // unknown (often local) models: a cautious size; context errors trim further
}

// fitContext trims the oldest history until the estimated prompt fits budget.
func fitContext(req llm.Request, budget int64) []llm.Message {
	msgs := req.Messages
	for {
		req.Messages = msgs
		if llm.EstimateRequestTokens(req) <= budget {
			return msgs
		}
		shorter, ok := trimOldest(msgs)
		if !ok {
			return msgs
		}
		msgs = shorter
	}
}

// prepareImages keeps image inputs for vision-capable calls: the latest MaxImages customer images
// are loaded inline; older ones (and all, for the builtin model) go as their text only.
func (r *Runtime) prepareImages(ctx context.Context, a *Assistant, history []llm.Message) []llm.Message {
	maxImages := r.MaxImages
	if maxImages <= 0 {
		maxImages = 4
	}
	n := 0
	for i := len(history) - 1; i >= 0; i-- {
		m := history[i]
		if len(m.Images) == 0 {
			continue
		}
		_, noVision := r.noVision.Load(a.Model)
		if a.Model == llm.BuiltinModel || r.Images == nil || n >= maxImages || noVision {
			history[i].Images = nil
			continue
		}
		var imgs []llm.Image
		for _, img := range m.Images {
			loaded, err := r.Images.LoadImage(ctx, a.WorkspaceID, img)
			if err != nil {
				if r.Log != nil {
					r.Log.Warn("assistant: image not loaded for the model", "err", err)
				}
				continue
			}
			imgs = append(imgs, loaded)
			n++
		}
		history[i].Images = imgs
	}
	return history
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
