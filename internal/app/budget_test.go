package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/budget"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/events"
	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/llm/llmtest"
	"github.com/parley-hq/parley/internal/testenv"
	"github.com/parley-hq/parley/internal/webhooks"
)

// budgetReceiver is an automation endpoint on loopback that counts the signed budget.threshold
// deliveries it receives, per threshold.
type budgetReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	secret  string
	counts  map[int]int
	last    map[int]map[string]any
	unknown []string
}

func newBudgetReceiver(t *testing.T) *budgetReceiver {
	rc := &budgetReceiver{counts: map[int]int{}, last: map[int]map[string]any{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		var d struct {
			Event string         `json:"event"`
			Data  map[string]any `json:"data"`
		}
		if err := json.Unmarshal(body, &d); err != nil || rc.secret == "" || r.Header.Get(webhooks.SignatureHeader) != webhooks.Sign(body, rc.secret) ||
			d.Event != "budget.threshold" || r.Header.Get("X-Parley-Event") != d.Event {
			rc.unknown = append(rc.unknown, string(body))
			w.WriteHeader(http.StatusOK)
			return
		}
		th, _ := d.Data["threshold_percent"].(float64)
		rc.counts[int(th)]++
		rc.last[int(th)] = d.Data
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *budgetReceiver) setSecret(s string) {
	rc.mu.Lock()
	rc.secret = s
	rc.mu.Unlock()
}

// state is the deliveries so far, as "80:n 100:m", plus anything unexpected.
func (rc *budgetReceiver) state() string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	s := fmt.Sprintf("80:%d 100:%d", rc.counts[80], rc.counts[100])
	if len(rc.unknown) > 0 {
		s += fmt.Sprintf(" unexpected:%q", rc.unknown)
	}
	return s
}

func (rc *budgetReceiver) data(threshold int) map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.last[threshold]
}

// waitState waits until the deliveries are want, then for settle more to see that no more come.
func (rc *budgetReceiver) waitState(t *testing.T, want string, settle time.Duration) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for rc.state() != want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := rc.state(); got != want {
		t.Fatalf("deliveries %s, want %s", got, want)
	}
	time.Sleep(settle)
	if got := rc.state(); got != want {
		t.Fatalf("deliveries %s after waiting, want still %s", got, want)
	}
}

func watcher(t *testing.T, e *testenv.Env) *budget.Watcher {
	t.Helper()
	w, ok := e.App.Extra["budgets"].(*budget.Watcher)
	if !ok {
		t.Fatal("no budget watcher")
	}
	return w
}

