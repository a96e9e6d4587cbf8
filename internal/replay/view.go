package replay

import (
	"encoding/json"
	"math"
	"time"

	"github.com/parley-hq/parley/internal/assistant"
)

// The JSON the API answers and `parley replay --json` prints. Costs are USD floats (stored as
// micro-dollars), times RFC 3339 UTC with milliseconds, similarities rounded to 4 decimals.

const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func usd(micros int64) float64 { return float64(micros) / 1e6 }

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }

func timePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := t.UTC().Format(timeFormat)
	return &s
}

// JSON is a replay as the API shows it.
type JSON struct {
	ID            string             `json:"id"`
	AssistantID   string             `json:"assistant_id"`
	AssistantName string             `json:"assistant_name"`
	Version       int                `json:"version"`
	Draft         *assistant.Draft   `json:"draft"`
	Config        assistant.Snapshot `json:"config"`
	Filter        Filter             `json:"filter"`
	Status        Status             `json:"status"`
	Error         string             `json:"error,omitempty"`
	Progress      Progress           `json:"progress"`
	Totals        TotalsJSON         `json:"totals"`
	CreatedAt     string             `json:"created_at"`
	StartedAt     *string            `json:"started_at"`
	FinishedAt    *string            `json:"finished_at"`
}

// TotalsJSON sums a replay or one of its conversations.
type TotalsJSON struct {
	Conversations       int     `json:"conversations"`
	FailedConversations int     `json:"failed_conversations"`
	Turns               int     `json:"turns"`
	ChangedTurns        int     `json:"changed_turns"`
	UnchangedTurns      int     `json:"unchanged_turns"`
	SkippedTurns        int     `json:"skipped_turns"`
	MeanSimilarity      float64 `json:"mean_similarity"`
	OldTokensIn         int64   `json:"old_tokens_in"`
	OldTokensOut        int64   `json:"old_tokens_out"`
	NewTokensIn         int64   `json:"new_tokens_in"`
	NewTokensOut        int64   `json:"new_tokens_out"`
	TokensDiff          int64   `json:"tokens_diff"`
	OldCostUSD          float64 `json:"old_cost_usd"`
	NewCostUSD          float64 `json:"new_cost_usd"`
	CostDiffUSD         float64 `json:"cost_diff_usd"`
	ToolCallDiffs       int     `json:"tool_call_differences"`
	Errors              int     `json:"errors"`
}

// NewTotalsJSON renders totals.
func NewTotalsJSON(t Totals) TotalsJSON {
	return TotalsJSON{Conversations: t.Conversations, FailedConversations: t.Failed, Turns: t.Turns, ChangedTurns: t.ChangedTurns,
		UnchangedTurns: t.Turns - t.ChangedTurns, SkippedTurns: t.SkippedTurns, MeanSimilarity: round4(t.MeanSimilarity()),
		OldTokensIn: t.OldTokensIn, OldTokensOut: t.OldTokensOut, NewTokensIn: t.NewTokensIn, NewTokensOut: t.NewTokensOut,
		TokensDiff: (t.NewTokensIn + t.NewTokensOut) - (t.OldTokensIn + t.OldTokensOut),
		OldCostUSD: usd(t.OldCostMicros), NewCostUSD: usd(t.NewCostMicros), CostDiffUSD: usd(t.NewCostMicros - t.OldCostMicros),
		ToolCallDiffs: t.ToolCallDiffs, Errors: t.Errors}
}

// NewJSON renders a replay.
func NewJSON(r *Replay) JSON {
	return JSON{ID: r.ID, AssistantID: r.AssistantID, AssistantName: r.AssistantName, Version: r.Version, Draft: r.Draft, Config: r.Config,
		Filter: r.Filter, Status: r.Status, Error: r.Error, Progress: r.Progress, Totals: NewTotalsJSON(r.Totals),
		CreatedAt: r.CreatedAt.UTC().Format(timeFormat), StartedAt: timePtr(r.StartedAt), FinishedAt: timePtr(r.FinishedAt)}
}

// ItemJSON is one replayed conversation.
type ItemJSON struct {
	Position         int        `json:"position"`
	ConversationID   string     `json:"conversation_id"`
	ConversationType string     `json:"conversation_type"`
	CustomerID       string     `json:"customer_id"`
	CustomerName     string     `json:"customer_name"`
	Status           string     `json:"status"`
	Error            string     `json:"error,omitempty"`
	Totals           TotalsJSON `json:"totals"`
	Turns            []TurnJSON `json:"turns"`
	FinishedAt       *string    `json:"finished_at"`
}

// TurnJSON is one replayed turn.
type TurnJSON struct {
	Index              int            `json:"index"`
	CustomerMessageIDs []string       `json:"customer_message_ids"`
	CustomerText       string         `json:"customer_text"`
	Skipped            string         `json:"skipped,omitempty"`
	Old                ReplyJSON      `json:"old"`
	New                ReplyJSON      `json:"new"`
	Similarity         float64        `json:"similarity"`
	Changed            bool           `json:"changed"`
	ToolCallDiffs      []ToolCallDiff `json:"tool_call_differences"`
	TokensDiff         int64          `json:"tokens_diff"`
	CostDiffUSD        float64        `json:"cost_diff_usd"`
	Effects            Effects        `json:"effects"`
	Sandbox            []SandboxCall  `json:"sandbox"`
}

// ReplyJSON is one side of a turn.
type ReplyJSON struct {
	Text      string     `json:"text"`
	ToolCalls []ToolCall `json:"tool_calls"`
	TokensIn  int64      `json:"tokens_in"`
	TokensOut int64      `json:"tokens_out"`
	CostUSD   float64    `json:"cost_usd"`
	Version   int        `json:"version,omitempty"`
	Error     string     `json:"error,omitempty"`
}

func newReplyJSON(r Reply) ReplyJSON {
	calls := r.ToolCalls
	if calls == nil {
		calls = []ToolCall{}
	}
	return ReplyJSON{Text: r.Text, ToolCalls: calls, TokensIn: r.TokensIn, TokensOut: r.TokensOut, CostUSD: usd(r.CostMicros), Version: r.Version, Error: r.Error}
}

// NewItemJSON renders a replayed conversation with its turns.
func NewItemJSON(it *Item) ItemJSON {
	out := ItemJSON{Position: it.Position, ConversationID: it.ConversationID, ConversationType: it.ConversationType, CustomerID: it.CustomerID,
		CustomerName: it.CustomerName, Status: it.Status, Error: it.Error, Totals: NewTotalsJSON(it.Totals), Turns: make([]TurnJSON, 0, len(it.Turns)),
		FinishedAt: timePtr(it.FinishedAt)}
	for _, t := range it.Turns {
		out.Turns = append(out.Turns, TurnJSON{Index: t.Index, CustomerMessageIDs: t.CustomerMessageIDs, CustomerText: t.CustomerText, Skipped: t.Skipped,
			Old: newReplyJSON(t.Old), New: newReplyJSON(t.New), Similarity: round4(t.Similarity), Changed: t.Changed, ToolCallDiffs: nonNil(t.ToolCallDiffs),
			TokensDiff: (t.New.TokensIn + t.New.TokensOut) - (t.Old.TokensIn + t.Old.TokensOut), CostDiffUSD: usd(t.New.CostMicros - t.Old.CostMicros),
			Effects: t.Effects, Sandbox: nonNil(t.Sandbox)})
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Report is a whole replay with every conversation: what `parley replay --json` prints.
type Report struct {
	JSON
	Conversations []ItemJSON `json:"conversations"`
}

// MarshalIndent renders a report for people and tools alike.
func (r Report) MarshalIndent() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }
