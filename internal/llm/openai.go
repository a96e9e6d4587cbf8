package llm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	openai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/shared"
)

// OpenAIConfig configures an OpenAI-compatible provider (OpenAI, Ollama, vLLM, llama.cpp,
// OpenRouter…). Everything is explicit: the SDK's own OPENAI_* environment variables are never read.
type OpenAIConfig struct {
	BaseURL    string // e.g. https://api.openai.com/v1 or http://localhost:11434/v1
	APIKey     string
	HTTPClient *http.Client
	// MaxRetries bounds the retries of one call (default 3). Retried: 408, 409, 429 (except
	// insufficient_quota), 5xx and connection failures before any text was streamed.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff (defaults 500ms and 8s) used when the
	// server gives no retry-after.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter: a server asking to wait longer than this fails the call now (default 60s).
	MaxRetryAfter time.Duration
	// RequestTimeout bounds one attempt (default 120s).
	RequestTimeout time.Duration
}

// ErrIncompleteStream is a stream that ended without its final chunk.
var ErrIncompleteStream = errors.New("the model's stream ended before the answer was complete")

// OpenAI is a Provider for any OpenAI-compatible server, through the official SDK.
type OpenAI struct {
	cfg            OpenAIConfig
	chat           openai.ChatCompletionService
	embeddings     openai.EmbeddingService
	transcriptions openai.AudioTranscriptionService
	// Sleep waits between retries; tests may replace it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// NewOpenAI returns a provider for cfg.
func NewOpenAI(cfg OpenAIConfig) *OpenAI {
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 3
	}
	if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 8 * time.Second
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = 60 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 120 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	base := strings.TrimRight(cfg.BaseURL, "/") + "/"
	key := cfg.APIKey
	if key == "" {
		key = "none" // local servers (Ollama, llama.cpp) need no key but the header must be well-formed
	}
	// The services are built directly from explicit options: openai.NewClient would first read
	// OPENAI_BASE_URL, OPENAI_API_KEY and friends from the environment.
	opts := []option.RequestOption{
		option.WithBaseURL(base),
		option.WithAPIKey(key),
		option.WithHTTPClient(cfg.HTTPClient),
		option.WithMaxRetries(0), // retries are ours: the SDK would retry insufficient_quota too
		option.WithRequestTimeout(cfg.RequestTimeout),
	}
	return &OpenAI{
		cfg:            cfg,
		chat:           openai.NewChatCompletionService(opts...),
		embeddings:     openai.NewEmbeddingService(opts...),
		transcriptions: openai.NewAudioTranscriptionService(opts...),
		Sleep:          sleepCtx,
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Chat streams one chat completion (with stream_options.include_usage), passing text deltas to
// onDelta and accumulating tool calls per index, parallel ones included.
func (p *OpenAI) Chat(ctx context.Context, req Request, onDelta func(string)) (Response, error) {
	params, err := chatParams(req)
	if err != nil {
		return Response{}, err
	}
	var resp Response
	err = p.retry(ctx, func() (bool, error) {
		var streamed bool
		resp, streamed, err = p.chatOnce(ctx, params, onDelta)
		return streamed, err
	})
	if err != nil {
		return Response{}, err
	}
	if resp.Usage.InputTokens == 0 && resp.Usage.OutputTokens == 0 {
		// The server sent no usage chunk (an interrupted stream, or no include_usage support).
		resp.Usage.InputTokens = EstimateRequestTokens(req)
		resp.Usage.OutputTokens = EstimateTokens(resp.Content)
		for _, tc := range resp.ToolCalls {
			resp.Usage.OutputTokens += EstimateTokens(tc.Name) + EstimateTokens(tc.Arguments)
		}
	}
	return resp, nil
}

func (p *OpenAI) chatOnce(ctx context.Context, params openai.ChatCompletionNewParams, onDelta func(string)) (Response, bool, error) {
	stream := p.chat.NewStreaming(ctx, params)
	defer stream.Close()
	var resp Response
	var text strings.Builder
	streamed := false
	type partial struct {
		id, name string
		args     strings.Builder
	}
	calls := map[int64]*partial{}
	for stream.Next() {
		chunk := stream.Current()
		if chunk.Usage.PromptTokens > 0 || chunk.Usage.CompletionTokens > 0 {
			resp.Usage = Usage{InputTokens: chunk.Usage.PromptTokens, OutputTokens: chunk.Usage.CompletionTokens}
		}
		for _, choice := range chunk.Choices {
			if choice.Index != 0 {
				continue
			}
			if d := choice.Delta.Content; d != "" {
				text.WriteString(d)
				if onDelta != nil {
					streamed = true
					onDelta(d)
				}
			}
			for _, tc := range choice.Delta.ToolCalls {
				pc := calls[tc.Index]
				if pc == nil {
					pc = &partial{}
					calls[tc.Index] = pc
				}
				if tc.ID != "" {
					pc.id = tc.ID
				}
				if tc.Function.Name != "" {
					pc.name += tc.Function.Name
				}
				pc.args.WriteString(tc.Function.Arguments)
			}
			if choice.FinishReason != "" {
				resp.FinishReason = choice.FinishReason
			}
		}
	}
	if err := stream.Err(); err != nil {
		return Response{}, streamed, convertError(err)
	}
	if resp.FinishReason == "" {
		// The body ended before the last choice chunk: a dropped connection, not an answer.
		return Response{}, streamed, ErrIncompleteStream
	}
	resp.Content = text.String()
	idx := make([]int64, 0, len(calls))
	for i := range calls {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	for _, i := range idx {
		pc := calls[i]
		if pc.name == "" {
			continue
		}
		id := pc.id
		if id == "" {
			id = fmt.Sprintf("call_%d", i)
		}
		args := pc.args.String()
		if strings.TrimSpace(args) == "" {
			args = "{}"
		}
		resp.ToolCalls = append(resp.ToolCalls, ToolCall{ID: id, Name: pc.name, Arguments: args})
	}
	return resp, streamed, nil
}

// chatParams turns our request into the SDK's.
func chatParams(req Request) (openai.ChatCompletionNewParams, error) {
	params := openai.ChatCompletionNewParams{
		Model:         shared.ChatModel(req.Model),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	if req.Temperature != nil {
		params.Temperature = openai.Float(*req.Temperature)
	}
	for _, m := range req.Messages {
		switch m.Role {
		case "system":
			params.Messages = append(params.Messages, openai.SystemMessage(m.Content))
		case "user":
			if len(m.Images) == 0 {
				params.Messages = append(params.Messages, openai.UserMessage(m.Content))
				continue
			}
			var parts []openai.ChatCompletionContentPartUnionParam
			if m.Content != "" {
				parts = append(parts, openai.TextContentPart(m.Content))
			}
			for _, img := range m.Images {
				url := img.URL
				if len(img.Data) > 0 {
					mt := img.MimeType
					if mt == "" {
						mt = http.DetectContentType(img.Data)
					}
					url = "data:" + mt + ";base64," + base64.StdEncoding.EncodeToString(img.Data)
				}
				if url == "" {
					continue
				}
				parts = append(parts, openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: url}))
			}
			params.Messages = append(params.Messages, openai.UserMessage(parts))
		case "assistant":
			am := openai.ChatCompletionAssistantMessageParam{}
			if m.Content != "" {
				am.Content.OfString = openai.String(m.Content)
			}
			for _, tc := range m.ToolCalls {
				am.ToolCalls = append(am.ToolCalls, openai.ChatCompletionMessageToolCallUnionParam{OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
					ID: tc.ID, Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: tc.Name, Arguments: tc.Arguments},
				}})
			}
			params.Messages = append(params.Messages, openai.ChatCompletionMessageParamUnion{OfAssistant: &am})
		case "tool":
			params.Messages = append(params.Messages, openai.ToolMessage(m.Content, m.ToolCallID))
		default:
			return params, fmt.Errorf("llm: unknown message role %q", m.Role)
		}
	}
	for _, t := range req.Tools {
		var schema map[string]any
		if len(t.Parameters) > 0 {
			if err := json.Unmarshal(t.Parameters, &schema); err != nil {
				return params, fmt.Errorf("llm: tool %s parameters: %w", t.Name, err)
			}
		}
		if schema == nil {
			schema = map[string]any{"type": "object", "properties": map[string]any{}}
		}
		fd := shared.FunctionDefinitionParam{Name: t.Name, Parameters: shared.FunctionParameters(schema)}
		if t.Description != "" {
			fd.Description = openai.String(t.Description)
		}
		params.Tools = append(params.Tools, openai.ChatCompletionFunctionTool(fd))
	}
	return params, nil
}

