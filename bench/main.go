// Command bench measures Parley on generated data and prints one table, each figure next to its
// target and, where the issue asks, a baseline measured the same way in the same run.
//
//	go run ./bench                                         # small, quick
//	go run ./bench -conversations 1000000 -messages 10     # the full size
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/parley-hq/parley/internal/app"
)

type figure struct {
	name, value, target, baseline string
	ok                            *bool
}

var figures []figure

// pprofBase is the server's pprof listener when profiling.
var pprofBase string

// profileTo, when set, receives a CPU profile of the server taken during the ingest run.
var profileTo string

// reuse measures the database an earlier -keep run left behind.
var reuse bool

// only names the parts to measure (empty: all of them).
var only string

// parts are the benchmark's parts, in the order they run.
var parts = []string{"lists", "metrics", "export", "insights", "turn", "ingest"}

// measure reports whether a part of the benchmark is to run.
func measure(part string) bool {
	return only == "" || slices.Contains(strings.Split(only, ","), part)
}

func record(name, value, target, baseline string, ok *bool) {
	figures = append(figures, figure{name, value, target, baseline, ok})
	fmt.Fprintf(os.Stderr, "  %-44s %s\n", name, value)
}

func pass(b bool) *bool { return &b }

func main() {
	conversations := flag.Int("conversations", 20_000, "conversations to generate")
	messages := flag.Int("messages", 10, "average messages per conversation")
	days := flag.Int("days", 90, "days the data spans")
	queries := flag.Int("queries", 200, "requests per list filter")
	turns := flag.Int("turns", 300, "AI turns to time")
	clients := flag.Int("clients", 32, "concurrent clients for ingest")
	ingestFor := flag.Duration("ingest-duration", 5*time.Second, "how long each ingest run lasts")
	profile := flag.String("profile", "", "write a CPU profile of the server during ingest to this file")
	dir := flag.String("dir", "", "working directory (default: a temporary one, removed after)")
	keep := flag.Bool("keep", false, "keep the working directory")
	flag.StringVar(&only, "only", "", "measure only these parts, comma-separated: "+strings.Join(parts, ", ")+" (default: all)")
	flag.BoolVar(&reuse, "reuse", false, "measure the database a -keep run left in -dir instead of generating one (the full size takes ~11 min to generate)")
	flag.Parse()
	profileTo = *profile
	if err := run(*conversations, *messages, *days, *queries, *turns, *clients, *ingestFor, *dir, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(conversations, messagesPer, days, queries, turns, clients int, ingestFor time.Duration, dir string, keep bool) error {
	ctx := context.Background()
	for _, part := range strings.Split(only, ",") {
		if only != "" && !slices.Contains(parts, part) {
			return fmt.Errorf("-only: unknown part %q", part)
		}
	}
	if reuse && dir == "" {
		return fmt.Errorf("-reuse needs -dir")
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "parley-bench-")
		if err != nil {
			return err
		}
		dir = d
		if !keep {
			defer os.RemoveAll(dir)
		}
	}
	fmt.Fprintf(os.Stderr, "working in %s on %d CPUs\n", dir, runtime.NumCPU())

	bin := filepath.Join(dir, "parley")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/parley")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	if st, err := os.Stat(bin); err == nil {
		record("binary size (stripped)", fmt.Sprintf("%.1f MB", float64(st.Size())/1e6), "", "", nil)
	}

	dbURL := "sqlite://" + filepath.Join(dir, "parley.db")
	dataDir := filepath.Join(dir, "data")
	a, err := app.Open(ctx, app.Config{DB: dbURL, DataDir: dataDir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	ws, err := a.Auth.EnsureWorkspace(ctx, "default")
	if err != nil {
		return err
	}
	key, _, err := a.Auth.CreateAPIKey(ctx, ws.ID, "bench")
	if err != nil {
		return err
	}
	var total int64
	if reuse {
		var convs int64
		if err := a.Store.DB().QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM conversations), (SELECT COUNT(*) FROM messages)`).Scan(&convs, &total); err != nil {
			return fmt.Errorf("reuse: %w", err)
		}
		if convs == 0 {
			return fmt.Errorf("reuse: %s holds no conversations; run once with -keep -dir first", dbURL)
		}
		conversations = int(convs)
		// The jobs an earlier run left (answers to its burst, sends to its fake Graph API, gone with
		// it) would only hold this run's answers back behind them.
		if _, err := a.Store.DB().ExecContext(ctx, `DELETE FROM river_job WHERE state IN ('available', 'scheduled', 'retryable', 'running')`); err != nil {
			return fmt.Errorf("reuse: %w", err)
		}
		record("data reused", fmt.Sprintf("%d conversations, %d messages", convs, total), "", "", nil)
	} else {
		fmt.Fprintf(os.Stderr, "generating %d conversations × ~%d messages…\n", conversations, messagesPer)
		start := time.Now()
		total, err = generate(ctx, a.Store, ws.ID, genConfig{Conversations: conversations, MessagesPer: messagesPer, Days: days, Seed: 42})
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		record("data generated", fmt.Sprintf("%d conversations, %d messages in %s", conversations, total, time.Since(start).Round(time.Millisecond)), "", "", nil)
	}
	if err := a.Close(); err != nil {
		return err
	}

	// Cold start: exec to a 200 from /readyz, best of three.
	// The benchmark sends far more than a client should: the per-key rate limit is off for it.
	env := append(os.Environ(), "PARLEY_DB="+dbURL, "PARLEY_DATA_DIR="+dataDir, "PARLEY_API_RATE_LIMIT=0", "PARLEY_ALLOW_PRIVATE_NETWORKS=true")
	if profileTo != "" {
		pprofAddr, err := freePort()
		if err != nil {
			return err
		}
		env = append(env, "PARLEY_PPROF_ADDR="+pprofAddr)
		pprofBase = "http://" + pprofAddr
	}
	var srv *server
	best := time.Duration(1 << 62)
	for i := 0; i < 3; i++ {
		s, took, err := startServer(bin, dir, env)
		if err != nil {
			return err
		}
		best = min(best, took)
		if i < 2 {
			s.stop()
		} else {
			srv = s
		}
	}
	defer srv.stop()
	record("cold start to /readyz", ms(best), "< 300 ms", "", pass(best < 300*time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	idle := srv.rss()
	record("idle RSS", mb(idle), "< 40 MB", "", pass(idle < 40<<20))

	c := &client{base: srv.base, key: key, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}

	if measure("lists") {
		if err := measureLists(c, queries); err != nil {
			return err
		}
	}
	if measure("metrics") {
		lat, err := c.timeGets("/api/v1/metrics", 20)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		record("metrics over all conversations: p50", ms(pct(lat, 50)), "≤ 100 ms", "", pass(pct(lat, 50) <= 100*time.Millisecond))
	}
	if measure("export") {
		// The peak RSS is the export's own: the high-water mark is reset first, so what insights or
		// the lists used before does not count.
		srv.resetPeakRSS()
		rows, took, err := c.export("/api/v1/conversations/export?format=csv")
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		rate := float64(rows) / took.Seconds()
		peak := srv.peakRSS()
		record("export CSV: rows/s", fmt.Sprintf("%.0f rows/s (%d rows in %s)", rate, rows, took.Round(time.Millisecond)), "≥ 300k rows/s", "", pass(rate >= 300_000))
		record("export: server peak RSS", mb(peak), "< 100 MB", "", pass(peak < 100<<20))
	}
	// Insights (resolution, handoffs, topics of the newest 20k questions): no target in the issue,
	// measured so a regression shows; after the export, whose memory it would otherwise count.
	if measure("insights") {
		lat, err := c.timeGets("/api/v1/insights", 5)
		if err != nil {
			return fmt.Errorf("insights: %w", err)
		}
		record("insights over all conversations: p50", ms(pct(lat, 50)), "", "", nil)
	}
	if measure("turn") {
		if err := measureTurns(c, turns); err != nil {
			return err
		}
	}
	// Webhook ingest next to a bare handler, when the WhatsApp channel is built in.
	if measure("ingest") {
		if err := ingest(c, srv, clients, ingestFor); err != nil {
			return fmt.Errorf("webhook ingest: %w", err)
		}
	}

	printTable()
	return nil
}

// measureLists times the conversation list with each filter, and deep paging with the cursor.
func measureLists(c *client, queries int) error {
	var sample struct {
		Data []struct {
			AssistantID string `json:"assistant_id"`
			CustomerID  string `json:"customer_id"`
		} `json:"data"`
	}
	if err := c.getJSON("/api/v1/conversations?limit=1&type=whatsapp", &sample); err != nil || len(sample.Data) == 0 {
		return fmt.Errorf("sample: %v", err)
	}
	// An order number that appears in the data, found the way a person would: in a transcript.
	var withOrder struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := c.getJSON("/api/v1/conversations?limit=1&q=ORD", &withOrder); err != nil || len(withOrder.Data) == 0 {
		return fmt.Errorf("no conversation mentions an order: %v", err)
	}
	var transcript struct {
		Messages []struct {
			Text string `json:"text"`
		} `json:"messages"`
	}
	if err := c.getJSON("/api/v1/conversations/"+withOrder.Data[0].ID, &transcript); err != nil {
		return err
	}
	orderNumber := ""
	for _, m := range transcript.Messages {
		if i := strings.Index(m.Text, "ORD-"); i >= 0 && len(m.Text) >= i+10 {
			orderNumber = m.Text[i+4 : i+10]
			break
		}
	}
	weekAgo := time.Now().UTC().AddDate(0, 0, -7).Format("2006-01-02")
	filters := []struct{ name, query string }{
		{"none", ""},
		{"type", "type=whatsapp"},
		{"assistant", "assistant_id=" + sample.Data[0].AssistantID},
		{"customer", "customer=" + sample.Data[0].CustomerID},
		{"status", "status=handoff"},
		{"dates (last 7 days)", "from=" + weekAgo},
		{"text, an order number", "q=ORD-" + orderNumber},
		{"text, a common word", "q=delivery"},
		// The generator's Zipf-ranked word 3,000: in ~0.04% of messages (3.7k of 10M), one
		// conversation in ~270. Where neither plan is cheap: too common to sort every match, too
		// rare for the walk to fill a page soon.
		{"text, a mid-frequency word", "q=" + vocabulary[3000]},
		{"combined", "type=whatsapp&status=ended&from=" + weekAgo},
	}
	for _, f := range filters {
		lat, err := c.timeGets("/api/v1/conversations?limit=50&"+f.query, queries)
		if err != nil {
			return fmt.Errorf("list %s: %w", f.name, err)
		}
		p50, p95 := pct(lat, 50), pct(lat, 95)
		record("list, filter "+f.name+": p50 / p95", ms(p50)+" / "+ms(p95), "p95 ≤ 10 ms", "", pass(p95 <= 10*time.Millisecond))
	}
	// Paging deep with the cursor costs the same as the first page.
	if lat, err := c.timePages("/api/v1/conversations?limit=50", queries); err == nil {
		record("list, cursor pages 2…: p50 / p95", ms(pct(lat, 50))+" / "+ms(pct(lat, 95)), "p95 ≤ 10 ms", "", pass(pct(lat, 95) <= 10*time.Millisecond))
	}

	return nil
}

// measureTurns times AI turns through the API with a zero-latency model (the builtin one).
func measureTurns(c *client, turns int) error {
	var asst struct{ ID string }
	if err := c.postJSON("/api/v1/assistants", `{"name":"Bench","system_prompt":"You are a bench assistant.","model":"builtin"}`, &asst); err != nil {
		return err
	}
	var conv struct{ ID string }
	if err := c.postJSON("/api/v1/conversations", `{"assistant_id":"`+asst.ID+`","type":"api"}`, &conv); err != nil {
		return err
	}
	turnLat := make([]time.Duration, 0, turns)
	for i := 0; i < turns; i++ {
		t0 := time.Now()
		if err := c.postJSON("/api/v1/conversations/"+conv.ID+"/messages", `{"text":"Tell me about delivery times please"}`, nil); err != nil {
			return fmt.Errorf("turn: %w", err)
		}
		turnLat = append(turnLat, time.Since(t0))
	}
	record("AI turn, zero-latency model: p50 / p99", ms(pct(turnLat, 50))+" / "+ms(pct(turnLat, 99)), "p50 ≤ 2 ms", "", pass(pct(turnLat, 50) <= 2*time.Millisecond))
	return nil
}

func printTable() {
	fmt.Printf("\nParley benchmark — %s/%s, %d CPUs, %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"))
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "figure\tmeasured\ttarget\tbaseline (same run)\tmet")
	fmt.Fprintln(w, "---\t---\t---\t---\t---")
	for _, f := range figures {
		met := ""
		if f.ok != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*f.ok]
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", f.name, f.value, f.target, f.baseline, met)
	}
	w.Flush()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
func mb(b int64) string         { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// server is a running parley binary.
type server struct {
	cmd  *exec.Cmd
	base string
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startServer(bin, dir string, env []string) (*server, time.Duration, error) {
	addr, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(bin, "serve", "--addr", addr)
	cmd.Dir = dir
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stderr = &logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	base := "http://" + addr
	for time.Since(start) < 30*time.Second {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return &server{cmd: cmd, base: base}, time.Since(start), nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return nil, 0, fmt.Errorf("server not ready: %s", logs.String())
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
	}
}

func (s *server) status(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// cpu is the server's CPU time so far (user + system), from /proc/PID/stat.
func (s *server) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100) // clock ticks: USER_HZ is 100 on Linux
}

func (s *server) rss() int64     { return s.status("VmRSS") }
func (s *server) peakRSS() int64 { return s.status("VmHWM") }

// resetPeakRSS sets the process's peak RSS back to its current RSS (Linux: "5" to clear_refs).
func (s *server) resetPeakRSS() {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", s.cmd.Process.Pid), []byte("5"), 0)
}

type client struct {
	base, key string
	http      *http.Client
}

func (c *client) do(method, path, body string) (*http.Response, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	return c.http.Do(req)
}

func (c *client) getJSON(path string, v any) error {
	resp, err := c.do("GET", path, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (c *client) postJSON(path, body string, v any) error {
	resp, err := c.do("POST", path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	if v == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (c *client) timeGets(path string, n int) ([]time.Duration, error) {
	// One warm-up request, then n timed ones.
	if _, err := c.timeGet(path); err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		d, err := c.timeGet(path)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func (c *client) timeGet(path string) (time.Duration, error) {
	t0 := time.Now()
	resp, err := c.do("GET", path, "")
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("%s: status %d", path, resp.StatusCode)
	}
	return time.Since(t0), err
}

// timePages follows next_cursor, timing every page after the first.
func (c *client) timePages(path string, n int) ([]time.Duration, error) {
	var out []time.Duration
	cursor := ""
	for i := 0; i <= n; i++ {
		p := path
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		t0 := time.Now()
		var page struct {
			NextCursor *string `json:"next_cursor"`
		}
		if err := c.getJSON(p, &page); err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, time.Since(t0))
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	return out, nil
}

func (c *client) export(path string) (int64, time.Duration, error) {
	t0 := time.Now()
	resp, err := c.do("GET", path, "")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	// The generated texts hold no newlines, so lines are records; counting them in large chunks keeps
	// the client's share of the two cores small.
	buf := make([]byte, 1<<20)
	var rows int64
	for {
		n, err := resp.Body.Read(buf)
		rows += int64(bytes.Count(buf[:n], []byte{'\n'}))
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return rows - 1, time.Since(t0), nil // minus the header
}

// loadLoop runs fn from n goroutines for d and returns the completed count and latencies.
func loadLoop(n int, d time.Duration, fn func() error) (int64, []time.Duration, error) {
	var done atomic.Int64
	var mu sync.Mutex
	var lats []time.Duration
	var firstErr error
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := fn(); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t0))
				done.Add(1)
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return done.Load(), lats, firstErr
}
