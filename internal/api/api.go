// Package api is Parley's JSON API under /api/v1: authentication by API key, assistants,
// conversations, export and metrics.
package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/events"
	"github.com/parley-hq/parley/internal/metrics"
	"github.com/parley-hq/parley/internal/store"
)

// API holds what the handlers need.
type API struct {
	Auth          *auth.Service
	Assistants    *assistant.Service
	Conversations *conversation.Service
	Metrics       metrics.Source
	Events        *events.Hub
	// Extra are routes other packages add under /api/v1, behind the same authentication.
	Extra map[string]HandlerFunc
	// Lifecycle holds retention, customer deletion and the audit log (nil: those routes are off).
	Lifecycle Lifecycle
	// Budgets, when set, adds each assistant's budget this month to its JSON.
	Budgets Budgets
	// RateLimit is the sustained requests per second allowed per API key (burst twice that);
	// 0 turns the limit off.
	RateLimit float64

	limitersMu sync.Mutex
	limiters   map[string]*rate.Limiter
	patterns   []string
}

// Patterns lists every route the handler serves ("METHOD /path/{var}"), for tests that must
// cover all of them (tenant isolation).
func (a *API) Patterns() []string { return append([]string(nil), a.patterns...) }

// allow reports whether the key may make a request now, and if not, how long until it may.
func (a *API) allow(keyID string) (bool, time.Duration) {
	if a.RateLimit <= 0 {
		return true, 0
	}
	a.limitersMu.Lock()
	if a.limiters == nil {
		a.limiters = map[string]*rate.Limiter{}
	}
	l := a.limiters[keyID]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(a.RateLimit), int(2*a.RateLimit)+1)
		a.limiters[keyID] = l
	}
	a.limitersMu.Unlock()
	r := l.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// HandlerFunc is an API handler: a returned error is written as the contract's JSON error (use
// Errorf for 4xx answers; anything else is logged and answered 500).
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Errorf makes an API error answer.
func Errorf(status int, code, format string, args ...any) error {
	return errorf(status, code, format, args...)
}

// Handler returns the /api/v1 routes behind API-key authentication.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	a.patterns = a.patterns[:0]
	handle := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) error) {
		a.patterns = append(a.patterns, pattern)
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := fn(w, r); err != nil {
				WriteError(w, r, err)
			}
		})
	}
	handle("POST /api/v1/assistants", a.createAssistant)
	handle("GET /api/v1/assistants", a.listAssistants)
	handle("GET /api/v1/assistants/{id}", a.getAssistant)
	handle("PATCH /api/v1/assistants/{id}", a.updateAssistant)
	handle("DELETE /api/v1/assistants/{id}", a.deleteAssistant)

	handle("POST /api/v1/conversations", a.createConversation)
	handle("GET /api/v1/conversations", a.listConversations)
	handle("GET /api/v1/conversations/export", a.exportConversations)
	handle("GET /api/v1/conversations/{id}", a.getConversation)
	handle("POST /api/v1/conversations/{id}/messages", a.postMessage)
	handle("GET /api/v1/conversations/{id}/messages", a.listMessages)
	handle("GET /api/v1/conversations/{id}/events", a.conversationEvents)
	handle("POST /api/v1/conversations/{id}/handoff", a.handoff)
	handle("POST /api/v1/conversations/{id}/resume", a.resume)
	handle("POST /api/v1/conversations/{id}/end", a.end)

	handle("GET /api/v1/metrics", a.metrics)
	if a.Lifecycle != nil {
		a.lifecycleRoutes(handle)
	}
	for pattern, fn := range a.Extra {
		handle(pattern, fn)
	}

	return jsonErrors(a.authenticate(a.audit(mux)))
}

// SessionAuth lets a dashboard login stand in for an API key (the dashboard's pages call the API
// from the browser). SessionWorkspace returns the workspace of the request's session ("" when it
// has none) and whether the request carries the session's CSRF token (X-CSRF-Token).
type SessionAuth interface {
	SessionWorkspace(r *http.Request) (workspaceID string, csrfOK bool)
}

// sessionAuths holds the session verifier of each auth service (one per running Parley), set by
// the dashboard with UseSessions, so the API's struct stays as the foundation built it.
var sessionAuths sync.Map // *auth.Service → SessionAuth

// UseSessions makes the APIs built on au accept dashboard sessions besides API keys.
func UseSessions(au *auth.Service, s SessionAuth) { sessionAuths.Store(au, s) }

// authenticate resolves the Bearer API key to its workspace (or, without one, a dashboard session:
// a state-changing request must then carry the session's CSRF token).
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if sa, ok := sessionAuths.Load(a.Auth); ok && h == "" {
			if ws, csrfOK := sa.(SessionAuth).SessionWorkspace(r); ws != "" {
				if !csrfOK && r.Method != http.MethodGet && r.Method != http.MethodHead {
					WriteError(w, r, errorf(http.StatusForbidden, "csrf_failed", "the request lacks the session's X-CSRF-Token header; reload the page"))
					return
				}
				next.ServeHTTP(w, r.WithContext(withActor(auth.WithWorkspace(r.Context(), ws), "session")))
				return
			}
		}
		key, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || strings.TrimSpace(key) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
			WriteError(w, r, errorf(http.StatusUnauthorized, "unauthorized", "send an API key as Authorization: Bearer <key> (create one with `parley token create`)"))
			return
		}
		ws, err := a.Auth.VerifyAPIKey(r.Context(), strings.TrimSpace(key))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parley", error="invalid_token"`)
			WriteError(w, r, errorf(http.StatusUnauthorized, "unauthorized", "the API key is not valid"))
			return
		}
		if ok, wait := a.allow(keyPrefix(key)); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
			WriteError(w, r, errorf(http.StatusTooManyRequests, "rate_limited", "too many requests for this API key; retry after the Retry-After delay"))
			return
		}
		ctx := withActor(auth.WithWorkspace(r.Context(), ws), "key:"+keyPrefix(key))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func workspace(ctx context.Context) string { return auth.WorkspaceID(ctx) }

// keyPrefix is the public part of an API key, which names it for rate limiting.
func keyPrefix(key string) string {
	parts := strings.SplitN(strings.TrimSpace(key), "_", 3)
	if len(parts) == 3 {
		return parts[1]
	}
	return key
}

// domainError maps the domain packages' errors to API errors.
func domainError(err error) error {
	var ve *assistant.ValidationError
	var ie *conversation.InputError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ve):
		return errorf(http.StatusUnprocessableEntity, "invalid_field", "%s %s", ve.Field, ve.Message)
	case errors.As(err, &ie):
		return errorf(http.StatusUnprocessableEntity, "invalid_field", "%s %s", ie.Field, ie.Message)
	case errors.Is(err, conversation.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "conversation not found")
	case errors.Is(err, conversation.ErrAssistantNotFound):
		return errorf(http.StatusNotFound, "assistant_not_found", "assistant not found")
	case errors.Is(err, conversation.ErrEnded):
		return errorf(http.StatusConflict, "conversation_ended", "the conversation has ended")
	case errors.Is(err, conversation.ErrWindowClosed):
		return errorf(http.StatusConflict, "window_closed", "the 24-hour customer service window is closed: only a template can be sent")
	case errors.Is(err, store.ErrBadCursor):
		return errorf(http.StatusBadRequest, "invalid_cursor", "the cursor is not one this API returned")
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "not_found", "not found")
	}
	return err
}
