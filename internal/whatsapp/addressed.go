package whatsapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Addressed reads what a delivery must show before it is acknowledged and kept for later: that
// it is JSON, that it is about WhatsApp, and the business numbers (each change's
// metadata.phone_number_id) whose app secret must have signed it. The rest is read when the
// delivery is processed. Parse did this with a full decode, most of a kept delivery's CPU before
// its 200 (a one-message delivery: ~8 µs of ~11); this validates and walks the bytes once. Keys
// match case-insensitively, as encoding/json's do.
func Addressed(body []byte) ([]string, error) {
	if !json.Valid(body) {
		// The decoder's error says where and why.
		var v any
		err := json.Unmarshal(body, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return nil, fmt.Errorf("decode delivery: %w", err)
	}
	s := addrScan{b: body}
	var ids []string
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
									if err == nil && id != "" && !containsString(ids, id) {
										ids = append(ids, id)
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
		return nil, fmt.Errorf("decode delivery: %w", err)
	}
	if object != "" && object != "whatsapp_business_account" {
		return nil, ErrNotWhatsApp
	}
	return ids, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// addrScan walks JSON already known to be valid (json.Valid), so it only has to find where
// values end, not check them.
type addrScan struct {
	b []byte
	i int
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

// object calls field for each member of the object at the cursor, with the cursor on its value,
// which field must consume. null is an empty object (as encoding/json decodes it into a struct).
func (s *addrScan) object(field func(key []byte) error) error {
	if in, err := s.enter('{'); !in {
		return err
	}
	return s.each('}', func() error {
		key, err := s.str()
		if err != nil {
			return err
		}
		s.space()
		s.i++ // ':'
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
		s.i += len("null")
		return false, nil
	case open:
		s.i++
		return true, nil
	}
	want := "an object"
	if open == '[' {
		want = "an array"
	}
	return false, errors.New(want + " is expected where a " + s.kind() + " is")
}

// each calls next for each item up to the closing byte, past the commas between them.
func (s *addrScan) each(closing byte, next func() error) error {
	for {
		s.space()
		switch {
		case s.i >= len(s.b): // not after json.Valid; a guard against looping on a bug
			return errors.New("unexpected end of JSON")
		case s.b[s.i] == closing:
			s.i++
			return nil
		}
		if err := next(); err != nil {
			return err
		}
		s.space()
		if s.peek() == ',' {
			s.i++
		}
	}
}

// text reads the string value of field (null reads as "").
func (s *addrScan) text(field string) (string, error) {
	s.space()
	switch s.peek() {
	case 'n':
		s.i += len("null")
		return "", nil
	case '"':
		v, err := s.str()
		return string(v), err
	}
	return "", errors.New(field + " must be a string, not a " + s.kind())
}

// str reads the string at the cursor: its bytes, unescaped when it has escapes.
func (s *addrScan) str() ([]byte, error) {
	start := s.i
	escaped, err := s.pastString()
	if err != nil || !escaped {
		return s.b[start+1 : s.i-1], err
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
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i += 2
			continue
		case '"':
			s.i++
			return escaped, nil
		}
		s.i++
	}
	return escaped, errors.New("unterminated string")
}

// skip moves past the value at the cursor.
func (s *addrScan) skip() error {
	s.space()
	switch s.peek() {
	case '"':
		_, err := s.pastString()
		return err
	case '{':
		return s.object(func([]byte) error { return s.skip() })
	case '[':
		return s.array(s.skip)
	}
	for s.i < len(s.b) { // a number or a literal
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return nil
		}
		s.i++
	}
	return nil
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
