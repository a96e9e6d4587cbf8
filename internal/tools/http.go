package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/parley-hq/parley/internal/llm"
)

// HTTPTool is a tool the assistant's model calls as an HTTP request: its arguments fill {name}
// placeholders in the URL and are sent as the query (GET, DELETE) or a JSON body (POST, PUT,
// PATCH); the response goes back to the model.
type HTTPTool struct {
	Type        string            `json:"type"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Parameters  json.RawMessage   `json:"parameters,omitempty"`
	Method      string            `json:"method"`
	URL         string            `json:"url"`
	Headers     map[string]string `json:"headers,omitempty"`
	TimeoutMS   int               `json:"timeout_ms,omitempty"`
}

// HeaderMask replaces header values wherever tools are shown: the values are kept sealed apart.
const HeaderMask = "********"

// Limits of HTTP tools.
const (
	DefaultHTTPTimeout = 10 * time.Second
	MaxHTTPTimeout     = 60 * time.Second
	MaxHTTPResult      = 16 << 10 // bytes of the response given to the model
)

var (
	toolNameRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,63}$`)
	headerNameRe = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,128}$`)
	placeholder  = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

// Validate checks an HTTP tool's definition; the error names the bad field.
func (t *HTTPTool) Validate() error {
	if t.Type != "http" {
		return fmt.Errorf("type must be \"http\"")
	}
	if !toolNameRe.MatchString(t.Name) || IsBuiltin(t.Name) {
		return fmt.Errorf("name must be letters, digits, _ or - (at most 64) and not a built-in tool's name")
	}
	if len(t.Description) > 2000 {
		return fmt.Errorf("description must be at most 2000 characters")
	}
	t.Method = strings.ToUpper(strings.TrimSpace(t.Method))
	if t.Method == "" {
		t.Method = http.MethodGet
	}
	switch t.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return fmt.Errorf("method must be GET, POST, PUT, PATCH or DELETE")
	}
	u, err := url.Parse(placeholder.ReplaceAllString(t.URL, "x"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url must be an absolute http(s) URL")
	}
	if u.User != nil {
		return fmt.Errorf("url must not carry credentials; use headers")
	}
	if len(t.Parameters) > 0 && string(t.Parameters) != "null" {
		var schema map[string]any
		if err := json.Unmarshal(t.Parameters, &schema); err != nil {
			return fmt.Errorf("parameters must be a JSON schema object")
		}
		if typ, ok := schema["type"]; ok && typ != "object" {
			return fmt.Errorf("parameters must be a JSON schema of type object")
		}
	}
	if len(t.Headers) > 32 {
		return fmt.Errorf("headers: at most 32")
	}
	for h, v := range t.Headers {
		if !headerNameRe.MatchString(h) {
			return fmt.Errorf("headers: %q is not a valid header name", h)
		}
		if strings.ContainsAny(v, "\r\n") || len(v) > 8192 {
			return fmt.Errorf("headers: the value of %s must be one line of at most 8192 characters", h)
		}
	}
	if t.TimeoutMS < 0 || time.Duration(t.TimeoutMS)*time.Millisecond > MaxHTTPTimeout {
		return fmt.Errorf("timeout_ms must be between 0 and %d", MaxHTTPTimeout.Milliseconds())
	}
	return nil
}

// Def is the tool as offered to the model.
func (t *HTTPTool) Def() llm.ToolDef {
	params := t.Parameters
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage(`{"type":"object","properties":{}}`)
	}
	// Compact: PostgreSQL's JSONB re-spaces stored JSON, and the model must read the same tool
	// (the same tokens) whatever the backend and wherever the tools came from (a replay's copy).
	var compact bytes.Buffer
	if json.Compact(&compact, params) == nil {
		params = compact.Bytes()
	}
	return llm.ToolDef{Name: t.Name, Description: t.Description, Parameters: params}
}

// ParseHTTPTools returns the HTTP tool objects of an assistant's tools array (names of built-in
// tools are skipped).
func ParseHTTPTools(raw json.RawMessage) ([]HTTPTool, error) {
	var items []json.RawMessage
	if len(raw) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	var out []HTTPTool
	for _, it := range items {
		if len(it) == 0 || it[0] != '{' {
			continue
		}
		var t HTTPTool
		if err := json.Unmarshal(it, &t); err != nil {
			return nil, err
		}
		if t.Type == "http" {
			out = append(out, t)
		}
	}
	return out, nil
}

// ErrBlockedAddress is returned when an HTTP tool's URL resolves to an address tools may not reach.
var ErrBlockedAddress = llm.ErrBlockedAddress

// HTTPCaller runs HTTP tools. Unless AllowPrivate, connections to loopback, private, link-local,
// CGNAT, multicast and unspecified addresses are refused at connect time (after DNS resolution,
// on every redirect), so a tool cannot be pointed at the server's own network.
type HTTPCaller struct {
	AllowPrivate bool
	client       *http.Client
}

// GuardedTransport is an HTTP transport that, unless allowPrivate, refuses to connect to
// loopback, private, link-local, CGNAT, multicast and unspecified addresses (checked at connect
// time, after DNS, for every connection including redirects). It is used for HTTP tools and for
// workspaces' own model providers: addresses a workspace chooses must not reach the server's network.
func GuardedTransport(allowPrivate bool) *http.Transport {
	c := &HTTPCaller{AllowPrivate: allowPrivate}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: c.control}
	return &http.Transport{
		Proxy:               nil, // a proxy would connect on our behalf and bypass the address check
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        50,
		IdleConnTimeout:     60 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
}

// NewHTTPCaller returns a caller with its own guarded transport.
func NewHTTPCaller(allowPrivate bool) *HTTPCaller {
	c := &HTTPCaller{AllowPrivate: allowPrivate}
	tr := GuardedTransport(allowPrivate)
	tr.ResponseHeaderTimeout = MaxHTTPTimeout
	c.client = &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("too many redirects")
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return errors.New("redirect to a non-http URL")
		}
		return nil
	}}
	return c
}

func (c *HTTPCaller) control(network, address string, _ syscall.RawConn) error {
	if c.AllowPrivate {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, host)
	}
	if !PublicAddr(ip) {
		return fmt.Errorf("%w: %s", ErrBlockedAddress, ip)
	}
	return nil
}

var blockedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // CGNAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach IPv4 private space
	netip.MustParsePrefix("2001:db8::/32"),
}

// PublicAddr reports whether ip is an ordinary public unicast address.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Call runs the tool with the model's arguments and the opened header values; the result is
// what the model reads: {"status", "body"} or {"ok": false, "error"}.
func (c *HTTPCaller) Call(ctx context.Context, t HTTPTool, headers map[string]string, arguments string) string {
	args := map[string]any{}
	if strings.TrimSpace(arguments) != "" {
		if err := json.Unmarshal([]byte(arguments), &args); err != nil {
			return errorResult("arguments are not a JSON object")
		}
	}
	used := map[string]bool{}
	rawURL := placeholder.ReplaceAllStringFunc(t.URL, func(m string) string {
		name := m[1 : len(m)-1]
		used[name] = true
		return url.PathEscape(argString(args[name]))
	})
	u, err := url.Parse(rawURL)
	if err != nil {
		return errorResult("the tool's URL is not valid")
	}
	var body io.Reader
	rest := map[string]any{}
	for k, v := range args {
		if !used[k] {
			rest[k] = v
		}
	}
	switch t.Method {
	case http.MethodGet, http.MethodDelete, "":
		q := u.Query()
		keys := make([]string, 0, len(rest))
		for k := range rest {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			q.Set(k, argString(rest[k]))
		}
		u.RawQuery = q.Encode()
	default:
		b, _ := json.Marshal(rest)
		body = bytes.NewReader(b)
	}
	timeout := DefaultHTTPTimeout
	if t.TimeoutMS > 0 {
		timeout = time.Duration(t.TimeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := t.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return errorResult("the request could not be built")
	}
	req.Header.Set("User-Agent", "Parley-Tools/1")
	req.Header.Set("Accept", "application/json, text/plain;q=0.9, */*;q=0.5")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for h, v := range headers {
		req.Header.Set(h, v)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, ErrBlockedAddress):
			return errorResult("the tool's URL points to an address tools may not reach")
		case errors.Is(err, context.DeadlineExceeded):
			return errorResult(fmt.Sprintf("the request timed out after %s", timeout))
		}
		return errorResult("the request failed: " + sanitize(err.Error(), headers))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, MaxHTTPResult+1))
	truncated := len(data) > MaxHTTPResult
	if truncated {
		data = data[:MaxHTTPResult]
	}
	out := map[string]any{"status": resp.StatusCode, "ok": resp.StatusCode < 400}
	if !truncated && json.Valid(data) {
		out["body"] = json.RawMessage(data)
	} else {
		s := strings.ToValidUTF8(string(data), "")
		if truncated {
			for !utf8.ValidString(s) && len(s) > 0 {
				s = s[:len(s)-1]
			}
			out["truncated"] = true
		}
		out["body"] = s
	}
	return jsonResult(out)
}

// sanitize keeps header values out of error texts.
func sanitize(s string, headers map[string]string) string {
	for _, v := range headers {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, HeaderMask)
		}
	}
	return s
}

func argString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64, bool:
		return fmt.Sprint(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
