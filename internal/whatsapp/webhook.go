package whatsapp

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"io"
	"net/http"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
)

// MaxDeliveryBytes bounds a webhook body (Meta's payloads are at most 3 MB).
const MaxDeliveryBytes = 8 << 20

// WebhookHandler serves GET (the verification handshake) and POST (deliveries) /webhooks/whatsapp.
func (s *Service) WebhookHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			s.verify(w, r)
		case http.MethodPost:
			s.deliver(w, r)
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// verify answers Meta's subscription handshake: the challenge when the verify token is one of a
// configured sender's (compared in constant time), else 403.
func (s *Service) verify(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	mode, token, challenge := q.Get("hub.mode"), q.Get("hub.verify_token"), q.Get("hub.challenge")
	ok := false
	if mode == "subscribe" && token != "" {
		senders, err := s.allSendersOpened(r.Context())
		if err != nil {
			s.log().Error("whatsapp: verify: list senders", "err", err)
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		for _, x := range senders {
			if subtle.ConstantTimeCompare([]byte(x.VerifyToken), []byte(token)) == 1 {
				ok = true
			}
		}
	}
	if !ok {
		http.Error(w, "verification failed", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, challenge)
}

// deliver stores a signed delivery before answering 200: its messages and their jobs, or during a
// burst the delivery itself for the drainer (inbox.go). Bad or missing signature: 401 and nothing
// stored; a body that is not JSON (but signed): 400.
func (s *Service) deliver(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxDeliveryBytes))
	if err != nil {
		s.metrics().Deliveries.WithLabelValues("too_large").Inc()
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	sum, ok := ParseSignature(r.Header.Get(SignatureHeader))
	if !ok {
		s.metrics().Deliveries.WithLabelValues("bad_signature").Inc()
		http.Error(w, "missing or malformed X-Hub-Signature-256", http.StatusUnauthorized)
		return
	}
	ctx := r.Context()
	// A delivery kept for later needs only its addresses read before the 200 (the drainer parses
	// it); one stored now is parsed whole.
	keep := s.keepForLater()
	var p *Payload
	var ids []string
	var perr error
	if keep {
		ids, perr = Addressed(body)
	} else if p, perr = Parse(body); perr == nil {
		ids = p.PhoneNumberIDs()
	}
	if perr != nil {
		signed, err := s.Verified(ctx, body, sum, nil)
		if err != nil {
			s.internal(w, err)
			return
		}
		if len(signed) == 0 {
			s.metrics().Deliveries.WithLabelValues("bad_signature").Inc()
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		s.metrics().Deliveries.WithLabelValues("bad_json").Inc()
		http.Error(w, "body is not a WhatsApp delivery: "+perr.Error(), http.StatusBadRequest)
		return
	}
	senders, err := s.Verified(ctx, body, sum, ids)
	if err != nil {
		s.internal(w, err)
		return
	}
	if len(senders) == 0 {
		s.metrics().Deliveries.WithLabelValues("bad_signature").Inc()
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return
	}
	// Store even if Meta hangs up: the work is committed or not, never half.
	if keep {
		if err := s.keep(context.WithoutCancel(ctx), body, senders); err != nil {
			s.internal(w, err)
			return
		}
		s.metrics().Deliveries.WithLabelValues("kept").Inc()
	} else {
		s.box.inline.Add(1)
		res, err := s.Receive(context.WithoutCancel(ctx), p, senders)
		s.box.inline.Add(-1)
		if err != nil {
			s.internal(w, err)
			return
		}
		s.metrics().Deliveries.WithLabelValues("stored").Inc()
		s.log().Debug("whatsapp: delivery stored", "messages", res.Stored, "statuses", res.Statuses)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok")
}

func (s *Service) internal(w http.ResponseWriter, err error) {
	s.metrics().Deliveries.WithLabelValues("error").Inc()
	s.log().Error("whatsapp: delivery not stored", "err", err)
	// 500 makes Meta retry the delivery later; replays are idempotent.
	http.Error(w, "temporarily unable to store the delivery", http.StatusInternalServerError)
}

// Channel returns the conversation channel that checks the window and queues sends for agents'
// messages written through the API.
func (s *Service) Channel() conversation.Channel { return channel{s} }

type channel struct{ s *Service }

func (c channel) CheckOutbound(ctx context.Context, conv *conversation.Conversation, m *conversation.Message) error {
	if m.Type == "template" {
		return nil
	}
	if !conversation.WindowOpen(conv, c.s.now()) {
		return conversation.ErrWindowClosed
	}
	return nil
}

func (c channel) Deliver(tx *sql.Tx, conv *conversation.Conversation, m *conversation.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.s.Jobs.InsertTx(ctx, tx, SendArgs{WorkspaceID: conv.WorkspaceID, ConversationID: conv.ID, MessageID: m.ID}, nil)
}

// ErrWindowClosed is the conversation package's error, re-exported for callers of this package.
var ErrWindowClosed = conversation.ErrWindowClosed
