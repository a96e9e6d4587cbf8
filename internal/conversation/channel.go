package conversation

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parley-hq/parley/internal/ids"
)

// CustomerWindow is how long a customer's last message keeps free-form replies allowed on channels
// with a customer service window (WhatsApp).
const CustomerWindow = 24 * time.Hour

// ErrWindowClosed refuses a free-form outbound message after the customer service window closed:
// only templates may be sent then.
var ErrWindowClosed = errors.New("the 24-hour customer service window is closed: send a template")

// WindowOpen reports whether free-form messages may be sent to the conversation's customer at now.
func WindowOpen(c *Conversation, now time.Time) bool {
	return c.LastInboundAt != nil && now.Before(c.LastInboundAt.Add(CustomerWindow))
}

// Channel delivers a conversation type's outbound messages (agents' and the AI's) to the customer.
type Channel interface {
	// CheckOutbound refuses a message the channel cannot send now (ErrWindowClosed).
	CheckOutbound(ctx context.Context, c *Conversation, m *Message) error
	// Deliver runs inside the transaction that stores m, to queue its sending durably with it.
	Deliver(tx *sql.Tx, c *Conversation, m *Message) error
}

// ChannelRepository is what the channel operations need from the store beyond Repository.
type ChannelRepository interface {
	// FindChannelConversation returns the newest conversation of the type that is not ended for
	// (channel, customer), or ErrNotFound-like error (nil conversation, nil error when none).
	FindChannelConversation(ctx context.Context, workspaceID string, typ Type, channelID, customerID string) (*Conversation, error)
	// MessageByExternalID finds a message by its channel id: its conversation's id and the message.
	MessageByExternalID(ctx context.Context, workspaceID, externalID string) (string, *Message, error)
	// MessageByID finds a message of a conversation.
	MessageByID(ctx context.Context, workspaceID, conversationID, messageID string) (*Message, error)
	// SetMessageStatusTx moves a message to status (with err) if its status is one of from.
	SetMessageStatusTx(tx *sql.Tx, workspaceID, messageID, status string, msgErr *MessageError, from []string) (bool, error)
	// AddMessagePricingTx records a message's channel price once; false when it was already priced.
	AddMessagePricingTx(tx *sql.Tx, workspaceID, messageID, pricing string, costMicros int64) (bool, error)
	// SetMessageExternalTx sets a sent message's channel id.
	SetMessageExternalTx(tx *sql.Tx, workspaceID, messageID, externalID string) error
	// SetMessageMediaTx replaces a message's media reference.
	SetMessageMediaTx(tx *sql.Tx, workspaceID, messageID string, media *Media) error
	// AddMessageCostTx adds a cost (transcription, vision) to a message.
	AddMessageCostTx(tx *sql.Tx, workspaceID, messageID string, costMicros int64) error
	// SetCustomerNameTx updates the customer's display name.
	SetCustomerNameTx(tx *sql.Tx, workspaceID, conversationID, name string) error
}

type channelSet struct {
	mu sync.RWMutex
	m  map[Type]Channel
}

// channels holds each service's registered channels (kept beside the Service so that its
// struct stays the foundation's).
var channels sync.Map // *Service → *channelSet

// RegisterChannel makes ch deliver the outbound messages of conversations of type t.
func (s *Service) RegisterChannel(t Type, ch Channel) {
	v, _ := channels.LoadOrStore(s, &channelSet{m: map[Type]Channel{}})
	set := v.(*channelSet)
	set.mu.Lock()
	set.m[t] = ch
	set.mu.Unlock()
}

func (s *Service) channel(t Type) Channel {
	v, ok := channels.Load(s)
	if !ok {
		return nil
	}
	set := v.(*channelSet)
	set.mu.RLock()
	defer set.mu.RUnlock()
	return set.m[t]
}

