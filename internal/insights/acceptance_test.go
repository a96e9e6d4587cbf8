package insights_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/testenv"
)

// seeded is what the acceptance data set made: ids by name, and the handoff reply times read from
// the API's own timestamps.
type seeded struct {
	assistants map[string]string // Support, Sales, Broken → id
	convs      map[string]string // c1…c14 → id
	docs       map[string]string // document title → id
	replyMS    map[string]int64  // c4, c11 → first human reply after the first handoff
}

// expected is one conversation's facts as counted by hand from the script in seedInsights.
type expected struct {
	name, assistant, typ  string
	ended                 bool
	resolved72, resolved2 bool // resolved with the default window, and with a 2s window
	pending72             bool // resolved, not returned, ended less than 72h ago
	handoffs              int  // handoff events
	unansweredHandoff     bool
	replied               bool
}

// The script, conversation by conversation (customer in brackets):
//
//	c1  Support api  (alice) delivery question, KB found → ended; alice writes again at once (c2)
//	c2  Support api  (alice) refund question, KB found → ended
//	c3  Support api  (bob)   "Do you sell gift vouchers?", KB empty → ended (bob's c13 is another channel)
//	c4  Support api  (carol) asks for an agent → handoff by the tool; an agent replies → ended
//	c5  Support test (dave)  asks for a human → handoff, nobody replies
//	c6  Support test (erin)  opening hours, KB found → ended; erin writes again 2.5s later (c7)
//	c7  Support test (erin)  "Do you sell gift vouchers", KB empty (after the pause)
//	c8  Sales   api  (frank) jacket question → ended; frank writes again at once (c9)
//	c9  Sales   api  (frank) jacket question
//	c10 Sales   test (none)  "hello" → ended
//	c11 Sales   test (gina)  invoice; handed off by hand, an agent replies, resumed, handed off again → ended
//	c12 Broken  api  (hank)  the turn fails (no provider for its model) → ended
//	c13 Support test (bob)   "hi"
//	c14 Broken  api  (hank)  started by the business, no message from hank: not a return
var script = []expected{
	{name: "c1", assistant: "Support", typ: "api", ended: true},
	{name: "c2", assistant: "Support", typ: "api", ended: true, resolved72: true, resolved2: true, pending72: true},
	{name: "c3", assistant: "Support", typ: "api", ended: true, resolved72: true, resolved2: true, pending72: true},
	{name: "c4", assistant: "Support", typ: "api", ended: true, handoffs: 1, replied: true},
	{name: "c5", assistant: "Support", typ: "test", handoffs: 1, unansweredHandoff: true},
	{name: "c6", assistant: "Support", typ: "test", ended: true, resolved2: true},
	{name: "c7", assistant: "Support", typ: "test"},
	{name: "c8", assistant: "Sales", typ: "api", ended: true},
	{name: "c9", assistant: "Sales", typ: "api"},
	{name: "c10", assistant: "Sales", typ: "test", ended: true, resolved72: true, resolved2: true, pending72: true},
	{name: "c11", assistant: "Sales", typ: "test", ended: true, handoffs: 2, replied: true},
	{name: "c12", assistant: "Broken", typ: "api", ended: true, resolved72: true, resolved2: true, pending72: true},
	{name: "c13", assistant: "Support", typ: "test"},
	{name: "c14", assistant: "Broken", typ: "api"},
}

func parseTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return at
}

