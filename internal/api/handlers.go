package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/metrics"
)

func (a *API) createAssistant(w http.ResponseWriter, r *http.Request) error {
	var in assistant.Input
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	as, err := a.Assistants.Create(r.Context(), workspace(r.Context()), in)
	if err != nil {
		return domainError(err)
	}
	return a.writeAssistant(w, r, http.StatusCreated, as)
}

func (a *API) listAssistants(w http.ResponseWriter, r *http.Request) error {
	list, err := a.Assistants.List(r.Context(), workspace(r.Context()))
	if err != nil {
		return err
	}
	out := make([]AssistantJSON, 0, len(list))
	for _, as := range list {
		out = append(out, NewAssistantJSON(as))
	}
	if err := a.withBudgets(r, out); err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

func (a *API) getAssistant(w http.ResponseWriter, r *http.Request) error {
	as, err := a.Assistants.Get(r.Context(), workspace(r.Context()), r.PathValue("id"))
	if err != nil {
		return assistantErr(err)
	}
	return a.writeAssistant(w, r, http.StatusOK, as)
}

func (a *API) updateAssistant(w http.ResponseWriter, r *http.Request) error {
	var in assistant.Input
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	as, err := a.Assistants.Update(r.Context(), workspace(r.Context()), r.PathValue("id"), in)
	if err != nil {
		return assistantErr(err)
	}
	return a.writeAssistant(w, r, http.StatusOK, as)
}

func (a *API) writeAssistant(w http.ResponseWriter, r *http.Request, status int, as *assistant.Assistant) error {
	out := []AssistantJSON{NewAssistantJSON(as)}
	if err := a.withBudgets(r, out); err != nil {
		return err
	}
	WriteJSON(w, status, out[0])
	return nil
}

func (a *API) deleteAssistant(w http.ResponseWriter, r *http.Request) error {
	if err := a.Assistants.Delete(r.Context(), workspace(r.Context()), r.PathValue("id")); err != nil {
		return assistantErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func assistantErr(err error) error {
	if e := domainError(err); e != err {
		if ae, ok := e.(*Error); ok && ae.Code == "not_found" {
			ae.Message = "assistant not found"
		}
		return e
	}
	return err
}

// variablesInput accepts variable values of any JSON scalar type and keeps them as text.
type variablesInput map[string]json.RawMessage

func (v variablesInput) strings() (map[string]string, error) {
	out := make(map[string]string, len(v))
	for name, raw := range v {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			out[name] = s
			continue
		}
		t := strings.TrimSpace(string(raw))
		if t == "null" {
			continue
		}
		if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
			return nil, errorf(http.StatusUnprocessableEntity, "invalid_field", "variables.%s must be a string, number or boolean", name)
		}
		out[name] = t
	}
	return out, nil
}

func (a *API) createConversation(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		AssistantID  string         `json:"assistant_id"`
		Type         string         `json:"type"`
		CustomerID   string         `json:"customer_id"`
		CustomerName string         `json:"customer_name"`
		Variables    variablesInput `json:"variables"`
	}
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.AssistantID == "" {
		return errorf(http.StatusUnprocessableEntity, "invalid_field", "assistant_id is required")
	}
	if in.Type != string(conversation.TypeTest) && in.Type != string(conversation.TypeAPI) {
		return errorf(http.StatusUnprocessableEntity, "invalid_field", `type must be "test" or "api" (WhatsApp and widget conversations come from their channels)`)
	}
	vars, err := in.Variables.strings()
	if err != nil {
		return err
	}
	c, err := a.Conversations.Create(r.Context(), workspace(r.Context()), conversation.CreateInput{
		AssistantID: in.AssistantID, Type: conversation.Type(in.Type), CustomerID: in.CustomerID, CustomerName: in.CustomerName,
		Variables: vars, VariableSource: conversation.SourceFlow,
	})
	if err != nil {
		return domainError(err)
	}
	d, err := a.Conversations.Detail(r.Context(), workspace(r.Context()), c.ID)
	if err != nil {
		return domainError(err)
	}
	WriteJSON(w, http.StatusCreated, NewDetailJSON(d, time.Now()))
	return nil
}

func (a *API) listConversations(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseFilter(r.URL.Query(), true)
	if err != nil {
		return err
	}
	page, err := a.Conversations.List(r.Context(), workspace(r.Context()), f)
	if err != nil {
		return domainError(err)
	}
	now := time.Now()
	data := make([]ConversationJSON, 0, len(page.Conversations))
	for i := range page.Conversations {
		data = append(data, NewConversationJSON(&page.Conversations[i], now))
	}
	var next *string
	if page.NextCursor != "" {
		next = &page.NextCursor
	}
	WriteJSON(w, http.StatusOK, map[string]any{"data": data, "next_cursor": next})
	return nil
}

