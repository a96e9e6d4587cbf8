package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/testenv"
)

// spend records a priced answer of the assistant now, as a turn would.
func spend(t testing.TB, e *testenv.Env, assistantID string, micros int64) {
	t.Helper()
	c := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": assistantID, "type": "api"})
	m := &conversation.Message{ID: ids.New(), Role: conversation.RoleAssistant, Direction: conversation.Outbound, Type: "text", Text: "A priced answer.",
		TokensIn: 1000, CostMicros: micros, CreatedAt: time.Now().UTC()}
	if _, _, err := e.App.Store.Apply(t.Context(), e.WorkspaceID, c["id"].(string), conversation.Change{Messages: []*conversation.Message{m}}); err != nil {
		t.Fatal(err)
	}
}

// TestAssistantBudgetFormAndBanners: the assistant editor sets, shows and clears the monthly budget
// (a bad value is a message on the form); at 80% the assistant pages and the metrics warn in amber,
// at 100% in red, naming the assistant with spent and budget.
func TestAssistantBudgetFormAndBanners(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e)
	b.mustLogin()
	form := url.Values{"name": {"Budget <Bot>"}, "system_prompt": {"Help."}, "model": {"builtin"}, "tools": {"[]"}, "extract": {"[]"}, "monthly_budget_usd": {"10"}}
	p := b.post("/assistants", form)
	if p.Status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", p.Status, p.Body)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(p.Header.Get("Location"), "/assistants/"), "?done=saved")
	if got := e.MustDo(200, "GET", "/api/v1/assistants/"+id, nil); got["monthly_budget_usd"] != 10.0 {
		t.Fatalf("stored budget %v", got["monthly_budget_usd"])
	}
	if p := b.get("/assistants/" + id); !strings.Contains(p.Body, `name="monthly_budget_usd" type="number" min="0" step="any" value="10"`) {
		t.Fatal("the editor does not show the budget")
	}
	for _, bad := range []struct{ value, msg string }{
		{"ten", "The monthly budget must be a number of US dollars"},
		{"-5", "The monthly budget usd must be a number of US dollars from 0"},
	} {
		form.Set("monthly_budget_usd", bad.value)
		if p := b.post("/assistants/"+id, form); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, bad.msg) {
			t.Fatalf("budget %q: %d, page lacks %q", bad.value, p.Status, bad.msg)
		}
	}
	if got := e.MustDo(200, "GET", "/api/v1/assistants/"+id, nil); got["monthly_budget_usd"] != 10.0 {
		t.Fatalf("budget after refused edits %v", got["monthly_budget_usd"])
	}
	other := e.CreateAssistant("Unbudgeted", "Help.")
	spend(t, e, other, 50_000_000) // no budget: never a warning

	banner := func(path string) string {
		t.Helper()
		p := b.do("GET", path, nil, http.Header{"Accept": {"text/html"}}) // /metrics without it is Prometheus's
		if p.Status != 200 {
			t.Fatalf("%s: %d", path, p.Status)
		}
		i := strings.Index(p.Body, `<p class="budget `)
		if i < 0 {
			return ""
		}
		return p.Body[i : i+strings.Index(p.Body[i:], "</p>")]
	}
	spend(t, e, id, 7_900_000) // 79%
	for _, path := range []string{"/assistants", "/assistants/" + id, "/metrics"} {
		if got := banner(path); got != "" {
			t.Fatalf("%s warns at 79%%: %s", path, got)
		}
	}
	spend(t, e, id, 600_000) // 85%
	for _, path := range []string{"/assistants", "/assistants/" + id, "/metrics"} {
		got := banner(path)
		if !strings.Contains(got, `budget-warning" role="status"`) || !strings.Contains(got, "Budget &lt;Bot&gt;</a> has spent $8.50 of its $10.00 monthly budget (85%)") {
			t.Fatalf("%s at 85%%: %q", path, got)
		}
	}
	if got := banner("/assistants/" + other); got != "" {
		t.Fatalf("the unbudgeted assistant's page warns: %s", got)
	}
	spend(t, e, id, 3_500_000) // 120%
	for _, path := range []string{"/assistants", "/assistants/" + id, "/metrics"} {
		if got := banner(path); !strings.Contains(got, `budget-exceeded" role="alert"`) || !strings.Contains(got, "has spent $12.00 of its $10.00 monthly budget (120%)") {
			t.Fatalf("%s at 120%%: %q", path, got)
		}
	}
	// An empty field clears the budget, and with it the warning.
	form.Set("monthly_budget_usd", "")
	if p := b.post("/assistants/"+id, form); p.Status != http.StatusSeeOther {
		t.Fatalf("clear: %d %s", p.Status, p.Body)
	}
	if got := e.MustDo(200, "GET", "/api/v1/assistants/"+id, nil); got["monthly_budget_usd"] != nil || banner("/assistants") != "" {
		t.Fatalf("after clearing: budget %v, banner %q", got["monthly_budget_usd"], banner("/assistants"))
	}
}

