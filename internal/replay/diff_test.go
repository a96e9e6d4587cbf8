package replay

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestSimilarity(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want float64
	}{
		{"", "", 1},
		{"Hello there.", "Hello there.", 1},
		{"Hello   there.\n", " Hello there.", 1}, // whitespace does not count
		{"Hello there.", "", 0},
		{"", "Hello", 0},
		{"a b c d", "e f g h", 0},
		{"a b c d", "a b c e", 0.75},                // 3 of 4 in common: 2·3/8
		{"Hello! I'm Ava.", "Hello! I'm Max.", 0.8}, // Hello ! I'm Ava . → 4 of 5 kept: 2·4/10
		{"one two", "one two three four", 2 * 2.0 / 6},
		{"Case", "case", 0}, // case counts
		{"don't stop", "don't stop", 1},
	} {
		if got := Similarity(tc.a, tc.b); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("Similarity(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := Similarity(tc.b, tc.a); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("not symmetric: Similarity(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestWordDiff(t *testing.T) {
	render := func(segs []Segment) string {
		var b strings.Builder
		for _, s := range segs {
			switch s.Op {
			case Same:
				b.WriteString(s.Text)
			case Removed:
				fmt.Fprintf(&b, "[-%s-]", s.Text)
			case Added:
				fmt.Fprintf(&b, "{+%s+}", s.Text)
			}
		}
		return b.String()
	}
	for _, tc := range []struct{ old, new, want string }{
		{"Hello! I'm Ava, the support assistant.", "Hello! I'm Max, the returns expert.", "Hello! I'm [-Ava-]{+Max+}, the [-support assistant-]{+returns expert+}."},
		{"same text", "same text", "same text"},
		{"", "new words", "{+new words+}"},
		{"old words", "", "[-old words-]"},
		{"a b c", "a c", "a [-b -]c"},
	} {
		segs := WordDiff(tc.old, tc.new)
		if got := render(segs); got != tc.want {
			t.Errorf("WordDiff(%q, %q) = %q, want %q", tc.old, tc.new, got, tc.want)
		}
		// The kept and removed runs spell the old text, the kept and added ones the new (whitespace aside).
		var oldText, newText strings.Builder
		for _, s := range segs {
			if s.Op != Added {
				oldText.WriteString(s.Text)
			}
			if s.Op != Removed {
				newText.WriteString(s.Text)
			}
		}
		if strings.Join(strings.Fields(oldText.String()), " ") != strings.Join(strings.Fields(tc.old), " ") ||
			strings.Join(strings.Fields(newText.String()), " ") != strings.Join(strings.Fields(tc.new), " ") {
			t.Errorf("WordDiff(%q, %q) does not rebuild the texts: %q / %q", tc.old, tc.new, oldText.String(), newText.String())
		}
	}
}

func TestDiffToolCalls(t *testing.T) {
	call := func(name, args string) ToolCall { return ToolCall{Name: name, Arguments: json.RawMessage(args)} }
	kinds := func(ds []ToolCallDiff) string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Change+":"+d.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		name     string
		old, new []ToolCall
		want     string
	}{
		{"identical", []ToolCall{call("set_variable", `{"name":"email","value":"a@b.co"}`)}, []ToolCall{call("set_variable", `{"value":"a@b.co", "name":"email"}`)}, ""},
		{"added", nil, []ToolCall{call("transfer_to_human", `{"reason":"x"}`)}, "added:transfer_to_human"},
		{"removed", []ToolCall{call("lookup", `{}`)}, nil, "removed:lookup"},
		{"changed", []ToolCall{call("lookup", `{"id":1}`)}, []ToolCall{call("lookup", `{"id":2}`)}, "changed:lookup"},
		{"reordered same calls", []ToolCall{call("lookup", `{"id":1}`), call("lookup", `{"id":2}`)}, []ToolCall{call("lookup", `{"id":2}`), call("lookup", `{"id":1}`)}, ""},
		{"one of two changed", []ToolCall{call("lookup", `{"id":1}`), call("lookup", `{"id":2}`)}, []ToolCall{call("lookup", `{"id":2}`), call("lookup", `{"id":3}`)}, "changed:lookup"},
	} {
		if got := kinds(DiffToolCalls(tc.old, tc.new)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRecordingAnswers(t *testing.T) {
	rec := newRecording([]ToolCall{
		{Name: "lookup", Arguments: json.RawMessage(`{"id":1}`), Result: "one"},
		{Name: "lookup", Arguments: json.RawMessage(`{"id":2}`), Result: "two"},
	})
	for _, tc := range []struct {
		name, args, want string
		ok               bool
	}{
		{"lookup", `{"id": 2}`, "two", true}, // same arguments first, whatever their spacing
		{"lookup", `{"id":9}`, "one", true},  // else the first unused call of that name
		{"lookup", `{"id":1}`, "", false},    // each recorded result answers once
		{"other", `{}`, "", false},
	} {
		got, ok := rec.answer(tc.name, tc.args)
		if got != tc.want || ok != tc.ok {
			t.Errorf("answer(%s, %s) = %q %v, want %q %v", tc.name, tc.args, got, ok, tc.want, tc.ok)
		}
	}
}
