package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-hq/parley/internal/testenv"
)

const (
	replayOldPrompt = "You are Ava, the support assistant for Acme Shoes."
	replayNewPrompt = "You are Max, the returns expert at Acme Shoes."
)

// seedReplay makes an assistant with two conversations: a greeting (the prompt shapes its reply)
// and a detail the assistant records with a tool (it does not).
func seedReplay(t testing.TB, e *testenv.Env) string {
	t.Helper()
	aid := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Ava", "system_prompt": replayOldPrompt, "model": "builtin",
		"tools": []string{"set_variable"}})["id"].(string)
	for _, text := range []string{"Hello", "My email is jo@example.com"} {
		c := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "test"})["id"].(string)
		e.MustDo(200, "POST", "/api/v1/conversations/"+c+"/messages", map[string]any{"text": text})
	}
	return aid
}

var replayLink = regexp.MustCompile(`^/replays/([0-9a-f-]{36})$`)

// TestReplayPages: the page's controls are labelled, bad input comes back on the form with a
// message, a good one starts a replay whose report shows the word diff; other workspaces' replays
// are not found.
func TestReplayPages(t *testing.T) {
	e := newEnv(t)
	aid := seedReplay(t, e)
	b := newBrowser(t, e)
	b.mustLogin()
	p := b.get("/replays")
	if p.Status != 200 || !strings.Contains(p.Body, `href="/replays" aria-current="page"`) || !strings.Contains(p.Body, "No replays yet") {
		t.Fatalf("/replays: %d", p.Status)
	}
	for _, m := range controlID.FindAllStringSubmatch(p.Body, -1) {
		if !strings.Contains(p.Body, `for="`+m[1]+`"`) {
			t.Errorf("control #%s has no label", m[1])
		}
	}
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"assistant_id": {""}}, "Choose an assistant"},
		{url.Values{"assistant_id": {aid}, "limit": {"5000"}}, "Conversations must be a number from 1 to 1000"},
		{url.Values{"assistant_id": {aid}, "version": {"7"}}, "has no version 7"},
		{url.Values{"assistant_id": {aid}, "from": {"soon"}}, "Filter: from must be RFC 3339 or YYYY-MM-DD"},
		{url.Values{"assistant_id": {aid}, "type": {"widget"}}, "no conversation matches the filter"},
	} {
		p := b.post("/replays", tc.form)
		if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, tc.want) {
			t.Errorf("%v: %d, want the message %q", tc.form, p.Status, tc.want)
		}
	}
	p = b.post("/replays", url.Values{"assistant_id": {aid}, "system_prompt": {replayNewPrompt}, "limit": {"10"}})
	m := replayLink.FindStringSubmatch(p.Header.Get("Location"))
	if p.Status != http.StatusSeeOther || m == nil {
		t.Fatalf("start: %d %s", p.Status, p.Header.Get("Location"))
	}
	id := m[1]
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r := e.MustDo(200, "GET", "/api/v1/replays/"+id, nil); r["status"] == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replay did not finish")
		}
		time.Sleep(30 * time.Millisecond)
	}
	p = b.get("/replays/" + id)
	for _, want := range []string{"<del>Ava</del>", "<ins>Max</ins>", "<del>support assistant for</del> Acme", "<ins>returns expert at</ins> Acme",
		`id="t-changed">1 of 2<`, "set email = jo@example.com", "similarity 1.0000", replayNewPrompt} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	// An "after" past any stored position (or any 32-bit column) shows the first page.
	if p := b.get("/replays/" + id + "?after=99999999999"); p.Status != 200 || !strings.Contains(p.Body, "<ins>Max</ins>") {
		t.Errorf("a huge after: %d", p.Status)
	}
	if list := b.get("/replays"); !strings.Contains(list.Body, `data-id="`+id+`"`) || !strings.Contains(list.Body, "1 of 2") {
		t.Errorf("the list lacks the replay")
	}
	if p := newBrowser(t, e).get("/replays/" + id); p.Status != http.StatusSeeOther {
		t.Errorf("a visitor without a session: %d", p.Status)
	}
	// Someone of another workspace finds neither the replay nor it in their list.
	_, otherWS := e.NewKey("other-ws")
	if _, err := e.App.Auth.CreateUser(context.Background(), "other@example.com", testPassword, otherWS); err != nil {
		t.Fatal(err)
	}
	other := newBrowser(t, e)
	if p := other.login("other@example.com", testPassword); p.Status != http.StatusSeeOther {
		t.Fatalf("login: %d", p.Status)
	}
	if p := other.get("/replays/" + id); p.Status != http.StatusNotFound || strings.Contains(p.Body, "Max") {
		t.Errorf("another workspace's replay: %d", p.Status)
	}
	if p := other.get("/replays"); strings.Contains(p.Body, id) {
		t.Errorf("another workspace's list shows the replay")
	}
}

