package widget_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-hq/parley/internal/testenv"
	"github.com/parley-hq/parley/internal/widget"
)

func widgetService(t testing.TB, e *testenv.Env) *widget.Service {
	t.Helper()
	s, ok := e.App.Extra["widget"].(*widget.Service)
	if !ok {
		t.Fatal("the widget feature is not set up")
	}
	return s
}

func createWidget(t testing.TB, e *testenv.Env, body map[string]any) map[string]any {
	t.Helper()
	if _, ok := body["assistant_id"]; !ok {
		body["assistant_id"] = e.CreateAssistant("Shop helper", "You are the shop's helpful assistant.")
	}
	return e.MustDo(http.StatusCreated, "POST", "/api/v1/widgets", body)
}

// public calls a /widget/v1 endpoint as a browser page of origin would ("" for none).
func public(t testing.TB, e *testenv.Env, method, path, origin, token string, body any) *testenv.Response {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return e.DoWith(token, method, path, body, h)
}

func errCode(t testing.TB, r *testenv.Response) string {
	t.Helper()
	var b struct {
		Error struct{ Code, Message string }
	}
	r.Decode(t, &b)
	if b.Error.Message == "" {
		t.Fatalf("error without message: %s", r.Body)
	}
	return b.Error.Code
}

func TestWidgetsAPI(t *testing.T) { testenv.EachBackend(t, testWidgetsAPI) }