// seedInsights builds the data set through the API, as the script above says.
func seedInsights(t *testing.T, e *testenv.Env) *seeded {
	s := &seeded{assistants: map[string]string{}, convs: map[string]string{}, docs: map[string]string{}, replyMS: map[string]int64{}}
	kb := e.MustDo(201, "POST", "/api/v1/knowledge-bases", map[string]any{"name": "Help"})["id"].(string)
	for _, d := range []struct{ title, content string }{
		{"Shipping and delivery", "We deliver to Portugal and Spain within 3 working days. Delivery is free over 50 euros. Tracking numbers are sent by email."},
		{"Returns and refunds", "You can return any item within 30 days for a full refund. Refunds reach your card within 5 days."},
		{"Opening hours", "We are open Monday to Friday from 9am to 6pm, and on Saturday from 10am to 2pm."},
	} {
		s.docs[d.title] = e.MustDo(201, "POST", "/api/v1/knowledge-bases/"+kb+"/documents", map[string]any{"title": d.title, "content": d.content})["id"].(string)
	}
	s.assistants["Support"] = e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Support", "system_prompt": "You are Support.", "model": "builtin", "knowledge_base_ids": []string{kb}})["id"].(string)
	s.assistants["Sales"] = e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Sales", "system_prompt": "You are Sales.", "model": "builtin"})["id"].(string)
	// No provider serves this model in the test: every turn fails and the customer gets the fallback.
	s.assistants["Broken"] = e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Broken", "system_prompt": "You are Broken.", "model": "gpt-4o-mini"})["id"].(string)

	start := func(name, asst, typ, customer string) string {
		body := map[string]any{"assistant_id": s.assistants[asst], "type": typ}
		if customer != "" {
			body["customer_id"] = customer
		}
		id := e.MustDo(201, "POST", "/api/v1/conversations", body)["id"].(string)
		s.convs[name] = id
		return id
	}
	say := func(id, text string) []any {
		return e.MustDo(200, "POST", "/api/v1/conversations/"+id+"/messages", map[string]any{"text": text})["messages"].([]any)
	}
	agent := func(id, text string) time.Time {
		msgs := e.MustDo(200, "POST", "/api/v1/conversations/"+id+"/messages", map[string]any{"text": text, "role": "agent"})["messages"].([]any)
		return parseTime(t, msgs[0].(map[string]any)["created_at"])
	}
	end := func(id string) { e.MustDo(200, "POST", "/api/v1/conversations/"+id+"/end", nil) }
	toolStep := func(msgs []any, tool string) time.Time {
		for _, m := range msgs {
			mm := m.(map[string]any)
			calls, _ := mm["tool_calls"].([]any)
			for _, c := range calls {
				if c.(map[string]any)["name"] == tool {
					return parseTime(t, mm["created_at"])
				}
			}
		}
		t.Fatalf("no %s call in %v", tool, msgs)
		return time.Time{}
	}

	c1 := start("c1", "Support", "api", "alice")
	toolStep(say(c1, "How long does delivery take to Portugal?"), "search_knowledge")
	end(c1)
	c2 := start("c2", "Support", "api", "alice")
	say(c2, "Can I return my shoes for a refund?")
	end(c2)
	c3 := start("c3", "Support", "api", "bob")
	say(c3, "Do you sell gift vouchers?")
	end(c3)
	c4 := start("c4", "Support", "api", "carol")
	handoff := toolStep(say(c4, "I want to talk to an agent please"), "transfer_to_human")
	s.replyMS["c4"] = agent(c4, "Hi Carol, I am here.").Sub(handoff).Milliseconds()
	end(c4)
	c5 := start("c5", "Support", "test", "dave")
	toolStep(say(c5, "Where is my parcel? I need a human"), "transfer_to_human")
	c6 := start("c6", "Support", "test", "erin")
	say(c6, "What are your opening hours on Saturday?")
	end(c6)
	c8 := start("c8", "Sales", "api", "frank")
	say(c8, "Do you have the blue jacket in size M?")
	end(c8)
	c9 := start("c9", "Sales", "api", "frank")
	say(c9, "Is the blue jacket available in size L?")
	c10 := start("c10", "Sales", "test", "")
	say(c10, "hello")
	end(c10)
	c11 := start("c11", "Sales", "test", "gina")
	say(c11, "My invoice is wrong")
	handedAt := parseTime(t, e.MustDo(200, "POST", "/api/v1/conversations/"+c11+"/handoff", map[string]any{"reason": "billing"})["updated_at"])
	s.replyMS["c11"] = agent(c11, "Let me fix your invoice.").Sub(handedAt).Milliseconds()
	e.MustDo(200, "POST", "/api/v1/conversations/"+c11+"/resume", nil)
	e.MustDo(200, "POST", "/api/v1/conversations/"+c11+"/handoff", map[string]any{"reason": "billing again"})
	end(c11)
	c12 := start("c12", "Broken", "api", "hank")
	if msgs := say(c12, "Can I pay with PayPal?"); msgs[len(msgs)-1].(map[string]any)["error"] == nil {
		t.Fatalf("the Broken assistant's turn did not fail: %v", msgs)
	}
	end(c12)
	c13 := start("c13", "Support", "test", "bob")
	say(c13, "hi")
	start("c14", "Broken", "api", "hank")
	// Every end is now behind us: past a 2s window, erin comes back.
	time.Sleep(2500 * time.Millisecond)
	c7 := start("c7", "Support", "test", "erin")
	say(c7, "Do you sell gift vouchers")
	return s
}

