package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/jobs"
	"github.com/parley-hq/parley/internal/server"
	"github.com/parley-hq/parley/internal/store"
	"github.com/parley-hq/parley/internal/tools"
	"github.com/parley-hq/parley/internal/webhooks"
	"github.com/parley-hq/parley/internal/whatsapp"
)

// The durable job queue (River on the store's SQLite), the WhatsApp channel and the outgoing
// webhooks. The queue is a feature of its own so other features find it in Extra["jobs"].
func init() {
	Register(Feature{Name: "jobs", Setup: setupJobs,
		Start: func(ctx context.Context, a *App) error {
			if q, ok := a.Extra["jobs"].(*jobs.Queue); ok {
				return q.Start(ctx)
			}
			return nil
		},
		Stop: func(ctx context.Context, a *App) error {
			if q, ok := a.Extra["jobs"].(*jobs.Queue); ok {
				return q.Stop(ctx)
			}
			return nil
		}})
	Register(Feature{Name: "whatsapp", Setup: setupWhatsApp,
		Start: func(ctx context.Context, a *App) error {
			if svc, ok := a.Extra["whatsapp"].(*whatsapp.Service); ok {
				return svc.StartDrainer(ctx)
			}
			return nil
		},
		Stop: func(ctx context.Context, a *App) error {
			svc, ok := a.Extra["whatsapp"].(*whatsapp.Service)
			if !ok {
				return nil
			}
			err := svc.StopDrainer(ctx)
			if ib, ok := a.Extra["whatsapp_inbox"].(*store.InboxLog); ok {
				err = errors.Join(err, ib.Close())
			}
			return err
		}})
	Register(Feature{Name: "webhooks", Setup: setupWebhooks,
		Start: func(ctx context.Context, a *App) error {
			if d, ok := a.Extra["webhooks"].(*webhooks.Service); ok {
				return d.Start(ctx)
			}
			return nil
		}})
}

func setupJobs(ctx context.Context, a *App) ([]server.Mount, error) {
	_, err := ensureJobs(ctx, a)
	return nil, err
}

// ensureJobs opens the queue once, for whichever feature needs it first (features set up in the
// order of their files' names, and some sort before this one).
func ensureJobs(ctx context.Context, a *App) (*jobs.Queue, error) {
	if q, ok := a.Extra["jobs"].(*jobs.Queue); ok {
		return q, nil
	}
	q, err := jobs.Open(ctx, a.Store.DB(), jobs.Options{Log: a.Config.Log, PollInterval: 100 * time.Millisecond, Postgres: a.Store.Dialect() == "postgres"})
	if err != nil {
		return nil, err
	}
	a.Extra["jobs"] = q
	return q, nil
}

func setupWhatsApp(ctx context.Context, a *App) ([]server.Mount, error) {
	q, ok := a.Extra["jobs"].(*jobs.Queue)
	if !ok {
		return nil, nil
	}
	inbox := store.OpenWAInbox(a.Store, a.Config.DB, a.Config.Log)
	a.Extra["whatsapp_inbox"] = inbox
	svc := &whatsapp.Service{
		Repo: a.Store, Inbox: inbox, Box: a.Secrets, Conversations: a.Conversations, Jobs: q, Blobs: a.Blobs, Log: a.Config.Log,
		HTTP:    &http.Client{Timeout: 60 * time.Second, Transport: tools.GuardedTransport(a.Config.AllowPrivateNetworks)},
		MediaAI: func() any { return a.Extra["media_ai"] },
		Metrics: whatsapp.NewMetrics(a.Registry),
	}
	svc.RegisterWorkers(q)
	a.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "parley_whatsapp_inbox_waiting",
		Help: "WhatsApp deliveries acknowledged during a burst and not stored yet (as this instance knows)."},
		func() float64 { return float64(svc.Waiting()) }))
	a.Conversations.RegisterChannel(conversation.TypeWhatsApp, svc.Channel())
	a.Extra["whatsapp"] = svc
	h := &waHandlers{a: a, svc: svc}
	a.APIRoutes["POST /api/v1/whatsapp/senders"] = h.createSender
	a.APIRoutes["GET /api/v1/whatsapp/senders"] = h.listSenders
	a.APIRoutes["GET /api/v1/whatsapp/senders/{id}"] = h.getSender
	a.APIRoutes["PATCH /api/v1/whatsapp/senders/{id}"] = h.updateSender
	a.APIRoutes["DELETE /api/v1/whatsapp/senders/{id}"] = h.deleteSender
	a.APIRoutes["POST /api/v1/whatsapp/templates"] = h.createTemplate
	a.APIRoutes["GET /api/v1/whatsapp/templates"] = h.listTemplates
	a.APIRoutes["POST /api/v1/whatsapp/messages"] = h.sendMessage
	a.APIRoutes["GET /api/v1/whatsapp/media/{id}"] = h.media
	a.APIRoutes["GET /api/v1/whatsapp/messages/{id}/payload"] = h.payload
	return []server.Mount{{Pattern: "/webhooks/whatsapp", Handler: svc.WebhookHandler()}}, nil
}

