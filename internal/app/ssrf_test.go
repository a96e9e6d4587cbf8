package app_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/testenv"
)

// TestWorkspaceURLsCannotReachPrivateNetworks: a sender's Graph API URL is chosen by a workspace;
// unless the operator allows private networks, Parley never connects to a loopback or private
// address through it. The same send reaches the fake when allowed, so the setup itself works.
func TestWorkspaceURLsCannotReachPrivateNetworks(t *testing.T) {
	for _, allow := range []bool{true, false} {
		t.Run(fmt.Sprintf("allow_private=%v", allow), func(t *testing.T) {
			var hits atomic.Int64
			graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"messaging_product":"whatsapp","contacts":[{"input":"1","wa_id":"1"}],"messages":[{"id":"wamid.ssrf"}]}`)
			}))
			defer graph.Close()
			e := testenv.New(t, func(c *app.Config) { c.AllowPrivateNetworks = allow })
			aid := e.CreateAssistant("A", "You are A.")
			s := e.MustDo(201, "POST", "/api/v1/whatsapp/senders", map[string]any{"phone_number_id": "9990001", "display_phone_number": "15550001111",
				"access_token": "t", "app_secret": "s", "verify_token": "v", "assistant_id": aid, "graph_api_url": graph.URL})
			e.MustDo(201, "POST", "/api/v1/whatsapp/templates", map[string]any{"name": "hello", "language": "en_US", "category": "UTILITY",
				"components": []any{map[string]any{"type": "BODY", "text": "Hello {{1}}"}}})
			r := e.Do("POST", "/api/v1/whatsapp/messages", map[string]any{"sender_id": s["id"], "to": "351911111111",
				"template": map[string]any{"name": "hello", "language": "en_US", "components": []any{map[string]any{"type": "body", "parameters": []any{map[string]any{"type": "text", "text": "Ana"}}}}}})
			if r.Status >= 300 {
				t.Fatalf("template send: %d %s", r.Status, r.Body)
			}
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) && hits.Load() == 0 {
				time.Sleep(50 * time.Millisecond)
			}
			if allow && hits.Load() == 0 {
				t.Fatal("allowed, yet the fake Graph API received nothing: the test setup is wrong")
			}
			if !allow && hits.Load() != 0 {
				t.Fatalf("the guard let %d requests through to a loopback address", hits.Load())
			}
		})
	}
}
