// Package replay re-runs recorded conversations with another version of their assistant (a stored
// version, or a draft of unsaved changes) in a sandbox, and reports, turn by turn, how the new
// replies differ from the old ones: text, tool calls, tokens, cost and a similarity score.
//
// The sandbox: a replay stores nothing in the conversations it reads and publishes nothing (no
// message, no channel send, no outgoing webhook, no live event). Built-in tools act only through
// effects (variables, handoff, end), which a replay records in its report; HTTP tools are never
// called — they are answered with the recorded result of the matching original call, or with a
// "not executed in replay" result. Knowledge search is read-only and runs for real.
package replay

import (
	"encoding/json"
	"time"

	"github.com/parley-hq/parley/internal/assistant"
)

// Status is where a replay stands.
type Status string

const (
	StatusQueued  Status = "queued"
	StatusRunning Status = "running"
	StatusDone    Status = "done"
	StatusFailed  Status = "failed"
)

// Item statuses: one selected conversation's replay.
const (
	ItemPending = "pending"
	ItemDone    = "done"
	ItemFailed  = "failed"
)

// Replay is one run of an assistant configuration over a fixed selection of conversations.
type Replay struct {
	ID            string
	WorkspaceID   string
	AssistantID   string
	AssistantName string
	// Version is the stored version replayed (the base of the draft, when there is one).
	Version int
	Draft   *assistant.Draft
	// Config is exactly what runs: the version's snapshot with the draft applied.
	Config     assistant.Snapshot
	Filter     Filter
	Status     Status
	Error      string
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	Progress   Progress
	Totals     Totals
}

// Progress counts the selected conversations and those finished (done or failed).
type Progress struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// Filter is the selection as it was asked for, kept with the replay.
type Filter struct {
	Types       []string `json:"type,omitempty"`
	From        string   `json:"from,omitempty"`
	To          string   `json:"to,omitempty"`
	Status      string   `json:"status,omitempty"`
	Customer    string   `json:"customer,omitempty"`
	Query       string   `json:"q,omitempty"`
	AssistantID string   `json:"assistant_id,omitempty"`
	IDs         []string `json:"ids,omitempty"`
	Limit       int      `json:"limit"`
}

// Totals sum a report: over one conversation's turns, or over a whole replay's conversations.
// Turns counts the compared turns (skipped ones apart).
type Totals struct {
	Conversations int
	Failed        int
	Turns         int
	ChangedTurns  int
	SkippedTurns  int
	SimilaritySum float64
	OldTokensIn   int64
	OldTokensOut  int64
	NewTokensIn   int64
	NewTokensOut  int64
	OldCostMicros int64
	NewCostMicros int64
	ToolCallDiffs int
	Errors        int
}

// MeanSimilarity is the mean of the compared turns' similarity (1 when none was compared).
func (t Totals) MeanSimilarity() float64 {
	if t.Turns == 0 {
		return 1
	}
	return t.SimilaritySum / float64(t.Turns)
}

// Add sums o into t.
func (t *Totals) Add(o Totals) {
	t.Conversations += o.Conversations
	t.Failed += o.Failed
	t.Turns += o.Turns
	t.ChangedTurns += o.ChangedTurns
	t.SkippedTurns += o.SkippedTurns
	t.SimilaritySum += o.SimilaritySum
	t.OldTokensIn += o.OldTokensIn
	t.OldTokensOut += o.OldTokensOut
	t.NewTokensIn += o.NewTokensIn
	t.NewTokensOut += o.NewTokensOut
	t.OldCostMicros += o.OldCostMicros
	t.NewCostMicros += o.NewCostMicros
	t.ToolCallDiffs += o.ToolCallDiffs
	t.Errors += o.Errors
}

// Item is one selected conversation of a replay, with its turns once it has run.
type Item struct {
	ReplayID         string
	Position         int
	ConversationID   string
	ConversationType string
	CustomerID       string
	CustomerName     string
	Status           string
	Error            string
	Totals           Totals
	Turns            []Turn
	FinishedAt       *time.Time
}

// Turn is one customer turn replayed: the customer's message(s), what the assistant answered then
// (Old) and what the replayed configuration answers now (New).
type Turn struct {
	Index              int      `json:"index"`
	CustomerMessageIDs []string `json:"customer_message_ids"`
	CustomerText       string   `json:"customer_text"`
	// Skipped says why the turn was not replayed (no assistant reply followed it originally).
	Skipped       string         `json:"skipped,omitempty"`
	Old           Reply          `json:"old"`
	New           Reply          `json:"new"`
	Similarity    float64        `json:"similarity"`
	Changed       bool           `json:"changed"`
	ToolCallDiffs []ToolCallDiff `json:"tool_call_diffs"`
	// Effects are what the new run's built-in tools would have done (recorded, not applied).
	Effects Effects `json:"effects"`
	// Sandbox lists the new run's HTTP tool calls and how each was answered (never executed).
	Sandbox []SandboxCall `json:"sandbox"`
}

// Reply is one side of a turn: the assistant's text (its steps' texts joined), tool calls, usage.
type Reply struct {
	Text       string     `json:"text"`
	ToolCalls  []ToolCall `json:"tool_calls"`
	TokensIn   int64      `json:"tokens_in"`
	TokensOut  int64      `json:"tokens_out"`
	CostMicros int64      `json:"cost_micros"`
	// Version is the assistant version that produced the reply (0: not recorded).
	Version int    `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// ToolCall is a tool call with its result.
type ToolCall struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	Result    string          `json:"result"`
}

// Tool call difference kinds.
const (
	ToolAdded   = "added"
	ToolRemoved = "removed"
	ToolChanged = "changed"
)

// ToolCallDiff is a tool call the new run added, dropped, or made with other arguments.
type ToolCallDiff struct {
	Name         string          `json:"name"`
	Change       string          `json:"change"`
	OldArguments json.RawMessage `json:"old_arguments,omitempty"`
	NewArguments json.RawMessage `json:"new_arguments,omitempty"`
}

// Effects are the built-in tools' effects on the conversation, as recorded in the sandbox.
type Effects struct {
	Variables []Variable `json:"variables"`
	Handoff   *string    `json:"handoff"`
	End       bool       `json:"end"`
}

// Variable is a variable a tool would have set.
type Variable struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// Sandbox outcomes of an HTTP tool call.
const (
	AnsweredFromRecording = "recorded_result"
	NotExecuted           = "not_executed"
)

// SandboxCall is an HTTP tool call of the new run and how the sandbox answered it.
type SandboxCall struct {
	Tool      string          `json:"tool"`
	Arguments json.RawMessage `json:"arguments"`
	Outcome   string          `json:"outcome"`
	Result    string          `json:"result"`
}

// NotExecutedResult is what the model reads for an HTTP tool call with no recorded result.
// It has the shape of an HTTP tool's failure ({"ok": false, "error"}).
const NotExecutedResult = `{"error":"not executed in replay: no recorded result for this call","ok":false}`
