package assistant

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/parley-hq/parley/internal/llm"
	"github.com/parley-hq/parley/internal/tools"
)

// Extraction is what post-conversation extraction found: validated values of the assistant's
// extract schema, and what the model call cost.
type Extraction struct {
	Values     map[string]string
	Usage      llm.Usage
	CostMicros int64
}

// saveVariablesTool is the tool the model answers extraction with.
const saveVariablesTool = "save_variables"

// Extract fills the assistant's extract schema from the conversation (oldest message first). With
// a language model, the model reads the transcript and answers through a save_variables call (or
// a JSON object); the builtin model finds values by their type or pattern in what the customer
// wrote. Values that fail the field's type or pattern are left out.
func (r *Runtime) Extract(ctx context.Context, a *Assistant, history []llm.Message, known map[string]string) (Extraction, error) {
	out := Extraction{Values: map[string]string{}}
	if len(a.Extract) == 0 {
		return out, nil
	}
	fields := make([]tools.Field, 0, len(a.Extract))
	for _, f := range a.Extract {
		fields = append(fields, tools.Field{Name: f.Name, Description: f.Description, Type: f.Type, Pattern: f.Pattern})
	}
	var raw map[string]string
	if a.Model == llm.BuiltinModel {
		raw = builtinExtract(fields, history)
	} else {
		provider, err := r.Providers.Provider(ctx, a.WorkspaceID, a.Model)
		if err != nil {
			return out, err
		}
		req := extractionRequest(a, fields, history, known)
		resp, err := r.chat(ctx, provider, &req, nil)
		if err != nil {
			return out, fmt.Errorf("extraction: %w", err)
		}
		out.Usage = resp.Usage
		if r.Prices != nil {
			out.CostMicros = r.Prices.Cost(ctx, a.WorkspaceID, a.Model, resp.Usage)
		}
		raw = parseExtraction(resp)
	}
	for _, f := range fields {
		v, ok := raw[f.Name]
		v = strings.TrimSpace(v)
		if !ok || v == "" || isNone(v) {
			continue
		}
		if err := tools.ValidateVariable(fields, f.Name, v); err != nil {
			if r.Log != nil {
				r.Log.Info("extraction: value rejected by the schema", "assistant", a.ID, "field", f.Name, "err", err)
			}
			continue
		}
		out.Values[f.Name] = v
	}
	return out, nil
}

func isNone(v string) bool {
	switch strings.ToLower(v) {
	case "null", "none", "unknown", "n/a", "not provided", "-":
		return true
	}
	return false
}

func extractionRequest(a *Assistant, fields []tools.Field, history []llm.Message, known map[string]string) llm.Request {
	props := map[string]any{}
	var lines []string
	for _, f := range fields {
		desc := f.Description
		if desc == "" {
			desc = strings.ReplaceAll(f.Name, "_", " ")
		}
		hint := map[string]string{"email": " (an email address)", "phone": " (a phone number, digits with optional +)", "date": " (YYYY-MM-DD)",
			"number": " (a number)", "integer": " (a whole number)", "boolean": " (true or false)"}[f.Type]
		props[f.Name] = map[string]any{"type": "string", "description": desc + hint}
		lines = append(lines, fmt.Sprintf("- %s: %s%s", f.Name, desc, hint))
	}
	schema, _ := json.Marshal(map[string]any{"type": "object", "properties": props})
	var transcript strings.Builder
	for _, m := range history {
		switch m.Role {
		case "user":
			fmt.Fprintf(&transcript, "Customer: %s\n", m.Content)
		case "assistant":
			if m.Content != "" {
				fmt.Fprintf(&transcript, "Assistant: %s\n", m.Content)
			}
		}
	}
	var knownText strings.Builder
	for _, f := range fields {
		if v, ok := known[f.Name]; ok && v != "" {
			fmt.Fprintf(&knownText, "- %s: %s\n", f.Name, v)
		}
	}
	system := "You extract structured data from a finished customer conversation. Fill these fields from what the customer said:\n" +
		strings.Join(lines, "\n") + "\n\nCall " + saveVariablesTool + " once with the fields you found. Leave out a field the conversation does not give; never guess."
	if knownText.Len() > 0 {
		system += "\n\nAlready known (correct them only if the customer said otherwise):\n" + knownText.String()
	}
	return llm.Request{
		Model:    a.Model,
		Messages: []llm.Message{{Role: "system", Content: system}, {Role: "user", Content: "The conversation:\n\n" + transcript.String()}},
		Tools:    []llm.ToolDef{{Name: saveVariablesTool, Description: "Save the fields found in the conversation.", Parameters: schema}},
	}
}

// parseExtraction reads the values from a save_variables call, or from a JSON object in the text.
func parseExtraction(resp llm.Response) map[string]string {
	for _, tc := range resp.ToolCalls {
		if tc.Name == saveVariablesTool {
			if v := jsonObjectValues(tc.Arguments); v != nil {
				return v
			}
		}
	}
	text := resp.Content
	if i, j := strings.Index(text, "{"), strings.LastIndex(text, "}"); i >= 0 && j > i {
		if v := jsonObjectValues(text[i : j+1]); v != nil {
			return v
		}
	}
	return map[string]string{}
}

func jsonObjectValues(s string) map[string]string {
	var obj map[string]any
	if json.Unmarshal([]byte(s), &obj) != nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range obj {
		switch x := v.(type) {
		case string:
			out[k] = x
		case float64:
			out[k] = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			out[k] = strconv.FormatBool(x)
		}
	}
	return out
}

var (
	exEmail = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	exPhone = regexp.MustCompile(`\+?\d[\d\s().\-]{6,}\d`)
	exDate  = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}\b`)
	exOrder = regexp.MustCompile(`\b(?:[A-Z]{2,5}-\d{3,}|#\d{4,})\b`)
	exNum   = regexp.MustCompile(`-?\b\d+(?:\.\d+)?\b`)
)

// builtinExtract is the offline model's extraction: for each field, the latest thing the customer
// wrote that fits its pattern, or its type (email, phone, date, number; order numbers for fields
// named like order).
func builtinExtract(fields []tools.Field, history []llm.Message) map[string]string {
	out := map[string]string{}
	for _, f := range fields {
		var re *regexp.Regexp
		switch {
		case f.Pattern != "":
			re, _ = regexp.Compile(f.Pattern)
			if re != nil && strings.HasPrefix(f.Pattern, "^") {
				re, _ = regexp.Compile(strings.TrimSuffix(strings.TrimPrefix(f.Pattern, "^"), "$"))
			}
		case f.Type == "email":
			re = exEmail
		case f.Type == "phone":
			re = exPhone
		case f.Type == "date":
			re = exDate
		case strings.Contains(strings.ToLower(f.Name), "order"):
			re = exOrder
		case f.Type == "number" || f.Type == "integer":
			re = exNum
		}
		if re == nil {
			continue
		}
		for i := len(history) - 1; i >= 0; i-- {
			m := history[i]
			if m.Role != "user" {
				continue
			}
			if v := re.FindString(m.Content); v != "" {
				if f.Type == "phone" {
					v = strings.Map(func(r rune) rune {
						if r >= '0' && r <= '9' || r == '+' {
							return r
						}
						return -1
					}, v)
				}
				out[f.Name] = v
				break
			}
		}
	}
	return out
}