// TestBudgetCrossingFiresWebhookOnce: an assistant with a $1 monthly budget answers with a priced
// model (the fake OpenAI server); its spend crosses 80% and then 100%, each announced by exactly one
// signed budget.threshold delivery. More costly answers, a sweep, a restart of Parley on the same
// database and its start-up sweep, and more answers after it, deliver nothing more.
func TestBudgetCrossingFiresWebhookOnce(t *testing.T) {
	for _, b := range testenv.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			rc := newBudgetReceiver(t)
			fake := llmtest.New(t)
			onDB := b.Configure(t)
			dataDir := t.TempDir() // the secret key that seals the webhook's secret outlives a restart
			configure := func(c *app.Config) {
				onDB(c)
				c.DataDir, c.LLMBaseURL, c.LLMAPIKey, c.ExtractIdle = dataDir, fake.BaseURL(), "sk-test", -1
			}
			post := func(e *testenv.Env, cid string, tokensIn int64) {
				t.Helper()
				fake.Push(llmtest.Text("Here is a costly answer.", tokensIn, 0))
				e.MustDo(200, "POST", "/api/v1/conversations/"+cid+"/messages", map[string]any{"text": "Tell me more."})
			}
			var aid, cid string

			t.Run("first run", func(t *testing.T) {
				e := testenv.New(t, configure)
				hook := e.MustDo(201, "POST", "/api/v1/webhooks", map[string]any{"url": rc.URL, "events": []string{"budget.threshold"}})
				rc.setSecret(hook["secret"].(string))
				// $1000 per million input tokens: 1,000 tokens cost $1.
				e.MustDo(200, "PUT", "/api/v1/prices/acme-large", map[string]any{"input_per_million_usd": 1000, "output_per_million_usd": 0})
				aid = createAssistant(t, e, map[string]any{"name": "Costly Carl", "model": "acme-large", "monthly_budget_usd": 1})
				cid = newConversation(t, e, aid)

				post(e, cid, 700) // $0.70: 70%, below every threshold
				if created, err := watcher(t, e).Check(t.Context(), e.WorkspaceID, aid); err != nil || len(created) != 0 {
					t.Fatalf("at 70%%: created %v, err %v", created, err)
				}
				rc.waitState(t, "80:0 100:0", 300*time.Millisecond)

				post(e, cid, 150) // $0.85: 85%
				rc.waitState(t, "80:1 100:0", 500*time.Millisecond)
				d := rc.data(80)
				if d["month"] != budget.Month(time.Now()) || d["budget_usd"] != 1.0 || d["spent_usd"] != 0.85 ||
					fmt.Sprint(d["assistant"]) != fmt.Sprintf("map[id:%s name:Costly Carl]", aid) {
					t.Fatalf("80%% delivery data %v", d)
				}

				post(e, cid, 200) // $1.05: 105%
				rc.waitState(t, "80:1 100:1", 500*time.Millisecond)
				if d := rc.data(100); d["spent_usd"] != 1.05 || d["threshold_percent"] != 100.0 {
					t.Fatalf("100%% delivery data %v", d)
				}

				// Past the budget every answer is still a crossing "level": nothing more is sent.
				post(e, cid, 500)
				post(e, cid, 500)
				if created, err := watcher(t, e).Sweep(t.Context()); err != nil || len(created) != 0 {
					t.Fatalf("sweep past 100%%: created %v, err %v", created, err)
				}
				rc.waitState(t, "80:1 100:1", time.Second)

				// The API shows the month's spend and both alerts.
				list := e.MustDo(200, "GET", "/api/v1/budgets", nil)
				data := list["data"].([]any)
				if len(data) != 1 || list["month"] != budget.Month(time.Now()) {
					t.Fatalf("budgets %v", list)
				}
				st := data[0].(map[string]any)
				if st["assistant_id"] != aid || st["budget_usd"] != 1.0 || st["spent_usd"] != 2.05 || st["percent"] != 205.0 ||
					st["status"] != "exceeded" || len(st["alerts"].([]any)) != 2 {
					t.Fatalf("budget %v", st)
				}
				a := e.MustDo(200, "GET", "/api/v1/assistants/"+aid, nil)
				alerts := a["budget"].(map[string]any)["alerts"].([]any)
				if a["monthly_budget_usd"] != 1.0 || len(alerts) != 2 || alerts[0].(map[string]any)["threshold_percent"] != 80.0 ||
					alerts[0].(map[string]any)["spent_usd"] != 0.85 || alerts[1].(map[string]any)["spent_usd"] != 1.05 {
					t.Fatalf("assistant budget %v", a["budget"])
				}
			})
			if t.Failed() {
				return
			}

			t.Run("after restart", func(t *testing.T) {
				e := testenv.New(t, configure) // the same database and data directory
				// A watcher that has seen nothing yet, besides the app's own start-up sweep.
				fresh := &budget.Watcher{Store: e.App.Store, Notify: e.App.Extra["webhooks"].(*webhooks.Service)}
				if created, err := fresh.Sweep(t.Context()); err != nil || len(created) != 0 {
					t.Fatalf("sweep after restart: created %v, err %v", created, err)
				}
				post(e, cid, 400)
				rc.waitState(t, "80:1 100:1", 1500*time.Millisecond)
				if st := e.MustDo(200, "GET", "/api/v1/budgets", nil)["data"].([]any)[0].(map[string]any); st["spent_usd"] != 2.45 {
					t.Fatalf("spend after restart %v", st)
				}
			})
		})
	}
}

