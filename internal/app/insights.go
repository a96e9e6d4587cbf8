package app

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/insights"
	"github.com/parley-hq/parley/internal/knowledge"
	"github.com/parley-hq/parley/internal/llm"
	"github.com/parley-hq/parley/internal/metrics"
	"github.com/parley-hq/parley/internal/server"
)

// Insights: resolution and handoff figures, topics and unanswered questions (internal/insights).
//
// API (authenticated, /api/v1): GET /insights?from&to&assistant_id&type&resolution_window
// &questions_limit&topics_limit&unanswered_limit. GET /metrics gains resolution_rate,
// handoff_rate, unanswered_handoffs and avg_first_human_reply_ms. Service: Extra["insights"]
// (*insights.Service), also used by the dashboard's Insights page. Definitions: docs/INSIGHTS.md.
func init() {
	Register(Feature{Name: "insights", Setup: setupInsights})
}

func setupInsights(ctx context.Context, a *App) ([]server.Mount, error) {
	svc := InsightsService(a)
	a.APIRoutes["GET /api/v1/insights"] = func(w http.ResponseWriter, r *http.Request) error { return insightsReport(w, r, svc) }
	api.AddMetricsFields(a.Auth, func(r *http.Request, mf metrics.Filter) (map[string]any, error) {
		f := insights.Filter{From: mf.From, To: mf.To, AssistantID: mf.AssistantID, Types: mf.Types}
		if v := r.URL.Query().Get("resolution_window"); v != "" {
			d, err := insights.ParseWindow(v)
			if err != nil {
				return nil, api.Errorf(http.StatusBadRequest, "invalid_parameter", "%s", err.Error())
			}
			f.Window = d
		}
		h, err := svc.Headline(r.Context(), auth.WorkspaceID(r.Context()), f)
		if err != nil {
			return nil, err
		}
		return map[string]any{"resolution_rate": h.ResolutionRate, "handoff_rate": h.HandoffRate,
			"unanswered_handoffs": h.UnansweredHandoffs, "avg_first_human_reply_ms": h.AvgFirstHumanReplyMS}, nil
	})
	return nil, nil
}

// InsightsService returns the App's insights service, making it on first use (the dashboard and
// the API share it, whichever feature is set up first).
func InsightsService(a *App) *insights.Service {
	if s, ok := a.Extra["insights"].(*insights.Service); ok {
		return s
	}
	s := &insights.Service{Source: a.Store, Embedder: insightsEmbedder{a}, Log: a.Config.Log}
	a.Extra["insights"] = s
	return s
}

// insightsEmbedder embeds with the workspace's provider through the runtime feature, looked up at
// call time (it may be set up after insights).
type insightsEmbedder struct{ a *App }

func (e insightsEmbedder) Embed(ctx context.Context, workspaceID string, inputs []string) ([][]float32, error) {
	rt, _ := e.a.Extra["runtime"].(*Runtime)
	if rt == nil || rt.Resolver == nil {
		return nil, knowledge.ErrNoEmbeddings
	}
	return embedder{rt.Resolver}.Embed(ctx, workspaceID, inputs)
}

func (e insightsEmbedder) HasEmbeddings(ctx context.Context, workspaceID string) (bool, error) {
	rt, _ := e.a.Extra["runtime"].(*Runtime)
	if rt == nil || rt.Resolver == nil {
		return false, nil
	}
	cfg, err := rt.Resolver.Settings(ctx, workspaceID)
	if errors.Is(err, llm.ErrNoProvider) {
		return false, nil
	}
	return err == nil && cfg.EmbeddingModel != "", err
}

// ParseInsightsQuery reads the insights query: the metrics filters plus resolution_window and the
// sizes of the question parts.
func ParseInsightsQuery(q map[string][]string) (insights.Filter, insights.Options, error) {
	var opts insights.Options
	mf, err := api.ParseMetricsFilter(q)
	if err != nil {
		return insights.Filter{}, opts, err
	}
	f := insights.Filter{From: mf.From, To: mf.To, AssistantID: mf.AssistantID, Types: mf.Types}
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if v := get("resolution_window"); v != "" {
		if f.Window, err = insights.ParseWindow(v); err != nil {
			return f, opts, api.Errorf(http.StatusBadRequest, "invalid_parameter", "%s", err.Error())
		}
	}
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"questions_limit", &opts.QuestionLimit, insights.DefaultQuestionLimit}, {"topics_limit", &opts.TopicLimit, 100}, {"unanswered_limit", &opts.UnansweredLimit, 200}} {
		if v := get(p.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > p.max {
				return f, opts, api.Errorf(http.StatusBadRequest, "invalid_parameter", "%s must be a whole number from 1 to %d", p.name, p.max)
			}
			*p.dst = n
		}
	}
	return f, opts, nil
}

func insightsReport(w http.ResponseWriter, r *http.Request, svc *insights.Service) error {
	f, opts, err := ParseInsightsQuery(r.URL.Query())
	if err != nil {
		return err
	}
	rep, err := svc.Report(r.Context(), auth.WorkspaceID(r.Context()), f, opts)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, newInsightsJSON(rep))
	return nil
}

