package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
)

// The export's own CSV encoding must give exactly what encoding/csv gives.
func TestCSVMatchesEncodingCSV(t *testing.T) {
	tricky := []string{"", "plain", "a,b", `say "hi"`, "line\nbreak", "cr\rhere", "\r\n", " leading space", "\tleading tab",
		"\u00a0nbsp first", `\.`, `\.x`, "trailing space ", `"`, `""`, "ünïcödé, with comma", "emoji 🙂", "x\"y\"z,"}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune{'a', ',', '"', '\r', '\n', ' ', '\t', 'é', '\\', '.', '\u2003'}
	for range 2000 {
		// Up to 40 runes, mostly plain, so that the eight-bytes-at-a-time scan meets a special
		// character at every offset, or none.
		n := r.IntN(40)
		s := make([]rune, n)
		for i := range s {
			s[i] = 'a'
			if r.IntN(12) == 0 {
				s[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		tricky = append(tricky, string(s))
	}
	for i := 0; i+3 <= len(tricky); i++ {
		fields := tricky[i : i+3]
		var want bytes.Buffer
		w := csv.NewWriter(&want)
		_ = w.Write(fields)
		w.Flush()
		if got := appendCSVRecord(nil, fields...); string(got) != want.String() {
			t.Fatalf("%q: got %q, want %q", fields, got, want.String())
		}
	}
}

func TestMessageCSVMatchesEncodingCSV(t *testing.T) {
	lat := int64(1234)
	at := time.Date(2026, 11, 29, 18, 4, 5, 678_000_000, time.UTC)
	c := &conversation.Conversation{ID: "conv_1", Type: "whatsapp", Status: "active", CustomerID: "4915112345678", CustomerName: "Zoë, \"Z\"",
		AssistantID: "asst_1", AssistantName: " Ava", CreatedAt: at}
	msgs := []struct {
		m      *conversation.Message
		stored *conversation.StoredJSON
	}{
		{&conversation.Message{ID: "msg_1", ExternalID: "wamid.HBgL==", Role: "user", Direction: "inbound", Type: "text", Text: "Hi,\nwhere is \"my\" order?", CreatedAt: at}, nil},
		{&conversation.Message{ID: "msg_2", Role: "assistant", Direction: "outbound", Type: "text", Text: "Checking", Status: "failed",
			Media:     &conversation.Media{ID: "m1", MimeType: "image/jpeg", URL: "/x?a=1&b=2"},
			ToolCalls: []conversation.ToolCall{{ID: "t1", Name: "lookup", Arguments: []byte(`{"order":"A-1"}`), Result: "<ok>"}},
			Error:     &conversation.MessageError{Code: "131047", Title: "Re-engagement"}, TokensIn: 120, TokensOut: 33, CostMicros: 1250, LatencyMS: &lat, CreatedAt: at}, nil},
		{&conversation.Message{ID: "msg_3", Role: "assistant", Direction: "outbound", Type: "image", CostMicros: 3, CreatedAt: at},
			&conversation.StoredJSON{Media: []byte(`{"id":"m2","mime_type":"image/png","url":"/y"}`)}},
	}
	for _, x := range msgs {
		var want bytes.Buffer
		w := csv.NewWriter(&want)
		media, tools, msgErr := "", "", ""
		if x.stored != nil {
			media, tools, msgErr = string(x.stored.Media), string(x.stored.ToolCalls), string(x.stored.Error)
		} else {
			media, tools, msgErr = marshalIf(x.m.Media != nil, x.m.Media), marshalIf(len(x.m.ToolCalls) > 0, x.m.ToolCalls), marshalIf(x.m.Error != nil, x.m.Error)
		}
		latency := ""
		if x.m.LatencyMS != nil {
			latency = "1234"
		}
		m := x.m
		_ = w.Write([]string{c.ID, string(c.Type), string(c.Status), c.CustomerID, c.CustomerName, c.AssistantID, c.AssistantName, jsonTime(c.CreatedAt),
			m.ID, m.ExternalID, jsonTime(m.CreatedAt), string(m.Role), string(m.Direction), m.Type, m.Text, media, tools, m.Status, msgErr,
			itoa(m.TokensIn), itoa(m.TokensOut), ftoa(USD(m.CostMicros)), latency})
		w.Flush()
		if got := appendMessageCSV(nil, conversationCSV(c), m, x.stored); string(got) != want.String() {
			t.Fatalf("message %s:\n got %q\nwant %q", m.ID, got, want.String())
		}
	}
}

func marshalIf(ok bool, v any) string {
	if !ok {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func itoa(n int64) string   { return strconv.FormatInt(n, 10) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func TestAppendTimeMSMatchesFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	times := []time.Time{{}, time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 1, 30, 0, 5_000_000, time.FixedZone("CEST", 7200))}
	for range 2000 {
		times = append(times, time.UnixMilli(r.Int64N(4e12)).In(time.FixedZone("x", r.IntN(50000)-25000)).Add(time.Duration(r.IntN(1e6))))
	}
	for _, at := range times {
		if got, want := string(appendTimeMS(nil, at)), jsonTime(at); got != want {
			t.Fatalf("%v: got %s, want %s", at, got, want)
		}
	}
}

func BenchmarkMessageCSV(b *testing.B) {
	at := time.Now()
	c := &conversation.Conversation{ID: "conv_1", Type: "whatsapp", Status: "active", CustomerID: "4915112345678", AssistantID: "asst_1", AssistantName: "Ava", CreatedAt: at}
	m := &conversation.Message{ID: "msg_01JDF6M4", Role: "user", Direction: "inbound", Type: "text", CreatedAt: at,
		Text: "Hello, I ordered the blue jacket last week and the tracking page still says the package has not left the warehouse"}
	conv := conversationCSV(c)
	var buf []byte
	for b.Loop() {
		buf = appendMessageCSV(buf[:0], conv, m, nil)
	}
}
