package whatsapp

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-hq/parley/internal/blob"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/jobs"
)

// Repository is what the channel needs from the store. Senders come back with sealed secrets.
type Repository interface {
	CreateWASender(ctx context.Context, x *Sender) error
	UpdateWASender(ctx context.Context, x *Sender) error
	GetWASender(ctx context.Context, workspaceID, id string) (*Sender, error)
	ListWASenders(ctx context.Context, workspaceID string) ([]*Sender, error)
	WASendersByPhone(ctx context.Context, phoneNumberIDs []string) ([]*Sender, error)
	AllWASenders(ctx context.Context) ([]*Sender, error)
	DeleteWASender(ctx context.Context, workspaceID, id string) error
	SetWASenderError(ctx context.Context, id, msg string, at time.Time) error
	SetWASenderQuality(ctx context.Context, id, quality, limit string, at time.Time) error
	AddPendingStatus(ctx context.Context, workspaceID, externalID, payload string, at time.Time) error
	TakePendingStatuses(ctx context.Context, workspaceID, externalID string) ([]string, error)
	CreateWATemplate(ctx context.Context, t *Template) error
	ListWATemplates(ctx context.Context, workspaceID string) ([]*Template, error)
	WATemplateByName(ctx context.Context, workspaceID, name, language string) (*Template, error)
	SetMessagePayloadTx(tx *sql.Tx, workspaceID, messageID, payload string) error
	MessagePayload(ctx context.Context, workspaceID, messageID string) (string, error)
	MessageByID(ctx context.Context, workspaceID, conversationID, messageID string) (*conversation.Message, error)
	CustomerMessageSuperseded(ctx context.Context, workspaceID, conversationID, messageID string) (bool, error)
	MessagesAfter(ctx context.Context, workspaceID, conversationID, afterID string, limit int) ([]*conversation.Message, error)
	SetMessageStatusTx(tx *sql.Tx, workspaceID, messageID, status string, msgErr *conversation.MessageError, from []string) (bool, error)
}

// Sealer encrypts secrets at rest.
type Sealer interface {
	Seal(plaintext string) (string, error)
	Open(sealed string) (string, error)
}

// Transcriber turns a voice note into text. The AI runtime provides one as App.Extra["media_ai"];
// a TranscribeWithCost method, when present, is preferred so the cost is counted.
type Transcriber interface {
	Transcribe(ctx context.Context, workspaceID string, audio io.Reader, filename, mimeType string) (string, error)
}

type transcriberWithCost interface {
	TranscribeWithCost(ctx context.Context, workspaceID string, audio io.Reader, filename, mimeType string) (string, int64, error)
}

// Describer describes an image for the model (DescribeWithCost preferred, as above).
type Describer interface {
	Describe(ctx context.Context, workspaceID string, image []byte, mimeType string) (string, error)
}

type describerWithCost interface {
	DescribeWithCost(ctx context.Context, workspaceID string, image []byte, mimeType string) (string, int64, error)
}

// Service is the WhatsApp channel.
type Service struct {
	Repo          Repository
	Box           Sealer
	Conversations *conversation.Service
	Jobs          *jobs.Queue
	Blobs         blob.Store
	HTTP          *http.Client
	Log           *slog.Logger
	// MediaAI is looked up when a media job runs (it may implement Transcriber and/or Describer).
	MediaAI func() any
	// MaxMediaBytes caps a downloaded file (default 100 MB, Cloud API's document limit).
	MaxMediaBytes int64
	Now           func() time.Time
	// Metrics counts traffic (optional).
	Metrics *Metrics

	metricsOnce sync.Once
	fallback    *Metrics

	limiters sync.Map // sender id → *limiterEntry

	// Inbox keeps deliveries acknowledged during a burst (optional: without it every delivery
	// is processed before its 200).
	Inbox InboxRepository
	box   inbox
	// senderCache holds opened senders by their phone number ids (see cachedSenders).
	senderCache sync.Map
	senderGen   atomic.Int64
}

