package app

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/server"
	"github.com/parley-hq/parley/internal/store"
	"github.com/parley-hq/parley/internal/widget"
)

// The website chat widget: /api/v1/widgets to configure it, and its public side (/widget.js,
// /widget/v1/..., /widget/demo/{id}). Extra["widget"] is the *widget.Service.
func init() {
	Register(Feature{Name: "widget", Setup: setupWidget,
		Stop: func(ctx context.Context, a *App) error {
			if s, ok := a.Extra["widget"].(*widget.Service); ok {
				return s.Close(ctx)
			}
			return nil
		}})
}

func setupWidget(ctx context.Context, a *App) ([]server.Mount, error) {
	svc := widget.NewService(a.Store, a.Conversations, a.Events, a.Config.Log, widget.DefaultLimits)
	a.Extra["widget"] = svc
	h := &widgetHandlers{a: a}
	a.APIRoutes["POST /api/v1/widgets"] = h.create
	a.APIRoutes["GET /api/v1/widgets"] = h.list
	a.APIRoutes["GET /api/v1/widgets/{id}"] = h.get
	a.APIRoutes["PATCH /api/v1/widgets/{id}"] = h.update
	a.APIRoutes["DELETE /api/v1/widgets/{id}"] = h.delete
	handler := svc.Handler()
	return []server.Mount{{Pattern: "/widget.js", Handler: handler}, {Pattern: "/widget/", Handler: handler}}, nil
}

type widgetHandlers struct{ a *App }

// widgetJSON is a widget as the API shows it.
type widgetJSON struct {
	ID             string                `json:"id"`
	AssistantID    string                `json:"assistant_id"`
	Mode           string                `json:"mode"`
	Title          string                `json:"title"`
	Greeting       string                `json:"greeting"`
	PrimaryColor   string                `json:"primary_color"`
	TextColor      string                `json:"text_color"`
	Position       string                `json:"position"`
	PrechatFields  []widget.PrechatField `json:"prechat_fields"`
	AllowedOrigins []string              `json:"allowed_origins"`
	PublicKey      string                `json:"public_key"`
	EmbedSnippet   string                `json:"embed_snippet"`
	ScriptURL      string                `json:"script_url"`
	DemoURL        string                `json:"demo_url"`
	CreatedAt      string                `json:"created_at"`
	UpdatedAt      string                `json:"updated_at"`
}

func newWidgetJSON(r *http.Request, w *widget.Widget) widgetJSON {
	self := widget.SelfOrigin(r)
	out := widgetJSON{ID: w.ID, AssistantID: w.AssistantID, Mode: w.Mode, Title: w.Title, Greeting: w.Greeting, PrimaryColor: w.PrimaryColor,
		TextColor: w.TextColor, Position: w.Position, PrechatFields: w.PrechatFields, AllowedOrigins: w.AllowedOrigins, PublicKey: w.PublicKey,
		EmbedSnippet: widget.Snippet(self, w.PublicKey), ScriptURL: self + "/widget.js", DemoURL: self + "/widget/demo/" + w.ID,
		CreatedAt: w.CreatedAt.UTC().Format(api.TimeFormat), UpdatedAt: w.UpdatedAt.UTC().Format(api.TimeFormat)}
	if out.PrechatFields == nil {
		out.PrechatFields = []widget.PrechatField{}
	}
	if out.AllowedOrigins == nil {
		out.AllowedOrigins = []string{}
	}
	return out
}

// widgetInput is the body of create and update; absent fields keep their value on update.
type widgetInput struct {
	AssistantID    *string                `json:"assistant_id"`
	Mode           *string                `json:"mode"`
	Title          *string                `json:"title"`
	Greeting       *string                `json:"greeting"`
	PrimaryColor   *string                `json:"primary_color"`
	TextColor      *string                `json:"text_color"`
	Position       *string                `json:"position"`
	PrechatFields  *[]widget.PrechatField `json:"prechat_fields"`
	AllowedOrigins *[]string              `json:"allowed_origins"`
}

func (h *widgetHandlers) apply(ctx context.Context, ws string, w *widget.Widget, in widgetInput, create bool) error {
	str := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	str(&w.AssistantID, in.AssistantID)
	str(&w.Mode, in.Mode)
	str(&w.Title, in.Title)
	str(&w.Greeting, in.Greeting)
	str(&w.PrimaryColor, in.PrimaryColor)
	str(&w.TextColor, in.TextColor)
	str(&w.Position, in.Position)
	if in.PrechatFields != nil {
		w.PrechatFields = *in.PrechatFields
	}
	if in.AllowedOrigins != nil {
		w.AllowedOrigins = *in.AllowedOrigins
	}
	if err := widget.Normalize(w); err != nil {
		var ie *widget.InputError
		if errors.As(err, &ie) {
			return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "%s %s", ie.Field, ie.Message)
		}
		return err
	}
	if create || in.AssistantID != nil {
		if _, err := h.a.Assistants.Get(ctx, ws, w.AssistantID); err != nil {
			return api.Errorf(http.StatusNotFound, "assistant_not_found", "assistant not found")
		}
	}
	return nil
}

func (h *widgetHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var in widgetInput
	if err := api.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	ws := auth.WorkspaceID(r.Context())
	now := time.Now().UTC()
	wd := &widget.Widget{ID: ids.New(), WorkspaceID: ws, PublicKey: widget.NewPublicKey(), CreatedAt: now, UpdatedAt: now}
	if err := h.apply(r.Context(), ws, wd, in, true); err != nil {
		return err
	}
	if err := h.a.Store.CreateWidget(r.Context(), wd); err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusCreated, newWidgetJSON(r, wd))
	return nil
}

func (h *widgetHandlers) list(w http.ResponseWriter, r *http.Request) error {
	list, err := h.a.Store.ListWidgets(r.Context(), auth.WorkspaceID(r.Context()))
	if err != nil {
		return err
	}
	out := make([]widgetJSON, 0, len(list))
	for _, wd := range list {
		out = append(out, newWidgetJSON(r, wd))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

func widgetNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, widget.ErrNotFound) {
		return api.Errorf(http.StatusNotFound, "not_found", "widget not found")
	}
	return err
}

func (h *widgetHandlers) get(w http.ResponseWriter, r *http.Request) error {
	wd, err := h.a.Store.GetWidget(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id"))
	if err != nil {
		return widgetNotFound(err)
	}
	api.WriteJSON(w, http.StatusOK, newWidgetJSON(r, wd))
	return nil
}

func (h *widgetHandlers) update(w http.ResponseWriter, r *http.Request) error {
	ws := auth.WorkspaceID(r.Context())
	wd, err := h.a.Store.GetWidget(r.Context(), ws, r.PathValue("id"))
	if err != nil {
		return widgetNotFound(err)
	}
	var in widgetInput
	if err := api.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if err := h.apply(r.Context(), ws, wd, in, false); err != nil {
		return err
	}
	wd.UpdatedAt = time.Now().UTC()
	if err := h.a.Store.UpdateWidget(r.Context(), wd); err != nil {
		return widgetNotFound(err)
	}
	api.WriteJSON(w, http.StatusOK, newWidgetJSON(r, wd))
	return nil
}

func (h *widgetHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	if err := h.a.Store.DeleteWidget(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id")); err != nil {
		return widgetNotFound(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
