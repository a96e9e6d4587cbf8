package web

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/metrics"
)

type metricsData struct {
	From, To, Type, AssistantID string
	Assistants                  []*assistant.Assistant
	Report                      *metrics.Report
	PerDay                      *barChart
	Cost                        *lineChart
	Heat                        *heatmap
}

// Chart geometry (SVG user units).
const (
	chartW, chartH  = 720.0, 220.0
	padL, padB      = 48.0, 28.0
	padT, padR      = 12.0, 8.0
	maxChartDays    = 400
	heatCell, heatL = 24.0, 40.0
)

type bar struct {
	X, Y, W, H float64
	Label      string
	Value      string
}

type tick struct {
	X, Y  float64
	Label string
}

type barChart struct {
	W, H, Base, Left float64
	Bars             []bar
	YTicks, XTicks   []tick
	Max              int64
}

type lineChart struct {
	W, H, Base, Left float64
	Points           string
	Dots             []bar
	YTicks, XTicks   []tick
	Max              string
}

type heatCellT struct {
	X, Y, W, H float64
	Fill       string
	Label      string
}

type heatmap struct {
	W, H  float64
	Cells []heatCellT
	Rows  []tick
	Cols  []tick
	Max   int64
}

// dayRange lists every day from..to (inclusive), so days without conversations show as zero.
func dayRange(from, to time.Time) []string {
	var out []string
	for d := from; !d.After(to) && len(out) < maxChartDays; d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format("2006-01-02"))
	}
	return out
}

func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func xTicks(days []string, x func(i int) float64) []tick {
	var out []tick
	step := max(1, len(days)/6)
	for i := 0; i < len(days); i += step {
		out = append(out, tick{X: x(i), Y: chartH - padB + 16, Label: days[i][5:]})
	}
	return out
}

func buildBars(days []string, byDay map[string]metrics.Day) *barChart {
	c := &barChart{W: chartW, H: chartH, Base: chartH - padB, Left: padL}
	var mx int64
	for _, d := range byDay {
		mx = max(mx, d.Conversations)
	}
	top := niceMax(float64(mx))
	c.Max = mx
	plotW := chartW - padL - padR
	slot := plotW / float64(max(1, len(days)))
	plotH := chartH - padB - padT
	for i, day := range days {
		v := byDay[day].Conversations
		h := float64(v) / top * plotH
		c.Bars = append(c.Bars, bar{X: padL + float64(i)*slot + slot*0.1, Y: c.Base - h, W: math.Max(slot*0.8, 1), H: h, Label: day, Value: num(v)})
	}
	for _, f := range []float64{0, 0.5, 1} {
		c.YTicks = append(c.YTicks, tick{X: padL - 6, Y: c.Base - f*plotH, Label: trimFloat(top * f)})
	}
	c.XTicks = xTicks(days, func(i int) float64 { return padL + float64(i)*slot + slot/2 })
	return c
}

func buildCost(days []string, byDay map[string]metrics.Day) *lineChart {
	c := &lineChart{W: chartW, H: chartH, Base: chartH - padB, Left: padL}
	var mx int64
	for _, d := range byDay {
		mx = max(mx, d.CostMicros)
	}
	top := niceMax(float64(mx) / 1e6)
	c.Max = usd(mx)
	plotW := chartW - padL - padR
	plotH := chartH - padB - padT
	step := plotW / float64(max(1, len(days)-1))
	var pts []string
	for i, day := range days {
		x := padL + float64(i)*step
		if len(days) == 1 {
			x = padL + plotW/2
		}
		v := byDay[day].CostMicros
		y := c.Base - float64(v)/1e6/top*plotH
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		c.Dots = append(c.Dots, bar{X: x, Y: y, Label: day, Value: usd(v)})
	}
	c.Points = strings.Join(pts, " ")
	for _, f := range []float64{0, 0.5, 1} {
		c.YTicks = append(c.YTicks, tick{X: padL - 6, Y: c.Base - f*plotH, Label: "$" + strconv.FormatFloat(top*f, 'g', 3, 64)})
	}
	c.XTicks = xTicks(days, func(i int) float64 { return padL + float64(i)*step })
	return c
}

var weekdays = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

func buildHeatmap(w [7][24]int64) *heatmap {
	hm := &heatmap{W: heatL + 24*heatCell + 4, H: 7*heatCell + 20}
	for d := range 7 {
		for hr := range 24 {
			hm.Max = max(hm.Max, w[d][hr])
		}
	}
	for d := range 7 {
		hm.Rows = append(hm.Rows, tick{X: heatL - 6, Y: float64(d)*heatCell + heatCell*0.65, Label: weekdays[d]})
		for hr := range 24 {
			v := w[d][hr]
			alpha := 0.06
			if hm.Max > 0 && v > 0 {
				alpha = 0.15 + 0.85*float64(v)/float64(hm.Max)
			}
			hm.Cells = append(hm.Cells, heatCellT{X: heatL + float64(hr)*heatCell, Y: float64(d) * heatCell, W: heatCell - 2, H: heatCell - 2,
				Fill: fmt.Sprintf("rgba(37,99,235,%.2f)", alpha), Label: fmt.Sprintf("%s %02d:00 UTC: %s conversations", weekdays[d], hr, num(v))})
		}
	}
	for hr := 0; hr < 24; hr += 3 {
		hm.Cols = append(hm.Cols, tick{X: heatL + float64(hr)*heatCell + heatCell/2, Y: 7*heatCell + 14, Label: fmt.Sprintf("%02d", hr)})
	}
	return hm
}

func trimFloat(v float64) string {
	s := strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
	if s == "" || s == "-0" {
		return "0"
	}
	return s
}

func (h *Handler) metrics(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	now := h.now()
	q := r.URL.Query()
	d := &metricsData{From: q.Get("from"), To: q.Get("to"), Type: q.Get("type"), AssistantID: q.Get("assistant_id"), Assistants: h.assistantsOf(r)}
	if d.From == "" {
		d.From = now.AddDate(0, 0, -29).Format("2006-01-02")
	}
	if d.To == "" {
		d.To = now.Format("2006-01-02")
	}
	v := &view{Title: "Metrics", Nav: "metrics", Data: d, Budgets: h.budgetWarnings(r, "")}
	aq := url.Values{"from": {d.From}, "to": {d.To}, "type": {d.Type}, "assistant_id": {d.AssistantID}}
	f, err := api.ParseMetricsFilter(aq)
	if err == nil && f.From != nil && f.To != nil && !f.To.After(*f.From) {
		err = api.Errorf(http.StatusBadRequest, "invalid_parameter", "the end date must be after the start date")
	}
	if err != nil {
		v.Error = apiMessage(err)
		h.render(w, r, http.StatusBadRequest, "metrics", v)
		return
	}
	rep, err := metrics.Compute(r.Context(), h.Store, s.WorkspaceID, f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Report = rep
	byDay := map[string]metrics.Day{}
	for _, day := range rep.ByDay {
		byDay[day.Date] = day
	}
	from := f.From.UTC().Truncate(24 * time.Hour)
	to := f.To.UTC().Add(-time.Millisecond).Truncate(24 * time.Hour)
	days := dayRange(from, to)
	d.PerDay = buildBars(days, byDay)
	d.Cost = buildCost(days, byDay)
	d.Heat = buildHeatmap(rep.ByWeekdayHour)
	h.render(w, r, http.StatusOK, "metrics", v)
}
