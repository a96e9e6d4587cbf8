package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/conversation"
)

// TimeFormat is how times are written: RFC 3339 in UTC, with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

func jsonTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

func jsonTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := jsonTime(*t)
	return &s
}

// USD converts stored micro-dollars to the API's cost_usd number.
func USD(micros int64) float64 { return float64(micros) / 1e6 }

// AssistantJSON is an assistant as the API shows it.
type AssistantJSON struct {
	ID               string                   `json:"id"`
	Name             string                   `json:"name"`
	SystemPrompt     string                   `json:"system_prompt"`
	Model            string                   `json:"model"`
	Temperature      *float64                 `json:"temperature"`
	Tools            json.RawMessage          `json:"tools"`
	KnowledgeBaseIDs []string                 `json:"knowledge_base_ids"`
	Extract          []assistant.ExtractField `json:"extract"`
	FallbackText     string                   `json:"fallback_text"`
	Version          int                      `json:"version"`
	CreatedAt        string                   `json:"created_at"`
	UpdatedAt        string                   `json:"updated_at"`

	// MonthlyBudgetUSD is null without a budget; Budget is this month's spend and alerts.
	MonthlyBudgetUSD *float64    `json:"monthly_budget_usd"`
	Budget           *BudgetJSON `json:"budget"`
}

// NewAssistantJSON renders an assistant.
func NewAssistantJSON(a *assistant.Assistant) AssistantJSON {
	return AssistantJSON{ID: a.ID, Name: a.Name, SystemPrompt: a.SystemPrompt, Model: a.Model, Temperature: a.Temperature, Tools: a.Tools,
		KnowledgeBaseIDs: a.KnowledgeBaseIDs, Extract: a.Extract, FallbackText: a.FallbackText, Version: a.Version,
		CreatedAt: jsonTime(a.CreatedAt), UpdatedAt: jsonTime(a.UpdatedAt), MonthlyBudgetUSD: budgetUSD(a.MonthlyBudgetMicros)}
}

// WindowJSON is the WhatsApp customer service window.
type WindowJSON struct {
	Open      bool    `json:"open"`
	ExpiresAt *string `json:"expires_at"`
}

// WhatsAppWindow is how long a customer's message keeps free-form replies allowed.
const WhatsAppWindow = 24 * time.Hour

// ConversationJSON is a conversation as the list shows it.
type ConversationJSON struct {
	ID                 string            `json:"id"`
	Type               string            `json:"type"`
	Status             string            `json:"status"`
	CustomerID         string            `json:"customer_id"`
	CustomerName       string            `json:"customer_name"`
	AssistantID        string            `json:"assistant_id"`
	AssistantName      string            `json:"assistant_name"`
	MessageCount       int64             `json:"message_count"`
	LastMessagePreview string            `json:"last_message_preview"`
	LastMessageAt      string            `json:"last_message_at"`
	CreatedAt          string            `json:"created_at"`
	UpdatedAt          string            `json:"updated_at"`
	EndedAt            *string           `json:"ended_at"`
	TokensIn           int64             `json:"tokens_in"`
	TokensOut          int64             `json:"tokens_out"`
	CostUSD            float64           `json:"cost_usd"`
	HandoffReason      string            `json:"handoff_reason,omitempty"`
	LastError          string            `json:"last_error,omitempty"`
	Metadata           map[string]string `json:"metadata"`
	Window             *WindowJSON       `json:"window,omitempty"`
}

// NewConversationJSON renders a conversation.
func NewConversationJSON(c *conversation.Conversation, now time.Time) ConversationJSON {
	out := ConversationJSON{ID: c.ID, Type: string(c.Type), Status: string(c.Status), CustomerID: c.CustomerID, CustomerName: c.CustomerName,
		AssistantID: c.AssistantID, AssistantName: c.AssistantName, MessageCount: c.MessageCount, LastMessagePreview: c.LastMessagePreview,
		LastMessageAt: jsonTime(c.LastMessageAt), CreatedAt: jsonTime(c.CreatedAt), UpdatedAt: jsonTime(c.UpdatedAt), EndedAt: jsonTimePtr(c.EndedAt),
		TokensIn: c.TokensIn, TokensOut: c.TokensOut, CostUSD: USD(c.CostMicros), HandoffReason: c.HandoffReason, LastError: c.LastError, Metadata: c.Metadata}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	if c.Type == conversation.TypeWhatsApp {
		w := &WindowJSON{}
		if c.LastInboundAt != nil {
			exp := c.LastInboundAt.Add(WhatsAppWindow)
			w.Open = now.Before(exp)
			w.ExpiresAt = jsonTimePtr(&exp)
		}
		out.Window = w
	}
	return out
}

// MessageJSON is a message as the API shows it.
type MessageJSON struct {
	ID               string                     `json:"id"`
	ConversationID   string                     `json:"conversation_id"`
	ExternalID       string                     `json:"external_id,omitempty"`
	Role             string                     `json:"role"`
	Direction        string                     `json:"direction"`
	Type             string                     `json:"type"`
	Text             string                     `json:"text"`
	Media            *conversation.Media        `json:"media,omitempty"`
	ToolCalls        []conversation.ToolCall    `json:"tool_calls,omitempty"`
	Status           string                     `json:"status,omitempty"`
	Error            *conversation.MessageError `json:"error,omitempty"`
	CreatedAt        string                     `json:"created_at"`
	TokensIn         int64                      `json:"tokens_in"`
	TokensOut        int64                      `json:"tokens_out"`
	CostUSD          float64                    `json:"cost_usd"`
	LatencyMS        *int64                     `json:"latency_ms,omitempty"`
	AssistantVersion int                        `json:"assistant_version,omitempty"`
}

// NewMessageJSON renders a message.
func NewMessageJSON(m *conversation.Message) MessageJSON {
	return MessageJSON{ID: m.ID, ConversationID: m.ConversationID, ExternalID: m.ExternalID, Role: string(m.Role), Direction: string(m.Direction),
		Type: m.Type, Text: m.Text, Media: m.Media, ToolCalls: m.ToolCalls, Status: m.Status, Error: m.Error, CreatedAt: jsonTime(m.CreatedAt),
		TokensIn: m.TokensIn, TokensOut: m.TokensOut, CostUSD: USD(m.CostMicros), LatencyMS: m.LatencyMS, AssistantVersion: m.AssistantVersion}
}

func messagesJSON(msgs []*conversation.Message) []MessageJSON {
	out := make([]MessageJSON, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, NewMessageJSON(m))
	}
	return out
}

// VariableJSON is a conversation variable.
type VariableJSON struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	Source    string `json:"source"`
	UpdatedAt string `json:"updated_at"`
}

// UsageJSON sums a conversation's usage.
type UsageJSON struct {
	Messages   int64   `json:"messages"`
	TokensIn   int64   `json:"tokens_in"`
	TokensOut  int64   `json:"tokens_out"`
	CostUSD    float64 `json:"cost_usd"`
	DurationMS int64   `json:"duration_ms"`
}

// DetailJSON is the whole conversation record.
type DetailJSON struct {
	ConversationJSON
	Variables []VariableJSON `json:"variables"`
	Usage     UsageJSON      `json:"usage"`
	Messages  []MessageJSON  `json:"messages"`
}

// NewDetailJSON renders the whole record.
func NewDetailJSON(d *conversation.Detail, now time.Time) DetailJSON {
	c := d.Conversation
	out := DetailJSON{ConversationJSON: NewConversationJSON(c, now), Messages: messagesJSON(d.Messages), Variables: make([]VariableJSON, 0, len(d.Variables))}
	for _, v := range d.Variables {
		out.Variables = append(out.Variables, VariableJSON{Name: v.Name, Value: v.Value, Source: v.Source, UpdatedAt: jsonTime(v.UpdatedAt)})
	}
	out.Usage = UsageJSON{Messages: c.MessageCount, TokensIn: c.TokensIn, TokensOut: c.TokensOut, CostUSD: USD(c.CostMicros)}
	if len(d.Messages) > 0 {
		out.Usage.DurationMS = d.Messages[len(d.Messages)-1].CreatedAt.Sub(d.Messages[0].CreatedAt).Milliseconds()
	}
	return out
}

// ParseFilter reads the list's query filters; anything malformed is a 400 naming the parameter.
func ParseFilter(q map[string][]string, withPaging bool) (conversation.Filter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	var f conversation.Filter
	if v := get("type"); v != "" {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if !conversation.Type(t).Valid() {
				return f, errorf(http.StatusBadRequest, "invalid_parameter", "type %q must be whatsapp, widget, test or api", t)
			}
			f.Types = append(f.Types, conversation.Type(t))
		}
	}
	f.AssistantID = get("assistant_id")
	for _, p := range []struct {
		name string
		dst  **time.Time
		end  bool
	}{{"from", &f.From, false}, {"to", &f.To, true}} {
		if v := get(p.name); v != "" {
			t, err := ParseTimeBound(v, p.end)
			if err != nil {
				return f, errorf(http.StatusBadRequest, "invalid_parameter", "%s must be RFC 3339 or YYYY-MM-DD", p.name)
			}
			*p.dst = &t
		}
	}
	f.Customer = get("customer")
	if v := get("status"); v != "" {
		if !conversation.Status(v).Valid() {
			return f, errorf(http.StatusBadRequest, "invalid_parameter", "status must be active, handoff or ended")
		}
		f.Status = conversation.Status(v)
	}
	if v := get("window"); v != "" {
		if v != "open" && v != "closed" {
			return f, errorf(http.StatusBadRequest, "invalid_parameter", "window must be open or closed")
		}
		f.Window = v
	}
	f.Query = get("q")
	if len(f.Query) > 500 {
		return f, errorf(http.StatusBadRequest, "invalid_parameter", "q must be at most 500 characters")
	}
	if !withPaging {
		return f, nil
	}
	f.Limit = 50
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return f, errorf(http.StatusBadRequest, "invalid_parameter", "limit must be a whole number from 1 to 500")
		}
		f.Limit = n
	}
	f.Cursor = get("cursor")
	return f, nil
}

// ParseTimeBound reads an RFC 3339 time or a YYYY-MM-DD date. As an upper bound (end) it becomes
// exclusive: a date covers its whole day, a time includes its own millisecond.
func ParseTimeBound(v string, end bool) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", v); err == nil {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, err
	}
	if end {
		t = t.Add(time.Millisecond)
	}
	return t.UTC(), nil
}
