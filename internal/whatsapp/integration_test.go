package whatsapp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/testenv"
	"github.com/parley-hq/parley/internal/whatsapp"
)

// graphReq is one request the fake Graph API received.
type graphReq struct {
	Method, Path, Auth string
	Body               map[string]any
}

// fakeGraph plays the Graph API: sends answer with a new wamid (or an injected error), media ids
// resolve to download URLs on the same server, and the first download of an "expiring" media id
// answers 404 as an expired URL would.
type fakeGraph struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []graphReq
	notify  chan struct{}
	sent    int
	sendErr func(body map[string]any) (int, string)
	// beforeAnswer runs before a send is answered with its wamid (to race status webhooks).
	beforeAnswer func(wamid string)
	media        map[string][]byte
	expiring     map[string]bool
}

func newFakeGraph(t testing.TB) *fakeGraph {
	f := &fakeGraph{notify: make(chan struct{}, 1), media: map[string][]byte{}, expiring: map[string]bool{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeGraph) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	req := graphReq{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization")}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &req.Body)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	select {
	case f.notify <- struct{}{}:
	default:
	}
	sendErr := f.sendErr
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/messages"):
		if req.Body["status"] == "read" {
			io.WriteString(w, `{"success":true}`)
			return
		}
		if sendErr != nil {
			if code, body := sendErr(req.Body); code != 0 {
				w.WriteHeader(code)
				io.WriteString(w, body)
				return
			}
		}
		f.mu.Lock()
		f.sent++
		id := fmt.Sprintf("wamid.OUT%d", f.sent)
		before := f.beforeAnswer
		f.mu.Unlock()
		if before != nil {
			before(id)
		}
		fmt.Fprintf(w, `{"messaging_product":"whatsapp","contacts":[{"input":%q,"wa_id":%q}],"messages":[{"id":%q}]}`, req.Body["to"], req.Body["to"], id)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/dl/"):
		id := strings.TrimPrefix(r.URL.Path, "/dl/")
		f.mu.Lock()
		data, ok := f.media[id]
		expired := f.expiring[id]
		delete(f.expiring, id)
		f.mu.Unlock()
		if !ok || expired || r.Header.Get("Authorization") != "Bearer token-abc" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(data)
	case r.Method == http.MethodGet && r.URL.Query().Get("fields") != "":
		io.WriteString(w, `{"display_phone_number":"+1 555-078-3881","verified_name":"Shop","quality_rating":"GREEN","messaging_limit_tier":"TIER_1K","id":"`+pnid+`"}`)
	case r.Method == http.MethodGet:
		id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		f.mu.Lock()
		data, ok := f.media[id]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"message":"Unsupported get request","code":100}}`)
			return
		}
		fmt.Fprintf(w, `{"messaging_product":"whatsapp","url":"%s/dl/%s?ts=%d","mime_type":"image/jpeg","sha256":"x","file_size":"%d","id":%q}`,
			f.URL, id, time.Now().UnixNano(), len(data), id)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (f *fakeGraph) requests() []graphReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]graphReq(nil), f.reqs...)
}

// waitReq waits for a request matching pred and returns it.
func (f *fakeGraph) waitReq(t *testing.T, what string, pred func(graphReq) bool) graphReq {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		for _, r := range f.requests() {
			if pred(r) {
				return r
			}
		}
		select {
		case <-f.notify:
		case <-deadline:
			t.Fatalf("the fake Graph API never received %s; got %+v", what, f.requests())
		}
	}
}

func isText(to string) func(graphReq) bool {
	return func(r graphReq) bool { return r.Method == "POST" && r.Body["type"] == "text" && r.Body["to"] == to }
}

const (
	pnid      = "106540352242922"
	appSecret = "app-secret-xyz"
	token     = "token-abc"
	verifyTok = "verify-me"
)

type fixture struct {
	env      *testenv.Env
	graph    *fakeGraph
	senderID string
	// kept: deliveries take the burst path, and deliver waits until the drainer processed them.
	kept bool
}

func newFixture(t *testing.T, configure ...func(*app.Config)) *fixture {
	t.Helper()
	graph := newFakeGraph(t)
	env := testenv.New(t, configure...)
	return &fixture{env: env, graph: graph, senderID: createSender(t, env, graph.URL)}
}

func createSender(t *testing.T, env *testenv.Env, graphURL string) string {
	t.Helper()
	asst := env.CreateAssistant("Shop", "You are the shop's helpful assistant.")
	s := env.MustDo(http.StatusCreated, "POST", "/api/v1/whatsapp/senders", map[string]any{
		"phone_number_id": pnid, "display_phone_number": "+1 555 078 3881", "access_token": token, "app_secret": appSecret,
		"verify_token": verifyTok, "assistant_id": asst, "graph_api_url": graphURL + "/v21.0/",
	})
	return s["id"].(string)
}

func (fx *fixture) deliver(t *testing.T, body []byte) *testenv.Response {
	t.Helper()
	r := fx.env.DoWith("", "POST", "/webhooks/whatsapp", body, http.Header{"X-Hub-Signature-256": {whatsapp.Sign(body, appSecret)}})
	if fx.kept && r.Status == http.StatusOK {
		waitDrained(t, fx.env)
	}
	return r
}

// eachBackend runs a test on SQLite and, when PARLEY_TEST_POSTGRES_URL is set, on PostgreSQL.
func eachBackend(t *testing.T, fn func(t *testing.T, fx *fixture)) {
	for _, b := range testenv.Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, newFixture(t, b.Configure(t))) })
	}
}

// waitFor waits, on the live-event hub (a signal, not a sleep), until cond holds.
func waitFor(t *testing.T, env *testenv.Env, what string, cond func() bool) {
	t.Helper()
	sub := env.App.Events.Subscribe(env.WorkspaceID, "")
	defer sub.Close()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-sub.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// delivery builds a Meta webhook body by hand (so escapes stay exactly as written) from changes.
func delivery(entries ...string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[` + strings.Join(entries, ",") + `]}`)
}

func entry(id string, changes ...string) string {
	return `{"id":"` + id + `","changes":[` + strings.Join(changes, ",") + `]}`
}

func messagesChange(waID, name string, msgs ...string) string {
	return `{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"` + pnid + `"},` +
		`"contacts":[{"profile":{"name":"` + name + `"},"wa_id":"` + waID + `"}],"messages":[` + strings.Join(msgs, ",") + `]},"field":"messages"}`
}

func statusChange(statuses ...string) string {
	return `{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"` + pnid + `"},` +
		`"statuses":[` + strings.Join(statuses, ",") + `]},"field":"messages"}`
}

func ts(t time.Time) string { return fmt.Sprint(t.Unix()) }

func textMsg(waID, wamid, body string, at time.Time) string {
	return `{"from":"` + waID + `","id":"` + wamid + `","timestamp":"` + ts(at) + `","type":"text","text":{"body":"` + body + `"}}`
}

