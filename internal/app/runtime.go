package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/blob"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/knowledge"
	"github.com/parley-hq/parley/internal/llm"
	"github.com/parley-hq/parley/internal/secrets"
	"github.com/parley-hq/parley/internal/server"
	"github.com/parley-hq/parley/internal/store"
	"github.com/parley-hq/parley/internal/tools"
)

// The assistant runtime: real models (any OpenAI-compatible server, per workspace or the server's
// default), prices, knowledge bases, HTTP tools, media for the model and post-conversation
// extraction. It fills in the Runtime the conversation service already holds.
//
// Configuration (app.Config, from the environment):
//   - PARLEY_LLM_BASE_URL, PARLEY_LLM_API_KEY: the default provider (unset: builtin model only)
//   - PARLEY_TRANSCRIBE_MODEL (default whisper-1), PARLEY_VISION_MODEL, PARLEY_EMBEDDING_MODEL
//     (unset: knowledge search is full text only)
//   - PARLEY_TOOLS_ALLOW_PRIVATE=true lets HTTP tools and workspaces' own providers reach
//     loopback and private addresses (off: refused at connect time)
//   - PARLEY_EXTRACT_IDLE (default 30m; negative disables): quiet time before an active
//     conversation's variables are extracted
//
// API (authenticated, /api/v1): POST|GET|DELETE /providers; GET /prices, PUT|DELETE
// /prices/{model}; POST|GET /knowledge-bases, GET|DELETE /knowledge-bases/{id},
// POST|GET /knowledge-bases/{id}/documents (JSON {title, content, mime_type?} or multipart "file"),
// DELETE /knowledge-bases/{id}/documents/{doc}, GET /knowledge-bases/{id}/chunks,
// GET /knowledge-bases/{id}/search?q=. Services: Extra["runtime"] (*Runtime), Extra["media_ai"]
// (*MediaAI: Transcribe, TranscribeWithCost, Describe, DescribeWithCost).
func init() {
	Register(Feature{Name: "runtime", Setup: setupRuntime, Start: startRuntime, Stop: stopRuntime})
}

// DefaultTranscribeModel is used for voice notes when PARLEY_TRANSCRIBE_MODEL is not set.
const DefaultTranscribeModel = "whisper-1"

// DefaultExtractIdle is how long a conversation stays quiet before its variables are extracted.
const DefaultExtractIdle = 30 * time.Minute

// Runtime is the runtime feature's services, in App.Extra["runtime"].
type Runtime struct {
	a          *App
	Resolver   *assistant.Resolver
	Prices     *assistant.Prices
	Knowledge  *knowledge.Service
	Media      *MediaAI
	persistent bool // the store has the runtime's tables (both backends do)
	log        *slog.Logger
	// extractions are the post-conversation extractions running in the background.
	extractions sync.WaitGroup
}

func setupRuntime(ctx context.Context, a *App) ([]server.Mount, error) {
	cfg := a.Config
	log := cfg.Log
	rt := &Runtime{a: a, persistent: true, log: log}
	transcribe := cfg.TranscribeModel
	if transcribe == "" {
		transcribe = DefaultTranscribeModel
	}
	rt.Resolver = &assistant.Resolver{
		Default:             assistant.ProviderConfig{BaseURL: cfg.LLMBaseURL, APIKey: cfg.LLMAPIKey, TranscribeModel: transcribe, VisionModel: cfg.VisionModel, EmbeddingModel: cfg.EmbeddingModel},
		HTTPClient:          &http.Client{},
		WorkspaceHTTPClient: &http.Client{Transport: tools.GuardedTransport(cfg.ToolsAllowPrivate)},
	}
	rt.Prices = &assistant.Prices{Log: log}
	secretStore := &toolSecretStore{st: a.Store, box: a.Secrets}
	if rt.persistent {
		rt.Resolver.Workspaces = &workspaceProviders{st: a.Store, box: a.Secrets}
		rt.Prices.Repo = storePrices{a.Store}
		rt.Knowledge = knowledge.NewService(a.Store, embedder{rt.Resolver}, log)
		a.Assistants.Secrets = secretStore
		a.Assistants.KnowledgeBases = rt.Knowledge
		a.Runtime.Knowledge = rt.Knowledge
		a.Runtime.Headers = secretStore
	}
	rt.Media = &MediaAI{Resolver: rt.Resolver, Prices: rt.Prices}
	a.Runtime.Providers = rt.Resolver
	a.Runtime.Prices = rt.Prices
	a.Runtime.HTTP = tools.NewHTTPCaller(cfg.ToolsAllowPrivate)
	a.Runtime.Images = blobImages{a.Blobs}
	a.Conversations.OnEnd(rt.conversationEnded)
	a.Extra["runtime"] = rt
	a.Extra["media_ai"] = rt.Media

	r := a.APIRoutes
	r["GET /api/v1/prices"] = rt.listPrices
	if !rt.persistent {
		return nil, nil
	}
	r["POST /api/v1/providers"] = rt.putProvider
	r["GET /api/v1/providers"] = rt.getProvider
	r["DELETE /api/v1/providers"] = rt.deleteProvider
	r["PUT /api/v1/prices/{model...}"] = rt.putPrice
	r["DELETE /api/v1/prices/{model...}"] = rt.deletePrice
	r["POST /api/v1/knowledge-bases"] = rt.createKB
	r["GET /api/v1/knowledge-bases"] = rt.listKBs
	r["GET /api/v1/knowledge-bases/{id}"] = rt.getKB
	r["DELETE /api/v1/knowledge-bases/{id}"] = rt.deleteKB
	r["POST /api/v1/knowledge-bases/{id}/documents"] = rt.addDocument
	r["GET /api/v1/knowledge-bases/{id}/documents"] = rt.listDocuments
	r["DELETE /api/v1/knowledge-bases/{id}/documents/{doc}"] = rt.deleteDocument
	r["GET /api/v1/knowledge-bases/{id}/chunks"] = rt.listChunks
	r["GET /api/v1/knowledge-bases/{id}/search"] = rt.searchKB
	return nil, nil
}

