package app

import (
	"context"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/server"
	"github.com/parley-hq/parley/internal/web"
)

func init() {
	Register(Feature{Name: "web", Setup: setupWeb, Stop: func(ctx context.Context, a *App) error {
		if h, ok := a.Extra["web"].(*web.Handler); ok {
			h.Close() // end the dashboard's live streams so shutdown does not wait on browsers
		}
		return nil
	}})
}

// setupWeb mounts the dashboard and lets its sessions call the API from the browser.
func setupWeb(ctx context.Context, a *App) ([]server.Mount, error) {
	h, err := web.New(web.Deps{Store: a.Store, Auth: a.Auth, Assistants: a.Assistants, Conversations: a.Conversations, Events: a.Events, Replays: a.ReplayService(), Log: a.Config.Log,
		Insights: InsightsService(a)})
	if err != nil {
		return nil, err
	}
	api.UseSessions(a.Auth, h)
	a.Extra["web"] = h
	mounts := make([]server.Mount, 0, len(web.Patterns))
	for _, p := range web.Patterns {
		mounts = append(mounts, server.Mount{Pattern: p, Handler: h})
	}
	return mounts, nil
}