type waHandlers struct {
	a   *App
	svc *whatsapp.Service
}

// senderJSON is a sender as the API shows it: never its secrets.
type senderJSON struct {
	ID                 string  `json:"id"`
	PhoneNumberID      string  `json:"phone_number_id"`
	DisplayPhoneNumber string  `json:"display_phone_number"`
	AssistantID        string  `json:"assistant_id"`
	GraphAPIURL        string  `json:"graph_api_url"`
	RateLimitPerSecond int     `json:"rate_limit_per_second"`
	QualityRating      string  `json:"quality_rating"`
	MessagingLimit     string  `json:"messaging_limit"`
	LastError          string  `json:"last_error"`
	LastErrorAt        *string `json:"last_error_at"`
	HasAccessToken     bool    `json:"has_access_token"`
	HasAppSecret       bool    `json:"has_app_secret"`
	HasVerifyToken     bool    `json:"has_verify_token"`
	WebhookPath        string  `json:"webhook_path"`
	CreatedAt          string  `json:"created_at"`
	UpdatedAt          string  `json:"updated_at"`
}

func newSenderJSON(x *whatsapp.Sender) senderJSON {
	out := senderJSON{ID: x.ID, PhoneNumberID: x.PhoneNumberID, DisplayPhoneNumber: x.DisplayPhoneNumber, AssistantID: x.AssistantID,
		GraphAPIURL: x.GraphAPIURL, RateLimitPerSecond: x.RatePerSecond, QualityRating: x.QualityRating, MessagingLimit: x.MessagingLimit,
		LastError: x.LastError, HasAccessToken: x.AccessToken != "", HasAppSecret: x.AppSecret != "", HasVerifyToken: x.VerifyToken != "",
		WebhookPath: "/webhooks/whatsapp", CreatedAt: x.CreatedAt.UTC().Format(api.TimeFormat), UpdatedAt: x.UpdatedAt.UTC().Format(api.TimeFormat)}
	if x.LastErrorAt != nil {
		s := x.LastErrorAt.UTC().Format(api.TimeFormat)
		out.LastErrorAt = &s
	}
	return out
}

type senderInput struct {
	PhoneNumberID      *string `json:"phone_number_id"`
	DisplayPhoneNumber *string `json:"display_phone_number"`
	AccessToken        *string `json:"access_token"`
	AppSecret          *string `json:"app_secret"`
	VerifyToken        *string `json:"verify_token"`
	AssistantID        *string `json:"assistant_id"`
	GraphAPIURL        *string `json:"graph_api_url"`
	RateLimitPerSecond *int    `json:"rate_limit_per_second"`
}

func invalid(field, msg string) error {
	return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "%s %s", field, msg)
}

