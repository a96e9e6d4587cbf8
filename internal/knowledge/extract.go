package knowledge

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"html"
	"io"
	"path"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Format is a document's kind, which decides how its text is read.
type Format string

const (
	FormatText     Format = "text"
	FormatMarkdown Format = "markdown"
	FormatHTML     Format = "html"
	FormatPDF      Format = "pdf"
)

// DetectFormat picks the format from the MIME type, then the file extension, then the content.
func DetectFormat(mimeType, filename string, content []byte) Format {
	mt := strings.ToLower(strings.TrimSpace(strings.SplitN(mimeType, ";", 2)[0]))
	switch mt {
	case "application/pdf":
		return FormatPDF
	case "text/html", "application/xhtml+xml":
		return FormatHTML
	case "text/markdown", "text/x-markdown":
		return FormatMarkdown
	}
	switch strings.ToLower(path.Ext(filename)) {
	case ".pdf":
		return FormatPDF
	case ".html", ".htm", ".xhtml":
		return FormatHTML
	case ".md", ".markdown", ".mdown":
		return FormatMarkdown
	}
	if bytes.HasPrefix(content, []byte("%PDF-")) {
		return FormatPDF
	}
	head := strings.ToLower(string(content[:min(len(content), 512)]))
	if strings.Contains(head, "<!doctype html") || strings.Contains(head, "<html") {
		return FormatHTML
	}
	if mt == "" && looksMarkdown.Match(content[:min(len(content), 8192)]) {
		return FormatMarkdown
	}
	return FormatText
}

// looksMarkdown spots Markdown in text sent without a type: headings, bold, links, fences.
var looksMarkdown = regexp.MustCompile("(?m)^#{1,6} \\S|\\*\\*\\S[^*\\n]*\\*\\*|\\]\\((?:https?://|/|#)|^```")

// ErrUnreadable is returned for a document whose text cannot be read.
var ErrUnreadable = errors.New("the document has no readable text")

// ExtractText returns a document's plain text, paragraphs separated by blank lines.
func ExtractText(f Format, content []byte) (string, error) {
	var text string
	switch f {
	case FormatPDF:
		t, err := pdfText(content)
		if err != nil {
			return "", err
		}
		text = t
	case FormatHTML:
		if !utf8.Valid(content) {
			return "", fmt.Errorf("%w: the HTML is not UTF-8", ErrUnreadable)
		}
		text = htmlText(string(content))
	case FormatMarkdown:
		if !utf8.Valid(content) {
			return "", fmt.Errorf("%w: the Markdown is not UTF-8", ErrUnreadable)
		}
		text = markdownText(string(content))
	default:
		if !utf8.Valid(content) {
			return "", fmt.Errorf("%w: the text is not UTF-8", ErrUnreadable)
		}
		text = string(content)
	}
	text = normalizeSpace(text)
	if strings.TrimSpace(text) == "" {
		return "", ErrUnreadable
	}
	return text, nil
}

var (
	htmlDrop    = regexp.MustCompile(`(?is)<(script|style|noscript|template|svg|head)\b.*?</(script|style|noscript|template|svg|head)\s*>|<!--.*?-->`)
	htmlBlock   = regexp.MustCompile(`(?i)</?(p|div|section|article|header|footer|main|aside|nav|br|hr|li|ul|ol|h[1-6]|tr|table|blockquote|pre|dt|dd|figcaption)\b[^>]*>`)
	htmlCell    = regexp.MustCompile(`(?i)</?(td|th)\b[^>]*>`)
	htmlTag     = regexp.MustCompile(`(?s)<[^>]*>`)
	htmlTitle   = regexp.MustCompile(`(?is)<title\b[^>]*>(.*?)</title>`)
	mdFence     = regexp.MustCompile("(?m)^\\s*(```|~~~).*$")
	mdHeading   = regexp.MustCompile(`(?m)^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$`)
	mdImage     = regexp.MustCompile(`!\[([^\]]*)\]\([^)]*\)`)
	mdLink      = regexp.MustCompile(`\[([^\]]+)\]\([^)]*\)`)
	mdEmphasis  = regexp.MustCompile(`(\*\*|__|\*|_|~~|` + "`" + `)(\S(?:.*?\S)?)(\*\*|__|\*|_|~~|` + "`" + `)`)
	mdListMark  = regexp.MustCompile(`(?m)^\s*(?:[-*+]|\d+[.)])\s+`)
	mdQuote     = regexp.MustCompile(`(?m)^\s*>\s?`)
	mdTableRule = regexp.MustCompile(`(?m)^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$`)
	mdRule      = regexp.MustCompile(`(?m)^\s*([-*_]\s*){3,}$`)
	spaces      = regexp.MustCompile(`[ \t\f\v\x{00a0}]+`)
	blankLines  = regexp.MustCompile(`\n\s*\n+`)
)

