// Package events fans conversation changes out to live views (dashboard pages, widget streams).
// In one process it is a hub of channels; across instances a broadcaster (PostgreSQL
// LISTEN/NOTIFY) feeds every instance's hub.
package events

import (
	"sync"

	"github.com/parley-hq/parley/internal/conversation"
)

// Event is one change: the conversation as it now is and the messages just stored (maybe none).
type Event struct {
	WorkspaceID  string
	Conversation *conversation.Conversation
	Messages     []*conversation.Message
	// Delta is a piece of a reply as it is generated (not stored; its message follows as a normal
	// event). Only subscriptions made with SubscribeDeltas receive delta events.
	Delta string
}

// Subscription receives events until Close.
type Subscription struct {
	C      <-chan Event
	ch     chan Event
	hub    *Hub
	filter func(Event) bool
	// Lost is set when the subscriber fell behind and events were dropped: it should reload.
	mu     sync.Mutex
	lost   bool
	deltas bool
}

// Lost reports (and clears) whether events were dropped since the last call.
func (s *Subscription) Lost() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lost
	s.lost = false
	return l
}

// Close stops the subscription.
func (s *Subscription) Close() { s.hub.remove(s) }

// Hub is the in-process fan-out. A slow subscriber never blocks publishers: its events are dropped
// and it is told so through Lost.
type Hub struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[*Subscription]struct{}{}} }

// Subscribe returns a subscription to the workspace's events; conversationID narrows it to one
// conversation ("" for all).
func (h *Hub) Subscribe(workspaceID, conversationID string) *Subscription {
	return h.subscribe(workspaceID, conversationID, false)
}

func (h *Hub) subscribe(workspaceID, conversationID string, deltas bool) *Subscription {
	ch := make(chan Event, 64)
	s := &Subscription{C: ch, ch: ch, hub: h, deltas: deltas, filter: func(e Event) bool {
		if e.WorkspaceID != workspaceID {
			return false
		}
		return conversationID == "" || (e.Conversation != nil && e.Conversation.ID == conversationID)
	}}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// SubscribeAll returns a subscription to every workspace's events (background watchers such as
// the budget alerts).
func (h *Hub) SubscribeAll() *Subscription {
	ch := make(chan Event, 256)
	s := &Subscription{C: ch, ch: ch, hub: h, filter: func(Event) bool { return true }}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// SubscribeDeltas is Subscribe that also receives the reply deltas published with PublishDelta
// (the widget's stream shows the reply as it is generated).
func (h *Hub) SubscribeDeltas(workspaceID, conversationID string) *Subscription {
	return h.subscribe(workspaceID, conversationID, true)
}

// PublishDelta hands a piece of a reply being generated to the conversation's delta subscribers.
func (h *Hub) PublishDelta(workspaceID string, c *conversation.Conversation, text string) {
	if text == "" {
		return
	}
	h.Deliver(Event{WorkspaceID: workspaceID, Conversation: c, Delta: text})
}

func (h *Hub) remove(s *Subscription) {
	h.mu.Lock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
	h.mu.Unlock()
}

// Publish implements conversation.Publisher.
func (h *Hub) Publish(workspaceID string, c *conversation.Conversation, msgs []*conversation.Message) {
	h.Deliver(Event{WorkspaceID: workspaceID, Conversation: c, Messages: msgs})
}

// Deliver hands an event to every matching subscriber of this process.
func (h *Hub) Deliver(e Event) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		if !s.filter(e) || (e.Delta != "" && !s.deltas) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			s.mu.Lock()
			s.lost = true
			s.mu.Unlock()
		}
	}
}