// convertError turns the SDK's errors into *APIError where the server said something.
func convertError(err error) error {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		e := &APIError{Status: apiErr.StatusCode, Code: apiErr.Code, Type: apiErr.Type, Message: apiErr.Message}
		if e.Code == "" {
			e.Code = e.Type
		}
		if e.Message == "" {
			e.Message = http.StatusText(e.Status)
		}
		return &retryInfo{APIError: e, header: responseHeader(apiErr)}
	}
	var se *ssestream.StreamError
	if errors.As(err, &se) {
		var ev struct {
			Error struct {
				Code    any    `json:"code"`
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(se.Event.Data, &ev)
		e := &APIError{Type: ev.Error.Type, Message: ev.Error.Message}
		if ev.Error.Code != nil {
			e.Code = fmt.Sprint(ev.Error.Code)
		}
		if e.Message == "" {
			e.Message = "an error occurred during streaming"
		}
		if e.Code == "" {
			e.Code = e.Type
		}
		if e.Code == "" {
			e.Code = "stream_error"
		}
		return e
	}
	return err
}

func responseHeader(e *openai.Error) http.Header {
	if e.Response != nil {
		return e.Response.Header
	}
	return nil
}

// retryInfo carries an HTTP error with the response headers the retry policy reads.
type retryInfo struct {
	*APIError
	header http.Header
}

func (r *retryInfo) Unwrap() error { return r.APIError }

// retry runs fn until it succeeds, fails for good, or the retries are used up. fn reports whether
// it already streamed text to the caller, in which case it is never run again.
func (p *OpenAI) retry(ctx context.Context, fn func() (streamed bool, err error)) error {
	for attempt := 0; ; attempt++ {
		streamed, err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		delay, retryable := p.retryDelay(err, attempt)
		if !retryable || streamed || attempt >= p.cfg.MaxRetries {
			return unwrapRetry(err)
		}
		if err := p.Sleep(ctx, delay); err != nil {
			return err
		}
	}
}

func unwrapRetry(err error) error {
	var ri *retryInfo
	if errors.As(err, &ri) {
		return ri.APIError
	}
	return err
}

// retryDelay decides whether err is worth another attempt and how long to wait first: the
// server's retry-after-ms or retry-after when given (and not beyond MaxRetryAfter), else
// exponential backoff with jitter between MinBackoff and MaxBackoff.
func (p *OpenAI) retryDelay(err error, attempt int) (time.Duration, bool) {
	backoff := p.cfg.MinBackoff << attempt
	if backoff > p.cfg.MaxBackoff || backoff <= 0 {
		backoff = p.cfg.MaxBackoff
	}
	backoff = backoff - time.Duration(rand.Int64N(int64(backoff)/4+1))
	var ri *retryInfo
	if errors.As(err, &ri) {
		h := ri.header
		switch strings.ToLower(h.Get("x-should-retry")) {
		case "false":
			return 0, false
		case "true":
			return backoff, true
		}
		if !RetryableStatus(ri.Status, ri.Code) {
			return 0, false
		}
		if d, ok := retryAfter(h, time.Now()); ok {
			if d > p.cfg.MaxRetryAfter {
				return 0, false
			}
			return d, true
		}
		return backoff, true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return 0, false // an error event inside a stream: a failure, not retried
	}
	if errors.Is(err, ErrIncompleteStream) {
		return backoff, true
	}
	if errors.Is(err, ErrBlockedAddress) {
		return 0, false // refused by policy: trying again changes nothing
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "connection refused") {
		return backoff, true // the connection failed before an answer
	}
	return 0, false
}

// RetryableStatus reports whether an HTTP error is worth retrying: 408, 409, 429 and 5xx, except
// a quota that is used up (insufficient_quota) which no retry will fix.
func RetryableStatus(status int, code string) bool {
	if code == "insufficient_quota" {
		return false
	}
	return status == http.StatusRequestTimeout || status == http.StatusConflict || status == http.StatusTooManyRequests || status >= 500
}

// retryAfter reads retry-after-ms (milliseconds) or retry-after (seconds, or an HTTP date).
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if h == nil {
		return 0, false
	}
	if v := strings.TrimSpace(h.Get("retry-after-ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms >= 0 {
			return time.Duration(ms * float64(time.Millisecond)), true
		}
	}
	if v := strings.TrimSpace(h.Get("retry-after")); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
			return time.Duration(s * float64(time.Second)), true
		}
		if t, err := http.ParseTime(v); err == nil {
			d := t.Sub(now)
			if d < 0 {
				d = 0
			}
			return d, true
		}
	}
	return 0, false
}

