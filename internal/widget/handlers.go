package widget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/events"
)

// maxPublicBody caps the body of a visitor's request (pre-chat answers, a message).
const maxPublicBody = 32 << 10

// turnTimeout bounds one assistant turn started by a visitor's message. The turn runs on after
// the request is answered, so a visitor who reloads the page mid-reply still gets it.
const turnTimeout = 5 * time.Minute

// Service serves the widget's public side: the script, the demo page and /widget/v1.
type Service struct {
	Repo          Repository
	Conversations *conversation.Service
	Events        *events.Hub
	Log           *slog.Logger
	Now           func() time.Time

	limiters atomic.Pointer[limiters]

	base   context.Context
	cancel context.CancelFunc
	turns  sync.WaitGroup

	dropMu sync.Mutex
	drop   chan struct{}
}

// NewService returns the widget's public service.
func NewService(repo Repository, conv *conversation.Service, hub *events.Hub, log *slog.Logger, limits Limits) *Service {
	if log == nil {
		log = slog.Default()
	}
	s := &Service{Repo: repo, Conversations: conv, Events: hub, Log: log, Now: func() time.Time { return time.Now().UTC() }, drop: make(chan struct{})}
	s.SetLimits(limits)
	s.base, s.cancel = context.WithCancel(context.Background())
	return s
}

type limiters struct{ ip, sessions, messages *limiterSet }

// SetLimits replaces the rate limits and forgets the budgets used so far.
func (s *Service) SetLimits(l Limits) {
	s.limiters.Store(&limiters{
		ip:       newLimiterSet(l.PerIP, l.PerIPBurst),
		sessions: newLimiterSet(l.SessionsPerIP, l.SessionsPerIPBurst),
		messages: newLimiterSet(l.MessagesPerSession, l.MessagesPerSessionBurst),
	})
}

// Close ends the event streams and waits (within ctx) for the assistant turns under way.
func (s *Service) Close(ctx context.Context) error {
	s.DropStreams()
	done := make(chan struct{})
	go func() { s.turns.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		return fmt.Errorf("widget turns still running: %w", ctx.Err())
	}
}

// DropStreams closes every open event stream (shutdown; tests simulating a network loss). The
// browsers reconnect and resume after the last message they saw.
func (s *Service) DropStreams() {
	s.dropMu.Lock()
	close(s.drop)
	s.drop = make(chan struct{})
	s.dropMu.Unlock()
}

func (s *Service) dropChan() <-chan struct{} {
	s.dropMu.Lock()
	defer s.dropMu.Unlock()
	return s.drop
}

// Handler serves GET /widget.js, GET /widget/demo/{id} and /widget/v1/...
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /widget.js", serveScript)
	mux.HandleFunc("GET /widget/demo/{id}", s.demo)
	handle := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if ok, wait := s.limiters.Load().ip.allow(clientIP(r), s.Now()); !ok {
				writeError(w, r, tooMany(wait, "too many requests from this address"))
				return
			}
			if err := fn(w, r); err != nil {
				writeError(w, r, err)
			}
		})
	}
	handle("OPTIONS /widget/v1/{path...}", s.preflight)
	handle("GET /widget/v1/config", s.config)
	handle("POST /widget/v1/sessions", s.createSession)
	handle("POST /widget/v1/messages", s.postMessage)
	handle("GET /widget/v1/messages", s.listMessages)
	handle("GET /widget/v1/events", s.events)
	handle("/widget/v1/{path...}", func(w http.ResponseWriter, r *http.Request) error {
		return apiErr(http.StatusNotFound, "not_found", "no such endpoint: %s %s", r.Method, r.URL.Path)
	})
	return mux
}

// --- errors -----------------------------------------------------------------------------------