// figures are the summable counts of the API answer.
type figures struct {
	Conversations      int64   `json:"conversations"`
	Ended              int64   `json:"ended"`
	Resolved           int64   `json:"resolved"`
	ResolutionRate     float64 `json:"resolution_rate"`
	ResolutionPending  int64   `json:"resolution_pending"`
	Handoffs           int64   `json:"handoffs"`
	HandoffEvents      int64   `json:"handoff_events"`
	HandoffRate        float64 `json:"handoff_rate"`
	UnansweredHandoffs int64   `json:"unanswered_handoffs"`
	RepliedHandoffs    int64   `json:"replied_handoffs"`
	AvgReplyMS         float64 `json:"avg_first_human_reply_ms"`
	P50ReplyMS         int64   `json:"p50_first_human_reply_ms"`
}

type report struct {
	figures
	ResolutionWindow string `json:"resolution_window"`
	ByAssistant      []struct {
		AssistantID string `json:"assistant_id"`
		Name        string `json:"name"`
		figures
	} `json:"by_assistant"`
	ByChannel []struct {
		Type string `json:"type"`
		figures
	} `json:"by_channel"`
	ByDay []struct {
		Date string `json:"date"`
		figures
	} `json:"by_day"`
	Questions struct {
		Scanned         int    `json:"scanned"`
		Limit           int    `json:"limit"`
		Truncated       bool   `json:"truncated"`
		Grouped         int    `json:"grouped"`
		WithoutKeywords int    `json:"without_keywords"`
		Method          string `json:"method"`
		Embedded        int    `json:"embedded"`
	} `json:"questions"`
	Topics []struct {
		Label           string   `json:"label"`
		Kind            string   `json:"kind"`
		DocumentID      string   `json:"document_id"`
		Keywords        []string `json:"keywords"`
		Count           int      `json:"count"`
		Share           float64  `json:"share"`
		Examples        []string `json:"examples"`
		ConversationIDs []string `json:"conversation_ids"`
	} `json:"topics"`
	Unanswered []struct {
		Text            string         `json:"text"`
		Normalized      string         `json:"normalized"`
		Count           int            `json:"count"`
		LastSeenAt      string         `json:"last_seen_at"`
		ConversationIDs []string       `json:"conversation_ids"`
		Reasons         map[string]int `json:"reasons"`
	} `json:"unanswered_questions"`
	UnansweredTotal int `json:"unanswered_questions_total"`
}

func getReport(t *testing.T, e *testenv.Env, query url.Values) report {
	t.Helper()
	var r report
	resp := e.Do("GET", "/api/v1/insights?"+query.Encode(), nil)
	if resp.Status != 200 {
		t.Fatalf("insights %s: %d %s", query.Encode(), resp.Status, resp.Body)
	}
	resp.Decode(t, &r)
	return r
}

