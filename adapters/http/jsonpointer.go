package http

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// outOfRangeNumberPointer returns the JSON pointer of the first number in body whose
// text is literal and that a float64 cannot hold (1e309), and whether there is one.
// encoding/json names only the struct field an out-of-range number was decoded into
// ("context"), not the key inside a map it sits under ("amount"); this walks the body
// once more, on the error path only, to name the field itself (/context/amount).
func outOfRangeNumberPointer(body []byte, literal string) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	// One frame per open object or array: the key or index the next value sits under.
	type frame struct {
		object bool
		key    string
		index  int
		// keyNext is true in an object when the next token is a key.
		keyNext bool
	}
	var stack []frame
	pointer := func() string {
		var b strings.Builder
		for _, f := range stack {
			b.WriteByte('/')
			if f.object {
				b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(f.key))
			} else {
				b.WriteString(strconv.Itoa(f.index))
			}
		}
		return b.String()
	}
	// value is called after a value (scalar or closed container) ends in the top frame.
	value := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].object {
				stack[n-1].keyNext = true
			} else {
				stack[n-1].index++
			}
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].keyNext {
			if k, ok := tok.(string); ok {
				stack[n-1].key, stack[n-1].keyNext = k, false
				continue
			}
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{object: true, keyNext: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				value()
			}
		case json.Number:
			if _, err := strconv.ParseFloat(string(t), 64); err != nil && string(t) == literal {
				return pointer(), true
			}
			value()
		default:
			value()
		}
	}
}
