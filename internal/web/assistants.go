package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/store"
)

// assistantForm is the assistant editor's fields, as text.
type assistantForm struct {
	ID, Name, SystemPrompt, Model, Temperature, Tools, KnowledgeBaseIDs, Extract, FallbackText string
	Version                                                                                    int
	MonthlyBudgetUSD                                                                           string
}

func formOf(a *assistant.Assistant) assistantForm {
	f := assistantForm{Model: "builtin", Tools: "[]", Extract: "[]"}
	if a == nil {
		return f
	}
	f.ID, f.Name, f.SystemPrompt, f.Model, f.FallbackText, f.Version = a.ID, a.Name, a.SystemPrompt, a.Model, a.FallbackText, a.Version
	if a.Temperature != nil {
		f.Temperature = strconv.FormatFloat(*a.Temperature, 'f', -1, 64)
	}
	f.Tools = prettyJSON(a.Tools)
	if f.Tools == "" {
		f.Tools = "[]"
	}
	f.KnowledgeBaseIDs = strings.Join(a.KnowledgeBaseIDs, ", ")
	if a.MonthlyBudgetMicros > 0 {
		f.MonthlyBudgetUSD = strconv.FormatFloat(float64(a.MonthlyBudgetMicros)/1e6, 'f', -1, 64)
	}
	if b, err := json.MarshalIndent(a.Extract, "", "  "); err == nil && len(a.Extract) > 0 {
		f.Extract = string(b)
	}
	return f
}

