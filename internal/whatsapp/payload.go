package whatsapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
)

// Payload is a webhook delivery: entries of changes, each with messages, statuses or errors.
type Payload struct {
	Object string  `json:"object"`
	Entry  []Entry `json:"entry"`
}

// Entry is one WhatsApp Business Account's part of a delivery.
type Entry struct {
	ID      string   `json:"id"`
	Changes []Change `json:"changes"`
}

// Change is one notification.
type Change struct {
	Field string `json:"field"`
	Value Value  `json:"value"`
}

// Value is a change's content.
type Value struct {
	MessagingProduct string           `json:"messaging_product"`
	Metadata         Metadata         `json:"metadata"`
	Contacts         []Contact        `json:"contacts"`
	Messages         []InboundMessage `json:"messages"`
	Statuses         []Status         `json:"statuses"`
	Errors           []ErrorObject    `json:"errors"`
	// phone_number_quality_update
	DisplayPhoneNumber string `json:"display_phone_number"`
	Event              string `json:"event"`
	CurrentLimit       string `json:"current_limit"`
}

// Metadata names the business number a change is about.
type Metadata struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	PhoneNumberID      string `json:"phone_number_id"`
}

// Contact is the customer as WhatsApp shows them.
type Contact struct {
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
	WaID   string `json:"wa_id"`
	UserID string `json:"user_id"`
}

// Timestamp is unix seconds, sent as a string (usually) or a number.
type Timestamp int64

// UnmarshalJSON accepts "1697043379" and 1697043379.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*t = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %s: %w", b, err)
	}
	*t = Timestamp(v)
	return nil
}

// Time converts to a UTC time (zero for 0).
func (t Timestamp) Time() time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.Unix(int64(t), 0).UTC()
}

// InboundMessage is a customer's message, every type's fields together.
type InboundMessage struct {
	From        string                 `json:"from"`
	ID          string                 `json:"id"`
	Timestamp   Timestamp              `json:"timestamp"`
	Type        string                 `json:"type"`
	Context     *MessageCtx            `json:"context,omitempty"`
	Text        *struct{ Body string } `json:"text,omitempty"`
	Image       *MediaObject           `json:"image,omitempty"`
	Audio       *MediaObject           `json:"audio,omitempty"`
	Video       *MediaObject           `json:"video,omitempty"`
	Document    *MediaObject           `json:"document,omitempty"`
	Sticker     *MediaObject           `json:"sticker,omitempty"`
	Location    *Location              `json:"location,omitempty"`
	Contacts    []SharedContact        `json:"contacts,omitempty"`
	Interactive *Interactive           `json:"interactive,omitempty"`
	Button      *struct {
		Text    string `json:"text"`
		Payload string `json:"payload"`
	} `json:"button,omitempty"`
	Reaction *struct {
		MessageID string `json:"message_id"`
		Emoji     string `json:"emoji"`
	} `json:"reaction,omitempty"`
	Referral *struct {
		SourceURL  string `json:"source_url"`
		SourceType string `json:"source_type"`
		Headline   string `json:"headline"`
		Body       string `json:"body"`
	} `json:"referral,omitempty"`
	System *struct {
		Body string `json:"body"`
		Type string `json:"type"`
	} `json:"system,omitempty"`
	Errors []ErrorObject `json:"errors,omitempty"`

	// Raw is the message object exactly as delivered, kept as its payload.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the message and keeps its raw bytes.
func (m *InboundMessage) UnmarshalJSON(b []byte) error {
	type plain InboundMessage
	if err := json.Unmarshal(b, (*plain)(m)); err != nil {
		return err
	}
	m.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// MessageCtx is what a message replies to or that it was forwarded.
type MessageCtx struct {
	From      string `json:"from"`
	ID        string `json:"id"`
	Forwarded bool   `json:"forwarded"`
}

// MediaObject is an attachment by Meta's media id (and, in newer deliveries, a URL).
type MediaObject struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	Caption  string `json:"caption"`
	Filename string `json:"filename"`
	URL      string `json:"url"`
	Voice    bool   `json:"voice"`
	Animated bool   `json:"animated"`
}

// Location is a shared place.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name"`
	Address   string  `json:"address"`
	URL       string  `json:"url"`
}

