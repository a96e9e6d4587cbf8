package widget

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestNormalize(t *testing.T) {
	ok := func() Widget { return Widget{AssistantID: "a1"} }
	tests := []struct {
		name  string
		edit  func(w *Widget)
		field string // "" = valid
	}{
		{"defaults", func(w *Widget) {}, ""},
		{"no assistant", func(w *Widget) { w.AssistantID = "" }, "assistant_id"},
		{"voice", func(w *Widget) { w.Mode = ModeVoiceChat }, ""},
		{"bad mode", func(w *Widget) { w.Mode = "video" }, "mode"},
		{"bad colour", func(w *Widget) { w.PrimaryColor = "red;}body{display:none" }, "primary_color"},
		{"bad position", func(w *Widget) { w.Position = "top" }, "position"},
		{"long title", func(w *Widget) { w.Title = strings.Repeat("x", 81) }, "title"},
		{"fields", func(w *Widget) {
			w.PrechatFields = []PrechatField{{Name: "name", Label: "Name", Required: true}, {Name: "email", Type: "email"}, {Name: "topic", Type: "select", Options: []string{"a", "b"}}}
		}, ""},
		{"field name", func(w *Widget) { w.PrechatFields = []PrechatField{{Name: "Bad Name"}} }, "prechat_fields"},
		{"duplicate field", func(w *Widget) { w.PrechatFields = []PrechatField{{Name: "a"}, {Name: "a"}} }, "prechat_fields"},
		{"select without options", func(w *Widget) { w.PrechatFields = []PrechatField{{Name: "a", Type: "select"}} }, "prechat_fields"},
		{"unknown type", func(w *Widget) { w.PrechatFields = []PrechatField{{Name: "a", Type: "date"}} }, "prechat_fields"},
		{"origins", func(w *Widget) {
			w.AllowedOrigins = []string{"https://Shop.Example.com/", "http://localhost:3000", "*"}
		}, ""},
		{"origin with path", func(w *Widget) { w.AllowedOrigins = []string{"https://shop.example.com/page"} }, "allowed_origins"},
		{"origin not a URL", func(w *Widget) { w.AllowedOrigins = []string{"shop.example.com"} }, "allowed_origins"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := ok()
			tc.edit(&w)
			err := Normalize(&w)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if w.Mode == "" || w.Title == "" || w.Position == "" || w.PrimaryColor == "" {
					t.Fatalf("defaults not filled: %+v", w)
				}
				return
			}
			ie, isInput := err.(*InputError)
			if !isInput || ie.Field != tc.field {
				t.Fatalf("error %v, want an input error on %s", err, tc.field)
			}
		})
	}
	w := Widget{AssistantID: "a", AllowedOrigins: []string{"https://Shop.Example.com:443/", "http://x.test:80"}}
	if err := Normalize(&w); err != nil {
		t.Fatal(err)
	}
	if w.AllowedOrigins[0] != "https://shop.example.com" || w.AllowedOrigins[1] != "http://x.test" {
		t.Fatalf("origins not normalized: %v", w.AllowedOrigins)
	}
}

func TestOriginAllowed(t *testing.T) {
	self := "http://127.0.0.1:8080"
	tests := []struct {
		allowed []string
		origin  string
		want    bool
	}{
		{nil, "", true},                          // no Origin: not a cross-origin browser call
		{nil, self, true},                        // Parley's own pages (the demo)
		{nil, "https://shop.example.com", false}, // empty list: same origin only
		{[]string{"https://shop.example.com"}, "https://shop.example.com", true},
		{[]string{"https://shop.example.com"}, "https://SHOP.example.com:443", true},
		{[]string{"https://shop.example.com"}, "http://shop.example.com", false},
		{[]string{"https://shop.example.com"}, "https://evil.example.com", false},
		{[]string{"https://shop.example.com"}, "null", false},
		{[]string{"*"}, "https://anything.example", true},
	}
	for _, tc := range tests {
		w := &Widget{AllowedOrigins: tc.allowed}
		if got := w.OriginAllowed(tc.origin, self); got != tc.want {
			t.Errorf("allowed %v, origin %q: got %v, want %v", tc.allowed, tc.origin, got, tc.want)
		}
	}
}

