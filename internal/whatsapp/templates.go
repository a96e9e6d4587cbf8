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

// OutboundRequest starts or re-engages a conversation from an automation.
type OutboundRequest struct {
	SenderID  string
	To        string
	Template  *TemplateSend
	Text      string
	Variables map[string]string
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
	if (in.Template == nil) == (in.Text == "") {
		return nil, nil, &InputError{"template", "or text is required (one of them)"}
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
	conv, _, err := s.Conversations.FindOrCreate(ctx, workspaceID, conversation.ChannelCustomer{
		Type: conversation.TypeWhatsApp, ChannelID: x.ID, CustomerID: to, AssistantID: x.AssistantID,
		Metadata: map[string]string{"phone_number_id": x.PhoneNumberID, "display_phone_number": x.DisplayPhoneNumber},
	})
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
		if len([]rune(in.Text)) > conversation.MaxTextLength {
			return nil, nil, &InputError{"text", fmt.Sprintf("must be at most %d characters", conversation.MaxTextLength)}
		}
		m.Type, m.Text = "text", in.Text
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
