package web

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/replay"
)

// The Replays pages: the list with a form to start one, and a replay's report as a diff view.

func init() {
	funcs["replayTotals"] = replay.NewTotalsJSON
	funcs["convType"] = func(t string) conversation.Type { return conversation.Type(t) }
	funcs["add64"] = func(a, b int64) int64 { return a + b }
	funcs["signed"] = func(n int64) string { return fmt.Sprintf("%+d", n) }
	funcs["signedUSD"] = signedUSD
	funcs["signedMicros"] = func(m int64) string { return signedUSD(float64(m) / 1e6) }
}

// signedUSD writes a cost difference with its sign ("+$0.0012", "-$0.0003", "$0").
func signedUSD(v float64) string {
	switch {
	case v > 0:
		return fmt.Sprintf("+$%.6f", v)
	case v < 0:
		return "-" + fmt.Sprintf("$%.6f", -v)
	}
	return "$0"
}

// replayForm is the start form's fields, as text.
type replayForm struct {
	AssistantID, Version, SystemPrompt, Type, Status, From, To, Limit string
}

type replaysData struct {
	Replays    []*replay.Replay
	Assistants []*assistant.Assistant
	Form       replayForm
	Next       string
	MaxLimit   int
}

func (h *Handler) replays(w http.ResponseWriter, r *http.Request) {
	h.renderReplays(w, r, http.StatusOK, replayForm{Limit: strconv.Itoa(replay.DefaultLimit)}, "")
}

func (h *Handler) renderReplays(w http.ResponseWriter, r *http.Request, status int, form replayForm, formErr string) {
	ws := sessionFrom(r).WorkspaceID
	list, next, err := h.Replays.List(r.Context(), ws, 50, r.URL.Query().Get("cursor"))
	if err != nil {
		list, next = nil, "" // a bad cursor shows the first page
		if list, next, err = h.Replays.List(r.Context(), ws, 50, ""); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	assistants, err := h.Assistants.List(r.Context(), ws)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, status, "replays", &view{Title: "Replays", Nav: "replays", Error: formErr,
		Data: replaysData{Replays: list, Assistants: assistants, Form: form, Next: next, MaxLimit: replay.MaxLimit}})
}

// startReplay reads the form, validates it as the API does, and shows the new replay.
func (h *Handler) startReplay(w http.ResponseWriter, r *http.Request) {
	f := replayForm{AssistantID: r.PostFormValue("assistant_id"), Version: strings.TrimSpace(r.PostFormValue("version")),
		SystemPrompt: r.PostFormValue("system_prompt"), Type: r.PostFormValue("type"), Status: r.PostFormValue("status"),
		From: strings.TrimSpace(r.PostFormValue("from")), To: strings.TrimSpace(r.PostFormValue("to")), Limit: strings.TrimSpace(r.PostFormValue("limit"))}
	req := replay.Request{AssistantID: f.AssistantID}
	fail := func(msg string) { h.renderReplays(w, r, http.StatusUnprocessableEntity, f, msg) }
	if f.Version != "" {
		n, err := strconv.Atoi(f.Version)
		if err != nil || n < 1 {
			fail("Version must be a version number, or empty for the current one.")
			return
		}
		req.Version = n
	}
	if f.Limit != "" {
		n, err := strconv.Atoi(f.Limit)
		if err != nil || n < 1 || n > replay.MaxLimit {
			fail(fmt.Sprintf("Conversations must be a number from 1 to %d.", replay.MaxLimit))
			return
		}
		req.Limit = n
	}
	if strings.TrimSpace(f.SystemPrompt) != "" {
		p := f.SystemPrompt
		req.Draft = &assistant.Draft{SystemPrompt: &p}
	}
	q := url.Values{}
	for k, v := range map[string]string{"type": f.Type, "status": f.Status, "from": f.From, "to": f.To} {
		if v != "" {
			q.Set(k, v)
		}
	}
	filter, err := api.ParseFilter(q, false)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			fail("Filter: " + ae.Message + ".")
			return
		}
		h.fail(w, r, err)
		return
	}
	req.Filter = filter
	rp, err := h.Replays.Create(r.Context(), sessionFrom(r).WorkspaceID, req)
	var ie *replay.InputError
	var ve *assistant.ValidationError
	switch {
	case errors.As(err, &ie):
		fail(fmt.Sprintf("%s %s.", ie.Field, ie.Message))
		return
	case errors.As(err, &ve):
		fail(fmt.Sprintf("Draft %s %s.", ve.Field, ve.Message))
		return
	case errors.Is(err, replay.ErrAssistantNotFound):
		fail("Choose an assistant.")
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	redirectTo(w, r, "/replays/"+rp.ID)
}