// want sums the hand-counted facts of the conversations keep selects, for a window (72h or 2s).
func want(s *seeded, short bool, keep func(expected) bool) figures {
	var f figures
	var replies []int64
	for _, x := range script {
		if !keep(x) {
			continue
		}
		f.Conversations++
		if x.ended {
			f.Ended++
		}
		if (!short && x.resolved72) || (short && x.resolved2) {
			f.Resolved++
		}
		if !short && x.pending72 {
			f.ResolutionPending++ // with 2s, every end is more than 2s old: none pending
		}
		if x.handoffs > 0 {
			f.Handoffs++
			f.HandoffEvents += int64(x.handoffs)
		}
		if x.unansweredHandoff {
			f.UnansweredHandoffs++
		}
		if x.replied {
			f.RepliedHandoffs++
			replies = append(replies, s.replyMS[x.name])
		}
	}
	if f.Ended > 0 {
		f.ResolutionRate = float64(f.Resolved) / float64(f.Ended)
	}
	if f.Conversations > 0 {
		f.HandoffRate = float64(f.Handoffs) / float64(f.Conversations)
	}
	if len(replies) > 0 {
		var sum int64
		for _, r := range replies {
			sum += r
		}
		f.AvgReplyMS = float64(sum) / float64(len(replies))
		sort.Slice(replies, func(i, j int) bool { return replies[i] < replies[j] })
		f.P50ReplyMS = replies[(len(replies)+1)/2-1]
	}
	return f
}