// SharedContact is a contact card.
type SharedContact struct {
	Name struct {
		FormattedName string `json:"formatted_name"`
		FirstName     string `json:"first_name"`
	} `json:"name"`
	Phones []struct {
		Phone string `json:"phone"`
		WaID  string `json:"wa_id"`
	} `json:"phones"`
}

// Interactive is the customer's answer to buttons, a list or a flow.
type Interactive struct {
	Type        string `json:"type"`
	ButtonReply *struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	} `json:"button_reply,omitempty"`
	ListReply *struct {
		ID          string `json:"id"`
		Title       string `json:"title"`
		Description string `json:"description"`
	} `json:"list_reply,omitempty"`
	NfmReply *struct {
		Name         string `json:"name"`
		Body         string `json:"body"`
		ResponseJSON string `json:"response_json"`
	} `json:"nfm_reply,omitempty"`
}

// Status is a delivery report of an outbound message.
type Status struct {
	ID           string    `json:"id"`
	Status       string    `json:"status"`
	Timestamp    Timestamp `json:"timestamp"`
	RecipientID  string    `json:"recipient_id"`
	Conversation *struct {
		ID     string `json:"id"`
		Origin struct {
			Type string `json:"type"`
		} `json:"origin"`
	} `json:"conversation,omitempty"`
	Pricing *Pricing      `json:"pricing,omitempty"`
	Errors  []ErrorObject `json:"errors,omitempty"`
}

// Pricing is how Meta bills a message.
type Pricing struct {
	Billable     *bool  `json:"billable,omitempty"`
	PricingModel string `json:"pricing_model"`
	Category     string `json:"category"`
	Type         string `json:"type,omitempty"`
}

// ErrorObject is an error in a webhook (message, status or change level).
type ErrorObject struct {
	Code      int    `json:"code"`
	Title     string `json:"title"`
	Message   string `json:"message"`
	ErrorData struct {
		Details string `json:"details"`
	} `json:"error_data"`
	Details string `json:"details"` // older deliveries put details at the top level
}

// MessageError converts to the stored form.
func (e ErrorObject) MessageError() *conversation.MessageError {
	details := e.ErrorData.Details
	if details == "" {
		details = e.Details
	}
	title := e.Title
	if title == "" {
		title = e.Message
	}
	return &conversation.MessageError{Code: strconv.Itoa(e.Code), Title: title, Details: details}
}

// ErrNotWhatsApp is returned for a JSON body that is not a WhatsApp Business Account delivery.
var ErrNotWhatsApp = errors.New("not a whatsapp_business_account delivery")

// Parse decodes a delivery. The body is only read: the signature is checked over the same bytes.
func Parse(body []byte) (*Payload, error) {
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("decode delivery: %w", err)
	}
	if p.Object != "" && p.Object != "whatsapp_business_account" {
		return nil, ErrNotWhatsApp
	}
	return &p, nil
}

