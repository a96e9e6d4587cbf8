package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/insights"
)

// Insight facts (conversation_insights, migration 0009): one row per conversation with when it
// ended, its handoffs, the first human reply after the first handoff and when the customer came
// back, kept in the same transaction as the change that makes them true. The write path calls
// two functions: insertInsightFacts when a conversation is created, insightFactsOnApply from
// Apply. Most changes (a message in an active conversation) touch nothing here.

// insertInsightFacts adds the facts row of a new conversation.
func insertInsightFacts(tx *sql.Tx, pk int64, c *conversation.Conversation) error {
	if _, err := tx.Exec(`INSERT INTO conversation_insights (conversation_pk, workspace_id, assistant_id, type, customer_id, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, pk, c.WorkspaceID, c.AssistantID, string(c.Type), c.CustomerID, ms(c.CreatedAt)); err != nil {
		return fmt.Errorf("insert insight facts: %w", err)
	}
	return nil
}

// insightFactsOnApply records what a change Apply is storing means for the conversation's facts:
// c is the conversation as it was before the change, stored the messages actually inserted,
// firstInbound whether the conversation had no customer message before them.
func insightFactsOnApply(tx *sql.Tx, pk int64, c *conversation.Conversation, ch conversation.Change, stored []*conversation.Message, now time.Time, firstInbound bool) error {
	var firstUser, firstAgent, latest time.Time
	for _, m := range stored {
		switch {
		case m.Role == conversation.RoleUser && m.Direction == conversation.Inbound:
			if firstUser.IsZero() || m.CreatedAt.Before(firstUser) {
				firstUser = m.CreatedAt
			}
		case m.Role == conversation.RoleAgent:
			if firstAgent.IsZero() || m.CreatedAt.Before(firstAgent) {
				firstAgent = m.CreatedAt
			}
		}
		if m.CreatedAt.After(latest) {
			latest = m.CreatedAt
		}
	}
	if !firstUser.IsZero() {
		// The customer writes in an ended conversation: they came back.
		if c.Status == conversation.StatusEnded {
			if _, err := tx.Exec(`UPDATE conversation_insights SET returned_at = $1 WHERE conversation_pk = $2 AND (returned_at IS NULL OR returned_at > $1)`,
				ms(firstUser), pk); err != nil {
				return fmt.Errorf("insight facts: returned: %w", err)
			}
		}
		// Their first message in a new conversation: they came back to each of their ended ones.
		if firstInbound && c.CustomerID != "" {
			if _, err := tx.Exec(`UPDATE conversation_insights SET returned_at = $1 WHERE workspace_id = $2 AND customer_id = $3 AND type = $4
				AND ended_at IS NOT NULL AND returned_at IS NULL AND ended_at <= $1 AND conversation_pk <> $5`,
				ms(firstUser), c.WorkspaceID, c.CustomerID, string(c.Type), pk); err != nil {
				return fmt.Errorf("insight facts: customer returned: %w", err)
			}
		}
	}
	changed := ch.Status != "" && ch.Status != c.Status
	if changed && ch.Status == conversation.StatusHandoff {
		// A handoff by the assistant comes with the step that called the tool: its time.
		at := now
		if !latest.IsZero() {
			at = latest
		}
		if _, err := tx.Exec(`UPDATE conversation_insights SET first_handoff_at = CASE WHEN handoff_count = 0 THEN $1 ELSE first_handoff_at END,
			handoff_count = handoff_count + 1 WHERE conversation_pk = $2`, ms(at), pk); err != nil {
			return fmt.Errorf("insight facts: handoff: %w", err)
		}
	}
	if !firstAgent.IsZero() {
		if _, err := tx.Exec(`UPDATE conversation_insights SET first_human_reply_at = $1 WHERE conversation_pk = $2 AND handoff_count > 0
			AND first_human_reply_at IS NULL AND (first_handoff_at IS NULL OR first_handoff_at <= $1)`, ms(firstAgent), pk); err != nil {
			return fmt.Errorf("insight facts: human reply: %w", err)
		}
	}
	if changed && ch.Status == conversation.StatusEnded {
		if _, err := tx.Exec(`UPDATE conversation_insights SET ended_at = $1 WHERE conversation_pk = $2`, ms(now), pk); err != nil {
			return fmt.Errorf("insight facts: ended: %w", err)
		}
	}
	return nil
}

// RebuildInsights recomputes every conversation's insight facts from the conversations and their
// messages, with the same statements the migration back-filled them with (for data loaded around
// the write path, such as the benchmark generator's).
func (s *Store) RebuildInsights(ctx context.Context) error {
	body, err := migrationFS.ReadFile("migrations/" + s.dialect + "/0009_insights.sql")
	if err != nil {
		return err
	}
	_, rest, ok := strings.Cut(string(body), "-- backfill:begin")
	backfill, _, ok2 := strings.Cut(rest, "-- backfill:end")
	if !ok || !ok2 {
		return fmt.Errorf("rebuild insights: the migration has no back-fill section")
	}
	if i := strings.IndexByte(backfill, '\n'); i >= 0 {
		backfill = backfill[i+1:] // the rest of the marker line
	}
	return s.Write(ctx, func(tx *sql.Tx) error {
		// Deleting the facts takes their parts off the daily rows; the emptied rows go too.
		if _, err := tx.Exec(`DELETE FROM conversation_insights`); err != nil {
			return fmt.Errorf("rebuild insights: %w", err)
		}
		if _, err := tx.Exec(`DELETE FROM conversation_insights_daily`); err != nil {
			return fmt.Errorf("rebuild insights: %w", err)
		}
		if _, err := tx.Exec(backfill); err != nil {
			return fmt.Errorf("rebuild insights: %w", err)
		}
		return nil
	})
}

// dayMS is a day in unix milliseconds.
const dayMS = 86_400_000

// factsRange is a range of creation times (ms) over conversation_insights; nil bounds are open.
type factsRange struct{ from, to *int64 }

// insightWhere is the WHERE clause of an insights filter over conversation_insights (or, with
// dayColumn, over conversation_insights_daily by day).
func insightWhere(q *sqlBuilder, workspaceID string, f insights.Filter, r factsRange, dayColumn bool) string {
	conds := []string{`workspace_id = ` + q.arg(workspaceID)}
	col := `created_at`
	if dayColumn {
		col = `day`
	}
	if r.from != nil {
		conds = append(conds, col+` >= `+q.arg(*r.from))
	}
	if r.to != nil {
		conds = append(conds, col+` < `+q.arg(*r.to))
	}
	if f.AssistantID != "" {
		conds = append(conds, `assistant_id = `+q.arg(f.AssistantID))
	}
	if len(f.Types) > 0 {
		ph := make([]string, len(f.Types))
		for i, t := range f.Types {
			ph[i] = q.arg(t)
		}
		conds = append(conds, `type IN (`+strings.Join(ph, ", ")+`)`)
	}
	return strings.Join(conds, " AND ")
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// splitDays splits the filter's range into the whole days inside it (read from the daily rollup;
// wholeDays false when there are none) and the parts of days at its ends (read from the facts).
func splitDays(f insights.Filter) (days factsRange, wholeDays bool, partial []factsRange) {
	whole := wholeRange(f)
	lo, hi := whole.from, whole.to
	if lo != nil {
		d := floorDiv(*lo+dayMS-1, dayMS) // the first whole day
		days.from = &d
	}
	if hi != nil {
		d := floorDiv(*hi, dayMS) // the day after the last whole day
		days.to = &d
	}
	if days.from != nil && days.to != nil && *days.from >= *days.to {
		return factsRange{}, false, []factsRange{{lo, hi}} // no whole day: all from the facts
	}
	if lo != nil && *lo != *days.from*dayMS {
		end := *days.from * dayMS
		partial = append(partial, factsRange{lo, &end})
	}
	if hi != nil && *hi != *days.to*dayMS {
		start := *days.to * dayMS
		partial = append(partial, factsRange{&start, hi})
	}
	return days, true, partial
}

// InsightGroups sums the facts of the filtered conversations per assistant, type and day started:
// whole days from the daily rollup, the ends of a range that cut a day from the facts; then the
// window's part from the facts, through partial indexes that hold only the rows concerned: clean
// ends whose customer came back within the window are not resolved, and clean ends less than a
// window ago are pending. The rows are summed by the caller (a group may come several times).
func (s *Store) InsightGroups(ctx context.Context, workspaceID string, f insights.Filter, fn func(insights.Group) error) error {
	// scan reads rows into groups (dst names the columns' destinations) and hands each on.
	scan := func(query string, args []any, dst func(*insights.Group) []any, adjust func(*insights.Group)) error {
		rows, err := s.read.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("read insight facts: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var g insights.Group
			if err := rows.Scan(dst(&g)...); err != nil {
				return err
			}
			if adjust != nil {
				adjust(&g)
			}
			if err := fn(g); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	counts := func(g *insights.Group) []any {
		// Resolved starts as every clean end; the returns within the window are taken off below.
		return []any{&g.AssistantID, &g.Type, &g.Day, &g.Conversations, &g.Ended, &g.Resolved, &g.Handoffs, &g.HandoffEvents,
			&g.UnansweredHandoffs, &g.RepliedHandoffs, &g.ReplyMSSum}
	}
	days, wholeDays, partial := splitDays(f)
	var q sqlBuilder
	if wholeDays {
		if err := scan(`SELECT assistant_id, type, day, CAST(SUM(conversations) AS BIGINT), CAST(SUM(ended) AS BIGINT), CAST(SUM(clean_ended) AS BIGINT),
		CAST(SUM(handoffs) AS BIGINT), CAST(SUM(handoff_events) AS BIGINT), CAST(SUM(unanswered_handoffs) AS BIGINT),
		CAST(SUM(replied_handoffs) AS BIGINT), CAST(SUM(reply_ms_sum) AS BIGINT)
		FROM conversation_insights_daily WHERE `+insightWhere(&q, workspaceID, f, days, true)+` GROUP BY assistant_id, type, day`, q.args, counts, nil); err != nil {
			return err
		}
	}
	for _, r := range partial {
		var q sqlBuilder
		if err := scan(`SELECT assistant_id, type, created_at / 86400000, CAST(COUNT(*) AS BIGINT),
			CAST(SUM(CASE WHEN ended_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
			CAST(SUM(CASE WHEN ended_at IS NOT NULL AND handoff_count = 0 THEN 1 ELSE 0 END) AS BIGINT),
			CAST(SUM(CASE WHEN handoff_count > 0 THEN 1 ELSE 0 END) AS BIGINT),
			CAST(SUM(handoff_count) AS BIGINT),
			CAST(SUM(CASE WHEN handoff_count > 0 AND first_human_reply_at IS NULL THEN 1 ELSE 0 END) AS BIGINT),
			CAST(SUM(CASE WHEN first_handoff_at IS NOT NULL AND first_human_reply_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT),
			CAST(SUM(CASE WHEN first_handoff_at IS NOT NULL AND first_human_reply_at IS NOT NULL THEN first_human_reply_at - first_handoff_at ELSE 0 END) AS BIGINT)
			FROM conversation_insights`+s.indexedBy("conversation_insights_created")+` WHERE `+insightWhere(&q, workspaceID, f, r, false)+
			` GROUP BY assistant_id, type, created_at / 86400000`, q.args, counts, nil); err != nil {
			return err
		}
	}
	all := wholeRange(f)
	q = sqlBuilder{}
	w := q.arg(f.Window.Milliseconds())
	if err := scan(`SELECT assistant_id, type, created_at / 86400000, CAST(COUNT(*) AS BIGINT) FROM conversation_insights`+s.indexedBy("conversation_insights_returned")+`
		WHERE `+insightWhere(&q, workspaceID, f, all, false)+` AND returned_at IS NOT NULL AND handoff_count = 0 AND ended_at IS NOT NULL
		AND returned_at - ended_at <= `+w+` GROUP BY assistant_id, type, created_at / 86400000`, q.args,
		func(g *insights.Group) []any { return []any{&g.AssistantID, &g.Type, &g.Day, &g.Resolved} },
		func(g *insights.Group) { g.Resolved = -g.Resolved }); err != nil {
		return err
	}
	q = sqlBuilder{}
	cut := q.arg(ms(f.Now) - f.Window.Milliseconds())
	return scan(`SELECT assistant_id, type, created_at / 86400000, CAST(COUNT(*) AS BIGINT) FROM conversation_insights`+s.indexedBy("conversation_insights_recent_end")+`
		WHERE `+insightWhere(&q, workspaceID, f, all, false)+` AND returned_at IS NULL AND handoff_count = 0 AND ended_at IS NOT NULL
		AND ended_at > `+cut+` GROUP BY assistant_id, type, created_at / 86400000`, q.args,
		func(g *insights.Group) []any { return []any{&g.AssistantID, &g.Type, &g.Day, &g.ResolutionPending} }, nil)
}

// wholeRange is the filter's range of creation times.
func wholeRange(f insights.Filter) factsRange {
	var r factsRange
	if f.From != nil {
		v := ms(*f.From)
		r.from = &v
	}
	if f.To != nil {
		v := ms(*f.To)
		r.to = &v
	}
	return r
}

// indexedBy pins SQLite to the partial index a query is written for (its planner, without
// statistics, may walk the wider index of the same range instead); PostgreSQL plans by its own.
func (s *Store) indexedBy(index string) string {
	if s.dialect == "sqlite" {
		return " INDEXED BY " + index
	}
	return ""
}

// HandoffReplyTimes streams the time from each filtered conversation's first handoff to the first
// human reply after it.
func (s *Store) HandoffReplyTimes(ctx context.Context, workspaceID string, f insights.Filter, fn func(insights.ReplyTime) error) error {
	var q sqlBuilder
	where := insightWhere(&q, workspaceID, f, wholeRange(f), false)
	rows, err := s.read.QueryContext(ctx, `SELECT assistant_id, type, created_at / 86400000, first_human_reply_at - first_handoff_at
		FROM conversation_insights`+s.indexedBy("conversation_insights_replied")+` WHERE `+where+` AND first_handoff_at IS NOT NULL AND first_human_reply_at IS NOT NULL`, q.args...)
	if err != nil {
		return fmt.Errorf("read reply times: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r insights.ReplyTime
		if err := rows.Scan(&r.AssistantID, &r.Type, &r.Day, &r.MS); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// questionBatch is how many conversations the question scan reads at a time.
const questionBatch = 256

// QuestionMessages streams the messages (customer, assistant, system) of the conversations active
// in the range, the most recently active first, a page of conversations at a time from one snapshot.
func (s *Store) QuestionMessages(ctx context.Context, workspaceID string, f insights.Filter, fn func(insights.Message) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.dialect == "postgres" {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.read.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("question scan: %w", err)
	}
	defer tx.Rollback()
	maxQuestion := strconv.Itoa(insights.MaxQuestionRunes) // only the start of a long message is analysed
	toolCalls := `m.tool_calls`
	if s.dialect == "postgres" {
		toolCalls = `m.tool_calls::text`
	}
	var afterAt, afterPK int64
	first := true
	for {
		var q sqlBuilder
		conds := []string{`c.workspace_id = ` + q.arg(workspaceID)}
		if f.AssistantID != "" {
			conds = append(conds, `c.assistant_id = `+q.arg(f.AssistantID))
		}
		if len(f.Types) > 0 {
			ph := make([]string, len(f.Types))
			for i, t := range f.Types {
				ph[i] = q.arg(t)
			}
			conds = append(conds, `c.type IN (`+strings.Join(ph, ", ")+`)`)
		}
		if f.From != nil {
			conds = append(conds, `c.last_message_at >= `+q.arg(ms(*f.From)))
		}
		if f.To != nil {
			conds = append(conds, `c.created_at < `+q.arg(ms(*f.To)))
		}
		if !first {
			a, b, c := q.arg(afterAt), q.arg(afterAt), q.arg(afterPK)
			conds = append(conds, `(c.last_message_at < `+a+` OR (c.last_message_at = `+b+` AND c.pk < `+c+`))`)
		}
		rows, err := tx.QueryContext(ctx, `SELECT c.pk, c.id, c.assistant_id, c.last_message_at FROM conversations c WHERE `+strings.Join(conds, " AND ")+
			` ORDER BY c.last_message_at DESC, c.pk DESC LIMIT `+q.arg(questionBatch), q.args...)
		if err != nil {
			return fmt.Errorf("question scan: conversations: %w", err)
		}
		type conv struct {
			pk            int64
			id, assistant string
		}
		var convs []conv
		for rows.Next() {
			var c conv
			if err := rows.Scan(&c.pk, &c.id, &c.assistant, &afterAt); err != nil {
				rows.Close()
				return err
			}
			afterPK = c.pk
			convs = append(convs, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(convs) == 0 {
			return nil
		}
		first = false
		var mq sqlBuilder
		ph := make([]string, len(convs))
		for i, c := range convs {
			ph[i] = mq.arg(c.pk)
		}
		since := ""
		if f.From != nil {
			since = ` AND m.created_at >= ` + mq.arg(ms(*f.From))
		}
		mrows, err := tx.QueryContext(ctx, `SELECT m.conversation_pk, m.role, CASE WHEN m.role = 'user' AND m.type = 'text' THEN substr(m.text, 1, `+maxQuestion+`) ELSE '' END,
			CASE WHEN m.role = 'assistant' THEN `+toolCalls+` END, CASE WHEN m.error IS NULL THEN 0 ELSE 1 END, m.created_at
			FROM messages m WHERE m.conversation_pk IN (`+strings.Join(ph, ", ")+`) AND m.role IN ('user', 'assistant', 'system')`+since+`
			ORDER BY m.conversation_pk, m.pk`, mq.args...)
		if err != nil {
			return fmt.Errorf("question scan: messages: %w", err)
		}
		byConv := make(map[int64][]insights.Message, len(convs))
		for mrows.Next() {
			var pk, at int64
			var failed int
			var m insights.Message
			var calls sql.NullString
			if err := mrows.Scan(&pk, &m.Role, &m.Text, &calls, &failed, &at); err != nil {
				mrows.Close()
				return err
			}
			m.ToolCalls, m.Failed, m.CreatedAt = calls.String, failed != 0, fromMS(at)
			byConv[pk] = append(byConv[pk], m)
		}
		mrows.Close()
		if err := mrows.Err(); err != nil {
			return err
		}
		for _, c := range convs {
			for _, m := range byConv[c.pk] {
				m.ConversationID, m.AssistantID = c.id, c.assistant
				if err := fn(m); err != nil {
					return err
				}
			}
		}
		if len(convs) < questionBatch {
			return nil
		}
	}
}

// AssistantKnowledge maps each assistant of the workspace (deleted ones too) to its knowledge bases.
func (s *Store) AssistantKnowledge(ctx context.Context, workspaceID string) (map[string][]string, error) {
	col := `knowledge_base_ids`
	if s.dialect == "postgres" {
		col = `knowledge_base_ids::text`
	}
	rows, err := s.read.QueryContext(ctx, `SELECT id, `+col+` FROM assistants WHERE workspace_id = $1`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("read assistants' knowledge: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, err
		}
		var kbs []string
		if err := json.Unmarshal([]byte(raw), &kbs); err != nil {
			return nil, fmt.Errorf("assistant %s knowledge_base_ids: %w", id, err)
		}
		if len(kbs) > 0 {
			out[id] = kbs
		}
	}
	return out, rows.Err()
}

// KnowledgeTexts returns up to maxDocuments documents of the knowledge bases (oldest first) with
// the text of their first maxChunks passages.
func (s *Store) KnowledgeTexts(ctx context.Context, workspaceID string, kbIDs []string, maxDocuments, maxChunks int) ([]insights.DocumentText, error) {
	if len(kbIDs) == 0 {
		return nil, nil
	}
	in, inArgs := inList(4, kbIDs)
	rows, err := s.read.QueryContext(ctx, `SELECT d.knowledge_base_id, d.id, d.title, c.content FROM
		(SELECT id, knowledge_base_id, title, created_at FROM kb_documents WHERE workspace_id = $1 AND knowledge_base_id IN `+in+`
		 ORDER BY created_at, id LIMIT $2) d
		JOIN kb_chunks c ON c.document_id = d.id AND c.position < $3 ORDER BY d.created_at, d.id, c.position`,
		append([]any{workspaceID, maxDocuments, maxChunks}, inArgs...)...)
	if err != nil {
		return nil, fmt.Errorf("read knowledge texts: %w", err)
	}
	defer rows.Close()
	var out []insights.DocumentText
	for rows.Next() {
		var d insights.DocumentText
		if err := rows.Scan(&d.KnowledgeBaseID, &d.DocumentID, &d.Title, &d.Content); err != nil {
			return nil, err
		}
		if n := len(out); n > 0 && out[n-1].DocumentID == d.DocumentID {
			out[n-1].Content += "\n" + d.Content
			continue
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
