package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashSecret = "crash-test-app-secret"

func signedDelivery(n int) ([]byte, string, string) {
	waID := fmt.Sprintf("3519%08d", n)
	wamid := fmt.Sprintf("wamid.crash.%d", n)
	body := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"777000"},"contacts":[{"profile":{"name":"C %d"},"wa_id":"%s"}],"messages":[{"from":"%s","id":"%s","timestamp":"%d","text":{"body":"Hello, order ORD-%06d please"},"type":"text"}]},"field":"messages"}]}]}`,
		n, waID, waID, wamid, time.Now().Unix(), n)
	mac := hmac.New(sha256.New, []byte(crashSecret))
	mac.Write([]byte(body))
	return []byte(body), "sha256=" + hex.EncodeToString(mac.Sum(nil)), wamid
}

// TestSIGKILLUnderIngestLosesNothing posts signed deliveries from concurrent clients, kills the
// server with SIGKILL in the middle, restarts it, and proves every delivery that got a 200 is
// stored exactly once (replaying all of them stores nothing new) and that the reply job of every
// acknowledged message still runs.
func TestSIGKILLUnderIngestLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()

	var mu sync.Mutex
	replied := map[string]int{} // customer wa_id → replies the fake Graph API received
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var send struct {
			To string `json:"to"`
		}
		_ = json.NewDecoder(r.Body).Decode(&send)
		mu.Lock()
		replied[send.To]++
		n := len(replied)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"messaging_product":"whatsapp","contacts":[{"input":%q,"wa_id":%q}],"messages":[{"id":"wamid.out.%d"}]}`, send.To, send.To, n)
	}))
	defer graph.Close()

	env := append(cleanEnv(), "PARLEY_SECRET_KEY=crash-test-secret-key-0123456789", "PARLEY_ALLOW_PRIVATE_NETWORKS=true")
	addr := freeAddr(t)
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--addr", addr)
		cmd.Dir = dir
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return cmd
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("server not ready")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	base := "http://" + addr
	first := start()

	key := createKey(t, bin, dir, env)
	api := func(method, path, body string) map[string]any {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, m)
		}
		return m
	}
	asst := api("POST", "/api/v1/assistants", `{"name":"Ava","system_prompt":"You are Ava.","model":"builtin"}`)
	// A high-throughput number (Meta grants up to 1,000 msg/s): at the default 80/s, shared with the
	// read receipts, a few thousand acknowledged customers take longer to answer than this test
	// waits, and the test is about losing nothing, not about pacing.
	api("POST", "/api/v1/whatsapp/senders", fmt.Sprintf(`{"phone_number_id":"777000","display_phone_number":"15550001111","access_token":"tok","app_secret":%q,"verify_token":"v","assistant_id":%q,"graph_api_url":%q,"rate_limit_per_second":1000}`,
		crashSecret, asst["id"], graph.URL))

	// Load: 8 clients, each delivery a new customer; the server is killed while they run.
	var ackMu sync.Mutex
	acked := map[int]bool{}
	var next int
	var wg sync.WaitGroup
	stop := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ackMu.Lock()
				next++
				n := next
				ackMu.Unlock()
				body, sig, _ := signedDelivery(n)
				req, _ := http.NewRequest("POST", base+"/webhooks/whatsapp", bytes.NewReader(body))
				req.Header.Set("X-Hub-Signature-256", sig)
				resp, err := client.Do(req)
				if err != nil {
					continue // the server is gone: not acknowledged, Meta would retry
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ackMu.Lock()
					acked[n] = true
					ackMu.Unlock()
				}
			}
		}()
	}
	// Half a second: ~12k deliveries acknowledged on a two-core machine (25k in a second), each a
	// new customer to answer.
	time.Sleep(500 * time.Millisecond)
	// Kill with requests in flight; the clients stop sending new ones at the same moment.
	close(stop)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d deliveries acknowledged before the kill", len(acked))
	}
	t.Logf("%d deliveries acknowledged before SIGKILL (of %d attempted)", len(acked), next)

	second := start()
	defer func() { _ = second.Process.Signal(syscall.SIGTERM); _ = second.Wait() }()

	// inbound counts the stored customer messages by Meta's message id.
	inbound := func() map[string]int {
		count := map[string]int{}
		req, _ := http.NewRequest("GET", base+"/api/v1/conversations/export?format=jsonl&type=whatsapp", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var row struct {
				ExternalID string `json:"external_id"`
				Direction  string `json:"direction"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatal(err)
			}
			if row.Direction == "inbound" {
				count[row.ExternalID]++
			}
		}
		return count
	}
	// storedAll waits until the deliveries numbered in ns are stored and returns the counts. How
	// long that takes follows how many were acknowledged (the machine's speed): it gives up only
	// when nothing more is stored for stallAfter.
	const stallAfter = 20 * time.Second
	storedAll := func(ns []int) map[string]int {
		count := inbound()
		progress := time.Now()
		for _, n := range ns {
			_, _, wamid := signedDelivery(n)
			for count[wamid] == 0 && time.Since(progress) < stallAfter {
				time.Sleep(50 * time.Millisecond)
				before := len(count)
				if count = inbound(); len(count) > before {
					progress = time.Now()
				}
			}
		}
		return count
	}
	// Before any retry: every acknowledged delivery is stored from what the first server kept
	// (the replay below would store a lost one again and hide the loss).
	ackedNs := make([]int, 0, len(acked))
	for n := range acked {
		ackedNs = append(ackedNs, n)
	}
	count := storedAll(ackedNs)
	for _, n := range ackedNs {
		if _, _, wamid := signedDelivery(n); count[wamid] == 0 {
			t.Fatalf("%s was acknowledged before the kill and not stored after the restart", wamid)
		}
	}

	// Meta retries every delivery: replay all of them, acknowledged or not.
	for n := 1; n <= next; n++ {
		body, sig, _ := signedDelivery(n)
		req, _ := http.NewRequest("POST", base+"/webhooks/whatsapp", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("replay %d: %v %v", n, resp, err)
		}
		resp.Body.Close()
	}

	// Every delivery (acknowledged ones first of all) is stored exactly once. Deliveries kept during
	// the burst (and those kept before the kill) are stored by the drainer shortly after their 200:
	// wait until every one is there, then check none is there twice.
	all := make([]int, next)
	for i := range all {
		all[i] = i + 1
	}
	count = storedAll(all)
	for n := 1; n <= next; n++ {
		_, _, wamid := signedDelivery(n)
		if count[wamid] != 1 {
			t.Fatalf("%s stored %d times (acknowledged before the kill: %v)", wamid, count[wamid], acked[n])
		}
	}

	// The reply job of every acknowledged message runs, after the restart if it was pending: the
	// wait fails when no reply has come for stallAfter.
	progress, lastMissing := time.Now(), -1
	for {
		missing := 0
		mu.Lock()
		for n := range acked {
			if replied[fmt.Sprintf("3519%08d", n)] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if missing != lastMissing {
			progress, lastMissing = time.Now(), missing
		}
		if time.Since(progress) > stallAfter {
			t.Fatalf("%d acknowledged messages never got their reply (none for %s)", missing, stallAfter)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
