// Package assistant holds assistants (prompt, model, tools, knowledge, extraction schema) and the
// runtime that runs one turn: prompt → model → tools → model … → reply.
package assistant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/llm"
	"github.com/parley-hq/parley/internal/tools"
)

// Assistant is an AI assistant's configuration.
type Assistant struct {
	ID               string
	WorkspaceID      string
	Name             string
	SystemPrompt     string
	Model            string
	Temperature      *float64
	Tools            json.RawMessage // JSON array: built-in tool names or HTTP tool objects
	KnowledgeBaseIDs []string
	Extract          []ExtractField
	FallbackText     string
	Version          int
	CreatedAt        time.Time
	UpdatedAt        time.Time

	// MonthlyBudgetMicros is the cost budget per UTC calendar month (0: none); reaching 80% and
	// 100% of it raises alerts (internal/budget). It does not shape replies: no new version.
	MonthlyBudgetMicros int64

	changed bool // set by apply: something that shapes replies changed
}

// ExtractField is one variable the assistant collects.
type ExtractField struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        string `json:"type"`
	Pattern     string `json:"pattern,omitempty"`
}

// DefaultFallback is what the customer reads when a turn fails and the assistant has no fallback text.
const DefaultFallback = "Sorry, I can't answer right now. Please try again in a moment."

// Repository is what assistants need from the store.
type Repository interface {
	CreateAssistant(ctx context.Context, a *Assistant) error
	GetAssistant(ctx context.Context, workspaceID, id string) (*Assistant, error)
	ListAssistants(ctx context.Context, workspaceID string) ([]*Assistant, error)
	UpdateAssistant(ctx context.Context, a *Assistant) error
	DeleteAssistant(ctx context.Context, workspaceID, id string) error
}

// ValidationError is bad input from the caller: a clear message, and nothing changed.
type ValidationError struct{ Field, Message string }

func (e *ValidationError) Error() string { return e.Field + ": " + e.Message }

// Input is a create or a partial update; nil fields are left as they are.
type Input struct {
	Name             *string          `json:"name"`
	SystemPrompt     *string          `json:"system_prompt"`
	Model            *string          `json:"model"`
	Temperature      *float64         `json:"temperature"`
	Tools            *json.RawMessage `json:"tools"`
	KnowledgeBaseIDs *[]string        `json:"knowledge_base_ids"`
	Extract          *[]ExtractField  `json:"extract"`
	FallbackText     *string          `json:"fallback_text"`
	// MonthlyBudgetUSD is set when the field is present: a number of dollars, or null or 0 for none.
	MonthlyBudgetUSD OptionalNumber `json:"monthly_budget_usd"`
}

// OptionalNumber is a JSON number field that may be absent (leave as is), null or a number.
type OptionalNumber struct {
	Set   bool
	Value *float64 // nil: null
}

// UnmarshalJSON records that the field was present; anything but a number or null is refused as
// a type error, which the API answers 400 naming the field.
func (o *OptionalNumber) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Value = nil
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return &json.UnmarshalTypeError{Value: "non-number", Type: reflect.TypeFor[float64]()}
	}
	o.Value = &v
	return nil
}

// ToolSecrets keeps the header values of assistants' HTTP tools apart from the assistant (sealed
// at rest); the assistant's tools JSON shows only HeaderMask in their place.
type ToolSecrets interface {
	// SaveToolHeaders replaces an assistant's header values: tool name → header → plain value.
	SaveToolHeaders(ctx context.Context, workspaceID, assistantID string, headers map[string]map[string]string) error
	// ToolHeaders returns them opened.
	ToolHeaders(ctx context.Context, workspaceID, assistantID string) (map[string]map[string]string, error)
}

// KnowledgeBases checks knowledge base ids.
type KnowledgeBases interface {
	Exists(ctx context.Context, workspaceID string, ids []string) error
}

