package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/store"
)

const (
	// SessionCookie holds the login's random token; the store keeps only its SHA-256.
	SessionCookie = "parley_session"
	// loginCSRFCookie protects the login form itself (double submit), before any session exists.
	loginCSRFCookie = "parley_login_csrf"
	// SessionTTL is how long a login lasts.
	SessionTTL = 14 * 24 * time.Hour
)

// session is the logged-in user of a request.
type session struct {
	store.Session
	Members []store.Membership
}

type sessionKey struct{}

func sessionFrom(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func equalToken(a, b string) bool {
	return a != "" && b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// lookupSession finds the session of the request's cookie (nil without a live one).
func (h *Handler) lookupSession(r *http.Request) (*store.Session, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, nil
	}
	se, err := h.Store.SessionByHash(r.Context(), hashToken(c.Value), h.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &se, nil
}

// currentSession is the request's session with the user's workspaces.
func (h *Handler) currentSession(r *http.Request) (*session, error) {
	se, err := h.lookupSession(r)
	if se == nil || err != nil {
		return nil, err
	}
	members, err := h.Store.Memberships(r.Context(), se.UserID)
	if err != nil {
		return nil, err
	}
	return &session{Session: *se, Members: members}, nil
}

// SessionWorkspace implements api.SessionAuth: the dashboard's JS calls the API with the cookie.
func (h *Handler) SessionWorkspace(r *http.Request) (string, bool) {
	se, err := h.lookupSession(r)
	if err != nil || se == nil {
		return "", false
	}
	return se.WorkspaceID, equalToken(r.Header.Get("X-CSRF-Token"), se.CSRFToken)
}

// auth requires a session; state-changing requests must carry its CSRF token (form field
// csrf_token or header X-CSRF-Token).
func (h *Handler) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := h.currentSession(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if s == nil {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/events") && r.URL.Path != "/conversations/export" {
				redirectTo(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()))
				return
			}
			http.Error(w, "Your session has ended: log in again.", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			token := r.Header.Get("X-CSRF-Token")
			if token == "" {
				r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
				token = r.PostFormValue("csrf_token")
			}
			if !equalToken(token, s.CSRFToken) {
				http.Error(w, "The form has expired (CSRF check failed): reload the page and try again.", http.StatusForbidden)
				return
			}
		}
		next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

type loginData struct {
	Email string
	Next  string
	CSRF  string
}

func (h *Handler) loginCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(loginCSRFCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 64 {
		return c.Value
	}
	t := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCSRFCookie, Value: t, Path: "/login", HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
	return t
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if s, _ := h.currentSession(r); s != nil {
		redirectTo(w, r, "/conversations")
		return
	}
	h.render(w, r, http.StatusOK, "login", &view{Title: "Log in", Data: loginData{Next: localPath(r.URL.Query().Get("next")), CSRF: h.loginCSRF(w, r)}})
}

// loginLimiter bounds password attempts per client address and per email.
type loginLimiter struct {
	lim  *rate.Limiter
	seen time.Time
}

// LoginBurst attempts are allowed at once, then one every LoginEvery.
const (
	LoginBurst = 5
	LoginEvery = 12 * time.Second
)

func (h *Handler) allowLogin(keys ...string) (bool, time.Duration) {
	h.limitMu.Lock()
	defer h.limitMu.Unlock()
	now := time.Now()
	if len(h.limiters) > 10000 {
		for k, l := range h.limiters {
			if now.Sub(l.seen) > time.Hour {
				delete(h.limiters, k)
			}
		}
	}
	var wait time.Duration
	var reservations []*rate.Reservation
	for _, k := range keys {
		l := h.limiters[k]
		if l == nil {
			l = &loginLimiter{lim: rate.NewLimiter(rate.Every(LoginEvery), LoginBurst)}
			h.limiters[k] = l
		}
		l.seen = now
		res := l.lim.ReserveN(now, 1)
		reservations = append(reservations, res)
		wait = max(wait, res.DelayFrom(now))
	}
	if wait > 0 {
		for _, res := range reservations {
			res.CancelAt(now)
		}
		return false, wait
	}
	return true, 0
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	password := r.PostFormValue("password")
	next := localPath(r.PostFormValue("next"))
	csrf := h.loginCSRF(w, r)
	data := loginData{Email: email, Next: next, CSRF: csrf}
	fail := func(status int, msg string) {
		h.render(w, r, status, "login", &view{Title: "Log in", Error: msg, Data: data})
	}
	if !equalToken(r.PostFormValue("csrf_token"), csrf) {
		fail(http.StatusForbidden, "The login form expired. Please try again.")
		return
	}
	if email == "" || password == "" {
		fail(http.StatusUnprocessableEntity, "Enter your email and password.")
		return
	}
	if ok, wait := h.allowLogin("ip:"+clientIP(r), "email:"+email); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		fail(http.StatusTooManyRequests, "Too many login attempts. Wait "+strconv.Itoa(int(wait/time.Second)+1)+" seconds and try again.")
		return
	}
	u, err := auth.VerifyPassword(r.Context(), h.Store, email, password)
	if err != nil {
		fail(http.StatusUnauthorized, "The email or password is not right.")
		return
	}
	members, err := h.Store.Memberships(r.Context(), u.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(members) == 0 {
		fail(http.StatusForbidden, "This user belongs to no workspace.")
		return
	}
	token := randomToken()
	now := h.now()
	se := store.Session{IDHash: hashToken(token), UserID: u.ID, WorkspaceID: members[0].WorkspaceID, CSRFToken: randomToken(), CreatedAt: now, ExpiresAt: now.Add(SessionTTL)}
	if err := h.Store.CreateSession(r.Context(), se); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.Store.DeleteExpiredSessions(r.Context(), now); err != nil {
		h.Log.Warn("dashboard: delete expired sessions", "err", err)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: token, Path: "/", Expires: se.ExpiresAt, MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
	if next == "" {
		next = "/conversations"
	}
	redirectTo(w, r, next)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	if err := h.Store.DeleteSession(r.Context(), s.IDHash); err != nil {
		h.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
	redirectTo(w, r, "/login")
}

func (h *Handler) switchWorkspace(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	err := h.Store.SetSessionWorkspace(r.Context(), s.IDHash, r.PostFormValue("workspace_id"))
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "You are not a member of that workspace.", http.StatusForbidden)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	redirectTo(w, r, "/conversations")
}
