// Package insights answers "how well do the assistants do": how many conversations end resolved,
// how many are handed to a human and how fast a human answers then, what customers ask about most
// (topics) and which questions the knowledge base could not answer. The figures come from facts
// the store keeps per conversation as data lands (conversation_insights), so a report over a
// million conversations reads one narrow row each; topics and unanswered questions come from a
// bounded scan of the most recent customer messages. Definitions: docs/INSIGHTS.md.
package insights

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/knowledge"
)

// DefaultWindow is how soon a customer must write again for an ended conversation to count as
// not resolved, unless the request says otherwise.
const DefaultWindow = 72 * time.Hour

// MaxWindow bounds the resolution window a request may ask for.
const MaxWindow = 365 * 24 * time.Hour

// DefaultQuestionLimit is how many customer questions, most recent conversations first, the topics
// and unanswered questions are computed from.
const DefaultQuestionLimit = 20_000

// Filter selects what a report covers. Conversations count by their start (From inclusive, To
// exclusive); questions by when they were asked.
type Filter struct {
	From, To    *time.Time
	AssistantID string
	Types       []string
	// Window is how soon after the end a customer's new message makes a conversation unresolved.
	Window time.Duration
	// Now is the report's moment: conversations that ended less than Window before it are resolved
	// for now but still pending (see Figures.ResolutionPending). Zero: the time of the call.
	Now time.Time
}

// Group is the facts of the conversations of one assistant and channel type started on one day
// (UTC), summed by the database.
type Group struct {
	AssistantID string
	Type        string
	Day         int64 // days since the Unix epoch
	Counts
}

// Counts are the summable facts of a set of conversations.
type Counts struct {
	Conversations      int64
	Ended              int64
	Resolved           int64
	ResolutionPending  int64
	Handoffs           int64 // conversations handed off at least once
	HandoffEvents      int64 // handoffs in all
	UnansweredHandoffs int64
	RepliedHandoffs    int64 // handoffs with a known handoff time and a human reply after it
	ReplyMSSum         int64
}

func (c *Counts) add(o Counts) {
	c.Conversations += o.Conversations
	c.Ended += o.Ended
	c.Resolved += o.Resolved
	c.ResolutionPending += o.ResolutionPending
	c.Handoffs += o.Handoffs
	c.HandoffEvents += o.HandoffEvents
	c.UnansweredHandoffs += o.UnansweredHandoffs
	c.RepliedHandoffs += o.RepliedHandoffs
	c.ReplyMSSum += o.ReplyMSSum
}

// ReplyTime is one handoff's time to the first human reply.
type ReplyTime struct {
	AssistantID string
	Type        string
	Day         int64
	MS          int64
}

// Message is one message of the question scan: a customer's text (role user), or what followed it
// (assistant steps with their raw tool calls, system messages), in conversation order.
type Message struct {
	ConversationID string
	AssistantID    string
	Role           string
	Text           string // customer text messages only
	ToolCalls      string // raw JSON of the assistant's tool calls, "" when none
	Failed         bool   // the message carries an error (a failed AI turn and its fallback)
	CreatedAt      time.Time
}

// ErrEnough stops a question scan: the callback has what it needs.
var ErrEnough = errors.New("enough questions")

// DocumentText is the text of a knowledge-base document, for matching questions to it offline.
type DocumentText struct {
	KnowledgeBaseID string
	DocumentID      string
	Title           string
	Content         string
}

// Source is what insights read from the store.
type Source interface {
	// InsightGroups streams the facts of the filtered conversations summed per assistant, type and day.
	InsightGroups(ctx context.Context, workspaceID string, f Filter, fn func(Group) error) error
	// HandoffReplyTimes streams every replied handoff's time to the first human reply.
	HandoffReplyTimes(ctx context.Context, workspaceID string, f Filter, fn func(ReplyTime) error) error
	// QuestionMessages streams the filtered conversations' messages from f.From on, the most
	// recently active conversations first, each conversation's messages in order; fn may return
	// ErrEnough to stop.
	QuestionMessages(ctx context.Context, workspaceID string, f Filter, fn func(Message) error) error
	AssistantNames(ctx context.Context, workspaceID string) (map[string]string, error)
	// AssistantKnowledge maps each assistant to its knowledge bases.
	AssistantKnowledge(ctx context.Context, workspaceID string) (map[string][]string, error)
	// KnowledgeTexts returns the documents of the knowledge bases with (the start of) their text.
	KnowledgeTexts(ctx context.Context, workspaceID string, kbIDs []string, maxDocuments, maxChunksPerDocument int) ([]DocumentText, error)
	// EmbeddedChunks returns passages of the knowledge bases that have embeddings.
	EmbeddedChunks(ctx context.Context, workspaceID string, kbIDs []string, limit int) ([]knowledge.Chunk, error)
}

