package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/testenv"
)

// postgresOrSkip returns a fresh PostgreSQL schema's DSN; without one it skips, except in CI.
func postgresOrSkip(t *testing.T) string {
	t.Helper()
	dsn := testenv.PostgresDSN(t)
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set in CI", testenv.PostgresEnv)
		}
		t.Skipf("set %s to run the scale-out tests", testenv.PostgresEnv)
	}
	return dsn
}

// TestTwoInstancesOnOnePostgres starts two `parley serve` processes together on one database (their
// migrations race and must serialise) and proves a reply produced on B reaches a stream open on A.
func TestTwoInstancesOnOnePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dsn := postgresOrSkip(t)
	bin := buildBinary(t)
	env := append(cleanEnv(), "PARLEY_DB="+dsn, "PARLEY_SECRET_KEY=scale-out-test-secret-key", "PARLEY_ALLOW_PRIVATE_NETWORKS=true")

	var a, b string
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = startServer(t, bin, t.TempDir(), env) }()
	go func() { defer wg.Done(); b = startServer(t, bin, t.TempDir(), env) }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	key := createKey(t, bin, t.TempDir(), env)

	call := func(base, method, path, body string) map[string]any {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v %v", method, path, resp.StatusCode, m, err)
		}
		return m
	}
	asst := call(a, "POST", "/api/v1/assistants", `{"name":"Ava","system_prompt":"You are Ava.","model":"builtin"}`)
	conv := call(a, "POST", "/api/v1/conversations", fmt.Sprintf(`{"assistant_id":%q,"type":"api"}`, asst["id"]))
	id := conv["id"].(string)

	req, _ := http.NewRequest("GET", a+"/api/v1/conversations/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events on A: %v %v", resp, err)
	}
	defer resp.Body.Close()
	replies := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				event = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok && event == "message" {
				var m map[string]any
				if json.Unmarshal([]byte(v), &m) == nil && m["role"] == "assistant" {
					replies <- m["text"].(string)
				}
			}
		}
	}()

	posted := call(b, "POST", "/api/v1/conversations/"+id+"/messages", `{"text":"Hello from B"}`)
	defer func() {
		if !t.Failed() {
			replayAcrossInstances(t, a, b, call)
		}
	}()
	want := posted["messages"].([]any)[1].(map[string]any)["text"].(string)
	select {
	case got := <-replies:
		if got != want {
			t.Fatalf("A streamed %q, B produced %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reply produced on B never reached the stream on A")
	}
}

// replayAcrossInstances sends one signed WhatsApp delivery to both instances at once, several
// times (Meta retries, and a load balancer spreads the retries): the message is stored once and
// its reply job runs once — the fake Graph API receives exactly one answer.
func replayAcrossInstances(t *testing.T, a, b string, call func(base, method, path, body string) map[string]any) {
	var mu sync.Mutex
	sends := map[string]int{}
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var send struct {
			To string `json:"to"`
		}
		_ = json.NewDecoder(r.Body).Decode(&send)
		mu.Lock()
		sends[send.To]++
		n := sends[send.To]
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"messaging_product":"whatsapp","contacts":[{"input":%q,"wa_id":%q}],"messages":[{"id":"wamid.out.%s.%d"}]}`, send.To, send.To, send.To, n)
	}))
	defer graph.Close()
	asst := call(a, "POST", "/api/v1/assistants", `{"name":"WA","system_prompt":"You are WA.","model":"builtin"}`)
	call(a, "POST", "/api/v1/whatsapp/senders", fmt.Sprintf(`{"phone_number_id":"777000","display_phone_number":"15550001111","access_token":"tok","app_secret":%q,"verify_token":"v","assistant_id":%q,"graph_api_url":%q}`,
		crashSecret, asst["id"], graph.URL))
	body, sig, wamid := signedDelivery(424242)
	waID := fmt.Sprintf("3519%08d", 424242)
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		for _, base := range []string{a, b} {
			wg.Add(1)
			go func(base string) {
				defer wg.Done()
				req, _ := http.NewRequest("POST", base+"/webhooks/whatsapp", bytes.NewReader(body))
				req.Header.Set("X-Hub-Signature-256", sig)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("delivery to %s: %v %v", base, resp, err)
					return
				}
				resp.Body.Close()
			}(base)
		}
	}
	wg.Wait()
	list := call(b, "GET", "/api/v1/conversations?type=whatsapp&customer="+waID, "")
	convs := list["data"].([]any)
	if len(convs) != 1 {
		t.Fatalf("%d conversations for one customer after replays on two instances", len(convs))
	}
	cid := convs[0].(map[string]any)["id"].(string)
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := sends[waID]
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reply job never ran")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // room for a second (wrong) run of the job to show up
	detail := call(a, "GET", "/api/v1/conversations/"+cid, "")
	inbound := 0
	for _, m := range detail["messages"].([]any) {
		if msg := m.(map[string]any); msg["external_id"] == wamid {
			inbound++
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if inbound != 1 || sends[waID] != 1 {
		t.Fatalf("stored %d times, answered %d times; want once and once", inbound, sends[waID])
	}
}
