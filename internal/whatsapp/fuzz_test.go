package whatsapp_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/parley-hq/parley/internal/testenv"
	"github.com/parley-hq/parley/internal/whatsapp"
)

const fuzzSecret = "fuzz-app-secret"

// FuzzParse feeds arbitrary bytes to the payload parser and the message converter: no panic. What
// Addressed reads before a delivery is kept agrees with the full parse: it refuses what is not
// JSON, accepts whatever the parse does, and names at least the numbers the parse finds.
func FuzzParse(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, aerr := whatsapp.Addressed(body)
		if aerr == nil && !json.Valid(body) {
			t.Fatalf("Addressed accepted invalid JSON %q", body)
		}
		p, err := whatsapp.Parse(body)
		if err != nil {
			if errors.Is(err, whatsapp.ErrNotWhatsApp) && aerr == nil {
				t.Fatalf("Addressed accepted a delivery that is not WhatsApp's: %q", body)
			}
			return
		}
		if aerr != nil {
			t.Fatalf("Addressed refused what Parse reads (%v): %q", aerr, body)
		}
		for _, id := range p.PhoneNumberIDs() {
			if !slices.Contains(ids, id) {
				t.Fatalf("Addressed found %q, Parse also %q: %q", ids, id, body)
			}
		}
		for _, e := range p.Entry {
			for _, ch := range e.Changes {
				for i := range ch.Value.Messages {
					_ = whatsapp.Convert(&ch.Value.Messages[i])
				}
			}
		}
	})
}

// FuzzSignedDelivery posts arbitrary bodies, correctly signed, to the webhook of a real Parley: the
// answer is 200 or a 4xx, never a 5xx, whatever the payload holds.
func FuzzSignedDelivery(f *testing.F) {
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"messaging_product":"whatsapp","contacts":[{"input":"1","wa_id":"1"}],"messages":[{"id":"wamid.fuzz.out"}]}`)
	}))
	defer graph.Close()
	e := testenv.New(f)
	aid := e.CreateAssistant("Fuzz", "You are a fuzz target.")
	e.MustDo(201, "POST", "/api/v1/whatsapp/senders", map[string]any{"phone_number_id": "123456123", "display_phone_number": "15550001111",
		"access_token": "t", "app_secret": fuzzSecret, "verify_token": "v", "assistant_id": aid, "graph_api_url": graph.URL})
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, _ := http.NewRequest("POST", e.URL+"/webhooks/whatsapp", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", whatsapp.Sign(body, fuzzSecret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("status %d for %q", resp.StatusCode, body)
		}
	})
}

func fuzzSeeds() [][]byte {
	msg := func(typ, inner string) []byte {
		return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"123456123"},"contacts":[{"profile":{"name":"Ana \u00e7"},"wa_id":"351911111111"}],"messages":[{"from":"351911111111","id":"wamid.f.` + typ + `","timestamp":"1700000000","type":"` + typ + `",` + inner + `}]},"field":"messages"}]}]}`)
	}
	return [][]byte{
		msg("text", `"text":{"body":"hi \/ there"}`),
		msg("image", `"image":{"id":"m1","mime_type":"image/jpeg","sha256":"x","caption":"c"}`),
		msg("audio", `"audio":{"id":"m2","mime_type":"audio/ogg; codecs=opus","voice":true}`),
		msg("location", `"location":{"latitude":38.7,"longitude":-9.1,"name":"n"}`),
		msg("interactive", `"interactive":{"type":"list_reply","list_reply":{"id":"a","title":"b"}}`),
		msg("reaction", `"reaction":{"message_id":"wamid.x","emoji":""}`),
		msg("unsupported", `"errors":[{"code":131051,"title":"Unsupported"}]`),
		[]byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"123456123"},"statuses":[{"id":"wamid.x","status":"failed","timestamp":"1700000000","recipient_id":"1","errors":[{"code":131047}]}]},"field":"messages"}]}]}`),
		[]byte(`{"entry":[{"changes":[{"value":{"messages":[{}]}}]}]}`),
		[]byte(`{`), []byte(`null`), []byte(`[]`), []byte(``),
	}
}
