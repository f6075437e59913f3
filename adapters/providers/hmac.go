package providers

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Sumsub documents HMAC_SHA1_HEX as one of its algorithms
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// Secrets holds a webhook's signing secrets: normally one, two during a rotation (the new
// one first). Parse them from configuration with ParseSecrets.
type Secrets [][]byte

// ParseSecrets splits a configuration value "secret" or "new,old" into Secrets. Blank
// entries are dropped; at most two are kept. Spaces around each entry are trimmed.
func ParseSecrets(v string) Secrets {
	var s Secrets
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" && len(s) < 2 {
			s = append(s, []byte(part))
		}
	}
	return s
}

// Algorithms for MatchHexHMAC.
const (
	SHA1   = "sha1"
	SHA256 = "sha256"
	SHA512 = "sha512"
)

func newHash(alg string) func() hash.Hash {
	switch alg {
	case SHA1:
		return sha1.New
	case SHA256:
		return sha256.New
	case SHA512:
		return sha512.New
	}
	return nil
}

// MatchHexHMAC reports whether sigHex (hex, either case, surrounding spaces ignored) is the
// HMAC of msg under any of the secrets with the given algorithm (SHA1, SHA256, SHA512). The
// comparison is constant-time in the signature's content; every secret is tried so the
// time taken does not say which one matched.
func MatchHexHMAC(alg string, secrets Secrets, msg []byte, sigHex string) bool {
	h := newHash(alg)
	if h == nil {
		return false
	}
	got, err := hex.DecodeString(strings.TrimSpace(sigHex))
	if err != nil || len(got) == 0 {
		return false
	}
	ok := false
	for _, s := range secrets {
		m := hmac.New(h, s)
		m.Write(msg)
		if hmac.Equal(m.Sum(nil), got) {
			ok = true
		}
	}
	return ok
}

// HexHMAC returns the hex HMAC of msg under secret, for tests and for signing (sandbox).
func HexHMAC(alg string, secret, msg []byte) string {
	m := hmac.New(newHash(alg), secret)
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}

// SecretsFromEnv parses a webhook-secret configuration value as ParseSecrets does, but
// refuses what ParseSecrets would silently cut: more than two secrets, or a value with no
// secret in it. An empty value is no secrets and no error. The error never quotes the value.
func SecretsFromEnv(value string) (Secrets, error) {
	if strings.TrimSpace(value) == "" {
		return nil, nil
	}
	n := 0
	for _, part := range strings.Split(value, ",") {
		if strings.TrimSpace(part) != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, errors.New("holds no secret")
	case n > 2:
		return nil, fmt.Errorf("holds %d secrets; at most two (new,old) are allowed", n)
	}
	return ParseSecrets(value), nil
}
