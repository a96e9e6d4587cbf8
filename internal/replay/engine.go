package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/tools"
)

// historyMessages is how many recent messages the model sees, as in a live turn.
const historyMessages = 60

// Sandbox returns a runtime for replays: the live runtime's models, prices, knowledge search and
// image loading, and no HTTP caller or header source at all — so even a tool the interceptor did
// not answer could not reach the network.
func Sandbox(live *assistant.Runtime) *assistant.Runtime {
	return &assistant.Runtime{Providers: live.Providers, Prices: live.Prices, Knowledge: live.Knowledge, Images: live.Images,
		MaxImages: live.MaxImages, MaxRounds: live.MaxRounds, MaxContextTokens: live.MaxContextTokens, Log: live.Log}
}

// ReplayConversation runs a over every customer turn of a recorded conversation: for each run of
// customer messages, the original history up to and including them and the variables known then
// go to the sandboxed runtime; the assistant messages that originally followed (until the next
// customer message) are the old reply. Turns no assistant message followed (a human had the
// conversation, it had ended, or the answer was still pending) are skipped. It returns the turns
// and their totals; nothing is stored anywhere.
func ReplayConversation(ctx context.Context, rt *assistant.Runtime, a *assistant.Assistant, conversationID string, msgs []*conversation.Message, vars []conversation.Variable) ([]Turn, Totals, error) {
	turns := []Turn{}
	totals := Totals{Conversations: 1}
	for i := 0; i < len(msgs); {
		if msgs[i].Role != conversation.RoleUser {
			i++
			continue
		}
		j := i
		for j < len(msgs) && msgs[j].Role == conversation.RoleUser {
			j++
		}
		k := j
		for k < len(msgs) && msgs[k].Role != conversation.RoleUser {
			k++
		}
		turn := Turn{Index: len(turns), ToolCallDiffs: []ToolCallDiff{}, Sandbox: []SandboxCall{}, Effects: Effects{Variables: []Variable{}}}
		var texts []string
		for _, m := range msgs[i:j] {
			turn.CustomerMessageIDs = append(turn.CustomerMessageIDs, m.ID)
			if t := customerText(m); t != "" {
				texts = append(texts, t)
			}
		}
		turn.CustomerText = strings.Join(texts, "\n")
		turn.Old = oldReply(msgs[j:k])
		turn.New.ToolCalls = []ToolCall{}
		if !answered(msgs[j:k]) {
			turn.Skipped = "no assistant reply followed these customer messages (a human had the conversation, it had ended, or the answer was pending)"
			totals.SkippedTurns++
		} else {
			if err := runTurn(ctx, rt, a, conversationID, msgs[:j], knownVariables(msgs[:i], vars, msgs[j-1]), &turn); err != nil {
				return nil, totals, err
			}
			totals.Turns++
			totals.SimilaritySum += turn.Similarity
			if turn.Changed {
				totals.ChangedTurns++
			}
			totals.ToolCallDiffs += len(turn.ToolCallDiffs)
			if turn.New.Error != "" {
				totals.Errors++
			}
			totals.OldTokensIn += turn.Old.TokensIn
			totals.OldTokensOut += turn.Old.TokensOut
			totals.OldCostMicros += turn.Old.CostMicros
			totals.NewTokensIn += turn.New.TokensIn
			totals.NewTokensOut += turn.New.TokensOut
			totals.NewCostMicros += turn.New.CostMicros
		}
		turns = append(turns, turn)
		i = k
	}
	return turns, totals, nil
}

// answered reports whether the assistant wrote anything after the customer's messages.
func answered(after []*conversation.Message) bool {
	for _, m := range after {
		if m.Role == conversation.RoleAssistant {
			return true
		}
	}
	return false
}

// customerText is a customer message as the report shows it: its text, and what stands for its
// media (a transcript, a description, or the media type).
func customerText(m *conversation.Message) string {
	text := m.Text
	if m.Media != nil {
		switch {
		case m.Media.Transcript != "":
			text = strings.TrimSpace(text + "\n[voice note transcript] " + m.Media.Transcript)
		case m.Media.Description != "":
			text = strings.TrimSpace(text + "\n[" + m.Type + "] " + m.Media.Description)
		case text == "":
			text = "[" + m.Type + "]"
		}
	}
	return text
}

