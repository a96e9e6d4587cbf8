package app

import (
	"context"
	"time"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/budget"
	"github.com/parley-hq/parley/internal/server"
	"github.com/parley-hq/parley/internal/webhooks"
)

// Budget alerts: each assistant's monthly cost budget is checked whenever cost lands for it (the
// events of this instance and, on PostgreSQL, of the others) and by a sweep at start and every
// budgetSweepEvery. API: GET /api/v1/budgets; the assistants' JSON carries their budget.
func init() {
	Register(Feature{Name: "budgets", Setup: setupBudgets, Start: startBudgets})
}

// budgetSweepEvery is how often every budget is checked besides the checks that follow costs.
const budgetSweepEvery = 5 * time.Minute

func setupBudgets(ctx context.Context, a *App) ([]server.Mount, error) {
	a.Extra["budgets"] = &budget.Watcher{Store: a.Store, Log: a.Config.Log}
	a.APIRoutes["GET /api/v1/budgets"] = api.ListBudgets(a.Store)
	return nil, nil
}

func startBudgets(ctx context.Context, a *App) error {
	w := a.Extra["budgets"].(*budget.Watcher)
	// The webhooks feature is set up after this one (features set up in file order): find it now.
	if hooks, ok := a.Extra["webhooks"].(*webhooks.Service); ok {
		w.Notify = hooks
	}
	sub := a.Events.SubscribeAll()
	go func() {
		defer sub.Close()
		w.Watch(ctx, sub)
	}()
	sweep := func() {
		if _, err := w.Sweep(ctx); err != nil && ctx.Err() == nil {
			a.Config.Log.Warn("budget sweep", "err", err)
		}
	}
	go func() {
		sweep() // what cost landed while no instance was checking
		runEvery(ctx, budgetSweepEvery, sweep)
	}()
	return nil
}
