package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/server"
	"github.com/parley-hq/parley/internal/store"
)

// Lifecycle is the data-lifecycle and audit storage the API uses.
type Lifecycle interface {
	RetentionDays(ctx context.Context, workspaceID string) (int, error)
	SetRetentionDays(ctx context.Context, workspaceID string, days int) error
	DeleteConversationsBefore(ctx context.Context, workspaceID string, cutoff time.Time) (store.Deleted, error)
	DeleteCustomer(ctx context.Context, workspaceID, customer string) (store.Deleted, error)
	Audit(ctx context.Context, workspaceID string, e store.AuditEntry) error
	AuditLog(ctx context.Context, workspaceID string, limit int) ([]store.AuditEntry, error)
}

func (a *API) lifecycleRoutes(handle func(string, func(http.ResponseWriter, *http.Request) error)) {
	handle("GET /api/v1/settings", a.getSettings)
	handle("PATCH /api/v1/settings", a.updateSettings)
	handle("POST /api/v1/retention/run", a.runRetention)
	handle("DELETE /api/v1/customers/{customer}", a.deleteCustomer)
	handle("GET /api/v1/audit-log", a.auditLog)
}

func (a *API) getSettings(w http.ResponseWriter, r *http.Request) error {
	days, err := a.Lifecycle.RetentionDays(r.Context(), workspace(r.Context()))
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, map[string]any{"retention_days": days})
	return nil
}

func (a *API) updateSettings(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		RetentionDays *int `json:"retention_days"`
	}
	if err := DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.RetentionDays == nil || *in.RetentionDays < 0 || *in.RetentionDays > 36500 {
		return errorf(http.StatusUnprocessableEntity, "invalid_field", "retention_days must be a whole number from 0 (keep forever) to 36500")
	}
	if err := a.Lifecycle.SetRetentionDays(r.Context(), workspace(r.Context()), *in.RetentionDays); err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, map[string]any{"retention_days": *in.RetentionDays})
	return nil
}

// RunRetention deletes the workspace's conversations older than its retention.
func RunRetention(ctx context.Context, l Lifecycle, workspaceID string, days int, now time.Time) (store.Deleted, error) {
	if days <= 0 {
		return store.Deleted{}, nil
	}
	return l.DeleteConversationsBefore(ctx, workspaceID, now.AddDate(0, 0, -days))
}

func (a *API) runRetention(w http.ResponseWriter, r *http.Request) error {
	ws := workspace(r.Context())
	days, err := a.Lifecycle.RetentionDays(r.Context(), ws)
	if err != nil {
		return err
	}
	if days == 0 {
		return errorf(http.StatusConflict, "retention_off", "the workspace keeps conversations forever; set retention_days first")
	}
	d, err := RunRetention(r.Context(), a.Lifecycle, ws, days, time.Now())
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, d)
	return nil
}

func (a *API) deleteCustomer(w http.ResponseWriter, r *http.Request) error {
	customer := strings.TrimSpace(r.PathValue("customer"))
	if customer == "" {
		return errorf(http.StatusBadRequest, "invalid_parameter", "name the customer (identifier or phone number)")
	}
	d, err := a.Lifecycle.DeleteCustomer(r.Context(), workspace(r.Context()), customer)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, d)
	return nil
}

func (a *API) auditLog(w http.ResponseWriter, r *http.Request) error {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errorf(http.StatusBadRequest, "invalid_parameter", "limit must be a whole number from 1 to 1000")
		}
		limit = n
	}
	entries, err := a.Lifecycle.AuditLog(r.Context(), workspace(r.Context()), limit)
	if err != nil {
		return err
	}
	WriteJSON(w, http.StatusOK, map[string]any{"data": entries})
	return nil
}

// notAudited are the writes that are customer traffic, not administration.
var notAudited = map[string]bool{
	"POST /api/v1/conversations":               true,
	"POST /api/v1/conversations/{id}/messages": true,
	"POST /api/v1/whatsapp/messages":           true,
	"POST /api/v1/knowledge-bases/{id}/search": true,
	"POST /api/v1/conversations/{id}/events":   true,
	"GET /api/v1/conversations/{id}/events":    true,
}

// audit records every successful state-changing request as an admin action: who (the key), what
// (the route), on what (the path), with what outcome.
func (a *API) audit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Lifecycle == nil || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
			next.ServeHTTP(w, r)
			return
		}
		sw := &server.StatusWriter{ResponseWriter: w, Code: http.StatusOK}
		next.ServeHTTP(sw, r)
		if sw.Code >= 400 || r.Pattern == "" || notAudited[r.Pattern] {
			return
		}
		ws := workspace(r.Context())
		if ws == "" {
			return
		}
		// Recorded after the answer: the audit write must not fail an action that already happened,
		// so a failure is logged instead.
		if err := a.Lifecycle.Audit(context.WithoutCancel(r.Context()), ws, store.AuditEntry{Actor: actor(r.Context()), Action: r.Pattern, Target: r.URL.Path, Status: sw.Code, CreatedAt: time.Now().UTC()}); err != nil {
			WriteErrorLog(r, err)
		}
	})
}

type actorKey struct{}

// withActor records who is acting (an API key's prefix, a dashboard user).
func withActor(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, actorKey{}, who)
}

func actor(ctx context.Context) string {
	if v, ok := ctx.Value(actorKey{}).(string); ok {
		return v
	}
	return "unknown"
}
