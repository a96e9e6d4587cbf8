package knowledge_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-hq/parley/internal/auth"
	"github.com/parley-hq/parley/internal/knowledge"
	"github.com/parley-hq/parley/internal/llm"
	"github.com/parley-hq/parley/internal/llm/llmtest"
	"github.com/parley-hq/parley/internal/store"
)

// pdf builds a small PDF whose page content is a Flate-compressed text stream.
func pdf(content string) []byte {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(content))
	zw.Close()
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
	fmt.Fprintf(&b, "4 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n", z.Len())
	b.Write(z.Bytes())
	b.WriteString("\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
	return b.Bytes()
}

func TestExtractText(t *testing.T) {
	cases := []struct {
		name, mime, file string
		content          []byte
		want             []string // substrings
		not              []string
		err              bool
	}{
		{"plain", "text/plain", "", []byte("We open at 9am.\r\n\r\n\r\nWe close at 6pm."), []string{"We open at 9am.\n\nWe close at 6pm."}, nil, false},
		{"markdown", "", "faq.md", []byte("# Hours\n\n* **Mon–Fri**: 9am to 6pm\n* See [our page](https://acme.test/hours)\n\n```\ncode\n```\n| Day | Open |\n|---|---|\n| Sat | 10am |"),
			[]string{"Hours", "Mon–Fri: 9am to 6pm", "See our page", "Day Open", "Sat 10am"}, []string{"**", "](", "```", "|---"}, false},
		{"html", "text/html; charset=utf-8", "", []byte(`<!doctype html><html><head><title>Help</title><style>.a{}</style></head><body><h1>Refunds</h1><p>Within&nbsp;30 days &amp; free.</p><script>alert(1)</script><ul><li>One</li><li>Two</li></ul></body></html>`),
			[]string{"Refunds", "Within 30 days & free.", "One\n\nTwo"}, []string{"alert", ".a{}", "<"}, false},
		{"pdf", "application/pdf", "", pdf("BT /F1 12 Tf 72 720 Td (Warranty: two years on the motor.) Tj 0 -14 Td [(Ser) -20 (vice) -300 (within 48h)] TJ ET"),
			[]string{"Warranty: two years on the motor.", "Service within 48h"}, nil, false},
		{"pdf detected by content", "", "", pdf("BT (Hello \\(world\\)) Tj ET"), []string{"Hello (world)"}, nil, false},
		{"markdown sniffed without a type", "", "", []byte("# Returns\n\nWithin **30 days**, see [the policy](https://acme.test/p)."), []string{"Returns", "Within 30 days, see the policy."}, []string{"**", "#"}, false},
		{"plain text stays plain", "", "", []byte("Price: 5 * 3 = 15 # not a heading"), []string{"Price: 5 * 3 = 15 # not a heading"}, nil, false},
		{"pdf without text", "application/pdf", "", pdf("0 0 m 10 10 l S"), nil, nil, true},
		{"not utf-8", "text/plain", "", []byte{0xff, 0xfe, 'a'}, nil, nil, true},
		{"only markup", "text/html", "", []byte("<html><body><script>x()</script></body></html>"), nil, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := knowledge.ExtractText(knowledge.DetectFormat(tc.mime, tc.file, tc.content), tc.content)
			if tc.err {
				if !errors.Is(err, knowledge.ErrUnreadable) {
					t.Fatalf("err = %v, text %q", err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in %q", w, got)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("left %q in %q", n, got)
				}
			}
		})
	}
}

