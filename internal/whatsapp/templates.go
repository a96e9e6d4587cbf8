package whatsapp

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/parley-hq/parley/internal/conversation"
	"github.com/parley-hq/parley/internal/ids"
)

// InputError is bad input for the channel's API: a field and why.
type InputError struct{ Field, Message string }

func (e *InputError) Error() string { return e.Field + " " + e.Message }

var templateName = regexp.MustCompile(`^[a-z0-9_]{1,512}$`)

// Categories of templates.
var Categories = []string{"MARKETING", "UTILITY", "AUTHENTICATION"}

// ValidateTemplate checks a template before it is stored, normalising its category.
func ValidateTemplate(t *Template) error {
	if !templateName.MatchString(t.Name) {
		return &InputError{"name", "must be 1 to 512 lowercase letters, digits or underscores"}
	}
	if t.Language == "" || len(t.Language) > 16 {
		return &InputError{"language", "is required (a locale such as en_US)"}
	}
	t.Category = strings.ToUpper(strings.TrimSpace(t.Category))
	valid := false
	for _, c := range Categories {
		valid = valid || c == t.Category
	}
	if !valid {
		return &InputError{"category", "must be MARKETING, UTILITY or AUTHENTICATION"}
	}
	if len(t.Components) == 0 || string(t.Components) == "null" {
		t.Components = json.RawMessage("[]")
	}
	var comps []map[string]any
	if err := json.Unmarshal(t.Components, &comps); err != nil {
		return &InputError{"components", "must be an array of objects"}
	}
	for i, c := range comps {
		if typ, _ := c["type"].(string); typ == "" {
			return &InputError{"components", fmt.Sprintf("[%d] needs a type (HEADER, BODY, FOOTER, BUTTONS)", i)}
		}
	}
	return nil
}

type sendComponent struct {
	Type       string `json:"type"`
	Parameters []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"parameters"`
}

var placeholder = regexp.MustCompile(`\{\{\s*(\d+)\s*\}\}`)

// RenderTemplate returns the text a template message shows: the stored template's body with the
// send's body parameters filled in, or a summary when the template is not known here.
func RenderTemplate(tpl *Template, name string, components json.RawMessage) string {
	var send []sendComponent
	_ = json.Unmarshal(components, &send)
	var params []string
	for _, c := range send {
		if strings.EqualFold(c.Type, "body") {
			for _, p := range c.Parameters {
				params = append(params, p.Text)
			}
		}
	}
	if tpl != nil {
		var stored []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		_ = json.Unmarshal(tpl.Components, &stored)
		for _, c := range stored {
			if strings.EqualFold(c.Type, "body") && c.Text != "" {
				return placeholder.ReplaceAllStringFunc(c.Text, func(m string) string {
					n, _ := strconv.Atoi(placeholder.FindStringSubmatch(m)[1])
					if n >= 1 && n <= len(params) {
						return params[n-1]
					}
					return m
				})
			}
		}
	}
	text := "[template " + name + "]"
	if len(params) > 0 {
		text += " " + strings.Join(params, " · ")
	}
	return text
}

// OutboundRequest starts or re-engages a conversation from an automation: exactly one of a
// template, text, media or an interactive message.
type OutboundRequest struct {
	SenderID    string
	To          string
	Template    *TemplateSend
	Text        string
	Media       *MediaSend
	Interactive json.RawMessage // Meta's interactive object (buttons, list, …), passed through
	Variables   map[string]string
}

// MediaSend is an attachment by public link or by an uploaded media id.
type MediaSend struct {
	Type     string `json:"type"` // image, audio, video, document, sticker
	Link     string `json:"link,omitempty"`
	ID       string `json:"id,omitempty"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
}

// TemplateSend names a template and its parameters.
type TemplateSend struct {
	Name       string
	Language   string
	Components json.RawMessage
}

