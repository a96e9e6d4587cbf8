package whatsapp_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/testenv"
	"github.com/parley-hq/parley/internal/whatsapp"
)

func waService(t testing.TB, env *testenv.Env) *whatsapp.Service {
	t.Helper()
	svc, ok := env.App.Extra["whatsapp"].(*whatsapp.Service)
	if !ok {
		t.Fatal("no WhatsApp service")
	}
	return svc
}

func keptCount(t testing.TB, env *testenv.Env) int64 {
	t.Helper()
	n, err := waService(t, env).Inbox.CountWAInbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitDrained waits until no kept delivery is left (a duplicate stores nothing, so there may be
// no event to wait on: this polls).
func waitDrained(t testing.TB, env *testenv.Env) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for keptCount(t, env) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("kept deliveries were not processed within 20s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// keptFixture is a fixture whose deliveries all take the burst path (kept, acknowledged, then
// drained), and whose deliver returns once the drainer has processed them: the scenarios written
// for deliveries processed before their 200 must come out the same.
func keptFixture(t *testing.T, fx *fixture) *fixture {
	waService(t, fx.env).SetInlineLimit(-1)
	fx.kept = true
	return fx
}

// The scenarios of the inline path, run again with every delivery kept and drained.
func TestKeptDeliveriesBehaveAsInline(t *testing.T) {
	scenarios := map[string]func(t *testing.T, fx *fixture){
		"forged deliveries change nothing":   forgedDeliveriesChangeNothing,
		"every type, stored once":            everyTypeBatchedStoredOnceAndReplaySafe,
		"reply reaches the Graph API":        assistantReplyReachesGraphAPI,
		"statuses out of order, priced once": statusesOutOfOrderEndAtLatestAndPricedOnce,
		"status before its send committed":   statusBeforeSendCommittedIsApplied,
	}
	for name, fn := range scenarios {
		t.Run(name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, fx *fixture) { fn(t, keptFixture(t, fx)) })
		})
	}
}

// A burst: deliveries are acknowledged before they are processed, then every message is stored
// once, in order, and every customer answered; a forged delivery is refused and nothing kept.
func TestBurstKeptThenDrainedInOrder(t *testing.T) { eachBackend(t, burstKeptThenDrainedInOrder) }

func burstKeptThenDrainedInOrder(t *testing.T, fx *fixture) {
	waService(t, fx.env).SetInlineLimit(-1)
	forged := delivery(entry("1", messagesChange("34600000009", "Eve", textMsg("34600000009", "wamid.FORGED", "hi", time.Now()))))
	if r := fx.env.DoWith("", "POST", "/webhooks/whatsapp", forged, http.Header{"X-Hub-Signature-256": {whatsapp.Sign(forged, "not-the-secret")}}); r.Status != http.StatusUnauthorized {
		t.Fatalf("forged delivery: %d, want 401", r.Status)
	}
	if n := keptCount(t, fx.env); n != 0 {
		t.Fatalf("a forged delivery was kept (%d rows)", n)
	}
	// Before a kept delivery's 200 only its JSON and addresses are read: a signed body that is not
	// JSON is refused; one whose message has a field of the wrong type is acknowledged, and the
	// drainer drops it without holding up the rest.
	if r := fx.deliver(t, []byte(`{"object":"whatsapp_business_account","entry":[`)); r.Status != http.StatusBadRequest {
		t.Fatalf("signed broken JSON: %d, want 400", r.Status)
	}
	odd := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"` + pnid +
		`"},"messages":[{"from":"34600000004","id":"wamid.ODD","timestamp":"1700000000","type":"text","text":{"body":["not","a","string"]}}]}}]}]}`)
	if _, err := whatsapp.Parse(odd); err == nil {
		t.Fatal("the odd delivery parses: it tests nothing")
	}
	if r := fx.deliver(t, odd); r.Status != http.StatusOK {
		t.Fatalf("signed delivery with an odd field: %d %s, want 200", r.Status, r.Body)
	}
	customers := []string{"34600000001", "34600000002", "34600000003"}
	start := time.Now().Add(-time.Minute)
	for i := 0; i < 4; i++ {
		for c, wa := range customers {
			body := delivery(entry("1", messagesChange(wa, "Customer", textMsg(wa, fmt.Sprintf("wamid.BURST.%d.%d", c, i), fmt.Sprintf("message %d", i), start.Add(time.Duration(i)*time.Second)))))
			if r := fx.deliver(t, body); r.Status != 200 {
				t.Fatalf("delivery %d/%d: %d %s", c, i, r.Status, r.Body)
			}
			if i == 1 { // Meta sends a delivery again when it did not see our 200 in time
				if r := fx.deliver(t, body); r.Status != 200 {
					t.Fatalf("repeated delivery: %d", r.Status)
				}
			}
		}
	}
	for _, wa := range customers {
		fx.graph.waitReq(t, "an answer to "+wa, isText(wa))
	}
	waitDrained(t, fx.env)
	for _, wa := range customers {
		var texts []string
		for _, m := range messagesOf(conversationOf(t, fx.env, wa)) {
			if m["role"] == "user" {
				texts = append(texts, m["text"].(string))
			}
		}
		want := []string{"message 0", "message 1", "message 2", "message 3"}
		if fmt.Sprint(texts) != fmt.Sprint(want) {
			t.Fatalf("customer %s: messages %q, want %q", wa, texts, want)
		}
	}
}