func testWidgetsAPI(t *testing.T, e *testenv.Env) {
	asst := e.CreateAssistant("Helper", "You help.")
	w := createWidget(t, e, map[string]any{"assistant_id": asst, "mode": "voice_chat", "title": "Ask us", "greeting": "Hi there!",
		"prechat_fields": []map[string]any{{"name": "name", "label": "Your name", "type": "text", "required": true},
			{"name": "topic", "label": "Topic", "type": "select", "options": []string{"Sales", "Support"}}},
		"allowed_origins": []string{"https://Shop.example.com/"}, "primary_color": "#112233", "position": "bottom-left"})
	id, key := w["id"].(string), w["public_key"].(string)
	if id == "" || !strings.HasPrefix(key, "pwk_") {
		t.Fatalf("widget: %v", w)
	}
	host := strings.TrimPrefix(e.URL, "http://")
	if want := `<script src="http://` + host + `/widget.js" data-key="` + key + `" async></script>`; w["embed_snippet"] != want {
		t.Fatalf("embed_snippet %q, want %q", w["embed_snippet"], want)
	}
	if w["allowed_origins"].([]any)[0] != "https://shop.example.com" || w["mode"] != "voice_chat" || w["position"] != "bottom-left" {
		t.Fatalf("settings not kept: %v", w)
	}
	// Behind a TLS proxy the snippet uses https.
	r := e.DoWith(e.Key, "GET", "/api/v1/widgets/"+id, nil, http.Header{"X-Forwarded-Proto": {"https"}})
	if !strings.Contains(r.JSON(t)["embed_snippet"].(string), `src="https://`+host+`/widget.js"`) {
		t.Fatalf("snippet behind proxy: %s", r.Body)
	}

	p := e.MustDo(200, "PATCH", "/api/v1/widgets/"+id, map[string]any{"greeting": "Hello again", "allowed_origins": []string{}})
	if p["greeting"] != "Hello again" || p["title"] != "Ask us" || len(p["allowed_origins"].([]any)) != 0 || p["public_key"] != key {
		t.Fatalf("patch: %v", p)
	}
	list := e.MustDo(200, "GET", "/api/v1/widgets", nil)["data"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != id {
		t.Fatalf("list: %v", list)
	}

	bad := []struct {
		body   any
		status int
		code   string
	}{
		{map[string]any{"assistant_id": "nope"}, 404, "assistant_not_found"},
		{map[string]any{}, 422, "invalid_field"},
		{map[string]any{"assistant_id": asst, "mode": "video"}, 422, "invalid_field"},
		{map[string]any{"assistant_id": asst, "prechat_fields": []map[string]any{{"name": "x", "type": "date"}}}, 422, "invalid_field"},
		{map[string]any{"assistant_id": asst, "allowed_origins": []string{"shop.example.com"}}, 422, "invalid_field"},
		{map[string]any{"assistant_id": asst, "primary_color": "url(x)"}, 422, "invalid_field"},
		{`{"assistant_id":`, 400, "invalid_json"},
	}
	for _, b := range bad {
		r := e.Do("POST", "/api/v1/widgets", b.body)
		if r.Status != b.status || errCode(t, r) != b.code {
			t.Errorf("POST %v: %d %s, want %d %s", b.body, r.Status, r.Body, b.status, b.code)
		}
	}
	if n := len(e.MustDo(200, "GET", "/api/v1/widgets", nil)["data"].([]any)); n != 1 {
		t.Fatalf("bad input created widgets: %d", n)
	}

	// Another workspace sees nothing of it, and cannot use its own assistant's id across.
	otherKey, _ := e.NewKey("other")
	for _, m := range []string{"GET", "PATCH", "DELETE"} {
		var body any
		if m == "PATCH" {
			body = map[string]any{"title": "mine"}
		}
		if r := e.DoWith(otherKey, m, "/api/v1/widgets/"+id, body, nil); r.Status != 404 {
			t.Errorf("%s from another workspace: %d", m, r.Status)
		}
	}
	if r := e.DoWith(otherKey, "POST", "/api/v1/widgets", map[string]any{"assistant_id": asst}, nil); r.Status != 404 {
		t.Errorf("another workspace's assistant: %d", r.Status)
	}
	if r := e.DoWith("", "GET", "/api/v1/widgets", nil, nil); r.Status != 401 {
		t.Errorf("no key: %d", r.Status)
	}

	e.MustDo(204, "DELETE", "/api/v1/widgets/"+id, nil)
	if r := e.Do("GET", "/api/v1/widgets/"+id, nil); r.Status != 404 {
		t.Fatalf("deleted widget: %d", r.Status)
	}
}

func TestScriptAndDemo(t *testing.T) {
	e := testenv.New(t)
	w := createWidget(t, e, map[string]any{"title": "Demo <b>title</b>"})
	r := e.DoWith("", "GET", "/widget.js", nil, nil)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") || r.Header.Get("ETag") == "" {
		t.Fatalf("widget.js: %d %v", r.Status, r.Header)
	}
	if r2 := e.DoWith("", "GET", "/widget.js", nil, http.Header{"If-None-Match": {r.Header.Get("ETag")}}); r2.Status != 304 || len(r2.Body) != 0 {
		t.Fatalf("revalidation: %d", r2.Status)
	}
	d := e.DoWith("", "GET", "/widget/demo/"+w["id"].(string), nil, nil)
	body := string(d.Body)
	if d.Status != 200 || !strings.Contains(body, `data-key="`+w["public_key"].(string)+`"`) || !strings.Contains(body, e.URL+"/widget.js") {
		t.Fatalf("demo: %d %s", d.Status, body)
	}
	if strings.Contains(body, "<b>title</b>") {
		t.Fatal("the demo page renders the title as HTML")
	}
	if r := e.DoWith("", "GET", "/widget/demo/nope", nil, nil); r.Status != 404 {
		t.Fatalf("unknown demo: %d", r.Status)
	}
}

func TestSessionsPrechatAndCORS(t *testing.T) { testenv.EachBackend(t, testSessionsPrechatAndCORS) }

