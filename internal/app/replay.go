package app

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/replay"
	"github.com/parley-hq/parley/internal/server"
	"github.com/parley-hq/parley/internal/store"
)

// Assistant versions and replays (docs/REPLAY.md).
//
// API (authenticated, /api/v1): GET /assistants/{id}/versions, GET /assistants/{id}/versions/{version};
// POST|GET /replays, GET /replays/{id}, GET /replays/{id}/conversations. Replays run as jobs on
// the queue's background queue, one per selected conversation. Service: Extra["replay"] (*replay.Service).
func init() {
	Register(Feature{Name: "replay", Setup: setupReplay})
}

func setupReplay(ctx context.Context, a *App) ([]server.Mount, error) {
	q, err := ensureJobs(ctx, a)
	if err != nil {
		return nil, err
	}
	svc := &replay.Service{Repo: a.Store, Assistants: a.Assistants, Runtime: a.Runtime, Jobs: q, Log: a.Config.Log}
	svc.RegisterWorkers(q)
	a.Extra["replay"] = svc
	h := &replayHandlers{a: a, svc: svc}
	r := a.APIRoutes
	r["GET /api/v1/assistants/{id}/versions"] = h.listVersions
	r["GET /api/v1/assistants/{id}/versions/{version}"] = h.getVersion
	r["POST /api/v1/replays"] = h.create
	r["GET /api/v1/replays"] = h.list
	r["GET /api/v1/replays/{id}"] = h.get
	r["GET /api/v1/replays/{id}/conversations"] = h.items
	return nil, nil
}

// ReplayService returns the app's replay service.
func (a *App) ReplayService() *replay.Service {
	svc, _ := a.Extra["replay"].(*replay.Service)
	return svc
}

type replayHandlers struct {
	a   *App
	svc *replay.Service
}

// VersionJSON is a stored assistant version.
type VersionJSON struct {
	AssistantID string `json:"assistant_id"`
	Version     int    `json:"version"`
	Current     bool   `json:"current"`
	CreatedAt   string `json:"created_at"`
	assistant.Snapshot
}

func newVersionJSON(v assistant.Version, current int) VersionJSON {
	return VersionJSON{AssistantID: v.AssistantID, Version: v.Version, Current: v.Version == current, CreatedAt: v.CreatedAt.UTC().Format(api.TimeFormat), Snapshot: v.Snapshot}
}

func (h *replayHandlers) listVersions(w http.ResponseWriter, r *http.Request) error {
	ws, id := auth.WorkspaceID(r.Context()), r.PathValue("id")
	as, err := h.a.Assistants.Get(r.Context(), ws, id)
	if err != nil {
		return api.Errorf(http.StatusNotFound, "not_found", "assistant not found")
	}
	list, err := h.a.Assistants.Versions(r.Context(), ws, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(http.StatusNotFound, "not_found", "assistant not found")
	}
	if err != nil {
		return err
	}
	out := make([]VersionJSON, 0, len(list))
	for _, v := range list {
		out = append(out, newVersionJSON(v, as.Version))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

func (h *replayHandlers) getVersion(w http.ResponseWriter, r *http.Request) error {
	ws, id := auth.WorkspaceID(r.Context()), r.PathValue("id")
	as, err := h.a.Assistants.Get(r.Context(), ws, id)
	if err != nil {
		return api.Errorf(http.StatusNotFound, "not_found", "assistant not found")
	}
	n, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || n < 1 {
		return api.Errorf(http.StatusNotFound, "not_found", "version not found: versions are whole numbers from 1")
	}
	if n > as.Version { // versions only grow (and a huge number would not fit the column)
		return api.Errorf(http.StatusNotFound, "not_found", "the assistant has no version %d (it is at version %d)", n, as.Version)
	}
	v, err := h.a.Assistants.Version(r.Context(), ws, id, n)
	switch {
	case errors.Is(err, assistant.ErrVersionNotFound):
		return api.Errorf(http.StatusNotFound, "not_found", "the assistant has no version %d (it is at version %d)", n, as.Version)
	case errors.Is(err, store.ErrNotFound):
		return api.Errorf(http.StatusNotFound, "not_found", "assistant not found")
	case err != nil:
		return err
	}
	api.WriteJSON(w, http.StatusOK, newVersionJSON(*v, as.Version))
	return nil
}

// stringList accepts a comma-separated string or an array of strings.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*l = nil
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				*l = append(*l, p)
			}
		}
		return nil
	}
	var arr []string
	if err := json.Unmarshal(b, &arr); err != nil {
		return errors.New("must be a string or an array of strings")
	}
	*l = arr
	return nil
}

// ReplayFilterInput is a replay request's filter: the conversation list's filters, ids, and limit.
type ReplayFilterInput struct {
	Type        stringList `json:"type"`
	From        string     `json:"from"`
	To          string     `json:"to"`
	Status      string     `json:"status"`
	Customer    string     `json:"customer"`
	Q           string     `json:"q"`
	AssistantID string     `json:"assistant_id"`
	IDs         []string   `json:"ids"`
	Limit       *int       `json:"limit"`
}

