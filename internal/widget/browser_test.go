package widget_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/llm/llmtest"
	"github.com/parley-hq/parley/internal/testenv"
)

// newBrowser starts a headless Chromium for one test.
func newBrowser(t *testing.T) context.Context { return testenv.Browser(t, 1280, 860) }

func artifacts(t *testing.T) string { return testenv.Artifacts(t, "widget") }

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(artifacts(t), name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Errorf("save screenshot: %v", err)
	}
	t.Logf("screenshot: %s", path)
}

// browser wraps the tab with steps that fail the test (with a screenshot) when they fail.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func (b *browser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		shot(b.t, b.ctx, "failed-"+strings.ReplaceAll(step, " ", "-"))
		b.t.Fatalf("%s: %v", step, err)
	}
}

// wait polls a JavaScript condition until it is truthy.
func (b *browser) wait(step, cond string) {
	b.t.Helper()
	b.do(step, func() chromedp.Action[chromedp.Void] {
		a := chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(15*time.Second))
		return a
	}())
}

func evalJS[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		shot(b.t, b.ctx, "failed-eval")
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// In the page: the widget's host element and its shadow root.
const (
	hostEl = `document.querySelector('[data-parley-widget]')`
	sr     = hostEl + `.shadowRoot`
)

func inWidget(sel string) chromedp.JSPath {
	return chromedp.JSPath(sr + `.querySelector(` + fmt.Sprintf("%q", sel) + `)`)
}

// hostPage serves pages of another origin embedding the widget, the way a customer's site does,
// with CSS that would break the widget if it leaked in.
func hostPage(t *testing.T, parleyURL string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" && r.URL.Path != "/shop" {
			http.NotFound(w, r)
			return
		}
		key := html.EscapeString(r.URL.Query().Get("key"))
		nospeech := ""
		if r.URL.Query().Get("nospeech") != "" {
			nospeech = `<script>window.SpeechRecognition = undefined; window.webkitSpeechRecognition = undefined;</script>`
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A shop</title>
<style>* { color: red !important; font-size: 40px !important; font-family: serif !important; }
button, textarea, form { display: none !important; } div { background: lime !important; }</style></head>
<body><h1>Welcome to the shop</h1><p>Buy things.</p>%s
<script src="%s/widget.js" data-key="%s" async></script></body></html>`, nospeech, parleyURL, key)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestBrowserWidget embeds the widget on a page of another origin, in a real Chromium: pre-chat
// form (checked in the browser, then stored as variables), a streamed reply, hostile text kept as
// text, a dropped stream and a real network loss, a reload that keeps the history, keyboard and ARIA; and the refusal on a
// page whose origin is not allowed.
func TestBrowserWidget(t *testing.T) {
	e := testenv.New(t)
	site := hostPage(t, e.URL)
	ctx := newBrowser(t) // closed first: its open event streams must not hold the servers
	// The same page server under "localhost" is another origin, which the widget does not allow.
	refusedOrigin := strings.Replace(site.URL, "127.0.0.1", "localhost", 1)

	asst := e.CreateAssistant("Shop helper", "You are the helpful assistant of a shop that sells tea and teapots.")
	w := createWidget(t, e, map[string]any{"assistant_id": asst, "title": "Ask the shop", "greeting": "Hello! How can we help?",
		"allowed_origins": []string{site.URL},
		"prechat_fields": []map[string]any{
			{"name": "name", "label": "Your name", "type": "text", "required": true},
			{"name": "email", "label": "Email", "type": "email", "required": true},
			{"name": "topic", "label": "Topic", "type": "select", "options": []string{"Orders", "Products"}},
		}})
	key := w["public_key"].(string)
	b := &browser{t: t, ctx: ctx}
	pageURL := site.URL + "/shop?key=" + key

	// Loads on the allowed origin, drawn in its shadow root whatever the page's CSS says.
	b.do("open host page", chromedp.Navigate(pageURL))
	b.wait("widget idle", hostEl+`?.getAttribute('data-state') === 'idle'`)
	style := evalJS[map[string]string](b, `(() => { const l = `+sr+`.querySelector('.launcher'); const cs = getComputedStyle(l);
		return {w: String(l.getBoundingClientRect().width), font: cs.fontSize, display: cs.display, label: l.getAttribute('aria-label'), expanded: l.getAttribute('aria-expanded')}; })()`)
	if style["w"] == "0" || style["font"] != "14px" || style["display"] == "none" || style["label"] != "Open chat: Ask the shop" || style["expanded"] != "false" {
		t.Fatalf("launcher under hostile CSS: %v", style)
	}

	// Keyboard: open with the launcher, focus lands on the first field.
	b.do("open panel", chromedp.Click(inWidget(".launcher")))
	b.wait("focus on first field", sr+`.activeElement && `+sr+`.activeElement.id === 'pw-f0'`)
	if got := evalJS[string](b, sr+`.querySelector('.launcher').getAttribute('aria-expanded')`); got != "true" {
		t.Fatalf("aria-expanded %q after opening", got)
	}
	labels := evalJS[[]string](b, `[...`+sr+`.querySelectorAll('.pre input, .pre select, #pw-text')].map(i => (i.labels && i.labels[0] ? i.labels[0].textContent : ''))`)
	for i, l := range labels {
		if strings.TrimSpace(l) == "" {
			t.Fatalf("form control %d has no label: %v", i, labels)
		}
	}

	// The form is checked in the browser: nothing is sent while it is wrong.
	b.do("submit empty form", chromedp.Click(inWidget(".pre button[type=submit]")))
	b.wait("required error shown", sr+`.querySelector('#pw-f0').getAttribute('aria-invalid') === 'true' && !`+sr+`.querySelector('#pw-f0e').hidden`)
	b.do("fill with a bad email",
		chromedp.SendKeys(inWidget("#pw-f0"), "Grace Hopper"),
		chromedp.SendKeys(inWidget("#pw-f1"), "grace@"),
		chromedp.Click(inWidget(".pre button[type=submit]")))
	b.wait("email error shown", sr+`.querySelector('#pw-f1').getAttribute('aria-invalid') === 'true' && `+sr+`.querySelector('#pw-f1e').textContent.includes('email')`)
	if n := len(e.MustDo(200, "GET", "/api/v1/conversations?type=widget", nil)["data"].([]any)); n != 0 {
		t.Fatalf("an invalid form started %d conversations", n)
	}
	b.do("fix and start",
		chromedp.SendKeys(inWidget("#pw-f1"), "example.com"),
		chromedp.SetValue(inWidget("#pw-f2"), "Products"),
		chromedp.Click(inWidget(".pre button[type=submit]")))
	b.wait("chat ready", hostEl+`.getAttribute('data-state') === 'ready' && `+sr+`.activeElement && `+sr+`.activeElement.id === 'pw-text'`)

	// The answers are the conversation's variables (source prechat), with the page it came from.
	list := e.MustDo(200, "GET", "/api/v1/conversations?type=widget", nil)["data"].([]any)
	if len(list) != 1 {
		t.Fatalf("%d widget conversations, want 1", len(list))
	}
	convID := list[0].(map[string]any)["id"].(string)
	c := e.MustDo(200, "GET", "/api/v1/conversations/"+convID, nil)
	vars := map[string]string{}
	for _, v := range c["variables"].([]any) {
		vm := v.(map[string]any)
		if vm["source"] != "prechat" {
			t.Fatalf("variable %v: source %v, want prechat", vm["name"], vm["source"])
		}
		vars[vm["name"].(string)] = vm["value"].(string)
	}
	if vars["name"] != "Grace Hopper" || vars["email"] != "grace@example.com" || vars["topic"] != "Products" {
		t.Fatalf("variables %v", vars)
	}
	meta := c["metadata"].(map[string]any)
	if meta["page_url"] != pageURL || !strings.Contains(meta["user_agent"].(string), "Chrome") {
		t.Fatalf("metadata %v", meta)
	}

	// A message (sent with Enter) gets a reply streamed as it is generated.
	b.do("send a message", chromedp.SendKeys(inWidget("#pw-text"), "Which teapots do you sell?"+kb.Enter))
	b.wait("streamed reply", sr+`.querySelector('.m[data-role=assistant]')?.getAttribute('data-streamed') === 'true'`)
	shown := evalJS[string](b, sr+`.querySelector('.m[data-role=assistant]').lastChild.textContent`)
	d := e.MustDo(200, "GET", "/api/v1/conversations/"+convID, nil)
	var stored string
	for _, m := range d["messages"].([]any) {
		if mm := m.(map[string]any); mm["role"] == "assistant" && mm["text"] != "" {
			stored = mm["text"].(string)
		}
	}
	if shown == "" || shown != stored {
		t.Fatalf("reply shown %q, stored %q", shown, stored)
	}
	if live := evalJS[string](b, sr+`.querySelector('.log').getAttribute('role') + '/' + `+sr+`.querySelector('.log').getAttribute('aria-live')`); live != "log/polite" {
		t.Fatalf("message list is %s, want an ARIA log/polite live region", live)
	}

	// Hostile text stays text, from the visitor and from an agent.
	const xss = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`
	b.do("send hostile text", chromedp.SendKeys(inWidget("#pw-text"), xss+kb.Enter))
	e.MustDo(200, "POST", "/api/v1/conversations/"+convID+"/messages", map[string]string{"text": `Agent says <b onmouseover="window.__xss=3">hi</b><img src=y onerror="window.__xss=4">`, "role": "agent"})
	b.wait("hostile texts shown", `[...`+sr+`.querySelectorAll('.m[data-id]')].some(m => m.textContent.includes('<img src=x onerror'))
		&& [...`+sr+`.querySelectorAll('.m[data-role=agent]')].some(m => m.textContent.includes('<b onmouseover'))`)
	injected := evalJS[map[string]any](b, `({imgs: `+sr+`.querySelectorAll('img, script, b').length, xss: window.__xss === undefined ? 0 : window.__xss})`)
	if injected["imgs"].(float64) != 0 || injected["xss"].(float64) != 0 {
		t.Fatalf("hostile text became HTML: %v", injected)
	}

	// Network loss: the server drops the stream; a message stored meanwhile arrives once the
	// browser reconnects, and nothing is shown twice.
	widgetService(t, e).DropStreams()
	e.MustDo(200, "POST", "/api/v1/conversations/"+convID+"/messages", map[string]string{"text": "Written while you were offline", "role": "agent"})
	b.wait("missed message after reconnect", `[...`+sr+`.querySelectorAll('.m[data-role=agent]')].some(m => m.textContent.includes('while you were offline'))`)

	// A real network loss: the browser goes offline and the connection breaks; its reconnection
	// attempts fail until it is back online, then the message stored meanwhile arrives, once.
	b.do("go offline", setOffline(true))
	widgetService(t, e).DropStreams()
	b.wait("reconnecting while offline", hostEl+`.getAttribute('data-state') === 'reconnecting'`)
	e.MustDo(200, "POST", "/api/v1/conversations/"+convID+"/messages", map[string]string{"text": "Sent during the outage", "role": "agent"})
	if st := evalJS[string](b, hostEl+`.getAttribute('data-state') + ' ' + navigator.onLine`); st != "reconnecting false" {
		t.Fatalf("offline state %q", st)
	}
	b.do("back online", setOffline(false))
	b.wait("message from the outage", hostEl+`.getAttribute('data-state') === 'ready' &&
		[...`+sr+`.querySelectorAll('.m[data-role=agent]')].filter(m => m.textContent.includes('during the outage')).length === 1`)
	visible := visibleIDs(t, e, convID)
	b.wait("all messages, once each", `(() => { const ids = [...`+sr+`.querySelectorAll('.m[data-id]')].map(m => m.dataset.id);
		return ids.length === `+fmt.Sprint(len(visible))+` && new Set(ids).size === ids.length; })()`)
	shot(t, ctx, "widget-chat")

	// Reload: the history comes back, in order, from the session kept in localStorage.
	b.do("reload", chromedp.Reload())
	b.wait("resumed", hostEl+`?.getAttribute('data-state') === 'ready'`)
	b.wait("history restored", `[...`+sr+`.querySelectorAll('.m[data-id]')].map(m => m.dataset.id).join(',') === `+fmt.Sprintf("%q", strings.Join(visible, ",")))
	if n := len(e.MustDo(200, "GET", "/api/v1/conversations?type=widget", nil)["data"].([]any)); n != 1 {
		t.Fatalf("the reload started a new conversation (%d)", n)
	}
	b.do("open after reload", chromedp.Click(inWidget(".launcher")))
	b.wait("compose shown, no form", `!`+sr+`.querySelector('.compose').hidden && `+sr+`.querySelector('.pre').hidden && `+sr+`.activeElement?.id === 'pw-text'`)
	shot(t, ctx, "widget-after-reload")
	// Escape closes the panel and gives the focus back to the launcher.
	b.do("escape", chromedp.SendKeys(inWidget("#pw-text"), kb.Escape))
	b.wait("closed, focus on launcher", sr+`.querySelector('.panel').hidden && `+sr+`.activeElement?.classList.contains('launcher')`)

	// Another origin is refused: no widget, and its session request gets a 403.
	b.do("open refused page", chromedp.Navigate(refusedOrigin+"/shop?key="+key))
	b.wait("refused", hostEl+`?.getAttribute('data-state') === 'refused'`)
	if has := evalJS[bool](b, `!!`+sr); has {
		t.Fatal("the widget rendered on an origin it does not allow")
	}
	// A JSON request needs a preflight, which is refused, so the browser never sends it; a simple
	// request (no preflight) reaches the server and gets the 403.
	sessionsURL := fmt.Sprintf("%q", e.URL+"/widget/v1/sessions?key="+key)
	body := `JSON.stringify({key: ` + fmt.Sprintf("%q", key) + `, prechat: {name: 'Mallory', email: 'm@example.com'}})`
	preflighted := evalJS[string](b, `fetch(`+sessionsURL+`, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: `+body+`})
		.then(r => 'sent ' + r.status, err => 'blocked')`)
	if preflighted != "blocked" {
		t.Fatalf("JSON session request from a refused origin: %s, want blocked at the preflight", preflighted)
	}
	simple := evalJS[map[string]any](b, `fetch(`+sessionsURL+`, {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: `+body+`})
		.then(r => r.json().then(j => ({status: r.status, code: j.error.code})))`)
	if simple["status"].(float64) != 403 || simple["code"] != "origin_not_allowed" {
		t.Fatalf("session from a refused origin: %v, want 403 origin_not_allowed", simple)
	}
	if n := len(e.MustDo(200, "GET", "/api/v1/conversations?type=widget", nil)["data"].([]any)); n != 1 {
		t.Fatalf("the refused origin started a conversation (%d)", n)
	}
}

// setOffline cuts the tab's network (and tells the page, through navigator.onLine and the
// online/offline events) or restores it.
func setOffline(offline bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		conds := []*network.Conditions{}
		if offline {
			conds = append(conds, &network.Conditions{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
		}
		if _, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: conds}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1})
		return err
	})
}

