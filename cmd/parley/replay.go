package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/parley-hq/parley/internal/app"
	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/replay"
)

const replayUsage = `usage: parley replay --assistant ID|NAME [--version N] [--system-prompt TEXT | --system-prompt-file FILE]
                    [--type T[,T]] [--from DATE] [--to DATE] [--status S] [--customer C] [--q WORDS] [--ids ID,ID]
                    [--limit N] [--workspace SLUG] [--json]`

// replayCmd creates a replay in the store and runs it in this process (no server needed), then
// prints a summary table, or the whole report as JSON with --json.
func replayCmd(args []string, stdout, stderr io.Writer) error {
	var in app.ReplayInput
	var slug, assistantRef, prompt, promptFile, types, ids string
	var version, limit int
	var asJSON bool
	cfg, err := parse("replay", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&slug, "workspace", "default", "workspace slug")
		fs.StringVar(&assistantRef, "assistant", "", "the assistant to replay: its id or its name")
		fs.IntVar(&version, "version", 0, "the stored version to replay (default: the current one)")
		fs.StringVar(&prompt, "system-prompt", "", "a draft system prompt to try over the version")
		fs.StringVar(&promptFile, "system-prompt-file", "", "a file holding the draft system prompt")
		fs.StringVar(&types, "type", "", "conversation types: whatsapp, widget, test, api (comma-separated)")
		fs.StringVar(&in.Filter.From, "from", "", "last activity from (YYYY-MM-DD or RFC 3339)")
		fs.StringVar(&in.Filter.To, "to", "", "last activity up to (YYYY-MM-DD or RFC 3339)")
		fs.StringVar(&in.Filter.Status, "status", "", "conversation status: active, handoff, ended")
		fs.StringVar(&in.Filter.Customer, "customer", "", "the customer's identifier or phone")
		fs.StringVar(&in.Filter.Q, "q", "", "words in any message")
		fs.StringVar(&in.Filter.AssistantID, "conversations-of", "", `whose conversations: an assistant id, or "*" for all (default: the replayed assistant's)`)
		fs.StringVar(&ids, "ids", "", "exactly these conversations (comma-separated ids; no other filter)")
		fs.IntVar(&limit, "limit", replay.DefaultLimit, fmt.Sprintf("at most this many conversations, newest activity first (1 to %d)", replay.MaxLimit))
		fs.BoolVar(&asJSON, "json", false, "print the whole report as JSON")
	})
	if err != nil {
		return err
	}
	if assistantRef == "" {
		return errors.New("--assistant is required\n" + replayUsage)
	}
	if prompt != "" && promptFile != "" {
		return errors.New("give --system-prompt or --system-prompt-file, not both")
	}
	if promptFile != "" {
		b, err := os.ReadFile(promptFile)
		if err != nil {
			return fmt.Errorf("read the system prompt: %w", err)
		}
		prompt = string(b)
	}
	if prompt != "" {
		in.Draft = &assistant.Draft{SystemPrompt: &prompt}
	}
	if version != 0 {
		in.Version = &version
	}
	in.Filter.Limit = &limit
	in.Filter.Type = splitList(types)
	in.Filter.IDs = splitList(ids)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	ws, err := a.Auth.EnsureWorkspace(ctx, slug)
	if err != nil {
		return err
	}
	if in.AssistantID, err = findAssistant(ctx, a, ws.ID, assistantRef); err != nil {
		return err
	}
	req, err := app.ReplayRequest(in)
	if err != nil {
		return err
	}
	// In-process: no jobs are queued, so a server on the same database does not run it too.
	svc := &replay.Service{Repo: a.Store, Assistants: a.Assistants, Runtime: a.Runtime, Log: cfg.Log}
	rp, err := svc.Create(ctx, ws.ID, req)
	if err != nil {
		return replayCLIError(err)
	}
	fmt.Fprintf(stderr, "replay %s: %d conversations\n", rp.ID, rp.Progress.Total)
	rp, err = svc.RunAll(ctx, ws.ID, rp.ID, func(p replay.Progress) {
		fmt.Fprintf(stderr, "\rreplayed %d/%d", p.Done, p.Total)
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	report := replay.Report{JSON: replay.NewJSON(rp), Conversations: []replay.ItemJSON{}}
	var items []*replay.Item
	for after := -1; ; {
		page, err := svc.Items(ctx, ws.ID, rp.ID, after, 100)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for _, it := range page {
			items = append(items, it)
			report.Conversations = append(report.Conversations, replay.NewItemJSON(it))
			after = it.Position
		}
	}
	if asJSON {
		b, err := report.MarshalIndent()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	printReplay(stdout, rp, items)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// findAssistant resolves an assistant by id, or else by its exact (unique) name.
func findAssistant(ctx context.Context, a *app.App, workspaceID, ref string) (string, error) {
	if as, err := a.Assistants.Get(ctx, workspaceID, ref); err == nil {
		return as.ID, nil
	}
	list, err := a.Assistants.List(ctx, workspaceID)
	if err != nil {
		return "", err
	}
	var found []string
	for _, as := range list {
		if as.Name == ref {
			found = append(found, as.ID)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no assistant with the id or name %q", ref)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d assistants are named %q: give the id (%s)", len(found), ref, strings.Join(found, ", "))
}

// replayCLIError words the service's input errors as the API does.
func replayCLIError(err error) error {
	var ie *replay.InputError
	var ve *assistant.ValidationError
	switch {
	case errors.As(err, &ie):
		return fmt.Errorf("%s %s", ie.Field, ie.Message)
	case errors.As(err, &ve):
		return fmt.Errorf("draft.%s %s", ve.Field, ve.Message)
	}
	return err
}

// printReplay writes the totals, a table of the conversations, and each changed turn's old and
// new reply.
func printReplay(w io.Writer, rp *replay.Replay, items []*replay.Item) {
	t := replay.NewTotalsJSON(rp.Totals)
	what := fmt.Sprintf("version %d", rp.Version)
	if rp.Draft != nil {
		what += " with a draft"
	}
	fmt.Fprintf(w, "Replay %s of %s (%s): %s, %d/%d conversations\n", rp.ID, rp.AssistantName, what, rp.Status, rp.Progress.Done, rp.Progress.Total)
	if rp.Error != "" {
		fmt.Fprintf(w, "Error: %s\n", rp.Error)
	}
	fmt.Fprintf(w, "Turns: %d compared, %d changed, %d unchanged, %d skipped; mean similarity %.4f\n", t.Turns, t.ChangedTurns, t.UnchangedTurns, t.SkippedTurns, t.MeanSimilarity)
	fmt.Fprintf(w, "Tokens: %d → %d (%+d); cost: $%.6f → $%.6f (%+.6f); tool-call differences: %d; errors: %d\n\n",
		t.OldTokensIn+t.OldTokensOut, t.NewTokensIn+t.NewTokensOut, t.TokensDiff, t.OldCostUSD, t.NewCostUSD, t.CostDiffUSD, t.ToolCallDiffs, t.Errors)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CONVERSATION\tTYPE\tSTATUS\tTURNS\tCHANGED\tSIMILARITY\tTOKENS OLD→NEW\tCOST DIFF\tTOOL DIFFS\tERRORS")
	for _, it := range items {
		c := replay.NewTotalsJSON(it.Totals)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.4f\t%d→%d\t%+.6f\t%d\t%d\n", it.ConversationID, it.ConversationType, it.Status, c.Turns, c.ChangedTurns,
			c.MeanSimilarity, c.OldTokensIn+c.OldTokensOut, c.NewTokensIn+c.NewTokensOut, c.CostDiffUSD, c.ToolCallDiffs, c.Errors)
	}
	tw.Flush()
	for _, it := range items {
		if it.Error != "" {
			fmt.Fprintf(w, "\n%s failed: %s\n", it.ConversationID, it.Error)
		}
		for _, tn := range it.Turns {
			if !tn.Changed {
				continue
			}
			fmt.Fprintf(w, "\n%s turn %d (similarity %.4f)\n  customer: %s\n  old:      %s\n  new:      %s\n", it.ConversationID, tn.Index, tn.Similarity,
				clip(tn.CustomerText), clip(tn.Old.Text), clip(tn.New.Text))
			for _, d := range tn.ToolCallDiffs {
				fmt.Fprintf(w, "  tool %s %s: %s → %s\n", d.Name, d.Change, orDash(string(d.OldArguments)), orDash(string(d.NewArguments)))
			}
			if tn.New.Error != "" {
				fmt.Fprintf(w, "  error:    %s\n", tn.New.Error)
			}
		}
	}
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 200 {
		return string(r[:200]) + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
