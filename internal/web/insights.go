package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/insights"
)

// The Insights page: resolution and handoff rates, handoff timing, topics, unanswered questions and
// the per-assistant and per-channel figures, for the same filters as the metrics page.

type insightsData struct {
	From, To, Type, AssistantID, Window string
	Windows                             []windowOption
	Assistants                          []*assistant.Assistant
	Report                              *insights.Report
	Rates                               *rateChart
}

type windowOption struct{ Value, Label string }

var insightWindows = []windowOption{{"1d", "1 day"}, {"3d", "3 days"}, {"7d", "7 days"}, {"14d", "14 days"}, {"30d", "30 days"}}

// rateChart draws the resolution and handoff rates of each day as two lines (0–100%).
type rateChart struct {
	W, H, Base, Left float64
	Resolution       string
	Handoff          string
	ResolutionDots   []bar
	HandoffDots      []bar
	YTicks, XTicks   []tick
}

func buildRates(days []string, byDay map[string]insights.DayFigures) *rateChart {
	c := &rateChart{W: chartW, H: chartH, Base: chartH - padB, Left: padL}
	plotW := chartW - padL - padR
	plotH := chartH - padB - padT
	step := plotW / float64(max(1, len(days)-1))
	x := func(i int) float64 {
		if len(days) == 1 {
			return padL + plotW/2
		}
		return padL + float64(i)*step
	}
	var res, hand []string
	for i, day := range days {
		d, ok := byDay[day]
		if !ok {
			continue // no conversations started that day: no rate to draw
		}
		if d.Ended > 0 {
			y := c.Base - d.ResolutionRate*plotH
			res = append(res, fmt.Sprintf("%.1f,%.1f", x(i), y))
			c.ResolutionDots = append(c.ResolutionDots, bar{X: x(i), Y: y, Label: day, Value: fmt.Sprintf("%.1f%% of %d ended", d.ResolutionRate*100, d.Ended)})
		}
		y := c.Base - d.HandoffRate*plotH
		hand = append(hand, fmt.Sprintf("%.1f,%.1f", x(i), y))
		c.HandoffDots = append(c.HandoffDots, bar{X: x(i), Y: y, Label: day, Value: fmt.Sprintf("%.1f%% of %d", d.HandoffRate*100, d.Conversations)})
	}
	c.Resolution, c.Handoff = strings.Join(res, " "), strings.Join(hand, " ")
	for _, f := range []float64{0, 0.5, 1} {
		c.YTicks = append(c.YTicks, tick{X: padL - 6, Y: c.Base - f*plotH, Label: fmt.Sprintf("%.0f%%", f*100)})
	}
	c.XTicks = xTicks(days, x)
	return c
}

func (h *Handler) insights(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	now := h.now()
	q := r.URL.Query()
	d := &insightsData{From: q.Get("from"), To: q.Get("to"), Type: q.Get("type"), AssistantID: q.Get("assistant_id"), Window: q.Get("resolution_window"),
		Windows: insightWindows, Assistants: h.assistantsOf(r)}
	if d.From == "" {
		d.From = now.AddDate(0, 0, -29).Format("2006-01-02")
	}
	if d.To == "" {
		d.To = now.Format("2006-01-02")
	}
	if d.Window == "" {
		d.Window = "3d"
	}
	v := &view{Title: "Insights", Nav: "insights", Data: d}
	mf, err := api.ParseMetricsFilter(url.Values{"from": {d.From}, "to": {d.To}, "type": {d.Type}, "assistant_id": {d.AssistantID}})
	if err == nil && mf.From != nil && mf.To != nil && !mf.To.After(*mf.From) {
		err = api.Errorf(http.StatusBadRequest, "invalid_parameter", "the end date must be after the start date")
	}
	f := insights.Filter{From: mf.From, To: mf.To, AssistantID: mf.AssistantID, Types: mf.Types}
	if err == nil {
		if f.Window, err = insights.ParseWindow(d.Window); err != nil {
			err = api.Errorf(http.StatusBadRequest, "invalid_parameter", "%s", err.Error())
		}
	}
	if err != nil {
		v.Error = apiMessage(err)
		h.render(w, r, http.StatusBadRequest, "insights", v)
		return
	}
	if h.Insights == nil {
		h.fail(w, r, fmt.Errorf("insights are not set up"))
		return
	}
	rep, err := h.Insights.Report(r.Context(), s.WorkspaceID, f, insights.Options{})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Report = rep
	byDay := map[string]insights.DayFigures{}
	for _, day := range rep.ByDay {
		byDay[day.Date] = day
	}
	from := f.From.UTC().Truncate(24 * time.Hour)
	to := f.To.UTC().Add(-time.Millisecond).Truncate(24 * time.Hour)
	d.Rates = buildRates(dayRange(from, to), byDay)
	h.render(w, r, http.StatusOK, "insights", v)
}

// insightFuncs are the template functions of the Insights page.
var insightFuncs = map[string]any{
	"typeName": func(t string) string { return typeLabel(conversation.Type(t)) },
	"int64":    func(v int) int64 { return int64(v) },
	// shareWidth is a share as the width of a 100-unit bar.
	"shareWidth": func(v float64) string { return fmt.Sprintf("%.1f", v*100) },
	"windowName": func(d time.Duration) string {
		if d%(24*time.Hour) == 0 {
			n := int64(d / (24 * time.Hour))
			if n == 1 {
				return "1 day"
			}
			return fmt.Sprintf("%d days", n)
		}
		return d.String()
	},
}

func init() {
	for k, v := range insightFuncs {
		funcs[k] = v
	}
}
