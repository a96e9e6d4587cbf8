package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/testenv"
)

// newChrome starts a headless Chromium for one test, with a time budget for the whole test.
func newChrome(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(testenv.Browser(t, 1366, 900), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func artifactDir(t *testing.T) string { return testenv.Artifacts(t, "dashboard") }

// screenshot saves the whole page as test-artifacts/dashboard/<name>.png.
func screenshot(t *testing.T, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		buf, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(artifactDir(t), name+".png"), buf, 0o644)
	})
}

// do runs steps, saving a screenshot of the page when one fails.
func do(t *testing.T, ctx context.Context, step string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		_ = chromedp.Do(ctx, screenshot(t, "failed-"+strings.ReplaceAll(step, " ", "-")))
		t.Fatalf("%s: %v", step, err)
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, ctx context.Context, step string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		_ = chromedp.Do(ctx, screenshot(t, "failed-"+strings.ReplaceAll(step, " ", "-")))
		t.Fatalf("%s: %v", step, err)
	}
	return v
}

func eval[T any](t *testing.T, ctx context.Context, step, js string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	return get(t, ctx, step, chromedp.Evaluate[T](js, opts...))
}

// waitJS evaluates expr until it is true, across navigations (which destroy the page's context
// under a running poll).
func waitJS(t *testing.T, ctx context.Context, step, expr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr)); err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = chromedp.Do(ctx, screenshot(t, "failed-"+strings.ReplaceAll(step, " ", "-")))
	t.Fatalf("%s: %s never became true", step, expr)
}

func poll(expr string, timeout time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout))
}