// visibleIDs are the ids of the conversation's messages a visitor sees, in order.
func visibleIDs(t *testing.T, e *testenv.Env, convID string) []string {
	t.Helper()
	var ids []string
	for _, m := range e.MustDo(200, "GET", "/api/v1/conversations/"+convID, nil)["messages"].([]any) {
		mm := m.(map[string]any)
		switch mm["role"] {
		case "user", "assistant", "agent":
			if strings.TrimSpace(mm["text"].(string)) != "" {
				ids = append(ids, mm["id"].(string))
			}
		}
	}
	return ids
}

// TestBrowserDemoAndVoice loads the demo page (Parley's own origin, strict CSP) and chats there
// without a pre-chat form, and checks that voice_chat shows the speech control only where the
// browser has speech recognition.
func TestBrowserDemoAndVoice(t *testing.T) {
	e := testenv.New(t)
	site := hostPage(t, e.URL)
	ctx := newBrowser(t)
	asst := e.CreateAssistant("Voice helper", "You are a friendly assistant.")
	w := createWidget(t, e, map[string]any{"assistant_id": asst, "mode": "voice_chat", "title": "Talk to us", "allowed_origins": []string{site.URL}})
	b := &browser{t: t, ctx: ctx}

	b.do("demo page", chromedp.Navigate(w["demo_url"].(string)))
	b.wait("demo widget idle", hostEl+`?.getAttribute('data-state') === 'idle'`)
	b.do("open demo chat", chromedp.Click(inWidget(".launcher")))
	b.wait("compose without form", `!`+sr+`.querySelector('.compose').hidden`)
	b.do("send on demo", chromedp.SendKeys(inWidget("#pw-text"), "Hello there"+kb.Enter))
	b.wait("demo reply", sr+`.querySelector('.m[data-role=assistant]')?.textContent.length > 12`)
	shot(t, ctx, "widget-demo")

	hasSpeech := evalJS[bool](b, `!!(window.SpeechRecognition || window.webkitSpeechRecognition)`)
	micShown := evalJS[bool](b, `!`+sr+`.querySelector('.mic').hidden`)
	if micShown != hasSpeech {
		t.Fatalf("voice control shown=%v, browser speech recognition=%v", micShown, hasSpeech)
	}
	if micShown {
		if label := evalJS[string](b, sr+`.querySelector('.mic').textContent + '|' + `+sr+`.querySelector('.mic').getAttribute('aria-pressed')`); label != "Speak|false" {
			t.Fatalf("voice control %q", label)
		}
	}
	// A browser without speech recognition: the control is hidden.
	b.do("page without speech", chromedp.Navigate(site.URL+"/?nospeech=1&key="+w["public_key"].(string)))
	b.wait("idle without speech", hostEl+`?.getAttribute('data-state') === 'idle'`)
	if shown := evalJS[bool](b, `!`+sr+`.querySelector('.mic').hidden`); shown {
		t.Fatal("voice control shown although the browser has no speech recognition")
	}
}

