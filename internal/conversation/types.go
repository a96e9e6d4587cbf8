// Package conversation holds the conversation record (conversations, messages, tool calls, variables,
// usage) and the service that owns its rules: creation, status changes, handoff, and running the
// assistant for each customer message.
package conversation

import (
	"database/sql"
	"encoding/json"
	"time"
)

// Type is the channel a conversation came through.
type Type string

const (
	TypeWhatsApp Type = "whatsapp"
	TypeWidget   Type = "widget"
	TypeTest     Type = "test"
	TypeAPI      Type = "api"
)

// Valid reports whether t is one of the known conversation types.
func (t Type) Valid() bool {
	switch t {
	case TypeWhatsApp, TypeWidget, TypeTest, TypeAPI:
		return true
	}
	return false
}

// Status is where a conversation stands: the AI answers only while it is active.
type Status string

const (
	StatusActive  Status = "active"
	StatusHandoff Status = "handoff"
	StatusEnded   Status = "ended"
)

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	return s == StatusActive || s == StatusHandoff || s == StatusEnded
}

// Role is who wrote a message.
type Role string

const (
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleAgent     Role = "agent"
	RoleTool      Role = "tool"
	RoleSystem    Role = "system"
)

// Direction is inbound (from the customer) or outbound (to the customer).
type Direction string

const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
)

// Variable sources.
const (
	SourcePrechat          = "prechat"
	SourceExtracted        = "extracted"
	SourceFlow             = "flow"
	SourcePostConversation = "post_conversation"
)

// ValidSource reports whether s is a known variable source.
func ValidSource(s string) bool {
	switch s {
	case SourcePrechat, SourceExtracted, SourceFlow, SourcePostConversation:
		return true
	}
	return false
}

// Conversation is one thread with one customer on one channel.
type Conversation struct {
	ID            string
	WorkspaceID   string
	Type          Type
	Status        Status
	AssistantID   string
	AssistantName string
	CustomerID    string
	CustomerName  string
	// ChannelID is the channel resource the conversation belongs to (a WhatsApp sender, a widget).
	ChannelID string
	// Metadata holds channel context such as page_url, referrer and user_agent for the widget.
	Metadata map[string]string

	MessageCount       int64
	TokensIn           int64
	TokensOut          int64
	CostMicros         int64
	LastMessagePreview string
	LastMessageAt      time.Time
	LastInboundAt      *time.Time
	HandoffReason      string
	LastError          string
	CreatedAt          time.Time
	UpdatedAt          time.Time
	EndedAt            *time.Time
}

// Message is one stored message. Tool calls the assistant made in a round are kept on the message of
// that round, each with its arguments and result.
type Message struct {
	ID               string
	ConversationID   string
	ExternalID       string
	Role             Role
	Direction        Direction
	Type             string
	Text             string
	Media            *Media
	ToolCalls        []ToolCall
	Status           string
	Error            *MessageError
	TokensIn         int64
	TokensOut        int64
	CostMicros       int64
	LatencyMS        *int64
	AssistantVersion int
	CreatedAt        time.Time
}

// IsAnswer reports whether an outbound message counts as an answer to the customer for response
// rate and time: a human or AI message with something for the customer to read, not a bare tool call.
func (m *Message) IsAnswer() bool {
	if m.Direction != Outbound || (m.Role != RoleAssistant && m.Role != RoleAgent) {
		return false
	}
	return m.Text != "" || m.Type != "text"
}

// Media is an attachment on a message.
type Media struct {
	ID          string `json:"id"`
	MimeType    string `json:"mime_type"`
	Filename    string `json:"filename,omitempty"`
	URL         string `json:"url"`
	Transcript  string `json:"transcript,omitempty"`
	Description string `json:"description,omitempty"`
}

// ToolCall is a call the assistant made, with what it returned.
type ToolCall struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	Result    string          `json:"result"`
}

// MessageError explains why a message failed (delivery or AI turn).
type MessageError struct {
	Code    string `json:"code"`
	Title   string `json:"title,omitempty"`
	Details string `json:"details,omitempty"`
}

// Variable is a named value collected during a conversation.
type Variable struct {
	Name      string
	Value     string
	Source    string
	UpdatedAt time.Time
}

// Filter selects conversations for the list, the export and the metrics.
type Filter struct {
	Types       []Type
	AssistantID string
	From        *time.Time
	To          *time.Time
	Customer    string
	Status      Status
	Query       string
	Limit       int
	Cursor      string
	// Window selects WhatsApp conversations by their customer service window: "open" or "closed".
	Window string
}

// Page is one page of the list.
type Page struct {
	Conversations []Conversation
	NextCursor    string
}

// ExportOptions say what an export reads besides the messages and their conversations.
type ExportOptions struct {
	// Variables: each conversation's variables on its rows (the JSONL's replay context; the CSV
	// has no column for them, and reading them costs a seventh of a large export).
	Variables bool
}

// ExportRow is one message with its conversation, as the export streams it.
type ExportRow struct {
	Conversation *Conversation
	Message      *Message
	// Variables are the conversation's variables (the same slice on each of its rows).
	Variables []Variable
	// Stored holds the message's media, tool calls and error as the JSON they were stored as, when
	// the store keeps exactly what encoding them again would give (Message's fields are then left
	// empty): the export writes them as they are instead of decoding and encoding each row's.
	Stored *StoredJSON
}

// StoredJSON is a message's JSON fields as stored; nil where the message has none.
type StoredJSON struct {
	Media, ToolCalls, Error []byte
}

// Change is what the service asks the store to apply to a conversation in one transaction,
// together with the messages it appends.
type Change struct {
	Messages      []*Message
	Variables     []Variable
	Status        Status // empty: unchanged
	HandoffReason *string
	LastError     *string
	// CostMicros adds a cost that comes with no new message (a channel's delivery price) to the
	// conversation's totals and the metrics rollups.
	CostMicros int64
	// InTx runs last in the store's transaction with the messages actually stored (replayed
	// external ids skipped), so a channel can queue work atomically with them.
	InTx func(tx *sql.Tx, stored []*Message) error
}