func htmlText(s string) string {
	title := ""
	if m := htmlTitle.FindStringSubmatch(s); m != nil {
		title = strings.TrimSpace(html.UnescapeString(htmlTag.ReplaceAllString(m[1], "")))
	}
	s = htmlDrop.ReplaceAllString(s, " ")
	s = htmlBlock.ReplaceAllString(s, "\n\n")
	s = htmlCell.ReplaceAllString(s, " ")
	s = htmlTag.ReplaceAllString(s, "")
	s = html.UnescapeString(s)
	if title != "" && !strings.Contains(s, title) {
		s = title + "\n\n" + s
	}
	return s
}

func markdownText(s string) string {
	s = mdFence.ReplaceAllString(s, "")
	s = mdHeading.ReplaceAllString(s, "\n$1\n")
	s = mdImage.ReplaceAllString(s, "$1")
	s = mdLink.ReplaceAllString(s, "$1")
	s = mdTableRule.ReplaceAllString(s, "")
	s = mdRule.ReplaceAllString(s, "")
	s = mdQuote.ReplaceAllString(s, "")
	s = mdListMark.ReplaceAllString(s, "")
	for range 2 {
		s = mdEmphasis.ReplaceAllString(s, "$2")
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "|") && strings.HasSuffix(t, "|") {
			lines[i] = strings.TrimSpace(strings.ReplaceAll(strings.Trim(t, "|"), "|", " "))
		}
	}
	return strings.Join(lines, "\n")
}

func normalizeSpace(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(spaces.ReplaceAllString(l, " "))
	}
	s = strings.Join(lines, "\n")
	s = blankLines.ReplaceAllString(s, "\n\n")
	return strings.TrimSpace(s)
}

// ---- PDF text ----
//
// A small reader for the text of ordinary PDFs: it inflates the content streams (FlateDecode or
// none) and reads the strings shown by the text operators (Tj, TJ, ', "). It handles the simple
// fonts office tools and most generators write; text in CID-keyed fonts without a plain encoding,
// and scanned pages, have no readable text here.

var (
	pdfStream = regexp.MustCompile(`(?s)<<(.*?)>>\s*stream\r?\n`)
)

func pdfText(b []byte) (string, error) {
	if !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("%PDF-")) {
		return "", fmt.Errorf("%w: not a PDF file", ErrUnreadable)
	}
	var out strings.Builder
	for _, loc := range pdfStream.FindAllSubmatchIndex(b, -1) {
		dict := string(b[loc[2]:loc[3]])
		start := loc[1]
		end := bytes.Index(b[start:], []byte("endstream"))
		if end < 0 {
			continue
		}
		data := bytes.TrimRight(b[start:start+end], "\r\n")
		if strings.Contains(dict, "/Subtype/Image") || strings.Contains(dict, "/Subtype /Image") || strings.Contains(dict, "/Type/XRef") || strings.Contains(dict, "/Type /XRef") {
			continue
		}
		if strings.Contains(dict, "/FlateDecode") {
			zr, err := zlib.NewReader(bytes.NewReader(data))
			if err != nil {
				continue
			}
			inflated, err := io.ReadAll(io.LimitReader(zr, 64<<20))
			if err != nil && len(inflated) == 0 {
				continue
			}
			data = inflated
		} else if strings.Contains(dict, "/Filter") {
			continue // another encoding (images, fonts): no text for us
		}
		if t := pdfContentText(data); strings.TrimSpace(t) != "" {
			out.WriteString(t)
			out.WriteString("\n\n")
		}
	}
	if strings.TrimSpace(out.String()) == "" {
		return "", fmt.Errorf("%w: no text found in the PDF (a scan, or fonts this reader does not decode)", ErrUnreadable)
	}
	return out.String(), nil
}