// PhoneNumberIDs returns the distinct business numbers a delivery is about.
func (p *Payload) PhoneNumberIDs() []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range p.Entry {
		for _, c := range e.Changes {
			if id := c.Value.Metadata.PhoneNumberID; id != "" && !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

// customer returns the one customer (wa_id) the delivery's messages and statuses are about;
// single is false when it is about several customers or none (a quality update).
func (p *Payload) customer() (key string, single bool) {
	single = true
	same := func(waID string) {
		if id := OnlyDigits(waID); key == "" {
			key = id
		} else if id != key {
			single = false
		}
	}
	for _, e := range p.Entry {
		for _, c := range e.Changes {
			for _, m := range c.Value.Messages {
				same(m.From)
			}
			for _, st := range c.Value.Statuses {
				same(st.RecipientID)
			}
		}
	}
	if !single || key == "" {
		return "", false
	}
	return key, true
}

// Converted is an inbound message in Parley's terms.
type Converted struct {
	Type  string
	Text  string
	Media *conversation.Media
}

// Convert maps a WhatsApp message to a stored message's type, text and media reference. Unknown
// types are kept as unsupported with whatever explanation Meta gave.
func Convert(m *InboundMessage) Converted {
	media := func(typ string, o *MediaObject) Converted {
		if o == nil {
			return Converted{Type: typ}
		}
		return Converted{Type: typ, Text: o.Caption, Media: &conversation.Media{ID: o.ID, MimeType: o.MimeType, Filename: o.Filename}}
	}
	switch m.Type {
	case "text":
		if m.Text != nil {
			return Converted{Type: "text", Text: m.Text.Body}
		}
		return Converted{Type: "text"}
	case "image":
		return media("image", m.Image)
	case "audio":
		return media("audio", m.Audio)
	case "video":
		return media("video", m.Video)
	case "document":
		return media("document", m.Document)
	case "sticker":
		return media("sticker", m.Sticker)
	case "location":
		if l := m.Location; l != nil {
			parts := []string{}
			for _, s := range []string{l.Name, l.Address} {
				if s != "" {
					parts = append(parts, s)
				}
			}
			parts = append(parts, fmt.Sprintf("(%s, %s)", strconv.FormatFloat(l.Latitude, 'f', -1, 64), strconv.FormatFloat(l.Longitude, 'f', -1, 64)))
			return Converted{Type: "location", Text: "Location: " + strings.Join(parts, ", ")}
		}
		return Converted{Type: "location"}
	case "contacts":
		var names []string
		for _, c := range m.Contacts {
			n := c.Name.FormattedName
			if n == "" {
				n = c.Name.FirstName
			}
			var phones []string
			for _, p := range c.Phones {
				phones = append(phones, p.Phone)
			}
			if len(phones) > 0 {
				n += " (" + strings.Join(phones, ", ") + ")"
			}
			names = append(names, n)
		}
		return Converted{Type: "contacts", Text: "Shared contacts: " + strings.Join(names, "; ")}
	case "interactive":
		if i := m.Interactive; i != nil {
			switch {
			case i.ButtonReply != nil:
				return Converted{Type: "interactive", Text: i.ButtonReply.Title}
			case i.ListReply != nil:
				t := i.ListReply.Title
				if i.ListReply.Description != "" {
					t += " — " + i.ListReply.Description
				}
				return Converted{Type: "interactive", Text: t}
			case i.NfmReply != nil:
				t := i.NfmReply.Body
				if t == "" {
					t = i.NfmReply.ResponseJSON
				}
				return Converted{Type: "interactive", Text: t}
			}
		}
		return Converted{Type: "interactive"}
	case "button":
		if m.Button != nil {
			return Converted{Type: "button", Text: m.Button.Text}
		}
		return Converted{Type: "button"}
	case "reaction":
		if m.Reaction != nil {
			if m.Reaction.Emoji == "" {
				return Converted{Type: "reaction", Text: "(reaction removed)"}
			}
			return Converted{Type: "reaction", Text: m.Reaction.Emoji}
		}
		return Converted{Type: "reaction"}
	case "system":
		if m.System != nil {
			return Converted{Type: "unsupported", Text: m.System.Body}
		}
	}
	text := "[unsupported message type " + m.Type + "]"
	if len(m.Errors) > 0 {
		e := m.Errors[0].MessageError()
		text = "[" + strings.TrimSpace(e.Title+": "+e.Details) + "]"
	}
	return Converted{Type: "unsupported", Text: text}
}

// Answerable reports whether the assistant should answer a message of this type (a reaction is
// not a question).
func Answerable(typ string) bool { return typ != "reaction" }

// OnlyDigits keeps the digits of a phone number or wa_id.
func OnlyDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}
