package api

import (
	"net/http"
	"time"

	"github.com/parley-hq/parley/internal/events"
)

// conversationEvents streams a conversation's changes as server-sent events: "message" for each new
// message, "conversation" for its new state; a comment every 15 s keeps proxies from closing it.
func (a *API) conversationEvents(w http.ResponseWriter, r *http.Request) error {
	ws := workspace(r.Context())
	id := r.PathValue("id")
	if _, err := a.Conversations.Get(r.Context(), ws, id); err != nil {
		return domainError(err)
	}
	if a.Events == nil {
		return errorf(http.StatusNotFound, "not_found", "live events are not available")
	}
	sub := a.Events.Subscribe(ws, id)
	defer sub.Close()
	flusher, _ := w.(http.Flusher)
	s := &sseStream{w: w, flusher: flusher}
	s.start()
	if flusher != nil {
		flusher.Flush()
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-ping.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		case ev, ok := <-sub.C:
			if !ok {
				return nil
			}
			writeEvent(s, ev)
		}
	}
}

func writeEvent(s *sseStream, ev events.Event) {
	for _, m := range ev.Messages {
		s.event("message", NewMessageJSON(m))
	}
	if ev.Conversation != nil {
		s.event("conversation", NewConversationJSON(ev.Conversation, time.Now()))
	}
}