// pdfContentText reads the text operators of one content stream.
func pdfContentText(data []byte) string {
	var out strings.Builder
	var operands []string // strings seen since the last operator
	inText := false
	i := 0
	n := len(data)
	for i < n {
		c := data[i]
		switch {
		case c == '(':
			s, j := pdfLiteral(data, i)
			operands = append(operands, s)
			i = j
		case c == '<' && i+1 < n && data[i+1] != '<':
			j := bytes.IndexByte(data[i:], '>')
			if j < 0 {
				return out.String()
			}
			operands = append(operands, pdfHex(string(data[i+1:i+j])))
			i += j + 1
		case c == '[':
			// a TJ array: strings with kerning numbers; big negative numbers are word gaps
			j := i + 1
			var sb strings.Builder
			for j < n && data[j] != ']' {
				switch {
				case data[j] == '(':
					s, k := pdfLiteral(data, j)
					sb.WriteString(s)
					j = k
				case data[j] == '<':
					k := bytes.IndexByte(data[j:], '>')
					if k < 0 {
						j = n
						break
					}
					sb.WriteString(pdfHex(string(data[j+1 : j+k])))
					j += k + 1
				case data[j] == '-' || (data[j] >= '0' && data[j] <= '9') || data[j] == '.':
					k := j + 1
					for k < n && (data[k] >= '0' && data[k] <= '9' || data[k] == '.') {
						k++
					}
					var v float64
					fmt.Sscanf(string(data[j:k]), "%g", &v)
					if v < -180 {
						sb.WriteByte(' ')
					}
					j = k
				default:
					j++
				}
			}
			operands = append(operands, sb.String())
			i = j + 1
		case c == '%':
			for i < n && data[i] != '\n' && data[i] != '\r' {
				i++
			}
		case isPDFDelim(c) || c == ' ' || c == '\n' || c == '\r' || c == '\t':
			i++
		default:
			j := i
			for j < n && !isPDFDelim(data[j]) && data[j] != ' ' && data[j] != '\n' && data[j] != '\r' && data[j] != '\t' {
				j++
			}
			op := string(data[i:j])
			i = j
			switch op {
			case "BT":
				inText = true
			case "ET":
				inText = false
				out.WriteString("\n")
			case "Tj", "TJ":
				if inText {
					for _, s := range operands {
						out.WriteString(s)
					}
				}
			case "'", "\"":
				if inText {
					out.WriteString("\n")
					for _, s := range operands {
						out.WriteString(s)
					}
				}
			case "Td", "TD", "T*", "Tm":
				if inText && out.Len() > 0 {
					out.WriteString("\n")
				}
			}
			if !(len(op) > 0 && (op[0] == '-' || op[0] == '.' || op[0] >= '0' && op[0] <= '9' || op[0] == '/')) {
				operands = operands[:0]
			}
		}
	}
	// Lines broken by positioning inside one sentence read better joined.
	lines := strings.Split(out.String(), "\n")
	var b strings.Builder
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString(l)
		b.WriteString("\n")
	}
	return b.String()
}

func isPDFDelim(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

// pdfLiteral reads a (string) starting at data[i] == '(' and returns it with the index after it.
func pdfLiteral(data []byte, i int) (string, int) {
	var sb strings.Builder
	depth := 0
	j := i
	for j < len(data) {
		c := data[j]
		switch {
		case c == '\\' && j+1 < len(data):
			j++
			e := data[j]
			switch e {
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'b', 'f':
			case '\r', '\n':
				// a line continuation
			default:
				if e >= '0' && e <= '7' {
					v := 0
					k := 0
					for k < 3 && j < len(data) && data[j] >= '0' && data[j] <= '7' {
						v = v*8 + int(data[j]-'0')
						j++
						k++
					}
					j--
					sb.WriteString(winAnsi(byte(v)))
				} else {
					sb.WriteByte(e)
				}
			}
		case c == '(':
			depth++
			if depth > 1 {
				sb.WriteByte(c)
			}
		case c == ')':
			depth--
			if depth == 0 {
				return sb.String(), j + 1
			}
			sb.WriteByte(c)
		default:
			if c >= 0x80 {
				sb.WriteString(winAnsi(c))
			} else {
				sb.WriteByte(c)
			}
		}
		j++
	}
	return sb.String(), j
}

func pdfHex(h string) string {
	h = strings.Map(func(r rune) rune {
		if strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return r
		}
		return -1
	}, h)
	if len(h)%2 == 1 {
		h += "0"
	}
	raw := make([]byte, 0, len(h)/2)
	for i := 0; i+1 < len(h); i += 2 {
		var v byte
		fmt.Sscanf(h[i:i+2], "%02x", &v)
		raw = append(raw, v)
	}
	// UTF-16BE with a byte-order mark, or two-byte codes that are plainly UTF-16 text
	if len(raw) >= 2 && raw[0] == 0xfe && raw[1] == 0xff {
		return utf16BE(raw[2:])
	}
	if len(raw) >= 2 && len(raw)%2 == 0 && raw[0] == 0 {
		return utf16BE(raw)
	}
	var sb strings.Builder
	for _, c := range raw {
		sb.WriteString(winAnsi(c))
	}
	return sb.String()
}

func utf16BE(b []byte) string {
	var sb strings.Builder
	for i := 0; i+1 < len(b); i += 2 {
		r := rune(b[i])<<8 | rune(b[i+1])
		if r >= 0xd800 && r < 0xdc00 && i+3 < len(b) {
			lo := rune(b[i+2])<<8 | rune(b[i+3])
			r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
			i += 2
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// winAnsi maps a byte of WinAnsiEncoding (what simple PDF fonts mostly use) to text.
func winAnsi(c byte) string {
	if c < 0x80 {
		if c < 0x20 && c != '\n' && c != '\t' {
			return ""
		}
		return string(rune(c))
	}
	special := map[byte]rune{0x80: '€', 0x85: '…', 0x91: '‘', 0x92: '’', 0x93: '“', 0x94: '”', 0x95: '•', 0x96: '–', 0x97: '—', 0x99: '™'}
	if r, ok := special[c]; ok {
		return string(r)
	}
	if c >= 0xa0 {
		return string(rune(c)) // Latin-1
	}
	return ""
}