func (h *Handler) assistants(w http.ResponseWriter, r *http.Request) {
	list, err := h.Assistants.List(r.Context(), sessionFrom(r).WorkspaceID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := &view{Title: "Assistants", Nav: "assistants", Data: list, Budgets: h.budgetWarnings(r, "")}
	switch r.URL.Query().Get("done") {
	case "saved":
		v.Flash = "Assistant saved."
	case "deleted":
		v.Flash = "Assistant deleted."
	}
	h.render(w, r, http.StatusOK, "assistants", v)
}

func (h *Handler) assistantForm(w http.ResponseWriter, r *http.Request) {
	var a *assistant.Assistant
	if id := r.PathValue("id"); id != "" {
		var err error
		a, err = h.Assistants.Get(r.Context(), sessionFrom(r).WorkspaceID, id)
		if err != nil {
			h.notFound(w, r, "assistant")
			return
		}
	}
	title := "New assistant"
	if a != nil {
		title = "Edit " + a.Name
	}
	v := &view{Title: title, Nav: "assistants", Data: formOf(a)}
	if a != nil {
		v.Budgets = h.budgetWarnings(r, a.ID)
	}
	if r.URL.Query().Get("done") == "saved" {
		v.Flash = "Assistant saved."
	}
	h.render(w, r, http.StatusOK, "assistant", v)
}

// inputOf reads the editor's fields; a malformed field is a message for the form.
func inputOf(f assistantForm) (assistant.Input, string) {
	in := assistant.Input{Name: &f.Name, SystemPrompt: &f.SystemPrompt, Model: &f.Model, FallbackText: &f.FallbackText}
	if f.Temperature != "" {
		t, err := strconv.ParseFloat(f.Temperature, 64)
		if err != nil {
			return in, "Temperature must be a number such as 0.7."
		}
		in.Temperature = &t
	}
	tools := strings.TrimSpace(f.Tools)
	if tools == "" {
		tools = "[]"
	}
	if !json.Valid([]byte(tools)) {
		return in, "Tools must be a JSON array, for example [\"search_knowledge\", \"transfer_to_human\"]."
	}
	raw := json.RawMessage(tools)
	in.Tools = &raw
	kbs := []string{}
	for _, id := range strings.FieldsFunc(f.KnowledgeBaseIDs, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		kbs = append(kbs, id)
	}
	in.KnowledgeBaseIDs = &kbs
	ex := []assistant.ExtractField{}
	if s := strings.TrimSpace(f.Extract); s != "" {
		if err := json.Unmarshal([]byte(s), &ex); err != nil {
			return in, "The extraction schema must be a JSON array of {\"name\", \"description\", \"type\"} objects."
		}
	}
	in.Extract = &ex
	in.MonthlyBudgetUSD.Set = true // empty: no budget
	if b := strings.TrimSpace(f.MonthlyBudgetUSD); b != "" {
		v, err := strconv.ParseFloat(b, 64)
		if err != nil {
			return in, "The monthly budget must be a number of US dollars such as 50, or empty for none."
		}
		in.MonthlyBudgetUSD.Value = &v
	}
	return in, ""
}

func (h *Handler) saveAssistant(w http.ResponseWriter, r *http.Request) {
	ws := sessionFrom(r).WorkspaceID
	f := assistantForm{ID: r.PathValue("id"), Name: strings.TrimSpace(r.PostFormValue("name")), SystemPrompt: r.PostFormValue("system_prompt"),
		Model: strings.TrimSpace(r.PostFormValue("model")), Temperature: strings.TrimSpace(r.PostFormValue("temperature")), Tools: r.PostFormValue("tools"),
		KnowledgeBaseIDs: r.PostFormValue("knowledge_base_ids"), Extract: r.PostFormValue("extract"), FallbackText: r.PostFormValue("fallback_text"),
		MonthlyBudgetUSD: r.PostFormValue("monthly_budget_usd")}
	in, msg := inputOf(f)
	var a *assistant.Assistant
	var err error
	if msg == "" {
		if f.ID == "" {
			a, err = h.Assistants.Create(r.Context(), ws, in)
		} else {
			a, err = h.Assistants.Update(r.Context(), ws, f.ID, in)
		}
		var ve *assistant.ValidationError
		switch {
		case err == nil:
		case errors.As(err, &ve):
			msg = "The " + strings.ReplaceAll(ve.Field, "_", " ") + " " + ve.Message + "."
		case f.ID != "" && errors.Is(err, store.ErrNotFound):
			h.notFound(w, r, "assistant")
			return
		default:
			h.fail(w, r, err)
			return
		}
	}
	if msg != "" {
		h.render(w, r, http.StatusUnprocessableEntity, "assistant", &view{Title: "Edit assistant", Nav: "assistants", Error: msg, Data: f})
		return
	}
	redirectTo(w, r, "/assistants/"+url.PathEscape(a.ID)+"?done=saved")
}

func (h *Handler) deleteAssistant(w http.ResponseWriter, r *http.Request) {
	if err := h.Assistants.Delete(r.Context(), sessionFrom(r).WorkspaceID, r.PathValue("id")); err != nil {
		h.notFound(w, r, "assistant")
		return
	}
	redirectTo(w, r, "/assistants?done=deleted")
}

type testChatData struct {
	Assistants []*assistant.Assistant
	Selected   string
	Detail     *detailData
}

func (h *Handler) testChat(w http.ResponseWriter, r *http.Request) {
	d := &testChatData{Assistants: h.assistantsOf(r), Selected: r.URL.Query().Get("assistant_id")}
	v := &view{Title: "Test chat", Nav: "test-chat", Data: d}
	if id := r.URL.Query().Get("c"); id != "" {
		dd, err := h.loadDetail(r, id)
		if err != nil || dd.C.Type != conversation.TypeTest {
			h.notFound(w, r, "test conversation")
			return
		}
		d.Detail, d.Selected = dd, dd.C.AssistantID
	}
	h.render(w, r, http.StatusOK, "testchat", v)
}

func (h *Handler) startTestChat(w http.ResponseWriter, r *http.Request) {
	s := sessionFrom(r)
	c, err := h.Conversations.Create(r.Context(), s.WorkspaceID, conversation.CreateInput{
		AssistantID: r.PostFormValue("assistant_id"), Type: conversation.TypeTest, CustomerID: s.Email, CustomerName: "Test chat"})
	if err != nil {
		d := &testChatData{Assistants: h.assistantsOf(r)}
		msg := "Pick an assistant to chat with."
		if !errors.Is(err, conversation.ErrAssistantNotFound) && !isInput(err) {
			h.fail(w, r, err)
			return
		}
		h.render(w, r, http.StatusUnprocessableEntity, "testchat", &view{Title: "Test chat", Nav: "test-chat", Error: msg, Data: d})
		return
	}
	redirectTo(w, r, "/test-chat?c="+url.QueryEscape(c.ID))
}

func isInput(err error) bool {
	var ie *conversation.InputError
	return errors.As(err, &ie)
}

// chatStream sends a turn to the page as server-sent events: each stored message rendered by the
// transcript's template, and the reply's text as it is generated.
type chatStream struct {
	h       *Handler
	w       http.ResponseWriter
	flusher http.Flusher
	started bool
	failed  bool
}

func (c *chatStream) event(name string, v any) {
	if !c.started {
		c.started = true
		hd := c.w.Header()
		hd.Set("Content-Type", "text/event-stream")
		hd.Set("Cache-Control", "no-cache")
		hd.Set("X-Accel-Buffering", "no")
		c.w.WriteHeader(http.StatusOK)
	}
	b, _ := json.Marshal(v)
	if _, err := fmt.Fprintf(c.w, "event: %s\ndata: %s\n\n", name, b); err != nil {
		c.failed = true
	}
	if c.flusher != nil {
		c.flusher.Flush()
	}
}

func (c *chatStream) Message(m *conversation.Message) {
	html, err := c.h.messageHTML(m)
	if err != nil {
		return
	}
	c.event("message", map[string]string{"id": m.ID, "html": html})
}

func (c *chatStream) Delta(text string) { c.event("delta", map[string]string{"text": text}) }

// testChatMessage posts the dashboard user's message into a test conversation and streams the
// assistant's answer (conversation.Service.Post with a Stream). Without JS (no event-stream
// Accept header) the form post answers with a redirect back to the chat.
func (h *Handler) testChatMessage(w http.ResponseWriter, r *http.Request) {
	ws := sessionFrom(r).WorkspaceID
	id := r.PathValue("id")
	c, err := h.Conversations.Get(r.Context(), ws, id)
	if err != nil || c.Type != conversation.TypeTest {
		http.Error(w, "test conversation not found", http.StatusNotFound)
		return
	}
	text := r.PostFormValue("text")
	in := conversation.PostInput{Text: text, Role: conversation.RoleUser}
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		if _, err := h.Conversations.Post(r.Context(), ws, id, in, nil); err != nil && !isInput(err) && !errors.Is(err, conversation.ErrEnded) {
			h.fail(w, r, err)
			return
		}
		redirectTo(w, r, "/test-chat?c="+url.QueryEscape(id))
		return
	}
	flusher, _ := w.(http.Flusher)
	st := &chatStream{h: h, w: w, flusher: flusher}
	start := time.Now()
	_, err = h.Conversations.Post(r.Context(), ws, id, in, st)
	if err != nil {
		var ie *conversation.InputError
		msg := "The assistant could not answer."
		switch {
		case errors.As(err, &ie):
			msg = "The message " + ie.Field + " " + ie.Message + "."
		case errors.Is(err, conversation.ErrEnded):
			msg = "This test conversation has ended: start a new one."
		default:
			h.Log.ErrorContext(r.Context(), "dashboard test chat", "err", err)
		}
		if !st.started {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnprocessableEntity)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "invalid", "message": msg}})
			return
		}
		st.event("error", map[string]string{"message": msg})
		return
	}
	st.event("done", map[string]any{"ms": time.Since(start).Milliseconds()})
}