func testSessionsPrechatAndCORS(t *testing.T, e *testenv.Env) {
	const shop = "https://shop.example.com"
	w := createWidget(t, e, map[string]any{"allowed_origins": []string{shop},
		"prechat_fields": []map[string]any{{"name": "name", "label": "Name", "required": true}, {"name": "email", "label": "Email", "type": "email", "required": true}}})
	key := w["public_key"].(string)

	// Preflight: the widget's origin gets the CORS answer, another origin is refused.
	pre := func(origin string) *testenv.Response {
		return e.DoWith("", "OPTIONS", "/widget/v1/sessions?key="+key, nil, http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"content-type"}})
	}
	if r := pre(shop); r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != shop || !strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight from allowed origin: %d %v", r.Status, r.Header)
	}
	if r := pre("https://evil.example.com"); r.Status != 403 || errCode(t, r) != "origin_not_allowed" {
		t.Fatalf("preflight from other origin: %d %s", r.Status, r.Body)
	}

	good := map[string]any{"key": key, "prechat": map[string]string{"name": "Ada Lovelace", "email": "ada@example.com"}, "page_url": shop + "/pricing", "referrer": "https://search.example/?q=shop"}
	// A session from an origin that is not allowed: 403, nothing created.
	r := public(t, e, "POST", "/widget/v1/sessions", "https://evil.example.com", "", good)
	if r.Status != 403 || errCode(t, r) != "origin_not_allowed" {
		t.Fatalf("evil origin: %d %s", r.Status, r.Body)
	}
	// Bad pre-chat answers: 422 naming the field, nothing created.
	for _, pc := range []map[string]string{{"name": "Ada"}, {"name": "Ada", "email": "not-an-email"}, {"name": "Ada", "email": "a@b.co", "role": "admin"}} {
		r := public(t, e, "POST", "/widget/v1/sessions", shop, "", map[string]any{"key": key, "prechat": pc})
		if r.Status != 422 || errCode(t, r) != "invalid_prechat" {
			t.Fatalf("prechat %v: %d %s", pc, r.Status, r.Body)
		}
	}
	if r := public(t, e, "POST", "/widget/v1/sessions", shop, "", map[string]any{"key": "pwk_nope"}); r.Status != 404 {
		t.Fatalf("unknown key: %d", r.Status)
	}
	if n := len(e.MustDo(200, "GET", "/api/v1/conversations?type=widget", nil)["data"].([]any)); n != 0 {
		t.Fatalf("refused sessions created %d conversations", n)
	}

	r = e.DoWith("", "POST", "/widget/v1/sessions", good, http.Header{"Origin": {shop}, "User-Agent": {"TestBrowser/1.0"}})
	if r.Status != 201 || r.Header.Get("Access-Control-Allow-Origin") != shop {
		t.Fatalf("session: %d %v %s", r.Status, r.Header, r.Body)
	}
	s := r.JSON(t)
	token, convID := s["session_token"].(string), s["conversation_id"].(string)
	cfg := s["config"].(map[string]any)
	if token == "" || convID == "" || len(cfg["prechat_fields"].([]any)) != 2 {
		t.Fatalf("session answer: %v", s)
	}
	c := e.MustDo(200, "GET", "/api/v1/conversations/"+convID, nil)
	if c["type"] != "widget" || c["customer_id"] != "ada@example.com" || c["customer_name"] != "Ada Lovelace" {
		t.Fatalf("conversation: %v", c)
	}
	meta := c["metadata"].(map[string]any)
	if meta["page_url"] != shop+"/pricing" || meta["referrer"] != "https://search.example/?q=shop" || meta["user_agent"] != "TestBrowser/1.0" {
		t.Fatalf("metadata: %v", meta)
	}
	vars := map[string]string{}
	for _, v := range c["variables"].([]any) {
		vm := v.(map[string]any)
		if vm["source"] != "prechat" {
			t.Fatalf("variable source: %v", vm)
		}
		vars[vm["name"].(string)] = vm["value"].(string)
	}
	if vars["name"] != "Ada Lovelace" || vars["email"] != "ada@example.com" || len(vars) != 2 {
		t.Fatalf("variables: %v", vars)
	}

	// The token resumes the same conversation; a made-up token does not.
	r = public(t, e, "POST", "/widget/v1/sessions", shop, token, map[string]any{"key": key})
	if r.Status != 200 || r.JSON(t)["conversation_id"] != convID || r.JSON(t)["resumed"] != true {
		t.Fatalf("resume: %d %s", r.Status, r.Body)
	}
	if r := public(t, e, "POST", "/widget/v1/sessions", shop, "pws_forged", map[string]any{"key": key}); r.Status != 401 || errCode(t, r) != "session_expired" {
		t.Fatalf("forged token: %d %s", r.Status, r.Body)
	}
	// The token works only where the widget is allowed.
	if r := public(t, e, "POST", "/widget/v1/messages", "https://evil.example.com", token, map[string]string{"text": "hi"}); r.Status != 403 {
		t.Fatalf("message from other origin: %d %s", r.Status, r.Body)
	}
	// Same-origin (the demo page) is always allowed, even with an allowed_origins list.
	if r := public(t, e, "POST", "/widget/v1/messages", e.URL, token, map[string]string{"text": "hello from the demo"}); r.Status != 202 {
		t.Fatalf("same origin: %d %s", r.Status, r.Body)
	}
	// An ended conversation's token no longer works: the visitor starts a new one.
	e.MustDo(200, "POST", "/api/v1/conversations/"+convID+"/end", nil)
	if r := public(t, e, "POST", "/widget/v1/sessions", shop, token, map[string]any{"key": key}); r.Status != 401 || errCode(t, r) != "conversation_ended" {
		t.Fatalf("ended: %d %s", r.Status, r.Body)
	}
}

