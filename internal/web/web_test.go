package web_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/testenv"
	"github.com/parley-hq/parley/internal/web"
)

func TestRootRedirects(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e)
	if p := b.get("/"); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/login" {
		t.Fatalf("/ without session: %d %q", p.Status, p.Header.Get("Location"))
	}
	if p := b.get("/conversations?type=test"); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/login?next="+url.QueryEscape("/conversations?type=test") {
		t.Fatalf("page without session: %d %q", p.Status, p.Header.Get("Location"))
	}
	b.mustLogin()
	if p := b.get("/"); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/conversations" {
		t.Fatalf("/ with session: %d %q", p.Status, p.Header.Get("Location"))
	}
}

func TestLoginSessionCookieAndLogout(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e)
	cases := []struct {
		name, email, password string
		want                  int
	}{
		{"wrong password", testEmail, "not the password", http.StatusUnauthorized},
		{"unknown user", "nobody@example.com", testPassword, http.StatusUnauthorized},
		{"empty", "", "", http.StatusUnprocessableEntity},
	}
	for _, c := range cases {
		if p := b.login(c.email, c.password); p.Status != c.want {
			t.Errorf("%s: status %d, want %d", c.name, p.Status, c.want)
		}
	}
	// The login form itself is CSRF-protected.
	if p := b.do("POST", "/login", url.Values{"email": {testEmail}, "password": {testPassword}, "csrf_token": {"forged"}}, nil); p.Status != http.StatusForbidden {
		t.Fatalf("login with a forged token: %d", p.Status)
	}
	p := b.login(testEmail, testPassword)
	if p.Status != http.StatusSeeOther {
		t.Fatalf("login: %d %s", p.Status, p.Body)
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: p.Header}).Cookies() {
		if c.Name == web.SessionCookie {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure over plain HTTP", cookie)
	}
	// Only the token's hash is stored.
	var n int
	sum := sha256.Sum256([]byte(cookie.Value))
	if err := e.App.Store.DB().QueryRow(`SELECT COUNT(*) FROM sessions WHERE id_hash = $1`, hex.EncodeToString(sum[:])).Scan(&n); err != nil || n != 1 {
		t.Fatalf("hashed session row: %d %v", n, err)
	}
	if err := e.App.Store.DB().QueryRow(`SELECT COUNT(*) FROM sessions WHERE id_hash = $1 OR csrf_token = $1`, cookie.Value).Scan(&n); err != nil || n != 0 {
		t.Fatalf("clear token stored: %d %v", n, err)
	}
	page := b.get("/conversations")
	if page.Status != 200 || !strings.Contains(page.Body, testEmail) {
		t.Fatalf("conversations: %d", page.Status)
	}
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
	// Logout without the CSRF token is refused; with it, the session ends.
	if p := b.do("POST", "/logout", url.Values{}, nil); p.Status != http.StatusForbidden {
		t.Fatalf("logout without token: %d", p.Status)
	}
	if p := b.post("/logout", nil); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d", p.Status)
	}
	if err := e.App.Store.DB().QueryRow(`SELECT COUNT(*) FROM sessions`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("sessions after logout: %d %v", n, err)
	}
	if p := b.get("/conversations"); p.Status != http.StatusSeeOther {
		t.Fatalf("after logout: %d", p.Status)
	}
}

func TestSecureCookieBehindHTTPS(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e)
	p := b.get("/login")
	m := loginCSRFInput.FindStringSubmatch(p.Body)
	p = b.do("POST", "/login", url.Values{"email": {testEmail}, "password": {testPassword}, "csrf_token": {m[1]}}, http.Header{"X-Forwarded-Proto": {"https"}})
	for _, c := range (&http.Response{Header: p.Header}).Cookies() {
		if c.Name == web.SessionCookie && !c.Secure {
			t.Fatalf("session cookie over HTTPS is not Secure: %+v", c)
		}
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e)
	var statuses []int
	for range web.LoginBurst + 1 {
		statuses = append(statuses, b.login(testEmail, "wrong password!").Status)
	}
	for i, s := range statuses[:web.LoginBurst] {
		if s != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, s)
		}
	}
	if statuses[web.LoginBurst] != http.StatusTooManyRequests {
		t.Fatalf("attempt past the burst: %d, want 429", statuses[web.LoginBurst])
	}
	// Even the right password waits now.
	if p := b.login(testEmail, testPassword); p.Status != http.StatusTooManyRequests || p.Header.Get("Retry-After") == "" {
		t.Fatalf("right password while limited: %d", p.Status)
	}
}