// Embed returns one embedding per input, through /v1/embeddings.
func (p *OpenAI) Embed(ctx context.Context, model string, inputs []string) ([][]float32, Usage, error) {
	var res *openai.CreateEmbeddingResponse
	err := p.retry(ctx, func() (bool, error) {
		var err error
		res, err = p.embeddings.New(ctx, openai.EmbeddingNewParams{Model: openai.EmbeddingModel(model), Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: inputs}})
		return false, convertError(err)
	})
	if err != nil {
		return nil, Usage{}, err
	}
	out := make([][]float32, len(inputs))
	for _, d := range res.Data {
		if d.Index < 0 || int(d.Index) >= len(out) {
			continue
		}
		v := make([]float32, len(d.Embedding))
		for i, f := range d.Embedding {
			v[i] = float32(f)
		}
		out[d.Index] = v
	}
	for i, v := range out {
		if v == nil {
			return nil, Usage{}, fmt.Errorf("embeddings: no vector for input %d", i)
		}
	}
	return out, Usage{InputTokens: res.Usage.PromptTokens}, nil
}

// Transcription is a transcribed audio file.
type Transcription struct {
	Text    string
	Seconds float64 // the audio's duration when the server reports it, else an estimate
}

// MaxAudioBytes bounds an audio file sent for transcription (the OpenAI limit).
const MaxAudioBytes = 25 << 20

