package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/events"
	"github.com/parley-hq/parley/internal/ids"
	"github.com/parley-hq/parley/internal/jobs"
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the raw body with the webhook's secret>".
const SignatureHeader = "X-Parley-Signature"

// Repository keeps webhooks (secrets sealed).
type Repository interface {
	CreateWebhook(ctx context.Context, h *Webhook) error
	ListWebhooks(ctx context.Context, workspaceID string) ([]*Webhook, error)
	GetWebhook(ctx context.Context, workspaceID, id string) (*Webhook, error)
	WebhookWorkspaces(ctx context.Context) ([]string, error)
}

// Sealer encrypts secrets at rest.
type Sealer interface {
	Seal(plaintext string) (string, error)
	Open(sealed string) (string, error)
}

// InputError is bad input: a field and why.
type InputError struct{ Field, Message string }

func (e *InputError) Error() string { return e.Field + " " + e.Message }

// Service turns conversation changes into signed deliveries, each a durable job.
type Service struct {
	Repo   Repository
	Box    Sealer
	Jobs   *jobs.Queue
	Events *events.Hub
	Log    *slog.Logger
	HTTP   *http.Client

	mu         sync.Mutex
	ctx        context.Context
	subscribed map[string]bool
	seen       map[string]bool                // message ids already announced
	statuses   map[string]conversation.Status // last status seen per conversation
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// Sign returns the signature header value of body under secret.
func Sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Create stores a webhook with a new secret (returned in plaintext once).
func (s *Service) Create(ctx context.Context, workspaceID, rawURL string, evs []string) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(rawURL) > 2048 {
		return nil, &InputError{"url", "must be an http(s) URL"}
	}
	if len(evs) == 0 {
		evs = slices.Clone(AllEvents)
	}
	for _, e := range evs {
		if !ValidEvent(e) {
			return nil, &InputError{"events", fmt.Sprintf("%q is not one of %s", e, strings.Join(AllEvents, ", "))}
		}
	}
	slices.Sort(evs)
	evs = slices.Compact(evs)
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	secret := "whsec_" + hex.EncodeToString(raw)
	sealed, err := s.Box.Seal(secret)
	if err != nil {
		return nil, err
	}
	h := &Webhook{ID: ids.New(), WorkspaceID: workspaceID, URL: rawURL, Events: evs, Secret: sealed, CreatedAt: time.Now().UTC()}
	if err := s.Repo.CreateWebhook(ctx, h); err != nil {
		return nil, err
	}
	s.subscribe(workspaceID)
	out := *h
	out.Secret = secret
	return &out, nil
}

// Start listens to the workspaces that have webhooks.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	wss, err := s.Repo.WebhookWorkspaces(ctx)
	if err != nil {
		return err
	}
	for _, ws := range wss {
		s.subscribe(ws)
	}
	return nil
}

func (s *Service) subscribe(ws string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subscribed == nil {
		s.subscribed, s.seen, s.statuses = map[string]bool{}, map[string]bool{}, map[string]conversation.Status{}
	}
	if s.subscribed[ws] || s.ctx == nil || s.Events == nil {
		return
	}
	s.subscribed[ws] = true
	sub := s.Events.Subscribe(ws, "")
	ctx := s.ctx
	go func() {
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-sub.C:
				if !ok {
					return
				}
				s.handle(ctx, ev)
			}
		}
	}()
}

// Delivery is one event as POSTed.
type Delivery struct {
	ID          string          `json:"id"`
	Event       string          `json:"event"`
	WorkspaceID string          `json:"workspace_id"`
	CreatedAt   string          `json:"created_at"`
	Data        json.RawMessage `json:"data"`
}

func (s *Service) handle(ctx context.Context, ev events.Event) {
	c := ev.Conversation
	if c == nil {
		return
	}
	type item struct {
		name string
		key  string // the same event seen by several instances (PostgreSQL fan-out) is delivered once
		data any
	}
	var items []item
	convData := conversationData(c)
	s.mu.Lock()
	if len(s.seen) > 100_000 {
		s.seen = map[string]bool{}
	}
	if len(s.statuses) > 100_000 {
		s.statuses = map[string]conversation.Status{}
	}
	prev, known := s.statuses[c.ID]
	s.statuses[c.ID] = c.Status
	if !known && len(ev.Messages) == 0 && c.MessageCount == 0 && c.CreatedAt.Equal(c.UpdatedAt) {
		items = append(items, item{EventConversationCreated, "created:" + c.ID, map[string]any{"conversation": convData}})
	}
	for _, m := range ev.Messages {
		if s.seen[m.ID] {
			continue
		}
		s.seen[m.ID] = true
		items = append(items, item{EventMessageCreated, "message:" + m.ID, map[string]any{"conversation": convData, "message": messageData(m)}})
		for _, tc := range m.ToolCalls {
			if tc.Name != "schedule_appointment" || !strings.Contains(tc.Result, `"ok":true`) {
				continue
			}
			var slot map[string]any
			_ = json.Unmarshal(tc.Arguments, &slot)
			items = append(items, item{EventAppointmentScheduled, "appointment:" + m.ID + ":" + tc.ID,
				map[string]any{"conversation": convData, "appointment": slot, "message_id": m.ID}})
		}
	}
	s.mu.Unlock()
	if prev != c.Status && known || (!known && c.Status != conversation.StatusActive) {
		switch c.Status {
		case conversation.StatusEnded:
			items = append(items, item{EventConversationEnded, "ended:" + c.ID, map[string]any{"conversation": convData}})
		case conversation.StatusHandoff:
			items = append(items, item{EventHandoff, "handoff:" + c.ID + ":" + strconv.FormatInt(c.UpdatedAt.UnixMilli(), 10),
				map[string]any{"conversation": convData, "reason": c.HandoffReason}})
		}
	}
	if len(items) == 0 {
		return
	}
	hooks, err := s.Repo.ListWebhooks(ctx, ev.WorkspaceID)
	if err != nil {
		s.log().Error("webhooks: list", "err", err)
		return
	}
	for _, it := range items {
		data, _ := json.Marshal(it.data)
		for _, h := range hooks {
			if !slices.Contains(h.Events, it.name) {
				continue
			}
			d := Delivery{ID: ids.New(), Event: it.name, WorkspaceID: ev.WorkspaceID, CreatedAt: time.Now().UTC().Format(time.RFC3339Nano), Data: data}
			if err := s.Jobs.Insert(ctx, DeliverArgs{WebhookID: h.ID, WorkspaceID: ev.WorkspaceID, Key: it.key, Delivery: d}, nil); err != nil {
				s.log().Error("webhooks: queue delivery", "webhook", h.ID, "err", err)
			}
		}
	}
}