func startRuntime(ctx context.Context, a *App) error {
	rt, _ := a.Extra["runtime"].(*Runtime)
	if rt == nil || !rt.persistent || a.Config.ExtractIdle < 0 {
		return nil
	}
	idle := a.Config.ExtractIdle
	if idle == 0 {
		idle = DefaultExtractIdle
	}
	every := min(max(idle/4, time.Second), time.Minute)
	go runEvery(ctx, every, func() {
		if _, err := rt.SweepIdle(ctx, time.Now(), idle); err != nil && ctx.Err() == nil {
			rt.log.Warn("runtime: idle extraction sweep failed", "err", err)
		}
	})
	return nil
}

// stopRuntime waits (within ctx) for the extractions still running.
func stopRuntime(ctx context.Context, a *App) error {
	rt, _ := a.Extra["runtime"].(*Runtime)
	if rt == nil {
		return nil
	}
	done := make(chan struct{})
	go func() { rt.extractions.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("post-conversation extractions still running: %w", ctx.Err())
	}
}

// WaitExtractions blocks until the background extractions started so far are done.
func (rt *Runtime) WaitExtractions() { rt.extractions.Wait() }

// ---- providers ----

type workspaceProviders struct {
	st  *store.Store
	box *secrets.Box
}

func (w *workspaceProviders) WorkspaceProvider(ctx context.Context, workspaceID string) (assistant.ProviderConfig, error) {
	row, err := w.st.GetProvider(ctx, workspaceID)
	if errors.Is(err, store.ErrNotFound) {
		return assistant.ProviderConfig{}, assistant.ErrNoWorkspaceProvider
	}
	if err != nil {
		return assistant.ProviderConfig{}, fmt.Errorf("read provider: %w", err)
	}
	key, err := w.box.Open(row.APIKeySealed)
	if err != nil {
		return assistant.ProviderConfig{}, fmt.Errorf("open provider key: %w", err)
	}
	return assistant.ProviderConfig{BaseURL: row.BaseURL, APIKey: key, TranscribeModel: row.TranscribeModel, VisionModel: row.VisionModel, EmbeddingModel: row.EmbeddingModel}, nil
}

type providerJSON struct {
	Source          string  `json:"source"` // workspace | default | none
	BaseURL         string  `json:"base_url"`
	APIKeySet       bool    `json:"api_key_set"`
	TranscribeModel string  `json:"transcribe_model"`
	VisionModel     string  `json:"vision_model"`
	EmbeddingModel  string  `json:"embedding_model"`
	UpdatedAt       *string `json:"updated_at"`
}

func (rt *Runtime) providerJSON(ctx context.Context, ws string) (providerJSON, error) {
	row, err := rt.a.Store.GetProvider(ctx, ws)
	if err == nil {
		t := row.UpdatedAt.UTC().Format(api.TimeFormat)
		return providerJSON{Source: "workspace", BaseURL: row.BaseURL, APIKeySet: row.APIKeySealed != "", TranscribeModel: row.TranscribeModel,
			VisionModel: row.VisionModel, EmbeddingModel: row.EmbeddingModel, UpdatedAt: &t}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return providerJSON{}, err
	}
	d := rt.Resolver.Default
	if !d.Configured() {
		return providerJSON{Source: "none"}, nil
	}
	return providerJSON{Source: "default", BaseURL: d.BaseURL, APIKeySet: d.APIKey != "", TranscribeModel: d.TranscribeModel, VisionModel: d.VisionModel, EmbeddingModel: d.EmbeddingModel}, nil
}

func (rt *Runtime) putProvider(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		BaseURL         *string `json:"base_url"`
		APIKey          *string `json:"api_key"`
		TranscribeModel *string `json:"transcribe_model"`
		VisionModel     *string `json:"vision_model"`
		EmbeddingModel  *string `json:"embedding_model"`
	}
	if err := api.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	ws := auth.WorkspaceID(r.Context())
	row, err := rt.a.Store.GetProvider(r.Context(), ws)
	if errors.Is(err, store.ErrNotFound) {
		row, err = &store.ProviderRow{WorkspaceID: ws}, nil
	}
	if err != nil {
		return err
	}
	created := row.BaseURL == ""
	if in.BaseURL != nil {
		row.BaseURL = strings.TrimSpace(*in.BaseURL)
	}
	u, perr := url.Parse(row.BaseURL)
	if row.BaseURL == "" || perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "base_url must be an absolute http(s) URL such as https://api.openai.com/v1")
	}
	if in.APIKey != nil {
		if len(*in.APIKey) > 4096 || strings.ContainsAny(*in.APIKey, "\r\n") {
			return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "api_key must be one line of at most 4096 characters")
		}
		sealed, err := rt.a.Secrets.Seal(strings.TrimSpace(*in.APIKey))
		if err != nil {
			return fmt.Errorf("seal api key: %w", err)
		}
		row.APIKeySealed = sealed
	}
	for _, m := range []struct {
		in  *string
		dst *string
		f   string
	}{{in.TranscribeModel, &row.TranscribeModel, "transcribe_model"}, {in.VisionModel, &row.VisionModel, "vision_model"}, {in.EmbeddingModel, &row.EmbeddingModel, "embedding_model"}} {
		if m.in == nil {
			continue
		}
		if v := strings.TrimSpace(*m.in); len(v) <= 200 {
			*m.dst = v
		} else {
			return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "%s must be at most 200 characters", m.f)
		}
	}
	row.UpdatedAt = time.Now().UTC()
	if err := rt.a.Store.PutProvider(r.Context(), row); err != nil {
		return fmt.Errorf("store provider: %w", err)
	}
	out, err := rt.providerJSON(r.Context(), ws)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	api.WriteJSON(w, status, out)
	return nil
}

