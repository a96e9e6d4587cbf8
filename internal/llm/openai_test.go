package llm_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/llm"
	"github.com/parley-hq/parley/internal/llm/llmtest"
)

func newProvider(t *testing.T, fake *llmtest.Server) (*llm.OpenAI, *[]time.Duration) {
	t.Helper()
	p := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: fake.BaseURL(), APIKey: "sk-test", MaxRetries: 3, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, MaxRetryAfter: time.Second})
	var waits []time.Duration
	p.Sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	return p, &waits
}

func userReq(text string) llm.Request {
	return llm.Request{Model: "gpt-4o-mini", Messages: []llm.Message{{Role: "system", Content: "You are Ava."}, {Role: "user", Content: text}},
		Tools: []llm.ToolDef{{Name: "set_variable", Description: "Record a detail.", Parameters: []byte(`{"type":"object","properties":{"name":{"type":"string"},"value":{"type":"string"}},"required":["name","value"]}`)}}}
}

func TestOpenAIStreamsTextWithUsage(t *testing.T) {
	t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1") // must be ignored: the base URL is explicit
	fake := llmtest.New(t)
	fake.Push(llmtest.Text("I'm unable to provide real-time weather updates.", 79, 11))
	p, _ := newProvider(t, fake)
	var deltas []string
	resp, err := p.Chat(context.Background(), userReq("Weather in Boston?"), func(d string) { deltas = append(deltas, d) })
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "I'm unable to provide real-time weather updates." || strings.Join(deltas, "") != resp.Content || len(deltas) < 5 {
		t.Fatalf("content %q from deltas %q", resp.Content, deltas)
	}
	if resp.Usage != (llm.Usage{InputTokens: 79, OutputTokens: 11}) || resp.FinishReason != "stop" {
		t.Fatalf("usage %+v finish %q", resp.Usage, resp.FinishReason)
	}
	req := fake.Requests()[0]
	if req["stream"] != true || req["stream_options"].(map[string]any)["include_usage"] != true {
		t.Fatalf("request did not ask for a stream with usage: %v", req)
	}
	tools := req["tools"].([]any)
	if fn := tools[0].(map[string]any)["function"].(map[string]any); fn["name"] != "set_variable" || fn["parameters"].(map[string]any)["type"] != "object" {
		t.Fatalf("tools sent: %v", tools)
	}
	if msgs := req["messages"].([]any); len(msgs) != 2 || msgs[0].(map[string]any)["role"] != "system" {
		t.Fatalf("messages sent: %v", msgs)
	}
}