func sameFigures(t *testing.T, what string, got, want figures) {
	t.Helper()
	if math.Abs(got.ResolutionRate-want.ResolutionRate) < 1e-9 {
		got.ResolutionRate = want.ResolutionRate
	}
	if math.Abs(got.HandoffRate-want.HandoffRate) < 1e-9 {
		got.HandoffRate = want.HandoffRate
	}
	if math.Abs(got.AvgReplyMS-want.AvgReplyMS) < 1e-6 {
		got.AvgReplyMS = want.AvgReplyMS
	}
	if got != want {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// TestInsightsMatchHandCountedFigures builds a data set through the API (three assistants, two
// channels, conversations ended, handed off by the tool and by hand, answered and not, customers
// coming back at once, after a pause, on another channel and not at all, knowledge-base questions
// with and without matches, a failing turn) and checks every figure of GET /api/v1/insights, the
// topics, the unanswered questions and the metrics' headline fields against counts made by hand.
func TestInsightsMatchHandCountedFigures(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		s := seedInsights(t, e)
		all := func(expected) bool { return true }

		// The hand count in totals, written out once (the per-conversation table must agree).
		r := getReport(t, e, url.Values{})
		if r.Conversations != 14 || r.Ended != 9 || r.Resolved != 4 || r.ResolutionPending != 4 || r.Handoffs != 3 || r.HandoffEvents != 4 ||
			r.UnansweredHandoffs != 1 || r.RepliedHandoffs != 2 || r.ResolutionWindow != "3d" {
			t.Fatalf("totals: %+v window %s", r.figures, r.ResolutionWindow)
		}
		sameFigures(t, "totals, 72h", r.figures, want(s, false, all))

		short := getReport(t, e, url.Values{"resolution_window": {"2s"}})
		if short.Resolved != 5 || short.ResolutionPending != 0 {
			t.Errorf("2s window: resolved %d pending %d, want 5 and 0", short.Resolved, short.ResolutionPending)
		}
		sameFigures(t, "totals, 2s", short.figures, want(s, true, all))

		for _, b := range r.ByAssistant {
			name := b.Name
			if s.assistants[name] != b.AssistantID {
				t.Fatalf("by_assistant row %s %s", b.AssistantID, name)
			}
			sameFigures(t, "assistant "+name, b.figures, want(s, false, func(x expected) bool { return x.assistant == name }))
		}
		if len(r.ByAssistant) != 3 || r.ByAssistant[0].Name != "Support" || r.ByAssistant[1].Name != "Sales" || r.ByAssistant[2].Name != "Broken" {
			t.Errorf("by_assistant order: %+v", r.ByAssistant)
		}
		if len(r.ByChannel) != 2 || r.ByChannel[0].Type != "api" || r.ByChannel[1].Type != "test" {
			t.Errorf("by_channel: %+v", r.ByChannel)
		}
		for _, c := range r.ByChannel {
			typ := c.Type
			sameFigures(t, "channel "+typ, c.figures, want(s, false, func(x expected) bool { return x.typ == typ }))
		}
		for _, c := range short.ByChannel {
			typ := c.Type
			sameFigures(t, "channel "+typ+", 2s", c.figures, want(s, true, func(x expected) bool { return x.typ == typ }))
		}
		// Days: every conversation started today (or, past midnight UTC, on the day the API says).
		created := map[string]string{}
		for name, id := range s.convs {
			created[name] = parseTime(t, e.MustDo(200, "GET", "/api/v1/conversations/"+id, nil)["created_at"]).UTC().Format("2006-01-02")
		}
		seen := map[string]bool{}
		for _, d := range r.ByDay {
			date := d.Date
			seen[date] = true
			sameFigures(t, "day "+date, d.figures, want(s, false, func(x expected) bool { return created[x.name] == date }))
		}
		for name, d := range created {
			if !seen[d] {
				t.Errorf("%s started on %s, which by_day lacks", name, d)
			}
		}

		// Ranges that cut a day (RFC 3339 times, read from the facts, not the daily rollup): from c7's
		// start on is c7 alone; before it, the 13 others.
		c7At := parseTime(t, e.MustDo(200, "GET", "/api/v1/conversations/"+s.convs["c7"], nil)["created_at"]).UTC()
		onlyC7 := getReport(t, e, url.Values{"from": {c7At.Format(time.RFC3339Nano)}, "to": {c7At.Add(time.Hour).Format(time.RFC3339Nano)}})
		sameFigures(t, "from c7's start", onlyC7.figures, want(s, false, func(x expected) bool { return x.name == "c7" }))
		// (an upper bound includes its own millisecond: the one before c7's)
		beforeC7 := getReport(t, e, url.Values{"from": {c7At.Add(-24 * time.Hour).Format(time.RFC3339Nano)}, "to": {c7At.Add(-time.Millisecond).Format(time.RFC3339Nano)}})
		sameFigures(t, "before c7", beforeC7.figures, want(s, false, func(x expected) bool { return x.name != "c7" }))
		// Whole days around the data: the daily rollup alone, the same figures as no range at all.
		today := c7At.Truncate(24 * time.Hour)
		days := getReport(t, e, url.Values{"from": {today.AddDate(0, 0, -1).Format("2006-01-02")}, "to": {today.AddDate(0, 0, 1).Format("2006-01-02")}})
		sameFigures(t, "whole days", days.figures, want(s, false, all))

		// Filters: one assistant, one channel.
		support := getReport(t, e, url.Values{"assistant_id": {s.assistants["Support"]}})
		sameFigures(t, "filter assistant", support.figures, want(s, false, func(x expected) bool { return x.assistant == "Support" }))
		if support.Questions.Scanned != 8 {
			t.Errorf("Support's questions: %d, want 8 (c1–c7, c13)", support.Questions.Scanned)
		}
		tests := getReport(t, e, url.Values{"type": {"test"}, "resolution_window": {"2s"}})
		sameFigures(t, "filter type", tests.figures, want(s, true, func(x expected) bool { return x.typ == "test" }))

		// Questions: 13 customer text messages, two without a keyword ("hello", "hi").
		q := r.Questions
		if q.Scanned != 13 || q.Limit != 20000 || q.Truncated || q.WithoutKeywords != 2 || q.Grouped != 11 || q.Method != "keywords" {
			t.Errorf("questions: %+v", q)
		}
		type topic struct {
			Label, Kind, Doc string
			Count            int
			Keywords         string
		}
		var topics []topic
		for _, tp := range r.Topics {
			topics = append(topics, topic{tp.Label, tp.Kind, tp.DocumentID, tp.Count, fmt.Sprint(tp.Keywords)})
			if math.Abs(tp.Share-float64(tp.Count)/13) > 1e-9 {
				t.Errorf("topic %s share %v, want %d/13", tp.Label, tp.Share, tp.Count)
			}
		}
		wantTopics := []topic{
			{"blue jacket", "keywords", "", 2, "[blue jacket size available]"},
			{"gift vouchers", "keywords", "", 2, "[gift sell vouchers]"},
			{"agent", "keywords", "", 1, "[agent talk]"},
			{"human", "keywords", "", 1, "[human parcel]"},
			{"invoice", "keywords", "", 1, "[invoice wrong]"},
			{"Opening hours", "document", s.docs["Opening hours"], 1, "[hours opening saturday]"},
			{"pay", "keywords", "", 1, "[pay paypal]"},
			{"Returns and refunds", "document", s.docs["Returns and refunds"], 1, "[refund return shoes]"},
			{"Shipping and delivery", "document", s.docs["Shipping and delivery"], 1, "[delivery long portugal take]"},
		}
		if !reflect.DeepEqual(topics, wantTopics) {
			t.Errorf("topics:\n got  %+v\n want %+v", topics, wantTopics)
		}
		gift := r.Topics[1]
		if fmt.Sprint(gift.Examples) != "[Do you sell gift vouchers]" || fmt.Sprint(gift.ConversationIDs) != fmt.Sprint([]string{s.convs["c7"], s.convs["c3"]}) {
			t.Errorf("gift vouchers topic: examples %v, conversations %v", gift.Examples, gift.ConversationIDs)
		}

		// Unanswered: the gift vouchers twice (KB empty), two asks for a person (the assistant handed
		// off), the failed turn; c11's invoice was handed off by hand, not by the assistant.
		type unanswered struct {
			Text          string
			Count         int
			Conversations string
			Reasons       string
		}
		var un []unanswered
		for _, u := range r.Unanswered {
			un = append(un, unanswered{u.Text, u.Count, fmt.Sprint(u.ConversationIDs), fmt.Sprint(u.Reasons)})
		}
		ids := func(names ...string) string {
			var out []string
			for _, n := range names {
				out = append(out, s.convs[n])
			}
			return fmt.Sprint(out)
		}
		wantUn := []unanswered{
			{"Do you sell gift vouchers", 2, ids("c7", "c3"), "map[failed:0 handoff:0 no_results:2]"},
			{"Can I pay with PayPal?", 1, ids("c12"), "map[failed:1 handoff:0 no_results:0]"},
			{"Where is my parcel? I need a human", 1, ids("c5"), "map[failed:0 handoff:1 no_results:0]"},
			{"I want to talk to an agent please", 1, ids("c4"), "map[failed:0 handoff:1 no_results:0]"},
		}
		if !reflect.DeepEqual(un, wantUn) || r.UnansweredTotal != 5 {
			t.Errorf("unanswered (total %d):\n got  %+v\n want %+v", r.UnansweredTotal, un, wantUn)
		}
		if r.Unanswered[0].Normalized != "do you sell gift vouchers" {
			t.Errorf("normalized %q", r.Unanswered[0].Normalized)
		}

		// The question cap: the most recently active conversations first, and the answer says so.
		capped := getReport(t, e, url.Values{"questions_limit": {"3"}})
		if capped.Questions.Scanned != 3 || !capped.Questions.Truncated || capped.Questions.Limit != 3 {
			t.Errorf("capped questions: %+v", capped.Questions)
		}
		if len(capped.Unanswered) == 0 || capped.Unanswered[0].ConversationIDs[0] != s.convs["c7"] {
			t.Errorf("the newest conversation's question is not in a capped scan: %+v", capped.Unanswered)
		}

		// The metrics answer carries the headline, its contract fields unchanged.
		m := e.MustDo(200, "GET", "/api/v1/metrics", nil)
		w := want(s, false, all)
		if m["resolution_rate"] != w.ResolutionRate || m["handoff_rate"] != w.HandoffRate || m["unanswered_handoffs"] != float64(1) ||
			math.Abs(m["avg_first_human_reply_ms"].(float64)-w.AvgReplyMS) > 1e-6 || m["total_conversations"] != float64(14) {
			t.Errorf("metrics headline: %v", m)
		}
		if ms := e.MustDo(200, "GET", "/api/v1/metrics?resolution_window=2s", nil); ms["resolution_rate"] != float64(5)/9 {
			t.Errorf("metrics with a 2s window: resolution_rate %v, want 5/9", ms["resolution_rate"])
		}

		// Bad input: 400 with the contract's error, never a 500.
		for _, bad := range []string{"resolution_window=0s", "resolution_window=-1h", "resolution_window=soon", "resolution_window=400d",
			"questions_limit=0", "topics_limit=x", "from=yesterday", "type=fax"} {
			if resp := e.Do("GET", "/api/v1/insights?"+bad, nil); resp.Status != 400 {
				t.Errorf("insights?%s: %d %s", bad, resp.Status, resp.Body)
			}
		}
		if resp := e.Do("GET", "/api/v1/metrics?resolution_window=forever", nil); resp.Status != 400 {
			t.Errorf("metrics with a bad window: %d %s", resp.Status, resp.Body)
		}

		// Another workspace sees none of it.
		keyB, _ := e.NewKey("insights-other")
		var other report
		resp := e.DoWith(keyB, "GET", "/api/v1/insights?assistant_id="+s.assistants["Support"], nil, nil)
		resp.Decode(t, &other)
		if resp.Status != 200 || other.Conversations != 0 || other.Questions.Scanned != 0 || len(other.Topics) != 0 {
			t.Errorf("another workspace: %d %s", resp.Status, resp.Body)
		}

		// Back-filling (the migration's statements, re-run) rebuilds the same facts from the data,
		// except what left no trace: c11's handoffs by hand count once, with no known time.
		if err := e.App.Store.RebuildInsights(context.Background()); err != nil {
			t.Fatal(err)
		}
		rebuilt := getReport(t, e, url.Values{})
		w = want(s, false, all)
		w.HandoffEvents, w.RepliedHandoffs = 3, 1
		w.AvgReplyMS, w.P50ReplyMS = float64(s.replyMS["c4"]), s.replyMS["c4"]
		sameFigures(t, "rebuilt", rebuilt.figures, w)
	})
}

// TestInsightsJSONShape checks the answer's field names on an empty workspace (lists, not nulls).
func TestInsightsJSONShape(t *testing.T) {
	e := testenv.New(t)
	body := e.MustDo(200, "GET", "/api/v1/insights", nil)
	for _, k := range []string{"resolution_rate", "resolved", "ended", "handoff_rate", "handoffs", "unanswered_handoffs",
		"avg_first_human_reply_ms", "p50_first_human_reply_ms", "by_assistant", "by_channel", "by_day", "topics",
		"unanswered_questions", "questions", "resolution_window"} {
		if _, ok := body[k]; !ok {
			t.Errorf("no %s in %v", k, body)
		}
	}
	raw, _ := json.Marshal(body)
	for _, k := range []string{"by_assistant", "by_channel", "by_day", "topics", "unanswered_questions"} {
		if _, ok := body[k].([]any); !ok {
			t.Errorf("%s is not a list: %s", k, raw)
		}
	}
}
