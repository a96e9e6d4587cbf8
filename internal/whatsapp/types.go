// Package whatsapp is the WhatsApp Business Cloud API channel: the webhook (verification handshake,
// X-Hub-Signature-256 over the raw bytes, every entry/change/message/status), the Graph API client
// (messages, templates, media, mark-as-read) with error classification and a per-sender rate
// limit, and the senders and templates kept per workspace.
package whatsapp

import (
	"encoding/json"
	"time"
)

// DefaultGraphAPIURL is the public Graph API base with the version Parley speaks.
const DefaultGraphAPIURL = "https://graph.facebook.com/v21.0"

// DefaultRatePerSecond is Cloud API's default throughput per business phone number.
const DefaultRatePerSecond = 80

// Sender is a business phone number Parley answers on. Secrets are plaintext in memory and sealed
// in the store; the API never returns them.
type Sender struct {
	ID                 string
	WorkspaceID        string
	PhoneNumberID      string
	DisplayPhoneNumber string
	AccessToken        string
	AppSecret          string
	VerifyToken        string
	AssistantID        string
	GraphAPIURL        string
	RatePerSecond      int
	QualityRating      string
	MessagingLimit     string
	LastError          string
	LastErrorAt        *time.Time
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// Template is a message template the workspace may send outside the customer service window.
type Template struct {
	ID          string
	WorkspaceID string
	Name        string
	Language    string
	Category    string
	Components  json.RawMessage
	Status      string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}
