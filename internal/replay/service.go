package replay

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/parley-hq/parley/internal/assistant"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/jobs"
)

// Repository is what replays need from the store: the recorded conversations (read only) and the
// replays' own tables.
type Repository interface {
	GetConversation(ctx context.Context, workspaceID, id string) (*conversation.Conversation, error)
	ListConversations(ctx context.Context, workspaceID string, f conversation.Filter) (conversation.Page, error)
	Messages(ctx context.Context, workspaceID, conversationID string, lastN int) ([]*conversation.Message, error)
	Variables(ctx context.Context, workspaceID, conversationID string) ([]conversation.Variable, error)

	// CreateReplay stores the replay and one pending item per conversation (in order), then runs
	// inTx in the same transaction with the items' positions (to queue their jobs atomically).
	CreateReplay(ctx context.Context, r *Replay, conversationIDs []string, inTx func(tx *sql.Tx, positions []int) error) error
	// GetReplay returns a replay with its progress and totals (ErrNotFound when not in the workspace).
	GetReplay(ctx context.Context, workspaceID, id string) (*Replay, error)
	// ListReplays returns the workspace's replays, newest first, and the cursor of the next page.
	ListReplays(ctx context.Context, workspaceID string, limit int, cursor string) ([]*Replay, string, error)
	// ReplayItems returns up to limit items after the given position, in order, with their turns.
	ReplayItems(ctx context.Context, workspaceID, replayID string, after, limit int) ([]*Item, error)
	// ReplayItem returns one item (ErrNotFound when it is gone with its conversation).
	ReplayItem(ctx context.Context, workspaceID, replayID string, position int) (*Item, error)
	// StartReplay marks a queued replay running.
	StartReplay(ctx context.Context, workspaceID, replayID string, at time.Time) error
	// FinishReplayItem stores an item's outcome; the last one to finish closes the replay (done,
	// or failed when every conversation failed).
	FinishReplayItem(ctx context.Context, workspaceID, replayID string, it *Item, at time.Time) error
}

// ErrNotFound is returned for a replay that is not in the workspace.
var ErrNotFound = errors.New("replay not found")

// ErrAssistantNotFound is returned when the assistant to replay is not in the workspace.
var ErrAssistantNotFound = errors.New("assistant not found")

// InputError is bad input: a clear message, nothing stored.
type InputError struct{ Field, Message string }

func (e *InputError) Error() string { return e.Field + ": " + e.Message }

// Selection limits.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
	// listPage is how many conversations one list call reads while selecting.
	listPage = 500
)

// Request asks for a replay.
type Request struct {
	AssistantID string
	// Version is the stored version to replay; 0 is the assistant's current one.
	Version int
	// Draft, when not empty, is applied over the version: unsaved changes to try.
	Draft *assistant.Draft
	// Filter selects conversations as the list does. Its AssistantID defaults to the replayed
	// assistant; "*" selects every assistant's conversations.
	Filter conversation.Filter
	// IDs selects exactly these conversations instead (no other filter may be set with them).
	IDs []string
	// Limit bounds the selection (default DefaultLimit, at most MaxLimit); the newest activity first.
	Limit int
}

// AnyAssistant in a request's filter selects every assistant's conversations.
const AnyAssistant = "*"

