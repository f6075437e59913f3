// Package pii separates the personal data a caller posts with a decision from the rest of
// the policy input, so that a stored decision keeps a PII-free snapshot (replayable,
// exportable, kept after erasure) and the personal data apart, to be encrypted under the
// subject's data key.
//
// Personal data is recognised by field name (Keys), at any depth of subject, device,
// context and behavior. IP addresses are replaced by a keyed pseudonym rather than
// dropped, so that per-IP features still line up when history is replayed.
package pii

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/verdict-engine/verdict/engine"
)

// keys are the field names (lower case) whose values are personal data.
var keys = map[string]bool{
	"email": true, "phone": true, "name": true, "first_name": true, "last_name": true,
	"full_name": true, "dob": true, "date_of_birth": true, "birthdate": true, "address": true,
	"street": true, "postcode": true, "document_number": true, "national_id": true, "ssn": true,
	"iban": true, "card_number": true, "user_agent": true,
}

// ipKey is the field name whose string value is an IP address, pseudonymised rather than
// removed.
const ipKey = "ip"

// IsKey reports whether a field of this name holds personal data that Split removes.
func IsKey(name string) bool { return keys[strings.ToLower(name)] }

// Field is one value Split took out of the input: its path from the document root (object
// keys as strings, array indexes as numbers) and the value as posted.
type Field struct {
	Path  []any `json:"path"`
	Value any   `json:"value"`
}

// Pseudonymizer turns IP addresses into stable stand-ins: documentation-range IPv6
// addresses (2001:db8::/32) carrying 96 bits of an HMAC-SHA-256 of the address under a
// secret key. The same address always gives the same stand-in under the same key; without
// the key it cannot be reversed by enumerating the address space.
type Pseudonymizer struct {
	macs sync.Pool // of HMAC-SHA-256 states under the key, reset before use
}

// NewPseudonymizer returns a Pseudonymizer for a key of at least 32 bytes.
func NewPseudonymizer(key []byte) (*Pseudonymizer, error) {
	if len(key) < 32 {
		return nil, fmt.Errorf("pseudonym key: want at least 32 bytes, got %d", len(key))
	}
	key = slices.Clone(key)
	return &Pseudonymizer{macs: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}, nil
}

// IP returns the stand-in for an address (any string; a valid address is canonicalised
// first, so "::ffff:10.0.0.1" and "10.0.0.1" give the same stand-in).
func (p *Pseudonymizer) IP(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		s = a.Unmap().String()
	}
	m := p.macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(s))
	var buf [sha256.Size]byte
	sum := m.Sum(buf[:0])
	p.macs.Put(m)
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8}
	copy(a[4:], sum[:12])
	return netip.AddrFrom16(a).String()
}

// Digest returns a keyed digest of free text, "hmac-sha256:" and 64 hex digits: an
// HMAC-SHA-256 under the same key as the IP stand-ins, over label, a zero byte and b (label
// keeps one use of the key apart from another). Whoever holds the text and the key can
// match it to the digest; the digest alone does not give away a short text (a reviewer's
// note that is a phone number), as a plain SHA-256 does to anyone who guesses it.
func (p *Pseudonymizer) Digest(label string, b []byte) string {
	m := p.macs.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write(b)
	var buf [sha256.Size]byte
	sum := m.Sum(buf[:0])
	p.macs.Put(m)
	return "hmac-sha256:" + hex.EncodeToString(sum)
}

// sections are the caller-posted parts of the input; signals are derived numbers and
// booleans and stay as they are.
var sections = []string{"subject", "device", "context", "behavior"}