type figuresJSON struct {
	Conversations        int64   `json:"conversations"`
	Ended                int64   `json:"ended"`
	Resolved             int64   `json:"resolved"`
	ResolutionRate       float64 `json:"resolution_rate"`
	ResolutionPending    int64   `json:"resolution_pending"`
	Handoffs             int64   `json:"handoffs"`
	HandoffEvents        int64   `json:"handoff_events"`
	HandoffRate          float64 `json:"handoff_rate"`
	UnansweredHandoffs   int64   `json:"unanswered_handoffs"`
	RepliedHandoffs      int64   `json:"replied_handoffs"`
	AvgFirstHumanReplyMS float64 `json:"avg_first_human_reply_ms"`
	P50FirstHumanReplyMS int64   `json:"p50_first_human_reply_ms"`
}

func newFiguresJSON(f insights.Figures) figuresJSON {
	return figuresJSON{Conversations: f.Conversations, Ended: f.Ended, Resolved: f.Resolved, ResolutionRate: f.ResolutionRate,
		ResolutionPending: f.ResolutionPending, Handoffs: f.Handoffs, HandoffEvents: f.HandoffEvents, HandoffRate: f.HandoffRate,
		UnansweredHandoffs: f.UnansweredHandoffs, RepliedHandoffs: f.RepliedHandoffs, AvgFirstHumanReplyMS: f.AvgFirstHumanReplyMS,
		P50FirstHumanReplyMS: f.P50FirstHumanReplyMS}
}

type assistantFiguresJSON struct {
	AssistantID string `json:"assistant_id"`
	Name        string `json:"name"`
	figuresJSON
}

type channelFiguresJSON struct {
	Type string `json:"type"`
	figuresJSON
}

type dayFiguresJSON struct {
	Date string `json:"date"`
	figuresJSON
}

type questionsJSON struct {
	Scanned         int    `json:"scanned"`
	Limit           int    `json:"limit"`
	Truncated       bool   `json:"truncated"`
	Grouped         int    `json:"grouped"`
	WithoutKeywords int    `json:"without_keywords"`
	Method          string `json:"method"`
	Embedded        int    `json:"embedded"`
	Note            string `json:"note,omitempty"`
}

type insightsJSON struct {
	figuresJSON
	ResolutionWindow        string                 `json:"resolution_window"`
	ResolutionWindowSeconds int64                  `json:"resolution_window_seconds"`
	ByAssistant             []assistantFiguresJSON `json:"by_assistant"`
	ByChannel               []channelFiguresJSON   `json:"by_channel"`
	ByDay                   []dayFiguresJSON       `json:"by_day"`
	Questions               questionsJSON          `json:"questions"`
	Topics                  []topicJSON            `json:"topics"`
	UnansweredQuestions     []unansweredJSON       `json:"unanswered_questions"`
	UnansweredTotal         int                    `json:"unanswered_questions_total"`
}

type topicJSON struct {
	Label           string   `json:"label"`
	Kind            string   `json:"kind"`
	DocumentID      string   `json:"document_id,omitempty"`
	Keywords        []string `json:"keywords"`
	Count           int      `json:"count"`
	Share           float64  `json:"share"`
	Examples        []string `json:"examples"`
	ConversationIDs []string `json:"conversation_ids"`
}

type unansweredJSON struct {
	Text            string         `json:"text"`
	Normalized      string         `json:"normalized"`
	Count           int            `json:"count"`
	LastSeenAt      string         `json:"last_seen_at"`
	ConversationIDs []string       `json:"conversation_ids"`
	Reasons         map[string]int `json:"reasons"`
}

func newInsightsJSON(r *insights.Report) insightsJSON {
	q := r.Questions
	out := insightsJSON{figuresJSON: newFiguresJSON(r.Figures), ResolutionWindow: windowText(r.Window), ResolutionWindowSeconds: int64(r.Window / time.Second),
		ByAssistant: []assistantFiguresJSON{}, ByChannel: []channelFiguresJSON{}, ByDay: []dayFiguresJSON{},
		Questions: questionsJSON{Scanned: q.Scanned, Limit: q.Limit, Truncated: q.Truncated, Grouped: q.Grouped, WithoutKeywords: q.WithoutKeywords,
			Method: q.Method, Embedded: q.Embedded, Note: q.Note},
		Topics: []topicJSON{}, UnansweredQuestions: []unansweredJSON{}, UnansweredTotal: r.UnansweredTotal}
	for _, a := range r.ByAssistant {
		out.ByAssistant = append(out.ByAssistant, assistantFiguresJSON{a.AssistantID, a.Name, newFiguresJSON(a.Figures)})
	}
	for _, c := range r.ByChannel {
		out.ByChannel = append(out.ByChannel, channelFiguresJSON{c.Type, newFiguresJSON(c.Figures)})
	}
	for _, d := range r.ByDay {
		out.ByDay = append(out.ByDay, dayFiguresJSON{d.Date, newFiguresJSON(d.Figures)})
	}
	for _, t := range r.Topics {
		out.Topics = append(out.Topics, topicJSON{Label: t.Label, Kind: t.Kind, DocumentID: t.DocumentID, Keywords: t.Keywords, Count: t.Count,
			Share: t.Share, Examples: t.Examples, ConversationIDs: t.ConversationIDs})
	}
	for _, u := range r.Unanswered {
		out.UnansweredQuestions = append(out.UnansweredQuestions, unansweredJSON{Text: u.Text, Normalized: u.Normalized, Count: u.Count,
			LastSeenAt: u.LastSeen.UTC().Format(api.TimeFormat), ConversationIDs: u.ConversationIDs,
			Reasons: map[string]int{"no_results": u.NoResults, "failed": u.Failed, "handoff": u.Handoff}})
	}
	return out
}

// windowText writes a window the way the query takes it: whole days as "3d", else a Go duration.
func windowText(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}