func (rt *Runtime) getProvider(w http.ResponseWriter, r *http.Request) error {
	out, err := rt.providerJSON(r.Context(), auth.WorkspaceID(r.Context()))
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (rt *Runtime) deleteProvider(w http.ResponseWriter, r *http.Request) error {
	err := rt.a.Store.DeleteProvider(r.Context(), auth.WorkspaceID(r.Context()))
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(http.StatusNotFound, "not_found", "the workspace has no provider of its own")
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- prices ----

type storePrices struct{ st *store.Store }

func (p storePrices) WorkspacePrice(ctx context.Context, workspaceID, model string) (*assistant.Price, error) {
	row, err := p.st.GetPrice(ctx, workspaceID, model)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &assistant.Price{Model: row.Model, InputMicros: row.InputMicros, OutputMicros: row.OutputMicros, PerMinuteMicros: row.PerMinuteMicros, UpdatedAt: row.UpdatedAt}, nil
}

func (p storePrices) WorkspacePrices(ctx context.Context, workspaceID string) ([]assistant.Price, error) {
	rows, err := p.st.ListPrices(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	out := make([]assistant.Price, 0, len(rows))
	for _, r := range rows {
		out = append(out, assistant.Price{Model: r.Model, InputMicros: r.InputMicros, OutputMicros: r.OutputMicros, PerMinuteMicros: r.PerMinuteMicros, UpdatedAt: r.UpdatedAt})
	}
	return out, nil
}

func (p storePrices) SetWorkspacePrice(ctx context.Context, workspaceID string, pr assistant.Price) error {
	return p.st.PutPrice(ctx, workspaceID, store.PriceRow{Model: pr.Model, InputMicros: pr.InputMicros, OutputMicros: pr.OutputMicros, PerMinuteMicros: pr.PerMinuteMicros, UpdatedAt: pr.UpdatedAt})
}

type priceJSON struct {
	Model               string  `json:"model"`
	InputPerMillionUSD  float64 `json:"input_per_million_usd"`
	OutputPerMillionUSD float64 `json:"output_per_million_usd"`
	PerMinuteUSD        float64 `json:"per_minute_usd"`
	Default             bool    `json:"default"`
	UpdatedAt           *string `json:"updated_at"`
}

func newPriceJSON(p assistant.Price) priceJSON {
	out := priceJSON{Model: p.Model, InputPerMillionUSD: api.USD(p.InputMicros), OutputPerMillionUSD: api.USD(p.OutputMicros), PerMinuteUSD: api.USD(p.PerMinuteMicros), Default: p.Default}
	if !p.UpdatedAt.IsZero() {
		t := p.UpdatedAt.UTC().Format(api.TimeFormat)
		out.UpdatedAt = &t
	}
	return out
}

func (rt *Runtime) listPrices(w http.ResponseWriter, r *http.Request) error {
	list, err := rt.Prices.List(r.Context(), auth.WorkspaceID(r.Context()))
	if err != nil {
		return err
	}
	out := make([]priceJSON, 0, len(list))
	for _, p := range list {
		out = append(out, newPriceJSON(p))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

// usdMicros converts a USD price to micro-dollars, refusing what cannot be a price.
func usdMicros(field string, v *float64) (int64, error) {
	if v == nil {
		return 0, nil
	}
	if math.IsNaN(*v) || *v < 0 || *v > 1_000_000 {
		return 0, api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "%s must be a number from 0 to 1000000", field)
	}
	return int64(math.Round(*v * 1e6)), nil
}

func (rt *Runtime) putPrice(w http.ResponseWriter, r *http.Request) error {
	model := strings.TrimSpace(r.PathValue("model"))
	if model == "" || len(model) > 200 {
		return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "the model name must be 1 to 200 characters")
	}
	var in struct {
		Input     *float64 `json:"input_per_million_usd"`
		Output    *float64 `json:"output_per_million_usd"`
		PerMinute *float64 `json:"per_minute_usd"`
	}
	if err := api.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Input == nil && in.Output == nil && in.PerMinute == nil {
		return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "input_per_million_usd and output_per_million_usd (or per_minute_usd) are required")
	}
	ws := auth.WorkspaceID(r.Context())
	cur, _ := rt.Prices.Price(r.Context(), ws, model)
	p := assistant.Price{Model: model, InputMicros: cur.InputMicros, OutputMicros: cur.OutputMicros, PerMinuteMicros: cur.PerMinuteMicros, UpdatedAt: time.Now().UTC()}
	var err error
	if in.Input != nil {
		if p.InputMicros, err = usdMicros("input_per_million_usd", in.Input); err != nil {
			return err
		}
	}
	if in.Output != nil {
		if p.OutputMicros, err = usdMicros("output_per_million_usd", in.Output); err != nil {
			return err
		}
	}
	if in.PerMinute != nil {
		if p.PerMinuteMicros, err = usdMicros("per_minute_usd", in.PerMinute); err != nil {
			return err
		}
	}
	if err := (storePrices{rt.a.Store}).SetWorkspacePrice(r.Context(), ws, p); err != nil {
		return fmt.Errorf("store price: %w", err)
	}
	api.WriteJSON(w, http.StatusOK, newPriceJSON(p))
	return nil
}

func (rt *Runtime) deletePrice(w http.ResponseWriter, r *http.Request) error {
	err := rt.a.Store.DeletePrice(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("model"))
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(http.StatusNotFound, "not_found", "the workspace has no price of its own for this model")
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- HTTP tool secrets ----

type toolSecretStore struct {
	st  *store.Store
	box *secrets.Box
}

func (t *toolSecretStore) SaveToolHeaders(ctx context.Context, workspaceID, assistantID string, headers map[string]map[string]string) error {
	sealed := map[string]map[string]string{}
	for tool, hs := range headers {
		sealed[tool] = map[string]string{}
		for h, v := range hs {
			s, err := t.box.Seal(v)
			if err != nil {
				return err
			}
			sealed[tool][h] = s
		}
	}
	return t.st.PutToolSecrets(ctx, workspaceID, assistantID, sealed)
}

func (t *toolSecretStore) ToolHeaders(ctx context.Context, workspaceID, assistantID string) (map[string]map[string]string, error) {
	sealed, err := t.st.ToolSecrets(ctx, workspaceID, assistantID)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for tool, hs := range sealed {
		out[tool] = map[string]string{}
		for h, v := range hs {
			plain, err := t.box.Open(v)
			if err != nil {
				return nil, err
			}
			out[tool][h] = plain
		}
	}
	return out, nil
}

// ---- knowledge bases ----

type embedder struct{ r *assistant.Resolver }

func (e embedder) Embed(ctx context.Context, workspaceID string, inputs []string) ([][]float32, error) {
	p, cfg, err := e.r.OpenAI(ctx, workspaceID)
	if errors.Is(err, llm.ErrNoProvider) || (err == nil && cfg.EmbeddingModel == "") {
		return nil, knowledge.ErrNoEmbeddings
	}
	if err != nil {
		return nil, err
	}
	vecs, _, err := p.Embed(ctx, cfg.EmbeddingModel, inputs)
	return vecs, err
}

type kbJSON struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Description   string `json:"description"`
	DocumentCount int64  `json:"document_count"`
	ChunkCount    int64  `json:"chunk_count"`
	CreatedAt     string `json:"created_at"`
	UpdatedAt     string `json:"updated_at"`
}

func newKBJSON(kb *knowledge.KnowledgeBase) kbJSON {
	return kbJSON{ID: kb.ID, Name: kb.Name, Description: kb.Description, DocumentCount: kb.DocumentCount, ChunkCount: kb.ChunkCount,
		CreatedAt: kb.CreatedAt.UTC().Format(api.TimeFormat), UpdatedAt: kb.UpdatedAt.UTC().Format(api.TimeFormat)}
}

type documentJSON struct {
	ID              string `json:"id"`
	KnowledgeBaseID string `json:"knowledge_base_id"`
	Title           string `json:"title"`
	Filename        string `json:"filename,omitempty"`
	MimeType        string `json:"mime_type"`
	SizeBytes       int64  `json:"size_bytes"`
	ChunkCount      int    `json:"chunk_count"`
	Embedded        bool   `json:"embedded"`
	CreatedAt       string `json:"created_at"`
}

func newDocumentJSON(d *knowledge.Document) documentJSON {
	return documentJSON{ID: d.ID, KnowledgeBaseID: d.KnowledgeBaseID, Title: d.Title, Filename: d.Filename, MimeType: d.MimeType, SizeBytes: d.SizeBytes,
		ChunkCount: d.ChunkCount, Embedded: d.Embedded, CreatedAt: d.CreatedAt.UTC().Format(api.TimeFormat)}
}

func kbError(err error) error {
	var ie *knowledge.InputError
	switch {
	case errors.As(err, &ie):
		return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "%s %s", ie.Field, ie.Message)
	case errors.Is(err, knowledge.ErrNotFound):
		return api.Errorf(http.StatusNotFound, "not_found", "knowledge base not found")
	case errors.Is(err, store.ErrNotFound):
		return api.Errorf(http.StatusNotFound, "not_found", "not found")
	}
	return err
}

func (rt *Runtime) createKB(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	}
	if err := api.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	kb, err := rt.Knowledge.Create(r.Context(), auth.WorkspaceID(r.Context()), in.Name, in.Description)
	if err != nil {
		return kbError(err)
	}
	api.WriteJSON(w, http.StatusCreated, newKBJSON(kb))
	return nil
}

