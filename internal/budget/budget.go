// Package budget watches assistants' monthly cost budgets. When an assistant's spend in a UTC
// calendar month reaches 80% and then 100% of its budget, an alert is recorded once per (assistant,
// month, threshold) and announced as a budget.threshold webhook in the same transaction.
//
// Detection is level-triggered: a check compares the month's spend with the budget and records every
// threshold reached that has no alert yet. A unique key on the alert decides which check (of this
// instance, another instance or the periodic sweep) creates it, so a crossing is announced exactly
// once, also across restarts, and a crossing missed by one check is caught by the next.
package budget

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/parley-hq/parley/internal/events"
)

// Event is the webhook event of a threshold reached.
const Event = "budget.threshold"

// Thresholds are the percentages of the budget that raise an alert, ascending.
var Thresholds = []int{80, 100}

// MaxUSD bounds a budget, so that micro-dollar arithmetic cannot overflow.
const MaxUSD = 1_000_000_000

// Month is the UTC calendar month of t as "YYYY-MM".
func Month(t time.Time) string { return t.UTC().Format("2006-01") }

// MonthBounds returns the start of t's UTC calendar month and the start of the next.
func MonthBounds(t time.Time) (time.Time, time.Time) {
	t = t.UTC()
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, 0)
}

// Reached lists the thresholds that spent has reached of budget (none without a budget).
func Reached(spentMicros, budgetMicros int64) []int {
	var out []int
	if budgetMicros <= 0 {
		return out
	}
	for _, t := range Thresholds {
		if spentMicros*100 >= budgetMicros*int64(t) {
			out = append(out, t)
		}
	}
	return out
}

// Micros converts a budget in US dollars to micro-dollars.
func Micros(usd float64) int64 { return int64(math.Round(usd * 1e6)) }

// Alert is a threshold an assistant reached in a month, with the budget and spend at that moment.
type Alert struct {
	WorkspaceID  string
	AssistantID  string
	Month        string
	Threshold    int
	BudgetMicros int64
	SpentMicros  int64
	CreatedAt    time.Time
}

// Status is an assistant's budget this month: what it may spend, what it spent, the alerts raised.
type Status struct {
	AssistantID   string
	AssistantName string
	Month         string
	BudgetMicros  int64
	SpentMicros   int64
	Alerts        []Alert
}

// BudgetUSD and SpentUSD are the amounts in dollars.
func (s Status) BudgetUSD() float64 { return float64(s.BudgetMicros) / 1e6 }
func (s Status) SpentUSD() float64  { return float64(s.SpentMicros) / 1e6 }

// Percent is the share of the budget spent, in percent, to one decimal.
func (s Status) Percent() float64 {
	if s.BudgetMicros <= 0 {
		return 0
	}
	return math.Round(float64(s.SpentMicros)*1000/float64(s.BudgetMicros)) / 10
}

// Level is the highest threshold the spend has reached now (0: below every threshold). It follows
// the current numbers, so a raised budget lowers it even though the month's alerts stay.
func (s Status) Level() int {
	r := Reached(s.SpentMicros, s.BudgetMicros)
	if len(r) == 0 {
		return 0
	}
	return r[len(r)-1]
}

// Ref names an assistant.
type Ref struct{ WorkspaceID, AssistantID string }

// Store is what the watcher needs from the database.
type Store interface {
	// AssistantBudget returns a live assistant's name and monthly budget (0: none, or no such assistant).
	AssistantBudget(ctx context.Context, workspaceID, assistantID string) (name string, budgetMicros int64, err error)
	// AssistantSpend sums the assistant's recorded cost in [from, to).
	AssistantSpend(ctx context.Context, workspaceID, assistantID string, from, to time.Time) (int64, error)
	// BudgetedAssistants lists the live assistants with a budget, in every workspace.
	BudgetedAssistants(ctx context.Context) ([]Ref, error)
	// RecordBudgetAlert inserts the alert unless its (assistant, month, threshold) exists, and runs
	// inTx in the same transaction only when it inserted it. It reports whether it did.
	RecordBudgetAlert(ctx context.Context, a Alert, inTx func(tx *sql.Tx) error) (bool, error)
}