// Split returns a copy of in without personal data, and the fields it took out:
//   - every field named in Keys (any case, any depth of subject, device, context and
//     behavior, inside arrays too) is removed;
//   - every string field named "ip" is replaced by p's stand-in (the original is among the
//     removed fields); an "ip" of any other kind but null (a list, an object, a number) is
//     removed;
//   - ids (subject.id, device.id), signals and everything else are kept as they are.
//
// in is not modified: maps and arrays on the way to a removed field are copied, the rest
// is shared. Removed is nil when the input holds no personal data.
func Split(in *engine.Input, p *Pseudonymizer) (engine.Input, []Field) {
	out := *in
	var removed []Field
	parts := [...]*map[string]any{&out.Subject, &out.Device, &out.Context, &out.Behavior}
	for i, m := range parts {
		if *m == nil {
			continue
		}
		path := []any{sections[i]}
		if v, changed := strip(*m, path, p, &removed); changed {
			*m = v.(map[string]any)
		}
	}
	return out, removed
}

// strip returns v without personal data and whether it differs from v; removed values are
// appended to removed with their paths.
func strip(v any, path []any, p *Pseudonymizer, removed *[]Field) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			lk := strings.ToLower(k)
			var nv any
			drop, changed := false, false
			s, isStr := e.(string)
			switch {
			case lk == ipKey && isStr:
				*removed = append(*removed, Field{Path: appendPath(path, k), Value: e})
				if p != nil {
					nv, changed = p.IP(s), true
				} else {
					drop = true
				}
			case keys[lk], lk == ipKey && e != nil:
				// An "ip" that is not a string (a list of addresses, an object, a number)
				// has no stand-in: it is taken out whole.
				*removed = append(*removed, Field{Path: appendPath(path, k), Value: e})
				drop = true
			default:
				// The path is copied only when a field is removed (appendPath): copying it
				// at every node made deep documents cost quadratic time.
				nv, changed = strip(e, append(path, k), p, removed)
			}
			if !drop && !changed {
				continue
			}
			if out == nil {
				out = make(map[string]any, len(x))
				for k2, e2 := range x {
					out[k2] = e2
				}
			}
			if drop {
				delete(out, k)
			} else {
				out[k] = nv
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	case []any:
		var out []any
		for i, e := range x {
			nv, changed := strip(e, append(path, i), p, removed)
			if !changed {
				continue
			}
			if out == nil {
				out = slices.Clone(x)
			}
			out[i] = nv
		}
		if out == nil {
			return v, false
		}
		return out, true
	}
	return v, false
}

func appendPath(path []any, elem any) []any {
	out := make([]any, len(path)+1)
	copy(out, path)
	out[len(path)] = elem
	return out
}

// Merge puts removed fields back into doc, a policy input document decoded from JSON (a
// snapshot Split produced), for a reader entitled to see personal data. Paths that no
// longer fit the document are skipped.
func Merge(doc map[string]any, removed []Field) {
	for _, f := range removed {
		if len(f.Path) < 2 {
			continue
		}
		var cur any = doc
		ok := true
		for _, step := range f.Path[:len(f.Path)-1] {
			if cur, ok = child(cur, step); !ok {
				break
			}
		}
		if !ok {
			continue
		}
		switch c := cur.(type) {
		case map[string]any:
			if k, isKey := f.Path[len(f.Path)-1].(string); isKey {
				c[k] = f.Value
			}
		case []any:
			if i, isIdx := index(f.Path[len(f.Path)-1]); isIdx && i < len(c) {
				c[i] = f.Value
			}
		}
	}
}

func child(cur, step any) (any, bool) {
	switch c := cur.(type) {
	case map[string]any:
		k, ok := step.(string)
		if !ok {
			return nil, false
		}
		v, ok := c[k]
		return v, ok
	case []any:
		i, ok := index(step)
		if !ok || i >= len(c) {
			return nil, false
		}
		return c[i], true
	}
	return nil, false
}

// index reads an array index from a path element, as Split wrote it (int) or as JSON
// decoded it (float64 or json.Number).
func index(step any) (int, bool) {
	switch n := step.(type) {
	case int:
		return n, n >= 0
	case float64:
		if n >= 0 && n == float64(int(n)) {
			return int(n), true
		}
	case json.Number:
		i, err := strconv.Atoi(string(n))
		return i, err == nil && i >= 0
	}
	return 0, false
}
