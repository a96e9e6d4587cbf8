package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/terms"
)

func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open("sqlite://" + filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestGroupCommitIsolatesFailures(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = s.Write(ctx, func(tx *sql.Tx) error {
				if _, err := tx.Exec(`INSERT INTO workspaces (id, slug, name, created_at) VALUES ($1, $2, $3, $4)`, fmt.Sprint("w", i), fmt.Sprint("s", i), "n", 1); err != nil {
					return err
				}
				if i%10 == 0 {
					return errors.New("refused") // this write alone must be undone
				}
				return nil
			})
		}(i)
	}
	wg.Wait()
	var n int
	if err := s.read.QueryRow(`SELECT COUNT(*) FROM workspaces`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if (i%10 == 0) != (err != nil) {
			t.Fatalf("write %d: err %v", i, err)
		}
	}
	if n != 180 {
		t.Fatalf("%d workspaces stored, want 180", n)
	}
}

func seedConversation(t testing.TB, s *Store) (*conversation.Conversation, string) {
	t.Helper()
	ctx := context.Background()
	ws := testWorkspace(t, s, "ws1", "one")
	now := time.Now().UTC()
	c := &conversation.Conversation{ID: "c1", WorkspaceID: ws.ID, Type: conversation.TypeWhatsApp, Status: conversation.StatusActive, CustomerID: "15551234567", LastMessageAt: now, CreatedAt: now, UpdatedAt: now}
	if err := s.CreateConversation(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	return c, ws.ID
}

func TestApplyIsIdempotentOnExternalID(t *testing.T) {
	s := openTest(t)
	c, ws := seedConversation(t, s)
	ctx := context.Background()
	msg := func(id string) *conversation.Message {
		return &conversation.Message{ID: id, ExternalID: "wamid.ABC", Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text", Text: "hi", CreatedAt: time.Now().UTC()}
	}
	_, stored, err := s.Apply(ctx, ws, c.ID, conversation.Change{Messages: []*conversation.Message{msg("m1")}})
	if err != nil || len(stored) != 1 {
		t.Fatalf("first delivery: %v, %d stored", err, len(stored))
	}
	// A replay, alone and inside a batch with a new message.
	_, stored, err = s.Apply(ctx, ws, c.ID, conversation.Change{Messages: []*conversation.Message{msg("m2")}})
	if err != nil || len(stored) != 0 {
		t.Fatalf("replay: %v, %d stored", err, len(stored))
	}
	fresh := &conversation.Message{ID: "m4", ExternalID: "wamid.NEW", Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text", Text: "new", CreatedAt: time.Now().UTC()}
	got, stored, err := s.Apply(ctx, ws, c.ID, conversation.Change{Messages: []*conversation.Message{msg("m3"), fresh}})
	if err != nil || len(stored) != 1 || stored[0].ID != "m4" {
		t.Fatalf("batch with a replay: %v, %v", err, stored)
	}
	if got.MessageCount != 2 {
		t.Fatalf("message_count %d, want 2", got.MessageCount)
	}
	if _, _, err := s.Apply(ctx, "other-ws", c.ID, conversation.Change{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("apply from another workspace: %v", err)
	}
}

func TestFTSQuery(t *testing.T) {
	for in, want := range map[string]string{
		"refund please":      `"refund" "please"`,
		`"quoted" OR NOT x*`: `"quoted" "OR" "NOT" "x"`,
		"   ":                "",
		"héllo-wörld":        `"héllo" "wörld"`,
	} {
		if got := ftsQuery(in); got != want {
			t.Errorf("ftsQuery(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCustomerKeys(t *testing.T) {
	for in, want := range map[string]string{
		"+1 (555) 123-4567": "[+1 (555) 123-4567 15551234567]",
		"15551234567":       "[15551234567]",
		"crm-42":            "[crm-42]",
	} {
		if got := fmt.Sprint(customerKeys(in)); got != want {
			t.Errorf("customerKeys(%q) = %s, want %s", in, got, want)
		}
	}
}

func BenchmarkApplyMessage(b *testing.B) {
	s := openTest(b)
	c, ws := seedConversation(b, s)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16) // 32 writers on 2 cores, as under webhook load: group commit batches them
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			m := &conversation.Message{ID: fmt.Sprintf("%p-%d", pb, i), Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text", Text: "where is my order?", CreatedAt: time.Now().UTC()}
			if _, _, err := s.Apply(ctx, ws, c.ID, conversation.Change{Messages: []*conversation.Message{m}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestTextPlansAgree checks that both text-search plans return the same pages.
func TestTextPlansAgree(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	ws := seedTextSearch(t, s)
	var err error
	// Every fourth conversation's signature is unknown, as after an upgrade: the walk must still
	// find them, and the fill must compute what the messages had built.
	before := map[int64][]byte{}
	rows, err := s.read.Query(`SELECT pk, terms FROM conversations WHERE pk % 4 = 0`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var pk int64
		var sig []byte
		if err := rows.Scan(&pk, &sig); err != nil {
			t.Fatal(err)
		}
		if len(sig) != terms.Size {
			t.Fatalf("conversation %d has a %d-byte signature", pk, len(sig))
		}
		before[pk] = sig
	}
	rows.Close()
	if _, err := s.write.Exec(`UPDATE conversations SET terms = NULL WHERE pk % 4 = 0`); err != nil {
		t.Fatal(err)
	}
	// A message for a conversation whose signature is unknown leaves it unknown: a signature of
	// the new message alone would deny the earlier ones' words.
	var unknownPK int64
	var unknownID string
	if err := s.read.QueryRow(`SELECT pk, id FROM conversations WHERE terms IS NULL ORDER BY pk LIMIT 1`).Scan(&unknownPK, &unknownID); err != nil {
		t.Fatal(err)
	}
	late := &conversation.Message{ID: "late", Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text", Text: "one more word", CreatedAt: time.Now().UTC().Add(-time.Hour)}
	if _, _, err := s.Apply(ctx, ws.ID, unknownID, conversation.Change{Messages: []*conversation.Message{late}}); err != nil {
		t.Fatal(err)
	}
	var stillUnknown bool
	if err := s.read.QueryRow(`SELECT terms IS NULL FROM conversations WHERE pk = $1`, unknownPK).Scan(&stillUnknown); err != nil || !stillUnknown {
		t.Fatalf("an unknown signature got a value from one message (%v)", err)
	}
	delete(before, unknownPK) // it has a message more than its signature had
	textPlansAgree(t, s, ws.ID)
	for after, done := int64(0), false; !done; {
		if after, done, err = s.FillTerms(ctx, after); err != nil {
			t.Fatal(err)
		}
	}
	for pk, want := range before {
		var got []byte
		if err := s.read.QueryRow(`SELECT terms FROM conversations WHERE pk = $1`, pk).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("conversation %d: filled signature differs from the one its messages built", pk)
		}
	}
	textPlansAgree(t, s, ws.ID)
}

// seedTextSearch stores conversations with a mix of texts, short ones and ones longer than
// readCheckMax, for the text-search tests.
func seedTextSearch(t *testing.T, s *Store) auth.Workspace {
	t.Helper()
	ctx := context.Background()
	ws := testWorkspace(t, s, "ws1", "one")
	texts := []string{"where is my delivery", "refund please", "delivery was late, refund", "hello", "Délivery in Lisbon", "c1 c2 conv"}
	base := time.Now().UTC().Add(-time.Hour)
	for i := 0; i < 60; i++ {
		at := base.Add(time.Duration(i) * time.Second)
		c := &conversation.Conversation{ID: fmt.Sprint("c", i), WorkspaceID: ws.ID, Type: conversation.TypeAPI, Status: conversation.StatusActive, LastMessageAt: at, CreatedAt: at, UpdatedAt: at}
		if err := s.CreateConversation(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 1+i%3; j++ {
			m := &conversation.Message{ID: fmt.Sprint("m", i, "-", j), Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text", Text: texts[(i+j)%len(texts)], CreatedAt: at.Add(time.Duration(j) * time.Millisecond)}
			if _, _, err := s.Apply(ctx, ws.ID, c.ID, conversation.Change{Messages: []*conversation.Message{m}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Conversations longer than readCheckMax are checked through the index instead.
	for i := 0; i < 3; i++ {
		at := base.Add(time.Duration(30+i*20) * time.Second)
		c := &conversation.Conversation{ID: fmt.Sprint("long", i), WorkspaceID: ws.ID, Type: conversation.TypeAPI, Status: conversation.StatusActive, LastMessageAt: at, CreatedAt: at, UpdatedAt: at}
		if err := s.CreateConversation(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		var msgs []*conversation.Message
		for j := 0; j <= readCheckMax+20; j++ {
			msgs = append(msgs, &conversation.Message{ID: fmt.Sprint("long", i, "-", j), Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text",
				Text: texts[(i+j)%(3+i)], CreatedAt: at.Add(time.Duration(j) * time.Millisecond)})
		}
		if _, _, err := s.Apply(ctx, ws.ID, c.ID, conversation.Change{Messages: msgs}); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

func textPlansAgree(t *testing.T, s *Store, workspaceID string) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{"delivery", "refund delivery", "lisbon", "delivery lisbon", "hello", "c1", "conv", "absent"} {
		for _, limit := range []int{7, 500} {
			f := conversation.Filter{Query: q, Limit: limit}
			plans := []func(conversation.Filter) (conversation.Page, error){
				func(f conversation.Filter) (conversation.Page, error) {
					return s.listConversations(ctx, workspaceID, f)
				},
				func(f conversation.Filter) (conversation.Page, error) {
					return s.listWalk(ctx, workspaceID, f, ftsQuery(q))
				},
				func(f conversation.Filter) (conversation.Page, error) {
					return s.listMatching(ctx, workspaceID, f, planSet)
				},
				func(f conversation.Filter) (conversation.Page, error) {
					return s.listMatching(ctx, workspaceID, f, planMembers)
				},
			}
			pages := make([][]string, len(plans))
			for plan, list := range plans {
				cursor := ""
				for {
					f.Cursor = cursor
					p, err := list(f)
					if err != nil {
						t.Fatal(err)
					}
					for _, c := range p.Conversations {
						pages[plan] = append(pages[plan], c.ID)
					}
					if p.NextCursor == "" {
						break
					}
					cursor = p.NextCursor
				}
			}
			for plan := range pages[1:] {
				if fmt.Sprint(pages[0]) != fmt.Sprint(pages[plan+1]) {
					t.Fatalf("q=%q limit %d: the plain query %v, plan %d %v", q, limit, pages[0], plan+1, pages[plan+1])
				}
			}
			want := matchingConversations(t, s, workspaceID, q)
			got := slices.Clone(pages[0])
			slices.Sort(got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("q=%q: the search found %v, the messages hold it in %v", q, got, want)
			}
			if q == "conv" || q == "c1" {
				if len(pages[0]) != 20 {
					t.Fatalf("q=%q matched %d conversations: the text filter must search message text only", q, len(pages[0]))
				}
			}
		}
	}
}

// matchingConversations returns the ids (sorted) of the workspace's conversations with a message
// matching q, read from the messages' text, not the index.
func matchingConversations(t *testing.T, s *Store, workspaceID, q string) []string {
	t.Helper()
	query := terms.NewQuery(queryWords(q))
	rows, err := s.read.Query(`SELECT c.id, m.text FROM messages m JOIN conversations c ON c.pk = m.conversation_pk WHERE c.workspace_id = $1`, workspaceID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	var ids []string
	for rows.Next() {
		var id, text string
		if err := rows.Scan(&id, &text); err != nil {
			t.Fatal(err)
		}
		if !seen[id] && query.Matches(text) {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestFullTextRekeyedOnUpgrade applies migration 0015 to a database whose full-text index is
// keyed as before it (rowid = message pk, the conversation as a "c<pk>" column): afterwards every
// row is keyed by conversation, and searches, deletes and edits find what the messages hold.
func TestFullTextRekeyedOnUpgrade(t *testing.T) {
	s := openTest(t)
	if s.dialect != "sqlite" {
		t.Skip("the full-text index is SQLite's")
	}
	ctx := context.Background()
	ws := seedTextSearch(t, s)
	old := []string{
		`DROP TRIGGER messages_fts_delete`, `DROP TRIGGER messages_fts_update`, `DROP TABLE messages_fts_vocab`, `DROP TABLE messages_fts`,
		`CREATE VIRTUAL TABLE messages_fts USING fts5(text, conv, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2')`,
		`CREATE VIRTUAL TABLE messages_fts_vocab USING fts5vocab(messages_fts, 'row')`,
		`INSERT INTO messages_fts (rowid, text, conv) SELECT pk, text, 'c' || conversation_pk FROM messages WHERE text <> ''`,
		`CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.text <> '' BEGIN DELETE FROM messages_fts WHERE rowid = old.pk; END`,
		`CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN DELETE FROM messages_fts WHERE rowid = old.pk;
			INSERT INTO messages_fts(rowid, text, conv) SELECT new.pk, new.text, 'c' || new.conversation_pk WHERE new.text <> ''; END`,
		`DELETE FROM schema_migrations WHERE version = 15`,
	}
	for _, q := range old {
		if _, err := s.write.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var rows, keyed int
	if err := s.read.QueryRow(`SELECT COUNT(*), SUM(EXISTS (SELECT 1 FROM messages m WHERE m.conversation_pk = f.rowid >> 32 AND m.pk = f.rowid & 4294967295))
		FROM messages_fts f WHERE messages_fts MATCH 'delivery OR refund OR hello OR lisbon OR conv'`).Scan(&rows, &keyed); err != nil {
		t.Fatal(err)
	}
	if rows == 0 || keyed != rows {
		t.Fatalf("%d of %d index rows keyed by conversation", keyed, rows)
	}
	textPlansAgree(t, s, ws.ID)
	// An edited text and a deleted message leave the index through the new keys.
	if _, err := s.write.Exec(`UPDATE messages SET text = 'nothing here' WHERE text LIKE '%elivery%' AND pk % 2 = 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.Exec(`DELETE FROM messages WHERE text LIKE '%refund%' AND pk % 3 = 0`); err != nil {
		t.Fatal(err)
	}
	textPlansAgree(t, s, ws.ID)
}

// TestExportMissesNothingWhileConversationsChange moves conversations to the front of the list
// (new activity) while an export runs: the export still has every conversation exactly once.
func TestExportMissesNothingWhileConversationsChange(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	ws := testWorkspace(t, s, "ws1", "one")
	base := time.Now().UTC().Add(-time.Hour)
	const n = 3 * exportBatch
	for i := 0; i < n; i++ {
		at := base.Add(time.Duration(i) * time.Millisecond)
		c := &conversation.Conversation{ID: fmt.Sprint("c", i), WorkspaceID: ws.ID, Type: conversation.TypeAPI, Status: conversation.StatusActive, LastMessageAt: at, CreatedAt: at, UpdatedAt: at}
		if err := s.CreateConversation(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		m := &conversation.Message{ID: fmt.Sprint("m", i), Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text", Text: "hi", CreatedAt: at}
		if _, _, err := s.Apply(ctx, ws.ID, c.ID, conversation.Change{Messages: []*conversation.Message{m}}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	rows := 0
	err := s.Export(ctx, ws.ID, conversation.Filter{}, conversation.ExportOptions{Variables: true}, func(r conversation.ExportRow) error {
		if rows == 0 {
			// The oldest conversations gain activity now: they move ahead of the export's cursor.
			for i := 0; i < 50; i++ {
				m := &conversation.Message{ID: fmt.Sprint("late", i), Role: conversation.RoleAgent, Direction: conversation.Outbound, Type: "text", Text: "late", CreatedAt: time.Now().UTC()}
				if _, _, err := s.Apply(ctx, ws.ID, fmt.Sprint("c", i), conversation.Change{Messages: []*conversation.Message{m}}); err != nil {
					return err
				}
			}
		}
		rows++
		if r.Message.Role == conversation.RoleUser {
			seen[r.Conversation.ID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("export saw %d of %d conversations", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("%s exported %d times", id, k)
		}
	}
}

// TestNoStatisticsOnAnEmptyDatabase: statistics recorded while tables are empty made the planner
// choose badly as they grew; Optimize waits for data.
func TestNoStatisticsOnAnEmptyDatabase(t *testing.T) {
	s := openTest(t)
	if err := s.Optimize(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.read.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("Optimize gathered statistics on an empty database")
	}
}

// TestExportPagesBoundedByMessages exports conversations long enough that a page ends on its
// message budget before its conversation count, and one longer than a page: every message once,
// in order, conversations in list order.
func TestExportPagesBoundedByMessages(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	ws := testWorkspace(t, s, "ws1", "one")
	base := time.Now().UTC().Add(-time.Hour)
	sizes := []int{1, exportPageMessages + 5, 400, 400, 400, 1, exportPageMessages, 3}
	want := 0
	for i, n := range sizes {
		at := base.Add(time.Duration(i) * time.Second)
		c := &conversation.Conversation{ID: fmt.Sprint("c", i), WorkspaceID: ws.ID, Type: conversation.TypeAPI, Status: conversation.StatusActive, LastMessageAt: at, CreatedAt: at, UpdatedAt: at}
		if err := s.CreateConversation(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		msgs := make([]*conversation.Message, n)
		for j := range msgs {
			msgs[j] = &conversation.Message{ID: fmt.Sprint("m", i, "-", j), Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text", Text: "hi", CreatedAt: at.Add(time.Duration(j) * time.Microsecond)}
		}
		if _, _, err := s.Apply(ctx, ws.ID, c.ID, conversation.Change{Messages: msgs}); err != nil {
			t.Fatal(err)
		}
		want += n
	}
	var order []string
	seen := map[string]bool{}
	var last time.Time
	err := s.Export(ctx, ws.ID, conversation.Filter{}, conversation.ExportOptions{Variables: true}, func(r conversation.ExportRow) error {
		if seen[r.Message.ID] {
			return fmt.Errorf("%s exported twice", r.Message.ID)
		}
		seen[r.Message.ID] = true
		if len(order) > 0 && order[len(order)-1] == r.Conversation.ID && r.Message.CreatedAt.Before(last) {
			return fmt.Errorf("%s out of order", r.Message.ID)
		}
		last = r.Message.CreatedAt
		if len(order) == 0 || order[len(order)-1] != r.Conversation.ID {
			order = append(order, r.Conversation.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != want {
		t.Fatalf("exported %d messages, want %d", len(seen), want)
	}
	if got := fmt.Sprint(order); got != "[c7 c6 c5 c4 c3 c2 c1 c0]" {
		t.Fatalf("conversations exported in order %s", got)
	}
	var pages []string
	err = s.exportPages(ctx, ws.ID, conversation.Filter{}, func(p *exportPage) error {
		var n int64
		for _, c := range p.convs {
			n += c.MessageCount
		}
		if n > exportPageMessages && len(p.convs) > 1 {
			t.Errorf("a page of %d conversations holds %d messages", len(p.convs), n)
		}
		page := fmt.Sprint(len(p.convs))
		if p.msgUpTo > 0 {
			m, err := s.exportMessages(ctx, p)
			if err != nil {
				return err
			}
			page = fmt.Sprint(p.convs[0].ID, ":", len(m[p.pks[0]]))
		}
		pages = append(pages, page)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// c7 | c6 | c5 c4 c3 | c2 | c1 in two pages of its own | c0
	if got, want := fmt.Sprint(pages), fmt.Sprintf("[1 1 3 1 c1:%d c1:5 1]", exportPageMessages); got != want {
		t.Fatalf("pages %s, want %s", got, want)
	}
}

// BenchmarkListCommonWordPastNonMatching times a common-word search whose page lies below 2,000
// conversations without the word (what a burst of one repeated text leaves at the top of the list):
// the signatures let the walk pass them inside one query. The word is in 17,000 messages, enough
// for the walk; at this size, recognising that means counting them (~2.5 ms of the figure).
func BenchmarkListCommonWordPastNonMatching(b *testing.B) {
	s := openTest(b)
	ctx := context.Background()
	ws := testWorkspace(b, s, "ws1", "one")
	base := time.Now().UTC().Add(-time.Hour)
	add := func(i int, text string) {
		texts := make([]string, 10)
		for j := range texts {
			texts[j] = fmt.Sprintf(text, i*10+j)
		}
		addConversation(b, s, ws.ID, fmt.Sprint("c", i), conversation.TypeWhatsApp, base.Add(time.Duration(i)*time.Millisecond), texts)
	}
	for i := 0; i < 1700; i++ {
		add(i, "when is my delivery due, order ORD-%d")
	}
	for i := 1700; i < 3700; i++ {
		add(i, "Hi, where is my order ORD-%06d? It was due yesterday.")
	}
	f := conversation.Filter{Query: "delivery", Limit: 50}
	if s.textPlan(ctx, ftsQuery(f.Query)) != planWalk {
		b.Fatal("the word is not common enough to take the walk")
	}
	b.ResetTimer()
	for b.Loop() {
		p, err := s.ListConversations(ctx, ws.ID, f)
		if err != nil || len(p.Conversations) != 50 {
			b.Fatalf("%d conversations, %v", len(p.Conversations), err)
		}
	}
}

// TestTextPlanFollowsMatches: the plan a search takes follows how many messages match, and each
// finds the workspace's conversations the messages hold, newest activity first.
func TestTextPlanFollowsMatches(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	ws := testWorkspace(t, s, "ws1", "one")
	base := time.Now().UTC().Add(-time.Hour)
	// 80 conversations of 200 messages: "gamma" in every message, "beta" in every second message
	// of every other conversation, "alpha" in a few.
	for i := 0; i < 80; i++ {
		texts := make([]string, 200)
		for j := range texts {
			texts[j] = "gamma"
			if i%2 == 0 && j%2 == 0 {
				texts[j] += " beta"
			}
			if i%7 == 0 && j == 0 {
				texts[j] += " alpha"
			}
		}
		addConversation(t, s, ws.ID, fmt.Sprint("c", i), conversation.TypeAPI, base.Add(time.Duration(i)*time.Second), texts)
	}
	// Another workspace's conversations with every word, newest of all: no plan may show them.
	other := testWorkspace(t, s, "ws2", "two")
	for i := 0; i < 5; i++ {
		addConversation(t, s, other.ID, fmt.Sprint("other", i), conversation.TypeAPI, time.Now().UTC(), []string{"alpha beta gamma"})
	}
	for _, c := range []struct {
		q    string
		plan textPlanKind
	}{{"alpha", planSet}, {"beta", planMembers}, {"gamma", planWalk}} {
		if got := s.textPlan(ctx, ftsQuery(c.q)); got != c.plan {
			t.Fatalf("%s: plan %d, want %d", c.q, got, c.plan)
		}
		want := matchingConversations(t, s, ws.ID, c.q)
		var got []string
		for cursor := ""; ; {
			p, err := s.ListConversations(ctx, ws.ID, conversation.Filter{Query: c.q, Limit: 9, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, conv := range p.Conversations {
				got = append(got, conv.ID)
			}
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		sorted := slices.Clone(got)
		slices.Sort(sorted)
		if fmt.Sprint(sorted) != fmt.Sprint(want) {
			t.Fatalf("%s: found %v, the messages hold it in %v", c.q, got, want)
		}
		for i := 1; i < len(got); i++ { // newest activity first: c79 before c78
			var a, b int
			fmt.Sscanf(got[i-1], "c%d", &a)
			fmt.Sscanf(got[i], "c%d", &b)
			if a <= b {
				t.Fatalf("%s: %v is not newest first", c.q, got)
			}
		}
	}
}

// addConversation stores a conversation with one customer message per text, a millisecond apart
// from at.
func addConversation(t testing.TB, s *Store, workspaceID, id string, typ conversation.Type, at time.Time, texts []string) {
	t.Helper()
	ctx := context.Background()
	c := &conversation.Conversation{ID: id, WorkspaceID: workspaceID, Type: typ, Status: conversation.StatusActive, LastMessageAt: at, CreatedAt: at, UpdatedAt: at}
	if err := s.CreateConversation(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	msgs := make([]*conversation.Message, len(texts))
	for j, text := range texts {
		msgs[j] = &conversation.Message{ID: fmt.Sprint(id, "-", j), Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "text", Text: text,
			CreatedAt: at.Add(time.Duration(j) * time.Millisecond)}
	}
	if _, _, err := s.Apply(ctx, workspaceID, c.ID, conversation.Change{Messages: msgs}); err != nil {
		t.Fatal(err)
	}
}

func TestMessagesAfter(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	ws := testWorkspace(t, s, "ws1", "one")
	other := testWorkspace(t, s, "ws2", "two")
	at := time.Now().UTC().Add(-time.Hour)
	addConversation(t, s, ws.ID, "a", conversation.TypeWhatsApp, at, []string{"one", "two", "three", "four", "five"})
	addConversation(t, s, ws.ID, "b", conversation.TypeWhatsApp, at, []string{"six", "seven"})
	addConversation(t, s, other.ID, "c", conversation.TypeWhatsApp, at, []string{"eight", "nine"})
	cases := []struct {
		name, workspace, conv, after string
		limit                        int
		want                         []string
	}{
		{"the rest, oldest first", ws.ID, "a", "a-1", 10, []string{"a-2", "a-3", "a-4"}},
		{"bounded", ws.ID, "a", "a-0", 2, []string{"a-1", "a-2"}},
		{"after the last", ws.ID, "a", "a-4", 10, nil},
		{"no limit", ws.ID, "a", "a-2", 0, []string{"a-3", "a-4"}},
		{"from the first", ws.ID, "a", "", 2, []string{"a-0", "a-1"}},
		{"a message of another conversation: from the first", ws.ID, "a", "b-0", 0, []string{"a-0", "a-1", "a-2", "a-3", "a-4"}},
		{"an unknown message: from the first", ws.ID, "b", "nope", 0, []string{"b-0", "b-1"}},
		{"another workspace's conversation", ws.ID, "c", "", 10, nil},
		{"that workspace sees its own", other.ID, "c", "c-0", 10, []string{"c-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.MessagesAfter(ctx, tc.workspace, tc.conv, tc.after, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range got {
				ids = append(ids, m.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("got %v, want %v", ids, tc.want)
			}
		})
	}
}

// testWorkspace creates (or finds) the workspace id with slug as its slug and name.
func testWorkspace(t testing.TB, s *Store, id, slug string) auth.Workspace {
	t.Helper()
	ws, err := s.EnsureWorkspace(context.Background(), auth.Workspace{ID: id, Slug: slug, Name: slug, CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return ws
}
