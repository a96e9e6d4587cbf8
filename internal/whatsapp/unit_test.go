package whatsapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestVerifySignature(t *testing.T) {
	cases := []struct {
		name, secret, body, header string
		want                       bool
	}{
		// courier's vector
		{"courier", "sesame", "hello world", "sha256=f39034b29165ec6a5104d9aef27266484ab26c8caa7bca8bcb2dd02e8be61b17", true},
		{"courier other body", "sesame", "hello world2", "sha256=60905fdf409d0b4f721e99f6f25b31567a68a6b45e933d814e17a246be4c5a53", true},
		{"wrong body", "sesame", "hello world!", "sha256=f39034b29165ec6a5104d9aef27266484ab26c8caa7bca8bcb2dd02e8be61b17", false},
		// Meta signs its escaped serialization: the raw bytes with \uXXXX verify, the decoded text does not.
		{"escaped unicode raw bytes", "YOUR_APP_SECRET",
			`Let's pretend this body is equal to the message object and can handle unicode characters like \u307f\u3069\u308a\u3044\u308d and J'ai mang\u00e9 des p\u00e2tes`,
			"sha256=0363007aabdf1ab579f35936651a460fb5fa1aaf40df98b1264446b72cc96688", true},
		{"decoded unicode does not verify", "YOUR_APP_SECRET",
			"Let's pretend this body is equal to the message object and can handle unicode characters like みどりいろ and J'ai mangé des pâtes",
			"sha256=0363007aabdf1ab579f35936651a460fb5fa1aaf40df98b1264446b72cc96688", false},
		{"wrong secret", "other", "hello world", "sha256=f39034b29165ec6a5104d9aef27266484ab26c8caa7bca8bcb2dd02e8be61b17", false},
		{"no prefix", "sesame", "hello world", "f39034b29165ec6a5104d9aef27266484ab26c8caa7bca8bcb2dd02e8be61b17", false},
		{"sha1 header", "sesame", "hello world", "sha1=2aae6c35c94fcfb415dbe95f408b9ce91ee846ed", false},
		{"truncated", "sesame", "hello world", "sha256=f39034b2", false},
		{"not hex", "sesame", "hello world", "sha256=" + strings.Repeat("zz", 32), false},
		{"empty secret", "", "hello world", Sign([]byte("hello world"), ""), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sum, ok := ParseSignature(c.header)
			got := ok && VerifySignature([]byte(c.body), sum, c.secret)
			if got != c.want {
				t.Fatalf("verify = %v, want %v", got, c.want)
			}
		})
	}
	if Sign([]byte("hello world"), "sesame") != "sha256=f39034b29165ec6a5104d9aef27266484ab26c8caa7bca8bcb2dd02e8be61b17" {
		t.Fatal("Sign does not match the reference vector")
	}
}

