package conversation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/llm"
)

// Repository is what the service needs from the store.
type Repository interface {
	CreateConversation(ctx context.Context, c *Conversation, vars []Variable) error
	GetConversation(ctx context.Context, workspaceID, id string) (*Conversation, error)
	ListConversations(ctx context.Context, workspaceID string, f Filter) (Page, error)
	Messages(ctx context.Context, workspaceID, conversationID string, lastN int) ([]*Message, error)
	Variables(ctx context.Context, workspaceID, conversationID string) ([]Variable, error)
	Apply(ctx context.Context, workspaceID, conversationID string, ch Change) (*Conversation, []*Message, error)
	Export(ctx context.Context, workspaceID string, f Filter, opts ExportOptions, fn func(ExportRow) error) error
}

// Assistants finds assistants.
type Assistants interface {
	Get(ctx context.Context, workspaceID, id string) (*assistant.Assistant, error)
}

// Publisher is told about every change, for live views (dashboard, widget streams).
type Publisher interface {
	Publish(workspaceID string, c *Conversation, msgs []*Message)
}

// Errors the API maps to 4xx answers.
var (
	ErrNotFound          = errors.New("conversation not found")
	ErrAssistantNotFound = errors.New("assistant not found")
	ErrEnded             = errors.New("conversation has ended")
	// ErrDuplicate is returned by the store when a conversation that must be unique (one open
	// WhatsApp conversation per sender and customer) already exists.
	ErrDuplicate = errors.New("conversation already exists")
)

// InputError is bad input: a clear message, nothing changed.
type InputError struct{ Field, Message string }

func (e *InputError) Error() string { return e.Field + ": " + e.Message }

// MaxTextLength bounds a message's text (in characters).
const MaxTextLength = 32_000

// historyMessages is how many recent messages the model sees each turn.
const historyMessages = 60

// Service owns the conversation rules.
type Service struct {
	repo       Repository
	assistants Assistants
	runtime    *assistant.Runtime
	publisher  Publisher
	now        func() time.Time

	// turns serialises the AI turns of one conversation, so two quick messages get answers in order.
	turnsMu sync.Mutex
	turns   map[string]*turnLock

	onEnd EndHook
}

// EndHook runs after a conversation ends, by End or by the assistant's end_conversation tool
// (post-conversation extraction).
type EndHook func(ctx context.Context, c *Conversation)

// OnEnd sets the hook run when a conversation ends; call it while setting up, before serving.
func (s *Service) OnEnd(h EndHook) { s.onEnd = h }

type turnLock struct {
	mu   sync.Mutex
	refs int
}

// NewService returns the conversation service.
func NewService(repo Repository, assistants Assistants, runtime *assistant.Runtime, publisher Publisher) *Service {
	return &Service{repo: repo, assistants: assistants, runtime: runtime, publisher: publisher, now: func() time.Time { return time.Now().UTC() }, turns: map[string]*turnLock{}}
}

// CreateInput describes a new conversation.
type CreateInput struct {
	AssistantID  string
	Type         Type
	CustomerID   string
	CustomerName string
	ChannelID    string
	Metadata     map[string]string
	Variables    map[string]string
	// VariableSource is the source of Variables: flow for the API, prechat for the widget.
	VariableSource string
}

// Create starts a conversation.
func (s *Service) Create(ctx context.Context, workspaceID string, in CreateInput) (*Conversation, error) {
	if !in.Type.Valid() {
		return nil, &InputError{"type", "must be one of whatsapp, widget, test, api"}
	}
	if in.AssistantID == "" {
		return nil, &InputError{"assistant_id", "is required"}
	}
	if len(in.CustomerID) > 256 {
		return nil, &InputError{"customer_id", "must be at most 256 characters"}
	}
	a, err := s.assistants.Get(ctx, workspaceID, in.AssistantID)
	if err != nil {
		return nil, ErrAssistantNotFound
	}
	source := in.VariableSource
	if source == "" {
		source = SourceFlow
	}
	now := s.now()
	vars, err := buildVariables(in.Variables, source, now)
	if err != nil {
		return nil, err
	}
	c := &Conversation{
		ID: ids.New(), WorkspaceID: workspaceID, Type: in.Type, Status: StatusActive,
		AssistantID: a.ID, AssistantName: a.Name, CustomerID: in.CustomerID, CustomerName: in.CustomerName,
		ChannelID: in.ChannelID, Metadata: in.Metadata, LastMessageAt: now, CreatedAt: now, UpdatedAt: now,
	}
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
	if err := s.repo.CreateConversation(ctx, c, vars); err != nil {
		return nil, fmt.Errorf("create conversation: %w", err)
	}
	s.publish(workspaceID, c, nil)
	return c, nil
}