func TestConversationListFiltersBadgesAndEscaping(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	b := newBrowser(t, e)
	b.mustLogin()
	all := b.get("/conversations")
	for _, want := range []string{`badge-whatsapp">WhatsApp`, `badge-widget">Web Widget`, `badge-test">Test`, `badge-api">API`,
		`id="nav-count" title="Total conversations">7<`, "7 conversations", "Maria &lt;b&gt;Silva&lt;/b&gt; (&#43;5511999990000)", "window closed"} {
		if !strings.Contains(all.Body, want) {
			t.Errorf("list lacks %q", want)
		}
	}
	if strings.Contains(all.Body, "<b>Silva</b>") {
		t.Error("customer name not escaped")
	}
	cases := []struct {
		query string
		want  int
		ids   []string
	}{
		{"type=test", 3, s.Test},
		{"type=whatsapp", 1, []string{s.WhatsApp}},
		{"type=widget", 1, []string{s.Widget}},
		{"customer=%2B55+11+99999-0000", 1, []string{s.WhatsApp}},
		{"q=buyera", 1, []string{s.API[0]}},
		{"range=today&type=api", 2, s.API},
		{"range=custom&from=2000-01-01&to=2000-01-02", 0, nil},
		{"status=ended", 0, nil},
	}
	for _, c := range cases {
		p := b.get("/conversations?" + c.query)
		if p.Status != 200 {
			t.Fatalf("%s: %d", c.query, p.Status)
		}
		if got := strings.Count(p.Body, `<tr data-id=`); got != c.want {
			t.Errorf("%s: %d rows, want %d", c.query, got, c.want)
		}
		for _, id := range c.ids {
			if !strings.Contains(p.Body, `data-id="`+id+`"`) {
				t.Errorf("%s: row %s missing", c.query, id)
			}
		}
		if !strings.Contains(p.Body, " match the filters") {
			t.Errorf("%s: no filtered count", c.query)
		}
	}
	if p := b.get("/conversations?type=nope"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "must be whatsapp, widget, test or api") {
		t.Errorf("bad filter: %d", p.Status)
	}
}

func TestConversationListKeysetPaging(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	ctx := context.Background()
	for range 60 {
		if _, err := e.App.Conversations.Create(ctx, e.WorkspaceID, conversationInput(s.AssistantID)); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, e)
	b.mustLogin()
	p := b.get("/conversations?type=api")
	if got := strings.Count(p.Body, `<tr data-id=`); got != 50 {
		t.Fatalf("first page: %d rows", got)
	}
	i := strings.Index(p.Body, `id="next-page" href="`)
	if i < 0 {
		t.Fatal("no next page link")
	}
	next := p.Body[i+len(`id="next-page" href="`):]
	next = strings.ReplaceAll(next[:strings.IndexByte(next, '"')], "&amp;", "&")
	if !strings.Contains(next, "type=api") || !strings.Contains(next, "cursor=") {
		t.Fatalf("next link %q keeps no filter or cursor", next)
	}
	p2 := b.get(next)
	if got := strings.Count(p2.Body, `<tr data-id=`); got != 12 {
		t.Fatalf("second page: %d rows, want 12", got)
	}
	if strings.Contains(p2.Body, `id="next-page"`) {
		t.Fatal("last page has a next link")
	}
}