func TestEmptyOriginsMeansSameOriginOnly(t *testing.T) {
	testenv.EachBackend(t, testEmptyOriginsMeansSameOriginOnly)
}

func testEmptyOriginsMeansSameOriginOnly(t *testing.T, e *testenv.Env) {
	key := createWidget(t, e, map[string]any{})["public_key"].(string)
	if r := public(t, e, "POST", "/widget/v1/sessions", "https://shop.example.com", "", map[string]any{"key": key}); r.Status != 403 {
		t.Fatalf("other origin with empty list: %d", r.Status)
	}
	if r := public(t, e, "GET", "/widget/v1/config?key="+key, "https://shop.example.com", "", nil); r.Status != 403 {
		t.Fatalf("config from other origin: %d", r.Status)
	}
	if r := public(t, e, "POST", "/widget/v1/sessions", e.URL, "", map[string]any{"key": key}); r.Status != 201 {
		t.Fatalf("same origin: %d %s", r.Status, r.Body)
	}
}

func startSession(t testing.TB, e *testenv.Env, key, origin string) (token, convID string) {
	t.Helper()
	r := public(t, e, "POST", "/widget/v1/sessions", origin, "", map[string]any{"key": key})
	if r.Status != 201 {
		t.Fatalf("session: %d %s", r.Status, r.Body)
	}
	s := r.JSON(t)
	return s["session_token"].(string), s["conversation_id"].(string)
}

func TestMessagesLimits(t *testing.T) { testenv.EachBackend(t, testMessagesLimits) }

