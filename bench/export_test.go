package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/metrics"
)

// BenchmarkExportCSV streams the CSV export of generated data through the real handler code; the
// figure to read is rows/s.
func BenchmarkExportCSV(b *testing.B) {
	a, wsID, rows := generatedApp(b, genConfig{Conversations: 3000, MessagesPer: 10, Days: 30, Seed: 1})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := discardWriter{h: http.Header{}}
		r := httptest.NewRequest("GET", "/api/v1/conversations/export?format=csv", nil)
		if err := api.StreamExport(&w, r, a.Conversations, wsID, conversation.Filter{}, "csv"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkExportJSONL streams the JSONL export (each row with its conversation's replay context).
func BenchmarkExportJSONL(b *testing.B) {
	a, wsID, rows := generatedApp(b, genConfig{Conversations: 3000, MessagesPer: 10, Days: 30, Seed: 1})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := discardWriter{h: http.Header{}}
		r := httptest.NewRequest("GET", "/api/v1/conversations/export?format=jsonl", nil)
		if err := api.StreamExport(&w, r, a.Conversations, wsID, conversation.Filter{}, "jsonl"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// discardWriter is a ResponseWriter that throws the body away, as a fast client would.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkMetrics computes the metrics report over 90 days of rollups for 5 assistants and 4
// conversation types (~43k hourly rows: the table's size follows time, not conversation count).
func BenchmarkMetrics(b *testing.B) {
	ctx := context.Background()
	a, wsID, _ := generatedApp(b, genConfig{Conversations: 50000, MessagesPer: 2, Days: 90, Seed: 1})
	var cells int
	_ = a.Store.DB().QueryRow(`SELECT COUNT(*) FROM rollup_hourly`).Scan(&cells)
	b.ReportMetric(float64(cells), "rollup-rows")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := metrics.Compute(ctx, a.Store, wsID, metrics.Filter{}); err != nil {
			b.Fatal(err)
		}
	}
}

// generatedApp opens a Parley on a fresh SQLite file filled by the generator; it returns the app,
// the workspace id and the number of messages generated.
func generatedApp(b *testing.B, cfg genConfig) (*app.App, string, int64) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	a, err := app.Open(ctx, app.Config{DB: "sqlite://" + filepath.Join(dir, "p.db"), DataDir: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	ws, err := a.Auth.EnsureWorkspace(ctx, "default")
	if err != nil {
		b.Fatal(err)
	}
	rows, err := generate(ctx, a.Store, ws.ID, cfg)
	if err != nil {
		b.Fatal(err)
	}
	return a, ws.ID, rows
}