func TestExportMatchesFilter(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	b := newBrowser(t, e)
	b.mustLogin()
	list := b.get("/conversations?type=test")
	i := strings.Index(list.Body, `id="export-jsonl" href="`)
	link := list.Body[i+len(`id="export-jsonl" href="`):]
	link = strings.ReplaceAll(link[:strings.IndexByte(link, '"')], "&amp;", "&")
	p := b.get(link)
	if p.Status != 200 || !strings.Contains(p.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: %d %v", p.Status, p.Header)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(p.Body))
	rows := 0
	for sc.Scan() {
		var row struct {
			ConversationID   string `json:"conversation_id"`
			ConversationType string `json:"conversation_type"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		if row.ConversationType != "test" {
			t.Fatalf("exported a %s conversation", row.ConversationType)
		}
		seen[row.ConversationID] = true
		rows++
	}
	if len(seen) != len(s.Test) {
		t.Fatalf("exported %d conversations, want %d", len(seen), len(s.Test))
	}
	// Exactly what the API exports for the same filter.
	api := e.Do("GET", "/api/v1/conversations/export?format=jsonl&type=test", nil)
	if got := strings.Count(string(api.Body), "\n"); got != rows {
		t.Fatalf("dashboard exported %d rows, API %d", rows, got)
	}
	csv := b.get(strings.Replace(link, "format=jsonl", "format=csv", 1))
	if lines := strings.Count(csv.Body, "\n"); lines < rows+1 || !strings.HasPrefix(csv.Body, "conversation_id,") {
		t.Fatalf("csv export: %d lines", lines)
	}
	// Without a session the export is refused, not redirected to HTML.
	if p := newBrowser(t, e).get(link); p.Status != http.StatusUnauthorized {
		t.Fatalf("export without session: %d", p.Status)
	}
}

func TestConversationDetail(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	b := newBrowser(t, e)
	b.mustLogin()
	p := b.get("/conversations/" + s.Rich)
	if p.Status != 200 {
		t.Fatalf("detail: %d", p.Status)
	}
	if !transcriptLine.MatchString(p.Body) {
		t.Error("no [hh:mm:ss] User: transcript line")
	}
	for _, want := range []string{"Tool call: <code>lookup_order</code>", "&#34;order&#34;: &#34;ACME-1234&#34;", "shipped",
		"<td>plan</td><td><span class=\"source\">flow</span></td><td>gold</td>", "<td>email</td><td><span class=\"source\">extracted</span></td><td>buyera@example.com</td>",
		`id="u-cost">$0.00175<`, "Hand off to a human", "End conversation", "Reply as an agent"} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	wa := b.get("/conversations/" + s.WhatsApp)
	for _, want := range []string{`<audio controls`, "Transcript:</strong> I want to change my order", `tick-delivered`, "✓✓", "window closed", `id="u-cost">$0.0025<`} {
		if !strings.Contains(wa.Body, want) {
			t.Errorf("whatsapp detail lacks %q", want)
		}
	}
	// Another workspace's id is a 404, like a missing one.
	if p := b.get("/conversations/" + "0190e000-0000-7000-8000-000000000000"); p.Status != http.StatusNotFound {
		t.Errorf("missing: %d", p.Status)
	}
	key2, _ := e.NewKey("other")
	a2 := e.DoWith(key2, "POST", "/api/v1/assistants", map[string]any{"name": "x", "system_prompt": "x", "model": "builtin"}, nil).JSON(t)
	c2 := e.DoWith(key2, "POST", "/api/v1/conversations", map[string]any{"assistant_id": a2["id"], "type": "api"}, nil).JSON(t)
	if p := b.get("/conversations/" + c2["id"].(string)); p.Status != http.StatusNotFound {
		t.Errorf("other workspace: %d", p.Status)
	}
}

var emptyButton = regexp.MustCompile(`<button[^>]*>\s*</button>`)

var transcriptLine = regexp.MustCompile(`>\[\d\d:\d\d:\d\d\]</time> <strong class="who">User:</strong>`)

func TestConversationActions(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	b := newBrowser(t, e)
	b.mustLogin()
	id := s.Test[0]
	// Without the CSRF token nothing changes.
	if p := b.do("POST", "/conversations/"+id+"/handoff", url.Values{"reason": {"x"}}, nil); p.Status != http.StatusForbidden {
		t.Fatalf("handoff without token: %d", p.Status)
	}
	steps := []struct{ action, status string }{{"handoff", "handoff"}, {"resume", "active"}, {"reply", "active"}, {"end", "ended"}}
	for _, st := range steps {
		form := url.Values{}
		if st.action == "reply" {
			form.Set("text", "An agent here <hello>")
		}
		p := b.post("/conversations/"+id+"/"+st.action, form)
		if p.Status != http.StatusSeeOther {
			t.Fatalf("%s: %d %s", st.action, p.Status, p.Body)
		}
		got := e.MustDo(200, "GET", "/api/v1/conversations/"+id, nil)
		if got["status"] != st.status {
			t.Fatalf("after %s: status %v", st.action, got["status"])
		}
	}
	d := b.get("/conversations/" + id)
	if !strings.Contains(d.Body, "Agent:</strong> <span class=\"text\">An agent here &lt;hello&gt;</span>") {
		t.Error("agent reply not shown escaped")
	}
	if p := b.post("/conversations/"+id+"/reply", url.Values{"text": {"too late"}}); p.Status != http.StatusConflict || !strings.Contains(p.Body, "has ended") {
		t.Fatalf("reply to ended: %d", p.Status)
	}
	// WhatsApp outside the 24-hour window: refused with window_closed, template picker offered.
	p := b.post("/conversations/"+s.WhatsApp+"/reply", url.Values{"text": {"hello?"}})
	if p.Status != http.StatusConflict || !strings.Contains(p.Body, "window_closed") || !strings.Contains(p.Body, `id="template-picker"`) ||
		strings.Contains(p.Body, `templates collapsed`) {
		t.Fatalf("window closed reply: %d %s", p.Status, p.Body)
	}
	if !strings.Contains(p.Body, ">hello?</textarea>") {
		t.Error("refused reply text not kept in the form")
	}
}

func TestLiveEvents(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	b := newBrowser(t, e)
	b.mustLogin()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/conversations/"+s.Test[1]+"/events", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rd := bufio.NewReader(resp.Body)
	if line, _ := rd.ReadString('\n'); !strings.HasPrefix(line, ": connected") {
		t.Fatalf("first line %q", line)
	}
	e.MustDo(200, "POST", "/api/v1/conversations/"+s.Test[1]+"/messages", map[string]any{"text": "live <ping> 42"})
	var html string
	for html == "" {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("read events: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, `"html"`) {
			var ev struct{ ID, HTML string }
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatal(err)
			}
			html = ev.HTML
		}
	}
	if !strings.Contains(html, "live &lt;ping&gt; 42") || !strings.Contains(html, "User:") {
		t.Fatalf("live message html %q", html)
	}
}

func TestMissedMessagesReplayedAfter(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	b := newBrowser(t, e)
	b.mustLogin()
	d := e.MustDo(200, "GET", "/api/v1/conversations/"+s.Test[2], nil)
	msgs := d["messages"].([]any)
	first := msgs[0].(map[string]any)["id"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/conversations/"+s.Test[2]+"/events?after="+first, nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	var got []string
	for len(got) < len(msgs)-1 {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, `"html"`) {
			var ev struct{ ID string }
			_ = json.Unmarshal([]byte(data), &ev)
			got = append(got, ev.ID)
		}
	}
	for i, id := range got {
		if want := msgs[i+1].(map[string]any)["id"]; id != want {
			t.Fatalf("replayed %d: %s, want %s", i, id, want)
		}
	}
}

func TestTestChatStreams(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	b := newBrowser(t, e)
	b.mustLogin()
	p := b.post("/test-chat", url.Values{"assistant_id": {s.AssistantID}})
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/test-chat?c=") {
		t.Fatalf("start: %d %s", p.Status, p.Body)
	}
	loc, _ := url.Parse(p.Header.Get("Location"))
	id := loc.Query().Get("c")
	conv := e.MustDo(200, "GET", "/api/v1/conversations/"+id, nil)
	if conv["type"] != "test" {
		t.Fatalf("type %v", conv["type"])
	}
	if p := b.get(p.Header.Get("Location")); p.Status != 200 || !strings.Contains(p.Body, `id="chat-form"`) {
		t.Fatalf("chat page: %d", p.Status)
	}
	stream := b.do("POST", "/test-chat/"+id+"/messages", url.Values{"text": {"hello there"}}, http.Header{"X-Csrf-Token": {b.csrf}, "Accept": {"text/event-stream"}})
	if stream.Status != 200 || !strings.HasPrefix(stream.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", stream.Status, stream.Body)
	}
	for _, want := range []string{"event: message", "event: delta", "event: done", "hello there"} {
		if !strings.Contains(stream.Body, want) {
			t.Errorf("stream lacks %q:\n%s", want, stream.Body)
		}
	}
	if strings.Index(stream.Body, "event: delta") > strings.LastIndex(stream.Body, "event: message") {
		t.Error("the reply's message should follow its deltas")
	}
	after := e.MustDo(200, "GET", "/api/v1/conversations/"+id, nil)
	if n := len(after["messages"].([]any)); n < 2 {
		t.Fatalf("%d messages stored", n)
	}
	// Without the CSRF header the stream endpoint refuses.
	if p := b.do("POST", "/test-chat/"+id+"/messages", url.Values{"text": {"x"}}, http.Header{"Accept": {"text/event-stream"}}); p.Status != http.StatusForbidden {
		t.Fatalf("no csrf: %d", p.Status)
	}
}

func TestAPIAcceptsSessionWithCSRF(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e)
	b.mustLogin()
	if p := b.get("/api/v1/assistants"); p.Status != 200 {
		t.Fatalf("GET with session: %d %s", p.Status, p.Body)
	}
	body := url.Values{}
	_ = body
	post := func(h http.Header) *page {
		req := `{"name":"From dashboard","system_prompt":"hi","model":"builtin"}`
		hd := http.Header{"Content-Type": {"application/json"}}
		for k, v := range h {
			hd[k] = v
		}
		r, _ := http.NewRequest("POST", e.URL+"/api/v1/assistants", strings.NewReader(req))
		r.Header = hd
		resp, err := b.c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&sb)
		return &page{Status: resp.StatusCode, Body: sb.String()}
	}
	if p := post(nil); p.Status != http.StatusForbidden || !strings.Contains(p.Body, "csrf_failed") {
		t.Fatalf("POST without CSRF: %d %s", p.Status, p.Body)
	}
	if p := post(http.Header{"X-Csrf-Token": {"wrong"}}); p.Status != http.StatusForbidden {
		t.Fatalf("POST with a wrong token: %d", p.Status)
	}
	if p := post(http.Header{"X-Csrf-Token": {b.csrf}}); p.Status != http.StatusCreated {
		t.Fatalf("POST with CSRF: %d %s", p.Status, p.Body)
	}
	// A cookie-less request still needs a key.
	if r := e.DoWith("", "GET", "/api/v1/assistants", nil, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d", r.Status)
	}
	// An endpoint this build lacks answers the JSON 404 the pages show as "not available".
	if p := b.get("/api/v1/no-such-thing"); p.Status != http.StatusNotFound || !strings.Contains(p.Body, "no such endpoint") {
		t.Fatalf("unknown endpoint: %d %s", p.Status, p.Body)
	}
}

func TestMetricsPageAndPrometheus(t *testing.T) {
	e := newEnv(t)
	seed(t, e)
	b := newBrowser(t, e)
	b.mustLogin()
	p := b.do("GET", "/metrics", nil, http.Header{"Accept": {"text/html,application/xhtml+xml"}})
	if p.Status != 200 {
		t.Fatalf("metrics page: %d", p.Status)
	}
	for _, want := range []string{`id="chart-per-day"`, `id="chart-heatmap"`, `id="chart-cost"`, "Total conversations", "Messages per conversation",
		"Response rate", "Average response time", "Cost per conversation", "Support Bot", `id="m-total">7<`} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("metrics page lacks %q", want)
		}
	}
	if n := strings.Count(p.Body, `class="cell"`); n != 7*24 {
		t.Errorf("heatmap cells: %d", n)
	}
	if n := strings.Count(p.Body, `class="bar"`); n != 30 {
		t.Errorf("bars: %d, want 30 days", n)
	}
	filtered := b.do("GET", "/metrics?type=whatsapp", nil, http.Header{"Accept": {"text/html"}})
	if !strings.Contains(filtered.Body, `id="m-total">1<`) {
		t.Error("type filter not applied")
	}
	if bad := b.do("GET", "/metrics?from=2026-02-10&to=2026-01-01", nil, http.Header{"Accept": {"text/html"}}); bad.Status != http.StatusBadRequest {
		t.Errorf("reversed range: %d", bad.Status)
	}
	// Scrapers still get Prometheus text at the same path.
	prom := e.DoWith("", "GET", "/metrics", nil, http.Header{"Accept": {"text/plain;version=0.0.4"}})
	if prom.Status != 200 || !strings.Contains(string(prom.Body), "go_goroutines") {
		t.Fatalf("prometheus: %d", prom.Status)
	}
}

func TestAssistantsCreateEdit(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e)
	b.mustLogin()
	form := url.Values{"name": {"Sales <Bot>"}, "system_prompt": {"Sell things."}, "model": {"builtin"}, "temperature": {"0.4"},
		"tools": {`["set_variable"]`}, "knowledge_base_ids": {""}, "extract": {`[{"name":"budget","description":"the budget","type":"string"}]`}, "fallback_text": {"One moment."}}
	p := b.post("/assistants", form)
	if p.Status != http.StatusSeeOther {
		t.Fatalf("create: %d %s", p.Status, p.Body)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(p.Header.Get("Location"), "/assistants/"), "?done=saved")
	got := e.MustDo(200, "GET", "/api/v1/assistants/"+id, nil)
	if got["name"] != "Sales <Bot>" || got["temperature"] != 0.4 || got["fallback_text"] != "One moment." || len(got["extract"].([]any)) != 1 {
		t.Fatalf("stored %v", got)
	}
	edit := b.get("/assistants/" + id)
	if !strings.Contains(edit.Body, `value="Sales &lt;Bot&gt;"`) || !strings.Contains(edit.Body, "budget") {
		t.Fatal("edit form not filled")
	}
	form.Set("name", "Sales Bot 2")
	if p := b.post("/assistants/"+id, form); p.Status != http.StatusSeeOther {
		t.Fatalf("update: %d", p.Status)
	}
	if got := e.MustDo(200, "GET", "/api/v1/assistants/"+id, nil); got["name"] != "Sales Bot 2" {
		t.Fatalf("updated name %v", got["name"])
	}
	form.Set("tools", "not json")
	if p := b.post("/assistants/"+id, form); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "Tools must be a JSON array") {
		t.Fatalf("bad tools: %d", p.Status)
	}
	if p := b.get("/assistants"); !strings.Contains(p.Body, "Sales Bot 2") {
		t.Fatal("list lacks the assistant")
	}
}

func TestSettingsAPIKeys(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e)
	b.mustLogin()
	p := b.post("/settings/keys", url.Values{"name": {"zapier"}})
	if p.Status != http.StatusCreated {
		t.Fatalf("create key: %d", p.Status)
	}
	i := strings.Index(p.Body, `id="new-key" type="text" readonly value="`)
	if i < 0 {
		t.Fatal("new key not shown")
	}
	key := p.Body[i+len(`id="new-key" type="text" readonly value="`):]
	key = key[:strings.IndexByte(key, '"')]
	if r := e.DoWith(key, "GET", "/api/v1/assistants", nil, nil); r.Status != 200 {
		t.Fatalf("new key: %d", r.Status)
	}
	if again := b.get("/settings"); strings.Contains(again.Body, key) {
		t.Fatal("key shown twice")
	}
	keys, _ := e.App.Store.ListAPIKeys(context.Background(), e.WorkspaceID)
	var id string
	for _, k := range keys {
		if k.Name == "zapier" {
			id = k.ID
		}
	}
	if p := b.post("/settings/keys/"+id+"/revoke", nil); p.Status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", p.Status)
	}
	if p := b.get("/settings"); !strings.Contains(p.Body, "revoked") {
		t.Fatal("revoked key not shown as revoked")
	}
	// Another workspace's key: 404.
	_, ws2 := e.NewKey("elsewhere")
	other, _ := e.App.Store.ListAPIKeys(context.Background(), ws2)
	if p := b.post("/settings/keys/"+other[0].ID+"/revoke", nil); p.Status != http.StatusNotFound {
		t.Fatalf("revoke another workspace's key: %d", p.Status)
	}
}

func TestWorkspaceSwitcher(t *testing.T) {
	e := newEnv(t)
	seed(t, e)
	key2, ws2 := e.NewKey("second")
	a2 := e.DoWith(key2, "POST", "/api/v1/assistants", map[string]any{"name": "Second Bot", "system_prompt": "x", "model": "builtin"}, nil).JSON(t)
	e.DoWith(key2, "POST", "/api/v1/conversations", map[string]any{"assistant_id": a2["id"], "type": "api", "customer_id": "only-in-second"}, nil)
	_, ws3 := e.NewKey("third")
	u, err := e.App.Store.UserByEmail(context.Background(), testEmail)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.App.Store.AddMembership(context.Background(), u.ID, ws2, "admin"); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, e)
	b.mustLogin()
	p := b.get("/conversations")
	if !strings.Contains(p.Body, `id="ws-select"`) || strings.Contains(p.Body, "only-in-second") {
		t.Fatal("switcher missing or second workspace's data shown")
	}
	if p := b.post("/workspace", url.Values{"workspace_id": {ws3}}); p.Status != http.StatusForbidden {
		t.Fatalf("switch to a workspace of someone else: %d", p.Status)
	}
	if p := b.post("/workspace", url.Values{"workspace_id": {ws2}}); p.Status != http.StatusSeeOther {
		t.Fatalf("switch: %d", p.Status)
	}
	p = b.get("/conversations")
	if !strings.Contains(p.Body, "only-in-second") || !strings.Contains(p.Body, `title="Total conversations">1<`) {
		t.Fatal("second workspace not shown after the switch")
	}
}

func TestShellPages(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e)
	b.mustLogin()
	for _, path := range []string{"/knowledge", "/whatsapp", "/widgets", "/settings", "/assistants", "/assistants/new", "/test-chat"} {
		p := b.get(path)
		if p.Status != 200 || !strings.Contains(p.Body, `<script src="/dashboard-assets/app.js" defer>`) {
			t.Errorf("%s: %d", path, p.Status)
		}
		// Every control has a label: each id'd input/select/textarea has a <label for>.
		for _, m := range controlID.FindAllStringSubmatch(p.Body, -1) {
			if !strings.Contains(p.Body, `for="`+m[1]+`"`) {
				t.Errorf("%s: control #%s has no label", path, m[1])
			}
		}
	}
	if p := b.get("/dashboard-assets/app.js"); p.Status != 200 || !strings.Contains(p.Body, "not available in this build") {
		t.Errorf("app.js: %d", p.Status)
	}
}