func buildVariables(in map[string]string, source string, now time.Time) ([]Variable, error) {
	vars := make([]Variable, 0, len(in))
	for name, value := range in {
		if name == "" || len(name) > 64 || strings.ContainsAny(name, " \t\n") {
			return nil, &InputError{"variables", fmt.Sprintf("variable name %q must be 1 to 64 characters without spaces", name)}
		}
		if len(value) > 4000 {
			return nil, &InputError{"variables", fmt.Sprintf("variable %q must be at most 4000 characters", name)}
		}
		vars = append(vars, Variable{Name: name, Value: value, Source: source, UpdatedAt: now})
	}
	return vars, nil
}

// Get returns a conversation of the workspace.
func (s *Service) Get(ctx context.Context, workspaceID, id string) (*Conversation, error) {
	c, err := s.repo.GetConversation(ctx, workspaceID, id)
	if err != nil {
		return nil, ErrNotFound
	}
	return c, nil
}

// Detail is a conversation with its messages and variables.
type Detail struct {
	Conversation *Conversation
	Messages     []*Message
	Variables    []Variable
}

// Detail returns the whole record.
func (s *Service) Detail(ctx context.Context, workspaceID, id string) (*Detail, error) {
	c, err := s.Get(ctx, workspaceID, id)
	if err != nil {
		return nil, err
	}
	msgs, err := s.repo.Messages(ctx, workspaceID, id, 0)
	if err != nil {
		return nil, fmt.Errorf("load messages: %w", err)
	}
	vars, err := s.repo.Variables(ctx, workspaceID, id)
	if err != nil {
		return nil, fmt.Errorf("load variables: %w", err)
	}
	return &Detail{Conversation: c, Messages: msgs, Variables: vars}, nil
}

// List returns a page of conversations.
func (s *Service) List(ctx context.Context, workspaceID string, f Filter) (Page, error) {
	return s.repo.ListConversations(ctx, workspaceID, f)
}

// Export streams every message of the filtered conversations.
func (s *Service) Export(ctx context.Context, workspaceID string, f Filter, opts ExportOptions, fn func(ExportRow) error) error {
	return s.repo.Export(ctx, workspaceID, f, opts, fn)
}

// Stream receives what a posted message produces, as it happens.
type Stream interface {
	Message(m *Message)
	Delta(text string)
}

// PostInput is a message written into a conversation through the API or a channel.
type PostInput struct {
	Text       string
	Role       Role // user (default) or agent
	Type       string
	ExternalID string
	Media      *Media
}

// Post stores a message and, for a customer message in an active conversation, runs the assistant.
// It returns the stored message followed by everything the assistant produced for it.
func (s *Service) Post(ctx context.Context, workspaceID, id string, in PostInput, stream Stream) ([]*Message, error) {
	if in.Role == "" {
		in.Role = RoleUser
	}
	if in.Role != RoleUser && in.Role != RoleAgent {
		return nil, &InputError{"role", "must be user or agent"}
	}
	if in.Type == "" {
		in.Type = "text"
	}
	if strings.TrimSpace(in.Text) == "" && in.Media == nil {
		return nil, &InputError{"text", "is required"}
	}
	if utf8.RuneCountInString(in.Text) > MaxTextLength {
		return nil, &InputError{"text", fmt.Sprintf("must be at most %d characters", MaxTextLength)}
	}
	if !utf8.ValidString(in.Text) {
		return nil, &InputError{"text", "must be valid UTF-8"}
	}
	c, err := s.Get(ctx, workspaceID, id)
	if err != nil {
		return nil, err
	}
	if c.Status == StatusEnded {
		return nil, ErrEnded
	}
	lock := s.lockTurn(id)
	defer s.unlockTurn(id, lock)

	m := &Message{ID: ids.New(), ConversationID: id, ExternalID: in.ExternalID, Role: in.Role, Type: in.Type, Text: in.Text, Media: in.Media, CreatedAt: s.now()}
	if in.Role == RoleUser {
		m.Direction = Inbound
	} else {
		m.Direction = Outbound
	}
	change := Change{Messages: []*Message{m}}
	if err := s.prepareOutbound(ctx, c, m, &change); err != nil {
		return nil, err // a channel refused the message (e.g. WhatsApp's window is closed)
	}
	c, stored, err := s.repo.Apply(ctx, workspaceID, id, change)
	if err != nil {
		return nil, fmt.Errorf("store message: %w", err)
	}
	if len(stored) == 0 {
		return nil, nil // a channel delivered this message before: stored once, answered once
	}
	s.publish(workspaceID, c, stored)
	if stream != nil {
		stream.Message(m)
	}
	out := []*Message{m}
	if in.Role != RoleUser || c.Status != StatusActive || c.AssistantID == "" {
		return out, nil
	}
	produced, err := s.runTurn(ctx, c, stream)
	return append(out, produced...), err
}