// TestBudgetAlertsRaceAcrossInstances: two Parley instances on one PostgreSQL database. Cost lands
// without any event (straight into the store), then both instances check the budget at once from
// many goroutines: each threshold is recorded once and delivered once. Answers produced on B after
// that, which both instances see, deliver nothing more.
func TestBudgetAlertsRaceAcrossInstances(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("set %s to race two instances on PostgreSQL", testenv.PostgresEnv)
	}
	rc := newBudgetReceiver(t)
	fake := llmtest.New(t)
	dataDir := t.TempDir()
	configure := func(c *app.Config) {
		c.DB, c.DataDir, c.LLMBaseURL, c.LLMAPIKey, c.ExtractIdle = dsn, dataDir, fake.BaseURL(), "sk-test", -1
	}
	a := testenv.New(t, configure)
	b := testenv.New(t, configure)
	hook := a.MustDo(201, "POST", "/api/v1/webhooks", map[string]any{"url": rc.URL, "events": []string{"budget.threshold"}})
	rc.setSecret(hook["secret"].(string))
	a.MustDo(200, "PUT", "/api/v1/prices/acme-large", map[string]any{"input_per_million_usd": 1000, "output_per_million_usd": 0})
	aid := createAssistant(t, a, map[string]any{"name": "Raced", "model": "acme-large", "monthly_budget_usd": 2})
	cid := newConversation(t, a, aid)

	// $2.50 of delivery prices recorded directly: no event, so no check has run yet.
	if _, _, err := a.App.Store.Apply(t.Context(), a.WorkspaceID, cid, conversation.Change{CostMicros: 2_500_000}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var created []budget.Alert
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 16 {
		e := a
		if i%2 == 1 {
			e = b
		}
		w := &budget.Watcher{Store: e.App.Store, Notify: e.App.Extra["webhooks"].(*webhooks.Service)} // fresh: nothing settled
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got, err := w.Check(context.Background(), a.WorkspaceID, aid)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			created = append(created, got...)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if len(created) != 2 || created[0].Threshold == created[1].Threshold {
		t.Fatalf("alerts created by the racing checks: %+v", created)
	}
	rc.waitState(t, "80:1 100:1", 500*time.Millisecond)

	// More cost through B's conversation service: both instances see it (B directly, A through
	// LISTEN/NOTIFY) and check; their sweeps run too.
	fake.Push(llmtest.Text("Answer on B.", 300, 0))
	b.MustDo(200, "POST", "/api/v1/conversations/"+cid+"/messages", map[string]any{"text": "More please."})
	for _, e := range []*testenv.Env{a, b} {
		if got, err := watcher(t, e).Sweep(t.Context()); err != nil || len(got) != 0 {
			t.Fatalf("sweep: %v %v", got, err)
		}
	}
	rc.waitState(t, "80:1 100:1", 1500*time.Millisecond)
}

// TestBudgetMonths: spend counts in its own UTC calendar month. A new month starts with no spend
// and no alerts; one jump past 100% records both thresholds; just after midnight on the 1st, the
// month that ended is still checked for its last costs.
func TestBudgetMonths(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		rc := newBudgetReceiver(t)
		hook := e.MustDo(201, "POST", "/api/v1/webhooks", map[string]any{"url": rc.URL, "events": []string{"budget.threshold"}})
		rc.setSecret(hook["secret"].(string))
		aid := e.CreateAssistant("Monthly", "You are Monthly.")
		e.MustDo(200, "PATCH", "/api/v1/assistants/"+aid, map[string]any{"monthly_budget_usd": 10})
		cid := newConversation(t, e, aid)
		at := func(s string) time.Time {
			v, err := time.Parse(time.RFC3339, s)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		spend := func(when string, usd float64) {
			t.Helper()
			m := &conversation.Message{ID: ids.New(), Role: conversation.RoleAssistant, Direction: conversation.Outbound, Type: "text",
				Text: "priced answer", CostMicros: budget.Micros(usd), CreatedAt: at(when)}
			if _, _, err := e.App.Store.Apply(t.Context(), e.WorkspaceID, cid, conversation.Change{Messages: []*conversation.Message{m}}); err != nil {
				t.Fatal(err)
			}
		}
		check := func(now string) string {
			t.Helper()
			w := &budget.Watcher{Store: e.App.Store, Notify: e.App.Extra["webhooks"].(*webhooks.Service), Now: func() time.Time { return at(now) }}
			got, err := w.Check(t.Context(), e.WorkspaceID, aid)
			if err != nil {
				t.Fatal(err)
			}
			out := ""
			for _, a := range got {
				out += fmt.Sprintf("%s:%d ", a.Month, a.Threshold)
			}
			return out
		}
		steps := []struct {
			spendAt string
			usd     float64
			checkAt string
			want    string
		}{
			{"2030-01-20T10:00:00Z", 12, "2030-01-25T00:00:00Z", "2030-01:80 2030-01:100 "}, // one jump: both
			{"", 0, "2030-02-10T00:00:00Z", ""},                                             // February starts fresh
			{"2030-02-11T09:30:00Z", 7.99, "2030-02-12T00:00:00Z", ""},                      // 79.9%
			{"2030-02-12T09:30:00Z", 0.01, "2030-02-13T00:00:00Z", "2030-02:80 "},           // exactly 80%
			{"2030-02-28T23:59:00Z", 5, "2030-03-01T00:20:00Z", "2030-02:100 "},             // February's last cost, seen in March
			{"", 0, "2030-03-01T00:30:00Z", ""},                                             // nothing twice
			{"2030-03-02T08:00:00Z", 8, "2030-03-03T00:00:00Z", "2030-03:80 "},
		}
		for _, s := range steps {
			if s.spendAt != "" {
				spend(s.spendAt, s.usd)
			}
			if got := check(s.checkAt); got != s.want {
				t.Fatalf("spent $%v at %s, checked at %s: created %q, want %q", s.usd, s.spendAt, s.checkAt, got, s.want)
			}
		}
		rc.waitState(t, "80:3 100:2", 300*time.Millisecond)
	})
}

