package whatsapp

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/riverqueue/river"

	"github.com/parley-hq/parley/internal/blob"
	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/jobs"
)

// ReplyArgs asks the assistant to answer a conversation after the customer message MessageID.
type ReplyArgs struct {
	WorkspaceID    string `json:"workspace_id"`
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	SenderID       string `json:"sender_id"`
}

func (ReplyArgs) Kind() string { return "whatsapp_reply" }

// InsertOpts: behind sends in the queue (River takes jobs by priority, then age), so that during a
// burst an answer already written goes out before more answers are written. At one priority the
// sends waited behind every reply job queued before them: 22k customers' answers were written at
// ~330 a second and sent at ~12 a second until the last was written.
func (ReplyArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Priority: replyPriority} }

// replyPriority is the reply jobs' River priority (1, the default, is the highest: sends, media).
const replyPriority = 2

// SendArgs sends one stored outbound message through the Graph API.
type SendArgs struct {
	WorkspaceID    string `json:"workspace_id"`
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
}

func (SendArgs) Kind() string { return "whatsapp_send" }

// InsertOpts: one send job per message, ever.
func (SendArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: 8, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// MediaArgs downloads an inbound attachment; ThenReplyTo queues the answer once it is stored.
type MediaArgs struct {
	WorkspaceID    string `json:"workspace_id"`
	ConversationID string `json:"conversation_id"`
	MessageID      string `json:"message_id"`
	SenderID       string `json:"sender_id"`
	MediaID        string `json:"media_id"`
	ThenReplyTo    string `json:"then_reply_to,omitempty"`
}

func (MediaArgs) Kind() string { return "whatsapp_media" }

// InsertOpts: a few attempts; the answer does not wait for ever.
func (MediaArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 5} }

// SenderInfoArgs refreshes a sender's quality rating and messaging limit from the Graph API.
type SenderInfoArgs struct {
	WorkspaceID string `json:"workspace_id"`
	SenderID    string `json:"sender_id"`
}

func (SenderInfoArgs) Kind() string { return "whatsapp_sender_info" }

// InsertOpts: informative only, a few attempts.
func (SenderInfoArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 3} }

type senderInfoWorker struct {
	river.WorkerDefaults[SenderInfoArgs]
	s *Service
}

func (w *senderInfoWorker) Work(ctx context.Context, job *river.Job[SenderInfoArgs]) error {
	s := w.s
	x, err := s.Sender(ctx, job.Args.WorkspaceID, job.Args.SenderID)
	if err != nil {
		return jobs.Cancel(err)
	}
	info, err := s.Client(x).Phone(ctx)
	if err != nil {
		if Classify(err) == BadToken {
			_ = s.Repo.SetWASenderError(ctx, x.ID, "The access token was rejected (190): update the sender's token. "+err.Error(), s.now())
			return jobs.Cancel(err)
		}
		if Classify(err) == Permanent {
			return jobs.Cancel(err)
		}
		return err
	}
	return s.Repo.SetWASenderQuality(ctx, x.ID, info.QualityRating, info.MessagingLimitTier, s.now())
}

// RegisterWorkers adds the channel's job workers to the queue.
func (s *Service) RegisterWorkers(q *jobs.Queue) {
	jobs.Register(q, &senderInfoWorker{s: s})
	jobs.Register(q, &replyWorker{s: s})
	jobs.Register(q, &sendWorker{s: s})
	jobs.Register(q, &mediaWorker{s: s})
}

type replyWorker struct {
	river.WorkerDefaults[ReplyArgs]
	s *Service
}