func (a *API) getConversation(w http.ResponseWriter, r *http.Request) error {
	d, err := a.Conversations.Detail(r.Context(), workspace(r.Context()), r.PathValue("id"))
	if err != nil {
		return domainError(err)
	}
	WriteJSON(w, http.StatusOK, NewDetailJSON(d, time.Now()))
	return nil
}

func (a *API) listMessages(w http.ResponseWriter, r *http.Request) error {
	d, err := a.Conversations.Detail(r.Context(), workspace(r.Context()), r.PathValue("id"))
	if err != nil {
		return domainError(err)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"data": messagesJSON(d.Messages)})
	return nil
}

func (a *API) postMessage(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Text string `json:"text"`
		Role string `json:"role"`
	}
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	post := conversation.PostInput{Text: in.Text, Role: conversation.Role(in.Role)}
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return a.postMessageStream(w, r, post)
	}
	msgs, err := a.Conversations.Post(r.Context(), workspace(r.Context()), r.PathValue("id"), post, nil)
	if err != nil {
		return domainError(err)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"messages": messagesJSON(msgs)})
	return nil
}

// sseStream writes a turn as server-sent events: "message" for each stored message, "delta" for
// the reply's text as it is generated, "done" at the end. Headers go out with the first event, so
// input errors found before it are still plain JSON errors.
type sseStream struct {
	w       http.ResponseWriter
	flusher http.Flusher
	started bool
}

func (s *sseStream) start() {
	if s.started {
		return
	}
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
}

func (s *sseStream) event(name string, v any) {
	s.start()
	b, _ := json.Marshal(v)
	fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b)
	if s.flusher != nil {
		s.flusher.Flush()
	}
}

func (s *sseStream) Message(m *conversation.Message) { s.event("message", NewMessageJSON(m)) }
func (s *sseStream) Delta(text string)               { s.event("delta", map[string]string{"text": text}) }

func (a *API) postMessageStream(w http.ResponseWriter, r *http.Request, post conversation.PostInput) error {
	flusher, _ := w.(http.Flusher)
	s := &sseStream{w: w, flusher: flusher}
	msgs, err := a.Conversations.Post(r.Context(), workspace(r.Context()), r.PathValue("id"), post, s)
	if err != nil {
		if !s.started {
			return domainError(err)
		}
		e := domainError(err)
		if _, ok := e.(*Error); !ok {
			e = errorf(http.StatusInternalServerError, "internal_error", "the turn could not be completed")
		}
		s.event("error", errorBody{errorDetail{e.(*Error).Code, e.(*Error).Message}})
		return nil
	}
	s.event("done", map[string]any{"messages": messagesJSON(msgs)})
	return nil
}

func (a *API) handoff(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := DecodeJSON(w, r, &in); err != nil {
			return err
		}
	}
	c, err := a.Conversations.Handoff(r.Context(), workspace(r.Context()), r.PathValue("id"), in.Reason)
	return a.writeConversation(w, c, err)
}

func (a *API) resume(w http.ResponseWriter, r *http.Request) error {
	c, err := a.Conversations.Resume(r.Context(), workspace(r.Context()), r.PathValue("id"))
	return a.writeConversation(w, c, err)
}

func (a *API) end(w http.ResponseWriter, r *http.Request) error {
	c, err := a.Conversations.End(r.Context(), workspace(r.Context()), r.PathValue("id"))
	return a.writeConversation(w, c, err)
}

func (a *API) writeConversation(w http.ResponseWriter, c *conversation.Conversation, err error) error {
	if err != nil {
		return domainError(err)
	}
	WriteJSON(w, http.StatusOK, NewConversationJSON(c, time.Now()))
	return nil
}

// ExportColumns are the CSV header, one row per message with its conversation's columns.
var ExportColumns = []string{"conversation_id", "conversation_type", "conversation_status", "customer_id", "customer_name",
	"assistant_id", "assistant_name", "conversation_created_at", "message_id", "external_id", "created_at", "role", "direction",
	"type", "text", "media", "tool_calls", "status", "error", "tokens_in", "tokens_out", "cost_usd", "latency_ms"}

func (a *API) exportConversations(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseFilter(r.URL.Query(), false)
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "jsonl" {
		return errorf(http.StatusBadRequest, "invalid_parameter", "format must be csv or jsonl")
	}
	return StreamExport(w, r, a.Conversations, workspace(r.Context()), f, format)
}