// TestBudgetValidation: monthly_budget_usd is a non-negative number or null; anything else is a
// 4xx JSON error that changes nothing. Setting it keeps the assistant's version (it does not
// shape replies); null and 0 clear it.
func TestBudgetValidation(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		aid := createAssistant(t, e, map[string]any{"monthly_budget_usd": 25.5})
		got := e.MustDo(200, "GET", "/api/v1/assistants/"+aid, nil)
		if got["monthly_budget_usd"] != 25.5 || got["version"] != 1.0 {
			t.Fatalf("created %v", got)
		}
		bad := []struct {
			body   string
			status int
		}{
			{`{"monthly_budget_usd": -1}`, 422},
			{`{"monthly_budget_usd": -0.000001}`, 422},
			{`{"monthly_budget_usd": 1e10}`, 422},
			{`{"monthly_budget_usd": "10"}`, 400},
			{`{"monthly_budget_usd": true}`, 400},
			{`{"monthly_budget_usd": {"usd": 10}}`, 400},
			{`{"monthly_budget_usd": [10]}`, 400},
		}
		for _, c := range bad {
			for _, call := range []struct{ method, path string }{{"PATCH", "/api/v1/assistants/" + aid}, {"POST", "/api/v1/assistants"}} {
				body := c.body
				if call.method == "POST" {
					body = `{"name": "New", ` + body[1:]
				}
				r := e.Do(call.method, call.path, body)
				var er struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				_ = json.Unmarshal(r.Body, &er)
				if r.Status != c.status || er.Error.Code == "" || !strings.Contains(er.Error.Message, "monthly_budget_usd") {
					t.Errorf("%s %s: %d %s, want %d naming the field", call.method, body, r.Status, r.Body, c.status)
				}
			}
		}
		if n := len(e.MustDo(200, "GET", "/api/v1/assistants", nil)["data"].([]any)); n != 1 {
			t.Fatalf("%d assistants after refused creations", n)
		}
		if got := e.MustDo(200, "GET", "/api/v1/assistants/"+aid, nil); got["monthly_budget_usd"] != 25.5 {
			t.Fatalf("budget changed by refused updates: %v", got["monthly_budget_usd"])
		}

		ok := []struct {
			body string
			want any
		}{
			{`{"monthly_budget_usd": 40}`, 40.0},
			{`{"name": "Renamed"}`, 40.0}, // absent: unchanged
			{`{"monthly_budget_usd": 0.000001}`, 0.000001},
			{`{"monthly_budget_usd": null}`, nil},
			{`{"monthly_budget_usd": 12}`, 12.0},
			{`{"monthly_budget_usd": 0}`, nil},
		}
		for _, c := range ok {
			got := e.MustDo(200, "PATCH", "/api/v1/assistants/"+aid, c.body)
			if got["monthly_budget_usd"] != c.want || got["version"] != 1.0 {
				t.Fatalf("PATCH %s: budget %v version %v, want %v version 1", c.body, got["monthly_budget_usd"], got["version"], c.want)
			}
			if (c.want == nil) != (got["budget"] == nil) {
				t.Fatalf("PATCH %s: budget object %v", c.body, got["budget"])
			}
		}
		if list := e.MustDo(200, "GET", "/api/v1/budgets", nil)["data"].([]any); len(list) != 0 {
			t.Fatalf("budgets after clearing: %v", list)
		}
		// A prompt change still makes a version: the budget field did not disturb versioning.
		if got := e.MustDo(200, "PATCH", "/api/v1/assistants/"+aid, map[string]any{"system_prompt": "Changed.", "monthly_budget_usd": 3}); got["version"] != 2.0 {
			t.Fatalf("version after a prompt change %v", got["version"])
		}
	})
}