func msgJSON(body string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
"metadata":{"display_phone_number":"15550001111","phone_number_id":"1122"},"contacts":[{"profile":{"name":"Ana"},"wa_id":"34600111222"}],
"messages":[{"from":"34600111222","id":"wamid.X","timestamp":"1697043379",` + body + `}]}}]}]}`)
}

func TestConvert(t *testing.T) {
	cases := []struct {
		name, body        string
		typ, text         string
		mediaID, mimeType string
	}{
		{"text", `"type":"text","text":{"body":"Hola \u00bfqu\u00e9 tal? http:\/\/x.y"}`, "text", "Hola ¿qué tal? http://x.y", "", ""},
		{"image caption", `"type":"image","image":{"caption":"the receipt","mime_type":"image/jpeg","sha256":"x","id":"m1"}`, "image", "the receipt", "m1", "image/jpeg"},
		{"voice note", `"type":"audio","audio":{"mime_type":"audio/ogg; codecs=opus","id":"m2","voice":true}`, "audio", "", "m2", "audio/ogg; codecs=opus"},
		{"video", `"type":"video","video":{"mime_type":"video/mp4","id":"m3"}`, "video", "", "m3", "video/mp4"},
		{"document", `"type":"document","document":{"caption":"invoice","filename":"inv.pdf","mime_type":"application/pdf","id":"m4"}`, "document", "invoice", "m4", "application/pdf"},
		{"sticker", `"type":"sticker","sticker":{"mime_type":"image/webp","id":"m5","animated":true}`, "sticker", "", "m5", "image/webp"},
		{"location", `"type":"location","location":{"latitude":37.4611978,"longitude":-122.2164385,"name":"HQ","address":"1 Hacker Way"}`, "location", "Location: HQ, 1 Hacker Way, (37.4611978, -122.2164385)", "", ""},
		{"contacts", `"type":"contacts","contacts":[{"name":{"formatted_name":"Chandler Bing","first_name":"Chandler"},"phones":[{"phone":"+1 555-555-5555","type":"CELL"}]},{"name":{"first_name":"Monica"},"phones":[]}]`, "contacts", "Shared contacts: Chandler Bing (+1 555-555-5555); Monica", "", ""},
		{"button reply", `"type":"interactive","context":{"from":"1122","id":"wamid.Q"},"interactive":{"type":"button_reply","button_reply":{"id":"yes","title":"Yes please"}}`, "interactive", "Yes please", "", ""},
		{"list reply", `"type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"r2","title":"Tuesday","description":"9:00"}}`, "interactive", "Tuesday — 9:00", "", ""},
		{"template quick reply", `"type":"button","button":{"text":"No","payload":"No-Button-Payload"}`, "button", "No", "", ""},
		{"reaction", `"type":"reaction","reaction":{"message_id":"wamid.Y","emoji":"\ud83d\udc4d"}`, "reaction", "👍", "", ""},
		{"reaction removed", `"type":"reaction","reaction":{"message_id":"wamid.Y","emoji":""}`, "reaction", "(reaction removed)", "", ""},
		{"referral keeps text", `"type":"text","referral":{"source_url":"https:\/\/fb.me\/ad","source_type":"ad","headline":"Sale"},"text":{"body":"I saw the ad"}`, "text", "I saw the ad", "", ""},
		{"unsupported", `"type":"unsupported","errors":[{"code":131051,"title":"Message type unknown","error_data":{"details":"Message type is currently not supported."}}],"unsupported":{"type":"pool"}`, "unsupported", "[Message type unknown: Message type is currently not supported.]", "", ""},
		{"unknown", `"type":"unknown","errors":[{"code":130501,"details":"Message type is not currently supported","title":"Unsupported message type"}]`, "unsupported", "[Unsupported message type: Message type is not currently supported]", "", ""},
		{"future type", `"type":"hologram","hologram":{"x":1}`, "unsupported", "[unsupported message type hologram]", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse(msgJSON(c.body))
			if err != nil {
				t.Fatal(err)
			}
			m := &p.Entry[0].Changes[0].Value.Messages[0]
			got := Convert(m)
			if got.Type != c.typ || got.Text != c.text {
				t.Fatalf("got (%q, %q), want (%q, %q)", got.Type, got.Text, c.typ, c.text)
			}
			if c.mediaID == "" && got.Media != nil || c.mediaID != "" && (got.Media == nil || got.Media.ID != c.mediaID || got.Media.MimeType != c.mimeType) {
				t.Fatalf("media = %+v, want id %q mime %q", got.Media, c.mediaID, c.mimeType)
			}
			if !json.Valid(m.Raw) || !strings.Contains(string(m.Raw), `"wamid.X"`) {
				t.Fatalf("raw payload not kept: %s", m.Raw)
			}
		})
	}
}