// oldReply gathers the assistant messages that followed a turn's customer messages.
func oldReply(after []*conversation.Message) Reply {
	r := Reply{ToolCalls: []ToolCall{}}
	var texts []string
	for _, m := range after {
		if m.Role != conversation.RoleAssistant {
			continue
		}
		if strings.TrimSpace(m.Text) != "" {
			texts = append(texts, m.Text)
		}
		for _, tc := range m.ToolCalls {
			r.ToolCalls = append(r.ToolCalls, ToolCall{Name: tc.Name, Arguments: tc.Arguments, Result: tc.Result})
		}
		r.TokensIn += m.TokensIn
		r.TokensOut += m.TokensOut
		r.CostMicros += m.CostMicros
		if m.AssistantVersion != 0 {
			r.Version = m.AssistantVersion
		}
		if m.Error != nil && r.Error == "" {
			r.Error = m.Error.Code
			if m.Error.Details != "" {
				r.Error += ": " + m.Error.Details
			}
		}
	}
	r.Text = strings.Join(texts, "\n")
	return r
}

// knownVariables are the variables the assistant knew when the turn began. Extracted ones come
// only from tools, so they are rebuilt from the tool calls recorded before the turn (in order, a
// value overwritten later is known as it was then); the others (flow, prechat, post-conversation)
// are the stored ones last set no later than the turn's last customer message.
func knownVariables(before []*conversation.Message, vars []conversation.Variable, last *conversation.Message) map[string]string {
	known := map[string]string{}
	for _, v := range vars {
		if v.Source != conversation.SourceExtracted && !v.UpdatedAt.After(last.CreatedAt) {
			known[v.Name] = v.Value
		}
	}
	for _, m := range before {
		for _, tc := range m.ToolCalls {
			if (tc.Name != tools.SetVariable && tc.Name != tools.ScheduleAppointment) || !strings.Contains(tc.Result, `"ok":true`) {
				continue
			}
			// Re-running the call gives its effects: these two tools only compute them.
			_, fx := tools.Call(context.Background(), &tools.Env{}, tc.Name, string(tc.Arguments))
			for _, v := range fx.Variables {
				known[v.Name] = v.Value
			}
		}
	}
	return known
}

// runTurn runs the new configuration for one turn in the sandbox and compares it with the old reply.
func runTurn(ctx context.Context, rt *assistant.Runtime, a *assistant.Assistant, conversationID string, history []*conversation.Message, known map[string]string, turn *Turn) error {
	if len(history) > historyMessages {
		history = history[len(history)-historyMessages:]
	}
	recorded := newRecording(turn.Old.ToolCalls)
	sink := &sandboxSink{}
	t := assistant.Turn{Assistant: a, ConversationID: conversationID, History: conversation.ToLLM(history), Variables: known,
		AnswerHTTPTool: func(ctx context.Context, name, arguments string) string {
			result, ok := recorded.answer(name, arguments)
			outcome := AnsweredFromRecording
			if !ok {
				result, outcome = NotExecutedResult, NotExecuted
			}
			sink.addSandbox(SandboxCall{Tool: name, Arguments: rawArgs(arguments), Outcome: outcome, Result: result})
			return result
		}}
	if err := rt.Run(ctx, t, sink); err != nil {
		return err
	}
	turn.New = sink.reply
	turn.New.Text = strings.Join(sink.texts, "\n")
	if turn.New.ToolCalls == nil {
		turn.New.ToolCalls = []ToolCall{}
	}
	turn.Effects = sink.effects
	turn.Sandbox = sink.sandbox
	if turn.Sandbox == nil {
		turn.Sandbox = []SandboxCall{}
	}
	turn.Similarity = Similarity(turn.Old.Text, turn.New.Text)
	turn.ToolCallDiffs = DiffToolCalls(turn.Old.ToolCalls, turn.New.ToolCalls)
	turn.Changed = turn.Similarity < 1 || len(turn.ToolCallDiffs) > 0 || (turn.Old.Error == "") != (turn.New.Error == "")
	return nil
}

// sandboxSink collects a replayed turn's steps; it stores and publishes nothing.
type sandboxSink struct {
	mu      sync.Mutex // HTTP tools of one round are answered concurrently
	reply   Reply
	texts   []string
	effects Effects
	sandbox []SandboxCall
}

