package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file implements CanonicalJSON in one pass over the input, without building a Go
// value: it runs on every audit append (inside the transaction that holds the chain head)
// and on every event VerifyChain reads. Its output is defined to be exactly what
// encoding/json produces when it decodes the document into an `any` and encodes it back
// with SetEscapeHTML(false); canonical_test.go checks that against encoding/json by fuzzing.

// maxCanonicalDepth matches encoding/json's nesting limit.
const maxCanonicalDepth = 10000

// appendCanonical appends the canonical form of the single JSON value in src to dst.
func appendCanonical(dst, src []byte) ([]byte, error) {
	c := canonicalizer{src: src}
	c.skipSpace()
	dst, err := c.value(dst)
	if err != nil {
		return nil, err
	}
	c.skipSpace()
	if c.pos != len(src) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return dst, nil
}

type canonicalizer struct {
	src   []byte
	pos   int
	depth int
	key   []byte // scratch for decoding object keys
}

func (c *canonicalizer) syntaxError(what string) error {
	if c.pos >= len(c.src) {
		return fmt.Errorf("unexpected end of JSON input, expecting %s", what)
	}
	return fmt.Errorf("invalid character %q at offset %d, expecting %s", c.src[c.pos], c.pos, what)
}

func (c *canonicalizer) skipSpace() {
	for c.pos < len(c.src) {
		switch c.src[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *canonicalizer) value(dst []byte) ([]byte, error) {
	if c.pos >= len(c.src) {
		return nil, c.syntaxError("a value")
	}
	switch b := c.src[c.pos]; {
	case b == '{':
		return c.object(dst)
	case b == '[':
		return c.array(dst)
	case b == '"':
		return c.stringValue(dst)
	case b == '-' || ('0' <= b && b <= '9'):
		return c.number(dst)
	case b == 't':
		return c.literal(dst, "true")
	case b == 'f':
		return c.literal(dst, "false")
	case b == 'n':
		return c.literal(dst, "null")
	}
	return nil, c.syntaxError("a value")
}

func (c *canonicalizer) literal(dst []byte, lit string) ([]byte, error) {
	if !bytes.HasPrefix(c.src[c.pos:], []byte(lit)) {
		return nil, c.syntaxError(lit)
	}
	c.pos += len(lit)
	return append(dst, lit...), nil
}

func (c *canonicalizer) enter() error {
	c.depth++
	if c.depth > maxCanonicalDepth {
		return errors.New("exceeded max depth")
	}
	return nil
}

func (c *canonicalizer) array(dst []byte) ([]byte, error) {
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer func() { c.depth-- }()
	c.pos++ // [
	dst = append(dst, '[')
	c.skipSpace()
	if c.pos < len(c.src) && c.src[c.pos] == ']' {
		c.pos++
		return append(dst, ']'), nil
	}
	for first := true; ; first = false {
		if !first {
			dst = append(dst, ',')
		}
		c.skipSpace()
		var err error
		if dst, err = c.value(dst); err != nil {
			return nil, err
		}
		c.skipSpace()
		if c.pos >= len(c.src) {
			return nil, c.syntaxError("',' or ']'")
		}
		switch c.src[c.pos] {
		case ',':
			c.pos++
		case ']':
			c.pos++
			return append(dst, ']'), nil
		default:
			return nil, c.syntaxError("',' or ']'")
		}
	}
}

// member is one `"key":value` of an object, already canonical, at dst[from:to].
type member struct {
	key      string // decoded
	from, to int
}

func (c *canonicalizer) object(dst []byte) ([]byte, error) {
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer func() { c.depth-- }()
	c.pos++ // {
	start := len(dst)
	dst = append(dst, '{')
	c.skipSpace()
	if c.pos < len(c.src) && c.src[c.pos] == '}' {
		c.pos++
		return append(dst, '}'), nil
	}
	var members []member
	ordered := true // keys strictly increasing so far: the output needs no reordering
	for {
		c.skipSpace()
		if c.pos >= len(c.src) || c.src[c.pos] != '"' {
			return nil, c.syntaxError("a string key")
		}
		if len(members) > 0 {
			dst = append(dst, ',')
		}
		from := len(dst)
		key, err := c.decodeString(c.key[:0])
		if err != nil {
			return nil, err
		}
		c.key = key
		k := string(key)
		if n := len(members); n > 0 && k <= members[n-1].key {
			ordered = false
		}
		dst = appendJSONString(dst, key)
		dst = append(dst, ':')
		c.skipSpace()
		if c.pos >= len(c.src) || c.src[c.pos] != ':' {
			return nil, c.syntaxError("':'")
		}
		c.pos++
		c.skipSpace()
		if dst, err = c.value(dst); err != nil {
			return nil, err
		}
		members = append(members, member{key: k, from: from, to: len(dst)})
		c.skipSpace()
		if c.pos >= len(c.src) {
			return nil, c.syntaxError("',' or '}'")
		}
		if c.src[c.pos] == ',' {
			c.pos++
			continue
		}
		if c.src[c.pos] != '}' {
			return nil, c.syntaxError("',' or '}'")
		}
		c.pos++
		break
	}
	if ordered {
		return append(dst, '}'), nil
	}
	// Sort by key; of repeated keys the last one wins, as when decoding into a map.
	slices.SortStableFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	kept := members[:0]
	for i, m := range members {
		if i+1 < len(members) && members[i+1].key == m.key {
			continue
		}
		kept = append(kept, m)
	}
	body := bytes.Clone(dst[start:])
	dst = append(dst[:start], '{')
	for i, m := range kept {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, body[m.from-start:m.to-start]...)
	}
	return append(dst, '}'), nil
}

func (c *canonicalizer) stringValue(dst []byte) ([]byte, error) {
	// Fast path: a string without escapes whose bytes are already canonical is copied.
	for i := c.pos + 1; i < len(c.src); {
		b := c.src[i]
		if b == '"' {
			dst = append(dst, c.src[c.pos:i+1]...)
			c.pos = i + 1
			return dst, nil
		}
		if b < utf8.RuneSelf {
			if !jsonSafe(b) {
				break
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(c.src[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			break
		}
		i += size
	}
	s, err := c.decodeString(nil)
	if err != nil {
		return nil, err
	}
	return appendJSONString(dst, s), nil
}

// decodeString decodes the JSON string at c.pos into dst as encoding/json does: escapes
// resolved, invalid UTF-8 and unpaired surrogates replaced with U+FFFD.
func (c *canonicalizer) decodeString(dst []byte) ([]byte, error) {
	c.pos++ // opening quote
	for c.pos < len(c.src) {
		b := c.src[c.pos]
		switch {
		case b == '"':
			c.pos++
			return dst, nil
		case b < ' ':
			return nil, c.syntaxError("a string character")
		case b == '\\':
			if c.pos+1 >= len(c.src) {
				return nil, c.syntaxError("an escape")
			}
			switch e := c.src[c.pos+1]; e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := hex4(c.src[c.pos+2:])
				if !ok {
					c.pos++
					return nil, c.syntaxError("four hex digits")
				}
				c.pos += 6
				if utf16.IsSurrogate(r) {
					if len(c.src) >= c.pos+2 && c.src[c.pos] == '\\' && c.src[c.pos+1] == 'u' {
						if r2, ok := hex4(c.src[c.pos+2:]); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								c.pos += 6
								dst = utf8.AppendRune(dst, dec)
								continue
							}
						}
					}
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default:
				c.pos++
				return nil, c.syntaxError("an escape character")
			}
			c.pos += 2
		case b < utf8.RuneSelf:
			dst = append(dst, b)
			c.pos++
		default:
			r, size := utf8.DecodeRune(c.src[c.pos:])
			c.pos += size
			dst = utf8.AppendRune(dst, r) // RuneError for an invalid byte
		}
	}
	return nil, c.syntaxError("'\"'")
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}

func (c *canonicalizer) number(dst []byte) ([]byte, error) {
	start := c.pos
	digits := func() int {
		n := 0
		for c.pos < len(c.src) && '0' <= c.src[c.pos] && c.src[c.pos] <= '9' {
			c.pos++
			n++
		}
		return n
	}
	if c.src[c.pos] == '-' {
		c.pos++
	}
	switch {
	case c.pos < len(c.src) && c.src[c.pos] == '0':
		c.pos++
	case digits() == 0:
		return nil, c.syntaxError("a digit")
	}
	integer := true
	if c.pos < len(c.src) && c.src[c.pos] == '.' {
		integer = false
		c.pos++
		if digits() == 0 {
			return nil, c.syntaxError("a digit")
		}
	}
	if c.pos < len(c.src) && (c.src[c.pos] == 'e' || c.src[c.pos] == 'E') {
		integer = false
		c.pos++
		if c.pos < len(c.src) && (c.src[c.pos] == '+' || c.src[c.pos] == '-') {
			c.pos++
		}
		if digits() == 0 {
			return nil, c.syntaxError("a digit")
		}
	}
	lit := c.src[start:c.pos]
	// An integer of at most 15 digits is exactly representable and prints as written.
	if integer && len(lit) <= 15 {
		return append(dst, lit...), nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return nil, fmt.Errorf("number %s: %w", lit, err)
	}
	return appendJSONFloat(dst, f), nil
}

// appendJSONFloat formats f as encoding/json does (the ECMAScript number form).
func appendJSONFloat(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// jsonSafe reports whether ASCII byte b appears unescaped in a canonical string.
func jsonSafe(b byte) bool { return b >= ' ' && b != '"' && b != '\\' }

const lowerHex = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaped as encoding/json does without HTML
// escaping.
func appendJSONString[S []byte | string](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if jsonSafe(b) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', lowerHex[b>>4], lowerHex[b&0xF])
			}
			i++
			start = i
			continue
		}
		n := min(len(s)-i, utf8.UTFMax)
		r, size := utf8.DecodeRuneInString(string(s[i : i+n]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', lowerHex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