func TestParse(t *testing.T) {
	if _, err := Parse([]byte(`{"object":"whatsapp_business_account","entry":[`)); err == nil {
		t.Fatal("broken JSON parsed")
	}
	if _, err := Parse([]byte(`{"object":"page","entry":[]}`)); !errors.Is(err, ErrNotWhatsApp) {
		t.Fatalf("other object: %v", err)
	}
	if _, err := Parse([]byte(`{"object":"whatsapp_business_account"} {}`)); err == nil {
		t.Fatal("trailing data accepted")
	}
	// Timestamps arrive as strings and as numbers; several numbers in one delivery.
	p, err := Parse([]byte(`{"object":"whatsapp_business_account","entry":[
	 {"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"A"},"statuses":[{"id":"w1","status":"sent","timestamp":1454119029}]}}]},
	 {"id":"2","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"B"}}},{"field":"messages","value":{"metadata":{"phone_number_id":"A"}}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.PhoneNumberIDs(); fmt.Sprint(got) != "[A B]" {
		t.Fatalf("phone ids %v", got)
	}
	if ts := p.Entry[0].Changes[0].Value.Statuses[0].Timestamp; ts != 1454119029 {
		t.Fatalf("numeric timestamp %d", ts)
	}
}

func TestAddressed(t *testing.T) {
	cases := []struct {
		name, body string
		ids        string // fmt.Sprint of the ids; "error" when refused
	}{
		{"two numbers, one twice", `{"object":"whatsapp_business_account","entry":[
		 {"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"A"},"statuses":[{"id":"w1","status":"sent","timestamp":1454119029}]}}]},
		 {"id":"2","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"B"}}},{"field":"messages","value":{"metadata":{"phone_number_id":"A"}}}]}]}`, "[A B]"},
		{"keys in another case, escapes, members after", `{"OBJECT":"whatsapp_business_account","Entry":[{"changes":[{"value":{"messages":[{"text":{"body":"say \"phone_number_id\":\"X\" \\"}}],
		 "metadata":{"display_phone_number":"1","phone_number_id":"1\u0032"}},"field":"messages"}],"id":"9"}]}`, "[12]"},
		{"the id elsewhere is not an address", `{"entry":[{"changes":[{"value":{"contacts":[{"phone_number_id":"X"}],"metadata":{"phone_number_id":"A"}}}],"metadata":{"phone_number_id":"Y"}}]}`, "[A]"},
		{"nulls", `{"object":null,"entry":[null,{"changes":null},{"changes":[{"value":{"metadata":null}}]}]}`, "[]"},
		{"null body (as Parse reads it)", `null`, "[]"},
		{"a quality update, no metadata", `{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"phone_number_quality_update","value":{"event":"FLAGGED"}}]}]}`, "[]"},
		{"broken JSON", `{"object":"whatsapp_business_account","entry":[`, "error"},
		{"trailing data", `{"object":"whatsapp_business_account"} {}`, "error"},
		{"another object", `{"object":"page","entry":[]}`, "error"},
		{"not an object", `[{"entry":[]}]`, "error"},
		{"entry of the wrong type", `{"entry":{"changes":[]}}`, "error"},
		{"a number as the id", `{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":123}}}]}]}`, "error"},
		{"numbers and literals elsewhere", `{"entry":[{"n":-0.5e+10,"x":[true,false,null,0,12.25,1E3],"changes":[]}]}`, "[]"},
		{"a literal cut short", `{"entry":[{"x":tru}]}`, "error"},
		{"a number with a leading zero", `{"entry":[{"x":01}]}`, "error"},
		{"a number with no digits after the point", `{"entry":[{"x":1.}]}`, "error"},
		{"a control character in a string", "{\"entry\":[{\"x\":\"a\x01\"}]}", "error"},
		{"a bad escape", `{"entry":[{"x":"\q"}]}`, "error"},
		{"a short unicode escape", `{"entry":[{"x":"\u12"}]}`, "error"},
		{"a trailing comma", `{"entry":[1,]}`, "error"},
		{"no comma", `{"entry":[1 2]}`, "error"},
		{"no colon", `{"entry" []}`, "error"},
		{"a key that is not a string", `{entry:[]}`, "error"},
		{"nested deeper than encoding/json allows", `{"entry":[{"x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}]}`, "error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ids, err := Addressed([]byte(c.body))
			got := fmt.Sprint(ids)
			if err != nil {
				got = "error"
			}
			if got != c.ids {
				t.Fatalf("got %s (%v), want %s", got, err, c.ids)
			}
			if c.ids == "error" {
				return
			}
			// What Parse reads, Addressed reads the same way.
			p, err := Parse([]byte(c.body))
			if err != nil {
				t.Fatalf("Parse refused it: %v", err)
			}
			if want := fmt.Sprint(p.PhoneNumberIDs()); want != got {
				t.Fatalf("Parse found %s", want)
			}
		})
	}
}

// TestAddressedManyNumbers: past the few numbers a real delivery names, the ids are still found
// once each, and a crafted body naming 100k of them (read before its signature is checked) costs
// a walk, not a quadratic search.
func TestAddressedManyNumbers(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"entry":[{"changes":[`)
	const n = 100_000
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"value":{"metadata":{"phone_number_id":"%d"}}},{"value":{"metadata":{"phone_number_id":"%d"}}}`, i, i/2)
	}
	b.WriteString(`]}]}`)
	start := time.Now()
	ids, err := Addressed([]byte(b.String()))
	if err != nil || len(ids) != n || ids[0] != "0" || ids[n-1] != fmt.Sprint(n-1) {
		t.Fatalf("%d ids, %v", len(ids), err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("%d numbers took %v", n, took)
	}
}

// FuzzAddressedSyntax: the walk's verdict on syntax is encoding/json's: what json.Valid accepts is
// never refused as not JSON, and what it refuses is never accepted.
func FuzzAddressedSyntax(f *testing.F) {
	for _, seed := range []string{`{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"1"}}}]}]}`,
		`{"a":[1,-2.5e3,true,false,null,"\u00e7\n"]}`, `{"a":01}`, `{"a":"\x"}`, `[]`, `null`, ` {} `, `{"a":1,}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := addressed(body)
		valid := json.Valid(body)
		if valid && errors.Is(err, errSyntax) {
			t.Fatalf("refused as not JSON, which json.Valid accepts: %q", body)
		}
		if !valid && err == nil {
			t.Fatalf("accepted what json.Valid refuses: %q", body)
		}
	})
}

func TestSplitText(t *testing.T) {
	long := strings.Repeat("word ", 2000) // 10,000 chars
	cases := []struct {
		name  string
		text  string
		parts int
	}{
		{"short", "hello", 1},
		{"exactly max", strings.Repeat("a", MaxTextLength), 1},
		{"one over", strings.Repeat("a", MaxTextLength+1), 2},
		{"words", long, 3},
		{"multibyte", strings.Repeat("é", MaxTextLength*2+5), 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parts := SplitText(c.text, MaxTextLength)
			if len(parts) != c.parts {
				t.Fatalf("%d parts, want %d", len(parts), c.parts)
			}
			total := 0
			for _, p := range parts {
				n := utf8.RuneCountInString(p)
				if n > MaxTextLength || !utf8.ValidString(p) {
					t.Fatalf("part of %d characters (valid %v)", n, utf8.ValidString(p))
				}
				total += len(strings.ReplaceAll(p, " ", ""))
			}
			if want := len(strings.ReplaceAll(c.text, " ", "")); total != want {
				t.Fatalf("lost text: %d of %d bytes", total, want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want Class
	}{
		{&APIError{HTTPStatus: 400, Code: 130429}, Throttled},
		{&APIError{HTTPStatus: 403, Code: 131056}, Throttled},
		{&APIError{HTTPStatus: 400, Code: 80007}, Throttled},
		{&APIError{HTTPStatus: 429, Code: 613}, Throttled},
		{&APIError{HTTPStatus: 400, Code: 131053}, Retryable},
		{&APIError{HTTPStatus: 400, Code: 131047}, Permanent},
		{&APIError{HTTPStatus: 400, Code: 131026}, Permanent},
		{&APIError{HTTPStatus: 400, Code: 131049}, Permanent},
		{&APIError{HTTPStatus: 403, Code: 368}, Permanent},
		{&APIError{HTTPStatus: 401, Code: 190}, BadToken},
		{&APIError{HTTPStatus: 502}, Retryable},
		{errors.New("connection refused"), Retryable},
	}
	for _, c := range cases {
		if got := Classify(c.err); got != c.want {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
		}
	}
}

func TestPriceOf(t *testing.T) {
	f, tr := false, true
	cases := []struct {
		p    *Pricing
		want int64
	}{
		{nil, 0},
		{&Pricing{Billable: &tr, Category: "marketing", PricingModel: "PMP", Type: "regular"}, Prices["marketing"]},
		{&Pricing{Billable: &f, Category: "marketing"}, 0},
		{&Pricing{Category: "utility", Type: "free_customer_service"}, 0},
		{&Pricing{Billable: &tr, Category: "service"}, 0},
	}
	for _, c := range cases {
		if got := PriceOf(c.p); got != c.want {
			t.Errorf("%+v: %d, want %d", c.p, got, c.want)
		}
	}
}

func TestAPIErrorDecoding(t *testing.T) {
	body := `{"error":{"message":"(#131006) Resource not found","type":"OAuthException","code":131006,"error_data":{"messaging_product":"whatsapp","details":"unknown contact"},"error_subcode":2494007,"fbtrace_id":"Az8"}}`
	resp := &http.Response{StatusCode: 400, Body: ioNopCloser(body)}
	err := apiError(resp).(*APIError)
	if err.Code != 131006 || err.Subcode != 2494007 || err.Details != "unknown contact" || err.HTTPStatus != 400 {
		t.Fatalf("%+v", err)
	}
}

func BenchmarkVerifySignature(b *testing.B) {
	body := msgJSON(`"type":"text","text":{"body":"` + strings.Repeat("hello \u00e9 ", 50) + `"}`)
	header := Sign(body, "app-secret")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		sum, ok := ParseSignature(header)
		if !ok || !VerifySignature(body, sum, "app-secret") {
			b.Fatal("signature")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	body := benchDelivery()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		for i := range p.Entry[0].Changes[0].Value.Messages {
			_ = Convert(&p.Entry[0].Changes[0].Value.Messages[i])
		}
	}
}

// BenchmarkAddressed reads what a kept delivery needs before its 200, on the delivery
// BenchmarkParse parses, and on a one-message delivery (a burst's) against Parse.
func BenchmarkAddressed(b *testing.B) {
	one := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"912345678"},"contacts":[{"profile":{"name":"Customer 5"},"wa_id":"351910000005"}],"messages":[{"from":"351910000005","id":"wamid.bench.1.5","timestamp":"1700000000","text":{"body":"Hi, where is my order ORD-000005? It was due yesterday."},"type":"text"}]},"field":"messages"}]}]}`)
	for _, c := range []struct {
		name string
		body []byte
		read func([]byte) error
	}{
		{"40 messages", benchDelivery(), func(b []byte) error { _, err := Addressed(b); return err }},
		{"one message", one, func(b []byte) error { _, err := Addressed(b); return err }},
		{"one message, Parse", one, func(b []byte) error { _, err := Parse(b); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.read(c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchDelivery is a batch of 40 messages of mixed types, as Meta groups them.
func benchDelivery() []byte {
	var msgs []string
	for i := range 20 {
		msgs = append(msgs, fmt.Sprintf(`{"from":"34600111222","id":"wamid.%d","timestamp":"1697043379","type":"text","text":{"body":"message %d with caf\u00e9"}}`, i, i),
			fmt.Sprintf(`{"from":"34600111222","id":"wamid.i%d","timestamp":"1697043379","type":"image","image":{"mime_type":"image/jpeg","id":"m%d","caption":"pic"}}`, i, i))
	}
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
"metadata":{"display_phone_number":"15550001111","phone_number_id":"1122"},"contacts":[{"profile":{"name":"Ana"},"wa_id":"34600111222"}],
"messages":[` + strings.Join(msgs, ",") + `]}}]}]}`)
}

// The drainer runs one customer's kept deliveries in order in one lane; a delivery about several
// customers, or none, must be recognised so it runs alone.
func TestPayloadCustomer(t *testing.T) {
	meta := `"metadata":{"display_phone_number":"1","phone_number_id":"9"}`
	cases := []struct {
		name, value string
		key         string
		single      bool
	}{
		{"one message", `"messages":[{"from":"+34 600 000 001","id":"a","type":"text","text":{"body":"x"}}]`, "34600000001", true},
		{"two messages, one customer", `"messages":[{"from":"34600000001","id":"a"},{"from":"34600000001","id":"b"}]`, "34600000001", true},
		{"two customers", `"messages":[{"from":"34600000001","id":"a"},{"from":"34600000002","id":"b"}]`, "", false},
		{"message and its status", `"messages":[{"from":"34600000001","id":"a"}],"statuses":[{"id":"s","status":"read","recipient_id":"34600000001"}]`, "34600000001", true},
		{"statuses of two customers", `"statuses":[{"id":"s","status":"read","recipient_id":"1"},{"id":"t","status":"read","recipient_id":"2"}]`, "", false},
		{"nothing about a customer", `"event":"FLAGGED"`, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse([]byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{` + meta + `,` + c.value + `}}]}]}`))
			if err != nil {
				t.Fatal(err)
			}
			key, single := p.customer()
			if key != c.key || single != c.single {
				t.Fatalf("customer() = %q, %v; want %q, %v", key, single, c.key, c.single)
			}
		})
	}
}