// apiError is the contract's JSON error.
type apiError struct {
	Status  int
	Code    string
	Message string
	retry   time.Duration
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func apiErr(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func tooMany(wait time.Duration, msg string) *apiError {
	e := apiErr(http.StatusTooManyRequests, "rate_limited", "%s; retry after the Retry-After delay", msg)
	e.retry = wait
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *apiError
	var ie *InputError
	var ce *conversation.InputError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &ie):
		e = apiErr(http.StatusUnprocessableEntity, "invalid_field", "%s %s", ie.Field, ie.Message)
	case errors.As(err, &ce):
		e = apiErr(http.StatusUnprocessableEntity, "invalid_field", "%s %s", ce.Field, ce.Message)
	case errors.Is(err, conversation.ErrEnded):
		e = apiErr(http.StatusConflict, "conversation_ended", "the conversation has ended; start a new one")
	default:
		slog.ErrorContext(r.Context(), "widget: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		e = apiErr(http.StatusInternalServerError, "internal_error", "Something went wrong on our side; it has been logged.")
	}
	if e.Status == http.StatusTooManyRequests {
		secs := int((e.retry + time.Second - 1) / time.Second)
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	writeJSON(w, e.Status, map[string]any{"error": map[string]string{"code": e.Code, "message": e.Message}})
}

func decode(r *http.Request, w http.ResponseWriter, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPublicBody))
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return apiErr(http.StatusRequestEntityTooLarge, "body_too_large", "the body must be at most %d bytes", maxPublicBody)
		case errors.Is(err, io.EOF):
			return apiErr(http.StatusBadRequest, "invalid_json", "the body is empty; send a JSON object")
		}
		return apiErr(http.StatusBadRequest, "invalid_json", "the body is not a valid JSON object of the expected shape")
	}
	if dec.More() {
		return apiErr(http.StatusBadRequest, "invalid_json", "the body must hold exactly one JSON object")
	}
	return nil
}

// --- origins and CORS -------------------------------------------------------------------------

// SelfOrigin is the origin the request reached Parley on (behind a proxy: X-Forwarded-Proto).
func SelfOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0]); p == "https" || p == "http" {
		scheme = p
	}
	n, err := NormalizeOrigin(scheme + "://" + r.Host)
	if err != nil {
		return scheme + "://" + strings.ToLower(r.Host)
	}
	return n
}

// checkOrigin refuses a browser page whose origin the widget does not allow, and otherwise sets
// the CORS headers for it.
func checkOrigin(w http.ResponseWriter, r *http.Request, wd *Widget) error {
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	if !wd.OriginAllowed(origin, SelfOrigin(r)) {
		// The refusal itself is readable by the page, so the widget can say why it is not shown;
		// it carries nothing else.
		w.Header().Set("Access-Control-Allow-Origin", origin)
		return apiErr(http.StatusForbidden, "origin_not_allowed", "this widget is not enabled on %s; add it to the widget's allowed_origins", origin)
	}
	if origin != "" {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Set("Access-Control-Expose-Headers", "Retry-After")
	}
	return nil
}

// preflight answers the browser's CORS preflight. The script names its widget with ?key= on every
// call, so the preflight is checked against that widget's allowed origins.
func (s *Service) preflight(w http.ResponseWriter, r *http.Request) error {
	wd, err := s.Repo.WidgetByKey(r.Context(), r.URL.Query().Get("key"))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
			return apiErr(http.StatusNotFound, "widget_not_found", "no widget has this key")
		}
		return err
	}
	if err := checkOrigin(w, r, wd); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// clientIP is the visitor's address for the per-IP limits. Parley is meant to listen on loopback
// behind a reverse proxy (docs/DEPLOYMENT.md): when the peer is loopback, the address the proxy
// appended to X-Forwarded-For (its last entry, which a client cannot forge) is the visitor's.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if fwd := net.ParseIP(strings.TrimSpace(parts[len(parts)-1])); fwd != nil {
				return fwd.String()
			}
		}
	}
	return host
}

// --- config and sessions ----------------------------------------------------------------------