// Work runs the assistant for the customer's latest messages and queues the sending of what it
// wrote. A retry does not answer twice: an answer already stored after the message is only sent.
func (w *replyWorker) Work(ctx context.Context, job *river.Job[ReplyArgs]) error {
	s, a := w.s, job.Args
	trigger, err := s.Repo.MessageByID(ctx, a.WorkspaceID, a.ConversationID, a.MessageID)
	if err != nil {
		return jobs.Cancel(fmt.Errorf("reply: message %s: %w", a.MessageID, err))
	}
	// A burst of one customer's messages queues a job each; the last one's marks the chat read and
	// answers them all. Tell that cheaply, before the read receipt and what followed the trigger
	// (the checks below decide the same).
	if superseded, err := s.Repo.CustomerMessageSuperseded(ctx, a.WorkspaceID, a.ConversationID, a.MessageID); err == nil && superseded {
		return nil
	}
	if x, err := s.Sender(ctx, a.WorkspaceID, a.SenderID); err == nil && trigger.ExternalID != "" && job.Attempt == 1 {
		if err := s.Client(x).MarkRead(ctx, trigger.ExternalID); err != nil {
			s.log().Warn("whatsapp: mark as read failed", "sender", x.ID, "err", err)
		}
	}
	// Only what came after the trigger matters here (the assistant reads its own history): reading
	// the conversation's latest 200 messages, twice, was 72% of a reply job's CPU in a burst.
	later, err := s.Repo.MessagesAfter(ctx, a.WorkspaceID, a.ConversationID, a.MessageID, replyLookahead)
	if err != nil {
		return err
	}
	answered, laterCustomer := false, false
	for _, m := range later {
		switch {
		case m.Role == conversation.RoleUser && Answerable(m.Type):
			laterCustomer = true
		case m.Role == conversation.RoleAssistant && m.IsAnswer():
			// A bare tool round is not an answer: a turn cut off after it (a crash) must run
			// again to produce the reply.
			answered = true
		}
	}
	if laterCustomer && !answered {
		return nil // the job of the later message answers both
	}
	if !answered {
		if _, err := s.Conversations.Answer(ctx, a.WorkspaceID, a.ConversationID); err != nil {
			return fmt.Errorf("answer: %w", err)
		}
		// The answer comes after what was read: read on from the last of it, so that a trigger
		// followed by replyLookahead messages that are no answer still gets its answer sent.
		anchor := a.MessageID
		if len(later) > 0 {
			anchor = later[len(later)-1].ID
		}
		more, err := s.Repo.MessagesAfter(ctx, a.WorkspaceID, a.ConversationID, anchor, replyLookahead)
		if err != nil {
			return err
		}
		later = append(later, more...)
	}
	return s.queueAnswers(ctx, a.WorkspaceID, a.ConversationID, later)
}

// replyLookahead bounds how many of the messages after a reply's trigger it reads: an answer and
// its sends are a few, and a later customer message among them means another job answers.
const replyLookahead = 200