func TestValidatePrechat(t *testing.T) {
	fields := []PrechatField{
		{Name: "name", Type: FieldText, Required: true},
		{Name: "email", Type: FieldEmail, Required: true},
		{Name: "phone", Type: FieldPhone},
		{Name: "topic", Type: FieldSelect, Options: []string{"Sales", "Support"}},
	}
	good := func() map[string]string { return map[string]string{"name": "Ada", "email": "ada@example.com"} }
	tests := []struct {
		name  string
		edit  func(m map[string]string)
		field string
	}{
		{"minimal", func(m map[string]string) {}, ""},
		{"all", func(m map[string]string) { m["phone"] = "+44 20 7946 0958"; m["topic"] = "Support" }, ""},
		{"missing required", func(m map[string]string) { delete(m, "name") }, "name"},
		{"blank required", func(m map[string]string) { m["name"] = "   " }, "name"},
		{"bad email", func(m map[string]string) { m["email"] = "ada@" }, "email"},
		{"email without domain dot", func(m map[string]string) { m["email"] = "ada@localhost" }, "email"},
		{"email with display name", func(m map[string]string) { m["email"] = "Ada <ada@example.com>" }, "email"},
		{"bad phone", func(m map[string]string) { m["phone"] = "call me" }, "phone"},
		{"short phone", func(m map[string]string) { m["phone"] = "123" }, "phone"},
		{"bad option", func(m map[string]string) { m["topic"] = "Billing" }, "topic"},
		{"unknown field", func(m map[string]string) { m["admin"] = "yes" }, "admin"},
		{"too long", func(m map[string]string) { m["name"] = strings.Repeat("a", 501) }, "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.edit(m)
			out, err := ValidatePrechat(fields, m)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if out["name"] != strings.TrimSpace(m["name"]) {
					t.Fatalf("answers not kept: %v", out)
				}
				return
			}
			ie, ok := err.(*InputError)
			if !ok || ie.Field != tc.field {
				t.Fatalf("error %v, want an input error on %s", err, tc.field)
			}
		})
	}
}

func TestLimiterSet(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newLimiterSet(rate.Every(10*time.Second), 2)
	for i := 0; i < 2; i++ {
		if ok, _ := s.allow("a", now); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := s.allow("a", now)
	if ok || wait <= 0 || wait > 10*time.Second {
		t.Fatalf("past the burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := s.allow("b", now); !ok {
		t.Fatal("another key shares the budget")
	}
	if ok, _ := s.allow("a", now.Add(10*time.Second)); !ok {
		t.Fatal("the budget does not refill")
	}
	// Keys idle for long are forgotten, so memory stays bounded.
	s.allow("c", now.Add(time.Hour))
	s.mu.Lock()
	n := len(s.m)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d keys kept after an hour idle, want 1", n)
	}
}

// TestScriptBudget keeps widget.js within 12 KB gzipped, as served.
func TestScriptBudget(t *testing.T) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(Script)
	zw.Close()
	if buf.Len() > ScriptBudget || GzipSize() > ScriptBudget {
		t.Fatalf("widget.js is %d bytes gzipped (served: %d), over the %d budget", buf.Len(), GzipSize(), ScriptBudget)
	}
	t.Logf("widget.js: %d bytes, %d gzipped (budget %d)", len(Script), GzipSize(), ScriptBudget)
	if bytes.Contains(Script, []byte("innerHTML")) || bytes.Contains(Script, []byte("insertAdjacentHTML")) || bytes.Contains(Script, []byte("document.write")) {
		t.Fatal("widget.js must render text with textContent, never as HTML")
	}
}

func TestServeScript(t *testing.T) {
	get := func(h http.Header) *http.Response {
		r := httptest.NewRequest("GET", "/widget.js", nil)
		for k, v := range h {
			r.Header[k] = v
		}
		rec := httptest.NewRecorder()
		serveScript(rec, r)
		return rec.Result()
	}
	plain := get(nil)
	body, _ := io.ReadAll(plain.Body)
	if plain.StatusCode != 200 || !bytes.Equal(body, Script) || plain.Header.Get("ETag") == "" || !strings.Contains(plain.Header.Get("Cache-Control"), "max-age") {
		t.Fatalf("plain: %d %v", plain.StatusCode, plain.Header)
	}
	gz := get(http.Header{"Accept-Encoding": {"gzip, br"}})
	if gz.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip not served: %v", gz.Header)
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	unz, _ := io.ReadAll(zr)
	if !bytes.Equal(unz, Script) {
		t.Fatal("gzipped script differs")
	}
	if get(http.Header{"Accept-Encoding": {"gzip;q=0"}}).Header.Get("Content-Encoding") != "" {
		t.Fatal("gzip;q=0 must get the plain script")
	}
	for _, inm := range []string{ScriptETag(), `"other", ` + ScriptETag(), "W/" + ScriptETag()} {
		if r := get(http.Header{"If-None-Match": {inm}}); r.StatusCode != http.StatusNotModified {
			t.Fatalf("If-None-Match %s: %d, want 304", inm, r.StatusCode)
		}
	}
	if r := get(http.Header{"If-None-Match": {`"stale"`}}); r.StatusCode != 200 {
		t.Fatalf("stale ETag: %d, want 200", r.StatusCode)
	}
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		remote string
		xff    []string
		want   string
	}{
		{"203.0.113.7:5000", nil, "203.0.113.7"},
		{"203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"}, // not from a local proxy: ignored
		{"127.0.0.1:5000", nil, "127.0.0.1"},
		{"127.0.0.1:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"[::1]:5000", []string{"10.0.0.9, 198.51.100.2"}, "198.51.100.2"}, // the proxy's own entry is last
		{"127.0.0.1:5000", []string{"1.1.1.1", "198.51.100.3"}, "198.51.100.3"},
		{"127.0.0.1:5000", []string{"not an address"}, "127.0.0.1"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/widget/v1/config", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := clientIP(r); got != tc.want {
			t.Errorf("%s %v: %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}
