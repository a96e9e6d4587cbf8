package insights

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// stopwords are English function words and the filler of support chats ("hi", "please", "help"):
// they say nothing about what a question is about. Small on purpose; other languages are not
// filtered (their questions still group, by their own most common words).
var stopwords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`a about above after again against all also am an and any anyone anything are aren as ask asking at
		be because been before being below between both but by can cannot could couldn did didn do does doesn doing don done down during
		each else even ever every few for from further get gets getting got had hadn has hasn have haven having he hello help her here
		hers hey hi him his how however i if im in into is isn it its itself ive just know let like ll me might mine more most much must my
		myself need needs no nor not now of off ok okay on once one only or other our ours out over own please pls really same she
		should shouldn so some someone something still such tell than thank thanks that thats the their theirs them then there these
		they this those through to too under until up us very want wants was wasn way we well were weren what whats when where which while
		who whom why will with won would wouldn yeah yes yet you youre your yours yourself`) {
		stopwords[w] = true
	}
}

// minKeywordRunes is the shortest word kept as a keyword.
const minKeywordRunes = 3

// words splits text into lower-case words of letters and digits.
func words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// stem folds English plurals onto the singular ("refunds" → "refund", "deliveries" → "delivery")
// and nothing more: a light touch that never merges unrelated words.
func stem(w string) string {
	n := len(w)
	switch {
	case n > 4 && strings.HasSuffix(w, "ies"):
		return w[:n-3] + "y"
	case n > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is"):
		return w[:n-1]
	}
	return w
}

// keyword is a meaningful word of a question: its stem and the word as written.
type keyword struct{ stem, word string }

// keywords are the question's meaningful words in order: no stop words, nothing shorter than three
// letters, nothing written with digits ("ORD-123456", "9am": order numbers, phone numbers and times
// name a case, not a topic).
func keywords(text string) []keyword {
	var out []keyword
	var kept []string
	for _, f := range strings.Fields(text) {
		if strings.IndexFunc(f, unicode.IsDigit) < 0 {
			kept = append(kept, f)
		}
	}
	for _, w := range words(strings.Join(kept, " ")) {
		if utf8.RuneCountInString(w) < minKeywordRunes || stopwords[w] {
			continue
		}
		s := stem(w)
		if stopwords[s] {
			continue
		}
		out = append(out, keyword{stem: s, word: w})
	}
	return out
}

// signature is a question's distinct keyword stems and the pairs of neighbouring ones ("gift card"),
// each in first-seen order.
type signature struct {
	stems   []string
	bigrams []string
	words   map[string]string // stem → the word as written first
}

func signatureOf(text string) signature {
	kws := keywords(text)
	sig := signature{words: map[string]string{}}
	seen := map[string]bool{}
	for i, k := range kws {
		if !seen[k.stem] {
			seen[k.stem] = true
			sig.stems = append(sig.stems, k.stem)
			sig.words[k.stem] = k.word
		}
		if i > 0 && kws[i-1].stem != k.stem {
			b := kws[i-1].stem + " " + k.stem
			if !seen[b] {
				seen[b] = true
				sig.bigrams = append(sig.bigrams, b)
			}
		}
	}
	return sig
}

// maxNormalizedRunes bounds a normalised question (the key unanswered questions group by).
const maxNormalizedRunes = 300

// normalize is the form questions are grouped by: lower case, single spaces, no punctuation at the
// ends ("Do you sell gift cards?" and "do you sell gift cards" are the same question).
func normalize(text string) string {
	t := strings.Join(strings.Fields(strings.ToLower(text)), " ")
	t = strings.TrimFunc(t, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSpace(r) || unicode.IsSymbol(r) })
	if utf8.RuneCountInString(t) > maxNormalizedRunes {
		t = string([]rune(t)[:maxNormalizedRunes])
	}
	return t
}
