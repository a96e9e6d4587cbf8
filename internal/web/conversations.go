package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/api"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/store"
)

// CountCap bounds the filtered count on the list: past it the page says "10,000+".
const CountCap = 10_000

// listFilter is the list's filters as the URL holds them.
type listFilter struct {
	Type, AssistantID, Range, From, To, Customer, Status, Q, Cursor string
}

func (f listFilter) Active() bool {
	return f.Type != "" || f.AssistantID != "" || f.Range != "" || f.Customer != "" || f.Status != "" || f.Q != ""
}

// apiQuery is the filter in the API's terms (the date range resolved to from/to dates), so the
// list and the export select exactly the same conversations.
func (f listFilter) apiQuery(now time.Time) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("type", f.Type)
	set("assistant_id", f.AssistantID)
	set("customer", f.Customer)
	set("status", f.Status)
	set("q", f.Q)
	today := now.UTC().Format("2006-01-02")
	switch f.Range {
	case "today":
		set("from", today)
	case "7d":
		set("from", now.UTC().AddDate(0, 0, -6).Format("2006-01-02"))
	case "custom":
		set("from", f.From)
		set("to", f.To)
	}
	return q
}

// urlQuery is the filter as the dashboard's own URL writes it.
func (f listFilter) urlQuery() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"type": f.Type, "assistant_id": f.AssistantID, "range": f.Range, "customer": f.Customer, "status": f.Status, "q": f.Q} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Range == "custom" {
		if f.From != "" {
			q.Set("from", f.From)
		}
		if f.To != "" {
			q.Set("to", f.To)
		}
	}
	return q
}

func readListFilter(q url.Values) listFilter {
	g := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	f := listFilter{Type: g("type"), AssistantID: g("assistant_id"), Range: g("range"), From: g("from"), To: g("to"), Customer: g("customer"), Status: g("status"), Q: g("q"), Cursor: g("cursor")}
	if f.Range == "" && (f.From != "" || f.To != "") {
		f.Range = "custom"
	}
	switch f.Range {
	case "", "today", "7d", "custom":
	default:
		f.Range = ""
	}
	return f
}

type listData struct {
	Filter     listFilter
	Rows       []conversation.Conversation
	Count      int64
	CountCap   int64
	NextURL    string
	FirstURL   string
	Paged      bool
	ExportCSV  string
	ExportJSON string
	Assistants []*assistant.Assistant
	Now        time.Time
}

func (h *Handler) assistantsOf(r *http.Request) []*assistant.Assistant {
	list, err := h.Assistants.List(r.Context(), sessionFrom(r).WorkspaceID)
	if err != nil {
		h.Log.WarnContext(r.Context(), "dashboard: list assistants", "err", err)
	}
	return list
}