func (s *sandboxSink) Delta(string) {}

func (s *sandboxSink) Step(_ context.Context, st assistant.Step) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.TrimSpace(st.Text) != "" {
		s.texts = append(s.texts, st.Text)
	}
	for _, tc := range st.ToolCalls {
		s.reply.ToolCalls = append(s.reply.ToolCalls, ToolCall{Name: tc.Name, Arguments: rawArgs(tc.Arguments), Result: tc.Result})
	}
	s.reply.TokensIn += st.Usage.InputTokens
	s.reply.TokensOut += st.Usage.OutputTokens
	s.reply.CostMicros += st.CostMicros
	s.reply.Version = st.Version
	if st.Err != nil && s.reply.Error == "" {
		s.reply.Error = "ai_turn_failed: " + st.Err.Error()
	}
	if s.effects.Variables == nil {
		s.effects.Variables = []Variable{}
	}
	for _, v := range st.Effects.Variables {
		s.effects.Variables = append(s.effects.Variables, Variable{Name: v.Name, Value: v.Value, Source: v.Source})
	}
	if st.Effects.Handoff != nil {
		reason := *st.Effects.Handoff
		s.effects.Handoff = &reason
	}
	s.effects.End = s.effects.End || st.Effects.End
	return nil
}

func (s *sandboxSink) addSandbox(c SandboxCall) {
	s.mu.Lock()
	s.sandbox = append(s.sandbox, c)
	s.mu.Unlock()
}

// rawArgs keeps tool arguments as JSON (a string when the model sent something else).
func rawArgs(arguments string) json.RawMessage {
	if json.Valid([]byte(arguments)) {
		return json.RawMessage(arguments)
	}
	b, _ := json.Marshal(arguments)
	return b
}

// recording answers a replayed turn's HTTP tool calls from the original turn's calls: the first
// unused one with the same name and the same arguments, else the first unused one with the same
// name. Each recorded result answers once.
type recording struct {
	mu    sync.Mutex
	calls []ToolCall
	used  []bool
}

func newRecording(calls []ToolCall) *recording {
	return &recording{calls: calls, used: make([]bool, len(calls))}
}

func (r *recording) answer(name, arguments string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	args := canonicalJSON(rawArgs(arguments))
	best := -1
	for i, c := range r.calls {
		if r.used[i] || c.Name != name {
			continue
		}
		if canonicalJSON(c.Arguments) == args {
			best = i
			break
		}
		if best < 0 {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	r.used[best] = true
	return r.calls[best].Result, true
}

// canonicalJSON re-encodes JSON so that key order and spacing do not matter in comparisons.
func canonicalJSON(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(bytes.TrimSpace(raw))
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// DiffToolCalls pairs old and new tool calls: first those with the same name and arguments (no
// difference), then the rest by name, in order — a pair with other arguments is changed. An old
// call with no partner was removed, a new one added.
func DiffToolCalls(old, new []ToolCall) []ToolCallDiff {
	out := []ToolCallDiff{}
	oldUsed, newUsed := make([]bool, len(old)), make([]bool, len(new))
	for i, o := range old {
		for j, n := range new {
			if !newUsed[j] && n.Name == o.Name && canonicalJSON(n.Arguments) == canonicalJSON(o.Arguments) {
				oldUsed[i], newUsed[j] = true, true
				break
			}
		}
	}
	for i, o := range old {
		if oldUsed[i] {
			continue
		}
		partner := -1
		for j, n := range new {
			if !newUsed[j] && n.Name == o.Name {
				partner = j
				break
			}
		}
		if partner < 0 {
			out = append(out, ToolCallDiff{Name: o.Name, Change: ToolRemoved, OldArguments: o.Arguments})
			continue
		}
		newUsed[partner] = true
		out = append(out, ToolCallDiff{Name: o.Name, Change: ToolChanged, OldArguments: o.Arguments, NewArguments: new[partner].Arguments})
	}
	for j, n := range new {
		if !newUsed[j] {
			out = append(out, ToolCallDiff{Name: n.Name, Change: ToolAdded, NewArguments: n.Arguments})
		}
	}
	return out
}