// Notifier prepares an event's webhook deliveries: the returned function queues them in a
// transaction (nil when no webhook wants the event).
type Notifier interface {
	Prepare(ctx context.Context, workspaceID, event, key string, data any) (func(tx *sql.Tx) error, error)
}

// Watcher checks budgets when cost lands and on a sweep.
type Watcher struct {
	Store  Store
	Notify Notifier // nil: alerts are recorded without webhooks
	Log    *slog.Logger
	Now    func() time.Time

	mu        sync.Mutex
	pending   map[Ref]bool
	sweep     bool      // events were lost: the worker sweeps
	lastSweep time.Time // of a sweep for lost events, at most one per lostSweepEvery
	wake      chan struct{}
	costs     map[string]int64 // conversation id → cost last seen, to check only when cost landed
	settled   map[string]bool  // assistant id + month whose every threshold is recorded
}

func (w *Watcher) now() time.Time {
	if w.Now != nil {
		return w.Now().UTC()
	}
	return time.Now().UTC()
}

func (w *Watcher) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

// lateCost is how long after a month ends its last costs may still be checked against it (a cost
// recorded at 23:59 and seen after midnight belongs to the month that ended).
const lateCost = time.Hour

// Check compares the assistant's spend with its budget in the current month (and, just after a
// month ended, in that month too) and records the alerts of the thresholds reached that have none
// yet, each with its webhook deliveries. It returns the alerts this call created.
func (w *Watcher) Check(ctx context.Context, workspaceID, assistantID string) ([]Alert, error) {
	now := w.now()
	months := []time.Time{now}
	if late := now.Add(-lateCost); Month(late) != Month(now) {
		months = append(months, late)
	}
	var created []Alert
	var name string
	var budgetMicros int64
	read := false
	for _, at := range months {
		month := Month(at)
		if w.isSettled(assistantID, month) {
			continue
		}
		if !read {
			var err error
			if name, budgetMicros, err = w.Store.AssistantBudget(ctx, workspaceID, assistantID); err != nil {
				return created, fmt.Errorf("read budget of %s: %w", assistantID, err)
			}
			read = true
		}
		if budgetMicros <= 0 {
			return created, nil
		}
		from, to := MonthBounds(at)
		spent, err := w.Store.AssistantSpend(ctx, workspaceID, assistantID, from, to)
		if err != nil {
			return created, fmt.Errorf("read spend of %s: %w", assistantID, err)
		}
		reached := Reached(spent, budgetMicros)
		for _, t := range reached {
			a := Alert{WorkspaceID: workspaceID, AssistantID: assistantID, Month: month, Threshold: t,
				BudgetMicros: budgetMicros, SpentMicros: spent, CreatedAt: now}
			ok, err := w.record(ctx, a, name)
			if err != nil {
				return created, err
			}
			if ok {
				created = append(created, a)
				w.log().Info("budget threshold reached", "workspace", workspaceID, "assistant", assistantID, "month", month,
					"threshold_percent", t, "budget_usd", float64(budgetMicros)/1e6, "spent_usd", float64(spent)/1e6)
			}
		}
		if len(reached) == len(Thresholds) {
			w.settle(assistantID, month)
		}
	}
	return created, nil
}

// record inserts the alert and, only if this call created it, queues its webhook deliveries in the
// same transaction: never lost (they commit together), never doubled (only one insert wins).
func (w *Watcher) record(ctx context.Context, a Alert, name string) (bool, error) {
	var inTx func(tx *sql.Tx) error
	if w.Notify != nil {
		data := map[string]any{
			"assistant":         map[string]any{"id": a.AssistantID, "name": name},
			"month":             a.Month,
			"threshold_percent": a.Threshold,
			"budget_usd":        float64(a.BudgetMicros) / 1e6,
			"spent_usd":         float64(a.SpentMicros) / 1e6,
		}
		key := fmt.Sprintf("budget:%s:%s:%d", a.AssistantID, a.Month, a.Threshold)
		var err error
		if inTx, err = w.Notify.Prepare(ctx, a.WorkspaceID, Event, key, data); err != nil {
			return false, fmt.Errorf("prepare budget webhooks: %w", err)
		}
	}
	ok, err := w.Store.RecordBudgetAlert(ctx, a, inTx)
	if err != nil {
		return false, fmt.Errorf("record budget alert %s %s %d%%: %w", a.AssistantID, a.Month, a.Threshold, err)
	}
	return ok, nil
}