func (h *Handler) conversations(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	now := h.now()
	lf := readListFilter(r.URL.Query())
	aq := lf.apiQuery(now)
	if lf.Cursor != "" {
		aq.Set("cursor", lf.Cursor)
	}
	aq.Set("limit", "50")
	d := &listData{Filter: lf, Assistants: h.assistantsOf(r), Now: now, CountCap: CountCap}
	v := &view{Title: "Conversations", Nav: "conversations", Data: d}
	f, err := api.ParseFilter(aq, true)
	if err != nil {
		v.Error = apiMessage(err)
		h.render(w, r, http.StatusBadRequest, "conversations", v)
		return
	}
	page, err := h.Conversations.List(r.Context(), s.WorkspaceID, f)
	if errors.Is(err, store.ErrBadCursor) {
		v.Error = "That page link is no longer valid; showing the first page."
		f.Cursor, lf.Cursor = "", ""
		page, err = h.Conversations.List(r.Context(), s.WorkspaceID, f)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	d.Rows = page.Conversations
	if lf.Active() {
		d.Count, err = h.Store.CountConversations(r.Context(), s.WorkspaceID, f, CountCap)
	} else {
		d.Count, err = h.Store.ConversationCount(r.Context(), s.WorkspaceID)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	base := lf.urlQuery()
	d.FirstURL = "/conversations"
	if len(base) > 0 {
		d.FirstURL += "?" + base.Encode()
	}
	d.Paged = lf.Cursor != ""
	if page.NextCursor != "" {
		nq := lf.urlQuery()
		nq.Set("cursor", page.NextCursor)
		d.NextURL = "/conversations?" + nq.Encode()
	}
	eq := lf.apiQuery(now)
	eq.Set("format", "csv")
	d.ExportCSV = "/conversations/export?" + eq.Encode()
	eq.Set("format", "jsonl")
	d.ExportJSON = "/conversations/export?" + eq.Encode()
	h.render(w, r, http.StatusOK, "conversations", v)
}

// apiMessage is the human message of an API error.
func apiMessage(err error) string {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

// export streams the filtered conversations exactly as the API's export does (the same filter
// parsing and the same writer), behind the dashboard session.
func (h *Handler) export(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := api.ParseFilter(q, false)
	if err != nil {
		api.WriteError(w, r, err)
		return
	}
	format := q.Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "jsonl" {
		api.WriteError(w, r, api.Errorf(http.StatusBadRequest, "invalid_parameter", "format must be csv or jsonl"))
		return
	}
	if err := api.StreamExport(w, r, h.Conversations, sessionFrom(r).WorkspaceID, f, format); err != nil {
		h.Log.ErrorContext(r.Context(), "dashboard export", "err", err)
	}
}

type detailData struct {
	C          *conversation.Conversation
	Messages   []*conversation.Message
	Variables  []conversation.Variable
	DurationMS int64
	LastID     string
	Now        time.Time
	// WindowClosed is set when an agent's reply was refused: the template picker is offered.
	WindowClosed bool
	Reply        string
}

func (h *Handler) loadDetail(r *http.Request, id string) (*detailData, error) {
	d, err := h.Conversations.Detail(r.Context(), sessionFrom(r).WorkspaceID, id)
	if err != nil {
		return nil, err
	}
	out := &detailData{C: d.Conversation, Messages: d.Messages, Variables: d.Variables, Now: h.now()}
	if n := len(d.Messages); n > 0 {
		out.DurationMS = d.Messages[n-1].CreatedAt.Sub(d.Messages[0].CreatedAt).Milliseconds()
		out.LastID = d.Messages[n-1].ID
	}
	return out, nil
}

func (h *Handler) conversation(w http.ResponseWriter, r *http.Request) {
	d, err := h.loadDetail(r, r.PathValue("id"))
	if errors.Is(err, conversation.ErrNotFound) {
		h.notFound(w, r, "conversation")
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := &view{Title: "Conversation with " + contactOf(d.C), Nav: "conversations", Data: d}
	switch r.URL.Query().Get("done") {
	case "reply":
		v.Flash = "Reply sent."
	case "handoff":
		v.Flash = "Handed off to a human: the assistant stops answering."
	case "resume":
		v.Flash = "Resumed: the assistant answers again."
	case "end":
		v.Flash = "Conversation ended."
	}
	h.render(w, r, http.StatusOK, "conversation", v)
}

func (h *Handler) conversationAction(w http.ResponseWriter, r *http.Request) {
	ws := sessionFrom(r).WorkspaceID
	id := r.PathValue("id")
	action := r.PathValue("action")
	var err error
	switch action {
	case "handoff":
		_, err = h.Conversations.Handoff(r.Context(), ws, id, strings.TrimSpace(r.PostFormValue("reason")))
	case "resume":
		_, err = h.Conversations.Resume(r.Context(), ws, id)
	case "end":
		_, err = h.Conversations.End(r.Context(), ws, id)
	case "reply":
		_, err = h.Conversations.Post(r.Context(), ws, id, conversation.PostInput{Text: r.PostFormValue("text"), Role: conversation.RoleAgent}, nil)
	default:
		http.NotFound(w, r)
		return
	}
	if err == nil {
		redirectTo(w, r, "/conversations/"+url.PathEscape(id)+"?done="+action)
		return
	}
	if errors.Is(err, conversation.ErrNotFound) {
		h.notFound(w, r, "conversation")
		return
	}
	var ie *conversation.InputError
	status, msg := http.StatusConflict, ""
	windowClosed := false
	switch {
	case errors.Is(err, conversation.ErrWindowClosed):
		msg, windowClosed = "Not sent: the 24-hour customer service window is closed (window_closed). WhatsApp only allows a template now.", true
	case errors.Is(err, conversation.ErrEnded):
		msg = "The conversation has ended: it cannot be changed or answered."
	case errors.As(err, &ie):
		status, msg = http.StatusUnprocessableEntity, "The reply "+ie.Field+" "+ie.Message+"."
	default:
		h.fail(w, r, err)
		return
	}
	d, lerr := h.loadDetail(r, id)
	if lerr != nil {
		h.fail(w, r, lerr)
		return
	}
	d.WindowClosed, d.Reply = windowClosed, r.PostFormValue("text")
	h.render(w, r, status, "conversation", &view{Title: "Conversation with " + contactOf(d.C), Nav: "conversations", Error: msg, Data: d})
}

// conversationEvents streams a conversation's new messages, rendered by the same template as the
// page, and its new state, as server-sent events. ?after=<message id> first sends what the page
// missed between its render and the subscription.
func (h *Handler) conversationEvents(w http.ResponseWriter, r *http.Request) {
	ws := sessionFrom(r).WorkspaceID
	id := r.PathValue("id")
	if _, err := h.Conversations.Get(r.Context(), ws, id); err != nil {
		http.NotFound(w, r)
		return
	}
	h.closeOnShutdown(r)
	sub := h.Events.Subscribe(ws, id)
	defer sub.Close()
	flusher, _ := w.(http.Flusher)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if after := r.URL.Query().Get("after"); after != "" || r.URL.Query().Has("after") {
		if d, err := h.Conversations.Detail(r.Context(), ws, id); err == nil {
			seen := after == ""
			for _, m := range d.Messages {
				if seen {
					h.sendMessage(r, send, d.Conversation, m)
				} else if m.ID == after {
					seen = true
				}
			}
			send("conversation", convState(d.Conversation, h.now()))
		}
	} else if flusher != nil {
		_, _ = w.Write([]byte(": connected\n\n"))
		flusher.Flush()
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case <-ping.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			if sub.Lost() {
				send("reload", map[string]bool{"reload": true})
			}
			for _, m := range ev.Messages {
				if !h.sendMessage(r, send, ev.Conversation, m) {
					return
				}
			}
			if ev.Conversation != nil && !send("conversation", convState(ev.Conversation, h.now())) {
				return
			}
		}
	}
}

func (h *Handler) sendMessage(r *http.Request, send func(string, any) bool, c *conversation.Conversation, m *conversation.Message) bool {
	html, err := h.messageHTML(m)
	if err != nil {
		h.Log.ErrorContext(r.Context(), "dashboard: render message", "err", err)
		return true
	}
	return send("message", map[string]string{"id": m.ID, "html": html})
}

// messageHTML renders one transcript line with the page's own template.
func (h *Handler) messageHTML(m *conversation.Message) (string, error) {
	var buf bytes.Buffer
	if err := h.pages["conversation"].ExecuteTemplate(&buf, "message", m); err != nil {
		return "", err
	}
	return buf.String(), nil
}

type stateJSON struct {
	Status       string `json:"status"`
	MessageCount int64  `json:"message_count"`
	TokensIn     int64  `json:"tokens_in"`
	TokensOut    int64  `json:"tokens_out"`
	Cost         string `json:"cost"`
	Window       string `json:"window,omitempty"`
	// WindowExpires is when the WhatsApp window closes (RFC 3339), for the page's countdown.
	WindowExpires string `json:"window_expires,omitempty"`
}

func convState(c *conversation.Conversation, now time.Time) stateJSON {
	st := stateJSON{Status: string(c.Status), MessageCount: c.MessageCount, TokensIn: c.TokensIn, TokensOut: c.TokensOut, Cost: usd(c.CostMicros)}
	if c.Type == conversation.TypeWhatsApp {
		st.Window, st.WindowExpires = windowText(c, now), windowExpires(c)
	}
	return st
}