// replayPageSize is how many conversations a report page shows.
const replayPageSize = 20

type replayData struct {
	Replay *replay.Replay
	Totals replay.TotalsJSON
	Items  []itemView
	Next   string
}

type itemView struct {
	*replay.Item
	Totals replay.TotalsJSON
	Turns  []turnView
}

// turnView is a turn with its word diff split per side: the old reply with what was removed
// marked, the new one with what was added.
type turnView struct {
	replay.Turn
	OldDiff     []segmentView
	NewDiff     []segmentView
	TokensDiff  int64
	CostDiff    int64
	OldTokens   int64
	NewTokens   int64
	HasEffects  bool
	SimilarityS string
}

func newTurnView(t replay.Turn) turnView {
	v := turnView{Turn: t, OldTokens: t.Old.TokensIn + t.Old.TokensOut, NewTokens: t.New.TokensIn + t.New.TokensOut,
		CostDiff: t.New.CostMicros - t.Old.CostMicros, SimilarityS: strconv.FormatFloat(t.Similarity, 'f', 4, 64)}
	v.TokensDiff = v.NewTokens - v.OldTokens
	v.HasEffects = len(t.Effects.Variables) > 0 || t.Effects.Handoff != nil || t.Effects.End
	for _, s := range replay.WordDiff(t.Old.Text, t.New.Text) {
		text := strings.TrimRight(s.Text, " \t\n\r")
		seg := segmentView{Op: string(s.Op), Text: text, Space: s.Text[len(text):]}
		if s.Op != replay.Added {
			v.OldDiff = append(v.OldDiff, seg)
		}
		if s.Op != replay.Removed {
			v.NewDiff = append(v.NewDiff, seg)
		}
	}
	return v
}

// segmentView is a diff run with its trailing whitespace apart, so only words are highlighted.
type segmentView struct{ Op, Text, Space string }

func (h *Handler) replayPage(w http.ResponseWriter, r *http.Request) {
	ws := sessionFrom(r).WorkspaceID
	rp, err := h.Replays.Get(r.Context(), ws, r.PathValue("id"))
	if err != nil {
		h.notFound(w, r, "replay")
		return
	}
	after := -1
	if c := r.URL.Query().Get("after"); c != "" {
		if n, err := strconv.Atoi(c); err == nil && n >= 0 && n <= math.MaxInt32 { // positions are 32-bit
			after = n
		}
	}
	items, err := h.Replays.Items(r.Context(), ws, rp.ID, after, replayPageSize+1)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d := replayData{Replay: rp, Totals: replay.NewTotalsJSON(rp.Totals)}
	if len(items) > replayPageSize {
		items = items[:replayPageSize]
		d.Next = strconv.Itoa(items[replayPageSize-1].Position)
	}
	for _, it := range items {
		iv := itemView{Item: it, Totals: replay.NewTotalsJSON(it.Totals)}
		for _, t := range it.Turns {
			iv.Turns = append(iv.Turns, newTurnView(t))
		}
		d.Items = append(d.Items, iv)
	}
	h.render(w, r, http.StatusOK, "replay", &view{Title: "Replay of " + rp.AssistantName, Nav: "replays", Data: d})
}