// conversationOf returns the detail of the customer's conversation ("" id when none).
func conversationOf(t *testing.T, env *testenv.Env, waID string) map[string]any {
	t.Helper()
	list := env.MustDo(http.StatusOK, "GET", "/api/v1/conversations?type=whatsapp&customer="+waID, nil)
	data := list["data"].([]any)
	if len(data) == 0 {
		return nil
	}
	if len(data) > 1 {
		t.Fatalf("customer %s has %d conversations, want 1", waID, len(data))
	}
	id := data[0].(map[string]any)["id"].(string)
	return env.MustDo(http.StatusOK, "GET", "/api/v1/conversations/"+id, nil)
}

func messagesOf(d map[string]any) []map[string]any {
	var out []map[string]any
	if d == nil {
		return out
	}
	for _, m := range d["messages"].([]any) {
		out = append(out, m.(map[string]any))
	}
	return out
}

func jobCount(t *testing.T, env *testenv.Env) int {
	t.Helper()
	var n int
	if err := env.App.Store.DB().QueryRow(`SELECT COUNT(*) FROM river_job`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestVerifyHandshake(t *testing.T) {
	fx := newFixture(t)
	cases := []struct {
		query  string
		status int
		body   string
	}{
		{"hub.mode=subscribe&hub.verify_token=" + verifyTok + "&hub.challenge=1158201444", 200, "1158201444"},
		{"hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1", 403, ""},
		{"hub.mode=subscribe&hub.challenge=1", 403, ""},
		{"hub.verify_token=" + verifyTok + "&hub.challenge=1", 403, ""},
	}
	for _, c := range cases {
		r := fx.env.DoWith("", "GET", "/webhooks/whatsapp?"+c.query, nil, nil)
		if r.Status != c.status || (c.body != "" && string(r.Body) != c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.query, r.Status, r.Body, c.status, c.body)
		}
	}
}

func TestForgedDeliveriesChangeNothing(t *testing.T) { eachBackend(t, forgedDeliveriesChangeNothing) }

func forgedDeliveriesChangeNothing(t *testing.T, fx *fixture) {
	body := delivery(entry("1", messagesChange("34600111222", "Ana", textMsg("34600111222", "wamid.F1", "hi", time.Now()))))
	jobsBefore := jobCount(t, fx.env)
	cases := []struct {
		name string
		hdr  http.Header
		body []byte
	}{
		{"missing signature", nil, body},
		{"wrong secret", http.Header{"X-Hub-Signature-256": {whatsapp.Sign(body, "not-the-secret")}}, body},
		{"tampered body", http.Header{"X-Hub-Signature-256": {whatsapp.Sign(body, appSecret)}}, []byte(strings.Replace(string(body), `"hi"`, `"ho"`, 1))},
		{"malformed header", http.Header{"X-Hub-Signature-256": {"sha256=zz"}}, body},
		{"sha1 only", http.Header{"X-Hub-Signature": {"sha1=" + strings.Repeat("0", 40)}}, body},
	}
	for _, c := range cases {
		r := fx.env.DoWith("", "POST", "/webhooks/whatsapp", c.body, c.hdr)
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", c.name, r.Status)
		}
	}
	// Broken JSON: 400 when signed by a configured app, 401 when not.
	broken := []byte(`{"object":"whatsapp_business_account","entry":[`)
	if r := fx.deliver(t, broken); r.Status != http.StatusBadRequest {
		t.Errorf("signed broken JSON: %d, want 400", r.Status)
	}
	if r := fx.env.DoWith("", "POST", "/webhooks/whatsapp", broken, http.Header{"X-Hub-Signature-256": {whatsapp.Sign(broken, "x")}}); r.Status != http.StatusUnauthorized {
		t.Errorf("unsigned broken JSON: %d, want 401", r.Status)
	}
	if d := conversationOf(t, fx.env, "34600111222"); d != nil {
		t.Fatalf("a forged delivery stored a conversation: %v", d)
	}
	if n := jobCount(t, fx.env); n != jobsBefore {
		t.Fatalf("forged deliveries queued %d jobs", n-jobsBefore)
	}
	metrics := string(fx.env.DoWith("", "GET", "/metrics", nil, nil).Body)
	for _, want := range []string{`parley_whatsapp_webhook_deliveries_total{result="bad_signature"} 6`, `parley_whatsapp_webhook_deliveries_total{result="bad_json"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestEveryTypeBatchedStoredOnceAndReplaySafe(t *testing.T) {
	eachBackend(t, everyTypeBatchedStoredOnceAndReplaySafe)
}

func everyTypeBatchedStoredOnceAndReplaySafe(t *testing.T, fx *fixture) {
	for _, id := range []string{"img-1", "aud-1", "vid-1", "doc-1", "stk-1"} {
		fx.graph.media[id] = []byte("bytes of " + id)
	}
	now := time.Now()
	a, b := "34600111222", "5511988887777"
	m := func(wamid, typ, fields string) string {
		return `{"from":"` + a + `","id":"` + wamid + `","timestamp":"` + ts(now) + `","type":"` + typ + `",` + fields + `}`
	}
	// Two entries, several changes, two customers, a repeated id inside the batch, \uXXXX and \/ escapes.
	body := delivery(
		entry("8856996819413533",
			messagesChange(a, "Ana Mar\u00eda",
				m("wamid.T1", "text", `"text":{"body":"Hola, \u00bfd\u00f3nde est\u00e1 mi pedido? Ver https:\/\/shop.example\/o\/1 \ud83d\ude00"}`),
				m("wamid.T1", "text", `"text":{"body":"Hola, \u00bfd\u00f3nde est\u00e1 mi pedido? Ver https:\/\/shop.example\/o\/1 \ud83d\ude00"}`),
				m("wamid.I1", "image", `"image":{"caption":"el recibo","mime_type":"image/jpeg","sha256":"x","id":"img-1"}`),
				m("wamid.A1", "audio", `"audio":{"mime_type":"audio/ogg; codecs=opus","sha256":"x","id":"aud-1","voice":true}`),
				m("wamid.V1", "video", `"video":{"mime_type":"video/mp4","sha256":"x","id":"vid-1"}`),
				m("wamid.D1", "document", `"context":{"forwarded":true},"document":{"caption":"factura","filename":"factura.pdf","mime_type":"application/pdf","sha256":"x","id":"doc-1"}`),
				m("wamid.S1", "sticker", `"sticker":{"mime_type":"image/webp","sha256":"x","id":"stk-1","animated":false}`),
			),
			messagesChange(a, "Ana Mar\u00eda",
				m("wamid.L1", "location", `"location":{"latitude":40.4168,"longitude":-3.7038,"name":"Sol","address":"Puerta del Sol, Madrid"}`),
				m("wamid.C1", "contacts", `"contacts":[{"name":{"formatted_name":"Chandler Bing","first_name":"Chandler"},"phones":[{"phone":"+1 555-555-5555","type":"CELL"}]}]`),
				m("wamid.B1", "interactive", `"context":{"from":"15550783881","id":"wamid.OUTX"},"interactive":{"type":"button_reply","button_reply":{"id":"yes","title":"S\u00ed"}}`),
				m("wamid.LR1", "interactive", `"interactive":{"type":"list_reply","list_reply":{"id":"tue","title":"Martes","description":"9:00"}}`),
				m("wamid.Q1", "button", `"button":{"text":"No","payload":"No-Button-Payload"}`),
				m("wamid.R1", "reaction", `"reaction":{"message_id":"wamid.T1","emoji":"\u2764\ufe0f"}`),
				m("wamid.RF1", "text", `"referral":{"source_url":"https:\/\/fb.me\/ad","source_type":"ad","headline":"Rebajas"},"text":{"body":"Vi el anuncio"}`),
				m("wamid.U1", "unsupported", `"errors":[{"code":131051,"title":"Message type unknown","error_data":{"details":"Message type is currently not supported."}}],"unsupported":{"type":"pool"}`),
			)),
		entry("102290129340398",
			messagesChange(b, "Jo\u00e3o", textMsg(b, "wamid.T2", "Ol\u00e1", now))),
	)
	if !strings.Contains(string(body), `\u00bf`) || !strings.Contains(string(body), `\/`) {
		t.Fatal("test body lost its escapes")
	}
	start := time.Now()
	r := fx.deliver(t, body)
	if r.Status != http.StatusOK {
		t.Fatalf("delivery: %d %s", r.Status, r.Body)
	}
	t.Logf("batched delivery of 16 messages answered in %v", time.Since(start))

	want := []struct{ ext, typ, text string }{
		{"wamid.T1", "text", "Hola, ¿dónde está mi pedido? Ver https://shop.example/o/1 😀"},
		{"wamid.I1", "image", "el recibo"},
		{"wamid.A1", "audio", ""},
		{"wamid.V1", "video", ""},
		{"wamid.D1", "document", "factura"},
		{"wamid.S1", "sticker", ""},
		{"wamid.L1", "location", "Location: Sol, Puerta del Sol, Madrid, (40.4168, -3.7038)"},
		{"wamid.C1", "contacts", "Shared contacts: Chandler Bing (+1 555-555-5555)"},
		{"wamid.B1", "interactive", "Sí"},
		{"wamid.LR1", "interactive", "Martes — 9:00"},
		{"wamid.Q1", "button", "No"},
		{"wamid.R1", "reaction", "❤️"},
		{"wamid.RF1", "text", "Vi el anuncio"},
		{"wamid.U1", "unsupported", "[Message type unknown: Message type is currently not supported.]"},
	}
	check := func() map[string]any {
		d := conversationOf(t, fx.env, a)
		if d == nil {
			t.Fatal("no conversation for the customer")
		}
		if d["customer_name"] != "Ana María" || d["customer_id"] != a || d["type"] != "whatsapp" {
			t.Fatalf("conversation %v %v %v", d["customer_name"], d["customer_id"], d["type"])
		}
		var inbound []map[string]any
		for _, m := range messagesOf(d) {
			if m["direction"] == "inbound" {
				inbound = append(inbound, m)
			}
		}
		if len(inbound) != len(want) {
			t.Fatalf("%d inbound messages stored, want %d", len(inbound), len(want))
		}
		for i, w := range want {
			got := inbound[i]
			if got["external_id"] != w.ext || got["type"] != w.typ || got["text"] != w.text || got["role"] != "user" {
				t.Errorf("message %d: %v %v %q, want %v %v %q", i, got["external_id"], got["type"], got["text"], w.ext, w.typ, w.text)
			}
		}
		return d
	}
	d := check()
	if w := d["window"].(map[string]any); w["open"] != true {
		t.Fatalf("window %v", w)
	}
	// Each message keeps Meta's payload as delivered.
	first := messagesOf(d)[0]
	pl := fx.env.Do("GET", "/api/v1/whatsapp/messages/"+first["id"].(string)+"/payload", nil)
	if pl.Status != 200 || !json.Valid(pl.Body) || !strings.Contains(string(pl.Body), `"wamid.T1"`) || !strings.Contains(string(pl.Body), `https:\/\/shop.example`) {
		t.Fatalf("payload: %d %s", pl.Status, pl.Body)
	}
	if dj := conversationOf(t, fx.env, b); dj == nil || len(messagesOf(dj)) == 0 || messagesOf(dj)[0]["text"] != "Olá" {
		t.Fatalf("second entry's customer: %v", dj)
	}
	// Media are fetched and stored; the answer comes after them.
	waitFor(t, fx.env, "every attachment stored", func() bool {
		for _, m := range messagesOf(conversationOf(t, fx.env, a)) {
			if med, ok := m["media"].(map[string]any); ok && med["url"] == "" {
				return false
			}
		}
		return true
	})
	fx.graph.waitReq(t, "the answer to the batch", isText(a))
	fx.graph.waitReq(t, "the answer to the second customer", isText(b))

	// Meta retries: the same delivery again stores nothing and queues nothing.
	jobsBefore := jobCount(t, fx.env)
	if r := fx.deliver(t, body); r.Status != http.StatusOK {
		t.Fatalf("replay: %d", r.Status)
	}
	check()
	if n := jobCount(t, fx.env); n != jobsBefore {
		t.Fatalf("the replay queued %d jobs", n-jobsBefore)
	}
}

func TestAssistantReplyReachesGraphAPI(t *testing.T) { eachBackend(t, assistantReplyReachesGraphAPI) }

func assistantReplyReachesGraphAPI(t *testing.T, fx *fixture) {
	wa := "14155550100"
	start := time.Now()
	if r := fx.deliver(t, delivery(entry("1", messagesChange(wa, "Kerry", textMsg(wa, "wamid.HELLO", "Hello, what are your opening hours?", time.Now()))))); r.Status != 200 {
		t.Fatalf("delivery %d %s", r.Status, r.Body)
	}
	t.Logf("delivery answered in %v", time.Since(start))
	send := fx.graph.waitReq(t, "the assistant's reply", isText(wa))
	if send.Auth != "Bearer "+token {
		t.Fatalf("authorization %q", send.Auth)
	}
	if send.Path != "/v21.0/"+pnid+"/messages" || send.Body["messaging_product"] != "whatsapp" {
		t.Fatalf("request %s %v", send.Path, send.Body)
	}
	read := fx.graph.waitReq(t, "mark as read", func(r graphReq) bool { return r.Body["status"] == "read" })
	if read.Body["message_id"] != "wamid.HELLO" {
		t.Fatalf("marked read %v", read.Body)
	}
	var reply map[string]any
	waitFor(t, fx.env, "the reply marked sent", func() bool {
		for _, m := range messagesOf(conversationOf(t, fx.env, wa)) {
			if m["role"] == "assistant" && m["status"] == "sent" {
				reply = m
				return true
			}
		}
		return false
	})
	text := send.Body["text"].(map[string]any)["body"]
	if reply["text"] != text || !strings.HasPrefix(reply["external_id"].(string), "wamid.OUT") {
		t.Fatalf("stored reply %v, sent %q", reply, text)
	}
}

func TestMediaFetchedWithFreshURL(t *testing.T) { eachBackend(t, mediaFetchedWithFreshURL) }

func mediaFetchedWithFreshURL(t *testing.T, fx *fixture) {
	content := []byte("\xff\xd8\xff\xe0 a jpeg, pretend")
	fx.graph.media["media-77"] = content
	fx.graph.expiring["media-77"] = true // the first URL has expired: 404
	wa := "447700900123"
	img := `{"from":"` + wa + `","id":"wamid.IMG","timestamp":"` + ts(time.Now()) + `","type":"image","image":{"caption":"look","mime_type":"image/jpeg","sha256":"x","id":"media-77"}}`
	if r := fx.deliver(t, delivery(entry("1", messagesChange(wa, "Sam", img)))); r.Status != 200 {
		t.Fatalf("delivery %d", r.Status)
	}
	var media map[string]any
	waitFor(t, fx.env, "the image stored", func() bool {
		ms := messagesOf(conversationOf(t, fx.env, wa))
		if len(ms) == 0 {
			return false
		}
		media, _ = ms[0]["media"].(map[string]any)
		return media != nil && media["url"] != ""
	})
	if media["id"] != "media-77" || media["mime_type"] != "image/jpeg" {
		t.Fatalf("media %v", media)
	}
	lookups := 0
	for _, r := range fx.graph.requests() {
		if r.Method == "GET" && r.Path == "/v21.0/media-77" {
			lookups++
			if r.Auth != "Bearer "+token {
				t.Fatalf("media lookup auth %q", r.Auth)
			}
		}
	}
	if lookups != 2 {
		t.Fatalf("%d media URL lookups, want 2 (a fresh URL after the 404)", lookups)
	}
	got := fx.env.Do("GET", media["url"].(string), nil)
	if got.Status != 200 || string(got.Body) != string(content) {
		t.Fatalf("stored media: %d %q", got.Status, got.Body)
	}
	// Another workspace cannot read it.
	key, _ := fx.env.NewKey("other")
	if r := fx.env.DoWith(key, "GET", media["url"].(string), nil, nil); r.Status != 404 {
		t.Fatalf("other workspace: %d", r.Status)
	}
	fx.graph.waitReq(t, "the answer after the image", isText(wa))
}

// sentReply delivers a customer message and returns the wamid of the assistant's sent answer.
func sentReply(t *testing.T, fx *fixture, wa string) (convID, wamid string) {
	t.Helper()
	if r := fx.deliver(t, delivery(entry("1", messagesChange(wa, "Lee", textMsg(wa, "wamid.IN"+wa, "hello there", time.Now()))))); r.Status != 200 {
		t.Fatalf("delivery %d", r.Status)
	}
	waitFor(t, fx.env, "the reply sent", func() bool {
		d := conversationOf(t, fx.env, wa)
		for _, m := range messagesOf(d) {
			if m["role"] == "assistant" && m["status"] == "sent" {
				convID, wamid = d["id"].(string), m["external_id"].(string)
				return true
			}
		}
		return false
	})
	return convID, wamid
}

func status(wamid, st, recipient string, extra string) string {
	s := `{"id":"` + wamid + `","status":"` + st + `","timestamp":"` + ts(time.Now()) + `","recipient_id":"` + recipient + `"`
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

func replyOf(t *testing.T, env *testenv.Env, wa, wamid string) map[string]any {
	for _, m := range messagesOf(conversationOf(t, env, wa)) {
		if m["external_id"] == wamid {
			return m
		}
	}
	t.Fatalf("no message %s", wamid)
	return nil
}

func TestStatusesOutOfOrderEndAtLatestAndPricedOnce(t *testing.T) {
	eachBackend(t, statusesOutOfOrderEndAtLatestAndPricedOnce)
}

func statusesOutOfOrderEndAtLatestAndPricedOnce(t *testing.T, fx *fixture) {
	wa := "34611000111"
	_, wamid := sentReply(t, fx, wa)
	pricing := `"pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"}`
	// read arrives first, then delivered (with pricing), then sent (with pricing again), then read again.
	for _, st := range []string{status(wamid, "read", wa, ""), status(wamid, "delivered", wa, pricing), status(wamid, "sent", wa, pricing)} {
		if r := fx.deliver(t, delivery(entry("1", statusChange(st)))); r.Status != 200 {
			t.Fatalf("status delivery %d", r.Status)
		}
		if got := replyOf(t, fx.env, wa, wamid)["status"]; got != "read" {
			t.Fatalf("status %v after out-of-order reports, want read", got)
		}
	}
	d := conversationOf(t, fx.env, wa)
	want := float64(whatsapp.Prices["marketing"]) / 1e6
	msgCost := replyOf(t, fx.env, wa, wamid)["cost_usd"].(float64)
	if msgCost != want || d["cost_usd"].(float64) != want {
		t.Fatalf("cost: message %v conversation %v, want %v once", msgCost, d["cost_usd"], want)
	}
	// played (voice) ranks above read; deleted is ignored; an unknown wamid changes nothing.
	fx.deliver(t, delivery(entry("1", statusChange(status(wamid, "deleted", wa, ""), status("wamid.UNKNOWN", "read", wa, ""), status(wamid, "played", wa, "")))))
	if got := replyOf(t, fx.env, wa, wamid)["status"]; got != "played" {
		t.Fatalf("status %v, want played", got)
	}
}

func TestFailed131047Recorded(t *testing.T) { eachBackend(t, failed131047Recorded) }

func failed131047Recorded(t *testing.T, fx *fixture) {
	wa := "34622000222"
	_, wamid := sentReply(t, fx, wa)
	failed := status(wamid, "failed", wa, `"errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message","error_data":{"details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."},"href":"https:\/\/developers.facebook.com\/docs\/whatsapp\/cloud-api\/support\/error-codes\/"}]`)
	if r := fx.deliver(t, delivery(entry("1", statusChange(failed)))); r.Status != 200 {
		t.Fatalf("%d", r.Status)
	}
	m := replyOf(t, fx.env, wa, wamid)
	e, _ := m["error"].(map[string]any)
	if m["status"] != "failed" || e["code"] != "131047" || e["title"] != "Re-engagement message" || !strings.Contains(e["details"].(string), "24 hours") {
		t.Fatalf("failed message %v", m)
	}
	// A late "delivered" does not resurrect it.
	fx.deliver(t, delivery(entry("1", statusChange(status(wamid, "delivered", wa, "")))))
	if got := replyOf(t, fx.env, wa, wamid)["status"]; got != "failed" {
		t.Fatalf("status %v after a late delivered", got)
	}
}

func TestWindowClosedRefusesFreeFormAcceptsTemplate(t *testing.T) {
	eachBackend(t, windowClosedRefusesFreeFormAcceptsTemplate)
}

func windowClosedRefusesFreeFormAcceptsTemplate(t *testing.T, fx *fixture) {
	wa := "34633000333"
	old := time.Now().Add(-25 * time.Hour)
	if r := fx.deliver(t, delivery(entry("1", messagesChange(wa, "Max", textMsg(wa, "wamid.OLD", "are you there?", old))))); r.Status != 200 {
		t.Fatalf("%d", r.Status)
	}
	// The AI's answer is not sent outside the window: it is recorded as failed, nothing reaches Meta.
	var convID string
	waitFor(t, fx.env, "the AI's answer refused", func() bool {
		d := conversationOf(t, fx.env, wa)
		for _, m := range messagesOf(d) {
			if m["role"] == "assistant" && m["status"] == "failed" {
				convID = d["id"].(string)
				return m["error"].(map[string]any)["code"] == "window_closed"
			}
		}
		return false
	})
	d := conversationOf(t, fx.env, wa)
	if w := d["window"].(map[string]any); w["open"] != false {
		t.Fatalf("window %v", w)
	}
	// The list filters on the window.
	fresh := "34633000999"
	fx.deliver(t, delivery(entry("1", messagesChange(fresh, "New", textMsg(fresh, "wamid.NEW", "hi", time.Now())))))
	ids := func(window string) string {
		var out []string
		for _, c := range fx.env.MustDo(200, "GET", "/api/v1/conversations?type=whatsapp&window="+window, nil)["data"].([]any) {
			out = append(out, c.(map[string]any)["customer_id"].(string))
		}
		return strings.Join(out, ",")
	}
	if open, closed := ids("open"), ids("closed"); open != fresh || closed != wa {
		t.Fatalf("window=open: %q, window=closed: %q", open, closed)
	}
	if r := fx.env.Do("GET", "/api/v1/conversations?window=ajar", nil); r.Status != 400 {
		t.Fatalf("bad window filter: %d", r.Status)
	}
	r := fx.env.Do("POST", "/api/v1/conversations/"+convID+"/messages", map[string]any{"text": "Hi, an agent here", "role": "agent"})
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), `"window_closed"`) {
		t.Fatalf("agent message: %d %s", r.Status, r.Body)
	}
	r = fx.env.Do("POST", "/api/v1/whatsapp/messages", map[string]any{"sender_id": fx.senderID, "to": wa, "text": "free form"})
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), `"window_closed"`) {
		t.Fatalf("free-form send: %d %s", r.Status, r.Body)
	}
	before := len(messagesOf(conversationOf(t, fx.env, wa)))
	fx.env.MustDo(http.StatusCreated, "POST", "/api/v1/whatsapp/templates", map[string]any{
		"name": "order_update", "language": "en_US", "category": "utility",
		"components": []any{map[string]any{"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped."}},
	})
	res := fx.env.MustDo(http.StatusCreated, "POST", "/api/v1/whatsapp/messages", map[string]any{
		"sender_id": fx.senderID, "to": "+34 633 000 333",
		"template": map[string]any{"name": "order_update", "language": map[string]any{"code": "en_US"}, "components": []any{
			map[string]any{"type": "body", "parameters": []any{map[string]any{"type": "text", "text": "Max"}, map[string]any{"type": "text", "text": "A-1001"}}}}},
		"variables": map[string]any{"order_id": "A-1001", "campaign": "shipping"},
	})
	if res["conversation_id"] != convID {
		t.Fatalf("template went to conversation %v, want the customer's %s", res["conversation_id"], convID)
	}
	sent := fx.graph.waitReq(t, "the template", func(r graphReq) bool { return r.Body["type"] == "template" })
	tpl := sent.Body["template"].(map[string]any)
	if tpl["name"] != "order_update" || sent.Body["to"] != wa || tpl["language"].(map[string]any)["code"] != "en_US" {
		t.Fatalf("template request %v", sent.Body)
	}
	waitFor(t, fx.env, "the template sent", func() bool {
		for _, m := range messagesOf(conversationOf(t, fx.env, wa)) {
			if m["type"] == "template" && m["status"] == "sent" {
				return m["text"] == "Hi Max, your order A-1001 has shipped." && m["direction"] == "outbound"
			}
		}
		return false
	})
	d = conversationOf(t, fx.env, wa)
	if n := len(messagesOf(d)); n != before+1 {
		t.Fatalf("%d messages, want %d", n, before+1)
	}
	vars := map[string]string{}
	for _, v := range d["variables"].([]any) {
		vm := v.(map[string]any)
		if vm["source"] != "flow" {
			t.Fatalf("variable %v source %v, want flow", vm["name"], vm["source"])
		}
		vars[vm["name"].(string)] = vm["value"].(string)
	}
	if vars["order_id"] != "A-1001" || vars["campaign"] != "shipping" {
		t.Fatalf("variables %v", vars)
	}
	for _, r := range fx.graph.requests() {
		if r.Body["type"] == "text" && r.Body["to"] == wa {
			t.Fatalf("free-form text reached Meta outside the window: %v", r.Body)
		}
	}
}

func TestAgentMessageSentInsideWindow(t *testing.T) { eachBackend(t, agentMessageSentInsideWindow) }

func agentMessageSentInsideWindow(t *testing.T, fx *fixture) {
	wa := "34644000444"
	convID, _ := sentReply(t, fx, wa)
	// Over 4,096 characters: sent as several messages, in order.
	long := strings.Repeat("Paragraph of the terms and conditions. ", 150) // 5,850 characters
	fx.env.MustDo(http.StatusOK, "POST", "/api/v1/conversations/"+convID+"/messages", map[string]any{"text": long, "role": "agent"})
	longParts := func() []string {
		var parts []string
		for _, r := range fx.graph.requests() {
			if r.Body["type"] == "text" && strings.HasPrefix(r.Body["text"].(map[string]any)["body"].(string), "Paragraph") {
				parts = append(parts, r.Body["text"].(map[string]any)["body"].(string))
			}
		}
		return parts
	}
	fx.graph.waitReq(t, "the long message's second part", func(graphReq) bool { return len(longParts()) == 2 })
	parts := longParts()
	if len([]rune(parts[0])) > whatsapp.MaxTextLength || strings.TrimSpace(strings.Join(parts, " ")) != strings.TrimSpace(long) {
		t.Fatalf("split into %d and %d characters", len([]rune(parts[0])), len([]rune(parts[1])))
	}
	r := fx.env.MustDo(http.StatusOK, "POST", "/api/v1/conversations/"+convID+"/messages", map[string]any{"text": "Hi, Sofia from support here.", "role": "agent"})
	if m := r["messages"].([]any)[0].(map[string]any); m["status"] != "queued" {
		t.Fatalf("agent message %v", m)
	}
	fx.graph.waitReq(t, "the agent's message", func(r graphReq) bool {
		return r.Body["type"] == "text" && r.Body["text"].(map[string]any)["body"] == "Hi, Sofia from support here."
	})
	// Quick agent messages reach the customer in the order they were written.
	for i := 1; i <= 6; i++ {
		fx.env.MustDo(http.StatusOK, "POST", "/api/v1/conversations/"+convID+"/messages", map[string]any{"text": fmt.Sprintf("step %d", i), "role": "agent"})
	}
	steps := func() []string {
		var out []string
		for _, r := range fx.graph.requests() {
			if r.Body["type"] == "text" {
				if b := r.Body["text"].(map[string]any)["body"].(string); strings.HasPrefix(b, "step ") {
					out = append(out, b)
				}
			}
		}
		return out
	}
	fx.graph.waitReq(t, "six steps", func(graphReq) bool { return len(steps()) == 6 })
	if got := strings.Join(steps(), ","); got != "step 1,step 2,step 3,step 4,step 5,step 6" {
		t.Fatalf("sent in the order %s", got)
	}
	// Media and interactive messages from automations, inside the window.
	fx.env.MustDo(http.StatusCreated, "POST", "/api/v1/whatsapp/messages", map[string]any{"sender_id": fx.senderID, "to": wa,
		"media": map[string]any{"type": "document", "link": "https://files.example/invoice.pdf", "caption": "Your invoice", "filename": "invoice.pdf"}})
	doc := fx.graph.waitReq(t, "the document", func(r graphReq) bool { return r.Body["type"] == "document" })
	if d := doc.Body["document"].(map[string]any); d["link"] != "https://files.example/invoice.pdf" || d["filename"] != "invoice.pdf" || d["caption"] != "Your invoice" {
		t.Fatalf("document %v", doc.Body)
	}
	fx.env.MustDo(http.StatusCreated, "POST", "/api/v1/whatsapp/messages", map[string]any{"sender_id": fx.senderID, "to": wa,
		"interactive": map[string]any{"type": "button", "body": map[string]any{"text": "Did this help?"},
			"action": map[string]any{"buttons": []any{map[string]any{"type": "reply", "reply": map[string]any{"id": "yes", "title": "Yes"}}}}}})
	btn := fx.graph.waitReq(t, "the buttons", func(r graphReq) bool { return r.Body["type"] == "interactive" })
	if btn.Body["interactive"].(map[string]any)["type"] != "button" || btn.Body["to"] != wa {
		t.Fatalf("interactive %v", btn.Body)
	}
	for _, bad := range []map[string]any{
		{"sender_id": fx.senderID, "to": wa, "media": map[string]any{"type": "hologram", "link": "https://x.y/z"}},
		{"sender_id": fx.senderID, "to": wa, "media": map[string]any{"type": "image"}},
		{"sender_id": fx.senderID, "to": wa, "text": "a", "media": map[string]any{"type": "image", "link": "https://x.y/z"}},
		{"sender_id": fx.senderID, "to": wa, "interactive": map[string]any{"body": "no type"}},
	} {
		if r := fx.env.Do("POST", "/api/v1/whatsapp/messages", bad); r.Status != 422 {
			t.Errorf("%v: %d %s", bad, r.Status, r.Body)
		}
	}
	// A new customer has no open window: free-form is refused and no conversation is created.
	if r := fx.env.Do("POST", "/api/v1/whatsapp/messages", map[string]any{"sender_id": fx.senderID, "to": "34600999999", "text": "hi"}); r.Status != 409 {
		t.Fatalf("free-form to a new customer: %d", r.Status)
	}
	if d := conversationOf(t, fx.env, "34600999999"); d != nil {
		t.Fatal("a refused send created a conversation")
	}
}

func TestPermanentAndTokenErrors(t *testing.T) {
	fx := newFixture(t)
	fx.graph.mu.Lock()
	fx.graph.sendErr = func(body map[string]any) (int, string) {
		if body["to"] == "34655000555" {
			return 400, `{"error":{"message":"(#131026) Message undeliverable","type":"OAuthException","code":131026,"error_data":{"messaging_product":"whatsapp","details":"Receiver is incapable of receiving this message"}}}`
		}
		return 401, `{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463}}`
	}
	fx.graph.mu.Unlock()
	for _, c := range []struct{ wa, code string }{{"34655000555", "131026"}, {"34666000666", "190"}} {
		fx.deliver(t, delivery(entry("1", messagesChange(c.wa, "X", textMsg(c.wa, "wamid.E"+c.wa, "hello", time.Now())))))
		waitFor(t, fx.env, "the reply failed with "+c.code, func() bool {
			for _, m := range messagesOf(conversationOf(t, fx.env, c.wa)) {
				if m["role"] == "assistant" && m["status"] == "failed" {
					return m["error"].(map[string]any)["code"] == c.code
				}
			}
			return false
		})
	}
	s := fx.env.MustDo(200, "GET", "/api/v1/whatsapp/senders/"+fx.senderID, nil)
	if !strings.Contains(s["last_error"].(string), "190") {
		t.Fatalf("sender last_error %q", s["last_error"])
	}
}

func TestThrottledSendRetried(t *testing.T) {
	fx := newFixture(t)
	calls := 0
	fx.graph.mu.Lock()
	fx.graph.sendErr = func(map[string]any) (int, string) {
		calls++
		if calls == 1 {
			return 400, `{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429}}`
		}
		return 0, ""
	}
	fx.graph.mu.Unlock()
	_, wamid := sentReply(t, fx, "34677000777")
	if wamid == "" || calls < 2 {
		t.Fatalf("wamid %q after %d calls", wamid, calls)
	}
}

func TestQualityUpdate(t *testing.T) {
	fx := newFixture(t)
	fx.graph.waitReq(t, "the number's quality lookup", func(r graphReq) bool { return r.Method == "GET" && r.Path == "/v21.0/"+pnid })
	// The lookup's answer is stored by a job that signals nothing: poll the API, bounded.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s := fx.env.MustDo(200, "GET", "/api/v1/whatsapp/senders/"+fx.senderID, nil)
		if s["quality_rating"] == "GREEN" && s["messaging_limit"] == "TIER_1K" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("quality from the Graph API never stored: %v", s)
		}
	}
	body := delivery(entry("1", `{"field":"phone_number_quality_update","value":{"display_phone_number":"15550783881","event":"FLAGGED","current_limit":"TIER_10K"}}`))
	if r := fx.deliver(t, body); r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	s := fx.env.MustDo(200, "GET", "/api/v1/whatsapp/senders/"+fx.senderID, nil)
	if s["quality_rating"] != "FLAGGED" || s["messaging_limit"] != "TIER_10K" {
		t.Fatalf("sender %v", s)
	}
	// A change-level error (throttling reported by webhook) is shown on the sender.
	errs := `{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"` + pnid + `"},` +
		`"errors":[{"code":130429,"title":"Rate limit hit","message":"Rate limit hit","error_data":{"details":"Message failed to send because there were too many messages sent from this phone number in a short period of time"}}]}}`
	if r := fx.deliver(t, delivery(entry("1", errs))); r.Status != 200 {
		t.Fatalf("%d", r.Status)
	}
	s = fx.env.MustDo(200, "GET", "/api/v1/whatsapp/senders/"+fx.senderID, nil)
	if !strings.Contains(s["last_error"].(string), "130429") || s["last_error_at"] == nil {
		t.Fatalf("sender after an error notification: %v", s)
	}
}

func TestSenderAPI(t *testing.T) {
	fx := newFixture(t)
	env := fx.env
	s := env.MustDo(200, "GET", "/api/v1/whatsapp/senders/"+fx.senderID, nil)
	raw := env.Do("GET", "/api/v1/whatsapp/senders", nil)
	for _, secret := range []string{token, appSecret, verifyTok} {
		if strings.Contains(string(raw.Body), secret) {
			t.Fatalf("the API returned a secret: %s", raw.Body)
		}
	}
	var stored string
	env.App.Store.DB().QueryRow(`SELECT access_token || app_secret || verify_token FROM wa_senders`).Scan(&stored)
	if stored == "" || strings.Contains(stored, token) || strings.Contains(stored, appSecret) {
		t.Fatalf("secrets stored in clear: %q", stored)
	}
	if s["graph_api_url"] != fx.graph.URL+"/v21.0" || s["rate_limit_per_second"] != float64(80) || s["has_access_token"] != true {
		t.Fatalf("sender %v", s)
	}
	cases := []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"phone_number_id": pnid, "access_token": "a", "app_secret": "b", "verify_token": "c"}, 409, "phone_number_taken"},
		{map[string]any{"phone_number_id": "12x", "access_token": "a", "app_secret": "b", "verify_token": "c"}, 422, "invalid_field"},
		{map[string]any{"phone_number_id": "123", "app_secret": "b", "verify_token": "c"}, 422, "invalid_field"},
		{map[string]any{"phone_number_id": "123", "access_token": "a", "app_secret": "b", "verify_token": "c", "graph_api_url": "ftp://x"}, 422, "invalid_field"},
		{map[string]any{"phone_number_id": "123", "access_token": "a", "app_secret": "b", "verify_token": "c", "assistant_id": "nope"}, 404, "assistant_not_found"},
	}
	for _, c := range cases {
		r := env.Do("POST", "/api/v1/whatsapp/senders", c.body)
		if r.Status != c.status || !strings.Contains(string(r.Body), c.code) {
			t.Errorf("%v: %d %s", c.body, r.Status, r.Body)
		}
	}
	def := env.MustDo(201, "POST", "/api/v1/whatsapp/senders", map[string]any{"phone_number_id": "999", "access_token": "a", "app_secret": "b", "verify_token": "c"})
	if def["graph_api_url"] != whatsapp.DefaultGraphAPIURL {
		t.Fatalf("default graph url %v", def["graph_api_url"])
	}
	p := env.MustDo(200, "PATCH", "/api/v1/whatsapp/senders/"+def["id"].(string), map[string]any{"display_phone_number": "+1 555", "rate_limit_per_second": 20})
	if p["display_phone_number"] != "+1 555" || p["rate_limit_per_second"] != float64(20) {
		t.Fatalf("patched %v", p)
	}
	other, _ := env.NewKey("elsewhere")
	for _, m := range []string{"GET", "PATCH", "DELETE"} {
		if r := env.DoWith(other, m, "/api/v1/whatsapp/senders/"+def["id"].(string), map[string]any{}, nil); r.Status != 404 {
			t.Errorf("%s from another workspace: %d", m, r.Status)
		}
	}
	if r := env.Do("DELETE", "/api/v1/whatsapp/senders/"+def["id"].(string), nil); r.Status != 204 {
		t.Fatalf("delete %d", r.Status)
	}
	if r := env.Do("GET", "/api/v1/whatsapp/senders/"+def["id"].(string), nil); r.Status != 404 {
		t.Fatalf("deleted sender %d", r.Status)
	}
	tpls := []struct {
		body   map[string]any
		status int
	}{
		{map[string]any{"name": "welcome", "language": "en_US", "category": "MARKETING", "components": []any{map[string]any{"type": "BODY", "text": "Welcome!"}}}, 201},
		{map[string]any{"name": "welcome", "language": "en_US", "category": "MARKETING"}, 409},
		{map[string]any{"name": "Bad Name", "language": "en_US", "category": "MARKETING"}, 422},
		{map[string]any{"name": "x", "language": "en_US", "category": "SPAM"}, 422},
		{map[string]any{"name": "x", "category": "UTILITY"}, 422},
	}
	for _, c := range tpls {
		if r := env.Do("POST", "/api/v1/whatsapp/templates", c.body); r.Status != c.status {
			t.Errorf("template %v: %d %s", c.body, r.Status, r.Body)
		}
	}
	list := env.MustDo(200, "GET", "/api/v1/whatsapp/templates", nil)
	if n := len(list["data"].([]any)); n != 1 {
		t.Fatalf("%d templates", n)
	}
	if r := env.Do("POST", "/api/v1/whatsapp/messages", map[string]any{"sender_id": "nope", "to": "123", "template": map[string]any{"name": "welcome", "language": "en_US"}}); r.Status != 404 {
		t.Fatalf("unknown sender: %d", r.Status)
	}
	if r := env.Do("POST", "/api/v1/whatsapp/messages", map[string]any{"sender_id": fx.senderID, "to": "abc", "template": map[string]any{"name": "welcome", "language": "en_US"}}); r.Status != 422 {
		t.Fatalf("bad number: %d", r.Status)
	}
}

// firstLife opens Parley on a fresh SQLite database with a sender for graph, serving but never
// started: its job workers and drainer do not run. stop closes it; the config opens it again.
func firstLife(t *testing.T, graph *fakeGraph) (first *testenv.Env, cfg app.Config, stop func()) {
	t.Helper()
	dir := t.TempDir()
	cfg = app.Config{DB: "sqlite://" + filepath.Join(dir, "parley.db"), DataDir: filepath.Join(dir, "data"), Log: slog.New(slog.DiscardHandler), AllowPrivateNetworks: true}
	a, err := app.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	first = &testenv.Env{T: t, App: a, Server: srv, URL: srv.URL}
	first.Key, first.WorkspaceID = first.NewKey("default")
	createSender(t, first, graph.URL)
	return first, cfg, func() {
		srv.Close()
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPendingJobRunsAfterRestart(t *testing.T) {
	graph := newFakeGraph(t)
	// First life: the server takes the delivery but its workers never run (it stops right after).
	first, cfg, stop := firstLife(t, graph)
	wa := "34688000888"
	body := delivery(entry("1", messagesChange(wa, "Rita", textMsg(wa, "wamid.RESTART", "hello?", time.Now()))))
	if r := first.DoWith("", "POST", "/webhooks/whatsapp", body, http.Header{"X-Hub-Signature-256": {whatsapp.Sign(body, appSecret)}}); r.Status != 200 {
		t.Fatalf("delivery %d", r.Status)
	}
	if n := jobCount(t, first); n == 0 {
		t.Fatal("no job queued")
	}
	stop()
	for _, r := range graph.requests() {
		if r.Body["type"] == "text" {
			t.Fatal("the reply was sent before the restart")
		}
	}
	// Second life on the same database: the queued reply runs.
	env := testenv.New(t, func(c *app.Config) { c.DB, c.DataDir = cfg.DB, cfg.DataDir })
	graph.waitReq(t, "the reply after the restart", isText(wa))
	_ = env
}

func TestOutgoingWebhookSigned(t *testing.T) {
	env := testenv.New(t)
	type got struct {
		event, sig string
		body       []byte
	}
	recv := make(chan got, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		recv <- got{r.Header.Get("X-Parley-Event"), r.Header.Get("X-Parley-Signature"), b}
	}))
	defer hook.Close()
	// A second subscriber to every event, whose endpoint fails the first attempt: retried.
	allRecv := make(chan string, 32)
	var failedOnce sync.Once
	all := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		failed := false
		failedOnce.Do(func() { failed = true })
		if failed {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		allRecv <- r.Header.Get("X-Parley-Event")
	}))
	defer all.Close()
	env.MustDo(201, "POST", "/api/v1/webhooks", map[string]any{"url": all.URL})
	h := env.MustDo(201, "POST", "/api/v1/webhooks", map[string]any{"url": hook.URL, "events": []string{"message.created", "handoff"}})
	secret := h["secret"].(string)
	if r := env.Do("POST", "/api/v1/webhooks", map[string]any{"url": "not a url"}); r.Status != 422 {
		t.Fatalf("bad url %d", r.Status)
	}
	if r := env.Do("POST", "/api/v1/webhooks", map[string]any{"url": hook.URL, "events": []string{"nope"}}); r.Status != 422 {
		t.Fatalf("bad event %d", r.Status)
	}
	if list := env.MustDo(200, "GET", "/api/v1/webhooks", nil); strings.Contains(fmt.Sprint(list), secret) {
		t.Fatal("the list shows the secret")
	}
	asst := env.CreateAssistant("A", "You are helpful.")
	c := env.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": asst, "type": "api"})
	env.MustDo(200, "POST", "/api/v1/conversations/"+c["id"].(string)+"/messages", map[string]any{"text": "hello"})
	env.MustDo(200, "POST", "/api/v1/conversations/"+c["id"].(string)+"/handoff", map[string]any{"reason": "angry"})
	seen := map[string]int{}
	timeout := time.After(20 * time.Second)
	for seen["handoff"] == 0 || seen["message.created"] < 2 {
		select {
		case g := <-recv:
			if g.sig != whatsapp.Sign(g.body, secret) { // same scheme: sha256=<hex HMAC of the body>
				t.Fatalf("bad signature on %s", g.event)
			}
			var d map[string]any
			if err := json.Unmarshal(g.body, &d); err != nil || d["event"] != g.event {
				t.Fatalf("delivery %s", g.body)
			}
			seen[g.event]++
		case <-timeout:
			t.Fatalf("deliveries seen: %v", seen)
		}
	}
	if seen["conversation.created"] != 0 {
		t.Fatal("delivered an event the webhook did not subscribe to")
	}
	env.MustDo(200, "POST", "/api/v1/conversations/"+c["id"].(string)+"/end", nil)
	allSeen := map[string]int{}
	for allSeen["conversation.created"] == 0 || allSeen["conversation.ended"] == 0 || allSeen["handoff"] == 0 || allSeen["message.created"] < 2 {
		select {
		case e := <-allRecv:
			allSeen[e]++
		case <-timeout:
			t.Fatalf("all-events subscriber saw %v", allSeen)
		}
	}
}

// BenchmarkWebhookDelivery measures a signed one-message delivery end to end over HTTP: signature
// check, parse, find-or-create, the message and its reply job stored in one transaction, 200.
func BenchmarkWebhookDelivery(b *testing.B) {
	graph := newFakeGraph(b)
	env := testenv.New(b, func(c *app.Config) { c.Log = slog.New(slog.DiscardHandler) })
	env.MustDo(http.StatusCreated, "POST", "/api/v1/whatsapp/senders", map[string]any{
		"phone_number_id": pnid, "access_token": token, "app_secret": appSecret, "verify_token": verifyTok, "graph_api_url": graph.URL + "/v21.0",
	})
	client := &http.Client{}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		wa := fmt.Sprintf("3460%07d", i%500)
		body := delivery(entry("1", messagesChange(wa, "Bench", textMsg(wa, fmt.Sprintf("wamid.B%d", i), "caf\u00e9 order status please", time.Now()))))
		req, _ := http.NewRequest("POST", env.URL+"/webhooks/whatsapp", strings.NewReader(string(body)))
		req.Header.Set("X-Hub-Signature-256", whatsapp.Sign(body, appSecret))
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// fakeMediaAI plays the runtime's media AI (App.Extra["media_ai"]).
type fakeMediaAI struct{}

func (fakeMediaAI) TranscribeWithCost(ctx context.Context, ws string, audio io.Reader, filename, mimeType string) (string, int64, error) {
	b, _ := io.ReadAll(audio)
	return "transcript of " + string(b) + " (" + mimeType + ")", 1500, nil
}

func (fakeMediaAI) DescribeWithCost(ctx context.Context, ws string, image []byte, mimeType string) (string, int64, error) {
	return "a photo of " + string(image), 2500, nil
}

func TestVoiceNoteTranscribedAndImageDescribed(t *testing.T) {
	fx := newFixture(t)
	fx.env.App.Extra["media_ai"] = fakeMediaAI{}
	fx.graph.media["voice-1"] = []byte("OggS-voice")
	fx.graph.media["pic-1"] = []byte("JFIF-cat")
	wa := "34699000999"
	now := ts(time.Now())
	voice := `{"from":"` + wa + `","id":"wamid.VOICE","timestamp":"` + now + `","type":"audio","audio":{"mime_type":"audio/ogg; codecs=opus","sha256":"x","id":"voice-1","voice":true}}`
	pic := `{"from":"` + wa + `","id":"wamid.PIC","timestamp":"` + now + `","type":"image","image":{"mime_type":"image/jpeg","sha256":"x","id":"pic-1"}}`
	if r := fx.deliver(t, delivery(entry("1", messagesChange(wa, "Vi", voice, pic)))); r.Status != 200 {
		t.Fatalf("%d", r.Status)
	}
	var msgs []map[string]any
	waitFor(t, fx.env, "both media processed", func() bool {
		msgs = messagesOf(conversationOf(t, fx.env, wa))
		done := 0
		for _, m := range msgs {
			if med, ok := m["media"].(map[string]any); ok && (med["transcript"] != nil || med["description"] != nil) {
				done++
			}
		}
		return done == 2
	})
	audio, image := msgs[0], msgs[1]
	if tr := audio["media"].(map[string]any)["transcript"]; tr != "transcript of OggS-voice (audio/ogg; codecs=opus)" || audio["cost_usd"] != 0.0015 {
		t.Fatalf("voice note %v", audio)
	}
	if d := image["media"].(map[string]any)["description"]; d != "a photo of JFIF-cat" || image["cost_usd"] != 0.0025 {
		t.Fatalf("image %v", image)
	}
	if c := conversationOf(t, fx.env, wa)["cost_usd"].(float64); c < 0.004-1e-9 {
		t.Fatalf("conversation cost %v does not include the media AI", c)
	}
	fx.graph.waitReq(t, "the answer after the media", isText(wa))
}

func TestStatusBeforeSendCommittedIsApplied(t *testing.T) {
	eachBackend(t, statusBeforeSendCommittedIsApplied)
}

func statusBeforeSendCommittedIsApplied(t *testing.T, fx *fixture) {
	wa := "34612345678"
	pricing := `"pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":"utility"}`
	fx.graph.mu.Lock()
	fx.graph.beforeAnswer = func(wamid string) {
		// Meta's "delivered" webhook arrives before the send's own answer.
		body := delivery(entry("1", statusChange(status(wamid, "delivered", wa, pricing))))
		if r := fx.deliver(t, body); r.Status != 200 {
			t.Errorf("early status: %d", r.Status)
		}
	}
	fx.graph.mu.Unlock()
	if r := fx.deliver(t, delivery(entry("1", messagesChange(wa, "Early", textMsg(wa, "wamid.EARLY", "hello", time.Now()))))); r.Status != 200 {
		t.Fatalf("%d", r.Status)
	}
	waitFor(t, fx.env, "the early status applied", func() bool {
		for _, m := range messagesOf(conversationOf(t, fx.env, wa)) {
			if m["role"] == "assistant" && m["status"] == "delivered" {
				return m["cost_usd"] == float64(whatsapp.Prices["utility"])/1e6
			}
		}
		return false
	})
}
