package whatsapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Addressed reads what a delivery must show before it is acknowledged and kept for later: that
// it is JSON, that it is about WhatsApp, and the business numbers (each change's
// metadata.phone_number_id) whose app secret must have signed it. The rest is read when the
// delivery is processed. Parse did this with a full decode, most of a kept delivery's CPU before
// its 200 (a one-message delivery: ~8 µs of ~11); this walks the bytes once, checking their syntax
// as it goes (json.Valid first and a walk after took twice as long). Keys match
// case-insensitively, as encoding/json's do.
func Addressed(body []byte) ([]string, error) {
	ids, err := addressed(body)
	if err != nil && !json.Valid(body) {
		// The decoder's error says where and why.
		var v any
		if derr := json.Unmarshal(body, &v); derr != nil {
			err = derr
		}
	}
	if err != nil {
		return nil, fmt.Errorf("decode delivery: %w", err)
	}
	return ids, nil
}

func addressed(body []byte) ([]string, error) {
	s := addrScan{b: body}
	var ids []string
	var seen idSet
	var object string
	err := s.object(func(key []byte) error {
		switch {
		case bytes.EqualFold(key, []byte("object")):
			v, err := s.text("object")
			object = v
			return err
		case bytes.EqualFold(key, []byte("entry")):
			return s.array(func() error {
				return s.object(func(key []byte) error {
					if !bytes.EqualFold(key, []byte("changes")) {
						return s.skip()
					}
					return s.array(func() error {
						return s.object(func(key []byte) error {
							if !bytes.EqualFold(key, []byte("value")) {
								return s.skip()
							}
							return s.object(func(key []byte) error {
								if !bytes.EqualFold(key, []byte("metadata")) {
									return s.skip()
								}
								return s.object(func(key []byte) error {
									if !bytes.EqualFold(key, []byte("phone_number_id")) {
										return s.skip()
									}
									id, err := s.text("phone_number_id")
									if err == nil && id != "" && !seen.has(id, ids) {
										ids = append(ids, id)
										seen.add(id, ids)
									}
									return err
								})
							})
						})
					})
				})
			})
		}
		return s.skip()
	})
	if err != nil {
		return nil, err
	}
	if s.space(); s.i < len(s.b) {
		return nil, errSyntax // data after the object
	}
	if object != "" && object != "whatsapp_business_account" {
		return nil, ErrNotWhatsApp
	}
	return ids, nil
}

// idSet remembers the ids found: a delivery names one or a few (a list is enough), but the
// body is read before its signature is checked, so a crafted one naming 100k ids must not cost a
// quadratic search (16 s of CPU for 5 MB).
type idSet map[string]bool

// has reports whether id is among those found (all of them, in list).
func (m idSet) has(id string, list []string) bool {
	if m != nil {
		return m[id]
	}
	return slices.Contains(list, id)
}

func (m *idSet) add(id string, all []string) {
	if *m == nil {
		if len(all) < 16 {
			return // found by the lookup below
		}
		*m = make(map[string]bool, 2*len(all))
		for _, x := range all {
			(*m)[x] = true
		}
	}
	(*m)[id] = true
}

// errSyntax: the bytes are not JSON (Addressed reports encoding/json's own error for them).
var errSyntax = errors.New("invalid JSON")

// maxDepth is how deeply arrays and objects may nest, as in encoding/json (and the walk recurses).
const maxDepth = 10000

// addrScan walks JSON and checks its syntax as encoding/json does: structure, strings (no control
// characters, valid escapes), numbers and literals.
type addrScan struct {
	b     []byte
	i     int
	depth int
}

func (s *addrScan) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *addrScan) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// lit moves past the literal word (true, false, null) at the cursor.
func (s *addrScan) lit(word string) error {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return errSyntax
	}
	s.i += len(word)
	return nil
}

// object calls field for each member of the object at the cursor, with the cursor on its value,
// which field must consume. null is an empty object (as encoding/json decodes it into a struct).
func (s *addrScan) object(field func(key []byte) error) error {
	if in, err := s.enter('{'); !in {
		return err
	}
	return s.each('}', func() error {
		if s.peek() != '"' {
			return errSyntax
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if s.space(); s.peek() != ':' {
			return errSyntax
		}
		s.i++
		return field(key)
	})
}

// array calls elem for each element of the array at the cursor; null is an empty array.
func (s *addrScan) array(elem func() error) error {
	if in, err := s.enter('['); !in {
		return err
	}
	return s.each(']', elem)
}

// enter moves into the object or array (open is '{' or '[') at the cursor, and reports whether
// there is one: null is none, anything else an error.
func (s *addrScan) enter(open byte) (bool, error) {
	s.space()
	switch s.peek() {
	case 'n':
		return false, s.lit("null")
	case open:
		if s.depth++; s.depth > maxDepth {
			return false, errSyntax
		}
		s.i++
		return true, nil
	}
	want := "an object"
	if open == '[' {
		want = "an array"
	}
	return false, errors.New(want + " is expected where a " + s.kind() + " is")
}

// each calls next for each item up to the closing byte, checking the commas between them.
func (s *addrScan) each(closing byte, next func() error) error {
	if s.space(); s.peek() == closing {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.space()
		if err := next(); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
		case closing:
			s.i++
			s.depth--
			return nil
		default:
			return errSyntax
		}
	}
}

// text reads the string value of field (null reads as "").
func (s *addrScan) text(field string) (string, error) {
	s.space()
	switch s.peek() {
	case 'n':
		return "", s.lit("null")
	case '"':
		v, err := s.str()
		return string(v), err
	}
	if err := s.skip(); err != nil {
		return "", err
	}
	return "", errors.New(field + " must be a string")
}

// str reads the string at the cursor: its bytes, unescaped when it has escapes.
func (s *addrScan) str() ([]byte, error) {
	start := s.i
	escaped, err := s.pastString()
	if err != nil {
		return nil, err
	}
	if !escaped {
		return s.b[start+1 : s.i-1], nil
	}
	var v string
	if err := json.Unmarshal(s.b[start:s.i], &v); err != nil {
		return nil, err
	}
	return []byte(v), nil
}

// pastString moves past the string at the cursor and reports whether it has escapes.
func (s *addrScan) pastString() (escaped bool, err error) {
	s.i++ // '"'
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return escaped, nil
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return escaped, errSyntax
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if len(s.b)-s.i < 6 || !isHex(s.b[s.i+2]) || !isHex(s.b[s.i+3]) || !isHex(s.b[s.i+4]) || !isHex(s.b[s.i+5]) {
					return escaped, errSyntax
				}
				s.i += 6
			default:
				return escaped, errSyntax
			}
		case c < 0x20:
			return escaped, errSyntax
		default:
			s.i++
		}
	}
	return escaped, errSyntax // unterminated
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skip moves past the value at the cursor.
func (s *addrScan) skip() error {
	s.space()
	switch c := s.peek(); {
	case c == '"':
		_, err := s.pastString()
		return err
	case c == '{':
		return s.object(func([]byte) error { return s.skip() })
	case c == '[':
		return s.array(s.skip)
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return errSyntax
}

// number moves past the number at the cursor: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *addrScan) number() error {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return errSyntax
	}
	if s.peek() == '.' {
		s.i++
		if s.digits() == 0 {
			return errSyntax
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return errSyntax
		}
	}
	return nil
}

// digits moves past the digits at the cursor and returns how many there were.
func (s *addrScan) digits() int {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// kind names the JSON value at the cursor, for errors.
func (s *addrScan) kind() string {
	switch s.peek() {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}