// ---- settings ----

type settingsData struct {
	Keys   []auth.APIKey
	NewKey string
}

func (h *Handler) settings(w http.ResponseWriter, r *http.Request) {
	h.renderSettings(w, r, http.StatusOK, "", r.URL.Query().Get("done"))
}

func (h *Handler) renderSettings(w http.ResponseWriter, r *http.Request, status int, newKey, done string) {
	keys, err := h.Store.ListAPIKeys(r.Context(), sessionFrom(r).WorkspaceID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := &view{Title: "Settings", Nav: "settings", Data: settingsData{Keys: keys, NewKey: newKey}}
	if done == "revoked" {
		v.Flash = "API key revoked."
	}
	if newKey != "" {
		v.Flash = "API key created. Copy it now: it is shown only once."
	}
	h.render(w, r, status, "settings", v)
}

func (h *Handler) createKey(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "dashboard"
	}
	if len(name) > 100 {
		name = name[:100]
	}
	clear, _, err := h.Auth.CreateAPIKey(r.Context(), sessionFrom(r).WorkspaceID, name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.renderSettings(w, r, http.StatusCreated, clear, "")
}

func (h *Handler) revokeKey(w http.ResponseWriter, r *http.Request) {
	err := h.Store.RevokeAPIKey(r.Context(), sessionFrom(r).WorkspaceID, r.PathValue("id"), h.now())
	if errors.Is(err, store.ErrNotFound) {
		h.notFound(w, r, "API key")
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	redirectTo(w, r, "/settings?done=revoked")
}
