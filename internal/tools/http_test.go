package tools_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/tools"
)

func TestPublicAddr(t *testing.T) {
	cases := map[string]bool{
		"8.8.8.8": true, "93.184.216.34": true, "2606:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "::1": false, "fc00::1": false, "fe80::1": false, "::ffff:127.0.0.1": false,
		"224.0.0.1": false, "198.18.0.5": false, "64:ff9b::a00:1": false,
	}
	for ip, want := range cases {
		if got := tools.PublicAddr(netip.MustParseAddr(ip)); got != want {
			t.Errorf("PublicAddr(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestHTTPToolValidate(t *testing.T) {
	cases := []struct {
		name string
		tool tools.HTTPTool
		ok   bool
	}{
		{"get", tools.HTTPTool{Type: "http", Name: "order_status", URL: "https://api.acme.test/orders/{id}"}, true},
		{"post with schema", tools.HTTPTool{Type: "http", Name: "book", Method: "post", URL: "http://x.test/b", Parameters: json.RawMessage(`{"type":"object"}`)}, true},
		{"no scheme", tools.HTTPTool{Type: "http", Name: "a", URL: "api.acme.test"}, false},
		{"ftp", tools.HTTPTool{Type: "http", Name: "a", URL: "ftp://acme.test"}, false},
		{"credentials in URL", tools.HTTPTool{Type: "http", Name: "a", URL: "https://u:p@acme.test"}, false},
		{"built-in name", tools.HTTPTool{Type: "http", Name: "transfer_to_human", URL: "https://acme.test"}, false},
		{"bad method", tools.HTTPTool{Type: "http", Name: "a", URL: "https://acme.test", Method: "CONNECT"}, false},
		{"schema not an object", tools.HTTPTool{Type: "http", Name: "a", URL: "https://acme.test", Parameters: json.RawMessage(`{"type":"string"}`)}, false},
		{"header injection", tools.HTTPTool{Type: "http", Name: "a", URL: "https://acme.test", Headers: map[string]string{"X-Key": "a\r\nHost: evil"}}, false},
		{"timeout too long", tools.HTTPTool{Type: "http", Name: "a", URL: "https://acme.test", TimeoutMS: 120000}, false},
		{"other type", tools.HTTPTool{Type: "grpc", Name: "a", URL: "https://acme.test"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.tool.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestHTTPToolCall(t *testing.T) {
	var mu sync.Mutex
	var gotMethod, gotPath, gotQuery, gotBody, gotKey string
	seen := func() (string, string, string, string, string) {
		mu.Lock()
		defer mu.Unlock()
		return gotMethod, gotPath, gotQuery, gotBody, gotKey
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		gotMethod, gotPath, gotQuery, gotBody, gotKey = r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(b), r.Header.Get("X-Api-Key")
		mu.Unlock()
		switch r.URL.Path {
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		case "/text":
			io.WriteString(w, strings.Repeat("é", tools.MaxHTTPResult))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		io.WriteString(w, `{"booked":true}`)
	}))
	defer srv.Close()
	ctx := context.Background()

	guarded := tools.NewHTTPCaller(false)
	res := guarded.Call(ctx, tools.HTTPTool{Name: "a", Method: "GET", URL: srv.URL + "/x"}, nil, `{}`)
	if m, _, _, _, _ := seen(); !strings.Contains(res, "may not reach") || m != "" {
		t.Fatalf("loopback was reached by a guarded caller: %s", res)
	}

	c := tools.NewHTTPCaller(true)
	res = c.Call(ctx, tools.HTTPTool{Name: "book", Method: "POST", URL: srv.URL + "/slots/{day}"}, map[string]string{"X-Api-Key": "k-123"}, `{"day":"2026/12/01","time":"10:00","people":2}`)
	method, path, _, rawBody, key := seen()
	if method != "POST" || path != "/slots/2026%2F12%2F01" || key != "k-123" {
		t.Fatalf("request %s %s key %q", method, path, key)
	}
	var body map[string]any
	if json.Unmarshal([]byte(rawBody), &body) != nil || body["time"] != "10:00" || body["people"].(float64) != 2 || body["day"] != nil {
		t.Fatalf("body %s", rawBody)
	}
	var out map[string]any
	if json.Unmarshal([]byte(res), &out) != nil || out["status"].(float64) != 201 || out["body"].(map[string]any)["booked"] != true {
		t.Fatalf("result %s", res)
	}

	c.Call(ctx, tools.HTTPTool{Name: "q", Method: "GET", URL: srv.URL + "/find"}, nil, `{"q":"a b","n":3}`)
	if _, _, query, _, _ := seen(); query != "n=3&q=a+b" {
		t.Fatalf("query %q", query)
	}

	res = c.Call(ctx, tools.HTTPTool{Name: "slow", URL: srv.URL + "/slow", TimeoutMS: 50}, nil, `{}`)
	if !strings.Contains(res, "timed out") {
		t.Fatalf("timeout result %s", res)
	}
	res = c.Call(ctx, tools.HTTPTool{Name: "text", URL: srv.URL + "/text"}, nil, `{}`)
	if json.Unmarshal([]byte(res), &out) != nil || out["truncated"] != true || len(out["body"].(string)) > tools.MaxHTTPResult {
		t.Fatalf("large result not truncated to valid text: %.100s", res)
	}
	if res := c.Call(ctx, tools.HTTPTool{Name: "x", URL: srv.URL}, nil, `not json`); !strings.Contains(res, "not a JSON object") {
		t.Fatalf("bad arguments: %s", res)
	}
}
