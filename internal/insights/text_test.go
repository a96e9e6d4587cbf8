package insights

import (
	"fmt"
	"testing"
	"time"
)

func TestStem(t *testing.T) {
	for in, want := range map[string]string{
		"refunds": "refund", "deliveries": "delivery", "hours": "hour", "address": "address", "status": "status",
		"this": "this", "bus": "bus", "gas": "gas", "cards": "card", "shipping": "shipping", "ties": "tie",
	} {
		if got := stem(in); got != want {
			t.Errorf("stem(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKeywords(t *testing.T) {
	for _, c := range []struct{ in, stems, bigrams string }{
		{"Do you sell gift cards?", "[sell gift card]", "[sell gift gift card]"},
		{"Where is my order ORD-123456? I need it by 9am!", "[order]", "[]"},
		{"Hi, thanks!", "[]", "[]"},
		{"refund refunds REFUND", "[refund]", "[]"},
		{"Wie lange dauert die Lieferung?", "[wie lange dauert die lieferung]", "[wie lange lange dauert dauert die die lieferung]"},
	} {
		sig := signatureOf(c.in)
		if fmt.Sprint(sig.stems) != c.stems || fmt.Sprint(sig.bigrams) != c.bigrams {
			t.Errorf("signatureOf(%q) = %v %v, want %s %s", c.in, sig.stems, sig.bigrams, c.stems, c.bigrams)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"  Do you sell   gift vouchers? ":  "do you sell gift vouchers",
		"¿Abren el domingo?":               "abren el domingo",
		"Where is my parcel? I need help!": "where is my parcel? i need help",
		"...":                              "",
	} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseWindow(t *testing.T) {
	for in, want := range map[string]time.Duration{"72h": 72 * time.Hour, "3d": 72 * time.Hour, "90m": 90 * time.Minute, "2s": 2 * time.Second, "365d": 365 * 24 * time.Hour} {
		if got, err := ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0s", "-1h", "3 days", "366d", "9999999999999d", "d", "1y"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
}

func TestMedianIsNearestRank(t *testing.T) {
	for _, c := range []struct {
		in   []int64
		want int64
	}{{nil, 0}, {[]int64{5}, 5}, {[]int64{9, 1}, 1}, {[]int64{3, 1, 2}, 2}, {[]int64{4, 1, 3, 2}, 2}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %d, want %d", c.in, got, c.want)
		}
	}
}

// TestKeywordGroups checks the grouping rule: the most shared keyword, a pair when it is shared by
// two or more questions and at least half as common; ties alphabetical, so the groups are stable.
func TestKeywordGroups(t *testing.T) {
	qs := []string{
		"Do you sell gift cards?", "Is there a gift card for Christmas?", "My card was declined",
		"Card payment failed", "Card not working", "Where is my order?", "Cancel my order",
	}
	sigs := make([]signature, len(qs))
	idx := make([]int, len(qs))
	for i, q := range qs {
		sigs[i], idx[i] = signatureOf(q), i
	}
	assign := make([]*assignment, len(qs))
	keywordGroups(idx, sigs, assign)
	var got []string
	for _, a := range assign {
		got = append(got, a.key)
	}
	// "card" is in 5 questions, "gift card" in 2: less than half as common, so those two join "card".
	want := "[kw:card kw:card kw:card kw:card kw:card kw:order kw:order]"
	if fmt.Sprint(got) != want {
		t.Errorf("groups %v, want %s", got, want)
	}
	// With fewer card questions the pair wins for the questions that have it.
	assign = make([]*assignment, len(qs))
	keywordGroups([]int{0, 1, 2}, sigs, assign)
	if a, b, c := assign[0].key, assign[1].key, assign[2].key; a != "kw:gift card" || b != "kw:gift card" || c != "kw:card" {
		t.Errorf("groups %s %s %s, want gift card ×2 and card", a, b, c)
	}
}