// ReplayInput is the body of POST /api/v1/replays.
type ReplayInput struct {
	AssistantID string            `json:"assistant_id"`
	Version     *int              `json:"version"`
	Draft       *assistant.Draft  `json:"draft"`
	Filter      ReplayFilterInput `json:"filter"`
}

// ReplayRequest validates a replay request's filter the way the conversation list reads its query
// (the same names, formats and messages) and turns it into the service's request.
func ReplayRequest(in ReplayInput) (replay.Request, error) {
	req := replay.Request{AssistantID: strings.TrimSpace(in.AssistantID), Draft: in.Draft, IDs: in.Filter.IDs}
	if in.Version != nil {
		if *in.Version < 1 {
			return req, api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "version must be a version number from 1 (leave it out for the current one)")
		}
		req.Version = *in.Version
	}
	q := url.Values{}
	set := func(k, v string) {
		if v = strings.TrimSpace(v); v != "" {
			q.Set(k, v)
		}
	}
	set("type", strings.Join(in.Filter.Type, ","))
	set("from", in.Filter.From)
	set("to", in.Filter.To)
	set("status", in.Filter.Status)
	set("customer", in.Filter.Customer)
	set("q", in.Filter.Q)
	set("assistant_id", in.Filter.AssistantID)
	f, err := api.ParseFilter(q, false)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			ae.Status, ae.Code, ae.Message = http.StatusUnprocessableEntity, "invalid_field", "filter."+ae.Message
		}
		return req, err
	}
	req.Filter = f
	if in.Filter.Limit != nil {
		if *in.Filter.Limit < 1 || *in.Filter.Limit > replay.MaxLimit {
			return req, api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "filter.limit must be a whole number from 1 to %d", replay.MaxLimit)
		}
		req.Limit = *in.Filter.Limit
	}
	return req, nil
}

// replayError maps the replay service's errors to API errors.
func replayError(err error) error {
	var ie *replay.InputError
	var ve *assistant.ValidationError
	switch {
	case errors.As(err, &ie):
		return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "%s %s", ie.Field, ie.Message)
	case errors.As(err, &ve):
		return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "draft.%s %s", ve.Field, ve.Message)
	case errors.Is(err, replay.ErrAssistantNotFound):
		return api.Errorf(http.StatusNotFound, "assistant_not_found", "assistant not found")
	case errors.Is(err, replay.ErrNotFound):
		return api.Errorf(http.StatusNotFound, "not_found", "replay not found")
	case errors.Is(err, store.ErrBadCursor):
		return api.Errorf(http.StatusBadRequest, "invalid_cursor", "the cursor is not one this API returned")
	}
	return err
}

func (h *replayHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var in ReplayInput
	if err := api.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	req, err := ReplayRequest(in)
	if err != nil {
		return err
	}
	rp, err := h.svc.Create(r.Context(), auth.WorkspaceID(r.Context()), req)
	if err != nil {
		return replayError(err)
	}
	w.Header().Set("Location", "/api/v1/replays/"+rp.ID)
	api.WriteJSON(w, http.StatusAccepted, replay.NewJSON(rp))
	return nil
}

// pageLimit reads ?limit (default def, 1..max).
func pageLimit(r *http.Request, def, max int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, api.Errorf(http.StatusBadRequest, "invalid_parameter", "limit must be a whole number from 1 to %d", max)
	}
	return n, nil
}

func (h *replayHandlers) list(w http.ResponseWriter, r *http.Request) error {
	limit, err := pageLimit(r, 50, 200)
	if err != nil {
		return err
	}
	list, next, err := h.svc.List(r.Context(), auth.WorkspaceID(r.Context()), limit, r.URL.Query().Get("cursor"))
	if err != nil {
		return replayError(err)
	}
	data := make([]replay.JSON, 0, len(list))
	for _, rp := range list {
		data = append(data, replay.NewJSON(rp))
	}
	var nextCursor *string
	if next != "" {
		nextCursor = &next
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": data, "next_cursor": nextCursor})
	return nil
}

func (h *replayHandlers) get(w http.ResponseWriter, r *http.Request) error {
	rp, err := h.svc.Get(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id"))
	if err != nil {
		return replayError(err)
	}
	api.WriteJSON(w, http.StatusOK, replay.NewJSON(rp))
	return nil
}

// items answers a page of the replay's conversations with their turns; the cursor is the last
// position shown.
func (h *replayHandlers) items(w http.ResponseWriter, r *http.Request) error {
	limit, err := pageLimit(r, 20, 100)
	if err != nil {
		return err
	}
	after := -1
	if c := r.URL.Query().Get("cursor"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 || n > math.MaxInt32 { // positions are stored as 32-bit integers
			return api.Errorf(http.StatusBadRequest, "invalid_cursor", "the cursor is not one this API returned")
		}
		after = n
	}
	list, err := h.svc.Items(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id"), after, limit+1)
	if err != nil {
		return replayError(err)
	}
	var next *string
	if len(list) > limit {
		list = list[:limit]
		s := strconv.Itoa(list[limit-1].Position)
		next = &s
	}
	data := make([]replay.ItemJSON, 0, len(list))
	for _, it := range list {
		data = append(data, replay.NewItemJSON(it))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": data, "next_cursor": next})
	return nil
}