// Service manages assistants.
type Service struct {
	repo Repository
	// Secrets stores HTTP tool header values; without it, tools with header values are refused.
	Secrets ToolSecrets
	// KnowledgeBases, when set, validates knowledge_base_ids.
	KnowledgeBases KnowledgeBases
}

// NewService returns the assistant service.
func NewService(repo Repository) *Service { return &Service{repo: repo} }

// Create validates in and stores a new assistant.
func (s *Service) Create(ctx context.Context, workspaceID string, in Input) (*Assistant, error) {
	if in.Name == nil {
		return nil, &ValidationError{"name", "is required"}
	}
	if in.Model == nil || strings.TrimSpace(*in.Model) == "" {
		m := llm.BuiltinModel
		in.Model = &m
	}
	now := time.Now().UTC()
	a := &Assistant{ID: ids.New(), WorkspaceID: workspaceID, Tools: json.RawMessage("[]"), KnowledgeBaseIDs: []string{}, Extract: []ExtractField{}, Version: 1, CreatedAt: now, UpdatedAt: now}
	headers, err := apply(a, in)
	if err != nil {
		return nil, err
	}
	if err := s.checkKnowledge(ctx, workspaceID, in); err != nil {
		return nil, err
	}
	if err := s.saveHeaders(ctx, a, headers, nil); err != nil {
		return nil, err
	}
	if err := s.repo.CreateAssistant(ctx, a); err != nil {
		return nil, fmt.Errorf("create assistant: %w", err)
	}
	return a, nil
}

// Get returns one assistant of the workspace.
func (s *Service) Get(ctx context.Context, workspaceID, id string) (*Assistant, error) {
	return s.repo.GetAssistant(ctx, workspaceID, id)
}

// List returns the workspace's assistants.
func (s *Service) List(ctx context.Context, workspaceID string) ([]*Assistant, error) {
	return s.repo.ListAssistants(ctx, workspaceID)
}

// Update applies a partial update; a change to what shapes the replies makes a new version.
func (s *Service) Update(ctx context.Context, workspaceID, id string, in Input) (*Assistant, error) {
	a, err := s.repo.GetAssistant(ctx, workspaceID, id)
	if err != nil {
		return nil, err
	}
	old := string(a.Tools)
	headers, err := apply(a, in)
	if err != nil {
		return nil, err
	}
	if err := s.checkKnowledge(ctx, workspaceID, in); err != nil {
		return nil, err
	}
	if in.Tools != nil {
		var existing map[string]map[string]string
		if s.Secrets != nil && strings.Contains(old, HeaderMaskJSON) {
			if existing, err = s.Secrets.ToolHeaders(ctx, workspaceID, id); err != nil {
				return nil, fmt.Errorf("read tool headers: %w", err)
			}
		}
		if err := s.saveHeaders(ctx, a, headers, existing); err != nil {
			return nil, err
		}
	}
	if a.changed {
		a.Version++
	}
	a.UpdatedAt = time.Now().UTC()
	if err := s.repo.UpdateAssistant(ctx, a); err != nil {
		return nil, fmt.Errorf("update assistant: %w", err)
	}
	return a, nil
}

// Delete removes an assistant; its conversations keep their history.
func (s *Service) Delete(ctx context.Context, workspaceID, id string) error {
	if err := s.repo.DeleteAssistant(ctx, workspaceID, id); err != nil {
		return err
	}
	if s.Secrets != nil {
		// Its HTTP tools' header values go with it.
		if err := s.Secrets.SaveToolHeaders(ctx, workspaceID, id, nil); err != nil {
			return fmt.Errorf("delete tool headers: %w", err)
		}
	}
	return nil
}

// maxBudgetUSD bounds a monthly budget, so that micro-dollar arithmetic cannot overflow.
const maxBudgetUSD = 1_000_000_000

var (
	variableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	extractTypes = map[string]bool{"string": true, "number": true, "integer": true, "boolean": true, "email": true, "phone": true, "date": true}
)

// HeaderMaskJSON is how a masked header value appears in the tools JSON.
var HeaderMaskJSON = `"` + tools.HeaderMask + `"`