// runTurn runs the assistant on the conversation's latest messages, storing each step as it ends.
func (s *Service) runTurn(ctx context.Context, c *Conversation, stream Stream) ([]*Message, error) {
	a, err := s.assistants.Get(ctx, c.WorkspaceID, c.AssistantID)
	if err != nil {
		msg := "the conversation's assistant no longer exists"
		m := &Message{ID: ids.New(), ConversationID: c.ID, Role: RoleSystem, Direction: Outbound, Type: "text", Error: &MessageError{Code: "assistant_not_found", Title: msg}, CreatedAt: s.now()}
		_, _, aerr := s.repo.Apply(ctx, c.WorkspaceID, c.ID, Change{Messages: []*Message{m}, LastError: &msg})
		return []*Message{m}, aerr
	}
	history, err := s.repo.Messages(ctx, c.WorkspaceID, c.ID, historyMessages)
	if err != nil {
		return nil, fmt.Errorf("load history: %w", err)
	}
	vars, err := s.repo.Variables(ctx, c.WorkspaceID, c.ID)
	if err != nil {
		return nil, fmt.Errorf("load variables: %w", err)
	}
	known := make(map[string]string, len(vars))
	for _, v := range vars {
		known[v.Name] = v.Value
	}
	sink := &turnSink{svc: s, conv: c, stream: stream}
	err = s.runtime.Run(ctx, assistant.Turn{Assistant: a, ConversationID: c.ID, History: ToLLM(history), Variables: known}, sink)
	return sink.produced, err
}

type turnSink struct {
	svc      *Service
	conv     *Conversation
	stream   Stream
	produced []*Message
}

func (t *turnSink) Delta(text string) {
	if t.stream != nil {
		t.stream.Delta(text)
	}
}

// Step stores one round: its message, the variables its tools set, and a status change, together.
func (t *turnSink) Step(ctx context.Context, st assistant.Step) error {
	now := t.svc.now()
	latency := st.LatencyMS
	m := &Message{
		ID: ids.New(), ConversationID: t.conv.ID, Role: RoleAssistant, Direction: Outbound, Type: "text",
		Text: st.Text, TokensIn: st.Usage.InputTokens, TokensOut: st.Usage.OutputTokens, CostMicros: st.CostMicros,
		LatencyMS: &latency, AssistantVersion: st.Version, CreatedAt: now,
	}
	for _, tc := range st.ToolCalls {
		args := json.RawMessage(tc.Arguments)
		if !json.Valid(args) {
			b, _ := json.Marshal(tc.Arguments)
			args = b
		}
		m.ToolCalls = append(m.ToolCalls, ToolCall{ID: tc.ID, Name: tc.Name, Arguments: args, Result: tc.Result})
	}
	ch := Change{Messages: []*Message{m}}
	if st.Err != nil {
		errText := st.Err.Error()
		m.Error = &MessageError{Code: "ai_turn_failed", Title: "The assistant could not answer", Details: errText}
		ch.LastError = &errText
	}
	for _, v := range st.Effects.Variables {
		ch.Variables = append(ch.Variables, Variable{Name: v.Name, Value: v.Value, Source: v.Source, UpdatedAt: now})
	}
	if st.Effects.Handoff != nil {
		ch.Status = StatusHandoff
		ch.HandoffReason = st.Effects.Handoff
	}
	if st.Effects.End {
		ch.Status = StatusEnded
	}
	c, stored, err := t.svc.repo.Apply(ctx, t.conv.WorkspaceID, t.conv.ID, ch)
	if err != nil {
		return fmt.Errorf("store assistant step: %w", err)
	}
	t.conv = c
	t.produced = append(t.produced, m)
	t.svc.publish(c.WorkspaceID, c, stored)
	if t.stream != nil {
		t.stream.Message(m)
	}
	if st.Effects.End && t.svc.onEnd != nil {
		t.svc.onEnd(ctx, c)
	}
	return nil
}