// Deliveries kept and acknowledged by a server that stopped before processing them are processed
// by the next start: nothing acknowledged is lost.
func TestKeptDeliveriesProcessedAfterRestart(t *testing.T) {
	graph := newFakeGraph(t)
	first, cfg, stop := firstLife(t, graph)
	waService(t, first).SetInlineLimit(-1)
	wa := "34688000999"
	for i := 0; i < 3; i++ {
		body := delivery(entry("1", messagesChange(wa, "Rita", textMsg(wa, fmt.Sprintf("wamid.KEPT%d", i), fmt.Sprintf("kept %d", i), time.Now()))))
		if r := first.DoWith("", "POST", "/webhooks/whatsapp", body, http.Header{"X-Hub-Signature-256": {whatsapp.Sign(body, appSecret)}}); r.Status != 200 {
			t.Fatalf("delivery %d", r.Status)
		}
	}
	if n := keptCount(t, first); n != 3 {
		t.Fatalf("%d deliveries kept, want 3", n)
	}
	if c := conversationOf(t, first, wa); c != nil {
		t.Fatal("a kept delivery was processed by a server that never started its drainer")
	}
	resp, err := http.Get(first.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	prom, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(prom), "\nparley_whatsapp_inbox_waiting 3\n") {
		t.Fatalf("/metrics does not show the 3 waiting deliveries:\n%s", prom)
	}
	stop()
	env := testenv.New(t, func(c *app.Config) { c.DB, c.DataDir = cfg.DB, cfg.DataDir })
	graph.waitReq(t, "the answer after the restart", isText(wa))
	waitDrained(t, env)
	if n := len(messagesOf(conversationOf(t, env, wa))); n < 3 {
		t.Fatalf("%d messages after the restart, want the 3 kept ones and the answer", n)
	}
}

// Under load the first deliveries are processed inline and the rest kept; once the burst is over
// and the inbox drained, deliveries are processed before their 200 again.
func TestInlineAgainAfterTheBurst(t *testing.T) {
	fx := newFixture(t)
	svc := waService(t, fx.env)
	svc.SetInlineLimit(-1)
	wa := "34677000001"
	body := delivery(entry("1", messagesChange(wa, "Ana", textMsg(wa, "wamid.DURING", "during the burst", time.Now()))))
	if r := fx.deliver(t, body); r.Status != 200 {
		t.Fatalf("delivery %d", r.Status)
	}
	svc.SetInlineLimit(0)
	waitDrained(t, fx.env)
	// Once the drainer has seen the inbox empty, the next delivery is stored before its 200.
	deadline := time.Now().Add(20 * time.Second)
	for svc.Waiting() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the drainer never saw the inbox empty")
		}
		time.Sleep(2 * time.Millisecond)
	}
	body = delivery(entry("1", messagesChange(wa, "Ana", textMsg(wa, "wamid.AFTER", "after the burst", time.Now()))))
	if r := fx.deliver(t, body); r.Status != 200 {
		t.Fatalf("delivery %d", r.Status)
	}
	found := false
	for _, m := range messagesOf(conversationOf(t, fx.env, wa)) {
		found = found || m["text"] == "after the burst"
	}
	if !found {
		t.Fatal("after the burst a delivery was not stored before its 200")
	}
}

