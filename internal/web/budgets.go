package web

import (
	"net/http"

	"github.com/parley-hq/parley/internal/budget"
)

// budgetWarnings returns the workspace's assistants at or past 80% of their monthly budget (only
// assistantID's when it is set), for the banners of the assistant pages and the metrics.
func (h *Handler) budgetWarnings(r *http.Request, assistantID string) []budget.Status {
	all, err := h.Store.BudgetStatuses(r.Context(), sessionFrom(r).WorkspaceID, assistantID, h.now())
	if err != nil {
		h.Log.WarnContext(r.Context(), "dashboard: read budgets", "err", err)
		return nil
	}
	var out []budget.Status
	for _, st := range all {
		if st.Level() > 0 {
			out = append(out, st)
		}
	}
	return out
}
