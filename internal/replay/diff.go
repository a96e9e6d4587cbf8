package replay

import (
	"unicode"
	"unicode/utf8"
)

// token is one comparable piece of a text: a word (a run of letters and digits) or a single other
// non-space character. Space carries the whitespace that followed it, kept for display only.
type token struct {
	Key   string
	Space string
}

// tokenize splits text into tokens; whitespace never counts in a comparison.
func tokenize(text string) []token {
	var out []token
	i := 0
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		if unicode.IsSpace(r) {
			if len(out) > 0 {
				out[len(out)-1].Space += text[i : i+size]
			}
			i += size
			continue
		}
		start := i
		if isWordRune(r) {
			for i < len(text) {
				r, size = utf8.DecodeRuneInString(text[i:])
				if !isWordRune(r) {
					break
				}
				i += size
			}
		} else {
			i += size
		}
		out = append(out, token{Key: text[start:i]})
	}
	return out
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'' || r == '_'
}

// Similarity scores how alike two replies are, in [0, 1]: 2·LCS / (|a| + |b|) over their tokens
// (words and punctuation marks, case-sensitive, whitespace ignored), where LCS is the length of
// their longest common subsequence — the share of tokens the two texts have in common, in order.
// Two empty texts are identical (1); one empty and one not share nothing (0).
func Similarity(a, b string) float64 {
	ta, tb := tokenize(a), tokenize(b)
	if len(ta)+len(tb) == 0 {
		return 1
	}
	return 2 * float64(lcsLength(ta, tb)) / float64(len(ta)+len(tb))
}

// lcsLength is the length of the longest common subsequence of the tokens' keys, in two rows.
func lcsLength(a, b []token) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	prev := make([]int32, len(b)+1)
	cur := make([]int32, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			switch {
			case a[i-1].Key == b[j-1].Key:
				cur[j] = prev[j-1] + 1
			case prev[j] >= cur[j-1]:
				cur[j] = prev[j]
			default:
				cur[j] = cur[j-1]
			}
		}
		prev, cur = cur, prev
	}
	return int(prev[len(b)])
}

// Op is a word diff segment's kind.
type Op string

const (
	Same    Op = "same"
	Removed Op = "removed"
	Added   Op = "added"
)

// Segment is a run of the word diff: text kept, removed from the old reply, or added in the new.
type Segment struct {
	Op   Op     `json:"op"`
	Text string `json:"text"`
}

// maxDiffCells bounds the word diff's table; longer pairs show as one removal and one addition.
const maxDiffCells = 4_000_000

// WordDiff lines the old text up against the new one, token by token (as Similarity counts them),
// and returns the runs kept, removed and added, with the original whitespace.
func WordDiff(old, new string) []Segment {
	a, b := tokenize(old), tokenize(new)
	var out []Segment
	emit := func(op Op, t token) {
		text := t.Key + t.Space
		if n := len(out); n > 0 && out[n-1].Op == op {
			out[n-1].Text += text
			return
		}
		out = append(out, Segment{Op: op, Text: text})
	}
	if len(a)*len(b) > maxDiffCells {
		for _, t := range a {
			emit(Removed, t)
		}
		for _, t := range b {
			emit(Added, t)
		}
		return out
	}
	// table[i][j] is the LCS length of a[i:] and b[j:].
	w := len(b) + 1
	table := make([]int32, (len(a)+1)*w)
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i].Key == b[j].Key {
				table[i*w+j] = table[(i+1)*w+j+1] + 1
			} else {
				table[i*w+j] = max(table[(i+1)*w+j], table[i*w+j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].Key == b[j].Key:
			emit(Same, b[j])
			i, j = i+1, j+1
		case table[(i+1)*w+j] >= table[i*w+j+1]:
			emit(Removed, a[i])
			i++
		default:
			emit(Added, b[j])
			j++
		}
	}
	for ; i < len(a); i++ {
		emit(Removed, a[i])
	}
	for ; j < len(b); j++ {
		emit(Added, b[j])
	}
	return out
}
