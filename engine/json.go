package engine

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends the JSON encoding of in to dst and returns the extended buffer. The
// bytes are exactly those of json.Marshal(in); the tests hold the two byte-identical,
// including under fuzzing.
//
// It exists for the decide hot path, which stores every input snapshot: encoding/json
// spends most of its time there reflecting over the four maps and sorting their keys.
// The struct layout is written out by hand, so a field added to Input or Signals makes
// the comparison tests fail until it is added here too.
//
// On error (a NaN or infinite number, or a value json.Marshal refuses) dst is returned
// unchanged along with the error.
func (in *Input) AppendJSON(dst []byte) ([]byte, error) {
	if in == nil {
		return append(dst, "null"...), nil
	}
	n := len(dst)
	b := append(dst, `{"action":`...)
	b = appendJSONString(b, in.Action)
	var err error
	for _, f := range [...]struct {
		name string
		m    map[string]any
	}{{`,"subject":`, in.Subject}, {`,"device":`, in.Device}, {`,"context":`, in.Context}, {`,"behavior":`, in.Behavior}} {
		b = append(b, f.name...)
		if b, err = appendJSONObject(b, f.m, 1); err != nil {
			return dst[:n], err
		}
	}
	b = append(b, `,"signals":`...)
	if b, err = in.Signals.appendJSON(b); err != nil {
		return dst[:n], err
	}
	return append(b, '}'), nil
}

func (s *Signals) appendJSON(b []byte) ([]byte, error) {
	ng := sourcesOf(s.NotGathered)
	b = append(b, '{')
	var err error
	if !ng.Has(SourceVerification) {
		v := &s.Verification
		b = append(b, `"verification":{"status":`...)
		b = appendJSONString(b, v.Status)
		b = append(b, `,"provider":`...)
		b = appendJSONString(b, v.Provider)
		b = append(b, `,"score":`...)
		if b, err = appendJSONFloat(b, v.Score, 64); err != nil {
			return b, err
		}
		b = append(b, `,"reason_codes":`...)
		b = appendJSONStrings(b, v.ReasonCodes)
		b = append(b, `,"age_days":`...)
		if b, err = appendJSONFloat(b, v.AgeDays, 64); err != nil {
			return b, err
		}
		b = append(b, `},`...)
	}
	if !ng.Has(SourceVelocity) {
		b = append(b, `"velocity":{"user":`...)
		b = s.Velocity.User.appendJSON(b)
		b = append(b, `,"device":`...)
		b = s.Velocity.Device.appendJSON(b)
		b = append(b, `,"ip":`...)
		b = s.Velocity.IP.appendJSON(b)
		b = append(b, `},`...)
	}
	if !ng.Has(SourceDevice) {
		d := &s.Device
		b = append(b, `"device":{"known":`...)
		b = strconv.AppendBool(b, d.Known)
		b = append(b, `,"age_hours":`...)
		if b, err = appendJSONFloat(b, d.AgeHours, 64); err != nil {
			return b, err
		}
		b = append(b, `,"users_seen":`...)
		b = strconv.AppendInt(b, d.UsersSeen, 10)
		b = append(b, `,"flagged":`...)
		b = strconv.AppendBool(b, d.Flagged)
		b = append(b, `},`...)
	}
	if !ng.Has(SourceLists) {
		b = append(b, `"lists":`...)
		b = appendJSONBools(b, s.Lists)
		b = append(b, ',')
	}
	b = append(b, `"unavailable":`...)
	b = appendJSONStrings(b, s.Unavailable)
	if len(s.NotGathered) > 0 {
		b = append(b, `,"not_gathered":`...)
		b = appendJSONStrings(b, s.NotGathered)
	}
	return append(b, '}'), nil
}

func (w *Window) appendJSON(b []byte) []byte {
	b = append(b, `{"count_1m":`...)
	b = strconv.AppendInt(b, w.Count1m, 10)
	b = append(b, `,"count_1h":`...)
	b = strconv.AppendInt(b, w.Count1h, 10)
	b = append(b, `,"count_24h":`...)
	b = strconv.AppendInt(b, w.Count24h, 10)
	b = append(b, `,"distinct_users_24h":`...)
	b = strconv.AppendInt(b, w.DistinctUsers24h, 10)
	b = append(b, `,"distinct_devices_24h":`...)
	b = strconv.AppendInt(b, w.DistinctDevices24h, 10)
	return append(b, '}')
}

