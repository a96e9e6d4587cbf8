// Package llm is the model interface the assistant runtime talks to, with the built-in offline model.
// An OpenAI-compatible provider implements the same interface.
package llm

import (
	"context"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Message is one chat message sent to a model.
type Message struct {
	Role       string // system | user | assistant | tool
	Content    string
	ToolCalls  []ToolCall // on assistant messages
	ToolCallID string     // on tool messages
	Name       string     // the tool's name, on tool messages
}

// ToolCall is a function call the model asked for. Arguments is a JSON object as text.
type ToolCall struct {
	ID        string
	Name      string
	Arguments string
}

// ToolDef describes a tool the model may call.
type ToolDef struct {
	Name        string
	Description string
	Parameters  json.RawMessage // JSON schema of the arguments object
}

// Request is one model call.
type Request struct {
	Model       string
	Messages    []Message
	Tools       []ToolDef
	Temperature *float64
}

// Usage is what a call consumed.
type Usage struct {
	InputTokens  int64
	OutputTokens int64
}

// Response is a model's complete answer to one call.
type Response struct {
	Content      string
	ToolCalls    []ToolCall
	Usage        Usage
	FinishReason string
}

// Provider answers chat requests. onDelta, when not nil, receives the reply's text as it is
// generated; the returned Response holds the whole of it.
type Provider interface {
	Chat(ctx context.Context, req Request, onDelta func(string)) (Response, error)
}

// ErrNoProvider is returned when a model is asked for but no provider serves it.
var ErrNoProvider = errors.New("no model provider configured")

// EstimateTokens is a simple tokenizer estimate (about four characters a token), used where a
// provider reports no usage.
func EstimateTokens(s string) int64 {
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return 0
	}
	return int64((n + 3) / 4)
}

// EstimateRequestTokens estimates the prompt tokens of a request.
func EstimateRequestTokens(req Request) int64 {
	var total int64
	for _, m := range req.Messages {
		total += 4 + EstimateTokens(m.Content)
		for _, tc := range m.ToolCalls {
			total += EstimateTokens(tc.Name) + EstimateTokens(tc.Arguments)
		}
	}
	for _, t := range req.Tools {
		total += EstimateTokens(t.Name) + EstimateTokens(t.Description) + EstimateTokens(string(t.Parameters))
	}
	return total
}
