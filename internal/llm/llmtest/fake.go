// Package llmtest is a fake OpenAI-compatible server for tests: a real HTTP server on loopback that
// streams chat completions chunk by chunk (text, tool calls, parallel tool calls, usage), answers
// with the API's error bodies, and serves embeddings and audio transcriptions. Its wire format is
// modeled on recorded OpenAI responses.
package llmtest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Call is a tool call the fake model makes.
type Call struct {
	ID, Name, Arguments string
}

// Reply is one scripted answer to a chat completion request.
type Reply struct {
	Text      string // streamed word by word
	Calls     []Call // streamed per index, arguments in pieces, parallel calls interleaved
	Usage     *[2]int64
	NoUsage   bool // omit the usage chunk
	Status    int  // an HTTP error answer when not 0
	ErrorBody string
	Header    map[string]string
	// StreamError sends this error object inside the stream after Text.
	StreamError string
	// Truncate ends the stream after Text, without a finish reason or [DONE] (a dropped connection).
	Truncate bool
	// Func builds the reply from the request instead.
	Func func(req map[string]any) Reply
}

// Server is the fake.
type Server struct {
	*httptest.Server
	mu          sync.Mutex
	script      []Reply
	Default     Reply
	requests    []map[string]any
	transcribes []Upload
	Transcript  string
	AudioSecs   float64
	embedCalls  int
	chatNanos   atomic.Int64
}

// ChatTime is the time the fake spent answering chat requests, so a benchmark can tell the
// model's share of a turn from the rest.
func (s *Server) ChatTime() time.Duration { return time.Duration(s.chatNanos.Load()) }

// Upload is a received transcription upload.
type Upload struct {
	Filename, ContentType, Model string
	Size                         int
	Header                       http.Header
}

// New starts a fake server, closed with the test.
func New(t testing.TB) *Server {
	s := &Server{Default: Reply{Text: "OK."}, Transcript: "I would like to book a table for two.", AudioSecs: 30}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	mux.HandleFunc("POST /v1/audio/transcriptions", s.transcriptions)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// BaseURL is the /v1 base to configure a provider with.
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Push queues replies, answered in order; once used up, Default answers.
func (s *Server) Push(r ...Reply) {
	s.mu.Lock()
	s.script = append(s.script, r...)
	s.mu.Unlock()
}

// Requests returns the decoded chat requests received so far.
func (s *Server) Requests() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.requests...)
}

// Uploads returns the transcription uploads received so far.
func (s *Server) Uploads() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Upload(nil), s.transcribes...)
}

// EmbedCalls counts embeddings requests.
func (s *Server) EmbedCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.embedCalls
}

// Text is a reply with text and the given usage.
func Text(text string, in, out int64) Reply { return Reply{Text: text, Usage: &[2]int64{in, out}} }

// Error is an HTTP error reply with an OpenAI error object.
func Error(status int, code, typ, message string) Reply {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": message, "type": typ, "param": nil, "code": code}})
	return Reply{Status: status, ErrorBody: string(b)}
}

