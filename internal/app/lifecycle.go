package app

import (
	"context"
	"time"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/server"
)

func init() {
	Register(Feature{Name: "retention", Setup: func(context.Context, *App) ([]server.Mount, error) { return nil, nil }, Start: startRetention})
}

// retentionEvery is how often the sweeper deletes conversations past their workspace's retention.
const retentionEvery = time.Hour

func startRetention(ctx context.Context, a *App) error {
	go runEvery(ctx, retentionEvery, func() {
		sweepRetention(ctx, a)
		if err := a.Store.Optimize(ctx); err != nil && ctx.Err() == nil {
			a.Config.Log.Warn("refresh planner statistics", "err", err)
		}
	})
	return nil
}

// runEvery calls fn every d until ctx ends.
func runEvery(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

func sweepRetention(ctx context.Context, a *App) {
	policies, err := a.Store.RetentionPolicies(ctx)
	if err != nil {
		a.Config.Log.Warn("retention: read policies", "err", err)
		return
	}
	for ws, days := range policies {
		d, err := api.RunRetention(ctx, a.Store, ws, days, time.Now())
		if err != nil {
			a.Config.Log.Warn("retention: delete", "workspace", ws, "err", err)
			continue
		}
		if d.Conversations > 0 {
			a.Config.Log.Info("retention: deleted old conversations", "workspace", ws, "conversations", d.Conversations, "messages", d.Messages)
		}
	}
}
