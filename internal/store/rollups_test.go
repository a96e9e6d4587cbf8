package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/metrics"
)

// TestDailyRollupsMatchHourly checks that metrics read from whole days plus hourly edges count
// exactly what the hourly rows alone count, for ranges aligned to days, hours and neither.
func TestDailyRollupsMatchHourly(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	ws := testWorkspace(t, s, "ws1", "one")
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) // a Sunday
	types := []conversation.Type{conversation.TypeAPI, conversation.TypeWidget}
	for i := 0; i < 120; i++ {
		// Spread over ten days at uneven hours and minutes.
		at := base.Add(time.Duration(i*197) * time.Minute)
		c := &conversation.Conversation{ID: fmt.Sprint("c", i), WorkspaceID: ws.ID, Type: types[i%2], AssistantID: fmt.Sprint("a", i%3),
			Status: conversation.StatusActive, LastMessageAt: at, CreatedAt: at, UpdatedAt: at}
		if err := s.CreateConversation(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 1+i%4; j++ {
			m := &conversation.Message{ID: fmt.Sprint("m", i, "-", j), Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text",
				Text: "hello", CreatedAt: at.Add(time.Duration(j*40) * time.Minute), CostMicros: int64(i + j)}
			if j%2 == 1 {
				m.Role, m.Direction, m.TokensIn, m.TokensOut = conversation.RoleAssistant, conversation.Outbound, 10, int64(j)
			}
			if _, _, err := s.Apply(ctx, ws.ID, c.ID, conversation.Change{Messages: []*conversation.Message{m}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	at := func(d, h, m int) *time.Time {
		t := base.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
		return &t
	}
	cases := []struct {
		name     string
		from, to *time.Time
	}{
		{"everything", nil, nil},
		{"whole days", at(1, 0, 0), at(5, 0, 0)},
		{"hours", at(1, 5, 0), at(6, 17, 0)},
		{"minutes", at(0, 3, 30), at(8, 22, 10)},
		{"from only", at(2, 13, 1), nil},
		{"to only", nil, at(7, 4, 59)},
		{"within a day", at(3, 2, 0), at(3, 20, 0)},
		{"empty", at(4, 10, 0), at(4, 10, 0)},
	}
	// Rebuilding the daily rows from the hourly ones gives what the writes maintained.
	daily := func() string {
		rows, err := s.read.Query(`SELECT * FROM rollup_daily ORDER BY workspace_id, bucket, assistant_id, type`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var out []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(vals...))
		}
		return fmt.Sprint(len(out), out)
	}
	maintained := daily()
	if err := s.RebuildDailyRollups(ctx); err != nil {
		t.Fatal(err)
	}
	if rebuilt := daily(); rebuilt != maintained {
		t.Fatalf("rebuilt daily rollups differ:\n%s\nmaintained:\n%s", rebuilt, maintained)
	}
	for _, tc := range cases {
		for _, f := range []metrics.Filter{{From: tc.from, To: tc.to}, {From: tc.from, To: tc.to, AssistantID: "a1", Types: []string{"widget"}}} {
			t.Run(tc.name, func(t *testing.T) {
				got := map[string]metrics.Bucket{}
				if err := s.Rollups(ctx, ws.ID, f, func(b metrics.Bucket) error {
					k := b.Day.Format("2006-01-02") + "/" + b.AssistantID
					g := got[k]
					g.Conversations += b.Conversations
					g.Messages += b.Messages
					g.Inbound += b.Inbound
					g.Answered += b.Answered
					g.ResponseMSSum += b.ResponseMSSum
					g.TokensIn += b.TokensIn
					g.TokensOut += b.TokensOut
					g.CostMicros += b.CostMicros
					got[k] = g
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				want := map[string]metrics.Bucket{}
				var q sqlBuilder
				where := rollupWhere(&q, ws.ID, f)
				if err := s.scanBuckets(ctx, `SELECT bucket / 86400, assistant_id, `+rollupSums+` FROM rollup_hourly WHERE `+where+` GROUP BY bucket / 86400, assistant_id`, q.args, func(b metrics.Bucket) error {
					want[b.Day.Format("2006-01-02")+"/"+b.AssistantID] = metrics.Bucket{Conversations: b.Conversations, Messages: b.Messages, Inbound: b.Inbound,
						Answered: b.Answered, ResponseMSSum: b.ResponseMSSum, TokensIn: b.TokensIn, TokensOut: b.TokensOut, CostMicros: b.CostMicros}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("daily+edges:\n%v\nhourly:\n%v", got, want)
				}
				week, err := s.HourOfWeek(ctx, ws.ID, f)
				if err != nil {
					t.Fatal(err)
				}
				var wantWeek [7][24]int64
				rows, err := s.read.Query(`SELECT bucket, conversations FROM rollup_hourly WHERE `+where, q.args...)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var bucket, n int64
					if err := rows.Scan(&bucket, &n); err != nil {
						t.Fatal(err)
					}
					tm := time.Unix(bucket, 0).UTC()
					wantWeek[tm.Weekday()][tm.Hour()] += n
				}
				rows.Close()
				if week != wantWeek {
					t.Fatalf("hour of week:\n%v\nwant\n%v", week, wantWeek)
				}
			})
		}
	}
}

// TestDeferredWorkFollowsItsWrite checks that the full-text rows and rollups written at the end of
// a group commit include every committed write and none of the writes that failed.
func TestDeferredWorkFollowsItsWrite(t *testing.T) {
	s := openTest(t)
	c, ws := seedConversation(t, s)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 120)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m := &conversation.Message{ID: fmt.Sprint("m", i), Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text",
				Text: fmt.Sprintf("parcel tok%d", i), CreatedAt: time.Now().UTC(), CostMicros: 1}
			ch := conversation.Change{Messages: []*conversation.Message{m}}
			if i%4 == 0 {
				ch.InTx = func(*sql.Tx, []*conversation.Message) error { return errors.New("refused") }
			}
			_, _, errs[i] = s.Apply(ctx, ws, c.ID, ch)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if (i%4 == 0) != (err != nil) {
			t.Fatalf("write %d: %v", i, err)
		}
		var n int
		if err := s.read.QueryRow(`SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH $1`, fmt.Sprint("tok", i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 0, false: 1}[i%4 == 0]; n != want {
			t.Fatalf("message %d: %d full-text rows, want %d", i, n, want)
		}
	}
	var msgs, cost, daily int64
	if err := s.read.QueryRow(`SELECT SUM(messages), SUM(cost_micros) FROM rollup_hourly WHERE workspace_id = $1`, ws).Scan(&msgs, &cost); err != nil {
		t.Fatal(err)
	}
	if err := s.read.QueryRow(`SELECT SUM(messages) FROM rollup_daily WHERE workspace_id = $1`, ws).Scan(&daily); err != nil {
		t.Fatal(err)
	}
	if msgs != 90 || cost != 90 || daily != 90 {
		t.Fatalf("rollups count %d messages (daily %d), cost %d; want the 90 committed", msgs, daily, cost)
	}
	p, err := s.ListConversations(ctx, ws, conversation.Filter{Query: "parcel", Limit: 10})
	if err != nil || len(p.Conversations) != 1 {
		t.Fatalf("text search after deferred indexing: %v %v", p, err)
	}
}

// BenchmarkHotReads runs the reads of every webhook delivery and AI turn: the open conversation of a
// customer and the latest messages. Both must reuse their compiled statements (a bound LIMIT, or a
// bound value compared with a partial index's WHERE, made SQLite compile them on every run).
func BenchmarkHotReads(b *testing.B) {
	s := openTest(b)
	c, ws := seedConversation(b, s)
	ctx := context.Background()
	if _, err := s.write.Exec(`UPDATE conversations SET channel_id = 'sender1'`); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		m := &conversation.Message{ID: fmt.Sprint("m", i), Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text", Text: "hello", CreatedAt: time.Now().UTC()}
		if _, _, err := s.Apply(ctx, ws, c.ID, conversation.Change{Messages: []*conversation.Message{m}}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("open conversation", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			got, err := s.FindChannelConversation(ctx, ws, conversation.TypeWhatsApp, "sender1", c.CustomerID)
			if err != nil || got == nil {
				b.Fatal(got, err)
			}
		}
	})
	b.Run("latest messages", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			got, err := s.Messages(ctx, ws, c.ID, 20+i%2)
			if err != nil || len(got) < 20 {
				b.Fatal(len(got), err)
			}
		}
	})
}

// TestMergeTextIndex checks that the background merge leaves fewer segments and the same matches.
func TestMergeTextIndex(t *testing.T) {
	s := openTest(t)
	c, ws := seedConversation(t, s)
	ctx := context.Background()
	for i := 0; i < 60; i++ { // one commit, so one segment, each
		m := &conversation.Message{ID: fmt.Sprint("m", i), Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text",
			Text: fmt.Sprintf("parcel number%d arrived", i), CreatedAt: time.Now().UTC()}
		if _, _, err := s.Apply(ctx, ws, c.ID, conversation.Change{Messages: []*conversation.Message{m}}); err != nil {
			t.Fatal(err)
		}
	}
	state := func() (segments, matches int) {
		if err := s.read.QueryRow(`SELECT COUNT(DISTINCT segid) FROM messages_fts_idx`).Scan(&segments); err != nil {
			t.Fatal(err)
		}
		if err := s.read.QueryRow(`SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH 'parcel AND arrived'`).Scan(&matches); err != nil {
			t.Fatal(err)
		}
		return
	}
	segsBefore, matchesBefore := state()
	more, err := s.MergeTextIndex(ctx, time.Minute)
	if err != nil || more {
		t.Fatalf("merge: more %v, %v", more, err)
	}
	segsAfter, matchesAfter := state()
	if matchesBefore != 60 || matchesAfter != 60 || segsAfter >= segsBefore || segsAfter != 1 {
		t.Fatalf("segments %d -> %d, matches %d -> %d", segsBefore, segsAfter, matchesBefore, matchesAfter)
	}
}
