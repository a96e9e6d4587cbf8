// Package app wires Parley's parts together: the store, the domain services and the HTTP surface.
// The CLI, the integration tests and the benchmark harness all start Parley through it.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/conversation"
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
	Log        *slog.Logger
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
}

// Open connects to the database, migrates it and builds the services.
func Open(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.DataDir != "" {
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
	a := &App{Config: cfg, Store: st, Registry: server.NewRegistry()}
	a.Auth = auth.NewService(st)
	a.Assistants = assistant.NewService(st)
	a.Runtime = &assistant.Runtime{Providers: assistant.Providers{}, Prices: assistant.DefaultPrices, Log: cfg.Log}
	a.Conversations = conversation.NewService(st, a.Assistants, a.Runtime, nil)
	return a, nil
}

// Handler is the whole HTTP surface.
func (a *App) Handler() http.Handler {
	apiHandler := (&api.API{Auth: a.Auth, Assistants: a.Assistants, Conversations: a.Conversations, Metrics: a.Store}).Handler()
	return server.New(a.Store, a.Registry, server.Mount{Pattern: "/api/", Handler: apiHandler})
}

// Close releases the store.
func (a *App) Close() error { return a.Store.Close() }
