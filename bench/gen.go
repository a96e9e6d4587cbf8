package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/store"
	"github.com/parley-hq/parley/internal/terms"
)

// genConfig sizes the generated data.
type genConfig struct {
	Conversations int
	MessagesPer   int // average messages per conversation
	Days          int
	Seed          uint64
}

var (
	types      = []string{"whatsapp", "whatsapp", "whatsapp", "whatsapp", "whatsapp", "widget", "widget", "widget", "api", "test"}
	openers    = []string{"Hi, I need help with my order", "Hello! Do you ship to Portugal?", "My package has not arrived yet", "Can I change the delivery address?", "What are your opening hours?", "I want a refund for order", "Is the blue jacket available in size M?", "How long does delivery take?", "I was charged twice", "Can I talk to a person please"}
	words      = strings.Fields("order delivery refund package tracking address invoice payment card shipping return exchange size color available store opening hours weekend discount code account password email phone receipt warranty repair appointment booking cancel reschedule price stock jacket shoes bag")
	replies    = []string{"Hello! I'd be happy to help. What's your order number?", "Let me check that for you.", "Your order is in transit and should arrive tomorrow.", "We open at 9am and close at 6pm, Monday to Saturday.", "I've noted your details. Is there anything else I can help with?", "I'm connecting you with a member of our team now."}
	toolNames  = []string{"search_knowledge", "set_variable", "transfer_to_human", "schedule_appointment"}
	varNames   = []string{"customer_name", "email", "order_id", "phone", "issue_type", "plan"}
	varSources = []string{"prechat", "extracted", "flow", "post_conversation"}
)

// vocabulary is Zipf-distributed like real text: a few words are everywhere, most are rare. The
// domain words come first (the most frequent), then synthetic ones.
var vocabulary = func() []string {
	v := append([]string(nil), words...)
	for i := 0; len(v) < 20000; i++ {
		v = append(v, fmt.Sprintf("w%x", i*2654435761%1000003))
	}
	return v
}()

// textOfLength returns a message of a realistic length (most short, some long) and, now and then, an
// order number: what people search for.
func textOfLength(r *rand.Rand, zipf *rand.Zipf, opener string) string {
	var n int
	switch p := r.IntN(100); {
	case p < 60:
		n = 4 + r.IntN(12)
	case p < 90:
		n = 15 + r.IntN(30)
	default:
		n = 45 + r.IntN(120)
	}
	var b strings.Builder
	if opener != "" {
		b.WriteString(opener)
		b.WriteByte(' ')
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocabulary[zipf.Uint64()])
	}
	if r.IntN(20) == 0 {
		fmt.Fprintf(&b, " ORD-%06d", r.IntN(1_000_000))
	}
	return b.String()
}

type rollKey struct {
	bucket    int64
	assistant string
	typ       string
}

type rollVal struct {
	conversations, messages, inbound, answered, responseMS, tokensIn, tokensOut, cost int64
}

