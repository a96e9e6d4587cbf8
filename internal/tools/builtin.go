// Package tools holds the tools an assistant's model can call: the built-in ones that act on the
// conversation (variables, handoff, end, appointments, knowledge search) and HTTP tools.
package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/llm"
)

// Built-in tool names.
const (
	SearchKnowledge     = "search_knowledge"
	SetVariable         = "set_variable"
	TransferToHuman     = "transfer_to_human"
	EndConversation     = "end_conversation"
	ScheduleAppointment = "schedule_appointment"
)

// IsBuiltin reports whether name is a built-in tool.
func IsBuiltin(name string) bool {
	switch name {
	case SearchKnowledge, SetVariable, TransferToHuman, EndConversation, ScheduleAppointment:
		return true
	}
	return false
}

// Variable is a value a tool sets on the conversation.
type Variable struct {
	Name, Value, Source string
}

// Effects are what a round's tool calls do to the conversation; the conversation service stores
// them in the same transaction as the round's message.
type Effects struct {
	Variables []Variable
	Handoff   *string // reason
	End       bool
}

// Merge adds o's effects to e.
func (e *Effects) Merge(o Effects) {
	e.Variables = append(e.Variables, o.Variables...)
	if o.Handoff != nil {
		e.Handoff = o.Handoff
	}
	e.End = e.End || o.End
}

// Passage is one knowledge-base search hit.
type Passage struct {
	KnowledgeBaseID string  `json:"knowledge_base_id"`
	DocumentID      string  `json:"document_id"`
	Title           string  `json:"title"`
	Content         string  `json:"content"`
	Score           float64 `json:"score"`
}

// Searcher searches knowledge bases.
type Searcher interface {
	Search(ctx context.Context, workspaceID string, kbIDs []string, query string, limit int) ([]Passage, error)
}

// Field is one variable of an assistant's extraction schema, as the tools validate it.
type Field struct {
	Name, Description, Type, Pattern string
}

// Env is what a tool call may look at.
type Env struct {
	WorkspaceID      string
	ConversationID   string
	KnowledgeBaseIDs []string
	Extract          []Field
	Knowledge        Searcher
}