// TestBrowserBudgetBanners: in Chromium, the assistants list and the metrics page show an amber
// banner for an assistant at 85% of its budget and a red one for another at 120%; each assistant's
// page shows only its own.
func TestBrowserBudgetBanners(t *testing.T) {
	e := newEnv(t)
	amber := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Careful Cora", "system_prompt": "Help.", "monthly_budget_usd": 20})["id"].(string)
	red := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Spendy Sam", "system_prompt": "Help.", "monthly_budget_usd": 5})["id"].(string)
	spend(t, e, amber, 17_000_000) // $17 of $20
	spend(t, e, red, 6_000_000)    // $6 of $5
	ctx := newChrome(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	do(t, ctx, "login",
		chromedp.Navigate(e.URL+"/login"),
		chromedp.SendKeys(css(`#email`), testEmail),
		chromedp.SendKeys(css(`#password`), testPassword),
		chromedp.Click(css(`button[type=submit]`)),
		chromedp.WaitVisible(css(`#conversation-list`)),
	)
	type shown struct {
		Text   string
		Colour string
	}
	banners := func(step string) map[string]shown {
		return eval[map[string]shown](t, ctx, step, `(() => { const out = {}; for (const p of document.querySelectorAll('p.budget'))
			out[p.dataset.assistant] = {Text: p.textContent.replace(/\s+/g, ' ').trim(), Colour: getComputedStyle(p).backgroundColor}; return out; })()`)
	}
	const amberBG, redBG = "rgb(255, 251, 235)", "rgb(254, 242, 242)"
	wantAmber := "Budget warning: Careful Cora has spent $17.00 of its $20.00 monthly budget (85%) in " + time.Now().UTC().Format("2006-01") + "."
	wantRed := "Budget exceeded: Spendy Sam has spent $6.00 of its $5.00 monthly budget (120%) in " + time.Now().UTC().Format("2006-01") + "."

	for _, pg := range []struct{ path, shot string }{{"/assistants", "11-budget-assistants"}, {"/metrics", "12-budget-metrics"}} {
		do(t, ctx, pg.shot, chromedp.Navigate(e.URL+pg.path), chromedp.WaitVisible(css(`p.budget-exceeded`)), screenshot(t, pg.shot))
		got := banners(pg.shot)
		if len(got) != 2 || got[amber] != (shown{wantAmber, amberBG}) || got[red] != (shown{wantRed, redBG}) {
			t.Fatalf("%s banners %+v", pg.path, got)
		}
	}
	do(t, ctx, "assistant page", chromedp.Navigate(e.URL+"/assistants/"+amber), chromedp.WaitVisible(css(`p.budget-warning`)), screenshot(t, "13-budget-assistant"))
	if got := banners("assistant page"); len(got) != 1 || got[amber] != (shown{wantAmber, amberBG}) {
		t.Fatalf("assistant page banners %+v", got)
	}
	if v := eval[string](t, ctx, "budget field", `document.querySelector('#a-budget').value`); v != "20" {
		t.Fatalf("budget field %q", v)
	}
}
