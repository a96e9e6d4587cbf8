package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// BuiltinModel is the name that selects the offline model.
const BuiltinModel = "builtin"

// Builtin is the offline demo and test model: deterministic, no network, no cost. It is not a
// language model. It asks for a human when the customer does, records obvious details (email,
// phone, order numbers) through set_variable, looks questions up with search_knowledge when the
// assistant has knowledge, and otherwise answers with a short reply built from the system prompt.
type Builtin struct{}

var (
	humanPattern = regexp.MustCompile(`(?i)\b(agent|human|person|representative|operator|real people|someone real)s?\b`)
	emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	phonePattern = regexp.MustCompile(`\+?\d[\d\s().\-]{6,}\d`)
	orderPattern = regexp.MustCompile(`\b(?:[A-Z]{2,5}-\d{3,}|#\d{4,})\b`)
	greetPattern = regexp.MustCompile(`(?i)^\s*(hi|hello|hey|good (morning|afternoon|evening)|hola|ol[aá]|bonjour)\b`)
	youArePrefix = regexp.MustCompile(`(?i)^you are\s+`)
)

// Chat answers one request.
func (Builtin) Chat(ctx context.Context, req Request, onDelta func(string)) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, err
	}
	resp := Response{FinishReason: "stop"}
	last := req.Messages[len(req.Messages)-1]
	if last.Role == "user" {
		resp.ToolCalls = builtinToolCalls(last.Content, req.Tools)
	}
	if len(resp.ToolCalls) > 0 {
		resp.FinishReason = "tool_calls"
	} else {
		resp.Content = builtinReply(req)
		if onDelta != nil {
			for _, w := range splitKeepSpace(resp.Content) {
				onDelta(w)
			}
		}
	}
	resp.Usage.InputTokens = EstimateRequestTokens(req)
	resp.Usage.OutputTokens = EstimateTokens(resp.Content)
	for _, tc := range resp.ToolCalls {
		resp.Usage.OutputTokens += EstimateTokens(tc.Name) + EstimateTokens(tc.Arguments)
	}
	return resp, nil
}

func hasTool(tools []ToolDef, name string) bool {
	for _, t := range tools {
		if t.Name == name {
			return true
		}
	}
	return false
}

func builtinToolCalls(text string, tools []ToolDef) []ToolCall {
	var calls []ToolCall
	add := func(name string, args map[string]string) {
		if !hasTool(tools, name) {
			return
		}
		b, _ := json.Marshal(args)
		calls = append(calls, ToolCall{ID: fmt.Sprintf("call_builtin_%d", len(calls)+1), Name: name, Arguments: string(b)})
	}
	if humanPattern.MatchString(text) {
		add("transfer_to_human", map[string]string{"reason": "The customer asked to talk to a person."})
		return calls
	}
	emails := emailPattern.FindAllString(text, 1)
	if len(emails) > 0 {
		add("set_variable", map[string]string{"name": "email", "value": emails[0]})
	}
	withoutEmails := emailPattern.ReplaceAllString(text, " ")
	if orders := orderPattern.FindAllString(withoutEmails, 1); len(orders) > 0 {
		add("set_variable", map[string]string{"name": "order_id", "value": orders[0]})
		withoutEmails = strings.Replace(withoutEmails, orders[0], " ", 1)
	}
	if phones := phonePattern.FindAllString(withoutEmails, 1); len(phones) > 0 {
		digits := strings.Map(func(r rune) rune {
			if unicode.IsDigit(r) || r == '+' {
				return r
			}
			return -1
		}, phones[0])
		if n := len(strings.TrimPrefix(digits, "+")); n >= 7 && n <= 15 {
			add("set_variable", map[string]string{"name": "phone", "value": digits})
		}
	}
	if len(calls) == 0 && isQuestion(text) {
		add("search_knowledge", map[string]string{"query": strings.TrimSpace(text)})
	}
	return calls
}

func isQuestion(text string) bool {
	t := strings.ToLower(strings.TrimSpace(text))
	if strings.Contains(t, "?") {
		return true
	}
	for _, w := range []string{"what", "how", "when", "where", "why", "which", "who", "do you", "can i", "can you", "is there", "are there", "does"} {
		if strings.HasPrefix(t, w+" ") {
			return true
		}
	}
	return len(strings.Fields(t)) >= 3 && !greetPattern.MatchString(t)
}