// apply validates the input onto x (create: every required field must be present).
func (h *waHandlers) apply(ctx context.Context, ws string, x *whatsapp.Sender, in senderInput, create bool) error {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = strings.TrimSpace(*v)
		}
	}
	set(&x.PhoneNumberID, in.PhoneNumberID)
	set(&x.DisplayPhoneNumber, in.DisplayPhoneNumber)
	set(&x.AccessToken, in.AccessToken)
	set(&x.AppSecret, in.AppSecret)
	set(&x.VerifyToken, in.VerifyToken)
	set(&x.AssistantID, in.AssistantID)
	set(&x.GraphAPIURL, in.GraphAPIURL)
	if in.RateLimitPerSecond != nil {
		x.RatePerSecond = *in.RateLimitPerSecond
	}
	if x.PhoneNumberID == "" || whatsapp.OnlyDigits(x.PhoneNumberID) != x.PhoneNumberID || len(x.PhoneNumberID) > 32 {
		return invalid("phone_number_id", "is required: the digits of the number's id in Meta's WhatsApp Manager")
	}
	for name, v := range map[string]string{"access_token": x.AccessToken, "app_secret": x.AppSecret, "verify_token": x.VerifyToken} {
		if v == "" {
			return invalid(name, "is required")
		}
		if len(v) > 4096 {
			return invalid(name, "must be at most 4096 characters")
		}
	}
	if len(x.DisplayPhoneNumber) > 32 {
		return invalid("display_phone_number", "must be at most 32 characters")
	}
	if x.GraphAPIURL == "" {
		x.GraphAPIURL = whatsapp.DefaultGraphAPIURL
	}
	x.GraphAPIURL = strings.TrimRight(x.GraphAPIURL, "/")
	if u, err := url.Parse(x.GraphAPIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return invalid("graph_api_url", "must be an http(s) URL such as "+whatsapp.DefaultGraphAPIURL)
	}
	if x.RatePerSecond == 0 {
		x.RatePerSecond = whatsapp.DefaultRatePerSecond
	}
	if x.RatePerSecond < 1 || x.RatePerSecond > 1000 {
		return invalid("rate_limit_per_second", "must be from 1 to 1000")
	}
	if x.AssistantID != "" && (create || in.AssistantID != nil) {
		if _, err := h.a.Assistants.Get(ctx, ws, x.AssistantID); err != nil {
			return api.Errorf(http.StatusNotFound, "assistant_not_found", "assistant not found")
		}
	}
	return nil
}

func (h *waHandlers) createSender(w http.ResponseWriter, r *http.Request) error {
	var in senderInput
	if err := api.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	ws := auth.WorkspaceID(r.Context())
	now := time.Now().UTC()
	x := &whatsapp.Sender{ID: ids.New(), WorkspaceID: ws, CreatedAt: now, UpdatedAt: now}
	if err := h.apply(r.Context(), ws, x, in, true); err != nil {
		return err
	}
	if err := h.save(r.Context(), x, true); err != nil {
		return err
	}
	h.refreshInfo(r.Context(), x)
	api.WriteJSON(w, http.StatusCreated, newSenderJSON(x))
	return nil
}

func (h *waHandlers) save(ctx context.Context, x *whatsapp.Sender, create bool) error {
	sealed := *x
	for _, f := range []*string{&sealed.AccessToken, &sealed.AppSecret, &sealed.VerifyToken} {
		v, err := h.a.Secrets.Seal(*f)
		if err != nil {
			return err
		}
		*f = v
	}
	var err error
	if create {
		err = h.a.Store.CreateWASender(ctx, &sealed)
	} else {
		err = h.a.Store.UpdateWASender(ctx, &sealed)
	}
	h.svc.ForgetSenders()
	switch {
	case errors.Is(err, store.ErrConflict):
		return api.Errorf(http.StatusConflict, "phone_number_taken", "a sender with this phone_number_id already exists")
	case errors.Is(err, store.ErrNotFound):
		return api.Errorf(http.StatusNotFound, "not_found", "sender not found")
	}
	return err
}

// refreshInfo queues a read of the number's quality rating and messaging limit from Meta.
func (h *waHandlers) refreshInfo(ctx context.Context, x *whatsapp.Sender) {
	if err := h.svc.Jobs.Insert(ctx, whatsapp.SenderInfoArgs{WorkspaceID: x.WorkspaceID, SenderID: x.ID}, nil); err != nil {
		h.a.Config.Log.Warn("whatsapp: queue sender info refresh", "sender", x.ID, "err", err)
	}
}

// payload shows a message's WhatsApp payload as Meta delivered it (or the request Parley sent).
func (h *waHandlers) payload(w http.ResponseWriter, r *http.Request) error {
	p, err := h.a.Store.MessagePayload(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && p == "") {
		return api.Errorf(http.StatusNotFound, "not_found", "no WhatsApp payload for this message")
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, p)
	return nil
}