// Embedder turns texts into vectors for a workspace; knowledge.ErrNoEmbeddings when it has no
// embedding model. HasEmbeddings tells whether it has one without embedding anything.
type Embedder interface {
	Embed(ctx context.Context, workspaceID string, inputs []string) ([][]float32, error)
	HasEmbeddings(ctx context.Context, workspaceID string) (bool, error)
}

// Service computes reports.
type Service struct {
	Source   Source
	Embedder Embedder // nil: topics are always grouped offline
	Log      *slog.Logger
}

// Figures are the rates of a set of conversations. Denominators: ResolutionRate is
// Resolved/Ended, HandoffRate is Handoffs/Conversations; reply times are over RepliedHandoffs.
type Figures struct {
	Counts
	ResolutionRate       float64
	HandoffRate          float64
	AvgFirstHumanReplyMS float64
	P50FirstHumanReplyMS int64
}

// AssistantFigures are one assistant's figures.
type AssistantFigures struct {
	AssistantID string
	Name        string
	Figures
}

// ChannelFigures are one conversation type's figures.
type ChannelFigures struct {
	Type string
	Figures
}

// DayFigures are the figures of the conversations started on one day (UTC).
type DayFigures struct {
	Date string // YYYY-MM-DD
	Figures
}

// Report is the whole answer.
type Report struct {
	Figures
	Window      time.Duration
	ByAssistant []AssistantFigures
	ByChannel   []ChannelFigures
	ByDay       []DayFigures
	Questions   QuestionStats
	Topics      []Topic
	Unanswered  []Unanswered
	// UnansweredTotal counts every question the knowledge base could not answer (Unanswered lists
	// the most frequent groups).
	UnansweredTotal int
}

// Options size the parts of a report.
type Options struct {
	QuestionLimit   int // default DefaultQuestionLimit
	TopicLimit      int // default 20
	UnansweredLimit int // default 50
	// SkipQuestions leaves out topics and unanswered questions (the figures only).
	SkipQuestions bool
}

func (o *Options) defaults() {
	if o.QuestionLimit <= 0 {
		o.QuestionLimit = DefaultQuestionLimit
	}
	if o.TopicLimit <= 0 {
		o.TopicLimit = 20
	}
	if o.UnansweredLimit <= 0 {
		o.UnansweredLimit = 50
	}
}

// Report computes the insights of a workspace.
func (s *Service) Report(ctx context.Context, workspaceID string, f Filter, opts Options) (*Report, error) {
	opts.defaults()
	if f.Window <= 0 {
		f.Window = DefaultWindow
	}
	if f.Now.IsZero() {
		f.Now = time.Now().UTC()
	}
	r := &Report{Window: f.Window, ByAssistant: []AssistantFigures{}, ByChannel: []ChannelFigures{}, ByDay: []DayFigures{},
		Topics: []Topic{}, Unanswered: []Unanswered{}}
	// The figures and the question scan read different tables: both run at once.
	type scanResult struct {
		qs  []question
		st  QuestionStats
		err error
	}
	scanc := make(chan scanResult, 1)
	if !opts.SkipQuestions {
		go func() {
			qs, st, err := s.scanQuestions(ctx, workspaceID, f, opts.QuestionLimit)
			scanc <- scanResult{qs, st, err}
		}()
	}
	err := s.figures(ctx, workspaceID, f, r)
	if opts.SkipQuestions {
		return r, err
	}
	scan := <-scanc
	if err != nil {
		return nil, err
	}
	if scan.err != nil {
		return nil, fmt.Errorf("scan questions: %w", scan.err)
	}
	r.Questions = scan.st
	r.Unanswered, r.UnansweredTotal = groupUnanswered(scan.qs, opts.UnansweredLimit)
	topics, err := s.topics(ctx, workspaceID, scan.qs, &r.Questions)
	if err != nil {
		return nil, err
	}
	if len(topics) > opts.TopicLimit {
		topics = topics[:opts.TopicLimit]
	}
	r.Topics = topics
	return r, nil
}

