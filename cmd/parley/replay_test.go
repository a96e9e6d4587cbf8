package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/replay"
)

// TestReplayCommand seeds conversations on a SQLite file, then runs the real binary's `parley
// replay` with a draft system prompt from a file: the summary table and the --json report show the
// changed greetings and the unchanged tool turn, and the conversations are exactly as before.
func TestReplayCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "parley.db")
	cfg := app.Config{DB: db, DataDir: filepath.Join(dir, "data"), ExtractIdle: -1}
	ctx := context.Background()
	a, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := a.Auth.EnsureWorkspace(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	name, prompt := "Ava", "You are Ava, the support assistant for Acme Shoes."
	as, err := a.Assistants.Create(ctx, ws.ID, assistant.Input{Name: &name, SystemPrompt: &prompt, Tools: rawJSON(`["set_variable"]`)})
	if err != nil {
		t.Fatal(err)
	}
	var convs []string
	for _, texts := range [][]string{{"Hello", "My email is jo@example.com"}, {"Good morning"}} {
		c, err := a.Conversations.Create(ctx, ws.ID, conversation.CreateInput{AssistantID: as.ID, Type: conversation.TypeAPI})
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range texts {
			if _, err := a.Conversations.Post(ctx, ws.ID, c.ID, conversation.PostInput{Text: text}, nil); err != nil {
				t.Fatal(err)
			}
		}
		convs = append(convs, c.ID)
	}
	counts := func(a *app.App) []int64 {
		var out []int64
		for _, id := range convs {
			c, err := a.Conversations.Get(ctx, ws.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c.MessageCount)
		}
		return out
	}
	before := counts(a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	promptFile := filepath.Join(dir, "prompt.txt")
	if err := os.WriteFile(promptFile, []byte("You are Max, the returns expert at Acme Shoes."), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, append([]string{"replay", "--db", db, "--data-dir", cfg.DataDir}, args...)...)
		cmd.Env = cleanEnv()
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}

	out, logs, err := run("--assistant", "Ava", "--system-prompt-file", promptFile, "--type", "api")
	if err != nil {
		t.Fatalf("parley replay: %v\n%s\n%s", err, out, logs)
	}
	for _, want := range []string{
		"of Ava (version 1 with a draft): done, 2/2 conversations",
		"Turns: 3 compared, 2 changed, 1 unchanged, 0 skipped",
		"tool-call differences: 0; errors: 0",
		"CONVERSATION", convs[0], convs[1],
		"old:      Hello! I'm Ava, the support assistant for Acme Shoes. How can I help you today?",
		"new:      Hello! I'm Max, the returns expert at Acme Shoes. How can I help you today?",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "noted your email") {
		t.Errorf("an unchanged turn is listed as changed:\n%s", out)
	}

	// --json: the whole report; the same version replayed changes nothing.
	out, logs, err = run("--assistant", as.ID, "--version", "1", "--limit", "1", "--json")
	if err != nil {
		t.Fatalf("parley replay --json: %v\n%s", err, logs)
	}
	var report replay.Report
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if report.Status != replay.StatusDone || report.Progress.Total != 1 || len(report.Conversations) != 1 || report.Totals.ChangedTurns != 0 ||
		report.Totals.MeanSimilarity != 1 || report.Draft != nil || len(report.Conversations[0].Turns) == 0 {
		t.Fatalf("report: %+v", report)
	}

	// Bad input is an error that says what is wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "--assistant is required"},
		{[]string{"--assistant", "Nobody"}, `no assistant with the id or name "Nobody"`},
		{[]string{"--assistant", "Ava", "--version", "9"}, "has no version 9"},
		{[]string{"--assistant", "Ava", "--type", "fax"}, "filter.type"},
		{[]string{"--assistant", "Ava", "--limit", "0"}, "filter.limit"},
		{[]string{"--assistant", "Ava", "--system-prompt", "x", "--system-prompt-file", promptFile}, "not both"},
	} {
		_, logs, err := run(tc.args...)
		if err == nil || !strings.Contains(logs, tc.want) {
			t.Errorf("replay %v: %v, stderr %q, want %q", tc.args, err, logs, tc.want)
		}
	}

	a, err = app.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if after := counts(a); len(after) != len(before) || after[0] != before[0] || after[1] != before[1] {
		t.Fatalf("message counts %v → %v", before, after)
	}
	list, _, err := a.ReplayService().List(ctx, ws.ID, 10, "")
	if err != nil || len(list) != 2 {
		t.Fatalf("stored replays: %d %v", len(list), err)
	}
}

func rawJSON(s string) *json.RawMessage {
	r := json.RawMessage(s)
	return &r
}