func (s *Service) checkKnowledge(ctx context.Context, workspaceID string, in Input) error {
	if in.KnowledgeBaseIDs == nil || s.KnowledgeBases == nil || len(*in.KnowledgeBaseIDs) == 0 {
		return nil
	}
	if err := s.KnowledgeBases.Exists(ctx, workspaceID, *in.KnowledgeBaseIDs); err != nil {
		return &ValidationError{"knowledge_base_ids", "must name knowledge bases of this workspace (" + err.Error() + ")"}
	}
	return nil
}

// saveHeaders stores the header values of the assistant's HTTP tools; a masked value keeps what
// was stored for that tool and header before.
func (s *Service) saveHeaders(ctx context.Context, a *Assistant, headers, existing map[string]map[string]string) error {
	out := map[string]map[string]string{}
	n := 0
	for tool, hs := range headers {
		for h, v := range hs {
			if v == tools.HeaderMask {
				old, ok := existing[tool][h]
				if !ok {
					return &ValidationError{"tools", fmt.Sprintf("header %s of tool %s is masked but has no stored value; send the value", h, tool)}
				}
				v = old
			}
			if out[tool] == nil {
				out[tool] = map[string]string{}
			}
			out[tool][h] = v
			n++
		}
	}
	if s.Secrets == nil {
		if n > 0 {
			return &ValidationError{"tools", "HTTP tool headers need the secret store, which is not configured"}
		}
		return nil
	}
	if n == 0 && len(existing) == 0 {
		return nil // nothing to store, nothing to clear
	}
	if err := s.Secrets.SaveToolHeaders(ctx, a.WorkspaceID, a.ID, out); err != nil {
		return fmt.Errorf("save tool headers: %w", err)
	}
	return nil
}

// apply copies the set fields of in onto a after validating them, records in a.changed whether
// anything that shapes replies (prompt, model, temperature, tools, knowledge, extraction) changed,
// and returns the HTTP tools' header values (tool → header → value) taken out of the tools JSON.
func apply(a *Assistant, in Input) (map[string]map[string]string, error) {
	var headers map[string]map[string]string
	versioned := false
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		if name == "" || len(name) > 200 {
			return nil, &ValidationError{"name", "must be 1 to 200 characters"}
		}
		a.Name = name
	}
	if in.SystemPrompt != nil {
		if len(*in.SystemPrompt) > 100_000 {
			return nil, &ValidationError{"system_prompt", "must be at most 100000 characters"}
		}
		versioned = versioned || a.SystemPrompt != *in.SystemPrompt
		a.SystemPrompt = *in.SystemPrompt
	}
	if in.Model != nil {
		model := strings.TrimSpace(*in.Model)
		if model == "" || len(model) > 200 {
			return nil, &ValidationError{"model", "must be 1 to 200 characters"}
		}
		versioned = versioned || a.Model != model
		a.Model = model
	}
	if in.Temperature != nil {
		if *in.Temperature < 0 || *in.Temperature > 2 {
			return nil, &ValidationError{"temperature", "must be between 0 and 2"}
		}
		t := *in.Temperature
		versioned = versioned || a.Temperature == nil || *a.Temperature != t
		a.Temperature = &t
	}
	if in.Tools != nil {
		normalized, hs, err := normalizeTools(*in.Tools)
		if err != nil {
			return nil, err
		}
		versioned = versioned || string(a.Tools) != string(normalized)
		a.Tools = normalized
		headers = hs
	}
	if in.KnowledgeBaseIDs != nil {
		kbs := []string{}
		for _, id := range *in.KnowledgeBaseIDs {
			if strings.TrimSpace(id) == "" {
				return nil, &ValidationError{"knowledge_base_ids", "must not contain empty ids"}
			}
			kbs = append(kbs, id)
		}
		versioned = versioned || strings.Join(a.KnowledgeBaseIDs, ",") != strings.Join(kbs, ",")
		a.KnowledgeBaseIDs = kbs
	}
	if in.Extract != nil {
		fields := []ExtractField{}
		seen := map[string]bool{}
		for i, f := range *in.Extract {
			if !variableName.MatchString(f.Name) {
				return nil, &ValidationError{fmt.Sprintf("extract[%d].name", i), "must be letters, digits and underscores, starting with a letter"}
			}
			if seen[f.Name] {
				return nil, &ValidationError{fmt.Sprintf("extract[%d].name", i), "is a duplicate"}
			}
			seen[f.Name] = true
			if f.Type == "" {
				f.Type = "string"
			}
			if !extractTypes[f.Type] {
				return nil, &ValidationError{fmt.Sprintf("extract[%d].type", i), "must be one of string, number, integer, boolean, email, phone, date"}
			}
			if f.Pattern != "" {
				if _, err := regexp.Compile(f.Pattern); err != nil {
					return nil, &ValidationError{fmt.Sprintf("extract[%d].pattern", i), "is not a valid regular expression"}
				}
			}
			fields = append(fields, f)
		}
		old, _ := json.Marshal(a.Extract)
		nw, _ := json.Marshal(fields)
		versioned = versioned || string(old) != string(nw)
		a.Extract = fields
	}
	if in.FallbackText != nil {
		if len(*in.FallbackText) > 4096 {
			return nil, &ValidationError{"fallback_text", "must be at most 4096 characters"}
		}
		a.FallbackText = *in.FallbackText
	}
	if in.MonthlyBudgetUSD.Set {
		a.MonthlyBudgetMicros = 0
		if v := in.MonthlyBudgetUSD.Value; v != nil {
			if math.IsNaN(*v) || *v < 0 || *v > maxBudgetUSD {
				return nil, &ValidationError{"monthly_budget_usd", "must be a number of US dollars from 0 (no budget) to 1000000000, or null"}
			}
			a.MonthlyBudgetMicros = int64(math.Round(*v * 1e6))
		}
	}
	a.changed = versioned
	return headers, nil
}