// TestBrowserDashboard walks the dashboard in a real Chromium on seeded data of every type:
// log in, the list's badges and count, a filter (URL, back button), the export of the filtered
// set, a detail page with tool calls, variables and cost, a live message, the metrics charts and
// a test chat.
func TestBrowserDashboard(t *testing.T) {
	// The server starts first so that its cleanup runs last, after the browser closed its
	// event streams (httptest.Server.Close waits for open requests).
	e := newEnv(t)
	s := seed(t, e)
	ctx := newChrome(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	// Log in.
	do(t, ctx, "login",
		chromedp.Navigate(e.URL+"/"),
		chromedp.WaitVisible(css(`#email`)),
		chromedp.SendKeys(css(`#email`), testEmail),
		chromedp.SendKeys(css(`#password`), testPassword),
		chromedp.Click(css(`button[type=submit]`)),
		chromedp.WaitVisible(css(`#conversation-list`)),
		screenshot(t, "01-conversations"),
	)
	if nav := get(t, ctx, "nav count", chromedp.Text(css(`#nav-count`))); nav != "7" {
		t.Fatalf("navigation count %q, want 7", nav)
	}

	// Every type has its badge, in its colour.
	badges := eval[map[string]string](t, ctx, "badges", `(() => { const out = {}; for (const b of document.querySelectorAll('#conversation-list .badge'))
		out[b.textContent] = getComputedStyle(b).backgroundColor; return out; })()`)
	want := map[string]string{"WhatsApp": "rgb(22, 163, 74)", "Web Widget": "rgb(124, 58, 237)", "Test": "rgb(234, 88, 12)", "API": "rgb(107, 114, 128)"}
	for label, colour := range want {
		if badges[label] != colour {
			t.Errorf("badge %q colour %q, want %q", label, badges[label], colour)
		}
	}

	// Filter by type: the URL changes, the rows and the count follow; back returns to all.
	if _, err := chromedp.RunResponse(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			// Choosing a type applies the filter at once (the page's JS submits the form).
			_, err := chromedp.Evaluate[bool](`(() => { const s = document.querySelector('#f-type'); s.value = 'test';
				s.dispatchEvent(new Event('change')); return true; })()`)(ctx, tg)
			return err
		}),
	); err != nil {
		t.Fatalf("filter: %v", err)
	}
	do(t, ctx, "filtered", chromedp.WaitVisible(css(`#conversation-list`)), screenshot(t, "02-filtered"))
	url := get(t, ctx, "location", chromedp.Location())
	rows := eval[int](t, ctx, "rows", `document.querySelectorAll('#conversation-list tr[data-id]').length`)
	count := get(t, ctx, "count", chromedp.Text(css(`#result-count`)))
	if !strings.HasSuffix(url, "/conversations?type=test") || rows != 3 || count != "3 conversations match the filters" {
		t.Fatalf("filtered: url %s, %d rows, count %q", url, rows, count)
	}

	// The export button exports exactly the filtered set.
	type exportSummary struct {
		Types []string
		IDs   []string
	}
	exported := eval[exportSummary](t, ctx, "export", `fetch(document.querySelector('#export-jsonl').href).then(r => r.text()).then(txt => {
		const rows = txt.trim().split('\n').map(l => JSON.parse(l));
		return {Types: [...new Set(rows.map(r => r.conversation_type))], IDs: [...new Set(rows.map(r => r.conversation_id))].sort()};
	})`, chromedp.EvalAwaitPromise)
	listed := eval[[]string](t, ctx, "listed ids", `[...document.querySelectorAll('#conversation-list tr[data-id]')].map(r => r.dataset.id).sort()`)
	if fmt.Sprint(exported.Types) != "[test]" || fmt.Sprint(exported.IDs) != fmt.Sprint(listed) {
		t.Fatalf("export %v %v, list %v", exported.Types, exported.IDs, listed)
	}

	eval[bool](t, ctx, "back", `history.back(); true`)
	waitJS(t, ctx, "back to all", `!location.search.includes('type=') && document.querySelectorAll('#conversation-list tr[data-id]').length === 7`)

	// A conversation with a tool call, variables and cost.
	do(t, ctx, "detail",
		chromedp.Navigate(e.URL+"/conversations/"+s.Rich),
		chromedp.WaitVisible(css(`details[data-tool=lookup_order] summary`)),
		chromedp.Click(css(`details[data-tool=lookup_order] summary`)),
		chromedp.WaitVisible(css(`details[data-tool=lookup_order] pre`)),
		screenshot(t, "03-detail"),
	)
	args := get(t, ctx, "tool args", chromedp.Text(css(`details[data-tool=lookup_order] pre`)))
	vars := get(t, ctx, "variables", chromedp.Text(css(`#variables`)))
	cost := get(t, ctx, "cost", chromedp.Text(css(`#u-cost`)))
	if !strings.Contains(args, `"order": "ACME-1234"`) || !strings.Contains(vars, "plan") || !strings.Contains(vars, "flow") ||
		!strings.Contains(vars, "buyera@example.com") || cost != "$0.00175" {
		t.Fatalf("detail: args %q, variables %q, cost %q", args, vars, cost)
	}

	// A message posted through the API while the page is open appears without a reload.
	do(t, ctx, "open live page",
		chromedp.Navigate(e.URL+"/conversations/"+s.Test[0]),
		poll(`!!document.querySelector('#live-status[data-live]')`, 20*time.Second),
	)
	eval[bool](t, ctx, "marker", `window.__marker = 'same page'; true`)
	e.MustDo(200, "POST", "/api/v1/conversations/"+s.Test[0]+"/messages", map[string]any{"text": "live message from the API"})
	do(t, ctx, "live message",
		poll(`document.querySelector('#messages').textContent.includes('live message from the API')`, 20*time.Second),
		screenshot(t, "04-live"),
	)
	// Handed off elsewhere (the API): the page's status and actions follow, still without a reload.
	e.MustDo(200, "POST", "/api/v1/conversations/"+s.Test[0]+"/handoff", map[string]any{"reason": "VIP"})
	do(t, ctx, "status follows",
		poll(`document.querySelector('#conv-status').textContent.trim() === 'handoff' &&
			!document.querySelector('form[action$="/resume"]').hidden && document.querySelector('form[action$="/handoff"]').hidden`, 20*time.Second),
	)
	if marker := eval[string](t, ctx, "marker", `window.__marker`); marker != "same page" {
		t.Fatal("the page reloaded to show the message")
	}

	// A WhatsApp delivery report moves the message's ticks on the open page.
	do(t, ctx, "whatsapp page",
		chromedp.Navigate(e.URL+"/conversations/"+s.WhatsApp),
		poll(`!!document.querySelector('#live-status[data-live]') && !!document.querySelector('.tick-delivered')`, 20*time.Second),
	)
	if _, err := e.App.Conversations.UpdateStatus(context.Background(), e.WorkspaceID, conversation.StatusUpdate{ExternalID: "wamid.SEEDED1", Status: "read"}); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "read ticks",
		poll(`!!document.querySelector('.tick-read') && !document.querySelector('.tick-delivered')`, 20*time.Second),
		screenshot(t, "04b-whatsapp-read"),
	)
	if w := get(t, ctx, "window", chromedp.Text(css(`#conv-window`))); w != "window closed" {
		t.Fatalf("window %q", w)
	}

	// The metrics page draws its SVG charts.
	do(t, ctx, "metrics",
		chromedp.Navigate(e.URL+"/metrics"),
		chromedp.WaitVisible(css(`#chart-per-day`)),
		screenshot(t, "05-metrics"),
	)
	charts := eval[map[string]int](t, ctx, "charts", `({bars: document.querySelectorAll('#chart-per-day rect.bar').length,
		cells: document.querySelectorAll('#chart-heatmap rect.cell').length,
		cost: document.querySelectorAll('#chart-cost polyline').length,
		filled: [...document.querySelectorAll('#chart-per-day rect.bar')].filter(r => r.getBBox().height > 0).length})`)
	if charts["bars"] != 30 || charts["cells"] != 168 || charts["cost"] != 1 || charts["filled"] < 1 {
		t.Fatalf("charts %v", charts)
	}

	// Test chat: pick the assistant, chat, the answer streams in.
	do(t, ctx, "test chat",
		chromedp.Navigate(e.URL+"/test-chat"),
		chromedp.SetValue(css(`#tc-assistant`), s.AssistantID),
		chromedp.Click(css(`#start-chat button[type=submit]`)),
		chromedp.WaitVisible(css(`#chat-form`)),
		chromedp.SendKeys(css(`#chat-text`), "hello bot, my email is chat@example.com"),
		chromedp.Click(css(`#chat-form button[type=submit]`)),
		poll(`document.querySelector('#chat-form').dataset.done === '1'`, 30*time.Second),
		screenshot(t, "06-test-chat"),
	)
	if n := eval[int](t, ctx, "assistant messages", `document.querySelectorAll('#messages li.role-assistant').length`); n < 1 {
		t.Fatal("no assistant message in the test chat")
	}
	list := e.MustDo(200, "GET", "/api/v1/conversations?type=test", nil)
	if n := len(list["data"].([]any)); n != 4 {
		t.Fatalf("%d test conversations after the chat, want 4", n)
	}
}

