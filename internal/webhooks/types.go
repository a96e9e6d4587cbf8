// Package webhooks delivers Parley's events to automation platforms: each subscription gets a
// signed POST (X-Parley-Signature: sha256=<hex HMAC of the body>) per event, retried durably.
package webhooks

import (
	"slices"
	"time"
)

// Events a webhook may subscribe to.
const (
	EventConversationCreated = "conversation.created"
	EventMessageCreated      = "message.created"
	EventConversationEnded   = "conversation.ended"
	EventHandoff             = "handoff"
	// EventAppointmentScheduled follows the assistant's schedule_appointment tool call, with the slot.
	EventAppointmentScheduled = "appointment.scheduled"
	// EventBudgetThreshold follows an assistant's spend this month reaching 80% or 100% of its
	// monthly budget: once per assistant, month and threshold (internal/budget).
	EventBudgetThreshold = "budget.threshold"
)

// AllEvents is every event, the default subscription.
var AllEvents = []string{EventConversationCreated, EventMessageCreated, EventConversationEnded, EventHandoff, EventAppointmentScheduled, EventBudgetThreshold}

// ValidEvent reports whether e is a known event.
func ValidEvent(e string) bool {
	return slices.Contains(AllEvents, e)
}

// Webhook is a subscription. Secret is plaintext in memory, sealed in the store.
type Webhook struct {
	ID          string
	WorkspaceID string
	URL         string
	Events      []string
	Secret      string
	CreatedAt   time.Time
}