// queueAnswers queues the sending of the assistant's unsent messages among later (those after a
// reply's trigger).
func (s *Service) queueAnswers(ctx context.Context, ws, convID string, later []*conversation.Message) error {
	var pending []*conversation.Message
	for _, m := range later {
		if m.Role != conversation.RoleAssistant || m.Direction != conversation.Outbound || m.Text == "" {
			continue
		}
		if m.ExternalID == "" && m.Status == "" {
			pending = append(pending, m)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	c, err := s.Conversations.Get(ctx, ws, convID)
	if err != nil {
		return err
	}
	open := conversation.WindowOpen(c, s.now())
	_, err = s.Conversations.Within(ctx, ws, convID, func(tx *sql.Tx) error {
		for _, m := range pending {
			if !open {
				// The AI does not send free-form text outside the window.
				e := &conversation.MessageError{Code: "window_closed", Title: "Not sent: the 24-hour customer service window is closed",
					Details: "Only a template can be sent until the customer writes again."}
				if _, err := s.Repo.SetMessageStatusTx(tx, ws, m.ID, "failed", e, []string{""}); err != nil {
					return err
				}
				continue
			}
			ok, err := s.Repo.SetMessageStatusTx(tx, ws, m.ID, "queued", nil, []string{""})
			if err != nil {
				return err
			}
			if ok {
				if err := s.Jobs.InsertTx(ctx, tx, SendArgs{WorkspaceID: ws, ConversationID: convID, MessageID: m.ID}, nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return err
}

type sendWorker struct {
	river.WorkerDefaults[SendArgs]
	s *Service
}

// NextRetry backs off quickly at first (throttling clears in seconds), then slower.
func (w *sendWorker) NextRetry(job *river.Job[SendArgs]) time.Time {
	d := time.Duration(1<<min(job.Attempt, 10)) * 500 * time.Millisecond
	return time.Now().Add(min(d, 10*time.Minute))
}

func (w *sendWorker) Work(ctx context.Context, job *river.Job[SendArgs]) error {
	s, a := w.s, job.Args
	m, err := s.Repo.MessageByID(ctx, a.WorkspaceID, a.ConversationID, a.MessageID)
	if err != nil {
		return jobs.Cancel(fmt.Errorf("send: message %s: %w", a.MessageID, err))
	}
	if m.ExternalID != "" || (m.Status != "" && m.Status != "queued") {
		return nil // sent (or settled) before
	}
	c, err := s.Conversations.Get(ctx, a.WorkspaceID, a.ConversationID)
	if err != nil {
		return jobs.Cancel(err)
	}
	// Messages reach the customer in the order they were written: wait for an earlier one still
	// queued (bounded, so one stuck message cannot hold the conversation).
	if job.Attempt < 50 {
		if earlier, err := s.earlierQueued(ctx, a, m.ID); err == nil && earlier {
			return jobs.Snooze(150 * time.Millisecond)
		}
	}
	fail := func(e *conversation.MessageError) error {
		_, err := s.Conversations.MarkSent(ctx, a.WorkspaceID, a.ConversationID, m.ID, "", e)
		return err
	}
	x, err := s.Sender(ctx, a.WorkspaceID, c.ChannelID)
	if err != nil {
		return fail(&conversation.MessageError{Code: "sender_not_found", Title: "The conversation's WhatsApp sender no longer exists"})
	}
	client := s.Client(x)
	var bodies []any
	if m.Type != "template" && !conversation.WindowOpen(c, s.now()) {
		return fail(&conversation.MessageError{Code: "window_closed", Title: "Not sent: the 24-hour customer service window is closed",
			Details: "Only a template can be sent until the customer writes again."})
	}
	if m.Type == "text" {
		for _, part := range SplitText(m.Text, MaxTextLength) {
			bodies = append(bodies, TextMessage(c.CustomerID, part))
		}
	} else {
		// Templates, media and interactive messages are sent as the request stored with them.
		p, err := s.Repo.MessagePayload(ctx, a.WorkspaceID, m.ID)
		if err != nil || p == "" {
			return fail(&conversation.MessageError{Code: "payload_missing", Title: "The " + m.Type + " request was not stored"})
		}
		bodies = []any{rawJSON(p)}
	}
	var first string
	for _, b := range bodies {
		wamid, err := client.Send(ctx, b)
		if err != nil {
			s.metrics().Sends.WithLabelValues(Classify(err).String()).Inc()
			return s.sendFailed(ctx, job, x, m, err, fail)
		}
		s.metrics().Sends.WithLabelValues("sent").Inc()
		if first == "" {
			first = wamid
		}
	}
	if _, err := s.Conversations.MarkSent(ctx, a.WorkspaceID, a.ConversationID, m.ID, first, nil); err != nil {
		return err
	}
	if err := s.applyPending(ctx, x, first); err != nil {
		s.log().Warn("whatsapp: early status reports not applied", "message", m.ID, "err", err)
	}
	if x.LastError != "" {
		_ = s.Repo.SetWASenderError(ctx, x.ID, "", s.now())
	}
	return nil
}

// earlierQueued reports whether an outbound message written before messageID is still waiting to
// be sent.
func (s *Service) earlierQueued(ctx context.Context, a SendArgs, messageID string) (bool, error) {
	history, err := s.Conversations.Messages(ctx, a.WorkspaceID, a.ConversationID, 100)
	if err != nil {
		return false, err
	}
	for _, h := range history {
		if h.ID == messageID {
			return false, nil
		}
		if h.Direction == conversation.Outbound && h.Status == "queued" {
			return true, nil
		}
	}
	return false, nil
}

func (s *Service) sendFailed(ctx context.Context, job *river.Job[SendArgs], x *Sender, m *conversation.Message, err error, fail func(*conversation.MessageError) error) error {
	class := Classify(err)
	me := &conversation.MessageError{Code: "send_failed", Title: "The Graph API refused the message", Details: err.Error()}
	var ae *APIError
	if errors.As(err, &ae) {
		me.Code = strconv.Itoa(ae.Code)
		me.Title = ae.Message
		me.Details = ae.Details
		if ae.Code == 131047 && me.Details == "" {
			me.Details = "More than 24 hours have passed since the customer last replied: only a template can be sent."
		}
	}
	s.log().Warn("whatsapp: send failed", "sender", x.ID, "message", m.ID, "class", class.String(), "err", err)
	last := job.Attempt >= job.MaxAttempts
	switch class {
	case BadToken:
		_ = s.Repo.SetWASenderError(ctx, x.ID, "The access token was rejected (190): update the sender's token. "+err.Error(), s.now())
		return fail(me)
	case Throttled, Retryable:
		if last {
			return fail(me)
		}
		return err // retried with backoff (NextRetry)
	}
	return fail(me)
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

type mediaWorker struct {
	river.WorkerDefaults[MediaArgs]
	s *Service
}

func (w *mediaWorker) Work(ctx context.Context, job *river.Job[MediaArgs]) error {
	s, a := w.s, job.Args
	err := s.fetchMedia(ctx, a)
	if err == nil {
		return nil
	}
	permanent := errors.Is(err, blob.ErrTooLarge) || (Classify(err) == Permanent) || job.Attempt >= job.MaxAttempts
	if !permanent {
		return err
	}
	s.log().Warn("whatsapp: media not stored", "message", a.MessageID, "err", err)
	// Answer without the file rather than not at all.
	if e := s.Conversations.SetMedia(ctx, a.WorkspaceID, a.ConversationID, a.MessageID, nil, 0, s.replyAfterMedia(ctx, a)); e != nil {
		return e
	}
	return jobs.Cancel(err)
}

func (s *Service) replyAfterMedia(ctx context.Context, a MediaArgs) func(tx *sql.Tx) error {
	return func(tx *sql.Tx) error {
		if a.ThenReplyTo == "" {
			return nil
		}
		return s.Jobs.InsertTx(ctx, tx, ReplyArgs{WorkspaceID: a.WorkspaceID, ConversationID: a.ConversationID, MessageID: a.ThenReplyTo, SenderID: a.SenderID}, nil)
	}
}

// MediaURL is where the API serves a stored attachment.
func MediaURL(messageID string) string { return "/api/v1/whatsapp/media/" + messageID }

// MediaKey is the blob key of a message's attachment.
func MediaKey(workspaceID, messageID string) string {
	return "whatsapp/" + workspaceID + "/" + messageID
}

func (s *Service) fetchMedia(ctx context.Context, a MediaArgs) error {
	x, err := s.Sender(ctx, a.WorkspaceID, a.SenderID)
	if err != nil {
		return jobs.Cancel(fmt.Errorf("media: sender %s: %w", a.SenderID, err))
	}
	m, err := s.Repo.MessageByID(ctx, a.WorkspaceID, a.ConversationID, a.MessageID)
	if err != nil {
		return jobs.Cancel(fmt.Errorf("media: message %s: %w", a.MessageID, err))
	}
	client := s.Client(x)
	max := s.MaxMediaBytes
	if max <= 0 {
		max = 100 << 20
	}
	var body io.ReadCloser
	var ctype string
	var info *MediaInfo
	for try := 0; try < 2; try++ { // a URL lives 5 minutes: on 404 get a fresh one
		if info, err = client.Media(ctx, a.MediaID); err != nil {
			return err
		}
		if info.Size() > max {
			return fmt.Errorf("media %s: %d bytes: %w", a.MediaID, info.Size(), blob.ErrTooLarge)
		}
		body, ctype, err = client.Download(ctx, info.URL)
		if !errors.Is(err, ErrMediaURLExpired) {
			break
		}
	}
	if err != nil {
		return err
	}
	defer body.Close()
	var buf bytes.Buffer
	key := MediaKey(a.WorkspaceID, a.MessageID)
	size, err := s.Blobs.Put(ctx, key, io.TeeReader(body, &limitedBuffer{b: &buf, max: 25 << 20}), max)
	if err != nil {
		return err
	}
	media := &conversation.Media{ID: a.MediaID, URL: MediaURL(a.MessageID)}
	if m.Media != nil {
		*media = *m.Media
		media.URL = MediaURL(a.MessageID)
	}
	if media.MimeType == "" {
		media.MimeType = info.MimeType
		if media.MimeType == "" {
			media.MimeType = ctype
		}
	}
	cost := s.describe(ctx, a.WorkspaceID, m.Type, media, buf.Bytes(), size)
	return s.Conversations.SetMedia(ctx, a.WorkspaceID, a.ConversationID, a.MessageID, media, cost, s.replyAfterMedia(ctx, a))
}

// describe asks the runtime's media AI (when there is one) for a voice note's transcript or an
// image's description, returning what it cost.
func (s *Service) describe(ctx context.Context, ws, typ string, media *conversation.Media, data []byte, size int64) int64 {
	if s.MediaAI == nil || int64(len(data)) != size {
		return 0
	}
	ai := s.MediaAI()
	var text string
	var cost int64
	var err error
	switch typ {
	case "audio":
		switch t := ai.(type) {
		case transcriberWithCost:
			text, cost, err = t.TranscribeWithCost(ctx, ws, bytes.NewReader(data), media.Filename, media.MimeType)
		case Transcriber:
			text, err = t.Transcribe(ctx, ws, bytes.NewReader(data), media.Filename, media.MimeType)
		default:
			return 0
		}
		media.Transcript = text
	case "image", "sticker":
		switch d := ai.(type) {
		case describerWithCost:
			text, cost, err = d.DescribeWithCost(ctx, ws, data, media.MimeType)
		case Describer:
			text, err = d.Describe(ctx, ws, data, media.MimeType)
		default:
			return 0
		}
		media.Description = text
	default:
		return 0
	}
	if err != nil {
		s.log().Warn("whatsapp: media AI failed; the message keeps its file only", "type", typ, "err", err)
		return 0
	}
	return cost
}

// limitedBuffer keeps up to max bytes (for the media AI) and silently drops the rest.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}