func (w *Watcher) isSettled(assistantID, month string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.settled[assistantID+" "+month]
}

// settle remembers that every alert of the month exists: nothing more can happen for it, whatever
// the budget becomes, so later cost in that month costs no query.
func (w *Watcher) settle(assistantID, month string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.settled == nil || len(w.settled) > 100_000 {
		w.settled = map[string]bool{}
	}
	w.settled[assistantID+" "+month] = true
}

// Sweep checks every assistant that has a budget: what the event-driven checks missed (a crash
// between the cost and its check, events dropped, cost recorded by another instance while this one
// was down, a budget lowered below the spend) is caught here.
func (w *Watcher) Sweep(ctx context.Context) ([]Alert, error) {
	refs, err := w.Store.BudgetedAssistants(ctx)
	if err != nil {
		return nil, fmt.Errorf("list budgeted assistants: %w", err)
	}
	var created []Alert
	var errs []error
	for _, r := range refs {
		a, err := w.Check(ctx, r.WorkspaceID, r.AssistantID)
		created = append(created, a...)
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return created, errors.Join(errs...)
}

// lostSweepEvery bounds the sweeps that stand in for lost events: under a load that keeps the
// subscription behind, the periodic sweep and later costs catch up the rest.
const lostSweepEvery = time.Minute

// Watch checks an assistant's budget whenever one of its conversations' cost grows, until ctx ends.
// Checks run on one goroutine and coalesce: a burst of costs for one assistant is one check. When
// the subscription fell behind, a sweep stands in for the events it lost.
func (w *Watcher) Watch(ctx context.Context, sub *events.Subscription) {
	w.mu.Lock()
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
		w.pending = map[Ref]bool{}
	}
	w.mu.Unlock()
	go w.work(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			if sub.Lost() {
				w.sweepSoon()
			}
			w.notice(ev)
		}
	}
}

// notice queues a check when the event shows a conversation's cost grown.
func (w *Watcher) notice(ev events.Event) {
	c := ev.Conversation
	if c == nil || c.AssistantID == "" || c.CostMicros == 0 || ev.Delta != "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.costs == nil || len(w.costs) > 100_000 {
		w.costs = map[string]int64{}
	}
	if w.costs[c.ID] == c.CostMicros {
		return
	}
	w.costs[c.ID] = c.CostMicros
	w.pending[Ref{ev.WorkspaceID, c.AssistantID}] = true
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// sweepSoon asks the worker for a sweep, unless one for lost events ran within lostSweepEvery.
func (w *Watcher) sweepSoon() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Since(w.lastSweep) < lostSweepEvery {
		return
	}
	w.lastSweep, w.sweep = time.Now(), true
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Watcher) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		w.mu.Lock()
		batch, sweep := w.pending, w.sweep
		w.pending, w.sweep = map[Ref]bool{}, false
		w.mu.Unlock()
		if sweep {
			if _, err := w.Sweep(ctx); err != nil && ctx.Err() == nil {
				w.log().Warn("budget sweep after lost events", "err", err)
			}
			continue // the sweep checked every assistant in the batch too
		}
		for r := range batch {
			if _, err := w.Check(ctx, r.WorkspaceID, r.AssistantID); err != nil && ctx.Err() == nil {
				w.log().Warn("budget check", "workspace", r.WorkspaceID, "assistant", r.AssistantID, "err", err)
			}
		}
	}
}