func testMessagesLimits(t *testing.T, e *testenv.Env) {
	key := createWidget(t, e, map[string]any{"allowed_origins": []string{"*"}})["public_key"].(string)
	svc := widgetService(t, e)
	l := widget.DefaultLimits
	l.MessagesPerSession, l.MessagesPerSessionBurst = rate.Every(time.Hour), 2
	svc.SetLimits(l)
	token, convID := startSession(t, e, key, "https://a.example")
	other, otherConv := startSession(t, e, key, "https://a.example")

	if r := public(t, e, "POST", "/widget/v1/messages", "https://a.example", "", map[string]string{"text": "hi"}); r.Status != 401 {
		t.Fatalf("no token: %d", r.Status)
	}
	long := strings.Repeat("é", widget.MaxMessageChars+1)
	if r := public(t, e, "POST", "/widget/v1/messages", "https://a.example", token, map[string]string{"text": long}); r.Status != 422 || errCode(t, r) != "text_too_long" {
		t.Fatalf("long text: %d %s", r.Status, r.Body)
	}
	if r := public(t, e, "POST", "/widget/v1/messages", "https://a.example", token, map[string]string{"text": strings.Repeat("x", 40_000)}); r.Status != 413 && r.Status != 422 {
		t.Fatalf("huge body: %d %s", r.Status, r.Body)
	}
	if r := public(t, e, "POST", "/widget/v1/messages", "https://a.example", token, map[string]string{"text": "  "}); r.Status != 422 {
		t.Fatalf("blank: %d", r.Status)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := openEvents(t, ctx, e, token, "")
	next(t, stream, "ready")
	for i := 0; i < 2; i++ {
		r := public(t, e, "POST", "/widget/v1/messages", "https://a.example", token, map[string]string{"text": fmt.Sprintf("question %d?", i)})
		if r.Status != 202 {
			t.Fatalf("message %d: %d %s", i, r.Status, r.Body)
		}
		if m := r.JSON(t)["message"].(map[string]any); m["role"] != "user" || m["id"] == "" {
			t.Fatalf("answer: %v", m)
		}
	}
	r := public(t, e, "POST", "/widget/v1/messages", "https://a.example", token, map[string]string{"text": "third"})
	if r.Status != 429 || errCode(t, r) != "rate_limited" {
		t.Fatalf("past the session limit: %d %s", r.Status, r.Body)
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	// Another session has its own budget, and its messages go to its own conversation only.
	if r := public(t, e, "POST", "/widget/v1/messages", "https://a.example", other, map[string]string{"text": "mine"}); r.Status != 202 {
		t.Fatalf("other session: %d", r.Status)
	}
	hist := func(tok string) []any {
		r := public(t, e, "GET", "/widget/v1/messages", "https://a.example", tok, nil)
		if r.Status != 200 {
			t.Fatalf("history: %d %s", r.Status, r.Body)
		}
		return r.JSON(t)["messages"].([]any)
	}
	for replies := 0; replies < 2; { // both questions answered (the turns run after the 202)
		if ev := next(t, stream, "message"); strings.Contains(ev.Data, `"role":"assistant"`) {
			replies++
		}
	}
	if n := len(hist(token)); n != 4 {
		t.Fatalf("history has %d messages, want two questions and two replies", n)
	}
	for _, m := range hist(token) {
		if strings.Contains(m.(map[string]any)["text"].(string), "mine") {
			t.Fatal("a session sees another conversation's message")
		}
	}
	d := e.MustDo(200, "GET", "/api/v1/conversations/"+otherConv, nil)
	if d["message_count"].(float64) < 1 || convID == otherConv {
		t.Fatalf("other conversation: %v", d)
	}
	// ?after= returns only what follows.
	all := hist(token)
	first := all[0].(map[string]any)["id"].(string)
	r = public(t, e, "GET", "/widget/v1/messages?after="+first, "https://a.example", token, nil)
	after := r.JSON(t)["messages"].([]any)
	if len(after) != 3 || after[0].(map[string]any)["id"] != all[1].(map[string]any)["id"] {
		t.Fatalf("after: %v", after)
	}

	// Per IP: every /widget/v1 call counts.
	l.PerIP, l.PerIPBurst = rate.Every(time.Hour), 3
	svc.SetLimits(l)
	var last *testenv.Response
	for i := 0; i < 4; i++ {
		last = public(t, e, "GET", "/widget/v1/config?key="+key, "https://a.example", "", nil)
	}
	if last.Status != 429 || last.Header.Get("Retry-After") == "" {
		t.Fatalf("past the IP limit: %d %v", last.Status, last.Header)
	}
}

type sseEvent struct{ Event, ID, Data string }

// openEvents connects to the event stream and returns its events as they come.
func openEvents(t testing.TB, ctx context.Context, e *testenv.Env, token, lastEventID string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/widget/v1/events?token="+token, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("events: %d %s", resp.StatusCode, b)
	}
	out := make(chan sseEvent, 256)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Event != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.Event = line[7:]
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[6:]
			}
		}
	}()
	return out
}

