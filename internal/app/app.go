// Package app wires Parley's parts together: the store, the domain services and the HTTP surface.
// The CLI, the integration tests and the benchmark harness all start Parley through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/blob"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/events"
	"github.com/parley-hq/parley/internal/secrets"
	"github.com/parley-hq/parley/internal/server"
	"github.com/parley-hq/parley/internal/store"
)

// Config is every setting, from flags and environment.
type Config struct {
	Addr       string
	DB         string
	DataDir    string
	LLMBaseURL string
	LLMAPIKey  string
	SecretKey  string // PARLEY_SECRET_KEY; empty: a key generated into DataDir
	// APIRateLimit is requests per second per API key (PARLEY_API_RATE_LIMIT; 0: off).
	APIRateLimit float64
	Log          *slog.Logger
	// The assistant runtime (internal/app/runtime.go): models for voice notes, images and
	// embeddings; whether HTTP tools may reach private addresses; idle time before extraction.
	TranscribeModel, VisionModel, EmbeddingModel string
	ToolsAllowPrivate                            bool
	// AllowPrivateNetworks lets URLs that workspaces configure (a sender's Graph API URL and the
	// media it points to, outgoing webhooks, HTTP tools, their own LLM provider) reach loopback and
	// private addresses (PARLEY_ALLOW_PRIVATE_NETWORKS). Off: such URLs cannot probe the server's
	// own network.
	AllowPrivateNetworks bool
	ExtractIdle          time.Duration
}

// App is a running Parley's parts.
type App struct {
	Config        Config
	Store         *store.Store
	Auth          *auth.Service
	Assistants    *assistant.Service
	Conversations *conversation.Service
	Runtime       *assistant.Runtime
	Registry      *prometheus.Registry
	// Secrets encrypts credentials at rest; Blobs stores media.
	Secrets *secrets.Box
	Blobs   blob.Store
	// Events fans conversation changes out to live views.
	Events *events.Hub
	// APIRoutes are extra authenticated /api/v1 routes that features add (pattern → handler).
	// Handlers read the workspace with auth.WorkspaceID(r.Context()).
	APIRoutes map[string]api.HandlerFunc
	// Extra holds features' services by name, for other features to find.
	Extra map[string]any

	fanout      *events.PGFanout
	api         *api.API
	mounts      []server.Mount
	handlerOnce sync.Once
	handler     http.Handler
}

// Open connects to the database, migrates it and builds the services.
func Open(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	// One switch for every workspace-configured URL; the tools' older name still works.
	cfg.AllowPrivateNetworks = cfg.AllowPrivateNetworks || cfg.ToolsAllowPrivate
	cfg.ToolsAllowPrivate = cfg.AllowPrivateNetworks
	if cfg.DataDir == "" {
		cfg.DataDir = "parley-data"
	}
	{
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
	}
	st, err := store.Open(cfg.DB)
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := st.Optimize(ctx); err != nil {
		cfg.Log.Warn("refresh planner statistics", "err", err)
	}
	box, err := secrets.Load(cfg.SecretKey, cfg.DataDir)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("secret key: %w", err)
	}
	a := &App{Config: cfg, Store: st, Registry: server.NewRegistry(), Secrets: box, Blobs: blob.Disk{Dir: filepath.Join(cfg.DataDir, "media")}}
	if s3cfg, ok := blob.S3ConfigFromEnv(); ok { // PARLEY_S3_BUCKET: media in an S3-compatible bucket
		s3, err := blob.NewS3(s3cfg)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("media store: %w", err)
		}
		a.Blobs = s3
	}
	a.Auth = auth.NewService(st)
	a.Assistants = assistant.NewService(st)
	a.Runtime = &assistant.Runtime{Providers: assistant.Providers{}, Prices: assistant.DefaultPrices, Log: cfg.Log}
	a.Events = events.NewHub()
	var publisher conversation.Publisher = a.Events
	if st.Dialect() == "postgres" {
		// Several instances may share this database: changes reach the others' live views.
		a.fanout = events.NewPGFanout(a.Events, st.DB(), cfg.DB, func(ctx context.Context, ws, convID string, msgIDs []string) (*conversation.Conversation, []*conversation.Message, error) {
			c, err := st.GetConversation(ctx, ws, convID)
			if err != nil {
				return nil, nil, err
			}
			msgs, err := st.MessagesByID(ctx, ws, convID, msgIDs)
			return c, msgs, err
		}, cfg.Log)
		publisher = a.fanout
	}
	a.Conversations = conversation.NewService(st, a.Assistants, a.Runtime, publisher)
	a.APIRoutes = map[string]api.HandlerFunc{}
	a.Extra = map[string]any{}
	for _, f := range features {
		if f.Setup == nil {
			continue
		}
		mounts, err := f.Setup(ctx, a)
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("set up %s: %w", f.Name, err)
		}
		a.mounts = append(a.mounts, mounts...)
	}
	return a, nil
}

// Feature is an optional part of Parley (a channel, the dashboard, background work). Each lives in
// its own file of this package and registers itself in init, so adding one touches no shared wiring.
type Feature struct {
	Name string
	// Setup runs once after the core services exist: build the feature's services, keep them on
	// the App (Extra) and return its routes.
	Setup func(ctx context.Context, a *App) ([]server.Mount, error)
	// Start runs background work until ctx ends; Stop is called on shutdown (bounded by its ctx).
	Start func(ctx context.Context, a *App) error
	Stop  func(ctx context.Context, a *App) error
}

var features []Feature

// Register adds a feature; call it from init.
func Register(f Feature) { features = append(features, f) }

// Handler is the whole HTTP surface. The API's own routes are matched first; features mount theirs
// beside it (and may add routes under /api/v1/ through APIRoutes).
func (a *App) Handler() http.Handler {
	a.handlerOnce.Do(func() {
		a.api = &api.API{Auth: a.Auth, Assistants: a.Assistants, Conversations: a.Conversations, Metrics: a.Store, Events: a.Events, Extra: a.APIRoutes, RateLimit: a.Config.APIRateLimit, Lifecycle: a.Store, Budgets: a.Store}
		apiHandler := a.api.Handler()
		mounts := append([]server.Mount{{Pattern: "/api/", Handler: apiHandler}}, a.mounts...)
		a.handler = server.New(readiness{a}, a.Registry, mounts...)
	})
	return a.handler
}

// readiness is ready when the database answers and, with several instances, the event listener is up.
type readiness struct{ a *App }

func (r readiness) Ping(ctx context.Context) error {
	if err := r.a.Store.Ping(ctx); err != nil {
		return err
	}
	if r.a.fanout != nil && !r.a.fanout.Listening() {
		return errors.New("event listener not connected")
	}
	return nil
}

// APIPatterns lists every API route ("METHOD /path/{var}").
func (a *App) APIPatterns() []string {
	a.Handler()
	return a.api.Patterns()
}

// Start runs the background work: the cross-instance event listener and the features'.
func (a *App) Start(ctx context.Context) error {
	if a.fanout != nil {
		go a.fanout.Run(ctx)
	}
	for _, f := range features {
		if f.Start != nil {
			if err := f.Start(ctx, a); err != nil {
				return fmt.Errorf("start %s: %w", f.Name, err)
			}
		}
	}
	return nil
}

// Close stops the features (within ctx's deadline) and releases the store.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for i := len(features) - 1; i >= 0; i-- {
		if f := features[i]; f.Stop != nil {
			if err := f.Stop(ctx, a); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", f.Name, err))
			}
		}
	}
	errs = append(errs, a.Store.Close())
	return errors.Join(errs...)
}