// Transcribe sends audio to /v1/audio/transcriptions as a multipart upload, as it is (an .ogg
// voice note stays an .ogg).
func (p *OpenAI) Transcribe(ctx context.Context, model string, audio io.Reader, filename, mimeType string) (Transcription, error) {
	data, err := io.ReadAll(io.LimitReader(audio, MaxAudioBytes+1))
	if err != nil {
		return Transcription{}, fmt.Errorf("read audio: %w", err)
	}
	if len(data) > MaxAudioBytes {
		return Transcription{}, fmt.Errorf("audio is larger than %d bytes", MaxAudioBytes)
	}
	if filename == "" {
		filename = "audio.ogg"
	}
	if mimeType == "" {
		mimeType = "application/octet-stream"
	}
	var res *openai.AudioTranscriptionNewResponseUnion
	err = p.retry(ctx, func() (bool, error) {
		var err error
		res, err = p.transcriptions.New(ctx, openai.AudioTranscriptionNewParams{Model: openai.AudioModel(model), File: openai.File(bytes.NewReader(data), filename, mimeType)})
		return false, convertError(err)
	})
	if err != nil {
		return Transcription{}, err
	}
	t := Transcription{Text: strings.TrimSpace(res.Text), Seconds: res.Duration}
	if t.Seconds == 0 {
		t.Seconds = res.Usage.Seconds
	}
	if t.Seconds == 0 {
		// Voice notes are Opus at about 16 kbit/s: 2 KB a second.
		t.Seconds = float64(len(data)) / 2000
	}
	return t, nil
}