// Service creates replays and runs them: as durable jobs (Jobs set) or in-process (RunAll).
type Service struct {
	Repo       Repository
	Assistants *assistant.Service
	// Runtime is the live assistant runtime; replays run in Sandbox(Runtime).
	Runtime *assistant.Runtime
	// Jobs, when set, gets one job per selected conversation on the background queue.
	Jobs *jobs.Queue
	Log  *slog.Logger
	Now  func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Create validates the request, fixes the selection and the configuration to run, and stores the
// replay queued (with its jobs, when the service has a queue).
func (s *Service) Create(ctx context.Context, workspaceID string, req Request) (*Replay, error) {
	if req.AssistantID == "" {
		return nil, &InputError{"assistant_id", "is required"}
	}
	if req.Limit == 0 {
		req.Limit = DefaultLimit
	}
	if req.Limit < 1 || req.Limit > MaxLimit {
		return nil, &InputError{"filter.limit", fmt.Sprintf("must be a whole number from 1 to %d", MaxLimit)}
	}
	if req.Version < 0 {
		return nil, &InputError{"version", "must be a positive version number"}
	}
	if len(req.IDs) > 0 && !filterEmpty(req.Filter) {
		return nil, &InputError{"filter.ids", "cannot be combined with other filters; send either ids or filters"}
	}
	if len(req.IDs) > MaxLimit {
		return nil, &InputError{"filter.ids", fmt.Sprintf("must name at most %d conversations", MaxLimit)}
	}
	live, err := s.Assistants.Get(ctx, workspaceID, req.AssistantID)
	if err != nil {
		return nil, ErrAssistantNotFound
	}
	cfg := live
	if req.Version > live.Version { // versions only grow: no need to ask (nor to overflow a column)
		return nil, &InputError{"version", fmt.Sprintf("the assistant has no version %d (it is at version %d)", req.Version, live.Version)}
	}
	if req.Version != 0 && req.Version != live.Version {
		v, err := s.Assistants.Version(ctx, workspaceID, live.ID, req.Version)
		if errors.Is(err, assistant.ErrVersionNotFound) {
			return nil, &InputError{"version", fmt.Sprintf("the assistant has no version %d (it is at version %d)", req.Version, live.Version)}
		}
		if err != nil {
			return nil, fmt.Errorf("read version: %w", err)
		}
		cfg = live.AtVersion(*v)
	}
	var draft *assistant.Draft
	if req.Draft != nil && !req.Draft.Empty() {
		if cfg, err = s.Assistants.WithDraft(ctx, cfg, *req.Draft); err != nil {
			return nil, err
		}
		d := *req.Draft
		if d.Tools != nil {
			masked := cfg.Tools // header values masked, as the configuration stores them
			d.Tools = &masked
		}
		draft = &d
	}
	convIDs, err := s.selectConversations(ctx, workspaceID, live.ID, req)
	if err != nil {
		return nil, err
	}
	r := &Replay{ID: ids.New(), WorkspaceID: workspaceID, AssistantID: live.ID, AssistantName: live.Name, Version: cfg.Version, Draft: draft,
		Config: cfg.Snapshot(), Filter: echoFilter(req), Status: StatusQueued, CreatedAt: s.now()}
	err = s.Repo.CreateReplay(ctx, r, convIDs, func(tx *sql.Tx, positions []int) error {
		if s.Jobs == nil {
			return nil
		}
		args := make([]river.JobArgs, len(positions))
		for i, p := range positions {
			args[i] = Args{WorkspaceID: workspaceID, ReplayID: r.ID, Position: p}
		}
		return s.Jobs.InsertManyTx(ctx, tx, args)
	})
	if err != nil {
		return nil, fmt.Errorf("create replay: %w", err)
	}
	return s.Repo.GetReplay(ctx, workspaceID, r.ID)
}

func filterEmpty(f conversation.Filter) bool {
	return len(f.Types) == 0 && f.AssistantID == "" && f.From == nil && f.To == nil && f.Customer == "" && f.Status == "" && f.Query == "" && f.Window == ""
}

// selectConversations fixes the replay's conversations: the named ones, or the filter's first
// Limit in list order (newest activity first).
func (s *Service) selectConversations(ctx context.Context, workspaceID, assistantID string, req Request) ([]string, error) {
	var out []string
	if len(req.IDs) > 0 {
		seen := map[string]bool{}
		for _, id := range req.IDs {
			if seen[id] {
				continue
			}
			seen[id] = true
			if _, err := s.Repo.GetConversation(ctx, workspaceID, id); err != nil {
				return nil, &InputError{"filter.ids", fmt.Sprintf("conversation %q not found", id)}
			}
			out = append(out, id)
		}
		return out, nil
	}
	f := req.Filter
	switch f.AssistantID {
	case "":
		f.AssistantID = assistantID
	case AnyAssistant:
		f.AssistantID = ""
	}
	f.Cursor = ""
	for len(out) < req.Limit {
		f.Limit = min(listPage, req.Limit-len(out))
		page, err := s.Repo.ListConversations(ctx, workspaceID, f)
		if err != nil {
			return nil, fmt.Errorf("select conversations: %w", err)
		}
		for _, c := range page.Conversations {
			out = append(out, c.ID)
		}
		if page.NextCursor == "" {
			break
		}
		f.Cursor = page.NextCursor
	}
	if len(out) == 0 {
		return nil, &InputError{"filter", "no conversation matches the filter"}
	}
	return out, nil
}

// echoFilter is the selection as the replay keeps it, for people to read.
func echoFilter(req Request) Filter {
	f := req.Filter
	out := Filter{AssistantID: f.AssistantID, Customer: f.Customer, Status: string(f.Status), Query: f.Query, IDs: req.IDs, Limit: req.Limit}
	if len(req.IDs) > 0 {
		out.Limit = len(req.IDs)
	} else if out.AssistantID == "" {
		out.AssistantID = req.AssistantID
	}
	for _, t := range f.Types {
		out.Types = append(out.Types, string(t))
	}
	if f.From != nil {
		out.From = f.From.UTC().Format(time.RFC3339)
	}
	if f.To != nil {
		out.To = f.To.UTC().Format(time.RFC3339)
	}
	return out
}

// Get returns a replay with its progress and totals.
func (s *Service) Get(ctx context.Context, workspaceID, id string) (*Replay, error) {
	return s.Repo.GetReplay(ctx, workspaceID, id)
}

// List returns a page of the workspace's replays, newest first.
func (s *Service) List(ctx context.Context, workspaceID string, limit int, cursor string) ([]*Replay, string, error) {
	return s.Repo.ListReplays(ctx, workspaceID, limit, cursor)
}

// Items returns a page of a replay's conversations, with their turns, after position after.
func (s *Service) Items(ctx context.Context, workspaceID, id string, after, limit int) ([]*Item, error) {
	if _, err := s.Repo.GetReplay(ctx, workspaceID, id); err != nil {
		return nil, err
	}
	return s.Repo.ReplayItems(ctx, workspaceID, id, after, limit)
}

// RunItem replays one selected conversation and stores its outcome. It is safe to run again: an
// item already finished is left alone. A failure is returned to be retried, except on the last
// attempt, where it is stored as the item's error.
func (s *Service) RunItem(ctx context.Context, workspaceID, replayID string, position int, lastAttempt bool) error {
	r, err := s.Repo.GetReplay(ctx, workspaceID, replayID)
	if errors.Is(err, ErrNotFound) {
		return nil // deleted with its workspace: nothing to do
	}
	if err != nil {
		return fmt.Errorf("read replay: %w", err)
	}
	it, err := s.Repo.ReplayItem(ctx, workspaceID, replayID, position)
	if errors.Is(err, ErrNotFound) {
		return nil // its conversation was deleted (retention, erasure)
	}
	if err != nil {
		return fmt.Errorf("read replay item: %w", err)
	}
	if it.Status != ItemPending {
		return nil
	}
	if err := s.Repo.StartReplay(ctx, workspaceID, replayID, s.now()); err != nil {
		return fmt.Errorf("start replay: %w", err)
	}
	turns, totals, runErr := s.replayItem(ctx, r, it)
	if runErr != nil {
		if ctx.Err() != nil || !lastAttempt {
			return runErr
		}
		s.log().Warn("replay: conversation failed", "replay", replayID, "conversation", it.ConversationID, "err", runErr)
		it.Status, it.Error, it.Turns, it.Totals = ItemFailed, runErr.Error(), []Turn{}, Totals{Conversations: 1, Failed: 1}
	} else {
		it.Status, it.Turns, it.Totals = ItemDone, turns, totals
	}
	if err := s.Repo.FinishReplayItem(ctx, workspaceID, replayID, it, s.now()); err != nil {
		return fmt.Errorf("store replay item: %w", err)
	}
	return nil
}

func (s *Service) replayItem(ctx context.Context, r *Replay, it *Item) ([]Turn, Totals, error) {
	msgs, err := s.Repo.Messages(ctx, r.WorkspaceID, it.ConversationID, 0)
	if err != nil {
		return nil, Totals{}, fmt.Errorf("read messages: %w", err)
	}
	// The conversation as it was when the replay was asked for.
	n := 0
	for _, m := range msgs {
		if !m.CreatedAt.After(r.CreatedAt) {
			msgs[n] = m
			n++
		}
	}
	msgs = msgs[:n]
	vars, err := s.Repo.Variables(ctx, r.WorkspaceID, it.ConversationID)
	if err != nil {
		return nil, Totals{}, fmt.Errorf("read variables: %w", err)
	}
	base := &assistant.Assistant{ID: r.AssistantID, WorkspaceID: r.WorkspaceID, Name: r.AssistantName}
	a := base.AtVersion(assistant.Version{Version: r.Version, Snapshot: r.Config})
	return ReplayConversation(ctx, Sandbox(s.Runtime), a, it.ConversationID, msgs, vars)
}

// RunAll runs a replay's pending conversations in this process, one after another, telling
// progress after each (the CLI's way; the server runs them as jobs).
func (s *Service) RunAll(ctx context.Context, workspaceID, id string, progress func(Progress)) (*Replay, error) {
	after := -1
	for {
		items, err := s.Repo.ReplayItems(ctx, workspaceID, id, after, 100)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			break
		}
		for _, it := range items {
			after = it.Position
			if it.Status != ItemPending {
				continue
			}
			if err := s.RunItem(ctx, workspaceID, id, it.Position, true); err != nil {
				return nil, err
			}
			if progress != nil {
				if r, err := s.Repo.GetReplay(ctx, workspaceID, id); err == nil {
					progress(r.Progress)
				}
			}
		}
	}
	return s.Repo.GetReplay(ctx, workspaceID, id)
}

// Args is the job that replays one selected conversation.
type Args struct {
	WorkspaceID string `json:"workspace_id"`
	ReplayID    string `json:"replay_id"`
	Position    int    `json:"position"`
}

func (Args) Kind() string { return "replay_conversation" }

// InsertOpts: the background queue, a few attempts (a model outage is a turn's error, not the job's).
func (Args) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: jobs.QueueBackground, MaxAttempts: 3}
}

type worker struct {
	river.WorkerDefaults[Args]
	s *Service
}

// Timeout: a long conversation on a slow model takes a while, but the job must end before the
// queue would take it for stuck (15 minutes) and run it a second time.
func (w *worker) Timeout(*river.Job[Args]) time.Duration { return 10 * time.Minute }

func (w *worker) Work(ctx context.Context, job *river.Job[Args]) error {
	a := job.Args
	return w.s.RunItem(ctx, a.WorkspaceID, a.ReplayID, a.Position, job.Attempt >= job.MaxAttempts)
}

// RegisterWorkers adds the replay job's worker to the queue.
func (s *Service) RegisterWorkers(q *jobs.Queue) { jobs.Register(q, &worker{s: s}) }
