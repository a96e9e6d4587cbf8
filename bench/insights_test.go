package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/insights"
)

// BenchmarkInsights measures GET /api/v1/insights through the real handler (authentication, the
// report, JSON) on 100k generated conversations over 90 days: the figures read one facts row per
// conversation (rebuilt from the generated data with the migration's back-fill, since the generator
// writes around the write path), topics and unanswered questions the 20k most recent questions.
// "headline" is what GET /api/v1/metrics adds: the figures alone.
//
//	go test ./bench -run '^$' -bench BenchmarkInsights -benchtime 10x
func BenchmarkInsights(b *testing.B) {
	ctx := context.Background()
	start := time.Now()
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("INSIGHTS_BENCH_CONVERSATIONS")); err == nil && v > 0 {
		n = v // a smaller set to iterate on
	}
	a, wsID, msgs := generatedApp(b, genConfig{Conversations: n, MessagesPer: 4, Days: 90, Seed: 1})
	generated := time.Since(start)
	start = time.Now()
	if err := a.Store.RebuildInsights(ctx); err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "insights bench: %d messages generated in %v; facts back-filled in %v\n", msgs, generated.Round(time.Second), time.Since(start).Round(time.Millisecond))
	key, _, err := a.Auth.CreateAPIKey(ctx, wsID, "bench")
	if err != nil {
		b.Fatal(err)
	}
	h := a.Handler()
	get := func(b *testing.B, path string) {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
	}
	b.Run("endpoint", func(b *testing.B) {
		for b.Loop() {
			get(b, "/api/v1/insights")
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/report")
	})
	b.Run("last-7-days", func(b *testing.B) {
		from := time.Now().UTC().AddDate(0, 0, -7).Format("2006-01-02")
		for b.Loop() {
			get(b, "/api/v1/insights?from="+from)
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/report")
	})
	svc := app.InsightsService(a)
	b.Run("headline", func(b *testing.B) {
		for b.Loop() {
			if _, err := svc.Headline(ctx, wsID, insights.Filter{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/report")
	})
}
