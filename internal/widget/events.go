package widget

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
)

// backlogPage is how many stored messages one query of the resume backlog reads.
const backlogPage = 200

// events streams the visitor's conversation as server-sent events:
//
//	event: message  id: <message id>  data: {id, role, text, created_at}   a stored message
//	event: delta                      data: {text}                        a piece of the reply being generated
//	event: status                     data: {status}                      the conversation's status
//	event: ready                      data: {}                            the backlog has been sent
//
// It first sends the messages stored after Last-Event-ID (the browser's automatic reconnect) or
// ?after=<id> (a new page), then the live ones; a message is never sent twice on one stream. Deltas
// are not stored: a stream that misses some still gets the whole reply as its message.
func (s *Service) events(w http.ResponseWriter, r *http.Request) error {
	se, _, c, err := s.authorize(w, r, true)
	if err != nil {
		return err
	}
	if s.Events == nil {
		return apiErr(http.StatusNotFound, "not_found", "live events are not available")
	}
	after := r.Header.Get("Last-Event-ID")
	if after == "" {
		after = r.URL.Query().Get("after")
	}
	sub := s.Events.SubscribeDeltas(se.WorkspaceID, c.ID)
	defer sub.Close()
	drop := s.dropChan()

	flusher, _ := w.(http.Flusher)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil {
		return nil
	}
	sent := map[string]bool{}
	lastID := after
	send := func(event, id string, v any) bool {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		b := bytes.TrimRight(buf.Bytes(), "\n")
		var err error
		if id != "" {
			_, err = fmt.Fprintf(w, "event: %s\nid: %s\ndata: %s\n\n", event, id, b)
		} else {
			_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		}
		return err == nil
	}
	sendMessage := func(m *conversation.Message) bool {
		if sent[m.ID] {
			return true
		}
		sent[m.ID] = true
		if !Visible(m) {
			return true
		}
		lastID = m.ID
		return send("message", m.ID, messageJSON(m))
	}
	// backlog sends what was stored after the last message this stream (or the browser) saw.
	backlog := func() bool {
		from := lastID
		for {
			msgs, err := s.Repo.MessagesAfter(r.Context(), se.WorkspaceID, c.ID, from, backlogPage)
			if err != nil {
				s.Log.WarnContext(r.Context(), "widget: event backlog", "conversation", c.ID, "err", err)
				return false
			}
			for _, m := range msgs {
				if !sendMessage(m) {
					return false
				}
				from = m.ID
			}
			if len(msgs) < backlogPage {
				return true
			}
		}
	}
	status := c.Status
	if !backlog() || !send("status", "", map[string]string{"status": string(status)}) || !send("ready", "", map[string]bool{}) {
		return nil
	}
	flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-drop:
			return nil
		case <-s.base.Done():
			return nil
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return nil
			}
			flush()
		case ev, ok := <-sub.C:
			if !ok {
				return nil
			}
			if sub.Lost() && !backlog() {
				return nil
			}
			if ev.Delta != "" {
				if !send("delta", "", map[string]string{"text": ev.Delta}) {
					return nil
				}
			}
			for _, m := range ev.Messages {
				if !sendMessage(m) {
					return nil
				}
			}
			if ev.Conversation != nil && ev.Conversation.Status != status {
				status = ev.Conversation.Status
				if !send("status", "", map[string]string{"status": string(status)}) {
					return nil
				}
			}
			flush()
		}
	}
}