// Headline computes only the overall figures (no breakdowns, no questions): what the metrics
// answer carries.
func (s *Service) Headline(ctx context.Context, workspaceID string, f Filter) (Figures, error) {
	r, err := s.Report(ctx, workspaceID, f, Options{SkipQuestions: true})
	if err != nil {
		return Figures{}, err
	}
	return r.Figures, nil
}

// bucket accumulates the counts and reply times of one breakdown row.
type bucket struct {
	Counts
	replies []int64
}

func (b *bucket) figures() Figures {
	f := Figures{Counts: b.Counts, ResolutionRate: ratio(b.Resolved, b.Ended), HandoffRate: ratio(b.Handoffs, b.Conversations),
		AvgFirstHumanReplyMS: ratio(b.ReplyMSSum, b.RepliedHandoffs)}
	f.P50FirstHumanReplyMS = median(b.replies)
	return f
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// median is the nearest-rank median: the ⌈n/2⌉-th smallest value (0 for none).
func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[(len(v)+1)/2-1]
}

func dayString(day int64) string { return time.Unix(day*86400, 0).UTC().Format("2006-01-02") }

func (s *Service) figures(ctx context.Context, workspaceID string, f Filter, r *Report) error {
	all := &bucket{}
	byAssistant := map[string]*bucket{}
	byType := map[string]*bucket{}
	byDay := map[int64]*bucket{}
	get := func(g Group) []*bucket {
		a := byAssistant[g.AssistantID]
		if a == nil {
			a = &bucket{}
			byAssistant[g.AssistantID] = a
		}
		t := byType[g.Type]
		if t == nil {
			t = &bucket{}
			byType[g.Type] = t
		}
		d := byDay[g.Day]
		if d == nil {
			d = &bucket{}
			byDay[g.Day] = d
		}
		return []*bucket{all, a, t, d}
	}
	err := s.Source.InsightGroups(ctx, workspaceID, f, func(g Group) error {
		for _, b := range get(g) {
			b.add(g.Counts)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read insight facts: %w", err)
	}
	if all.RepliedHandoffs > 0 {
		err = s.Source.HandoffReplyTimes(ctx, workspaceID, f, func(rt ReplyTime) error {
			for _, b := range get(Group{AssistantID: rt.AssistantID, Type: rt.Type, Day: rt.Day}) {
				b.replies = append(b.replies, rt.MS)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read reply times: %w", err)
		}
	}
	r.Figures = all.figures()
	names, err := s.Source.AssistantNames(ctx, workspaceID)
	if err != nil {
		return err
	}
	for id, b := range byAssistant {
		if id == "" {
			continue
		}
		r.ByAssistant = append(r.ByAssistant, AssistantFigures{AssistantID: id, Name: names[id], Figures: b.figures()})
	}
	sort.Slice(r.ByAssistant, func(i, j int) bool {
		a, b := r.ByAssistant[i], r.ByAssistant[j]
		if a.Conversations != b.Conversations {
			return a.Conversations > b.Conversations
		}
		return a.AssistantID < b.AssistantID
	})
	for typ, b := range byType {
		r.ByChannel = append(r.ByChannel, ChannelFigures{Type: typ, Figures: b.figures()})
	}
	sort.Slice(r.ByChannel, func(i, j int) bool {
		a, b := r.ByChannel[i], r.ByChannel[j]
		if a.Conversations != b.Conversations {
			return a.Conversations > b.Conversations
		}
		return a.Type < b.Type
	})
	for day, b := range byDay {
		r.ByDay = append(r.ByDay, DayFigures{Date: dayString(day), Figures: b.figures()})
	}
	sort.Slice(r.ByDay, func(i, j int) bool { return r.ByDay[i].Date < r.ByDay[j].Date })
	return nil
}

// ParseWindow reads a resolution window: a Go duration ("24h", "90m") or whole days ("3d"),
// more than zero and at most a year.
func ParseWindow(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 365 {
			return 0, fmt.Errorf("resolution_window %q: want a duration like 72h or 3d, at most 365d", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("resolution_window %q: want a duration like 72h or 3d", v)
		}
	}
	if d <= 0 || d > MaxWindow {
		return 0, fmt.Errorf("resolution_window must be more than 0 and at most 365d")
	}
	return d, nil
}
