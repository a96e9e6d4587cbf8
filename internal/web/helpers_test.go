package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/testenv"
)

const (
	testEmail    = "ops@example.com"
	testPassword = "correct horse battery"
)

// newEnv starts Parley with a dashboard user in the default workspace.
func newEnv(t testing.TB) *testenv.Env {
	t.Helper()
	e := testenv.New(t)
	if _, err := e.App.Auth.CreateUser(context.Background(), testEmail, testPassword, e.WorkspaceID); err != nil {
		t.Fatalf("create user: %v", err)
	}
	return e
}

// browser is an HTTP client with a cookie jar that does not follow redirects.
type browser struct {
	t    testing.TB
	e    *testenv.Env
	c    *http.Client
	csrf string
}

func newBrowser(t testing.TB, e *testenv.Env) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, e: e, c: &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	Status int
	Header http.Header
	Body   string
}

func (b *browser) do(method, path string, form url.Values, header http.Header) *page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.e.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := &page{Status: resp.StatusCode, Header: resp.Header, Body: string(raw)}
	if m := csrfMeta.FindStringSubmatch(p.Body); m != nil {
		b.csrf = m[1]
	}
	return p
}

func (b *browser) get(path string) *page { return b.do("GET", path, nil, nil) }

// post sends a form with the session's CSRF token.
func (b *browser) post(path string, form url.Values) *page {
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", b.csrf)
	return b.do("POST", path, form, nil)
}

var (
	csrfMeta       = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)
	loginCSRFInput = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
)

// login logs in through the form and fails the test unless it works.
func (b *browser) login(email, password string) *page {
	b.t.Helper()
	p := b.get("/login")
	m := loginCSRFInput.FindStringSubmatch(p.Body)
	if m == nil {
		b.t.Fatalf("login page has no CSRF field: %s", p.Body)
	}
	return b.do("POST", "/login", url.Values{"email": {email}, "password": {password}, "csrf_token": {m[1]}}, nil)
}

func (b *browser) mustLogin() {
	b.t.Helper()
	p := b.login(testEmail, testPassword)
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/conversations" {
		b.t.Fatalf("login: %d %s", p.Status, p.Body)
	}
	if p := b.get("/conversations"); p.Status != 200 || b.csrf == "" {
		b.t.Fatalf("conversations after login: %d", p.Status)
	}
}

// seeded is the data the scenarios run on.
type seeded struct {
	AssistantID string
	Rich        string // api conversation with tool calls, variables, cost, media, statuses
	Test        []string
	API         []string
	WhatsApp    string
	Widget      string
}

// seed creates an assistant and conversations of every type: test and api through the API,
// whatsapp and widget directly through the conversation service.
func seed(t testing.TB, e *testenv.Env) seeded {
	t.Helper()
	ctx := context.Background()
	a := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Support Bot", "system_prompt": "You are Support Bot for ACME.", "model": "builtin",
		"tools": []string{"set_variable", "transfer_to_human"}})
	s := seeded{AssistantID: a["id"].(string)}
	for i := range 3 {
		c := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": s.AssistantID, "type": "test", "customer_id": "tester-" + string(rune('a'+i))})
		s.Test = append(s.Test, c["id"].(string))
		e.MustDo(200, "POST", "/api/v1/conversations/"+c["id"].(string)+"/messages", map[string]any{"text": "hello from test " + string(rune('a'+i))})
	}
	for i := range 2 {
		c := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": s.AssistantID, "type": "api", "customer_id": "api-user-" + string(rune('a'+i)),
			"variables": map[string]any{"plan": "gold"}})
		s.API = append(s.API, c["id"].(string))
		e.MustDo(200, "POST", "/api/v1/conversations/"+c["id"].(string)+"/messages", map[string]any{"text": "my email is buyer" + string(rune('a'+i)) + "@example.com"})
	}
	s.Rich = s.API[0]
	wa, err := e.App.Conversations.Create(ctx, e.WorkspaceID, conversation.CreateInput{AssistantID: s.AssistantID, Type: conversation.TypeWhatsApp, CustomerID: "5511999990000", CustomerName: "Maria <b>Silva</b>"})
	if err != nil {
		t.Fatalf("whatsapp conversation: %v", err)
	}
	s.WhatsApp = wa.ID
	wg, err := e.App.Conversations.Create(ctx, e.WorkspaceID, conversation.CreateInput{AssistantID: s.AssistantID, Type: conversation.TypeWidget, CustomerID: "visitor-42", Metadata: map[string]string{"page_url": "https://shop.example/checkout"}})
	if err != nil {
		t.Fatalf("widget conversation: %v", err)
	}
	s.Widget = wg.ID
	// A step with a priced reply, media and a delivery status, written as a channel would.
	lat := int64(840)
	now := time.Now().UTC()
	_, _, err = e.App.Store.Apply(ctx, e.WorkspaceID, s.WhatsApp, conversation.Change{Messages: []*conversation.Message{
		{ID: ids.New(), ConversationID: s.WhatsApp, Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "audio", Text: "",
			Media: &conversation.Media{ID: "m1", MimeType: "audio/ogg", URL: "/api/v1/whatsapp/media/m1", Transcript: "I want to change my order"}, CreatedAt: now.Add(-25 * time.Hour)},
		{ID: ids.New(), ConversationID: s.WhatsApp, Role: conversation.RoleAssistant, Direction: conversation.Outbound, Type: "text", Text: "Sure, which order?",
			ExternalID: "wamid.SEEDED1", Status: "delivered", TokensIn: 1200, TokensOut: 30, CostMicros: 2500, LatencyMS: &lat, CreatedAt: now.Add(-25 * time.Hour).Add(time.Second)},
	}})
	if err != nil {
		t.Fatalf("seed whatsapp messages: %v", err)
	}
	_, _, err = e.App.Store.Apply(ctx, e.WorkspaceID, s.Rich, conversation.Change{Messages: []*conversation.Message{
		{ID: ids.New(), ConversationID: s.Rich, Role: conversation.RoleAssistant, Direction: conversation.Outbound, Type: "text", Text: "Let me look that up.",
			ToolCalls: []conversation.ToolCall{{ID: "call_1", Name: "lookup_order", Arguments: json.RawMessage(`{"order":"ACME-1234"}`), Result: `{"status":"shipped"}`}},
			TokensIn:  900, TokensOut: 40, CostMicros: 1750, LatencyMS: &lat, CreatedAt: now},
	}})
	if err != nil {
		t.Fatalf("seed rich messages: %v", err)
	}
	return s
}

var controlID = regexp.MustCompile(`<(?:input|select|textarea)[^>]*\bid="([^"]+)"`)

func conversationInput(assistantID string) conversation.CreateInput {
	return conversation.CreateInput{AssistantID: assistantID, Type: conversation.TypeAPI, CustomerID: "bulk"}
}
