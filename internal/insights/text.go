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

func notLetter(r rune) bool { return !unicode.IsLetter(r) }

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
	out := make([]keyword, 0, 8)
	for _, field := range strings.Fields(text) {
		if strings.IndexFunc(field, unicode.IsDigit) >= 0 {
			continue
		}
		for _, w := range strings.FieldsFunc(field, notLetter) {
			if utf8.RuneCountInString(w) < minKeywordRunes {
				continue
			}
			w = strings.ToLower(w)
			if stopwords[w] {
				continue
			}
			st := stem(w)
			if stopwords[st] {
				continue
			}
			out = append(out, keyword{stem: st, word: w})
		}
	}
	return out
}

// signature is a question's distinct keyword stems (with the word as first written) and the pairs
// of neighbouring ones ("gift card"), each in first-seen order.
type signature struct {
	stems   []string
	forms   []string // forms[i]: how stems[i] was written
	bigrams []string
}

func signatureOf(text string) signature {
	kws := keywords(text)
	var sig signature
	has := func(list []string, v string) bool {
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	for i, k := range kws {
		if !has(sig.stems, k.stem) {
			sig.stems = append(sig.stems, k.stem)
			sig.forms = append(sig.forms, k.word)
		}
		if i > 0 && kws[i-1].stem != k.stem {
			if b := kws[i-1].stem + " " + k.stem; !has(sig.bigrams, b) {
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
	var b strings.Builder
	b.Grow(min(len(text), 4*maxNormalizedRunes))
	space, n := false, 0
	for _, r := range text {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if n >= maxNormalizedRunes {
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
			n++
		}
		b.WriteRune(unicode.ToLower(r))
		n++
	}
	return strings.TrimFunc(b.String(), func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSpace(r) || unicode.IsSymbol(r) })
}