func next(t testing.TB, ch <-chan sseEvent, want string) sseEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream closed waiting for %s", want)
			}
			if ev.Event == want {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within 10 s", want)
		}
	}
}

func TestEventsStreamDeltasAndResume(t *testing.T) {
	testenv.EachBackend(t, testEventsStreamDeltasAndResume)
}

func testEventsStreamDeltasAndResume(t *testing.T, e *testenv.Env) {
	key := createWidget(t, e, map[string]any{})["public_key"].(string)
	token, convID := startSession(t, e, key, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := openEvents(t, ctx, e, token, "")
	next(t, ch, "ready")

	r := public(t, e, "POST", "/widget/v1/messages", "", token, map[string]string{"text": "What do you sell?"})
	if r.Status != 202 {
		t.Fatalf("post: %d %s", r.Status, r.Body)
	}
	userID := r.JSON(t)["message"].(map[string]any)["id"].(string)
	// The stream carries the visitor's message, then the reply in pieces, then the stored reply.
	ev := next(t, ch, "message")
	if ev.ID != userID {
		t.Fatalf("first message %s, want the visitor's %s", ev.ID, userID)
	}
	var streamed strings.Builder
	var reply struct{ ID, Role, Text string }
	timeout := time.After(10 * time.Second)
	for reply.ID == "" {
		select {
		case ev := <-ch:
			switch ev.Event {
			case "delta":
				var d struct{ Text string }
				json.Unmarshal([]byte(ev.Data), &d)
				streamed.WriteString(d.Text)
			case "message":
				json.Unmarshal([]byte(ev.Data), &reply)
				if ev.ID != reply.ID {
					t.Fatalf("event id %s for message %s", ev.ID, reply.ID)
				}
			}
		case <-timeout:
			t.Fatal("no reply within 10 s")
		}
	}
	if reply.Role != "assistant" || reply.Text == "" {
		t.Fatalf("reply: %+v", reply)
	}
	if streamed.String() != reply.Text {
		t.Fatalf("deltas %q do not add up to the reply %q", streamed.String(), reply.Text)
	}

	// Network loss: the stream drops; meanwhile an agent writes. Reconnecting with Last-Event-ID
	// gets exactly what was missed, nothing twice.
	cancel()
	for range ch {
	}
	e.MustDo(200, "POST", "/api/v1/conversations/"+convID+"/messages", map[string]string{"text": "An agent here <b>hi</b>", "role": "agent"})
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	ch2 := openEvents(t, ctx2, e, token, reply.ID)
	var got []sseEvent
	for {
		ev := <-ch2
		if ev.Event == "ready" {
			break
		}
		if ev.Event == "message" {
			got = append(got, ev)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0].Data, `"role":"agent"`) || !strings.Contains(got[0].Data, "<b>hi</b>") {
		t.Fatalf("resumed stream sent %v, want only the agent's message", got)
	}
	// A fresh page (no Last-Event-ID) gets the whole visible history once.
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	ch3 := openEvents(t, ctx3, e, token, "")
	ids := map[string]bool{}
	for {
		ev := <-ch3
		if ev.Event == "ready" {
			break
		}
		if ev.Event == "message" {
			if ids[ev.ID] {
				t.Fatalf("message %s sent twice", ev.ID)
			}
			ids[ev.ID] = true
		}
	}
	if len(ids) != 3 || !ids[userID] || !ids[reply.ID] {
		t.Fatalf("history: %v", ids)
	}
	// The server dropping its streams (shutdown, a proxy) ends them cleanly.
	widgetService(t, e).DropStreams()
	for range ch3 {
	}
	// The token in the query is required and checked.
	r = e.DoWith("", "GET", "/widget/v1/events?token=pws_forged", nil, nil)
	if r.Status != 401 {
		t.Fatalf("forged token on events: %d", r.Status)
	}
}
