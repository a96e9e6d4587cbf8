package assistant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/parley-hq/parley/internal/llm"
)

// ProviderConfig is an OpenAI-compatible provider's settings: the server default (from
// PARLEY_LLM_BASE_URL / PARLEY_LLM_API_KEY) or a workspace's own.
type ProviderConfig struct {
	BaseURL         string
	APIKey          string
	TranscribeModel string
	VisionModel     string
	EmbeddingModel  string

	workspace bool // a workspace's own settings (connections are guarded)
}

// Configured reports whether the settings name a server.
func (c ProviderConfig) Configured() bool { return strings.TrimSpace(c.BaseURL) != "" }

// ErrNoWorkspaceProvider is what WorkspaceProviders returns for a workspace without its own provider.
var ErrNoWorkspaceProvider = errors.New("the workspace has no provider of its own")

// WorkspaceProviders reads a workspace's own provider settings (the API key opened).
type WorkspaceProviders interface {
	WorkspaceProvider(ctx context.Context, workspaceID string) (ProviderConfig, error)
}

// Resolver finds the provider for a workspace and model: "builtin" is the offline model; any
// other model goes to the workspace's own provider when it has one, else to the default.
type Resolver struct {
	Default    ProviderConfig
	Workspaces WorkspaceProviders
	HTTPClient *http.Client
	// WorkspaceHTTPClient, when set, is used for workspaces' own providers (a guarded transport:
	// a workspace must not point the server at its private network).
	WorkspaceHTTPClient *http.Client
	// Template holds the retry settings copied into every client (zero values: the defaults).
	Template llm.OpenAIConfig

	mu      sync.Mutex
	clients map[string]*llm.OpenAI
}

// Provider returns the provider for model.
func (r *Resolver) Provider(ctx context.Context, workspaceID, model string) (llm.Provider, error) {
	if model == llm.BuiltinModel {
		return llm.Builtin{}, nil
	}
	p, _, err := r.OpenAI(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Settings returns the provider settings that apply to the workspace.
func (r *Resolver) Settings(ctx context.Context, workspaceID string) (ProviderConfig, error) {
	if r.Workspaces != nil {
		cfg, err := r.Workspaces.WorkspaceProvider(ctx, workspaceID)
		if err == nil && cfg.Configured() {
			cfg.workspace = true
			// Models the workspace left blank come from the default.
			if cfg.TranscribeModel == "" {
				cfg.TranscribeModel = r.Default.TranscribeModel
			}
			if cfg.VisionModel == "" {
				cfg.VisionModel = r.Default.VisionModel
			}
			return cfg, nil
		}
		if err != nil && !errors.Is(err, ErrNoWorkspaceProvider) {
			return ProviderConfig{}, err
		}
	}
	if !r.Default.Configured() {
		return ProviderConfig{}, llm.ErrNoProvider
	}
	return r.Default, nil
}

// OpenAI returns the OpenAI-compatible client for the workspace with its settings.
func (r *Resolver) OpenAI(ctx context.Context, workspaceID string) (*llm.OpenAI, ProviderConfig, error) {
	cfg, err := r.Settings(ctx, workspaceID)
	if err != nil {
		return nil, cfg, err
	}
	key := fmt.Sprintf("%s\x00%s\x00%v", cfg.BaseURL, cfg.APIKey, cfg.workspace)
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.clients[key]; c != nil {
		return c, cfg, nil
	}
	if r.clients == nil {
		r.clients = map[string]*llm.OpenAI{}
	}
	oc := r.Template
	oc.BaseURL, oc.APIKey, oc.HTTPClient = cfg.BaseURL, cfg.APIKey, r.HTTPClient
	if cfg.workspace && r.WorkspaceHTTPClient != nil {
		oc.HTTPClient = r.WorkspaceHTTPClient
	}
	c := llm.NewOpenAI(oc)
	r.clients[key] = c
	return c, cfg, nil
}

// Forget drops cached clients (after a workspace changed its provider).
func (r *Resolver) Forget() {
	r.mu.Lock()
	r.clients = nil
	r.mu.Unlock()
}

// Providers is the minimal resolver the core starts with: "builtin" is the offline model and
// every other model goes to Default when set. The runtime feature replaces it with a Resolver.
type Providers struct {
	Default llm.Provider
}

// Provider returns the provider for model.
func (p Providers) Provider(_ context.Context, _ string, model string) (llm.Provider, error) {
	if model == llm.BuiltinModel {
		return llm.Builtin{}, nil
	}
	if p.Default == nil {
		return nil, llm.ErrNoProvider
	}
	return p.Default, nil
}