// prepareOutbound lets the conversation's channel refuse an outbound message or queue its delivery
// in the transaction that stores it.
func (s *Service) prepareOutbound(ctx context.Context, c *Conversation, m *Message, change *Change) error {
	if m.Direction != Outbound {
		return nil
	}
	ch := s.channel(c.Type)
	if ch == nil {
		return nil
	}
	if err := ch.CheckOutbound(ctx, c, m); err != nil {
		return err
	}
	if m.Status == "" {
		m.Status = "queued"
	}
	prev := change.InTx
	change.InTx = func(tx *sql.Tx, stored []*Message) error {
		if prev != nil {
			if err := prev(tx, stored); err != nil {
				return err
			}
		}
		for _, sm := range stored {
			if sm.Direction == Outbound {
				if err := ch.Deliver(tx, c, sm); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return nil
}

func (s *Service) channelRepo() (ChannelRepository, error) {
	r, ok := s.repo.(ChannelRepository)
	if !ok {
		return nil, errors.New("the store does not support channels")
	}
	return r, nil
}

// ChannelCustomer identifies a channel's customer.
type ChannelCustomer struct {
	Type         Type
	ChannelID    string // the sender / widget id
	CustomerID   string // WhatsApp: the wa_id
	CustomerName string
	AssistantID  string
	Metadata     map[string]string
}

// FindChannel returns the customer's open conversation on the channel, or nil when there is none.
func (s *Service) FindChannel(ctx context.Context, workspaceID string, in ChannelCustomer) (*Conversation, error) {
	repo, err := s.channelRepo()
	if err != nil {
		return nil, err
	}
	return repo.FindChannelConversation(ctx, workspaceID, in.Type, in.ChannelID, in.CustomerID)
}

// FindOrCreate returns the customer's open conversation on the channel, creating one when there
// is none (or the last one ended). created reports a new conversation.
func (s *Service) FindOrCreate(ctx context.Context, workspaceID string, in ChannelCustomer) (c *Conversation, created bool, err error) {
	repo, err := s.channelRepo()
	if err != nil {
		return nil, false, err
	}
	lockKey := "cust:" + workspaceID + ":" + string(in.Type) + ":" + in.ChannelID + ":" + in.CustomerID
	l := s.lockTurn(lockKey)
	defer s.unlockTurn(lockKey, l)
	c, err = repo.FindChannelConversation(ctx, workspaceID, in.Type, in.ChannelID, in.CustomerID)
	if err != nil {
		return nil, false, fmt.Errorf("find conversation: %w", err)
	}
	if c != nil {
		if in.CustomerName != "" && in.CustomerName != c.CustomerName {
			name := in.CustomerName
			if _, _, err := s.repo.Apply(ctx, workspaceID, c.ID, Change{InTx: func(tx *sql.Tx, _ []*Message) error {
				return repo.SetCustomerNameTx(tx, workspaceID, c.ID, name)
			}}); err != nil {
				return nil, false, fmt.Errorf("update customer name: %w", err)
			}
			c.CustomerName = name
		}
		return c, false, nil
	}
	now := s.now()
	c = &Conversation{
		ID: ids.New(), WorkspaceID: workspaceID, Type: in.Type, Status: StatusActive, AssistantID: in.AssistantID,
		CustomerID: in.CustomerID, CustomerName: in.CustomerName, ChannelID: in.ChannelID, Metadata: in.Metadata,
		LastMessageAt: now, CreatedAt: now, UpdatedAt: now,
	}
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
	if in.AssistantID != "" {
		if a, err := s.assistants.Get(ctx, workspaceID, in.AssistantID); err == nil {
			c.AssistantName = a.Name
		} else {
			c.AssistantID = "" // the sender's assistant is gone: record the conversation without one
		}
	}
	if err := s.repo.CreateConversation(ctx, c, nil); err != nil {
		if errors.Is(err, ErrDuplicate) {
			// Another instance created it a moment ago (the lock above is per process; the
			// database's unique index is what holds across instances): use theirs.
			if existing, ferr := repo.FindChannelConversation(ctx, workspaceID, in.Type, in.ChannelID, in.CustomerID); ferr == nil && existing != nil {
				return existing, false, nil
			}
		}
		return nil, false, fmt.Errorf("create conversation: %w", err)
	}
	s.publish(workspaceID, c, nil)
	return c, true, nil
}

// Receive stores a channel's inbound messages without running the assistant (a job answers later).
// Messages whose external id was stored before are skipped; inTx runs in the same transaction with
// the messages actually stored, to queue the work that follows them.
func (s *Service) Receive(ctx context.Context, workspaceID, conversationID string, msgs []*Message, variables []Variable, inTx func(tx *sql.Tx, stored []*Message) error) (*Conversation, []*Message, error) {
	for _, m := range msgs {
		if m.ID == "" {
			m.ID = ids.New()
		}
		m.ConversationID = conversationID
		if m.CreatedAt.IsZero() {
			m.CreatedAt = s.now()
		}
	}
	c, stored, err := s.repo.Apply(ctx, workspaceID, conversationID, Change{Messages: msgs, Variables: variables, InTx: inTx})
	if err != nil {
		return nil, nil, fmt.Errorf("store inbound messages: %w", err)
	}
	if len(stored) > 0 {
		s.publish(workspaceID, c, stored)
	}
	return c, stored, nil
}

// SendOutbound stores an outbound message the channel itself originates (a template from an
// automation), with variables, queuing its delivery through inTx in the same transaction.
func (s *Service) SendOutbound(ctx context.Context, workspaceID, conversationID string, m *Message, variables []Variable, inTx func(tx *sql.Tx, stored []*Message) error) (*Conversation, error) {
	m.Direction = Outbound
	c, stored, err := s.Receive(ctx, workspaceID, conversationID, []*Message{m}, variables, inTx)
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		return c, errors.New("outbound message was not stored")
	}
	return c, nil
}

// Answer runs the assistant's turn for the conversation's latest customer messages, from a job.
// It does nothing when the conversation is not active or has no assistant.
func (s *Service) Answer(ctx context.Context, workspaceID, conversationID string) ([]*Message, error) {
	l := s.lockTurn(conversationID)
	defer s.unlockTurn(conversationID, l)
	c, err := s.Get(ctx, workspaceID, conversationID)
	if err != nil {
		return nil, err
	}
	if c.Status != StatusActive || c.AssistantID == "" {
		return nil, nil
	}
	return s.runTurn(ctx, c, nil)
}

// statusRank orders delivery statuses: a status only ever moves up.
var statusRank = map[string]int{"": 0, "queued": 0, "sent": 1, "delivered": 2, "read": 3, "played": 4}

// StatusUpdate is a channel's delivery report for an outbound message.
type StatusUpdate struct {
	ExternalID string
	Status     string // sent, delivered, read, played, failed
	Error      *MessageError
	// Pricing (JSON) and its cost are recorded once per message, whichever report carries them.
	Pricing    string
	CostMicros int64
}

// errAlreadyPriced aborts a status transaction whose price was recorded meanwhile.
var errAlreadyPriced = errors.New("message already priced")

// UpdateStatus applies a delivery report to the outbound message with the channel id. It never moves
// a status backwards (sent < delivered < read < played); failed replaces only queued or sent and is
// final. The report's price is added to the message and the conversation once. It returns the
// message as it now is, or nil when no message has the id.
func (s *Service) UpdateStatus(ctx context.Context, workspaceID string, u StatusUpdate) (*Message, error) {
	repo, err := s.channelRepo()
	if err != nil {
		return nil, err
	}
	convID, m, err := repo.MessageByExternalID(ctx, workspaceID, u.ExternalID)
	if err != nil || m == nil {
		return nil, err
	}
	var from []string
	switch {
	case u.Status == "failed":
		from = []string{"", "queued", "sent"}
	default:
		rank, ok := statusRank[u.Status]
		if !ok {
			return nil, &InputError{"status", "unknown status " + u.Status}
		}
		for st, r := range statusRank {
			if r < rank {
				from = append(from, st)
			}
		}
	}
	apply := func(withPrice bool) (*Conversation, error) {
		ch := Change{InTx: func(tx *sql.Tx, _ []*Message) error {
			if _, err := repo.SetMessageStatusTx(tx, workspaceID, m.ID, u.Status, u.Error, from); err != nil {
				return err
			}
			if withPrice {
				ok, err := repo.AddMessagePricingTx(tx, workspaceID, m.ID, u.Pricing, u.CostMicros)
				if err != nil {
					return err
				}
				if !ok {
					return errAlreadyPriced
				}
			}
			return nil
		}}
		if withPrice {
			ch.CostMicros = u.CostMicros
		}
		c, _, err := s.repo.Apply(ctx, workspaceID, convID, ch)
		return c, err
	}
	withPrice := u.Pricing != ""
	c, err := apply(withPrice)
	if withPrice && errors.Is(err, errAlreadyPriced) {
		c, err = apply(false)
	}
	if err != nil {
		return nil, fmt.Errorf("update status of %s: %w", u.ExternalID, err)
	}
	now, err := repo.MessageByID(ctx, workspaceID, convID, m.ID)
	if err != nil {
		return nil, err
	}
	s.publish(workspaceID, c, []*Message{now})
	return now, nil
}

// MarkSent records the channel id a sent message got and moves it to sent (or to failed with
// the reason when sending failed for good: pass externalID "" and msgErr).
func (s *Service) MarkSent(ctx context.Context, workspaceID, conversationID, messageID, externalID string, msgErr *MessageError) (*Message, error) {
	repo, err := s.channelRepo()
	if err != nil {
		return nil, err
	}
	c, _, err := s.repo.Apply(ctx, workspaceID, conversationID, Change{InTx: func(tx *sql.Tx, _ []*Message) error {
		if msgErr != nil {
			_, err := repo.SetMessageStatusTx(tx, workspaceID, messageID, "failed", msgErr, []string{"", "queued", "sent"})
			return err
		}
		if err := repo.SetMessageExternalTx(tx, workspaceID, messageID, externalID); err != nil {
			return err
		}
		_, err := repo.SetMessageStatusTx(tx, workspaceID, messageID, "sent", nil, []string{"", "queued"})
		return err
	}})
	if err != nil {
		return nil, fmt.Errorf("mark message %s sent: %w", messageID, err)
	}
	m, err := repo.MessageByID(ctx, workspaceID, conversationID, messageID)
	if err != nil {
		return nil, err
	}
	s.publish(workspaceID, c, []*Message{m})
	return m, nil
}

// SetMedia replaces a message's media reference (after the channel downloaded it, with what the
// media AI made of it and its cost), in the same transaction as inTx (which may queue the answer
// that waited for it).
func (s *Service) SetMedia(ctx context.Context, workspaceID, conversationID, messageID string, media *Media, costMicros int64, inTx func(tx *sql.Tx) error) error {
	repo, err := s.channelRepo()
	if err != nil {
		return err
	}
	c, _, err := s.repo.Apply(ctx, workspaceID, conversationID, Change{CostMicros: costMicros, InTx: func(tx *sql.Tx, _ []*Message) error {
		if media != nil {
			if err := repo.SetMessageMediaTx(tx, workspaceID, messageID, media); err != nil {
				return err
			}
		}
		if costMicros != 0 {
			if err := repo.AddMessageCostTx(tx, workspaceID, messageID, costMicros); err != nil {
				return err
			}
		}
		if inTx != nil {
			return inTx(tx)
		}
		return nil
	}})
	if err != nil {
		return fmt.Errorf("set media of %s: %w", messageID, err)
	}
	if m, err := repo.MessageByID(ctx, workspaceID, conversationID, messageID); err == nil {
		s.publish(workspaceID, c, []*Message{m})
	}
	return nil
}

// Messages returns a conversation's messages (lastN > 0: the most recent), for channel jobs.
func (s *Service) Messages(ctx context.Context, workspaceID, conversationID string, lastN int) ([]*Message, error) {
	return s.repo.Messages(ctx, workspaceID, conversationID, lastN)
}

// Within runs fn in a transaction on the conversation (channel bookkeeping such as queuing a
// message's delivery together with its status), and tells live views.
func (s *Service) Within(ctx context.Context, workspaceID, conversationID string, fn func(tx *sql.Tx) error) (*Conversation, error) {
	c, _, err := s.repo.Apply(ctx, workspaceID, conversationID, Change{InTx: func(tx *sql.Tx, _ []*Message) error { return fn(tx) }})
	if err != nil {
		return nil, err
	}
	s.publish(workspaceID, c, nil)
	return c, nil
}