type limiterEntry struct {
	perSecond int
	l         *rate.Limiter
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

// open decrypts a sender's secrets in place.
func (s *Service) open(x *Sender) error {
	for _, f := range []*string{&x.AccessToken, &x.AppSecret, &x.VerifyToken} {
		if *f == "" {
			continue
		}
		v, err := s.Box.Open(*f)
		if err != nil {
			return fmt.Errorf("open sender %s secrets: %w", x.ID, err)
		}
		*f = v
	}
	return nil
}

// Sender returns a sender of the workspace with its secrets opened.
func (s *Service) Sender(ctx context.Context, workspaceID, id string) (*Sender, error) {
	x, err := s.Repo.GetWASender(ctx, workspaceID, id)
	if err != nil {
		return nil, err
	}
	return x, s.open(x)
}

// Client returns the Graph API client of a sender, paced by its rate limit.
func (s *Service) Client(x *Sender) *Client {
	per := x.RatePerSecond
	if per <= 0 {
		per = DefaultRatePerSecond
	}
	var l *rate.Limiter
	if v, ok := s.limiters.Load(x.ID); ok && v.(*limiterEntry).perSecond == per {
		l = v.(*limiterEntry).l
	} else {
		l = rate.NewLimiter(rate.Limit(per), per)
		s.limiters.Store(x.ID, &limiterEntry{perSecond: per, l: l})
	}
	return &Client{BaseURL: strings.TrimRight(x.GraphAPIURL, "/"), PhoneNumberID: x.PhoneNumberID, Token: x.AccessToken, HTTP: s.HTTP, Limiter: l}
}

// Result of a delivery.
type Result struct {
	Stored   int // new messages stored
	Statuses int // status reports applied
}

// Receive stores a verified delivery's changes for the given senders (by phone number id): every
// entry, every change, every message (replays skipped) and status. Jobs that answer, download
// media and send are queued in the same transactions as the messages.
func (s *Service) Receive(ctx context.Context, p *Payload, senders map[string]*Sender) (Result, error) {
	var res Result
	for _, e := range p.Entry {
		for _, ch := range e.Changes {
			if ch.Field == "phone_number_quality_update" {
				if err := s.qualityUpdate(ctx, &ch.Value, senders); err != nil {
					return res, err
				}
				continue
			}
			x := senders[ch.Value.Metadata.PhoneNumberID]
			if x == nil {
				continue
			}
			if ch.Field != "" && ch.Field != "messages" {
				continue
			}
			n, err := s.receiveMessages(ctx, x, &ch.Value)
			res.Stored += n
			if err != nil {
				return res, err
			}
			for i := range ch.Value.Statuses {
				ok, err := s.applyStatus(ctx, x, &ch.Value.Statuses[i], true)
				if err != nil {
					return res, err
				}
				if ok {
					res.Statuses++
				}
			}
			if len(ch.Value.Errors) > 0 {
				e := ch.Value.Errors[0].MessageError()
				msg := "Meta reported error " + e.Code + ": " + strings.TrimSpace(e.Title+" "+e.Details)
				s.log().Warn("whatsapp: error notification", "sender", x.ID, "error", msg)
				if err := s.Repo.SetWASenderError(ctx, x.ID, msg, s.now()); err != nil {
					return res, err
				}
			}
		}
	}
	return res, nil
}

// lateDelivery is how late Meta may deliver a message (it retries failed deliveries for 7 days).
const lateDelivery = 7 * 24 * time.Hour

// qualityUpdate records a number's new quality flag and messaging limit tier.
func (s *Service) qualityUpdate(ctx context.Context, v *Value, senders map[string]*Sender) error {
	for _, x := range senders {
		if OnlyDigits(x.DisplayPhoneNumber) == "" || OnlyDigits(x.DisplayPhoneNumber) != OnlyDigits(v.DisplayPhoneNumber) {
			continue
		}
		quality := ""
		switch v.Event {
		case "FLAGGED":
			quality = "FLAGGED"
		case "UNFLAGGED":
			quality = "GREEN"
		}
		if err := s.Repo.SetWASenderQuality(ctx, x.ID, quality, v.CurrentLimit, s.now()); err != nil {
			return err
		}
	}
	return nil
}

// messageTime is when the customer sent the message: Meta's timestamp when plausible (a late
// delivery keeps its real time, so the customer service window is right), else the time received.
func (s *Service) messageTime(ts Timestamp) time.Time {
	now := s.now()
	t := ts.Time()
	if t.IsZero() || t.After(now.Add(time.Minute)) || now.Sub(t) > lateDelivery {
		return now
	}
	return t
}

func (s *Service) receiveMessages(ctx context.Context, x *Sender, v *Value) (int, error) {
	if len(v.Messages) == 0 {
		return 0, nil
	}
	names := map[string]string{}
	for _, c := range v.Contacts {
		names[c.WaID] = c.Profile.Name
	}
	// Group by customer, keeping order; a batch may repeat an id (stored once by the unique index).
	var order []string
	byCustomer := map[string][]*InboundMessage{}
	for i := range v.Messages {
		m := &v.Messages[i]
		if m.ID == "" {
			continue
		}
		from := OnlyDigits(m.From)
		if from == "" {
			continue
		}
		if _, ok := byCustomer[from]; !ok {
			order = append(order, from)
		}
		byCustomer[from] = append(byCustomer[from], m)
	}
	stored := 0
	for _, from := range order {
		conv, _, err := s.Conversations.FindOrCreate(ctx, x.WorkspaceID, conversation.ChannelCustomer{
			Type: conversation.TypeWhatsApp, ChannelID: x.ID, CustomerID: from, CustomerName: names[from], AssistantID: x.AssistantID,
			Metadata: map[string]string{"phone_number_id": x.PhoneNumberID, "display_phone_number": x.DisplayPhoneNumber},
		})
		if err != nil {
			return stored, err
		}
		var msgs []*conversation.Message
		payloads := map[*conversation.Message]*InboundMessage{}
		seen := map[string]bool{}
		for _, im := range byCustomer[from] {
			if seen[im.ID] {
				continue
			}
			seen[im.ID] = true
			cv := Convert(im)
			m := &conversation.Message{ExternalID: im.ID, Role: conversation.RoleUser, Direction: conversation.Inbound, Type: cv.Type, Text: cv.Text,
				Media: cv.Media, CreatedAt: s.messageTime(im.Timestamp)}
			msgs = append(msgs, m)
			payloads[m] = im
		}
		_, got, err := s.Conversations.Receive(ctx, x.WorkspaceID, conv.ID, msgs, nil, func(tx *sql.Tx, stored []*conversation.Message) error {
			return s.queueInbound(ctx, tx, x, conv, stored, payloads)
		})
		if err != nil {
			return stored, err
		}
		stored += len(got)
		s.metrics().Inbound.Add(float64(len(got)))
	}
	return stored, nil
}

// queueInbound keeps each stored message's payload and queues its follow-up work: a media download
// for attachments, and one answer for the batch (after the media when there is some).
func (s *Service) queueInbound(ctx context.Context, tx *sql.Tx, x *Sender, conv *conversation.Conversation, stored []*conversation.Message, payloads map[*conversation.Message]*InboundMessage) error {
	var lastAnswerable *conversation.Message
	var lastMedia *conversation.Message
	for _, m := range stored {
		if im := payloads[m]; im != nil {
			if err := s.Repo.SetMessagePayloadTx(tx, x.WorkspaceID, m.ID, string(im.Raw)); err != nil {
				return fmt.Errorf("keep payload: %w", err)
			}
		}
		if Answerable(m.Type) {
			lastAnswerable = m
		}
		if m.Media != nil && m.Media.ID != "" {
			lastMedia = m
		}
	}
	for _, m := range stored {
		if m.Media == nil || m.Media.ID == "" {
			continue
		}
		args := MediaArgs{WorkspaceID: x.WorkspaceID, ConversationID: conv.ID, MessageID: m.ID, SenderID: x.ID, MediaID: m.Media.ID}
		if m == lastMedia && lastAnswerable != nil {
			args.ThenReplyTo = lastAnswerable.ID
		}
		if err := s.Jobs.InsertTx(ctx, tx, args, nil); err != nil {
			return err
		}
	}
	if lastAnswerable != nil && lastMedia == nil {
		if err := s.Jobs.InsertTx(ctx, tx, ReplyArgs{WorkspaceID: x.WorkspaceID, ConversationID: conv.ID, MessageID: lastAnswerable.ID, SenderID: x.ID}, nil); err != nil {
			return err
		}
	}
	return nil
}

// Prices are default per-message prices by pricing category, in micro-dollars (Meta's rate card
// varies by country; these are typical list prices).
var Prices = map[string]int64{
	"marketing":                    25_000,
	"marketing_lite":               20_000,
	"utility":                      4_000,
	"authentication":               4_000,
	"authentication_international": 20_000,
	"service":                      0,
	"referral_conversion":          0,
}

// PriceOf returns what a message costs under Meta's pricing object.
func PriceOf(p *Pricing) int64 {
	if p == nil || (p.Billable != nil && !*p.Billable) || strings.HasPrefix(p.Type, "free") {
		return 0
	}
	return Prices[strings.ToLower(p.Category)]
}

func (s *Service) applyStatus(ctx context.Context, x *Sender, st *Status, keepUnknown bool) (bool, error) {
	switch st.Status {
	case "sent", "delivered", "read", "played", "failed":
	default:
		return false, nil // "deleted" and unknown statuses are ignored
	}
	u := conversation.StatusUpdate{ExternalID: st.ID, Status: st.Status}
	if len(st.Errors) > 0 {
		u.Error = st.Errors[0].MessageError()
		if st.Errors[0].Code == 131047 && u.Error.Details == "" {
			u.Error.Details = "More than 24 hours have passed since the customer last replied: only a template can be sent."
		}
	} else if st.Status == "failed" {
		u.Error = &conversation.MessageError{Code: "failed", Title: "Meta reported the message failed"}
	}
	if st.Pricing != nil {
		b, _ := json.Marshal(st.Pricing)
		u.Pricing, u.CostMicros = string(b), PriceOf(st.Pricing)
	}
	m, err := s.Conversations.UpdateStatus(ctx, x.WorkspaceID, u)
	if err != nil {
		return false, err
	}
	if m != nil {
		s.metrics().Statuses.WithLabelValues(st.Status).Inc()
	}
	if m == nil && keepUnknown {
		// Perhaps our send's answer is not committed yet: keep the report for when it is.
		b, _ := json.Marshal(st)
		if err := s.Repo.AddPendingStatus(ctx, x.WorkspaceID, st.ID, string(b), s.now()); err != nil {
			return false, err
		}
	}
	return m != nil, nil
}

// applyPending applies the status reports that arrived before the message's wamid was stored.
func (s *Service) applyPending(ctx context.Context, x *Sender, wamid string) error {
	pending, err := s.Repo.TakePendingStatuses(ctx, x.WorkspaceID, wamid)
	if err != nil {
		return err
	}
	for _, p := range pending {
		var st Status
		if err := json.Unmarshal([]byte(p), &st); err != nil {
			continue
		}
		if _, err := s.applyStatus(ctx, x, &st, false); err != nil {
			return err
		}
	}
	return nil
}

// Verified returns, by phone number id, the senders among phoneNumberIDs (the numbers a delivery
// names) whose app secret produced the signature. With none named (a body that is not a delivery,
// a change without metadata) every sender's secret is tried, so that a signed but broken body can
// be told from a forged one.
func (s *Service) Verified(ctx context.Context, body []byte, sum []byte, phoneNumberIDs []string) (map[string]*Sender, error) {
	var candidates []*Sender
	var err error
	if len(phoneNumberIDs) > 0 {
		candidates, err = s.cachedSenders(ctx, phoneNumberIDs)
	} else { // not JSON, or a change about a number with no metadata (quality updates)
		candidates, err = s.allSendersOpened(ctx)
	}
	if err != nil {
		return nil, err
	}
	out := map[string]*Sender{}
	checked := map[string]bool{}
	for _, x := range candidates {
		ok, done := checked[x.AppSecret]
		if !done {
			ok = VerifySignature(body, sum, x.AppSecret)
			checked[x.AppSecret] = ok
		}
		if ok {
			out[x.PhoneNumberID] = x
		}
	}
	return out, nil
}

// ErrNoSender is returned for a sender id the workspace does not have.
var ErrNoSender = errors.New("whatsapp sender not found")