// builtinReply composes the answer after the tools have run, or a plain reply when none were called.
func builtinReply(req Request) string {
	// The tool results of this turn: everything after the last user message.
	var results []Message
	var lastUser string
	for i := len(req.Messages) - 1; i >= 0; i-- {
		m := req.Messages[i]
		if m.Role == "user" {
			lastUser = m.Content
			break
		}
		if m.Role == "tool" {
			results = append([]Message{m}, results...)
		}
	}
	var parts []string
	var noted []string
	for _, r := range results {
		switch r.Name {
		case "transfer_to_human":
			return "I'm connecting you with a member of our team now. Someone will reply here shortly."
		case "end_conversation":
			return "Thank you for chatting with us. Goodbye!"
		case "search_knowledge":
			if passage := answerFromPassage(lastUser, bestPassage(r.Content)); passage != "" {
				parts = append(parts, passage)
			}
		case "set_variable":
			var v struct {
				Name  string `json:"name"`
				Value string `json:"value"`
				OK    bool   `json:"ok"`
			}
			if json.Unmarshal([]byte(r.Content), &v) == nil && v.OK {
				noted = append(noted, fmt.Sprintf("%s %s", strings.ReplaceAll(v.Name, "_", " "), v.Value))
			}
		}
	}
	if len(noted) > 0 {
		parts = append([]string{"Thanks, I've noted your " + strings.Join(noted, " and ") + "."}, parts...)
	}
	if len(parts) > 0 {
		if len(noted) > 0 && len(parts) == 1 {
			parts = append(parts, "How else can I help?")
		}
		return strings.Join(parts, " ")
	}
	intro := persona(req)
	if greetPattern.MatchString(lastUser) {
		return strings.TrimSpace("Hello! " + intro + " How can I help you today?")
	}
	return strings.TrimSpace("Thanks for your message. " + intro + " Could you tell me a little more so I can help?")
}

// persona turns the system prompt's first sentence into a self-introduction.
func persona(req Request) string {
	for _, m := range req.Messages {
		if m.Role != "system" {
			continue
		}
		first := strings.TrimSpace(m.Content)
		if i := strings.IndexAny(first, ".!\n"); i >= 0 {
			first = first[:i]
		}
		if first == "" {
			return ""
		}
		if loc := youArePrefix.FindStringIndex(first); loc != nil {
			return "I'm " + first[loc[1]:] + "."
		}
		return ""
	}
	return ""
}

// bestPassage takes the first passage from a search_knowledge result.
func bestPassage(result string) string {
	var r struct {
		Results []struct {
			Content string `json:"content"`
		} `json:"results"`
	}
	if json.Unmarshal([]byte(result), &r) != nil || len(r.Results) == 0 {
		return ""
	}
	p := strings.TrimSpace(r.Results[0].Content)
	if len([]rune(p)) > 600 {
		p = string([]rune(p)[:600]) + "…"
	}
	return p
}

var builtinStop = map[string]bool{}

// sentencesOf splits text after ., ! or ? followed by a space or line end (so "$4.99" stays whole),
// and at line breaks.
func sentencesOf(text string) []string {
	var out []string
	start := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		end := c == '\n'
		if (c == '.' || c == '!' || c == '?') && (i+1 == len(text) || text[i+1] == ' ' || text[i+1] == '\n') {
			end = true
		}
		if end {
			if s := strings.TrimSpace(text[start : i+1]); s != "" {
				out = append(out, s)
			}
			start = i + 1
		}
	}
	if s := strings.TrimSpace(text[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

func init() {
	for _, w := range strings.Fields(`what when where which who why how are is was were the and for you your our can does do did have has with from
		that this there about into will would could should any some tell please know want need like much many long open`) {
		builtinStop[w] = true
	}
}

// keyStems are the meaningful words of s, cut to their first five letters so "returns" meets "return".
func keyStems(s string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) }) {
		if len([]rune(w)) < 3 || builtinStop[w] {
			continue
		}
		if r := []rune(w); len(r) > 5 {
			w = string(r[:5])
		}
		out[w] = true
	}
	return out
}

// answerFromPassage keeps the sentences of the passage that share the most words with the
// question (the best one and, when they also match, its neighbours), in their order; the whole
// passage when no sentence matches.
func answerFromPassage(question, passage string) string {
	if passage == "" {
		return ""
	}
	q := keyStems(question)
	sentences := sentencesOf(passage)
	if len(q) == 0 || len(sentences) < 2 {
		return passage
	}
	scores := make([]int, len(sentences))
	best := -1
	for i, s := range sentences {
		for w := range keyStems(s) {
			if q[w] {
				scores[i]++
			}
		}
		if scores[i] > 0 && (best < 0 || scores[i] > scores[best]) {
			best = i
		}
	}
	if best < 0 {
		return passage
	}
	keep := []string{strings.TrimSpace(sentences[best])}
	if best+1 < len(sentences) && scores[best+1] > 0 {
		keep = append(keep, strings.TrimSpace(sentences[best+1]))
	}
	if best > 0 && scores[best-1] > 0 {
		keep = append([]string{strings.TrimSpace(sentences[best-1])}, keep...)
	}
	return strings.Join(keep, " ")
}

func splitKeepSpace(s string) []string {
	var out []string
	start := 0
	for i, r := range s {
		if r == ' ' && i > start {
			out = append(out, s[start:i+1])
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