func (h *waHandlers) listSenders(w http.ResponseWriter, r *http.Request) error {
	list, err := h.a.Store.ListWASenders(r.Context(), auth.WorkspaceID(r.Context()))
	if err != nil {
		return err
	}
	data := make([]senderJSON, 0, len(list))
	for _, x := range list {
		data = append(data, newSenderJSON(x))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": data})
	return nil
}

func (h *waHandlers) sender(r *http.Request) (*whatsapp.Sender, error) {
	x, err := h.svc.Sender(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(http.StatusNotFound, "not_found", "sender not found")
	}
	return x, err
}

func (h *waHandlers) getSender(w http.ResponseWriter, r *http.Request) error {
	x, err := h.sender(r)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, newSenderJSON(x))
	return nil
}

func (h *waHandlers) updateSender(w http.ResponseWriter, r *http.Request) error {
	x, err := h.sender(r)
	if err != nil {
		return err
	}
	var in senderInput
	if err := api.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if err := h.apply(r.Context(), x.WorkspaceID, x, in, false); err != nil {
		return err
	}
	if in.AccessToken != nil {
		x.LastError, x.LastErrorAt = "", nil // a new token clears a rejected one
	}
	x.UpdatedAt = time.Now().UTC()
	if err := h.save(r.Context(), x, false); err != nil {
		return err
	}
	if in.AccessToken != nil || in.GraphAPIURL != nil || in.PhoneNumberID != nil {
		h.refreshInfo(r.Context(), x)
	}
	api.WriteJSON(w, http.StatusOK, newSenderJSON(x))
	return nil
}