// AppendJSONValue appends the JSON encoding of v to dst, exactly as json.Marshal(v) would
// encode it. The types encoding/json decodes into (nil, bool, float64, string,
// map[string]any, []any) and a few common others are written directly; any other value,
// json.Number included, is handed to json.Marshal. On error dst is returned unchanged.
func AppendJSONValue(dst []byte, v any) ([]byte, error) {
	b, err := appendJSONValue(dst, v, 0)
	if err != nil {
		return dst, err
	}
	return b, nil
}

// maxJSONDepth is the nesting depth past which a value is handed to json.Marshal, whose
// cycle detection then turns a self-containing map or slice into an error rather than a
// stack overflow. Input decoded from JSON never gets near it.
const maxJSONDepth = 1000

func appendJSONValue(b []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case float64:
		return appendJSONFloat(b, v, 64)
	case string:
		return appendJSONString(b, v), nil
	case map[string]any:
		return appendJSONObject(b, v, depth+1)
	case []any:
		return appendJSONArray(b, v, depth+1)
	case map[string]bool:
		return appendJSONBools(b, v), nil
	case []string:
		return appendJSONStrings(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case float32:
		return appendJSONFloat(b, float64(v), 32)
	}
	return appendMarshal(b, v)
}

// appendMarshal is the fallback for everything not written out here.
func appendMarshal(b []byte, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

func appendJSONObject(b []byte, m map[string]any, depth int) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	if depth > maxJSONDepth {
		return appendMarshal(b, m)
	}
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		if b, err = appendJSONValue(b, m[k], depth); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendJSONArray(b []byte, a []any, depth int) ([]byte, error) {
	if a == nil {
		return append(b, "null"...), nil
	}
	if depth > maxJSONDepth {
		return appendMarshal(b, a)
	}
	b = append(b, '[')
	var err error
	for i, v := range a {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendJSONValue(b, v, depth); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

func appendJSONBools(b []byte, m map[string]bool) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = strconv.AppendBool(b, m[k])
	}
	return append(b, '}')
}

func appendJSONStrings(b []byte, a []string) []byte {
	if a == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range a {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// AppendJSONString appends s as json.Marshal encodes a string (HTML escaping on).
func AppendJSONString(dst []byte, s string) []byte { return appendJSONString(dst, s) }

// AppendJSONStrings appends a as json.Marshal encodes a []string: null when a is nil.
func AppendJSONStrings(dst []byte, a []string) []byte { return appendJSONStrings(dst, a) }

// AppendJSONFloat appends f as json.Marshal encodes a float64. NaN and the infinities are
// an error (*json.UnsupportedValueError), with dst returned unchanged.
func AppendJSONFloat(dst []byte, f float64) ([]byte, error) { return appendJSONFloat(dst, f, 64) }

// appendJSONFloat is encoding/json's floatEncoder: like %g, but with the exponent
// cut-offs of ES6 number-to-string conversion and no zero-padded exponent.
func appendJSONFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		var v any = f
		if bits == 32 {
			v = float32(f)
		}
		return b, &json.UnsupportedValueError{Value: reflect.ValueOf(v), Str: strconv.FormatFloat(f, 'g', -1, bits)}
	}
	abs := math.Abs(f)
	format := byte('f')
	// float32 values are compared as float32 to get the cut-offs exactly right.
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// e-09 becomes e-9.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// jsonSafe reports the ASCII bytes a JSON string carries unescaped when HTML escaping is
// on, as it is for json.Marshal: everything printable but '"', '\\', '<', '>' and '&'.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	t['"'], t['\\'], t['<'], t['>'], t['&'] = false, false, false, false, false
	return t
}()

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's appendString with escapeHTML set: short escapes
// for \b \f \n \r \t, \u00XX for other control bytes and <, >, &, \ufffd for invalid
// UTF-8, and U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