// TestBrowserAPIPages drives the pages whose JS calls the JSON API with the session (and its
// CSRF header): a knowledge base with a document and a search, a price, a WhatsApp template and
// a widget (or, in a build without widgets, the "not available" message).
func TestBrowserAPIPages(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	ctx := newChrome(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	do(t, ctx, "login",
		chromedp.Navigate(e.URL+"/login"),
		chromedp.SendKeys(css(`#email`), testEmail),
		chromedp.SendKeys(css(`#password`), testPassword),
		chromedp.Click(css(`button[type=submit]`)),
		chromedp.WaitVisible(css(`#conversation-list`)),
	)

	do(t, ctx, "knowledge",
		chromedp.Navigate(e.URL+"/knowledge"),
		poll(`!document.querySelector('#kb-list .hint') || document.querySelector('#kb-list').textContent.includes('No knowledge')`, 10*time.Second),
		chromedp.SendKeys(css(`#kb-name`), "Returns policy"),
		chromedp.Click(css(`#kb-create button[type=submit]`)),
		chromedp.WaitVisible(css(`#kb-detail`)),
		chromedp.SendKeys(css(`#doc-title`), "Returns"),
		chromedp.SendKeys(css(`#doc-content`), "Customers may return unworn shoes within 30 days for a full refund."),
		chromedp.Click(css(`#doc-upload button[type=submit]`)),
		poll(`document.querySelector('#doc-list').textContent.includes('Returns')`, 10*time.Second),
		chromedp.SendKeys(css(`#kb-q`), "return shoes refund"),
		chromedp.Click(css(`#kb-search button[type=submit]`)),
		poll(`document.querySelector('#search-results').textContent.includes('30 days')`, 10*time.Second),
		screenshot(t, "07-knowledge"),
	)

	// The assistant editor offers the knowledge bases as labelled checkboxes.
	kbs := e.MustDo(200, "GET", "/api/v1/knowledge-bases", nil)["data"].([]any)
	kbID := kbs[0].(map[string]any)["id"].(string)
	do(t, ctx, "assistant knowledge",
		chromedp.Navigate(e.URL+"/assistants/"+s.AssistantID),
		chromedp.WaitVisible(css(`label[for="kb-`+kbID+`"]`)),
		chromedp.Click(css(`#kb-`+kbID)),
		chromedp.Click(css(`#assistant-form button[type=submit]`)),
		chromedp.WaitVisible(css(`.flash`)),
	)
	if got := e.MustDo(200, "GET", "/api/v1/assistants/"+s.AssistantID, nil)["knowledge_base_ids"]; fmt.Sprint(got) != "["+kbID+"]" {
		t.Fatalf("knowledge_base_ids %v", got)
	}

	do(t, ctx, "price",
		chromedp.Navigate(e.URL+"/settings"),
		poll(`document.querySelectorAll('#price-list tr').length > 0 && !document.querySelector('#price-list .hint')`, 10*time.Second),
		chromedp.SendKeys(css(`#p-model`), "acme-large"),
		chromedp.SendKeys(css(`#p-in`), "3"),
		chromedp.SendKeys(css(`#p-out`), "15"),
		chromedp.Click(css(`#price-form button[type=submit]`)),
		poll(`document.querySelector('#price-list').textContent.includes('acme-large')`, 10*time.Second),
		screenshot(t, "08-settings"),
	)
	do(t, ctx, "webhook",
		chromedp.SendKeys(css(`#wh-url`), "https://hooks.example.com/parley"),
		chromedp.Click(css(`#webhook-form button[type=submit]`)),
		poll(`!document.querySelector('#webhook-secret').hidden || !document.querySelector('#api-error').hidden`, 10*time.Second),
	)
	if msg := eval[string](t, ctx, "webhook result", `document.querySelector('#api-error').hidden ? '' : document.querySelector('#api-error').textContent`); msg != "" {
		t.Fatalf("webhook refused: %s", msg)
	}
	do(t, ctx, "webhook listed", poll(`document.querySelector('#webhook-list').textContent.includes('https://hooks.example.com/parley') && document.querySelector('#wh-secret').value.length > 10`, 10*time.Second))
	prices := e.MustDo(200, "GET", "/api/v1/prices", nil)
	found := false
	for _, p := range prices["data"].([]any) {
		if m := p.(map[string]any); m["model"] == "acme-large" && m["output_per_million_usd"] == 15.0 {
			found = true
		}
	}
	if !found {
		t.Fatal("the price saved in the browser is not in the API")
	}

	do(t, ctx, "whatsapp template",
		chromedp.Navigate(e.URL+"/whatsapp"),
		poll(`!document.querySelector('#template-list .hint')`, 10*time.Second),
		chromedp.SendKeys(css(`#t-name`), "order_update"),
		chromedp.Click(css(`#template-create button[type=submit]`)),
		poll(`document.querySelector('#template-list').textContent.includes('order_update') || !document.querySelector('#api-error').hidden`, 10*time.Second),
		screenshot(t, "09-whatsapp"),
	)
	if msg := eval[string](t, ctx, "template error", `document.querySelector('#api-error').hidden ? '' : document.querySelector('#api-error').textContent`); msg != "" {
		t.Fatalf("template refused: %s", msg)
	}
	// The API's own error message is shown when it refuses (the same template again).
	do(t, ctx, "duplicate template",
		chromedp.Click(css(`#template-create button[type=submit]`)),
		poll(`!document.querySelector('#api-error').hidden`, 10*time.Second),
	)
	if msg := get(t, ctx, "error text", chromedp.Text(css(`#api-error`))); !strings.Contains(msg, "already exists") || !strings.Contains(msg, "template_exists") {
		t.Fatalf("duplicate template error %q", msg)
	}

	do(t, ctx, "widget",
		chromedp.Navigate(e.URL+"/widgets"),
		poll(`!document.querySelector('#widget-list .hint') || document.querySelector('#widget-list').textContent.includes('No widgets') || !document.querySelector('#api-error').hidden`, 10*time.Second),
		chromedp.SetValue(css(`#w-assistant`), s.AssistantID),
		chromedp.Click(css(`#widget-create button[type=submit]`)),
		poll(`!document.querySelector('#widget-detail').hidden || !document.querySelector('#api-error').hidden`, 10*time.Second),
		screenshot(t, "10-widgets"),
	)
	status := e.Do("GET", "/api/v1/widgets", nil).Status
	msg := eval[string](t, ctx, "widget result", `document.querySelector('#api-error').hidden ? document.querySelector('#embed-snippet').value : 'ERR ' + document.querySelector('#api-error').textContent`)
	switch {
	case status == http.StatusNotFound && msg != "ERR This feature is not available in this build.":
		t.Fatalf("widgets missing from this build, page says %q", msg)
	case status == http.StatusOK && !strings.Contains(msg, "widget.js"):
		t.Fatalf("widget created, embed snippet %q", msg)
	case status == http.StatusOK:
		href := eval[string](t, ctx, "preview link", `document.querySelector('#widget-preview').getAttribute('href')`)
		if p := e.DoWith("", "GET", href, nil, nil); !strings.HasPrefix(href, "/widget/demo/") || p.Status != http.StatusOK {
			t.Fatalf("preview link %q: %d", href, p.Status)
		}
	}
}
