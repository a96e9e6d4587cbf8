package app

import (
	"context"
	"time"
)

// Term signatures: conversations stored before signatures existed (an upgraded database) get
// theirs computed in the background, a small transaction at a time, after start. Until then the
// common-word search asks the full-text index about them, as it did before.
func init() {
	Register(Feature{Name: "term signatures", Start: startFillTerms})
}

// fillTermsPause is the rest between fill steps, which leaves the writer to live traffic.
const fillTermsPause = 10 * time.Millisecond

func startFillTerms(ctx context.Context, a *App) error {
	go func() {
		var after int64
		for {
			next, done, err := a.Store.FillTerms(ctx, after)
			if err != nil {
				if ctx.Err() == nil {
					a.Config.Log.Warn("fill term signatures", "err", err)
				}
				return
			}
			if done {
				if next > 0 {
					a.Config.Log.Info("term signatures filled")
				}
				return
			}
			after = next
			select {
			case <-ctx.Done():
				return
			case <-time.After(fillTermsPause):
			}
		}
	}()
	return nil
}