// generate fills a migrated database with conversations of every type, their messages (tool calls
// on some), variables and the rollups the server maintains, in large transactions.
func generate(ctx context.Context, st *store.Store, workspaceID string, cfg genConfig) (int64, error) {
	db := st.DB()
	r := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	zipf := rand.NewZipf(r, 1.07, 2, uint64(len(vocabulary)-1))
	now := time.Now().UTC()
	assistants := make([]string, 5)
	for i := range assistants {
		assistants[i] = ids.New()
		if _, err := db.ExecContext(ctx, `INSERT INTO assistants (id, workspace_id, name, system_prompt, model, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)`,
			assistants[i], workspaceID, fmt.Sprintf("Assistant %d", i+1), "You are a helpful support assistant.", []string{"builtin", "gpt-4o-mini", "gpt-4.1-mini"}[i%3], now.UnixMilli()); err != nil {
			return 0, fmt.Errorf("assistant: %w", err)
		}
	}
	rolls := map[rollKey]*rollVal{}
	roll := func(at int64, a, typ string) *rollVal {
		k := rollKey{at / 1000 / 3600 * 3600, a, typ}
		v := rolls[k]
		if v == nil {
			v = &rollVal{}
			rolls[k] = v
		}
		return v
	}
	// Conversations are created in time order, as on a real server, whose pks (and their messages'
	// rows) follow creation: a page of the list, newest activity first, then finds its
	// conversations and their messages near each other in the tables, as it would there. Busier in
	// the day (UTC 8–20) than at night, spread over the period.
	createdAt := make([]int64, cfg.Conversations)
	for i := range createdAt {
		day := r.IntN(cfg.Days)
		hour := 8 + r.IntN(12)
		if r.IntN(4) == 0 {
			hour = r.IntN(24)
		}
		at := now.AddDate(0, 0, -day).Truncate(24 * time.Hour).Add(time.Duration(hour)*time.Hour + time.Duration(r.IntN(3600))*time.Second)
		if at.After(now) {
			at = now.Add(-time.Duration(r.IntN(3600)) * time.Second)
		}
		createdAt[i] = at.UnixNano()
	}
	slices.Sort(createdAt)
	var total int64
	const batch = 2000
	for start := 0; start < cfg.Conversations; start += batch {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return total, err
		}
		insConv, err := tx.PrepareContext(ctx, `INSERT INTO conversations (id, workspace_id, type, status, assistant_id, customer_id, customer_name, channel_id,
			message_count, tokens_in, tokens_out, cost_micros, last_message_preview, last_message_at, last_inbound_at, created_at, updated_at, ended_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING pk`)
		if err != nil {
			return total, err
		}
		insMsg, err := tx.PrepareContext(ctx, `INSERT INTO messages (id, workspace_id, conversation_pk, external_id, role, direction, type, text, tool_calls,
			status, tokens_in, tokens_out, cost_micros, latency_ms, answered_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`)
		if err != nil {
			return total, err
		}
		insVar, err := tx.PrepareContext(ctx, `INSERT INTO variables (conversation_pk, name, value, source, updated_at) VALUES ($1, $2, $3, $4, $5)`)
		if err != nil {
			return total, err
		}
		end := min(start+batch, cfg.Conversations)
		for i := start; i < end; i++ {
			typ := types[r.IntN(len(types))]
			asst := assistants[r.IntN(len(assistants))]
			created := time.Unix(0, createdAt[i]).UTC()
			customer := fmt.Sprintf("user-%d", r.IntN(cfg.Conversations))
			if typ == "whatsapp" {
				customer = fmt.Sprintf("3519%08d", r.IntN(100_000_000))
			}
			n := 2 + r.IntN(max(1, 2*cfg.MessagesPer-3))
			convID := ids.New()
			status := []string{"active", "ended", "ended", "ended", "handoff"}[r.IntN(5)]
			at := created
			var convPK int64
			if err := insConv.QueryRowContext(ctx, convID, workspaceID, typ, status, asst, customer, "", "", 0, 0, 0, 0, "", at.UnixMilli(), nil, created.UnixMilli(), created.UnixMilli(), nil).Scan(&convPK); err != nil {
				return total, fmt.Errorf("conversation: %w", err)
			}
			roll(created.UnixMilli(), asst, typ).conversations++
			var count, tin, tout, cost int64
			var preview string
			var lastIn sql.NullInt64
			var waiting []int64
			var sig []byte // the conversation's term signature, as the store keeps it
			times := make([]time.Time, n)
			for j := range times {
				at = at.Add(time.Duration(2+r.IntN(90)) * time.Second)
				times[j] = at
			}
			for j := 0; j < n; j++ {
				ms := times[j].UnixMilli()
				inbound := j%2 == 0
				var role, dir, text, ext string
				var calls any
				var mIn, mOut, mCost int64
				var latency any
				var answered any
				if inbound {
					role, dir = "user", "inbound"
					opener := ""
					if j == 0 {
						opener = openers[r.IntN(len(openers))]
					}
					text = textOfLength(r, zipf, opener)
					lastIn = sql.NullInt64{Int64: ms, Valid: true}
					waiting = append(waiting, ms)
					if typ == "whatsapp" {
						ext = "wamid.bench." + ids.New()
					}
				} else {
					role, dir = "assistant", "outbound"
					text = replies[r.IntN(len(replies))]
					mIn, mOut = int64(200+r.IntN(1500)), int64(20+r.IntN(200))
					mCost = (mIn*150_000 + mOut*600_000 + 500_000) / 1_000_000
					latency = int64(300 + r.IntN(2500))
					if r.IntN(7) == 0 {
						name := toolNames[r.IntN(len(toolNames))]
						b, _ := json.Marshal([]map[string]any{{"id": "call_" + ids.New()[:8], "name": name, "arguments": map[string]string{"query": words[r.IntN(len(words))]}, "result": `{"ok":true}`}})
						calls = string(b)
					}
					for _, w := range waiting {
						v := roll(w, asst, typ)
						v.answered++
						v.responseMS += ms - w
					}
					waiting = waiting[:0]
				}
				if inbound && j+1 < n {
					answered = times[j+1].UnixMilli() // the assistant's next message answers it
				}
				var extArg any
				if ext != "" {
					extArg = ext
				}
				if _, err := insMsg.ExecContext(ctx, ids.New(), workspaceID, convPK, extArg, role, dir, "text", text, calls, "", mIn, mOut, mCost, latency, answered, ms); err != nil {
					return total, fmt.Errorf("message: %w", err)
				}
				v := roll(ms, asst, typ)
				v.messages++
				v.tokensIn += mIn
				v.tokensOut += mOut
				v.cost += mCost
				if inbound {
					v.inbound++
				}
				count++
				tin += mIn
				tout += mOut
				cost += mCost
				preview = text
				sig = terms.Add(sig, text)
				total++
			}
			if len(preview) > 160 {
				preview = preview[:160]
			}
			var ended any
			if status == "ended" {
				ended = at.UnixMilli()
			}
			setTerms, args := "", []any{count, tin, tout, cost, preview, at.UnixMilli(), lastIn, ended, convPK}
			if st.Dialect() == "sqlite" {
				setTerms, args = ", terms = $10", append(args, sig)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE conversations SET message_count = $1, tokens_in = $2, tokens_out = $3, cost_micros = $4, last_message_preview = $5,
				last_message_at = $6, last_inbound_at = $7, updated_at = $6, ended_at = $8`+setTerms+` WHERE pk = $9`, args...); err != nil {
				return total, err
			}
			for k := 0; k < 2+r.IntN(3); k++ {
				name := varNames[r.IntN(len(varNames))]
				if _, err := insVar.ExecContext(ctx, convPK, name, words[r.IntN(len(words))], varSources[r.IntN(len(varSources))], created.UnixMilli()); err != nil && !strings.Contains(err.Error(), "UNIQUE") && !strings.Contains(err.Error(), "23505") {
					return total, err
				}
			}
		}
		insConv.Close()
		insMsg.Close()
		insVar.Close()
		if err := tx.Commit(); err != nil {
			return total, err
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return total, err
	}
	for k, v := range rolls {
		if _, err := tx.ExecContext(ctx, `INSERT INTO rollup_hourly (workspace_id, bucket, assistant_id, type, conversations, messages, inbound, answered, response_ms_sum, tokens_in, tokens_out, cost_micros)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, workspaceID, k.bucket, k.assistant, k.typ, v.conversations, v.messages, v.inbound, v.answered, v.responseMS, v.tokensIn, v.tokensOut, v.cost); err != nil {
			return total, err
		}
	}
	if err := tx.Commit(); err != nil {
		return total, err
	}
	// The store maintains these as it writes; data loaded around it gets them here.
	if err := st.IndexText(ctx, 0); err != nil {
		return total, err
	}
	for more := true; more; { // as a server's background merging leaves it
		var err error
		if more, err = st.MergeTextIndex(ctx, time.Minute); err != nil {
			return total, err
		}
	}
	if err := st.RebuildDailyRollups(ctx); err != nil {
		return total, err
	}
	return total, st.RebuildInsights(ctx)
}