// PublicConfig is what the script needs to draw the widget.
type PublicConfig struct {
	Title           string         `json:"title"`
	Greeting        string         `json:"greeting"`
	Mode            string         `json:"mode"`
	PrimaryColor    string         `json:"primary_color"`
	TextColor       string         `json:"text_color"`
	Position        string         `json:"position"`
	PrechatFields   []PrechatField `json:"prechat_fields"`
	MaxMessageChars int            `json:"max_message_chars"`
}

func publicConfig(w *Widget) PublicConfig {
	f := w.PrechatFields
	if f == nil {
		f = []PrechatField{}
	}
	return PublicConfig{Title: w.Title, Greeting: w.Greeting, Mode: w.Mode, PrimaryColor: w.PrimaryColor, TextColor: w.TextColor,
		Position: w.Position, PrechatFields: f, MaxMessageChars: MaxMessageChars}
}

func (s *Service) widgetByKey(ctx context.Context, key string) (*Widget, error) {
	if key == "" {
		return nil, apiErr(http.StatusBadRequest, "invalid_field", "key is required: the widget's public key (data-key)")
	}
	wd, err := s.Repo.WidgetByKey(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, apiErr(http.StatusNotFound, "widget_not_found", "no widget has this key")
	}
	return wd, err
}

func (s *Service) config(w http.ResponseWriter, r *http.Request) error {
	wd, err := s.widgetByKey(r.Context(), r.URL.Query().Get("key"))
	if err != nil {
		return err
	}
	if err := checkOrigin(w, r, wd); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"config": publicConfig(wd)})
	return nil
}

type sessionInput struct {
	Key          string            `json:"key"`
	Prechat      map[string]string `json:"prechat"`
	SessionToken string            `json:"session_token"`
	PageURL      string            `json:"page_url"`
	Referrer     string            `json:"referrer"`
}

type sessionJSON struct {
	SessionToken   string       `json:"session_token"`
	ConversationID string       `json:"conversation_id"`
	Resumed        bool         `json:"resumed"`
	Status         string       `json:"status"`
	Config         PublicConfig `json:"config"`
}

func bearer(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// createSession starts a visitor's conversation (after the pre-chat form), or resumes the one an
// existing token is bound to.
func (s *Service) createSession(w http.ResponseWriter, r *http.Request) error {
	var in sessionInput
	if err := decode(r, w, &in); err != nil {
		return err
	}
	if in.Key == "" {
		in.Key = r.URL.Query().Get("key")
	}
	wd, err := s.widgetByKey(r.Context(), in.Key)
	if err != nil {
		return err
	}
	if err := checkOrigin(w, r, wd); err != nil {
		return err
	}
	token := bearer(r)
	if token == "" {
		token = in.SessionToken
	}
	if token != "" {
		se, c, err := s.session(r.Context(), token)
		if err != nil {
			return err
		}
		if se.WidgetID != wd.ID {
			return apiErr(http.StatusUnauthorized, "session_expired", "the session belongs to another widget; start a new one")
		}
		writeJSON(w, http.StatusOK, sessionJSON{SessionToken: token, ConversationID: c.ID, Resumed: true, Status: string(c.Status), Config: publicConfig(wd)})
		return nil
	}
	answers, err := ValidatePrechat(wd.PrechatFields, in.Prechat)
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			return apiErr(http.StatusUnprocessableEntity, "invalid_prechat", "%s %s", ie.Field, ie.Message)
		}
		return err
	}
	if ok, wait := s.limiters.Load().sessions.allow(clientIP(r), s.Now()); !ok {
		return tooMany(wait, "too many new conversations from this address")
	}
	meta := map[string]string{
		"page_url":   clip(in.PageURL, 2000),
		"referrer":   clip(in.Referrer, 2000),
		"user_agent": clip(r.UserAgent(), 500),
		"widget_id":  wd.ID,
	}
	if meta["page_url"] == "" {
		meta["page_url"] = clip(r.Referer(), 2000)
	}
	if o := r.Header.Get("Origin"); o != "" {
		meta["origin"] = clip(o, 300)
	}
	cin := conversation.CreateInput{AssistantID: wd.AssistantID, Type: conversation.TypeWidget, ChannelID: wd.ID, Metadata: meta,
		Variables: answers, VariableSource: conversation.SourcePrechat}
	for _, f := range wd.PrechatFields {
		v := answers[f.Name]
		switch {
		case v == "":
		case f.Type == FieldEmail && cin.CustomerID == "":
			cin.CustomerID = v
		case f.Type == FieldPhone && cin.CustomerID == "":
			cin.CustomerID = v
		case f.Type == FieldText && cin.CustomerName == "" && (f.Name == "name" || strings.HasSuffix(f.Name, "_name") || f.Name == "full_name"):
			cin.CustomerName = clip(v, 200)
		}
	}
	c, err := s.Conversations.Create(r.Context(), wd.WorkspaceID, cin)
	if errors.Is(err, conversation.ErrAssistantNotFound) {
		return apiErr(http.StatusServiceUnavailable, "widget_unavailable", "this widget's assistant no longer exists")
	}
	if err != nil {
		return err
	}
	tok, hash := NewSessionToken()
	now := s.Now()
	if err := s.Repo.CreateWidgetSession(r.Context(), &Session{TokenHash: hash, WorkspaceID: wd.WorkspaceID, WidgetID: wd.ID, ConversationID: c.ID, CreatedAt: now, LastSeenAt: now}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, sessionJSON{SessionToken: tok, ConversationID: c.ID, Status: string(c.Status), Config: publicConfig(wd)})
	return nil
}