// Prepare builds the deliveries of an event that no conversation change carries (budget.threshold)
// to the workspace's webhooks subscribed to it, and returns the function that queues them in a
// transaction (nil when none is subscribed), so the caller commits them with what they announce.
// key makes the delivery unique per webhook.
func (s *Service) Prepare(ctx context.Context, workspaceID, event, key string, data any) (func(tx *sql.Tx) error, error) {
	hooks, err := s.Repo.ListWebhooks(ctx, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", event, err)
	}
	var args []DeliverArgs
	for _, h := range hooks {
		if !slices.Contains(h.Events, event) {
			continue
		}
		d := Delivery{ID: ids.New(), Event: event, WorkspaceID: workspaceID, CreatedAt: time.Now().UTC().Format(time.RFC3339Nano), Data: raw}
		args = append(args, DeliverArgs{WebhookID: h.ID, WorkspaceID: workspaceID, Key: key, Delivery: d})
	}
	if len(args) == 0 {
		return nil, nil
	}
	return func(tx *sql.Tx) error {
		for _, a := range args {
			if err := s.Jobs.InsertTx(ctx, tx, a, nil); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

func conversationData(c *conversation.Conversation) map[string]any {
	return map[string]any{"id": c.ID, "type": c.Type, "status": c.Status, "customer_id": c.CustomerID, "customer_name": c.CustomerName,
		"assistant_id": c.AssistantID, "message_count": c.MessageCount, "handoff_reason": c.HandoffReason,
		"created_at": c.CreatedAt.UTC().Format(time.RFC3339Nano), "last_message_at": c.LastMessageAt.UTC().Format(time.RFC3339Nano)}
}

func messageData(m *conversation.Message) map[string]any {
	out := map[string]any{"id": m.ID, "role": m.Role, "direction": m.Direction, "type": m.Type, "text": m.Text,
		"created_at": m.CreatedAt.UTC().Format(time.RFC3339Nano)}
	if m.ExternalID != "" {
		out["external_id"] = m.ExternalID
	}
	if m.Media != nil {
		out["media"] = m.Media
	}
	return out
}

// DeliverArgs POSTs one delivery to one webhook.
type DeliverArgs struct {
	WebhookID   string   `json:"webhook_id" river:"unique"`
	WorkspaceID string   `json:"workspace_id"`
	Key         string   `json:"key" river:"unique"`
	Delivery    Delivery `json:"delivery"`
}

func (DeliverArgs) Kind() string { return "webhook_delivery" }

// InsertOpts: retried with backoff for about a day; one delivery per (webhook, event key). Priority
// 2, with the WhatsApp reply jobs and behind their sends: a slow endpoint (up to 15 s a try) must
// not hold customers' answers back.
func (DeliverArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 12, UniqueOpts: river.UniqueOpts{ByArgs: true}, Priority: 2}
}

// RegisterWorkers adds the delivery worker.
func (s *Service) RegisterWorkers(q *jobs.Queue) { jobs.Register(q, &deliverWorker{s: s}) }

type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	s *Service
}

func (w *deliverWorker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	d := time.Duration(1<<min(job.Attempt, 16)) * time.Second
	return time.Now().Add(min(d, 4*time.Hour))
}

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	s, a := w.s, job.Args
	h, err := s.Repo.GetWebhook(ctx, a.WorkspaceID, a.WebhookID)
	if err != nil {
		return jobs.Cancel(fmt.Errorf("webhook %s gone: %w", a.WebhookID, err))
	}
	secret, err := s.Box.Open(h.Secret)
	if err != nil {
		return jobs.Cancel(err)
	}
	body, _ := json.Marshal(a.Delivery)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return jobs.Cancel(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Parley-Webhooks/1")
	req.Header.Set("X-Parley-Event", a.Delivery.Event)
	req.Header.Set("X-Parley-Delivery", a.Delivery.ID)
	req.Header.Set("X-Parley-Attempt", strconv.Itoa(job.Attempt))
	req.Header.Set(SignatureHeader, Sign(body, secret))
	client := s.HTTP
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("deliver to %s: %w", h.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("deliver to %s: HTTP %d", h.URL, resp.StatusCode)
	}
	return nil
}
