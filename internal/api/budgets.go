package api

import (
	"context"
	"net/http"
	"time"

	"github.com/parley-hq/parley/internal/budget"
)

// Budgets reports assistants' monthly budgets with this month's spend and alerts.
type Budgets interface {
	// BudgetStatuses covers the workspace's assistants with a budget, or only assistantID when set.
	BudgetStatuses(ctx context.Context, workspaceID, assistantID string, now time.Time) ([]budget.Status, error)
}

// BudgetJSON is an assistant's budget this (UTC) month as the API shows it.
type BudgetJSON struct {
	AssistantID   string            `json:"assistant_id"`
	AssistantName string            `json:"assistant_name"`
	Month         string            `json:"month"`
	BudgetUSD     float64           `json:"budget_usd"`
	SpentUSD      float64           `json:"spent_usd"`
	Percent       float64           `json:"percent"`
	Status        string            `json:"status"` // ok, warning (≥ 80%), exceeded (≥ 100%)
	Alerts        []BudgetAlertJSON `json:"alerts"`
}

// BudgetAlertJSON is a threshold reached this month (its webhook fired once).
type BudgetAlertJSON struct {
	ThresholdPercent int     `json:"threshold_percent"`
	BudgetUSD        float64 `json:"budget_usd"`
	SpentUSD         float64 `json:"spent_usd"`
	FiredAt          string  `json:"fired_at"`
}

// NewBudgetJSON renders a budget status.
func NewBudgetJSON(s budget.Status) BudgetJSON {
	out := BudgetJSON{AssistantID: s.AssistantID, AssistantName: s.AssistantName, Month: s.Month, BudgetUSD: s.BudgetUSD(),
		SpentUSD: s.SpentUSD(), Percent: s.Percent(), Status: "ok", Alerts: []BudgetAlertJSON{}}
	switch s.Level() {
	case 100:
		out.Status = "exceeded"
	case 80:
		out.Status = "warning"
	}
	for _, a := range s.Alerts {
		out.Alerts = append(out.Alerts, BudgetAlertJSON{ThresholdPercent: a.Threshold, BudgetUSD: USD(a.BudgetMicros), SpentUSD: USD(a.SpentMicros), FiredAt: jsonTime(a.CreatedAt)})
	}
	return out
}

func budgetUSD(micros int64) *float64 {
	if micros <= 0 {
		return nil
	}
	v := USD(micros)
	return &v
}

// withBudgets fills the budget object of the assistants that have a budget.
func (a *API) withBudgets(r *http.Request, out []AssistantJSON) error {
	if a.Budgets == nil {
		return nil
	}
	budgeted, only := 0, ""
	for _, as := range out {
		if as.MonthlyBudgetUSD != nil {
			budgeted++
			only = as.ID
		}
	}
	if budgeted == 0 {
		return nil
	}
	if budgeted > 1 {
		only = ""
	}
	statuses, err := a.Budgets.BudgetStatuses(r.Context(), workspace(r.Context()), only, time.Now())
	if err != nil {
		return err
	}
	for _, st := range statuses {
		for i := range out {
			if out[i].ID == st.AssistantID {
				b := NewBudgetJSON(st)
				out[i].Budget = &b
			}
		}
	}
	return nil
}

// ListBudgets answers GET /api/v1/budgets: every assistant with a budget, its spend this month and
// the alerts raised.
func ListBudgets(src Budgets) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		now := time.Now()
		statuses, err := src.BudgetStatuses(r.Context(), workspace(r.Context()), "", now)
		if err != nil {
			return err
		}
		data := make([]BudgetJSON, 0, len(statuses))
		for _, st := range statuses {
			data = append(data, NewBudgetJSON(st))
		}
		WriteJSON(w, http.StatusOK, map[string]any{"month": budget.Month(now), "data": data})
		return nil
	}
}
