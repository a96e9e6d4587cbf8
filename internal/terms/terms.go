// Package terms keeps a conversation's term signature: a Bloom filter over the words of its
// messages, split and folded exactly as SQLite's full-text index (FTS5 unicode61,
// remove_diacritics 2) splits and folds them. A common-word search walks conversations newest
// first and checks only those whose signature may hold every word of the query, so the
// conversations in between that cannot match cost a signature test each.
//
// A signature answers "maybe" or "no", never a wrong "no": it only gains bits as messages land
// (deleted messages leave theirs), and a missing or unknown signature answers "maybe".
package terms

import (
	"slices"
	"sort"
	"unicode/utf8"
)

// Size is a signature's length in bytes: 2048 bits, with four bits per word. A typical
// conversation (around 110 distinct words) then answers a wrong "maybe" for 0.2% of words, one
// with 300 distinct words for 4%; past that it fills up and answers "maybe" more often, which
// costs time, never a wrong result.
const Size = 256

const (
	bits        = Size * 8
	bitsPerWord = 4
)

// Add sets the bits of text's words in sig and returns it: a new signature when sig is empty.
func Add(sig []byte, text string) []byte {
	if len(sig) != Size {
		sig = make([]byte, Size)
	}
	Each(text, func(word []byte) {
		for _, b := range positions(word) {
			sig[b>>3] |= 1 << (b & 7)
		}
	})
	return sig
}

// Probe is the bit positions of a query's words: a conversation whose signature lacks any of them
// has no message with every word. (The store tests the bits in SQL, inside the walk's query.)
type Probe []uint16

// positions derives a word's bits from one 64-bit FNV-1a hash (double hashing: h1 + i·h2).
func positions(word []byte) [bitsPerWord]uint16 {
	h := uint64(14695981039346656037)
	for _, c := range word {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h1, h2 := uint32(h), uint32(h>>32)|1
	var out [bitsPerWord]uint16
	for i := range out {
		out[i] = uint16((h1 + uint32(i)*h2) % bits)
	}
	return out
}

// Each calls fn with every word of text as FTS5's unicode61 tokenizer (remove_diacritics 2)
// produces it: folded to lower case without diacritics. The slice is reused between calls.
func Each(text string, fn func(word []byte)) {
	var buf [64]byte
	word := buf[:0]
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case 'a' <= c && c <= 'z' || '0' <= c && c <= '9':
				word = append(word, c)
			case 'A' <= c && c <= 'Z':
				word = append(word, c+'a'-'A')
			default:
				if len(word) > 0 {
					fn(word)
					word = word[:0]
				}
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(text[i:])
		i += n
		if separator(r) {
			if len(word) > 0 {
				fn(word)
				word = word[:0]
			}
			continue
		}
		if f, ok := fold(r); ok {
			if f != 0 {
				word = utf8.AppendRune(word, f)
			}
			continue
		}
		word = utf8.AppendRune(word, r)
	}
	if len(word) > 0 {
		fn(word)
	}
}

// separator reports whether the index splits words at r (r ≥ 0x80).
func separator(r rune) bool {
	i := sort.Search(len(separatorRanges), func(i int) bool { return separatorRanges[i][1] >= r })
	return i < len(separatorRanges) && separatorRanges[i][0] <= r
}

// fold returns what the index folds r to (0: dropped, a combining diacritic), and whether it
// changes r at all.
func fold(r rune) (rune, bool) {
	i := sort.Search(len(folds), func(i int) bool { return folds[i][0] >= r })
	if i < len(folds) && folds[i][0] == r {
		return folds[i][1], true
	}
	return 0, false
}

// Query is a text search as the index runs it: the words, each the phrase of tokens the
// tokenizer makes of it, all of which one message must contain.
type Query struct {
	phrases [][]string
	single  bool // every phrase is one token (the usual case): no order to check
}

// NewQuery returns the query for words, each searched as a phrase (FTS5 `text : ("w1" "w2")`).
func NewQuery(words []string) Query {
	q := Query{single: true}
	for _, w := range words {
		var phrase []string
		Each(w, func(tok []byte) { phrase = append(phrase, string(tok)) })
		if len(phrase) == 0 {
			continue
		}
		q.single = q.single && len(phrase) == 1 && len(q.phrases) < 32
		q.phrases = append(q.phrases, phrase)
	}
	return q
}

// Probe returns the bits a conversation's signature must have for one of its messages to match.
func (q Query) Probe() Probe {
	var p Probe
	for _, phrase := range q.phrases {
		for _, tok := range phrase {
			pos := positions([]byte(tok))
			p = append(p, pos[:]...)
		}
	}
	return p
}

// Matches reports whether text contains every phrase of q, as FTS5 would match the message.
func (q Query) Matches(text string) bool {
	if len(q.phrases) == 0 {
		return false
	}
	if q.single {
		var found uint32 // at most 16 words (queryWords), as bits
		all := uint32(1)<<len(q.phrases) - 1
		Each(text, func(tok []byte) {
			for i, p := range q.phrases {
				if found&(1<<i) == 0 && string(tok) == p[0] {
					found |= 1 << i
				}
			}
		})
		return found == all
	}
	var toks []string
	Each(text, func(tok []byte) { toks = append(toks, string(tok)) })
	for _, p := range q.phrases {
		if !containsRun(toks, p) {
			return false
		}
	}
	return true
}

func containsRun(toks, run []string) bool {
	for i := 0; i+len(run) <= len(toks); i++ {
		if slices.Equal(toks[i:i+len(run)], run) {
			return true
		}
	}
	return false
}
