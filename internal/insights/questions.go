package insights

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// QuestionStats says which questions the topics and unanswered questions were computed from.
type QuestionStats struct {
	// Scanned is how many customer text messages were read: those asked in the range, from the most
	// recently active conversations on, up to Limit.
	Scanned   int
	Limit     int
	Truncated bool // the scan stopped at Limit: older questions were left out
	// Grouped is how many of them are in a topic; WithoutKeywords had no meaningful word ("hi").
	Grouped         int
	WithoutKeywords int
	// Method is how topics were grouped: "keywords" (offline: knowledge-base documents, then
	// keywords) or "embeddings" (by embedding similarity; Embedded distinct texts were embedded).
	Method   string
	Embedded int
	// Note explains a fallback (embeddings failed, so topics were grouped offline).
	Note string
}

// MaxQuestionRunes is how much of a customer message is analysed: what a question is about shows
// in its first sentences, and the cap bounds the work per question.
const MaxQuestionRunes = 500

// question is a customer's text message and what the turn after it did.
type question struct {
	ConversationID string
	AssistantID    string
	Text           string // at most MaxQuestionRunes
	norm           string // normalize(Text)
	At             time.Time
	searched       bool // the assistant searched the knowledge base
	found          bool // some search returned passages
	failed         bool // the turn failed (the customer got the fallback)
	handoff        bool // the assistant handed the conversation to a human
}

// unanswered reports whether the knowledge base could not answer the question: every search of its
// turn came back empty, the turn failed, or the assistant handed off.
func (q *question) unanswered() bool { return (q.searched && !q.found) || q.failed || q.handoff }

// scanQuestions reads the customer questions asked in the range and the turns that followed them,
// up to limit questions, most recently active conversations first.
func (s *Service) scanQuestions(ctx context.Context, workspaceID string, f Filter, limit int) ([]question, QuestionStats, error) {
	st := QuestionStats{Limit: limit}
	var qs []question
	conv, current := "", -1 // current: the question whose turn the next messages belong to
	err := s.Source.QuestionMessages(ctx, workspaceID, f, func(m Message) error {
		if m.ConversationID != conv {
			if len(qs) >= limit {
				st.Truncated = true
				return ErrEnough
			}
			conv, current = m.ConversationID, -1
		}
		if m.Role == "user" {
			current = -1
			if strings.TrimSpace(m.Text) == "" || (f.From != nil && m.CreatedAt.Before(*f.From)) || (f.To != nil && !m.CreatedAt.Before(*f.To)) {
				return nil
			}
			if len(qs) >= limit {
				st.Truncated = true
				return nil
			}
			text := m.Text
			if utf8.RuneCountInString(text) > MaxQuestionRunes {
				text = string([]rune(text)[:MaxQuestionRunes])
			}
			qs = append(qs, question{ConversationID: m.ConversationID, AssistantID: m.AssistantID, Text: text, norm: normalize(text), At: m.CreatedAt})
			current = len(qs) - 1
			return nil
		}
		if current < 0 {
			return nil
		}
		q := &qs[current]
		if m.Failed {
			q.failed = true
		}
		if m.ToolCalls != "" {
			inspectToolCalls(q, m.ToolCalls)
		}
		return nil
	})
	if errors.Is(err, ErrEnough) {
		err = nil
	}
	st.Scanned = len(qs)
	return qs, st, err
}

// inspectToolCalls notes the knowledge searches and handoffs of a step.
func inspectToolCalls(q *question, raw string) {
	if !strings.Contains(raw, "search_knowledge") && !strings.Contains(raw, "transfer_to_human") {
		return
	}
	var calls []struct {
		Name   string `json:"name"`
		Result string `json:"result"`
	}
	if json.Unmarshal([]byte(raw), &calls) != nil {
		return
	}
	for _, c := range calls {
		switch c.Name {
		case "search_knowledge":
			q.searched = true
			var res struct {
				Results []json.RawMessage `json:"results"`
			}
			if json.Unmarshal([]byte(c.Result), &res) == nil && len(res.Results) > 0 {
				q.found = true
			}
		case "transfer_to_human":
			q.handoff = true
		}
	}
}

// Unanswered is a question the knowledge base could not answer, with every ask of the same
// normalised text.
type Unanswered struct {
	Text            string // as last asked
	Normalized      string
	Count           int
	LastSeen        time.Time
	ConversationIDs []string // up to maxSampleIDs, most recent first
	// Why, counted per ask (one ask can have several reasons).
	NoResults, Failed, Handoff int
}

// maxSampleIDs is how many conversation ids a group lists.
const maxSampleIDs = 5

// byRecency orders question indexes newest first (ties: conversation id, text), so every list
// built from them is deterministic.
func byRecency(qs []question) []int {
	idx := make([]int, len(qs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		qa, qb := &qs[idx[a]], &qs[idx[b]]
		if !qa.At.Equal(qb.At) {
			return qa.At.After(qb.At)
		}
		if qa.ConversationID != qb.ConversationID {
			return qa.ConversationID < qb.ConversationID
		}
		return qa.Text < qb.Text
	})
	return idx
}

func addID(ids []string, id string) []string {
	if len(ids) >= maxSampleIDs {
		return ids
	}
	for _, x := range ids {
		if x == id {
			return ids
		}
	}
	return append(ids, id)
}

// groupUnanswered groups the unanswered questions by normalised text, most asked first; it returns
// at most limit groups and the number of unanswered questions in all.
func groupUnanswered(qs []question, limit int) ([]Unanswered, int) {
	groups := map[string]*Unanswered{}
	var order []string
	total := 0
	for _, i := range byRecency(qs) {
		q := &qs[i]
		if !q.unanswered() {
			continue
		}
		total++
		key := q.norm
		g := groups[key]
		if g == nil {
			g = &Unanswered{Text: strings.TrimSpace(q.Text), Normalized: key, LastSeen: q.At, ConversationIDs: []string{}}
			groups[key] = g
			order = append(order, key)
		}
		g.Count++
		g.ConversationIDs = addID(g.ConversationIDs, q.ConversationID)
		if q.searched && !q.found {
			g.NoResults++
		}
		if q.failed {
			g.Failed++
		}
		if q.handoff {
			g.Handoff++
		}
	}
	out := make([]Unanswered, 0, len(order))
	for _, k := range order {
		out = append(out, *groups[k])
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		if !out[i].LastSeen.Equal(out[j].LastSeen) {
			return out[i].LastSeen.After(out[j].LastSeen)
		}
		return out[i].Normalized < out[j].Normalized
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, total
}