func TestEventStreamsEndOnShutdown(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	b := newBrowser(t, e)
	b.mustLogin()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e.App.Handler()}
	go func() { _ = srv.Serve(ln) }()
	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/conversations/"+s.Test[0]+"/events", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if line, _ := bufio.NewReader(resp.Body).ReadString('\n'); !strings.HasPrefix(line, ": connected") {
		t.Fatalf("stream did not start: %q", line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown waited on the open event stream: %v", err)
	}
}

func TestExpiredSessionIsRefused(t *testing.T) {
	e := newEnv(t)
	b := newBrowser(t, e)
	b.mustLogin()
	if _, err := e.App.Store.DB().Exec(`UPDATE sessions SET expires_at = $1`, time.Now().Add(-time.Minute).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if p := b.get("/conversations"); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), "/login") {
		t.Fatalf("expired session: %d", p.Status)
	}
	if p := b.get("/api/v1/assistants"); p.Status != http.StatusUnauthorized {
		t.Fatalf("expired session on the API: %d", p.Status)
	}
}

func TestConversationCounts(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	ctx := context.Background()
	n, err := e.App.Store.ConversationCount(ctx, e.WorkspaceID)
	if err != nil || n != 7 {
		t.Fatalf("count %d %v", n, err)
	}
	_, ws2 := e.NewKey("empty")
	if n, _ := e.App.Store.ConversationCount(ctx, ws2); n != 0 {
		t.Fatalf("empty workspace count %d", n)
	}
	cases := []struct {
		f    conversation.Filter
		max  int
		want int64
	}{
		{conversation.Filter{Types: []conversation.Type{conversation.TypeTest}}, 100, 3},
		{conversation.Filter{Types: []conversation.Type{conversation.TypeTest, conversation.TypeAPI}}, 100, 5},
		{conversation.Filter{Types: []conversation.Type{conversation.TypeTest}}, 2, 3}, // capped: max+1 means "more"
		{conversation.Filter{AssistantID: s.AssistantID, Limit: 1, Cursor: "ignored"}, 100, 7},
		{conversation.Filter{Customer: "+55 11 99999-0000"}, 100, 1},
	}
	for i, c := range cases {
		got, err := e.App.Store.CountConversations(ctx, e.WorkspaceID, c.f, c.max)
		if err != nil || got != c.want {
			t.Errorf("case %d: %d %v, want %d", i, got, err, c.want)
		}
	}
	// Deleting conversations (retention, erasure) keeps the counter right.
	if _, err := e.App.Store.DB().Exec(`DELETE FROM conversations WHERE id = $1`, s.Widget); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.App.Store.ConversationCount(ctx, e.WorkspaceID); n != 6 {
		t.Fatalf("after delete %d", n)
	}
}