func (rt *Runtime) listKBs(w http.ResponseWriter, r *http.Request) error {
	list, err := rt.Knowledge.List(r.Context(), auth.WorkspaceID(r.Context()))
	if err != nil {
		return err
	}
	out := make([]kbJSON, 0, len(list))
	for _, kb := range list {
		out = append(out, newKBJSON(kb))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

func (rt *Runtime) getKB(w http.ResponseWriter, r *http.Request) error {
	kb, err := rt.Knowledge.Get(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id"))
	if err != nil {
		return kbError(err)
	}
	api.WriteJSON(w, http.StatusOK, newKBJSON(kb))
	return nil
}

func (rt *Runtime) deleteKB(w http.ResponseWriter, r *http.Request) error {
	if err := rt.Knowledge.Delete(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id")); err != nil {
		return kbError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// addDocument takes JSON {title, content, mime_type?} or a multipart upload (a "file" part, and
// optionally "title").
func (rt *Runtime) addDocument(w http.ResponseWriter, r *http.Request) error {
	ws := auth.WorkspaceID(r.Context())
	kbID := r.PathValue("id")
	if _, err := rt.Knowledge.Get(r.Context(), ws, kbID); err != nil {
		return kbError(err)
	}
	var in knowledge.DocumentInput
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		if params["boundary"] == "" {
			return api.Errorf(http.StatusBadRequest, "invalid_body", "the multipart body has no boundary")
		}
		r.Body = http.MaxBytesReader(w, r.Body, knowledge.MaxDocumentBytes+64<<10)
		mr, err := r.MultipartReader()
		if err != nil {
			return api.Errorf(http.StatusBadRequest, "invalid_body", "the multipart body could not be read")
		}
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return uploadError(err)
			}
			switch part.FormName() {
			case "file":
				data, err := io.ReadAll(io.LimitReader(part, knowledge.MaxDocumentBytes+1))
				if err != nil {
					return uploadError(err)
				}
				if len(data) > knowledge.MaxDocumentBytes {
					return api.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "a document must be at most %d bytes", knowledge.MaxDocumentBytes)
				}
				in.Content, in.Filename, in.MimeType = data, part.FileName(), part.Header.Get("Content-Type")
				if in.MimeType == "application/octet-stream" {
					in.MimeType = ""
				}
			case "title":
				b, _ := io.ReadAll(io.LimitReader(part, 4096))
				in.Title = string(b)
			}
			part.Close()
		}
		if in.Content == nil {
			return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "file is required (a multipart part named \"file\")")
		}
	} else {
		var body struct {
			Title    string `json:"title"`
			Content  string `json:"content"`
			MimeType string `json:"mime_type"`
			Filename string `json:"filename"`
		}
		if err := api.DecodeJSON(w, r, &body); err != nil {
			return err
		}
		if strings.TrimSpace(body.Content) == "" {
			return api.Errorf(http.StatusUnprocessableEntity, "invalid_field", "content is required")
		}
		// Without a type, the content says what it is (HTML, Markdown, else plain text).
		in = knowledge.DocumentInput{Title: body.Title, Content: []byte(body.Content), MimeType: body.MimeType, Filename: body.Filename}
	}
	d, err := rt.Knowledge.AddDocument(r.Context(), ws, kbID, in)
	if err != nil {
		return kbError(err)
	}
	api.WriteJSON(w, http.StatusCreated, newDocumentJSON(d))
	return nil
}

