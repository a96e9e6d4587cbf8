package replay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/replay"
	"github.com/parley-hq/parley/internal/testenv"
)

// exportRow is a JSONL export row, as a consumer outside Parley reads it.
type exportRow struct {
	ConversationID   string                  `json:"conversation_id"`
	ID               string                  `json:"id"`
	Role             string                  `json:"role"`
	Direction        string                  `json:"direction"`
	Type             string                  `json:"type"`
	Text             string                  `json:"text"`
	Media            *conversation.Media     `json:"media"`
	ToolCalls        []conversation.ToolCall `json:"tool_calls"`
	Error            *conversation.MessageError
	CreatedAt        time.Time `json:"created_at"`
	TokensIn         int64     `json:"tokens_in"`
	TokensOut        int64     `json:"tokens_out"`
	CostUSD          float64   `json:"cost_usd"`
	AssistantVersion int       `json:"assistant_version"`
	Conversation     struct {
		ID          string            `json:"id"`
		Type        string            `json:"type"`
		AssistantID string            `json:"assistant_id"`
		Metadata    map[string]string `json:"metadata"`
		Variables   []struct {
			Name, Value, Source string
			UpdatedAt           time.Time `json:"updated_at"`
		} `json:"variables"`
	} `json:"conversation"`
}

// TestExportIsReplayable exports a conversation with variables of two sources, tool calls, a voice
// note with its transcript and assistant versions as JSONL, rebuilds the conversation from the
// export alone, and replays the rebuilt copy: the turns are exactly those a replay of the stored
// conversation reports.
func TestExportIsReplayable(t *testing.T) {
	e := testenv.New(t)
	ctx := context.Background()
	aid := e.MustDo(201, "POST", "/api/v1/assistants", map[string]any{"name": "Ava", "system_prompt": oldPrompt, "model": "builtin",
		"tools": []string{"set_variable", "transfer_to_human"}})["id"].(string)
	conv := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api", "customer_id": "crm-9",
		"variables": map[string]any{"plan": "gold"}})["id"].(string)
	post(t, e, conv, "Hello")
	post(t, e, conv, "My order ORD-12345 is late, email me at jo@example.com")
	// A voice note from the customer, with its transcript, stored as a channel stores it.
	if _, _, err := e.App.Store.Apply(ctx, e.WorkspaceID, conv, conversation.Change{Messages: []*conversation.Message{{
		ID: ids.New(), ConversationID: conv, Role: conversation.RoleUser, Direction: conversation.Inbound, Type: "audio",
		Media:     &conversation.Media{ID: "media-1", MimeType: "audio/ogg", URL: "/api/v1/whatsapp/media/media-1", Transcript: "Is it shipped yet?"},
		CreatedAt: time.Now().UTC()}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.App.Conversations.Answer(ctx, e.WorkspaceID, conv); err != nil {
		t.Fatal(err)
	}
	e.MustDo(200, "PATCH", "/api/v1/assistants/"+aid, map[string]any{"system_prompt": newPrompt})
	post(t, e, conv, "Thanks")

	r := e.Do("GET", "/api/v1/conversations/export?format=jsonl", nil)
	if r.Status != 200 {
		t.Fatalf("export: %d %s", r.Status, r.Body)
	}
	var rows []exportRow
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row exportRow
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("row %q: %v", sc.Text(), err)
		}
		rows = append(rows, row)
	}
	// What a replay needs is on the rows.
	var versions []int
	var sawTool, sawMedia bool
	for _, row := range rows {
		if row.Conversation.ID != conv || row.Conversation.AssistantID != aid || len(row.Conversation.Variables) != 3 {
			t.Fatalf("row's conversation: %+v", row.Conversation)
		}
		if row.Role == "assistant" {
			versions = append(versions, row.AssistantVersion)
		}
		for _, tc := range row.ToolCalls {
			sawTool = sawTool || tc.Name == "set_variable" && tc.Result != "" && len(tc.Arguments) > 0
		}
		if row.Media != nil {
			sawMedia = row.Type == "audio" && row.Media.MimeType == "audio/ogg" && row.Media.URL != "" && row.Media.Transcript == "Is it shipped yet?"
		}
	}
	sources := map[string]string{}
	for _, v := range rows[0].Conversation.Variables {
		sources[v.Name] = v.Source
	}
	if !reflect.DeepEqual(sources, map[string]string{"plan": "flow", "order_id": "extracted", "email": "extracted"}) || !sawTool || !sawMedia ||
		versions[0] != 1 || versions[len(versions)-1] != 2 {
		t.Fatalf("export lacks replay data: sources %v, tool %v, media %v, versions %v", sources, sawTool, sawMedia, versions)
	}

	// Rebuild the conversation from the export alone and replay it.
	var msgs []*conversation.Message
	for _, row := range rows {
		m := &conversation.Message{ID: row.ID, ConversationID: row.ConversationID, Role: conversation.Role(row.Role), Direction: conversation.Direction(row.Direction),
			Type: row.Type, Text: row.Text, Media: row.Media, ToolCalls: row.ToolCalls, Error: row.Error, CreatedAt: row.CreatedAt,
			TokensIn: row.TokensIn, TokensOut: row.TokensOut, CostMicros: int64(row.CostUSD*1e6 + 0.5), AssistantVersion: row.AssistantVersion}
		msgs = append(msgs, m)
	}
	var vars []conversation.Variable
	for _, v := range rows[0].Conversation.Variables {
		vars = append(vars, conversation.Variable{Name: v.Name, Value: v.Value, Source: v.Source, UpdatedAt: v.UpdatedAt})
	}
	live, err := e.App.Assistants.Get(ctx, e.WorkspaceID, aid)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := e.App.Assistants.Version(ctx, e.WorkspaceID, aid, 1)
	if err != nil {
		t.Fatal(err)
	}
	turns, _, err := replay.ReplayConversation(ctx, replay.Sandbox(e.App.Runtime), live.AtVersion(*v1), conv, msgs, vars)
	if err != nil {
		t.Fatal(err)
	}

	rp := e.MustDo(202, "POST", "/api/v1/replays", map[string]any{"assistant_id": aid, "version": 1})
	waitReplay(t, e, rp["id"].(string))
	stored := reportOf(t, e, rp["id"].(string))[conv].Turns
	if len(turns) != 4 || len(stored) != 4 {
		t.Fatalf("turns: %d from the export, %d from the store", len(turns), len(stored))
	}
	for i := range turns {
		a, b := turns[i], stored[i]
		if a.CustomerText != b.CustomerText || a.Old.Text != b.Old.Text || a.New.Text != b.New.Text || a.New.TokensIn != b.New.TokensIn ||
			a.New.TokensOut != b.New.TokensOut || a.Changed != b.Changed || len(a.ToolCallDiffs) != len(b.ToolCallDiffs) {
			t.Errorf("turn %d differs:\n export %+v\n store  %+v", i, a, b)
		}
	}
	// The last turn ran on version 2 ("Max"); replayed on version 1 it is Ava again, and reported so.
	if last := stored[3]; !last.Changed || last.Old.Version != 2 || last.New.Version != 1 {
		t.Errorf("last turn: %+v", last)
	}
	if stored[2].CustomerText != "[voice note transcript] Is it shipped yet?" {
		t.Errorf("voice note turn: %q", stored[2].CustomerText)
	}
}
