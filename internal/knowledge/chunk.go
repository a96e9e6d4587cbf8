package knowledge

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ChunkSize is the target length of a chunk in characters; chunks end at paragraph or sentence
// boundaries, so each one reads on its own as an answer.
const ChunkSize = 900

var sentenceEnd = regexp.MustCompile(`([.!?。！？])\s+`)

// Split splits text into passages of about size characters: whole paragraphs packed together,
// long paragraphs split between sentences, and a sentence longer than size split between words.
// A short paragraph that ends with a colon or looks like a heading stays with what follows it.
func Split(text string, size int) []string {
	if size <= 0 {
		size = ChunkSize
	}
	type piece struct {
		text string
		para bool // starts a paragraph (else it continues the previous piece's paragraph)
	}
	var pieces []piece
	for _, p := range strings.Split(text, "\n\n") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if utf8.RuneCountInString(p) <= size {
			pieces = append(pieces, piece{p, true})
			continue
		}
		first := true
		for _, s := range sentences(p) {
			parts := []string{s}
			if utf8.RuneCountInString(s) > size {
				parts = splitWords(s, size)
			}
			for _, part := range parts {
				pieces = append(pieces, piece{part, first})
				first = false
			}
		}
	}
	var chunks []string
	var cur strings.Builder
	curLen := 0
	heading := false
	for _, p := range pieces {
		n := utf8.RuneCountInString(p.text)
		sep := " "
		if p.para {
			sep = "\n\n"
		}
		if curLen > 0 && curLen+len(sep)+n > size && !heading {
			chunks = append(chunks, cur.String())
			cur.Reset()
			curLen = 0
		}
		if curLen > 0 {
			cur.WriteString(sep)
			curLen += len(sep)
		}
		cur.WriteString(p.text)
		curLen += n
		heading = p.para && isHeading(p.text) && curLen < size
	}
	if curLen > 0 {
		chunks = append(chunks, cur.String())
	}
	return chunks
}

func isHeading(p string) bool {
	if strings.ContainsRune(p, '\n') || utf8.RuneCountInString(p) > 80 {
		return false
	}
	last, _ := utf8.DecodeLastRuneInString(p)
	return last == ':' || !(unicode.IsPunct(last))
}

func sentences(p string) []string {
	var out []string
	idx := sentenceEnd.FindAllStringSubmatchIndex(p, -1)
	start := 0
	for _, m := range idx {
		out = append(out, strings.TrimSpace(p[start:m[3]]))
		start = m[1]
	}
	if rest := strings.TrimSpace(p[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

func splitWords(s string, size int) []string {
	var out []string
	var cur strings.Builder
	n := 0
	for _, w := range strings.Fields(s) {
		wl := utf8.RuneCountInString(w)
		if n > 0 && n+1+wl > size {
			out = append(out, cur.String())
			cur.Reset()
			n = 0
		}
		if n > 0 {
			cur.WriteByte(' ')
			n++
		}
		cur.WriteString(w)
		n += wl
	}
	if n > 0 {
		out = append(out, cur.String())
	}
	return out
}
