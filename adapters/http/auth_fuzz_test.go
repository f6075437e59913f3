package http

import (
	"crypto/sha256"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParseAPIKeys: any VERDICT_API_KEYS value is either refused with a one-line error
// that does not contain a secret, or gives keys with unique, non-empty ids, known scopes and
// the SHA-256 of the secret written for them.
func FuzzParseAPIKeys(f *testing.F) {
	f.Add("checkout:0123456789abcdef0123:decide,riskops:fedcba9876543210fedc:lists+admin")
	f.Add("a:0123456789abcdef:decide, ,b:0123456789abcdef:review+pii+label+verify")
	f.Add("a:short:decide")
	f.Add("a:0123456789abcdef:decide,a:0123456789abcdef:decide")
	f.Add("a:0123456789abcdef:root")
	f.Add(":0123456789abcdef:decide")
	f.Add("a:b:c:d")
	f.Add("a:0123456789abcdef0123:decide,b:0123456789abcdef0123:admin") // one secret, two ids
	f.Add("0123456789abcdef0123:a:decide")                              // secret and id swapped
	f.Add("c: spacedsecret12345 :decide")
	f.Add("é:éééééééééééééééé:decide")
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := ParseAPIKeys(s)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error is not one line: %q", msg)
			}
			for ent := range strings.SplitSeq(s, ",") {
				parts := strings.Split(strings.TrimSpace(ent), ":")
				if len(parts) != 3 || len(parts[1]) < 16 {
					continue
				}
				// What the message may quote: a scope.
				rest := msg
				for sc := range strings.SplitSeq(parts[2], "+") {
					rest = strings.ReplaceAll(rest, strconv.Quote(sc), "")
				}
				for _, secret := range parts[:2] { // either field, in case they were swapped
					if len(secret) >= 16 && strings.Contains(rest, secret) {
						t.Fatalf("error %q shows a secret %q", msg, secret)
					}
				}
			}
			return
		}
		written := map[string]string{}
		for ent := range strings.SplitSeq(s, ",") {
			if parts := strings.Split(strings.TrimSpace(ent), ":"); len(parts) == 3 {
				written[parts[0]] = parts[1]
			}
		}
		seen := map[string]bool{}
		hashes := map[[32]byte]bool{}
		for _, k := range keys {
			if hashes[k.Hash] {
				t.Fatalf("%q: two keys share a secret", s)
			}
			hashes[k.Hash] = true
			if strings.ContainsFunc(written[k.ID], unicode.IsSpace) || utf8.RuneCountInString(written[k.ID]) < 16 {
				t.Fatalf("%q: secret of %q accepted", s, k.ID)
			}
			if k.ID == "" || seen[k.ID] {
				t.Fatalf("key id %q empty or repeated in %q", k.ID, s)
			}
			seen[k.ID] = true
			if k.Hash != sha256.Sum256([]byte(written[k.ID])) {
				t.Fatalf("key %q: hash is not of the secret written for it", k.ID)
			}
			if len(k.Scopes) == 0 {
				t.Fatalf("key %q has no scope", k.ID)
			}
			for _, sc := range k.Scopes {
				if !slices.Contains([]string{ScopeDecide, ScopeLists, ScopeAdmin, ScopeVerify, ScopeReview, ScopePII, ScopeLabel}, sc) {
					t.Fatalf("key %q: unknown scope %q accepted", k.ID, sc)
				}
			}
		}
		if len(seen) != len(written) {
			t.Fatalf("%q: %d keys parsed, %d written", s, len(seen), len(written))
		}
	})
}