func TestOpenAIAccumulatesToolCallsPerIndex(t *testing.T) {
	fake := llmtest.New(t)
	fake.Push(llmtest.Reply{Calls: []llmtest.Call{
		{ID: "call_fdNz3vOBKYgOIpMdWotB9MjY", Name: "set_variable", Arguments: `{"name": "city", "value": "Edinburgh"}`},
		{ID: "call_h1DWI1POMJLb0KwIyQHWXD4p", Name: "set_variable", Arguments: `{"name": "ticker", "value": "AAPL — ñ"}`},
	}, Usage: &[2]int64{149, 60}})
	p, _ := newProvider(t, fake)
	resp, err := p.Chat(context.Background(), userReq("Edinburgh and AAPL"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ToolCalls) != 2 || resp.FinishReason != "tool_calls" {
		t.Fatalf("calls %+v finish %q", resp.ToolCalls, resp.FinishReason)
	}
	want := []llm.ToolCall{{ID: "call_fdNz3vOBKYgOIpMdWotB9MjY", Name: "set_variable", Arguments: `{"name": "city", "value": "Edinburgh"}`},
		{ID: "call_h1DWI1POMJLb0KwIyQHWXD4p", Name: "set_variable", Arguments: `{"name": "ticker", "value": "AAPL — ñ"}`}}
	for i := range want {
		if resp.ToolCalls[i] != want[i] {
			t.Fatalf("call %d = %+v, want %+v", i, resp.ToolCalls[i], want[i])
		}
	}
	if resp.Usage.InputTokens != 149 || resp.Usage.OutputTokens != 60 {
		t.Fatalf("usage %+v", resp.Usage)
	}
}

func TestOpenAIRetryRules(t *testing.T) {
	withHeader := func(r llmtest.Reply, k, v string) llmtest.Reply { r.Header = map[string]string{k: v}; return r }
	cases := []struct {
		name      string
		script    []llmtest.Reply
		wantErr   string // substring; "" for success
		requests  int
		wantWaits []time.Duration // exact waits, when the server said how long
	}{
		{"429 then 200 honours retry-after-ms", []llmtest.Reply{withHeader(llmtest.RateLimited, "retry-after-ms", "6"), llmtest.Text("Hi.", 5, 1)}, "", 2, []time.Duration{6 * time.Millisecond}},
		{"429 honours retry-after seconds", []llmtest.Reply{withHeader(llmtest.RateLimited, "retry-after", "0.5"), llmtest.Text("Hi.", 5, 1)}, "", 2, []time.Duration{500 * time.Millisecond}},
		{"500 twice then 200", []llmtest.Reply{llmtest.ServerError, llmtest.ServerError, llmtest.Text("Hi.", 5, 1)}, "", 3, nil},
		{"408 and 409 are retried", []llmtest.Reply{llmtest.Error(408, "timeout", "", "timeout"), llmtest.Error(409, "conflict", "", "lock"), llmtest.Text("Hi.", 5, 1)}, "", 3, nil},
		{"500 until retries run out", []llmtest.Reply{llmtest.ServerError, llmtest.ServerError, llmtest.ServerError, llmtest.ServerError, llmtest.Text("late", 1, 1)}, "model error 500", 4, nil},
		{"401 is not retried", []llmtest.Reply{llmtest.InvalidKey, llmtest.Text("Hi.", 5, 1)}, "invalid_api_key", 1, nil},
		{"insufficient_quota is not retried", []llmtest.Reply{llmtest.InsufficientQuota, llmtest.Text("Hi.", 5, 1)}, "insufficient_quota", 1, nil},
		{"retry-after beyond the bound fails now", []llmtest.Reply{withHeader(llmtest.RateLimited, "retry-after", "3600"), llmtest.Text("Hi.", 5, 1)}, "rate_limit_exceeded", 1, nil},
		{"x-should-retry false", []llmtest.Reply{withHeader(llmtest.ServerError, "x-should-retry", "false"), llmtest.Text("Hi.", 5, 1)}, "server_error", 1, nil},
		{"stream error event is a failure", []llmtest.Reply{{Text: "Partial", StreamError: `{"error":{"message":"The server had an error while processing your request.","type":"server_error","code":"server_error"}}`}, llmtest.Text("Hi.", 5, 1)}, "model stream error", 1, nil},
		{"a truncated stream is retried when nothing was shown", []llmtest.Reply{{Truncate: true}, llmtest.Text("Hi.", 5, 1)}, "", 2, nil},
		{"a truncated stream after text fails", []llmtest.Reply{{Text: "Half", Truncate: true}, llmtest.Text("Hi.", 5, 1)}, "ended before the answer was complete", 1, nil},
		{"context length is not retried unchanged", []llmtest.Reply{llmtest.ContextTooLong, llmtest.Text("Hi.", 5, 1)}, "context_length_exceeded", 1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := llmtest.New(t)
			fake.Push(tc.script...)
			p, waits := newProvider(t, fake)
			resp, err := p.Chat(context.Background(), userReq("Hello"), func(string) {})
			if tc.wantErr == "" {
				if err != nil || resp.Content != "Hi." {
					t.Fatalf("resp %+v err %v", resp, err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if n := len(fake.Requests()); n != tc.requests {
				t.Fatalf("%d requests, want %d", n, tc.requests)
			}
			if len(*waits) != tc.requests-1 {
				t.Fatalf("waits %v for %d requests", *waits, tc.requests)
			}
			for i, w := range tc.wantWaits {
				if (*waits)[i] != w {
					t.Fatalf("wait %d = %v, want %v", i, (*waits)[i], w)
				}
			}
			for _, w := range *waits {
				if w <= 0 || w > time.Second {
					t.Fatalf("wait %v outside the bounds", w)
				}
			}
		})
	}
}

func TestOpenAIContextLengthIsRecognised(t *testing.T) {
	fake := llmtest.New(t)
	fake.Push(llmtest.ContextTooLong)
	p, _ := newProvider(t, fake)
	_, err := p.Chat(context.Background(), userReq("Hello"), nil)
	if !errors.Is(err, llm.ErrContextLength) {
		t.Fatalf("err = %v, want ErrContextLength", err)
	}
	var ae *llm.APIError
	if !errors.As(err, &ae) || ae.Status != 400 {
		t.Fatalf("err = %#v", err)
	}
}

func TestOpenAISendsImagesAsParts(t *testing.T) {
	fake := llmtest.New(t)
	p, _ := newProvider(t, fake)
	req := llm.Request{Model: "gpt-4o", Messages: []llm.Message{{Role: "user", Content: "What is in this image?", Images: []llm.Image{{MimeType: "image/png", Data: []byte("\x89PNG\r\n\x1a\nfake")}}}}}
	if _, err := p.Chat(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	content := fake.Requests()[0]["messages"].([]any)[0].(map[string]any)["content"].([]any)
	if len(content) != 2 || content[0].(map[string]any)["type"] != "text" {
		t.Fatalf("content %v", content)
	}
	img := content[1].(map[string]any)
	if img["type"] != "image_url" || !strings.HasPrefix(img["image_url"].(map[string]any)["url"].(string), "data:image/png;base64,") {
		t.Fatalf("image part %v", img)
	}
}

func TestOpenAITranscribeSendsOggAsIs(t *testing.T) {
	fake := llmtest.New(t)
	fake.Transcript = "Do you have a table tonight?"
	fake.AudioSecs = 12
	p, _ := newProvider(t, fake)
	tr, err := p.Transcribe(context.Background(), "whisper-1", strings.NewReader("OggS\x00fake-opus"), "voice.ogg", "audio/ogg")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Text != "Do you have a table tonight?" || tr.Seconds != 12 {
		t.Fatalf("%+v", tr)
	}
	up := fake.Uploads()
	if len(up) != 1 || up[0].Filename != "voice.ogg" || up[0].ContentType != "audio/ogg" || up[0].Model != "whisper-1" || up[0].Size != 14 {
		t.Fatalf("upload %+v", up)
	}
	if !strings.HasPrefix(up[0].Header.Get("Content-Type"), "multipart/form-data") || up[0].Header.Get("Authorization") != "Bearer sk-test" {
		t.Fatalf("headers %v", up[0].Header)
	}
}

func TestOpenAIEmbed(t *testing.T) {
	fake := llmtest.New(t)
	p, _ := newProvider(t, fake)
	vecs, _, err := p.Embed(context.Background(), "text-embedding-3-small", []string{"opening hours", "refund policy"})
	if err != nil || len(vecs) != 2 || len(vecs[0]) != 64 {
		t.Fatalf("%v %v", len(vecs), err)
	}
}

func TestOpenAIBlockedAddressIsNotRetried(t *testing.T) {
	blocked := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("%w: 127.0.0.1", llm.ErrBlockedAddress)}
	}}}
	p := llm.NewOpenAI(llm.OpenAIConfig{BaseURL: "http://127.0.0.1:9/v1", HTTPClient: blocked, MaxRetries: 3})
	var waits int
	p.Sleep = func(context.Context, time.Duration) error { waits++; return nil }
	if _, err := p.Chat(context.Background(), userReq("Hi"), nil); !errors.Is(err, llm.ErrBlockedAddress) || waits != 0 {
		t.Fatalf("err %v after %d waits", err, waits)
	}
}
