// Package assistant holds assistants (prompt, model, tools, knowledge, extraction schema) and the
// runtime that runs one turn: prompt → model → tools → model … → reply.
package assistant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
}

// Service manages assistants.
type Service struct{ repo Repository }

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
	if _, err := apply(a, in); err != nil {
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
	changed, err := apply(a, in)
	if err != nil {
		return nil, err
	}
	if changed {
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
	return s.repo.DeleteAssistant(ctx, workspaceID, id)
}

var (
	variableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	extractTypes = map[string]bool{"string": true, "number": true, "integer": true, "boolean": true, "email": true, "phone": true, "date": true}
)

// apply copies the set fields of in onto a after validating them, and reports whether anything
// that shapes replies (prompt, model, temperature, tools, knowledge, extraction) changed.
func apply(a *Assistant, in Input) (bool, error) {
	versioned := false
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		if name == "" || len(name) > 200 {
			return false, &ValidationError{"name", "must be 1 to 200 characters"}
		}
		a.Name = name
	}
	if in.SystemPrompt != nil {
		if len(*in.SystemPrompt) > 100_000 {
			return false, &ValidationError{"system_prompt", "must be at most 100000 characters"}
		}
		versioned = versioned || a.SystemPrompt != *in.SystemPrompt
		a.SystemPrompt = *in.SystemPrompt
	}
	if in.Model != nil {
		model := strings.TrimSpace(*in.Model)
		if model == "" || len(model) > 200 {
			return false, &ValidationError{"model", "must be 1 to 200 characters"}
		}
		versioned = versioned || a.Model != model
		a.Model = model
	}
	if in.Temperature != nil {
		if *in.Temperature < 0 || *in.Temperature > 2 {
			return false, &ValidationError{"temperature", "must be between 0 and 2"}
		}
		t := *in.Temperature
		versioned = versioned || a.Temperature == nil || *a.Temperature != t
		a.Temperature = &t
	}
	if in.Tools != nil {
		tools, err := normalizeTools(*in.Tools)
		if err != nil {
			return false, err
		}
		versioned = versioned || string(a.Tools) != string(tools)
		a.Tools = tools
	}
	if in.KnowledgeBaseIDs != nil {
		kbs := []string{}
		for _, id := range *in.KnowledgeBaseIDs {
			if strings.TrimSpace(id) == "" {
				return false, &ValidationError{"knowledge_base_ids", "must not contain empty ids"}
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
				return false, &ValidationError{fmt.Sprintf("extract[%d].name", i), "must be letters, digits and underscores, starting with a letter"}
			}
			if seen[f.Name] {
				return false, &ValidationError{fmt.Sprintf("extract[%d].name", i), "is a duplicate"}
			}
			seen[f.Name] = true
			if f.Type == "" {
				f.Type = "string"
			}
			if !extractTypes[f.Type] {
				return false, &ValidationError{fmt.Sprintf("extract[%d].type", i), "must be one of string, number, integer, boolean, email, phone, date"}
			}
			if f.Pattern != "" {
				if _, err := regexp.Compile(f.Pattern); err != nil {
					return false, &ValidationError{fmt.Sprintf("extract[%d].pattern", i), "is not a valid regular expression"}
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
			return false, &ValidationError{"fallback_text", "must be at most 4096 characters"}
		}
		a.FallbackText = *in.FallbackText
	}
	return versioned, nil
}

// normalizeTools checks that tools is a JSON array whose items are built-in tool names or tool
// objects with a name, and returns it compacted.
func normalizeTools(raw json.RawMessage) (json.RawMessage, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, &ValidationError{"tools", "must be an array"}
	}
	out := make([]json.RawMessage, 0, len(items))
	for i, item := range items {
		var name string
		if json.Unmarshal(item, &name) == nil {
			if !tools.IsBuiltin(name) {
				return nil, &ValidationError{fmt.Sprintf("tools[%d]", i), fmt.Sprintf("unknown built-in tool %q", name)}
			}
			out = append(out, item)
			continue
		}
		var obj struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(item, &obj); err != nil || !variableName.MatchString(obj.Name) {
			return nil, &ValidationError{fmt.Sprintf("tools[%d]", i), "must be a built-in tool name or an object with a valid name"}
		}
		out = append(out, item)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, errors.New("tools: cannot encode")
	}
	return b, nil
}