// During a burst the drainer holds off for at most burstGrace from when it began holding, then
// rests after each take, and neither once no delivery has been kept for burstQuiet.
func TestDrainerHoldsOffDuringABurst(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name      string
		lastKept  time.Duration // before now
		heldSince time.Duration // before now; 0: not holding yet
		want      time.Duration
		restLeft  time.Duration // how long the rest after the last take still lasts
	}{
		{"burst on, starts holding", 10 * time.Millisecond, 0, holdStep, 0},
		{"burst on, held a while", 0, 2 * time.Second, holdStep, 0},
		{"burst on, grace nearly over", 0, burstGrace - 20*time.Millisecond, 20 * time.Millisecond, 0},
		{"burst on, grace over", 0, burstGrace + time.Second, 0, 0},
		{"burst quiet", burstQuiet, time.Second, 0, 0},
		{"burst ending: wait only until it is quiet", burstQuiet - 10*time.Millisecond, time.Second, 10 * time.Millisecond, 0},
		{"burst on past the grace, resting after a take", 0, burstGrace + time.Second, holdStep, 200 * time.Millisecond},
		{"burst on past the grace, rest nearly over", 0, burstGrace + time.Second, 5 * time.Millisecond, 5 * time.Millisecond},
		{"burst quiet: no rest", burstQuiet, burstGrace + time.Second, 0, 200 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{}
			s.box.lastKept.Store(now.Add(-tc.lastKept).UnixNano())
			if tc.heldSince > 0 {
				s.box.heldSince = now.Add(-tc.heldSince).UnixNano()
			}
			if tc.restLeft > 0 {
				s.box.restUntil = now.Add(tc.restLeft).UnixNano()
			}
			if got := s.holdFor(now); got != tc.want {
				t.Fatalf("holdFor = %v, want %v", got, tc.want)
			}
			if tc.want > 0 && s.box.heldSince == 0 {
				t.Fatal("holding without noting since when")
			}
		})
	}
}

// After a take during which more deliveries were kept than it processed, the drainer rests
// burstRest times as long as the take took; after one that kept up, not at all.
func TestDrainerRestsOnlyWhileOutpaced(t *testing.T) {
	start := time.Now()
	end := start.Add(40 * time.Millisecond)
	cases := []struct {
		name          string
		before, after int64
		rest          time.Duration
	}{
		{"outpaced: the backlog grew", 500, 620, burstRest * 40 * time.Millisecond},
		{"keeping up: the backlog shrank", 500, 400, 0},
		{"level", 500, 500, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{}
			s.box.restUntil = start.Add(time.Hour).UnixNano() // an earlier rest is replaced
			s.tookFrom(start, end, tc.before, tc.after)
			var got time.Duration
			if s.box.restUntil != 0 {
				got = time.Unix(0, s.box.restUntil).Sub(end)
			}
			if got != tc.rest {
				t.Fatalf("rests %v after the take, want %v", got, tc.rest)
			}
		})
	}
}
