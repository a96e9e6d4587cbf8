package budget

import (
	"fmt"
	"testing"
	"time"
)

func TestReached(t *testing.T) {
	cases := []struct {
		spent, budget int64
		want          string
	}{
		{0, 1_000_000, "[]"},
		{799_999, 1_000_000, "[]"},
		{800_000, 1_000_000, "[80]"},
		{999_999, 1_000_000, "[80]"},
		{1_000_000, 1_000_000, "[80 100]"},
		{5_000_000, 1_000_000, "[80 100]"}, // one jump past 100% reaches both
		{5_000_000, 0, "[]"},               // no budget, no alert
		{1, 1, "[80 100]"},
		{MaxUSD * 1e6 * 2, MaxUSD * 1e6, "[80 100]"}, // the largest budget does not overflow
	}
	for _, c := range cases {
		if got := fmt.Sprint(Reached(c.spent, c.budget)); got != c.want {
			t.Errorf("Reached(%d, %d) = %s, want %s", c.spent, c.budget, got, c.want)
		}
	}
}

func TestMonth(t *testing.T) {
	cases := []struct {
		at         time.Time
		month      string
		start, end string
	}{
		{time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC), "2026-03", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"},
		{time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), "2026-12", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		// 00:30 on 1 March in UTC+2 is still February in UTC: months are UTC calendar months.
		{time.Date(2026, 3, 1, 0, 30, 0, 0, time.FixedZone("EET", 2*3600)), "2026-02", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"},
	}
	for _, c := range cases {
		start, end := MonthBounds(c.at)
		if Month(c.at) != c.month || start.Format(time.RFC3339) != c.start || end.Format(time.RFC3339) != c.end {
			t.Errorf("%v: month %s [%s, %s), want %s [%s, %s)", c.at, Month(c.at), start.Format(time.RFC3339), end.Format(time.RFC3339), c.month, c.start, c.end)
		}
	}
}

func TestStatusPercentAndLevel(t *testing.T) {
	cases := []struct {
		spent, budget int64
		percent       float64
		level         int
	}{
		{0, 10_000_000, 0, 0},
		{7_990_000, 10_000_000, 79.9, 0},
		{8_500_000, 10_000_000, 85, 80},
		{10_000_000, 10_000_000, 100, 100},
		{12_345_678, 10_000_000, 123.5, 100},
		{12_345_678, 0, 0, 0},
	}
	for _, c := range cases {
		s := Status{SpentMicros: c.spent, BudgetMicros: c.budget}
		if s.Percent() != c.percent || s.Level() != c.level {
			t.Errorf("%d of %d: %v%% level %d, want %v%% level %d", c.spent, c.budget, s.Percent(), s.Level(), c.percent, c.level)
		}
	}
}
