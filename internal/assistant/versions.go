package assistant

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Snapshot is the configuration one version of an assistant answers with: everything that shapes
// replies, and the fallback text. HTTP tools' header values are masked, as in the assistant's tools
// JSON: their secrets are never part of a snapshot.
type Snapshot struct {
	SystemPrompt     string          `json:"system_prompt"`
	Model            string          `json:"model"`
	Temperature      *float64        `json:"temperature"`
	Tools            json.RawMessage `json:"tools"`
	KnowledgeBaseIDs []string        `json:"knowledge_base_ids"`
	Extract          []ExtractField  `json:"extract"`
	FallbackText     string          `json:"fallback_text"`
}

// Version is a stored version of an assistant.
type Version struct {
	WorkspaceID string
	AssistantID string
	Version     int
	Snapshot    Snapshot
	CreatedAt   time.Time
}

// VersionRepository reads the stored versions; the store writes one in the same transaction as
// every create and update of an assistant (the version's snapshot is its latest state).
type VersionRepository interface {
	AssistantVersions(ctx context.Context, workspaceID, assistantID string) ([]Version, error)
	AssistantVersion(ctx context.Context, workspaceID, assistantID string, version int) (*Version, error)
}

// ErrVersionNotFound is returned for a version the assistant never had.
var ErrVersionNotFound = errors.New("assistant version not found")

// Snapshot returns the assistant's current configuration as a version snapshot.
func (a *Assistant) Snapshot() Snapshot {
	s := Snapshot{SystemPrompt: a.SystemPrompt, Model: a.Model, Tools: a.Tools, KnowledgeBaseIDs: a.KnowledgeBaseIDs, Extract: a.Extract, FallbackText: a.FallbackText}
	if a.Temperature != nil {
		t := *a.Temperature
		s.Temperature = &t
	}
	if s.Tools == nil {
		s.Tools = json.RawMessage("[]")
	}
	if s.KnowledgeBaseIDs == nil {
		s.KnowledgeBaseIDs = []string{}
	}
	if s.Extract == nil {
		s.Extract = []ExtractField{}
	}
	return s
}

// AtVersion returns a copy of the assistant configured as the given version was.
func (a *Assistant) AtVersion(v Version) *Assistant {
	c := *a
	s := v.Snapshot
	c.SystemPrompt, c.Model, c.Tools, c.FallbackText, c.Version = s.SystemPrompt, s.Model, s.Tools, s.FallbackText, v.Version
	c.Temperature = s.Temperature
	c.KnowledgeBaseIDs = append([]string{}, s.KnowledgeBaseIDs...)
	c.Extract = append([]ExtractField{}, s.Extract...)
	if c.Tools == nil {
		c.Tools = json.RawMessage("[]")
	}
	return &c
}

// Versions lists an assistant's stored versions, oldest first.
func (s *Service) Versions(ctx context.Context, workspaceID, id string) ([]Version, error) {
	vr, ok := s.repo.(VersionRepository)
	if !ok {
		return nil, errors.New("this store keeps no assistant versions")
	}
	if _, err := s.repo.GetAssistant(ctx, workspaceID, id); err != nil {
		return nil, err
	}
	return vr.AssistantVersions(ctx, workspaceID, id)
}

// Version returns one stored version of a live assistant (ErrVersionNotFound when it has none such).
func (s *Service) Version(ctx context.Context, workspaceID, id string, version int) (*Version, error) {
	vr, ok := s.repo.(VersionRepository)
	if !ok {
		return nil, errors.New("this store keeps no assistant versions")
	}
	if _, err := s.repo.GetAssistant(ctx, workspaceID, id); err != nil {
		return nil, err
	}
	return vr.AssistantVersion(ctx, workspaceID, id, version)
}

// Draft is unsaved changes to what shapes an assistant's replies, to try before they go live (a
// replay). Nil fields keep the base version's value.
type Draft struct {
	SystemPrompt     *string          `json:"system_prompt,omitempty"`
	Model            *string          `json:"model,omitempty"`
	Temperature      *float64         `json:"temperature,omitempty"`
	Tools            *json.RawMessage `json:"tools,omitempty"`
	KnowledgeBaseIDs *[]string        `json:"knowledge_base_ids,omitempty"`
}

// Empty reports whether the draft changes nothing.
func (d Draft) Empty() bool {
	return d.SystemPrompt == nil && d.Model == nil && d.Temperature == nil && d.Tools == nil && d.KnowledgeBaseIDs == nil
}

// WithDraft returns a copy of base with the draft applied, validated as an update would be. HTTP
// tools' header values in the draft are masked and dropped: a draft only ever runs in a replay,
// which never calls HTTP tools.
func (s *Service) WithDraft(ctx context.Context, base *Assistant, d Draft) (*Assistant, error) {
	c := *base
	c.KnowledgeBaseIDs = append([]string{}, base.KnowledgeBaseIDs...)
	c.Extract = append([]ExtractField{}, base.Extract...)
	in := Input{SystemPrompt: d.SystemPrompt, Model: d.Model, Temperature: d.Temperature, Tools: d.Tools, KnowledgeBaseIDs: d.KnowledgeBaseIDs}
	if _, err := apply(&c, in); err != nil {
		return nil, err
	}
	if err := s.checkKnowledge(ctx, base.WorkspaceID, in); err != nil {
		return nil, err
	}
	return &c, nil
}
