package web_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserInsights opens the Insights page in Chromium on a small data set made through the
// API: the rate cards, the chart, topics with shares, the unanswered questions linking to their
// conversations, the per-assistant and per-channel tables, and a filter.
func TestBrowserInsights(t *testing.T) {
	e := newEnv(t)
	kb := e.MustDo(201, "POST", "/api/v1/knowledge-bases", map[string]any{"name": "Help"})["id"].(string)
	e.MustDo(201, "POST", "/api/v1/knowledge-bases/"+kb+"/documents", map[string]any{"title": "Opening hours",
		"content": "We are open Monday to Friday from 9am to 6pm, and on Saturday from 10am to 2pm."})
	asst := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Support", "system_prompt": "You are Support.", "model": "builtin", "knowledge_base_ids": []string{kb}})["id"].(string)
	conv := func(typ, customer, text string) string {
		id := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": asst, "type": typ, "customer_id": customer})["id"].(string)
		e.MustDo(200, "POST", "/api/v1/conversations/"+id+"/messages", map[string]any{"text": text})
		return id
	}
	for _, c := range []string{"ann", "ben", "cat"} {
		e.MustDo(200, "POST", "/api/v1/conversations/"+conv("api", c, "What are your opening hours on Saturday?")+"/end", nil)
	}
	gift := conv("test", "dan", "Do you sell gift vouchers?")
	e.MustDo(200, "POST", "/api/v1/conversations/"+gift+"/end", nil)
	human := conv("test", "eve", "I need a human please")
	e.MustDo(200, "POST", "/api/v1/conversations/"+human+"/messages", map[string]any{"text": "Hello Eve, how can I help?", "role": "agent"})

	ctx := newChrome(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	do(t, ctx, "login",
		chromedp.Navigate(e.URL+"/login"),
		chromedp.WaitVisible(css(`#email`)),
		chromedp.SendKeys(css(`#email`), testEmail),
		chromedp.SendKeys(css(`#password`), testPassword),
		chromedp.Click(css(`button[type=submit]`)),
		chromedp.WaitVisible(css(`#conversation-list`)),
	)
	do(t, ctx, "insights",
		chromedp.Click(css(`nav a[href="/insights"]`)),
		chromedp.WaitVisible(css(`#insight-cards`)),
		chromedp.WaitVisible(css(`#chart-rates`)),
		screenshot(t, "11-insights"),
	)
	// 5 conversations, 4 ended, 1 handed off (answered by an agent): resolution 4/4, handoff 1/5.
	cards := eval[map[string]string](t, ctx, "cards", `({res: document.querySelector('#i-resolution').textContent.trim(),
		hand: document.querySelector('#i-handoff').textContent.trim(), un: document.querySelector('#i-unanswered-handoffs').textContent.trim(),
		nav: document.querySelector('nav a[aria-current=page]').textContent.trim()})`)
	if cards["res"] != "100.0%" || cards["hand"] != "20.0%" || cards["un"] != "0" || cards["nav"] != "Insights" {
		t.Fatalf("cards %v", cards)
	}
	topics := eval[[]string](t, ctx, "topics", `[...document.querySelectorAll('#topics-table tbody tr')].map(r => [...r.cells].slice(0, 4).map(c => c.textContent.trim().replace(/\s+/g, ' ')).join(' | '))`)
	// Three questions match the opening hours document; the other two group by their most common
	// keyword (a pair of keywords needs two questions).
	want := []string{"Opening hours document | hours, opening, saturday | 3 | 60.0%", "gift | gift, sell, vouchers | 1 | 20.0%", "human | human | 1 | 20.0%"}
	if strings.Join(topics, "\n") != strings.Join(want, "\n") {
		t.Fatalf("topics:\n%s\nwant\n%s", strings.Join(topics, "\n"), strings.Join(want, "\n"))
	}
	widths := eval[[]string](t, ctx, "share bars", `[...document.querySelectorAll('#topics-table svg.share-bar rect.bar')].map(r => r.getAttribute('width'))`)
	if strings.Join(widths, ",") != "60.0,20.0,20.0" {
		t.Fatalf("share bars %v", widths)
	}
	lines := eval[int](t, ctx, "chart", `document.querySelectorAll('#chart-rates polyline').length`)
	rows := eval[map[string]int](t, ctx, "tables", `({a: document.querySelectorAll('#insights-assistants tbody tr').length, c: document.querySelectorAll('#insights-channels tbody tr').length})`)
	if lines != 2 || rows["a"] != 1 || rows["c"] != 2 {
		t.Fatalf("chart lines %d, tables %v", lines, rows)
	}
	unanswered := eval[[]string](t, ctx, "unanswered", `[...document.querySelectorAll('#unanswered-table tbody tr')].map(r => r.cells[0].textContent.trim() + ' | ' + r.cells[3].textContent.trim())`)
	if strings.Join(unanswered, "\n") != "I need a human please | handoff ×1\nDo you sell gift vouchers? | no results ×1" {
		t.Fatalf("unanswered: %q", unanswered)
	}
	// Each unanswered question links to its conversation.
	do(t, ctx, "open conversation", chromedp.Click(css(`#unanswered-table tbody tr:nth-child(2) a`)))
	waitJS(t, ctx, "conversation page", `location.pathname === '/conversations/`+gift+`' && !!document.querySelector('#messages')`)

	// A filter: only the test channel (dan and eve): 2 conversations, one handed off.
	do(t, ctx, "filter",
		chromedp.Navigate(e.URL+"/insights"),
		chromedp.WaitVisible(css(`#i-type`)),
		chromedp.SetValue(css(`#i-type`), "test"),
		chromedp.SetValue(css(`#i-window`), "1d"),
		chromedp.Click(css(`form.filters button[type=submit]`)),
	)
	waitJS(t, ctx, "filtered page", `location.search.includes('type=test') && location.search.includes('resolution_window=1d') && !!document.querySelector('#insight-cards')`)
	do(t, ctx, "filtered screenshot", screenshot(t, "12-insights-filtered"))
	if got := get(t, ctx, "filtered handoff rate", chromedp.Text(css(`#i-handoff`))); got != "50.0%" {
		t.Fatalf("filtered handoff rate %q, want 50.0%%", got)
	}
	if sel := eval[string](t, ctx, "window kept", `document.querySelector('#i-window').value`); sel != "1d" {
		t.Fatalf("window select %q after applying", sel)
	}
}