func uploadError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return api.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "a document must be at most %d bytes", knowledge.MaxDocumentBytes)
	}
	return api.Errorf(http.StatusBadRequest, "invalid_body", "the multipart body could not be read")
}

func (rt *Runtime) listDocuments(w http.ResponseWriter, r *http.Request) error {
	docs, err := rt.Knowledge.Documents(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id"))
	if err != nil {
		return kbError(err)
	}
	out := make([]documentJSON, 0, len(docs))
	for _, d := range docs {
		out = append(out, newDocumentJSON(d))
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

func (rt *Runtime) deleteDocument(w http.ResponseWriter, r *http.Request) error {
	err := rt.Knowledge.DeleteDocument(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id"), r.PathValue("doc"))
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(http.StatusNotFound, "not_found", "document not found")
	}
	if err != nil {
		return kbError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (rt *Runtime) listChunks(w http.ResponseWriter, r *http.Request) error {
	limit := 200
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return api.Errorf(http.StatusBadRequest, "invalid_parameter", "limit must be a whole number from 1 to 1000")
		}
		limit = n
	}
	chunks, err := rt.Knowledge.Chunks(r.Context(), auth.WorkspaceID(r.Context()), r.PathValue("id"), r.URL.Query().Get("document_id"), limit)
	if err != nil {
		return kbError(err)
	}
	out := make([]map[string]any, 0, len(chunks))
	for _, c := range chunks {
		out = append(out, map[string]any{"document_id": c.DocumentID, "title": c.Title, "position": c.Position, "content": c.Content})
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": out})
	return nil
}

func (rt *Runtime) searchKB(w http.ResponseWriter, r *http.Request) error {
	ws := auth.WorkspaceID(r.Context())
	id := r.PathValue("id")
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" || len(q) > 1000 {
		return api.Errorf(http.StatusBadRequest, "invalid_parameter", "q is required (at most 1000 characters)")
	}
	limit := 5
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 50 {
			return api.Errorf(http.StatusBadRequest, "invalid_parameter", "limit must be a whole number from 1 to 50")
		}
		limit = n
	}
	if _, err := rt.Knowledge.Get(r.Context(), ws, id); err != nil {
		return kbError(err)
	}
	hits, err := rt.Knowledge.Search(r.Context(), ws, []string{id}, q, limit)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, map[string]any{"data": hits})
	return nil
}

// ---- media for the model ----

// MediaAI transcribes voice notes and describes images with the workspace's provider; channels
// find it as App.Extra["media_ai"].
type MediaAI struct {
	Resolver *assistant.Resolver
	Prices   *assistant.Prices
}

// Transcribe turns audio into text through /v1/audio/transcriptions (the file is sent as it is).
func (m *MediaAI) Transcribe(ctx context.Context, workspaceID string, audio io.Reader, filename, mimeType string) (string, error) {
	text, _, err := m.TranscribeWithCost(ctx, workspaceID, audio, filename, mimeType)
	return text, err
}

// TranscribeWithCost transcribes and prices the audio by the minute (integer micro-dollars).
func (m *MediaAI) TranscribeWithCost(ctx context.Context, workspaceID string, audio io.Reader, filename, mimeType string) (string, int64, error) {
	p, cfg, err := m.Resolver.OpenAI(ctx, workspaceID)
	if err != nil {
		return "", 0, err
	}
	model := cfg.TranscribeModel
	if model == "" {
		model = DefaultTranscribeModel
	}
	if filename == "" {
		filename = "voice" + audioExt(mimeType)
	}
	t, err := p.Transcribe(ctx, model, audio, filename, mimeType)
	if err != nil {
		return "", 0, fmt.Errorf("transcribe: %w", err)
	}
	return t.Text, m.Prices.AudioCost(ctx, workspaceID, model, t.Seconds), nil
}

func audioExt(mimeType string) string {
	switch strings.SplitN(mimeType, ";", 2)[0] {
	case "audio/ogg", "audio/opus":
		return ".ogg"
	case "audio/mpeg":
		return ".mp3"
	case "audio/mp4", "audio/aac", "audio/x-m4a":
		return ".m4a"
	case "audio/wav", "audio/x-wav":
		return ".wav"
	case "audio/webm":
		return ".webm"
	}
	return ".ogg"
}

// Describe asks the vision model for a short description of an image (and any text in it).
func (m *MediaAI) Describe(ctx context.Context, workspaceID string, image []byte, mimeType string) (string, error) {
	text, _, err := m.DescribeWithCost(ctx, workspaceID, image, mimeType)
	return text, err
}

// DescribeWithCost describes an image and prices the call.
func (m *MediaAI) DescribeWithCost(ctx context.Context, workspaceID string, image []byte, mimeType string) (string, int64, error) {
	p, cfg, err := m.Resolver.OpenAI(ctx, workspaceID)
	if err != nil {
		return "", 0, err
	}
	if cfg.VisionModel == "" {
		return "", 0, errors.New("describe: no vision model configured (PARLEY_VISION_MODEL or the workspace's vision_model)")
	}
	req := llm.Request{Model: cfg.VisionModel, Messages: []llm.Message{
		{Role: "system", Content: "Describe the image a customer sent to a customer-service assistant in one to three plain sentences. Copy any text, numbers or codes visible in it exactly."},
		{Role: "user", Content: "The customer sent this image.", Images: []llm.Image{{MimeType: mimeType, Data: image}}},
	}}
	resp, err := p.Chat(ctx, req, nil)
	if err != nil {
		return "", 0, fmt.Errorf("describe: %w", err)
	}
	return strings.TrimSpace(resp.Content), m.Prices.Cost(ctx, workspaceID, cfg.VisionModel, resp.Usage), nil
}

// blobImages loads customers' images from the blob store for vision models.
type blobImages struct{ blobs blob.Store }

// maxImageBytes bounds an image sent inline to a model.
const maxImageBytes = 20 << 20

func (b blobImages) LoadImage(ctx context.Context, workspaceID string, img llm.Image) (llm.Image, error) {
	if img.MessageID != "" && b.blobs != nil {
		// The channels' blob keys for a message's attachment.
		for _, key := range []string{"whatsapp/" + workspaceID + "/" + img.MessageID, "widget/" + workspaceID + "/" + img.MessageID, "media/" + workspaceID + "/" + img.MessageID} {
			rc, err := b.blobs.Open(ctx, key)
			if err != nil {
				continue
			}
			data, err := io.ReadAll(io.LimitReader(rc, maxImageBytes+1))
			rc.Close()
			if err != nil {
				return img, err
			}
			if len(data) > maxImageBytes {
				return img, fmt.Errorf("image %s is larger than %d bytes", img.MessageID, maxImageBytes)
			}
			img.Data = data
			if img.MimeType == "" {
				img.MimeType = http.DetectContentType(data)
			}
			return img, nil
		}
	}
	if strings.HasPrefix(img.URL, "https://") {
		return img, nil // a public URL the provider fetches itself
	}
	return img, errors.New("the image's bytes are not in the blob store")
}

// ---- post-conversation extraction ----

// conversationEnded fills the assistant's extract schema when a conversation ends, in the
// background: neither the /end answer nor the assistant's goodbye waits for the model.
func (rt *Runtime) conversationEnded(ctx context.Context, c *conversation.Conversation) {
	rt.extractions.Add(1)
	go func() {
		defer rt.extractions.Done()
		if _, err := rt.ExtractConversation(context.WithoutCancel(ctx), c.WorkspaceID, c.ID); err != nil {
			rt.log.Warn("runtime: post-conversation extraction failed", "conversation", c.ID, "err", err)
		}
	}()
}

// ExtractConversation runs post-conversation extraction once for the conversation's activity so
// far, storing the values with source post_conversation (values the customer or a flow gave, or
// that the assistant recorded during the conversation, are kept). It returns how many it stored.
func (rt *Runtime) ExtractConversation(ctx context.Context, workspaceID, conversationID string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	a := rt.a
	c, err := a.Store.GetConversation(ctx, workspaceID, conversationID)
	if err != nil {
		return 0, err
	}
	if c.AssistantID == "" {
		return 0, nil
	}
	as, err := a.Assistants.Get(ctx, workspaceID, c.AssistantID)
	if err != nil || len(as.Extract) == 0 {
		return 0, nil
	}
	if rt.persistent {
		claimed, err := a.Store.ClaimExtraction(ctx, workspaceID, c.ID, c.LastMessageAt)
		if err != nil {
			return 0, fmt.Errorf("claim extraction: %w", err)
		}
		if !claimed {
			return 0, nil
		}
	}
	msgs, err := a.Store.Messages(ctx, workspaceID, c.ID, 200)
	if err != nil {
		return 0, fmt.Errorf("load messages: %w", err)
	}
	vars, err := a.Store.Variables(ctx, workspaceID, c.ID)
	if err != nil {
		return 0, fmt.Errorf("load variables: %w", err)
	}
	known := map[string]string{}
	keep := map[string]bool{}
	for _, v := range vars {
		known[v.Name] = v.Value
		keep[v.Name] = v.Source != conversation.SourcePostConversation
	}
	history := conversation.ToLLM(msgs)
	for i := range history {
		history[i].Images = nil
	}
	ex, err := a.Runtime.Extract(ctx, as, history, known)
	if err != nil {
		return 0, err
	}
	now := time.Now().UTC()
	ch := conversation.Change{CostMicros: ex.CostMicros}
	for name, v := range ex.Values {
		if keep[name] {
			continue
		}
		ch.Variables = append(ch.Variables, conversation.Variable{Name: name, Value: v, Source: conversation.SourcePostConversation, UpdatedAt: now})
	}
	if len(ch.Variables) == 0 && ch.CostMicros == 0 {
		return 0, nil
	}
	c, _, err = a.Store.Apply(ctx, workspaceID, c.ID, ch)
	if err != nil {
		return 0, fmt.Errorf("store extracted variables: %w", err)
	}
	if a.Events != nil {
		a.Events.Publish(workspaceID, c, nil)
	}
	return len(ch.Variables), nil
}

// SweepIdle extracts the variables of active conversations quiet for idle (up to an hour more, so
// a sweep's reads stay small); it returns how many conversations it extracted.
func (rt *Runtime) SweepIdle(ctx context.Context, now time.Time, idle time.Duration) (int, error) {
	to := now.Add(-idle)
	list, err := rt.a.Store.IdleConversations(ctx, to.Add(-time.Hour), to, 100)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ic := range list {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if _, err := rt.ExtractConversation(ctx, ic.WorkspaceID, ic.ID); err != nil {
			rt.log.Warn("runtime: idle extraction failed", "conversation", ic.ID, "err", err)
			continue
		}
		n++
	}
	return n, nil
}