// Send stores an outbound message (a template, or free-form text while the window is open) in the
// customer's conversation, with the variables (source flow), and queues its sending.
func (s *Service) Send(ctx context.Context, workspaceID string, in OutboundRequest) (*conversation.Conversation, *conversation.Message, error) {
	if in.SenderID == "" {
		return nil, nil, &InputError{"sender_id", "is required"}
	}
	to := OnlyDigits(in.To)
	if to == "" || len(to) > 20 {
		return nil, nil, &InputError{"to", "must be the customer's number (digits, country code first)"}
	}
	kinds := 0
	for _, set := range []bool{in.Template != nil, in.Text != "", in.Media != nil, len(in.Interactive) > 0 && string(in.Interactive) != "null"} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return nil, nil, &InputError{"template", "text, media or interactive: exactly one is required"}
	}
	if md := in.Media; md != nil {
		switch md.Type {
		case "image", "audio", "video", "document", "sticker":
		default:
			return nil, nil, &InputError{"media.type", "must be image, audio, video, document or sticker"}
		}
		if (md.Link == "") == (md.ID == "") {
			return nil, nil, &InputError{"media", "needs a link or an id (one of them)"}
		}
		if md.Link != "" && !strings.HasPrefix(md.Link, "https://") && !strings.HasPrefix(md.Link, "http://") {
			return nil, nil, &InputError{"media.link", "must be an http(s) URL"}
		}
	}
	var interactiveText string
	if len(in.Interactive) > 0 && in.Media == nil && in.Template == nil && in.Text == "" {
		var iv struct {
			Type string `json:"type"`
			Body struct {
				Text string `json:"text"`
			} `json:"body"`
		}
		if err := json.Unmarshal(in.Interactive, &iv); err != nil || iv.Type == "" {
			return nil, nil, &InputError{"interactive", "must be Meta's interactive object with a type (button, list, …)"}
		}
		interactiveText = iv.Body.Text
	}
	if in.Template != nil && (in.Template.Name == "" || in.Template.Language == "") {
		return nil, nil, &InputError{"template", "needs a name and a language"}
	}
	if in.Template != nil && len(in.Template.Components) > 0 {
		var comps []json.RawMessage
		if err := json.Unmarshal(in.Template.Components, &comps); err != nil {
			return nil, nil, &InputError{"template.components", "must be an array"}
		}
	}
	x, err := s.Sender(ctx, workspaceID, in.SenderID)
	if err != nil {
		return nil, nil, ErrNoSender
	}
	var vars []conversation.Variable
	now := s.now()
	for name, value := range in.Variables {
		if name == "" || len(name) > 64 || strings.ContainsAny(name, " \t\n") || len(value) > 4000 {
			return nil, nil, &InputError{"variables", fmt.Sprintf("%q: names are 1 to 64 characters without spaces, values at most 4000", name)}
		}
		vars = append(vars, conversation.Variable{Name: name, Value: value, Source: conversation.SourceFlow, UpdatedAt: now})
	}
	customer := conversation.ChannelCustomer{
		Type: conversation.TypeWhatsApp, ChannelID: x.ID, CustomerID: to, AssistantID: x.AssistantID,
		Metadata: map[string]string{"phone_number_id": x.PhoneNumberID, "display_phone_number": x.DisplayPhoneNumber},
	}
	if in.Template == nil {
		// Free-form needs the customer's open window: refuse before creating anything.
		conv, err := s.Conversations.FindChannel(ctx, workspaceID, customer)
		if err != nil {
			return nil, nil, err
		}
		if conv == nil || !conversation.WindowOpen(conv, now) {
			return nil, nil, conversation.ErrWindowClosed
		}
	}
	conv, _, err := s.Conversations.FindOrCreate(ctx, workspaceID, customer)
	if err != nil {
		return nil, nil, err
	}
	m := &conversation.Message{ID: ids.New(), Role: conversation.RoleAgent, Direction: conversation.Outbound, Status: "queued", CreatedAt: now}
	var payload string
	if in.Template != nil {
		tpl, err := s.Repo.WATemplateByName(ctx, workspaceID, in.Template.Name, in.Template.Language)
		if err != nil {
			tpl = nil
		}
		m.Type = "template"
		m.Text = RenderTemplate(tpl, in.Template.Name, in.Template.Components)
		b, _ := json.Marshal(TemplateMessage(to, in.Template.Name, in.Template.Language, in.Template.Components))
		payload = string(b)
	} else {
		if !conversation.WindowOpen(conv, now) {
			return conv, nil, conversation.ErrWindowClosed
		}
		switch {
		case in.Media != nil:
			obj := map[string]string{}
			for k, v := range map[string]string{"link": in.Media.Link, "id": in.Media.ID, "caption": in.Media.Caption, "filename": in.Media.Filename} {
				if v != "" {
					obj[k] = v
				}
			}
			b, _ := json.Marshal(map[string]any{"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": in.Media.Type, in.Media.Type: obj})
			payload = string(b)
			m.Type, m.Text = in.Media.Type, in.Media.Caption
			m.Media = &conversation.Media{ID: in.Media.ID, URL: in.Media.Link, Filename: in.Media.Filename}
		case len(in.Interactive) > 0:
			b, _ := json.Marshal(map[string]any{"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "interactive", "interactive": in.Interactive})
			payload = string(b)
			m.Type, m.Text = "interactive", interactiveText
		default:
			if len([]rune(in.Text)) > conversation.MaxTextLength {
				return nil, nil, &InputError{"text", fmt.Sprintf("must be at most %d characters", conversation.MaxTextLength)}
			}
			m.Type, m.Text = "text", in.Text
		}
	}
	conv, err = s.Conversations.SendOutbound(ctx, workspaceID, conv.ID, m, vars, func(tx *sql.Tx, stored []*conversation.Message) error {
		if len(stored) == 0 {
			return errors.New("message not stored")
		}
		if payload != "" {
			if err := s.Repo.SetMessagePayloadTx(tx, workspaceID, m.ID, payload); err != nil {
				return err
			}
		}
		return s.Jobs.InsertTx(ctx, tx, SendArgs{WorkspaceID: workspaceID, ConversationID: conv.ID, MessageID: m.ID}, nil)
	})
	if err != nil {
		return nil, nil, err
	}
	return conv, m, nil
}