// BenchmarkKeptDelivery is the acknowledgement path of a burst: signed deliveries from parallel
// clients over loopback, verified, kept and answered 200 (the drainer stopped, so only the
// acknowledgement is measured; the client shares the machine).
func BenchmarkKeptDelivery(b *testing.B) {
	graph := newFakeGraph(b)
	env := testenv.New(b, func(c *app.Config) { c.Log = slog.New(slog.DiscardHandler) })
	env.MustDo(http.StatusCreated, "POST", "/api/v1/whatsapp/senders", map[string]any{
		"phone_number_id": pnid, "access_token": token, "app_secret": appSecret, "verify_token": verifyTok, "graph_api_url": graph.URL + "/v21.0",
	})
	svc := waService(b, env)
	if err := svc.StopDrainer(context.Background()); err != nil {
		b.Fatal(err)
	}
	svc.SetInlineLimit(-1)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			wa := fmt.Sprintf("3460%07d", i%1000)
			body := delivery(entry("1", messagesChange(wa, "Bench", textMsg(wa, fmt.Sprintf("wamid.K%d", i), "where is my order ORD-123456?", time.Now()))))
			req, _ := http.NewRequest("POST", env.URL+"/webhooks/whatsapp", bytes.NewReader(body))
			req.Header.Set("X-Hub-Signature-256", whatsapp.Sign(body, appSecret))
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}

// Two instances on one PostgreSQL database, both keeping deliveries and both draining the shared
// inbox (rows locked with SKIP LOCKED while one works on them): every delivery, including each one
// Meta sends to both, is stored exactly once, every customer is answered, and the inbox ends empty.
// (Across instances the order of storing follows processing, as for deliveries Meta sends to two
// instances at once; within one instance a customer's kept deliveries keep their order, see
// TestBurstKeptThenDrainedInOrder.)
func TestTwoInstancesDrainOneInbox(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	if dsn == "" {
		t.Skipf("set %s to drain one inbox from two instances", testenv.PostgresEnv)
	}
	graph := newFakeGraph(t)
	dataDir := t.TempDir()
	configure := func(c *app.Config) { c.DB, c.DataDir = dsn, dataDir }
	a := testenv.New(t, configure)
	b := testenv.New(t, configure)
	createSender(t, a, graph.URL)
	for _, e := range []*testenv.Env{a, b} {
		waService(t, e).SetInlineLimit(-1)
	}
	customers := []string{"34611000001", "34611000002", "34611000003", "34611000004"}
	const perCustomer = 6
	start := time.Now().Add(-time.Minute)
	for i := 0; i < perCustomer; i++ {
		for c, wa := range customers {
			body := delivery(entry("1", messagesChange(wa, "Customer", textMsg(wa, fmt.Sprintf("wamid.TWO.%d.%d", c, i), fmt.Sprintf("message %d", i), start.Add(time.Duration(i)*time.Second)))))
			targets := []*testenv.Env{a, b}[:1+(i%2)] // every other delivery reaches both instances
			for k, e := range targets {
				if k == 0 && (c+i)%2 == 1 {
					e = b
				}
				if r := e.DoWith("", "POST", "/webhooks/whatsapp", body, http.Header{"X-Hub-Signature-256": {whatsapp.Sign(body, appSecret)}}); r.Status != 200 {
					t.Fatalf("delivery: %d %s", r.Status, r.Body)
				}
			}
		}
	}
	waitDrained(t, a)
	for _, wa := range customers {
		graph.waitReq(t, "an answer to "+wa, isText(wa))
		var texts []string
		for _, m := range messagesOf(conversationOf(t, a, wa)) {
			if m["role"] == "user" {
				texts = append(texts, m["text"].(string))
			}
		}
		slices.Sort(texts)
		var want []string
		for i := 0; i < perCustomer; i++ {
			want = append(want, fmt.Sprintf("message %d", i))
		}
		if fmt.Sprint(texts) != fmt.Sprint(want) {
			t.Fatalf("customer %s: messages %q, want each once: %q", wa, texts, want)
		}
	}
}
