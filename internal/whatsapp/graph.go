package whatsapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
)

// MaxTextLength is the longest text body the Cloud API takes in one message.
const MaxTextLength = 4096

// Client calls the Graph API for one sender.
type Client struct {
	BaseURL       string // e.g. https://graph.facebook.com/v21.0
	PhoneNumberID string
	Token         string
	HTTP          *http.Client
	// Limiter paces sends (the sender's messages per second); nil: unpaced.
	Limiter *rate.Limiter
}

// APIError is an error answer of the Graph API: {"error": {"message", "type", "code", "error_subcode", "error_data": {"details"}}}.
type APIError struct {
	HTTPStatus int
	Code       int
	Subcode    int
	Type       string
	Message    string
	Details    string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("graph api: HTTP %d, code %d: %s", e.HTTPStatus, e.Code, e.Message)
	if e.Details != "" {
		s += " (" + e.Details + ")"
	}
	return s
}

// Class is what to do about a failed call.
type Class int

const (
	// Permanent failures are recorded and not retried (131047 window closed, 131026 undeliverable,
	// 131049 ecosystem limit, 368 policy block, bad requests).
	Permanent Class = iota
	// Throttled calls are retried later with backoff (130429, 131056, 80007, 4, 131048, 133016, HTTP 429).
	Throttled
	// Retryable failures are transient (131053 media, network errors, 5xx).
	Retryable
	// BadToken (190) means the sender's access token no longer works: surfaced on the sender.
	BadToken
)

func (c Class) String() string {
	return [...]string{"permanent", "throttled", "retryable", "bad_token"}[c]
}

var (
	throttlingCodes = []int{4, 80007, 130429, 131048, 131056, 133016}
	retryableCodes  = []int{1, 2, 131000, 131053, 131057}
)

// Classify sorts an error of the Graph API (or of the network) into a Class.
func Classify(err error) Class {
	var ae *APIError
	if !errors.As(err, &ae) {
		if errors.Is(err, context.Canceled) {
			return Retryable
		}
		return Retryable // network trouble: try again
	}
	switch {
	case ae.Code == 190:
		return BadToken
	case ae.HTTPStatus == http.StatusTooManyRequests || slices.Contains(throttlingCodes, ae.Code):
		return Throttled
	case slices.Contains(retryableCodes, ae.Code):
		return Retryable
	case ae.HTTPStatus >= 500 && ae.Code == 0:
		return Retryable
	}
	return Permanent
}

// SendResult is Meta's answer to a send.
type SendResult struct {
	Contacts []struct {
		Input string `json:"input"`
		WaID  string `json:"wa_id"`
	} `json:"contacts"`
	Messages []struct {
		ID            string `json:"id"`
		MessageStatus string `json:"message_status"`
	} `json:"messages"`
}

// Send posts a message object to /{phone_number_id}/messages and returns its wamid.
func (c *Client) Send(ctx context.Context, msg any) (string, error) {
	if c.Limiter != nil {
		if err := c.Limiter.Wait(ctx); err != nil {
			return "", err
		}
	}
	var res SendResult
	if err := c.do(ctx, http.MethodPost, c.BaseURL+"/"+c.PhoneNumberID+"/messages", msg, &res); err != nil {
		return "", err
	}
	if len(res.Messages) == 0 || res.Messages[0].ID == "" {
		return "", &APIError{HTTPStatus: http.StatusOK, Message: "the answer names no message id"}
	}
	return res.Messages[0].ID, nil
}

// MarkRead marks an inbound message read (blue ticks).
func (c *Client) MarkRead(ctx context.Context, wamid string) error {
	return c.do(ctx, http.MethodPost, c.BaseURL+"/"+c.PhoneNumberID+"/messages",
		map[string]string{"messaging_product": "whatsapp", "status": "read", "message_id": wamid}, nil)
}

// PhoneInfo is the number's standing as Meta reports it.
type PhoneInfo struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	VerifiedName       string `json:"verified_name"`
	QualityRating      string `json:"quality_rating"`
	MessagingLimitTier string `json:"messaging_limit_tier"`
}