// TestBrowserReplays walks the Replays pages in Chromium: choose the assistant, load its version
// list, start from the version's prompt, edit it, start the replay, and read the report once the
// page has followed it to the end.
func TestBrowserReplays(t *testing.T) {
	e := newEnv(t)
	seedReplay(t, e)
	ctx := newChrome(t)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	do(t, ctx, "login",
		chromedp.Navigate(e.URL+"/login"),
		chromedp.WaitVisible(css(`#email`)),
		chromedp.SendKeys(css(`#email`), testEmail),
		chromedp.SendKeys(css(`#password`), testPassword),
		chromedp.Click(css(`button[type=submit]`)),
		chromedp.WaitVisible(css(`#conversation-list`)),
		chromedp.Click(css(`nav a[href="/replays"]`)),
		chromedp.WaitVisible(css(`#replay-form`)),
	)
	eval[bool](t, ctx, "choose assistant", `(() => { const s = document.querySelector('#r-assistant'); s.selectedIndex = 1;
		s.dispatchEvent(new Event('change')); return true; })()`)
	do(t, ctx, "versions", poll(`document.querySelector('#r-version').dataset.loaded === 'true'`, 20*time.Second))
	if n := eval[int](t, ctx, "version options", `document.querySelectorAll('#r-version option').length`); n != 2 {
		t.Fatalf("version options: %d, want current + version 1", n)
	}
	do(t, ctx, "load prompt",
		chromedp.Click(css(`#r-load-prompt`)),
		poll(`document.querySelector('#r-prompt').value === `+jsString(replayOldPrompt), 20*time.Second),
	)
	eval[bool](t, ctx, "edit prompt", `(() => { const p = document.querySelector('#r-prompt'); p.value = p.value.replace('Ava, the support assistant for', 'Max, the returns expert at'); return true; })()`)
	do(t, ctx, "start",
		screenshot(t, "replays-01-form"),
		chromedp.Click(css(`#replay-form button[type=submit]`)),
		chromedp.WaitVisible(css(`#replay-head`)),
	)
	// The report page follows the replay and reloads when it is done.
	waitJS(t, ctx, "replay done", `document.querySelector('#replay-status') && document.querySelector('#replay-status').textContent === 'done'`)
	do(t, ctx, "report", chromedp.WaitVisible(css(`#replay-items ins`)), screenshot(t, "replays-02-report"))
	changed := get(t, ctx, "changed", chromedp.Text(css(`#t-changed`)))
	added := eval[[]string](t, ctx, "added words", `[...document.querySelectorAll('#replay-items ins')].map(e => e.textContent.trim())`)
	removed := eval[[]string](t, ctx, "removed words", `[...document.querySelectorAll('#replay-items del')].map(e => e.textContent.trim())`)
	sideBySide := eval[bool](t, ctx, "layout", `(() => { const o = document.querySelector('.turn.changed .side-old'), n = document.querySelector('.turn.changed .side-new');
		return o.getBoundingClientRect().top === n.getBoundingClientRect().top && o.getBoundingClientRect().left < n.getBoundingClientRect().left; })()`)
	if changed != "1 of 2" || strings.Join(added, "|") != "Max|returns expert at" || strings.Join(removed, "|") != "Ava|support assistant for" || !sideBySide {
		t.Fatalf("report: changed %q, added %v, removed %v, side by side %v", changed, added, removed, sideBySide)
	}
	do(t, ctx, "list", chromedp.Click(css(`a[href="/replays"]`)), chromedp.WaitVisible(css(`#replay-list tr[data-status=done]`)), screenshot(t, "replays-03-list"))
}

func jsString(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }
