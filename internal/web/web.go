// Package web is the dashboard: server-rendered html/template pages (conversations, a
// conversation's detail, metrics, assistants, test chat, knowledge bases, WhatsApp, widgets,
// settings, replays) behind cookie sessions with CSRF tokens, a little hand-written JS, no build step.
// Pages for resources owned by other features are shells whose JS calls the JSON API, which
// accepts a dashboard session in place of an API key (see api.UseSessions).
package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/budget"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/events"
	"github.com/parley-hq/parley/internal/insights"
	"github.com/parley-hq/parley/internal/replay"
	"github.com/parley-hq/parley/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// AssetPrefix is where the dashboard's CSS and JS are served.
const AssetPrefix = "/dashboard-assets/"

// CSP is the dashboard pages' Content-Security-Policy: scripts only from this origin, no inline code.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https:; media-src 'self' blob: https:; " +
	"connect-src 'self'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'; object-src 'none'"

// Deps is what the dashboard needs.
type Deps struct {
	Store         *store.Store
	Auth          *auth.Service
	Assistants    *assistant.Service
	Conversations *conversation.Service
	Events        *events.Hub
	// Replays runs and reads replays (the Replays pages).
	Replays *replay.Service
	Log     *slog.Logger
	// Insights computes the Insights page (nil: the page answers an error).
	Insights *insights.Service
}

// Handler serves the dashboard.
type Handler struct {
	Deps
	pages map[string]*template.Template
	mux   *http.ServeMux
	now   func() time.Time

	limitMu  sync.Mutex
	limiters map[string]*loginLimiter

	// done ends the live event streams when Parley shuts down (they would otherwise hold the
	// server's graceful shutdown until each browser goes away).
	done      chan struct{}
	closeOnce sync.Once
	servers   sync.Map // *http.Server whose Shutdown already closes the streams
}

// closeOnShutdown makes the serving http.Server's Shutdown end the live streams, so a graceful
// shutdown does not wait for every open dashboard tab.
func (h *Handler) closeOnShutdown(r *http.Request) {
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
		if _, seen := h.servers.LoadOrStore(srv, true); !seen {
			srv.RegisterOnShutdown(h.Close)
		}
	}
}

// Close ends the open event streams.
func (h *Handler) Close() { h.closeOnce.Do(func() { close(h.done) }) }

// Patterns are the routes the dashboard mounts on the root mux, all served by the Handler.
var Patterns = []string{
	"GET /{$}", "GET /login", "POST /login", "POST /logout", "POST /workspace",
	"GET /conversations", "GET /conversations/export", "GET /conversations/{id}", "GET /conversations/{id}/events",
	"POST /conversations/{id}/{action}",
	"GET /metrics", "GET /insights",
	"GET /assistants", "GET /assistants/new", "GET /assistants/{id}", "POST /assistants", "POST /assistants/{id}", "POST /assistants/{id}/delete",
	"GET /test-chat", "POST /test-chat", "POST /test-chat/{id}/messages",
	"GET /knowledge", "GET /whatsapp", "GET /widgets",
	"GET /settings", "POST /settings/keys", "POST /settings/keys/{id}/revoke",
	"GET /replays", "POST /replays", "GET /replays/{id}",
	"GET " + AssetPrefix,
}

// New builds the dashboard.
func New(d Deps) (*Handler, error) {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	h := &Handler{Deps: d, pages: map[string]*template.Template{}, now: func() time.Time { return time.Now().UTC() }, limiters: map[string]*loginLimiter{}, done: make(chan struct{})}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", n, err)
		}
		h.pages[base] = t
	}
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", h.root)
	m.HandleFunc("GET /login", h.loginPage)
	m.HandleFunc("POST /login", h.login)
	m.Handle("POST /logout", h.auth(h.logout))
	m.Handle("POST /workspace", h.auth(h.switchWorkspace))

	m.Handle("GET /conversations", h.auth(h.conversations))
	m.Handle("GET /conversations/export", h.auth(h.export))
	m.Handle("GET /conversations/{id}", h.auth(h.conversation))
	m.Handle("GET /conversations/{id}/events", h.auth(h.conversationEvents))
	m.Handle("POST /conversations/{id}/{action}", h.auth(h.conversationAction))

	m.Handle("GET /metrics", h.auth(h.metrics))
	m.Handle("GET /insights", h.auth(h.insights))

	m.Handle("GET /assistants", h.auth(h.assistants))
	m.Handle("GET /assistants/new", h.auth(h.assistantForm))
	m.Handle("GET /assistants/{id}", h.auth(h.assistantForm))
	m.Handle("POST /assistants", h.auth(h.saveAssistant))
	m.Handle("POST /assistants/{id}", h.auth(h.saveAssistant))
	m.Handle("POST /assistants/{id}/delete", h.auth(h.deleteAssistant))

	m.Handle("GET /test-chat", h.auth(h.testChat))
	m.Handle("POST /test-chat", h.auth(h.startTestChat))
	m.Handle("POST /test-chat/{id}/messages", h.auth(h.testChatMessage))

	m.Handle("GET /knowledge", h.auth(h.shell("knowledge", "Knowledge bases")))
	m.Handle("GET /whatsapp", h.auth(h.shell("whatsapp", "WhatsApp")))
	m.Handle("GET /widgets", h.auth(h.shell("widgets", "Widgets")))

	m.Handle("GET /settings", h.auth(h.settings))
	m.Handle("POST /settings/keys", h.auth(h.createKey))
	m.Handle("POST /settings/keys/{id}/revoke", h.auth(h.revokeKey))

	m.Handle("GET /replays", h.auth(h.replays))
	m.Handle("POST /replays", h.auth(h.startReplay))
	m.Handle("GET /replays/{id}", h.auth(h.replayPage))

	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix(AssetPrefix, http.FileServerFS(sub))
	m.Handle("GET "+AssetPrefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	}))
	h.mux = m
}

// ServeHTTP serves the dashboard's routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Frame-Options", "SAMEORIGIN")
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) root(w http.ResponseWriter, r *http.Request) {
	if s, _ := h.currentSession(r); s != nil {
		http.Redirect(w, r, "/conversations", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// view is what every page template gets.
type view struct {
	Title     string
	Nav       string
	Session   *session
	CSRF      string
	Total     int64
	Workspace store.Membership
	Members   []store.Membership
	Flash     string
	Error     string
	Data      any
	// Budgets are the assistants at or past 80% of their monthly budget (pages that warn of them).
	Budgets []budget.Status
}

// render writes a page inside the layout (navigation with the workspace's conversation count).
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	if s := sessionFrom(r); s != nil {
		v.Session, v.CSRF = s, s.CSRFToken
		v.Members = s.Members
		for _, m := range s.Members {
			if m.WorkspaceID == s.WorkspaceID {
				v.Workspace = m
			}
		}
		n, err := h.Store.ConversationCount(r.Context(), s.WorkspaceID)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		v.Total = n
	}
	t := h.pages[name]
	if t == nil {
		h.fail(w, r, fmt.Errorf("no template %q", name))
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.fail(w, r, fmt.Errorf("render %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers an unexpected error: logged, and a plain page without details.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.Log.ErrorContext(r.Context(), "dashboard error", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "Something went wrong on our side; it has been logged.", http.StatusInternalServerError)
}

// notFound renders the 404 page (another workspace's ids land here too).
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request, what string) {
	h.render(w, r, http.StatusNotFound, "notfound", &view{Title: "Not found", Data: what})
}

func (h *Handler) shell(name, title string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := sessionFrom(r)
		var data any
		if name == "widgets" || name == "whatsapp" {
			list, err := h.Assistants.List(r.Context(), s.WorkspaceID)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			data = list
		}
		h.render(w, r, http.StatusOK, name, &view{Title: title, Nav: name, Data: data})
	}
}

// redirectBack answers a form post with a redirect (303) to a local path.
func redirectTo(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// localPath accepts only a path on this site (no scheme, no host, no protocol-relative //).
func localPath(p string) string {
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.ContainsAny(p, "\r\n") {
		return ""
	}
	return p
}