func TestEveryControlHasALabel(t *testing.T) {
	e := newEnv(t)
	s := seed(t, e)
	b := newBrowser(t, e)
	if p := b.get("/login"); len(controlID.FindAllString(p.Body, -1)) == 0 {
		t.Fatal("login page has no controls")
	}
	b.mustLogin()
	for _, path := range []string{"/conversations", "/conversations/" + s.WhatsApp, "/conversations/" + s.Rich, "/metrics", "/assistants/" + s.AssistantID, "/test-chat?c=" + s.Test[0]} {
		p := b.do("GET", path, nil, http.Header{"Accept": {"text/html"}})
		if p.Status != 200 {
			t.Fatalf("%s: %d", path, p.Status)
		}
		for _, m := range controlID.FindAllStringSubmatch(p.Body, -1) {
			if !strings.Contains(p.Body, `for="`+m[1]+`"`) {
				t.Errorf("%s: control #%s has no label", path, m[1])
			}
		}
		if emptyButton.MatchString(p.Body) {
			t.Errorf("%s: a button without text", path)
		}
	}
}

// TestDashboardOnEveryBackend logs in, lists, counts and opens a conversation on SQLite and, when
// PARLEY_TEST_POSTGRES_URL is set, PostgreSQL.
func TestDashboardOnEveryBackend(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, e *testenv.Env) {
		if _, err := e.App.Auth.CreateUser(context.Background(), testEmail, testPassword, e.WorkspaceID); err != nil {
			t.Fatal(err)
		}
		s := seed(t, e)
		b := newBrowser(t, e)
		b.mustLogin()
		p := b.get("/conversations?type=test")
		if got := strings.Count(p.Body, `<tr data-id=`); got != 3 || !strings.Contains(p.Body, `title="Total conversations">7<`) {
			t.Fatalf("list: %d rows", got)
		}
		if p := b.get("/conversations/" + s.Rich); p.Status != 200 || !strings.Contains(p.Body, "lookup_order") {
			t.Fatalf("detail: %d", p.Status)
		}
		if _, err := e.App.Store.DB().Exec(`DELETE FROM conversations WHERE id = $1`, s.Widget); err != nil {
			t.Fatal(err)
		}
		if n, err := e.App.Store.ConversationCount(context.Background(), e.WorkspaceID); err != nil || n != 6 {
			t.Fatalf("count after delete: %d %v", n, err)
		}
		if p := b.post("/logout", nil); p.Status != http.StatusSeeOther {
			t.Fatalf("logout: %d", p.Status)
		}
	})
}

func TestLoginNextStaysOnSite(t *testing.T) {
	e := newEnv(t)
	cases := []struct{ next, want string }{
		{"/metrics?type=test", "/metrics?type=test"},
		{"//evil.example/x", "/conversations"},
		{"https://evil.example/", "/conversations"},
		{"/\\evil.example", "/conversations"},
		{"", "/conversations"},
	}
	for _, c := range cases {
		b := newBrowser(t, e)
		p := b.get("/login?next=" + url.QueryEscape(c.next))
		m := loginCSRFInput.FindStringSubmatch(p.Body)
		p = b.do("POST", "/login", url.Values{"email": {testEmail}, "password": {testPassword}, "csrf_token": {m[1]}, "next": {c.next}}, nil)
		if p.Status != http.StatusSeeOther || p.Header.Get("Location") != c.want {
			t.Errorf("next %q: %d %q, want %q", c.next, p.Status, p.Header.Get("Location"), c.want)
		}
	}
}