func TestSplit(t *testing.T) {
	long := strings.Repeat("This sentence is about shipping times. ", 60)
	cases := []struct {
		name string
		text string
		size int
		n    int
	}{
		{"short text is one chunk", "One.\n\nTwo.", 100, 1},
		{"paragraphs pack up to the size", strings.Repeat("A paragraph of some length here.\n\n", 10), 100, 4},
		{"a long paragraph splits between sentences", long, 300, 9},
		{"a long sentence splits between words", strings.Repeat("word ", 200), 100, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chunks := knowledge.Split(tc.text, tc.size)
			if len(chunks) != tc.n {
				t.Fatalf("%d chunks, want %d: %q", len(chunks), tc.n, chunks)
			}
			for _, c := range chunks {
				if len([]rune(c)) > tc.size {
					t.Fatalf("chunk of %d > %d", len([]rune(c)), tc.size)
				}
				if strings.HasPrefix(c, " ") || strings.HasSuffix(c, " ") {
					t.Fatalf("untrimmed chunk %q", c)
				}
			}
		})
	}
}

func TestMatchQuery(t *testing.T) {
	cases := map[string]string{
		"What are your opening hours?":   `"opening" OR "hours"`,
		"refund refund REFUND":           `"refund"`,
		`"drop table" OR NEAR(x)`:        `"drop" OR "table" OR "near"`,
		"what is it?":                    ``,
		"¿Cuál es el horario de verano?": `"cuál" OR "horario" OR "verano"`,
		"order 7":                        `"order" OR "7"`,
	}
	for in, want := range cases {
		if got := knowledge.MatchQuery(in); got != want {
			t.Errorf("MatchQuery(%q) = %s, want %s", in, got, want)
		}
	}
}

type fakeEmbedder struct{ p *llm.OpenAI }

func (f fakeEmbedder) Embed(ctx context.Context, _ string, inputs []string) ([][]float32, error) {
	v, _, err := f.p.Embed(ctx, "text-embedding-3-small", inputs)
	return v, err
}

func TestHybridSearch(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open("sqlite://" + filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ws, err := auth.NewService(st).EnsureWorkspace(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	fake := llmtest.New(t)
	withEmb := knowledge.NewService(st, fakeEmbedder{llm.NewOpenAI(llm.OpenAIConfig{BaseURL: fake.BaseURL()})}, nil)
	textOnly := knowledge.NewService(st, nil, nil)
	kb, err := withEmb.Create(ctx, ws.ID, "Help", "")
	if err != nil {
		t.Fatal(err)
	}
	// The title says what the passage is about; its text never uses the words.
	d, err := withEmb.AddDocument(ctx, ws.ID, kb.ID, knowledge.DocumentInput{Title: "Pricing plans", Content: []byte("Starter costs 9 dollars a month. Team costs 29.")})
	if err != nil || !d.Embedded {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := withEmb.AddDocument(ctx, ws.ID, kb.ID, knowledge.DocumentInput{Title: "Shipping", Content: []byte("Parcels leave our warehouse every weekday.")}); err != nil {
		t.Fatal(err)
	}
	if hits, _ := textOnly.Search(ctx, ws.ID, []string{kb.ID}, "pricing plans", 3); len(hits) != 0 {
		t.Fatalf("full text alone found %v", hits)
	}
	hits, err := withEmb.Search(ctx, ws.ID, []string{kb.ID}, "pricing plans", 3)
	if err != nil || len(hits) == 0 || hits[0].Title != "Pricing plans" {
		t.Fatalf("hybrid: %+v %v", hits, err)
	}
	// Words in the text: both rankings agree.
	hits, _ = withEmb.Search(ctx, ws.ID, []string{kb.ID}, "when do parcels leave the warehouse", 3)
	if len(hits) == 0 || hits[0].Title != "Shipping" {
		t.Fatalf("hybrid text match: %+v", hits)
	}
	// Another workspace sees nothing of it.
	other, _ := auth.NewService(st).EnsureWorkspace(ctx, "other")
	if hits, _ := withEmb.Search(ctx, other.ID, []string{kb.ID}, "parcels warehouse", 3); len(hits) != 0 {
		t.Fatalf("cross-workspace hits %v", hits)
	}
	if _, err := withEmb.AddDocument(ctx, other.ID, kb.ID, knowledge.DocumentInput{Content: []byte("x")}); !errors.Is(err, knowledge.ErrNotFound) {
		t.Fatalf("cross-workspace add: %v", err)
	}
}