// StreamExport writes the filtered conversations' messages as CSV or JSONL, flushing as it goes so
// memory stays flat whatever the size. Reading the database and encoding run on two goroutines
// joined by a small bounded channel, so the two halves of the work use two cores.
func StreamExport(w http.ResponseWriter, r *http.Request, svc *conversation.Service, workspaceID string, f conversation.Filter, format string) error {
	name := "conversations-" + time.Now().UTC().Format("20060102-150405") + "." + format
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	batches := make(chan []conversation.ExportRow, 4)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		batch := make([]conversation.ExportRow, 0, 512)
		err := svc.Export(ctx, workspaceID, f, conversation.ExportOptions{Variables: format == "jsonl"}, func(row conversation.ExportRow) error {
			batch = append(batch, row)
			if len(batch) == cap(batch) {
				select {
				case batches <- batch:
				case <-ctx.Done():
					return ctx.Err()
				}
				batch = make([]conversation.ExportRow, 0, 512)
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			select {
			case batches <- batch:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		readErr <- err
	}()

	bw := bufio.NewWriterSize(w, 64<<10)
	flusher, _ := w.(http.Flusher)
	csvOut := format == "csv"
	var row []byte
	if csvOut {
		row = appendCSVRecord(row, ExportColumns...)
		_, _ = bw.Write(row)
	}
	enc := json.NewEncoder(bw)
	rows := 0
	var writeErr error
	var lastConv *conversation.Conversation
	var convCSV []byte
	var convJSON json.RawMessage
	for batch := range batches {
		if writeErr != nil {
			continue // drain so the reader can finish
		}
		for _, r := range batch {
			if csvOut {
				if r.Conversation != lastConv {
					lastConv, convCSV = r.Conversation, conversationCSV(r.Conversation)
				}
				row = appendMessageCSV(row[:0], convCSV, r.Message, r.Stored)
				_, writeErr = bw.Write(row)
			} else {
				if r.Conversation != lastConv {
					lastConv, convJSON = r.Conversation, exportConversation(r.Conversation, r.Variables)
				}
				writeErr = enc.Encode(exportJSON(r.Conversation, r.Message, r.Stored, convJSON))
			}
			if writeErr != nil {
				cancel()
				break
			}
			rows++
		}
		if err := bw.Flush(); err != nil && writeErr == nil {
			writeErr = err
			cancel()
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	err := <-readErr
	if writeErr != nil {
		return nil // the client went away; nothing more to tell it
	}
	if err != nil {
		// Headers are gone; the truncated body is all we can signal. Log it as the failure it is.
		return fmt.Errorf("export after %d rows: %w", rows, err)
	}
	return nil
}

type exportRowJSON struct {
	ConversationID        string `json:"conversation_id"`
	ConversationType      string `json:"conversation_type"`
	ConversationStatus    string `json:"conversation_status"`
	CustomerID            string `json:"customer_id"`
	CustomerName          string `json:"customer_name"`
	AssistantID           string `json:"assistant_id"`
	AssistantName         string `json:"assistant_name"`
	ConversationCreatedAt string `json:"conversation_created_at"`
	MessageJSON
	// The message's JSON fields as stored, when the store hands them on so (they shadow
	// MessageJSON's, which are then empty).
	Media     json.RawMessage `json:"media,omitempty"`
	ToolCalls json.RawMessage `json:"tool_calls,omitempty"`
	Error     json.RawMessage `json:"error,omitempty"`
	// Conversation is what a replay needs besides the messages: the channel context and the
	// variables with their sources (the same object on every row of the conversation).
	Conversation json.RawMessage `json:"conversation"`
}

// ExportConversationJSON is the replayable export's per-conversation context.
type ExportConversationJSON struct {
	ID            string            `json:"id"`
	Type          string            `json:"type"`
	Status        string            `json:"status"`
	AssistantID   string            `json:"assistant_id"`
	CustomerID    string            `json:"customer_id"`
	CustomerName  string            `json:"customer_name"`
	ChannelID     string            `json:"channel_id"`
	Metadata      map[string]string `json:"metadata"`
	HandoffReason string            `json:"handoff_reason,omitempty"`
	CreatedAt     string            `json:"created_at"`
	EndedAt       *string           `json:"ended_at"`
	Variables     []VariableJSON    `json:"variables"`
}

// exportConversation encodes a conversation's context once for all its rows.
func exportConversation(c *conversation.Conversation, vars []conversation.Variable) json.RawMessage {
	out := ExportConversationJSON{ID: c.ID, Type: string(c.Type), Status: string(c.Status), AssistantID: c.AssistantID, CustomerID: c.CustomerID,
		CustomerName: c.CustomerName, ChannelID: c.ChannelID, Metadata: c.Metadata, HandoffReason: c.HandoffReason, CreatedAt: jsonTime(c.CreatedAt),
		EndedAt: jsonTimePtr(c.EndedAt), Variables: make([]VariableJSON, 0, len(vars))}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	for _, v := range vars {
		out.Variables = append(out.Variables, VariableJSON{Name: v.Name, Value: v.Value, Source: v.Source, UpdatedAt: jsonTime(v.UpdatedAt)})
	}
	b, _ := json.Marshal(out)
	return b
}

func exportJSON(c *conversation.Conversation, m *conversation.Message, stored *conversation.StoredJSON, conv json.RawMessage) exportRowJSON {
	row := exportRowJSON{ConversationID: c.ID, ConversationType: string(c.Type), ConversationStatus: string(c.Status), CustomerID: c.CustomerID,
		CustomerName: c.CustomerName, AssistantID: c.AssistantID, AssistantName: c.AssistantName, ConversationCreatedAt: jsonTime(c.CreatedAt),
		MessageJSON: NewMessageJSON(m), Conversation: conv}
	row.Media, row.ToolCalls, row.Error = exportJSONFields(m, stored)
	return row
}

// exportJSONFields returns a message's media, tool calls and error as the export writes them, in
// both formats: as stored when the store handed them on so, else encoded; nil where it has none.
func exportJSONFields(m *conversation.Message, stored *conversation.StoredJSON) (media, toolCalls, msgErr []byte) {
	if stored != nil {
		return stored.Media, stored.ToolCalls, stored.Error
	}
	encode := func(present bool, v any) []byte {
		if !present {
			return nil
		}
		b, _ := json.Marshal(v)
		return b
	}
	return encode(m.Media != nil, m.Media), encode(len(m.ToolCalls) > 0, m.ToolCalls), encode(m.Error != nil, m.Error)
}

// MetricsJSON is the metrics answer.
type MetricsJSON struct {
	TotalConversations      int64            `json:"total_conversations"`
	TotalMessages           int64            `json:"total_messages"`
	MessagesPerConversation float64          `json:"messages_per_conversation"`
	ResponseRate            float64          `json:"response_rate"`
	AvgResponseTimeMS       float64          `json:"avg_response_time_ms"`
	CostPerConversationUSD  float64          `json:"cost_per_conversation_usd"`
	TotalCostUSD            float64          `json:"total_cost_usd"`
	TokensIn                int64            `json:"tokens_in"`
	TokensOut               int64            `json:"tokens_out"`
	ByDay                   []map[string]any `json:"by_day"`
	ByHour                  []map[string]any `json:"by_hour"`
	ByWeekdayHour           [7][24]int64     `json:"by_weekday_hour"`
	ByAssistant             []map[string]any `json:"by_assistant"`
}

// ParseMetricsFilter reads the metrics query.
func ParseMetricsFilter(q map[string][]string) (metrics.Filter, error) {
	cf, err := ParseFilter(q, false)
	if err != nil {
		return metrics.Filter{}, err
	}
	f := metrics.Filter{From: cf.From, To: cf.To, AssistantID: cf.AssistantID}
	for _, t := range cf.Types {
		f.Types = append(f.Types, string(t))
	}
	return f, nil
}

func (a *API) metrics(w http.ResponseWriter, r *http.Request) error {
	f, err := ParseMetricsFilter(r.URL.Query())
	if err != nil {
		return err
	}
	extra := a.metricsFields(r, f) // fields features add, computed beside the report (metrics_extra.go)
	rep, err := metrics.Compute(r.Context(), a.Metrics, workspace(r.Context()), f)
	if err != nil {
		return err
	}
	return writeMetrics(w, NewMetricsJSON(rep), extra)
}

// NewMetricsJSON renders a metrics report.
func NewMetricsJSON(rep *metrics.Report) MetricsJSON {
	out := MetricsJSON{TotalConversations: rep.TotalConversations, TotalMessages: rep.TotalMessages, MessagesPerConversation: rep.MessagesPerConversation,
		ResponseRate: rep.ResponseRate, AvgResponseTimeMS: rep.AvgResponseTimeMS, CostPerConversationUSD: rep.CostPerConversationUSD,
		TotalCostUSD: rep.TotalCostUSD, TokensIn: rep.TokensIn, TokensOut: rep.TokensOut, ByWeekdayHour: rep.ByWeekdayHour,
		ByDay: []map[string]any{}, ByHour: []map[string]any{}, ByAssistant: []map[string]any{}}
	for _, d := range rep.ByDay {
		out.ByDay = append(out.ByDay, map[string]any{"date": d.Date, "conversations": d.Conversations, "messages": d.Messages, "cost_usd": USD(d.CostMicros)})
	}
	for _, h := range rep.ByHour {
		out.ByHour = append(out.ByHour, map[string]any{"hour": h.Hour, "conversations": h.Conversations})
	}
	for _, as := range rep.ByAssistant {
		out.ByAssistant = append(out.ByAssistant, map[string]any{"assistant_id": as.AssistantID, "name": as.Name, "conversations": as.Conversations,
			"messages": as.Messages, "response_rate": as.ResponseRate, "avg_response_time_ms": as.AvgResponseTimeMS,
			"cost_per_conversation_usd": as.CostPerConversationUSD, "total_cost_usd": USD(as.CostMicros)})
	}
	return out
}