// session resolves a token to its session and conversation: 401 when it is unknown, idle too
// long, or its conversation has ended (the visitor starts a new one).
func (s *Service) session(ctx context.Context, token string) (*Session, *conversation.Conversation, error) {
	expired := apiErr(http.StatusUnauthorized, "session_expired", "the session is not valid any more; start a new one")
	if token == "" {
		return nil, nil, apiErr(http.StatusUnauthorized, "unauthorized", "send the session token as Authorization: Bearer <token>")
	}
	se, err := s.Repo.WidgetSession(ctx, HashToken(token))
	if errors.Is(err, ErrNotFound) {
		return nil, nil, expired
	}
	if err != nil {
		return nil, nil, err
	}
	now := s.Now()
	if now.Sub(se.LastSeenAt) > SessionIdle {
		return nil, nil, expired
	}
	c, err := s.Conversations.Get(ctx, se.WorkspaceID, se.ConversationID)
	if err != nil {
		return nil, nil, expired
	}
	if c.Status == conversation.StatusEnded {
		return nil, nil, apiErr(http.StatusUnauthorized, "conversation_ended", "the conversation has ended; start a new one")
	}
	if now.Sub(se.LastSeenAt) > time.Hour {
		if err := s.Repo.TouchWidgetSession(ctx, se.TokenHash, now); err != nil {
			s.Log.WarnContext(ctx, "widget: touch session", "err", err)
		}
	}
	return se, c, nil
}