// TestBrowserTypingIndicator uses a model that answers only when the test lets it (a fake
// OpenAI-compatible server): the typing indicator shows while the visitor waits, then the streamed
// reply replaces it.
func TestBrowserTypingIndicator(t *testing.T) {
	fake := llmtest.New(t)
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	fake.Default = llmtest.Reply{Func: func(map[string]any) llmtest.Reply {
		select {
		case <-release:
		case <-time.After(30 * time.Second):
		}
		return llmtest.Text("Our teapots are cast iron and porcelain.", 20, 9)
	}}
	e := testenv.New(t, func(c *app.Config) { c.LLMBaseURL, c.LLMAPIKey = fake.BaseURL(), "sk-test" })
	ctx := newBrowser(t)
	asst := e.MustDo(http.StatusCreated, "POST", "/api/v1/assistants", map[string]any{"name": "Remote", "system_prompt": "You help.", "model": "gpt-4o-mini"})["id"].(string)
	w := createWidget(t, e, map[string]any{"assistant_id": asst})
	b := &browser{t: t, ctx: ctx}

	b.do("demo page", chromedp.Navigate(w["demo_url"].(string)))
	b.wait("idle", hostEl+`?.getAttribute('data-state') === 'idle'`)
	b.do("open", chromedp.Click(inWidget(".launcher")))
	b.do("send", chromedp.SendKeys(inWidget("#pw-text"), "What are your teapots made of?"+kb.Enter))
	b.wait("typing shown", hostEl+`.getAttribute('data-typing') === 'true' && `+sr+`.querySelector('.typing[role=status]').textContent.includes('typing')`)
	if n := evalJS[float64](b, sr+`.querySelectorAll('.m[data-role=assistant]').length`); n != 0 {
		t.Fatalf("%v replies before the model answered", n)
	}
	once.Do(func() { close(release) })
	b.wait("reply replaces typing", hostEl+`.getAttribute('data-typing') === 'false' && `+sr+`.querySelector('.typing').textContent === ''
		&& `+sr+`.querySelector('.m[data-role=assistant]')?.getAttribute('data-streamed') === 'true'
		&& `+sr+`.querySelector('.m[data-role=assistant]').lastChild.textContent === 'Our teapots are cast iron and porcelain.'`)
}
