package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/testenv"
)

// TestScheduleAppointmentFiresWebhook: a successful schedule_appointment tool call reaches the
// automations subscribed to appointment.scheduled, signed, with the requested slot.
func TestScheduleAppointmentFiresWebhook(t *testing.T) {
	got := make(chan map[string]any, 4)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var d map[string]any
		_ = json.Unmarshal(b, &d)
		if r.Header.Get("X-Parley-Signature") != "" {
			got <- d
		}
		w.WriteHeader(200)
	}))
	defer receiver.Close()
	e := testenv.New(t)
	e.MustDo(201, "POST", "/api/v1/webhooks", map[string]any{"url": receiver.URL, "events": []string{"appointment.scheduled"}})
	aid := e.CreateAssistant("Booker", "You are Booker.")
	c := e.MustDo(201, "POST", "/api/v1/conversations", map[string]any{"assistant_id": aid, "type": "api"})
	conv, err := e.App.Conversations.Get(t.Context(), e.WorkspaceID, c["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	m := &conversation.Message{ID: "msg-appt", ConversationID: conv.ID, Role: conversation.RoleAssistant, Direction: conversation.Outbound, Type: "text",
		ToolCalls: []conversation.ToolCall{{ID: "call_1", Name: "schedule_appointment", Arguments: json.RawMessage(`{"date":"2026-12-01","time":"10:30","name":"Ana"}`), Result: `{"ok":true,"status":"requested"}`}},
		CreatedAt: time.Now().UTC()}
	e.App.Events.Publish(e.WorkspaceID, conv, []*conversation.Message{m})
	select {
	case d := <-got:
		slot, _ := d["data"].(map[string]any)["appointment"].(map[string]any)
		if d["event"] != "appointment.scheduled" || slot["date"] != "2026-12-01" || slot["time"] != "10:30" {
			t.Fatalf("delivery: %v", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no appointment.scheduled delivery")
	}
}