// ToLLM turns stored messages into the model's chat history. Agents' messages are the business
// speaking, so the model sees them as its own side of the conversation.
func ToLLM(msgs []*Message) []llm.Message {
	out := make([]llm.Message, 0, len(msgs))
	for _, m := range msgs {
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
		switch m.Role {
		case RoleUser:
			um := llm.Message{Role: "user", Content: text}
			if m.Media != nil && (m.Type == "image" || strings.HasPrefix(m.Media.MimeType, "image/")) {
				um.Images = []llm.Image{{MimeType: m.Media.MimeType, URL: m.Media.URL, MessageID: m.ID}}
			}
			out = append(out, um)
		case RoleAgent:
			out = append(out, llm.Message{Role: "assistant", Content: text})
		case RoleAssistant:
			if m.Error != nil {
				continue // a fallback is not something the model said
			}
			am := llm.Message{Role: "assistant", Content: text}
			for _, tc := range m.ToolCalls {
				am.ToolCalls = append(am.ToolCalls, llm.ToolCall{ID: tc.ID, Name: tc.Name, Arguments: string(tc.Arguments)})
			}
			out = append(out, am)
			for _, tc := range m.ToolCalls {
				out = append(out, llm.Message{Role: "tool", ToolCallID: tc.ID, Name: tc.Name, Content: tc.Result})
			}
		}
	}
	return out
}

// Handoff hands the conversation to a human: the AI stops answering until Resume.
func (s *Service) Handoff(ctx context.Context, workspaceID, id, reason string) (*Conversation, error) {
	if reason == "" {
		reason = "handed off by an agent"
	}
	return s.setStatus(ctx, workspaceID, id, StatusHandoff, &reason)
}

// Resume gives the conversation back to the AI.
func (s *Service) Resume(ctx context.Context, workspaceID, id string) (*Conversation, error) {
	empty := ""
	return s.setStatus(ctx, workspaceID, id, StatusActive, &empty)
}

// End closes the conversation.
func (s *Service) End(ctx context.Context, workspaceID, id string) (*Conversation, error) {
	return s.setStatus(ctx, workspaceID, id, StatusEnded, nil)
}

func (s *Service) setStatus(ctx context.Context, workspaceID, id string, status Status, reason *string) (*Conversation, error) {
	c, err := s.Get(ctx, workspaceID, id)
	if err != nil {
		return nil, err
	}
	if c.Status == StatusEnded && status != StatusEnded {
		return nil, ErrEnded
	}
	prev := c.Status
	c, _, err = s.repo.Apply(ctx, workspaceID, id, Change{Status: status, HandoffReason: reason})
	if err != nil {
		return nil, fmt.Errorf("set status %s: %w", status, err)
	}
	s.publish(workspaceID, c, nil)
	if status == StatusEnded && prev != StatusEnded && s.onEnd != nil {
		s.onEnd(ctx, c)
	}
	return c, nil
}

func (s *Service) publish(workspaceID string, c *Conversation, msgs []*Message) {
	if s.publisher != nil {
		s.publisher.Publish(workspaceID, c, msgs)
	}
}

func (s *Service) lockTurn(id string) *turnLock {
	s.turnsMu.Lock()
	l := s.turns[id]
	if l == nil {
		l = &turnLock{}
		s.turns[id] = l
	}
	l.refs++
	s.turnsMu.Unlock()
	l.mu.Lock()
	return l
}

func (s *Service) unlockTurn(id string, l *turnLock) {
	l.mu.Unlock()
	s.turnsMu.Lock()
	l.refs--
	if l.refs == 0 {
		delete(s.turns, id)
	}
	s.turnsMu.Unlock()
}