// TestBudgetSweepStandsInForLostEvents: when the watcher's subscription fell behind and events were
// dropped, a sweep finds the crossing that no remaining event shows.
func TestBudgetSweepStandsInForLostEvents(t *testing.T) {
	e := testenv.New(t)
	rc := newBudgetReceiver(t)
	hook := e.MustDo(201, "POST", "/api/v1/webhooks", map[string]any{"url": rc.URL, "events": []string{"budget.threshold"}})
	rc.setSecret(hook["secret"].(string))
	aid := createAssistant(t, e, map[string]any{"monthly_budget_usd": 1})
	cid := newConversation(t, e, aid)
	conv, err := e.App.Conversations.Get(t.Context(), e.WorkspaceID, cid)
	if err != nil {
		t.Fatal(err)
	}
	// Cost recorded with no event, then more events than the subscription holds, none showing cost.
	if _, _, err := e.App.Store.Apply(t.Context(), e.WorkspaceID, cid, conversation.Change{CostMicros: 1_200_000}); err != nil {
		t.Fatal(err)
	}
	hub := events.NewHub()
	sub := hub.SubscribeAll()
	defer sub.Close()
	for range 1000 {
		hub.Publish(e.WorkspaceID, conv, nil) // conv as read before the cost: CostMicros 0
	}
	w := &budget.Watcher{Store: e.App.Store, Notify: e.App.Extra["webhooks"].(*webhooks.Service)}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go w.Watch(ctx, sub)
	rc.waitState(t, "80:1 100:1", 300*time.Millisecond)
}