func (h *waHandlers) deleteSender(w http.ResponseWriter, r *http.Request) error {
	err := h.a.Store.DeleteWASender(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id"))
	h.svc.ForgetSenders()
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(http.StatusNotFound, "not_found", "sender not found")
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type templateJSON struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Language   string          `json:"language"`
	Category   string          `json:"category"`
	Components json.RawMessage `json:"components"`
	Status     string          `json:"status"`
	CreatedAt  string          `json:"created_at"`
}

func newTemplateJSON(t *whatsapp.Template) templateJSON {
	return templateJSON{ID: t.ID, Name: t.Name, Language: t.Language, Category: t.Category, Components: t.Components, Status: t.Status,
		CreatedAt: t.CreatedAt.UTC().Format(api.TimeFormat)}
}

// language accepts "en_US" or {"code": "en_US"}.
type language string

func (l *language) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = language(s)
		return nil
	}
	var o struct {
		Code string `json:"code"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	*l = language(o.Code)
	return nil
}

func (h *waHandlers) createTemplate(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name       string          `json:"name"`
		Language   language        `json:"language"`
		Category   string          `json:"category"`
		Components json.RawMessage `json:"components"`
	}
	if err := api.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	now := time.Now().UTC()
	t := &whatsapp.Template{ID: ids.New(), WorkspaceID: auth.WorkspaceID(r.Context()), Name: in.Name, Language: string(in.Language),
		Category: in.Category, Components: in.Components, Status: "local", CreatedAt: now, UpdatedAt: now}
	if err := whatsapp.ValidateTemplate(t); err != nil {
		return waError(err)
	}
	if err := h.a.Store.CreateWATemplate(r.Context(), t); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return api.Errorf(http.StatusConflict, "template_exists", "a template with this name and language already exists")
		}
		return err
	}
	api.WriteJSON(w, http.StatusCreated, newTemplateJSON(t))
	return nil
}

func (h *waHandlers) listTemplates(w http.ResponseWriter, r *http.Request) error {
	list, err := h.a.Store.ListWATemplates(r.Context(), auth.WorkspaceID(r.Context()))
	if err != nil {
		return err
	}
	data := make([]templateJSON, 0, len(list))
	for _, t := range list {
		data = append(data, newTemplateJSON(t))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": data})
	return nil
}

func waError(err error) error {
	var ie *whatsapp.InputError
	switch {
	case errors.As(err, &ie):
		return invalid(ie.Field, ie.Message)
	case errors.Is(err, whatsapp.ErrNoSender):
		return api.Errorf(http.StatusNotFound, "sender_not_found", "WhatsApp sender not found")
	case errors.Is(err, conversation.ErrWindowClosed):
		return api.Errorf(http.StatusConflict, "window_closed", "the 24-hour customer service window is closed: only a template can be sent")
	}
	return err
}

func (h *waHandlers) sendMessage(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		SenderID string `json:"sender_id"`
		To       string `json:"to"`
		Text     string `json:"text"`
		Template *struct {
			Name       string          `json:"name"`
			Language   language        `json:"language"`
			Components json.RawMessage `json:"components"`
		} `json:"template"`
		Media       *whatsapp.MediaSend `json:"media"`
		Interactive json.RawMessage     `json:"interactive"`
		Variables   map[string]any      `json:"variables"`
	}
	if err := api.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	req := whatsapp.OutboundRequest{SenderID: in.SenderID, To: in.To, Text: in.Text, Media: in.Media, Interactive: in.Interactive, Variables: map[string]string{}}
	if in.Template != nil {
		req.Template = &whatsapp.TemplateSend{Name: in.Template.Name, Language: string(in.Template.Language), Components: in.Template.Components}
	}
	for k, v := range in.Variables {
		switch t := v.(type) {
		case string:
			req.Variables[k] = t
		case float64, bool:
			b, _ := json.Marshal(t)
			req.Variables[k] = string(b)
		default:
			return invalid("variables."+k, "must be a string, number or boolean")
		}
	}
	ws := auth.WorkspaceID(r.Context())
	conv, m, err := h.svc.Send(r.Context(), ws, req)
	if err != nil {
		return waError(err)
	}
	api.WriteJSON(w, http.StatusCreated, map[string]any{"conversation_id": conv.ID, "message": api.NewMessageJSON(m)})
	return nil
}

func (h *waHandlers) media(w http.ResponseWriter, r *http.Request) error {
	ws := auth.WorkspaceID(r.Context())
	rc, err := h.a.Blobs.Open(r.Context(), whatsapp.MediaKey(ws, r.PathValue("id")))
	if err != nil {
		return api.Errorf(http.StatusNotFound, "not_found", "media not found")
	}
	defer rc.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(rc, head)
	w.Header().Set("Content-Type", http.DetectContentType(head[:n]))
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Header().Set("Content-Disposition", "inline")
	_, _ = w.Write(head[:n])
	_, _ = io.Copy(w, rc)
	return nil
}

func setupWebhooks(ctx context.Context, a *App) ([]server.Mount, error) {
	q, ok := a.Extra["jobs"].(*jobs.Queue)
	if !ok {
		return nil, nil
	}
	svc := &webhooks.Service{Repo: a.Store, Box: a.Secrets, Jobs: q, Events: a.Events, Log: a.Config.Log,
		HTTP: &http.Client{Timeout: 15 * time.Second, Transport: tools.GuardedTransport(a.Config.AllowPrivateNetworks)}}
	svc.RegisterWorkers(q)
	a.Extra["webhooks"] = svc
	a.APIRoutes["POST /api/v1/webhooks"] = func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			URL    string   `json:"url"`
			Events []string `json:"events"`
		}
		if err := api.DecodeJSON(w, r, &in); err != nil {
			return err
		}
		hk, err := svc.Create(r.Context(), auth.WorkspaceID(r.Context()), in.URL, in.Events)
		var ie *webhooks.InputError
		if errors.As(err, &ie) {
			return invalid(ie.Field, ie.Message)
		}
		if err != nil {
			return err
		}
		out := webhookJSON(hk)
		out["secret"] = hk.Secret // shown once, to verify signatures
		api.WriteJSON(w, http.StatusCreated, out)
		return nil
	}
	a.APIRoutes["GET /api/v1/webhooks"] = func(w http.ResponseWriter, r *http.Request) error {
		list, err := a.Store.ListWebhooks(r.Context(), auth.WorkspaceID(r.Context()))
		if err != nil {
			return err
		}
		data := make([]map[string]any, 0, len(list))
		for _, hk := range list {
			data = append(data, webhookJSON(hk))
		}
		api.WriteJSON(w, http.StatusOK, map[string]any{"data": data})
		return nil
	}
	a.APIRoutes["DELETE /api/v1/webhooks/{id}"] = func(w http.ResponseWriter, r *http.Request) error {
		err := a.Store.DeleteWebhook(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id"))
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(http.StatusNotFound, "not_found", "webhook not found")
		}
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return nil, nil
}

func webhookJSON(h *webhooks.Webhook) map[string]any {
	return map[string]any{"id": h.ID, "url": h.URL, "events": h.Events, "created_at": h.CreatedAt.UTC().Format(api.TimeFormat)}
}
