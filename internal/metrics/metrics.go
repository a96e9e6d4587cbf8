// Package metrics computes conversation analytics from hourly rollups that the store maintains as
// messages land, so a dashboard over a million conversations reads a few thousand rows, not all.
package metrics

import (
	"context"
	"sort"
	"time"
)

// Filter selects what the metrics cover. From/To bound the hour buckets (To exclusive).
type Filter struct {
	From, To    *time.Time
	AssistantID string
	Types       []string
}

// Bucket is one day of one assistant's rollups (all conversation types the filter keeps).
type Bucket struct {
	Day           time.Time
	AssistantID   string
	Conversations int64
	Messages      int64
	Inbound       int64
	Answered      int64
	ResponseMSSum int64
	TokensIn      int64
	TokensOut     int64
	CostMicros    int64
}

// Source reads rollups, aggregated by the database: per day and assistant, and conversations
// started per hour of the week (UTC, Sunday first).
type Source interface {
	Rollups(ctx context.Context, workspaceID string, f Filter, fn func(Bucket) error) error
	HourOfWeek(ctx context.Context, workspaceID string, f Filter) ([7][24]int64, error)
	AssistantNames(ctx context.Context, workspaceID string) (map[string]string, error)
}

// Report is the metrics answer.
type Report struct {
	TotalConversations      int64
	TotalMessages           int64
	MessagesPerConversation float64
	ResponseRate            float64
	AvgResponseTimeMS       float64
	CostPerConversationUSD  float64
	TotalCostUSD            float64
	TokensIn                int64
	TokensOut               int64
	ByDay                   []Day
	ByHour                  []Hour
	ByWeekdayHour           [7][24]int64 // conversations started, Sunday first, UTC
	ByAssistant             []AssistantRow
}

// Day is one calendar day (UTC).
type Day struct {
	Date          string
	Conversations int64
	Messages      int64
	CostMicros    int64
}

// Hour is one hour of the day (UTC), over the whole range.
type Hour struct {
	Hour          int
	Conversations int64
}

// AssistantRow compares assistants.
type AssistantRow struct {
	AssistantID            string
	Name                   string
	Conversations          int64
	Messages               int64
	ResponseRate           float64
	AvgResponseTimeMS      float64
	CostPerConversationUSD float64
	CostMicros             int64
}

type totals struct {
	conversations, messages, inbound, answered, responseMS, tokensIn, tokensOut, cost int64
}

func (t *totals) add(b Bucket) {
	t.conversations += b.Conversations
	t.messages += b.Messages
	t.inbound += b.Inbound
	t.answered += b.Answered
	t.responseMS += b.ResponseMSSum
	t.tokensIn += b.TokensIn
	t.tokensOut += b.TokensOut
	t.cost += b.CostMicros
}

func (t *totals) responseRate() float64 { return ratio(t.answered, t.inbound) }
func (t *totals) avgResponse() float64  { return ratio(t.responseMS, t.answered) }
func (t *totals) costPerConv() float64  { return ratio(t.cost, t.conversations) / 1e6 }

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Compute builds the report for a workspace.
func Compute(ctx context.Context, src Source, workspaceID string, f Filter) (*Report, error) {
	// The hour-of-week histogram scans the same rows as the daily sums: both run at once, each on
	// its own connection.
	type weekResult struct {
		w   [7][24]int64
		err error
	}
	weekc := make(chan weekResult, 1)
	go func() {
		w, err := src.HourOfWeek(ctx, workspaceID, f)
		weekc <- weekResult{w, err}
	}()
	var all totals
	days := map[string]*Day{}
	perAssistant := map[string]*totals{}
	err := src.Rollups(ctx, workspaceID, f, func(b Bucket) error {
		all.add(b)
		key := b.Day.UTC().Format("2006-01-02")
		d := days[key]
		if d == nil {
			d = &Day{Date: key}
			days[key] = d
		}
		d.Conversations += b.Conversations
		d.Messages += b.Messages
		d.CostMicros += b.CostMicros
		a := perAssistant[b.AssistantID]
		if a == nil {
			a = &totals{}
			perAssistant[b.AssistantID] = a
		}
		a.add(b)
		return nil
	})
	wr := <-weekc
	if err != nil {
		return nil, err
	}
	if wr.err != nil {
		return nil, wr.err
	}
	weekly := wr.w
	var hours [24]int64
	for wd := range weekly {
		for h, n := range weekly[wd] {
			hours[h] += n
		}
	}
	names, err := src.AssistantNames(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	r := &Report{
		TotalConversations: all.conversations, TotalMessages: all.messages,
		MessagesPerConversation: ratio(all.messages, all.conversations), ResponseRate: all.responseRate(),
		AvgResponseTimeMS: all.avgResponse(), CostPerConversationUSD: all.costPerConv(), TotalCostUSD: float64(all.cost) / 1e6,
		TokensIn: all.tokensIn, TokensOut: all.tokensOut, ByWeekdayHour: weekly,
		ByDay: []Day{}, ByHour: make([]Hour, 24), ByAssistant: []AssistantRow{},
	}
	for _, d := range days {
		r.ByDay = append(r.ByDay, *d)
	}
	sort.Slice(r.ByDay, func(i, j int) bool { return r.ByDay[i].Date < r.ByDay[j].Date })
	for h := range hours {
		r.ByHour[h] = Hour{Hour: h, Conversations: hours[h]}
	}
	for id, t := range perAssistant {
		if id == "" {
			continue
		}
		r.ByAssistant = append(r.ByAssistant, AssistantRow{
			AssistantID: id, Name: names[id], Conversations: t.conversations, Messages: t.messages,
			ResponseRate: t.responseRate(), AvgResponseTimeMS: t.avgResponse(), CostPerConversationUSD: t.costPerConv(), CostMicros: t.cost,
		})
	}
	sort.Slice(r.ByAssistant, func(i, j int) bool {
		if r.ByAssistant[i].Conversations != r.ByAssistant[j].Conversations {
			return r.ByAssistant[i].Conversations > r.ByAssistant[j].Conversations
		}
		return r.ByAssistant[i].AssistantID < r.ByAssistant[j].AssistantID
	})
	return r, nil
}