// Definitions returns the built-in tools offered to the model: the conversation tools always,
// knowledge search when the assistant has knowledge, appointments when enabled.
func Definitions(env *Env, enabled []string) []llm.ToolDef {
	defs := []llm.ToolDef{
		{Name: SetVariable, Description: "Record a detail the customer gave (email, phone, order number, name…).", Parameters: json.RawMessage(setVariableSchema(env.Extract))},
		{Name: TransferToHuman, Description: "Hand the conversation to a human agent when the customer asks for one or you cannot help.", Parameters: json.RawMessage(`{"type":"object","properties":{"reason":{"type":"string","description":"Why a human is needed."}},"required":["reason"]}`)},
		{Name: EndConversation, Description: "End the conversation when the customer's request is fully resolved and they said goodbye.", Parameters: json.RawMessage(`{"type":"object","properties":{}}`)},
	}
	if len(env.KnowledgeBaseIDs) > 0 && env.Knowledge != nil {
		defs = append([]llm.ToolDef{{Name: SearchKnowledge, Description: "Search the business's knowledge base for facts to answer the customer.", Parameters: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}`)}}, defs...)
	}
	for _, name := range enabled {
		if name == ScheduleAppointment {
			defs = append(defs, llm.ToolDef{Name: ScheduleAppointment, Description: "Book an appointment slot the customer asked for.", Parameters: json.RawMessage(`{"type":"object","properties":{"date":{"type":"string","description":"YYYY-MM-DD"},"time":{"type":"string","description":"HH:MM"},"name":{"type":"string"},"notes":{"type":"string"}},"required":["date","time"]}`)})
		}
	}
	return defs
}

func setVariableSchema(fields []Field) string {
	desc := "The variable's name."
	if len(fields) > 0 {
		var names []string
		for _, f := range fields {
			names = append(names, fmt.Sprintf("%s (%s): %s", f.Name, f.Type, f.Description))
		}
		desc = "One of: " + strings.Join(names, "; ")
	}
	b, _ := json.Marshal(desc)
	return `{"type":"object","properties":{"name":{"type":"string","description":` + string(b) + `},"value":{"type":"string"}},"required":["name","value"]}`
}

// Call runs a built-in tool. The result is the text the model reads back; errors the model can act
// on (a bad argument) are results too, not failures of the turn.
func Call(ctx context.Context, env *Env, name, arguments string) (string, Effects) {
	var fx Effects
	args := map[string]any{}
	if strings.TrimSpace(arguments) != "" {
		if err := json.Unmarshal([]byte(arguments), &args); err != nil {
			return errorResult("arguments are not a JSON object"), fx
		}
	}
	str := func(k string) string {
		switch v := args[k].(type) {
		case string:
			return strings.TrimSpace(v)
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			return strconv.FormatBool(v)
		}
		return ""
	}
	switch name {
	case SetVariable:
		vname, value := str("name"), str("value")
		if err := validateVariable(env.Extract, vname, value); err != nil {
			return errorResult(err.Error()), fx
		}
		fx.Variables = append(fx.Variables, Variable{Name: vname, Value: value, Source: "extracted"})
		return jsonResult(map[string]any{"ok": true, "name": vname, "value": value}), fx
	case TransferToHuman:
		reason := str("reason")
		if reason == "" {
			reason = "transfer requested"
		}
		fx.Handoff = &reason
		return jsonResult(map[string]any{"ok": true, "status": "handoff", "message": "A human agent will take over; stop answering."}), fx
	case EndConversation:
		fx.End = true
		return jsonResult(map[string]any{"ok": true, "status": "ended"}), fx
	case ScheduleAppointment:
		date, tm := str("date"), str("time")
		if _, err := time.Parse("2006-01-02", date); err != nil {
			return errorResult("date must be YYYY-MM-DD"), fx
		}
		if _, err := time.Parse("15:04", tm); err != nil {
			return errorResult("time must be HH:MM"), fx
		}
		fx.Variables = append(fx.Variables, Variable{Name: "appointment_date", Value: date, Source: "extracted"}, Variable{Name: "appointment_time", Value: tm, Source: "extracted"})
		if n := str("name"); n != "" {
			fx.Variables = append(fx.Variables, Variable{Name: "appointment_name", Value: n, Source: "extracted"})
		}
		if n := str("notes"); n != "" {
			fx.Variables = append(fx.Variables, Variable{Name: "appointment_notes", Value: n, Source: "extracted"})
		}
		return jsonResult(map[string]any{"ok": true, "date": date, "time": tm, "status": "requested"}), fx
	case SearchKnowledge:
		q := str("query")
		if q == "" {
			return errorResult("query is required"), fx
		}
		if env.Knowledge == nil || len(env.KnowledgeBaseIDs) == 0 {
			return jsonResult(map[string]any{"results": []Passage{}}), fx
		}
		hits, err := env.Knowledge.Search(ctx, env.WorkspaceID, env.KnowledgeBaseIDs, q, 3)
		if err != nil {
			return errorResult("knowledge search failed"), fx
		}
		if hits == nil {
			hits = []Passage{}
		}
		return jsonResult(map[string]any{"results": hits}), fx
	}
	return errorResult(fmt.Sprintf("unknown tool %q", name)), fx
}

var (
	emailRe = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	phoneRe = regexp.MustCompile(`^\+?[0-9]{7,15}$`)
	nameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
)

// validateVariable checks a value against the assistant's extraction schema when the name is in it.
func validateVariable(fields []Field, name, value string) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("name must be letters, digits and underscores")
	}
	if value == "" || len(value) > 2000 {
		return fmt.Errorf("value must be 1 to 2000 characters")
	}
	for _, f := range fields {
		if f.Name != name {
			continue
		}
		switch f.Type {
		case "email":
			if !emailRe.MatchString(value) {
				return fmt.Errorf("%s must be an email address", name)
			}
		case "phone":
			digits := strings.NewReplacer(" ", "", "-", "", "(", "", ")", "", ".", "").Replace(value)
			if !phoneRe.MatchString(digits) {
				return fmt.Errorf("%s must be a phone number", name)
			}
		case "number":
			if _, err := strconv.ParseFloat(value, 64); err != nil {
				return fmt.Errorf("%s must be a number", name)
			}
		case "integer":
			if _, err := strconv.ParseInt(value, 10, 64); err != nil {
				return fmt.Errorf("%s must be a whole number", name)
			}
		case "boolean":
			if _, err := strconv.ParseBool(value); err != nil {
				return fmt.Errorf("%s must be true or false", name)
			}
		case "date":
			if _, err := time.Parse("2006-01-02", value); err != nil {
				return fmt.Errorf("%s must be a date YYYY-MM-DD", name)
			}
		}
		if f.Pattern != "" {
			if re, err := regexp.Compile(f.Pattern); err == nil && !re.MatchString(value) {
				return fmt.Errorf("%s does not match the expected format", name)
			}
		}
	}
	return nil
}

func jsonResult(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func errorResult(msg string) string {
	return jsonResult(map[string]any{"ok": false, "error": msg})
}

// ValidateVariable checks a value against an extraction schema when the name is in it (type and
// pattern), as set_variable does.
func ValidateVariable(fields []Field, name, value string) error {
	return validateVariable(fields, name, value)
}
