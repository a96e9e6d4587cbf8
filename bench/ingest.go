package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const benchAppSecret = "bench-app-secret"

// ingest measures signed WhatsApp deliveries posted by N concurrent clients and, in the same run,
// the same clients against a bare net/http handler that does nothing; the ratio is the figure.
func ingest(c *client, srv *server, clients int, d time.Duration) error {
	// A fake Graph API for the assistant's replies: it answers every send at once.
	var sends atomic.Int64
	run := time.Now().UnixNano() // message ids unique across runs on a kept database (-reuse)
	graph := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := sends.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"messaging_product":"whatsapp","contacts":[{"input":"1","wa_id":"1"}],"messages":[{"id":"wamid.reply.%d.%d"}]}`, run, n)
	})}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go graph.Serve(gl)
	defer graph.Close()

	var asst struct{ ID string }
	if err := c.postJSON("/api/v1/assistants", `{"name":"WhatsApp bench","system_prompt":"You are a bench assistant.","model":"builtin"}`, &asst); err != nil {
		return err
	}
	// A number of its own per run: a database kept from an earlier run (-reuse) has that run's sender.
	phoneID := fmt.Sprintf("9%08d", time.Now().UnixNano()%100_000_000)
	sender := fmt.Sprintf(`{"phone_number_id":%q,"display_phone_number":"15550001111","access_token":"bench-token","app_secret":%q,"verify_token":"v","assistant_id":%q,"graph_api_url":"http://%s"}`,
		phoneID, benchAppSecret, asst.ID, gl.Addr())
	if err := c.postJSON("/api/v1/whatsapp/senders", sender, nil); err != nil {
		return fmt.Errorf("the WhatsApp channel is not available: %w", err)
	}

	var seq atomic.Int64
	delivery := func() ([]byte, string) {
		n := seq.Add(1)
		body := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"%s"},"contacts":[{"profile":{"name":"Customer %d"},"wa_id":"35191%07d"}],"messages":[{"from":"35191%07d","id":"wamid.bench.%d.%d","timestamp":"%d","text":{"body":"Hi, where is my order ORD-%06d? It was due yesterday."},"type":"text"}]},"field":"messages"}]}]}`,
			phoneID, n%1000, n%1000, n%1000, time.Now().UnixNano(), n, time.Now().Unix(), n%1_000_000)
		mac := hmac.New(sha256.New, []byte(benchAppSecret))
		mac.Write([]byte(body))
		return []byte(body), "sha256=" + hex.EncodeToString(mac.Sum(nil))
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients * 2, MaxConnsPerHost: clients * 2}}
	post := func(url string) func() error {
		return func() error {
			body, sig := delivery()
			req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Hub-Signature-256", sig)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
	}

	// The baseline: a bare handler that reads the body and answers 200, on the same machine.
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(200)
	})}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go bare.Serve(bl)
	defer bare.Close()
	baseN, baseLat, err := loadLoop(clients, d, post("http://"+bl.Addr().String()+"/"))
	if err != nil {
		return fmt.Errorf("bare handler: %w", err)
	}
	baseRate := float64(baseN) / d.Seconds()

	profileDone := make(chan error, 1)
	if profileTo != "" && pprofBase != "" {
		go func() { profileDone <- fetchProfile(pprofBase, profileTo, d) }()
	} else {
		profileDone <- nil
	}
	cpuBefore, sendsBefore := srv.cpu(), sends.Load()
	n, lat, err := loadLoop(clients, d, post(srv.base+"/webhooks/whatsapp"))
	cpuUsed, replied := srv.cpu()-cpuBefore, sends.Load()-sendsBefore
	if perr := <-profileDone; perr != nil {
		fmt.Println("profile:", perr)
	}
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	rate := float64(n) / d.Seconds()
	ratio := rate / baseRate
	record(fmt.Sprintf("webhook ingest, %d clients: msg/s", clients), fmt.Sprintf("%.0f msg/s (p50 %s, p99 %s)", rate, ms(pct(lat, 50)), ms(pct(lat, 99))),
		"≥ 10,000 msg/s", fmt.Sprintf("bare handler %.0f req/s (p50 %s, p99 %s)", baseRate, ms(pct(baseLat, 50)), ms(pct(baseLat, 99))), pass(rate >= 10_000))
	record("webhook ingest ÷ bare handler", fmt.Sprintf("%.2f", ratio), "≥ 0.5", "", pass(ratio >= 0.5))
	if n > 0 && cpuUsed > 0 {
		// CPU per delivery is steadier than throughput on a shared machine, and shows where a
		// change helps even when another process takes cores.
		record("webhook: server CPU per delivery", fmt.Sprintf("%d µs (%d replies sent in the window)", cpuUsed.Microseconds()/n, replied), "", "", nil)
	}

	// Deliveries kept during the burst are processed after their 200: wait until the drainer has
	// processed every one, for the end-to-end figure (acknowledged → stored as messages).
	if kept, drained, err := deliveryCounts(srv.base); err == nil && kept > 0 {
		t0 := time.Now()
		for drained < kept && time.Since(t0) < 10*time.Minute {
			time.Sleep(20 * time.Millisecond)
			if kept, drained, err = deliveryCounts(srv.base); err != nil {
				break
			}
		}
		after := time.Since(t0)
		record("webhook: kept during the burst, processed after", fmt.Sprintf("%d of %d deliveries, all stored %s after the burst ended", kept, n, after.Round(time.Millisecond)), "", "", nil)
		record("webhook: acknowledged → stored, end to end", fmt.Sprintf("%.0f msg/s (%d deliveries in %s)", float64(n)/(d+after).Seconds(), n, (d+after).Round(time.Millisecond)), "",
			"", nil)
	}

	// Every acknowledged delivery is stored: the server's count of new inbound messages (each
	// delivery carries one) against the deliveries acknowledged.
	if v, err := promCounters(srv.base, "parley_whatsapp_inbound_messages_total"); err == nil {
		inbound := v[0]
		record("webhook: inbound messages stored", fmt.Sprintf("%d for %d acknowledged deliveries; %d replies sent", inbound, n, sends.Load()), "", "", pass(inbound >= n))
	}
	return nil
}

// fetchProfile saves a CPU profile of the server taken over d.
func fetchProfile(base, path string, d time.Duration) error {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// deliveryCounts reads, from the server's Prometheus metrics, how many deliveries were kept for
// the drainer and how many of those it has processed.
func deliveryCounts(base string) (kept, drained int64, err error) {
	v, err := promCounters(base, `parley_whatsapp_webhook_deliveries_total{result="kept"}`, `parley_whatsapp_webhook_deliveries_total{result="drained"}`)
	if err != nil {
		return 0, 0, err
	}
	return v[0], v[1], nil
}

// promCounters reads series of the server's Prometheus metrics in one scrape (0 for a series with
// no value yet).
func promCounters(base string, series ...string) ([]int64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(series))
	for _, line := range strings.Split(string(b), "\n") {
		for i, name := range series {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return nil, err
				}
				out[i] = int64(f)
			}
		}
	}
	return out, nil
}
