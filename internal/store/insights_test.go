package store

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/ids"
)

type factsRow struct {
	ended, handoffAt, replyAt, returnedAt sql.NullInt64
	handoffs                              int
}

func readFacts(t *testing.T, s *Store, id string) (factsRow, bool) {
	t.Helper()
	var f factsRow
	err := s.read.QueryRow(`SELECT f.ended_at, f.first_handoff_at, f.first_human_reply_at, f.returned_at, f.handoff_count
		FROM conversation_insights f JOIN conversations c ON c.pk = f.conversation_pk WHERE c.id = $1`, id).
		Scan(&f.ended, &f.handoffAt, &f.replyAt, &f.returnedAt, &f.handoffs)
	if err == sql.ErrNoRows {
		return f, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return f, true
}

// TestInsightFactsFollowTheWritePath drives CreateConversation and Apply directly, with message
// times of its choosing, and reads the facts each change leaves.
func TestInsightFactsFollowTheWritePath(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.write.Exec(`INSERT INTO workspaces (id, slug, name, created_at) VALUES ('ws', 'ws', 'ws', 0)`); err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	newConv := func(typ conversation.Type, customer string, at time.Time) string {
		c := &conversation.Conversation{ID: ids.New(), WorkspaceID: "ws", Type: typ, Status: conversation.StatusActive, AssistantID: "a1",
			CustomerID: customer, LastMessageAt: at, CreatedAt: at, UpdatedAt: at, Metadata: map[string]string{}}
		if err := s.CreateConversation(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	msg := func(role conversation.Role, text string, at time.Time) *conversation.Message {
		dir := conversation.Outbound
		if role == conversation.RoleUser {
			dir = conversation.Inbound
		}
		return &conversation.Message{ID: ids.New(), Role: role, Direction: dir, Type: "text", Text: text, CreatedAt: at}
	}
	apply := func(id string, ch conversation.Change) *conversation.Conversation {
		c, _, err := s.Apply(ctx, "ws", id, ch)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	a := newConv(conversation.TypeAPI, "cust-1", base)
	if f, ok := readFacts(t, s, a); !ok || f.ended.Valid || f.handoffs != 0 {
		t.Fatalf("new conversation's facts: %+v %v", f, ok)
	}
	// An agent writing before any handoff is not a reply to one.
	apply(a, conversation.Change{Messages: []*conversation.Message{msg(conversation.RoleUser, "hello", base.Add(time.Second)), msg(conversation.RoleAgent, "hi", base.Add(2*time.Second))}})
	before := time.Now().UTC().Truncate(time.Millisecond)
	reason := "asked"
	apply(a, conversation.Change{Status: conversation.StatusHandoff, HandoffReason: &reason})
	after := time.Now().UTC()
	f, _ := readFacts(t, s, a)
	if f.handoffs != 1 || !f.handoffAt.Valid || f.handoffAt.Int64 < ms(before) || f.handoffAt.Int64 > ms(after) || f.replyAt.Valid {
		t.Fatalf("after the handoff: %+v", f)
	}
	first := f.handoffAt.Int64
	replyAt := time.UnixMilli(first).Add(90 * time.Second)
	apply(a, conversation.Change{Messages: []*conversation.Message{msg(conversation.RoleAgent, "here", replyAt)}})
	apply(a, conversation.Change{Messages: []*conversation.Message{msg(conversation.RoleAgent, "again", replyAt.Add(time.Minute))}})
	empty := ""
	apply(a, conversation.Change{Status: conversation.StatusActive, HandoffReason: &empty})
	apply(a, conversation.Change{Status: conversation.StatusHandoff, HandoffReason: &reason})
	// Applying the same status again is no new handoff.
	apply(a, conversation.Change{Status: conversation.StatusHandoff})
	f, _ = readFacts(t, s, a)
	if f.handoffs != 2 || f.handoffAt.Int64 != first || f.replyAt.Int64 != ms(replyAt) {
		t.Fatalf("after a reply and a second handoff: %+v (first handoff %d, reply %d)", f, first, ms(replyAt))
	}
	ended := apply(a, conversation.Change{Status: conversation.StatusEnded})
	f, _ = readFacts(t, s, a)
	if !f.ended.Valid || f.ended.Int64 != ms(*ended.EndedAt) || f.returnedAt.Valid {
		t.Fatalf("after the end: %+v, conversation ended at %v", f, ended.EndedAt)
	}

	// The same customer on another channel, another customer on this one, and a conversation of
	// this customer whose only message is the business's: none of them is a return.
	other := newConv(conversation.TypeTest, "cust-1", base.Add(2*time.Hour))
	apply(other, conversation.Change{Messages: []*conversation.Message{msg(conversation.RoleUser, "on another channel", base.Add(2*time.Hour))}})
	stranger := newConv(conversation.TypeAPI, "cust-2", base.Add(2*time.Hour))
	apply(stranger, conversation.Change{Messages: []*conversation.Message{msg(conversation.RoleUser, "someone else", base.Add(2*time.Hour))}})
	outreach := newConv(conversation.TypeAPI, "cust-1", base.Add(2*time.Hour))
	apply(outreach, conversation.Change{Messages: []*conversation.Message{msg(conversation.RoleAssistant, "we miss you", base.Add(2*time.Hour))}})
	if f, _ = readFacts(t, s, a); f.returnedAt.Valid {
		t.Fatalf("marked returned by another channel, customer or an outbound message: %+v", f)
	}
	// The customer answers the outreach: their first message there is the return.
	back := base.Add(3 * time.Hour)
	apply(outreach, conversation.Change{Messages: []*conversation.Message{msg(conversation.RoleUser, "I am back", back)}})
	apply(outreach, conversation.Change{Messages: []*conversation.Message{msg(conversation.RoleUser, "and again", back.Add(time.Hour))}})
	if f, _ = readFacts(t, s, a); f.returnedAt.Int64 != ms(back) {
		t.Fatalf("returned at %v, want %d", f.returnedAt, ms(back))
	}

	// A customer message landing in an ended conversation is a return too, at its time.
	b := newConv(conversation.TypeWidget, "cust-3", base)
	apply(b, conversation.Change{Status: conversation.StatusEnded})
	late := time.Now().UTC().Add(time.Minute).Truncate(time.Millisecond)
	apply(b, conversation.Change{Messages: []*conversation.Message{msg(conversation.RoleUser, "one more thing", late)}})
	if f, _ = readFacts(t, s, b); f.returnedAt.Int64 != ms(late) {
		t.Fatalf("message after the end: returned %v, want %d", f.returnedAt, ms(late))
	}

	dailyMatchesFacts(t, s)

	// Erasing the customer erases their facts.
	if _, err := s.DeleteCustomer(ctx, "ws", "cust-1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := readFacts(t, s, a); ok {
		t.Fatal("facts outlived their conversation")
	}
	var n int
	if err := s.read.QueryRow(`SELECT COUNT(*) FROM conversation_insights`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d facts rows left (%v), want 2 (cust-2, cust-3)", n, err)
	}
	dailyMatchesFacts(t, s)
}

// dailyMatchesFacts checks that the daily rollup the triggers keep equals the facts summed now.
func dailyMatchesFacts(t *testing.T, s *Store) {
	t.Helper()
	read := func(q string) map[string]string {
		rows, err := s.read.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var key string
			var v [8]int64
			if err := rows.Scan(&key, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]); err != nil {
				t.Fatal(err)
			}
			if v != [8]int64{} {
				out[key] = fmt.Sprint(v)
			}
		}
		return out
	}
	daily := read(`SELECT workspace_id || '/' || day || '/' || assistant_id || '/' || type, conversations, ended, clean_ended, handoffs, handoff_events,
		unanswered_handoffs, replied_handoffs, reply_ms_sum FROM conversation_insights_daily`)
	facts := read(`SELECT workspace_id || '/' || (created_at / 86400000) || '/' || assistant_id || '/' || type, COUNT(*),
		SUM(ended_at IS NOT NULL), SUM(ended_at IS NOT NULL AND handoff_count = 0), SUM(handoff_count > 0), SUM(handoff_count),
		SUM(handoff_count > 0 AND first_human_reply_at IS NULL), SUM(first_handoff_at IS NOT NULL AND first_human_reply_at IS NOT NULL),
		SUM(CASE WHEN first_handoff_at IS NOT NULL AND first_human_reply_at IS NOT NULL THEN first_human_reply_at - first_handoff_at ELSE 0 END)
		FROM conversation_insights GROUP BY 1`)
	if fmt.Sprint(daily) != fmt.Sprint(facts) {
		t.Fatalf("daily rollup %v\nfacts summed %v", daily, facts)
	}
	if len(facts) == 0 {
		t.Fatal("no facts to compare")
	}
}