// authorize resolves the request's session token (Authorization header, or ?token= where a header
// cannot be set) and checks the page's origin against its widget.
func (s *Service) authorize(w http.ResponseWriter, r *http.Request, allowQuery bool) (*Session, *Widget, *conversation.Conversation, error) {
	token := bearer(r)
	if token == "" && allowQuery {
		token = r.URL.Query().Get("token")
	}
	se, c, err := s.session(r.Context(), token)
	if err != nil {
		w.Header().Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		return nil, nil, nil, err
	}
	wd, err := s.Repo.WidgetByID(r.Context(), se.WidgetID)
	if errors.Is(err, ErrNotFound) || (err == nil && wd.WorkspaceID != se.WorkspaceID) {
		return nil, nil, nil, apiErr(http.StatusUnauthorized, "session_expired", "the widget of this session no longer exists")
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if err := checkOrigin(w, r, wd); err != nil {
		return nil, nil, nil, err
	}
	return se, wd, c, nil
}

// --- messages ---------------------------------------------------------------------------------

// MessageJSON is a message as the visitor sees it.
type MessageJSON struct {
	ID        string `json:"id"`
	Role      string `json:"role"`
	Text      string `json:"text"`
	CreatedAt string `json:"created_at"`
}

func messageJSON(m *conversation.Message) MessageJSON {
	return MessageJSON{ID: m.ID, Role: string(m.Role), Text: m.Text, CreatedAt: m.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
}

// turnStream passes the posted message on to the handler and the reply's deltas to the hub.
type turnStream struct {
	hub   *events.Hub
	ws    string
	conv  *conversation.Conversation
	first chan *conversation.Message
	once  sync.Once
}

func (t *turnStream) Message(m *conversation.Message) {
	t.once.Do(func() { t.first <- m })
}

func (t *turnStream) Delta(text string) {
	if t.hub != nil {
		t.hub.PublishDelta(t.ws, t.conv, text)
	}
}

// postMessage stores the visitor's message and answers 202 with it; the assistant's reply follows
// on the event stream, its text as it is generated.
func (s *Service) postMessage(w http.ResponseWriter, r *http.Request) error {
	se, _, c, err := s.authorize(w, r, false)
	if err != nil {
		return err
	}
	var in struct {
		Text string `json:"text"`
	}
	if err := decode(r, w, &in); err != nil {
		return err
	}
	if strings.TrimSpace(in.Text) == "" {
		return apiErr(http.StatusUnprocessableEntity, "invalid_field", "text is required")
	}
	if n := utf8.RuneCountInString(in.Text); n > MaxMessageChars {
		return apiErr(http.StatusUnprocessableEntity, "text_too_long", "text must be at most %d characters (it has %d)", MaxMessageChars, n)
	}
	if ok, wait := s.limiters.Load().messages.allow(se.TokenHash, s.Now()); !ok {
		return tooMany(wait, "too many messages in this conversation")
	}
	st := &turnStream{hub: s.Events, ws: se.WorkspaceID, conv: c, first: make(chan *conversation.Message, 1)}
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(s.base, turnTimeout)
	s.turns.Add(1)
	go func() {
		defer s.turns.Done()
		defer cancel()
		_, err := s.Conversations.Post(ctx, se.WorkspaceID, c.ID, conversation.PostInput{Text: in.Text}, st)
		if err != nil {
			s.Log.WarnContext(ctx, "widget: turn", "conversation", c.ID, "err", err)
		}
		done <- err
	}()
	select {
	case <-r.Context().Done(): // the visitor left; the message and its reply are stored anyway
		return nil
	case m := <-st.first:
		writeJSON(w, http.StatusAccepted, map[string]any{"message": messageJSON(m)})
		return nil
	case err := <-done:
		select {
		case m := <-st.first: // stored, then the turn failed: the fallback reply is on the stream
			writeJSON(w, http.StatusAccepted, map[string]any{"message": messageJSON(m)})
			return nil
		default:
		}
		if err == nil {
			err = errors.New("message was not stored")
		}
		return err
	}
}

// listMessages returns the visitor's history after a message (?after=<id>), for a page reload or
// a reconnect.
func (s *Service) listMessages(w http.ResponseWriter, r *http.Request) error {
	se, _, c, err := s.authorize(w, r, true)
	if err != nil {
		return err
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return apiErr(http.StatusBadRequest, "invalid_parameter", "limit must be a whole number from 1 to 500")
		}
		limit = n
	}
	msgs, err := s.Repo.MessagesAfter(r.Context(), se.WorkspaceID, c.ID, r.URL.Query().Get("after"), limit+1)
	if err != nil {
		return err
	}
	more := len(msgs) > limit
	if more {
		msgs = msgs[:limit]
	}
	out := []MessageJSON{}
	for _, m := range msgs {
		if Visible(m) {
			out = append(out, messageJSON(m))
		}
	}
	last := r.URL.Query().Get("after")
	if len(msgs) > 0 {
		last = msgs[len(msgs)-1].ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out, "has_more": more, "last_id": last, "status": c.Status})
	return nil
}
