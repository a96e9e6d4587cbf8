package widget_test

import (
	"encoding/json"
	"testing"

	"github.com/parley-hq/parley/internal/testenv"
)

// FuzzWidgetMessage posts arbitrary bodies as a visitor's message: never a 5xx, and every refusal
// is the JSON error.
func FuzzWidgetMessage(f *testing.F) {
	e := testenv.New(f)
	w := createWidget(f, e, map[string]any{"mode": "chat"})
	token, _ := startSession(f, e, w["public_key"].(string), "")
	for _, seed := range []string{`{"text":"hello"}`, `{"text":"<img src=x onerror=alert(1)>"}`, `{"text":""}`, `{"text":5}`, `{`, `[]`, `{"text":"\u0000\ud800"}`, ``} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e := e.With(t)
		r := public(t, e, "POST", "/widget/v1/messages", "", token, body)
		if r.Status >= 500 {
			t.Fatalf("status %d for %q: %s", r.Status, body, r.Body)
		}
		if r.Status >= 400 {
			var b struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(r.Body, &b); err != nil || b.Error.Code == "" {
				t.Fatalf("status %d without the JSON error: %s", r.Status, r.Body)
			}
		}
	})
}
