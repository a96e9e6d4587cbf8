package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
)

// A reply job whose customer message is superseded (a later customer message, nothing from the
// assistant after it) ends at once; every other case goes through the full check.
func TestCustomerMessageSuperseded(t *testing.T) {
	s := openTest(t)
	c, ws := seedConversation(t, s)
	ctx := context.Background()
	at := time.Now().UTC()
	add := func(id string, role conversation.Role, dir conversation.Direction, typ string) {
		t.Helper()
		at = at.Add(time.Second)
		m := &conversation.Message{ID: id, Role: role, Direction: dir, Type: typ, Text: id, CreatedAt: at}
		if _, _, err := s.Apply(ctx, ws, c.ID, conversation.Change{Messages: []*conversation.Message{m}}); err != nil {
			t.Fatal(err)
		}
	}
	user := func(id, typ string) { add(id, conversation.RoleUser, conversation.Inbound, typ) }
	user("u1", "text")
	user("u2", "text")
	user("u3", "reaction") // a reaction is not answered: it supersedes nothing
	add("a1", conversation.RoleAssistant, conversation.Outbound, "text")
	user("u4", "text")
	user("u5", "text")
	cases := []struct {
		id   string
		want bool
	}{
		{"u1", false}, // u2 came later, but so did the assistant's a1: the full check decides
		{"u2", false}, // only a reaction, then a1
		{"u4", true},  // u5 came later and nothing from the assistant after u4
		{"u5", false}, // the latest: its job answers
	}
	for _, tc := range cases {
		got, err := s.CustomerMessageSuperseded(ctx, ws, c.ID, tc.id)
		if err != nil || got != tc.want {
			t.Errorf("%s: superseded = %v, %v; want %v", tc.id, got, err, tc.want)
		}
	}
	if _, err := s.CustomerMessageSuperseded(ctx, "other-ws", c.ID, "u4"); !errors.Is(err, ErrNotFound) {
		t.Errorf("another workspace's message: %v, want ErrNotFound", err)
	}
}