// Errors modeled on the API's documented answers.
var (
	RateLimited       = Error(429, "rate_limit_exceeded", "tokens", "Rate limit reached for gpt-4o-mini on tokens per min (TPM): Limit 10000, Used 9348, Requested 5086. Please try again in 6ms.")
	InsufficientQuota = Error(429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota, please check your plan and billing details.")
	InvalidKey        = Error(401, "invalid_api_key", "invalid_request_error", "Incorrect API key provided: sk-test***. You can find your API key at https://platform.openai.com/account/api-keys.")
	ServerError       = Error(500, "server_error", "server_error", "The server had an error while processing your request. Sorry about that!")
	ContextTooLong    = Error(400, "context_length_exceeded", "invalid_request_error", "This model's maximum context length is 4097 tokens. However, your messages resulted in 4619 tokens. Please reduce the length of the messages.")
)

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.chatNanos.Add(int64(time.Since(start))) }()
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json","type":"invalid_request_error","code":null}}`, 400)
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	reply := s.Default
	if len(s.script) > 0 {
		reply, s.script = s.script[0], s.script[1:]
	}
	s.mu.Unlock()
	if reply.Func != nil {
		reply = reply.Func(req)
	}
	for k, v := range reply.Header {
		w.Header().Set(k, v)
	}
	if reply.Status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(reply.Status)
		io.WriteString(w, reply.ErrorBody)
		return
	}
	model, _ := req["model"].(string)
	stream, _ := req["stream"].(bool)
	includeUsage := false
	if so, ok := req["stream_options"].(map[string]any); ok {
		includeUsage, _ = so["include_usage"].(bool)
	}
	usage := [2]int64{int64(10 + len(fmt.Sprint(req["messages"]))/4), int64(1 + len(reply.Text)/4)}
	if reply.Usage != nil {
		usage = *reply.Usage
	}
	if !stream {
		s.complete(w, model, reply, usage)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	id := "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL"
	send := func(choices any, extra map[string]any) {
		m := map[string]any{"id": id, "object": "chat.completion.chunk", "created": 1727346168, "model": model, "system_fingerprint": "fp_5050236cbd", "choices": choices}
		for k, v := range extra {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
	choice := func(delta map[string]any, finish any) []any {
		return []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}
	}
	send(choice(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil), nil)
	for _, word := range splitWords(reply.Text) {
		send(choice(map[string]any{"content": word}, nil), nil)
	}
	if reply.StreamError != "" {
		fmt.Fprintf(w, "data: %s\n\n", reply.StreamError)
		return
	}
	if reply.Truncate {
		return
	}
	// Tool calls: the first chunk of each names it, then arguments arrive in pieces; parallel
	// calls interleave their pieces, so only the index ties a piece to its call.
	pieces := make([][]string, len(reply.Calls))
	for i, c := range reply.Calls {
		send(choice(map[string]any{"tool_calls": []any{map[string]any{"index": i, "id": c.ID, "type": "function", "function": map[string]any{"name": c.Name, "arguments": ""}}}}, nil), nil)
		pieces[i] = chop(c.Arguments, 5)
	}
	for more := true; more; {
		more = false
		for i := range pieces {
			if len(pieces[i]) == 0 {
				continue
			}
			more = true
			send(choice(map[string]any{"tool_calls": []any{map[string]any{"index": i, "function": map[string]any{"arguments": pieces[i][0]}}}}, nil), nil)
			pieces[i] = pieces[i][1:]
		}
	}
	finish := "stop"
	if len(reply.Calls) > 0 {
		finish = "tool_calls"
	}
	send(choice(map[string]any{}, finish), nil)
	if includeUsage && !reply.NoUsage {
		send([]any{}, map[string]any{"usage": map[string]any{"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": usage[0] + usage[1], "completion_tokens_details": map[string]any{"reasoning_tokens": 0}}})
	}
	io.WriteString(w, "data: [DONE]\n\n")
}

func (s *Server) complete(w http.ResponseWriter, model string, reply Reply, usage [2]int64) {
	msg := map[string]any{"role": "assistant", "content": reply.Text, "refusal": nil}
	finish := "stop"
	if len(reply.Calls) > 0 {
		msg["content"] = nil
		var calls []any
		for _, c := range reply.Calls {
			calls = append(calls, map[string]any{"id": c.ID, "type": "function", "function": map[string]any{"name": c.Name, "arguments": c.Arguments}})
		}
		msg["tool_calls"] = calls
		finish = "tool_calls"
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": "chatcmpl-ABfvx6Z4dchiW2nya1N8KMsHFrQRE", "object": "chat.completion", "created": 1727346165, "model": model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finish}},
		"usage":   map[string]any{"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": usage[0] + usage[1]}})
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Input any    `json:"input"`
		Model string `json:"model"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad json", 400)
		return
	}
	s.mu.Lock()
	s.embedCalls++
	s.mu.Unlock()
	var inputs []string
	switch v := req.Input.(type) {
	case string:
		inputs = []string{v}
	case []any:
		for _, x := range v {
			str, _ := x.(string)
			inputs = append(inputs, str)
		}
	}
	var data []any
	tokens := 0
	for i, in := range inputs {
		data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": Embedding(in)})
		tokens += len(strings.Fields(in))
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model, "usage": map[string]any{"prompt_tokens": tokens, "total_tokens": tokens}})
}

// Embedding is the fake's deterministic embedding: a normalised bag of word stems hashed into 64
// dimensions, so texts sharing words are near.
func Embedding(text string) []float64 {
	v := make([]float64, 64)
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
		if len(w) > 5 {
			w = w[:5]
		}
		h := fnv.New32a()
		h.Write([]byte(w))
		v[h.Sum32()%64]++
	}
	var n float64
	for _, x := range v {
		n += x * x
	}
	if n > 0 {
		n = math.Sqrt(n)
		for i := range v {
			v[i] /= n
		}
	}
	return v
}

func (s *Server) transcriptions(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		http.Error(w, `{"error":{"message":"expected multipart","type":"invalid_request_error"}}`, 400)
		return
	}
	f, fh, err := r.FormFile("file")
	if err != nil {
		http.Error(w, `{"error":{"message":"file is required","type":"invalid_request_error"}}`, 400)
		return
	}
	b, _ := io.ReadAll(f)
	s.mu.Lock()
	s.transcribes = append(s.transcribes, Upload{Filename: fh.Filename, ContentType: fh.Header.Get("Content-Type"), Model: r.FormValue("model"), Size: len(b), Header: r.Header.Clone()})
	text, secs := s.Transcript, s.AudioSecs
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"text": text, "usage": map[string]any{"type": "duration", "seconds": secs}})
}

func splitWords(s string) []string {
	var out []string
	start := 0
	for i, r := range s {
		if r == ' ' && i > start {
			out = append(out, s[start:i])
			start = i
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

func chop(s string, n int) []string {
	var out []string
	r := []rune(s)
	for len(r) > n {
		out = append(out, string(r[:n]))
		r = r[n:]
	}
	if len(r) > 0 {
		out = append(out, string(r))
	}
	return out
}