// Phone reads the number's quality rating and messaging limit tier.
func (c *Client) Phone(ctx context.Context) (*PhoneInfo, error) {
	var info PhoneInfo
	if err := c.do(ctx, http.MethodGet, c.BaseURL+"/"+c.PhoneNumberID+"?fields=display_phone_number,verified_name,quality_rating,messaging_limit_tier", nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// MediaInfo is GET /{media-id}: a download URL valid for 5 minutes.
type MediaInfo struct {
	URL      string      `json:"url"`
	MimeType string      `json:"mime_type"`
	SHA256   string      `json:"sha256"`
	FileSize json.Number `json:"file_size"` // a string in some answers, a number in others
	ID       string      `json:"id"`
}

// Size returns the announced size (0 when unknown).
func (m MediaInfo) Size() int64 {
	n, _ := strconv.ParseInt(m.FileSize.String(), 10, 64)
	return n
}

// Media resolves a media id to its download URL.
func (c *Client) Media(ctx context.Context, mediaID string) (*MediaInfo, error) {
	var info MediaInfo
	if err := c.do(ctx, http.MethodGet, c.BaseURL+"/"+mediaID, nil, &info); err != nil {
		return nil, err
	}
	if info.URL == "" {
		return nil, &APIError{HTTPStatus: http.StatusOK, Message: "media answer has no url"}
	}
	return &info, nil
}

// ErrMediaURLExpired is a 404 on a media URL: fetch a fresh one with Media.
var ErrMediaURLExpired = errors.New("media url expired")

// Download opens a media URL with the bearer token. The caller closes the body.
func (c *Client) Download(ctx context.Context, url string) (io.ReadCloser, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, "", ErrMediaURLExpired
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, "", apiError(resp)
	}
	return resp.Body, resp.Header.Get("Content-Type"), nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

func (c *Client) do(ctx context.Context, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("graph api %s: %w", method, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return &APIError{HTTPStatus: resp.StatusCode, Message: "unreadable answer: " + err.Error()}
	}
	return nil
}

func apiError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var body struct {
		Error struct {
			Message   string `json:"message"`
			Type      string `json:"type"`
			Code      int    `json:"code"`
			Subcode   int    `json:"error_subcode"`
			ErrorData struct {
				Details string `json:"details"`
			} `json:"error_data"`
		} `json:"error"`
	}
	ae := &APIError{HTTPStatus: resp.StatusCode}
	if json.Unmarshal(b, &body) == nil && (body.Error.Code != 0 || body.Error.Message != "") {
		ae.Code, ae.Subcode, ae.Type, ae.Message, ae.Details = body.Error.Code, body.Error.Subcode, body.Error.Type, body.Error.Message, body.Error.ErrorData.Details
	} else {
		ae.Message = strings.TrimSpace(string(b))
		if len(ae.Message) > 200 {
			ae.Message = ae.Message[:200]
		}
	}
	return ae
}

// TextMessage is a free-form text message.
func TextMessage(to, body string) map[string]any {
	return map[string]any{"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
		"text": map[string]any{"body": body, "preview_url": false}}
}

// TemplateMessage is a template message; components carry the parameters.
func TemplateMessage(to, name, language string, components json.RawMessage) map[string]any {
	tpl := map[string]any{"name": name, "language": map[string]string{"policy": "deterministic", "code": language}}
	if len(components) > 0 && string(components) != "null" && string(components) != "[]" {
		tpl["components"] = components
	}
	return map[string]any{"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "template", "template": tpl}
}

// SplitText cuts text into parts of at most max characters, preferring paragraph, line and word
// boundaries, never splitting a character.
func SplitText(text string, max int) []string {
	var parts []string
	for utf8.RuneCountInString(text) > max {
		// byte offset of the max-th rune
		cut, n := len(text), 0
		for i := range text {
			if n == max {
				cut = i
				break
			}
			n++
		}
		head := text[:cut]
		at := -1
		for _, sep := range []string{"\n\n", "\n", " "} {
			if i := strings.LastIndex(head, sep); i > cut/2 {
				at = i + len(sep)
				break
			}
		}
		if at <= 0 {
			at = cut
		}
		parts = append(parts, strings.TrimRight(text[:at], " \n"))
		text = strings.TrimLeft(text[at:], " \n")
	}
	if text != "" || len(parts) == 0 {
		parts = append(parts, text)
	}
	return parts
}
