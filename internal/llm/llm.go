// Package llm is the model interface the assistant runtime talks to, with the built-in offline model.
// An OpenAI-compatible provider implements the same interface.
package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Message is one chat message sent to a model.
type Message struct {
	Role       string // system | user | assistant | tool
	Content    string
	ToolCalls  []ToolCall // on assistant messages
	ToolCallID string     // on tool messages
	Name       string     // the tool's name, on tool messages
	Images     []Image    // image inputs on user messages (vision)
}

// Image is an image input: its bytes (sent as a data URL) or a public URL. MessageID names the
// stored message it came with, so a loader can find its bytes.
type Image struct {
	MimeType  string
	Data      []byte
	URL       string
	MessageID string
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

// ErrBlockedAddress is returned when a connection would reach an address the caller may not use
// (loopback, private networks…): an outbound request a workspace configured, refused at connect time.
var ErrBlockedAddress = errors.New("the address is private, loopback or otherwise not public")

// ErrContextLength marks a request the model refused because the prompt is longer than its
// context: the caller must shorten the request before trying again, never resend it unchanged.
var ErrContextLength = errors.New("context length exceeded")

// APIError is an error answer of a model provider.
type APIError struct {
	Status  int    // HTTP status; 0 for an error event inside a stream
	Code    string // provider's code, e.g. rate_limit_exceeded, insufficient_quota
	Type    string
	Message string
}

func (e *APIError) Error() string {
	msg := e.Message
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if e.Status == 0 {
		return fmt.Sprintf("model stream error (%s): %s", e.Code, msg)
	}
	return fmt.Sprintf("model error %d (%s): %s", e.Status, e.Code, msg)
}

// Is lets errors.Is(err, ErrContextLength) find a context-length refusal.
func (e *APIError) Is(target error) bool {
	if target != ErrContextLength {
		return false
	}
	if e.Code == "context_length_exceeded" {
		return true
	}
	// Other OpenAI-compatible servers (vLLM, llama.cpp, Ollama) say it in words.
	m := strings.ToLower(e.Message)
	return e.Status == 400 && (strings.Contains(m, "context length") || strings.Contains(m, "context window") || strings.Contains(m, "maximum context"))
}

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
		total += 4 + EstimateTokens(m.Content) + int64(len(m.Images))*765
		for _, tc := range m.ToolCalls {
			total += EstimateTokens(tc.Name) + EstimateTokens(tc.Arguments)
		}
	}
	for _, t := range req.Tools {
		total += EstimateTokens(t.Name) + EstimateTokens(t.Description) + EstimateTokens(string(t.Parameters))
	}
	return total
}
