package store

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/budget"
)

// seedBudgetRollups gives a workspace n assistants with a $100 budget and a full month of hourly
// rollups per assistant and conversation type, each hour costing one cent: what a busy workspace
// holds at the end of a month.
func seedBudgetRollups(t testing.TB, s *Store, n int, month time.Time) (string, []string) {
	t.Helper()
	ctx := context.Background()
	ws := "ws-budget"
	if err := s.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO workspaces (id, slug, name, created_at) VALUES ($1, $2, $3, $4)`, ws, "budget", "Budget", 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	from, to := budget.MonthBounds(month)
	var ids []string
	for i := range n {
		a := &assistant.Assistant{ID: fmt.Sprintf("asst-%03d", i), WorkspaceID: ws, Name: fmt.Sprint("Assistant ", i), Model: "builtin", Version: 1,
			MonthlyBudgetMicros: 100_000_000, CreatedAt: month, UpdatedAt: month}
		if err := s.CreateAssistant(ctx, a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
		if err := s.Write(ctx, func(tx *sql.Tx) error {
			for h := from.Add(-24 * time.Hour); h.Before(to.Add(24 * time.Hour)); h = h.Add(time.Hour) { // and a day either side
				for _, typ := range []string{"whatsapp", "widget", "api", "test"} {
					if _, err := tx.Exec(`INSERT INTO rollup_hourly (workspace_id, bucket, assistant_id, type, cost_micros) VALUES ($1, $2, $3, $4, $5)`,
						ws, h.Unix(), a.ID, typ, 10_000); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RebuildDailyRollups(ctx); err != nil {
		t.Fatal(err)
	}
	return ws, ids
}

// TestBudgetSpendIsTheMonthOnly: spend sums exactly the month's hours, not the days around it.
func TestBudgetSpendIsTheMonthOnly(t *testing.T) {
	s := openTest(t)
	month := time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC) // 28 days
	ws, ids := seedBudgetRollups(t, s, 3, month)
	from, to := budget.MonthBounds(month)
	got, err := s.AssistantSpend(context.Background(), ws, ids[1], from, to)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(28 * 24 * 4 * 10_000); got != want {
		t.Fatalf("spend %d, want %d", got, want)
	}
	sts, err := s.BudgetStatuses(context.Background(), ws, "", month)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 3 || sts[2].SpentMicros != 28*24*4*10_000 || sts[2].BudgetMicros != 100_000_000 || sts[2].Month != "2026-02" {
		t.Fatalf("statuses %+v", sts)
	}
	one, err := s.BudgetStatuses(context.Background(), ws, ids[1], month)
	if err != nil || len(one) != 1 || one[0].AssistantID != ids[1] || one[0].SpentMicros != sts[1].SpentMicros {
		t.Fatalf("one assistant's status %+v %v", one, err)
	}
}

// BenchmarkBudgetCheckReads measures what one budget check reads (the budget, the month's spend)
// and what the budgets API and banners read, in a workspace of 20 budgeted assistants with a full
// month of hourly rollups for 4 conversation types each (~60k rows).
func BenchmarkBudgetCheckReads(b *testing.B) {
	s := openTest(b)
	month := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	ws, ids := seedBudgetRollups(b, s, 20, month)
	if err := s.Optimize(context.Background()); err != nil {
		b.Fatal(err)
	}
	from, to := budget.MonthBounds(month)
	ctx := context.Background()
	b.Run("check", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			id := ids[i%len(ids)]
			if _, _, err := s.AssistantBudget(ctx, ws, id); err != nil {
				b.Fatal(err)
			}
			if _, err := s.AssistantSpend(ctx, ws, id, from, to); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one status", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.BudgetStatuses(ctx, ws, ids[0], month); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("all statuses", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.BudgetStatuses(ctx, ws, "", month); err != nil {
				b.Fatal(err)
			}
		}
	})
}