// normalizeTools checks that tools is a JSON array whose items are built-in tool names or HTTP
// tool objects, and returns it compacted with header values masked, and the header values apart.
func normalizeTools(raw json.RawMessage) (json.RawMessage, map[string]map[string]string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, nil, &ValidationError{"tools", "must be an array"}
	}
	out := make([]any, 0, len(items))
	headers := map[string]map[string]string{}
	seen := map[string]bool{}
	for i, item := range items {
		field := fmt.Sprintf("tools[%d]", i)
		var name string
		if json.Unmarshal(item, &name) == nil {
			if !tools.IsBuiltin(name) {
				return nil, nil, &ValidationError{field, fmt.Sprintf("unknown built-in tool %q", name)}
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, name)
			continue
		}
		var t tools.HTTPTool
		dec := json.NewDecoder(strings.NewReader(string(item)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return nil, nil, &ValidationError{field, "must be a built-in tool name or an HTTP tool object {type, name, description, parameters, method, url, headers, timeout_ms}"}
		}
		if t.Type == "" && t.URL != "" {
			t.Type = "http"
		}
		if err := t.Validate(); err != nil {
			return nil, nil, &ValidationError{field, err.Error()}
		}
		if seen[t.Name] {
			return nil, nil, &ValidationError{field, fmt.Sprintf("tool name %q is used twice", t.Name)}
		}
		seen[t.Name] = true
		if len(t.Headers) > 0 {
			headers[t.Name] = map[string]string{}
			for h, v := range t.Headers {
				headers[t.Name][h] = v
				t.Headers[h] = tools.HeaderMask
			}
		}
		if len(t.Parameters) > 0 {
			var compact bytes.Buffer
			if err := json.Compact(&compact, t.Parameters); err == nil {
				t.Parameters = json.RawMessage(compact.String())
			}
		}
		out = append(out, t)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, nil, errors.New("tools: cannot encode")
	}
	return b, headers, nil
}
