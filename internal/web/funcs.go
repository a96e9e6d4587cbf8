package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/parley-hq/parley/internal/conversation"
)

var funcs = template.FuncMap{
	"typeLabel":  typeLabel,
	"hms":        func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"datetime":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"iso":        func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"usd":        usd,
	"usdf":       func(v float64) string { return fmt.Sprintf("$%.4f", v) },
	"num":        num,
	"pct":        func(v float64) string { return fmt.Sprintf("%.1f%%", v*100) },
	"ms":         durMS,
	"contact":    contactOf,
	"roleName":   roleName,
	"ticks":      ticks,
	"prettyJSON": prettyJSON,
	"window":     windowText,
	"windowExp":  windowExpires,
	"windowOpen": func(c *conversation.Conversation, now time.Time) bool { return conversation.WindowOpen(c, now) },
	"isWhatsApp": func(c *conversation.Conversation) bool { return c.Type == conversation.TypeWhatsApp },
	"joinIDs":    func(ids []string) string { return strings.Join(ids, ", ") },
	"deref": func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'f', -1, 64)
	},
	"mediaKind": mediaKind,
	"ptr":       func(c conversation.Conversation) *conversation.Conversation { return &c },
	"add":       func(a, b int) int { return a + b },
}

// typeLabel names a conversation type for its badge.
func typeLabel(t conversation.Type) string {
	switch t {
	case conversation.TypeWhatsApp:
		return "WhatsApp"
	case conversation.TypeWidget:
		return "Web Widget"
	case conversation.TypeTest:
		return "Test"
	case conversation.TypeAPI:
		return "API"
	}
	return string(t)
}

func usd(micros int64) string {
	if micros == 0 {
		return "$0"
	}
	s := strconv.FormatFloat(float64(micros)/1e6, 'f', 6, 64)
	s = strings.TrimRight(s, "0")
	if strings.HasSuffix(s, ".") {
		s += "00"
	} else if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i-1 < 2 {
		s += "0"
	}
	return "$" + s
}

func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func durMS(v any) string {
	var ms float64
	switch x := v.(type) {
	case int64:
		ms = float64(x)
	case float64:
		ms = x
	case *int64:
		if x == nil {
			return ""
		}
		ms = float64(*x)
	}
	switch {
	case ms < 1000:
		return fmt.Sprintf("%.0f ms", ms)
	case ms < 60_000:
		return fmt.Sprintf("%.1f s", ms/1000)
	case ms < 3_600_000:
		return fmt.Sprintf("%.0f min %.0f s", float64(int64(ms)/60_000), float64(int64(ms)%60_000/1000))
	}
	return fmt.Sprintf("%.1f h", ms/3_600_000)
}

// contactOf is who the customer is: name and phone/identifier.
func contactOf(c *conversation.Conversation) string {
	id := c.CustomerID
	if c.Type == conversation.TypeWhatsApp && id != "" {
		id = "+" + id
	}
	switch {
	case c.CustomerName != "" && id != "":
		return c.CustomerName + " (" + id + ")"
	case c.CustomerName != "":
		return c.CustomerName
	case id != "":
		return id
	}
	return "Anonymous"
}

func roleName(r conversation.Role) string {
	switch r {
	case conversation.RoleUser:
		return "User"
	case conversation.RoleAssistant:
		return "Assistant"
	case conversation.RoleAgent:
		return "Agent"
	case conversation.RoleTool:
		return "Tool"
	case conversation.RoleSystem:
		return "System"
	}
	return string(r)
}

// ticks draws a WhatsApp delivery status.
func ticks(status string) string {
	switch status {
	case "queued":
		return "🕓"
	case "sent":
		return "✓"
	case "delivered", "read":
		return "✓✓"
	case "failed":
		return "⚠"
	}
	return ""
}

func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		return string(raw)
	}
	return buf.String()
}

// windowText is the WhatsApp window's countdown as text.
func windowText(c *conversation.Conversation, now time.Time) string {
	if c.LastInboundAt == nil {
		return "window closed"
	}
	left := c.LastInboundAt.Add(conversation.CustomerWindow).Sub(now)
	if left <= 0 {
		return "window closed"
	}
	h := int(left / time.Hour)
	m := int(left%time.Hour) / int(time.Minute)
	return fmt.Sprintf("window %dh %02dm left", h, m)
}

func windowExpires(c *conversation.Conversation) string {
	if c.LastInboundAt == nil {
		return ""
	}
	return c.LastInboundAt.Add(conversation.CustomerWindow).UTC().Format(time.RFC3339)
}

// mediaKind picks how to show an attachment: image, audio, video or document.
func mediaKind(m *conversation.Message) string {
	if m.Media == nil {
		return ""
	}
	mt := m.Media.MimeType
	switch {
	case m.Type == "image" || m.Type == "sticker" || strings.HasPrefix(mt, "image/"):
		return "image"
	case m.Type == "audio" || strings.HasPrefix(mt, "audio/"):
		return "audio"
	case m.Type == "video" || strings.HasPrefix(mt, "video/"):
		return "video"
	}
	return "document"
}
