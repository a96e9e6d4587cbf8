package events

import (
	"testing"

	"github.com/parley-hq/parley/internal/conversation"
)

// Delta events reach only the subscriptions that asked for them, in order with the messages.
func TestHubDeltas(t *testing.T) {
	h := NewHub()
	c := &conversation.Conversation{ID: "c1"}
	other := &conversation.Conversation{ID: "c2"}
	plain := h.Subscribe("ws", "c1")
	defer plain.Close()
	deltas := h.SubscribeDeltas("ws", "c1")
	defer deltas.Close()

	h.PublishDelta("ws", c, "Hel")
	h.PublishDelta("ws", c, "")          // nothing to say: not sent
	h.PublishDelta("ws", other, "other") // another conversation
	h.PublishDelta("ws2", c, "other")    // another workspace
	h.PublishDelta("ws", c, "lo")
	h.Publish("ws", c, []*conversation.Message{{ID: "m1", Text: "Hello"}})

	var got []string
	for i := 0; i < 3; i++ {
		ev := <-deltas.C
		if ev.Delta != "" {
			got = append(got, ev.Delta)
		} else {
			got = append(got, "msg:"+ev.Messages[0].ID)
		}
	}
	if want := []string{"Hel", "lo", "msg:m1"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("delta subscriber got %v, want %v", got, want)
	}
	select {
	case ev := <-deltas.C:
		t.Fatalf("unexpected event %+v", ev)
	default:
	}
	ev := <-plain.C
	if ev.Delta != "" || len(ev.Messages) != 1 {
		t.Fatalf("plain subscriber got %+v, want only the message", ev)
	}
	select {
	case ev := <-plain.C:
		t.Fatalf("plain subscriber got a delta: %+v", ev)
	default:
	}
}
