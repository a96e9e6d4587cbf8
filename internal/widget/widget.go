// Package widget is the website chat widget: the widgets a business configures (assistant, mode,
// pre-chat form, look, allowed origins), the visitors' sessions (a token bound to one conversation),
// the public endpoints the embedded script calls (/widget/v1/...), the live event stream (SSE) and
// the script itself (assets/widget.js, served as /widget.js).
package widget

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-hq/parley/internal/conversation"
)

// Modes.
const (
	ModeChat      = "chat"
	ModeVoiceChat = "voice_chat"
)

// Positions of the launcher on the page.
const (
	PositionBottomRight = "bottom-right"
	PositionBottomLeft  = "bottom-left"
)

// Pre-chat field types.
const (
	FieldText   = "text"
	FieldEmail  = "email"
	FieldPhone  = "phone"
	FieldSelect = "select"
)

// MaxMessageChars bounds a visitor's message (characters).
const MaxMessageChars = 2000

// SessionIdle is how long a session token stays valid without use.
const SessionIdle = 30 * 24 * time.Hour

// ErrNotFound is a widget or session that does not exist (or belongs to another workspace).
var ErrNotFound = errors.New("widget not found")

// Widget is one embeddable chat configuration.
type Widget struct {
	ID             string
	WorkspaceID    string
	PublicKey      string
	AssistantID    string
	Mode           string
	Title          string
	Greeting       string
	PrimaryColor   string
	TextColor      string
	Position       string
	PrechatFields  []PrechatField
	AllowedOrigins []string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// PrechatField is one question of the pre-chat form; its answer becomes the conversation variable
// Name (source prechat).
type PrechatField struct {
	Name     string   `json:"name"`
	Label    string   `json:"label"`
	Type     string   `json:"type"`
	Required bool     `json:"required"`
	Options  []string `json:"options,omitempty"`
}

// Session is a visitor's session: its token's hash and the one conversation it may use.
type Session struct {
	TokenHash      string
	WorkspaceID    string
	WidgetID       string
	ConversationID string
	CreatedAt      time.Time
	LastSeenAt     time.Time
}

// Repository is what the widget needs from the store. Missing rows are ErrNotFound.
type Repository interface {
	CreateWidget(ctx context.Context, w *Widget) error
	UpdateWidget(ctx context.Context, w *Widget) error
	GetWidget(ctx context.Context, workspaceID, id string) (*Widget, error)
	ListWidgets(ctx context.Context, workspaceID string) ([]*Widget, error)
	DeleteWidget(ctx context.Context, workspaceID, id string) error
	// WidgetByKey and WidgetByID find a widget from the public side (no workspace known yet).
	WidgetByKey(ctx context.Context, publicKey string) (*Widget, error)
	WidgetByID(ctx context.Context, id string) (*Widget, error)
	CreateWidgetSession(ctx context.Context, s *Session) error
	WidgetSession(ctx context.Context, tokenHash string) (*Session, error)
	TouchWidgetSession(ctx context.Context, tokenHash string, at time.Time) error
	// MessagesAfter returns the conversation's messages stored after the message afterID
	// ("" for all), oldest first, at most limit.
	MessagesAfter(ctx context.Context, workspaceID, conversationID, afterID string, limit int) ([]*conversation.Message, error)
}

// InputError is bad input from the API or a visitor: a field and a sentence.
type InputError struct{ Field, Message string }

func (e *InputError) Error() string { return e.Field + " " + e.Message }

func inputErr(field, format string, args ...any) error {
	return &InputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var (
	fieldName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	hexColor  = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	phoneOK   = regexp.MustCompile(`^\+?[0-9 ().\-]{6,24}$`)
)

// Normalize checks a widget's settings and fills defaults. It does not check the assistant.
func Normalize(w *Widget) error {
	if w.AssistantID == "" {
		return inputErr("assistant_id", "is required")
	}
	switch w.Mode {
	case "":
		w.Mode = ModeChat
	case ModeChat, ModeVoiceChat:
	default:
		return inputErr("mode", "must be chat or voice_chat")
	}
	w.Title = strings.TrimSpace(w.Title)
	if w.Title == "" {
		w.Title = "Chat with us"
	}
	if utf8.RuneCountInString(w.Title) > 80 {
		return inputErr("title", "must be at most 80 characters")
	}
	if utf8.RuneCountInString(w.Greeting) > 1000 {
		return inputErr("greeting", "must be at most 1000 characters")
	}
	if w.PrimaryColor == "" {
		w.PrimaryColor = "#4f46e5"
	}
	if w.TextColor == "" {
		w.TextColor = "#ffffff"
	}
	if !hexColor.MatchString(w.PrimaryColor) {
		return inputErr("primary_color", "must be a colour like #4f46e5")
	}
	if !hexColor.MatchString(w.TextColor) {
		return inputErr("text_color", "must be a colour like #ffffff")
	}
	switch w.Position {
	case "":
		w.Position = PositionBottomRight
	case PositionBottomRight, PositionBottomLeft:
	default:
		return inputErr("position", "must be bottom-right or bottom-left")
	}
	if len(w.PrechatFields) > 10 {
		return inputErr("prechat_fields", "must hold at most 10 fields")
	}
	seen := map[string]bool{}
	for i := range w.PrechatFields {
		f := &w.PrechatFields[i]
		f.Name = strings.TrimSpace(f.Name)
		f.Label = strings.TrimSpace(f.Label)
		if !fieldName.MatchString(f.Name) {
			return inputErr("prechat_fields", "name %q must be 1 to 64 lowercase letters, digits or _, starting with a letter", f.Name)
		}
		if seen[f.Name] {
			return inputErr("prechat_fields", "name %q is used twice", f.Name)
		}
		seen[f.Name] = true
		if f.Label == "" {
			f.Label = f.Name
		}
		if utf8.RuneCountInString(f.Label) > 100 {
			return inputErr("prechat_fields", "label of %q must be at most 100 characters", f.Name)
		}
		switch f.Type {
		case "":
			f.Type = FieldText
		case FieldText, FieldEmail, FieldPhone:
		case FieldSelect:
			if len(f.Options) == 0 || len(f.Options) > 50 {
				return inputErr("prechat_fields", "select %q needs 1 to 50 options", f.Name)
			}
			for _, o := range f.Options {
				if strings.TrimSpace(o) == "" || utf8.RuneCountInString(o) > 100 {
					return inputErr("prechat_fields", "options of %q must be 1 to 100 characters", f.Name)
				}
			}
		default:
			return inputErr("prechat_fields", "type of %q must be text, email, phone or select", f.Name)
		}
		if f.Type != FieldSelect {
			f.Options = nil
		}
	}
	if len(w.AllowedOrigins) > 50 {
		return inputErr("allowed_origins", "must hold at most 50 origins")
	}
	origins := make([]string, 0, len(w.AllowedOrigins))
	for _, o := range w.AllowedOrigins {
		n, err := NormalizeOrigin(o)
		if err != nil {
			return inputErr("allowed_origins", "%q %s", o, err.Error())
		}
		origins = append(origins, n)
	}
	w.AllowedOrigins = origins
	return nil
}

// NormalizeOrigin turns "https://Shop.example.com/" into "https://shop.example.com", the form a
// browser sends in Origin (default ports dropped). "*" stays "*" (any origin).
func NormalizeOrigin(o string) (string, error) {
	o = strings.TrimSpace(o)
	if o == "*" {
		return o, nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("must be an origin such as https://www.example.com")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", errors.New("must be an origin only (scheme, host and port; no path)")
	}
	host := strings.ToLower(u.Host)
	if u.Scheme == "https" {
		host = strings.TrimSuffix(host, ":443")
	} else {
		host = strings.TrimSuffix(host, ":80")
	}
	return u.Scheme + "://" + host, nil
}

// OriginAllowed reports whether a browser page of origin may use the widget. self is Parley's own
// origin (the demo page lives there): it is always allowed. An empty list allows only that.
func (w *Widget) OriginAllowed(origin, self string) bool {
	if origin == "" {
		return true // not a cross-origin browser request (same-origin GET, or not a browser)
	}
	n, err := NormalizeOrigin(origin)
	if err != nil {
		return false
	}
	if n == self {
		return true
	}
	for _, o := range w.AllowedOrigins {
		if o == "*" || o == n {
			return true
		}
	}
	return false
}

// ValidatePrechat checks a visitor's pre-chat answers against the form: required fields present,
// emails and phones well formed, select values among the options, no unknown fields.
func ValidatePrechat(fields []PrechatField, answers map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(fields))
	known := make(map[string]bool, len(fields))
	for _, f := range fields {
		known[f.Name] = true
		v := strings.TrimSpace(answers[f.Name])
		if v == "" {
			if f.Required {
				return nil, inputErr(f.Name, "is required")
			}
			continue
		}
		if utf8.RuneCountInString(v) > 500 {
			return nil, inputErr(f.Name, "must be at most 500 characters")
		}
		switch f.Type {
		case FieldEmail:
			a, err := mail.ParseAddress(v)
			if err != nil || a.Address != v || !strings.Contains(v[strings.IndexByte(v, '@')+1:], ".") {
				return nil, inputErr(f.Name, "must be an email address such as name@example.com")
			}
		case FieldPhone:
			digits := 0
			for _, r := range v {
				if r >= '0' && r <= '9' {
					digits++
				}
			}
			if !phoneOK.MatchString(v) || digits < 6 || digits > 15 {
				return nil, inputErr(f.Name, "must be a phone number (6 to 15 digits, optionally starting with +)")
			}
		case FieldSelect:
			ok := false
			for _, o := range f.Options {
				if o == v {
					ok = true
				}
			}
			if !ok {
				return nil, inputErr(f.Name, "must be one of the offered options")
			}
		}
		out[f.Name] = v
	}
	for name := range answers {
		if !known[name] {
			return nil, inputErr(name, "is not a field of this form")
		}
	}
	return out, nil
}

// NewPublicKey returns a widget's public key.
func NewPublicKey() string { return "pwk_" + randomToken(18) }

// NewSessionToken returns a visitor session token and the hash stored for it.
func NewSessionToken() (token, hash string) {
	token = "pws_" + randomToken(32)
	return token, HashToken(token)
}

// HashToken is what the store keeps of a session token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Visible reports whether a stored message is shown to the visitor: the visitor's own, the
// assistant's and agents' messages with text. Tool rounds, system notes and tool results are not.
func Visible(m *conversation.Message) bool {
	switch m.Role {
	case conversation.RoleUser, conversation.RoleAssistant, conversation.RoleAgent:
		return strings.TrimSpace(m.Text) != ""
	}
	return false
}
